//! The command line: `dhcp-user serve|bindings|stats|clear|reload|check-config|leasequery|...`,
//! parsed with clap, and
//! the text the commands print. [`cli_main`] is the binary's main; `serve` is run by
//! [`crate::serve`], the other commands talk to the running server through [`crate::control`].

use std::net::Ipv6Addr;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, DEFAULT_STATE_DIR};
use crate::control::{request, Binding, ControlRequest, ControlResponse, StatsReply};
use crate::fastpath::AttachMode;
use crate::serve::ServeOptions;

pub mod provision;
pub mod reconfigure;

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
    /// Make the running server read its configuration file again and serve it; a file with
    /// any error, or one changing a key that needs a restart, is refused and the running
    /// configuration keeps serving (as on SIGHUP).
    Reload(ReloadArgs),
    /// Check a configuration file as `serve` would at start (exit status 0: it would start
    /// with it; 1: it would not, saying why, with the file, line and key).
    CheckConfig(CheckConfigArgs),
    /// Print the manual page (roff, generated from this command line's help), or with `--dir`
    /// write it and one page per command there (`dhcp-user.8`, `dhcp-user-serve.8`, ...).
    #[command(hide = true)]
    Manpage {
        /// Where to write every page.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Leases of the running server: get, add, update, delete.
    #[command(subcommand)]
    Lease(provision::LeaseCommand),
    /// Reservations of the running server: add, delete, list.
    #[command(subcommand)]
    Reservation(provision::ReservationCommand),
    /// Per pool of the running server: total, assigned, declined, free.
    Usage(UsageArgs),
    /// Send a Reconfigure to a client (`--duid`) or to every client of a subnet (`--subnet`)
    /// that sent Reconfigure Accept: it comes back with a Renew (`--msg renew`) or an
    /// Information-Request (`--msg inf-req`) and takes the current options.
    Reconfigure(reconfigure::ReconfigureArgs),
    /// The forensic lease log (`[lease-log]`): export, who held an address when.
    #[command(subcommand)]
    LeaseLog(provision::LeaseLogCommand),
    /// Ask a DHCPv6 server (ours or any RFC 5007/5460/7653 one) about its bindings.
    Leasequery(crate::leasequery::cli::LeasequeryArgs),
    /// Import Kea's DHCPv6 leases (memfile or PostgreSQL) into the configured lease store.
    ImportKea(ImportKeaArgs),
    /// Convert Kea's DHCPv6 configuration (kea-dhcp6.conf) to ours, on stdout; what does not
    /// convert is listed on stderr and at the top of the output.
    ConvertKeaConfig {
        /// Kea's configuration file.
        file: PathBuf,
    },
}

/// `reload` options.
#[derive(Debug, Args)]
pub struct ReloadArgs {
    #[command(flatten)]
    pub locate: Locate,
    /// JSON output for scripts.
    #[arg(long)]
    pub json: bool,
}

/// `check-config` options.
#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The TOML configuration file.
    pub file: PathBuf,
    /// Interfaces `serve` is given (replaces the file's `interfaces`); may repeat.
    #[arg(long = "iface")]
    pub ifaces: Vec<String>,
    /// The state directory `serve` is given (its record of subnet ids is checked too).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// JSON output for scripts: `{"file", "ok", "subnets": [{"id", "prefix"}], "notes": [...]}`
    /// or `{"file", "ok": false, "errors": [...]}`.
    #[arg(long)]
    pub json: bool,
}

/// `check-config`: the checks `serve` makes at start, nothing started; exits 1 on an error.
fn check_config(args: &CheckConfigArgs) -> anyhow::Result<()> {
    let source = crate::reload::ConfigSource {
        path: args.file.clone(),
        ifaces: args.ifaces.clone(),
        state_dir: args.state_dir.clone(),
        line_pass_budget: None,
        line_pass_burst: None,
    };
    match source.load() {
        Ok(loaded) => {
            let subnets: Vec<serde_json::Value> = loaded
                .config
                .subnets
                .iter()
                .map(|s| serde_json::json!({ "id": s.id, "prefix": s.prefix.to_string() }))
                .collect();
            let notes = loaded.config.fast_path_class_notes();
            if args.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "file": args.file, "ok": true, "subnets": subnets, "notes": notes
                    })
                );
            } else {
                for note in &notes {
                    println!("{}: note: {note}", args.file.display());
                }
                println!(
                    "{}: ok ({} subnet(s), ids {})",
                    args.file.display(),
                    subnets.len(),
                    loaded
                        .config
                        .subnets
                        .iter()
                        .map(|s| format!("{}={}", s.id, s.prefix))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
            Ok(())
        }
        Err(err) if args.json => {
            println!(
                "{}",
                serde_json::json!({ "file": args.file, "ok": false, "errors": [err.to_string()] })
            );
            std::process::exit(1);
        }
        Err(err) => Err(err.into()),
    }
}

