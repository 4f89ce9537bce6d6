//! Reconfigure (RFC 8415 section 18.3.11) with Reconfigure Key Authentication (section 20.4).
//!
//! A client that sends Reconfigure Accept (option 20) where `reconfigure` is on gets a random
//! 128-bit key in its Reply's Authentication option ([`key_option`]); the key is stored with its
//! leases ([`crate::store::ReconfigureKey`]) and kept on later Replies while the client has a
//! lease that carries it. [`Reconfigurer`] sends the Reconfigures: signed with HMAC-MD5 under
//! that key ([`signed_reconfigure`]), to the client's link-local address (port 546) or through
//! the relay chain it came through (a Relay-Repl to the relay, port 547), retransmitted
//! (REC_TIMEOUT doubling from 2 s, REC_MAX_RC 8) until the client sends a Renew, Rebind or
//! Information-Request, then stopped. A client without a key is never sent one (section 18.3.11:
//! only clients that sent Reconfigure Accept).

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dhcp_common::dhcpv6::*;
use hmac::{KeyInit, Mac};
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::config::{Config, ReconfigureMessage};
use crate::proto::{DhcpOption, Duid, Message, Packet};
use crate::store::{Lease, ReconfigureKey};

use super::operator::OperatorError;

/// Authentication protocol 3: Reconfigure Key (RFC 8415 section 20.4).
pub const PROTOCOL_RECONFIGURE_KEY: u8 = 3;
/// Algorithm 1: HMAC-MD5.
pub const ALGORITHM_HMAC_MD5: u8 = 1;
/// Replay detection method 0: a monotonically increasing counter.
pub const RDM_MONOTONIC: u8 = 0;
/// Authentication information type 1: the reconfigure key itself (in a Reply).
pub const TYPE_KEY: u8 = 1;
/// Authentication information type 2: the HMAC-MD5 of the message (in a Reconfigure).
pub const TYPE_HMAC: u8 = 2;
/// REC_TIMEOUT (RFC 8415 section 7.6): the first wait for the client's answer.
pub const REC_TIMEOUT: Duration = Duration::from_secs(2);
/// REC_MAX_RC: transmissions of one Reconfigure before giving up.
pub const REC_MAX_RC: u32 = 8;

/// Length of an Authentication option body of this protocol: protocol, algorithm, RDM, the
/// 8-byte replay counter, the type and the 16-byte key or HMAC.
const AUTH_BODY_LEN: usize = 3 + 8 + 1 + 16;

/// The replay detection counter, one for every message of this process: strictly increasing,
/// and started from the clock in nanoseconds so that a restarted server still sends larger
/// values than before (a client discards a Reconfigure whose counter is not above the last it
/// saw, RFC 8415 section 20.3).
static REPLAY: AtomicU64 = AtomicU64::new(0);

/// The next replay detection value.
pub fn next_replay() -> u64 {
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let step = |current: u64| Some(clock.max(current + 1));
    let previous = REPLAY
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, step)
        .unwrap_or_default();
    clock.max(previous + 1)
}

/// A fresh random reconfigure key (RFC 8415 section 20.4.1: 128 bits, cryptographically
/// strong).
pub fn fresh_key() -> [u8; 16] {
    rand::random()
}

fn auth_body(replay: u64, info_type: u8, value: &[u8; 16]) -> Vec<u8> {
    let mut body = Vec::with_capacity(AUTH_BODY_LEN);
    body.extend_from_slice(&[PROTOCOL_RECONFIGURE_KEY, ALGORITHM_HMAC_MD5, RDM_MONOTONIC]);
    body.extend_from_slice(&replay.to_be_bytes());
    body.push(info_type);
    body.extend_from_slice(value);
    body
}

/// The Authentication option of a Reply that hands the client its reconfigure key.
pub fn key_option(key: &[u8; 16], replay: u64) -> DhcpOption {
    DhcpOption::Auth(auth_body(replay, TYPE_KEY, key))
}

