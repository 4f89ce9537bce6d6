//! Shared networks, reservations by line, sticky delegation by line and the per-line limit.

use std::collections::{HashMap, HashSet};

use super::*;
use crate::config::LineKind;
use crate::line::LineIds;

/// Two subnets on one link (a shared network) with one address and two prefixes in the first;
/// reservations by Remote-ID and by option 79; lines known by Remote-ID.
const LINES: &str = r#"
grace-period = 100
line-identity = "remote-id"
[[subnet]]
id = 1
prefix = "2001:db8:1::/64"
shared-network = "campus"
pools = [{ low = "2001:db8:1::100", high = "2001:db8:1::100" }]
pd-pools = [{ prefix = "2001:db8:8000::/55", delegated-length = 56 }]
preferred-lifetime = 1000
valid-lifetime = 2000
rapid-commit = true
reservations = [
  { remote-id = { enterprise = 3561, id = "aa01" }, prefix = "2001:db8:99::/56" },
  { client-linklayer-address = "02:00:00:00:00:79", address = "2001:db8:1::79" },
]
[[subnet]]
id = 2
prefix = "2001:db8:2::/64"
shared-network = "campus"
pools = [{ low = "2001:db8:2::100", high = "2001:db8:2::1ff" }]
preferred-lifetime = 3000
valid-lifetime = 4000
rapid-commit = true
renew-timer = 1500
rebind-timer = 2400
"#;

/// The clients per line of `world`'s active leases, with `limit` per line.
struct Lines {
    limit: usize,
    per_line: HashMap<Vec<u8>, HashSet<Vec<u8>>>,
}

impl Lines {
    fn of(world: &World, limit: usize, now: i64) -> Lines {
        let mut per_line: HashMap<Vec<u8>, HashSet<Vec<u8>>> = HashMap::new();
        for lease in world.leases.values().filter(|l| l.is_active(now)) {
            if let Some(line) = &lease.line {
                per_line
                    .entry(line.to_vec())
                    .or_default()
                    .insert(lease.duid.clone());
            }
        }
        Lines { limit, per_line }
    }
}

impl ClientLimit for Lines {
    fn is_known(&self, _: &str, _: &[u8]) -> bool {
        false
    }
    fn is_full(&self, _: &str) -> bool {
        false
    }
    fn line_is_known(&self, line: &[u8], duid: &[u8]) -> bool {
        self.per_line.get(line).is_some_and(|c| c.contains(duid))
    }
    fn line_is_full(&self, line: &[u8]) -> bool {
        self.per_line.get(line).map_or(0, HashSet::len) >= self.limit
    }
}

fn world_of(text: &str) -> World {
    let config = Config::parse(text, "lines.toml").unwrap();
    let allocator = Allocator::new(&config);
    World {
        config,
        leases: BTreeMap::new(),
        allocator,
    }
}

/// `message` from a relay on 2001:db8:1::/64, with this Remote-ID (enterprise 3561) and client
/// link-layer address (option 79), when given.
fn relayed(message: Message, remote: Option<&[u8]>, mac: Option<[u8; 6]>) -> Packet {
    let mut options = Vec::new();
    if let Some(id) = remote {
        options.push(DhcpOption::RemoteId(RemoteId {
            enterprise: 3561,
            remote_id: id.to_vec(),
        }));
    }
    if let Some(mac) = mac {
        let mut data = vec![0, 1];
        data.extend_from_slice(&mac);
        options.push(DhcpOption::Unknown {
            code: OPT_CLIENT_LINKLAYER_ADDR,
            data,
        });
    }
    options.push(DhcpOption::RelayMsg(Box::new(message.into())));
    RelayMessage {
        msg_type: MSG_RELAY_FORW,
        hop_count: 0,
        link_address: addr("2001:db8:1::1"),
        peer_address: addr("fe80::99"),
        options,
    }
    .into()
}

