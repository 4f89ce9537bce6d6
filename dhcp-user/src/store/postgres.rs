//! PostgreSQL implementation of [`LeaseStore`]: one write connection, a pool of read ones, on a
//! tokio runtime of the store's own, so that the synchronous trait can be called from the
//! writer thread and from async tasks alike.
//!
//! Every connection runs with `synchronous_commit = on`: `commit` returns once PostgreSQL has
//! flushed the transaction's WAL, so a Reply goes out only after that (as with SQLite).
//!
//! Several servers may share one database. What keeps their grants apart is the database, not
//! luck: an upsert of a lease held by another client (assigned or declined, not yet expired) is
//! refused row by row (`ON CONFLICT … DO UPDATE … WHERE`), and [`LeaseStore::commit_checked`]
//! reports it, so the server never replies with it and picks again. The change history is
//! written under one advisory lock per batch (not per allocation), so sequence numbers are
//! handed out in commit order across servers; each batch ends with a `NOTIFY` on
//! [`NOTIFY_CHANNEL`] carrying its last sequence number, which the other servers follow
//! ([`PostgresStore::listen`]).
//!
//! The schema is versioned: `schema_migrations` lists the migrations applied (see
//! [`MIGRATIONS`]); opening applies the missing ones in one transaction, and refuses a database
//! that has migrations this build does not know.

use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures_util::future::try_join_all;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{AsyncMessage, Client, Row, Transaction};

use super::pg_tls::{MakeRustls, PgTls};

use super::{
    mask, ChangeCursor, ChangeKind, ChangeRecord, CheckedCommit, ClientCursor, CommitReceipt,
    Lease, LeaseChange, LeaseFilter, LeaseKey, LeaseState, LeaseStore, LeaseType, PoolCount,
    ReconfigureKey, StoreError,
};

/// The channel every commit notifies (payload: the batch's last history sequence number).
pub const NOTIFY_CHANNEL: &str = "dhcp_lease_changes";

