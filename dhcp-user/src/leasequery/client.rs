//! The requestor side: query any RFC 5007 (UDP), RFC 5460 (bulk, TCP) or RFC 7653 (active,
//! TCP) server and get the bindings back parsed.
//!
//! ```text
//! let me = Duid::ll(1, &[2, 0, 0, 0, 0, 1])?;
//! let server: SocketAddr = "[2001:db8:1::1]:547".parse()?;
//! let answer = query_udp(server, &me, &Query::Address(addr), &QueryOptions::default(), wait).await?;
//! let answer = query_bulk(server, &me, &Query::RelayId(relay), &QueryOptions::default(), wait).await?;
//! let (mut active, reply) = ActiveLeasequery::start(server, &me, &Query::LinkAddress(Ipv6Addr::UNSPECIFIED),
//!                                                   &QueryOptions { start_time: Some(t), ..Default::default() }, wait).await?;
//! while let ActiveEvent::Update(binding) = active.next(wait).await? { table.apply(&binding); }
//! // Over TLS (RFC 7653 §5.2): StartTLS first, then the queries as before.
//! let connection = LeasequeryConnection::connect_with(server, wait, &me, Some(&tls)).await?;
//! ```

use std::collections::HashMap;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

use dhcp_common::dhcpv6::*;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

use crate::tls::{ClientTls, Stream};

use super::{unix_time, wire_time, PeerData};
use crate::proto::framing::{encode_frame, FrameDecoder};
use crate::proto::{DhcpOption, Duid, IaAddr, LqQuery, Message, OptionList, RemoteId, StatusCode};

/// What to ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// The binding of an address (or of the delegated prefix containing it).
    Address(Ipv6Addr),
    /// The bindings of a client.
    ClientId(Duid),
    /// The bindings learnt through a relay (bulk/active only).
    RelayId(Duid),
    /// The bindings on a link (`::`: every link; bulk/active only).
    LinkAddress(Ipv6Addr),
    /// The bindings whose request carried this Remote-ID (bulk/active only).
    RemoteId {
        /// IANA enterprise number.
        enterprise: u32,
        /// The remote-id bytes.
        remote_id: Vec<u8>,
    },
}

/// Optional parts of a query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryOptions {
    /// The link-address of OPTION_LQ_QUERY (`None`: `::`). Ignored for `Query::LinkAddress`.
    pub link_address: Option<Ipv6Addr>,
    /// Ask for LQ_RELAY_DATA (ORO).
    pub relay_data: bool,
    /// LQ_START_TIME (bulk: changed since; active: catch up from), Unix seconds (sent as
    /// seconds since 2000, RFC 7653 §6.3).
    pub start_time: Option<u32>,
    /// LQ_END_TIME (bulk only), Unix seconds.
    pub end_time: Option<u32>,
    /// Our own Relay-ID, for servers in restricted-requestor mode.
    pub requestor_relay_id: Option<Duid>,
    /// Ask (ORO: OPTION_IA_NA, OPTION_IA_PD) for each binding's IAID, which this server sends
    /// as IA_NA / IA_PD inside OPTION_CLIENT_DATA (peer redundancy needs it).
    pub ia_data: bool,
    /// Ask (ORO: OPTION_VENDOR_OPTS) for each client's [`PeerData`]: its next hop, interface
    /// and line (peer redundancy; only this server sends it).
    pub peer_data: bool,
}

/// Errors of the requestor.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("leasequery I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("leasequery server did not answer in time ({0})")]
    Timeout(&'static str),
    #[error("leasequery answer does not decode: {0}")]
    Decode(String),
    #[error("leasequery protocol error: {0}")]
    Protocol(String),
    /// The server answered STARTTLS with a LEASEQUERY-REPLY and a status instead
    /// (TLSConnectionRefused: it has no TLS; NotAllowed: we are not in its allow-list).
    #[error("leasequery server refused TLS: status {status} {message}")]
    TlsRefused {
        /// The status code.
        status: u16,
        /// Its message.
        message: String,
    },
    /// The TLS handshake failed (the server's certificate does not verify, or it refused ours).
    #[error("leasequery TLS handshake: {0}")]
    Tls(String),
}

