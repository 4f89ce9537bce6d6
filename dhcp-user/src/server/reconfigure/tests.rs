use super::*;
use crate::proto::OptionList;
use crate::store::LeaseType;

fn duid(bytes: &[u8]) -> Duid {
    Duid::new(bytes.to_vec()).unwrap()
}

fn keyed_lease(reply_to: Ipv6Addr, relay_info: Vec<u8>) -> Lease {
    Lease {
        preferred_lifetime: 100,
        valid_lifetime: 200,
        cltt: 1000,
        expire: 1200,
        interface: "eth0".into(),
        relay_info,
        reconfigure: Some(binding_key([7; 16], reply_to)),
        ..Lease::bare(
            LeaseType::Na,
            "2001:db8::10".parse().unwrap(),
            128,
            vec![0, 3, 0, 1, 1, 2, 3, 4, 5, 6],
            1,
            1,
        )
    }
}

/// HMAC-MD5 gives the digests of RFC 2104's test vectors (its appendix, and RFC 2202 case 3).
#[test]
fn hmac_md5_matches_rfc2104_vectors() {
    assert_eq!(
        hex::encode(hmac_md5(&[0x0b; 16], b"Hi There")),
        "9294727a3638bb1c13f48ef8158bfc9d"
    );
    assert_eq!(
        hex::encode(hmac_md5(b"Jefe", b"what do ya want for nothing?")),
        "750c783e6ab0b503eaa86e310a5db738"
    );
    assert_eq!(
        hex::encode(hmac_md5(&[0xaa; 16], &[0xdd; 50])),
        "56be34521d144c88dbb8c733f0e8b3f6"
    );
}

