//! Two servers on one PostgreSQL database: a grant the other server won is never replied
//! with (the server learns it and picks again), and each follows the other's commits.

use super::*;
use crate::clock::unix_now;
use crate::server::open_store;
use crate::store::{LeaseFilter, PostgresStore, StoreError};

/// Server `name` on `url`, with its own state directory (its own DUID file).
fn shared_server(name: &str, url: &str) -> Arc<Server> {
    let dir = temp_dir(name);
    let mut config = Config::parse(CONFIG, "t").unwrap();
    config.state_dir = dir;
    let store: Arc<dyn LeaseStore> = Arc::new(PostgresStore::connect(url, None).unwrap());
    let server = Server::with_store(config, store, &[]).unwrap();
    server.set_direct_subnet("eth1", Some(0));
    server
}

fn granted(reply: &[u8]) -> Ipv6Addr {
    let packet = decode(reply).unwrap();
    let message = packet.as_message().unwrap();
    let address = message
        .ia_nas()
        .next()
        .unwrap()
        .ia_addrs()
        .next()
        .unwrap()
        .addr;
    address
}

/// B, not knowing A's grant, is asked for A's client's address: the database refuses it, B
/// replies with another address, and now knows the first is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_the_other_server_won_is_never_replied_with() {
    let cluster = dhcp_pgtest::Cluster::shared().unwrap();
    let url = cluster.create_database("server_shared").unwrap();
    let a = shared_server("shared-a", &url);
    let b = shared_server("shared-b", &url);
    assert_ne!(
        a.server_duid(),
        b.server_duid(),
        "each server has a DUID of its own"
    );
    let solicit = |n: u8, hint: &[&str]| {
        msg(
            MSG_SOLICIT,
            &client(n),
            vec![ia_na(1, hint), DhcpOption::RapidCommit],
        )
    };
    let taken = granted(&handle_bytes(&a, solicit(1, &[])).await.unwrap());
    // B has not followed A: its copy says the address is free, and the client asks for it.
    let taken_s = taken.to_string();
    let reply = handle_bytes(&b, solicit(2, &[&taken_s])).await.unwrap();
    let other = granted(&reply);
    assert_ne!(other, taken, "B never replies with A's grant");
    let row = b.store().get_by_address(taken).unwrap().unwrap();
    assert_eq!(row.duid, client(1).as_bytes(), "A's client keeps it");
    assert_eq!(
        b.durable_leases_of(client(1).as_bytes(), 10).len(),
        1,
        "B learned A's lease from the refusal"
    );
}

/// The socket loop's way (tickets): of two requests B queues at once, the one asking for A's
/// grant is refused for its ticket only; settled, it is decided again and gets another address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_ticket_is_decided_again_and_its_neighbour_commits() {
    let cluster = dhcp_pgtest::Cluster::shared().unwrap();
    let url = cluster.create_database("server_shared_tickets").unwrap();
    let a = shared_server("shared-ticket-a", &url);
    let b = shared_server("shared-ticket-b", &url);
    let solicit = |n: u8, hint: &[&str]| {
        msg(
            MSG_SOLICIT,
            &client(n),
            vec![ia_na(1, hint), DhcpOption::RapidCommit],
        )
    };
    let taken = granted(&handle_bytes(&a, solicit(1, &[])).await.unwrap());
    let taken_s = taken.to_string();
    let mut progress = b.writer().progress();
    let mut queue = Vec::new();
    for message in [solicit(2, &[&taken_s]), solicit(3, &[])] {
        match b.begin(&inbound(&message.into(), "ff02::1:2"), Durability::Ticket) {
            Handling::Waiting(w) => queue.push(w),
            Handling::Done(_) => panic!("a Rapid-Commit Solicit changes a lease"),
        }
    }
    let mut replies = Vec::new();
    let mut refused = 0;
    while let Some(w) = queue.pop() {
        let ticket = w.ticket().unwrap();
        while !ticket.is_over(*progress.borrow_and_update()) {
            progress.changed().await.unwrap();
        }
        let outcome = b.writer().outcome(ticket);
        if matches!(outcome, Err(StoreError::Conflict(_))) {
            refused += 1;
        }
        match b.settle(w, outcome) {
            Handling::Done(reply) => replies.push(granted(&reply.unwrap())),
            Handling::Waiting(again) => queue.push(again),
        }
    }
    assert_eq!(refused, 1, "only the request for A's grant is refused");
    assert_eq!(replies.len(), 2);
    assert!(!replies.contains(&taken), "B never replies with A's grant");
    assert_ne!(replies[0], replies[1]);
}

