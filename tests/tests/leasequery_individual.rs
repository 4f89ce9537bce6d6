//! Individual leasequery (RFC 5007): queries built byte by byte, answered by
//! `leasequery::answer_udp`, the reply's every field read back byte by byte.

mod leasequery_common;

use std::net::Ipv6Addr;

use dhcp_user::leasequery::{answer_udp, LeasequerySettings};
use dhcp_user::proto::{Duid, Message};
use dhcp_user::store::{LeaseChange, LeaseStore, SqliteStore};
use leasequery_common::*;

const REQUESTOR: Ipv6Addr = Ipv6Addr::LOCALHOST;

struct Setup {
    store: SqliteStore,
    t0: i64,
    _dir: std::path::PathBuf,
}

fn setup() -> Setup {
    let dir = temp_dir("ind");
    let store = SqliteStore::open(dir.join("leases.db")).unwrap();
    let t0 = now() - 100;
    let mut relayed = na(addr("2001:db8:1::100"), 1, LINK_A, t0);
    relayed.relay_info = relay_forw_bytes();
    relayed.relay_id = Some(vec![0, 2, 0, 0, 0, 9, 1, 2]);
    let changes = vec![
        LeaseChange::Upsert(relayed),
        LeaseChange::Upsert(pd(addr("2001:db8:8000:100::"), 56, 1, LINK_A, t0 - 50)),
        // Client 2 has bindings on two links.
        LeaseChange::Upsert(na(addr("2001:db8:1::200"), 2, LINK_A, t0)),
        LeaseChange::Upsert(na(addr("2001:db8:2::200"), 2, LINK_B, t0 - 10)),
        // Client 3's lease has expired.
        LeaseChange::Upsert(na(addr("2001:db8:1::300"), 3, LINK_A, t0 - 10_000)),
    ];
    store.commit(&changes, t0).unwrap();
    Setup {
        store,
        t0,
        _dir: dir,
    }
}

/// A Relay-Forw from relay link 2001:db8:1::1 with peer fe80::1, an Interface-ID "ab" and the
/// client's Solicit.
fn relay_forw_bytes() -> Vec<u8> {
    let mut m = relay_header();
    m.extend(opt(18, b"ab"));
    m.extend(opt(9, &[1, 0xa, 0xb, 0xc, 0, 8, 0, 2, 0, 0]));
    m
}

fn relay_header() -> Vec<u8> {
    let mut m = vec![12, 0];
    m.extend_from_slice(&LINK_A.octets());
    m.extend_from_slice(&addr("fe80::1").octets());
    m
}

fn server_duid() -> Duid {
    Duid::new(SERVER_DUID.to_vec()).unwrap()
}

fn ask(setup: &Setup, bytes: &[u8], settings: &LeasequerySettings) -> Option<RawMsg> {
    let message = Message::decode(bytes).unwrap();
    let reply = answer_udp(
        &message,
        REQUESTOR,
        &setup.store,
        settings,
        &server_duid(),
        setup.t0 + 100,
    )?;
    Some(parse_msg(&reply.encode().unwrap()))
}

fn check_header(reply: &RawMsg, xid: [u8; 3]) {
    assert_eq!(reply.msg_type, 15, "LEASEQUERY-REPLY");
    assert_eq!(reply.xid, xid);
    assert_eq!(
        reply.get(1),
        Some(&REQUESTOR_DUID[..]),
        "requestor's Client ID echoed"
    );
    assert_eq!(reply.get(2), Some(&SERVER_DUID[..]), "Server ID");
}

#[test]
fn by_address_returns_client_data_with_the_clients_bindings_on_the_link() {
    let s = setup();
    let q = query(
        14,
        [1, 2, 3],
        1,
        Ipv6Addr::UNSPECIFIED,
        &iaaddr_opt(addr("2001:db8:1::100")),
        &[],
    );
    let reply = ask(&s, &q, &settings()).unwrap();
    check_header(&reply, [1, 2, 3]);
    assert_eq!(reply.get(13), None, "success carries no status");
    assert_eq!(reply.get(48), None);
    let data = reply.client_data().expect("OPTION_CLIENT_DATA");
    let codes: Vec<u16> = data.iter().map(|(c, _)| *c).collect();
    assert_eq!(
        codes,
        vec![1, 5, 26, 46],
        "Client ID, IAADDR, IAPREFIX, CLT_TIME"
    );
    assert_eq!(find(&data, 1)[0], &duid(1)[..]);
    // At t0+100: the address was given at t0 (3600/7200), the prefix at t0-50.
    assert_eq!(
        iaaddr(find(&data, 5)[0]),
        (addr("2001:db8:1::100"), 3500, 7100)
    );
    assert_eq!(
        iaprefix(find(&data, 26)[0]),
        (addr("2001:db8:8000:100::"), 56, 3450, 7050)
    );
    assert_eq!(
        be32(find(&data, 46)[0]),
        100,
        "CLT_TIME: seconds since the newest transaction"
    );
    assert!(find(&data, 47).is_empty(), "no relay data unless asked");
}

