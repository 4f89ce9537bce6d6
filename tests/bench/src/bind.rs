//! The binding generator (`bind_all`): N clients Solicit, take an Advertise, Request and take a
//! Reply (or Solicit with Rapid Commit and take the Reply) as RFC 8415 clients do, every answer
//! checked, retransmitting on RFC 8415's timers. One thread per client socket, each owning a
//! contiguous share of the clients and its own window; the replies to a thread's messages come
//! back to its socket because each socket has a source address of its own (see
//! `e2e::LabNet::generator_sockets`).
//!
//! The per-packet work is kept small so that the generator is not what a run measures: messages
//! are encoded straight into one reusable buffer and sent with sendmmsg in batches, replies are
//! read with recvmmsg and checked by walking their options in place (no allocation per packet),
//! the clients' state sits in one array, and the timers in one heap.

use std::{
    cmp::Reverse,
    collections::{BTreeMap, BinaryHeap},
    net::Ipv6Addr,
    time::{Duration, Instant},
};

use anyhow::{bail, Result};
use dhcp_common::dhcpv6::*;

use crate::loadgen::{Client, ClientSocket, BATCH, MAX_PACKET};

/// A client's retransmission timers (RFC 8415 section 15, shortened: the RFC's SOL_TIMEOUT and
/// REQ_TIMEOUT are 1 s, SOL_MAX_RT 3600 s, REQ_MAX_RT 30 s, REQ_MAX_RC 10).
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Retransmit {
    /// The first timeout (IRT) of a Solicit or a Request.
    pub initial: Duration,
    /// The cap on the timeout (MRT); each retransmission doubles it up to this.
    pub max: Duration,
    /// Transmissions of one Solicit before the client gives up (MRC; 0: until the deadline).
    pub solicit_tries: u8,
    /// Transmissions of one Request before the client gives up on it (REQ_MAX_RC) and starts
    /// over with a Solicit; when `restart` is false it gives up for good.
    pub request_tries: u8,
    /// Start over with a Solicit after the last Request (RFC 8415 18.2.2), not give up.
    pub restart: bool,
    /// Each timeout is RT +- this fraction (RFC 8415: RAND in -0.1..+0.1), from the client's
    /// index so that runs repeat.
    pub jitter: f64,
}

impl Retransmit {
    /// Priming: 1 s between tries, 4 tries per step, no start over.
    pub const PRIME: Retransmit = Retransmit {
        initial: Duration::from_millis(1000),
        max: Duration::from_millis(1000),
        solicit_tries: 4,
        request_tries: 4,
        restart: false,
        jitter: 0.0,
    };
    /// The avalanche's clients: RFC 8415's rules and timers (SOL_TIMEOUT and REQ_TIMEOUT 1 s,
    /// REQ_MAX_RT 30 s, REQ_MAX_RC 10, then the client starts over with a Solicit; Solicit
    /// retransmitted until the deadline), RAND +- 0.1, with SOL_MAX_RT cut from 3600 s to
    /// REQ_MAX_RT's 30 s (no run lasts long enough to tell) and no random delay before the
    /// first Solicit (SOL_MAX_DELAY: the generator's window spreads the starts). Timers cut
    /// tenfold (IRT 100 ms) were tried: a server that answers everything but queues more than
    /// 100 ms then gets every message twice, a load no real client would add.
    pub const AVALANCHE: Retransmit = Retransmit {
        initial: Duration::from_millis(1000),
        max: Duration::from_millis(30_000),
        solicit_tries: 0,
        request_tries: 10,
        restart: true,
        jitter: 0.1,
    };

