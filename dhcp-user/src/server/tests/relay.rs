//! Relayed messages: nested replies, Interface-ID echo, unknown links.

use super::*;

#[test]
fn relayed_two_hops_reply_nests_and_echoes_interface_id() {
    let mut world = World::new();
    let inner = msg(
        MSG_SOLICIT,
        &client(1),
        vec![ia_na(1, &[]), DhcpOption::RapidCommit],
    );
    let hop1 = RelayMessage {
        msg_type: MSG_RELAY_FORW,
        hop_count: 0,
        link_address: addr("2001:db8:1::2"),
        peer_address: addr("fe80::1234"),
        options: vec![
            DhcpOption::InterfaceId(b"port-7".to_vec()),
            DhcpOption::RemoteId(RemoteId {
                enterprise: 4491,
                remote_id: b"cpe-1".to_vec(),
            }),
            DhcpOption::RelayMsg(Box::new(inner.into())),
        ],
    };
    let hop2 = RelayMessage {
        msg_type: MSG_RELAY_FORW,
        hop_count: 1,
        link_address: Ipv6Addr::UNSPECIFIED,
        peer_address: addr("2001:db8:5::2"),
        options: vec![
            DhcpOption::RelayId(client(77)),
            DhcpOption::RelayMsg(Box::new(hop1.into())),
            DhcpOption::InterfaceId(b"uplink".to_vec()),
        ],
    };
    let (decision, reply) = world.decide_with(hop2.clone().into(), "2001:db8:1::1", &NoLimit, NOW);
    let outer = reply.unwrap().as_relay().unwrap().clone();
    assert_eq!(outer.msg_type, MSG_RELAY_REPL);
    assert_eq!(
        (outer.hop_count, outer.peer_address),
        (1, addr("2001:db8:5::2"))
    );
    assert_eq!(
        outer
            .options
            .iter()
            .map(DhcpOption::code)
            .collect::<Vec<_>>(),
        vec![OPT_INTERFACE_ID, OPT_RELAY_MSG]
    );
    assert_eq!(outer.interface_id(), Some(&b"uplink"[..]));
    let Some(Packet::Relay(middle)) = outer.relay_msg() else {
        panic!("no inner relay")
    };
    assert_eq!(
        (middle.msg_type, middle.link_address),
        (MSG_RELAY_REPL, addr("2001:db8:1::2"))
    );
    assert_eq!(
        middle
            .options
            .iter()
            .map(DhcpOption::code)
            .collect::<Vec<_>>(),
        vec![OPT_INTERFACE_ID, OPT_RELAY_MSG]
    );
    assert_eq!(middle.interface_id(), Some(&b"port-7"[..]));
    let Some(Packet::Message(client_reply)) = middle.relay_msg() else {
        panic!("no reply")
    };
    assert_eq!(client_reply.msg_type, MSG_REPLY);
    // The lease keeps the relay data leasequery needs.
    let lease = &decision.events[0].lease;
    assert_eq!(lease.link_address, addr("2001:db8:1::2"));
    assert_eq!(lease.relay_id.as_deref(), Some(client(77).as_bytes()));
    let mut remote = 4491u32.to_be_bytes().to_vec();
    remote.extend_from_slice(b"cpe-1");
    assert_eq!(lease.remote_id, Some(remote));
    assert_eq!(lease.relay_info, Packet::from(hop2).encode().unwrap());
}

#[test]
fn relayed_without_known_link_is_dropped() {
    let mut world = World::new();
    let inner = msg(MSG_SOLICIT, &client(1), vec![ia_na(1, &[])]);
    let relay = RelayMessage {
        msg_type: MSG_RELAY_FORW,
        hop_count: 0,
        link_address: addr("2001:db8:77::1"),
        peer_address: addr("fe80::1"),
        options: vec![DhcpOption::RelayMsg(Box::new(inner.into()))],
    };
    let (decision, _) = world.decide_with(relay.into(), "2001:db8:1::1", &NoLimit, NOW);
    assert_eq!(decision.outcome, Err("no_subnet_for_link"));
}
