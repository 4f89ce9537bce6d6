//! QinQ lines with no VLAN interface on the server (issue 16 part 5): the client namespace's
//! lines put an 802.1ad S-VLAN tag outside an 802.1Q C-VLAN tag on its veth (`dhcp_lab::qinq`:
//! a TAP device per line, as the lab's kernel has no 802.1Q support for VLAN interfaces); the
//! server serves its plain veth, whose subnets name the lines (`vlans`). dhclient on each line
//! gets an address and a prefix of its line's subnet through the controller's tagged-frame path;
//! the renewals are answered in XDP; every reply the lines got carried both tags.

mod server_common;

use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::time::{Duration, Instant};

use dhcp_common::stat;
use dhcp_lab::qinq::{QinqLine, QinqLines};
use server_common::{lab_config, LabServer};

/// The lab's own subnet (untagged, by the server's address), and one subnet per line: S-VLAN
/// 100 with C-VLAN 10, and with C-VLANs 11 to 20. Short timers, so dhclient renews at once.
fn config() -> String {
    let timers = r#"
preferred-lifetime = 8
valid-lifetime = 16
renew-timer = 2
rebind-timer = 4
"#;
    lab_config(
        &[],
        &format!(
            r#"
[[subnet]]
id = 100
prefix = "2001:db8:100::/64"
pools = [{{ low = "2001:db8:100::1000", high = "2001:db8:100::1fff" }}]
pd-pools = [{{ prefix = "2001:db8:a100::/48", delegated-length = 56 }}]
vlans = [{{ interface = "v*-cli", s-vlan = 100, c-vlan = 10 }}]
{timers}
[[subnet]]
id = 101
prefix = "2001:db8:101::/64"
pools = [{{ low = "2001:db8:101::1000", high = "2001:db8:101::1fff" }}]
pd-pools = [{{ prefix = "2001:db8:a101::/48", delegated-length = 56 }}]
vlans = [{{ interface = "v*-cli", s-vlan = "100", c-vlan = "11-20" }}]
{timers}"#
        ),
    )
}

/// The address and the prefix `dhclient` bound on `iface`, from its lease file.
fn bound(lab: &LabServer, iface: &QinqLine, tag: &str) -> (Ipv6Addr, Ipv6Addr) {
    let out = lab.dhclient_on(&iface.ifname, tag, &["-N", "-P", "-1"]);
    assert!(
        out.status.success(),
        "dhclient -6 on {} failed:\n{}\nserver log:\n{}",
        iface.ifname,
        String::from_utf8_lossy(&out.stderr),
        lab.log()
    );
    let (leases, _) = server_common::dhclient_files(&lab.state_dir, tag);
    let text = std::fs::read_to_string(leases).expect("dhclient's lease file");
    let after = |key: &str| -> Ipv6Addr {
        let rest =
            &text[text.rfind(key).unwrap_or_else(|| panic!("{key} in {text}")) + key.len()..];
        let word = rest.split_whitespace().next().unwrap_or("");
        let word = word.split('/').next().unwrap_or("");
        word.parse()
            .unwrap_or_else(|_| panic!("{key} {word} in {text}"))
    };
    (after("iaaddr "), after("iaprefix "))
}

