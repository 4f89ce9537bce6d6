//! DHCPv6 wire codec (RFC 8415, with RFC 4649 Remote-ID and the leasequery options of RFC 5007,
//! RFC 5460 and RFC 7653).
//!
//! - [`Packet`] is either a client/server [`Message`] (every type but 12/13) or a
//!   [`RelayMessage`] (Relay-Forw 12 / Relay-Repl 13) whose Relay Message option holds the next
//!   packet, decoded recursively, at most `HOP_COUNT_LIMIT` (8) relay layers deep.
//! - [`decode`] never panics; every failure is a [`DecodeError`] whose `reason()` is the drop
//!   counter label. Unknown option codes are kept as [`DhcpOption::Unknown`], never an error.
//! - Encoding writes options in exactly the order of the `options` vector and never truncates.
//!   Encoding is canonical: for any bytes `decode` accepts, `encode` gives the same bytes back,
//!   so a decoded relay chain can be re-encoded as received (LQ_RELAY_DATA).
//! - [`framing`] is the 2-byte length framing of leasequery over TCP (RFC 5460 §5.1).
//!
//! Option lookups (`client_id()`, `ia_nas()`, `oro()`, ...) come from the [`OptionList`] trait,
//! implemented for messages, relay messages, IAs and option vectors alike.
//!
//! ```
//! use dhcp_user::proto::{decode, DhcpOption, Duid, Message, OptionList, Packet};
//! let client = Duid::ll(1, &[2, 0, 0, 0, 0, 1]).unwrap();
//! let solicit = Message::new(1, [0x12, 0x34, 0x56])
//!     .with_option(DhcpOption::ClientId(client.clone()))
//!     .with_option(DhcpOption::ElapsedTime(0));
//! let bytes = solicit.encode().unwrap();
//! let Packet::Message(back) = decode(&bytes).unwrap() else { panic!("not a message") };
//! assert_eq!(back.client_id(), Some(&client));
//! ```

use std::net::Ipv6Addr;

use dhcp_common::dhcpv6::{HOP_COUNT_LIMIT, MSG_RELAY_FORW, MSG_RELAY_REPL};

mod duid;
mod error;
pub mod framing;
mod option;
mod wire;

#[cfg(test)]
mod tests;

pub use duid::{
    Duid, DuidError, DUID_EN, DUID_LL, DUID_LLT, DUID_MAX_LEN, DUID_MIN_LEN, DUID_UUID,
};
pub use error::{DecodeError, EncodeError};
pub use option::{
    is_modeled_code, DhcpOption, IaAddr, IaNa, IaPd, IaPrefix, IaTa, LqQuery, LqRelayData,
    OptionList, RemoteId, StatusCode,
};
pub use wire::encode_domain_list;

/// How many levels of option-inside-option encapsulation the codec accepts (a message's own
/// options are level 0). The deepest real nesting is 3 (LEASEQUERY-REPLY → CLIENT_DATA → IA_PD →
/// IAPREFIX → Status Code); the bound keeps hostile input from recursing deep.
pub const MAX_OPTION_DEPTH: usize = 8;

/// Size of a client/server message header: msg-type and transaction-id.
pub const MESSAGE_HEADER_LEN: usize = 4;
/// Size of a relay message header: msg-type, hop-count, link-address, peer-address.
pub const RELAY_HEADER_LEN: usize = 34;

/// A DHCPv6 message of any type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    Message(Message),
    Relay(RelayMessage),
}

/// A client/server message (RFC 8415 §8): every message type except Relay-Forw/Relay-Repl.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub msg_type: u8,
    pub transaction_id: [u8; 3],
    pub options: Vec<DhcpOption>,
}

/// A relay agent message (RFC 8415 §9): Relay-Forw (12) or Relay-Repl (13).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelayMessage {
    pub msg_type: u8,
    pub hop_count: u8,
    pub link_address: Ipv6Addr,
    pub peer_address: Ipv6Addr,
    pub options: Vec<DhcpOption>,
}

/// Whether `msg_type` is a type the codec decodes as a client/server [`Message`].
pub fn is_message_type(msg_type: u8) -> bool {
    matches!(msg_type, 1..=23) && !is_relay_type(msg_type)
}

/// Whether `msg_type` is Relay-Forw or Relay-Repl.
pub fn is_relay_type(msg_type: u8) -> bool {
    msg_type == MSG_RELAY_FORW || msg_type == MSG_RELAY_REPL
}

/// Decodes one DHCPv6 message (client/server or relay). Never panics.
pub fn decode(bytes: &[u8]) -> Result<Packet, DecodeError> {
    Packet::decode(bytes)
}

