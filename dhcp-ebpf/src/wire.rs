//! Wire layouts the parser and the reply builder share: frame limits, Ethernet and IPv6/UDP
//! header sizes and field offsets (named once here), DHCPv6 option sizes and parsing caps.

/// Frames up to this many bytes are considered; longer ones are passed on.
pub(crate) const FRAME_MAX: usize = 1023;

pub(crate) const ETH_HLEN: usize = 14;
/// Field offsets in the Ethernet header.
pub(crate) mod eth {
    pub const DST: usize = 0;
}
/// The first two bytes of an IPv6 group's MAC (33:33 and the group's last four bytes, RFC 2464
/// section 7).
pub(crate) const ETH_IPV6_MCAST: u16 = 0x3333;
pub(crate) const ETH_P_IPV6: u16 = 0x86dd;
pub(crate) const ETH_P_8021Q: u16 = 0x8100;
pub(crate) const ETH_P_8021AD: u16 = 0x88a8;
pub(crate) const MAX_VLANS: usize = 2;
pub(crate) const IPV6_HLEN: usize = 40;
pub(crate) const MAX_EXT_HDRS: usize = 4;
pub(crate) const UDP_HLEN: usize = 8;
/// Field offsets in the IPv6 header (RFC 8200 section 3).
pub(crate) mod ip6 {
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}
/// Field offsets in the UDP header (RFC 768).
pub(crate) mod udp {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LEN: usize = 4;
    pub const CHECKSUM: usize = 6;
}
pub(crate) const IPPROTO_UDP: u8 = 17;
pub(crate) const REPLY_HOP_LIMIT: u8 = 64;
pub(crate) const RELAY_HLEN: usize = 34;
/// Field offsets in the Relay-Forw / Relay-Repl header (RFC 8415 section 9).
pub(crate) mod relay {
    pub const LINK_ADDRESS: usize = 2;
    pub const PEER_ADDRESS: usize = 18;
}
pub(crate) const MAX_OPTIONS: usize = 16;
pub(crate) const MAX_RELAY_OPTIONS: usize = 8;
pub(crate) const MAX_ORO: usize = 16;
pub(crate) const IA_NA_BARE: usize = 12;
pub(crate) const IA_NA_WITH_ADDR: usize = 12 + 4 + 24;
pub(crate) const IA_PD_BARE: usize = 12;
/// An IAPREFIX's own fields (lifetimes, prefix-length, prefix), before any sub-option.
pub(crate) const IAPREFIX_FIELDS: usize = 4 + 4 + 1 + 16;
/// An IA_PD with one IAPREFIX without sub-options (a Prefix Exclude adds its length to both).
pub(crate) const IA_PD_WITH_PREFIX: usize = 12 + 4 + IAPREFIX_FIELDS;
