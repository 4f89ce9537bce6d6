//! The outage avalanche: after a power cut every CPE of an access area comes back at once. On
//! each server (ours, and Kea in both modes), in the lab: N clients bound (4-way), then all N
//! Solicit again at once with the DUIDs they had, as a window of clients kept full by the
//! generator (one thread per generator socket, each with its own share of the clients and its
//! own window), each retransmitting like an RFC 8415 client (`loadgen::Retransmit::AVALANCHE`);
//! the time until all N are bound again, every answer checked and each new binding compared
//! with the old one; the same with Rapid Commit; then the same for N clients the server has
//! never seen (4-way, then Rapid Commit, N more each).

use std::{collections::BTreeMap, time::Duration};

use anyhow::Result;
use serde_json::{json, Value};

use crate::{
    e2e::{Kea, KeaMode, LabNet, OurServer, NA_IAID, PD_IAID},
    loadgen::{self, BindPlan, BindResult, Client, ClientSocket, Retransmit},
    Options, Report,
};

/// Clients in an exchange at once, all generator threads together: each thread starts its next
/// client as soon as one of its own is bound, so the servers see a steady flood of Solicits
/// (and Requests) this deep. The same for every server, and the same depth as when the
/// generator had one thread.
pub const WINDOW: usize = 1024;

/// Each generator thread's window: `WINDOW` shared out.
fn window_per_thread(threads: usize) -> usize {
    WINDOW.div_ceil(threads.max(1))
}

/// The four avalanches, in the order they run on each server.
const RUNS: [(&str, bool, bool); 4] = [
    ("known", true, false),
    ("known_rapid_commit", true, true),
    ("new", false, false),
    ("new_rapid_commit", false, true),
];

/// DUID numbers of the new clients of run `k` (0 for the first new run): above every number
/// the other runs use.
fn new_clients_first(k: u32) -> u32 {
    1_000_000 * (k + 1)
}

/// Clients per avalanche.
pub fn clients(opts: &Options) -> u32 {
    if opts.quick {
        10_000
    } else {
        100_000
    }
}

/// How often the clients a priming run left unbound are primed again.
const PRIME_RETRIES: usize = 3;

/// What one server did: the priming and each avalanche.
#[derive(Debug, Clone, serde::Serialize)]
struct ServerRuns {
    server: String,
    prime: BindResult,
    runs: Vec<(String, BindResult)>,
    /// Ours only: the fast path's counters that moved during each run (where the answers came
    /// from: `tx_*` in the kernel, `pass_*` to the controller).
    xdp_counters: Vec<(String, BTreeMap<String, u64>)>,
}

impl ServerRuns {
    fn run(&self, name: &str) -> Option<&BindResult> {
        self.runs.iter().find(|(n, _)| n == name).map(|(_, r)| r)
    }
}