    /// The timeout after the `tries`-th transmission (1-based) of client `index`.
    pub fn timeout(&self, tries: u8, index: usize) -> Duration {
        let doubled = self
            .initial
            .saturating_mul(1u32 << u32::from(tries.saturating_sub(1)).min(16));
        let rt = doubled.min(self.max);
        // A fixed spread per client and try in -1..1, as RAND would give.
        let h = (index as u64 ^ (u64::from(tries) << 40)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let spread = (h >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
        rt.mul_f64((1.0 + self.jitter * spread).max(0.0))
    }
}

/// How `bind_all` runs.
#[derive(Debug, Clone, Copy)]
pub struct BindPlan {
    /// Ask for a prefix (IA_PD) besides the address.
    pub with_pd: bool,
    /// Solicit with Rapid Commit: a Reply at once (an Advertise is still followed up).
    pub rapid_commit: bool,
    /// Clients in an exchange at once, per generator thread (socket); the next client starts
    /// when one finishes.
    pub window: usize,
    /// The clients' retransmission timers.
    pub timers: Retransmit,
    /// The whole run stops here, bound or not.
    pub deadline: Duration,
}

/// What `bind_all` saw: time until every client was bound, what was sent, what came back.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BindResult {
    pub clients: usize,
    pub bound: usize,
    /// Generator threads (one client socket each) that ran the clients.
    pub threads: usize,
    /// Seconds from the first Solicit until the last client was bound (or the run stopped).
    pub seconds: f64,
    /// `seconds` when every client got bound, else `None`.
    pub seconds_to_all_bound: Option<f64>,
    pub bindings_per_second: f64,
    pub solicits_sent: u64,
    pub requests_sent: u64,
    /// Messages the socket did not take (its buffer full); each is retransmitted on its timer
    /// like a lost one, and counted here as well as in `retransmissions`.
    pub unsent: u64,
    /// Transmissions beyond each exchange's first: a message or its answer was lost or late.
    pub retransmissions: u64,
    /// Requests given up after the last try, the client starting over with a Solicit.
    pub restarts: u64,
    /// Clients that gave up (tries exhausted without start over) or were unbound at the end.
    pub failed: usize,
    /// Advertises answered to a Solicit with Rapid Commit (the client then sends a Request).
    pub advertise_despite_rapid_commit: u64,
    /// Known clients (a binding given on input) bound to another address or prefix than
    /// before; counted, and the client counts as bound.
    pub bound_elsewhere: u64,
    /// Replies that were not the answer expected, by reason (late duplicates of an exchange
    /// already done are counted apart, as `late_or_duplicate`).
    pub invalid_replies: u64,
    pub invalid_reasons: BTreeMap<String, u64>,
    pub late_or_duplicate: u64,
    /// Time from a client's first Solicit to its binding.
    pub bind_p50_ms: Option<f64>,
    pub bind_p99_ms: Option<f64>,
    pub bind_max_ms: Option<f64>,
}

/// The options of a message (or of an IA) walked in place: `Err` once one overruns the body.
struct OptionWalk<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for OptionWalk<'a> {
    type Item = Result<(u16, &'a [u8]), ()>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        if self.rest.len() < 4 {
            self.rest = &[];
            return Some(Err(()));
        }
        let code = u16::from_be_bytes([self.rest[0], self.rest[1]]);
        let len = u16::from_be_bytes([self.rest[2], self.rest[3]]) as usize;
        let body = &self.rest[4..];
        if body.len() < len {
            self.rest = &[];
            return Some(Err(()));
        }
        self.rest = &body[len..];
        Some(Ok((code, &body[..len])))
    }
}

fn walk(body: &[u8]) -> OptionWalk<'_> {
    OptionWalk { rest: body }
}

/// What an IA_NA or IA_PD in an answer says: its IAID, its status (the last one, as
/// `dhcp_testwire::dhcpv6::parse_ia` reads it) and its first lease with a valid lifetime.
struct IaSummary {
    iaid: u32,
    status: Option<u16>,
    lease: Option<(Ipv6Addr, u8)>,
}

fn ia_summary(body: &[u8], pd: bool) -> Option<IaSummary> {
    if body.len() < 12 {
        return None;
    }
    let mut ia = IaSummary {
        iaid: u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
        status: None,
        lease: None,
    };
    for option in walk(&body[12..]) {
        let (code, sub) = option.ok()?;
        match code {
            OPT_IAADDR if !pd && sub.len() >= 24 => {
                let valid = u32::from_be_bytes([sub[20], sub[21], sub[22], sub[23]]);
                if valid > 0 && ia.lease.is_none() {
                    let address: [u8; 16] = sub[..16].try_into().ok()?;
                    ia.lease = Some((Ipv6Addr::from(address), 128));
                }
            }
            OPT_IAPREFIX if pd && sub.len() >= 25 => {
                let valid = u32::from_be_bytes([sub[4], sub[5], sub[6], sub[7]]);
                if valid > 0 && ia.lease.is_none() {
                    let prefix: [u8; 16] = sub[9..25].try_into().ok()?;
                    ia.lease = Some((Ipv6Addr::from(prefix), sub[8]));
                }
            }
            OPT_STATUS_CODE if sub.len() >= 2 => {
                ia.status = Some(u16::from_be_bytes([sub[0], sub[1]]))
            }
            _ => {}
        }
    }
    Some(ia)
}

/// An answer to one client, checked: the server's DUID, the address, the prefix, and whether
/// it carried Rapid Commit.
#[derive(Debug, PartialEq, Eq)]
struct Answer<'a> {
    server_duid: &'a [u8],
    na: Ipv6Addr,
    pd: Option<(Ipv6Addr, u8)>,
    rapid_commit: bool,
}

