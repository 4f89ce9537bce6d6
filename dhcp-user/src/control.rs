//! The operator surface: the control socket of a running server and the command line.
//!
//! The server listens on a Unix socket, `<state-dir>/control.sock`. The protocol is one JSON
//! object per line each way: a [`ControlRequest`] in, a [`ControlResponse`] out, as many as the
//! client wants on one connection.
//!
//! ```text
//! → {"command":"bindings"}
//! ← {"bindings":[{"duid":"000300010200000000 01","iaid":1,"ia":"na","lease":"2001:db8:1::1000",...}]}
//! → {"command":"clear","duid":"00030001020000000001"}
//! ← {"cleared":1}
//! ```
//!
//! The command line (`dhcp-user serve|bindings|stats|clear|leasequery`) is [`cli_main`]; the binary is
//! a thin wrapper so tests can drive the same code.

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv6Addr;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::UnixListener;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::{parse_hex, Config, DEFAULT_STATE_DIR};
use crate::server::stats::StatsSnapshot;
use crate::server::{format_lease, unix_now, ClearSelector, PoolUsage, Server};
use crate::store::{Lease, LeaseFilter, LeasePages, LeaseState, LeaseType};

/// File name of the control socket in the state directory.
pub const CONTROL_SOCKET: &str = "control.sock";
/// Longest request line accepted (a clear by DUID is far below).
const MAX_REQUEST_LINE: usize = 64 * 1024;

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
    /// The request failed.
    Error(String),
}

/// Path of the control socket in `state_dir`.
pub fn socket_path(state_dir: &Path) -> PathBuf {
    state_dir.join(CONTROL_SOCKET)
}

/// Answers one request.
pub async fn answer(server: &Server, request: ControlRequest) -> ControlResponse {
    match request {
        ControlRequest::Bindings => {
            let now = unix_now();
            let mut rows = Vec::new();
            for lease in LeasePages::new(server.store().as_ref(), LeaseFilter::All, 1000) {
                match lease {
                    Ok(lease) => rows.push(Binding::from_lease(&lease, now)),
                    Err(err) => return ControlResponse::Error(err.to_string()),
                }
            }
            ControlResponse::Bindings(rows)
        }
        ControlRequest::Stats => match server.pool_usage() {
            Ok(pools) => ControlResponse::Stats(StatsReply {
                counters: server.stats().snapshot(),
                pools,
                fast_path: None,
                leasequery: server.leasequery_stats().snapshot(),
            }),
            Err(err) => ControlResponse::Error(err.to_string()),
        },
        ControlRequest::Clear { duid, address, all } => {
            let selector = match (duid, address, all) {
                (Some(duid), None, false) => match parse_hex(&duid) {
                    Ok(bytes) => ClearSelector::Duid(bytes),
                    Err(err) => return ControlResponse::Error(err),
                },
                (None, Some(address), false) => ClearSelector::Address(address),
                (None, None, true) => ClearSelector::All,
                _ => {
                    return ControlResponse::Error(
                        "clear takes exactly one of duid, address, all".into(),
                    )
                }
            };
            info!(?selector, "operator clear");
            match server.clear(&selector).await {
                Ok(count) => ControlResponse::Cleared(count),
                Err(err) => ControlResponse::Error(err.to_string()),
            }
        }
    }
}

/// Binds the control socket in `state_dir`; refuses when a live server already answers there
/// (a stale socket file of a dead one is replaced).
pub fn bind_control_socket(state_dir: &Path) -> anyhow::Result<UnixListener> {
    let path = socket_path(state_dir);
    if path.exists() {
        if UnixStream::connect(&path).is_ok() {
            bail!(
                "a server is already running with state directory {} (its control socket {} answers)",
                state_dir.display(),
                path.display()
            );
        }
        std::fs::remove_file(&path)
            .with_context(|| format!("removing the stale control socket {}", path.display()))?;
    }
    UnixListener::bind(&path)
        .with_context(|| format!("binding the control socket {}", path.display()))
}

