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

/// A Lightweight DHCPv6 Relay Agent's hop (RFC 6221 section 6: link-address `::`, the
/// client's link-local peer-address, an Interface-ID) around `inner`.
fn ldra_hop(inner: Packet) -> RelayMessage {
    RelayMessage {
        msg_type: MSG_RELAY_FORW,
        hop_count: 0,
        link_address: Ipv6Addr::UNSPECIFIED,
        peer_address: addr("fe80::1234"),
        options: vec![
            DhcpOption::InterfaceId(b"an-1/1/1:7".to_vec()),
            DhcpOption::RelayMsg(Box::new(inner)),
        ],
    }
}

/// The subnet `classify` picks for `packet` arriving on eth1 (whose own subnet is `direct`).
fn classified_subnet(world: &World, packet: Packet, direct: Option<usize>) -> Option<usize> {
    classify(&world.config, &inbound(&packet, "ff02::1:2"), direct)
        .unwrap()
        .subnet
}

/// An LDRA alone on the server's link: the receiving interface's subnet serves its client, and
/// the Relay-Repl echoes the hop's header and Interface-ID (RFC 6221 section 7).
#[test]
fn ldra_one_hop_is_served_from_the_receiving_interface_subnet() {
    let mut world = World::new();
    let inner = msg(
        MSG_SOLICIT,
        &client(1),
        vec![ia_na(1, &[]), DhcpOption::RapidCommit],
    );
    let (decision, reply) =
        world.decide_with(ldra_hop(inner.into()).into(), "ff02::1:2", &NoLimit, NOW);
    assert_eq!(decision.events[0].lease.subnet_id, 7);
    let relay = reply.unwrap().as_relay().unwrap().clone();
    assert_eq!(relay.msg_type, MSG_RELAY_REPL);
    assert_eq!(
        (relay.hop_count, relay.link_address, relay.peer_address),
        (0, Ipv6Addr::UNSPECIFIED, addr("fe80::1234"))
    );
    assert_eq!(relay.interface_id(), Some(&b"an-1/1/1:7"[..]));
    let Some(Packet::Message(client_reply)) = relay.relay_msg() else {
        panic!("no reply inside the Relay-Repl")
    };
    assert_eq!(client_reply.msg_type, MSG_REPLY);
    let na = client_reply.ia_nas().next().unwrap();
    let leased = na.options.iter().find_map(|o| match o {
        DhcpOption::IaAddr(a) => Some(a.addr),
        _ => None,
    });
    assert!(leased.is_some_and(|a| a.segments()[..4] == [0x2001, 0xdb8, 1, 0]));
}

/// An LDRA behind an L3 relay: the next relay out's link-address names the link, not the
/// interface the Relay-Forw arrived on (RFC 6221 section 7).
#[test]
fn ldra_behind_a_relay_uses_the_outer_link_address() {
    let world = World::new();
    let inner = msg(MSG_SOLICIT, &client(2), vec![ia_na(1, &[])]);
    let outer = RelayMessage {
        msg_type: MSG_RELAY_FORW,
        hop_count: 1,
        link_address: addr("2001:db8:2::1"),
        peer_address: addr("fe80::2"),
        options: vec![DhcpOption::RelayMsg(Box::new(
            ldra_hop(inner.into()).into(),
        ))],
    };
    assert_eq!(classified_subnet(&world, outer.into(), Some(0)), Some(1));
}

/// classify's fallback is for hops without any global address only: an LDRA behind a relay on
/// an unknown link is dropped, never served from the receiving interface's subnet.
#[test]
fn ldra_behind_a_relay_on_an_unknown_link_is_not_served_locally() {
    let world = World::new();
    let inner = msg(MSG_SOLICIT, &client(3), vec![ia_na(1, &[])]);
    let outer = RelayMessage {
        msg_type: MSG_RELAY_FORW,
        hop_count: 1,
        link_address: addr("2001:db8:77::1"),
        peer_address: addr("fe80::2"),
        options: vec![DhcpOption::RelayMsg(Box::new(
            ldra_hop(inner.into()).into(),
        ))],
    };
    assert_eq!(classified_subnet(&world, outer.into(), Some(0)), None);
}

/// The fallback to the receiving interface needs one: an LDRA on a relay-only interface (no
/// subnet of its own) is not served, and a relay whose link-address is link-local (not `::`,
/// so not an LDRA) gets no fallback either.
#[test]
fn ldra_fallback_needs_an_interface_subnet_and_an_unspecified_link_address() {
    let world = World::new();
    let inner = || msg(MSG_SOLICIT, &client(4), vec![ia_na(1, &[])]);
    assert_eq!(
        classified_subnet(&world, ldra_hop(inner().into()).into(), None),
        None
    );
    assert_eq!(
        classified_subnet(&world, ldra_hop(inner().into()).into(), Some(1)),
        Some(1)
    );
    let mut link_local = ldra_hop(inner().into());
    link_local.link_address = addr("fe80::9");
    assert_eq!(classified_subnet(&world, link_local.into(), Some(0)), None);
}

/// A plain L3 relay hop: link-address `link`, the client's link-local address, `id` if any.
fn relay_hop(link: &str, id: Option<&[u8]>, inner: Packet) -> RelayMessage {
    let mut options = Vec::new();
    if let Some(id) = id {
        options.push(DhcpOption::InterfaceId(id.to_vec()));
    }
    options.push(DhcpOption::RelayMsg(Box::new(inner)));
    RelayMessage {
        msg_type: MSG_RELAY_FORW,
        hop_count: 0,
        link_address: addr(link),
        peer_address: addr("fe80::1234"),
        options,
    }
}

