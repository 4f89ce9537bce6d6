//! systemd's readiness protocol (`sd_notify`, `Type=notify`): one datagram of `KEY=VALUE`
//! lines to the Unix socket named by `$NOTIFY_SOCKET` (a path, or `@name` in the abstract
//! namespace). Without the variable (not started by systemd) every call does nothing.
//!
//! `serve` sends `READY=1` once its sockets are open and the fast path is attached,
//! `RELOADING=1` (with `MONOTONIC_USEC`, as `Type=notify-reload` wants) when a reload starts and
//! `READY=1` when it is over, and `STOPPING=1` when it stops.

use std::os::unix::net::UnixDatagram;

/// The environment variable naming the socket.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Sends `state` (newline-separated `KEY=VALUE` assignments) to `$NOTIFY_SOCKET`; `Ok(false)`
/// when there is no such socket to tell.
pub fn notify(state: &str) -> std::io::Result<bool> {
    let Some(target) = std::env::var_os(NOTIFY_SOCKET) else {
        return Ok(false);
    };
    notify_to(&target.to_string_lossy(), state)?;
    Ok(true)
}

/// Sends `state` to the notify socket `target` (a path, or `@name`).
pub fn notify_to(target: &str, state: &str) -> std::io::Result<()> {
    let socket = UnixDatagram::unbound()?;
    if let Some(name) = target.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        socket.send_to_addr(state.as_bytes(), &address)?;
    } else {
        socket.send_to(state.as_bytes(), target)?;
    }
    Ok(())
}

/// Tells systemd, logging (not failing) when that does not work: readiness is advisory.
fn tell(state: &str) {
    if let Err(err) = notify(state) {
        tracing::warn!(error = %err, state, "telling systemd ({NOTIFY_SOCKET}) failed");
    }
}

/// `READY=1`, with a status line.
pub fn ready(status: &str) {
    tell(&format!("READY=1\nSTATUS={status}"));
}

/// `RELOADING=1` with the monotonic clock's time, as systemd wants it.
pub fn reloading() {
    tell(&format!(
        "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading the configuration",
        monotonic_usec()
    ));
}

/// `STOPPING=1`.
pub fn stopping() {
    tell("STOPPING=1\nSTATUS=stopping");
}

/// CLOCK_MONOTONIC in microseconds.
fn monotonic_usec() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec, which `now` is.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0 {
        return 0;
    }
    (now.tv_sec as u64) * 1_000_000 + (now.tv_nsec as u64) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A notification reaches the notify socket, whole, as one datagram; so does one to a
    /// socket in the abstract namespace (`@name`).
    #[test]
    fn a_notification_reaches_the_notify_socket() {
        let dir = std::env::temp_dir().join(format!("dhcp-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        notify_to(path.to_str().unwrap(), "READY=1\nSTATUS=x").unwrap();
        let mut buf = [0u8; 256];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=x");
        let _ = std::fs::remove_dir_all(&dir);

        use std::os::linux::net::SocketAddrExt;
        let name = format!("dhcp-notify-test-{}", std::process::id());
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let abstract_listener = UnixDatagram::bind_addr(&address).unwrap();
        notify_to(&format!("@{name}"), "RELOADING=1").unwrap();
        let n = abstract_listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"RELOADING=1");
    }
}
