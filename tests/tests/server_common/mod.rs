//! A lab with the `dhcp-user` server running as a process in a server namespace and clients in
//! a client namespace, shared by the tests/tests/server_*.rs tests.

#![allow(dead_code)]

pub mod relay;

use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dhcp_lab::{Lab, Namespace, VethPair};
use dhcp_user::control::{request, Binding, ControlRequest, ControlResponse, StatsReply};

/// The lab config (examples/lab.toml) the tests start from.
pub const LAB_CONFIG: &str = include_str!("../../../examples/lab.toml");
pub const SERVER_ADDRESS: &str = "2001:db8:1::1";
pub const CLIENT_ADDRESS: &str = "2001:db8:1::2";

/// The `dhcp-user` binary next to this test binary (target/<profile>/dhcp-user), which
/// `cargo test --workspace` builds because dhcp-user has integration tests of its own;
/// `$DHCP_USER_BINARY` names another (a release build, for a measurement).
pub fn dhcp_user_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("DHCP_USER_BINARY") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    for dir in exe.ancestors().skip(1) {
        let candidate = dir.join("dhcp-user");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "no dhcp-user binary above {}: build it first (`cargo build -p dhcp-user`, or run \
         `cargo xtask test`, which builds the whole workspace)",
        exe.display()
    );
}

/// `lab.toml` with some keys of the subnet replaced (`key = value` lines) and lines appended
/// at the end of the subnet.
pub fn lab_config(replace: &[(&str, &str)], append: &str) -> String {
    let mut text = String::new();
    for line in LAB_CONFIG.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        match replace.iter().find(|(k, _)| *k == key) {
            Some((k, v)) => text.push_str(&format!("{k} = {v}\n")),
            None => {
                text.push_str(line);
                text.push('\n');
            }
        }
    }
    text.push_str(append);
    text
}

/// Server namespace + client namespace + the server process.
pub struct LabServer {
    pub server_ns: Namespace,
    pub client_ns: Namespace,
    pub link: VethPair,
    pub state_dir: PathBuf,
    pub config_path: PathBuf,
    pub server: Option<Child>,
    /// Run with the XDP fast path (pinned under `pin_root`); off, the controller answers all.
    pub fast_path: bool,
    /// Pinned under the default pin root of the state directory (no `--pin-root`), on the host's
    /// /sys/fs/bpf; otherwise under the lab's bpffs.
    pub default_pins: bool,
    /// Environment variables the server is started with (besides `RUST_LOG`).
    pub env: Vec<(String, String)>,
    /// More links from the server, each to a client namespace of its own, served too (no
    /// address on the server's end: no subnet of its own).
    pub extra_links: Vec<(Namespace, VethPair)>,
    /// More `serve` arguments.
    pub extra_args: Vec<String>,
    _lab: Lab,
}

impl LabServer {
    /// Starts the lab and the server with `config` (TOML text), fast path off: these tests are
    /// about what the controller answers.
    pub fn start(name: &str, config: &str) -> LabServer {
        LabServer::start_with(name, config, false)
    }

    /// As `start`; with `fast_path` the server attaches the XDP program to its interface.
    pub fn start_with(name: &str, config: &str, fast_path: bool) -> LabServer {
        let state_dir =
            std::env::temp_dir().join(format!("dhcp-user-test-{name}-{}", std::process::id()));
        LabServer::start_in(state_dir, config, fast_path, false)
    }

    /// As `start_with`, with the state directory `state_dir` (made afresh, removed at the end);
    /// with `default_pins` the server is given no `--pin-root`.
    pub fn start_in(
        state_dir: PathBuf,
        config: &str,
        fast_path: bool,
        default_pins: bool,
    ) -> LabServer {
        LabServer::start_full(
            state_dir,
            config,
            fast_path,
            default_pins,
            Vec::new(),
            &[],
            &[],
        )
    }

    /// As `start_in`, the server started with the environment variables `env`.
    pub fn start_in_with_env(
        state_dir: PathBuf,
        config: &str,
        fast_path: bool,
        default_pins: bool,
        env: Vec<(String, String)>,
    ) -> LabServer {
        LabServer::start_full(state_dir, config, fast_path, default_pins, env, &[], &[])
    }

    /// As `start_in`, with a link to a client namespace of its own for each of `extra_roles`
    /// (served, see `extra_links`) and `extra_args` for `serve`.
    pub fn start_with_links(
        state_dir: PathBuf,
        config: &str,
        fast_path: bool,
        default_pins: bool,
        extra_roles: &[&str],
        extra_args: &[&str],
    ) -> LabServer {
        LabServer::start_full(
            state_dir,
            config,
            fast_path,
            default_pins,
            Vec::new(),
            extra_roles,
            extra_args,
        )
    }

