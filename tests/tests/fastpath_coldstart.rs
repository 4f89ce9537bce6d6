//! The cold start's map fill: the fast path loaded and its binding map filled on a thread of
//! its own from the rows the controller loads (`Prefill`), against the re-sync from the store
//! it replaces. Needs root and BPF (as does `cargo xtask test`).

mod fastpath_common;

use std::{collections::HashMap, net::Ipv6Addr, sync::Arc};

use dhcp_common::{BindingKey, BindingValue};
use dhcp_user::{
    clock::unix_now,
    fastpath::{
        sync::{no_facts, resync, FastPathSettings, Prefill, ResyncSource, SubnetIndex},
        AttachMode, FastPath,
    },
    server::{LoadObserver, Server},
    store::{Lease, LeaseChange, LeaseState, LeaseStore, LeaseType, SqliteStore},
};
use fastpath_common::controller::{config, tempdir};

/// Clients stored: more than three of the mirror's load pages (10 000 rows), so the fill
/// takes several pages through its bounded hand-off.
const CLIENTS: u32 = 32_000;

fn lease(duid: Vec<u8>, lease_type: LeaseType, address: Ipv6Addr, subnet_id: u32) -> Lease {
    let cltt = unix_now() - 10;
    Lease {
        preferred_lifetime: 1800,
        valid_lifetime: 3600,
        cltt,
        expire: cltt + 3600,
        interface: "lo".into(),
        ..Lease::bare(
            lease_type,
            address,
            if lease_type == LeaseType::Pd { 56 } else { 128 },
            duid,
            7,
            subnet_id,
        )
    }
}

/// The /56 number `n` of the config's PD pool (2001:db8:8000::/40).
fn prefix(n: u32) -> Ipv6Addr {
    let base = u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0x8000, 0, 0, 0, 0, 0));
    Ipv6Addr::from(base + (u128::from(n) << 72))
}

/// Every client a prefix, every eighth also an address (one binding with both), and some that
/// must stay out of the map: released, expired, an address outside the pools, a DUID longer
/// than the map's key.
fn rows(subnet_id: u32) -> Vec<Lease> {
    let duid = |n: u32| [&[0u8, 4][..], &n.to_be_bytes()].concat();
    let mut rows = Vec::new();
    for n in 0..CLIENTS {
        let mut pd = lease(duid(n), LeaseType::Pd, prefix(n), subnet_id);
        match n % 100 {
            1 => pd.state = LeaseState::Released,
            2 => {
                pd.cltt -= 7200;
                pd.expire -= 7200;
            }
            _ => {}
        }
        rows.push(pd);
        if n % 8 == 0 && n < 4096 * 8 {
            let na = Ipv6Addr::from(
                u128::from(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x1000)) + u128::from(n / 8),
            );
            rows.push(lease(duid(n), LeaseType::Na, na, subnet_id));
        }
    }
    let outside = "2001:db8:1::9999".parse().unwrap();
    rows.push(lease(duid(CLIENTS), LeaseType::Na, outside, subnet_id));
    rows.push(lease(
        vec![9; 40],
        LeaseType::Pd,
        prefix(CLIENTS + 1),
        subnet_id,
    ));
    rows
}

fn entries(fp: &FastPath) -> HashMap<BindingKey, BindingValue> {
    fp.bindings().unwrap().iter().map(Result::unwrap).collect()
}

/// The map a cold start fills alongside the controller's load holds exactly the bindings the
/// re-sync from the store pushes, with the same counts; a second start on the pinned map
/// leaves it to the re-sync (the program is attached and answering there).
#[test]
fn a_cold_fill_during_the_load_equals_the_resync_from_the_store() {
    let dir = tempdir::Dir::new("coldstart");
    let config = config(&dir.0);
    let subnet_id = config.subnets[0].id;
    let store: Arc<dyn LeaseStore> = Arc::new(SqliteStore::open(dir.0.join("leases.db")).unwrap());
    let changes: Vec<LeaseChange> = rows(subnet_id)
        .into_iter()
        .map(LeaseChange::Upsert)
        .collect();
    store.commit(&changes, unix_now()).unwrap();

    let pin_root = std::path::PathBuf::from(format!(
        "/sys/fs/bpf/dhcp-coldstart-test-{}",
        std::process::id()
    ));
    let _ = FastPath::unpin_all(&pin_root);
    let settings = FastPathSettings {
        mode: AttachMode::Auto,
        pin_root: Some(pin_root.clone()),
        pass_rate_per_cpu: 0,
        max_bindings: 65_536,
    };
    let mut prefill = Prefill::spawn(&settings).unwrap();
    let server = Server::with_store_observed(
        config.clone(),
        store.clone(),
        &[],
        Some(&mut prefill as &mut dyn LoadObserver),
    )
    .unwrap();
    let filled = prefill
        .finish()
        .expect("load the XDP program (needs root and BPF)");
    let report = filled.filled().expect("an empty map is filled cold");
    let cold = entries(filled.fast_path());
    drop(filled);

    let mut fresh = FastPath::load_sized(None, 65_536).unwrap();
    let (expected, _) = resync(
        &mut fresh,
        ResyncSource::Store(store.as_ref()),
        &SubnetIndex::new(&config),
        unix_now(),
        &no_facts,
    )
    .unwrap();
    let from_store = entries(&fresh);
    assert_eq!(cold.len(), from_store.len());
    assert!(cold == from_store, "the cold fill differs from the re-sync");
    assert_eq!(report, expected);
    // 32 000 clients, 2 % of them released or expired; two more only the controller serves.
    assert_eq!(report.pushed, u64::from(CLIENTS) * 98 / 100);
    assert_eq!(report.controller_only, 2);

    // Started again on the pinned map (a controller restart): nothing is pushed during the
    // load; the re-sync after it merges the map with the copy.
    let mut again = Prefill::spawn(&settings).unwrap();
    drop(server);
    let _server = Server::with_store_observed(
        config,
        store.clone(),
        &[],
        Some(&mut again as &mut dyn LoadObserver),
    )
    .unwrap();
    let warm = again.finish().unwrap();
    assert_eq!(warm.filled(), None);
    assert!(entries(warm.fast_path()) == from_store);
    drop(warm);
    FastPath::unpin_all(&pin_root).unwrap();
}