/// The schema migrations, in order: (version, what it does, SQL). Never edit one that shipped;
/// add the next.
pub const MIGRATIONS: &[(u32, &str, &str)] = &[
    (
        1,
        "lease6, lease_changes, meta",
        "
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

-- Kea's lease6 column names and codes (lease_type 0 NA / 2 PD, state 0..3); times are unix
-- seconds, the relay columns are what leasequery needs.
CREATE TABLE lease6 (
    address        INET     NOT NULL,
    duid           BYTEA    NOT NULL,
    valid_lifetime BIGINT   NOT NULL,
    expire         BIGINT   NOT NULL,
    subnet_id      BIGINT   NOT NULL,
    pref_lifetime  BIGINT   NOT NULL,
    lease_type     SMALLINT NOT NULL,
    iaid           BIGINT   NOT NULL,
    prefix_len     SMALLINT NOT NULL,
    hostname       TEXT     NOT NULL,
    state          SMALLINT NOT NULL,
    cltt           BIGINT   NOT NULL,
    interface      TEXT     NOT NULL,
    link_address   INET     NOT NULL,
    relay_id       BYTEA,
    remote_id      BYTEA,
    relay_info     BYTEA    NOT NULL,
    PRIMARY KEY (lease_type, address, prefix_len)
);
CREATE INDEX lease6_by_duid ON lease6 (duid, iaid);
CREATE INDEX lease6_by_relay_id ON lease6 (relay_id, lease_type, address, prefix_len)
    WHERE relay_id IS NOT NULL;
CREATE INDEX lease6_by_remote_id ON lease6 (remote_id, lease_type, address, prefix_len)
    WHERE remote_id IS NOT NULL;
CREATE INDEX lease6_by_link_address ON lease6 (link_address, lease_type, address, prefix_len);
CREATE INDEX lease6_by_expire ON lease6 (state, expire, subnet_id, lease_type);

CREATE SEQUENCE lease_changes_seq;
CREATE TABLE lease_changes (
    seq            BIGINT   PRIMARY KEY DEFAULT nextval('lease_changes_seq'),
    at             BIGINT   NOT NULL,
    kind           SMALLINT NOT NULL,
    lease_type     SMALLINT NOT NULL,
    address        INET     NOT NULL,
    prefix_len     SMALLINT NOT NULL,
    duid           BYTEA    NOT NULL,
    iaid           BIGINT   NOT NULL,
    subnet_id      BIGINT   NOT NULL,
    pref_lifetime  BIGINT   NOT NULL,
    valid_lifetime BIGINT   NOT NULL,
    cltt           BIGINT   NOT NULL,
    expire         BIGINT   NOT NULL,
    state          SMALLINT NOT NULL,
    interface      TEXT     NOT NULL,
    link_address   INET     NOT NULL,
    relay_id       BYTEA,
    remote_id      BYTEA,
    relay_info     BYTEA    NOT NULL,
    hostname       TEXT     NOT NULL
);
ALTER SEQUENCE lease_changes_seq OWNED BY lease_changes.seq;
CREATE INDEX lease_changes_by_at ON lease_changes (at, seq);
",
    ),
    (
        2,
        "the lease's line (line-identity), for sticky delegation by line",
        "
ALTER TABLE lease6 ADD COLUMN line BYTEA;
ALTER TABLE lease_changes ADD COLUMN line BYTEA;
CREATE INDEX lease6_by_line ON lease6 (line) WHERE line IS NOT NULL;
",
    ),
    (
        3,
        "row versions (newest committed row wins), the pruned history's end",
        "
-- The history sequence number of the row's last change, set in the change's own transaction:
-- a copy of the table (another server's) applies a change only if it is newer than its row.
-- Rows written before this migration have 0, older than any change.
ALTER TABLE lease6 ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
-- The highest sequence number pruning removed: a follower behind it has a gap to resync.
CREATE TABLE lease_changes_pruned (
    only_row BOOLEAN PRIMARY KEY DEFAULT true CHECK (only_row),
    through  BIGINT  NOT NULL
);
INSERT INTO lease_changes_pruned (through)
    SELECT COALESCE(
        (SELECT min(seq) - 1 FROM lease_changes),
        (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM lease_changes_seq));
",
    ),
    (
        4,
        "the client's next hop ([routes]), for the route re-sync and the peers",
        "
ALTER TABLE lease6 ADD COLUMN next_hop INET;
ALTER TABLE lease_changes ADD COLUMN next_hop INET;
",
    ),
    (
        5,
        "the client's reconfigure key and where a Reconfigure goes (reconfigure)",
        "
ALTER TABLE lease6 ADD COLUMN reconfigure BYTEA;
ALTER TABLE lease_changes ADD COLUMN reconfigure BYTEA;
",
    ),
    (
        6,
        "a direct client's link-layer address (its frame's source MAC)",
        "
ALTER TABLE lease6 ADD COLUMN link_layer BYTEA;
ALTER TABLE lease_changes ADD COLUMN link_layer BYTEA;
",
    ),
];

/// The newest schema version this build knows.
pub fn schema_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Advisory lock key taken while migrating (two servers starting at once migrate once).
const MIGRATION_LOCK: i64 = 0x6468_6370_6d69_6772; // "dhcpmigr"
/// Advisory lock key held from the history write to the commit of each batch.
const HISTORY_LOCK: i64 = 0x6468_6370_6869_7374; // "dhcphist"
/// Read connections kept open for reuse.
const MAX_IDLE_READERS: usize = 8;
/// Transactions retried after a deadlock or serialization failure before the error is returned.
const MAX_RETRIES: usize = 3;

/// Lease columns in the order [`lease_from_row`] reads them (the same as the SQLite store's).
const LEASE_COLUMNS: &str = "lease_type, address, prefix_len, duid, iaid, subnet_id, \
     pref_lifetime, valid_lifetime, cltt, expire, state, interface, link_address, relay_id, \
     remote_id, relay_info, hostname, line, next_hop, reconfigure, link_layer";
const LEASE_PLACEHOLDERS: &str =
    "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21";
const KIND_UPSERT: i16 = 0;
const KIND_DELETE: i16 = 1;

/// The PostgreSQL lease store; share it as `Arc<PostgresStore>`.
pub struct PostgresStore {
    /// `host:port/dbname`, for messages (never the password).
    target: String,
    config: tokio_postgres::Config,
    tls: MakeRustls,
    runtime: Option<tokio::runtime::Runtime>,
    writer: Mutex<Option<Client>>,
    readers: Mutex<Vec<Arc<Client>>>,
}

impl PostgresStore {
    /// Connects to the database `conninfo` names (a `postgresql://` URL or `key=value` pairs),
    /// with `password` if given, and brings its schema up to date. TLS as libpq's default
    /// (`sslmode=prefer`), or as `sslmode` and `sslrootcert` in `conninfo` say.
    pub fn connect(conninfo: &str, password: Option<&str>) -> Result<Self, StoreError> {
        let (rest, mode, root) = super::pg_tls::split_tls_params(conninfo);
        let mut tls = PgTls::default();
        if let Some(mode) = mode {
            tls.mode = super::pg_tls::SslMode::parse(&mode)
                .ok_or_else(|| StoreError::Tls(format!("unknown sslmode {mode:?}")))?;
        }
        tls.ca = root.map(Into::into);
        Self::connect_with(&rest, password, &tls)
    }

    /// [`PostgresStore::connect`] with the TLS settings `tls` (`conninfo` has no `sslmode`).
    pub fn connect_with(
        conninfo: &str,
        password: Option<&str>,
        tls: &PgTls,
    ) -> Result<Self, StoreError> {
        let mut config =
            tokio_postgres::Config::from_str(conninfo).map_err(|source| StoreError::Postgres {
                target: "the connection string".into(),
                source,
            })?;
        let (tls, ssl_mode) = MakeRustls::new(tls)?;
        config.ssl_mode(ssl_mode);
        if let Some(password) = password {
            config.password(password);
        }
        if config.get_application_name().is_none() {
            config.application_name("dhcp-user");
        }
        let target = describe(&config);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("lease-pg")
            .enable_all()
            .build()
            .map_err(|source| StoreError::Io {
                context: "starting the PostgreSQL store's runtime".into(),
                source,
            })?;
        let store = PostgresStore {
            target,
            config,
            tls,
            runtime: Some(runtime),
            writer: Mutex::new(None),
            readers: Mutex::new(Vec::new()),
        };
        let mut client = store.block(store.connect_client())?;
        store.block(migrate(&mut client, &store.target))?;
        *lock(&store.writer) = Some(client);
        Ok(store)
    }

    /// `host:port/dbname` of the database (for messages).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The schema versions applied, in order (from `schema_migrations`).
    pub fn applied_migrations(&self) -> Result<Vec<u32>, StoreError> {
        self.read(|client| async move {
            let rows = client
                .query(
                    "SELECT version FROM schema_migrations ORDER BY version",
                    &[],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    let v: i32 = row.try_get(0)?;
                    u32::try_from(v).map_err(|_| bad(format!("schema version {v}")))
                })
                .collect()
        })
    }

    /// A setting of the store's connections (`SHOW name`), for tests.
    pub fn session_setting(&self, name: &str) -> Result<String, StoreError> {
        let sql = format!(
            "SHOW {}",
            name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "")
        );
        self.read(|client| async move {
            let row = client.query_one(sql.as_str(), &[]).await?;
            Ok(row.try_get::<_, String>(0)?)
        })
    }

    /// Follows the commits of every server on this database: calls `on_commit` with the last
    /// sequence number of each batch committed (by any server, this one included) as
    /// PostgreSQL delivers its NOTIFY, on a thread of its own, until `on_commit` returns false.
    /// The connection is made again after an error; `on_commit(0)` then says "look, you may
    /// have missed some".
    pub fn listen(
        &self,
        mut on_commit: impl FnMut(u64) -> bool + Send + 'static,
    ) -> std::io::Result<()> {
        let config = self.config.clone();
        let tls = self.tls.clone();
        let target = self.target.clone();
        let handle = self.runtime().handle().clone();
        std::thread::Builder::new()
            .name("lease-pg-listen".into())
            .spawn(move || {
                let mut first = true;
                loop {
                    let (tx, rx) = std::sync::mpsc::channel::<u64>();
                    let listening = handle.block_on(async {
                        let (client, mut connection) = config.connect(tls.clone()).await?;
                        let forward = tokio::spawn(async move {
                            let mut messages = futures_util::stream::poll_fn(move |cx| {
                                connection.poll_message(cx)
                            });
                            use futures_util::StreamExt;
                            while let Some(message) = messages.next().await {
                                match message {
                                    Ok(AsyncMessage::Notification(n)) => {
                                        let seq = n.payload().parse::<u64>().unwrap_or(0);
                                        if tx.send(seq).is_err() {
                                            break;
                                        }
                                    }
                                    Ok(_) => {}
                                    Err(_) => break,
                                }
                            }
                        });
                        client
                            .batch_execute(&format!("LISTEN {NOTIFY_CHANNEL}"))
                            .await?;
                        Ok::<_, tokio_postgres::Error>((client, forward))
                    });
                    match listening {
                        Ok((client, forward)) => {
                            if !first && !on_commit(0) {
                                return;
                            }
                            first = false;
                            tracing::debug!(database = %target, "following other servers' commits");
                            for seq in rx.iter() {
                                if !on_commit(seq) {
                                    forward.abort();
                                    return;
                                }
                            }
                            drop(client);
                            tracing::warn!(database = %target, "lost the LISTEN connection; connecting again");
                        }
                        Err(err) => {
                            tracing::warn!(database = %target, error = %err, "LISTEN failed; trying again");
                        }
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            })
            .map(drop)
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives until drop")
    }

    /// Runs `future` to completion on the store's runtime and waits for it, from any thread: on
    /// a thread that is itself inside a runtime, a scoped helper thread does the waiting.
    fn block<T: Send>(&self, future: impl Future<Output = T> + Send) -> T {
        let runtime = self.runtime();
        if tokio::runtime::Handle::try_current().is_err() {
            return runtime.block_on(future);
        }
        std::thread::scope(|scope| {
            scope
                .spawn(|| runtime.block_on(future))
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    async fn connect_client(&self) -> Result<Client, StoreError> {
        let open_err = |source: tokio_postgres::Error| {
            // A certificate the CA does not vouch for: say so at the top (tokio-postgres's
            // own message is only "error performing TLS handshake").
            match std::error::Error::source(&source) {
                Some(cause) if cause.to_string().contains(super::pg_tls::CA_KEY) => {
                    StoreError::Tls(format!("{}: {source}: {cause}", self.target))
                }
                _ => StoreError::Postgres {
                    target: self.target.clone(),
                    source,
                },
            }
        };
        let (client, connection) = self
            .config
            .connect(self.tls.clone())
            .await
            .map_err(open_err)?;
        let target = self.target.clone();
        self.runtime().spawn(async move {
            if let Err(err) = connection.await {
                tracing::warn!(database = %target, error = %err, "PostgreSQL connection ended");
            }
        });
        // Durable before the Reply, whatever the server's or the role's default says.
        client
            .batch_execute("SET synchronous_commit = on")
            .await
            .map_err(open_err)?;
        Ok(client)
    }

    /// Runs `read` on a pooled connection (made if none is idle); a broken one is not kept.
    fn read<T, F, Fut>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send,
        F: FnOnce(Arc<Client>) -> Fut + Send,
        Fut: Future<Output = Result<T, StoreError>> + Send,
    {
        let pooled = lock(&self.readers).pop();
        let (client, result) = self.block(async {
            let client = match pooled {
                Some(client) if !client.is_closed() => client,
                _ => Arc::new(self.connect_client().await?),
            };
            let result = read(Arc::clone(&client)).await;
            Ok::<_, StoreError>((client, result))
        })?;
        let mut idle = lock(&self.readers);
        if idle.len() < MAX_IDLE_READERS && !client.is_closed() {
            idle.push(client);
        }
        result.map_err(|err| self.name(err))
    }

    /// Runs `write` on the write connection (made again if it broke), retrying the whole of it
    /// after a deadlock or a serialization failure. `write` hands the connection back.
    fn write<T, F, Fut>(&self, mut write: F) -> Result<T, StoreError>
    where
        T: Send,
        F: FnMut(Client) -> Fut + Send,
        Fut: Future<Output = (Client, Result<T, StoreError>)> + Send,
    {
        let mut guard = lock(&self.writer);
        let taken = guard.take();
        let (client, result) = self.block(async {
            let mut client = taken;
            let mut attempt = 0;
            loop {
                let current = match client.take() {
                    Some(current) if !current.is_closed() => current,
                    _ => match self.connect_client().await {
                        Ok(fresh) => fresh,
                        Err(err) => return (None, Err(err)),
                    },
                };
                let (back, result) = write(current).await;
                client = Some(back);
                match result {
                    Err(StoreError::Postgres { source, .. })
                        if attempt < MAX_RETRIES && is_retryable(&source) =>
                    {
                        attempt += 1;
                        tracing::debug!(attempt, error = %source, "lease transaction retried");
                    }
                    other => return (client, other),
                }
            }
        });
        *guard = client;
        result.map_err(|err| self.name(err))
    }

    /// Puts this store's target into a bare database error.
    fn name(&self, err: StoreError) -> StoreError {
        match err {
            StoreError::Postgres { target, source } if target.is_empty() => StoreError::Postgres {
                target: self.target.clone(),
                source,
            },
            other => other,
        }
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio forbids inside another runtime (a server
        // dropped in an async test): let its threads end on their own.
        lock(&self.writer).take();
        lock(&self.readers).clear();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(source: tokio_postgres::Error) -> Self {
        StoreError::Postgres {
            target: String::new(),
            source,
        }
    }
}

fn is_retryable(err: &tokio_postgres::Error) -> bool {
    matches!(
        err.code(),
        Some(code) if *code == SqlState::T_R_DEADLOCK_DETECTED
            || *code == SqlState::T_R_SERIALIZATION_FAILURE
    )
}

/// Applies the missing migrations in one transaction, under an advisory lock.
async fn migrate(client: &mut Client, target: &str) -> Result<(), StoreError> {
    let named = |source| StoreError::Postgres {
        target: target.to_owned(),
        source,
    };
    let tx = client.transaction().await.map_err(named)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(named)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version     INTEGER PRIMARY KEY,
             description TEXT NOT NULL,
             applied_at  TIMESTAMPTZ NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(named)?;
    let newest: Option<i32> = tx
        .query_one("SELECT max(version) FROM schema_migrations", &[])
        .await
        .map_err(named)?
        .get(0);
    let newest = newest.unwrap_or(0);
    let known = schema_version();
    if newest > known as i32 {
        return Err(StoreError::PostgresSchema {
            target: target.to_owned(),
            found: newest,
            supported: known,
        });
    }
    for (version, description, sql) in MIGRATIONS {
        if (*version as i32) <= newest {
            continue;
        }
        tx.batch_execute(sql).await.map_err(named)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, description) VALUES ($1, $2)",
            &[&(*version as i32), description],
        )
        .await
        .map_err(named)?;
        tracing::info!(database = %target, version, description, "lease database migrated");
    }
    tx.commit().await.map_err(named)
}

impl LeaseStore for PostgresStore {
    fn commit(&self, changes: &[LeaseChange], at: i64) -> Result<CommitReceipt, StoreError> {
        for change in changes {
            change.validate()?;
        }
        self.write(|mut client| async move {
            let result = commit_in(&mut client, changes, at, false).await;
            (client, result)
        })
        .map(|checked| checked.receipt)
    }

    fn commit_checked(
        &self,
        changes: &[LeaseChange],
        at: i64,
    ) -> Result<CheckedCommit, StoreError> {
        for change in changes {
            change.validate()?;
        }
        self.write(|mut client| async move {
            let result = commit_in(&mut client, changes, at, true).await;
            (client, result)
        })
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn watch_commits(
        &self,
        on_commit: Box<dyn FnMut(u64) -> bool + Send>,
    ) -> Result<bool, StoreError> {
        self.listen(on_commit)
            .map_err(|source| StoreError::Io {
                context: "starting the LISTEN thread".into(),
                source,
            })
            .map(|()| true)
    }

    fn get(&self, key: &LeaseKey) -> Result<Option<Lease>, StoreError> {
        let key = *key;
        self.read(|client| async move {
            let (lease_type, address, prefix_len) = key_values(&key);
            let row = client
                .query_opt(
                    &format!(
                        "SELECT {LEASE_COLUMNS} FROM lease6 \
                         WHERE lease_type = $1 AND address = $2 AND prefix_len = $3"
                    ),
                    &[&lease_type, &address, &prefix_len],
                )
                .await?;
            row.map(|row| lease_from_row(&row, 0)).transpose()
        })
    }

    fn get_by_address(&self, address: Ipv6Addr) -> Result<Option<Lease>, StoreError> {
        self.get(&LeaseKey::na(address))
    }

    fn find_prefixes_containing(&self, address: Ipv6Addr) -> Result<Vec<Lease>, StoreError> {
        // Every possible length, one primary-key probe each, in one statement.
        let candidates: Vec<IpAddr> = (0..=128u8)
            .map(|len| IpAddr::V6(mask(address, len)))
            .collect();
        self.read(|client| async move {
            let rows = client
                .query(
                    &format!(
                        "SELECT {LEASE_COLUMNS} FROM lease6 \
                         WHERE lease_type = $1 AND address = ANY($2) \
                         ORDER BY prefix_len DESC"
                    ),
                    &[&LeaseType::Pd.code_i16(), &candidates],
                )
                .await?;
            let mut found = Vec::new();
            for row in &rows {
                let lease = lease_from_row(row, 0)?;
                if lease.covers(address) && mask(lease.address, lease.prefix_len) == lease.address {
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
        self.select_page_in(filter, after.map(|key| (None, key)), limit, false)
    }

    fn find_by_client(
        &self,
        filter: &LeaseFilter,
        after: Option<&ClientCursor>,
        limit: usize,
    ) -> Result<Vec<Lease>, StoreError> {
        let after = after.map(|cursor| (Some((cursor.duid.clone(), cursor.iaid)), &cursor.key));
        self.select_page_in(filter, after, limit, true)
    }

    fn expired_before(&self, before: i64, limit: usize) -> Result<Vec<Lease>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|client| async move {
            let rows = client
                .query(
                    &format!(
                        "SELECT {LEASE_COLUMNS} FROM lease6 WHERE state = $1 AND expire < $2 \
                         ORDER BY expire LIMIT $3"
                    ),
                    &[&LeaseState::Assigned.code_i16(), &before, &limit],
                )
                .await?;
            rows.iter().map(|row| lease_from_row(row, 0)).collect()
        })
    }

    fn active_counts(&self, now: i64) -> Result<Vec<PoolCount>, StoreError> {
        self.read(|client| async move {
            let rows = client
                .query(
                    "SELECT subnet_id, lease_type, count(*) FROM lease6 \
                     WHERE state = $1 AND expire > $2 \
                     GROUP BY subnet_id, lease_type ORDER BY subnet_id, lease_type",
                    &[&LeaseState::Assigned.code_i16(), &now],
                )
                .await?;
            rows.iter()
                .map(|row| {
                    Ok(PoolCount {
                        subnet_id: u32_at(row, 0)?,
                        lease_type: lease_type_at(row, 1)?,
                        active: u64::try_from(row.try_get::<_, i64>(2)?)
                            .map_err(|_| bad("negative count".into()))?,
                    })
                })
                .collect()
        })
    }

    fn changes_since(
        &self,
        from: ChangeCursor,
        limit: usize,
    ) -> Result<Vec<ChangeRecord>, StoreError> {
        let (condition, bound) = match from {
            ChangeCursor::AfterSeq(seq) => ("seq > $1", i64::try_from(seq).unwrap_or(i64::MAX)),
            ChangeCursor::SinceTime(at) => (
                "seq >= (SELECT seq FROM lease_changes WHERE at >= $1 ORDER BY at, seq LIMIT 1)",
                at,
            ),
        };
        let sql = format!(
            "SELECT seq, at, kind, {LEASE_COLUMNS} FROM lease_changes \
             WHERE {condition} ORDER BY seq LIMIT $2"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|client| async move {
            let rows = client.query(sql.as_str(), &[&bound, &limit]).await?;
            rows.iter()
                .map(|row| {
                    let kind = match row.try_get::<_, i16>(2)? {
                        KIND_UPSERT => ChangeKind::Upsert,
                        KIND_DELETE => ChangeKind::Delete,
                        other => return Err(bad(format!("unknown change kind code {other}"))),
                    };
                    Ok(ChangeRecord {
                        seq: u64::try_from(row.try_get::<_, i64>(0)?)
                            .map_err(|_| bad("negative seq".into()))?,
                        at: row.try_get(1)?,
                        kind,
                        lease: lease_from_row(row, 3)?,
                    })
                })
                .collect()
        })
    }

    fn oldest_change_time(&self) -> Result<Option<i64>, StoreError> {
        self.read(|client| async move {
            let row = client
                .query_opt("SELECT at FROM lease_changes ORDER BY seq LIMIT 1", &[])
                .await?;
            Ok(row.map(|row| row.try_get(0)).transpose()?)
        })
    }

    fn last_seq(&self) -> Result<u64, StoreError> {
        self.read(|client| async move { last_seq(&client).await })
    }

    fn prune_changes(&self, before: i64) -> Result<u64, StoreError> {
        // One statement: the entries go and the pruned end moves together.
        self.write(|client| async move {
            let result = async {
                let row = client
                    .query_one(
                        "WITH d AS (DELETE FROM lease_changes WHERE at < $1 RETURNING seq), \
                         m AS (SELECT count(*) AS n, max(seq) AS top FROM d), \
                         u AS (UPDATE lease_changes_pruned SET through = GREATEST(through, m.top) \
                             FROM m WHERE m.top IS NOT NULL) \
                         SELECT n FROM m",
                        &[&before],
                    )
                    .await?;
                let n: i64 = row.try_get(0)?;
                Ok(u64::try_from(n).unwrap_or(0))
            }
            .await;
            (client, result)
        })
    }

    fn history_pruned_through(&self) -> Result<u64, StoreError> {
        self.read(|client| async move {
            let row = client
                .query_one("SELECT through FROM lease_changes_pruned", &[])
                .await?;
            let through: i64 = row.try_get(0)?;
            u64::try_from(through).map_err(|_| bad(format!("pruned through {through}")))
        })
    }

    fn get_versioned(&self, key: &LeaseKey) -> Result<Option<(Lease, u64)>, StoreError> {
        let key = *key;
        self.read(|client| async move {
            let (lease_type, address, prefix_len) = key_values(&key);
            let row = client
                .query_opt(
                    &format!(
                        "SELECT {LEASE_COLUMNS}, version FROM lease6 \
                         WHERE lease_type = $1 AND address = $2 AND prefix_len = $3"
                    ),
                    &[&lease_type, &address, &prefix_len],
                )
                .await?;
            row.map(|row| versioned_from_row(&row)).transpose()
        })
    }

    fn versioned_leases_after(
        &self,
        after: Option<&LeaseKey>,
        limit: usize,
    ) -> Result<Vec<(Lease, u64)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let after = after.map(key_values);
        self.read(|client| async move {
            let rows = match after {
                Some((lease_type, address, prefix_len)) => {
                    client
                        .query(
                            &format!(
                                "SELECT {LEASE_COLUMNS}, version FROM lease6 \
                                 WHERE (lease_type, address, prefix_len) > ($1, $2, $3) \
                                 ORDER BY lease_type, address, prefix_len LIMIT $4"
                            ),
                            &[&lease_type, &address, &prefix_len, &limit],
                        )
                        .await?
                }
                None => {
                    client
                        .query(
                            &format!(
                                "SELECT {LEASE_COLUMNS}, version FROM lease6 \
                                 ORDER BY lease_type, address, prefix_len LIMIT $1"
                            ),
                            &[&limit],
                        )
                        .await?
                }
            };
            rows.iter().map(versioned_from_row).collect()
        })
    }

    fn get_meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.read(|client| async move {
            let row = client
                .query_opt("SELECT value FROM meta WHERE name = $1", &[&key])
                .await?;
            Ok(row.map(|row| row.try_get(0)).transpose()?)
        })
    }

    fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.write(|client| async move {
            let result = client
                .execute(
                    "INSERT INTO meta (name, value) VALUES ($1, $2) \
                     ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value",
                    &[&key, &value],
                )
                .await
                .map(drop)
                .map_err(StoreError::from);
            (client, result)
        })
    }
}

/// One batch in one transaction: the lease writes pipelined (one round trip), then the history
/// under [`HISTORY_LOCK`], the NOTIFY, the commit. With `keep_going`, upserts refused because
/// another client holds the lease are reported and the rest commits; without it, a refusal
/// rolls the batch back ([`StoreError::Conflict`]).
async fn commit_in(
    client: &mut Client,
    changes: &[LeaseChange],
    at: i64,
    keep_going: bool,
) -> Result<CheckedCommit, StoreError> {
    let tx = client.transaction().await?;
    // Changes to different leases commute; ordering them by key (stably: one lease's changes
    // keep their order) makes every server take row locks in one order, so two batches of two
    // servers never deadlock.
    let mut order: Vec<usize> = (0..changes.len()).collect();
    order.sort_by_key(|&i| changes[i].key());
    let (upsert_text, renew_text, delete_text) = (upsert_sql(), renew_sql(), delete_sql());
    let (upsert, renew, delete) = futures_util::future::try_join3(
        tx.prepare(&upsert_text),
        tx.prepare(&renew_text),
        tx.prepare(&delete_text),
    )
    .await?;
    let params: Vec<LeaseParams> = order
        .iter()
        .map(|&i| match &changes[i] {
            LeaseChange::Upsert(lease) => LeaseParams::of(lease),
            LeaseChange::Delete(key) | LeaseChange::Renew { key, .. } => LeaseParams::key(key),
        })
        .collect();
    let writes = order.iter().zip(&params).map(|(&i, p)| {
        let tx = &tx;
        let (upsert, renew, delete) = (&upsert, &renew, &delete);
        async move {
            match &changes[i] {
                LeaseChange::Upsert(_) => {
                    let mut values = p.refs().to_vec();
                    values.push(&at);
                    tx.query_opt(upsert, &values).await
                }
                LeaseChange::Renew {
                    cltt,
                    preferred_lifetime,
                    valid_lifetime,
                    ..
                } => {
                    let (pref, valid) =
                        (i64::from(*preferred_lifetime), i64::from(*valid_lifetime));
                    tx.query_opt(
                        renew,
                        &[
                            &p.lease_type,
                            &p.address,
                            &p.prefix_len,
                            cltt,
                            &pref,
                            &valid,
                        ],
                    )
                    .await
                }
                LeaseChange::Delete(_) => {
                    tx.query_opt(delete, &[&p.lease_type, &p.address, &p.prefix_len])
                        .await
                }
            }
        }
    });
    let rows = try_join_all(writes).await?;
    let mut refused = Vec::new();
    // (change index, kind, row): what each written change puts in the history.
    let mut history: Vec<(usize, i16, Lease)> = Vec::new();
    for (&i, row) in order.iter().zip(rows) {
        match (&changes[i], row) {
            (LeaseChange::Upsert(_), None) => refused.push(i),
            (LeaseChange::Delete(_), Some(row)) => {
                history.push((i, KIND_DELETE, lease_from_row(&row, 0)?))
            }
            (_, Some(row)) => history.push((i, KIND_UPSERT, lease_from_row(&row, 0)?)),
            (_, None) => {}
        }
    }
    let mut versions = vec![0u64; changes.len()];
    if !refused.is_empty() && !keep_going {
        tx.rollback().await?;
        refused.sort_unstable();
        return Err(StoreError::Conflict(
            refused.iter().map(|&i| changes[i].key()).collect(),
        ));
    }
    // From here to the commit, one batch at a time across every server on the database:
    // history sequence numbers and times then follow commit order.
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&HISTORY_LOCK])
        .await?;
    let last_at: Option<i64> = tx
        .query_opt(
            "SELECT at FROM lease_changes ORDER BY seq DESC LIMIT 1",
            &[],
        )
        .await?
        .map(|row| row.try_get(0))
        .transpose()?;
    let at = last_at.map_or(at, |last| at.max(last));
    let last_seq = if history.is_empty() {
        last_seq_in(&tx).await?
    } else {
        // The history entry, and the row's version set to its sequence number: under the
        // lock, so versions follow commit order across servers, as the sequence numbers do.
        let record = tx
            .prepare(&format!(
                "WITH h AS (INSERT INTO lease_changes ({LEASE_COLUMNS}, at, kind) \
                     VALUES ({LEASE_PLACEHOLDERS}, $22, $23) RETURNING seq), \
                 v AS (UPDATE lease6 SET version = h.seq FROM h \
                     WHERE $23 = {KIND_UPSERT} AND lease_type = $1 AND address = $2 \
                     AND prefix_len = $3) \
                 SELECT seq FROM h"
            ))
            .await?;
        let params: Vec<(LeaseParams, i16)> = history
            .iter()
            .map(|(_, kind, lease)| (LeaseParams::of(lease), *kind))
            .collect();
        let inserts = params.iter().map(|(p, kind)| {
            let mut values = p.refs().to_vec();
            values.push(&at);
            values.push(kind);
            let (tx, record) = (&tx, &record);
            async move { tx.query_one(record, &values).await }
        });
        let seqs = try_join_all(inserts).await?;
        for ((i, _, _), row) in history.iter().zip(&seqs) {
            let seq: i64 = row.try_get(0)?;
            versions[*i] = u64::try_from(seq).map_err(|_| bad(format!("history seq {seq}")))?;
        }
        let last: i64 = seqs
            .last()
            .map(|row| row.try_get(0))
            .transpose()?
            .unwrap_or(0);
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&NOTIFY_CHANNEL, &last.to_string()],
        )
        .await?;
        u64::try_from(last).map_err(|_| bad(format!("history seq {last}")))?
    };
    tx.commit().await?;
    refused.sort_unstable();
    Ok(CheckedCommit {
        receipt: CommitReceipt { at, last_seq },
        refused,
        versions,
    })
}

