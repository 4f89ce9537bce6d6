//! Peer redundancy over active leasequery: each server of a pair follows the other's bindings
//! and installs them in its own store (publishing lease events, so the fast-path map follows),
//! so either can answer the other's clients' renewals.
//!
//! Pool split: the two peers serve the same subnets (same `id`s and prefixes) but each is
//! configured with its own, disjoint `pools`/`pd-pools` ranges, so they never grant the same
//! address; a binding from the peer is installed under the subnet whose prefix (or PD pool)
//! holds it. Bindings in no configured subnet are skipped and counted.
//!
//! Sync: on first contact (nothing recorded) a bulk query for every link fetches all of the
//! peer's bindings; then an active query with LQ_START_TIME (the last LQ_BASE_TIME received, as
//! recorded in the store's meta table, minus a second of overlap) catches up and stays live.
//! The resume time is recorded only once the catch-up is complete (RFC 7653 §8.4): a
//! connection cut during a catch-up leaves it where it was, so the next one starts over.
//! DataMissing falls back to a full bulk sync. A binding is installed only if it differs from
//! what the store holds and is not older (by client last-transaction time), so a binding
//! echoed back by the peer stops there.
//!
//! Next hop, link and line (`[routes]`, `line-identity`): we ask the peer for its
//! [`super::PeerData`] (a vendor option inside each OPTION_CLIENT_DATA) and install the
//! binding with the client's next hop, on our interface for the binding's link (by subnet: the
//! peer's interface names and indexes are its own), and with its line, so this server routes
//! the peer's clients at once (the next hop is on a link both servers sit on) and counts them
//! by line. A peer that sends none (an older one) is followed as before: no next hop, and the
//! line taken from the relay chain when `line-identity` names a relay option.
//!
//! TLS (RFC 7653 §5.2): with [`PeerSettings::tls`], every connection to the peer StartTLSes
//! first, verifies the peer's certificate (its address as an IP SAN, or `tls-peer-name`) and
//! presents ours; a peer that refuses TLS or fails the handshake is retried, never followed in
//! the clear.

use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::Ipv6Net;
use tokio::sync::{broadcast, watch};
use tracing::{debug, info, warn};

use super::client::{
    ActiveEvent, ActiveLeasequery, Binding, BindingState, ClientError, LeasequeryConnection, Query,
    QueryOptions,
};
use super::{LeaseSink, LeasequeryStats, PeerData};
use crate::clock::unix_now;
use crate::config::{Config, LineKind};
use crate::lease_events::{LeaseEvent, LeaseEventKind};
use crate::line::LineIds;
use crate::proto::Duid;
use crate::store::{
    Lease, LeaseChange, LeaseKey, LeaseState, LeaseStore, LeaseType, StoreError, StoreWriter,
};
use crate::tls::ClientTls;

/// Overlap when resuming, seconds: times are whole seconds, repeats are harmless.
const RESUME_OVERLAP_SECS: u32 = 1;

/// Where and how to follow a peer.
#[derive(Debug, Clone)]
pub struct PeerSettings {
    /// The peer's leasequery TCP address.
    pub peer: SocketAddr,
    /// Our DUID, sent as the requestor's Client ID.
    pub requestor: Duid,
    /// Pause between reconnection attempts.
    pub retry: Duration,
    /// Per-operation timeout of the connection.
    pub io_timeout: Duration,
    /// No message at all from the peer for this long (it sends keepalives at its keepalive
    /// interval) means the connection is dead: reconnect.
    pub silence_timeout: Duration,
    /// StartTLS on every connection with this; `None`: in the clear.
    pub tls: Option<ClientTls>,
}

impl PeerSettings {
    /// Defaults: retry every 2 s, 10 s I/O timeout, and the silence timeout for the default
    /// 5 s keepalive interval (16 s).
    pub fn new(peer: SocketAddr, requestor: Duid) -> Self {
        PeerSettings {
            peer,
            requestor,
            retry: Duration::from_secs(2),
            io_timeout: Duration::from_secs(10),
            silence_timeout: Self::silence_for(Duration::from_secs(5)),
            tls: None,
        }
    }

