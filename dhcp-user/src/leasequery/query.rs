//! Query parsing, policy, the binding selection shared by all three protocols, and the
//! individual (RFC 5007) answer.

use std::collections::{BTreeSet, HashSet};
use std::net::Ipv6Addr;

use dhcp_common::dhcpv6::*;

use super::binding::{client_data, LeaseUpdate};
use super::{unix_time, LeasequerySettings};
use crate::proto::{DhcpOption, Duid, Message, OptionList, StatusCode};
use crate::store::{Lease, LeaseFilter, LeaseKey, LeaseStore, StoreError};

/// Leases of one client considered at most.
pub(crate) const MAX_LEASES_PER_CLIENT: usize = 256;

/// What a query asks for (the query-type of OPTION_LQ_QUERY and its argument).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueryKind {
    /// QUERY_BY_ADDRESS: the binding of this address, or of a delegated prefix containing it.
    Address(Ipv6Addr),
    /// QUERY_BY_CLIENTID: the bindings of this client.
    ClientId(Duid),
    /// QUERY_BY_RELAY_ID: the bindings learnt through the relay with this Relay-ID (TCP only).
    RelayId(Duid),
    /// QUERY_BY_LINK_ADDRESS: the bindings on the query's link-address; `::` means every link
    /// (TCP only).
    LinkAddress,
    /// QUERY_BY_REMOTE_ID: the bindings whose request carried this Remote-ID option body
    /// (enterprise number first; TCP only).
    RemoteId(Vec<u8>),
}

/// A validated leasequery request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedQuery {
    /// The query-type as received.
    pub query_type: u8,
    /// What is asked for.
    pub kind: QueryKind,
    /// The link-address of OPTION_LQ_QUERY (`::`: any link).
    pub link_address: Ipv6Addr,
    /// The ORO asks for LQ_RELAY_DATA.
    pub relay_data: bool,
    /// The ORO asks for OPTION_IA_NA or OPTION_IA_PD: each binding is also sent inside its IA,
    /// with its IAID (see [`client_data`]).
    pub ia_options: bool,
    /// The ORO asks for OPTION_VENDOR_OPTS: each client's [`super::PeerData`] is sent too
    /// (peer redundancy; see [`client_data`]).
    pub peer_data: bool,
    /// LQ_START_TIME (RFC 7653): only bindings changed at or after this time, in Unix seconds
    /// (converted from the wire's seconds since 2000).
    pub start_time: Option<i64>,
    /// LQ_END_TIME (RFC 7653): only bindings changed at or before this time, Unix seconds.
    pub end_time: Option<i64>,
    /// The requestor's own Relay-ID (a top-level option 53), for restricted-requestor mode.
    pub requestor_relay_id: Option<Duid>,
}

