//! The server side of the control socket: binds it in the state directory and answers each
//! request line from the running [`Server`].

use std::net::Ipv6Addr;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::watch;
use tracing::{info, warn};

use super::protocol::{
    parse_request, socket_path, Binding, ControlRequest, ControlResponse, ErrorCode, StatsReply,
    CONTROL_SOCKET, MAX_REQUEST_LINE,
};
use crate::clock::unix_now;
use crate::config::parse_hex;
use crate::config::ReconfigureMessage;
use crate::reload::Reloader;
use crate::server::operator::OperatorError;
use crate::server::reconfigure::ReconfigureSelector;
use crate::server::{ClearSelector, Server};
use crate::store::{Lease, LeaseFilter, LeasePages};

/// Answers one request; `reload` goes to `reloader` (none: a server that cannot reload).
pub async fn answer(
    server: &Server,
    reloader: Option<&Reloader>,
    request: ControlRequest,
) -> ControlResponse {
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
                reloads: reloader.map(Reloader::counts).unwrap_or_default(),
                reconfigure: server.reconfigure_stats().snapshot(),
            }),
            Err(err) => ControlResponse::Error(err.to_string()),
        },
        ControlRequest::Reload => match reloader {
            Some(reloader) => {
                info!("operator reload");
                match reloader.reload().await {
                    Ok(report) => ControlResponse::Reloaded(report),
                    // Applied, but the fast path could not follow: the server's fault.
                    Err(err @ crate::reload::ReloadError::FastPath(_)) => {
                        ControlResponse::failed(ErrorCode::Internal, err.to_string())
                    }
                    // Refused: the file (or what it changes) is the operator's to fix.
                    Err(err) => ControlResponse::failed(ErrorCode::BadRequest, err.to_string()),
                }
            }
            None => ControlResponse::failed(
                ErrorCode::NotSupported,
                "this server cannot reload (it was started without a configuration file to \
                 read again)",
            ),
        },
        ControlRequest::Clear { duid, address, all } => {
            let selector = match clear_selector(duid, address, all) {
                Ok(selector) => selector,
                Err(err) => return ControlResponse::Error(err),
            };
            info!(?selector, "operator clear");
            match server.clear(&selector).await {
                Ok(count) => ControlResponse::Cleared(count),
                Err(err) => ControlResponse::Error(err.to_string()),
            }
        }
        other => answer_operator(server, other).await,
    }
}

/// Exactly one of a DUID (hex) and a subnet id.
fn reconfigure_selector(
    duid: Option<&str>,
    subnet: Option<u32>,
) -> Result<ReconfigureSelector, OperatorError> {
    match (duid, subnet) {
        (Some(duid), None) => parse_hex(duid)
            .map(ReconfigureSelector::Duid)
            .map_err(|err| OperatorError::BadRequest(format!("duid: {err}"))),
        (None, Some(id)) => Ok(ReconfigureSelector::Subnet(id)),
        _ => Err(OperatorError::BadRequest(
            "name exactly one of `duid` and `subnet`".into(),
        )),
    }
}

/// Answers the provisioning commands ([`crate::server::operator`]), refusals with a code.
async fn answer_operator(server: &Server, request: ControlRequest) -> ControlResponse {
    let now = unix_now();
    let row = |lease: Lease| Binding::from_lease(&lease, now);
    let result = match request {
        ControlRequest::LeaseGet {
            address,
            prefix,
            duid,
        } => server
            .operator_get_leases(address, prefix.as_deref(), duid.as_deref())
            .map(|leases| ControlResponse::Leases(leases.into_iter().map(row).collect())),
        ControlRequest::LeaseAdd(spec) => server
            .operator_add_lease(&spec)
            .await
            .map(|lease| ControlResponse::Lease(row(lease))),
        ControlRequest::LeaseUpdate(update) => server
            .operator_update_lease(&update)
            .await
            .map(|lease| ControlResponse::Lease(row(lease))),
        ControlRequest::LeaseDelete { address, prefix } => server
            .operator_delete_lease(address, prefix.as_deref())
            .await
            .map(|lease| ControlResponse::Lease(row(lease))),
        ControlRequest::ReservationAdd(spec) => server
            .operator_add_reservation(&spec)
            .await
            .map(ControlResponse::Reservation),
        ControlRequest::ReservationDelete(spec) => server
            .operator_delete_reservation(&spec)
            .await
            .map(ControlResponse::Reservation),
        ControlRequest::ReservationList => server
            .operator_list_reservations()
            .map(ControlResponse::Reservations),
        ControlRequest::Usage => server.operator_usage().map(ControlResponse::Usage),
        ControlRequest::Reconfigure(spec) => {
            reconfigure_selector(spec.duid.as_deref(), spec.subnet).and_then(|selector| {
                server
                    .reconfigure(&selector, spec.message.unwrap_or(ReconfigureMessage::Renew))
                    .map(ControlResponse::Reconfiguring)
            })
        }
        ControlRequest::Bindings
        | ControlRequest::Stats
        | ControlRequest::Clear { .. }
        | ControlRequest::Reload => {
            return ControlResponse::failed(ErrorCode::Internal, "not an operator command")
        }
    };
    result.unwrap_or_else(|err| {
        let code = match &err {
            OperatorError::BadRequest(_) => ErrorCode::BadRequest,
            OperatorError::NotFound(_) => ErrorCode::NotFound,
            OperatorError::Conflict(_) => ErrorCode::Conflict,
            // Another server sharing the database holds it.
            OperatorError::Server(crate::server::ServerError::Store(
                crate::store::StoreError::Conflict(_),
            )) => ErrorCode::Conflict,
            OperatorError::Server(_) => ErrorCode::Internal,
        };
        ControlResponse::failed(code, err.to_string())
    })
}