/// `INSERT … ON CONFLICT DO UPDATE`, refused (no row returned) when the stored lease belongs to
/// another client and is still held (assigned or declined, not expired at `$22`), or when it is
/// the same client's lease, assigned, with a newer transaction than a write that gives it up.
fn upsert_sql() -> String {
    let assigned = LeaseState::Assigned.code();
    let declined = LeaseState::Declined.code();
    let sets = LEASE_COLUMNS
        .split(", ")
        .filter(|c| !matches!(*c, "lease_type" | "address" | "prefix_len"))
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO lease6 ({LEASE_COLUMNS}) VALUES ({LEASE_PLACEHOLDERS}) \
         ON CONFLICT (lease_type, address, prefix_len) DO UPDATE SET {sets} \
         WHERE (lease6.duid = EXCLUDED.duid \
                AND (EXCLUDED.state = {assigned} OR lease6.state <> {assigned} \
                     OR lease6.cltt <= EXCLUDED.cltt)) \
            OR lease6.state NOT IN ({assigned}, {declined}) \
            OR lease6.expire <= $22 \
         RETURNING {LEASE_COLUMNS}"
    )
}

fn renew_sql() -> String {
    format!(
        "UPDATE lease6 SET cltt = $4, pref_lifetime = $5, valid_lifetime = $6, expire = $4 + $6 \
         WHERE lease_type = $1 AND address = $2 AND prefix_len = $3 \
         AND state = {assigned} AND cltt <= $4 \
         RETURNING {LEASE_COLUMNS}",
        assigned = LeaseState::Assigned.code()
    )
}

