//! Tests of the lease store: every field and lookup, paging, history, durability and batching.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "dhcp-store-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    fn db(&self) -> PathBuf {
        self.0.join("leases.db")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const NOW: i64 = 1_700_000_000;

/// An IA_NA lease on 2001:db8::<n>, client DUID derived from `n`.
fn na(n: u32) -> Lease {
    let mut lease = Lease {
        address: Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(n)),
        prefix_len: 128,
        lease_type: LeaseType::Na,
        duid: vec![0, 3, 0, 1, 0xaa, 0xbb, (n >> 8) as u8, n as u8],
        iaid: n,
        subnet_id: 1,
        preferred_lifetime: 0,
        valid_lifetime: 0,
        cltt: 0,
        expire: 0,
        state: LeaseState::Assigned,
        interface: String::new(),
        link_address: Ipv6Addr::UNSPECIFIED,
        relay_id: None,
        remote_id: None,
        relay_info: Vec::new(),
        hostname: String::new(),
    };
    lease.assign(NOW, 1800, 3600);
    lease
}

/// A delegated prefix `prefix/len` for the client of `na(n)`.
fn pd(prefix: &str, len: u8, n: u32) -> Lease {
    let mut lease = na(n);
    lease.lease_type = LeaseType::Pd;
    lease.address = prefix.parse().expect("prefix literal");
    lease.prefix_len = len;
    lease
}

fn upserts(leases: impl IntoIterator<Item = Lease>) -> Vec<LeaseChange> {
    leases.into_iter().map(LeaseChange::Upsert).collect()
}

fn open(scratch: &Scratch) -> SqliteStore {
    SqliteStore::open(scratch.db()).expect("open store")
}

#[test]
fn every_field_round_trips() {
    let scratch = Scratch::new("roundtrip");
    let store = open(&scratch);
    let mut full = pd("2001:db8:ff00::", 56, 7);
    full.duid = vec![
        0, 1, 0, 1, 0x2a, 0x3b, 0x4c, 0x5d, 0, 0x11, 0x22, 0x33, 0x44, 0x55,
    ];
    full.iaid = 0xdead_beef;
    full.subnet_id = u32::MAX;
    full.assign(NOW - 10, u32::MAX - 1, u32::MAX);
    full.state = LeaseState::Declined;
    full.interface = "eth0.42".to_owned();
    full.link_address = "2001:db8:1::1".parse().unwrap();
    full.relay_id = Some(vec![0, 2, 0, 0, 0, 9, 1, 2, 3]);
    full.remote_id = Some(vec![0, 0, 0x0d, 0xe9, b'p', b'o', b'r', b't', b'1']);
    full.relay_info = (0..=255).collect();
    full.hostname = "host.example.".to_owned();
    let mut minimal = na(1);
    minimal.relay_id = Some(Vec::new()); // present but empty stays distinct from absent
    let plain = na(2);
    store
        .commit(
            &upserts([full.clone(), minimal.clone(), plain.clone()]),
            NOW,
        )
        .unwrap();
    for lease in [&full, &minimal, &plain] {
        assert_eq!(store.get(&lease.key()).unwrap().as_ref(), Some(lease));
    }
    for state in [
        LeaseState::Released,
        LeaseState::ExpiredReclaimed,
        LeaseState::Assigned,
    ] {
        let mut changed = full.clone();
        changed.state = state;
        store
            .commit(&[LeaseChange::Upsert(changed.clone())], NOW)
            .unwrap();
        assert_eq!(store.get(&full.key()).unwrap(), Some(changed));
    }
}

#[test]
fn lease_helpers() {
    let lease = na(1);
    assert!(lease.is_active(NOW));
    assert!(lease.is_active(NOW + 3599));
    assert!(!lease.is_active(NOW + 3600));
    assert_eq!(lease.remaining_valid(NOW + 600), 3000);
    assert_eq!(lease.remaining_preferred(NOW + 600), 1200);
    assert_eq!(lease.remaining_preferred(NOW + 2000), 0);
    assert_eq!(lease.remaining_valid(NOW + 9999), 0);
    let mut released = lease.clone();
    released.state = LeaseState::Released;
    assert!(!released.is_active(NOW));
    let prefix = pd("2001:db8:ab00::", 40, 1);
    assert!(prefix.covers("2001:db8:abff:1::5".parse().unwrap()));
    assert!(!prefix.covers("2001:db8:ac00::".parse().unwrap()));
    assert!(lease.covers(lease.address));
    assert!(!lease.covers(na(2).address));
}

