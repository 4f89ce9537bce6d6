//! New leases (4-way: Solicit, Advertise, Request, Reply) with our own generator, measured like
//! renewals: open-loop rate steps (exchanges started at a fixed rate, whatever the server does)
//! and closed-loop runs with a fixed number of exchanges in flight (64 up to 1 024), every
//! exchange from a client the server has never seen. Our server and Kea (both of its modes)
//! run the same steps, and for each run the server process's CPU time (the sum of its threads'
//! run time from `/proc/PID/task/*/schedstat`) and context switches (`/proc/PID/task/*/status`)
//! are divided by the exchanges completed: `controller_cpu_us_per_exchange`.
//!
//! Durability differs and the report says so: every lease of ours is on disk (fsync) before its
//! Reply; Kea's memfile appends the lease to its CSV file without an fsync before the Reply.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use anyhow::{bail, Result};
use serde_json::{json, Value};

use crate::{
    e2e::{self, KeaMode, LabNet},
    loadgen::ClientSocket,
    Options, Report,
};
use dhcp_common::dhcpv6::*;
use dhcp_testwire::dhcpv6::{
    client_duid, elapsed, find, ia_na, ia_pd, msg, opt, options, oro, parse_ia,
};

/// IAIDs of the simulated clients (as the other lab runs).
const NA_IAID: u32 = 1;
const PD_IAID: u32 = 2;
/// Client numbers start here, clear of the other lab runs' clients (0 up to 1 M).
const FIRST_CLIENT: u32 = 4_000_000;
/// An exchange not completed this long after its Solicit is a drop (open loop: no retries).
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(1);
/// Mark of a Request's transaction id (the low 23 bits are the client's number in the run).
const REQUEST_XID: u32 = 1 << 23;

/// How one run starts its exchanges.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Load {
    /// Solicits at this rate per second for the run's duration (each from a new client).
    OpenLoop(f64),
    /// This many exchanges in flight: one ends (Reply or time-out), the next starts.
    ClosedLoop(usize),
}

/// What one run measured, from the generator's side and from the server process's.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FourWayRun {
    pub load: Load,
    pub seconds: f64,
    /// Exchanges started (Solicits sent for new clients).
    pub started: u64,
    /// Exchanges whose Reply carried the address and the prefix advertised.
    pub completed: u64,
    pub exchanges_per_second: f64,
    /// Exchanges started but not completed within `EXCHANGE_TIMEOUT`.
    pub drop_ratio: f64,
    /// Solicits sent per second (open loop: below 0.9 of the rate, the generator fell behind).
    pub started_per_second: f64,
    pub latency_p50_us: Option<f64>,
    pub latency_p99_us: Option<f64>,
    /// The server process's CPU time per completed exchange, all threads, microseconds.
    pub server_cpu_us_per_exchange: Option<f64>,
    /// The server's CPU time over the run divided by its wall time (1.0: one core busy).
    pub server_cores: Option<f64>,
    /// The server's context switches (voluntary + involuntary, all threads) per exchange.
    pub server_context_switches_per_exchange: Option<f64>,
}

/// CPU time and context switches of a process, summed over its threads.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessCpu {
    pub run_ns: u64,
    pub context_switches: u64,
}

impl ProcessCpu {
    /// Reads `/proc/PID/task/*/{schedstat,status}`; `None` when the process is gone.
    pub fn read(pid: u32) -> Option<ProcessCpu> {
        let mut total = ProcessCpu::default();
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
            let path = task.ok()?.path();
            // A thread that ended between the listing and the read counts as nothing.
            let Ok(schedstat) = std::fs::read_to_string(path.join("schedstat")) else {
                continue;
            };
            total.run_ns += schedstat
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
            let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
            total.context_switches += status
                .lines()
                .filter_map(|line| {
                    line.strip_prefix("voluntary_ctxt_switches:")
                        .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
                })
                .filter_map(|count| count.trim().parse::<u64>().ok())
                .sum::<u64>();
        }
        Some(total)
    }
}

/// One client's exchange in a run.
#[derive(Clone, Copy)]
enum Exchange {
    Soliciting(Instant),
    Requesting(Instant),
    Done,
    Dropped,
}

fn solicit(number: u32, xid: u32) -> Vec<u8> {
    let duid = client_duid(number);
    msg(
        MSG_SOLICIT,
        xid,
        &[
            opt(OPT_CLIENTID, &duid),
            elapsed(),
            ia_na(NA_IAID, 0, 0, None),
            ia_pd(PD_IAID, 0, 0, None),
            oro(&[OPT_DNS_SERVERS]),
        ],
    )
}

