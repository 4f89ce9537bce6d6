//! Leasequery over TCP 547: bulk (RFC 5460) and active (RFC 7653).
//!
//! Every connection is its own task. Reads are bounded (a query frame is at most
//! [`MAX_QUERY_FRAME`] bytes, a started frame must complete within the I/O timeout), every
//! write has the I/O timeout, and store scans run on the blocking pool and hand encoded frames
//! to the connection through a small bounded channel: a peer that stops reading stalls only its
//! own scan, and is dropped when a write times out.
//!
//! Bulk: LEASEQUERY-REPLY (the first client's OPTION_CLIENT_DATA, or none), a LEASEQUERY-DATA
//! per further client, then LEASEQUERY-DONE; a refused query gets a LEASEQUERY-REPLY with its
//! status and no DONE. Several queries may follow each other on one connection. Every REPLY
//! and DATA carries LQ_BASE_TIME; CLT_TIME and lifetimes are relative to it.
//!
//! Active: LEASEQUERY-REPLY (status DataMissing when the change history does not reach back to
//! LQ_START_TIME), then with LQ_START_TIME the catch-up (the current state of every binding
//! changed since, one LEASEQUERY-DATA each) and a LEASEQUERY-DATA with CatchUpComplete, then a
//! LEASEQUERY-DATA per binding change as it happens, and an empty LEASEQUERY-DATA (only
//! LQ_BASE_TIME) after the keepalive interval without traffic. A binding that is no longer
//! assigned (released, declined, expired, cleared) is sent with lifetimes 0.
//!
//! An ACTIVELEASEQUERY without OPTION_LQ_QUERY asks for every binding (RFC 7653 §6.2.1); one
//! with LQ_END_TIME is MalformedQuery (§9.3). Active leasequery is off unless configured
//! (§9.1). Times on the wire count seconds from 2000-01-01 UTC ([`super::wire_time`]).
//!
//! STARTTLS (RFC 7653 §5.2): with TLS configured ([`LeasequeryContext::tls`]) the server
//! answers with a STARTTLS of its own and the requestor starts the TLS handshake (it is the
//! TLS client); the session then goes on over TLS, exactly as before. A requestor whose
//! certificate does not verify fails the handshake and is dropped (`dropped_tls_handshake`).
//! Without TLS, STARTTLS gets a LEASEQUERY-REPLY with TLSConnectionRefused and the session
//! goes on in the clear. With `tls-required`, a query in the clear gets a LEASEQUERY-REPLY
//! with TLSConnectionRefused and the connection is closed (`status_tls_required`); without
//! it, an active query in the clear gets the same refusal unless `active-insecure` allows it.
//!
//! Shutdown: a query in progress ends with LEASEQUERY-DONE carrying QueryTerminated and
//! LQ_BASE_TIME.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dhcp_common::dhcpv6::*;
use tokio::io::{split, AsyncRead, AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, watch, Semaphore};
use tokio::time::{timeout, timeout_at, Instant};
use tracing::{debug, info, warn};

use super::binding::{client_data, LeaseUpdate};
use super::query::{
    answer_client, as_updates, check_policy, parse_active_query, parse_query, reply_skeleton,
    ClientAnswer, ParsedQuery, QueryError, QueryKind, Selector, MAX_LEASES_PER_CLIENT,
};
use super::{wire_time, LeaseSource, LeasequerySettings, LeasequeryStats};
use crate::clock::unix_now;
use crate::lease_events::{LeaseEvent, LeaseEventKind};
use crate::proto::framing::{encode_frame_into, FrameDecoder};
use crate::proto::{DhcpOption, Duid, Message, StatusCode};
use crate::store::{ChangeCursor, ChangeKind, Lease, LeaseKey, LeasePages, LeaseStore, StoreError};
use crate::tls::Stream;

/// Largest query frame accepted; a leasequery request is a few dozen bytes.
pub const MAX_QUERY_FRAME: usize = 4096;
/// Encoded frames are handed to the connection in chunks of about this size.
const CHUNK_BYTES: usize = 16 * 1024;
/// Chunks queued between a scan and its connection.
const CHUNK_QUEUE: usize = 8;
/// History entries read per page during a catch-up.
const HISTORY_PAGE: usize = 10_000;
/// After a catch-up, live events are checked against what the catch-up sent for this long
/// (an event published just after its commit may repeat a binding the catch-up already sent).
const DEDUPE_GRACE: Duration = Duration::from_secs(3);
/// Upper bound on remembering a catch-up's updates while it is being sent.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(3600);
/// On a lagged event subscription the history is re-read from this far before the last moment
/// the subscription was known complete (commit and publish are not one instant).
const LAG_MARGIN_SECS: i64 = 5;

/// A source of lease-event subscriptions (e.g. `move || server.subscribe()`).
pub type SubscribeFn = Arc<dyn Fn() -> broadcast::Receiver<LeaseEvent> + Send + Sync>;

/// The leasequery settings in force now (e.g. `move || server.leasequery_settings()`).
pub type LiveSettings = Arc<dyn Fn() -> Arc<LeasequerySettings> + Send + Sync>;

