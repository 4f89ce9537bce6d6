//! Tests of the lease store: every field and lookup, paging, history, durability and batching.

mod durability;
mod history;
mod leases;
mod lookups;
mod postgres;
mod writer;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;

/// A scratch directory removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "dhcp-store-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    fn db(&self) -> PathBuf {
        self.0.join("leases.db")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const NOW: i64 = 1_700_000_000;

/// An IA_NA lease on 2001:db8::<n>, client DUID derived from `n`.
fn na(n: u32) -> Lease {
    let mut lease = Lease::bare(
        LeaseType::Na,
        Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(n)),
        128,
        vec![0, 3, 0, 1, 0xaa, 0xbb, (n >> 8) as u8, n as u8],
        n,
        1,
    );
    lease.assign(NOW, 1800, 3600);
    lease
}

/// A delegated prefix `prefix/len` for the client of `na(n)`.
fn pd(prefix: &str, len: u8, n: u32) -> Lease {
    let mut lease = na(n);
    lease.lease_type = LeaseType::Pd;
    lease.address = prefix.parse().expect("prefix literal");
    lease.prefix_len = len;
    lease
}

fn upserts(leases: impl IntoIterator<Item = Lease>) -> Vec<LeaseChange> {
    leases.into_iter().map(LeaseChange::Upsert).collect()
}

fn open(scratch: &Scratch) -> SqliteStore {
    SqliteStore::open(scratch.db()).expect("open store")
}

/// A PostgreSQL store on a new, empty database of this test process's throwaway cluster.
fn postgres_store(name: &str) -> PostgresStore {
    let url = postgres_database(name);
    PostgresStore::connect(&url, None).expect("connect to the test database")
}

/// A new, empty database on this test process's throwaway cluster; its connection string.
fn postgres_database(name: &str) -> String {
    let cluster = dhcp_pgtest::Cluster::shared().expect("the throwaway PostgreSQL cluster");
    cluster
        .create_database(name)
        .expect("create a test database")
}

/// The store contract tests that hold for every backend, each run once per backend: the test
/// `on_sqlite::<name>` and `on_postgresql::<name>` call `<module>::<name>` with a fresh store.
macro_rules! on_every_backend {
    ($($module:ident :: $test:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[test]
                fn $test() {
                    let scratch = super::Scratch::new(stringify!($test));
                    super::$module::$test(&super::open(&scratch));
                }
            )*
        }
        mod on_postgresql {
            $(
                #[test]
                fn $test() {
                    super::$module::$test(&super::postgres_store(stringify!($test)));
                }
            )*
        }
    };
}

on_every_backend!(
    history::change_history_records_every_commit,
    leases::every_field_round_trips,
    leases::invalid_leases_are_refused_before_writing,
    leases::renewals_apply_only_to_assigned_leases_and_never_go_back,
    lookups::lookups_by_every_key,
    lookups::pagination_returns_every_lease_once_in_order,
    lookups::client_order_pages_keep_each_clients_leases_together,
    lookups::expiry_and_pool_counts,
);

fn writer_for(store: Arc<SqliteStore>) -> StoreWriter {
    StoreWriter::spawn(store, WriterConfig::default()).expect("spawn writer")
}

/// Environment variable that turns [`crash_child_entry`] into the crashing child.
const CRASH_CHILD_DB: &str = "DHCP_STORE_CRASH_CHILD_DB";

mod properties;