/// Checks the options of an Advertise or a Reply to `client`: its DUID, a server DUID, no
/// failing status, an IA_NA with the client's IAID and an address, and with `with_pd` an IA_PD
/// with its IAID and a prefix (the first occurrence of each option counts).
fn check_answer<'a>(
    body: &'a [u8],
    client: &Client,
    with_pd: bool,
) -> Result<Answer<'a>, &'static str> {
    let (mut client_id, mut server_id, mut status, mut na, mut pd) = (None, None, None, None, None);
    let mut rapid_commit = false;
    for option in walk(body) {
        let Ok((code, value)) = option else {
            return Err("malformed options");
        };
        let slot = match code {
            OPT_CLIENTID => &mut client_id,
            OPT_SERVERID => &mut server_id,
            OPT_STATUS_CODE => &mut status,
            OPT_IA_NA => &mut na,
            OPT_IA_PD => &mut pd,
            OPT_RAPID_COMMIT => {
                rapid_commit = true;
                continue;
            }
            _ => continue,
        };
        slot.get_or_insert(value);
    }
    if client_id != Some(&client.duid[..]) {
        return Err("wrong client DUID");
    }
    let Some(server_duid) = server_id else {
        return Err("no server DUID");
    };
    if let Some(status) = status {
        if status.len() >= 2 && u16::from_be_bytes([status[0], status[1]]) != STATUS_SUCCESS {
            return Err("status code not success");
        }
    }
    let Some(ia) = na.and_then(|b| ia_summary(b, false)) else {
        return Err("no IA_NA");
    };
    if ia.iaid != client.na_iaid || ia.status.is_some_and(|s| s != STATUS_SUCCESS) {
        return Err("IA_NA iaid or status");
    }
    let Some((address, _)) = ia.lease else {
        return Err("IA_NA without an address");
    };
    let prefix = if with_pd {
        let Some(ia) = pd.and_then(|b| ia_summary(b, true)) else {
            return Err("no IA_PD");
        };
        if ia.iaid != client.pd_iaid || ia.status.is_some_and(|s| s != STATUS_SUCCESS) {
            return Err("IA_PD iaid or status");
        }
        let Some(prefix) = ia.lease else {
            return Err("IA_PD without a prefix");
        };
        Some(prefix)
    } else {
        None
    };
    Ok(Answer {
        server_duid,
        na: address,
        pd: prefix,
        rapid_commit,
    })
}

/// Datagrams to send, encoded back to back into one buffer that is reused.
#[derive(Default)]
struct Outbox {
    bytes: Vec<u8>,
    ends: Vec<usize>,
}

impl Outbox {
    fn option(&mut self, code: u16, body: &[u8]) {
        self.option_header(code, body.len());
        self.bytes.extend_from_slice(body);
    }

    fn option_header(&mut self, code: u16, len: usize) {
        self.bytes.extend_from_slice(&code.to_be_bytes());
        self.bytes.extend_from_slice(&(len as u16).to_be_bytes());
    }

    fn header(&mut self, msg_type: u8, xid: u32) {
        let xid = xid.to_be_bytes();
        self.bytes
            .extend_from_slice(&[msg_type, xid[1], xid[2], xid[3]]);
    }

    /// An IA_NA or IA_PD with T1 = T2 = 0 and at most one lease with zero lifetimes.
    fn ia(&mut self, pd: bool, iaid: u32, lease: Option<(Ipv6Addr, u8)>) {
        let (code, sub_code, sub_len) = if pd {
            (OPT_IA_PD, OPT_IAPREFIX, 25)
        } else {
            (OPT_IA_NA, OPT_IAADDR, 24)
        };
        self.option_header(code, 12 + lease.map_or(0, |_| 4 + sub_len));
        self.bytes.extend_from_slice(&iaid.to_be_bytes());
        self.bytes.extend_from_slice(&[0; 8]);
        if let Some((address, len)) = lease {
            self.option_header(sub_code, sub_len);
            if pd {
                self.bytes.extend_from_slice(&[0; 8]);
                self.bytes.push(len);
                self.bytes.extend_from_slice(&address.octets());
            } else {
                self.bytes.extend_from_slice(&address.octets());
                self.bytes.extend_from_slice(&[0; 8]);
            }
        }
    }

    fn tail(&mut self) {
        self.option(OPT_ORO, &OPT_DNS_SERVERS.to_be_bytes());
        self.ends.push(self.bytes.len());
    }

    /// A Solicit: Client ID, Elapsed Time 0, IA_NA, IA_PD (with `with_pd`), Rapid Commit (with
    /// `rapid_commit`), ORO (DNS servers); no hints.
    fn solicit(&mut self, xid: u32, client: &Client, with_pd: bool, rapid_commit: bool) {
        self.header(MSG_SOLICIT, xid);
        self.option(OPT_CLIENTID, &client.duid);
        self.option(OPT_ELAPSED_TIME, &[0, 0]);
        self.ia(false, client.na_iaid, None);
        if with_pd {
            self.ia(true, client.pd_iaid, None);
        }
        if rapid_commit {
            self.option(OPT_RAPID_COMMIT, &[]);
        }
        self.tail();
    }

