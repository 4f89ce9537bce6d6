//! Reload without a restart (`dhcp-user reload`, SIGHUP) with the fast path on: reloads under
//! perfdhcp renewals drop nothing and the replies right after carry the new DNS servers; a bad
//! file, or one changing a key that needs a restart, is refused and the old configuration keeps
//! serving; systemd's readiness protocol (READY=1 once attached, RELOADING=1 then READY=1 around
//! a SIGHUP reload).

mod server_common;

use std::net::{Ipv6Addr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dhcp_common::dhcpv6::*;
use dhcp_common::stat;
use dhcp_testwire::dhcpv6::{
    client_duid, elapsed, find, ia_na, msg, opt, options, oro, parse_ia, relay_forw,
};
use server_common::{dhcp_user_binary, lab_config, renew_exchanges, LabServer, CLIENT_ADDRESS};

/// The lab's configuration with DNS server `dns` and, with `second_pool`, a second pool.
fn config(dns: &str, second_pool: bool) -> String {
    let pools = if second_pool {
        r#"[{ low = "2001:db8:1::1000", high = "2001:db8:1::ffff" }, { low = "2001:db8:1::1:0", high = "2001:db8:1::1:ffff" }]"#
    } else {
        r#"[{ low = "2001:db8:1::1000", high = "2001:db8:1::ffff" }]"#
    };
    lab_config(
        &[("dns-servers", &format!("[\"{dns}\"]")), ("pools", pools)],
        "",
    )
}

/// One client of ours (not perfdhcp's, which holds port 546 of the client namespace), behind a
/// relay of ours on the client's address (port 547): its address and the server's DUID.
struct Client {
    socket: UdpSocket,
    to: std::net::SocketAddrV6,
    address: Ipv6Addr,
    server_id: Vec<u8>,
}

/// Relays `request` (a client message) and waits for the reply to it, unwrapped from its
/// Relay-Repl (three tries; a reply with another transaction id is skipped).
fn exchange(socket: &UdpSocket, to: std::net::SocketAddrV6, request: &[u8]) -> Option<Vec<u8>> {
    exchange_on(socket, to, request, ip(CLIENT_ADDRESS))
}

/// As [`exchange`], the relay naming `link` as its link-address (which selects the subnet).
fn exchange_on(
    socket: &UdpSocket,
    to: std::net::SocketAddrV6,
    request: &[u8],
    link: Ipv6Addr,
) -> Option<Vec<u8>> {
    let relayed = relay_forw(request, link, ip("fe80::1"), None);
    let mut buf = [0u8; 4096];
    for _ in 0..3 {
        socket.send_to(&relayed, to).ok()?;
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            let Ok(n) = socket.recv(&mut buf) else { break };
            let mut message = &buf[..n];
            while message.first() == Some(&MSG_RELAY_REPL) {
                let opts = options(&message[34..])?;
                message = find(&opts, OPT_RELAY_MSG)?;
            }
            if message.len() >= 4 && message[1..4] == request[1..4] {
                return Some(message.to_vec());
            }
        }
    }
    None
}

/// The DNS servers (option 23) of a reply.
fn dns_of(reply: &[u8]) -> Vec<Ipv6Addr> {
    let opts = options(&reply[4..]).expect("reply options");
    find(&opts, OPT_DNS_SERVERS)
        .unwrap_or_default()
        .chunks(16)
        .map(|c| Ipv6Addr::from(<[u8; 16]>::try_from(c).unwrap()))
        .collect()
}

impl Client {
    /// Binds client `n` with a Rapid-Commit Solicit, asking for the DNS servers.
    fn bind(lab: &LabServer, n: u32) -> (Client, Vec<Ipv6Addr>) {
        let socket = lab.client_socket(547);
        let to = lab.server_unicast();
        let solicit = msg(
            MSG_SOLICIT,
            0x7000 + n,
            &[
                opt(OPT_CLIENTID, &client_duid(n)),
                opt(OPT_RAPID_COMMIT, &[]),
                ia_na(1, 0, 0, None),
                oro(&[OPT_DNS_SERVERS]),
                elapsed(),
            ],
        );
        let reply = exchange(&socket, to, &solicit).expect("a reply to the Solicit");
        assert_eq!(reply[0], MSG_REPLY);
        let opts = options(&reply[4..]).unwrap();
        let server_id = find(&opts, OPT_SERVERID).unwrap().to_vec();
        let ia = parse_ia(find(&opts, OPT_IA_NA).unwrap(), false).unwrap();
        let address = ia.leases.first().expect("an address").0;
        let dns = dns_of(&reply);
        (
            Client {
                socket,
                to,
                address,
                server_id,
            },
            dns,
        )
    }

