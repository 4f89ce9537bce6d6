//! Configuration tests: parsing, defaults, and errors that name the file, line and key.

use super::*;

const GOOD: &str = r#"
state-dir = "/tmp/x"
interfaces = ["eth1"]

[leasequery]
allow = ["2001:db8:1::/64"]

[[subnet]]
prefix = "2001:db8:1::/64"
interface = "eth1"
pools = [{ low = "2001:db8:1::1000", high = "2001:db8:1::ffff" }]
pd-pools = [{ prefix = "2001:db8:8000::/40", delegated-length = 56 }]
preferred-lifetime = 1000
valid-lifetime = 2000
dns-servers = ["2001:db8:1::53"]
domain-search = ["lab.example"]
reservations = [{ duid = "00:03:00:01:02:00:00:00:00:01", address = "2001:db8:1::42" }]
"#;

/// Every topology key of issue 16: an interface group, a shared network, reservations and a
/// limit by line.
const LINES_GOOD: &str = r#"
interfaces = ["eth1", "eth2.1??"]
line-identity = "remote-id"
line-client-limit = 1

[[subnet]]
id = 1
prefix = "2001:db8:1::/64"
interfaces = ["eth1", "eth2.1??"]
shared-network = "access"
pools = [{ low = "2001:db8:1::1000", high = "2001:db8:1::1fff" }]
pd-pools = [{ prefix = "2001:db8:c000::/40", delegated-length = 56 }]
reservations = [
  { remote-id = { enterprise = 3561, id = "61:6e:2d:33" }, prefix = "2001:db8:f000:100::/56" },
  { interface-id = "an-3/1/1:7", address = "2001:db8:1::7" },
  { subscriber-id = "sub-10442", address = "2001:db8:1::8" },
  { client-linklayer-address = "02:00:5e:10:00:01", address = "2001:db8:1::9" },
]

[[subnet]]
id = 2
prefix = "2001:db8:2::/64"
interfaces = ["eth1"]
shared-network = "access"
pools = [{ low = "2001:db8:2::1000", high = "2001:db8:2::ffff" }]
"#;

/// The topology example parses: both subnets serve eth1, in file order.
#[test]
fn the_topology_config_parses() {
    let config = Config::parse(LINES_GOOD, "lines.toml").unwrap();
    assert_eq!(config.shared_with(0), vec![0, 1]);
    assert!(config.subnets[0].serves_interface("eth2.150"));
    assert!(config.subnets[1].serves_interface("eth1"));
    assert_eq!(config.subnets[0].reservations.len(), 4);
}

fn err(text: &str) -> String {
    Config::parse(text, "test.toml").unwrap_err().to_string()
}

#[test]
fn parses_a_good_config_with_defaults() {
    let config = Config::parse(GOOD, "test.toml").unwrap();
    assert_eq!(config.grace_period, DEFAULT_GRACE_PERIOD);
    let subnet = &config.subnets[0];
    assert_eq!(subnet.id, 1);
    assert_eq!(subnet.renew_timer, 500);
    assert_eq!(subnet.rebind_timer, 800);
    assert_eq!(subnet.pd_pools[0].size(), 1 << 16);
    assert_eq!(subnet.pools[0].size(), 0xf000);
    assert_eq!(
        subnet.reservations[0].client,
        ReservedClient::Duid(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 1])
    );
    assert_eq!(subnet.interfaces, vec!["eth1".to_string()]);
    assert_eq!(config.line_identity, None);
    assert!(!config.line_sticky);
    assert_eq!(config.leasequery.allow.len(), 1);
}

/// The change history is kept a day unless `history-retention` says otherwise, never under a
/// minute (the writer prunes once a minute).
#[test]
fn history_retention_defaults_to_a_day_and_is_at_least_a_minute() {
    let config = Config::parse(GOOD, "test.toml").unwrap();
    assert_eq!(config.history_retention, DEFAULT_HISTORY_RETENTION);
    let text = format!("history-retention = 120\n{GOOD}");
    assert_eq!(
        Config::parse(&text, "test.toml").unwrap().history_retention,
        120
    );
    let message = err(&format!("history-retention = 30\n{GOOD}"));
    assert!(
        message.contains("line 1") && message.contains("history-retention"),
        "{message}"
    );
    assert!(message.contains("at least 60 seconds"), "{message}");
}

#[test]
fn the_example_lab_config_is_valid() {
    let config = Config::parse(include_str!("../../../examples/lab.toml"), "lab.toml").unwrap();
    assert!(config.subnets[0].rapid_commit);
    assert_eq!(config.subnets[0].pd_pools[0].delegated_length, 56);
}

