//! Admission per line in the XDP fast path (`line-pass-budget`, `line-pass-burst`), through
//! BPF_PROG_TEST_RUN: what a line would pass on to the controller beyond its budget is dropped
//! and counted (`drop_line_budget`), other lines keep theirs, and what the program answers
//! itself is never charged. The line keys the program builds are the ones `dhcp_common` builds.
//! Needs root and BPF (as does `cargo xtask test`).

mod fastpath_common;

use dhcp_common::{
    dhcpv6::*, stat, LineKey, LINE_DIRECT, LINE_INTERFACE_ID, LINE_LINK_ADDRESS, LINE_REMOTE_ID,
};
use dhcp_testwire::{dhcpv6::client_duid, Udp6Frame};
use dhcp_user::fastpath::{XDP_DROP, XDP_PASS, XDP_TX};
use fastpath_common::*;
use std::net::Ipv6Addr;

/// The burst each test line gets; the rate (1 a second) never refills it within a test.
const BURST: u32 = 3;
const LINE_A: u16 = 10;
const LINE_B: u16 = 20;

/// The fixture with admission per line on: 1 message a second per line, bursts of `BURST`.
fn admitting() -> Lab {
    let mut lab = setup();
    let mut global = lab.fp.global().unwrap();
    global.line_pass_budget = 1;
    global.line_pass_burst = BURST;
    lab.fp.set_global(&global).unwrap();
    lab
}

/// A Solicit from new client `n` (unknown to the program: passed on to the controller).
fn new_solicit(n: u32) -> Vec<u8> {
    msg(
        MSG_SOLICIT,
        &[
            opt(OPT_CLIENTID, &client_duid(n)),
            elapsed(),
            ia_na(1, 0, 0, None),
        ],
    )
}

/// A direct client's frame on VLAN `vlan` (802.1Q).
fn on_vlan(payload: Vec<u8>, vlan: u16) -> Udp6Frame {
    with_vlans(direct(payload), &[(0x8100, vlan)])
}

/// A Relay-Forw around `inner` with `interface_id` and no Remote-ID, from the fixture's relay.
fn relayed_by_interface_id(inner: Vec<u8>, interface_id: &[u8]) -> Udp6Frame {
    let mut v = vec![MSG_RELAY_FORW, 0];
    v.extend_from_slice(&"2001:db8:1::".parse::<Ipv6Addr>().unwrap().octets());
    v.extend_from_slice(&client_ll().octets());
    v.extend(opt(OPT_INTERFACE_ID, interface_id));
    v.extend(opt(OPT_RELAY_MSG, &inner));
    relayed(v)
}

/// Runs `frame` and checks the verdict, with the reason's counter moved by one.
fn expect(lab: &Lab, what: &str, frame: &Udp6Frame, verdict: u32, counter: u32) -> Vec<u8> {
    let before = lab.counter(counter);
    let (got, out) = lab.run(frame);
    assert_eq!(got, verdict, "{what}: verdict");
    assert_eq!(lab.counter(counter), before + 1, "{what}: counter");
    out
}

/// Sends `BURST` new clients' Solicits on a line (all passed on, unchanged), then `BURST`
/// more (dropped and counted).
fn flood(lab: &Lab, what: &str, frame_of: impl Fn(u32) -> Udp6Frame) {
    for n in 0..BURST {
        let frame = frame_of(1000 + n);
        let out = expect(lab, what, &frame, XDP_PASS, stat::PASS_UNKNOWN_DUID);
        assert_eq!(out, frame.encode(), "{what}: frame {n} passed on unchanged");
    }
    for n in BURST..2 * BURST {
        expect(
            lab,
            what,
            &frame_of(1000 + n),
            XDP_DROP,
            stat::DROP_LINE_BUDGET,
        );
    }
}

