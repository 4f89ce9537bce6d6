//! ISC dhclient against the server in a lab: an address (obtain, renew, release) and a
//! delegated prefix, each step visible in the binding table.

mod server_common;

use std::time::Duration;

use server_common::{lab_config, LabServer};

fn short_lifetimes() -> String {
    lab_config(
        &[
            ("preferred-lifetime", "8"),
            ("valid-lifetime", "16"),
            ("renew-timer", "2"),
            ("rebind-timer", "4"),
        ],
        "",
    )
}

#[test]
fn dhclient_gets_renews_and_releases_an_address() {
    let lab = LabServer::start("dhclient-na", &short_lifetimes());
    let out = lab.dhclient("na", &["-1"]);
    assert!(
        out.status.success(),
        "dhclient -6 failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Bound: one address from the pool, assigned, on the server's interface.
    let rows = lab.bindings();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let first = rows[0].clone();
    assert_eq!(
        (first.ia.as_str(), first.state.as_str()),
        ("na", "assigned")
    );
    assert!(first.lease.starts_with("2001:db8:1::"), "{first:?}");
    assert_eq!(first.interface, lab.link.a.ifname);
    let table = lab.cli(&["bindings"]);
    assert!(
        table.contains(&first.lease) && table.contains("assigned"),
        "{table}"
    );
    // The address is on the client's interface.
    let addrs = lab
        .client_ns
        .exec("ip", ["-6", "addr", "show", "dev", &lab.link.b.ifname])
        .unwrap();
    assert!(addrs.contains(&first.lease), "{addrs}");

    // T1 is 2 s: the running dhclient renews and the expiry moves forward.
    lab.wait_until(Duration::from_secs(20), "a renewal", || {
        let rows = lab.bindings();
        rows.len() == 1 && rows[0].expires > first.expires && rows[0].lease == first.lease
    });
    assert!(
        lab.stats()
            .counters
            .received
            .get("renew")
            .copied()
            .unwrap_or(0)
            >= 1
    );

    // dhclient -r releases (and stops the daemon).
    let out = lab.dhclient("na", &["-r"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let release_log = String::from_utf8_lossy(&out.stderr).into_owned();
    lab.wait_until(
        Duration::from_secs(10),
        &format!("the release ({release_log})"),
        || {
            lab.bindings()
                .iter()
                .any(|r| r.lease == first.lease && r.state == "released")
        },
    );
    let json = lab.cli(&["bindings", "--json"]);
    assert!(json.contains("\"released\""), "{json}");
    let stats = lab.stats().counters;
    for msg in ["solicit", "request", "renew", "release"] {
        assert!(
            stats.received.get(msg).copied().unwrap_or(0) >= 1,
            "{msg}: {stats:?}"
        );
    }
    assert!(
        stats.sent.get("reply").copied().unwrap_or(0) >= 3,
        "{stats:?}"
    );
}

#[test]
fn dhclient_gets_a_delegated_prefix() {
    let lab = LabServer::start("dhclient-pd", &lab_config(&[], ""));
    let out = lab.dhclient("pd", &["-P", "-1"]);
    assert!(
        out.status.success(),
        "dhclient -6 -P failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = lab.bindings();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].ia, "pd");
    assert_eq!(rows[0].lease, "2001:db8:8000::/56");
    assert_eq!(rows[0].state, "assigned");
    let text = lab.cli(&["stats"]);
    assert!(
        text.contains("solicit") && text.contains("subnet 1"),
        "{text}"
    );
}
