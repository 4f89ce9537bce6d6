//! What an operator (or a provisioning system, through the control socket or the HTTP API)
//! changes at run time: leases added, updated and deleted by hand, and reservations added and
//! deleted. Every change takes the path of a grant: decided under the decision lock against the
//! durable rows and the commits in flight, made durable by the writer, then published as a lease
//! event (so the fast path's maps, active leasequery, peers and the lease log follow) before the
//! answer.
//!
//! Reservations made here are kept in `<state-dir>/reservations.json` (written whole, then
//! renamed into place) and merged into the configuration's at start (and at every reload),
//! before the allocator and the fast path read them. At run time both learn them at once: the
//! fast path's map sync ([`ReservationFollower`]) before the allocator honours an added one and
//! after it forgets a deleted one, each time rebuilding the bindings the change may affect, so
//! that the XDP program never answers a client from a binding the controller no longer keeps.

use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv6Net;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use super::{format_lease, OverlayView, Server, ServerError};
use crate::binding_rule::{in_pools, Claimant};
use crate::clock::unix_now;
use crate::config::{parse_hex, Config, LineId, LineKind, Reservation, ReservedClient, Subnet};
use crate::lease_events::{LeaseEvent, LeaseEventKind};
use crate::server::allocator::LeaseView;
use crate::store::{Lease, LeaseChange, LeaseKey, LeaseState, LeaseType};

/// File of the reservations made at run time, in the state directory.
pub const RESERVATIONS_FILE: &str = "reservations.json";

/// Why an operator's change was refused.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// The request does not name a valid lease or reservation.
    #[error("{0}")]
    BadRequest(String),
    /// Nothing matches.
    #[error("{0}")]
    NotFound(String),
    /// It would take what another client holds, or change what the fast path answers from.
    #[error("{0}")]
    Conflict(String),
    /// The store or the state directory failed.
    #[error(transparent)]
    Server(#[from] ServerError),
}

impl From<crate::store::StoreError> for OperatorError {
    fn from(err: crate::store::StoreError) -> Self {
        OperatorError::Server(ServerError::Store(err))
    }
}

/// A lease to add: an address (IA_NA) or a prefix (IA_PD) for a client's IA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseSpec {
    /// The address (IA_NA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv6Addr>,
    /// The delegated prefix, `addr/len` (IA_PD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Client DUID, hex (`:` separators allowed).
    pub duid: String,
    /// The IA's IAID.
    pub iaid: u32,
    /// Subnet id; default: the subnet whose pools (or reservations) hold the lease.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<u32>,
    /// Preferred lifetime, seconds (default: the subnet's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_lifetime: Option<u32>,
    /// Valid lifetime, seconds (default: the subnet's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_lifetime: Option<u32>,
    /// The interface the client is on (default: none recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The link-address of the relay closest to the client, for a relayed client (default:
    /// `::`, a client on a link of ours), as leasequery by link-address (RFC 5007) and the
    /// lease log report it. The fast path renews such a lease without the controller seeing
    /// the relay, so it is given here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_address: Option<Ipv6Addr>,
}

/// New lifetimes for a lease, counted from now: `valid_lifetime`, or `expires` (unix time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseUpdate {
    /// The address (IA_NA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv6Addr>,
    /// The delegated prefix, `addr/len` (IA_PD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// New preferred lifetime, seconds (default: the valid one, or the old one if shorter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_lifetime: Option<u32>,
    /// New valid lifetime, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_lifetime: Option<u32>,
    /// New end of the valid lifetime, unix seconds (instead of `valid_lifetime`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
}

/// A Remote-ID as reservations name it: the enterprise number and the id (hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteIdSpec {
    /// Enterprise number.
    pub enterprise: u32,
    /// The id, hex.
    pub id: String,
}

/// A reservation as the API (and `reservations.json`) writes it: a subnet, exactly one client
/// identity (a DUID or a line identity, as the configuration's reservations take them), and an
/// address and/or a prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReservationSpec {
    /// Subnet id.
    pub subnet: u32,
    /// Client DUID, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duid: Option<String>,
    /// Remote-ID (37) of the client's line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<RemoteIdSpec>,
    /// Interface-ID (18) of the client's line, as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_id: Option<String>,
    /// Subscriber-ID (38) of the client's line, as a string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscriber_id: Option<String>,
    /// Client link-layer address (79), an Ethernet MAC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_linklayer_address: Option<String>,
    /// The reserved address (IA_NA); not needed to delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv6Addr>,
    /// The reserved prefix (IA_PD), `addr/len`; not needed to delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
}

/// One reservation as listed: where it comes from, and the reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservationRow {
    /// `config` (the configuration file) or `api` (made at run time, in `reservations.json`).
    pub source: String,
    /// The reservation.
    #[serde(flatten)]
    pub reservation: ReservationSpec,
}

