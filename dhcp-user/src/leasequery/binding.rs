//! Bindings on the wire: a client's leases as OPTION_CLIENT_DATA (RFC 5007 §4.1.2.2).
//!
//! Besides RFC 5007's options, a requestor that asks for OPTION_VENDOR_OPTS (17) in its ORO
//! (our own peers do) gets [`PeerData`]: what a redundancy peer needs to route the client and
//! to count it by line, which no standard leasequery option carries for a direct client.

use std::net::Ipv6Addr;

use dhcp_common::dhcpv6::OPT_CLIENTID;
use serde::Serialize;

use crate::proto::{DhcpOption, Duid, IaAddr, IaNa, IaPd, IaPrefix, LqRelayData, Packet};
use crate::store::{Lease, LeaseType};

/// One binding as a leasequery stream reports it: the lease, and whether it was removed from
/// the store (a removed or no longer assigned binding is sent with lifetimes 0, RFC 7653 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseUpdate {
    /// The lease (for a removal: as it was before).
    pub lease: Lease,
    /// The lease is gone from the store.
    pub removed: bool,
}

impl LeaseUpdate {
    /// Whether the binding is in use at `now` (false: sent with lifetimes 0).
    pub fn is_active(&self, now: i64) -> bool {
        !self.removed && self.lease.is_active(now)
    }
}

/// The peer-address of LQ_RELAY_DATA for a stored relay chain: RFC 5007 wants the address the
/// server received the relayed message from, which the lease store does not keep; the
/// outermost relay's link-address (an address of that relay) stands in for it. `None` when the
/// chain is empty or does not decode.
pub fn relay_peer_address(relay_info: &[u8]) -> Option<Ipv6Addr> {
    if relay_info.is_empty() {
        return None;
    }
    let packet = Packet::decode(relay_info).ok()?;
    let (relays, _) = packet.unwrap_relays();
    relays.first().map(|relay| relay.link_address)
}

/// OPTION_CLIENT_DATA for one client's bindings, with times relative to `base_time` (unix
/// seconds): Client ID, then an IAADDR or IAPREFIX per binding with the lifetimes left (0 for
/// a binding no longer active), CLT_TIME (seconds since the most recent client transaction),
/// and LQ_RELAY_DATA from the most recent binding's relay chain when `relay_data` is asked for.
///
/// With `ias` (the requestor's ORO asks for OPTION_IA_NA or OPTION_IA_PD), each binding is
/// also sent inside an IA_NA or IA_PD carrying its IAID (T1 and T2 0), after the standard
/// options: what a peer needs to answer the client's Rebind itself (its fast path matches the
/// IAID). Requestors that do not ask see the RFC 5007 layout only.
///
/// With `peer_data` (the ORO asks for OPTION_VENDOR_OPTS), the most recent binding's
/// [`PeerData`] goes last, when it has any.
///
/// All `updates` must belong to the same client; an empty slice gives `None`.
pub fn client_data(
    updates: &[LeaseUpdate],
    base_time: i64,
    relay_data: bool,
    ias: bool,
    peer_data: bool,
) -> Option<DhcpOption> {
    let newest = updates.iter().max_by_key(|u| u.lease.cltt)?;
    let duid = &newest.lease.duid;
    let mut options = Vec::with_capacity(updates.len() + 3);
    // The store only guarantees a non-empty DUID; a shorter one than the codec's `Duid` accepts
    // still goes out as the client sent it.
    options.push(match Duid::new(duid.clone()) {
        Ok(duid) => DhcpOption::ClientId(duid),
        Err(_) => DhcpOption::Unknown {
            code: OPT_CLIENTID,
            data: duid.clone(),
        },
    });
    let mut ia_options: Vec<DhcpOption> = Vec::new();
    for update in updates {
        let lease = &update.lease;
        let (preferred, valid) = if update.is_active(base_time) {
            (
                lease.remaining_preferred(base_time),
                lease.remaining_valid(base_time),
            )
        } else {
            (0, 0)
        };
        let binding = match lease.lease_type {
            LeaseType::Na => DhcpOption::IaAddr(IaAddr {
                addr: lease.address,
                preferred,
                valid,
                options: Vec::new(),
            }),
            LeaseType::Pd => DhcpOption::IaPrefix(IaPrefix {
                preferred,
                valid,
                prefix_len: lease.prefix_len,
                prefix: lease.address,
                options: Vec::new(),
            }),
        };
        if ias {
            let same_ia = ia_options
                .iter_mut()
                .find_map(|o| match (o, lease.lease_type) {
                    (DhcpOption::IaNa(ia), LeaseType::Na) if ia.iaid == lease.iaid => {
                        Some(&mut ia.options)
                    }
                    (DhcpOption::IaPd(ia), LeaseType::Pd) if ia.iaid == lease.iaid => {
                        Some(&mut ia.options)
                    }
                    _ => None,
                });
            match same_ia {
                Some(inner) => inner.push(binding.clone()),
                None => ia_options.push(match lease.lease_type {
                    LeaseType::Na => DhcpOption::IaNa(IaNa {
                        iaid: lease.iaid,
                        t1: 0,
                        t2: 0,
                        options: vec![binding.clone()],
                    }),
                    LeaseType::Pd => DhcpOption::IaPd(IaPd {
                        iaid: lease.iaid,
                        t1: 0,
                        t2: 0,
                        options: vec![binding.clone()],
                    }),
                }),
            }
        }
        options.push(binding);
    }
    let clt = base_time.saturating_sub(newest.lease.cltt).max(0);
    options.push(DhcpOption::CltTime(u32::try_from(clt).unwrap_or(u32::MAX)));
    if relay_data {
        // The stored datagram minus the client's own message (RFC 5007 §4.1.2.4).
        let relay = relay_peer_address(&newest.lease.relay_info)
            .and_then(|peer| LqRelayData::from_received(peer, &newest.lease.relay_info));
        if let Some(relay) = relay {
            options.push(DhcpOption::LqRelayData(relay));
        }
    }
    options.extend(ia_options);
    if peer_data {
        if let Some(data) = PeerData::of(&newest.lease) {
            options.push(data.encode());
        }
    }
    Some(DhcpOption::ClientData(options))
}

