//! The PostgreSQL store's own behaviour: durability settings, schema migrations, several
//! servers on one database (grants kept apart, commits notified), reconnecting.

use super::*;

/// Commits wait for the WAL flush (`synchronous_commit = on`) and the schema is migrated once.
#[test]
fn synchronous_commit_is_on_and_the_schema_is_migrated_once() {
    let url = postgres_database("migrations");
    let store = PostgresStore::connect(&url, None).unwrap();
    assert_eq!(store.session_setting("synchronous_commit").unwrap(), "on");
    let versions: Vec<u32> = POSTGRES_MIGRATIONS.iter().map(|m| m.0).collect();
    assert_eq!(store.applied_migrations().unwrap(), versions);
    store.commit(&upserts([na(1)]), NOW).unwrap();
    drop(store);
    // Opening again applies nothing and keeps the data.
    let again = PostgresStore::connect(&url, None).unwrap();
    assert_eq!(again.applied_migrations().unwrap(), versions);
    assert_eq!(again.get(&na(1).key()).unwrap(), Some(na(1)));
}

/// A database migrated by a newer release is refused, naming the versions.
#[test]
fn a_newer_schema_is_refused() {
    let url = postgres_database("newer_schema");
    drop(PostgresStore::connect(&url, None).unwrap());
    let cluster = dhcp_pgtest::Cluster::shared().unwrap();
    let dbname = url.rsplit('=').next().unwrap();
    cluster
        .psql(
            dbname,
            "INSERT INTO schema_migrations (version, description) VALUES (99, 'future')",
        )
        .unwrap();
    let err = PostgresStore::connect(&url, None)
        .err()
        .expect("a newer schema is refused");
    assert!(
        matches!(&err, StoreError::PostgresSchema { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("schema version 99"), "{err}");
}

/// An unreachable database fails at connect with an error naming it.
#[test]
fn an_unreachable_database_is_named_in_the_error() {
    // Port 1 on loopback: nothing listens there.
    let err = PostgresStore::connect("host=127.0.0.1 port=1 user=dhcp dbname=leases", None)
        .err()
        .expect("nothing listens on port 1");
    assert!(
        err.to_string().contains("127.0.0.1:1/leases"),
        "the target is named: {err}"
    );
}

/// Two servers on one database: a lease another client holds is refused (never overwritten),
/// an expired one may be taken, and a stale give-up never undoes a newer grant.
#[test]
fn a_lease_held_by_another_client_is_refused() {
    let url = postgres_database("shared");
    let a = PostgresStore::connect(&url, None).unwrap();
    let b = PostgresStore::connect(&url, None).unwrap();
    a.commit(&upserts([na(1)]), NOW).unwrap();
    let mut other_client = na(1);
    other_client.duid = vec![0, 3, 0, 1, 0xcc, 0xdd, 0, 0x99];
    // Plain commit: the whole batch is rolled back.
    let err = b
        .commit(&upserts([na(2), other_client.clone()]), NOW + 10)
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(keys) if keys == &vec![na(1).key()]),
        "{err}"
    );
    assert_eq!(
        a.get(&na(2).key()).unwrap(),
        None,
        "nothing of the batch was written"
    );
    // Checked commit: the refused upsert is reported, the rest is durable.
    let checked = b
        .commit_checked(&upserts([na(2), other_client.clone()]), NOW + 10)
        .unwrap();
    assert_eq!(checked.refused, vec![1]);
    assert_eq!(
        a.get(&na(1).key()).unwrap(),
        Some(na(1)),
        "A's client keeps it"
    );
    assert_eq!(a.get(&na(2).key()).unwrap(), Some(na(2)));
    // Once the lease has expired, another client may have the address.
    let mut later = other_client.clone();
    later.assign(NOW + 3600, 1800, 3600);
    let checked = b
        .commit_checked(&upserts([later.clone()]), NOW + 3600)
        .unwrap();
    assert!(checked.refused.is_empty());
    assert_eq!(a.get(&na(1).key()).unwrap(), Some(later.clone()));
    // A stale reclaim by a server that has not seen the newer grant changes nothing.
    let mut renewed = later.clone();
    renewed.assign(NOW + 4000, 1800, 3600);
    a.commit(&upserts([renewed.clone()]), NOW + 4000).unwrap();
    let mut stale_reclaim = later;
    stale_reclaim.state = LeaseState::ExpiredReclaimed;
    let checked = b
        .commit_checked(&upserts([stale_reclaim]), NOW + 7300)
        .unwrap();
    assert_eq!(checked.refused, vec![0]);
    assert_eq!(a.get(&na(1).key()).unwrap(), Some(renewed));
}