/// HMAC-MD5 (RFC 2104) of `data` under `key`.
pub fn hmac_md5(key: &[u8], data: &[u8]) -> [u8; 16] {
    let mut mac = <hmac::Hmac<md5::Md5> as KeyInit>::new_from_slice(key)
        .expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// A Reconfigure to `client` (RFC 8415 section 18.3.11: transaction-id 0, Server ID, Client
/// ID, Reconfigure Message, Authentication), encoded, its HMAC-MD5 computed over the whole
/// message with the HMAC field zeroed and written into it (section 20.4.2).
pub fn signed_reconfigure(
    server: &Duid,
    client: &Duid,
    answer_with: u8,
    key: &[u8; 16],
    replay: u64,
) -> Vec<u8> {
    let message = Message::new(MSG_RECONFIGURE, [0; 3])
        .with_option(DhcpOption::ServerId(server.clone()))
        .with_option(DhcpOption::ClientId(client.clone()))
        .with_option(DhcpOption::ReconfMsg(answer_with))
        .with_option(DhcpOption::Auth(auth_body(replay, TYPE_HMAC, &[0; 16])));
    let mut bytes = message
        .encode()
        .expect("a Reconfigure of known options encodes");
    // The Authentication option is the last one, its HMAC the message's last 16 bytes.
    let digest = hmac_md5(key, &bytes);
    let at = bytes.len() - 16;
    bytes[at..].copy_from_slice(&digest);
    bytes
}

/// True when `message` (a received Reconfigure, as encoded) carries an Authentication option of
/// this protocol whose HMAC-MD5 under `key` is right: what a client checks (section 20.4.3).
pub fn verify_reconfigure(message: &[u8], key: &[u8; 16]) -> bool {
    let Ok(decoded) = Message::decode(message) else {
        return false;
    };
    let Some(body) = decoded.options.iter().find_map(|o| match o {
        DhcpOption::Auth(body) => Some(body),
        _ => None,
    }) else {
        return false;
    };
    if body.len() != AUTH_BODY_LEN
        || body[..3] != [PROTOCOL_RECONFIGURE_KEY, ALGORITHM_HMAC_MD5, RDM_MONOTONIC]
        || body[11] != TYPE_HMAC
    {
        return false;
    }
    // The option is found by its body in the encoding: zero the HMAC there and recompute.
    let Some(at) = message
        .windows(body.len())
        .position(|window| window == body.as_slice())
    else {
        return false;
    };
    let mut zeroed = message.to_vec();
    zeroed[at + 12..at + 28].fill(0);
    use subtle::ConstantTimeEq;
    bool::from(hmac_md5(key, &zeroed).ct_eq(&body[12..]))
}

/// Where a Reconfigure to a client goes, and the datagram: the signed message, or that message
/// inside a Relay-Repl for every hop of the chain the client's request came through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Destination address and port (546 for a direct client, 547 for its relay), the scope
    /// being the interface the client was served on.
    pub to: SocketAddrV6,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

/// The datagram that takes `message` to the client of `lease` (keyed: `reconfigure` set), the
/// relay chain being the lease's `relay_info` (RFC 8415 section 18.3.11: through the relays, as
/// a Relay-Reply); `None` when the stored chain does not decode.
pub fn delivery(lease: &Lease, message: Vec<u8>, ifindex: u32) -> Option<Delivery> {
    let key = lease.reconfigure?;
    let scope = if crate::netif::is_link_local(&key.reply_to) {
        ifindex
    } else {
        0
    };
    if lease.relay_info.is_empty() {
        return Some(Delivery {
            to: SocketAddrV6::new(key.reply_to, CLIENT_PORT, 0, scope),
            payload: message,
        });
    }
    let chain = crate::proto::decode(&lease.relay_info).ok()?;
    let (relays, _) = chain.unwrap_relays();
    let mut packet = Packet::Message(Message::decode(&message).ok()?);
    for relay in relays.into_iter().rev() {
        packet = Packet::Relay(relay.reply_with(packet));
    }
    Some(Delivery {
        to: SocketAddrV6::new(key.reply_to, SERVER_PORT, 0, scope),
        payload: packet.encode().ok()?,
    })
}

/// Counters of the Reconfigure exchanges (`dhcp-user stats`, `reconfigure` section).
#[derive(Debug, Default)]
pub struct ReconfigureStats {
    /// Exchanges started.
    pub started: AtomicU64,
    /// Reconfigure messages sent, retransmissions included.
    pub sent: AtomicU64,
    /// Exchanges the client answered (a Renew, Rebind or Information-Request).
    pub answered: AtomicU64,
    /// Exchanges given up after REC_MAX_RC transmissions.
    pub gave_up: AtomicU64,
    /// Sends that failed (no route, the interface gone).
    pub send_errors: AtomicU64,
}

impl ReconfigureStats {
    /// The counters that are not zero, by name.
    pub fn snapshot(&self) -> std::collections::BTreeMap<String, u64> {
        [
            ("started", &self.started),
            ("sent", &self.sent),
            ("answered", &self.answered),
            ("gave_up", &self.gave_up),
            ("send_errors", &self.send_errors),
        ]
        .into_iter()
        .map(|(name, counter)| (name.to_string(), counter.load(Ordering::Relaxed)))
        .filter(|(_, value)| *value > 0)
        .collect()
    }

    fn count(counter: &AtomicU64, name: &'static str) {
        counter.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("dhcp_reconfigure_total", "event" => name).increment(1);
    }
}

/// One Reconfigure exchange to send: the client, its keyed lease and what to ask for.
#[derive(Debug, Clone)]
pub struct Target {
    /// The client's DUID.
    pub duid: Duid,
    /// A lease of the client carrying its key and where to send.
    pub lease: Lease,
    /// Renew (5) or Information-Request (11).
    pub answer_with: u8,
}

/// The exchanges in flight and their counters.
#[derive(Default)]
pub struct Reconfigurer {
    /// Clients awaiting a Reconfigure's answer, by DUID: woken when it comes.
    pending: Mutex<HashMap<Vec<u8>, Arc<Notify>>>,
    /// True while `pending` may be non-empty: the per-request check stays a load.
    any_pending: AtomicBool,
    stats: ReconfigureStats,
}

impl Reconfigurer {
    /// The counters.
    pub fn stats(&self) -> &ReconfigureStats {
        &self.stats
    }

    /// A message of `msg_type` came from `duid` (to the controller, or answered in XDP): a
    /// Renew, Rebind or Information-Request (or a Request) ends the client's exchange.
    pub fn client_sent(&self, duid: &[u8], msg_type: u8) {
        if !self.any_pending.load(Ordering::Relaxed)
            || !matches!(
                msg_type,
                MSG_RENEW | MSG_REBIND | MSG_INFORMATION_REQUEST | MSG_REQUEST
            )
        {
            return;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(answered) = pending.remove(duid) {
            answered.notify_one();
        }
        self.any_pending
            .store(!pending.is_empty(), Ordering::Relaxed);
    }

    /// Starts the exchanges of `targets`, at most `rate` per second, from `server`'s DUID;
    /// returns at once (the exchanges run on the runtime). A client already in an exchange is
    /// skipped. Returns how many were started.
    pub fn start(
        self: &Arc<Self>,
        server: Duid,
        targets: Vec<Target>,
        rate: u32,
    ) -> std::io::Result<usize> {
        let socket = std::net::UdpSocket::bind(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0))?;
        socket.set_nonblocking(true)?;
        let socket = Arc::new(tokio::net::UdpSocket::from_std(socket)?);
        let mut fresh = Vec::new();
        {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            for target in targets {
                let duid = target.duid.as_bytes().to_vec();
                if pending.contains_key(&duid) {
                    continue;
                }
                let answered = Arc::new(Notify::new());
                pending.insert(duid, Arc::clone(&answered));
                fresh.push((target, answered));
            }
            self.any_pending
                .store(!pending.is_empty(), Ordering::Relaxed);
        }
        let count = fresh.len();
        let this = Arc::clone(self);
        let gap = Duration::from_secs(1) / rate.max(1);
        tokio::spawn(async move {
            let mut pace = tokio::time::interval(gap);
            for (target, answered) in fresh {
                pace.tick().await;
                ReconfigureStats::count(&this.stats.started, "started");
                let this = Arc::clone(&this);
                let (server, socket) = (server.clone(), Arc::clone(&socket));
                tokio::spawn(async move {
                    this.exchange(&server, &socket, target, answered).await;
                });
            }
        });
        Ok(count)
    }

    /// One exchange: send, wait REC_TIMEOUT (doubling), send again, up to REC_MAX_RC times.
    async fn exchange(
        &self,
        server: &Duid,
        socket: &tokio::net::UdpSocket,
        target: Target,
        answered: Arc<Notify>,
    ) {
        let duid = target.duid.as_bytes().to_vec();
        let Some(key) = target.lease.reconfigure else {
            return;
        };
        let ifindex = nix::net::if_::if_nametoindex(target.lease.interface.as_str()).unwrap_or(0);
        let mut timeout = REC_TIMEOUT;
        for attempt in 0..REC_MAX_RC {
            // A fresh counter each time: the client accepts only counters above the last.
            let message = signed_reconfigure(
                server,
                &target.duid,
                target.answer_with,
                &key.key,
                next_replay(),
            );
            match delivery(&target.lease, message, ifindex) {
                Some(out) => match socket.send_to(&out.payload, out.to).await {
                    Ok(_) => {
                        ReconfigureStats::count(&self.stats.sent, "sent");
                        debug!(duid = %hex::encode(&duid), to = %out.to, attempt, "reconfigure sent");
                    }
                    Err(err) => {
                        ReconfigureStats::count(&self.stats.send_errors, "send_errors");
                        warn!(duid = %hex::encode(&duid), to = %out.to, error = %err, "reconfigure not sent");
                    }
                },
                None => {
                    warn!(duid = %hex::encode(&duid), "the stored relay chain does not decode; no reconfigure");
                    break;
                }
            }
            if tokio::time::timeout(timeout, answered.notified())
                .await
                .is_ok()
            {
                ReconfigureStats::count(&self.stats.answered, "answered");
                info!(duid = %hex::encode(&duid), "reconfigure answered");
                return;
            }
            timeout *= 2;
        }
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.remove(&duid);
        self.any_pending
            .store(!pending.is_empty(), Ordering::Relaxed);
        drop(pending);
        ReconfigureStats::count(&self.stats.gave_up, "gave_up");
        info!(duid = %hex::encode(&duid), "reconfigure not answered; gave up");
    }
}

/// The client's key to keep (RFC 8415 section 20.4.1: chosen once, in the exchange that gives
/// the client its leases), from its `leases`: the one its most recent keyed lease carries, if
/// any; `None`: the client gets a new key.
pub fn kept_key<'a>(leases: impl IntoIterator<Item = &'a Lease>) -> Option<[u8; 16]> {
    leases
        .into_iter()
        .filter_map(|l| Some((l.cltt, l.reconfigure?.key)))
        .max_by_key(|(cltt, _)| *cltt)
        .map(|(_, key)| key)
}

