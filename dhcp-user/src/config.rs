//! Server configuration: a TOML file with kebab-case keys, checked as a whole before use.
//!
//! Parse errors (bad syntax, wrong types, unknown keys, unparsable addresses) name the file, the
//! line and column and the key; semantic errors (a pool outside its subnet, overlapping pools,
//! a duplicate reservation, ...) name the file, the key path (`subnet[0].pools[1].low`) and the
//! line of the offending value.
//!
//! ```toml
//! server-duid = "000100012c3b5f6e020000000001"   # optional; else generated once and kept
//! state-dir = "/var/lib/dhcp-user"
//! interfaces = ["eth1"]
//! interface-client-limit = 1000                   # optional
//! line-identity = "remote-id"                     # optional: what names a subscriber's line
//! line-client-limit = 1                           # optional, with line-identity
//! line-pass-budget = 20                           # optional: fast-path admission per line
//! line-pass-burst = 40                            # optional, default line-pass-budget
//! grace-period = 3600                              # default 3600 s
//! history-retention = 86400                        # change history kept, default a day
//! max-lease-time = 86400                           # optional cap on every lifetime
//!
//! [metrics]
//! listen = "127.0.0.1:9547"
//!
//! [lease-database]                                # optional; default: SQLite in state-dir
//! type = "postgresql"                             # "sqlite" (default) or "postgresql"
//! url = "postgresql://dhcp@127.0.0.1:5432/dhcp"   # or host, port, user, dbname:
//! password-file = "/etc/dhcp-user/pgpass"          # optional; its first line is the password
//! sslmode = "verify-full"                         # disable/prefer (default)/require/verify-ca/verify-full
//! ssl-ca = "/etc/dhcp-user/pg-ca.pem"              # the CA signing the database's certificate
//!
//! [leasequery]
//! allow = ["2001:db8:1::/64"]
//! listen = ["[::]:547"]                           # TCP (bulk/active); default [::]:547
//! active = true                                   # serve active leasequery (default off)
//! tls-certificate = "/etc/dhcp-user/a.pem"        # TLS (RFC 7653 §5.2): our chain ...
//! tls-private-key = "/etc/dhcp-user/a.key"        # ... its key ...
//! tls-ca = "/etc/dhcp-user/ca.pem"                # ... and who signs peers and requestors
//! tls-required = true                             # no query in the clear (default false)
//! peers = ["[2001:db8:1::3]:547"]                 # redundancy: follow this server's bindings
//! pool-half = "lower"                              # with peers: allocate from this half only
//!
//! [routes]                                      # BNG role: a route per delegated prefix
//! enabled = true                                  # default off
//! table = 254                                     # default the main table
//! protocol = 200                                  # our routes' `proto` (default 200)
//! metric = 1024                                   # default 1024
//! addresses = false                               # IA_NA /128 routes too (default off)
//!
//! [[subnet]]
//! id = 1
//! prefix = "2001:db8:1::/64"
//! interfaces = ["eth1", "eth1.1??"]              # an interface group (or `interface = "eth1"`)
//! shared-network = "campus"                       # optional: subnets of one link, tried in order
//! pools = [{ low = "2001:db8:1::1000", high = "2001:db8:1::ffff" }]
//! pd-pools = [{ prefix = "2001:db8:8000::/40", delegated-length = 56 }]
//! reservations = [{ remote-id = { enterprise = 3561, id = "aa01" }, prefix = "2001:db8:9::/56" }]
//! ```

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ipnet::Ipv6Net;
use serde::{Deserialize, Deserializer};
use toml::Spanned;

mod api;
pub mod classes;
mod reconfigure;
mod vlans;
use crate::options::{ConfiguredOption, PdExclude};
pub use api::{parse_duration, ApiConfig, ApiToken, LeaseLogConfig};
pub use reconfigure::{ReconfigureConfig, ReconfigureMessage, DEFAULT_RECONFIGURE_RATE};
pub use vlans::VlanLines;

/// Default directory of the lease database and the control socket.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/dhcp-user";
/// Default grace period (seconds) before a released or expired lease goes to another client.
pub const DEFAULT_GRACE_PERIOD: u32 = 3600;
/// Default time (seconds) a declined address is kept out of use.
pub const DEFAULT_DECLINE_PROBATION: u32 = 86400;
/// Default time (seconds) the store keeps its change history (what leasequery catch-ups read).
pub const DEFAULT_HISTORY_RETENTION: u32 = 86400;
/// The shortest change history allowed (seconds): the history is pruned once a minute.
pub const MIN_HISTORY_RETENTION: u32 = 60;
/// Default preferred lifetime of a subnet (seconds).
pub const DEFAULT_PREFERRED_LIFETIME: u32 = 3600;
/// Default valid lifetime of a subnet (seconds).
pub const DEFAULT_VALID_LIFETIME: u32 = 7200;

/// An error in a configuration file, naming where it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, a wrong type, an unknown key or a value that does not parse.
    #[error("config file {path}{}: {}{}{}", at(.location.line, .location.column), key_part(&.location.key), .location.message, snippet(.location.line, &.location.text))]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where and what.
        location: Box<ParseLocation>,
    },
    /// A value that parses but does not make sense with the rest.
    #[error("config file {path}{}: key `{key}`: {message}", at(*.line, None))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line of the offending value, when known.
        line: Option<usize>,
        /// Path of the key (`subnet[0].pools[1].low`).
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// Where a parse error is and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseLocation {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The key the value belongs to, when it can be told.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
    /// The offending line's text.
    pub text: Option<String>,
}

fn at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(line), Some(column)) => format!(", line {line}, column {column}"),
        (Some(line), None) => format!(", line {line}"),
        _ => String::new(),
    }
}

fn key_part(key: &Option<String>) -> String {
    key.as_ref()
        .map(|key| format!("key `{key}`: "))
        .unwrap_or_default()
}

fn snippet(line: Option<usize>, text: &Option<String>) -> String {
    match (line, text) {
        (Some(line), Some(text)) => format!("\n  {line} | {text}"),
        _ => String::new(),
    }
}

/// The whole, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The server DUID from the file; `None`: generate one once and keep it in the store.
    pub server_duid: Option<Vec<u8>>,
    /// Lease database and control socket directory.
    pub state_dir: PathBuf,
    /// The group allowed to use the control socket (mode 0660); `None`: its owner only (0600).
    pub control_socket_group: Option<String>,
    /// Interfaces served (UDP 547 on each).
    pub interfaces: Vec<String>,
    /// New clients per interface beyond this are refused (existing ones keep renewing).
    pub interface_client_limit: Option<u32>,
    /// Which relay-supplied identity names a client's line (access port, subscriber): what
    /// `line-client-limit` counts by and sticky delegation follows. `None`: no line identity.
    pub line_identity: Option<LineKind>,
    /// New clients per line beyond this are refused (clients with a binding keep renewing).
    pub line_client_limit: Option<u32>,
    /// Sticky delegation by line: a new DUID on a line gets the line's previous lease back.
    pub line_sticky: bool,
    /// Messages per second each line (a direct client's interface and VLANs, a relay's
    /// Interface-ID or Remote-ID) may have the fast path pass on to the controller; beyond it
    /// they are dropped and counted (`drop_line_budget`). 0: no admission per line.
    pub line_pass_budget: u32,
    /// How many messages a line may pass on at once above its steady rate (default
    /// `line_pass_budget`, one second's worth).
    pub line_pass_burst: u32,
    /// Seconds after expiry (or release) before a lease's address/prefix goes to another client.
    pub grace_period: u32,
    /// Cap on every preferred/valid lifetime handed out, seconds.
    pub max_lease_time: Option<u32>,
    /// Seconds a declined address stays out of use.
    pub decline_probation: u32,
    /// Seconds the store keeps each lease change in its history (leasequery catch-ups).
    pub history_retention: u32,
    /// Prometheus listener.
    pub metrics: Option<MetricsConfig>,
    /// Where the leases are kept.
    pub lease_database: LeaseDatabase,
    /// Leasequery access (RFC 5007/5460).
    pub leasequery: LeasequeryConfig,
    /// `[api]`: the HTTP JSON API, when configured.
    pub api: Option<ApiConfig>,
    /// `[lease-log]`: the forensic lease log, when configured.
    pub lease_log: Option<LeaseLogConfig>,
    /// Routes to the clients' delegated prefixes (`[routes]`, the BNG role).
    pub routes: RoutesConfig,
    /// `[reconfigure]`: reconfigure keys and Reconfigure messages (RFC 8415 section 18.3.11).
    pub reconfigure: ReconfigureConfig,
    /// The subnets, in file order.
    pub subnets: Vec<Subnet>,
    /// The client classes (`[[client-classes]]`), in file order: [`classes`].
    pub client_classes: Vec<classes::ClientClass>,
    /// Global options (`[[option]]`), the least specific level.
    pub options: Vec<ConfiguredOption>,
}

/// `[routes]`: a kernel route per delegated prefix (and per address with `addresses`), via
/// the client's link-local address on the interface its request came in on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutesConfig {
    /// Install routes at all (default off).
    pub enabled: bool,
    /// The routing table (default 254, main).
    pub table: u32,
    /// The route protocol number marking our routes (`proto`); the start-up re-sync removes
    /// the routes of this protocol in `table` that no lease stands for.
    pub protocol: u8,
    /// The routes' metric (priority).
    pub metric: u32,
    /// A /128 route per IA_NA address too.
    pub addresses: bool,
}

/// Default `[routes] protocol`: unassigned in the kernel's and iproute2's lists (16, `dhcp`,
/// is what DHCP clients mark their routes with: a re-sync must not take those).
pub const DEFAULT_ROUTE_PROTOCOL: u8 = 200;
/// Default `[routes] metric`, the kernel's own default for IPv6 routes.
pub const DEFAULT_ROUTE_METRIC: u32 = 1024;
/// Default `[routes] table`: main.
pub const DEFAULT_ROUTE_TABLE: u32 = 254;

