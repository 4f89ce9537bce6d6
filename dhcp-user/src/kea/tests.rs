//! Kea's lease rows into ours: every field, the log's last-row-wins, removals, rejections.

use super::leases::*;
use crate::store::{LeaseState, LeaseType};

const HEADER: &str = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source";

/// A Kea 2.2 memfile: NA and PD rows become leases with every field Kea keeps.
#[test]
fn memfile_rows_become_leases() {
    let text = format!(
        "{HEADER}\n\
         2001:db8:1::100,00:01:00:01:2c:3b:5f:6e:02:00:00:00:00:01,4000,1700004000,1,3000,0,1,128,0,0,host&#x2ca,,0,,,\n\
         2001:db8:8000:100::,00:01:00:01:2c:3b:5f:6e:02:00:00:00:00:01,4000,1700004000,1,3000,2,2,56,0,0,,,0,,,\n"
    );
    let mut report = ImportReport::default();
    let leases = parse_memfile(&text, "leases6.csv", &mut report).unwrap();
    assert_eq!(report.rows, 2);
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
    let na = &leases
        .iter()
        .find(|(_, l)| l.lease_type == LeaseType::Na)
        .unwrap()
        .1;
    assert_eq!(
        na.address,
        "2001:db8:1::100".parse::<std::net::Ipv6Addr>().unwrap()
    );
    assert_eq!(
        na.duid,
        hex::decode("000100012c3b5f6e020000000001").unwrap()
    );
    assert_eq!((na.iaid, na.subnet_id), (1, 1));
    assert_eq!((na.preferred_lifetime, na.valid_lifetime), (3000, 4000));
    assert_eq!((na.cltt, na.expire), (1_700_000_000, 1_700_004_000));
    assert_eq!(na.state, LeaseState::Assigned);
    assert_eq!(na.hostname, "host,a", "Kea's escaped comma");
    let pd = &leases
        .iter()
        .find(|(_, l)| l.lease_type == LeaseType::Pd)
        .unwrap()
        .1;
    assert_eq!((pd.prefix_len, pd.iaid), (56, 2));
}

/// The memfile is a log: a later row replaces an earlier one, valid lifetime 0 removes it.
#[test]
fn the_last_row_wins_and_lifetime_zero_removes() {
    let duid = "00:03:00:01:02:00:00:00:00:01";
    let text = format!(
        "{HEADER}\n\
         2001:db8:1::1,{duid},4000,1700004000,1,3000,0,1,128,0,0,,,0,,,\n\
         2001:db8:1::1,{duid},4000,1700008000,1,3000,0,1,128,0,0,,,0,,,\n\
         2001:db8:1::2,{duid},4000,1700004000,1,3000,0,2,128,0,0,,,0,,,\n\
         2001:db8:1::2,{duid},0,1700004000,1,0,0,2,128,0,0,,,0,,,\n"
    );
    let mut report = ImportReport::default();
    let leases = parse_memfile(&text, "leases6.csv", &mut report).unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!(leases[0].1.expire, 1_700_008_000);
    assert_eq!((report.rows, report.superseded, report.removed), (4, 2, 1));
}

