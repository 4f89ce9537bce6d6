//! Leasequery: individual (RFC 5007, UDP), bulk (RFC 5460, TCP) and active (RFC 7653, TCP),
//! server side and requestor side, plus peer redundancy over active leasequery.
//!
//! Server side:
//! - [`answer_udp`] is a pure function from a LEASEQUERY message to its LEASEQUERY-REPLY; the UDP
//!   server calls it for message type 14 (see its docs for the wiring).
//! - [`serve_tcp`] is the TCP 547 listener task: one task per connection, several bulk queries
//!   in sequence per connection, or one active query that keeps the connection open.
//!
//! Requestor side: [`client`] queries any RFC 5007/5460/7653 server and parses the bindings.
//! Redundancy: [`peer`] keeps an active leasequery to a peer server and installs its bindings.
//!
//! Policy ([`LeasequerySettings`]): an allow-list of requestor prefixes (empty: nobody), the
//! restricted-requestor mode (a requestor sees only bindings whose Relay-ID equals the Relay-ID
//! option it sends), at most `max_connections` TCP sessions, an idle timeout, a keepalive
//! interval for active queries, and an I/O timeout bounding every frame read and every write.
//!
//! TLS (RFC 7653 §5.2, [`crate::tls`]): a requestor sends StartTLS, the server answers StartTLS and
//! the session goes on over TLS; `tls-required` refuses queries in the clear. Peers and the
//! command line StartTLS when given a [`crate::tls::ClientTls`].

mod binding;
pub mod cli;
pub mod client;
pub mod peer;
mod query;
mod stats;
mod tcp;

use std::net::Ipv6Addr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv6Net;
use tokio::sync::broadcast;

use crate::config::{Config, LeasequeryConfig};
use crate::lease_events::LeaseEvent;
use crate::proto::Duid;
use crate::store::{LeaseStore, StoreWriter};
use crate::tls::{ClientTls, TlsError};

pub use binding::{client_data, relay_peer_address, LeaseUpdate, PeerData, PEER_DATA_ENTERPRISE};
pub use query::{answer_udp, parse_active_query, parse_query, ParsedQuery, QueryError, QueryKind};
pub use stats::LeasequeryStats;

pub use tcp::{serve_tcp, spawn_tcp, LeasequeryContext, LiveSettings, SubscribeFn};

/// What the leasequery service needs of the server that runs it: its store, its lease events
/// and its DUID. The server implements it where the product is wired (`crate::serve`).
pub trait LeaseSource: Send + Sync + 'static {
    /// The lease store (read only).
    fn store(&self) -> &Arc<dyn LeaseStore>;
    /// A new subscription to lease events (active leasequery).
    fn subscribe(&self) -> broadcast::Receiver<LeaseEvent>;
    /// Our DUID (Server Identifier of every reply).
    fn server_duid(&self) -> &Duid;
}

/// What peer sync needs of the server that installs a peer's bindings: its store, writer, event
/// channel and configuration (for the subnet of each binding).
pub trait LeaseSink: Send + Sync {
    /// The lease store (reads, and the resume time in `meta`).
    fn store(&self) -> &Arc<dyn LeaseStore>;
    /// The writer installs go through.
    fn writer(&self) -> &StoreWriter;
    /// The lease event channel installs are published on.
    fn events(&self) -> &broadcast::Sender<LeaseEvent>;
    /// The configuration served (the one in force now).
    fn config(&self) -> Arc<Config>;
    /// Our served interfaces with the subnet id of their direct clients.
    fn links(&self) -> Vec<(String, u32)>;
}

/// Policy and limits of the leasequery service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasequerySettings {
    /// Requestors allowed to query, by source address; empty means nobody.
    pub allow: Vec<Ipv6Net>,
    /// Restricted-requestor mode: a requestor must send a Relay-ID option (53) and sees only the
    /// bindings learnt through the relay with that Relay-ID.
    pub restricted_requestors: bool,
    /// Whether ACTIVELEASEQUERY is served (else it is answered with NotSupported). Off by
    /// default (RFC 7653 §9.1).
    pub active_enabled: bool,
    /// Whether an ACTIVELEASEQUERY must come over TLS (TLS configured, and no
    /// `active-insecure`): one in the clear gets TLSConnectionRefused.
    pub active_requires_tls: bool,
    /// `tls-required`: every query must come over TLS; one in the clear gets
    /// TLSConnectionRefused and the connection is closed.
    pub tls_required: bool,
    /// Concurrent TCP sessions at most; further connections are closed at once (and counted).
    pub max_connections: usize,
    /// Concurrent TCP sessions from one source address at most; further ones from it are closed
    /// at once (and counted), while other sources still get slots.
    pub max_connections_per_source: usize,
    /// A TCP session without a query for this long is closed.
    pub idle_timeout: Duration,
    /// An active session without other traffic gets a keepalive (an empty LEASEQUERY-DATA)
    /// this often.
    pub keepalive_interval: Duration,
    /// A started frame must arrive completely, and each write must complete, within this time;
    /// else the peer is considered stuck and dropped.
    pub io_timeout: Duration,
    /// Leases fetched per store page in bulk scans.
    pub page_size: usize,
    /// Links the server is configured for (subnet prefixes): a query naming another
    /// link-address, or an address in none of `links`/`delegated`, gets NotConfigured.
    pub links: Vec<Ipv6Net>,
    /// Prefix-delegation pools: addresses inside them are in the server's address space.
    pub delegated: Vec<Ipv6Net>,
}