/// Counts of one pool: its size, the leases assigned (and not expired), declined, and free.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolUsageRow {
    /// Subnet id.
    pub subnet_id: u32,
    /// The subnet's prefix.
    pub subnet: String,
    /// "na" or "pd".
    pub kind: String,
    /// The pool: `low-high`, or `prefix/len delegated /N`; `reserved` for reserved leases
    /// outside every pool.
    pub pool: String,
    /// Addresses (or delegable prefixes) in the pool (saturating).
    pub total: u128,
    /// Assigned, unexpired leases.
    pub assigned: u64,
    /// Declined (quarantined) leases.
    pub declined: u64,
    /// What is left: total - assigned - declined.
    pub free: u128,
}

/// Parses a hex DUID.
fn duid_of(text: &str) -> Result<Vec<u8>, OperatorError> {
    let duid = parse_hex(text).map_err(|err| OperatorError::BadRequest(format!("duid: {err}")))?;
    if duid.is_empty() || duid.len() > 130 {
        return Err(OperatorError::BadRequest(
            "duid: a DUID is 1 to 130 bytes".into(),
        ));
    }
    Ok(duid)
}

/// Parses a delegated prefix.
fn prefix_of(text: &str) -> Result<Ipv6Net, OperatorError> {
    crate::config::parse_prefix(text)
        .map_err(|err| OperatorError::BadRequest(format!("prefix: {err}")))
}

/// The lease key an `address` or a `prefix` names: exactly one of them.
pub fn key_of(address: Option<Ipv6Addr>, prefix: Option<&str>) -> Result<LeaseKey, OperatorError> {
    match (address, prefix) {
        (Some(address), None) => Ok(LeaseKey::na(address)),
        (None, Some(prefix)) => {
            let net = prefix_of(prefix)?;
            Ok(LeaseKey::pd(net.network(), net.prefix_len()))
        }
        _ => Err(OperatorError::BadRequest(
            "name the lease by exactly one of `address` and `prefix`".into(),
        )),
    }
}

fn describe(key: &LeaseKey) -> String {
    match key.lease_type {
        LeaseType::Na => key.address.to_string(),
        LeaseType::Pd => format!("{}/{}", key.address, key.prefix_len),
    }
}

impl ReservationSpec {
    /// The client the reservation names: exactly one identity.
    fn client(&self) -> Result<ReservedClient, OperatorError> {
        let line = |kind, value| ReservedClient::Line(LineId { kind, value });
        let mut given = Vec::new();
        if let Some(duid) = &self.duid {
            given.push(ReservedClient::Duid(duid_of(duid)?));
        }
        if let Some(remote) = &self.remote_id {
            let mut value = remote.enterprise.to_be_bytes().to_vec();
            value.extend(
                parse_hex(&remote.id)
                    .map_err(|err| OperatorError::BadRequest(format!("remote_id.id: {err}")))?,
            );
            given.push(line(LineKind::RemoteId, value));
        }
        if let Some(id) = &self.interface_id {
            given.push(line(LineKind::InterfaceId, id.clone().into_bytes()));
        }
        if let Some(id) = &self.subscriber_id {
            given.push(line(LineKind::SubscriberId, id.clone().into_bytes()));
        }
        if let Some(mac) = &self.client_linklayer_address {
            let bytes = parse_hex(mac).map_err(|err| {
                OperatorError::BadRequest(format!("client_linklayer_address: {err}"))
            })?;
            if bytes.len() != 6 {
                return Err(OperatorError::BadRequest(
                    "client_linklayer_address: an Ethernet MAC is 6 bytes".into(),
                ));
            }
            // Link-layer type 1 (Ethernet), then the address, as the configuration stores it.
            let mut value = vec![0, 1];
            value.extend(bytes);
            given.push(line(LineKind::ClientLinklayerAddress, value));
        }
        match given.len() {
            1 => Ok(given.remove(0)),
            0 => Err(OperatorError::BadRequest(
                "a reservation names its client: duid, remote_id, interface_id, subscriber_id \
                 or client_linklayer_address"
                    .into(),
            )),
            _ => Err(OperatorError::BadRequest(
                "a reservation names exactly one client identity".into(),
            )),
        }
    }

    /// The reservation, checked against `subnet` (address inside its prefix, one given).
    fn reservation(&self, subnet: &Subnet) -> Result<Reservation, OperatorError> {
        let client = self.client()?;
        let prefix = self.prefix.as_deref().map(prefix_of).transpose()?;
        if self.address.is_none() && prefix.is_none() {
            return Err(OperatorError::BadRequest(
                "a reservation needs an address or a prefix".into(),
            ));
        }
        if let Some(address) = self.address {
            if !subnet.prefix.contains(&address) {
                return Err(OperatorError::BadRequest(format!(
                    "{address} is outside subnet {} ({})",
                    subnet.id, subnet.prefix
                )));
            }
        }
        Ok(Reservation {
            client,
            address: self.address,
            prefix,
            // Options of a reservation come from the configuration file only.
            options: Vec::new(),
        })
    }

