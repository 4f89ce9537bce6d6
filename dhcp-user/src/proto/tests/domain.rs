//! Domain names: the domain-list option decoded and encoded (one encoder, shared with the fast path).

use super::*;

#[test]
fn domain_list_decoding() {
    let good = decode_ok(&with_domain_list(b"\x01a\x02bc\x00\x04corp\x00"));
    assert_eq!(
        good.options()[0],
        DhcpOption::DomainList(vec!["a.bc".into(), "corp".into()])
    );
    let bad: &[&[u8]] = &[
        b"\x07example",       // no root label
        b"\x07exam",          // label past the end
        b"\xc0\x0c",          // compression pointer (RFC 8415 §10: MUST NOT)
        b"\x00",              // root name alone
        b"\x03a.b\x00",       // '.' inside a label
        b"\x03a b\x00",       // space
        b"\x03\xc3\xa9a\x00", // non-ASCII
    ];
    for body in bad {
        assert_eq!(
            reason(&with_domain_list(body)),
            "bad_domain_name",
            "{body:?}"
        );
    }
    // 255-byte limit on a whole name: 4 labels of 63 = 4 * 64 + 1 = 257 bytes.
    let mut long = Vec::new();
    for _ in 0..4 {
        long.push(63);
        long.extend_from_slice(&[b'a'; 63]);
    }
    long.push(0);
    assert_eq!(reason(&with_domain_list(&long)), "bad_domain_name");
}

#[test]
fn domain_list_encoding() {
    let encode = |names: &[&str]| {
        Message::new(MSG_REPLY, [0, 0, 1])
            .with_option(DhcpOption::DomainList(
                names.iter().map(|n| n.to_string()).collect(),
            ))
            .encode()
    };
    assert_eq!(
        encode(&["example.com."]).unwrap(),
        with_domain_list(b"\x07example\x03com\x00")
    );
    for bad in ["", ".", "a..b", "a b.c", &"x".repeat(64), "caf\u{e9}.fr"] {
        assert!(
            matches!(encode(&[bad]), Err(EncodeError::BadDomainName { .. })),
            "{bad:?} encoded"
        );
    }
    let long_name = vec!["a".repeat(63); 4].join(".");
    assert!(encode(&[&long_name]).is_err());
}

#[test]
fn domain_list_wire_format() {
    assert_eq!(
        encode_domain_list(&["lab.example".into()]).unwrap(),
        b"\x03lab\x07example\x00".to_vec()
    );
}
