//! Option entries at every level: typed values, merging, and errors naming file, line and key.

use super::super::Config;
use crate::options::ConfiguredOption;

const BASE: &str = r#"
state-dir = "/tmp/x"
interfaces = ["eth1"]
"#;

fn parse(rest: &str) -> Result<Config, String> {
    Config::parse(&format!("{BASE}{rest}"), "opts.toml").map_err(|e| e.to_string())
}

fn err(rest: &str) -> String {
    parse(rest).unwrap_err()
}

fn codes(options: &[ConfiguredOption]) -> Vec<u16> {
    options.iter().map(|o| o.code).collect()
}

/// The example of docs/configuration.md (Options) parses, and its levels come out as written.
#[test]
fn the_documented_example_parses() {
    let doc = include_str!("../../../../docs/configuration.md");
    let section = &doc[doc.find("### Options").unwrap()..];
    let start = section.find("```toml\n").unwrap() + 8;
    let example = &section[start..start + section[start..].find("```").unwrap()];
    let config = parse(example).unwrap();
    assert_eq!(codes(&config.options), [56, 64]);
    let subnet = &config.subnets[0];
    // Global 56 and 64, the subnet's 23 (dns-servers), 17 and 250, in code order.
    assert_eq!(codes(&subnet.options), [17, 23, 56, 64, 250]);
    assert!(
        subnet
            .options
            .iter()
            .find(|o| o.code == 64)
            .unwrap()
            .always_send
    );
    assert_eq!(
        subnet.options.iter().find(|o| o.code == 250).unwrap().data,
        b"rack-7"
    );
    assert!(subnet.pool_options[0].is_empty());
    assert_eq!(codes(&subnet.pool_options[1]), [31]);
    assert_eq!(codes(&subnet.reservations[0].options), [56]);
    let x = subnet.pd_pools[0].exclude.unwrap();
    assert_eq!(x.excluded.to_string(), "2001:db8:8000:1::/64");
    let (pool, reservation) = subnet.lease_option_levels("2001:db8:1::42".parse().unwrap(), None);
    assert!(pool.is_none() && reservation.is_some());
    let (pool, _) = subnet.lease_option_levels("2001:db8:1::2001".parse().unwrap(), None);
    assert_eq!(codes(pool.unwrap()), [31]);
}

/// A subnet's own entry of a code replaces the global one.
#[test]
fn a_subnet_option_replaces_the_global_one() {
    let config = parse(
        r#"
[[option]]
name = "sntp-servers"
value = "2001:db8::1"
[[subnet]]
prefix = "2001:db8:1::/64"
[[subnet.option]]
code = 31
value = ["2001:db8::2"]
"#,
    )
    .unwrap();
    let sntp = &config.subnets[0].options;
    assert_eq!(sntp.len(), 1);
    assert_eq!(
        sntp[0].data,
        "2001:db8::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
    );
}

