//! The server side of the control socket: binds it in the state directory and answers each
//! request line from the running [`Server`].

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::watch;
use tracing::{info, warn};

use super::protocol::{socket_path, Binding, ControlRequest, ControlResponse, StatsReply};
use crate::clock::unix_now;
use crate::config::parse_hex;
use crate::server::{ClearSelector, Server};
use crate::store::{LeaseFilter, LeasePages};

/// Longest request line accepted (a clear by DUID is far below).
const MAX_REQUEST_LINE: usize = 64 * 1024;

/// Answers one request.
pub async fn answer(server: &Server, request: ControlRequest) -> ControlResponse {
    match request {
        ControlRequest::Bindings => {
            let now = unix_now();
            let mut rows = Vec::new();
            for lease in LeasePages::new(server.store().as_ref(), LeaseFilter::All, 1000) {
                match lease {
                    Ok(lease) => rows.push(Binding::from_lease(&lease, now)),
                    Err(err) => return ControlResponse::Error(err.to_string()),
                }
            }
            ControlResponse::Bindings(rows)
        }
        ControlRequest::Stats => match server.pool_usage() {
            Ok(pools) => ControlResponse::Stats(StatsReply {
                counters: server.stats().snapshot(),
                pools,
                fast_path: None,
                leasequery: server.leasequery_stats().snapshot(),
            }),
            Err(err) => ControlResponse::Error(err.to_string()),
        },
        ControlRequest::Clear { duid, address, all } => {
            let selector = match (duid, address, all) {
                (Some(duid), None, false) => match parse_hex(&duid) {
                    Ok(bytes) => ClearSelector::Duid(bytes),
                    Err(err) => return ControlResponse::Error(err),
                },
                (None, Some(address), false) => ClearSelector::Address(address),
                (None, None, true) => ClearSelector::All,
                _ => {
                    return ControlResponse::Error(
                        "clear takes exactly one of duid, address, all".into(),
                    )
                }
            };
            info!(?selector, "operator clear");
            match server.clear(&selector).await {
                Ok(count) => ControlResponse::Cleared(count),
                Err(err) => ControlResponse::Error(err.to_string()),
            }
        }
    }
}

/// Binds the control socket in `state_dir`; refuses when a live server already answers there
/// (a stale socket file of a dead one is replaced).
pub fn bind_control_socket(state_dir: &Path) -> anyhow::Result<UnixListener> {
    let path = socket_path(state_dir);
    if path.exists() {
        if UnixStream::connect(&path).is_ok() {
            bail!(
                "a server is already running with state directory {} (its control socket {} answers)",
                state_dir.display(),
                path.display()
            );
        }
        std::fs::remove_file(&path)
            .with_context(|| format!("removing the stale control socket {}", path.display()))?;
    }
    UnixListener::bind(&path)
        .with_context(|| format!("binding the control socket {}", path.display()))
}

/// Serves control connections until `shutdown` turns true, then removes the socket file.
pub async fn serve_control(
    server: Arc<Server>,
    listener: UnixListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let path = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(Path::to_path_buf));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let (stream, _) = match stream {
            Ok(accepted) => accepted,
            Err(err) => {
                warn!(error = %err, "control socket accept failed");
                continue;
            }
        };
        let server = server.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = tokio::io::BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let response = if line.len() > MAX_REQUEST_LINE {
                    ControlResponse::Error("request too long".into())
                } else {
                    match serde_json::from_str::<ControlRequest>(&line) {
                        Ok(request) => answer(&server, request).await,
                        Err(err) => ControlResponse::Error(format!("bad request: {err}")),
                    }
                };
                let mut out = match serde_json::to_vec(&response) {
                    Ok(out) => out,
                    Err(err) => {
                        warn!(error = %err, "control response does not serialise");
                        break;
                    }
                };
                out.push(b'\n');
                if write.write_all(&out).await.is_err() {
                    break;
                }
            }
        });
    }
    if let Some(path) = path {
        let _ = std::fs::remove_file(path);
    }
}
