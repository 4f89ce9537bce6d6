//! Golden packets: byte vectors written by hand from the RFC layouts, decoded and re-encoded byte for byte.

use super::*;

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

/// The fuzz targets' seeds (tests/fuzz/seeds) hold these golden vectors: this test fails when a
/// vector changes and its seed does not (`FUZZ_SEEDS_WRITE=1` rewrites them).
#[test]
fn golden_vectors_are_fuzz_seeds() {
    let (lq_reply, lq_relayed) = leasequery_reply_bytes();
    let vectors = [
        ("golden_solicit", solicit_bytes()),
        ("golden_reply_pd", reply_pd_bytes()),
        ("golden_two_hop_relay", two_hop_relay_bytes()),
        ("golden_leasequery", leasequery_bytes()),
        ("golden_leasequery_reply", lq_reply),
        ("golden_lq_relayed", lq_relayed),
        ("golden_relay_remote_id", relay_forw_with_remote_id(true)),
        ("golden_relay_chain_8", relay_chain(MAX_RELAY_DEPTH)),
    ];
    for (name, bytes) in vectors {
        fuzz_seed("dhcpv6_decode", name, &bytes);
        fuzz_seed(
            "leasequery_frame",
            name,
            &[&[0u8][..], &framing::encode_frame(&bytes).unwrap()].concat(),
        );
    }
}
