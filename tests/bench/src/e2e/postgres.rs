//! New leases per second with the PostgreSQL lease store (a throwaway cluster on this
//! machine): our server alone, two of our servers on two links sharing one database and one
//! pool, and Kea 2.2 with its PostgreSQL backend. Every run primes fresh clients with 4-way
//! exchanges (address and prefix) from our load generator, as the memfile/SQLite rows do.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use dhcp_pgtest::Cluster;
use serde_json::json;

use super::{kea_base_config, LabNet, OurServer, NA_IAID, PD_IAID, SERVER_START_LIMIT};
use crate::loadgen::{self, PrimeResult};
use crate::{Options, Report};

/// `[lease-database]` appended to the server's configuration.
fn use_database(state_dir: &Path, url: &str) -> Result<()> {
    let path = state_dir.join("server.toml");
    let mut config = std::fs::read_to_string(&path)?;
    config.push_str(&format!(
        "\n[lease-database]\ntype = \"postgresql\"\nurl = \"{url}\"\n"
    ));
    std::fs::write(&path, config)?;
    Ok(())
}

/// `n` fresh clients whose DUIDs differ from every other `set`'s.
fn clients(n: u32, set: u8) -> Vec<loadgen::Client> {
    let mut clients = loadgen::new_clients(n, NA_IAID, PD_IAID);
    for client in &mut clients {
        // A byte of the link-layer address (the DUID type and hardware type stay valid).
        if let Some(byte) = client.duid.get_mut(5) {
            *byte ^= set;
        }
    }
    clients
}

fn deadline(opts: &Options) -> Duration {
    Duration::from_secs(if opts.quick { 30 } else { 120 })
}