/// A subnet's `relay-interface-ids` select it before the link-address: the relay names subnet 0
/// by its link-address, its Interface-ID names subnet 1, and the Interface-ID wins (also for an
/// LDRA, whose Interface-ID names the subscriber's line).
#[test]
fn relay_interface_id_selects_its_subnet_before_the_link_address() {
    let mut world = World::new();
    world.config.subnets[1].relay_interface_ids = vec![b"port-9".to_vec()];
    let inner = || msg(MSG_SOLICIT, &client(5), vec![ia_na(1, &[])]);
    let hop = relay_hop("2001:db8:1::2", Some(b"port-9"), inner().into());
    assert_eq!(classified_subnet(&world, hop.into(), Some(0)), Some(1));
    let other = relay_hop("2001:db8:1::2", Some(b"port-8"), inner().into());
    assert_eq!(classified_subnet(&world, other.into(), Some(0)), Some(0));
    let mut ldra = ldra_hop(inner().into());
    ldra.options[0] = DhcpOption::InterfaceId(b"port-9".to_vec());
    assert_eq!(classified_subnet(&world, ldra.into(), Some(0)), Some(1));
}

/// A subnet's `relay-addresses` select it by the relay's own address: the datagram's source for
/// the relay closest to us, the next hop out's peer-address for one further in.
#[test]
fn relay_address_selects_its_subnet_before_the_link_address() {
    let mut world = World::new();
    // `inbound` sends from fe80::1: the relay's address as the socket sees it.
    world.config.subnets[1].relay_addresses = vec![addr("fe80::1")];
    let inner = || msg(MSG_SOLICIT, &client(6), vec![ia_na(1, &[])]);
    let hop = relay_hop("2001:db8:1::2", None, inner().into());
    assert_eq!(classified_subnet(&world, hop.into(), Some(0)), Some(1));
    // Two hops: the inner relay's address is the outer hop's peer-address.
    world.config.subnets[1].relay_addresses = vec![addr("2001:db8:5::2")];
    let outer = RelayMessage {
        msg_type: MSG_RELAY_FORW,
        hop_count: 1,
        link_address: addr("2001:db8:1::9"),
        peer_address: addr("2001:db8:5::2"),
        options: vec![DhcpOption::RelayMsg(Box::new(
            relay_hop("2001:db8:1::2", None, inner().into()).into(),
        ))],
    };
    assert_eq!(classified_subnet(&world, outer.into(), Some(0)), Some(1));
    // Neither selector matching: the link-address rule.
    world.config.subnets[1].relay_addresses = vec![addr("2001:db8:5::3")];
    let hop = relay_hop("2001:db8:1::2", None, inner().into());
    assert_eq!(classified_subnet(&world, hop.into(), Some(0)), Some(0));
}

/// RFC 6221 section 7: the server MUST include the LDRA's Interface-ID in every Relay-Reply to
/// it, whatever the reply (here a Renew of a lease it does not have, and an
/// Information-Request), the LDRA needing it to find the subscriber's port.
#[test]
fn rfc6221_every_relay_reply_to_an_ldra_carries_its_interface_id() {
    let mut world = World::new();
    let renew = msg(
        MSG_RENEW,
        &client(9),
        vec![
            DhcpOption::ServerId(server_duid()),
            ia_na(1, &["2001:db8:1::77"]),
        ],
    );
    let info = msg(MSG_INFORMATION_REQUEST, &client(9), vec![]);
    for inner in [renew, info] {
        let (_, reply) =
            world.decide_with(ldra_hop(inner.into()).into(), "ff02::1:2", &NoLimit, NOW);
        let relay = reply.unwrap().as_relay().unwrap().clone();
        assert_eq!(relay.msg_type, MSG_RELAY_REPL);
        assert_eq!(relay.link_address, Ipv6Addr::UNSPECIFIED);
        assert_eq!(relay.interface_id(), Some(&b"an-1/1/1:7"[..]));
    }
}

fn forw(link_address: &str, peer_address: &str) -> RelayMessage {
    RelayMessage {
        msg_type: MSG_RELAY_FORW,
        hop_count: 0,
        link_address: addr(link_address),
        peer_address: addr(peer_address),
        options: Vec::new(),
    }
}

/// The route next hop: a direct client's link-local source, an on-link LDRA's peer-address;
/// none behind an L3 relay (link-address set, or two hops) or from a global source.
#[test]
fn next_hop_is_the_client_on_our_link_only() {
    use crate::server::handler::next_hop;
    let source = addr("fe80::5");
    assert_eq!(next_hop(&[], source), Some(source));
    assert_eq!(next_hop(&[], addr("2001:db8:1::5")), None);
    let ldra = forw("::", "fe80::1234");
    assert_eq!(next_hop(&[&ldra], source), Some(addr("fe80::1234")));
    let relay = forw("2001:db8:2::1", "fe80::1234");
    assert_eq!(next_hop(&[&relay], source), None);
    let outer = forw("2001:db8:2::1", "fe80::9");
    assert_eq!(next_hop(&[&outer, &ldra], source), None);
}
