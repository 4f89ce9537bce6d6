//! The forensic lease log (`[lease-log]`): who held which address or prefix when, and through
//! which line, kept for `retention` (ISPs' legal retention duties) and exported as JSON lines.
//!
//! Every lease event (grant, renewal, release, decline, expiry, operator clear) is appended, as
//! one JSON object per line, to `<state-dir>/lease-log/YYYY-MM-DD.jsonl` (the UTC day of the
//! event). It is an append-only file of its own rather than a table of the lease store because
//! of the write rate: the fast path answers up to ~500 000 renewals a second, each reported to
//! the controller through a ring; a row each would double the store's write load for records
//! nobody reads until a court order comes. So a renewal is logged as an *extended interval*:
//! at most once per `renewal-interval` per lease (default an hour), each record carrying the
//! new expiry. A lease is held from its `granted` record until its `released`, `expired`,
//! `declined` or `cleared` record (or, if none came, until the `expires` of its last record):
//! that is what [`held_at`] answers.
//!
//! The records are written after the change is durable in the store (they come from the lease
//! event channel) and the file is flushed and fsynced every second: a crash loses at most the
//! last second of records (the store's change history still has them). A writer that falls
//! behind the event channel writes a `gap` record saying how many events it missed. Files
//! older than `retention` are deleted hourly.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, watch};
use tracing::warn;

use crate::config::LeaseLogConfig;
use crate::lease_events::{LeaseEvent, LeaseEventKind};
use crate::line::LineIds;
use crate::store::{LeaseKey, LeaseType};

/// Directory of the log in the state directory.
pub const LEASE_LOG_DIR: &str = "lease-log";

/// One record of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseLogRecord {
    /// When, unix seconds.
    pub at: i64,
    /// When, RFC 3339 (UTC).
    pub time: String,
    /// granted, renewed, released, declined, expired, cleared; `gap` when events were missed.
    pub event: String,
    /// "na" or "pd".
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ia: String,
    /// The address, or prefix/length.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub lease: String,
    /// Client DUID, hex.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub duid: String,
    /// IAID.
    #[serde(default)]
    pub iaid: u32,
    /// Subnet id.
    #[serde(default)]
    pub subnet: u32,
    /// End of the valid lifetime after this event, unix seconds.
    #[serde(default)]
    pub expires: i64,
    /// The interface the request came in on.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interface: String,
    /// The innermost relay's link-address, when relayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_address: Option<Ipv6Addr>,
    /// Relay-ID (53) of the relay closest to the server, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay_id: Option<String>,
    /// Remote-ID (37) body, enterprise number first, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
    /// Interface-ID (18), hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_id: Option<String>,
    /// Subscriber-ID (38), hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_id: Option<String>,
    /// Client link-layer address (option 79 of a relay, or a direct client's frame; RFC
    /// 6939: hardware type, then the address), hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_layer: Option<String>,
    /// Events the writer missed (a `gap` record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<u64>,
}

impl LeaseLogRecord {
    /// The record of `event` at `at`.
    pub fn of(event: &LeaseEvent, at: i64) -> LeaseLogRecord {
        let lease = &event.lease;
        let lines = LineIds::of_lease(lease);
        LeaseLogRecord {
            at,
            time: rfc3339(at),
            event: event.kind.name().into(),
            ia: match lease.lease_type {
                LeaseType::Na => "na",
                LeaseType::Pd => "pd",
            }
            .into(),
            lease: crate::server::format_lease(lease),
            duid: hex::encode(&lease.duid),
            iaid: lease.iaid,
            subnet: lease.subnet_id,
            expires: lease.expire,
            interface: lease.interface.clone(),
            link_address: (!lease.link_address.is_unspecified()).then_some(lease.link_address),
            relay_id: lease.relay_id.as_deref().map(hex::encode),
            remote_id: lease
                .remote_id
                .as_deref()
                .or(lines.remote_id.as_deref())
                .map(hex::encode),
            interface_id: lines.interface_id.as_deref().map(hex::encode),
            subscriber_id: lines.subscriber_id.as_deref().map(hex::encode),
            link_layer: lines.client_linklayer_address.as_deref().map(hex::encode),
            missed: None,
        }
    }