    /// The spec of a configured reservation.
    fn of(subnet: u32, reservation: &Reservation) -> ReservationSpec {
        let mut spec = ReservationSpec {
            subnet,
            duid: None,
            remote_id: None,
            interface_id: None,
            subscriber_id: None,
            client_linklayer_address: None,
            address: reservation.address,
            prefix: reservation.prefix.map(|p| p.to_string()),
        };
        match &reservation.client {
            ReservedClient::Duid(duid) => spec.duid = Some(hex::encode(duid)),
            ReservedClient::Line(line) => match line.kind {
                LineKind::RemoteId if line.value.len() >= 4 => {
                    spec.remote_id = Some(RemoteIdSpec {
                        enterprise: u32::from_be_bytes([
                            line.value[0],
                            line.value[1],
                            line.value[2],
                            line.value[3],
                        ]),
                        id: hex::encode(&line.value[4..]),
                    })
                }
                LineKind::InterfaceId => {
                    spec.interface_id = Some(String::from_utf8_lossy(&line.value).into_owned())
                }
                LineKind::SubscriberId => {
                    spec.subscriber_id = Some(String::from_utf8_lossy(&line.value).into_owned())
                }
                LineKind::ClientLinklayerAddress if line.value.len() > 2 => {
                    spec.client_linklayer_address = Some(hex::encode(&line.value[2..]))
                }
                _ => spec.duid = Some(format!("line {line}")),
            },
        }
        spec
    }
}

/// The reservations made at run time, as kept in `state_dir` (none when there is no file).
pub fn read_runtime_reservations(state_dir: &Path) -> Result<Vec<ReservationSpec>, ServerError> {
    let path = state_dir.join(RESERVATIONS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|err| ServerError::Config(format!("{}: {err}", path.display()))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(ServerError::Io {
            context: format!("reading {}", path.display()),
            source,
        }),
    }
}

/// Writes `specs` to `state_dir` durably: a temporary file, fsynced, renamed into place, the
/// directory fsynced.
fn write_runtime_reservations(
    state_dir: &Path,
    specs: &[ReservationSpec],
) -> Result<(), ServerError> {
    use std::io::Write;
    let path: PathBuf = state_dir.join(RESERVATIONS_FILE);
    let staged = state_dir.join(format!(".{RESERVATIONS_FILE}.tmp"));
    let io = |context: String| move |source| ServerError::Io { context, source };
    let text = serde_json::to_vec_pretty(specs)
        .map_err(|err| ServerError::Config(format!("encoding reservations: {err}")))?;
    let mut file =
        std::fs::File::create(&staged).map_err(io(format!("creating {}", staged.display())))?;
    file.write_all(&text)
        .and_then(|()| file.sync_all())
        .map_err(io(format!("writing {}", staged.display())))?;
    std::fs::rename(&staged, &path).map_err(io(format!("moving {} into place", path.display())))?;
    std::fs::File::open(state_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io(format!("syncing {}", state_dir.display())))?;
    Ok(())
}

/// Adds the reservations made at run time (in `config.state_dir`) to the configuration's, so
/// that the allocator and the fast path start with them. One whose subnet is gone, or whose
/// client or address the configuration now reserves itself, is skipped with a warning (and
/// stays in the file).
pub fn merge_runtime_reservations(config: &mut Config) -> Result<usize, ServerError> {
    let specs = read_runtime_reservations(&config.state_dir)?;
    let mut merged = 0;
    for spec in specs {
        let Some(index) = config.subnets.iter().position(|s| s.id == spec.subnet) else {
            warn!(
                subnet = spec.subnet,
                "a reservation made at run time names a subnet no longer configured; skipped"
            );
            continue;
        };
        let reservation = match spec.reservation(&config.subnets[index]) {
            Ok(reservation) => reservation,
            Err(err) => {
                warn!(error = %err, "a reservation made at run time is not valid; skipped");
                continue;
            }
        };
        let clash = config
            .subnets
            .iter()
            .flat_map(|s| &s.reservations)
            .any(|r| {
                r.client == reservation.client && config.subnets[index].reservations.contains(r)
                    || (r.address.is_some() && r.address == reservation.address)
                    || (r.prefix.is_some() && r.prefix == reservation.prefix)
            });
        if clash {
            warn!(
                subnet = spec.subnet,
                "a reservation made at run time clashes with one of the configuration; skipped"
            );
            continue;
        }
        config.subnets[index].reservations.push(reservation);
        merged += 1;
    }
    Ok(merged)
}

