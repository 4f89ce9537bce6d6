//! Chaos with an invariant checker (issue 18, part 3).
//!
//! A redundant pair (A allocates from the lower half of each pool, B from the upper half) serves
//! one bridged client link; the pair follows each other by active leasequery over a link of its
//! own. The churn driver (`dhcp_bench::churn`) runs many clients doing Solicit, Request, Renew,
//! Release and Decline in a seeded random order, recording every lease a server told them of.
//! Meanwhile, again and again: A's controller is killed with SIGKILL and restarted (its pinned
//! fast path keeps answering renewals meanwhile), the pair's link is cut and restored, and A's
//! state directory (a small tmpfs) is filled with a junk file until writes fail, then freed.
//!
//! Afterwards the checker holds the stores against what the clients were told:
//! (a) no address or prefix told to two clients for overlapping times, and none assigned to two
//!     clients across the two stores;
//! (b) every lease a client still holds (told, not released or declined, not expired) is in the
//!     store of the server that granted it, for that client, for as long as it was told (the
//!     store's expiry plus `grace-period` covers it), and once synced in the peer's store too;
//! (c) once the pair's link is back and the churn quiet, both peers' tables are equal.
//!
//! Bounded: `DHCP_CHAOS_SECONDS` of chaos (default 100; longer runs: set it), the seed printed
//! and taken from `DHCP_CHAOS_SEED` when set.

mod server_common;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dhcp_bench::churn::{self, Churn, ChurnPlan, ChurnReport, SeededRng};
use dhcp_bench::loadgen::ClientSocket;
use dhcp_lab::{Lab, Namespace, VethPair};
use dhcp_user::control::{request, ControlRequest, ControlResponse, StatsReply};
use dhcp_user::store::{Lease, LeaseFilter, LeasePages, LeaseState, SqliteStore};
use server_common::dhcp_user_binary;

const A_ADDRESS: &str = "2001:db8:1::1";
const B_ADDRESS: &str = "2001:db8:1::3";
/// The pair's own link: leasequery runs over it, so cutting it leaves the clients served.
const A_PAIR_ADDRESS: &str = "2001:db8:2::1";
const B_PAIR_ADDRESS: &str = "2001:db8:2::2";
/// Short lifetimes and a short grace period: addresses come back to the pools within the run.
const VALID: u32 = 20;
const GRACE: u32 = 10;
/// Size of A's state directory (a tmpfs): room for the store and its write-ahead log (which
/// SQLite lets grow to about 4 MiB before it starts over), filled on purpose now and then.
const TMPFS_SIZE: &str = "16m";

/// One server of the pair.
struct Member {
    name: &'static str,
    ns: Namespace,
    /// Its end of the client link (bridged in the client namespace).
    client_link: VethPair,
    state_dir: PathBuf,
    /// The log, outside the state directory (which may be full).
    log: PathBuf,
    /// Whether `state_dir` is a tmpfs this test mounted.
    tmpfs: bool,
    process: Option<Child>,
}

