//! Leases as rows: every field round-trips, invalid leases are refused, renewals only move forward.

use super::*;

/// Every field of a lease, every state, comes back as written. (on every backend: see `on_every_backend`)
pub(super) fn every_field_round_trips(store: &dyn LeaseStore) {
    let mut full = pd("2001:db8:ff00::", 56, 7);
    full.duid = vec![
        0, 1, 0, 1, 0x2a, 0x3b, 0x4c, 0x5d, 0, 0x11, 0x22, 0x33, 0x44, 0x55,
    ];
    full.iaid = 0xdead_beef;
    full.subnet_id = u32::MAX;
    full.assign(NOW - 10, u32::MAX - 1, u32::MAX);
    full.state = LeaseState::Declined;
    full.interface = "eth0.42".to_owned();
    full.link_address = "2001:db8:1::1".parse().unwrap();
    full.relay_id = Some(vec![0, 2, 0, 0, 0, 9, 1, 2, 3]);
    full.remote_id = Some(vec![0, 0, 0x0d, 0xe9, b'p', b'o', b'r', b't', b'1']);
    full.relay_info = (0..=255).collect();
    full.hostname = "host.example.".to_owned();
    full.next_hop = Some("fe80::a8c1:abff:fe3c:1".parse().unwrap());
    let mut minimal = na(1);
    minimal.relay_id = Some(Vec::new()); // present but empty stays distinct from absent
    let plain = na(2);
    store
        .commit(
            &upserts([full.clone(), minimal.clone(), plain.clone()]),
            NOW,
        )
        .unwrap();
    for lease in [&full, &minimal, &plain] {
        assert_eq!(store.get(&lease.key()).unwrap().as_ref(), Some(lease));
    }
    for state in [
        LeaseState::Released,
        LeaseState::ExpiredReclaimed,
        LeaseState::Assigned,
    ] {
        let mut changed = full.clone();
        changed.state = state;
        store
            .commit(&[LeaseChange::Upsert(changed.clone())], NOW)
            .unwrap();
        assert_eq!(store.get(&full.key()).unwrap(), Some(changed));
    }
}

#[test]
fn lease_helpers() {
    let lease = na(1);
    assert!(lease.is_active(NOW));
    assert!(lease.is_active(NOW + 3599));
    assert!(!lease.is_active(NOW + 3600));
    assert_eq!(lease.remaining_valid(NOW + 600), 3000);
    assert_eq!(lease.remaining_preferred(NOW + 600), 1200);
    assert_eq!(lease.remaining_preferred(NOW + 2000), 0);
    assert_eq!(lease.remaining_valid(NOW + 9999), 0);
    let mut released = lease.clone();
    released.state = LeaseState::Released;
    assert!(!released.is_active(NOW));
    let prefix = pd("2001:db8:ab00::", 40, 1);
    assert!(prefix.covers("2001:db8:abff:1::5".parse().unwrap()));
    assert!(!prefix.covers("2001:db8:ac00::".parse().unwrap()));
    assert!(lease.covers(lease.address));
    assert!(!lease.covers(na(2).address));
}

/// A batch with one invalid lease is refused whole, before anything is written. (on every backend: see `on_every_backend`)
pub(super) fn invalid_leases_are_refused_before_writing(store: &dyn LeaseStore) {
    let mut na_with_len = na(1);
    na_with_len.prefix_len = 64;
    let host_bits = pd("2001:db8::1", 64, 1);
    let mut too_long = pd("2001:db8::", 64, 1);
    too_long.prefix_len = 129;
    let mut bad_expire = na(1);
    bad_expire.expire += 1;
    let mut preferred_over_valid = na(1);
    preferred_over_valid.preferred_lifetime = preferred_over_valid.valid_lifetime + 1;
    let mut no_duid = na(1);
    no_duid.duid.clear();
    for bad in [
        na_with_len,
        host_bits,
        too_long,
        bad_expire,
        preferred_over_valid,
        no_duid,
    ] {
        // The bad lease rides with a good one: the whole commit is refused, nothing written.
        let err = store
            .commit(&upserts([na(9), bad.clone()]), NOW)
            .unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidLease { .. }),
            "{bad:?} gave {err}"
        );
    }
    assert_eq!(store.get(&na(9).key()).unwrap(), None);
    assert_eq!(store.last_seq().unwrap(), 0);
}

/// A renewal moves only an assigned lease, and only forward. (on every backend: see `on_every_backend`)
pub(super) fn renewals_apply_only_to_assigned_leases_and_never_go_back(store: &dyn LeaseStore) {
    let mut released = na(2);
    released.state = LeaseState::Released;
    store
        .commit(&upserts([na(1), released.clone()]), NOW)
        .unwrap();
    let renew = |n: u32, cltt: i64| LeaseChange::Renew {
        key: na(n).key(),
        cltt,
        preferred_lifetime: 900,
        valid_lifetime: 1200,
    };
    store
        .commit(
            &[
                renew(1, NOW + 500),
                renew(2, NOW + 500),
                renew(3, NOW + 500),
            ],
            NOW + 500,
        )
        .unwrap();
    let mut expected = na(1);
    expected.assign(NOW + 500, 900, 1200);
    assert_eq!(store.get(&na(1).key()).unwrap(), Some(expected.clone()));
    assert_eq!(
        store.get(&na(2).key()).unwrap(),
        Some(released),
        "a released lease stays released"
    );
    assert_eq!(
        store.get(&na(3).key()).unwrap(),
        None,
        "a renewal creates nothing"
    );
    // A late report older than the stored transaction changes nothing.
    store.commit(&[renew(1, NOW + 100)], NOW + 600).unwrap();
    assert_eq!(store.get(&na(1).key()).unwrap(), Some(expected.clone()));
    // Only the applied renewal is in the history, with the full lease.
    let history = store.changes_since(ChangeCursor::AfterSeq(2), 10).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].kind, &history[0].lease),
        (ChangeKind::Upsert, &expected)
    );
    let backwards = LeaseChange::Renew {
        key: na(1).key(),
        cltt: NOW,
        preferred_lifetime: 10,
        valid_lifetime: 5,
    };
    assert!(matches!(
        store.commit(&[backwards], NOW),
        Err(StoreError::InvalidLease { .. })
    ));
}
