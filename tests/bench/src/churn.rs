//! The churn driver: simulated clients (DUIDs) on one link doing Solicit/Advertise/Request,
//! Renew, Release and Decline in a random order drawn from a fixed seed. Every reply is checked
//! (transaction id, client and server DUIDs, IAIDs, lifetimes) and every lease a server told a
//! client about is recorded with its valid lifetime and the time, so that a checker can hold
//! the servers' stores against what the clients were told (tests/tests/chaos.rs), and the soak
//! (`cargo xtask soak`) has a mixed load that never stops binding, renewing and giving back.
//!
//! Runs on the client side of a lab link, like the load generator (`loadgen`), over its
//! [`ClientSocket`]: one exchange at a time, bounded by `ChurnPlan::duration` and a stop flag.
//! Several servers may answer on the link (a redundant pair): a Solicit takes every Advertise
//! that arrives in time and Requests from one of them, picked by the seed.

use std::{
    collections::BTreeMap,
    net::Ipv6Addr,
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant, SystemTime},
};

use dhcp_common::dhcpv6::*;
use dhcp_testwire::dhcpv6::{
    client_duid, elapsed, find, ia_na, ia_pd, msg, opt, options, oro, parse_ia, IaContents,
};

use crate::loadgen::{ClientSocket, BATCH, MAX_PACKET};

/// The IAIDs every churn client uses.
pub const NA_IAID: u32 = 11;
pub const PD_IAID: u32 = 12;

/// What the churn does.
#[derive(Debug, Clone)]
pub struct ChurnPlan {
    /// Simulated clients; client `i` has DUID `client_duid(first_client + i)`.
    pub clients: u32,
    /// Index of the first client's DUID (keeps several drivers, or a soak and a bench, apart).
    pub first_client: u32,
    /// The seed of every random choice (printed by the callers, so a run can be replayed).
    pub seed: u64,
    /// Ask for a delegated prefix (IA_PD) as well as an address.
    pub with_pd: bool,
    /// Servers answering on the link: a Solicit stops waiting once this many have advertised.
    pub servers: usize,
    /// How long one exchange waits for its reply (a Solicit: for its Advertises).
    pub reply_timeout: Duration,
    /// Sends of one message before the exchange is given up (same transaction id).
    pub tries: u32,
    /// The pause between two actions (0: as fast as the exchanges go).
    pub pace: Duration,
    /// The run ends after this long at most.
    pub duration: Duration,
}

impl Default for ChurnPlan {
    fn default() -> Self {
        ChurnPlan {
            clients: 64,
            first_client: 0x0c00_0000,
            seed: 1,
            with_pd: true,
            servers: 1,
            reply_timeout: Duration::from_millis(400),
            tries: 2,
            pace: Duration::from_millis(5),
            duration: Duration::from_secs(60),
        }
    }
}

/// An address (`prefix_len` 128, from an IA_NA) or a delegated prefix (from an IA_PD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Held {
    pub address: Ipv6Addr,
    pub prefix_len: u8,
}

impl Held {
    pub fn is_prefix(&self) -> bool {
        self.prefix_len != 128
    }
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_prefix() {
            write!(f, "{}/{}", self.address, self.prefix_len)
        } else {
            write!(f, "{}", self.address)
        }
    }
}

/// One time a server told a client it holds a lease: from `at` until `until` (unix seconds).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Told {
    pub client: u32,
    #[serde(serialize_with = "as_hex")]
    pub duid: Vec<u8>,
    #[serde(serialize_with = "as_hex")]
    pub server: Vec<u8>,
    pub lease: Held,
    pub at: f64,
    pub until: f64,
    /// "request" or "renew".
    pub by: &'static str,
}

/// A lease a client gave back (Release, Decline) or was told it no longer has (NoBinding, or
/// a valid lifetime of 0), at `at`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Ended {
    pub client: u32,
    #[serde(serialize_with = "as_hex")]
    pub server: Vec<u8>,
    pub lease: Held,
    pub at: f64,
    /// "release", "decline" (sent, answered or not) or "revoked" (the server said so).
    pub how: &'static str,
    /// Until when the client had been told it held the lease.
    pub was_until: f64,
}

