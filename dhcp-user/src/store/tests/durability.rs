//! The database file: survives reopening and SIGKILL, WAL and full sync, schema version, corruption, readers beside a writer.

use super::*;

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
        "UPDATE meta SET value = CAST('6' AS BLOB) WHERE name = 'schema_version'",
        [],
    )
    .unwrap();
    drop(conn);
    let err = SqliteStore::open(scratch.db())
        .err()
        .expect("a newer schema is refused");
    assert!(
        matches!(&err, StoreError::SchemaVersion { found, supported: 5, .. } if found == "6"),
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

/// A schema-1 database (before leases kept their line) is migrated in place on open: its
/// rows stay, with no line, and new rows keep theirs across a reopen.
#[test]
fn schema_1_gains_the_line_column() {
    let scratch = Scratch::new("migrate");
    let old = na(1);
    {
        let store = open(&scratch);
        store.commit(&upserts(vec![old.clone()]), NOW).unwrap();
    }
    // Back to schema 1 as an earlier release left it.
    let conn = rusqlite::Connection::open(scratch.db()).unwrap();
    conn.execute_batch(
        "DROP INDEX lease6_by_line;
         ALTER TABLE lease6 DROP COLUMN line;
         ALTER TABLE lease_changes DROP COLUMN line;
         ALTER TABLE lease6 DROP COLUMN next_hop;
         ALTER TABLE lease_changes DROP COLUMN next_hop;
         ALTER TABLE lease6 DROP COLUMN reconfigure;
         ALTER TABLE lease_changes DROP COLUMN reconfigure;
         ALTER TABLE lease6 DROP COLUMN link_layer;
         ALTER TABLE lease_changes DROP COLUMN link_layer;
         UPDATE meta SET value = CAST('1' AS BLOB) WHERE name = 'schema_version';",
    )
    .unwrap();
    drop(conn);
    let mut lined = na(2);
    lined.line = Some(vec![2, 0, 0, 0x0d, 0xe9, 0xaa].into());
    {
        let store = open(&scratch);
        assert_eq!(
            store.get_meta("schema_version").unwrap(),
            Some(SCHEMA_VERSION.to_string().into_bytes())
        );
        assert_eq!(store.leases_after(None, 10).unwrap(), vec![old.clone()]);
        store.commit(&upserts(vec![lined.clone()]), NOW).unwrap();
    }
    let store = open(&scratch);
    assert_eq!(store.leases_after(None, 10).unwrap(), vec![old, lined]);
}

/// A schema-2 database (before leases kept their next hop, `[routes]`) is migrated in place
/// on open: its rows stay, with no next hop, and new rows keep theirs across a reopen.
#[test]
fn schema_2_gains_the_next_hop_column() {
    let scratch = Scratch::new("migrate2");
    let old = na(1);
    {
        let store = open(&scratch);
        store.commit(&upserts(vec![old.clone()]), NOW).unwrap();
    }
    let conn = rusqlite::Connection::open(scratch.db()).unwrap();
    conn.execute_batch(
        "ALTER TABLE lease6 DROP COLUMN next_hop;
         ALTER TABLE lease_changes DROP COLUMN next_hop;
         ALTER TABLE lease6 DROP COLUMN reconfigure;
         ALTER TABLE lease_changes DROP COLUMN reconfigure;
         ALTER TABLE lease6 DROP COLUMN link_layer;
         ALTER TABLE lease_changes DROP COLUMN link_layer;
         UPDATE meta SET value = CAST('2' AS BLOB) WHERE name = 'schema_version';",
    )
    .unwrap();
    drop(conn);
    let mut routed = na(2);
    routed.next_hop = Some("fe80::42".parse().unwrap());
    {
        let store = open(&scratch);
        assert_eq!(store.leases_after(None, 10).unwrap(), vec![old.clone()]);
        store.commit(&upserts(vec![routed.clone()]), NOW).unwrap();
    }
    let store = open(&scratch);
    assert_eq!(store.leases_after(None, 10).unwrap(), vec![old, routed]);
}

/// A schema-3 database (before leases kept a reconfigure key) is migrated in place on open:
/// its rows stay, with no key, and new rows keep theirs across a reopen.
#[test]
fn schema_3_gains_the_reconfigure_column() {
    let scratch = Scratch::new("migrate3");
    let old = na(1);
    {
        let store = open(&scratch);
        store.commit(&upserts(vec![old.clone()]), NOW).unwrap();
    }
    let conn = rusqlite::Connection::open(scratch.db()).unwrap();
    conn.execute_batch(
        "ALTER TABLE lease6 DROP COLUMN reconfigure;
         ALTER TABLE lease_changes DROP COLUMN reconfigure;
         ALTER TABLE lease6 DROP COLUMN link_layer;
         ALTER TABLE lease_changes DROP COLUMN link_layer;
         UPDATE meta SET value = CAST('3' AS BLOB) WHERE name = 'schema_version';",
    )
    .unwrap();
    drop(conn);
    let mut keyed = na(2);
    keyed.reconfigure = Some(crate::store::ReconfigureKey {
        key: [9; 16],
        reply_to: "fe80::42".parse().unwrap(),
    });
    {
        let store = open(&scratch);
        assert_eq!(store.leases_after(None, 10).unwrap(), vec![old.clone()]);
        store.commit(&upserts(vec![keyed.clone()]), NOW).unwrap();
    }
    let store = open(&scratch);
    assert_eq!(store.leases_after(None, 10).unwrap(), vec![old, keyed]);
}

/// A schema-4 database (before leases kept a direct client's link-layer address) is migrated
/// in place on open: its rows stay, with none, and new rows keep theirs across a reopen.
#[test]
fn schema_4_gains_the_link_layer_column() {
    let scratch = Scratch::new("migrate4");
    let old = na(1);
    {
        let store = open(&scratch);
        store.commit(&upserts(vec![old.clone()]), NOW).unwrap();
    }
    let conn = rusqlite::Connection::open(scratch.db()).unwrap();
    conn.execute_batch(
        "ALTER TABLE lease6 DROP COLUMN link_layer;
         ALTER TABLE lease_changes DROP COLUMN link_layer;
         UPDATE meta SET value = CAST('4' AS BLOB) WHERE name = 'schema_version';",
    )
    .unwrap();
    drop(conn);
    let mut direct = na(2);
    direct.link_layer = Some(vec![0, 1, 2, 0, 0, 0, 0, 0x79].into());
    {
        let store = open(&scratch);
        assert_eq!(store.leases_after(None, 10).unwrap(), vec![old.clone()]);
        store.commit(&upserts(vec![direct.clone()]), NOW).unwrap();
    }
    let store = open(&scratch);
    assert_eq!(store.leases_after(None, 10).unwrap(), vec![old, direct]);
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
            "store::tests::durability::crash_child_entry",
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
