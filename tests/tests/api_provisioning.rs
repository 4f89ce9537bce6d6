//! The runtime API for provisioning systems and the forensic lease log (issue 19 parts 5 and
//! 7), against the server process in the lab: a lease added over HTTP is renewed in XDP; deleted
//! with the CLI, its Renew gets NoBinding; a reservation added with the CLI is handed to a new
//! client and survives a restart; a wrong token is answered 401; the lease log shows a
//! dhclient's grant, renewals and release, and a relayed client's Remote-ID.

mod server_common;

use std::net::{Ipv6Addr, UdpSocket};
use std::time::Duration;

use dhcp_common::{dhcpv6::*, stat};
use dhcp_testwire::dhcpv6::{self as wire, elapsed, ia_na, opt};
use server_common::{lab_config, LabServer, CLIENT_ADDRESS};

const TOKEN: &str = "lab-api-token-0123456789";
const API_PORT: u16 = 8547;

/// A token file outside the state directory (which the lab makes afresh).
fn token_file(tag: &str) -> std::path::PathBuf {
    let path =
        std::env::temp_dir().join(format!("dhcp-user-api-token-{tag}-{}", std::process::id()));
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    path
}

/// The lab's configuration with short lifetimes, the API on the server namespace's loopback,
/// and `extra` top-level sections.
fn config(tag: &str, extra: &str) -> String {
    lab_config(
        &[
            ("preferred-lifetime", "8"),
            ("valid-lifetime", "16"),
            ("renew-timer", "2"),
            ("rebind-timer", "4"),
        ],
        &format!(
            "\n[api]\nlisten = \"127.0.0.1:{API_PORT}\"\ntoken-file = \"{}\"\n{extra}",
            token_file(tag).display()
        ),
    )
}

/// Sends `message` from `socket` to ff02::1:2 and returns the reply.
fn exchange(lab: &LabServer, socket: &UdpSocket, message: &[u8]) -> Vec<u8> {
    socket.send_to(message, lab.all_servers()).unwrap();
    let mut buf = [0u8; 1500];
    let (len, _) = socket
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no reply: {e}; XDP: {}", lab.xdp_counters()));
    buf[..len].to_vec()
}

/// The server's DUID, from the Advertise to a Solicit of a client that never requests.
fn server_id(lab: &LabServer, socket: &UdpSocket) -> Vec<u8> {
    let solicit = wire::msg(
        MSG_SOLICIT,
        0x51,
        &[
            opt(OPT_CLIENTID, &wire::client_duid(0x99)),
            elapsed(),
            ia_na(1, 0, 0, None),
        ],
    );
    let reply = exchange(lab, socket, &solicit);
    let options = wire::options(&reply[4..]).expect("the reply's options");
    wire::find(&options, OPT_SERVERID)
        .expect("Server ID")
        .to_vec()
}

/// The IA_NA of a Reply: its leases and status.
fn ia_of(reply: &[u8]) -> wire::IaContents {
    let options = wire::options(&reply[4..]).expect("the reply's options");
    wire::parse_ia(wire::find(&options, OPT_IA_NA).expect("IA_NA"), false).expect("IA_NA parses")
}

fn renew(duid: &[u8], server_id: &[u8], iaid: u32, address: Ipv6Addr, xid: u32) -> Vec<u8> {
    wire::msg(
        MSG_RENEW,
        xid,
        &[
            opt(OPT_CLIENTID, duid),
            opt(OPT_SERVERID, server_id),
            elapsed(),
            ia_na(iaid, 0, 0, Some((address, 0, 0))),
        ],
    )
}

fn renewals_in_xdp(lab: &LabServer) -> u64 {
    lab.xdp_counter(stat::TX_RENEW)
}

fn controller_renews(lab: &LabServer) -> u64 {
    lab.stats()
        .counters
        .received
        .get("renew")
        .copied()
        .unwrap_or(0)
}