fn as_hex<S: serde::Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

/// What the churn saw.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ChurnReport {
    pub seed: u64,
    pub seconds: f64,
    /// Every lease told, in order.
    pub told: Vec<Told>,
    /// Every lease given back or taken away, in order.
    pub ended: Vec<Ended>,
    /// Messages sent and exchanges answered, by message ("solicit", "renew_answered", ...).
    pub counts: BTreeMap<String, u64>,
    /// Replies that are wrong, by reason: a correct server gives none.
    pub invalid: BTreeMap<String, u64>,
    /// What each client held when the run ended (its latest `Told` per lease, not given back).
    pub holding: Vec<Told>,
}

impl ChurnReport {
    fn count(&mut self, what: &str) {
        *self.counts.entry(what.to_string()).or_default() += 1;
    }

    fn invalid(&mut self, why: &str) {
        *self.invalid.entry(why.to_string()).or_default() += 1;
    }

    /// Leases told in all.
    pub fn grants(&self) -> usize {
        self.told.iter().filter(|t| t.by == "request").count()
    }
}

/// A deterministic generator (splitmix64): the same seed, the same choices.
#[derive(Debug, Clone)]
pub struct SeededRng(u64);

impl SeededRng {
    pub fn new(seed: u64) -> Self {
        SeededRng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Unix time now, in seconds.
pub fn unix_now_f64() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A lease one client holds, and from whom.
#[derive(Debug, Clone)]
struct Holding {
    server: Vec<u8>,
    lease: Held,
    until: f64,
}

struct Sim {
    index: u32,
    duid: Vec<u8>,
    na: Option<Holding>,
    pd: Option<Holding>,
}

/// One reply's IAs, as the checker reads them.
struct ReplyIas {
    server: Vec<u8>,
    na: Option<IaContents>,
    pd: Option<IaContents>,
    status: Option<u16>,
}

/// The driver: its socket, its clients and what it saw.
pub struct Churn<'a> {
    socket: &'a ClientSocket,
    plan: ChurnPlan,
    rng: SeededRng,
    sims: Vec<Sim>,
    xid: u32,
    report: ChurnReport,
    bufs: Vec<[u8; MAX_PACKET]>,
    lens: Vec<usize>,
}

impl<'a> Churn<'a> {
    pub fn new(socket: &'a ClientSocket, plan: ChurnPlan) -> Self {
        let sims = (0..plan.clients)
            .map(|i| Sim {
                index: i,
                duid: client_duid(plan.first_client.wrapping_add(i)).to_vec(),
                na: None,
                pd: None,
            })
            .collect();
        Churn {
            socket,
            rng: SeededRng::new(plan.seed),
            report: ChurnReport {
                seed: plan.seed,
                ..ChurnReport::default()
            },
            plan,
            sims,
            xid: 0,
            bufs: vec![[0u8; MAX_PACKET]; BATCH],
            lens: Vec::new(),
        }
    }

    /// Churns until `stop` is set or the plan's duration passes; returns what it saw.
    pub fn run(mut self, stop: &AtomicBool) -> ChurnReport {
        let start = Instant::now();
        while !stop.load(Ordering::Relaxed) && start.elapsed() < self.plan.duration {
            self.step();
            if !self.plan.pace.is_zero() {
                std::thread::sleep(self.plan.pace);
            }
        }
        self.report.seconds = start.elapsed().as_secs_f64();
        let now = unix_now_f64();
        let mut holding = Vec::new();
        for sim in &self.sims {
            for held in [&sim.na, &sim.pd].into_iter().flatten() {
                if held.until > now {
                    holding.push(Told {
                        client: sim.index,
                        duid: sim.duid.clone(),
                        server: held.server.clone(),
                        lease: held.lease,
                        at: now,
                        until: held.until,
                        by: "holding",
                    });
                }
            }
        }
        self.report.holding = holding;
        self.report
    }

