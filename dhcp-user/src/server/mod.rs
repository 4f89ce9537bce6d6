//! The DHCPv6 server: decode → classify → decide → persist → encode → reply.
//!
//! [`Server`] owns the decision state (allocator, commits in flight, client counts), the lease
//! store and its batching writer, the counters and the lease event channel. [`io`] feeds it
//! datagrams from one UDP socket per interface; [`handler`] holds the pipeline's pure parts.
//!
//! ```text
//! let server = Server::open(config, &interfaces)?;            // store, DUID, client counts
//! let mut events = server.subscribe();                         // fast-path map sync, leasequery
//! tokio::spawn(server.clone().run(interfaces, shutdown));      // sockets + reclaim timer
//! server.apply_fast_path_renewal(&duid, expires_unix, &[LeaseType::Na])?; // XDP answered a renewal
//! ```
//!
//! Concurrency: a decision runs under one short lock (no await inside), so two requests never
//! pick the same address; its lease changes are then entered in an in-flight overlay that later
//! decisions see and queued to the writer (still under the lock, so commits are made durable in
//! the order they were decided), and the lock is released while the writer makes them durable
//! (grouped with other requests' changes into one transaction). Only then is the reply sent and
//! the overlay entry dropped. Decisions read leases from an in-memory copy of the durable rows
//! ([`mirror`]), which the writer updates as each transaction reaches the disk; SQLite is read
//! once, when the server opens the store.

pub mod allocator;
pub mod class_facts;
pub mod handler;
pub mod io;
pub mod mirror;
pub mod operator;
pub mod reconfigure;
pub mod stats;
pub mod vlan;

use crate::clock::unix_now;
use crate::log_throttled;
use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use tokio::sync::broadcast;
use tracing::{debug, info, warn};

use crate::config::{classes::ClassFacts, Config};
use crate::proto::Duid;
use crate::store::{
    Lease, LeaseChange, LeaseFilter, LeaseKey, LeaseState, LeaseStore, LeaseType, PostgresStore,
    SqliteStore, StoreError, StoreWriter, Ticket, WriterConfig, META_SERVER_DUID,
};

use crate::lease_events::{LeaseEvent, LeaseEventKind};
use allocator::{Allocator, LeaseView};
use handler::{classify, decide, wrap_reply, ClientLimit, DecideInput, Inbound};
use mirror::LeaseMirror;
use stats::Stats;

/// Reclaim timer period.
pub const RECLAIM_INTERVAL: Duration = Duration::from_secs(2);
/// Leases reclaimed per tick at most (the rest wait for the next tick).
pub const RECLAIM_BATCH: usize = 2000;
/// File of the server's own DUID in the state directory, with a shared lease database.
pub const SERVER_DUID_FILE: &str = "server-duid";
/// File name of the lease database in the state directory.
pub const LEASE_DB_FILE: &str = "leases.db";
/// Decisions made again after a grant another server won (shared database) before the
/// request is dropped.
const MAX_CONFLICT_RETRIES: usize = 3;
/// History entries read per page when following other servers' commits.
const FOLLOW_PAGE: usize = 1000;
/// Leases of one client considered at most (a client with more is served from the first ones).
const MAX_LEASES_PER_CLIENT: usize = 256;

/// Opens the lease store `[lease-database]` names: SQLite in the state directory, or PostgreSQL.
pub fn open_store(config: &Config) -> Result<Arc<dyn LeaseStore>, ServerError> {
    Ok(match &config.lease_database {
        crate::config::LeaseDatabase::Sqlite => {
            let path: PathBuf = config.state_dir.join(LEASE_DB_FILE);
            Arc::new(SqliteStore::open(&path)?)
        }
        crate::config::LeaseDatabase::Postgresql(pg) => {
            let password = pg.password().map_err(ServerError::Config)?;
            Arc::new(PostgresStore::connect_with(
                &pg.conninfo,
                password.as_deref(),
                &pg.tls,
            )?)
        }
    })
}

/// Errors of the server outside the per-packet path.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The lease store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file or socket operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// The server DUID (configured or stored) is not a valid DUID.
    #[error("server DUID: {0}")]
    Duid(String),
    /// A file the configuration names could not be used, or a task of the server failed.
    #[error("{0}")]
    Config(String),
}

/// What `clear` removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClearSelector {
    /// Every lease of this client.
    Duid(Vec<u8>),
    /// The lease of this address, or the delegated prefixes containing it.
    Address(Ipv6Addr),
    /// Every lease.
    All,
}

/// Active leases against pool size, per subnet and type.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PoolUsage {
    /// The subnet's id.
    pub subnet_id: u32,
    /// The subnet's prefix.
    pub prefix: String,
    /// "na" or "pd".
    pub kind: String,
    /// Assigned, unexpired leases.
    pub active: u64,
    /// Addresses (or delegable prefixes) in the subnet's pools (saturating).
    pub size: u128,
}

/// A commit in flight: what the lease will be once durable (`None`: deleted).
struct Pending {
    generation: u64,
    lease: Option<Lease>,
}

/// The commits in flight by lease key, with the keys of each client (DUID) among them, so a
/// decision finds a client's in-flight leases without walking every commit in flight.
#[derive(Default)]
struct Overlay {
    entries: HashMap<LeaseKey, Pending>,
    by_duid: HashMap<Vec<u8>, Vec<LeaseKey>>,
    /// The same by line, for the leases that have one (sticky delegation).
    by_line: HashMap<Box<[u8]>, Vec<LeaseKey>>,
}

impl Overlay {
    fn get(&self, key: &LeaseKey) -> Option<&Pending> {
        self.entries.get(key)
    }

    fn contains_key(&self, key: &LeaseKey) -> bool {
        self.entries.contains_key(key)
    }

    fn insert(&mut self, key: LeaseKey, pending: Pending) {
        if let Some(lease) = &pending.lease {
            self.by_duid
                .entry(lease.duid.clone())
                .or_default()
                .push(key);
            if let Some(line) = &lease.line {
                self.by_line.entry(line.clone()).or_default().push(key);
            }
        }
        if let Some(old) = self.entries.insert(key, pending) {
            self.unindex(&key, old.lease.as_ref());
        }
    }

    fn remove(&mut self, key: &LeaseKey) {
        if let Some(old) = self.entries.remove(key) {
            self.unindex(key, old.lease.as_ref());
        }
    }

    /// Drops one index entry of `key` under the DUID of `lease` (it was entered once per insert).
    fn unindex(&mut self, key: &LeaseKey, lease: Option<&Lease>) {
        let Some(lease) = lease else { return };
        if let Some(keys) = self.by_duid.get_mut(lease.duid.as_slice()) {
            if let Some(at) = keys.iter().position(|k| k == key) {
                keys.swap_remove(at);
            }
            if keys.is_empty() {
                self.by_duid.remove(lease.duid.as_slice());
            }
        }
        if let Some(line) = &lease.line {
            if let Some(keys) = self.by_line.get_mut(line) {
                if let Some(at) = keys.iter().position(|k| k == key) {
                    keys.swap_remove(at);
                }
                if keys.is_empty() {
                    self.by_line.remove(line);
                }
            }
        }
    }

    /// The in-flight leases served on `line` (deletions excluded).
    fn of_line<'a>(&'a self, line: &[u8]) -> impl Iterator<Item = &'a Lease> + 'a {
        let keys = self.by_line.get(line).map(Vec::as_slice).unwrap_or(&[]);
        keys.iter()
            .filter_map(|key| self.entries.get(key)?.lease.as_ref())
    }

    /// The in-flight leases of `duid` (deletions excluded).
    fn of_duid<'a>(&'a self, duid: &[u8]) -> impl Iterator<Item = &'a Lease> + 'a {
        // Each key is listed once, under the DUID of the lease it is pending as.
        let keys = self.by_duid.get(duid).map(Vec::as_slice).unwrap_or(&[]);
        keys.iter()
            .filter_map(|key| self.entries.get(key)?.lease.as_ref())
    }
}