#[test]
fn by_address_inside_a_delegated_prefix_finds_the_prefix() {
    let s = setup();
    let q = query(
        14,
        [0, 0, 7],
        1,
        Ipv6Addr::UNSPECIFIED,
        &iaaddr_opt(addr("2001:db8:8000:100:1::5")),
        &[],
    );
    let reply = ask(&s, &q, &settings()).unwrap();
    check_header(&reply, [0, 0, 7]);
    let data = reply.client_data().unwrap();
    assert_eq!(find(&data, 1)[0], &duid(1)[..]);
    assert_eq!(
        iaprefix(find(&data, 26)[0]),
        (addr("2001:db8:8000:100::"), 56, 3450, 7050)
    );
}

#[test]
fn relay_data_when_the_oro_asks() {
    let s = setup();
    let mut qopts = iaaddr_opt(addr("2001:db8:1::100"));
    qopts.extend(opt(6, &47u16.to_be_bytes()));
    let q = query(14, [9, 9, 9], 1, Ipv6Addr::UNSPECIFIED, &qopts, &[]);
    let reply = ask(&s, &q, &settings()).unwrap();
    let data = reply.client_data().unwrap();
    let codes: Vec<u16> = data.iter().map(|(c, _)| *c).collect();
    assert_eq!(codes, vec![1, 5, 26, 46, 47]);
    let relay = find(&data, 47)[0];
    assert_eq!(&relay[..16], &LINK_A.octets(), "peer-address");
    // The relay message as received minus the Relay Message option holding the client's.
    let mut expected = relay_header();
    expected.extend(opt(18, b"ab"));
    assert_eq!(&relay[16..], &expected[..]);
}

#[test]
fn by_client_id_on_several_links_gives_lq_client_link_then_one_link() {
    let s = setup();
    let q = query(
        14,
        [4, 5, 6],
        2,
        Ipv6Addr::UNSPECIFIED,
        &opt(1, &duid(2)),
        &[],
    );
    let reply = ask(&s, &q, &settings()).unwrap();
    check_header(&reply, [4, 5, 6]);
    assert_eq!(
        reply.get(45),
        None,
        "no client data when the link is ambiguous"
    );
    let links = reply.get(48).expect("OPTION_LQ_CLIENT_LINK");
    let mut expected = LINK_A.octets().to_vec();
    expected.extend_from_slice(&LINK_B.octets());
    assert_eq!(links, &expected[..]);

    let q = query(14, [4, 5, 7], 2, LINK_B, &opt(1, &duid(2)), &[]);
    let reply = ask(&s, &q, &settings()).unwrap();
    check_header(&reply, [4, 5, 7]);
    assert_eq!(reply.get(48), None);
    let data = reply.client_data().unwrap();
    assert_eq!(
        data.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        vec![1, 5, 46]
    );
    assert_eq!(
        iaaddr(find(&data, 5)[0]),
        (addr("2001:db8:2::200"), 3490, 7090)
    );
    assert_eq!(be32(find(&data, 46)[0]), 110);
}

#[test]
fn no_binding_is_a_reply_without_client_data() {
    let s = setup();
    for q in [
        query(
            14,
            [1, 1, 1],
            1,
            Ipv6Addr::UNSPECIFIED,
            &iaaddr_opt(addr("2001:db8:1::300")),
            &[],
        ),
        query(
            14,
            [1, 1, 1],
            1,
            Ipv6Addr::UNSPECIFIED,
            &iaaddr_opt(addr("2001:db8:1::999")),
            &[],
        ),
        query(
            14,
            [1, 1, 1],
            2,
            Ipv6Addr::UNSPECIFIED,
            &opt(1, &duid(77)),
            &[],
        ),
    ] {
        let reply = ask(&s, &q, &settings()).unwrap();
        check_header(&reply, [1, 1, 1]);
        assert_eq!(reply.codes(), vec![1, 2], "only the IDs: {reply:?}");
    }
}

