//! The soak (`cargo xtask soak --minutes N`, issue 18 part 5): our server with its fast path in
//! the lab, under mixed load for N minutes, sampled every `SAMPLE_EVERY`; afterwards a table and
//! a verdict: after the warm-up, the controller's RSS, its open file descriptors, the fast
//! path's binding count and the store's size must stay flat (growth under the bounds below).
//!
//! The load, all of it from the client namespace:
//! - the churn driver (`churn`): a fixed population of clients binding, renewing, releasing and
//!   declining in a seeded random order, every reply checked;
//! - renewals answered in XDP: the load generator's primed clients renewing at a steady rate;
//! - leasequery: an address query over UDP after every sample, a bulk query (TCP) every minute.
//!
//! The server runs with short lifetimes, a short grace period and a short change history, so
//! that what it keeps reaches its steady state within the warm-up: what stays after that is
//! what the soak looks for.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::{
    churn::{Churn, ChurnPlan, ChurnReport},
    e2e::{LabNet, OurServer},
    loadgen,
};

/// How often the server is sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// The warm-up: samples before this are shown but not judged (at least this long, and at
/// least the first third of the run). The store needs the longest: the change history grows
/// for `history-retention` (120 s) plus one prune interval (60 s) before pruning keeps pace,
/// and the first big prune leaves SQLite's write-ahead log at its high-water mark.
pub const WARM_UP: Duration = Duration::from_secs(240);
/// Longest soak accepted (a day).
pub const MAX_MINUTES: f64 = 24.0 * 60.0;

/// Flat means: after the warm-up, the second half's peak above the first half's by no more
/// than this (bindings: no more than there are clients).
pub const RSS_GROWTH_FRACTION: f64 = 0.10;
pub const RSS_GROWTH_SLACK: u64 = 4 << 20;
pub const FD_GROWTH: u64 = 4;
pub const STORE_GROWTH_FRACTION: f64 = 0.25;
pub const STORE_GROWTH_SLACK: u64 = 1 << 20;

/// Clients of the churn, and primed clients renewing through the fast path.
const CHURN_CLIENTS: u32 = 400;
const RENEW_CLIENTS: u32 = 2000;
/// Renewals per second offered to the fast path, in steps of a few seconds between samples.
const RENEW_RATE: f64 = 2000.0;
const RENEW_STEP: Duration = Duration::from_secs(5);

/// The soak's server configuration: the lab's subnet with lifetimes of a minute, a grace
/// period of a minute and two minutes of change history.
fn soak_config(state_dir: &Path) -> String {
    format!(
        "state-dir = \"{dir}\"\ninterfaces = [\"lab-srv\"]\ngrace-period = 60\n\
         history-retention = 120\n\
         [leasequery]\nallow = [\"2001:db8:1::/64\"]\n\
         [[subnet]]\nid = 1\nprefix = \"2001:db8:1::/64\"\n\
         pools = [{{ low = \"2001:db8:1::1000\", high = \"2001:db8:1::ffff\" }}]\n\
         pd-pools = [{{ prefix = \"2001:db8:8000::/40\", delegated-length = 56 }}]\n\
         preferred-lifetime = 40\nvalid-lifetime = 60\nrenew-timer = 20\nrebind-timer = 32\n\
         rapid-commit = true\ndns-servers = [\"2001:db8:1::53\"]\n",
        dir = state_dir.display()
    )
}

/// One sample of the server.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub seconds: f64,
    pub rss_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub bindings: Option<u64>,
    pub store_bytes: Option<u64>,
    /// Renewals the fast path answered so far.
    pub xdp_renewals: Option<u64>,
}

/// One metric's judgement.
#[derive(Debug, Clone, Serialize)]
pub struct Judged {
    pub metric: &'static str,
    pub baseline: Option<u64>,
    pub peak_after_warm_up: Option<u64>,
    pub bound: Option<u64>,
    pub flat: bool,
}

/// The whole soak.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub minutes: f64,
    pub seed: u64,
    pub warm_up_seconds: f64,
    pub samples: Vec<Sample>,
    pub verdict: Vec<Judged>,
    pub flat: bool,
    pub churn_counts: std::collections::BTreeMap<String, u64>,
    pub churn_invalid: std::collections::BTreeMap<String, u64>,
    pub renew_steps: u64,
    pub renew_sent: u64,
    pub renew_answered: u64,
    pub renew_invalid: u64,
    /// Wrong replies to the fast path's renewals, by reason.
    pub renew_invalid_reasons: std::collections::BTreeMap<String, u64>,
    pub leasequeries: u64,
    pub leasequery_failures: u64,
}

