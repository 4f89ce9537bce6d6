//! `dhcp-bench`: the whole benchmark (`cargo xtask bench [--quick]` runs it as root), and our
//! load generator on its own (`dhcp-bench loadgen`) for operators.
//!
//! The benchmark prints a progress line on stderr, a table on stdout, and writes every figure to
//! `target/bench/latest.json`. See the `dhcp_bench` library.

use std::{path::PathBuf, time::Duration};

use anyhow::{bail, Result};
use clap::{Parser, Subcommand};
use dhcp_bench::{self as bench, loadgen, Options, Report};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(
    name = "dhcp-bench",
    about = "Measures the DHCPv6 server against its targets and against Kea"
)]
struct Cli {
    /// Smoke mode: fewer repeats and bindings, fewer rate steps; under 2 minutes.
    #[arg(long)]
    quick: bool,
    /// Where to write the JSON report (default: `<workspace>/target/bench/latest.json`).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Run only these sections (comma-separated); the report then holds only their figures.
    #[arg(long, value_delimiter = ',', value_parser = ["fastpath", "store", "lab", "newlease", "avalanche", "startup", "leasequery", "postgres"])]
    only: Vec<String>,
    /// An older benchmark's build of the XDP object (dhcp-ebpf with feature `bench`), measured
    /// in the fast-path section next to this one; `cargo xtask bench` builds it from
    /// `BENCH_BASELINE_REV` (xtask) and passes it here.
    #[arg(long, requires = "baseline_rev")]
    baseline_object: Option<PathBuf>,
    /// The revision the baseline object was built from (recorded in the report).
    #[arg(long, requires = "baseline_object")]
    baseline_rev: Option<String>,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Upper bounds of the load generator, so that a typo cannot flood a network for hours.
const MAX_CLIENTS: u32 = 1_000_000;
const MAX_RATE: f64 = 2_000_000.0;
const MAX_DURATION_SECS: u64 = 600;

#[derive(Subcommand, Debug)]
enum Command {
    /// Binds N clients with 4-way exchanges (Solicit, Advertise, Request, Reply), then sends
    /// Renews from them at a fixed rate for a fixed time, checks every Reply and prints JSON:
    /// renewals answered per second, drops, invalid replies, latency percentiles. Sends to
    /// ff02::1:2 on IFACE from port 546 (run it in the clients' network namespace, e.g. with
    /// `ip netns exec`). Bounded: at most 1 000 000 clients, 2 000 000 Renews/s, 600 s.
    Loadgen {
        /// The interface the clients sit on.
        #[arg(long)]
        iface: String,
        /// Simulated clients (each gets an address and a delegated prefix).
        #[arg(long, default_value_t = 1000)]
        clients: u32,
        /// Renews per second offered.
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Seconds of Renews.
        #[arg(long, default_value_t = 5)]
        duration: u64,
        /// Ask for addresses only (no IA_PD).
        #[arg(long)]
        no_pd: bool,
        /// 4-way exchanges in flight while binding.
        #[arg(long, default_value_t = 64)]
        window: usize,
        /// Give up binding after this many seconds.
        #[arg(long, default_value_t = 60)]
        bind_timeout: u64,
    },
    /// The soak (`cargo xtask soak --minutes N`): our server with its fast path in the lab under
    /// mixed load (churning clients, renewals in XDP, leasequery) for N minutes, sampled every
    /// 10 s; prints a table and a verdict (RSS, open fds, bindings, store size flat after the
    /// warm-up) and writes `<workspace>/target/soak/latest.json`. Exits 1 when not flat.
    Soak {
        /// How long the load runs.
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        /// The churn's seed (default: from the clock; printed either way).
        #[arg(long)]
        seed: Option<u64>,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        None => {
            let baseline = match (cli.baseline_object, cli.baseline_rev) {
                (Some(path), Some(rev)) => Some(bench::Baseline::read(&path, rev)?),
                _ => None,
            };
            benchmark(cli.quick, cli.out, &cli.only, baseline)
        }
        Some(Command::Soak { minutes, seed }) => {
            let root = bench::workspace_root();
            let out = cli
                .out
                .unwrap_or_else(|| root.join("target/soak/latest.json"));
            let seed = seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_secs())
            });
            let report = bench::soak::run(minutes, seed, &root.join("target/soak/work"), &out)?;
            println!("{}", bench::soak::table(&report));
            println!("JSON: {}", out.display());
            if !report.flat || !report.churn_invalid.is_empty() || report.renew_invalid != 0 {
                std::process::exit(1);
            }
            Ok(())
        }
        Some(Command::Loadgen {
            iface,
            clients,
            rate,
            duration,
            no_pd,
            window,
            bind_timeout,
        }) => {
            if clients == 0 || clients > MAX_CLIENTS {
                bail!("--clients must be 1 to {MAX_CLIENTS}");
            }
            if !(rate > 0.0 && rate <= MAX_RATE) {
                bail!("--rate must be above 0 and at most {MAX_RATE}");
            }
            if duration == 0 || duration > MAX_DURATION_SECS {
                bail!("--duration must be 1 to {MAX_DURATION_SECS} seconds");
            }
            if bind_timeout == 0 || bind_timeout > MAX_DURATION_SECS {
                bail!("--bind-timeout must be 1 to {MAX_DURATION_SECS} seconds");
            }
            if window == 0 || window > 4096 {
                bail!("--window must be 1 to 4096");
            }
            let socket = loadgen::ClientSocket::open(&iface)?;
            let mut sims = loadgen::new_clients(clients, 1, 2);
            eprintln!("loadgen: binding {clients} clients on {iface}");
            let (server_duid, prime) = loadgen::prime(
                &socket,
                &mut sims,
                !no_pd,
                window,
                Duration::from_secs(bind_timeout),
            )?;
            let bound: Vec<_> = sims.into_iter().filter(|c| c.na.is_some()).collect();
            if bound.is_empty() {
                bail!("no client got bound in {bind_timeout} s: is a server answering on {iface}?");
            }
            eprintln!(
                "loadgen: {} of {clients} bound; renewing at {rate}/s for {duration} s",
                bound.len()
            );
            let step = loadgen::renew_step(
                std::slice::from_ref(&socket),
                &bound,
                &server_duid,
                loadgen::StepPlan {
                    rate,
                    duration: Duration::from_secs(duration),
                    drain: Duration::from_millis(500),
                    round: 1,
                },
            )?;
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "iface": iface,
                    "server_duid": hex::encode(&server_duid),
                    "bind": prime,
                    "renew": step,
                }))?
            );
            Ok(())
        }
    }
}

