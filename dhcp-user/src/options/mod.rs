//! Configured DHCPv6 options: the registry of standard options (name, code, value type), typed
//! values checked and encoded once at config load ([`value`]), the merge of the levels (global,
//! subnet, pool or pd-pool, reservation: the most specific replaces a code), and the rule of
//! which configured options a reply carries ([`sent_in`]), which the fast path applies too.
//!
//! Prefix Exclude (RFC 6603) is per pd-pool, inside each IAPREFIX: [`PdExclude`].

pub mod value;

use std::net::Ipv6Addr;

use dhcp_common::dhcpv6::*;
use ipnet::Ipv6Net;

pub use dhcp_common::dhcpv6::OPT_PD_EXCLUDE;

/// The type of an option's value, as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One IPv6 address or a list: 16 bytes each.
    Addresses,
    /// A list of domain names, each in DNS wire format (RFC 1035 section 3.1, no compression).
    Domains,
    /// One domain name in DNS wire format.
    Domain,
    /// UTF-8 text, no terminator.
    Text,
    /// An unsigned integer of 1, 2 or 4 bytes, network order.
    U8,
    U16,
    U32,
    /// Bytes as hex.
    Hex,
    /// OPTION_NTP_SERVER (RFC 5908): time source sub-options.
    NtpServer,
    /// OPTION_VENDOR_OPTS (RFC 8415 section 21.17): enterprise number and sub-options.
    VendorOpts,
    /// OPTION_V6_DNR (RFC 9463 section 4.1): one encrypted DNS resolver.
    Dnr,
}

impl Kind {
    /// The name of the type in `type = "..."` (for options known by code only).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Addresses => "addresses",
            Kind::Domains => "domains",
            Kind::Domain => "domain",
            Kind::Text => "string",
            Kind::U8 => "u8",
            Kind::U16 => "u16",
            Kind::U32 => "u32",
            Kind::Hex => "hex",
            Kind::NtpServer => "ntp-server",
            Kind::VendorOpts => "vendor-opts",
            Kind::Dnr => "dnr",
        }
    }

    /// The type named `name`: the generic ones only (structured types belong to their option).
    pub fn generic(name: &str) -> Option<Kind> {
        [
            Kind::Addresses,
            Kind::Domains,
            Kind::Domain,
            Kind::Text,
            Kind::U8,
            Kind::U16,
            Kind::U32,
            Kind::Hex,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

/// One standard option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Def {
    /// Its name in the config (`name = "ntp-server"`).
    pub name: &'static str,
    pub code: u16,
    pub kind: Kind,
}

/// The options known by name.
pub const REGISTRY: &[Def] = &[
    Def {
        name: "vendor-opts",
        code: OPT_VENDOR_OPTS,
        kind: Kind::VendorOpts,
    },
    Def {
        name: "sip-server-d",
        code: 21,
        kind: Kind::Domains,
    },
    Def {
        name: "sip-server-a",
        code: 22,
        kind: Kind::Addresses,
    },
    Def {
        name: "dns-servers",
        code: OPT_DNS_SERVERS,
        kind: Kind::Addresses,
    },
    Def {
        name: "domain-search",
        code: OPT_DOMAIN_LIST,
        kind: Kind::Domains,
    },
    Def {
        name: "sntp-servers",
        code: 31,
        kind: Kind::Addresses,
    },
    Def {
        name: "information-refresh-time",
        code: OPT_INFORMATION_REFRESH_TIME,
        kind: Kind::U32,
    },
    Def {
        name: "ntp-server",
        code: 56,
        kind: Kind::NtpServer,
    },
    Def {
        name: "aftr-name",
        code: 64,
        kind: Kind::Domain,
    },
    Def {
        name: "sol-max-rt",
        code: OPT_SOL_MAX_RT,
        kind: Kind::U32,
    },
    Def {
        name: "inf-max-rt",
        code: OPT_INF_MAX_RT,
        kind: Kind::U32,
    },
    Def {
        name: "captive-portal",
        code: 103,
        kind: Kind::Text,
    },
    Def {
        name: "dnr",
        code: 144,
        kind: Kind::Dnr,
    },
];

/// The standard option named `name`.
pub fn by_name(name: &str) -> Option<&'static Def> {
    REGISTRY.iter().find(|d| d.name == name)
}

/// The standard option with `code`.
pub fn by_code(code: u16) -> Option<&'static Def> {
    REGISTRY.iter().find(|d| d.code == code)
}

/// Codes the server owns: they are built from leases and protocol state, never configured.
pub fn is_protocol_option(code: u16) -> bool {
    matches!(
        code,
        0 | OPT_CLIENTID
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
            | OPT_INTERFACE_ID
            | OPT_RECONF_MSG
            | OPT_RECONF_ACCEPT
            | OPT_IA_PD
            | OPT_IAPREFIX
            | OPT_PD_EXCLUDE
    )
}

