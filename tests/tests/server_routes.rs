//! Routes for delegated prefixes (`[routes]`, the BNG role) with ISC dhclient on the server's
//! link: `ip -6 route show proto 200` in the server namespace shows the prefix via the client's
//! link-local address on the server's veth once it is granted, and not once it is released,
//! cleared or expired; a server killed and restarted re-syncs the routes with its leases.

mod server_common;

use std::time::Duration;

use server_common::{dhclient_files, lab_config, LabServer};

/// The protocol number of our routes (the default of `[routes] protocol`).
const PROTO: &str = "200";

fn routes_config(replace: &[(&str, &str)]) -> String {
    lab_config(replace, "\n[routes]\nenabled = true\n")
}

/// `ip -6 route show proto 200` in the server namespace.
fn our_routes(lab: &LabServer) -> String {
    lab.server_ns
        .exec("ip", ["-6", "route", "show", "proto", PROTO])
        .expect("ip -6 route")
}

/// The client's link-local address on its veth.
fn client_link_local(lab: &LabServer) -> String {
    let text = lab
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
        .expect("ip -6 addr");
    let word = text
        .split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .unwrap_or_else(|| panic!("no link-local address on the client's veth: {text}"));
    word.split('/').next().unwrap().to_string()
}

/// The one delegated prefix of the binding table.
fn delegated(lab: &LabServer) -> String {
    let rows = lab.bindings();
    let row = rows
        .iter()
        .find(|r| r.ia == "pd" && r.state == "assigned")
        .unwrap_or_else(|| panic!("no delegated prefix: {rows:?}"));
    row.lease.clone()
}

/// The route the test expects for `prefix`: `prefix via <client fe80::> dev <server veth>`.
fn expected_route(lab: &LabServer, prefix: &str) -> String {
    format!(
        "{prefix} via {} dev {}",
        client_link_local(lab),
        lab.link.a.ifname
    )
}

fn dhclient_pd(lab: &LabServer, tag: &str) {
    let out = lab.dhclient(tag, &["-P", "-1"]);
    assert!(
        out.status.success(),
        "dhclient -6 -P failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A granted prefix gets its route via the client's link-local address on the server's
/// interface; `dhclient -r` (Release) removes it, and so does `dhcp-user clear`.
#[test]
fn route_follows_grant_release_and_clear() {
    let lab = LabServer::start("routes-life", &routes_config(&[]));
    dhclient_pd(&lab, "pd");
    let prefix = delegated(&lab);
    let expected = expected_route(&lab, &prefix);
    lab.wait_until(Duration::from_secs(5), "the route", || {
        our_routes(&lab).contains(&expected)
    });

    let out = lab.dhclient("pd", &["-P", "-r"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab.wait_until(Duration::from_secs(10), "the route gone on release", || {
        !our_routes(&lab).contains(&prefix)
    });

    // Granted again (the same prefix for the same client), then cleared by the operator.
    dhclient_pd(&lab, "pd");
    lab.wait_until(Duration::from_secs(5), "the route back", || {
        our_routes(&lab).contains(&expected)
    });
    lab.cli(&["clear", "--all"]);
    lab.wait_until(Duration::from_secs(5), "the route gone on clear", || {
        !our_routes(&lab).contains(&prefix)
    });
    kill_dhclient(&lab, "pd");
}

/// Killed with its route deleted by hand and a stale route of our protocol added (and a static
/// route of someone else beside it), the restarted server adds the missing route back, removes
/// the stale one and leaves the other's alone.
#[test]
fn restart_resyncs_routes_with_the_leases() {
    let mut lab = LabServer::start("routes-resync", &routes_config(&[]));
    dhclient_pd(&lab, "pd");
    kill_dhclient(&lab, "pd");
    let prefix = delegated(&lab);
    let expected = expected_route(&lab, &prefix);
    lab.wait_until(Duration::from_secs(5), "the route", || {
        our_routes(&lab).contains(&expected)
    });
    lab.kill9();
    let dev = lab.link.a.ifname.clone();
    ip(&lab, &["-6", "route", "del", &prefix, "proto", PROTO]);
    ip(
        &lab,
        &[
            "-6",
            "route",
            "add",
            "2001:db8:ffff::/48",
            "via",
            "fe80::99",
            "dev",
            &dev,
            "proto",
            PROTO,
        ],
    );
    ip(
        &lab,
        &[
            "-6",
            "route",
            "add",
            "2001:db8:eeee::/48",
            "via",
            "fe80::98",
            "dev",
            &dev,
            "proto",
            "static",
        ],
    );
    assert!(!our_routes(&lab).contains(&prefix));

    lab.start_server();
    lab.wait_until(Duration::from_secs(10), "the re-sync", || {
        let ours = our_routes(&lab);
        ours.contains(&expected) && !ours.contains("2001:db8:ffff::/48")
    });
    let statics = ip(&lab, &["-6", "route", "show", "proto", "static"]);
    assert!(statics.contains("2001:db8:eeee::/48"), "{statics}");
}

/// A prefix whose client went away is removed with its lease when the valid lifetime runs out
/// (the reclaim timer's expiry).
#[test]
fn route_goes_when_the_lease_expires() {
    let config = routes_config(&[
        // Long enough for a loaded machine to see the route before the lease ends.
        ("preferred-lifetime", "10"),
        ("valid-lifetime", "12"),
        ("renew-timer", "2"),
        ("rebind-timer", "3"),
    ]);
    let lab = LabServer::start("routes-expiry", &config);
    dhclient_pd(&lab, "pd");
    // The client goes silent: no Renew, no Release.
    kill_dhclient(&lab, "pd");
    let prefix = delegated(&lab);
    lab.wait_until(Duration::from_secs(5), "the route", || {
        our_routes(&lab).contains(&prefix)
    });
    lab.wait_until(Duration::from_secs(30), "the route gone on expiry", || {
        !our_routes(&lab).contains(&prefix)
    });
    let rows = lab.bindings();
    assert!(
        rows.iter().all(|r| r.state != "assigned"),
        "the lease expired: {rows:?}"
    );
}

/// `ip <args>` in the server namespace.
fn ip(lab: &LabServer, args: &[&str]) -> String {
    lab.server_ns
        .exec("ip", args.iter().copied())
        .unwrap_or_else(|e| panic!("ip {args:?}: {e}"))
}

/// Stops the dhclient daemon of `tag` (SIGKILL: it sends nothing on the way out).
fn kill_dhclient(lab: &LabServer, tag: &str) {
    let (_, pid_file) = dhclient_files(&lab.state_dir, tag);
    if let Ok(text) = std::fs::read_to_string(&pid_file) {
        let pid = text.trim();
        if !pid.is_empty() {
            let _ = std::process::Command::new("kill")
                .args(["-9", pid])
                .status();
        }
    }
}
