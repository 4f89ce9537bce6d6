//! Client classes in the decisions: a class selects its pools and options, a client outside it
//! gets the default pool, and a client whose class changed loses a lease its pool no longer
//! serves on its next Renew (RFC 8415 section 18.3.4: NoBinding).

use super::*;

const CLASSES: &str = r#"
interfaces = ["eth1"]
[[client-classes]]
name = "acme-cpe"
vendor-class = { enterprise = 4491, prefix = "ACME-" }
[[client-classes.option]]
name = "aftr-name"
value = "aftr.acme.example"
[[client-classes.option]]
name = "dns-servers"
value = ["2001:db8:c::53"]

[[client-classes]]
name = "voip"
user-class = { data = "voip" }
[[client-classes.option]]
name = "dns-servers"
value = ["2001:db8:f::53"]
[[client-classes.option]]
name = "sntp-servers"
value = ["2001:db8:f::123"]

[[client-classes]]
name = "business"
relay-remote-id = { enterprise = 3561, id = "0b0b" }

[[subnet]]
id = 7
prefix = "2001:db8:1::/64"
interface = "eth1"
rapid-commit = true
dns-servers = ["2001:db8:1::53"]
[[subnet.pools]]
low = "2001:db8:1::c000"
high = "2001:db8:1::c0ff"
client-classes = ["acme-cpe"]
[[subnet.pools]]
low = "2001:db8:1::b000"
high = "2001:db8:1::b0ff"
client-classes = ["business"]
[[subnet.pools]]
low = "2001:db8:1::100"
high = "2001:db8:1::1ff"
[[subnet.pools.option]]
name = "sntp-servers"
value = ["2001:db8:c::123"]
"#;

fn vendor_class(enterprise: u32, data: &[u8]) -> DhcpOption {
    let mut body = enterprise.to_be_bytes().to_vec();
    body.extend_from_slice(&(data.len() as u16).to_be_bytes());
    body.extend_from_slice(data);
    DhcpOption::VendorClass(body)
}

fn user_class(data: &[u8]) -> DhcpOption {
    let mut body = (data.len() as u16).to_be_bytes().to_vec();
    body.extend_from_slice(data);
    DhcpOption::UserClass(body)
}

fn oro() -> DhcpOption {
    DhcpOption::Oro(vec![OPT_DNS_SERVERS, 31, 64])
}

fn na_of(reply: &Message) -> Option<Ipv6Addr> {
    reply.ia_nas().next()?.ia_addrs().next().map(|a| a.addr)
}

fn option_body(reply: &Message, code: u16) -> Option<Vec<u8>> {
    reply.options.iter().find(|o| o.code() == code).map(|o| {
        // Header (type, transaction id), then the option's code and length.
        let bytes = Message::new(MSG_REPLY, [0; 3])
            .with_option(o.clone())
            .encode()
            .unwrap();
        bytes[8..].to_vec()
    })
}

fn in_range(a: Ipv6Addr, low: &str, high: &str) -> bool {
    (addr(low)..=addr(high)).contains(&a)
}

/// A CPE sending the class's vendor class gets an address of the class's pool and the class's
/// options, the class's DNS servers replacing the subnet's.
#[test]
fn a_vendor_class_client_gets_the_class_pool_and_options() {
    let mut world = World::with_config(CLASSES);
    let solicit = msg(
        MSG_SOLICIT,
        &client(1),
        vec![
            ia_na(1, &[]),
            oro(),
            vendor_class(4491, b"ACME-CPE-X1"),
            DhcpOption::RapidCommit,
        ],
    );
    let (_, reply) = world.decide(solicit);
    let reply = reply.unwrap();
    let a = na_of(&reply).unwrap();
    assert!(in_range(a, "2001:db8:1::c000", "2001:db8:1::c0ff"), "{a}");
    assert_eq!(
        option_body(&reply, OPT_DNS_SERVERS).unwrap(),
        addr("2001:db8:c::53").octets()
    );
    assert!(option_body(&reply, 64).is_some(), "the class's AFTR-Name");
}

/// A client sending another vendor's class (or none) is in no class: the default pool, the
/// subnet's options, none of the class's.
#[test]
fn a_client_outside_the_class_gets_the_default_pool() {
    let mut world = World::with_config(CLASSES);
    for (n, extra) in [(2, Some(vendor_class(9, b"ACME-CPE-X1"))), (3, None)] {
        let mut options = vec![ia_na(1, &[]), oro(), DhcpOption::RapidCommit];
        options.extend(extra);
        let (_, reply) = world.decide(msg(MSG_SOLICIT, &client(n), options));
        let reply = reply.unwrap();
        let a = na_of(&reply).unwrap();
        assert!(in_range(a, "2001:db8:1::100", "2001:db8:1::1ff"), "{a}");
        assert_eq!(
            option_body(&reply, OPT_DNS_SERVERS).unwrap(),
            addr("2001:db8:1::53").octets()
        );
        assert_eq!(option_body(&reply, 64), None);
        assert!(
            option_body(&reply, 31).is_some(),
            "the default pool's option"
        );
    }
}

