//! `cargo xtask build|run|test|bench`: the project's one entry point.
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
    "isc-dhcp-relay",
    "kea-admin",
    "kea-dhcp6-server",
    "python3-scapy",
    "tshark",
];

const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
/// Lines of a failed install's log shown on the terminal (the whole log stays in a file).
const LOG_TAIL_LINES: usize = 15;
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

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
            Task::Bench { quick } => bench(&ws, quick),
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
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut command = ws.cargo();
    command
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
    Ok(if status.success() && totals.failed == 0 {
        0
    } else {
        1
    })
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
fn bench(ws: &Workspace, quick: bool) -> Result<u8> {
    if !is_root() {
        bail!(
            "cargo xtask bench needs root (the benchmark loads XDP programs and creates network \
             namespaces): run it as root, e.g. `sudo -E cargo xtask bench`"
        );
    }
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
    command.current_dir(&ws.root);
    if quick {
        command.arg("--quick");
    }
    println!(
        "[bench] {}{}",
        binary.display(),
        if quick { " --quick" } else { "" }
    );
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
    fn cli_parses_bench_quick() {
        let cli = Cli::try_parse_from(["xtask", "bench", "--quick"]).unwrap();
        assert!(matches!(cli.command, Task::Bench { quick: true }));
        let cli = Cli::try_parse_from(["xtask", "bench"]).unwrap();
        assert!(matches!(cli.command, Task::Bench { quick: false }));
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
