//! RFC 7653 as a requestor written from the RFC sees it: every query built byte by byte here
//! (not by the project's client), every answer read byte by byte. Each case names the section
//! whose MUST it checks.

mod leasequery_common;

use std::net::Ipv6Addr;
use std::time::Duration;

use dhcp_user::lease_events::LeaseEventKind;
use dhcp_user::leasequery::LeasequerySettings;
use dhcp_user::store::{LeaseChange, LeaseStore};
use leasequery_common::*;

const ACTIVELEASEQUERY: u8 = 22;
const STARTTLS: u8 = 23;
const LEASEQUERY_REPLY: u8 = 15;
const LEASEQUERY_DONE: u8 = 16;
const LEASEQUERY_DATA: u8 = 17;
const OPTION_CLIENTID: u16 = 1;
const OPTION_STATUS_CODE: u16 = 13;
const OPTION_CLIENT_DATA: u16 = 45;
const OPTION_LQ_BASE_TIME: u16 = 100;
const OPTION_LQ_START_TIME: u16 = 101;
const OPTION_LQ_END_TIME: u16 = 102;
const STATUS_MALFORMED_QUERY: u16 = 8;
const STATUS_QUERY_TERMINATED: u16 = 11;
const STATUS_CATCH_UP_COMPLETE: u16 = 13;
const STATUS_NOT_SUPPORTED: u16 = 14;
const STATUS_TLS_CONNECTION_REFUSED: u16 = 15;

/// A message of `msg_type` carrying only the requestor's Client ID and `extra` options: no
/// OPTION_LQ_QUERY (what a requestor that wants every update sends, §6.2.1).
fn bare(msg_type: u8, xid: [u8; 3], extra: &[u8]) -> Vec<u8> {
    let mut m = vec![msg_type, xid[0], xid[1], xid[2]];
    m.extend(opt(OPTION_CLIENTID, &REQUESTOR_DUID));
    m.extend_from_slice(extra);
    m
}

/// The requestor's clock as an RFC 7653 time: seconds since 2000-01-01 00:00 UTC.
fn wire_now() -> i64 {
    now() - EPOCH_2000_UNIX
}

/// Reads LEASEQUERY-DATA messages until CatchUpComplete; returns the addresses updated.
async fn catch_up(s: &mut tokio::net::TcpStream, xid: [u8; 3]) -> Vec<Ipv6Addr> {
    let mut seen = Vec::new();
    loop {
        let m = read_msg(s).await;
        assert_eq!((m.msg_type, m.xid), (LEASEQUERY_DATA, xid));
        if m.status().0 == STATUS_CATCH_UP_COMPLETE {
            return seen;
        }
        let data = m
            .client_data()
            .expect("a catch-up update carries client data");
        seen.push(iaaddr(find(&data, 5)[0]).0);
    }
}

/// §2, §6.3.1: LQ_BASE_TIME counts seconds from 2000-01-01 UTC; a requestor that takes its
/// LQ_START_TIME from its own clock gets only the changes since then, not the whole history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn base_and_start_times_count_from_2000() {
    let f = Fixture::start(settings()).await;
    let t = now();
    let old = na(addr("2001:db8:1::a"), 1, LINK_A, t - 5000);
    let recent = na(addr("2001:db8:1::b"), 2, LINK_A, t - 10);
    f.store
        .commit(&[LeaseChange::Upsert(old)], t - 5000)
        .unwrap();
    f.store
        .commit(&[LeaseChange::Upsert(recent)], t - 10)
        .unwrap();
    let mut s = f.connect().await;
    // "Everything of the last minute", by the requestor's clock.
    let start = ((wire_now() - 60) as u32).to_be_bytes();
    send(
        &mut s,
        &bare(
            ACTIVELEASEQUERY,
            [7, 0, 1],
            &opt(OPTION_LQ_START_TIME, &start),
        ),
    )
    .await;
    let reply = read_msg(&mut s).await;
    assert_eq!((reply.msg_type, reply.status().0), (LEASEQUERY_REPLY, 0));
    let base = i64::from(reply.wire_base_time().expect("LQ_BASE_TIME"));
    assert!(
        (base - wire_now()).abs() <= 2,
        "LQ_BASE_TIME {base} is not seconds since 2000 (now: {})",
        wire_now()
    );
    assert_eq!(
        catch_up(&mut s, [7, 0, 1]).await,
        vec![addr("2001:db8:1::b")],
        "only the change of the last minute, not the 5000 s old one"
    );
}