/// Primes `n` clients on whatever answers on the lab link, then runs the four avalanches.
fn avalanches(
    sockets: &[ClientSocket],
    report: &Report,
    label: &str,
    n: u32,
    deadline: Duration,
    counters: Option<&dyn Fn() -> Result<BTreeMap<String, u64>>>,
) -> Result<ServerRuns> {
    let drain = || {
        for socket in sockets {
            socket.drain(Duration::from_millis(200), Duration::from_secs(2));
        }
    };
    let plan = |rapid_commit| BindPlan {
        with_pd: true,
        rapid_commit,
        window: window_per_thread(sockets.len()),
        timers: Retransmit::AVALANCHE,
        deadline,
    };
    report.progress("avalanche", &format!("{label}: priming {n} clients"));
    let mut known = loadgen::new_clients(n, NA_IAID, PD_IAID);
    let (_, mut prime) = loadgen::bind_all_threads(sockets, &mut known, &plan(false))?;
    // Priming is set-up, not a figure: a server that lost a few exchanges under the priming
    // load (Kea single-threaded does, at 100 000) gets its unbound clients again.
    for _ in 0..PRIME_RETRIES {
        let unbound: Vec<usize> = (0..known.len())
            .filter(|&i| known[i].na.is_none() || known[i].pd.is_none())
            .collect();
        if unbound.is_empty() {
            break;
        }
        report.progress(
            "avalanche",
            &format!("{label}: priming {} clients again", unbound.len()),
        );
        drain();
        let mut again: Vec<Client> = unbound.iter().map(|&i| known[i].clone()).collect();
        let (_, retry) = loadgen::bind_all_threads(sockets, &mut again, &plan(false))?;
        for (&i, client) in unbound.iter().zip(again) {
            known[i] = client;
        }
        prime.retransmissions += retry.retransmissions;
        prime.bound = known
            .iter()
            .filter(|c| c.na.is_some() && c.pd.is_some())
            .count();
    }
    anyhow::ensure!(
        prime.bound == known.len(),
        "{label}: only {} of {n} clients got bound while priming ({PRIME_RETRIES} retries)",
        prime.bound
    );
    let mut runs = Vec::new();
    let mut xdp_counters = Vec::new();
    let mut new_runs = 0;
    for (name, is_known, rapid_commit) in RUNS {
        drain();
        report.progress(
            "avalanche",
            &format!(
                "{label}: {n} {} clients{}",
                if is_known { "known" } else { "new" },
                if rapid_commit {
                    ", Rapid Commit"
                } else {
                    ", 4-way"
                }
            ),
        );
        let mut fresh: Vec<Client>;
        let clients = if is_known {
            &mut known
        } else {
            fresh = loadgen::clients_from(new_clients_first(new_runs), n, NA_IAID, PD_IAID);
            new_runs += 1;
            &mut fresh
        };
        let before = counters.map(|read| read()).transpose()?;
        let (_, result) = loadgen::bind_all_threads(sockets, clients, &plan(rapid_commit))?;
        if let (Some(read), Some(before)) = (counters, before) {
            let moved = read()?
                .into_iter()
                .filter_map(|(name, after)| {
                    let delta = after.saturating_sub(before.get(&name).copied().unwrap_or(0));
                    (delta > 0).then_some((name, delta))
                })
                .collect();
            xdp_counters.push((name.to_string(), moved));
        }
        report.progress(
            "avalanche",
            &format!(
                "{label}: {name}: {} of {n} bound in {:.2} s, {} retransmissions",
                result.bound, result.seconds, result.retransmissions
            ),
        );
        runs.push((name.to_string(), result));
    }
    Ok(ServerRuns {
        server: label.to_string(),
        prime,
        runs,
        xdp_counters,
    })
}

/// Seconds until all were bound; when a run did not finish, the time it ran is a lower bound.
fn seconds_or_floor(result: &BindResult) -> (f64, bool) {
    match result.seconds_to_all_bound {
        Some(s) => (s, false),
        None => (result.seconds, true),
    }
}

/// One avalanche compared: ours against the faster Kea mode. The ratio is Kea's seconds over
/// ours; `floor` when a Kea run did not bind everyone in time (its time is then a lower bound),
/// `None` when ours did not.
#[derive(Debug, Clone, serde::Serialize)]
struct Comparison {
    run: String,
    ours_seconds: Option<f64>,
    kea_best_mode: Option<KeaMode>,
    kea_best_seconds: Option<f64>,
    ratio_vs_kea: Option<f64>,
    ratio_is_floor: bool,
}

fn compare(name: &str, ours: &ServerRuns, kea: &[(KeaMode, ServerRuns)]) -> Comparison {
    let ours_seconds = ours.run(name).and_then(|r| r.seconds_to_all_bound);
    let best = kea
        .iter()
        .filter_map(|(mode, runs)| runs.run(name).map(|r| (*mode, seconds_or_floor(r))))
        // Finished runs first, then the fastest.
        .min_by(|a, b| a.1 .1.cmp(&b.1 .1).then(a.1 .0.total_cmp(&b.1 .0)));
    let (kea_best_mode, kea_best_seconds, floor) = match best {
        Some((mode, (s, floor))) => (Some(mode), Some(s), floor),
        None => (None, None, false),
    };
    let ratio_vs_kea = match (ours_seconds, kea_best_seconds) {
        (Some(o), Some(k)) if o > 0.0 => Some(k / o),
        _ => None,
    };
    Comparison {
        run: name.to_string(),
        ours_seconds,
        kea_best_mode,
        kea_best_seconds,
        ratio_vs_kea,
        ratio_is_floor: floor,
    }
}