/// Runs the soak for `minutes`, writes `out` (JSON) and returns the report.
pub fn run(minutes: f64, seed: u64, work_dir: &Path, out: &Path) -> Result<SoakReport> {
    if !(minutes > 0.0 && minutes <= MAX_MINUTES) {
        bail!("--minutes must be above 0 and at most {MAX_MINUTES}");
    }
    let total = Duration::from_secs_f64(minutes * 60.0);
    let warm_up = WARM_UP.max(total / 3);
    let net = LabNet::create()?;
    std::fs::create_dir_all(work_dir)?;
    let (server, _) = OurServer::start_prepared(
        &net,
        work_dir,
        "soak",
        true,
        65536,
        Duration::from_secs(30),
        |dir| {
            std::fs::write(dir.join("server.toml"), soak_config(dir))
                .context("writing the soak's configuration")
        },
    )?;
    eprintln!(
        "soak: {minutes} min, seed {seed}, sampled every {} s, warm-up {} s; server log {}",
        SAMPLE_EVERY.as_secs(),
        warm_up.as_secs(),
        server.state_dir.join("server.log").display()
    );

    // The fast path's clients, bound once, renewing all along.
    let renew_sockets = net.generator_sockets()?;
    let mut renewers = loadgen::new_clients(RENEW_CLIENTS, 1, 2);
    let (server_duid, prime) = loadgen::prime(
        &renew_sockets[0],
        &mut renewers,
        true,
        64,
        Duration::from_secs(60),
    )?;
    let renewers: Vec<_> = renewers.into_iter().filter(|c| c.na.is_some()).collect();
    eprintln!(
        "soak: {} of {RENEW_CLIENTS} renewing clients bound",
        prime.bound
    );
    if renewers.is_empty() {
        bail!("no renewing client got bound:\n{}", server.log_tail());
    }

    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let socket = net.client_socket()?;
        let stop = stop.clone();
        let plan = ChurnPlan {
            clients: CHURN_CLIENTS,
            seed,
            servers: 1,
            pace: Duration::from_millis(2),
            duration: total + Duration::from_secs(60),
            ..ChurnPlan::default()
        };
        std::thread::spawn(move || Churn::new(&socket, plan).run(&stop))
    };

    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut report_counts = (0u64, 0u64, 0u64, 0u64);
    let mut renew_invalid_reasons = std::collections::BTreeMap::new();
    let (mut leasequeries, mut leasequery_failures) = (0u64, 0u64);
    let mut round = 0u32;
    let mut next_bulk = Instant::now() + Duration::from_secs(60);
    loop {
        let sample = sample_server(&server, started.elapsed());
        eprintln!("soak: {}", sample_line(&sample));
        samples.push(sample);
        if started.elapsed() >= total {
            break;
        }
        let slot_end = Instant::now() + SAMPLE_EVERY;
        // Renewals in XDP for part of the slot.
        round += 1;
        let step = loadgen::renew_step(
            &renew_sockets,
            &renewers,
            &server_duid,
            loadgen::StepPlan {
                rate: RENEW_RATE,
                duration: RENEW_STEP.min(total.saturating_sub(started.elapsed())),
                drain: Duration::from_millis(300),
                round,
            },
        )?;
        report_counts.0 += 1;
        report_counts.1 += step.sent;
        report_counts.2 += step.valid_replies;
        report_counts.3 += step.invalid_replies;
        for (reason, count) in step.invalid_reasons {
            *renew_invalid_reasons.entry(reason).or_insert(0) += count;
        }
        // A leasequery by address, and now and then a bulk one.
        let address = renewers[round as usize % renewers.len()]
            .na
            .expect("bound")
            .to_string();
        leasequeries += 1;
        if !leasequery(&net, &server, &["address", &address]) {
            leasequery_failures += 1;
        }
        if Instant::now() >= next_bulk {
            next_bulk += Duration::from_secs(60);
            leasequeries += 1;
            if !leasequery(&net, &server, &["link", "::"]) {
                leasequery_failures += 1;
            }
        }
        std::thread::sleep(slot_end.saturating_duration_since(Instant::now()));
    }
    stop.store(true, Ordering::SeqCst);
    let churned: ChurnReport = churn
        .join()
        .map_err(|_| anyhow::anyhow!("the churn thread panicked"))?;

    let warm: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.seconds >= warm_up.as_secs_f64())
        .collect();
    let verdict = judge(&warm);
    let flat = verdict.iter().all(|j| j.flat);
    let report = SoakReport {
        minutes,
        seed,
        warm_up_seconds: warm_up.as_secs_f64(),
        samples,
        verdict,
        flat,
        churn_counts: churned.counts,
        churn_invalid: churned.invalid,
        renew_steps: report_counts.0,
        renew_sent: report_counts.1,
        renew_answered: report_counts.2,
        renew_invalid: report_counts.3,
        renew_invalid_reasons,
        leasequeries,
        leasequery_failures,
    };
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(out, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", out.display()))?;
    drop(server);
    Ok(report)
}