/// One address of a binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoundAddress {
    pub address: Ipv6Addr,
    /// The IAID of the client's IA_NA holding it, when the server sent it (asked for with
    /// [`QueryOptions::ia_data`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iaid: Option<u32>,
    /// Seconds of preferred lifetime left at the message's base time.
    pub preferred: u32,
    /// Seconds of valid lifetime left (0: the binding is gone).
    pub valid: u32,
}

/// One delegated prefix of a binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BoundPrefix {
    pub prefix: Ipv6Addr,
    /// The IAID of the client's IA_PD holding it, when the server sent it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iaid: Option<u32>,
    pub prefix_len: u8,
    pub preferred: u32,
    pub valid: u32,
}

/// LQ_RELAY_DATA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelayData {
    /// The relay closest to the client.
    pub peer_address: Ipv6Addr,
    /// The relay message as the server received it, hex.
    pub relay_message: String,
}

/// One client's bindings, from an OPTION_CLIENT_DATA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Binding {
    /// The client's DUID, colon hex.
    pub client_id: String,
    pub addresses: Vec<BoundAddress>,
    pub prefixes: Vec<BoundPrefix>,
    /// Seconds since the client's last transaction (CLT_TIME).
    pub clt_time: Option<u32>,
    pub relay_data: Option<RelayData>,
    /// LQ_BASE_TIME of the message, converted to Unix seconds, when the server sent one.
    pub base_time: Option<u32>,
    /// Next hop, interface and line, when the server is one of ours and was asked
    /// ([`QueryOptions::peer_data`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerData>,
}

impl Binding {
    /// Parses the options inside an OPTION_CLIENT_DATA.
    pub fn from_client_data(
        options: &[DhcpOption],
        base_time: Option<u32>,
    ) -> Result<Binding, ClientError> {
        let client_id = match options.find(OPT_CLIENTID) {
            Some(DhcpOption::ClientId(duid)) => duid.to_string(),
            Some(DhcpOption::Unknown { data, .. }) => hex_colon(data),
            _ => {
                return Err(ClientError::Protocol(
                    "OPTION_CLIENT_DATA without a Client ID".into(),
                ))
            }
        };
        let na_iaid = |address: Ipv6Addr| {
            options
                .ia_nas()
                .find(|ia| ia.options.ia_addrs().any(|a| a.addr == address))
                .map(|ia| ia.iaid)
        };
        let pd_iaid = |prefix: Ipv6Addr, len: u8| {
            options
                .ia_pds()
                .find(|ia| {
                    ia.options
                        .ia_prefixes()
                        .any(|p| p.prefix == prefix && p.prefix_len == len)
                })
                .map(|ia| ia.iaid)
        };
        let addresses = options
            .ia_addrs()
            .map(|a| BoundAddress {
                address: a.addr,
                iaid: na_iaid(a.addr),
                preferred: a.preferred,
                valid: a.valid,
            })
            .collect();
        let prefixes = options
            .ia_prefixes()
            .map(|p| BoundPrefix {
                prefix: p.prefix,
                iaid: pd_iaid(p.prefix, p.prefix_len),
                prefix_len: p.prefix_len,
                preferred: p.preferred,
                valid: p.valid,
            })
            .collect();
        let clt_time = options.iter().find_map(|o| match o {
            DhcpOption::CltTime(t) => Some(*t),
            _ => None,
        });
        let relay_data = options.iter().find_map(|o| match o {
            DhcpOption::LqRelayData(r) => Some(RelayData {
                peer_address: r.peer_address,
                relay_message: hex::encode(&r.relay_message),
            }),
            _ => None,
        });
        let peer = options.iter().find_map(|o| match o {
            DhcpOption::VendorOpts(body) => PeerData::decode(body),
            _ => None,
        });
        Ok(Binding {
            client_id,
            addresses,
            prefixes,
            clt_time,
            relay_data,
            base_time,
            peer,
        })
    }

    /// The per-address/prefix states this binding describes, in absolute time.
    pub fn states(&self) -> Vec<BindingState> {
        let base = i64::from(self.base_time.unwrap_or(0));
        let cltt = self.clt_time.map(|clt| base - i64::from(clt));
        let state = |address, prefix_len, iaid, valid: u32, preferred: u32| BindingState {
            client_id: self.client_id.clone(),
            address,
            prefix_len,
            iaid,
            cltt,
            expire: (valid > 0).then(|| base + i64::from(valid)),
            preferred_end: (valid > 0).then(|| base + i64::from(preferred)),
        };
        let mut states: Vec<BindingState> = self
            .addresses
            .iter()
            .map(|a| state(a.address, 128, a.iaid, a.valid, a.preferred))
            .collect();
        states.extend(
            self.prefixes
                .iter()
                .map(|p| state(p.prefix, p.prefix_len, p.iaid, p.valid, p.preferred)),
        );
        states
    }
}

