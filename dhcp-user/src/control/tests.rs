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
    let listener = bind_control_socket(&dir).unwrap();
    assert!(
        bind_control_socket(&dir).is_err(),
        "a second server must be refused"
    );
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(serve_control(server.clone(), listener, stopped));
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