/// Serves control connections until `shutdown` turns true, then removes the socket file.
pub async fn serve_control(
    server: Arc<Server>,
    listener: UnixListener,
    mut shutdown: watch::Receiver<bool>,
) {
    let path = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(Path::to_path_buf));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let (stream, _) = match stream {
            Ok(accepted) => accepted,
            Err(err) => {
                warn!(error = %err, "control socket accept failed");
                continue;
            }
        };
        let server = server.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut lines = tokio::io::BufReader::new(read).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let response = if line.len() > MAX_REQUEST_LINE {
                    ControlResponse::Error("request too long".into())
                } else {
                    match serde_json::from_str::<ControlRequest>(&line) {
                        Ok(request) => answer(&server, request).await,
                        Err(err) => ControlResponse::Error(format!("bad request: {err}")),
                    }
                };
                let mut out = match serde_json::to_vec(&response) {
                    Ok(out) => out,
                    Err(err) => {
                        warn!(error = %err, "control response does not serialise");
                        break;
                    }
                };
                out.push(b'\n');
                if write.write_all(&out).await.is_err() {
                    break;
                }
            }
        });
    }
    if let Some(path) = path {
        let _ = std::fs::remove_file(path);
    }
}

/// Sends one request to the server whose state directory is `state_dir` and waits for the
/// answer (blocking; for the command line and tests).
pub fn request(state_dir: &Path, request: &ControlRequest) -> anyhow::Result<ControlResponse> {
    let path = socket_path(state_dir);
    let mut stream = UnixStream::connect(&path).with_context(|| {
        format!(
            "no server answers on {} (is `dhcp-user serve` running with this --state-dir?)",
            path.display()
        )
    })?;
    let mut line = serde_json::to_vec(request)?;
    line.push(b'\n');
    stream.write_all(&line)?;
    let mut reader = BufReader::new(stream);
    let mut answer = String::new();
    reader.read_line(&mut answer)?;
    if answer.is_empty() {
        bail!("the server closed the control connection without answering");
    }
    let response: ControlResponse =
        serde_json::from_str(&answer).context("the server's answer is not a control response")?;
    if let ControlResponse::Error(message) = response {
        bail!("the server refused: {message}");
    }
    Ok(response)
}

// ---- command line ----

/// `dhcp-user`: a DHCPv6 server with an XDP fast path.
#[derive(Debug, Parser)]
#[command(name = "dhcp-user", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// The binding table of the running server.
    Bindings(QueryArgs),
    /// Packet counters and pool utilisation of the running server.
    Stats(QueryArgs),
    /// Remove leases from the running server.
    Clear(ClearArgs),
    /// Ask a DHCPv6 server (ours or any RFC 5007/5460/7653 one) about its bindings.
    Leasequery(crate::leasequery::cli::LeasequeryArgs),
}

/// `serve` options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The TOML configuration file.
    #[arg(long)]
    pub config: PathBuf,
    /// Interfaces to serve (replaces the config's `interfaces`); may repeat.
    #[arg(long = "iface")]
    pub ifaces: Vec<String>,
    /// State directory (replaces the config's `state-dir`).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// The XDP fast path: `auto` (native where the driver supports it, else generic),
    /// `native`, `generic`, or `off` (the controller answers everything).
    #[arg(long, default_value = "auto", value_parser = ["auto", "native", "generic", "off"])]
    pub xdp: String,
    /// Where the fast path's maps and links are pinned (default: under /sys/fs/bpf/dhcp-ebpf/,
    /// named after the state directory). Pinned, they keep answering renewals while the
    /// controller is stopped or upgraded.
    #[arg(long)]
    pub pin_root: Option<PathBuf>,
    /// Detach the fast path and remove its pins when the server stops (the demo and tests; by
    /// default it stays, answering renewals, until the next controller takes it over).
    #[arg(long)]
    pub detach_on_exit: bool,
    /// Per-CPU budget of DHCPv6 packets per second the fast path passes on to the controller;
    /// beyond it they are dropped and counted (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub pass_rate_per_cpu: u32,
    /// Capacity of the fast path's binding map (preallocated, about 160 bytes of kernel memory
    /// per binding); clients beyond it are served by the controller alone.
    #[arg(long, default_value_t = dhcp_common::DEFAULT_MAX_BINDINGS)]
    pub max_bindings: u32,
}