/// Options a server sends only to a client that listed them in its ORO (RFC 8415 sections
/// 21.24, 21.25: "to a client that has included the ... option code in an Option Request
/// option"): `always-send` is refused for them.
pub fn only_when_requested(code: u16) -> bool {
    matches!(code, OPT_SOL_MAX_RT | OPT_INF_MAX_RT)
}

/// Options sent in a Reply to an Information-Request only: Information Refresh Time (RFC 8415
/// section 21.23: "only used in Reply messages in response to Information-request messages")
/// and INF_MAX_RT (section 21.25 allows it in any response to a client that asked, but it tunes
/// the Information-Request retransmissions alone, so we send it in their Reply only).
pub fn information_only(code: u16) -> bool {
    matches!(code, OPT_INFORMATION_REFRESH_TIME | OPT_INF_MAX_RT)
}

/// One configured option, its value already encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfiguredOption {
    pub code: u16,
    /// The option's body (without code and length).
    pub data: Vec<u8>,
    /// Sent whether or not the client's ORO lists it (Kea's `always-send`).
    pub always_send: bool,
}

impl ConfiguredOption {
    /// The option for a reply (re-encoded verbatim).
    pub fn to_option(&self) -> crate::proto::DhcpOption {
        crate::proto::DhcpOption::Unknown {
            code: self.code,
            data: self.data.clone(),
        }
    }
}

/// The options of `levels`, least specific first, merged: a code present at a level replaces
/// every instance of it from the levels before (an option may appear several times at one level,
/// as DNR does, one per resolver). The result is in code order, instances of a code in the order
/// written: the canonical order of a reply's configured options.
pub fn merge<'a>(
    levels: impl IntoIterator<Item = &'a [ConfiguredOption]>,
) -> Vec<ConfiguredOption> {
    let mut merged: Vec<ConfiguredOption> = Vec::new();
    for level in levels {
        if level.is_empty() {
            continue;
        }
        merged.retain(|o| !level.iter().any(|l| l.code == o.code));
        merged.extend(level.iter().cloned());
    }
    merged.sort_by_key(|o| o.code);
    merged
}

/// Whether `option` goes into a reply to `request_type` from a client whose ORO is `oro`: it is
/// listed there or `always-send`, and it belongs in this reply ([`information_only`]). The
/// fast path applies the same rule to its pre-encoded options (docs/fastpath.md).
pub fn sent_in(option: &ConfiguredOption, request_type: u8, oro: &[u16]) -> bool {
    (!information_only(option.code) || request_type == MSG_INFORMATION_REQUEST)
        && (option.always_send || oro.contains(&option.code))
}

/// A pd-pool's Prefix Exclude (RFC 6603): the bits of `excluded` past the delegated length,
/// applied to every prefix the pool delegates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PdExclude {
    /// As configured: inside the pool's prefix, longer than the delegated length.
    pub excluded: Ipv6Net,
}

impl PdExclude {
    /// The prefix excluded from `delegated` (of length `delegated_len`): its first
    /// `delegated_len` bits, then the configured prefix's bits up to its length.
    pub fn within(&self, delegated: Ipv6Addr, delegated_len: u8) -> Ipv6Net {
        let len = self.excluded.prefix_len();
        let keep = mask(delegated_len);
        let bits = (u128::from(delegated) & keep) | (u128::from(self.excluded.network()) & !keep);
        let net = Ipv6Net::new(Ipv6Addr::from(bits & mask(len)), len).expect("length <= 128");
        net.trunc()
    }

    /// The OPTION_PD_EXCLUDE body for `delegated`/`delegated_len` (RFC 6603 section 4.2):
    /// prefix-len, then the subnet ID: the excluded prefix's bits from `delegated_len` on,
    /// `(prefix-len - delegated_len - 1) / 8 + 1` bytes, left aligned, the rest zero.
    pub fn body(&self, delegated: Ipv6Addr, delegated_len: u8) -> Vec<u8> {
        let len = self.excluded.prefix_len();
        let excluded = u128::from(self.within(delegated, delegated_len).network());
        let id_bits = u32::from(len - delegated_len);
        let id_len = (id_bits as usize - 1) / 8 + 1;
        // Shift the subnet ID to the top, then keep its bits only.
        let id = (excluded << delegated_len) & mask(len - delegated_len);
        let mut out = vec![len];
        out.extend_from_slice(&id.to_be_bytes()[..id_len]);
        out
    }
}

/// The top `len` bits set.
fn mask(len: u8) -> u128 {
    match len {
        0 => 0,
        l if l >= 128 => u128::MAX,
        l => !(u128::MAX >> l),
    }
}

#[cfg(test)]
mod tests;
