//! TLS for leasequery (RFC 7653 §5.2) against the in-process service on loopback, with
//! certificates made at test time: StartTLS and then bulk and individual queries with
//! `dhcp-user leasequery --tls`; a plain requestor refused when TLS is required; requestors with
//! an untrusted certificate, or none, refused in the handshake; a requestor refusing a server
//! it does not trust; peers following each other over TLS; a bad PEM path as a configuration
//! error naming its key.

mod leasequery_common;
mod server_common;

use std::net::Ipv6Addr;
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use dhcp_user::config::parse_prefix;
use dhcp_user::lease_events::LeaseEventKind;
use dhcp_user::leasequery::client::{ClientError, LeasequeryConnection, Query, QueryOptions};
use dhcp_user::leasequery::peer::{follow_peer, PeerSettings, PeerSink};
use dhcp_user::leasequery::LeasequeryStats;
use dhcp_user::proto::Duid;
use dhcp_user::store::{LeaseChange, LeaseFilter, LeaseStore, StoreWriter, WriterConfig};
use dhcp_user::tls::{ClientCertificates, ClientTls};
use leasequery_common::tls::TestPki;
use leasequery_common::*;
use server_common::dhcp_user_binary;
use tokio::sync::watch;

const WAIT: Duration = Duration::from_secs(5);
const LEASEQUERY: u8 = 14;
const LEASEQUERY_REPLY: u8 = 15;
const LEASEQUERY_DATA: u8 = 17;
const LEASEQUERY_DONE: u8 = 16;
const ACTIVELEASEQUERY: u8 = 22;
const QUERY_BY_LINK_ADDRESS: u8 = 4;
const STATUS_TLS_CONNECTION_REFUSED: u16 = 15;
const STATUS_NOT_ALLOWED: u16 = 10;
const STARTTLS: u8 = 23;

fn me() -> Duid {
    Duid::new(REQUESTOR_DUID.to_vec()).unwrap()
}

/// Settings that refuse every query in the clear.
fn tls_only() -> dhcp_user::leasequery::LeasequerySettings {
    dhcp_user::leasequery::LeasequerySettings {
        tls_required: true,
        active_requires_tls: true,
        ..settings()
    }
}

/// `dhcp-user leasequery --server [::1]:port ARGS...`, run off the runtime's threads.
async fn cli(port: u16, args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(dhcp_user_binary())
            .arg("leasequery")
            .arg("--server")
            .arg(format!("[::1]:{port}"))
            .args(args)
            .output()
            .expect("running dhcp-user leasequery")
    })
    .await
    .unwrap()
}

fn tls_args(
    pki: &TestPki,
    identity: Option<&(std::path::PathBuf, std::path::PathBuf)>,
) -> Vec<String> {
    let mut args = vec![
        "--tls".to_string(),
        "--ca".into(),
        pki.ca().display().to_string(),
    ];
    if let Some((cert, key)) = identity {
        args.extend([
            "--cert".into(),
            cert.display().to_string(),
            "--key".into(),
            key.display().to_string(),
        ]);
    }
    args
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Two bindings on LINK_A (an address and a prefix) in the fixture's store.
fn bindings(f: &Fixture) {
    let t = now() - 5;
    f.store
        .commit(
            &[
                LeaseChange::Upsert(na(addr("2001:db8:1::a"), 1, LINK_A, t)),
                LeaseChange::Upsert(pd(addr("2001:db8:8000:100::"), 56, 2, LINK_A, t)),
            ],
            t,
        )
        .unwrap();
}

/// `dhcp-user leasequery --tls` with a client certificate: StartTLS, then a bulk query for
/// every link and an address query (over TCP, as --tls implies), both answered over TLS by a
/// server that takes nothing in the clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_bulk_and_individual_queries_with_the_command_line() {
    let pki = TestPki::new("cli");
    let server = pki.server("server", &["::1"], ClientCertificates::Required);
    let f = Fixture::start_tls(tls_only(), server).await;
    bindings(&f);
    let requestor = pki.issue("requestor", &["requestor.example"]);
    let port = f.addr.port();

    let mut args = tls_args(&pki, Some(&requestor));
    args.extend(["--json".into(), "link".into(), "::".into()]);
    let out = cli(port, args).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("2001:db8:1::a") && stdout.contains("2001:db8:8000:100::"),
        "{}",
        text(&out)
    );

    let mut args = tls_args(&pki, Some(&requestor));
    args.extend(["address".into(), "2001:db8:1::a".into()]);
    let out = cli(port, args).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2001:db8:1::a client 00:03:00:01:02:00"),
        "{}",
        text(&out)
    );
    assert_eq!(f.stats.get("tls_sessions"), 2);
    assert_eq!(f.stats.get("bulk_queries"), 2);
    assert_eq!(f.stats.get("status_tls_required"), 0);
}