#[test]
fn leasequery_keys_parse_with_defaults() {
    let base = "[[subnet]]\nprefix = \"2001:db8:1::/64\"\n";
    let config = Config::parse(base, "x.toml").unwrap();
    assert_eq!(config.leasequery, LeasequeryConfig::default());
    assert!(!config.leasequery.serves_tcp());
    let text = format!(
        "[leasequery]\nallow = [\"2001:db8:1::/64\"]\nrestricted-requestors = true\n\
         active = true\nactive-insecure = true\nmax-connections = 4\nidle-timeout = 30\nio-timeout = 2\n\
         keepalive-interval = 7\n\
         listen = [\"[2001:db8:1::1]:5547\"]\npeers = [\"2001:db8:1::3\", \"[2001:db8:1::4]:1547\"]\n\
         pool-half = \"upper\"\n{base}"
    );
    let lq = Config::parse(&text, "x.toml").unwrap().leasequery;
    assert!(lq.restricted_requestors && lq.active && lq.active_insecure && lq.serves_tcp());
    assert_eq!(
        (
            lq.max_connections,
            lq.idle_timeout,
            lq.io_timeout,
            lq.keepalive_interval
        ),
        (4, 30, 2, 7)
    );
    assert_eq!(lq.listen, vec!["[2001:db8:1::1]:5547".parse().unwrap()]);
    assert_eq!(
        lq.peers,
        vec![
            "[2001:db8:1::3]:547".parse().unwrap(),
            "[2001:db8:1::4]:1547".parse().unwrap()
        ]
    );
    assert_eq!(lq.pool_half, Some(PoolHalf::Upper));
}

/// `max-connections-per-source` defaults to 8 (never above `max-connections`) and must lie
/// between 1 and `max-connections`; a bad value names the key and its line.
#[test]
fn leasequery_per_source_limit_is_bounded_by_the_global_one() {
    let base = "[[subnet]]\nprefix = \"2001:db8:1::/64\"\n";
    let lq = |keys: &str| {
        Config::parse(&format!("[leasequery]\n{keys}\n{base}"), "x")
            .unwrap()
            .leasequery
    };
    assert_eq!(lq("").max_connections_per_source, 8);
    assert_eq!(lq("max-connections = 4").max_connections_per_source, 4);
    assert_eq!(
        lq("max-connections-per-source = 3").max_connections_per_source,
        3
    );
    for bad in [
        "max-connections-per-source = 0",
        "max-connections = 4\nmax-connections-per-source = 5",
    ] {
        let e = err(&format!("[leasequery]\n{bad}\n{base}"));
        assert!(
            e.contains("leasequery.max-connections-per-source") && e.contains("between 1 and"),
            "{e}"
        );
    }
}

/// RFC 7653 §9.1: active leasequery MUST NOT be on by default, and running it without TLS
/// takes a separate step (`active-insecure`); peers, which need it, say so.
#[test]
fn active_leasequery_is_off_by_default_and_insecure_needs_its_own_key() {
    let base = "[[subnet]]\nprefix = \"2001:db8:1::/64\"\n";
    let lq = Config::parse(&format!("[leasequery]\nallow = [\"::1/128\"]\n{base}"), "x")
        .unwrap()
        .leasequery;
    assert!(!lq.active && !lq.active_insecure, "off unless asked for");
    let e = err(&format!("[leasequery]\nactive = true\n{base}"));
    assert!(
        e.contains("leasequery.active")
            && e.contains("line 2")
            && e.contains("active-insecure = true"),
        "{e}"
    );
    let e = err(&format!("[leasequery]\nactive-insecure = true\n{base}"));
    assert!(
        e.contains("leasequery.active-insecure") && e.contains("active = true"),
        "{e}"
    );
    let e = err(&format!(
        "[leasequery]\npeers = [\"2001:db8:1::3\"]\npool-half = \"lower\"\n{base}"
    ));
    assert!(
        e.contains("leasequery.peers")
            && e.contains("active = true")
            && e.contains("active-insecure = true"),
        "{e}"
    );
    let both = Config::parse(
        &format!("[leasequery]\nactive = true\nactive-insecure = true\n{base}"),
        "x",
    )
    .unwrap();
    assert!(both.leasequery.active && both.leasequery.active_insecure);
    assert!(crate::leasequery::LeasequerySettings::from_config(&both).active_enabled);
    assert!(!crate::leasequery::LeasequerySettings::default().active_enabled);
}

#[test]
fn peers_need_a_pool_half_and_timeouts_are_positive() {
    let e = err("[leasequery]\nallow = []\npeers = [\"2001:db8:1::3\"]\n");
    assert!(e.contains("test.toml") && e.contains("line 3"), "{e}");
    assert!(
        e.contains("leasequery.peers") && e.contains("pool-half"),
        "{e}"
    );
    let e = err("[leasequery]\nkeepalive-interval = 0\n");
    assert!(
        e.contains("leasequery.keepalive-interval") && e.contains("at least 1 second"),
        "{e}"
    );
    let e = err("[leasequery]\nidle-timeout = 0\n");
    assert!(
        e.contains("leasequery.idle-timeout") && e.contains("line 2"),
        "{e}"
    );
    let e = err("[leasequery]\npeers = [\"nonsense\"]\npool-half = \"lower\"\n");
    assert!(e.contains("peers") && e.contains("nonsense"), "{e}");
    let e = err("[leasequery]\npool-half = \"middle\"\n");
    assert!(e.contains("pool-half"), "{e}");
}

#[test]
fn pool_halves_split_every_pool_without_overlap() {
    for size in [1u128, 2, 3, 256, 1 << 16] {
        let (lo_first, lo_count) = PoolHalf::Lower.slots(size);
        let (up_first, up_count) = PoolHalf::Upper.slots(size);
        assert_eq!(lo_first, 0);
        assert_eq!(lo_first + lo_count, up_first);
        assert_eq!(up_first + up_count, size);
    }
}