/// dhclient on the (100, 10) line gets an address and a /56 of subnet 100, on (100, 11) of
/// subnet 101; no VLAN interface on the server; the renewals are answered in XDP and the replies
/// carry the line's two tags, 802.1ad 100 outside 802.1Q 10 (or 11).
#[test]
fn qinq_lines_get_their_subnets_renew_in_xdp_and_keep_their_tags() {
    let lab = LabServer::start_with("qinq", &config(), true);
    let qinq = QinqLines::start(&lab.client_ns, &lab.link.b.ifname, &[(100, 10), (100, 11)])
        .expect("the QinQ lines");
    let (line10, line11) = (&qinq.lines[0], &qinq.lines[1]);

    let (address, prefix) = bound(&lab, line10, "q10");
    // The first 48 or 64 bits: the subnet's prefix, or the pd-pool's.
    let in_net = |net: &str, a: Ipv6Addr| {
        let (base, len) = net.split_once('/').unwrap();
        let (base, len): (Ipv6Addr, u32) = (base.parse().unwrap(), len.parse().unwrap());
        (u128::from(a) ^ u128::from(base)) >> (128 - len) == 0
    };
    assert!(in_net("2001:db8:100::/64", address), "{address}");
    assert!(in_net("2001:db8:a100::/48", prefix), "{prefix}");
    let (address, prefix) = bound(&lab, line11, "q11");
    assert!(in_net("2001:db8:101::/64", address), "{address}");
    assert!(in_net("2001:db8:a101::/48", prefix), "{prefix}");
    let rows = lab.bindings();
    assert_eq!(rows.len(), 4, "two IAs on each line: {rows:?}");
    assert!(
        rows.iter().all(|b| b.interface == lab.link.a.ifname),
        "{rows:?}"
    );
    let server_links = lab
        .server_ns
        .exec("ip", ["-o", "link", "show", "type", "vlan"])
        .unwrap_or_default();
    assert_eq!(server_links.trim(), "", "no VLAN interface on the server");

    // The renewals were answered in XDP (T1 = 2 s) and reached the lines: every frame a line
    // got carried its two tags, 802.1ad S-VLAN outside 802.1Q C-VLAN, as the request did.
    lab.wait_until(Duration::from_secs(20), "renewals answered in XDP", || {
        lab.xdp_counter(stat::TX_RENEW) >= 2
    });
    for line in [line10, line11] {
        let received = line.received.lock().unwrap().clone();
        assert!(received.len() >= 3, "{}: {received:x?}", line.ifname);
        for tags in &received {
            assert_eq!(
                (tags[0].0, tags[0].1 & 0x0fff, tags[1].0, tags[1].1 & 0x0fff),
                (0x88a8, line.s_vlan, 0x8100, line.c_vlan),
                "{}: {tags:x?}",
                line.ifname
            );
        }
    }
    let _ = lab.dhclient_on(&line10.ifname, "q10", &["-r"]);
    let _ = lab.dhclient_on(&line11.ifname, "q11", &["-r"]);
}

/// How many Information-Requests each path gets per round in [`tagged_path_cost_per_message`]
/// (`DHCP_VLAN_COST_N` overrides).
const COST_MESSAGES: usize = 5000;

/// Rounds of [`tagged_path_cost_per_message`], each path in turn (other tenants' load moves
/// from round to round; alternating shares it out).
const COST_ROUNDS: usize = 5;

/// An Information-Request (transaction `xid`, a DUID-LL of `mac`, Elapsed Time, ORO for DNS and
/// the domain list): a message the controller answers with no store write, so its CPU is the
/// frame path's and the handler's alone.
fn information_request(xid: u32, mac: [u8; 6]) -> Vec<u8> {
    let mut m = xid.to_be_bytes();
    m[0] = 11;
    let mut msg = m.to_vec();
    msg.extend_from_slice(&[0, 1, 0, 10, 0, 3, 0, 1]);
    msg.extend_from_slice(&mac);
    msg.extend_from_slice(&[0, 8, 0, 2, 0, 0, 0, 6, 0, 4, 0, 23, 0, 24]);
    msg
}

/// Sends `n` Information-Requests one at a time from `socket` to `to` (each waits for its Reply,
/// 1 s at most); returns the Replies got and the server's run time over them, in ns.
fn exchanges(lab: &LabServer, socket: &UdpSocket, to: SocketAddrV6, n: usize) -> (usize, u64) {
    let mac = [2, 0x51, 0xc0, 0x57, 0, 1];
    let mut buf = [0u8; 1500];
    let before = lab.server_run_ns();
    let mut answered = 0;
    for i in 0..n {
        let xid = (i as u32) & 0x00ff_ffff;
        socket.send_to(&information_request(xid, mac), to).unwrap();
        while let Ok(len) = socket.recv(&mut buf) {
            if len >= 4 && buf[0] == 7 && buf[1..4] == xid.to_be_bytes()[1..] {
                answered += 1;
                break;
            }
        }
    }
    (answered, lab.server_run_ns() - before)
}

