//! Lease events: every change the server makes to a lease, published on a broadcast channel.
//!
//! The server publishes them; subscribers (the fast-path map sync, active leasequery) get a
//! receiver from the server's `subscribe`. They sit below both, so that neither the
//! subscribers nor the publishers import each other for them. A subscriber that falls behind by more than
//! [`EVENT_CHANNEL_CAPACITY`] events gets `RecvError::Lagged` and must resynchronise from the
//! store; the server never waits for subscribers.

use serde::Serialize;
use tokio::sync::broadcast;

use crate::store::Lease;

/// Events buffered per subscriber before it is told it lagged.
pub const EVENT_CHANNEL_CAPACITY: usize = 1 << 16;

/// What happened to a lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaseEventKind {
    /// A new binding (or a returning client's old address given again).
    Granted,
    /// An existing binding's lifetimes were extended (Renew, Rebind, Request, fast path).
    Renewed,
    /// The client released it.
    Released,
    /// The client declined it (the address is in use on the link); quarantined.
    Declined,
    /// Its valid lifetime ran out and the reclaim timer reclaimed it.
    Expired,
    /// An operator cleared it (`dhcp-user clear`).
    Cleared,
}

impl LeaseEventKind {
    /// Lower-case name, as logged and counted.
    pub fn name(self) -> &'static str {
        match self {
            LeaseEventKind::Granted => "granted",
            LeaseEventKind::Renewed => "renewed",
            LeaseEventKind::Released => "released",
            LeaseEventKind::Declined => "declined",
            LeaseEventKind::Expired => "expired",
            LeaseEventKind::Cleared => "cleared",
        }
    }
}

/// One lease change, published after it is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseEvent {
    /// What happened.
    pub kind: LeaseEventKind,
    /// The lease as it is now in the store (for `Cleared`: as it was before removal).
    pub lease: Lease,
}

/// A new event channel (the receiver is dropped: subscribers come with `subscribe`).
pub fn channel() -> broadcast::Sender<LeaseEvent> {
    broadcast::channel(EVENT_CHANNEL_CAPACITY).0
}