    fn gap(missed: u64, at: i64) -> LeaseLogRecord {
        LeaseLogRecord {
            at,
            time: rfc3339(at),
            event: "gap".into(),
            ia: String::new(),
            lease: String::new(),
            duid: String::new(),
            iaid: 0,
            subnet: 0,
            expires: 0,
            interface: String::new(),
            link_address: None,
            relay_id: None,
            remote_id: None,
            interface_id: None,
            subscriber_id: None,
            link_layer: None,
            missed: Some(missed),
        }
    }

    /// True if the record's lease is `address`, or a delegated prefix containing it.
    pub fn covers(&self, address: Ipv6Addr) -> bool {
        match self.lease.split_once('/') {
            None => self.lease.parse::<Ipv6Addr>().ok() == Some(address),
            Some((prefix, len)) => match (prefix.parse::<Ipv6Addr>(), len.parse::<u8>()) {
                (Ok(prefix), Ok(len)) => crate::store::prefix_contains(prefix, len, address),
                _ => false,
            },
        }
    }

    fn ends_holding(&self) -> bool {
        matches!(
            self.event.as_str(),
            "released" | "expired" | "declined" | "cleared"
        )
    }
}

/// Which renewals are logged: a lease's renewal is written when its last record is at least
/// `interval` old or was for another client; everything else always.
struct RenewalFilter {
    interval: i64,
    last: HashMap<LeaseKey, (Vec<u8>, i64)>,
}

impl RenewalFilter {
    fn keep(&mut self, event: &LeaseEvent, now: i64) -> bool {
        let key = event.lease.key();
        match event.kind {
            LeaseEventKind::Renewed => match self.last.get_mut(&key) {
                Some((duid, at)) if *duid == event.lease.duid && now - *at < self.interval => false,
                _ => {
                    self.last.insert(key, (event.lease.duid.clone(), now));
                    true
                }
            },
            LeaseEventKind::Granted => {
                self.last.insert(key, (event.lease.duid.clone(), now));
                true
            }
            _ => {
                self.last.remove(&key);
                true
            }
        }
    }
}

/// The file of day `day` (days since 1970-01-01) in `dir`.
fn day_file(dir: &Path, day: i64) -> PathBuf {
    let (y, m, d) = civil_from_days(day);
    dir.join(format!("{y:04}-{m:02}-{d:02}.jsonl"))
}

/// Appends records to the day's file; rotates at midnight UTC.
struct Appender {
    dir: PathBuf,
    day: i64,
    file: Option<std::io::BufWriter<std::fs::File>>,
}

impl Appender {
    fn write(&mut self, record: &LeaseLogRecord) -> std::io::Result<()> {
        let day = record.at.div_euclid(86_400);
        if self.file.is_none() || day != self.day {
            self.sync()?;
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(day_file(&self.dir, day))?;
            self.file = Some(std::io::BufWriter::with_capacity(1 << 16, file));
            self.day = day;
        }
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        self.file.as_mut().expect("opened above").write_all(&line)
    }

    fn sync(&mut self) -> std::io::Result<()> {
        if let Some(file) = &mut self.file {
            file.flush()?;
            file.get_ref().sync_data()?;
        }
        Ok(())
    }
}

/// Deletes the day files that ended more than `retention` seconds before `now`.
fn prune(dir: &Path, retention: u64, now: i64) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(day) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".jsonl"))
            .and_then(parse_day)
        else {
            continue;
        };
        if (day + 1) * 86_400 + retention as i64 <= now {
            if let Err(err) = std::fs::remove_file(entry.path()) {
                warn!(file = %entry.path().display(), error = %err, "lease log: removing an expired file failed");
            }
        }
    }
}