/// `tls-required`: a bulk or active query in the clear gets a LEASEQUERY-REPLY with
/// TLSConnectionRefused and the connection is closed (counted); the command line without
/// --tls fails saying so; the same requestor over TLS is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_requestor_is_refused_when_tls_is_required() {
    let pki = TestPki::new("plain");
    let server = pki.server("server", &["::1"], ClientCertificates::Optional);
    let f = Fixture::start_tls(tls_only(), server).await;
    bindings(&f);

    for (msg_type, xid) in [(LEASEQUERY, [1, 2, 3]), (ACTIVELEASEQUERY, [1, 2, 4])] {
        let mut s = f.connect().await;
        let q = query(
            msg_type,
            xid,
            QUERY_BY_LINK_ADDRESS,
            Ipv6Addr::UNSPECIFIED,
            &[],
            &[],
        );
        send(&mut s, &q).await;
        let reply = read_msg(&mut s).await;
        assert_eq!(reply.msg_type, LEASEQUERY_REPLY);
        assert_eq!(reply.xid, xid);
        assert_eq!(
            reply.status().0,
            STATUS_TLS_CONNECTION_REFUSED,
            "{:?}",
            reply.status()
        );
        assert!(
            read_frame(&mut s, WAIT).await.is_none(),
            "the server closes the connection"
        );
    }
    assert_eq!(f.stats.get("status_tls_required"), 2);

    let out = cli(f.addr.port(), vec!["link".into(), "::".into()]).await;
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("status 15"), "{}", text(&out));

    // The same requestor over TLS (no certificate needed here: client certificates optional).
    let mut connection =
        LeasequeryConnection::connect_with(f.addr, WAIT, &me(), Some(&pki.client(None)))
            .await
            .unwrap();
    assert!(connection.is_tls());
    let answer = connection
        .bulk(
            &me(),
            &Query::LinkAddress(Ipv6Addr::UNSPECIFIED),
            &QueryOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(answer.bindings.len(), 2);
    assert_eq!(
        f.stats.get("status_tls_required"),
        3,
        "the CLI's query counted too"
    );
}

