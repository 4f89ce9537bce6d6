//! The control socket: its messages as JSON lines, and a server answering a client.

use tokio::sync::watch;

use super::*;
use crate::config::Config;
use crate::server::Server;

#[test]
fn requests_and_responses_round_trip_as_json_lines() {
    let clear = ControlRequest::Clear {
        duid: Some("0003".into()),
        address: None,
        all: false,
    };
    let text = serde_json::to_string(&clear).unwrap();
    assert_eq!(text, r#"{"command":"clear","duid":"0003","all":false}"#);
    assert_eq!(
        serde_json::from_str::<ControlRequest>(&text).unwrap(),
        clear
    );
    assert_eq!(
        serde_json::from_str::<ControlRequest>(r#"{"command":"bindings"}"#).unwrap(),
        ControlRequest::Bindings
    );
    let cleared = serde_json::to_string(&ControlResponse::Cleared(3)).unwrap();
    assert_eq!(cleared, r#"{"cleared":3}"#);
}

#[tokio::test]
async fn control_socket_answers_bindings_stats_and_clear() {
    let dir = std::env::temp_dir().join(format!("dhcp-user-control-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = Config::parse(include_str!("../../../examples/lab.toml"), "lab.toml").unwrap();
    config.state_dir = dir.clone();
    let server = Server::open(config, &[]).unwrap();
    let listener = bind_control_socket(&dir, None).unwrap();
    assert!(
        bind_control_socket(&dir, None).is_err(),
        "a second server must be refused"
    );
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(serve_control(server.clone(), None, listener, stopped));
    let dir2 = dir.clone();
    let (bindings, stats, cleared) = tokio::task::spawn_blocking(move || {
        (
            request(&dir2, &ControlRequest::Bindings).unwrap(),
            request(&dir2, &ControlRequest::Stats).unwrap(),
            request(
                &dir2,
                &ControlRequest::Clear {
                    duid: None,
                    address: None,
                    all: true,
                },
            )
            .unwrap(),
        )
    })
    .await
    .unwrap();
    assert_eq!(bindings, ControlResponse::Bindings(Vec::new()));
    let ControlResponse::Stats(stats) = stats else {
        panic!("not stats")
    };
    assert_eq!(stats.pools.len(), 2);
    assert_eq!(cleared, ControlResponse::Cleared(0));
    let _ = stop.send(true);
    task.await.unwrap();
    assert!(!socket_path(&dir).exists());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The control socket is its owner's alone (0600), or its owner's and one group's (0660) with
/// `control-socket-group`; either way it never exists with the umask's permissions, and the
/// private directory it was bound in is gone.
#[tokio::test]
async fn control_socket_is_owner_only_or_one_group() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = std::env::temp_dir().join(format!("dhcp-user-control-mode-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mode =
        |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;

    let listener = bind_control_socket(&dir, None).unwrap();
    assert_eq!(mode(&socket_path(&dir)), 0o600);
    drop(listener);
    std::fs::remove_file(socket_path(&dir)).unwrap();

    let group = nix::unistd::Group::from_name("daemon")
        .unwrap()
        .expect("Debian has group daemon");
    let listener = bind_control_socket(&dir, Some("daemon")).unwrap();
    let meta = std::fs::metadata(socket_path(&dir)).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
    assert_eq!(meta.gid(), group.gid.as_raw());
    drop(listener);
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from(CONTROL_SOCKET)],
        "only the socket is left"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `control-socket-group` must name a group of this host; the error names the key and line.
#[test]
fn an_unknown_control_socket_group_is_refused_naming_the_key() {
    let text =
        "control-socket-group = \"no-such-group-here\"\n[[subnet]]\nprefix = \"2001:db8:1::/64\"\n";
    let err = Config::parse(text, "x.toml").unwrap_err().to_string();
    assert!(
        err.contains("control-socket-group")
            && err.contains("line 1")
            && err.contains("no-such-group-here"),
        "{err}"
    );
    let text = "control-socket-group = \"daemon\"\n[[subnet]]\nprefix = \"2001:db8:1::/64\"\n";
    assert_eq!(
        Config::parse(text, "x.toml")
            .unwrap()
            .control_socket_group
            .as_deref(),
        Some("daemon")
    );
}

#[test]
fn request_lines_parse_or_name_the_error() {
    use super::protocol::{parse_request, ControlRequest, MAX_REQUEST_LINE};
    assert_eq!(
        parse_request(r#"{"command":"stats"}"#),
        Ok(ControlRequest::Stats)
    );
    assert!(parse_request("{").unwrap_err().starts_with("bad request: "));
    let long = format!(
        r#"{{"command":"clear","duid":"{}"}}"#,
        "0".repeat(MAX_REQUEST_LINE)
    );
    assert_eq!(parse_request(&long), Err("request too long".into()));
}

/// A request line longer than `MAX_REQUEST_LINE` is answered with an error and the connection
/// closed, without the server reading (or buffering) the rest of it; the socket serves on.
#[tokio::test]
async fn an_overlong_request_line_is_refused_without_buffering_it() {
    use super::protocol::MAX_REQUEST_LINE;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let dir = std::env::temp_dir().join(format!("dhcp-user-control-long-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut config = Config::parse(include_str!("../../../examples/lab.toml"), "lab.toml").unwrap();
    config.state_dir = dir.clone();
    let server = Server::open(config, &[]).unwrap();
    let listener = bind_control_socket(&dir, None).unwrap();
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(serve_control(server.clone(), None, listener, stopped));

    let stream = tokio::net::UnixStream::connect(socket_path(&dir))
        .await
        .unwrap();
    let (read, mut write) = stream.into_split();
    // Four times the limit, no newline: the server must answer after the limit, not wait.
    let long = vec![b'x'; 4 * MAX_REQUEST_LINE];
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&long).await;
        write
    });
    let mut reader = tokio::io::BufReader::new(read);
    let mut answer = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        reader.read_line(&mut answer),
    )
    .await
    .expect("answered within the limit")
    .unwrap();
    assert!(answer.contains("request too long"), "{answer}");
    let mut rest = String::new();
    // Closed with our bytes unread: an end of stream, or a reset.
    let closed = reader.read_line(&mut rest).await;
    assert!(
        matches!(closed, Ok(0))
            || closed
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "then closed: {closed:?}"
    );
    drop(writer.await);

    let dir2 = dir.clone();
    let bindings = tokio::task::spawn_blocking(move || request(&dir2, &ControlRequest::Bindings))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bindings, ControlResponse::Bindings(Vec::new()));
    let _ = stop.send(true);
    task.await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
