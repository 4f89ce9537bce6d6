//! The configuration as `serve` loads it, and reloading it without a restart.
//!
//! [`ConfigSource::load`] is the one way a configuration file becomes the configuration served:
//! the file checked whole (`Config::load`: every key, file, line and key in each error), the
//! command line's `--iface` and `--state-dir` applied, interface patterns expanded, the TLS files
//! and the PostgreSQL password file tried, and the subnets' ids given from the state directory's
//! record ([`crate::subnet_ids`]). `serve` starts with it, `check-config` runs it, and so does
//! every reload.
//!
//! [`Reloader::reload`] is the reload entry point, for SIGHUP and the control socket's `reload`
//! alike: the new file is loaded as above; any error, a changed key that needs a restart
//! ([`RESTART_KEYS`]), or with peers a changed subnet prefix or id refuses it (counted
//! `reloads_refused`, logged, the reason returned) and the running configuration keeps serving.
//! Otherwise the subnet-id record is written, the server swaps the configuration under its
//! decision lock (`Server::swap_config`), and the fast path's maps follow
//! (`MapSync::reconfigure`: the program passes everything to the controller meanwhile).
//! Reloads are serialised.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::config::{Config, ConfigError, LeaseDatabase};
use crate::fastpath::sync::{MapSync, Reconfigure};
use crate::server::Server;
use crate::subnet_ids::{SubnetIdError, SubnetIds};

/// Where `serve` reads its configuration, with the command line's overrides.
#[derive(Debug, Clone)]
pub struct ConfigSource {
    /// The TOML file.
    pub path: PathBuf,
    /// `--iface` (replaces `interfaces` when not empty).
    pub ifaces: Vec<String>,
    /// `--state-dir` (replaces `state-dir`).
    pub state_dir: Option<PathBuf>,
    /// `--line-pass-budget` (replaces `line-pass-budget`; alone, its burst comes along).
    pub line_pass_budget: Option<u32>,
    /// `--line-pass-burst` (replaces `line-pass-burst`).
    pub line_pass_burst: Option<u32>,
}

/// Why a configuration cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file: syntax, types, unknown keys, values that do not fit together.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Something the file names (interfaces, TLS files, the password file) does not work here.
    #[error("config file {path}: key `{key}`: {message}")]
    Host {
        /// The file.
        path: PathBuf,
        /// The key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The subnet ids would renumber leases, or their record cannot be used.
    #[error("config file {path}: {source}")]
    SubnetIds {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: SubnetIdError,
    },
}

/// A configuration ready to serve, with the subnet-id record to keep with it.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration, overrides applied, ids given.
    pub config: Config,
    /// The record with this configuration's subnets in it.
    pub ids: SubnetIds,
    /// The record as the state directory held it.
    pub ids_before: SubnetIds,
}

impl Loaded {
    /// Writes the subnet-id record (when it changed).
    pub fn keep_ids(&self) -> Result<(), SubnetIdError> {
        self.ids.store(&self.config.state_dir, &self.ids_before)
    }
}

impl ConfigSource {
    /// Reads and checks the file whole, as `serve` does at start (see the module doc).
    pub fn load(&self) -> Result<Loaded, LoadError> {
        let mut config = Config::load(&self.path)?;
        if !self.ifaces.is_empty() {
            config.interfaces = self.ifaces.clone();
        }
        if let Some(dir) = &self.state_dir {
            config.state_dir = dir.clone();
        }
        let host = |key: &'static str, message: String| LoadError::Host {
            path: self.path.clone(),
            key,
            message,
        };
        if let Some(budget) = self.line_pass_budget {
            // A budget given alone brings its default burst along.
            config.line_pass_budget = budget;
            config.line_pass_burst = self.line_pass_burst.unwrap_or(budget);
        } else if let Some(burst) = self.line_pass_burst {
            config.line_pass_burst = burst;
        }
        if config.line_pass_budget > 0 && config.line_pass_burst == 0 {
            return Err(host(
                "line-pass-burst",
                "--line-pass-burst must be at least 1 while the line-pass budget is on".into(),
            ));
        }
        config.interfaces = crate::netif::expand_interface_patterns(&config.interfaces)
            .map_err(|message| host("interfaces", message))?;
        crate::leasequery::server_tls(&config.leasequery)
            .map_err(|err| host("leasequery.tls-certificate", err.to_string()))?;
        crate::leasequery::peer_tls(&config.leasequery)
            .map_err(|err| host("leasequery.tls-peer-name", err.to_string()))?;
        if let LeaseDatabase::Postgresql(pg) = &config.lease_database {
            pg.password()
                .map_err(|message| host("lease-database.password-file", message))?;
        }
        let (ids, ids_before) =
            crate::subnet_ids::assign_from_state_dir(&mut config).map_err(|source| {
                LoadError::SubnetIds {
                    path: self.path.clone(),
                    source,
                }
            })?;
        Ok(Loaded {
            config,
            ids,
            ids_before,
        })
    }
}