fn delete_sql() -> String {
    format!(
        "DELETE FROM lease6 WHERE lease_type = $1 AND address = $2 AND prefix_len = $3 \
         RETURNING {LEASE_COLUMNS}"
    )
}

/// Highest sequence number committed. Not the sequence's own value: that may be a number
/// another server's transaction holds and has not committed yet, which a follower starting
/// from it would then skip. The history's newest entry, or where pruning stopped when it
/// removed them all.
async fn last_seq(client: &Client) -> Result<u64, StoreError> {
    let row = client
        .query_one(
            "SELECT GREATEST(COALESCE((SELECT max(seq) FROM lease_changes), 0), \
                    (SELECT through FROM lease_changes_pruned))",
            &[],
        )
        .await?;
    let seq: i64 = row.try_get(0)?;
    u64::try_from(seq).map_err(|_| bad(format!("history seq {seq}")))
}

async fn last_seq_in(tx: &Transaction<'_>) -> Result<u64, StoreError> {
    let row = tx
        .query_one(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM lease_changes_seq",
            &[],
        )
        .await?;
    let seq: i64 = row.try_get(0)?;
    u64::try_from(seq).map_err(|_| bad(format!("history seq {seq}")))
}

/// A lease as SQL values in [`LEASE_COLUMNS`] order ($1..$21).
struct LeaseParams {
    lease_type: i16,
    address: IpAddr,
    prefix_len: i16,
    duid: Vec<u8>,
    iaid: i64,
    subnet_id: i64,
    pref_lifetime: i64,
    valid_lifetime: i64,
    cltt: i64,
    expire: i64,
    state: i16,
    interface: String,
    link_address: IpAddr,
    relay_id: Option<Vec<u8>>,
    remote_id: Option<Vec<u8>>,
    relay_info: Vec<u8>,
    hostname: String,
    line: Option<Vec<u8>>,
    next_hop: Option<IpAddr>,
    reconfigure: Option<Vec<u8>>,
    link_layer: Option<Vec<u8>>,
}