/// What the TCP service needs: the store, lease events, our DUID, the policy and counters.
pub struct LeasequeryContext {
    /// The lease store (read only).
    pub store: Arc<dyn LeaseStore>,
    /// Subscribes to lease events (active leasequery).
    pub subscribe: SubscribeFn,
    /// Our DUID (Server Identifier of every reply).
    pub server_duid: Duid,
    /// Policy and limits.
    pub settings: LeasequerySettings,
    /// The settings in force now, read for each query: a reload swaps the server's, and the
    /// links and delegated prefixes a query may name follow its subnets. `None`: `settings`.
    pub live: Option<LiveSettings>,
    /// Counters.
    pub stats: Arc<LeasequeryStats>,
    /// TLS (`tls-*` keys): StartTLS upgrades the session with this; `None`: StartTLS is
    /// refused.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl LeasequeryContext {
    /// The context for the running server: its store, lease events, DUID, and `settings`.
    pub fn for_server(
        server: &Arc<impl LeaseSource>,
        settings: LeasequerySettings,
        stats: Arc<LeasequeryStats>,
    ) -> Self {
        let events = server.clone();
        LeasequeryContext {
            store: server.store().clone(),
            subscribe: Arc::new(move || events.subscribe()),
            server_duid: server.server_duid().clone(),
            settings,
            live: None,
            stats,
            tls: None,
        }
    }
}

/// Binds `listen` (e.g. `[::]:547`) and spawns [`serve_tcp`] for `server`; returns the task
/// and the counters. Fails only if the address cannot be bound.
pub async fn spawn_tcp(
    server: &Arc<impl LeaseSource>,
    listen: SocketAddr,
    settings: LeasequerySettings,
    shutdown: watch::Receiver<bool>,
) -> std::io::Result<(tokio::task::JoinHandle<()>, Arc<LeasequeryStats>)> {
    let listener = TcpListener::bind(listen).await?;
    let stats = Arc::new(LeasequeryStats::new());
    let ctx = Arc::new(LeasequeryContext::for_server(
        server,
        settings,
        stats.clone(),
    ));
    Ok((tokio::spawn(serve_tcp(listener, ctx, shutdown)), stats))
}

/// Serves leasequery on `listener` until `shutdown` turns true (or its sender is dropped).
/// Spawn it as a task; it returns once the listener is closed. Sessions in progress end with
/// QueryTerminated on the same signal.
pub async fn serve_tcp(
    listener: TcpListener,
    ctx: Arc<LeasequeryContext>,
    mut shutdown: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(ctx.settings.max_connections));
    let per_source = Arc::new(SourceSlots::new(ctx.settings.max_connections_per_source));
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "leasequery TCP listener");
    }
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = wait_shutdown(&mut shutdown) => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of descriptors and the like: back off instead of spinning.
                warn!(error = %err, "leasequery accept failed");
                ctx.stats.bump("accept_error");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // The per-source check first: a source at its limit must not take a global slot.
        let Some(source_slot) = per_source.try_take(peer.ip()) else {
            warn!(%peer, max = ctx.settings.max_connections_per_source, "leasequery connection refused: too many connections from this source");
            ctx.stats.bump("tcp_refused_max_per_source");
            drop(stream);
            continue;
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            warn!(%peer, max = ctx.settings.max_connections, "leasequery connection refused: too many connections");
            ctx.stats.bump("tcp_refused_max_connections");
            drop(stream);
            continue;
        };
        ctx.stats.bump("tcp_accepted");
        let session = Session::new(stream, peer, ctx.clone(), shutdown.clone());
        tokio::spawn(async move {
            session.run().await;
            drop(permit);
            drop(source_slot);
        });
    }
}

/// Open sessions per source address, against `max-connections-per-source`.
struct SourceSlots {
    max: usize,
    open: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
}

impl SourceSlots {
    fn new(max: usize) -> Self {
        SourceSlots {
            max: max.max(1),
            open: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// A slot for one more session from `source`, or `None` when it has `max` open already.
    fn try_take(self: &Arc<Self>, source: IpAddr) -> Option<SourceSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(source).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(SourceSlot {
            slots: self.clone(),
            source,
        })
    }
}

/// One open session's share of its source's slots, given back on drop.
struct SourceSlot {
    slots: Arc<SourceSlots>,
    source: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.source);
            }
        }
    }
}

/// Resolves once `shutdown` is true or its sender is gone.
async fn wait_shutdown(shutdown: &mut watch::Receiver<bool>) {
    loop {
        if *shutdown.borrow_and_update() {
            return;
        }
        if shutdown.changed().await.is_err() {
            return;
        }
    }
}

/// Why a connection was dropped: a counter label and a log detail.
#[derive(Debug)]
struct Abort {
    reason: &'static str,
    detail: String,
}

impl Abort {
    fn new(reason: &'static str, detail: impl Into<String>) -> Self {
        Abort {
            reason,
            detail: detail.into(),
        }
    }
}

/// What a session does after a query.
enum Flow {
    /// Wait for the next query.
    Continue,
    /// Close the connection (shutdown, or the active query ended).
    Close,
    /// STARTTLS answered: the TLS handshake comes next.
    StartTls,
}

struct Session {
    reader: ReadHalf<Stream>,
    writer: WriteHalf<Stream>,
    /// Whether the session runs over TLS (after STARTTLS).
    tls: bool,
    peer: SocketAddr,
    requestor: Ipv6Addr,
    decoder: FrameDecoder,
    ctx: Arc<LeasequeryContext>,
    shutdown: watch::Receiver<bool>,
}

