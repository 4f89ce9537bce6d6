//! The composition root of `dhcp-user serve`: builds the store and server, the XDP fast path,
//! the leasequery service and peers, the control socket and the metrics listener, and wires
//! them together. Nothing here decides anything about a packet or a lease.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use tokio::sync::{broadcast, watch};
use tracing::{info, warn};

use crate::config::Config;
use crate::control::{bind_control_socket, serve_control};
use crate::fastpath::AttachMode;
use crate::lease_events::LeaseEvent;
use crate::netif::Interfaces;
use crate::proto::Duid;
use crate::reload::{ConfigSource, FastPathReload, Reloader};
use crate::server::Server;
use crate::store::{Lease, LeaseStore, LeaseType, StoreWriter};

/// What `serve` runs with (the command line's `serve` options, parsed).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The TOML configuration file.
    pub config: PathBuf,
    /// Interfaces to serve (replace the config's `interfaces` when not empty).
    pub ifaces: Vec<String>,
    /// State directory (replaces the config's `state-dir`).
    pub state_dir: Option<PathBuf>,
    /// How to attach the XDP fast path; `None`: off (the controller answers everything).
    pub xdp: Option<AttachMode>,
    /// Where the fast path's maps and links are pinned (default:
    /// [`crate::fastpath::default_pin_root`] of the state directory).
    pub pin_root: Option<PathBuf>,
    /// Detach the fast path and remove its pins when the server stops.
    pub detach_on_exit: bool,
    /// Per-CPU budget of DHCPv6 packets per second passed on to the controller (0: no limit).
    pub pass_rate_per_cpu: u32,
    /// Replaces the config's `line-pass-budget` (messages per second and line passed on).
    pub line_pass_budget: Option<u32>,
    /// Replaces the config's `line-pass-burst`.
    pub line_pass_burst: Option<u32>,
    /// Capacity of the fast path's binding map.
    pub max_bindings: u32,
}

impl ServeOptions {
    /// Where the configuration comes from, with this command line's overrides.
    pub fn config_source(&self) -> ConfigSource {
        ConfigSource {
            path: self.config.clone(),
            ifaces: self.ifaces.clone(),
            state_dir: self.state_dir.clone(),
            line_pass_budget: self.line_pass_budget,
            line_pass_burst: self.line_pass_burst,
        }
    }
}