/// One address or prefix binding in absolute time: identical for every message describing the
/// same state, whatever its base time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct BindingState {
    pub client_id: String,
    pub address: Ipv6Addr,
    /// 128 for an address.
    pub prefix_len: u8,
    /// The IAID of its IA, when the server sent it.
    pub iaid: Option<u32>,
    /// Client last transaction time, unix seconds.
    pub cltt: Option<i64>,
    /// End of the valid lifetime, unix seconds; `None` when the binding is gone.
    pub expire: Option<i64>,
    /// End of the preferred lifetime; `None` when the binding is gone.
    pub preferred_end: Option<i64>,
}

impl BindingState {
    /// Whether the binding is gone (released, expired, removed).
    pub fn is_removed(&self) -> bool {
        self.expire.is_none()
    }
}

/// A requestor's copy of the server's bindings: applying updates tells which are new, so a
/// catch-up overlapping what was already received (RFC 7653 times are whole seconds) yields no
/// duplicates.
#[derive(Debug, Default, Clone)]
pub struct BindingTable {
    states: HashMap<(Ipv6Addr, u8), BindingState>,
}

impl BindingTable {
    pub fn new() -> Self {
        BindingTable::default()
    }

    /// Applies a binding; returns the states that changed (empty for a repeat).
    pub fn apply(&mut self, binding: &Binding) -> Vec<BindingState> {
        let mut changed = Vec::new();
        for state in binding.states() {
            let key = (state.address, state.prefix_len);
            if self.states.get(&key) != Some(&state) {
                self.states.insert(key, state.clone());
                changed.push(state);
            }
        }
        changed
    }

    /// The state of an address (`prefix_len` 128) or prefix.
    pub fn get(&self, address: Ipv6Addr, prefix_len: u8) -> Option<&BindingState> {
        self.states.get(&(address, prefix_len))
    }

