//! Relayed Solicit / Request / Renew crafted with scapy, through one and two relay hops: the
//! server answers with Relay-Repl nested back through every hop, each echoing its Interface-ID,
//! picks the subnet by the innermost link-address, and keeps the relay data on the lease.

mod server_common;

use std::net::Ipv6Addr;

use dhcp_common::dhcpv6::*;
use dhcp_user::proto::{decode, DhcpOption, Message, OptionList, Packet};
use server_common::{lab_config, LabServer, SCAPY_RELAY_HELPERS, SERVER_ADDRESS};

const RELAYED_SUBNET: &str = r#"
[[subnet]]
id = 2
prefix = "2001:db8:2::/64"
pools = [{ low = "2001:db8:2::100", high = "2001:db8:2::1ff" }]
preferred-lifetime = 600
valid-lifetime = 1200
"#;

/// Acts as the relay agent(s) on the client side: wraps each client message in `hops`
/// Relay-Forw layers (scapy), sends it from port 547 to the server, prints each answer as hex.
const RELAY_SCRIPT: &str = r#"
import socket, struct, sys, binascii
from scapy.layers.dhcp6 import *
from scapy.packet import Raw

hops, server, client_addr = int(sys.argv[1]), sys.argv[2], sys.argv[3]
duid = DUID_LL(lladdr="02:00:00:00:0%d:01" % hops)

def wrap(msg):
    inner = (DHCP6_RelayForward(hopcount=0, linkaddr="2001:db8:2::1", peeraddr="fe80::1234")
             / DHCP6OptIfaceId(ifaceid=b"port-1")
             / DHCP6OptRemoteID(enterprisenum=4491, remoteid=b"cpe-%d" % hops)
             / DHCP6OptRelayMsg(message=msg))
    if hops == 1:
        return inner
    return (DHCP6_RelayForward(hopcount=1, linkaddr="::", peeraddr=client_addr)
            / DHCP6OptIfaceId(ifaceid=b"agg-1")
            / DHCP6OptRelayMsg(message=inner))

# options() and innermost(): server_common::SCAPY_RELAY_HELPERS, prepended.

sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
sock.bind((client_addr, 547))
sock.settimeout(3)

def exchange(tag, msg):
    payload = bytes(wrap(msg))
    for _ in range(3):
        sock.sendto(payload, (server, 547))
        try:
            data, _ = sock.recvfrom(65535)
        except socket.timeout:
            continue
        print(tag, binascii.hexlify(data).decode())
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
exchange("renew", DHCP6_Renew(trid=0x12) / DHCP6OptClientId(duid=duid) / sid / ia)
"#;

fn run_relay(lab: &LabServer, hops: u8) -> Vec<(String, Packet)> {
    let out = lab
        .client_ns
        .command("/usr/bin/python3")
        .args([
            "-c",
            &format!("{SCAPY_RELAY_HELPERS}{RELAY_SCRIPT}"),
            &hops.to_string(),
            SERVER_ADDRESS,
        ])
        .arg(server_common::CLIENT_ADDRESS)
        .output()
        .expect("running python3 (scapy)");
    assert!(
        out.status.success(),
        "relay script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let (tag, hex) = line.split_once(' ').expect("tag and hex");
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (tag.to_string(), decode(&bytes).expect("the reply decodes"))
        })
        .collect()
}

/// Checks the Relay-Repl layers (outermost first) and returns the client message inside.
fn check_layers(packet: &Packet, hops: u8) -> Message {
    let (relays, message) = packet.unwrap_relays();
    assert_eq!(relays.len(), usize::from(hops), "{packet:?}");
    let expected_ids: Vec<&[u8]> = if hops == 2 {
        vec![b"agg-1", b"port-1"]
    } else {
        vec![b"port-1"]
    };
    for (relay, id) in relays.iter().zip(expected_ids) {
        assert_eq!(relay.msg_type, MSG_RELAY_REPL);
        // Interface-ID first, then the Relay Message, nothing else (docs/fastpath.md).
        let codes: Vec<u16> = relay.options.iter().map(DhcpOption::code).collect();
        assert_eq!(codes, vec![OPT_INTERFACE_ID, OPT_RELAY_MSG]);
        assert_eq!(relay.interface_id(), Some(id));
    }
    let innermost = relays.last().unwrap();
    assert_eq!(
        innermost.link_address,
        "2001:db8:2::1".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(
        innermost.peer_address,
        "fe80::1234".parse::<Ipv6Addr>().unwrap()
    );
    assert_eq!(innermost.hop_count, 0);
    if hops == 2 {
        assert_eq!(relays[0].hop_count, 1);
    }
    message.expect("a client message inside").clone()
}

fn relayed_exchange(hops: u8) {
    let lab = LabServer::start(&format!("relay{hops}"), &lab_config(&[], RELAYED_SUBNET));
    let answers = run_relay(&lab, hops);
    let tags: Vec<&str> = answers.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(tags, vec!["advertise", "request", "renew"]);
    let mut addresses = Vec::new();
    for ((tag, packet), expected_type) in answers.iter().zip([MSG_ADVERTISE, MSG_REPLY, MSG_REPLY])
    {
        let message = check_layers(packet, hops);
        assert_eq!(message.msg_type, expected_type, "{tag}");
        let ia = message.ia_nas().next().expect("an IA_NA");
        assert_eq!(ia.iaid, 7);
        assert!(ia.status_code().is_none(), "{tag}: {ia:?}");
        let address = ia.ia_addrs().next().expect("an address").addr;
        addresses.push(address);
    }
    // Subnet 2 (by the innermost link-address), the same address throughout.
    assert!(
        addresses[0].to_string().starts_with("2001:db8:2::1"),
        "{addresses:?}"
    );
    assert!(addresses.iter().all(|a| *a == addresses[0]));
    let rows = lab.bindings();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].subnet, 2);
    assert_eq!(rows[0].state, "assigned");
    assert_eq!(rows[0].link_address, Some("2001:db8:2::1".parse().unwrap()));
    // The lease keeps Remote-ID and the relay chain (read from the store directly).
    let store = dhcp_user::store::SqliteStore::open(lab.lease_db()).unwrap();
    use dhcp_user::store::LeaseStore;
    let lease = store.get_by_address(addresses[0]).unwrap().unwrap();
    let mut remote = 4491u32.to_be_bytes().to_vec();
    remote.extend_from_slice(format!("cpe-{hops}").as_bytes());
    assert_eq!(lease.remote_id, Some(remote));
    assert_eq!(
        decode(&lease.relay_info).unwrap().unwrap_relays().0.len(),
        usize::from(hops)
    );
    let stats = lab.stats().counters;
    assert_eq!(stats.received.get("solicit"), Some(&1));
    assert_eq!(stats.received.get("renew"), Some(&1));
}

#[test]
fn relayed_through_one_hop() {
    relayed_exchange(1);
}

#[test]
fn relayed_through_two_hops() {
    relayed_exchange(2);
}
