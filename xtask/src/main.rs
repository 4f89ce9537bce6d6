//! `cargo xtask build|run|test|bench|soak|fuzz|package`: the project's one entry point.
//!
//! Every command first runs the bootstrap: it checks the Debian packages and `bpf-linker` the
//! build and the tests need and installs only what is missing (so a second run installs
//! nothing), one `[setup]` line per step. Install logs go to `target/xtask/`; a failed install
//! prints one sentence and the end of its log.

use std::{
    env,
    ffi::OsString,
    fs::File,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    sync::atomic::{AtomicI32, Ordering},
};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

mod package;

/// Debian packages: the eBPF toolchain (Debian's rustc ships `core` for bpfel-unknown-none),
/// what bpf-linker links against, BPF and namespace tools, and the test peers.
const DEBIAN_PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "libstd-rust-web-dev-bpf",
    "llvm-22-dev",
    "libpolly-22-dev",
    "zlib1g-dev",
    "libzstd-dev",
    "bpftool",
    "rust-web-clippy",
    "iproute2",
    "iputils-ping",
    "isc-dhcp-client",
    // dhcpcd, the second real client of the options lab test (tests/tests/options_lab.rs).
    "dhcpcd-base",
    "isc-dhcp-relay",
    "kea-admin",
    "kea-dhcp6-server",
    // The PostgreSQL lease store's tests run a throwaway cluster (tests/pgtest).
    "postgresql-15",
    "python3-scapy",
    "tshark",
];

const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
/// Lines of a failed install's log shown on the terminal (the whole log stays in a file).
const LOG_TAIL_LINES: usize = 15;
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// The fuzz targets of tests/fuzz (its Cargo.toml has one `[[bin]]` each).
const FUZZ_TARGETS: &[&str] = &[
    "dhcpv6_decode",
    "leasequery_frame",
    "config_parse",
    "control_protocol",
];
/// Seconds each fuzz target runs in `cargo xtask test`.
const FUZZ_TEST_SECONDS: u64 = 10;
/// The revision whose XDP object `cargo xtask bench` measures next to the new one, in the same
/// run and by the same method (issue 20: the fast path's work, old object vs new). Its sources
/// are taken from git and built with the new object's toolchain and flags, so the two differ in
/// their code only. Move it on once a fast-path change has been measured and merged.
/// The bench fills the baseline's maps with today's types: it must share `dhcp-common` with the
/// tree (checked before it is built). This one is main once pool, pd-pool and reservation
/// options moved into the fast path (`OPTION_SETS`, a wider `BindingValue`); the last
/// old-vs-new figures, against be35f7a and eebe1a6, are in docs/performance.md. The baseline for
/// the next fast-path change.
const BENCH_BASELINE_REV: &str = "5ffdc3f3ed6eab031b0f3b00abb7a25a1f112675";

/// How the XDP object is built (the build scripts' shared code): the baseline is built alike.
#[allow(dead_code)]
mod object_build {
    include!("../../dhcp-ebpf/object_build.rs");
}

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Build, run and test the DHCPv6 server")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what is missing, then build dhcp-user (with the XDP program embedded).
    Build {
        #[arg(long)]
        release: bool,
    },
    /// Build, then run dhcp-user as root with ARGS (no ARGS: `dhcp-demo`, the demo lab).
    Run {
        #[arg(long)]
        release: bool,
        /// Arguments for dhcp-user (after `--`).
        #[arg(last = true)]
        args: Vec<OsString>,
    },
    /// Every test: unit, BPF_PROG_TEST_RUN and network-namespace integration tests (root).
    Test,
    /// The benchmark suite.
    Bench {
        /// A short run (for CI).
        #[arg(long)]
        quick: bool,
        /// Only these sections, comma-separated (dhcp-bench's `--only`: fastpath, store, lab,
        /// newlease, avalanche, startup, leasequery, postgres).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
    },
    /// The soak: the server (fast path on) in the lab under mixed load for N minutes, sampled
    /// every 10 s; a table and a verdict (RSS, open fds, bindings, store size flat after the
    /// warm-up), also in target/soak/latest.json.
    Soak {
        /// How long the load runs.
        #[arg(long, default_value_t = 10.0)]
        minutes: f64,
        /// The churn's seed (default: from the clock; printed either way).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// The Debian package (target/package/dhcp-user_VERSION_ARCH.deb): the binary, the systemd
    /// unit, an example configuration and the manual page; its contents and the unit checked.
    Package {
        /// Package the debug build (quicker to build; for trying the package out).
        #[arg(long)]
        debug: bool,
    },
    /// Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of every target in tests/fuzz, or one.
    Fuzz {
        /// How long each target runs.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Only this target (default: all of them, one after the other).
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(FUZZ_TARGETS))]
        target: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = (|| -> Result<u8> {
        let ws = Workspace::locate()?;
        match cli.command {
            Task::Build { release } => {
                let binary = build(&ws, release)?;
                println!("[build] {}", binary.display());
                Ok(0)
            }
            Task::Run { release, args } => run(&ws, release, args),
            Task::Test => test(&ws),
            Task::Bench { quick, only } => bench(&ws, quick, &only),
            Task::Soak { minutes, seed } => soak(&ws, minutes, seed),
            Task::Package { debug } => {
                let binary = build(&ws, !debug)?;
                let deb = package::package(&ws, &binary)?;
                println!("[package] {}", deb.display());
                Ok(0)
            }
            Task::Fuzz { seconds, target } => {
                let targets: Vec<&str> = match &target {
                    Some(name) => vec![name.as_str()],
                    None => FUZZ_TARGETS.to_vec(),
                };
                fuzz(&ws, seconds, &targets)
            }
        }
    })();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Where things are: the workspace root, its target directory, the cargo that runs us.