/// Many threads of two servers race for the same addresses: each ends with one client, and
/// every refusal is reported to the loser.
#[test]
fn racing_servers_never_grant_one_address_twice() {
    let url = postgres_database("race");
    let stores = [
        Arc::new(PostgresStore::connect(&url, None).unwrap()),
        Arc::new(PostgresStore::connect(&url, None).unwrap()),
    ];
    let winners = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for (server, store) in stores.iter().enumerate() {
            for thread in 0..4u8 {
                let winners = &winners;
                scope.spawn(move || {
                    for n in 0..50u32 {
                        let mut lease = na(n);
                        lease.duid = vec![0, 3, 0, 1, server as u8, thread, 0, n as u8];
                        let checked = store
                            .commit_checked(&upserts([lease.clone()]), NOW)
                            .unwrap();
                        if checked.refused.is_empty() {
                            winners.lock().unwrap().push(lease);
                        }
                    }
                });
            }
        }
    });
    let winners = winners.into_inner().unwrap();
    // The same client may win twice (its own lease again); two clients never.
    let mut owners = std::collections::HashMap::new();
    for lease in &winners {
        owners
            .entry(lease.address)
            .or_insert_with(BTreeSet::new)
            .insert(lease.duid.clone());
    }
    assert_eq!(owners.len(), 50, "every address went to someone");
    for (address, duids) in &owners {
        assert_eq!(duids.len(), 1, "{address} went to {duids:?}");
        let stored = stores[0].get_by_address(*address).unwrap().unwrap();
        assert!(duids.contains(&stored.duid));
    }
}

/// Each commit is notified to every listener with its last sequence number.
#[test]
fn commits_are_notified_to_listeners() {
    let url = postgres_database("notify");
    let a = PostgresStore::connect(&url, None).unwrap();
    let b = PostgresStore::connect(&url, None).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    b.listen(move |seq| tx.send(seq).is_ok()).unwrap();
    // The LISTEN is in place once a commit made after it arrives: commit until one does.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut n = 0;
    let first = loop {
        n += 1;
        let receipt = a.commit(&upserts([na(n)]), NOW).unwrap();
        if let Ok(seq) = rx.recv_timeout(Duration::from_millis(200)) {
            break (seq, receipt.last_seq);
        }
        assert!(Instant::now() < deadline, "no notification within 10 s");
    };
    assert!(first.0 <= first.1);
    let receipt = a.commit(&upserts([na(100), na(101)]), NOW).unwrap();
    let mut last = 0;
    while last < receipt.last_seq {
        last = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("notification");
    }
    assert_eq!(last, receipt.last_seq);
    // A batch without a change notifies nobody.
    a.commit(&[LeaseChange::Delete(na(999).key())], NOW)
        .unwrap();
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
}