/// §6.2.1: a requestor that wants all updates MUST leave OPTION_LQ_QUERY out; it is served,
/// with every binding on every link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_active_query_without_lq_query_follows_every_binding() {
    let f = Fixture::start(settings()).await;
    let mut s = f.connect().await;
    send(&mut s, &bare(ACTIVELEASEQUERY, [7, 0, 2], &[])).await;
    let reply = read_msg(&mut s).await;
    assert_eq!(
        (reply.msg_type, reply.xid, reply.status().0),
        (LEASEQUERY_REPLY, [7, 0, 2], 0),
        "Success, not MalformedQuery: {:?}",
        reply.status()
    );
    let t = now();
    for (address, n, link) in [
        ("2001:db8:1::21", 21, LINK_A),
        ("2001:db8:2::22", 22, LINK_B),
    ] {
        f.change(LeaseEventKind::Granted, &[na(addr(address), n, link, t)], t);
        let m = read_msg(&mut s).await;
        assert_eq!((m.msg_type, m.xid), (LEASEQUERY_DATA, [7, 0, 2]));
        assert!(m.get(OPTION_LQ_BASE_TIME).is_some());
        let data = m.client_data().expect("client data");
        assert_eq!(iaaddr(find(&data, 5)[0]).0, addr(address), "both links");
    }
    // With LQ_START_TIME and still no OPTION_LQ_QUERY: a catch-up of everything.
    let mut s = f.connect().await;
    let start = ((wire_now() - 60) as u32).to_be_bytes();
    send(
        &mut s,
        &bare(
            ACTIVELEASEQUERY,
            [7, 0, 3],
            &opt(OPTION_LQ_START_TIME, &start),
        ),
    )
    .await;
    assert_eq!(read_msg(&mut s).await.status().0, 0);
    let mut seen = catch_up(&mut s, [7, 0, 3]).await;
    seen.sort();
    assert_eq!(seen, vec![addr("2001:db8:1::21"), addr("2001:db8:2::22")]);
}

/// §9.1: a server without TLS answers STARTTLS with TLSConnectionRefused (not a silent close);
/// the connection stays usable in the clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_gets_tls_connection_refused_and_the_connection_stays() {
    let f = Fixture::start(settings()).await;
    let mut s = f.connect().await;
    send(&mut s, &bare(STARTTLS, [7, 0, 4], &[])).await;
    let reply = read_msg(&mut s).await;
    assert_eq!(
        (reply.msg_type, reply.xid, reply.status().0),
        (LEASEQUERY_REPLY, [7, 0, 4], STATUS_TLS_CONNECTION_REFUSED)
    );
    assert_eq!(reply.get(OPTION_CLIENTID), Some(&REQUESTOR_DUID[..]));
    assert!(reply.get(OPTION_LQ_BASE_TIME).is_some());
    send(&mut s, &bare(ACTIVELEASEQUERY, [7, 0, 5], &[])).await;
    let reply = read_msg(&mut s).await;
    assert_eq!((reply.msg_type, reply.status().0), (LEASEQUERY_REPLY, 0));
    assert_eq!(f.stats.get("status_tls_connection_refused"), 1);
}

/// §9.3: LQ_END_TIME in an ACTIVELEASEQUERY MUST get MalformedQuery (with or without
/// OPTION_LQ_QUERY), not be ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lq_end_time_in_an_active_query_is_malformed() {
    let f = Fixture::start(settings()).await;
    let end = opt(OPTION_LQ_END_TIME, &(wire_now() as u32).to_be_bytes());
    let mut s = f.connect().await;
    send(&mut s, &bare(ACTIVELEASEQUERY, [7, 0, 6], &end)).await;
    let reply = read_msg(&mut s).await;
    assert_eq!(
        (reply.msg_type, reply.status().0),
        (LEASEQUERY_REPLY, STATUS_MALFORMED_QUERY)
    );
    assert!(
        reply.status().1.contains("LQ_END_TIME"),
        "{:?}",
        reply.status()
    );
    let mut s = f.connect().await;
    send(
        &mut s,
        &query(
            ACTIVELEASEQUERY,
            [7, 0, 7],
            4,
            Ipv6Addr::UNSPECIFIED,
            &[],
            &end,
        ),
    )
    .await;
    assert_eq!(read_msg(&mut s).await.status().0, STATUS_MALFORMED_QUERY);
}

/// §8.4, §9.3: the LEASEQUERY-DONE that ends an active query on shutdown carries
/// LQ_BASE_TIME, so the requestor knows where to resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leasequery_done_on_shutdown_carries_lq_base_time() {
    let f = Fixture::start(settings()).await;
    let mut s = f.connect().await;
    send(&mut s, &bare(ACTIVELEASEQUERY, [7, 0, 8], &[])).await;
    assert_eq!(read_msg(&mut s).await.msg_type, LEASEQUERY_REPLY);
    f.shutdown.send(true).unwrap();
    let done = read_msg(&mut s).await;
    assert_eq!(
        (done.msg_type, done.status().0),
        (LEASEQUERY_DONE, STATUS_QUERY_TERMINATED)
    );
    let base = i64::from(done.wire_base_time().expect("LQ_BASE_TIME in the DONE"));
    assert!((base - wire_now()).abs() <= 2);
    assert!(done.get(OPTION_STATUS_CODE).is_some());
    assert!(done.get(OPTION_CLIENT_DATA).is_none());
}

/// §9.1: active leasequery MUST NOT be on by default: a server left at the defaults answers
/// NotSupported (bulk queries still work).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_leasequery_is_off_by_default() {
    let defaults = LeasequerySettings {
        allow: settings().allow,
        links: settings().links,
        io_timeout: Duration::from_secs(2),
        ..LeasequerySettings::default()
    };
    let f = Fixture::start(defaults).await;
    let mut s = f.connect().await;
    send(&mut s, &bare(ACTIVELEASEQUERY, [7, 0, 9], &[])).await;
    assert_eq!(read_msg(&mut s).await.status().0, STATUS_NOT_SUPPORTED);
    let mut s = f.connect().await;
    send(
        &mut s,
        &query(14, [7, 0, 10], 4, Ipv6Addr::UNSPECIFIED, &[], &[]),
    )
    .await;
    let reply = read_msg(&mut s).await;
    assert_eq!((reply.msg_type, reply.status().0), (LEASEQUERY_REPLY, 0));
}