    /// A Request for what was advertised: Client ID, Server ID, Elapsed Time 0, IA_NA with
    /// the address, IA_PD with the prefix (with `with_pd`), ORO (DNS servers).
    fn request(&mut self, xid: u32, client: &Client, server_duid: &[u8], offer: &Offer) {
        self.header(MSG_REQUEST, xid);
        self.option(OPT_CLIENTID, &client.duid);
        self.option(OPT_SERVERID, server_duid);
        self.option(OPT_ELAPSED_TIME, &[0, 0]);
        self.ia(false, client.na_iaid, Some((offer.na, 128)));
        if let Some(pd) = offer.pd {
            self.ia(true, client.pd_iaid, Some(pd));
        }
        self.tail();
    }

    /// Sends what is queued, BATCH datagrams per sendmmsg; returns how many the socket did not
    /// take.
    fn flush(&mut self, socket: &ClientSocket) -> u64 {
        let mut unsent = 0;
        let mut begin = 0;
        let mut packets: [&[u8]; BATCH] = [&[]; BATCH];
        for ends in self.ends.chunks(BATCH) {
            for (slot, &end) in packets.iter_mut().zip(ends) {
                *slot = &self.bytes[begin..end];
                begin = end;
            }
            unsent += (ends.len() - socket.send(&packets[..ends.len()])) as u64;
        }
        self.bytes.clear();
        self.ends.clear();
        unsent
    }
}

/// A client's address and, with IA_PD, its prefix.
type Binding = (Ipv6Addr, Option<(Ipv6Addr, u8)>);

/// What an Advertise offered a client, to Request.
#[derive(Debug, Clone, Copy)]
struct Offer {
    /// Index into the thread's server DUIDs.
    server: u16,
    na: Ipv6Addr,
    pd: Option<(Ipv6Addr, u8)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    Idle,
    Solicit,
    Request,
    Done,
    Failed,
}

/// One client's exchange.
#[derive(Debug, Clone, Copy)]
struct State {
    stage: Stage,
    tries: u8,
    /// Bumped on every transmission, so a stale timer entry is told from the live one.
    generation: u32,
    started_ns: u64,
    offer: Option<Offer>,
}

/// The transaction id bit that tells a Request's answer from a Solicit's.
const REQUEST_BIT: u32 = 1 << 23;

/// Distinct server DUIDs one thread keeps (a lab has one or two servers).
const MAX_SERVERS: usize = 16;

/// What one generator thread saw, before the threads are summed up.
struct ShareOutcome {
    result: BindResult,
    bind_ns: Vec<u64>,
    last_bound_ns: u64,
    ended_ns: u64,
    server_duid: Option<Vec<u8>>,
}

/// Binds every client as a DHCPv6 client would: Solicit (with Rapid Commit when the plan says),
/// Advertise, Request, Reply, each answer checked (transaction id, client DUID, server DUID,
/// status, IAIDs, an address and a prefix with lifetimes), retransmitting on `plan.timers`, at
/// most `plan.window` clients in an exchange at once. A client that comes in with a binding
/// (`na`, and `pd` with a prefix) is a known one: it Solicits without hints, as a CPE does
/// after a power cut, and its new binding is compared with the one it had (`bound_elsewhere`).
/// Fills in each client's binding; returns the server DUID of the first Reply. Bounded by
/// `plan.deadline`.
pub fn bind_all(
    socket: &ClientSocket,
    clients: &mut [Client],
    plan: &BindPlan,
) -> Result<(Option<Vec<u8>>, BindResult)> {
    bind_all_threads(std::slice::from_ref(socket), clients, plan)
}

/// As `bind_all`, with one thread per socket: thread `t` owns the `t`-th contiguous share of
/// the clients and keeps `plan.window` of them in an exchange on `sockets[t]`. The sockets
/// must each have their own source address, so that each gets the answers to its own
/// messages. All threads start together; the run's time is until the last client of any
/// thread is bound.
pub fn bind_all_threads(
    sockets: &[ClientSocket],
    clients: &mut [Client],
    plan: &BindPlan,
) -> Result<(Option<Vec<u8>>, BindResult)> {
    if sockets.is_empty() {
        bail!("bind_all needs at least one client socket");
    }
    let n = clients.len();
    if n >= 1 << 23 {
        bail!("at most 8 M clients (24-bit transaction ids)");
    }
    let threads = sockets.len().min(n).max(1);
    let start = Instant::now();
    let outcomes = if threads == 1 {
        vec![bind_share(&sockets[0], clients, plan, start)]
    } else {
        let share = n.div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = clients
                .chunks_mut(share)
                .zip(sockets)
                .map(|(clients, socket)| {
                    scope.spawn(move || bind_share(socket, clients, plan, start))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| anyhow::anyhow!("a generator thread panicked"))
                })
                .collect::<Result<Vec<_>>>()
        })?
    };
    Ok(sum_up(n, threads, outcomes))
}

