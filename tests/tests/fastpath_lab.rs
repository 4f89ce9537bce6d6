//! The fast path in a lab with a real client: ISC dhclient gets its lease from the controller,
//! then its renewals are answered by the XDP program (the controller's socket never sees them)
//! while the store's expiry moves on; with the controller killed, renewals keep being answered,
//! and the restarted controller takes the pinned maps over. A known client's Request and
//! Confirm, sent from the client's namespace, are answered in XDP too.

mod server_common;

use std::time::Duration;

use dhcp_common::{dhcpv6::*, stat};
use dhcp_testwire::dhcpv6::{self as wire, elapsed, ia_na, opt};
use server_common::{lab_config, LabServer};

fn short_lifetimes() -> String {
    lab_config(
        &[
            ("preferred-lifetime", "8"),
            ("valid-lifetime", "16"),
            ("renew-timer", "2"),
            ("rebind-timer", "4"),
        ],
        "",
    )
}

/// Packets the fast path answered with a Reply to a Renew, read from its pinned counters.
fn xdp_renewals(lab: &LabServer) -> u64 {
    dhcp_user::fastpath::pinned_stats(&lab.pin_root())
        .expect("pinned counters")
        .expect("the fast path is pinned")[stat::TX_RENEW as usize]
        .1
        .packets
}

fn controller_renews(lab: &LabServer) -> u64 {
    controller_received(lab, "renew")
}

/// Messages of `kind` ("renew", "request", ...) the controller's socket received.
fn controller_received(lab: &LabServer, kind: &str) -> u64 {
    lab.stats()
        .counters
        .received
        .get(kind)
        .copied()
        .unwrap_or(0)
}

/// Sends `message` from the client's socket to ff02::1:2 and returns the reply.
fn exchange(lab: &LabServer, socket: &std::net::UdpSocket, message: &[u8]) -> Vec<u8> {
    socket.send_to(message, lab.all_servers()).unwrap();
    let mut buf = [0u8; 1500];
    let (len, _) = socket
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no reply: {e}; XDP: {}", lab.xdp_counters()));
    buf[..len].to_vec()
}

#[test]
fn dhclient_renewals_are_answered_in_the_kernel() {
    let mut lab = LabServer::start_with("xdp-renew", &short_lifetimes(), true);
    let out = lab.dhclient("xdp", &["-1"]);
    assert!(
        out.status.success(),
        "dhclient -6 failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = lab.bindings();
    assert_eq!(first.len(), 1, "{first:?}");
    let lease = first[0].clone();

    // T1 = 2 s: the running dhclient renews; the program answers, the controller sees nothing,
    // and the renewal it reported moves the store's expiry on.
    lab.wait_until(
        Duration::from_secs(30),
        "two renewals answered by XDP",
        || xdp_renewals(&lab) >= 2,
    );
    assert_eq!(
        controller_renews(&lab),
        0,
        "the controller's socket must not see a renewal"
    );
    lab.wait_until(
        Duration::from_secs(10),
        "the store's expiry to move on",
        || {
            lab.bindings()
                .iter()
                .any(|b| b.lease == lease.lease && b.expires > lease.expires)
        },
    );
    let pin_root = lab.pin_root();
    let table = lab.cli(&["stats", "--pin-root", pin_root.to_str().unwrap()]);
    assert!(
        table.contains("fast path") && table.contains("tx_renew"),
        "{table}"
    );

    // kill -9 the controller: the pinned program keeps answering renewals.
    lab.kill9();
    let before = xdp_renewals(&lab);
    std::thread::sleep(Duration::from_secs(7));
    let during = xdp_renewals(&lab);
    assert!(
        during >= before + 2,
        "renewals answered while the controller was down: {before} -> {during}"
    );

    // The restarted controller takes the pinned maps over: the binding is still answered and the
    // store catches up with the renewals answered while it was down.
    lab.start_server();
    let now = dhcp_user::clock::unix_now();
    lab.wait_until(Duration::from_secs(15), "the store to catch up", || {
        lab.bindings()
            .iter()
            .any(|b| b.lease == lease.lease && b.expires >= now + 8)
    });
    let after_restart = xdp_renewals(&lab);
    lab.wait_until(
        Duration::from_secs(15),
        "renewals answered after the restart",
        || xdp_renewals(&lab) > after_restart,
    );
    assert_eq!(
        controller_renews(&lab),
        0,
        "after the restart too, renewals stay in the kernel"
    );
    let _ = lab.dhclient("xdp", &["-r"]);
}

/// A state directory as `mktemp -d` makes them (`tmp.` and random letters), and dots further
/// on: the default pin root is valid on bpffs all the same, and the fast path attaches.
#[test]
fn a_state_dir_with_dots_runs_the_fast_path_on_its_default_pin_root() {
    let state_dir = std::env::temp_dir().join(format!("tmp.dhcp-user.{}.d", std::process::id()));
    let lab = LabServer::start_in(state_dir, &short_lifetimes(), true, true);
    let pin_root = lab.pin_root();
    assert!(
        pin_root.starts_with(dhcp_user::fastpath::DEFAULT_PIN_ROOT),
        "{}",
        pin_root.display()
    );
    let name = pin_root.file_name().unwrap().to_string_lossy().into_owned();
    assert!(!name.contains('.'), "{name}");
    assert!(lab.log().contains("fast path ready"), "{}", lab.log());
    assert!(
        pin_root
            .join(format!("link-{}", lab.link.a.ifname))
            .exists(),
        "the XDP link is pinned under {}",
        pin_root.display()
    );
    let shown = lab
        .server_ns
        .command("ip")
        .args(["link", "show", "dev", &lab.link.a.ifname])
        .output()
        .expect("ip link show");
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("xdp"), "the program is attached: {shown}");
    assert!(
        dhcp_user::fastpath::pinned_stats(&pin_root)
            .expect("pinned counters")
            .is_some(),
        "the counters are pinned"
    );
}

