//! The control socket's protocol: one JSON object per line each way, a [`ControlRequest`] in, a
//! [`ControlResponse`] out, as many as the client wants on one connection.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::server::stats::StatsSnapshot;
use crate::server::{format_lease, PoolUsage};
use crate::store::{Lease, LeaseState, LeaseType};

/// File name of the control socket in the state directory.
pub const CONTROL_SOCKET: &str = "control.sock";

/// Longest request line accepted (a clear by DUID is far below).
pub const MAX_REQUEST_LINE: usize = 64 * 1024;

/// Reads one request line: the request, or the error the server answers it with (as
/// [`ControlResponse::Error`]).
pub fn parse_request(line: &str) -> Result<ControlRequest, String> {
    if line.len() > MAX_REQUEST_LINE {
        return Err("request too long".into());
    }
    serde_json::from_str::<ControlRequest>(line).map_err(|err| format!("bad request: {err}"))
}

/// A request on the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum ControlRequest {
    /// Every lease.
    Bindings,
    /// Counters and pool utilisation.
    Stats,
    /// Remove leases: exactly one of the selectors.
    Clear {
        /// Hex DUID.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duid: Option<String>,
        /// An address (or an address inside a delegated prefix).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<Ipv6Addr>,
        /// Every lease.
        #[serde(default)]
        all: bool,
    },
    /// Read the configuration file again and serve it (`crate::reload`), or refuse it.
    Reload,
}

/// One row of the binding table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Binding {
    /// Client DUID, hex.
    pub duid: String,
    /// IAID.
    pub iaid: u32,
    /// "na" or "pd".
    pub ia: String,
    /// Address, or prefix/length.
    pub lease: String,
    /// assigned, released, declined, expired.
    pub state: String,
    /// Unix time the valid lifetime ends.
    pub expires: i64,
    /// Seconds of valid lifetime left when listed (0 once past).
    pub expires_in: i64,
    /// The interface the client was served on.
    pub interface: String,
    /// Subnet id.
    pub subnet: u32,
    /// Innermost relay link-address, when relayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_address: Option<Ipv6Addr>,
    /// The line it was served on (`line-identity`): `remote-id 00000de9aa01`, say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<String>,
}

impl Binding {
    /// The row for `lease` at `now`.
    pub fn from_lease(lease: &Lease, now: i64) -> Binding {
        Binding {
            duid: hex::encode(&lease.duid),
            iaid: lease.iaid,
            ia: match lease.lease_type {
                LeaseType::Na => "na",
                LeaseType::Pd => "pd",
            }
            .into(),
            lease: format_lease(lease),
            state: match lease.state {
                LeaseState::Assigned if lease.expire <= now => "expiring",
                LeaseState::Assigned => "assigned",
                LeaseState::Released => "released",
                LeaseState::Declined => "declined",
                LeaseState::ExpiredReclaimed => "expired",
            }
            .into(),
            expires: lease.expire,
            expires_in: (lease.expire - now).max(0),
            interface: lease.interface.clone(),
            subnet: lease.subnet_id,
            link_address: (!lease.link_address.is_unspecified()).then_some(lease.link_address),
            line: lease
                .line
                .as_deref()
                .and_then(crate::config::LineId::from_stored)
                .map(|l| l.to_string()),
        }
    }
}

/// Counters and pools, the answer to `stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsReply {
    /// Received/sent per message type, drops per reason.
    #[serde(flatten)]
    pub counters: StatsSnapshot,
    /// Pool utilisation per subnet.
    pub pools: Vec<PoolUsage>,
    /// The XDP fast path's verdict counters (packets), read by the CLI from the pinned map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_path: Option<std::collections::BTreeMap<String, u64>>,
    /// Leasequery TCP service and peer-sync counters (events that happened at least once).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub leasequery: std::collections::BTreeMap<String, u64>,
    /// Configuration reloads applied and refused.
    #[serde(default)]
    pub reloads: crate::reload::ReloadCounts,
}

/// A response on the control socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ControlResponse {
    /// The binding table.
    Bindings(Vec<Binding>),
    /// Counters.
    Stats(StatsReply),
    /// How many leases `clear` removed.
    Cleared(usize),
    /// The reload was applied.
    Reloaded(crate::reload::ReloadReport),
    /// The request failed.
    Error(String),
}

/// Path of the control socket in `state_dir`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(CONTROL_SOCKET)
}