#[derive(Clone)]
struct Workspace {
    root: PathBuf,
    target: PathBuf,
    cargo: OsString,
}

impl Workspace {
    fn locate() -> Result<Workspace> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .context("xtask lives one level below the workspace root")?
            .to_path_buf();
        let target = match env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => env::current_dir()?.join(dir),
            None => root.join("target"),
        };
        let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        // `cargo install` puts bpf-linker in $CARGO_HOME/bin; the eBPF build finds it on PATH.
        let cargo_bin = cargo_home().join("bin");
        let path = env::var_os("PATH").unwrap_or_default();
        if !env::split_paths(&path).any(|dir| dir == cargo_bin) {
            let joined =
                env::join_paths(std::iter::once(cargo_bin).chain(env::split_paths(&path)))?;
            env::set_var("PATH", joined);
        }
        Ok(Workspace {
            root,
            target,
            cargo,
        })
    }

    fn log_path(&self, name: &str) -> Result<PathBuf> {
        let dir = self.target.join("xtask");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(dir.join(name))
    }

    fn cargo(&self) -> Command {
        let mut command = Command::new(&self.cargo);
        command.current_dir(&self.root);
        command
    }
}

fn cargo_home() -> PathBuf {
    env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))
        .unwrap_or_else(|| PathBuf::from("/root/.cargo"))
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

// ---------------------------------------------------------------------------------------------
// Bootstrap

fn bootstrap(ws: &Workspace) -> Result<()> {
    debian_packages(ws)?;
    bpf_linker(ws)
}

fn debian_packages(ws: &Workspace) -> Result<()> {
    let mut missing = Vec::new();
    for package in DEBIAN_PACKAGES {
        if !package_installed(package)? {
            missing.push(*package);
        }
    }
    if missing.is_empty() {
        println!(
            "[setup] Debian packages: all {} present",
            DEBIAN_PACKAGES.len()
        );
        return Ok(());
    }
    let list = missing.join(" ");
    if !is_root() {
        bail!(
            "Debian packages are missing ({list}) and installing them needs root: run this \
             command as root, or install them with `apt-get install {list}`"
        );
    }
    println!("[setup] installing Debian packages: {list}");
    let log = ws.log_path("apt-install.log")?;
    let log_file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut update = Command::new("apt-get");
    update.args(["-q", "update"]);
    logged(&mut update, &log_file, &log).and_then(|ok| {
        ok.then_some(()).with_context(|| {
            failure(
                &log,
                "`apt-get update` failed: check the machine's network and /etc/apt/sources.list.d",
            )
        })
    })?;
    let mut install = Command::new("apt-get");
    install
        .env("DEBIAN_FRONTEND", "noninteractive")
        // Wait for a dpkg lock held by another apt (unattended upgrades) rather than fail.
        .args([
            "-q",
            "-y",
            "-o",
            "DPkg::Lock::Timeout=300",
            "--no-install-recommends",
            "install",
        ])
        .args(&missing);
    logged(&mut install, &log_file, &log).and_then(|ok| {
        ok.then_some(()).with_context(|| {
            failure(
                &log,
                &format!(
                    "`apt-get install {list}` failed: these packages come from Debian 12 \
                     (bookworm and bookworm-security); check that both are in the apt sources"
                ),
            )
        })
    })?;
    for package in &missing {
        if !package_installed(package)? {
            bail!(failure(
                &log,
                &format!("apt-get finished but {package} is still not installed")
            ));
        }
    }
    println!(
        "[setup] Debian packages: installed ({} of them)",
        missing.len()
    );
    Ok(())
}

fn package_installed(package: &str) -> Result<bool> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .stderr(Stdio::null())
        .output()
        .context(
            "running dpkg-query: the bootstrap needs Debian (12); elsewhere install the \
             packages listed in README.md by hand",
        )?;
    Ok(out.status.success() && String::from_utf8_lossy(&out.stdout).ends_with(" installed"))
}

fn bpf_linker(ws: &Workspace) -> Result<()> {
    if let Some(version) = bpf_linker_version() {
        println!("[setup] bpf-linker: present ({version})");
        return Ok(());
    }
    let log = ws.log_path("bpf-linker-install.log")?;
    println!(
        "[setup] installing bpf-linker 0.13 for LLVM 22 with cargo install (about 5 minutes on \
         2 cores; log: {})",
        log.display()
    );
    let log_file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut install = ws.cargo();
    install
        .env("LLVM_PREFIX", LLVM_PREFIX)
        .env("LLVM_SYS_221_PREFIX", LLVM_PREFIX)
        .args([
            "install",
            "bpf-linker",
            "--version",
            "^0.13",
            "--no-default-features",
            "--features",
            "llvm-22",
        ]);
    let ok = logged(&mut install, &log_file, &log)?;
    if !ok {
        bail!(failure(
            &log,
            "`cargo install bpf-linker` failed: it needs crates.io and the Debian packages \
             llvm-22-dev, libpolly-22-dev, zlib1g-dev and libzstd-dev"
        ));
    }
    match bpf_linker_version() {
        Some(version) => {
            println!("[setup] bpf-linker: installed ({version})");
            Ok(())
        }
        None => bail!(failure(
            &log,
            &format!(
                "bpf-linker was installed but does not run: check {}/bin is on PATH",
                cargo_home().display()
            )
        )),
    }
}