    /// Every binding not removed.
    pub fn active(&self) -> impl Iterator<Item = &BindingState> {
        self.states.values().filter(|s| !s.is_removed())
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

/// A parsed answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    /// Status of the LEASEQUERY-REPLY (0 Success) and its message.
    pub status: u16,
    pub status_message: String,
    /// Status of the LEASEQUERY-DONE (bulk), when it carried one (QueryTerminated, ...).
    pub done_status: Option<u16>,
    /// The bindings, in the order received.
    pub bindings: Vec<Binding>,
    /// OPTION_LQ_CLIENT_LINK: the client is on these links (ask again with one of them).
    pub client_links: Vec<Ipv6Addr>,
    /// LQ_BASE_TIME of the reply, Unix seconds.
    pub base_time: Option<u32>,
}

/// The query message (`MSG_LEASEQUERY` or `MSG_ACTIVELEASEQUERY`). An active query for every
/// binding (`Query::LinkAddress(::)` without a link-address option) carries no
/// OPTION_LQ_QUERY, as RFC 7653 §6.2.1 requires of a requestor that wants all updates; the ORO
/// then goes at the top level.
pub fn build_query(
    msg_type: u8,
    transaction_id: [u8; 3],
    requestor: &Duid,
    query: &Query,
    options: &QueryOptions,
) -> Message {
    let mut link_address = options.link_address.unwrap_or(Ipv6Addr::UNSPECIFIED);
    let mut query_options = Vec::new();
    let query_type = match query {
        Query::Address(address) => {
            query_options.push(DhcpOption::IaAddr(IaAddr {
                addr: *address,
                preferred: 0,
                valid: 0,
                options: Vec::new(),
            }));
            QUERY_BY_ADDRESS
        }
        Query::ClientId(duid) => {
            query_options.push(DhcpOption::ClientId(duid.clone()));
            QUERY_BY_CLIENTID
        }
        Query::RelayId(duid) => {
            query_options.push(DhcpOption::RelayId(duid.clone()));
            QUERY_BY_RELAY_ID
        }
        Query::LinkAddress(link) => {
            link_address = *link;
            QUERY_BY_LINK_ADDRESS
        }
        Query::RemoteId {
            enterprise,
            remote_id,
        } => {
            query_options.push(DhcpOption::RemoteId(RemoteId {
                enterprise: *enterprise,
                remote_id: remote_id.clone(),
            }));
            QUERY_BY_REMOTE_ID
        }
    };
    let mut oro = Vec::new();
    if options.relay_data {
        oro.push(OPT_LQ_RELAY_DATA);
    }
    if options.ia_data {
        oro.extend([OPT_IA_NA, OPT_IA_PD]);
    }
    if options.peer_data {
        oro.push(OPT_VENDOR_OPTS);
    }
    let everything = msg_type == MSG_ACTIVELEASEQUERY
        && query_type == QUERY_BY_LINK_ADDRESS
        && link_address.is_unspecified();
    let mut message =
        Message::new(msg_type, transaction_id).with_option(DhcpOption::ClientId(requestor.clone()));
    if everything {
        if !oro.is_empty() {
            message.push(DhcpOption::Oro(oro));
        }
    } else {
        if !oro.is_empty() {
            query_options.push(DhcpOption::Oro(oro));
        }
        message.push(DhcpOption::LqQuery(LqQuery {
            query_type,
            link_address,
            options: query_options,
        }));
    }
    if let Some(relay) = &options.requestor_relay_id {
        message.push(DhcpOption::RelayId(relay.clone()));
    }
    if let Some(start) = options.start_time {
        message.push(DhcpOption::LqStartTime(wire_time(i64::from(start))));
    }
    if let Some(end) = options.end_time {
        message.push(DhcpOption::LqEndTime(wire_time(i64::from(end))));
    }
    message
}

fn random_xid() -> [u8; 3] {
    let value: u32 = rand::random();
    let [_, a, b, c] = value.to_be_bytes();
    [a, b, c]
}

/// LQ_BASE_TIME of `message` in Unix seconds (the wire counts from 2000, RFC 7653 §6.3.1).
fn base_time_of(message: &Message) -> Option<u32> {
    message.options.iter().find_map(|o| match o {
        DhcpOption::LqBaseTime(t) => Some(u32::try_from(unix_time(*t)).unwrap_or(u32::MAX)),
        _ => None,
    })
}

fn client_data_of(message: &Message) -> Result<Option<Binding>, ClientError> {
    let base = base_time_of(message);
    match message.find(OPT_CLIENT_DATA) {
        Some(DhcpOption::ClientData(options)) => Binding::from_client_data(options, base).map(Some),
        _ => Ok(None),
    }
}

/// Reads an answer's first message (a LEASEQUERY-REPLY) into an [`Answer`].
fn answer_from_reply(reply: &Message) -> Result<Answer, ClientError> {
    if reply.msg_type != MSG_LEASEQUERY_REPLY {
        return Err(ClientError::Protocol(format!(
            "expected LEASEQUERY-REPLY, got message type {}",
            reply.msg_type
        )));
    }
    let (status, status_message) = reply
        .status_code()
        .map_or((STATUS_SUCCESS, String::new()), |s| {
            (s.code, s.message.clone())
        });
    let client_links = reply
        .options
        .iter()
        .find_map(|o| match o {
            DhcpOption::LqClientLink(links) => Some(links.clone()),
            _ => None,
        })
        .unwrap_or_default();
    Ok(Answer {
        status,
        status_message,
        done_status: None,
        bindings: client_data_of(reply)?.into_iter().collect(),
        client_links,
        base_time: base_time_of(reply),
    })
}

/// An individual query over UDP (RFC 5007), one attempt waiting `wait` for the answer.
pub async fn query_udp(
    server: SocketAddr,
    requestor: &Duid,
    query: &Query,
    options: &QueryOptions,
    wait: Duration,
) -> Result<Answer, ClientError> {
    let bind: SocketAddr = if server.is_ipv6() {
        "[::]:0"
            .parse()
            .map_err(|_| ClientError::Protocol("bind address".into()))?
    } else {
        "0.0.0.0:0"
            .parse()
            .map_err(|_| ClientError::Protocol("bind address".into()))?
    };
    let socket = UdpSocket::bind(bind).await?;
    let xid = random_xid();
    let message = build_query(MSG_LEASEQUERY, xid, requestor, query, options);
    let bytes = message
        .encode()
        .map_err(|err| ClientError::Protocol(err.to_string()))?;
    socket.send_to(&bytes, server).await?;
    let mut buf = vec![0u8; 65_536];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let (n, from) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf))
            .await
            .map_err(|_| ClientError::Timeout("LEASEQUERY-REPLY"))??;
        if from.ip() != server.ip() {
            continue;
        }
        let Ok(reply) = Message::decode(&buf[..n]) else {
            continue;
        };
        if reply.transaction_id == xid {
            return answer_from_reply(&reply);
        }
    }
}