/// Runs the server until SIGINT or SIGTERM (SIGHUP reloads the configuration): `dhcp-user
/// serve`. Tells systemd (`$NOTIFY_SOCKET`) once it serves.
pub async fn run(args: ServeOptions) -> anyhow::Result<()> {
    let source = args.config_source();
    let loaded = source.load()?;
    let config = loaded.config.clone();
    if config.interfaces.is_empty() {
        bail!(
            "no interface to serve: set `interfaces` in {} or pass --iface",
            args.config.display()
        );
    }
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating {}", config.state_dir.display()))?;
    // Bound first: a second server on the same state directory stops here, before the store.
    let control = bind_control_socket(&config.state_dir, config.control_socket_group.as_deref())?;
    // The ids in force are recorded before any lease is granted under them.
    loaded
        .keep_ids()
        .context("recording the subnet ids in the state directory")?;
    if let Some(metrics) = &config.metrics {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(metrics.listen)
            .install()
            .with_context(|| format!("starting the metrics listener on {}", metrics.listen))?;
        info!(listen = %metrics.listen, "Prometheus metrics");
    }
    let interfaces = config.interfaces.clone();
    // The fast path loads (and, cold, fills its map from the rows) on a thread of its own
    // while the server loads its copy of the leases.
    let fast_path_settings = fast_path_settings(&args, &config);
    let mut prefill = match &fast_path_settings {
        Some(settings) => Some(
            crate::fastpath::sync::Prefill::spawn(settings)
                .context("starting the fast path's loading thread")?,
        ),
        None => None,
    };
    let server = match prefill.as_mut() {
        Some(prefill) => Server::open_observed(config, &interfaces, prefill)?,
        None => Server::open(config, &interfaces)?,
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    // Open before the fast path attaches: from here the copy is complete, and what the
    // program passes on waits in the sockets' buffers (bounded by the kernel, which counts
    // what overflows) until they are served. Before, a passed message finds no socket and
    // is dropped; the client sends it again (RFC 8415 section 15).
    let sockets = crate::server::io::open_sockets(&server, &interfaces)?;
    let fast_path = match (fast_path_settings, prefill) {
        (Some(settings), Some(prefill)) => {
            Some(start_fast_path(&settings, prefill, &server, &interfaces).await?)
        }
        _ => {
            info!("fast path off: the controller answers everything");
            None
        }
    };
    if let Some(handle) = &fast_path {
        // Reservations added or deleted at run time reach the maps before the answer.
        server.follow_reservations(handle.sync.clone());
        // Direct clients' link-layer addresses, from the frames the program passes on.
        let macs = handle
            .fast_path
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .client_macs();
        match macs {
            Ok(macs) => server.read_client_macs(Arc::new(macs)),
            Err(err) => warn!(
                error = %err,
                "no client MAC map: direct clients get no link-layer address"
            ),
        }
    }

    let leasequery_tasks = start_leasequery(&server, &shutdown_rx).await?;
    let routes = tokio::spawn({
        let (config, server, shutdown) = (
            server.config().routes.clone(),
            server.clone(),
            shutdown_rx.clone(),
        );
        async move {
            if let Err(err) = crate::routes::run(config, server, shutdown).await {
                warn!(error = %err, "[routes]: no routes are kept");
            }
        }
    });
    let reloader = Arc::new(Reloader::new(
        source,
        server.clone(),
        fast_path.as_ref().map(|handle| FastPathReload {
            sync: handle.sync.clone(),
            pass_rate_per_cpu: args.pass_rate_per_cpu,
        }),
        interfaces.clone(),
    ));
    let control_task = tokio::spawn(serve_control(
        server.clone(),
        Some(reloader.clone()),
        control,
        shutdown_rx.clone(),
    ));
    let api_task = start_api(&server, &reloader, &shutdown_rx).await?;
    let lease_log_task = server.config().lease_log.map(|log| {
        tokio::spawn(crate::lease_log::run(
            server.config().state_dir.clone(),
            log,
            server.subscribe(),
            shutdown_rx.clone(),
        ))
    });
    // A shared (PostgreSQL) lease database: other servers' commits reach our mirror and maps.
    let follower = tokio::spawn({
        let server = server.clone();
        let shutdown = shutdown_rx.clone();
        async move {
            if let Err(err) = server.follow_other_servers(shutdown).await {
                warn!(error = %err, "following the other servers on the lease database stopped");
            }
        }
    });
    // Every handler is in place before READY=1: a SIGHUP (systemd's reload) or SIGTERM sent
    // right after it must not meet the default action, which ends the process.
    let stop_signals = StopSignals::install();
    let hangup = install_sighup();
    let signals = tokio::spawn(async move {
        stop_signals.wait().await;
        info!("stopping");
        crate::notify::stopping();
        let _ = shutdown_tx.send(true);
    });
    let reloads = tokio::spawn(reload_on_sighup(hangup, reloader));
    // Sockets open, fast path attached (when on), leasequery listening: ready.
    crate::notify::ready("serving");
    let served = crate::server::io::serve_sockets(server.clone(), sockets, shutdown_rx).await;
    signals.abort();
    reloads.abort();
    follower.abort();
    routes.abort();
    let _ = control_task.await;
    if let Some(task) = api_task {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
    }
    if let Some(task) = lease_log_task {
        if let Ok(Err(err)) = task.await {
            warn!(error = %err, "the lease log failed");
        }
    }
    for task in leasequery_tasks {
        // Sessions in progress end with QueryTerminated; a stuck peer cannot hold us up.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), task).await;
    }
    if let (Some(handle), true) = (fast_path, args.detach_on_exit) {
        let mut fp = handle.fast_path.lock().unwrap_or_else(|e| e.into_inner());
        for iface in &interfaces {
            let _ = fp.detach(iface);
        }
        if let Some(root) = fp.pin_root().map(Path::to_path_buf) {
            drop(fp);
            let _ = crate::fastpath::FastPath::unpin_all(&root);
        }
        info!("fast path detached");
    }
    served?;
    Ok(())
}

/// Binds the HTTP API (`[api]`, when configured) and serves it until `shutdown`.
async fn start_api(
    server: &Arc<Server>,
    reloader: &Arc<Reloader>,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(config) = server.config().api.clone() else {
        return Ok(None);
    };
    let listener = crate::api::bind_api(&config).await?;
    let server = server.clone();
    let reloader = Some(reloader.clone());
    let shutdown = shutdown.clone();
    Ok(Some(tokio::spawn(async move {
        if let Err(err) = crate::api::serve_api(server, reloader, config, listener, shutdown).await
        {
            warn!(error = %err, "the HTTP API stopped");
        }
    })))
}

/// Opens the leasequery TCP listeners (`[leasequery] listen`, when anyone may use them) and
/// starts following every configured peer; returns their tasks, which end on `shutdown`.
async fn start_leasequery(
    server: &Arc<Server>,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    use crate::leasequery::{peer, serve_tcp, LeasequeryContext};
    let config = server.config().leasequery.clone();
    let stats = server.leasequery_stats().clone();
    let mut tasks = Vec::new();
    let peer_tls = crate::leasequery::peer_tls(&config)
        .context("[leasequery] tls-*: the peers' TLS configuration")?;
    if config.serves_tcp() {
        let mut context = LeasequeryContext::for_server(
            server,
            (*server.leasequery_settings()).clone(),
            stats.clone(),
        );
        context.tls = crate::leasequery::server_tls(&config)
            .context("[leasequery] tls-*: the server's TLS configuration")?;
        // The links follow a reload (the rest of `[leasequery]` takes a restart).
        let live = Arc::clone(server);
        context.live = Some(Arc::new(move || live.leasequery_settings()));
        let context = Arc::new(context);
        for listen in &config.listen {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| {
                    format!("binding the leasequery TCP listener {listen} ([leasequery] listen)")
                })?;
            tasks.push(tokio::spawn(serve_tcp(
                listener,
                context.clone(),
                shutdown.clone(),
            )));
        }
    }
    for address in &config.peers {
        let peer_allowed = match address.ip() {
            std::net::IpAddr::V6(ip) => config.allow.iter().any(|net| net.contains(&ip)),
            std::net::IpAddr::V4(_) => false,
        };
        if !peer_allowed {
            warn!(
                peer = %address,
                "[leasequery] allow does not hold this peer's address: it follows us only \
                 if it queries from an address that allow holds"
            );
        }
        let mut settings = peer::PeerSettings::new(*address, server.server_duid().clone());
        settings.io_timeout = std::time::Duration::from_secs(u64::from(config.io_timeout));
        // A silently dead session (the peer's box gone without a FIN) is given up after three
        // missed keepalives: 16 s with the default 5 s interval.
        settings.silence_timeout = peer::PeerSettings::silence_for(std::time::Duration::from_secs(
            u64::from(config.keepalive_interval),
        ));
        settings.tls = peer_tls.clone();
        let mut sink = peer::PeerSink::for_server(server.as_ref(), stats.clone());
        let publisher = Arc::clone(server);
        sink.publish = Some(Arc::new(move |events| publisher.publish_installed(events)));
        tasks.push(tokio::spawn(peer::follow_peer(
            settings,
            sink,
            shutdown.clone(),
        )));
    }
    Ok(tasks)
}

