//! Address and prefix selection.
//!
//! Never scans a pool address by address: each pool keeps a cursor (the slot after the last one
//! handed out), and a search walks the lease table from the cursor in key order, one page of
//! rows at a time; the first gap between rows (or a row that may be reused) is the answer. In a
//! pool that is filling up sequentially the first probe succeeds; in a fragmented one each page
//! skips a run of taken slots. A search that finds nothing within [`MAX_ROWS_PER_SEARCH`] rows
//! gives up (the next search resumes where it stopped), so the hot path stays bounded.
//!
//! A pool whose every slot has been passed over since the last one found in it is known to be
//! full: searches skip it (no rows read) until a lease is deleted or released anywhere
//! ([`Allocator::slots_may_be_free`]) or [`FULL_RECHECK_SECS`] pass (rows also become reusable
//! by time alone: an expiry plus the grace period, an offer running out). Without this, every
//! Solicit to a full pool would read a whole budget of rows, and a full pool would turn the
//! controller's own Solicit rate into a few hundred per second.
//!
//! An offer is a hold, not a lease: when a pool has nothing else free, a new client may take
//! over the oldest offer held for someone else, once it is [`OFFER_TAKEOVER_AFTER_SECS`] old
//! (a 4-way exchange takes well under a second). Otherwise a Solicit flood from made-up DUIDs
//! would keep a whole pool on hold, a minute at a time, from everyone else.
//!
//! A slot is free for a client when it is not reserved for another DUID, not offered to another
//! client in a pending Advertise, and either has no lease row, or a row of this client, or a row
//! whose `expire + grace-period` has passed (a declined row: whose quarantine `expire` has passed).

use std::collections::{HashMap, VecDeque};
use std::net::Ipv6Addr;

use crate::binding_rule::{in_pools, Claimant, Reservations, Standing};
use crate::config::classes::ClassSet;
use crate::config::{Config, PoolHalf, Subnet};
use crate::store::{mask, Lease, LeaseKey, LeaseState, LeaseType, StoreError};

/// Rows fetched per page when skipping taken slots.
pub const PAGE_ROWS: usize = 256;
/// Rows and candidates examined by one search before it gives up.
pub const MAX_ROWS_PER_SEARCH: usize = 16 * 1024;
/// How long a pool found full is skipped before a search looks at it again (seconds).
pub const FULL_RECHECK_SECS: i64 = 2;
/// How long an address offered in an Advertise is kept for that client (seconds).
pub const OFFER_HOLD_SECS: i64 = 60;
/// An offer at least this old may be taken over when its pool has nothing else free (seconds).
pub const OFFER_TAKEOVER_AFTER_SECS: i64 = 5;
/// Live offers looked at, oldest first, by one search for an offer to take over.
const TAKEOVER_CANDIDATES: usize = 64;
/// Entries of the offer queue, live or stale, one such search walks at most.
const TAKEOVER_STEPS: usize = 1024;
/// Offers remembered at most (oldest are dropped first when a purge finds too many).
pub const MAX_OFFERS: usize = 1 << 20;

/// Read access to the leases as the server currently sees them (durable rows plus commits in
/// flight). Implemented over the store; tests use a `BTreeMap`.
pub trait LeaseView {
    /// The lease with exactly this key.
    fn get(&self, key: &LeaseKey) -> Result<Option<Lease>, StoreError>;
    /// Up to `limit` lease rows with key greater than `after`, in key order.
    fn scan_after(&self, after: Option<&LeaseKey>, limit: usize) -> Result<Vec<Lease>, StoreError>;
    /// Every lease of this client (any state, any IA).
    fn by_duid(&self, duid: &[u8]) -> Result<Vec<Lease>, StoreError>;
    /// Every lease served on this line (its stored `line`, any state).
    fn by_line(&self, line: &[u8]) -> Result<Vec<Lease>, StoreError>;
}

impl LeaseView for std::collections::BTreeMap<LeaseKey, Lease> {
    fn get(&self, key: &LeaseKey) -> Result<Option<Lease>, StoreError> {
        Ok(std::collections::BTreeMap::get(self, key).cloned())
    }

    fn scan_after(&self, after: Option<&LeaseKey>, limit: usize) -> Result<Vec<Lease>, StoreError> {
        use std::ops::Bound;
        let lower = after.map_or(Bound::Unbounded, |key| Bound::Excluded(*key));
        Ok(self
            .range((lower, Bound::Unbounded))
            .take(limit)
            .map(|(_, lease)| lease.clone())
            .collect())
    }

    fn by_duid(&self, duid: &[u8]) -> Result<Vec<Lease>, StoreError> {
        Ok(self.values().filter(|l| l.duid == duid).cloned().collect())
    }

    fn by_line(&self, line: &[u8]) -> Result<Vec<Lease>, StoreError> {
        Ok(self
            .values()
            .filter(|l| l.line.as_deref() == Some(line))
            .cloned()
            .collect())
    }
}

/// The slots of one pool: slot `i` is `base + (i << shift)` with prefix length `prefix_len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slots {
    lease_type: LeaseType,
    base: u128,
    shift: u32,
    count: u128,
    prefix_len: u8,
}

impl Slots {
    fn key(&self, index: u128) -> LeaseKey {
        let offset = index.checked_shl(self.shift).unwrap_or(0);
        LeaseKey {
            lease_type: self.lease_type,
            address: Ipv6Addr::from(self.base + offset),
            prefix_len: self.prefix_len,
        }
    }

    /// The slot a row falls in, `None` when it is outside the pool (or of the other type).
    fn index_of(&self, key: &LeaseKey) -> Option<u128> {
        if key.lease_type != self.lease_type {
            return None;
        }
        let offset = u128::from(key.address).checked_sub(self.base)?;
        let index = offset.checked_shr(self.shift).unwrap_or(0);
        (index < self.count).then_some(index)
    }
}