#[test]
fn invalid_leases_are_refused_before_writing() {
    let scratch = Scratch::new("invalid");
    let store = open(&scratch);
    let mut na_with_len = na(1);
    na_with_len.prefix_len = 64;
    let host_bits = pd("2001:db8::1", 64, 1);
    let mut too_long = pd("2001:db8::", 64, 1);
    too_long.prefix_len = 129;
    let mut bad_expire = na(1);
    bad_expire.expire += 1;
    let mut preferred_over_valid = na(1);
    preferred_over_valid.preferred_lifetime = preferred_over_valid.valid_lifetime + 1;
    let mut no_duid = na(1);
    no_duid.duid.clear();
    for bad in [
        na_with_len,
        host_bits,
        too_long,
        bad_expire,
        preferred_over_valid,
        no_duid,
    ] {
        // The bad lease rides with a good one: the whole commit is refused, nothing written.
        let err = store
            .commit(&upserts([na(9), bad.clone()]), NOW)
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidLease { .. }),
            "{bad:?} gave {err}"
        );
    }
    assert_eq!(store.get(&na(9).key()).unwrap(), None);
    assert_eq!(store.last_seq().unwrap(), 0);
}

#[test]
fn lookups_by_every_key() {
    let scratch = Scratch::new("lookups");
    let store = open(&scratch);
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

#[test]
fn pagination_returns_every_lease_once_in_order() {
    let scratch = Scratch::new("paging");
    let store = open(&scratch);
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
    let scanned: Vec<Lease> = LeasePages::new(&store, LeaseFilter::All, 333)
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

#[test]
fn expiry_and_pool_counts() {
    let scratch = Scratch::new("expiry");
    let store = open(&scratch);
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

#[test]
fn change_history_records_every_commit() {
    let scratch = Scratch::new("history");
    let store = open(&scratch);
    assert_eq!(store.oldest_change_time().unwrap(), None);
    assert_eq!(store.last_seq().unwrap(), 0);
    let first = store.commit(&upserts([na(1), na(2)]), NOW).unwrap();
    assert_eq!(
        first,
        CommitReceipt {
            at: NOW,
            last_seq: 2
        }
    );
    let mut renewed = na(1);
    renewed.assign(NOW + 100, 1800, 3600);
    let second = store
        .commit(&upserts([renewed.clone()]), NOW + 100)
        .unwrap();
    assert_eq!(second.last_seq, 3);
    // Deleting an absent lease changes nothing and records nothing.
    let third = store
        .commit(
            &[
                LeaseChange::Delete(na(2).key()),
                LeaseChange::Delete(na(77).key()),
            ],
            NOW + 200,
        )
        .unwrap();
    assert_eq!(third.last_seq, 4);
    assert_eq!(store.get(&na(2).key()).unwrap(), None);

    let all = store.changes_since(ChangeCursor::AfterSeq(0), 100).unwrap();
    let summary: Vec<_> = all
        .iter()
        .map(|c| (c.seq, c.at, c.kind, c.lease.iaid))
        .collect();
    assert_eq!(
        summary,
        vec![
            (1, NOW, ChangeKind::Upsert, 1),
            (2, NOW, ChangeKind::Upsert, 2),
            (3, NOW + 100, ChangeKind::Upsert, 1),
            (4, NOW + 200, ChangeKind::Delete, 2),
        ]
    );
    assert_eq!(all[2].lease, renewed);
    assert_eq!(all[3].lease, na(2), "a delete keeps the lease as it was");
    assert_eq!(
        store.changes_since(ChangeCursor::AfterSeq(2), 1).unwrap(),
        vec![all[2].clone()]
    );
    assert_eq!(
        store
            .changes_since(ChangeCursor::SinceTime(NOW + 100), 100)
            .unwrap(),
        all[2..].to_vec()
    );
    assert_eq!(
        store
            .changes_since(ChangeCursor::SinceTime(NOW + 201), 100)
            .unwrap(),
        vec![]
    );
    assert_eq!(store.oldest_change_time().unwrap(), Some(NOW));

    assert_eq!(store.prune_changes(NOW + 100).unwrap(), 2);
    assert_eq!(store.oldest_change_time().unwrap(), Some(NOW + 100));
    assert_eq!(store.prune_changes(NOW + 1000).unwrap(), 2);
    assert_eq!(store.oldest_change_time().unwrap(), None);
    // Sequence numbers are never reused, also after the history was pruned empty.
    assert_eq!(store.last_seq().unwrap(), 4);
    assert_eq!(
        store.commit(&upserts([na(5)]), NOW + 300).unwrap().last_seq,
        5
    );
    assert_eq!(
        store.changes_since(ChangeCursor::AfterSeq(0), 10).unwrap()[0].seq,
        5
    );
    // A clock that stepped back does not make history time go backwards.
    let stepped_back = store.commit(&upserts([na(6)]), NOW + 250).unwrap();
    assert_eq!(
        stepped_back,
        CommitReceipt {
            at: NOW + 300,
            last_seq: 6
        }
    );
    let since = store
        .changes_since(ChangeCursor::SinceTime(NOW + 300), 10)
        .unwrap();
    assert_eq!(since.iter().map(|c| c.seq).collect::<Vec<_>>(), vec![5, 6]);
}

#[test]
fn data_and_meta_survive_reopen() {
    let scratch = Scratch::new("reopen");
    let leases: Vec<Lease> = (0..50).map(na).collect();
    {
        let store = open(&scratch);
        store.commit(&upserts(leases.clone()), NOW).unwrap();
        store
            .set_meta(META_SERVER_DUID, &[0, 1, 0, 1, 9, 9])
            .unwrap();
        store.set_meta("other", b"x").unwrap();
        store.set_meta("other", b"y").unwrap();
    }
    let store = open(&scratch);
    assert_eq!(store.leases_after(None, 100).unwrap(), leases);
    assert_eq!(
        store.get_meta(META_SERVER_DUID).unwrap(),
        Some(vec![0, 1, 0, 1, 9, 9])
    );
    assert_eq!(store.get_meta("other").unwrap(), Some(b"y".to_vec()));
    assert_eq!(store.get_meta("missing").unwrap(), None);
    assert_eq!(
        store.get_meta("schema_version").unwrap(),
        Some(SCHEMA_VERSION.to_string().into_bytes())
    );
    assert_eq!(store.last_seq().unwrap(), 50);
}

#[test]
fn wal_and_full_sync_are_on() {
    let scratch = Scratch::new("pragmas");
    let store = open(&scratch);
    assert_eq!(store.writer_synchronous(), 2, "synchronous=FULL");
    let conn = rusqlite::Connection::open(scratch.db()).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn schema_version_is_checked() {
    let scratch = Scratch::new("schema");
    drop(open(&scratch));
    let conn = rusqlite::Connection::open(scratch.db()).unwrap();
    conn.execute(
        "UPDATE meta SET value = CAST('2' AS BLOB) WHERE name = 'schema_version'",
        [],
    )
    .unwrap();
    drop(conn);
    let err = SqliteStore::open(scratch.db())
        .err()
        .expect("a newer schema is refused");
    assert!(
        matches!(&err, StoreError::SchemaVersion { found, supported: 1, .. } if found == "2"),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&scratch.db().display().to_string()) && text.contains("schema version"),
        "{text}"
    );

    // Another application's SQLite file is refused too, not written into.
    let foreign = scratch.0.join("foreign.db");
    let conn = rusqlite::Connection::open(&foreign).unwrap();
    conn.execute_batch("CREATE TABLE things (x INTEGER)")
        .unwrap();
    drop(conn);
    let err = SqliteStore::open(&foreign)
        .err()
        .expect("a foreign database is refused");
    assert!(matches!(err, StoreError::SchemaVersion { .. }), "{err}");
}

#[test]
fn corrupt_file_gives_an_error_naming_the_path() {
    let scratch = Scratch::new("corrupt");
    let garbage = scratch.0.join("garbage.db");
    std::fs::write(
        &garbage,
        b"this is not an SQLite database, just some text that is long enough".repeat(100),
    )
    .unwrap();
    let err = SqliteStore::open(&garbage)
        .err()
        .expect("garbage is refused");
    assert!(matches!(err, StoreError::Open { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&garbage.display().to_string()), "{text}");
    assert!(text.contains("not a database"), "{text}");

    // A real database whose schema page is overwritten.
    let damaged = scratch.0.join("damaged.db");
    drop(SqliteStore::open(&damaged).unwrap());
    let mut bytes = std::fs::read(&damaged).unwrap();
    let end = bytes.len().min(4096);
    for byte in &mut bytes[100..end] {
        *byte = 0xa5;
    }
    std::fs::write(&damaged, bytes).unwrap();
    let err = SqliteStore::open(&damaged)
        .err()
        .expect("damage is detected");
    assert!(
        err.to_string().contains(&damaged.display().to_string()),
        "{err}"
    );
}

#[test]
fn readers_do_not_wait_for_a_writer() {
    let scratch = Scratch::new("readers");
    let store = open(&scratch);
    store.commit(&upserts([na(1)]), NOW).unwrap();
    // Another connection holds an open write transaction (as the writer does during fsync).
    let mut other = rusqlite::Connection::open(scratch.db()).unwrap();
    let tx = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    tx.execute("DELETE FROM lease6", []).unwrap();
    let started = Instant::now();
    assert_eq!(
        store.get(&na(1).key()).unwrap(),
        Some(na(1)),
        "readers see the last commit"
    );
    assert_eq!(store.leases_after(None, 10).unwrap().len(), 1);
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "a read waited {:?}",
        started.elapsed()
    );
    drop(tx);
}

fn writer_for(store: Arc<SqliteStore>) -> StoreWriter {
    StoreWriter::spawn(store, WriterConfig::default()).expect("spawn writer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_are_batched_and_all_durable() {
    let scratch = Scratch::new("batching");
    let store = Arc::new(open(&scratch));
    let writer = writer_for(Arc::clone(&store));
    let total = 1000u32;
    let started = Instant::now();
    let tasks: Vec<_> = (0..total)
        .map(|n| {
            let writer = writer.clone();
            tokio::spawn(async move { writer.commit(upserts([na(n)])).await })
        })
        .collect();
    let mut transactions = BTreeSet::new();
    for task in tasks {
        let receipt = task.await.unwrap().unwrap();
        transactions.insert(receipt.last_seq);
    }
    let elapsed = started.elapsed();
    println!(
        "batching: {total} concurrent commits in {elapsed:?} = {:.0} commits/s, in {} transactions",
        f64::from(total) / elapsed.as_secs_f64(),
        transactions.len()
    );
    assert!(
        transactions.len() < total as usize,
        "concurrent commits shared transactions"
    );
    // Visible through a fresh store on the same file, i.e. on disk, not only in this process.
    let reopened = SqliteStore::open(scratch.db()).unwrap();
    let present = reopened.leases_after(None, 10 * total as usize).unwrap();
    assert_eq!(present.len(), total as usize);
    assert_eq!(reopened.last_seq().unwrap(), u64::from(total));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_throughput_with_and_without_batching() {
    let scratch = Scratch::new("throughput");
    let store = Arc::new(open(&scratch));
    let writer = writer_for(Arc::clone(&store));
    // One at a time: every commit pays its own fsync.
    let serial = 200u32;
    let started = Instant::now();
    for n in 0..serial {
        writer.commit(upserts([na(n)])).await.unwrap();
    }
    let serial_rate = f64::from(serial) / started.elapsed().as_secs_f64();
    // 256 clients committing continuously: group commit shares the fsyncs.
    let (clients, per_client) = (256u32, 40u32);
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let writer = writer.clone();
            tokio::spawn(async move {
                for k in 0..per_client {
                    writer
                        .commit(upserts([na(100_000 + client * per_client + k)]))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let batched = clients * per_client;
    let batched_rate = f64::from(batched) / started.elapsed().as_secs_f64();
    println!(
        "throughput: unbatched {serial_rate:.0} commits/s (one at a time); \
         batched {batched_rate:.0} commits/s ({clients} concurrent clients, {batched} commits)"
    );
    assert_eq!(
        store.leases_after(None, 100_000).unwrap().len(),
        (serial + batched) as usize
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_reports_are_durable_within_a_second() {
    let scratch = Scratch::new("submit");
    let store = Arc::new(open(&scratch));
    let writer = writer_for(Arc::clone(&store));
    let started = Instant::now();
    for n in 0..500 {
        writer.submit(upserts([na(n)])).unwrap();
    }
    loop {
        if store.leases_after(None, 1000).unwrap().len() == 500 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "submits not durable within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // flush waits for everything queued before it.
    for n in 500..600 {
        writer.submit(upserts([na(n)])).unwrap();
    }
    writer.flush().await.unwrap();
    assert_eq!(store.leases_after(None, 1000).unwrap().len(), 600);
    // Invalid input is refused at the door, not by failing a shared batch.
    let mut bad = na(1);
    bad.expire += 5;
    assert!(matches!(
        writer.submit(upserts([bad.clone()])),
        Err(StoreError::InvalidLease { .. })
    ));
    assert!(matches!(
        writer.commit(upserts([bad])).await,
        Err(StoreError::InvalidLease { .. })
    ));
}

#[tokio::test]
async fn writer_reports_a_failed_batch_to_every_waiter() {
    let scratch = Scratch::new("failing");
    let store = Arc::new(open(&scratch));
    let writer = writer_for(Arc::clone(&store));
    // Lock the database from outside for longer than the busy timeout: the commit fails.
    let mut other = rusqlite::Connection::open(scratch.db()).unwrap();
    let tx = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .unwrap();
    let blocked = tokio::join!(
        writer.commit(upserts([na(1)])),
        writer.commit(upserts([na(2)]))
    );
    for result in [blocked.0, blocked.1] {
        assert!(matches!(result, Err(StoreError::Batch(_))), "{result:?}");
    }
    drop(tx);
    writer.commit(upserts([na(3)])).await.unwrap();
    assert_eq!(store.leases_after(None, 10).unwrap(), vec![na(3)]);
}

#[tokio::test]
async fn writer_prunes_history_past_retention() {
    let scratch = Scratch::new("retention");
    let store = Arc::new(open(&scratch));
    // A change stamped an hour ago (direct commit with an explicit time), then a writer with
    // a 10-minute retention: its first pass prunes the old entry, keeps the fresh one.
    let an_hour_ago = crate::clock::unix_now() - 3600;
    store.commit(&upserts([na(1)]), an_hour_ago).unwrap();
    let config = WriterConfig {
        history_retention: Some(Duration::from_secs(600)),
        ..WriterConfig::default()
    };
    let writer = StoreWriter::spawn(Arc::clone(&store) as Arc<dyn LeaseStore>, config).unwrap();
    let receipt = writer.commit(upserts([na(2)])).await.unwrap();
    let history = store.changes_since(ChangeCursor::AfterSeq(0), 10).unwrap();
    assert_eq!(
        history.iter().map(|c| c.seq).collect::<Vec<_>>(),
        vec![receipt.last_seq]
    );
    assert_eq!(store.oldest_change_time().unwrap(), Some(receipt.at));
    // Leases themselves are never pruned with the history.
    assert_eq!(store.leases_after(None, 10).unwrap().len(), 2);
}

/// Environment variable that turns [`crash_child_entry`] into the crashing child.
const CRASH_CHILD_DB: &str = "DHCP_STORE_CRASH_CHILD_DB";

/// The child half of [`acknowledged_commits_survive_sigkill`]; a no-op in a normal run.
///
/// It commits leases from several tasks as fast as it can and prints `ACK <n>` for each one
/// only after `commit` returned, until killed (or 60 s pass, so it cannot run away).
#[test]
fn crash_child_entry() {
    let Some(db) = std::env::var_os(CRASH_CHILD_DB) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = Arc::new(SqliteStore::open(Path::new(&db)).unwrap());
        let writer = writer_for(store);
        let tasks = 16u32;
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let writer = writer.clone();
                tokio::spawn(async move {
                    let started = Instant::now();
                    let mut k = 0u32;
                    while started.elapsed() < Duration::from_secs(60) {
                        let n = k * tasks + task;
                        writer.commit(upserts([na(n)])).await.unwrap();
                        {
                            use std::io::Write;
                            let mut out = std::io::stdout().lock();
                            writeln!(out, "ACK {n}").unwrap();
                            out.flush().unwrap();
                        }
                        k += 1;
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.await.unwrap();
        }
    });
}

#[test]
fn acknowledged_commits_survive_sigkill() {
    let scratch = Scratch::new("crash");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "store::tests::crash_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_CHILD_DB, scratch.db())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn crash child");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut acknowledged = Vec::new();
    let started = Instant::now();
    // Kill mid-stream: after enough acknowledgements, while commits are in flight.
    while acknowledged.len() < 2000 && started.elapsed() < Duration::from_secs(30) {
        match lines.next() {
            Some(Ok(line)) => {
                if let Some(n) = line.strip_prefix("ACK ") {
                    acknowledged.push(n.parse::<u32>().unwrap());
                }
            }
            _ => break,
        }
    }
    child.kill().expect("SIGKILL the child");
    // Acknowledgements already written to the pipe before the kill count too.
    for line in lines.map_while(Result::ok) {
        if let Some(n) = line.strip_prefix("ACK ") {
            acknowledged.push(n.parse::<u32>().unwrap());
        }
    }
    let status = child.wait().unwrap();
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "the child died of SIGKILL, not by itself: {status:?}"
        );
    }
    assert!(
        acknowledged.len() >= 100,
        "child acknowledged only {} commits",
        acknowledged.len()
    );

    let store = SqliteStore::open(scratch.db()).expect("reopen after the crash");
    let present: BTreeSet<LeaseKey> = LeasePages::new(&store, LeaseFilter::All, 1000)
        .map(|l| l.unwrap().key())
        .collect();
    for n in &acknowledged {
        assert!(
            present.contains(&na(*n).key()),
            "acknowledged lease {n} lost in the crash"
        );
        assert_eq!(store.get(&na(*n).key()).unwrap(), Some(na(*n)));
    }
    println!(
        "crash: {} acknowledged, {} present after SIGKILL (in-flight extras: {})",
        acknowledged.len(),
        present.len(),
        present.len() - acknowledged.len()
    );
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    fn any_lease() -> impl Strategy<Value = Lease> {
        let identity = (any::<bool>(), any::<u128>(), 0u8..=128).prop_map(|(is_pd, bits, len)| {
            if is_pd {
                (LeaseType::Pd, mask(Ipv6Addr::from(bits), len), len)
            } else {
                (LeaseType::Na, Ipv6Addr::from(bits), 128)
            }
        });
        let state = prop_oneof![
            Just(LeaseState::Assigned),
            Just(LeaseState::Declined),
            Just(LeaseState::Released),
            Just(LeaseState::ExpiredReclaimed),
        ];
        let blob = || proptest::collection::vec(any::<u8>(), 0..64);
        (
            identity,
            proptest::collection::vec(any::<u8>(), 1..130),
            (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()),
            (-(1i64 << 40)..(1i64 << 40), state, ".{0,16}", any::<u128>()),
            (
                proptest::option::of(blob()),
                proptest::option::of(blob()),
                blob(),
                ".{0,40}",
            ),
        )
            .prop_map(|(id, duid, numbers, times, relay)| {
                let (lease_type, address, prefix_len) = id;
                let (iaid, subnet_id, lifetime_a, lifetime_b) = numbers;
                let (cltt, state, interface, link) = times;
                let (relay_id, remote_id, relay_info, hostname) = relay;
                let mut lease = Lease {
                    address,
                    prefix_len,
                    lease_type,
                    duid,
                    iaid,
                    subnet_id,
                    preferred_lifetime: 0,
                    valid_lifetime: 0,
                    cltt: 0,
                    expire: 0,
                    state,
                    interface,
                    link_address: Ipv6Addr::from(link),
                    relay_id,
                    remote_id,
                    relay_info,
                    hostname,
                };
                lease.assign(cltt, lifetime_a.min(lifetime_b), lifetime_a.max(lifetime_b));
                lease.state = state;
                lease
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever valid lease goes in comes back out identical, by key and through history.
        #[test]
        fn any_valid_lease_round_trips(leases in proptest::collection::vec(any_lease(), 1..8)) {
            let scratch = Scratch::new("prop");
            let store = open(&scratch);
            let receipt = store.commit(&upserts(leases.clone()), NOW).unwrap();
            // Later duplicates of a key replace earlier ones, as separate history entries.
            let mut latest = std::collections::BTreeMap::new();
            for lease in &leases {
                latest.insert(lease.key(), lease.clone());
            }
            for (key, lease) in &latest {
                prop_assert_eq!(store.get(key).unwrap(), Some(lease.clone()));
                if lease.lease_type == LeaseType::Pd {
                    prop_assert!(store.find_prefixes_containing(lease.address).unwrap().contains(lease));
                }
            }
            let history = store.changes_since(ChangeCursor::AfterSeq(0), 100).unwrap();
            prop_assert_eq!(history.len(), leases.len());
            prop_assert_eq!(receipt.last_seq, leases.len() as u64);
            for (record, lease) in history.iter().zip(&leases) {
                prop_assert_eq!(&record.lease, lease);
            }
            prop_assert_eq!(store.leases_after(None, 100).unwrap(), latest.into_values().collect::<Vec<_>>());
        }
    }
}

#[test]
fn renewals_apply_only_to_assigned_leases_and_never_go_back() {
    let scratch = Scratch::new("renew");
    let store = open(&scratch);
    let mut released = na(2);
    released.state = LeaseState::Released;
    store
        .commit(&upserts([na(1), released.clone()]), NOW)
        .unwrap();
    let renew = |n: u32, cltt: i64| LeaseChange::Renew {
        key: na(n).key(),
        cltt,
        preferred_lifetime: 900,
        valid_lifetime: 1200,
    };
    store
        .commit(
            &[
                renew(1, NOW + 500),
                renew(2, NOW + 500),
                renew(3, NOW + 500),
            ],
            NOW + 500,
        )
        .unwrap();
    let mut expected = na(1);
    expected.assign(NOW + 500, 900, 1200);
    assert_eq!(store.get(&na(1).key()).unwrap(), Some(expected.clone()));
    assert_eq!(
        store.get(&na(2).key()).unwrap(),
        Some(released),
        "a released lease stays released"
    );
    assert_eq!(
        store.get(&na(3).key()).unwrap(),
        None,
        "a renewal creates nothing"
    );
    // A late report older than the stored transaction changes nothing.
    store.commit(&[renew(1, NOW + 100)], NOW + 600).unwrap();
    assert_eq!(store.get(&na(1).key()).unwrap(), Some(expected.clone()));
    // Only the applied renewal is in the history, with the full lease.
    let history = store.changes_since(ChangeCursor::AfterSeq(2), 10).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].kind, &history[0].lease),
        (ChangeKind::Upsert, &expected)
    );
    let backwards = LeaseChange::Renew {
        key: na(1).key(),
        cltt: NOW,
        preferred_lifetime: 10,
        valid_lifetime: 5,
    };
    assert!(matches!(
        store.commit(&[backwards], NOW),
        Err(StoreError::InvalidLease { .. })
    ));
}
