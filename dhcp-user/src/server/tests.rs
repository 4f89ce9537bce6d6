//! Tests of the decision pipeline (RFC 8415 behaviour, canonical reply layout) and of the
//! server around it (durability before reply, events, reclaim, clear, fast-path reports).

use std::collections::BTreeMap;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::sync::Arc;

use dhcp_common::dhcpv6::*;

use super::allocator::Allocator;
use super::handler::{classify, decide, wrap_reply, ClientLimit, DecideInput, Decision, Inbound};
use super::{ClearSelector, Server};
use crate::config::Config;
use crate::lease_events::LeaseEventKind;
use crate::proto::{
    decode, DhcpOption, Duid, IaAddr, IaNa, IaPd, IaPrefix, Message, OptionList, Packet,
    RelayMessage, RemoteId,
};
use crate::store::{Lease, LeaseChange, LeaseKey, LeaseState, LeaseStore, SqliteStore};

const CONFIG: &str = r#"
interfaces = ["eth1"]
grace-period = 100
decline-probation = 500
[[subnet]]
id = 7
prefix = "2001:db8:1::/64"
interface = "eth1"
pools = [{ low = "2001:db8:1::100", high = "2001:db8:1::1ff" }]
pd-pools = [{ prefix = "2001:db8:8000::/40", delegated-length = 56 }]
preferred-lifetime = 1000
valid-lifetime = 2000
renew-timer = 500
rebind-timer = 800
rapid-commit = true
preference = 200
dns-servers = ["2001:db8:1::53"]
domain-search = ["lab.example"]
information-refresh-time = 3600

[[subnet]]
id = 8
prefix = "2001:db8:2::/64"
pools = [{ low = "2001:db8:2::100", high = "2001:db8:2::101" }]
"#;

const NOW: i64 = 1_700_000_000;

struct NoLimit;
impl ClientLimit for NoLimit {
    fn is_known(&self, _: &str, _: &[u8]) -> bool {
        false
    }
    fn is_full(&self, _: &str) -> bool {
        false
    }
}

struct Full(Vec<u8>);
impl ClientLimit for Full {
    fn is_known(&self, _: &str, duid: &[u8]) -> bool {
        duid == self.0
    }
    fn is_full(&self, _: &str) -> bool {
        true
    }
}

fn server_duid() -> Duid {
    Duid::ll(1, &[2, 0, 0, 0, 0, 0xfe]).unwrap()
}

fn client(n: u8) -> Duid {
    Duid::ll(1, &[2, 0, 0, 0, 0, n]).unwrap()
}