/// Identity of a pool for its cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PoolId {
    subnet: u32,
    lease_type: LeaseType,
    index: usize,
}

#[derive(Debug, Clone)]
struct Offer {
    duid: Vec<u8>,
    until: i64,
}

/// Chooses addresses and prefixes; owned by the server's decision state (one at a time).
#[derive(Debug)]
pub struct Allocator {
    grace_period: i64,
    cursors: HashMap<PoolId, u128>,
    /// Slots passed over in each pool since the last one found there (searches that ran out
    /// of budget add up; a whole pool's worth means it is full).
    passed: HashMap<PoolId, u128>,
    /// Pools found full, and the time from which a search looks at them again.
    full_until: HashMap<PoolId, i64>,
    offers: HashMap<LeaseKey, Offer>,
    /// Every hold in the order it was made, which is the order of their ends (an entry whose
    /// offer has since gone or been renewed is stale and skipped).
    offer_order: VecDeque<(i64, LeaseKey)>,
    /// The reservations of every subnet (who each reserved address/prefix is for).
    reservations: Reservations,
    /// In a redundant pair, the half of every pool new leases come from (`[leasequery]
    /// pool-half`); renewals of leases in the other half (granted by the peer) still work.
    half: Option<PoolHalf>,
    /// Where a pool's cursor starts (modulo its size): 0, or a point of this server's own
    /// when several servers share the database, so that they seldom race for one slot.
    first_cursor: u128,
}

/// Why a search found nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exhausted {
    /// The subnet has no pool of this type.
    NoPool,
    /// Every slot examined is taken.
    Full,
}

impl Allocator {
    /// An allocator for `config`'s pools and reservations.
    pub fn new(config: &Config) -> Self {
        Allocator {
            grace_period: i64::from(config.grace_period),
            cursors: HashMap::new(),
            passed: HashMap::new(),
            full_until: HashMap::new(),
            offers: HashMap::new(),
            offer_order: VecDeque::new(),
            reservations: Reservations::new(config),
            half: config.leasequery.pool_half,
            first_cursor: 0,
        }
    }

    /// Takes `config`'s pools and reservations after a reload. The offers held stay (an
    /// Advertise made a moment ago still holds); each pool's cursor stays where it was (taken
    /// modulo the pool's new size); pools found full are searched again, as they may have grown.
    pub fn reconfigure(&mut self, config: &Config) {
        self.grace_period = i64::from(config.grace_period);
        self.reservations = Reservations::new(config);
        self.half = config.leasequery.pool_half;
        self.passed.clear();
        self.full_until.clear();
    }

    /// Starts every pool's search at a point derived from `seed` (a server of several sharing
    /// one database: each walks its own stretch of the pools first).
    pub fn start_cursors_at(&mut self, seed: u64) {
        self.first_cursor = u128::from(seed);
    }

    /// True if `lease` (a row of another client) may be handed to someone else at `now`.
    pub fn reusable(&self, lease: &Lease, now: i64) -> bool {
        match lease.state {
            // The quarantine is the declined row's own expiry.
            LeaseState::Declined => now >= lease.expire,
            _ => now >= lease.expire.saturating_add(self.grace_period),
        }
    }

    /// True if `key` may be given to `client` at `now`.
    pub fn is_free_for(
        &self,
        view: &dyn LeaseView,
        key: &LeaseKey,
        client: &Claimant<'_>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let duid = client.duid;
        if self.reservations.reserved_for_another(key, client) {
            return Ok(false);
        }
        if self.offered_to_another(key, duid, now) {
            return Ok(false);
        }
        Ok(match view.get(key)? {
            None => true,
            Some(lease) if lease.state == LeaseState::Declined => self.reusable(&lease, now),
            Some(lease) => lease.duid == duid || self.reusable(&lease, now),
        })
    }

    /// True if `key` is reserved for a client other than `client`.
    pub fn reserved_for_another(&self, key: &LeaseKey, client: &Claimant<'_>) -> bool {
        self.reservations.reserved_for_another(key, client)
    }

    /// True if `key` is held in a pending Advertise for a client other than `duid`.
    pub fn offered_to_another(&self, key: &LeaseKey, duid: &[u8], now: i64) -> bool {
        self.offers
            .get(key)
            .is_some_and(|offer| offer.duid != duid && offer.until > now)
    }

    /// The line identities the reservations need of `lease` (see
    /// [`Reservations::lines_of`]).
    pub fn lines_of(&self, lease: &Lease) -> crate::line::LineIds {
        self.reservations.lines_of(lease)
    }

    /// Keeps `key` for `duid` for a while after an Advertise, so that a second client soliciting
    /// at the same moment is offered something else.
    pub fn hold_offer(&mut self, key: LeaseKey, duid: &[u8], now: i64) {
        let until = now + OFFER_HOLD_SECS;
        self.offers.insert(
            key,
            Offer {
                duid: duid.to_vec(),
                until,
            },
        );
        self.offer_order.push_back((until, key));
    }

    /// The reservations the allocator honours (the operator API adds and removes some at run
    /// time).
    pub fn reservations_mut(&mut self) -> &mut Reservations {
        &mut self.reservations
    }

    /// The reservations the allocator honours.
    pub fn reservations(&self) -> &Reservations {
        &self.reservations
    }

    /// Drops the hold on `key` (the client took it, or released it).
    pub fn drop_offer(&mut self, key: &LeaseKey) {
        self.offers.remove(key);
    }

    /// A lease was deleted or given up: pools found full are searched again.
    pub fn slots_may_be_free(&mut self) {
        self.full_until.clear();
        self.passed.clear();
    }

