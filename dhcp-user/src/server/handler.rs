//! The request pipeline, top to bottom: [`classify`] (direct or relayed, which subnet) →
//! [`decide`] (a function of the request, the current leases, the config and the time, giving
//! the reply and the lease changes) → the server persists the changes (durably, before any
//! Reply that grants or extends a lease is sent) → [`wrap_reply`] encodes it back through
//! every relay hop.
//!
//! The reply layout is the canonical encoding of docs/fastpath.md: Server ID, Client ID, the IAs
//! in request order (each with its address/prefix first), a message-level Status Code when there
//! is one, Preference (Advertise), Rapid Commit (Reply to Solicit), then DNS servers, domain
//! search list and (Information-Request) Information Refresh Time when asked for in the ORO.

use std::net::{Ipv6Addr, SocketAddrV6};

use dhcp_common::dhcpv6::*;

use crate::config::classes::{self, ClassInput, ClassSet};
use crate::config::{Config, Subnet};
use crate::options::ConfiguredOption;
use crate::proto::{
    DecodeError, DhcpOption, Duid, IaAddr, IaNa, IaPd, IaPrefix, Message, OptionList, Packet,
    RelayMessage, StatusCode,
};
use crate::store::{Lease, LeaseChange, LeaseKey, LeaseState, LeaseType, StoreError};

use super::allocator::{Allocator, LeaseView};
use crate::binding_rule::{Claimant, Standing};
use crate::lease_events::{LeaseEvent, LeaseEventKind};
use crate::line::LineIds;

/// A datagram as received on a served interface.
#[derive(Debug, Clone)]
pub struct Inbound {
    /// The UDP payload.
    pub bytes: Vec<u8>,
    /// Sender (client, or the relay closest to us).
    pub source: SocketAddrV6,
    /// The address the datagram was sent to (ff02::1:2, or one of ours when unicast).
    pub destination: Ipv6Addr,
    /// Receiving interface index.
    pub ifindex: u32,
    /// Receiving interface name.
    pub interface: String,
    /// The VLAN line and peer MAC of a tagged frame taken off the NIC (`server::vlan`); `None`
    /// for a datagram of the kernel's UDP socket.
    pub link: Option<super::vlan::TaggedLink>,
}

/// A request ready for a decision: its client message, relay chain and subnet.
#[derive(Debug, Clone)]
pub struct Classified {
    /// The decoded datagram.
    pub packet: Packet,
    /// The client's message at the core of the relay chain.
    pub message: Message,
    /// The receiving interface.
    pub interface: String,
    /// Sender of the datagram.
    pub source: SocketAddrV6,
    /// True when the datagram came to a unicast address of ours straight from a client.
    pub unicast: bool,
    /// Index into `config.subnets` of the subnet serving the client, if any.
    pub subnet: Option<usize>,
    /// Link-address of the innermost relay (`::` when direct).
    pub link_address: Ipv6Addr,
    /// Relay-ID (53) DUID of the relay closest to the server.
    pub relay_id: Option<Vec<u8>>,
    /// Remote-ID (37) of the relay closest to the client: enterprise number then the id.
    pub remote_id: Option<Vec<u8>>,
    /// The relay chain as received (the outermost Relay-Forw), empty when direct.
    pub relay_info: Vec<u8>,
    /// The line the client is on, as its relays name it; a direct client's is its frame's
    /// link-layer address once known ([`Classified::learn_link_layer`]).
    pub lines: LineIds,
    /// The client's link-local address on `interface` (with `[routes]` on): see [`next_hop`].
    pub next_hop: Option<Ipv6Addr>,
    /// The client classes this message puts its client in ([`classes::member_of`]).
    pub classes: ClassSet,
    /// A new reconfigure key, drawn when the client sent Reconfigure Accept in a message that
    /// may bind leases where `reconfigure` is on (kept only if it has no key yet).
    pub fresh_reconfigure_key: Option<[u8; 16]>,
}

impl Classified {
    /// The client's message at the core of the relay chain.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// Relay layers, outermost first.
    pub fn relays(&self) -> Vec<&RelayMessage> {
        self.packet.unwrap_relays().0
    }

    /// True if the request came through at least one relay.
    pub fn relayed(&self) -> bool {
        matches!(self.packet, Packet::Relay(_))
    }

    /// Gives a direct client the link-layer address of its frame, `mac` (Ethernet): its
    /// line by `client-linklayer-address`, as a relay's option 79 (RFC 6939: hardware type 1,
    /// then the address) names a relayed client's. A relayed request keeps its relays' own.
    pub fn learn_link_layer(&mut self, mac: [u8; 6]) {
        if self.relayed() {
            return;
        }
        let mut address = vec![0, 1];
        address.extend_from_slice(&mac);
        self.lines.client_linklayer_address = Some(address);
    }
}

/// Why a datagram was not classified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// The codec refused it.
    Decode(DecodeError),
    /// Decoded, but not something a server accepts; the label is the drop reason.
    Drop(&'static str),
}

impl Rejected {
    /// The drop counter label.
    pub fn reason(&self) -> &'static str {
        match self {
            Rejected::Decode(err) => err.reason(),
            Rejected::Drop(reason) => reason,
        }
    }
}

