//! The HTTP API in process: a server (no sockets, no fast path) behind the API on 127.0.0.1,
//! spoken to with raw HTTP/1.1, in the clear and over TLS.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::*;
use crate::config::{ApiToken, Config};

const TOKEN: &str = "s3cret-token-for-tests";

struct Api {
    address: std::net::SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    dir: std::path::PathBuf,
    server: Arc<Server>,
}

async fn start(tag: &str, tls: Option<crate::tls::Identity>) -> Api {
    let dir = std::env::temp_dir().join(format!("dhcp-user-api-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = Config::parse(include_str!("../../../examples/lab.toml"), "lab.toml").unwrap();
    config.state_dir = dir.clone();
    let server = Server::open(config, &[]).unwrap();
    let api = ApiConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        token: ApiToken(TOKEN.as_bytes().to_vec()),
        tls,
        max_request_size: 1024,
        max_connections: 4,
    };
    let listener = bind_api(&api).await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(serve_api(server.clone(), None, api, listener, stopped));
    Api {
        address,
        stop,
        task,
        dir,
        server,
    }
}

impl Api {
    async fn stop(self) {
        let _ = self.stop.send(true);
        self.task.await.unwrap().unwrap();
        drop(self.server);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Sends one request (`Connection: close`) and returns the status and the body.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(token) = token {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (status, body)
}

async fn call(
    api: &Api,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, String) {
    let stream = tokio::net::TcpStream::connect(api.address).await.unwrap();
    exchange(stream, method, path, token, body).await
}

/// A request without the token, or with a wrong one, is answered 401 with a JSON error and a
/// `WWW-Authenticate` challenge; with the token, 200.
#[tokio::test]
async fn a_wrong_or_missing_token_is_answered_401() {
    let api = start("token", None).await;
    let (status, body) = call(&api, "GET", "/v1/usage", None, "").await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("\"error\"") && body.contains("Bearer"),
        "{body}"
    );
    let (status, _) = call(&api, "GET", "/v1/usage", Some("s3cret-token-for-tesTS"), "").await;
    assert_eq!(status, 401);
    let (status, _) = call(&api, "GET", "/v1/usage", Some("s3cret"), "").await;
    assert_eq!(status, 401);
    let (status, body) = call(&api, "GET", "/v1/usage", Some(TOKEN), "").await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("{\"usage\":["), "{body}");
    api.stop().await;
}

/// Bad JSON is answered 400, a body over `max-request-size` 413 (declared or not), an unknown
/// path 404, a wrong method 405; the API serves on after each.
#[tokio::test]
async fn bad_json_and_oversized_bodies_are_refused_not_fatal() {
    let api = start("bad", None).await;
    let (status, body) = call(&api, "POST", "/v1/leases", Some(TOKEN), "{\"address\":").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("bad_request") && body.contains("bad JSON"),
        "{body}"
    );
    let (status, body) = call(
        &api,
        "POST",
        "/v1/command",
        Some(TOKEN),
        "{\"command\":\"no-such-command\"}",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let big = format!("{{\"duid\":\"{}\"}}", "0".repeat(4096));
    let (status, body) = call(&api, "POST", "/v1/leases", Some(TOKEN), &big).await;
    assert_eq!(status, 413, "{body}");
    // Chunked, no Content-Length: stopped at the limit all the same.
    let mut stream = tokio::net::TcpStream::connect(api.address).await.unwrap();
    let chunk = "0".repeat(2048);
    let request = format!(
        "POST /v1/leases HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let (status, _) = call(&api, "GET", "/v1/nothing", Some(TOKEN), "").await;
    assert_eq!(status, 404);
    let (status, _) = call(&api, "PUT", "/v1/usage", Some(TOKEN), "").await;
    assert_eq!(status, 405);
    let (status, _) = call(&api, "GET", "/v1/stats", Some(TOKEN), "").await;
    assert_eq!(status, 200);
    api.stop().await;
}

/// Lease add, get, update, delete through the API; a lease held by another client, or outside
/// every pool, is refused 409/400 with a message; `reload` answers 501, not a fake success.
#[tokio::test]
async fn leases_are_added_updated_and_deleted_with_clear_refusals() {
    let api = start("leases", None).await;
    let add = r#"{"address":"2001:db8:1::1005","duid":"00030001020000000001","iaid":7}"#;
    let (status, body) = call(&api, "POST", "/v1/leases", Some(TOKEN), add).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"lease\":\"2001:db8:1::1005\"") && body.contains("\"iaid\":7"),
        "{body}"
    );
    let other = r#"{"address":"2001:db8:1::1005","duid":"00030001020000000002","iaid":1}"#;
    let (status, body) = call(&api, "POST", "/v1/leases", Some(TOKEN), other).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body.contains("held by client 00030001020000000001"),
        "{body}"
    );
    let outside = r#"{"address":"2001:db8:7::1","duid":"00030001020000000002","iaid":1}"#;
    let (status, body) = call(&api, "POST", "/v1/leases", Some(TOKEN), outside).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(
        &api,
        "GET",
        "/v1/leases?duid=00:03:00:01:02:00:00:00:00:01",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("2001:db8:1::1005"), "{body}");
    let update =
        r#"{"address":"2001:db8:1::1005","valid_lifetime":9000,"preferred_lifetime":4000}"#;
    let (status, body) = call(&api, "PATCH", "/v1/leases", Some(TOKEN), update).await;
    assert_eq!(status, 200, "{body}");
    let stored = api
        .server
        .store()
        .get_by_address("2001:db8:1::1005".parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(stored.valid_lifetime, 9000, "durable before the answer");
    let (status, body) = call(
        &api,
        "DELETE",
        "/v1/leases?address=2001:db8:1::1005",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(api
        .server
        .store()
        .get_by_address("2001:db8:1::1005".parse().unwrap())
        .unwrap()
        .is_none());
    let (status, body) = call(
        &api,
        "DELETE",
        "/v1/leases?address=2001:db8:1::1005",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = call(&api, "POST", "/v1/reload", Some(TOKEN), "").await;
    assert_eq!(status, 501, "{body}");
    assert!(body.contains("not_supported"), "{body}");
    api.stop().await;
}

/// A lease added for a relayed client keeps the relay's link-address it is given (what
/// leasequery by link-address finds); a link-local or multicast one is refused 400.
#[tokio::test]
async fn a_lease_added_for_a_relayed_client_keeps_its_link_address() {
    let api = start("link-address", None).await;
    for bad in ["fe80::1", "ff02::1:2"] {
        let add = format!(
            r#"{{"address":"2001:db8:1::1006","duid":"00030001020000000003","iaid":1,"link_address":"{bad}"}}"#
        );
        let (status, body) = call(&api, "POST", "/v1/leases", Some(TOKEN), &add).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.contains("link_address"), "{body}");
    }
    let add = r#"{"address":"2001:db8:1::1006","duid":"00030001020000000003","iaid":1,"link_address":"2001:db8:1::fe"}"#;
    let (status, body) = call(&api, "POST", "/v1/leases", Some(TOKEN), add).await;
    assert_eq!(status, 200, "{body}");
    let stored = api
        .server
        .store()
        .get_by_address("2001:db8:1::1006".parse().unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.link_address,
        "2001:db8:1::fe".parse::<std::net::Ipv6Addr>().unwrap()
    );
    api.stop().await;
}

/// Reservations: added (kept in reservations.json), refused twice for one client, listed,
/// deleted; one whose address another client holds is refused.
#[tokio::test]
async fn reservations_are_added_listed_and_deleted() {
    let api = start("reservations", None).await;
    let spec = r#"{"subnet":1,"duid":"00030001020000000009","address":"2001:db8:1::50"}"#;
    let (status, body) = call(&api, "POST", "/v1/reservations", Some(TOKEN), spec).await;
    assert_eq!(status, 200, "{body}");
    assert!(api
        .dir
        .join(crate::server::operator::RESERVATIONS_FILE)
        .exists());
    let (status, body) = call(&api, "POST", "/v1/reservations", Some(TOKEN), spec).await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = call(&api, "GET", "/v1/reservations", Some(TOKEN), "").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("\"source\":\"api\"") && body.contains("2001:db8:1::50"),
        "{body}"
    );
    let add = r#"{"address":"2001:db8:1::1009","duid":"00030001020000000001","iaid":7}"#;
    assert_eq!(
        call(&api, "POST", "/v1/leases", Some(TOKEN), add).await.0,
        200
    );
    let taken = r#"{"subnet":1,"duid":"00030001020000000008","address":"2001:db8:1::1009"}"#;
    let (status, body) = call(&api, "POST", "/v1/reservations", Some(TOKEN), taken).await;
    assert_eq!(status, 409, "{body}");
    let delete = r#"{"subnet":1,"duid":"00030001020000000009"}"#;
    let (status, body) = call(&api, "DELETE", "/v1/reservations", Some(TOKEN), delete).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = call(&api, "DELETE", "/v1/reservations", Some(TOKEN), delete).await;
    assert_eq!(status, 404);
    api.stop().await;
}

