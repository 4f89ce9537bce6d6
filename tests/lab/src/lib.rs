//! The lab: throw-away network namespaces joined by veth pairs, for the integration tests, the
//! demo and the benchmarks.
//!
//! ```no_run
//! use dhcp_lab::Lab;
//! # fn main() -> Result<(), dhcp_lab::LabError> {
//! let lab = Lab::new();
//! let server = lab.namespace("srv")?;
//! let client = lab.namespace("cli")?;
//! // `b` is the client side: it gets the pass-through XDP program (see `VethPair`).
//! let link = lab.link(&server, Some("2001:db8:1::1/64"), &client, None)?;
//! let ping = client.exec("ping", ["-6", "-c1", &format!("{}%{}", link.a.link_local, link.b.ifname)])?;
//! # Ok(()) }
//! ```
//!
//! Everything is torn down by `Drop` (also while a test panics): processes in a namespace get
//! SIGTERM, then SIGKILL after [`TERM_GRACE`], then the namespace is deleted, which deletes its
//! veth ends. A process that is killed outright leaves its namespaces behind; the next process to create one sweeps the namespaces
//! of dead processes (names carry the creator's pid). Interactive users (the demo, benches) call
//! [`install_signal_teardown`] so Ctrl-C tears down before exiting.
//!
//! Names are `dl-<pid>-<n>-<role>`, unique per process and across processes, so tests may run in
//! parallel. Veth ends are created directly inside their namespaces (never in the caller's), so
//! their names only need to be unique per namespace: `v<n>-<peer role>`, at most 15 characters.

pub mod dhclient;
pub mod qinq;

use std::{
    ffi::{CString, OsStr},
    fs::File,
    io,
    net::Ipv6Addr,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicI32, AtomicU32, Ordering},
        Arc, Mutex, Once,
    },
    thread,
    time::{Duration, Instant},
};

use thiserror::Error;
use tracing::{debug, info, warn};

/// Every lab namespace name starts with this.
pub const NAMESPACE_PREFIX: &str = "dl-";
/// Where `ip netns` keeps its named namespaces.
const NETNS_DIR: &str = "/run/netns";
/// Longest role accepted (keeps namespace names and `v<n>-<role>` interface names short).
pub const MAX_ROLE_LEN: usize = 10;
/// Linux's limit on interface names (IFNAMSIZ - 1).
const IFNAME_MAX: usize = 15;
/// How long addresses may take to become usable (no longer tentative).
const ADDRESS_READY_TIMEOUT: Duration = Duration::from_secs(5);
/// How long processes in a namespace being deleted get between SIGTERM and SIGKILL.
pub const TERM_GRACE: Duration = Duration::from_secs(2);
/// How long killed processes may take to leave a namespace.
const KILL_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Error)]
pub enum LabError {
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("{0}")]
    Timeout(String),
    #[error("invalid lab parameter: {0}")]
    Invalid(String),
    #[error("unexpected output from `{command}`: {detail}")]
    Parse { command: String, detail: String },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> LabError {
    let what = what.into();
    move |source| LabError::Io { what, source }
}

/// Entry point: sweeps namespaces left behind by dead processes, then hands out namespaces and
/// links. It owns nothing itself; each namespace and link is its own guard.
#[derive(Debug)]
pub struct Lab {
    _private: (),
}

impl Default for Lab {
    fn default() -> Self {
        Self::new()
    }
}

impl Lab {
    pub fn new() -> Lab {
        sweep_stale_once();
        Lab { _private: () }
    }

    /// A new namespace; `role` (letters, digits, at most [`MAX_ROLE_LEN`]) ends its name.
    pub fn namespace(&self, role: &str) -> Result<Namespace, LabError> {
        Namespace::create(role)
    }

    /// A veth pair from `a` to `b` with optional addresses (`"2001:db8:1::1/64"`). `b` is the
    /// client side and gets the pass-through XDP program (see [`VethPair::create`]).
    pub fn link(
        &self,
        a: &Namespace,
        a_addr: Option<&str>,
        b: &Namespace,
        b_addr: Option<&str>,
    ) -> Result<VethPair, LabError> {
        VethPair::create(a, a_addr, b, b_addr)
    }