/// Writes the lease events of `events` to the log under `state_dir` until `shutdown`.
pub async fn run(
    state_dir: PathBuf,
    config: LeaseLogConfig,
    mut events: broadcast::Receiver<LeaseEvent>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let dir = state_dir.join(LEASE_LOG_DIR);
    std::fs::create_dir_all(&dir)?;
    prune(&dir, config.retention, crate::clock::unix_now());
    let mut appender = Appender {
        dir: dir.clone(),
        day: 0,
        file: None,
    };
    let mut filter = RenewalFilter {
        interval: config.renewal_interval as i64,
        last: HashMap::new(),
    };
    let mut flush = tokio::time::interval(Duration::from_secs(1));
    let mut prune_tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            event = events.recv() => {
                let now = crate::clock::unix_now();
                match event {
                    Ok(event) => {
                        if filter.keep(&event, now) {
                            appender.write(&LeaseLogRecord::of(&event, now))?;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        warn!(missed, "lease log fell behind the lease events; a gap is recorded");
                        metrics::counter!("dhcp_lease_log_missed_total").increment(missed);
                        appender.write(&LeaseLogRecord::gap(missed, now))?;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
            _ = flush.tick() => appender.sync()?,
            _ = prune_tick.tick() => prune(&dir, config.retention, crate::clock::unix_now()),
            _ = shutdown.changed() => break,
        }
    }
    // What is already in the channel is written before the end.
    while let Ok(event) = events.try_recv() {
        let now = crate::clock::unix_now();
        if filter.keep(&event, now) {
            appender.write(&LeaseLogRecord::of(&event, now))?;
        }
    }
    appender.sync()
}

/// What `lease-log export` selects.
#[derive(Debug, Clone, Default)]
pub struct ExportFilter {
    /// Records at or after this unix time.
    pub since: Option<i64>,
    /// Records at or before this unix time.
    pub until: Option<i64>,
    /// Records of this address (or of delegated prefixes containing it).
    pub address: Option<Ipv6Addr>,
    /// Records of this client (DUID bytes).
    pub duid: Option<Vec<u8>>,
}

impl ExportFilter {
    fn matches(&self, record: &LeaseLogRecord) -> bool {
        self.since.is_none_or(|since| record.at >= since)
            && self.until.is_none_or(|until| record.at <= until)
            && self
                .address
                .is_none_or(|address| record.event == "gap" || record.covers(address))
            && self
                .duid
                .as_ref()
                .is_none_or(|duid| record.event == "gap" || record.duid == hex::encode(duid))
    }
}

/// Calls `visit` with every record of the log under `state_dir` that `filter` selects, oldest
/// first (only the day files the time range touches are read).
pub fn export(
    state_dir: &Path,
    filter: &ExportFilter,
    visit: &mut dyn FnMut(&LeaseLogRecord) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = state_dir.join(LEASE_LOG_DIR);
    let mut days: Vec<i64> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()
                    .and_then(|n| n.strip_suffix(".jsonl"))
                    .and_then(parse_day)
            })
            .collect(),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(err) => return Err(err),
    };
    days.sort_unstable();
    for day in days {
        if filter
            .since
            .is_some_and(|since| (day + 1) * 86_400 <= since)
            || filter.until.is_some_and(|until| day * 86_400 > until)
        {
            continue;
        }
        let file = std::fs::File::open(day_file(&dir, day))?;
        for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            // A torn last line (a crash mid-write) is skipped, not fatal.
            let record: LeaseLogRecord = match serde_json::from_str(&line) {
                Ok(record) => record,
                Err(err) => {
                    warn!(file = %day_file(&dir, day).display(), line = number + 1, error = %err, "lease log: unreadable record skipped");
                    continue;
                }
            };
            if filter.matches(&record) {
                visit(&record)?;
            }
        }
    }
    Ok(())
}

/// One client's holding of a lease: from its grant (or first record) to its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    /// The address or prefix.
    pub lease: String,
    /// Client DUID, hex.
    pub duid: String,
    /// IAID.
    pub iaid: u32,
    /// First record of the holding, unix seconds.
    pub from: i64,
    /// Its end: the release/expiry/clear record, else the last record's expiry.
    pub until: i64,
    /// The record that opened it (relay identity included).
    pub first: LeaseLogRecord,
}

