//! dhcp-user: the controller of the DHCPv6 server.
//!
//! Pipeline (see `server`): decode (`proto`) → classify → decide → encode → persist (`store`)
//! → reply; the XDP fast path (`fastpath`) answers renewals of bindings pushed into its maps.

pub mod bench;
pub mod binding_rule;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod fastpath;
pub mod lab;
pub mod lease_events;
pub mod leasequery;
pub mod log_throttle;
pub mod netif;
pub mod proto;
pub mod serve;
pub mod server;
pub mod store;

#[cfg(test)]
mod layering;