/// Frames from line A beyond its budget are dropped and counted; a frame from line B in the
/// same second is still passed on, and each line has its own bucket, keyed as dhcp-common does.
#[test]
fn a_line_beyond_its_budget_is_dropped_another_line_passes() {
    let lab = admitting();
    for n in 0..BURST {
        let frame = on_vlan(new_solicit(n), LINE_A);
        let out = expect(
            &lab,
            "line A within its burst",
            &frame,
            XDP_PASS,
            stat::PASS_UNKNOWN_DUID,
        );
        assert_eq!(out, frame.encode(), "passed on unchanged");
    }
    for n in BURST..BURST + 5 {
        expect(
            &lab,
            "line A beyond its burst",
            &on_vlan(new_solicit(n), LINE_A),
            XDP_DROP,
            stat::DROP_LINE_BUDGET,
        );
    }
    expect(
        &lab,
        "line B in the same second",
        &on_vlan(new_solicit(100), LINE_B),
        XDP_PASS,
        stat::PASS_UNKNOWN_DUID,
    );
    let lines = lab.fp.line_budgets().unwrap();
    let a = lines
        .iter()
        .find(|(key, _)| *key == LineKey::direct(LO, LINE_A, 0))
        .expect("line A's bucket, keyed by ifindex and VLAN");
    assert_eq!(a.1.dropped, 5, "line A's drops");
    assert!(lines
        .iter()
        .any(|(key, b)| *key == LineKey::direct(LO, LINE_B, 0) && b.dropped == 0));
    assert!(lines.iter().all(|(key, _)| key.kind == LINE_DIRECT));
}

/// The global budget stays the outer guard: a frame its line admits is still refused by it
/// (`drop_rate_limit`), and a line's own excess is counted as the line's (`drop_line_budget`).
#[test]
fn the_global_budget_stays_the_outer_guard() {
    let mut lab = admitting();
    let mut global = lab.fp.global().unwrap();
    global.pass_rate_per_cpu = 1;
    lab.fp.set_global(&global).unwrap();
    // Pinned to one CPU: the global budget is per CPU.
    dhcp_lab::pin_to_current_cpu().expect("pinning the test to one CPU");
    let a = |n| on_vlan(new_solicit(n), LINE_A);
    expect(&lab, "first", &a(1), XDP_PASS, stat::PASS_UNKNOWN_DUID);
    let b = on_vlan(new_solicit(2), LINE_B);
    expect(
        &lab,
        "line B, global spent",
        &b,
        XDP_DROP,
        stat::DROP_RATE_LIMIT,
    );
    for n in 1..BURST {
        expect(
            &lab,
            "line A, global spent",
            &a(10 + n),
            XDP_DROP,
            stat::DROP_RATE_LIMIT,
        );
    }
    expect(
        &lab,
        "line A, its own spent",
        &a(20),
        XDP_DROP,
        stat::DROP_LINE_BUDGET,
    );
}

/// Relayed lines are keyed by the innermost relay's Interface-ID: two Interface-IDs of one
/// relay are two lines, each with its own budget, keyed as `LineKey::relayed` keys them.
#[test]
fn relayed_lines_keyed_by_interface_id_are_distinct() {
    let lab = admitting();
    for n in 0..BURST {
        expect(
            &lab,
            "port-a within its burst",
            &relayed_by_interface_id(new_solicit(n), b"port-a"),
            XDP_PASS,
            stat::PASS_UNKNOWN_DUID,
        );
    }
    expect(
        &lab,
        "port-a beyond its burst",
        &relayed_by_interface_id(new_solicit(50), b"port-a"),
        XDP_DROP,
        stat::DROP_LINE_BUDGET,
    );
    expect(
        &lab,
        "port-b of the same relay",
        &relayed_by_interface_id(new_solicit(51), b"port-b"),
        XDP_PASS,
        stat::PASS_UNKNOWN_DUID,
    );
    let lines = lab.fp.line_budgets().unwrap();
    let key_a = LineKey::relayed(LINE_INTERFACE_ID, b"port-a");
    let key_b = LineKey::relayed(LINE_INTERFACE_ID, b"port-b");
    assert!(
        lines.iter().any(|(k, b)| *k == key_a && b.dropped == 1),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|(k, b)| *k == key_b && b.dropped == 0),
        "{lines:?}"
    );
}

