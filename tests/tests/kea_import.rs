//! Migration from Kea, with Kea itself: kea-dhcp6 (memfile) serves perfdhcp and a dhclient in
//! the lab; Kea stops; `dhcp-user import-kea --memfile` reads its leases6.csv into our store,
//! reporting the count; our server starts with Kea's server DUID and the same subnet, and the
//! dhclient's next Renew (addressed to Kea) is answered by us, for the same address and prefix.

mod server_common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dhcp_lab::{Lab, Namespace, VethPair};
use dhcp_user::control::{request, ControlRequest, ControlResponse};
use server_common::{dhclient_files, dhcp_user_binary, log_tail, spawn_server};

const SERVER_ADDRESS: &str = "2001:db8:1::1";
const CLIENT_ADDRESS: &str = "2001:db8:1::2";
/// Kea's server DUID (DUID-EN, enterprise 2495, identifier 0123456789), kept by us.
const KEA_SERVER_DUID: &str = "0002000009bf0123456789";

/// A scratch directory removed at the end (kept, and named, when the test fails).
struct Scratch(PathBuf);

impl Scratch {
    /// A fresh `<tmp>/<name>-<pid>`.
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

/// `kea-dhcp6 -c config` in `ns`, its pid and lock files in `dir`, its output dropped.
fn start_kea(ns: &Namespace, config: &Path, dir: &Path) -> Child {
    ns.command("kea-dhcp6")
        .arg("-c")
        .arg(config)
        .env("KEA_PIDFILE_DIR", dir)
        .env("KEA_LOCKFILE_DIR", dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting kea-dhcp6")
}

/// A server and a client namespace of `lab` joined by one link on 2001:db8:1::/64.
fn server_and_client(lab: &Lab) -> (Namespace, Namespace, VethPair) {
    let server = lab.namespace("srv").unwrap();
    let client = lab.namespace("cli").unwrap();
    let link = lab
        .link(
            &server,
            Some(&format!("{SERVER_ADDRESS}/64")),
            &client,
            Some(&format!("{CLIENT_ADDRESS}/64")),
        )
        .unwrap();
    (server, client, link)
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("kept {} for inspection", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Kea 2.2's DHCPv6 configuration for the lab: memfile, short timers, one subnet.
fn kea_config(dir: &Path, iface: &str) -> String {
    serde_json::json!({
        "Dhcp6": {
            "interfaces-config": { "interfaces": [iface] },
            "server-id": { "type": "EN", "enterprise-id": 2495, "identifier": "0123456789", "persist": false },
            "lease-database": {
                "type": "memfile",
                "persist": true,
                "lfc-interval": 0,
                "name": dir.join("leases6.csv").to_string_lossy(),
            },
            "preferred-lifetime": 40,
            "valid-lifetime": 60,
            "renew-timer": 3,
            "rebind-timer": 30,
            "subnet6": [{
                "id": 1,
                "subnet": "2001:db8:1::/64",
                "interface": iface,
                "pools": [{ "pool": "2001:db8:1::1000 - 2001:db8:1::ffff" }],
                "pd-pools": [{ "prefix": "2001:db8:8000::", "prefix-len": 40, "delegated-len": 56 }],
            }],
            "loggers": [{
                "name": "kea-dhcp6",
                "output_options": [{ "output": dir.join("kea.log").to_string_lossy() }],
                "severity": "INFO",
            }],
        }
    })
    .to_string()
}

/// Our configuration of the same subnet, with Kea's server DUID.
fn our_config(dir: &Path, iface: &str) -> String {
    format!(
        "server-duid = \"{KEA_SERVER_DUID}\"\nstate-dir = \"{dir}\"\ninterfaces = [\"{iface}\"]\n\
         [[subnet]]\nid = 1\nprefix = \"2001:db8:1::/64\"\n\
         pools = [{{ low = \"2001:db8:1::1000\", high = \"2001:db8:1::ffff\" }}]\n\
         pd-pools = [{{ prefix = \"2001:db8:8000::/40\", delegated-length = 56 }}]\n\
         preferred-lifetime = 40\nvalid-lifetime = 60\nrenew-timer = 3\nrebind-timer = 30\n",
        dir = dir.display()
    )
}

fn wait_until(what: &str, timeout: Duration, log: &Path, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The last `iaaddr`/`iaprefix` value in dhclient's lease file.
fn last_value(leases: &str, keyword: &str) -> Option<String> {
    leases
        .split(keyword)
        .last()
        .filter(|_| leases.contains(keyword))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
}

/// Kea's own memfile imported; its dhclient then renews with us.
#[test]
fn kea_memfile_is_imported_and_its_client_renews_with_us() {
    let scratch = Scratch::new("dhcp-kea-import");
    let dir = scratch.0.clone();
    let lab = Lab::new();
    let (server, client, link) = server_and_client(&lab);

    // Kea serves first: perfdhcp's clients and one dhclient (an address and a prefix).
    let kea_config_path = dir.join("kea-dhcp6.json");
    std::fs::write(&kea_config_path, kea_config(&dir, &link.a.ifname)).unwrap();
    let mut kea: Child = start_kea(&server, &kea_config_path, &dir);
    std::thread::sleep(Duration::from_millis(1500));
    let perf = client
        .command("timeout")
        .args(["60", "perfdhcp", "-6", "-l", &link.b.ifname])
        .args(["-r", "50", "-R", "100", "-n", "100", "-W", "2000000"])
        .output()
        .expect("running perfdhcp");
    assert!(
        String::from_utf8_lossy(&perf.stdout).contains("sent packets"),
        "perfdhcp against Kea: {}",
        String::from_utf8_lossy(&perf.stderr)
    );
    let script = dhcp_lab::dhclient::write_dhclient_script(&dir).unwrap();
    let (leases, pid) = dhclient_files(&dir, "kea");
    let out = client
        .command("timeout")
        .args(["30", "dhclient", "-6", "-N", "-P", "-1", "-v", "-sf"])
        .arg(&script)
        .arg("-lf")
        .arg(&leases)
        .arg("-pf")
        .arg(&pid)
        .arg(&link.b.ifname)
        .stdin(Stdio::null())
        .output()
        .expect("running dhclient");
    assert!(
        out.status.success(),
        "dhclient with Kea: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lease_text = std::fs::read_to_string(&leases).unwrap();
    let address = last_value(&lease_text, "iaaddr ").expect("an address from Kea");
    let prefix = last_value(&lease_text, "iaprefix ").expect("a prefix from Kea");
    let _ = kea.kill();
    let _ = kea.wait();

    // Kea's memfile, as Kea wrote it, into our (SQLite) store.
    let memfile = dir.join("leases6.csv");
    let distinct: std::collections::BTreeSet<String> = std::fs::read_to_string(&memfile)
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (fields.len() > 6 && fields[2] != "0").then(|| format!("{}/{}", fields[0], fields[6]))
        })
        .collect();
    let state_dir = dir.join("ours");
    std::fs::create_dir_all(&state_dir).unwrap();
    let config_path = state_dir.join("server.toml");
    std::fs::write(&config_path, our_config(&state_dir, &link.a.ifname)).unwrap();
    let import = Command::new(dhcp_user_binary())
        .args(["import-kea", "--json", "--config"])
        .arg(&config_path)
        .arg("--memfile")
        .arg(&memfile)
        .output()
        .expect("running dhcp-user import-kea");
    assert!(
        import.status.success(),
        "import-kea: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&import.stdout).unwrap();
    assert_eq!(report["rejected"], serde_json::json!([]), "{report}");
    assert_eq!(
        report["imported"].as_u64().unwrap(),
        distinct.len() as u64,
        "every lease of Kea's file: {report}"
    );
    assert!(
        distinct.len() > 50,
        "Kea granted leases: {}",
        distinct.len()
    );

    // Our server takes over; the dhclient daemon's next Renew (to Kea's DUID) reaches us.
    let args: Vec<std::ffi::OsString> = vec![
        "--config".into(),
        config_path.clone().into(),
        "--xdp".into(),
        "off".into(),
    ];
    let mut ours = spawn_server(&server, &args, &state_dir);
    let log = state_dir.join("server.log");
    let renewed = || match request(&state_dir, &ControlRequest::Stats) {
        Ok(ControlResponse::Stats(stats)) => {
            stats.counters.received.get("renew").copied().unwrap_or(0) > 0
                && stats.counters.sent.get("reply").copied().unwrap_or(0) > 0
        }
        _ => false,
    };
    wait_until(
        "the Kea client's Renew answered by us",
        Duration::from_secs(20),
        &log,
        renewed,
    );
    // dhclient took our Reply: its lease file has the same address and prefix again.
    wait_until(
        "dhclient's renewed lease",
        Duration::from_secs(10),
        &log,
        || {
            let text = std::fs::read_to_string(&leases).unwrap_or_default();
            text.len() > lease_text.len()
                && last_value(&text, "iaaddr ").as_deref() == Some(address.as_str())
                && last_value(&text, "iaprefix ").as_deref() == Some(prefix.as_str())
        },
    );
    let bindings = match request(&state_dir, &ControlRequest::Bindings).unwrap() {
        ControlResponse::Bindings(rows) => rows,
        other => panic!("{other:?}"),
    };
    assert!(
        bindings
            .iter()
            .any(|b| b.lease.starts_with(&address) && b.state == "assigned"),
        "{address} is bound with us; log:\n{}",
        log_tail(&state_dir, 40)
    );
    if let Ok(pid) = std::fs::read_to_string(&pid) {
        let _ = Command::new("kill").arg(pid.trim()).status();
    }
    let _ = ours.kill();
    let _ = ours.wait();
    drop(scratch);
}

/// Kea with its PostgreSQL backend (schema by `kea-admin db-init pgsql`) serves perfdhcp; its
/// `lease6` table is imported with `import-kea --postgresql` into our PostgreSQL store.
#[test]
fn kea_postgresql_lease6_is_imported_into_our_postgresql_store() {
    let cluster = dhcp_pgtest::Cluster::start().expect("a throwaway PostgreSQL cluster");
    let kea_db = cluster.create_database_named("kea").unwrap();
    let our_db = cluster.create_database_named("ours").unwrap();
    let scratch = Scratch::new("dhcp-kea-pg-import");
    let dir = scratch.0.clone();
    // The socket directory stands for the host (the lab's namespaces have loopbacks of their own).
    let socket_dir = cluster
        .socket_url(&kea_db)
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("host="))
        .unwrap()
        .to_owned();
    let port = cluster.port().to_string();
    let init = Command::new("kea-admin")
        .args([
            "db-init",
            "pgsql",
            "-u",
            "postgres",
            "-n",
            &kea_db,
            "-h",
            &socket_dir,
            "-P",
            &port,
        ])
        .env(
            "PATH",
            format!(
                "{}:{}",
                cluster.bin_dir().display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .output()
        .expect("running kea-admin");
    assert!(
        init.status.success(),
        "kea-admin db-init: {}{}",
        String::from_utf8_lossy(&init.stdout),
        String::from_utf8_lossy(&init.stderr)
    );

    let lab = Lab::new();
    let (server, client, link) = server_and_client(&lab);
    let mut config: serde_json::Value =
        serde_json::from_str(&kea_config(&dir, &link.a.ifname)).unwrap();
    config["Dhcp6"]["lease-database"] = serde_json::json!({
        "type": "postgresql",
        "name": kea_db,
        "host": socket_dir,
        "port": cluster.port(),
        "user": "postgres",
        "password": "",
    });
    let kea_config_path = dir.join("kea-dhcp6.json");
    std::fs::write(&kea_config_path, config.to_string()).unwrap();
    let mut kea: Child = start_kea(&server, &kea_config_path, &dir);
    std::thread::sleep(Duration::from_millis(2000));
    let perf = client
        .command("timeout")
        .args(["60", "perfdhcp", "-6", "-l", &link.b.ifname])
        .args(["-r", "50", "-R", "100", "-n", "100", "-W", "2000000"])
        .output()
        .expect("running perfdhcp");
    let _ = kea.kill();
    let _ = kea.wait();
    let in_kea: u64 = cluster
        .psql(
            &kea_db,
            "SELECT count(*) FROM lease6 WHERE valid_lifetime > 0",
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        in_kea > 50,
        "Kea granted leases into PostgreSQL ({in_kea}); perfdhcp: {}\nkea log:\n{}",
        String::from_utf8_lossy(&perf.stdout),
        std::fs::read_to_string(dir.join("kea.log")).unwrap_or_default()
    );

    let config_path = dir.join("ours.toml");
    std::fs::write(
        &config_path,
        format!(
            "{}\n[lease-database]\ntype = \"postgresql\"\nurl = \"{}\"\n",
            our_config(&dir, &link.a.ifname),
            cluster.url(&our_db)
        ),
    )
    .unwrap();
    let import = Command::new(dhcp_user_binary())
        .args(["import-kea", "--json", "--config"])
        .arg(&config_path)
        .arg("--postgresql")
        .arg(cluster.url(&kea_db))
        .output()
        .expect("running dhcp-user import-kea");
    assert!(
        import.status.success(),
        "import-kea: {}",
        String::from_utf8_lossy(&import.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&import.stdout).unwrap();
    assert_eq!(report["rejected"], serde_json::json!([]), "{report}");
    assert_eq!(report["imported"].as_u64().unwrap(), in_kea, "{report}");
    let ours: u64 = cluster
        .psql(&our_db, "SELECT count(*) FROM lease6")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(ours, in_kea, "every Kea lease is a row of ours");
    // Field by field, one lease: address, client, IAID, lifetimes and expiry agree.
    let kea_row = cluster
        .psql(
            &kea_db,
            "SELECT host(address::inet), encode(duid, 'hex'), iaid::bigint & 4294967295, \
             valid_lifetime, extract(epoch FROM expire)::bigint FROM lease6 \
             WHERE valid_lifetime > 0 ORDER BY address LIMIT 1",
        )
        .unwrap();
    let address = kea_row.split('|').next().unwrap().to_owned();
    let our_row = cluster
        .psql(
            &our_db,
            &format!(
                "SELECT host(address), encode(duid, 'hex'), iaid, valid_lifetime, expire \
                 FROM lease6 WHERE address = '{address}'"
            ),
        )
        .unwrap();
    assert_eq!(our_row.trim(), kea_row.trim());
    drop(scratch);
}

/// The address of the IA_NA in the Advertise `socket` gets for client `n`'s Solicit, sent to
/// All_DHCP_Relay_Agents_and_Servers on `ifindex` with `extra` options.
fn advertised(socket: &std::net::UdpSocket, ifindex: u32, n: u32, extra: &[Vec<u8>]) -> String {
    use dhcp_common::dhcpv6::{ALL_RELAYS_AND_SERVERS, MSG_SOLICIT, OPT_CLIENTID, OPT_IA_NA};
    use dhcp_testwire::dhcpv6::{client_duid, elapsed, find, ia_na, msg, opt, options, parse_ia};
    let mut opts = vec![
        opt(OPT_CLIENTID, &client_duid(n)),
        ia_na(1, 0, 0, None),
        elapsed(),
    ];
    opts.extend_from_slice(extra);
    let solicit = msg(MSG_SOLICIT, 0x1900 + n, &opts);
    let to = std::net::SocketAddrV6::new(ALL_RELAYS_AND_SERVERS.into(), 547, 0, ifindex);
    socket
        .set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    let mut buf = vec![0u8; 4096];
    for _ in 0..5 {
        socket.send_to(&solicit, to).unwrap();
        if let Ok((len, _)) = socket.recv_from(&mut buf) {
            let opts = options(&buf[4..len]).expect("the Advertise's options");
            let ia = parse_ia(find(&opts, OPT_IA_NA).expect("an IA_NA"), false).unwrap();
            return ia
                .leases
                .first()
                .map_or(format!("status {:?}", ia.status), |l| l.0.to_string());
        }
    }
    panic!("no Advertise for client {n}");
}

/// Kea's client classes against ours, on the wire: Kea 2.2 keeps its only pool for a class by
/// vendor class (`substring(vendor-class[4491].data, 0, 8) == 'ACME-CPE'`), so that a member
/// gets an address and others NoAddrsAvail; its file converted by `convert-kea-config` and
/// accepted by `check-config`, our server answers the same clients the same. (A member may
/// also take an address of a pool for everyone, in Kea by its allocator's turn: the pool alone
/// shows who is in the class.)
#[test]
fn kea_classes_converted_select_the_pools_keas_select() {
    let scratch = Scratch::new("dhcp-kea-classes");
    let dir = scratch.0.clone();
    let lab = Lab::new();
    let (server, client, link) = server_and_client(&lab);
    let iface = link.a.ifname.clone();
    let kea = serde_json::json!({ "Dhcp6": {
        "interfaces-config": { "interfaces": [iface] },
        "server-id": { "type": "EN", "enterprise-id": 2495, "identifier": "0123456789", "persist": false },
        "lease-database": { "type": "memfile", "persist": false },
        "client-classes": [ { "name": "acme-cpe",
            "test": "substring(vendor-class[4491].data, 0, 8) == 'ACME-CPE'" } ],
        "subnet6": [ { "id": 1, "subnet": "2001:db8:1::/64", "interface": iface,
            "pools": [ { "pool": "2001:db8:1::c000-2001:db8:1::c0ff", "client-class": "acme-cpe" } ] } ],
        "loggers": [ { "name": "kea-dhcp6",
            "output_options": [ { "output": dir.join("kea.log").to_string_lossy() } ],
            "severity": "INFO" } ]
    } })
    .to_string();
    let kea_path = dir.join("kea-dhcp6.json");
    std::fs::write(&kea_path, &kea).unwrap();
    let vendor = |item: &[u8]| {
        let mut body = 4491u32.to_be_bytes().to_vec();
        body.extend_from_slice(&(item.len() as u16).to_be_bytes());
        body.extend_from_slice(item);
        dhcp_testwire::dhcpv6::opt(dhcp_common::dhcpv6::OPT_VENDOR_CLASS, &body)
    };
    let clients = [
        (1, vec![vendor(b"ACME-CPE-2000")]),
        (2, vec![vendor(b"OTHER-CPE")]),
        (3, Vec::new()),
    ];
    // Kea opens its sockets on the link-local address: wait out duplicate address detection.
    std::thread::sleep(Duration::from_millis(2500));
    // From the link-local address, as clients send.
    let addr = std::net::SocketAddrV6::new(std::net::Ipv6Addr::UNSPECIFIED, 546, 0, 0);
    let socket = client
        .run_in(move || std::net::UdpSocket::bind(addr))
        .unwrap()
        .expect("a client socket");
    let ifindex = link.b.ifindex;
    let serve_all = |what: &str| -> Vec<String> {
        let got: Vec<String> = clients
            .iter()
            .map(|(n, extra)| advertised(&socket, ifindex, *n, extra))
            .collect();
        eprintln!("{what}: {got:?}");
        got
    };

    let mut kea_server: Child = start_kea(&server, &kea_path, &dir);
    std::thread::sleep(Duration::from_millis(2000));
    let from_kea = serve_all("Kea");
    let _ = kea_server.kill();
    let _ = kea_server.wait();

    let convert = Command::new(dhcp_user_binary())
        .arg("convert-kea-config")
        .arg(&kea_path)
        .output()
        .unwrap();
    assert!(
        convert.status.success(),
        "{}",
        String::from_utf8_lossy(&convert.stderr)
    );
    let state_dir = dir.join("ours");
    std::fs::create_dir_all(&state_dir).unwrap();
    let config_path = state_dir.join("server.toml");
    let ours = format!(
        "state-dir = \"{}\"\n{}",
        state_dir.display(),
        String::from_utf8(convert.stdout).unwrap()
    );
    std::fs::write(&config_path, &ours).unwrap();
    let check = Command::new(dhcp_user_binary())
        .arg("check-config")
        .arg(&config_path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}\n{ours}",
        String::from_utf8_lossy(&check.stderr)
    );
    let args: Vec<std::ffi::OsString> = vec![
        "--config".into(),
        config_path.into(),
        "--xdp".into(),
        "off".into(),
    ];
    let mut our_server = spawn_server(&server, &args, &state_dir);
    let from_us = serve_all("ours");
    let _ = our_server.kill();
    let _ = our_server.wait();

    let pool = |address: &str| -> &'static str {
        match address
            .parse::<std::net::Ipv6Addr>()
            .map(|a| a.segments()[7] & 0xf000)
        {
            Ok(0xc000) => "acme-cpe",
            _ if address == "status Some(2)" => "NoAddrsAvail",
            _ => "other",
        }
    };
    let kea_pools: Vec<&str> = from_kea.iter().map(|a| pool(a)).collect();
    let our_pools: Vec<&str> = from_us.iter().map(|a| pool(a)).collect();
    assert_eq!(
        kea_pools,
        ["acme-cpe", "NoAddrsAvail", "NoAddrsAvail"],
        "{from_kea:?}"
    );
    assert_eq!(our_pools, kea_pools, "{from_us:?}\n{ours}");
    drop(scratch);
}