    /// The one constructor the others call: `env` for the server's process, `extra_roles` and
    /// `extra_args` as in `start_with_links`.
    fn start_full(
        state_dir: PathBuf,
        config: &str,
        fast_path: bool,
        default_pins: bool,
        env: Vec<(String, String)>,
        extra_roles: &[&str],
        extra_args: &[&str],
    ) -> LabServer {
        let lab = Lab::new();
        let server_ns = lab.namespace("srv").expect("server namespace");
        let client_ns = lab.namespace("cli").expect("client namespace");
        let link = lab
            .link(
                &server_ns,
                Some(&format!("{SERVER_ADDRESS}/64")),
                &client_ns,
                Some(&format!("{CLIENT_ADDRESS}/64")),
            )
            .expect("veth pair");
        let extra_links = extra_roles
            .iter()
            .map(|role| {
                let ns = lab.namespace(role).expect("client namespace");
                let link = lab.link(&server_ns, None, &ns, None).expect("veth pair");
                (ns, link)
            })
            .collect();
        let _ = std::fs::remove_dir_all(&state_dir);
        std::fs::create_dir_all(&state_dir).unwrap();
        let config_path = state_dir.join("server.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut lab_server = LabServer {
            server_ns,
            client_ns,
            link,
            state_dir,
            config_path,
            server: None,
            fast_path,
            default_pins,
            env,
            extra_links,
            extra_args: extra_args.iter().map(|a| a.to_string()).collect(),
            _lab: lab,
        };
        lab_server.start_server();
        lab_server
    }

    /// (Re)starts the server process and waits for its control socket.
    pub fn start_server(&mut self) {
        let pin_root = self.pin_root();
        let mut args: Vec<std::ffi::OsString> = vec![
            "--config".into(),
            self.config_path.clone().into(),
            "--iface".into(),
            self.link.a.ifname.clone().into(),
            "--state-dir".into(),
            self.state_dir.clone().into(),
            "--xdp".into(),
            (if self.fast_path { "auto" } else { "off" }).into(),
            "--max-bindings".into(),
            "65536".into(),
        ];
        if !self.default_pins {
            args.extend(["--pin-root".into(), pin_root.into()]);
        }
        for (_, link) in &self.extra_links {
            args.extend(["--iface".into(), link.a.ifname.clone().into()]);
        }
        args.extend(self.extra_args.iter().map(Into::into));
        self.server = Some(spawn_server_with_env(
            &self.server_ns,
            &args,
            &self.state_dir,
            &self.env,
        ));
    }

    /// Where the server pins its fast path (removed when the test ends): on the lab's bpffs, which
    /// a server inside `ip netns exec` shares with the host.
    pub fn pin_root(&self) -> PathBuf {
        if self.default_pins {
            return dhcp_user::fastpath::default_pin_root(&self.state_dir);
        }
        let name = self
            .state_dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        dhcp_lab::lab_bpffs().expect("the lab's bpffs").join(name)
    }

