//! Interface groups, shared networks and line identity (issue 16 parts 2 and 4), against the
//! server process: direct clients on two links of one interface group; a relay (hand-built
//! Relay-Forw frames, dhcp-testwire) sending Remote-ID and option 79 for the clients behind it.

mod server_common;

use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::time::Duration;

use dhcp_common::dhcpv6::*;
use dhcp_lab::{Lab, Namespace};
use dhcp_testwire::dhcpv6::{client_duid, find, ia_na, ia_pd, msg, opt, options, parse_ia};
use server_common::{lab_config, spawn_server, LabServer};

/// What a client gets for one IA: its address or prefix, or the IA's status code.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    Lease(Ipv6Addr, u8),
    Status(u16),
}

/// A Solicit with Rapid Commit from client `n` with one IA_NA (`pd` false) or IA_PD.
fn rapid_solicit(n: u32, pd: bool) -> Vec<u8> {
    let ia = if pd {
        ia_pd(1, 0, 0, None)
    } else {
        ia_na(1, 0, 0, None)
    };
    msg(
        MSG_SOLICIT,
        0x4000 + n,
        &[
            opt(OPT_CLIENTID, &client_duid(n)),
            ia,
            opt(OPT_RAPID_COMMIT, &[]),
        ],
    )
}

/// The IA of a Reply's client message (a Relay-Repl's is unwrapped first).
fn ia_of(reply: &[u8], pd: bool) -> Got {
    let mut message = reply;
    while message.first() == Some(&MSG_RELAY_REPL) {
        let opts = options(&message[34..]).expect("Relay-Repl options");
        message = find(&opts, OPT_RELAY_MSG).expect("a Relay Message");
    }
    assert_eq!(message[0], MSG_REPLY, "{message:02x?}");
    let opts = options(&message[4..]).expect("reply options");
    let code = if pd { OPT_IA_PD } else { OPT_IA_NA };
    let ia = parse_ia(find(&opts, code).expect("the IA"), pd).expect("an IA");
    match (ia.status, ia.leases.first()) {
        (None, Some((address, len, _, valid))) if *valid > 0 => Got::Lease(*address, *len),
        (status, _) => Got::Status(status.unwrap_or(STATUS_SUCCESS)),
    }
}

/// Sends `payload` to `to` and waits for one answer (three tries), `None` when none comes.
fn exchange(socket: &UdpSocket, payload: &[u8], to: SocketAddrV6) -> Option<Vec<u8>> {
    socket
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    let mut buf = vec![0u8; 4096];
    for _ in 0..3 {
        socket.send_to(payload, to).unwrap();
        if let Ok((len, _)) = socket.recv_from(&mut buf) {
            return Some(buf[..len].to_vec());
        }
    }
    None
}

// ---- an interface group: one subnet on two links ----

/// A server namespace with two links, each to a client namespace of its own; the server's
/// ends carry no address of the subnet, so only the subnet's `interfaces` patterns tie them
/// to it.
struct TwoLinks {
    _server_ns: Namespace,
    clients: Vec<(Namespace, dhcp_lab::VethPair)>,
    state_dir: std::path::PathBuf,
    server: std::process::Child,
    _lab: Lab,
}