/// Rows that make no lease are rejected with their line and reason; the others still import.
#[test]
fn bad_rows_are_rejected_with_line_and_reason() {
    let duid = "00:03:00:01:02:00:00:00:00:01";
    let text = format!(
        "{HEADER}\n\
         not-an-address,{duid},4000,1700004000,1,3000,0,1,128,0,0,,,0,,,\n\
         2001:db8:1::3,{duid},4000,1700004000,1,3000,1,1,128,0,0,,,0,,,\n\
         2001:db8:1::4,zz,4000,1700004000,1,3000,0,1,128,0,0,,,0,,,\n\
         2001:db8:1::5,{duid},4000,1700004000,1,5000,0,1,128,0,0,,,0,,,\n\
         2001:db8:1::6,{duid},4000\n\
         2001:db8:1::7,{duid},4000,1700004000,1,3000,0,1,128,0,0,,,9,,,\n\
         2001:db8:1::8,{duid},4000,1700004000,1,3000,0,1,128,0,0,,,0,,,\n"
    );
    let mut report = ImportReport::default();
    let leases = parse_memfile(&text, "leases6.csv", &mut report).unwrap();
    assert_eq!(leases.len(), 1);
    let lines: Vec<(&str, &str)> = report
        .rejected
        .iter()
        .map(|r| (r.at.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(lines.len(), 6, "{lines:?}");
    assert!(lines[0].0 == "leases6.csv line 2" && lines[0].1.contains("not an IPv6"));
    assert!(lines[1].1.contains("IA_TA"), "{lines:?}");
    assert!(lines[2].1.contains("DUID"), "{lines:?}");
    assert!(lines[3].1.contains("preferred lifetime"), "{lines:?}");
    assert!(lines[4].0 == "leases6.csv line 6" && lines[4].1.contains("fields"));
    assert!(lines[5].1.contains("unknown state 9"), "{lines:?}");
}

/// A file that is not Kea's memfile is refused at its header.
#[test]
fn a_file_without_kea_columns_is_refused() {
    let mut report = ImportReport::default();
    let err = parse_memfile("a,b,c\n1,2,3\n", "x.csv", &mut report).unwrap_err();
    assert!(err.to_string().contains("no `address` column"), "{err}");
}

/// A Kea configuration with comments: what maps becomes a valid configuration of ours.
#[test]
fn kea_config_converts_to_a_valid_config_of_ours() {
    let kea = r#"
    // Kea's own comment styles
    {
      "Dhcp6": {
        "interfaces-config": { "interfaces": [ "eth1/2001:db8:1::1", "eth2" ] },
        "preferred-lifetime": 3000, # hash comment
        "valid-lifetime": 4000,
        "renew-timer": 1000,
        "rebind-timer": 2000,
        /* a block
           comment */
        "option-data": [ { "name": "dns-servers", "data": "2001:db8:2::45, 2001:db8:2::100" },
                         { "name": "sntp-servers", "data": "2001:db8:2::1" } ],
        "lease-database": { "type": "postgresql", "name": "kea", "host": "db", "user": "kea", "password": "s3cret" },
        "loggers": [ { "name": "kea-dhcp6", "severity": "INFO" } ],
        "control-socket": { "socket-type": "unix", "socket-name": "/tmp/kea6-ctrl-socket" },
        "subnet6": [ {
          "id": 7,
          "subnet": "2001:db8:1::/64",
          "interface": "eth1",
          "rapid-commit": true,
          "pools": [ { "pool": "2001:db8:1::1000 - 2001:db8:1::1fff" }, { "pool": "2001:db8:1:0:8000::/80" } ],
          "pd-pools": [ { "prefix": "2001:db8:8000::", "prefix-len": 40, "delegated-len": 56 } ],
          "option-data": [ { "name": "domain-search", "data": "example.com, lab.example" } ],
          "reservations": [ { "duid": "01:02:03:04:05:0a:0b:0c:0d:0e", "ip-addresses": [ "2001:db8:1::100" ],
                              "prefixes": [ "2001:db8:2:abcd::/64" ], "hostname": "foo" },
                            { "hw-address": "00:01:02:03:04:05", "ip-addresses": [ "2001:db8:1::101" ] } ]
        } ],
        "shared-networks": [ { "name": "floor2", "subnet6": [ {
          "id": 8, "subnet": "2001:db8:9::/64",
          "relay": { "ip-addresses": [ "2001:db8:9::1" ] },
          "pools": [ { "pool": "2001:db8:9::10 - 2001:db8:9::ff" } ] } ] } ]
      }
    }"#;
    let converted = crate::kea::config::convert(kea).unwrap();
    let config = crate::config::Config::parse(&converted.toml, "converted.toml")
        .unwrap_or_else(|err| panic!("{err}\n{}", converted.toml));
    assert_eq!(
        config.interfaces,
        vec!["eth1".to_string(), "eth2".to_string()]
    );
    assert_eq!(config.subnets.len(), 2);
    let first = &config.subnets[0];
    assert_eq!(
        (first.id, first.prefix.to_string()),
        (7, "2001:db8:1::/64".to_string())
    );
    assert_eq!(first.interfaces, vec!["eth1".to_string()]);
    assert_eq!(
        (first.preferred_lifetime, first.valid_lifetime),
        (3000, 4000)
    );
    assert_eq!((first.renew_timer, first.rebind_timer), (1000, 2000));
    assert!(first.rapid_commit);
    assert_eq!(first.pools.len(), 2);
    assert_eq!(first.pools[1].low.to_string(), "2001:db8:1:0:8000::");
    assert_eq!(
        first.pools[1].high.to_string(),
        "2001:db8:1:0:8000:ffff:ffff:ffff"
    );
    assert_eq!(first.pd_pools[0].delegated_length, 56);
    assert_eq!(first.dns_servers.len(), 2, "the global option is copied in");
    assert_eq!(first.domain_search, vec!["example.com", "lab.example"]);
    assert_eq!(first.reservations.len(), 1);
    assert_eq!(
        first.reservations[0].address.unwrap().to_string(),
        "2001:db8:1::100"
    );
    assert_eq!(config.subnets[1].relay_addresses.len(), 1);
    assert!(matches!(
        config.lease_database,
        crate::config::LeaseDatabase::Postgresql(ref pg) if pg.conninfo == "host=db user=kea dbname=kea"
    ));
    let unmapped = converted.unmapped.join("\n");
    assert!(
        config.options.iter().any(|o| o.code == 31),
        "sntp-servers converts"
    );
    for expected in [
        "Dhcp6.loggers",
        "Dhcp6.control-socket",
        "Dhcp6.lease-database.password",
        "Dhcp6.subnet6[0].reservations[0].hostname",
        "Dhcp6.subnet6[0].reservations[1]",
        "Dhcp6.shared-networks[0]",
    ] {
        assert!(
            unmapped.contains(expected),
            "{expected} is listed:\n{unmapped}"
        );
    }
    assert!(
        !converted.toml.contains("s3cret"),
        "the password is not copied"
    );
    assert!(
        converted.toml.contains("#   Dhcp6.loggers"),
        "listed in the output too"
    );
}

/// Not Kea's configuration: a clear error, no panic.
#[test]
fn a_file_that_is_not_kea_dhcp6_config_is_refused() {
    let err = crate::kea::config::convert("{\"Dhcp4\": {}}").unwrap_err();
    assert!(err.contains("Dhcp6"), "{err}");
    let err = crate::kea::config::convert("{ not json").unwrap_err();
    assert!(err.contains("JSON"), "{err}");
}

/// The body of option `code` in `options` (the first entry of that code).
fn body_of(options: &[crate::options::ConfiguredOption], code: u16) -> Option<&[u8]> {
    options
        .iter()
        .find(|o| o.code == code)
        .map(|o| o.data.as_slice())
}

/// Kea's `option-data` at every level (global, subnet, pool, pd-pool, reservation), by name
/// and by code, with `csv-format` true (typed values) and false (hex), becomes our options
/// (a configuration that loads, with the bytes Kea would send), `always-send` included; what
/// does not convert (a name we do not know, a sub-option space, an option the server builds,
/// sub-options in csv form) is listed with the reason.
#[test]
fn kea_option_data_converts_at_every_level_and_the_rest_is_listed() {
    let kea = r#"{ "Dhcp6": {
      "option-data": [
        { "name": "sntp-servers", "data": "2001:db8::7b" },
        { "name": "aftr-name", "data": "aftr.example.net", "always-send": true },
        { "code": 82, "data": "600" },
        { "code": 250, "csv-format": false, "data": "0x0A0B" },
        { "name": "nis-servers", "data": "2001:db8::9, 2001:db8::a" },
        { "name": "my-custom", "data": "x" },
        { "name": "vendor-opts", "data": "4491" },
        { "code": 2, "space": "vendor-4491", "data": "2001:db8::2" },
        { "name": "solmax-rt", "data": "60", "always-send": true }
      ],
      "subnet6": [ {
        "id": 1, "subnet": "2001:db8:1::/64",
        "option-data": [
          { "name": "dns-servers", "data": "2001:db8:1::53" },
          { "name": "v6-captive-portal", "data": "https://portal.example.net/" },
          { "name": "preference", "data": "200" },
          { "name": "new-posix-timezone", "data": "EST5EDT4\\,M3.2.0" },
          { "code": 12, "data": "2001:db8::1" }
        ],
        "pools": [ { "pool": "2001:db8:1::1000-2001:db8:1::1fff",
                     "option-data": [ { "name": "sntp-servers", "data": "2001:db8:1::7b" } ] } ],
        "pd-pools": [ { "prefix": "2001:db8:8000::", "prefix-len": 40, "delegated-len": 56,
                        "option-data": [ { "name": "sip-server-dns", "data": "sip.example.net" } ] } ],
        "reservations": [ { "duid": "01:02:03:04:05:0a:0b:0c:0d:0e", "ip-addresses": [ "2001:db8:1::100" ],
                            "option-data": [ { "name": "ntp-server", "csv-format": false,
                                               "data": "00 01 00 10 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 01 23" },
                                             { "name": "dns-servers", "data": "2001:db8:1::54" } ] } ]
      } ]
    } }"#;
    let converted = crate::kea::config::convert(kea).unwrap();
    let config = crate::config::Config::parse(&converted.toml, "converted.toml")
        .unwrap_or_else(|err| panic!("{err}\n{}", converted.toml));
    let global = &config.options;
    assert_eq!(
        body_of(global, 31),
        Some(
            &"2001:db8::7b"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()[..]
        )
    );
    let aftr = global.iter().find(|o| o.code == 64).expect("aftr-name");
    assert!(aftr.always_send);
    assert_eq!(aftr.data, b"\x04aftr\x07example\x03net\x00");
    assert_eq!(body_of(global, 82), Some(&600u32.to_be_bytes()[..]));
    assert_eq!(body_of(global, 250), Some(&[0x0a, 0x0b][..]));
    assert_eq!(
        body_of(global, 27).map(<[u8]>::len),
        Some(32),
        "two addresses"
    );
    let subnet = &config.subnets[0];
    assert_eq!(
        subnet.dns_servers,
        ["2001:db8:1::53".parse::<std::net::Ipv6Addr>().unwrap()]
    );
    assert_eq!(subnet.preference, Some(200));
    assert_eq!(
        body_of(&subnet.options, 103),
        Some(&b"https://portal.example.net/"[..])
    );
    assert_eq!(
        body_of(&subnet.options, 41),
        Some(&b"EST5EDT4,M3.2.0"[..]),
        "Kea's escaped comma"
    );
    assert_eq!(
        body_of(&subnet.pool_options[0], 31),
        Some(
            &"2001:db8:1::7b"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets()[..]
        )
    );
    assert_eq!(
        body_of(&subnet.pd_pool_options[0], 21),
        Some(&b"\x03sip\x07example\x03net\x00"[..])
    );
    let reservation = &subnet.reservations[0].options;
    assert_eq!(body_of(reservation, 56).map(<[u8]>::len), Some(20));
    assert_eq!(body_of(reservation, 23).map(<[u8]>::len), Some(16));
    let unmapped = converted.unmapped.join("\n");
    for (path, why) in [
        ("Dhcp6.option-data[5]", "no option named `my-custom`"),
        ("Dhcp6.option-data[6]", "sub-options"),
        ("Dhcp6.option-data[7]", "space `vendor-4491`"),
        ("Dhcp6.option-data[8]", "only to a client that asks"),
        ("Dhcp6.subnet6[0].option-data[4]", "built by the server"),
    ] {
        assert!(
            unmapped
                .lines()
                .any(|line| line.starts_with(path) && line.contains(why)),
            "{path}: {why}:\n{unmapped}"
        );
    }
    assert_eq!(converted.unmapped.len(), 5, "{unmapped}");
}

