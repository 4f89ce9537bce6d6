//! Bindings on the wire: a client's leases as OPTION_CLIENT_DATA (RFC 5007 §4.1.2.2).

use std::net::Ipv6Addr;

use dhcp_common::dhcpv6::OPT_CLIENTID;

use crate::proto::{DhcpOption, Duid, IaAddr, IaPrefix, LqRelayData, Packet};
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
/// All `updates` must belong to the same client; an empty slice gives `None`.
pub fn client_data(
    updates: &[LeaseUpdate],
    base_time: i64,
    relay_data: bool,
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
        options.push(match lease.lease_type {
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
        });
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
    Some(DhcpOption::ClientData(options))
}
