//! Active leasequery (RFC 7653) on loopback: live updates for every kind of change, catch-up
//! with CatchUpComplete, DataMissing, keepalives, refusals, and a reconnect without gaps or
//! duplicates.

mod leasequery_common;

use std::net::Ipv6Addr;
use std::time::Duration;

use dhcp_user::lease_events::LeaseEventKind;
use dhcp_user::leasequery::client::{
    ActiveEvent, ActiveLeasequery, BindingState, BindingTable, Query, QueryOptions,
};
use dhcp_user::leasequery::LeasequerySettings;
use dhcp_user::proto::Duid;
use dhcp_user::store::{LeaseChange, LeaseState, LeaseStore};
use leasequery_common::*;

const SECOND: Duration = Duration::from_secs(1);

fn active_all(xid: [u8; 3], extra: &[u8]) -> Vec<u8> {
    query(22, xid, 4, Ipv6Addr::UNSPECIFIED, &[], extra)
}

/// Reads the next update within 1.5 s: (address, preferred, valid, CLT_TIME).
async fn next_update(s: &mut tokio::net::TcpStream, xid: [u8; 3]) -> (Ipv6Addr, u32, u32, u32) {
    let bytes = read_frame(s, Duration::from_millis(1500))
        .await
        .expect("update");
    let m = parse_msg(&bytes);
    assert_eq!((m.msg_type, m.xid), (17, xid), "LEASEQUERY-DATA");
    assert_eq!(m.codes(), vec![100, 45]);
    let base = m.base_time().unwrap();
    let drift = (i64::from(base) - now()).abs();
    assert!(drift <= 1, "LQ_BASE_TIME is the server's current time");
    let data = m.client_data().unwrap();
    assert_eq!(
        data.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        vec![1, 5, 46]
    );
    let (a, p, v) = iaaddr(find(&data, 5)[0]);
    let clt = be32(find(&data, 46)[0]);
    (a, p, v, clt)
}