/// Decodes `inbound` and works out who it is from and which subnet serves it.
///
/// `direct_subnet` is the subnet of clients directly on the receiving interface (by the
/// subnet's `interface` key or the interface's addresses), resolved by the caller.
pub fn classify(
    config: &Config,
    inbound: &Inbound,
    direct_subnet: Option<usize>,
) -> Result<Classified, Rejected> {
    let packet = crate::proto::decode(&inbound.bytes).map_err(Rejected::Decode)?;
    let (relays, message) = packet.unwrap_relays();
    if let Some(outer) = relays.first() {
        if outer.msg_type != MSG_RELAY_FORW {
            return Err(Rejected::Drop("relay_reply_received"));
        }
    }
    if relays.iter().any(|relay| relay.msg_type != MSG_RELAY_FORW) {
        return Err(Rejected::Drop("relay_reply_received"));
    }
    let Some(message) = message else {
        return Err(Rejected::Drop("relay_without_message"));
    };
    if !matches!(
        message.msg_type,
        MSG_SOLICIT
            | MSG_REQUEST
            | MSG_CONFIRM
            | MSG_RENEW
            | MSG_REBIND
            | MSG_RELEASE
            | MSG_DECLINE
            | MSG_INFORMATION_REQUEST
    ) {
        // (A LEASEQUERY reaches the server before classification; inside a relay it is not
        // something a client sends.)
        return Err(Rejected::Drop("not_a_client_message"));
    }

    let lines = LineIds::from_relays(&relays);
    let (subnet, link_address, relay_id, remote_id, relay_info) = if relays.is_empty() {
        (direct_subnet, Ipv6Addr::UNSPECIFIED, None, None, Vec::new())
    } else {
        let innermost = relays[relays.len() - 1];
        let subnet = relayed_subnet(config, &relays, *inbound.source.ip(), direct_subnet);
        let relay_id = relays[0].relay_id().map(|duid| duid.as_bytes().to_vec());
        let remote_id = innermost.remote_id().map(|remote| {
            let mut body = remote.enterprise.to_be_bytes().to_vec();
            body.extend_from_slice(&remote.remote_id);
            body
        });
        (
            subnet,
            innermost.link_address,
            relay_id,
            remote_id,
            inbound.bytes.clone(),
        )
    };
    let unicast = relays.is_empty() && !inbound.destination.is_multicast();
    // A client on a VLAN line has no kernel interface to route through: no route (documented).
    let next_hop = (config.routes.enabled && inbound.link.is_none())
        .then(|| next_hop(&relays, *inbound.source.ip()))
        .flatten();
    let classes = classes::member_of(
        config,
        &ClassInput {
            message,
            relays: &relays,
            interface: &inbound.interface,
        },
    );
    let fresh_reconfigure_key = (matches!(
        message.msg_type,
        MSG_SOLICIT | MSG_REQUEST | MSG_RENEW | MSG_REBIND
    ) && message.has_reconf_accept()
        && subnet.is_some_and(|index| config.subnets[index].reconfigure))
    .then(super::reconfigure::fresh_key);
    let message = message.clone();
    Ok(Classified {
        packet,
        message,
        interface: inbound.interface.clone(),
        source: inbound.source,
        unicast,
        subnet,
        link_address,
        relay_id,
        remote_id,
        relay_info,
        lines,
        next_hop,
        classes,
        fresh_reconfigure_key,
    })
}

/// The address a route to the client's leases goes via, `source` being the datagram's: a
/// direct client's own (link-local) source address, or the peer-address of a Lightweight
/// DHCPv6 Relay Agent (RFC 6221: link-address `::`) that is the only hop, so on our link. A
/// client behind an L3 relay has none: the relay routes to it, not us.
pub fn next_hop(relays: &[&RelayMessage], source: Ipv6Addr) -> Option<Ipv6Addr> {
    let hop = match relays {
        [] => source,
        [ldra] if ldra.link_address.is_unspecified() => ldra.peer_address,
        _ => return None,
    };
    crate::netif::is_link_local(&hop).then_some(hop)
}

/// The subnet of a relayed client, `source` being the address the Relay-Forw came from. First
/// a subnet's `relay-interface-ids`: the hops' Interface-IDs, inside out; then its
/// `relay-addresses`: each relay's own address, inside out (a relay's address is the next hop
/// out's peer-address, the outermost's the datagram's source). Then the link-address rule:
/// the innermost relay's link-address names the client's link;
/// when it is unspecified (a relay without a global address, or a Lightweight DHCPv6 Relay
/// Agent, RFC 6221, which always sends `::`) the other hops' addresses are tried, inside out:
/// the next relay out's link-address first. When no hop carries a global address at all (an
/// LDRA on the server's own link, alone or behind relays as address-less as itself) the link is
/// the one the request arrived on: `direct_subnet`, the receiving interface's (RFC 6221
/// section 7). A global address naming no subnet is an unknown link: `None`, never the
/// interface's subnet.
pub fn relayed_subnet(
    config: &Config,
    relays: &[&RelayMessage],
    source: Ipv6Addr,
    direct_subnet: Option<usize>,
) -> Option<usize> {
    let innermost = relays.last()?;
    let by_id = relays.iter().rev().find_map(|relay| {
        let id = relay.interface_id()?;
        config
            .subnets
            .iter()
            .position(|s| s.relay_interface_ids.iter().any(|x| x == id))
    });
    if by_id.is_some() {
        return by_id;
    }
    let by_address = (0..relays.len()).rev().find_map(|k| {
        let address = if k == 0 {
            source
        } else {
            relays[k - 1].peer_address
        };
        config
            .subnets
            .iter()
            .position(|s| s.relay_addresses.contains(&address))
    });
    if by_address.is_some() {
        return by_address;
    }
    let mut candidates = vec![innermost.link_address];
    for relay in relays.iter().rev() {
        candidates.push(relay.link_address);
        candidates.push(relay.peer_address);
    }
    let mut global = candidates
        .into_iter()
        .filter(|address| !address.is_unspecified() && !crate::netif::is_link_local(address))
        .peekable();
    if global.peek().is_none() {
        return if innermost.link_address.is_unspecified() {
            direct_subnet
        } else {
            None
        };
    }
    global.find_map(|address| subnet_containing(config, address))
}

/// Index of the subnet whose prefix contains `address`.
pub fn subnet_containing(config: &Config, address: Ipv6Addr) -> Option<usize> {
    config
        .subnets
        .iter()
        .position(|subnet| subnet.prefix.contains(&address))
}

/// Clients per interface, for `interface-client-limit`, and per line, for `line-client-limit`.
pub trait ClientLimit {
    /// True if `duid` already counts as a client on `interface`.
    fn is_known(&self, interface: &str, duid: &[u8]) -> bool;
    /// True if `interface` is at its limit of clients.
    fn is_full(&self, interface: &str) -> bool;
    /// True if `duid` already counts as a client on `line` (a stored line identity).
    fn line_is_known(&self, line: &[u8], duid: &[u8]) -> bool;
    /// True if `line` is at its limit of clients.
    fn line_is_full(&self, line: &[u8]) -> bool;
}

/// What the server should do with a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The client message to send back (before relay wrapping), or the drop reason.
    pub outcome: Result<Message, &'static str>,
    /// Lease changes to make durable before the reply goes out.
    pub changes: Vec<LeaseChange>,
    /// Events to publish once the changes are durable.
    pub events: Vec<LeaseEvent>,
    /// Offers to hold for this client (Advertise).
    pub offers: Vec<LeaseKey>,
}

impl Decision {
    fn drop(reason: &'static str) -> Self {
        Decision {
            outcome: Err(reason),
            changes: Vec::new(),
            events: Vec::new(),
            offers: Vec::new(),
        }
    }
}

/// Everything a decision depends on besides the request.
pub struct DecideInput<'a> {
    /// The configuration.
    pub config: &'a Config,
    /// Our DUID.
    pub server_duid: &'a Duid,
    /// The current leases (durable plus in flight).
    pub view: &'a dyn LeaseView,
    /// Per-interface client counts.
    pub clients: &'a dyn ClientLimit,
    /// Unix seconds.
    pub now: i64,
}