#[test]
fn syntax_error_names_file_and_line() {
    let e = err("interfaces = [\"eth1\"]\n[[subnet]]\nprefix = \n");
    assert!(e.contains("test.toml"), "{e}");
    assert!(e.contains("line 3"), "{e}");
}

#[test]
fn bad_address_names_line_and_key() {
    let text = GOOD.replace("2001:db8:1::ffff\"", "2001:db8:1::fffz\"");
    let e = err(&text);
    assert!(e.contains("line 11"), "{e}");
    assert!(e.contains("key `high`"), "{e}");
}

#[test]
fn unknown_key_is_named() {
    let text = GOOD.replace("valid-lifetime", "valid-lifetme");
    let e = err(&text);
    assert!(e.contains("line 14"), "{e}");
    assert!(e.contains("valid-lifetme"), "{e}");
}

#[test]
fn wrong_type_names_key() {
    let e = err("grace-period = \"long\"\n");
    assert!(e.contains("line 1") && e.contains("grace-period"), "{e}");
}

#[test]
fn pool_outside_subnet() {
    let text = GOOD.replace("2001:db8:1::1000", "2001:db8:2::1000");
    let e = err(&text);
    assert!(e.contains("subnet[0].pools[0].low"), "{e}");
    assert!(e.contains("line 11"), "{e}");
    assert!(e.contains("outside"), "{e}");
}

#[test]
fn low_above_high() {
    let text = GOOD.replace("2001:db8:1::1000", "2001:db8:1::ffff:0");
    let e = err(&text);
    assert!(
        e.contains("subnet[0].pools[0].low") && e.contains("above"),
        "{e}"
    );
}

#[test]
fn delegated_length_shorter_than_pool() {
    let text = GOOD.replace("delegated-length = 56", "delegated-length = 32");
    let e = err(&text);
    assert!(e.contains("subnet[0].pd-pools[0].delegated-length"), "{e}");
    assert!(e.contains("line 12"), "{e}");
}

#[test]
fn overlapping_pools_across_subnets() {
    let text = format!(
        "{GOOD}\n[[subnet]]\nprefix = \"2001:db8:2::/64\"\npd-pools = [{{ prefix = \"2001:db8:8000:100::/56\", delegated-length = 60 }}]\n"
    );
    let e = err(&text);
    assert!(e.contains("subnet[1].pd-pools[0].prefix"), "{e}");
    assert!(e.contains("overlaps"), "{e}");
    assert!(e.contains("line 21"), "{e}");
}

#[test]
fn overlapping_address_ranges() {
    let text = GOOD.replace(
        "pools = [{ low = \"2001:db8:1::1000\", high = \"2001:db8:1::ffff\" }]",
        "pools = [{ low = \"2001:db8:1::1000\", high = \"2001:db8:1::ffff\" },\n { low = \"2001:db8:1::2000\", high = \"2001:db8:1::2fff\" }]",
    );
    let e = err(&text);
    assert!(
        e.contains("subnet[0].pools[1]") && e.contains("overlaps"),
        "{e}"
    );
    assert!(e.contains("line 12"), "{e}");
}

#[test]
fn duplicate_reservation() {
    let text = GOOD.replace(
        "address = \"2001:db8:1::42\" }]",
        "address = \"2001:db8:1::42\" },\n  { duid = \"000300010200000000 01\", address = \"2001:db8:1::43\" }]",
    );
    let e = err(&text);
    assert!(e.contains("subnet[0].reservations[1].duid"), "{e}");
    assert!(e.contains("line 18"), "{e}");
}

#[test]
fn host_bits_in_prefix_refused() {
    let e = err("[[subnet]]\nprefix = \"2001:db8:1::1/64\"\n");
    assert!(
        e.contains("line 2") && e.contains("prefix") && e.contains("host bits"),
        "{e}"
    );
}

#[test]
fn timers_checked() {
    let e =
        err("[[subnet]]\nprefix = \"2001:db8:1::/64\"\nrenew-timer = 900\nrebind-timer = 100\n");
    assert!(
        e.contains("subnet[0].renew-timer") && e.contains("line 3"),
        "{e}"
    );
}

#[test]
fn max_lease_time_caps_lifetimes() {
    let config = Config::parse(
        "max-lease-time = 600\n[[subnet]]\nprefix = \"2001:db8:1::/64\"\n",
        "t",
    )
    .unwrap();
    assert_eq!(config.subnets[0].valid_lifetime, 600);
    assert_eq!(config.subnets[0].preferred_lifetime, 600);
    assert!(config.subnets[0].rebind_timer <= 600);
}

/// `relay-interface-ids` and `relay-addresses` parse per subnet, and an Interface-ID or relay
/// address may select one subnet only.
#[test]
fn relay_selectors_parse_and_may_select_one_subnet_only() {
    let text = r#"
[[subnet]]
prefix = "2001:db8:1::/64"
relay-interface-ids = ["an-1/1/1:7"]
relay-addresses = ["2001:db8:5::2"]

[[subnet]]
prefix = "2001:db8:2::/64"
"#;
    let config = Config::parse(text, "r.toml").unwrap();
    assert_eq!(
        config.subnets[0].relay_interface_ids,
        vec![b"an-1/1/1:7".to_vec()]
    );
    assert_eq!(
        config.subnets[0].relay_addresses,
        vec!["2001:db8:5::2".parse::<Ipv6Addr>().unwrap()]
    );
    assert!(config.selects_by_relay_interface_id() && config.selects_by_relay_address());
    let twice = format!("{text}relay-interface-ids = [\"an-1/1/1:7\"]\n");
    assert!(
        err(&twice).contains("subnet[1].relay-interface-ids[0]"),
        "{}",
        err(&twice)
    );
    let twice = format!("{text}relay-addresses = [\"2001:db8:5::2\"]\n");
    assert!(
        err(&twice).contains("already selects subnet[0]"),
        "{}",
        err(&twice)
    );
}

