//! The served interfaces as the controller knows them (index, MAC, addresses), kept current
//! while serving, and the one rule for the IPv6 source of a reply ([`reply_source`]), which the
//! controller's sockets use and the XDP fast path follows from what [`IfaceInfo::fast_path_sources`]
//! puts in its `IFACES` map.

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tracing::info;

/// How often the addresses of the served interfaces are read again (an operator may add or
/// remove one while serving; replies follow within this time).
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(2);

/// What the controller knows of a served interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IfaceInfo {
    pub name: String,
    pub ifindex: u32,
    pub mac: [u8; 6],
    /// Its link-local address (unspecified when it has none).
    pub link_local: Ipv6Addr,
    /// Its global and unique-local addresses with their prefix lengths, in the kernel's order
    /// (to find the subnet of directly attached clients, and the source of replies to global
    /// addresses).
    pub addresses: Vec<(Ipv6Addr, u8)>,
}

/// `names` with every pattern (`*`, `?`: [`crate::config::interface_matches`]) replaced by the
/// host's interfaces it matches now (in name order, from /sys/class/net); a pattern that
/// matches none is an error naming it. Interfaces that appear later are not added.
pub fn expand_interface_patterns(names: &[String]) -> Result<Vec<String>, String> {
    let mut host: Option<Vec<String>> = None;
    let mut out: Vec<String> = Vec::new();
    for name in names {
        if !crate::config::is_interface_pattern(name) {
            if !out.contains(name) {
                out.push(name.clone());
            }
            continue;
        }
        let host = host.get_or_insert_with(|| {
            let mut all: Vec<String> = std::fs::read_dir("/sys/class/net")
                .map(|dir| {
                    dir.filter_map(|e| e.ok()?.file_name().into_string().ok())
                        .collect()
                })
                .unwrap_or_default();
            all.sort();
            all
        });
        let matched: Vec<&String> = host
            .iter()
            .filter(|iface| crate::config::interface_matches(name, iface))
            .collect();
        if matched.is_empty() {
            return Err(format!(
                "interface pattern `{name}` matches no interface of this host"
            ));
        }
        for iface in matched {
            if !out.contains(iface) {
                out.push(iface.clone());
            }
        }
    }
    Ok(out)
}

/// `fe80::/10`.
pub fn is_link_local(address: &Ipv6Addr) -> bool {
    address.segments()[0] & 0xffc0 == 0xfe80
}

/// An address a reply to a global destination may leave from: unicast, not loopback, not
/// link-local.
fn is_global_source(address: &Ipv6Addr) -> bool {
    !address.is_unspecified()
        && !address.is_loopback()
        && !address.is_multicast()
        && !is_link_local(address)
}

impl IfaceInfo {
    /// Reads the interface's index, MAC and addresses from the kernel.
    pub fn discover(name: &str) -> std::io::Result<IfaceInfo> {
        let ifindex = nix::net::if_::if_nametoindex(name).map_err(|errno| {
            std::io::Error::new(
                std::io::Error::from(errno).kind(),
                format!("interface {name}: {errno}"),
            )
        })?;
        let mut info = IfaceInfo {
            name: name.to_string(),
            ifindex,
            mac: [0; 6],
            link_local: Ipv6Addr::UNSPECIFIED,
            addresses: Vec::new(),
        };
        for ifa in nix::ifaddrs::getifaddrs()?.filter(|a| a.interface_name == name) {
            let Some(addr) = ifa.address else { continue };
            if let Some(link) = addr.as_link_addr() {
                if let Some(mac) = link.addr() {
                    info.mac = mac;
                }
            } else if let Some(sin6) = addr.as_sockaddr_in6() {
                let ip = sin6.ip();
                let len = ifa
                    .netmask
                    .and_then(|m| {
                        m.as_sockaddr_in6()
                            .map(|m| u128::from(m.ip()).count_ones() as u8)
                    })
                    .unwrap_or(128);
                if is_link_local(&ip) {
                    // The first one, as the kernel lists them (normally the only one).
                    if info.link_local.is_unspecified() {
                        info.link_local = ip;
                    }
                } else if is_global_source(&ip) {
                    info.addresses.push((ip, len));
                }
            }
        }
        Ok(info)
    }

    /// The interface's only global address, or `None` with none or several: the fast path
    /// answers a multicast request whose reply goes to a global address only when the choice
    /// is that plain (with several, [`reply_source`] compares prefixes, which XDP does not).
    pub fn unique_global(&self) -> Option<Ipv6Addr> {
        match self.addresses.as_slice() {
            [(address, _)] => Some(*address),
            _ => None,
        }
    }

