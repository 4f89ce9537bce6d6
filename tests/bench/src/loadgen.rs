//! Our own DHCPv6 load generator: primes N bindings with 4-way exchanges (or takes them as given
//! when the bindings were pushed straight into the fast path), then blasts valid Renews from those
//! N clients over non-blocking UDP sockets (one per thread) with sendmmsg/recvmmsg, checks every Reply
//! (transaction id, client and server DUIDs, IA contents) and reports renewals answered per
//! second, drops, invalid replies and latency percentiles.
//!
//! Runs on the client side of a lab veth pair: the socket must be opened inside the client
//! namespace (see `dhcp_lab::Namespace::run_in`). Every loop is bounded in count and in time.

use std::{
    collections::BTreeMap,
    net::Ipv6Addr,
    os::fd::AsRawFd,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use dhcp_common::dhcpv6::*;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use dhcp_testwire::dhcpv6::{
    self as wire, elapsed, find, ia_na, ia_pd, msg, opt, options, oro, parse_ia,
};

pub use crate::bind::{bind_all, bind_all_threads, BindPlan, BindResult, Retransmit};

/// Datagrams sent or received per system call at most.
pub const BATCH: usize = 64;
/// The largest datagram read.
pub const MAX_PACKET: usize = 1500;

/// One simulated client and the binding it holds.
#[derive(Debug, Clone)]
pub struct Client {
    pub duid: Vec<u8>,
    pub na_iaid: u32,
    pub na: Option<Ipv6Addr>,
    pub pd_iaid: u32,
    pub pd: Option<(Ipv6Addr, u8)>,
}

/// The UDP socket of all simulated clients: bound to port 546, sending to ff02::1:2 on `iface`.
pub struct ClientSocket {
    socket: Socket,
    dest: SockAddr,
}

impl ClientSocket {
    /// Opens the socket in the calling thread's namespace.
    pub fn open(iface: &str) -> Result<Self> {
        ClientSocket::open_at(iface, None)
    }

    /// As `open`, bound to one link-local address of `iface` when `source` is given: replies
    /// to that address come to this socket only (a bound address beats `[::]` in the kernel's
    /// lookup), so several generator threads, each with its own address, never share replies.
    pub fn open_at(iface: &str, source: Option<Ipv6Addr>) -> Result<Self> {
        let ifindex = dhcp_user::fastpath::ifindex(iface)?;
        let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_only_v6(true)?;
        socket.set_reuse_address(true)?;
        let _ = socket.set_recv_buffer_size(32 << 20);
        let _ = socket.set_send_buffer_size(8 << 20);
        force_buffers(&socket);
        socket.set_multicast_if_v6(ifindex)?;
        socket.set_multicast_hops_v6(1)?;
        socket.set_nonblocking(true)?;
        let bind = match source {
            Some(address) => std::net::SocketAddrV6::new(address, CLIENT_PORT, 0, ifindex),
            None => std::net::SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, CLIENT_PORT, 0, 0),
        };
        socket
            .bind(&bind.into())
            .with_context(|| format!("binding the load generator to {bind}"))?;
        let dest =
            std::net::SocketAddrV6::new(ALL_RELAYS_AND_SERVERS.into(), SERVER_PORT, 0, ifindex);
        Ok(ClientSocket {
            socket,
            dest: dest.into(),
        })
    }

    /// Sends `packets` with as few sendmmsg calls as the socket takes (BATCH datagrams per
    /// call at most); returns how many left. The headers live on the stack: no allocation.
    pub fn send(&self, packets: &[&[u8]]) -> usize {
        let mut done = 0usize;
        for chunk in packets.chunks(BATCH) {
            // SAFETY: zeroed iovec and mmsghdr are valid empty ones; we fill the fields we use.
            let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
            let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
            for (k, p) in chunk.iter().enumerate() {
                iovs[k] = libc::iovec {
                    iov_base: p.as_ptr() as *mut libc::c_void,
                    iov_len: p.len(),
                };
                let h = &mut hdrs[k].msg_hdr;
                h.msg_name = self.dest.as_ptr() as *mut libc::c_void;
                h.msg_namelen = self.dest.len();
                h.msg_iov = &mut iovs[k] as *mut libc::iovec;
                h.msg_iovlen = 1;
            }
            let mut sent = 0usize;
            while sent < chunk.len() {
                // SAFETY: hdrs[sent..chunk.len()] point at iovecs and buffers that outlive the
                // call.
                let rc = unsafe {
                    libc::sendmmsg(
                        self.socket.as_raw_fd(),
                        hdrs[sent..].as_mut_ptr(),
                        (chunk.len() - sent) as u32,
                        libc::MSG_DONTWAIT,
                    )
                };
                if rc <= 0 {
                    return done + sent;
                }
                sent += rc as usize;
            }
            done += sent;
        }
        done
    }

    /// Receives up to BATCH datagrams (at most `bufs.len()`) without blocking; returns their
    /// lengths in `bufs` order. The headers live on the stack: no allocation.
    pub fn recv(&self, bufs: &mut [[u8; MAX_PACKET]], lens: &mut Vec<usize>) -> usize {
        lens.clear();
        // SAFETY: as in `send`.
        let mut iovs: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut hdrs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        let count = bufs.len().min(BATCH);
        for (k, b) in bufs[..count].iter_mut().enumerate() {
            iovs[k] = libc::iovec {
                iov_base: b.as_mut_ptr() as *mut libc::c_void,
                iov_len: MAX_PACKET,
            };
            hdrs[k].msg_hdr.msg_iov = &mut iovs[k] as *mut libc::iovec;
            hdrs[k].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: the first `count` headers point at buffers of MAX_PACKET bytes we own.
        let rc = unsafe {
            libc::recvmmsg(
                self.socket.as_raw_fd(),
                hdrs.as_mut_ptr(),
                count as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if rc <= 0 {
            return 0;
        }
        for h in &hdrs[..rc as usize] {
            lens.push(h.msg_len as usize);
        }
        rc as usize
    }

    /// Waits up to `timeout` for something to read.
    pub fn wait_readable(&self, timeout: Duration) {
        let mut pfd = libc::pollfd {
            fd: self.socket.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd we own.
        unsafe { libc::poll(&mut pfd, 1, timeout.as_millis().max(1) as i32) };
    }

    /// Reads and discards whatever arrives until `quiet` passes with nothing (at most `limit`).
    pub fn drain(&self, quiet: Duration, limit: Duration) -> u64 {
        let mut bufs = vec![[0u8; MAX_PACKET]; BATCH];
        let mut lens = Vec::new();
        let start = Instant::now();
        let mut last = Instant::now();
        let mut count = 0u64;
        while start.elapsed() < limit && last.elapsed() < quiet {
            let n = self.recv(&mut bufs, &mut lens);
            if n == 0 {
                self.wait_readable(Duration::from_millis(5));
            } else {
                count += n as u64;
                last = Instant::now();
            }
        }
        count
    }
}

fn force_buffers(socket: &Socket) {
    // As root, SO_*BUFFORCE lifts the per-namespace rmem_max/wmem_max caps.
    for (opt, size) in [
        (libc::SO_RCVBUFFORCE, 32 << 20),
        (libc::SO_SNDBUFFORCE, 8 << 20),
    ] {
        let v: libc::c_int = size;
        // SAFETY: setsockopt with an int we own.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                &v as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
    }
}

fn xid_of(packet: &[u8]) -> u32 {
    u32::from_be_bytes([0, packet[1], packet[2], packet[3]])
}

/// Outcome of priming.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PrimeResult {
    pub clients: usize,
    pub bound: usize,
    pub failed: usize,
    pub seconds: f64,
    pub exchanges_per_second: f64,
}

/// Runs Solicit/Advertise/Request/Reply for every client (IA_NA, and IA_PD when `with_pd`),
/// up to `window` exchanges in flight, 4 tries per step 1 s apart; fills in each client's binding
/// and returns the server DUID learned. Bounded by `deadline`.
pub fn prime(
    socket: &ClientSocket,
    clients: &mut [Client],
    with_pd: bool,
    window: usize,
    deadline: Duration,
) -> Result<(Vec<u8>, PrimeResult)> {
    let plan = BindPlan {
        with_pd,
        rapid_commit: false,
        window,
        timers: Retransmit::PRIME,
        deadline,
    };
    let (server_duid, result) = bind_all(socket, clients, &plan)?;
    let server_duid = server_duid.context("no client got a Reply: the server did not answer")?;
    Ok((
        server_duid,
        PrimeResult {
            clients: result.clients,
            bound: result.bound,
            failed: result.clients - result.bound,
            seconds: result.seconds,
            exchanges_per_second: result.bound as f64 / result.seconds.max(1e-9),
        },
    ))
}

/// One offered-rate step of Renews.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepResult {
    pub offered_per_second: f64,
    pub seconds: f64,
    pub sent: u64,
    pub sent_per_second: f64,
    pub valid_replies: u64,
    pub renewals_per_second: f64,
    pub drops: u64,
    pub drop_ratio: f64,
    pub invalid_replies: u64,
    pub invalid_reasons: BTreeMap<String, u64>,
    pub latency_p50_us: Option<f64>,
    pub latency_p99_us: Option<f64>,
    pub latency_max_us: Option<f64>,
}

/// The Renew each bound client sends (xid patched per send).
fn renew_templates(clients: &[Client], server_duid: &[u8]) -> Vec<Vec<u8>> {
    clients
        .iter()
        .map(|c| {
            let mut o = vec![
                opt(OPT_CLIENTID, &c.duid),
                opt(OPT_SERVERID, server_duid),
                elapsed(),
            ];
            if let Some(na) = c.na {
                o.push(ia_na(c.na_iaid, 0, 0, Some((na, 0, 0))));
            }
            if let Some((pd, len)) = c.pd {
                o.push(ia_pd(c.pd_iaid, 0, 0, Some((pd, len, 0, 0))));
            }
            o.push(oro(&[OPT_DNS_SERVERS]));
            msg(MSG_RENEW, 0, &o)
        })
        .collect()
}

/// Why a Reply to a Renew is not the right one, `None` when it is.
fn check_reply(p: &[u8], client: &Client, server_duid: &[u8]) -> Option<&'static str> {
    if p[0] != MSG_REPLY {
        return Some("not a Reply");
    }
    let Some(opts) = options(&p[4..]) else {
        return Some("malformed options");
    };
    if find(&opts, OPT_CLIENTID) != Some(&client.duid[..]) {
        return Some("wrong client DUID");
    }
    if find(&opts, OPT_SERVERID) != Some(server_duid) {
        return Some("wrong server DUID");
    }
    if let Some(status) = find(&opts, OPT_STATUS_CODE) {
        if status.len() >= 2 && u16::from_be_bytes([status[0], status[1]]) != STATUS_SUCCESS {
            return Some("status code not success");
        }
    }
    if let Some(na) = client.na {
        let Some(ia) = find(&opts, OPT_IA_NA).and_then(|b| parse_ia(b, false)) else {
            return Some("no IA_NA");
        };
        if ia.iaid != client.na_iaid || ia.status.is_some_and(|s| s != STATUS_SUCCESS) {
            return Some("IA_NA iaid or status");
        }
        if !ia.leases.iter().any(|l| l.0 == na && l.3 > 0) {
            return Some("IA_NA without the address renewed");
        }
    }
    if let Some((pd, len)) = client.pd {
        let Some(ia) = find(&opts, OPT_IA_PD).and_then(|b| parse_ia(b, true)) else {
            return Some("no IA_PD");
        };
        if ia.iaid != client.pd_iaid || ia.status.is_some_and(|s| s != STATUS_SUCCESS) {
            return Some("IA_PD iaid or status");
        }
        if !ia.leases.iter().any(|l| l.0 == pd && l.1 == len && l.3 > 0) {
            return Some("IA_PD without the prefix renewed");
        }
    }
    None
}

/// One client's Renew sent again and again, for polling a server that is starting.
pub struct RenewPoll<'a> {
    client: &'a Client,
    server_duid: &'a [u8],
    template: Vec<u8>,
    xid: u32,
    bufs: Vec<[u8; MAX_PACKET]>,
    lens: Vec<usize>,
}

