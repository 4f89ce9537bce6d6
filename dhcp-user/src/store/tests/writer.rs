//! The batching writer: commits grouped and durable, reports within a second, failures to every waiter, history pruned.

use super::*;

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

/// Many tickets queued at once are answered by few progress moves (one per batch), every one
/// durable once progress passes it.
#[tokio::test]
async fn tickets_of_a_batch_are_answered_by_one_progress_move() {
    let scratch = Scratch::new("tickets");
    let store = Arc::new(open(&scratch));
    let writer = writer_for(Arc::clone(&store));
    let mut progress = writer.progress();
    let total = 500u32;
    let tickets: Vec<_> = (0..total)
        .map(|n| writer.commit_ticket(upserts([na(n)])).unwrap())
        .collect();
    assert!(
        tickets.windows(2).all(|w| w[0] < w[1]),
        "tickets in queue order"
    );
    let last = *tickets.last().unwrap();
    let mut moves = 0;
    while !last.is_over(*progress.borrow_and_update()) {
        tokio::time::timeout(Duration::from_secs(10), progress.changed())
            .await
            .expect("progress within 10 s")
            .unwrap();
        moves += 1;
    }
    assert!(
        moves < total as usize / 10,
        "{moves} wake-ups for {total} tickets"
    );
    for ticket in tickets {
        writer.outcome(ticket).unwrap();
    }
    let reopened = SqliteStore::open(scratch.db()).unwrap();
    assert_eq!(
        reopened.leases_after(None, 1000).unwrap().len(),
        total as usize
    );
}

/// A failed batch fails its tickets, and only them: the next ticket's batch commits.
#[tokio::test]
async fn a_failed_batch_fails_its_tickets_only() {
    let scratch = Scratch::new("failing-tickets");
    let store = Arc::new(open(&scratch));
    let writer = writer_for(Arc::clone(&store));
    let mut progress = writer.progress();
    let mut other = rusqlite::Connection::open(scratch.db()).unwrap();
    let tx = other
        .transaction_with_behavior(rusqlite::TransactionBehavior::Exclusive)
        .unwrap();
    let failing = writer.commit_ticket(upserts([na(1)])).unwrap();
    while !failing.is_over(*progress.borrow_and_update()) {
        progress.changed().await.unwrap();
    }
    assert!(matches!(writer.outcome(failing), Err(StoreError::Batch(_))));
    drop(tx);
    let next = writer.commit_ticket(upserts([na(2)])).unwrap();
    while !next.is_over(*progress.borrow_and_update()) {
        progress.changed().await.unwrap();
    }
    writer.outcome(next).unwrap();
    assert!(matches!(writer.outcome(failing), Err(StoreError::Batch(_))));
    assert_eq!(store.leases_after(None, 10).unwrap(), vec![na(2)]);
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