    /// Renews (transaction `xid`); the DNS servers of the reply.
    fn renew(&self, n: u32, xid: u32) -> Vec<Ipv6Addr> {
        let renew = msg(
            MSG_RENEW,
            xid,
            &[
                opt(OPT_CLIENTID, &client_duid(n)),
                opt(OPT_SERVERID, &self.server_id),
                ia_na(1, 0, 0, Some((self.address, 0, 0))),
                oro(&[OPT_DNS_SERVERS]),
                elapsed(),
            ],
        );
        let reply = exchange(&self.socket, self.to, &renew).expect("a reply to the Renew");
        assert_eq!(reply[0], MSG_REPLY);
        dns_of(&reply)
    }
}

/// `dhcp-user reload` against the lab's server: (success, stdout + stderr).
fn reload(lab: &LabServer) -> (bool, String) {
    let out = Command::new(dhcp_user_binary())
        .args(["reload", "--state-dir"])
        .arg(&lab.state_dir)
        .output()
        .expect("running dhcp-user reload");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn ip(text: &str) -> Ipv6Addr {
    text.parse().unwrap()
}

/// Three reloads while perfdhcp renews through the fast path (each changing the DNS server, the
/// second adding a pool): perfdhcp sees every Renew answered, our client's Renew right after
/// each reload carries the new DNS server, and once perfdhcp is done the fast path itself
/// answers with it.
#[test]
fn reloads_under_perfdhcp_renewals_drop_nothing_and_serve_the_new_dns() {
    let lab = LabServer::start_with("reload-perf", &config("2001:db8:1::53", false), true);
    let (client, dns) = Client::bind(&lab, 1);
    assert_eq!(dns, [ip("2001:db8:1::53")]);
    let perfdhcp = lab
        .client_ns
        .command("timeout")
        .args(["40", "perfdhcp", "-6", "-l", &lab.link.b.ifname])
        .args([
            "-r", "100", "-R", "200", "-f", "50", "-p", "14", "-W", "2000000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running perfdhcp (kea-admin package)");
    lab.wait_until(Duration::from_secs(15), "renewals answered in XDP", || {
        lab.xdp_counter(stat::TX_RENEW) >= 50
    });
    for (round, second_pool) in [(1u32, false), (2, true), (3, true)] {
        let dns = format!("2001:db8:1::53:{round}");
        std::fs::write(&lab.config_path, config(&dns, second_pool)).unwrap();
        let (ok, text) = reload(&lab);
        assert!(ok, "reload {round}: {text}\n{}", lab.log());
        assert!(text.contains("reloaded"), "{text}");
        assert_eq!(
            client.renew(1, 0x7100 + round),
            [ip(&dns)],
            "the Renew right after reload {round}"
        );
        std::thread::sleep(Duration::from_millis(1500));
    }
    let out = perfdhcp.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    let (sent, received) =
        renew_exchanges(&text).unwrap_or_else(|| panic!("perfdhcp's renew statistics:\n{text}"));
    assert!(sent > 100, "perfdhcp renewed across the reloads:\n{text}");
    assert_eq!(received, sent, "every Renew answered:\n{text}");
    let stats = lab.stats();
    assert_eq!(
        (stats.reloads.reloads, stats.reloads.reloads_refused),
        (3, 0)
    );
    // Only our client now: its Renews answered in XDP carry the new DNS server too.
    let before = lab.xdp_counter(stat::TX_RENEW);
    let mut xid = 0x7200;
    lab.wait_until(Duration::from_secs(10), "our Renew answered in XDP", || {
        xid += 1;
        assert_eq!(client.renew(1, xid), [ip("2001:db8:1::53:3")]);
        lab.xdp_counter(stat::TX_RENEW) > before
    });
}

/// A file with an error, or one changing a key that needs a restart, is refused (by `dhcp-user
/// reload`, naming the file, line and key, and by SIGHUP), counted as `reloads_refused`, and
/// the running configuration keeps serving.
#[test]
fn a_bad_file_is_refused_and_the_old_configuration_keeps_serving() {
    let lab = LabServer::start_with("reload-bad", &config("2001:db8:1::53", false), true);
    let (client, _) = Client::bind(&lab, 2);
    let good = config("2001:db8:1::99", false);
    std::fs::write(
        &lab.config_path,
        good.replace("grace-period = 3600", "grace-period = \"1h\""),
    )
    .unwrap();
    let (ok, text) = reload(&lab);
    assert!(!ok, "a bad file reloaded: {text}");
    assert!(
        text.contains("reload refused")
            && text.contains(&format!("config file {}", lab.config_path.display()))
            && text.contains("line")
            && text.contains("grace-period"),
        "{text}"
    );
    std::fs::write(
        &lab.config_path,
        good.replace("grace-period = 3600", "grace-period = 60"),
    )
    .unwrap();
    let (ok, text) = reload(&lab);
    assert!(!ok, "a restart key reloaded: {text}");
    assert!(
        text.contains("grace-period changed, which takes a restart"),
        "{text}"
    );
    assert_eq!(
        client.renew(2, 0x7300),
        [ip("2001:db8:1::53")],
        "the old DNS"
    );
    // SIGHUP with the bad file: refused too.
    std::fs::write(&lab.config_path, "[[subnet]]\nprefix = 1\n").unwrap();
    let pid = lab.server.as_ref().unwrap().id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    lab.wait_until(Duration::from_secs(5), "the SIGHUP reload refused", || {
        lab.stats().reloads.reloads_refused == 3
    });
    assert_eq!(lab.stats().reloads.reloads, 0);
    assert_eq!(
        client.renew(2, 0x7301),
        [ip("2001:db8:1::53")],
        "the old DNS"
    );
    assert!(lab.log().contains("reload refused"), "{}", lab.log());
}

/// Waits up to `timeout` for the next notification on `socket`.
fn next_notification(socket: &UnixDatagram, timeout: Duration) -> String {
    socket.set_read_timeout(Some(timeout)).unwrap();
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notification in time");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// systemd's readiness protocol: READY=1 once the sockets are open and the fast path attached
/// (its link pinned), RELOADING=1 (with MONOTONIC_USEC) then READY=1 around a SIGHUP reload,
/// STOPPING=1 on SIGTERM.
#[test]
fn readiness_is_notified_after_attach_and_around_a_sighup_reload() {
    let dir = std::env::temp_dir().join(format!("dhcp-user-notify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&path);
    let socket = UnixDatagram::bind(&path).unwrap();
    let state_dir =
        std::env::temp_dir().join(format!("dhcp-user-test-notify-{}", std::process::id()));
    let mut lab = LabServer::start_in_with_env(
        state_dir,
        &config("2001:db8:1::53", false),
        true,
        false,
        vec![("NOTIFY_SOCKET".into(), path.to_string_lossy().into_owned())],
    );
    let ready = next_notification(&socket, Duration::from_secs(20));
    assert!(ready.starts_with("READY=1"), "{ready}");
    let link = lab.pin_root().join(format!("link-{}", lab.link.a.ifname));
    assert!(
        link.exists(),
        "READY=1 before the XDP link {} was pinned",
        link.display()
    );
    let pid = lab.server.as_ref().unwrap().id().to_string();
    std::fs::write(&lab.config_path, config("2001:db8:1::54", false)).unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let reloading = next_notification(&socket, Duration::from_secs(10));
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    let ready = next_notification(&socket, Duration::from_secs(10));
    assert!(ready.starts_with("READY=1"), "{ready}");
    assert_eq!(lab.stats().reloads.reloads, 1);
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let stopping = next_notification(&socket, Duration::from_secs(10));
    assert!(stopping.starts_with("STOPPING=1"), "{stopping}");
    if let Some(mut child) = lab.server.take() {
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The lab's subnet without its `id`, with `others` (subnet tables without ids) before it
/// (`first`) or after it.
fn config_without_ids(others: &str, first: bool) -> String {
    let lab = lab_config(&[], "").replace("\nid = 1 ", "\n# id = 1 ");
    assert!(!lab.contains("\nid = "), "the lab's subnet has no id now");
    let (head, subnet) = lab.split_at(lab.find("[[subnet]]").unwrap());
    if first {
        format!("{head}{others}{subnet}")
    } else {
        format!("{head}{subnet}{others}")
    }
}

/// Subnets without ids keep their ids across a reload that reorders them and a restart that
/// deletes one and adds another in front: our client's lease stays under subnet 1 and renews;
/// the new subnet gets an id never used (3), not its position.
#[test]
fn reordering_and_deleting_subnets_never_renumbers_the_others() {
    let other = "[[subnet]]\nprefix = \"2001:db8:2::/64\"\n\
                 pools = [{ low = \"2001:db8:2::1000\", high = \"2001:db8:2::1fff\" }]\n";
    let mut lab = LabServer::start_with("reload-ids", &config_without_ids(other, false), true);
    let (client, _) = Client::bind(&lab, 3);
    let subnets =
        |lab: &LabServer| -> Vec<u32> { lab.bindings().iter().map(|b| b.subnet).collect() };
    assert_eq!(subnets(&lab), [1]);
    std::fs::write(&lab.config_path, config_without_ids(other, true)).unwrap();
    let (ok, text) = reload(&lab);
    assert!(ok, "{text}");
    assert!(
        !text.contains("added") && !text.contains("removed"),
        "reordered, not renumbered: {text}"
    );
    let ids: Vec<(u32, String)> = lab
        .stats()
        .pools
        .iter()
        .filter(|p| p.kind == "na")
        .map(|p| (p.subnet_id, p.prefix.clone()))
        .collect();
    assert!(ids.contains(&(2, "2001:db8:2::/64".into())), "{ids:?}");
    assert!(ids.contains(&(1, "2001:db8:1::/64".into())), "{ids:?}");
    assert_eq!(client.renew(3, 0x7400), [ip("2001:db8:1::53")]);
    assert_eq!(subnets(&lab), [1]);
    // Restart: subnet 2 deleted, a new one put first.
    let new = "[[subnet]]\nprefix = \"2001:db8:3::/64\"\n\
               pools = [{ low = \"2001:db8:3::1000\", high = \"2001:db8:3::1fff\" }]\n";
    std::fs::write(&lab.config_path, config_without_ids(new, true)).unwrap();
    lab.kill9();
    lab.start_server();
    let ids: Vec<(u32, String)> = lab
        .stats()
        .pools
        .iter()
        .filter(|p| p.kind == "na")
        .map(|p| (p.subnet_id, p.prefix.clone()))
        .collect();
    assert_eq!(
        ids,
        [(3, "2001:db8:3::/64".into()), (1, "2001:db8:1::/64".into())]
    );
    assert_eq!(client.renew(3, 0x7401), [ip("2001:db8:1::53")]);
    assert_eq!(subnets(&lab), [1]);
    let record = std::fs::read_to_string(lab.state_dir.join("subnet-ids")).unwrap();
    assert!(
        record.contains("1 2001:db8:1::/64")
            && record.contains("2 2001:db8:2::/64")
            && record.contains("3 2001:db8:3::/64"),
        "{record}"
    );
}

/// `dhcp-user leasequery` from the client's namespace (its address is in the lab's
/// `[leasequery] allow`), over TCP to the server: its output.
fn leasequery(lab: &LabServer, args: &[&str]) -> String {
    let out = lab
        .client_ns
        .command(dhcp_user_binary())
        .args(["leasequery", "--server", server_common::SERVER_ADDRESS])
        .args(args)
        .output()
        .expect("running dhcp-user leasequery");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A reload that adds a subnet extends the links TCP leasequery answers for: before it, a bulk
/// query by the new link's address gets NotConfigured (RFC 5460 section 7.3: a server MUST
/// answer NotConfigured for a link it is not configured for); after it, a client relayed from
/// that link is granted an address of the new subnet, the same query returns its binding, and
/// so does a query by its address over TCP.
#[test]
fn a_reload_adding_a_subnet_reaches_tcp_leasequery() {
    let lab = LabServer::start("reload-lq-links", &config("2001:db8:1::53", false));
    let link = "2001:db8:2::1";
    let before = leasequery(&lab, &["link", link]);
    assert!(
        before.contains(&format!("status {STATUS_NOT_CONFIGURED}")),
        "{before}"
    );
    let second = "\n[[subnet]]\nid = 2\nprefix = \"2001:db8:2::/64\"\nrapid-commit = true\n\
                  pools = [{ low = \"2001:db8:2::1000\", high = \"2001:db8:2::1fff\" }]\n";
    std::fs::write(
        &lab.config_path,
        format!("{}{second}", config("2001:db8:1::53", false)),
    )
    .unwrap();
    let (ok, text) = reload(&lab);
    assert!(ok && text.contains("subnet 2"), "{text}");
    let socket = lab.client_socket(547);
    let solicit = msg(
        MSG_SOLICIT,
        0x7500,
        &[
            opt(OPT_CLIENTID, &client_duid(0x92)),
            opt(OPT_RAPID_COMMIT, &[]),
            ia_na(1, 0, 0, None),
            elapsed(),
        ],
    );
    let reply = exchange_on(&socket, lab.server_unicast(), &solicit, ip(link)).expect("a reply");
    assert_eq!(reply[0], MSG_REPLY, "Rapid Commit");
    let opts = options(&reply[4..]).unwrap();
    let address = parse_ia(find(&opts, OPT_IA_NA).unwrap(), false)
        .unwrap()
        .leases[0]
        .0;
    assert!(address.to_string().starts_with("2001:db8:2::"), "{address}");
    let after = leasequery(&lab, &["link", link]);
    assert!(
        after.contains(&address.to_string()) && !after.contains("status"),
        "{after}"
    );
    let by_address = leasequery(&lab, &["--tcp", "address", &address.to_string()]);
    let colon_hex: Vec<String> = client_duid(0x92)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(by_address.contains(&colon_hex.join(":")), "{by_address}");
    let elsewhere = leasequery(&lab, &["link", "2001:db8:3::1"]);
    assert!(
        elsewhere.contains(&format!("status {STATUS_NOT_CONFIGURED}")),
        "{elsewhere}"
    );
}