    /// One action of one client, both drawn at random.
    fn step(&mut self) {
        let i = self.rng.below(self.sims.len() as u64) as usize;
        let now = unix_now_f64();
        // What has run out is gone from the client's view.
        let sim = &mut self.sims[i];
        for held in [&mut sim.na, &mut sim.pd] {
            if held.as_ref().is_some_and(|h| h.until <= now) {
                *held = None;
            }
        }
        let sim = &self.sims[i];
        if sim.na.is_none() && sim.pd.is_none() {
            self.solicit_and_request(i);
            return;
        }
        match self.rng.below(10) {
            0..=4 => self.renew(i),
            5 | 6 => self.give_back(i, MSG_RELEASE),
            7 if self.sims[i].na.is_some() => self.give_back(i, MSG_DECLINE),
            _ => self.report.count("idle"),
        }
    }

    fn next_xid(&mut self) -> u32 {
        self.xid = (self.xid + 1) & 0xff_ffff;
        self.xid
    }

    /// Sends `packet` (up to `tries` times) and gathers the replies with its transaction id:
    /// until `want` of them arrived, or the reply timeout passes after the last send.
    fn exchange(&mut self, packet: &[u8], want: usize) -> Vec<Vec<u8>> {
        let xid = u32::from_be_bytes([0, packet[1], packet[2], packet[3]]);
        let mut replies: Vec<Vec<u8>> = Vec::new();
        for _ in 0..self.plan.tries.max(1) {
            if self.socket.send(&[packet]) != 1 {
                self.report.count("send_failed");
            }
            let deadline = Instant::now() + self.plan.reply_timeout;
            while Instant::now() < deadline && replies.len() < want {
                let got = self.socket.recv(&mut self.bufs, &mut self.lens);
                if got == 0 {
                    self.socket
                        .wait_readable(deadline.saturating_duration_since(Instant::now()));
                    continue;
                }
                for k in 0..got {
                    let p = &self.bufs[k][..self.lens[k]];
                    if p.len() < 4 {
                        self.report.invalid("short datagram");
                        continue;
                    }
                    if u32::from_be_bytes([0, p[1], p[2], p[3]]) != xid {
                        // A late answer to an exchange already given up.
                        self.report.count("late_reply");
                        continue;
                    }
                    replies.push(p.to_vec());
                }
            }
            if !replies.is_empty() {
                break;
            }
        }
        replies
    }

    /// The reply's IAs after the checks every reply must pass; `None` (counted) when it fails.
    fn check(
        &mut self,
        p: &[u8],
        msg_type: u8,
        duid: &[u8],
        server: Option<&[u8]>,
    ) -> Option<ReplyIas> {
        if p[0] != msg_type {
            self.report.invalid("unexpected message type");
            return None;
        }
        let Some(opts) = options(&p[4..]) else {
            self.report.invalid("malformed options");
            return None;
        };
        if find(&opts, OPT_CLIENTID) != Some(duid) {
            self.report.invalid("wrong client DUID");
            return None;
        }
        let Some(sid) = find(&opts, OPT_SERVERID) else {
            self.report.invalid("no server DUID");
            return None;
        };
        if server.is_some_and(|s| s != sid) {
            self.report.invalid("wrong server DUID");
            return None;
        }
        let status = find(&opts, OPT_STATUS_CODE)
            .filter(|s| s.len() >= 2)
            .map(|s| u16::from_be_bytes([s[0], s[1]]));
        let mut ias = ReplyIas {
            server: sid.to_vec(),
            na: None,
            pd: None,
            status,
        };
        for (code, body) in &opts {
            let (pd, iaid) = match *code {
                OPT_IA_NA => (false, NA_IAID),
                OPT_IA_PD => (true, PD_IAID),
                _ => continue,
            };
            let Some(ia) = parse_ia(body, pd) else {
                self.report.invalid("malformed IA");
                return None;
            };
            if ia.iaid != iaid {
                self.report.invalid("IAID not the client's");
                return None;
            }
            if ia.leases.iter().any(|l| l.2 > l.3) {
                self.report.invalid("preferred lifetime above valid");
                return None;
            }
            if pd {
                ias.pd = Some(ia);
            } else {
                ias.na = Some(ia);
            }
        }
        Some(ias)
    }