/// TLS does not replace the allow-list: a requestor outside it gets NotAllowed in answer to
/// its STARTTLS and is disconnected, before any handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_from_outside_the_allow_list_gets_not_allowed() {
    let pki = TestPki::new("allow");
    let server = pki.server("server", &["::1"], ClientCertificates::Optional);
    let elsewhere = dhcp_user::leasequery::LeasequerySettings {
        allow: vec![parse_prefix("2001:db8:ffff::/48").unwrap()],
        ..tls_only()
    };
    let f = Fixture::start_tls(elsewhere, server).await;
    let mut s = f.connect().await;
    let mut starttls = vec![STARTTLS, 4, 0, 1];
    starttls.extend(opt(1, &REQUESTOR_DUID));
    send(&mut s, &starttls).await;
    let reply = read_msg(&mut s).await;
    assert_eq!(
        (reply.msg_type, reply.xid, reply.status().0),
        (LEASEQUERY_REPLY, [4, 0, 1], STATUS_NOT_ALLOWED)
    );
    assert!(read_frame(&mut s, WAIT).await.is_none(), "disconnected");
    let err = LeasequeryConnection::connect_with(f.addr, WAIT, &me(), Some(&pki.client(None)))
        .await
        .err()
        .expect("refused");
    assert!(
        matches!(
            err,
            ClientError::TlsRefused {
                status: STATUS_NOT_ALLOWED,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(f.stats.get("status_not_allowed"), 2);
    assert_eq!(f.stats.get("tls_sessions"), 0);
}

/// TLS configured without `tls-required` and without `active-insecure`: a bulk query in the
/// clear is served, an active query in the clear gets TLSConnectionRefused and the session
/// goes on (RFC 7653 §9.1: active leasequery in the clear takes its own configuration step).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_leasequery_in_the_clear_is_refused_where_tls_is_configured() {
    let pki = TestPki::new("active-clear");
    let server = pki.server("server", &["::1"], ClientCertificates::Optional);
    let clear_bulk = dhcp_user::leasequery::LeasequerySettings {
        active_requires_tls: true,
        ..settings()
    };
    let f = Fixture::start_tls(clear_bulk, server).await;
    bindings(&f);
    let mut s = f.connect().await;
    let active = query(
        ACTIVELEASEQUERY,
        [3, 0, 1],
        QUERY_BY_LINK_ADDRESS,
        Ipv6Addr::UNSPECIFIED,
        &[],
        &[],
    );
    send(&mut s, &active).await;
    let reply = read_msg(&mut s).await;
    assert_eq!(
        (reply.msg_type, reply.status().0),
        (LEASEQUERY_REPLY, STATUS_TLS_CONNECTION_REFUSED),
        "{:?}",
        reply.status()
    );
    // The same connection still takes a bulk query in the clear.
    let bulk = query(
        LEASEQUERY,
        [3, 0, 2],
        QUERY_BY_LINK_ADDRESS,
        Ipv6Addr::UNSPECIFIED,
        &[],
        &[],
    );
    send(&mut s, &bulk).await;
    let reply = read_msg(&mut s).await;
    assert_eq!((reply.msg_type, reply.status().0), (LEASEQUERY_REPLY, 0));
    assert!(
        reply.client_data().is_some(),
        "the first binding in the REPLY"
    );
    assert_eq!(f.stats.get("status_tls_required"), 1);
    assert_eq!(f.stats.get("tls_sessions"), 0);
}

/// A bulk answer far larger than the socket buffers (5 000 bindings), read only after a pause
/// that leaves the server blocked on a full socket, arrives whole over TLS, up to the
/// LEASEQUERY-DONE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_bulk_answer_arrives_whole_over_tls() {
    let pki = TestPki::new("large");
    let server = pki.server("server", &["::1"], ClientCertificates::Optional);
    let f = Fixture::start_tls(tls_only(), server).await;
    let t = now() - 5;
    let leases: Vec<LeaseChange> = (0..5000u32)
        .map(|n| {
            let address = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 1, n as u16);
            LeaseChange::Upsert(na(address, n + 1, LINK_A, t))
        })
        .collect();
    f.store.commit(&leases, t).unwrap();

    let mut connection =
        LeasequeryConnection::connect_with(f.addr, WAIT, &me(), Some(&pki.client(None)))
            .await
            .unwrap();
    let xid = [9, 9, 9];
    let query = dhcp_user::leasequery::client::build_query(
        LEASEQUERY,
        xid,
        &me(),
        &Query::LinkAddress(Ipv6Addr::UNSPECIFIED),
        &QueryOptions::default(),
    );
    connection.send(&query).await.unwrap();
    // The server fills the socket buffers and waits for us.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut clients = 0;
    loop {
        let message = connection
            .receive(WAIT)
            .await
            .unwrap()
            .expect("the connection stays open up to the DONE");
        assert_eq!(message.transaction_id, xid);
        match message.msg_type {
            LEASEQUERY_REPLY | LEASEQUERY_DATA => clients += 1,
            LEASEQUERY_DONE => break,
            other => panic!("message type {other}"),
        }
    }
    assert_eq!(clients, 5000);
    eventually(WAIT, || f.stats.get("bulk_bindings_sent") == 5000).await;
}

