//! Kea's perfdhcp against the server in a lab: four-way exchanges plus renews, run clean (no
//! exchange lost, exit status 0), and the binding table holds the clients it bound.

mod server_common;

use server_common::{lab_config, LabServer};

/// Runs perfdhcp in the client namespace; returns (exit code, stdout + stderr).
pub fn perfdhcp(lab: &LabServer, args: &[&str]) -> (Option<i32>, String) {
    let out = lab
        .client_ns
        .command("timeout")
        .args(["60", "perfdhcp", "-6", "-l", &lab.link.b.ifname])
        .args(args)
        .output()
        .expect("running perfdhcp (kea-admin package)");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn perfdhcp_exchanges_and_renews_run_clean() {
    let lab = LabServer::start("perfdhcp", &lab_config(&[], ""));
    // 200 exchanges/s from 500 simulated clients, 1000 exchanges, renews at 100/s; waiting 2 s
    // after the last packet for the answers still in flight.
    let (code, text) = perfdhcp(
        &lab,
        &[
            "-r", "200", "-R", "500", "-n", "1000", "-f", "100", "-W", "2000000",
        ],
    );
    eprintln!("{text}");
    assert_eq!(code, Some(0), "perfdhcp did not run clean:\n{text}");
    let stats = lab.stats().counters;
    assert!(
        stats.received.get("solicit").copied().unwrap_or(0) >= 1000,
        "{stats:?}"
    );
    assert!(
        stats.received.get("request").copied().unwrap_or(0) >= 900,
        "{stats:?}"
    );
    assert!(
        stats.received.get("renew").copied().unwrap_or(0) >= 1,
        "{stats:?}"
    );
    let rows = lab.bindings();
    let assigned = rows.iter().filter(|r| r.state == "assigned").count();
    // At most one binding per simulated client, each address once.
    assert!(assigned > 0 && assigned <= 500, "{assigned} bindings");
    let mut leases: Vec<&str> = rows.iter().map(|r| r.lease.as_str()).collect();
    leases.sort();
    leases.dedup();
    assert_eq!(leases.len(), rows.len());
}
