//! A Lightweight DHCPv6 Relay Agent (RFC 6221) crafted with scapy: an access node on the
//! server's own link relaying with link-address `::` and the client's link-local peer-address,
//! alone (the receiving interface's subnet serves its clients) and in front of an L3 relay (the
//! relay's link-address names the subnet). The Relay-Repl echoes the LDRA's hop and its
//! Interface-ID; with the fast path on, the LDRA's Renew is answered in XDP, both ways.

mod server_common;

use std::net::Ipv6Addr;

use dhcp_common::{dhcpv6::*, stat};
use dhcp_user::proto::{decode, DhcpOption, Message, OptionList, Packet};
use server_common::{lab_config, LabServer, CLIENT_ADDRESS, SCAPY_RELAY_HELPERS, SERVER_ADDRESS};

const RELAYED_SUBNET: &str = r#"
[[subnet]]
id = 2
prefix = "2001:db8:2::/64"
pools = [{ low = "2001:db8:2::100", high = "2001:db8:2::1ff" }]
preferred-lifetime = 600
valid-lifetime = 1200
"#;

/// The LDRA's Interface-ID: which access port the subscriber is on.
const LDRA_PORT: &[u8] = b"an-1/1/1:7";

/// Plays the access node: wraps each client message in the LDRA's Relay-Forw (hop-count 0,
/// link-address ::, peer-address the client's link-local, Interface-ID), either sent from its
/// link-local address to ff02::1:2 (`ldra`, one hop) or wrapped again by an L3 relay whose
/// link-address is 2001:db8:2::1 and sent from the relay's global address to the server
/// (`behind-relay`). Prints each answer as hex; waits 1.5 s before the Renew so the binding
/// has reached the fast path's map.
const LDRA_SCRIPT: &str = r#"
import socket, struct, sys, binascii, time
from scapy.layers.dhcp6 import *
from scapy.packet import Raw

mode, ifindex, server, relay_addr = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
duid = DUID_LL(lladdr="02:00:00:00:0a:01" if mode == "ldra" else "02:00:00:00:0a:02")

def wrap(msg):
    ldra = (DHCP6_RelayForward(hopcount=0, linkaddr="::", peeraddr="fe80::1234")
            / DHCP6OptIfaceId(ifaceid=b"an-1/1/1:7")
            / DHCP6OptRelayMsg(message=msg))
    if mode == "ldra":
        return ldra
    return (DHCP6_RelayForward(hopcount=1, linkaddr="2001:db8:2::1", peeraddr="fe80::5")
            / DHCP6OptIfaceId(ifaceid=b"agg-1")
            / DHCP6OptRelayMsg(message=ldra))

# options() and innermost(): server_common::SCAPY_RELAY_HELPERS, prepended.

sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
if mode == "ldra":
    sock.bind(("::", 547))
    dest = ("ff02::1:2", 547, 0, ifindex)
else:
    sock.bind((relay_addr, 547))
    dest = (server, 547)
sock.settimeout(3)

def exchange(tag, msg):
    payload = bytes(wrap(msg))
    for _ in range(3):
        sock.sendto(payload, dest)
        try:
            data, source = sock.recvfrom(65535)
        except socket.timeout:
            continue
        print(tag, source[0].split("%")[0], binascii.hexlify(data).decode())
        sys.stdout.flush()
        return innermost(data)
    sys.exit("no answer to " + tag)

adv = exchange("advertise", DHCP6_Solicit(trid=0x10) / DHCP6OptClientId(duid=duid) / DHCP6OptIA_NA(iaid=7))
opts = dict(options(adv[4:]))
server_id = opts[2]
address = socket.inet_ntop(socket.AF_INET6, opts[3][12 + 4:12 + 4 + 16])
sid = Raw(struct.pack("!HH", 2, len(server_id)) + server_id)
ia = DHCP6OptIA_NA(iaid=7, ianaopts=[DHCP6OptIAAddress(addr=address)])
exchange("request", DHCP6_Request(trid=0x11) / DHCP6OptClientId(duid=duid) / sid / ia)
time.sleep(1.5)
exchange("renew", DHCP6_Renew(trid=0x12) / DHCP6OptClientId(duid=duid) / sid / ia)
"#;

/// One answer: its tag, the address it came from, the decoded Relay-Repl.
struct Answer {
    tag: String,
    from: Ipv6Addr,
    packet: Packet,
}