impl LeaseParams {
    fn of(lease: &Lease) -> Self {
        LeaseParams {
            lease_type: lease.lease_type.code_i16(),
            address: IpAddr::V6(lease.address),
            prefix_len: i16::from(lease.prefix_len),
            duid: lease.duid.clone(),
            iaid: i64::from(lease.iaid),
            subnet_id: i64::from(lease.subnet_id),
            pref_lifetime: i64::from(lease.preferred_lifetime),
            valid_lifetime: i64::from(lease.valid_lifetime),
            cltt: lease.cltt,
            expire: lease.expire,
            state: lease.state.code_i16(),
            interface: lease.interface.clone(),
            link_address: IpAddr::V6(lease.link_address),
            relay_id: lease.relay_id.clone(),
            remote_id: lease.remote_id.clone(),
            relay_info: lease.relay_info.clone(),
            hostname: lease.hostname.clone(),
            line: lease.line.as_deref().map(<[u8]>::to_vec),
            next_hop: lease.next_hop.map(IpAddr::V6),
            reconfigure: lease.reconfigure.map(|r| r.to_bytes().to_vec()),
            link_layer: lease.link_layer.as_deref().map(<[u8]>::to_vec),
        }
    }

    /// Only the key columns are used (Renew, Delete).
    fn key(key: &LeaseKey) -> Self {
        LeaseParams {
            lease_type: key.lease_type.code_i16(),
            address: IpAddr::V6(key.address),
            prefix_len: i16::from(key.prefix_len),
            duid: Vec::new(),
            iaid: 0,
            subnet_id: 0,
            pref_lifetime: 0,
            valid_lifetime: 0,
            cltt: 0,
            expire: 0,
            state: 0,
            interface: String::new(),
            link_address: IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            relay_id: None,
            remote_id: None,
            relay_info: Vec::new(),
            hostname: String::new(),
            line: None,
            next_hop: None,
            reconfigure: None,
            link_layer: None,
        }
    }