/// The figures of this section, in the report and its table.
pub fn run(opts: &Options, report: &mut Report) -> Result<()> {
    let n: u32 = if opts.quick { 2_000 } else { 20_000 };
    report.progress("postgres", "starting a throwaway PostgreSQL cluster");
    let cluster = Cluster::start().context("starting the throwaway PostgreSQL cluster")?;

    // The store alone: one lease per commit through StoreWriter, 256 in flight, over one
    // writer (one server) and over two (two servers on one database, distinct leases): what
    // the cross-server history lock costs.
    let store_count: u32 = if opts.quick { 20_000 } else { 100_000 };
    let mut store_rates = Vec::new();
    for servers in [1usize, 2] {
        let url = cluster.create_database(&format!("bench_store_{servers}"))?;
        let writers = (0..servers)
            .map(|_| -> Result<_> {
                let store: std::sync::Arc<dyn dhcp_user::store::LeaseStore> =
                    std::sync::Arc::new(dhcp_user::store::PostgresStore::connect(&url, None)?);
                Ok(dhcp_user::store::StoreWriter::spawn(
                    store,
                    dhcp_user::store::WriterConfig::default(),
                )?)
            })
            .collect::<Result<Vec<_>>>()?;
        report.progress(
            "postgres",
            &format!("store: {store_count} commits over {servers} writer(s)"),
        );
        let (done, seconds) = crate::store::commit_leases(
            &writers,
            store_count,
            256,
            deadline(opts),
            report.progress_handle("postgres", u64::from(store_count)),
        )?;
        let rate = done as f64 / seconds.max(1e-9);
        report.row(
            "postgres",
            &format!("PostgreSQL store through StoreWriter, {servers} server(s)"),
            format!("{rate:.0} leases/s ({done} leases, 256 concurrent)"),
            "one lease per commit, synchronous_commit on",
        );
        store_rates.push(json!({ "servers": servers, "leases": done, "seconds": seconds, "leases_per_second": rate }));
    }
    report.set("postgres_store", json!(store_rates));

    // One controller.
    let db = cluster.create_database_named("bench_one")?;
    let one = {
        let net = LabNet::create()?;
        let url = cluster.socket_url(&db);
        let (_server, _) = OurServer::start_prepared(
            &net,
            &opts.work_dir,
            "pg-one",
            false,
            (n * 2).next_power_of_two().max(65_536),
            SERVER_START_LIMIT,
            |dir| use_database(dir, &url),
        )?;
        report.progress(
            "postgres",
            &format!("ours, 1 controller: priming {n} clients"),
        );
        let mut sims = clients(n, 0);
        loadgen::prime(&net.client_socket()?, &mut sims, true, 64, deadline(opts))?.1
    };

    // Two controllers, two links, one database and one pool: each primes its own clients at once.
    let db = cluster.create_database_named("bench_two")?;
    let (two_a, two_b, doubles) = {
        let nets = [LabNet::create()?, LabNet::create()?];
        let url = cluster.socket_url(&db);
        let mut servers = Vec::new();
        for (i, net) in nets.iter().enumerate() {
            servers.push(
                OurServer::start_prepared(
                    net,
                    &opts.work_dir,
                    &format!("pg-two-{i}"),
                    false,
                    (n * 2).next_power_of_two().max(65_536),
                    SERVER_START_LIMIT,
                    |dir| use_database(dir, &url),
                )?
                .0,
            );
        }
        report.progress(
            "postgres",
            &format!("ours, 2 controllers: priming {n} clients on each"),
        );
        let sockets = [nets[0].client_socket()?, nets[1].client_socket()?];
        let results: Vec<Result<PrimeResult>> = std::thread::scope(|scope| {
            let handles: Vec<_> = sockets
                .iter()
                .enumerate()
                .map(|(i, socket)| {
                    scope.spawn(move || {
                        let mut sims = clients(n, 0x40 + i as u8);
                        loadgen::prime(socket, &mut sims, true, 64, deadline(opts)).map(|r| r.1)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| bail!("a priming thread panicked"))
                })
                .collect()
        });
        let mut results = results.into_iter();
        let a = results.next().context("first run")??;
        let b = results.next().context("second run")??;
        // No address or prefix held by two clients, over every grant either server made.
        let doubles: u64 = cluster
            .psql(
                &db,
                "SELECT count(*) FROM (SELECT address, prefix_len FROM lease_changes \
                 WHERE kind = 0 AND state = 0 GROUP BY address, prefix_len \
                 HAVING count(DISTINCT duid) > 1) AS doubled",
            )?
            .trim()
            .parse()
            .context("counting double grants")?;
        drop(servers);
        (a, b, doubles)
    };

    // Kea 2.2 with its PostgreSQL backend.
    let kea = match kea_postgres(opts, report, &cluster, n) {
        Ok(result) => Some(result),
        Err(err) => {
            report.missing("postgres_kea_new_leases_per_second", &format!("{err:#}"));
            None
        }
    };

    let two_rate = (two_a.bound + two_b.bound) as f64 / two_a.seconds.max(two_b.seconds).max(1e-9);
    report.set("postgres_ours_one_controller", json!(one));
    report.set("postgres_ours_two_controllers", json!([two_a, two_b]));
    report.set("postgres_two_controllers_double_grants", json!(doubles));
    report.set(
        "postgres_ours_new_leases_per_second",
        json!({ "one_controller": one.exchanges_per_second, "two_controllers": two_rate }),
    );
    report.row(
        "postgres",
        "new leases/s, PostgreSQL store, 1 controller",
        format!("{:.0}/s", one.exchanges_per_second),
        &format!("{} of {} bound", one.bound, one.clients),
    );
    report.row(
        "postgres",
        "new leases/s, PostgreSQL store, 2 controllers (sum)",
        format!("{two_rate:.0}/s"),
        &format!(
            "{} + {} bound; {doubles} addresses granted twice",
            two_a.bound, two_b.bound
        ),
    );
    if let Some(kea) = kea {
        report.set("postgres_kea", json!(kea));
        report.row(
            "postgres",
            "new leases/s, Kea 2.2 PostgreSQL backend",
            format!("{:.0}/s", kea.exchanges_per_second),
            &format!("{} of {} bound", kea.bound, kea.clients),
        );
    }
    Ok(())
}

/// Kea with `lease-database` on `cluster` (schema by `kea-admin db-init pgsql`), primed.
fn kea_postgres(opts: &Options, report: &Report, cluster: &Cluster, n: u32) -> Result<PrimeResult> {
    let db = cluster.create_database_named("bench_kea")?;
    let socket_dir = cluster
        .socket_url(&db)
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("host=").map(str::to_owned))
        .context("the cluster's socket directory")?;
    let path = format!(
        "{}:{}",
        cluster.bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let port = cluster.port().to_string();
    let init = std::process::Command::new("kea-admin")
        .args([
            "db-init",
            "pgsql",
            "-u",
            "postgres",
            "-n",
            &db,
            "-h",
            &socket_dir,
            "-P",
            &port,
        ])
        .env("PATH", path)
        .output()
        .context("running kea-admin db-init pgsql")?;
    if !init.status.success() {
        bail!(
            "kea-admin db-init pgsql failed: {}",
            String::from_utf8_lossy(&init.stderr)
        );
    }
    let net = LabNet::create()?;
    let dir = opts.work_dir.join("kea-pg");
    std::fs::create_dir_all(&dir)?;
    let mut config = kea_base_config(&dir, &net.link.a.ifname);
    config["Dhcp6"]["lease-database"] = json!({
        "type": "postgresql",
        "name": db,
        "host": socket_dir,
        "port": cluster.port(),
        "user": "postgres",
        "password": "",
    });
    let config_path = dir.join("kea-dhcp6.json");
    std::fs::write(&config_path, serde_json::to_string_pretty(&config)?)?;
    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _kea = Killed(
        net.server
            .command("kea-dhcp6")
            .arg("-c")
            .arg(&config_path)
            .env("KEA_PIDFILE_DIR", &dir)
            .env("KEA_LOCKFILE_DIR", &dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting kea-dhcp6")?,
    );
    std::thread::sleep(Duration::from_millis(2000));
    report.progress(
        "postgres",
        &format!("kea (PostgreSQL): priming {n} clients"),
    );
    let mut sims = clients(n, 0x80);
    Ok(loadgen::prime(&net.client_socket()?, &mut sims, true, 64, deadline(opts))?.1)
}