/// A TCP leasequery connection (RFC 5460 framing) on which queries run one after the other,
/// in the clear or after StartTLS.
pub struct LeasequeryConnection {
    stream: Stream,
    server: SocketAddr,
    decoder: FrameDecoder,
    io_timeout: Duration,
}

impl LeasequeryConnection {
    /// Connects to `server`; every later read or write must make progress within `io_timeout`.
    pub async fn connect(server: SocketAddr, io_timeout: Duration) -> Result<Self, ClientError> {
        let stream = timeout(io_timeout, TcpStream::connect(server))
            .await
            .map_err(|_| ClientError::Timeout("connect"))??;
        let _ = stream.set_nodelay(true);
        Ok(LeasequeryConnection {
            stream: Stream::Plain(stream),
            server,
            decoder: FrameDecoder::default(),
            io_timeout,
        })
    }

    /// Connects, and with `tls` StartTLSes ([`LeasequeryConnection::start_tls`]).
    pub async fn connect_with(
        server: SocketAddr,
        io_timeout: Duration,
        requestor: &Duid,
        tls: Option<&ClientTls>,
    ) -> Result<Self, ClientError> {
        let connection = LeasequeryConnection::connect(server, io_timeout).await?;
        match tls {
            Some(tls) => connection.start_tls(requestor, tls).await,
            None => Ok(connection),
        }
    }

    /// Whether the connection runs TLS.
    pub fn is_tls(&self) -> bool {
        self.stream.is_tls()
    }

    /// StartTLS (RFC 7653 §5.2): sends STARTTLS; on the server's STARTTLS, the TLS handshake
    /// (we are the TLS client), verifying the server's certificate against `tls`'s trust
    /// anchors and name (default: the server's address). A server without TLS answers with
    /// TLSConnectionRefused: [`ClientError::TlsRefused`], never a fallback to the clear.
    pub async fn start_tls(
        mut self,
        requestor: &Duid,
        tls: &ClientTls,
    ) -> Result<Self, ClientError> {
        if self.is_tls() {
            return Err(ClientError::Protocol("StartTLS on a TLS connection".into()));
        }
        let xid = random_xid();
        self.send(
            &Message::new(MSG_STARTTLS, xid).with_option(DhcpOption::ClientId(requestor.clone())),
        )
        .await?;
        let answer = self.receive_required().await?;
        check_xid(&answer, xid)?;
        match answer.msg_type {
            MSG_STARTTLS => {}
            MSG_LEASEQUERY_REPLY => {
                let (status, message) = answer
                    .status_code()
                    .map_or((STATUS_SUCCESS, String::new()), |s| {
                        (s.code, s.message.clone())
                    });
                return Err(ClientError::TlsRefused { status, message });
            }
            other => {
                return Err(ClientError::Protocol(format!(
                    "message type {other} in answer to STARTTLS"
                )))
            }
        }
        if self.decoder.buffered_len() > 0 {
            return Err(ClientError::Protocol(
                "the server sent data after its STARTTLS, before the TLS handshake".into(),
            ));
        }
        let Stream::Plain(tcp) = self.stream else {
            return Err(ClientError::Protocol("StartTLS on a TLS connection".into()));
        };
        let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
        let name = tls.name_for(self.server.ip());
        let stream = timeout(self.io_timeout, connector.connect(name, tcp))
            .await
            .map_err(|_| ClientError::Timeout("TLS handshake"))?
            .map_err(|err| ClientError::Tls(err.to_string()))?;
        Ok(LeasequeryConnection {
            stream: Stream::Tls(Box::new(tokio_rustls::TlsStream::Client(stream))),
            server: self.server,
            decoder: FrameDecoder::default(),
            io_timeout: self.io_timeout,
        })
    }

