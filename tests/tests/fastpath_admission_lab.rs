//! Admission per line in a lab: a flood of Solicits from random DUIDs on one link while ISC
//! dhclient on another link gets its lease. The flood's line loses its excess in XDP
//! (`drop_line_budget`), the global per-CPU budget it would otherwise spend is never reached,
//! and the other line's client binds. Flood and client send from one CPU: a veth runs its XDP
//! program on the sending CPU, so both spend that CPU's global budget, as two clients hashed
//! to one receive queue of a real NIC do. Without admission per line (`--line-pass-budget 0`)
//! the same flood leaves dhclient nothing (tried once by hand: dhclient gave up after 30 s, its
//! messages among 58 875 `drop_rate_limit` drops).

mod server_common;

use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dhcp_common::{dhcpv6::*, stat};
use dhcp_testwire::dhcpv6::{client_duid, elapsed, ia_na, msg, opt};
use server_common::{lab_config, LabServer};

/// Frames a second the flood sends: 40 times the global budget below.
const FLOOD_RATE: u32 = 2000;
/// The global budget (`--pass-rate-per-cpu`).
const GLOBAL_BUDGET: &str = "50";

/// Sends Solicits from new DUIDs on `link` at about `FLOOD_RATE` a second until `stop`;
/// returns how many it sent.
fn flood(lab: &LabServer, link: usize, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let (ns, veth) = &lab.extra_links[link];
    let local = SocketAddrV6::new(veth.b.link_local, 546, 0, veth.b.ifindex);
    let group = SocketAddrV6::new(
        Ipv6Addr::from(ALL_RELAYS_AND_SERVERS),
        547,
        0,
        veth.b.ifindex,
    );
    ns.spawn_in(move || {
        let socket = UdpSocket::bind(local).expect("binding the flood's socket");
        let started = Instant::now();
        let mut sent = 0u64;
        while !stop.load(Ordering::Relaxed) {
            // Paced in batches of 20 (the machine is shared).
            for _ in 0..20 {
                let n = 0x0100_0000 + sent as u32;
                let solicit = msg(
                    MSG_SOLICIT,
                    n & 0x00ff_ffff,
                    &[
                        opt(OPT_CLIENTID, &client_duid(n)),
                        elapsed(),
                        ia_na(1, 0, 0, None),
                    ],
                );
                if socket.send_to(&solicit, group).is_ok() {
                    sent += 1;
                }
            }
            let due = Duration::from_secs_f64(sent as f64 / FLOOD_RATE as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        sent
    })
    .expect("entering the flood's namespace")
}

/// A Solicit flood from random DUIDs on one link cannot starve a client on another link: its
/// excess is dropped per line (`drop_line_budget` > 0), the global budget is never spent
/// (`drop_rate_limit` = 0), and dhclient on the other link binds while the flood goes on.
#[test]
fn a_solicit_flood_on_one_link_does_not_starve_another() {
    // The flood's thread and dhclient inherit it.
    dhcp_lab::pin_to_current_cpu().expect("pinning the test to one CPU");
    let state_dir =
        std::env::temp_dir().join(format!("dhcp-user-test-admission-{}", std::process::id()));
    let lab = LabServer::start_with_links(
        state_dir,
        &lab_config(&[], ""),
        true,
        false,
        &["fld"],
        // Without admission per line the flood alone would spend the global budget.
        &[
            "--pass-rate-per-cpu",
            GLOBAL_BUDGET,
            "--line-pass-budget",
            "10",
            "--line-pass-burst",
            "10",
        ],
    );
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = flood(&lab, 0, stop.clone());
    lab.wait_until(
        Duration::from_secs(20),
        "the flood's drops per line",
        || lab.xdp_counter(stat::DROP_LINE_BUDGET) > 100,
    );
    let out = lab.dhclient("admission", &["-1"]);
    let sent = {
        stop.store(true, Ordering::Relaxed);
        flooding.join().expect("the flood")
    };
    assert!(
        out.status.success(),
        "dhclient did not bind during the flood ({sent} Solicits): {}\nXDP: {}",
        String::from_utf8_lossy(&out.stderr),
        lab.xdp_counters()
    );
    let bindings = lab.bindings();
    assert!(
        bindings
            .iter()
            .any(|b| b.interface == lab.link.a.ifname && b.ia == "na" && b.state == "assigned"),
        "the other link's client holds a lease: {bindings:?}"
    );
    let dropped = lab.xdp_counter(stat::DROP_LINE_BUDGET);
    assert!(
        dropped > 0 && dropped < sent,
        "drops per line: {dropped} of {sent}; XDP: {}",
        lab.xdp_counters()
    );
    assert_eq!(
        lab.xdp_counter(stat::DROP_RATE_LIMIT),
        0,
        "the global budget was never reached; XDP: {}",
        lab.xdp_counters()
    );
    // The operator's view: `dhcp-user stats` lists the drops per line.
    let pin_root = lab.pin_root();
    let text = lab.cli(&["stats", "--pin-root", pin_root.to_str().unwrap()]);
    assert!(
        text.lines()
            .any(|l| l.contains("drop_line_budget") && !l.trim().ends_with(" 0")),
        "dhcp-user stats:\n{text}"
    );
    eprintln!(
        "flood: {sent} Solicits, {dropped} dropped per line; XDP: {}",
        lab.xdp_counters()
    );
}