/// The Request for what an Advertise offered, `None` when it offered no address or no prefix.
fn request_for(advertise: &[u8], number: u32, xid: u32) -> Option<Vec<u8>> {
    let opts = options(&advertise[4..])?;
    let duid = client_duid(number);
    if find(&opts, OPT_CLIENTID) != Some(&duid[..]) {
        return None;
    }
    let server = find(&opts, OPT_SERVERID)?;
    let na = find(&opts, OPT_IA_NA)
        .and_then(|b| parse_ia(b, false))
        .and_then(|ia| ia.leases.first().map(|l| l.0))?;
    let pd = find(&opts, OPT_IA_PD)
        .and_then(|b| parse_ia(b, true))
        .and_then(|ia| ia.leases.first().map(|l| (l.0, l.1)))?;
    Some(msg(
        MSG_REQUEST,
        xid | REQUEST_XID,
        &[
            opt(OPT_CLIENTID, &duid),
            opt(OPT_SERVERID, server),
            elapsed(),
            ia_na(NA_IAID, 0, 0, Some((na, 0, 0))),
            ia_pd(PD_IAID, 0, 0, Some((pd.0, pd.1, 0, 0))),
            oro(&[OPT_DNS_SERVERS]),
        ],
    ))
}

/// Whether a Reply grants this client an address and a prefix.
fn reply_grants(reply: &[u8], number: u32) -> bool {
    let Some(opts) = options(&reply[4..]) else {
        return false;
    };
    let granted = |ia: Option<&[u8]>, pd: bool| {
        ia.and_then(|b| parse_ia(b, pd)).is_some_and(|ia| {
            ia.status.is_none_or(|s| s == STATUS_SUCCESS) && ia.leases.iter().any(|l| l.3 > 0)
        })
    };
    find(&opts, OPT_CLIENTID) == Some(&client_duid(number)[..])
        && granted(find(&opts, OPT_IA_NA), false)
        && granted(find(&opts, OPT_IA_PD), true)
}