fn bpf_linker_version() -> Option<String> {
    let out = Command::new("bpf-linker")
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs `command` with stdout and stderr appended to `log`; whether it succeeded.
fn logged(command: &mut Command, log_file: &File, log: &Path) -> Result<bool> {
    let status = command
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file.try_clone()?)
        .status()
        .with_context(|| {
            format!(
                "starting {} (log: {})",
                command.get_program().to_string_lossy(),
                log.display()
            )
        })?;
    Ok(status.success())
}

/// One sentence, the end of the log, and where the whole log is.
fn failure(log: &Path, sentence: &str) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
    format!(
        "{sentence}.\n--- last {} lines of {} ---\n{tail}\n--- full log: {} ---",
        LOG_TAIL_LINES,
        log.display(),
        log.display()
    )
}

// ---------------------------------------------------------------------------------------------
// Commands

fn build(ws: &Workspace, release: bool) -> Result<PathBuf> {
    build_binaries(ws, release, &[("dhcp-user", "dhcp-user")])
}

/// Builds each (package, binary) of `binaries`; returns the path of the first.
fn build_binaries(ws: &Workspace, release: bool, binaries: &[(&str, &str)]) -> Result<PathBuf> {
    bootstrap(ws)?;
    let mut command = ws.cargo();
    command.arg("build");
    for (package, binary) in binaries {
        command.args(["-p", package, "--bin", binary]);
    }
    if release {
        command.arg("--release");
    }
    let status = command.status().context("running cargo build")?;
    if !status.success() {
        let shown: Vec<_> = binaries.iter().map(|(_, bin)| *bin).collect();
        bail!(
            "cargo build of {} failed (see the errors above)",
            shown.join(", ")
        );
    }
    let profile = if release { "release" } else { "debug" };
    Ok(ws.target.join(profile).join(binaries[0].1))
}

/// The running dhcp-user, for the signal handler.
static CHILD: AtomicI32 = AtomicI32::new(0);

extern "C" fn forward_signal(signal: libc::c_int) {
    let child = CHILD.load(Ordering::Relaxed);
    if child > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(child, signal) };
    }
}

fn run(ws: &Workspace, release: bool, args: Vec<OsString>) -> Result<u8> {
    if !is_root() {
        bail!(
            "cargo xtask run needs root (dhcp-user creates network namespaces and loads XDP \
             programs): run it as root, e.g. `sudo -E cargo xtask run`"
        );
    }
    // No arguments: the demo lab, which starts the dhcp-user built beside it.
    let binary = if args.is_empty() {
        build_binaries(
            ws,
            release,
            &[("dhcp-lab", "dhcp-demo"), ("dhcp-user", "dhcp-user")],
        )?
    } else {
        build(ws, release)?
    };
    let shown: Vec<_> = args.iter().map(|a| a.to_string_lossy()).collect();
    println!(
        "[run] {} {} (Ctrl-C stops it)",
        binary.display(),
        shown.join(" ")
    );
    std::io::stdout().flush()?;
    // Its own process group: a Ctrl-C reaches it once, through us, and we wait for its
    // cleanup instead of dying first.
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(&binary)
        .args(&args)
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    CHILD.store(child.id() as i32, Ordering::Relaxed);
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only calls kill(2); the struct is zeroed and filled.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction =
                forward_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
    let status = child.wait().context("waiting for dhcp-user")?;
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => 128u8.saturating_add(signal as u8),
        (None, None) => 1,
    })
}

fn test(ws: &Workspace) -> Result<u8> {
    bootstrap(ws)?;
    check_privileges()?;
    gates(ws)?;
    let fuzz_build = FuzzBuild::start(ws)?;
    // The Debian package of this (debug) build, which `tests/tests/package_install.rs` installs.
    let binary = build(ws, false)?;
    let deb = package::package(ws, &binary)?;
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut command = ws.cargo();
    command
        .env("DHCP_USER_DEB", &deb)
        .args(["test", "--workspace", "--no-fail-fast", "--"])
        .arg(format!("--test-threads={threads}"))
        .stdout(Stdio::piped());
    let mut child = command.spawn().context("running cargo test")?;
    let stdout = child.stdout.take().context("cargo test's stdout")?;
    let mut totals = TestTotals::default();
    let mut out = std::io::stdout();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo test's output")?;
        writeln!(out, "{line}")?;
        totals.add_line(&line);
    }
    let status = child.wait().context("waiting for cargo test")?;
    if totals.ignored > 0 {
        println!(
            "xtask test: {} tests are marked #[ignore] and did not run",
            totals.ignored
        );
    }
    println!(
        "xtask test: {} passed, {} failed",
        totals.passed, totals.failed
    );
    if !status.success() && totals.failed == 0 {
        bail!(
            "cargo test failed without a failing test: a build or doctest compile error stopped it \
             (see the errors above)"
        );
    }
    let tests_code = if status.success() && totals.failed == 0 {
        0
    } else {
        1
    };
    // Then each fuzz target briefly: a crash fails the run as a failing test does.
    fuzz_build.finish()?;
    let fuzz_code = run_fuzz_targets(ws, FUZZ_TEST_SECONDS, FUZZ_TARGETS)?;
    Ok(tests_code.max(fuzz_code))
}

