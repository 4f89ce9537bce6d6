//! perfdhcp renewing through the fast path, and the controller killed in the middle of the run:
//! the renewals keep being answered (by the pinned XDP program): perfdhcp counts every Renew it
//! sent answered, and the program's counters show answers after the kill.

mod server_common;

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use dhcp_common::stat;
use server_common::{lab_config, renew_exchanges, LabServer};

#[test]
fn renewals_keep_being_answered_while_the_controller_is_killed() {
    let mut lab = LabServer::start_with("xdp-perfdhcp", &lab_config(&[], ""), true);
    // 300 clients, 300 exchanges/s for 12 s (bounded by -p and the timeout), and 50 Renews/s.
    // perfdhcp renews each lease it obtained once, in order: with Renews far slower than new
    // leases, a backlog of leases to renew builds up before the kill and lasts well after it. (At
    // 250 Renews/s the backlog was empty at times, and then no Renew came after the kill.)
    let mut perfdhcp = lab
        .client_ns
        .command("timeout")
        .args(["40", "perfdhcp", "-6", "-l", &lab.link.b.ifname])
        .args([
            "-r", "300", "-R", "300", "-f", "50", "-p", "12", "-W", "2000000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running perfdhcp (kea-admin package)");

    // Let it bind clients and start renewing through the fast path.
    let deadline = Instant::now() + Duration::from_secs(15);
    while lab.xdp_counter(stat::TX_RENEW) < 100 {
        if Instant::now() > deadline {
            let _ = perfdhcp.kill();
            let out = perfdhcp.wait_with_output().unwrap();
            panic!(
                "no renewals answered by XDP; counters: {}; controller: {:?}; perfdhcp:\n{}{}",
                lab.xdp_counters(),
                lab.stats().counters.received,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    lab.kill9();
    let at_kill = lab.xdp_counter(stat::TX_RENEW);
    let out = perfdhcp.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    let after = lab.xdp_counter(stat::TX_RENEW);
    eprintln!(
        "renewals answered by XDP after the kill: {}; counters: {}",
        after - at_kill,
        lab.xdp_counters()
    );
    // At least two seconds' worth of Renews after the kill (about 290 here): the fast path went
    // on answering, not just the last few in flight.
    assert!(
        after >= at_kill + 100,
        "renewals answered after the controller was killed: {}; counters: {}",
        after - at_kill,
        lab.xdp_counters()
    );
    // perfdhcp's own account of the Renew-Reply exchanges over the whole run, kill included:
    // every Renew it sent was answered.
    let (sent, received) =
        renew_exchanges(&text).unwrap_or_else(|| panic!("perfdhcp's renew statistics:\n{text}"));
    assert!(sent > 0, "perfdhcp sent renews:\n{text}");
    assert!(
        received * 100 >= sent * 99,
        "Renew-Reply: {received} of {sent} answered:\n{text}"
    );
}
