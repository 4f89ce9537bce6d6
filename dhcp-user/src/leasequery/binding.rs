//! Bindings on the wire: a client's leases as OPTION_CLIENT_DATA (RFC 5007 §4.1.2.2).

use std::net::Ipv6Addr;

use dhcp_common::dhcpv6::OPT_CLIENTID;

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
/// All `updates` must belong to the same client; an empty slice gives `None`.
pub fn client_data(
    updates: &[LeaseUpdate],
    base_time: i64,
    relay_data: bool,
    ias: bool,
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
    Some(DhcpOption::ClientData(options))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::OptionList;
    use crate::store::LeaseState;

    fn lease(lease_type: LeaseType, address: &str, len: u8, iaid: u32) -> LeaseUpdate {
        LeaseUpdate {
            lease: Lease {
                address: address.parse().unwrap(),
                prefix_len: len,
                lease_type,
                duid: vec![0, 3, 0, 1, 2, 0, 0, 0, 0, 1],
                iaid,
                subnet_id: 1,
                preferred_lifetime: 100,
                valid_lifetime: 200,
                cltt: 1000,
                expire: 1200,
                state: LeaseState::Assigned,
                interface: String::new(),
                link_address: Ipv6Addr::UNSPECIFIED,
                relay_id: None,
                remote_id: None,
                relay_info: Vec::new(),
                hostname: String::new(),
                line: None,
                next_hop: None,
                reconfigure: None,
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
        let Some(DhcpOption::ClientData(plain)) = client_data(&updates, 1010, false, false) else {
            panic!("client data")
        };
        assert_eq!(plain.ia_nas().count() + plain.ia_pds().count(), 0);
        let Some(DhcpOption::ClientData(with)) = client_data(&updates, 1010, false, true) else {
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
}
