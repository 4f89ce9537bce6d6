//! A throwaway PostgreSQL cluster: `initdb` in a temporary directory, a server of its own on a
//! free port of 127.0.0.1 (and a Unix socket in that directory), stopped and deleted on drop.
//!
//! ```no_run
//! let cluster = dhcp_pgtest::Cluster::start()?;
//! let url = cluster.create_database("leases")?; // "host=127.0.0.1 port=… user=postgres dbname=leases"
//! # Ok::<(), dhcp_pgtest::ClusterError>(())
//! ```
//!
//! The binaries come from Debian's `postgresql-15` (`/usr/lib/postgresql/<major>/bin`, the
//! newest found; `cargo xtask test` installs the package). `initdb` refuses to run as root, so
//! as root the cluster is made and run as the `postgres` user (through `runuser`), with
//! `--auth=trust`: only this machine's loopback reaches it. Durability settings stay at
//! PostgreSQL's defaults (`fsync` and `synchronous_commit` on): tests measure the real thing.
//!
//! [`Cluster::shared`] is one cluster per test process, started on first use and stopped when
//! the process exits (an `atexit` handler); [`Cluster::start`] is one for the caller alone.
//!
//! [`Cluster::start_tls`] makes one that speaks TLS (`ssl = on`, the caller's certificate and
//! key) and takes TCP connections only over it (`hostssl` in `pg_hba.conf`, no `host` line).

use std::fs;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The superuser of every cluster made here.
pub const SUPERUSER: &str = "postgres";
/// How long the server may take to accept connections after `pg_ctl start`.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Where Debian installs each PostgreSQL major version (`<major>/bin/initdb`).
const DEBIAN_PG_ROOT: &str = "/usr/lib/postgresql";
/// Port attempts before giving up (another process may take the free port we found).
const PORT_ATTEMPTS: u32 = 5;

/// Why a cluster could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No PostgreSQL server binaries were found.
    #[error(
        "no PostgreSQL server binaries (initdb, pg_ctl) under {DEBIAN_PG_ROOT}/*/bin or on PATH: \
         install Debian's postgresql-15 (cargo xtask test does)"
    )]
    NotInstalled,
    /// A command failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Exit status and output.
        detail: String,
    },
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server did not accept connections in time.
    #[error("PostgreSQL did not accept connections on 127.0.0.1:{port} within {START_TIMEOUT:?}; log:\n{log}")]
    StartTimeout {
        /// The port.
        port: u16,
        /// The server log's tail.
        log: String,
    },
}

/// The server side of a TLS cluster ([`Cluster::start_tls`]).
#[derive(Debug, Clone)]
pub struct Tls {
    /// The server's certificate chain, PEM, end entity first.
    pub certificate_pem: String,
    /// Its private key, PEM.
    pub private_key_pem: String,
}

/// Files of a TLS cluster, in the cluster directory.
const TLS_CERT_FILE: &str = "server.crt";
const TLS_KEY_FILE: &str = "server.key";

/// A running throwaway cluster; stopped (immediate shutdown) and deleted on drop.
#[derive(Debug)]
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
    tls: bool,
    databases: AtomicU32,
}

impl Cluster {
    /// Makes and starts a new cluster.
    pub fn start() -> Result<Cluster, ClusterError> {
        Cluster::start_with(None)
    }

    /// Makes and starts a new cluster with TLS on: `tls` is its certificate and key, and TCP
    /// clients must use TLS (a plain one is refused by `pg_hba.conf`).
    pub fn start_tls(tls: &Tls) -> Result<Cluster, ClusterError> {
        Cluster::start_with(Some(tls))
    }