    /// Solicit (IA_NA, and IA_PD when planned), take the Advertises, Request from one.
    fn solicit_and_request(&mut self, i: usize) {
        let duid = self.sims[i].duid.clone();
        let with_pd = self.plan.with_pd;
        let mut o = vec![
            opt(OPT_CLIENTID, &duid),
            elapsed(),
            ia_na(NA_IAID, 0, 0, None),
        ];
        if with_pd {
            o.push(ia_pd(PD_IAID, 0, 0, None));
        }
        o.push(oro(&[OPT_DNS_SERVERS]));
        let xid = self.next_xid();
        let solicit = msg(MSG_SOLICIT, xid, &o);
        self.report.count("solicit");
        let replies = self.exchange(&solicit, self.plan.servers.max(1));
        let mut offers: Vec<(Vec<u8>, Option<Held>, Option<Held>)> = Vec::new();
        for p in &replies {
            let Some(ias) = self.check(p, MSG_ADVERTISE, &duid, None) else {
                continue;
            };
            let na = ias.na.as_ref().and_then(first_lease);
            let pd = ias.pd.as_ref().and_then(first_lease);
            if na.is_some() || pd.is_some() {
                offers.push((ias.server, na, pd));
            }
        }
        if offers.is_empty() {
            self.report.count("solicit_unanswered");
            return;
        }
        self.report.count("advertised");
        let (server, na, pd) = offers.swap_remove(self.rng.below(offers.len() as u64) as usize);
        let mut o = vec![
            opt(OPT_CLIENTID, &duid),
            opt(OPT_SERVERID, &server),
            elapsed(),
            ia_na(NA_IAID, 0, 0, na.map(|h| (h.address, 0, 0))),
        ];
        if with_pd {
            o.push(ia_pd(
                PD_IAID,
                0,
                0,
                pd.map(|h| (h.address, h.prefix_len, 0, 0)),
            ));
        }
        o.push(oro(&[OPT_DNS_SERVERS]));
        let xid = self.next_xid();
        let request = msg(MSG_REQUEST, xid, &o);
        self.report.count("request");
        let replies = self.exchange(&request, 1);
        let Some(p) = replies.first() else {
            self.report.count("request_unanswered");
            return;
        };
        let Some(ias) = self.check(p, MSG_REPLY, &duid, Some(&server)) else {
            return;
        };
        self.report.count("request_answered");
        let at = unix_now_f64();
        for (ia, slot_is_pd) in [(ias.na, false), (ias.pd, true)] {
            let Some(ia) = ia else { continue };
            let Some((address, len, _, valid)) = ia.leases.first().copied() else {
                continue;
            };
            if valid == 0 {
                continue;
            }
            let lease = Held {
                address,
                prefix_len: len,
            };
            self.tell(i, &server, lease, at, valid, "request", slot_is_pd);
        }
    }

    /// Records that `server` told client `i` it holds `lease` for `valid` seconds from `at`.
    #[allow(clippy::too_many_arguments)]
    fn tell(
        &mut self,
        i: usize,
        server: &[u8],
        lease: Held,
        at: f64,
        valid: u32,
        by: &'static str,
        pd: bool,
    ) {
        let until = at + f64::from(valid);
        let sim = &mut self.sims[i];
        let holding = Holding {
            server: server.to_vec(),
            lease,
            until,
        };
        if pd {
            sim.pd = Some(holding);
        } else {
            sim.na = Some(holding);
        }
        self.report.told.push(Told {
            client: sim.index,
            duid: sim.duid.clone(),
            server: server.to_vec(),
            lease,
            at,
            until,
            by,
        });
    }