    /// SIGKILL the server (`ip netns exec` execs, so the child is the server itself).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = Command::new("kill")
                .args(["-9", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    /// The last 60 lines of the server's log.
    pub fn log(&self) -> String {
        log_tail(&self.state_dir, 60)
    }

    pub fn bindings(&self) -> Vec<Binding> {
        bindings_in(&self.state_dir)
    }

    pub fn stats(&self) -> StatsReply {
        match request(&self.state_dir, &ControlRequest::Stats).expect("stats") {
            ControlResponse::Stats(stats) => stats,
            other => panic!("unexpected answer {other:?}"),
        }
    }

    /// Runs the CLI (`dhcp-user <args> --state-dir <ours>`) and returns its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(dhcp_user_binary())
            .args(args)
            .arg("--state-dir")
            .arg(&self.state_dir)
            .output()
            .expect("running dhcp-user");
        assert!(
            out.status.success(),
            "dhcp-user {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls `check` every 200 ms until it holds or `timeout` passes.
    pub fn wait_until(&self, timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !check() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; server log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A UDP socket in the client namespace bound to `port` on the client's global address.
    pub fn client_socket(&self, port: u16) -> UdpSocket {
        let addr = SocketAddrV6::new(CLIENT_ADDRESS.parse().unwrap(), port, 0, 0);
        let socket = self
            .client_ns
            .run_in(move || UdpSocket::bind(addr))
            .expect("entering the client namespace")
            .expect("binding a client socket");
        socket
            .set_read_timeout(Some(Duration::from_secs(3)))
            .unwrap();
        socket
    }

    /// ff02::1:2 on the client's interface, port 547.
    pub fn all_servers(&self) -> SocketAddrV6 {
        SocketAddrV6::new(
            Ipv6Addr::from(dhcp_common::dhcpv6::ALL_RELAYS_AND_SERVERS),
            547,
            0,
            self.link.b.ifindex,
        )
    }

    /// The server's global address, port 547.
    pub fn server_unicast(&self) -> SocketAddrV6 {
        SocketAddrV6::new(SERVER_ADDRESS.parse().unwrap(), 547, 0, 0)
    }

    /// The server's run time so far, in nanoseconds: the sum over its threads of
    /// `/proc/PID/task/*/schedstat` (finer than `/proc/PID/stat`'s ticks; a thread that ended is
    /// not counted, and the controller's threads live as long as it does).
    pub fn server_run_ns(&self) -> u64 {
        let pid = self.server.as_ref().expect("the server runs").id();
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the server's tasks");
        tasks
            .filter_map(|task| {
                let text = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
                text.split_whitespace().next()?.parse::<u64>().ok()
            })
            .sum()
    }

    /// Packets counted under `index` by the fast path, read from its pinned counters.
    pub fn xdp_counter(&self, index: u32) -> u64 {
        dhcp_user::fastpath::pinned_stats(&self.pin_root())
            .expect("pinned counters")
            .expect("the fast path is pinned")[index as usize]
            .1
            .packets
    }

    /// The fast path's non-zero counters as `name=packets`, for failure messages.
    pub fn xdp_counters(&self) -> String {
        dhcp_user::fastpath::pinned_stats(&self.pin_root())
            .ok()
            .flatten()
            .unwrap_or_default()
            .iter()
            .filter(|(_, c)| c.packets > 0)
            .map(|(name, c)| format!("{name}={}", c.packets))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The lease database file.
    pub fn lease_db(&self) -> PathBuf {
        self.state_dir.join("leases.db")
    }
}

impl Drop for LabServer {
    fn drop(&mut self) {
        self.kill9();
        // A killed server leaves its pinned program and maps behind, as it should in production.
        let _ = dhcp_user::fastpath::FastPath::unpin_all(&self.pin_root());
        if self.default_pins {
            // Other servers' pins may be there: then it stays.
            let _ = std::fs::remove_dir(dhcp_user::fastpath::DEFAULT_PIN_ROOT);
        }
        if std::thread::panicking() {
            eprintln!("server log ({}):\n{}", self.state_dir.display(), self.log());
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

impl LabServer {
    /// Runs `dhclient -6 <extra> -1 -v` in the client namespace with its lease and pid files
    /// (tagged `tag`) in the state directory and the lab's script (which never touches /etc),
    /// waiting for it to finish (after binding, dhclient leaves a daemon behind that renews).
    pub fn dhclient(&self, tag: &str, extra: &[&str]) -> std::process::Output {
        self.dhclient_on(&self.link.b.ifname, tag, extra)
    }

    /// As `dhclient`, on the client namespace's interface `ifname` (a VLAN interface, say).
    pub fn dhclient_on(&self, ifname: &str, tag: &str, extra: &[&str]) -> std::process::Output {
        let dir = &self.state_dir;
        let script = dhcp_lab::dhclient::write_dhclient_script(dir).unwrap();
        let (leases, pid) = dhclient_files(dir, tag);
        self.client_ns
            .command("timeout")
            .args(["30", "dhclient", "-6"])
            .args(extra)
            .arg("-v")
            .arg("-sf")
            .arg(&script)
            .arg("-lf")
            .arg(&leases)
            .arg("-pf")
            .arg(&pid)
            .arg(ifname)
            .stdin(Stdio::null())
            .output()
            .expect("running dhclient")
    }
}

/// A running dhcpcd, in the foreground: killed (by its pid, which `exec` keeps) when dropped.
pub struct Dhcpcd(pub Child);

impl Drop for Dhcpcd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl LabServer {
    /// Starts dhcpcd on the client's end of the link ([`dhcpcd_on`], its files in the state
    /// directory; [`LabServer::dhcpcd_log`]).
    pub fn dhcpcd(&self, conf: &str, hook: &Path) -> Dhcpcd {
        dhcpcd_on(
            &self.client_ns,
            &self.link.b.ifname,
            &self.state_dir,
            conf,
            hook,
        )
    }

    /// What dhcpcd wrote so far.
    pub fn dhcpcd_log(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("dhcpcd.log")).unwrap_or_default()
    }
}

/// Starts `dhcpcd -6 -B -d` on `ifname` in `ns`, `conf` written to `dir/dhcpcd.conf`, its
/// output to `dir/dhcpcd.log`, and `hook` as its script. Each dhcpcd gets empty directories of
/// its own (a mount namespace, tmpfs on /var/lib/dhcpcd and /run/dhcpcd): it keeps its DUID,
/// its last lease and its pid file there by interface name, which labs reuse and other tests'
/// dhcpcd share; with an earlier lease it would Confirm one this server never gave.
pub fn dhcpcd_on(ns: &Namespace, ifname: &str, dir: &Path, conf: &str, hook: &Path) -> Dhcpcd {
    let path = dir.join("dhcpcd.conf");
    std::fs::write(&path, conf).unwrap();
    let log = std::fs::File::create(dir.join("dhcpcd.log")).unwrap();
    let fresh = "mount -t tmpfs tmpfs /var/lib/dhcpcd && mount -t tmpfs tmpfs /run/dhcpcd \
                 && exec dhcpcd \"$@\"";
    Dhcpcd(
        ns.command("unshare")
            .args(["--mount", "--propagation", "private", "--"])
            .args(["sh", "-c", fresh, "dhcpcd", "-6", "-B", "-d", "-f"])
            .arg(&path)
            .arg("-c")
            .arg(hook)
            .arg(ifname)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting dhcpcd"),
    )
}

/// Starts `dhcp-user serve <args>` in `ns` (RUST_LOG=info, or `$DHCP_TEST_LOG` when set to
/// chase a failure with debug logs; output appended to
/// `<state_dir>/server.log`) and waits up to 20 s for its control socket in `state_dir`; panics
/// with the end of the log if it exits or does not come up.
pub fn spawn_server(ns: &Namespace, args: &[std::ffi::OsString], state_dir: &Path) -> Child {
    spawn_server_with_env(ns, args, state_dir, &[])
}

/// As `spawn_server`, with the environment variables `env` too.
pub fn spawn_server_with_env(
    ns: &Namespace,
    args: &[std::ffi::OsString],
    state_dir: &Path,
    env: &[(String, String)],
) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(state_dir.join("server.log"))
        .unwrap();
    let mut child = ns
        .command(dhcp_user_binary())
        .arg("serve")
        .args(args)
        .env(
            "RUST_LOG",
            std::env::var("DHCP_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("starting dhcp-user serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    while request(state_dir, &ControlRequest::Stats).is_err() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "the server in {} exited ({status}):\n{}",
                state_dir.display(),
                log_tail(state_dir, 60)
            );
        }
        assert!(
            Instant::now() < deadline,
            "the server in {} did not come up:\n{}",
            state_dir.display(),
            log_tail(state_dir, 60)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// The bindings of the server whose state directory is `state_dir`, from its control socket.
pub fn bindings_in(state_dir: &Path) -> Vec<Binding> {
    match request(state_dir, &ControlRequest::Bindings).expect("bindings") {
        ControlResponse::Bindings(rows) => rows,
        other => panic!("unexpected answer {other:?}"),
    }
}

/// The last `lines` lines of `<state_dir>/server.log`.
pub fn log_tail(state_dir: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(state_dir.join("server.log")).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Paths of a dhclient instance's lease and pid files in `dir`.
pub fn dhclient_files(dir: &Path, tag: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("dhclient-{tag}.leases")),
        dir.join(format!("dhclient-{tag}.pid")),
    )
}

/// (sent, received) packets of perfdhcp's "Renew-Reply" exchange statistics.
pub fn renew_exchanges(text: &str) -> Option<(u64, u64)> {
    let section = &text[text.find("RENEW-REPLY")?..];
    let number = |label: &str| -> Option<u64> {
        let at = section.find(label)? + label.len();
        section[at..]
            .trim_start_matches([':', ' '])
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    Some((number("sent packets")?, number("received packets")?))
}

/// Python helpers the scapy relays of the lab tests share (prepended to their scripts): a relay
/// message's options as (code, body) pairs, and the client message inside every relay layer.
pub const SCAPY_RELAY_HELPERS: &str = r#"
import struct

def options(data):
    out, i = [], 0
    while i + 4 <= len(data):
        code, length = struct.unpack("!HH", data[i:i + 4])
        out.append((code, data[i + 4:i + 4 + length]))
        i += 4 + length
    return out

def innermost(data):
    while data[0] == 13:
        data = dict(options(data[34:]))[9]
    return data
"#;

impl LabServer {
    /// One HTTP/1.1 request (`Connection: close`) to `port` on the server namespace's loopback
    /// (the `[api]` listener), with `token` as the bearer token when given: (status, body).
    pub fn http(
        &self,
        port: u16,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, String) {
        use std::io::{Read, Write};
        let mut stream = self
            .server_ns
            .run_in(move || std::net::TcpStream::connect(("127.0.0.1", port)))
            .expect("entering the server namespace")
            .expect("connecting to the HTTP API");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: lab\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        if let Some(token) = token {
            head.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body.as_bytes()).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status in {answer:?}"));
        let body = answer
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned();
        (status, body)
    }
}
