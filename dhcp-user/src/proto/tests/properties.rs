//! Property tests.

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

fn duid() -> impl Strategy<Value = Duid> {
    vec(any::<u8>(), DUID_MIN_LEN..=DUID_MAX_LEN).prop_map(|b| Duid::new(b).unwrap())
}

fn addr() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=max)
}

fn domain_name() -> impl Strategy<Value = String> {
    vec("[a-zA-Z0-9_-]{1,20}", 1..=4).prop_map(|labels| labels.join("."))
}

/// Options without sub-options.
fn leaf_option() -> impl Strategy<Value = DhcpOption> {
    prop_oneof![
        duid().prop_map(DhcpOption::ClientId),
        duid().prop_map(DhcpOption::ServerId),
        duid().prop_map(DhcpOption::RelayId),
        vec(any::<u16>(), 0..8).prop_map(DhcpOption::Oro),
        any::<u8>().prop_map(DhcpOption::Preference),
        any::<u16>().prop_map(DhcpOption::ElapsedTime),
        bytes(40).prop_map(DhcpOption::Auth),
        addr().prop_map(DhcpOption::Unicast),
        (any::<u16>(), "\\PC{0,20}")
            .prop_map(|(code, message)| { DhcpOption::StatusCode(StatusCode { code, message }) }),
        Just(DhcpOption::RapidCommit),
        bytes(20).prop_map(DhcpOption::UserClass),
        bytes(20).prop_map(DhcpOption::VendorClass),
        bytes(20).prop_map(DhcpOption::VendorOpts),
        bytes(20).prop_map(DhcpOption::InterfaceId),
        any::<u8>().prop_map(DhcpOption::ReconfMsg),
        Just(DhcpOption::ReconfAccept),
        vec(addr(), 0..4).prop_map(DhcpOption::DnsServers),
        vec(domain_name(), 0..4).prop_map(DhcpOption::DomainList),
        any::<u32>().prop_map(DhcpOption::InformationRefreshTime),
        (any::<u32>(), bytes(20)).prop_map(|(enterprise, remote_id)| {
            DhcpOption::RemoteId(RemoteId {
                enterprise,
                remote_id,
            })
        }),
        bytes(20).prop_map(DhcpOption::SubscriberId),
        bytes(20).prop_map(DhcpOption::ClientFqdn),
        any::<u32>().prop_map(DhcpOption::CltTime),
        (addr(), bytes(60)).prop_map(|(peer_address, relay_message)| {
            DhcpOption::LqRelayData(LqRelayData {
                peer_address,
                relay_message,
            })
        }),
        vec(addr(), 0..4).prop_map(DhcpOption::LqClientLink),
        any::<u32>().prop_map(DhcpOption::SolMaxRt),
        any::<u32>().prop_map(DhcpOption::InfMaxRt),
        any::<u32>().prop_map(DhcpOption::LqBaseTime),
        any::<u32>().prop_map(DhcpOption::LqStartTime),
        any::<u32>().prop_map(DhcpOption::LqEndTime),
        (
            any::<u16>().prop_filter("modeled code", |c| !is_modeled_code(*c)),
            bytes(20)
        )
            .prop_map(|(code, data)| DhcpOption::Unknown { code, data }),
    ]
}

/// Any option but Relay Message, with encapsulated options up to 3 levels deep.
fn option() -> impl Strategy<Value = DhcpOption> {
    leaf_option().prop_recursive(3, 40, 4, |inner| {
        let subs = vec(inner, 0..4);
        prop_oneof![
            (any::<[u32; 3]>(), subs.clone()).prop_map(|([iaid, t1, t2], options)| {
                DhcpOption::IaNa(IaNa {
                    iaid,
                    t1,
                    t2,
                    options,
                })
            }),
            (any::<u32>(), subs.clone())
                .prop_map(|(iaid, options)| DhcpOption::IaTa(IaTa { iaid, options })),
            (addr(), any::<[u32; 2]>(), subs.clone()).prop_map(
                |(addr, [preferred, valid], options)| {
                    DhcpOption::IaAddr(IaAddr {
                        addr,
                        preferred,
                        valid,
                        options,
                    })
                }
            ),
            (any::<[u32; 3]>(), subs.clone()).prop_map(|([iaid, t1, t2], options)| {
                DhcpOption::IaPd(IaPd {
                    iaid,
                    t1,
                    t2,
                    options,
                })
            }),
            (any::<[u32; 2]>(), any::<u8>(), addr(), subs.clone()).prop_map(
                |([preferred, valid], prefix_len, prefix, options)| {
                    DhcpOption::IaPrefix(IaPrefix {
                        preferred,
                        valid,
                        prefix_len,
                        prefix,
                        options,
                    })
                }
            ),
            (any::<u8>(), addr(), subs.clone()).prop_map(|(query_type, link_address, options)| {
                DhcpOption::LqQuery(LqQuery {
                    query_type,
                    link_address,
                    options,
                })
            }),
            subs.prop_map(DhcpOption::ClientData),
        ]
    })
}

