//! The server's in-memory copy of the durable lease table.
//!
//! Decisions read leases on every request (the client's bindings, the slot a pool cursor points
//! at, pages of rows after it); from SQLite those reads were most of the controller's time. The
//! copy is loaded from the store when the server opens it and then kept equal to the durable rows
//! by the store writer, which applies each batch here once it is on disk and before it wakes the
//! batch's waiters (see [`crate::store::DurableHook`]), in commit order. Every lease write of the
//! server goes through that writer, so the copy never holds anything that is not durable; commits
//! still in flight are the decision state's overlay, as before.
//!
//! With a shared database two sources write the copy: this server's writer (its own commits)
//! and the follower (every server's commits, read from the change history). Their changes can
//! arrive in either order, so with a shared store each row carries its version (the history
//! sequence number of its last change, commit-ordered across servers) and a change is applied
//! only when it is newer than what the copy holds for that key; a removed row leaves its
//! version behind (a tombstone) so that an older write cannot bring it back.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv6Addr;
use std::ops::Bound;
use std::sync::Arc;

use crate::store::{Lease, LeaseChange, LeaseKey, LeaseState, LeaseStore, StoreError};

/// The mirror's hash maps. Their keys (DUIDs, lines) come from the wire, so the hash must be
/// keyed against flooding one bucket; foldhash's is seeded per process, which is all that
/// needs, and hashes a DUID several times faster than the standard SipHash (a quarter of a
/// cold start's CPU went to SipHash and its inserts).
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// Rows read per page when the copy is loaded.
const LOAD_PAGE: usize = 10_000;

/// One lease row, compact: the DUID is shared with the per-client index, the interface name is
/// a number in the copy's table of names, and the relay data and host name (empty for most
/// clients) live behind one pointer.
#[derive(Debug)]
struct Row {
    duid: Arc<[u8]>,
    /// Index of the interface's name in [`LeaseMirror::interface_names`] (4 bytes against a
    /// 16-byte shared name: a million rows, 16 MB).
    interface: u32,
    link_address: Ipv6Addr,
    iaid: u32,
    subnet_id: u32,
    preferred_lifetime: u32,
    valid_lifetime: u32,
    cltt: i64,
    expire: i64,
    state: LeaseState,
    /// The row's version (0: a store without versions, or a row older than them).
    version: u64,
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
    reconfigure: Option<crate::store::ReconfigureKey>,
    link_layer: Option<Box<[u8]>>,
}

/// The keys of one client's rows (most clients have one or two). A boxed slice, not a `Vec`:
/// every entry of the index is as large as the largest, 8 bytes less in each bucket.
#[derive(Debug)]
enum Keys {
    One(LeaseKey),
    Many(Box<[LeaseKey]>),
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
    by_duid: FastMap<Arc<[u8]>, Keys>,
    /// Line (as stored) → keys of the rows served on it (sticky delegation by line).
    by_line: FastMap<Box<[u8]>, Vec<LeaseKey>>,
    /// Interface name → its index in `interface_names`.
    interfaces: FastMap<Arc<str>, u32>,
    interface_names: Vec<Arc<str>>,
    /// Versions of rows removed by a versioned change (shared database only), so that an
    /// older change arriving late is not applied; the newest [`TOMBSTONES_KEPT`] are kept.
    tombstones: FastMap<LeaseKey, u64>,
}

/// Tombstones kept at least. A late change is one this server's writer committed before the
/// removal and applies after it: at most one batch (a few thousand changes) old, far fewer
/// than this many removals ago.
const TOMBSTONES_KEPT: usize = 65_536;

/// A row before and after a change the copy applied (`None`: no row).
pub type Transition = (Option<Lease>, Option<Lease>);

impl LeaseMirror {
    /// Every lease row of `store`.
    pub fn load(store: &dyn LeaseStore) -> Result<LeaseMirror, StoreError> {
        LeaseMirror::load_feeding(store, &mut |_| {})
    }

