//! The benchmark's own network namespaces: a server namespace and a client namespace joined by
//! one veth pair, nothing else (no route out of them). Removed on drop.
//!
//! Kept minimal and private to the benchmark: names are prefixed `dbench-` and carry the process
//! id, so they never collide with the lab harness or another run.

use std::{
    fs::File,
    os::fd::AsRawFd,
    process::{Command, Stdio},
};

use anyhow::{bail, Context, Result};

/// Interface names inside the namespaces.
pub const SERVER_IF: &str = "bsrv";
pub const CLIENT_IF: &str = "bcli";
/// The server's global address on the link.
pub const SERVER_ADDR: &str = "2001:db8:1::1";

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// A server/client namespace pair; deleted on drop.
pub struct NetnsPair {
    pub server: String,
    pub client: String,
}

impl NetnsPair {
    /// Creates both namespaces, the veth pair, addresses (no DAD, so they are usable at once).
    pub fn create(tag: &str) -> Result<Self> {
        let pid = std::process::id();
        let pair = NetnsPair {
            server: format!("dbench-{tag}-s{pid}"),
            client: format!("dbench-{tag}-c{pid}"),
        };
        for ns in [&pair.server, &pair.client] {
            ip(&["netns", "add", ns])?;
            for sysctl in [
                "net.ipv6.conf.all.accept_dad=0",
                "net.ipv6.conf.default.accept_dad=0",
            ] {
                ip(&["netns", "exec", ns, "sysctl", "-qw", sysctl])?;
            }
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        ip(&[
            "-n",
            &pair.server,
            "link",
            "add",
            SERVER_IF,
            "address",
            "02:53:00:00:00:01",
            "type",
            "veth",
            "peer",
            "name",
            CLIENT_IF,
            "address",
            "02:c1:00:00:00:01",
            "netns",
            &pair.client,
        ])?;
        ip(&[
            "-n",
            &pair.server,
            "addr",
            "add",
            &format!("{SERVER_ADDR}/64"),
            "dev",
            SERVER_IF,
            "nodad",
        ])?;
        // A socket's UDP checksum is left to offload on veth (CHECKSUM_PARTIAL), so at the peer's
        // XDP hook it is not final yet and the fast path rightly refuses it. Real clients behind
        // a NIC send complete checksums: switch the offload off so ours do too.
        for (ns, dev) in [(&pair.client, CLIENT_IF), (&pair.server, SERVER_IF)] {
            in_netns(ns, || crate::lab::tx_checksum_offload_off(dev))??;
        }
        ip(&["-n", &pair.server, "link", "set", SERVER_IF, "up"])?;
        ip(&["-n", &pair.client, "link", "set", CLIENT_IF, "up"])?;
        // Link-local addresses appear once the link is up; wait (bounded) until both have one.
        for _ in 0..50 {
            if pair.link_local(&pair.server, SERVER_IF).is_ok()
                && pair.link_local(&pair.client, CLIENT_IF).is_ok()
            {
                return Ok(pair);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        bail!("the veth link-local addresses did not appear")
    }

    /// The link-local address of `iface` in namespace `ns`.
    pub fn link_local(&self, ns: &str, iface: &str) -> Result<std::net::Ipv6Addr> {
        let out = Command::new("ip")
            .args([
                "-n", ns, "-6", "-o", "addr", "show", "dev", iface, "scope", "link",
            ])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        for word in text.split_whitespace() {
            if let Some((addr, _)) = word.split_once('/') {
                if let Ok(a) = addr.parse::<std::net::Ipv6Addr>() {
                    if !text.contains("tentative") {
                        return Ok(a);
                    }
                }
            }
        }
        bail!("{iface} in {ns} has no usable link-local address yet")
    }

    /// A command run inside namespace `ns`.
    pub fn command(ns: &str, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, program]);
        cmd
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in [&self.client, &self.server] {
            let _ = ip(&["netns", "del", ns]);
        }
    }
}

/// Runs `f` with the calling thread inside namespace `ns`, then returns it to where it was.
/// Sockets and netlink operations made inside belong to `ns`.
pub fn in_netns<T>(ns: &str, f: impl FnOnce() -> T) -> Result<T> {
    let home = File::open("/proc/thread-self/ns/net").context("opening our network namespace")?;
    let target = File::open(format!("/run/netns/{ns}"))
        .with_context(|| format!("opening network namespace {ns}"))?;
    // SAFETY: setns on descriptors we hold open; only this thread moves.
    if unsafe { libc::setns(target.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns into {ns}: {}", std::io::Error::last_os_error());
    }
    let out = f();
    // SAFETY: as above, back to the namespace the thread came from.
    if unsafe { libc::setns(home.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns back from {ns}: {}", std::io::Error::last_os_error());
    }
    Ok(out)
}