/// The config_parse fuzz target's seeds (tests/fuzz/seeds/config_parse) are these configs
/// (`FUZZ_SEEDS_WRITE=1` rewrites them).
#[test]
fn good_configs_are_fuzz_seeds() {
    let lab = include_str!("../../../examples/lab.toml");
    for (name, text) in [("good", GOOD), ("example_lab", lab), ("lines", LINES_GOOD)] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fuzz/seeds/config_parse")
            .join(name);
        if std::env::var_os("FUZZ_SEEDS_WRITE").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
        }
        assert!(
            std::fs::read_to_string(&path).unwrap_or_default() == text,
            "fuzz seed {} is stale: FUZZ_SEEDS_WRITE=1 cargo test -p dhcp-user --lib rewrites it",
            path.display()
        );
    }
}

/// Found by the config_parse fuzz target: a value error whose key follows a multi-byte
/// character (here a byte-order mark) made `key_before` slice inside that character and panic.
/// It is an error naming the line.
#[test]
fn fuzz_non_ascii_before_key_is_an_error_not_a_panic() {
    // The fuzzer's input as it was; the target parses its longest UTF-8 prefix.
    let found: &[u8] = include_bytes!("fuzz_regressions/non_ascii_before_key.toml");
    let valid = found.utf8_chunks().next().unwrap().valid();
    assert!(Config::parse(valid, "fuzz.toml").is_err());
    for text in [
        "\u{feff}= 1",
        "\u{feff}state-dir = =",
        "é= 1\n",
        "[x]\nü= 1",
    ] {
        let message = err(text);
        assert!(message.contains("test.toml"), "{text:?}: {message}");
    }
}

/// `[lease-database]`: SQLite by default; PostgreSQL by url or by host/port/user/dbname.
#[test]
fn lease_database_defaults_to_sqlite_and_takes_postgresql() {
    assert_eq!(
        Config::parse(GOOD, "test.toml").unwrap().lease_database,
        LeaseDatabase::Sqlite
    );
    let by_url = format!(
        "{GOOD}\n[lease-database]\ntype = \"postgresql\"\nurl = \"postgresql://dhcp@127.0.0.1:5433/leases\"\n"
    );
    assert_eq!(
        Config::parse(&by_url, "test.toml").unwrap().lease_database,
        LeaseDatabase::Postgresql(PostgresConfig {
            conninfo: "postgresql://dhcp@127.0.0.1:5433/leases".into(),
            password_file: None,
            tls: Default::default(),
        })
    );
    let by_parts = format!(
        "{GOOD}\n[lease-database]\ntype = \"postgresql\"\nhost = \"db.example\"\nport = 5433\n\
         user = \"dhcp user\"\ndbname = \"leases\"\npassword-file = \"/etc/dhcp-user/pgpass\"\n"
    );
    assert_eq!(
        Config::parse(&by_parts, "test.toml")
            .unwrap()
            .lease_database,
        LeaseDatabase::Postgresql(PostgresConfig {
            conninfo: "host=db.example port=5433 user='dhcp user' dbname=leases".into(),
            password_file: Some("/etc/dhcp-user/pgpass".into()),
            tls: Default::default(),
        })
    );
    let sqlite = format!("{GOOD}\n[lease-database]\ntype = \"sqlite\"\n");
    assert_eq!(
        Config::parse(&sqlite, "test.toml").unwrap().lease_database,
        LeaseDatabase::Sqlite
    );
}

/// `sslmode` and `ssl-ca` (or the URL's `sslmode` and `sslrootcert`) become the TLS settings;
/// the default is libpq's `prefer`.
#[test]
fn lease_database_takes_sslmode_and_a_ca() {
    use crate::store::pg_tls::{PgTls, SslMode};
    let pg = |extra: &str| {
        let text = format!(
            "{GOOD}\n[lease-database]\ntype = \"postgresql\"\nhost = \"db.example\"\n{extra}"
        );
        match Config::parse(&text, "test.toml").unwrap().lease_database {
            LeaseDatabase::Postgresql(pg) => pg,
            LeaseDatabase::Sqlite => panic!("not PostgreSQL"),
        }
    };
    assert_eq!(pg("").tls, PgTls::default());
    assert_eq!(PgTls::default().mode, SslMode::Prefer);
    assert_eq!(
        pg("sslmode = \"verify-full\"\nssl-ca = \"/etc/ca.pem\"\n").tls,
        PgTls {
            mode: SslMode::VerifyFull,
            ca: Some("/etc/ca.pem".into()),
        }
    );
    let text = format!(
        "{GOOD}\n[lease-database]\ntype = \"postgresql\"\n\
         url = \"postgresql://db.example/leases?sslmode=verify-ca&sslrootcert=/etc/ca.pem\"\n"
    );
    let LeaseDatabase::Postgresql(by_url) =
        Config::parse(&text, "test.toml").unwrap().lease_database
    else {
        panic!("not PostgreSQL")
    };
    assert_eq!(by_url.conninfo, "postgresql://db.example/leases");
    assert_eq!(
        by_url.tls,
        PgTls {
            mode: SslMode::VerifyCa,
            ca: Some("/etc/ca.pem".into()),
        }
    );
}