/// The keys a reload may not change (they need a restart), as the docs name them.
pub const RESTART_KEYS: &[&str] = &[
    "server-duid",
    "state-dir",
    "control-socket-group",
    "interfaces",
    "grace-period",
    "history-retention",
    "[metrics]",
    "[lease-database]",
    "[leasequery]",
];

/// The keys of [`RESTART_KEYS`] whose values differ between `old` and `new`.
pub fn restart_keys_changed(old: &Config, new: &Config) -> Vec<&'static str> {
    let changed = [
        old.server_duid != new.server_duid,
        old.state_dir != new.state_dir,
        old.control_socket_group != new.control_socket_group,
        old.interfaces != new.interfaces,
        old.grace_period != new.grace_period,
        old.history_retention != new.history_retention,
        old.metrics != new.metrics,
        old.lease_database != new.lease_database,
        old.leasequery != new.leasequery,
    ];
    RESTART_KEYS
        .iter()
        .zip(changed)
        .filter(|(_, changed)| *changed)
        .map(|(key, _)| *key)
        .collect()
}

/// What changed in the subnets, by id: `subnet 3 added`, `subnet 1 changed`, `subnet 2
/// removed`.
pub fn subnet_changes(old: &Config, new: &Config) -> Vec<String> {
    let mut changes = Vec::new();
    for subnet in &new.subnets {
        match old.subnet(subnet.id) {
            None => changes.push(format!("subnet {} ({}) added", subnet.id, subnet.prefix)),
            Some(before) if before != subnet => {
                changes.push(format!("subnet {} ({}) changed", subnet.id, subnet.prefix))
            }
            Some(_) => {}
        }
    }
    for subnet in &old.subnets {
        if new.subnet(subnet.id).is_none() {
            changes.push(format!("subnet {} ({}) removed", subnet.id, subnet.prefix));
        }
    }
    changes
}

/// Why a reload was refused (the running configuration keeps serving), or what went wrong
/// after it was applied.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new file does not load (see [`ConfigSource::load`]).
    #[error("reload refused, the running configuration keeps serving: {0}")]
    Load(#[from] LoadError),
    /// It changes keys that need a restart.
    #[error(
        "reload refused, the running configuration keeps serving: config file {path}: {} \
         changed, which takes a restart (a reload may change the subnets, their pools, options, \
         lifetimes and reservations, interface-client-limit, the line-* keys, max-lease-time \
         and decline-probation)",
        keys.join(", ")
    )]
    NeedsRestart {
        /// The file.
        path: PathBuf,
        /// The keys.
        keys: Vec<&'static str>,
    },
    /// With peers, it changes a subnet's prefix or id.
    #[error(
        "reload refused, the running configuration keeps serving: config file {path}: with \
         `[leasequery] peers`, a reload may not add, remove or renumber subnets (the peer sync \
         finds each binding's subnet by them): restart, one server of the pair at a time"
    )]
    PeerSubnets {
        /// The file.
        path: PathBuf,
    },
    /// The subnet-id record could not be written.
    #[error("reload refused, the running configuration keeps serving: {0}")]
    Record(SubnetIdError),
    /// The reservations made at run time (the state directory's) could not be read.
    #[error(
        "reload refused, the running configuration keeps serving: the reservations made at \
         run time: {0}"
    )]
    RuntimeReservations(String),
    /// Loading the file stopped short (its task failed).
    #[error("reload refused, the running configuration keeps serving: loading the file: {0}")]
    Task(String),
    /// Applied by the controller, but the fast path's maps could not follow: it passes every
    /// request to the controller until the next reload or restart.
    #[error(
        "reload applied by the controller, but the fast path could not follow and passes \
         every request on until the next reload or restart: {0}"
    )]
    FastPath(String),
}