/// A write connection the server dropped is made again at the next commit.
#[test]
fn a_broken_connection_is_made_again() {
    let url = postgres_database("reconnect");
    let store = PostgresStore::connect(&url, None).unwrap();
    store.commit(&upserts([na(1)]), NOW).unwrap();
    let cluster = dhcp_pgtest::Cluster::shared().unwrap();
    let dbname = url.rsplit('=').next().unwrap();
    cluster
        .psql(
            "postgres",
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = '{dbname}' AND pid <> pg_backend_pid()"
            ),
        )
        .unwrap();
    // The first use may still see the dead connection; the next one reconnects.
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.commit(&upserts([na(2)]), NOW).is_err() {
        assert!(Instant::now() < deadline, "no reconnect within 5 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(store.get(&na(2).key()).unwrap(), Some(na(2)));
    assert_eq!(store.get(&na(1).key()).unwrap(), Some(na(1)));
}

/// The batching writer over PostgreSQL: concurrent commits share transactions, all durable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_writer_batches_over_postgresql() {
    let store = Arc::new(postgres_store("writer"));
    let writer = StoreWriter::spawn(store.clone(), WriterConfig::default()).unwrap();
    let commits = (0..200u32).map(|n| {
        let writer = writer.clone();
        tokio::spawn(async move { writer.commit(upserts([na(n)])).await })
    });
    for commit in commits.collect::<Vec<_>>() {
        commit.await.unwrap().unwrap();
    }
    // Reads from inside the runtime work too (the store waits on a helper thread).
    assert_eq!(store.leases_after(None, 1000).unwrap().len(), 200);
    assert_eq!(store.last_seq().unwrap(), 200);
}

/// Every written row carries the history sequence number of its change as its version, in
/// commit order across two servers; a change that wrote nothing has version 0.
#[test]
fn row_versions_are_the_history_sequence_of_the_last_change() {
    let url = postgres_database("versions");
    let a = PostgresStore::connect(&url, None).unwrap();
    let b = PostgresStore::connect(&url, None).unwrap();
    let first = a.commit_checked(&upserts([na(1), na(2)]), NOW).unwrap();
    assert_eq!(first.versions.len(), 2);
    assert!(first.versions[0] > 0 && first.versions[1] > 0);
    assert_ne!(first.versions[0], first.versions[1]);
    let mut renewed = na(1);
    renewed.assign(NOW + 100, 1800, 3600);
    let second = b
        .commit_checked(&upserts([renewed.clone()]), NOW + 100)
        .unwrap();
    assert!(
        second.versions[0] > first.versions[0],
        "later commit, newer version"
    );
    assert_eq!(
        a.get_versioned(&na(1).key()).unwrap(),
        Some((renewed.clone(), second.versions[0]))
    );
    let history = a.changes_since(ChangeCursor::AfterSeq(0), 10).unwrap();
    assert_eq!(history.last().unwrap().seq, second.versions[0]);
    // Refused (another client holds it), a renewal older than the row, a delete of nothing.
    let mut other_client = na(1);
    other_client.duid = vec![0, 3, 0, 1, 0xcc, 0xdd, 0, 0x99];
    let stale_renew = LeaseChange::Renew {
        key: na(2).key(),
        cltt: NOW - 10,
        preferred_lifetime: 10,
        valid_lifetime: 20,
    };
    let nothing = b
        .commit_checked(
            &[
                LeaseChange::Upsert(other_client),
                stale_renew,
                LeaseChange::Delete(na(9).key()),
                LeaseChange::Delete(na(2).key()),
            ],
            NOW + 200,
        )
        .unwrap();
    assert_eq!(nothing.refused, vec![0]);
    assert_eq!(&nothing.versions[..3], &[0, 0, 0]);
    assert!(
        nothing.versions[3] > second.versions[0],
        "a delete has a version too"
    );
    let rows = a.versioned_leases_after(None, 10).unwrap();
    assert_eq!(rows, vec![(renewed, second.versions[0])]);
}

/// Pruning records how far it went, so a follower behind it knows it has a gap.
#[test]
fn pruning_records_the_highest_sequence_it_removed() {
    let url = postgres_database("pruned_through");
    let store = PostgresStore::connect(&url, None).unwrap();
    assert_eq!(store.history_pruned_through().unwrap(), 0);
    store.commit(&upserts([na(1)]), NOW).unwrap();
    let receipt = store.commit(&upserts([na(2)]), NOW + 50).unwrap();
    store.commit(&upserts([na(3)]), NOW + 100).unwrap();
    assert_eq!(store.prune_changes(NOW + 60).unwrap(), 2);
    assert_eq!(store.history_pruned_through().unwrap(), receipt.last_seq);
    assert_eq!(store.prune_changes(NOW + 60).unwrap(), 0);
    assert_eq!(store.history_pruned_through().unwrap(), receipt.last_seq);
}