/// A Kea option-data entry that is not valid (a code out of range, data that is not hex, a
/// name and a code that disagree) is listed with the reason, never converted wrong.
#[test]
fn bad_kea_option_data_is_listed_with_the_reason() {
    let kea = r#"{ "Dhcp6": { "option-data": [
        { "code": 70000, "data": "1" },
        { "code": 250, "csv-format": false, "data": "zz" },
        { "name": "dns-servers", "code": 24, "data": "2001:db8::1" },
        { "name": "sol-max-rt", "data": "60" },
        { "code": 82, "data": "not a number" }
    ] } }"#;
    let converted = crate::kea::config::convert(kea).unwrap();
    let unmapped = converted.unmapped.join("\n");
    for (i, why) in [
        "not an option code",
        "not hex",
        "is option 23",
        "no option named `sol-max-rt`",
        "not an integer",
    ]
    .iter()
    .enumerate()
    {
        assert!(
            unmapped.contains(&format!("Dhcp6.option-data[{i}]: ")) && unmapped.contains(why),
            "{why}:\n{unmapped}"
        );
    }
    assert!(!converted.toml.contains("[[option]]"), "{}", converted.toml);
}

/// Kea's configuration with one class `c` of `test`, a pool kept for it and one for everyone.
fn kea_with_class(test: &str) -> String {
    serde_json::json!({ "Dhcp6": {
        "client-classes": [ { "name": "c", "test": test } ],
        "subnet6": [ {
            "id": 1, "subnet": "2001:db8:1::/64", "interface": "eth1",
            "pools": [ { "pool": "2001:db8:1::c000-2001:db8:1::c0ff", "client-class": "c" },
                       { "pool": "2001:db8:1::1000-2001:db8:1::1fff" } ]
        } ]
    } })
    .to_string()
}

