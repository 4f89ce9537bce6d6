//! Reconfigure (RFC 8415 18.3.11) with Reconfigure Key Authentication (20.4) against a real
//! client, dhcpcd: it sends Reconfigure Accept and takes the key from the Reply; a Reconfigure
//! of `dhcp-user reconfigure --duid` makes it renew at once; a forged one (wrong key) is
//! ignored (RFC 8415 20.4.3: the client MUST discard a Reconfigure that fails validation); a
//! reload that changes the subnet's DNS server tells it so (`[reconfigure] on-reload`); behind
//! ISC `dhcrelay -6` the Reconfigure goes through the relay in a Relay-Repl.

mod server_common;

use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::time::{Duration, Instant};

use dhcp_common::{dhcpv6::*, stat};
use dhcp_user::proto::Duid;
use dhcp_user::server::reconfigure::{next_replay, signed_reconfigure};
use dhcp_user::store::{LeaseStore, SqliteStore, META_SERVER_DUID};
use server_common::relay::RelayLab;
use server_common::{dhcpcd_on, lab_config, LabServer};

/// Long timers: dhcpcd renews only when told to. `dns` is the subnet's DNS server; `append`
/// goes after the subnet's `reconfigure = true`.
fn config_with(dns: &str, append: &str) -> String {
    let dns = format!("[\"{dns}\"]");
    lab_config(
        &[
            ("preferred-lifetime", "1800"),
            ("valid-lifetime", "3600"),
            ("renew-timer", "900"),
            ("rebind-timer", "1440"),
            ("dns-servers", &dns),
        ],
        &format!("reconfigure = true\n{append}"),
    )
}

fn config() -> String {
    config_with("2001:db8:1::53", "")
}

/// dhcpcd: DHCPv6 only, an address at once (no Router Advertisement needed), Reconfigure
/// Accept in its messages (which it sends only when asked to).
const DHCPCD_CONF: &str = "ipv6only\nnoipv6rs\nia_na 1\noption dhcp6_reconfigure_accept\n";

fn hook(lab: &LabServer) -> std::path::PathBuf {
    hook_running(lab, "exit 0")
}

/// A hook script of `body` (sh).
fn hook_running(lab: &LabServer, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let script = lab.state_dir.join("dhcpcd-hook");
    std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// Our server's DUID, from its lease database.
fn server_duid(lab: &LabServer) -> Duid {
    let store = SqliteStore::open(lab.lease_db()).unwrap();
    Duid::new(store.get_meta(META_SERVER_DUID).unwrap().unwrap()).unwrap()
}

fn controller_renews(lab: &LabServer) -> u64 {
    let stats = lab.stats();
    stats.counters.received.get("renew").copied().unwrap_or(0)
}

/// The client's link-local address, read in its namespace.
fn client_link_local(lab: &LabServer) -> Ipv6Addr {
    let out = lab
        .client_ns
        .exec(
            "ip",
            [
                "-6",
                "-o",
                "addr",
                "show",
                "dev",
                &lab.link.b.ifname,
                "scope",
                "link",
            ],
        )
        .unwrap();
    let word = out
        .split_whitespace()
        .find(|w| w.starts_with("fe80"))
        .expect("a link-local address");
    word.split('/').next().unwrap().parse().unwrap()
}

/// A Reconfigure signed with the wrong key, sent from the server's namespace (from its
/// link-local address, as dhcpcd requires) to the client's port 546.
fn send_forged(lab: &LabServer, server: &Duid, client: &Duid) {
    let to = client_link_local(lab);
    let ifindex = lab.link.a.ifindex;
    let message = signed_reconfigure(server, client, MSG_RENEW, &[0x42; 16], next_replay());
    lab.server_ns
        .run_in(move || {
            let socket = UdpSocket::bind(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0))?;
            socket.send_to(&message, SocketAddrV6::new(to, CLIENT_PORT, 0, ifindex))
        })
        .unwrap()
        .unwrap();
}

/// Polls `check` every 200 ms for `seconds`; on a timeout panics with dhcpcd's log and the
/// server's.
fn wait(lab: &LabServer, seconds: u64, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; dhcpcd:\n{}\nserver:\n{}",
            lab.dhcpcd_log(),
            lab.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// dhcpcd sends Reconfigure Accept and gets the key; the fast path passes its committing
/// requests on (`pass_reconfigure`); a forged Reconfigure is ignored (no Renew within 6 s);
/// `dhcp-user reconfigure --duid` makes it renew, answered, counted once.
#[test]
fn dhcpcd_renews_on_reconfigure_and_ignores_a_forged_one() {
    let lab = LabServer::start_with("reconf-dhcpcd", &config(), true);
    let _dhcpcd = lab.dhcpcd(DHCPCD_CONF, &hook(&lab));
    wait(&lab, 40, "dhcpcd to bind", || {
        lab.bindings().iter().any(|b| b.state == "assigned")
    });
    wait(&lab, 10, "dhcpcd to take the key", || {
        lab.dhcpcd_log().contains("accepted reconfigure key")
    });
    // The Request carried Reconfigure Accept: passed on by XDP, answered by the controller.
    assert!(
        lab.xdp_counter(stat::PASS_RECONFIGURE) >= 1,
        "{}",
        lab.xdp_counters()
    );
    let duid = lab.bindings()[0].duid.clone();
    let client = Duid::new(hex::decode(&duid).unwrap()).unwrap();
    let server = server_duid(&lab);

    let before = controller_renews(&lab);
    send_forged(&lab, &server, &client);
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        controller_renews(&lab),
        before,
        "dhcpcd renewed on a forged Reconfigure:\n{}",
        lab.dhcpcd_log()
    );
    // It reached dhcpcd, which refused it for its HMAC.
    assert!(
        lab.dhcpcd_log().contains("authentication failed"),
        "{}",
        lab.dhcpcd_log()
    );

    let out = lab.cli(&["reconfigure", "--duid", &duid, "--json"]);
    assert!(out.contains("\"started\":1"), "{out}");
    let started = Instant::now();
    lab.wait_until(Duration::from_secs(10), "dhcpcd's Renew", || {
        controller_renews(&lab) > before
    });
    lab.wait_until(
        Duration::from_secs(5),
        "the exchange to be answered",
        || lab.stats().reconfigure.get("answered") == Some(&1),
    );
    eprintln!("renewed {:?} after the reconfigure", started.elapsed());
    let stats = lab.stats();
    assert_eq!(stats.reconfigure.get("started"), Some(&1));
    assert_eq!(stats.reconfigure.get("gave_up"), None);
    assert!(
        lab.dhcpcd_log().contains("RECONFIGURE6"),
        "{}",
        lab.dhcpcd_log()
    );
}

