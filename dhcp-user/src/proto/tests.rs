//! Codec tests: golden byte vectors written by hand from the RFC layouts, malformed input, and
//! property tests (round trip, never panic, byte-exact re-encoding).

use std::net::Ipv6Addr;

use dhcp_common::dhcpv6::*;

use super::*;

fn ip(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn decode_ok(bytes: &[u8]) -> Packet {
    let packet = decode(bytes).unwrap_or_else(|e| panic!("decode failed: {e}"));
    assert_eq!(
        packet.encode().unwrap(),
        bytes,
        "re-encoding differs from input"
    );
    packet
}

/// Client DUID-LLT used throughout: type 1, hw 1, time 0x2a2b2c2d, MAC 00:11:22:33:44:55.
const CLIENT_DUID: [u8; 14] = [
    0x00, 0x01, 0x00, 0x01, 0x2a, 0x2b, 0x2c, 0x2d, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55,
];
/// Server DUID-LL: type 3, hw 1, MAC 02:00:00:00:00:01.
const SERVER_DUID: [u8; 10] = [0x00, 0x03, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01];

#[rustfmt::skip]
fn solicit_bytes() -> Vec<u8> {
    let mut b = vec![
        0x01, 0xab, 0xcd, 0xef,                 // Solicit, xid abcdef
        0x00, 0x01, 0x00, 0x0e,                 // Client ID, len 14
    ];
    b.extend_from_slice(&CLIENT_DUID);
    b.extend_from_slice(&[
        0x00, 0x03, 0x00, 0x0c,                 // IA_NA, len 12
        0x00, 0x00, 0x00, 0x07,                 // IAID 7
        0x00, 0x00, 0x00, 0x00,                 // T1 0
        0x00, 0x00, 0x00, 0x00,                 // T2 0
        0x00, 0x06, 0x00, 0x04,                 // ORO, len 4
        0x00, 0x17, 0x00, 0x18,                 // 23 DNS, 24 domain list
        0x00, 0x08, 0x00, 0x02,                 // Elapsed Time, len 2
        0x00, 0x64,                             // 100 (1 s)
    ]);
    b
}

#[test]
fn golden_solicit() {
    let packet = decode_ok(&solicit_bytes());
    let expected = Message {
        msg_type: MSG_SOLICIT,
        transaction_id: [0xab, 0xcd, 0xef],
        options: vec![
            DhcpOption::ClientId(Duid::new(CLIENT_DUID.to_vec()).unwrap()),
            DhcpOption::IaNa(IaNa {
                iaid: 7,
                t1: 0,
                t2: 0,
                options: vec![],
            }),
            DhcpOption::Oro(vec![OPT_DNS_SERVERS, OPT_DOMAIN_LIST]),
            DhcpOption::ElapsedTime(100),
        ],
    };
    assert_eq!(packet, Packet::Message(expected.clone()));
    assert_eq!(expected.encode().unwrap(), solicit_bytes());
    let m = packet.as_message().unwrap();
    assert_eq!(m.xid(), 0xabcdef);
    assert_eq!(m.client_id().unwrap().as_bytes(), &CLIENT_DUID);
    assert_eq!(m.server_id(), None);
    assert_eq!(m.ia_nas().map(|ia| ia.iaid).collect::<Vec<_>>(), vec![7]);
    assert!(m.requests_option(OPT_DOMAIN_LIST));
    assert!(!m.requests_option(OPT_SOL_MAX_RT));
    assert!(!m.has_rapid_commit());
    assert_eq!(m.elapsed_time(), Some(100));
    assert_eq!(m.count(OPT_CLIENTID), 1);
}