/// Kea's class `c` of `test`, converted and loaded by our configuration: our class, its pool
/// kept for it.
fn converted_class(test: &str) -> crate::config::classes::ClientClass {
    let converted = crate::kea::config::convert(&kea_with_class(test)).unwrap();
    assert!(
        converted.unmapped.is_empty(),
        "{test}: {:?}",
        converted.unmapped
    );
    let config = crate::config::Config::parse(&converted.toml, "converted.toml")
        .unwrap_or_else(|err| panic!("{err}\n{}", converted.toml));
    let subnet = &config.subnets[0];
    assert_eq!(subnet.pools.len(), 2);
    assert_eq!(
        subnet.pool_classes,
        vec![Some(crate::config::classes::ClassSet(1)), None],
        "the first pool is kept for the class"
    );
    assert_eq!(config.client_classes.len(), 1);
    config.client_classes[0].clone()
}

/// Why Kea's class of `test` is not converted: the line listing it, which names the class
/// and the test; the pool kept for it is left out, listed too, and the other pool stays.
fn refused_class(test: &str) -> String {
    let converted = crate::kea::config::convert(&kea_with_class(test)).unwrap();
    let line = converted
        .unmapped
        .iter()
        .find(|l| l.starts_with("Dhcp6.client-classes[0]: class `c` not converted: test `"))
        .unwrap_or_else(|| panic!("{test}: {:?}", converted.unmapped))
        .clone();
    assert!(line.contains(test), "{line}");
    assert!(
        converted
            .unmapped
            .iter()
            .any(|l| l.starts_with("Dhcp6.subnet6[0].pools[0]: pool left out: for class `c`")),
        "{:?}",
        converted.unmapped
    );
    let config = crate::config::Config::parse(&converted.toml, "converted.toml")
        .unwrap_or_else(|err| panic!("{err}\n{}", converted.toml));
    assert!(config.client_classes.is_empty());
    let pools = &config.subnets[0].pools;
    assert_eq!(pools.len(), 1, "only the pool for everyone");
    assert_eq!(pools[0].low.to_string(), "2001:db8:1::1000");
    line
}

