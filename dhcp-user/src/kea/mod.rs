//! Moving from Kea: its DHCPv6 leases into our store ([`leases`], `dhcp-user import-kea`) and
//! its configuration into ours ([`config`], `dhcp-user convert-kea-config`).

mod classes;
pub mod config;
pub mod leases;

#[cfg(test)]
mod tests;