    /// How long a session may stay silent when the peer sends a keepalive every `keepalive`
    /// (the two servers of a pair are configured alike): three missed keepalives and a second.
    pub fn silence_for(keepalive: Duration) -> Duration {
        keepalive * 3 + Duration::from_secs(1)
    }
}

/// Where installed bindings go.
#[derive(Clone)]
pub struct PeerSink {
    /// Our store (reads, and the resume time in `meta`).
    pub store: Arc<dyn LeaseStore>,
    /// Our writer (durable installs).
    pub writer: StoreWriter,
    /// Our lease event channel: installs are published like any other change.
    pub events: Option<broadcast::Sender<LeaseEvent>>,
    /// Subnet id per prefix (subnet prefixes and PD pools).
    pub subnets: Vec<(Ipv6Net, u32)>,
    /// Counters (`peer_installed`, `peer_skipped_no_subnet`, `peer_full_syncs`, ...).
    pub stats: Arc<LeasequeryStats>,
    /// Our served interfaces and the subnet id of their direct clients: where a peer's
    /// client with a next hop is on our side.
    pub links: Vec<(String, u32)>,
    /// `line-identity`: the line of a binding whose peer sent none, from its relay chain.
    pub line_identity: Option<LineKind>,
    /// Publishes installed bindings' events through the server (its log, counters and client
    /// table); `None`: straight on `events`.
    pub publish: Option<Publisher>,
}

/// How [`PeerSink`] hands events to the server.
pub type Publisher = Arc<dyn Fn(Vec<LeaseEvent>) + Send + Sync>;

impl PeerSink {
    /// The subnet map from the configuration.
    pub fn subnets_from_config(config: &Config) -> Vec<(Ipv6Net, u32)> {
        let mut map = Vec::new();
        for subnet in &config.subnets {
            map.push((subnet.prefix, subnet.id));
            map.extend(subnet.pd_pools.iter().map(|p| (p.prefix, subnet.id)));
        }
        map
    }

    /// The sink of the running server: its store, writer, event channel and subnets.
    pub fn for_server(server: &impl LeaseSink, stats: Arc<LeasequeryStats>) -> Self {
        PeerSink {
            store: server.store().clone(),
            writer: server.writer().clone(),
            events: Some(server.events().clone()),
            subnets: PeerSink::subnets_from_config(&server.config()),
            stats,
            links: server.links(),
            line_identity: server.config().line_identity,
            publish: None,
        }
    }

    fn subnet_of(&self, address: Ipv6Addr) -> Option<u32> {
        self.subnets
            .iter()
            .filter(|(net, _)| net.contains(&address))
            .max_by_key(|(net, _)| net.prefix_len())
            .map(|(_, id)| *id)
    }

    fn meta_key(peer: SocketAddr) -> String {
        format!("leasequery_peer_resume:{peer}")
    }

    fn resume_time(&self, peer: SocketAddr) -> Option<u32> {
        let bytes = self.store.get_meta(&Self::meta_key(peer)).ok()??;
        let text = String::from_utf8(bytes).ok()?;
        text.parse().ok()
    }

    fn record_resume_time(&self, peer: SocketAddr, time: u32) {
        if let Err(err) = self
            .store
            .set_meta(&Self::meta_key(peer), time.to_string().as_bytes())
        {
            warn!(error = %err, "peer sync: recording the resume time failed");
        }
    }

    /// Installs what `binding` says, where it is new to us. Returns how many were written.
    pub async fn install(&self, binding: &Binding) -> Result<usize, StoreError> {
        let now = unix_now();
        let mut changes = Vec::new();
        let mut events = Vec::new();
        for state in binding.states() {
            let Some((lease, kind)) = self.lease_for(&state, binding, now)? else {
                continue;
            };
            changes.push(LeaseChange::Upsert(lease.clone()));
            events.push(LeaseEvent { kind, lease });
        }
        if changes.is_empty() {
            return Ok(0);
        }
        let count = changes.len();
        self.writer.commit(changes).await?;
        self.stats.add("peer_installed", count as u64);
        if let Some(publish) = &self.publish {
            publish(events);
        } else if let Some(sender) = &self.events {
            for event in events {
                let _ = sender.send(event);
            }
        }
        Ok(count)
    }

