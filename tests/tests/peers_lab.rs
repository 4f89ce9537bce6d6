//! Peer redundancy in the lab: two servers on one link (a bridge in the client namespace), each
//! following the other by active leasequery, pools split by `pool-half`. A real dhclient gets
//! an address and a prefix from server A; B installs them. A dies (kill -9 and its link down,
//! as a whole box would: its pinned fast path must not keep answering); the client's Rebind is
//! answered by B; A comes back, catches up on what B renewed meanwhile, and both binding tables
//! are equal. The `dhcp-user leasequery` command queries both, as an operator would. A pair
//! over mutual TLS (RFC 7653 §5.2) syncs the same way, and `dhcp-user leasequery --tls`
//! queries it. With `[routes]` on, B routes A's client's prefix at once (its next hop travels
//! in the sync), keeps the route through A's death and the client's Rebind, and removes it on
//! the client's Release.

mod leasequery_common;
mod server_common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dhcp_lab::{Lab, Namespace, VethPair};
use dhcp_user::control::{request, Binding, ControlRequest, ControlResponse, StatsReply};
use leasequery_common::tls::TestPki;
use server_common::{dhclient_files, dhcp_user_binary, log_tail, spawn_server};

const A_ADDRESS: &str = "2001:db8:1::1";
const B_ADDRESS: &str = "2001:db8:1::3";
const CLIENT_ADDRESS: &str = "2001:db8:1::2";
/// The `[leasequery]` keys of a pair in the clear.
const IN_THE_CLEAR: &str = "active-insecure = true\n";

/// One server of the pair: its namespace, link, state directory and process.
struct PeerServer {
    name: &'static str,
    ns: Namespace,
    link: VethPair,
    state_dir: PathBuf,
    process: Option<Child>,
}