/// The threads' outcomes as one result: counts summed, percentiles over every client.
fn sum_up(n: usize, threads: usize, outcomes: Vec<ShareOutcome>) -> (Option<Vec<u8>>, BindResult) {
    let mut total = BindResult {
        clients: n,
        threads,
        ..BindResult::default()
    };
    let mut bind_ns = Vec::with_capacity(n);
    let (mut last_bound_ns, mut ended_ns) = (0u64, 0u64);
    let mut server_duid = None;
    for outcome in outcomes {
        let r = outcome.result;
        total.bound += r.bound;
        total.solicits_sent += r.solicits_sent;
        total.requests_sent += r.requests_sent;
        total.unsent += r.unsent;
        total.retransmissions += r.retransmissions;
        total.restarts += r.restarts;
        total.advertise_despite_rapid_commit += r.advertise_despite_rapid_commit;
        total.bound_elsewhere += r.bound_elsewhere;
        total.invalid_replies += r.invalid_replies;
        total.late_or_duplicate += r.late_or_duplicate;
        for (reason, count) in r.invalid_reasons {
            *total.invalid_reasons.entry(reason).or_default() += count;
        }
        bind_ns.extend(outcome.bind_ns);
        last_bound_ns = last_bound_ns.max(outcome.last_bound_ns);
        ended_ns = ended_ns.max(outcome.ended_ns);
        if server_duid.is_none() {
            server_duid = outcome.server_duid;
        }
    }
    total.failed = n - total.bound;
    total.seconds = if total.bound == n {
        last_bound_ns as f64 / 1e9
    } else {
        ended_ns as f64 / 1e9
    };
    total.seconds_to_all_bound = (total.bound == n).then_some(total.seconds);
    total.bindings_per_second = total.bound as f64 / total.seconds.max(1e-9);
    bind_ns.sort_unstable();
    let pct = |q: f64| {
        (!bind_ns.is_empty())
            .then(|| bind_ns[((bind_ns.len() - 1) as f64 * q).round() as usize] as f64 / 1e6)
    };
    total.bind_p50_ms = pct(0.5);
    total.bind_p99_ms = pct(0.99);
    total.bind_max_ms = pct(1.0);
    (server_duid, total)
}