/// Runs `dhcp-user leasequery --server <ours> ARGS` in the client namespace; true on success.
fn leasequery(net: &LabNet, server: &OurServer, args: &[&str]) -> bool {
    let binary = std::env::current_exe()
        .map(|exe| exe.with_file_name("dhcp-user"))
        .unwrap_or_else(|_| PathBuf::from("dhcp-user"));
    let out = net
        .client
        .command(&binary)
        .args(["leasequery", "--server", "2001:db8:1::1", "--timeout", "5"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output();
    match out {
        Ok(out) if out.status.success() => true,
        Ok(out) => {
            tracing::warn!(
                stderr = %String::from_utf8_lossy(&out.stderr),
                log = %server.log_tail(),
                "leasequery {args:?} failed"
            );
            false
        }
        Err(err) => {
            tracing::warn!(error = %err, "running dhcp-user leasequery");
            false
        }
    }
}

fn sample_server(server: &OurServer, at: Duration) -> Sample {
    let open_fds = server.pid().and_then(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .ok()
            .map(|d| d.count() as u64)
    });
    let bindings = dhcp_user::fastpath::pinned_binding_count(&server.pin_root)
        .ok()
        .map(|n| n as u64);
    let store_bytes = ["leases.db", "leases.db-wal", "leases.db-shm"]
        .iter()
        .map(|f| {
            std::fs::metadata(server.state_dir.join(f))
                .map(|m| m.len())
                .ok()
        })
        .try_fold(0u64, |sum, len| Some(sum + len.unwrap_or(0)));
    Sample {
        seconds: at.as_secs_f64(),
        rss_bytes: server.rss_bytes(),
        open_fds,
        bindings,
        store_bytes,
        xdp_renewals: server.xdp_renewals(),
    }
}

/// Judges the samples after the warm-up: the peak of their second half against the peak of
/// their first half (a spike, such as SQLite's write-ahead log after a big prune, shows in
/// both; a leak makes the second higher), within the bounds above; bindings against the
/// number of clients (one binding each at most: more is a leak).
fn judge(warm: &[&Sample]) -> Vec<Judged> {
    let split = warm.len() / 2;
    let (first, second) = (&warm[..split.max(1).min(warm.len())], &warm[split..]);
    let one = |metric: &'static str,
               get: fn(&Sample) -> Option<u64>,
               bound: &dyn Fn(u64) -> u64|
     -> Judged {
        let baseline = first.iter().filter_map(|s| get(s)).max();
        let peak = second.iter().filter_map(|s| get(s)).max();
        let bound = baseline.map(bound);
        let flat = match (peak, bound) {
            (Some(peak), Some(bound)) => peak <= bound,
            // Nothing measured after the warm-up: no verdict but "not flat".
            _ => false,
        };
        Judged {
            metric,
            baseline,
            peak_after_warm_up: peak,
            bound,
            flat,
        }
    };
    let fraction = |base: u64, f: f64, slack: u64| base + ((base as f64 * f) as u64).max(slack);
    vec![
        one("rss_bytes", |s| s.rss_bytes, &|b| {
            fraction(b, RSS_GROWTH_FRACTION, RSS_GROWTH_SLACK)
        }),
        one("open_fds", |s| s.open_fds, &|b| b + FD_GROWTH),
        one("bindings", |s| s.bindings, &|_| {
            u64::from(CHURN_CLIENTS + RENEW_CLIENTS)
        }),
        one("store_bytes", |s| s.store_bytes, &|b| {
            fraction(b, STORE_GROWTH_FRACTION, STORE_GROWTH_SLACK)
        }),
    ]
}

fn opt(v: Option<u64>) -> String {
    v.map_or("-".to_string(), |v| v.to_string())
}

fn mib(v: Option<u64>) -> String {
    v.map_or("-".to_string(), |v| {
        format!("{:.1}", v as f64 / f64::from(1 << 20))
    })
}

fn sample_line(s: &Sample) -> String {
    format!(
        "{:>6.0} s  rss {:>6} MiB  fds {:>4}  bindings {:>6}  store {:>6} MiB  xdp renewals {}",
        s.seconds,
        mib(s.rss_bytes),
        opt(s.open_fds),
        opt(s.bindings),
        mib(s.store_bytes),
        opt(s.xdp_renewals)
    )
}

/// The table and the verdict, as printed.
pub fn table(report: &SoakReport) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:>8}  {:>9}  {:>5}  {:>8}  {:>9}  {:>12}\n",
        "seconds", "rss MiB", "fds", "bindings", "store MiB", "xdp renewals"
    ));
    for s in &report.samples {
        let warm = if s.seconds >= report.warm_up_seconds {
            ""
        } else {
            " (warm-up)"
        };
        out.push_str(&format!(
            "{:>8.0}  {:>9}  {:>5}  {:>8}  {:>9}  {:>12}{warm}\n",
            s.seconds,
            mib(s.rss_bytes),
            opt(s.open_fds),
            opt(s.bindings),
            mib(s.store_bytes),
            opt(s.xdp_renewals)
        ));
    }
    out.push('\n');
    for j in &report.verdict {
        out.push_str(&format!(
            "{:<12} first half peak {:>12}  second half peak {:>12}  bound {:>12}  {}\n",
            j.metric,
            opt(j.baseline),
            opt(j.peak_after_warm_up),
            opt(j.bound),
            if j.flat { "flat" } else { "GROWS" }
        ));
    }
    out.push_str(&format!(
        "load: churn {:?}; {} XDP renewals answered of {} sent ({} wrong); {} leasequeries ({} failed)\n",
        report.churn_counts,
        report.renew_answered,
        report.renew_sent,
        report.renew_invalid,
        report.leasequeries,
        report.leasequery_failures
    ));
    if !report.renew_invalid_reasons.is_empty() {
        out.push_str(&format!(
            "wrong replies to the fast path's renewals: {:?}\n",
            report.renew_invalid_reasons
        ));
    }
    if !report.churn_invalid.is_empty() {
        out.push_str(&format!(
            "wrong replies to the churn: {:?}\n",
            report.churn_invalid
        ));
    }
    out.push_str(&format!(
        "verdict: {}\n",
        if report.flat && report.churn_invalid.is_empty() && report.renew_invalid == 0 {
            "flat after warm-up"
        } else if report.flat {
            "flat, but the server gave wrong replies"
        } else {
            "NOT flat after warm-up"
        }
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seconds: f64, rss: u64, fds: u64, bindings: u64, store: u64) -> Sample {
        Sample {
            seconds,
            rss_bytes: Some(rss),
            open_fds: Some(fds),
            bindings: Some(bindings),
            store_bytes: Some(store),
            xdp_renewals: None,
        }
    }

    #[test]
    fn samples_within_the_bounds_are_flat() {
        let a = sample(240.0, 40 << 20, 30, 2000, 8 << 20);
        let b = sample(250.0, 42 << 20, 31, 2100, 9 << 20);
        assert!(judge(&[&a, &b]).iter().all(|j| j.flat));
    }

    #[test]
    fn a_leak_of_file_descriptors_is_not_flat() {
        let a = sample(240.0, 40 << 20, 30, 2000, 8 << 20);
        let b = sample(250.0, 40 << 20, 40, 2000, 8 << 20);
        let verdict = judge(&[&a, &b]);
        let fds = verdict.iter().find(|j| j.metric == "open_fds").unwrap();
        assert!(!fds.flat);
        assert!(verdict
            .iter()
            .filter(|j| j.metric != "open_fds")
            .all(|j| j.flat));
    }

    #[test]
    fn a_spike_in_both_halves_is_flat_and_steady_growth_is_not() {
        let spiky: Vec<Sample> = [40u64, 55, 42, 41, 56, 43]
            .iter()
            .enumerate()
            .map(|(i, mib)| sample(240.0 + 10.0 * i as f64, 40 << 20, 30, 2000, mib << 20))
            .collect();
        let refs: Vec<&Sample> = spiky.iter().collect();
        assert!(judge(&refs).iter().all(|j| j.flat));
        let growing: Vec<Sample> = (0..6u64)
            .map(|i| {
                sample(
                    240.0 + 10.0 * i as f64,
                    40 << 20,
                    30,
                    2000,
                    (40 + 8 * i) << 20,
                )
            })
            .collect();
        let refs: Vec<&Sample> = growing.iter().collect();
        let store = judge(&refs)
            .into_iter()
            .find(|j| j.metric == "store_bytes")
            .unwrap();
        assert!(!store.flat, "{store:?}");
    }

    #[test]
    fn more_bindings_than_clients_is_a_leak() {
        let a = sample(240.0, 40 << 20, 30, 2000, 8 << 20);
        let b = sample(250.0, 40 << 20, 30, 2401, 8 << 20);
        let verdict = judge(&[&a, &b]);
        assert!(
            !verdict
                .iter()
                .find(|j| j.metric == "bindings")
                .unwrap()
                .flat
        );
    }

    #[test]
    fn no_sample_after_the_warm_up_is_no_verdict_of_flat() {
        assert!(judge(&[]).iter().all(|j| !j.flat));
    }
}