impl Session {
    fn new(
        stream: TcpStream,
        peer: SocketAddr,
        ctx: Arc<LeasequeryContext>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let requestor = match peer.ip() {
            IpAddr::V6(v6) => v6,
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        };
        // Small messages go out at once (keepalives, live updates).
        let _ = stream.set_nodelay(true);
        let (reader, writer) = split(Stream::Plain(stream));
        Session {
            reader,
            writer,
            tls: false,
            peer,
            requestor,
            decoder: FrameDecoder::new(MAX_QUERY_FRAME),
            ctx,
            shutdown,
        }
    }

    async fn run(mut self) {
        let ended = loop {
            match self.serve().await {
                Ok(Flow::StartTls) => {
                    let (ctx, peer) = (self.ctx.clone(), self.peer);
                    match self.upgrade().await {
                        Ok(session) => self = session,
                        Err(abort) => {
                            // The connection is gone with the failed handshake.
                            drop_counted(&ctx, peer, &abort);
                            return;
                        }
                    }
                }
                Ok(_) => break Ok(()),
                Err(abort) => break Err(abort),
            }
        };
        match ended {
            Ok(()) => {
                debug!(peer = %self.peer, tls = self.tls, "leasequery connection closed");
                self.ctx.stats.bump("tcp_closed");
            }
            Err(abort) => drop_counted(&self.ctx, self.peer, &abort),
        }
        let _ = timeout(self.ctx.settings.io_timeout, self.writer.shutdown()).await;
    }