    /// Pools currently skipped as full.
    #[cfg(test)]
    fn pools_known_full(&self, now: i64) -> usize {
        self.full_until
            .values()
            .filter(|&&until| now < until)
            .count()
    }

    /// Forgets offers that ran out (called from the reclaim timer); bounds the table.
    pub fn purge_offers(&mut self, now: i64) {
        self.offers.retain(|_, offer| offer.until > now);
        if self.offers.len() > MAX_OFFERS {
            let mut untils: Vec<i64> = self.offers.values().map(|o| o.until).collect();
            let cut = untils.len() - MAX_OFFERS;
            untils.select_nth_unstable(cut);
            let threshold = untils[cut];
            self.offers.retain(|_, offer| offer.until > threshold);
        }
        let offers = &self.offers;
        self.offer_order
            .retain(|(until, key)| offers.get(key).is_some_and(|o| o.until == *until));
    }

    /// The oldest offer held for another client in this server's share of `subnet`'s pools of
    /// `lease_type`, old enough to be taken over and otherwise free for `duid`; its hold is
    /// dropped. Looks at no more than [`TAKEOVER_CANDIDATES`] live offers ([`TAKEOVER_STEPS`]
    /// queue entries).
    fn take_over_offer(
        &mut self,
        view: &dyn LeaseView,
        subnet: &Subnet,
        lease_type: LeaseType,
        client: &Claimant<'_>,
        now: i64,
        classes: ClassSet,
    ) -> Result<Option<LeaseKey>, StoreError> {
        let duid = client.duid;
        let old_enough = now - OFFER_TAKEOVER_AFTER_SECS + OFFER_HOLD_SECS;
        let mut looked = 0;
        let mut index = 0;
        let mut steps = 0;
        while index < self.offer_order.len() && looked < TAKEOVER_CANDIDATES {
            steps += 1;
            if steps > TAKEOVER_STEPS {
                break;
            }
            let (until, key) = self.offer_order[index];
            let live = self
                .offers
                .get(&key)
                .filter(|offer| offer.until == until && offer.until > now);
            let Some(offer) = live else {
                // Stale entries at the front go for good; further in, the purge takes them.
                if index == 0 {
                    self.offer_order.pop_front();
                } else {
                    index += 1;
                }
                continue;
            };
            if until > old_enough {
                // Holds are queued in the order they end: every later one is younger still.
                break;
            }
            looked += 1;
            index += 1;
            if offer.duid == duid
                || key.lease_type != lease_type
                || !self.owns(subnet, &key)
                || !subnet.admits(&key, classes)
            {
                continue;
            }
            let held = self.offers.remove(&key).expect("a live offer");
            if self.is_free_for(view, &key, client, now)? {
                self.offer_order.remove(index - 1);
                return Ok(Some(key));
            }
            self.offers.insert(key, held);
        }
        Ok(None)
    }

    /// Number of offers held (for tests and stats).
    pub fn offers_held(&self) -> usize {
        self.offers.len()
    }

    /// The reservation of `client` in `subnet` for this lease type (by DUID, else by line), as
    /// a key.
    pub fn reservation(
        &self,
        subnet: &Subnet,
        lease_type: LeaseType,
        client: &Claimant<'_>,
    ) -> Option<LeaseKey> {
        self.reservations.of_client(subnet.id, lease_type, client)
    }

    /// True if `key` may be handed out in `subnet` at all: inside one of its pools, or the
    /// subnet's reservation for `client`.
    pub fn in_subnet_pools(&self, subnet: &Subnet, key: &LeaseKey, client: &Claimant<'_>) -> bool {
        self.reservation(subnet, key.lease_type, client) == Some(*key) || in_pools(subnet, key)
    }

    /// Where `client`'s lease `key` in `subnet` stands: whether the controller keeps it as the
    /// client's binding ([`crate::binding_rule`], the rule the fast path follows too).
    pub fn standing(&self, subnet: &Subnet, key: &LeaseKey, client: &Claimant<'_>) -> Standing {
        self.reservations.standing(subnet, key, client)
    }

    /// Where `lease` stands in `subnet`, its client (DUID and line) read from the lease itself.
    pub fn lease_standing(&self, subnet: &Subnet, lease: &Lease) -> Standing {
        self.reservations.lease_standing(subnet, lease)
    }

    /// True if this server may grant `key` to a client that does not hold it yet: inside its
    /// share of one of `subnet`'s pools (all of them without `pool-half`). Reservations are
    /// the caller's to check. The rule is [`crate::binding_rule::in_own_half`], which the fast
    /// path's map sync follows too.
    pub fn owns(&self, subnet: &Subnet, key: &LeaseKey) -> bool {
        crate::binding_rule::in_own_half(subnet, self.half, key)
    }

    /// The part of a pool's slots this server allocates from.
    fn own_share(&self, slots: Slots) -> Slots {
        let Some(half) = self.half else {
            return slots;
        };
        let (first, count) = half.slots(slots.count);
        Slots {
            base: slots.base + first.checked_shl(slots.shift).unwrap_or(0),
            count,
            ..slots
        }
    }

    /// Chooses a new address (NA) or prefix (PD) for `client` in `subnet`: its reservation,
    /// else the client's hint when it is in a pool and free, else the next free slot.
    pub fn pick(
        &mut self,
        view: &dyn LeaseView,
        subnet: &Subnet,
        lease_type: LeaseType,
        client: &Claimant<'_>,
        hint: Option<(Ipv6Addr, u8)>,
        now: i64,
    ) -> Result<Result<LeaseKey, Exhausted>, StoreError> {
        let every = ClassSet(u64::MAX);
        self.pick_for_classes(view, subnet, lease_type, client, hint, now, every)
    }