/// A lease added over HTTP reaches the fast path's maps: the client's Renew is answered in XDP
/// with it (the controller's socket sees no Renew). Deleted with `dhcp-user lease delete`, the
/// binding leaves the maps and the controller answers the next Renew with NoBinding (RFC 8415
/// section 18.3.4: a server that finds no binding MUST return NoBinding in the IA). A wrong token
/// is answered 401 and changes nothing.
#[test]
fn a_lease_added_over_http_is_renewed_in_xdp_and_deleted_with_the_cli() {
    let lab = LabServer::start_with("api-xdp", &config("xdp", ""), true);
    let socket = lab.client_socket(CLIENT_PORT);
    let server_id = server_id(&lab, &socket);
    let duid = wire::client_duid(0x77);
    let address: Ipv6Addr = "2001:db8:1::1077".parse().unwrap();
    let body = format!(
        r#"{{"address":"{address}","duid":"{}","iaid":5,"valid_lifetime":600,"preferred_lifetime":300}}"#,
        hex::encode(duid)
    );
    let (status, answer) = lab.http(
        API_PORT,
        "POST",
        "/v1/leases",
        Some("wrong-token-0123456789"),
        &body,
    );
    assert_eq!(status, 401, "{answer}");
    assert!(
        lab.bindings().is_empty(),
        "a refused request changes nothing"
    );
    let (status, answer) = lab.http(API_PORT, "POST", "/v1/leases", Some(TOKEN), &body);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains(&address.to_string()), "{answer}");

    // The map sync follows the lease event a moment after the answer: until then the
    // controller answers (the same way).
    let before = renewals_in_xdp(&lab);
    lab.wait_until(Duration::from_secs(10), "a Renew answered in XDP", || {
        exchange(&lab, &socket, &renew(&duid, &server_id, 5, address, 0x100));
        renewals_in_xdp(&lab) > before
    });
    let controller_before = controller_renews(&lab);
    let xdp_before = renewals_in_xdp(&lab);
    let reply = exchange(&lab, &socket, &renew(&duid, &server_id, 5, address, 0x101));
    assert_eq!(reply[0], MSG_REPLY);
    let ia = ia_of(&reply);
    assert_eq!(ia.status, None, "{ia:?}");
    assert_eq!(ia.leases[0].0, address);
    assert!(ia.leases[0].3 > 0, "a valid lifetime: {ia:?}");
    assert_eq!(renewals_in_xdp(&lab), xdp_before + 1, "answered in XDP");
    assert_eq!(
        controller_renews(&lab),
        controller_before,
        "the controller saw no Renew"
    );

    let out = lab.cli(&["lease", "delete", "--address", &address.to_string()]);
    assert!(out.contains("deleted"), "{out}");
    // The binding leaves the maps a moment after the answer (the map sync follows the event):
    // until then XDP may still answer; then the Renew reaches the controller.
    let mut reply = Vec::new();
    lab.wait_until(
        Duration::from_secs(10),
        "a Renew not answered in XDP",
        || {
            let xdp_before = renewals_in_xdp(&lab);
            reply = exchange(&lab, &socket, &renew(&duid, &server_id, 5, address, 0x102));
            renewals_in_xdp(&lab) == xdp_before
        },
    );
    assert_eq!(reply[0], MSG_REPLY);
    assert_eq!(
        ia_of(&reply).status,
        Some(STATUS_NO_BINDING),
        "NoBinding after the delete"
    );
    assert_eq!(controller_renews(&lab), controller_before + 1);
    let out = lab.cli(&["lease", "get", "--duid", &hex::encode(duid)]);
    assert!(out.contains("0 binding(s)"), "{out}");
}

/// Answers of the fast path to Solicits (Advertise, or Reply with Rapid Commit).
fn solicits_in_xdp(lab: &LabServer) -> u64 {
    lab.xdp_counter(stat::TX_SOLICIT_ADVERTISE) + lab.xdp_counter(stat::TX_SOLICIT_REPLY)
}