/// A Solicit with Rapid Commit for `ias`.
fn rapid(n: u8, ias: Vec<DhcpOption>) -> Message {
    let mut options = ias;
    options.push(DhcpOption::RapidCommit);
    msg(MSG_SOLICIT, &client(n), options)
}

/// The client reply inside a relayed reply.
fn inner(reply: Option<Packet>) -> Message {
    match reply.expect("a reply") {
        Packet::Relay(relay) => match relay.relay_msg() {
            Some(Packet::Message(m)) => m.clone(),
            _ => panic!("no client message in the Relay-Repl"),
        },
        Packet::Message(m) => m,
    }
}

fn na_of(reply: &Message) -> (Ipv6Addr, u32, u32) {
    let ia = reply.ia_nas().next().expect("an IA_NA");
    let address = ia.ia_addrs().next().expect("an address");
    assert!(address.valid > 0, "{reply:?}");
    (address.addr, ia.t1, address.valid)
}

fn pd_of(reply: &Message) -> (Ipv6Addr, u8) {
    let ia = reply.ia_pds().next().expect("an IA_PD");
    let prefix = ia.ia_prefixes().next().expect("a prefix");
    assert!(prefix.valid > 0, "{reply:?}");
    (prefix.prefix, prefix.prefix_len)
}

/// A shared network moves to its second subnet when the first pool is full; the lease gets the
/// second subnet's lifetimes, and renews through the same relay.
#[test]
fn shared_network_moves_to_the_next_subnet_when_a_pool_is_full() {
    let mut world = world_of(LINES);
    let (_, first) = world.decide_with(
        relayed(rapid(1, vec![ia_na(1, &[])]), None, None),
        "2001:db8:1::1",
        &NoLimit,
        NOW,
    );
    assert_eq!(na_of(&inner(first)).0, addr("2001:db8:1::100"));
    let (decision, second) = world.decide_with(
        relayed(rapid(2, vec![ia_na(1, &[])]), None, None),
        "2001:db8:1::1",
        &NoLimit,
        NOW,
    );
    assert_eq!(na_of(&inner(second)), (addr("2001:db8:2::100"), 1500, 4000));
    assert_eq!(decision.events[0].lease.subnet_id, 2);
    let renew = msg(
        MSG_RENEW,
        &client(2),
        vec![
            DhcpOption::ServerId(server_duid()),
            ia_na(1, &["2001:db8:2::100"]),
        ],
    );
    let (_, renewed) = world.decide_with(
        relayed(renew, None, None),
        "2001:db8:1::1",
        &NoLimit,
        NOW + 10,
    );
    assert_eq!(na_of(&inner(renewed)).0, addr("2001:db8:2::100"));
    // A Confirm of the second subnet's address is on the link.
    let confirm = msg(
        MSG_CONFIRM,
        &client(2),
        vec![ia_na(1, &["2001:db8:2::100"])],
    );
    let (_, confirmed) = world.decide_with(
        relayed(confirm, None, None),
        "2001:db8:1::1",
        &NoLimit,
        NOW + 10,
    );
    assert_eq!(status_in(&inner(confirmed).options), Some(STATUS_SUCCESS));
}

