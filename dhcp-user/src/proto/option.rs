//! DHCPv6 options (RFC 8415 §21, RFC 4649, RFC 5007, RFC 5460, RFC 7653).

use std::net::Ipv6Addr;

use dhcp_common::dhcpv6::*;

use super::{DecodeError, Duid, EncodeError, Packet, RelayMessage};

/// One DHCPv6 option. Options the codec does not model are kept as `Unknown` and re-encoded
/// verbatim (RFC 8415 §16: a server does not fail a message over an option it does not know).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DhcpOption {
    /// Client Identifier (1).
    ClientId(Duid),
    /// Server Identifier (2).
    ServerId(Duid),
    /// Identity Association for Non-temporary Addresses (3).
    IaNa(IaNa),
    /// Identity Association for Temporary Addresses (4).
    IaTa(IaTa),
    /// IA Address (5).
    IaAddr(IaAddr),
    /// Option Request (6): the requested option codes, in order.
    Oro(Vec<u16>),
    /// Preference (7).
    Preference(u8),
    /// Elapsed Time (8), in hundredths of a second.
    ElapsedTime(u16),
    /// Relay Message (9): the relayed message, decoded.
    RelayMsg(Box<Packet>),
    /// Authentication (11), body kept as received.
    Auth(Vec<u8>),
    /// Server Unicast (12).
    Unicast(Ipv6Addr),
    /// Status Code (13).
    StatusCode(StatusCode),
    /// Rapid Commit (14).
    RapidCommit,
    /// User Class (15), body kept as received.
    UserClass(Vec<u8>),
    /// Vendor Class (16), body kept as received.
    VendorClass(Vec<u8>),
    /// Vendor-specific Information (17), body kept as received.
    VendorOpts(Vec<u8>),
    /// Interface-Id (18), opaque.
    InterfaceId(Vec<u8>),
    /// Reconfigure Message (19): the message type the client should answer with.
    ReconfMsg(u8),
    /// Reconfigure Accept (20).
    ReconfAccept,
    /// DNS Recursive Name Servers (23, RFC 3646).
    DnsServers(Vec<Ipv6Addr>),
    /// Domain Search List (24, RFC 3646): names without trailing dot, e.g. `example.com`.
    DomainList(Vec<String>),
    /// Identity Association for Prefix Delegation (25).
    IaPd(IaPd),
    /// IA Prefix (26).
    IaPrefix(IaPrefix),
    /// Information Refresh Time (32), seconds.
    InformationRefreshTime(u32),
    /// Relay Agent Remote-ID (37, RFC 4649).
    RemoteId(RemoteId),
    /// Relay Agent Subscriber-ID (38, RFC 4580), opaque.
    SubscriberId(Vec<u8>),
    /// Client FQDN (39, RFC 4704), body kept as received.
    ClientFqdn(Vec<u8>),
    /// Leasequery query (44, RFC 5007 §4.1.2.1).
    LqQuery(LqQuery),
    /// Client Data (45, RFC 5007 §4.1.2.2): the options describing one client.
    ClientData(Vec<DhcpOption>),
    /// Client Last Transaction Time (46, RFC 5007 §4.1.2.3), seconds ago.
    CltTime(u32),
    /// Relay Data (47, RFC 5007 §4.1.2.4).
    LqRelayData(LqRelayData),
    /// Client Link (48, RFC 5007 §4.1.2.5): links on which the client has bindings.
    LqClientLink(Vec<Ipv6Addr>),
    /// Relay-ID (53, RFC 5460 §5.4.1).
    RelayId(Duid),
    /// SOL_MAX_RT (82), seconds.
    SolMaxRt(u32),
    /// INF_MAX_RT (83), seconds.
    InfMaxRt(u32),
    /// LQ Base Time (100, RFC 7653 §6.1), seconds since the epoch.
    LqBaseTime(u32),
    /// LQ Start Time (101, RFC 7653 §6.2).
    LqStartTime(u32),
    /// LQ End Time (102, RFC 7653 §6.3).
    LqEndTime(u32),
    /// Any other option, kept and re-encoded verbatim.
    Unknown { code: u16, data: Vec<u8> },
}

/// IA_NA body (RFC 8415 §21.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IaNa {
    pub iaid: u32,
    pub t1: u32,
    pub t2: u32,
    pub options: Vec<DhcpOption>,
}