/// A release on A reaches B's copy and B's lease events through LISTEN/NOTIFY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_other_servers_commits_reach_the_mirror_and_the_events() {
    let cluster = dhcp_pgtest::Cluster::shared().unwrap();
    let url = cluster.create_database("server_follow").unwrap();
    let a = shared_server("follow-a", &url);
    let b = shared_server("follow-b", &url);
    let mut events = b.subscribe();
    let (_stop, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(b.clone().follow_other_servers(stop));
    // The LISTEN is in place once a grant made after it arrives: grant until one does.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut n = 1;
    let event = loop {
        let solicit = msg(
            MSG_SOLICIT,
            &client(n),
            vec![ia_na(1, &[]), DhcpOption::RapidCommit],
        );
        handle_bytes(&a, solicit).await.unwrap();
        match tokio::time::timeout(std::time::Duration::from_millis(300), events.recv()).await {
            Ok(event) => break event.unwrap(),
            Err(_) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "B never heard of A's grants"
                );
                n += 1;
            }
        }
    };
    assert_eq!(event.kind, LeaseEventKind::Granted);
    assert_eq!(
        b.durable_leases_of(&event.lease.duid, 10),
        vec![event.lease.clone()]
    );
    // A clears that lease; B's copy and events follow.
    a.clear(&ClearSelector::Duid(event.lease.duid.clone()))
        .await
        .unwrap();
    let cleared = loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), events.recv())
            .await
            .expect("B hears of the clear")
            .unwrap();
        if next.lease.key() == event.lease.key() && next.kind == LeaseEventKind::Cleared {
            break next;
        }
    };
    assert_eq!(cleared.lease.duid, event.lease.duid);
    assert!(b.durable_leases_of(&event.lease.duid, 10).is_empty());
}

/// A PostgreSQL store whose commits, while `hold` is on, return only once the test lets them:
/// the commit is durable in the database, but the writer's apply of it to the server's copy
/// waits. Every other call goes straight through.
struct HeldStore {
    inner: PostgresStore,
    hold: std::sync::atomic::AtomicBool,
    /// (a commit is being held, the test lets it go)
    state: std::sync::Mutex<(bool, bool)>,
    changed: std::sync::Condvar,
}

impl HeldStore {
    fn new(url: &str) -> Self {
        HeldStore {
            inner: PostgresStore::connect(url, None).unwrap(),
            hold: std::sync::atomic::AtomicBool::new(false),
            state: std::sync::Mutex::new((false, false)),
            changed: std::sync::Condvar::new(),
        }
    }

    /// Waits (up to 10 s) until a commit is durable and held.
    fn wait_held(&self) {
        let state = self.state.lock().unwrap();
        let (state, timeout) = self
            .changed
            .wait_timeout_while(state, std::time::Duration::from_secs(10), |s| !s.0)
            .unwrap();
        assert!(!timeout.timed_out() && state.0, "no commit was held");
    }

    /// Lets the held commit return (and holds no more).
    fn release(&self) {
        self.hold.store(false, std::sync::atomic::Ordering::SeqCst);
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
    }
}