/// A reservation by Remote-ID and one by option 79 are honoured; a client on neither line gets
/// the pools.
#[test]
fn reservations_by_remote_id_and_by_option_79() {
    let mut world = world_of(LINES);
    let (_, reply) = world.decide_with(
        relayed(rapid(1, vec![ia_pd(1, None)]), Some(&[0xaa, 0x01]), None),
        "2001:db8:1::1",
        &NoLimit,
        NOW,
    );
    assert_eq!(pd_of(&inner(reply)), (addr("2001:db8:99::"), 56));
    let mac = [2, 0, 0, 0, 0, 0x79];
    let (_, reply) = world.decide_with(
        relayed(rapid(2, vec![ia_na(1, &[])]), None, Some(mac)),
        "2001:db8:1::1",
        &NoLimit,
        NOW,
    );
    assert_eq!(na_of(&inner(reply)).0, addr("2001:db8:1::79"));
    let (_, reply) = world.decide_with(
        relayed(rapid(3, vec![ia_pd(1, None)]), Some(&[0xaa, 0x02]), None),
        "2001:db8:1::1",
        &NoLimit,
        NOW,
    );
    assert_eq!(pd_of(&inner(reply)), (addr("2001:db8:8000::"), 56));
    // The rule judges a lease by the line it was served on: the reserved prefix is kept for
    // its holder, another line's client may not take it.
    let lease = world
        .leases
        .values()
        .find(|l| l.address == addr("2001:db8:99::"))
        .unwrap()
        .clone();
    assert_eq!(
        world
            .allocator
            .lease_standing(&world.config.subnets[0], &lease),
        crate::binding_rule::Standing::Kept
    );
    let lines = LineIds::from_relay_info(&lease.relay_info);
    assert_eq!(
        lines.get(LineKind::RemoteId),
        Some(&[0, 0, 0x0d, 0xe9, 0xaa, 0x01][..])
    );
}

/// A CPE that comes back on the same line with a new DUID gets its old prefix: at once when the
/// line has one client at most (the old lease is taken over and its end published first);
/// with more clients per line only once the old lease has expired (even within its grace).
#[test]
fn a_new_duid_on_the_same_line_keeps_the_prefix() {
    let line = [0xbb, 0x02];
    let one_per_line = format!("line-client-limit = 1\n{LINES}");
    let mut world = world_of(&one_per_line);
    let (_, reply) = world.decide_with(
        relayed(rapid(1, vec![ia_pd(1, None)]), Some(&line), None),
        "2001:db8:1::1",
        &NoLimit,
        NOW,
    );
    let prefix = pd_of(&inner(reply));
    let limits = Lines::of(&world, 1, NOW + 5);
    let (decision, reply) = world.decide_with(
        relayed(rapid(2, vec![ia_pd(7, None)]), Some(&line), None),
        "2001:db8:1::1",
        &limits,
        NOW + 5,
    );
    assert_eq!(pd_of(&inner(reply)), prefix);
    let kinds: Vec<_> = decision
        .events
        .iter()
        .map(|e| (e.kind, e.lease.duid.clone()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (LeaseEventKind::Released, client(1).as_bytes().to_vec()),
            (LeaseEventKind::Granted, client(2).as_bytes().to_vec()),
        ]
    );
    // Another line's new client is not given it.
    let limits = Lines::of(&world, 1, NOW + 6);
    let (_, reply) = world.decide_with(
        relayed(rapid(3, vec![ia_pd(1, None)]), Some(&[0xbb, 0x03]), None),
        "2001:db8:1::1",
        &limits,
        NOW + 6,
    );
    assert_ne!(pd_of(&inner(reply)), prefix);

    // No limit: a live client's prefix stays its own until the lease ends.
    let mut world = world_of(LINES);
    let (_, reply) = world.decide_with(
        relayed(rapid(1, vec![ia_pd(1, None)]), Some(&line), None),
        "2001:db8:1::1",
        &NoLimit,
        NOW,
    );
    let prefix = pd_of(&inner(reply));
    let (_, reply) = world.decide_with(
        relayed(rapid(2, vec![ia_pd(1, None)]), Some(&line), None),
        "2001:db8:1::1",
        &NoLimit,
        NOW + 5,
    );
    assert_ne!(pd_of(&inner(reply)), prefix);
    world.leases.retain(|_, l| l.duid != client(2).as_bytes());
    let expired = NOW + 2000 + 10;
    let (_, reply) = world.decide_with(
        relayed(rapid(4, vec![ia_pd(1, None)]), Some(&line), None),
        "2001:db8:1::1",
        &NoLimit,
        expired,
    );
    assert_eq!(pd_of(&inner(reply)), prefix);
}

