//! Two controllers on one PostgreSQL database and one link (a bridge in the client namespace),
//! no pool split between them: two perfdhcp runs at once, every Solicit reaching both servers,
//! and no address is ever granted to two clients (checked over the whole history of grants).
//! Then a dhclient bound by A, whose lease B learns only through LISTEN/NOTIFY (B's link was
//! down meanwhile) and answers a leasequery for; A is killed (-9, its link down) and the
//! client's Rebind is answered by B.

mod server_common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dhcp_lab::{Lab, Namespace, VethPair};
use dhcp_pgtest::Cluster;
use dhcp_user::control::{request, ControlRequest, ControlResponse, StatsReply};
use server_common::{dhclient_files, log_tail, spawn_server};

const A_ADDRESS: &str = "2001:db8:1::1";
const B_ADDRESS: &str = "2001:db8:1::3";
const CLIENT_ADDRESS: &str = "2001:db8:1::2";

/// One controller: namespace, link, state directory, process.
struct Controller {
    name: &'static str,
    ns: Namespace,
    link: VethPair,
    state_dir: PathBuf,
    process: Option<Child>,
}

impl Controller {
    fn new(name: &'static str, ns: Namespace, link: VethPair, database: &str) -> Self {
        let state_dir =
            std::env::temp_dir().join(format!("dhcp-user-pgshared-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state_dir);
        std::fs::create_dir_all(&state_dir).unwrap();
        // The same subnet and pool on both; short timers so a client rebinds within seconds.
        let config = format!(
            "state-dir = \"{dir}\"\ninterfaces = [\"{iface}\"]\ngrace-period = 60\n\
             [leasequery]\nallow = [\"2001:db8:1::/64\"]\n\
             [lease-database]\ntype = \"postgresql\"\nurl = \"{database}\"\n\
             [[subnet]]\nid = 1\nprefix = \"2001:db8:1::/64\"\n\
             pools = [{{ low = \"2001:db8:1::1000\", high = \"2001:db8:1::1fff\" }}]\n\
             preferred-lifetime = 40\nvalid-lifetime = 60\nrenew-timer = 3\nrebind-timer = 6\n",
            dir = state_dir.display(),
            iface = link.a.ifname,
        );
        std::fs::write(state_dir.join("server.toml"), config).unwrap();
        let ifname = link.a.ifname.clone();
        ns.run_in(move || {
            std::fs::write(
                format!("/proc/sys/net/ipv6/conf/{ifname}/keep_addr_on_down"),
                "1",
            )
        })
        .unwrap()
        .unwrap();
        Controller {
            name,
            ns,
            link,
            state_dir,
            process: None,
        }
    }

    fn start(&mut self) {
        let args: Vec<std::ffi::OsString> = vec![
            "--config".into(),
            self.state_dir.join("server.toml").into(),
            "--xdp".into(),
            "off".into(),
        ];
        self.process = Some(spawn_server(&self.ns, &args, &self.state_dir));
    }

    fn link_set(&self, state: &str) {
        self.ns
            .exec("ip", ["link", "set", &self.link.a.ifname, state])
            .expect("ip link set");
    }

    /// The whole box dies: kill -9 and its link down.
    fn crash(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = Command::new("kill")
                .args(["-9", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
        self.link_set("down");
    }

    fn stats(&self) -> StatsReply {
        match request(&self.state_dir, &ControlRequest::Stats).expect("stats") {
            ControlResponse::Stats(stats) => stats,
            other => panic!("unexpected answer {other:?}"),
        }
    }

    fn has_binding(&self, lease: &str) -> bool {
        match request(&self.state_dir, &ControlRequest::Bindings).expect("bindings") {
            ControlResponse::Bindings(rows) => rows
                .iter()
                .any(|b| b.lease.starts_with(lease) && b.state == "assigned"),
            other => panic!("unexpected answer {other:?}"),
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "server {} log:\n{}",
                self.name,
                log_tail(&self.state_dir, 80)
            );
            return;
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every address in the history of grants (assigned upserts, both servers), with its clients.
fn granted_clients(cluster: &Cluster, dbname: &str) -> BTreeMap<String, BTreeSet<String>> {
    let out = cluster
        .psql(
            dbname,
            "SELECT host(address), encode(duid, 'hex') FROM lease_changes \
             WHERE kind = 0 AND state = 0 AND lease_type = 0",
        )
        .unwrap();
    let mut owners: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in out.lines().filter(|l| !l.is_empty()) {
        let (address, duid) = line.split_once('|').unwrap();
        owners
            .entry(address.into())
            .or_default()
            .insert(duid.into());
    }
    owners
}

/// Runs perfdhcp on br0 in `client` with base DUID `duid` (so two runs simulate different
/// clients); returns (exit code, output). Single-threaded (`-g single`): in its multi-thread
/// mode perfdhcp may stamp a Solicit as sent after its Advertise arrived, and then fails the
/// run ("Sent packet's timestamp must not be greater than received packet's timestamp").
fn perfdhcp(client: &Namespace, duid: &str) -> std::thread::JoinHandle<(Option<i32>, String)> {
    let mut command = client.command("timeout");
    command
        .args([
            "60", "perfdhcp", "-6", "-g", "single", "-l", "br0", "-r", "100", "-R", "200",
        ])
        .args(["-n", "400", "-W", "2000000", "-b", &format!("duid={duid}")]);
    std::thread::spawn(move || {
        let out = command.output().expect("running perfdhcp");
        (
            out.status.code(),
            format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    })
}

/// Two controllers, one database, one link: every grant unique under contention; a client of
/// the killed one has its Rebind answered by the other, which knew its lease through NOTIFY.
#[test]
fn two_controllers_grant_uniquely_and_take_over_a_dead_ones_clients() {
    let cluster = Cluster::start().expect("a throwaway PostgreSQL cluster");
    let dbname = cluster.create_database_named("shared").unwrap();
    let database = cluster.socket_url(&dbname);
    let lab = Lab::new();
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
    // perfdhcp sends from br0's link-local address: wait until it is there and usable.
    wait_until("br0's link-local address", Duration::from_secs(10), || {
        client
            .exec("ip", ["-6", "addr", "show", "dev", "br0", "scope", "link"])
            .is_ok_and(|out| out.contains("fe80::") && !out.contains("tentative"))
    });
    std::thread::sleep(Duration::from_millis(300));

    let mut a = Controller::new("a", a_ns, a_link, &database);
    let mut b = Controller::new("b", b_ns, b_link, &database);
    a.start();
    b.start();

    // Two perfdhcp runs at once; each Solicit and Request reaches both servers.
    let first = perfdhcp(&client, "00030001aa0000000001");
    let second = perfdhcp(&client, "00030001bb0000000001");
    let (first, second) = (first.join().unwrap(), second.join().unwrap());
    for (code, text) in [&first, &second] {
        assert!(
            text.contains("sent packets"),
            "perfdhcp ran (exit {code:?}):\n{text}"
        );
    }
    let owners = granted_clients(&cluster, &dbname);
    assert!(owners.len() >= 100, "grants were made: {}", owners.len());
    let doubles: Vec<_> = owners.iter().filter(|(_, duids)| duids.len() > 1).collect();
    assert!(
        doubles.is_empty(),
        "addresses granted to two clients: {doubles:?}"
    );
    let replies = |s: &Controller| s.stats().counters.sent.get("reply").copied().unwrap_or(0);
    assert!(replies(&a) > 0 && replies(&b) > 0, "both servers granted");

    // A client bound by A while B's link is down: B learns of it only through NOTIFY.
    b.link_set("down");
    let script = dhcp_lab::dhclient::write_dhclient_script(&a.state_dir).unwrap();
    let (leases, pid) = dhclient_files(&a.state_dir, "shared");
    let out = client
        .command("timeout")
        .args(["30", "dhclient", "-6", "-N", "-1", "-v", "-sf"])
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
    let lease_text = std::fs::read_to_string(&leases).unwrap();
    let address = lease_text
        .split("iaaddr ")
        .last()
        .and_then(|rest| rest.split_whitespace().next())
        .expect("an address in dhclient's lease file")
        .to_owned();
    wait_until(
        "B knows A's client (NOTIFY)",
        Duration::from_secs(10),
        || b.has_binding(&address),
    );
    b.link_set("up");
    std::thread::sleep(Duration::from_millis(300));
    // Leasequery over the shared table: B answers for A's client.
    let query = client
        .command(server_common::dhcp_user_binary())
        .args([
            "leasequery",
            "--server",
            B_ADDRESS,
            "--json",
            "address",
            &address,
        ])
        .output()
        .expect("running dhcp-user leasequery");
    let answer = String::from_utf8_lossy(&query.stdout);
    assert!(
        query.status.success() && answer.contains(&address),
        "B's leasequery answer for {address}: {answer}{}",
        String::from_utf8_lossy(&query.stderr)
    );

    // A dies; the client renews with A in vain (T1 3 s), then rebinds (T2 6 s): B answers.
    let rebinds_before = b
        .stats()
        .counters
        .received
        .get("rebind")
        .copied()
        .unwrap_or(0);
    let replies_before = replies(&b);
    a.crash();
    wait_until(
        "B answers the client's Rebind",
        Duration::from_secs(30),
        || {
            b.stats()
                .counters
                .received
                .get("rebind")
                .copied()
                .unwrap_or(0)
                > rebinds_before
                && replies(&b) > replies_before
        },
    );
    let expire_after = cluster
        .psql(
            &dbname,
            &format!("SELECT expire - cltt, state FROM lease6 WHERE address = '{address}'"),
        )
        .unwrap();
    assert_eq!(
        expire_after.trim(),
        "60|0",
        "the lease is assigned, renewed by B"
    );
    if let Ok(pid) = std::fs::read_to_string(&pid) {
        let _ = Command::new("kill").arg(pid.trim()).status();
    }
}
