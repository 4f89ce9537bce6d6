//! The server around the decisions: durability before reply, counters, reclaim, clear, fast-path reports, UDP leasequery.

use super::*;

#[tokio::test]
async fn reply_is_sent_only_after_the_lease_is_durable_and_duid_survives_restart() {
    let dir = temp_dir("durable");
    let server = open_server(&dir);
    let duid = server.server_duid().clone();
    let mut events = server.subscribe();
    let solicit = msg(
        MSG_SOLICIT,
        &client(1),
        vec![ia_na(1, &[]), ia_pd(2, None), DhcpOption::RapidCommit],
    );
    let reply = handle_bytes(&server, solicit).await.unwrap();
    // The reply exists: the leases are already in the database, seen by a fresh connection.
    let other = SqliteStore::open(dir.join(crate::server::LEASE_DB_FILE)).unwrap();
    let reply = decode(&reply).unwrap();
    let address = reply
        .as_message()
        .unwrap()
        .ia_nas()
        .next()
        .unwrap()
        .ia_addrs()
        .next()
        .unwrap()
        .addr;
    assert_eq!(
        other.get_by_address(address).unwrap().unwrap().state,
        LeaseState::Assigned
    );
    assert_eq!(events.recv().await.unwrap().kind, LeaseEventKind::Granted);
    assert_eq!(events.recv().await.unwrap().kind, LeaseEventKind::Granted);
    let snapshot = server.stats().snapshot();
    assert_eq!(snapshot.received["solicit"], 1);
    assert_eq!(snapshot.sent["reply"], 1);
    drop(server);
    let again = open_server(&dir);
    assert_eq!(again.server_duid(), &duid);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The socket loop's way: many Rapid-Commit Solicits begun with tickets, each completed once
/// the writer's progress passes its ticket, every reply after its leases are on disk, with
/// fewer progress moves than requests (one per batch).
#[tokio::test]
async fn ticketed_requests_are_answered_once_their_batch_is_durable() {
    let dir = temp_dir("ticketed");
    let server = open_server(&dir);
    let mut progress = server.writer().progress();
    let total = 50u8;
    let mut waiting = Vec::new();
    for n in 1..=total {
        let solicit = msg(
            MSG_SOLICIT,
            &client(n),
            vec![ia_na(1, &[]), DhcpOption::RapidCommit],
        );
        match server.begin(&inbound(&solicit.into(), "ff02::1:2"), Durability::Ticket) {
            Handling::Waiting(w) => waiting.push(w),
            Handling::Done(_) => panic!("a Rapid-Commit Solicit changes a lease"),
        }
    }
    let last = waiting.last().unwrap().ticket().unwrap();
    let mut moves = 0;
    while !last.is_over(*progress.borrow_and_update()) {
        progress.changed().await.unwrap();
        moves += 1;
    }
    assert!(
        moves < usize::from(total),
        "{moves} progress moves for {total} requests"
    );
    let other = SqliteStore::open(dir.join(crate::server::LEASE_DB_FILE)).unwrap();
    for w in waiting {
        let ticket = w.ticket().unwrap();
        let reply = server.complete(w, server.writer().outcome(ticket)).unwrap();
        let reply = decode(&reply).unwrap();
        let address = reply
            .as_message()
            .unwrap()
            .ia_nas()
            .next()
            .unwrap()
            .ia_addrs()
            .next()
            .unwrap()
            .addr;
        assert!(other.get_by_address(address).unwrap().is_some());
    }
    assert_eq!(server.stats().snapshot().sent["reply"], u64::from(total));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn malformed_input_is_counted_by_reason() {
    let dir = temp_dir("malformed");
    let server = open_server(&dir);
    let mut bad = inbound(&Message::new(1, [0; 3]).into(), "ff02::1:2");
    for bytes in [
        vec![],
        vec![1, 0],
        vec![1, 0, 0, 0, 0, 1, 0, 200, 1],
        vec![200, 0, 0, 0],
    ] {
        bad.bytes = bytes;
        assert!(server.handle(&bad).await.is_none());
    }
    let drops = server.stats().snapshot().drops;
    assert_eq!(drops["empty_message"], 1);
    assert_eq!(drops["truncated_header"], 1);
    assert_eq!(drops["option_length_past_end"], 1);
    assert_eq!(drops["unknown_message_type"], 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn reclaim_clear_and_fast_path_renewal() {
    let dir = temp_dir("reclaim");
    let server = open_server(&dir);
    let solicit = msg(
        MSG_SOLICIT,
        &client(1),
        vec![ia_na(1, &[]), DhcpOption::RapidCommit],
    );
    handle_bytes(&server, solicit).await.unwrap();
    let lease = server
        .store()
        .find(&crate::store::LeaseFilter::All, None, 10)
        .unwrap()
        .remove(0);
    let mut events = server.subscribe();

    // A fast-path renewal moves the expiry forward (durable after the writer's short delay).
    let expires = lease.expire + 100;
    assert_eq!(
        server
            .apply_fast_path_renewal(
                &lease.duid,
                expires,
                &[crate::store::LeaseType::Na, crate::store::LeaseType::Pd]
            )
            .unwrap(),
        1
    );
    assert_eq!(events.recv().await.unwrap().kind, LeaseEventKind::Renewed);
    server.writer().flush().await.unwrap();
    assert_eq!(
        server.store().get(&lease.key()).unwrap().unwrap().expire,
        expires
    );

    // Past its expiry the timer reclaims it.
    assert_eq!(server.reclaim_expired(expires + 1, 100).await.unwrap(), 1);
    let reclaimed = server.store().get(&lease.key()).unwrap().unwrap();
    assert_eq!(reclaimed.state, LeaseState::ExpiredReclaimed);
    assert_eq!(events.recv().await.unwrap().kind, LeaseEventKind::Expired);

    // Clear removes it.
    assert_eq!(
        server
            .clear(&ClearSelector::Address(lease.address))
            .await
            .unwrap(),
        1
    );
    assert!(server.store().get(&lease.key()).unwrap().is_none());
    assert_eq!(events.recv().await.unwrap().kind, LeaseEventKind::Cleared);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn leasequery_over_udp_is_answered_by_the_leasequery_module() {
    let dir = temp_dir("leasequery");
    let server = open_server(&dir);
    let query = Message::new(MSG_LEASEQUERY, [7, 7, 7])
        .with_option(DhcpOption::ClientId(client(50)))
        .with_option(DhcpOption::LqQuery(crate::proto::LqQuery {
            query_type: QUERY_BY_ADDRESS,
            link_address: Ipv6Addr::UNSPECIFIED,
            options: vec![DhcpOption::IaAddr(IaAddr {
                addr: addr("2001:db8:1::100"),
                preferred: 0,
                valid: 0,
                options: Vec::new(),
            })],
        }));
    let reply = handle_bytes(&server, query)
        .await
        .expect("a LEASEQUERY-REPLY");
    let reply = decode(&reply).unwrap();
    let reply = reply.as_message().unwrap();
    assert_eq!(reply.msg_type, MSG_LEASEQUERY_REPLY);
    assert_eq!(reply.transaction_id, [7, 7, 7]);
    // The test config allows nobody: the module refuses, inside a proper reply.
    assert_eq!(
        reply.status_code().map(|s| s.code),
        Some(STATUS_NOT_ALLOWED)
    );
    let snapshot = server.stats().snapshot();
    assert_eq!(snapshot.received["leasequery"], 1);
    assert_eq!(snapshot.sent["leasequery-reply"], 1);
    let _ = std::fs::remove_dir_all(&dir);
}
