//! QinQ lines with no VLAN interface on the server (issue 16 part 5): the client namespace has
//! an 802.1ad S-VLAN interface on its veth and 802.1Q C-VLAN interfaces on that; the server
//! serves its plain veth, whose subnets name the lines (`vlans`). dhclient on each line gets an
//! address and a prefix of its line's subnet through the controller's tagged-frame path; the
//! renewals are answered in XDP; the replies on the wire carry both tags.

mod server_common;

use std::net::Ipv6Addr;
use std::time::Duration;

use dhcp_common::stat;
use dhcp_lab::{vlan_interface, VethEnd, VlanProto};
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

/// The client side of the QinQ lines: S-VLAN 100 on the client's veth, C-VLANs 10 and 11 on it,
/// each C-VLAN interface with a MAC (and so a DUID) of its own.
fn lines(lab: &LabServer) -> (VethEnd, VethEnd) {
    let ns = &lab.client_ns;
    let veth = &lab.link.b.ifname;
    let outer = format!("{veth}.100");
    vlan_interface(ns, veth, &outer, VlanProto::Dot1ad, 100, None).expect("the S-VLAN");
    let line = |id: u16| {
        vlan_interface(
            ns,
            &outer,
            &format!("{outer}.{id}"),
            VlanProto::Dot1q,
            id,
            Some([0x02, 0x51, 0, 0, 100, id as u8]),
        )
        .expect("a C-VLAN")
    };
    (line(10), line(11))
}

/// The address and the prefix `dhclient` bound on `iface`, from its lease file.
fn bound(lab: &LabServer, iface: &VethEnd, tag: &str) -> (Ipv6Addr, Ipv6Addr) {
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
        let rest = &text[text.rfind(key).unwrap_or_else(|| panic!("{key} in {text}")) + key.len()..];
        let word = rest.split_whitespace().next().unwrap_or("");
        let word = word.split('/').next().unwrap_or("");
        word.parse()
            .unwrap_or_else(|_| panic!("{key} {word} in {text}"))
    };
    (after("iaaddr "), after("iaprefix "))
}

/// dhclient on the (100, 10) line gets an address and a /56 of subnet 100, on (100, 11) of
/// subnet 101; no VLAN interface on the server; the renewals are answered in XDP and the replies
/// carry the line's two tags, 802.1ad 100 outside 802.1Q 10.
#[test]
fn qinq_lines_get_their_subnets_renew_in_xdp_and_keep_their_tags() {
    let lab = LabServer::start_with("qinq", &config(), true);
    let (line10, line11) = lines(&lab);

    let (address, prefix) = bound(&lab, &line10, "q10");
    // The first 48 or 64 bits: the subnet's prefix, or the pd-pool's.
    let in_net = |net: &str, a: Ipv6Addr| {
        let (base, len) = net.split_once('/').unwrap();
        let (base, len): (Ipv6Addr, u32) = (base.parse().unwrap(), len.parse().unwrap());
        (u128::from(a) ^ u128::from(base)) >> (128 - len) == 0
    };
    assert!(in_net("2001:db8:100::/64", address), "{address}");
    assert!(in_net("2001:db8:a100::/48", prefix), "{prefix}");
    let (address, prefix) = bound(&lab, &line11, "q11");
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
        .unwrap();
    assert_eq!(server_links.trim(), "", "no VLAN interface on the server");

    // The wire: the client's veth sees the renewals' replies with both tags.
    let capture = lab
        .client_ns
        .command("timeout")
        .args(["12", "tshark", "-l", "-n", "-i", &lab.link.b.ifname])
        // A display filter: the kernel hands the capture the outer tag as metadata (libpcap puts
        // it back), so a capture filter on the TPID would miss it.
        .args(["-a", "duration:10", "-Y", "vlan && udp.srcport == 547", "-T", "fields"])
        .args(["-e", "vlan.etype", "-e", "vlan.id", "-e", "ipv6.dst"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running tshark");
    let replies = String::from_utf8_lossy(&capture.stdout).into_owned();
    let line10_replies = replies
        .lines()
        .filter(|l| l.contains(&line10.link_local.to_string()))
        .collect::<Vec<_>>();
    assert!(
        !line10_replies.is_empty(),
        "replies to {} on the wire: {replies}\n{}",
        line10.link_local,
        String::from_utf8_lossy(&capture.stderr)
    );
    for reply in &line10_replies {
        let fields: Vec<&str> = reply.split('\t').collect();
        assert_eq!(fields[1], "100,10", "the S-VLAN, then the C-VLAN: {reply}");
        assert!(fields[0].starts_with("0x8100,"), "the 802.1Q tag inside: {reply}");
    }

    // The renewals were answered in XDP: with T1 = 2 s, several in the capture's 10 s.
    let renewals = lab.xdp_counter(stat::TX_RENEW);
    assert!(
        renewals >= 2,
        "renewals answered in XDP: {renewals}; {}",
        lab.xdp_counters()
    );
    let _ = lab.dhclient_on(&line10.ifname, "q10", &["-r"]);
    let _ = lab.dhclient_on(&line11.ifname, "q11", &["-r"]);
}
