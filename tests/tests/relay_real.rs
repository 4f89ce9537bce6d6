//! Real relays in front of the fast path: ISC `dhcrelay -6` in a middle namespace forwarding
//! upstream by multicast (ff02::1:2, and its default All_DHCP_Servers ff05::1:3) with ISC
//! dhclient behind it, and Kea's `perfdhcp -A1` (relayed mode). The renewals are answered by XDP
//! and reach the relay: the client gets its replies, never rebinds, and the store's expiry moves
//! on.

mod server_common;

use std::{process::Stdio, time::Duration};

use dhcp_common::stat;
use dhcp_user::control::Binding;
use server_common::relay::RelayLab;
use server_common::{lab_config, renew_exchanges, LabServer};

/// The subnet behind the relay (dhcrelay's link-address is its lower interface's address),
/// addresses and prefixes, with lifetimes short enough that dhclient renews every 2 s.
const RELAYED_SUBNET: &str = r#"
[[subnet]]
id = 2
prefix = "2001:db8:2::/64"
pools = [{ low = "2001:db8:2::100", high = "2001:db8:2::1ff" }]
pd-pools = [{ prefix = "2001:db8:9000::/40", delegated-length = 56 }]
preferred-lifetime = 8
valid-lifetime = 16
renew-timer = 2
rebind-timer = 4
"#;

fn relayed_config() -> String {
    lab_config(&[], RELAYED_SUBNET)
}

impl RelayLab {
    /// `dhclient -6 -N -P -1` behind the relay, an address and a prefix (it stays behind as a
    /// daemon and renews).
    fn dhclient(&self, tag: &str) -> std::process::Output {
        let dir = &self.server.state_dir;
        let script = dhcp_lab::dhclient::write_dhclient_script(dir).unwrap();
        let (leases, pid) = server_common::dhclient_files(dir, tag);
        self.client_ns
            .command("timeout")
            .args(["30", "dhclient", "-6", "-N", "-P", "-1", "-v", "-sf"])
            .arg(&script)
            .arg("-lf")
            .arg(&leases)
            .arg("-pf")
            .arg(&pid)
            .arg(&self.lower.b.ifname)
            .stdin(Stdio::null())
            .output()
            .expect("running dhclient")
    }

    /// Leases dhclient recorded (one `lease6` block per Reply it accepted: the first binding,
    /// then each renewal).
    fn dhclient_replies(&self, tag: &str) -> usize {
        let (leases, _) = server_common::dhclient_files(&self.server.state_dir, tag);
        std::fs::read_to_string(leases)
            .unwrap_or_default()
            .matches("lease6 {")
            .count()
    }

    fn xdp(&self, index: u32) -> u64 {
        self.server.xdp_counter(index)
    }

    /// Waits for three renewals of dhclient `tag` (which had `replies_at_bind` replies when it
    /// bound) answered by XDP and recorded by it; the controller sees no Renew.
    fn three_renewals_in_xdp(&self, tag: &str, replies_at_bind: usize) {
        self.server.wait_until(
            Duration::from_secs(30),
            "three renewals answered by XDP and recorded by dhclient",
            || self.xdp(stat::TX_RENEW) >= 3 && self.dhclient_replies(tag) >= replies_at_bind + 3,
        );
        assert_eq!(
            self.controller_received("renew"),
            0,
            "the controller must see no Renew; fast path: {}",
            self.server.xdp_counters()
        );
    }

    /// Stops dhclient `tag` (it stays behind as a daemon).
    fn stop_dhclient(&self, tag: &str) {
        let (_, pid) = server_common::dhclient_files(&self.server.state_dir, tag);
        if let Ok(pid) = std::fs::read_to_string(pid) {
            let _ = std::process::Command::new("kill").arg(pid.trim()).status();
        }
    }

    fn controller_received(&self, kind: &str) -> u64 {
        self.server
            .stats()
            .counters
            .received
            .get(kind)
            .copied()
            .unwrap_or(0)
    }
}

/// dhclient gets an address and a prefix through the relay from the controller; then XDP
/// answers its renewals of both, which reach it through the relay: it records each Reply, never
/// rebinds, the controller sees no Renew, and the store's expiries move on.
fn renewals_through_the_relay_are_answered_in_the_kernel(lab: RelayLab) {
    let out = lab.dhclient("relayed");
    assert!(
        out.status.success(),
        "dhclient -6 behind dhcrelay failed:\n{}\nrelay:\n{}",
        String::from_utf8_lossy(&out.stderr),
        lab.relay_text()
    );
    let mut first: Vec<Binding> = lab.server.bindings();
    first.sort_by(|a, b| a.ia.cmp(&b.ia));
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(
        first[0].ia == "na" && first[0].lease.starts_with("2001:db8:2::"),
        "{first:?}"
    );
    assert!(
        first[1].ia == "pd" && first[1].lease.starts_with("2001:db8:9"),
        "{first:?}"
    );
    let replies_at_bind = lab.dhclient_replies("relayed");
    // T1 = 2 s, T2 = 4 s: a renewal lost on the way back would turn into a Rebind within 2 s.
    lab.three_renewals_in_xdp("relayed", replies_at_bind);
    assert_eq!(
        lab.xdp(stat::TX_REBIND) + lab.controller_received("rebind"),
        0,
        "every renewal reached the client, so it never rebinds; fast path: {}",
        lab.server.xdp_counters()
    );
    lab.server.wait_until(
        Duration::from_secs(10),
        "the store's expiries to move on",
        || {
            let now = lab.server.bindings();
            first.iter().all(|old| {
                now.iter()
                    .any(|b| b.lease == old.lease && b.expires > old.expires)
            })
        },
    );
    lab.stop_dhclient("relayed");
}

