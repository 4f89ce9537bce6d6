//! Shared helpers for the integration tests.
//!
//! The tests need root and BPF (`cargo xtask test` checks both before running them): they
//! create network namespaces with `dhcp_lab` and load XDP programs.

use std::{
    net::{Ipv6Addr, SocketAddrV6, UdpSocket},
    process::Command,
    time::Duration,
};

use dhcp_lab::{LabError, Namespace};

/// The named network namespaces that exist now (`ip netns list`).
pub fn netns_names() -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("running ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

pub fn netns_exists(name: &str) -> bool {
    netns_names().iter().any(|n| n == name)
}

/// Interface names in the caller's namespace (`ip -o link show`).
pub fn root_links() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .expect("running ip link show");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_string())
        .collect()
}

/// One ICMPv6 echo from `from` to `target` (`fe80::1%v0-srv` or a global address).
pub fn ping6(from: &Namespace, target: &str) -> Result<String, LabError> {
    from.exec("ping", ["-6", "-n", "-c", "1", "-W", "3", target])
}

/// A UDP socket bound to `addr` inside `ns` (it stays in `ns` whichever thread uses it).
pub fn udp_socket_in(ns: &Namespace, addr: SocketAddrV6) -> UdpSocket {
    let socket = ns
        .run_in(move || UdpSocket::bind(addr))
        .expect("entering the namespace")
        .unwrap_or_else(|e| panic!("binding {addr} in {}: {e}", ns.name()));
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("setting a read timeout");
    socket
}

/// `[::]:0` inside `ns`.
pub fn any_udp_socket_in(ns: &Namespace) -> UdpSocket {
    udp_socket_in(ns, SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0))
}
