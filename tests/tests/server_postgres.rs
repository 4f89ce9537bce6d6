//! The server on a PostgreSQL lease store (a throwaway cluster, reached over its Unix socket
//! from the server's namespace): perfdhcp and dhclient are served, every grant is a row of
//! `lease6`, and a restart (also after kill -9) keeps the leases.

mod server_common;

use std::time::Duration;

use dhcp_pgtest::Cluster;
use server_common::{lab_config, LabServer};

/// Runs perfdhcp in the client namespace; returns (exit code, stdout + stderr).
fn perfdhcp(lab: &LabServer, args: &[&str]) -> (Option<i32>, String) {
    let out = lab
        .client_ns
        .command("timeout")
        .args(["60", "perfdhcp", "-6", "-l", &lab.link.b.ifname])
        .args(args)
        .output()
        .expect("running perfdhcp (kea-admin package)");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// The lab config with `[lease-database]` naming `dbname` on `cluster`.
fn postgres_config(cluster: &Cluster, dbname: &str) -> String {
    lab_config(
        &[],
        &format!(
            "\n[lease-database]\ntype = \"postgresql\"\nurl = \"{}\"\n",
            cluster.socket_url(dbname)
        ),
    )
}

/// Assigned NA leases in the database, and how many distinct addresses they hold.
fn assigned_rows(cluster: &Cluster, dbname: &str) -> (u64, u64) {
    let out = cluster
        .psql(
            dbname,
            "SELECT count(*), count(DISTINCT address) FROM lease6 \
             WHERE state = 0 AND lease_type = 0",
        )
        .unwrap();
    let mut parts = out.trim().split('|').map(|n| n.parse::<u64>().unwrap());
    (parts.next().unwrap(), parts.next().unwrap())
}

/// perfdhcp's four-way exchanges and renews are served from PostgreSQL; kill -9 and a restart
/// keep every lease, and dhclient is then served too.
#[test]
fn perfdhcp_on_postgresql_and_a_restart_keeps_the_leases() {
    let cluster = Cluster::start().expect("a throwaway PostgreSQL cluster");
    let dbname = cluster.create_database_named("server").unwrap();
    let mut lab = LabServer::start("pg-perfdhcp", &postgres_config(&cluster, &dbname));
    let (code, text) = perfdhcp(
        &lab,
        &[
            "-r", "200", "-R", "300", "-n", "600", "-f", "100", "-W", "2000000",
        ],
    );
    assert_eq!(code, Some(0), "perfdhcp did not run clean:\n{text}");
    let bindings = lab.bindings();
    let assigned = bindings.iter().filter(|b| b.state == "assigned").count() as u64;
    assert!(assigned > 0 && assigned <= 300, "{assigned} bindings");
    let (rows, distinct) = assigned_rows(&cluster, &dbname);
    assert_eq!(rows, distinct, "every address granted once");
    assert!(
        rows >= assigned,
        "every binding is a row: {rows} < {assigned}"
    );

    lab.kill9();
    lab.start_server();
    let after: Vec<String> = lab.bindings().into_iter().map(|b| b.lease).collect();
    let before: Vec<String> = bindings.into_iter().map(|b| b.lease).collect();
    assert_eq!(after, before, "the restarted server has the same bindings");

    let out = lab.dhclient("pg", &["-1", "-v"]);
    assert!(
        out.status.success(),
        "dhclient: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    lab.wait_until(
        Duration::from_secs(5),
        "the dhclient lease in lease6",
        || assigned_rows(&cluster, &dbname).0 == rows + 1,
    );
}