/// Why a query is refused; each maps to the status code of the reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("unknown query type {0}")]
    UnknownQueryType(u8),
    #[error("malformed query: {0}")]
    Malformed(&'static str),
    #[error("not configured: {0}")]
    NotConfigured(String),
    #[error("not allowed: {0}")]
    NotAllowed(&'static str),
    #[error("not supported: {0}")]
    NotSupported(&'static str),
    #[error("the change history does not reach back to the requested start time")]
    DataMissing,
    /// A query in the clear where this server wants TLS (RFC 7653 §5.2): TLSConnectionRefused.
    #[error("TLS required: {0}")]
    TlsRequired(&'static str),
    #[error("lease store: {0}")]
    Store(String),
}

impl QueryError {
    /// The status code option answering this refusal.
    pub fn status(&self) -> StatusCode {
        let code = match self {
            QueryError::UnknownQueryType(_) => STATUS_UNKNOWN_QUERY_TYPE,
            QueryError::Malformed(_) => STATUS_MALFORMED_QUERY,
            QueryError::NotConfigured(_) => STATUS_NOT_CONFIGURED,
            QueryError::NotAllowed(_) => STATUS_NOT_ALLOWED,
            QueryError::NotSupported(_) => STATUS_NOT_SUPPORTED,
            QueryError::DataMissing => STATUS_DATA_MISSING,
            QueryError::TlsRequired(_) => STATUS_TLS_CONNECTION_REFUSED,
            QueryError::Store(_) => STATUS_UNSPEC_FAIL,
        };
        StatusCode {
            code,
            message: self.to_string(),
        }
    }

    /// Stable label for counters.
    pub fn reason(&self) -> &'static str {
        match self {
            QueryError::UnknownQueryType(_) => "unknown_query_type",
            QueryError::Malformed(_) => "malformed_query",
            QueryError::NotConfigured(_) => "not_configured",
            QueryError::NotAllowed(_) => "not_allowed",
            QueryError::NotSupported(_) => "not_supported",
            QueryError::DataMissing => "data_missing",
            QueryError::TlsRequired(_) => "tls_required",
            QueryError::Store(_) => "store_error",
        }
    }
}

impl From<StoreError> for QueryError {
    fn from(err: StoreError) -> Self {
        QueryError::Store(err.to_string())
    }
}

/// Reads OPTION_LQ_QUERY (exactly one) and the options around it from a LEASEQUERY or
/// ACTIVELEASEQUERY message. The ORO and LQ_START_TIME/LQ_END_TIME are taken from the query
/// options or the message's own options.
pub fn parse_query(message: &Message) -> Result<ParsedQuery, QueryError> {
    let query = match message.count(OPT_LQ_QUERY) {
        0 => return Err(QueryError::Malformed("no OPTION_LQ_QUERY")),
        1 => message
            .lq_query()
            .ok_or(QueryError::Malformed("no OPTION_LQ_QUERY"))?,
        _ => return Err(QueryError::Malformed("more than one OPTION_LQ_QUERY")),
    };
    let asks = |code| query.requests_option(code) || message.requests_option(code);
    let relay_data = asks(OPT_LQ_RELAY_DATA);
    let ia_options = asks(OPT_IA_NA) || asks(OPT_IA_PD);
    let peer_data = asks(OPT_VENDOR_OPTS);
    let time = |pick: fn(&DhcpOption) -> Option<u32>| {
        query
            .options
            .iter()
            .chain(message.options.iter())
            .find_map(pick)
            .map(unix_time)
    };
    let start_time = time(|o| match o {
        DhcpOption::LqStartTime(t) => Some(*t),
        _ => None,
    });
    let end_time = time(|o| match o {
        DhcpOption::LqEndTime(t) => Some(*t),
        _ => None,
    });
    if let (Some(start), Some(end)) = (start_time, end_time) {
        if end < start {
            return Err(QueryError::Malformed("LQ_END_TIME is before LQ_START_TIME"));
        }
    }
    let kind = match query.query_type {
        QUERY_BY_ADDRESS => QueryKind::Address(query.ia_addrs().next().map(|a| a.addr).ok_or(
            QueryError::Malformed("QUERY_BY_ADDRESS without OPTION_IAADDR"),
        )?),
        QUERY_BY_CLIENTID => QueryKind::ClientId(query.client_id().cloned().ok_or(
            QueryError::Malformed("QUERY_BY_CLIENTID without OPTION_CLIENTID"),
        )?),
        QUERY_BY_RELAY_ID => QueryKind::RelayId(query.relay_id().cloned().ok_or(
            QueryError::Malformed("QUERY_BY_RELAY_ID without OPTION_RELAY_ID"),
        )?),
        QUERY_BY_LINK_ADDRESS => QueryKind::LinkAddress,
        QUERY_BY_REMOTE_ID => {
            let remote = query.remote_id().ok_or(QueryError::Malformed(
                "QUERY_BY_REMOTE_ID without OPTION_REMOTE_ID",
            ))?;
            let mut body = remote.enterprise.to_be_bytes().to_vec();
            body.extend_from_slice(&remote.remote_id);
            QueryKind::RemoteId(body)
        }
        other => return Err(QueryError::UnknownQueryType(other)),
    };
    Ok(ParsedQuery {
        query_type: query.query_type,
        kind,
        link_address: query.link_address,
        relay_data,
        ia_options,
        peer_data,
        start_time,
        end_time,
        requestor_relay_id: message.relay_id().cloned(),
    })
}

/// Reads an ACTIVELEASEQUERY (RFC 7653 §6.2.1): like [`parse_query`], except that a query
/// without OPTION_LQ_QUERY asks for every binding (a requestor that wants all updates leaves
/// it out: served as QUERY_BY_LINK_ADDRESS with link-address `::`), and that LQ_END_TIME has
/// no place in it (§9.3: MalformedQuery).
pub fn parse_active_query(message: &Message) -> Result<ParsedQuery, QueryError> {
    let parsed = if message.count(OPT_LQ_QUERY) == 0 {
        let time = |pick: fn(&DhcpOption) -> Option<u32>| {
            message.options.iter().find_map(pick).map(unix_time)
        };
        ParsedQuery {
            query_type: QUERY_BY_LINK_ADDRESS,
            kind: QueryKind::LinkAddress,
            link_address: Ipv6Addr::UNSPECIFIED,
            relay_data: message.requests_option(OPT_LQ_RELAY_DATA),
            ia_options: message.requests_option(OPT_IA_NA) || message.requests_option(OPT_IA_PD),
            peer_data: message.requests_option(OPT_VENDOR_OPTS),
            start_time: time(|o| match o {
                DhcpOption::LqStartTime(t) => Some(*t),
                _ => None,
            }),
            end_time: time(|o| match o {
                DhcpOption::LqEndTime(t) => Some(*t),
                _ => None,
            }),
            requestor_relay_id: message.relay_id().cloned(),
        }
    } else {
        parse_query(message)?
    };
    if parsed.end_time.is_some() {
        return Err(QueryError::Malformed(
            "LQ_END_TIME has no place in an ACTIVELEASEQUERY (RFC 7653 section 9.3)",
        ));
    }
    Ok(parsed)
}

/// Requestor and configuration checks every query passes before the store is read.
pub(crate) fn check_policy(
    settings: &LeasequerySettings,
    requestor: Ipv6Addr,
    query: &ParsedQuery,
) -> Result<(), QueryError> {
    if !settings.is_allowed(requestor) {
        return Err(QueryError::NotAllowed(
            "requestor is not in the leasequery allow-list",
        ));
    }
    if settings.restricted_requestors && query.requestor_relay_id.is_none() {
        return Err(QueryError::NotAllowed(
            "restricted requestor mode: the query must carry the requestor's Relay-ID",
        ));
    }
    let link = query.link_address;
    if !link.is_unspecified() && !settings.serves_link(link) {
        return Err(QueryError::NotConfigured(format!(
            "no configuration for link {link}"
        )));
    }
    if let QueryKind::Address(address) = query.kind {
        if link.is_unspecified() && !settings.serves_address(address) {
            return Err(QueryError::NotConfigured(format!(
                "{address} is on no link this server serves"
            )));
        }
    }
    Ok(())
}

/// Which bindings a query selects, beyond the store filter that feeds it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Selector {
    /// Only bindings on this link.
    pub link: Option<Ipv6Addr>,
    /// Only bindings learnt through this Relay-ID (the query's or the restricted requestor's).
    pub relay_ids: Vec<Vec<u8>>,
    /// Only bindings with this Remote-ID body.
    pub remote_id: Option<Vec<u8>>,
    /// Only bindings whose key is in this set (changed within LQ_START_TIME..LQ_END_TIME).
    pub changed: Option<HashSet<LeaseKey>>,
    /// Also bindings no longer active (active leasequery, or a time-bounded bulk query).
    pub include_inactive: bool,
}

impl Selector {
    /// The selection of `query` under `settings`.
    pub fn for_query(query: &ParsedQuery, settings: &LeasequerySettings) -> Selector {
        let mut selector = Selector {
            link: (!query.link_address.is_unspecified()).then_some(query.link_address),
            ..Selector::default()
        };
        match &query.kind {
            QueryKind::RelayId(relay) => selector.relay_ids.push(relay.as_bytes().to_vec()),
            QueryKind::RemoteId(body) => selector.remote_id = Some(body.clone()),
            QueryKind::Address(_) | QueryKind::ClientId(_) | QueryKind::LinkAddress => {}
        }
        if settings.restricted_requestors {
            if let Some(own) = &query.requestor_relay_id {
                selector.relay_ids.push(own.as_bytes().to_vec());
            }
        }
        selector
    }

    /// The store filter feeding a scan for `query` (the selector then checks every lease).
    pub fn store_filter(query: &ParsedQuery) -> LeaseFilter {
        match &query.kind {
            QueryKind::ClientId(duid) => LeaseFilter::Duid {
                duid: duid.as_bytes().to_vec(),
                iaid: None,
            },
            QueryKind::RelayId(relay) => LeaseFilter::RelayId(relay.as_bytes().to_vec()),
            QueryKind::RemoteId(body) => LeaseFilter::RemoteId(body.clone()),
            QueryKind::LinkAddress if !query.link_address.is_unspecified() => {
                LeaseFilter::LinkAddress(query.link_address)
            }
            QueryKind::LinkAddress | QueryKind::Address(_) => LeaseFilter::All,
        }
    }

    /// Whether `lease` is selected at `now`.
    pub fn matches(&self, lease: &Lease, now: i64) -> bool {
        (self.include_inactive || lease.is_active(now))
            && self.link.is_none_or(|link| lease.link_address == link)
            && self
                .relay_ids
                .iter()
                .all(|relay| lease.relay_id.as_deref() == Some(relay.as_slice()))
            && self
                .remote_id
                .as_ref()
                .is_none_or(|remote| lease.remote_id.as_deref() == Some(remote.as_slice()))
            && self
                .changed
                .as_ref()
                .is_none_or(|keys| keys.contains(&lease.key()))
    }
}

/// The outcome of a query for one client (by address or by client ID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ClientAnswer {
    /// The client's bindings (all on one link).
    Client(Vec<Lease>),
    /// The client has bindings on several links and the query named none (RFC 5007 §4.3.3).
    Links(Vec<Ipv6Addr>),
    /// No binding matches.
    Nothing,
}

