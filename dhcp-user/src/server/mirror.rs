//! The server's in-memory copy of the durable lease table.
//!
//! Decisions read leases on every request (the client's bindings, the slot a pool cursor points
//! at, pages of rows after it); from SQLite those reads were most of the controller's time. The
//! copy is loaded from the store when the server opens it and then kept equal to the durable rows
//! by the store writer, which applies each batch here once it is on disk and before it wakes the
//! batch's waiters (see [`crate::store::DurableHook`]), in commit order. Every lease write of the
//! server goes through that writer, so the copy never holds anything that is not durable; commits
//! still in flight are the decision state's overlay, as before.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::Ipv6Addr;
use std::ops::Bound;
use std::sync::Arc;

use crate::store::{
    Lease, LeaseChange, LeaseFilter, LeaseKey, LeasePages, LeaseState, LeaseStore, StoreError,
};

/// One lease row, compact: the DUID is shared with the per-client index, the interface name is
/// interned, and the relay data and host name (empty for most clients) live behind one pointer.
#[derive(Debug)]
struct Row {
    duid: Arc<[u8]>,
    interface: Arc<str>,
    link_address: Ipv6Addr,
    iaid: u32,
    subnet_id: u32,
    preferred_lifetime: u32,
    valid_lifetime: u32,
    cltt: i64,
    expire: i64,
    state: LeaseState,
    extra: Option<Box<Extra>>,
}

#[derive(Debug)]
struct Extra {
    relay_id: Option<Vec<u8>>,
    remote_id: Option<Vec<u8>>,
    relay_info: Vec<u8>,
    hostname: String,
    line: Option<Box<[u8]>>,
    next_hop: Option<Ipv6Addr>,
}

/// The keys of one client's rows (most clients have one or two).
#[derive(Debug)]
enum Keys {
    One(LeaseKey),
    Many(Vec<LeaseKey>),
}

impl Keys {
    fn as_slice(&self) -> &[LeaseKey] {
        match self {
            Keys::One(key) => std::slice::from_ref(key),
            Keys::Many(keys) => keys,
        }
    }
}

/// Leases by key (the store's scan order) and the keys of each client.
#[derive(Debug, Default)]
pub struct LeaseMirror {
    rows: BTreeMap<LeaseKey, Row>,
    /// DUID → keys of its rows, in key order.
    by_duid: HashMap<Arc<[u8]>, Keys>,
    /// Line (as stored) → keys of the rows served on it (sticky delegation by line).
    by_line: HashMap<Box<[u8]>, Vec<LeaseKey>>,
    interfaces: HashSet<Arc<str>>,
}

impl LeaseMirror {
    /// Every lease row of `store`.
    pub fn load(store: &dyn LeaseStore) -> Result<LeaseMirror, StoreError> {
        let mut mirror = LeaseMirror::default();
        let mut rows = Vec::new();
        for lease in LeasePages::new(store, LeaseFilter::All, 10_000) {
            let lease = lease?;
            mirror.index_line(&lease);
            let row = mirror.row_for(&lease);
            rows.push((lease.key(), row));
        }
        // Built in one go from rows in key order, the tree's nodes are full; inserted one by
        // one in order they stay about half full (a million leases: ~90 bytes more each).
        mirror.rows = rows.into_iter().collect();
        Ok(mirror)
    }

    /// Number of lease rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when there is no lease row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The row with this key.
    pub fn get(&self, key: &LeaseKey) -> Option<Lease> {
        self.rows.get(key).map(|row| lease(key, row))
    }