    /// The TLS handshake after our STARTTLS, within the I/O timeout; the session over TLS.
    async fn upgrade(self) -> Result<Session, Abort> {
        let Some(config) = self.ctx.tls.clone() else {
            return Err(Abort::new(
                "internal_error",
                "STARTTLS accepted without TLS",
            ));
        };
        if self.decoder.buffered_len() > 0 {
            // The requestor must wait for our STARTTLS before its ClientHello (RFC 7653 §5.2).
            return Err(Abort::new(
                "data_after_starttls",
                format!(
                    "{} bytes sent after STARTTLS before the server's answer",
                    self.decoder.buffered_len()
                ),
            ));
        }
        let Stream::Plain(tcp) = self.reader.unsplit(self.writer) else {
            return Err(Abort::new("internal_error", "STARTTLS on a TLS session"));
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let tls = match timeout(self.ctx.settings.io_timeout, acceptor.accept(tcp)).await {
            Err(_) => {
                return Err(Abort::new(
                    "tls_handshake_timeout",
                    "the TLS handshake did not complete in time",
                ))
            }
            Ok(Err(err)) => return Err(Abort::new("tls_handshake", err.to_string())),
            Ok(Ok(tls)) => tls,
        };
        let (_, connection) = tls.get_ref();
        let client_certificate = connection
            .peer_certificates()
            .is_some_and(|c| !c.is_empty());
        debug!(
            peer = %self.peer,
            version = ?connection.protocol_version(),
            client_certificate,
            "leasequery session upgraded to TLS"
        );
        self.ctx.stats.bump("tls_sessions");
        let (reader, writer) = split(Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(tls))));
        Ok(Session {
            reader,
            writer,
            tls: true,
            peer: self.peer,
            requestor: self.requestor,
            decoder: FrameDecoder::new(MAX_QUERY_FRAME),
            ctx: self.ctx,
            shutdown: self.shutdown,
        })
    }

    async fn serve(&mut self) -> Result<Flow, Abort> {
        loop {
            let mut shutdown = self.shutdown.clone();
            let frame = tokio::select! {
                frame = read_frame(&mut self.reader, &mut self.decoder, &self.ctx.settings) => frame?,
                _ = wait_shutdown(&mut shutdown) => return Ok(Flow::Close),
            };
            let Some(frame) = frame else {
                return Ok(Flow::Close);
            };
            let message = Message::decode(&frame)
                .map_err(|err| Abort::new("undecodable_message", err.to_string()))?;
            let flow = match message.msg_type {
                MSG_LEASEQUERY => self.bulk(message).await?,
                MSG_ACTIVELEASEQUERY => self.active(message).await?,
                MSG_STARTTLS => self.starttls(message).await?,
                other => {
                    return Err(Abort::new(
                        "unexpected_message_type",
                        format!("message type {other} on a leasequery connection"),
                    ))
                }
            };
            if !matches!(flow, Flow::Continue) {
                return Ok(flow);
            }
        }
    }

    /// Writes one framed message (or several, pre-framed) within the I/O timeout, flushed.
    /// Over TLS the flush matters: a record the socket did not take at once stays in rustls's
    /// buffer until the next write or flush, and the last message of an answer must not wait
    /// for one.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), Abort> {
        let writer = &mut self.writer;
        let write_all = async {
            writer.write_all(bytes).await?;
            writer.flush().await
        };
        match timeout(self.ctx.settings.io_timeout, write_all).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(Abort::new("io_error", err.to_string())),
            Err(_) => Err(Abort::new(
                "write_timeout",
                format!("peer did not take {} bytes in time", bytes.len()),
            )),
        }
    }

    async fn send(&mut self, message: &Message) -> Result<(), Abort> {
        let mut bytes = Vec::new();
        frame_message(message, &mut bytes)
            .map_err(|err| Abort::new("encode_error", err.to_string()))?;
        self.write(&bytes).await
    }

    /// Refuses a query; a requestor outside the allow-list is then disconnected (RFC 5460
    /// lets the server close), anyone else may send another query.
    async fn refuse_query(&mut self, query: &Message, err: &QueryError) -> Result<Flow, Abort> {
        self.refuse(query, err).await?;
        if self.ctx.settings.is_allowed(self.requestor) {
            Ok(Flow::Continue)
        } else {
            Ok(Flow::Close)
        }
    }

    /// A LEASEQUERY-REPLY carrying only `status` (and LQ_BASE_TIME).
    async fn refuse(&mut self, query: &Message, err: &QueryError) -> Result<(), Abort> {
        debug!(peer = %self.peer, error = %err, "leasequery refused");
        self.ctx.stats.bump(&format!("status_{}", err.reason()));
        let mut reply = reply_skeleton(MSG_LEASEQUERY_REPLY, query, &self.ctx.server_duid);
        reply.push(DhcpOption::StatusCode(err.status()));
        reply.push(DhcpOption::LqBaseTime(wire_time(unix_now())));
        self.send(&reply).await
    }

    /// STARTTLS (RFC 7653 §5.2, §9.1). With TLS configured, an allowed requestor gets a
    /// STARTTLS back and the handshake follows ([`Session::upgrade`]); one outside the
    /// allow-list gets NotAllowed and is disconnected. Without TLS the answer is a
    /// LEASEQUERY-REPLY with TLSConnectionRefused, and the connection stays as it was: an
    /// allowed requestor may go on in the clear (where the configuration allows it).
    async fn starttls(&mut self, query: Message) -> Result<Flow, Abort> {
        self.ctx.stats.bump("starttls_received");
        if self.tls {
            return Err(Abort::new(
                "unexpected_starttls",
                "STARTTLS on a session already under TLS",
            ));
        }
        if self.ctx.tls.is_some() {
            if !self.ctx.settings.is_allowed(self.requestor) {
                let err = QueryError::NotAllowed("requestor is not in the leasequery allow-list");
                self.refuse(&query, &err).await?;
                return Ok(Flow::Close);
            }
            let answer = reply_skeleton(MSG_STARTTLS, &query, &self.ctx.server_duid);
            self.send(&answer).await?;
            return Ok(Flow::StartTls);
        }
        let mut reply = reply_skeleton(MSG_LEASEQUERY_REPLY, &query, &self.ctx.server_duid);
        reply.push(DhcpOption::StatusCode(StatusCode {
            code: STATUS_TLS_CONNECTION_REFUSED,
            message: "this server does not support TLS".into(),
        }));
        reply.push(DhcpOption::LqBaseTime(wire_time(unix_now())));
        self.ctx.stats.bump("status_tls_connection_refused");
        self.send(&reply).await?;
        if self.ctx.settings.is_allowed(self.requestor) {
            Ok(Flow::Continue)
        } else {
            Ok(Flow::Close)
        }
    }

    fn prepare(
        &self,
        query: &Message,
        parse: fn(&Message) -> Result<ParsedQuery, QueryError>,
    ) -> Result<(ParsedQuery, Selector), QueryError> {
        let live = self.ctx.live.as_ref().map(|now| now());
        let settings = live.as_deref().unwrap_or(&self.ctx.settings);
        if !settings.is_allowed(self.requestor) {
            return Err(QueryError::NotAllowed(
                "requestor is not in the leasequery allow-list",
            ));
        }
        if query
            .options
            .iter()
            .any(|o| matches!(o, DhcpOption::ServerId(id) if id != &self.ctx.server_duid))
        {
            return Err(QueryError::NotAllowed("the query names another server"));
        }
        let parsed = parse(query)?;
        check_policy(settings, self.requestor, &parsed)?;
        let selector = Selector::for_query(&parsed, settings);
        Ok((parsed, selector))
    }

    /// `tls-required` and a query in the clear: TLSConnectionRefused, and the connection is
    /// closed (the requestor may come back and StartTLS).
    async fn refuse_in_clear(&mut self, query: &Message) -> Result<Option<Flow>, Abort> {
        if self.tls || !self.ctx.settings.tls_required {
            return Ok(None);
        }
        let err =
            QueryError::TlsRequired("this server takes queries over TLS only: send StartTLS first");
        self.refuse(query, &err).await?;
        Ok(Some(Flow::Close))
    }

    async fn bulk(&mut self, query: Message) -> Result<Flow, Abort> {
        self.ctx.stats.bump("bulk_queries");
        if let Some(flow) = self.refuse_in_clear(&query).await? {
            return Ok(flow);
        }
        let (parsed, selector) = match self.prepare(&query, parse_query) {
            Ok(prepared) => prepared,
            Err(err) => {
                return self.refuse_query(&query, &err).await;
            }
        };
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(CHUNK_QUEUE);
        let ctx = self.ctx.clone();
        let query_for_scan = query.clone();
        let scan = tokio::task::spawn_blocking(move || {
            produce_bulk(&ctx, &query_for_scan, &parsed, selector, tx)
        });
        let mut shutdown = self.shutdown.clone();
        loop {
            let chunk = tokio::select! {
                biased;
                _ = wait_shutdown(&mut shutdown) => {
                    drop(rx);
                    self.terminate(&query).await?;
                    return Ok(Flow::Close);
                }
                chunk = rx.recv() => chunk,
            };
            match chunk {
                Some(bytes) => self.write(&bytes).await?,
                None => break,
            }
        }
        match scan.await {
            Ok(sent) => {
                self.ctx.stats.add("bulk_bindings_sent", sent);
                Ok(Flow::Continue)
            }
            Err(err) => Err(Abort::new("internal_error", err.to_string())),
        }
    }

    /// LEASEQUERY-DONE with QueryTerminated (server shutting down) and LQ_BASE_TIME (RFC 7653
    /// §8.4 and §9.3: the requestor resumes from it).
    async fn terminate(&mut self, query: &Message) -> Result<(), Abort> {
        self.ctx.stats.bump("terminated_by_shutdown");
        let done = Message::new(MSG_LEASEQUERY_DONE, query.transaction_id)
            .with_option(DhcpOption::StatusCode(StatusCode {
                code: STATUS_QUERY_TERMINATED,
                message: "server shutting down".into(),
            }))
            .with_option(DhcpOption::LqBaseTime(wire_time(unix_now())));
        self.send(&done).await
    }

    async fn active(&mut self, query: Message) -> Result<Flow, Abort> {
        self.ctx.stats.bump("active_queries");
        if let Some(flow) = self.refuse_in_clear(&query).await? {
            return Ok(flow);
        }
        if !self.ctx.settings.active_enabled {
            let err = QueryError::NotSupported("active leasequery is disabled on this server");
            return self.refuse_query(&query, &err).await;
        }
        if !self.tls && self.ctx.settings.active_requires_tls {
            let err = QueryError::TlsRequired(
                "active leasequery runs over TLS only here: send StartTLS first",
            );
            return self.refuse_query(&query, &err).await;
        }
        let (parsed, mut selector) = match self.prepare(&query, parse_active_query) {
            Ok(prepared) => prepared,
            Err(err) => {
                return self.refuse_query(&query, &err).await;
            }
        };
        if matches!(parsed.kind, QueryKind::Address(_) | QueryKind::ClientId(_)) {
            let err = QueryError::UnknownQueryType(parsed.query_type);
            return self.refuse_query(&query, &err).await;
        }
        selector.include_inactive = true;
        let selector = Arc::new(selector);
        // Subscribe before reading the history: a change committed during the catch-up is
        // then either in the history read or in the subscription (or both; see dedupe).
        let mut events = (self.ctx.subscribe)();
        let catch_up = match parsed.start_time {
            None => None,
            Some(start) => {
                let ctx = self.ctx.clone();
                let sel = selector.clone();
                let read =
                    tokio::task::spawn_blocking(move || catch_up(ctx.store.as_ref(), start, &sel))
                        .await
                        .map_err(|err| Abort::new("internal_error", err.to_string()))?;
                match read {
                    Ok(updates) => Some(updates),
                    Err(QueryError::DataMissing) => None,
                    Err(err) => {
                        return self.refuse_query(&query, &err).await;
                    }
                }
            }
        };
        let mut reply = reply_skeleton(MSG_LEASEQUERY_REPLY, &query, &self.ctx.server_duid);
        if parsed.start_time.is_some() && catch_up.is_none() {
            self.ctx.stats.bump("status_data_missing");
            reply.push(DhcpOption::StatusCode(QueryError::DataMissing.status()));
        }
        reply.push(DhcpOption::LqBaseTime(wire_time(unix_now())));
        self.send(&reply).await?;
        let mut stream = ActiveStream {
            xid: query.transaction_id,
            relay_data: parsed.relay_data,
            ia_options: parsed.ia_options,
            peer_data: parsed.peer_data,
            selector,
            dedupe: HashMap::new(),
            dedupe_until: None,
            sent: 0,
        };
        if let Some(updates) = catch_up {
            // Remember what the catch-up sends until the grace period after it ends.
            stream.dedupe_until = Some(Instant::now() + CATCH_UP_LIMIT);
            for update in updates {
                stream.send_update(self, update).await?;
            }
            let complete = Message::new(MSG_LEASEQUERY_DATA, query.transaction_id)
                .with_option(DhcpOption::StatusCode(StatusCode {
                    code: STATUS_CATCH_UP_COMPLETE,
                    message: "catch-up complete".into(),
                }))
                .with_option(DhcpOption::LqBaseTime(wire_time(unix_now())));
            self.send(&complete).await?;
            stream.dedupe_until = Some(Instant::now() + DEDUPE_GRACE);
        }
        let result = self.follow(&query, &mut stream, &mut events).await;
        self.ctx.stats.add("active_updates_sent", stream.sent);
        result
    }

    /// The live phase of an active query: updates, keepalives, end on close or shutdown.
    async fn follow(
        &mut self,
        query: &Message,
        stream: &mut ActiveStream,
        events: &mut broadcast::Receiver<LeaseEvent>,
    ) -> Result<Flow, Abort> {
        let keepalive = self
            .ctx
            .settings
            .keepalive_interval
            .max(Duration::from_millis(100));
        let mut next_keepalive = Instant::now() + keepalive;
        let mut complete_at = unix_now();
        let mut shutdown = self.shutdown.clone();
        let mut scratch = [0u8; 512];
        loop {
            if stream
                .dedupe_until
                .is_some_and(|until| Instant::now() >= until)
            {
                stream.dedupe.clear();
                stream.dedupe_until = None;
            }
            tokio::select! {
                event = events.recv() => match event {
                    Ok(event) => {
                        let update = LeaseUpdate {
                            removed: event.kind == LeaseEventKind::Cleared,
                            lease: event.lease,
                        };
                        if stream.send_update(self, update).await? {
                            next_keepalive = Instant::now() + keepalive;
                        }
                        if events.is_empty() {
                            complete_at = unix_now();
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        warn!(peer = %self.peer, missed, "active leasequery fell behind the lease events; catching up from the history");
                        self.ctx.stats.bump("active_lagged");
                        let ctx = self.ctx.clone();
                        let sel = stream.selector.clone();
                        let from = complete_at - LAG_MARGIN_SECS;
                        let updates = tokio::task::spawn_blocking(move || catch_up(ctx.store.as_ref(), from, &sel))
                            .await
                            .map_err(|err| Abort::new("internal_error", err.to_string()))?
                            .map_err(|err| Abort::new("store_error", err.to_string()))?;
                        stream.dedupe_until = Some(Instant::now() + CATCH_UP_LIMIT);
                        for update in updates {
                            stream.send_update(self, update).await?;
                        }
                        stream.dedupe_until = Some(Instant::now() + DEDUPE_GRACE);
                        next_keepalive = Instant::now() + keepalive;
                    }
                    Err(broadcast::error::RecvError::Closed) => {
                        self.terminate(query).await?;
                        return Ok(Flow::Close);
                    }
                },
                _ = tokio::time::sleep_until(next_keepalive) => {
                    let keepalive_msg = Message::new(MSG_LEASEQUERY_DATA, query.transaction_id)
                        .with_option(DhcpOption::LqBaseTime(wire_time(unix_now())));
                    self.send(&keepalive_msg).await?;
                    self.ctx.stats.bump("keepalives_sent");
                    next_keepalive = Instant::now() + keepalive;
                }
                read = self.reader.read(&mut scratch) => match read {
                    Ok(0) => return Ok(Flow::Close),
                    Ok(n) => return Err(Abort::new("unexpected_data", format!("{n} bytes from the requestor during an active query"))),
                    Err(err) => return Err(Abort::new("io_error", err.to_string())),
                },
                _ = wait_shutdown(&mut shutdown) => {
                    self.terminate(query).await?;
                    return Ok(Flow::Close);
                }
            }
        }
    }
}