/// Without an Interface-ID, the relay's Remote-ID (its whole body: enterprise number, then the
/// id) names the line; a relay with neither is keyed by its link-address.
#[test]
fn relayed_lines_without_interface_id_keyed_by_remote_id_or_link_address() {
    let lab = admitting();
    // The fixture's relay sends Remote-ID 3561 "port1" and, here, no Interface-ID.
    flood(&lab, "remote-id line", |n| {
        relayed(relay_forw(new_solicit(n), None))
    });
    let mut bare = vec![MSG_RELAY_FORW, 0];
    let link: Ipv6Addr = "2001:db8:1::".parse().unwrap();
    bare.extend_from_slice(&link.octets());
    bare.extend_from_slice(&client_ll().octets());
    let bare_relay = |n: u32| {
        let mut v = bare.clone();
        v.extend(opt(OPT_RELAY_MSG, &new_solicit(n)));
        relayed(v)
    };
    flood(&lab, "link-address line", bare_relay);
    let lines = lab.fp.line_budgets().unwrap();
    let remote = LineKey::relayed(
        LINE_REMOTE_ID,
        &[0, 0, 0x0d, 0xe9, b'p', b'o', b'r', b't', b'1'],
    );
    let by_link = LineKey::relayed(LINE_LINK_ADDRESS, &link.octets());
    for key in [remote, by_link] {
        assert!(
            lines
                .iter()
                .any(|(k, b)| *k == key && b.dropped == BURST as u64),
            "{key:?} in {lines:?}"
        );
    }
}

/// What the program answers itself is never charged: a known client's Renew on a line whose
/// budget a flood of new clients has spent is still answered, byte for byte.
#[test]
fn a_renew_on_a_flooded_line_is_still_answered() {
    let lab = admitting();
    flood(&lab, "line A", |n| on_vlan(new_solicit(n), LINE_A));
    for _ in 0..2 * BURST {
        let out = expect(
            &lab,
            "renew on line A",
            &on_vlan(renew(), LINE_A),
            XDP_TX,
            stat::TX_RENEW,
        );
        let expected = with_vlans(direct_reply(renew_reply()), &[(0x8100, LINE_A)]);
        assert_eq!(out, expected.encode(), "the Reply, byte for byte");
    }
    assert_eq!(lab.run(&on_vlan(new_solicit(7), LINE_A)).0, XDP_DROP);
}

/// With `line-pass-budget` 0 (the default) nothing is admitted per line: a flood is passed on.
#[test]
fn no_admission_per_line_when_off() {
    let lab = setup();
    for n in 0..3 * BURST {
        expect(
            &lab,
            "line A",
            &on_vlan(new_solicit(n), LINE_A),
            XDP_PASS,
            stat::PASS_UNKNOWN_DUID,
        );
    }
    assert!(lab.fp.line_budgets().unwrap().is_empty());
}

/// A relayed frame the program passes on for its own shape (an Interface-ID too long to echo,
/// `pass_unsupported`) is still charged to the line that Interface-ID names.
#[test]
fn a_relay_hop_passed_on_still_names_its_line() {
    let lab = admitting();
    let long_id = [b'p'; dhcp_common::FAST_INTERFACE_ID_MAX + 8];
    for n in 0..BURST {
        expect(
            &lab,
            "long Interface-ID within its burst",
            &relayed_by_interface_id(new_solicit(n), &long_id),
            XDP_PASS,
            stat::PASS_UNSUPPORTED,
        );
    }
    expect(
        &lab,
        "long Interface-ID beyond its burst",
        &relayed_by_interface_id(new_solicit(9), &long_id),
        XDP_DROP,
        stat::DROP_LINE_BUDGET,
    );
    let key = LineKey::relayed(LINE_INTERFACE_ID, &long_id);
    assert!(lab
        .fp
        .line_budgets()
        .unwrap()
        .iter()
        .any(|(k, b)| *k == key && b.dropped == 1));
}
