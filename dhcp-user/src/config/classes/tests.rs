use super::*;
use crate::config::ConfigError;
use crate::proto::{Duid, RemoteId};
use dhcp_common::dhcpv6::{MSG_RELAY_FORW, MSG_SOLICIT};

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "classes.toml")
}

const SUBNET: &str = r#"
[[subnet]]
prefix = "2001:db8:1::/64"
interface = "eth1"
"#;

fn with_subnet(classes: &str) -> String {
    format!("{classes}{SUBNET}")
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

fn solicit(options: Vec<DhcpOption>) -> Message {
    let mut m = Message::new(MSG_SOLICIT, [1, 2, 3]).with_option(DhcpOption::ClientId(
        Duid::ll(1, &[2, 0, 0, 0, 0, 1]).unwrap(),
    ));
    m.options.extend(options);
    m
}

fn members(config: &Config, message: &Message, relays: &[&RelayMessage], iface: &str) -> u64 {
    member_of(
        config,
        &ClassInput {
            message,
            relays,
            interface: iface,
        },
    )
    .0
}

fn vendor(enterprise: u32, items: &[&[u8]]) -> DhcpOption {
    let mut body = enterprise.to_be_bytes().to_vec();
    for item in items {
        body.extend_from_slice(&(item.len() as u16).to_be_bytes());
        body.extend_from_slice(item);
    }
    DhcpOption::VendorClass(body)
}

/// A pool naming a class that is not defined is refused, naming the file, the line and the key.
#[test]
fn an_unknown_class_in_a_pool_names_file_line_and_key() {
    let text = r#"
[[subnet]]
prefix = "2001:db8:1::/64"
interface = "eth1"
pools = [{ low = "2001:db8:1::1", high = "2001:db8:1::9", client-classes = ["nope"] }]
"#;
    let message = err(text);
    assert!(message.contains("classes.toml, line 5"), "{message}");
    assert!(
        message.contains("subnet[0].pools[0].client-classes[0]"),
        "{message}"
    );
    assert!(message.contains("`nope`"), "{message}");
}

/// A class must say who is in it, have a name of its own, and each data match say exact or
/// prefix, not both.
#[test]
fn bad_classes_are_refused_with_their_key() {
    let none = with_subnet("[[client-classes]]\nname = \"all\"\n");
    assert!(
        err(&none).contains("client-classes[0].name"),
        "{}",
        err(&none)
    );
    assert!(err(&none).contains("no condition"));
    let twice = with_subnet(
        "[[client-classes]]\nname = \"a\"\nduid-prefix = \"0003\"\n\
         [[client-classes]]\nname = \"a\"\nduid-prefix = \"0001\"\n",
    );
    let message = err(&twice);
    assert!(
        message.contains("line 5") && message.contains("client-classes[1].name"),
        "{message}"
    );
    let both = with_subnet(
        "[[client-classes]]\nname = \"a\"\nuser-class = { data = \"x\", prefix = \"y\" }\n",
    );
    assert!(err(&both).contains("client-classes[0].user-class"));
    let unknown = with_subnet("[[client-classes]]\nname = \"a\"\nvendor = 1\n");
    assert!(err(&unknown).contains("line 3"), "{}", err(&unknown));
}

/// Vendor Class: the enterprise number and a data item, exact or prefix, of any option 16 the
/// message carries; a truncated body matches nothing (and does not panic).
#[test]
fn vendor_class_matches_enterprise_and_data() {
    let config = parse(&with_subnet(
        r#"
[[client-classes]]
name = "exact"
vendor-class = { enterprise = 4491, data = "CPE-1" }
[[client-classes]]
name = "prefix"
vendor-class = { prefix = "CPE" }
[[client-classes]]
name = "enterprise"
vendor-class = { enterprise = 4491 }
"#,
    ))
    .unwrap();
    let m = |options| members(&config, &solicit(options), &[], "eth1");
    assert_eq!(m(vec![vendor(4491, &[b"x", b"CPE-1"])]), 0b111);
    assert_eq!(m(vec![vendor(4491, &[b"CPE-12"])]), 0b110);
    assert_eq!(m(vec![vendor(9, &[b"CPE-1"])]), 0b010);
    assert_eq!(m(vec![vendor(9, &[]), vendor(4491, &[])]), 0b100);
    assert_eq!(
        m(vec![DhcpOption::VendorClass(vec![
            0, 0, 0x11, 0x8b, 0, 9, b'C'
        ])]),
        0b100
    );
    assert_eq!(m(vec![DhcpOption::VendorClass(vec![0, 1])]), 0);
    assert_eq!(m(vec![]), 0);
}

/// User Class, relay Interface-ID (any hop), the innermost relay's Remote-ID, the interface (a
/// pattern) and the DUID prefix; several conditions must all hold.
#[test]
fn other_conditions_and_all_must_hold() {
    let config = parse(&with_subnet(
        r#"
[[client-classes]]
name = "voip"
user-class = { data = "voip" }
[[client-classes]]
name = "port"
relay-interface-id = "ge-0/0/1.100"
[[client-classes]]
name = "line"
relay-remote-id = { enterprise = 3561, id = "0a0b" }
[[client-classes]]
name = "vlans"
interfaces = ["eth1.1??"]
[[client-classes]]
name = "ll-voip"
duid-prefix = "00:03"
user-class = { prefix = "vo" }
"#,
    ))
    .unwrap();
    let user = DhcpOption::UserClass(vec![0, 4, b'v', b'o', b'i', b'p']);
    assert_eq!(
        members(&config, &solicit(vec![user.clone()]), &[], "eth1"),
        0b10001
    );
    assert_eq!(members(&config, &solicit(vec![]), &[], "eth1.100"), 0b01000);
    assert_eq!(members(&config, &solicit(vec![]), &[], "eth1.10"), 0);
    let hop = |options: Vec<DhcpOption>| RelayMessage {
        msg_type: MSG_RELAY_FORW,
        hop_count: 0,
        link_address: "2001:db8:1::1".parse().unwrap(),
        peer_address: "fe80::1".parse().unwrap(),
        options,
    };
    let inner = hop(vec![
        DhcpOption::RemoteId(RemoteId {
            enterprise: 3561,
            remote_id: vec![0x0a, 0x0b],
        }),
        DhcpOption::InterfaceId(b"ge-0/0/1.100".to_vec()),
    ]);
    let outer = hop(vec![DhcpOption::InterfaceId(b"core".to_vec())]);
    assert_eq!(
        members(&config, &solicit(vec![]), &[&outer, &inner], "eth0"),
        0b00110
    );
    // The Remote-ID counts only from the relay closest to the client.
    assert_eq!(
        members(&config, &solicit(vec![]), &[&inner, &outer], "eth0"),
        0b00010
    );
}

/// Where the classes leave the fast path: class options shape every subnet; a pool kept for
/// classes shapes its shared network only; classes with neither shape nothing.
#[test]
fn which_subnets_classes_shape() {
    let inert = parse(&format!(
        "[[client-classes]]\nname = \"a\"\nduid-prefix = \"0003\"\n{SUBNET}"
    ))
    .unwrap();
    assert!(!inert.classes_shape_subnet(0));
    let pools = parse(
        r#"
[[client-classes]]
name = "a"
duid-prefix = "0003"
[[subnet]]
prefix = "2001:db8:1::/64"
shared-network = "n"
pools = [{ low = "2001:db8:1::1", high = "2001:db8:1::9", client-classes = ["a"] }]
[[subnet]]
prefix = "2001:db8:2::/64"
shared-network = "n"
[[subnet]]
prefix = "2001:db8:3::/64"
"#,
    )
    .unwrap();
    assert!(pools.classes_shape_subnet(0) && pools.classes_shape_subnet(1));
    assert!(!pools.classes_shape_subnet(2));
    let options = parse(&format!(
        "[[client-classes]]\nname = \"a\"\nduid-prefix = \"0003\"\n\
         [[client-classes.option]]\nname = \"sntp-servers\"\nvalue = [\"2001:db8::1\"]\n{SUBNET}"
    ))
    .unwrap();
    assert!(options.classes_shape_subnet(0));
}

/// How the fast path follows classes (`SubnetConfig::client_classes`): not at all where they
/// shape nothing; by comparing inputs, with bare Information-Requests answered when every
/// class with options needs a Vendor or User Class, and relay values too when a shaping class
/// looks at them (a relay class shaping nothing does not count); passed whole when a relay
/// value is longer than the program looks up.
#[test]
fn how_the_fast_path_follows_classes() {
    use dhcp_common::{CLASSES_BARE_INFORMATION, CLASSES_CHECK, CLASSES_PASS};
    let option = "[[client-classes.option]]\nname = \"sntp-servers\"\nvalue = [\"2001:db8::1\"]\n";
    let mode = |classes: &str| parse(&with_subnet(classes)).unwrap().fast_path_classes(0);
    assert_eq!(
        mode("[[client-classes]]\nname = \"a\"\nduid-prefix = \"0003\"\n"),
        0
    );
    let vendor = format!(
        "[[client-classes]]\nname = \"v\"\nvendor-class = {{ enterprise = 4491 }}\n{option}"
    );
    assert_eq!(mode(&vendor), CLASSES_CHECK | CLASSES_BARE_INFORMATION);
    let duid = format!("[[client-classes]]\nname = \"d\"\nduid-prefix = \"0003\"\n{option}");
    assert_eq!(mode(&duid), CLASSES_CHECK);
    let remote = format!(
        "[[client-classes]]\nname = \"r\"\n\
         relay-remote-id = {{ enterprise = 9, id = \"01\" }}\n{option}"
    );
    assert_eq!(
        mode(&remote),
        CLASSES_CHECK | dhcp_common::CLASSES_CHECK_RELAYS
    );
    let long = vec!["ab"; 80].join(":");
    let overlong = format!(
        "[[client-classes]]\nname = \"r\"\n\
         relay-remote-id = {{ enterprise = 9, id = \"{long}\" }}\n{option}"
    );
    assert_eq!(mode(&overlong), CLASSES_PASS);
    let notes = parse(&with_subnet(&overlong))
        .unwrap()
        .fast_path_class_notes();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].contains("2001:db8:1::/64") && notes[0].contains("64 bytes"),
        "{notes:?}"
    );
    assert!(parse(&with_subnet(&remote))
        .unwrap()
        .fast_path_class_notes()
        .is_empty());
    let inert_relay =
        format!("[[client-classes]]\nname = \"r\"\nrelay-interface-id = \"port-1\"\n{vendor}");
    assert_eq!(mode(&inert_relay), CLASSES_CHECK | CLASSES_BARE_INFORMATION);
}

