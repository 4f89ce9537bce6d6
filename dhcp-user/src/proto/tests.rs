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

#[test]
fn golden_reply_with_ia_pd() {
    let packet = decode_ok(&reply_pd_bytes());
    let expected = Message {
        msg_type: MSG_REPLY,
        transaction_id: [0, 0, 0x2a],
        options: vec![
            DhcpOption::ServerId(Duid::new(SERVER_DUID.to_vec()).unwrap()),
            DhcpOption::ClientId(Duid::new(CLIENT_DUID.to_vec()).unwrap()),
            DhcpOption::IaPd(IaPd {
                iaid: 1,
                t1: 1800,
                t2: 2880,
                options: vec![DhcpOption::IaPrefix(IaPrefix {
                    preferred: 3600,
                    valid: 7200,
                    prefix_len: 56,
                    prefix: ip("2001:db8:0:100::"),
                    options: vec![],
                })],
            }),
            DhcpOption::DnsServers(vec![ip("2001:db8::53")]),
            DhcpOption::DomainList(vec!["example.com".to_string()]),
        ],
    };
    assert_eq!(packet, Packet::Message(expected.clone()));
    assert_eq!(expected.encode().unwrap(), reply_pd_bytes());
    let pd = packet.ia_pds().next().unwrap();
    assert_eq!(pd.ia_prefixes().next().unwrap().prefix_len, 56);
    assert_eq!(packet.server_id().unwrap().duid_type(), DUID_LL);
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

#[test]
fn golden_two_hop_relay_forw() {
    let packet = decode_ok(&two_hop_relay_bytes());
    let (relays, core) = packet.unwrap_relays();
    assert_eq!(relays.len(), 2);
    assert_eq!(relays[0].hop_count, 1);
    assert_eq!(relays[0].link_address, Ipv6Addr::UNSPECIFIED);
    assert_eq!(relays[0].peer_address, ip("2001:db8:1::1"));
    assert_eq!(relays[0].interface_id(), None);
    assert_eq!(relays[1].msg_type, MSG_RELAY_FORW);
    assert_eq!(relays[1].hop_count, 0);
    assert_eq!(relays[1].link_address, ip("2001:db8:1::1"));
    assert_eq!(relays[1].peer_address, ip("fe80::211:22ff:fe33:4455"));
    assert_eq!(relays[1].interface_id(), Some(&b"eth0"[..]));
    let Packet::Message(solicit) = decode_ok(&solicit_bytes()) else {
        panic!("solicit decodes as a message")
    };
    assert_eq!(core, Some(&solicit));
    assert_eq!(packet.innermost_message(), Some(&solicit));
}

#[test]
fn relay_repl_copies_header_and_interface_id_then_relay_message() {
    let Packet::Relay(outer) = decode_ok(&two_hop_relay_bytes()) else {
        panic!("relay")
    };
    let Some(Packet::Relay(inner)) = outer.relay_msg() else {
        panic!("inner relay")
    };
    let reply = Packet::Message(Message::new(MSG_ADVERTISE, [0xab, 0xcd, 0xef]));
    let inner_repl = inner.reply_with(reply.clone());
    assert_eq!(inner_repl.msg_type, MSG_RELAY_REPL);
    assert_eq!(inner_repl.hop_count, 0);
    assert_eq!(inner_repl.link_address, inner.link_address);
    assert_eq!(inner_repl.peer_address, inner.peer_address);
    assert_eq!(
        inner_repl.options,
        vec![
            DhcpOption::InterfaceId(b"eth0".to_vec()),
            DhcpOption::RelayMsg(Box::new(reply)),
        ]
    );
    let outer_repl = outer.reply_with(Packet::Relay(inner_repl));
    assert_eq!(outer_repl.options.len(), 1);
    let bytes = outer_repl.encode().unwrap();
    assert_eq!(&bytes[..2], &[MSG_RELAY_REPL, 1]);
    assert_eq!(decode(&bytes).unwrap(), Packet::Relay(outer_repl));
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

#[test]
fn golden_leasequery_by_address() {
    let packet = decode_ok(&leasequery_bytes());
    let query = packet.lq_query().unwrap();
    assert_eq!(packet.msg_type(), MSG_LEASEQUERY);
    assert_eq!(query.query_type, QUERY_BY_ADDRESS);
    assert_eq!(query.link_address, Ipv6Addr::UNSPECIFIED);
    assert_eq!(
        query.options,
        vec![DhcpOption::IaAddr(IaAddr {
            addr: ip("2001:db8:1::10"),
            preferred: 0,
            valid: 0,
            options: vec![],
        })]
    );
    assert_eq!(query.ia_addrs().next().unwrap().addr, ip("2001:db8:1::10"));
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

#[test]
fn golden_leasequery_reply() {
    let (bytes, relayed) = leasequery_reply_bytes();
    let packet = decode_ok(&bytes);
    let relayed_packet = decode_ok(&relayed);
    let expected = Message {
        msg_type: MSG_LEASEQUERY_REPLY,
        transaction_id: [0x11, 0x22, 0x33],
        options: vec![
            DhcpOption::ServerId(Duid::new(SERVER_DUID.to_vec()).unwrap()),
            DhcpOption::ClientData(vec![
                DhcpOption::ClientId(Duid::new(CLIENT_DUID.to_vec()).unwrap()),
                DhcpOption::IaAddr(IaAddr {
                    addr: ip("2001:db8:1::10"),
                    preferred: 3600,
                    valid: 7200,
                    options: vec![],
                }),
                DhcpOption::CltTime(60),
            ]),
            DhcpOption::LqRelayData(LqRelayData {
                peer_address: ip("fe80::1"),
                relay_message: relayed.clone(),
            }),
        ],
    };
    assert_eq!(packet, Packet::Message(expected.clone()));
    assert_eq!(expected.encode().unwrap(), bytes);
    let DhcpOption::LqRelayData(relay_data) = packet.find(OPT_LQ_RELAY_DATA).unwrap() else {
        panic!("LQ_RELAY_DATA")
    };
    let carried = relay_data.decode_relay_message().unwrap();
    assert_eq!(carried, relayed_packet);
    assert_eq!(
        carried.remote_id(),
        Some(&RemoteId {
            enterprise: 3561,
            remote_id: b"p17".to_vec()
        })
    );
    assert_eq!(carried.relay_msg(), None);
}

#[test]
fn lq_relay_data_is_the_received_chain_without_the_client_message() {
    // RFC 5007 §4.1.2.4: the innermost OPTION_RELAY_MSG holding the client's message MUST have
    // been removed; everything else is the chain as received.
    let Packet::Relay(received) = decode_ok(&relay_forw_with_remote_id(true)) else {
        panic!("relay")
    };
    let data = LqRelayData::new(ip("2001:db8:ffff::1"), &received).unwrap();
    assert_eq!(data.relay_message, relay_forw_with_remote_id(false));
    assert_eq!(data.peer_address, ip("2001:db8:ffff::1"));
    assert_eq!(
        LqRelayData::from_received(ip("2001:db8:ffff::1"), &relay_forw_with_remote_id(true)),
        Some(data)
    );
    assert_eq!(
        LqRelayData::from_received(ip("::1"), &solicit_bytes()),
        None
    );
    assert_eq!(LqRelayData::from_received(ip("::1"), &[12, 0, 1]), None);

    // Two hops: only the inner relay loses its Relay Message option; Interface-ID stays.
    let Packet::Relay(two_hop) = decode_ok(&two_hop_relay_bytes()) else {
        panic!("relay")
    };
    let stripped = two_hop.without_client_message();
    let stripped_packet = Packet::Relay(stripped.clone());
    let (relays, core) = stripped_packet.unwrap_relays();
    assert_eq!(relays.len(), 2);
    assert_eq!(core, None);
    assert_eq!(
        relays[1].options,
        vec![DhcpOption::InterfaceId(b"eth0".to_vec())]
    );
    let expected_len = two_hop_relay_bytes().len() - 4 - solicit_bytes().len();
    assert_eq!(stripped.encode().unwrap().len(), expected_len);
}

fn reason(bytes: &[u8]) -> &'static str {
    decode(bytes).expect_err("must not decode").reason()
}

#[test]
fn empty_and_unknown_message_types_are_errors() {
    assert_eq!(reason(&[]), "empty_message");
    assert_eq!(
        decode(&[0, 1, 2, 3]),
        Err(DecodeError::UnknownMessageType(0))
    );
    assert_eq!(
        decode(&[200, 1, 2, 3]),
        Err(DecodeError::UnknownMessageType(200))
    );
    assert_eq!(reason(&[24, 1, 2, 3]), "unknown_message_type");
    for t in 1..=23u8 {
        let len = if is_relay_type(t) {
            RELAY_HEADER_LEN
        } else {
            4
        };
        let mut bytes = vec![0u8; len];
        bytes[0] = t;
        assert_eq!(decode_ok(&bytes).msg_type(), t);
    }
}

#[test]
fn truncated_headers_are_errors() {
    assert_eq!(
        decode(&[1, 0xab, 0xcd]),
        Err(DecodeError::TruncatedHeader {
            msg_type: 1,
            len: 3,
            need: 4
        })
    );
    assert_eq!(reason(&[MSG_RELAY_FORW; 33]), "truncated_header");
    assert_eq!(reason(&[MSG_RELAY_REPL]), "truncated_header");
}

#[test]
fn option_framing_errors() {
    let mut past_end = solicit_bytes();
    past_end.truncate(past_end.len() - 1); // Elapsed Time claims 2, 1 left
    assert_eq!(
        decode(&past_end),
        Err(DecodeError::OptionLengthPastEnd {
            code: OPT_ELAPSED_TIME,
            len: 2,
            remaining: 1
        })
    );
    let mut header_cut = solicit_bytes();
    header_cut.extend_from_slice(&[0x00, 0x0e, 0x00]); // 3 bytes of a 4-byte option header
    assert_eq!(reason(&header_cut), "option_header_truncated");
    // Inside an IA_NA the same checks apply to its sub-options.
    let ia_past_end = [
        1, 0, 0, 1, 0, 3, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 24,
    ];
    assert_eq!(reason(&ia_past_end), "option_length_past_end");
}

#[test]
fn wrong_length_for_fixed_size_options_is_an_error() {
    let cases: &[(u16, usize)] = &[
        (OPT_PREFERENCE, 2),
        (OPT_ELAPSED_TIME, 3),
        (OPT_UNICAST, 4),
        (OPT_RAPID_COMMIT, 1),
        (OPT_RECONF_ACCEPT, 1),
        (OPT_RECONF_MSG, 0),
        (OPT_ORO, 3),
        (OPT_DNS_SERVERS, 17),
        (OPT_LQ_CLIENT_LINK, 15),
        (OPT_INFORMATION_REFRESH_TIME, 2),
        (OPT_CLT_TIME, 5),
        (OPT_SOL_MAX_RT, 8),
        (OPT_LQ_BASE_TIME, 3),
        (OPT_IA_NA, 11),
        (OPT_IA_TA, 3),
        (OPT_IAADDR, 23),
        (OPT_IA_PD, 11),
        (OPT_IAPREFIX, 24),
        (OPT_STATUS_CODE, 1),
        (OPT_REMOTE_ID, 3),
        (OPT_LQ_QUERY, 16),
        (OPT_LQ_RELAY_DATA, 15),
    ];
    for &(code, len) in cases {
        let mut bytes = vec![MSG_INFORMATION_REQUEST, 0, 0, 1];
        bytes.extend_from_slice(&code.to_be_bytes());
        bytes.extend_from_slice(&(len as u16).to_be_bytes());
        bytes.resize(bytes.len() + len, 0);
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::BadOptionLength { code, len }),
            "option {code} len {len}"
        );
    }
}

