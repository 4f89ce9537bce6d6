//! Malformed input: every way a message can be wrong is an error naming its reason, never a panic.

use super::*;

#[test]
fn empty_and_unknown_message_types_are_errors() {
    assert_eq!(reason(&[]), "empty_message");
    assert_eq!(
        decode(&[0, 1, 2, 3]),
        Err(DecodeError::UnknownMessageType(0))
    );
    assert_eq!(
        decode(&[200, 1, 2, 3]),
        Err(DecodeError::UnknownMessageType(200))
    );
    assert_eq!(reason(&[24, 1, 2, 3]), "unknown_message_type");
    for t in 1..=23u8 {
        let len = if is_relay_type(t) {
            RELAY_HEADER_LEN
        } else {
            4
        };
        let mut bytes = vec![0u8; len];
        bytes[0] = t;
        assert_eq!(decode_ok(&bytes).msg_type(), t);
    }
}

#[test]
fn truncated_headers_are_errors() {
    assert_eq!(
        decode(&[1, 0xab, 0xcd]),
        Err(DecodeError::TruncatedHeader {
            msg_type: 1,
            len: 3,
            need: 4
        })
    );
    assert_eq!(reason(&[MSG_RELAY_FORW; 33]), "truncated_header");
    assert_eq!(reason(&[MSG_RELAY_REPL]), "truncated_header");
}

#[test]
fn option_framing_errors() {
    let mut past_end = solicit_bytes();
    past_end.truncate(past_end.len() - 1); // Elapsed Time claims 2, 1 left
    assert_eq!(
        decode(&past_end),
        Err(DecodeError::OptionLengthPastEnd {
            code: OPT_ELAPSED_TIME,
            len: 2,
            remaining: 1
        })
    );
    let mut header_cut = solicit_bytes();
    header_cut.extend_from_slice(&[0x00, 0x0e, 0x00]); // 3 bytes of a 4-byte option header
    assert_eq!(reason(&header_cut), "option_header_truncated");
    // Inside an IA_NA the same checks apply to its sub-options.
    let ia_past_end = [
        1, 0, 0, 1, 0, 3, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 24,
    ];
    assert_eq!(reason(&ia_past_end), "option_length_past_end");
}

#[test]
fn wrong_length_for_fixed_size_options_is_an_error() {
    let cases: &[(u16, usize)] = &[
        (OPT_PREFERENCE, 2),
        (OPT_ELAPSED_TIME, 3),
        (OPT_UNICAST, 4),
        (OPT_RAPID_COMMIT, 1),
        (OPT_RECONF_ACCEPT, 1),
        (OPT_RECONF_MSG, 0),
        (OPT_ORO, 3),
        (OPT_DNS_SERVERS, 17),
        (OPT_LQ_CLIENT_LINK, 15),
        (OPT_INFORMATION_REFRESH_TIME, 2),
        (OPT_CLT_TIME, 5),
        (OPT_SOL_MAX_RT, 8),
        (OPT_LQ_BASE_TIME, 3),
        (OPT_IA_NA, 11),
        (OPT_IA_TA, 3),
        (OPT_IAADDR, 23),
        (OPT_IA_PD, 11),
        (OPT_IAPREFIX, 24),
        (OPT_STATUS_CODE, 1),
        (OPT_REMOTE_ID, 3),
        (OPT_LQ_QUERY, 16),
        (OPT_LQ_RELAY_DATA, 15),
    ];
    for &(code, len) in cases {
        let mut bytes = vec![MSG_INFORMATION_REQUEST, 0, 0, 1];
        bytes.extend_from_slice(&code.to_be_bytes());
        bytes.extend_from_slice(&(len as u16).to_be_bytes());
        bytes.resize(bytes.len() + len, 0);
        assert_eq!(
            decode(&bytes),
            Err(DecodeError::BadOptionLength { code, len }),
            "option {code} len {len}"
        );
    }
}

#[test]
fn unknown_options_are_kept_verbatim_not_errors() {
    // RFC 8415 §16: a server MUST NOT discard a message for an option it does not understand.
    let mut bytes = solicit_bytes();
    bytes.extend_from_slice(&[0x00, 0x4f, 0x00, 0x03, 9, 8, 7]); // 79 (client link-layer addr)
    bytes.extend_from_slice(&[0xff, 0xff, 0x00, 0x00]); // 65535, empty
    let packet = decode_ok(&bytes);
    let options = packet.options();
    assert_eq!(
        options[options.len() - 2..],
        [
            DhcpOption::Unknown {
                code: OPT_CLIENT_LINKLAYER_ADDR,
                data: vec![9, 8, 7]
            },
            DhcpOption::Unknown {
                code: 0xffff,
                data: vec![]
            },
        ]
    );
}

#[test]
fn relay_nesting_is_bounded_by_hop_count_limit() {
    let limit = usize::from(HOP_COUNT_LIMIT);
    let deepest = decode_ok(&relay_chain(limit));
    assert_eq!(deepest.unwrap_relays().0.len(), limit);
    assert_eq!(
        decode(&relay_chain(limit + 1)),
        Err(DecodeError::TooManyRelayHops)
    );
    assert_eq!(reason(&relay_chain(40)), "too_many_relay_hops");
    // The encoder refuses to build what the decoder would refuse.
    let Packet::Relay(top) = deepest else {
        panic!("relay")
    };
    let too_deep = top.reply_with(Packet::Relay(top.clone()));
    assert_eq!(too_deep.encode(), Err(EncodeError::TooManyRelayHops));
}