/// A reservation added at run time for a client XDP answers from its binding takes the binding
/// out of the maps before the answer: at once, the client's Renew reaches the controller (which
/// extends the old address) and its Solicit too (offered the reservation), never XDP's old
/// binding. Deleted, the client's binding is back in the maps before the answer: its next Renew
/// is answered in XDP.
#[test]
fn a_reservation_for_a_bound_client_takes_its_binding_out_of_xdp_at_once() {
    let lab = LabServer::start_with("api-resv-xdp", &config("resv-xdp", ""), true);
    let socket = lab.client_socket(CLIENT_PORT);
    let server_id = server_id(&lab, &socket);
    let duid = wire::client_duid(0x78);
    let address: Ipv6Addr = "2001:db8:1::1078".parse().unwrap();
    let reserved = "2001:db8:1::43";
    let out = lab.cli(&[
        "lease",
        "add",
        "--address",
        &address.to_string(),
        "--duid",
        &hex::encode(duid),
        "--iaid",
        "5",
        "--valid-lifetime",
        "600",
    ]);
    assert!(out.contains(&address.to_string()), "{out}");
    let before = renewals_in_xdp(&lab);
    lab.wait_until(Duration::from_secs(10), "a Renew answered in XDP", || {
        exchange(&lab, &socket, &renew(&duid, &server_id, 5, address, 0x300));
        renewals_in_xdp(&lab) > before
    });

    let reservation = [
        "reservation",
        "add",
        "--subnet",
        "1",
        "--duid",
        &hex::encode(duid),
        "--address",
        reserved,
    ];
    let out = lab.cli(&reservation);
    assert!(out.contains(reserved), "{out}");
    // No waiting: the map changed before the answer.
    let (xdp_before, controller_before) = (renewals_in_xdp(&lab), controller_renews(&lab));
    let reply = exchange(&lab, &socket, &renew(&duid, &server_id, 5, address, 0x301));
    assert_eq!(reply[0], MSG_REPLY);
    assert_eq!(renewals_in_xdp(&lab), xdp_before, "not answered in XDP");
    assert_eq!(controller_renews(&lab), controller_before + 1);
    let solicits_before = solicits_in_xdp(&lab);
    let solicit = wire::msg(
        MSG_SOLICIT,
        0x302,
        &[opt(OPT_CLIENTID, &duid), elapsed(), ia_na(5, 0, 0, None)],
    );
    let advertise = exchange(&lab, &socket, &solicit);
    assert_eq!(advertise[0], MSG_ADVERTISE);
    assert_eq!(ia_of(&advertise).leases[0].0.to_string(), reserved);
    assert_eq!(
        solicits_in_xdp(&lab),
        solicits_before,
        "the Solicit was passed on"
    );

    let out = lab.cli(&[
        "reservation",
        "delete",
        "--subnet",
        "1",
        "--duid",
        &hex::encode(duid),
    ]);
    assert!(out.contains(reserved), "{out}");
    let xdp_before = renewals_in_xdp(&lab);
    let reply = exchange(&lab, &socket, &renew(&duid, &server_id, 5, address, 0x303));
    assert_eq!(ia_of(&reply).leases[0].0, address);
    assert_eq!(
        renewals_in_xdp(&lab),
        xdp_before + 1,
        "answered in XDP again"
    );
}

/// A reservation added with `dhcp-user reservation add` is handed to its client's first
/// Solicit at once, is listed, and survives a restart (kept in the state directory): after it,
/// the client's next Solicit gets the reserved address again.
#[test]
fn a_reservation_added_with_the_cli_is_given_at_once_and_survives_a_restart() {
    let mut lab = LabServer::start("api-reservation", &config("reservation", ""));
    let socket = lab.client_socket(CLIENT_PORT);
    let duid = wire::client_duid(0x42);
    let reserved = "2001:db8:1::42";
    let out = lab.cli(&[
        "reservation",
        "add",
        "--subnet",
        "1",
        "--duid",
        &hex::encode(duid),
        "--address",
        reserved,
    ]);
    assert!(out.contains(reserved), "{out}");
    let solicit = |xid: u32| {
        wire::msg(
            MSG_SOLICIT,
            xid,
            &[
                opt(OPT_CLIENTID, &duid),
                elapsed(),
                ia_na(1, 0, 0, None),
                opt(OPT_RAPID_COMMIT, &[]),
            ],
        )
    };
    let reply = exchange(&lab, &socket, &solicit(0x200));
    assert_eq!(ia_of(&reply).leases[0].0.to_string(), reserved);
    // Another client cannot have it.
    let body = format!(
        r#"{{"address":"{reserved}","duid":"{}","iaid":1,"subnet":1}}"#,
        hex::encode(wire::client_duid(0x43))
    );
    let (status, answer) = lab.http(API_PORT, "POST", "/v1/leases", Some(TOKEN), &body);
    assert_eq!(status, 409, "{answer}");

    lab.kill9();
    lab.start_server();
    let listed = lab.cli(&["reservation", "list"]);
    assert!(
        listed.contains("api") && listed.contains(reserved),
        "{listed}"
    );
    lab.cli(&["clear", "--all"]);
    let reply = exchange(&lab, &socket, &solicit(0x201));
    assert_eq!(
        ia_of(&reply).leases[0].0.to_string(),
        reserved,
        "after the restart"
    );
    let usage = lab.cli(&["usage"]);
    assert!(usage.contains("reserved"), "{usage}");
}