impl LeaseStore for HeldStore {
    fn commit(
        &self,
        changes: &[LeaseChange],
        at: i64,
    ) -> Result<crate::store::CommitReceipt, StoreError> {
        self.inner.commit(changes, at)
    }
    fn commit_checked(
        &self,
        changes: &[LeaseChange],
        at: i64,
    ) -> Result<crate::store::CheckedCommit, StoreError> {
        let result = self.inner.commit_checked(changes, at);
        if self.hold.load(std::sync::atomic::Ordering::SeqCst) && !changes.is_empty() {
            let mut state = self.state.lock().unwrap();
            state.0 = true;
            self.changed.notify_all();
            let _released = self.changed.wait_while(state, |s| !s.1).unwrap();
        }
        result
    }
    fn get(&self, key: &LeaseKey) -> Result<Option<Lease>, StoreError> {
        self.inner.get(key)
    }
    fn get_by_address(&self, address: Ipv6Addr) -> Result<Option<Lease>, StoreError> {
        self.inner.get_by_address(address)
    }
    fn find_prefixes_containing(&self, address: Ipv6Addr) -> Result<Vec<Lease>, StoreError> {
        self.inner.find_prefixes_containing(address)
    }
    fn find(
        &self,
        filter: &LeaseFilter,
        after: Option<&LeaseKey>,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        self.inner.find(filter, after, limit)
    }
    fn find_by_client(
        &self,
        filter: &LeaseFilter,
        after: Option<&crate::store::ClientCursor>,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        self.inner.find_by_client(filter, after, limit)
    }
    fn expired_before(&self, before: i64, limit: usize) -> Result<Vec<Lease>, StoreError> {
        self.inner.expired_before(before, limit)
    }
    fn active_counts(&self, now: i64) -> Result<Vec<crate::store::PoolCount>, StoreError> {
        self.inner.active_counts(now)
    }
    fn changes_since(
        &self,
        from: crate::store::ChangeCursor,
        limit: usize,
    ) -> Result<Vec<crate::store::ChangeRecord>, StoreError> {
        self.inner.changes_since(from, limit)
    }
    fn oldest_change_time(&self) -> Result<Option<i64>, StoreError> {
        self.inner.oldest_change_time()
    }
    fn last_seq(&self) -> Result<u64, StoreError> {
        self.inner.last_seq()
    }
    fn prune_changes(&self, before: i64) -> Result<u64, StoreError> {
        self.inner.prune_changes(before)
    }
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_meta(key)
    }
    fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.inner.set_meta(key, value)
    }
    fn is_shared(&self) -> bool {
        true
    }
    fn watch_commits(
        &self,
        on_commit: Box<dyn FnMut(u64) -> bool + Send>,
    ) -> Result<bool, StoreError> {
        self.inner.watch_commits(on_commit)
    }
    fn get_versioned(&self, key: &LeaseKey) -> Result<Option<(Lease, u64)>, StoreError> {
        self.inner.get_versioned(key)
    }
    fn versioned_leases_after(
        &self,
        after: Option<&LeaseKey>,
        limit: usize,
    ) -> Result<Vec<(Lease, u64)>, StoreError> {
        self.inner.versioned_leases_after(after, limit)
    }
    fn history_pruned_through(&self) -> Result<u64, StoreError> {
        self.inner.history_pruned_through()
    }
}