#[test]
fn malformed_relayed_message_is_reported_as_such() {
    let mut bytes = vec![MSG_RELAY_FORW, 0];
    bytes.extend_from_slice(&[0; 32]);
    bytes.extend_from_slice(&[0x00, 0x09, 0x00, 0x02, 0x01, 0x00]); // Solicit cut at 2 bytes
    let err = decode(&bytes).unwrap_err();
    assert_eq!(err.reason(), "relay_message_malformed");
    assert_eq!(err.root_cause().reason(), "truncated_header");
    // Two layers down, still wrapped once.
    let mut outer = vec![MSG_RELAY_FORW, 1];
    outer.extend_from_slice(&[0; 32]);
    outer.extend_from_slice(&OPT_RELAY_MSG.to_be_bytes());
    outer.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
    outer.extend_from_slice(&bytes);
    let err = decode(&outer).unwrap_err();
    assert!(matches!(&err, DecodeError::RelayMessageMalformed(inner)
        if matches!(**inner, DecodeError::TruncatedHeader { .. })));
}

#[test]
fn duid_length_limits_on_the_wire() {
    let with_client_id = |duid_len: usize| {
        let mut bytes = vec![MSG_SOLICIT, 0, 0, 1];
        bytes.extend_from_slice(&OPT_CLIENTID.to_be_bytes());
        bytes.extend_from_slice(&(duid_len as u16).to_be_bytes());
        bytes.extend((0..duid_len).map(|i| i as u8));
        bytes
    };
    assert_eq!(
        decode(&with_client_id(300)),
        Err(DecodeError::DuidTooLong {
            code: OPT_CLIENTID,
            len: 300
        })
    );
    assert_eq!(reason(&with_client_id(131)), "duid_too_long");
    assert_eq!(
        decode_ok(&with_client_id(130)).client_id().unwrap().len(),
        130
    );
    assert_eq!(reason(&with_client_id(0)), "duid_too_short");
    assert_eq!(reason(&with_client_id(2)), "duid_too_short");
}

#[test]
fn status_code_text_must_be_utf8() {
    let bytes = [
        MSG_REPLY, 0, 0, 1, 0x00, 0x0d, 0x00, 0x04, 0x00, 0x02, 0xff, 0xfe,
    ];
    assert_eq!(reason(&bytes), "bad_utf8");
    // 2 + 22 bytes: "désolé" has two 2-byte characters.
    let with_status =
        Message::new(MSG_REPLY, [0, 0, 1]).with_option(DhcpOption::StatusCode(StatusCode {
            code: STATUS_NO_ADDRS_AVAIL,
            message: "no addresses, désolé".into(),
        }));
    let encoded = with_status.encode().unwrap();
    assert_eq!(&encoded[4..10], &[0x00, 0x0d, 0x00, 24, 0x00, 0x02]);
    assert_eq!(decode_ok(&encoded), Packet::Message(with_status));
}

#[test]
fn option_nesting_is_bounded() {
    // CLIENT_DATA inside CLIENT_DATA ... 20 levels deep.
    let mut body: Vec<u8> = Vec::new();
    for _ in 0..20 {
        let mut wrapped = OPT_CLIENT_DATA.to_be_bytes().to_vec();
        wrapped.extend_from_slice(&(body.len() as u16).to_be_bytes());
        wrapped.extend_from_slice(&body);
        body = wrapped;
    }
    let mut bytes = vec![MSG_LEASEQUERY_REPLY, 0, 0, 1];
    bytes.extend_from_slice(&body);
    assert_eq!(reason(&bytes), "option_nesting_too_deep");

    let mut nested = DhcpOption::ClientData(vec![]);
    for _ in 0..MAX_OPTION_DEPTH {
        nested = DhcpOption::ClientData(vec![nested]);
    }
    let deepest_ok = Message::new(MSG_LEASEQUERY_REPLY, [0, 0, 1]).with_option(nested.clone());
    decode_ok(&deepest_ok.encode().unwrap());
    let too_deep = Message::new(MSG_LEASEQUERY_REPLY, [0, 0, 1])
        .with_option(DhcpOption::ClientData(vec![nested]));
    assert_eq!(too_deep.encode(), Err(EncodeError::OptionNestingTooDeep));
}

#[test]
fn every_reason_is_listed() {
    let samples = [
        reason(&[]),
        reason(&[0]),
        reason(&[1]),
        reason(&[1, 0, 0, 0, 0]),
        reason(&[1, 0, 0, 0, 0, 8, 0, 9]),
        reason(&[1, 0, 0, 0, 0, 8, 0, 1, 0]),
        reason(&relay_chain(9)),
    ];
    for r in samples {
        assert!(DecodeError::ALL_REASONS.contains(&r), "{r}");
    }
}
