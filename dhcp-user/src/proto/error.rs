//! Decode and encode errors. Every `DecodeError` is a reason the server drops a packet; its
//! `reason()` is the stable label the drop counter uses.

/// Why a byte string is not a well-formed DHCPv6 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("empty message")]
    EmptyMessage,
    #[error("message type {0} is not a DHCPv6 message type")]
    UnknownMessageType(u8),
    #[error("message type {msg_type}: header needs {need} bytes, got {len}")]
    TruncatedHeader {
        msg_type: u8,
        len: usize,
        need: usize,
    },
    #[error("option header truncated at offset {offset}: {remaining} bytes left")]
    OptionHeaderTruncated { offset: usize, remaining: usize },
    #[error("option {code} claims {len} bytes, only {remaining} left")]
    OptionLengthPastEnd {
        code: u16,
        len: usize,
        remaining: usize,
    },
    #[error("option {code} has bad length {len}")]
    BadOptionLength { code: u16, len: usize },
    #[error(
        "relay messages nested deeper than {} hops",
        dhcp_common::dhcpv6::HOP_COUNT_LIMIT
    )]
    TooManyRelayHops,
    #[error("options encapsulated deeper than {} levels", super::MAX_OPTION_DEPTH)]
    OptionNestingTooDeep,
    #[error("DUID in option {code} is {len} bytes, shorter than a type code plus identifier")]
    DuidTooShort { code: u16, len: usize },
    #[error("DUID in option {code} is {len} bytes, longer than 130")]
    DuidTooLong { code: u16, len: usize },
    #[error("bad domain name in option {code}: {why}")]
    BadDomainName { code: u16, why: &'static str },
    #[error("option {code} text is not UTF-8")]
    BadUtf8 { code: u16 },
    #[error("relayed message malformed: {0}")]
    RelayMessageMalformed(Box<DecodeError>),
}

impl DecodeError {
    /// Stable snake_case label for drop counters and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::EmptyMessage => "empty_message",
            DecodeError::UnknownMessageType(_) => "unknown_message_type",
            DecodeError::TruncatedHeader { .. } => "truncated_header",
            DecodeError::OptionHeaderTruncated { .. } => "option_header_truncated",
            DecodeError::OptionLengthPastEnd { .. } => "option_length_past_end",
            DecodeError::BadOptionLength { .. } => "bad_option_length",
            DecodeError::TooManyRelayHops => "too_many_relay_hops",
            DecodeError::OptionNestingTooDeep => "option_nesting_too_deep",
            DecodeError::DuidTooShort { .. } => "duid_too_short",
            DecodeError::DuidTooLong { .. } => "duid_too_long",
            DecodeError::BadDomainName { .. } => "bad_domain_name",
            DecodeError::BadUtf8 { .. } => "bad_utf8",
            DecodeError::RelayMessageMalformed(_) => "relay_message_malformed",
        }
    }

    /// Every label `reason()` can return, for registering counters up front.
    pub const ALL_REASONS: &'static [&'static str] = &[
        "empty_message",
        "unknown_message_type",
        "truncated_header",
        "option_header_truncated",
        "option_length_past_end",
        "bad_option_length",
        "too_many_relay_hops",
        "option_nesting_too_deep",
        "duid_too_short",
        "duid_too_long",
        "bad_domain_name",
        "bad_utf8",
        "relay_message_malformed",
    ];

    /// The innermost error, looking through `RelayMessageMalformed`.
    pub fn root_cause(&self) -> &DecodeError {
        match self {
            DecodeError::RelayMessageMalformed(inner) => inner.root_cause(),
            other => other,
        }
    }
}

/// Why a value cannot be put on the wire. The encoder never truncates: anything that does not
/// fit its length field, or would not decode back to the same value, is an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("option {code} body of {len} bytes does not fit a 16-bit length")]
    OptionTooLong { code: u16, len: usize },
    #[error("message type {0} cannot be encoded as this kind of message")]
    BadMessageType(u8),
    #[error(
        "relay messages nested deeper than {} hops",
        dhcp_common::dhcpv6::HOP_COUNT_LIMIT
    )]
    TooManyRelayHops,
    #[error("options encapsulated deeper than {} levels", super::MAX_OPTION_DEPTH)]
    OptionNestingTooDeep,
    #[error("bad domain name {name:?}: {why}")]
    BadDomainName { name: String, why: &'static str },
    #[error("option {code} has bad length {len}")]
    BadOptionLength { code: u16, len: usize },
}
