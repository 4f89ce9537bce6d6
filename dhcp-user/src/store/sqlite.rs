//! SQLite implementation of [`LeaseStore`]: one write connection, a pool of read-only ones.
//!
//! WAL lets readers run while the writer commits, and `synchronous=FULL` makes every commit
//! reach the disk (WAL fsync) before `commit` returns: a Reply goes out only after that.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::types::{Type, Value};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior};

use super::{
    mask, ChangeCursor, ChangeKind, ChangeRecord, ClientCursor, CommitReceipt, Lease, LeaseChange,
    LeaseFilter, LeaseKey, LeaseState, LeaseStore, LeaseType, PoolCount, ReconfigureKey,
    StoreError,
};

/// Schema version this build creates and understands (kept in `meta` as `schema_version`).
pub const SCHEMA_VERSION: u32 = 5;

const META_SCHEMA_VERSION: &str = "schema_version";
/// How long a connection waits on a lock held by another process before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);
/// Read connections kept open for reuse; more may exist briefly under a burst of readers.
const MAX_IDLE_READERS: usize = 8;

const SCHEMA: &str = "
CREATE TABLE meta (
    name  TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE lease6 (
    lease_type     INTEGER NOT NULL,
    address        BLOB    NOT NULL,
    prefix_len     INTEGER NOT NULL,
    duid           BLOB    NOT NULL,
    iaid           INTEGER NOT NULL,
    subnet_id      INTEGER NOT NULL,
    pref_lifetime  INTEGER NOT NULL,
    valid_lifetime INTEGER NOT NULL,
    cltt           INTEGER NOT NULL,
    expire         INTEGER NOT NULL,
    state          INTEGER NOT NULL,
    interface      TEXT    NOT NULL,
    link_address   BLOB    NOT NULL,
    relay_id       BLOB,
    remote_id      BLOB,
    relay_info     BLOB    NOT NULL,
    hostname       TEXT    NOT NULL,
    line           BLOB,
    next_hop       BLOB,
    reconfigure    BLOB,
    link_layer     BLOB,
    PRIMARY KEY (lease_type, address, prefix_len)
) WITHOUT ROWID;

-- Secondary indexes of a WITHOUT ROWID table end with the primary key, so each of these also
-- serves the keyset pagination (ORDER BY lease_type, address, prefix_len) of its selection.
CREATE INDEX lease6_by_duid ON lease6 (duid, iaid);
CREATE INDEX lease6_by_relay_id ON lease6 (relay_id) WHERE relay_id IS NOT NULL;
CREATE INDEX lease6_by_remote_id ON lease6 (remote_id) WHERE remote_id IS NOT NULL;
CREATE INDEX lease6_by_link_address ON lease6 (link_address);
CREATE INDEX lease6_by_line ON lease6 (line) WHERE line IS NOT NULL;
-- Reclaim timer (state, expire range) and pool counts (covering: subnet and type included).
CREATE INDEX lease6_by_expire ON lease6 (state, expire, subnet_id, lease_type);

CREATE TABLE lease_changes (
    seq            INTEGER PRIMARY KEY AUTOINCREMENT,
    at             INTEGER NOT NULL,
    kind           INTEGER NOT NULL,
    lease_type     INTEGER NOT NULL,
    address        BLOB    NOT NULL,
    prefix_len     INTEGER NOT NULL,
    duid           BLOB    NOT NULL,
    iaid           INTEGER NOT NULL,
    subnet_id      INTEGER NOT NULL,
    pref_lifetime  INTEGER NOT NULL,
    valid_lifetime INTEGER NOT NULL,
    cltt           INTEGER NOT NULL,
    expire         INTEGER NOT NULL,
    state          INTEGER NOT NULL,
    interface      TEXT    NOT NULL,
    link_address   BLOB    NOT NULL,
    relay_id       BLOB,
    remote_id      BLOB,
    relay_info     BLOB    NOT NULL,
    hostname       TEXT    NOT NULL,
    line           BLOB,
    next_hop       BLOB,
    reconfigure    BLOB,
    link_layer     BLOB
);
CREATE INDEX lease_changes_by_at ON lease_changes (at);
";

/// Lease columns in the order [`lease_from_row`] reads them.
const LEASE_COLUMNS: &str = "lease_type, address, prefix_len, duid, iaid, subnet_id, \
     pref_lifetime, valid_lifetime, cltt, expire, state, interface, link_address, relay_id, \
     remote_id, relay_info, hostname, line, next_hop, reconfigure, link_layer";
const LEASE_PLACEHOLDERS: &str =
    "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21";

/// Schema 1 → 2: the lease's line (`line-identity`), kept for sticky delegation by line.
const MIGRATE_1_TO_2: &str = "
ALTER TABLE lease6 ADD COLUMN line BLOB;
ALTER TABLE lease_changes ADD COLUMN line BLOB;
CREATE INDEX lease6_by_line ON lease6 (line) WHERE line IS NOT NULL;
";
/// Schema 2 → 3: the client's next hop (`[routes]`), kept for the route re-sync at start.
const MIGRATE_2_TO_3: &str = "
ALTER TABLE lease6 ADD COLUMN next_hop BLOB;
ALTER TABLE lease_changes ADD COLUMN next_hop BLOB;
";
/// Schema 3 → 4: the client's reconfigure key and where a Reconfigure goes (`reconfigure`).
const MIGRATE_3_TO_4: &str = "
ALTER TABLE lease6 ADD COLUMN reconfigure BLOB;
ALTER TABLE lease_changes ADD COLUMN reconfigure BLOB;
";
/// Schema 4 → 5: a direct client's link-layer address (its frame's source MAC).
const MIGRATE_4_TO_5: &str = "
ALTER TABLE lease6 ADD COLUMN link_layer BLOB;
ALTER TABLE lease_changes ADD COLUMN link_layer BLOB;
";
const KIND_UPSERT: i64 = 0;
const KIND_DELETE: i64 = 1;

/// The SQLite lease store (file + `-wal` + `-shm`); share it as `Arc<SqliteStore>`.
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl SqliteStore {
    /// Opens (creating if missing) the lease database at `path`, checking its schema version.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let open_err = |source| StoreError::Open {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(open_err)?;
        // The first statement reads the header: a file that is not SQLite fails here.
        let journal: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(open_err)?;
        if !journal.eq_ignore_ascii_case("wal") {
            return Err(open_err(rusqlite::Error::InvalidParameterName(format!(
                "journal_mode is {journal}, WAL could not be enabled"
            ))));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        Self::ensure_schema(&mut conn, &path)?;
        let store = SqliteStore {
            path,
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
        };
        // Fail at open, not at the first lookup, if read-only connections cannot be made.
        let reader = store.open_reader()?;
        lock(&store.readers).push(reader);
        Ok(store)
    }

    /// The database file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn ensure_schema(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(open_err)?;
        let tables: i64 = tx
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .map_err(open_err)?;
        let has_meta: bool = tx
            .query_row(
                "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'meta'",
                [],
                |r| r.get(0),
            )
            .map_err(open_err)?;
        let version_mismatch = |found: String| StoreError::SchemaVersion {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        };
        if tables == 0 {
            tx.execute_batch(SCHEMA).map_err(open_err)?;
            tx.execute(
                "INSERT INTO meta (name, value) VALUES (?1, ?2)",
                params![META_SCHEMA_VERSION, SCHEMA_VERSION.to_string().into_bytes()],
            )
            .map_err(open_err)?;
            tx.commit().map_err(open_err)?;
            return Ok(());
        }
        if !has_meta {
            return Err(version_mismatch("none (not a lease database)".to_owned()));
        }
        let found: Option<Vec<u8>> = tx
            .query_row(
                "SELECT value FROM meta WHERE name = ?1",
                [META_SCHEMA_VERSION],
                |r| r.get(0),
            )
            .optional()
            .map_err(open_err)?;
        let found = match found {
            Some(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            None => return Err(version_mismatch("none".to_owned())),
        };
        match found.trim().parse::<u32>().ok() {
            Some(SCHEMA_VERSION) => {}
            Some(old @ (1..=4)) => {
                // Older rows have no line (served before `line-identity` existed), no next
                // hop (served before `[routes]`), no reconfigure key and no link-layer
                // address: NULL in all.
                if old == 1 {
                    tx.execute_batch(MIGRATE_1_TO_2).map_err(open_err)?;
                }
                if old <= 2 {
                    tx.execute_batch(MIGRATE_2_TO_3).map_err(open_err)?;
                }
                if old <= 3 {
                    tx.execute_batch(MIGRATE_3_TO_4).map_err(open_err)?;
                }
                tx.execute_batch(MIGRATE_4_TO_5).map_err(open_err)?;
                tx.execute(
                    "UPDATE meta SET value = ?2 WHERE name = ?1",
                    params![META_SCHEMA_VERSION, SCHEMA_VERSION.to_string().into_bytes()],
                )
                .map_err(open_err)?;
                tx.commit().map_err(open_err)?;
                return Ok(());
            }
            _ => return Err(version_mismatch(found)),
        }
        // Nothing was written: dropping the transaction just releases the lock.
        Ok(())
    }

    fn open_reader(&self) -> Result<Connection, StoreError> {
        let open_err = |source| StoreError::Open {
            path: self.path.clone(),
            source,
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(open_err)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(open_err)?;
        Ok(conn)
    }

    /// Runs `read` on a pooled read-only connection; readers never wait for the writer (WAL).
    fn with_reader<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = lock(&self.readers).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => self.open_reader()?,
        };
        let result = read(&conn);
        let mut idle = lock(&self.readers);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        result.map_err(bad_row)
    }

    /// `synchronous` setting of the write connection (2 = FULL), for tests.
    #[cfg(test)]
    pub(crate) fn writer_synchronous(&self) -> i64 {
        lock(&self.writer)
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .expect("PRAGMA synchronous")
    }
}