    /// Rows after `after` in key order (all rows from the first when `None`).
    pub fn range_after(&self, after: Option<&LeaseKey>) -> impl Iterator<Item = Lease> + '_ {
        let lower = after.map_or(Bound::Unbounded, |key| Bound::Excluded(*key));
        self.rows
            .range((lower, Bound::Unbounded))
            .map(|(key, row)| lease(key, row))
    }

    /// (interface, line, DUID) of every row active at `now` (a client once per row), the DUID shared
    /// with the row.
    pub fn active_clients(
        &self,
        now: i64,
    ) -> impl Iterator<Item = (&str, Option<&[u8]>, &Arc<[u8]>)> + '_ {
        self.rows
            .values()
            .filter(move |row| row.state == LeaseState::Assigned && row.expire > now)
            .map(|row| {
                let line = row.extra.as_ref().and_then(|e| e.line.as_deref());
                (&*row.interface, line, &row.duid)
            })
    }

    /// Up to `limit` rows of this client, in key order (as the store's `find` by DUID).
    pub fn by_duid(&self, duid: &[u8], limit: usize) -> impl Iterator<Item = Lease> + '_ {
        self.by_duid
            .get(duid)
            .map_or(&[][..], Keys::as_slice)
            .iter()
            .take(limit)
            .filter_map(|key| self.get(key))
    }

    /// The rows served on `line` (their stored `line`), in no particular order.
    pub fn by_line(&self, line: &[u8]) -> impl Iterator<Item = Lease> + '_ {
        self.by_line
            .get(line)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(|key| self.get(key))
    }

    /// Applies a durable batch, with the store's semantics for each change.
    pub fn apply(&mut self, changes: &[LeaseChange]) {
        for change in changes {
            match change {
                LeaseChange::Upsert(lease) => self.insert(lease),
                LeaseChange::Delete(key) => self.remove(key),
                LeaseChange::Renew {
                    key,
                    cltt,
                    preferred_lifetime,
                    valid_lifetime,
                } => {
                    // As the store: only an assigned lease whose stored cltt is not newer.
                    if let Some(row) = self.rows.get_mut(key) {
                        if row.state == LeaseState::Assigned && row.cltt <= *cltt {
                            row.cltt = *cltt;
                            row.preferred_lifetime = *preferred_lifetime;
                            row.valid_lifetime = *valid_lifetime;
                            row.expire = cltt.saturating_add(i64::from(*valid_lifetime));
                        }
                    }
                }
            }
        }
    }

    fn insert(&mut self, lease: &Lease) {
        let key = lease.key();
        if let Some(old) = self.rows.get(&key) {
            let old_duid = (*old.duid != *lease.duid).then(|| Arc::clone(&old.duid));
            let old_line = old.extra.as_ref().and_then(|e| e.line.clone());
            if let Some(old_duid) = old_duid {
                self.unindex(&old_duid, &key);
            }
            if old_line != lease.line {
                if let Some(line) = old_line {
                    self.unindex_line(&line, &key);
                }
            }
        }
        self.index_line(lease);
        let row = self.row_for(lease);
        self.rows.insert(key, row);
    }

    /// `lease`'s key indexed under the line it was served on (sticky delegation by line).
    fn index_line(&mut self, lease: &Lease) {
        if let Some(line) = &lease.line {
            let key = lease.key();
            let keys = self.by_line.entry(line.clone()).or_default();
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }

    /// The row for `lease`, its key indexed under its DUID (DUID and interface name shared).
    fn row_for(&mut self, lease: &Lease) -> Row {
        let key = lease.key();
        let duid: Arc<[u8]> = match self.by_duid.get_key_value(lease.duid.as_slice()) {
            Some((duid, keys)) => {
                let duid = Arc::clone(duid);
                if !keys.as_slice().contains(&key) {
                    let keys = self.by_duid.get_mut(&duid).expect("present");
                    let mut list = keys.as_slice().to_vec();
                    let at = list.partition_point(|k| *k < key);
                    list.insert(at, key);
                    *keys = Keys::Many(list);
                }
                duid
            }
            None => {
                let duid: Arc<[u8]> = Arc::from(lease.duid.as_slice());
                self.by_duid.insert(Arc::clone(&duid), Keys::One(key));
                duid
            }
        };
        let interface = match self.interfaces.get(lease.interface.as_str()) {
            Some(name) => Arc::clone(name),
            None => {
                let name: Arc<str> = Arc::from(lease.interface.as_str());
                self.interfaces.insert(Arc::clone(&name));
                name
            }
        };
        let extra = (lease.relay_id.is_some()
            || lease.remote_id.is_some()
            || !lease.relay_info.is_empty()
            || !lease.hostname.is_empty()
            || lease.line.is_some()
            || lease.next_hop.is_some())
        .then(|| {
            Box::new(Extra {
                relay_id: lease.relay_id.clone(),
                remote_id: lease.remote_id.clone(),
                relay_info: lease.relay_info.clone(),
                hostname: lease.hostname.clone(),
                line: lease.line.clone(),
                next_hop: lease.next_hop,
            })
        });
        Row {
            duid,
            interface,
            link_address: lease.link_address,
            iaid: lease.iaid,
            subnet_id: lease.subnet_id,
            preferred_lifetime: lease.preferred_lifetime,
            valid_lifetime: lease.valid_lifetime,
            cltt: lease.cltt,
            expire: lease.expire,
            state: lease.state,
            extra,
        }
    }

    fn remove(&mut self, key: &LeaseKey) {
        if let Some(old) = self.rows.remove(key) {
            self.unindex(&old.duid, key);
            if let Some(line) = old.extra.and_then(|e| e.line) {
                self.unindex_line(&line, key);
            }
        }
    }

    fn unindex_line(&mut self, line: &[u8], key: &LeaseKey) {
        if let Some(keys) = self.by_line.get_mut(line) {
            keys.retain(|k| k != key);
            if keys.is_empty() {
                self.by_line.remove(line);
            }
        }
    }

    fn unindex(&mut self, duid: &[u8], key: &LeaseKey) {
        let Some(keys) = self.by_duid.get_mut(duid) else {
            return;
        };
        let remaining: Vec<LeaseKey> = keys
            .as_slice()
            .iter()
            .filter(|k| *k != key)
            .copied()
            .collect();
        match remaining.len() {
            0 => {
                self.by_duid.remove(duid);
            }
            1 => *keys = Keys::One(remaining[0]),
            _ => *keys = Keys::Many(remaining),
        }
    }
}