impl Packet {
    pub fn decode(bytes: &[u8]) -> Result<Packet, DecodeError> {
        wire::decode_packet(bytes, 0)
    }

    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut buf = Vec::new();
        self.encode_into(&mut buf)?;
        Ok(buf)
    }

    /// Appends the encoding to `buf`. On error `buf` may hold a partial encoding.
    pub fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        wire::encode_packet(self, buf, 0)
    }

    pub fn msg_type(&self) -> u8 {
        match self {
            Packet::Message(m) => m.msg_type,
            Packet::Relay(r) => r.msg_type,
        }
    }

    pub fn options(&self) -> &[DhcpOption] {
        match self {
            Packet::Message(m) => &m.options,
            Packet::Relay(r) => &r.options,
        }
    }

    pub fn as_message(&self) -> Option<&Message> {
        match self {
            Packet::Message(m) => Some(m),
            Packet::Relay(_) => None,
        }
    }

    pub fn as_relay(&self) -> Option<&RelayMessage> {
        match self {
            Packet::Relay(r) => Some(r),
            Packet::Message(_) => None,
        }
    }

    /// The relay layers from the outermost (received from the last relay) inwards, then the
    /// client message at the core (None if a relay layer lacks a Relay Message option).
    pub fn unwrap_relays(&self) -> (Vec<&RelayMessage>, Option<&Message>) {
        let mut relays = Vec::new();
        let mut current = self;
        loop {
            match current {
                Packet::Message(m) => return (relays, Some(m)),
                Packet::Relay(r) => {
                    relays.push(r);
                    match r.relay_msg() {
                        Some(inner) => current = inner,
                        None => return (relays, None),
                    }
                }
            }
        }
    }

    /// The client message at the core of the relay chain.
    pub fn innermost_message(&self) -> Option<&Message> {
        self.unwrap_relays().1
    }
}

impl From<Message> for Packet {
    fn from(m: Message) -> Packet {
        Packet::Message(m)
    }
}

impl From<RelayMessage> for Packet {
    fn from(r: RelayMessage) -> Packet {
        Packet::Relay(r)
    }
}

impl Message {
    pub fn new(msg_type: u8, transaction_id: [u8; 3]) -> Message {
        Message {
            msg_type,
            transaction_id,
            options: Vec::new(),
        }
    }

    /// Appends an option (builder style).
    pub fn with_option(mut self, option: DhcpOption) -> Message {
        self.options.push(option);
        self
    }

    pub fn push(&mut self, option: DhcpOption) {
        self.options.push(option);
    }

    /// The transaction id as a number (0..2^24).
    pub fn xid(&self) -> u32 {
        u32::from_be_bytes([
            0,
            self.transaction_id[0],
            self.transaction_id[1],
            self.transaction_id[2],
        ])
    }

    /// Decodes bytes that must hold a client/server message (not a relay message).
    pub fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        match bytes.first() {
            Some(&t) if is_relay_type(t) => Err(DecodeError::UnknownMessageType(t)),
            _ => match Packet::decode(bytes)? {
                Packet::Message(m) => Ok(m),
                Packet::Relay(r) => Err(DecodeError::UnknownMessageType(r.msg_type)),
            },
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut buf = Vec::new();
        self.encode_into(&mut buf)?;
        Ok(buf)
    }

    pub fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        wire::encode_message(self, buf, 0)
    }
}

impl RelayMessage {
    /// Decodes bytes that must hold a relay message.
    pub fn decode(bytes: &[u8]) -> Result<RelayMessage, DecodeError> {
        match bytes.first() {
            Some(&t) if !is_relay_type(t) => Err(DecodeError::UnknownMessageType(t)),
            _ => match Packet::decode(bytes)? {
                Packet::Relay(r) => Ok(r),
                Packet::Message(m) => Err(DecodeError::UnknownMessageType(m.msg_type)),
            },
        }
    }

    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let mut buf = Vec::new();
        self.encode_into(&mut buf)?;
        Ok(buf)
    }

    pub fn encode_into(&self, buf: &mut Vec<u8>) -> Result<(), EncodeError> {
        wire::encode_relay(self, buf, 0)
    }

    /// This relay chain with the innermost Relay Message option (the one holding the client's
    /// message rather than another relay message) removed: the form LQ_RELAY_DATA carries
    /// (RFC 5007 §4.1.2.4). Every other option stays, in order.
    pub fn without_client_message(&self) -> RelayMessage {
        let options = self
            .options
            .iter()
            .filter_map(|option| match option {
                DhcpOption::RelayMsg(inner) => match inner.as_ref() {
                    Packet::Relay(relay) => Some(DhcpOption::RelayMsg(Box::new(Packet::Relay(
                        relay.without_client_message(),
                    )))),
                    Packet::Message(_) => None,
                },
                other => Some(other.clone()),
            })
            .collect();
        RelayMessage {
            options,
            ..self.clone_header()
        }
    }

    /// The header fields with no options.
    fn clone_header(&self) -> RelayMessage {
        RelayMessage {
            msg_type: self.msg_type,
            hop_count: self.hop_count,
            link_address: self.link_address,
            peer_address: self.peer_address,
            options: Vec::new(),
        }
    }

    /// The Relay-Repl answering this Relay-Forw (RFC 8415 §19.3): same hop-count, link-address
    /// and peer-address; the Interface-ID option copied verbatim when this message has one;
    /// then the Relay Message option holding `reply`.
    pub fn reply_with(&self, reply: Packet) -> RelayMessage {
        let mut options = Vec::with_capacity(2);
        if let Some(id) = self.find(dhcp_common::dhcpv6::OPT_INTERFACE_ID) {
            options.push(id.clone());
        }
        options.push(DhcpOption::RelayMsg(Box::new(reply)));
        RelayMessage {
            msg_type: MSG_RELAY_REPL,
            options,
            ..self.clone_header()
        }
    }
}

impl OptionList for Message {
    fn options_slice(&self) -> &[DhcpOption] {
        &self.options
    }
}

impl OptionList for RelayMessage {
    fn options_slice(&self) -> &[DhcpOption] {
        &self.options
    }
}

impl OptionList for Packet {
    fn options_slice(&self) -> &[DhcpOption] {
        self.options()
    }
}

/// Relay layers the codec accepts, from dhcp_common's HOP_COUNT_LIMIT.
pub const MAX_RELAY_DEPTH: usize = HOP_COUNT_LIMIT as usize;