impl<'a> RenewPoll<'a> {
    pub fn new(client: &'a Client, server_duid: &'a [u8]) -> Self {
        RenewPoll {
            client,
            server_duid,
            template: renew_templates(std::slice::from_ref(client), server_duid)
                .pop()
                .expect("one template per client"),
            xid: 0,
            bufs: vec![[0u8; MAX_PACKET]; BATCH],
            lens: Vec::new(),
        }
    }

    /// Sends the Renew once more (a new transaction id) and waits up to `wait` for answers;
    /// true when a valid Reply to one of its Renews came back.
    pub fn renew_answered(&mut self, socket: &ClientSocket, wait: Duration) -> bool {
        self.xid = (self.xid + 1) & 0xff_ffff;
        let xid = self.xid.to_be_bytes();
        self.template[1..4].copy_from_slice(&xid[1..4]);
        socket.send(&[self.template.as_slice()]);
        socket.wait_readable(wait);
        let mut answered = false;
        while socket.recv(&mut self.bufs, &mut self.lens) > 0 {
            for (buf, &len) in self.bufs.iter().zip(self.lens.iter()) {
                let p = &buf[..len];
                answered |= p.len() >= 4
                    && xid_of(p) <= self.xid
                    && check_reply(p, self.client, self.server_duid).is_none();
            }
        }
        answered
    }
}

