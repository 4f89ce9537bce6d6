//! The control socket's protocol: one JSON object per line each way, a [`ControlRequest`] in, a
//! [`ControlResponse`] out, as many as the client wants on one connection.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::server::operator::{
    LeaseSpec, LeaseUpdate, PoolUsageRow, ReservationRow, ReservationSpec,
};
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
    /// The leases of exactly one of: an address (or the delegated prefixes containing it), a
    /// delegated prefix, a client.
    LeaseGet {
        /// An address.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<Ipv6Addr>,
        /// A delegated prefix, `addr/len`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
        /// Hex DUID.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duid: Option<String>,
    },
    /// Add a lease (validated: in a pool of its subnet, held by no other client).
    LeaseAdd(LeaseSpec),
    /// New lifetimes for a lease.
    LeaseUpdate(LeaseUpdate),
    /// Delete the lease of exactly this address or prefix.
    LeaseDelete {
        /// The address.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<Ipv6Addr>,
        /// The delegated prefix, `addr/len`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        prefix: Option<String>,
    },
    /// Add a reservation (kept across restarts in the state directory).
    ReservationAdd(ReservationSpec),
    /// Delete a reservation made at run time (by subnet and client).
    ReservationDelete(ReservationSpec),
    /// Every reservation, the configuration's and those made at run time.
    ReservationList,
    /// Per pool: total, assigned, declined, free.
    Usage,
    /// Read the configuration file again and swap it in.
    Reload,
    /// Send a Reconfigure (RFC 8415 section 18.3.11).
    Reconfigure(ReconfigureSpec),
}

/// Who `reconfigure` is for, exactly one of a client and a subnet, and what they are to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconfigureSpec {
    /// Hex DUID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duid: Option<String>,
    /// A subnet id: every client of it holding a reconfigure key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<u32>,
    /// What the client is to send: `renew` (the default) or `inf-req`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<crate::config::ReconfigureMessage>,
}

/// The kind of a refusal, for scripts (and the HTTP API's status code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed or names something invalid (HTTP 400).
    BadRequest,
    /// Nothing matches (HTTP 404).
    NotFound,
    /// It clashes with what another client holds or what is reserved (HTTP 409).
    Conflict,
    /// This build cannot do it (HTTP 501).
    NotSupported,
    /// The server failed (HTTP 500).
    Internal,
}

/// A refusal: its kind and what to tell the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The kind.
    pub code: ErrorCode,
    /// What went wrong.
    pub message: String,
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
    /// Reconfigure exchanges: started, sent, answered, gave_up, send_errors (non-zero ones).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub reconfigure: std::collections::BTreeMap<String, u64>,
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
    /// Leases found (`lease-get`).
    Leases(Vec<Binding>),
    /// The lease as it now is (`lease-add`, `lease-update`), or as it was (`lease-delete`).
    Lease(Binding),
    /// The reservation added or deleted.
    Reservation(ReservationSpec),
    /// Every reservation.
    Reservations(Vec<ReservationRow>),
    /// Pool usage (`usage`).
    Usage(Vec<PoolUsageRow>),
    /// How many Reconfigure exchanges were started (`reconfigure`).
    Reconfiguring(usize),
    /// The request was refused or failed, with a code.
    Failed(Failure),
}

impl ControlResponse {
    /// A refusal of kind `code`.
    pub fn failed(code: ErrorCode, message: impl Into<String>) -> ControlResponse {
        ControlResponse::Failed(Failure {
            code,
            message: message.into(),
        })
    }
}

/// Path of the control socket in `state_dir`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(CONTROL_SOCKET)
}
