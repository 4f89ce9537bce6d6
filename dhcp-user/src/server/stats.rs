//! Packet counters: received and sent per message type, drops by reason. Kept in the process
//! for `dhcp-user stats` and mirrored into the `metrics` facade for Prometheus.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::proto::DecodeError;

/// Name of a DHCPv6 message type, as counted.
pub fn message_type_name(msg_type: u8) -> &'static str {
    use dhcp_common::dhcpv6::*;
    match msg_type {
        MSG_SOLICIT => "solicit",
        MSG_ADVERTISE => "advertise",
        MSG_REQUEST => "request",
        MSG_CONFIRM => "confirm",
        MSG_RENEW => "renew",
        MSG_REBIND => "rebind",
        MSG_REPLY => "reply",
        MSG_RELEASE => "release",
        MSG_DECLINE => "decline",
        MSG_RECONFIGURE => "reconfigure",
        MSG_INFORMATION_REQUEST => "information-request",
        MSG_RELAY_FORW => "relay-forw",
        MSG_RELAY_REPL => "relay-repl",
        MSG_LEASEQUERY => "leasequery",
        MSG_LEASEQUERY_REPLY => "leasequery-reply",
        MSG_LEASEQUERY_DONE => "leasequery-done",
        MSG_LEASEQUERY_DATA => "leasequery-data",
        MSG_RECONFIGURE_REQUEST => "reconfigure-request",
        MSG_RECONFIGURE_REPLY => "reconfigure-reply",
        MSG_DHCPV4_QUERY => "dhcpv4-query",
        MSG_DHCPV4_RESPONSE => "dhcpv4-response",
        MSG_ACTIVELEASEQUERY => "activeleasequery",
        MSG_STARTTLS => "starttls",
        _ => "unknown",
    }
}

/// The server's counters.
pub struct Stats {
    received: [AtomicU64; 256],
    sent: [AtomicU64; 256],
    drops: Mutex<BTreeMap<&'static str, u64>>,
    lease_database: Mutex<BTreeMap<&'static str, u64>>,
}

/// A copy of the counters, as `dhcp-user stats` prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsSnapshot {
    /// Messages received by (innermost) message type.
    pub received: BTreeMap<String, u64>,
    /// Messages sent by (innermost) message type.
    pub sent: BTreeMap<String, u64>,
    /// Datagrams dropped, by reason.
    pub drops: BTreeMap<String, u64>,
    /// Events of a shared lease database that happened at least once (`pg_follower_resyncs`:
    /// the copy read the whole table again after the history was pruned past its position).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub lease_database: BTreeMap<String, u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats::new()
    }
}

impl Stats {
    /// All counters at zero; drop reasons of the codec are registered up front (at 0) so the
    /// Prometheus series exist before the first drop.
    pub fn new() -> Self {
        for reason in DecodeError::ALL_REASONS {
            metrics::counter!("dhcp_dropped_total", "reason" => *reason).absolute(0);
        }
        Stats {
            received: std::array::from_fn(|_| AtomicU64::new(0)),
            sent: std::array::from_fn(|_| AtomicU64::new(0)),
            drops: Mutex::new(BTreeMap::new()),
            lease_database: Mutex::new(BTreeMap::new()),
        }
    }

    /// One `name` event of the shared lease database (e.g. `pg_follower_resyncs`).
    pub fn lease_database_event(&self, name: &'static str) {
        let mut counts = self
            .lease_database
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *counts.entry(name).or_insert(0) += 1;
        metrics::counter!("dhcp_lease_database_events_total", "event" => name).increment(1);
    }

    /// How many `name` events of the shared lease database there were.
    pub fn lease_database_count(&self, name: &str) -> u64 {
        let counts = self
            .lease_database
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        counts.get(name).copied().unwrap_or(0)
    }

    /// One message of `msg_type` received.
    pub fn received(&self, msg_type: u8) {
        self.received[usize::from(msg_type)].fetch_add(1, Ordering::Relaxed);
        metrics::counter!("dhcp_received_total", "type" => message_type_name(msg_type))
            .increment(1);
    }

    /// One message of `msg_type` sent.
    pub fn sent(&self, msg_type: u8) {
        self.sent[usize::from(msg_type)].fetch_add(1, Ordering::Relaxed);
        metrics::counter!("dhcp_sent_total", "type" => message_type_name(msg_type)).increment(1);
    }

    /// One datagram dropped for `reason`.
    pub fn dropped(&self, reason: &'static str) {
        let mut drops = self.drops.lock().unwrap_or_else(|p| p.into_inner());
        *drops.entry(reason).or_insert(0) += 1;
        metrics::counter!("dhcp_dropped_total", "reason" => reason).increment(1);
    }

    /// Drops counted for `reason` so far.
    pub fn drops_for(&self, reason: &str) -> u64 {
        let drops = self.drops.lock().unwrap_or_else(|p| p.into_inner());
        drops.get(reason).copied().unwrap_or(0)
    }

    /// A copy of every non-zero counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let by_type = |counters: &[AtomicU64; 256]| {
            let mut out = BTreeMap::new();
            for (msg_type, counter) in counters.iter().enumerate() {
                let value = counter.load(Ordering::Relaxed);
                if value > 0 {
                    let name = match message_type_name(msg_type as u8) {
                        "unknown" => format!("type-{msg_type}"),
                        name => name.to_string(),
                    };
                    *out.entry(name).or_insert(0) += value;
                }
            }
            out
        };
        let drops = self.drops.lock().unwrap_or_else(|p| p.into_inner());
        StatsSnapshot {
            received: by_type(&self.received),
            sent: by_type(&self.sent),
            drops: drops.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            lease_database: self
                .lease_database
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        }
    }
}