fn vendor_match(
    enterprise: Option<u32>,
    data: Option<(&str, bool)>,
) -> Option<crate::config::classes::VendorClassMatch> {
    Some(crate::config::classes::VendorClassMatch {
        enterprise,
        data: data.map(|(d, prefix)| crate::config::classes::DataMatch {
            bytes: d.as_bytes().to_vec(),
            prefix,
        }),
    })
}

/// `vendor-class[E].exists`: any Vendor Class option of that enterprise number.
#[test]
fn kea_vendor_class_exists_is_our_enterprise_match() {
    let class = converted_class("vendor-class[4491].exists");
    assert_eq!(class.vendor_class, vendor_match(Some(4491), None));
}

/// `vendor-class[E].data == 'x'` (and `[*]`, any vendor): a data item equal to it.
#[test]
fn kea_vendor_class_data_is_our_exact_data_match() {
    let class = converted_class("vendor-class[4491].data == 'docsis3.0'");
    assert_eq!(
        class.vendor_class,
        vendor_match(Some(4491), Some(("docsis3.0", false)))
    );
    let class = converted_class("vendor-class[*].data[0] == 0x41434d45");
    assert_eq!(
        class.vendor_class,
        vendor_match(None, Some(("ACME", false)))
    );
}

/// `substring(vendor-class[E].data, 0, N) == 'C'` with `C` of N bytes: a prefix; a shorter
/// constant compares the whole item (Kea's substring of a shorter item is the item).
#[test]
fn kea_vendor_class_substring_is_our_prefix_match() {
    let class = converted_class("substring(vendor-class[4491].data, 0, 8) == 'ACME-CPE'");
    assert_eq!(
        class.vendor_class,
        vendor_match(Some(4491), Some(("ACME-CPE", true)))
    );
    let class = converted_class("substring(vendor-class[4491].data, 0, 20) == 'ACME-CPE'");
    assert_eq!(
        class.vendor_class,
        vendor_match(Some(4491), Some(("ACME-CPE", false)))
    );
}

/// Option 16's raw bytes: its first 4 are the enterprise number; the whole body one item.
#[test]
fn kea_option_16_hex_is_our_vendor_class() {
    let class = converted_class("substring(option[16].hex,0,4) == 0x0000118b");
    assert_eq!(class.vendor_class, vendor_match(Some(4491), None));
    let class = converted_class("option[16].hex == 0x0000118b0003616263");
    assert_eq!(
        class.vendor_class,
        vendor_match(Some(4491), Some(("abc", false)))
    );
}

/// `option[15].hex` equal to one whole user-class item (length, data): our user-class data.
#[test]
fn kea_option_15_hex_is_our_user_class() {
    let class = converted_class("option[15].hex == 0x0007627573696e6573");
    let class_bytes = class.user_class.expect("a user-class condition");
    assert_eq!(
        (class_bytes.bytes.as_slice(), class_bytes.prefix),
        (&b"busines"[..], false)
    );
}

/// `relay6[-1].option[37].hex` (the relay closest to the client): our relay-remote-id.
#[test]
fn kea_relay_remote_id_of_the_client_side_relay_is_ours() {
    let class = converted_class("relay6[-1].option[37].hex == 0x00000de90a0b0c");
    assert_eq!(
        class.relay_remote_id,
        Some(vec![0, 0, 0x0d, 0xe9, 0x0a, 0x0b, 0x0c])
    );
}

/// `pkt.iface == 'eth1'`: our interfaces; a substring from 0 a pattern.
#[test]
fn kea_pkt_iface_is_our_interfaces() {
    assert_eq!(converted_class("pkt.iface == 'eth1'").interfaces, ["eth1"]);
    assert_eq!(
        converted_class("substring(pkt.iface, 0, 4) == 'vlan'").interfaces,
        ["vlan*"]
    );
}

/// `substring(option[1].hex, 0, N)`: the DUID's first bytes, our duid-prefix.
#[test]
fn kea_client_id_substring_is_our_duid_prefix() {
    let class = converted_class("substring(option[1].hex, 0, 4) == 0x00030001");
    assert_eq!(class.duid_prefix, Some(vec![0, 3, 0, 1]));
}

/// Conditions joined by `and` (in parentheses too) are one class of ours, all of them
/// holding; two conditions on the one vendor class option merge.
#[test]
fn kea_and_of_shapes_is_one_class_of_ours() {
    let class = converted_class(
        "(vendor-class[4491].exists and substring(vendor-class[4491].data,0,4) == 'ACME') \
         and pkt.iface == 'eth1' and relay6[-1].option[37].hex == 0x00000de90a0b0c",
    );
    assert_eq!(
        class.vendor_class,
        vendor_match(Some(4491), Some(("ACME", true)))
    );
    assert_eq!(class.interfaces, ["eth1"]);
    assert!(class.relay_remote_id.is_some());
}