/// One IA of the request.
enum IaRequest {
    Na {
        iaid: u32,
        hints: Vec<Ipv6Addr>,
    },
    Pd {
        iaid: u32,
        hints: Vec<(Ipv6Addr, u8)>,
    },
    Ta {
        iaid: u32,
    },
}

fn ia_requests(message: &Message) -> Vec<IaRequest> {
    message
        .options
        .iter()
        .filter_map(|option| match option {
            DhcpOption::IaNa(ia) => Some(IaRequest::Na {
                iaid: ia.iaid,
                hints: ia.ia_addrs().map(|a| a.addr).collect(),
            }),
            DhcpOption::IaPd(ia) => Some(IaRequest::Pd {
                iaid: ia.iaid,
                hints: ia.ia_prefixes().map(|p| (p.prefix, p.prefix_len)).collect(),
            }),
            DhcpOption::IaTa(ia) => Some(IaRequest::Ta { iaid: ia.iaid }),
            _ => None,
        })
        .collect()
}

/// The decision for one classified request (RFC 8415 §16 validation, §18.3 processing).
pub fn decide(
    input: &DecideInput<'_>,
    allocator: &mut Allocator,
    request: &Classified,
) -> Result<Decision, StoreError> {
    let message = request.message();
    let client_id = message.client_id();
    let server_id = message.server_id();
    let ours = |id: Option<&Duid>| id.is_some_and(|id| id == input.server_duid);

    // §16: what each message type must and must not carry.
    match message.msg_type {
        MSG_SOLICIT | MSG_CONFIRM | MSG_REBIND => {
            if client_id.is_none() {
                return Ok(Decision::drop("missing_client_id"));
            }
            if server_id.is_some() {
                return Ok(Decision::drop("unexpected_server_id"));
            }
        }
        MSG_REQUEST | MSG_RENEW | MSG_RELEASE | MSG_DECLINE => {
            if client_id.is_none() {
                return Ok(Decision::drop("missing_client_id"));
            }
            if server_id.is_none() {
                return Ok(Decision::drop("missing_server_id"));
            }
            if !ours(server_id) {
                return Ok(Decision::drop("not_our_server_id"));
            }
        }
        MSG_INFORMATION_REQUEST => {
            if server_id.is_some() && !ours(server_id) {
                return Ok(Decision::drop("not_our_server_id"));
            }
            if message.count(OPT_IA_NA) + message.count(OPT_IA_TA) + message.count(OPT_IA_PD) > 0 {
                return Ok(Decision::drop("ia_in_information_request"));
            }
        }
        _ => return Ok(Decision::drop("not_a_client_message")),
    }

    // §18.4: a unicast message from a client we never gave a Server Unicast option.
    if request.unicast
        && matches!(
            message.msg_type,
            MSG_REQUEST | MSG_RENEW | MSG_RELEASE | MSG_DECLINE
        )
    {
        let mut reply = reply_header(MSG_REPLY, message, input.server_duid);
        reply.push(status(STATUS_USE_MULTICAST, "use multicast"));
        return Ok(Decision {
            outcome: Ok(reply),
            changes: Vec::new(),
            events: Vec::new(),
            offers: Vec::new(),
        });
    }

    let subnet = request.subnet.map(|index| &input.config.subnets[index]);
    if message.msg_type == MSG_INFORMATION_REQUEST {
        return Ok(information_reply(input, message, subnet, request.classes));
    }
    let Some(subnet) = subnet else {
        return Ok(Decision::drop("no_subnet_for_link"));
    };
    let duid = client_id.map(|d| d.as_bytes()).unwrap_or_default();
    let primary = request.subnet.unwrap_or_default();
    let shared: Vec<&Subnet> = input
        .config
        .shared_with(primary)
        .into_iter()
        .map(|index| &input.config.subnets[index])
        .collect();
    let line = input
        .config
        .line_identity
        .and_then(|kind| request.lines.line(kind))
        .map(|line| line.stored());

    // RFC 8415 section 20.4.1: the key is chosen once; a client holding one keeps it.
    let reconfigure = match request.fresh_reconfigure_key {
        Some(fresh) => {
            let mine = input.view.by_duid(duid)?;
            Some(crate::store::ReconfigureKey {
                key: super::reconfigure::kept_key(&mine).unwrap_or(fresh),
                reply_to: *request.source.ip(),
            })
        }
        None => None,
    };
    let mut ctx = Ctx {
        input,
        allocator,
        request,
        subnet,
        shared,
        duid,
        line,
        reconfigure,
        decision: Decision::drop(""),
        replies: Vec::new(),
    };
    match message.msg_type {
        MSG_SOLICIT => ctx.solicit(message)?,
        MSG_REQUEST => ctx.request(message)?,
        MSG_RENEW | MSG_REBIND => ctx.renew(message)?,
        MSG_RELEASE | MSG_DECLINE => ctx.release_or_decline(message)?,
        MSG_CONFIRM => ctx.confirm(message),
        _ => {}
    }
    Ok(ctx.decision)
}

struct Ctx<'a, 'b> {
    input: &'a DecideInput<'b>,
    allocator: &'a mut Allocator,
    request: &'a Classified,
    /// The subnet of the client's link (message-level options come from it).
    subnet: &'a Subnet,
    /// The subnets the client's leases may come from: `subnet`, then the rest of its shared
    /// network in file order.
    shared: Vec<&'a Subnet>,
    duid: &'a [u8],
    /// The client's line (`line-identity`), in the form stored with leases.
    line: Option<Vec<u8>>,
    /// The client's reconfigure key and where to reach it, when it sent Reconfigure Accept
    /// where `reconfigure` is on: stored with its leases, sent in the Reply.
    reconfigure: Option<crate::store::ReconfigureKey>,
    decision: Decision,
    /// The IA options of the reply, in request order.
    replies: Vec<DhcpOption>,
}

/// What happens to one IA.
enum IaOutcome {
    /// Leases to report, each with the lifetimes to put in the reply; T1 and T2 of the subnet
    /// they are in.
    Leases(Vec<(LeaseKey, u32, u32)>, (u32, u32)),
    /// A status inside the IA.
    Status(u16, &'static str),
}

/// The lifetimes of `subnet` for a reply's IA.
fn timers(subnet: &Subnet) -> (u32, u32) {
    (subnet.renew_timer, subnet.rebind_timer)
}

impl<'a> Ctx<'a, '_> {
    fn now(&self) -> i64 {
        self.input.now
    }

