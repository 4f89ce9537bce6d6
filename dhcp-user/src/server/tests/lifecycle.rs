//! A binding's life: Request, Renew, Rebind, Release and Decline.

use super::*;

#[test]
fn request_renew_rebind_release_lifecycle() {
    let mut world = World::new();
    let sid = DhcpOption::ServerId(server_duid());
    let (_, adv) = world.decide(msg(MSG_SOLICIT, &client(1), vec![ia_na(1, &[])]));
    let offered = adv
        .unwrap()
        .ia_nas()
        .next()
        .unwrap()
        .ia_addrs()
        .next()
        .unwrap()
        .addr;
    let offered_s = offered.to_string();

    // Another client soliciting meanwhile is offered something else.
    let (_, adv2) = world.decide(msg(MSG_SOLICIT, &client(2), vec![ia_na(1, &[])]));
    assert_ne!(
        adv2.unwrap()
            .ia_nas()
            .next()
            .unwrap()
            .ia_addrs()
            .next()
            .unwrap()
            .addr,
        offered
    );

    let (decision, reply) = world.decide(msg(
        MSG_REQUEST,
        &client(1),
        vec![sid.clone(), ia_na(1, &[&offered_s]), ORO()],
    ));
    let reply = reply.unwrap();
    assert_eq!(reply.msg_type, MSG_REPLY);
    assert_eq!(
        codes(&reply),
        vec![
            OPT_SERVERID,
            OPT_CLIENTID,
            OPT_IA_NA,
            OPT_DNS_SERVERS,
            OPT_DOMAIN_LIST
        ]
    );
    assert_eq!(
        reply
            .ia_nas()
            .next()
            .unwrap()
            .ia_addrs()
            .next()
            .unwrap()
            .addr,
        offered
    );
    assert_eq!(decision.events[0].kind, LeaseEventKind::Granted);

    // Renew: the same address, extended; an address not ours comes back with lifetimes 0.
    let (decision, reply) = world.decide(msg(
        MSG_RENEW,
        &client(1),
        vec![sid.clone(), ia_na(1, &[&offered_s, "2001:db8:1::1ff"])],
    ));
    let na = reply.unwrap().ia_nas().next().unwrap().clone();
    let addrs: Vec<_> = na.ia_addrs().map(|a| (a.addr, a.valid)).collect();
    assert_eq!(addrs, vec![(offered, 2000), (addr("2001:db8:1::1ff"), 0)]);
    assert_eq!(decision.events[0].kind, LeaseEventKind::Renewed);

    // Rebind (no Server ID) extends too.
    let (_, reply) = world.decide(msg(MSG_REBIND, &client(1), vec![ia_na(1, &[&offered_s])]));
    assert_eq!(
        reply
            .unwrap()
            .ia_nas()
            .next()
            .unwrap()
            .ia_addrs()
            .next()
            .unwrap()
            .valid,
        2000
    );

    // Release: the lease is Released; the unknown IA gets NoBinding; message status Success.
    let (decision, reply) = world.decide(msg(
        MSG_RELEASE,
        &client(1),
        vec![
            sid.clone(),
            ia_na(1, &[&offered_s]),
            ia_na(9, &["2001:db8:1::150"]),
        ],
    ));
    let reply = reply.unwrap();
    assert_eq!(
        codes(&reply),
        vec![OPT_SERVERID, OPT_CLIENTID, OPT_IA_NA, OPT_STATUS_CODE]
    );
    assert_eq!(status_in(&reply.options), Some(STATUS_SUCCESS));
    let ia = reply.ia_nas().next().unwrap();
    assert_eq!(
        (ia.iaid, status_in(&ia.options)),
        (9, Some(STATUS_NO_BINDING))
    );
    assert_eq!(decision.events[0].kind, LeaseEventKind::Released);
    assert_eq!(
        world.leases[&LeaseKey::na(offered)].state,
        LeaseState::Released
    );

    // Within expiry + grace the released address is not given to another client ...
    let (_, adv) = world.decide(msg(MSG_SOLICIT, &client(3), vec![ia_na(1, &[&offered_s])]));
    assert_ne!(
        adv.unwrap()
            .ia_nas()
            .next()
            .unwrap()
            .ia_addrs()
            .next()
            .unwrap()
            .addr,
        offered
    );
    // ... but the client that had it gets it back.
    let (_, adv) = world.decide(msg(MSG_SOLICIT, &client(1), vec![ia_na(1, &[])]));
    assert_eq!(
        adv.unwrap()
            .ia_nas()
            .next()
            .unwrap()
            .ia_addrs()
            .next()
            .unwrap()
            .addr,
        offered
    );
}