/// The sending side of an active query.
struct ActiveStream {
    xid: [u8; 3],
    relay_data: bool,
    ia_options: bool,
    peer_data: bool,
    selector: Arc<Selector>,
    /// What the catch-up sent, per binding, while live events may still repeat it.
    dedupe: HashMap<LeaseKey, LeaseUpdate>,
    dedupe_until: Option<Instant>,
    sent: u64,
}

impl ActiveStream {
    /// Sends `update` if the query selects it and it does not repeat what was just sent.
    /// Returns whether something was sent.
    async fn send_update(
        &mut self,
        session: &mut Session,
        update: LeaseUpdate,
    ) -> Result<bool, Abort> {
        let now = unix_now();
        if !self.selector.matches(&update.lease, now) {
            return Ok(false);
        }
        let key = update.lease.key();
        if self.dedupe.get(&key) == Some(&update) {
            return Ok(false);
        }
        let Some(data) = client_data(
            std::slice::from_ref(&update),
            now,
            self.relay_data,
            self.ia_options,
            self.peer_data,
        ) else {
            return Ok(false);
        };
        let message = Message::new(MSG_LEASEQUERY_DATA, self.xid)
            .with_option(DhcpOption::LqBaseTime(wire_time(now)))
            .with_option(data);
        session.send(&message).await?;
        if self
            .dedupe_until
            .is_some_and(|until| Instant::now() < until)
        {
            self.dedupe.insert(key, update);
        }
        self.sent += 1;
        Ok(true)
    }
}

