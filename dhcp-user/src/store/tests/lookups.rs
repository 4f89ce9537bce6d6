//! Lookups: by every key, through indexes, page by page, expiry and pool counts.

use super::*;

/// Leases are found by address, prefix, client, relay, remote ID and link. (on every backend: see `on_every_backend`)
pub(super) fn lookups_by_every_key(store: &dyn LeaseStore) {
    let relay_a = vec![0, 2, 0, 0, 0, 9, 0xa];
    let relay_b = vec![0, 2, 0, 0, 0, 9, 0xb];
    let remote = vec![0, 0, 0x0d, 0xe9, 1, 2];
    let link: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
    let mut leases = Vec::new();
    for n in 0..20u32 {
        let mut lease = na(n);
        lease.relay_id = Some(if n.is_multiple_of(2) {
            relay_a.clone()
        } else {
            relay_b.clone()
        });
        if n.is_multiple_of(5) {
            lease.remote_id = Some(remote.clone());
            lease.link_address = link;
        }
        leases.push(lease);
    }
    // Client 3 also holds a second IA_NA (iaid 99) and a prefix.
    let mut second_ia = na(3);
    second_ia.address = "2001:db8::ff03".parse().unwrap();
    second_ia.iaid = 99;
    let outer = pd("2001:db8:1000::", 36, 3);
    let inner = pd("2001:db8:1000:ab00::", 56, 4);
    let other = pd("2001:db8:2000::", 48, 5);
    leases.extend([
        second_ia.clone(),
        outer.clone(),
        inner.clone(),
        other.clone(),
    ]);
    store.commit(&upserts(leases.clone()), NOW).unwrap();

    assert_eq!(
        store.get_by_address(na(7).address).unwrap(),
        Some(leases[7].clone())
    );
    assert_eq!(
        store
            .get_by_address("2001:db8::dead".parse().unwrap())
            .unwrap(),
        None
    );
    // An address is not a prefix lease's key, nor the other way round.
    assert_eq!(store.get_by_address(outer.address).unwrap(), None);

    let inside_both: Ipv6Addr = "2001:db8:1000:ab12::77".parse().unwrap();
    assert_eq!(
        store.find_prefixes_containing(inside_both).unwrap(),
        vec![inner.clone(), outer.clone()]
    );
    let inside_outer: Ipv6Addr = "2001:db8:1fff:ffff::1".parse().unwrap();
    assert_eq!(
        store.find_prefixes_containing(inside_outer).unwrap(),
        vec![outer.clone()]
    );
    assert_eq!(
        store.find_prefixes_containing(other.address).unwrap(),
        vec![other.clone()]
    );
    assert!(store
        .find_prefixes_containing("2001:db8:3000::1".parse().unwrap())
        .unwrap()
        .is_empty());

    let client3 = LeaseFilter::Duid {
        duid: na(3).duid,
        iaid: None,
    };
    let mut expected = vec![leases[3].clone(), second_ia.clone(), outer.clone()];
    expected.sort_by_key(Lease::key);
    assert_eq!(store.find(&client3, None, 100).unwrap(), expected);
    let one_ia = LeaseFilter::Duid {
        duid: na(3).duid,
        iaid: Some(99),
    };
    assert_eq!(store.find(&one_ia, None, 100).unwrap(), vec![second_ia]);
    let by_iaid_of_pd = LeaseFilter::Duid {
        duid: na(3).duid,
        iaid: Some(3),
    };
    assert_eq!(
        store.find(&by_iaid_of_pd, None, 100).unwrap(),
        vec![leases[3].clone(), outer]
    );

    let relayed_a = store
        .find(&LeaseFilter::RelayId(relay_a.clone()), None, 100)
        .unwrap();
    assert_eq!(relayed_a.len(), 10);
    assert!(relayed_a
        .iter()
        .all(|l| l.relay_id.as_ref() == Some(&relay_a)));
    assert!(relayed_a.windows(2).all(|w| w[0].key() < w[1].key()));
    // Paged by relay id: 3 + 3 + 3 + 1.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .find(&LeaseFilter::RelayId(relay_a.clone()), after.as_ref(), 3)
            .unwrap();
        after = page.last().map(Lease::key);
        let done = page.len() < 3;
        paged.extend(page);
        if done {
            break;
        }
    }
    assert_eq!(paged, relayed_a);

    let by_remote = store
        .find(&LeaseFilter::RemoteId(remote.clone()), None, 100)
        .unwrap();
    assert_eq!(
        by_remote.iter().map(|l| l.iaid).collect::<Vec<_>>(),
        vec![0, 5, 10, 15]
    );
    let by_link = store
        .find(&LeaseFilter::LinkAddress(link), None, 100)
        .unwrap();
    assert_eq!(by_link, by_remote);
    let direct = store
        .find(&LeaseFilter::LinkAddress(Ipv6Addr::UNSPECIFIED), None, 1000)
        .unwrap();
    assert_eq!(direct.len(), leases.len() - 4);
    assert!(store
        .find(&LeaseFilter::RemoteId(vec![1]), None, 10)
        .unwrap()
        .is_empty());
}