fn run_ldra(lab: &LabServer, mode: &str) -> Vec<Answer> {
    let out = lab
        .client_ns
        .command("/usr/bin/python3")
        .args(["-c", &format!("{SCAPY_RELAY_HELPERS}{LDRA_SCRIPT}"), mode])
        .arg(lab.link.b.ifindex.to_string())
        .args([SERVER_ADDRESS, CLIENT_ADDRESS])
        .output()
        .expect("running python3 (scapy)");
    assert!(
        out.status.success(),
        "LDRA script failed:\n{}\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        lab.log()
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let mut words = line.split(' ');
            let (tag, from, hex) = (words.next(), words.next(), words.next());
            let hex = hex.expect("tag, source and hex");
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            Answer {
                tag: tag.unwrap().to_string(),
                from: from.unwrap().parse().expect("the reply's source address"),
                packet: decode(&bytes).expect("the reply decodes"),
            }
        })
        .collect()
}

/// The LDRA's Relay-Repl hop (the innermost): header echoed, Interface-ID then Relay Message.
fn check_ldra_hop(packet: &Packet, hops: usize) -> Message {
    let (relays, message) = packet.unwrap_relays();
    assert_eq!(relays.len(), hops, "{packet:?}");
    let ldra = relays.last().unwrap();
    assert_eq!(ldra.msg_type, MSG_RELAY_REPL);
    assert_eq!(ldra.hop_count, 0);
    assert_eq!(ldra.link_address, Ipv6Addr::UNSPECIFIED);
    assert_eq!(ldra.peer_address, "fe80::1234".parse::<Ipv6Addr>().unwrap());
    // RFC 6221 section 7: the server MUST include the Interface-ID option in the Relay-Reply.
    let codes: Vec<u16> = ldra.options.iter().map(DhcpOption::code).collect();
    assert_eq!(codes, vec![OPT_INTERFACE_ID, OPT_RELAY_MSG]);
    assert_eq!(ldra.interface_id(), Some(LDRA_PORT));
    if hops == 2 {
        assert_eq!(relays[0].interface_id(), Some(&b"agg-1"[..]));
        assert_eq!(
            relays[0].link_address,
            "2001:db8:2::1".parse::<Ipv6Addr>().unwrap()
        );
    }
    message.expect("a client message inside").clone()
}

/// The addresses granted in the answers (advertise, request, renew), all checked alike.
fn granted(answers: &[Answer], hops: usize) -> Vec<Ipv6Addr> {
    let tags: Vec<&str> = answers.iter().map(|a| a.tag.as_str()).collect();
    assert_eq!(tags, vec!["advertise", "request", "renew"]);
    answers
        .iter()
        .zip([MSG_ADVERTISE, MSG_REPLY, MSG_REPLY])
        .map(|(answer, expected)| {
            let message = check_ldra_hop(&answer.packet, hops);
            assert_eq!(message.msg_type, expected, "{}", answer.tag);
            let ia = message.ia_nas().next().expect("an IA_NA");
            assert!(ia.status_code().is_none(), "{}: {ia:?}", answer.tag);
            let address = ia.ia_addrs().next().expect("an address").addr;
            address
        })
        .collect()
}

/// An LDRA alone on the server's link (RFC 6221 section 7: the server uses the link the
/// Relay-Forw arrived on): its client gets an address of the interface's subnet through a
/// Relay-Repl sent back to the LDRA's link-local address (from ours) with its Interface-ID, and
/// the Renew is answered in XDP, never reaching the controller.
#[test]
fn ldra_on_the_link_is_served_from_its_subnet_and_renews_in_xdp() {
    let lab = LabServer::start_with("ldra1", &lab_config(&[], ""), true);
    let answers = run_ldra(&lab, "ldra");
    let addresses = granted(&answers, 1);
    assert!(
        addresses[0].segments()[..4] == [0x2001, 0xdb8, 1, 0],
        "{addresses:?}"
    );
    assert!(addresses.iter().all(|a| *a == addresses[0]));
    // Each Relay-Repl went to the LDRA's link-local address, from our link-local address.
    for answer in &answers {
        assert_eq!(answer.from.segments()[0], 0xfe80, "{}", answer.tag);
    }
    let rows = lab.bindings();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].subnet, rows[0].state.as_str()), (1, "assigned"));
    assert_eq!(
        lab.xdp_counter(stat::TX_RENEW),
        1,
        "the Renew answered in XDP: {}",
        lab.xdp_counters()
    );
    let received = lab.stats().counters.received;
    assert_eq!(received.get("solicit"), Some(&1));
    assert_eq!(received.get("renew"), None, "{received:?}");
}