/// A wrong sslmode, a verifying mode without a CA, a CA with TLS off: named with line and key.
#[test]
fn lease_database_tls_errors_name_line_and_key() {
    let base = GOOD.lines().count();
    let pg = |extra: &str| {
        err(&format!(
            "{GOOD}\n[lease-database]\ntype = \"postgresql\"\nhost = \"h\"\n{extra}"
        ))
    };
    let e = pg("sslmode = \"allow\"\n");
    assert!(
        e.contains("lease-database.sslmode")
            && e.contains("verify-full")
            && e.contains(&format!("line {}", base + 5)),
        "{e}"
    );
    let e = pg("sslmode = \"verify-full\"\n");
    assert!(
        e.contains("lease-database.ssl-ca") && e.contains("needs"),
        "{e}"
    );
    let e = pg("sslmode = \"disable\"\nssl-ca = \"/ca.pem\"\n");
    assert!(
        e.contains("lease-database.ssl-ca") && e.contains("never used"),
        "{e}"
    );
    let e = err(&format!(
        "{GOOD}\n[lease-database]\ntype = \"postgresql\"\n\
         url = \"postgresql://h/db?sslmode=require\"\nsslmode = \"require\"\n"
    ));
    assert!(
        e.contains("lease-database.sslmode") && e.contains("once"),
        "{e}"
    );
    let e = err(&format!(
        "{GOOD}\n[lease-database]\nsslmode = \"require\"\n"
    ));
    assert!(e.contains("only a PostgreSQL"), "{e}");
}

/// Wrong `[lease-database]` keys are named with their line.
#[test]
fn lease_database_errors_name_line_and_key() {
    let base = GOOD.lines().count();
    let e = err(&format!("{GOOD}\n[lease-database]\ntype = \"mysql\"\n"));
    assert!(
        e.contains("type") && e.contains(&format!("line {}", base + 3)),
        "{e}"
    );
    let e = err(&format!(
        "{GOOD}\n[lease-database]\nurl = \"postgresql://x\"\n"
    ));
    assert!(
        e.contains("lease-database.url") && e.contains("only a PostgreSQL"),
        "{e}"
    );
    assert!(e.contains(&format!("line {}", base + 3)), "{e}");
    let e = err(&format!(
        "{GOOD}\n[lease-database]\ntype = \"postgresql\"\nurl = \"postgresql://x\"\nhost = \"y\"\n"
    ));
    assert!(
        e.contains("lease-database.host") && e.contains("not both"),
        "{e}"
    );
    let e = err(&format!(
        "{GOOD}\n[lease-database]\ntype = \"postgresql\"\n"
    ));
    assert!(e.contains("needs `url` or `host`"), "{e}");
    let e = err(&format!(
        "{GOOD}\n[lease-database]\ntype = \"postgresql\"\nurl = \"host=x port=notaport\"\n"
    ));
    assert!(
        e.contains("lease-database.url") && e.contains(&format!("line {}", base + 4)),
        "{e}"
    );
    let e = err(&format!(
        "{GOOD}\n[lease-database]\ntype = \"postgresql\"\nhots = \"x\"\n"
    ));
    assert!(e.contains("hots"), "{e}");
}

/// `interfaces` takes names and patterns (an interface group); the old `interface` key still
/// works; patterns match with `*` and `?`.
#[test]
fn interface_groups_parse_and_match() {
    let text = "[[subnet]]\nprefix = \"2001:db8:1::/64\"\ninterfaces = [\"eth1\", \"veth-a*\"]\n";
    let config = Config::parse(text, "g.toml").unwrap();
    let subnet = &config.subnets[0];
    assert!(subnet.serves_interface("eth1"));
    assert!(subnet.serves_interface("veth-a17"));
    assert!(subnet.serves_interface("veth-a"));
    assert!(!subnet.serves_interface("veth-b1"));
    assert!(!subnet.serves_interface("eth10"));
    assert!(interface_matches("eth?.10", "eth1.10"));
    assert!(!interface_matches("eth?.10", "eth12.10"));
    let e = err(
        "[[subnet]]\nprefix = \"2001:db8:1::/64\"\ninterface = \"eth1\"\ninterfaces = [\"eth2\"]\n",
    );
    assert!(
        e.contains("subnet[0].interface") && e.contains("line 3") && e.contains("not both"),
        "{e}"
    );
}

