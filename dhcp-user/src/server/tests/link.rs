//! On-link checks and stateless service: Confirm, off-link addresses, Information-request.

use super::*;

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
