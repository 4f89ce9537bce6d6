//! Which leases the controller keeps as their clients' bindings: one rule, used by the server
//! when it decides a request (`server::handler`) and by the fast-path sync when it chooses the
//! bindings the XDP program may answer from (`fastpath::sync`), so the two never disagree.
//!
//! A lease of a client in a subnet is kept when it is not reserved for another client, lies
//! inside one of the subnet's pools (or is the client's own reservation), and has not been
//! set aside by a reservation the client was given since (a Solicit is then offered the
//! reservation). A pool shrunk or a reservation added in the configuration leaves such leases
//! to the controller, which answers them differently (`NoBinding`, lifetimes 0, or the
//! reservation).

use std::collections::HashMap;

use crate::config::{Config, Subnet};
use crate::store::{LeaseKey, LeaseType};

/// Where a lease stands against the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// The controller keeps it as its client's binding.
    Kept,
    /// Neither in one of the subnet's pools nor the client's reservation.
    OutsidePools,
    /// Reserved for another client.
    ReservedForAnother,
    /// Inside a pool, but the client has a reservation of this type elsewhere, which wins.
    SupersededByReservation,
}

/// A client's reservation in one subnet: its address (IA_NA) and its prefix (IA_PD) as keys.
type ReservedKeys = (Option<LeaseKey>, Option<LeaseKey>);

/// The configuration's reservations, indexed for the rule.
#[derive(Debug, Clone, Default)]
pub struct Reservations {
    /// Every reserved address and prefix → the DUID it is reserved for (all subnets).
    owners: HashMap<LeaseKey, Vec<u8>>,
    /// Subnet id → DUID → the address and the prefix reserved for that client there.
    by_client: HashMap<u32, HashMap<Vec<u8>, ReservedKeys>>,
}

impl Reservations {
    /// The reservations of every subnet of `config`.
    pub fn new(config: &Config) -> Self {
        let mut owners = HashMap::new();
        let mut by_client: HashMap<u32, HashMap<Vec<u8>, ReservedKeys>> = HashMap::new();
        for subnet in &config.subnets {
            for reservation in &subnet.reservations {
                let na = reservation.address.map(LeaseKey::na);
                let pd = reservation
                    .prefix
                    .map(|p| LeaseKey::pd(p.network(), p.prefix_len()));
                for key in na.iter().chain(pd.iter()) {
                    owners.insert(*key, reservation.duid.clone());
                }
                by_client
                    .entry(subnet.id)
                    .or_default()
                    .entry(reservation.duid.clone())
                    .or_insert((na, pd));
            }
        }
        Reservations { owners, by_client }
    }

    /// True if `key` is reserved for a client other than `duid`.
    pub fn reserved_for_another(&self, key: &LeaseKey, duid: &[u8]) -> bool {
        self.owners
            .get(key)
            .is_some_and(|owner| owner.as_slice() != duid)
    }

    /// The reservation of `duid` in subnet `subnet_id` for this lease type, as a key.
    pub fn of_client(
        &self,
        subnet_id: u32,
        lease_type: LeaseType,
        duid: &[u8],
    ) -> Option<LeaseKey> {
        let (na, pd) = self.by_client.get(&subnet_id)?.get(duid)?;
        match lease_type {
            LeaseType::Na => *na,
            LeaseType::Pd => *pd,
        }
    }

    /// Where `duid`'s lease `key` in `subnet` stands (see the module's rule).
    pub fn standing(&self, subnet: &Subnet, key: &LeaseKey, duid: &[u8]) -> Standing {
        if self.reserved_for_another(key, duid) {
            return Standing::ReservedForAnother;
        }
        let own = self.of_client(subnet.id, key.lease_type, duid);
        if own == Some(*key) {
            return Standing::Kept;
        }
        if !in_pools(subnet, key) {
            return Standing::OutsidePools;
        }
        match own {
            Some(_) => Standing::SupersededByReservation,
            None => Standing::Kept,
        }
    }
}

/// True if `key` lies inside one of `subnet`'s pools of its type (reservations aside).
pub fn in_pools(subnet: &Subnet, key: &LeaseKey) -> bool {
    match key.lease_type {
        LeaseType::Na => subnet.pools.iter().any(|p| p.contains(key.address)),
        LeaseType::Pd => subnet
            .pd_pools
            .iter()
            .any(|p| p.holds(key.address, key.prefix_len)),
    }
}