    /// As [`LeaseMirror::load`], handing each page of rows to `feed` once the copy has taken
    /// what it keeps of them (the fast path fills its map from them meanwhile, on another
    /// thread: one read of the store for both).
    pub fn load_feeding(
        store: &dyn LeaseStore,
        feed: &mut dyn FnMut(Vec<Lease>),
    ) -> Result<LeaseMirror, StoreError> {
        let mut mirror = LeaseMirror::default();
        let mut rows = Vec::new();
        let mut after = None;
        loop {
            let page = store.versioned_leases_after(after.as_ref(), LOAD_PAGE)?;
            let full = page.len() == LOAD_PAGE;
            let mut fed = Vec::with_capacity(page.len());
            for (lease, version) in page {
                mirror.index_line(&lease);
                let mut row = mirror.row_for(&lease);
                row.version = version;
                after = Some(lease.key());
                rows.push((lease.key(), row));
                fed.push(lease);
            }
            feed(fed);
            if !full {
                break;
            }
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
        self.rows
            .get(key)
            .map(|row| lease(key, row, &self.interface_names))
    }

    /// Rows after `after` in key order (all rows from the first when `None`).
    pub fn range_after(&self, after: Option<&LeaseKey>) -> impl Iterator<Item = Lease> + '_ {
        let lower = after.map_or(Bound::Unbounded, |key| Bound::Excluded(*key));
        self.rows
            .range((lower, Bound::Unbounded))
            .map(|(key, row)| lease(key, row, &self.interface_names))
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
                (
                    &*self.interface_names[row.interface as usize],
                    line,
                    &row.duid,
                )
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
        self.apply_versioned(changes, &[]);
    }

    /// The version the copy holds for `key`: its row's, else its tombstone's, else 0.
    pub fn version_of(&self, key: &LeaseKey) -> u64 {
        match self.rows.get(key) {
            Some(row) => row.version,
            None => self.tombstones.get(key).copied().unwrap_or(0),
        }
    }

    /// Applies a durable batch of this server's writer: with `versions` (one per change, a
    /// shared store), a change only if its version is newer than what the copy holds for its
    /// key (0: the store wrote nothing for it); without, every change in order.
    pub fn apply_versioned(&mut self, changes: &[LeaseChange], versions: &[u64]) {
        for (i, change) in changes.iter().enumerate() {
            let version = match versions.get(i) {
                Some(&version) => {
                    if version == 0 || version <= self.version_of(&change.key()) {
                        continue;
                    }
                    version
                }
                None if versions.is_empty() => 0,
                // Fewer versions than changes: the store broke its contract; apply nothing
                // unversioned over versioned rows.
                None => continue,
            };
            self.apply_one(change, version);
        }
    }

    /// Applies one history entry (`lease` after an upsert, or the row a delete removed) with
    /// its `version`, if it is newer than what the copy holds; returns the row before and
    /// after, `None` when the copy already held something as new.
    pub fn apply_record(
        &mut self,
        deleted: bool,
        lease: &Lease,
        version: u64,
    ) -> Option<Transition> {
        let key = lease.key();
        if version <= self.version_of(&key) {
            return None;
        }
        let before = self.get(&key);
        if deleted {
            self.apply_one(&LeaseChange::Delete(key), version);
        } else {
            self.apply_one(&LeaseChange::Upsert(lease.clone()), version);
        }
        Some((before, self.get(&key)))
    }

    /// Makes the copy equal to `rows` (every row of the shared table with its version, read
    /// after the history had reached `as_of`): a row is taken where it is newer than the
    /// copy's, and a row of the copy the table no longer has is removed unless it is newer
    /// than `as_of` (this server committed it after the read began). Returns what changed.
    pub fn resync(&mut self, rows: Vec<(Lease, u64)>, as_of: u64) -> Vec<Transition> {
        let mut changed = Vec::new();
        let mut present: HashSet<LeaseKey> = HashSet::with_capacity(rows.len());
        for (lease, version) in rows {
            let key = lease.key();
            present.insert(key);
            let before = self.get(&key);
            if before.as_ref() == Some(&lease) {
                // Same content: only the version may be behind.
                if let Some(row) = self.rows.get_mut(&key) {
                    row.version = row.version.max(version);
                }
                continue;
            }
            if version < self.version_of(&key) {
                continue;
            }
            self.apply_one(&LeaseChange::Upsert(lease.clone()), version);
            changed.push((before, Some(lease)));
        }
        let gone: Vec<LeaseKey> = self
            .rows
            .iter()
            .filter(|(key, row)| !present.contains(*key) && row.version <= as_of)
            .map(|(key, _)| *key)
            .collect();
        for key in gone {
            let before = self.get(&key);
            let version = as_of.max(self.version_of(&key));
            self.apply_one(&LeaseChange::Delete(key), version);
            changed.push((before, None));
        }
        changed
    }