/// A Reconfigure carries transaction-id 0, Server ID, Client ID, the Reconfigure Message option
/// and an Authentication option of protocol 3, HMAC-MD5, RDM 0, type 2 (RFC 8415 18.3.11,
/// 20.4.2: the server MUST include the Authentication option).
#[test]
fn reconfigure_message_layout() {
    let (server, client) = (
        duid(&[0, 3, 0, 1, 9, 9, 9, 9, 9, 9]),
        duid(&[0, 3, 0, 1, 1, 2, 3, 4, 5, 6]),
    );
    let bytes = signed_reconfigure(&server, &client, MSG_RENEW, &[7; 16], 0x0102_0304_0506_0708);
    assert_eq!(&bytes[..4], &[MSG_RECONFIGURE, 0, 0, 0]);
    let message = Message::decode(&bytes).unwrap();
    let codes: Vec<u16> = message.options.iter().map(DhcpOption::code).collect();
    assert_eq!(
        codes,
        [OPT_SERVERID, OPT_CLIENTID, OPT_RECONF_MSG, OPT_AUTH]
    );
    assert!(message.options.contains(&DhcpOption::ReconfMsg(MSG_RENEW)));
    let DhcpOption::Auth(body) = &message.options[3] else {
        panic!("no auth");
    };
    assert_eq!(&body[..3], &[3, 1, 0]);
    assert_eq!(&body[3..11], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(body[11], TYPE_HMAC);
    assert_ne!(&body[12..], &[0; 16]);
}

/// The HMAC is computed over the whole message with the HMAC field zeroed (RFC 8415 20.4.2):
/// it verifies under the key, not under another key, nor after any byte changed.
#[test]
fn reconfigure_hmac_covers_the_zeroed_message() {
    let (server, client) = (
        duid(&[0, 3, 0, 1, 9, 9, 9, 9, 9, 9]),
        duid(&[0, 3, 0, 1, 1, 2, 3, 4, 5, 6]),
    );
    let bytes = signed_reconfigure(&server, &client, MSG_INFORMATION_REQUEST, &[7; 16], 5);
    let mut zeroed = bytes.clone();
    let at = zeroed.len() - 16;
    zeroed[at..].fill(0);
    assert_eq!(&bytes[at..], &hmac_md5(&[7; 16], &zeroed));
    assert!(verify_reconfigure(&bytes, &[7; 16]));
    assert!(!verify_reconfigure(&bytes, &[8; 16]));
    for i in 0..at {
        let mut forged = bytes.clone();
        forged[i] ^= 1;
        assert!(!verify_reconfigure(&forged, &[7; 16]), "byte {i}");
    }
}

/// A Reply's key option: protocol 3, HMAC-MD5, RDM 0, the counter, type 1 and the key.
#[test]
fn key_option_layout() {
    let DhcpOption::Auth(body) = key_option(&[0x5a; 16], 9) else {
        panic!("not auth");
    };
    assert_eq!(body.len(), 28);
    assert_eq!(&body[..11], &[3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 9]);
    assert_eq!(body[11], TYPE_KEY);
    assert_eq!(&body[12..], &[0x5a; 16]);
}

/// Replay counters only grow (RDM 0: monotonically increasing), and start above the clock.
#[test]
fn replay_counter_increases() {
    let first = next_replay();
    let clock = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(first > clock - 1_000_000_000);
    let mut last = first;
    for _ in 0..1000 {
        let next = next_replay();
        assert!(next > last);
        last = next;
    }
}

/// Two fresh keys differ (128 random bits each).
#[test]
fn fresh_keys_differ() {
    assert_ne!(fresh_key(), fresh_key());
}

/// A direct client is sent the Reconfigure itself, on port 546 of its link-local address on
/// the interface it was served on.
#[test]
fn direct_client_gets_the_message_on_546() {
    let lease = keyed_lease("fe80::1".parse().unwrap(), Vec::new());
    let out = delivery(&lease, vec![MSG_RECONFIGURE, 0, 0, 0], 7).unwrap();
    assert_eq!(out.to, "[fe80::1%7]:546".parse().unwrap());
    assert_eq!(out.payload, vec![MSG_RECONFIGURE, 0, 0, 0]);
}

/// A relayed client's Reconfigure goes in a Relay-Reply through the chain it came through
/// (RFC 8415 18.3.11), to the relay's port 547, each hop's Interface-ID echoed.
#[test]
fn relayed_client_gets_a_relay_reply() {
    let inner = Packet::Message(Message::new(MSG_RENEW, [0, 0, 1]));
    let forw = Packet::Relay(crate::proto::RelayMessage {
        msg_type: MSG_RELAY_FORW,
        hop_count: 0,
        link_address: "2001:db8:1::1".parse().unwrap(),
        peer_address: "fe80::2".parse().unwrap(),
        options: vec![
            DhcpOption::InterfaceId(b"port-1".to_vec()),
            DhcpOption::RelayMsg(Box::new(inner)),
        ],
    })
    .encode()
    .unwrap();
    let lease = keyed_lease("2001:db8:ffff::1".parse().unwrap(), forw);
    let (server, client) = (duid(&[0, 3, 0, 1, 9, 9, 9, 9, 9, 9]), duid(&lease.duid));
    let message = signed_reconfigure(&server, &client, MSG_RENEW, &[7; 16], 1);
    let out = delivery(&lease, message.clone(), 7).unwrap();
    assert_eq!(out.to, "[2001:db8:ffff::1]:547".parse().unwrap());
    let Packet::Relay(repl) = crate::proto::decode(&out.payload).unwrap() else {
        panic!("not a relay message");
    };
    assert_eq!(repl.msg_type, MSG_RELAY_REPL);
    assert_eq!(repl.peer_address, "fe80::2".parse::<Ipv6Addr>().unwrap());
    assert_eq!(repl.interface_id(), Some(&b"port-1"[..]));
    let inside = repl.options.iter().find_map(|o| match o {
        DhcpOption::RelayMsg(p) => Some(p.encode().unwrap()),
        _ => None,
    });
    assert_eq!(inside, Some(message));
}

/// The key kept for a client is its most recent keyed lease's; none without one.
#[test]
fn kept_key_is_the_latest() {
    let mut old = keyed_lease("fe80::1".parse().unwrap(), Vec::new());
    let mut new = old.clone();
    old.reconfigure = Some(binding_key([1; 16], "fe80::1".parse().unwrap()));
    new.reconfigure = Some(binding_key([2; 16], "fe80::1".parse().unwrap()));
    new.cltt += 10;
    assert_eq!(kept_key([&old, &new]), Some([2; 16]));
    old.reconfigure = None;
    assert_eq!(kept_key([&old]), None);
}

/// A reload that changes a subnet's options (DNS servers here) names that subnet, no other.
#[test]
fn changed_options_name_their_subnet() {
    let base = "[[subnet]]\nid = 1\nprefix = \"2001:db8:1::/64\"\ninterface = \"eth0\"\n\
                dns-servers = [\"2001:db8::53\"]\n\
                [[subnet]]\nid = 2\nprefix = \"2001:db8:2::/64\"\ninterface = \"eth1\"\n";
    let old = Config::parse(base, "x.toml").unwrap();
    let new = Config::parse(&base.replace("2001:db8::53", "2001:db8::54"), "x.toml").unwrap();
    assert_eq!(subnets_with_new_options(&old, &new), vec![1]);
    assert!(subnets_with_new_options(&old, &old).is_empty());
}