/// The manual pages: the top one on stdout, or every page into `dir`.
fn write_manpages(dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    use clap::CommandFactory;
    let top = Cli::command();
    let Some(dir) = dir else {
        let mut out = std::io::stdout().lock();
        return clap_mangen::Man::new(top)
            .section("8")
            .render(&mut out)
            .context("writing the manual page");
    };
    let mut pages = vec![("dhcp-user".to_string(), top.clone())];
    for sub in top.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("dhcp-user-{}", sub.get_name());
        // The page's title is the command's name; a CLI that exits may leak it.
        let title: &'static str = Box::leak(name.clone().into_boxed_str());
        pages.push((name, sub.clone().name(title)));
    }
    for (name, command) in pages {
        let path = dir.join(format!("{name}.8"));
        let mut file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        clap_mangen::Man::new(command)
            .section("8")
            .render(&mut file)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `import-kea` options.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("source").required(true).args(["memfile", "postgresql"]))]
pub struct ImportKeaArgs {
    /// Our configuration: its `[lease-database]` (and `state-dir`) say where the leases go.
    #[arg(long)]
    pub config: PathBuf,
    /// Kea's memfile, `leases6.csv`.
    #[arg(long)]
    pub memfile: Option<PathBuf>,
    /// Kea's PostgreSQL lease database (URL or key=value connection string).
    #[arg(long)]
    pub postgresql: Option<String>,
    /// A file whose first line is the password of Kea's database.
    #[arg(long, requires = "postgresql")]
    pub postgresql_password_file: Option<PathBuf>,
    /// JSON output for scripts.
    #[arg(long)]
    pub json: bool,
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
    /// Where the fast path's maps and links are pinned (default: under /sys/fs/bpf/dhcp-user/,
    /// named after the state directory; pins an earlier release left under
    /// /sys/fs/bpf/dhcp-ebpf/ are moved there). Pinned, they keep answering renewals while the
    /// controller is stopped or upgraded.
    #[arg(long)]
    pub pin_root: Option<PathBuf>,
    /// Detach the fast path and remove its pins when the server stops (demo and tests; by
    /// default it stays, answering renewals, until the next controller takes it over).
    #[arg(long)]
    pub detach_on_exit: bool,
    /// Per-CPU budget of DHCPv6 packets per second the fast path passes on to the controller;
    /// beyond it they are dropped and counted (0: no limit).
    #[arg(long, default_value_t = 0)]
    pub pass_rate_per_cpu: u32,
    /// Messages per second each line (a direct client's interface and VLAN tags, a relay's
    /// Interface-ID or Remote-ID) may have the fast path pass on to the controller; beyond it
    /// they are dropped and counted (`drop_line_budget`), so a flood on one line cannot starve
    /// the others (replaces the config's `line-pass-budget`; 0: off).
    #[arg(long)]
    pub line_pass_budget: Option<u32>,
    /// Messages a line may pass on at once above its steady rate (replaces the config's
    /// `line-pass-burst`; default: the budget, one second's worth).
    #[arg(long)]
    pub line_pass_burst: Option<u32>,
    /// Capacity of the fast path's binding map (preallocated, about 160 bytes of kernel memory
    /// per binding); clients beyond it are served by the controller alone.
    #[arg(long, default_value_t = dhcp_common::DEFAULT_MAX_BINDINGS)]
    pub max_bindings: u32,
}