/// One rate step of Renews.
#[derive(Debug, Clone, Copy)]
pub struct StepPlan {
    /// Renews offered per second (all threads together).
    pub rate: f64,
    /// How long Renews are sent.
    pub duration: Duration,
    /// How long late replies are awaited after the last send.
    pub drain: Duration,
    /// Varies the xids between steps so a straggler of an earlier step never matches.
    pub round: u32,
}

/// Sends Renews round-robin from `clients` as `plan` says, checking every Reply.
///
/// With several sockets, one thread each: the clients are dealt round-robin to the sockets and
/// each thread offers its share of `rate`. One thread cannot send, answer and read back more
/// than about 150 000 Renews/s on this machine; the kernel work a Renew causes on a veth (the
/// XDP answer included) runs on the sending thread's core.
pub fn renew_step(
    sockets: &[ClientSocket],
    clients: &[Client],
    server_duid: &[u8],
    plan: StepPlan,
) -> Result<StepResult> {
    if sockets.is_empty() {
        bail!("renew_step needs at least one client socket");
    }
    let threads = sockets.len().min(clients.len()).max(1);
    if threads == 1 {
        let raw = renew_run(&sockets[0], clients, server_duid, plan)?;
        return Ok(summarize(plan.rate, plan.duration, vec![raw]));
    }
    let share_plan = StepPlan {
        rate: plan.rate / threads as f64,
        ..plan
    };
    let shares: Vec<Vec<Client>> = (0..threads)
        .map(|t| clients.iter().skip(t).step_by(threads).cloned().collect())
        .collect();
    let raws = std::thread::scope(|scope| {
        let handles: Vec<_> = sockets
            .iter()
            .zip(&shares)
            .map(|(socket, share)| {
                scope.spawn(move || renew_run(socket, share, server_duid, share_plan))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a generator thread panicked")))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    Ok(summarize(plan.rate, plan.duration, raws))
}

/// What one generator thread saw in a step, before percentiles.
struct RawStep {
    sent: u64,
    valid: u64,
    latencies_ns: Vec<u64>,
    invalid: BTreeMap<String, u64>,
}

/// Sums the threads' counts and takes percentiles over all their latencies.
fn summarize(rate: f64, duration: Duration, raws: Vec<RawStep>) -> StepResult {
    let mut sent = 0u64;
    let mut valid = 0u64;
    let mut latencies: Vec<u64> = Vec::new();
    let mut invalid: BTreeMap<String, u64> = BTreeMap::new();
    for raw in raws {
        sent += raw.sent;
        valid += raw.valid;
        latencies.extend(raw.latencies_ns);
        for (reason, count) in raw.invalid {
            *invalid.entry(reason).or_default() += count;
        }
    }
    let seconds = duration.as_secs_f64();
    latencies.sort_unstable();
    let pct = |q: f64| -> Option<f64> {
        if latencies.is_empty() {
            None
        } else {
            let i = ((latencies.len() - 1) as f64 * q).round() as usize;
            Some(latencies[i] as f64 / 1000.0)
        }
    };
    let invalid_count = invalid.values().sum();
    StepResult {
        offered_per_second: rate,
        seconds,
        sent,
        sent_per_second: sent as f64 / seconds,
        valid_replies: valid,
        renewals_per_second: valid as f64 / seconds,
        drops: sent.saturating_sub(valid),
        drop_ratio: if sent == 0 {
            0.0
        } else {
            sent.saturating_sub(valid) as f64 / sent as f64
        },
        invalid_replies: invalid_count,
        invalid_reasons: invalid,
        latency_p50_us: pct(0.50),
        latency_p99_us: pct(0.99),
        latency_max_us: pct(1.0),
    }
}

/// The sending and checking loop of one generator thread (see `renew_step`).
fn renew_run(
    socket: &ClientSocket,
    clients: &[Client],
    server_duid: &[u8],
    plan: StepPlan,
) -> Result<RawStep> {
    let StepPlan {
        rate,
        duration,
        drain,
        round: step,
    } = plan;
    if clients.is_empty() {
        bail!("no bound clients to renew");
    }
    let mut templates = renew_templates(clients, server_duid);
    let max_sends = ((rate * duration.as_secs_f64()) as usize + BATCH).min((1 << 24) - 1);
    let offset = step.wrapping_mul(0x40_0000) & 0xff_ffff;
    // Send time per sequence number (ns since start); u64::MAX once answered.
    let mut sent_ns: Vec<u64> = Vec::with_capacity(max_sends);
    let mut latencies: Vec<u64> = Vec::with_capacity(max_sends);
    let mut invalid: BTreeMap<String, u64> = BTreeMap::new();
    let mut valid = 0u64;
    let mut bufs = vec![[0u8; MAX_PACKET]; BATCH];
    let mut lens = Vec::new();
    let n = clients.len();
    let start = Instant::now();
    let mut sending_done_at: Option<Instant> = None;
    let mut last_reply = Instant::now();
    loop {
        let now = start.elapsed();
        if sending_done_at.is_none() {
            if now >= duration || sent_ns.len() >= max_sends {
                sending_done_at = Some(Instant::now());
            } else {
                let due = ((rate * now.as_secs_f64()) as usize)
                    .min(max_sends)
                    .saturating_sub(sent_ns.len());
                if due > 0 {
                    let count = due.min(BATCH);
                    let first = sent_ns.len();
                    let mut idx = Vec::with_capacity(count);
                    for k in 0..count {
                        let seq = first + k;
                        let c = seq % n;
                        let xid = ((seq as u32).wrapping_add(offset) & 0xff_ffff).to_be_bytes();
                        templates[c][1..4].copy_from_slice(&xid[1..4]);
                        idx.push(c);
                    }
                    // Clients repeat within a batch only when n < BATCH; patch-then-send keeps
                    // each datagram's xid right because send copies before the next patch.
                    let at = start.elapsed().as_nanos() as u64;
                    let sent = if n >= BATCH {
                        let refs: Vec<&[u8]> =
                            idx.iter().map(|&c| templates[c].as_slice()).collect();
                        socket.send(&refs)
                    } else {
                        let mut ok = 0;
                        for (k, &c) in idx.iter().enumerate() {
                            let xid = (((first + k) as u32).wrapping_add(offset) & 0xff_ffff)
                                .to_be_bytes();
                            templates[c][1..4].copy_from_slice(&xid[1..4]);
                            if socket.send(&[templates[c].as_slice()]) == 1 {
                                ok += 1;
                            } else {
                                break;
                            }
                        }
                        ok
                    };
                    for _ in 0..sent {
                        sent_ns.push(at);
                    }
                }
            }
        } else if sending_done_at.is_some_and(|t| t.elapsed() >= drain)
            || (valid as usize == sent_ns.len() && last_reply.elapsed() > Duration::from_millis(50))
        {
            break;
        }
        let got = socket.recv(&mut bufs, &mut lens);
        if got == 0 {
            if sending_done_at.is_some() {
                socket.wait_readable(Duration::from_millis(5));
            }
            continue;
        }
        let at = start.elapsed().as_nanos() as u64;
        last_reply = Instant::now();
        for (buf, &len) in bufs.iter().zip(lens.iter()) {
            let p = &buf[..len];
            if p.len() < 4 {
                *invalid.entry("short".into()).or_default() += 1;
                continue;
            }
            let seq = (xid_of(p).wrapping_sub(offset) & 0xff_ffff) as usize;
            if seq >= sent_ns.len() {
                *invalid.entry("unknown transaction id".into()).or_default() += 1;
                continue;
            }
            if sent_ns[seq] == u64::MAX {
                *invalid.entry("duplicate reply".into()).or_default() += 1;
                continue;
            }
            match check_reply(p, &clients[seq % n], server_duid) {
                None => {
                    valid += 1;
                    latencies.push(at.saturating_sub(sent_ns[seq]));
                    sent_ns[seq] = u64::MAX;
                }
                Some(reason) => *invalid.entry(reason.into()).or_default() += 1,
            }
        }
    }
    Ok(RawStep {
        sent: sent_ns.len() as u64,
        valid,
        latencies_ns: latencies,
        invalid,
    })
}

/// Steps the offered rate up through `rates` until drops reach 1 % or the generator cannot
/// send the rate; returns every step and the index of the knee (best rate under 1 % drops).
pub fn find_knee(
    sockets: &[ClientSocket],
    clients: &[Client],
    server_duid: &[u8],
    rates: &[f64],
    duration: Duration,
    mut progress: impl FnMut(&StepResult),
) -> Result<(Vec<StepResult>, Option<usize>)> {
    let mut steps = Vec::new();
    let mut knee: Option<usize> = None;
    let mut round = 0u32;
    for &rate in rates {
        // A step that drops gets a second try (a stall of this shared VM can spoil one); the
        // series ends when both tries drop, or when the generator itself falls behind.
        let mut go_on = false;
        for _attempt in 0..2 {
            round += 1;
            for socket in sockets {
                socket.drain(Duration::from_millis(100), Duration::from_secs(1));
            }
            let step = renew_step(
                sockets,
                clients,
                server_duid,
                StepPlan {
                    rate,
                    duration,
                    drain: Duration::from_millis(500),
                    round,
                },
            )?;
            progress(&step);
            let ok = step.drop_ratio < 0.01 && step.invalid_replies == 0;
            let generator_limited = step.sent_per_second < 0.9 * rate;
            // A wrong reply is a fault, not noise: no second try.
            let invalid = step.invalid_replies != 0;
            steps.push(step);
            if ok {
                knee = Some(steps.len() - 1);
            }
            if ok || generator_limited || invalid {
                go_on = ok && !generator_limited;
                break;
            }
        }
        if !go_on {
            break;
        }
    }
    Ok((steps, knee))
}

/// Clients `0..n` with the benchmark's DUIDs and IAIDs, bindings unknown yet.
pub fn new_clients(n: u32, na_iaid: u32, pd_iaid: u32) -> Vec<Client> {
    clients_from(0, n, na_iaid, pd_iaid)
}

/// Clients `first..first + n` (DUID `client_duid(i)`), bindings unknown yet.
pub fn clients_from(first: u32, n: u32, na_iaid: u32, pd_iaid: u32) -> Vec<Client> {
    (first..first.saturating_add(n))
        .map(|i| Client {
            duid: wire::client_duid(i).to_vec(),
            na_iaid,
            na: None,
            pd_iaid,
            pd: None,
        })
        .collect()
}