    /// Sends one message.
    pub async fn send(&mut self, message: &Message) -> Result<(), ClientError> {
        let bytes = message
            .encode()
            .map_err(|err| ClientError::Protocol(err.to_string()))?;
        let frame = encode_frame(&bytes).map_err(|err| ClientError::Protocol(err.to_string()))?;
        // Flushed: over TLS, a record the socket did not take at once would otherwise wait in
        // rustls's buffer for the next write.
        let stream = &mut self.stream;
        let write_all = async {
            stream.write_all(&frame).await?;
            stream.flush().await
        };
        timeout(self.io_timeout, write_all)
            .await
            .map_err(|_| ClientError::Timeout("write"))??;
        Ok(())
    }

    /// The next message; `None` when the server closed the connection. Waits at most `wait`.
    pub async fn receive(&mut self, wait: Duration) -> Result<Option<Message>, ClientError> {
        let mut buf = [0u8; 16 * 1024];
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(frame) = self
                .decoder
                .next_frame()
                .map_err(|err| ClientError::Decode(err.to_string()))?
            {
                return Message::decode(&frame)
                    .map(Some)
                    .map_err(|err| ClientError::Decode(err.to_string()));
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .map_err(|_| ClientError::Timeout("read"))??;
            if n == 0 {
                if self.decoder.is_mid_frame() {
                    return Err(ClientError::Decode("connection closed mid-message".into()));
                }
                return Ok(None);
            }
            self.decoder.push(&buf[..n]);
        }
    }

    async fn receive_required(&mut self) -> Result<Message, ClientError> {
        self.receive(self.io_timeout)
            .await?
            .ok_or_else(|| ClientError::Protocol("server closed the connection".into()))
    }

    /// A bulk query (RFC 5460): the REPLY, every DATA, up to the DONE.
    pub async fn bulk(
        &mut self,
        requestor: &Duid,
        query: &Query,
        options: &QueryOptions,
    ) -> Result<Answer, ClientError> {
        let xid = random_xid();
        self.send(&build_query(MSG_LEASEQUERY, xid, requestor, query, options))
            .await?;
        let reply = self.receive_required().await?;
        check_xid(&reply, xid)?;
        let mut answer = answer_from_reply(&reply)?;
        if answer.status != STATUS_SUCCESS {
            return Ok(answer);
        }
        loop {
            let message = self.receive_required().await?;
            check_xid(&message, xid)?;
            match message.msg_type {
                MSG_LEASEQUERY_DATA => answer.bindings.extend(client_data_of(&message)?),
                MSG_LEASEQUERY_DONE => {
                    answer.done_status = message.status_code().map(|s| s.code);
                    return Ok(answer);
                }
                other => {
                    return Err(ClientError::Protocol(format!(
                        "message type {other} inside a bulk answer"
                    )))
                }
            }
        }
    }
}

fn check_xid(message: &Message, xid: [u8; 3]) -> Result<(), ClientError> {
    if message.transaction_id != xid {
        return Err(ClientError::Protocol(format!(
            "transaction id {:02x?} does not match the query's {:02x?}",
            message.transaction_id, xid
        )));
    }
    Ok(())
}

/// A bulk query (RFC 5460) on a new connection.
pub async fn query_bulk(
    server: SocketAddr,
    requestor: &Duid,
    query: &Query,
    options: &QueryOptions,
    io_timeout: Duration,
) -> Result<Answer, ClientError> {
    let mut connection = LeasequeryConnection::connect(server, io_timeout).await?;
    connection.bulk(requestor, query, options).await
}

/// What an active leasequery delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActiveEvent {
    /// A binding's current state.
    Update(Binding),
    /// The catch-up from LQ_START_TIME is complete; live updates follow.
    CatchUpComplete { base_time: Option<u32> },
    /// A keepalive (a LEASEQUERY-DATA without a binding).
    Keepalive { base_time: Option<u32> },
    /// The server ended the query (LEASEQUERY-DONE, e.g. QueryTerminated).
    Done(Option<StatusCode>),
    /// The server closed the connection.
    Closed,
}

/// An active leasequery (RFC 7653) subscription.
pub struct ActiveLeasequery {
    connection: LeasequeryConnection,
    xid: [u8; 3],
    /// LQ_BASE_TIME of the last message received (the LQ_START_TIME to resume from).
    pub last_base_time: Option<u32>,
}