/// The enterprise number of our vendor option (RFC 8415 §21.17) in peer sync. The project has
/// no Private Enterprise Number of its own; 32473 is the one IANA set aside for documentation
/// (RFC 5612). Only our own peers ask for the option, and they check this number.
pub const PEER_DATA_ENTERPRISE: u32 = 32473;
/// Sub-option: the client's link-local next hop, 16 bytes.
const PEER_NEXT_HOP: u16 = 1;
/// Sub-option: the interface the client's request came in on at the sender (its name there).
const PEER_INTERFACE: u16 = 2;
/// Sub-option: the client's line, as stored (kind tag, then the identity).
const PEER_LINE: u16 = 3;
/// Sub-option: a direct client's link-layer address (`Lease::link_layer`: hardware type, then
/// the address), for reservations and lines by MAC on the receiver too.
const PEER_LINK_LAYER: u16 = 4;

/// What a redundancy peer learns of a binding beyond RFC 5007, sent inside OPTION_CLIENT_DATA
/// as OPTION_VENDOR_OPTS with [`PEER_DATA_ENTERPRISE`]: the client's next hop (`[routes]`), the
/// sender's interface (the receiver maps it to its own link), the client's line and a direct
/// client's link-layer address.
///
/// A vendor option, not OPTION_LQ_CLIENT_LINK (which lists links, not a next hop) nor a made-up
/// LQ_RELAY_DATA (a direct client has no relay, and a fake one would name a line it is not
/// on): a requestor that does not ask for it never sees it, one that gets it without knowing
/// it skips it as any unknown option, and unknown sub-options are skipped too.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeerData {
    /// The client's link-local address: the next hop of a route to its leases.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_hop: Option<Ipv6Addr>,
    /// The sender's interface name for the client's link (empty: not sent).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub interface: String,
    /// The client's line as stored ([`crate::config::LineId::stored`]), hex in JSON.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "hex_bytes")]
    pub line: Option<Vec<u8>>,
    /// A direct client's link-layer address as stored (`Lease::link_layer`), hex in JSON.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "hex_bytes")]
    pub link_layer: Option<Vec<u8>>,
}