/// The leases of `duid` that `selector` selects.
pub(crate) fn client_leases(
    store: &dyn LeaseStore,
    duid: &[u8],
    selector: &Selector,
    now: i64,
) -> Result<Vec<Lease>, StoreError> {
    let filter = LeaseFilter::Duid {
        duid: duid.to_vec(),
        iaid: None,
    };
    Ok(store
        .find(&filter, None, MAX_LEASES_PER_CLIENT)?
        .into_iter()
        .filter(|lease| selector.matches(lease, now))
        .collect())
}

/// Answers a query by address or client ID. `client_links`: report several links with
/// LQ_CLIENT_LINK (individual queries) rather than all bindings at once (bulk).
pub(crate) fn answer_client(
    store: &dyn LeaseStore,
    query: &ParsedQuery,
    selector: &Selector,
    now: i64,
    client_links: bool,
) -> Result<ClientAnswer, StoreError> {
    match &query.kind {
        QueryKind::Address(address) => {
            let mut candidates: Vec<Lease> = store.get_by_address(*address)?.into_iter().collect();
            candidates.extend(store.find_prefixes_containing(*address)?);
            let Some(found) = candidates.into_iter().find(|l| selector.matches(l, now)) else {
                return Ok(ClientAnswer::Nothing);
            };
            // All of the client's bindings on the link of the one asked about.
            let same_link = Selector {
                link: Some(found.link_address),
                ..selector.clone()
            };
            let leases = client_leases(store, &found.duid, &same_link, now)?;
            Ok(if leases.is_empty() {
                ClientAnswer::Client(vec![found])
            } else {
                ClientAnswer::Client(leases)
            })
        }
        QueryKind::ClientId(duid) => {
            let leases = client_leases(store, duid.as_bytes(), selector, now)?;
            if leases.is_empty() {
                return Ok(ClientAnswer::Nothing);
            }
            let links: BTreeSet<Ipv6Addr> = leases.iter().map(|l| l.link_address).collect();
            if client_links && selector.link.is_none() && links.len() > 1 {
                return Ok(ClientAnswer::Links(links.into_iter().collect()));
            }
            Ok(ClientAnswer::Client(leases))
        }
        QueryKind::RelayId(_) | QueryKind::RemoteId(_) | QueryKind::LinkAddress => {
            Ok(ClientAnswer::Nothing)
        }
    }
}