/// The lease a row stands for.
fn lease(key: &LeaseKey, row: &Row) -> Lease {
    let (relay_id, remote_id, relay_info, hostname, line, next_hop) = match &row.extra {
        Some(extra) => (
            extra.relay_id.clone(),
            extra.remote_id.clone(),
            extra.relay_info.clone(),
            extra.hostname.clone(),
            extra.line.clone(),
            extra.next_hop,
        ),
        None => (None, None, Vec::new(), String::new(), None, None),
    };
    Lease {
        address: key.address,
        prefix_len: key.prefix_len,
        lease_type: key.lease_type,
        duid: row.duid.to_vec(),
        iaid: row.iaid,
        subnet_id: row.subnet_id,
        preferred_lifetime: row.preferred_lifetime,
        valid_lifetime: row.valid_lifetime,
        cltt: row.cltt,
        expire: row.expire,
        state: row.state,
        interface: row.interface.to_string(),
        link_address: row.link_address,
        relay_id,
        remote_id,
        relay_info,
        hostname,
        line,
        next_hop,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn lease(n: u16, duid: &[u8], cltt: i64) -> Lease {
        Lease {
            address: Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n),
            prefix_len: 128,
            lease_type: crate::store::LeaseType::Na,
            duid: duid.to_vec(),
            iaid: 1,
            subnet_id: 1,
            preferred_lifetime: 100,
            valid_lifetime: 200,
            cltt,
            expire: cltt + 200,
            state: LeaseState::Assigned,
            interface: "eth0".into(),
            link_address: Ipv6Addr::UNSPECIFIED,
            relay_id: None,
            remote_id: None,
            relay_info: Vec::new(),
            hostname: String::new(),
            line: None,
            next_hop: None,
        }
    }

    #[test]
    fn applies_changes_as_the_store_does() {
        let mut m = LeaseMirror::default();
        let a = lease(1, b"a", 1000);
        let b = lease(2, b"b", 1000);
        m.apply(&[
            LeaseChange::Upsert(a.clone()),
            LeaseChange::Upsert(b.clone()),
        ]);
        assert_eq!(m.len(), 2);
        assert_eq!(m.by_duid(b"a", 10).count(), 1);
        // The address changes hands: the old owner's index forgets it.
        let a_to_b = lease(1, b"b", 1100);
        m.apply(&[LeaseChange::Upsert(a_to_b.clone())]);
        assert_eq!(m.by_duid(b"a", 10).count(), 0);
        assert_eq!(m.by_duid(b"b", 10).count(), 2);
        // A renewal older than the row is a no-op; a newer one moves the times.
        let renew = |cltt| LeaseChange::Renew {
            key: a.key(),
            cltt,
            preferred_lifetime: 50,
            valid_lifetime: 300,
        };
        m.apply(&[renew(1050)]);
        assert_eq!(m.get(&a.key()).unwrap().cltt, 1100);
        assert_eq!(m.get(&a_to_b.key()).unwrap(), a_to_b);
        m.apply(&[renew(1200)]);
        let renewed = m.get(&a.key()).unwrap();
        assert_eq!(renewed.duid, b"b");
        assert_eq!(
            (renewed.cltt, renewed.expire, renewed.valid_lifetime),
            (1200, 1500, 300)
        );
        assert!(renewed.validate().is_ok());
        // Not assigned: no renewal.
        let mut released = b.clone();
        released.state = LeaseState::Released;
        m.apply(&[LeaseChange::Upsert(released)]);
        m.apply(&[LeaseChange::Renew {
            key: b.key(),
            cltt: 5000,
            preferred_lifetime: 1,
            valid_lifetime: 2,
        }]);
        assert_eq!(m.get(&b.key()).unwrap().cltt, 1000);
        m.apply(&[LeaseChange::Delete(b.key()), LeaseChange::Delete(a.key())]);
        assert!(m.is_empty());
        assert_eq!(m.by_duid(b"b", 10).count(), 0);
        assert!(m.by_duid.is_empty());
    }

    /// The line index follows upserts that change a row's line, and deletions.
    #[test]
    fn indexes_rows_by_line() {
        let mut m = LeaseMirror::default();
        let mut a = lease(1, b"a", 1000);
        a.line = Some(vec![2, 0xaa].into());
        let mut b = lease(2, b"b", 1000);
        b.line = Some(vec![2, 0xaa].into());
        m.apply(&[
            LeaseChange::Upsert(a.clone()),
            LeaseChange::Upsert(b.clone()),
        ]);
        assert_eq!(m.by_line(&[2, 0xaa]).count(), 2);
        assert_eq!(m.get(&a.key()), Some(a.clone()));
        let mut moved = a.clone();
        moved.line = Some(vec![2, 0xbb].into());
        m.apply(&[LeaseChange::Upsert(moved)]);
        assert_eq!(m.by_line(&[2, 0xaa]).collect::<Vec<_>>(), vec![b.clone()]);
        assert_eq!(m.by_line(&[2, 0xbb]).count(), 1);
        m.apply(&[LeaseChange::Delete(a.key()), LeaseChange::Delete(b.key())]);
        assert!(m.by_line.is_empty());
    }

    #[test]
    fn keeps_every_field() {
        let mut m = LeaseMirror::default();
        let mut relayed = lease(7, b"r", 1000);
        relayed.relay_id = Some(vec![1, 2]);
        relayed.remote_id = Some(vec![3]);
        relayed.relay_info = vec![12, 0, 1];
        relayed.hostname = "host".into();
        relayed.line = Some(vec![1, b'p'].into());
        relayed.link_address = Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, 1);
        let mut pd = lease(0, b"r", 1000);
        pd.lease_type = crate::store::LeaseType::Pd;
        pd.prefix_len = 56;
        pd.address = Ipv6Addr::new(0x2001, 0xdb8, 0x8000, 0, 0, 0, 0, 0);
        m.apply(&[
            LeaseChange::Upsert(relayed.clone()),
            LeaseChange::Upsert(pd.clone()),
        ]);
        assert_eq!(m.get(&relayed.key()), Some(relayed.clone()));
        assert_eq!(
            m.by_duid(b"r", 10).collect::<Vec<_>>(),
            vec![relayed, pd.clone()]
        );
        assert_eq!(m.by_duid(b"r", 1).count(), 1);
        assert_eq!(m.range_after(None).last(), Some(pd));
    }

    /// Loaded from a store (the tree built in one go), the mirror holds what applying the same
    /// rows one by one gives: the leases in key order, each client's index, the active clients.
    #[test]
    fn load_equals_applying_the_rows() {
        let dir = std::env::temp_dir().join(format!("mirror-load-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = crate::store::SqliteStore::open(dir.join("leases.db")).unwrap();
        let duid = |n: u16| vec![0, 3, (n % 200) as u8, (n % 7) as u8];
        let mut leases: Vec<Lease> = (0..500u16).map(|n| lease(n, &duid(n), 1000)).collect();
        leases[3].state = LeaseState::Released;
        let line = |n: u16| vec![2, (n % 5) as u8];
        for (n, lease) in leases.iter_mut().enumerate().filter(|(n, _)| n % 2 == 0) {
            lease.line = Some(line(n as u16).into());
        }
        let changes: Vec<LeaseChange> = leases.iter().cloned().map(LeaseChange::Upsert).collect();
        crate::store::LeaseStore::commit(&store, &changes, 1000).unwrap();
        let loaded = LeaseMirror::load(&store).unwrap();
        let mut applied = LeaseMirror::default();
        applied.apply(&changes);
        assert_eq!(loaded.len(), 500);
        assert_eq!(
            loaded.range_after(None).collect::<Vec<_>>(),
            applied.range_after(None).collect::<Vec<_>>()
        );
        for n in 0..500u16 {
            assert_eq!(
                loaded.by_duid(&duid(n), 10).collect::<Vec<_>>(),
                applied.by_duid(&duid(n), 10).collect::<Vec<_>>()
            );
        }
        // The line index too (sticky delegation by line after a restart).
        for n in 0..5u16 {
            let sorted = |m: &LeaseMirror| {
                let mut rows: Vec<Lease> = m.by_line(&line(n)).collect();
                rows.sort_by_key(Lease::key);
                rows
            };
            assert_eq!(sorted(&loaded), sorted(&applied));
            assert!(!sorted(&loaded).is_empty());
        }
        assert_eq!(loaded.active_clients(1100).count(), 499);
        assert_eq!(loaded.active_clients(1300).count(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn range_after_is_in_key_order() {
        let mut m = LeaseMirror::default();
        for n in [5u16, 1, 3] {
            m.apply(&[LeaseChange::Upsert(lease(n, &[n as u8], 0))]);
        }
        let after = lease(1, b"x", 0).key();
        let seen: Vec<u16> = m
            .range_after(Some(&after))
            .map(|l| l.address.segments()[7])
            .collect();
        assert_eq!(seen, vec![3, 5]);
        assert_eq!(m.range_after(None).count(), 3);
    }
}
