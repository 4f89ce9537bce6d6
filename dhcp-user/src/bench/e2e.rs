//! End to end in the benchmark's own namespaces: the XDP fast path attached to a veth and Kea
//! (`kea-dhcp6`, memfile with persist on), driven by our load generator and by perfdhcp, with
//! the offered rate stepped to find each knee (< 1 % drops).

use std::{
    collections::BTreeMap,
    path::Path,
    process::{Child, Stdio},
    time::Duration,
};

use anyhow::{bail, Context, Result};
use aya::programs::{Xdp, XdpMode};
use dhcp_common::maps::TRIVIAL_PROGRAM;
use serde_json::{json, Value};

use super::{
    loadgen::{self, Client, ClientSocket, StepResult},
    netns::{in_netns, NetnsPair, CLIENT_IF, SERVER_IF},
    xdp, Options, Report,
};
use crate::fastpath::{AttachMode, FastPath};

/// IAIDs the load generator's clients use against Kea.
const NA_IAID: u32 = 1;
const PD_IAID: u32 = 2;

/// Kea's configuration: the pools, lifetimes and options of examples/lab.toml.
fn kea_config(dir: &Path) -> Value {
    json!({
        "Dhcp6": {
            "interfaces-config": { "interfaces": [SERVER_IF] },
            "server-id": { "type": "LLT", "persist": false },
            "lease-database": {
                "type": "memfile",
                "persist": true,
                "lfc-interval": 0,
                "name": dir.join("kea-leases6.csv").to_string_lossy(),
            },
            "preferred-lifetime": 1800,
            "valid-lifetime": 3600,
            "renew-timer": 900,
            "rebind-timer": 1440,
            "option-data": [
                { "name": "dns-servers", "data": "2001:db8:1::53" },
                { "name": "domain-search", "data": "lab.example" },
            ],
            "subnet6": [{
                "id": 1,
                "subnet": "2001:db8:1::/64",
                "interface": SERVER_IF,
                "rapid-commit": true,
                "pools": [{ "pool": "2001:db8:1::1000 - 2001:db8:1::ffff" }],
                "pd-pools": [{ "prefix": "2001:db8:8000::", "prefix-len": 40, "delegated-len": 56 }],
            }],
            "loggers": [{
                "name": "kea-dhcp6",
                "output_options": [{ "output": dir.join("kea.log").to_string_lossy() }],
                "severity": "WARN",
            }],
        }
    })
}

/// A running kea-dhcp6 in the server namespace; killed on drop.
struct Kea {
    child: Child,
}

