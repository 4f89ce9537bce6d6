//! Durable lease store: the bindings the server has promised, and their change history.
//!
//! The row shape follows Kea's `lease6` table (same column names and codes where Kea has them).
//! [`SqliteStore`] is the default implementation (WAL, `synchronous=FULL`); [`PostgresStore`]
//! the one several servers can share (`synchronous_commit = on`, grants kept apart by the
//! database, commits followed by LISTEN/NOTIFY); [`StoreWriter`] is the async front that groups concurrent commits into
//! one transaction and answers each caller only once its changes are on disk.
//!
//! Reads go straight to the store (`LeaseStore` methods are synchronous and cheap: indexed
//! point lookups, or one bounded page of a keyset scan); writes go through the [`StoreWriter`].
//!
//! ```text
//! let store = Arc::new(SqliteStore::open("/var/lib/dhcp/leases.db")?);
//! let writer = StoreWriter::spawn(store.clone(), WriterConfig::default())?;
//! writer.commit(vec![LeaseChange::Upsert(lease)]).await?; // durable: now send the Reply
//! writer.submit(vec![LeaseChange::Renew { .. }])?;        // fast-path report, durable ≤ 1 s
//! let lease = store.get_by_address(address)?;             // reads go to the store directly
//! for lease in LeasePages::new(&*store, LeaseFilter::RelayId(relay), 1000) { .. } // bulk LQ
//! ```

pub mod pg_tls;
mod postgres;
mod sqlite;
mod writer;

#[cfg(test)]
mod tests;

use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::sync::Arc;

pub use postgres::{PostgresStore, MIGRATIONS as POSTGRES_MIGRATIONS, NOTIFY_CHANNEL};
pub use sqlite::{SqliteStore, SCHEMA_VERSION};
pub use writer::{DurableHook, PendingCommit, StoreWriter, Ticket, WriterConfig};

/// Meta key under which the server's own DUID is kept.
pub const META_SERVER_DUID: &str = "server_duid";

/// What kind of binding a lease is; codes are Kea's `lease6.lease_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LeaseType {
    /// A non-temporary address (IA_NA / IAADDR), prefix_len 128.
    Na,
    /// A delegated prefix (IA_PD / IAPREFIX).
    Pd,
}

impl LeaseType {
    /// Kea's numeric code (0 = NA, 2 = PD; 1 was IA_TA, which this server does not hand out).
    pub fn code(self) -> i64 {
        match self {
            LeaseType::Na => 0,
            LeaseType::Pd => 2,
        }
    }

    /// [`LeaseType::code`] as PostgreSQL's SMALLINT.
    pub fn code_i16(self) -> i16 {
        self.code() as i16
    }

    /// The type for a Kea code, `None` for an unknown one.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(LeaseType::Na),
            2 => Some(LeaseType::Pd),
            _ => None,
        }
    }
}

/// Where a lease stands in its life; codes are Kea's `lease6.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeaseState {
    /// Handed to the client and in use until `expire`.
    Assigned,
    /// The client sent a Decline: the address is in use by someone else; held back until expiry.
    Declined,
    /// The client sent a Release.
    Released,
    /// Expired and reclaimed by the reclaim timer; kept for a returning client (stable address).
    ExpiredReclaimed,
}

impl LeaseState {
    /// Kea's numeric code (0 default/assigned, 1 declined, 2 expired-reclaimed, 3 released).
    pub fn code(self) -> i64 {
        match self {
            LeaseState::Assigned => 0,
            LeaseState::Declined => 1,
            LeaseState::ExpiredReclaimed => 2,
            LeaseState::Released => 3,
        }
    }

    /// [`LeaseState::code`] as PostgreSQL's SMALLINT.
    pub fn code_i16(self) -> i16 {
        self.code() as i16
    }

    /// The state for a Kea code, `None` for an unknown one.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(LeaseState::Assigned),
            1 => Some(LeaseState::Declined),
            2 => Some(LeaseState::ExpiredReclaimed),
            3 => Some(LeaseState::Released),
            _ => None,
        }
    }
}