    /// [`Allocator::pick`] for a client in `classes`: only from pools that serve one of them
    /// (or name none); the reservation whatever its pool.
    #[allow(clippy::too_many_arguments)]
    pub fn pick_for_classes(
        &mut self,
        view: &dyn LeaseView,
        subnet: &Subnet,
        lease_type: LeaseType,
        client: &Claimant<'_>,
        hint: Option<(Ipv6Addr, u8)>,
        now: i64,
        classes: ClassSet,
    ) -> Result<Result<LeaseKey, Exhausted>, StoreError> {
        if let Some(key) = self.reservation(subnet, lease_type, client) {
            if self.is_free_for(view, &key, client, now)? {
                return Ok(Ok(key));
            }
        }
        if let Some(key) = hint.and_then(|hint| hint_key(subnet, lease_type, hint)) {
            if self.owns(subnet, &key)
                && subnet.admits(&key, classes)
                && self.is_free_for(view, &key, client, now)?
            {
                return Ok(Ok(key));
            }
        }
        let slots: Vec<(PoolId, Slots)> = pool_slots(subnet, lease_type)
            .into_iter()
            .filter(|(id, _)| subnet.pool_admits(lease_type, id.index, classes))
            .map(|(id, slots)| (id, self.own_share(slots)))
            .filter(|(_, slots)| slots.count > 0)
            .collect();
        if slots.is_empty() {
            return Ok(Err(Exhausted::NoPool));
        }
        let mut budget = MAX_ROWS_PER_SEARCH;
        for (id, slots) in slots {
            if self.full_until.get(&id).is_some_and(|&until| now < until) {
                continue;
            }
            let start = self.cursors.get(&id).copied().unwrap_or(self.first_cursor) % slots.count;
            if let Some(key) = self.scan_pool(view, id, slots, client, now, &mut budget)? {
                self.passed.remove(&id);
                self.full_until.remove(&id);
                return Ok(Ok(key));
            }
            // Nothing found: the cursor stopped where the budget ran out, or went all the way
            // round back to `start`.
            let stop = self.cursors.get(&id).copied().unwrap_or(self.first_cursor) % slots.count;
            let went = if stop > start {
                stop - start
            } else if stop < start {
                slots.count - start + stop
            } else if budget > 0 {
                slots.count
            } else {
                0
            };
            let passed = self.passed.entry(id).or_insert(0);
            *passed = passed.saturating_add(went);
            if *passed >= slots.count {
                self.passed.remove(&id);
                self.full_until
                    .insert(id, now.saturating_add(FULL_RECHECK_SECS));
            }
            if budget == 0 {
                break;
            }
        }
        if let Some(key) = self.take_over_offer(view, subnet, lease_type, client, now, classes)? {
            return Ok(Ok(key));
        }
        Ok(Err(Exhausted::Full))
    }

    /// Walks one pool from its cursor, wrapping once, until a free slot or the budget ends.
    fn scan_pool(
        &mut self,
        view: &dyn LeaseView,
        id: PoolId,
        slots: Slots,
        client: &Claimant<'_>,
        now: i64,
        budget: &mut usize,
    ) -> Result<Option<LeaseKey>, StoreError> {
        let start = self.cursors.get(&id).copied().unwrap_or(self.first_cursor) % slots.count;
        for (first, end) in [(start, slots.count), (0, start)] {
            let mut next = first;
            while next < end {
                if *budget == 0 {
                    self.cursors.insert(id, next);
                    return Ok(None);
                }
                let after = key_before(&slots.key(next));
                let page = view.scan_after(after.as_ref(), PAGE_ROWS)?;
                let mut rows_end = page.len() < PAGE_ROWS;
                for lease in &page {
                    *budget = budget.saturating_sub(1);
                    let index = match slots.index_of(&lease.key()) {
                        Some(index) if index < end => index,
                        _ => {
                            rows_end = true;
                            break;
                        }
                    };
                    if index < next {
                        continue;
                    }
                    // Slots between rows have no lease; only holds and reservations can bar them.
                    match self.first_free(view, id, slots, next, index, client, now, budget)? {
                        Ok(key) => return Ok(Some(key)),
                        // The budget ran out in the gap: resume there, not past it.
                        Err(stopped) if stopped < index => {
                            next = stopped;
                            break;
                        }
                        Err(_) => {}
                    }
                    next = index + 1;
                    let key = slots.key(index);
                    if key == lease.key() && self.is_free_for(view, &key, client, now)? {
                        self.cursors.insert(id, (index + 1) % slots.count);
                        return Ok(Some(key));
                    }
                    if *budget == 0 {
                        break;
                    }
                }
                if rows_end && *budget > 0 {
                    match self.first_free(view, id, slots, next, end, client, now, budget)? {
                        Ok(key) => return Ok(Some(key)),
                        Err(stopped) => next = stopped,
                    }
                }
            }
        }
        self.cursors.insert(id, start);
        Ok(None)
    }

    /// The first free slot in `from..to` (slots with no row of their own), within the budget;
    /// moves the pool's cursor past it. `Err` holds the slot the search stopped at: `to`, or
    /// the first one not examined when the budget ran out.
    #[allow(clippy::too_many_arguments)]
    fn first_free(
        &mut self,
        view: &dyn LeaseView,
        id: PoolId,
        slots: Slots,
        from: u128,
        to: u128,
        client: &Claimant<'_>,
        now: i64,
        budget: &mut usize,
    ) -> Result<Result<LeaseKey, u128>, StoreError> {
        let mut index = from;
        while index < to && *budget > 0 {
            *budget -= 1;
            let key = slots.key(index);
            if self.is_free_for(view, &key, client, now)? {
                self.cursors.insert(id, (index + 1) % slots.count);
                return Ok(Ok(key));
            }
            index += 1;
        }
        Ok(Err(index))
    }
}

