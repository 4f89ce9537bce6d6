//! Which leases the controller keeps as their clients' bindings: one rule, used by the server
//! when it decides a request (`server::handler`) and by the fast-path sync when it chooses the
//! bindings the XDP program may answer from (`fastpath::sync`), so the two never disagree.
//!
//! A lease of a client in a subnet is kept when it is not reserved for another client, lies
//! inside one of the subnet's pools (or is the client's own reservation), and has not been
//! set aside by a reservation the client was given since (a Solicit is then offered the
//! reservation). A client is its DUID and, for reservations by line, the line the lease was
//! last served on by the controller ([`Claimant`]). A pool shrunk or a reservation added in the configuration leaves such leases
//! to the controller, which answers them differently (`NoBinding`, lifetimes 0, or the
//! reservation).

use std::collections::HashMap;

use crate::config::{Config, PoolHalf, ReservedClient, Subnet};
use crate::line::{LineIds, NO_LINE};
use crate::store::{Lease, LeaseKey, LeaseType};

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

/// A client as reservations see it: its DUID and the line it came from. For a request, the
/// request's relay chain; for a lease, the chain the lease was last granted or renewed through
/// by the controller (its `relay_info`), so that the rule is a function of the lease alone and
/// the fast path, which cannot read Remote-ID or option 79, follows it exactly.
#[derive(Debug, Clone, Copy)]
pub struct Claimant<'a> {
    /// The client's DUID.
    pub duid: &'a [u8],
    /// Its line identities.
    pub lines: &'a LineIds,
}

impl<'a> Claimant<'a> {
    /// A client known by its DUID only (no line).
    pub fn duid(duid: &'a [u8]) -> Self {
        Claimant {
            duid,
            lines: &NO_LINE,
        }
    }

    /// True if the reservation for `client` is this client's.
    pub fn is(&self, client: &ReservedClient) -> bool {
        match client {
            ReservedClient::Duid(duid) => duid.as_slice() == self.duid,
            ReservedClient::Line(line) => self.lines.is_on(line),
        }
    }
}

/// A client's reservation in one subnet: its address (IA_NA) and its prefix (IA_PD) as keys.
type ReservedKeys = (Option<LeaseKey>, Option<LeaseKey>);

/// The configuration's reservations, indexed for the rule.
#[derive(Debug, Clone, Default)]
pub struct Reservations {
    /// Every reserved address and prefix → the client it is reserved for (all subnets).
    owners: HashMap<LeaseKey, ReservedClient>,
    /// Subnet id → client → the address and the prefix reserved for that client there.
    by_client: HashMap<u32, HashMap<ReservedClient, ReservedKeys>>,
    /// True when some reservation is by line (a lease's line is then read from its chain).
    by_line: bool,
}

impl Reservations {
    /// The reservations of every subnet of `config`.
    pub fn new(config: &Config) -> Self {
        let mut owners = HashMap::new();
        let mut by_client: HashMap<u32, HashMap<ReservedClient, ReservedKeys>> = HashMap::new();
        for subnet in &config.subnets {
            for reservation in &subnet.reservations {
                let na = reservation.address.map(LeaseKey::na);
                let pd = reservation
                    .prefix
                    .map(|p| LeaseKey::pd(p.network(), p.prefix_len()));
                for key in na.iter().chain(pd.iter()) {
                    owners.insert(*key, reservation.client.clone());
                }
                by_client
                    .entry(subnet.id)
                    .or_default()
                    .entry(reservation.client.clone())
                    .or_insert((na, pd));
            }
        }
        Reservations {
            owners,
            by_client,
            by_line: config.reserves_by_line(),
        }
    }

    /// Adds `reservation` to subnet `subnet_id` at run time (the operator API); the caller has
    /// checked that neither its client nor its address or prefix is reserved already.
    pub fn insert(&mut self, subnet_id: u32, reservation: &crate::config::Reservation) {
        let (na, pd) = reserved_keys(reservation);
        for key in na.iter().chain(pd.iter()) {
            self.owners.insert(*key, reservation.client.clone());
        }
        self.by_line |= matches!(reservation.client, ReservedClient::Line(_));
        self.by_client
            .entry(subnet_id)
            .or_default()
            .insert(reservation.client.clone(), (na, pd));
    }

    /// Removes `reservation` from subnet `subnet_id` at run time (the operator API).
    pub fn remove(&mut self, subnet_id: u32, reservation: &crate::config::Reservation) {
        let (na, pd) = reserved_keys(reservation);
        for key in na.iter().chain(pd.iter()) {
            if self.owners.get(key) == Some(&reservation.client) {
                self.owners.remove(key);
            }
        }
        if let Some(subnet) = self.by_client.get_mut(&subnet_id) {
            subnet.remove(&reservation.client);
        }
    }