/// IA_TA body (RFC 8415 §21.5).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IaTa {
    pub iaid: u32,
    pub options: Vec<DhcpOption>,
}

/// IA Address body (RFC 8415 §21.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IaAddr {
    pub addr: Ipv6Addr,
    pub preferred: u32,
    pub valid: u32,
    pub options: Vec<DhcpOption>,
}

/// IA_PD body (RFC 8415 §21.21).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IaPd {
    pub iaid: u32,
    pub t1: u32,
    pub t2: u32,
    pub options: Vec<DhcpOption>,
}

/// IA Prefix body (RFC 8415 §21.22).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IaPrefix {
    pub preferred: u32,
    pub valid: u32,
    pub prefix_len: u8,
    pub prefix: Ipv6Addr,
    pub options: Vec<DhcpOption>,
}

/// Status Code body (RFC 8415 §21.13).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusCode {
    pub code: u16,
    pub message: String,
}

/// Remote-ID body (RFC 4649 §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteId {
    pub enterprise: u32,
    pub remote_id: Vec<u8>,
}

/// LQ_QUERY body (RFC 5007 §4.1.2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LqQuery {
    /// `QUERY_BY_ADDRESS`, `QUERY_BY_CLIENTID`, ... (dhcp_common::dhcpv6).
    pub query_type: u8,
    pub link_address: Ipv6Addr,
    pub options: Vec<DhcpOption>,
}

/// LQ_RELAY_DATA body (RFC 5007 §4.1.2.4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LqRelayData {
    /// Address of the relay agent the server received the relayed message from (the IPv6
    /// source of that datagram).
    pub peer_address: Ipv6Addr,
    /// The last complete (perhaps multi-hop) Relay-Forw received for the client, as received,
    /// except that the innermost Relay Message option, the one holding the client's own
    /// message, is removed (RFC 5007 §4.1.2.4: MUST have been removed). Raw bytes.
    pub relay_message: Vec<u8>,
}

impl LqRelayData {
    /// Builds the option from the relay chain a client's message arrived in: drops the
    /// innermost Relay Message option (see [`RelayMessage::without_client_message`]) and
    /// encodes the rest, which for a decoded chain reproduces the received bytes minus that
    /// option.
    pub fn new(peer_address: Ipv6Addr, received: &RelayMessage) -> Result<Self, EncodeError> {
        Ok(LqRelayData {
            peer_address,
            relay_message: received.without_client_message().encode()?,
        })
    }

    /// [`new`](Self::new) from the bytes of a relayed datagram as received (what the server
    /// keeps per lease); `None` when they are not a well-formed relay message.
    pub fn from_received(peer_address: Ipv6Addr, received: &[u8]) -> Option<Self> {
        let relay = RelayMessage::decode(received).ok()?;
        LqRelayData::new(peer_address, &relay).ok()
    }

    /// Decodes the carried relay message.
    pub fn decode_relay_message(&self) -> Result<Packet, DecodeError> {
        Packet::decode(&self.relay_message)
    }
}