/// Primary identity of a lease; its `Ord` is the store's scan order (type, address, prefix_len).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LeaseKey {
    /// NA or PD.
    pub lease_type: LeaseType,
    /// The address, or the prefix (host bits zero) for PD.
    pub address: Ipv6Addr,
    /// 128 for NA; the delegated prefix length for PD.
    pub prefix_len: u8,
}

impl LeaseKey {
    /// Key of the IA_NA lease on `address`.
    pub fn na(address: Ipv6Addr) -> Self {
        LeaseKey {
            lease_type: LeaseType::Na,
            address,
            prefix_len: 128,
        }
    }

    /// Key of the IA_PD lease on `prefix/prefix_len`.
    pub fn pd(prefix: Ipv6Addr, prefix_len: u8) -> Self {
        LeaseKey {
            lease_type: LeaseType::Pd,
            address: prefix,
            prefix_len,
        }
    }
}

/// One binding, shaped like a row of Kea's `lease6` table plus the relay data leasequery needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The leased address; for a prefix, the prefix itself (host bits zero).
    pub address: Ipv6Addr,
    /// 128 for IA_NA; the delegated length for IA_PD.
    pub prefix_len: u8,
    /// NA or PD.
    pub lease_type: LeaseType,
    /// The client's DUID (Client Identifier option body).
    pub duid: Vec<u8>,
    /// The IAID of the IA_NA / IA_PD the lease was given in.
    pub iaid: u32,
    /// The configured subnet the lease belongs to.
    pub subnet_id: u32,
    /// Preferred lifetime promised at `cltt`, seconds.
    pub preferred_lifetime: u32,
    /// Valid lifetime promised at `cltt`, seconds.
    pub valid_lifetime: u32,
    /// Client last transaction time, unix seconds.
    pub cltt: i64,
    /// End of the valid lifetime, unix seconds; always `cltt + valid_lifetime`.
    pub expire: i64,
    /// Where the lease stands.
    pub state: LeaseState,
    /// The interface the request came in on (may be empty).
    pub interface: String,
    /// Link-address of the innermost relay; `::` when the client is on a direct link.
    pub link_address: Ipv6Addr,
    /// DUID from the Relay-ID option (53) of the relay closest to the server, if any.
    pub relay_id: Option<Vec<u8>>,
    /// Full Remote-ID option (37) body, enterprise number included, if any.
    pub remote_id: Option<Vec<u8>>,
    /// The raw relay chain as received (for LQ_RELAY_DATA); empty when direct.
    pub relay_info: Vec<u8>,
    /// The client's host name (Client FQDN), may be empty.
    pub hostname: String,
    /// The line the lease was served on (`line-identity`): the kind's tag then the identity
    /// ([`crate::config::LineId::stored`]); `None` when the request named no line.
    pub line: Option<Box<[u8]>>,
    /// A direct client's link-layer address, as option 79 carries one (RFC 6939: hardware type,
    /// then the address): its frame's source MAC, which the fast path notes. `None` for a
    /// relayed client (its relays' option 79 is in `relay_info`) or when none was known.
    pub link_layer: Option<Box<[u8]>>,
    /// The client's link-local address on `interface`, the next hop of a route to the lease
    /// (`[routes]`): a direct client's source address, or an on-link LDRA's peer-address;
    /// `None` when routes are off or the client is behind an L3 relay.
    pub next_hop: Option<std::net::Ipv6Addr>,
    /// The reconfigure key given to the client and where a Reconfigure to it goes (RFC 8415
    /// section 20.4.1); `None` unless it sent Reconfigure Accept where `reconfigure` is on.
    pub reconfigure: Option<ReconfigureKey>,
}

/// A client's reconfigure key (RFC 8415 section 20.4.1) and the address a Reconfigure to it is
/// sent to: the source of its last request that carried Reconfigure Accept (the client's
/// link-local address, or the relay closest to the server; the relay chain is the lease's
/// `relay_info`, the interface its `interface`). Stored as one 32-byte column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconfigureKey {
    /// The 128-bit key, random per client, sent in the Reply's Authentication option.
    pub key: [u8; 16],
    /// Where the Reconfigure (or the Relay-Repl carrying it) goes, port 546 or 547.
    pub reply_to: Ipv6Addr,
}