/// Clients per interface (`interface-client-limit`) and per line (`line-client-limit`): the
/// DUIDs with an active lease served there.
struct ClientTable {
    limit: Option<u32>,
    /// The DUIDs share their bytes with the mirror's rows when loaded with them.
    per_interface: HashMap<String, HashSet<Arc<[u8]>>>,
    line_limit: Option<u32>,
    per_line: HashMap<Vec<u8>, HashSet<Arc<[u8]>>>,
}

impl ClientTable {
    /// Counts a client with an active lease served on `interface` (and `line`).
    fn add(&mut self, interface: &str, line: Option<&[u8]>, duid: &Arc<[u8]>) {
        if self.limit.is_some() {
            if let Some(set) = self.per_interface.get_mut(interface) {
                set.insert(Arc::clone(duid));
            } else {
                self.per_interface
                    .entry(interface.to_string())
                    .or_default()
                    .insert(Arc::clone(duid));
            }
        }
        if let (Some(_), Some(line)) = (self.line_limit, line) {
            self.per_line
                .entry(line.to_vec())
                .or_default()
                .insert(Arc::clone(duid));
        }
    }
}

impl ClientLimit for ClientTable {
    fn is_known(&self, interface: &str, duid: &[u8]) -> bool {
        self.per_interface
            .get(interface)
            .is_some_and(|clients| clients.contains(duid))
    }

    fn is_full(&self, interface: &str) -> bool {
        let Some(limit) = self.limit else {
            return false;
        };
        let count = self.per_interface.get(interface).map_or(0, HashSet::len);
        count >= limit as usize
    }

    fn line_is_known(&self, line: &[u8], duid: &[u8]) -> bool {
        self.per_line
            .get(line)
            .is_some_and(|clients| clients.contains(duid))
    }

    fn line_is_full(&self, line: &[u8]) -> bool {
        let Some(limit) = self.line_limit else {
            return false;
        };
        let count = self.per_line.get(line).map_or(0, HashSet::len);
        count >= limit as usize
    }
}

struct DecisionState {
    /// The configuration decisions are made with; a reload swaps it together with the
    /// allocator's view of it, under this lock.
    config: Arc<Config>,
    allocator: Allocator,
    /// The durable lease rows (kept by the writer's durable hook).
    mirror: LeaseMirror,
    pending: Overlay,
    next_generation: u64,
    clients: ClientTable,
}

impl DecisionState {
    /// Enters `changes` in the in-flight overlay; returns the generation to retire them with.
    fn begin(&mut self, changes: &[LeaseChange]) -> u64 {
        self.next_generation += 1;
        let generation = self.next_generation;
        for change in changes {
            let lease = match change {
                LeaseChange::Upsert(lease) => Some(lease.clone()),
                LeaseChange::Delete(_) => None,
                LeaseChange::Renew { .. } => continue,
            };
            self.pending
                .insert(change.key(), Pending { generation, lease });
        }
        generation
    }

    /// Drops the overlay entries of `generation` (a later commit of the same key stays).
    fn finish(&mut self, changes: &[LeaseChange], generation: u64) {
        self.finish_keys(changes.iter().map(LeaseChange::key), generation);
    }

    /// [`DecisionState::finish`] by the changes' keys.
    fn finish_keys(&mut self, keys: impl IntoIterator<Item = LeaseKey>, generation: u64) {
        for key in keys {
            if self
                .pending
                .get(&key)
                .is_some_and(|p| p.generation == generation)
            {
                self.pending.remove(&key);
            }
        }
    }
}

/// The durable rows seen through the commits in flight.
struct OverlayView<'a> {
    mirror: &'a LeaseMirror,
    pending: &'a Overlay,
}

impl LeaseView for OverlayView<'_> {
    fn get(&self, key: &LeaseKey) -> Result<Option<Lease>, StoreError> {
        match self.pending.get(key) {
            Some(pending) => Ok(pending.lease.clone()),
            None => Ok(self.mirror.get(key)),
        }
    }

    fn scan_after(&self, after: Option<&LeaseKey>, limit: usize) -> Result<Vec<Lease>, StoreError> {
        // Rows only: the allocator checks each candidate with `get`, which sees the overlay.
        // The allocator walks one pool of one lease type and a row of the other type ends its
        // walk, so the page stops after the first such row (a short page also ends the walk).
        let mut page = Vec::new();
        let first_type = after.map(|key| key.lease_type);
        for lease in self.mirror.range_after(after).take(limit) {
            let other_type = first_type.is_some_and(|t| t != lease.lease_type);
            page.push(lease);
            if other_type {
                break;
            }
        }
        Ok(page)
    }

    fn by_duid(&self, duid: &[u8]) -> Result<Vec<Lease>, StoreError> {
        let mut leases: Vec<Lease> = self
            .mirror
            .by_duid(duid, MAX_LEASES_PER_CLIENT)
            .filter(|lease| !self.pending.contains_key(&lease.key()))
            .collect();
        leases.extend(self.pending.of_duid(duid).cloned());
        Ok(leases)
    }

    fn by_line(&self, line: &[u8]) -> Result<Vec<Lease>, StoreError> {
        // The durable rows of the line the commits in flight leave alone, then the commits in
        // flight that put a row on it.
        let mut leases: Vec<Lease> = self
            .mirror
            .by_line(line)
            .filter(|lease| !self.pending.contains_key(&lease.key()))
            .collect();
        leases.extend(self.pending.of_line(line).cloned());
        Ok(leases)
    }
}

/// How [`Server::begin`] waits for a decision's commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Its own answer from the writer (one wake-up for this request).
    Own,
    /// A writer [`Ticket`]: the caller watches the writer's progress and completes every
    /// request of a batch on one wake-up.
    Ticket,
}

/// What [`Server::begin`] made of a datagram.
// Made and moved once per request; boxing `Waiting` would add an allocation per request.
#[allow(clippy::large_enum_variant)]
pub enum Handling {
    /// Answered, or dropped (`None`), at once: no lease changed.
    Done(Option<Vec<u8>>),
    /// The reply waits for lease changes to be durable.
    Waiting(Waiting),
}

/// How a waiting request's commit is answered.
enum Commit {
    Own(crate::store::PendingCommit),
    Ticket(Ticket),
    /// Already waited for.
    Taken,
}

/// A request whose lease changes are being made durable; [`Server::complete`] gives its reply.
pub struct Waiting {
    commit: Commit,
    keys: Vec<LeaseKey>,
    generation: u64,
    events: Vec<LeaseEvent>,
    outcome: Result<crate::proto::Message, &'static str>,
    request: handler::Classified,
    source: std::net::SocketAddrV6,
    /// How the commit is waited for (a retry waits the same way).
    durability: Durability,
    /// Decisions made before this one for the request (refused by another server).
    attempt: usize,
    /// The configuration it was decided with.
    config: Arc<Config>,
}

impl Waiting {
    /// The writer ticket this request waits for (`None` when it waits on its own answer).
    pub fn ticket(&self) -> Option<Ticket> {
        match self.commit {
            Commit::Ticket(ticket) => Some(ticket),
            Commit::Own(_) | Commit::Taken => None,
        }
    }

    /// Where the reply goes.
    pub fn source(&self) -> std::net::SocketAddrV6 {
        self.source
    }
}

/// Sees the durable rows while the server loads its copy of them (the fast path fills its
/// binding map from them meanwhile, on a thread of its own: one read of the store for both).
pub trait LoadObserver {
    /// Before the first row: the configuration the server serves (with the reservations made
    /// at run time).
    fn config(&mut self, config: &Config);
    /// The next page of rows, in key order.
    fn rows(&mut self, rows: Vec<Lease>);
}