/// Where to find the running server.
#[derive(Debug, Args)]
pub struct Locate {
    /// The server's state directory (default: the config's `state-dir`, else /var/lib/dhcp-user).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// Read the state directory from this config file.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

impl Locate {
    /// The state directory to talk to.
    pub fn state_dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.state_dir {
            return Ok(dir.clone());
        }
        if let Some(config) = &self.config {
            return Ok(Config::load(config)?.state_dir);
        }
        Ok(PathBuf::from(DEFAULT_STATE_DIR))
    }
}

/// `bindings` / `stats` options.
#[derive(Debug, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub locate: Locate,
    /// JSON output for scripts.
    #[arg(long)]
    pub json: bool,
    /// Where the server pinned its fast path (`stats` reads the XDP counters there); default:
    /// derived from the state directory, as `serve` does.
    #[arg(long)]
    pub pin_root: Option<PathBuf>,
}

/// `clear` options.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["duid", "address", "all"]))]
pub struct ClearArgs {
    #[command(flatten)]
    pub locate: Locate,
    /// Every lease of this client (hex DUID, `:` separators allowed).
    #[arg(long)]
    pub duid: Option<String>,
    /// The lease of this address (or the delegated prefix containing it).
    #[arg(long)]
    pub address: Option<Ipv6Addr>,
    /// Every lease.
    #[arg(long)]
    pub all: bool,
    /// JSON output for scripts.
    #[arg(long)]
    pub json: bool,
}

/// The binary's main: parses `args` and runs the command.
pub fn cli_main<I, T>(args: I) -> anyhow::Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::parse_from(args);
    match cli.command {
        Command::Serve(args) => {
            init_tracing();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(serve(args))
        }
        Command::Bindings(args) => {
            let response = request(&args.locate.state_dir()?, &ControlRequest::Bindings)?;
            let ControlResponse::Bindings(rows) = response else {
                bail!("unexpected answer to bindings");
            };
            if args.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", format_bindings(&rows));
            }
            Ok(())
        }
        Command::Stats(args) => {
            let state_dir = args.locate.state_dir()?;
            let response = request(&state_dir, &ControlRequest::Stats)?;
            let ControlResponse::Stats(mut stats) = response else {
                bail!("unexpected answer to stats");
            };
            // The fast path counts in the kernel: read its pinned counters directly.
            let pin_root = args
                .pin_root
                .clone()
                .unwrap_or_else(|| crate::fastpath::default_pin_root(&state_dir));
            if let Ok(Some(counters)) = crate::fastpath::pinned_stats(&pin_root) {
                stats.fast_path = Some(
                    counters
                        .into_iter()
                        .map(|(name, c)| (name.to_string(), c.packets))
                        .collect(),
                );
            }
            if args.json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
            } else {
                print!("{}", format_stats(&stats));
            }
            Ok(())
        }
        Command::Clear(args) => {
            let request_body = ControlRequest::Clear {
                duid: args.duid.clone(),
                address: args.address,
                all: args.all,
            };
            let response = request(&args.locate.state_dir()?, &request_body)?;
            let ControlResponse::Cleared(count) = response else {
                bail!("unexpected answer to clear");
            };
            if args.json {
                println!("{}", serde_json::json!({ "cleared": count }));
            } else {
                println!("cleared {count} lease(s)");
            }
            Ok(())
        }
        Command::Leasequery(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(crate::leasequery::cli::run(&args))
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `dhcp-user serve`.
async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = Config::load(&args.config)?;
    if !args.ifaces.is_empty() {
        config.interfaces = args.ifaces.clone();
    }
    if let Some(dir) = &args.state_dir {
        config.state_dir = dir.clone();
    }
    if config.interfaces.is_empty() {
        bail!(
            "no interface to serve: set `interfaces` in {} or pass --iface",
            args.config.display()
        );
    }
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating {}", config.state_dir.display()))?;
    // Bound first: a second server on the same state directory stops here, before the store.
    let control = bind_control_socket(&config.state_dir)?;
    if let Some(metrics) = &config.metrics {
        metrics_exporter_prometheus::PrometheusBuilder::new()
            .with_http_listener(metrics.listen)
            .install()
            .with_context(|| format!("starting the metrics listener on {}", metrics.listen))?;
        info!(listen = %metrics.listen, "Prometheus metrics");
    }
    let interfaces = config.interfaces.clone();
    let server = Server::open(config, &interfaces)?;
    let (shutdown_tx, shutdown_rx) = watch::channel(false);

    let fast_path = start_fast_path(&args, &server, &interfaces).await?;

    // The sockets open before the control socket answers: a client that sees the server
    // answer there can send requests at once.
    let sockets = crate::server::io::open_sockets(&server, &interfaces)?;
    let leasequery_tasks = start_leasequery(&server, &shutdown_rx).await?;
    let control_task = tokio::spawn(serve_control(server.clone(), control, shutdown_rx.clone()));
    let signals = tokio::spawn(async move {
        wait_for_stop_signal().await;
        info!("stopping");
        let _ = shutdown_tx.send(true);
    });
    let served = crate::server::io::serve_sockets(server.clone(), sockets, shutdown_rx).await;
    signals.abort();
    let _ = control_task.await;
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
    if config.serves_tcp() {
        let context = Arc::new(LeasequeryContext::for_server(
            server,
            server.leasequery_settings().clone(),
            stats.clone(),
        ));
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
        let sink = peer::PeerSink::for_server(server, stats.clone());
        tasks.push(tokio::spawn(peer::follow_peer(
            settings,
            sink,
            shutdown.clone(),
        )));
    }
    Ok(tasks)
}

