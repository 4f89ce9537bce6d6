//! The lab: namespaces joined by veth pairs reach each other over IPv6 at once (link-local and
//! global), run processes and in-process sockets, and parallel labs do not collide.

use std::net::{Ipv6Addr, SocketAddrV6};

use dhcp_lab::Lab;
use tests::{any_udp_socket_in, netns_exists, ping6, udp_socket_in};

#[test]
fn two_namespaces_ping_each_other_over_link_local_and_global() {
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
    assert!(link.a.link_local.segments()[0] == 0xfe80);
    assert!(link.b.link_local.segments()[0] == 0xfe80);

    ping6(&client, &format!("{}%{}", link.a.link_local, link.b.ifname)).unwrap();
    ping6(&server, &format!("{}%{}", link.b.link_local, link.a.ifname)).unwrap();
    ping6(&client, "2001:db8:1::1").unwrap();
    ping6(&server, "2001:db8:1::2").unwrap();

    // The client side carries the pass-through XDP program; the server side carries none.
    let client_link = client
        .exec("ip", ["link", "show", "dev", &link.b.ifname])
        .unwrap();
    assert!(client_link.contains("xdp"), "{client_link}");
    let server_link = server
        .exec("ip", ["link", "show", "dev", &link.a.ifname])
        .unwrap();
    assert!(!server_link.contains("xdp"), "{server_link}");
}

#[test]
fn in_process_sockets_live_in_their_namespace() {
    let lab = Lab::new();
    let server = lab.namespace("srv").unwrap();
    let client = lab.namespace("cli").unwrap();
    let link = lab.link(&server, None, &client, None).unwrap();

    let listener = udp_socket_in(
        &server,
        SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 5547, 0, 0),
    );
    let sender = any_udp_socket_in(&client);
    // Used from this (root-namespace) thread, both sockets stay in their namespaces.
    let to = SocketAddrV6::new(link.a.link_local, 5547, 0, link.b.ifindex);
    sender.send_to(b"hello", to).unwrap();
    let mut buf = [0u8; 16];
    let (len, from) = listener.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..len], b"hello");
    match from {
        std::net::SocketAddr::V6(from) => assert_eq!(*from.ip(), link.b.link_local),
        other => panic!("IPv4 peer {other}"),
    }

    // A thread started in the namespace sees the namespace's interfaces only.
    let ifname = link.a.ifname.clone();
    let seen = server
        .spawn_in(move || {
            // /proc/thread-self/net: this thread's namespace (/proc/self/net is the process's).
            std::fs::read_to_string("/proc/thread-self/net/dev")
                .unwrap()
                .contains(&ifname)
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(seen);
}

#[test]
fn processes_started_in_a_namespace_die_with_it() {
    let lab = Lab::new();
    let ns = lab.namespace("proc").unwrap();
    let mut child = ns.spawn("sleep", ["600"]).unwrap();
    let name = ns.name().to_string();
    // `ip netns exec` execs the program: wait until it is the sleep, in the namespace.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !ns.pids().unwrap().contains(&child.id()) {
        assert!(
            std::time::Instant::now() < deadline,
            "sleep never entered {name}"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    drop(ns);
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed, not exited: {status}");
    assert!(!netns_exists(&name));
}

#[test]
fn processes_that_ignore_sigterm_are_killed() {
    let lab = Lab::new();
    let ns = lab.namespace("stubborn").unwrap();
    // `trap "" TERM` is inherited by the sleep: neither exits on SIGTERM.
    let mut child = ns
        .spawn("sh", ["-c", "trap '' TERM; sleep 600 & wait"])
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while ns.pids().unwrap().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "sleep never started");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let name = ns.name().to_string();
    let started = std::time::Instant::now();
    drop(ns);
    assert!(started.elapsed() >= dhcp_lab::TERM_GRACE);
    assert!(!child.wait().unwrap().success());
    assert!(!netns_exists(&name));
}

#[test]
fn processes_in_a_namespace_see_the_bpf_filesystem() {
    // A server started in the lab pins its maps under /sys/fs/bpf (`cargo xtask test` mounts
    // the BPF filesystem there first).
    let lab = Lab::new();
    let ns = lab.namespace("bpffs").unwrap();
    let fs_type = ns.exec("stat", ["-f", "-c", "%T", "/sys/fs/bpf"]).unwrap();
    assert_eq!(fs_type.trim(), "bpf_fs");
}

#[test]
fn parallel_labs_do_not_collide() {
    let workers: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let lab = Lab::new();
                let server = lab.namespace("srv").unwrap();
                let client = lab.namespace("cli").unwrap();
                // Same addresses in every lab: each lab is its own little network.
                let link = lab
                    .link(
                        &server,
                        Some("2001:db8:1::1/64"),
                        &client,
                        Some("2001:db8:1::2/64"),
                    )
                    .unwrap();
                ping6(&client, "2001:db8:1::1").unwrap();
                (i, server.name().to_string(), link.a.ifname.clone())
            })
        })
        .collect();
    let mut names: Vec<String> = workers.into_iter().map(|w| w.join().unwrap().1).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 4);
}