/// A Release is the client's last transaction: its time becomes the lease's CLT (leasequery's
/// CLT_TIME counts from it, not from the last Renew), while the expiry does not move.
#[test]
fn release_moves_the_last_transaction_time_but_not_the_expiry() {
    let mut world = World::new();
    let sid = DhcpOption::ServerId(server_duid());
    let (_, reply) = world.decide(msg(
        MSG_SOLICIT,
        &client(1),
        vec![ia_na(1, &[]), DhcpOption::RapidCommit],
    ));
    let address = reply
        .unwrap()
        .ia_nas()
        .next()
        .unwrap()
        .ia_addrs()
        .next()
        .unwrap()
        .addr;
    let granted = world.leases[&LeaseKey::na(address)].clone();
    assert_eq!(granted.cltt, NOW);
    let later = NOW + 300;
    let packet: Packet = msg(
        MSG_RELEASE,
        &client(1),
        vec![sid, ia_na(1, &[&address.to_string()])],
    )
    .into();
    let (decision, _) = world.decide_with(packet, "ff02::1:2", &NoLimit, later);
    assert_eq!(decision.events[0].kind, LeaseEventKind::Released);
    let released = &world.leases[&LeaseKey::na(address)];
    assert_eq!(released.state, LeaseState::Released);
    assert_eq!(released.cltt, later, "CLT is the Release");
    assert_eq!(released.expire, granted.expire, "the expiry stays");
    assert_eq!(
        released.cltt + i64::from(released.preferred_lifetime),
        granted.cltt + i64::from(granted.preferred_lifetime),
        "the end of the preferred lifetime stays"
    );
    assert!(released.validate().is_ok());
}

#[test]
fn renew_without_binding_and_taken_address_is_no_binding() {
    let mut world = World::new();
    let sid = DhcpOption::ServerId(server_duid());
    world.decide(msg(
        MSG_SOLICIT,
        &client(1),
        vec![ia_na(1, &[]), DhcpOption::RapidCommit],
    ));
    let taken = world.leases.keys().next().unwrap().address.to_string();
    let (decision, reply) = world.decide(msg(
        MSG_RENEW,
        &client(2),
        vec![sid.clone(), ia_na(4, &[&taken])],
    ));
    let ia = reply.unwrap().ia_nas().next().unwrap().clone();
    assert_eq!(status_in(&ia.options), Some(STATUS_NO_BINDING));
    assert!(decision.changes.is_empty());
    // A free address in the pool is given back (a lost lease recovers).
    let (decision, reply) = world.decide(msg(
        MSG_RENEW,
        &client(2),
        vec![sid, ia_na(4, &["2001:db8:1::180"])],
    ));
    let ia = reply.unwrap().ia_nas().next().unwrap().clone();
    assert_eq!(ia.ia_addrs().next().unwrap().addr, addr("2001:db8:1::180"));
    assert_eq!(decision.events[0].kind, LeaseEventKind::Granted);
}

#[test]
fn decline_quarantines_the_address() {
    let mut world = World::new();
    let sid = DhcpOption::ServerId(server_duid());
    world.decide(msg(
        MSG_SOLICIT,
        &client(1),
        vec![ia_na(1, &[]), DhcpOption::RapidCommit],
    ));
    let key = *world.leases.keys().next().unwrap();
    let a = key.address.to_string();
    let (decision, reply) = world.decide(msg(MSG_DECLINE, &client(1), vec![sid, ia_na(1, &[&a])]));
    assert_eq!(status_in(&reply.unwrap().options), Some(STATUS_SUCCESS));
    assert_eq!(decision.events[0].kind, LeaseEventKind::Declined);
    let lease = &world.leases[&key];
    assert_eq!(
        (lease.state, lease.expire),
        (LeaseState::Declined, NOW + 500)
    );
    // Nobody, not even the decliner, gets it during the probation.
    for n in [1, 2] {
        let (_, adv) = world.decide(msg(MSG_SOLICIT, &client(n), vec![ia_na(1, &[&a])]));
        assert_ne!(
            adv.unwrap()
                .ia_nas()
                .next()
                .unwrap()
                .ia_addrs()
                .next()
                .unwrap()
                .addr,
            key.address
        );
    }
}

/// The address a reply's first IA_NA holds.
fn first_address(message: &Message) -> Ipv6Addr {
    message
        .ia_nas()
        .next()
        .unwrap()
        .ia_addrs()
        .next()
        .unwrap()
        .addr
}