/// The gates a contributor expects, before the tests: formatting (the workspace and the eBPF
/// crate), clippy with warnings denied (the workspace, and the eBPF crate with Debian's clippy for
/// its target), and the docs with warnings denied. The first that fails stops the run.
fn gates(ws: &Workspace) -> Result<()> {
    let ebpf_dir = ws.root.join("dhcp-ebpf");
    let mut fmt = ws.cargo();
    fmt.args(["fmt", "--all", "--", "--check"]);
    let mut fmt_ebpf = ws.cargo();
    fmt_ebpf
        .current_dir(&ebpf_dir)
        .args(["fmt", "--", "--check"]);
    let mut clippy = ws.cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    let mut clippy_ebpf = ebpf_cargo(ws);
    // Every feature: the benchmark's build (`bench`) is linted with the controller's.
    clippy_ebpf.args([
        "clippy",
        "--release",
        "--all-features",
        "--target",
        "bpfel-unknown-none",
        "--",
        "-D",
        "warnings",
    ]);
    let mut doc = ws.cargo();
    doc.args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings");
    for (what, mut command) in [
        ("cargo fmt --check", fmt),
        ("cargo fmt --check (dhcp-ebpf)", fmt_ebpf),
        ("cargo clippy -D warnings", clippy),
        (
            "cargo clippy -D warnings (dhcp-ebpf, bpfel-unknown-none)",
            clippy_ebpf,
        ),
        ("cargo doc -D warnings", doc),
    ] {
        println!("[gate] {what}");
        let status = command
            .status()
            .with_context(|| format!("running {what}"))?;
        if !status.success() {
            bail!("gate failed: {what} (see its output above)");
        }
    }
    Ok(())
}

/// Debian's cargo for the eBPF crate, as dhcp-user/build.rs runs it: none of the outer cargo's
/// settings (rustup toolchain, target directory, flags), Debian's rustc, nightly features allowed
/// (aya-ebpf gates `asm_experimental_arch`), its own target directory.
fn ebpf_cargo(ws: &Workspace) -> Command {
    let ebpf_dir = ws.root.join("dhcp-ebpf");
    let mut command = Command::new("/usr/bin/cargo");
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if (key.starts_with("CARGO_") && key != "CARGO_HOME")
            || matches!(
                key.as_str(),
                "RUSTC" | "RUSTC_WRAPPER" | "RUSTFLAGS" | "RUSTDOC" | "RUSTUP_TOOLCHAIN"
            )
        {
            command.env_remove(&key);
        }
    }
    // Debian's cargo-clippy and clippy-driver live in /usr/bin, rustup's proxies earlier on PATH.
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![PathBuf::from("/usr/bin")];
    dirs.extend(std::env::split_paths(&path));
    command
        .current_dir(&ebpf_dir)
        .env("PATH", std::env::join_paths(dirs).unwrap_or(path))
        .env("RUSTC", "/usr/bin/rustc")
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_TARGET_DIR", ebpf_dir.join("target/clippy"));
    command
}

/// Builds `dhcp-bench` and `dhcp-user` in release (the benchmark starts the server binary that
/// sits next to it) and runs the benchmark as root; its exit status is ours.
fn bench(ws: &Workspace, quick: bool, only: &[String]) -> Result<u8> {
    if !is_root() {
        bail!(
            "cargo xtask bench needs root (the benchmark loads XDP programs and creates network \
             namespaces): run it as root, e.g. `sudo -E cargo xtask bench`"
        );
    }
    let mut args: Vec<String> = Vec::new();
    if quick {
        args.push("--quick".into());
    }
    if !only.is_empty() {
        args.extend(["--only".into(), only.join(",")]);
    }
    bootstrap(ws)?;
    // Without the baseline the bench still runs; its baseline figures are then null, with why.
    match baseline_object(ws) {
        Ok(object) => args.extend([
            "--baseline-object".into(),
            object.display().to_string(),
            "--baseline-rev".into(),
            BENCH_BASELINE_REV.into(),
        ]),
        Err(err) => println!("[bench] no baseline object, its figures stay null: {err:#}"),
    }
    run_bench_binary(ws, "bench", &args)
}