    /// The lease to write for `state`, or `None` when ours is the same or newer.
    fn lease_for(
        &self,
        state: &BindingState,
        binding: &Binding,
        now: i64,
    ) -> Result<Option<(Lease, LeaseEventKind)>, StoreError> {
        let lease_type = if state.prefix_len == 128
            && binding.addresses.iter().any(|a| a.address == state.address)
        {
            LeaseType::Na
        } else {
            LeaseType::Pd
        };
        let key = LeaseKey {
            lease_type,
            address: state.address,
            prefix_len: state.prefix_len,
        };
        let existing = self.store.get(&key)?;
        let Some(duid) = parse_duid(&state.client_id) else {
            self.stats.bump("peer_skipped_bad_duid");
            return Ok(None);
        };
        let cltt = state.cltt.unwrap_or(now);
        if let Some(ours) = &existing {
            if ours.duid != duid && ours.state == LeaseState::Assigned && ours.expire > now {
                // Another client holds it here: the pools overlap (`pool-half` set the same on
                // both?) or the peer is out of date. Never hand an address to a second client.
                self.stats.bump("peer_conflicts");
                warn!(
                    address = %state.address,
                    "peer sync: the peer reports a binding of an address another client holds \
                     here; kept ours (check that the peers have opposite pool-half settings)"
                );
                return Ok(None);
            }
            if ours.cltt > cltt {
                return Ok(None);
            }
            if ours.cltt == cltt
                && ours.duid == duid
                && ours.state == LeaseState::Assigned
                && state.expire.is_some()
            {
                // The same transaction as ours: our own binding echoed back by the peer (its
                // copy of what we sent), nothing newer. Taking it again would replace what
                // only we know (the next hop on our link) with the peer's view of it.
                return Ok(None);
            }
        }
        let lease = match state.expire {
            Some(expire) => {
                let Some(subnet_id) = self.subnet_of(state.address) else {
                    self.stats.bump("peer_skipped_no_subnet");
                    return Ok(None);
                };
                let valid = u32::try_from((expire - cltt).max(0)).unwrap_or(u32::MAX);
                let preferred_end = state.preferred_end.unwrap_or(expire);
                let preferred = u32::try_from((preferred_end - cltt).max(0))
                    .unwrap_or(u32::MAX)
                    .min(valid);
                let mut lease = existing.clone().unwrap_or_else(|| Lease {
                    cltt,
                    expire: cltt,
                    ..Lease::bare(
                        lease_type,
                        state.address,
                        state.prefix_len,
                        duid.clone(),
                        0,
                        subnet_id,
                    )
                });
                lease.duid = duid;
                lease.subnet_id = subnet_id;
                if let Some(iaid) = state.iaid {
                    lease.iaid = iaid;
                }
                lease.assign(cltt, preferred, valid);
                if let Some(relay) = &binding.relay_data {
                    if let Ok(bytes) = hex::decode(&relay.relay_message) {
                        lease.relay_info = bytes;
                    }
                }
                self.place(&mut lease, binding.peer.as_ref());
                lease
            }
            None => {
                // Gone at the peer: only a binding we hold as assigned has anything to change.
                let Some(mut lease) = existing.clone() else {
                    return Ok(None);
                };
                if lease.state != LeaseState::Assigned || lease.duid != duid {
                    return Ok(None);
                }
                lease.state = LeaseState::Released;
                lease
            }
        };
        if existing.as_ref() == Some(&lease) {
            return Ok(None);
        }
        let kind = match (&existing, lease.state) {
            (_, LeaseState::Released) => LeaseEventKind::Released,
            (Some(ours), _) if ours.state == LeaseState::Assigned && ours.duid == lease.duid => {
                LeaseEventKind::Renewed
            }
            _ => LeaseEventKind::Granted,
        };
        Ok(Some((lease, kind)))
    }
}