/// Every pool of `lease_type` in `subnet` as slots.
fn pool_slots(subnet: &Subnet, lease_type: LeaseType) -> Vec<(PoolId, Slots)> {
    match lease_type {
        LeaseType::Na => subnet
            .pools
            .iter()
            .enumerate()
            .map(|(index, pool)| {
                let slots = Slots {
                    lease_type,
                    base: u128::from(pool.low),
                    shift: 0,
                    count: pool.size(),
                    prefix_len: 128,
                };
                (pool_id(subnet, lease_type, index), slots)
            })
            .collect(),
        LeaseType::Pd => subnet
            .pd_pools
            .iter()
            .enumerate()
            .map(|(index, pool)| {
                let slots = Slots {
                    lease_type,
                    base: u128::from(pool.prefix.network()),
                    shift: 128 - u32::from(pool.delegated_length),
                    count: pool.size(),
                    prefix_len: pool.delegated_length,
                };
                (pool_id(subnet, lease_type, index), slots)
            })
            .collect(),
    }
}

fn pool_id(subnet: &Subnet, lease_type: LeaseType, index: usize) -> PoolId {
    PoolId {
        subnet: subnet.id,
        lease_type,
        index,
    }
}

/// The key just below every key of `key`'s address: a scan after it starts at that address.
fn key_before(key: &LeaseKey) -> Option<LeaseKey> {
    match u128::from(key.address).checked_sub(1) {
        Some(below) => Some(LeaseKey {
            lease_type: key.lease_type,
            address: Ipv6Addr::from(below),
            prefix_len: u8::MAX,
        }),
        None if key.lease_type == LeaseType::Pd => Some(LeaseKey {
            lease_type: LeaseType::Na,
            address: Ipv6Addr::from(u128::MAX),
            prefix_len: u8::MAX,
        }),
        None => None,
    }
}