impl ReconfigureKey {
    /// The stored form: the key then the address.
    pub fn to_bytes(&self) -> [u8; 32] {
        let mut bytes = [0; 32];
        bytes[..16].copy_from_slice(&self.key);
        bytes[16..].copy_from_slice(&self.reply_to.octets());
        bytes
    }

    /// The key of a stored column, `None` when it is not 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; 32] = bytes.try_into().ok()?;
        let mut key = [0; 16];
        key.copy_from_slice(&bytes[..16]);
        let mut address = [0; 16];
        address.copy_from_slice(&bytes[16..]);
        Some(ReconfigureKey {
            key,
            reply_to: Ipv6Addr::from(address),
        })
    }
}

impl Lease {
    /// A lease of `address`/`prefix_len` for `duid`'s IA `iaid` in `subnet_id` with nothing
    /// else known yet: assigned, zero lifetimes at time 0, no interface, relay, line or next
    /// hop. Callers fill in the rest (`Lease { interface, ..Lease::bare(..) }`, [`Lease::assign`]).
    pub fn bare(
        lease_type: LeaseType,
        address: Ipv6Addr,
        prefix_len: u8,
        duid: Vec<u8>,
        iaid: u32,
        subnet_id: u32,
    ) -> Lease {
        Lease {
            address,
            prefix_len,
            lease_type,
            duid,
            iaid,
            subnet_id,
            preferred_lifetime: 0,
            valid_lifetime: 0,
            cltt: 0,
            expire: 0,
            state: LeaseState::Assigned,
            interface: String::new(),
            link_address: Ipv6Addr::UNSPECIFIED,
            relay_id: None,
            remote_id: None,
            relay_info: Vec::new(),
            hostname: String::new(),
            line: None,
            link_layer: None,
            next_hop: None,
            reconfigure: None,
        }
    }

    /// The lease's primary identity.
    pub fn key(&self) -> LeaseKey {
        LeaseKey {
            lease_type: self.lease_type,
            address: self.address,
            prefix_len: self.prefix_len,
        }
    }

    /// True while the lease is assigned and its valid lifetime has not run out at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        self.state == LeaseState::Assigned && self.expire > now
    }

    /// Seconds of valid lifetime left at `now` (0 once expired).
    pub fn remaining_valid(&self, now: i64) -> u32 {
        clamp_u32(self.expire.saturating_sub(now))
    }

    /// Seconds of preferred lifetime left at `now` (0 once deprecated).
    pub fn remaining_preferred(&self, now: i64) -> u32 {
        let preferred_end = self.cltt.saturating_add(i64::from(self.preferred_lifetime));
        clamp_u32(preferred_end.saturating_sub(now))
    }

    /// True if `address` is the leased address (NA) or lies inside the delegated prefix (PD).
    pub fn covers(&self, address: Ipv6Addr) -> bool {
        prefix_contains(self.address, self.prefix_len, address)
    }

    /// Records a (re)assignment at `cltt` with the given lifetimes: sets times, expire and state.
    pub fn assign(&mut self, cltt: i64, preferred_lifetime: u32, valid_lifetime: u32) {
        self.cltt = cltt;
        self.preferred_lifetime = preferred_lifetime;
        self.valid_lifetime = valid_lifetime;
        self.expire = cltt.saturating_add(i64::from(valid_lifetime));
        self.state = LeaseState::Assigned;
    }

    /// Records a client transaction at `at` that does not change the lease's times (a Release):
    /// the last transaction time moves to `at` (no later than the expiry), while the expiry and
    /// the end of the preferred lifetime stay where they are.
    pub fn touch(&mut self, at: i64) {
        let at = at.min(self.expire).max(self.cltt);
        let preferred_end = self.cltt.saturating_add(i64::from(self.preferred_lifetime));
        self.valid_lifetime = clamp_u32(self.expire - at);
        self.preferred_lifetime = clamp_u32(preferred_end - at).min(self.valid_lifetime);
        self.cltt = at;
    }

    /// Checks the invariants the store relies on; a lease that fails is never written.
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |reason: &'static str| {
            Err(StoreError::InvalidLease {
                key: self.key(),
                reason,
            })
        };
        if self.prefix_len > 128 {
            return bad("prefix_len is over 128");
        }
        match self.lease_type {
            LeaseType::Na if self.prefix_len != 128 => {
                return bad("an NA lease has prefix_len 128")
            }
            LeaseType::Pd if mask(self.address, self.prefix_len) != self.address => {
                return bad("a delegated prefix has host bits set")
            }
            _ => {}
        }
        if self.duid.is_empty() {
            return bad("the DUID is empty");
        }
        if self.preferred_lifetime > self.valid_lifetime {
            return bad("preferred lifetime exceeds valid lifetime");
        }
        if self.cltt.checked_add(i64::from(self.valid_lifetime)) != Some(self.expire) {
            return bad("expire is not cltt + valid_lifetime");
        }
        Ok(())
    }
}