/// Not a check, a measurement (docs/performance.md, "VLAN lines: the tagged path's cost"): the
/// controller's run time per answered Information-Request from a QinQ line (AF_PACKET socket:
/// filter, parse, checksum, handler, reply frame, send) and from the untagged link (the kernel
/// UDP socket), fast path off, alternating in one run. Prints the figures; run with
/// `DHCP_USER_BINARY=target/release/dhcp-user cargo test -p tests --test server_qinq --
/// --ignored --nocapture tagged_path_cost` after `cargo build --release -p dhcp-user`.
#[test]
#[ignore = "a measurement that prints figures, not a check"]
fn tagged_path_cost_per_message() {
    let n = std::env::var("DHCP_VLAN_COST_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(COST_MESSAGES);
    let lab = LabServer::start_with("qinqcost", &config(), false);
    let qinq =
        QinqLines::start(&lab.client_ns, &lab.link.b.ifname, &[(100, 10)]).expect("the QinQ line");
    let line = &qinq.lines[0];
    let (tap_index, tap_ll) = (line.ifindex, line.link_local);
    let bind = |addr: SocketAddrV6| {
        let socket = lab
            .client_ns
            .run_in(move || UdpSocket::bind(addr))
            .expect("entering the client namespace")
            .expect("binding a client socket");
        socket
            .set_read_timeout(Some(Duration::from_secs(1)))
            .unwrap();
        socket
    };
    let group = Ipv6Addr::from(dhcp_common::dhcpv6::ALL_RELAYS_AND_SERVERS);
    let tagged = (
        bind(SocketAddrV6::new(tap_ll, 546, 0, tap_index)),
        SocketAddrV6::new(group, 547, 0, tap_index),
    );
    let b = &lab.link.b;
    let untagged = (
        bind(SocketAddrV6::new(b.link_local, 546, 0, b.ifindex)),
        lab.all_servers(),
    );
    // Warm-up: the first exchanges of each path (neighbour entries, caches) are not counted.
    for (socket, to) in [&tagged, &untagged] {
        let (got, _) = exchanges(&lab, socket, *to, 200);
        assert!(got > 0, "no Reply to {to}; server log:\n{}", lab.log());
    }
    let mut totals = [(0usize, 0u64); 2];
    let mut best = [f64::MAX; 2];
    for round in 0..COST_ROUNDS {
        for (i, (name, (socket, to))) in [("tagged", &tagged), ("untagged", &untagged)]
            .into_iter()
            .enumerate()
        {
            let started = Instant::now();
            let (got, ns) = exchanges(&lab, socket, *to, n);
            let us = ns as f64 / 1e3 / got.max(1) as f64;
            best[i] = best[i].min(us);
            println!(
                "round {round} {name}: {got}/{n} answered, server {us:.1} us per message, \
                 wall {:.1} us per exchange",
                started.elapsed().as_secs_f64() * 1e6 / n as f64
            );
            totals[i].0 += got;
            totals[i].1 += ns;
        }
    }
    let per = |(got, ns): (usize, u64)| ns as f64 / 1e3 / got.max(1) as f64;
    let (tagged_us, untagged_us) = (per(totals[0]), per(totals[1]));
    println!(
        "vlan_tagged_us_per_message {tagged_us:.1} (best round {:.1})\n\
         vlan_untagged_us_per_message {untagged_us:.1} (best round {:.1})\n\
         tagged minus untagged {:.1} us",
        best[0],
        best[1],
        tagged_us - untagged_us
    );
    let stats = lab.cli(&["stats"]);
    println!("server stats:\n{stats}");
}