fn benchmark(
    quick: bool,
    out: Option<PathBuf>,
    only: &[String],
    baseline: Option<bench::Baseline>,
) -> Result<()> {
    let runs = |section: &str| only.is_empty() || only.iter().any(|s| s == section);
    let root = bench::workspace_root();
    let opts = Options {
        quick,
        out: out.unwrap_or_else(|| root.join("target/bench/latest.json")),
        work_dir: root.join("target/bench/work"),
        baseline,
    };
    let mut report = Report::new();
    report.set("quick", json!(opts.quick));
    report.describe_machine();
    if !only.is_empty() {
        report.set("only_sections", json!(only));
    }
    if runs("fastpath") {
        bench::run_fastpath_and_scale(&opts, &mut report)?;
    }
    if runs("store") {
        bench::run_store(&opts, &mut report)?;
    }
    if runs("lab") {
        bench::run_lab(&opts, &mut report);
    }
    if runs("newlease") {
        bench::run_newlease(&opts, &mut report);
    }
    if runs("avalanche") {
        bench::run_avalanche(&opts, &mut report);
    }
    if runs("startup") {
        bench::run_startup(&opts, &mut report);
    }
    if runs("postgres") {
        bench::run_postgres(&opts, &mut report);
    }
    if !runs("leasequery") {
    } else if let Err(err) = bench::run_leasequery(&opts, &mut report) {
        let reason = format!("the leasequery run failed: {err:#}");
        report.missing("leasequery_bulk_bindings_per_second", &reason);
        report.row(
            "leasequery",
            "bulk bindings/s over TCP",
            "failed".into(),
            &reason,
        );
    }
    report.progress_done();
    report.write_json(&opts.out)?;
    println!("{}", report.table());
    println!("JSON: {}", opts.out.display());
    Ok(())
}