/// What a message's classes are judged on: its one User and Vendor Class (none: absent), or
/// nothing the fast path can compare when it carries two of either; membership from those
/// facts is the message's own.
#[test]
fn class_facts_of_a_message_judge_as_the_message() {
    let config = parse(&with_subnet(
        "[[client-classes]]\nname = \"v\"\nvendor-class = { enterprise = 4491, data = \"CPE\" }\n\
         [[client-classes]]\nname = \"d\"\nduid-prefix = \"0003\"\n\
         [[client-classes]]\nname = \"i\"\ninterfaces = [\"eth*\"]\n",
    ))
    .unwrap();
    let message = solicit(vec![vendor(4491, &[b"CPE"])]);
    let facts = ClassFacts::of(&message, None, "eth1", 7).unwrap();
    assert_eq!(facts.user_class, None);
    assert_eq!(facts.ifindex, 7);
    let duid = message.client_id().unwrap().as_bytes().to_vec();
    assert_eq!(
        facts.member_in(&config.client_classes, &duid).0,
        members(&config, &message, &[], "eth1")
    );
    assert_eq!(facts.member_in(&config.client_classes, &duid).0, 0b111);
    let twice = solicit(vec![vendor(4491, &[b"CPE"]), vendor(9, &[b"x"])]);
    assert_eq!(ClassFacts::of(&twice, None, "eth1", 7), None);
}
