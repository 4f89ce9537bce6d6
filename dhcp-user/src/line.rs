//! Line identity: which access line (a port of an access node, a subscriber) a client came
//! from, as its relays tell it. Defined here once and used by reservations by line
//! ([`crate::binding_rule`]), `line-client-limit` and sticky delegation by line
//! (`server::handler`).
//!
//! The identities are taken from the relay chain, each from the hop closest to the client that
//! carries it (an LDRA puts Interface-ID and option 79 in, an L3 relay further out may add
//! Remote-ID): Interface-ID (18), Remote-ID (37, RFC 4649: enterprise number then the id),
//! Subscriber-ID (38, RFC 4580), Client Link-Layer Address (79, RFC 6939: type then address).
//!
//! A client on a link the server serves directly has one identity: its link-layer address, as
//! if a relay had sent option 79 for it, taken from its frame (the fast path notes the source
//! MAC of each direct DHCPv6 frame it passes on, `CLIENT_MACS`; a tagged frame off the NIC
//! carries its own). Neither the client's link-local address (RFC 7217 and privacy addresses
//! are not EUI-64) nor its DUID (a DUID-LL or DUID-LLT names one of its interfaces, not
//! necessarily the one it sends from) says it exactly. A lease keeps it (`Lease::link_layer`),
//! as a relayed one keeps its relay chain. Without the fast path a direct client has no line
//! but its interface (`interface-client-limit`).

use dhcp_common::dhcpv6::{OPT_CLIENT_LINKLAYER_ADDR, OPT_SUBSCRIBER_ID};

use crate::config::{LineId, LineKind};
use crate::proto::{DhcpOption, OptionList, Packet, RelayMessage};

/// The line identities of one request (or of the request a lease was granted for).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LineIds {
    /// Interface-ID (18).
    pub interface_id: Option<Vec<u8>>,
    /// Remote-ID (37): enterprise number, then the id.
    pub remote_id: Option<Vec<u8>>,
    /// Subscriber-ID (38).
    pub subscriber_id: Option<Vec<u8>>,
    /// Client Link-Layer Address (79): link-layer type, then the address.
    pub client_linklayer_address: Option<Vec<u8>>,
}

/// No identity at all (a direct client).
pub static NO_LINE: LineIds = LineIds {
    interface_id: None,
    remote_id: None,
    subscriber_id: None,
    client_linklayer_address: None,
};

impl LineIds {
    /// The identities of the relay chain `relays` (outermost first), each from the hop closest
    /// to the client that carries it.
    pub fn from_relays(relays: &[&RelayMessage]) -> LineIds {
        let mut ids = LineIds::default();
        for relay in relays.iter().rev() {
            if ids.interface_id.is_none() {
                ids.interface_id = relay.interface_id().map(<[u8]>::to_vec);
            }
            if ids.remote_id.is_none() {
                ids.remote_id = relay.remote_id().map(|remote| {
                    let mut body = remote.enterprise.to_be_bytes().to_vec();
                    body.extend_from_slice(&remote.remote_id);
                    body
                });
            }
            if ids.subscriber_id.is_none() {
                ids.subscriber_id = relay.find(OPT_SUBSCRIBER_ID).and_then(|o| match o {
                    DhcpOption::SubscriberId(id) => Some(id.clone()),
                    _ => None,
                });
            }
            if ids.client_linklayer_address.is_none() {
                ids.client_linklayer_address =
                    relay.find(OPT_CLIENT_LINKLAYER_ADDR).and_then(|o| match o {
                        // At least the 2-byte link-layer type and one byte of address.
                        DhcpOption::Unknown { data, .. } if data.len() > 2 => Some(data.clone()),
                        _ => None,
                    });
            }
        }
        ids
    }