    /// One broadcast domain for two servers and a client: a veth pair from each of `a` and `b`
    /// (with the given addresses) into `client`, whose ends join a bridge `br0` there (multicast
    /// snooping off, so every Solicit reaches both servers). `br0` is up, with `client_addr`
    /// (no DAD) when given. Returns the links to `a` and to `b`.
    pub fn shared_link(
        &self,
        a: (&Namespace, &str),
        b: (&Namespace, &str),
        client: &Namespace,
        client_addr: Option<&str>,
    ) -> Result<(VethPair, VethPair), LabError> {
        let a_link = self.link(a.0, Some(a.1), client, None)?;
        let b_link = self.link(b.0, Some(b.1), client, None)?;
        client.exec(
            "ip",
            [
                "link",
                "add",
                "br0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ],
        )?;
        for port in [&a_link.b.ifname, &b_link.b.ifname] {
            client.exec("ip", ["link", "set", port, "master", "br0"])?;
        }
        if let Some(addr) = client_addr {
            client.exec("ip", ["addr", "add", addr, "dev", "br0", "nodad"])?;
        }
        client.exec("ip", ["link", "set", "br0", "up"])?;
        Ok((a_link, b_link))
    }
}

// ---------------------------------------------------------------------------------------------
// Namespaces

static NEXT_ID: AtomicU32 = AtomicU32::new(0);
/// `ip netns add` races with itself when it first sets up /run/netns; one at a time per process.
static CREATE_LOCK: Mutex<()> = Mutex::new(());
/// Namespaces of this process that still exist, for [`teardown_all`].
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A named network namespace, deleted (with everything running in it) on drop.
#[derive(Debug)]
pub struct Namespace {
    name: String,
    role: String,
}

impl Namespace {
    /// Creates `dl-<pid>-<n>-<role>` with loopback up and duplicate address detection off (so
    /// addresses are usable at once; set before any link moves in, so every link inherits it).
    pub fn create(role: &str) -> Result<Namespace, LabError> {
        if role.is_empty()
            || role.len() > MAX_ROLE_LEN
            || !role.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(LabError::Invalid(format!(
                "role {role:?}: 1 to {MAX_ROLE_LEN} ASCII letters or digits"
            )));
        }
        sweep_stale_once();
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let name = format!("{NAMESPACE_PREFIX}{}-{id}-{role}", std::process::id());
        {
            let _serial = CREATE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
            run_ip(["netns", "add", &name])?;
        }
        LIVE.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name.clone());
        // From here on, Drop cleans up if the rest fails.
        let ns = Namespace {
            name,
            role: role.to_string(),
        };
        run_ip(["-n", &ns.name, "link", "set", "lo", "up"])?;
        ns.run_in(|| -> Result<(), LabError> {
            for key in ["all", "default"] {
                let path = format!("/proc/sys/net/ipv6/conf/{key}/accept_dad");
                std::fs::write(&path, "0").map_err(io_err(path))?;
            }
            Ok(())
        })??;
        debug!(namespace = %ns.name, "lab namespace created");
        Ok(ns)
    }

    /// The namespace's name (as `ip netns` knows it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The role given at creation.
    pub fn role(&self) -> &str {
        &self.role
    }

    /// `nsenter --net=/run/netns/<name> -- <program>`: add arguments, stdio, environment as
    /// usual. Processes started this way are stopped when the namespace is dropped.
    ///
    /// Only the network namespace changes. (`ip netns exec` would also mount a fresh /sys, on
    /// which /sys/fs/bpf is no BPF filesystem, so a server started with it could not pin maps.)
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={NETNS_DIR}/{}", self.name))
            .arg("--")
            .arg(program);
        command
    }

    /// Starts `program args` in the namespace (stdin closed); stopped when the namespace drops.
    pub fn spawn<I, S>(&self, program: &str, args: I) -> Result<Child, LabError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(program)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .map_err(io_err(format!("starting {program} in {}", self.name)))
    }

    /// Runs `program args` in the namespace to completion; its stdout, or an error carrying
    /// its stderr when it fails.
    pub fn exec<I, S>(&self, program: &str, args: I) -> Result<String, LabError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut command = self.command(program);
        command.args(args);
        run_to_string(command)
    }

    /// Runs `f` on a thread that entered the namespace (sockets it creates live there, and stay
    /// there when used from other threads). A panic in `f` is resumed in the caller.
    pub fn run_in<T, F>(&self, f: F) -> Result<T, LabError>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        let netns = self.open()?;
        thread::scope(|scope| {
            let worker = scope.spawn(move || -> Result<T, LabError> {
                enter(&netns, &self.name)?;
                drop(netns);
                Ok(f())
            });
            match worker.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Starts a thread that entered the namespace and runs `f` (an in-process server, say).
    pub fn spawn_in<T, F>(&self, f: F) -> Result<thread::JoinHandle<T>, LabError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let netns = self.open()?;
        let name = self.name.clone();
        let (entered_tx, entered_rx) = std::sync::mpsc::sync_channel(1);
        let handle = thread::Builder::new()
            .name(format!("lab-{}", self.role))
            .spawn(move || {
                let entered = enter(&netns, &name);
                drop(netns);
                let failed = entered.is_err();
                let _ = entered_tx.send(entered);
                if failed {
                    // The caller got the error; end the thread without running `f` (and
                    // without the panic hook's message: resume_unwind skips it).
                    std::panic::resume_unwind(Box::new("did not enter the namespace"));
                }
                f()
            })
            .map_err(io_err("starting a lab thread"))?;
        match entered_rx.recv() {
            Ok(Ok(())) => Ok(handle),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(LabError::Invalid(
                "the lab thread ended before entering the namespace".into(),
            )),
        }
    }

    /// The pids of processes whose network namespace is this one.
    pub fn pids(&self) -> Result<Vec<u32>, LabError> {
        namespace_pids(&self.name)
    }

    fn open(&self) -> Result<File, LabError> {
        let path = Path::new(NETNS_DIR).join(&self.name);
        File::open(&path).map_err(io_err(format!("opening {}", path.display())))
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // Not in LIVE any more: `teardown_all` already removed it.
        let live = {
            let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
            let before = live.len();
            live.retain(|n| n != &self.name);
            live.len() != before
        };
        if live {
            teardown_namespace(&self.name);
        }
    }
}