    /// What the fast path needs to follow [`reply_source`]: the link-local address, and the
    /// unique global one.
    pub fn fast_path_sources(&self) -> (Ipv6Addr, Option<Ipv6Addr>) {
        (self.link_local, self.unique_global())
    }
}

/// The source address of a reply sent on `iface` to `reply_to`, for a request that was sent to
/// `request_to`; `None` leaves the choice to the kernel (nothing of ours fits).
///
/// - A request sent to one of our unicast addresses (a relay configured with it) is answered
///   from that address.
/// - One sent to a multicast group (ff02::1:2, ff05::1:3) is answered from the interface's
///   link-local address when `reply_to` is link-local (a client, or a relay on the link using
///   its link-local address), else from the interface's global address sharing the longest
///   prefix with `reply_to` (RFC 6724 rule 8), the first such on a tie.
///
/// The fast path follows the same rule (`dhcp-ebpf`, `reply_source`) where it is unambiguous:
/// it passes the request on when the interface has no global address or several.
pub fn reply_source(
    iface: &IfaceInfo,
    request_to: Ipv6Addr,
    reply_to: Ipv6Addr,
) -> Option<Ipv6Addr> {
    if !request_to.is_multicast() && !request_to.is_unspecified() {
        return Some(request_to);
    }
    if is_link_local(&reply_to) {
        return (!iface.link_local.is_unspecified()).then_some(iface.link_local);
    }
    let common = |a: &Ipv6Addr| (u128::from(*a) ^ u128::from(reply_to)).leading_zeros();
    let mut best: Option<Ipv6Addr> = None;
    for (address, _) in &iface.addresses {
        if best.is_none_or(|b| common(address) > common(&b)) {
            best = Some(*address);
        }
    }
    best
}

/// The served interfaces, read again every [`REFRESH_INTERVAL`] while serving. Changes are
/// announced on a watch channel (the fast path's `IFACES` map follows them).
pub struct Interfaces {
    by_index: RwLock<HashMap<u32, IfaceInfo>>,
    names: Vec<String>,
    changed: watch::Sender<u64>,
}

impl Interfaces {
    /// Reads `names` now. An interface that cannot be read yet is left out until a refresh
    /// finds it (its socket's open reports the error to the operator).
    pub fn discover(names: &[String]) -> Arc<Interfaces> {
        let table = Interfaces {
            by_index: RwLock::new(HashMap::new()),
            names: names.to_vec(),
            changed: watch::channel(0).0,
        };
        table.refresh();
        Arc::new(table)
    }

    /// A table holding exactly `infos` (tests and labs that describe an interface themselves).
    pub fn fixed(infos: Vec<IfaceInfo>) -> Arc<Interfaces> {
        Arc::new(Interfaces {
            names: Vec::new(),
            by_index: RwLock::new(infos.into_iter().map(|i| (i.ifindex, i)).collect()),
            changed: watch::channel(0).0,
        })
    }

    /// What is known of the interface with index `ifindex`.
    pub fn get(&self, ifindex: u32) -> Option<IfaceInfo> {
        self.read().get(&ifindex).cloned()
    }

    /// What is known of the interface named `name`.
    pub fn by_name(&self, name: &str) -> Option<IfaceInfo> {
        self.read().values().find(|i| i.name == name).cloned()
    }

    /// Every interface known, in no particular order.
    pub fn all(&self) -> Vec<IfaceInfo> {
        self.read().values().cloned().collect()
    }

    /// [`reply_source`] for a reply leaving on `ifindex`.
    pub fn reply_source(
        &self,
        ifindex: u32,
        request_to: Ipv6Addr,
        reply_to: Ipv6Addr,
    ) -> Option<Ipv6Addr> {
        let table = self.read();
        match table.get(&ifindex) {
            Some(iface) => reply_source(iface, request_to, reply_to),
            None => {
                (!request_to.is_multicast() && !request_to.is_unspecified()).then_some(request_to)
            }
        }
    }

    /// A receiver that sees a new value after each refresh that changed something.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Reads every named interface again; returns whether anything changed.
    pub fn refresh(&self) -> bool {
        let mut fresh = HashMap::new();
        for name in &self.names {
            match IfaceInfo::discover(name) {
                Ok(info) => {
                    fresh.insert(info.ifindex, info);
                }
                Err(err) => {
                    crate::log_throttled!(warn, interface = %name, error = %err, "reading the interface's addresses");
                }
            }
        }
        let mut table = self.by_index.write().unwrap_or_else(|e| e.into_inner());
        if *table == fresh {
            return false;
        }
        for info in fresh.values() {
            if table.get(&info.ifindex) != Some(info) {
                info!(
                    interface = %info.name,
                    link_local = %info.link_local,
                    addresses = ?info.addresses,
                    "interface addresses"
                );
            }
        }
        *table = fresh;
        drop(table);
        self.changed.send_modify(|generation| *generation += 1);
        true
    }