/// A reload that changes the subnet's DNS server sends its client, which holds a key, a
/// Reconfigure (`[reconfigure] on-reload`): dhcpcd renews at once and takes the new server.
#[test]
fn a_reload_with_a_new_dns_server_makes_dhcpcd_renew_and_take_it() {
    const ON_RELOAD: &str = "[reconfigure]\non-reload = true\n";
    let lab = LabServer::start_with(
        "reconf-reload",
        &config_with("2001:db8:1::53", ON_RELOAD),
        true,
    );
    let seen = lab.state_dir.join("dhcpcd-dns");
    let hook = hook_running(
        &lab,
        &format!(
            "echo \"$reason $new_dhcp6_name_servers\" >> {}",
            seen.display()
        ),
    );
    let conf = format!("{DHCPCD_CONF}option dhcp6_name_servers\n");
    let _dhcpcd = lab.dhcpcd(&conf, &hook);
    let dns_seen = || std::fs::read_to_string(&seen).unwrap_or_default();
    wait(&lab, 40, "dhcpcd to bind with the first DNS server", || {
        dns_seen().contains("2001:db8:1::53")
    });
    wait(&lab, 10, "dhcpcd to take the key", || {
        lab.dhcpcd_log().contains("accepted reconfigure key")
    });
    let before = controller_renews(&lab);

    std::fs::write(&lab.config_path, config_with("2001:db8:1::54", ON_RELOAD)).unwrap();
    let out = lab.cli(&["reload"]);
    assert!(out.contains("reconfigure"), "{out}");
    wait(&lab, 15, "dhcpcd to renew with the new DNS server", || {
        controller_renews(&lab) > before && dns_seen().contains("2001:db8:1::54")
    });
    assert_eq!(lab.stats().reconfigure.get("started"), Some(&1));
    assert!(
        lab.dhcpcd_log().contains("RECONFIGURE6"),
        "{}",
        lab.dhcpcd_log()
    );
}

/// The subnet behind the relay, with Reconfigure and long timers.
const RELAYED_SUBNET: &str = r#"
[[subnet]]
id = 2
prefix = "2001:db8:2::/64"
pools = [{ low = "2001:db8:2::100", high = "2001:db8:2::1ff" }]
preferred-lifetime = 1800
valid-lifetime = 3600
renew-timer = 900
rebind-timer = 1440
reconfigure = true
"#;

/// dhcpcd behind ISC `dhcrelay -6` takes the key through the relay; `dhcp-user reconfigure`
/// sends its Reconfigure in a Relay-Repl to the relay, which hands it to dhcpcd: it renews
/// through the relay, answered.
#[test]
fn dhcpcd_behind_dhcrelay_renews_on_reconfigure() {
    let lab = RelayLab::start("reconf-relay", &lab_config(&[], RELAYED_SUBNET), |up| {
        format!("ff02::1:2%{up}")
    });
    let server = &lab.server;
    let _dhcpcd = dhcpcd_on(
        &lab.client_ns,
        &lab.lower.b.ifname,
        &server.state_dir,
        DHCPCD_CONF,
        &hook(server),
    );
    wait(server, 40, "dhcpcd to bind behind the relay", || {
        server
            .bindings()
            .iter()
            .any(|b| b.state == "assigned" && b.lease.starts_with("2001:db8:2::"))
    });
    wait(server, 10, "dhcpcd to take the key", || {
        server.dhcpcd_log().contains("accepted reconfigure key")
    });
    let duid = server.bindings()[0].duid.clone();
    let before = controller_renews(server);
    let out = server.cli(&["reconfigure", "--duid", &duid, "--json"]);
    assert!(out.contains("\"started\":1"), "{out}");
    wait(server, 10, "dhcpcd's Renew through the relay", || {
        controller_renews(server) > before
    });
    server.wait_until(
        Duration::from_secs(5),
        "the exchange to be answered",
        || server.stats().reconfigure.get("answered") == Some(&1),
    );
    assert!(
        server.dhcpcd_log().contains("RECONFIGURE6"),
        "{}",
        server.dhcpcd_log()
    );
}