/// What a `clear` request selects: exactly one of a hex DUID, an address, every lease.
pub fn clear_selector(
    duid: Option<String>,
    address: Option<Ipv6Addr>,
    all: bool,
) -> Result<ClearSelector, String> {
    match (duid, address, all) {
        (Some(duid), None, false) => parse_hex(&duid).map(ClearSelector::Duid),
        (None, Some(address), false) => Ok(ClearSelector::Address(address)),
        (None, None, true) => Ok(ClearSelector::All),
        _ => Err("clear takes exactly one of duid, address, all".into()),
    }
}

/// Binds the control socket in `state_dir`; refuses when a live server already answers there
/// (a stale socket file of a dead one is replaced).
pub fn bind_control_socket(state_dir: &Path, group: Option<&str>) -> anyhow::Result<UnixListener> {
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
    // Bound in a private directory, given its mode (and group), then moved into place: the
    // socket is never reachable with the permissions the umask would have given it.
    let private = state_dir.join(format!(".control-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .with_context(|| format!("creating {}", private.display()))?;
    let staged = private.join(CONTROL_SOCKET);
    let bound = (|| -> anyhow::Result<UnixListener> {
        let listener = UnixListener::bind(&staged)
            .with_context(|| format!("binding the control socket {}", path.display()))?;
        let mode = match group {
            Some(name) => {
                let gid = nix::unistd::Group::from_name(name)
                    .ok()
                    .flatten()
                    .with_context(|| format!("control-socket-group: no group `{name}`"))?
                    .gid;
                nix::unistd::chown(&staged, None, Some(gid)).with_context(|| {
                    format!(
                        "giving the control socket {} to group {name}",
                        path.display()
                    )
                })?;
                0o660
            }
            None => 0o600,
        };
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of {}", path.display()))?;
        std::fs::rename(&staged, &path)
            .with_context(|| format!("moving the control socket to {}", path.display()))?;
        Ok(listener)
    })();
    let _ = std::fs::remove_dir_all(&private);
    bound
}

/// Serves control connections until `shutdown` turns true, then removes the socket file.
pub async fn serve_control(
    server: Arc<Server>,
    reloader: Option<Arc<Reloader>>,
    listener: UnixListener,
    mut shutdown: watch::Receiver<bool>,
) {
    // (Not the listener's own address: it was bound under a private name, then moved.)
    let path = Some(socket_path(&server.config().state_dir));
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
        let reloader = reloader.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut reader = tokio::io::BufReader::new(read);
            let mut buf = Vec::new();
            loop {
                // At most one byte past the longest request is read into memory: a longer line
                // is answered with the error and the connection closed, never buffered whole.
                buf.clear();
                let limit = MAX_REQUEST_LINE as u64 + 1;
                match (&mut reader).take(limit).read_until(b'\n', &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let complete = buf.last() == Some(&b'\n');
                if complete {
                    buf.pop();
                }
                let too_long = !complete && buf.len() > MAX_REQUEST_LINE;
                let line = String::from_utf8_lossy(&buf);
                let response = match parse_request(&line) {
                    Ok(request) => answer(&server, reloader.as_deref(), request).await,
                    Err(err) => ControlResponse::Error(err),
                };
                let mut out = match serde_json::to_vec(&response) {
                    Ok(out) => out,
                    Err(err) => {
                        warn!(error = %err, "control response does not serialise");
                        break;
                    }
                };
                out.push(b'\n');
                if write.write_all(&out).await.is_err() || too_long {
                    break;
                }
            }
        });
    }
    if let Some(path) = path {
        let _ = std::fs::remove_file(path);
    }
}
