//! What the controller would answer, on the link, to a frame the fast path sees: the server and
//! fast path configured alike, the request as its socket receives it, the reply's frame. Shared by
//! the differential tests (fastpath_differential.rs, fastpath_property.rs).
#![allow(dead_code)]

use std::net::{Ipv6Addr, SocketAddrV6};

use dhcp_common::dhcpv6::*;
use dhcp_testwire::Udp6Frame;
use dhcp_user::{config::Config, server::handler::Inbound};

use super::*;

pub mod tempdir {
    /// A directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(tag: &str) -> Dir {
            Dir::new_in(&std::env::temp_dir(), tag)
        }
        /// As `new`, under `base` (the property test keeps its store on tmpfs: /dev/shm).
        pub fn new_in(base: &std::path::Path, tag: &str) -> Dir {
            let path = base.join(format!("dhcp-diff-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

pub fn config(state_dir: &std::path::Path) -> Config {
    config_with(state_dir, "", "")
}

/// The same, with `pd_pool` added to the pd-pool's table (`, excluded-prefix = "…"`) and
/// `extra` after the subnet's keys (`[[subnet.option]]` tables, say).
pub fn config_with(state_dir: &std::path::Path, pd_pool: &str, extra: &str) -> Config {
    config_with_pools(state_dir, "", pd_pool, extra)
}

/// As [`config_with`], with `pool` added to the address pool's table (`, option = […]`).
pub fn config_with_pools(
    state_dir: &std::path::Path,
    pool: &str,
    pd_pool: &str,
    extra: &str,
) -> Config {
    let text = format!(
        r#"
server-duid = "{duid}"
state-dir = "{dir}"
interfaces = ["lo"]

[[subnet]]
prefix = "2001:db8:1::/64"
interface = "lo"
pools = [{{ low = "2001:db8:1::1000", high = "2001:db8:1::1fff"{pool} }}]
pd-pools = [{{ prefix = "2001:db8:8000::/40", delegated-length = 56{pd_pool} }}]
preferred-lifetime = {PREFERRED}
valid-lifetime = {VALID}
renew-timer = {T1}
rebind-timer = {T2}
rapid-commit = true
preference = 200
dns-servers = ["2001:db8:1::53"]
domain-search = ["lab.example"]
information-refresh-time = {INFO_REFRESH}
{extra}
"#,
        duid = hex(SERVER_DUID),
        dir = state_dir.display(),
    );
    Config::parse(&text, "differential.toml").expect("test config")
}

pub fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn inbound_direct(bytes: Vec<u8>) -> Inbound {
    Inbound {
        bytes,
        source: SocketAddrV6::new(client_ll(), CLIENT_PORT, 0, LO),
        destination: ALL_RELAYS_AND_SERVERS.into(),
        ifindex: LO,
        interface: "lo".into(),
        link: None,
    }
}

/// How a request reaches the server: straight from the client to ff02::1:2, or from a relay
/// at `from` sent to `to` (one of our addresses, or a group we joined).
#[derive(Clone, Copy)]
pub enum Path {
    Direct,
    Relay {
        from: Ipv6Addr,
        to: Ipv6Addr,
    },
    /// An LDRA on the link (RFC 6221): link-address `::`, the client's link-local peer-address.
    Ldra {
        from: Ipv6Addr,
        to: Ipv6Addr,
    },
    /// An LDRA behind an L3 relay at `from` (two hops: the relay's link-address names the link).
    LdraBehindRelay {
        from: Ipv6Addr,
        to: Ipv6Addr,
    },
}

pub fn ip(text: &str) -> Ipv6Addr {
    text.parse().unwrap()
}
/// A relay on the link using its link-local address (what relays do towards ff02::1:2).
pub fn relay_ll() -> Ipv6Addr {
    ip("fe80::4e")
}
pub const TO_RELAYS: &str = "ff02::1:2";
pub const TO_SERVERS: &str = "ff05::1:3";

/// The request frame for `payload` (a client message; wrapped in a Relay-Forw when relayed)
/// and what the controller's socket would have received.
pub fn request(path: Path, payload: Vec<u8>, vlans: &[(u16, u16)]) -> (Udp6Frame, Inbound) {
    let (mut frame, inbound) = match path {
        Path::Direct => (direct(payload.clone()), inbound_direct(payload)),
        Path::Relay { from, to } | Path::Ldra { from, to } | Path::LdraBehindRelay { from, to } => {
            let payload = match path {
                Path::Ldra { .. } => ldra_forw(payload, b"an-1/1/1:7"),
                Path::LdraBehindRelay { .. } => {
                    relay_forw(ldra_forw(payload, b"an-1/1/1:7"), Some(b"agg-1"))
                }
                _ => relay_forw(payload, Some(b"ge-0/0/1.100")),
            };
            let mut frame = relayed(payload.clone());
            frame.src_ip = from;
            frame.dst_ip = to;
            if to.is_multicast() {
                let group = to.octets();
                frame.dst_mac = [0x33, 0x33, group[12], group[13], group[14], group[15]];
            }
            let inbound = Inbound {
                bytes: payload,
                source: SocketAddrV6::new(from, SERVER_PORT, 0, 0),
                destination: to,
                ifindex: LO,
                interface: "lo".into(),
                link: None,
            };
            (frame, inbound)
        }
    };
    frame.vlans = vlans.to_vec();
    (frame, inbound)
}

/// The frame the controller's reply would be on the link: its payload, from the address
/// `netif::reply_source` picks, to the sender's address, port and MAC, VLAN tags kept.
pub fn controller_frame(request: &Udp6Frame, source: Ipv6Addr, payload: Vec<u8>) -> Udp6Frame {
    Udp6Frame {
        dst_mac: request.src_mac,
        src_mac: SERVER_MAC,
        vlans: request.vlans.clone(),
        src_ip: source,
        dst_ip: request.src_ip,
        hop_limit: 64,
        flow: 0,
        src_port: SERVER_PORT,
        dst_port: request.src_port,
        payload,
    }
}