/// A client bound by the controller (Solicit, Advertise, Request, Reply) sends its Request
/// again (a retransmission, the same transaction) and then a Confirm: once its binding is in
/// the map, XDP answers both, the Request with the bytes the controller sent, the Confirm with
/// Success, and the controller's socket sees neither.
#[test]
fn a_known_clients_request_and_confirm_are_answered_in_the_kernel() {
    let lab = LabServer::start_with("xdp-request", &short_lifetimes(), true);
    let socket = lab.client_socket(CLIENT_PORT);
    let duid = wire::client_duid(0x5e);
    let client_id = opt(OPT_CLIENTID, &duid);
    let solicit = wire::msg(
        MSG_SOLICIT,
        0x0000_0101,
        &[client_id.clone(), elapsed(), ia_na(1, 0, 0, None)],
    );
    let advertise = exchange(&lab, &socket, &solicit);
    assert_eq!(advertise[0], MSG_ADVERTISE);
    let options = wire::options(&advertise[4..]).expect("the Advertise's options");
    let server_id = wire::find(&options, OPT_SERVERID)
        .expect("Server ID")
        .to_vec();
    let ia = wire::parse_ia(wire::find(&options, OPT_IA_NA).expect("IA_NA"), false).unwrap();
    let address = ia.leases[0].0;
    let request = wire::msg(
        MSG_REQUEST,
        0x0000_0202,
        &[
            client_id.clone(),
            opt(OPT_SERVERID, &server_id),
            elapsed(),
            ia_na(1, 0, 0, Some((address, 0, 0))),
        ],
    );
    let granted = exchange(&lab, &socket, &request);
    assert_eq!(granted[0], MSG_REPLY);
    assert_eq!(controller_received(&lab, "request"), 1);

    // The grant reaches the map shortly after it is durable; until then the controller answers
    // the retransmissions (with the same Reply).
    let mut answered = Vec::new();
    lab.wait_until(Duration::from_secs(10), "a Request answered by XDP", || {
        answered = exchange(&lab, &socket, &request);
        lab.xdp_counter(stat::TX_REQUEST) >= 1
    });
    assert_eq!(
        answered, granted,
        "XDP's Reply is the controller's, byte for byte"
    );
    let requests_seen = controller_received(&lab, "request");

    let confirm = wire::msg(
        MSG_CONFIRM,
        0x0000_0303,
        &[client_id, elapsed(), ia_na(1, 0, 0, Some((address, 0, 0)))],
    );
    let confirmed = exchange(&lab, &socket, &confirm);
    let options = wire::options(&confirmed[4..]).expect("the Confirm Reply's options");
    let status = wire::find(&options, OPT_STATUS_CODE).expect("a Status Code");
    assert_eq!(u16::from_be_bytes([status[0], status[1]]), STATUS_SUCCESS);
    assert_eq!(&status[2..], CONFIRM_ON_LINK_MESSAGE.as_bytes());
    assert_eq!(
        lab.xdp_counter(stat::TX_CONFIRM),
        1,
        "{}",
        lab.xdp_counters()
    );

    // Once more each: still in the kernel.
    assert_eq!(exchange(&lab, &socket, &request), granted);
    assert_eq!(exchange(&lab, &socket, &confirm), confirmed);
    assert!(lab.xdp_counter(stat::TX_REQUEST) >= 2);
    assert_eq!(lab.xdp_counter(stat::TX_CONFIRM), 2);
    assert_eq!(controller_received(&lab, "request"), requests_seen);
    assert_eq!(
        controller_received(&lab, "confirm"),
        0,
        "the controller's socket must not see a Confirm"
    );
}