fn percentile(sorted: &[u64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    Some(sorted[at] as f64 / 1e3)
}

/// Runs 4-way exchanges from `clients` new clients numbered from `first`, as `load` says, for
/// `duration`, then waits up to `EXCHANGE_TIMEOUT` for what is still in flight; `pid` is the
/// server's process, read before and after. Bounded in count (`clients`) and in time.
pub fn four_way_run(
    socket: &ClientSocket,
    pid: Option<u32>,
    first: u32,
    clients: u32,
    load: Load,
    duration: Duration,
) -> Result<FourWayRun> {
    if clients == 0 || clients >= REQUEST_XID {
        bail!("a run takes 1 to {} clients", REQUEST_XID - 1);
    }
    let n = clients as usize;
    let mut state: Vec<Option<Exchange>> = vec![None; n];
    let mut latencies: Vec<u64> = Vec::new();
    let mut completed = 0u64;
    let mut started = 0usize;
    let mut open = 0usize;
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut bufs = vec![[0u8; crate::loadgen::MAX_PACKET]; crate::loadgen::BATCH];
    let mut lens = Vec::new();
    // Exchanges in flight by start time, for the time-out scan (oldest first).
    let mut pending: std::collections::VecDeque<(usize, Instant)> = Default::default();
    socket.drain(Duration::from_millis(100), Duration::from_secs(1));
    let cpu_before = pid.and_then(ProcessCpu::read);
    let begin = Instant::now();
    let stop_at = begin + duration;
    let hard_stop = stop_at + EXCHANGE_TIMEOUT;
    loop {
        let now = Instant::now();
        let starting = now < stop_at;
        if !starting && open == 0 || now >= hard_stop {
            break;
        }
        // Start what the load asks for now.
        let due = match load {
            Load::OpenLoop(rate) if starting => {
                ((now - begin).as_secs_f64() * rate).ceil() as usize
            }
            Load::ClosedLoop(window) if starting => started + window.saturating_sub(open),
            _ => started,
        };
        while started < due.min(n) {
            out.push(solicit(first + started as u32, started as u32));
            state[started] = Some(Exchange::Soliciting(now));
            pending.push_back((started, now));
            started += 1;
            open += 1;
        }
        // Time out what waited too long.
        while let Some(&(i, at)) = pending.front() {
            if now.duration_since(at) < EXCHANGE_TIMEOUT {
                break;
            }
            pending.pop_front();
            if matches!(
                state[i],
                Some(Exchange::Soliciting(_) | Exchange::Requesting(_))
            ) {
                state[i] = Some(Exchange::Dropped);
                open -= 1;
            }
        }
        for chunk in out.chunks(crate::loadgen::BATCH) {
            let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            socket.send(&refs);
        }
        out.clear();
        let got = socket.recv(&mut bufs, &mut lens);
        if got == 0 {
            socket.wait_readable(Duration::from_millis(1));
            continue;
        }
        for (buf, &len) in bufs.iter().zip(lens.iter()) {
            let p = &buf[..len];
            if p.len() < 4 {
                continue;
            }
            let xid = u32::from_be_bytes([0, p[1], p[2], p[3]]);
            let i = (xid & (REQUEST_XID - 1)) as usize;
            if i >= n {
                continue;
            }
            let number = first + i as u32;
            match (p[0], state[i], xid & REQUEST_XID != 0) {
                (MSG_ADVERTISE, Some(Exchange::Soliciting(at)), false) => {
                    if let Some(request) = request_for(p, number, i as u32) {
                        out.push(request);
                        state[i] = Some(Exchange::Requesting(at));
                    }
                }
                (MSG_REPLY, Some(Exchange::Requesting(at)), true) if reply_grants(p, number) => {
                    state[i] = Some(Exchange::Done);
                    latencies.push(at.elapsed().as_nanos() as u64);
                    completed += 1;
                    open -= 1;
                }
                _ => {}
            }
        }
    }
    let wall = begin.elapsed();
    let cpu_after = pid.and_then(ProcessCpu::read);
    latencies.sort_unstable();
    let seconds = duration.as_secs_f64();
    // Open loop: the rate over the offered window; closed loop: over the whole run.
    let span = match load {
        Load::OpenLoop(_) => seconds,
        Load::ClosedLoop(_) => wall.as_secs_f64(),
    };
    let cpu = cpu_before.zip(cpu_after).map(|(b, a)| {
        (
            a.run_ns.saturating_sub(b.run_ns),
            a.context_switches.saturating_sub(b.context_switches),
        )
    });
    let per_exchange = |value: u64| (completed > 0).then(|| value as f64 / completed as f64);
    Ok(FourWayRun {
        load,
        seconds: wall.as_secs_f64(),
        started: started as u64,
        completed,
        exchanges_per_second: completed as f64 / span.max(1e-9),
        drop_ratio: if started == 0 {
            0.0
        } else {
            1.0 - completed as f64 / started as f64
        },
        started_per_second: started as f64 / seconds.max(1e-9),
        latency_p50_us: percentile(&latencies, 0.5),
        latency_p99_us: percentile(&latencies, 0.99),
        server_cpu_us_per_exchange: cpu.and_then(|(ns, _)| per_exchange(ns).map(|v| v / 1e3)),
        server_cores: cpu.map(|(ns, _)| ns as f64 / 1e9 / wall.as_secs_f64().max(1e-9)),
        server_context_switches_per_exchange: cpu.and_then(|(_, cs)| per_exchange(cs)),
    })
}

/// A server's new-lease series: open-loop steps up to the knee, then the closed-loop runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Series {
    pub server: String,
    pub steps: Vec<FourWayRun>,
    /// The highest open-loop step under 1 % drops.
    pub knee_step: Option<usize>,
    pub closed_loop: Vec<FourWayRun>,
}

impl Series {
    fn knee(&self) -> Option<&FourWayRun> {
        self.knee_step.map(|k| &self.steps[k])
    }

    /// The best of the knee and the closed-loop runs under 1 % drops.
    fn best_rate(&self) -> Option<f64> {
        self.knee()
            .into_iter()
            .chain(self.closed_loop.iter().filter(|r| r.drop_ratio < 0.01))
            .map(|r| r.exchanges_per_second)
            .max_by(f64::total_cmp)
    }
}

/// The runs of a series: open-loop rates, closed-loop windows, and each run's length.
struct Plan<'a> {
    rates: &'a [f64],
    windows: &'a [usize],
    step: Duration,
}