#[test]
fn lookups_use_indexes() {
    let scratch = Scratch::new("plans");
    drop(open(&scratch));
    let conn = rusqlite::Connection::open(scratch.db()).unwrap();
    let plan = |sql: &str| -> String {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, String>(3)).unwrap();
        rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
    };
    let page = "(lease_type, address, prefix_len) > (0, x'00', 0) \
                ORDER BY lease_type, address, prefix_len LIMIT 10";
    for (sql, index) in [
        (format!("SELECT * FROM lease6 WHERE {page}"), "PRIMARY KEY"),
        (
            format!("SELECT * FROM lease6 WHERE relay_id = x'01' AND {page}"),
            "lease6_by_relay_id",
        ),
        (
            format!("SELECT * FROM lease6 WHERE remote_id = x'01' AND {page}"),
            "lease6_by_remote_id",
        ),
        (
            format!("SELECT * FROM lease6 WHERE link_address = x'01' AND {page}"),
            "lease6_by_link_address",
        ),
        (
            format!("SELECT * FROM lease6 WHERE duid = x'01' AND iaid = 1 AND {page}"),
            "lease6_by_duid",
        ),
        (
            "SELECT * FROM lease6 WHERE state = 0 AND expire < 5 ORDER BY expire LIMIT 9"
                .to_owned(),
            "lease6_by_expire",
        ),
        (
            "SELECT subnet_id, lease_type, count(*) FROM lease6 WHERE state = 0 AND expire > 5 \
             GROUP BY subnet_id, lease_type"
                .to_owned(),
            "COVERING INDEX lease6_by_expire",
        ),
        (
            "SELECT * FROM lease_changes WHERE seq >= (SELECT seq FROM lease_changes \
             WHERE at >= 5 ORDER BY at, seq LIMIT 1) ORDER BY seq LIMIT 9"
                .to_owned(),
            "COVERING INDEX lease_changes_by_at",
        ),
    ] {
        let plan = plan(&sql);
        println!("plan: {sql}\n   -> {plan}");
        assert!(plan.contains(index), "{sql}\n  plan: {plan}");
        // Every lookup is an index seek: no full scan, no sort of the whole selection.
        assert!(!plan.contains("SCAN"), "{sql}\n  plan: {plan}");
        assert!(
            !plan.contains("USE TEMP B-TREE FOR ORDER BY"),
            "{sql}\n  plan: {plan}"
        );
    }
}

/// Paged scans return every lease once, in key order. (on every backend: see `on_every_backend`)
pub(super) fn pagination_returns_every_lease_once_in_order(store: &dyn LeaseStore) {
    let total = 10_000u32;
    // Inserted in scrambled order, mixed NA and PD, so order comes from the store.
    let mut leases: Vec<Lease> = (0..total)
        .map(|i| {
            let n = i.wrapping_mul(7919) % total;
            if n.is_multiple_of(4) {
                let mut lease = pd("2001:db8::", 64, n);
                lease.address = Ipv6Addr::from(0x2001_0db8_8000_u128 << 80 | u128::from(n) << 64);
                lease
            } else {
                na(n)
            }
        })
        .collect();
    for chunk in leases.chunks(2500) {
        store.commit(&upserts(chunk.to_vec()), NOW).unwrap();
    }
    let scanned: Vec<Lease> = LeasePages::new(store, LeaseFilter::All, 333)
        .map(Result::unwrap)
        .collect();
    leases.sort_by_key(Lease::key);
    assert_eq!(scanned.len(), total as usize);
    assert!(
        scanned.windows(2).all(|w| w[0].key() < w[1].key()),
        "strictly increasing keys"
    );
    assert_eq!(scanned, leases);
    // The page API directly: a page boundary exactly at the end returns an empty last page.
    let mut seen = BTreeSet::new();
    let mut after: Option<LeaseKey> = None;
    loop {
        let page = store.leases_after(after.as_ref(), 1000).unwrap();
        if page.is_empty() {
            break;
        }
        for lease in &page {
            assert!(seen.insert(lease.key()), "duplicate {:?}", lease.key());
        }
        after = page.last().map(Lease::key);
    }
    assert_eq!(seen.len(), total as usize);
    assert_eq!(
        store.leases_after(Some(&leases[9_999].key()), 10).unwrap(),
        vec![]
    );
    assert_eq!(
        store.leases_after(Some(&leases[4_999].key()), 1).unwrap(),
        vec![leases[5_000].clone()]
    );
}

