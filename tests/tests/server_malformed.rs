//! Hostile input over UDP: truncated headers, option lengths past the end, relay nesting loops,
//! huge DUIDs, unknown message types, plus a burst of mutated messages. The server stays up,
//! counts every drop under its reason (`dhcp-user stats`), and still serves afterwards.

mod server_common;

use std::collections::BTreeMap;
use std::time::Duration;

use dhcp_user::proto::{decode, DhcpOption, Duid, IaNa, Message};
use server_common::{lab_config, LabServer};

fn solicit(duid_byte: u8) -> Vec<u8> {
    Message::new(1, [0, 0, duid_byte])
        .with_option(DhcpOption::ClientId(
            Duid::ll(1, &[2, 0, 0, 0, 9, duid_byte]).unwrap(),
        ))
        .with_option(DhcpOption::IaNa(IaNa {
            iaid: 1,
            t1: 0,
            t2: 0,
            options: Vec::new(),
        }))
        .encode()
        .unwrap()
}

/// `depth` Relay-Forw layers around `inner`.
fn nest_relays(depth: usize, inner: Vec<u8>) -> Vec<u8> {
    let mut packet = inner;
    for _ in 0..depth {
        let mut relay = vec![12, 0];
        relay.extend_from_slice(
            &"2001:db8:1::2"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        relay.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        relay.extend_from_slice(&9u16.to_be_bytes());
        relay.extend_from_slice(&(packet.len() as u16).to_be_bytes());
        relay.extend_from_slice(&packet);
        packet = relay;
    }
    packet
}

fn hostile_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let mut huge_duid = vec![1, 0, 0, 1];
    huge_duid.extend_from_slice(&1u16.to_be_bytes());
    huge_duid.extend_from_slice(&300u16.to_be_bytes());
    huge_duid.extend_from_slice(&[0, 3, 0, 1]);
    huge_duid.extend(std::iter::repeat_n(0xab, 296));
    let mut past_end = solicit(1);
    let len = past_end.len();
    past_end[len - 14] = 0xff; // the IA_NA's length
    vec![
        ("empty", vec![]),
        ("truncated message header", vec![1, 0, 0]),
        (
            "truncated relay header",
            vec![12, 0, 0x20, 0x01, 0x0d, 0xb8],
        ),
        ("option header cut", vec![1, 0, 0, 1, 0, 1, 0]),
        (
            "option length past the end",
            vec![1, 0, 0, 1, 0, 1, 0, 50, 1, 2],
        ),
        ("IA length past the end", past_end),
        ("relay loop (nested 12 deep)", nest_relays(12, solicit(2))),
        ("huge DUID", huge_duid),
        (
            "unknown message type 200",
            vec![200, 0, 0, 1, 0, 8, 0, 2, 0, 0],
        ),
        ("message type 0", vec![0, 0, 0, 0]),
        ("Relay-Repl from outside", {
            let mut p = nest_relays(1, solicit(3));
            p[0] = 13;
            p
        }),
        ("Reply from a client", {
            let mut p = solicit(4);
            p[0] = 7;
            p
        }),
        ("Solicit without Client ID", vec![1, 0, 0, 5]),
    ]
}

#[test]
fn hostile_datagrams_are_dropped_and_counted_by_reason() {
    let lab = LabServer::start("malformed", &lab_config(&[], ""));
    let socket = lab.client_socket(0);
    let target = lab.all_servers();

    // The reason the server must count for each input: the codec's own for what does not
    // decode, the server's for what decodes but is not acceptable.
    let mut expected: BTreeMap<String, u64> = BTreeMap::new();
    for (what, bytes) in hostile_inputs() {
        let reason = match decode(&bytes) {
            Err(err) => err.reason().to_string(),
            Ok(_) => match bytes[0] {
                13 => "relay_reply_received".into(),
                7 => "not_a_client_message".into(),
                _ => "missing_client_id".into(),
            },
        };
        eprintln!("{what}: expecting drop reason {reason}");
        *expected.entry(reason).or_insert(0) += 1;
        socket.send_to(&bytes, target).unwrap();
    }
    lab.wait_until(Duration::from_secs(10), "every drop counted", || {
        let drops = lab.stats().counters.drops;
        expected
            .iter()
            .all(|(reason, count)| drops.get(reason) == Some(count))
    });
    let drops = lab.stats().counters.drops;
    for reason in [
        "too_many_relay_hops",
        "duid_too_long",
        "unknown_message_type",
        "option_length_past_end",
    ] {
        assert!(
            drops.keys().any(|k| k == reason) || expected.keys().any(|k| k == reason),
            "{reason} not exercised: {drops:?}"
        );
    }
    let text = lab.cli(&["stats"]);
    for reason in expected.keys() {
        assert!(
            text.contains(reason.as_str()),
            "{reason} missing from:\n{text}"
        );
    }

    // A burst of mutated Solicits: whatever they decode to, the server survives them.
    let mut seed: u32 = 0x1234_5678;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed
    };
    for i in 0..2000u32 {
        let mut bytes = solicit((i % 250) as u8);
        let flips = 1 + next() % 4;
        for _ in 0..flips {
            let at = (next() as usize) % bytes.len();
            bytes[at] = next() as u8;
        }
        bytes.truncate(1 + (next() as usize) % bytes.len());
        socket.send_to(&bytes, target).unwrap();
    }

    // Still up, still serving: a valid Solicit (its own transaction id) gets an Advertise.
    let mut probe = solicit(99);
    probe[1..4].copy_from_slice(&[0xaa, 0xbb, 0xcc]);
    let mut buf = [0u8; 1500];
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut answered = false;
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    while !answered && std::time::Instant::now() < deadline {
        socket.send_to(&probe, target).unwrap();
        // Advertises to the mutated Solicits that still made sense may come first.
        while let Ok((len, _)) = socket.recv_from(&mut buf) {
            if len > 4 && buf[0] == 2 && buf[1..4] == [0xaa, 0xbb, 0xcc] {
                answered = true;
                break;
            }
        }
    }
    assert!(
        answered,
        "no Advertise after the hostile input; log:\n{}",
        lab.log()
    );
    // Part of the burst may be lost in socket buffers (UDP), but what arrived is accounted for:
    // every datagram counted as received (an empty one has no type to count under) was answered
    // or dropped under a reason, once the last of them is through.
    lab.wait_until(
        Duration::from_secs(10),
        "every datagram accounted for",
        || {
            let stats = lab.stats().counters;
            let received: u64 = stats.received.values().sum();
            let empty = stats.drops.get("empty_message").copied().unwrap_or(0);
            let sent: u64 = stats.sent.values().sum();
            let dropped: u64 = stats.drops.values().sum();
            received + empty == sent + dropped
        },
    );
}