/// Active leases as updates (for [`client_data`]).
pub(crate) fn as_updates(leases: Vec<Lease>) -> Vec<LeaseUpdate> {
    leases
        .into_iter()
        .map(|lease| LeaseUpdate {
            lease,
            removed: false,
        })
        .collect()
}

/// A reply skeleton: the message type, the query's transaction id, the requestor's Client ID
/// (echoed when present) and our Server ID.
pub(crate) fn reply_skeleton(msg_type: u8, query: &Message, server_duid: &Duid) -> Message {
    let mut reply = Message::new(msg_type, query.transaction_id);
    if let Some(requestor) = query.client_id() {
        reply.push(DhcpOption::ClientId(requestor.clone()));
    }
    reply.push(DhcpOption::ServerId(server_duid.clone()));
    reply
}

/// Answers an individual LEASEQUERY (RFC 5007) received over UDP from `requestor`.
///
/// Returns `None` when the message must be dropped silently: it is not a LEASEQUERY (type 14),
/// or it names another server in its Server ID. Otherwise the LEASEQUERY-REPLY to send back to
/// the requestor's address and port (unrelayed; a leasequery is never relayed):
/// - success: OPTION_CLIENT_DATA for the client found (Client ID, IAADDR/IAPREFIX with the
///   lifetimes left, CLT_TIME, LQ_RELAY_DATA if the ORO asks), or nothing when no binding
///   matches, or OPTION_LQ_CLIENT_LINK when a client-ID query with link-address `::` finds the
///   client on several links;
/// - failure: a Status Code of UnknownQueryType, MalformedQuery, NotConfigured or NotAllowed
///   (UnspecFail if the store fails). The bulk-only query types (Relay-ID, link address,
///   Remote-ID) are NotAllowed over UDP: RFC 5460 serves them over TCP only.
pub fn answer_udp(
    query: &Message,
    requestor: Ipv6Addr,
    store: &dyn LeaseStore,
    settings: &LeasequerySettings,
    server_duid: &Duid,
    now: i64,
) -> Option<Message> {
    if query.msg_type != MSG_LEASEQUERY {
        return None;
    }
    if query.server_id().is_some_and(|id| id != server_duid) {
        return None;
    }
    let mut reply = reply_skeleton(MSG_LEASEQUERY_REPLY, query, server_duid);
    match individual(query, requestor, store, settings, now) {
        Ok(options) => reply.options.extend(options),
        Err(err) => reply.push(DhcpOption::StatusCode(err.status())),
    }
    Some(reply)
}