/// What a reload did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// Subnets served now.
    pub subnets: usize,
    /// What changed (`subnet 3 added`, `decline-probation`, ...); empty: the file is the same.
    pub changes: Vec<String>,
    /// Bindings the fast path answers from now (none without a fast path).
    pub fast_path_bindings: u64,
    /// Bindings the fast path dropped because the controller no longer keeps them as they are
    /// (their leases left their pools, their subnet went): the controller answers them.
    pub fast_path_bindings_removed: u64,
    /// Clients sent a Reconfigure because their subnet's options changed (`[reconfigure]
    /// on-reload`).
    #[serde(default)]
    pub reconfigured: usize,
}

/// Reloads applied and refused since the server started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadCounts {
    /// Applied.
    pub reloads: u64,
    /// Refused (the running configuration kept serving).
    pub reloads_refused: u64,
}

/// The fast path a reload brings along.
pub struct FastPathReload {
    /// The running map sync.
    pub sync: Arc<MapSync>,
    /// `--pass-rate-per-cpu`.
    pub pass_rate_per_cpu: u32,
}

/// The reload entry point of a running server (SIGHUP, the control socket's `reload`).
pub struct Reloader {
    source: ConfigSource,
    server: Arc<Server>,
    fast_path: Option<FastPathReload>,
    /// The interfaces served.
    interfaces: Vec<String>,
    running: tokio::sync::Mutex<()>,
    applied: AtomicU64,
    refused: AtomicU64,
}

impl Reloader {
    /// The reloader of `server`, started from `source`, serving `interfaces`.
    pub fn new(
        source: ConfigSource,
        server: Arc<Server>,
        fast_path: Option<FastPathReload>,
        interfaces: Vec<String>,
    ) -> Self {
        metrics::counter!("dhcp_reloads_total", "result" => "applied").absolute(0);
        metrics::counter!("dhcp_reloads_total", "result" => "refused").absolute(0);
        Reloader {
            source,
            server,
            fast_path,
            interfaces,
            running: tokio::sync::Mutex::new(()),
            applied: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// Reloads applied and refused so far.
    pub fn counts(&self) -> ReloadCounts {
        ReloadCounts {
            reloads: self.applied.load(Ordering::Relaxed),
            reloads_refused: self.refused.load(Ordering::Relaxed),
        }
    }

    /// Reads the file again and serves it, or refuses it (see the module doc). A reload asked
    /// for while one runs waits for it.
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.running.lock().await;
        crate::notify::reloading();
        let result = self.reload_locked().await;
        match &result {
            Ok(report) => {
                self.applied.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("dhcp_reloads_total", "result" => "applied").increment(1);
                info!(
                    subnets = report.subnets,
                    changes = %report.changes.join("; "),
                    fast_path_bindings = report.fast_path_bindings,
                    fast_path_bindings_removed = report.fast_path_bindings_removed,
                    "configuration reloaded"
                );
            }
            Err(err @ ReloadError::FastPath(_)) => {
                self.applied.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("dhcp_reloads_total", "result" => "applied").increment(1);
                warn!("{err}");
            }
            Err(err) => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("dhcp_reloads_total", "result" => "refused").increment(1);
                warn!("{err}");
            }
        }
        crate::notify::ready("serving");
        result
    }