impl ServeArgs {
    /// The options [`crate::serve::run`] takes.
    pub fn options(&self) -> ServeOptions {
        ServeOptions {
            config: self.config.clone(),
            ifaces: self.ifaces.clone(),
            state_dir: self.state_dir.clone(),
            xdp: match self.xdp.as_str() {
                "off" => None,
                "native" => Some(AttachMode::Native),
                "generic" => Some(AttachMode::Generic),
                _ => Some(AttachMode::Auto),
            },
            pin_root: self.pin_root.clone(),
            detach_on_exit: self.detach_on_exit,
            pass_rate_per_cpu: self.pass_rate_per_cpu,
            line_pass_budget: self.line_pass_budget,
            line_pass_burst: self.line_pass_burst,
            max_bindings: self.max_bindings,
        }
    }
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
            return Ok(Config::load_state_dir(config)?);
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

/// `usage` options.
#[derive(Debug, Args)]
pub struct UsageArgs {
    #[command(flatten)]
    pub locate: Locate,
    /// JSON output for scripts.
    #[arg(long)]
    pub json: bool,
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

/// `import-kea`: reads Kea's leases, writes them into our store, prints the counts and every
/// rejected row. Run it while our server is stopped (it reads the store only when it starts).
fn import_kea(args: &ImportKeaArgs) -> anyhow::Result<()> {
    use crate::kea::leases::{read_memfile, read_postgresql, write_leases, ImportReport};
    let config = Config::load(&args.config)?;
    let mut report = ImportReport::default();
    let leases = match (&args.memfile, &args.postgresql) {
        (Some(path), _) => read_memfile(path, &mut report)?,
        (None, Some(url)) => {
            let password = match &args.postgresql_password_file {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_owned(),
                ),
                None => None,
            };
            read_postgresql(url, password.as_deref(), &mut report)?
        }
        (None, None) => bail!("give --memfile or --postgresql"),
    };
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating {}", config.state_dir.display()))?;
    let store = crate::server::open_store(&config)?;
    write_leases(
        store.as_ref(),
        leases,
        crate::clock::unix_now(),
        &mut report,
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "read {} rows: imported {} leases, {} superseded by a later row, {} removed, {} rejected",
            report.rows,
            report.imported,
            report.superseded,
            report.removed,
            report.rejected.len()
        );
        for rejected in &report.rejected {
            println!("rejected: {}: {}", rejected.at, rejected.reason);
        }
    }
    Ok(())
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
            runtime.block_on(crate::serve::run(args.options()))
        }
        Command::ImportKea(args) => import_kea(&args),
        Command::Lease(command) => provision::lease(&command),
        Command::Reservation(command) => provision::reservation(&command),
        Command::Usage(args) => provision::usage(&args.locate, args.json),
        Command::Reconfigure(args) => reconfigure::run(&args),
        Command::LeaseLog(command) => provision::lease_log(&command),
        Command::ConvertKeaConfig { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let converted = crate::kea::config::convert(&text)
                .map_err(|err| anyhow::anyhow!("{}: {err}", file.display()))?;
            for line in &converted.unmapped {
                eprintln!("not converted: {line}");
            }
            print!("{}", converted.toml);
            Ok(())
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
            let pin_root = args.pin_root.clone().unwrap_or_else(|| {
                // A server of an earlier release still running keeps its pins at the old root.
                let root = crate::fastpath::default_pin_root(&state_dir);
                let legacy = crate::fastpath::legacy_pin_root(&state_dir);
                if !root.exists() && legacy.exists() {
                    legacy
                } else {
                    root
                }
            });
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
        Command::Reload(args) => {
            let response = request(&args.locate.state_dir()?, &ControlRequest::Reload)?;
            match response {
                ControlResponse::Reloaded(report) if args.json => {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                }
                ControlResponse::Reloaded(report) => print!("{}", format_reload(&report)),
                ControlResponse::Error(message) => bail!("{message}"),
                _ => bail!("unexpected answer to reload"),
            }
            Ok(())
        }
        Command::CheckConfig(args) => check_config(&args),
        Command::Manpage { dir } => write_manpages(dir.as_deref()),
        Command::Leasequery(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?;
            runtime.block_on(crate::leasequery::cli::run(&args))
        }
    }
}

/// Logs to stderr, `info` and up unless `RUST_LOG` says otherwise (the server's setting, which
/// the lab's demo shares).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The binding table as text.
pub fn format_bindings(rows: &[Binding]) -> String {
    let mut out = format!(
        "{:<30} {:>10} {:<3} {:<28} {:<9} {:>10} {}\n",
        "DUID", "IAID", "IA", "ADDRESS/PREFIX", "STATE", "EXPIRES", "INTERFACE"
    );
    for row in rows {
        out.push_str(&format!(
            "{:<30} {:>10} {:<3} {:<28} {:<9} {:>9}s {}",
            row.duid, row.iaid, row.ia, row.lease, row.state, row.expires_in, row.interface
        ));
        if let Some(line) = &row.line {
            out.push_str(&format!(" (line {line})"));
        }
        out.push('\n');
    }
    out.push_str(&format!("{} binding(s)\n", rows.len()));
    out
}

/// What a reload did, as text.
pub fn format_reload(report: &crate::reload::ReloadReport) -> String {
    let mut out = format!("reloaded: {} subnet(s)", report.subnets);
    if report.changes.is_empty() {
        out.push_str(", nothing changed");
    }
    out.push('\n');
    for change in &report.changes {
        out.push_str(&format!("  {change}\n"));
    }
    if report.reconfigured > 0 {
        out.push_str(&format!(
            "reconfigure: {} client(s) of subnets with new options\n",
            report.reconfigured
        ));
    }
    if report.fast_path_bindings > 0 || report.fast_path_bindings_removed > 0 {
        out.push_str(&format!(
            "fast path: {} bindings, {} left to the controller\n",
            report.fast_path_bindings, report.fast_path_bindings_removed
        ));
    }
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
    if !stats.reconfigure.is_empty() {
        out.push_str("reconfigure:\n");
        for (name, count) in &stats.reconfigure {
            out.push_str(&format!("  {name:<24} {count}\n"));
        }
    }
    if !stats.counters.lease_database.is_empty() {
        out.push_str("lease database (shared):\n");
        for (name, count) in &stats.counters.lease_database {
            out.push_str(&format!("  {name:<24} {count}\n"));
        }
    }
    out.push_str(&format!(
        "reloads:\n  {:<24} {}\n  {:<24} {}\n",
        "reloads", stats.reloads.reloads, "reloads_refused", stats.reloads.reloads_refused
    ));
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
}