/// The DHCPv6 server. Share it as `Arc<Server>`.
pub struct Server {
    /// The configuration served, for readers outside the decision lock (a reload swaps it
    /// right after the decision state's copy).
    config: RwLock<Arc<Config>>,
    server_duid: Duid,
    store: Arc<dyn LeaseStore>,
    writer: StoreWriter,
    events: broadcast::Sender<LeaseEvent>,
    state: Arc<Mutex<DecisionState>>,
    stats: Stats,
    /// Interface name → id of the subnet of its direct clients (an id, not a position, so
    /// that it stays right while a reload swaps the configuration).
    direct_subnets: RwLock<HashMap<String, u32>>,
    /// Who may send individual LEASEQUERY messages (RFC 5007) to UDP 547, and what we serve.
    leasequery: RwLock<Arc<crate::leasequery::LeasequerySettings>>,
    /// Counters of the leasequery TCP service and peer sync (shown by `stats`).
    leasequery_stats: Arc<crate::leasequery::LeasequeryStats>,
    /// The served interfaces' addresses (reply sources; the fast path's `IFACES` follows them).
    interfaces: Arc<crate::netif::Interfaces>,
    /// The history sequence number the copy has followed to (a shared store): the last one
    /// applied, or the store's last when the copy was loaded.
    followed_seq: std::sync::atomic::AtomicU64,
    /// Held (a shared store) from applying or checking lease events against the copy until
    /// they are sent, so that events reach the fast path and leasequery in the copy's order.
    publish_order: Mutex<()>,
    /// Told of every reservation added or deleted at run time (the fast path's map sync).
    reservation_followers: RwLock<Vec<Arc<dyn operator::ReservationFollower>>>,
    /// The Reconfigure exchanges in flight (`dhcp-user reconfigure`).
    reconfigurer: Arc<reconfigure::Reconfigurer>,
    /// What each client's classes were last judged on, for the fast path's bindings.
    class_facts: class_facts::ClassFactsTable,
    /// The fast path's record of direct clients' source MACs, once it runs
    /// ([`Server::read_client_macs`]): without it a direct client has no link-layer address.
    client_macs: RwLock<Option<Arc<crate::fastpath::ClientMacs>>>,
}

impl Server {
    /// Opens the lease database in `config.state_dir`, loads (or creates and keeps) the server
    /// DUID, counts the clients per interface and starts the store writer.
    ///
    /// `interfaces` are the interfaces to be served; the first one's MAC seeds a generated DUID.
    pub fn open(config: Config, interfaces: &[String]) -> Result<Arc<Server>, ServerError> {
        std::fs::create_dir_all(&config.state_dir).map_err(|source| ServerError::Io {
            context: format!("creating state directory {}", config.state_dir.display()),
            source,
        })?;
        let store = open_store(&config)?;
        Server::with_store(config, store, interfaces)
    }

    /// As [`Server::open`], showing `observer` the rows as the copy of them is loaded.
    pub fn open_observed(
        config: Config,
        interfaces: &[String],
        observer: &mut dyn LoadObserver,
    ) -> Result<Arc<Server>, ServerError> {
        std::fs::create_dir_all(&config.state_dir).map_err(|source| ServerError::Io {
            context: format!("creating state directory {}", config.state_dir.display()),
            source,
        })?;
        let store = open_store(&config)?;
        Server::with_store_observed(config, store, interfaces, Some(observer))
    }

    /// A server over an already open store.
    pub fn with_store(
        config: Config,
        store: Arc<dyn LeaseStore>,
        interfaces: &[String],
    ) -> Result<Arc<Server>, ServerError> {
        Server::with_store_observed(config, store, interfaces, None)
    }

    /// As [`Server::with_store`], showing `observer` (if any) the rows as they are loaded.
    pub fn with_store_observed(
        config: Config,
        store: Arc<dyn LeaseStore>,
        interfaces: &[String],
        observer: Option<&mut dyn LoadObserver>,
    ) -> Result<Arc<Server>, ServerError> {
        // The reservations made at run time join the configuration's before anything reads them.
        let mut config = config;
        let merged = operator::merge_runtime_reservations(&mut config)?;
        if merged > 0 {
            info!(count = merged, "reservations made at run time");
        }
        let server_duid = load_server_duid(&config, store.as_ref(), interfaces)?;
        // Read before the mirror: what other servers commit after it is followed from here.
        let opened_at_seq = store.last_seq()?;
        let mirror = match observer {
            Some(observer) => {
                observer.config(&config);
                LeaseMirror::load_feeding(store.as_ref(), &mut |rows| observer.rows(rows))?
            }
            None => LeaseMirror::load(store.as_ref())?,
        };
        let mut clients = ClientTable {
            limit: config.interface_client_limit,
            per_interface: HashMap::new(),
            line_limit: config.line_client_limit,
            per_line: HashMap::new(),
        };
        if clients.limit.is_some() || clients.line_limit.is_some() {
            let now = unix_now();
            for (interface, line, duid) in mirror.active_clients(now) {
                clients.add(interface, line, duid);
            }
        }
        let mut allocator = Allocator::new(&config);
        if store.is_shared() {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            server_duid.as_bytes().hash(&mut hasher);
            allocator.start_cursors_at(hasher.finish());
        }
        let config = Arc::new(config);
        let state = Arc::new(Mutex::new(DecisionState {
            config: Arc::clone(&config),
            allocator,
            mirror,
            pending: Overlay::default(),
            next_generation: 0,
            clients,
        }));
        let hook_state = Arc::clone(&state);
        let hook: crate::store::DurableHook =
            Box::new(move |changes: &[LeaseChange], versions: &[u64]| {
                let mut state = lock(&hook_state);
                // A deleted row, or one given up (released, declined, reclaimed), may free a slot
                // soon: pools found full are searched again.
                if changes.iter().any(|change| match change {
                    LeaseChange::Delete(_) => true,
                    LeaseChange::Upsert(lease) => lease.state != LeaseState::Assigned,
                    LeaseChange::Renew { .. } => false,
                }) {
                    state.allocator.slots_may_be_free();
                }
                // With a shared store, a change another server made newer meanwhile (the follower
                // has applied it) stays: newest committed row wins.
                state.mirror.apply_versioned(changes, versions);
            });
        let writer_config = WriterConfig {
            history_retention: Some(Duration::from_secs(u64::from(config.history_retention))),
            ..WriterConfig::default()
        };
        let writer = StoreWriter::spawn_with_hook(store.clone(), writer_config, Some(hook))
            .map_err(|source| ServerError::Io {
                context: "starting the lease store writer".into(),
                source,
            })?;
        info!(server_duid = %hex::encode(server_duid.as_bytes()), "server DUID");
        Ok(Arc::new(Server {
            server_duid,
            followed_seq: std::sync::atomic::AtomicU64::new(opened_at_seq),
            publish_order: Mutex::new(()),
            reservation_followers: RwLock::new(Vec::new()),
            client_macs: RwLock::new(None),
            reconfigurer: Arc::default(),
            class_facts: class_facts::ClassFactsTable::default(),
            store,
            writer,
            events: crate::lease_events::channel(),
            state,
            stats: Stats::new(),
            direct_subnets: RwLock::new(HashMap::new()),
            leasequery: RwLock::new(Arc::new(
                crate::leasequery::LeasequerySettings::from_config(&config),
            )),
            leasequery_stats: Arc::new(crate::leasequery::LeasequeryStats::new()),
            interfaces: crate::netif::Interfaces::discover(interfaces),
            config: RwLock::new(config),
        }))
    }

    /// The served interfaces as last read (addresses are read again while serving).
    pub fn interfaces(&self) -> &Arc<crate::netif::Interfaces> {
        &self.interfaces
    }