    /// Renew what client `i` holds from its server; the Reply must extend each lease or say why.
    fn renew(&mut self, i: usize) {
        let sim = &self.sims[i];
        let duid = sim.duid.clone();
        let server = sim
            .na
            .as_ref()
            .or(sim.pd.as_ref())
            .map(|h| h.server.clone())
            .expect("a bound client");
        let na = sim.na.clone().filter(|h| h.server == server);
        let pd = sim.pd.clone().filter(|h| h.server == server);
        let mut o = vec![
            opt(OPT_CLIENTID, &duid),
            opt(OPT_SERVERID, &server),
            elapsed(),
        ];
        if let Some(h) = &na {
            o.push(ia_na(NA_IAID, 0, 0, Some((h.lease.address, 0, 0))));
        }
        if let Some(h) = &pd {
            o.push(ia_pd(
                PD_IAID,
                0,
                0,
                Some((h.lease.address, h.lease.prefix_len, 0, 0)),
            ));
        }
        o.push(oro(&[OPT_DNS_SERVERS]));
        let xid = self.next_xid();
        let renew = msg(MSG_RENEW, xid, &o);
        self.report.count("renew");
        let replies = self.exchange(&renew, 1);
        let Some(p) = replies.first() else {
            self.report.count("renew_unanswered");
            return;
        };
        let Some(ias) = self.check(p, MSG_REPLY, &duid, Some(&server)) else {
            return;
        };
        self.report.count("renew_answered");
        let at = unix_now_f64();
        for (held, ia, pd) in [(na, ias.na, false), (pd, ias.pd, true)] {
            let Some(held) = held else { continue };
            let Some(ia) = ia else {
                self.report.invalid("Renew reply without a renewed IA");
                continue;
            };
            let renewed = ia
                .leases
                .iter()
                .find(|l| l.0 == held.lease.address && l.1 == held.lease.prefix_len);
            match renewed {
                Some(&(_, _, _, valid)) if valid > 0 => {
                    self.tell(i, &server, held.lease, at, valid, "renew", pd);
                }
                _ => {
                    // NoBinding, or the lease with valid 0: the server no longer has it.
                    self.end(i, &server, held, at, "revoked", pd);
                }
            }
        }
    }

    /// Release (both leases) or Decline (the address) to the client's server; the lease is
    /// the client's no more once sent (RFC 8415 §18.2.7: it stops using it at once).
    fn give_back(&mut self, i: usize, msg_type: u8) {
        let sim = &self.sims[i];
        let duid = sim.duid.clone();
        let server = sim
            .na
            .as_ref()
            .or(sim.pd.as_ref())
            .map(|h| h.server.clone())
            .expect("a bound client");
        let na = sim.na.clone().filter(|h| h.server == server);
        let pd = sim
            .pd
            .clone()
            .filter(|h| h.server == server && msg_type == MSG_RELEASE);
        let mut o = vec![
            opt(OPT_CLIENTID, &duid),
            opt(OPT_SERVERID, &server),
            elapsed(),
        ];
        if let Some(h) = &na {
            o.push(ia_na(NA_IAID, 0, 0, Some((h.lease.address, 0, 0))));
        }
        if let Some(h) = &pd {
            o.push(ia_pd(
                PD_IAID,
                0,
                0,
                Some((h.lease.address, h.lease.prefix_len, 0, 0)),
            ));
        }
        if na.is_none() && pd.is_none() {
            return;
        }
        let (name, answered) = if msg_type == MSG_RELEASE {
            ("release", "release_answered")
        } else {
            ("decline", "decline_answered")
        };
        let at = unix_now_f64();
        for (held, pd_slot) in [(na, false), (pd, true)] {
            if let Some(held) = held {
                self.end(i, &server, held, at, name, pd_slot);
            }
        }
        let xid = self.next_xid();
        let packet = msg(msg_type, xid, &o);
        self.report.count(name);
        let replies = self.exchange(&packet, 1);
        let Some(p) = replies.first() else {
            self.report.count(&format!("{name}_unanswered"));
            return;
        };
        let Some(ias) = self.check(p, MSG_REPLY, &duid, Some(&server)) else {
            return;
        };
        if ias.status.is_some_and(|s| s != STATUS_SUCCESS) {
            self.report
                .invalid("Release or Decline not answered with Success");
            return;
        }
        self.report.count(answered);
    }