/// One interface in two subnets is refused unless they are one shared network; the shared
/// network's subnets come in file order after the one serving the client.
#[test]
fn shared_networks_group_subnets_of_one_link() {
    let two = "[[subnet]]\nprefix = \"2001:db8:1::/64\"\ninterface = \"eth1\"\n\
               [[subnet]]\nprefix = \"2001:db8:2::/64\"\ninterface = \"eth1\"\n";
    let e = err(two);
    assert!(
        e.contains("subnet[1].interfaces[0]")
            && e.contains("shared-network")
            && e.contains("line 6"),
        "{e}"
    );
    let shared = "[[subnet]]\nprefix = \"2001:db8:1::/64\"\ninterface = \"eth1\"\nshared-network = \"campus\"\n\
                  [[subnet]]\nprefix = \"2001:db8:3::/64\"\n\
                  [[subnet]]\nprefix = \"2001:db8:2::/64\"\ninterface = \"eth1\"\nshared-network = \"campus\"\n";
    let config = Config::parse(shared, "s.toml").unwrap();
    assert_eq!(config.shared_with(0), vec![0, 2]);
    assert_eq!(config.shared_with(2), vec![2, 0]);
    assert_eq!(config.shared_with(1), vec![1]);
    let e = err("[[subnet]]\nprefix = \"2001:db8:1::/64\"\nshared-network = \" \"\n");
    assert!(
        e.contains("subnet[0].shared-network") && e.contains("line 3"),
        "{e}"
    );
}

/// Reservations by Remote-ID, Interface-ID, Subscriber-ID and option 79 parse to the option
/// bodies relays send; exactly one client per reservation, each line reserved once.
#[test]
fn reservations_by_line() {
    let text = r#"
[[subnet]]
prefix = "2001:db8:1::/64"
pools = [{ low = "2001:db8:1::1000", high = "2001:db8:1::ffff" }]
reservations = [
  { remote-id = { enterprise = 3561, id = "aa:bb" }, prefix = "2001:db8:99::/56" },
  { interface-id = "port-7", address = "2001:db8:1::7" },
  { subscriber-id = "sub-42", address = "2001:db8:1::42" },
  { client-linklayer-address = "02:00:00:00:00:09", address = "2001:db8:1::9" },
]
"#;
    let config = Config::parse(text, "r.toml").unwrap();
    let clients: Vec<_> = config.subnets[0]
        .reservations
        .iter()
        .map(|r| r.client.clone())
        .collect();
    let line = |kind, value: &[u8]| {
        ReservedClient::Line(LineId {
            kind,
            value: value.to_vec(),
        })
    };
    assert_eq!(
        clients,
        vec![
            line(LineKind::RemoteId, &[0, 0, 0x0d, 0xe9, 0xaa, 0xbb]),
            line(LineKind::InterfaceId, b"port-7"),
            line(LineKind::SubscriberId, b"sub-42"),
            line(LineKind::ClientLinklayerAddress, &[0, 1, 2, 0, 0, 0, 0, 9]),
        ]
    );
    assert!(config.reserves_by_line());

    let e = err(&text.replace(
        "{ interface-id = \"port-7\",",
        "{ interface-id = \"port-7\", duid = \"0001\",",
    ));
    assert!(
        e.contains("subnet[0].reservations[1]")
            && e.contains("names one client")
            && e.contains("line 7"),
        "{e}"
    );
    let e = err(&text.replace("{ interface-id = \"port-7\",", "{"));
    assert!(
        e.contains("subnet[0].reservations[1]") && e.contains("names its client"),
        "{e}"
    );
    let e = err(&text
        .replace("sub-42", "port-7")
        .replace("subscriber-id", "interface-id"));
    assert!(
        e.contains("subnet[0].reservations[2].interface-id") && e.contains("line already reserved"),
        "{e}"
    );
    let e = err(&text.replace("02:00:00:00:00:09", "02:00:00"));
    assert!(
        e.contains("client-linklayer-address") && e.contains("MAC") && e.contains("line 9"),
        "{e}"
    );
}

/// `line-client-limit` and `line-sticky` need `line-identity`; sticky is on with it by default.
#[test]
fn line_limit_needs_a_line_identity() {
    let base = "[[subnet]]\nprefix = \"2001:db8:1::/64\"\n";
    let e = err(&format!("line-client-limit = 2\n{base}"));
    assert!(
        e.contains("key `line-client-limit`")
            && e.contains("line-identity")
            && e.contains("line 1"),
        "{e}"
    );
    let e = err(&format!(
        "line-identity = \"remote-id\"\nline-client-limit = 0\n{base}"
    ));
    assert!(
        e.contains("line-client-limit") && e.contains("at least 1") && e.contains("line 2"),
        "{e}"
    );
    let e = err(&format!("line-identity = \"circuit\"\n{base}"));
    assert!(e.contains("line-identity") && e.contains("line 1"), "{e}");
    let config = Config::parse(
        &format!("line-identity = \"remote-id\"\nline-client-limit = 1\n{base}"),
        "l.toml",
    )
    .unwrap();
    assert_eq!(config.line_identity, Some(LineKind::RemoteId));
    assert_eq!(config.line_client_limit, Some(1));
    assert!(config.line_sticky);
    let config = Config::parse(
        &format!("line-identity = \"interface-id\"\nline-sticky = false\n{base}"),
        "l.toml",
    )
    .unwrap();
    assert!(!config.line_sticky);
}

/// `[leasequery]` with TLS: `tls` PEM paths substituted into `keys`, then the subnet.
fn tls_config(keys: &str) -> String {
    format!(
        "[leasequery]\nallow = [\"::1/128\"]\n{keys}\n[[subnet]]\nprefix = \"2001:db8:1::/64\"\n"
    )
}

