//! dhcp-user loads the XDP program built from dhcp-ebpf (embedded in the binary) and attaches
//! it to the server side of a lab link; traffic to port 547 goes through it and is counted.

use std::{
    net::SocketAddrV6,
    time::{Duration, Instant},
};

use dhcp_common::StatCounter;
use dhcp_user::{
    fastpath::{AttachMode, FastPath},
    lab::Lab,
};
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