impl Kea {
    fn start(pair: &NetnsPair, dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let _ = std::fs::remove_file(dir.join("kea-leases6.csv"));
        let config = dir.join("kea-dhcp6.json");
        std::fs::write(&config, serde_json::to_string_pretty(&kea_config(dir))?)?;
        let child = NetnsPair::command(&pair.server, "kea-dhcp6")
            .arg("-c")
            .arg(&config)
            .env("KEA_PIDFILE_DIR", dir)
            .env("KEA_LOCKFILE_DIR", dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting kea-dhcp6")?;
        // Kea opens its sockets within a second or so; priming retries anyway.
        std::thread::sleep(Duration::from_millis(1500));
        Ok(Kea { child })
    }
}

impl Drop for Kea {
    fn drop(&mut self) {
        // `ip netns exec` execs kea-dhcp6 in place, so this pid is Kea's.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One perfdhcp run, parsed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PerfdhcpRun {
    pub rate: u32,
    pub renew_rate: Option<u32>,
    pub seconds: u32,
    /// Per exchange ("SOLICIT-ADVERTISE", "REQUEST-REPLY", "RENEW-REPLY"): sent, received, drops.
    pub exchanges: BTreeMap<String, BTreeMap<String, f64>>,
    pub four_way_per_second: Option<f64>,
    pub renewals_per_second: Option<f64>,
    pub drop_ratio: f64,
    pub sent_packets_per_second: f64,
}

fn perfdhcp(
    pair: &NetnsPair,
    rate: u32,
    renew_rate: Option<u32>,
    seconds: u32,
    clients: u32,
) -> Result<PerfdhcpRun> {
    let mut cmd = NetnsPair::command(&pair.client, "timeout");
    cmd.args([
        &format!("{}", seconds + 20),
        "perfdhcp",
        "-6",
        "-l",
        CLIENT_IF,
        "-e",
        "address-and-prefix",
        "-r",
        &rate.to_string(),
        "-R",
        &clients.to_string(),
        "-p",
        &seconds.to_string(),
        "-W",
        "500000",
    ]);
    if let Some(f) = renew_rate {
        cmd.args(["-f", &f.to_string()]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .context("running perfdhcp")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut exchanges: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut four_way = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(name) = line
            .strip_prefix("***Statistics for: ")
            .and_then(|l| l.strip_suffix("***"))
        {
            current = Some(name.trim().to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("Rate:") {
            four_way = rest.split_whitespace().next().and_then(|v| v.parse().ok());
            continue;
        }
        if let (Some(section), Some((key, value))) = (&current, line.split_once(':')) {
            let value = value.trim().trim_end_matches('%').trim();
            let number = value
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok());
            if let Some(v) = number {
                exchanges
                    .entry(section.clone())
                    .or_default()
                    .insert(key.trim().to_string(), v);
            }
        }
    }
    if exchanges.is_empty() {
        bail!(
            "perfdhcp printed no statistics: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let get = |ex: &str, key: &str| exchanges.get(ex).and_then(|m| m.get(key)).copied();
    let renewals = get("RENEW-REPLY", "received packets").map(|r| r / seconds as f64);
    let sent: f64 = exchanges
        .values()
        .filter_map(|m| m.get("sent packets"))
        .sum();
    let (drop_sent, drop_drops) = match renew_rate {
        Some(_) => (
            get("RENEW-REPLY", "sent packets").unwrap_or(0.0),
            get("RENEW-REPLY", "drops").unwrap_or(0.0),
        ),
        None => {
            let s = get("SOLICIT-ADVERTISE", "sent packets").unwrap_or(0.0)
                + get("REQUEST-REPLY", "sent packets").unwrap_or(0.0);
            let d = get("SOLICIT-ADVERTISE", "drops").unwrap_or(0.0)
                + get("REQUEST-REPLY", "drops").unwrap_or(0.0);
            (s, d)
        }
    };
    Ok(PerfdhcpRun {
        rate,
        renew_rate,
        seconds,
        four_way_per_second: four_way,
        renewals_per_second: renewals,
        drop_ratio: if drop_sent > 0.0 {
            drop_drops / drop_sent
        } else {
            1.0
        },
        sent_packets_per_second: sent / seconds as f64,
        exchanges,
    })
}

/// Attaches the trivial XDP_PASS program to the client-side veth: on veth, frames sent back with
/// XDP_TX by the server side reach the peer only when the peer has an XDP program.
fn attach_client_pass(pair: &NetnsPair) -> Result<FastPath> {
    let mut holder = FastPath::load_with(None, true)?;
    in_netns(&pair.client, || -> Result<()> {
        let ifindex = crate::fastpath::ifindex(CLIENT_IF)?;
        let program: &mut Xdp = holder
            .ebpf_mut()
            .program_mut(TRIVIAL_PROGRAM)
            .context("the trivial program")?
            .try_into()?;
        program
            .attach_to_if_index(ifindex, XdpMode::Driver)
            .or_else(|_| program.attach_to_if_index(ifindex, XdpMode::Skb))?;
        Ok(())
    })??;
    Ok(holder)
}

fn step_row(
    report: &mut Report,
    section: &str,
    what: &str,
    steps: &[StepResult],
    knee: Option<usize>,
) {
    let value = match knee {
        Some(k) => {
            let s = &steps[k];
            format!(
                "{:.0} renewals/s (offered {:.0}/s, {:.2} % drops, p50 {:.0} us, p99 {:.0} us)",
                s.renewals_per_second,
                s.offered_per_second,
                s.drop_ratio * 100.0,
                s.latency_p50_us.unwrap_or(0.0),
                s.latency_p99_us.unwrap_or(0.0)
            )
        }
        None => "no step under 1 % drops".to_string(),
    };
    let generator_limited =
        knee.is_some_and(|k| steps[k].sent_per_second < 0.9 * steps[k].offered_per_second);
    let last = steps.last().map(|s| {
        if generator_limited {
            return format!(
                "generator-limited: could send only {:.0}/s of {:.0}/s offered, all answered",
                s.sent_per_second, s.offered_per_second
            );
        }
        format!(
            "next step offered {:.0}/s: sent {:.0}/s, {:.1} % drops",
            s.offered_per_second,
            s.sent_per_second,
            s.drop_ratio * 100.0
        )
    });
    report.row(section, what, value, &last.unwrap_or_default());
}

fn max_of(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn knee_rate(steps: &[StepResult], knee: Option<usize>) -> Option<f64> {
    knee.map(|k| steps[k].renewals_per_second)
}

/// Runs the lab section into `report`.
pub fn run(opts: &Options, report: &mut Report) -> Result<()> {
    let step_secs = Duration::from_secs(if opts.quick { 1 } else { 3 });
    report.progress("lab", "creating namespaces");
    let pair = NetnsPair::create("e2e")?;
    let _client_pass = attach_client_pass(&pair)?;
    let server_ll = pair.link_local(&pair.server, SERVER_IF)?;

    // The fast path alone: bindings pushed into the map, XDP answers on the server veth.
    let fp_clients_n: u32 = if opts.quick { 10_000 } else { 100_000 };
    report.progress("lab", "fast path: loading and attaching");
    let mut fp = FastPath::load(None)?;
    let mode = in_netns(&pair.server, || -> Result<_> {
        let ifindex = crate::fastpath::ifindex(SERVER_IF)?;
        xdp::configure(
            &mut fp,
            &xdp::ServerSide {
                ifindex,
                mac: [0x02, 0x53, 0, 0, 0, 1],
                link_local: server_ll,
                duid: xdp::SERVER_DUID.to_vec(),
            },
        )?;
        Ok(fp.attach(SERVER_IF, AttachMode::Auto)?)
    })??;
    xdp::fill_batched(&mut fp, fp_clients_n, 10_000)?;
    let fp_clients: Vec<Client> = (0..fp_clients_n)
        .map(|i| Client {
            duid: super::wire::client_duid(i).to_vec(),
            na_iaid: xdp::NA_IAID,
            na: Some(xdp::na_addr(i)),
            pd_iaid: xdp::PD_IAID,
            pd: Some((xdp::pd_prefix(i), 56)),
        })
        .collect();
    let fp_rates: Vec<f64> = if opts.quick {
        vec![20_000.0, 100_000.0, 400_000.0]
    } else {
        vec![
            10_000.0,
            50_000.0,
            100_000.0,
            200_000.0,
            300_000.0,
            400_000.0,
            600_000.0,
            800_000.0,
            1_200_000.0,
        ]
    };
    let socket = in_netns(&pair.client, || ClientSocket::open(CLIENT_IF))??;
    let (fp_steps, fp_knee) = loadgen::find_knee(
        &socket,
        &fp_clients,
        xdp::SERVER_DUID,
        &fp_rates,
        step_secs,
        |s| {
            report.progress(
                "lab",
                &format!(
                    "fast path: offered {:.0}/s -> {:.0} valid/s",
                    s.offered_per_second, s.renewals_per_second
                ),
            )
        },
    )?;
    let stats = fp.stats()?;
    let tx_renew = stats[dhcp_common::stat::TX_RENEW as usize].packets;
    let counters: BTreeMap<&str, u64> = stats
        .iter()
        .enumerate()
        .filter(|(_, c)| c.packets > 0)
        .map(|(i, c)| (dhcp_common::stat::NAMES[i], c.packets))
        .collect();
    fp.detach(SERVER_IF)?;
    drop(fp);
    step_row(
        report,
        "lab: renewals, own load generator",
        "XDP fast path alone (bindings pushed)",
        &fp_steps,
        fp_knee,
    );
    let fp_rate = knee_rate(&fp_steps, fp_knee);
    report.set(
        "lab_fastpath",
        json!({
            "attach_mode": format!("{mode:?}"),
            "clients": fp_clients_n,
            "steps": fp_steps,
            "knee_step": fp_knee,
            "renewals_per_second": fp_rate,
            "xdp_tx_renew_counter": tx_renew,
            "xdp_counters": counters,
            "note": "bindings pushed straight into the map (no controller); one generator thread with sendmmsg/recvmmsg on the client veth, XDP_TX on the server veth; both share the machine's cores",
        }),
    );
    report.set("lab_fastpath_renewals_per_second", json!(fp_rate));

    // Kea: prime with 4-way exchanges, then renew.
    let kea_dir = opts.work_dir.join("kea");
    let kea_clients_n: u32 = if opts.quick { 2_000 } else { 20_000 };
    report.progress("lab", "kea: starting");
    let kea_rates: Vec<f64> = if opts.quick {
        vec![500.0, 2_000.0, 8_000.0, 16_000.0]
    } else {
        vec![
            500.0, 1_000.0, 2_000.0, 4_000.0, 8_000.0, 12_000.0, 16_000.0, 24_000.0, 32_000.0,
        ]
    };
    let (kea_prime, kea_steps, kea_knee) = {
        let _kea = Kea::start(&pair, &kea_dir)?;
        let mut clients = loadgen::new_clients(kea_clients_n, NA_IAID, PD_IAID);
        report.progress(
            "lab",
            &format!("kea: priming {kea_clients_n} clients (4-way)"),
        );
        let (kea_duid, prime) = loadgen::prime(
            &socket,
            &mut clients,
            true,
            64,
            Duration::from_secs(if opts.quick { 20 } else { 120 }),
        )?;
        let bound: Vec<Client> = clients.into_iter().filter(|c| c.na.is_some()).collect();
        let (steps, knee) =
            loadgen::find_knee(&socket, &bound, &kea_duid, &kea_rates, step_secs, |s| {
                report.progress(
                    "lab",
                    &format!(
                        "kea: offered {:.0}/s -> {:.0} valid/s",
                        s.offered_per_second, s.renewals_per_second
                    ),
                )
            })?;
        (prime, steps, knee)
    };
    drop(socket);
    step_row(
        report,
        "lab: renewals, own load generator",
        "Kea (memfile, persist)",
        &kea_steps,
        kea_knee,
    );
    report.row(
        "lab: new leases",
        "Kea, own load generator (4-way, 64 in flight)",
        format!(
            "{:.0} exchanges/s ({} of {} bound)",
            kea_prime.exchanges_per_second, kea_prime.bound, kea_prime.clients
        ),
        "priming run, not stepped",
    );
    let kea_rate = knee_rate(&kea_steps, kea_knee);
    let fp_vs_kea = match (fp_rate, kea_rate) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    };
    report.set(
        "lab_kea_loadgen",
        json!({ "prime": kea_prime, "steps": kea_steps, "knee_step": kea_knee, "renewals_per_second": kea_rate }),
    );
    report.set("lab_fastpath_renew_ratio_vs_kea", json!(fp_vs_kea));
    if let Some(r) = fp_vs_kea {
        report.row(
            "lab: renewals, own load generator",
            "XDP fast path alone / Kea",
            format!("{r:.1}x"),
            "target for our server end to end: >= 50x",
        );
    }

    // perfdhcp against Kea: new leases (4-way) and renewals, stepped; and its own ceiling.
    let pd_secs = if opts.quick { 2 } else { 4 };
    let new_rates: &[u32] = if opts.quick {
        &[500, 2_000]
    } else {
        &[500, 1_000, 2_000, 4_000, 8_000]
    };
    let mut new_runs = Vec::new();
    let mut renew_runs = Vec::new();
    let ceiling;
    {
        let mut best_new: Option<f64> = None;
        for &rate in new_rates {
            let _kea = Kea::start(&pair, &kea_dir)?;
            report.progress("lab", &format!("perfdhcp -> kea: 4-way at {rate}/s"));
            let run = perfdhcp(&pair, rate, None, pd_secs, 50_000)?;
            let ok = run.drop_ratio < 0.01;
            if ok {
                best_new = max_of(best_new, run.four_way_per_second);
            }
            new_runs.push(run);
            if !ok {
                break;
            }
        }
        let mut best_renew: Option<f64> = None;
        for &rate in new_rates {
            let _kea = Kea::start(&pair, &kea_dir)?;
            report.progress("lab", &format!("perfdhcp -> kea: renew at {rate}/s"));
            let run = perfdhcp(&pair, rate, Some(rate), pd_secs, 50_000)?;
            let ok = run.drop_ratio < 0.01;
            if ok {
                best_renew = max_of(best_renew, run.renewals_per_second);
            }
            renew_runs.push(run);
            if !ok {
                break;
            }
        }
        {
            let _kea = Kea::start(&pair, &kea_dir)?;
            report.progress("lab", "perfdhcp: its own ceiling (unbounded rate)");
            ceiling = perfdhcp(&pair, 1_000_000, None, 2, 50_000).ok();
        }
        report.row(
            "lab: new leases",
            "Kea, perfdhcp 4-way, < 1 % drops",
            best_new
                .map(|v| format!("{v:.0} exchanges/s"))
                .unwrap_or_else(|| "no step under 1 % drops".into()),
            "",
        );
        report.row(
            "lab: renewals, perfdhcp",
            "Kea, perfdhcp renew, < 1 % drops",
            best_renew
                .map(|v| format!("{v:.0} renewals/s"))
                .unwrap_or_else(|| "no step under 1 % drops".into()),
            "perfdhcp renews leases it got in the same run (-r R -f R)",
        );
        if let Some(c) = &ceiling {
            report.row(
                "lab: perfdhcp",
                "perfdhcp's own ceiling",
                format!("{:.0} packets/s sent", c.sent_packets_per_second),
                "-r 1000000 against Kea; perfdhcp cannot offer more",
            );
        }
        report.set("lab_kea_perfdhcp_new_leases_per_second", json!(best_new));
        report.set("lab_kea_perfdhcp_renewals_per_second", json!(best_renew));
        // Validation: our generator and perfdhcp against the same Kea at a rate both reach.
        let agree = renew_runs
            .iter()
            .filter(|r| r.drop_ratio < 0.01)
            .filter_map(|r| {
                let ours = kea_steps.iter().find(|s| s.offered_per_second == r.rate as f64 && s.drop_ratio < 0.01)?;
                let theirs = r.renewals_per_second?;
                Some(json!({
                    "rate": r.rate,
                    "perfdhcp_renewals_per_second": theirs,
                    "loadgen_renewals_per_second": ours.renewals_per_second,
                    "relative_difference": (ours.renewals_per_second - theirs).abs() / theirs.max(1.0),
                }))
            })
            .collect::<Vec<_>>();
        if let Some(last) = agree.last() {
            report.row(
                "lab: load generator validation",
                &format!("Kea renewals at {}/s", last["rate"]),
                format!(
                    "ours {:.0}/s vs perfdhcp {:.0}/s ({:.1} % apart)",
                    last["loadgen_renewals_per_second"].as_f64().unwrap_or(0.0),
                    last["perfdhcp_renewals_per_second"].as_f64().unwrap_or(0.0),
                    last["relative_difference"].as_f64().unwrap_or(0.0) * 100.0
                ),
                "both under 1 % drops",
            );
        }
        report.set("loadgen_validation_vs_perfdhcp", json!(agree));
    }
    report.set(
        "lab_perfdhcp",
        json!({
            "new_lease_runs": new_runs,
            "renew_runs": renew_runs,
            "ceiling_run": ceiling,
            "ceiling_packets_per_second": ceiling.as_ref().map(|c| c.sent_packets_per_second),
        }),
    );
    Ok(())
}