impl Default for RoutesConfig {
    fn default() -> Self {
        RoutesConfig {
            enabled: false,
            table: DEFAULT_ROUTE_TABLE,
            protocol: DEFAULT_ROUTE_PROTOCOL,
            metric: DEFAULT_ROUTE_METRIC,
            addresses: false,
        }
    }
}

/// `[lease-database]`: where the leases are kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum LeaseDatabase {
    /// The SQLite file `leases.db` in the state directory (the default).
    #[default]
    Sqlite,
    /// A PostgreSQL database, which several servers may share.
    Postgresql(PostgresConfig),
}

/// `[lease-database] type = "postgresql"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// The connection string: `url` as written, or `key=value` pairs made from host, port,
    /// user and dbname.
    pub conninfo: String,
    /// A file whose first line is the password (kept out of the configuration file).
    pub password_file: Option<PathBuf>,
    /// TLS to the database: `sslmode` and `ssl-ca` (or the URL's `sslmode`, `sslrootcert`).
    pub tls: crate::store::pg_tls::PgTls,
}

impl PostgresConfig {
    /// The password from `password-file`, if one is set.
    pub fn password(&self) -> Result<Option<String>, String> {
        let Some(path) = &self.password_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|err| format!("[lease-database] password-file {}: {err}", path.display()))?;
        Ok(Some(text.lines().next().unwrap_or("").to_owned()))
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Address of the Prometheus HTTP listener.
    pub listen: SocketAddr,
}

/// `[leasequery]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasequeryConfig {
    /// Requesters allowed to query (by source address); empty means nobody.
    pub allow: Vec<Ipv6Net>,
    /// Restricted-requestor mode: a requestor sees only bindings whose Relay-ID is its own.
    pub restricted_requestors: bool,
    /// Whether ACTIVELEASEQUERY is served (else NotSupported). Off by default (RFC 7653 §9.1).
    pub active: bool,
    /// The separate step RFC 7653 §9.1 asks for before active leasequery runs without TLS:
    /// without `tls`, `active` requires it; with `tls`, it lets active queries run in the
    /// clear too.
    pub active_insecure: bool,
    /// Concurrent TCP sessions at most.
    pub max_connections: usize,
    /// Concurrent TCP sessions from one source address at most, so that one requestor (or a
    /// loop in it) cannot take every slot of `max_connections`.
    pub max_connections_per_source: usize,
    /// Seconds a TCP session may stay without a query.
    pub idle_timeout: u32,
    /// Seconds between keepalives on an active leasequery without other traffic; a follower
    /// of a peer gives up on a session after three of them without a message.
    pub keepalive_interval: u32,
    /// Seconds a started frame may take to arrive, and a write to complete.
    pub io_timeout: u32,
    /// TCP listeners (bulk and active leasequery). Opened only when someone may use them
    /// (`allow` or `peers` not empty).
    pub listen: Vec<SocketAddr>,
    /// Peer servers whose bindings this server follows by active leasequery (redundancy).
    pub peers: Vec<SocketAddr>,
    /// With peers: the half of every pool this server allocates from, so that the two never
    /// grant the same address (both keep serving renewals of the whole pool).
    pub pool_half: Option<PoolHalf>,
    /// TLS for the TCP service and the peer sessions (RFC 7653 §5.2); `None`: none.
    pub tls: Option<LeasequeryTls>,
}

/// The `tls-*` keys of `[leasequery]`, their files read and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeasequeryTls {
    /// `tls-certificate`: our chain (PEM, end entity first), served to requestors and
    /// presented to peers.
    pub certificate: PathBuf,
    /// `tls-private-key`: its key (PEM).
    pub private_key: PathBuf,
    /// `tls-ca`: the trust anchors (PEM) that requestors' and peers' certificates must chain
    /// to.
    pub ca: Option<PathBuf>,
    /// The chain and key, loaded.
    pub identity: crate::tls::Identity,
    /// The trust anchors, loaded (empty without `tls-ca`).
    pub anchors: Vec<rustls::pki_types::CertificateDer<'static>>,
    /// `tls-required`: a query in the clear is refused (TLSConnectionRefused) and the
    /// connection closed.
    pub required: bool,
    /// `tls-require-client-certificate`: whether a TLS requestor must present a certificate
    /// signed by `tls-ca` (mutual TLS), or may come without one.
    pub client_certificates: crate::tls::ClientCertificates,
    /// `tls-peer-name`: the name the peers' certificates must carry; `None`: each peer's IP
    /// address, as an IP SAN.
    pub peer_name: Option<String>,
}

impl Default for LeasequeryConfig {
    fn default() -> Self {
        LeasequeryConfig {
            allow: Vec::new(),
            restricted_requestors: false,
            active: false,
            active_insecure: false,
            max_connections: DEFAULT_LQ_MAX_CONNECTIONS,
            max_connections_per_source: DEFAULT_LQ_MAX_CONNECTIONS_PER_SOURCE,
            idle_timeout: DEFAULT_LQ_IDLE_TIMEOUT,
            keepalive_interval: DEFAULT_LQ_KEEPALIVE_INTERVAL,
            io_timeout: DEFAULT_LQ_IO_TIMEOUT,
            listen: vec![default_lq_listen()],
            peers: Vec::new(),
            pool_half: None,
            tls: None,
        }
    }
}

impl LeasequeryConfig {
    /// Whether the TCP listeners open: someone may query, or a peer follows us.
    pub fn serves_tcp(&self) -> bool {
        !self.allow.is_empty() || !self.peers.is_empty()
    }
}

/// Which half of every pool (address ranges and PD pools) a server of a redundant pair
/// allocates new leases from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolHalf {
    /// The first half of the slots (rounded up).
    Lower,
    /// The rest.
    Upper,
}

impl PoolHalf {
    /// The slots `first..first + count` of a pool of `size` slots that this half owns.
    pub fn slots(self, size: u128) -> (u128, u128) {
        let lower = size - size / 2;
        match self {
            PoolHalf::Lower => (0, lower),
            PoolHalf::Upper => (lower, size - lower),
        }
    }
}

/// Concurrent leasequery TCP sessions by default.
pub const DEFAULT_LQ_MAX_CONNECTIONS: usize = 32;
/// Concurrent leasequery TCP sessions from one source address by default (a peer needs one; a
/// requestor's bulk queries a few).
pub const DEFAULT_LQ_MAX_CONNECTIONS_PER_SOURCE: usize = 8;
/// Leasequery idle timeout by default, seconds.
pub const DEFAULT_LQ_IDLE_TIMEOUT: u32 = 120;
/// Keepalive interval of active leasequery by default, seconds.
pub const DEFAULT_LQ_KEEPALIVE_INTERVAL: u32 = 5;
/// Leasequery I/O timeout by default, seconds.
pub const DEFAULT_LQ_IO_TIMEOUT: u32 = 10;

fn default_lq_listen() -> SocketAddr {
    SocketAddr::from((Ipv6Addr::UNSPECIFIED, 547))
}

/// One `[[subnet]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Subnet {
    /// Stable number, kept on every lease (`subnet_id`).
    pub id: u32,
    /// True when the file gives `id`; else `id` is the position in the file until the state
    /// directory's record of ids by prefix says otherwise (`crate::subnet_ids`).
    pub explicit_id: bool,
    /// The link's prefix.
    pub prefix: Ipv6Net,
    /// The interfaces whose direct clients use this subnet (names, or patterns with `*` and `?`:
    /// an interface group); empty: matched by interface address.
    pub interfaces: Vec<String>,
    /// The shared network the subnet belongs to: subnets of one link, tried in file order when
    /// a pool is exhausted.
    pub shared_network: Option<String>,
    /// IA_NA address ranges.
    pub pools: Vec<AddressPool>,
    /// IA_PD pools.
    pub pd_pools: Vec<PdPool>,
    /// Preferred lifetime handed out, seconds (already capped by `max-lease-time`).
    pub preferred_lifetime: u32,
    /// Valid lifetime handed out, seconds (already capped by `max-lease-time`).
    pub valid_lifetime: u32,
    /// T1, seconds.
    pub renew_timer: u32,
    /// T2, seconds.
    pub rebind_timer: u32,
    /// A Solicit with Rapid Commit gets a committed Reply straight away.
    pub rapid_commit: bool,
    /// Clients sending Reconfigure Accept get a reconfigure key (and may be sent Reconfigure).
    pub reconfigure: bool,
    /// Preference option value in Advertise, when set.
    pub preference: Option<u8>,
    /// OPTION_DNS_SERVERS.
    pub dns_servers: Vec<Ipv6Addr>,
    /// OPTION_DOMAIN_LIST, as written (validated domain names).
    pub domain_search: Vec<String>,
    /// OPTION_INFORMATION_REFRESH_TIME in replies to Information-Request.
    pub information_refresh_time: Option<u32>,
    /// The global options merged with the subnet's own (`[[subnet.option]]`, and the three keys
    /// above as options 23, 24, 32), in code order: what a client of the subnet gets.
    pub options: Vec<ConfiguredOption>,
    /// Each pool's own options (parallel to `pools`): for a client holding one of its addresses.
    pub pool_options: Vec<Vec<ConfiguredOption>>,
    /// Each pd-pool's own options (parallel to `pd_pools`).
    pub pd_pool_options: Vec<Vec<ConfiguredOption>>,
    /// Each pool's `client-classes` (by index into `pools`): `None` serves every client.
    pub pool_classes: Vec<Option<classes::ClassSet>>,
    /// Each pd-pool's `client-classes` (by index into `pd_pools`).
    pub pd_pool_classes: Vec<Option<classes::ClassSet>>,
    /// Host reservations by DUID.
    pub reservations: Vec<Reservation>,
    /// Relayed clients whose relay sent one of these Interface-IDs (option 18, the bytes of the
    /// string) use this subnet, before any link-address rule.
    pub relay_interface_ids: Vec<Vec<u8>>,
    /// Relayed clients whose relay has one of these addresses (the Relay-Forw's source, or the
    /// next relay out's peer-address) use this subnet, after Interface-IDs, before link-addresses.
    pub relay_addresses: Vec<Ipv6Addr>,
    /// VLAN lines (interface, S-VLAN and C-VLAN ranges) whose direct clients use this subnet,
    /// tagged frames with no kernel VLAN interface (`vlans`).
    pub vlans: Vec<VlanLines>,
}

