//! Two servers on one PostgreSQL database: a grant the other server won is never replied
//! with (the server learns it and picks again), and each follows the other's commits.

use super::*;
use crate::store::{PostgresStore, StoreError};

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