/// One change to commit: a lease written whole, or removed.
// Upsert is most changes and lives only in a batch's Vec: boxing it would add an allocation to
// each, to save the few Renew and Delete variants some bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseChange {
    /// Insert or replace the lease with this key.
    Upsert(Lease),
    /// Remove the lease with this key (no-op, and no history entry, if absent).
    Delete(LeaseKey),
    /// A renewal answered by the fast path: new times for a lease that is still assigned.
    ///
    /// Applied atomically in the commit, and only if the lease exists, is `Assigned` and its
    /// stored `cltt` is not newer; otherwise a no-op without history. So a late report can
    /// neither resurrect a released or reclaimed lease nor undo a newer transaction.
    Renew {
        /// The lease renewed.
        key: LeaseKey,
        /// Time of the renewal, unix seconds.
        cltt: i64,
        /// Preferred lifetime the reply carried.
        preferred_lifetime: u32,
        /// Valid lifetime the reply carried.
        valid_lifetime: u32,
    },
}

impl LeaseChange {
    /// The key the change applies to.
    pub fn key(&self) -> LeaseKey {
        match self {
            LeaseChange::Upsert(lease) => lease.key(),
            LeaseChange::Delete(key) | LeaseChange::Renew { key, .. } => *key,
        }
    }

    /// Checks the change can be written (see [`Lease::validate`]).
    pub fn validate(&self) -> Result<(), StoreError> {
        let bad = |key: &LeaseKey, reason| Err(StoreError::InvalidLease { key: *key, reason });
        match self {
            LeaseChange::Upsert(lease) => lease.validate(),
            LeaseChange::Delete(key) | LeaseChange::Renew { key, .. } if key.prefix_len > 128 => {
                bad(key, "prefix_len is over 128")
            }
            LeaseChange::Renew {
                key,
                preferred_lifetime,
                valid_lifetime,
                ..
            } if preferred_lifetime > valid_lifetime => {
                bad(key, "preferred lifetime exceeds valid lifetime")
            }
            LeaseChange::Delete(_) | LeaseChange::Renew { .. } => Ok(()),
        }
    }
}

/// What happened to a lease in a history entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// The lease was written; the snapshot is its new content.
    Upsert,
    /// The lease was removed; the snapshot is its last content.
    Delete,
}

/// One entry of the change history (active leasequery, RFC 7653).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeRecord {
    /// Monotonically increasing sequence number, never reused (also not after pruning).
    pub seq: u64,
    /// When the change was committed, unix seconds.
    pub at: i64,
    /// Upsert or delete.
    pub kind: ChangeKind,
    /// The lease after an upsert, or as it was before a delete.
    pub lease: Lease,
}

/// Where to start reading the change history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeCursor {
    /// Changes with a sequence number greater than this one.
    AfterSeq(u64),
    /// Changes committed at or after this unix time (seconds).
    SinceTime(i64),
}

/// A selection of leases for a paged scan; every selection is returned in [`LeaseKey`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseFilter {
    /// Every lease.
    All,
    /// The leases of one client; `iaid` narrows to one IA.
    Duid {
        /// Client DUID.
        duid: Vec<u8>,
        /// Only this IAID when set.
        iaid: Option<u32>,
    },
    /// Leases obtained through the relay with this Relay-ID DUID.
    RelayId(Vec<u8>),
    /// Leases whose request carried this Remote-ID body.
    RemoteId(Vec<u8>),
    /// Leases on this link (relay link-address; `::` for direct clients).
    LinkAddress(Ipv6Addr),
}