/// Mutual TLS: a requestor whose certificate another CA signed, or with no certificate, fails
/// the handshake and gets nothing; the server counts the drops. So does the command line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requestor_with_an_untrusted_certificate_is_refused() {
    let pki = TestPki::new("mutual");
    let stranger = TestPki::new("stranger");
    let server = pki.server("server", &["::1"], ClientCertificates::Required);
    let f = Fixture::start_tls(tls_only(), server).await;
    bindings(&f);
    let untrusted = stranger.issue("intruder", &["intruder.example"]);

    // It trusts our server, but presents a certificate our CA did not sign.
    let anchors = dhcp_user::tls::load_trust_anchors(&pki.ca()).unwrap();
    let identity = dhcp_user::tls::Identity::load(&untrusted.0, &untrusted.1).unwrap();
    let intruder = ClientTls {
        config: dhcp_user::tls::client_config(&anchors, Some(&identity)).unwrap(),
        server_name: None,
    };
    for tls in [intruder, pki.client(None)] {
        let result = async {
            let mut connection =
                LeasequeryConnection::connect_with(f.addr, WAIT, &me(), Some(&tls)).await?;
            connection
                .bulk(
                    &me(),
                    &Query::LinkAddress(Ipv6Addr::UNSPECIFIED),
                    &QueryOptions::default(),
                )
                .await
        }
        .await;
        let err = result.expect_err("no answer without a trusted certificate");
        assert!(
            matches!(
                err,
                ClientError::Tls(_) | ClientError::Io(_) | ClientError::Protocol(_)
            ),
            "{err:?}"
        );
    }
    let mut args = tls_args(&pki, Some(&untrusted));
    args.extend(["link".into(), "::".into()]);
    let out = cli(f.addr.port(), args).await;
    assert!(!out.status.success(), "{}", text(&out));
    eventually(WAIT, || f.stats.get("dropped_tls_handshake") == 3).await;
    assert_eq!(f.stats.get("tls_sessions"), 0);
    assert_eq!(f.stats.get("bulk_queries"), 0);
}

/// The requestor verifies the server: a certificate from a CA it does not trust, or one for
/// another address, fails the handshake; a server without TLS answers STARTTLS with
/// TLSConnectionRefused, which is an error, never a fallback to the clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_requestor_refuses_a_server_it_cannot_verify() {
    let pki = TestPki::new("verify");
    let stranger = TestPki::new("verify-stranger");
    let elsewhere = pki.server("elsewhere", &["2001:db8::99"], ClientCertificates::Optional);
    let f = Fixture::start_tls(settings(), elsewhere).await;
    let err = LeasequeryConnection::connect_with(f.addr, WAIT, &me(), Some(&pki.client(None)))
        .await
        .err()
        .expect("a certificate for another address");
    assert!(matches!(err, ClientError::Tls(_)), "{err:?}");
    let err = LeasequeryConnection::connect_with(f.addr, WAIT, &me(), Some(&stranger.client(None)))
        .await
        .err()
        .expect("a certificate from an untrusted CA");
    assert!(matches!(err, ClientError::Tls(_)), "{err:?}");

    let plain = Fixture::start(settings()).await;
    let err = LeasequeryConnection::connect_with(plain.addr, WAIT, &me(), Some(&pki.client(None)))
        .await
        .err()
        .expect("a server without TLS");
    assert!(
        matches!(
            err,
            ClientError::TlsRefused {
                status: STATUS_TLS_CONNECTION_REFUSED,
                ..
            }
        ),
        "{err:?}"
    );
}

/// One in-process server of a pair over TLS: store, writer, events, TLS service.
struct TlsPeer {
    fixture: Fixture,
    writer: StoreWriter,
    stats: Arc<LeasequeryStats>,
    /// What it StartTLSes to its peer with (its own certificate for mutual TLS).
    tls: ClientTls,
}

impl TlsPeer {
    async fn start(pki: &TestPki, name: &str) -> TlsPeer {
        let (cert, key) = pki.issue(name, &["::1"]);
        let identity = dhcp_user::tls::Identity::load(&cert, &key).unwrap();
        let anchors = dhcp_user::tls::load_trust_anchors(&pki.ca()).unwrap();
        let server =
            dhcp_user::tls::server_config(&identity, &anchors, ClientCertificates::Required)
                .unwrap();
        let fixture = Fixture::start_tls(tls_only(), server).await;
        let writer = StoreWriter::spawn(fixture.store.clone(), WriterConfig::default()).unwrap();
        TlsPeer {
            fixture,
            writer,
            stats: Arc::new(LeasequeryStats::new()),
            tls: pki.client(Some((cert, key))),
        }
    }