/// The lease log records a dhclient's grant, its renewals (answered in XDP, logged as extended
/// intervals) and its release; a client behind a relay is logged with the relay's Remote-ID and
/// link-address; `lease-log held` says who held an address at a time.
#[test]
fn the_lease_log_exports_grants_renewals_releases_and_the_relays_remote_id() {
    let lab = LabServer::start_with(
        "api-lease-log",
        &config(
            "lease-log",
            "\n[lease-log]\nretention = \"400d\"\nrenewal-interval = \"1s\"\n",
        ),
        true,
    );
    let out = lab.dhclient("log", &["-1"]);
    assert!(
        out.status.success(),
        "dhclient -6: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let binding = lab.bindings()[0].clone();
    let granted_at = dhcp_user::clock::unix_now();
    lab.wait_until(Duration::from_secs(30), "renewals answered in XDP", || {
        renewals_in_xdp(&lab) >= 2
    });
    let _ = lab.dhclient("log", &["-r"]);

    // A client behind a relay on our link (link-address 2001:db8:1::2) whose relay sends
    // Remote-ID 3561 "port1".
    let relay = lab.client_socket(SERVER_PORT);
    let relayed_duid = wire::client_duid(0x66);
    let solicit = wire::msg(
        MSG_SOLICIT,
        0x300,
        &[
            opt(OPT_CLIENTID, &relayed_duid),
            elapsed(),
            ia_na(1, 0, 0, None),
            opt(OPT_RAPID_COMMIT, &[]),
        ],
    );
    let forw = wire::relay_forw(
        &solicit,
        CLIENT_ADDRESS.parse().unwrap(),
        "fe80::66".parse().unwrap(),
        None,
    );
    relay.send_to(&forw, lab.server_unicast()).unwrap();
    let mut buf = [0u8; 1500];
    let (len, _) = relay.recv_from(&mut buf).expect("a Relay-Repl");
    assert_eq!(buf[0], MSG_RELAY_REPL);
    // The client's Reply inside, then its Release through the same relay.
    let relay_options = wire::options(&buf[34..len]).expect("the Relay-Repl's options");
    let inner = wire::find(&relay_options, OPT_RELAY_MSG)
        .expect("Relay Message")
        .to_vec();
    let relayed_server_id = {
        let options = wire::options(&inner[4..]).expect("the Reply's options");
        wire::find(&options, OPT_SERVERID)
            .expect("Server ID")
            .to_vec()
    };
    let relayed_address = ia_of(&inner).leases[0].0;
    let release = wire::msg(
        MSG_RELEASE,
        0x301,
        &[
            opt(OPT_CLIENTID, &relayed_duid),
            opt(OPT_SERVERID, &relayed_server_id),
            elapsed(),
            ia_na(1, 0, 0, Some((relayed_address, 0, 0))),
        ],
    );
    let forw = wire::relay_forw(
        &release,
        CLIENT_ADDRESS.parse().unwrap(),
        "fe80::66".parse().unwrap(),
        None,
    );
    relay.send_to(&forw, lab.server_unicast()).unwrap();
    relay
        .recv_from(&mut buf)
        .expect("a Relay-Repl to the Release");

    let export = |args: &[&str]| -> Vec<serde_json::Value> {
        let mut all = vec!["lease-log", "export"];
        all.extend_from_slice(args);
        lab.cli(&all)
            .lines()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    };
    let mut events = Vec::new();
    lab.wait_until(Duration::from_secs(10), "the release in the log", || {
        events = export(&["--duid", &binding.duid]);
        events.iter().any(|r| r["event"] == "released")
    });
    let kinds: Vec<&str> = events
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds.first(), Some(&"granted"), "{kinds:?}");
    assert!(
        kinds.iter().filter(|k| **k == "renewed").count() >= 2,
        "{kinds:?}"
    );
    assert_eq!(kinds.last(), Some(&"released"), "{kinds:?}");
    assert!(events.iter().all(|r| r["lease"] == binding.lease.as_str()));

    let mut relayed = Vec::new();
    lab.wait_until(
        Duration::from_secs(10),
        "the relayed grant and release in the log",
        || {
            relayed = export(&["--address", &relayed_address.to_string()]);
            relayed.len() >= 2
        },
    );
    let kinds: Vec<&str> = relayed
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["granted", "released"]);
    for record in &relayed {
        assert_eq!(record["duid"], hex::encode(relayed_duid).as_str());
        assert_eq!(record["remote_id"], "00000de9706f727431", "{record:?}");
        assert_eq!(record["link_address"], CLIENT_ADDRESS);
    }

    let held = lab.cli(&[
        "lease-log",
        "held",
        "--address",
        &binding.lease,
        "--at",
        &(granted_at + 1).to_string(),
    ]);
    assert!(held.contains(&binding.duid), "{held}");
    let since = export(&["--since", &(granted_at + 3600).to_string()]);
    assert!(since.is_empty(), "nothing after the future: {since:?}");
}
