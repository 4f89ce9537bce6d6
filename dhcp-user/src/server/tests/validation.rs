//! What is dropped or refused before a decision: RFC 8415 §16 validation, unicast, non-client messages.

use super::*;

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