/// Loads, configures and attaches the XDP fast path for `serve` (unless `--xdp off`).
async fn start_fast_path(
    args: &ServeArgs,
    server: &Arc<Server>,
    interfaces: &[String],
) -> anyhow::Result<Option<crate::fastpath::sync::FastPathHandle>> {
    use crate::fastpath::{sync, AttachMode};
    let mode = match args.xdp.as_str() {
        "off" => {
            info!("fast path off: the controller answers everything");
            return Ok(None);
        }
        "native" => AttachMode::Native,
        "generic" => AttachMode::Generic,
        _ => AttachMode::Auto,
    };
    let pin_root = args.pin_root.clone().unwrap_or_else(|| {
        let state = server
            .config()
            .state_dir
            .to_string_lossy()
            .trim_matches('/')
            .replace('/', "-");
        Path::new(crate::fastpath::DEFAULT_PIN_ROOT).join(if state.is_empty() {
            "root".into()
        } else {
            state
        })
    });
    let settings = sync::FastPathSettings {
        mode,
        pin_root: Some(pin_root.clone()),
        pass_rate_per_cpu: args.pass_rate_per_cpu,
        max_bindings: args.max_bindings,
    };
    let handle = sync::start(&settings, server, interfaces)
        .await
        .with_context(|| {
            format!(
                "starting the XDP fast path (pins under {}; --xdp off runs without it)",
                pin_root.display()
            )
        })?;
    info!(
        pinned = %pin_root.display(),
        bindings = handle.report.pushed,
        controller_only = handle.report.controller_only,
        "fast path ready"
    );
    Ok(Some(handle))
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The binding table as text.
pub fn format_bindings(rows: &[Binding]) -> String {
    let mut out = format!(
        "{:<30} {:>10} {:<3} {:<28} {:<9} {:>10} {}\n",
        "DUID", "IAID", "IA", "ADDRESS/PREFIX", "STATE", "EXPIRES", "INTERFACE"
    );
    for row in rows {
        out.push_str(&format!(
            "{:<30} {:>10} {:<3} {:<28} {:<9} {:>9}s {}\n",
            row.duid, row.iaid, row.ia, row.lease, row.state, row.expires_in, row.interface
        ));
    }
    out.push_str(&format!("{} binding(s)\n", rows.len()));
    out
}

/// Counters as text.
pub fn format_stats(stats: &StatsReply) -> String {
    let mut out = String::from("received:\n");
    for (name, count) in &stats.counters.received {
        out.push_str(&format!("  {name:<24} {count}\n"));
    }
    out.push_str("sent:\n");
    for (name, count) in &stats.counters.sent {
        out.push_str(&format!("  {name:<24} {count}\n"));
    }
    out.push_str("dropped:\n");
    for (reason, count) in &stats.counters.drops {
        out.push_str(&format!("  {reason:<24} {count}\n"));
    }
    out.push_str("pools:\n");
    for pool in &stats.pools {
        out.push_str(&format!(
            "  subnet {} {} {:<3} {} / {}\n",
            pool.subnet_id, pool.prefix, pool.kind, pool.active, pool.size
        ));
    }
    if !stats.leasequery.is_empty() {
        out.push_str("leasequery (TCP and peers):\n");
        for (name, count) in &stats.leasequery {
            out.push_str(&format!("  {name:<24} {count}\n"));
        }
    }
    if let Some(fast_path) = &stats.fast_path {
        out.push_str("fast path (XDP, packets):\n");
        for (name, count) in fast_path.iter().filter(|(_, count)| **count > 0) {
            out.push_str(&format!("  {name:<24} {count}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses_round_trip_as_json_lines() {
        let clear = ControlRequest::Clear {
            duid: Some("0003".into()),
            address: None,
            all: false,
        };
        let text = serde_json::to_string(&clear).unwrap();
        assert_eq!(text, r#"{"command":"clear","duid":"0003","all":false}"#);
        assert_eq!(
            serde_json::from_str::<ControlRequest>(&text).unwrap(),
            clear
        );
        assert_eq!(
            serde_json::from_str::<ControlRequest>(r#"{"command":"bindings"}"#).unwrap(),
            ControlRequest::Bindings
        );
        let cleared = serde_json::to_string(&ControlResponse::Cleared(3)).unwrap();
        assert_eq!(cleared, r#"{"cleared":3}"#);
    }

    #[test]
    fn cli_parses_every_command() {
        let cli = Cli::try_parse_from([
            "dhcp-user",
            "serve",
            "--config",
            "a.toml",
            "--iface",
            "eth1",
            "--iface",
            "eth2",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        assert_eq!(args.ifaces, vec!["eth1", "eth2"]);
        assert!(Cli::try_parse_from(["dhcp-user", "clear"]).is_err());
        assert!(Cli::try_parse_from(["dhcp-user", "clear", "--all", "--duid", "00"]).is_err());
        assert!(Cli::try_parse_from(["dhcp-user", "clear", "--address", "2001:db8::1"]).is_ok());
        assert!(
            Cli::try_parse_from(["dhcp-user", "bindings", "--json", "--state-dir", "/x"]).is_ok()
        );
    }

    #[tokio::test]
    async fn control_socket_answers_bindings_stats_and_clear() {
        let dir = std::env::temp_dir().join(format!("dhcp-user-control-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config =
            Config::parse(include_str!("../../examples/lab.toml"), "lab.toml").unwrap();
        config.state_dir = dir.clone();
        let server = Server::open(config, &[]).unwrap();
        let listener = bind_control_socket(&dir).unwrap();
        assert!(
            bind_control_socket(&dir).is_err(),
            "a second server must be refused"
        );
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(serve_control(server.clone(), listener, stopped));
        let dir2 = dir.clone();
        let (bindings, stats, cleared) = tokio::task::spawn_blocking(move || {
            (
                request(&dir2, &ControlRequest::Bindings).unwrap(),
                request(&dir2, &ControlRequest::Stats).unwrap(),
                request(
                    &dir2,
                    &ControlRequest::Clear {
                        duid: None,
                        address: None,
                        all: true,
                    },
                )
                .unwrap(),
            )
        })
        .await
        .unwrap();
        assert_eq!(bindings, ControlResponse::Bindings(Vec::new()));
        let ControlResponse::Stats(stats) = stats else {
            panic!("not stats")
        };
        assert_eq!(stats.pools.len(), 2);
        assert_eq!(cleared, ControlResponse::Cleared(0));
        let _ = stop.send(true);
        task.await.unwrap();
        assert!(!socket_path(&dir).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