    /// The identities of a stored relay chain (a lease's `relay_info`: the datagram as it came
    /// from the relay); none when it is empty (a direct client) or does not decode.
    pub fn from_relay_info(relay_info: &[u8]) -> LineIds {
        if relay_info.is_empty() {
            return LineIds::default();
        }
        match crate::proto::decode(relay_info) {
            Ok(packet @ Packet::Relay(_)) => LineIds::from_relays(&packet.unwrap_relays().0),
            _ => LineIds::default(),
        }
    }

    /// The identities of the request `lease` was last served for by the controller: its relay
    /// chain's, or a direct client's link-layer address (`Lease::link_layer`).
    pub fn of_lease(lease: &crate::store::Lease) -> LineIds {
        if !lease.relay_info.is_empty() {
            return LineIds::from_relay_info(&lease.relay_info);
        }
        LineIds {
            client_linklayer_address: lease.link_layer.as_deref().map(<[u8]>::to_vec),
            ..LineIds::default()
        }
    }

    /// The identity of `kind`, when the relays sent it.
    pub fn get(&self, kind: LineKind) -> Option<&[u8]> {
        match kind {
            LineKind::InterfaceId => self.interface_id.as_deref(),
            LineKind::RemoteId => self.remote_id.as_deref(),
            LineKind::SubscriberId => self.subscriber_id.as_deref(),
            LineKind::ClientLinklayerAddress => self.client_linklayer_address.as_deref(),
        }
    }

    /// The line of `kind` as a [`LineId`].
    pub fn line(&self, kind: LineKind) -> Option<LineId> {
        self.get(kind).map(|value| LineId {
            kind,
            value: value.to_vec(),
        })
    }

    /// True if the relays named the line `id`.
    pub fn is_on(&self, id: &LineId) -> bool {
        self.get(id.kind) == Some(id.value.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Message, RemoteId};
    use dhcp_common::dhcpv6::{MSG_RELAY_FORW, MSG_SOLICIT};
    use std::net::Ipv6Addr;

    fn hop(options: Vec<DhcpOption>, inner: Packet) -> RelayMessage {
        let mut options = options;
        options.push(DhcpOption::RelayMsg(Box::new(inner)));
        RelayMessage {
            msg_type: MSG_RELAY_FORW,
            hop_count: 0,
            link_address: Ipv6Addr::UNSPECIFIED,
            peer_address: "fe80::1".parse().unwrap(),
            options,
        }
    }

    /// Each identity comes from the hop closest to the client that has it, and a stored chain
    /// gives the same identities back.
    #[test]
    fn identities_from_the_hop_closest_to_the_client() {
        let client = Packet::Message(Message::new(MSG_SOLICIT, [1, 2, 3]));
        let ldra = hop(
            vec![
                DhcpOption::InterfaceId(b"port-7".to_vec()),
                DhcpOption::Unknown {
                    code: OPT_CLIENT_LINKLAYER_ADDR,
                    data: vec![0, 1, 2, 0, 0, 0, 0, 9],
                },
            ],
            client,
        );
        let relay = hop(
            vec![
                DhcpOption::InterfaceId(b"uplink".to_vec()),
                DhcpOption::RemoteId(RemoteId {
                    enterprise: 3561,
                    remote_id: vec![0xaa],
                }),
            ],
            Packet::Relay(ldra),
        );
        let packet = Packet::Relay(relay);
        let ids = LineIds::from_relays(&packet.unwrap_relays().0);
        assert_eq!(ids.interface_id.as_deref(), Some(&b"port-7"[..]));
        assert_eq!(ids.remote_id, Some(vec![0, 0, 0x0d, 0xe9, 0xaa]));
        assert_eq!(ids.subscriber_id, None);
        assert_eq!(
            ids.client_linklayer_address,
            Some(vec![0, 1, 2, 0, 0, 0, 0, 9])
        );
        let stored = LineIds::from_relay_info(&packet.encode().unwrap());
        assert_eq!(stored, ids);
        assert_eq!(LineIds::from_relay_info(&[]), LineIds::default());
        assert_eq!(LineIds::from_relay_info(&[12, 0]), LineIds::default());
    }
}