/// The benchmark's build (feature `bench`) of the XDP object at `BENCH_BASELINE_REV`, built
/// once into `target/bench-baseline/<rev>` from `git archive` of that revision (fetched when a
/// shallow clone lacks it) and reused while its stamp names the revision.
fn baseline_object(ws: &Workspace) -> Result<PathBuf> {
    let rev = BENCH_BASELINE_REV;
    let dir = ws.target.join("bench-baseline").join(rev);
    let src = dir.join("src");
    let ebpf_target = src.join("dhcp-ebpf/target/bench");
    let object = object_build::ebpf_object_path(&ebpf_target);
    let stamp = dir.join("built");
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(&ws.root)
            .args(args)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    let commit = format!("{rev}^{{commit}}");
    if !git(&["cat-file", "-e", &commit]) && !git(&["fetch", "--quiet", "origin", rev]) {
        bail!(
            "revision {rev} is not in this clone and `git fetch origin {rev}` failed: clone with \
             its history (CI: a fetch depth of 0)"
        );
    }
    // Its maps are filled with this tree's key and value types.
    if !git(&["diff", "--quiet", rev, "--", "dhcp-common"]) {
        bail!(
            "dhcp-common (the maps' layouts) changed since {rev}: the baseline's maps cannot be \
             filled with today's types; move BENCH_BASELINE_REV on to a revision that shares them"
        );
    }
    if object.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == rev) {
        println!("[bench] baseline object of {rev}: {}", object.display());
        return Ok(object);
    }
    println!(
        "[bench] building the baseline object of {rev} (once; in {})",
        dir.display()
    );
    if src.exists() {
        std::fs::remove_dir_all(&src).with_context(|| format!("removing {}", src.display()))?;
    }
    std::fs::create_dir_all(&src).with_context(|| format!("creating {}", src.display()))?;
    let mut archive = Command::new("git")
        .current_dir(&ws.root)
        .args(["archive", "--format=tar", rev])
        .stdout(Stdio::piped())
        .spawn()
        .context("running git archive")?;
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(&src)
        .stdin(archive.stdout.take().context("git archive's output")?)
        .status()
        .context("running tar")?;
    if !archive.wait().context("waiting for git archive")?.success() || !tar.success() {
        bail!("extracting {rev} into {} failed", src.display());
    }
    let status = object_build::ebpf_build_command(&src.join("dhcp-ebpf"), &ebpf_target, "bench")
        .status()
        .context("running Debian's cargo for the baseline object")?;
    if !status.success() || !object.is_file() {
        bail!("building the baseline object of {rev} failed (see the errors above)");
    }
    std::fs::write(&stamp, rev).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(object)
}

/// `cargo xtask soak`: `dhcp-bench soak`, which runs the soak and judges it.
fn soak(ws: &Workspace, minutes: f64, seed: Option<u64>) -> Result<u8> {
    if !is_root() {
        bail!(
            "cargo xtask soak needs root (the soak loads XDP programs and creates network \
             namespaces): run it as root, e.g. `sudo -E cargo xtask soak --minutes 10`"
        );
    }
    if !(minutes > 0.0 && minutes <= 24.0 * 60.0) {
        bail!("--minutes must be above 0 and at most 1440 (a day)");
    }
    let mut args = vec!["soak".to_string(), "--minutes".into(), minutes.to_string()];
    if let Some(seed) = seed {
        args.extend(["--seed".into(), seed.to_string()]);
    }
    run_bench_binary(ws, "soak", &args)
}

/// Builds dhcp-bench and dhcp-user (release) and runs dhcp-bench with `args`; its exit code.
fn run_bench_binary(ws: &Workspace, what: &str, args: &[String]) -> Result<u8> {
    bootstrap(ws)?;
    check_privileges()?;
    let status = ws
        .cargo()
        .args([
            "build",
            "--release",
            "-p",
            "dhcp-bench",
            "--bin",
            "dhcp-bench",
            "-p",
            "dhcp-user",
            "--bin",
            "dhcp-user",
        ])
        .status()
        .context("running cargo build")?;
    if !status.success() {
        bail!("cargo build --release of dhcp-bench and dhcp-user failed (see the errors above)");
    }
    let binary = ws.target.join("release").join("dhcp-bench");
    let mut command = Command::new(&binary);
    command.current_dir(&ws.root).args(args);
    println!("[{what}] {} {}", binary.display(), args.join(" "));
    std::io::stdout().flush()?;
    let status = command
        .status()
        .with_context(|| format!("starting {}", binary.display()))?;
    use std::os::unix::process::ExitStatusExt;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => code as u8,
        (None, Some(signal)) => 128u8.saturating_add(signal as u8),
        (None, None) => 1,
    })
}

/// cargo-fuzz, installed with `cargo install` when missing, and the nightly toolchain it builds
/// with (rustup's, without rust-src: cargo fuzz does not need it).
fn cargo_fuzz(ws: &Workspace) -> Result<()> {
    if let Some(version) = cargo_fuzz_version() {
        println!("[setup] cargo-fuzz: present ({version})");
    } else {
        let log = ws.log_path("cargo-fuzz-install.log")?;
        println!(
            "[setup] installing cargo-fuzz with cargo install (about 2 minutes; log: {})",
            log.display()
        );
        let log_file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut install = ws.cargo();
        install.args(["install", "cargo-fuzz", "--locked"]);
        if !logged(&mut install, &log_file, &log)? || cargo_fuzz_version().is_none() {
            bail!(failure(
                &log,
                "`cargo install cargo-fuzz --locked` failed: it needs crates.io and a C++ compiler"
            ));
        }
        println!("[setup] cargo-fuzz: installed");
    }
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !nightly {
        // libFuzzer's coverage flags need a nightly compiler.
        println!("[setup] rustup nightly toolchain: installing (for cargo fuzz)");
        std::io::stdout().flush()?;
        let log = ws.log_path("setup-nightly.log")?;
        let log_file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut install = Command::new("rustup");
        install.args(["toolchain", "install", "nightly", "--profile", "minimal"]);
        if !logged(&mut install, &log_file, &log)? {
            bail!(failure(
                &log,
                "`rustup toolchain install nightly --profile minimal` failed: cargo fuzz needs it"
            ));
        }
        println!("[setup] rustup nightly toolchain: installed");
    }
    Ok(())
}

