//! What each client's classes were last judged on ([`ClassFacts`]), kept for the fast path: a
//! binding on a subnet whose replies classes shape is answered in XDP only while the client's
//! requests carry the same, and its option sets follow the classes these facts put it in.
//!
//! In memory only: after a restart a client's binding waits for its first request the
//! controller answers. Clients sending the same (one CPE model) share one copy.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::config::classes::ClassFacts;

/// The facts by client DUID.
#[derive(Default)]
pub struct ClassFactsTable {
    inner: Mutex<Tables>,
}

#[derive(Default)]
struct Tables {
    by_duid: HashMap<Box<[u8]>, Arc<ClassFacts>>,
    /// One copy of each distinct value, shared by the clients holding it.
    shared: HashSet<Arc<ClassFacts>>,
}

impl ClassFactsTable {
    /// `duid`'s client sent a request judged on `facts` (`None`: one the fast path cannot
    /// compare, more than one User or Vendor Class option): what its binding follows from now.
    pub fn record(&self, duid: &[u8], facts: Option<ClassFacts>) {
        let mut tables = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let Some(facts) = facts else {
            tables.forget(duid);
            return;
        };
        if tables.by_duid.get(duid).is_some_and(|f| **f == facts) {
            return;
        }
        let shared = match tables.shared.get(&facts) {
            Some(shared) => Arc::clone(shared),
            None => {
                let shared = Arc::new(facts);
                tables.shared.insert(Arc::clone(&shared));
                shared
            }
        };
        if let Some(old) = tables.by_duid.insert(duid.into(), shared) {
            tables.unshare(old);
        }
    }

    /// What `duid`'s classes were last judged on, if known.
    pub fn of(&self, duid: &[u8]) -> Option<Arc<ClassFacts>> {
        let tables = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        tables.by_duid.get(duid).cloned()
    }

    /// Drops `duid`'s facts (its client has no lease left).
    pub fn forget(&self, duid: &[u8]) {
        let mut tables = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        tables.forget(duid);
    }

    /// True when no client has facts (no subnet's classes are followed).
    pub fn is_empty(&self) -> bool {
        let tables = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        tables.by_duid.is_empty()
    }

    /// Clients with facts, and distinct values among them.
    pub fn len(&self) -> (usize, usize) {
        let tables = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (tables.by_duid.len(), tables.shared.len())
    }
}

impl Tables {
    fn forget(&mut self, duid: &[u8]) {
        if let Some(old) = self.by_duid.remove(duid) {
            self.unshare(old);
        }
    }

    /// Drops the shared copy once `old` was its last holder (besides the set).
    fn unshare(&mut self, old: Arc<ClassFacts>) {
        if Arc::strong_count(&old) == 2 {
            self.shared.remove(&*old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(vendor: &[u8]) -> ClassFacts {
        ClassFacts {
            user_class: None,
            vendor_class: Some(vendor.to_vec()),
            interface: "eth0".into(),
            ifindex: 2,
            relays: None,
        }
    }

    /// Two clients sending the same share one copy; it goes when the last of them does.
    #[test]
    fn clients_with_the_same_facts_share_one_copy() {
        let table = ClassFactsTable::default();
        table.record(b"a", Some(facts(b"cpe")));
        table.record(b"b", Some(facts(b"cpe")));
        assert_eq!(table.len(), (2, 1));
        assert!(Arc::ptr_eq(
            &table.of(b"a").unwrap(),
            &table.of(b"b").unwrap()
        ));
        table.record(b"a", Some(facts(b"other")));
        assert_eq!(table.len(), (2, 2));
        table.forget(b"b");
        assert_eq!(table.len(), (1, 1));
        table.record(b"a", None);
        assert_eq!(table.len(), (0, 0));
        assert!(table.of(b"a").is_none());
    }
}