/// The TLS keys load their files: our chain and key, the trust anchors; mutual TLS and
/// clear queries allowed by default; with TLS, `active = true` needs no `active-insecure`.
#[test]
fn tls_keys_load_their_files_and_let_active_run_without_insecure() {
    let pki = crate::tls::tests::TestPki::new("config");
    let (cert, key) = pki.issue("a", &["2001:db8:1::1"]);
    let text = tls_config(&format!(
        "active = true\ntls-certificate = \"{}\"\ntls-private-key = \"{}\"\ntls-ca = \"{}\"",
        cert.display(),
        key.display(),
        pki.ca().display()
    ));
    let config = Config::parse(&text, "x").unwrap();
    let tls = config.leasequery.tls.as_ref().expect("TLS configured");
    assert_eq!(tls.certificate, cert);
    assert_eq!(tls.anchors.len(), 1);
    assert!(!tls.required, "clear queries allowed unless tls-required");
    assert_eq!(
        tls.client_certificates,
        crate::tls::ClientCertificates::Required
    );
    let settings = crate::leasequery::LeasequerySettings::from_config(&config);
    assert!(settings.active_enabled && settings.active_requires_tls);
    assert!(!settings.tls_required);
    assert!(crate::leasequery::server_tls(&config.leasequery)
        .unwrap()
        .is_some());

    let text = tls_config(&format!(
        "active = true\nactive-insecure = true\ntls-required = true\n\
         tls-require-client-certificate = false\n\
         tls-certificate = \"{}\"\ntls-private-key = \"{}\"",
        cert.display(),
        key.display(),
    ));
    let config = Config::parse(&text, "x").unwrap();
    let tls = config.leasequery.tls.as_ref().unwrap();
    assert!(tls.required && tls.anchors.is_empty());
    let settings = crate::leasequery::LeasequerySettings::from_config(&config);
    assert!(settings.tls_required && !settings.active_requires_tls);
}

/// A missing, unreadable or bad PEM file is an error naming its key and line, never a panic;
/// so is a key that is not the certificate's.
#[test]
fn a_bad_pem_file_is_an_error_naming_its_key() {
    let pki = crate::tls::tests::TestPki::new("config-bad");
    let (cert, key) = pki.issue("a", &["2001:db8:1::1"]);
    let (_, other_key) = pki.issue("b", &["2001:db8:1::1"]);
    let junk = pki.write("junk.pem", "not pem at all\n");
    let missing = pki.dir.join("missing.pem");
    let ca = pki.ca();
    let cases = [
        (
            &missing,
            &key,
            &ca,
            "leasequery.tls-certificate",
            "missing.pem",
        ),
        (
            &junk,
            &key,
            &ca,
            "leasequery.tls-certificate",
            "no certificate",
        ),
        (
            &cert,
            &missing,
            &ca,
            "leasequery.tls-private-key",
            "cannot read",
        ),
        (
            &cert,
            &cert,
            &ca,
            "leasequery.tls-private-key",
            "no private key",
        ),
        (
            &cert,
            &other_key,
            &ca,
            "leasequery.tls-private-key",
            "not the certificate's",
        ),
        (&cert, &key, &missing, "leasequery.tls-ca", "missing.pem"),
        (&cert, &key, &junk, "leasequery.tls-ca", "junk.pem"),
    ];
    for (certificate, private_key, anchors, want_key, want_text) in cases {
        let text = tls_config(&format!(
            "tls-certificate = \"{}\"\ntls-private-key = \"{}\"\ntls-ca = \"{}\"",
            certificate.display(),
            private_key.display(),
            anchors.display()
        ));
        let e = err(&text);
        assert!(
            e.contains("test.toml") && e.contains(want_key) && e.contains(want_text),
            "{want_key}: {e}"
        );
        assert!(e.contains("line "), "{e}");
    }
}

/// The TLS keys go together: a certificate needs its key and the other way round, the other
/// `tls-*` keys need both, and whoever's certificate is verified needs `tls-ca`.
#[test]
fn tls_keys_go_together() {
    let pki = crate::tls::tests::TestPki::new("config-pairs");
    let (cert, key) = pki.issue("a", &["2001:db8:1::1"]);
    let e = err(&tls_config(&format!(
        "tls-certificate = \"{}\"",
        cert.display()
    )));
    assert!(
        e.contains("leasequery.tls-certificate") && e.contains("tls-private-key"),
        "{e}"
    );
    let e = err(&tls_config(&format!(
        "tls-private-key = \"{}\"",
        key.display()
    )));
    assert!(
        e.contains("leasequery.tls-private-key") && e.contains("tls-certificate"),
        "{e}"
    );
    let e = err(&tls_config("tls-required = true"));
    assert!(
        e.contains("leasequery.tls-required") && e.contains("line 3"),
        "{e}"
    );
    let e = err(&tls_config(&format!("tls-ca = \"{}\"", pki.ca().display())));
    assert!(
        e.contains("leasequery.tls-ca") && e.contains("tls-certificate"),
        "{e}"
    );
    let identity = format!(
        "tls-certificate = \"{}\"\ntls-private-key = \"{}\"",
        cert.display(),
        key.display()
    );
    // Mutual TLS (the default) with nothing to verify against.
    let e = err(&tls_config(&identity));
    assert!(
        e.contains("leasequery.tls-ca") && e.contains("tls-require-client-certificate"),
        "{e}"
    );
    // Peers are always verified.
    let e = err(&tls_config(&format!(
        "{identity}\ntls-require-client-certificate = false\nactive = true\n\
         peers = [\"2001:db8:1::3\"]\npool-half = \"lower\""
    )));
    assert!(
        e.contains("leasequery.tls-ca") && e.contains("peers"),
        "{e}"
    );
    let with_ca = format!("{identity}\ntls-ca = \"{}\"", pki.ca().display());
    let e = err(&tls_config(&format!(
        "{with_ca}\ntls-peer-name = \"b.example\""
    )));
    assert!(
        e.contains("leasequery.tls-peer-name") && e.contains("peers"),
        "{e}"
    );
    let e = err(&tls_config(&format!(
        "{with_ca}\nactive = true\npeers = [\"2001:db8:1::3\"]\npool-half = \"lower\"\n\
         tls-peer-name = \"not a name\""
    )));
    assert!(
        e.contains("leasequery.tls-peer-name") && e.contains("not a DNS name"),
        "{e}"
    );
    // A pair over TLS: no active-insecure needed, the peer name kept.
    let config = Config::parse(
        &tls_config(&format!(
            "{with_ca}\nactive = true\npeers = [\"2001:db8:1::3\"]\npool-half = \"lower\"\n\
             tls-peer-name = \"b.example\""
        )),
        "x",
    )
    .unwrap();
    let peer = crate::leasequery::peer_tls(&config.leasequery)
        .unwrap()
        .unwrap();
    assert!(peer.server_name.is_some());
}