    fn start_with(tls: Option<&Tls>) -> Result<Cluster, ClusterError> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let bin = find_bin_dir().ok_or(ClusterError::NotInstalled)?;
        // SAFETY: geteuid has no preconditions.
        let as_postgres = unsafe { libc::geteuid() } == 0;
        let dir = std::env::temp_dir().join(format!(
            "dhcp-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("data"))
            .map_err(io_err(format!("creating {}", dir.display())))?;
        if let Some(tls) = tls {
            // PostgreSQL refuses a key file others may read.
            write_private(&dir.join(TLS_CERT_FILE), &tls.certificate_pem)?;
            write_private(&dir.join(TLS_KEY_FILE), &tls.private_key_pem)?;
        }
        let mut cluster = Cluster {
            dir,
            bin,
            port: 0,
            as_postgres,
            tls: tls.is_some(),
            databases: AtomicU32::new(0),
        };
        if as_postgres {
            cluster.chown_to_postgres()?;
        }
        cluster.run(
            "initdb",
            &[
                "-D",
                &cluster.data_dir(),
                "--auth=trust",
                "--username",
                SUPERUSER,
                "--encoding=UTF8",
                "--locale=C",
                "--no-instructions",
                // Only initdb's own final flush: the running server keeps fsync on.
                "--no-sync",
            ],
        )?;
        if cluster.tls {
            // TCP only over TLS; the Unix socket (in the cluster directory) stays open.
            let hba = Path::new(&cluster.data_dir()).join("pg_hba.conf");
            fs::write(
                &hba,
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            )
            .map_err(io_err(format!("writing {}", hba.display())))?;
        }
        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            cluster.port = free_port()?;
            match cluster.start_server() {
                Ok(()) => return Ok(cluster),
                Err(err) => last_err = Some(err),
            }
        }
        Err(last_err.expect("at least one attempt"))
    }

    /// The cluster of this test process, started on first use, stopped at process exit.
    pub fn shared() -> Result<&'static Cluster, String> {
        static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| {
                let cluster = Cluster::start().map_err(|err| err.to_string())?;
                *SHARED_AT_EXIT.lock().unwrap_or_else(|e| e.into_inner()) = Some((
                    cluster.bin.clone(),
                    cluster.dir.clone(),
                    cluster.as_postgres,
                ));
                // SAFETY: registers a plain extern "C" function without arguments.
                unsafe { libc::atexit(stop_shared_at_exit) };
                Ok(cluster)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The data directory.
    pub fn data_dir(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// A keyword/value connection string for `dbname` as the superuser over TCP.
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user={SUPERUSER} dbname={dbname}",
            self.port
        )
    }