/// Serialises reservation changes (the file is read, changed and written whole), and a reload
/// with them ([`reservations_settled`]).
static RESERVATIONS_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for the reservation change under way and holds off the next: a reload holds it from
/// reading `reservations.json` until the allocator and the fast path have the new
/// configuration, so that no reservation made meanwhile is lost from them.
pub async fn reservations_settled() -> tokio::sync::MutexGuard<'static, ()> {
    RESERVATIONS_LOCK.lock().await
}

/// A copy of the reservations kept outside the allocator (the fast path's map sync), told of
/// every change made at run time ([`Server::follow_reservations`]).
pub trait ReservationFollower: Send + Sync {
    /// `reservation` was added to subnet `subnet_id` (`added`) or deleted from it; `clients`
    /// are the DUIDs whose bindings it may change, or `None` (a reservation by line) when
    /// they are not known.
    fn reservation_changed(
        &self,
        subnet_id: u32,
        reservation: &Reservation,
        added: bool,
        clients: Option<&[Vec<u8>]>,
    ) -> Result<(), anyhow::Error>;
}

impl Server {
    /// Tells `follower` of every reservation added or deleted at run time from now on.
    pub fn follow_reservations(&self, follower: std::sync::Arc<dyn ReservationFollower>) {
        self.reservation_followers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(follower);
    }

    /// The DUIDs whose bindings `reservation` may change: its client's (by DUID) and those
    /// holding its address or prefix; `None` (every binding) for a reservation by line (see
    /// [`ReservationFollower`]), or when the leases could not be read.
    fn reservation_clients(&self, reservation: &Reservation) -> Option<Vec<Vec<u8>>> {
        let ReservedClient::Duid(duid) = &reservation.client else {
            return None;
        };
        let mut clients = vec![duid.clone()];
        let mut guard = self.lock_state();
        let super::DecisionState {
            mirror, pending, ..
        } = &mut *guard;
        let view = OverlayView { mirror, pending };
        for key in reserved_keys(reservation) {
            if let Some(held) = view.get(&key).ok()? {
                if !clients.contains(&held.duid) {
                    clients.push(held.duid);
                }
            }
        }
        Some(clients)
    }

    /// Tells the followers (never called under the decision lock: they read the leases).
    fn tell_followers(
        &self,
        subnet_id: u32,
        reservation: &Reservation,
        added: bool,
        clients: Option<&[Vec<u8>]>,
    ) {
        let followers = self
            .reservation_followers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for follower in followers {
            if let Err(err) = follower.reservation_changed(subnet_id, reservation, added, clients) {
                warn!(
                    subnet = subnet_id,
                    "a reservation change did not reach the fast path: {err:#}"
                );
            }
        }
    }

    /// The subnet a lease belongs to: `subnet` when given (it must hold the lease), else the
    /// first whose pools hold it, else one where it is reserved.
    fn subnet_for(&self, key: &LeaseKey, subnet: Option<u32>) -> Result<Subnet, OperatorError> {
        // One snapshot: a reload in between must not mix two configurations.
        let config = self.config();
        if let Some(id) = subnet {
            return config
                .subnet(id)
                .cloned()
                .ok_or_else(|| OperatorError::BadRequest(format!("no subnet {id}")));
        }
        if let Some(found) = config.subnets.iter().find(|s| in_pools(s, key)) {
            return Ok(found.clone());
        }
        let reserved_in = {
            let state = self.lock_state();
            config
                .subnets
                .iter()
                .find(|s| {
                    state
                        .allocator
                        .reservations()
                        .owner(key)
                        .is_some_and(|owner| state.allocator.reservations().has_client(s.id, owner))
                        && (key.lease_type == LeaseType::Pd || s.prefix.contains(&key.address))
                })
                .map(|s| s.id)
        };
        reserved_in
            .and_then(|id| config.subnet(id).cloned())
            .ok_or_else(|| {
                OperatorError::BadRequest(format!(
                    "{} is in no subnet's pools (name the subnet of its reservation with `subnet`)",
                    describe(key)
                ))
            })
    }

    /// Commits `changes` as a decision would (entered in flight, made durable, the allocator's
    /// offers of those keys dropped), then publishes `events`.
    async fn commit_operator(
        &self,
        changes: Vec<LeaseChange>,
        events: Vec<LeaseEvent>,
    ) -> Result<(), OperatorError> {
        let (generation, commit) = {
            let mut state = self.lock_state();
            let generation = state.begin(&changes);
            (generation, self.writer.start_commit(changes.clone()))
        };
        self.commit_started(changes, events, generation, commit)
            .await
    }

    async fn commit_started(
        &self,
        changes: Vec<LeaseChange>,
        events: Vec<LeaseEvent>,
        generation: u64,
        commit: crate::store::PendingCommit,
    ) -> Result<(), OperatorError> {
        let result = commit.wait().await;
        {
            let mut state = self.lock_state();
            state.finish(&changes, generation);
            for change in &changes {
                state.allocator.drop_offer(&change.key());
            }
            state.allocator.slots_may_be_free();
        }
        result?;
        self.publish(events);
        Ok(())
    }