/// One generator thread: binds `clients` on `socket` (see `bind_all`); times are from `start`.
fn bind_share(
    socket: &ClientSocket,
    clients: &mut [Client],
    plan: &BindPlan,
    start: Instant,
) -> ShareOutcome {
    let n = clients.len();
    let BindPlan {
        with_pd,
        rapid_commit,
        window,
        timers,
        deadline,
    } = *plan;
    let window = window.max(1);
    let timeout_ns = |tries: u8, i: usize| timers.timeout(tries, i).as_nanos() as u64;
    // The binding each known client had: (address, prefix).
    let before: Vec<Option<Binding>> = clients.iter().map(|c| c.na.map(|na| (na, c.pd))).collect();
    let mut state = vec![
        State {
            stage: Stage::Idle,
            tries: 0,
            generation: 0,
            started_ns: 0,
            offer: None,
        };
        n
    ];
    let mut bind_ns: Vec<u64> = Vec::with_capacity(n);
    // (due, client, generation): the earliest timer on top.
    let mut timers_due: BinaryHeap<Reverse<(u64, u32, u32)>> =
        BinaryHeap::with_capacity(2 * window);
    let mut servers: Vec<Vec<u8>> = Vec::new();
    let mut first_reply_server: Option<u16> = None;
    let mut result = BindResult {
        clients: n,
        ..BindResult::default()
    };
    let invalid = |result: &mut BindResult, reason: &str| {
        result.invalid_replies += 1;
        *result.invalid_reasons.entry(reason.into()).or_default() += 1;
    };
    let ns = || start.elapsed().as_nanos() as u64;
    let deadline_ns = deadline.as_nanos() as u64;
    let mut next = 0usize;
    let mut in_flight = 0usize;
    let mut finished = 0usize;
    let mut last_bound_ns = 0u64;
    let mut bufs = vec![[0u8; MAX_PACKET]; BATCH];
    let mut lens = Vec::with_capacity(BATCH);
    let mut out = Outbox::default();
    loop {
        let now = ns();
        if finished >= n || now >= deadline_ns {
            break;
        }
        // Start new clients up to the window.
        while in_flight < window && next < n {
            let i = next;
            out.solicit(i as u32, &clients[i], with_pd, rapid_commit);
            let s = &mut state[i];
            s.stage = Stage::Solicit;
            s.tries = 1;
            s.generation += 1;
            s.started_ns = now;
            timers_due.push(Reverse((now + timeout_ns(1, i), i as u32, s.generation)));
            result.solicits_sent += 1;
            next += 1;
            in_flight += 1;
        }
        // Retransmit what timed out.
        while let Some(&Reverse((due, i, generation_due))) = timers_due.peek() {
            if due > now {
                break;
            }
            timers_due.pop();
            let i = i as usize;
            let s = &mut state[i];
            if s.generation != generation_due || !matches!(s.stage, Stage::Solicit | Stage::Request)
            {
                continue;
            }
            let limit = if s.stage == Stage::Solicit {
                timers.solicit_tries
            } else {
                timers.request_tries
            };
            if limit != 0 && s.tries >= limit {
                if s.stage == Stage::Request && timers.restart {
                    result.restarts += 1;
                    s.stage = Stage::Solicit;
                    s.tries = 0;
                } else {
                    s.stage = Stage::Failed;
                    in_flight -= 1;
                    finished += 1;
                    continue;
                }
            } else {
                result.retransmissions += 1;
            }
            s.tries = s.tries.saturating_add(1);
            s.generation += 1;
            timers_due.push(Reverse((
                now + timeout_ns(s.tries, i),
                i as u32,
                s.generation,
            )));
            if s.stage == Stage::Solicit {
                result.solicits_sent += 1;
                out.solicit(i as u32, &clients[i], with_pd, rapid_commit);
            } else {
                result.requests_sent += 1;
                let offer = s.offer.expect("a Request follows an Advertise");
                out.request(
                    i as u32 | REQUEST_BIT,
                    &clients[i],
                    &servers[offer.server as usize],
                    &offer,
                );
            }
        }
        result.unsent += out.flush(socket);
        if socket.recv(&mut bufs, &mut lens) == 0 {
            socket.wait_readable(Duration::from_millis(1));
            continue;
        }
        let at = ns();
        for (buf, &len) in bufs.iter().zip(lens.iter()) {
            let p = &buf[..len];
            if p.len() < 4 {
                invalid(&mut result, "short");
                continue;
            }
            let xid = u32::from_be_bytes([0, p[1], p[2], p[3]]);
            let i = (xid & !REQUEST_BIT) as usize;
            if i >= n {
                invalid(&mut result, "unknown transaction id");
                continue;
            }
            let s = &mut state[i];
            let expected = match (s.stage, xid & REQUEST_BIT != 0, p[0]) {
                (Stage::Solicit, false, MSG_ADVERTISE) => true,
                (Stage::Solicit, false, MSG_REPLY) if rapid_commit => true,
                (Stage::Request, true, MSG_REPLY) => true,
                _ => false,
            };
            let answer = match check_answer(&p[4..], &clients[i], with_pd) {
                Err("malformed options") => {
                    invalid(&mut result, "malformed options");
                    continue;
                }
                // An answer to a retransmission of an exchange that moved on, or to one that
                // gave up: a client ignores it.
                _ if !expected => {
                    result.late_or_duplicate += 1;
                    continue;
                }
                Err(reason) => {
                    invalid(&mut result, reason);
                    continue;
                }
                Ok(answer) => answer,
            };
            let server = match servers.iter().position(|d| d[..] == *answer.server_duid) {
                Some(k) => k as u16,
                None if servers.len() < MAX_SERVERS => {
                    servers.push(answer.server_duid.to_vec());
                    (servers.len() - 1) as u16
                }
                None => {
                    invalid(&mut result, "too many server DUIDs");
                    continue;
                }
            };
            if p[0] == MSG_ADVERTISE {
                if rapid_commit {
                    result.advertise_despite_rapid_commit += 1;
                }
                let offer = Offer {
                    server,
                    na: answer.na,
                    pd: answer.pd,
                };
                out.request(
                    i as u32 | REQUEST_BIT,
                    &clients[i],
                    answer.server_duid,
                    &offer,
                );
                s.offer = Some(offer);
                s.stage = Stage::Request;
                s.tries = 1;
                s.generation += 1;
                timers_due.push(Reverse((at + timeout_ns(1, i), i as u32, s.generation)));
                result.requests_sent += 1;
                continue;
            }
            if xid & REQUEST_BIT == 0 && !answer.rapid_commit {
                invalid(&mut result, "Reply to a Solicit without Rapid Commit");
                continue;
            }
            if let Some((old_na, old_pd)) = before[i] {
                if answer.na != old_na || (with_pd && answer.pd != old_pd) {
                    result.bound_elsewhere += 1;
                }
            }
            clients[i].na = Some(answer.na);
            clients[i].pd = answer.pd;
            first_reply_server.get_or_insert(server);
            s.stage = Stage::Done;
            in_flight -= 1;
            finished += 1;
            result.bound += 1;
            last_bound_ns = at;
            bind_ns.push(at.saturating_sub(s.started_ns));
        }
        result.unsent += out.flush(socket);
    }
    ShareOutcome {
        result,
        bind_ns,
        last_bound_ns,
        ended_ns: ns(),
        server_duid: first_reply_server.map(|k| servers[k as usize].clone()),
    }
}

#[cfg(test)]
mod tests {
    use dhcp_testwire::dhcpv6::{self as wire, elapsed, ia_na, ia_pd, msg, opt, oro};

    use super::*;

    fn client(index: u32) -> Client {
        Client {
            duid: wire::client_duid(index).to_vec(),
            na_iaid: 1,
            na: None,
            pd_iaid: 2,
            pd: None,
        }
    }