impl DhcpOption {
    /// The option code on the wire.
    pub fn code(&self) -> u16 {
        match self {
            DhcpOption::ClientId(_) => OPT_CLIENTID,
            DhcpOption::ServerId(_) => OPT_SERVERID,
            DhcpOption::IaNa(_) => OPT_IA_NA,
            DhcpOption::IaTa(_) => OPT_IA_TA,
            DhcpOption::IaAddr(_) => OPT_IAADDR,
            DhcpOption::Oro(_) => OPT_ORO,
            DhcpOption::Preference(_) => OPT_PREFERENCE,
            DhcpOption::ElapsedTime(_) => OPT_ELAPSED_TIME,
            DhcpOption::RelayMsg(_) => OPT_RELAY_MSG,
            DhcpOption::Auth(_) => OPT_AUTH,
            DhcpOption::Unicast(_) => OPT_UNICAST,
            DhcpOption::StatusCode(_) => OPT_STATUS_CODE,
            DhcpOption::RapidCommit => OPT_RAPID_COMMIT,
            DhcpOption::UserClass(_) => OPT_USER_CLASS,
            DhcpOption::VendorClass(_) => OPT_VENDOR_CLASS,
            DhcpOption::VendorOpts(_) => OPT_VENDOR_OPTS,
            DhcpOption::InterfaceId(_) => OPT_INTERFACE_ID,
            DhcpOption::ReconfMsg(_) => OPT_RECONF_MSG,
            DhcpOption::ReconfAccept => OPT_RECONF_ACCEPT,
            DhcpOption::DnsServers(_) => OPT_DNS_SERVERS,
            DhcpOption::DomainList(_) => OPT_DOMAIN_LIST,
            DhcpOption::IaPd(_) => OPT_IA_PD,
            DhcpOption::IaPrefix(_) => OPT_IAPREFIX,
            DhcpOption::InformationRefreshTime(_) => OPT_INFORMATION_REFRESH_TIME,
            DhcpOption::RemoteId(_) => OPT_REMOTE_ID,
            DhcpOption::SubscriberId(_) => OPT_SUBSCRIBER_ID,
            DhcpOption::ClientFqdn(_) => OPT_CLIENT_FQDN,
            DhcpOption::LqQuery(_) => OPT_LQ_QUERY,
            DhcpOption::ClientData(_) => OPT_CLIENT_DATA,
            DhcpOption::CltTime(_) => OPT_CLT_TIME,
            DhcpOption::LqRelayData(_) => OPT_LQ_RELAY_DATA,
            DhcpOption::LqClientLink(_) => OPT_LQ_CLIENT_LINK,
            DhcpOption::RelayId(_) => OPT_RELAY_ID,
            DhcpOption::SolMaxRt(_) => OPT_SOL_MAX_RT,
            DhcpOption::InfMaxRt(_) => OPT_INF_MAX_RT,
            DhcpOption::LqBaseTime(_) => OPT_LQ_BASE_TIME,
            DhcpOption::LqStartTime(_) => OPT_LQ_START_TIME,
            DhcpOption::LqEndTime(_) => OPT_LQ_END_TIME,
            DhcpOption::Unknown { code, .. } => *code,
        }
    }
}

/// Whether the codec decodes `code` into a typed variant (anything else becomes `Unknown`).
pub fn is_modeled_code(code: u16) -> bool {
    matches!(
        code,
        OPT_CLIENTID
            | OPT_SERVERID
            | OPT_IA_NA
            | OPT_IA_TA
            | OPT_IAADDR
            | OPT_ORO
            | OPT_PREFERENCE
            | OPT_ELAPSED_TIME
            | OPT_RELAY_MSG
            | OPT_AUTH
            | OPT_UNICAST
            | OPT_STATUS_CODE
            | OPT_RAPID_COMMIT
            | OPT_USER_CLASS
            | OPT_VENDOR_CLASS
            | OPT_VENDOR_OPTS
            | OPT_INTERFACE_ID
            | OPT_RECONF_MSG
            | OPT_RECONF_ACCEPT
            | OPT_DNS_SERVERS
            | OPT_DOMAIN_LIST
            | OPT_IA_PD
            | OPT_IAPREFIX
            | OPT_INFORMATION_REFRESH_TIME
            | OPT_REMOTE_ID
            | OPT_SUBSCRIBER_ID
            | OPT_CLIENT_FQDN
            | OPT_LQ_QUERY
            | OPT_CLIENT_DATA
            | OPT_CLT_TIME
            | OPT_LQ_RELAY_DATA
            | OPT_LQ_CLIENT_LINK
            | OPT_RELAY_ID
            | OPT_SOL_MAX_RT
            | OPT_INF_MAX_RT
            | OPT_LQ_BASE_TIME
            | OPT_LQ_START_TIME
            | OPT_LQ_END_TIME
    )
}

/// Lookups over a list of options; implemented for `[DhcpOption]` so messages, IAs, Client Data
/// and LQ_QUERY bodies all read the same way.
pub trait OptionList {
    fn options_slice(&self) -> &[DhcpOption];

    /// The first option with `code`.
    fn find(&self, code: u16) -> Option<&DhcpOption> {
        self.options_slice().iter().find(|o| o.code() == code)
    }

    /// Every option with `code`, in order.
    fn find_all(&self, code: u16) -> impl Iterator<Item = &DhcpOption> {
        self.options_slice()
            .iter()
            .filter(move |o| o.code() == code)
    }

    /// How many options carry `code` (RFC 8415 §16 "MUST contain exactly one" checks).
    fn count(&self, code: u16) -> usize {
        self.find_all(code).count()
    }