impl Member {
    fn new(name: &'static str, ns: Namespace, client_link: VethPair, tmpfs: bool) -> Member {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let base =
            std::env::temp_dir().join(format!("dhcp-user-chaos-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let state_dir = base.join("state");
        std::fs::create_dir_all(&state_dir).unwrap();
        if tmpfs {
            let status = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={TMPFS_SIZE},mode=0755")])
                .arg(format!("chaos-{name}"))
                .arg(&state_dir)
                .status()
                .expect("running mount");
            assert!(
                status.success(),
                "mounting a tmpfs on {}",
                state_dir.display()
            );
        }
        let ifname = client_link.a.ifname.clone();
        ns.run_in(move || {
            std::fs::write(
                format!("/proc/sys/net/ipv6/conf/{ifname}/keep_addr_on_down"),
                "1",
            )
        })
        .unwrap()
        .unwrap();
        Member {
            name,
            ns,
            client_link,
            log: base.join("server.log"),
            state_dir,
            tmpfs,
            process: None,
        }
    }

    fn configure(&self, peer: &str, half: &str) {
        let config = format!(
            "state-dir = \"{dir}\"\ninterfaces = [\"{iface}\"]\ngrace-period = {GRACE}\n\
             [leasequery]\nallow = [\"2001:db8:1::/64\", \"2001:db8:2::/64\"]\n\
             active = true\nactive-insecure = true\npeers = [\"[{peer}]:547\"]\n\
             pool-half = \"{half}\"\nidle-timeout = 10\nio-timeout = 3\nkeepalive-interval = 2\n\
             [[subnet]]\nid = 1\nprefix = \"2001:db8:1::/64\"\n\
             pools = [{{ low = \"2001:db8:1::1000\", high = \"2001:db8:1::107f\" }}]\n\
             pd-pools = [{{ prefix = \"2001:db8:8000::/49\", delegated-length = 56 }}]\n\
             preferred-lifetime = 15\nvalid-lifetime = {VALID}\nrenew-timer = 5\n\
             rebind-timer = 10\n",
            dir = self.state_dir.display(),
            iface = self.client_link.a.ifname,
        );
        std::fs::write(self.config_path(), config).unwrap();
    }

    fn config_path(&self) -> PathBuf {
        self.log.with_file_name("server.toml")
    }

    fn pin_root(&self) -> PathBuf {
        let tag = self.log.parent().unwrap().file_name().unwrap();
        dhcp_lab::lab_bpffs().expect("the lab's bpffs").join(tag)
    }

    /// Starts the server (fast path on) and waits for its control socket.
    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut child = self
            .ns
            .command(dhcp_user_binary())
            .arg("serve")
            .arg("--config")
            .arg(self.config_path())
            .arg("--pin-root")
            .arg(self.pin_root())
            .args(["--max-bindings", "4096"])
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting dhcp-user serve");
        let deadline = Instant::now() + Duration::from_secs(20);
        while request(&self.state_dir, &ControlRequest::Stats).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "server {} exited ({status}):\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            assert!(
                Instant::now() < deadline,
                "server {} did not come up:\n{}",
                self.name,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.process = Some(child);
    }

    /// SIGKILL: only the controller dies, its link stays up and its pinned fast path answers.
    fn kill9(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = Command::new("kill")
                .args(["-9", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }

    fn junk(&self) -> PathBuf {
        self.state_dir.join("junk")
    }

    /// Writes a junk file into the state directory until the file system is full.
    fn fill_disk(&self) -> u64 {
        let mut file = std::fs::File::create(self.junk()).expect("creating the junk file");
        let chunk = vec![0xa5u8; 64 * 1024];
        let mut written = 0u64;
        // Bounded: a tmpfs of TMPFS_SIZE fills long before this.
        for _ in 0..4096 {
            match file.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        // What is left below a chunk goes too.
        while let Ok(n) = file.write(&chunk[..512]) {
            if n == 0 {
                break;
            }
            written += n as u64;
        }
        written
    }

    fn free_disk(&self) {
        let _ = std::fs::remove_file(self.junk());
    }

    fn stats(&self) -> Option<StatsReply> {
        match request(&self.state_dir, &ControlRequest::Stats).ok()? {
            ControlResponse::Stats(stats) => Some(stats),
            _ => None,
        }
    }

    /// Every row of the store file, read through the store API.
    fn leases(&self) -> Vec<Lease> {
        let store = SqliteStore::open(self.state_dir.join("leases.db")).expect("opening the store");
        LeasePages::new(&store, LeaseFilter::All, 1000)
            .collect::<Result<Vec<_>, _>>()
            .expect("reading the store")
    }

    fn server_duid(&self) -> Vec<u8> {
        let store = SqliteStore::open(self.state_dir.join("leases.db")).expect("opening the store");
        use dhcp_user::store::LeaseStore;
        store
            .get_meta(dhcp_user::store::META_SERVER_DUID)
            .expect("reading the server DUID")
            .expect("a server DUID")
    }

    /// The state directory's files and sizes, for failure messages.
    fn listing(&self) -> String {
        let mut files: Vec<String> = std::fs::read_dir(&self.state_dir)
            .map(|dir| {
                dir.flatten()
                    .map(|e| {
                        let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                        format!("{} {len}", e.file_name().to_string_lossy())
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.sort();
        files.join(", ")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill9();
        let _ = dhcp_user::fastpath::FastPath::unpin_all(&self.pin_root());
        if std::thread::panicking() {
            // The whole log outlives the test, for what the tail does not show.
            let kept = std::env::temp_dir().join(format!(
                "dhcp-user-chaos-{}-{}.log",
                self.name,
                std::process::id()
            ));
            let _ = std::fs::copy(&self.log, &kept);
            eprintln!(
                "--- server {} log (all of it in {}) ---\n{}",
                self.name,
                kept.display(),
                self.log_tail()
            );
        }
        if self.tmpfs {
            let _ = Command::new("umount").arg(&self.state_dir).status();
        }
        let _ = std::fs::remove_dir_all(self.log.parent().unwrap());
    }
}

/// The lab: A and B on one bridged client link, and a link of their own for the pair.
struct PairLab {
    a: Member,
    b: Member,
    client: Namespace,
    pair_link: VethPair,
    _lab: Lab,
}

impl PairLab {
    fn new(with_b: bool) -> PairLab {
        let lab = Lab::new();
        let a_ns = lab.namespace("chaosa").unwrap();
        let b_ns = lab.namespace("chaosb").unwrap();
        let client = lab.namespace("chaoscli").unwrap();
        let (a_link, b_link) = lab
            .shared_link(
                (&a_ns, &format!("{A_ADDRESS}/64")),
                (&b_ns, &format!("{B_ADDRESS}/64")),
                &client,
                None,
            )
            .unwrap();
        let pair_link = lab
            .link(
                &a_ns,
                Some(&format!("{A_PAIR_ADDRESS}/64")),
                &b_ns,
                Some(&format!("{B_PAIR_ADDRESS}/64")),
            )
            .unwrap();
        // Complete checksums from the clients, so the fast path answers their renewals.
        client
            .run_in(|| dhcp_lab::tx_checksum_offload_off("br0"))
            .unwrap()
            .unwrap();
        let pair_a = pair_link.a.ifname.clone();
        a_ns.run_in(move || {
            std::fs::write(
                format!("/proc/sys/net/ipv6/conf/{pair_a}/keep_addr_on_down"),
                "1",
            )
        })
        .unwrap()
        .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let a = Member::new("a", a_ns, a_link, true);
        let b = Member::new("b", b_ns, b_link, false);
        a.configure(B_PAIR_ADDRESS, "lower");
        b.configure(A_PAIR_ADDRESS, "upper");
        let mut pair = PairLab {
            a,
            b,
            client,
            pair_link,
            _lab: lab,
        };
        pair.a.start();
        if with_b {
            pair.b.start();
        }
        pair
    }

    /// The churn's socket, in the client namespace on the bridge.
    fn client_socket(&self) -> ClientSocket {
        self.client
            .run_in(|| ClientSocket::open("br0"))
            .unwrap()
            .expect("the churn's socket")
    }

    fn set_pair_link(&self, up: bool) {
        self.a
            .ns
            .exec(
                "ip",
                [
                    "link",
                    "set",
                    &self.pair_link.a.ifname,
                    if up { "up" } else { "down" },
                ],
            )
            .expect("ip link set");
    }

    fn logs(&self) -> String {
        format!(
            "--- server a ({}) ---\n{}\n--- server b ({}) ---\n{}",
            self.a.listing(),
            self.a.log_tail(),
            self.b.listing(),
            self.b.log_tail()
        )
    }
}

/// The churn running on its own thread until `stop`.
fn start_churn(
    socket: ClientSocket,
    plan: ChurnPlan,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<ChurnReport> {
    std::thread::spawn(move || Churn::new(&socket, plan).run(&stop))
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// The assigned, unexpired rows of a store by lease, for comparing the two.
fn assigned(leases: &[Lease], now: i64) -> BTreeMap<(u8, Ipv6Addr), &Lease> {
    leases
        .iter()
        .filter(|l| l.state == LeaseState::Assigned && l.expire > now)
        .map(|l| ((l.prefix_len, l.address), l))
        .collect()
}

/// (c): every lease assigned in one store with some life left is assigned in the other to the
/// same client, expiries within a second (leasequery carries whole seconds). Leases within a
/// few seconds of expiring are left out, since one side may have reclaimed them already.
fn table_differences(a: &[Lease], b: &[Lease], now: i64) -> Vec<String> {
    let (ta, tb) = (assigned(a, now), assigned(b, now));
    let mut out = Vec::new();
    for (name, mine, theirs) in [("A", &ta, &tb), ("B", &tb, &ta)] {
        for (key, lease) in mine.iter() {
            if lease.expire <= now + 3 {
                continue;
            }
            match theirs.get(key) {
                Some(other)
                    if other.duid == lease.duid && (other.expire - lease.expire).abs() <= 1 => {}
                Some(other) => out.push(format!(
                    "{}/{}: {name} has {} until {}, the other {} until {}",
                    key.1,
                    key.0,
                    hex::encode(&lease.duid),
                    lease.expire,
                    hex::encode(&other.duid),
                    other.expire
                )),
                None => out.push(format!(
                    "{}/{}: only {name} has it ({} until {})",
                    key.1,
                    key.0,
                    hex::encode(&lease.duid),
                    lease.expire
                )),
            }
        }
    }
    out
}

/// (a) across the stores: no lease assigned to two clients, in either store or across both.
fn assigned_to_two_clients(a: &[Lease], b: &[Lease], now: i64) -> Vec<String> {
    let (ta, tb) = (assigned(a, now), assigned(b, now));
    ta.iter()
        .filter_map(|(key, lease)| {
            let other = tb.get(key)?;
            (other.duid != lease.duid).then(|| {
                format!(
                    "{}/{}: A says {}, B says {}",
                    key.1,
                    key.0,
                    hex::encode(&lease.duid),
                    hex::encode(&other.duid)
                )
            })
        })
        .collect()
}

/// (b): the leases clients hold that `store` does not vouch for: no row, another client's row,
/// or a row whose expiry plus the grace period ends before what the client was told.
fn missing_leases(holding: &[churn::Told], store: &[Lease]) -> Vec<String> {
    let rows: BTreeMap<(u8, Ipv6Addr), &Lease> = store
        .iter()
        .map(|l| ((l.prefix_len, l.address), l))
        .collect();
    holding
        .iter()
        .filter_map(|held| {
            let key = (held.lease.prefix_len, held.lease.address);
            let why = match rows.get(&key) {
                None => "no row".to_string(),
                Some(row) if row.duid != held.duid => {
                    format!("the row is {}'s", hex::encode(&row.duid))
                }
                Some(row) if row.state != LeaseState::Assigned && row.expire as f64 > held.at => {
                    format!("the row is {:?} before its expiry", row.state)
                }
                // Client times are taken on receipt; the server's are whole seconds.
                Some(row) if ((row.expire + i64::from(GRACE)) as f64) < held.until - 2.0 => {
                    format!(
                        "the row ends at {} (+{GRACE} s grace), the client was told {:.0}",
                        row.expire, held.until
                    )
                }
                Some(_) => return None,
            };
            Some(format!(
                "client {} {} from {}: {why}",
                held.client,
                held.lease,
                hex::encode(&held.server)
            ))
        })
        .collect()
}

/// One told lease on one line: who, by whom, from when to when.
fn told_line(t: &churn::Told) -> String {
    format!(
        "client {} by server ..{} ({}) from {:.1} until {:.1}",
        t.client,
        hex::encode(&t.server[t.server.len().saturating_sub(4)..]),
        t.by,
        t.at,
        t.until
    )
}

/// What went on, printed at the end.
#[derive(Default, Debug)]
struct Chaos {
    kills: u32,
    cuts: u32,
    fills: u32,
    filled_bytes: u64,
}

#[test]
fn a_pair_under_churn_kills_cuts_and_a_full_disk_keeps_every_lease_true() {
    let seed = env_u64("DHCP_CHAOS_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let seconds = env_u64("DHCP_CHAOS_SECONDS").unwrap_or(100);
    eprintln!("chaos: seed {seed} (DHCP_CHAOS_SEED replays the choices), {seconds} s of chaos");
    let mut lab = PairLab::new(true);
    // Both following each other before the churn starts.
    let deadline = Instant::now() + Duration::from_secs(20);
    while [&lab.a, &lab.b].iter().any(|m| {
        m.stats()
            .and_then(|s| s.leasequery.get("active_queries").copied())
            .unwrap_or(0)
            == 0
    }) {
        assert!(
            Instant::now() < deadline,
            "peers not following:\n{}",
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    eprintln!(
        "chaos: server A is ..{}, B is ..{}",
        hex::encode(&lab.a.server_duid()[lab.a.server_duid().len() - 4..]),
        hex::encode(&lab.b.server_duid()[lab.b.server_duid().len() - 4..])
    );
    let stop = Arc::new(AtomicBool::new(false));
    let plan = ChurnPlan {
        clients: 80,
        seed,
        servers: 2,
        duration: Duration::from_secs(seconds + 60),
        pace: Duration::from_millis(20),
        ..ChurnPlan::default()
    };
    let churn = start_churn(lab.client_socket(), plan, stop.clone());

    let mut rng = SeededRng::new(seed ^ 0x00c4_a05c);
    let mut chaos = Chaos::default();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(5));
    // Rounds of the three faults, each round in an order of its own, with calm in between.
    'chaos: while start.elapsed() < Duration::from_secs(seconds) {
        let mut faults = [0u64, 1, 2];
        for k in (1..faults.len()).rev() {
            faults.swap(k, rng.below(k as u64 + 1) as usize);
        }
        for fault in faults {
            if start.elapsed() >= Duration::from_secs(seconds) {
                break 'chaos;
            }
            match fault {
                0 => {
                    lab.a.kill9();
                    std::thread::sleep(Duration::from_millis(300 + rng.below(2500)));
                    lab.a.start();
                    chaos.kills += 1;
                }
                1 => {
                    lab.set_pair_link(false);
                    std::thread::sleep(Duration::from_millis(3000 + rng.below(6000)));
                    lab.set_pair_link(true);
                    chaos.cuts += 1;
                }
                _ => {
                    let filled = lab.a.fill_disk();
                    chaos.filled_bytes += filled;
                    std::thread::sleep(Duration::from_millis(2000 + rng.below(5000)));
                    // Every other time A is also killed while its disk is full, and starts on it.
                    if rng.below(2) == 0 {
                        lab.a.kill9();
                        std::thread::sleep(Duration::from_millis(300));
                        lab.a.start();
                        chaos.kills += 1;
                        std::thread::sleep(Duration::from_millis(1000));
                    }
                    lab.a.free_disk();
                    chaos.fills += 1;
                }
            }
            eprintln!(
                "chaos: {:>4.0} s {chaos:?}; A's state: {}",
                start.elapsed().as_secs_f64(),
                lab.a.listing()
            );
            std::thread::sleep(Duration::from_millis(500 + rng.below(2500)));
        }
    }
    // Everything back: A up, the link up, the disk free; the churn goes on a little, then stops.
    lab.set_pair_link(true);
    lab.a.free_disk();
    std::thread::sleep(Duration::from_secs(5));
    stop.store(true, Ordering::SeqCst);
    let report = churn.join().expect("the churn thread");
    let ended_at = churn::unix_now_f64();
    eprintln!(
        "chaos: {chaos:?}; churn {:.0} s: {:?}; {} leases told ({} grants), {} ended, {} held at the end",
        report.seconds,
        report.counts,
        report.told.len(),
        report.grants(),
        report.ended.len(),
        report.holding.len()
    );
    assert!(
        report.invalid.is_empty(),
        "wrong replies: {:?}\n{}",
        report.invalid,
        lab.logs()
    );
    assert!(report.grants() > 50, "too few grants to say anything");
    assert!(
        chaos.kills > 0 && chaos.cuts > 0 && chaos.fills > 0 && chaos.filled_bytes > 0
            || seconds < 30,
        "every fault at least once: {chaos:?}"
    );

    // (a) among the clients: no lease told to two at once.
    let doubles: Vec<String> = churn::double_grants(&report.told)
        .iter()
        .map(|(first, second)| {
            format!(
                "{}: {}; then {}",
                first.lease,
                told_line(first),
                told_line(second)
            )
        })
        .collect();
    assert!(
        doubles.is_empty(),
        "leases told to two clients at once:\n{}\n{}",
        doubles.join("\n"),
        lab.logs()
    );
    // No server took back a lease it had told a client of, before its end.
    let revoked: Vec<String> = report
        .ended
        .iter()
        .filter(|e| e.how == "revoked" && e.was_until > e.at + 1.0)
        .map(|e| {
            format!(
                "client {} {} by server ..{} at {:.1}, told until {:.1}",
                e.client,
                e.lease,
                hex::encode(&e.server[e.server.len().saturating_sub(4)..]),
                e.at,
                e.was_until
            )
        })
        .collect();
    assert!(
        revoked.is_empty(),
        "leases taken back before their end:\n{}\n{}",
        revoked.join("\n"),
        lab.logs()
    );

    // (b) the granting server's store vouches for every lease still held.
    let (a_duid, b_duid) = (lab.a.server_duid(), lab.b.server_duid());
    let (a_leases, b_leases) = (lab.a.leases(), lab.b.leases());
    for (name, duid, rows) in [("A", &a_duid, &a_leases), ("B", &b_duid, &b_leases)] {
        let held: Vec<churn::Told> = report
            .holding
            .iter()
            .filter(|h| &h.server == duid)
            .cloned()
            .collect();
        let missing = missing_leases(&held, rows);
        assert!(
            missing.is_empty(),
            "{name} does not hold what it told its clients:\n{}\n{}",
            missing.join("\n"),
            lab.logs()
        );
    }

    // (b), after sync, and (c): the peer holds them too, and the tables are equal.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (a_leases, b_leases) = (lab.a.leases(), lab.b.leases());
        let now = churn::unix_now_f64() as i64;
        let mut problems = table_differences(&a_leases, &b_leases, now);
        for (name, duid, peer_rows) in [("B", &a_duid, &b_leases), ("A", &b_duid, &a_leases)] {
            let held: Vec<churn::Told> = report
                .holding
                .iter()
                .filter(|h| &h.server == duid)
                .cloned()
                .collect();
            problems.extend(
                missing_leases(&held, peer_rows)
                    .into_iter()
                    .map(|m| format!("peer {name}: {m}")),
            );
        }
        let doubles = assigned_to_two_clients(&a_leases, &b_leases, now);
        assert!(
            doubles.is_empty(),
            "assigned to two clients across the stores: {doubles:#?}"
        );
        if problems.is_empty() {
            eprintln!(
                "chaos: tables equal {:.1} s after the churn stopped ({} rows on A, {} on B); \
                 A leasequery {:?}; B leasequery {:?}",
                churn::unix_now_f64() - ended_at,
                a_leases.len(),
                b_leases.len(),
                lab.a.stats().map(|s| s.leasequery),
                lab.b.stats().map(|s| s.leasequery),
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the peers' tables differ 30 s after the churn stopped:\n{}\n{}",
            problems.join("\n"),
            lab.logs()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// With its state directory full, a server grants nothing it cannot make durable: Requests get
/// no Reply (the client retries), and once the disk has room again it grants, durably.
#[test]
fn a_full_disk_gets_no_grant_acknowledged_and_grants_resume_once_freed() {
    let lab = PairLab::new(false);
    let filled = lab.a.fill_disk();
    assert!(filled > 0, "the junk file took no room");
    let plan = ChurnPlan {
        clients: 16,
        seed: 18,
        servers: 1,
        duration: Duration::from_secs(5),
        ..ChurnPlan::default()
    };
    let full = Churn::new(&lab.client_socket(), plan.clone()).run(&AtomicBool::new(false));
    assert!(full.invalid.is_empty(), "wrong replies: {:?}", full.invalid);
    assert!(
        full.counts.get("request").copied().unwrap_or(0) > 0,
        "the clients asked: {:?}",
        full.counts
    );
    assert_eq!(
        full.grants(),
        0,
        "a grant acknowledged on a full disk: {:?}\n{}",
        full.told,
        lab.a.log_tail()
    );
    let failures = lab
        .a
        .stats()
        .and_then(|s| s.counters.drops.get("store_error").copied())
        .unwrap_or(0);
    assert!(
        failures > 0,
        "the refusals are counted as store_error drops"
    );

    lab.a.free_disk();
    let freed = Churn::new(&lab.client_socket(), ChurnPlan { seed: 19, ..plan })
        .run(&AtomicBool::new(false));
    assert!(
        freed.invalid.is_empty(),
        "wrong replies: {:?}",
        freed.invalid
    );
    assert!(
        freed.grants() > 0,
        "no grant once freed: {:?}",
        freed.counts
    );
    let missing = missing_leases(&freed.holding, &lab.a.leases());
    assert!(missing.is_empty(), "not durable: {missing:?}");
}