    /// Adds a lease by hand: it must lie in a pool of its subnet (or be its client's
    /// reservation there), be reserved for no other client, and be held by no other client
    /// (assigned and unexpired, or declined); the client's own lease of that key is replaced.
    /// Durable and published (`granted`) before this returns.
    pub async fn operator_add_lease(&self, spec: &LeaseSpec) -> Result<Lease, OperatorError> {
        let duid = duid_of(&spec.duid)?;
        let key = key_of(spec.address, spec.prefix.as_deref())?;
        let subnet = self.subnet_for(&key, spec.subnet)?;
        let valid = spec.valid_lifetime.unwrap_or(subnet.valid_lifetime);
        let preferred = spec
            .preferred_lifetime
            .unwrap_or(subnet.preferred_lifetime.min(valid));
        if valid == 0 || preferred > valid {
            return Err(OperatorError::BadRequest(
                "lifetimes: valid_lifetime must be over 0 and at least preferred_lifetime".into(),
            ));
        }
        let link_address = spec.link_address.unwrap_or(Ipv6Addr::UNSPECIFIED);
        if link_address.is_multicast()
            || link_address.is_loopback()
            || crate::netif::is_link_local(&link_address)
        {
            return Err(OperatorError::BadRequest(format!(
                "link_address {link_address}: a relay's link-address is a global (or \
                 unique-local) address of the client's link"
            )));
        }
        let now = unix_now();
        // Next hop, line and the rest of the relay data: learned from the client's next message
        // the controller answers.
        let mut lease = Lease {
            interface: spec.interface.clone().unwrap_or_default(),
            link_address,
            ..Lease::bare(
                key.lease_type,
                key.address,
                key.prefix_len,
                duid.clone(),
                spec.iaid,
                subnet.id,
            )
        };
        lease.assign(now, preferred, valid);
        lease.validate()?;
        let changes = vec![LeaseChange::Upsert(lease.clone())];
        let (generation, commit) = {
            let mut guard = self.lock_state();
            let claimant = Claimant::duid(&duid);
            let reservations = guard.allocator.reservations();
            let own = reservations.of_client(subnet.id, key.lease_type, &claimant) == Some(key);
            if reservations.reserved_for_another(&key, &claimant) {
                return Err(OperatorError::Conflict(format!(
                    "{} is reserved for another client",
                    describe(&key)
                )));
            }
            if !own && !in_pools(&subnet, &key) {
                return Err(OperatorError::BadRequest(format!(
                    "{} is in none of subnet {}'s pools (and not this client's reservation)",
                    describe(&key),
                    subnet.id
                )));
            }
            let super::DecisionState {
                mirror, pending, ..
            } = &mut *guard;
            let view = OverlayView { mirror, pending };
            if let Some(held) = view.get(&key)? {
                let by_other = held.duid != duid;
                let declined = held.state == LeaseState::Declined && held.expire > now;
                if by_other && (held.is_active(now) || declined) {
                    return Err(OperatorError::Conflict(format!(
                        "{} is held by client {} ({}) until {}",
                        describe(&key),
                        hex::encode(&held.duid),
                        if declined { "declined" } else { "assigned" },
                        held.expire
                    )));
                }
            }
            let generation = guard.begin(&changes);
            (generation, self.writer.start_commit(changes.clone()))
        };
        info!(duid = %hex::encode(&duid), lease = %format_lease(&lease), "operator lease add");
        let events = vec![LeaseEvent {
            kind: LeaseEventKind::Granted,
            lease: lease.clone(),
        }];
        self.commit_started(changes, events, generation, commit)
            .await?;
        Ok(lease)
    }