    /// The configuration served (the one in force now: a reload may swap it).
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.config.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The leasequery settings from the configuration.
    pub fn leasequery_settings(&self) -> Arc<crate::leasequery::LeasequerySettings> {
        Arc::clone(&self.leasequery.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Serves `config` from now on: the decisions' copy, the allocator's pools and
    /// reservations and the client limits' counts are swapped under the decision lock, so no
    /// decision sees half of it; then the copy other readers get, the leasequery settings and
    /// each interface's direct subnet. The caller has checked that `config` may replace the
    /// one served (`crate::reload`): keys that need a restart are unchanged.
    pub fn swap_config(&self, config: Config, interfaces: &[String]) {
        let config = Arc::new(config);
        {
            let mut state = self.lock_state();
            state.allocator.reconfigure(&config);
            let mut clients = ClientTable {
                limit: config.interface_client_limit,
                per_interface: HashMap::new(),
                line_limit: config.line_client_limit,
                per_line: HashMap::new(),
            };
            if clients.limit.is_some() || clients.line_limit.is_some() {
                for (interface, line, duid) in state.mirror.active_clients(unix_now()) {
                    clients.add(interface, line, duid);
                }
            }
            state.clients = clients;
            state.config = Arc::clone(&config);
        }
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = Arc::clone(&config);
        *self.leasequery.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(crate::leasequery::LeasequerySettings::from_config(&config));
        for name in interfaces {
            self.set_direct_subnet(name, io::interface_subnet(&config, name));
        }
    }

    /// Counters of the leasequery TCP service and of peer sync.
    pub fn leasequery_stats(&self) -> &Arc<crate::leasequery::LeasequeryStats> {
        &self.leasequery_stats
    }

    /// Our DUID (Server Identifier).
    pub fn server_duid(&self) -> &Duid {
        &self.server_duid
    }

    /// The lease store (reads).
    pub fn store(&self) -> &Arc<dyn LeaseStore> {
        &self.store
    }

    /// The batching writer in front of the store.
    pub fn writer(&self) -> &StoreWriter {
        &self.writer
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// A new subscription to lease events (each published once durable).
    pub fn subscribe(&self) -> broadcast::Receiver<LeaseEvent> {
        self.events.subscribe()
    }

    /// The sending side of the event channel (to hand to components that subscribe later).
    pub fn events(&self) -> &broadcast::Sender<LeaseEvent> {
        &self.events
    }

    /// Records that clients directly on `interface` belong to subnet index `subnet` (of the
    /// configuration served now).
    pub fn set_direct_subnet(&self, interface: &str, subnet: Option<usize>) {
        let id = subnet.and_then(|index| self.config().subnets.get(index).map(|s| s.id));
        let mut map = self
            .direct_subnets
            .write()
            .unwrap_or_else(|p| p.into_inner());
        match id {
            Some(id) => {
                map.insert(interface.to_string(), id);
            }
            None => {
                map.remove(interface);
            }
        }
    }

    /// Our served interfaces with the subnet id of their direct clients (peer sync maps a
    /// peer's client to our side of its link with it).
    pub fn direct_links(&self) -> Vec<(String, u32)> {
        let map = self
            .direct_subnets
            .read()
            .unwrap_or_else(|p| p.into_inner());
        let mut links: Vec<(String, u32)> = map.iter().map(|(n, id)| (n.clone(), *id)).collect();
        links.sort();
        links
    }

    /// Publishes the events of bindings installed from a redundancy peer (durable already):
    /// kept in the client table like our own (per-interface and per-line limits), broadcast,
    /// but not logged one by one (a full sync installs every binding of the peer).
    pub fn publish_installed(&self, events: Vec<LeaseEvent>) {
        self.publish_with(events, false);
    }

    /// The index in `config` of the subnet of `interface`'s direct clients.
    fn direct_subnet(&self, interface: &str, config: &Config) -> Option<usize> {
        let id = self
            .direct_subnets
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(interface)
            .copied()?;
        config.subnets.iter().position(|s| s.id == id)
    }

    fn lock_state(&self) -> MutexGuard<'_, DecisionState> {
        lock(&self.state)
    }

    /// Handles one datagram; returns the reply to send to `inbound.source`, if any.
    ///
    /// A reply that grants, extends, releases or declines a lease is returned only after the
    /// change is durable. [`Server::begin`] and [`Server::complete`] in one call, waiting on the
    /// writer's answer for this request alone (the socket loop waits for many at once instead).
    pub async fn handle(&self, inbound: &Inbound) -> Option<Vec<u8>> {
        let mut handling = self.begin(inbound, Durability::Own);
        loop {
            match handling {
                Handling::Done(reply) => return reply,
                Handling::Waiting(mut waiting) => {
                    let result = match std::mem::replace(&mut waiting.commit, Commit::Taken) {
                        Commit::Own(pending) => pending.wait().await.map(|_| ()),
                        Commit::Ticket(_) | Commit::Taken => Err(StoreError::WriterStopped),
                    };
                    // A conflict decides again (and waits again); anything else completes.
                    handling = self.settle(waiting, result);
                }
            }
        }
    }

    /// Decides about one datagram. A reply with no lease change is ready at once
    /// ([`Handling::Done`]); one with changes waits for them to be durable
    /// ([`Handling::Waiting`]): they are queued to the writer (as `durability` says) and the
    /// reply is [`Server::complete`]d once their transaction is over.
    pub fn begin(&self, inbound: &Inbound, durability: Durability) -> Handling {
        if inbound.bytes.first() == Some(&dhcp_common::dhcpv6::MSG_LEASEQUERY) {
            return Handling::Done(self.answer_leasequery(inbound));
        }
        // Classified with the configuration in force; should a reload swap it before the
        // decision, the request is classified again with the new one: never dropped for it.
        let mut config = self.config();
        loop {
            let request = match self.classify_with(&config, inbound) {
                Some(request) => request,
                None => return Handling::Done(None),
            };
            match self.decide_and_queue(&config, request, inbound.source, durability, 0) {
                Ok(handling) => return handling,
                Err(stale) => config = stale.0,
            }
        }
    }

    /// Reads direct clients' link-layer addresses from `macs` (the fast path's `CLIENT_MACS`)
    /// from now on.
    pub fn read_client_macs(&self, macs: Arc<crate::fastpath::ClientMacs>) {
        *self.client_macs.write().unwrap_or_else(|e| e.into_inner()) = Some(macs);
    }

    /// The source MAC of `inbound`'s frame: a tagged frame's own; for the kernel socket's
    /// datagram, what the fast path noted for its source on its interface (untagged).
    fn client_mac(&self, inbound: &Inbound) -> Option<[u8; 6]> {
        if let Some(link) = &inbound.link {
            return Some(link.peer_mac);
        }
        let macs = self.client_macs.read().unwrap_or_else(|e| e.into_inner());
        macs.as_ref()?
            .get(inbound.ifindex, 0, 0, *inbound.source.ip())
    }

    /// Classifies `inbound` with `config`, counting what it received (and a drop); `None`:
    /// dropped.
    fn classify_with(&self, config: &Config, inbound: &Inbound) -> Option<handler::Classified> {
        // A tagged frame's link is its VLAN line's (the fast path's `VLANS`), never the NIC's.
        let direct = match &inbound.link {
            Some(link) => {
                let (outer, inner) = link.vlan_ids();
                config.vlan_subnet(&inbound.interface, outer, inner)
            }
            None => self.direct_subnet(&inbound.interface, config),
        };
        let request = match classify(config, inbound, direct) {
            Ok(mut request) => {
                if let Some(mac) = self.client_mac(inbound) {
                    request.learn_link_layer(mac);
                }
                request
            }
            Err(rejected) => {
                if let Some(&msg_type) = inbound.bytes.first() {
                    self.stats.received(msg_type);
                }
                debug!(from = %inbound.source, reason = rejected.reason(), "dropped");
                self.stats.dropped(rejected.reason());
                return None;
            }
        };
        let msg_type = request.message().msg_type;
        self.stats.received(msg_type);
        if let Some(client) = crate::proto::OptionList::client_id(request.message()) {
            self.reconfigurer.client_sent(client.as_bytes(), msg_type);
            self.note_class_facts(config, inbound, &request, client.as_bytes());
        }
        debug!(
            from = %inbound.source,
            interface = %inbound.interface,
            msg = stats::message_type_name(msg_type),
            relayed = request.relayed(),
            subnet = ?request.subnet,
            "received"
        );
        Some(request)
    }

    /// Records what a request that may bind leases judged its client's classes on, where the
    /// fast path follows them (`CLASSES_CHECK`): the binding its answer leads to carries them.
    fn note_class_facts(
        &self,
        config: &Config,
        inbound: &Inbound,
        request: &handler::Classified,
        duid: &[u8],
    ) {
        if config.client_classes.is_empty() {
            return;
        }
        let message = request.message();
        use dhcp_common::dhcpv6::{MSG_REBIND, MSG_RENEW, MSG_REQUEST, MSG_SOLICIT};
        let binds = matches!(
            message.msg_type,
            MSG_SOLICIT | MSG_REQUEST | MSG_RENEW | MSG_REBIND
        );
        let Some(mode) = request.subnet.map(|index| config.fast_path_classes(index)) else {
            return;
        };
        if binds && mode & dhcp_common::CLASSES_CHECK != 0 {
            let relays = request.relays();
            let relays = (mode & dhcp_common::CLASSES_CHECK_RELAYS != 0).then_some(&relays[..]);
            let facts = ClassFacts::of(message, relays, &inbound.interface, inbound.ifindex);
            self.class_facts.record(duid, facts);
        }
    }

    /// What `duid`'s classes were last judged on, if known ([`class_facts`]).
    pub fn class_facts_of(&self, duid: &[u8]) -> Option<Arc<ClassFacts>> {
        self.class_facts.of(duid)
    }

    /// Decides about a request classified with `classified_with` (attempt `attempt`: a retry
    /// after another server took a lease) and queues its changes as [`Server::begin`] says.
    /// `Err`: a reload swapped the configuration since; the request (given back) must be
    /// classified again with the one returned.
    fn decide_and_queue(
        &self,
        classified_with: &Arc<Config>,
        request: handler::Classified,
        source: std::net::SocketAddrV6,
        durability: Durability,
        attempt: usize,
    ) -> Result<Handling, Box<(Arc<Config>, handler::Classified)>> {
        let now = unix_now();
        let mut guard = self.lock_state();
        if !Arc::ptr_eq(classified_with, &guard.config) {
            // Boxed: the rare path (a reload in between) pays the allocation.
            return Err(Box::new((Arc::clone(&guard.config), request)));
        }
        let DecisionState {
            config,
            allocator,
            mirror,
            pending,
            clients,
            ..
        } = &mut *guard;
        let config = Arc::clone(config);
        let view = OverlayView { mirror, pending };
        let input = DecideInput {
            config: &config,
            server_duid: &self.server_duid,
            view: &view,
            clients,
            now,
        };
        let decision = match decide(&input, allocator, &request) {
            Ok(decision) => decision,
            Err(err) => {
                drop(guard);
                warn!(error = %err, "lease store read failed; request dropped");
                self.stats.dropped("store_error");
                return Ok(Handling::Done(None));
            }
        };
        if decision.changes.is_empty() {
            drop(guard);
            return Ok(Handling::Done(self.reply_to(
                &request,
                source,
                decision.outcome,
            )));
        }
        // Still under the lock: commits are queued in the order they were decided. The writer
        // takes the changes; the overlay entries are dropped by their keys.
        let generation = guard.begin(&decision.changes);
        let keys: Vec<LeaseKey> = decision.changes.iter().map(LeaseChange::key).collect();
        let commit = match durability {
            Durability::Own => Commit::Own(self.writer.start_commit(decision.changes)),
            Durability::Ticket => match self.writer.commit_ticket(decision.changes) {
                Ok(ticket) => Commit::Ticket(ticket),
                Err(err) => {
                    guard.finish_keys(keys, generation);
                    drop(guard);
                    log_throttled!(warn, error = %err, "lease commit failed; no reply sent");
                    self.stats.dropped("store_error");
                    return Ok(Handling::Done(None));
                }
            },
        };
        drop(guard);
        Ok(Handling::Waiting(Waiting {
            commit,
            keys,
            generation,
            events: decision.events,
            outcome: decision.outcome,
            request,
            source,
            durability,
            attempt,
            config,
        }))
    }

    /// Settles a request whose transaction is over with `result`: when another server sharing
    /// the database holds one of its leases (`Conflict`), the lease is learnt from the store and
    /// the request decided again (the allocator now sees it taken; the refused address is never
    /// sent), at most `MAX_CONFLICT_RETRIES` times; otherwise [`Server::complete`].
    pub fn settle(&self, waiting: Waiting, result: Result<(), StoreError>) -> Handling {
        if let Err(StoreError::Conflict(keys)) = &result {
            if waiting.attempt < MAX_CONFLICT_RETRIES {
                let attempt = waiting.attempt + 1;
                metrics::counter!("dhcp_lease_conflicts_total").increment(1);
                debug!(
                    ?keys,
                    attempt, "lease held by another server; deciding again"
                );
                self.lock_state()
                    .finish_keys(waiting.keys, waiting.generation);
                self.learn_from_store(keys);
                let mut request = waiting.request;
                let mut config = waiting.config;
                loop {
                    match self.decide_and_queue(
                        &config,
                        request,
                        waiting.source,
                        waiting.durability,
                        attempt,
                    ) {
                        Ok(handling) => return handling,
                        // Reloaded meanwhile: the same subnet (by id) in the new configuration.
                        Err(stale) => {
                            let (newer, mut back) = *stale;
                            back.subnet = back
                                .subnet
                                .and_then(|index| config.subnets.get(index))
                                .and_then(|old| newer.subnets.iter().position(|s| s.id == old.id));
                            request = back;
                            config = newer;
                        }
                    }
                }
            }
        }
        Handling::Done(self.complete(waiting, result))
    }

    /// The reply of a request that waited for its commit, once the transaction is over with
    /// `result`: the in-flight entries dropped, the events published, the reply encoded (none
    /// when the commit failed).
    pub fn complete(&self, waiting: Waiting, result: Result<(), StoreError>) -> Option<Vec<u8>> {
        self.lock_state()
            .finish_keys(waiting.keys, waiting.generation);
        if let Err(err) = result {
            log_throttled!(warn, error = %err, "lease commit failed; no reply sent");
            self.stats.dropped(match err {
                StoreError::Conflict(_) => "lease_conflict",
                _ => "store_error",
            });
            return None;
        }
        self.publish_own(waiting.events);
        self.reply_to(&waiting.request, waiting.source, waiting.outcome)
    }

    /// Counts and encodes the reply (or counts the drop).
    fn reply_to(
        &self,
        request: &handler::Classified,
        to: std::net::SocketAddrV6,
        outcome: Result<crate::proto::Message, &'static str>,
    ) -> Option<Vec<u8>> {
        let reply = match outcome {
            Ok(reply) => reply,
            Err(reason) => {
                debug!(from = %to, reason, "dropped");
                self.stats.dropped(reason);
                return None;
            }
        };
        let reply_type = reply.msg_type;
        match wrap_reply(request, reply) {
            Ok(bytes) => {
                self.stats.sent(reply_type);
                debug!(
                    to = %to,
                    msg = stats::message_type_name(reply_type),
                    len = bytes.len(),
                    "reply"
                );
                Some(bytes)
            }
            Err(err) => {
                warn!(error = %err, "reply does not encode");
                self.stats.dropped("encode_error");
                None
            }
        }
    }

    /// An individual LEASEQUERY (RFC 5007) over UDP: answered from the store by the
    /// leasequery module (which applies `[leasequery] allow`), straight back to the requestor.
    fn answer_leasequery(&self, inbound: &Inbound) -> Option<Vec<u8>> {
        let query = match crate::proto::Message::decode(&inbound.bytes) {
            Ok(query) => query,
            Err(err) => {
                self.stats.received(dhcp_common::dhcpv6::MSG_LEASEQUERY);
                self.stats.dropped(err.reason());
                return None;
            }
        };
        self.stats.received(query.msg_type);
        let reply = crate::leasequery::answer_udp(
            &query,
            *inbound.source.ip(),
            self.store.as_ref(),
            &self.leasequery_settings(),
            &self.server_duid,
            unix_now(),
        );
        let Some(reply) = reply else {
            self.stats.dropped("leasequery_for_another_server");
            return None;
        };
        match reply.encode() {
            Ok(bytes) => {
                self.stats.sent(reply.msg_type);
                debug!(to = %inbound.source, "leasequery reply");
                Some(bytes)
            }
            Err(err) => {
                warn!(error = %err, "leasequery reply does not encode");
                self.stats.dropped("encode_error");
                None
            }
        }
    }

    /// Reads `keys` from the store into the mirror, publishing what changed there (another
    /// server's writes, in a shared database). A row the copy holds as new or newer stays; a
    /// row gone from the store is left to the follower, which reads its removal (with its
    /// version) from the history.
    fn learn_from_store(&self, keys: &[LeaseKey]) {
        let mut rows = Vec::with_capacity(keys.len());
        for key in keys {
            match self.store.get_versioned(key) {
                Ok(Some(row)) => rows.push(row),
                Ok(None) => {}
                Err(err) => {
                    log_throttled!(warn, error = %err, "reading another server's lease failed");
                    return;
                }
            }
        }
        let _order = lock(&self.publish_order);
        let events = {
            let mut state = self.lock_state();
            let transitions: Vec<mirror::Transition> = rows
                .iter()
                .filter_map(|(lease, version)| state.mirror.apply_record(false, lease, *version))
                .collect();
            transition_events(&mut state, transitions)
        };
        self.publish(events);
    }

    /// With a store other servers write too: follows their commits (LISTEN/NOTIFY) into the
    /// mirror and the lease events (so the fast path and leasequery see them) until
    /// `shutdown`. Returns at once for a store only this server writes. Starts with a look at
    /// the history (a follower started again catches up at once); a position the history was
    /// pruned past is made good by reading the whole table ([`Server::resync_from_store`]).
    pub async fn follow_other_servers(
        self: Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), ServerError> {
        if !self.store.is_shared() {
            return Ok(());
        }
        let (tx, mut rx) = tokio::sync::watch::channel(0u64);
        self.store.watch_commits(Box::new(move |seq| {
            // A reconnect (0) makes the follower look: the value only has to change.
            tx.send_modify(|last| {
                *last = if seq == 0 {
                    last.wrapping_add(1)
                } else {
                    seq.max(*last + 1)
                }
            });
            !tx.is_closed()
        }))?;
        rx.mark_changed();
        info!("following other servers' commits on the shared lease database");
        loop {
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return Ok(()) },
                _ = shutdown.changed() => return Ok(()),
            }
            loop {
                let server = Arc::clone(&self);
                let page = tokio::task::spawn_blocking(move || server.follow_one_page())
                    .await
                    .map_err(|err| {
                        ServerError::Config(format!("following other servers: {err}"))
                    })?;
                match page {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(err) => {
                        log_throttled!(warn, error = %err, "following other servers failed; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
        }
    }

    /// Applies the next page of the history after the followed position to the mirror (each
    /// entry only if newer than the row the copy holds), or resyncs when the history was
    /// pruned past that position. True when a full page was read (more may follow).
    fn follow_one_page(&self) -> Result<bool, StoreError> {
        use std::sync::atomic::Ordering;
        let after = self.followed_seq.load(Ordering::Acquire);
        let page = self
            .store
            .changes_since(crate::store::ChangeCursor::AfterSeq(after), FOLLOW_PAGE)?;
        // Read after the page: if nothing past our position had been pruned by then, the
        // page (which starts right after it) missed nothing.
        let pruned = self.store.history_pruned_through()?;
        if pruned > after {
            warn!(
                followed = after,
                pruned_through = pruned,
                "the lease change history was pruned past this server's position; reading the whole table"
            );
            self.resync_from_store()?;
            return Ok(false);
        }
        let Some(last) = page.last().map(|c| c.seq) else {
            return Ok(false);
        };
        let _order = lock(&self.publish_order);
        let events = {
            let mut state = self.lock_state();
            let transitions: Vec<mirror::Transition> = page
                .iter()
                .filter_map(|c| {
                    let deleted = c.kind == crate::store::ChangeKind::Delete;
                    state.mirror.apply_record(deleted, &c.lease, c.seq)
                })
                .collect();
            transition_events(&mut state, transitions)
        };
        self.followed_seq.store(last, Ordering::Release);
        self.publish(events);
        Ok(page.len() == FOLLOW_PAGE)
    }

    /// Reads the whole shared table into the mirror (newest row wins, as always) and publishes
    /// what changed; the followed position moves to where the history stood before the read.
    /// Counted as `pg_follower_resyncs`.
    pub fn resync_from_store(&self) -> Result<(), StoreError> {
        use std::sync::atomic::Ordering;
        let started = std::time::Instant::now();
        let as_of = self.store.last_seq()?;
        let mut rows = Vec::new();
        let mut after: Option<LeaseKey> = None;
        loop {
            let page = self.store.versioned_leases_after(after.as_ref(), 10_000)?;
            let full = page.len() == 10_000;
            after = page.last().map(|(lease, _)| lease.key());
            rows.extend(page);
            if !full {
                break;
            }
        }
        let count = rows.len();
        let _order = lock(&self.publish_order);
        let events = {
            let mut state = self.lock_state();
            let transitions = state.mirror.resync(rows, as_of);
            transition_events(&mut state, transitions)
        };
        self.followed_seq.fetch_max(as_of, Ordering::AcqRel);
        self.stats.lease_database_event("pg_follower_resyncs");
        info!(
            rows = count,
            changed = events.len(),
            seconds = started.elapsed().as_secs_f64(),
            "lease copy read again from the shared table"
        );
        self.publish(events);
        Ok(())
    }

    /// `publish` for the events of this server's own commits: with a shared store, those
    /// another server's newer row has overtaken are left out (see `still_current`).
    fn publish_own(&self, mut events: Vec<LeaseEvent>) {
        if !self.store.is_shared() || events.is_empty() {
            return self.publish(events);
        }
        let _order = lock(&self.publish_order);
        {
            let state = self.lock_state();
            events.retain(|event| still_current(&state.mirror, event));
        }
        self.publish(events);
    }

    /// Logs, counts and broadcasts durable lease events; keeps the client table in step.
    fn publish(&self, events: Vec<LeaseEvent>) {
        self.publish_with(events, true);
    }

    /// [`Server::publish`], each event logged only with `log`.
    fn publish_with(&self, events: Vec<LeaseEvent>, log: bool) {
        if events.is_empty() {
            return;
        }
        let now = unix_now();
        let mut gone: Vec<&Lease> = Vec::new();
        {
            let mut state = self.lock_state();
            for event in &events {
                match event.kind {
                    LeaseEventKind::Granted | LeaseEventKind::Renewed => {
                        let lease = &event.lease;
                        let duid: Arc<[u8]> = Arc::from(lease.duid.as_slice());
                        state
                            .clients
                            .add(&lease.interface, lease.line.as_deref(), &duid);
                    }
                    _ => gone.push(&event.lease),
                }
            }
        }
        // A client without an active lease has no binding to judge its classes for.
        for lease in gone.iter().filter(|_| !self.class_facts.is_empty()) {
            let state = self.lock_state();
            let mut leases = state.mirror.by_duid(&lease.duid, MAX_LEASES_PER_CLIENT);
            if !leases.any(|l| l.is_active(now)) {
                self.class_facts.forget(&lease.duid);
            }
        }
        // A client stops counting against its interface (its line) once it has no active
        // lease there.
        let config = self.config();
        let limit_on = config.interface_client_limit.is_some();
        let line_limit_on = config.line_client_limit.is_some();
        for lease in gone.into_iter().filter(|_| limit_on || line_limit_on) {
            let mut state = self.lock_state();
            let active: Vec<Lease> = state
                .mirror
                .by_duid(&lease.duid, MAX_LEASES_PER_CLIENT)
                .filter(|l| l.is_active(now))
                .collect();
            if !active.iter().any(|l| l.interface == lease.interface) {
                if let Some(set) = state.clients.per_interface.get_mut(&lease.interface) {
                    set.remove(lease.duid.as_slice());
                }
            }
            if let Some(line) = &lease.line {
                if !active.iter().any(|l| l.line.as_ref() == Some(line)) {
                    if let Some(set) = state.clients.per_line.get_mut(&line[..]) {
                        set.remove(lease.duid.as_slice());
                        if set.is_empty() {
                            state.clients.per_line.remove(&line[..]);
                        }
                    }
                }
            }
        }
        for event in events {
            let lease = &event.lease;
            if !log {
                let _ = self.events.send(event);
                continue;
            }
            info!(
                event = event.kind.name(),
                duid = %hex::encode(&lease.duid),
                iaid = lease.iaid,
                lease = %format_lease(lease),
                expires = lease.expire,
                interface = %lease.interface,
                "lease"
            );
            metrics::counter!("dhcp_lease_events_total", "kind" => event.kind.name()).increment(1);
            // No subscribers is fine: the channel is a broadcast, not a queue.
            let _ = self.events.send(event);
        }
    }

    /// `duid`'s durable lease rows (at most `limit`, in the store's key order), read from the
    /// in-memory copy the writer keeps as each batch reaches the disk: what `store().find` by
    /// DUID returns, without a SQLite query on the caller's thread.
    pub fn durable_leases_of(&self, duid: &[u8], limit: usize) -> Vec<Lease> {
        self.lock_state().mirror.by_duid(duid, limit).collect()
    }

    /// Calls `visit` with every durable lease row, in key order, from the in-memory copy of
    /// the store; the decision state stays locked meanwhile (a million rows: about a second),
    /// so this is for the start, before requests are served.
    pub fn each_durable_lease(&self, visit: &mut dyn FnMut(&Lease)) {
        let state = self.lock_state();
        for lease in state.mirror.range_after(None) {
            visit(&lease);
        }
    }

    /// The XDP fast path answered a renewal for `duid`: extend that client's assigned leases of
    /// the given `types` (the IAs the reply covered) to `expires_unix` (with the lifetimes of their subnets), persist through the writer's
    /// batched `submit` (durable within about a second, not awaited), publish `Renewed`.
    ///
    /// Returns how many leases were extended.
    pub fn apply_fast_path_renewal(
        &self,
        duid: &[u8],
        expires_unix: i64,
        types: &[LeaseType],
    ) -> Result<usize, ServerError> {
        // A Renew answered in XDP answers a Reconfigure too.
        self.reconfigurer
            .client_sent(duid, dhcp_common::dhcpv6::MSG_RENEW);
        let leases: Vec<Lease> = self
            .lock_state()
            .mirror
            .by_duid(duid, MAX_LEASES_PER_CLIENT)
            .collect();
        let mut changes = Vec::new();
        let mut events = Vec::new();
        let config = self.config();
        for lease in leases {
            if lease.state != LeaseState::Assigned || !types.contains(&lease.lease_type) {
                continue;
            }
            let Some(subnet) = config.subnet(lease.subnet_id) else {
                continue;
            };
            let cltt = expires_unix - i64::from(subnet.valid_lifetime);
            if cltt <= lease.cltt {
                continue;
            }
            changes.push(LeaseChange::Renew {
                key: lease.key(),
                cltt,
                preferred_lifetime: subnet.preferred_lifetime,
                valid_lifetime: subnet.valid_lifetime,
            });
            let mut renewed = lease;
            renewed.assign(cltt, subnet.preferred_lifetime, subnet.valid_lifetime);
            events.push(LeaseEvent {
                kind: LeaseEventKind::Renewed,
                lease: renewed,
            });
        }
        let count = changes.len();
        if count > 0 {
            self.writer.submit(changes)?;
            for event in events {
                debug!(duid = %hex::encode(&event.lease.duid), lease = %format_lease(&event.lease), "fast-path renewal");
                let _ = self.events.send(event);
            }
        }
        Ok(count)
    }

    /// Reclaims up to `limit` leases whose valid lifetime ended before `now`: they become
    /// `ExpiredReclaimed` (kept for the client's return, given to others after the grace period).
    pub async fn reclaim_expired(&self, now: i64, limit: usize) -> Result<usize, ServerError> {
        let expired = self.store.expired_before(now, limit)?;
        if expired.is_empty() {
            return Ok(0);
        }
        let (changes, events, generation, commit) = {
            let mut state = self.lock_state();
            let mut changes = Vec::new();
            let mut events = Vec::new();
            for mut lease in expired {
                // A request deciding about this lease right now wins; the next tick rechecks.
                if state.pending.contains_key(&lease.key()) {
                    continue;
                }
                lease.state = LeaseState::ExpiredReclaimed;
                changes.push(LeaseChange::Upsert(lease.clone()));
                events.push(LeaseEvent {
                    kind: LeaseEventKind::Expired,
                    lease,
                });
            }
            if changes.is_empty() {
                return Ok(0);
            }
            let generation = state.begin(&changes);
            let commit = self.writer.start_commit(changes.clone());
            (changes, events, generation, commit)
        };
        let count = changes.len();
        let result = commit.wait().await;
        self.lock_state().finish(&changes, generation);
        result?;
        self.publish_own(events);
        Ok(count)
    }

    /// Removes leases (operator `clear`); publishes `Cleared` for each. Returns how many.
    pub async fn clear(&self, selector: &ClearSelector) -> Result<usize, ServerError> {
        let mut total = 0;
        loop {
            let batch: Vec<Lease> = match selector {
                ClearSelector::Duid(duid) => self.store.find(
                    &LeaseFilter::Duid {
                        duid: duid.clone(),
                        iaid: None,
                    },
                    None,
                    1000,
                )?,
                ClearSelector::Address(address) => {
                    let mut leases: Vec<Lease> =
                        self.store.get_by_address(*address)?.into_iter().collect();
                    leases.extend(self.store.find_prefixes_containing(*address)?);
                    leases
                }
                ClearSelector::All => self.store.find(&LeaseFilter::All, None, 1000)?,
            };
            if batch.is_empty() {
                return Ok(total);
            }
            let changes: Vec<LeaseChange> = batch
                .iter()
                .map(|lease| LeaseChange::Delete(lease.key()))
                .collect();
            let (generation, commit) = {
                let mut state = self.lock_state();
                let generation = state.begin(&changes);
                (generation, self.writer.start_commit(changes.clone()))
            };
            let result = commit.wait().await;
            {
                let mut state = self.lock_state();
                state.finish(&changes, generation);
                for lease in &batch {
                    state.allocator.drop_offer(&lease.key());
                }
            }
            result?;
            total += batch.len();
            self.publish_own(
                batch
                    .into_iter()
                    .map(|lease| LeaseEvent {
                        kind: LeaseEventKind::Cleared,
                        lease,
                    })
                    .collect(),
            );
        }
    }

    /// Active leases per subnet and type against the pools' sizes.
    pub fn pool_usage(&self) -> Result<Vec<PoolUsage>, ServerError> {
        let counts = self.store.active_counts(unix_now())?;
        let mut usage = Vec::new();
        for subnet in &self.config().subnets {
            for (lease_type, kind, size) in [
                (
                    LeaseType::Na,
                    "na",
                    subnet
                        .pools
                        .iter()
                        .fold(0u128, |sum, p| sum.saturating_add(p.size())),
                ),
                (
                    LeaseType::Pd,
                    "pd",
                    subnet
                        .pd_pools
                        .iter()
                        .fold(0u128, |sum, p| sum.saturating_add(p.size())),
                ),
            ] {
                if size == 0 {
                    continue;
                }
                let active = counts
                    .iter()
                    .find(|c| c.subnet_id == subnet.id && c.lease_type == lease_type)
                    .map_or(0, |c| c.active);
                usage.push(PoolUsage {
                    subnet_id: subnet.id,
                    prefix: subnet.prefix.to_string(),
                    kind: kind.into(),
                    active,
                    size,
                });
            }
        }
        Ok(usage)
    }

    /// Runs the timers: expired-lease reclaim and offer purge every [`RECLAIM_INTERVAL`], pool
    /// gauges every tick. Ends when `shutdown` resolves.
    pub async fn run_timers(self: Arc<Self>, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(RECLAIM_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let now = unix_now();
            match self.reclaim_expired(now, RECLAIM_BATCH).await {
                Ok(0) => {}
                Ok(count) => debug!(count, "reclaimed expired leases"),
                Err(err) => warn!(error = %err, "reclaiming expired leases failed"),
            }
            self.lock_state().allocator.purge_offers(now);
            if let Ok(usage) = self.pool_usage() {
                for pool in usage {
                    let labels = [
                        ("subnet", pool.subnet_id.to_string()),
                        ("kind", pool.kind.clone()),
                    ];
                    metrics::gauge!("dhcp_pool_active", &labels).set(pool.active as f64);
                    metrics::gauge!("dhcp_pool_size", &labels).set(pool.size as f64);
                    let ratio = if pool.size == 0 {
                        0.0
                    } else {
                        pool.active as f64 / pool.size as f64
                    };
                    metrics::gauge!("dhcp_pool_utilization", &labels).set(ratio);
                }
            }
        }
    }
}

/// Locks a mutex, taking over a poisoned one.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// `addr` for an address lease, `prefix/len` for a delegated prefix.
pub fn format_lease(lease: &Lease) -> String {
    match lease.lease_type {
        LeaseType::Na => lease.address.to_string(),
        LeaseType::Pd => format!("{}/{}", lease.address, lease.prefix_len),
    }
}

/// The configured DUID; else the one kept in the store; else a new one (DUID-LLT from the
/// first interface's MAC, or DUID-UUID when there is none), stored so it survives restarts.
fn load_server_duid(
    config: &Config,
    store: &dyn LeaseStore,
    interfaces: &[String],
) -> Result<Duid, ServerError> {
    if let Some(bytes) = &config.server_duid {
        return Duid::new(bytes.clone()).map_err(|err| ServerError::Duid(err.to_string()));
    }
    // A database other servers share holds no server's DUID: each keeps its own, in its state
    // directory, so that clients (and Renews) tell the servers apart.
    let duid_file = config.state_dir.join(SERVER_DUID_FILE);
    let stored = if store.is_shared() {
        match std::fs::read_to_string(&duid_file) {
            Ok(text) => Some(
                crate::config::parse_hex(text.trim())
                    .map_err(|err| ServerError::Duid(format!("{}: {err}", duid_file.display())))?,
            ),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(ServerError::Io {
                    context: format!("reading {}", duid_file.display()),
                    source,
                })
            }
        }
    } else {
        store.get_meta(META_SERVER_DUID)?
    };
    if let Some(bytes) = stored {
        return Duid::new(bytes).map_err(|err| ServerError::Duid(err.to_string()));
    }
    let mac = interfaces.iter().find_map(|iface| interface_mac(iface));
    let duid = match mac {
        // DUID time: seconds since 2000-01-01 UTC, modulo 2^32.
        Some(mac) => Duid::llt(1, (unix_now() - 946_684_800) as u32, &mac)
            .map_err(|err| ServerError::Duid(err.to_string()))?,
        None => Duid::uuid(rand::random()),
    };
    if store.is_shared() {
        std::fs::write(&duid_file, format!("{}\n", hex::encode(duid.as_bytes()))).map_err(
            |source| ServerError::Io {
                context: format!("writing {}", duid_file.display()),
                source,
            },
        )?;
    } else {
        store.set_meta(META_SERVER_DUID, duid.as_bytes())?;
    }
    Ok(duid)
}

/// The MAC address of `iface` from sysfs, when it has a non-zero one.
fn interface_mac(iface: &str) -> Option<Vec<u8>> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{iface}/address")).ok()?;
    let mac: Vec<u8> = text
        .trim()
        .split(':')
        .map(|byte| u8::from_str_radix(byte, 16))
        .collect::<Result<_, _>>()
        .ok()?;
    (mac.len() == 6 && mac.iter().any(|&b| b != 0)).then_some(mac)
}

#[cfg(test)]
mod tests;

/// The lease events for rows the mirror changed (another server's commits, a resync), with
/// the allocator told of slots that may be free. A row that changed hands first ends the old
/// holder's binding (so that the fast path and leasequery drop it).
fn transition_events(
    state: &mut DecisionState,
    transitions: Vec<mirror::Transition>,
) -> Vec<LeaseEvent> {
    let mut events = Vec::new();
    for (before, after) in transitions {
        match after {
            Some(lease) => {
                if let Some(old) = before
                    .as_ref()
                    .filter(|old| old.duid != lease.duid && old.state == LeaseState::Assigned)
                {
                    let mut gone = old.clone();
                    gone.state = LeaseState::Released;
                    events.push(LeaseEvent {
                        kind: LeaseEventKind::Released,
                        lease: gone,
                    });
                }
                let kind = match lease.state {
                    LeaseState::Assigned
                        if before.as_ref().is_some_and(|k| {
                            k.duid == lease.duid && k.state == LeaseState::Assigned
                        }) =>
                    {
                        LeaseEventKind::Renewed
                    }
                    LeaseState::Assigned => LeaseEventKind::Granted,
                    LeaseState::Released => LeaseEventKind::Released,
                    LeaseState::Declined => LeaseEventKind::Declined,
                    LeaseState::ExpiredReclaimed => LeaseEventKind::Expired,
                };
                if lease.state != LeaseState::Assigned {
                    state.allocator.slots_may_be_free();
                }
                events.push(LeaseEvent { kind, lease });
            }
            None => {
                state.allocator.slots_may_be_free();
                if let Some(lease) = before {
                    events.push(LeaseEvent {
                        kind: LeaseEventKind::Cleared,
                        lease,
                    });
                }
            }
        }
    }
    events
}

/// Whether an event of this server's own commit still tells the truth once it is durable (a
/// shared store: another server may have committed a newer row for its key meanwhile, which
/// the follower has applied and published). It does when the copy holds its lease as is; an
/// event that the client gave the lease up stays true while the client does not hold it again.
/// Any other is stale: the newer row's own event says what is.
fn still_current(mirror: &LeaseMirror, event: &LeaseEvent) -> bool {
    let held = mirror.get(&event.lease.key());
    if held.as_ref() == Some(&event.lease) {
        return true;
    }
    let gives_up = matches!(
        event.kind,
        LeaseEventKind::Released
            | LeaseEventKind::Declined
            | LeaseEventKind::Expired
            | LeaseEventKind::Cleared
    );
    gives_up && held.is_none_or(|row| row.duid != event.lease.duid)
}
