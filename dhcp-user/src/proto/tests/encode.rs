//! The encoder: never truncates, refuses what does not fit a message kind, keeps the option order.

use super::*;

#[test]
fn encoder_never_truncates_long_options() {
    let many = vec![Ipv6Addr::LOCALHOST; 4096]; // 65536 bytes
    let message =
        Message::new(MSG_REPLY, [0, 0, 1]).with_option(DhcpOption::DnsServers(many.clone()));
    assert_eq!(
        message.encode(),
        Err(EncodeError::OptionTooLong {
            code: OPT_DNS_SERVERS,
            len: 65536
        })
    );
    let fits = Message::new(MSG_REPLY, [0, 0, 1]).with_option(DhcpOption::Unknown {
        code: 999,
        data: vec![0; 65535],
    });
    assert_eq!(fits.encode().unwrap().len(), 4 + 4 + 65535);
    // A relay message option wrapping a message over 65535 bytes fails the same way.
    let big_inner = Message::new(MSG_SOLICIT, [0, 0, 1]).with_option(DhcpOption::Unknown {
        code: 999,
        data: vec![0; 65535],
    });
    let relay = RelayMessage {
        msg_type: MSG_RELAY_FORW,
        hop_count: 0,
        link_address: Ipv6Addr::UNSPECIFIED,
        peer_address: Ipv6Addr::UNSPECIFIED,
        options: vec![DhcpOption::RelayMsg(Box::new(big_inner.into()))],
    };
    assert!(matches!(
        relay.encode(),
        Err(EncodeError::OptionTooLong {
            code: OPT_RELAY_MSG,
            ..
        })
    ));
}

#[test]
fn encoder_rejects_message_types_of_the_wrong_kind() {
    for t in [0, MSG_RELAY_FORW, MSG_RELAY_REPL, 24, 255] {
        assert_eq!(
            Message::new(t, [0; 3]).encode(),
            Err(EncodeError::BadMessageType(t))
        );
    }
    let relay = RelayMessage {
        msg_type: MSG_SOLICIT,
        hop_count: 0,
        link_address: Ipv6Addr::UNSPECIFIED,
        peer_address: Ipv6Addr::UNSPECIFIED,
        options: vec![],
    };
    assert_eq!(
        relay.encode(),
        Err(EncodeError::BadMessageType(MSG_SOLICIT))
    );
}

#[test]
fn kind_specific_decoders() {
    assert!(Message::decode(&solicit_bytes()).is_ok());
    assert_eq!(
        Message::decode(&two_hop_relay_bytes()),
        Err(DecodeError::UnknownMessageType(MSG_RELAY_FORW))
    );
    assert!(RelayMessage::decode(&two_hop_relay_bytes()).is_ok());
    assert_eq!(
        RelayMessage::decode(&solicit_bytes()),
        Err(DecodeError::UnknownMessageType(MSG_SOLICIT))
    );
}

#[test]
fn options_encode_in_vector_order() {
    let message = Message::new(MSG_REPLY, [1, 2, 3])
        .with_option(DhcpOption::RapidCommit)
        .with_option(DhcpOption::Preference(255))
        .with_option(DhcpOption::ReconfAccept);
    assert_eq!(
        message.encode().unwrap(),
        vec![7, 1, 2, 3, 0, 14, 0, 0, 0, 7, 0, 1, 255, 0, 20, 0, 0]
    );
    let mut buf = vec![0xaa];
    message.encode_into(&mut buf).unwrap();
    assert_eq!(buf.len(), 18);
    assert_eq!(buf[0], 0xaa);
}
