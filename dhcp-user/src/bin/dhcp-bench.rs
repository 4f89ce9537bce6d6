//! `dhcp-bench`: the whole benchmark (`cargo xtask bench [--quick]` runs it as root).
//!
//! Prints a progress line on stderr, a table on stdout, and writes every figure to
//! `target/bench/latest.json`. See `dhcp_user::bench`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use dhcp_user::bench::{self, Options, Report};

#[derive(Parser, Debug)]
#[command(
    name = "dhcp-bench",
    about = "Measures the DHCPv6 server against its targets and against Kea"
)]
struct Cli {
    /// Smoke mode: fewer repeats and bindings, fewer rate steps; under 2 minutes.
    #[arg(long)]
    quick: bool,
    /// Where to write the JSON report (default: <workspace>/target/bench/latest.json).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let root = bench::workspace_root();
    let opts = Options {
        quick: cli.quick,
        out: cli
            .out
            .unwrap_or_else(|| root.join("target/bench/latest.json")),
        work_dir: root.join("target/bench/work"),
    };
    let mut report = Report::new();
    report.set("quick", serde_json::json!(opts.quick));
    report.describe_machine();
    bench::run_fastpath_and_scale(&opts, &mut report)?;
    bench::run_store(&opts, &mut report)?;
    bench::run_lab(&opts, &mut report);
    bench::run_leasequery(&mut report);
    report.progress_done();
    report.write_json(&opts.out)?;
    println!("{}", report.table());
    println!("JSON: {}", opts.out.display());
    Ok(())
}