fn enter(netns: &File, name: &str) -> Result<(), LabError> {
    // SAFETY: setns on a valid namespace fd affects only the calling thread.
    if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(LabError::Io {
            what: format!("entering network namespace {name}"),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn namespace_pids(name: &str) -> Result<Vec<u32>, LabError> {
    let out = run_ip(["netns", "pids", name])?;
    Ok(out
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect())
}

/// Stops what runs in `name` (SIGTERM, so servers can detach and unpin; SIGKILL for what is
/// still there after [`TERM_GRACE`]), then deletes it. Errors are logged: this runs from Drop.
fn teardown_namespace(name: &str) {
    let me = std::process::id();
    let started = Instant::now();
    let mut signalled_term = false;
    loop {
        let pids: Vec<u32> = match namespace_pids(name) {
            Ok(pids) => pids.into_iter().filter(|&p| p != me).collect(),
            Err(e) => {
                debug!(namespace = name, error = %e, "listing processes");
                Vec::new()
            }
        };
        if pids.is_empty() {
            break;
        }
        let elapsed = started.elapsed();
        if elapsed > TERM_GRACE + KILL_TIMEOUT {
            warn!(
                namespace = name,
                ?pids,
                "processes did not exit after SIGKILL"
            );
            break;
        }
        let signal = if elapsed < TERM_GRACE {
            if signalled_term {
                None
            } else {
                signalled_term = true;
                Some(libc::SIGTERM)
            }
        } else {
            Some(libc::SIGKILL)
        };
        if let Some(signal) = signal {
            for &pid in &pids {
                // SAFETY: kill has no memory effects; a pid that just exited gives ESRCH.
                unsafe { libc::kill(pid as libc::pid_t, signal) };
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
    if let Err(e) = run_ip(["netns", "delete", name]) {
        warn!(namespace = name, error = %e, "deleting lab namespace");
    } else {
        debug!(namespace = name, "lab namespace deleted");
    }
}

/// Tears down every namespace this process created and still holds (for signal handlers and
/// other exits that skip Drop). Later drops of those guards find nothing left to do.
pub fn teardown_all() {
    let names = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|e| e.into_inner()));
    for name in names {
        teardown_namespace(&name);
    }
}

/// Deletes lab namespaces whose creating process is gone (a run killed before its Drop ran).
/// Namespaces of live processes, this one included, are left alone. Returns what it deleted.
pub fn sweep_stale() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut swept = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(NAMESPACE_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            info!(namespace = %name, "removing a lab namespace left by a dead process");
            teardown_namespace(&name);
            swept.push(name);
        }
    }
    swept
}

fn sweep_stale_once() {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| {
        sweep_stale();
    });
}

// ---------------------------------------------------------------------------------------------
// Signals

static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn forward_signal(signal: libc::c_int) {
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    let byte = signal as u8;
    // SAFETY: write(2) is async-signal-safe; the buffer is a local.
    unsafe { libc::write(fd, (&byte as *const u8).cast(), 1) };
}

/// On SIGINT, SIGTERM or SIGHUP: tear down every lab namespace of this process, then exit with
/// 128 + the signal number. For interactive users (demo, benches); tests rely on Drop and the
/// stale sweep instead. Calling it again does nothing.
pub fn install_signal_teardown() -> Result<(), LabError> {
    static INSTALLED: Mutex<bool> = Mutex::new(false);
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if *installed {
        return Ok(());
    }
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io_err("creating the signal pipe")(
            io::Error::last_os_error(),
        ));
    }
    // SAFETY: the read end was just created and is owned here. The write end stays open for
    // the life of the process: the handler writes to it.
    let read_end = unsafe { File::from_raw_fd(fds[0]) };
    SIGNAL_PIPE.store(fds[1], Ordering::Relaxed);
    thread::Builder::new()
        .name("lab-signals".into())
        .spawn(move || {
            use std::io::Read;
            let mut read_end = read_end;
            let mut byte = [0u8; 1];
            if read_end.read_exact(&mut byte).is_ok() {
                let signal = byte[0] as i32;
                info!(signal, "signal received: tearing down the lab");
                teardown_all();
                std::process::exit(128 + signal);
            }
        })
        .map_err(io_err("starting the signal thread"))?;
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only calls write(2); sigaction is given a zeroed, filled struct.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction =
                forward_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            if libc::sigaction(signal, &action, std::ptr::null_mut()) != 0 {
                return Err(io_err("installing a signal handler")(
                    io::Error::last_os_error(),
                ));
            }
        }
    }
    *installed = true;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Veth pairs