/// Kea's class with `or` is one class of ours per branch, `and` multiplied out over them, and
/// the pool Kea keeps for it is kept for all of them; `A or A` stays one class.
#[test]
fn kea_or_becomes_one_class_per_branch() {
    let convert = |test: &str| {
        let converted = crate::kea::config::convert(&kea_with_class(test)).unwrap();
        assert!(converted.unmapped.is_empty(), "{:?}", converted.unmapped);
        crate::config::Config::parse(&converted.toml, "converted.toml")
            .unwrap_or_else(|err| panic!("{err}\n{}", converted.toml))
    };
    let config = convert("vendor-class[4491].exists or pkt.iface == 'eth1'");
    let names: Vec<&str> = config
        .client_classes
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["c-1", "c-2"]);
    assert_eq!(
        config.client_classes[0].vendor_class,
        vendor_match(Some(4491), None)
    );
    assert_eq!(config.client_classes[1].interfaces, ["eth1"]);
    assert_eq!(
        config.subnets[0].pool_classes,
        [Some(crate::config::classes::ClassSet(0b11)), None],
        "the pool kept for `c` serves both branches"
    );

    let config =
        convert("(vendor-class[4491].exists or vendor-class[3561].exists) and pkt.iface == 'eth2'");
    let branches: Vec<(Option<u32>, Vec<String>)> = config
        .client_classes
        .iter()
        .map(|c| {
            let enterprise = c.vendor_class.as_ref().and_then(|v| v.enterprise);
            (enterprise, c.interfaces.clone())
        })
        .collect();
    assert_eq!(
        branches,
        [
            (Some(4491), vec!["eth2".to_string()]),
            (Some(3561), vec!["eth2".to_string()])
        ]
    );

    let config = convert("pkt.iface == 'eth1' or (pkt.iface == 'eth1')");
    let names: Vec<&str> = config
        .client_classes
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(names, ["c"]);
}

/// Every test ours cannot say exactly is refused, naming the class, the test and why, and
/// the pool kept for the class is left out (never made to serve everyone).
#[test]
fn kea_tests_without_an_exact_counterpart_are_refused() {
    for (test, why) in [
        (
            "(vendor-class[1].exists or vendor-class[2].exists or vendor-class[3].exists) and \
             (pkt.iface == 'a' or pkt.iface == 'b' or pkt.iface == 'c')",
            "more than 8 classes",
        ),
        ("not (pkt.iface == 'eth1')", "`not`"),
        ("option[16].exists", "presence alone"),
        ("option[15].text == 'business'", "`.text`"),
        ("option[15].hex == 'business'", "one whole user-class item"),
        (
            "relay6[0].option[37].hex == 0x00000de90a0b0c",
            "closest to the client",
        ),
        ("relay6[0].option[18].hex == 'ge-0/0/1'", "any relay hop"),
        ("vendor-class[4491].data == ''", "empty string"),
        (
            "substring(vendor-class[4491].data, 2, 4) == 'ME-C'",
            "from byte 2",
        ),
        ("vendor-class[4491].data[1] == 'x'", "index 0"),
        ("option[16].hex == 0x0000118b", "one whole data item"),
        ("member('KNOWN')", "`member`"),
        ("pkt6.msgtype == 1", "`pkt6`"),
        ("vendor-class[4491].data == 0xff00", "not UTF-8"),
        (
            "pkt.iface == 'eth1' and pkt.iface == 'eth2'",
            "two interface",
        ),
        ("substring(pkt.iface, 0, 2) == 'eth'", "never true"),
    ] {
        let line = refused_class(test);
        assert!(line.contains(why), "{test}: {why}: {line}");
    }
}

/// A subnet (or shared network) kept for a class: every pool and pd-pool of ours is kept for
/// it; kept for a class that did not convert, or with reservations (which Kea gives members
/// only), it is left out, listed; a pool kept for another class than its subnet's too.
#[test]
fn kea_subnet_and_network_client_class_keep_the_pools() {
    let kea = r#"{ "Dhcp6": {
      "client-classes": [ { "name": "cpe", "test": "vendor-class[4491].exists" },
                          { "name": "odd", "test": "option[16].exists" },
                          { "name": "biz", "test": "pkt.iface == 'eth2'" } ],
      "subnet6": [
        { "id": 1, "subnet": "2001:db8:1::/64", "client-class": "cpe",
          "pools": [ { "pool": "2001:db8:1::1000-2001:db8:1::1fff" },
                     { "pool": "2001:db8:1::2000-2001:db8:1::2fff", "client-class": "biz" } ],
          "pd-pools": [ { "prefix": "2001:db8:8000::", "prefix-len": 40, "delegated-len": 56 } ] },
        { "id": 2, "subnet": "2001:db8:2::/64", "client-class": "odd",
          "pools": [ { "pool": "2001:db8:2::1000-2001:db8:2::1fff" } ] },
        { "id": 3, "subnet": "2001:db8:3::/64", "client-class": "cpe",
          "pools": [ { "pool": "2001:db8:3::1000-2001:db8:3::1fff" } ],
          "reservations": [ { "duid": "01:02:03:04", "ip-addresses": [ "2001:db8:3::5" ] } ] }
      ],
      "shared-networks": [ { "name": "n", "client-class": "biz", "subnet6": [
        { "id": 4, "subnet": "2001:db8:4::/64",
          "pools": [ { "pool": "2001:db8:4::1000-2001:db8:4::1fff", "client-class": "ALL" } ] } ] } ]
    } }"#;
    let converted = crate::kea::config::convert(kea).unwrap();
    let config = crate::config::Config::parse(&converted.toml, "converted.toml")
        .unwrap_or_else(|err| panic!("{err}\n{}", converted.toml));
    let ids: Vec<u32> = config.subnets.iter().map(|s| s.id).collect();
    assert_eq!(ids, [1, 4], "{}", converted.toml);
    let cpe = Some(crate::config::classes::ClassSet(1));
    let biz = Some(crate::config::classes::ClassSet(2));
    assert_eq!(config.subnets[0].pool_classes, [cpe]);
    assert_eq!(config.subnets[0].pd_pool_classes, [cpe]);
    assert_eq!(config.subnets[1].pool_classes, [biz]);
    let unmapped = converted.unmapped.join("\n");
    for (path, why) in [
        ("Dhcp6.client-classes[1]: class `odd`", "presence alone"),
        (
            "Dhcp6.subnet6[0].pools[1]: pool left out",
            "both class `cpe`",
        ),
        (
            "Dhcp6.subnet6[1]: subnet left out",
            "`odd`, which is not converted",
        ),
        ("Dhcp6.subnet6[2]: subnet left out", "reservations"),
    ] {
        assert!(
            unmapped
                .lines()
                .any(|line| line.starts_with(path) && line.contains(why)),
            "{path}: {why}:\n{unmapped}"
        );
    }
}