    const SERVER: &[u8] = &[0, 1, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
    const ADDRESS: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
    const PREFIX: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0);

    /// An answer's options as a server would send them: Client ID, Server ID, IA_NA, IA_PD.
    fn answer(c: &Client, extra: Vec<Vec<u8>>) -> Vec<u8> {
        let mut o = vec![
            opt(OPT_CLIENTID, &c.duid),
            opt(OPT_SERVERID, SERVER),
            ia_na(c.na_iaid, 1000, 2000, Some((ADDRESS, 3000, 4000))),
            ia_pd(c.pd_iaid, 1000, 2000, Some((PREFIX, 56, 3000, 4000))),
        ];
        o.extend(extra);
        o.concat()
    }

    /// The Solicits encoded in place are byte for byte the ones built from the wire helpers.
    #[test]
    fn solicits_match_the_wire_helpers() {
        let c = client(7);
        for (with_pd, rapid_commit) in [(false, false), (true, false), (true, true)] {
            let mut o = vec![opt(OPT_CLIENTID, &c.duid), elapsed(), ia_na(1, 0, 0, None)];
            if with_pd {
                o.push(ia_pd(2, 0, 0, None));
            }
            if rapid_commit {
                o.push(opt(OPT_RAPID_COMMIT, &[]));
            }
            o.push(oro(&[OPT_DNS_SERVERS]));
            let mut out = Outbox::default();
            out.solicit(0x12_3456, &c, with_pd, rapid_commit);
            assert_eq!(out.bytes, msg(MSG_SOLICIT, 0x12_3456, &o));
            assert_eq!(out.ends, vec![out.bytes.len()]);
        }
    }

    /// The Requests encoded in place are byte for byte the ones built from the wire helpers,
    /// with the advertised address and prefix and the request bit in the transaction id.
    #[test]
    fn requests_match_the_wire_helpers() {
        let c = client(8);
        for pd in [None, Some((PREFIX, 56))] {
            let mut o = vec![
                opt(OPT_CLIENTID, &c.duid),
                opt(OPT_SERVERID, SERVER),
                elapsed(),
                ia_na(1, 0, 0, Some((ADDRESS, 0, 0))),
            ];
            if let Some((p, len)) = pd {
                o.push(ia_pd(2, 0, 0, Some((p, len, 0, 0))));
            }
            o.push(oro(&[OPT_DNS_SERVERS]));
            let offer = Offer {
                server: 0,
                na: ADDRESS,
                pd,
            };
            let mut out = Outbox::default();
            out.solicit(1, &c, true, false);
            out.request(5 | REQUEST_BIT, &c, SERVER, &offer);
            let first = out.ends[0];
            assert_eq!(
                out.bytes[first..],
                msg(MSG_REQUEST, 5 | REQUEST_BIT, &o)[..]
            );
            assert_eq!(out.ends, vec![first, out.bytes.len()]);
        }
    }

    /// A right answer gives the server DUID, the address, the prefix, and Rapid Commit when
    /// the answer has it.
    #[test]
    fn a_right_answer_is_read_without_copies() {
        let c = client(1);
        let body = answer(&c, vec![opt(OPT_RAPID_COMMIT, &[])]);
        let a = check_answer(&body, &c, true).unwrap();
        assert_eq!(
            a,
            Answer {
                server_duid: SERVER,
                na: ADDRESS,
                pd: Some((PREFIX, 56)),
                rapid_commit: true,
            }
        );
        let plain = answer(&c, vec![]);
        let a = check_answer(&plain, &c, false).unwrap();
        assert_eq!((a.pd, a.rapid_commit), (None, false));
    }