impl PeerSink {
    /// Gives `lease` (of a peer's binding) the next hop, interface and line `peer` sent, the
    /// interface mapped to ours for the lease's subnet; without peer data, the line from the
    /// relay chain.
    fn place(&self, lease: &mut Lease, peer: Option<&PeerData>) {
        let Some(peer) = peer else {
            if let Some(kind) = self.line_identity {
                if let Some(line) = LineIds::of_lease(lease).line(kind) {
                    lease.line = Some(line.stored().into_boxed_slice());
                }
            }
            return;
        };
        lease.line = peer.line.clone().map(Vec::into_boxed_slice);
        lease.link_layer = peer.link_layer.clone().map(Vec::into_boxed_slice);
        lease.next_hop = None;
        if let Some(hop) = peer.next_hop {
            match local_link(&self.links, lease.subnet_id, &peer.interface) {
                Some(interface) => {
                    lease.interface = interface.to_owned();
                    lease.next_hop = Some(hop);
                }
                None => {
                    self.stats.bump("peer_next_hop_no_link");
                    debug!(
                        address = %lease.address,
                        subnet = lease.subnet_id,
                        peer_interface = %peer.interface,
                        "peer sync: no interface of ours serves the binding's link; no route"
                    );
                }
            }
        }
    }
}

/// Our interface for a peer's client of subnet `subnet_id` that came in on the peer's
/// `peer_interface`: among our interfaces serving the subnet, the one of the same name, else
/// the only one; `None` when none serves it or several do and none has that name.
pub fn local_link<'a>(
    links: &'a [(String, u32)],
    subnet_id: u32,
    peer_interface: &str,
) -> Option<&'a str> {
    let mut serving = links.iter().filter(|(_, id)| *id == subnet_id);
    let first = serving.next()?;
    if first.0 == peer_interface {
        return Some(&first.0);
    }
    let rest: Vec<_> = serving.collect();
    if rest.is_empty() {
        return Some(&first.0);
    }
    rest.iter()
        .find(|(name, _)| name == peer_interface)
        .map(|(name, _)| name.as_str())
}

fn parse_duid(text: &str) -> Option<Vec<u8>> {
    text.split(':')
        .map(|byte| u8::from_str_radix(byte, 16).ok())
        .collect::<Option<Vec<u8>>>()
        .filter(|bytes| !bytes.is_empty())
}