/// The slot a client's hint asks for, when it is one the subnet's pools hand out.
fn hint_key(subnet: &Subnet, lease_type: LeaseType, hint: (Ipv6Addr, u8)) -> Option<LeaseKey> {
    let (address, len) = hint;
    if address.is_unspecified() {
        return None;
    }
    match lease_type {
        LeaseType::Na => subnet
            .pools
            .iter()
            .any(|pool| pool.contains(address))
            .then(|| LeaseKey::na(address)),
        LeaseType::Pd => subnet.pd_pools.iter().find_map(|pool| {
            // A hint of another length still names where the client would like to be.
            let _ = len;
            let prefix = mask(address, pool.delegated_length);
            pool.holds(prefix, pool.delegated_length)
                .then(|| LeaseKey::pd(prefix, pool.delegated_length))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::LeaseType;
    use std::collections::BTreeMap;

    fn config(extra: &str) -> Config {
        let text = format!(
            "grace-period = 100\n[[subnet]]\nprefix = \"2001:db8:1::/64\"\n\
             pools = [{{ low = \"2001:db8:1::10\", high = \"2001:db8:1::1f\" }}]\n\
             pd-pools = [{{ prefix = \"2001:db8:8000::/48\", delegated-length = 56 }}]\n{extra}"
        );
        Config::parse(&text, "t").unwrap()
    }

    fn addr(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    fn lease(key: LeaseKey, duid: &[u8], expire: i64, state: LeaseState) -> Lease {
        Lease {
            cltt: expire,
            expire,
            state,
            ..Lease::bare(
                key.lease_type,
                key.address,
                key.prefix_len,
                duid.to_vec(),
                1,
                1,
            )
        }
    }

    fn pick(
        alloc: &mut Allocator,
        view: &BTreeMap<LeaseKey, Lease>,
        config: &Config,
        lease_type: LeaseType,
        duid: &[u8],
        hint: Option<(Ipv6Addr, u8)>,
    ) -> Result<LeaseKey, Exhausted> {
        alloc
            .pick(
                view,
                &config.subnets[0],
                lease_type,
                &Claimant::duid(duid),
                hint,
                1000,
            )
            .unwrap()
    }

    #[test]
    fn hands_out_sequentially_and_skips_taken() {
        let config = config("");
        let mut alloc = Allocator::new(&config);
        let mut view = BTreeMap::new();
        for a in ["2001:db8:1::10", "2001:db8:1::11", "2001:db8:1::13"] {
            let key = LeaseKey::na(addr(a));
            view.insert(key, lease(key, b"other", 5000, LeaseState::Assigned));
        }
        let first = pick(&mut alloc, &view, &config, LeaseType::Na, b"me", None).unwrap();
        assert_eq!(first.address, addr("2001:db8:1::12"));
        view.insert(first, lease(first, b"me", 5000, LeaseState::Assigned));
        let second = pick(&mut alloc, &view, &config, LeaseType::Na, b"you", None).unwrap();
        assert_eq!(second.address, addr("2001:db8:1::14"));
    }

    #[test]
    fn pool_halves_of_a_redundant_pair_never_meet() {
        let lower_config = config("[leasequery]\npool-half = \"lower\"\n");
        let upper_config = config("[leasequery]\npool-half = \"upper\"\n");
        let mut lower = Allocator::new(&lower_config);
        let mut upper = Allocator::new(&upper_config);
        // Each fills only its own store: neither sees what the other granted.
        for lease_type in [LeaseType::Na, LeaseType::Pd] {
            let (mut lower_view, mut upper_view) = (BTreeMap::new(), BTreeMap::new());
            let mut granted = std::collections::HashSet::new();
            for n in 0u32.. {
                let duid = n.to_be_bytes();
                let picks = [
                    (&mut lower, &lower_config, &mut lower_view),
                    (&mut upper, &upper_config, &mut upper_view),
                ];
                let mut any = false;
                for (alloc, config, view) in picks {
                    if let Ok(key) = pick(alloc, view, config, lease_type, &duid, None) {
                        assert!(granted.insert(key), "{key:?} granted twice");
                        view.insert(key, lease(key, &duid, 5000, LeaseState::Assigned));
                        any = true;
                    }
                }
                if !any {
                    break;
                }
            }
            let total = if lease_type == LeaseType::Na { 16 } else { 256 };
            assert_eq!(granted.len(), total, "{lease_type:?}: every slot, once");
        }
        // A hint into the peer's half is not ours to grant; one into ours is. The view starts
        // empty again, as if every lease had been deleted: the allocator is told so.
        let view = BTreeMap::new();
        lower.slots_may_be_free();
        let theirs = addr("2001:db8:1::1f");
        let got = pick(
            &mut lower,
            &view,
            &lower_config,
            LeaseType::Na,
            b"x",
            Some((theirs, 128)),
        );
        assert_ne!(got.unwrap().address, theirs);
        assert!(upper.owns(&upper_config.subnets[0], &LeaseKey::na(theirs)));
        assert!(!lower.owns(&lower_config.subnets[0], &LeaseKey::na(theirs)));
        let mine = addr("2001:db8:1::15");
        let got = pick(
            &mut lower,
            &view,
            &lower_config,
            LeaseType::Na,
            b"x",
            Some((mine, 128)),
        );
        assert_eq!(got.unwrap().address, mine);
    }

    #[test]
    fn honours_a_free_hint_in_a_pool_only() {
        let config = config("");
        let mut alloc = Allocator::new(&config);
        let mut view = BTreeMap::new();
        let hinted = pick(
            &mut alloc,
            &view,
            &config,
            LeaseType::Na,
            b"me",
            Some((addr("2001:db8:1::1c"), 128)),
        )
        .unwrap();
        assert_eq!(hinted.address, addr("2001:db8:1::1c"));
        // Outside every pool: ignored.
        let other = pick(
            &mut alloc,
            &view,
            &config,
            LeaseType::Na,
            b"me",
            Some((addr("2001:db8:1::99"), 128)),
        )
        .unwrap();
        assert_eq!(other.address, addr("2001:db8:1::10"));
        // Taken by another client: ignored.
        view.insert(hinted, lease(hinted, b"other", 5000, LeaseState::Assigned));
        let again = pick(
            &mut alloc,
            &view,
            &config,
            LeaseType::Na,
            b"me",
            Some((addr("2001:db8:1::1c"), 128)),
        )
        .unwrap();
        assert_ne!(again.address, addr("2001:db8:1::1c"));
    }

    #[test]
    fn reservations_come_first_and_are_kept_from_others() {
        let config = config(
            "reservations = [{ duid = \"aabb\", address = \"2001:db8:1::10\", prefix = \"2001:db8:9::/56\" }]",
        );
        let mut alloc = Allocator::new(&config);
        let view = BTreeMap::new();
        let other = pick(&mut alloc, &view, &config, LeaseType::Na, b"zz", None).unwrap();
        assert_eq!(other.address, addr("2001:db8:1::11"));
        let owner = pick(
            &mut alloc,
            &view,
            &config,
            LeaseType::Na,
            &[0xaa, 0xbb],
            None,
        )
        .unwrap();
        assert_eq!(owner.address, addr("2001:db8:1::10"));
        let prefix = pick(
            &mut alloc,
            &view,
            &config,
            LeaseType::Pd,
            &[0xaa, 0xbb],
            None,
        )
        .unwrap();
        assert_eq!(prefix, LeaseKey::pd(addr("2001:db8:9::"), 56));
    }

    #[test]
    fn grace_period_and_decline_quarantine() {
        let config = config("");
        let mut alloc = Allocator::new(&config);
        let mut view = BTreeMap::new();
        // Expired at 950: still in grace (until 1050) at now = 1000.
        let in_grace = LeaseKey::na(addr("2001:db8:1::10"));
        view.insert(
            in_grace,
            lease(in_grace, b"old", 950, LeaseState::ExpiredReclaimed),
        );
        // Released long ago: reusable.
        let stale = LeaseKey::na(addr("2001:db8:1::11"));
        view.insert(stale, lease(stale, b"old", 800, LeaseState::Released));
        let got = pick(&mut alloc, &view, &config, LeaseType::Na, b"me", None).unwrap();
        assert_eq!(got, stale);
        // The client whose lease is in grace gets it back.
        assert!(alloc
            .is_free_for(&view, &in_grace, &Claimant::duid(b"old"), 1000)
            .unwrap());
        // Declined: quarantined until its expiry, even for the client that declined it.
        let declined = LeaseKey::na(addr("2001:db8:1::12"));
        view.insert(declined, lease(declined, b"me", 1500, LeaseState::Declined));
        assert!(!alloc
            .is_free_for(&view, &declined, &Claimant::duid(b"me"), 1000)
            .unwrap());
        assert!(alloc
            .is_free_for(&view, &declined, &Claimant::duid(b"me"), 1500)
            .unwrap());
    }

    #[test]
    fn offers_hold_an_address_for_a_minute() {
        let config = config("");
        let mut alloc = Allocator::new(&config);
        let view = BTreeMap::new();
        let first = pick(&mut alloc, &view, &config, LeaseType::Na, b"a", None).unwrap();
        alloc.hold_offer(first, b"a", 1000);
        assert!(!alloc
            .is_free_for(&view, &first, &Claimant::duid(b"b"), 1000)
            .unwrap());
        assert!(alloc
            .is_free_for(&view, &first, &Claimant::duid(b"a"), 1000)
            .unwrap());
        alloc.purge_offers(1000 + OFFER_HOLD_SECS);
        assert_eq!(alloc.offers_held(), 0);
    }

    #[test]
    fn a_pool_held_by_offers_gives_the_oldest_one_over_once_it_is_old_enough() {
        // A Solicit flood from made-up DUIDs: every one of the 16 addresses offered at 1000.
        let config = config("");
        let mut alloc = Allocator::new(&config);
        let mut view = BTreeMap::new();
        let at =
            |now: i64, alloc: &mut Allocator, view: &BTreeMap<LeaseKey, Lease>, duid: &[u8]| {
                alloc
                    .pick(
                        view,
                        &config.subnets[0],
                        LeaseType::Na,
                        &Claimant::duid(duid),
                        None,
                        now,
                    )
                    .unwrap()
            };
        let mut flooded = Vec::new();
        for n in 0..16u8 {
            let key = at(1000, &mut alloc, &view, &[0xf1, n]).unwrap();
            alloc.hold_offer(key, &[0xf1, n], 1000);
            flooded.push(key);
        }
        // A client mid-exchange keeps its offer: nothing is taken over before it is 5 s old.
        assert_eq!(at(1001, &mut alloc, &view, b"me"), Err(Exhausted::Full));
        let young = 1000 + OFFER_TAKEOVER_AFTER_SECS - 1;
        assert_eq!(at(young, &mut alloc, &view, b"me"), Err(Exhausted::Full));
        // Old enough: the oldest offer goes to the new client, and it holds it from now on.
        let now = 1000 + OFFER_TAKEOVER_AFTER_SECS;
        let mine = at(now, &mut alloc, &view, b"me").unwrap();
        assert_eq!(mine, flooded[0]);
        alloc.hold_offer(mine, b"me", now);
        assert!(!alloc
            .is_free_for(&view, &mine, &Claimant::duid(&[0xf1, 0]), now)
            .unwrap());
        let yours = at(now, &mut alloc, &view, b"you").unwrap();
        assert_eq!(yours, flooded[1]);
        alloc.hold_offer(yours, b"you", now);
        // A slot that became a lease is never taken over: only holds are.
        for key in &flooded[2..] {
            view.insert(*key, lease(*key, b"leased", 5000, LeaseState::Assigned));
            alloc.drop_offer(key);
        }
        alloc.slots_may_be_free();
        assert_eq!(at(now, &mut alloc, &view, b"third"), Err(Exhausted::Full));
        // The purge forgets the queue entries of offers that are gone.
        alloc.purge_offers(now);
        assert_eq!(alloc.offer_order.len(), alloc.offers_held());
    }

    #[test]
    fn full_pool_is_exhausted_and_wraps() {
        let config = config("");
        let mut alloc = Allocator::new(&config);
        let mut view = BTreeMap::new();
        for i in 0..16u128 {
            let key = LeaseKey::na(Ipv6Addr::from(u128::from(addr("2001:db8:1::10")) + i));
            view.insert(key, lease(key, b"other", 5000, LeaseState::Assigned));
        }
        assert_eq!(
            pick(&mut alloc, &view, &config, LeaseType::Na, b"me", None),
            Err(Exhausted::Full)
        );
        assert_eq!(alloc.pools_known_full(1000), 1);
        // One frees up behind the cursor; the deletion reaches the allocator (the server's
        // durable hook does this): found by wrapping.
        view.remove(&LeaseKey::na(addr("2001:db8:1::13")));
        alloc.slots_may_be_free();
        let got = pick(&mut alloc, &view, &config, LeaseType::Na, b"me", None).unwrap();
        assert_eq!(got.address, addr("2001:db8:1::13"));
    }

    /// A view that counts the rows it is asked for.
    struct CountingView {
        leases: BTreeMap<LeaseKey, Lease>,
        reads: std::cell::Cell<usize>,
    }

    impl LeaseView for CountingView {
        fn get(&self, key: &LeaseKey) -> Result<Option<Lease>, StoreError> {
            self.reads.set(self.reads.get() + 1);
            LeaseView::get(&self.leases, key)
        }
        fn scan_after(
            &self,
            after: Option<&LeaseKey>,
            limit: usize,
        ) -> Result<Vec<Lease>, StoreError> {
            self.reads.set(self.reads.get() + 1);
            self.leases.scan_after(after, limit)
        }
        fn by_duid(&self, duid: &[u8]) -> Result<Vec<Lease>, StoreError> {
            self.leases.by_duid(duid)
        }
        fn by_line(&self, line: &[u8]) -> Result<Vec<Lease>, StoreError> {
            self.leases.by_line(line)
        }
    }

    fn full_view(base: Ipv6Addr, count: u128) -> CountingView {
        let mut leases = BTreeMap::new();
        for i in 0..count {
            let key = LeaseKey::na(Ipv6Addr::from(u128::from(base) + i));
            leases.insert(key, lease(key, b"other", 5000, LeaseState::Assigned));
        }
        CountingView {
            leases,
            reads: std::cell::Cell::new(0),
        }
    }

    #[test]
    fn a_pool_found_full_is_skipped_until_a_slot_may_be_free() {
        // 65 536 slots, all taken: more than one search's budget, so it takes several searches
        // (each resuming where the last stopped) to know the pool is full.
        let text = "grace-period = 100\n[[subnet]]\nprefix = \"2001:db8:1::/64\"\n\
                    pools = [{ low = \"2001:db8:1::1:0\", high = \"2001:db8:1::1:ffff\" }]\n";
        let config = Config::parse(text, "t").unwrap();
        let mut alloc = Allocator::new(&config);
        let mut view = full_view(addr("2001:db8:1::1:0"), 0x1_0000);
        let subnet = &config.subnets[0];
        let mut searches = 0;
        while alloc.pools_known_full(1000) == 0 {
            searches += 1;
            assert!(searches <= 8, "the full pool was never recognised");
            let got = alloc.pick(
                &view,
                subnet,
                LeaseType::Na,
                &Claimant::duid(b"me"),
                None,
                1000,
            );
            assert_eq!(got.unwrap(), Err(Exhausted::Full));
        }
        assert!(
            searches >= 2,
            "one search's budget cannot cover 65 536 slots"
        );
        // Now a Solicit costs no rows at all.
        let reads = view.reads.get();
        for _ in 0..100 {
            let got = alloc.pick(
                &view,
                subnet,
                LeaseType::Na,
                &Claimant::duid(b"me"),
                None,
                1001,
            );
            assert_eq!(got.unwrap(), Err(Exhausted::Full));
        }
        assert_eq!(view.reads.get(), reads);
        // Time alone makes rows reusable (expiry plus grace): looked at again after a while.
        let later = 1000 + FULL_RECHECK_SECS;
        let got = alloc.pick(
            &view,
            subnet,
            LeaseType::Na,
            &Claimant::duid(b"me"),
            None,
            later,
        );
        assert_eq!(got.unwrap(), Err(Exhausted::Full));
        assert!(view.reads.get() > reads);
        // A deleted row is found at once, wherever the cursor is.
        let freed = LeaseKey::na(addr("2001:db8:1::1:1234"));
        view.leases.remove(&freed);
        alloc.slots_may_be_free();
        let mut found = None;
        for _ in 0..8 {
            if let Ok(key) = alloc
                .pick(
                    &view,
                    subnet,
                    LeaseType::Na,
                    &Claimant::duid(b"me"),
                    None,
                    later,
                )
                .unwrap()
            {
                found = Some(key);
                break;
            }
        }
        assert_eq!(found, Some(freed));
    }

    #[test]
    fn a_search_that_runs_out_in_a_gap_resumes_there() {
        // No rows at all, but the first 20 000 slots held for other clients' Advertises: more
        // than one search's budget of slots without a row. The next search must go on from
        // where the last one stopped, not start over (which would never get past the holds).
        let config = Config::parse(
            "[[subnet]]\nprefix = \"2001:db8:1::/64\"\n\
             pools = [{ low = \"2001:db8:1::\", high = \"2001:db8:1::ffff:ffff\" }]\n",
            "t",
        )
        .unwrap();
        let mut alloc = Allocator::new(&config);
        let base = u128::from(addr("2001:db8:1::"));
        for i in 0..20_000u128 {
            alloc.hold_offer(LeaseKey::na(Ipv6Addr::from(base + i)), b"other", 1000);
        }
        let view = BTreeMap::new();
        let mut found = None;
        for _ in 0..4 {
            if let Ok(key) = pick(&mut alloc, &view, &config, LeaseType::Na, b"me", None) {
                found = Some(key);
                break;
            }
        }
        assert_eq!(
            found.map(|k| k.address),
            Some(Ipv6Addr::from(base + 20_000))
        );
    }

    #[test]
    fn prefixes_from_pd_pool_with_hint() {
        let config = config("");
        let mut alloc = Allocator::new(&config);
        let mut view = BTreeMap::new();
        let first = pick(&mut alloc, &view, &config, LeaseType::Pd, b"a", None).unwrap();
        assert_eq!(first, LeaseKey::pd(addr("2001:db8:8000::"), 56));
        view.insert(first, lease(first, b"a", 5000, LeaseState::Assigned));
        let second = pick(&mut alloc, &view, &config, LeaseType::Pd, b"b", None).unwrap();
        assert_eq!(second, LeaseKey::pd(addr("2001:db8:8000:100::"), 56));
        let hinted = pick(
            &mut alloc,
            &view,
            &config,
            LeaseType::Pd,
            b"c",
            Some((addr("2001:db8:8000:ab00::"), 56)),
        )
        .unwrap();
        assert_eq!(hinted, LeaseKey::pd(addr("2001:db8:8000:ab00::"), 56));
        assert_eq!(
            pick(&mut alloc, &view, &config, LeaseType::Na, b"c", None).map(|k| k.lease_type),
            Ok(LeaseType::Na)
        );
    }

    #[test]
    fn large_dense_pool_allocates_without_visiting_every_slot() {
        let text = "[[subnet]]\nprefix = \"2001:db8:1::/64\"\npools = [{ low = \"2001:db8:1::\", high = \"2001:db8:1::ffff:ffff\" }]\n";
        let config = Config::parse(text, "t").unwrap();
        let mut alloc = Allocator::new(&config);
        let mut view = BTreeMap::new();
        // 200k taken addresses in a row, then a restart (cursor at 0): found via page skips.
        let base = u128::from(addr("2001:db8:1::"));
        for i in 0..200_000u128 {
            let key = LeaseKey::na(Ipv6Addr::from(base + i));
            view.insert(key, lease(key, b"other", 5000, LeaseState::Assigned));
        }
        let mut found = None;
        // A search gives up after its budget; the next ones resume from where it stopped.
        for _ in 0..40 {
            if let Ok(key) = pick(&mut alloc, &view, &config, LeaseType::Na, b"me", None) {
                found = Some(key);
                break;
            }
        }
        assert_eq!(found.unwrap().address, Ipv6Addr::from(base + 200_000));
        view.insert(
            found.unwrap(),
            lease(found.unwrap(), b"me", 5000, LeaseState::Assigned),
        );
        let next = pick(&mut alloc, &view, &config, LeaseType::Na, b"you", None).unwrap();
        assert_eq!(next.address, Ipv6Addr::from(base + 200_001));
    }
}
