//! DHCPv6 wire constants (RFC 8415, RFC 5007, RFC 5460, RFC 7653) used by both sides.

pub const CLIENT_PORT: u16 = 546;
pub const SERVER_PORT: u16 = 547;
/// All_DHCP_Relay_Agents_and_Servers (ff02::1:2).
pub const ALL_RELAYS_AND_SERVERS: [u8; 16] =
    [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0x02];
/// All_DHCP_Servers (ff05::1:3, site scope): every server is a member (RFC 8415 section 7.1);
/// relays send here by default.
pub const ALL_DHCP_SERVERS: [u8; 16] = [0xff, 0x05, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0, 0x03];

// Message types.
pub const MSG_SOLICIT: u8 = 1;
pub const MSG_ADVERTISE: u8 = 2;
pub const MSG_REQUEST: u8 = 3;
pub const MSG_CONFIRM: u8 = 4;
pub const MSG_RENEW: u8 = 5;
pub const MSG_REBIND: u8 = 6;
pub const MSG_REPLY: u8 = 7;
pub const MSG_RELEASE: u8 = 8;
pub const MSG_DECLINE: u8 = 9;
pub const MSG_RECONFIGURE: u8 = 10;
pub const MSG_INFORMATION_REQUEST: u8 = 11;
pub const MSG_RELAY_FORW: u8 = 12;
pub const MSG_RELAY_REPL: u8 = 13;
pub const MSG_LEASEQUERY: u8 = 14;
pub const MSG_LEASEQUERY_REPLY: u8 = 15;
pub const MSG_LEASEQUERY_DONE: u8 = 16;
pub const MSG_LEASEQUERY_DATA: u8 = 17;
pub const MSG_RECONFIGURE_REQUEST: u8 = 18;
pub const MSG_RECONFIGURE_REPLY: u8 = 19;
pub const MSG_DHCPV4_QUERY: u8 = 20;
pub const MSG_DHCPV4_RESPONSE: u8 = 21;
pub const MSG_ACTIVELEASEQUERY: u8 = 22;
pub const MSG_STARTTLS: u8 = 23;

// Option codes.
pub const OPT_CLIENTID: u16 = 1;
pub const OPT_SERVERID: u16 = 2;
pub const OPT_IA_NA: u16 = 3;
pub const OPT_IA_TA: u16 = 4;
pub const OPT_IAADDR: u16 = 5;
pub const OPT_ORO: u16 = 6;
pub const OPT_PREFERENCE: u16 = 7;
pub const OPT_ELAPSED_TIME: u16 = 8;
pub const OPT_RELAY_MSG: u16 = 9;
pub const OPT_AUTH: u16 = 11;
pub const OPT_UNICAST: u16 = 12;
pub const OPT_STATUS_CODE: u16 = 13;
pub const OPT_RAPID_COMMIT: u16 = 14;
pub const OPT_USER_CLASS: u16 = 15;
pub const OPT_VENDOR_CLASS: u16 = 16;
pub const OPT_VENDOR_OPTS: u16 = 17;
pub const OPT_INTERFACE_ID: u16 = 18;
pub const OPT_RECONF_MSG: u16 = 19;
pub const OPT_RECONF_ACCEPT: u16 = 20;
pub const OPT_DNS_SERVERS: u16 = 23;
pub const OPT_DOMAIN_LIST: u16 = 24;
pub const OPT_IA_PD: u16 = 25;
pub const OPT_IAPREFIX: u16 = 26;
pub const OPT_INFORMATION_REFRESH_TIME: u16 = 32;
pub const OPT_REMOTE_ID: u16 = 37;
pub const OPT_SUBSCRIBER_ID: u16 = 38;
pub const OPT_CLIENT_FQDN: u16 = 39;
pub const OPT_LQ_QUERY: u16 = 44;
pub const OPT_CLIENT_DATA: u16 = 45;
pub const OPT_CLT_TIME: u16 = 46;
pub const OPT_LQ_RELAY_DATA: u16 = 47;
pub const OPT_LQ_CLIENT_LINK: u16 = 48;
pub const OPT_RELAY_ID: u16 = 53;
/// OPTION_PD_EXCLUDE (RFC 6603), inside an IAPREFIX.
pub const OPT_PD_EXCLUDE: u16 = 67;
pub const OPT_SOL_MAX_RT: u16 = 82;
pub const OPT_INF_MAX_RT: u16 = 83;
pub const OPT_CLIENT_LINKLAYER_ADDR: u16 = 79;
pub const OPT_LQ_BASE_TIME: u16 = 100;
pub const OPT_LQ_START_TIME: u16 = 101;
pub const OPT_LQ_END_TIME: u16 = 102;

// Status codes.
pub const STATUS_SUCCESS: u16 = 0;
pub const STATUS_UNSPEC_FAIL: u16 = 1;
pub const STATUS_NO_ADDRS_AVAIL: u16 = 2;
pub const STATUS_NO_BINDING: u16 = 3;
pub const STATUS_NOT_ON_LINK: u16 = 4;
pub const STATUS_USE_MULTICAST: u16 = 5;
pub const STATUS_NO_PREFIX_AVAIL: u16 = 6;
pub const STATUS_UNKNOWN_QUERY_TYPE: u16 = 7;
pub const STATUS_MALFORMED_QUERY: u16 = 8;
pub const STATUS_NOT_CONFIGURED: u16 = 9;
pub const STATUS_NOT_ALLOWED: u16 = 10;
pub const STATUS_QUERY_TERMINATED: u16 = 11;
pub const STATUS_DATA_MISSING: u16 = 12;
pub const STATUS_CATCH_UP_COMPLETE: u16 = 13;
pub const STATUS_NOT_SUPPORTED: u16 = 14;
pub const STATUS_TLS_CONNECTION_REFUSED: u16 = 15;

/// The Status Code message of a Reply to a Confirm whose addresses are all on the link (RFC 8415
/// section 18.3.3). The controller and the fast path send these exact bytes.
pub const CONFIRM_ON_LINK_MESSAGE: &str = "all addresses on link";
/// The Status Code message of a Reply to a Confirm naming an address not on the link.
pub const CONFIRM_NOT_ON_LINK_MESSAGE: &str = "addresses not on link";

// Leasequery query types (RFC 5007, RFC 5460).
pub const QUERY_BY_ADDRESS: u8 = 1;
pub const QUERY_BY_CLIENTID: u8 = 2;
pub const QUERY_BY_RELAY_ID: u8 = 3;
pub const QUERY_BY_LINK_ADDRESS: u8 = 4;
pub const QUERY_BY_REMOTE_ID: u8 = 5;

/// Maximum relay nesting (RFC 8415 HOP_COUNT_LIMIT).
pub const HOP_COUNT_LIMIT: u8 = 8;

/// Longest DUID: a 2-byte type code plus at most 128 bytes of identifier (RFC 8415 §11.1).
pub const DUID_MAX_LEN: usize = 130;
/// Shortest DUID accepted: the type code plus at least one identifier byte. Every DUID type
/// RFC 8415 defines carries an identifier, so a bare type code identifies nothing.
pub const DUID_MIN_LEN: usize = 3;
/// Shortest Remote-ID option body: the 4-byte enterprise number (RFC 4649 §3).
pub const REMOTE_ID_MIN_LEN: usize = 4;