impl LeaseStore for SqliteStore {
    fn commit(&self, changes: &[LeaseChange], at: i64) -> Result<CommitReceipt, StoreError> {
        for change in changes {
            change.validate()?;
        }
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // History times never go backwards, so time cursors can seek by index: a wall clock
        // that stepped back stamps with the last time used instead.
        let last_at: Option<i64> = tx
            .prepare_cached("SELECT at FROM lease_changes ORDER BY seq DESC LIMIT 1")?
            .query_row([], |r| r.get(0))
            .optional()?;
        let at = last_at.map_or(at, |last| at.max(last));
        {
            let mut upsert = tx.prepare_cached(&format!(
                "INSERT OR REPLACE INTO lease6 ({LEASE_COLUMNS}) VALUES ({LEASE_PLACEHOLDERS})"
            ))?;
            let mut delete = tx.prepare_cached(&format!(
                "DELETE FROM lease6 WHERE lease_type = ?1 AND address = ?2 AND prefix_len = ?3 \
                 RETURNING {LEASE_COLUMNS}"
            ))?;
            let mut renew = tx.prepare_cached(&format!(
                "UPDATE lease6 SET cltt = ?4, pref_lifetime = ?5, valid_lifetime = ?6, \
                 expire = ?4 + ?6 \
                 WHERE lease_type = ?1 AND address = ?2 AND prefix_len = ?3 \
                 AND state = {assigned} AND cltt <= ?4 \
                 RETURNING {LEASE_COLUMNS}",
                assigned = LeaseState::Assigned.code()
            ))?;
            let mut record = tx.prepare_cached(&format!(
                "INSERT INTO lease_changes (at, kind, {LEASE_COLUMNS}) \
                 VALUES (?22, ?23, {LEASE_PLACEHOLDERS})"
            ))?;
            for change in changes {
                match change {
                    LeaseChange::Upsert(lease) => {
                        // One set of values for the row and its history record: building
                        // them is a dozen allocations, bound by reference twice.
                        let mut values = lease_values(lease);
                        upsert.execute(rusqlite::params_from_iter(&values))?;
                        values.extend([Value::Integer(at), Value::Integer(KIND_UPSERT)]);
                        record.execute(rusqlite::params_from_iter(values))?;
                    }
                    LeaseChange::Renew {
                        key,
                        cltt,
                        preferred_lifetime,
                        valid_lifetime,
                    } => {
                        let (lease_type, address, prefix_len) = key_params(key);
                        let renewed = renew
                            .query_row(
                                params![
                                    lease_type,
                                    address,
                                    prefix_len,
                                    cltt,
                                    preferred_lifetime,
                                    valid_lifetime
                                ],
                                |row| lease_from_row(row, 0),
                            )
                            .optional()?;
                        if let Some(lease) = renewed {
                            let mut values = lease_values(&lease);
                            values.extend([Value::Integer(at), Value::Integer(KIND_UPSERT)]);
                            record.execute(rusqlite::params_from_iter(values))?;
                        }
                    }
                    LeaseChange::Delete(key) => {
                        let removed = delete
                            .query_row(key_params(key), |row| lease_from_row(row, 0))
                            .optional()?;
                        if let Some(lease) = removed {
                            let mut values = lease_values(&lease);
                            values.extend([Value::Integer(at), Value::Integer(KIND_DELETE)]);
                            record.execute(rusqlite::params_from_iter(values))?;
                        }
                    }
                }
            }
        }
        let last_seq = last_seq(&tx)?;
        tx.commit()?;
        Ok(CommitReceipt { at, last_seq })
    }