    async fn reload_locked(&self) -> Result<ReloadReport, ReloadError> {
        let path = self.source.path.clone();
        let mut loaded = {
            let source = self.source.clone();
            tokio::task::spawn_blocking(move || source.load())
                .await
                .map_err(|err| ReloadError::Task(err.to_string()))??
        };
        // As at start: the reservations made at run time stay in force across a reload (none
        // is made between reading them and the swap).
        let _reservations = crate::server::operator::reservations_settled().await;
        crate::server::operator::merge_runtime_reservations(&mut loaded.config)
            .map_err(|err| ReloadError::RuntimeReservations(err.to_string()))?;
        let old = self.server.config();
        let new = &loaded.config;
        let keys = restart_keys_changed(&old, new);
        if !keys.is_empty() {
            return Err(ReloadError::NeedsRestart { path, keys });
        }
        let table = crate::leasequery::peer::PeerSink::subnets_from_config;
        if !new.leasequery.peers.is_empty() && table(&old) != table(new) {
            return Err(ReloadError::PeerSubnets { path });
        }
        loaded.keep_ids().map_err(ReloadError::Record)?;
        let mut changes = subnet_changes(&old, new);
        for (key, changed) in [
            (
                "interface-client-limit",
                old.interface_client_limit != new.interface_client_limit,
            ),
            ("line-identity", old.line_identity != new.line_identity),
            (
                "line-client-limit",
                old.line_client_limit != new.line_client_limit,
            ),
            ("line-sticky", old.line_sticky != new.line_sticky),
            ("max-lease-time", old.max_lease_time != new.max_lease_time),
            (
                "decline-probation",
                old.decline_probation != new.decline_probation,
            ),
        ] {
            if changed {
                changes.push(key.to_string());
            }
        }
        let new_options = if new.reconfigure.on_reload {
            crate::server::reconfigure::subnets_with_new_options(&old, new)
        } else {
            Vec::new()
        };
        let config = loaded.config;
        let mut report = ReloadReport {
            subnets: config.subnets.len(),
            changes,
            ..ReloadReport::default()
        };
        self.server.swap_config(config.clone(), &self.interfaces);
        if let Some(fast_path) = &self.fast_path {
            let sync = Arc::clone(&fast_path.sync);
            let server = Arc::clone(&self.server);
            let interfaces = self.interfaces.clone();
            let pass_rate_per_cpu = fast_path.pass_rate_per_cpu;
            let resync = tokio::task::spawn_blocking(move || {
                let ifaces: Vec<_> = interfaces
                    .iter()
                    .filter_map(|name| server.interfaces().by_name(name))
                    .collect();
                sync.reconfigure(
                    &config,
                    &Reconfigure {
                        server_duid: server.server_duid().as_bytes(),
                        ifaces: &ifaces,
                        pass_rate_per_cpu,
                    },
                )
            })
            .await
            .map_err(|err| ReloadError::FastPath(err.to_string()))?
            .map_err(|err| ReloadError::FastPath(format!("{err:#}")))?;
            report.fast_path_bindings = resync.pushed;
            report.fast_path_bindings_removed = resync.removed;
        }
        // Once the maps carry the new options: the clients' Renews may be answered in XDP.
        report.reconfigured = self.server.reconfigure_subnets(&new_options);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Config {
        Config::parse(text, "t.toml").unwrap()
    }

    const BASE: &str =
        "interfaces = [\"eth1\"]\n[[subnet]]\nid = 1\nprefix = \"2001:db8:1::/64\"\n";

    /// Every key that needs a restart is named when it changes; subnets and the keys a reload
    /// may change are not.
    #[test]
    fn a_reload_names_each_key_that_needs_a_restart() {
        let old = parse(BASE);
        let reloadable = parse(&format!(
            "decline-probation = 10\nline-identity = \"remote-id\"\n{BASE}dns-servers = [\"2001:db8::53\"]\n\
             [[subnet]]\nid = 2\nprefix = \"2001:db8:2::/64\"\n"
        ));
        assert!(restart_keys_changed(&old, &reloadable).is_empty());
        let restart = parse(
            "state-dir = \"/elsewhere\"\ngrace-period = 10\ninterfaces = [\"eth2\"]\n\
             [leasequery]\nallow = [\"::1/128\"]\n\
             [[subnet]]\nid = 1\nprefix = \"2001:db8:1::/64\"\n",
        );
        assert_eq!(
            restart_keys_changed(&old, &restart),
            ["state-dir", "interfaces", "grace-period", "[leasequery]"]
        );
    }

    /// The changes a reload reports name each subnet by id: added, changed, removed.
    #[test]
    fn subnet_changes_are_named_by_id() {
        let old = parse(&format!(
            "{BASE}[[subnet]]\nid = 2\nprefix = \"2001:db8:2::/64\"\n"
        ));
        let new = parse(&format!(
            "{BASE}dns-servers = [\"2001:db8::53\"]\n[[subnet]]\nid = 3\nprefix = \"2001:db8:3::/64\"\n"
        ));
        assert_eq!(
            subnet_changes(&old, &new),
            [
                "subnet 1 (2001:db8:1::/64) changed",
                "subnet 3 (2001:db8:3::/64) added",
                "subnet 2 (2001:db8:2::/64) removed"
            ]
        );
    }
}