/// Runs the series against the server `pid` on `socket`; `next_client` advances past every
/// client used, so no exchange reuses a client the server knows.
fn series(
    report: &Report,
    name: &str,
    socket: &ClientSocket,
    pid: Option<u32>,
    next_client: &mut u32,
    plan: &Plan,
) -> Result<Series> {
    let Plan {
        rates,
        windows,
        step,
    } = *plan;
    let mut steps = Vec::new();
    let mut knee = None;
    for &rate in rates {
        let mut go_on = false;
        // A step that drops gets a second try, as the renewal steps do.
        for _attempt in 0..2 {
            let clients = (rate * step.as_secs_f64()).ceil() as u32 + 1;
            let run = four_way_run(
                socket,
                pid,
                *next_client,
                clients,
                Load::OpenLoop(rate),
                step,
            )?;
            *next_client += clients;
            report.progress(
                "newlease",
                &format!(
                    "{name}: offered {rate:.0}/s -> {:.0}/s, {:.1} % drops, {} us CPU each",
                    run.exchanges_per_second,
                    run.drop_ratio * 100.0,
                    run.server_cpu_us_per_exchange
                        .map_or("-".into(), |v| format!("{v:.0}"))
                ),
            );
            let ok = run.drop_ratio < 0.01;
            let generator_limited = run.started_per_second < 0.9 * rate;
            steps.push(run);
            if ok {
                knee = Some(steps.len() - 1);
            }
            if ok || generator_limited {
                go_on = ok && !generator_limited;
                break;
            }
        }
        if !go_on {
            break;
        }
    }
    let mut closed_loop = Vec::new();
    for &window in windows {
        // Enough clients that the window, not the client count, ends the run.
        let clients = 200_000;
        let run = four_way_run(
            socket,
            pid,
            *next_client,
            clients,
            Load::ClosedLoop(window),
            step,
        )?;
        *next_client += run.started as u32;
        report.progress(
            "newlease",
            &format!(
                "{name}: {window} in flight -> {:.0}/s, {:.1} % drops",
                run.exchanges_per_second,
                run.drop_ratio * 100.0
            ),
        );
        closed_loop.push(run);
    }
    Ok(Series {
        server: name.to_string(),
        steps,
        knee_step: knee,
        closed_loop,
    })
}

fn describe(run: &FourWayRun) -> String {
    format!(
        "{:.0} exchanges/s ({:.2} % drops, p50 {:.0} us, p99 {:.0} us); server CPU {} us/exchange, {} context switches/exchange, {} cores",
        run.exchanges_per_second,
        run.drop_ratio * 100.0,
        run.latency_p50_us.unwrap_or(0.0),
        run.latency_p99_us.unwrap_or(0.0),
        run.server_cpu_us_per_exchange
            .map_or("-".into(), |v| format!("{v:.1}")),
        run.server_context_switches_per_exchange
            .map_or("-".into(), |v| format!("{v:.2}")),
        run.server_cores.map_or("-".into(), |v| format!("{v:.2}")),
    )
}

fn rows(report: &mut Report, label: &str, series: &Series) {
    let knee = match series.knee() {
        Some(run) => format!("open loop, offered {:?}: {}", run.load, describe(run)),
        None => "no open-loop step under 1 % drops".into(),
    };
    report.row("lab: new leases, own generator", label, knee, "");
    for run in &series.closed_loop {
        let Load::ClosedLoop(window) = run.load else {
            continue;
        };
        report.row(
            "lab: new leases, own generator",
            &format!("{label}, {window} in flight"),
            describe(run),
            "",
        );
    }
}