fn cargo_fuzz_version() -> Option<String> {
    let out = Command::new(cargo_home().join("bin/cargo-fuzz"))
        .arg("--version")
        .stderr(Stdio::null())
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `cargo fuzz` with the nightly toolchain on tests/fuzz: none of the outer cargo's toolchain
/// settings, its own target directory, and no eBPF object (dhcp-user embeds an empty stub; the
/// fuzz targets never load it).
fn fuzz_cargo(ws: &Workspace) -> Command {
    let mut command = Command::new("rustup");
    command
        .current_dir(&ws.root)
        .args(["run", "nightly", "cargo", "fuzz"])
        .env_remove("CARGO")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("RUSTUP_TOOLCHAIN")
        .env("DHCP_EBPF_OBJECT", "/dev/null")
        .env("CARGO_TARGET_DIR", ws.target.join("fuzz"));
    command
}

/// How the targets are built: optimised, with debug assertions (an integer overflow panics, so
/// the fuzzer finds it), and without AddressSanitizer: the code under test is safe Rust, and
/// instrumenting the bundled SQLite's C for ASan made a cold build take over 12 minutes here.
const FUZZ_BUILD_FLAGS: [&str; 4] = ["-O", "-a", "--sanitizer", "none"];

/// Builds the fuzz targets, then runs each of `targets` for `seconds` from its corpus
/// (`tests/fuzz/corpus/<target>`, kept between runs) and its committed seeds; prints one line
/// per target: runs, coverage, corpus, crashes. 1 when any target crashed.
fn fuzz(ws: &Workspace, seconds: u64, targets: &[&str]) -> Result<u8> {
    cargo_fuzz(ws)?;
    println!("[fuzz] building the fuzz targets (nightly, release, coverage, debug assertions)");
    std::io::stdout().flush()?;
    let status = fuzz_build_command(ws)
        .status()
        .context("running cargo fuzz build")?;
    if !status.success() {
        bail!("cargo fuzz build failed (see the errors above)");
    }
    run_fuzz_targets(ws, seconds, targets)
}

fn fuzz_build_command(ws: &Workspace) -> Command {
    let mut command = fuzz_cargo(ws);
    command
        .args(["build", "--fuzz-dir", "tests/fuzz"])
        .args(FUZZ_BUILD_FLAGS);
    command
}

/// The fuzz targets' build during `cargo xtask test`, beside the tests rather than after them.
/// A cold build takes 8.5 minutes on two cores, a third of CI's budget, while the tests mostly
/// wait on namespaces, clients and timers. It runs at the lowest CPU priority, so it takes
/// mostly what the tests leave idle; its output goes to a log.
struct FuzzBuild {
    worker: std::thread::JoinHandle<Result<()>>,
}

impl FuzzBuild {
    fn start(ws: &Workspace) -> Result<FuzzBuild> {
        let log = ws.log_path("fuzz-build.log")?;
        println!(
            "[fuzz] building the fuzz targets beside the tests at nice 19 (log: {})",
            log.display()
        );
        let ws = ws.clone();
        let worker = std::thread::Builder::new()
            .name("fuzz-build".into())
            .spawn(move || {
                // Linux keeps the nice value per thread and a child inherits its spawner's, so
                // this lowers cargo-fuzz's install and the build without touching the tests.
                // SAFETY: setpriority(2) on the calling thread only reads its arguments.
                unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 19) };
                cargo_fuzz(&ws)?;
                let log_file =
                    File::create(&log).with_context(|| format!("creating {}", log.display()))?;
                if !logged(&mut fuzz_build_command(&ws), &log_file, &log)? {
                    bail!(failure(&log, "cargo fuzz build failed"));
                }
                Ok(())
            })
            .context("starting the fuzz build's thread")?;
        Ok(FuzzBuild { worker })
    }

    /// Waits for the build (usually long done) and says how it ended.
    fn finish(self) -> Result<()> {
        println!("[fuzz] waiting for the fuzz targets' build");
        std::io::stdout().flush()?;
        let started = std::time::Instant::now();
        match self.worker.join() {
            Ok(result) => result?,
            Err(_) => bail!("the fuzz build's thread panicked"),
        }
        println!(
            "[fuzz] fuzz targets built ({:.0} s waited after the tests)",
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }
}