    fn refs(&self) -> [&(dyn ToSql + Sync); 21] {
        [
            &self.lease_type,
            &self.address,
            &self.prefix_len,
            &self.duid,
            &self.iaid,
            &self.subnet_id,
            &self.pref_lifetime,
            &self.valid_lifetime,
            &self.cltt,
            &self.expire,
            &self.state,
            &self.interface,
            &self.link_address,
            &self.relay_id,
            &self.remote_id,
            &self.relay_info,
            &self.hostname,
            &self.line,
            &self.next_hop,
            &self.reconfigure,
            &self.link_layer,
        ]
    }
}

fn key_values(key: &LeaseKey) -> (i16, IpAddr, i16) {
    (
        key.lease_type.code_i16(),
        IpAddr::V6(key.address),
        i16::from(key.prefix_len),
    )
}

/// Reads a lease from [`LEASE_COLUMNS`] starting at column `at`.
fn lease_from_row(row: &Row, at: usize) -> Result<Lease, StoreError> {
    let state_code: i16 = row.try_get(at + 10)?;
    let prefix_len: i16 = row.try_get(at + 2)?;
    let lifetime = |column: usize| -> Result<u32, StoreError> {
        let value: i64 = row.try_get(column)?;
        u32::try_from(value).map_err(|_| bad(format!("column {column}: {value} is out of range")))
    };
    Ok(Lease {
        lease_type: lease_type_at(row, at)?,
        address: v6_at(row, at + 1)?,
        prefix_len: u8::try_from(prefix_len)
            .ok()
            .filter(|len| *len <= 128)
            .ok_or_else(|| bad(format!("prefix_len {prefix_len}")))?,
        duid: row.try_get(at + 3)?,
        iaid: lifetime(at + 4)?,
        subnet_id: lifetime(at + 5)?,
        preferred_lifetime: lifetime(at + 6)?,
        valid_lifetime: lifetime(at + 7)?,
        cltt: row.try_get(at + 8)?,
        expire: row.try_get(at + 9)?,
        state: LeaseState::from_code(i64::from(state_code))
            .ok_or_else(|| bad(format!("unknown lease state code {state_code}")))?,
        interface: row.try_get(at + 11)?,
        link_address: v6_at(row, at + 12)?,
        relay_id: row.try_get(at + 13)?,
        remote_id: row.try_get(at + 14)?,
        relay_info: row.try_get(at + 15)?,
        hostname: row.try_get(at + 16)?,
        line: row
            .try_get::<_, Option<Vec<u8>>>(at + 17)?
            .map(Vec::into_boxed_slice),
        next_hop: match row.try_get::<_, Option<IpAddr>>(at + 18)? {
            Some(IpAddr::V6(hop)) => Some(hop),
            Some(IpAddr::V4(hop)) => return Err(bad(format!("next_hop {hop} is not IPv6"))),
            None => None,
        },
        reconfigure: row
            .try_get::<_, Option<Vec<u8>>>(at + 19)?
            .and_then(|bytes| ReconfigureKey::from_bytes(&bytes)),
        link_layer: row
            .try_get::<_, Option<Vec<u8>>>(at + 20)?
            .map(Vec::into_boxed_slice),
    })
}