impl Default for LeasequerySettings {
    fn default() -> Self {
        LeasequerySettings {
            allow: Vec::new(),
            restricted_requestors: false,
            active_enabled: false,
            active_requires_tls: false,
            tls_required: false,
            max_connections: crate::config::DEFAULT_LQ_MAX_CONNECTIONS,
            max_connections_per_source: crate::config::DEFAULT_LQ_MAX_CONNECTIONS_PER_SOURCE,
            idle_timeout: Duration::from_secs(120),
            keepalive_interval: Duration::from_secs(5),
            io_timeout: Duration::from_secs(10),
            page_size: 1000,
            links: Vec::new(),
            delegated: Vec::new(),
        }
    }
}

impl LeasequerySettings {
    /// Settings from the configuration: the `[leasequery]` keys, the subnets' prefixes as links
    /// and their PD pools as delegated space.
    pub fn from_config(config: &Config) -> Self {
        let lq = &config.leasequery;
        LeasequerySettings {
            allow: lq.allow.clone(),
            restricted_requestors: lq.restricted_requestors,
            active_enabled: lq.active && (lq.active_insecure || lq.tls.is_some()),
            active_requires_tls: lq.tls.is_some() && !lq.active_insecure,
            tls_required: lq.tls.as_ref().is_some_and(|tls| tls.required),
            max_connections: lq.max_connections,
            max_connections_per_source: lq.max_connections_per_source,
            idle_timeout: Duration::from_secs(u64::from(lq.idle_timeout)),
            keepalive_interval: Duration::from_secs(u64::from(lq.keepalive_interval)),
            io_timeout: Duration::from_secs(u64::from(lq.io_timeout)),
            links: config.subnets.iter().map(|s| s.prefix).collect(),
            delegated: config
                .subnets
                .iter()
                .flat_map(|s| s.pd_pools.iter().map(|p| p.prefix))
                .collect(),
            ..LeasequerySettings::default()
        }
    }

    /// Whether a requestor at `source` may query.
    pub fn is_allowed(&self, source: Ipv6Addr) -> bool {
        self.allow.iter().any(|net| net.contains(&source))
    }

    /// Whether `link` is a link the server serves.
    pub fn serves_link(&self, link: Ipv6Addr) -> bool {
        self.links.iter().any(|net| net.contains(&link))
    }

    /// Whether `address` is in the server's address space (a link or a delegated pool).
    pub fn serves_address(&self, address: Ipv6Addr) -> bool {
        self.serves_link(address) || self.delegated.iter().any(|net| net.contains(&address))
    }
}

/// The server side's TLS configuration from `[leasequery]`'s `tls-*` keys; `None` without TLS.
pub fn server_tls(
    config: &LeasequeryConfig,
) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
    config
        .tls
        .as_ref()
        .map(|tls| crate::tls::server_config(&tls.identity, &tls.anchors, tls.client_certificates))
        .transpose()
}

/// What a peer session StartTLSes with: the trust anchors, our certificate for mutual TLS,
/// and `tls-peer-name` (default: the peer's address); `None` without TLS.
pub fn peer_tls(config: &LeasequeryConfig) -> Result<Option<ClientTls>, TlsError> {
    let Some(tls) = &config.tls else {
        return Ok(None);
    };
    let server_name = tls
        .peer_name
        .as_deref()
        .map(crate::tls::parse_server_name)
        .transpose()
        .map_err(TlsError::Rustls)?;
    Ok(Some(ClientTls {
        config: crate::tls::client_config(&tls.anchors, Some(&tls.identity))?,
        server_name,
    }))
}

/// 2000-01-01 00:00:00 UTC in Unix seconds: the epoch of the times RFC 7653 puts on the wire
/// (LQ_BASE_TIME, LQ_START_TIME, LQ_END_TIME; §2 and §6.3), the same as DUID-LLT times.
pub const LQ_EPOCH_UNIX: i64 = 946_684_800;

/// Unix seconds as an RFC 7653 time on the wire: seconds since 2000-01-01 UTC (saturating,
/// never negative).
pub fn wire_time(unix: i64) -> u32 {
    u32::try_from((unix - LQ_EPOCH_UNIX).max(0)).unwrap_or(u32::MAX)
}

/// An RFC 7653 time from the wire (seconds since 2000-01-01 UTC) as Unix seconds.
pub fn unix_time(wire: u32) -> i64 {
    i64::from(wire) + LQ_EPOCH_UNIX
}

#[cfg(test)]
mod time_tests {
    use super::*;

    /// RFC 7653 §6.3.1: base-time counts from 2000-01-01 UTC, not from 1970.
    #[test]
    fn wire_times_count_from_2000() {
        assert_eq!(wire_time(946_684_800), 0, "2000-01-01 00:00:00 UTC is 0");
        assert_eq!(wire_time(946_684_800 + 86_400), 86_400);
        assert_eq!(wire_time(0), 0, "before 2000 saturates at 0");
        assert_eq!(unix_time(0), 946_684_800);
        assert_eq!(unix_time(wire_time(1_800_000_000)), 1_800_000_000);
        assert_eq!(wire_time(i64::MAX), u32::MAX);
    }
}
