//! Leasequery counters: kept here for tests and the control socket, mirrored to Prometheus as
//! `dhcp_leasequery_events_total{event="..."}`.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// Named event counters of the leasequery service (connections, queries, drops by reason).
///
/// Names used: `tcp_accepted`, `tcp_refused_max_connections`, `tcp_refused_max_per_source`,
/// `tcp_closed`, `udp_queries`,
/// `bulk_queries`, `active_queries`, `bulk_bindings_sent`, `active_updates_sent`,
/// `keepalives_sent`, `terminated_by_shutdown`, `starttls_received`, `tls_sessions` (sessions
/// upgraded by STARTTLS), `status_<reason>` for every refusal (`status_tls_required`: a query
/// in the clear where TLS is required), `dropped_<reason>` for every connection dropped over
/// bad behaviour (`frame_too_large`, `truncated_frame`, `read_timeout`, `idle_timeout`,
/// `write_timeout`, `undecodable_message`, `unexpected_message_type`, `unexpected_data`,
/// `io_error`, `tls_handshake`, `tls_handshake_timeout`, `data_after_starttls`,
/// `unexpected_starttls`), and on the follower's side `peer_tls_errors`.
#[derive(Debug, Default)]
pub struct LeasequeryStats {
    counters: Mutex<BTreeMap<String, u64>>,
}

impl LeasequeryStats {
    /// New, all counters at zero.
    pub fn new() -> Self {
        LeasequeryStats::default()
    }

    /// Adds one to `event`.
    pub fn bump(&self, event: &str) {
        self.add(event, 1);
    }

    /// Adds `n` to `event`.
    pub fn add(&self, event: &str, n: u64) {
        if n == 0 {
            return;
        }
        {
            let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
            *counters.entry(event.to_string()).or_default() += n;
        }
        metrics::counter!("dhcp_leasequery_events_total", "event" => event.to_string())
            .increment(n);
    }

    /// The current value of `event` (0 if it never happened).
    pub fn get(&self, event: &str) -> u64 {
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        counters.get(event).copied().unwrap_or(0)
    }

    /// Every counter that is not zero.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}