/// A scan in client order gives every lease of the selection once, sorted by (DUID, IAID,
/// key), so each client's leases (two IA_NA and a prefix here) come one after another even
/// across page boundaries; the filter applies as in key order.
/// (on every backend: see `on_every_backend`)
pub(super) fn client_order_pages_keep_each_clients_leases_together(store: &dyn LeaseStore) {
    let relay = vec![0, 2, 0, 0, 0, 9, 0xa];
    let mut leases = Vec::new();
    for n in 0..300u32 {
        // Scrambled so that key order and client order differ.
        let m = n.wrapping_mul(7919) % 300;
        let mut lease = na(m);
        lease.address = Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(n));
        if m.is_multiple_of(3) {
            lease.relay_id = Some(relay.clone());
        }
        let mut second = lease.clone();
        second.address = Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(n) | 0x1_0000);
        second.iaid = m + 1000;
        let mut prefix = pd("2001:db8:8000::", 56, m);
        prefix.address = Ipv6Addr::from(0x2001_0db8_8000_u128 << 80 | u128::from(n) << 72);
        prefix.relay_id = lease.relay_id.clone();
        leases.extend([lease, second, prefix]);
    }
    store.commit(&upserts(leases.clone()), NOW).unwrap();
    let order = |l: &Lease| (l.duid.clone(), l.iaid, l.key());
    let scanned: Vec<Lease> = LeasePages::by_client(store, LeaseFilter::All, 7)
        .map(Result::unwrap)
        .collect();
    let mut expected = leases.clone();
    expected.sort_by_key(order);
    assert_eq!(scanned, expected);
    let clients: Vec<&[u8]> = scanned.iter().map(|l| l.duid.as_slice()).collect();
    let mut runs = clients.clone();
    runs.dedup();
    assert_eq!(
        runs.len(),
        300,
        "each client's three leases are consecutive"
    );
    let relayed: Vec<Lease> = LeasePages::by_client(store, LeaseFilter::RelayId(relay.clone()), 5)
        .map(Result::unwrap)
        .collect();
    let mut expected: Vec<Lease> = leases
        .into_iter()
        .filter(|l| l.relay_id.as_ref() == Some(&relay))
        .collect();
    expected.sort_by_key(order);
    assert_eq!(relayed, expected);
}

/// Leases due for reclaim, and active counts per subnet and type. (on every backend: see `on_every_backend`)
pub(super) fn expiry_and_pool_counts(store: &dyn LeaseStore) {
    let mut leases = Vec::new();
    for n in 0..10u32 {
        let mut lease = na(n);
        lease.assign(NOW + i64::from(n) * 100, 0, 60);
        lease.subnet_id = 1 + n % 2;
        leases.push(lease);
    }
    leases[2].state = LeaseState::Released;
    leases[3].state = LeaseState::Declined;
    leases[4].state = LeaseState::ExpiredReclaimed;
    let mut prefix = pd("2001:db8:9900::", 56, 11);
    prefix.assign(NOW, 0, 10_000);
    leases.push(prefix);
    store.commit(&upserts(leases.clone()), NOW).unwrap();

    // expire of lease n is NOW + n*100 + 60; before NOW + 661 that is n <= 6, minus states.
    let due = store.expired_before(NOW + 661, 100).unwrap();
    assert_eq!(
        due.iter().map(|l| l.iaid).collect::<Vec<_>>(),
        vec![0, 1, 5, 6]
    );
    assert_eq!(store.expired_before(NOW + 661, 2).unwrap().len(), 2);
    // Strictly before: a lease expiring exactly at t is not yet due.
    assert_eq!(store.expired_before(NOW + 60, 100).unwrap(), vec![]);

    let counts = store.active_counts(NOW + 450).unwrap();
    // Active at NOW+450: n with expire > 450 → n >= 4 (n*100+60 > 450), excluding state 4.
    // Subnet 1 (even n): 6, 8 → 2; subnet 2 (odd n): 5, 7, 9 → 3; PD in subnet 1.
    assert_eq!(
        counts,
        vec![
            PoolCount {
                subnet_id: 1,
                lease_type: LeaseType::Na,
                active: 2
            },
            PoolCount {
                subnet_id: 1,
                lease_type: LeaseType::Pd,
                active: 1
            },
            PoolCount {
                subnet_id: 2,
                lease_type: LeaseType::Na,
                active: 3
            },
        ]
    );
    let active_by_helper = leases.iter().filter(|l| l.is_active(NOW + 450)).count() as u64;
    assert_eq!(
        counts.iter().map(|c| c.active).sum::<u64>(),
        active_by_helper
    );
}