    /// New lifetimes for an assigned lease, counted from now (published as `renewed`).
    pub async fn operator_update_lease(
        &self,
        update: &LeaseUpdate,
    ) -> Result<Lease, OperatorError> {
        let key = key_of(update.address, update.prefix.as_deref())?;
        let now = unix_now();
        let valid = match (update.valid_lifetime, update.expires) {
            (Some(valid), None) => valid,
            (None, Some(expires)) if expires > now => u32::try_from(expires - now)
                .map_err(|_| OperatorError::BadRequest("expires: too far in the future".into()))?,
            (None, Some(_)) => {
                return Err(OperatorError::BadRequest(
                    "expires: must be in the future (delete the lease to end it now)".into(),
                ))
            }
            _ => {
                return Err(OperatorError::BadRequest(
                    "give exactly one of `valid_lifetime` and `expires`".into(),
                ))
            }
        };
        let preferred = update.preferred_lifetime.unwrap_or(valid);
        if valid == 0 || preferred > valid {
            return Err(OperatorError::BadRequest(
                "lifetimes: valid_lifetime must be over 0 and at least preferred_lifetime".into(),
            ));
        }
        let (lease, changes, generation, commit) = {
            let mut guard = self.lock_state();
            let super::DecisionState {
                mirror, pending, ..
            } = &mut *guard;
            let view = OverlayView { mirror, pending };
            let Some(mut lease) = view.get(&key)?.filter(|l| l.state == LeaseState::Assigned)
            else {
                return Err(OperatorError::NotFound(format!(
                    "no assigned lease of {}",
                    describe(&key)
                )));
            };
            lease.assign(now, preferred, valid);
            let changes = vec![LeaseChange::Upsert(lease.clone())];
            let generation = guard.begin(&changes);
            let commit = self.writer.start_commit(changes.clone());
            (lease, changes, generation, commit)
        };
        info!(lease = %format_lease(&lease), expires = lease.expire, "operator lease update");
        let events = vec![LeaseEvent {
            kind: LeaseEventKind::Renewed,
            lease: lease.clone(),
        }];
        self.commit_started(changes, events, generation, commit)
            .await?;
        Ok(lease)
    }

    /// Deletes the lease of exactly this address or prefix (published as `cleared`); the
    /// address is then given to no client for `OFFER_HOLD_SECS`.
    pub async fn operator_delete_lease(
        &self,
        address: Option<Ipv6Addr>,
        prefix: Option<&str>,
    ) -> Result<Lease, OperatorError> {
        let key = key_of(address, prefix)?;
        let lease = {
            let mut guard = self.lock_state();
            let super::DecisionState {
                mirror, pending, ..
            } = &mut *guard;
            let view = OverlayView { mirror, pending };
            view.get(&key)?
        };
        let Some(lease) = lease else {
            return Err(OperatorError::NotFound(format!(
                "no lease of {}",
                describe(&key)
            )));
        };
        info!(duid = %hex::encode(&lease.duid), lease = %format_lease(&lease), "operator lease delete");
        let events = vec![LeaseEvent {
            kind: LeaseEventKind::Cleared,
            lease: lease.clone(),
        }];
        self.commit_operator(vec![LeaseChange::Delete(key)], events)
            .await?;
        // Held for no client for a while (as an Advertise holds an offer): the client's next
        // Renew gets NoBinding instead of the address back (RFC 8415 section 18.3.4 lets a
        // server recover a free address it lists), so a revoked client starts over.
        self.lock_state().allocator.hold_offer(key, &[], unix_now());
        Ok(lease)
    }

    /// The leases of an address (or the prefixes containing it), of a prefix, or of a client.
    pub fn operator_get_leases(
        &self,
        address: Option<Ipv6Addr>,
        prefix: Option<&str>,
        duid: Option<&str>,
    ) -> Result<Vec<Lease>, OperatorError> {
        match (address, prefix, duid) {
            (Some(address), None, None) => {
                let mut leases: Vec<Lease> =
                    self.store.get_by_address(address)?.into_iter().collect();
                leases.extend(self.store.find_prefixes_containing(address)?);
                Ok(leases)
            }
            (None, Some(prefix), None) => {
                let key = key_of(None, Some(prefix))?;
                Ok(self.store.get(&key)?.into_iter().collect())
            }
            (None, None, Some(duid)) => {
                Ok(self.durable_leases_of(&duid_of(duid)?, super::MAX_LEASES_PER_CLIENT))
            }
            _ => Err(OperatorError::BadRequest(
                "lease get takes exactly one of `address`, `prefix`, `duid`".into(),
            )),
        }
    }

    /// Every reservation: the configuration's and those made at run time.
    pub fn operator_list_reservations(&self) -> Result<Vec<ReservationRow>, OperatorError> {
        let config = self.config();
        let runtime = read_runtime_reservations(&config.state_dir)?;
        let mut rows = Vec::new();
        for subnet in &config.subnets {
            for reservation in &subnet.reservations {
                let spec = ReservationSpec::of(subnet.id, reservation);
                // Those of the file were merged into the configuration at start.
                let from_file = runtime.iter().any(|r| {
                    r.subnet == subnet.id
                        && r.reservation(subnet).ok().as_ref() == Some(reservation)
                });
                if !from_file {
                    rows.push(ReservationRow {
                        source: "config".into(),
                        reservation: spec,
                    });
                }
            }
        }
        rows.extend(runtime.into_iter().map(|reservation| ReservationRow {
            source: "api".into(),
            reservation,
        }));
        Ok(rows)
    }