/// End to end: Kea's configuration with classes (Kea 2.2 accepts it: `kea-dhcp6 -t`, when
/// installed) converts to a file `check-config`'s load accepts, whose classes hold for the
/// clients Kea's tests hold for, with Kea's class options and pools.
#[test]
fn kea_classes_convert_to_a_config_check_config_accepts_with_kea_membership() {
    use crate::config::classes::{member_of, ClassInput, ClassSet};
    use crate::proto::{DhcpOption, Duid, Message, RelayMessage, RemoteId};
    use crate::store::LeaseType;
    let kea = r#"{ "Dhcp6": {
      "interfaces-config": { "interfaces": [ "lo" ] },
      "lease-database": { "type": "memfile", "persist": false },
      "client-classes": [
        { "name": "acme-cpe",
          "test": "substring(vendor-class[4491].data, 0, 8) == 'ACME-CPE'",
          "option-data": [ { "name": "aftr-name", "data": "aftr.acme.example" } ] },
        { "name": "business",
          "test": "relay6[-1].option[37].hex == 0x00000de9001a2b3c and pkt.iface == 'lo'",
          "option-data": [ { "name": "dns-servers", "data": "2001:db8:b::53" } ] }
      ],
      "subnet6": [ {
        "id": 1, "subnet": "2001:db8:1::/64", "interface": "lo",
        "pools": [ { "pool": "2001:db8:1::c000-2001:db8:1::c0ff", "client-class": "acme-cpe" },
                   { "pool": "2001:db8:1::b000-2001:db8:1::b0ff", "client-class": "business" },
                   { "pool": "2001:db8:1::1000-2001:db8:1::1fff" } ],
        "pd-pools": [ { "prefix": "2001:db8:b000::", "prefix-len": 40, "delegated-len": 48,
                        "client-class": "business" } ]
      } ]
    } }"#;
    let dir = std::env::temp_dir().join(format!("kea-classes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kea_path = dir.join("kea-dhcp6.json");
    std::fs::write(&kea_path, kea).unwrap();
    match std::process::Command::new("kea-dhcp6")
        .arg("-t")
        .arg(&kea_path)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "Kea refuses its own file: {}",
            String::from_utf8_lossy(&out.stdout)
        ),
        Err(err) => eprintln!("kea-dhcp6 not run ({err}): the Kea file is not checked by Kea"),
    }
    let converted = crate::kea::config::convert(kea).unwrap();
    let unmapped: Vec<&String> = converted
        .unmapped
        .iter()
        .filter(|l| !l.starts_with("Dhcp6.lease-database"))
        .collect();
    assert!(unmapped.is_empty(), "{unmapped:?}");
    let ours = dir.join("server.toml");
    std::fs::write(&ours, &converted.toml).unwrap();
    let loaded = crate::reload::ConfigSource {
        path: ours,
        ifaces: Vec::new(),
        state_dir: Some(dir.join("state")),
        line_pass_budget: None,
        line_pass_burst: None,
    }
    .load()
    .unwrap_or_else(|err| panic!("{err}\n{}", converted.toml));
    let config = &loaded.config;
    let duid = Duid::ll(1, &[2, 0, 0, 0, 0, 1]).unwrap();
    let solicit = |options: Vec<DhcpOption>| {
        let mut m = Message::new(dhcp_common::dhcpv6::MSG_SOLICIT, [1, 2, 3])
            .with_option(DhcpOption::ClientId(duid.clone()));
        m.options.extend(options);
        m
    };
    let vendor = |enterprise: u32, item: &[u8]| {
        let mut body = enterprise.to_be_bytes().to_vec();
        body.extend_from_slice(&(item.len() as u16).to_be_bytes());
        body.extend_from_slice(item);
        DhcpOption::VendorClass(body)
    };
    let relay = |enterprise: u32, id: &[u8]| RelayMessage {
        msg_type: dhcp_common::dhcpv6::MSG_RELAY_FORW,
        hop_count: 0,
        link_address: "2001:db8:1::1".parse().unwrap(),
        peer_address: "fe80::1".parse().unwrap(),
        options: vec![DhcpOption::RemoteId(RemoteId {
            enterprise,
            remote_id: id.to_vec(),
        })],
    };
    let classes = |message: &Message, relays: &[&RelayMessage], interface: &str| {
        member_of(
            config,
            &ClassInput {
                message,
                relays,
                interface,
            },
        )
    };
    // What Kea's tests say of each client, by its docs: the first data item's first 8 bytes,
    // the Remote-ID of the relay closest to the client and the interface.
    let acme = solicit(vec![vendor(4491, b"ACME-CPE-2000")]);
    assert_eq!(classes(&acme, &[], "lo"), ClassSet(1));
    let short = solicit(vec![vendor(4491, b"ACME")]);
    assert_eq!(classes(&short, &[], "lo"), ClassSet::NONE, "item too short");
    let other_vendor = solicit(vec![vendor(9, b"ACME-CPE-2000")]);
    assert_eq!(classes(&other_vendor, &[], "lo"), ClassSet::NONE);
    let plain = solicit(Vec::new());
    let business = relay(3561, &[0x00, 0x1a, 0x2b, 0x3c]);
    let outer = relay(9, &[1]);
    assert_eq!(classes(&plain, &[&business], "lo"), ClassSet(2));
    assert_eq!(
        classes(&plain, &[&outer, &business], "lo"),
        ClassSet(2),
        "the relay closest to the client, relay6[-1]"
    );
    assert_eq!(classes(&plain, &[&business, &outer], "lo"), ClassSet::NONE);
    assert_eq!(classes(&plain, &[&business], "eth9"), ClassSet::NONE);
    assert_eq!(classes(&acme, &[&business], "lo"), ClassSet(3));
    // Kea's class options and pools.
    let aftr = &config.client_classes[0].options;
    assert_eq!(
        body_of(aftr, 64),
        Some(&b"\x04aftr\x04acme\x07example\x00"[..])
    );
    assert_eq!(
        body_of(&config.client_classes[1].options, 23).map(<[u8]>::len),
        Some(16)
    );
    let subnet = &config.subnets[0];
    let admits = |t, i, set| subnet.pool_admits(t, i, set);
    assert!(admits(LeaseType::Na, 0, ClassSet(1)) && !admits(LeaseType::Na, 0, ClassSet(2)));
    assert!(admits(LeaseType::Na, 1, ClassSet(2)) && !admits(LeaseType::Na, 1, ClassSet(1)));
    assert!(admits(LeaseType::Na, 2, ClassSet::NONE));
    assert!(admits(LeaseType::Pd, 0, ClassSet(2)) && !admits(LeaseType::Pd, 0, ClassSet::NONE));
    std::fs::remove_dir_all(&dir).ok();
}