/// With `tls-certificate` and `tls-private-key`, the API speaks TLS: a client trusting the
/// test CA gets its answer; one speaking plain HTTP gets none.
#[tokio::test]
async fn the_api_speaks_tls_with_a_test_ca() {
    let pki = crate::tls::tests::TestPki::new("api");
    let (cert, key) = pki.issue("api", &["127.0.0.1"]);
    let identity = crate::tls::Identity::load(&cert, &key).unwrap();
    let api = start("tls", Some(identity)).await;
    let anchors = crate::tls::load_trust_anchors(&pki.ca()).unwrap();
    let client = crate::tls::client_config(&anchors, None).unwrap();
    let connector = tokio_rustls::TlsConnector::from(client);
    let tcp = tokio::net::TcpStream::connect(api.address).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let stream = connector.connect(name, tcp).await.unwrap();
    let (status, body) = exchange(stream, "GET", "/v1/usage", Some(TOKEN), "").await;
    assert_eq!(status, 200, "{body}");
    let mut plain = tokio::net::TcpStream::connect(api.address).await.unwrap();
    plain
        .write_all(b"GET /v1/usage HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(!String::from_utf8_lossy(&answer).contains("200 OK"));
    api.stop().await;
}

/// `POST /v1/reconfigure`: a client without a reconfigure key is refused 409 (RFC 8415
/// 18.3.11: it never sent Reconfigure Accept), an unknown one 404, a bad body 400; a subnet
/// with no keyed client starts none.
#[tokio::test]
async fn reconfigure_refuses_a_client_without_a_key() {
    let api = start("reconfigure", None).await;
    let add = r#"{"address":"2001:db8:1::1005","duid":"00030001020000000001","iaid":7}"#;
    let (status, body) = call(&api, "POST", "/v1/leases", Some(TOKEN), add).await;
    assert_eq!(status, 200, "{body}");
    let keyless = r#"{"duid":"00030001020000000001"}"#;
    let (status, body) = call(&api, "POST", "/v1/reconfigure", Some(TOKEN), keyless).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("no reconfigure key"), "{body}");
    let unknown = r#"{"duid":"00030001020000000009","message":"inf-req"}"#;
    let (status, body) = call(&api, "POST", "/v1/reconfigure", Some(TOKEN), unknown).await;
    assert_eq!(status, 404, "{body}");
    let both = r#"{"duid":"00030001020000000001","subnet":1}"#;
    let (status, body) = call(&api, "POST", "/v1/reconfigure", Some(TOKEN), both).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(
        &api,
        "POST",
        "/v1/reconfigure",
        Some(TOKEN),
        r#"{"subnet":1}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"reconfiguring\":0"), "{body}");
    api.stop().await;
}