    /// Follows `other` over TLS until the returned sender is dropped or set.
    fn follow(
        &self,
        other: &TlsPeer,
        name: u8,
    ) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let mut settings = PeerSettings::new(
            other.fixture.addr,
            Duid::new(vec![0, 3, 0, 1, name, name]).unwrap(),
        );
        settings.retry = Duration::from_millis(200);
        settings.tls = Some(self.tls.clone());
        let sink = PeerSink {
            store: self.fixture.store.clone(),
            writer: self.writer.clone(),
            events: Some(self.fixture.events.clone()),
            subnets: vec![
                (parse_prefix("2001:db8:1::/64").unwrap(), 1),
                (parse_prefix("2001:db8:8000::/40").unwrap(), 1),
            ],
            stats: self.stats.clone(),
            links: Vec::new(),
            line_identity: None,
            publish: None,
        };
        let (tx, rx) = watch::channel(false);
        (tx, tokio::spawn(follow_peer(settings, sink, rx)))
    }

    fn addresses(&self) -> Vec<Ipv6Addr> {
        let mut rows: Vec<Ipv6Addr> = self
            .fixture
            .store
            .find(&LeaseFilter::All, None, 10_000)
            .unwrap()
            .into_iter()
            .map(|l| l.address)
            .collect();
        rows.sort();
        rows
    }
}

/// A redundant pair over mutual TLS, with nothing in the clear: once each follows the other
/// by an active query over TLS (after the bulk sync, also over TLS), what A grants appears on
/// B and the other way round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peers_follow_each_other_over_tls() {
    let pki = TestPki::new("peers");
    let a = TlsPeer::start(&pki, "a").await;
    let b = TlsPeer::start(&pki, "b").await;
    let (_a_follows, _ta) = a.follow(&b, 0xa);
    let (_b_follows, _tb) = b.follow(&a, 0xb);
    eventually(WAIT, || {
        [&a, &b]
            .iter()
            .all(|peer| peer.fixture.stats.get("active_queries") == 1)
    })
    .await;

    let t = now();
    a.fixture.change(
        LeaseEventKind::Granted,
        &[na(addr("2001:db8:1::1:1"), 1, LINK_A, t)],
        t,
    );
    b.fixture.change(
        LeaseEventKind::Granted,
        &[na(addr("2001:db8:1::2:1"), 2, LINK_A, t)],
        t,
    );
    let both = vec![addr("2001:db8:1::1:1"), addr("2001:db8:1::2:1")];
    eventually(WAIT, || a.addresses() == both && b.addresses() == both).await;
    for peer in [&a, &b] {
        assert_eq!(
            peer.fixture.stats.get("tls_sessions"),
            2,
            "the bulk sync and the active query, each over TLS"
        );
        assert_eq!(peer.fixture.stats.get("status_tls_required"), 0);
        assert_eq!(peer.stats.get("peer_tls_errors"), 0);
    }
}

/// A TLS key whose file is missing stops `dhcp-user serve` at the configuration, with an
/// error naming the file, the line and the key.
#[test]
fn a_bad_pem_path_is_a_config_error_naming_the_key() {
    let pki = TestPki::new("config");
    let (cert, _) = pki.issue("server", &["::1"]);
    let config = pki.dir.join("server.toml");
    std::fs::write(
        &config,
        format!(
            "state-dir = \"{dir}\"\n[leasequery]\nallow = [\"::1/128\"]\n\
             tls-certificate = \"{cert}\"\ntls-private-key = \"{dir}/no-such.key\"\n\
             tls-ca = \"{ca}\"\n",
            dir = pki.dir.display(),
            cert = cert.display(),
            ca = pki.ca().display(),
        ),
    )
    .unwrap();
    let out = std::process::Command::new(dhcp_user_binary())
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .output()
        .expect("running dhcp-user serve");
    assert!(!out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("server.toml")
            && stderr.contains("line 5")
            && stderr.contains("leasequery.tls-private-key")
            && stderr.contains("no-such.key"),
        "{}",
        text(&out)
    );
    assert!(!stderr.contains("panicked"), "{}", text(&out));
}