fn hex_bytes<S: serde::Serializer>(bytes: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
    match bytes {
        Some(bytes) => s.serialize_str(&hex::encode(bytes)),
        None => s.serialize_none(),
    }
}

impl PeerData {
    /// The peer data of `lease`; `None` when it has none to send.
    pub fn of(lease: &Lease) -> Option<PeerData> {
        if lease.next_hop.is_none() && lease.line.is_none() && lease.link_layer.is_none() {
            return None;
        }
        Some(PeerData {
            next_hop: lease.next_hop,
            interface: lease.interface.clone(),
            line: lease.line.as_deref().map(<[u8]>::to_vec),
            link_layer: lease.link_layer.as_deref().map(<[u8]>::to_vec),
        })
    }

    /// As OPTION_VENDOR_OPTS.
    pub fn encode(&self) -> DhcpOption {
        let mut body = PEER_DATA_ENTERPRISE.to_be_bytes().to_vec();
        let mut sub = |code: u16, data: &[u8]| {
            // Interface names and lines are far below 64 KiB; a longer one is not sent.
            if let Ok(len) = u16::try_from(data.len()) {
                body.extend_from_slice(&code.to_be_bytes());
                body.extend_from_slice(&len.to_be_bytes());
                body.extend_from_slice(data);
            }
        };
        if let Some(hop) = self.next_hop {
            sub(PEER_NEXT_HOP, &hop.octets());
        }
        if !self.interface.is_empty() {
            sub(PEER_INTERFACE, self.interface.as_bytes());
        }
        if let Some(line) = &self.line {
            sub(PEER_LINE, line);
        }
        if let Some(address) = &self.link_layer {
            sub(PEER_LINK_LAYER, address);
        }
        DhcpOption::VendorOpts(body)
    }