/// A bad value names the file, the line and the key path of the value.
#[test]
fn a_bad_value_names_file_line_and_key() {
    let e = err(r#"
[[subnet]]
prefix = "2001:db8:1::/64"
[[subnet.option]]
name = "ntp-server"
value = [{ server = "2001:db8::1" }, { multicast = "2001:db8::2" }]
"#);
    assert!(
        e.starts_with("config file opts.toml, line 9: key `subnet[0].option[0].value`"),
        "{e}"
    );
    assert!(
        e.contains("[1]: 2001:db8::2 is not a multicast address"),
        "{e}"
    );
}

/// Unknown names, unknown types, codes the server owns, and name plus code are refused.
#[test]
fn names_codes_and_types_are_checked() {
    let e = err("[[option]]\nname = \"ntp\"\nvalue = 1\n");
    assert!(
        e.contains("key `option[0].name`: no option is named `ntp`; known names: vendor-opts"),
        "{e}"
    );
    let e = err("[[option]]\ncode = 3\nhex = \"00\"\n");
    assert!(
        e.contains("key `option[0].code`: option 3 is the server's own"),
        "{e}"
    );
    let e = err("[[option]]\ncode = 250\nvalue = 1\n");
    assert!(e.contains("give its `type`, or its bytes as `hex`"), "{e}");
    let e = err("[[option]]\ncode = 250\ntype = \"float\"\nvalue = 1\n");
    assert!(
        e.contains("key `option[0].type`: unknown type `float`"),
        "{e}"
    );
    let e = err("[[option]]\ncode = 56\ntype = \"hex\"\nvalue = \"00\"\n");
    assert!(e.contains("leave `type` out"), "{e}");
    let e = err("[[option]]\nname = \"sol-max-rt\"\ncode = 82\nvalue = 1\n");
    assert!(e.contains("give `name` or `code`, not both"), "{e}");
    let e = err("[[option]]\nname = \"sol-max-rt\"\n");
    assert!(e.contains("an option needs its `value`"), "{e}");
    let config = parse("[[option]]\ncode = 250\ntype = \"u16\"\nvalue = 513\n[[option]]\ncode = 251\nhex = \"de:ad\"\n").unwrap();
    assert_eq!(config.options[0].data, [2, 1]);
    assert_eq!(config.options[1].data, [0xde, 0xad]);
}

/// RFC 8415 sections 21.24, 21.25: SOL_MAX_RT and INF_MAX_RT go only to a client that asked:
/// `always-send` is refused for them.
#[test]
fn sol_max_rt_may_not_be_always_sent() {
    let e = err("[[option]]\nname = \"sol-max-rt\"\nvalue = 3600\nalways-send = true\n");
    assert!(
        e.contains("line 7: key `option[0].always-send`: option 82 goes only to a client"),
        "{e}"
    );
}

/// One code per level, but for vendor-opts and dnr (one per vendor, one per resolver); and a
/// shorthand key and an entry of the same code conflict.
#[test]
fn a_code_appears_once_per_level_but_vendor_opts_and_dnr() {
    let e = err("[[option]]\nname = \"aftr-name\"\nvalue = \"a.example\"\n[[option]]\ncode = 64\nvalue = \"b.example\"\n");
    assert!(
        e.contains("key `option[1]`: option 64 is already set at this level"),
        "{e}"
    );
    let config = parse(
        r#"
[[option]]
name = "dnr"
value = { priority = 1, adn = "a.example" }
[[option]]
name = "dnr"
value = { priority = 2, adn = "b.example" }
"#,
    )
    .unwrap();
    assert_eq!(codes(&config.options), [144, 144]);
    let e = err(r#"
[[subnet]]
prefix = "2001:db8:1::/64"
dns-servers = ["2001:db8::53"]
[[subnet.option]]
name = "dns-servers"
value = ["2001:db8::54"]
"#);
    assert!(
        e.contains("key `subnet[0].option[0]`: option 23 is set by `dns-servers` already"),
        "{e}"
    );
}

/// RFC 6603 section 4.2: the excluded prefix is longer than the delegated prefix (and lies in
/// the pool, hence within each delegated prefix).
#[test]
fn an_excluded_prefix_must_be_longer_and_inside_the_pool() {
    let pool = |x: &str| {
        format!(
            "[[subnet]]\nprefix = \"2001:db8:1::/64\"\npd-pools = [{{ prefix = \"2001:db8:8000::/40\", delegated-length = 56, excluded-prefix = \"{x}\" }}]\n"
        )
    };
    let e = err(&pool("2001:db8:8000::/56"));
    assert!(
        e.contains("key `subnet[0].pd-pools[0].excluded-prefix`: an excluded prefix is longer"),
        "{e}"
    );
    let e = err(&pool("2001:db8:9000::/64"));
    assert!(
        e.contains("is outside the pool's prefix 2001:db8:8000::/40"),
        "{e}"
    );
    assert!(parse(&pool("2001:db8:8000:ff::/64")).is_ok());
}

/// Options in pools, pd-pools and reservations are kept per level, not merged into the subnet.
#[test]
fn pool_and_reservation_options_stay_at_their_level() {
    let config = parse(
        r#"
[[subnet]]
prefix = "2001:db8:1::/64"
pools = [{ low = "2001:db8:1::10", high = "2001:db8:1::20", option = [{ name = "aftr-name", value = "p.example" }] }]
pd-pools = [{ prefix = "2001:db8:8000::/40", delegated-length = 56, option = [{ name = "sntp-servers", value = "::1" }] }]
reservations = [{ duid = "0001", prefix = "2001:db8:9::/56", option = [{ code = 250, hex = "01" }] }]
"#,
    )
    .unwrap();
    let s = &config.subnets[0];
    assert!(s.options.is_empty());
    assert_eq!(codes(&s.pool_options[0]), [64]);
    assert_eq!(codes(&s.pd_pool_options[0]), [31]);
    let (pool, res) = s.lease_option_levels("2001:db8:9::".parse().unwrap(), Some(56));
    assert!(pool.is_none());
    assert_eq!(codes(res.unwrap()), [250]);
    let (pool, res) = s.lease_option_levels("2001:db8:8000:100::".parse().unwrap(), Some(56));
    assert_eq!(codes(pool.unwrap()), [31]);
    assert!(res.is_none());
    let e = err("[[subnet]]\nprefix = \"2001:db8:1::/64\"\nreservations = [{ duid = \"0001\", address = \"2001:db8:1::5\", option = [{ name = \"dnr\", value = { priority = 0, adn = \"x.example\" } }] }]\n");
    assert!(
        e.contains("key `subnet[0].reservations[0].option[0].value`: priority: 0"),
        "{e}"
    );
}
