//! `dhcp-user import-kea`: Kea's DHCPv6 leases into our store.
//!
//! Two sources: the memfile `leases6.csv` (an append log: the last row of an address wins, and
//! a row with valid lifetime 0 removes the lease), and the `lease6` table of Kea's PostgreSQL
//! backend. Each row becomes a [`Lease`] with the same address, client, IAID, subnet id,
//! lifetimes, expiry and state; what Kea does not keep (interface, relay data) is left empty,
//! and is filled in at the client's next Renew or Rebind. A row that does not make a valid
//! lease is rejected with its line (or address) and the reason; nothing else stops the import.

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::path::Path;

use anyhow::Context;

use crate::store::{Lease, LeaseChange, LeaseKey, LeaseState, LeaseStore, LeaseType};

/// Leases committed per transaction.
const IMPORT_BATCH: usize = 1000;

/// One rejected row: where it was and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejected {
    /// `leases6.csv line 12`, or `lease6 row 2001:db8::5`.
    pub at: String,
    /// What is wrong with it.
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    /// Rows read (header and blank lines not counted).
    pub rows: u64,
    /// Leases written into our store.
    pub imported: u64,
    /// Rows replaced by a later row of the same lease (memfile only).
    pub superseded: u64,
    /// Leases the file removed (a later row with valid lifetime 0).
    pub removed: u64,
    /// Rows that did not become a lease.
    pub rejected: Vec<Rejected>,
}

/// A lease read from Kea, with where it came from.
struct Read {
    at: String,
    lease: Lease,
}

/// Reads Kea's memfile at `path` into leases (the last row of each lease wins).
pub fn read_memfile(
    path: &Path,
    report: &mut ImportReport,
) -> anyhow::Result<Vec<(String, Lease)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    parse_memfile(&text, &name, report)
}

/// Parses the text of a memfile; `name` names it in rejections.
pub fn parse_memfile(
    text: &str,
    name: &str,
    report: &mut ImportReport,
) -> anyhow::Result<Vec<(String, Lease)>> {
    let mut lines = text.lines().enumerate();
    let header = loop {
        match lines.next() {
            Some((_, line)) if line.trim().is_empty() => continue,
            Some((_, line)) => break line,
            None => return Ok(Vec::new()),
        }
    };
    let columns: Vec<&str> = header.split(',').map(str::trim).collect();
    let index = |column: &str| columns.iter().position(|c| *c == column);
    let required = [
        "address",
        "duid",
        "valid_lifetime",
        "expire",
        "subnet_id",
        "pref_lifetime",
        "lease_type",
        "iaid",
        "prefix_len",
    ];
    let mut at = BTreeMap::new();
    for column in required {
        let i = index(column).with_context(|| {
            format!("{name} line 1: no `{column}` column: is this Kea's leases6.csv?")
        })?;
        at.insert(column, i);
    }
    let hostname = index("hostname");
    let state = index("state");
    let mut latest: BTreeMap<LeaseKey, Read> = BTreeMap::new();
    for (number, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        report.rows += 1;
        let place = format!("{name} line {}", number + 1);
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() < columns.len() {
            report.rejected.push(Rejected {
                at: place,
                reason: format!("{} fields, the header has {}", fields.len(), columns.len()),
            });
            continue;
        }
        let field = |column: &str| fields[at[column]].trim();
        let row = KeaRow {
            address: field("address"),
            duid: parse_kea_duid(field("duid")),
            valid_lifetime: field("valid_lifetime").parse().ok(),
            expire: field("expire").parse().ok(),
            subnet_id: field("subnet_id").parse().ok(),
            pref_lifetime: field("pref_lifetime").parse().ok(),
            lease_type: field("lease_type").parse().ok(),
            iaid: field("iaid").parse().ok(),
            prefix_len: field("prefix_len").parse().ok(),
            hostname: hostname.map_or(String::new(), |i| unescape(fields[i].trim())),
            state: match state {
                Some(i) => fields[i].trim().parse().ok(),
                None => Some(0),
            },
        };
        match row.lease() {
            Ok(Some(lease)) => {
                if latest
                    .insert(lease.key(), Read { at: place, lease })
                    .is_some()
                {
                    report.superseded += 1;
                }
            }
            Ok(None) => {
                // Valid lifetime 0: Kea's record of a removed lease.
                let key = row.key();
                if let Some(key) = key {
                    if latest.remove(&key).is_some() {
                        report.superseded += 1;
                        report.removed += 1;
                    }
                }
            }
            Err(reason) => report.rejected.push(Rejected { at: place, reason }),
        }
    }
    Ok(latest
        .into_values()
        .map(|read| (read.at, read.lease))
        .collect())
}