fn addr(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn ia_na(iaid: u32, addrs: &[&str]) -> DhcpOption {
    DhcpOption::IaNa(IaNa {
        iaid,
        t1: 0,
        t2: 0,
        options: addrs
            .iter()
            .map(|a| {
                DhcpOption::IaAddr(IaAddr {
                    addr: addr(a),
                    preferred: 0,
                    valid: 0,
                    options: Vec::new(),
                })
            })
            .collect(),
    })
}

fn ia_pd(iaid: u32, prefix: Option<(&str, u8)>) -> DhcpOption {
    DhcpOption::IaPd(IaPd {
        iaid,
        t1: 0,
        t2: 0,
        options: prefix
            .map(|(p, len)| {
                vec![DhcpOption::IaPrefix(IaPrefix {
                    preferred: 0,
                    valid: 0,
                    prefix_len: len,
                    prefix: addr(p),
                    options: Vec::new(),
                })]
            })
            .unwrap_or_default(),
    })
}

fn msg(msg_type: u8, duid: &Duid, options: Vec<DhcpOption>) -> Message {
    let mut m = Message::new(msg_type, [1, 2, 3]).with_option(DhcpOption::ClientId(duid.clone()));
    m.options.extend(options);
    m
}

fn inbound(packet: &Packet, destination: &str) -> Inbound {
    Inbound {
        bytes: packet.encode().unwrap(),
        source: SocketAddrV6::new(addr("fe80::1"), 546, 0, 2),
        destination: addr(destination),
        ifindex: 2,
        interface: "eth1".into(),
    }
}

struct World {
    config: Config,
    leases: BTreeMap<LeaseKey, Lease>,
    allocator: Allocator,
}

impl World {
    fn new() -> Self {
        let config = Config::parse(CONFIG, "test.toml").unwrap();
        let allocator = Allocator::new(&config);
        World {
            config,
            leases: BTreeMap::new(),
            allocator,
        }
    }

    fn decide_with(
        &mut self,
        packet: Packet,
        dst: &str,
        limit: &dyn ClientLimit,
        now: i64,
    ) -> (Decision, Option<Packet>) {
        let request = classify(&self.config, &inbound(&packet, dst), Some(0)).unwrap();
        let input = DecideInput {
            config: &self.config,
            server_duid: &server_duid(),
            view: &self.leases,
            clients: limit,
            now,
        };
        let decision = decide(&input, &mut self.allocator, &request).unwrap();
        for change in &decision.changes {
            match change {
                LeaseChange::Upsert(lease) => {
                    self.leases.insert(lease.key(), lease.clone());
                }
                LeaseChange::Delete(key) => {
                    self.leases.remove(key);
                }
                LeaseChange::Renew { .. } => {}
            }
        }
        let wire = decision
            .outcome
            .clone()
            .ok()
            .map(|reply| decode(&wrap_reply(&request, reply).unwrap()).unwrap());
        (decision, wire)
    }

    fn decide(&mut self, message: Message) -> (Decision, Option<Message>) {
        let (decision, wire) = self.decide_with(message.into(), "ff02::1:2", &NoLimit, NOW);
        (decision, wire.map(|p| p.as_message().unwrap().clone()))
    }
}

fn codes(message: &Message) -> Vec<u16> {
    message.options.iter().map(DhcpOption::code).collect()
}

fn status_in(options: &[DhcpOption]) -> Option<u16> {
    options.status_code().map(|s| s.code)
}

const ORO: fn() -> DhcpOption = || {
    DhcpOption::Oro(vec![
        OPT_DNS_SERVERS,
        OPT_DOMAIN_LIST,
        OPT_INFORMATION_REFRESH_TIME,
    ])
};

#[test]
fn solicit_gets_advertise_in_canonical_order() {
    let mut world = World::new();
    let solicit = msg(
        MSG_SOLICIT,
        &client(1),
        vec![
            DhcpOption::ElapsedTime(0),
            ia_na(1, &[]),
            ia_pd(2, None),
            ORO(),
        ],
    );
    let (decision, reply) = world.decide(solicit);
    let reply = reply.unwrap();
    assert_eq!(reply.msg_type, MSG_ADVERTISE);
    assert_eq!(reply.transaction_id, [1, 2, 3]);
    assert_eq!(
        codes(&reply),
        vec![
            OPT_SERVERID,
            OPT_CLIENTID,
            OPT_IA_NA,
            OPT_IA_PD,
            OPT_PREFERENCE,
            OPT_DNS_SERVERS,
            OPT_DOMAIN_LIST
        ]
    );
    let na = reply.ia_nas().next().unwrap();
    assert_eq!((na.iaid, na.t1, na.t2), (1, 500, 800));
    let a = na.ia_addrs().next().unwrap();
    assert_eq!(
        (a.addr, a.preferred, a.valid),
        (addr("2001:db8:1::100"), 1000, 2000)
    );
    assert!(a.options.is_empty());
    let pd = reply.ia_pds().next().unwrap();
    let p = pd.ia_prefixes().next().unwrap();
    assert_eq!((p.prefix, p.prefix_len), (addr("2001:db8:8000::"), 56));
    // An Advertise commits nothing.
    assert!(decision.changes.is_empty());
    assert!(world.leases.is_empty());
}

#[test]
fn rapid_commit_solicit_gets_committed_reply() {
    let mut world = World::new();
    let solicit = msg(
        MSG_SOLICIT,
        &client(1),
        vec![ia_na(1, &[]), DhcpOption::RapidCommit],
    );
    let (decision, reply) = world.decide(solicit);
    let reply = reply.unwrap();
    assert_eq!(reply.msg_type, MSG_REPLY);
    assert_eq!(
        codes(&reply),
        vec![OPT_SERVERID, OPT_CLIENTID, OPT_IA_NA, OPT_RAPID_COMMIT]
    );
    assert_eq!(decision.changes.len(), 1);
    assert_eq!(decision.events[0].kind, LeaseEventKind::Granted);
    let lease = world.leases.values().next().unwrap();
    assert_eq!(lease.state, LeaseState::Assigned);
    assert_eq!((lease.subnet_id, lease.expire), (7, NOW + 2000));
}

#[test]
fn rfc8415_section16_validation_drops() {
    let mut world = World::new();
    let sid = DhcpOption::ServerId(server_duid());
    let other = DhcpOption::ServerId(client(9));
    let cases: Vec<(Message, &str)> = vec![
        (
            msg(MSG_SOLICIT, &client(1), vec![sid.clone(), ia_na(1, &[])]),
            "unexpected_server_id",
        ),
        (
            Message::new(MSG_SOLICIT, [0; 3]).with_option(ia_na(1, &[])),
            "missing_client_id",
        ),
        (
            msg(MSG_REQUEST, &client(1), vec![ia_na(1, &[])]),
            "missing_server_id",
        ),
        (
            msg(MSG_REQUEST, &client(1), vec![other.clone(), ia_na(1, &[])]),
            "not_our_server_id",
        ),
        (
            msg(MSG_RENEW, &client(1), vec![ia_na(1, &[])]),
            "missing_server_id",
        ),
        (
            msg(MSG_RENEW, &client(1), vec![other.clone(), ia_na(1, &[])]),
            "not_our_server_id",
        ),
        (
            msg(MSG_REBIND, &client(1), vec![sid.clone(), ia_na(1, &[])]),
            "unexpected_server_id",
        ),
        (
            msg(
                MSG_CONFIRM,
                &client(1),
                vec![sid.clone(), ia_na(1, &["2001:db8:1::5"])],
            ),
            "unexpected_server_id",
        ),
        (
            msg(MSG_RELEASE, &client(1), vec![ia_na(1, &[])]),
            "missing_server_id",
        ),
        (
            msg(MSG_DECLINE, &client(1), vec![other.clone(), ia_na(1, &[])]),
            "not_our_server_id",
        ),
        (
            msg(MSG_INFORMATION_REQUEST, &client(1), vec![ia_na(1, &[])]),
            "ia_in_information_request",
        ),
        (
            msg(MSG_INFORMATION_REQUEST, &client(1), vec![other]),
            "not_our_server_id",
        ),
    ];
    for (message, reason) in cases {
        let t = message.msg_type;
        let (decision, _) = world.decide(message);
        assert_eq!(decision.outcome, Err(reason), "message type {t}");
        assert!(decision.changes.is_empty());
    }
}

#[test]
fn request_renew_rebind_release_lifecycle() {
    let mut world = World::new();
    let sid = DhcpOption::ServerId(server_duid());
    let (_, adv) = world.decide(msg(MSG_SOLICIT, &client(1), vec![ia_na(1, &[])]));
    let offered = adv
        .unwrap()
        .ia_nas()
        .next()
        .unwrap()
        .ia_addrs()
        .next()
        .unwrap()
        .addr;
    let offered_s = offered.to_string();

    // Another client soliciting meanwhile is offered something else.
    let (_, adv2) = world.decide(msg(MSG_SOLICIT, &client(2), vec![ia_na(1, &[])]));
    assert_ne!(
        adv2.unwrap()
            .ia_nas()
            .next()
            .unwrap()
            .ia_addrs()
            .next()
            .unwrap()
            .addr,
        offered
    );

    let (decision, reply) = world.decide(msg(
        MSG_REQUEST,
        &client(1),
        vec![sid.clone(), ia_na(1, &[&offered_s]), ORO()],
    ));
    let reply = reply.unwrap();
    assert_eq!(reply.msg_type, MSG_REPLY);
    assert_eq!(
        codes(&reply),
        vec![
            OPT_SERVERID,
            OPT_CLIENTID,
            OPT_IA_NA,
            OPT_DNS_SERVERS,
            OPT_DOMAIN_LIST
        ]
    );
    assert_eq!(
        reply
            .ia_nas()
            .next()
            .unwrap()
            .ia_addrs()
            .next()
            .unwrap()
            .addr,
        offered
    );
    assert_eq!(decision.events[0].kind, LeaseEventKind::Granted);

    // Renew: the same address, extended; an address not ours comes back with lifetimes 0.
    let (decision, reply) = world.decide(msg(
        MSG_RENEW,
        &client(1),
        vec![sid.clone(), ia_na(1, &[&offered_s, "2001:db8:1::1ff"])],
    ));
    let na = reply.unwrap().ia_nas().next().unwrap().clone();
    let addrs: Vec<_> = na.ia_addrs().map(|a| (a.addr, a.valid)).collect();
    assert_eq!(addrs, vec![(offered, 2000), (addr("2001:db8:1::1ff"), 0)]);
    assert_eq!(decision.events[0].kind, LeaseEventKind::Renewed);

    // Rebind (no Server ID) extends too.
    let (_, reply) = world.decide(msg(MSG_REBIND, &client(1), vec![ia_na(1, &[&offered_s])]));
    assert_eq!(
        reply
            .unwrap()
            .ia_nas()
            .next()
            .unwrap()
            .ia_addrs()
            .next()
            .unwrap()
            .valid,
        2000
    );

    // Release: the lease is Released; the unknown IA gets NoBinding; message status Success.
    let (decision, reply) = world.decide(msg(
        MSG_RELEASE,
        &client(1),
        vec![
            sid.clone(),
            ia_na(1, &[&offered_s]),
            ia_na(9, &["2001:db8:1::150"]),
        ],
    ));
    let reply = reply.unwrap();
    assert_eq!(
        codes(&reply),
        vec![OPT_SERVERID, OPT_CLIENTID, OPT_IA_NA, OPT_STATUS_CODE]
    );
    assert_eq!(status_in(&reply.options), Some(STATUS_SUCCESS));
    let ia = reply.ia_nas().next().unwrap();
    assert_eq!(
        (ia.iaid, status_in(&ia.options)),
        (9, Some(STATUS_NO_BINDING))
    );
    assert_eq!(decision.events[0].kind, LeaseEventKind::Released);
    assert_eq!(
        world.leases[&LeaseKey::na(offered)].state,
        LeaseState::Released
    );

    // Within expiry + grace the released address is not given to another client ...
    let (_, adv) = world.decide(msg(MSG_SOLICIT, &client(3), vec![ia_na(1, &[&offered_s])]));
    assert_ne!(
        adv.unwrap()
            .ia_nas()
            .next()
            .unwrap()
            .ia_addrs()
            .next()
            .unwrap()
            .addr,
        offered
    );
    // ... but the client that had it gets it back.
    let (_, adv) = world.decide(msg(MSG_SOLICIT, &client(1), vec![ia_na(1, &[])]));
    assert_eq!(
        adv.unwrap()
            .ia_nas()
            .next()
            .unwrap()
            .ia_addrs()
            .next()
            .unwrap()
            .addr,
        offered
    );
}

/// A Release is the client's last transaction: its time becomes the lease's CLT (leasequery's
/// CLT_TIME counts from it, not from the last Renew), while the expiry does not move.
#[test]
fn release_moves_the_last_transaction_time_but_not_the_expiry() {
    let mut world = World::new();
    let sid = DhcpOption::ServerId(server_duid());
    let (_, reply) = world.decide(msg(
        MSG_SOLICIT,
        &client(1),
        vec![ia_na(1, &[]), DhcpOption::RapidCommit],
    ));
    let address = reply
        .unwrap()
        .ia_nas()
        .next()
        .unwrap()
        .ia_addrs()
        .next()
        .unwrap()
        .addr;
    let granted = world.leases[&LeaseKey::na(address)].clone();
    assert_eq!(granted.cltt, NOW);
    let later = NOW + 300;
    let packet: Packet = msg(
        MSG_RELEASE,
        &client(1),
        vec![sid, ia_na(1, &[&address.to_string()])],
    )
    .into();
    let (decision, _) = world.decide_with(packet, "ff02::1:2", &NoLimit, later);
    assert_eq!(decision.events[0].kind, LeaseEventKind::Released);
    let released = &world.leases[&LeaseKey::na(address)];
    assert_eq!(released.state, LeaseState::Released);
    assert_eq!(released.cltt, later, "CLT is the Release");
    assert_eq!(released.expire, granted.expire, "the expiry stays");
    assert_eq!(
        released.cltt + i64::from(released.preferred_lifetime),
        granted.cltt + i64::from(granted.preferred_lifetime),
        "the end of the preferred lifetime stays"
    );
    assert!(released.validate().is_ok());
}

#[test]
fn renew_without_binding_and_taken_address_is_no_binding() {
    let mut world = World::new();
    let sid = DhcpOption::ServerId(server_duid());
    world.decide(msg(
        MSG_SOLICIT,
        &client(1),
        vec![ia_na(1, &[]), DhcpOption::RapidCommit],
    ));
    let taken = world.leases.keys().next().unwrap().address.to_string();
    let (decision, reply) = world.decide(msg(
        MSG_RENEW,
        &client(2),
        vec![sid.clone(), ia_na(4, &[&taken])],
    ));
    let ia = reply.unwrap().ia_nas().next().unwrap().clone();
    assert_eq!(status_in(&ia.options), Some(STATUS_NO_BINDING));
    assert!(decision.changes.is_empty());
    // A free address in the pool is given back (a lost lease recovers).
    let (decision, reply) = world.decide(msg(
        MSG_RENEW,
        &client(2),
        vec![sid, ia_na(4, &["2001:db8:1::180"])],
    ));
    let ia = reply.unwrap().ia_nas().next().unwrap().clone();
    assert_eq!(ia.ia_addrs().next().unwrap().addr, addr("2001:db8:1::180"));
    assert_eq!(decision.events[0].kind, LeaseEventKind::Granted);
}

#[test]
fn decline_quarantines_the_address() {
    let mut world = World::new();
    let sid = DhcpOption::ServerId(server_duid());
    world.decide(msg(
        MSG_SOLICIT,
        &client(1),
        vec![ia_na(1, &[]), DhcpOption::RapidCommit],
    ));
    let key = *world.leases.keys().next().unwrap();
    let a = key.address.to_string();
    let (decision, reply) = world.decide(msg(MSG_DECLINE, &client(1), vec![sid, ia_na(1, &[&a])]));
    assert_eq!(status_in(&reply.unwrap().options), Some(STATUS_SUCCESS));
    assert_eq!(decision.events[0].kind, LeaseEventKind::Declined);
    let lease = &world.leases[&key];
    assert_eq!(
        (lease.state, lease.expire),
        (LeaseState::Declined, NOW + 500)
    );
    // Nobody, not even the decliner, gets it during the probation.
    for n in [1, 2] {
        let (_, adv) = world.decide(msg(MSG_SOLICIT, &client(n), vec![ia_na(1, &[&a])]));
        assert_ne!(
            adv.unwrap()
                .ia_nas()
                .next()
                .unwrap()
                .ia_addrs()
                .next()
                .unwrap()
                .addr,
            key.address
        );
    }
}

#[test]
fn unicast_request_gets_use_multicast() {
    let mut world = World::new();
    let request = msg(
        MSG_REQUEST,
        &client(1),
        vec![DhcpOption::ServerId(server_duid()), ia_na(1, &[])],
    );
    let (decision, reply) = world.decide_with(request.into(), "2001:db8:1::1", &NoLimit, NOW);
    let reply = reply.unwrap().as_message().unwrap().clone();
    assert_eq!(
        codes(&reply),
        vec![OPT_SERVERID, OPT_CLIENTID, OPT_STATUS_CODE]
    );
    assert_eq!(status_in(&reply.options), Some(STATUS_USE_MULTICAST));
    assert!(decision.changes.is_empty());
}

#[test]
fn confirm_on_and_off_link() {
    let mut world = World::new();
    let (_, reply) = world.decide(msg(
        MSG_CONFIRM,
        &client(1),
        vec![ia_na(1, &["2001:db8:1::5"])],
    ));
    assert_eq!(status_in(&reply.unwrap().options), Some(STATUS_SUCCESS));
    let (_, reply) = world.decide(msg(
        MSG_CONFIRM,
        &client(1),
        vec![ia_na(1, &["2001:db8:9::5"])],
    ));
    assert_eq!(status_in(&reply.unwrap().options), Some(STATUS_NOT_ON_LINK));
    let (decision, _) = world.decide(msg(MSG_CONFIRM, &client(1), vec![ia_na(1, &[])]));
    assert!(decision.outcome.is_err());
}

#[test]
fn request_with_off_link_address_is_not_on_link() {
    let mut world = World::new();
    let request = msg(
        MSG_REQUEST,
        &client(1),
        vec![
            DhcpOption::ServerId(server_duid()),
            ia_na(1, &["2001:db8:9::5"]),
        ],
    );
    let (decision, reply) = world.decide(request);
    let ia = reply.unwrap().ia_nas().next().unwrap().clone();
    assert_eq!(status_in(&ia.options), Some(STATUS_NOT_ON_LINK));
    assert!(decision.changes.is_empty());
}

#[test]
fn information_request_reply_carries_only_ids_and_requested_options() {
    let mut world = World::new();
    let (_, reply) = world.decide(msg(
        MSG_INFORMATION_REQUEST,
        &client(1),
        vec![DhcpOption::ElapsedTime(0), ORO()],
    ));
    let reply = reply.unwrap();
    assert_eq!(
        codes(&reply),
        vec![
            OPT_SERVERID,
            OPT_CLIENTID,
            OPT_DNS_SERVERS,
            OPT_DOMAIN_LIST,
            OPT_INFORMATION_REFRESH_TIME
        ]
    );
    // Without a Client ID the reply has none either; without an ORO no options.
    let (_, reply) = world.decide(Message::new(MSG_INFORMATION_REQUEST, [4, 5, 6]));
    assert_eq!(codes(&reply.unwrap()), vec![OPT_SERVERID]);
}

#[test]
fn exhausted_pools_give_status_inside_the_ia() {
    let mut world = World::new();
    // Subnet 8 has two addresses and no PD pool: reach it through a relay.
    let mut last = None;
    for n in 1..=3u8 {
        let inner = msg(
            MSG_SOLICIT,
            &client(n),
            vec![ia_na(1, &[]), ia_pd(2, None), DhcpOption::RapidCommit],
        );
        let relay = RelayMessage {
            msg_type: MSG_RELAY_FORW,
            hop_count: 0,
            link_address: addr("2001:db8:2::1"),
            peer_address: addr("fe80::99"),
            options: vec![DhcpOption::RelayMsg(Box::new(inner.into()))],
        };
        let (_, reply) = world.decide_with(relay.into(), "2001:db8:1::1", &NoLimit, NOW);
        last = reply;
    }
    let reply = last.unwrap();
    let inner = reply.innermost_message().unwrap();
    // Subnet 8 does not allow rapid commit: Advertise.
    assert_eq!(inner.msg_type, MSG_ADVERTISE);
    let na = inner.ia_nas().next().unwrap();
    assert_eq!(status_in(&na.options), Some(STATUS_NO_ADDRS_AVAIL));
    let pd = inner.ia_pds().next().unwrap();
    assert_eq!(status_in(&pd.options), Some(STATUS_NO_PREFIX_AVAIL));
}

#[test]
fn relayed_two_hops_reply_nests_and_echoes_interface_id() {
    let mut world = World::new();
    let inner = msg(
        MSG_SOLICIT,
        &client(1),
        vec![ia_na(1, &[]), DhcpOption::RapidCommit],
    );
    let hop1 = RelayMessage {
        msg_type: MSG_RELAY_FORW,
        hop_count: 0,
        link_address: addr("2001:db8:1::2"),
        peer_address: addr("fe80::1234"),
        options: vec![
            DhcpOption::InterfaceId(b"port-7".to_vec()),
            DhcpOption::RemoteId(RemoteId {
                enterprise: 4491,
                remote_id: b"cpe-1".to_vec(),
            }),
            DhcpOption::RelayMsg(Box::new(inner.into())),
        ],
    };
    let hop2 = RelayMessage {
        msg_type: MSG_RELAY_FORW,
        hop_count: 1,
        link_address: Ipv6Addr::UNSPECIFIED,
        peer_address: addr("2001:db8:5::2"),
        options: vec![
            DhcpOption::RelayId(client(77)),
            DhcpOption::RelayMsg(Box::new(hop1.into())),
            DhcpOption::InterfaceId(b"uplink".to_vec()),
        ],
    };
    let (decision, reply) = world.decide_with(hop2.clone().into(), "2001:db8:1::1", &NoLimit, NOW);
    let outer = reply.unwrap().as_relay().unwrap().clone();
    assert_eq!(outer.msg_type, MSG_RELAY_REPL);
    assert_eq!(
        (outer.hop_count, outer.peer_address),
        (1, addr("2001:db8:5::2"))
    );
    assert_eq!(
        outer
            .options
            .iter()
            .map(DhcpOption::code)
            .collect::<Vec<_>>(),
        vec![OPT_INTERFACE_ID, OPT_RELAY_MSG]
    );
    assert_eq!(outer.interface_id(), Some(&b"uplink"[..]));
    let Some(Packet::Relay(middle)) = outer.relay_msg() else {
        panic!("no inner relay")
    };
    assert_eq!(
        (middle.msg_type, middle.link_address),
        (MSG_RELAY_REPL, addr("2001:db8:1::2"))
    );
    assert_eq!(
        middle
            .options
            .iter()
            .map(DhcpOption::code)
            .collect::<Vec<_>>(),
        vec![OPT_INTERFACE_ID, OPT_RELAY_MSG]
    );
    assert_eq!(middle.interface_id(), Some(&b"port-7"[..]));
    let Some(Packet::Message(client_reply)) = middle.relay_msg() else {
        panic!("no reply")
    };
    assert_eq!(client_reply.msg_type, MSG_REPLY);
    // The lease keeps the relay data leasequery needs.
    let lease = &decision.events[0].lease;
    assert_eq!(lease.link_address, addr("2001:db8:1::2"));
    assert_eq!(lease.relay_id.as_deref(), Some(client(77).as_bytes()));
    let mut remote = 4491u32.to_be_bytes().to_vec();
    remote.extend_from_slice(b"cpe-1");
    assert_eq!(lease.remote_id, Some(remote));
    assert_eq!(lease.relay_info, Packet::from(hop2).encode().unwrap());
}

#[test]
fn relayed_without_known_link_is_dropped() {
    let mut world = World::new();
    let inner = msg(MSG_SOLICIT, &client(1), vec![ia_na(1, &[])]);
    let relay = RelayMessage {
        msg_type: MSG_RELAY_FORW,
        hop_count: 0,
        link_address: addr("2001:db8:77::1"),
        peer_address: addr("fe80::1"),
        options: vec![DhcpOption::RelayMsg(Box::new(inner.into()))],
    };
    let (decision, _) = world.decide_with(relay.into(), "2001:db8:1::1", &NoLimit, NOW);
    assert_eq!(decision.outcome, Err("no_subnet_for_link"));
}

#[test]
fn interface_client_limit_refuses_only_new_clients() {
    let mut world = World::new();
    let known = client(1);
    let limit = Full(known.as_bytes().to_vec());
    let solicit = |d: &Duid| Packet::from(msg(MSG_SOLICIT, d, vec![ia_na(1, &[])]));
    let (decision, _) = world.decide_with(solicit(&client(2)), "ff02::1:2", &limit, NOW);
    assert_eq!(decision.outcome, Err("interface_client_limit"));
    let (decision, _) = world.decide_with(solicit(&known), "ff02::1:2", &limit, NOW);
    assert!(decision.outcome.is_ok());
}

#[test]
fn classify_rejects_non_client_messages() {
    let config = Config::parse(CONFIG, "t").unwrap();
    let reply = Message::new(MSG_REPLY, [0; 3]).with_option(DhcpOption::ClientId(client(1)));
    let err = classify(&config, &inbound(&reply.into(), "ff02::1:2"), Some(0)).unwrap_err();
    assert_eq!(err.reason(), "not_a_client_message");
    let garbage = Inbound {
        bytes: vec![1, 2],
        ..inbound(&Message::new(1, [0; 3]).into(), "ff02::1:2")
    };
    assert_eq!(
        classify(&config, &garbage, Some(0)).unwrap_err().reason(),
        "truncated_header"
    );
}

// ---- the server around the decisions ----

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dhcp-user-server-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn open_server(dir: &std::path::Path) -> Arc<Server> {
    let mut config = Config::parse(CONFIG, "t").unwrap();
    config.state_dir = dir.to_path_buf();
    let server = Server::open(config, &[]).unwrap();
    server.set_direct_subnet("eth1", Some(0));
    server
}

fn handle_bytes(
    server: &Server,
    message: Message,
) -> impl std::future::Future<Output = Option<Vec<u8>>> + '_ {
    let inbound = inbound(&message.into(), "ff02::1:2");
    async move { server.handle(&inbound).await }
}