/// A lease read as [`LEASE_COLUMNS`] then `version`.
fn versioned_from_row(row: &Row) -> Result<(Lease, u64), StoreError> {
    // By name: the lease columns before it grow with the schema.
    let version: i64 = row.try_get("version")?;
    let version = u64::try_from(version).map_err(|_| bad(format!("version {version}")))?;
    Ok((lease_from_row(row, 0)?, version))
}

fn v6_at(row: &Row, column: usize) -> Result<Ipv6Addr, StoreError> {
    match row.try_get::<_, IpAddr>(column)? {
        IpAddr::V6(address) => Ok(address),
        IpAddr::V4(address) => Err(bad(format!("column {column}: {address} is not IPv6"))),
    }
}

fn u32_at(row: &Row, column: usize) -> Result<u32, StoreError> {
    let value: i64 = row.try_get(column)?;
    u32::try_from(value).map_err(|_| bad(format!("column {column}: {value} is out of range")))
}

fn lease_type_at(row: &Row, column: usize) -> Result<LeaseType, StoreError> {
    let code: i16 = row.try_get(column)?;
    LeaseType::from_code(i64::from(code))
        .ok_or_else(|| bad(format!("unknown lease type code {code}")))
}

fn bad(message: String) -> StoreError {
    StoreError::BadRow(message)
}