/// dhcrelay forwarding to ff02::1:2 on its upstream link: the replies XDP sends leave from the
/// server's link-local address (never from the group) and reach the relay.
#[test]
fn dhcrelay_to_ff02_renewals_are_answered_by_xdp() {
    let lab = RelayLab::start("relay-ff02", &relayed_config(), |up| {
        format!("ff02::1:2%{up}")
    });
    renewals_through_the_relay_are_answered_in_the_kernel(lab);
}

/// dhcrelay given only its upstream interface sends to All_DHCP_Servers (ff05::1:3; without the
/// server joining that group this client gets no address at all), and XDP answers those
/// renewals as well.
#[test]
fn dhcrelay_to_ff05_renewals_are_answered_by_xdp() {
    let lab = RelayLab::start("relay-ff05", &relayed_config(), |up| up.to_string());
    renewals_through_the_relay_are_answered_in_the_kernel(lab);
}

/// A client class on the relay's Interface-ID (ISC dhcrelay `-I`, the lower interface given
/// index 7: the 4 bytes 07 00 00 00) keeps a pool for the clients behind that port: dhclient
/// gets its address and prefix there through the relay, and XDP answers its renewals, which
/// carry the same Interface-ID (the binding's relay class value), with no `pass_class_inputs`.
#[test]
fn dhcrelay_interface_id_class_renewals_are_answered_by_xdp() {
    let config = lab_config(
        &[],
        &format!(
            "{}\n[[client-classes]]\nname = \"port-7\"\n\
             relay-interface-id = \"\\u0007\\u0000\\u0000\\u0000\"\n\
             [[client-classes.option]]\nname = \"sntp-servers\"\nvalue = [\"2001:db8:2::123\"]\n",
            RELAYED_SUBNET.replace(
                r#"pools = [{ low = "2001:db8:2::100", high = "2001:db8:2::1ff" }]"#,
                r#"pools = [{ low = "2001:db8:2::700", high = "2001:db8:2::7ff", client-classes = ["port-7"] }]"#,
            )
        ),
    );
    let lab = RelayLab::start_with_interface_id(
        "relay-iid-class",
        &config,
        |up| format!("ff02::1:2%{up}"),
        Some(7),
    );
    let out = lab.dhclient("iid");
    assert!(
        out.status.success(),
        "dhclient -6 behind dhcrelay -I failed:\n{}\nrelay:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        lab.relay_text(),
        lab.server.log()
    );
    let bindings = lab.server.bindings();
    assert!(
        bindings
            .iter()
            .any(|b| b.ia == "na" && b.lease.starts_with("2001:db8:2::7")),
        "an address of the class's pool: {bindings:?}"
    );
    let replies_at_bind = lab.dhclient_replies("iid");
    lab.three_renewals_in_xdp("iid", replies_at_bind);
    assert_eq!(
        lab.xdp(stat::PASS_CLASS_INPUTS) + lab.xdp(stat::PASS_CLIENT_CLASS),
        0,
        "{}",
        lab.server.xdp_counters()
    );
    lab.stop_dhclient("iid");
}

/// perfdhcp in relayed mode (-A1: every message in a Relay-Forw, sent to ff02::1:2): with the
/// fast path on, its relayed Renews are answered by XDP and fewer than 1 % go unanswered.
#[test]
fn perfdhcp_relayed_renews_are_answered_by_xdp() {
    let lab = LabServer::start_with("relay-perfdhcp", &lab_config(&[], ""), true);
    let out = lab
        .client_ns
        .command("timeout")
        .args(["40", "perfdhcp", "-6", "-A1", "-l", &lab.link.b.ifname])
        .args([
            "-r", "200", "-R", "200", "-f", "100", "-p", "10", "-W", "2000000",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("running perfdhcp (kea-admin package)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let (sent, received) =
        renew_exchanges(&text).unwrap_or_else(|| panic!("perfdhcp's renew statistics:\n{text}"));
    let by_xdp = lab.xdp_counter(stat::TX_RENEW);
    eprintln!(
        "relayed Renews: {received} of {sent} answered, {by_xdp} by XDP; fast path: {}",
        lab.xdp_counters()
    );
    assert!(sent >= 100, "perfdhcp sent relayed Renews:\n{text}");
    assert!(
        by_xdp * 100 >= sent * 99,
        "XDP answered {by_xdp} of {sent} relayed Renews; fast path: {}",
        lab.xdp_counters()
    );
    assert!(
        received * 100 >= sent * 99,
        "Renew-Reply: {received} of {sent} answered:\n{text}"
    );
}