    /// Adds a reservation: kept in `reservations.json` before the answer, honoured by the next
    /// request of its client. Refused when the client already has a reservation in the subnet,
    /// or the address or prefix is reserved or held by another client. A lease the client
    /// holds elsewhere in the subnet leaves the fast path's map at once: the controller goes
    /// on extending it on a Renew and offers the reservation to the next Solicit.
    pub async fn operator_add_reservation(
        &self,
        spec: &ReservationSpec,
    ) -> Result<ReservationSpec, OperatorError> {
        let config = self.config();
        let subnet = config
            .subnet(spec.subnet)
            .ok_or_else(|| OperatorError::BadRequest(format!("no subnet {}", spec.subnet)))?;
        let reservation = spec.reservation(subnet)?;
        let _serial = RESERVATIONS_LOCK.lock().await;
        self.check_reservation(subnet, &reservation)?;
        let mut specs = read_runtime_reservations(&config.state_dir)?;
        let mut stored = spec.clone();
        stored.prefix = reservation.prefix.map(|p| p.to_string());
        specs.push(stored.clone());
        write_runtime_reservations(&config.state_dir, &specs)?;
        // The fast path first: until the allocator honours it, the program is only the more
        // careful of the two (it passes on what the reservation may change).
        let clients = self.reservation_clients(&reservation);
        self.tell_followers(subnet.id, &reservation, true, clients.as_deref());
        // Checked again under the lock it is entered under: a grant since the first check
        // undoes the file's change.
        let entered = {
            let mut state = self.lock_state();
            match self.check_reservation_locked(&mut state, subnet, &reservation) {
                Ok(()) => {
                    state
                        .allocator
                        .reservations_mut()
                        .insert(subnet.id, &reservation);
                    for key in reserved_keys(&reservation) {
                        state.allocator.drop_offer(&key);
                    }
                    Ok(())
                }
                Err(err) => Err(err),
            }
        };
        if let Err(err) = entered {
            self.tell_followers(subnet.id, &reservation, false, clients.as_deref());
            specs.pop();
            write_runtime_reservations(&config.state_dir, &specs)?;
            return Err(err);
        }
        info!(subnet = subnet.id, reservation = ?stored, "operator reservation add");
        Ok(stored)
    }

    /// Deletes a reservation made at run time (the subnet and the client identify it). One of
    /// the configuration file is refused (edit the file), and so is one whose client holds the
    /// reserved lease (delete the lease first).
    pub async fn operator_delete_reservation(
        &self,
        spec: &ReservationSpec,
    ) -> Result<ReservationSpec, OperatorError> {
        let config = self.config();
        let subnet = config
            .subnet(spec.subnet)
            .ok_or_else(|| OperatorError::BadRequest(format!("no subnet {}", spec.subnet)))?;
        let client = spec.client()?;
        let _serial = RESERVATIONS_LOCK.lock().await;
        let mut specs = read_runtime_reservations(&config.state_dir)?;
        let Some(at) = specs
            .iter()
            .position(|r| r.subnet == spec.subnet && r.client().ok().as_ref() == Some(&client))
        else {
            let in_config = subnet.reservations.iter().any(|r| r.client == client);
            return Err(if in_config {
                OperatorError::Conflict(
                    "this reservation is in the configuration file: edit the file".into(),
                )
            } else {
                OperatorError::NotFound("no reservation of this client in this subnet".into())
            });
        };
        let reservation = specs[at].reservation(subnet)?;
        {
            let mut guard = self.lock_state();
            let now = unix_now();
            let super::DecisionState {
                mirror, pending, ..
            } = &mut *guard;
            let view = OverlayView { mirror, pending };
            for key in reserved_keys(&reservation) {
                if let Some(held) = view.get(&key)?.filter(|l| l.is_active(now)) {
                    return Err(OperatorError::Conflict(format!(
                        "{} is held by client {} now: delete the lease first",
                        describe(&key),
                        hex::encode(&held.duid)
                    )));
                }
            }
            guard
                .allocator
                .reservations_mut()
                .remove(subnet.id, &reservation);
        }
        // The fast path after the allocator: meanwhile it is only the more careful of the two.
        let clients = self.reservation_clients(&reservation);
        self.tell_followers(subnet.id, &reservation, false, clients.as_deref());
        let removed = specs.remove(at);
        if let Err(err) = write_runtime_reservations(&config.state_dir, &specs) {
            // Not durable: honoured again, as the file still says.
            self.tell_followers(subnet.id, &reservation, true, clients.as_deref());
            self.lock_state()
                .allocator
                .reservations_mut()
                .insert(subnet.id, &reservation);
            return Err(err.into());
        }
        info!(subnet = subnet.id, reservation = ?removed, "operator reservation delete");
        Ok(removed)
    }

    fn check_reservation(
        &self,
        subnet: &Subnet,
        reservation: &Reservation,
    ) -> Result<(), OperatorError> {
        let mut state = self.lock_state();
        self.check_reservation_locked(&mut state, subnet, reservation)
    }