/// An IA_NA range, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressPool {
    /// First address.
    pub low: Ipv6Addr,
    /// Last address.
    pub high: Ipv6Addr,
}

impl AddressPool {
    /// Number of addresses in the range.
    pub fn size(&self) -> u128 {
        (u128::from(self.high) - u128::from(self.low)).saturating_add(1)
    }

    /// True if `address` is in the range.
    pub fn contains(&self, address: Ipv6Addr) -> bool {
        self.low <= address && address <= self.high
    }
}

/// An IA_PD pool: `prefix` cut into `/delegated_length` pieces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdPool {
    /// The pool.
    pub prefix: Ipv6Net,
    /// Length of each delegated prefix.
    pub delegated_length: u8,
    /// Prefix Exclude (RFC 6603, `excluded-prefix`): sent inside each IAPREFIX of the pool to a
    /// client whose ORO asks for OPTION_PD_EXCLUDE (67).
    pub exclude: Option<PdExclude>,
}

impl PdPool {
    /// Number of delegable prefixes.
    pub fn size(&self) -> u128 {
        let bits = u32::from(self.delegated_length - self.prefix.prefix_len());
        1u128.checked_shl(bits).unwrap_or(u128::MAX)
    }

    /// True if `prefix/len` is one of this pool's delegable prefixes.
    pub fn holds(&self, prefix: Ipv6Addr, len: u8) -> bool {
        len == self.delegated_length
            && self.prefix.contains(&prefix)
            && crate::store::mask(prefix, len) == prefix
    }
}

/// A host reservation: this client (by DUID, or by its line) always gets this address and/or
/// prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// Who the reservation is for.
    pub client: ReservedClient,
    /// Its IA_NA address.
    pub address: Option<Ipv6Addr>,
    /// Its IA_PD prefix.
    pub prefix: Option<Ipv6Net>,
    /// Its own options, the most specific level.
    pub options: Vec<ConfiguredOption>,
}

/// Who a reservation is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ReservedClient {
    /// The client with this DUID.
    Duid(Vec<u8>),
    /// Whichever client comes from this line (a relay-supplied identity).
    Line(LineId),
}

impl ReservedClient {
    /// The DUID, for a reservation by DUID.
    pub fn duid(&self) -> Option<&[u8]> {
        match self {
            ReservedClient::Duid(duid) => Some(duid),
            ReservedClient::Line(_) => None,
        }
    }
}

/// The relay-supplied identities a line can be known by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LineKind {
    /// Interface-ID (18, RFC 8415): the relay's name for the port.
    InterfaceId,
    /// Remote-ID (37, RFC 4649): enterprise number and the id.
    RemoteId,
    /// Subscriber-ID (38, RFC 4580).
    SubscriberId,
    /// Client Link-Layer Address (79, RFC 6939): link-layer type and address; a direct
    /// client's is taken from its frame (the fast path's `CLIENT_MACS`).
    ClientLinklayerAddress,
}

impl LineKind {
    /// The key naming it in the configuration.
    pub fn key(self) -> &'static str {
        match self {
            LineKind::InterfaceId => "interface-id",
            LineKind::RemoteId => "remote-id",
            LineKind::SubscriberId => "subscriber-id",
            LineKind::ClientLinklayerAddress => "client-linklayer-address",
        }
    }

    /// One byte naming the kind where a line identity is stored.
    pub fn tag(self) -> u8 {
        match self {
            LineKind::InterfaceId => 1,
            LineKind::RemoteId => 2,
            LineKind::SubscriberId => 3,
            LineKind::ClientLinklayerAddress => 4,
        }
    }
}

/// One line identity: its kind and the option's body as the relay sends it (Remote-ID: the
/// enterprise number then the id; client link-layer address: the type then the address).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LineId {
    /// Which option.
    pub kind: LineKind,
    /// The option's body.
    pub value: Vec<u8>,
}

impl LineId {
    /// The line of a stored form ([`LineId::stored`]); `None` for an unknown tag.
    pub fn from_stored(stored: &[u8]) -> Option<LineId> {
        let (&tag, value) = stored.split_first()?;
        let kind = [
            LineKind::InterfaceId,
            LineKind::RemoteId,
            LineKind::SubscriberId,
            LineKind::ClientLinklayerAddress,
        ]
        .into_iter()
        .find(|kind| kind.tag() == tag)?;
        Some(LineId {
            kind,
            value: value.to_vec(),
        })
    }

    /// The form kept with a lease (the `line` column): the kind's tag, then the value.
    pub fn stored(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(1 + self.value.len());
        bytes.push(self.kind.tag());
        bytes.extend_from_slice(&self.value);
        bytes
    }
}

impl fmt::Display for LineId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.key(), hex::encode(&self.value))
    }
}

/// True if interface `name` matches `pattern`: `*` any run of characters, `?` one character,
/// anything else itself.
pub fn interface_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

/// True if `name` contains a pattern character.
pub fn is_interface_pattern(name: &str) -> bool {
    name.contains(['*', '?'])
}

impl Subnet {
    /// True if direct clients on `interface` use this subnet by its `interfaces` key.
    pub fn serves_interface(&self, interface: &str) -> bool {
        self.interfaces
            .iter()
            .any(|pattern| interface_matches(pattern, interface))
    }
}

impl Config {
    /// The subnets tried, in order, for a client that `subnet` (an index) serves: the subnet
    /// itself first, then the rest of its shared network in file order.
    pub fn shared_with(&self, subnet: usize) -> Vec<usize> {
        let mut order = vec![subnet];
        if let Some(name) = &self.subnets[subnet].shared_network {
            order.extend(
                self.subnets
                    .iter()
                    .enumerate()
                    .filter(|(i, s)| *i != subnet && s.shared_network.as_ref() == Some(name))
                    .map(|(i, _)| i),
            );
        }
        order
    }

    /// True when some reservation is by line.
    pub fn reserves_by_line(&self) -> bool {
        self.subnets.iter().any(|s| {
            s.reservations
                .iter()
                .any(|r| matches!(r.client, ReservedClient::Line(_)))
        })
    }

    /// True when some subnet is selected by its relays' Interface-IDs.
    pub fn selects_by_relay_interface_id(&self) -> bool {
        self.subnets
            .iter()
            .any(|s| !s.relay_interface_ids.is_empty())
    }

    /// The subnet of direct clients whose frames came in on `interface` with these VLAN IDs (0:
    /// no such tag), by the subnets' `vlans`; the fast path finds the same one in `VLANS`.
    pub fn vlan_subnet(&self, interface: &str, outer: u16, inner: u16) -> Option<usize> {
        self.subnets
            .iter()
            .position(|s| s.vlans.iter().any(|l| l.contains(interface, outer, inner)))
    }

    /// True when some subnet names VLAN lines on `interface`.
    pub fn has_vlan_lines(&self, interface: &str) -> bool {
        self.subnets
            .iter()
            .any(|s| s.vlans.iter().any(|l| l.on(interface)))
    }

    /// True when some subnet is selected by its relays' addresses.
    pub fn selects_by_relay_address(&self) -> bool {
        self.subnets.iter().any(|s| !s.relay_addresses.is_empty())
    }

    /// Reads and validates `path`.
    pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Only the state directory of the configuration at `path` (the default when it names
    /// none): what `bindings`, `stats` and `clear` need to find the control socket. The file's
    /// syntax is checked, the rest is not validated, and no file it names is read, so an
    /// operator who may use the control socket needs no access to the server's TLS key.
    pub fn load_state_dir(path: impl AsRef<Path>) -> Result<PathBuf, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let raw: RawConfig = toml::from_str(&text).map_err(|err| parse_error(path, &text, &err))?;
        Ok(raw
            .state_dir
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)))
    }

    /// Parses and validates `text`; `path` names it in errors.
    pub fn parse(text: &str, path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let raw: RawConfig = toml::from_str(text).map_err(|err| parse_error(path, text, &err))?;
        Validator { path, text }.validate(raw)
    }

    /// The subnet with this id.
    pub fn subnet(&self, id: u32) -> Option<&Subnet> {
        self.subnets.iter().find(|subnet| subnet.id == id)
    }
}

fn parse_error(path: &Path, text: &str, err: &toml::de::Error) -> ConfigError {
    let (line, column, key, line_text) = match err.span() {
        Some(span) => {
            let (line, column) = line_col(text, span.start);
            (
                Some(line),
                Some(column),
                key_before(text, span.start),
                text.lines().nth(line - 1).map(str::to_string),
            )
        }
        None => (None, None, None, None),
    };
    ConfigError::Parse {
        path: path.to_path_buf(),
        location: Box::new(ParseLocation {
            line,
            column,
            key,
            message: err.message().trim_end().to_string(),
            text: line_text,
        }),
    }
}

/// 1-based (line, column) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = offset
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    (line, column)
}

/// The key whose value starts at `offset` (`key = value`), or the key at `offset` itself (an
/// unknown key is reported with the span of the key).
fn key_before(text: &str, offset: usize) -> Option<String> {
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    let head = text.get(..offset)?;
    let trimmed = head.trim_end_matches([' ', '\t']);
    if let Some(before_eq) = trimmed.strip_suffix('=') {
        let before_eq = before_eq.trim_end_matches([' ', '\t']);
        // After the last character that cannot be in a key (which may be several bytes long:
        // a byte-order mark, any non-ASCII character).
        let start = before_eq
            .char_indices()
            .rev()
            .find(|&(_, c)| !is_key_char(c) && c != '.' && c != '"')
            .map_or(0, |(p, c)| p + c.len_utf8());
        let key = before_eq[start..].trim_matches('"');
        return (!key.is_empty()).then(|| key.to_string());
    }
    let rest = text.get(offset..)?;
    let end = rest.find(|c: char| !is_key_char(c)).unwrap_or(rest.len());
    (end > 0).then(|| rest[..end].to_string())
}