    /// The request's client: its DUID and its line.
    fn claimant(&self) -> Claimant<'_> {
        Claimant {
            duid: self.duid,
            lines: &self.request.lines,
        }
    }

    /// True if `key` may be this client's by its classes: its pool serves one of them (or
    /// names none), or it is the client's reservation.
    fn class_admits(&self, subnet: &Subnet, key: &LeaseKey) -> bool {
        subnet.admits(key, self.request.classes)
            || self
                .allocator
                .reservation(subnet, key.lease_type, &self.claimant())
                == Some(*key)
    }

    /// The subnet of the shared set with this id.
    fn shared_subnet(&self, id: u32) -> Option<&'a Subnet> {
        self.shared.iter().copied().find(|s| s.id == id)
    }

    /// The client's leases of one IA in this subnet (or its shared network) that it may still
    /// use: one the client names (`listed`, in a Renew or Rebind) first, then the active one,
    /// else the most recent one no one else took meanwhile; with the subnet it is in. Each lease
    /// is judged as the fast path judges it: by the lease alone (its DUID and the line it was
    /// served on, [`crate::binding_rule`]). `extending`: for a Renew or Rebind, which may extend
    /// a live lease in the peer's half of the pools.
    fn binding(
        &self,
        lease_type: LeaseType,
        iaid: u32,
        extending: bool,
        listed: &[LeaseKey],
    ) -> Result<Option<(Lease, &'a Subnet)>, StoreError> {
        let mut mine: Vec<(Lease, &'a Subnet)> = self
            .input
            .view
            .by_duid(self.duid)?
            .into_iter()
            .filter(|l| l.lease_type == lease_type && l.iaid == iaid)
            .filter(|l| l.state != LeaseState::Declined)
            .filter_map(|l| {
                let subnet = self.lease_subnet(&l)?;
                Some((l, subnet))
            })
            // Outside the pools, or reserved for another (never free for this client).
            .filter(|(l, subnet)| {
                matches!(
                    self.allocator.lease_standing(subnet, l),
                    Standing::Kept | Standing::SupersededByReservation
                )
            })
            // In a pool that no longer serves the client's classes (they are judged on each
            // message): not its binding any more, so a Renew gets NoBinding and the Request
            // that follows (RFC 8415 section 18.2.10.1) a lease of a pool that serves it.
            .filter(|(l, subnet)| self.class_admits(subnet, &l.key()))
            // In a redundant pair, a lease in the peer's half of the pools is the peer's: our
            // copy may be stale (a Release, an expiry the peer has not told us of yet, a cut
            // link), and the peer may have given it to another client since. So a Solicit or
            // Request gets one of ours; only a Renew or Rebind of a live one (the peer's client
            // failing over to us) extends it.
            .filter(|(l, subnet)| {
                self.allocator.owns(subnet, &l.key())
                    || self
                        .allocator
                        .reservation(subnet, l.lease_type, &self.claimant())
                        == Some(l.key())
                    || (extending && l.is_active(self.now()))
            })
            .collect();
        // A client may hold rows of one IA in both halves of a pair's pools (a stale copy of
        // the peer's, ours since): the one it renews is the one it was last told of.
        mine.sort_by_key(|(l, _)| (listed.contains(&l.key()), l.is_active(self.now()), l.cltt));
        while let Some((lease, subnet)) = mine.pop() {
            let lines = self.allocator.lines_of(&lease);
            let holder = Claimant {
                duid: &lease.duid,
                lines: &lines,
            };
            if self
                .allocator
                .is_free_for(self.input.view, &lease.key(), &holder, self.now())?
            {
                return Ok(Some((lease, subnet)));
            }
        }
        Ok(None)
    }

    /// The subnet of the shared set a lease of this client is in: its own `subnet_id` when that
    /// is one of them (a lease of a subnet that has since left the link is not).
    fn lease_subnet(&self, lease: &Lease) -> Option<&'a Subnet> {
        self.shared_subnet(lease.subnet_id)
    }

    /// True if the request is on a line and a new client there would be beyond
    /// `line-client-limit`: the client has no active lease in the shared set (a client with a
    /// binding keeps it, as the fast path keeps answering its renewals) and is not yet counted
    /// on the line. A new DUID that takes over the line's one client's lease (`line-sticky` with
    /// a limit of 1: a CPE that came back with a new DUID) replaces it rather than adds to it.
    fn over_line_limit(&self, types: &[LeaseType]) -> Result<bool, StoreError> {
        let clients = self.input.clients;
        let Some(line) = &self.line else {
            return Ok(false);
        };
        if !clients.line_is_full(line) || clients.line_is_known(line, self.duid) {
            return Ok(false);
        }
        let now = self.now();
        let active = self
            .input
            .view
            .by_duid(self.duid)?
            .iter()
            .any(|l| l.is_active(now) && self.lease_subnet(l).is_some());
        if active {
            return Ok(false);
        }
        if self.replaces_line_client() {
            for &lease_type in types {
                if self.sticky_lease(lease_type)?.is_some() {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }

    /// True when a new DUID on a line takes over the active leases of the line's client: sticky
    /// delegation with one client per line.
    fn replaces_line_client(&self) -> bool {
        let config = self.input.config;
        config.line_sticky && config.line_client_limit == Some(1)
    }

    /// Sticky delegation by line: the line's most recent lease of this type in the shared set
    /// that the client may have, when it has none of its own. Not one held by another live
    /// client: a lease still active goes to the new DUID only when the line has one client at
    /// most (`line-client-limit = 1`); one expired, released or reclaimed goes even within its
    /// grace period (kept for its old DUID, which is this line's, before). Never a declined one,
    /// one reserved for another client, outside the pools, or held in an offer for another.
    fn sticky_lease(
        &self,
        lease_type: LeaseType,
    ) -> Result<Option<(Lease, &'a Subnet)>, StoreError> {
        if !self.input.config.line_sticky {
            return Ok(None);
        }
        let Some(line) = &self.line else {
            return Ok(None);
        };
        let now = self.now();
        let client = self.claimant();
        let takes_active = self.replaces_line_client();
        let mut candidates: Vec<(Lease, &'a Subnet)> = Vec::new();
        for lease in self.input.view.by_line(line)? {
            // Another client's: the client's own leases are its bindings (any IAID).
            if lease.lease_type != lease_type
                || lease.state == LeaseState::Declined
                || lease.duid == self.duid
            {
                continue;
            }
            let Some(subnet) = self.lease_subnet(&lease) else {
                continue;
            };
            let key = lease.key();
            let live = lease.is_active(now);
            if (live && !takes_active)
                || self.allocator.reserved_for_another(&key, &client)
                || !self.allocator.in_subnet_pools(subnet, &key, &client)
                || !self.class_admits(subnet, &key)
                || self.allocator.offered_to_another(&key, self.duid, now)
            {
                continue;
            }
            candidates.push((lease, subnet));
        }
        Ok(candidates.into_iter().max_by_key(|(l, _)| l.cltt))
    }

    /// True if a new binding for this client would be beyond the interface's client limit.
    fn over_client_limit(&self) -> Result<bool, StoreError> {
        let clients = self.input.clients;
        if !clients.is_full(&self.request.interface)
            || clients.is_known(&self.request.interface, self.duid)
        {
            return Ok(false);
        }
        let now = self.now();
        let active = self
            .input
            .view
            .by_duid(self.duid)?
            .iter()
            .any(|l| l.is_active(now) && l.interface == self.request.interface);
        Ok(!active)
    }

    /// A lease of this request for `key` in `subnet`, assigned now with the subnet's lifetimes.
    fn lease(&self, key: LeaseKey, iaid: u32, previous: Option<&Lease>, subnet: &Subnet) -> Lease {
        let mut lease = Lease {
            address: key.address,
            prefix_len: key.prefix_len,
            lease_type: key.lease_type,
            duid: self.duid.to_vec(),
            iaid,
            subnet_id: subnet.id,
            preferred_lifetime: 0,
            valid_lifetime: 0,
            cltt: 0,
            expire: 0,
            state: LeaseState::Assigned,
            interface: self.request.interface.clone(),
            link_address: self.request.link_address,
            relay_id: self.request.relay_id.clone(),
            remote_id: self.request.remote_id.clone(),
            relay_info: self.request.relay_info.clone(),
            hostname: previous
                .filter(|p| p.duid == self.duid)
                .map(|p| p.hostname.clone())
                .unwrap_or_default(),
            line: self.line.clone().map(Vec::into_boxed_slice),
            // A relayed client's is in its relay chain (`relay_info`) already.
            link_layer: (!self.request.relayed())
                .then(|| self.request.lines.client_linklayer_address.clone())
                .flatten()
                .map(Vec::into_boxed_slice),
            next_hop: self.request.next_hop,
            reconfigure: self.reconfigure,
        };
        lease.assign(self.now(), subnet.preferred_lifetime, subnet.valid_lifetime);
        lease
    }

    /// Commits `key` in `subnet` to the client (new, or its existing binding extended).
    fn grant(&mut self, key: LeaseKey, iaid: u32, previous: Option<&Lease>, subnet: &Subnet) {
        let lease = self.lease(key, iaid, previous, subnet);
        let kind = match previous {
            Some(p) if p.key() == key && p.is_active(self.now()) && p.duid == self.duid => {
                LeaseEventKind::Renewed
            }
            _ => LeaseEventKind::Granted,
        };
        if let Some(old) = previous
            .filter(|p| p.key() == key && p.duid != self.duid && p.state == LeaseState::Assigned)
        {
            // Sticky delegation took the line's previous client's lease: that client's binding
            // ends (published first, so that followers drop it before the new one arrives).
            let mut gone = old.clone();
            gone.touch(self.now());
            gone.state = LeaseState::Released;
            self.decision.events.push(LeaseEvent {
                kind: LeaseEventKind::Released,
                lease: gone,
            });
        }
        self.allocator.drop_offer(&key);
        self.decision
            .changes
            .push(LeaseChange::Upsert(lease.clone()));
        self.decision.events.push(LeaseEvent { kind, lease });
    }

    /// Binding, else reservation, the line's previous lease (sticky delegation), hint, pool:
    /// the lease for one IA of a Solicit or Request, with its subnet. The pools of a shared
    /// network are tried in order (the one holding the client's hint first), the next one when
    /// a pool is exhausted.
    #[allow(clippy::type_complexity)]
    fn choose(
        &mut self,
        lease_type: LeaseType,
        iaid: u32,
        hints: &[(Ipv6Addr, u8)],
    ) -> Result<(Option<(LeaseKey, &'a Subnet)>, Option<Lease>), StoreError> {
        let existing = self.binding(lease_type, iaid, false, &[])?;
        if let Some((lease, subnet)) = &existing {
            // A reservation made since the lease was granted wins over the old lease.
            if self.allocator.lease_standing(subnet, lease) == Standing::Kept {
                return Ok((Some((lease.key(), *subnet)), existing.map(|(l, _)| l)));
            }
        }
        let existing = existing.map(|(l, _)| l);
        let now = self.now();
        let client = Claimant {
            duid: self.duid,
            lines: &self.request.lines,
        };
        for subnet in self.shared.iter().copied() {
            if let Some(key) = self.allocator.reservation(subnet, lease_type, &client) {
                if self
                    .allocator
                    .is_free_for(self.input.view, &key, &client, now)?
                {
                    return Ok((Some((key, subnet)), existing));
                }
            }
        }
        if existing.is_none() {
            if let Some((lease, subnet)) = self.sticky_lease(lease_type)? {
                return Ok((Some((lease.key(), subnet)), Some(lease)));
            }
        }
        let hint = hints.first().copied();
        let mut order = self.shared.clone();
        if let Some(at) =
            hint.and_then(|h| order.iter().position(|s| hint_in_pools(s, lease_type, h)))
        {
            let hinted = order.remove(at);
            order.insert(0, hinted);
        }
        for subnet in order {
            let picked = self.allocator.pick_for_classes(
                self.input.view,
                subnet,
                lease_type,
                &client,
                hint,
                now,
                self.request.classes,
            )?;
            if let Ok(key) = picked {
                return Ok((Some((key, subnet)), existing));
            }
        }
        Ok((None, existing))
    }

    fn solicit(&mut self, message: &Message) -> Result<(), StoreError> {
        let rapid = message.has_rapid_commit() && self.subnet.rapid_commit;
        let ias = ia_requests(message);
        if let Some(reason) = self.over_a_limit(&ias)? {
            self.decision = Decision::drop(reason);
            return Ok(());
        }
        for ia in &ias {
            let outcome = match ia {
                IaRequest::Na { iaid, hints } => {
                    let hints: Vec<_> = hints.iter().map(|a| (*a, 128)).collect();
                    self.offer_or_commit(LeaseType::Na, *iaid, &hints, rapid)?
                }
                IaRequest::Pd { iaid, hints } => {
                    self.offer_or_commit(LeaseType::Pd, *iaid, hints, rapid)?
                }
                IaRequest::Ta { .. } => {
                    IaOutcome::Status(STATUS_NO_ADDRS_AVAIL, "temporary addresses are not served")
                }
            };
            self.push_ia(ia, outcome);
        }
        let msg_type = if rapid { MSG_REPLY } else { MSG_ADVERTISE };
        let mut reply = reply_header(msg_type, message, self.input.server_duid);
        reply.options.append(&mut self.replies);
        if !rapid {
            if let Some(preference) = self.subnet.preference {
                reply.push(DhcpOption::Preference(preference));
            }
        } else {
            reply.push(DhcpOption::RapidCommit);
        }
        self.push_options(&mut reply, message);
        self.push_reconfigure_key(&mut reply);
        self.decision.outcome = Ok(reply);
        Ok(())
    }

    fn offer_or_commit(
        &mut self,
        lease_type: LeaseType,
        iaid: u32,
        hints: &[(Ipv6Addr, u8)],
        commit: bool,
    ) -> Result<IaOutcome, StoreError> {
        let (key, existing) = self.choose(lease_type, iaid, hints)?;
        let Some((key, subnet)) = key else {
            return Ok(no_avail(lease_type));
        };
        let takes_over = existing
            .as_ref()
            .is_some_and(|e| e.duid != self.duid && e.is_active(self.now()));
        if commit {
            self.grant(key, iaid, existing.as_ref(), subnet);
        } else if !takes_over {
            self.allocator.hold_offer(key, self.duid, self.now());
            self.decision.offers.push(key);
        }
        // (An active lease a new DUID on its line is to take over is not held for it: its
        // holder keeps renewing it, as the fast path lets it, until the Request.)
        Ok(IaOutcome::Leases(
            vec![(key, subnet.preferred_lifetime, subnet.valid_lifetime)],
            timers(subnet),
        ))
    }

    /// The drop reason when a request with `ias` would make a new client beyond a limit: of
    /// its interface (`interface-client-limit`), then of its line (`line-client-limit`).
    fn over_a_limit(&self, ias: &[IaRequest]) -> Result<Option<&'static str>, StoreError> {
        if ias.is_empty() {
            return Ok(None);
        }
        if self.over_client_limit()? {
            return Ok(Some("interface_client_limit"));
        }
        let types: Vec<LeaseType> = ias
            .iter()
            .filter_map(|ia| match ia {
                IaRequest::Na { .. } => Some(LeaseType::Na),
                IaRequest::Pd { .. } => Some(LeaseType::Pd),
                IaRequest::Ta { .. } => None,
            })
            .collect();
        if self.over_line_limit(&types)? {
            return Ok(Some("line_client_limit"));
        }
        Ok(None)
    }

    /// True if `address` is on the client's link: in the prefix of its subnet or of another
    /// subnet of the shared network.
    fn on_link(&self, address: &Ipv6Addr) -> bool {
        self.shared.iter().any(|s| s.prefix.contains(address))
    }

    fn request(&mut self, message: &Message) -> Result<(), StoreError> {
        let ias = ia_requests(message);
        if let Some(reason) = self.over_a_limit(&ias)? {
            self.decision = Decision::drop(reason);
            return Ok(());
        }
        for ia in &ias {
            let outcome = match ia {
                IaRequest::Na { iaid, hints } => {
                    if hints.iter().any(|a| !self.on_link(a)) {
                        // §18.3.2: an address not appropriate for the link.
                        IaOutcome::Status(STATUS_NOT_ON_LINK, "address not on this link")
                    } else {
                        let hints: Vec<_> = hints.iter().map(|a| (*a, 128)).collect();
                        self.offer_or_commit(LeaseType::Na, *iaid, &hints, true)?
                    }
                }
                IaRequest::Pd { iaid, hints } => {
                    self.offer_or_commit(LeaseType::Pd, *iaid, hints, true)?
                }
                IaRequest::Ta { .. } => {
                    IaOutcome::Status(STATUS_NO_ADDRS_AVAIL, "temporary addresses are not served")
                }
            };
            self.push_ia(ia, outcome);
        }
        let mut reply = reply_header(MSG_REPLY, message, self.input.server_duid);
        reply.options.append(&mut self.replies);
        self.push_options(&mut reply, message);
        self.push_reconfigure_key(&mut reply);
        self.decision.outcome = Ok(reply);
        Ok(())
    }

    /// Renew and Rebind (§18.3.4, §18.3.5): extend the bindings; addresses the client lists
    /// that are not (or no longer) its own come back with lifetimes 0.
    fn renew(&mut self, message: &Message) -> Result<(), StoreError> {
        let rebind = message.msg_type == MSG_REBIND;
        for ia in &ia_requests(message) {
            let outcome = match ia {
                IaRequest::Na { iaid, hints } => {
                    let hints: Vec<_> = hints.iter().map(|a| (*a, 128)).collect();
                    self.extend(LeaseType::Na, *iaid, &hints, rebind)?
                }
                IaRequest::Pd { iaid, hints } => {
                    self.extend(LeaseType::Pd, *iaid, hints, rebind)?
                }
                IaRequest::Ta { .. } => IaOutcome::Status(STATUS_NO_BINDING, "no binding"),
            };
            self.push_ia(ia, outcome);
        }
        let mut reply = reply_header(MSG_REPLY, message, self.input.server_duid);
        reply.options.append(&mut self.replies);
        self.push_options(&mut reply, message);
        self.push_reconfigure_key(&mut reply);
        self.decision.outcome = Ok(reply);
        Ok(())
    }

    fn extend(
        &mut self,
        lease_type: LeaseType,
        iaid: u32,
        hints: &[(Ipv6Addr, u8)],
        rebind: bool,
    ) -> Result<IaOutcome, StoreError> {
        let listed_keys: Vec<LeaseKey> = hints
            .iter()
            .map(|&(a, len)| match lease_type {
                LeaseType::Na => LeaseKey::na(a),
                LeaseType::Pd => LeaseKey::pd(a, len),
            })
            .collect();
        let (key, subnet) = match self.binding(lease_type, iaid, true, &listed_keys)? {
            Some((lease, subnet)) => {
                self.grant(lease.key(), iaid, Some(&lease), subnet);
                (lease.key(), subnet)
            }
            None => {
                // No binding (e.g. the lease was lost or cleared): give back what the client
                // lists when it is ours to hand out and free, as a Request would.
                let mut recovered = None;
                let client = Claimant {
                    duid: self.duid,
                    lines: &self.request.lines,
                };
                if !listed_keys.is_empty()
                    && !self.over_client_limit()?
                    && !self.over_line_limit(&[lease_type])?
                {
                    for key in &listed_keys {
                        // The subnet of the shared set whose pools (or reservations) hand it out.
                        let Some(subnet) = self.shared.iter().copied().find(|s| {
                            self.allocator.in_subnet_pools(s, key, &client)
                                && self.class_admits(s, key)
                        }) else {
                            continue;
                        };
                        // Ours to give back: the client's own live row (a peer's grant
                        // installed by leasequery carries no IAID), its reservation, or a slot
                        // of our own share of the pools (in a redundant pair the peer may have
                        // granted the other share's addresses meanwhile, even one this client
                        // once held: a lapsed row of the peer's share is the peer's).
                        let now = self.now();
                        let its_own = self
                            .input
                            .view
                            .get(key)?
                            .is_some_and(|row| row.duid == self.duid && row.is_active(now));
                        let ours = its_own
                            || self.allocator.reservation(subnet, key.lease_type, &client)
                                == Some(*key)
                            || self.allocator.owns(subnet, key);
                        if ours
                            && self.allocator.is_free_for(
                                self.input.view,
                                key,
                                &client,
                                self.now(),
                            )?
                        {
                            recovered = Some((*key, subnet));
                            break;
                        }
                    }
                }
                match recovered {
                    Some((key, subnet)) => {
                        self.grant(key, iaid, None, subnet);
                        (key, subnet)
                    }
                    None => {
                        let wrong_link: Vec<(LeaseKey, u32, u32)> = listed_keys
                            .iter()
                            .filter(|k| k.lease_type == LeaseType::Na && !self.on_link(&k.address))
                            .map(|k| (*k, 0, 0))
                            .collect();
                        if rebind && !wrong_link.is_empty() {
                            // §18.3.5: not appropriate for the link: lifetimes 0.
                            return Ok(IaOutcome::Leases(wrong_link, timers(self.subnet)));
                        }
                        return Ok(IaOutcome::Status(STATUS_NO_BINDING, "no binding"));
                    }
                }
            }
        };
        let mut leases = vec![(key, subnet.preferred_lifetime, subnet.valid_lifetime)];
        leases.extend(
            listed_keys
                .iter()
                .filter(|k| **k != key)
                .map(|k| (*k, 0, 0)),
        );
        Ok(IaOutcome::Leases(leases, timers(subnet)))
    }

    /// Release (§18.3.7) and Decline (§18.3.8).
    fn release_or_decline(&mut self, message: &Message) -> Result<(), StoreError> {
        let decline = message.msg_type == MSG_DECLINE;
        let now = self.now();
        let mine = self.input.view.by_duid(self.duid)?;
        let mut no_binding = Vec::new();
        for ia in ia_requests(message) {
            let (lease_type, iaid, listed): (LeaseType, u32, Vec<LeaseKey>) = match &ia {
                IaRequest::Na { iaid, hints } => (
                    LeaseType::Na,
                    *iaid,
                    hints.iter().map(|a| LeaseKey::na(*a)).collect(),
                ),
                IaRequest::Pd { iaid, hints } => (
                    LeaseType::Pd,
                    *iaid,
                    hints.iter().map(|(a, l)| LeaseKey::pd(*a, *l)).collect(),
                ),
                IaRequest::Ta { .. } => {
                    no_binding.push(ia);
                    continue;
                }
            };
            // The IA's assigned leases the client names (all of them when it names none).
            let targets: Vec<&Lease> = mine
                .iter()
                .filter(|l| {
                    l.lease_type == lease_type
                        && l.iaid == iaid
                        && l.state == LeaseState::Assigned
                        && (listed.is_empty() || listed.contains(&l.key()))
                })
                .collect();
            if targets.is_empty() {
                no_binding.push(ia);
                continue;
            }
            for lease in targets {
                let mut changed = lease.clone();
                let kind = if decline {
                    // Quarantine: the row's expiry becomes the end of the probation.
                    changed.assign(now, 0, self.input.config.decline_probation);
                    changed.state = LeaseState::Declined;
                    LeaseEventKind::Declined
                } else {
                    // The Release is the client's last transaction (leasequery's CLT_TIME
                    // counts from it); the expiry stays.
                    changed.touch(now);
                    changed.state = LeaseState::Released;
                    LeaseEventKind::Released
                };
                self.decision
                    .changes
                    .push(LeaseChange::Upsert(changed.clone()));
                self.decision.events.push(LeaseEvent {
                    kind,
                    lease: changed,
                });
            }
        }
        for ia in &no_binding {
            self.push_ia(ia, IaOutcome::Status(STATUS_NO_BINDING, "no binding"));
        }
        let mut reply = reply_header(MSG_REPLY, message, self.input.server_duid);
        reply.options.append(&mut self.replies);
        reply.push(status(
            STATUS_SUCCESS,
            if decline {
                "decline received"
            } else {
                "release received"
            },
        ));
        self.decision.outcome = Ok(reply);
        Ok(())
    }

    /// Confirm (§18.3.3): are the client's addresses on this link?
    fn confirm(&mut self, message: &Message) {
        let addresses: Vec<Ipv6Addr> = message
            .ia_nas()
            .flat_map(|ia| ia.ia_addrs().map(|a| a.addr))
            .collect();
        if addresses.is_empty() {
            self.decision = Decision::drop("confirm_without_addresses");
            return;
        }
        let on_link = addresses.iter().all(|a| self.on_link(a));
        let mut reply = reply_header(MSG_REPLY, message, self.input.server_duid);
        reply.push(if on_link {
            status(STATUS_SUCCESS, CONFIRM_ON_LINK_MESSAGE)
        } else {
            status(STATUS_NOT_ON_LINK, CONFIRM_NOT_ON_LINK_MESSAGE)
        });
        self.decision.outcome = Ok(reply);
    }

    /// The configured options of the reply, its IAs built: the subnet's (global merged in),
    /// then those of the pd-pools and pools of the prefixes and addresses granted, then those of
    /// their reservations, the most specific replacing a code; and Prefix Exclude inside each
    /// IAPREFIX of a pd-pool with one, when the ORO asks for it (RFC 6603 section 4.2: only
    /// then).
    fn push_options(&self, reply: &mut Message, request: &Message) {
        let wants_exclude = request.requests_option(crate::options::OPT_PD_EXCLUDE);
        let mut granted: Vec<(Ipv6Addr, Option<u8>)> = Vec::new();
        for option in reply.options.iter_mut() {
            match option {
                DhcpOption::IaPd(pd) => {
                    for sub in pd.options.iter_mut() {
                        let DhcpOption::IaPrefix(p) = sub else {
                            continue;
                        };
                        if p.valid == 0 {
                            continue;
                        }
                        granted.push((p.prefix, Some(p.prefix_len)));
                        let exclude = self
                            .shared
                            .iter()
                            .find_map(|s| s.pd_exclude_for(p.prefix, p.prefix_len));
                        if let (true, Some(x)) = (wants_exclude, exclude) {
                            p.options.push(DhcpOption::Unknown {
                                code: crate::options::OPT_PD_EXCLUDE,
                                data: x.body(p.prefix, p.prefix_len),
                            });
                        }
                    }
                }
                DhcpOption::IaNa(na) => granted.extend(na.options.iter().filter_map(|o| match o {
                    DhcpOption::IaAddr(a) if a.valid != 0 => Some((a.addr, None)),
                    _ => None,
                })),
                _ => {}
            }
        }
        let base = std::iter::once(&self.subnet.options[..]).chain(classes::option_levels(
            self.input.config,
            self.request.classes,
        ));
        let options = Subnet::reply_options(base, &self.shared, &granted);
        push_requested_options(reply, request, &options);
    }

    /// The Reply's last options when the client is given (or keeps) a reconfigure key and this
    /// Reply commits a lease of it that stores the key: Reconfigure Accept (the server tells the
    /// client to accept Reconfigure, RFC 8415 section 21.20), then the Authentication option
    /// with the key (section 20.4.1). A Reply that commits nothing hands out no key.
    fn push_reconfigure_key(&self, reply: &mut Message) {
        let Some(key) = self.reconfigure else {
            return;
        };
        let stored = self.decision.changes.iter().any(
            |change| matches!(change, LeaseChange::Upsert(lease) if lease.reconfigure.is_some()),
        );
        if stored {
            reply.push(DhcpOption::ReconfAccept);
            reply.push(super::reconfigure::key_option(
                &key.key,
                super::reconfigure::next_replay(),
            ));
        }
    }

    fn push_ia(&mut self, ia: &IaRequest, outcome: IaOutcome) {
        let option = match (ia, outcome) {
            (IaRequest::Na { iaid, .. }, IaOutcome::Leases(leases, (t1, t2))) => {
                DhcpOption::IaNa(IaNa {
                    iaid: *iaid,
                    t1,
                    t2,
                    options: leases
                        .into_iter()
                        .map(|(key, preferred, valid)| {
                            DhcpOption::IaAddr(IaAddr {
                                addr: key.address,
                                preferred,
                                valid,
                                options: Vec::new(),
                            })
                        })
                        .collect(),
                })
            }
            (IaRequest::Pd { iaid, .. }, IaOutcome::Leases(leases, (t1, t2))) => {
                DhcpOption::IaPd(IaPd {
                    iaid: *iaid,
                    t1,
                    t2,
                    options: leases
                        .into_iter()
                        .map(|(key, preferred, valid)| {
                            DhcpOption::IaPrefix(IaPrefix {
                                preferred,
                                valid,
                                prefix_len: key.prefix_len,
                                prefix: key.address,
                                options: Vec::new(),
                            })
                        })
                        .collect(),
                })
            }
            (IaRequest::Na { iaid, .. }, IaOutcome::Status(code, text)) => DhcpOption::IaNa(IaNa {
                iaid: *iaid,
                t1: 0,
                t2: 0,
                options: vec![status(code, text)],
            }),
            (IaRequest::Pd { iaid, .. }, IaOutcome::Status(code, text)) => DhcpOption::IaPd(IaPd {
                iaid: *iaid,
                t1: 0,
                t2: 0,
                options: vec![status(code, text)],
            }),
            (IaRequest::Ta { iaid }, outcome) => {
                let options = match outcome {
                    IaOutcome::Status(code, text) => vec![status(code, text)],
                    IaOutcome::Leases(..) => Vec::new(),
                };
                DhcpOption::IaTa(crate::proto::IaTa {
                    iaid: *iaid,
                    options,
                })
            }
        };
        self.replies.push(option);
    }
}

/// True if `hint` names a slot of one of `subnet`'s pools of `lease_type`.
fn hint_in_pools(subnet: &Subnet, lease_type: LeaseType, hint: (Ipv6Addr, u8)) -> bool {
    match lease_type {
        LeaseType::Na => subnet.pools.iter().any(|p| p.contains(hint.0)),
        LeaseType::Pd => subnet.pd_pools.iter().any(|p| p.prefix.contains(&hint.0)),
    }
}

fn no_avail(lease_type: LeaseType) -> IaOutcome {
    match lease_type {
        LeaseType::Na => IaOutcome::Status(STATUS_NO_ADDRS_AVAIL, "no addresses available"),
        LeaseType::Pd => IaOutcome::Status(STATUS_NO_PREFIX_AVAIL, "no prefixes available"),
    }
}

fn status(code: u16, message: &str) -> DhcpOption {
    DhcpOption::StatusCode(StatusCode {
        code,
        message: message.to_string(),
    })
}

/// Server ID, then the client's Client ID as received (when it sent one).
fn reply_header(msg_type: u8, request: &Message, server_duid: &Duid) -> Message {
    let mut reply = Message::new(msg_type, request.transaction_id)
        .with_option(DhcpOption::ServerId(server_duid.clone()));
    if let Some(client) = request.client_id() {
        reply.push(DhcpOption::ClientId(client.clone()));
    }
    reply
}

/// The configured `options` the reply carries, by the rule of [`crate::options::sent_in`]: each
/// listed in the client's ORO or `always-send`, in code order (docs/fastpath.md).
fn push_requested_options(reply: &mut Message, request: &Message, options: &[ConfiguredOption]) {
    let oro = request.oro().unwrap_or(&[]);
    for option in options {
        if crate::options::sent_in(option, request.msg_type, oro) {
            reply.push(option.to_option());
        }
    }
}

fn information_reply(
    input: &DecideInput<'_>,
    message: &Message,
    subnet: Option<&Subnet>,
    classes: ClassSet,
) -> Decision {
    let mut reply = reply_header(MSG_REPLY, message, input.server_duid);
    let options = subnet.map_or(&input.config.options[..], |s| &s.options[..]);
    let levels = std::iter::once(options).chain(classes::option_levels(input.config, classes));
    push_requested_options(&mut reply, message, &crate::options::merge(levels));
    Decision {
        outcome: Ok(reply),
        changes: Vec::new(),
        events: Vec::new(),
        offers: Vec::new(),
    }
}

/// The reply as sent: `reply` wrapped in a Relay-Repl for every Relay-Forw hop of the request,
/// innermost first (each echoing its hop's Interface-ID), then encoded.
pub fn wrap_reply(
    request: &Classified,
    reply: Message,
) -> Result<Vec<u8>, crate::proto::EncodeError> {
    let mut packet = Packet::Message(reply);
    for relay in request.relays().into_iter().rev() {
        packet = Packet::Relay(relay.reply_with(packet));
    }
    packet.encode()
}