/// Follows the peer until `shutdown`: full sync when needed, then active leasequery, and
/// reconnects after `retry` whenever the connection ends.
pub async fn follow_peer(
    settings: PeerSettings,
    sink: PeerSink,
    mut shutdown: watch::Receiver<bool>,
) {
    info!(peer = %settings.peer, tls = settings.tls.is_some(), "peer sync: following");
    // A failure that repeats at every retry is logged as a warning once, then at debug level.
    let mut last_error: Option<String> = None;
    loop {
        let session = sync_once(&settings, &sink);
        tokio::select! {
            result = session => match result {
                Ok(()) => {
                    last_error = None;
                    debug!(peer = %settings.peer, "peer sync: connection ended");
                }
                Err(err) => {
                    sink.stats.bump("peer_connection_errors");
                    let text = err.to_string();
                    if matches!(
                        err,
                        PeerError::Client(ClientError::Tls(_) | ClientError::TlsRefused { .. })
                    ) {
                        sink.stats.bump("peer_tls_errors");
                        if last_error.as_deref() != Some(text.as_str()) {
                            warn!(peer = %settings.peer, error = %text, "peer sync: TLS with the peer failed; retrying");
                        }
                    }
                    debug!(peer = %settings.peer, error = %text, "peer sync: connection failed");
                    last_error = Some(text);
                }
            },
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(settings.retry) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Errors of one sync session.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("peer refused the query: status {0} {1}")]
    Refused(u16, String),
}

/// A connection to the peer, over TLS when configured.
async fn connect(settings: &PeerSettings) -> Result<LeasequeryConnection, ClientError> {
    LeasequeryConnection::connect_with(
        settings.peer,
        settings.io_timeout,
        &settings.requestor,
        settings.tls.as_ref(),
    )
    .await
}

/// Full sync by bulk query; returns the reply's base time.
async fn full_sync(settings: &PeerSettings, sink: &PeerSink) -> Result<Option<u32>, PeerError> {
    let mut connection = connect(settings).await?;
    let answer = connection
        .bulk(
            &settings.requestor,
            &Query::LinkAddress(Ipv6Addr::UNSPECIFIED),
            &QueryOptions {
                ia_data: true,
                peer_data: true,
                ..QueryOptions::default()
            },
        )
        .await?;
    if answer.status != dhcp_common::dhcpv6::STATUS_SUCCESS {
        return Err(PeerError::Refused(answer.status, answer.status_message));
    }
    for binding in &answer.bindings {
        sink.install(binding).await?;
    }
    sink.stats.bump("peer_full_syncs");
    info!(peer = %settings.peer, bindings = answer.bindings.len(), "peer sync: full sync done");
    Ok(answer.base_time)
}

/// Seconds between recordings of the resume time (each is a durable write).
const RECORD_EVERY_SECS: u32 = 5;

/// One connection's worth of following.
async fn sync_once(settings: &PeerSettings, sink: &PeerSink) -> Result<(), PeerError> {
    let mut resume = sink.resume_time(settings.peer);
    if resume.is_none() {
        resume = full_sync(settings, sink).await?;
        if let Some(time) = resume {
            sink.record_resume_time(settings.peer, time);
        }
    }
    let options = QueryOptions {
        start_time: resume.map(|t| t.saturating_sub(RESUME_OVERLAP_SECS)),
        // The IAIDs: with them the installed binding answers the client's Rebind in our fast
        // path (which matches the IAID) instead of passing it to the controller.
        ia_data: true,
        // Next hop, interface and line: what routes and line limits need here.
        peer_data: true,
        ..QueryOptions::default()
    };
    let (active, answer) = ActiveLeasequery::start_on(
        connect(settings).await?,
        &settings.requestor,
        &Query::LinkAddress(Ipv6Addr::UNSPECIFIED),
        &options,
    )
    .await?;
    let Some(mut active) = active else {
        return Err(PeerError::Refused(answer.status, answer.status_message));
    };
    // A catch-up sends the bindings changed since LQ_START_TIME in the order of their last
    // change, each with the current time as its base time: until CatchUpComplete, a base time
    // says nothing about what is still to come, and saving it would skip the rest of the
    // catch-up for good if the connection ends now (RFC 7653 §8.4: MUST NOT; the next
    // connection resumes from the previous connection's time, §8.4.1).
    let mut caught_up = options.start_time.is_none();
    if answer.status == dhcp_common::dhcpv6::STATUS_DATA_MISSING {
        // The history does not reach back: take everything, while the active query is
        // already subscribed (so nothing in between is lost). No catch-up follows.
        warn!(peer = %settings.peer, "peer sync: history missing; full sync");
        full_sync(settings, sink).await?;
        caught_up = true;
    }
    let mut recorded = resume.unwrap_or(0);
    loop {
        let event = active.next(settings.silence_timeout).await?;
        let ended = matches!(event, ActiveEvent::Done(_) | ActiveEvent::Closed);
        match event {
            ActiveEvent::Update(binding) => {
                sink.install(&binding).await?;
            }
            ActiveEvent::CatchUpComplete { .. } => {
                caught_up = true;
                sink.stats.bump("peer_catch_ups");
                info!(peer = %settings.peer, "peer sync: caught up");
            }
            ActiveEvent::Keepalive { .. } | ActiveEvent::Done(_) | ActiveEvent::Closed => {}
        }
        if !caught_up {
            if ended {
                sink.stats.bump("peer_catch_ups_cut");
                warn!(
                    peer = %settings.peer,
                    "peer sync: connection ended during the catch-up; the next one resumes \
                     from the same start time"
                );
                return Ok(());
            }
            continue;
        }
        // Caught up, and everything up to this message is installed (installs are awaited):
        // safe to resume from its base time.
        if let Some(time) = active.last_base_time {
            if ended || time >= recorded.saturating_add(RECORD_EVERY_SECS) {
                sink.record_resume_time(settings.peer, time);
                recorded = time;
            }
        }
        if ended {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leasequery::client::{BoundPrefix, RelayData};
    use crate::proto::{DhcpOption, Message, RelayMessage};
    use crate::store::{SqliteStore, WriterConfig};

    /// A sink over a fresh store in `name`'s directory; our interface `eth-b` serves subnet 1.
    fn sink(name: &str, line_identity: Option<LineKind>) -> PeerSink {
        let dir =
            std::env::temp_dir().join(format!("dhcp-user-peer-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store: Arc<dyn LeaseStore> = Arc::new(SqliteStore::open(dir.join("l.db")).unwrap());
        PeerSink {
            writer: StoreWriter::spawn(store.clone(), WriterConfig::default()).unwrap(),
            store,
            events: None,
            subnets: vec![("2001:db8:8000::/40".parse().unwrap(), 1)],
            stats: Arc::new(LeasequeryStats::new()),
            links: vec![("eth-b".into(), 1)],
            line_identity,
            publish: None,
        }
    }

    /// A peer's binding of one prefix, with `peer` data and `relay` data.
    fn binding(peer: Option<PeerData>, relay: Option<RelayData>) -> Binding {
        Binding {
            client_id: "00:03:00:01:02:00:00:00:00:01".into(),
            addresses: Vec::new(),
            prefixes: vec![BoundPrefix {
                prefix: "2001:db8:8000::".parse().unwrap(),
                iaid: Some(9),
                prefix_len: 56,
                preferred: 100,
                valid: 200,
            }],
            clt_time: Some(0),
            relay_data: relay,
            base_time: Some(unix_now() as u32),
            peer,
        }
    }

    fn installed(sink: &PeerSink, binding: &Binding) -> Lease {
        let state = &binding.states()[0];
        let (lease, _) = sink
            .lease_for(state, binding, unix_now())
            .unwrap()
            .expect("a lease to install");
        lease
    }

    /// The peer's next hop is kept with the binding on our interface for its subnet (not the
    /// peer's interface name), and its line with it.
    #[tokio::test]
    async fn a_peer_s_binding_keeps_its_next_hop_on_our_link_and_its_line() {
        let sink = sink("place", Some(LineKind::ClientLinklayerAddress));
        let line = vec![4, 0, 1, 2, 0, 0, 0, 0, 9];
        let lease = installed(
            &sink,
            &binding(
                Some(PeerData {
                    next_hop: Some("fe80::42".parse().unwrap()),
                    interface: "eth-a".into(),
                    line: Some(line.clone()),
                    link_layer: Some(vec![0, 1, 2, 0, 0, 0, 0, 9]),
                }),
                None,
            ),
        );
        assert_eq!(lease.next_hop, Some("fe80::42".parse().unwrap()));
        assert_eq!(lease.interface, "eth-b");
        assert_eq!(lease.line.as_deref(), Some(line.as_slice()));
        assert_eq!(
            lease.link_layer.as_deref(),
            Some(&[0, 1, 2, 0, 0, 0, 0, 9][..])
        );

        // No interface of ours serves the subnet: no next hop (no route), counted.
        let mut lost = sink;
        lost.links = vec![("eth-b".into(), 2)];
        let lease = installed(
            &lost,
            &binding(
                Some(PeerData {
                    next_hop: Some("fe80::42".parse().unwrap()),
                    interface: "eth-a".into(),
                    line: None,
                    link_layer: None,
                }),
                None,
            ),
        );
        assert_eq!(lease.next_hop, None);
        assert_eq!(lost.stats.get("peer_next_hop_no_link"), 1);
    }

    /// Our own binding echoed back by the peer (same client, same transaction time) changes
    /// nothing here: not the next hop our route goes via, even when the echo carries none.
    #[tokio::test]
    async fn our_binding_echoed_back_by_the_peer_changes_nothing() {
        let sink = sink("echo", None);
        let ours = binding(
            Some(PeerData {
                next_hop: Some("fe80::42".parse().unwrap()),
                interface: "eth-a".into(),
                line: None,
                link_layer: Some(vec![0, 1, 2, 0, 0, 0, 0, 9]),
            }),
            None,
        );
        let lease = installed(&sink, &ours);
        sink.writer
            .commit(vec![LeaseChange::Upsert(lease.clone())])
            .await
            .unwrap();
        let mut echo = ours.clone();
        echo.peer = Some(PeerData {
            next_hop: None,
            interface: String::new(),
            line: None,
            link_layer: Some(vec![0, 1, 2, 0, 0, 0, 0, 9]),
        });
        let state = &echo.states()[0];
        assert_eq!(sink.lease_for(state, &echo, unix_now()).unwrap(), None);
        assert_eq!(
            sink.store.get(&lease.key()).unwrap().unwrap().next_hop,
            Some("fe80::42".parse().unwrap())
        );

        // A later transaction of the peer's is taken, as before.
        let mut later = echo;
        later.clt_time = Some(0);
        later.base_time = Some(lease.cltt as u32 + 5);
        let state = &later.states()[0];
        assert!(sink.lease_for(state, &later, unix_now()).unwrap().is_some());
    }

    /// A peer that sends no peer data (an older one): the line comes from the relay chain of
    /// LQ_RELAY_DATA, as `line-identity` names it.
    #[tokio::test]
    async fn an_old_peer_s_binding_gets_its_line_from_the_relay_chain() {
        let sink = sink("old", Some(LineKind::InterfaceId));
        let relay = RelayMessage {
            msg_type: dhcp_common::dhcpv6::MSG_RELAY_FORW,
            hop_count: 0,
            link_address: "2001:db8:1::1".parse().unwrap(),
            peer_address: "fe80::7".parse().unwrap(),
            options: vec![
                DhcpOption::InterfaceId(b"port-3".to_vec()),
                DhcpOption::RelayMsg(Box::new(crate::proto::Packet::Message(Message::new(
                    dhcp_common::dhcpv6::MSG_REQUEST,
                    [1, 2, 3],
                )))),
            ],
        };
        let bytes = crate::proto::Packet::Relay(relay).encode().unwrap();
        let lease = installed(
            &sink,
            &binding(
                None,
                Some(RelayData {
                    peer_address: "2001:db8:1::1".parse().unwrap(),
                    relay_message: hex::encode(bytes),
                }),
            ),
        );
        let expected = crate::config::LineId {
            kind: LineKind::InterfaceId,
            value: b"port-3".to_vec(),
        }
        .stored();
        assert_eq!(lease.line.as_deref(), Some(expected.as_slice()));
        assert_eq!(lease.next_hop, None);
    }

    /// A peer's client is put on our interface for its subnet: the one with the peer's name
    /// among several, else the only one; none when ambiguous or when no interface serves it.
    #[test]
    fn the_peer_s_link_is_ours_by_subnet() {
        let links = vec![
            ("eth0".to_string(), 1),
            ("eth1".to_string(), 2),
            ("eth2".to_string(), 2),
        ];
        assert_eq!(local_link(&links, 1, "veth-on-peer"), Some("eth0"));
        assert_eq!(local_link(&links, 2, "eth2"), Some("eth2"));
        assert_eq!(local_link(&links, 2, "eth1"), Some("eth1"));
        assert_eq!(local_link(&links, 2, "veth-on-peer"), None);
        assert_eq!(local_link(&links, 3, "eth0"), None);
    }
}