static NEXT_LINK: AtomicU32 = AtomicU32::new(0);

/// One end of a veth pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethEnd {
    /// The namespace it lives in.
    pub namespace: String,
    pub ifname: String,
    pub ifindex: u32,
    pub mac: [u8; 6],
    /// Its fe80::/64 address (usable: not tentative).
    pub link_local: Ipv6Addr,
    /// The address given at creation, as given (`"2001:db8:1::1/64"`).
    pub address: Option<String>,
}

/// A veth pair between two namespaces. Dropping it deletes the pair and detaches the client
/// side's pass-through XDP program; deleting either namespace also deletes the pair.
#[derive(Debug)]
pub struct VethPair {
    /// The server side.
    pub a: VethEnd,
    /// The client side, with a pass-through XDP program attached: a frame the server side sends
    /// with XDP_TX reaches the peer only if the peer runs NAPI, which an XDP program turns on.
    pub b: VethEnd,
    /// The BPF link holding the pass-through program on `b` (closing it detaches).
    _pass_link: OwnedFd,
}

impl VethPair {
    /// Creates the pair inside the two namespaces (named `v<n>-<peer role>`), attaches the
    /// pass-through XDP program to `b`, adds the addresses, brings both ends up and waits until
    /// their addresses (link-local included) are no longer tentative.
    pub fn create(
        a: &Namespace,
        a_addr: Option<&str>,
        b: &Namespace,
        b_addr: Option<&str>,
    ) -> Result<VethPair, LabError> {
        let n = NEXT_LINK.fetch_add(1, Ordering::Relaxed);
        let mut a_name = ifname(n, &b.role);
        let mut b_name = ifname(n, &a.role);
        if a.name == b.name && a_name == b_name {
            a_name = ifname(n, &format!("{}a", b.role));
            b_name = ifname(n, &format!("{}b", a.role));
        }
        run_ip([
            "-n", &a.name, "link", "add", &a_name, "type", "veth", "peer", "name", &b_name,
            "netns", &b.name,
        ])?;
        // Guard the pair while the rest is set up: a failure below deletes it.
        let mut cleanup = LinkCleanup {
            namespace: a.name.clone(),
            ifname: a_name.clone(),
            armed: true,
        };
        // The client side sends what a host behind a real NIC sends: complete UDP checksums (over
        // veth the kernel would leave them to offload, and the fast path rightly refuses a frame
        // whose checksum does not verify).
        let pass_link = b.run_in(|| -> Result<OwnedFd, LabError> {
            tx_checksum_offload_off(&b_name)?;
            attach_pass_xdp(&b_name)
        })??;
        for (ns, name, addr) in [(a, &a_name, a_addr), (b, &b_name, b_addr)] {
            if let Some(addr) = addr {
                let mut args = vec!["-n", &ns.name, "addr", "add", addr, "dev", name];
                if addr.contains(':') {
                    args.push("nodad");
                }
                run_ip(args)?;
            }
        }
        for (ns, name) in [(a, &a_name), (b, &b_name)] {
            run_ip(["-n", &ns.name, "link", "set", name, "up"])?;
        }
        let a_end = wait_ready(a, &a_name, a_addr)?;
        let b_end = wait_ready(b, &b_name, b_addr)?;
        cleanup.armed = false;
        debug!(a = %a_end.ifname, b = %b_end.ifname, "lab veth pair up");
        Ok(VethPair {
            a: a_end,
            b: b_end,
            _pass_link: pass_link,
        })
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        drop(LinkCleanup {
            namespace: self.a.namespace.clone(),
            ifname: self.a.ifname.clone(),
            armed: true,
        });
    }
}