    fn check_reservation_locked(
        &self,
        state: &mut super::DecisionState,
        subnet: &Subnet,
        reservation: &Reservation,
    ) -> Result<(), OperatorError> {
        let now = unix_now();
        let reservations = state.allocator.reservations();
        if reservations.has_client(subnet.id, &reservation.client) {
            return Err(OperatorError::Conflict(format!(
                "this client has a reservation in subnet {} already",
                subnet.id
            )));
        }
        for key in reserved_keys(reservation) {
            if reservations.owner(&key).is_some() {
                return Err(OperatorError::Conflict(format!(
                    "{} is reserved already",
                    describe(&key)
                )));
            }
        }
        let super::DecisionState {
            mirror, pending, ..
        } = state;
        let view = OverlayView { mirror, pending };
        let is_client = |lease: &Lease| match &reservation.client {
            ReservedClient::Duid(duid) => &lease.duid == duid,
            ReservedClient::Line(line) => lease.line.as_deref() == Some(&line.stored()[..]),
        };
        for key in reserved_keys(reservation) {
            if let Some(held) = view
                .get(&key)?
                .filter(|l| l.is_active(now) || l.state == LeaseState::Declined)
            {
                if !is_client(&held) {
                    return Err(OperatorError::Conflict(format!(
                        "{} is held by client {}",
                        describe(&key),
                        hex::encode(&held.duid)
                    )));
                }
            }
        }
        Ok(())
    }

    /// Per pool: size, assigned, declined and free, read from the store (not under the
    /// decision lock).
    pub fn operator_usage(&self) -> Result<Vec<PoolUsageRow>, OperatorError> {
        let now = unix_now();
        let mut rows: Vec<PoolUsageRow> = Vec::new();
        for subnet in &self.config().subnets {
            for pool in &subnet.pools {
                rows.push(PoolUsageRow {
                    subnet_id: subnet.id,
                    subnet: subnet.prefix.to_string(),
                    kind: "na".into(),
                    pool: format!("{}-{}", pool.low, pool.high),
                    total: pool.size(),
                    assigned: 0,
                    declined: 0,
                    free: 0,
                });
            }
            for pool in &subnet.pd_pools {
                rows.push(PoolUsageRow {
                    subnet_id: subnet.id,
                    subnet: subnet.prefix.to_string(),
                    kind: "pd".into(),
                    pool: format!("{} delegated /{}", pool.prefix, pool.delegated_length),
                    total: pool.size(),
                    assigned: 0,
                    declined: 0,
                    free: 0,
                });
            }
        }
        let pages = crate::store::LeasePages::new(
            self.store.as_ref(),
            crate::store::LeaseFilter::All,
            1000,
        );
        let config = self.config();
        for lease in pages {
            let lease = lease?;
            let assigned = lease.is_active(now);
            let declined = lease.state == LeaseState::Declined && lease.expire > now;
            if !assigned && !declined {
                continue;
            }
            let Some(subnet) = config.subnet(lease.subnet_id) else {
                continue;
            };
            let key = lease.key();
            let pool_name = match key.lease_type {
                LeaseType::Na => subnet
                    .pools
                    .iter()
                    .find(|p| p.contains(key.address))
                    .map(|p| format!("{}-{}", p.low, p.high)),
                LeaseType::Pd => subnet
                    .pd_pools
                    .iter()
                    .find(|p| p.holds(key.address, key.prefix_len))
                    .map(|p| format!("{} delegated /{}", p.prefix, p.delegated_length)),
            }
            .unwrap_or_else(|| "reserved".into());
            let kind = match key.lease_type {
                LeaseType::Na => "na",
                LeaseType::Pd => "pd",
            };
            let at = match rows
                .iter()
                .position(|r| r.subnet_id == subnet.id && r.kind == kind && r.pool == pool_name)
            {
                Some(at) => at,
                None => {
                    rows.push(PoolUsageRow {
                        subnet_id: subnet.id,
                        subnet: subnet.prefix.to_string(),
                        kind: kind.into(),
                        pool: pool_name,
                        total: 0,
                        assigned: 0,
                        declined: 0,
                        free: 0,
                    });
                    rows.len() - 1
                }
            };
            if assigned {
                rows[at].assigned += 1;
            } else {
                rows[at].declined += 1;
            }
        }
        for row in &mut rows {
            row.free = row
                .total
                .saturating_sub(u128::from(row.assigned) + u128::from(row.declined));
        }
        Ok(rows)
    }
}

/// A reservation's address and prefix as lease keys.
fn reserved_keys(reservation: &Reservation) -> impl Iterator<Item = LeaseKey> {
    reservation.address.map(LeaseKey::na).into_iter().chain(
        reservation
            .prefix
            .map(|p| LeaseKey::pd(p.network(), p.prefix_len())),
    )
}
