//! Codec tests: golden byte vectors written by hand from the RFC layouts, malformed input, and
//! property tests (round trip, never panic, byte-exact re-encoding).

mod domain;
mod encode;
mod golden;
mod malformed;

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

#[rustfmt::skip]
fn reply_pd_bytes() -> Vec<u8> {
    let mut b = vec![
        0x07, 0x00, 0x00, 0x2a,                 // Reply, xid 00002a
        0x00, 0x02, 0x00, 0x0a,                 // Server ID, len 10
    ];
    b.extend_from_slice(&SERVER_DUID);
    b.extend_from_slice(&[0x00, 0x01, 0x00, 0x0e]); // Client ID, len 14
    b.extend_from_slice(&CLIENT_DUID);
    b.extend_from_slice(&[
        0x00, 0x19, 0x00, 0x29,                 // IA_PD, len 12 + 29 = 41
        0x00, 0x00, 0x00, 0x01,                 // IAID 1
        0x00, 0x00, 0x07, 0x08,                 // T1 1800
        0x00, 0x00, 0x0b, 0x40,                 // T2 2880
        0x00, 0x1a, 0x00, 0x19,                 // IAPREFIX, len 25
        0x00, 0x00, 0x0e, 0x10,                 // preferred 3600
        0x00, 0x00, 0x1c, 0x20,                 // valid 7200
        0x38,                                   // prefix length 56
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x01, 0x00, // 2001:db8:0:100::
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x17, 0x00, 0x10,                 // DNS servers, len 16
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, // 2001:db8::53
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x53,
        0x00, 0x18, 0x00, 0x0d,                 // domain list, len 13
        0x07, b'e', b'x', b'a', b'm', b'p', b'l', b'e',
        0x03, b'c', b'o', b'm', 0x00,
    ]);
    b
}

/// Relay 2 (outer, hop-count 1) ← Relay 1 (inner, hop-count 0, Interface-ID "eth0") ← Solicit.
#[rustfmt::skip]
fn two_hop_relay_bytes() -> Vec<u8> {
    let solicit = solicit_bytes();
    let mut inner = vec![
        0x0c, 0x00,                             // Relay-Forw, hop-count 0
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, // link 2001:db8:1::1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // peer fe80::211:22ff:fe33:4455
        0x02, 0x11, 0x22, 0xff, 0xfe, 0x33, 0x44, 0x55,
        0x00, 0x12, 0x00, 0x04, b'e', b't', b'h', b'0', // Interface-ID "eth0"
    ];
    inner.extend_from_slice(&[0x00, 0x09]);     // Relay Message
    inner.extend_from_slice(&(solicit.len() as u16).to_be_bytes());
    inner.extend_from_slice(&solicit);
    let mut outer = vec![
        0x0c, 0x01,                             // Relay-Forw, hop-count 1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // link :: (unspecified)
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, // peer 2001:db8:1::1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x09,                             // Relay Message
    ];
    outer.extend_from_slice(&(inner.len() as u16).to_be_bytes());
    outer.extend_from_slice(&inner);
    outer
}

/// LEASEQUERY by address (RFC 5007 §4.1.2.1): LQ_QUERY{type 1, link ::, IAADDR 2001:db8:1::10}.
#[rustfmt::skip]
fn leasequery_bytes() -> Vec<u8> {
    let mut b = vec![
        0x0e, 0x11, 0x22, 0x33,                 // LEASEQUERY, xid 112233
        0x00, 0x01, 0x00, 0x0a,                 // Client ID (the requestor), len 10
    ];
    b.extend_from_slice(&SERVER_DUID);
    b.extend_from_slice(&[
        0x00, 0x2c, 0x00, 0x2d,                 // LQ_QUERY, len 17 + 28 = 45
        0x01,                                   // QUERY_BY_ADDRESS
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // link-address ::
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x05, 0x00, 0x18,                 // IAADDR, len 24
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, // 2001:db8:1::10
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
        0x00, 0x00, 0x00, 0x00,                 // preferred 0
        0x00, 0x00, 0x00, 0x00,                 // valid 0
    ]);
    b
}