/// Deletes a veth (and so its peer) on drop; a namespace already gone took it along.
struct LinkCleanup {
    namespace: String,
    ifname: String,
    armed: bool,
}

impl Drop for LinkCleanup {
    fn drop(&mut self) {
        let netns = Path::new(NETNS_DIR).join(&self.namespace);
        if self.armed && netns.exists() {
            if let Err(e) = run_ip(["-n", &self.namespace, "link", "del", &self.ifname]) {
                debug!(ifname = %self.ifname, error = %e, "deleting lab veth");
            }
        }
    }
}

fn ifname(n: u32, peer_role: &str) -> String {
    let mut name = format!("v{n}-{peer_role}");
    name.truncate(IFNAME_MAX);
    name
}

/// Polls until `ifname` in `ns` has a link-local address and no tentative address, then
/// describes it.
fn wait_ready(ns: &Namespace, ifname: &str, address: Option<&str>) -> Result<VethEnd, LabError> {
    let deadline = Instant::now() + ADDRESS_READY_TIMEOUT;
    loop {
        let out = run_ip(["-j", "-n", &ns.name, "addr", "show", "dev", ifname])?;
        let parse_err = |detail: &str| LabError::Parse {
            command: format!("ip -j -n {} addr show dev {ifname}", ns.name),
            detail: detail.to_string(),
        };
        let json: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| parse_err(&e.to_string()))?;
        let link = json
            .as_array()
            .and_then(|links| links.first())
            .ok_or_else(|| parse_err("no interface"))?;
        let addrs = link["addr_info"].as_array().cloned().unwrap_or_default();
        let tentative = addrs
            .iter()
            .any(|a| a.get("tentative").is_some() || a.get("dadfailed").is_some());
        let link_local = addrs
            .iter()
            .filter(|a| a["family"] == "inet6" && a["scope"] == "link")
            .filter_map(|a| a["local"].as_str()?.parse::<Ipv6Addr>().ok())
            .next();
        if let (Some(link_local), false) = (link_local, tentative) {
            let ifindex = link["ifindex"]
                .as_u64()
                .ok_or_else(|| parse_err("no ifindex"))? as u32;
            let mac = parse_mac(link["address"].as_str().unwrap_or_default())
                .ok_or_else(|| parse_err("no MAC address"))?;
            return Ok(VethEnd {
                namespace: ns.name.clone(),
                ifname: ifname.to_string(),
                ifindex,
                mac,
                link_local,
                address: address.map(str::to_string),
            });
        }
        if Instant::now() > deadline {
            return Err(LabError::Timeout(format!(
                "{ifname} in {}: addresses not ready after {ADDRESS_READY_TIMEOUT:?}: {out}",
                ns.name
            )));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

// ---------------------------------------------------------------------------------------------
// The pass-through XDP program, loaded with the bpf(2) syscall: two instructions need no object
// file, and BPF_LINK_CREATE attaches it in the calling thread's namespace and detaches it when
// the link fd closes.

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_LINK_CREATE: libc::c_long = 28;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;

#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_ifindex: u32,
    attach_type: u32,
    flags: u32,
}

fn bpf(cmd: libc::c_long, attr: *const u8, size: usize) -> io::Result<OwnedFd> {
    // SAFETY: attr points to a live, fully initialised attribute struct of `size` bytes.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr, size as libc::c_uint) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// The `r0 = XDP_PASS; exit` program, loaded once per process.
fn pass_program() -> Result<Arc<OwnedFd>, LabError> {
    static PROGRAM: Mutex<Option<Arc<OwnedFd>>> = Mutex::new(None);
    let mut slot = PROGRAM.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(fd) = slot.as_ref() {
        return Ok(fd.clone());
    }
    // struct bpf_insn { u8 code; u8 dst:4, src:4; s16 off; s32 imm; }
    let insns: [u64; 2] = [
        u64::from_le_bytes([0xb7, 0, 0, 0, 2, 0, 0, 0]), // BPF_ALU64|BPF_MOV|BPF_K r0 = 2
        u64::from_le_bytes([0x95, 0, 0, 0, 0, 0, 0, 0]), // BPF_JMP|BPF_EXIT
    ];
    let license = c"GPL";
    let mut name = [0u8; 16];
    name[..8].copy_from_slice(b"lab_pass");
    let attr = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_XDP,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
        prog_ifindex: 0,
        expected_attach_type: BPF_XDP,
    };
    let fd = bpf(
        BPF_PROG_LOAD,
        (&attr as *const ProgLoadAttr).cast(),
        std::mem::size_of::<ProgLoadAttr>(),
    )
    .map_err(io_err(
        "loading the pass-through XDP program (needs root and BPF)",
    ))?;
    let fd = Arc::new(fd);
    *slot = Some(fd.clone());
    Ok(fd)
}

/// Attaches the pass-through program to `ifname` in the calling thread's namespace.
/// Where lab servers pin their fast path: a bpffs mounted outside /sys (`ip netns exec` mounts a
/// fresh /sys, hiding /sys/fs/bpf, while /run stays the host's), so pins made inside a lab
/// namespace are the host's and outlive the server process, as on a real box.
pub const LAB_BPFFS: &str = "/run/dhcp-user-lab/bpf";

/// Mounts the lab's bpffs at [`LAB_BPFFS`] unless it is there already; returns its path.
pub fn lab_bpffs() -> Result<std::path::PathBuf, LabError> {
    let dir = std::path::PathBuf::from(LAB_BPFFS);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(io_err("reading /proc/self/mountinfo"))?;
    let mounted = mounts.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(4) == Some(&LAB_BPFFS) && line.contains(" - bpf ")
    });
    if !mounted {
        std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {LAB_BPFFS}")))?;
        let status = Command::new("mount")
            .args(["-t", "bpf", "bpf", LAB_BPFFS])
            .status()
            .map_err(io_err("running mount"))?;
        if !status.success() {
            return Err(LabError::Command {
                command: format!("mount -t bpf bpf {LAB_BPFFS}"),
                detail: status.to_string(),
            });
        }
    }
    Ok(dir)
}