    fn get(&self, key: &LeaseKey) -> Result<Option<Lease>, StoreError> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {LEASE_COLUMNS} FROM lease6 \
                 WHERE lease_type = ?1 AND address = ?2 AND prefix_len = ?3"
            ))?;
            Ok(stmt
                .query_row(key_params(key), |row| lease_from_row(row, 0))
                .optional()?)
        })
    }

    fn get_by_address(&self, address: Ipv6Addr) -> Result<Option<Lease>, StoreError> {
        self.get(&LeaseKey::na(address))
    }

    fn find_prefixes_containing(&self, address: Ipv6Addr) -> Result<Vec<Lease>, StoreError> {
        self.with_reader(|conn| {
            // Delegations of any length may coexist (old released /56 next to a new /60), so
            // each possible length is one exact primary-key probe: 129 index lookups, no scan.
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {LEASE_COLUMNS} FROM lease6 \
                 WHERE lease_type = ?1 AND address = ?2 AND prefix_len = ?3"
            ))?;
            let mut found = Vec::new();
            for prefix_len in (0..=128u8).rev() {
                let key = LeaseKey::pd(mask(address, prefix_len), prefix_len);
                if let Some(lease) = stmt
                    .query_row(key_params(&key), |row| lease_from_row(row, 0))
                    .optional()?
                {
                    found.push(lease);
                }
            }
            Ok(found)
        })
    }

    fn find(
        &self,
        filter: &LeaseFilter,
        after: Option<&LeaseKey>,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        let (mut conditions, mut values) = filter_conditions(filter);
        if let Some(key) = after {
            conditions.push("(lease_type, address, prefix_len) > (?, ?, ?)");
            values.extend(key_values(key));
        }
        self.select_page(conditions, values, "lease_type, address, prefix_len", limit)
    }

    fn find_by_client(
        &self,
        filter: &LeaseFilter,
        after: Option<&ClientCursor>,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        let (mut conditions, mut values) = filter_conditions(filter);
        if let Some(cursor) = after {
            conditions.push("(duid, iaid, lease_type, address, prefix_len) > (?, ?, ?, ?, ?)");
            values.extend([
                Value::Blob(cursor.duid.clone()),
                Value::Integer(i64::from(cursor.iaid)),
            ]);
            values.extend(key_values(&cursor.key));
        }
        // The order of lease6_by_duid (duid, iaid, then the primary key): no sort.
        self.select_page(
            conditions,
            values,
            "duid, iaid, lease_type, address, prefix_len",
            limit,
        )
    }

    fn expired_before(&self, before: i64, limit: usize) -> Result<Vec<Lease>, StoreError> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {LEASE_COLUMNS} FROM lease6 WHERE state = ?1 AND expire < ?2 \
                 ORDER BY expire LIMIT ?3"
            ))?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt
                .query_map(params![LeaseState::Assigned.code(), before, limit], |row| {
                    lease_from_row(row, 0)
                })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn active_counts(&self, now: i64) -> Result<Vec<PoolCount>, StoreError> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT subnet_id, lease_type, count(*) FROM lease6 \
                 WHERE state = ?1 AND expire > ?2 \
                 GROUP BY subnet_id, lease_type ORDER BY subnet_id, lease_type",
            )?;
            let rows = stmt.query_map(params![LeaseState::Assigned.code(), now], |row| {
                Ok(PoolCount {
                    subnet_id: row.get(0)?,
                    lease_type: lease_type_at(row, 1)?,
                    active: u64_at(row, 2)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn changes_since(
        &self,
        from: ChangeCursor,
        limit: usize,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        let (condition, bound) = match from {
            ChangeCursor::AfterSeq(seq) => ("seq > ?1", i64::try_from(seq).unwrap_or(i64::MAX)),
            // Commit times never decrease along seq (see `commit`), so the first entry at or
            // after the time, found on the `at` index, starts the run: no scan of older history.
            ChangeCursor::SinceTime(at) => (
                "seq >= (SELECT seq FROM lease_changes WHERE at >= ?1 ORDER BY at, seq LIMIT 1)",
                at,
            ),
        };
        let sql = format!(
            "SELECT seq, at, kind, {LEASE_COLUMNS} FROM lease_changes \
             WHERE {condition} ORDER BY seq LIMIT ?2"
        );
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let rows = stmt.query_map(params![bound, limit], |row| {
                let kind = match row.get::<_, i64>(2)? {
                    KIND_UPSERT => ChangeKind::Upsert,
                    KIND_DELETE => ChangeKind::Delete,
                    other => return Err(bad_code(2, "change kind", other)),
                };
                Ok(ChangeRecord {
                    seq: u64_at(row, 0)?,
                    at: row.get(1)?,
                    kind,
                    lease: lease_from_row(row, 3)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    fn oldest_change_time(&self) -> Result<Option<i64>, StoreError> {
        self.with_reader(|conn| {
            // The oldest entry is the lowest seq (commit times never go backwards within a
            // writer; using seq also stays right if the wall clock stepped back).
            let at = conn
                .query_row(
                    "SELECT at FROM lease_changes ORDER BY seq LIMIT 1",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            Ok(at)
        })
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        self.with_reader(last_seq)
    }

    fn prune_changes(&self, before: i64) -> Result<u64, StoreError> {
        let conn = lock(&self.writer);
        let removed = conn.execute("DELETE FROM lease_changes WHERE at < ?1", [before])?;
        Ok(u64::try_from(removed).unwrap_or(u64::MAX))
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached("SELECT value FROM meta WHERE name = ?1")?;
            Ok(stmt.query_row([key], |r| r.get(0)).optional()?)
        })
    }

    fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let conn = lock(&self.writer);
        conn.execute(
            "INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)",
            params![key, value],
        )?;
        Ok(())
    }
}

/// Locks a mutex, taking over a poisoned one: a panicking holder leaves the connection usable
/// (an open transaction is rolled back when its guard drops).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Highest sequence number ever handed out; `sqlite_sequence` keeps it even when pruned away.
fn last_seq(conn: &Connection) -> Result<u64, StoreError> {
    let seq: Option<i64> = conn
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'lease_changes'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    Ok(seq.and_then(|seq| u64::try_from(seq).ok()).unwrap_or(0))
}

fn key_params(key: &LeaseKey) -> (i64, [u8; 16], u8) {
    (key.lease_type.code(), key.address.octets(), key.prefix_len)
}

/// The lease as SQL values in [`LEASE_COLUMNS`] order (?1..?21).
fn lease_values(lease: &Lease) -> Vec<Value> {
    let optional_blob = |value: &Option<Vec<u8>>| match value {
        Some(bytes) => Value::Blob(bytes.clone()),
        None => Value::Null,
    };
    vec![
        Value::Integer(lease.lease_type.code()),
        Value::Blob(lease.address.octets().to_vec()),
        Value::Integer(i64::from(lease.prefix_len)),
        Value::Blob(lease.duid.clone()),
        Value::Integer(i64::from(lease.iaid)),
        Value::Integer(i64::from(lease.subnet_id)),
        Value::Integer(i64::from(lease.preferred_lifetime)),
        Value::Integer(i64::from(lease.valid_lifetime)),
        Value::Integer(lease.cltt),
        Value::Integer(lease.expire),
        Value::Integer(lease.state.code()),
        Value::Text(lease.interface.clone()),
        Value::Blob(lease.link_address.octets().to_vec()),
        optional_blob(&lease.relay_id),
        optional_blob(&lease.remote_id),
        Value::Blob(lease.relay_info.clone()),
        Value::Text(lease.hostname.clone()),
        lease
            .line
            .as_ref()
            .map_or(Value::Null, |line| Value::Blob(line.to_vec())),
        lease
            .next_hop
            .map_or(Value::Null, |hop| Value::Blob(hop.octets().to_vec())),
        lease
            .reconfigure
            .map_or(Value::Null, |r| Value::Blob(r.to_bytes().to_vec())),
        lease
            .link_layer
            .as_ref()
            .map_or(Value::Null, |address| Value::Blob(address.to_vec())),
    ]
}

/// Reads a lease from [`LEASE_COLUMNS`] starting at column `at`.
fn lease_from_row(row: &Row<'_>, at: usize) -> rusqlite::Result<Lease> {
    let state_code: i64 = row.get(at + 10)?;
    Ok(Lease {
        lease_type: lease_type_at(row, at)?,
        address: Ipv6Addr::from(row.get::<_, [u8; 16]>(at + 1)?),
        prefix_len: row.get(at + 2)?,
        duid: row.get(at + 3)?,
        iaid: row.get(at + 4)?,
        subnet_id: row.get(at + 5)?,
        preferred_lifetime: row.get(at + 6)?,
        valid_lifetime: row.get(at + 7)?,
        cltt: row.get(at + 8)?,
        expire: row.get(at + 9)?,
        state: LeaseState::from_code(state_code)
            .ok_or_else(|| bad_code(at + 10, "lease state", state_code))?,
        interface: row.get(at + 11)?,
        link_address: Ipv6Addr::from(row.get::<_, [u8; 16]>(at + 12)?),
        relay_id: row.get(at + 13)?,
        remote_id: row.get(at + 14)?,
        relay_info: row.get(at + 15)?,
        hostname: row.get(at + 16)?,
        line: row
            .get::<_, Option<Vec<u8>>>(at + 17)?
            .map(Vec::into_boxed_slice),
        next_hop: row.get::<_, Option<[u8; 16]>>(at + 18)?.map(Ipv6Addr::from),
        reconfigure: row
            .get::<_, Option<Vec<u8>>>(at + 19)?
            .and_then(|bytes| ReconfigureKey::from_bytes(&bytes)),
        link_layer: row
            .get::<_, Option<Vec<u8>>>(at + 20)?
            .map(Vec::into_boxed_slice),
    })
}

fn u64_at(row: &Row<'_>, column: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(column)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(column, value))
}

fn lease_type_at(row: &Row<'_>, column: usize) -> rusqlite::Result<LeaseType> {
    let code: i64 = row.get(column)?;
    LeaseType::from_code(code).ok_or_else(|| bad_code(column, "lease type", code))
}

fn bad_code(column: usize, what: &str, code: i64) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        Type::Integer,
        format!("unknown {what} code {code}").into(),
    )
}

/// Turns decoding failures (a damaged or hand-edited row) into [`StoreError::BadRow`].
fn bad_row(err: StoreError) -> StoreError {
    match err {
        StoreError::Sqlite(
            err @ (rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::InvalidColumnType(..)),
        ) => StoreError::BadRow(err.to_string()),
        other => other,
    }
}

/// The WHERE conditions and their values that select `filter`.
fn filter_conditions(filter: &LeaseFilter) -> (Vec<&'static str>, Vec<Value>) {
    let mut conditions: Vec<&'static str> = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    match filter {
        LeaseFilter::All => {}
        LeaseFilter::Duid { duid, iaid } => {
            conditions.push("duid = ?");
            values.push(Value::Blob(duid.clone()));
            if let Some(iaid) = iaid {
                conditions.push("iaid = ?");
                values.push(Value::Integer(i64::from(*iaid)));
            }
        }
        LeaseFilter::RelayId(relay_id) => {
            conditions.push("relay_id = ?");
            values.push(Value::Blob(relay_id.clone()));
        }
        LeaseFilter::RemoteId(remote_id) => {
            conditions.push("remote_id = ?");
            values.push(Value::Blob(remote_id.clone()));
        }
        LeaseFilter::LinkAddress(link) => {
            conditions.push("link_address = ?");
            values.push(Value::Blob(link.octets().to_vec()));
        }
    }
    (conditions, values)
}

/// A key's columns (lease_type, address, prefix_len) as values.
fn key_values(key: &LeaseKey) -> [Value; 3] {
    [
        Value::Integer(key.lease_type.code()),
        Value::Blob(key.address.octets().to_vec()),
        Value::Integer(i64::from(key.prefix_len)),
    ]
}

impl SqliteStore {
    /// Up to `limit` lease rows meeting every condition, in `order`.
    fn select_page(
        &self,
        conditions: Vec<&str>,
        mut values: Vec<Value>,
        order: &str,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        values.push(Value::Integer(i64::try_from(limit).unwrap_or(i64::MAX)));
        let sql =
            format!("SELECT {LEASE_COLUMNS} FROM lease6 {where_clause} ORDER BY {order} LIMIT ?");
        self.with_reader(|conn| {
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(values), |row| {
                lease_from_row(row, 0)
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }
}