/// Runs each of `targets`, already built, for `seconds`.
fn run_fuzz_targets(ws: &Workspace, seconds: u64, targets: &[&str]) -> Result<u8> {
    let fuzz_dir = ws.root.join("tests/fuzz");
    let mut crashed = Vec::new();
    for target in targets {
        let corpus = fuzz_dir.join("corpus").join(target);
        let seeds = fuzz_dir.join("seeds").join(target);
        let artifacts = fuzz_dir.join("artifacts").join(target);
        for dir in [&corpus, &artifacts] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let log = ws.log_path(&format!("fuzz-{target}.log"))?;
        let log_file = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut run = fuzz_cargo(ws);
        run.args(["run", "--fuzz-dir", "tests/fuzz"])
            .args(FUZZ_BUILD_FLAGS)
            .arg(target)
            .arg(&corpus)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .args(["-timeout=10", "-print_final_stats=1"]);
        println!("[fuzz] {target}: {seconds} s (log: {})", log.display());
        std::io::stdout().flush()?;
        let ok = logged(&mut run, &log_file, &log)?;
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let report = FuzzReport::from_log(&text);
        println!("[fuzz] {target}: {}", report.line(ok));
        if !ok {
            println!("{}", failure(&log, &format!("fuzz target {target} failed")));
            crashed.push(*target);
        }
    }
    if crashed.is_empty() {
        println!("[fuzz] {} target(s), no crash", targets.len());
        Ok(0)
    } else {
        println!(
            "[fuzz] crashed: {} (inputs in tests/fuzz/artifacts/<target>/; \
             `cargo fuzz run --fuzz-dir tests/fuzz <target> <input>` replays one)",
            crashed.join(", ")
        );
        Ok(1)
    }
}

/// What libFuzzer's log says about a run: its final status line and stats.
#[derive(Default, Debug, PartialEq)]
struct FuzzReport {
    runs: Option<u64>,
    exec_per_sec: Option<u64>,
    coverage: Option<u64>,
    features: Option<u64>,
    corpus: Option<String>,
    crash_input: Option<String>,
}

impl FuzzReport {
    fn from_log(text: &str) -> FuzzReport {
        let mut report = FuzzReport::default();
        for line in text.lines() {
            if let Some(value) = line.strip_prefix("stat::number_of_executed_units:") {
                report.runs = value.trim().parse().ok();
            } else if let Some(value) = line.strip_prefix("stat::average_exec_per_sec:") {
                report.exec_per_sec = value.trim().parse().ok();
            } else if let Some((_, path)) = line.split_once("Test unit written to ") {
                report.crash_input = Some(path.trim().to_string());
            } else if line.starts_with('#') && line.contains(" cov: ") {
                let mut words = line.split_whitespace();
                while let Some(word) = words.next() {
                    match word {
                        "cov:" => report.coverage = words.next().and_then(|w| w.parse().ok()),
                        "ft:" => report.features = words.next().and_then(|w| w.parse().ok()),
                        "corp:" => report.corpus = words.next().map(str::to_string),
                        _ => {}
                    }
                }
            }
        }
        report
    }

    fn line(&self, ok: bool) -> String {
        let shown = |value: Option<u64>| value.map_or("?".to_string(), |v| v.to_string());
        format!(
            "{} runs ({}/s), coverage {} edges ({} features), corpus {} (inputs/size), {}",
            shown(self.runs),
            shown(self.exec_per_sec),
            shown(self.coverage),
            shown(self.features),
            self.corpus.as_deref().unwrap_or("?"),
            match (ok, &self.crash_input) {
                (true, _) => "0 crashes".to_string(),
                (false, Some(input)) => format!("CRASH, input {input}"),
                (false, None) => "FAILED (no crash input written)".to_string(),
            }
        )
    }
}