/// Active lease count of one subnet and lease type (pool utilisation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolCount {
    /// The subnet.
    pub subnet_id: u32,
    /// NA or PD.
    pub lease_type: LeaseType,
    /// Leases assigned and not expired at the time asked.
    pub active: u64,
}

/// Proof a commit is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitReceipt {
    /// Commit time written into the history, unix seconds.
    pub at: i64,
    /// Highest history sequence number after the commit; every change of the commit is at or below it.
    pub last_seq: u64,
}

/// What [`LeaseStore::commit_checked`] did: the receipt, and the changes it refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedCommit {
    /// Proof the rest is durable.
    pub receipt: CommitReceipt,
    /// Indexes (into the changes given, ascending) of the upserts refused because another
    /// client holds that lease in the shared database; nothing of them was written.
    pub refused: Vec<usize>,
    /// Per change, the version the store gave the row it wrote (the history sequence number
    /// of its change), 0 when the change wrote nothing (refused, or a Renew or Delete that
    /// found nothing to change). Empty for a store only one server writes (SQLite): its
    /// commits reach the server's copy in commit order, so no version is needed to order them.
    pub versions: Vec<u64>,
}

/// Errors of the lease store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or is not a usable lease database.
    #[error("lease database {path}: {source}")]
    Open {
        /// The database path.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer (or unknown) schema than this build understands.
    #[error("lease database {path}: schema version {found:?} is not supported (this build knows {supported})")]
    SchemaVersion {
        /// The database path.
        path: PathBuf,
        /// The `schema_version` found in `meta`.
        found: String,
        /// The version this build writes.
        supported: u32,
    },
    /// A lease failed [`Lease::validate`].
    #[error("invalid lease {key:?}: {reason}")]
    InvalidLease {
        /// The lease's key.
        key: LeaseKey,
        /// The broken invariant.
        reason: &'static str,
    },
    /// A row in the database does not decode to a lease (the file was edited or damaged).
    #[error("lease database holds a bad row: {0}")]
    BadRow(String),
    /// An SQLite operation failed.
    #[error("lease database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A PostgreSQL connection or statement failed.
    #[error("lease database {target}: {source}")]
    Postgres {
        /// `postgresql host:port/dbname`.
        target: String,
        /// Why.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The PostgreSQL database has migrations this build does not know (a newer release).
    #[error("lease database {target}: schema version {found} is newer than this build knows ({supported})")]
    PostgresSchema {
        /// `postgresql host:port/dbname`.
        target: String,
        /// The newest version in `schema_migrations`.
        found: i32,
        /// The newest this build has.
        supported: u32,
    },
    /// TLS to the PostgreSQL database cannot be set up (a CA file, a mode needing one).
    #[error("lease database: {0}")]
    Tls(String),
    /// These leases are held by other clients in the shared database: nothing was written.
    #[error("lease conflict: held by another client in the shared database: {0:?}")]
    Conflict(Vec<LeaseKey>),
    /// A local resource of the store (a thread, a runtime) could not be had.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The batch this change was grouped in failed; nothing of it was written.
    #[error("lease batch commit failed: {0}")]
    Batch(Arc<StoreError>),
    /// `submit` refused a report: the writer's queue is full (the disk is not keeping up).
    #[error("lease store writer backlog is full; report dropped")]
    Backlog,
    /// The writer thread is gone (shut down or panicked).
    #[error("lease store writer has stopped")]
    WriterStopped,
}

/// The store's contract: durable writes in batches, and the lookups DHCPv6 and leasequery need.
///
/// Every method is synchronous; reads are cheap (an index lookup or one bounded page), the
/// commit waits for fsync, so async code writes through [`StoreWriter`].
pub trait LeaseStore: Send + Sync {
    /// Applies all `changes` in one durable transaction stamped `at` (raised to the last
    /// commit's time if the clock stepped back), recording each in the history.
    fn commit(&self, changes: &[LeaseChange], at: i64) -> Result<CommitReceipt, StoreError>;
    /// Like [`LeaseStore::commit`], but an upsert of a lease another client holds (only
    /// possible when several servers share the database) is left out and reported, while the
    /// rest commits. A store only one server writes refuses nothing.
    fn commit_checked(
        &self,
        changes: &[LeaseChange],
        at: i64,
    ) -> Result<CheckedCommit, StoreError> {
        self.commit(changes, at).map(|receipt| CheckedCommit {
            receipt,
            refused: Vec::new(),
            versions: Vec::new(),
        })
    }
    /// The lease with exactly this key.
    fn get(&self, key: &LeaseKey) -> Result<Option<Lease>, StoreError>;
    /// The IA_NA lease on exactly `address`.
    fn get_by_address(&self, address: Ipv6Addr) -> Result<Option<Lease>, StoreError>;
    /// The PD leases whose prefix contains `address`, most specific (longest prefix) first.
    fn find_prefixes_containing(&self, address: Ipv6Addr) -> Result<Vec<Lease>, StoreError>;
    /// Up to `limit` leases matching `filter` with key greater than `after`, in key order.
    fn find(
        &self,
        filter: &LeaseFilter,
        after: Option<&LeaseKey>,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError>;
    /// Up to `limit` leases matching `filter` after `after` in client order: by DUID, then
    /// IAID, then key, so that a client's leases come together (bulk leasequery).
    fn find_by_client(
        &self,
        filter: &LeaseFilter,
        after: Option<&ClientCursor>,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError>;
    /// Up to `limit` leases, assigned, with `expire < before`, oldest expiry first (reclaim timer).
    fn expired_before(&self, before: i64, limit: usize) -> Result<Vec<Lease>, StoreError>;
    /// Active leases at `now` counted per subnet and type, ordered by (subnet, type).
    fn active_counts(&self, now: i64) -> Result<Vec<PoolCount>, StoreError>;
    /// Up to `limit` history entries from `from`, in sequence order.
    fn changes_since(
        &self,
        from: ChangeCursor,
        limit: usize,
    ) -> Result<Vec<ChangeRecord>, StoreError>;
    /// Commit time of the oldest history entry kept, `None` when the history is empty.
    fn oldest_change_time(&self) -> Result<Option<i64>, StoreError>;
    /// Highest sequence number ever committed (0 before the first change).
    fn last_seq(&self) -> Result<u64, StoreError>;
    /// Removes history entries committed before `before`; returns how many went.
    fn prune_changes(&self, before: i64) -> Result<u64, StoreError>;
    /// A value from the key/value `meta` table.
    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Durably sets a value in the `meta` table.
    fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;

    /// Whether other servers may write this store too (a shared database): then the server
    /// follows their commits ([`LeaseStore::watch_commits`]) and retries refused grants.
    fn is_shared(&self) -> bool {
        false
    }

    /// Calls `on_commit` with the last history sequence number of every batch any server
    /// commits (0: a reconnect, some may have been missed), on a thread of the store's, until
    /// it returns false. Returns false, calling nothing, for a store no other server writes.
    fn watch_commits(
        &self,
        on_commit: Box<dyn FnMut(u64) -> bool + Send>,
    ) -> Result<bool, StoreError> {
        let _ = on_commit;
        Ok(false)
    }

    /// The lease with this key and its row version (see [`CheckedCommit::versions`]; 0 for a
    /// store without versions, and for rows written before a store had them).
    fn get_versioned(&self, key: &LeaseKey) -> Result<Option<(Lease, u64)>, StoreError> {
        Ok(self.get(key)?.map(|lease| (lease, 0)))
    }

    /// Up to `limit` leases with key greater than `after`, in key order, each with its row
    /// version (as [`LeaseStore::get_versioned`]).
    fn versioned_leases_after(
        &self,
        after: Option<&LeaseKey>,
        limit: usize,
    ) -> Result<Vec<(Lease, u64)>, StoreError> {
        Ok(self
            .leases_after(after, limit)?
            .into_iter()
            .map(|lease| (lease, 0))
            .collect())
    }

    /// The highest history sequence number removed by pruning (0: none). A follower whose
    /// position is below it has missed changes and must read the whole table again. A store
    /// only one server writes has no follower and need not keep it.
    fn history_pruned_through(&self) -> Result<u64, StoreError> {
        Ok(0)
    }

    /// Up to `limit` leases of any kind with key greater than `after`, in key order (bulk scans).
    fn leases_after(
        &self,
        after: Option<&LeaseKey>,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        self.find(&LeaseFilter::All, after, limit)
    }
}

/// Where a scan in client order ([`LeaseStore::find_by_client`]) goes on from: after this
/// lease's (DUID, IAID, key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCursor {
    /// The client's DUID.
    pub duid: Vec<u8>,
    /// The IA's IAID.
    pub iaid: u32,
    /// The lease's key.
    pub key: LeaseKey,
}

impl ClientCursor {
    /// The position of `lease`.
    pub fn of(lease: &Lease) -> Self {
        ClientCursor {
            duid: lease.duid.clone(),
            iaid: lease.iaid,
            key: lease.key(),
        }
    }
}

/// Where a [`LeasePages`] scan stands, in the order it pages in.
#[derive(Debug, Clone)]
enum PageCursor {
    Key(Option<LeaseKey>),
    Client(Option<ClientCursor>),
}

/// Lazily pages through a [`LeaseFilter`] selection, one bounded query per `page_size` leases,
/// in key order (`new`) or in client order (`by_client`).
pub struct LeasePages<'a, S: LeaseStore + ?Sized> {
    store: &'a S,
    filter: LeaseFilter,
    page_size: usize,
    page: std::vec::IntoIter<Lease>,
    after: PageCursor,
    done: bool,
}

impl<'a, S: LeaseStore + ?Sized> LeasePages<'a, S> {
    /// Starts a scan of `filter` over `store` in key order, fetching `page_size` (at least 1)
    /// leases at a time.
    pub fn new(store: &'a S, filter: LeaseFilter, page_size: usize) -> Self {
        LeasePages::starting(store, filter, page_size, PageCursor::Key(None))
    }

    /// As `new`, in client order (DUID, IAID, key): each client's leases one after another.
    pub fn by_client(store: &'a S, filter: LeaseFilter, page_size: usize) -> Self {
        LeasePages::starting(store, filter, page_size, PageCursor::Client(None))
    }

    fn starting(store: &'a S, filter: LeaseFilter, page_size: usize, after: PageCursor) -> Self {
        LeasePages {
            store,
            filter,
            page_size: page_size.max(1),
            page: Vec::new().into_iter(),
            after,
            done: false,
        }
    }

    fn fetch(&mut self) -> Result<Vec<Lease>, StoreError> {
        let page = match &self.after {
            PageCursor::Key(after) => {
                self.store
                    .find(&self.filter, after.as_ref(), self.page_size)?
            }
            PageCursor::Client(after) => {
                self.store
                    .find_by_client(&self.filter, after.as_ref(), self.page_size)?
            }
        };
        if let Some(last) = page.last() {
            self.after = match self.after {
                PageCursor::Key(_) => PageCursor::Key(Some(last.key())),
                PageCursor::Client(_) => PageCursor::Client(Some(ClientCursor::of(last))),
            };
        }
        Ok(page)
    }
}

impl<S: LeaseStore + ?Sized> Iterator for LeasePages<'_, S> {
    type Item = Result<Lease, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(lease) = self.page.next() {
            return Some(Ok(lease));
        }
        if self.done {
            return None;
        }
        match self.fetch() {
            Ok(page) => {
                self.done = page.len() < self.page_size;
                self.page = page.into_iter();
                let next = self.page.next();
                if next.is_none() {
                    self.done = true;
                }
                next.map(Ok)
            }
            Err(err) => {
                // A failed page ends the scan: the caller sees the error once, then the end.
                self.done = true;
                Some(Err(err))
            }
        }
    }
}

/// `address` with every bit past `prefix_len` cleared.
pub fn mask(address: Ipv6Addr, prefix_len: u8) -> Ipv6Addr {
    let bits = u128::from(address);
    let len = u32::from(prefix_len.min(128));
    let kept = if len == 0 {
        0
    } else {
        bits & (u128::MAX << (128 - len))
    };
    Ipv6Addr::from(kept)
}

/// True if `address` lies inside `prefix/prefix_len`.
pub fn prefix_contains(prefix: Ipv6Addr, prefix_len: u8, address: Ipv6Addr) -> bool {
    prefix_len <= 128 && mask(address, prefix_len) == mask(prefix, prefix_len)
}

fn clamp_u32(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}
