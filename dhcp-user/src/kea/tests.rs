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