/// Waits up to 10 s for `done`, checking every 50 ms.
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The LISTEN connections open on `dbname` (a follower is in place once there is one).
fn listeners(dbname: &str) -> u32 {
    dhcp_pgtest::Cluster::shared()
        .unwrap()
        .psql(
            dbname,
            "SELECT count(*) FROM pg_stat_activity \
             WHERE query LIKE 'LISTEN %' AND datname = current_database()",
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Every row of the shared table, in key order.
fn table(server: &Server) -> Vec<Lease> {
    crate::store::LeasePages::new(server.store().as_ref(), LeaseFilter::All, 100)
        .map(Result::unwrap)
        .collect()
}

/// Every row of the server's copy, in key order.
fn copy(server: &Server) -> Vec<Lease> {
    let mut rows = Vec::new();
    server.each_durable_lease(&mut |lease| rows.push(lease.clone()));
    rows
}

/// The follower/writer race, forced: A's grant is durable but its writer's apply is held while
/// B commits a newer row for the same address (the client's Release, on B) and A's follower
/// applies it; let go, A's older change does not overwrite it. The copy (what the fast path and
/// leasequery read) ends with the newest row, and A publishes no stale Granted after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_own_commit_applied_late_never_overwrites_a_newer_row() {
    let cluster = dhcp_pgtest::Cluster::shared().unwrap();
    let url = cluster.create_database("server_race").unwrap();
    let dbname = url.rsplit('=').next().unwrap().to_owned();
    let held = Arc::new(HeldStore::new(&url));
    let mut config = Config::parse(CONFIG, "t").unwrap();
    config.state_dir = temp_dir("race-a");
    let a = Server::with_store(config, held.clone(), &[]).unwrap();
    a.set_direct_subnet("eth1", Some(0));
    let b = shared_server("race-b", &url);
    let (_stop, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(a.clone().follow_other_servers(stop));
    eventually("A's follower listens", || listeners(&dbname) >= 1).await;
    let mut events = a.subscribe();
    held.hold.store(true, std::sync::atomic::Ordering::SeqCst);
    let solicit = msg(
        MSG_SOLICIT,
        &client(1),
        vec![ia_na(1, &[]), DhcpOption::RapidCommit],
    );
    let a_in_task = a.clone();
    let reply = tokio::spawn(async move { handle_bytes(&a_in_task, solicit).await });
    let waiting = held.clone();
    tokio::task::spawn_blocking(move || waiting.wait_held())
        .await
        .unwrap();
    // A's grant is in the table; A's copy does not have it yet.
    let grant = b.store().find(
        &LeaseFilter::Duid {
            duid: client(1).as_bytes().to_vec(),
            iaid: None,
        },
        None,
        10,
    );
    let grant = grant.unwrap().pop().expect("A's grant is durable");
    assert_eq!(grant.state, LeaseState::Assigned);
    // The client releases it on B: a newer row for the same address.
    let mut released = grant.clone();
    released.touch(unix_now());
    released.state = LeaseState::Released;
    b.writer()
        .commit(vec![LeaseChange::Upsert(released.clone())])
        .await
        .unwrap();
    eventually("A's follower applies B's release", || {
        a.durable_leases_of(client(1).as_bytes(), 10) == vec![released.clone()]
    })
    .await;
    // A's writer now applies its own, older, grant.
    held.release();
    let reply = reply
        .await
        .unwrap()
        .expect("A still replies: its grant was durable");
    assert_eq!(granted(&reply), grant.address);
    a.writer().flush().await.unwrap();
    assert_eq!(
        a.durable_leases_of(client(1).as_bytes(), 10),
        vec![released.clone()],
        "newest committed row wins"
    );
    assert_eq!(copy(&a), table(&b));
    // The last event A published for the address is B's release, not A's stale grant.
    let mut last = None;
    while let Ok(event) = events.try_recv() {
        if event.lease.key() == grant.key() {
            last = Some(event);
        }
    }
    let last = last.expect("A published the release");
    assert_eq!(
        (last.kind, last.lease),
        (LeaseEventKind::Released, released)
    );
}

/// A follower stopped while another server changes leases and the history is pruned past its
/// position: started again it sees the gap, reads the whole table (counted as
/// `pg_follower_resyncs`), and its copy equals the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_pruned_history_resyncs_from_the_table() {
    let cluster = dhcp_pgtest::Cluster::shared().unwrap();
    let url = cluster.create_database("server_resync").unwrap();
    let a = shared_server("resync-a", &url);
    let b = shared_server("resync-b", &url);
    let solicit = |n: u8| {
        msg(
            MSG_SOLICIT,
            &client(n),
            vec![ia_na(1, &[]), DhcpOption::RapidCommit],
        )
    };
    handle_bytes(&a, solicit(1)).await.unwrap();
    handle_bytes(&b, solicit(2)).await.unwrap();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let following = tokio::spawn(a.clone().follow_other_servers(stop));
    eventually("A follows B's grant", || {
        a.durable_leases_of(client(2).as_bytes(), 10).len() == 1
    })
    .await;
    stop_tx.send(true).unwrap();
    following.await.unwrap().unwrap();
    // Meanwhile on B: new grants, a clear, a release; then the whole history is pruned.
    for n in 3..=6 {
        handle_bytes(&b, solicit(n)).await.unwrap();
    }
    b.clear(&ClearSelector::Duid(client(2).as_bytes().to_vec()))
        .await
        .unwrap();
    let mut released = b.durable_leases_of(client(3).as_bytes(), 10).pop().unwrap();
    released.touch(unix_now());
    released.state = LeaseState::Released;
    b.writer()
        .commit(vec![LeaseChange::Upsert(released)])
        .await
        .unwrap();
    assert!(b.store().prune_changes(unix_now() + 10).unwrap() > 0);
    assert_ne!(copy(&a), table(&b), "A has missed B's changes");
    let (_stop, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(a.clone().follow_other_servers(stop));
    eventually("A resyncs", || {
        a.stats().lease_database_count("pg_follower_resyncs") == 1
    })
    .await;
    assert_eq!(copy(&a), table(&b), "the copy equals the table");
    assert_eq!(
        a.stats()
            .snapshot()
            .lease_database
            .get("pg_follower_resyncs"),
        Some(&1),
        "shown by `dhcp-user stats`"
    );
    // Followed on from there: B's next changes arrive the usual way (once the new LISTEN is
    // in place), with no second resync.
    let mut n = 7;
    loop {
        handle_bytes(&b, solicit(n)).await.unwrap();
        let seen = tokio::time::timeout(std::time::Duration::from_millis(500), async {
            while a.durable_leases_of(client(n).as_bytes(), 10).is_empty() {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await;
        if seen.is_ok() {
            break;
        }
        n += 1;
        assert!(n < 30, "A never followed B again");
    }
    assert_eq!(copy(&a), table(&b));
    assert_eq!(a.stats().lease_database_count("pg_follower_resyncs"), 1);
}

/// The lease database over TLS only (`hostssl`): the server connects with `verify-full` and
/// `ssl-ca`; with a CA that did not sign the database's certificate it does not start, and the
/// error names `ssl-ca`; a plain connection is refused by the database.
#[test]
fn the_lease_database_over_tls_is_verified_against_ssl_ca() {
    let pki = crate::tls::tests::TestPki::new("pg");
    let (cert, key) = pki.issue("db", &["127.0.0.1"]);
    let cluster = dhcp_pgtest::Cluster::start_tls(&dhcp_pgtest::Tls {
        certificate_pem: std::fs::read_to_string(cert).unwrap(),
        private_key_pem: std::fs::read_to_string(key).unwrap(),
    })
    .unwrap();
    let url = cluster.create_database("tls").unwrap();
    let dbname = url.rsplit('=').next().unwrap().to_owned();
    let other = crate::tls::tests::TestPki::new("pg-other");
    let config = |sslmode: &str, ca: &std::path::Path| {
        let text = format!(
            "{CONFIG}\n[lease-database]\ntype = \"postgresql\"\nurl = \"{url}\"\n\
             sslmode = \"{sslmode}\"\nssl-ca = \"{}\"\n",
            ca.display()
        );
        Config::parse(&text, "t").unwrap()
    };
    let store = open_store(&config("verify-full", &pki.ca())).expect("verify-full with the CA");
    store.commit(&[], unix_now()).unwrap();
    let ssl = cluster
        .psql(
            &dbname,
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE ssl AND application_name = 'dhcp-user'",
        )
        .unwrap();
    assert!(
        ssl.trim().parse::<u32>().unwrap() >= 1,
        "the store's connection uses TLS"
    );
    let err = open_store(&config("verify-full", &other.ca()))
        .err()
        .expect("a CA that did not sign the certificate is refused");
    let text = err.to_string();
    assert!(
        text.contains("ssl-ca") && text.contains(&other.ca().display().to_string()),
        "{text}"
    );
    // verify-ca checks the chain too; the database refuses a connection without TLS.
    assert!(open_store(&config("verify-ca", &other.ca())).is_err());
    assert!(open_store(&config("verify-ca", &pki.ca())).is_ok());
    let plain = PostgresStore::connect(&format!("{url} sslmode=disable"), None);
    assert!(plain.is_err(), "hostssl only: no plain connection");
}