/// Runs the avalanche section into `report`.
pub fn run(opts: &Options, report: &mut Report) -> Result<()> {
    let n = clients(opts);
    let deadline = Duration::from_secs(if opts.quick { 60 } else { 120 });
    report.progress("avalanche", "creating namespaces");
    let net = LabNet::create()?;
    let sockets = net.generator_sockets()?;
    // Room in the map for every client of the five runs (primed, known twice, new twice).
    let max_bindings = (n * 4).next_power_of_two().max(65_536);
    let ours = {
        report.progress("avalanche", "ours: starting dhcp-user serve");
        let (server, _) = OurServer::start(&net, &opts.work_dir, "avalanche", true, max_bindings)?;
        let read = || server.xdp_counters();
        avalanches(&sockets, report, "ours", n, deadline, Some(&read))?
    };
    let kea_dir = opts.work_dir.join("kea-avalanche");
    let mut kea = Vec::new();
    for mode in KeaMode::ALL {
        report.progress("avalanche", &format!("kea ({}): starting", mode.name()));
        let _kea = Kea::start(&net, &kea_dir, mode)?;
        let label = format!("kea ({})", mode.name());
        // One Kea mode failing leaves the other as "Kea at its best", and says so.
        match avalanches(&sockets, report, &label, n, deadline, None) {
            Ok(runs) => kea.push((mode, runs)),
            Err(e) => report.row(
                "avalanche",
                &format!("{} by run", mode.label()),
                "failed".to_string(),
                &format!("{e:#}; not in the comparison"),
            ),
        }
    }
    let _ = std::fs::remove_dir_all(&kea_dir);
    let comparisons: Vec<Comparison> = RUNS
        .iter()
        .map(|(name, ..)| compare(name, &ours, &kea))
        .collect();
    for c in &comparisons {
        let ours_run = ours.run(&c.run).expect("every run is measured");
        report.row(
            "avalanche",
            &format!(
                "{n} {} clients at once: ours vs Kea at its best",
                c.run.replace('_', " ")
            ),
            format!(
                "{} vs {}{} = {}",
                c.ours_seconds.map_or_else(
                    || format!("not all bound ({} of {n})", ours_run.bound),
                    |s| format!("{s:.2} s")
                ),
                c.kea_best_seconds
                    .map_or("-".to_string(), |s| format!("{s:.2} s")),
                if c.ratio_is_floor {
                    " (not all bound)"
                } else {
                    ""
                },
                c.ratio_vs_kea.map_or("no ratio".to_string(), |r| format!(
                    "{}{r:.1}x",
                    if c.ratio_is_floor { ">= " } else { "" }
                )),
            ),
            &format!(
                "ours: {} retransmissions, {} elsewhere, {} invalid; Kea {}{}",
                ours_run.retransmissions,
                ours_run.bound_elsewhere,
                ours_run.invalid_replies,
                c.kea_best_mode.map_or("-", KeaMode::name),
                if c.run == "known" {
                    "; target >= 20x"
                } else {
                    ""
                }
            ),
        );
    }
    for (name, moved) in &ours.xdp_counters {
        let sum = |prefix: &str| -> u64 {
            moved
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(_, v)| v)
                .sum()
        };
        report.row(
            "avalanche",
            &format!(
                "ours, {}: where the answers came from",
                name.replace('_', " ")
            ),
            format!(
                "{} answered in XDP, {} passed to the controller",
                sum("tx_"),
                sum("pass_")
            ),
            &moved
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    for (mode, runs) in &kea {
        report.row(
            "avalanche",
            &format!("{} by run", mode.label()),
            runs.runs
                .iter()
                .map(|(name, r)| {
                    format!(
                        "{name} {}",
                        r.seconds_to_all_bound.map_or_else(
                            || format!("{} of {n} in {:.0} s", r.bound, r.seconds),
                            |s| format!("{s:.2} s")
                        )
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            &format!(
                "retransmissions {}",
                runs.runs
                    .iter()
                    .map(|(_, r)| r.retransmissions.to_string())
                    .collect::<Vec<_>>()
                    .join(" / ")
            ),
        );
    }
    let by_name = |name: &str| comparisons.iter().find(|c| c.run == name);
    report.set(
        "avalanche_known_seconds",
        json!(by_name("known").and_then(|c| c.ours_seconds)),
    );
    for (key, run) in [
        ("avalanche_known_ratio_vs_kea", "known"),
        (
            "avalanche_known_rapid_commit_ratio_vs_kea",
            "known_rapid_commit",
        ),
        ("avalanche_new_ratio_vs_kea", "new"),
        (
            "avalanche_new_rapid_commit_ratio_vs_kea",
            "new_rapid_commit",
        ),
    ] {
        match by_name(run).and_then(|c| c.ratio_vs_kea) {
            Some(r) => report.set(key, json!(r)),
            None => report.missing(
                key,
                &format!("the {run} avalanche did not finish on both sides"),
            ),
        }
    }
    let server_json = |runs: &ServerRuns| -> Value {
        json!({
            "server": runs.server,
            "prime": runs.prime,
            "runs": runs.runs.iter().map(|(name, r)| json!({ "run": name, "result": r })).collect::<Vec<_>>(),
            "xdp_counters": runs.xdp_counters.iter().map(|(name, c)| json!({ "run": name, "moved": c })).collect::<Vec<_>>(),
        })
    };
    report.set(
        "avalanche",
        json!({
            "clients": n,
            "scaled": opts.quick,
            "note": if opts.quick { "quick mode: 10 000 clients (the full run uses 100 000)" } else { "100 000 clients" },
            "window": WINDOW,
            "generator_threads": sockets.len(),
            "window_per_thread": window_per_thread(sockets.len()),
            "timers": Retransmit::AVALANCHE,
            "deadline_seconds": deadline.as_secs_f64(),
            "method": "on each server, in the lab: N clients primed (4-way, IA_NA + IA_PD), then all N Solicit again with the DUIDs they had (no hints), the generator (generator_threads threads, each with its own socket, source address and share of the clients) keeping window_per_thread clients each in an exchange (WINDOW in all), each retransmitting on RFC 8415's rules and timers (SOL_MAX_RT cut to 30 s); every answer checked (transaction id, client and server DUID, status, IAIDs, address and prefix), each new binding compared with the one before (bound_elsewhere); then the same with Rapid Commit, then N new clients (4-way) and N more (Rapid Commit); seconds until the last client is bound; ratio = Kea's seconds (the faster mode) / ours",
            "comparisons": comparisons,
            "ours": server_json(&ours),
            "kea": kea.iter().map(|(mode, runs)| json!({ "mode": mode, "runs": server_json(runs) })).collect::<Vec<_>>(),
        }),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(name: &str, seconds: f64, all: bool) -> ServerRuns {
        ServerRuns {
            server: name.into(),
            prime: BindResult::default(),
            runs: vec![(
                "known".into(),
                BindResult {
                    seconds,
                    seconds_to_all_bound: all.then_some(seconds),
                    ..BindResult::default()
                },
            )],
            xdp_counters: Vec::new(),
        }
    }

    /// The ratio is against the faster Kea mode that bound everyone.
    #[test]
    fn the_faster_finished_kea_mode_is_the_reference() {
        let c = compare(
            "known",
            &runs("ours", 0.5, true),
            &[
                (KeaMode::SingleThreaded, runs("st", 20.0, true)),
                (KeaMode::MultiThreadedCache, runs("mt", 10.0, true)),
            ],
        );
        assert_eq!(c.kea_best_mode, Some(KeaMode::MultiThreadedCache));
        assert_eq!(c.ratio_vs_kea, Some(20.0));
        assert!(!c.ratio_is_floor);
    }

    /// A Kea run that did not bind everyone gives only a lower bound, and a finished mode beats
    /// it even when slower.
    #[test]
    fn an_unfinished_kea_run_is_a_floor_and_loses_to_a_finished_one() {
        let unfinished = [(KeaMode::SingleThreaded, runs("st", 30.0, false))];
        let c = compare("known", &runs("ours", 1.0, true), &unfinished);
        assert!(c.ratio_is_floor);
        assert_eq!(c.ratio_vs_kea, Some(30.0));
        let mixed = [
            (KeaMode::SingleThreaded, runs("st", 30.0, false)),
            (KeaMode::MultiThreadedCache, runs("mt", 40.0, true)),
        ];
        let c = compare("known", &runs("ours", 1.0, true), &mixed);
        assert_eq!(c.kea_best_mode, Some(KeaMode::MultiThreadedCache));
        assert!(!c.ratio_is_floor);
    }

    /// Without all of ours bound there is no ratio.
    #[test]
    fn no_ratio_when_ours_did_not_finish() {
        let c = compare(
            "known",
            &runs("ours", 30.0, false),
            &[(KeaMode::SingleThreaded, runs("st", 10.0, true))],
        );
        assert_eq!(c.ratio_vs_kea, None);
    }

    /// The avalanche timers: 1 s first, doubling, capped at 30 s, spread within +-10 %.
    #[test]
    fn avalanche_timers_double_up_to_the_cap_with_bounded_jitter() {
        let t = Retransmit::AVALANCHE;
        for i in 0..1000 {
            let first = t.timeout(1, i).as_secs_f64();
            assert!((0.9..=1.1).contains(&first), "{first}");
            let third = t.timeout(3, i).as_secs_f64();
            assert!((3.6..=4.4).contains(&third), "{third}");
            let late = t.timeout(12, i).as_secs_f64();
            assert!((27.0..=33.0).contains(&late), "{late}");
        }
    }
}