/// How `serve` runs the fast path (`None`: `--xdp off`).
fn fast_path_settings(
    args: &ServeOptions,
    config: &Config,
) -> Option<crate::fastpath::sync::FastPathSettings> {
    let mode = args.xdp?;
    let pin_root = match &args.pin_root {
        Some(root) => root.clone(),
        None => default_pin_root_adopting_legacy(&config.state_dir),
    };
    Some(crate::fastpath::sync::FastPathSettings {
        mode,
        pin_root: Some(pin_root),
        pass_rate_per_cpu: args.pass_rate_per_cpu,
        max_bindings: args.max_bindings,
    })
}

/// Configures and attaches the XDP fast path `prefill` loaded while the server opened.
async fn start_fast_path(
    settings: &crate::fastpath::sync::FastPathSettings,
    prefill: crate::fastpath::sync::Prefill,
    server: &Arc<Server>,
    interfaces: &[String],
) -> anyhow::Result<crate::fastpath::sync::FastPathHandle> {
    use crate::fastpath::sync;
    let pin_root = settings.pin_root.clone().unwrap_or_default();
    let context = || {
        format!(
            "starting the XDP fast path (pins under {}; --xdp off runs without it)",
            pin_root.display()
        )
    };
    let prefilled = prefill.finish().with_context(context)?;
    let handle = sync::start_prefilled(settings, server, interfaces, prefilled)
        .await
        .with_context(context)?;
    info!(
        pinned = %pin_root.display(),
        bindings = handle.report.pushed,
        controller_only = handle.report.controller_only,
        "fast path ready"
    );
    Ok(handle)
}

/// The default pin root of the server on `state_dir`, after moving there the pins an earlier
/// release left under the legacy root (so an upgrade takes over its running fast path).
fn default_pin_root_adopting_legacy(state_dir: &Path) -> PathBuf {
    let root = crate::fastpath::default_pin_root(state_dir);
    let legacy = crate::fastpath::legacy_pin_root(state_dir);
    match crate::fastpath::adopt_legacy_pins(&legacy, &root) {
        Ok(true) => info!(
            from = %legacy.display(),
            to = %root.display(),
            "fast path: moved the pins of an earlier release to the new default pin root"
        ),
        Ok(false) => {}
        Err(err) => warn!(
            from = %legacy.display(),
            to = %root.display(),
            error = %err,
            "fast path: could not move the pins of an earlier release; starting afresh"
        ),
    }
    root
}