/// An LDRA in front of an L3 relay (two hops): the relay's link-address names the subnet (RFC
/// 6221 section 7), not the interface the Relay-Forw arrived on; both hops' Interface-IDs come
/// back, and the Renew is answered in XDP.
#[test]
fn ldra_behind_a_relay_is_served_from_the_relays_link_and_renews_in_xdp() {
    let lab = LabServer::start_with("ldra2", &lab_config(&[], RELAYED_SUBNET), true);
    let answers = run_ldra(&lab, "behind-relay");
    let addresses = granted(&answers, 2);
    assert!(
        addresses[0].segments()[..4] == [0x2001, 0xdb8, 2, 0],
        "{addresses:?}"
    );
    assert!(addresses.iter().all(|a| *a == addresses[0]));
    let rows = lab.bindings();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].subnet, 2);
    assert_eq!(
        lab.xdp_counter(stat::TX_RENEW),
        1,
        "the Renew answered in XDP: {}",
        lab.xdp_counters()
    );
    assert_eq!(lab.stats().counters.received.get("renew"), None);
}

/// A subnet selected by the LDRA's Interface-ID (`relay-interface-ids`, issue 16 part 3) serves
/// its client instead of the receiving interface's subnet; with such selectors configured the
/// fast path leaves relayed requests, the Renew too, to the controller (`pass_relay_selector`).
#[test]
fn ldra_interface_id_selects_its_subnet_and_the_controller_answers() {
    let selected = format!("{RELAYED_SUBNET}relay-interface-ids = [\"an-1/1/1:7\"]\n");
    let lab = LabServer::start_with("ldra-id", &lab_config(&[], &selected), true);
    let answers = run_ldra(&lab, "ldra");
    let addresses = granted(&answers, 1);
    assert!(
        addresses[0].segments()[..4] == [0x2001, 0xdb8, 2, 0],
        "{addresses:?}"
    );
    let rows = lab.bindings();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].subnet, 2);
    assert_eq!(lab.xdp_counter(stat::TX_RENEW), 0, "{}", lab.xdp_counters());
    assert!(
        lab.xdp_counter(stat::PASS_RELAY_SELECTOR) >= 3,
        "{}",
        lab.xdp_counters()
    );
    assert_eq!(lab.stats().counters.received.get("renew"), Some(&1));
}

/// `[routes]` with `addresses = true` on, the subnet of the relayed L3 hop included.
const ROUTES: &str = "\n[routes]\nenabled = true\naddresses = true\n";

/// `ip -6 route show proto 200` (our routes) in the server namespace.
fn our_routes(lab: &LabServer) -> String {
    lab.server_ns
        .exec("ip", ["-6", "route", "show", "proto", "200"])
        .expect("ip -6 route")
}

/// With `[routes]`, the client of an LDRA on our link is routed via the LDRA's peer-address
/// (the client's link-local address) on the receiving interface; the renewal answered in XDP
/// keeps the route.
#[test]
fn ldra_client_is_routed_via_the_peer_address() {
    let config = format!("{}{ROUTES}", lab_config(&[], ""));
    let lab = LabServer::start_with("ldra-route", &config, true);
    let answers = run_ldra(&lab, "ldra");
    let address = granted(&answers, 1)[0];
    let expected = format!("{address} via fe80::1234 dev {}", lab.link.a.ifname);
    lab.wait_until(std::time::Duration::from_secs(5), "the route", || {
        our_routes(&lab).contains(&expected)
    });
    assert_eq!(lab.xdp_counter(stat::TX_RENEW), 1, "{}", lab.xdp_counters());
    assert!(our_routes(&lab).contains(&expected));
}

/// A client behind an L3 relay is routed by the relay, not by us: no route for its lease.
#[test]
fn client_behind_an_l3_relay_gets_no_route() {
    let config = format!("{}{ROUTES}", lab_config(&[], RELAYED_SUBNET));
    let lab = LabServer::start_with("ldra2-route", &config, false);
    let answers = run_ldra(&lab, "behind-relay");
    let address = granted(&answers, 2)[0];
    assert_eq!(lab.bindings().len(), 1);
    // Routes are added within milliseconds of the grant's event (see the test above).
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert!(
        !our_routes(&lab).contains(&address.to_string()),
        "{}",
        our_routes(&lab)
    );
}