/// Counts and logs a dropped connection.
fn drop_counted(ctx: &LeasequeryContext, peer: SocketAddr, abort: &Abort) {
    warn!(%peer, reason = abort.reason, detail = %abort.detail, "leasequery connection dropped");
    ctx.stats.bump(&format!("dropped_{}", abort.reason));
}

/// Reads one frame: `Ok(None)` on a clean close between frames. Waiting for a frame to start
/// is bounded by the idle timeout, a started frame by the I/O timeout.
async fn read_frame(
    reader: &mut (impl AsyncRead + Unpin),
    decoder: &mut FrameDecoder,
    settings: &LeasequerySettings,
) -> Result<Option<Bytes>, Abort> {
    let mut frame_deadline: Option<Instant> = None;
    let mut buf = [0u8; 2048];
    loop {
        match decoder.next_frame() {
            Ok(Some(frame)) => return Ok(Some(frame)),
            Ok(None) => {}
            Err(err) => return Err(Abort::new(err.reason(), err.to_string())),
        }
        let (deadline, reason) = if decoder.is_mid_frame() {
            (
                *frame_deadline.get_or_insert_with(|| Instant::now() + settings.io_timeout),
                "read_timeout",
            )
        } else {
            (Instant::now() + settings.idle_timeout, "idle_timeout")
        };
        let n = match timeout_at(deadline, reader.read(&mut buf)).await {
            Err(_) => {
                return Err(Abort::new(
                    reason,
                    format!("{} bytes of a frame pending", decoder.buffered_len()),
                ))
            }
            Ok(Err(err)) => return Err(Abort::new("io_error", err.to_string())),
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            return if decoder.is_mid_frame() {
                Err(Abort::new(
                    "truncated_frame",
                    format!(
                        "connection closed with {} bytes of a frame pending",
                        decoder.buffered_len()
                    ),
                ))
            } else {
                Ok(None)
            };
        }
        decoder.push(&buf[..n]);
    }
}