/// The stored form of a client's key and where to reach it.
pub fn binding_key(key: [u8; 16], reply_to: Ipv6Addr) -> ReconfigureKey {
    ReconfigureKey { key, reply_to }
}

/// Which clients `dhcp-user reconfigure` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconfigureSelector {
    /// One client.
    Duid(Vec<u8>),
    /// Every reconfigurable client of a subnet (by id).
    Subnet(u32),
}

/// The subnets (by id) whose options differ between `old` and `new`: their clients are sent a
/// Reconfigure after a reload with `[reconfigure] on-reload`.
pub fn subnets_with_new_options(old: &Config, new: &Config) -> Vec<u32> {
    new.subnets
        .iter()
        .filter(|subnet| {
            old.subnet(subnet.id).is_some_and(|before| {
                before.options != subnet.options
                    || before.pool_options != subnet.pool_options
                    || before.pd_pool_options != subnet.pd_pool_options
            })
        })
        .map(|subnet| subnet.id)
        .collect()
}

/// The keyed lease to reach a client through: assigned, live, in a subnet where `reconfigure`
/// is on now, the most recent such.
fn reachable(config: &Config, lease: &Lease, now: i64) -> bool {
    lease.reconfigure.is_some()
        && lease.is_active(now)
        && config
            .subnet(lease.subnet_id)
            .is_some_and(|s| s.reconfigure)
}