/// Reads the `lease6` table of Kea's PostgreSQL backend at `conninfo`.
pub fn read_postgresql(
    conninfo: &str,
    password: Option<&str>,
    report: &mut ImportReport,
) -> anyhow::Result<Vec<(String, Lease)>> {
    let mut config: tokio_postgres::Config = conninfo
        .parse()
        .with_context(|| format!("`{conninfo}` is not a PostgreSQL connection string"))?;
    if let Some(password) = password {
        config.password(password);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime for the Kea database")?;
    let rows = runtime.block_on(async {
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .context("connecting to Kea's database")?;
        tokio::spawn(connection);
        // Casts make this read Kea's schemas old and new (address VARCHAR or INET, iaid INT).
        client
            .query(
                "SELECT host(address::inet), duid, valid_lifetime::bigint, \
                 extract(epoch FROM expire)::bigint, subnet_id::bigint, pref_lifetime::bigint, \
                 lease_type::bigint, iaid::bigint & 4294967295, prefix_len::bigint, \
                 coalesce(hostname, '')::text, coalesce(state, 0)::bigint \
                 FROM lease6 ORDER BY address",
                &[],
            )
            .await
            .context("reading Kea's lease6 table")
    })?;
    let mut leases = Vec::new();
    for row in rows {
        report.rows += 1;
        let address: String = row.get(0);
        let place = format!("lease6 row {address}");
        let get = |i: usize| row.get::<_, Option<i64>>(i);
        let kea = KeaRow {
            address: &address,
            duid: row.get::<_, Option<Vec<u8>>>(1),
            valid_lifetime: get(2),
            expire: get(3),
            subnet_id: get(4),
            pref_lifetime: get(5),
            lease_type: get(6),
            iaid: get(7),
            prefix_len: get(8),
            hostname: row.get(9),
            state: get(10),
        };
        match kea.lease() {
            Ok(Some(lease)) => leases.push((place, lease)),
            Ok(None) => report.removed += 1,
            Err(reason) => report.rejected.push(Rejected { at: place, reason }),
        }
    }
    Ok(leases)
}

/// Writes `leases` into `store`, in batches; a lease another client holds in our store is
/// rejected, not overwritten.
pub fn write_leases(
    store: &dyn LeaseStore,
    leases: Vec<(String, Lease)>,
    now: i64,
    report: &mut ImportReport,
) -> anyhow::Result<()> {
    let mut batch: Vec<LeaseChange> = Vec::with_capacity(IMPORT_BATCH);
    let mut places: Vec<String> = Vec::with_capacity(IMPORT_BATCH);
    let flush = |batch: &mut Vec<LeaseChange>,
                 places: &mut Vec<String>,
                 report: &mut ImportReport|
     -> anyhow::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let checked = store
            .commit_checked(batch, now)
            .context("writing the imported leases")?;
        for &i in &checked.refused {
            report.rejected.push(Rejected {
                at: places[i].clone(),
                reason: "the lease is held by another client in our store".into(),
            });
        }
        report.imported += (batch.len() - checked.refused.len()) as u64;
        batch.clear();
        places.clear();
        Ok(())
    };
    for (place, lease) in leases {
        if let Some(existing) = store.get(&lease.key())? {
            if existing.duid != lease.duid && existing.is_active(now) {
                report.rejected.push(Rejected {
                    at: place,
                    reason: format!(
                        "the address is held by another client in our store until {}",
                        existing.expire
                    ),
                });
                continue;
            }
        }
        batch.push(LeaseChange::Upsert(lease));
        places.push(place);
        if batch.len() >= IMPORT_BATCH {
            flush(&mut batch, &mut places, report)?;
        }
    }
    flush(&mut batch, &mut places, report)
}