    fn end(
        &mut self,
        i: usize,
        server: &[u8],
        held: Holding,
        at: f64,
        how: &'static str,
        pd: bool,
    ) {
        let sim = &mut self.sims[i];
        if pd {
            sim.pd = None;
        } else {
            sim.na = None;
        }
        self.report.ended.push(Ended {
            client: sim.index,
            server: server.to_vec(),
            lease: held.lease,
            at,
            how,
            was_until: held.until,
        });
    }
}

fn first_lease(ia: &IaContents) -> Option<Held> {
    ia.leases
        .iter()
        .find(|l| l.3 > 0)
        .map(|&(address, prefix_len, _, _)| Held {
            address,
            prefix_len,
        })
}

/// Pairs of told leases that overlap: the same address or prefix (or a prefix inside another)
/// told to two different clients for times that overlap. A correct server, or pair of
/// servers, gives none: a lease goes to no other client before its told expiry (and a Release
/// or Decline does not shorten that, docs/configuration.md `grace-period`).
pub fn double_grants(told: &[Told]) -> Vec<(Told, Told)> {
    let mut by_lease: BTreeMap<(u8, Ipv6Addr), Vec<&Told>> = BTreeMap::new();
    for t in told {
        by_lease
            .entry((t.lease.prefix_len, t.lease.address))
            .or_default()
            .push(t);
    }
    let mut found = Vec::new();
    for (_, mut tells) in by_lease {
        tells.sort_by(|a, b| a.at.total_cmp(&b.at));
        // Of the earlier tells, the one told to last longest per client is what matters.
        let mut latest: BTreeMap<u32, &Told> = BTreeMap::new();
        for t in tells {
            for (&client, &other) in &latest {
                // Times are taken at the client, on receipt: a second of slack.
                if client != t.client && other.until > t.at + 1.0 {
                    found.push((other.clone(), t.clone()));
                }
            }
            let keep = latest
                .get(&t.client)
                .is_none_or(|prev| prev.until < t.until);
            if keep {
                latest.insert(t.client, t);
            }
        }
    }
    // Nested prefixes (a /56 inside another delegated prefix) cannot come from one pool config
    // with one delegated length; addresses are compared only with addresses.
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn told(client: u32, address: &str, at: f64, until: f64) -> Told {
        Told {
            client,
            duid: client_duid(client).to_vec(),
            server: vec![1],
            lease: Held {
                address: address.parse().unwrap(),
                prefix_len: 128,
            },
            at,
            until,
            by: "request",
        }
    }

    #[test]
    fn the_seeded_generator_repeats_itself() {
        let mut a = SeededRng::new(42);
        let mut b = SeededRng::new(42);
        let first: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        assert_eq!(first, (0..8).map(|_| b.next_u64()).collect::<Vec<_>>());
        assert_ne!(SeededRng::new(43).next_u64(), first[0]);
        assert!((0..100).all(|_| a.below(7) < 7));
    }

    #[test]
    fn one_address_told_to_two_clients_at_once_is_found() {
        let tells = [
            told(1, "2001:db8::1", 100.0, 160.0),
            told(2, "2001:db8::1", 150.0, 210.0),
        ];
        assert_eq!(double_grants(&tells).len(), 1);
    }

    #[test]
    fn an_address_told_again_after_its_expiry_is_no_double_grant() {
        let tells = [
            told(1, "2001:db8::1", 100.0, 160.0),
            told(1, "2001:db8::1", 130.0, 190.0),
            told(2, "2001:db8::1", 190.5, 250.0),
            told(3, "2001:db8::2", 150.0, 210.0),
        ];
        assert!(double_grants(&tells).is_empty());
    }

    #[test]
    fn a_renewal_extends_what_a_later_client_must_not_overlap() {
        let tells = [
            told(1, "2001:db8::1", 100.0, 160.0),
            told(1, "2001:db8::1", 150.0, 210.0),
            told(2, "2001:db8::1", 170.0, 230.0),
        ];
        assert_eq!(double_grants(&tells).len(), 1);
    }
}