/// The section: our server (fast path on, as deployed; new clients all reach the controller)
/// and Kea in both modes, the same steps for each.
pub fn run(opts: &Options, report: &mut Report) -> Result<()> {
    let step = Duration::from_secs(if opts.quick { 2 } else { 4 });
    let rates: Vec<f64> = if opts.quick {
        vec![
            2_000.0, 4_000.0, 8_000.0, 12_000.0, 16_000.0, 24_000.0, 32_000.0,
        ]
    } else {
        vec![
            1_000.0, 2_000.0, 3_000.0, 4_000.0, 6_000.0, 8_000.0, 12_000.0, 16_000.0, 24_000.0,
            32_000.0, 48_000.0, 64_000.0,
        ]
    };
    let windows: &[usize] = if opts.quick {
        &[64, 1024]
    } else {
        &[64, 256, 1024]
    };
    let plan = Plan {
        rates: &rates,
        windows,
        step,
    };
    report.progress("newlease", "creating namespaces");
    let net = LabNet::create()?;
    let socket = net.client_socket()?;
    let mut next_client = FIRST_CLIENT;

    let ours = {
        report.progress("newlease", "ours: starting dhcp-user serve");
        let (server, _) = e2e::OurServer::start(&net, &opts.work_dir, "newlease", true, 1 << 20)?;
        series(
            report,
            "ours",
            &socket,
            server.pid(),
            &mut next_client,
            &plan,
        )?
    };
    let kea_dir = opts.work_dir.join("kea-newlease");
    let mut keas = Vec::new();
    for mode in KeaMode::ALL {
        report.progress("newlease", &format!("kea ({}): starting", mode.name()));
        let kea = e2e::Kea::start(&net, &kea_dir, mode)?;
        keas.push((
            mode,
            series(
                report,
                &format!("kea ({})", mode.name()),
                &socket,
                Some(kea.pid()),
                &mut next_client,
                &plan,
            )?,
        ));
    }
    rows(
        report,
        "our server (durable: fsync before each Reply)",
        &ours,
    );
    for (mode, series) in &keas {
        rows(
            report,
            &format!("{} (no fsync before its Reply)", mode.label()),
            series,
        );
    }
    let (kea_mode, kea_best) = keas
        .iter()
        .filter_map(|(mode, s)| s.best_rate().map(|r| (*mode, r)))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map_or((None, None), |(m, r)| (Some(m), Some(r)));
    let ours_best = ours.best_rate();
    let ratio = ours_best.zip(kea_best).map(|(o, k)| o / k);
    report.row(
        "lab: new leases, own generator",
        "our server / Kea at its best (best of open-loop knee and closed-loop runs)",
        ratio.map_or("no ratio (a side had no run under 1 % drops)".into(), |r| {
            format!("{r:.2}x")
        }),
        &format!(
            "target >= 3x; Kea {}; ours durable before the Reply, Kea's memfile does not fsync",
            kea_mode.map_or("-", KeaMode::name)
        ),
    );
    let ours_cpu = ours.knee().and_then(|r| r.server_cpu_us_per_exchange);
    match ours_cpu {
        Some(us) => report.set("controller_cpu_us_per_exchange", json!(us)),
        None => report.missing(
            "controller_cpu_us_per_exchange",
            "our server had no open-loop new-lease step under 1 % drops",
        ),
    }
    let kea_cpu: Vec<Value> = keas
        .iter()
        .map(|(mode, s)| {
            json!({
                "mode": mode,
                "cpu_us_per_exchange": s.knee().and_then(|r| r.server_cpu_us_per_exchange),
            })
        })
        .collect();
    report.row(
        "lab: new leases, own generator",
        "server CPU per 4-way exchange, at the open-loop knee",
        format!(
            "ours {}; {}",
            ours_cpu.map_or("-".into(), |v| format!("{v:.1} us")),
            keas.iter()
                .map(|(mode, s)| format!(
                    "kea ({}) {}",
                    mode.name(),
                    s.knee()
                        .and_then(|r| r.server_cpu_us_per_exchange)
                        .map_or("-".into(), |v| format!("{v:.1} us"))
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        "target <= 30 us (ours); all threads' run time from /proc/PID/task/*/schedstat",
    );
    report.set("kea_cpu_us_per_exchange", json!(kea_cpu));
    report.set(
        "e2e_own_generator_new_lease_best_ratio_vs_kea",
        json!(ratio),
    );
    let by_mode: HashMap<&str, &Series> = keas.iter().map(|(m, s)| (m.name(), s)).collect();
    report.set(
        "lab_new_leases",
        json!({
            "ours": ours,
            "kea": by_mode,
            "kea_best_mode": kea_mode,
            "ours_best_per_second": ours_best,
            "kea_best_per_second": kea_best,
            "durability": "ours: every lease on disk (SQLite WAL, synchronous=FULL, fsync) before its Reply; Kea memfile (persist on) writes the lease to its CSV without an fsync before the Reply",
            "method": "one generator thread on the client veth; each exchange from a client never seen before; open loop: Solicits at the offered rate, no retries, an exchange not completed within 1 s is a drop, the knee is the highest step under 1 % drops; closed loop: a fixed number of exchanges in flight; server CPU: the run-time sum over the server process's threads (/proc/PID/task/*/schedstat) over the run, divided by the exchanges completed",
        }),
    );
    Ok(())
}