impl PeerServer {
    /// A server following `peer`, with `leasequery` (TLS or `active-insecure`) added to its
    /// `[leasequery]`.
    fn new(
        name: &'static str,
        ns: Namespace,
        link: VethPair,
        peer: &str,
        half: &str,
        leasequery: &str,
        tail: &str,
    ) -> Self {
        // Unique per server even with both tests of this file running at once.
        static SERVERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let state_dir =
            std::env::temp_dir().join(format!("dhcp-user-peer-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state_dir);
        std::fs::create_dir_all(&state_dir).unwrap();
        // Same subnet and pools on both; only the half each allocates from differs. Short
        // timers: T1 3 s, T2 6 s, so a client of a dead server rebinds within seconds.
        let config = format!(
            "state-dir = \"{dir}\"\ninterfaces = [\"{iface}\"]\ngrace-period = 60\n\
             [leasequery]\nallow = [\"2001:db8:1::/64\"]\nactive = true\n{leasequery}\
             peers = [\"[{peer}]:547\"]\n\
             pool-half = \"{half}\"\nidle-timeout = 10\nio-timeout = 3\n\
             [[subnet]]\nid = 1\nprefix = \"2001:db8:1::/64\"\n\
             pools = [{{ low = \"2001:db8:1::1000\", high = \"2001:db8:1::1fff\" }}]\n\
             pd-pools = [{{ prefix = \"2001:db8:8000::/40\", delegated-length = 56 }}]\n\
             preferred-lifetime = 40\nvalid-lifetime = 60\nrenew-timer = 3\nrebind-timer = 6\n\
             {tail}",
            dir = state_dir.display(),
            iface = link.a.ifname,
        );
        std::fs::write(state_dir.join("server.toml"), config).unwrap();
        // Its static addresses survive the link going down and up (crash and revival).
        let ifname = link.a.ifname.clone();
        ns.run_in(move || {
            std::fs::write(
                format!("/proc/sys/net/ipv6/conf/{ifname}/keep_addr_on_down"),
                "1",
            )
        })
        .unwrap()
        .unwrap();
        PeerServer {
            name,
            ns,
            link,
            state_dir,
            process: None,
        }
    }

    fn pin_root(&self) -> PathBuf {
        dhcp_lab::lab_bpffs()
            .expect("the lab's bpffs")
            .join(self.state_dir.file_name().unwrap())
    }

    fn start(&mut self) {
        let args: Vec<std::ffi::OsString> = vec![
            "--config".into(),
            self.state_dir.join("server.toml").into(),
            "--pin-root".into(),
            self.pin_root().into(),
            "--max-bindings".into(),
            "4096".into(),
        ];
        self.process = Some(spawn_server(&self.ns, &args, &self.state_dir));
    }

    /// The whole box dies: the process is killed and its link goes down (a pinned fast path
    /// left on a live link would go on answering, which is the upgrade story, not this one).
    fn crash(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = Command::new("kill")
                .args(["-9", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
        self.ns
            .exec("ip", ["link", "set", &self.link.a.ifname, "down"])
            .expect("link down");
    }

    fn revive(&mut self) {
        self.ns
            .exec("ip", ["link", "set", &self.link.a.ifname, "up"])
            .expect("link up");
        // Addresses come back with the link (DAD is off in lab namespaces).
        std::thread::sleep(Duration::from_millis(300));
        self.start();
    }

    fn log(&self) -> String {
        log_tail(&self.state_dir, 80)
    }

    fn bindings(&self) -> Vec<Binding> {
        match request(&self.state_dir, &ControlRequest::Bindings).expect("bindings") {
            ControlResponse::Bindings(rows) => rows,
            other => panic!("unexpected answer {other:?}"),
        }
    }

    fn stats(&self) -> StatsReply {
        match request(&self.state_dir, &ControlRequest::Stats).expect("stats") {
            ControlResponse::Stats(stats) => stats,
            other => panic!("unexpected answer {other:?}"),
        }
    }

    /// The assigned bindings as (DUID, IA type, lease, expires).
    fn assigned(&self) -> Vec<(String, String, String, i64)> {
        let mut rows: Vec<_> = self
            .bindings()
            .into_iter()
            .filter(|b| b.state == "assigned")
            .map(|b| (b.duid, b.ia, b.lease, b.expires))
            .collect();
        rows.sort();
        rows
    }

    /// One XDP counter (`tx_rebind`, `pass_ia_mismatch`, ...) from the pinned stats map.
    fn fast_path_counter(&self, counter: &str) -> u64 {
        dhcp_user::fastpath::pinned_stats(&self.pin_root())
            .ok()
            .flatten()
            .and_then(|counters| {
                counters
                    .into_iter()
                    .find(|(name, _)| *name == counter)
                    .map(|(_, c)| c.packets)
            })
            .unwrap_or(0)
    }

    /// XDP verdict counters read from the pinned stats map.
    fn fast_path_answers(&self) -> u64 {
        dhcp_user::fastpath::pinned_stats(&self.pin_root())
            .ok()
            .flatten()
            .map(|counters| {
                counters
                    .into_iter()
                    .filter(|(name, _)| name.starts_with("tx_"))
                    .map(|(_, c)| c.packets)
                    .sum()
            })
            .unwrap_or(0)
    }
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = dhcp_user::fastpath::FastPath::unpin_all(&self.pin_root());
        if std::thread::panicking() {
            eprintln!("server {} log:\n{}", self.name, self.log());
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

fn wait_until(
    what: &str,
    timeout: Duration,
    servers: &[&PeerServer],
    mut check: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + timeout;
    while !check() {
        if Instant::now() >= deadline {
            let logs: Vec<String> = servers
                .iter()
                .map(|s| format!("--- server {} ---\n{}", s.name, s.log()))
                .collect();
            panic!("timed out waiting for {what}\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Tables equal: the same assigned bindings, expiries within a second (times travel in whole
/// seconds relative to LQ_BASE_TIME).
fn same_tables(a: &[(String, String, String, i64)], b: &[(String, String, String, i64)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (&x.0, &x.1, &x.2) == (&y.0, &y.1, &y.2) && (x.3 - y.3).abs() <= 1)
}

/// The lab of both tests: A and B on one bridged link with a client; the client binds from A
/// (dhclient, an address and a prefix) while only A runs, then B starts and both follow each
/// other, each with `leasequery` (A's, B's) in its `[leasequery]` and `tail` at the end of its
/// configuration. Returns A, B, the client namespace and dhclient's pid file.
fn pair_with_a_bound_client(
    lab: &Lab,
    leasequery: [&str; 2],
    tail: &str,
) -> (PeerServer, PeerServer, Namespace, PathBuf) {
    let a_ns = lab.namespace("srva").unwrap();
    let b_ns = lab.namespace("srvb").unwrap();
    let client = lab.namespace("cli").unwrap();
    let (a_link, b_link) = lab
        .shared_link(
            (&a_ns, &format!("{A_ADDRESS}/64")),
            (&b_ns, &format!("{B_ADDRESS}/64")),
            &client,
            Some(&format!("{CLIENT_ADDRESS}/64")),
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    let mut a = PeerServer::new("a", a_ns, a_link, B_ADDRESS, "lower", leasequery[0], tail);
    let mut b = PeerServer::new("b", b_ns, b_link, A_ADDRESS, "upper", leasequery[1], tail);
    a.start();

    // The client binds while only A runs.
    let script = dhcp_lab::dhclient::write_dhclient_script(&a.state_dir).unwrap();
    let (leases, pid) = dhclient_files(&a.state_dir, "peer");
    let out = client
        .command("timeout")
        .args(["30", "dhclient", "-6", "-N", "-P", "-1", "-v", "-sf"])
        .arg(&script)
        .arg("-lf")
        .arg(&leases)
        .arg("-pf")
        .arg(&pid)
        .arg("br0")
        .stdin(Stdio::null())
        .output()
        .expect("running dhclient");
    assert!(
        out.status.success(),
        "dhclient: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // B starts: a full sync by bulk query, then an active query each way.
    b.start();
    wait_until(
        "both peers following",
        Duration::from_secs(20),
        &[&a, &b],
        || {
            a.stats()
                .leasequery
                .get("active_queries")
                .copied()
                .unwrap_or(0)
                > 0
                && b.stats()
                    .leasequery
                    .get("active_queries")
                    .copied()
                    .unwrap_or(0)
                    > 0
        },
    );

    (a, b, client, pid)
}

#[test]
fn a_peer_answers_the_other_s_clients_and_both_tables_converge() {
    let lab = Lab::new();
    let (mut a, b, client, pid) = pair_with_a_bound_client(&lab, [IN_THE_CLEAR, IN_THE_CLEAR], "");
    let granted = a.assigned();
    assert_eq!(
        granted.len(),
        2,
        "an address and a prefix from A: {granted:?}"
    );
    let address = granted
        .iter()
        .find(|r| r.1 == "na")
        .expect("an address")
        .2
        .clone();
    let prefix = granted
        .iter()
        .find(|r| r.1 == "pd")
        .expect("a prefix")
        .2
        .clone();
    // A allocates from the lower half of each pool.
    assert_eq!(address, "2001:db8:1::1000");
    assert_eq!(prefix, "2001:db8:8000::/56");

    // B installs what A granted (store and binding table).
    wait_until(
        "B to install A's grants",
        Duration::from_secs(10),
        &[&a, &b],
        || {
            b.assigned()
                .iter()
                .map(|r| (&r.0, &r.2))
                .collect::<Vec<_>>()
                == granted.iter().map(|r| (&r.0, &r.2)).collect::<Vec<_>>()
        },
    );

    // The operator's view: `dhcp-user leasequery` against both servers, from the client's link.
    for server in [A_ADDRESS, B_ADDRESS] {
        let out = client
            .command(dhcp_user_binary())
            .args([
                "leasequery",
                "--server",
                server,
                "--json",
                "address",
                &address,
            ])
            .output()
            .expect("dhcp-user leasequery");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "leasequery {server}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(&address), "address query to {server}: {text}");
        let out = client
            .command(dhcp_user_binary())
            .args(["leasequery", "--server", server, "link", "::"])
            .output()
            .expect("dhcp-user leasequery link");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "bulk {server}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(&address) && text.contains("2001:db8:8000::"),
            "bulk from {server}: {text}"
        );
    }

    // A's renewals are answered by its XDP fast path (the controller never sees them); the
    // ring-buffer report reaches A's store, its active leasequery, and B's table.
    wait_until(
        "B to follow A's fast-path renewals",
        Duration::from_secs(20),
        &[&a, &b],
        || {
            let rows = a.assigned();
            a.fast_path_answers() > 0
                && rows
                    .iter()
                    .all(|r| granted.iter().any(|g| g.2 == r.2 && r.3 > g.3))
                && same_tables(&rows, &b.assigned())
        },
    );
    assert_eq!(
        a.stats().counters.received.get("renew"),
        None,
        "A's controller saw no Renew: XDP answered them"
    );

    // B installed A's bindings with their IAIDs, so its fast path can match the Rebinds.
    let iaids = |rows: Vec<Binding>| {
        let mut ids: Vec<(String, u32)> = rows
            .into_iter()
            .filter(|r| r.state == "assigned")
            .map(|r| (r.lease, r.iaid))
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        iaids(b.bindings()),
        iaids(a.bindings()),
        "IAIDs installed on B"
    );

    // A dies. The client's Renews (to A) go unanswered; at T2 it rebinds and B's XDP fast path
    // answers (no IAID mismatch passes it to B's controller).
    let at_crash = b.assigned();
    let b_before = b.stats();
    let b_rebinds_before = b.fast_path_counter("tx_rebind");
    let b_mismatch_before = b.fast_path_counter("pass_ia_mismatch");
    a.crash();
    wait_until(
        "B's fast path to answer the client's Rebind",
        Duration::from_secs(30),
        &[&a, &b],
        || b.fast_path_counter("tx_rebind") > b_rebinds_before,
    );
    let rebinds = |s: &StatsReply| s.counters.received.get("rebind").copied().unwrap_or(0);
    assert_eq!(
        rebinds(&b.stats()),
        rebinds(&b_before),
        "B's controller saw no Rebind: XDP answered it"
    );
    assert_eq!(
        b.fast_path_counter("pass_ia_mismatch"),
        b_mismatch_before,
        "no Rebind passed on for an IAID mismatch"
    );
    // B's table shows the client's bindings moved on (renewed by B past what A granted).
    wait_until(
        "B to extend the client's bindings",
        Duration::from_secs(30),
        &[&a, &b],
        || {
            let rows = b.assigned();
            rows.len() == 2
                && rows
                    .iter()
                    .all(|r| at_crash.iter().any(|c| c.2 == r.2 && r.3 > c.3 + 1))
        },
    );
    // And it goes on serving them: more renewals answered by B (Renew now names B).
    let b_mid = b.stats();
    let b_xdp_mid = b.fast_path_answers();
    wait_until(
        "B to answer a later renewal",
        Duration::from_secs(20),
        &[&a, &b],
        || {
            let now = b.stats();
            let renews = |s: &StatsReply| {
                s.counters.received.get("renew").copied().unwrap_or(0)
                    + s.counters.received.get("rebind").copied().unwrap_or(0)
            };
            renews(&now) > renews(&b_mid) || b.fast_path_answers() > b_xdp_mid
        },
    );

    // A comes back, catches up from B, and both tables are equal.
    a.revive();
    wait_until(
        "A to catch up with B",
        Duration::from_secs(30),
        &[&a, &b],
        || same_tables(&a.assigned(), &b.assigned()),
    );
    let caught_up = a
        .stats()
        .leasequery
        .get("peer_catch_ups")
        .copied()
        .unwrap_or(0);
    assert!(
        caught_up >= 1,
        "A caught up by active leasequery: {:?}",
        a.stats().leasequery
    );
    assert_eq!(a.stats().leasequery.get("peer_conflicts"), None);
    assert_eq!(b.stats().leasequery.get("peer_conflicts"), None);

    let b_stats = b.stats();
    eprintln!(
        "B: received {:?}; fast path answers {}; leasequery {:?}\nA: leasequery {:?}",
        b_stats.counters.received,
        b.fast_path_answers(),
        b_stats.leasequery,
        a.stats().leasequery
    );
    let _ = client
        .command("dhclient")
        .args(["-6", "-x", "-pf"])
        .arg(&pid)
        .status();
}

/// Item 6 of issue 21, as decided: with the fast path on, killing only A's controller (link up,
/// pinned program running) leaves the client renewing through A's XDP program. Those renewals
/// wait in A's ring buffer and map; when the controller comes back they become durable before
/// its leasequery listener opens, so B catches up on them and its table shows the expiries the
/// client was given while the controller was away.
#[test]
fn renewals_answered_while_only_the_controller_was_dead_reach_the_peer() {
    let lab = Lab::new();
    let (mut a, b, client, pid) = pair_with_a_bound_client(&lab, [IN_THE_CLEAR, IN_THE_CLEAR], "");
    let granted = a.assigned();
    assert_eq!(granted.len(), 2, "an address and a prefix: {granted:?}");
    wait_until("B to follow A", Duration::from_secs(20), &[&a, &b], || {
        same_tables(&a.assigned(), &b.assigned())
    });

    // Only the controller dies: the process, not the box (the link stays up).
    if let Some(mut child) = a.process.take() {
        let _ = Command::new("kill")
            .args(["-9", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }
    let b_at_kill = b.assigned();
    let renews_at_kill = a.fast_path_counter("tx_renew");
    // The client renews at T1 (3 s): A's pinned program answers; nobody tells B yet.
    wait_until(
        "A's fast path to answer renewals with no controller",
        Duration::from_secs(20),
        &[&a, &b],
        || a.fast_path_counter("tx_renew") >= renews_at_kill + 2,
    );
    assert_eq!(
        b.assigned(),
        b_at_kill,
        "B has not heard of these renewals while A's controller is dead"
    );

    // The controller comes back: the renewals become durable and reach B.
    a.start();
    wait_until(
        "B to learn the renewals answered while A's controller was dead",
        Duration::from_secs(30),
        &[&a, &b],
        || {
            let rows = b.assigned();
            rows.len() == 2
                && rows
                    .iter()
                    .all(|r| b_at_kill.iter().any(|k| k.2 == r.2 && r.3 >= k.3 + 3))
                && same_tables(&a.assigned(), &rows)
        },
    );
    assert_eq!(b.stats().leasequery.get("peer_conflicts"), None);
    let _ = client
        .command("dhclient")
        .args(["-6", "-x", "-pf"])
        .arg(&pid)
        .status();
}

/// The `[leasequery]` TLS keys of a server with `cert`/`key`, trusting `pki`'s CA, taking
/// nothing in the clear.
fn tls_keys(pki: &TestPki, (cert, key): &(PathBuf, PathBuf)) -> String {
    format!(
        "tls-certificate = \"{}\"\ntls-private-key = \"{}\"\ntls-ca = \"{}\"\ntls-required = true\n",
        cert.display(),
        key.display(),
        pki.ca().display()
    )
}

/// A pair over mutual TLS with nothing in the clear (RFC 7653 §5.2): each verifies the other's
/// certificate by its address (IP SAN); what A grants appears on B. `dhcp-user leasequery
/// --tls` with a client certificate queries both; a query in the clear is refused.
#[test]
fn a_pair_syncs_over_tls() {
    let lab = Lab::new();
    let pki = TestPki::new("pair");
    let a_identity = pki.issue("a", &[A_ADDRESS]);
    let b_identity = pki.issue("b", &[B_ADDRESS]);
    let (operator_cert, operator_key) = pki.issue("operator", &["operator.example"]);
    let (a, b, client, pid) = pair_with_a_bound_client(
        &lab,
        [&tls_keys(&pki, &a_identity), &tls_keys(&pki, &b_identity)],
        "",
    );
    let granted = a.assigned();
    assert_eq!(
        granted.len(),
        2,
        "an address and a prefix from A: {granted:?}"
    );
    wait_until(
        "B to install A's grants over TLS",
        Duration::from_secs(20),
        &[&a, &b],
        || same_tables(&a.assigned(), &b.assigned()),
    );
    for server in [&a, &b] {
        let lq = server.stats().leasequery;
        let count = |name: &str| lq.get(name).copied().unwrap_or(0);
        assert!(count("tls_sessions") >= 1, "{}: {lq:?}", server.name);
        assert_eq!(count("status_tls_required"), 0, "{}: {lq:?}", server.name);
        assert_eq!(count("peer_tls_errors"), 0, "{}: {lq:?}", server.name);
    }

    let address = granted
        .iter()
        .find(|r| r.1 == "na")
        .expect("an address")
        .2
        .clone();
    for server in [A_ADDRESS, B_ADDRESS] {
        let out = client
            .command(dhcp_user_binary())
            .args(["leasequery", "--server", server, "--tls", "--ca"])
            .arg(pki.ca())
            .arg("--cert")
            .arg(&operator_cert)
            .arg("--key")
            .arg(&operator_key)
            .args(["link", "::"])
            .output()
            .expect("dhcp-user leasequery --tls");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "leasequery --tls {server}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains(&address) && text.contains("2001:db8:8000::"),
            "bulk over TLS from {server}: {text}"
        );
        let out = client
            .command(dhcp_user_binary())
            .args(["leasequery", "--server", server, "link", "::"])
            .output()
            .expect("dhcp-user leasequery in the clear");
        assert!(
            !out.status.success(),
            "a query in the clear to {server} is refused"
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("status 15"),
            "TLSConnectionRefused from {server}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = client
        .command("dhclient")
        .args(["-6", "-x", "-pf"])
        .arg(&pid)
        .status();
}

/// `ip -6 route show proto 200` (our routes) in `server`'s namespace.
fn our_routes(server: &PeerServer) -> String {
    server
        .ns
        .exec("ip", ["-6", "route", "show", "proto", "200"])
        .expect("ip -6 route")
}

/// The link-local address of `dev` in `ns`.
fn link_local(ns: &Namespace, dev: &str) -> String {
    let text = ns
        .exec(
            "ip",
            ["-6", "-o", "addr", "show", "dev", dev, "scope", "link"],
        )
        .expect("ip -6 addr");
    let word = text
        .split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .unwrap_or_else(|| panic!("no link-local address on {dev}: {text}"));
    word.split('/').next().unwrap().to_string()
}

/// Routes after a failover (issue 16 part 6): with `[routes]` on both, the prefix A delegates
/// is routed by B at once, via the client's link-local address on B's own interface (the next
/// hop travels in the sync, mapped to B's link by subnet); it stays through A's death and the
/// client's Rebind to B, and goes from B when the client releases it.
#[test]
fn the_survivor_routes_the_peer_s_delegated_prefix() {
    let lab = Lab::new();
    let (mut a, b, client, pid) = pair_with_a_bound_client(
        &lab,
        [IN_THE_CLEAR, IN_THE_CLEAR],
        "[routes]\nenabled = true\n",
    );
    let prefix = a
        .assigned()
        .into_iter()
        .find(|r| r.1 == "pd")
        .expect("a prefix from A")
        .2;
    let hop = link_local(&client, "br0");
    let on = |server: &PeerServer| format!("{prefix} via {hop} dev {}", server.link.a.ifname);
    assert_ne!(
        a.link.a.ifname, b.link.a.ifname,
        "the peers' interfaces differ"
    );
    wait_until("A's route", Duration::from_secs(10), &[&a, &b], || {
        our_routes(&a).contains(&on(&a))
    });
    wait_until(
        "B's route for A's client, at once",
        Duration::from_secs(15),
        &[&a, &b],
        || our_routes(&b).contains(&on(&b)),
    );

    // A dies; the client rebinds to B (answered by B's fast path); B's route stays.
    let rebinds_before = b.fast_path_counter("tx_rebind");
    a.crash();
    wait_until(
        "the client's Rebind answered by B",
        Duration::from_secs(30),
        &[&a, &b],
        || b.fast_path_counter("tx_rebind") > rebinds_before,
    );
    assert!(
        our_routes(&b).contains(&on(&b)),
        "B routes the prefix after the takeover: {}",
        our_routes(&b)
    );

    // The client releases (to B, its server now): the route goes.
    let (leases, _) = dhclient_files(&a.state_dir, "peer");
    let out = client
        .command("timeout")
        .args(["20", "dhclient", "-6", "-r", "-P", "-N", "-lf"])
        .arg(&leases)
        .arg("-pf")
        .arg(&pid)
        .arg("br0")
        .stdin(Stdio::null())
        .output()
        .expect("dhclient -r");
    assert!(
        out.status.success(),
        "dhclient -r: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until(
        "B's route gone on release",
        Duration::from_secs(15),
        &[&a, &b],
        || !our_routes(&b).contains(&prefix),
    );
    let rows = b.bindings();
    assert!(
        rows.iter()
            .all(|r| r.lease != prefix || r.state != "assigned"),
        "B's binding of the prefix is over: {rows:?}"
    );
    assert_eq!(b.stats().leasequery.get("peer_next_hop_no_link"), None);
}