/// One Kea lease row, fields parsed where they parse (`None`: missing or not a number).
struct KeaRow<'a> {
    address: &'a str,
    duid: Option<Vec<u8>>,
    valid_lifetime: Option<i64>,
    expire: Option<i64>,
    subnet_id: Option<i64>,
    pref_lifetime: Option<i64>,
    lease_type: Option<i64>,
    iaid: Option<i64>,
    prefix_len: Option<i64>,
    hostname: String,
    state: Option<i64>,
}

impl KeaRow<'_> {
    fn key(&self) -> Option<LeaseKey> {
        let address: Ipv6Addr = self.address.parse().ok()?;
        let lease_type = LeaseType::from_code(self.lease_type?)?;
        let prefix_len = u8::try_from(self.prefix_len?).ok()?;
        Some(LeaseKey {
            lease_type,
            address,
            prefix_len,
        })
    }

    /// The lease, `None` for a removal record (valid lifetime 0), or why the row is no lease.
    fn lease(&self) -> Result<Option<Lease>, String> {
        let address: Ipv6Addr = self
            .address
            .parse()
            .map_err(|_| format!("address `{}` is not an IPv6 address", self.address))?;
        let number =
            |value: Option<i64>, what: &str| value.ok_or(format!("{what} is not a number"));
        let in_u32 = |value: Option<i64>, what: &str| -> Result<u32, String> {
            let value = number(value, what)?;
            u32::try_from(value).map_err(|_| format!("{what} {value} is out of range"))
        };
        let lease_type = match number(self.lease_type, "lease_type")? {
            1 => {
                return Err(
                    "a temporary address (IA_TA): this server does not hand them out".into(),
                )
            }
            code => LeaseType::from_code(code).ok_or(format!("unknown lease_type {code}"))?,
        };
        let valid_lifetime = in_u32(self.valid_lifetime, "valid_lifetime")?;
        if valid_lifetime == 0 {
            return Ok(None);
        }
        let expire = number(self.expire, "expire")?;
        let state_code = number(self.state, "state")?;
        let state =
            LeaseState::from_code(state_code).ok_or(format!("unknown state {state_code}"))?;
        let prefix_len = u8::try_from(number(self.prefix_len, "prefix_len")?)
            .map_err(|_| "prefix_len is out of range".to_owned())?;
        let duid = self
            .duid
            .clone()
            .filter(|duid| !duid.is_empty())
            .ok_or("the DUID is empty or not hex".to_owned())?;
        let lease = Lease {
            address,
            prefix_len,
            lease_type,
            duid,
            iaid: in_u32(self.iaid, "iaid")?,
            subnet_id: in_u32(self.subnet_id, "subnet_id")?,
            preferred_lifetime: in_u32(self.pref_lifetime, "pref_lifetime")?,
            valid_lifetime,
            cltt: expire - i64::from(valid_lifetime),
            expire,
            state,
            interface: String::new(),
            link_address: Ipv6Addr::UNSPECIFIED,
            relay_id: None,
            remote_id: None,
            relay_info: Vec::new(),
            hostname: self.hostname.clone(),
            line: None,
            next_hop: None,
            reconfigure: None,
            link_layer: None,
        };
        lease.validate().map_err(|err| match err {
            crate::store::StoreError::InvalidLease { reason, .. } => reason.to_owned(),
            other => other.to_string(),
        })?;
        Ok(Some(lease))
    }
}

/// Kea's DUID text: hex bytes with `:` separators.
fn parse_kea_duid(text: &str) -> Option<Vec<u8>> {
    crate::config::parse_hex(text).ok()
}

/// Kea escapes commas in text fields of its CSV files as `&#x2c`.
fn unescape(text: &str) -> String {
    text.replace("&#x2c", ",")
}