/// `bindings`, `stats` and `clear` find the state directory without reading the TLS files
/// (an operator in the control socket's group need not read the server's key).
#[test]
fn the_state_directory_is_found_without_reading_the_tls_files() {
    let pki = crate::tls::tests::TestPki::new("state-dir");
    let path = pki.write(
        "server.toml",
        "state-dir = \"/var/lib/elsewhere\"\n[leasequery]\n\
         tls-certificate = \"/nonexistent/a.pem\"\ntls-private-key = \"/nonexistent/a.key\"\n",
    );
    assert_eq!(
        Config::load_state_dir(&path).unwrap(),
        PathBuf::from("/var/lib/elsewhere")
    );
    let e = Config::load(&path).unwrap_err().to_string();
    assert!(e.contains("leasequery.tls-certificate"), "{e}");
    let bare = pki.write("bare.toml", "interfaces = [\"eth1\"]\n");
    assert_eq!(
        Config::load_state_dir(&bare).unwrap(),
        PathBuf::from(DEFAULT_STATE_DIR)
    );
    let broken = pki.write("broken.toml", "state-dir = \n");
    assert!(Config::load_state_dir(&broken).is_err());
}

/// `[routes]` is off by default; its keys parse, and a kernel protocol or a reserved table is
/// refused with the key and line named.
#[test]
fn routes_parse_with_defaults_and_refuse_kernel_numbers() {
    let config = Config::parse(GOOD, "test.toml").unwrap();
    assert_eq!(config.routes, RoutesConfig::default());
    assert!(!config.routes.enabled);
    let text = format!(
        "{GOOD}\n[routes]\nenabled = true\ntable = 100\nprotocol = 201\nmetric = 10\naddresses = true\n"
    );
    let routes = Config::parse(&text, "test.toml").unwrap().routes;
    assert_eq!(
        routes,
        RoutesConfig {
            enabled: true,
            table: 100,
            protocol: 201,
            metric: 10,
            addresses: true,
        }
    );
    let message = err(&format!("{GOOD}\n[routes]\nenabled = true\nprotocol = 4\n"));
    assert!(
        message.contains("routes.protocol") && message.contains("5 to 255"),
        "{message}"
    );
    let message = err(&format!("{GOOD}\n[routes]\ntable = 255\n"));
    assert!(message.contains("routes.table"), "{message}");
    let message = err(&format!("{GOOD}\n[routes]\nenable = true\n"));
    assert!(message.contains("enable"), "{message}");
}

/// `line-pass-budget` turns admission per line on, `line-pass-burst` defaults to it; a burst
/// of 0, or one without a budget, is refused naming the key and line.
#[test]
fn line_pass_budget_and_burst() {
    let base = "[[subnet]]\nprefix = \"2001:db8:1::/64\"\n";
    let config = Config::parse(base, "l.toml").unwrap();
    assert_eq!((config.line_pass_budget, config.line_pass_burst), (0, 0));
    let config = Config::parse(&format!("line-pass-budget = 20\n{base}"), "l.toml").unwrap();
    assert_eq!((config.line_pass_budget, config.line_pass_burst), (20, 20));
    let config = Config::parse(
        &format!("line-pass-budget = 20\nline-pass-burst = 5\n{base}"),
        "l.toml",
    )
    .unwrap();
    assert_eq!((config.line_pass_budget, config.line_pass_burst), (20, 5));
    let e = err(&format!(
        "line-pass-budget = 20\nline-pass-burst = 0\n{base}"
    ));
    assert!(
        e.contains("key `line-pass-burst`") && e.contains("at least 1") && e.contains("line 2"),
        "{e}"
    );
    let e = err(&format!("line-pass-burst = 3\n{base}"));
    assert!(
        e.contains("key `line-pass-burst`")
            && e.contains("line-pass-budget")
            && e.contains("line 1"),
        "{e}"
    );
}