fn status_of(s: &Setup, q: &[u8], settings: &LeasequerySettings) -> u16 {
    let reply = ask(s, q, settings).unwrap();
    assert_eq!(reply.msg_type, 15);
    assert_eq!(reply.get(45), None);
    reply.status().0
}

#[test]
fn status_codes() {
    let s = setup();
    let any = Ipv6Addr::UNSPECIFIED;
    // UnknownQueryType (7).
    assert_eq!(
        status_of(&s, &query(14, [0; 3], 9, any, &[], &[]), &settings()),
        7
    );
    // MalformedQuery (8): no LQ_QUERY; by-address without IAADDR; by-client without Client ID.
    let mut bare = vec![14, 0, 0, 1];
    bare.extend(opt(1, &REQUESTOR_DUID));
    assert_eq!(status_of(&s, &bare, &settings()), 8);
    assert_eq!(
        status_of(&s, &query(14, [0; 3], 1, any, &[], &[]), &settings()),
        8
    );
    assert_eq!(
        status_of(&s, &query(14, [0; 3], 2, any, &[], &[]), &settings()),
        8
    );
    // NotConfigured (9): a link this server does not serve; an address outside its space.
    let foreign = addr("2001:db8:99::1");
    assert_eq!(
        status_of(
            &s,
            &query(14, [0; 3], 2, foreign, &opt(1, &duid(1)), &[]),
            &settings()
        ),
        9
    );
    assert_eq!(
        status_of(
            &s,
            &query(14, [0; 3], 1, any, &iaaddr_opt(foreign), &[]),
            &settings()
        ),
        9
    );
    // NotAllowed (10): requestor outside the allow-list; empty allow-list; restricted mode
    // without the requestor's Relay-ID; a bulk-only query type over UDP.
    let q = query(
        14,
        [0; 3],
        1,
        any,
        &iaaddr_opt(addr("2001:db8:1::100")),
        &[],
    );
    let mut other = settings();
    other.allow = vec![dhcp_user::config::parse_prefix("2001:db8:1::/64").unwrap()];
    assert_eq!(status_of(&s, &q, &other), 10);
    let nobody = LeasequerySettings {
        allow: Vec::new(),
        ..settings()
    };
    assert_eq!(status_of(&s, &q, &nobody), 10);
    let restricted = LeasequerySettings {
        restricted_requestors: true,
        ..settings()
    };
    assert_eq!(status_of(&s, &q, &restricted), 10);
    assert_eq!(
        status_of(&s, &query(14, [0; 3], 4, LINK_A, &[], &[]), &settings()),
        10
    );
}

#[test]
fn restricted_requestor_sees_only_bindings_of_its_relay() {
    let s = setup();
    let restricted = LeasequerySettings {
        restricted_requestors: true,
        ..settings()
    };
    let q_for = |relay: &[u8]| {
        query(
            14,
            [2, 2, 2],
            1,
            Ipv6Addr::UNSPECIFIED,
            &iaaddr_opt(addr("2001:db8:1::100")),
            &opt(53, relay),
        )
    };
    let reply = ask(&s, &q_for(&[0, 2, 0, 0, 0, 9, 1, 2]), &restricted).unwrap();
    let data = reply.client_data().expect("own relay's binding");
    // Only the address came through that relay; the prefix has no Relay-ID.
    assert_eq!(
        data.iter().map(|(c, _)| *c).collect::<Vec<_>>(),
        vec![1, 5, 46]
    );
    let reply = ask(&s, &q_for(&[0, 2, 0, 0, 0, 9, 7, 7]), &restricted).unwrap();
    assert_eq!(
        reply.codes(),
        vec![1, 2],
        "another relay's requestor sees nothing"
    );
}

#[test]
fn other_servers_queries_and_other_types_are_not_answered() {
    let s = setup();
    let mut q = query(
        14,
        [0; 3],
        1,
        Ipv6Addr::UNSPECIFIED,
        &iaaddr_opt(addr("2001:db8:1::100")),
        &[],
    );
    q.extend(opt(2, &[0, 3, 0, 1, 9, 9, 9, 9, 9, 9]));
    assert!(
        ask(&s, &q, &settings()).is_none(),
        "Server ID of another server: dropped"
    );
    let mut solicit = vec![1, 0, 0, 1];
    solicit.extend(opt(1, &REQUESTOR_DUID));
    assert!(ask(&s, &solicit, &settings()).is_none());
}