    /// A connection string for `dbname` over the cluster's Unix socket: reachable from inside a
    /// network namespace too (its loopback is not the host's; the socket is a file).
    pub fn socket_url(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user={SUPERUSER} dbname={dbname}",
            self.dir.display(),
            self.port
        )
    }

    /// Creates a new empty database named after `prefix` (made unique) and returns its name.
    pub fn create_database_named(&self, prefix: &str) -> Result<String, ClusterError> {
        let url = self.create_database(prefix)?;
        Ok(url.rsplit('=').next().unwrap_or_default().to_owned())
    }

    /// Creates a new empty database named after `prefix` (made unique) and returns its URL.
    pub fn create_database(&self, prefix: &str) -> Result<String, ClusterError> {
        let name = format!(
            "{}_{}",
            prefix
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                })
                .collect::<String>(),
            self.databases.fetch_add(1, Ordering::Relaxed)
        );
        self.psql("postgres", &format!("CREATE DATABASE {name}"))?;
        Ok(self.url(&name))
    }

    /// Runs SQL through `psql` on `dbname` (stops at the first error); returns its output
    /// (unaligned, tuples only).
    pub fn psql(&self, dbname: &str, sql: &str) -> Result<String, ClusterError> {
        let port = self.port.to_string();
        let out = self.run(
            "psql",
            &[
                "-X",
                "-q",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-U",
                SUPERUSER,
                "-d",
                dbname,
                "-c",
                sql,
            ],
        )?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The directory of the PostgreSQL binaries used (for tools such as `kea-admin`, `psql`).
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    fn start_server(&self) -> Result<(), ClusterError> {
        let mut options = format!(
            "-c listen_addresses=127.0.0.1 -c port={} -c unix_socket_directories={} \
             -c max_connections=200",
            self.port,
            self.dir.display()
        );
        if self.tls {
            options.push_str(&format!(
                " -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                self.dir.join(TLS_CERT_FILE).display(),
                self.dir.join(TLS_KEY_FILE).display()
            ));
        }
        let log = self.dir.join("server.log").display().to_string();
        // pg_ctl -w would wait, but on the Unix socket; we wait on TCP ourselves.
        self.run(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-l",
                &log,
                "-o",
                &options,
                "-W",
                "start",
            ],
        )?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).is_ok()
                && self.psql("postgres", "SELECT 1").is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
                let _ = stop(&self.bin, &self.dir, self.as_postgres);
                return Err(ClusterError::StartTimeout {
                    port: self.port,
                    log: tail(&log, 20),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn chown_to_postgres(&self) -> Result<(), ClusterError> {
        let out = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&self.dir)
            .output()
            .map_err(io_err("running chown"))?;
        check("chown -R postgres:postgres", out).map(drop)
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<Output, ClusterError> {
        run_tool(&self.bin, self.as_postgres, tool, args)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = stop(&self.bin, &self.dir, self.as_postgres);
    }
}

/// What the at-exit handler of [`Cluster::shared`] stops: bin dir, cluster dir, as postgres.
static SHARED_AT_EXIT: Mutex<Option<(PathBuf, PathBuf, bool)>> = Mutex::new(None);

extern "C" fn stop_shared_at_exit() {
    if let Ok(mut guard) = SHARED_AT_EXIT.lock() {
        if let Some((bin, dir, as_postgres)) = guard.take() {
            let _ = stop(&bin, &dir, as_postgres);
        }
    }
}

/// Stops the server (immediate: a throwaway cluster needs no checkpoint) and deletes `dir`.
fn stop(bin: &Path, dir: &Path, as_postgres: bool) -> Result<(), ClusterError> {
    let data = dir.join("data").display().to_string();
    let result = run_tool(
        bin,
        as_postgres,
        "pg_ctl",
        &["-D", &data, "-m", "immediate", "-w", "stop"],
    );
    let _ = fs::remove_dir_all(dir);
    result.map(drop)
}

fn run_tool(
    bin: &Path,
    as_postgres: bool,
    tool: &str,
    args: &[&str],
) -> Result<Output, ClusterError> {
    let program = bin.join(tool);
    let mut command = if as_postgres {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(&program);
        command
    } else {
        Command::new(&program)
    };
    command.args(args).stdin(Stdio::null());
    // The server inherits no pipe of ours: pg_ctl's child must not hold our stdout open.
    if tool == "pg_ctl" {
        command.stdout(Stdio::null()).stderr(Stdio::piped());
    }
    let line = format!("{} {}", program.display(), args.join(" "));
    let out = command
        .current_dir("/")
        .output()
        .map_err(io_err(format!("running {line}")))?;
    check(&line, out)
}

fn check(line: &str, out: Output) -> Result<Output, ClusterError> {
    if out.status.success() {
        return Ok(out);
    }
    Err(ClusterError::Command {
        command: line.to_owned(),
        detail: format!(
            "{}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ),
    })
}

/// The newest `/usr/lib/postgresql/<major>/bin` with initdb, else the directory of `initdb` on PATH.
fn find_bin_dir() -> Option<PathBuf> {
    let mut majors: Vec<(u32, PathBuf)> = fs::read_dir(DEBIAN_PG_ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let major = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    majors.sort();
    if let Some((_, bin)) = majors.pop() {
        return Some(bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
}

/// Writes `text` to a new file only its owner may read.
fn write_private(path: &Path, text: &str) -> Result<(), ClusterError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(io_err(format!("writing {}", path.display())))
}

fn free_port() -> Result<u16, ClusterError> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(io_err("finding a free port"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(io_err("finding a free port"))
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ClusterError {
    let what = what.into();
    move |source| ClusterError::Io { what, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cluster starts, answers SQL with durability on, and is gone after drop.
    #[test]
    fn a_cluster_starts_answers_and_is_removed() {
        let cluster = Cluster::start().expect("start a cluster");
        let url = cluster.create_database("probe").expect("create database");
        assert!(url.contains(&format!("port={}", cluster.port())));
        let dbname = url.rsplit('=').next().unwrap();
        assert_eq!(
            cluster
                .psql(dbname, "SHOW synchronous_commit")
                .unwrap()
                .trim(),
            "on"
        );
        assert_eq!(cluster.psql(dbname, "SHOW fsync").unwrap().trim(), "on");
        let dir = cluster.dir.clone();
        let port = cluster.port();
        drop(cluster);
        assert!(!dir.exists(), "the cluster directory is deleted");
        assert!(
            TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err(),
            "the server is stopped"
        );
    }
}