/// The tests load XDP programs and create network namespaces: without root or BPF they would
/// fail one by one with obscure errors, so fail here, once, saying why.
fn check_privileges() -> Result<()> {
    if !is_root() {
        bail!(
            "cargo xtask test needs root: the integration tests create network namespaces and \
             load XDP programs; run it as root, e.g. `sudo -E cargo xtask test`"
        );
    }
    if !is_bpffs("/sys/fs/bpf") {
        let status = Command::new("mount")
            .args(["-t", "bpf", "bpf", "/sys/fs/bpf"])
            .status()
            .context("running mount")?;
        if !status.success() || !is_bpffs("/sys/fs/bpf") {
            bail!("/sys/fs/bpf is not a BPF filesystem and mounting one there failed (`mount -t bpf bpf /sys/fs/bpf`)");
        }
        println!("[setup] mounted the BPF filesystem on /sys/fs/bpf");
    }
    let out = Command::new("bpftool")
        .args(["prog", "show"])
        .output()
        .context("running bpftool")?;
    if !out.status.success() {
        bail!(
            "BPF is not usable here (`bpftool prog show` failed: {}): the tests need a kernel \
             with BPF and XDP and the CAP_BPF/CAP_NET_ADMIN capabilities",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    println!("[setup] root, BPF and /sys/fs/bpf: ready");
    Ok(())
}

fn is_bpffs(path: &str) -> bool {
    let Ok(c_path) = std::ffi::CString::new(path) else {
        return false;
    };
    // SAFETY: statfs fills the zeroed struct we own.
    unsafe {
        let mut fs: libc::statfs = std::mem::zeroed();
        libc::statfs(c_path.as_ptr(), &mut fs) == 0 && fs.f_type as i64 == BPF_FS_MAGIC
    }
}

/// Sums cargo test's "test result:" lines.
#[derive(Default, Debug, PartialEq)]
struct TestTotals {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl TestTotals {
    fn add_line(&mut self, line: &str) {
        let Some((_, counts)) = line.split_once("test result:") else {
            return;
        };
        for part in counts.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(what), Some(number)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(number) = number.parse::<u64>() else {
                continue;
            };
            match what {
                "passed" => self.passed += number,
                "failed" => self.failed += number,
                "ignored" => self.ignored += number,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_result_lines_are_summed() {
        let mut totals = TestTotals::default();
        totals.add_line("test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.31s");
        totals.add_line("test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.00s");
        totals.add_line("running 5 tests");
        totals.add_line("test foo ... ok");
        assert_eq!(
            totals,
            TestTotals {
                passed: 15,
                failed: 2,
                ignored: 1
            }
        );
    }

    #[test]
    fn a_failed_install_shows_one_sentence_and_the_end_of_its_log() {
        let log = env::temp_dir().join(format!("xtask-failure-{}.log", std::process::id()));
        let text: String = (1..=300).map(|i| format!("log line {i}\n")).collect();
        std::fs::write(&log, text).unwrap();
        let message = failure(&log, "installing X failed: do Y");
        std::fs::remove_file(&log).unwrap();
        assert!(message.starts_with("installing X failed: do Y.\n"));
        assert!(message.contains("log line 286\n"));
        assert!(message.contains("log line 300\n"));
        assert!(!message.contains("log line 285\n"));
        assert!(message.contains(&format!("full log: {}", log.display())));
        assert!(message.lines().count() <= LOG_TAIL_LINES + 3);
    }

    #[test]
    fn fuzz_report_reads_libfuzzer_status_and_stats() {
        let log = "#2\tINITED cov: 10 ft: 11 corp: 3/90b exec/s: 0 rss: 30Mb\n\
                   #4096\tpulse  cov: 120 ft: 300 corp: 40/2Kb lim: 40 exec/s: 2048 rss: 40Mb\n\
                   #90000\tDONE   cov: 130 ft: 350 corp: 52/3Kb lim: 80 exec/s: 9000 rss: 41Mb\n\
                   stat::number_of_executed_units: 90000\n\
                   stat::average_exec_per_sec:     9000\n";
        let report = FuzzReport::from_log(log);
        assert_eq!(report.runs, Some(90000));
        assert_eq!(report.exec_per_sec, Some(9000));
        assert_eq!(report.coverage, Some(130));
        assert_eq!(report.features, Some(350));
        assert_eq!(report.corpus.as_deref(), Some("52/3Kb"));
        assert!(report.line(true).ends_with("0 crashes"));
        let crash = FuzzReport::from_log(
            "==1== ERROR: libFuzzer: deadly signal\n\
             artifact_prefix='a/'; Test unit written to a/crash-0123\n",
        );
        assert!(crash.line(false).ends_with("CRASH, input a/crash-0123"));
    }

    #[test]
    fn cli_parses_fuzz_seconds_and_target() {
        let cli = Cli::try_parse_from([
            "xtask",
            "fuzz",
            "--seconds",
            "5",
            "--target",
            "config_parse",
        ])
        .unwrap();
        match cli.command {
            Task::Fuzz { seconds, target } => {
                assert_eq!(seconds, 5);
                assert_eq!(target.as_deref(), Some("config_parse"));
            }
            _ => panic!("parsed as another task"),
        }
        assert!(Cli::try_parse_from(["xtask", "fuzz", "--target", "nope"]).is_err());
    }

    #[test]
    fn cli_parses_soak_minutes_and_seed() {
        let cli =
            Cli::try_parse_from(["xtask", "soak", "--minutes", "2.5", "--seed", "7"]).unwrap();
        assert!(matches!(
            cli.command,
            Task::Soak { minutes, seed: Some(7) } if minutes == 2.5
        ));
        let cli = Cli::try_parse_from(["xtask", "soak"]).unwrap();
        assert!(matches!(cli.command, Task::Soak { minutes, seed: None } if minutes == 10.0));
    }

    #[test]
    fn cli_parses_bench_quick() {
        let cli = Cli::try_parse_from(["xtask", "bench", "--quick"]).unwrap();
        assert!(matches!(cli.command, Task::Bench { quick: true, .. }));
        let cli = Cli::try_parse_from(["xtask", "bench"]).unwrap();
        assert!(matches!(cli.command, Task::Bench { quick: false, ref only } if only.is_empty()));
        let cli = Cli::try_parse_from(["xtask", "bench", "--only", "fastpath,store"]).unwrap();
        assert!(
            matches!(cli.command, Task::Bench { quick: false, ref only } if only == &["fastpath", "store"])
        );
    }

    #[test]
    fn cli_parses_run_arguments_after_double_dash() {
        let cli = Cli::try_parse_from([
            "xtask",
            "run",
            "--release",
            "--",
            "serve",
            "--iface",
            "eth0",
        ])
        .unwrap();
        match cli.command {
            Task::Run { release, args } => {
                assert!(release);
                assert_eq!(args, ["serve", "--iface", "eth0"]);
            }
            _ => panic!("parsed as another task"),
        }
    }
}