impl TwoLinks {
    fn start(config: &str) -> TwoLinks {
        let lab = Lab::new();
        let server_ns = lab.namespace("srv").expect("server namespace");
        let mut clients = Vec::new();
        for role in ["cla", "clb"] {
            let ns = lab.namespace(role).expect("client namespace");
            let link = lab.link(&server_ns, None, &ns, None).expect("veth pair");
            clients.push((ns, link));
        }
        let state_dir =
            std::env::temp_dir().join(format!("dhcp-user-test-group-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&state_dir);
        std::fs::create_dir_all(&state_dir).unwrap();
        let config_path = state_dir.join("server.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut args: Vec<std::ffi::OsString> = vec!["--config".into(), config_path.into()];
        for (_, link) in &clients {
            args.extend(["--iface".into(), link.a.ifname.clone().into()]);
        }
        args.extend([
            "--state-dir".into(),
            state_dir.clone().into(),
            "--xdp".into(),
            "off".into(),
        ]);
        let server = spawn_server(&server_ns, &args, &state_dir);
        TwoLinks {
            _server_ns: server_ns,
            clients,
            state_dir,
            server,
            _lab: lab,
        }
    }

    /// Client `n` on link `link` solicits an address from its link-local address.
    fn solicit(&self, link: usize, n: u32) -> Got {
        let (ns, veth) = &self.clients[link];
        let local = SocketAddrV6::new(veth.b.link_local, 546, 0, veth.b.ifindex);
        let socket = ns
            .run_in(move || UdpSocket::bind(local))
            .expect("entering the client namespace")
            .expect("binding the client socket");
        let group = SocketAddrV6::new(
            Ipv6Addr::from(ALL_RELAYS_AND_SERVERS),
            547,
            0,
            veth.b.ifindex,
        );
        let reply = exchange(&socket, &rapid_solicit(n, false), group)
            .unwrap_or_else(|| panic!("no reply on link {link}:\n{}", self.log()));
        ia_of(&reply, false)
    }

    fn log(&self) -> String {
        server_common::log_tail(&self.state_dir, 40)
    }
}

impl Drop for TwoLinks {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        if std::thread::panicking() {
            eprintln!("server log:\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.state_dir);
    }
}

/// Two links in one interface group (a name pattern) share one pool: a client on each link
/// gets one of its two addresses, and a third finds it exhausted.
#[test]
fn two_links_in_one_interface_group_share_a_pool() {
    let config = r#"
[[subnet]]
id = 1
prefix = "2001:db8:1::/64"
interfaces = ["v*-cla", "v*-clb"]
pools = [{ low = "2001:db8:1::100", high = "2001:db8:1::101" }]
rapid-commit = true
"#;
    let lab = TwoLinks::start(config);
    let first = lab.solicit(0, 1);
    let second = lab.solicit(1, 2);
    let mut got = vec![first, second];
    got.sort_by_key(|g| format!("{g:?}"));
    assert_eq!(
        got,
        vec![
            Got::Lease("2001:db8:1::100".parse().unwrap(), 128),
            Got::Lease("2001:db8:1::101".parse().unwrap(), 128),
        ]
    );
    assert_eq!(lab.solicit(0, 3), Got::Status(STATUS_NO_ADDRS_AVAIL));
    let rows = server_common::bindings_in(&lab.state_dir);
    let mut interfaces: Vec<String> = rows.iter().map(|b| b.interface.clone()).collect();
    interfaces.sort();
    let mut expected: Vec<String> = lab
        .clients
        .iter()
        .map(|(_, l)| l.a.ifname.clone())
        .collect();
    expected.sort();
    assert_eq!(interfaces, expected);
}

// ---- a relay on the lab link ----

/// The relay's link-address: the lab subnet's.
const LINK_ADDRESS: &str = "2001:db8:1::2";

/// A Relay-Forw around `inner` for a client on line `remote_id` (Remote-ID, enterprise 3561),
/// with its MAC in option 79 when given.
fn relay_forw(inner: &[u8], remote_id: Option<&[u8]>, mac: Option<[u8; 6]>) -> Vec<u8> {
    let link: Ipv6Addr = LINK_ADDRESS.parse().unwrap();
    let peer: Ipv6Addr = "fe80::2:1".parse().unwrap();
    let mut v = vec![MSG_RELAY_FORW, 0];
    v.extend_from_slice(&link.octets());
    v.extend_from_slice(&peer.octets());
    if let Some(id) = remote_id {
        v.extend(opt(
            OPT_REMOTE_ID,
            &[&3561u32.to_be_bytes()[..], id].concat(),
        ));
    }
    if let Some(mac) = mac {
        v.extend(opt(
            OPT_CLIENT_LINKLAYER_ADDR,
            &[&[0u8, 1][..], &mac].concat(),
        ));
    }
    v.extend(opt(OPT_RELAY_MSG, inner));
    v
}

/// Client `n` behind the relay on line `line` asks for an IA_NA or IA_PD (Rapid Commit).
fn relayed(
    lab: &LabServer,
    relay: &UdpSocket,
    n: u32,
    pd: bool,
    line: Option<&[u8]>,
    mac: Option<[u8; 6]>,
) -> Option<Got> {
    let payload = relay_forw(&rapid_solicit(n, pd), line, mac);
    exchange(relay, &payload, lab.server_unicast()).map(|reply| ia_of(&reply, pd))
}

fn lease(text: &str) -> Got {
    let (address, len) = text.split_once('/').unwrap_or((text, "128"));
    Got::Lease(address.parse().unwrap(), len.parse().unwrap())
}

/// The lab subnet with one address in its pool, in shared network "lab" with a second subnet.
fn shared_network_config() -> String {
    lab_config(
        &[(
            "pools",
            "[{ low = \"2001:db8:1::1000\", high = \"2001:db8:1::1000\" }]",
        )],
        "shared-network = \"lab\"\n\
         [[subnet]]\nid = 2\nprefix = \"2001:db8:2::/64\"\nshared-network = \"lab\"\n\
         pools = [{ low = \"2001:db8:2::100\", high = \"2001:db8:2::1ff\" }]\n\
         rapid-commit = true\n",
    )
}

/// A shared network moves to its second subnet when the first pool is full.
#[test]
fn shared_network_moves_to_its_second_subnet_when_the_first_pool_is_full() {
    let lab = LabServer::start("shared", &shared_network_config());
    let relay = lab.client_socket(547);
    assert_eq!(
        relayed(&lab, &relay, 1, false, None, None),
        Some(lease("2001:db8:1::1000"))
    );
    assert_eq!(
        relayed(&lab, &relay, 2, false, None, None),
        Some(lease("2001:db8:2::100"))
    );
    let mut subnets: Vec<u32> = lab.bindings().iter().map(|b| b.subnet).collect();
    subnets.sort();
    assert_eq!(subnets, vec![1, 2]);
}

/// Reservations by Remote-ID and by option 79 on the lab subnet.
const LINE_RESERVATIONS: &str = "reservations = [\n\
  { remote-id = { enterprise = 3561, id = \"aa01\" }, prefix = \"2001:db8:99::/56\" },\n\
  { client-linklayer-address = \"02:00:00:00:00:79\", address = \"2001:db8:1::79\" },\n]\n";

/// A reservation by Remote-ID and one by option 79 are honoured; another line gets the pools.
#[test]
fn reservations_by_remote_id_and_by_option_79_are_honoured() {
    let lab = LabServer::start("lineres", &lab_config(&[], LINE_RESERVATIONS));
    let relay = lab.client_socket(547);
    assert_eq!(
        relayed(&lab, &relay, 1, true, Some(&[0xaa, 0x01]), None),
        Some(lease("2001:db8:99::/56"))
    );
    assert_eq!(
        relayed(&lab, &relay, 2, false, None, Some([2, 0, 0, 0, 0, 0x79])),
        Some(lease("2001:db8:1::79"))
    );
    assert_eq!(
        relayed(&lab, &relay, 3, true, Some(&[0xaa, 0x02]), None),
        Some(lease("2001:db8:8000::/56"))
    );
}

/// A client class by the relay's Remote-ID (a business line): its clients get the class's
/// pool, other lines the default one.
#[test]
fn a_remote_id_class_selects_its_pool() {
    let config = lab_config(
        &[(
            "pools",
            "[{ low = \"2001:db8:1::b000\", high = \"2001:db8:1::b0ff\", \
             client-classes = [\"business\"] },\n\
             { low = \"2001:db8:1::1000\", high = \"2001:db8:1::1fff\" }]",
        )],
        "[[client-classes]]\nname = \"business\"\n\
         relay-remote-id = { enterprise = 3561, id = \"0b0b\" }\n",
    );
    let lab = LabServer::start("class-rid", &config);
    let relay = lab.client_socket(547);
    let Some(Got::Lease(business, _)) = relayed(&lab, &relay, 1, false, Some(&[0xb, 0xb]), None)
    else {
        panic!("no lease for the business line")
    };
    assert_eq!(business.segments()[7] & 0xff00, 0xb000, "{business}");
    let Some(Got::Lease(other, _)) = relayed(&lab, &relay, 2, false, Some(&[0xc, 0xc]), None)
    else {
        panic!("no lease for the other line")
    };
    assert_eq!(other.segments()[7] & 0xf000, 0x1000, "{other}");
}

/// A CPE that comes back on its line with a new DUID keeps its prefix, also after the server
/// restarted in between (the line is stored with the lease).
#[test]
fn a_cpe_with_a_new_duid_on_its_line_keeps_its_prefix_across_a_restart() {
    let config = format!(
        "line-identity = \"remote-id\"\nline-client-limit = 1\n{}",
        lab_config(&[], "")
    );
    let mut lab = LabServer::start("sticky", &config);
    let line = [0xbb, 0x02];
    let relay = lab.client_socket(547);
    let first = relayed(&lab, &relay, 1, true, Some(&line), None).expect("a reply");
    assert!(matches!(first, Got::Lease(_, 56)), "{first:?}");
    // A second CPE on another line gets another prefix.
    let other = relayed(&lab, &relay, 2, true, Some(&[0xbb, 0x03]), None).expect("a reply");
    assert_ne!(other, first);
    drop(relay);
    lab.kill9();
    lab.start_server();
    let relay = lab.client_socket(547);
    assert_eq!(
        relayed(&lab, &relay, 3, true, Some(&line), None),
        Some(first.clone())
    );
    let holders: Vec<String> = lab
        .bindings()
        .into_iter()
        .filter(|b| Got::Lease(b.lease.split('/').next().unwrap().parse().unwrap(), 56) == first)
        .map(|b| b.duid)
        .collect();
    let duid: String = client_duid(3).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(holders, vec![duid]);
    // `bindings` names each lease's line.
    let lines: Vec<Option<String>> = lab.bindings().into_iter().map(|b| b.line).collect();
    assert!(
        lines.contains(&Some("remote-id 00000de9bb02".to_string())),
        "{lines:?}"
    );
}

/// The per-line limit refuses the next new client on a full line only (counted in stats); a
/// client on another line is served.
#[test]
fn the_line_limit_refuses_the_next_new_client_on_that_line_only() {
    let config = format!(
        "line-identity = \"remote-id\"\nline-client-limit = 2\nline-sticky = false\n{}",
        lab_config(&[], "")
    );
    let lab = LabServer::start("linelimit", &config);
    let relay = lab.client_socket(547);
    let line = [0xcc, 0x01];
    for n in 1..=2 {
        let got = relayed(&lab, &relay, n, true, Some(&line), None);
        assert!(matches!(got, Some(Got::Lease(_, 56))), "{got:?}");
    }
    assert_eq!(relayed(&lab, &relay, 3, true, Some(&line), None), None);
    let got = relayed(&lab, &relay, 4, true, Some(&[0xcc, 0x02]), None);
    assert!(matches!(got, Some(Got::Lease(_, 56))), "{got:?}");
    let drops = lab.stats().counters.drops;
    // Three tries of the refused Solicit, each counted.
    assert_eq!(drops.get("line_client_limit"), Some(&3), "{drops:?}");
    assert_eq!(lab.bindings().len(), 3);
}

/// The Server ID option body of a (relayed) reply.
fn server_id_of(reply: &[u8]) -> Vec<u8> {
    let mut message = reply;
    while message.first() == Some(&MSG_RELAY_REPL) {
        let opts = options(&message[34..]).expect("Relay-Repl options");
        message = find(&opts, OPT_RELAY_MSG).expect("a Relay Message");
    }
    let opts = options(&message[4..]).expect("reply options");
    find(&opts, OPT_SERVERID).expect("a Server ID").to_vec()
}

/// A Renew from client `n` on line `line` for `got` (an address or a prefix).
fn relayed_renew(n: u32, server_id: &[u8], got: &Got, line: &[u8]) -> Vec<u8> {
    let ia = match got {
        Got::Lease(address, 128) => ia_na(1, 0, 0, Some((*address, 0, 0))),
        Got::Lease(prefix, len) => ia_pd(1, 0, 0, Some((*prefix, *len, 0, 0))),
        Got::Status(_) => panic!("nothing to renew"),
    };
    let renew = msg(
        MSG_RENEW,
        0x5000 + n,
        &[
            opt(OPT_CLIENTID, &client_duid(n)),
            opt(OPT_SERVERID, server_id),
            ia,
        ],
    );
    relay_forw(&renew, Some(line), None)
}

/// With the fast path on, what it answers follows the line rules: a client's lease reserved for
/// its line is renewed in XDP; once a new DUID on the line took a prefix over, the old DUID's
/// Renew is no longer answered with it (the controller says NoBinding).
#[test]
fn the_fast_path_follows_reservations_and_takeovers_by_line() {
    use dhcp_common::stat;
    let config = format!(
        "line-identity = \"remote-id\"\nline-client-limit = 1\n{}",
        lab_config(
            &[],
            "reservations = [{ remote-id = { enterprise = 3561, id = \"aa01\" }, address = \"2001:db8:1::77\" }]\n"
        )
    );
    let lab = LabServer::start_with("linesxdp", &config, true);
    let relay = lab.client_socket(547);
    let reserved_line = [0xaa, 0x01];
    let reply = exchange(
        &relay,
        &relay_forw(&rapid_solicit(1, false), Some(&reserved_line), None),
        lab.server_unicast(),
    )
    .expect("a reply");
    let reserved = ia_of(&reply, false);
    assert_eq!(reserved, lease("2001:db8:1::77"));
    let server_id = server_id_of(&reply);
    let renew = relayed_renew(1, &server_id, &reserved, &reserved_line);
    let before = lab.xdp_counter(stat::TX_RENEW);
    lab.wait_until(Duration::from_secs(5), "a Renew answered in XDP", || {
        let reply = exchange(&relay, &renew, lab.server_unicast()).expect("a reply");
        assert_eq!(ia_of(&reply, false), reserved);
        lab.xdp_counter(stat::TX_RENEW) > before
    });

    let line = [0xbb, 0x02];
    let old = relayed(&lab, &relay, 2, true, Some(&line), None).expect("a reply");
    let renew_old = relayed_renew(2, &server_id, &old, &line);
    let before = lab.xdp_counter(stat::TX_RENEW);
    lab.wait_until(Duration::from_secs(5), "the old CPE renewed in XDP", || {
        exchange(&relay, &renew_old, lab.server_unicast()).expect("a reply");
        lab.xdp_counter(stat::TX_RENEW) > before
    });
    assert_eq!(
        relayed(&lab, &relay, 3, true, Some(&line), None),
        Some(old.clone())
    );
    lab.wait_until(
        Duration::from_secs(5),
        "the old CPE's binding gone from the map",
        || {
            let reply = exchange(&relay, &renew_old, lab.server_unicast()).expect("a reply");
            ia_of(&reply, true) == Got::Status(STATUS_NO_BINDING)
        },
    );
    // And it stays gone: every later Renew of the old DUID gets NoBinding.
    for _ in 0..5 {
        let reply = exchange(&relay, &renew_old, lab.server_unicast()).expect("a reply");
        assert_eq!(
            ia_of(&reply, true),
            Got::Status(STATUS_NO_BINDING),
            "{}",
            lab.xdp_counters()
        );
    }
}

// ---- direct clients: the link-layer address taken from the frame (RFC 6939 for them) ----

/// `client-linklayer-address` text of a MAC.
fn mac_text(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}

/// A reservation by the client veth's MAC is honoured for a direct ISC dhclient (the fast path
/// notes the frame's source MAC, which the controller's socket does not give), and the lease
/// names that line in `bindings`.
#[test]
fn a_reservation_by_mac_is_honoured_for_a_direct_dhclient() {
    let lab = {
        // The client's MAC is known once the lab exists: the reservation is written after.
        let mut lab = LabServer::start_with("mac79-dhclient", &lab_config(&[], ""), true);
        let mac = lab.link.b.mac;
        let config = format!(
            "line-identity = \"client-linklayer-address\"\n{}",
            lab_config(
                &[],
                &format!(
                    "reservations = [{{ client-linklayer-address = \"{}\", address = \"2001:db8:1::79\" }}]\n",
                    mac_text(mac)
                ),
            )
        );
        std::fs::write(&lab.config_path, config).unwrap();
        lab.kill9();
        lab.start_server();
        lab
    };
    let out = lab.dhclient("mac79", &["-1"]);
    assert!(out.status.success(), "{out:?}");
    let (leases, _) = server_common::dhclient_files(&lab.state_dir, "mac79");
    let text = std::fs::read_to_string(leases).unwrap();
    assert!(text.contains("2001:db8:1::79"), "{text}");
    let mac = lab.link.b.mac.map(|b| format!("{b:02x}")).concat();
    let lines: Vec<Option<String>> = lab.bindings().into_iter().map(|b| b.line).collect();
    assert_eq!(
        lines,
        vec![Some(format!("client-linklayer-address 0001{mac}"))],
        "{lines:?}"
    );
}

/// A Renew from the client of the reservation by MAC (its lease stores the MAC) is answered in
/// XDP with the reserved address, as the controller would answer it.
#[test]
fn a_lease_reserved_by_mac_is_renewed_in_xdp() {
    use dhcp_common::stat;
    let mut lab = LabServer::start_with("mac79-xdp", &lab_config(&[], ""), true);
    let config = lab_config(
        &[],
        &format!(
            "reservations = [{{ client-linklayer-address = \"{}\", address = \"2001:db8:1::79\" }}]\n",
            mac_text(lab.link.b.mac)
        ),
    );
    std::fs::write(&lab.config_path, config).unwrap();
    lab.kill9();
    lab.start_server();
    let client = lab.client_socket(546);
    let reply = exchange(&client, &rapid_solicit(1, false), lab.all_servers()).expect("a reply");
    let reserved = ia_of(&reply, false);
    assert_eq!(reserved, lease("2001:db8:1::79"));
    let Got::Lease(address, _) = reserved else {
        unreachable!()
    };
    let renew = msg(
        MSG_RENEW,
        0x5001,
        &[
            opt(OPT_CLIENTID, &client_duid(1)),
            opt(OPT_SERVERID, &server_id_of(&reply)),
            ia_na(1, 0, 0, Some((address, 0, 0))),
        ],
    );
    let before = lab.xdp_counter(stat::TX_RENEW);
    lab.wait_until(Duration::from_secs(5), "the Renew answered in XDP", || {
        let reply = exchange(&client, &renew, lab.all_servers()).expect("a reply");
        assert_eq!(ia_of(&reply, false), reserved);
        lab.xdp_counter(stat::TX_RENEW) > before
    });
    assert_eq!(lab.xdp_counter(stat::CLIENT_MAC_UPDATE_FAILED), 0);
}

/// With `line-identity = "client-linklayer-address"` and a per-line limit of 1, a second DUID
/// sending from the same MAC is refused (counted); the first keeps its lease.
#[test]
fn the_line_limit_by_mac_refuses_a_second_duid_from_the_same_mac() {
    let config = format!(
        "line-identity = \"client-linklayer-address\"\nline-client-limit = 1\nline-sticky = false\n{}",
        lab_config(&[], "")
    );
    let lab = LabServer::start_with("mac79-limit", &config, true);
    let client = lab.client_socket(546);
    let first = exchange(&client, &rapid_solicit(1, false), lab.all_servers()).expect("a reply");
    assert!(matches!(ia_of(&first, false), Got::Lease(_, 128)));
    assert_eq!(
        exchange(&client, &rapid_solicit(2, false), lab.all_servers()),
        None
    );
    let drops = lab.stats().counters.drops;
    assert_eq!(drops.get("line_client_limit"), Some(&3), "{drops:?}");
    assert_eq!(lab.bindings().len(), 1);
}
