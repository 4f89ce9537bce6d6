use super::value::encode;
use super::*;

fn v(text: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {text}")).unwrap()["v"].clone()
}

fn opt(code: u16, data: &[u8], always_send: bool) -> ConfiguredOption {
    ConfiguredOption {
        code,
        data: data.to_vec(),
        always_send,
    }
}

/// Addresses are 16 bytes each, in the order written (RFC 3646 section 3, RFC 8415 section 21).
#[test]
fn address_lists_are_sixteen_bytes_each() {
    let body = encode(Kind::Addresses, &v(r#"["2001:db8::1", "2001:db8::2"]"#)).unwrap();
    assert_eq!(body.len(), 32);
    assert_eq!(
        &body[..16],
        &"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets()
    );
    assert_eq!(encode(Kind::Addresses, &v(r#""::1""#)).unwrap().len(), 16);
}

/// Domain names are in DNS wire format, uncompressed (RFC 1035 section 3.1).
#[test]
fn domain_names_are_in_dns_wire_format() {
    let body = encode(Kind::Domains, &v(r#"["example.com", "a.b"]"#)).unwrap();
    assert_eq!(body, b"\x07example\x03com\x00\x01a\x01b\x00");
    // RFC 6334 section 3: the AFTR-Name is one FQDN.
    let aftr = encode(Kind::Domain, &v(r#""aftr.example.net""#)).unwrap();
    assert_eq!(aftr, b"\x04aftr\x07example\x03net\x00");
}

/// Integers are network order and bounded by their width.
#[test]
fn integers_are_network_order_and_bounded() {
    assert_eq!(encode(Kind::U32, &v("3600")).unwrap(), [0, 0, 0x0e, 0x10]);
    assert_eq!(encode(Kind::U16, &v("258")).unwrap(), [1, 2]);
    assert_eq!(encode(Kind::U8, &v("7")).unwrap(), [7]);
    assert!(encode(Kind::U8, &v("256")).unwrap_err().contains("0..=255"));
    assert!(encode(Kind::U32, &v("-1")).is_err());
}

/// The NTP server option carries one sub-option per time source (RFC 5908 section 4).
#[test]
fn ntp_server_sub_options_follow_rfc_5908() {
    let body = encode(
        Kind::NtpServer,
        &v(r#"[{ server = "2001:db8::123" }, { multicast = "ff05::101" }, { fqdn = "ntp.example" }]"#),
    )
    .unwrap();
    let mut want = vec![0, 1, 0, 16];
    want.extend_from_slice(&"2001:db8::123".parse::<Ipv6Addr>().unwrap().octets());
    want.extend_from_slice(&[0, 2, 0, 16]);
    want.extend_from_slice(&"ff05::101".parse::<Ipv6Addr>().unwrap().octets());
    want.extend_from_slice(&[0, 3, 0, 13]);
    want.extend_from_slice(b"\x03ntp\x07example\x00");
    assert_eq!(body, want);
    assert!(
        encode(Kind::NtpServer, &v(r#"[{ multicast = "2001:db8::1" }]"#))
            .unwrap_err()
            .contains("not a multicast")
    );
    assert!(encode(Kind::NtpServer, &v("[]")).is_err());
}

/// Vendor options: enterprise number, then code/length/data sub-options (RFC 8415 section 21.17).
#[test]
fn vendor_opts_carry_the_enterprise_and_sub_options() {
    let body = encode(
        Kind::VendorOpts,
        &v(r#"{ enterprise = 4491, options = [{ code = 1, hex = "0a0b" }, { code = 2, text = "hi" }] }"#),
    )
    .unwrap();
    assert_eq!(
        body,
        [0, 0, 0x11, 0x8b, 0, 1, 0, 2, 0x0a, 0x0b, 0, 2, 0, 2, b'h', b'i']
    );
    assert!(encode(Kind::VendorOpts, &v("{ options = [] }"))
        .unwrap_err()
        .contains("enterprise"));
}

/// DNR: priority, ADN length, ADN, then address length, addresses, SvcParams (RFC 9463 section
/// 4.1); ADN-only mode stops after the ADN.
#[test]
fn dnr_follows_rfc_9463() {
    let body = encode(
        Kind::Dnr,
        &v(r#"{ priority = 1, adn = "dot.example", addresses = ["2001:db8::53"], svc-params = "0001000403646f74" }"#),
    )
    .unwrap();
    let mut want = vec![0, 1, 0, 13];
    want.extend_from_slice(b"\x03dot\x07example\x00");
    want.extend_from_slice(&[0, 16]);
    want.extend_from_slice(&"2001:db8::53".parse::<Ipv6Addr>().unwrap().octets());
    want.extend_from_slice(&[0, 1, 0, 4, 3, b'd', b'o', b't']);
    assert_eq!(body, want);
    let adn_only = encode(Kind::Dnr, &v(r#"{ priority = 2, adn = "r.example" }"#)).unwrap();
    assert_eq!(adn_only, b"\x00\x02\x00\x0b\x01r\x07example\x00");
    assert!(encode(Kind::Dnr, &v(r#"{ priority = 0, adn = "r.example" }"#)).is_err());
    assert!(encode(
        Kind::Dnr,
        &v(r#"{ priority = 1, adn = "r.example", svc-params = "00" }"#)
    )
    .unwrap_err()
    .contains("addresses"));
}

/// The registry knows each standard option by name and code, once.
#[test]
fn the_registry_names_each_code_once() {
    for (name, code) in [
        ("vendor-opts", 17),
        ("sip-server-d", 21),
        ("sip-server-a", 22),
        ("dns-servers", 23),
        ("domain-search", 24),
        ("sntp-servers", 31),
        ("information-refresh-time", 32),
        ("ntp-server", 56),
        ("aftr-name", 64),
        ("sol-max-rt", 82),
        ("inf-max-rt", 83),
        ("captive-portal", 103),
        ("dnr", 144),
    ] {
        assert_eq!(by_name(name).unwrap().code, code, "{name}");
        assert_eq!(by_code(code).unwrap().name, name);
    }
    for d in REGISTRY {
        assert_eq!(REGISTRY.iter().filter(|o| o.code == d.code).count(), 1);
    }
}

/// The most specific level replaces a code, every instance of it; the result is in code order.
#[test]
fn the_most_specific_level_replaces_a_code() {
    let global = [opt(56, b"g", false), opt(23, b"g", false)];
    let subnet = [opt(144, b"s1", false), opt(144, b"s2", false)];
    let reservation = [opt(56, b"r", true)];
    let merged = merge([&global[..], &subnet[..], &reservation[..]]);
    assert_eq!(
        merged,
        [
            opt(23, b"g", false),
            opt(56, b"r", true),
            opt(144, b"s1", false),
            opt(144, b"s2", false)
        ]
    );
    let again = merge([&merged[..], &[opt(144, b"p", false)][..]]);
    assert_eq!(again.iter().filter(|o| o.code == 144).count(), 1);
}

/// A reply carries what the ORO lists or is `always-send`; Information Refresh Time and
/// INF_MAX_RT only in a Reply to an Information-Request (RFC 8415 sections 21.23, 21.25).
#[test]
fn the_sending_rule_follows_the_oro_and_the_message() {
    let ntp = opt(56, b"x", false);
    assert!(sent_in(&ntp, MSG_RENEW, &[56]));
    assert!(!sent_in(&ntp, MSG_RENEW, &[23]));
    assert!(sent_in(&opt(56, b"x", true), MSG_RENEW, &[]));
    let refresh = opt(OPT_INFORMATION_REFRESH_TIME, &[0, 0, 1, 0], false);
    assert!(!sent_in(&refresh, MSG_RENEW, &[32]));
    assert!(sent_in(&refresh, MSG_INFORMATION_REQUEST, &[32]));
    assert!(!sent_in(
        &opt(OPT_INF_MAX_RT, &[0; 4], false),
        MSG_SOLICIT,
        &[83]
    ));
    assert!(sent_in(
        &opt(OPT_SOL_MAX_RT, &[0; 4], false),
        MSG_SOLICIT,
        &[82]
    ));
}

/// RFC 6603 section 4.2: prefix-len, then the subnet ID bits past the delegated length, in
/// `(prefix-len - delegated - 1) / 8 + 1` bytes, left aligned.
#[test]
fn pd_exclude_encodes_the_subnet_id_after_the_delegated_length() {
    // A /56 with its /64 number 0x01 excluded: one byte, 0x01.
    let x = PdExclude {
        excluded: "2001:db8:8000:1::/64".parse().unwrap(),
    };
    let delegated: Ipv6Addr = "2001:db8:8000:4500::".parse().unwrap();
    assert_eq!(x.body(delegated, 56), [64, 0x01]);
    assert_eq!(
        x.within(delegated, 56),
        "2001:db8:8000:4501::/64".parse::<Ipv6Net>().unwrap()
    );
    // A /60 excluded from a /48: 12 bits, two bytes, the last four bits zero.
    let x = PdExclude {
        excluded: "2001:db8:1:abc0::/60".parse().unwrap(),
    };
    assert_eq!(
        x.body("2001:db8:7::".parse().unwrap(), 48),
        [60, 0xab, 0xc0]
    );
    // One bit: a /57 of a /56.
    let x = PdExclude {
        excluded: "2001:db8:0:80::/57".parse().unwrap(),
    };
    assert_eq!(x.body("2001:db8:0:100::".parse().unwrap(), 56), [57, 0x80]);
}