/// The per-line limit refuses the next new client on a full line only: the line's own clients
/// keep renewing, and a client on another line is served.
#[test]
fn the_line_limit_refuses_a_new_client_on_that_line_only() {
    let text = format!("line-client-limit = 2\nline-sticky = false\n{LINES}");
    let mut world = world_of(&text);
    let line = [0xcc, 0x01];
    for n in 1..=2 {
        let limits = Lines::of(&world, 2, NOW);
        let (_, reply) = world.decide_with(
            relayed(rapid(n, vec![ia_pd(1, None)]), Some(&line), None),
            "2001:db8:1::1",
            &limits,
            NOW,
        );
        pd_of(&inner(reply));
    }
    let limits = Lines::of(&world, 2, NOW);
    let (decision, reply) = world.decide_with(
        relayed(rapid(3, vec![ia_na(1, &[])]), Some(&line), None),
        "2001:db8:1::1",
        &limits,
        NOW,
    );
    assert_eq!(decision.outcome, Err("line_client_limit"));
    assert!(reply.is_none());
    let (_, reply) = world.decide_with(
        relayed(rapid(4, vec![ia_na(1, &[])]), Some(&[0xcc, 0x02]), None),
        "2001:db8:1::1",
        &limits,
        NOW,
    );
    na_of(&inner(reply));
    let (_, reply) = world.decide_with(
        relayed(rapid(1, vec![ia_pd(1, None)]), Some(&line), None),
        "2001:db8:1::1",
        &limits,
        NOW + 1,
    );
    pd_of(&inner(reply));
}

/// A new DUID's Advertise of the line's active prefix holds nothing: the old CPE still renews
/// it (as the fast path lets it) until the new one's Request takes it over.
#[test]
fn an_advertised_takeover_leaves_the_old_cpe_renewing_until_the_request() {
    let line = [0xdd, 0x01];
    let mut world = world_of(&format!("line-client-limit = 1\n{LINES}"));
    let (_, reply) = world.decide_with(
        relayed(rapid(1, vec![ia_pd(1, None)]), Some(&line), None),
        "2001:db8:1::1",
        &NoLimit,
        NOW,
    );
    let (prefix, len) = pd_of(&inner(reply));
    let limits = Lines::of(&world, 1, NOW + 1);
    let solicit = msg(MSG_SOLICIT, &client(2), vec![ia_pd(1, None)]);
    let (decision, advertise) = world.decide_with(
        relayed(solicit, Some(&line), None),
        "2001:db8:1::1",
        &limits,
        NOW + 1,
    );
    assert_eq!(pd_of(&inner(advertise)), (prefix, len));
    assert!(decision.offers.is_empty());
    let prefix_text = prefix.to_string();
    let renew = msg(
        MSG_RENEW,
        &client(1),
        vec![
            DhcpOption::ServerId(server_duid()),
            ia_pd(1, Some((prefix_text.as_str(), len))),
        ],
    );
    let (_, renewed) = world.decide_with(
        relayed(renew, Some(&line), None),
        "2001:db8:1::1",
        &limits,
        NOW + 2,
    );
    assert_eq!(pd_of(&inner(renewed)), (prefix, len));
    let request = msg(
        MSG_REQUEST,
        &client(2),
        vec![
            DhcpOption::ServerId(server_duid()),
            ia_pd(1, Some((prefix_text.as_str(), len))),
        ],
    );
    let limits = Lines::of(&world, 1, NOW + 3);
    let (_, granted) = world.decide_with(
        relayed(request, Some(&line), None),
        "2001:db8:1::1",
        &limits,
        NOW + 3,
    );
    assert_eq!(pd_of(&inner(granted)), (prefix, len));
    let holder = &world
        .leases
        .values()
        .find(|l| l.address == prefix)
        .unwrap()
        .duid;
    assert_eq!(holder, client(2).as_bytes());
}
