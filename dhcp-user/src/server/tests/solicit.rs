//! Solicit: Advertise in canonical order, Rapid Commit, exhausted pools, the client limit.

use super::*;

#[test]
fn solicit_gets_advertise_in_canonical_order() {
    let mut world = World::new();
    let solicit = msg(
        MSG_SOLICIT,
        &client(1),
        vec![
            DhcpOption::ElapsedTime(0),
            ia_na(1, &[]),
            ia_pd(2, None),
            ORO(),
        ],
    );
    let (decision, reply) = world.decide(solicit);
    let reply = reply.unwrap();
    assert_eq!(reply.msg_type, MSG_ADVERTISE);
    assert_eq!(reply.transaction_id, [1, 2, 3]);
    assert_eq!(
        codes(&reply),
        vec![
            OPT_SERVERID,
            OPT_CLIENTID,
            OPT_IA_NA,
            OPT_IA_PD,
            OPT_PREFERENCE,
            OPT_DNS_SERVERS,
            OPT_DOMAIN_LIST
        ]
    );
    let na = reply.ia_nas().next().unwrap();
    assert_eq!((na.iaid, na.t1, na.t2), (1, 500, 800));
    let a = na.ia_addrs().next().unwrap();
    assert_eq!(
        (a.addr, a.preferred, a.valid),
        (addr("2001:db8:1::100"), 1000, 2000)
    );
    assert!(a.options.is_empty());
    let pd = reply.ia_pds().next().unwrap();
    let p = pd.ia_prefixes().next().unwrap();
    assert_eq!((p.prefix, p.prefix_len), (addr("2001:db8:8000::"), 56));
    // An Advertise commits nothing.
    assert!(decision.changes.is_empty());
    assert!(world.leases.is_empty());
}

#[test]
fn rapid_commit_solicit_gets_committed_reply() {
    let mut world = World::new();
    let solicit = msg(
        MSG_SOLICIT,
        &client(1),
        vec![ia_na(1, &[]), DhcpOption::RapidCommit],
    );
    let (decision, reply) = world.decide(solicit);
    let reply = reply.unwrap();
    assert_eq!(reply.msg_type, MSG_REPLY);
    assert_eq!(
        codes(&reply),
        vec![OPT_SERVERID, OPT_CLIENTID, OPT_IA_NA, OPT_RAPID_COMMIT]
    );
    assert_eq!(decision.changes.len(), 1);
    assert_eq!(decision.events[0].kind, LeaseEventKind::Granted);
    let lease = world.leases.values().next().unwrap();
    assert_eq!(lease.state, LeaseState::Assigned);
    assert_eq!((lease.subnet_id, lease.expire), (7, NOW + 2000));
}

#[test]
fn exhausted_pools_give_status_inside_the_ia() {
    let mut world = World::new();
    // Subnet 8 has two addresses and no PD pool: reach it through a relay.
    let mut last = None;
    for n in 1..=3u8 {
        let inner = msg(
            MSG_SOLICIT,
            &client(n),
            vec![ia_na(1, &[]), ia_pd(2, None), DhcpOption::RapidCommit],
        );
        let relay = RelayMessage {
            msg_type: MSG_RELAY_FORW,
            hop_count: 0,
            link_address: addr("2001:db8:2::1"),
            peer_address: addr("fe80::99"),
            options: vec![DhcpOption::RelayMsg(Box::new(inner.into()))],
        };
        let (_, reply) = world.decide_with(relay.into(), "2001:db8:1::1", &NoLimit, NOW);
        last = reply;
    }
    let reply = last.unwrap();
    let inner = reply.innermost_message().unwrap();
    // Subnet 8 does not allow rapid commit: Advertise.
    assert_eq!(inner.msg_type, MSG_ADVERTISE);
    let na = inner.ia_nas().next().unwrap();
    assert_eq!(status_in(&na.options), Some(STATUS_NO_ADDRS_AVAIL));
    let pd = inner.ia_pds().next().unwrap();
    assert_eq!(status_in(&pd.options), Some(STATUS_NO_PREFIX_AVAIL));
}

#[test]
fn interface_client_limit_refuses_only_new_clients() {
    let mut world = World::new();
    let known = client(1);
    let limit = Full(known.as_bytes().to_vec());
    let solicit = |d: &Duid| Packet::from(msg(MSG_SOLICIT, d, vec![ia_na(1, &[])]));
    let (decision, _) = world.decide_with(solicit(&client(2)), "ff02::1:2", &limit, NOW);
    assert_eq!(decision.outcome, Err("interface_client_limit"));
    let (decision, _) = world.decide_with(solicit(&known), "ff02::1:2", &limit, NOW);
    assert!(decision.outcome.is_ok());
}