    fn client_id(&self) -> Option<&Duid> {
        self.options_slice().iter().find_map(|o| match o {
            DhcpOption::ClientId(d) => Some(d),
            _ => None,
        })
    }

    fn server_id(&self) -> Option<&Duid> {
        self.options_slice().iter().find_map(|o| match o {
            DhcpOption::ServerId(d) => Some(d),
            _ => None,
        })
    }

    fn relay_id(&self) -> Option<&Duid> {
        self.options_slice().iter().find_map(|o| match o {
            DhcpOption::RelayId(d) => Some(d),
            _ => None,
        })
    }

    fn ia_nas(&self) -> impl Iterator<Item = &IaNa> {
        self.options_slice().iter().filter_map(|o| match o {
            DhcpOption::IaNa(ia) => Some(ia),
            _ => None,
        })
    }

    fn ia_tas(&self) -> impl Iterator<Item = &IaTa> {
        self.options_slice().iter().filter_map(|o| match o {
            DhcpOption::IaTa(ia) => Some(ia),
            _ => None,
        })
    }

    fn ia_pds(&self) -> impl Iterator<Item = &IaPd> {
        self.options_slice().iter().filter_map(|o| match o {
            DhcpOption::IaPd(ia) => Some(ia),
            _ => None,
        })
    }

    fn ia_addrs(&self) -> impl Iterator<Item = &IaAddr> {
        self.options_slice().iter().filter_map(|o| match o {
            DhcpOption::IaAddr(a) => Some(a),
            _ => None,
        })
    }

    fn ia_prefixes(&self) -> impl Iterator<Item = &IaPrefix> {
        self.options_slice().iter().filter_map(|o| match o {
            DhcpOption::IaPrefix(p) => Some(p),
            _ => None,
        })
    }

    /// The first ORO's requested codes.
    fn oro(&self) -> Option<&[u16]> {
        self.options_slice().iter().find_map(|o| match o {
            DhcpOption::Oro(codes) => Some(codes.as_slice()),
            _ => None,
        })
    }

    /// Whether an ORO lists `code`.
    fn requests_option(&self, code: u16) -> bool {
        self.oro().is_some_and(|codes| codes.contains(&code))
    }

    fn has_rapid_commit(&self) -> bool {
        self.find(OPT_RAPID_COMMIT).is_some()
    }

    fn has_reconf_accept(&self) -> bool {
        self.find(OPT_RECONF_ACCEPT).is_some()
    }

    fn elapsed_time(&self) -> Option<u16> {
        self.options_slice().iter().find_map(|o| match o {
            DhcpOption::ElapsedTime(t) => Some(*t),
            _ => None,
        })
    }

    fn status_code(&self) -> Option<&StatusCode> {
        self.options_slice().iter().find_map(|o| match o {
            DhcpOption::StatusCode(s) => Some(s),
            _ => None,
        })
    }

    fn interface_id(&self) -> Option<&[u8]> {
        self.options_slice().iter().find_map(|o| match o {
            DhcpOption::InterfaceId(id) => Some(id.as_slice()),
            _ => None,
        })
    }

    fn remote_id(&self) -> Option<&RemoteId> {
        self.options_slice().iter().find_map(|o| match o {
            DhcpOption::RemoteId(r) => Some(r),
            _ => None,
        })
    }

    fn lq_query(&self) -> Option<&LqQuery> {
        self.options_slice().iter().find_map(|o| match o {
            DhcpOption::LqQuery(q) => Some(q),
            _ => None,
        })
    }

    /// The Relay Message option's packet.
    fn relay_msg(&self) -> Option<&Packet> {
        self.options_slice().iter().find_map(|o| match o {
            DhcpOption::RelayMsg(p) => Some(p.as_ref()),
            _ => None,
        })
    }
}

impl OptionList for [DhcpOption] {
    fn options_slice(&self) -> &[DhcpOption] {
        self
    }
}

impl OptionList for Vec<DhcpOption> {
    fn options_slice(&self) -> &[DhcpOption] {
        self
    }
}

macro_rules! option_list_for {
    ($($ty:ty),*) => {
        $(impl OptionList for $ty {
            fn options_slice(&self) -> &[DhcpOption] {
                &self.options
            }
        })*
    };
}

option_list_for!(IaNa, IaTa, IaAddr, IaPd, IaPrefix, LqQuery);