/// Appends `message`, encoded and length-prefixed, to `buf`.
fn frame_message(message: &Message, buf: &mut Vec<u8>) -> Result<(), String> {
    let bytes = message.encode().map_err(|err| err.to_string())?;
    encode_frame_into(&bytes, buf).map_err(|err| err.to_string())
}

/// The scan ended early: the connection is gone.
struct Gone;

/// Builds the bulk answer's messages and hands them, framed, to the connection in chunks.
struct BulkOut<'a> {
    tx: mpsc::Sender<Vec<u8>>,
    chunk: Vec<u8>,
    query: &'a Message,
    server_duid: &'a Duid,
    base_time: i64,
    relay_data: bool,
    ia_options: bool,
    peer_data: bool,
    replied: bool,
    clients: u64,
}

impl BulkOut<'_> {
    fn push(&mut self, message: &Message) -> Result<(), Gone> {
        if let Err(err) = frame_message(message, &mut self.chunk) {
            // Cannot happen for the sizes built here (a client has at most 256 bindings);
            // skipping one message beats cutting the stream.
            warn!(error = %err, "leasequery message does not encode; skipped");
            return Ok(());
        }
        if self.chunk.len() >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Gone> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::take(&mut self.chunk);
        self.tx.blocking_send(chunk).map_err(|_| Gone)
    }

    fn reply(&self) -> Message {
        reply_skeleton(MSG_LEASEQUERY_REPLY, self.query, self.server_duid)
            .with_option(DhcpOption::LqBaseTime(wire_time(self.base_time)))
    }

    /// One client: in the REPLY if it is the first, else in a DATA.
    fn client(&mut self, updates: &[LeaseUpdate]) -> Result<(), Gone> {
        let Some(data) = client_data(
            updates,
            self.base_time,
            self.relay_data,
            self.ia_options,
            self.peer_data,
        ) else {
            return Ok(());
        };
        let message = if self.replied {
            Message::new(MSG_LEASEQUERY_DATA, self.query.transaction_id)
                .with_option(DhcpOption::LqBaseTime(wire_time(self.base_time)))
                .with_option(data)
        } else {
            self.replied = true;
            self.reply().with_option(data)
        };
        self.clients += updates.len() as u64;
        self.push(&message)
    }

    /// One client's selected leases (taken, `leases` left empty), in key order as a lookup by
    /// DUID gives them; nothing when there are none.
    fn client_leases(&mut self, leases: &mut Vec<Lease>) -> Result<(), Gone> {
        if leases.is_empty() {
            return Ok(());
        }
        let mut leases = std::mem::take(leases);
        leases.sort_by_key(Lease::key);
        self.client(&as_updates(leases))
    }

    /// The end: a REPLY if nothing was sent yet, then DONE (with `status` when not success).
    /// A refusal before anything was sent is a lone REPLY with the status.
    fn finish(&mut self, status: Option<StatusCode>) -> Result<(), Gone> {
        if !self.replied {
            let mut reply = self.reply();
            if let Some(status) = status {
                reply.push(DhcpOption::StatusCode(status));
                self.push(&reply)?;
                return self.flush();
            }
            self.push(&reply)?;
        }
        let mut done = Message::new(MSG_LEASEQUERY_DONE, self.query.transaction_id);
        if let Some(status) = status {
            done.push(DhcpOption::StatusCode(status));
        }
        self.push(&done)?;
        self.flush()
    }
}

/// Runs a bulk query against the store (on the blocking pool). Returns the bindings sent.
fn produce_bulk(
    ctx: &LeasequeryContext,
    query: &Message,
    parsed: &ParsedQuery,
    mut selector: Selector,
    tx: mpsc::Sender<Vec<u8>>,
) -> u64 {
    let mut out = BulkOut {
        tx,
        chunk: Vec::with_capacity(CHUNK_BYTES + 1024),
        query,
        server_duid: &ctx.server_duid,
        base_time: unix_now(),
        relay_data: parsed.relay_data,
        ia_options: parsed.ia_options,
        peer_data: parsed.peer_data,
        replied: false,
        clients: 0,
    };
    let result = scan_bulk(ctx, parsed, &mut selector, &mut out);
    let status = match result {
        Ok(Ok(())) => None,
        Ok(Err(err)) => {
            ctx.stats.bump(&format!("status_{}", err.reason()));
            if let QueryError::Store(detail) = &err {
                warn!(error = %detail, "bulk leasequery: lease store failed");
            }
            Some(err.status())
        }
        Err(Gone) => return out.clients,
    };
    let _ = out.finish(status);
    out.clients
}