// ---- raw, as written ----

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawConfig {
    server_duid: Option<Spanned<HexBytes>>,
    state_dir: Option<PathBuf>,
    control_socket_group: Option<Spanned<String>>,
    #[serde(default)]
    interfaces: Vec<String>,
    interface_client_limit: Option<u32>,
    line_identity: Option<Spanned<LineKind>>,
    line_client_limit: Option<Spanned<u32>>,
    line_sticky: Option<Spanned<bool>>,
    line_pass_budget: Option<u32>,
    line_pass_burst: Option<Spanned<u32>>,
    grace_period: Option<u32>,
    max_lease_time: Option<Spanned<u32>>,
    decline_probation: Option<u32>,
    history_retention: Option<Spanned<u32>>,
    metrics: Option<RawMetrics>,
    lease_database: Option<RawLeaseDatabase>,
    leasequery: Option<RawLeasequery>,
    api: Option<api::RawApi>,
    lease_log: Option<api::RawLeaseLog>,
    routes: Option<RawRoutes>,
    reconfigure: Option<reconfigure::RawReconfigure>,
    #[serde(default)]
    subnet: Vec<RawSubnet>,
    #[serde(default)]
    option: Vec<options::RawOption>,
    #[serde(default)]
    client_classes: Vec<classes::parse::RawClientClass>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawRoutes {
    enabled: Option<bool>,
    table: Option<Spanned<u32>>,
    protocol: Option<Spanned<u8>>,
    metric: Option<u32>,
    addresses: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawLeaseDatabase {
    #[serde(rename = "type")]
    kind: Option<LeaseDatabaseType>,
    url: Option<Spanned<String>>,
    host: Option<Spanned<String>>,
    port: Option<Spanned<u16>>,
    user: Option<Spanned<String>>,
    dbname: Option<Spanned<String>>,
    password_file: Option<Spanned<PathBuf>>,
    sslmode: Option<Spanned<String>>,
    ssl_ca: Option<Spanned<PathBuf>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum LeaseDatabaseType {
    Sqlite,
    Postgresql,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawMetrics {
    listen: SocketAddr,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawLeasequery {
    #[serde(default)]
    allow: Vec<Prefix>,
    #[serde(default)]
    restricted_requestors: bool,
    active: Option<Spanned<bool>>,
    active_insecure: Option<Spanned<bool>>,
    max_connections: Option<Spanned<usize>>,
    max_connections_per_source: Option<Spanned<usize>>,
    idle_timeout: Option<Spanned<u32>>,
    keepalive_interval: Option<Spanned<u32>>,
    io_timeout: Option<Spanned<u32>>,
    listen: Option<Vec<PeerAddress>>,
    peers: Option<Spanned<Vec<PeerAddress>>>,
    pool_half: Option<PoolHalf>,
    tls_certificate: Option<Spanned<PathBuf>>,
    tls_private_key: Option<Spanned<PathBuf>>,
    tls_ca: Option<Spanned<PathBuf>>,
    tls_required: Option<Spanned<bool>>,
    tls_require_client_certificate: Option<Spanned<bool>>,
    tls_peer_name: Option<Spanned<String>>,
}

/// A leasequery server address: `[address]:port`, or a bare IPv6 address (port 547).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PeerAddress(SocketAddr);

impl<'de> Deserialize<'de> for PeerAddress {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_server_address(&text)
            .map(PeerAddress)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses a DHCPv6 server address: `[address]:port`, `address` (port 547) or `[address]`.
pub fn parse_server_address(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = SocketAddr::from_str(text) {
        return Ok(addr);
    }
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    Ipv6Addr::from_str(bare)
        .map(|ip| SocketAddr::from((ip, 547)))
        .map_err(|_| format!("`{text}` is not an IPv6 address or [address]:port"))
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawSubnet {
    id: Option<Spanned<u32>>,
    prefix: Spanned<Prefix>,
    interface: Option<Spanned<String>>,
    interfaces: Option<Spanned<Vec<String>>>,
    shared_network: Option<Spanned<String>>,
    #[serde(default)]
    pools: Vec<RawPool>,
    #[serde(default)]
    pd_pools: Vec<RawPdPool>,
    preferred_lifetime: Option<Spanned<u32>>,
    valid_lifetime: Option<Spanned<u32>>,
    renew_timer: Option<Spanned<u32>>,
    rebind_timer: Option<Spanned<u32>>,
    #[serde(default)]
    rapid_commit: bool,
    /// `None`: `[reconfigure] enabled`.
    reconfigure: Option<bool>,
    preference: Option<u8>,
    #[serde(default)]
    dns_servers: Vec<Ipv6Addr>,
    #[serde(default)]
    domain_search: Vec<Spanned<String>>,
    information_refresh_time: Option<u32>,
    #[serde(default)]
    reservations: Vec<RawReservation>,
    #[serde(default)]
    relay_interface_ids: Vec<String>,
    #[serde(default)]
    relay_addresses: Vec<Ipv6Addr>,
    #[serde(default)]
    vlans: Vec<vlans::RawVlanLines>,
    #[serde(default)]
    option: Vec<options::RawOption>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawPool {
    low: Spanned<Ipv6Addr>,
    high: Spanned<Ipv6Addr>,
    #[serde(default)]
    option: Vec<options::RawOption>,
    client_classes: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawPdPool {
    prefix: Spanned<Prefix>,
    delegated_length: Spanned<u8>,
    excluded_prefix: Option<Spanned<Prefix>>,
    #[serde(default)]
    option: Vec<options::RawOption>,
    client_classes: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawReservation {
    duid: Option<Spanned<HexBytes>>,
    remote_id: Option<Spanned<RawRemoteId>>,
    interface_id: Option<Spanned<String>>,
    subscriber_id: Option<Spanned<String>>,
    client_linklayer_address: Option<Spanned<Mac>>,
    address: Option<Spanned<Ipv6Addr>>,
    prefix: Option<Spanned<Prefix>>,
    #[serde(default)]
    option: Vec<options::RawOption>,
}

/// `remote-id = { enterprise = 3561, id = "00:11:22" }`.
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawRemoteId {
    enterprise: u32,
    id: HexBytes,
}

/// An Ethernet MAC address, `00:11:22:33:44:55` (or with `-`, or without separators).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Mac([u8; 6]);

impl<'de> Deserialize<'de> for Mac {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        let bytes = parse_hex(&text).map_err(serde::de::Error::custom)?;
        <[u8; 6]>::try_from(bytes.as_slice()).map(Mac).map_err(|_| {
            serde::de::Error::custom(format!(
                "`{text}` is not a MAC address (6 bytes, 00:11:22:33:44:55)"
            ))
        })
    }
}

/// Hex bytes, optionally separated by `:` or `-` (`00:01:00:01:...` as DUIDs are often printed).
#[derive(Debug, Clone, PartialEq, Eq)]
struct HexBytes(Vec<u8>);

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_hex(&text)
            .map(HexBytes)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses hex bytes, allowing `:`/`-` separators; used for DUIDs in the config and the CLI.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: String = text
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | ' '))
        .collect();
    let bytes = hex::decode(&digits).map_err(|err| format!("`{text}` is not hex bytes: {err}"))?;
    if bytes.is_empty() {
        return Err("a DUID may not be empty".into());
    }
    if bytes.len() > 130 {
        return Err(format!(
            "a DUID is at most 130 bytes (RFC 8415 §11.1), this one has {}",
            bytes.len()
        ));
    }
    Ok(bytes)
}

/// An IPv6 prefix without host bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Prefix(Ipv6Net);

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse_prefix(&text)
            .map(Prefix)
            .map_err(serde::de::Error::custom)
    }
}

/// Parses `addr/len`, refusing host bits (they are almost always a typo).
pub fn parse_prefix(text: &str) -> Result<Ipv6Net, String> {
    let net = Ipv6Net::from_str(text)
        .map_err(|_| format!("`{text}` is not an IPv6 prefix (address/length)"))?;
    if net.trunc() != net {
        return Err(format!(
            "`{text}` has host bits set (the prefix is {})",
            net.trunc()
        ));
    }
    Ok(net)
}

/// A value of a `key=value` connection string, quoted when it needs to be.
fn conninfo_value(value: &str) -> String {
    if !value.is_empty() && !value.contains(|c: char| c.is_whitespace() || c == '\'' || c == '\\') {
        return value.to_owned();
    }
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

// ---- validation ----

struct Validator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Validator<'_> {
    fn invalid(&self, span: Option<Range<usize>>, key: String, message: String) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.to_path_buf(),
            line: span.map(|span| line_col(self.text, span.start).0),
            key,
            message,
        }
    }

    fn validate(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let max_lease_time = raw.max_lease_time.as_ref().map(|m| *m.get_ref());
        if let Some(max) = &raw.max_lease_time {
            if *max.get_ref() == 0 {
                return Err(self.invalid(
                    Some(max.span()),
                    "max-lease-time".into(),
                    "must be more than 0".into(),
                ));
            }
        }
        let global_options = self.options(&raw.option, "option")?;
        let client_classes = self.client_classes(&raw.client_classes)?;
        let mut subnets = Vec::with_capacity(raw.subnet.len());
        let mut spans = Vec::with_capacity(raw.subnet.len());
        let reconfigure = self.reconfigure(raw.reconfigure)?;
        for (index, subnet) in raw.subnet.into_iter().enumerate() {
            let own_reconfigure = subnet.reconfigure;
            let (mut subnet, subnet_spans) =
                self.subnet(index, subnet, max_lease_time, &client_classes)?;
            subnet.reconfigure = own_reconfigure.unwrap_or(reconfigure.enabled);
            subnet.options = crate::options::merge([&global_options[..], &subnet.options[..]]);
            subnets.push(subnet);
            spans.push(subnet_spans);
        }
        self.check_across_subnets(&subnets, &spans)?;
        let vlan_spans: Vec<_> = spans.iter().map(|s| s.vlans.clone()).collect();
        self.check_vlan_lines(&subnets, &vlan_spans)?;
        let line_identity = raw.line_identity.as_ref().map(|k| *k.get_ref());
        let needs_identity = |key: &str, span: Range<usize>| {
            self.invalid(
                Some(span),
                key.into(),
                "needs `line-identity` (which relay option names a line: \"interface-id\", \
                 \"remote-id\", \"subscriber-id\" or \"client-linklayer-address\")"
                    .into(),
            )
        };
        let line_client_limit = match &raw.line_client_limit {
            Some(limit) if line_identity.is_none() => {
                return Err(needs_identity("line-client-limit", limit.span()))
            }
            Some(limit) if *limit.get_ref() == 0 => {
                return Err(self.invalid(
                    Some(limit.span()),
                    "line-client-limit".into(),
                    "must be at least 1".into(),
                ))
            }
            Some(limit) => Some(*limit.get_ref()),
            None => None,
        };
        let line_sticky = match &raw.line_sticky {
            Some(sticky) if line_identity.is_none() && *sticky.get_ref() => {
                return Err(needs_identity("line-sticky", sticky.span()))
            }
            Some(sticky) => *sticky.get_ref(),
            None => line_identity.is_some(),
        };
        let control_socket_group = match raw.control_socket_group {
            Some(group) => {
                let span = group.span();
                let name = group.into_inner();
                if !matches!(nix::unistd::Group::from_name(&name), Ok(Some(_))) {
                    return Err(self.invalid(
                        Some(span),
                        "control-socket-group".into(),
                        format!("no group `{name}` on this host (see /etc/group)"),
                    ));
                }
                Some(name)
            }
            None => None,
        };
        let line_pass_budget = raw.line_pass_budget.unwrap_or(0);
        let line_pass_burst = match &raw.line_pass_burst {
            Some(burst) if line_pass_budget == 0 => {
                return Err(self.invalid(
                    Some(burst.span()),
                    "line-pass-burst".into(),
                    "needs `line-pass-budget` (messages per second and line, above 0)".into(),
                ))
            }
            Some(burst) if *burst.get_ref() == 0 => {
                return Err(self.invalid(
                    Some(burst.span()),
                    "line-pass-burst".into(),
                    "must be at least 1".into(),
                ))
            }
            Some(burst) => *burst.get_ref(),
            None => line_pass_budget,
        };
        let history_retention = match &raw.history_retention {
            Some(v) if *v.get_ref() < MIN_HISTORY_RETENTION => {
                return Err(self.invalid(
                    Some(v.span()),
                    "history-retention".into(),
                    format!("must be at least {MIN_HISTORY_RETENTION} seconds"),
                ))
            }
            Some(v) => *v.get_ref(),
            None => DEFAULT_HISTORY_RETENTION,
        };
        Ok(Config {
            server_duid: raw.server_duid.map(|d| d.into_inner().0),
            control_socket_group,
            state_dir: raw
                .state_dir
                .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR)),
            interfaces: raw.interfaces,
            interface_client_limit: raw.interface_client_limit,
            line_identity,
            line_client_limit,
            line_sticky,
            line_pass_budget,
            line_pass_burst,
            grace_period: raw.grace_period.unwrap_or(DEFAULT_GRACE_PERIOD),
            max_lease_time,
            decline_probation: raw.decline_probation.unwrap_or(DEFAULT_DECLINE_PROBATION),
            history_retention,
            metrics: raw.metrics.map(|m| MetricsConfig { listen: m.listen }),
            lease_database: self.lease_database(raw.lease_database)?,
            leasequery: self.leasequery(raw.leasequery)?,
            api: self.api(raw.api)?,
            lease_log: self.lease_log(raw.lease_log)?,
            routes: self.routes(raw.routes)?,
            reconfigure,
            subnets,
            client_classes,
            options: global_options,
        })
    }

    fn lease_database(&self, raw: Option<RawLeaseDatabase>) -> Result<LeaseDatabase, ConfigError> {
        let Some(raw) = raw else {
            return Ok(LeaseDatabase::Sqlite);
        };
        let key = |name: &str| format!("lease-database.{name}");
        let parts: [(&str, Option<Range<usize>>); 8] = [
            ("url", raw.url.as_ref().map(Spanned::span)),
            ("host", raw.host.as_ref().map(Spanned::span)),
            ("port", raw.port.as_ref().map(Spanned::span)),
            ("user", raw.user.as_ref().map(Spanned::span)),
            ("dbname", raw.dbname.as_ref().map(Spanned::span)),
            (
                "password-file",
                raw.password_file.as_ref().map(Spanned::span),
            ),
            ("sslmode", raw.sslmode.as_ref().map(Spanned::span)),
            ("ssl-ca", raw.ssl_ca.as_ref().map(Spanned::span)),
        ];
        if raw.kind != Some(LeaseDatabaseType::Postgresql) {
            if let Some((name, span)) = parts.iter().find(|(_, span)| span.is_some()) {
                return Err(self.invalid(
                    span.clone(),
                    key(name),
                    "only a PostgreSQL lease database has this: add `type = \"postgresql\"`".into(),
                ));
            }
            return Ok(LeaseDatabase::Sqlite);
        }
        let (conninfo, span, at) = match (&raw.url, &raw.host) {
            (Some(url), None) => {
                if let Some((name, span)) = parts[2..5].iter().find(|(_, span)| span.is_some()) {
                    return Err(self.invalid(
                        span.clone(),
                        key(name),
                        "give either `url` or host/port/user/dbname, not both".into(),
                    ));
                }
                (url.get_ref().clone(), url.span(), "url")
            }
            (None, Some(host)) => {
                let mut pairs = vec![format!("host={}", conninfo_value(host.get_ref()))];
                if let Some(port) = &raw.port {
                    pairs.push(format!("port={}", port.get_ref()));
                }
                if let Some(user) = &raw.user {
                    pairs.push(format!("user={}", conninfo_value(user.get_ref())));
                }
                if let Some(dbname) = &raw.dbname {
                    pairs.push(format!("dbname={}", conninfo_value(dbname.get_ref())));
                }
                (pairs.join(" "), host.span(), "host")
            }
            (Some(_), Some(host)) => {
                return Err(self.invalid(
                    Some(host.span()),
                    key("host"),
                    "give either `url` or host/port/user/dbname, not both".into(),
                ))
            }
            (None, None) => {
                return Err(self.invalid(
                    None,
                    "lease-database".into(),
                    "a PostgreSQL lease database needs `url` or `host`".into(),
                ))
            }
        };
        // libpq's sslmode and sslrootcert are ours to apply (tokio-postgres knows only some
        // of the modes): out of the string, into the TLS settings.
        let (conninfo, url_mode, url_root) = crate::store::pg_tls::split_tls_params(&conninfo);
        if let Err(err) = tokio_postgres::Config::from_str(&conninfo) {
            return Err(self.invalid(
                Some(span),
                key(at),
                format!("not a PostgreSQL connection string: {err}"),
            ));
        }
        use crate::store::pg_tls::{PgTls, SslMode};
        let named_modes = SslMode::NAMES.join(", ");
        let mode = match (&raw.sslmode, url_mode) {
            (Some(_), Some(_)) => {
                return Err(self.invalid(
                    raw.sslmode.as_ref().map(Spanned::span),
                    key("sslmode"),
                    format!("`{at}` has an sslmode too: give it once"),
                ))
            }
            (Some(mode), None) => SslMode::parse(mode.get_ref()).ok_or_else(|| {
                self.invalid(
                    Some(mode.span()),
                    key("sslmode"),
                    format!("unknown mode {:?}: one of {named_modes}", mode.get_ref()),
                )
            })?,
            (None, Some(mode)) => SslMode::parse(&mode).ok_or_else(|| {
                self.invalid(
                    Some(span.clone()),
                    key(at),
                    format!("unknown sslmode {mode:?}: one of {named_modes}"),
                )
            })?,
            (None, None) => SslMode::default(),
        };
        let ca = match (raw.ssl_ca, url_root) {
            (Some(ca), Some(_)) => {
                return Err(self.invalid(
                    Some(ca.span()),
                    key("ssl-ca"),
                    format!("`{at}` has an sslrootcert too: give the CA once"),
                ))
            }
            (Some(ca), None) => Some((ca.span(), "ssl-ca", ca.into_inner())),
            (None, Some(root)) => Some((span.clone(), at, PathBuf::from(root))),
            (None, None) => None,
        };
        match (&ca, mode) {
            (Some((ca_span, ca_key, _)), SslMode::Disable) => {
                return Err(self.invalid(
                    Some(ca_span.clone()),
                    key(ca_key),
                    "a CA with sslmode = \"disable\" is never used: drop one of them".into(),
                ))
            }
            (None, SslMode::VerifyCa | SslMode::VerifyFull) => {
                return Err(self.invalid(
                    raw.sslmode.as_ref().map(Spanned::span).or(Some(span)),
                    key("ssl-ca"),
                    format!(
                        "sslmode = \"{}\" needs `ssl-ca`, the CA that signs the database's \
                         certificate",
                        mode.name()
                    ),
                ))
            }
            _ => {}
        }
        Ok(LeaseDatabase::Postgresql(PostgresConfig {
            conninfo,
            password_file: raw.password_file.map(Spanned::into_inner),
            tls: PgTls {
                mode,
                ca: ca.map(|(_, _, path)| path),
            },
        }))
    }

    fn routes(&self, raw: Option<RawRoutes>) -> Result<RoutesConfig, ConfigError> {
        let defaults = RoutesConfig::default();
        let Some(raw) = raw else {
            return Ok(defaults);
        };
        // 0 (unspec) to 4 (static) are the kernel's own: a re-sync would take routes it owns.
        if let Some(protocol) = raw.protocol.as_ref().filter(|p| *p.get_ref() < 5) {
            return Err(self.invalid(
                Some(protocol.span()),
                "routes.protocol".into(),
                "must be 5 to 255 (0 to 4 are the kernel's own protocols)".into(),
            ));
        }
        // 0 (unspec) and 253..255 other than main (default, local) are not tables for routes.
        if let Some(table) = raw
            .table
            .as_ref()
            .filter(|t| matches!(*t.get_ref(), 0 | 253 | 255))
        {
            return Err(self.invalid(
                Some(table.span()),
                "routes.table".into(),
                "must be a routing table other than 0, 253 (default) and 255 (local)".into(),
            ));
        }
        Ok(RoutesConfig {
            enabled: raw.enabled.unwrap_or(defaults.enabled),
            table: raw.table.map_or(defaults.table, Spanned::into_inner),
            protocol: raw.protocol.map_or(defaults.protocol, Spanned::into_inner),
            metric: raw.metric.unwrap_or(defaults.metric),
            addresses: raw.addresses.unwrap_or(defaults.addresses),
        })
    }

    fn leasequery(&self, raw: Option<RawLeasequery>) -> Result<LeasequeryConfig, ConfigError> {
        let defaults = LeasequeryConfig::default();
        let Some(raw) = raw else {
            return Ok(defaults);
        };
        let positive = |value: &Option<Spanned<u32>>, key: &str, default: u32| match value {
            Some(v) if *v.get_ref() == 0 => Err(self.invalid(
                Some(v.span()),
                format!("leasequery.{key}"),
                "must be at least 1 second".into(),
            )),
            Some(v) => Ok(*v.get_ref()),
            None => Ok(default),
        };
        let idle_timeout = positive(&raw.idle_timeout, "idle-timeout", defaults.idle_timeout)?;
        let io_timeout = positive(&raw.io_timeout, "io-timeout", defaults.io_timeout)?;
        let keepalive_interval = positive(
            &raw.keepalive_interval,
            "keepalive-interval",
            defaults.keepalive_interval,
        )?;
        let max_connections = match &raw.max_connections {
            Some(v) if *v.get_ref() == 0 => {
                return Err(self.invalid(
                    Some(v.span()),
                    "leasequery.max-connections".into(),
                    "must be at least 1 (leave `allow` empty to serve nobody)".into(),
                ))
            }
            Some(v) => *v.get_ref(),
            None => defaults.max_connections,
        };
        let max_connections_per_source = match &raw.max_connections_per_source {
            Some(v) if *v.get_ref() == 0 || *v.get_ref() > max_connections => {
                return Err(self.invalid(
                    Some(v.span()),
                    "leasequery.max-connections-per-source".into(),
                    format!("must be between 1 and max-connections ({max_connections})"),
                ))
            }
            Some(v) => *v.get_ref(),
            None => defaults.max_connections_per_source.min(max_connections),
        };
        let has_peers = raw.peers.as_ref().is_some_and(|p| !p.get_ref().is_empty());
        let tls = self.leasequery_tls(&raw, has_peers)?;
        let (peers, peers_span) = match raw.peers {
            Some(peers) => {
                let span = peers.span();
                (
                    peers.into_inner().into_iter().map(|p| p.0).collect(),
                    Some(span),
                )
            }
            None => (Vec::new(), None),
        };
        if !peers.is_empty() && raw.pool_half.is_none() {
            return Err(self.invalid(
                peers_span,
                "leasequery.peers".into(),
                "a server with peers must say which half of every pool it allocates from: \
                 `pool-half = \"lower\"` here and `\"upper\"` on the peer (same subnets and \
                 pools on both), so the two never grant the same address"
                    .into(),
            ));
        }
        let active = raw
            .active
            .as_ref()
            .map_or(defaults.active, |a| *a.get_ref());
        let active_insecure = raw
            .active_insecure
            .as_ref()
            .map_or(defaults.active_insecure, |a| *a.get_ref());
        if active && !active_insecure && tls.is_none() {
            return Err(self.invalid(
                raw.active.as_ref().map(Spanned::span),
                "leasequery.active".into(),
                "active leasequery would run in the clear: configure TLS (`tls-certificate`, \
                 `tls-private-key`, `tls-ca`), or set `active-insecure = true` as well to \
                 accept the clear (RFC 7653 section 9.1 asks for this separate step)"
                    .into(),
            ));
        }
        if active_insecure && !active {
            return Err(self.invalid(
                raw.active_insecure.as_ref().map(Spanned::span),
                "leasequery.active-insecure".into(),
                "only means something with `active = true`".into(),
            ));
        }
        if !peers.is_empty() && !active {
            return Err(self.invalid(
                peers_span,
                "leasequery.peers".into(),
                "the servers of a pair follow each other by active leasequery, which is off \
                 by default (RFC 7653 section 9.1): set `active = true` on both servers, \
                 with TLS (`tls-certificate`, `tls-private-key`, `tls-ca`) or \
                 `active-insecure = true`"
                    .into(),
            ));
        }
        Ok(LeasequeryConfig {
            allow: raw.allow.into_iter().map(|p| p.0).collect(),
            restricted_requestors: raw.restricted_requestors,
            active,
            active_insecure,
            max_connections,
            max_connections_per_source,
            idle_timeout,
            keepalive_interval,
            io_timeout,
            listen: raw
                .listen
                .map(|l| l.into_iter().map(|p| p.0).collect())
                .unwrap_or(defaults.listen),
            peers,
            pool_half: raw.pool_half,
            tls,
        })
    }

    /// The `tls-*` keys: both files of our identity or neither, every file read and checked
    /// (a missing, unreadable or bad file is an error naming its key), the trust anchors
    /// required where someone's certificate is to be verified.
    fn leasequery_tls(
        &self,
        raw: &RawLeasequery,
        has_peers: bool,
    ) -> Result<Option<LeasequeryTls>, ConfigError> {
        use crate::tls::{self, ClientCertificates};
        let key = |name: &str| format!("leasequery.{name}");
        let span_of = |value: &Option<Spanned<bool>>| value.as_ref().map(Spanned::span);
        let (certificate, private_key) = match (&raw.tls_certificate, &raw.tls_private_key) {
            (Some(certificate), Some(private_key)) => (certificate, private_key),
            (None, None) => {
                let stray = [
                    ("tls-ca", raw.tls_ca.as_ref().map(Spanned::span)),
                    ("tls-required", span_of(&raw.tls_required)),
                    (
                        "tls-require-client-certificate",
                        span_of(&raw.tls_require_client_certificate),
                    ),
                    (
                        "tls-peer-name",
                        raw.tls_peer_name.as_ref().map(Spanned::span),
                    ),
                ];
                if let Some((name, span)) = stray.into_iter().find(|(_, span)| span.is_some()) {
                    return Err(self.invalid(
                        span,
                        key(name),
                        "only means something with TLS configured: set `tls-certificate` and \
                         `tls-private-key` as well"
                            .into(),
                    ));
                }
                return Ok(None);
            }
            (Some(certificate), None) => {
                return Err(self.invalid(
                    Some(certificate.span()),
                    key("tls-certificate"),
                    "needs `tls-private-key` (the certificate's key, PEM) as well".into(),
                ))
            }
            (None, Some(private_key)) => {
                return Err(self.invalid(
                    Some(private_key.span()),
                    key("tls-private-key"),
                    "needs `tls-certificate` (the certificate it is the key of, PEM) as well"
                        .into(),
                ))
            }
        };
        let file_error = |value: &Spanned<PathBuf>, name: &str, err: tls::TlsError| {
            self.invalid(Some(value.span()), key(name), err.to_string())
        };
        let chain = tls::load_certificates(certificate.get_ref())
            .map_err(|err| file_error(certificate, "tls-certificate", err))?;
        let private = tls::load_private_key(private_key.get_ref())
            .map_err(|err| file_error(private_key, "tls-private-key", err))?;
        let identity = tls::Identity {
            chain,
            key: private,
        };
        let anchors = match &raw.tls_ca {
            Some(ca) => tls::load_trust_anchors(ca.get_ref())
                .map_err(|err| file_error(ca, "tls-ca", err))?,
            None => Vec::new(),
        };
        let require_client = raw
            .tls_require_client_certificate
            .as_ref()
            .is_none_or(|r| *r.get_ref());
        let client_certificates = if require_client {
            ClientCertificates::Required
        } else {
            ClientCertificates::Optional
        };
        if anchors.is_empty() {
            let why = if has_peers {
                Some("the peers' certificates are verified against it")
            } else if require_client {
                Some(
                    "requestors must present a certificate signed by it \
                     (`tls-require-client-certificate`, default true; set it to false to \
                     serve TLS to requestors without certificates)",
                )
            } else {
                None
            };
            if let Some(why) = why {
                return Err(self.invalid(
                    Some(certificate.span()),
                    key("tls-ca"),
                    format!("missing: {why}"),
                ));
            }
        }
        // Build both sides once here, so that a key that is not the certificate's (or a
        // chain rustls refuses) is a configuration error, not a failure at the first session.
        tls::server_config(&identity, &anchors, client_certificates)
            .map_err(|err| file_error(private_key, "tls-private-key", err))?;
        if !anchors.is_empty() {
            tls::client_config(&anchors, Some(&identity))
                .map_err(|err| file_error(certificate, "tls-certificate", err))?;
        }
        let peer_name = match &raw.tls_peer_name {
            Some(name) if !has_peers => {
                return Err(self.invalid(
                    Some(name.span()),
                    key("tls-peer-name"),
                    "only means something with `peers`".into(),
                ))
            }
            Some(name) => {
                tls::parse_server_name(name.get_ref()).map_err(|message| {
                    self.invalid(Some(name.span()), key("tls-peer-name"), message)
                })?;
                Some(name.get_ref().clone())
            }
            None => None,
        };
        Ok(Some(LeasequeryTls {
            certificate: certificate.get_ref().clone(),
            private_key: private_key.get_ref().clone(),
            ca: raw.tls_ca.as_ref().map(|ca| ca.get_ref().clone()),
            identity,
            anchors,
            required: raw.tls_required.as_ref().is_some_and(|r| *r.get_ref()),
            client_certificates,
            peer_name,
        }))
    }

    fn subnet(
        &self,
        index: usize,
        raw: RawSubnet,
        max_lease_time: Option<u32>,
        client_classes: &[classes::ClientClass],
    ) -> Result<(Subnet, SubnetSpans), ConfigError> {
        let key = |rest: &str| format!("subnet[{index}].{rest}");
        let prefix = raw.prefix.get_ref().0;
        let id = match &raw.id {
            Some(id) if *id.get_ref() == 0 => {
                return Err(self.invalid(
                    Some(id.span()),
                    key("id"),
                    "subnet ids start at 1".into(),
                ))
            }
            Some(id) => *id.get_ref(),
            None => u32::try_from(index + 1).unwrap_or(u32::MAX),
        };

        let cap = |value: u32| max_lease_time.map_or(value, |max| value.min(max));
        let preferred = cap(raw
            .preferred_lifetime
            .as_ref()
            .map_or(DEFAULT_PREFERRED_LIFETIME, |v| *v.get_ref()));
        let valid = cap(raw
            .valid_lifetime
            .as_ref()
            .map_or(DEFAULT_VALID_LIFETIME.max(preferred), |v| *v.get_ref()));
        if preferred > valid {
            return Err(self.invalid(
                raw.preferred_lifetime.as_ref().map(Spanned::span),
                key("preferred-lifetime"),
                format!("preferred lifetime {preferred} exceeds the valid lifetime {valid}"),
            ));
        }
        if valid == 0 {
            return Err(self.invalid(
                raw.valid_lifetime.as_ref().map(Spanned::span),
                key("valid-lifetime"),
                "must be more than 0".into(),
            ));
        }
        let renew = raw
            .renew_timer
            .as_ref()
            .map_or(preferred / 2, |v| *v.get_ref());
        let rebind = raw
            .rebind_timer
            .as_ref()
            .map_or((u64::from(preferred) * 4 / 5) as u32, |v| *v.get_ref());
        if renew > rebind {
            return Err(self.invalid(
                raw.renew_timer.as_ref().map(Spanned::span),
                key("renew-timer"),
                format!("renew-timer (T1) {renew} exceeds rebind-timer (T2) {rebind}"),
            ));
        }
        if rebind > valid {
            return Err(self.invalid(
                raw.rebind_timer.as_ref().map(Spanned::span),
                key("rebind-timer"),
                format!("rebind-timer (T2) {rebind} exceeds the valid lifetime {valid}"),
            ));
        }

        let mut pools = Vec::new();
        let mut pool_options = Vec::new();
        let mut pool_classes = Vec::new();
        for (i, pool) in raw.pools.iter().enumerate() {
            let (low, high) = (*pool.low.get_ref(), *pool.high.get_ref());
            for (name, value, span) in [
                ("low", low, pool.low.span()),
                ("high", high, pool.high.span()),
            ] {
                if !prefix.contains(&value) {
                    return Err(self.invalid(
                        Some(span),
                        key(&format!("pools[{i}].{name}")),
                        format!("{value} is outside the subnet {prefix}"),
                    ));
                }
            }
            if low > high {
                return Err(self.invalid(
                    Some(pool.low.span()),
                    key(&format!("pools[{i}].low")),
                    format!("low {low} is above high {high}"),
                ));
            }
            pools.push(AddressPool { low, high });
            pool_options.push(self.options(&pool.option, &key(&format!("pools[{i}].option")))?);
            pool_classes.push(self.pool_classes(
                pool.client_classes.as_ref(),
                client_classes,
                &key(&format!("pools[{i}].client-classes")),
            )?);
        }

        let mut pd_pools = Vec::new();
        let mut pd_pool_options = Vec::new();
        let mut pd_pool_classes = Vec::new();
        for (i, pool) in raw.pd_pools.iter().enumerate() {
            let pool_prefix = pool.prefix.get_ref().0;
            let length = *pool.delegated_length.get_ref();
            if length < pool_prefix.prefix_len() || length > 128 {
                return Err(self.invalid(
                    Some(pool.delegated_length.span()),
                    key(&format!("pd-pools[{i}].delegated-length")),
                    format!(
                        "delegated length /{length} must be between the pool's /{} and /128",
                        pool_prefix.prefix_len()
                    ),
                ));
            }
            let exclude = self.pd_exclude(
                pool.excluded_prefix.as_ref(),
                pool_prefix,
                length,
                &key(&format!("pd-pools[{i}].excluded-prefix")),
            )?;
            pd_pools.push(PdPool {
                prefix: pool_prefix,
                delegated_length: length,
                exclude,
            });
            pd_pool_options
                .push(self.options(&pool.option, &key(&format!("pd-pools[{i}].option")))?);
            pd_pool_classes.push(self.pool_classes(
                pool.client_classes.as_ref(),
                client_classes,
                &key(&format!("pd-pools[{i}].client-classes")),
            )?);
        }

        let mut domain_search = Vec::new();
        for (i, name) in raw.domain_search.iter().enumerate() {
            if let Err(message) = check_domain_name(name.get_ref()) {
                return Err(self.invalid(
                    Some(name.span()),
                    key(&format!("domain-search[{i}]")),
                    message,
                ));
            }
            domain_search.push(name.get_ref().trim_end_matches('.').to_string());
        }

        let mut reservations = Vec::new();
        let mut seen: HashMap<ReservedClient, usize> = HashMap::new();
        for (i, res) in raw.reservations.iter().enumerate() {
            let (client, client_span, client_key) =
                self.reserved_client(res, &key(&format!("reservations[{i}]")))?;
            if let Some(first) = seen.insert(client.clone(), i) {
                return Err(self.invalid(
                    Some(client_span),
                    key(&format!("reservations[{i}].{client_key}")),
                    format!(
                        "{} already reserved in reservations[{first}]",
                        match client {
                            ReservedClient::Duid(_) => "DUID",
                            ReservedClient::Line(_) => "line",
                        }
                    ),
                ));
            }
            if let Some(address) = &res.address {
                if !prefix.contains(address.get_ref()) {
                    return Err(self.invalid(
                        Some(address.span()),
                        key(&format!("reservations[{i}].address")),
                        format!("{} is outside the subnet {prefix}", address.get_ref()),
                    ));
                }
            }
            if res.address.is_none() && res.prefix.is_none() {
                return Err(self.invalid(
                    Some(client_span),
                    key(&format!("reservations[{i}]")),
                    "a reservation needs an address or a prefix".into(),
                ));
            }
            reservations.push(Reservation {
                client,
                address: res.address.as_ref().map(|a| *a.get_ref()),
                prefix: res.prefix.as_ref().map(|p| p.get_ref().0),
                options: self.options(&res.option, &key(&format!("reservations[{i}].option")))?,
            });
        }
        let interfaces = match (&raw.interface, &raw.interfaces) {
            (Some(one), Some(_)) => {
                return Err(self.invalid(
                    Some(one.span()),
                    key("interface"),
                    "give either `interface` or `interfaces`, not both".into(),
                ))
            }
            (Some(one), None) => vec![one.get_ref().clone()],
            (None, Some(list)) => list.get_ref().clone(),
            (None, None) => Vec::new(),
        };
        if let Some(bad) = interfaces
            .iter()
            .position(|name| name.is_empty() || name.len() > 15 && !is_interface_pattern(name))
        {
            let span = raw
                .interfaces
                .as_ref()
                .map(Spanned::span)
                .or(raw.interface.as_ref().map(Spanned::span));
            return Err(self.invalid(
                span,
                key(&format!("interfaces[{bad}]")),
                "an interface name has 1 to 15 characters".into(),
            ));
        }
        let shared_network = match &raw.shared_network {
            Some(name) if name.get_ref().trim().is_empty() => {
                return Err(self.invalid(
                    Some(name.span()),
                    key("shared-network"),
                    "a shared network needs a name".into(),
                ))
            }
            Some(name) => Some(name.get_ref().clone()),
            None => None,
        };
        let (vlans, vlan_spans) = self.vlan_lines(&raw.vlans, &key)?;
        let spans = SubnetSpans {
            prefix: raw.prefix.span(),
            pools: raw.pools.iter().map(|p| p.low.span()).collect(),
            pd_pools: raw.pd_pools.iter().map(|p| p.prefix.span()).collect(),
            reservations: raw
                .reservations
                .iter()
                .map(|r| {
                    (
                        r.address.as_ref().map(Spanned::span),
                        r.prefix.as_ref().map(Spanned::span),
                    )
                })
                .collect(),
            id: raw.id.as_ref().map(Spanned::span),
            interfaces: raw
                .interfaces
                .as_ref()
                .map(Spanned::span)
                .or(raw.interface.as_ref().map(Spanned::span)),
            vlans: vlan_spans,
        };
        let subnet = Subnet {
            id,
            explicit_id: raw.id.is_some(),
            prefix,
            interfaces,
            shared_network,
            pools,
            pd_pools,
            preferred_lifetime: preferred,
            valid_lifetime: valid,
            renew_timer: renew,
            rebind_timer: rebind,
            rapid_commit: raw.rapid_commit,
            // Resolved against `[reconfigure] enabled` by the caller.
            reconfigure: raw.reconfigure.unwrap_or(false),
            preference: raw.preference,
            options: self.subnet_options(&raw, &domain_search, &key)?,
            pool_options,
            pd_pool_options,
            pool_classes,
            pd_pool_classes,
            dns_servers: raw.dns_servers,
            domain_search,
            information_refresh_time: raw.information_refresh_time,
            reservations,
            relay_interface_ids: raw
                .relay_interface_ids
                .into_iter()
                .map(String::into_bytes)
                .collect(),
            relay_addresses: raw.relay_addresses,
            vlans,
        };
        Ok((subnet, spans))
    }

    /// Who reservation `res` is for: exactly one of `duid`, `remote-id`, `interface-id`,
    /// `subscriber-id`, `client-linklayer-address`; with the span and the key that named it.
    fn reserved_client(
        &self,
        res: &RawReservation,
        at: &str,
    ) -> Result<(ReservedClient, Range<usize>, &'static str), ConfigError> {
        let line = |kind: LineKind, value: Vec<u8>| ReservedClient::Line(LineId { kind, value });
        let mut given: Vec<(ReservedClient, Range<usize>, &'static str)> = Vec::new();
        if let Some(duid) = &res.duid {
            given.push((
                ReservedClient::Duid(duid.get_ref().0.clone()),
                duid.span(),
                "duid",
            ));
        }
        if let Some(remote) = &res.remote_id {
            let mut value = remote.get_ref().enterprise.to_be_bytes().to_vec();
            value.extend_from_slice(&remote.get_ref().id.0);
            given.push((line(LineKind::RemoteId, value), remote.span(), "remote-id"));
        }
        if let Some(id) = &res.interface_id {
            given.push((
                line(LineKind::InterfaceId, id.get_ref().clone().into_bytes()),
                id.span(),
                "interface-id",
            ));
        }
        if let Some(id) = &res.subscriber_id {
            given.push((
                line(LineKind::SubscriberId, id.get_ref().clone().into_bytes()),
                id.span(),
                "subscriber-id",
            ));
        }
        if let Some(mac) = &res.client_linklayer_address {
            // Link-layer type 1 (Ethernet, RFC 826 hardware type), then the address.
            let mut value = vec![0, 1];
            value.extend_from_slice(&mac.get_ref().0);
            given.push((
                line(LineKind::ClientLinklayerAddress, value),
                mac.span(),
                "client-linklayer-address",
            ));
        }
        let span = res
            .address
            .as_ref()
            .map(Spanned::span)
            .or(res.prefix.as_ref().map(|p| p.span()));
        match given.len() {
            1 => Ok(given.remove(0)),
            0 => Err(self.invalid(
                span,
                at.to_string(),
                "a reservation names its client: `duid`, `remote-id`, `interface-id`, \
                 `subscriber-id` or `client-linklayer-address`"
                    .into(),
            )),
            _ => Err(self.invalid(
                Some(given[1].1.clone()),
                format!("{at}.{}", given[1].2),
                format!(
                    "a reservation names one client; this one has `{}` already",
                    given[0].2
                ),
            )),
        }
    }

    /// Overlaps and duplicates between subnets, pools and reservations.
    fn check_across_subnets(
        &self,
        subnets: &[Subnet],
        spans: &[SubnetSpans],
    ) -> Result<(), ConfigError> {
        let span_of = |i: usize, pick: &dyn Fn(&SubnetSpans) -> Option<Range<usize>>| {
            spans.get(i).and_then(pick)
        };
        let mut relay_ids: HashMap<&[u8], usize> = HashMap::new();
        let mut relay_addresses: HashMap<Ipv6Addr, usize> = HashMap::new();
        for (i, subnet) in subnets.iter().enumerate() {
            for (k, id) in subnet.relay_interface_ids.iter().enumerate() {
                if let Some(first) = relay_ids.insert(id, i) {
                    return Err(self.invalid(
                        None,
                        format!("subnet[{i}].relay-interface-ids[{k}]"),
                        format!(
                            "Interface-ID \"{}\" already selects subnet[{first}]",
                            String::from_utf8_lossy(id)
                        ),
                    ));
                }
            }
            for (k, address) in subnet.relay_addresses.iter().enumerate() {
                if let Some(first) = relay_addresses.insert(*address, i) {
                    return Err(self.invalid(
                        None,
                        format!("subnet[{i}].relay-addresses[{k}]"),
                        format!("relay address {address} already selects subnet[{first}]"),
                    ));
                }
            }
        }
        let mut interface_owner: HashMap<&str, usize> = HashMap::new();
        for (i, subnet) in subnets.iter().enumerate() {
            for (k, name) in subnet.interfaces.iter().enumerate() {
                match interface_owner.get(name.as_str()) {
                    Some(&first)
                        if subnet.shared_network.is_none()
                            || subnet.shared_network != subnets[first].shared_network =>
                    {
                        return Err(self.invalid(
                            span_of(i, &|s| s.interfaces.clone()),
                            format!("subnet[{i}].interfaces[{k}]"),
                            format!(
                                "interface `{name}` is already subnet[{first}]'s; to serve \
                                 several subnets on one link put them in one `shared-network`"
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => {
                        interface_owner.insert(name, i);
                    }
                }
            }
        }
        let mut ids: HashMap<u32, usize> = HashMap::new();
        for (i, subnet) in subnets.iter().enumerate() {
            if let Some(first) = ids.insert(subnet.id, i) {
                return Err(self.invalid(
                    span_of(i, &|s| s.id.clone()),
                    format!("subnet[{i}].id"),
                    format!("id {} is already used by subnet[{first}]", subnet.id),
                ));
            }
            for (j, other) in subnets.iter().enumerate().take(i) {
                if nets_overlap(subnet.prefix, other.prefix) {
                    return Err(self.invalid(
                        span_of(i, &|s| Some(s.prefix.clone())),
                        format!("subnet[{i}].prefix"),
                        format!(
                            "{} overlaps subnet[{j}].prefix {}",
                            subnet.prefix, other.prefix
                        ),
                    ));
                }
            }
        }
        // Address pools: sorted sweep over every range of every subnet.
        let mut ranges: Vec<(u128, u128, usize, usize)> = Vec::new();
        for (i, subnet) in subnets.iter().enumerate() {
            for (p, pool) in subnet.pools.iter().enumerate() {
                ranges.push((pool.low.into(), pool.high.into(), i, p));
            }
        }
        ranges.sort();
        for pair in ranges.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if b.0 <= a.1 {
                return Err(self.invalid(
                    span_of(b.2, &|s| s.pools.get(b.3).cloned()),
                    format!("subnet[{}].pools[{}]", b.2, b.3),
                    format!("overlaps subnet[{}].pools[{}]", a.2, a.3),
                ));
            }
        }
        let mut pd: Vec<(Ipv6Net, usize, usize)> = Vec::new();
        for (i, subnet) in subnets.iter().enumerate() {
            for (p, pool) in subnet.pd_pools.iter().enumerate() {
                if let Some(&(_, oi, op)) = pd
                    .iter()
                    .find(|(net, _, _)| nets_overlap(*net, pool.prefix))
                {
                    return Err(self.invalid(
                        span_of(i, &|s| s.pd_pools.get(p).cloned()),
                        format!("subnet[{i}].pd-pools[{p}].prefix"),
                        format!("{} overlaps subnet[{oi}].pd-pools[{op}]", pool.prefix),
                    ));
                }
                pd.push((pool.prefix, i, p));
            }
        }
        let mut reserved_addresses: HashMap<Ipv6Addr, (usize, usize)> = HashMap::new();
        let mut reserved_prefixes: Vec<(Ipv6Net, usize, usize)> = Vec::new();
        for (i, subnet) in subnets.iter().enumerate() {
            for (r, res) in subnet.reservations.iter().enumerate() {
                if let Some(address) = res.address {
                    if let Some((oi, or)) = reserved_addresses.insert(address, (i, r)) {
                        return Err(self.invalid(
                            span_of(i, &|s| s.reservations.get(r).and_then(|x| x.0.clone())),
                            format!("subnet[{i}].reservations[{r}].address"),
                            format!(
                                "{address} is already reserved by subnet[{oi}].reservations[{or}]"
                            ),
                        ));
                    }
                }
                if let Some(prefix) = res.prefix {
                    if let Some(&(_, oi, or)) = reserved_prefixes
                        .iter()
                        .find(|(net, _, _)| nets_overlap(*net, prefix))
                    {
                        return Err(self.invalid(
                            span_of(i, &|s| s.reservations.get(r).and_then(|x| x.1.clone())),
                            format!("subnet[{i}].reservations[{r}].prefix"),
                            format!("{prefix} overlaps the prefix reserved by subnet[{oi}].reservations[{or}]"),
                        ));
                    }
                    reserved_prefixes.push((prefix, i, r));
                }
            }
        }
        Ok(())
    }
}

/// Spans of a subnet's values, kept from parsing for errors found across subnets.
struct SubnetSpans {
    prefix: Range<usize>,
    pools: Vec<Range<usize>>,
    pd_pools: Vec<Range<usize>>,
    /// (address, prefix) spans of each reservation.
    reservations: Vec<ReservationSpans>,
    id: Option<Range<usize>>,
    interfaces: Option<Range<usize>>,
    /// The interface span of each `vlans` entry.
    vlans: Vec<Range<usize>>,
}

type ReservationSpans = (Option<Range<usize>>, Option<Range<usize>>);

/// True if the two prefixes share any address.
pub fn nets_overlap(a: Ipv6Net, b: Ipv6Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn check_domain_name(name: &str) -> Result<(), String> {
    let trimmed = name.trim_end_matches('.');
    if trimmed.is_empty() {
        return Err("a domain name may not be empty".into());
    }
    if trimmed.len() > 253 {
        return Err(format!("`{name}` is longer than 253 characters"));
    }
    for label in trimmed.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!(
                "`{name}` has a label that is empty or over 63 bytes"
            ));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "`{name}` has a character not allowed in a host name"
            ));
        }
    }
    Ok(())
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "subnet {} ({})", self.id, self.prefix)
    }
}

mod options;
#[cfg(test)]
mod tests;