    /// Every way an answer can be wrong is refused, with its reason.
    #[test]
    fn wrong_answers_are_refused_by_reason() {
        let c = client(1);
        let other = client(2);
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (answer(&other, vec![]), "wrong client DUID"),
            (
                [
                    opt(OPT_CLIENTID, &c.duid),
                    ia_na(1, 0, 0, Some((ADDRESS, 1, 1))),
                ]
                .concat(),
                "no server DUID",
            ),
            (
                answer(&c, vec![opt(OPT_STATUS_CODE, &[0, 2, b'n', b'o'])]),
                "status code not success",
            ),
            (
                [
                    opt(OPT_CLIENTID, &c.duid),
                    opt(OPT_SERVERID, SERVER),
                    ia_pd(2, 0, 0, Some((PREFIX, 56, 1, 1))),
                ]
                .concat(),
                "no IA_NA",
            ),
            (
                [
                    opt(OPT_CLIENTID, &c.duid),
                    opt(OPT_SERVERID, SERVER),
                    ia_na(9, 0, 0, Some((ADDRESS, 1, 1))),
                ]
                .concat(),
                "IA_NA iaid or status",
            ),
            (
                [
                    opt(OPT_CLIENTID, &c.duid),
                    opt(OPT_SERVERID, SERVER),
                    ia_na(1, 0, 0, Some((ADDRESS, 0, 0))),
                ]
                .concat(),
                "IA_NA without an address",
            ),
            (
                [
                    opt(OPT_CLIENTID, &c.duid),
                    opt(OPT_SERVERID, SERVER),
                    ia_na(1, 0, 0, Some((ADDRESS, 1, 1))),
                ]
                .concat(),
                "no IA_PD",
            ),
            (
                [
                    opt(OPT_CLIENTID, &c.duid),
                    opt(OPT_SERVERID, SERVER),
                    ia_na(1, 0, 0, Some((ADDRESS, 1, 1))),
                    ia_pd(2, 0, 0, Some((PREFIX, 56, 0, 0))),
                ]
                .concat(),
                "IA_PD without a prefix",
            ),
        ];
        for (body, reason) in cases {
            assert_eq!(check_answer(&body, &c, true), Err(reason));
        }
        // An IA whose own status says NoAddrsAvail, even with an address in it.
        let mut na_body = [1u32.to_be_bytes(), [0; 4], [0; 4]].concat();
        na_body.extend(opt(OPT_STATUS_CODE, &[0, 2]));
        let body = [
            opt(OPT_CLIENTID, &c.duid),
            opt(OPT_SERVERID, SERVER),
            opt(OPT_IA_NA, &na_body),
        ]
        .concat();
        assert_eq!(check_answer(&body, &c, false), Err("IA_NA iaid or status"));
    }

    /// An option that runs past the end of the message makes it malformed, wherever it is.
    #[test]
    fn a_truncated_option_is_malformed() {
        let c = client(1);
        let body = answer(&c, vec![]);
        for cut in [1, 3, 5, 20] {
            assert_eq!(
                check_answer(&body[..body.len() - cut], &c, true),
                Err("malformed options"),
                "cut {cut}"
            );
        }
        let mut long = body.clone();
        long.extend([0, 99, 0, 10, 1]);
        assert_eq!(check_answer(&long, &c, true), Err("malformed options"));
    }

    /// The threads' outcomes add up; all bound: the time of the last binding of any thread,
    /// percentiles over every client.
    #[test]
    fn threads_add_up_to_one_result() {
        let outcome = |bound: usize, last: u64, ended: u64, binds: Vec<u64>| ShareOutcome {
            result: BindResult {
                bound,
                solicits_sent: bound as u64,
                retransmissions: 1,
                invalid_reasons: BTreeMap::from([("short".to_string(), 1)]),
                invalid_replies: 1,
                ..BindResult::default()
            },
            bind_ns: binds,
            last_bound_ns: last,
            ended_ns: ended,
            server_duid: Some(SERVER.to_vec()),
        };
        let (duid, r) = sum_up(
            4,
            2,
            vec![
                outcome(2, 2_000_000_000, 2_100_000_000, vec![1_000_000, 3_000_000]),
                outcome(2, 1_500_000_000, 1_600_000_000, vec![2_000_000, 4_000_000]),
            ],
        );
        assert_eq!(duid.as_deref(), Some(SERVER));
        assert_eq!((r.bound, r.failed, r.threads), (4, 0, 2));
        assert_eq!(r.seconds_to_all_bound, Some(2.0));
        assert_eq!((r.solicits_sent, r.retransmissions), (4, 2));
        assert_eq!(r.invalid_reasons["short"], 2);
        assert_eq!(r.bind_max_ms, Some(4.0));
        assert_eq!(r.bindings_per_second, 2.0);
        // One thread short: no time to all bound, the run's time is the last thread's end.
        let (_, r) = sum_up(
            5,
            2,
            vec![
                outcome(2, 2_000_000_000, 9_000_000_000, vec![1]),
                outcome(2, 1_000_000_000, 8_000_000_000, vec![1]),
            ],
        );
        assert_eq!(
            (r.failed, r.seconds_to_all_bound, r.seconds),
            (1, None, 9.0)
        );
    }

    /// Priming retries 1 s apart without doubling; the avalanche's RFC 8415 timers double
    /// from 1 s (REQ_TIMEOUT, SOL_TIMEOUT) up to 30 s (REQ_MAX_RT) within RAND +-10 %.
    #[test]
    fn timers_follow_rfc_8415_doubling_with_a_cap() {
        for tries in 1..=4 {
            assert_eq!(Retransmit::PRIME.timeout(tries, 3), Duration::from_secs(1));
        }
        let t = Retransmit::AVALANCHE;
        for (tries, rt) in [(1u8, 1.0), (2, 2.0), (5, 16.0), (6, 30.0), (10, 30.0)] {
            for i in 0..200 {
                let s = t.timeout(tries, i).as_secs_f64();
                assert!((rt * 0.9..=rt * 1.1).contains(&s), "try {tries}: {s}");
            }
        }
        assert_eq!((t.request_tries, t.restart, t.solicit_tries), (10, true, 0));
    }
}
