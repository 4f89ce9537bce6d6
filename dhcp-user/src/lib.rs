//! dhcp-user: the controller of the DHCPv6 server.
//!
//! Pipeline (see `server`): decode (`proto`) → classify → decide → encode → persist (`store`)
//! → reply; the XDP fast path (`fastpath`) answers renewals of bindings pushed into its maps.
//!
//! Dependencies point one way, from the command line down (a unit test, `layering`, fails on any
//! import circle):
//!
//! ```text
//! cli                  clap parsing, dispatch, text output
//! serve                the composition root of `serve`: builds and wires everything below
//! control              the control socket: protocol, server side, client side
//! reload               the configuration as served: loaded, checked, reloaded
//! fastpath             the XDP program's loader and map sync (traits for what it needs)
//! server               the DHCPv6 server: decisions, allocator, sockets, timers
//! leasequery           RFC 5007/5460/7653 service, requestor and peer sync (traits again)
//! netif, binding_rule  interfaces and addresses; which leases the controller keeps
//! line                 a client's line identity, from its relays
//! lease_events         lease changes published to subscribers
//! config, store, proto the configuration, the lease store, the wire codec
//! subnet_ids           the state directory's record of subnet ids by prefix
//! notify               systemd's readiness notification (sd_notify)
//! options              configured options: registry, typed values, levels, the sending rule
//! tls                  PEM certificates and keys, rustls configurations (leasequery's TLS)
//! clock, log_throttle  the wall clock; rate-limited logging
//! ```

pub mod api;
pub mod binding_rule;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod fastpath;
pub mod kea;
pub mod lease_events;
pub mod lease_log;
pub mod leasequery;
pub mod line;
pub mod log_throttle;
pub mod netif;
pub mod notify;
pub mod options;
pub mod proto;
pub mod reload;
pub mod routes;
pub mod serve;
pub mod server;
pub mod store;
pub mod subnet_ids;
pub mod tls;

#[cfg(test)]
mod layering;