    /// Refreshes every [`REFRESH_INTERVAL`] until `shutdown` turns true.
    pub async fn run_refresh(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(REFRESH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            self.refresh();
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<u32, IfaceInfo>> {
        self.by_index.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(link_local: &str, globals: &[&str]) -> IfaceInfo {
        IfaceInfo {
            name: "eth0".into(),
            ifindex: 2,
            mac: [2, 0, 0, 0, 0, 1],
            link_local: link_local.parse().unwrap(),
            addresses: globals.iter().map(|a| (a.parse().unwrap(), 64)).collect(),
        }
    }
    /// Names pass through; a pattern becomes the host's matching interfaces (`lo` is on every
    /// host); one matching nothing is refused, naming it.
    #[test]
    fn interface_patterns_expand_to_the_hosts_interfaces() {
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            expand_interface_patterns(&names(&["eth9", "l?", "lo"])).unwrap(),
            names(&["eth9", "lo"])
        );
        let err = expand_interface_patterns(&names(&["nothing-like-this*"])).unwrap_err();
        assert!(err.contains("nothing-like-this*"), "{err}");
    }

    fn ip(text: &str) -> Ipv6Addr {
        text.parse().unwrap()
    }

    /// A request to one of our unicast addresses is answered from it, whatever the interface has.
    #[test]
    fn unicast_request_is_answered_from_its_destination() {
        let eth = iface("fe80::1", &["2001:db8::1"]);
        assert_eq!(
            reply_source(&eth, ip("2001:db8:ff::53"), ip("2001:db8:2::1")),
            Some(ip("2001:db8:ff::53"))
        );
        assert_eq!(
            reply_source(&eth, ip("fe80::1"), ip("fe80::2")),
            Some(ip("fe80::1"))
        );
    }

    /// A multicast request whose reply goes to a link-local address is answered from ours.
    #[test]
    fn multicast_request_to_link_local_uses_our_link_local() {
        let eth = iface("fe80::1", &["2001:db8::1"]);
        for group in ["ff02::1:2", "ff05::1:3"] {
            assert_eq!(
                reply_source(&eth, ip(group), ip("fe80::99")),
                Some(ip("fe80::1"))
            );
        }
        assert_eq!(
            reply_source(&iface("::", &[]), ip("ff02::1:2"), ip("fe80::99")),
            None
        );
    }

    /// A multicast request whose reply goes to a global address is answered from the global
    /// address sharing the longest prefix with it; with none, the kernel chooses.
    #[test]
    fn multicast_request_to_global_uses_the_closest_global() {
        let eth = iface("fe80::1", &["2001:db8:1::1", "2001:db8:2::1"]);
        assert_eq!(
            reply_source(&eth, ip("ff05::1:3"), ip("2001:db8:2::77")),
            Some(ip("2001:db8:2::1"))
        );
        assert_eq!(
            reply_source(&eth, ip("ff05::1:3"), ip("2001:db9::1")),
            Some(ip("2001:db8:1::1")),
            "a tie goes to the first"
        );
        assert_eq!(eth.unique_global(), None, "several: the fast path passes");
        let none = iface("fe80::1", &[]);
        assert_eq!(
            reply_source(&none, ip("ff05::1:3"), ip("2001:db8::9")),
            None
        );
    }

    /// The fast path is given the one global address only when there is exactly one.
    #[test]
    fn fast_path_sources_hold_a_lone_global_only() {
        assert_eq!(
            iface("fe80::1", &["2001:db8::1"]).fast_path_sources(),
            (ip("fe80::1"), Some(ip("2001:db8::1")))
        );
        assert_eq!(
            iface("fe80::1", &[]).fast_path_sources(),
            (ip("fe80::1"), None)
        );
    }

    /// Loopback and link-local addresses are never global sources.
    #[test]
    fn loopback_is_not_a_global_source() {
        assert!(!is_global_source(&Ipv6Addr::LOCALHOST));
        assert!(!is_global_source(&ip("fe80::1")));
        assert!(is_global_source(&ip("fd00::1")));
    }
}
