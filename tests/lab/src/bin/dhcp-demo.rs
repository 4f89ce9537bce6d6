//! `dhcp-demo` (`cargo xtask run` with no arguments): a self-contained lab. A server namespace and a client namespace joined by
//! a veth; `dhcp-user serve` with examples/lab.toml on the server side; `dhclient -6` (an
//! address) then `dhclient -6 -P` (a delegated prefix) on the client side; the binding table
//! after each step; then it keeps running (dhclient renews) until Ctrl-C, and cleans up.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use dhcp_lab::dhclient::write_dhclient_script;
use dhcp_lab::{Lab, Namespace};
use dhcp_user::cli::format_bindings;
use dhcp_user::control::{request, ControlRequest, ControlResponse};

/// The demo's configuration (also the documented example).
const LAB_CONFIG: &str = include_str!("../../../../examples/lab.toml");
/// The server's address on the lab link (inside the lab subnet).
const LAB_SERVER_ADDRESS: &str = "2001:db8:1::1/64";

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

fn install_stop_handler() -> anyhow::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let action = SigAction::new(
        SigHandler::Handler(on_stop_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(signal, &action) }.context("installing a signal handler")?;
    }
    Ok(())
}

/// `dhcp-demo [--config FILE]`.
#[derive(clap::Parser, Debug)]
#[command(
    name = "dhcp-demo",
    about = "A self-contained lab: dhcp-user serve in one network namespace, dhclient in another"
)]
struct Cli {
    /// A server configuration to run instead of examples/lab.toml.
    #[arg(long)]
    config: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let cli = <Cli as clap::Parser>::parse();
    // The lab's own messages (teardown trouble, mostly); the server logs on its own stderr.
    dhcp_user::cli::init_tracing();
    match run(cli.config.as_deref()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("dhcp-demo: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Lifetimes the demo uses instead of lab.toml's, so that renewals come every few seconds.
const DEMO_LIFETIMES: [(&str, u32); 4] = [
    ("preferred-lifetime", 60),
    ("valid-lifetime", 120),
    ("renew-timer", 10),
    ("rebind-timer", 40),
];

/// `config` with the subnet lifetime keys set to `lifetimes`.
fn with_lifetimes(config: &str, lifetimes: &[(&str, u32)]) -> String {
    config
        .lines()
        .map(|line| {
            let key = line.split('=').next().unwrap_or("").trim();
            match lifetimes.iter().find(|(k, _)| *k == key) {
                Some((k, v)) => format!("{k} = {v}\n"),
                None => format!("{line}\n"),
            }
        })
        .collect()
}

/// Runs the demo until Ctrl-C. `config` replaces the embedded examples/lab.toml.
fn run(config: Option<&Path>) -> anyhow::Result<()> {
    install_stop_handler()?;
    let config_text = match config {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
        }
        None => {
            println!(
                "[demo] examples/lab.toml, with lifetimes shortened (preferred {}s, valid {}s, T1 {}s, \
                 T2 {}s) so renewals happen while you watch",
                DEMO_LIFETIMES[0].1, DEMO_LIFETIMES[1].1, DEMO_LIFETIMES[2].1, DEMO_LIFETIMES[3].1
            );
            with_lifetimes(LAB_CONFIG, &DEMO_LIFETIMES)
        }
    };
    // Check it here, so a broken config fails before any namespace exists.
    dhcp_user::config::Config::parse(
        &config_text,
        config.unwrap_or(Path::new("examples/lab.toml")),
    )?;

    let state_dir = std::env::temp_dir().join(format!("dhcp-user-demo-{}", std::process::id()));
    std::fs::create_dir_all(&state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let result = run_lab(&config_text, &state_dir);
    let _ = std::fs::remove_dir_all(&state_dir);
    println!("[demo] cleaned up");
    result
}

/// The `dhcp-user` binary built beside this one (`cargo xtask run` builds both).
fn server_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe().context("locating the dhcp-demo binary")?;
    let server = me.with_file_name("dhcp-user");
    if !server.is_file() {
        bail!(
            "{} is missing: build it with `cargo build -p dhcp-user` (or run the demo with \
             `cargo xtask run`, which builds both)",
            server.display()
        );
    }
    Ok(server)
}

fn step(text: &str) {
    println!("\n[demo] {text}");
}

fn run_lab(config_text: &str, state_dir: &Path) -> anyhow::Result<()> {
    let lab = Lab::new();
    let server_ns = lab.namespace("srv")?;
    let client_ns = lab.namespace("cli")?;
    let link = lab.link(&server_ns, Some(LAB_SERVER_ADDRESS), &client_ns, None)?;
    step(&format!(
        "lab up: server namespace {} ({} = {}), client namespace {} ({})",
        server_ns.name(),
        link.a.ifname,
        LAB_SERVER_ADDRESS,
        client_ns.name(),
        link.b.ifname
    ));

    let config_path = state_dir.join("lab.toml");
    std::fs::write(&config_path, config_text)
        .with_context(|| format!("writing {}", config_path.display()))?;
    let exe = server_binary()?;
    step(&format!(
        "starting: dhcp-user serve --config {} --iface {} --state-dir {}",
        config_path.display(),
        link.a.ifname,
        state_dir.display()
    ));
    // The fast path pins on the lab's bpffs (inside `ip netns exec` /sys/fs/bpf is not the host's).
    let pin_root = dhcp_lab::lab_bpffs()?.join(format!("demo-{}", std::process::id()));
    step(&format!(
        "the XDP fast path attaches to {} and pins under {}",
        link.a.ifname,
        pin_root.display()
    ));
    let mut server = server_ns
        .command(&exe)
        .arg("serve")
        .arg("--config")
        .arg(&config_path)
        .args(["--iface", &link.a.ifname])
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--pin-root")
        .arg(&pin_root)
        .args(["--detach-on-exit", "--max-bindings", "65536"])
        .stdin(Stdio::null())
        .spawn()
        .context("starting dhcp-user serve in the server namespace")?;
    step(&format!(
        "leasequery (RFC 5007/5460) from another terminal: ip netns exec {} {} leasequery --server {} link ::",
        server_ns.name(),
        exe.display(),
        LAB_SERVER_ADDRESS.split('/').next().unwrap_or(LAB_SERVER_ADDRESS)
    ));
    let outcome = drive(
        &client_ns,
        &link.b.ifname,
        state_dir,
        &pin_root,
        &mut server,
    );
    stop_server(&mut server);
    // Whatever the server did not remove (it was killed, or failed), goes now.
    let _ = dhcp_user::fastpath::FastPath::unpin_all(&pin_root);
    outcome
}

/// SIGTERM, then up to 5 s for the server to detach and exit, then SIGKILL.
fn stop_server(server: &mut Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = server.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = server.kill();
    let _ = server.wait();
}

/// One line on who answered the renewals: the XDP program (in the kernel) or the controller.
fn print_renewals(state_dir: &Path, pin_root: &Path) {
    let in_kernel = dhcp_user::fastpath::pinned_stats(pin_root)
        .ok()
        .flatten()
        .map(|counters| {
            counters
                .iter()
                .filter(|(name, _)| name.starts_with("tx_"))
                .map(|(_, c)| c.packets)
                .sum::<u64>()
        })
        .unwrap_or(0);
    let by_controller = match request(state_dir, &ControlRequest::Stats) {
        Ok(ControlResponse::Stats(stats)) => ["renew", "rebind"]
            .iter()
            .filter_map(|k| stats.counters.received.get(*k))
            .sum::<u64>(),
        _ => 0,
    };
    println!("[demo] answered in the kernel by XDP: {in_kernel}; renewals seen by the controller: {by_controller}");
}

fn drive(
    client_ns: &Namespace,
    ifname: &str,
    state_dir: &Path,
    pin_root: &Path,
    server: &mut Child,
) -> anyhow::Result<()> {
    wait_for_server(state_dir, server)?;
    step("the server answers on its control socket");

    step(&format!("dhclient -6 on {ifname}: asking for an address"));
    let mut address_client = dhclient(client_ns, ifname, state_dir, "na", &[])?;
    wait_child(&mut address_client, Duration::from_secs(30), "dhclient -6")?;
    print_bindings(state_dir)?;
    println!(
        "{}",
        client_ns
            .exec(
                "ip",
                ["-6", "addr", "show", "dev", ifname, "scope", "global"]
            )
            .unwrap_or_default()
    );

    step(&format!(
        "dhclient -6 -P on {ifname}: asking for a delegated prefix"
    ));
    let mut prefix_client = dhclient(client_ns, ifname, state_dir, "pd", &["-P"])?;
    wait_child(
        &mut prefix_client,
        Duration::from_secs(30),
        "dhclient -6 -P",
    )?;
    print_bindings(state_dir)?;

    step("running: dhclient keeps renewing; `dhcp-user bindings --state-dir` shows the table. Ctrl-C stops and cleans up.");
    println!("[demo] state directory: {}", state_dir.display());
    let mut last_report = std::time::Instant::now();
    while !interrupted() {
        if let Some(status) = server.try_wait()? {
            bail!("the server exited ({status})");
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            print_renewals(state_dir, pin_root);
            last_report = std::time::Instant::now();
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    step("stopping");
    Ok(())
}

fn dhclient(
    ns: &Namespace,
    ifname: &str,
    state_dir: &Path,
    tag: &str,
    extra: &[&str],
) -> anyhow::Result<Child> {
    let leases: PathBuf = state_dir.join(format!("dhclient-{tag}.leases"));
    let pid: PathBuf = state_dir.join(format!("dhclient-{tag}.pid"));
    let script = write_dhclient_script(state_dir)?;
    ns.command("dhclient")
        .arg("-6")
        .args(extra)
        .args(["-1", "-v"])
        .arg("-sf")
        .arg(&script)
        .arg("-lf")
        .arg(&leases)
        .arg("-pf")
        .arg(&pid)
        .arg(ifname)
        .stdin(Stdio::null())
        .spawn()
        .context("starting dhclient (is isc-dhcp-client installed?)")
}

fn wait_child(child: &mut Child, timeout: Duration, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait()? {
            if !status.success() {
                bail!("{what} failed ({status})");
            }
            return Ok(());
        }
        if interrupted() {
            let _ = child.kill();
            bail!("interrupted");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            bail!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_for_server(state_dir: &Path, server: &mut Child) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if request(state_dir, &ControlRequest::Bindings).is_ok() {
            return Ok(());
        }
        if let Some(status) = server.try_wait()? {
            bail!("the server exited ({status})");
        }
        if interrupted() {
            bail!("interrupted");
        }
        if Instant::now() > deadline {
            bail!("the server did not open its control socket within 15 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn print_bindings(state_dir: &Path) -> anyhow::Result<()> {
    if let ControlResponse::Bindings(rows) = request(state_dir, &ControlRequest::Bindings)? {
        print!("{}", format_bindings(&rows));
    }
    Ok(())
}