/// The scan proper; `Err(Gone)` when the connection went away, `Ok(Err(..))` for a refusal or
/// a store failure to report.
fn scan_bulk(
    ctx: &LeasequeryContext,
    parsed: &ParsedQuery,
    selector: &mut Selector,
    out: &mut BulkOut<'_>,
) -> Result<Result<(), QueryError>, Gone> {
    let store = ctx.store.as_ref();
    let now = out.base_time;
    if parsed.start_time.is_some() || parsed.end_time.is_some() {
        let start = parsed.start_time.unwrap_or(0);
        let end = parsed.end_time.unwrap_or(i64::MAX);
        match changed_keys(store, start, end) {
            Ok(Some(keys)) => {
                selector.changed = Some(keys);
                selector.include_inactive = true;
            }
            Ok(None) => return Ok(Err(QueryError::DataMissing)),
            Err(err) => return Ok(Err(err.into())),
        }
    }
    match &parsed.kind {
        QueryKind::Address(_) | QueryKind::ClientId(_) => {
            match answer_client(store, parsed, selector, now, false) {
                Ok(ClientAnswer::Client(leases)) => out.client(&as_updates(leases))?,
                Ok(ClientAnswer::Links(_) | ClientAnswer::Nothing) => {}
                Err(err) => return Ok(Err(err.into())),
            }
        }
        QueryKind::RelayId(_) | QueryKind::RemoteId(_) | QueryKind::LinkAddress => {
            // In client order, so that all of a client's selected bindings go out together,
            // once, with no lookup per client: the selector implies the store filter, so the
            // client's leases in the filtered scan are all its selected ones.
            let filter = Selector::store_filter(parsed);
            let mut current: Option<Vec<u8>> = None;
            let mut client: Vec<Lease> = Vec::new();
            for lease in LeasePages::by_client(store, filter, ctx.settings.page_size) {
                let lease = match lease {
                    Ok(lease) => lease,
                    Err(err) => return Ok(Err(err.into())),
                };
                if current.as_deref() != Some(lease.duid.as_slice()) {
                    out.client_leases(&mut client)?;
                    current = Some(lease.duid.clone());
                }
                if client.len() < MAX_LEASES_PER_CLIENT && selector.matches(&lease, now) {
                    client.push(lease);
                }
            }
            out.client_leases(&mut client)?;
        }
    }
    Ok(Ok(()))
}

/// Whether the history holds every change committed at or after `start`.
pub(crate) fn history_covers(store: &dyn LeaseStore, start: i64) -> Result<bool, StoreError> {
    match store.oldest_change_time()? {
        // No history: complete only if nothing ever changed.
        None => Ok(store.last_seq()? == 0),
        // Pruning removes a prefix by time: entries at or before `start` mean none after it went.
        Some(oldest) if oldest <= start => Ok(true),
        // Nothing was ever pruned: the history is complete however far back `start` is.
        Some(_) => Ok(store
            .changes_since(ChangeCursor::AfterSeq(0), 1)?
            .first()
            .is_some_and(|change| change.seq == 1)),
    }
}

/// The keys of the bindings changed within `start..=end`; `None` when the history does not
/// reach back to `start`.
fn changed_keys(
    store: &dyn LeaseStore,
    start: i64,
    end: i64,
) -> Result<Option<HashSet<LeaseKey>>, StoreError> {
    if !history_covers(store, start)? {
        return Ok(None);
    }
    let mut keys = HashSet::new();
    let mut cursor = ChangeCursor::SinceTime(start);
    loop {
        let page = store.changes_since(cursor, HISTORY_PAGE)?;
        let Some(last) = page.last() else { break };
        cursor = ChangeCursor::AfterSeq(last.seq);
        let full = page.len() == HISTORY_PAGE;
        for change in page {
            if change.at > end {
                return Ok(Some(keys));
            }
            keys.insert(change.lease.key());
        }
        if !full {
            break;
        }
    }
    Ok(Some(keys))
}

/// The current state of every selected binding changed at or after `start`, in the order of
/// each binding's last change. `Err(DataMissing)` when the history does not reach back.
pub(crate) fn catch_up(
    store: &dyn LeaseStore,
    start: i64,
    selector: &Selector,
) -> Result<Vec<LeaseUpdate>, QueryError> {
    if !history_covers(store, start)? {
        return Err(QueryError::DataMissing);
    }
    let mut latest: HashMap<LeaseKey, (u64, LeaseUpdate)> = HashMap::new();
    let mut cursor = ChangeCursor::SinceTime(start);
    loop {
        let page = store.changes_since(cursor, HISTORY_PAGE)?;
        let Some(last) = page.last() else { break };
        cursor = ChangeCursor::AfterSeq(last.seq);
        let full = page.len() == HISTORY_PAGE;
        for change in page {
            let update = LeaseUpdate {
                removed: change.kind == ChangeKind::Delete,
                lease: change.lease,
            };
            latest.insert(update.lease.key(), (change.seq, update));
        }
        if !full {
            break;
        }
    }
    let now = unix_now();
    let mut updates: Vec<(u64, LeaseUpdate)> = latest
        .into_values()
        .filter(|(_, update)| selector.matches(&update.lease, now))
        .collect();
    updates.sort_by_key(|(seq, _)| *seq);
    Ok(updates.into_iter().map(|(_, update)| update).collect())
}

#[cfg(test)]
mod source_slot_tests {
    use super::*;

    /// Each source has its own `max` slots; a slot given back (dropped) can be taken again.
    #[test]
    fn sources_are_limited_one_by_one() {
        let slots = Arc::new(SourceSlots::new(2));
        let a: IpAddr = "2001:db8::a".parse().unwrap();
        let b: IpAddr = "2001:db8::b".parse().unwrap();
        let first = slots.try_take(a).expect("first slot of a");
        let _second = slots.try_take(a).expect("second slot of a");
        assert!(slots.try_take(a).is_none(), "a is at its limit");
        let _other = slots.try_take(b).expect("b has its own slots");
        drop(first);
        assert!(
            slots.try_take(a).is_some(),
            "a slot given back is free again"
        );
    }
}
