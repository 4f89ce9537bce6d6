//! Routes for what the server delegates (`[routes]`, the BNG role): a kernel route per active
//! delegated prefix (and, with `addresses`, per IA_NA address) via the client's link-local
//! address on the interface its request came in on, kept equal to the lease table.
//!
//! The routes follow the lease events the server publishes once a change is durable: a grant
//! or renewal with a next hop adds (or replaces) the lease's route, a release, decline, expiry
//! or clear removes it. At start, and whenever the event channel lagged, every IPv6 route of
//! `table` marked with our `protocol` is compared with the lease table: stale ones are removed,
//! missing ones added. The routes stay when the server stops (forwarding goes on across a
//! restart; the next start re-syncs them).
//!
//! Netlink failures never reach a grant: they are logged and counted
//! (`dhcp_route_errors_total`), and the next event or re-sync tries again.
//!
//! ```text
//! tokio::spawn(routes::run(config.routes.clone(), server.clone(), shutdown));
//! ```

use std::collections::HashMap;
use std::net::Ipv6Addr;
use std::sync::Arc;

use futures_util::TryStreamExt;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder};
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

use crate::config::RoutesConfig;
use crate::lease_events::{LeaseEvent, LeaseEventKind};
use crate::store::{Lease, LeaseState, LeaseType};

/// What the route keeper needs of the server.
pub trait LeaseSource: Send + Sync + 'static {
    /// A receiver of every lease change, from now on.
    fn subscribe(&self) -> broadcast::Receiver<LeaseEvent>;
    /// Visits every durable lease.
    fn each_durable_lease(&self, visit: &mut dyn FnMut(&Lease));
}

/// Why the route keeper could not start.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    /// The netlink socket could not be opened.
    #[error("opening the netlink route socket: {0}")]
    Connect(#[source] std::io::Error),
}

/// One route: the lease's prefix via the client on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The delegated prefix (or the address).
    pub destination: Ipv6Addr,
    /// Its length (128 for an address).
    pub prefix_len: u8,
    /// The client's link-local address.
    pub via: Ipv6Addr,
    /// The interface's index.
    pub ifindex: u32,
}

/// The route `lease` stands for at `now`, if any, `ifindex` naming an interface's index.
/// `Err` carries why a lease that should have a route has none (a vanished interface).
pub fn route_of(
    config: &RoutesConfig,
    lease: &Lease,
    now: i64,
    ifindex: impl Fn(&str) -> Option<u32>,
) -> Result<Option<Route>, String> {
    let wanted = match lease.lease_type {
        LeaseType::Pd => true,
        LeaseType::Na => config.addresses,
    };
    let Some(via) = lease.next_hop else {
        return Ok(None);
    };
    if !wanted || lease.state != LeaseState::Assigned || lease.expire <= now {
        return Ok(None);
    }
    let Some(index) = ifindex(&lease.interface) else {
        return Err(format!("no interface `{}` for its route", lease.interface));
    };
    Ok(Some(Route {
        destination: lease.address,
        prefix_len: lease.prefix_len,
        via,
        ifindex: index,
    }))
}

fn interface_index(name: &str) -> Option<u32> {
    if name.is_empty() {
        return None;
    }
    nix::net::if_::if_nametoindex(name).ok()
}

fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Keeps the routes of `config` equal to the leases of `source` until `shutdown`: a re-sync
/// first, then each lease event. Returns at once when `[routes]` is off.
pub async fn run<S: LeaseSource + ?Sized>(
    config: RoutesConfig,
    source: Arc<S>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RouteError> {
    if !config.enabled {
        return Ok(());
    }
    let (connection, handle, _) = rtnetlink::new_connection().map_err(RouteError::Connect)?;
    let connection = tokio::spawn(connection);
    // Subscribed before the re-sync reads the leases: no change falls between the two.
    let mut events = source.subscribe();
    let mut keeper = Keeper {
        config,
        handle,
        installed: HashMap::new(),
    };
    keeper.resync(source.as_ref()).await;
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            event = events.recv() => match event {
                Ok(event) => keeper.apply(&event).await,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    warn!(missed, "routes: lease events lagged; re-syncing the routes");
                    keeper.resync(source.as_ref()).await;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    connection.abort();
    Ok(())
}

/// The netlink handle and the routes we know are installed, by (destination, length).
struct Keeper {
    config: RoutesConfig,
    handle: Handle,
    installed: HashMap<(Ipv6Addr, u8), Route>,
}

impl Keeper {
    /// Makes the kernel's routes of our protocol and table equal to the leases' routes.
    async fn resync<S: LeaseSource + ?Sized>(&mut self, source: &S) {
        let now = now_unix();
        let mut wanted: HashMap<(Ipv6Addr, u8), Route> = HashMap::new();
        source.each_durable_lease(&mut |lease| match route_of(
            &self.config,
            lease,
            now,
            interface_index,
        ) {
            Ok(Some(route)) => {
                wanted.insert((route.destination, route.prefix_len), route);
            }
            Ok(None) => {}
            Err(why) => failed("resync", &lease.address, &why),
        });
        let present = match self.dump().await {
            Ok(present) => present,
            Err(err) => {
                failed("dump", &Ipv6Addr::UNSPECIFIED, &err.to_string());
                Vec::new()
            }
        };
        let (mut kept, mut removed) = (0usize, 0usize);
        self.installed.clear();
        for route in present {
            let key = (route.destination, route.prefix_len);
            if wanted.get(&key) == Some(&route) {
                self.installed.insert(key, route);
                kept += 1;
            } else if self.delete(&route).await {
                removed += 1;
            }
        }
        let mut added = 0usize;
        for (key, route) in wanted {
            if !self.installed.contains_key(&key) && self.add(&route).await {
                self.installed.insert(key, route);
                added += 1;
            }
        }
        metrics::gauge!("dhcp_routes_installed").set(self.installed.len() as f64);
        info!(
            kept,
            added, removed, "routes re-synced with the lease table"
        );
    }

    /// The route one lease change calls for, added, replaced or removed.
    async fn apply(&mut self, event: &LeaseEvent) {
        let lease = &event.lease;
        let key = (lease.address, lease.prefix_len);
        let wanted = match event.kind {
            LeaseEventKind::Granted | LeaseEventKind::Renewed => {
                match route_of(&self.config, lease, now_unix(), interface_index) {
                    Ok(route) => route,
                    Err(why) => {
                        failed(event.kind.name(), &lease.address, &why);
                        None
                    }
                }
            }
            LeaseEventKind::Released
            | LeaseEventKind::Declined
            | LeaseEventKind::Expired
            | LeaseEventKind::Cleared => None,
        };
        match (self.installed.get(&key).copied(), wanted) {
            (Some(old), Some(new)) if old == new => {}
            (_, Some(new)) => {
                if self.add(&new).await {
                    self.installed.insert(key, new);
                }
            }
            (Some(old), None) => {
                // Gone from our books even if the kernel refused: the next re-sync retries.
                self.installed.remove(&key);
                self.delete(&old).await;
            }
            (None, None) => {}
        }
        metrics::gauge!("dhcp_routes_installed").set(self.installed.len() as f64);
    }

    /// Our routes as the kernel has them (IPv6, our table and protocol, via one next hop).
    async fn dump(&self) -> Result<Vec<Route>, rtnetlink::Error> {
        let filter = RouteMessageBuilder::<Ipv6Addr>::new()
            .table_id(self.config.table)
            .protocol(RouteProtocol::from(self.config.protocol))
            .build();
        let mut stream = self.handle.route().get(filter).execute();
        let mut routes = Vec::new();
        while let Some(message) = stream.try_next().await? {
            if let Some(route) = self.ours(&message) {
                routes.push(route);
            }
        }
        Ok(routes)
    }

    /// `message` as one of our routes, `None` when it is another's (the dump is not filtered
    /// by the kernel without strict checking).
    fn ours(&self, message: &RouteMessage) -> Option<Route> {
        if u8::from(message.header.protocol) != self.config.protocol
            || message.header.kind != RouteType::Unicast
        {
            return None;
        }
        let mut table = u32::from(message.header.table);
        let (mut destination, mut via, mut ifindex) = (None, None, None);
        for attribute in &message.attributes {
            match attribute {
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Destination(RouteAddress::Inet6(a)) => destination = Some(*a),
                RouteAttribute::Gateway(RouteAddress::Inet6(a)) => via = Some(*a),
                RouteAttribute::Oif(index) => ifindex = Some(*index),
                _ => {}
            }
        }
        if table != self.config.table {
            return None;
        }
        Some(Route {
            destination: destination.unwrap_or(Ipv6Addr::UNSPECIFIED),
            prefix_len: message.header.destination_prefix_length,
            // A route of our protocol without one next hop is not one we made: it is replaced.
            via: via.unwrap_or(Ipv6Addr::UNSPECIFIED),
            ifindex: ifindex.unwrap_or(0),
        })
    }

    fn message(&self, route: &Route) -> RouteMessage {
        RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(route.destination, route.prefix_len)
            .gateway(route.via)
            .output_interface(route.ifindex)
            .table_id(self.config.table)
            .protocol(RouteProtocol::from(self.config.protocol))
            .priority(self.config.metric)
            .build()
    }

    /// Adds (or replaces: the same prefix via another client or interface) `route`.
    async fn add(&self, route: &Route) -> bool {
        let request = self.handle.route().add(self.message(route)).replace();
        match request.execute().await {
            Ok(()) => {
                debug!(prefix = %route.destination, len = route.prefix_len, via = %route.via,
                       ifindex = route.ifindex, "route added");
                metrics::counter!("dhcp_routes_total", "op" => "added").increment(1);
                true
            }
            Err(err) => {
                failed("add", &route.destination, &err.to_string());
                false
            }
        }
    }

    /// Removes `route`; one already gone counts as removed.
    async fn delete(&self, route: &Route) -> bool {
        let mut message = self.message(route);
        // Matched by destination, table, protocol and metric: whatever its next hop now is.
        message
            .attributes
            .retain(|a| !matches!(a, RouteAttribute::Gateway(_) | RouteAttribute::Oif(_)));
        match self.handle.route().del(message).execute().await {
            Ok(()) => {
                debug!(prefix = %route.destination, len = route.prefix_len, "route removed");
                metrics::counter!("dhcp_routes_total", "op" => "removed").increment(1);
                true
            }
            Err(rtnetlink::Error::NetlinkError(err))
                if err.raw_code().abs() == libc::ESRCH || err.raw_code().abs() == libc::ENOENT =>
            {
                true
            }
            Err(err) => {
                failed("remove", &route.destination, &err.to_string());
                false
            }
        }
    }
}

fn failed(what: &str, prefix: &Ipv6Addr, why: &str) {
    metrics::counter!("dhcp_route_errors_total", "op" => what.to_owned()).increment(1);
    warn!(op = what, prefix = %prefix, error = why, "route not changed");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(lease_type: LeaseType, next_hop: Option<Ipv6Addr>) -> Lease {
        let (address, prefix_len) = match lease_type {
            LeaseType::Na => ("2001:db8:1::10".parse().unwrap(), 128),
            LeaseType::Pd => ("2001:db8:8000::".parse().unwrap(), 56),
        };
        Lease {
            preferred_lifetime: 100,
            valid_lifetime: 200,
            cltt: 1000,
            expire: 1200,
            interface: "veth0".into(),
            next_hop,
            ..Lease::bare(
                lease_type,
                address,
                prefix_len,
                vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 1],
                1,
                1,
            )
        }
    }

    fn enabled(addresses: bool) -> RoutesConfig {
        RoutesConfig {
            enabled: true,
            addresses,
            ..RoutesConfig::default()
        }
    }

    const HOP: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x42);

    /// An active delegated prefix with a next hop has a route via it on its interface.
    #[test]
    fn delegated_prefix_has_a_route_via_the_client() {
        let route = route_of(
            &enabled(false),
            &lease(LeaseType::Pd, Some(HOP)),
            1100,
            |_| Some(7),
        );
        assert_eq!(
            route,
            Ok(Some(Route {
                destination: "2001:db8:8000::".parse().unwrap(),
                prefix_len: 56,
                via: HOP,
                ifindex: 7,
            }))
        );
    }

    /// An address gets a /128 route only with `addresses = true`.
    #[test]
    fn address_routes_only_when_asked() {
        let na = lease(LeaseType::Na, Some(HOP));
        assert_eq!(route_of(&enabled(false), &na, 1100, |_| Some(7)), Ok(None));
        let route = route_of(&enabled(true), &na, 1100, |_| Some(7)).unwrap();
        assert_eq!(route.map(|r| r.prefix_len), Some(128));
    }

    /// No next hop (a client behind an L3 relay), an expired or a released lease: no route.
    #[test]
    fn no_route_without_next_hop_or_once_over() {
        let config = enabled(true);
        assert_eq!(
            route_of(&config, &lease(LeaseType::Pd, None), 1100, |_| Some(7)),
            Ok(None)
        );
        let pd = lease(LeaseType::Pd, Some(HOP));
        assert_eq!(route_of(&config, &pd, 1200, |_| Some(7)), Ok(None));
        let mut released = pd;
        released.state = LeaseState::Released;
        assert_eq!(route_of(&config, &released, 1100, |_| Some(7)), Ok(None));
    }

    /// A lease whose interface is gone is an error to count, not a route to nowhere.
    #[test]
    fn vanished_interface_is_an_error() {
        let pd = lease(LeaseType::Pd, Some(HOP));
        assert!(route_of(&enabled(false), &pd, 1100, |_| None).is_err());
    }
}