/// The SIGHUP stream, registered now (none: reload only through the control socket).
fn install_sighup() -> Option<tokio::signal::unix::Signal> {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(err) => {
            warn!(error = %err, "cannot catch SIGHUP: reload only through `dhcp-user reload`");
            None
        }
    }
}

/// Reloads on every SIGHUP (the outcome is logged and counted by the reloader).
async fn reload_on_sighup(hangup: Option<tokio::signal::unix::Signal>, reloader: Arc<Reloader>) {
    let Some(mut hangup) = hangup else {
        return;
    };
    while hangup.recv().await.is_some() {
        info!("SIGHUP: reloading the configuration");
        let _ = reloader.reload().await;
    }
}

/// SIGTERM and SIGINT, caught from the moment this is made.
struct StopSignals {
    term: Option<tokio::signal::unix::Signal>,
    interrupt: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    fn install() -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        StopSignals {
            term: signal(SignalKind::terminate()).ok(),
            interrupt: signal(SignalKind::interrupt()).ok(),
        }
    }

    /// Until either arrives (forever when neither could be caught).
    async fn wait(self) {
        let StopSignals {
            mut term,
            mut interrupt,
        } = self;
        let term = async {
            match term.as_mut() {
                Some(term) => {
                    term.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        let interrupt = async {
            match interrupt.as_mut() {
                Some(interrupt) => {
                    interrupt.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = term => {}
            _ = interrupt => {}
        }
    }
}

// ---- the server as the leasequery service, peer sync and the fast path see it ----
//
// Each consumer names what it needs of the server in a trait of its own; the server meets them
// here, where the product is wired, so neither imports the other.

impl crate::leasequery::LeaseSource for Server {
    fn store(&self) -> &Arc<dyn LeaseStore> {
        Server::store(self)
    }
    fn subscribe(&self) -> broadcast::Receiver<LeaseEvent> {
        Server::subscribe(self)
    }
    fn server_duid(&self) -> &Duid {
        Server::server_duid(self)
    }
}

impl crate::leasequery::LeaseSink for Server {
    fn store(&self) -> &Arc<dyn LeaseStore> {
        Server::store(self)
    }
    fn writer(&self) -> &StoreWriter {
        Server::writer(self)
    }
    fn events(&self) -> &broadcast::Sender<LeaseEvent> {
        Server::events(self)
    }
    fn config(&self) -> Arc<Config> {
        Server::config(self)
    }
    fn links(&self) -> Vec<(String, u32)> {
        Server::direct_links(self)
    }
}

impl crate::routes::LeaseSource for Server {
    fn subscribe(&self) -> broadcast::Receiver<LeaseEvent> {
        Server::subscribe(self)
    }
    fn each_durable_lease(&self, visit: &mut dyn FnMut(&Lease)) {
        Server::each_durable_lease(self, visit)
    }
}

impl crate::server::LoadObserver for crate::fastpath::sync::Prefill {
    fn config(&mut self, config: &Config) {
        crate::fastpath::sync::Prefill::config(self, config)
    }
    fn rows(&mut self, rows: Vec<Lease>) {
        crate::fastpath::sync::Prefill::rows(self, rows)
    }
}

impl crate::fastpath::sync::LeaseSource for Server {
    fn store(&self) -> &Arc<dyn LeaseStore> {
        Server::store(self)
    }
    fn durable_leases_of(&self, duid: &[u8], limit: usize) -> Vec<Lease> {
        Server::durable_leases_of(self, duid, limit)
    }
    fn subscribe(&self) -> broadcast::Receiver<LeaseEvent> {
        Server::subscribe(self)
    }
    fn class_facts_of(&self, duid: &[u8]) -> Option<Arc<crate::config::classes::ClassFacts>> {
        Server::class_facts_of(self, duid)
    }
    fn each_durable_lease(&self, visit: &mut dyn FnMut(&Lease)) {
        Server::each_durable_lease(self, visit)
    }
}

impl crate::fastpath::sync::RenewalSink for Server {
    fn apply_fast_path_renewal(
        &self,
        duid: &[u8],
        expires_unix: i64,
        types: &[LeaseType],
    ) -> Result<usize, anyhow::Error> {
        Ok(Server::apply_fast_path_renewal(
            self,
            duid,
            expires_unix,
            types,
        )?)
    }
    fn writer(&self) -> &StoreWriter {
        Server::writer(self)
    }
}

impl crate::fastpath::sync::Controller for Server {
    fn config(&self) -> Arc<Config> {
        Server::config(self)
    }
    fn server_duid(&self) -> &[u8] {
        Server::server_duid(self).as_bytes()
    }
    fn interfaces(&self) -> &Arc<Interfaces> {
        Server::interfaces(self)
    }
}