/// `ethtool -K <dev> tx off` through the ethtool ioctl (ETHTOOL_STXCSUM), in the calling thread's
/// namespace: the device then hands out frames with complete checksums.
pub fn tx_checksum_offload_off(dev: &str) -> Result<(), LabError> {
    const ETHTOOL_STXCSUM: u32 = 0x17;
    #[repr(C)]
    struct EthtoolValue {
        cmd: u32,
        data: u32,
    }
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        data: *mut EthtoolValue,
        _pad: [u8; 16],
    }
    if dev.len() >= libc::IFNAMSIZ {
        return Err(LabError::Invalid(format!(
            "interface name {dev} is too long"
        )));
    }
    let mut value = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: 0,
    };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: &mut value,
        _pad: [0; 16],
    };
    req.name[..dev.len()].copy_from_slice(dev.as_bytes());
    // SAFETY: a datagram socket only to carry the ioctl; closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if fd < 0 {
        return Err(LabError::Io {
            what: "socket for SIOCETHTOOL".into(),
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: SIOCETHTOOL reads the ifreq and the ethtool_value it points at, both ours.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCETHTOOL, &mut req as *mut IfReq) };
    let err = io::Error::last_os_error();
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(fd) };
    if rc != 0 {
        return Err(LabError::Io {
            what: format!("turning off tx checksum offload on {dev}"),
            source: err,
        });
    }
    Ok(())
}