/// A one-hop Relay-Forw carrying a Remote-ID and a Request; `with_client_message` false drops
/// the Relay Message option, as LQ_RELAY_DATA carries it (RFC 5007 §4.1.2.4).
#[rustfmt::skip]
fn relay_forw_with_remote_id(with_client_message: bool) -> Vec<u8> {
    let mut relayed = vec![
        0x0c, 0x00,                             // Relay-Forw, hop 0
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, // link 2001:db8:1::1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // peer fe80::1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        0x00, 0x25, 0x00, 0x07,                 // Remote-ID, len 7
        0x00, 0x00, 0x0d, 0xe9,                 // enterprise 3561
        b'p', b'1', b'7',
    ];
    if with_client_message {
        relayed.extend_from_slice(&[
            0x00, 0x09, 0x00, 0x04,             // Relay Message, len 4
            0x03, 0x01, 0x02, 0x03,             // Request, xid 010203, no options
        ]);
    }
    relayed
}

/// LEASEQUERY-REPLY (RFC 5007 §4.1.2.2-4): CLIENT_DATA{Client ID, IAADDR, CLT_TIME},
/// LQ_RELAY_DATA{peer, the Relay-Forw as received minus the client's message}.
#[rustfmt::skip]
fn leasequery_reply_bytes() -> (Vec<u8>, Vec<u8>) {
    let relayed = relay_forw_with_remote_id(false);
    let mut b = vec![
        0x0f, 0x11, 0x22, 0x33,                 // LEASEQUERY-REPLY, xid 112233
        0x00, 0x02, 0x00, 0x0a,                 // Server ID
    ];
    b.extend_from_slice(&SERVER_DUID);
    b.extend_from_slice(&[
        0x00, 0x2d, 0x00, 0x36,                 // CLIENT_DATA, len 18 + 28 + 8 = 54
        0x00, 0x01, 0x00, 0x0e,                 // Client ID, len 14
    ]);
    b.extend_from_slice(&CLIENT_DUID);
    b.extend_from_slice(&[
        0x00, 0x05, 0x00, 0x18,                 // IAADDR, len 24
        0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01, 0x00, 0x00, // 2001:db8:1::10
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
        0x00, 0x00, 0x0e, 0x10,                 // preferred 3600
        0x00, 0x00, 0x1c, 0x20,                 // valid 7200
        0x00, 0x2e, 0x00, 0x04,                 // CLT_TIME, len 4
        0x00, 0x00, 0x00, 0x3c,                 // 60 s
        0x00, 0x2f,                             // LQ_RELAY_DATA
    ]);
    b.extend_from_slice(&((16 + relayed.len()) as u16).to_be_bytes());
    b.extend_from_slice(&[
        0xfe, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // peer fe80::1
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
    ]);
    b.extend_from_slice(&relayed);
    (b, relayed)
}

fn reason(bytes: &[u8]) -> &'static str {
    decode(bytes).expect_err("must not decode").reason()
}

/// `hops` Relay-Forw layers around an Information-Request.
fn relay_chain(hops: usize) -> Vec<u8> {
    let mut bytes = vec![MSG_INFORMATION_REQUEST, 0, 0, 1];
    for hop in 0..hops {
        let mut relay = vec![MSG_RELAY_FORW, hop as u8];
        relay.extend_from_slice(&[0; 32]);
        relay.extend_from_slice(&OPT_RELAY_MSG.to_be_bytes());
        relay.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
        relay.extend_from_slice(&bytes);
        bytes = relay;
    }
    bytes
}

fn with_domain_list(body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![MSG_REPLY, 0, 0, 1];
    bytes.extend_from_slice(&OPT_DOMAIN_LIST.to_be_bytes());
    bytes.extend_from_slice(&(body.len() as u16).to_be_bytes());
    bytes.extend_from_slice(body);
    bytes
}

mod properties;

/// Checks that the fuzz seed `tests/fuzz/seeds/<target>/<name>` holds `bytes`; with
/// `FUZZ_SEEDS_WRITE=1`, writes it instead.
fn fuzz_seed(target: &str, name: &str, bytes: &[u8]) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fuzz/seeds")
        .join(target);
    let path = dir.join(name);
    if std::env::var_os("FUZZ_SEEDS_WRITE").is_some() {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, bytes).unwrap();
    }
    let seed = std::fs::read(&path).unwrap_or_default();
    assert!(
        seed == bytes,
        "fuzz seed {} is stale: FUZZ_SEEDS_WRITE=1 cargo test -p dhcp-user --lib rewrites it",
        path.display()
    );
}