/// `host:port/dbname` of a connection configuration.
fn describe(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "localhost".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let dbname = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("postgresql {host}:{port}/{dbname}")
}

/// Locks a mutex, taking over a poisoned one.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Where a page starts: after this client's (DUID, IAID) in client order, then after this key.
type PageAfter<'a> = (Option<(Vec<u8>, u32)>, &'a LeaseKey);

impl PostgresStore {
    /// A page of `filter` after `after`, in key order or (`client_order`) in client order:
    /// DUID, IAID, then key (the client part of `after` is given then).
    fn select_page_in(
        &self,
        filter: &LeaseFilter,
        after: Option<PageAfter<'_>>,
        limit: usize,
        client_order: bool,
    ) -> Result<Vec<Lease>, StoreError> {
        let mut conditions: Vec<String> = Vec::new();
        let mut values: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
        let next = |value: Box<dyn ToSql + Sync + Send>, values: &mut Vec<_>| {
            values.push(value);
            values.len()
        };
        match filter {
            LeaseFilter::All => {}
            LeaseFilter::Duid { duid, iaid } => {
                let n = next(Box::new(duid.clone()), &mut values);
                conditions.push(format!("duid = ${n}"));
                if let Some(iaid) = iaid {
                    let n = next(Box::new(i64::from(*iaid)), &mut values);
                    conditions.push(format!("iaid = ${n}"));
                }
            }
            LeaseFilter::RelayId(relay_id) => {
                let n = next(Box::new(relay_id.clone()), &mut values);
                conditions.push(format!("relay_id = ${n}"));
            }
            LeaseFilter::RemoteId(remote_id) => {
                let n = next(Box::new(remote_id.clone()), &mut values);
                conditions.push(format!("remote_id = ${n}"));
            }
            LeaseFilter::LinkAddress(link) => {
                let n = next(Box::new(IpAddr::V6(*link)), &mut values);
                conditions.push(format!("link_address = ${n}"));
            }
        }
        let columns = if client_order {
            "duid, iaid, lease_type, address, prefix_len"
        } else {
            "lease_type, address, prefix_len"
        };
        if let Some((client, key)) = after {
            let mut placeholders = Vec::new();
            if let Some((duid, iaid)) = client {
                placeholders.push(next(Box::new(duid), &mut values));
                placeholders.push(next(Box::new(i64::from(iaid)), &mut values));
            }
            let (lease_type, address, prefix_len) = key_values(key);
            placeholders.push(next(Box::new(lease_type), &mut values));
            placeholders.push(next(Box::new(address), &mut values));
            placeholders.push(next(Box::new(prefix_len), &mut values));
            let placeholders: Vec<String> = placeholders.iter().map(|n| format!("${n}")).collect();
            conditions.push(format!("({columns}) > ({})", placeholders.join(", ")));
        }
        let where_clause = if conditions.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conditions.join(" AND "))
        };
        let n = next(
            Box::new(i64::try_from(limit).unwrap_or(i64::MAX)),
            &mut values,
        );
        let sql = format!(
            "SELECT {LEASE_COLUMNS} FROM lease6 {where_clause} \
             ORDER BY {columns} LIMIT ${n}"
        );
        self.read(|client| async move {
            let params: Vec<&(dyn ToSql + Sync)> = values
                .iter()
                .map(|v| v.as_ref() as &(dyn ToSql + Sync))
                .collect();
            let rows = client.query(sql.as_str(), &params).await?;
            rows.iter().map(|row| lease_from_row(row, 0)).collect()
        })
    }
}