impl super::Server {
    /// The Reconfigure counters.
    pub fn reconfigure_stats(&self) -> &ReconfigureStats {
        self.reconfigurer.stats()
    }

    /// Sends the clients `selector` names a Reconfigure asking for `answer_with` (Renew or
    /// Information-Request), rate-limited by `[reconfigure] rate`; returns how many exchanges
    /// were started. Only clients holding a reconfigure key (they sent Reconfigure Accept, RFC
    /// 8415 section 18.3.11) are sent one: a client without is refused.
    pub fn reconfigure(
        &self,
        selector: &ReconfigureSelector,
        answer_with: ReconfigureMessage,
    ) -> Result<usize, OperatorError> {
        let config = self.config();
        let now = crate::clock::unix_now();
        let mut latest: HashMap<Vec<u8>, Lease> = HashMap::new();
        let mut keep = |lease: &Lease| {
            if reachable(&config, lease, now)
                && latest
                    .get(&lease.duid)
                    .is_none_or(|kept| kept.cltt < lease.cltt)
            {
                latest.insert(lease.duid.clone(), lease.clone());
            }
        };
        match selector {
            ReconfigureSelector::Duid(duid) => {
                let leases = self.durable_leases_of(duid, super::MAX_LEASES_PER_CLIENT);
                if leases.is_empty() {
                    return Err(OperatorError::NotFound(format!(
                        "no leases for DUID {}",
                        hex::encode(duid)
                    )));
                }
                leases.iter().for_each(&mut keep);
                if latest.is_empty() {
                    return Err(OperatorError::Conflict(format!(
                        "client {} has no reconfigure key: it did not send Reconfigure Accept,                          or `reconfigure` is off for its subnet (RFC 8415 section 18.3.11)",
                        hex::encode(duid)
                    )));
                }
            }
            ReconfigureSelector::Subnet(id) => {
                if config.subnet(*id).is_none() {
                    return Err(OperatorError::NotFound(format!("no subnet with id {id}")));
                }
                let state = self.lock_state();
                for lease in state.mirror.range_after(None) {
                    if lease.subnet_id == *id {
                        keep(&lease);
                    }
                }
            }
        }
        let mut targets: Vec<Target> = latest
            .into_values()
            .filter_map(|lease| {
                Some(Target {
                    duid: Duid::new(lease.duid.clone()).ok()?,
                    lease,
                    answer_with: answer_with.msg_type(),
                })
            })
            .collect();
        targets.sort_by(|a, b| a.duid.as_bytes().cmp(b.duid.as_bytes()));
        let started = self
            .reconfigurer
            .start(self.server_duid.clone(), targets, config.reconfigure.rate)
            .map_err(|source| {
                OperatorError::Server(super::ServerError::Io {
                    context: "opening the Reconfigure socket".into(),
                    source,
                })
            })?;
        info!(?selector, started, "reconfigure");
        Ok(started)
    }

    /// After a reload: a Reconfigure (the configured message) to every reconfigurable client of
    /// the subnets `ids`; how many exchanges were started.
    pub fn reconfigure_subnets(&self, ids: &[u32]) -> usize {
        let message = self.config().reconfigure.message;
        ids.iter()
            .map(|id| {
                self.reconfigure(&ReconfigureSelector::Subnet(*id), message)
                    .unwrap_or_else(|err| {
                        warn!(subnet = id, error = %err, "reconfigure after reload");
                        0
                    })
            })
            .sum()
    }
}

#[cfg(test)]
mod tests;
