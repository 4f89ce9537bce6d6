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
    for expected in [
        "Dhcp6.option-data[1]",
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
