//! Moving from Kea: its DHCPv6 leases into our store ([`leases`], `dhcp-user import-kea`).

pub mod leases;

#[cfg(test)]
mod tests;