/// Checks an update against a lease given at `cltt`: remaining lifetimes and CLT_TIME agree
/// with the base time of the message (which is at most a second after now).
fn check_live(update: (Ipv6Addr, u32, u32, u32), a: Ipv6Addr, cltt: i64) {
    let (seen, p, v, clt) = update;
    assert_eq!(seen, a);
    let elapsed = (now() - cltt) as u32;
    assert!(
        clt == elapsed || clt + 1 == elapsed,
        "CLT_TIME {clt}, elapsed {elapsed}"
    );
    assert_eq!(
        (p, v),
        (3600 - clt, 7200 - clt),
        "lifetimes left at the base time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_reaches_the_subscriber_within_a_second() {
    let f = Fixture::start(settings()).await;
    let mut s = f.connect().await;
    send(&mut s, &active_all([5, 5, 5], &[])).await;
    let reply = read_msg(&mut s).await;
    assert_eq!((reply.msg_type, reply.xid), (15, [5, 5, 5]));
    assert_eq!(reply.get(1), Some(&REQUESTOR_DUID[..]));
    assert_eq!(reply.get(2), Some(&SERVER_DUID[..]));
    assert_eq!(reply.get(13), None);
    assert!(reply.base_time().is_some());

    let a = addr("2001:db8:1::55");
    let t = now();
    let mut lease = na(a, 55, LINK_A, t);
    f.change(LeaseEventKind::Granted, &[lease.clone()], t);
    check_live(next_update(&mut s, [5, 5, 5]).await, a, t);

    // A renewal answered by the fast path: published before its (batched) commit.
    lease.assign(t - 30, 3600, 7200);
    let _ = f.events.send(dhcp_user::lease_events::LeaseEvent {
        kind: LeaseEventKind::Renewed,
        lease: lease.clone(),
    });
    check_live(next_update(&mut s, [5, 5, 5]).await, a, t - 30);

    lease.assign(t, 3600, 7200);
    f.change(LeaseEventKind::Renewed, &[lease.clone()], t);
    check_live(next_update(&mut s, [5, 5, 5]).await, a, t);

    for (kind, state) in [
        (LeaseEventKind::Released, LeaseState::Released),
        (LeaseEventKind::Declined, LeaseState::Declined),
        (LeaseEventKind::Expired, LeaseState::ExpiredReclaimed),
    ] {
        lease.state = state;
        f.change(kind, &[lease.clone()], t);
        let (addr_seen, p, v, _) = next_update(&mut s, [5, 5, 5]).await;
        assert_eq!((addr_seen, p, v), (a, 0, 0), "{kind:?}: lifetimes 0");
    }
    lease.state = LeaseState::Assigned;
    f.change(LeaseEventKind::Granted, &[lease.clone()], t);
    assert!(next_update(&mut s, [5, 5, 5]).await.2 >= 7198);
    f.change(LeaseEventKind::Cleared, &[lease.clone()], t);
    assert_eq!(
        next_update(&mut s, [5, 5, 5]).await.2,
        0,
        "cleared: lifetimes 0"
    );

    // Bindings outside the query's link are not sent.
    let mut s2 = f.connect().await;
    send(&mut s2, &query(22, [6, 6, 6], 4, LINK_B, &[], &[])).await;
    assert_eq!(read_msg(&mut s2).await.msg_type, 15);
    let t = now();
    f.change(
        LeaseEventKind::Granted,
        &[na(addr("2001:db8:1::56"), 56, LINK_A, t)],
        t,
    );
    f.change(
        LeaseEventKind::Granted,
        &[na(addr("2001:db8:2::57"), 57, LINK_B, t)],
        t,
    );
    assert_eq!(
        next_update(&mut s2, [6, 6, 6]).await.0,
        addr("2001:db8:2::57")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catch_up_then_complete_then_live() {
    let f = Fixture::start(settings()).await;
    let t0 = now() - 20;
    for n in 1..=3u32 {
        let lease = na(addr(&format!("2001:db8:1::{n}")), n, LINK_A, t0);
        f.store.commit(&[LeaseChange::Upsert(lease)], t0).unwrap();
    }
    // Client 2 renewed later: the catch-up sends its current state once, after the others.
    f.store
        .commit(
            &[LeaseChange::Upsert(na(
                addr("2001:db8:1::2"),
                2,
                LINK_A,
                t0 + 10,
            ))],
            t0 + 10,
        )
        .unwrap();
    let mut s = f.connect().await;
    let start = opt(101, &lq_time(t0 - 5));
    send(&mut s, &active_all([3, 3, 3], &start)).await;
    let reply = read_msg(&mut s).await;
    assert_eq!((reply.msg_type, reply.status().0), (15, 0));
    let mut seen = Vec::new();
    for _ in 0..3 {
        let (a, _, v, clt) = next_update(&mut s, [3, 3, 3]).await;
        seen.push((a, v > 0, clt));
    }
    let elapsed = (now() - t0) as u32;
    assert_eq!(
        seen.iter().map(|x| x.0).collect::<Vec<_>>(),
        vec![
            addr("2001:db8:1::1"),
            addr("2001:db8:1::3"),
            addr("2001:db8:1::2")
        ]
    );
    assert!(seen[2].2 + 10 >= elapsed - 1 && seen[2].2 + 10 <= elapsed + 1);
    let complete = read_msg(&mut s).await;
    assert_eq!((complete.msg_type, complete.xid), (17, [3, 3, 3]));
    assert_eq!(complete.status().0, 13, "CatchUpComplete");
    assert!(complete.get(45).is_none());
    let t = now();
    f.change(
        LeaseEventKind::Granted,
        &[na(addr("2001:db8:1::9"), 9, LINK_A, t)],
        t,
    );
    assert_eq!(
        next_update(&mut s, [3, 3, 3]).await.0,
        addr("2001:db8:1::9")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_missing_when_the_history_was_pruned_then_live() {
    let f = Fixture::start(settings()).await;
    let t0 = now() - 100;
    f.store
        .commit(
            &[LeaseChange::Upsert(na(
                addr("2001:db8:1::1"),
                1,
                LINK_A,
                t0,
            ))],
            t0,
        )
        .unwrap();
    f.store
        .commit(
            &[LeaseChange::Upsert(na(
                addr("2001:db8:1::2"),
                2,
                LINK_A,
                t0 + 60,
            ))],
            t0 + 60,
        )
        .unwrap();
    f.store.prune_changes(t0 + 30).unwrap();
    let mut s = f.connect().await;
    send(&mut s, &active_all([4, 4, 4], &opt(101, &lq_time(t0)))).await;
    let reply = read_msg(&mut s).await;
    assert_eq!((reply.msg_type, reply.status().0), (15, 12), "DataMissing");
    let t = now();
    f.change(
        LeaseEventKind::Granted,
        &[na(addr("2001:db8:1::3"), 3, LINK_A, t)],
        t,
    );
    assert_eq!(
        next_update(&mut s, [4, 4, 4]).await.0,
        addr("2001:db8:1::3")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_at_the_configured_interval() {
    let f = Fixture::start(LeasequerySettings {
        idle_timeout: Duration::from_secs(2),
        keepalive_interval: Duration::from_secs(1),
        ..settings()
    })
    .await;
    let mut s = f.connect().await;
    send(&mut s, &active_all([1, 1, 1], &[])).await;
    assert_eq!(read_msg(&mut s).await.msg_type, 15);
    for _ in 0..3 {
        let started = tokio::time::Instant::now();
        let bytes = read_frame(&mut s, Duration::from_millis(1600))
            .await
            .unwrap();
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(800),
            "not before the keepalive interval"
        );
        let m = parse_msg(&bytes);
        assert_eq!((m.msg_type, m.xid), (17, [1, 1, 1]));
        assert_eq!(m.codes(), vec![100], "keepalive: only LQ_BASE_TIME");
    }
    assert!(f.stats.get("keepalives_sent") >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals() {
    let disabled = Fixture::start(LeasequerySettings {
        active_enabled: false,
        ..settings()
    })
    .await;
    let mut s = disabled.connect().await;
    send(&mut s, &active_all([2, 0, 1], &[])).await;
    let reply = read_msg(&mut s).await;
    assert_eq!(
        (reply.msg_type, reply.xid, reply.status().0),
        (15, [2, 0, 1], 14),
        "NotSupported"
    );

    let closed = Fixture::start(LeasequerySettings {
        allow: Vec::new(),
        ..settings()
    })
    .await;
    let mut s = closed.connect().await;
    send(&mut s, &active_all([2, 0, 2], &[])).await;
    assert_eq!(read_msg(&mut s).await.status().0, 10, "NotAllowed");

    let open = Fixture::start(settings()).await;
    let mut s = open.connect().await;
    send(
        &mut s,
        &query(
            22,
            [2, 0, 3],
            1,
            Ipv6Addr::UNSPECIFIED,
            &iaaddr_opt(addr("2001:db8:1::1")),
            &[],
        ),
    )
    .await;
    assert_eq!(
        read_msg(&mut s).await.status().0,
        7,
        "by-address is no active query type"
    );
}

fn requestor() -> Duid {
    Duid::new(REQUESTOR_DUID.to_vec()).unwrap()
}

/// Reads updates until `wait` passes without one; applies them to `table`, returns what changed.
async fn drain(active: &mut ActiveLeasequery, table: &mut BindingTable) -> Vec<BindingState> {
    let mut changed = Vec::new();
    loop {
        match active.next(Duration::from_millis(700)).await {
            Ok(ActiveEvent::Update(binding)) => changed.extend(table.apply(&binding)),
            Ok(ActiveEvent::CatchUpComplete { .. } | ActiveEvent::Keepalive { .. }) => {}
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => return changed,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_with_start_time_has_no_gaps_or_duplicates() {
    let f = Fixture::start(settings()).await;
    let all = Query::LinkAddress(Ipv6Addr::UNSPECIFIED);
    let mut table = BindingTable::new();
    let mut history: Vec<BindingState> = Vec::new();

    let (active, _) = ActiveLeasequery::start(
        f.addr,
        &requestor(),
        &all,
        &QueryOptions::default(),
        SECOND * 5,
    )
    .await
    .unwrap();
    let mut active = active.unwrap();
    let t = now();
    let mut leases: Vec<_> = (1..=4u32)
        .map(|n| na(addr(&format!("2001:db8:1::{n}")), n, LINK_A, t))
        .collect();
    f.change(LeaseEventKind::Granted, &leases, t);
    history.extend(drain(&mut active, &mut table).await);
    assert_eq!(history.len(), 4);
    let resume = active.last_base_time.unwrap();
    drop(active);

    // While disconnected: a renewal, a release, a grant. The catch-up from the last base time
    // also repeats the grants of that second; the table recognises them as known.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    leases[0].assign(now(), 3600, 7200);
    f.change(LeaseEventKind::Renewed, &[leases[0].clone()], now());
    leases[1].state = LeaseState::Released;
    f.change(LeaseEventKind::Released, &[leases[1].clone()], now());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let l5 = na(addr("2001:db8:1::5"), 5, LINK_A, now());
    f.change(LeaseEventKind::Granted, &[l5], now());

    let options = QueryOptions {
        start_time: Some(resume),
        ..QueryOptions::default()
    };
    let (active, reply) = ActiveLeasequery::start(f.addr, &requestor(), &all, &options, SECOND * 5)
        .await
        .unwrap();
    assert_eq!(reply.status, 0);
    let mut active = active.unwrap();
    let after = drain(&mut active, &mut table).await;
    // Exactly the three changes made while away, each once.
    let mut got: Vec<(Ipv6Addr, bool)> =
        after.iter().map(|s| (s.address, s.is_removed())).collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (addr("2001:db8:1::1"), false),
            (addr("2001:db8:1::2"), true),
            (addr("2001:db8:1::5"), false)
        ]
    );
    history.extend(after);
    // No duplicates overall, and the table matches the store.
    let mut unique = history.clone();
    unique.sort_by_key(|s| (s.address, s.cltt, s.expire));
    unique.dedup();
    assert_eq!(unique.len(), history.len());
    for n in 1..=5u32 {
        let a = addr(&format!("2001:db8:1::{n}"));
        let stored = f.store.get_by_address(a).unwrap().unwrap();
        let state = table.get(a, 128).unwrap();
        assert_eq!(state.cltt, Some(stored.cltt));
        assert_eq!(state.is_removed(), !stored.is_active(now()), "{a}");
        if !state.is_removed() {
            assert_eq!(state.expire, Some(stored.expire));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_an_active_query_with_query_terminated() {
    let f = Fixture::start(settings()).await;
    let mut s = f.connect().await;
    send(&mut s, &active_all([8, 0, 8], &[])).await;
    assert_eq!(read_msg(&mut s).await.msg_type, 15);
    f.shutdown.send(true).unwrap();
    let done = read_msg(&mut s).await;
    assert_eq!(
        (done.msg_type, done.xid),
        (16, [8, 0, 8]),
        "LEASEQUERY-DONE"
    );
    assert_eq!(done.status().0, 11, "QueryTerminated");
    assert!(read_frame(&mut s, Duration::from_secs(5)).await.is_none());
}