/// Who held `address` (or a prefix containing it) at `at`, from the log under `state_dir`
/// (records up to `at` read, from `at - lookback` on).
pub fn held_at(
    state_dir: &Path,
    address: Ipv6Addr,
    at: i64,
    lookback: i64,
) -> std::io::Result<Vec<Holding>> {
    let filter = ExportFilter {
        since: Some(at.saturating_sub(lookback)),
        until: Some(at),
        address: Some(address),
        duid: None,
    };
    let mut open: HashMap<(String, String), Holding> = HashMap::new();
    export(state_dir, &filter, &mut |record| {
        if record.event == "gap" {
            return Ok(());
        }
        let id = (record.lease.clone(), record.duid.clone());
        if record.ends_holding() {
            if let Some(holding) = open.get_mut(&id) {
                holding.until = holding.until.min(record.at);
                // Ended before `at`: not a holder then.
                if record.at < at {
                    open.remove(&id);
                }
            }
            return Ok(());
        }
        let holding = open.entry(id).or_insert_with(|| Holding {
            lease: record.lease.clone(),
            duid: record.duid.clone(),
            iaid: record.iaid,
            from: record.at,
            until: record.expires,
            first: record.clone(),
        });
        holding.until = holding.until.max(record.expires);
        Ok(())
    })?;
    let mut held: Vec<Holding> = open.into_values().filter(|h| h.until >= at).collect();
    held.sort_by_key(|h| h.from);
    Ok(held)
}

/// Parses a time for `--since`/`--until`/`--at`: unix seconds, or RFC 3339 in UTC
/// (`2026-12-01T16:00:00Z`, or a date alone: its midnight).
pub fn parse_time(text: &str) -> Result<i64, String> {
    let bad =
        || format!("`{text}` is not a time (unix seconds, or 2026-12-01T16:00:00Z, or 2026-12-01)");
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    let (date, clock) = match text.split_once(['T', ' ']) {
        Some((date, clock)) => (date, Some(clock)),
        None => (text, None),
    };
    let day = parse_day(date).ok_or_else(bad)?;
    let seconds = match clock {
        None => 0,
        Some(clock) => {
            let clock = clock
                .strip_suffix('Z')
                .or_else(|| clock.strip_suffix("+00:00"))
                .ok_or_else(bad)?;
            let clock = clock.split('.').next().unwrap_or(clock);
            let parts: Vec<i64> = clock
                .split(':')
                .map(|p| p.parse::<i64>().map_err(|_| bad()))
                .collect::<Result<_, _>>()?;
            match parts.as_slice() {
                [h, m, s] if *h < 24 && *m < 60 && *s < 61 => h * 3600 + m * 60 + s,
                [h, m] if *h < 24 && *m < 60 => h * 3600 + m * 60,
                _ => return Err(bad()),
            }
        }
    };
    Ok(day * 86_400 + seconds)
}

