//! dhcp-user loads the XDP program built from dhcp-ebpf (embedded in the binary) and attaches
//! it to the server side of a lab link; traffic to port 547 goes through it and is counted.

use std::{
    net::SocketAddrV6,
    time::{Duration, Instant},
};

use dhcp_common::StatCounter;
use dhcp_lab::Lab;
use dhcp_user::fastpath::{AttachMode, FastPath};
use tests::any_udp_socket_in;

fn total_packets(stats: &[StatCounter]) -> u64 {
    stats.iter().map(|c| c.packets).sum()
}

#[test]
fn the_embedded_xdp_program_attaches_in_a_lab_namespace_and_counts_traffic() {
    let lab = Lab::new();
    let server = lab.namespace("srv").unwrap();
    let client = lab.namespace("cli").unwrap();
    let link = lab
        .link(
            &server,
            Some("2001:db8:1::1/64"),
            &client,
            Some("2001:db8:1::2/64"),
        )
        .unwrap();

    server
        .run_in(|| {
            // Attaching resolves the interface in this thread's namespace.
            let mut fastpath = FastPath::load(None).expect("loading the embedded XDP object");
            let mode = fastpath
                .attach(&link.a.ifname, AttachMode::Auto)
                .expect("attaching to the server-side veth");
            let shown = server
                .exec("ip", ["link", "show", "dev", &link.a.ifname])
                .unwrap();
            assert!(shown.contains("xdp"), "attached in {mode:?}: {shown}");

            let before = total_packets(&fastpath.stats().unwrap());
            // A Solicit-shaped datagram (type 1, transaction id) to the server's port 547.
            let sender = any_udp_socket_in(&client);
            let to = SocketAddrV6::new(link.a.link_local, 547, 0, link.b.ifindex);
            sender.send_to(&[1, 0x12, 0x34, 0x56], to).unwrap();

            let deadline = Instant::now() + Duration::from_secs(3);
            loop {
                let after = total_packets(&fastpath.stats().unwrap());
                if after > before {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "no STATS counter moved ({before} packets before and after)"
                );
                std::thread::sleep(Duration::from_millis(20));
            }

            // Not pinned: dropping the loader detaches the program.
            drop(fastpath);
            let shown = server
                .exec("ip", ["link", "show", "dev", &link.a.ifname])
                .unwrap();
            assert!(!shown.contains("xdp"), "still attached: {shown}");
        })
        .unwrap();
}

/// Maps pinned by an older version with another layout (here IFACES before it had a global
/// address, STATS with fewer reasons) are replaced on load, not reused: the kernel would bind
/// the new program to them and refuse it.
#[test]
fn pinned_maps_of_another_layout_are_replaced() {
    let root = dhcp_lab::lab_bpffs()
        .unwrap()
        .join(format!("layout-{}", std::process::id()));
    std::fs::create_dir_all(&root).unwrap();
    let old = [
        ("IFACES", "hash", "4", "32", "64"),
        ("STATS", "percpu_array", "4", "16", "21"),
    ];
    for (name, kind, key, value, entries) in old {
        let path = root.join(name);
        let out = std::process::Command::new("bpftool")
            .args(["map", "create"])
            .arg(&path)
            .args(["type", kind, "key", key, "value", value, "entries", entries])
            .args(["name", name])
            .output()
            .expect("bpftool (installed by cargo xtask)");
        assert!(out.status.success(), "bpftool map create: {out:?}");
    }
    // Loaded and dropped: the pins stay for the checks below.
    let loaded = FastPath::load(Some(&root)).map(drop);
    let ifaces = aya::maps::MapInfo::from_pin(root.join("IFACES")).map(|i| i.value_size());
    let stats = aya::maps::MapInfo::from_pin(root.join("STATS")).map(|i| i.max_entries());
    let _ = FastPath::unpin_all(&root);
    let _ = std::fs::remove_dir_all(&root);
    loaded.expect("loading over pins of an older layout");
    assert_eq!(
        ifaces.unwrap() as usize,
        std::mem::size_of::<dhcp_common::IfaceConfig>()
    );
    assert_eq!(stats.unwrap(), dhcp_common::stat::COUNT);
}