#[tokio::test]
async fn reply_is_sent_only_after_the_lease_is_durable_and_duid_survives_restart() {
    let dir = temp_dir("durable");
    let server = open_server(&dir);
    let duid = server.server_duid().clone();
    let mut events = server.subscribe();
    let solicit = msg(
        MSG_SOLICIT,
        &client(1),
        vec![ia_na(1, &[]), ia_pd(2, None), DhcpOption::RapidCommit],
    );
    let reply = handle_bytes(&server, solicit).await.unwrap();
    // The reply exists: the leases are already in the database, seen by a fresh connection.
    let other = SqliteStore::open(dir.join(super::LEASE_DB_FILE)).unwrap();
    let reply = decode(&reply).unwrap();
    let address = reply
        .as_message()
        .unwrap()
        .ia_nas()
        .next()
        .unwrap()
        .ia_addrs()
        .next()
        .unwrap()
        .addr;
    assert_eq!(
        other.get_by_address(address).unwrap().unwrap().state,
        LeaseState::Assigned
    );
    assert_eq!(events.recv().await.unwrap().kind, LeaseEventKind::Granted);
    assert_eq!(events.recv().await.unwrap().kind, LeaseEventKind::Granted);
    let snapshot = server.stats().snapshot();
    assert_eq!(snapshot.received["solicit"], 1);
    assert_eq!(snapshot.sent["reply"], 1);
    drop(server);
    let again = open_server(&dir);
    assert_eq!(again.server_duid(), &duid);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn malformed_input_is_counted_by_reason() {
    let dir = temp_dir("malformed");
    let server = open_server(&dir);
    let mut bad = inbound(&Message::new(1, [0; 3]).into(), "ff02::1:2");
    for bytes in [
        vec![],
        vec![1, 0],
        vec![1, 0, 0, 0, 0, 1, 0, 200, 1],
        vec![200, 0, 0, 0],
    ] {
        bad.bytes = bytes;
        assert!(server.handle(&bad).await.is_none());
    }
    let drops = server.stats().snapshot().drops;
    assert_eq!(drops["empty_message"], 1);
    assert_eq!(drops["truncated_header"], 1);
    assert_eq!(drops["option_length_past_end"], 1);
    assert_eq!(drops["unknown_message_type"], 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn reclaim_clear_and_fast_path_renewal() {
    let dir = temp_dir("reclaim");
    let server = open_server(&dir);
    let solicit = msg(
        MSG_SOLICIT,
        &client(1),
        vec![ia_na(1, &[]), DhcpOption::RapidCommit],
    );
    handle_bytes(&server, solicit).await.unwrap();
    let lease = server
        .store()
        .find(&crate::store::LeaseFilter::All, None, 10)
        .unwrap()
        .remove(0);
    let mut events = server.subscribe();

    // A fast-path renewal moves the expiry forward (durable after the writer's short delay).
    let expires = lease.expire + 100;
    assert_eq!(
        server
            .apply_fast_path_renewal(
                &lease.duid,
                expires,
                &[crate::store::LeaseType::Na, crate::store::LeaseType::Pd]
            )
            .unwrap(),
        1
    );
    assert_eq!(events.recv().await.unwrap().kind, LeaseEventKind::Renewed);
    server.writer().flush().await.unwrap();
    assert_eq!(
        server.store().get(&lease.key()).unwrap().unwrap().expire,
        expires
    );

    // Past its expiry the timer reclaims it.
    assert_eq!(server.reclaim_expired(expires + 1, 100).await.unwrap(), 1);
    let reclaimed = server.store().get(&lease.key()).unwrap().unwrap();
    assert_eq!(reclaimed.state, LeaseState::ExpiredReclaimed);
    assert_eq!(events.recv().await.unwrap().kind, LeaseEventKind::Expired);

    // Clear removes it.
    assert_eq!(
        server
            .clear(&ClearSelector::Address(lease.address))
            .await
            .unwrap(),
        1
    );
    assert!(server.store().get(&lease.key()).unwrap().is_none());
    assert_eq!(events.recv().await.unwrap().kind, LeaseEventKind::Cleared);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn leasequery_over_udp_is_answered_by_the_leasequery_module() {
    let dir = temp_dir("leasequery");
    let server = open_server(&dir);
    let query = Message::new(MSG_LEASEQUERY, [7, 7, 7])
        .with_option(DhcpOption::ClientId(client(50)))
        .with_option(DhcpOption::LqQuery(crate::proto::LqQuery {
            query_type: QUERY_BY_ADDRESS,
            link_address: Ipv6Addr::UNSPECIFIED,
            options: vec![DhcpOption::IaAddr(IaAddr {
                addr: addr("2001:db8:1::100"),
                preferred: 0,
                valid: 0,
                options: Vec::new(),
            })],
        }));
    let reply = handle_bytes(&server, query)
        .await
        .expect("a LEASEQUERY-REPLY");
    let reply = decode(&reply).unwrap();
    let reply = reply.as_message().unwrap();
    assert_eq!(reply.msg_type, MSG_LEASEQUERY_REPLY);
    assert_eq!(reply.transaction_id, [7, 7, 7]);
    // The test config allows nobody: the module refuses, inside a proper reply.
    assert_eq!(
        reply.status_code().map(|s| s.code),
        Some(STATUS_NOT_ALLOWED)
    );
    let snapshot = server.stats().snapshot();
    assert_eq!(snapshot.received["leasequery"], 1);
    assert_eq!(snapshot.sent["leasequery-reply"], 1);
    let _ = std::fs::remove_dir_all(&dir);
}
