//! QinQ lines with no VLAN interface on the server (issue 16 part 5): the client namespace's
//! lines put an 802.1ad S-VLAN tag outside an 802.1Q C-VLAN tag on its veth (`dhcp_lab::qinq`:
//! a TAP device per line, as the lab's kernel has no 802.1Q support for VLAN interfaces); the
//! server serves its plain veth, whose subnets name the lines (`vlans`). dhclient on each line
//! gets an address and a prefix of its line's subnet through the controller's tagged-frame path;
//! the renewals are answered in XDP; every reply the lines got carried both tags.

mod server_common;

use std::net::Ipv6Addr;
use std::time::Duration;

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