    /// Applies one change at `version` (0: unversioned).
    fn apply_one(&mut self, change: &LeaseChange, version: u64) {
        match change {
            LeaseChange::Upsert(lease) => {
                self.insert(lease);
                if let Some(row) = self.rows.get_mut(&lease.key()) {
                    row.version = version;
                }
                if version > 0 {
                    self.tombstones.remove(&lease.key());
                }
            }
            LeaseChange::Delete(key) => {
                self.remove(key);
                if version > 0 {
                    self.bury(*key, version);
                }
            }
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
                        row.version = row.version.max(version);
                    }
                }
            }
        }
    }

    /// Remembers that `key` was removed at `version`; past twice [`TOMBSTONES_KEPT`], the
    /// oldest half goes.
    fn bury(&mut self, key: LeaseKey, version: u64) {
        self.tombstones.insert(key, version);
        if self.tombstones.len() > 2 * TOMBSTONES_KEPT {
            let mut versions: Vec<u64> = self.tombstones.values().copied().collect();
            let (_, cut, _) = versions.select_nth_unstable(self.tombstones.len() - TOMBSTONES_KEPT);
            let cut = *cut;
            self.tombstones.retain(|_, v| *v >= cut);
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
                    *keys = Keys::Many(list.into_boxed_slice());
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
            Some(&index) => index,
            None => {
                let name: Arc<str> = Arc::from(lease.interface.as_str());
                let index = self.interface_names.len() as u32;
                self.interface_names.push(Arc::clone(&name));
                self.interfaces.insert(name, index);
                index
            }
        };
        let extra = (lease.relay_id.is_some()
            || lease.remote_id.is_some()
            || !lease.relay_info.is_empty()
            || !lease.hostname.is_empty()
            || lease.line.is_some()
            || lease.next_hop.is_some()
            || lease.reconfigure.is_some()
            || lease.link_layer.is_some())
        .then(|| {
            Box::new(Extra {
                relay_id: lease.relay_id.clone(),
                remote_id: lease.remote_id.clone(),
                relay_info: lease.relay_info.clone(),
                hostname: lease.hostname.clone(),
                line: lease.line.clone(),
                next_hop: lease.next_hop,
                reconfigure: lease.reconfigure,
                link_layer: lease.link_layer.clone(),
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
            version: 0,
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
            _ => *keys = Keys::Many(remaining.into_boxed_slice()),
        }
    }
}

/// The lease a row stands for (`names`: the copy's interface names).
fn lease(key: &LeaseKey, row: &Row, names: &[Arc<str>]) -> Lease {
    let (relay_id, remote_id, relay_info, hostname, line, next_hop, reconfigure, link_layer) =
        match &row.extra {
            Some(extra) => (
                extra.relay_id.clone(),
                extra.remote_id.clone(),
                extra.relay_info.clone(),
                extra.hostname.clone(),
                extra.line.clone(),
                extra.next_hop,
                extra.reconfigure,
                extra.link_layer.clone(),
            ),
            None => (
                None,
                None,
                Vec::new(),
                String::new(),
                None,
                None,
                None,
                None,
            ),
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
        interface: names[row.interface as usize].to_string(),
        link_address: row.link_address,
        relay_id,
        remote_id,
        relay_info,
        hostname,
        line,
        next_hop,
        reconfigure,
        link_layer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn lease(n: u16, duid: &[u8], cltt: i64) -> Lease {
        Lease {
            preferred_lifetime: 100,
            valid_lifetime: 200,
            cltt,
            expire: cltt + 200,
            interface: "eth0".into(),
            ..Lease::bare(
                crate::store::LeaseType::Na,
                Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n),
                128,
                duid.to_vec(),
                1,
                1,
            )
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

    /// Newest committed row wins: a versioned change older than the row (or the removal) the
    /// copy holds is not applied, whichever source (writer or follower) brings it.
    #[test]
    fn a_change_older_than_the_copys_row_is_not_applied() {
        let mut m = LeaseMirror::default();
        let granted = lease(1, b"x", 1000);
        let mut released = granted.clone();
        released.touch(1100);
        released.state = LeaseState::Released;
        // The follower brings another server's release (version 12) first...
        let applied = m.apply_record(false, &released, 12);
        assert_eq!(applied, Some((None, Some(released.clone()))));
        // ...then this server's writer its own older grant (version 10): it stays out.
        m.apply_versioned(&[LeaseChange::Upsert(granted.clone())], &[10]);
        assert_eq!(m.get(&granted.key()), Some(released.clone()));
        assert_eq!(m.version_of(&granted.key()), 12);
        // The same entry seen twice (follower and writer) changes nothing the second time.
        assert_eq!(m.apply_record(false, &released, 12), None);
        // Version 0 from a versioned store: nothing was written.
        m.apply_versioned(&[LeaseChange::Delete(granted.key())], &[0]);
        assert!(m.get(&granted.key()).is_some());
        // A removal leaves its version: an older upsert cannot bring the row back.
        m.apply_versioned(&[LeaseChange::Delete(granted.key())], &[15]);
        assert_eq!(m.get(&granted.key()), None);
        assert_eq!(m.apply_record(false, &granted, 14), None);
        assert_eq!(m.get(&granted.key()), None);
        // A newer one can.
        let mut again = granted.clone();
        again.assign(1200, 100, 200);
        assert!(m.apply_record(false, &again, 16).is_some());
        assert_eq!(m.get(&again.key()), Some(again.clone()));
        // Renewals are versioned too: an old one is left out, a new one moves the times.
        let renew = |cltt| LeaseChange::Renew {
            key: again.key(),
            cltt,
            preferred_lifetime: 100,
            valid_lifetime: 200,
        };
        m.apply_versioned(&[renew(1300)], &[13]);
        assert_eq!(m.get(&again.key()).unwrap().cltt, 1200);
        m.apply_versioned(&[renew(1300)], &[17]);
        assert_eq!(m.get(&again.key()).unwrap().cltt, 1300);
        assert_eq!(m.version_of(&again.key()), 17);
        // Without versions (SQLite), every change applies in order, as before.
        let mut plain = LeaseMirror::default();
        plain.apply(&[LeaseChange::Upsert(released.clone())]);
        plain.apply(&[LeaseChange::Upsert(granted.clone())]);
        assert_eq!(plain.get(&granted.key()), Some(granted));
    }

    /// A resync takes the table's rows, drops rows the table no longer has unless this server
    /// wrote them after the read began, and keeps a row newer than the table's.
    #[test]
    fn a_resync_makes_the_copy_equal_to_the_table() {
        let mut m = LeaseMirror::default();
        let (a, b, c, d) = (
            lease(1, b"a", 1000),
            lease(2, b"b", 1000),
            lease(3, b"c", 1000),
            lease(4, b"d", 1000),
        );
        m.apply_versioned(
            &[
                LeaseChange::Upsert(a.clone()),
                LeaseChange::Upsert(b.clone()),
                LeaseChange::Upsert(d.clone()),
            ],
            &[5, 6, 30],
        );
        let mut b_released = b.clone();
        b_released.state = LeaseState::Released;
        // The table (as of seq 20): a unchanged, b released, c new, no d (d is at 30: ours,
        // committed after the read began).
        let changed = m.resync(
            vec![(a.clone(), 5), (b_released.clone(), 18), (c.clone(), 19)],
            20,
        );
        assert_eq!(changed.len(), 2);
        assert_eq!(
            m.range_after(None).collect::<Vec<_>>(),
            vec![a.clone(), b_released, c, d.clone()]
        );
        // Read again without d (as of 40): d goes, and stays gone against an older write.
        let changed = m.resync(vec![(a.clone(), 5)], 40);
        assert_eq!(changed.len(), 3);
        assert_eq!(m.range_after(None).collect::<Vec<_>>(), vec![a]);
        assert_eq!(m.apply_record(false, &d, 30), None);
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