/// A relay's Remote-ID puts the line in the business class: its pool.
#[test]
fn a_remote_id_class_selects_its_pool() {
    let mut world = World::with_config(CLASSES);
    let relayed = |message: Message, id: &[u8]| -> Packet {
        RelayMessage {
            msg_type: MSG_RELAY_FORW,
            hop_count: 0,
            link_address: addr("2001:db8:1::1"),
            peer_address: addr("fe80::99"),
            options: vec![
                DhcpOption::RemoteId(RemoteId {
                    enterprise: 3561,
                    remote_id: id.to_vec(),
                }),
                DhcpOption::RelayMsg(Box::new(message.into())),
            ],
        }
        .into()
    };
    let solicit = |n| {
        msg(
            MSG_SOLICIT,
            &client(n),
            vec![ia_na(1, &[]), DhcpOption::RapidCommit],
        )
    };
    let granted = |world: &mut World, packet| {
        let (decision, _) = world.decide_with(packet, "ff02::1:2", &NoLimit, NOW);
        decision.events[0].lease.address
    };
    let business = granted(&mut world, relayed(solicit(4), &[0x0b, 0x0b]));
    assert!(in_range(business, "2001:db8:1::b000", "2001:db8:1::b0ff"));
    let other = granted(&mut world, relayed(solicit(5), &[0x0c, 0x0c]));
    assert!(in_range(other, "2001:db8:1::100", "2001:db8:1::1ff"));
}

/// Of two classes setting a code, the first in the file wins; a pool's option beats both.
#[test]
fn the_first_class_wins_and_a_pool_beats_a_class() {
    let mut world = World::with_config(CLASSES);
    let (_, reply) = world.decide(msg(
        MSG_SOLICIT,
        &client(6),
        vec![
            ia_na(1, &[]),
            oro(),
            user_class(b"voip"),
            vendor_class(4491, b"ACME-CPE-X1"),
            DhcpOption::RapidCommit,
        ],
    ));
    let reply = reply.unwrap();
    assert_eq!(
        option_body(&reply, OPT_DNS_SERVERS).unwrap(),
        addr("2001:db8:c::53").octets(),
        "acme-cpe comes first in the file"
    );
    // In voip alone: the default pool, whose SNTP server beats the class's.
    let (_, reply) = world.decide(msg(
        MSG_SOLICIT,
        &client(9),
        vec![
            ia_na(1, &[]),
            oro(),
            user_class(b"voip"),
            DhcpOption::RapidCommit,
        ],
    ));
    let reply = reply.unwrap();
    assert_eq!(
        option_body(&reply, OPT_DNS_SERVERS).unwrap(),
        addr("2001:db8:f::53").octets()
    );
    assert_eq!(
        option_body(&reply, 31).unwrap(),
        addr("2001:db8:c::123").octets(),
        "the pool's, not the class's"
    );
    let (_, reply) = world.decide(msg(
        MSG_INFORMATION_REQUEST,
        &client(7),
        vec![oro(), user_class(b"voip")],
    ));
    assert_eq!(
        option_body(&reply.unwrap(), OPT_DNS_SERVERS).unwrap(),
        addr("2001:db8:f::53").octets(),
        "an Information-Request gets the class's options too"
    );
}

/// A client that leaves its class (stops sending the vendor class) is told NoBinding for the
/// class pool's address on its next Renew (RFC 8415 section 18.3.4: the server "cannot find a
/// client entry for the IA" it may keep); the Request that follows (section 18.2.10.1) gets an
/// address of the default pool.
#[test]
fn a_client_whose_class_changed_gets_no_binding_then_a_default_pool_lease() {
    let mut world = World::with_config(CLASSES);
    let acme = vendor_class(4491, b"ACME-CPE-X1");
    let (_, reply) = world.decide(msg(
        MSG_SOLICIT,
        &client(8),
        vec![ia_na(1, &[]), acme.clone(), DhcpOption::RapidCommit],
    ));
    let a = na_of(&reply.unwrap()).unwrap();
    let server = DhcpOption::ServerId(server_duid());
    let held = a.to_string();
    // Still in the class: the Renew extends it.
    let (_, reply) = world.decide(msg(
        MSG_RENEW,
        &client(8),
        vec![server.clone(), ia_na(1, &[&held]), acme],
    ));
    assert_eq!(na_of(&reply.unwrap()), Some(a));
    // Out of the class.
    let (decision, reply) = world.decide(msg(
        MSG_RENEW,
        &client(8),
        vec![server.clone(), ia_na(1, &[&held])],
    ));
    let reply = reply.unwrap();
    let na = reply.ia_nas().next().unwrap();
    assert_eq!(status_in(&na.options), Some(STATUS_NO_BINDING));
    assert!(decision.changes.is_empty(), "nothing extended");
    let (_, reply) = world.decide(msg(
        MSG_REQUEST,
        &client(8),
        vec![server, ia_na(1, &[&held])],
    ));
    let b = na_of(&reply.unwrap()).unwrap();
    assert!(in_range(b, "2001:db8:1::100", "2001:db8:1::1ff"), "{b}");
}