/// `YYYY-MM-DD` as days since 1970-01-01.
fn parse_day(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Unix seconds as RFC 3339 UTC, `2026-12-01T16:00:00Z`.
pub fn rfc3339(at: i64) -> String {
    let (y, m, d) = civil_from_days(at.div_euclid(86_400));
    let s = at.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

// Howard Hinnant's civil-calendar algorithms (proleptic Gregorian), exact for every i64 day a
// lease can have.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Lease;

    /// Times round-trip between unix seconds and RFC 3339, across leap years and eras.
    #[test]
    fn times_round_trip_through_rfc3339() {
        for at in [0, 951_782_400, 1_796_140_800, 4_102_444_799, 1_764_607_200] {
            assert_eq!(parse_time(&rfc3339(at)).unwrap(), at, "{}", rfc3339(at));
        }
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(parse_time("2000-02-29").unwrap(), 951_782_400);
        assert_eq!(parse_time("1764607200").unwrap(), 1_764_607_200);
        assert!(parse_time("2026-13-01").is_err());
        assert!(parse_time("2026-12-01T16:00:00+02:00").is_err());
    }

    /// Renewals of one lease are logged once per interval; a grant, a release, or another
    /// client's renewal always is.
    #[test]
    fn renewals_are_logged_as_extended_intervals() {
        let lease = Lease {
            preferred_lifetime: 60,
            valid_lifetime: 120,
            cltt: 1000,
            expire: 1120,
            state: crate::store::LeaseState::Assigned,
            ..Lease::bare(
                LeaseType::Na,
                "2001:db8::5".parse().unwrap(),
                128,
                vec![0, 3, 0, 1, 1, 2, 3, 4, 5, 6],
                1,
                1,
            )
        };
        let event = |kind| LeaseEvent {
            kind,
            lease: lease.clone(),
        };
        let mut filter = RenewalFilter {
            interval: 3600,
            last: HashMap::new(),
        };
        assert!(filter.keep(&event(LeaseEventKind::Granted), 1000));
        assert!(!filter.keep(&event(LeaseEventKind::Renewed), 1010));
        assert!(!filter.keep(&event(LeaseEventKind::Renewed), 4599));
        assert!(filter.keep(&event(LeaseEventKind::Renewed), 4600));
        let mut other = event(LeaseEventKind::Renewed);
        other.lease.duid = vec![0, 3, 0, 1, 9, 9, 9, 9, 9, 9];
        assert!(filter.keep(&other, 4601));
        assert!(filter.keep(&event(LeaseEventKind::Released), 4602));
        assert!(filter.keep(&event(LeaseEventKind::Renewed), 4603));
    }

    /// Who held an address at a time: the holding whose grant came before and whose end
    /// (release, or last expiry) came after; a prefix covers the addresses inside it.
    #[test]
    fn held_at_answers_who_held_an_address_when() {
        let dir = std::env::temp_dir().join(format!("dhcp-user-lease-log-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join(LEASE_LOG_DIR)).unwrap();
        let mut appender = Appender {
            dir: dir.join(LEASE_LOG_DIR),
            day: 0,
            file: None,
        };
        let mut record = |event: &str, lease: &str, duid: &str, at: i64, expires: i64| {
            let mut r = LeaseLogRecord::gap(0, at);
            r.event = event.into();
            r.lease = lease.into();
            r.duid = duid.into();
            r.expires = expires;
            r.missed = None;
            appender.write(&r).unwrap();
        };
        let day = 86_400 * 20_000;
        record("granted", "2001:db8::5", "aa", day + 100, day + 200);
        record("renewed", "2001:db8::5", "aa", day + 190, day + 290);
        record("released", "2001:db8::5", "aa", day + 250, day + 290);
        record("granted", "2001:db8::5", "bb", day + 300, day + 400);
        record(
            "granted",
            "2001:db8:9::/56",
            "cc",
            day + 86_400 + 10,
            day + 86_400 + 99,
        );
        appender.sync().unwrap();
        let who = |address: &str, at: i64| -> Vec<String> {
            held_at(&dir, address.parse().unwrap(), at, 86_400 * 3)
                .unwrap()
                .into_iter()
                .map(|h| h.duid)
                .collect()
        };
        assert_eq!(who("2001:db8::5", day + 150), ["aa"]);
        assert_eq!(who("2001:db8::5", day + 240), ["aa"]);
        assert!(who("2001:db8::5", day + 260).is_empty());
        assert_eq!(who("2001:db8::5", day + 350), ["bb"]);
        assert!(who("2001:db8::5", day + 401).is_empty());
        assert_eq!(who("2001:db8:9:0:1::7", day + 86_400 + 50), ["cc"]);
        let mut all = Vec::new();
        export(
            &dir,
            &ExportFilter {
                duid: Some(vec![0xaa]),
                ..ExportFilter::default()
            },
            &mut |r| {
                all.push(r.event.clone());
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(all, ["granted", "renewed", "released"]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Day files past the retention are deleted; the rest stay.
    #[test]
    fn files_past_the_retention_are_pruned() {
        let dir =
            std::env::temp_dir().join(format!("dhcp-user-lease-prune-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let now = 86_400 * 20_010 + 5;
        for day in [20_000, 20_008, 20_010] {
            std::fs::write(day_file(&dir, day), b"").unwrap();
        }
        prune(&dir, 86_400 * 2, now);
        assert!(!day_file(&dir, 20_000).exists());
        assert!(day_file(&dir, 20_008).exists());
        assert!(day_file(&dir, 20_010).exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