impl ActiveLeasequery {
    /// Sends ACTIVELEASEQUERY and reads the LEASEQUERY-REPLY. The subscription is returned
    /// only if the reply's status is Success or DataMissing (then no catch-up follows); other
    /// statuses come back as the answer with `None`.
    pub async fn start(
        server: SocketAddr,
        requestor: &Duid,
        query: &Query,
        options: &QueryOptions,
        io_timeout: Duration,
    ) -> Result<(Option<ActiveLeasequery>, Answer), ClientError> {
        let connection = LeasequeryConnection::connect(server, io_timeout).await?;
        ActiveLeasequery::start_on(connection, requestor, query, options).await
    }

    /// [`ActiveLeasequery::start`] on a connection already open (over TLS, say).
    pub async fn start_on(
        mut connection: LeasequeryConnection,
        requestor: &Duid,
        query: &Query,
        options: &QueryOptions,
    ) -> Result<(Option<ActiveLeasequery>, Answer), ClientError> {
        let xid = random_xid();
        connection
            .send(&build_query(
                MSG_ACTIVELEASEQUERY,
                xid,
                requestor,
                query,
                options,
            ))
            .await?;
        let reply = connection.receive_required().await?;
        check_xid(&reply, xid)?;
        let answer = answer_from_reply(&reply)?;
        if answer.status != STATUS_SUCCESS && answer.status != STATUS_DATA_MISSING {
            return Ok((None, answer));
        }
        let active = ActiveLeasequery {
            connection,
            xid,
            last_base_time: answer.base_time,
        };
        Ok((Some(active), answer))
    }

    /// The next event, waiting at most `wait`.
    pub async fn next(&mut self, wait: Duration) -> Result<ActiveEvent, ClientError> {
        let Some(message) = self.connection.receive(wait).await? else {
            return Ok(ActiveEvent::Closed);
        };
        check_xid(&message, self.xid)?;
        let base_time = base_time_of(&message);
        if base_time.is_some() {
            self.last_base_time = base_time;
        }
        match message.msg_type {
            MSG_LEASEQUERY_DATA => {
                if let Some(binding) = client_data_of(&message)? {
                    return Ok(ActiveEvent::Update(binding));
                }
                match message.status_code() {
                    Some(s) if s.code == STATUS_CATCH_UP_COMPLETE => {
                        Ok(ActiveEvent::CatchUpComplete { base_time })
                    }
                    _ => Ok(ActiveEvent::Keepalive { base_time }),
                }
            }
            MSG_LEASEQUERY_DONE => Ok(ActiveEvent::Done(message.status_code().cloned())),
            other => Err(ClientError::Protocol(format!(
                "message type {other} inside an active leasequery"
            ))),
        }
    }
}

fn hex_colon(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> Duid {
        Duid::new(vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 9]).unwrap()
    }

    /// RFC 7653 §6.2.1: a requestor that wants all updates MUST leave OPTION_LQ_QUERY out.
    #[test]
    fn an_active_query_for_everything_has_no_lq_query() {
        let all = Query::LinkAddress(Ipv6Addr::UNSPECIFIED);
        let options = QueryOptions {
            relay_data: true,
            start_time: Some(1_800_000_000),
            ..QueryOptions::default()
        };
        let active = build_query(MSG_ACTIVELEASEQUERY, [1, 2, 3], &me(), &all, &options);
        assert_eq!(active.count(OPT_LQ_QUERY), 0);
        assert!(
            active.requests_option(OPT_LQ_RELAY_DATA),
            "the ORO moves up"
        );
        assert!(active
            .options
            .contains(&DhcpOption::LqStartTime(1_800_000_000 - 946_684_800)));
        // A bulk query, or an active one for one link, still names what it asks for.
        let bulk = build_query(MSG_LEASEQUERY, [1, 2, 3], &me(), &all, &options);
        assert_eq!(bulk.count(OPT_LQ_QUERY), 1);
        let link = Query::LinkAddress("2001:db8:1::1".parse().unwrap());
        let one = build_query(MSG_ACTIVELEASEQUERY, [1, 2, 3], &me(), &link, &options);
        assert_eq!(one.count(OPT_LQ_QUERY), 1);
    }
}