/// Found by the chaos test (tests/tests/chaos.rs), twice: in a redundant pair, B held a
/// client's lease from A's half of the pool (learnt from A) and gave it to that client again on
/// a Solicit and Request, first when B's copy had lapsed, then when it was still live in B's
/// copy though the client had released it to A (the pair's link cut): both times A, which owns
/// that half, had given it to another client meanwhile. A Solicit or Request to B gets one of
/// B's own; only a Renew or Rebind of a live one (failover) extends the peer's.
#[test]
fn a_lease_in_the_peer_s_half_is_only_extended_by_a_renew_of_a_live_one() {
    let half = |which: &str| format!("{CONFIG}\n[leasequery]\npool-half = \"{which}\"\n");
    let mut a = World::with_config(&half("lower"));
    let mut b = World::with_config(&half("upper"));
    let (_, adv) = a.decide(msg(MSG_SOLICIT, &client(1), vec![ia_na(1, &[])]));
    let from_a = first_address(&adv.unwrap());
    let (_, reply) = a.decide(msg(
        MSG_REQUEST,
        &client(1),
        vec![
            DhcpOption::ServerId(server_duid()),
            ia_na(1, &[&from_a.to_string()]),
        ],
    ));
    assert_eq!(first_address(&reply.unwrap()), from_a);
    assert!(from_a < addr("2001:db8:1::180"), "A's half: {from_a}");
    let granted = a.leases.get(&LeaseKey::na(from_a)).unwrap().clone();

    // B learnt it released (or expired): a new Solicit and a Request naming it get B's own.
    for state in [LeaseState::Released, LeaseState::ExpiredReclaimed] {
        let mut lapsed = granted.clone();
        lapsed.state = state;
        b.leases.insert(lapsed.key(), lapsed);
        let (_, adv) = b.decide(msg(MSG_SOLICIT, &client(1), vec![ia_na(1, &[])]));
        let offered = first_address(&adv.unwrap());
        assert!(
            offered >= addr("2001:db8:1::180"),
            "{state:?}: B offered {offered}"
        );
        let (_, reply) = b.decide(msg(
            MSG_REQUEST,
            &client(1),
            vec![
                DhcpOption::ServerId(server_duid()),
                ia_na(1, &[&from_a.to_string()]),
            ],
        ));
        let got = first_address(&reply.unwrap());
        assert!(got >= addr("2001:db8:1::180"), "{state:?}: B granted {got}");
        b.leases.retain(|key, _| *key == LeaseKey::na(from_a));
    }

    // Live at B, but a Solicit: one of B's own, as the client may have released A's to A.
    b.leases.insert(granted.key(), granted.clone());
    let (_, adv) = b.decide(msg(MSG_SOLICIT, &client(1), vec![ia_na(1, &[])]));
    assert!(first_address(&adv.unwrap()) >= addr("2001:db8:1::180"));

    // A Rebind of the live one (A died, the client fails over): B extends A's lease; a lapsed
    // one it does not.
    let rebind = || {
        msg(
            MSG_REBIND,
            &client(1),
            vec![ia_na(1, &[&from_a.to_string()])],
        )
    };
    let (_, reply) = b.decide(rebind());
    let reply = reply.unwrap();
    let ia = reply.ia_nas().next().unwrap();
    let kept = ia.ia_addrs().find(|a| a.addr == from_a).unwrap();
    assert!(kept.valid > 0, "the live lease is extended: {reply:?}");
    let mut lapsed = granted.clone();
    lapsed.expire = NOW - 1;
    b.leases.insert(lapsed.key(), lapsed);
    let (_, reply) = b.decide(rebind());
    let reply = reply.unwrap();
    let ia = reply.ia_nas().next().unwrap();
    assert!(
        ia.ia_addrs().all(|a| a.addr != from_a || a.valid == 0),
        "a lapsed lease of the peer's is not extended: {reply:?}"
    );
}

/// The likeliest path to what the chaos test (tests/tests/chaos.rs) saw, A taking back leases
/// of its own before their end (none since this fix): A held two rows of one client's IA, a stale
/// live copy of a lease from B's half (the client had released it to B while the pair's link was
/// cut) and A's own lease the client renews, whose later expiries A's full disk had not
/// recorded. A Renew naming A's lease got the peer's one extended instead and A's own with
/// lifetime 0: a lease taken back before its end. The lease the client names comes first.
#[test]
fn a_renew_extends_the_lease_the_client_names_over_a_stale_copy_of_the_peer_s() {
    let mut a = World::with_config(&format!("{CONFIG}\n[leasequery]\npool-half = \"lower\"\n"));
    let sid = DhcpOption::ServerId(server_duid());
    let (_, adv) = a.decide(msg(MSG_SOLICIT, &client(1), vec![ia_na(1, &[])]));
    let own = first_address(&adv.unwrap());
    a.decide(msg(
        MSG_REQUEST,
        &client(1),
        vec![sid.clone(), ia_na(1, &[&own.to_string()])],
    ));
    // A's row lapsed in the store (the renewals A's fast path told of were not recorded).
    let mut lapsed = a.leases.get(&LeaseKey::na(own)).unwrap().clone();
    lapsed.expire = NOW - 5;
    a.leases.insert(lapsed.key(), lapsed.clone());
    // A stale, live copy of a lease of B's half, same client and IAID, newer.
    let mut peer = lapsed.clone();
    peer.address = addr("2001:db8:1::1c0");
    peer.cltt = NOW - 2;
    peer.expire = NOW + 1000;
    a.leases.insert(peer.key(), peer);
    let (_, reply) = a.decide(msg(
        MSG_RENEW,
        &client(1),
        vec![sid, ia_na(1, &[&own.to_string()])],
    ));
    let reply = reply.unwrap();
    let ia = reply.ia_nas().next().unwrap();
    let renewed = ia
        .ia_addrs()
        .find(|x| x.addr == own)
        .expect("the named lease");
    assert!(
        renewed.valid > 0,
        "the lease the client names is extended: {reply:?}"
    );
    assert!(ia.ia_addrs().all(|x| x.addr != addr("2001:db8:1::1c0")));
}