fn individual(
    query: &Message,
    requestor: Ipv6Addr,
    store: &dyn LeaseStore,
    settings: &LeasequerySettings,
    now: i64,
) -> Result<Vec<DhcpOption>, QueryError> {
    if !settings.is_allowed(requestor) {
        return Err(QueryError::NotAllowed(
            "requestor is not in the leasequery allow-list",
        ));
    }
    if query.client_id().is_none() {
        return Err(QueryError::Malformed(
            "no Client Identifier of the requestor",
        ));
    }
    let parsed = parse_query(query)?;
    if !matches!(parsed.kind, QueryKind::Address(_) | QueryKind::ClientId(_)) {
        return Err(QueryError::NotAllowed(
            "bulk query types are served over TCP only (RFC 5460)",
        ));
    }
    check_policy(settings, requestor, &parsed)?;
    let selector = Selector::for_query(&parsed, settings);
    Ok(match answer_client(store, &parsed, &selector, now, true)? {
        ClientAnswer::Client(leases) => client_data(
            &as_updates(leases),
            now,
            parsed.relay_data,
            parsed.ia_options,
            parsed.peer_data,
        )
        .into_iter()
        .collect(),
        ClientAnswer::Links(links) => vec![DhcpOption::LqClientLink(links)],
        ClientAnswer::Nothing => Vec::new(),
    })
}