#[test]
fn unknown_options_are_kept_verbatim_not_errors() {
    // RFC 8415 §16: a server MUST NOT discard a message for an option it does not understand.
    let mut bytes = solicit_bytes();
    bytes.extend_from_slice(&[0x00, 0x4f, 0x00, 0x03, 9, 8, 7]); // 79 (client link-layer addr)
    bytes.extend_from_slice(&[0xff, 0xff, 0x00, 0x00]); // 65535, empty
    let packet = decode_ok(&bytes);
    let options = packet.options();
    assert_eq!(
        options[options.len() - 2..],
        [
            DhcpOption::Unknown {
                code: OPT_CLIENT_LINKLAYER_ADDR,
                data: vec![9, 8, 7]
            },
            DhcpOption::Unknown {
                code: 0xffff,
                data: vec![]
            },
        ]
    );
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

#[test]
fn relay_nesting_is_bounded_by_hop_count_limit() {
    let limit = usize::from(HOP_COUNT_LIMIT);
    let deepest = decode_ok(&relay_chain(limit));
    assert_eq!(deepest.unwrap_relays().0.len(), limit);
    assert_eq!(
        decode(&relay_chain(limit + 1)),
        Err(DecodeError::TooManyRelayHops)
    );
    assert_eq!(reason(&relay_chain(40)), "too_many_relay_hops");
    // The encoder refuses to build what the decoder would refuse.
    let Packet::Relay(top) = deepest else {
        panic!("relay")
    };
    let too_deep = top.reply_with(Packet::Relay(top.clone()));
    assert_eq!(too_deep.encode(), Err(EncodeError::TooManyRelayHops));
}

#[test]
fn malformed_relayed_message_is_reported_as_such() {
    let mut bytes = vec![MSG_RELAY_FORW, 0];
    bytes.extend_from_slice(&[0; 32]);
    bytes.extend_from_slice(&[0x00, 0x09, 0x00, 0x02, 0x01, 0x00]); // Solicit cut at 2 bytes
    let err = decode(&bytes).unwrap_err();
    assert_eq!(err.reason(), "relay_message_malformed");
    assert_eq!(err.root_cause().reason(), "truncated_header");
    // Two layers down, still wrapped once.
    let mut outer = vec![MSG_RELAY_FORW, 1];
    outer.extend_from_slice(&[0; 32]);
    outer.extend_from_slice(&OPT_RELAY_MSG.to_be_bytes());
    outer.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    outer.extend_from_slice(&bytes);
    let err = decode(&outer).unwrap_err();
    assert!(matches!(&err, DecodeError::RelayMessageMalformed(inner)
        if matches!(**inner, DecodeError::TruncatedHeader { .. })));
}

#[test]
fn duid_length_limits_on_the_wire() {
    let with_client_id = |duid_len: usize| {
        let mut bytes = vec![MSG_SOLICIT, 0, 0, 1];
        bytes.extend_from_slice(&OPT_CLIENTID.to_be_bytes());
        bytes.extend_from_slice(&(duid_len as u16).to_be_bytes());
        bytes.extend((0..duid_len).map(|i| i as u8));
        bytes
    };
    assert_eq!(
        decode(&with_client_id(300)),
        Err(DecodeError::DuidTooLong {
            code: OPT_CLIENTID,
            len: 300
        })
    );
    assert_eq!(reason(&with_client_id(131)), "duid_too_long");
    assert_eq!(
        decode_ok(&with_client_id(130)).client_id().unwrap().len(),
        130
    );
    assert_eq!(reason(&with_client_id(0)), "duid_too_short");
    assert_eq!(reason(&with_client_id(2)), "duid_too_short");
}

fn with_domain_list(body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![MSG_REPLY, 0, 0, 1];
    bytes.extend_from_slice(&OPT_DOMAIN_LIST.to_be_bytes());
    bytes.extend_from_slice(&(body.len() as u16).to_be_bytes());
    bytes.extend_from_slice(body);
    bytes
}

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
fn status_code_text_must_be_utf8() {
    let bytes = [
        MSG_REPLY, 0, 0, 1, 0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0xff, 0xfe,
    ];
    assert_eq!(reason(&bytes), "bad_utf8");
    // 2 + 22 bytes: "désolé" has two 2-byte characters.
    let with_status =
        Message::new(MSG_REPLY, [0, 0, 1]).with_option(DhcpOption::StatusCode(StatusCode {
            code: STATUS_NO_ADDRS_AVAIL,
            message: "no addresses, désolé".into(),
        }));
    let encoded = with_status.encode().unwrap();
    assert_eq!(&encoded[4..10], &[0x00, 0x0d, 0x00, 24, 0x00, 0x02]);
    assert_eq!(decode_ok(&encoded), Packet::Message(with_status));
}

#[test]
fn option_nesting_is_bounded() {
    // CLIENT_DATA inside CLIENT_DATA ... 20 levels deep.
    let mut body: Vec<u8> = Vec::new();
    for _ in 0..20 {
        let mut wrapped = OPT_CLIENT_DATA.to_be_bytes().to_vec();
        wrapped.extend_from_slice(&(body.len() as u16).to_be_bytes());
        wrapped.extend_from_slice(&body);
        body = wrapped;
    }
    let mut bytes = vec![MSG_LEASEQUERY_REPLY, 0, 0, 1];
    bytes.extend_from_slice(&body);
    assert_eq!(reason(&bytes), "option_nesting_too_deep");

    let mut nested = DhcpOption::ClientData(vec![]);
    for _ in 0..MAX_OPTION_DEPTH {
        nested = DhcpOption::ClientData(vec![nested]);
    }
    let deepest_ok = Message::new(MSG_LEASEQUERY_REPLY, [0, 0, 1]).with_option(nested.clone());
    decode_ok(&deepest_ok.encode().unwrap());
    let too_deep = Message::new(MSG_LEASEQUERY_REPLY, [0, 0, 1])
        .with_option(DhcpOption::ClientData(vec![nested]));
    assert_eq!(too_deep.encode(), Err(EncodeError::OptionNestingTooDeep));
}

#[test]
fn encoder_never_truncates_long_options() {
    let many = vec![Ipv6Addr::LOCALHOST; 4096]; // 65536 bytes
    let message =
        Message::new(MSG_REPLY, [0, 0, 1]).with_option(DhcpOption::DnsServers(many.clone()));
    assert_eq!(
        message.encode(),
        Err(EncodeError::OptionTooLong {
            code: OPT_DNS_SERVERS,
            len: 65536
        })
    );
    let fits = Message::new(MSG_REPLY, [0, 0, 1]).with_option(DhcpOption::Unknown {
        code: 999,
        data: vec![0; 65535],
    });
    assert_eq!(fits.encode().unwrap().len(), 4 + 4 + 65535);
    // A relay message option wrapping a message over 65535 bytes fails the same way.
    let big_inner = Message::new(MSG_SOLICIT, [0, 0, 1]).with_option(DhcpOption::Unknown {
        code: 999,
        data: vec![0; 65535],
    });
    let relay = RelayMessage {
        msg_type: MSG_RELAY_FORW,
        hop_count: 0,
        link_address: Ipv6Addr::UNSPECIFIED,
        peer_address: Ipv6Addr::UNSPECIFIED,
        options: vec![DhcpOption::RelayMsg(Box::new(big_inner.into()))],
    };
    assert!(matches!(
        relay.encode(),
        Err(EncodeError::OptionTooLong {
            code: OPT_RELAY_MSG,
            ..
        })
    ));
}

#[test]
fn encoder_rejects_message_types_of_the_wrong_kind() {
    for t in [0, MSG_RELAY_FORW, MSG_RELAY_REPL, 24, 255] {
        assert_eq!(
            Message::new(t, [0; 3]).encode(),
            Err(EncodeError::BadMessageType(t))
        );
    }
    let relay = RelayMessage {
        msg_type: MSG_SOLICIT,
        hop_count: 0,
        link_address: Ipv6Addr::UNSPECIFIED,
        peer_address: Ipv6Addr::UNSPECIFIED,
        options: vec![],
    };
    assert_eq!(
        relay.encode(),
        Err(EncodeError::BadMessageType(MSG_SOLICIT))
    );
}

#[test]
fn kind_specific_decoders() {
    assert!(Message::decode(&solicit_bytes()).is_ok());
    assert_eq!(
        Message::decode(&two_hop_relay_bytes()),
        Err(DecodeError::UnknownMessageType(MSG_RELAY_FORW))
    );
    assert!(RelayMessage::decode(&two_hop_relay_bytes()).is_ok());
    assert_eq!(
        RelayMessage::decode(&solicit_bytes()),
        Err(DecodeError::UnknownMessageType(MSG_SOLICIT))
    );
}

#[test]
fn options_encode_in_vector_order() {
    let message = Message::new(MSG_REPLY, [1, 2, 3])
        .with_option(DhcpOption::RapidCommit)
        .with_option(DhcpOption::Preference(255))
        .with_option(DhcpOption::ReconfAccept);
    assert_eq!(
        message.encode().unwrap(),
        vec![7, 1, 2, 3, 0, 14, 0, 0, 0, 7, 0, 1, 255, 0, 20, 0, 0]
    );
    let mut buf = vec![0xaa];
    message.encode_into(&mut buf).unwrap();
    assert_eq!(buf.len(), 18);
    assert_eq!(buf[0], 0xaa);
}

#[test]
fn every_reason_is_listed() {
    let samples = [
        reason(&[]),
        reason(&[0]),
        reason(&[1]),
        reason(&[1, 0, 0, 0, 0]),
        reason(&[1, 0, 0, 0, 0, 8, 0, 9]),
        reason(&[1, 0, 0, 0, 0, 8, 0, 1, 0]),
        reason(&relay_chain(9)),
    ];
    for r in samples {
        assert!(DecodeError::ALL_REASONS.contains(&r), "{r}");
    }
}

mod properties {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    fn duid() -> impl Strategy<Value = Duid> {
        vec(any::<u8>(), DUID_MIN_LEN..=DUID_MAX_LEN).prop_map(|b| Duid::new(b).unwrap())
    }

    fn addr() -> impl Strategy<Value = Ipv6Addr> {
        any::<u128>().prop_map(Ipv6Addr::from)
    }

    fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        vec(any::<u8>(), 0..=max)
    }

    fn domain_name() -> impl Strategy<Value = String> {
        vec("[a-zA-Z0-9_-]{1,20}", 1..=4).prop_map(|labels| labels.join("."))
    }

    /// Options without sub-options.
    fn leaf_option() -> impl Strategy<Value = DhcpOption> {
        prop_oneof![
            duid().prop_map(DhcpOption::ClientId),
            duid().prop_map(DhcpOption::ServerId),
            duid().prop_map(DhcpOption::RelayId),
            vec(any::<u16>(), 0..8).prop_map(DhcpOption::Oro),
            any::<u8>().prop_map(DhcpOption::Preference),
            any::<u16>().prop_map(DhcpOption::ElapsedTime),
            bytes(40).prop_map(DhcpOption::Auth),
            addr().prop_map(DhcpOption::Unicast),
            (any::<u16>(), "\\PC{0,20}").prop_map(|(code, message)| {
                DhcpOption::StatusCode(StatusCode { code, message })
            }),
            Just(DhcpOption::RapidCommit),
            bytes(20).prop_map(DhcpOption::UserClass),
            bytes(20).prop_map(DhcpOption::VendorClass),
            bytes(20).prop_map(DhcpOption::VendorOpts),
            bytes(20).prop_map(DhcpOption::InterfaceId),
            any::<u8>().prop_map(DhcpOption::ReconfMsg),
            Just(DhcpOption::ReconfAccept),
            vec(addr(), 0..4).prop_map(DhcpOption::DnsServers),
            vec(domain_name(), 0..4).prop_map(DhcpOption::DomainList),
            any::<u32>().prop_map(DhcpOption::InformationRefreshTime),
            (any::<u32>(), bytes(20)).prop_map(|(enterprise, remote_id)| {
                DhcpOption::RemoteId(RemoteId {
                    enterprise,
                    remote_id,
                })
            }),
            bytes(20).prop_map(DhcpOption::SubscriberId),
            bytes(20).prop_map(DhcpOption::ClientFqdn),
            any::<u32>().prop_map(DhcpOption::CltTime),
            (addr(), bytes(60)).prop_map(|(peer_address, relay_message)| {
                DhcpOption::LqRelayData(LqRelayData {
                    peer_address,
                    relay_message,
                })
            }),
            vec(addr(), 0..4).prop_map(DhcpOption::LqClientLink),
            any::<u32>().prop_map(DhcpOption::SolMaxRt),
            any::<u32>().prop_map(DhcpOption::InfMaxRt),
            any::<u32>().prop_map(DhcpOption::LqBaseTime),
            any::<u32>().prop_map(DhcpOption::LqStartTime),
            any::<u32>().prop_map(DhcpOption::LqEndTime),
            (
                any::<u16>().prop_filter("modeled code", |c| !is_modeled_code(*c)),
                bytes(20)
            )
                .prop_map(|(code, data)| DhcpOption::Unknown { code, data }),
        ]
    }

    /// Any option but Relay Message, with encapsulated options up to 3 levels deep.
    fn option() -> impl Strategy<Value = DhcpOption> {
        leaf_option().prop_recursive(3, 40, 4, |inner| {
            let subs = vec(inner, 0..4);
            prop_oneof![
                (any::<[u32; 3]>(), subs.clone()).prop_map(|([iaid, t1, t2], options)| {
                    DhcpOption::IaNa(IaNa {
                        iaid,
                        t1,
                        t2,
                        options,
                    })
                }),
                (any::<u32>(), subs.clone())
                    .prop_map(|(iaid, options)| DhcpOption::IaTa(IaTa { iaid, options })),
                (addr(), any::<[u32; 2]>(), subs.clone()).prop_map(
                    |(addr, [preferred, valid], options)| {
                        DhcpOption::IaAddr(IaAddr {
                            addr,
                            preferred,
                            valid,
                            options,
                        })
                    }
                ),
                (any::<[u32; 3]>(), subs.clone()).prop_map(|([iaid, t1, t2], options)| {
                    DhcpOption::IaPd(IaPd {
                        iaid,
                        t1,
                        t2,
                        options,
                    })
                }),
                (any::<[u32; 2]>(), any::<u8>(), addr(), subs.clone()).prop_map(
                    |([preferred, valid], prefix_len, prefix, options)| {
                        DhcpOption::IaPrefix(IaPrefix {
                            preferred,
                            valid,
                            prefix_len,
                            prefix,
                            options,
                        })
                    }
                ),
                (any::<u8>(), addr(), subs.clone()).prop_map(
                    |(query_type, link_address, options)| {
                        DhcpOption::LqQuery(LqQuery {
                            query_type,
                            link_address,
                            options,
                        })
                    }
                ),
                subs.prop_map(DhcpOption::ClientData),
            ]
        })
    }

    fn message() -> impl Strategy<Value = Message> {
        (
            (1..=23u8).prop_filter("relay type", |t| !is_relay_type(*t)),
            any::<[u8; 3]>(),
            vec(option(), 0..8),
        )
            .prop_map(|(msg_type, transaction_id, options)| Message {
                msg_type,
                transaction_id,
                options,
            })
    }

    /// A message wrapped in 0..=8 relay layers; each layer's own options go before or after
    /// its Relay Message option.
    fn packet() -> impl Strategy<Value = Packet> {
        let layer = (
            prop_oneof![Just(MSG_RELAY_FORW), Just(MSG_RELAY_REPL)],
            any::<u8>(),
            addr(),
            addr(),
            vec(leaf_option(), 0..3),
            vec(leaf_option(), 0..2),
        );
        (message(), vec(layer, 0..=MAX_RELAY_DEPTH)).prop_map(|(message, layers)| {
            layers.into_iter().fold(
                Packet::Message(message),
                |inner, (msg_type, hop_count, link_address, peer_address, before, after)| {
                    let mut options = before;
                    options.push(DhcpOption::RelayMsg(Box::new(inner)));
                    options.extend(after);
                    Packet::Relay(RelayMessage {
                        msg_type,
                        hop_count,
                        link_address,
                        peer_address,
                        options,
                    })
                },
            )
        })
    }

    // Default config: 256 cases, PROPTEST_CASES=N for a longer run.
    proptest! {
        #[test]
        fn decode_inverts_encode(packet in packet()) {
            let bytes = packet.encode().unwrap();
            prop_assert_eq!(decode(&bytes), Ok(packet));
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_accepted_bytes_re_encode_exactly(
            bytes in vec(any::<u8>(), 0..400)
        ) {
            if let Ok(packet) = decode(&bytes) {
                prop_assert_eq!(packet.encode().unwrap(), bytes);
            }
        }

        /// Random bytes rarely get past the header; corrupting valid encodings reaches every
        /// option decoder.
        #[test]
        fn corrupted_valid_packets_never_panic_and_re_encode_exactly(
            packet in packet(),
            edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
            cut in any::<prop::sample::Index>(),
            do_cut in any::<bool>(),
        ) {
            let mut bytes = packet.encode().unwrap();
            for (at, value) in edits {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            if do_cut {
                bytes.truncate(cut.index(bytes.len() + 1));
            }
            match decode(&bytes) {
                Ok(decoded) => prop_assert_eq!(decoded.encode().unwrap(), bytes),
                Err(err) => prop_assert!(DecodeError::ALL_REASONS.contains(&err.reason())),
            }
        }

        #[test]
        fn duid_text_round_trips(duid in duid()) {
            prop_assert_eq!(duid.to_string().parse::<Duid>(), Ok(duid.clone()));
            prop_assert_eq!(hex::encode(duid.as_bytes()).parse::<Duid>(), Ok(duid));
        }

        #[test]
        fn frames_survive_any_read_split(
            messages in vec(bytes(300), 0..6),
            chunk in 1..50usize,
        ) {
            let mut stream = Vec::new();
            for m in &messages {
                framing::encode_frame_into(m, &mut stream).unwrap();
            }
            let mut decoder = framing::FrameDecoder::default();
            let mut out = Vec::new();
            for piece in stream.chunks(chunk) {
                decoder.push(piece);
                while let Some(frame) = decoder.next_frame().unwrap() {
                    out.push(frame.to_vec());
                }
            }
            prop_assert_eq!(out, messages);
            prop_assert!(!decoder.is_mid_frame());
        }
    }
}

#[test]
fn domain_list_wire_format() {
    assert_eq!(
        encode_domain_list(&["lab.example".into()]).unwrap(),
        b"\x03lab\x07example\x00".to_vec()
    );
}