/// Kea ranks a class's options above the global ones and below a subnet's (ours: above a
/// subnet's): a global DNS a class also sets stays global, above which the class's wins; a
/// class option a subnet also sets is left out, listed, so that the subnet's wins as in Kea.
#[test]
fn kea_class_options_keep_keas_precedence() {
    let kea = r#"{ "Dhcp6": {
      "option-data": [ { "name": "dns-servers", "data": "2001:db8::53" } ],
      "client-classes": [ { "name": "biz", "test": "pkt.iface == 'eth2'",
        "option-data": [ { "name": "dns-servers", "data": "2001:db8:b::53" },
                         { "name": "sntp-servers", "data": "2001:db8:b::7b" } ] } ],
      "subnet6": [ { "id": 1, "subnet": "2001:db8:1::/64",
        "option-data": [ { "name": "sntp-servers", "data": "2001:db8:1::7b" } ] } ]
    } }"#;
    let converted = crate::kea::config::convert(kea).unwrap();
    let config = crate::config::Config::parse(&converted.toml, "converted.toml")
        .unwrap_or_else(|err| panic!("{err}\n{}", converted.toml));
    assert_eq!(body_of(&config.options, 23).map(<[u8]>::len), Some(16));
    assert!(
        config.subnets[0].dns_servers.is_empty(),
        "the global DNS is not copied under the class"
    );
    let class = &config.client_classes[0].options;
    assert!(
        body_of(class, 23).is_some(),
        "the class's DNS wins over the global"
    );
    assert!(
        body_of(class, 31).is_none(),
        "the subnet's SNTP wins, as in Kea"
    );
    assert!(
        converted
            .unmapped
            .iter()
            .any(|l| l
                .starts_with("Dhcp6.client-classes[0]: option 31 of the class left out: subnet 1")),
        "{:?}",
        converted.unmapped
    );
}