fn message() -> impl Strategy<Value = Message> {
    (
        (1..=23u8).prop_filter("relay type", |t| !is_relay_type(*t)),
        any::<[u8; 3]>(),
        vec(option(), 0..8),
    )
        .prop_map(|(msg_type, transaction_id, options)| Message {
            msg_type,
            transaction_id,
            options,
        })
}

/// A message wrapped in 0..=8 relay layers; each layer's own options go before or after
/// its Relay Message option.
fn packet() -> impl Strategy<Value = Packet> {
    let layer = (
        prop_oneof![Just(MSG_RELAY_FORW), Just(MSG_RELAY_REPL)],
        any::<u8>(),
        addr(),
        addr(),
        vec(leaf_option(), 0..3),
        vec(leaf_option(), 0..2),
    );
    (message(), vec(layer, 0..=MAX_RELAY_DEPTH)).prop_map(|(message, layers)| {
        layers.into_iter().fold(
            Packet::Message(message),
            |inner, (msg_type, hop_count, link_address, peer_address, before, after)| {
                let mut options = before;
                options.push(DhcpOption::RelayMsg(Box::new(inner)));
                options.extend(after);
                Packet::Relay(RelayMessage {
                    msg_type,
                    hop_count,
                    link_address,
                    peer_address,
                    options,
                })
            },
        )
    })
}

// Default config: 256 cases, PROPTEST_CASES=N for a longer run.
proptest! {
    #[test]
    fn decode_inverts_encode(packet in packet()) {
        let bytes = packet.encode().unwrap();
        prop_assert_eq!(decode(&bytes), Ok(packet));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_accepted_bytes_re_encode_exactly(
        bytes in vec(any::<u8>(), 0..400)
    ) {
        if let Ok(packet) = decode(&bytes) {
            prop_assert_eq!(packet.encode().unwrap(), bytes);
        }
    }

    /// Random bytes rarely get past the header; corrupting valid encodings reaches every
    /// option decoder.
    #[test]
    fn corrupted_valid_packets_never_panic_and_re_encode_exactly(
        packet in packet(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
        do_cut in any::<bool>(),
    ) {
        let mut bytes = packet.encode().unwrap();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if do_cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        match decode(&bytes) {
            Ok(decoded) => prop_assert_eq!(decoded.encode().unwrap(), bytes),
            Err(err) => prop_assert!(DecodeError::ALL_REASONS.contains(&err.reason())),
        }
    }

    #[test]
    fn duid_text_round_trips(duid in duid()) {
        prop_assert_eq!(duid.to_string().parse::<Duid>(), Ok(duid.clone()));
        prop_assert_eq!(hex::encode(duid.as_bytes()).parse::<Duid>(), Ok(duid));
    }

    #[test]
    fn frames_survive_any_read_split(
        messages in vec(bytes(300), 0..6),
        chunk in 1..50usize,
    ) {
        let mut stream = Vec::new();
        for m in &messages {
            framing::encode_frame_into(m, &mut stream).unwrap();
        }
        let mut decoder = framing::FrameDecoder::default();
        let mut out = Vec::new();
        for piece in stream.chunks(chunk) {
            decoder.push(piece);
            while let Some(frame) = decoder.next_frame().unwrap() {
                out.push(frame.to_vec());
            }
        }
        prop_assert_eq!(out, messages);
        prop_assert!(!decoder.is_mid_frame());
    }
}