    /// The client `key` is reserved for, in any subnet.
    pub fn owner(&self, key: &LeaseKey) -> Option<&ReservedClient> {
        self.owners.get(key)
    }

    /// True if `client` has a reservation in subnet `subnet_id`.
    pub fn has_client(&self, subnet_id: u32, client: &ReservedClient) -> bool {
        self.by_client
            .get(&subnet_id)
            .is_some_and(|subnet| subnet.contains_key(client))
    }

    /// The line identities reservations need of `lease`: read from its relay chain (or a
    /// direct client's link-layer address) when some reservation is by line, else none (no
    /// decoding).
    pub fn lines_of(&self, lease: &Lease) -> LineIds {
        if self.by_line {
            LineIds::of_lease(lease)
        } else {
            LineIds::default()
        }
    }

    /// True if `key` is reserved for a client other than `client`.
    pub fn reserved_for_another(&self, key: &LeaseKey, client: &Claimant<'_>) -> bool {
        self.owners.get(key).is_some_and(|owner| !client.is(owner))
    }

    /// The reservation of `client` in subnet `subnet_id` for this lease type, as a key: by its
    /// DUID first, else by one of its lines.
    pub fn of_client(
        &self,
        subnet_id: u32,
        lease_type: LeaseType,
        client: &Claimant<'_>,
    ) -> Option<LeaseKey> {
        let subnet = self.by_client.get(&subnet_id)?;
        let pick = |(na, pd): &ReservedKeys| match lease_type {
            LeaseType::Na => *na,
            LeaseType::Pd => *pd,
        };
        if let Some(key) = subnet
            .get(&ReservedClient::Duid(client.duid.to_vec()))
            .and_then(pick)
        {
            return Some(key);
        }
        if !self.by_line {
            return None;
        }
        subnet
            .iter()
            .filter(|(owner, _)| matches!(owner, ReservedClient::Line(_)) && client.is(owner))
            .filter_map(|(_, keys)| pick(keys))
            .min()
    }

    /// Where `client`'s lease `key` in `subnet` stands (see the module's rule).
    pub fn standing(&self, subnet: &Subnet, key: &LeaseKey, client: &Claimant<'_>) -> Standing {
        if self.reserved_for_another(key, client) {
            return Standing::ReservedForAnother;
        }
        let own = self.of_client(subnet.id, key.lease_type, client);
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

    /// Where `lease` stands in `subnet`, its client taken from the lease itself.
    pub fn lease_standing(&self, subnet: &Subnet, lease: &Lease) -> Standing {
        let lines = self.lines_of(lease);
        let client = Claimant {
            duid: &lease.duid,
            lines: &lines,
        };
        self.standing(subnet, &lease.key(), &client)
    }
}

/// A reservation's address and prefix as lease keys.
fn reserved_keys(reservation: &crate::config::Reservation) -> ReservedKeys {
    (
        reservation.address.map(LeaseKey::na),
        reservation
            .prefix
            .map(|p| LeaseKey::pd(p.network(), p.prefix_len())),
    )
}

/// True if this server may grant `key` to a client that does not hold it yet: a slot of its
/// `half` of one of `subnet`'s pools (of any slot without `pool-half`). Reservations aside. In a
/// redundant pair a lease outside it is the peer's: extended on a Renew or Rebind of a live one
/// (failover), never handed out on a Solicit or Request (the allocator's `owns`, and the fast
/// path's `BINDING_RENEW_ONLY`).
pub fn in_own_half(subnet: &Subnet, half: Option<PoolHalf>, key: &LeaseKey) -> bool {
    let share = |size: u128| half.map_or((0, size), |h| h.slots(size));
    let within = |index: u128, size: u128| {
        let (first, count) = share(size);
        index >= first && index - first < count
    };
    match key.lease_type {
        LeaseType::Na => subnet.pools.iter().any(|pool| {
            let offset = u128::from(key.address).checked_sub(u128::from(pool.low));
            key.prefix_len == 128 && offset.is_some_and(|index| within(index, pool.size()))
        }),
        LeaseType::Pd => subnet.pd_pools.iter().any(|pool| {
            let shift = 128 - u32::from(pool.delegated_length);
            let Some(offset) =
                u128::from(key.address).checked_sub(u128::from(pool.prefix.network()))
            else {
                return false;
            };
            let index = offset.checked_shr(shift).unwrap_or(0);
            let aligned = index.checked_shl(shift).unwrap_or(0) == offset;
            key.prefix_len == pool.delegated_length && aligned && within(index, pool.size())
        }),
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