fn attach_pass_xdp(ifname: &str) -> Result<OwnedFd, LabError> {
    let program = pass_program()?;
    let c_name = CString::new(ifname).map_err(|_| LabError::Invalid(ifname.into()))?;
    // SAFETY: c_name is a valid C string.
    let ifindex = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if ifindex == 0 {
        return Err(io_err(format!("finding {ifname}"))(
            io::Error::last_os_error(),
        ));
    }
    let attr = LinkCreateAttr {
        prog_fd: program.as_raw_fd() as u32,
        target_ifindex: ifindex,
        attach_type: BPF_XDP,
        flags: 0,
    };
    bpf(
        BPF_LINK_CREATE,
        (&attr as *const LinkCreateAttr).cast(),
        std::mem::size_of::<LinkCreateAttr>(),
    )
    .map_err(io_err(format!(
        "attaching the pass-through XDP program to {ifname}"
    )))
}

// ---------------------------------------------------------------------------------------------

fn run_ip<I, S>(args: I) -> Result<String, LabError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut command = Command::new("ip");
    command.args(args);
    run_to_string(command)
}

fn run_to_string(mut command: Command) -> Result<String, LabError> {
    let shown = format!(
        "{} {}",
        command.get_program().to_string_lossy(),
        command
            .get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(io_err(format!("running {shown}")))?;
    if !output.status.success() {
        return Err(LabError::Command {
            command: shown,
            detail: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Pins the calling thread (and the threads and processes it starts from now on) to the CPU it
/// runs on, and returns that CPU. Per-CPU state (the fast path's global pass budget, a veth's
/// XDP run, which happens on the sending CPU) then sees one CPU's slot.
pub fn pin_to_current_cpu() -> std::io::Result<usize> {
    // SAFETY: plain libc calls on a zeroed cpu_set_t, for this thread only.
    unsafe {
        let cpu = libc::sched_getcpu();
        if cpu < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(cpu as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_fit_ifnamsiz() {
        assert_eq!(ifname(7, "cli"), "v7-cli");
        assert!(ifname(4_000_000_000, "abcdefghij").len() <= IFNAME_MAX);
    }

    #[test]
    fn macs_parse() {
        assert_eq!(
            parse_mac("02:53:00:00:0a:ff"),
            Some([2, 0x53, 0, 0, 0x0a, 0xff])
        );
        assert_eq!(parse_mac("02:53:00:00:0a"), None);
        assert_eq!(parse_mac("02:53:00:00:0a:ff:01"), None);
        assert_eq!(parse_mac("zz:53:00:00:0a:ff"), None);
    }

    #[test]
    fn bad_roles_are_refused_before_anything_is_created() {
        for role in ["", "has-dash", "waytoolongrole", "sp ace"] {
            assert!(matches!(Namespace::create(role), Err(LabError::Invalid(_))));
        }
    }
}