    /// The peer data in an OPTION_VENDOR_OPTS body; `None` for another enterprise's option or
    /// a truncated one. Unknown sub-options are skipped; a next hop of the wrong length or an
    /// interface name that is not UTF-8 is left out.
    pub fn decode(body: &[u8]) -> Option<PeerData> {
        let (enterprise, mut rest) = body.split_first_chunk::<4>()?;
        if u32::from_be_bytes(*enterprise) != PEER_DATA_ENTERPRISE {
            return None;
        }
        let mut data = PeerData::default();
        while !rest.is_empty() {
            let (head, tail) = rest.split_first_chunk::<4>()?;
            let code = u16::from_be_bytes([head[0], head[1]]);
            let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
            if tail.len() < len {
                return None;
            }
            let (value, tail) = tail.split_at(len);
            match code {
                PEER_NEXT_HOP => {
                    data.next_hop = <[u8; 16]>::try_from(value).ok().map(Ipv6Addr::from);
                }
                PEER_INTERFACE => {
                    data.interface = std::str::from_utf8(value).unwrap_or_default().to_owned();
                }
                PEER_LINE if !value.is_empty() => data.line = Some(value.to_vec()),
                // At least the 2-byte hardware type and one byte of address, as option 79.
                PEER_LINK_LAYER if value.len() > 2 => data.link_layer = Some(value.to_vec()),
                _ => {}
            }
            rest = tail;
        }
        Some(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::OptionList;

    fn lease(lease_type: LeaseType, address: &str, len: u8, iaid: u32) -> LeaseUpdate {
        LeaseUpdate {
            lease: Lease {
                preferred_lifetime: 100,
                valid_lifetime: 200,
                cltt: 1000,
                expire: 1200,
                ..Lease::bare(
                    lease_type,
                    address.parse().unwrap(),
                    len,
                    vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 1],
                    iaid,
                    1,
                )
            },
            removed: false,
        }
    }

    /// Asked for, each binding also goes inside its IA with the IAID (what a peer's fast path
    /// needs); not asked for, the client data is RFC 5007's layout alone.
    #[test]
    fn ias_carry_the_iaid_only_when_asked_for() {
        let updates = [
            lease(LeaseType::Na, "2001:db8:1::5", 128, 7),
            lease(LeaseType::Pd, "2001:db8:8000::", 56, 9),
        ];
        let Some(DhcpOption::ClientData(plain)) = client_data(&updates, 1010, false, false, false)
        else {
            panic!("client data")
        };
        assert_eq!(plain.ia_nas().count() + plain.ia_pds().count(), 0);
        let Some(DhcpOption::ClientData(with)) = client_data(&updates, 1010, false, true, false)
        else {
            panic!("client data")
        };
        assert_eq!(
            with.ia_addrs().count() + with.ia_prefixes().count(),
            2,
            "the standard options stay"
        );
        let na = with.ia_nas().next().expect("IA_NA");
        assert_eq!((na.iaid, na.t1, na.t2), (7, 0, 0));
        assert_eq!(
            na.options.ia_addrs().next().map(|a| (a.addr, a.valid)),
            Some(("2001:db8:1::5".parse().unwrap(), 190))
        );
        let pd = with.ia_pds().next().expect("IA_PD");
        assert_eq!(pd.iaid, 9);
        assert_eq!(pd.options.ia_prefixes().next().unwrap().prefix_len, 56);
        let parsed =
            crate::leasequery::client::Binding::from_client_data(&with, Some(1010)).unwrap();
        assert_eq!(parsed.addresses[0].iaid, Some(7));
        assert_eq!(parsed.prefixes[0].iaid, Some(9));
    }

    /// The next hop, interface, line and link-layer address go to a requestor that asks (ORO:
    /// vendor options), and only to it; the requestor's parser gets them back.
    #[test]
    fn peer_data_only_when_asked_and_parsed_back() {
        let mut update = lease(LeaseType::Pd, "2001:db8:8000::", 56, 9);
        update.lease.next_hop = Some("fe80::42".parse().unwrap());
        update.lease.interface = "veth-a".into();
        update.lease.line = Some(vec![4, 0, 1, 2, 0, 0, 0, 0, 9].into_boxed_slice());
        update.lease.link_layer = Some(vec![0, 1, 2, 0, 0, 0, 0, 9].into_boxed_slice());
        let updates = [update];
        let Some(DhcpOption::ClientData(plain)) = client_data(&updates, 1010, false, true, false)
        else {
            panic!("client data")
        };
        assert!(!plain.iter().any(|o| matches!(o, DhcpOption::VendorOpts(_))));
        let Some(DhcpOption::ClientData(with)) = client_data(&updates, 1010, false, true, true)
        else {
            panic!("client data")
        };
        let parsed =
            crate::leasequery::client::Binding::from_client_data(&with, Some(1010)).unwrap();
        assert_eq!(
            parsed.peer,
            Some(PeerData {
                next_hop: Some("fe80::42".parse().unwrap()),
                interface: "veth-a".into(),
                line: Some(vec![4, 0, 1, 2, 0, 0, 0, 0, 9]),
                link_layer: Some(vec![0, 1, 2, 0, 0, 0, 0, 9]),
            })
        );
        // A lease with neither a next hop nor a line sends nothing.
        let bare = [lease(LeaseType::Na, "2001:db8:1::5", 128, 7)];
        let Some(DhcpOption::ClientData(none)) = client_data(&bare, 1010, false, true, true) else {
            panic!("client data")
        };
        assert!(!none.iter().any(|o| matches!(o, DhcpOption::VendorOpts(_))));
    }

    /// Another enterprise's vendor option is not ours; unknown sub-options are skipped; a
    /// truncated one is refused, never read past its end.
    #[test]
    fn peer_data_decoding_is_strict_about_its_frame_only() {
        let ours = PeerData {
            next_hop: Some("fe80::1".parse().unwrap()),
            interface: String::new(),
            line: None,
            link_layer: None,
        };
        let DhcpOption::VendorOpts(mut body) = ours.encode() else {
            panic!("vendor option")
        };
        body.extend_from_slice(&[0, 99, 0, 2, 0xaa, 0xbb]);
        assert_eq!(PeerData::decode(&body), Some(ours));
        let mut other = body.clone();
        other[..4].copy_from_slice(&4491u32.to_be_bytes());
        assert_eq!(PeerData::decode(&other), None);
        body.truncate(body.len() - 1);
        assert_eq!(PeerData::decode(&body), None);
        assert_eq!(PeerData::decode(&[0, 0]), None);
    }
}
