//! Property tests.

use super::*;
use proptest::prelude::*;

fn any_lease() -> impl Strategy<Value = Lease> {
    let identity = (any::<bool>(), any::<u128>(), 0u8..=128).prop_map(|(is_pd, bits, len)| {
        if is_pd {
            (LeaseType::Pd, mask(Ipv6Addr::from(bits), len), len)
        } else {
            (LeaseType::Na, Ipv6Addr::from(bits), 128)
        }
    });
    let state = prop_oneof![
        Just(LeaseState::Assigned),
        Just(LeaseState::Declined),
        Just(LeaseState::Released),
        Just(LeaseState::ExpiredReclaimed),
    ];
    let blob = || proptest::collection::vec(any::<u8>(), 0..64);
    (
        identity,
        proptest::collection::vec(any::<u8>(), 1..130),
        (any::<u32>(), any::<u32>(), any::<u32>(), any::<u32>()),
        (-(1i64 << 40)..(1i64 << 40), state, ".{0,16}", any::<u128>()),
        (
            proptest::option::of(blob()),
            proptest::option::of(blob()),
            blob(),
            ".{0,40}",
        ),
        (proptest::option::of(blob()), proptest::option::of(blob())),
    )
        .prop_map(|(id, duid, numbers, times, relay, (line, link_layer))| {
            let (lease_type, address, prefix_len) = id;
            let (iaid, subnet_id, lifetime_a, lifetime_b) = numbers;
            let (cltt, state, interface, link) = times;
            let (relay_id, remote_id, relay_info, hostname) = relay;
            let mut lease = Lease {
                address,
                prefix_len,
                lease_type,
                duid,
                iaid,
                subnet_id,
                preferred_lifetime: 0,
                valid_lifetime: 0,
                cltt: 0,
                expire: 0,
                state,
                interface,
                link_address: Ipv6Addr::from(link),
                relay_id,
                remote_id,
                relay_info,
                hostname,
                line: line.map(Vec::into_boxed_slice),
                next_hop: None,
                reconfigure: None,
                link_layer: link_layer.map(Vec::into_boxed_slice),
            };
            lease.assign(cltt, lifetime_a.min(lifetime_b), lifetime_a.max(lifetime_b));
            lease.state = state;
            lease
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever valid lease goes in comes back out identical, by key and through history.
    #[test]
    fn any_valid_lease_round_trips(leases in proptest::collection::vec(any_lease(), 1..8)) {
        let scratch = Scratch::new("prop");
        let store = open(&scratch);
        let receipt = store.commit(&upserts(leases.clone()), NOW).unwrap();
        // Later duplicates of a key replace earlier ones, as separate history entries.
        let mut latest = std::collections::BTreeMap::new();
        for lease in &leases {
            latest.insert(lease.key(), lease.clone());
        }
        for (key, lease) in &latest {
            prop_assert_eq!(store.get(key).unwrap(), Some(lease.clone()));
            if lease.lease_type == LeaseType::Pd {
                prop_assert!(store.find_prefixes_containing(lease.address).unwrap().contains(lease));
            }
        }
        let history = store.changes_since(ChangeCursor::AfterSeq(0), 100).unwrap();
        prop_assert_eq!(history.len(), leases.len());
        prop_assert_eq!(receipt.last_seq, leases.len() as u64);
        for (record, lease) in history.iter().zip(&leases) {
            prop_assert_eq!(&record.lease, lease);
        }
        prop_assert_eq!(store.leases_after(None, 100).unwrap(), latest.into_values().collect::<Vec<_>>());
    }
}
