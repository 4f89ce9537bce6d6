//! Golden packets for the XDP fast path, run through BPF_PROG_TEST_RUN: each answered case is a
//! named test {frame in, expected frame out, counter}. Expected replies are built here by
//! hand from the RFC 8415 layouts, independently of the program and of the server's encoder.
//! Needs root and BPF (as does `cargo xtask test`).

mod fastpath_common;

use dhcp_common::{dhcpv6::*, stat, BindingKey};
use dhcp_testwire::Udp6Frame;
use dhcp_user::fastpath::{XDP_PASS, XDP_TX};
use fastpath_common::*;
use std::net::Ipv6Addr;

/// One named test per answered case: `name: frame in, expected frame out, counter;`. The frame
/// out must be exactly the expected frame, and the case's counter moves by one.
macro_rules! answered {
    ($($(#[doc = $doc:literal])* $name:ident: $input:expr, $expected:expr, $counter:expr;)*) => {$(
        $(#[doc = $doc])*
        #[test]
        fn $name() {
            check_answered(&setup(), stringify!($name), $input, $expected, $counter);
        }
    )*};
}

fn check_answered(lab: &Lab, what: &str, input: Udp6Frame, expected: Udp6Frame, counter: u32) {
    let before = lab.counter(counter);
    let (verdict, out) = lab.run(&input);
    assert_eq!(verdict, XDP_TX, "{what}: verdict");
    let got = Udp6Frame::decode(&out).unwrap_or_else(|e| panic!("{what}: reply frame: {e}"));
    assert_eq!(got, expected, "{what}: reply frame");
    assert_eq!(out, expected.encode(), "{what}: reply bytes");
    assert_eq!(lab.counter(counter), before + 1, "{what}: counter");
}

const Q_IN_Q: [(u16, u16); 2] = [(0x88a8, 100), (0x8100, 200)];
const IFACE_ID: &[u8] = b"eth0/1/2:vlan100";

/// A relay on the link: its link-local address, sending to `group` (or to our address).
fn relay_ll() -> Ipv6Addr {
    "fe80::4e".parse().unwrap()
}
fn relayed_to(payload: Vec<u8>, from: Ipv6Addr, to: Ipv6Addr) -> Udp6Frame {
    let mut frame = relayed(payload);
    frame.src_ip = from;
    frame.dst_ip = to;
    if to.is_multicast() {
        let g = to.octets();
        frame.dst_mac = [0x33, 0x33, g[12], g[13], g[14], g[15]];
    }
    frame
}
fn relayed_reply_from(payload: Vec<u8>, from: Ipv6Addr, to: Ipv6Addr) -> Udp6Frame {
    let mut frame = relayed_reply(payload);
    frame.src_ip = from;
    frame.dst_ip = to;
    frame
}
fn group(text: &str) -> Ipv6Addr {
    text.parse().unwrap()
}

answered! {
    /// Renew, direct.
    direct_renew:
        direct(renew()),
        direct_reply(renew_reply()),
        stat::TX_RENEW;
    /// Renew, 802.1Q.
    direct_renew_dot1q:
        with_vlans(direct(renew()), &[(0x8100, 42)]),
        with_vlans(direct_reply(renew_reply()), &[(0x8100, 42)]),
        stat::TX_RENEW;
    /// Renew, QinQ.
    direct_renew_qinq:
        with_vlans(direct(renew()), &Q_IN_Q),
        with_vlans(direct_reply(renew_reply()), &Q_IN_Q),
        stat::TX_RENEW;
    /// Rebind, PD before NA, no ORO.
    direct_rebind_pd_first_no_oro:
        direct(msg(
                MSG_REBIND,
                &[
                    client_id(),
                    ia_pd(PD_IAID, 0, 0, Some((pd_prefix(), 56, 0, 0))),
                    ia_na(NA_IAID, 0, 0, Some((na_addr(), 0, 0))),
                    elapsed(),
                ],
            )),
        direct_reply(msg(
                MSG_REPLY,
                &[server_id(), client_id(), granted_pd(), granted_na()],
            )),
        stat::TX_REBIND;
    /// Solicit from a known client: advertise with preference.
    direct_solicit_known_advertise_with_preference:
        direct(msg(
                MSG_SOLICIT,
                &[
                    client_id(),
                    elapsed(),
                    ia_na(NA_IAID, 0, 0, None),
                    ia_pd(PD_IAID, 0, 0, None),
                    oro(&[23]),
                ],
            )),
        direct_reply(msg(
                MSG_ADVERTISE,
                &[
                    server_id(),
                    client_id(),
                    granted_na(),
                    granted_pd(),
                    opt(OPT_PREFERENCE, &[200]),
                    dns_opt(),
                ],
            )),
        stat::TX_SOLICIT_ADVERTISE;
    /// Solicit with rapid commit: reply.
    direct_solicit_rapid_commit_reply:
        direct(msg(
                MSG_SOLICIT,
                &[
                    client_id(),
                    opt(OPT_RAPID_COMMIT, &[]),
                    ia_na(NA_IAID, 0, 0, None),
                    ia_pd(PD_IAID, 0, 0, None),
                ],
            )),
        direct_reply(msg(
                MSG_REPLY,
                &[
                    server_id(),
                    client_id(),
                    granted_na(),
                    granted_pd(),
                    opt(OPT_RAPID_COMMIT, &[]),
                ],
            )),
        stat::TX_SOLICIT_REPLY;
    /// Information-request.
    direct_information_request:
        direct(msg(
                MSG_INFORMATION_REQUEST,
                &[client_id(), elapsed(), oro(&[23, 24, 32])],
            )),
        direct_reply(msg(
                MSG_REPLY,
                &[
                    server_id(),
                    client_id(),
                    dns_opt(),
                    domain_opt(),
                    opt(OPT_INFORMATION_REFRESH_TIME, &be32(INFO_REFRESH)),
                ],
            )),
        stat::TX_INFORMATION_REQUEST;
    /// Information-request without client id.
    direct_information_request_without_client_id:
        direct(msg(MSG_INFORMATION_REQUEST, &[oro(&[24])])),
        direct_reply(msg(MSG_REPLY, &[server_id(), domain_opt()])),
        stat::TX_INFORMATION_REQUEST;
    /// Relayed renew with interface-id.
    relayed_renew_with_interface_id:
        relayed(relay_forw(renew(), Some(IFACE_ID))),
        relayed_reply(relay_repl(renew_reply(), Some(IFACE_ID))),
        stat::TX_RENEW;
    /// Relayed rebind without interface-id, 802.1Q.
    relayed_rebind_without_interface_id_dot1q:
        with_vlans(
                relayed(relay_forw(
                    msg(
                        MSG_REBIND,
                        &[
                            client_id(),
                            ia_na(NA_IAID, 0, 0, Some((na_addr(), 0, 0))),
                            ia_pd(PD_IAID, 0, 0, Some((pd_prefix(), 56, 0, 0))),
                        ],
                    ),
                    None,
                )),
                &[(0x8100, 7)],
            ),
        with_vlans(
                relayed_reply(relay_repl(
                    msg(
                        MSG_REPLY,
                        &[server_id(), client_id(), granted_na(), granted_pd()],
                    ),
                    None,
                )),
                &[(0x8100, 7)],
            ),
        stat::TX_REBIND;
    /// Relayed information-request.
    relayed_information_request:
        relayed(relay_forw(
                msg(MSG_INFORMATION_REQUEST, &[client_id(), oro(&[23])]),
                Some(b"x"),
            )),
        relayed_reply(relay_repl(
                msg(MSG_REPLY, &[server_id(), client_id(), dns_opt()]),
                Some(b"x"),
            )),
        stat::TX_INFORMATION_REQUEST;
    /// A relay on the link sending to ff02::1:2 from its link-local address: the Relay-Repl
    /// leaves from our link-local address, never from the group.
    relayed_renew_to_ff02_from_link_local:
        relayed_to(relay_forw(renew(), Some(IFACE_ID)), relay_ll(), group("ff02::1:2")),
        relayed_reply_from(relay_repl(renew_reply(), Some(IFACE_ID)), server_ll(), relay_ll()),
        stat::TX_RENEW;
    /// A relay sending to ff02::1:2 from a global address: from our one global address.
    relayed_renew_to_ff02_from_global:
        relayed_to(relay_forw(renew(), None), relay_addr(), group("ff02::1:2")),
        relayed_reply_from(relay_repl(renew_reply(), None), server_global(), relay_addr()),
        stat::TX_RENEW;
    /// A relay sending to All_DHCP_Servers (ff05::1:3) from a global address, 802.1Q.
    relayed_renew_to_ff05_from_global_dot1q:
        with_vlans(relayed_to(relay_forw(renew(), None), relay_addr(), group("ff05::1:3")), &[(0x8100, 9)]),
        with_vlans(relayed_reply_from(relay_repl(renew_reply(), None), server_global(), relay_addr()), &[(0x8100, 9)]),
        stat::TX_RENEW;
    /// A relay sending to ff05::1:3 from its link-local address: from our link-local address.
    relayed_renew_to_ff05_from_link_local:
        relayed_to(relay_forw(renew(), None), relay_ll(), group("ff05::1:3")),
        relayed_reply_from(relay_repl(renew_reply(), None), server_ll(), relay_ll()),
        stat::TX_RENEW;
    /// An LDRA on the link (RFC 6221: link-address ::, the client's link-local peer-address)
    /// sending a Renew to ff02::1:2: the interface's subnet serves it; the Relay-Repl goes from
    /// our link-local address to the LDRA's, Interface-ID echoed.
    ldra_renew:
        relayed_to(ldra_forw(renew(), IFACE_ID), relay_ll(), group("ff02::1:2")),
        relayed_reply_from(ldra_repl(renew_reply(), IFACE_ID), server_ll(), relay_ll()),
        stat::TX_RENEW;
    /// An LDRA's Rebind, QinQ-tagged.
    ldra_rebind_qinq:
        with_vlans(relayed_to(
            ldra_forw(
                msg(
                    MSG_REBIND,
                    &[
                        client_id(),
                        ia_na(NA_IAID, 0, 0, Some((na_addr(), 0, 0))),
                        ia_pd(PD_IAID, 0, 0, Some((pd_prefix(), 56, 0, 0))),
                    ],
                ),
                IFACE_ID,
            ),
            relay_ll(),
            group("ff02::1:2"),
        ), &Q_IN_Q),
        with_vlans(relayed_reply_from(
            ldra_repl(
                msg(MSG_REPLY, &[server_id(), client_id(), granted_na(), granted_pd()]),
                IFACE_ID,
            ),
            server_ll(),
            relay_ll(),
        ), &Q_IN_Q),
        stat::TX_REBIND;
    /// An LDRA-relayed Solicit from a known client: the Advertise of its binding.
    ldra_solicit_known:
        relayed_to(
            ldra_forw(
                msg(
                    MSG_SOLICIT,
                    &[client_id(), elapsed(), ia_na(NA_IAID, 0, 0, None), ia_pd(PD_IAID, 0, 0, None)],
                ),
                IFACE_ID,
            ),
            relay_ll(),
            group("ff02::1:2"),
        ),
        relayed_reply_from(
            ldra_repl(
                msg(
                    MSG_ADVERTISE,
                    &[server_id(), client_id(), granted_na(), granted_pd(), opt(OPT_PREFERENCE, &[200])],
                ),
                IFACE_ID,
            ),
            server_ll(),
            relay_ll(),
        ),
        stat::TX_SOLICIT_ADVERTISE;
    /// An LDRA behind an L3 relay (two hops): the relay's link-address names the subnet; both
    /// Relay-Repl hops come back, each with its Interface-ID, from our global address (the relay
    /// sent to it).
    ldra_behind_relay_renew:
        relayed(relay_forw(ldra_forw(renew(), IFACE_ID), Some(b"agg-1"))),
        relayed_reply(relay_repl(ldra_repl(renew_reply(), IFACE_ID), Some(b"agg-1"))),
        stat::TX_RENEW;
    /// Two plain relay hops, the outer without an Interface-ID: the inner link-address names
    /// the subnet.
    two_relay_hops_rebind:
        relayed(relay_forw(
            relay_forw(
                msg(
                    MSG_REBIND,
                    &[
                        client_id(),
                        ia_na(NA_IAID, 0, 0, Some((na_addr(), 0, 0))),
                        ia_pd(PD_IAID, 0, 0, Some((pd_prefix(), 56, 0, 0))),
                    ],
                ),
                Some(IFACE_ID),
            ),
            None,
        )),
        relayed_reply(relay_repl(
            relay_repl(
                msg(MSG_REPLY, &[server_id(), client_id(), granted_na(), granted_pd()]),
                Some(IFACE_ID),
            ),
            None,
        )),
        stat::TX_REBIND;
    /// A relay sending to our link-local address: from that address.
    relayed_renew_to_our_link_local:
        relayed_to(relay_forw(renew(), None), relay_ll(), server_ll()),
        relayed_reply_from(relay_repl(renew_reply(), None), server_ll(), relay_ll()),
        stat::TX_RENEW;
    /// A known client's Request naming its binding: the Reply extending it, as a Renew's.
    direct_request_known:
        direct(request_msg()),
        direct_reply(renew_reply()),
        stat::TX_REQUEST;
    /// A Request whose IAs carry no address or prefix (the controller chooses the binding
    /// first), PD first, 802.1Q: the binding, IAs in the request's order.
    direct_request_without_hints_pd_first_dot1q:
        with_vlans(direct(msg(
                MSG_REQUEST,
                &[
                    client_id(),
                    server_id(),
                    ia_pd(PD_IAID, 0, 0, None),
                    ia_na(NA_IAID, 0, 0, None),
                    opt(OPT_RAPID_COMMIT, &[]),
                ],
            )), &[(0x8100, 42)]),
        with_vlans(direct_reply(msg(
                MSG_REPLY,
                &[server_id(), client_id(), granted_pd(), granted_na()],
            )), &[(0x8100, 42)]),
        stat::TX_REQUEST;
    /// A Request of the address alone: the Reply covers the address alone.
    direct_request_address_alone:
        direct(msg(
                MSG_REQUEST,
                &[client_id(), server_id(), ia_na(NA_IAID, 0, 0, Some((na_addr(), 0, 0)))],
            )),
        direct_reply(msg(MSG_REPLY, &[server_id(), client_id(), granted_na()])),
        stat::TX_REQUEST;
    /// A relayed Request with Interface-ID, QinQ.
    relayed_request_with_interface_id_qinq:
        with_vlans(relayed(relay_forw(request_msg(), Some(IFACE_ID))), &Q_IN_Q),
        with_vlans(relayed_reply(relay_repl(renew_reply(), Some(IFACE_ID))), &Q_IN_Q),
        stat::TX_REQUEST;
    /// An LDRA's Request: the interface's subnet serves it.
    ldra_request:
        relayed_to(ldra_forw(request_msg(), IFACE_ID), relay_ll(), group("ff02::1:2")),
        relayed_reply_from(ldra_repl(renew_reply(), IFACE_ID), server_ll(), relay_ll()),
        stat::TX_REQUEST;
    /// An LDRA behind an L3 relay: a Request, both hops back.
    ldra_behind_relay_request:
        relayed(relay_forw(ldra_forw(request_msg(), IFACE_ID), Some(b"agg-1"))),
        relayed_reply(relay_repl(ldra_repl(renew_reply(), IFACE_ID), Some(b"agg-1"))),
        stat::TX_REQUEST;
    /// A Confirm of the bound address on its link: Success, with no IA and no requested
    /// option (the ORO asked for DNS servers).
    direct_confirm_on_link:
        direct(confirm_msg(na_addr())),
        direct_reply(confirm_reply(true)),
        stat::TX_CONFIRM;
    /// A Confirm needs no binding: another address of the link, from a client the map does
    /// not know, is on the link all the same.
    direct_confirm_unknown_client_on_link:
        direct(msg(
                MSG_CONFIRM,
                &[
                    opt(OPT_CLIENTID, &[0, 3, 0, 1, 7, 7, 7, 7, 7, 7]),
                    ia_na(1, 0, 0, Some(("2001:db8:1::77".parse().unwrap(), 0, 0))),
                ],
            )),
        direct_reply(msg(
                MSG_REPLY,
                &[
                    server_id(),
                    opt(OPT_CLIENTID, &[0, 3, 0, 1, 7, 7, 7, 7, 7, 7]),
                    status_opt(STATUS_SUCCESS, "all addresses on link"),
                ],
            )),
        stat::TX_CONFIRM;
    /// A Confirm of an address in no subnet's prefix: NotOnLink.
    direct_confirm_not_on_link:
        direct(confirm_msg("2001:db8:2::1".parse().unwrap())),
        direct_reply(confirm_reply(false)),
        stat::TX_CONFIRM_NOT_ON_LINK;
    /// A Confirm, relayed (a client that moved to a link behind a relay), 802.1Q.
    relayed_confirm_dot1q:
        with_vlans(relayed(relay_forw(confirm_msg(na_addr()), Some(IFACE_ID))), &[(0x8100, 7)]),
        with_vlans(relayed_reply(relay_repl(confirm_reply(true), Some(IFACE_ID))), &[(0x8100, 7)]),
        stat::TX_CONFIRM;
    /// An LDRA's Confirm of an address of another link: NotOnLink.
    ldra_confirm_not_on_link:
        relayed_to(
            ldra_forw(confirm_msg("2001:db8:5::1".parse().unwrap()), IFACE_ID),
            relay_ll(),
            group("ff02::1:2"),
        ),
        relayed_reply_from(ldra_repl(confirm_reply(false), IFACE_ID), server_ll(), relay_ll()),
        stat::TX_CONFIRM_NOT_ON_LINK;
}

/// A frame the fast path must pass on unchanged, counted under `counter`.
fn check_passed(lab: &Lab, what: &str, input: Udp6Frame, counter: u32) {
    let before = lab.counter(counter);
    let bytes = input.encode();
    let (verdict, out) = lab.run(&input);
    assert_eq!(verdict, XDP_PASS, "{what}: verdict");
    assert_eq!(out, bytes, "{what}: passed unchanged");
    assert_eq!(lab.counter(counter), before + 1, "{what}: counter");
}

/// A Confirm's address inside the prefix of another subnet we serve is passed on: that subnet
/// may share the link (a shared network), where the controller says Success.
#[test]
fn confirm_of_another_subnets_address_is_passed_on() {
    let mut lab = setup();
    lab.fp
        .set_link("2001:db8:2::".parse().unwrap(), 64, 4)
        .unwrap();
    check_passed(
        &lab,
        "another subnet's address",
        direct(confirm_msg("2001:db8:2::1".parse().unwrap())),
        stat::PASS_CONFIRM_OTHER_SUBNET,
    );
}

/// A pinned `LINKS` may still hold a prefix of an earlier configuration, which would shadow the
/// subnet's own for the addresses it covers (a Confirm's would go to the controller);
/// `retain_links`, as `configure` calls it, removes it, and the address is on the link again.
#[test]
fn a_stale_link_prefix_is_removed_and_no_longer_shadows_the_subnet() {
    let mut lab = setup();
    let inside: Ipv6Addr = "2001:db8:1:0:8000::1".parse().unwrap();
    lab.fp
        .set_link("2001:db8:1:0:8000::".parse().unwrap(), 65, 4)
        .unwrap();
    check_passed(
        &lab,
        "shadowed by the stale prefix",
        direct(confirm_msg(inside)),
        stat::PASS_CONFIRM_OTHER_SUBNET,
    );
    let removed = lab
        .fp
        .retain_links(&[("2001:db8:1::".parse().unwrap(), 64)])
        .unwrap();
    assert_eq!(removed, 1);
    check_answered(
        &lab,
        "the subnet's own prefix",
        direct(confirm_msg(inside)),
        direct_reply(confirm_reply(true)),
        stat::TX_CONFIRM,
    );
}

/// A binding holding a lease of the redundant peer's half (`BINDING_RENEW_ONLY`): its Solicit
/// and Request are passed on (the controller gives one of its own half), its Renew answered.
#[test]
fn a_peer_half_binding_is_renewed_but_not_handed_out() {
    let mut lab = setup();
    let key = BindingKey::new(CLIENT_DUID).unwrap();
    let mut value = lab.fp.bindings().unwrap().get(&key, 0).unwrap();
    value.flags |= dhcp_common::BINDING_RENEW_ONLY;
    lab.fp
        .bindings_mut()
        .unwrap()
        .insert(key, value, 0)
        .unwrap();
    let solicit = direct(msg(
        MSG_SOLICIT,
        &[
            client_id(),
            ia_na(NA_IAID, 0, 0, None),
            ia_pd(PD_IAID, 0, 0, None),
        ],
    ));
    check_passed(&lab, "solicit", solicit, stat::PASS_PEER_HALF);
    check_passed(&lab, "request", direct(request_msg()), stat::PASS_PEER_HALF);
    let before = lab.expires();
    assert_eq!(lab.run(&direct(renew())).0, XDP_TX, "renew is answered");
    assert!(lab.expires() > before, "and moves the expiry on");
}

/// With `interface-client-limit`, a known client's Solicit or Request on another interface
/// than its binding's is passed on (the controller may refuse it there); its Renew is still
/// answered, and on its own interface so is its Request.
#[test]
fn with_a_client_limit_a_known_client_elsewhere_is_passed_on() {
    let mut lab = setup();
    let solicit = || {
        direct(msg(
            MSG_SOLICIT,
            &[
                client_id(),
                ia_na(NA_IAID, 0, 0, None),
                ia_pd(PD_IAID, 0, 0, None),
            ],
        ))
    };
    let mut global = lab.fp.global().unwrap();
    global.interface_client_limit = 1;
    lab.fp.set_global(&global).unwrap();
    check_passed(
        &lab,
        "request elsewhere",
        direct(request_msg()),
        stat::PASS_CLIENT_LIMIT,
    );
    check_passed(
        &lab,
        "solicit elsewhere",
        solicit(),
        stat::PASS_CLIENT_LIMIT,
    );
    assert_eq!(lab.run(&direct(renew())).0, XDP_TX, "renew is answered");
    lab.set_binding_ifindex(LO);
    assert_eq!(
        lab.run(&direct(request_msg())).0,
        XDP_TX,
        "request on its own interface"
    );
    assert_eq!(
        lab.run(&solicit()).0,
        XDP_TX,
        "solicit on its own interface"
    );
}

/// A Request commits as a Renew does: the binding's expiry moves on in the map.
#[test]
fn request_moves_the_expiry_on() {
    let lab = setup();
    let before = lab.expires();
    assert_eq!(lab.run(&direct(confirm_msg(na_addr()))).0, XDP_TX);
    assert_eq!(lab.expires(), before, "a Confirm commits nothing");
    assert_eq!(lab.run(&direct(request_msg())).0, XDP_TX);
    let after = lab.expires();
    let now = now_unix();
    assert!(
        after >= now + VALID as u64 - 2 && after <= now + VALID as u64 + 2,
        "expiry {after} vs now {now}"
    );
}

/// Found by fastpath_property: the per-CPU scratch state outlives a run, and a direct Renew
/// answered right after a two-hop Rebind got the outer hop's length written over its
/// destination MAC. Each answer must depend on its own request only.
#[test]
fn a_direct_answer_after_a_two_hop_one_is_its_own() {
    let lab = setup();
    let two_hops = relayed(relay_forw(
        relay_forw(
            msg(
                MSG_REBIND,
                &[
                    client_id(),
                    ia_na(NA_IAID, 0, 0, Some((na_addr(), 0, 0))),
                    ia_pd(PD_IAID, 0, 0, Some((pd_prefix(), 56, 0, 0))),
                ],
            ),
            Some(IFACE_ID),
        ),
        None,
    ));
    assert_eq!(lab.run(&two_hops).0, XDP_TX);
    let (verdict, out) = lab.run(&direct(renew()));
    assert_eq!(verdict, XDP_TX);
    assert_eq!(out, direct_reply(renew_reply()).encode());
}

#[test]
fn renew_moves_the_expiry_on_and_advertise_does_not() {
    let lab = setup();
    let before = lab.expires();
    let solicit = direct(msg(
        MSG_SOLICIT,
        &[
            client_id(),
            ia_na(NA_IAID, 0, 0, None),
            ia_pd(PD_IAID, 0, 0, None),
        ],
    ));
    assert_eq!(lab.run(&solicit).0, XDP_TX);
    assert_eq!(lab.expires(), before, "an Advertise commits nothing");
    assert_eq!(lab.run(&direct(renew())).0, XDP_TX);
    let after = lab.expires();
    let now = now_unix();
    assert!(
        after >= now + VALID as u64 - 2 && after <= now + VALID as u64 + 2,
        "expiry {after} vs now {now}"
    );
}

/// Everything the fast path cannot answer exactly is passed on unchanged, with its reason counted.
#[test]
fn mismatches_are_passed_on_unchanged() {
    let lab = setup();
    let mut bad_checksum = direct(renew()).encode();
    let last = bad_checksum.len() - 1;
    bad_checksum[last] ^= 1;
    let long_duid = vec![0u8; 40];
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        (
            "wrong IAID",
            direct(msg(
                MSG_RENEW,
                &[
                    client_id(),
                    server_id(),
                    ia_na(NA_IAID + 1, 0, 0, Some((na_addr(), 0, 0))),
                    ia_pd(PD_IAID, 0, 0, Some((pd_prefix(), 56, 0, 0))),
                ],
            ))
            .encode(),
            stat::PASS_IA_MISMATCH,
        ),
        (
            "wrong address",
            direct(msg(
                MSG_RENEW,
                &[
                    client_id(),
                    server_id(),
                    ia_na(
                        NA_IAID,
                        0,
                        0,
                        Some(("2001:db8:1::99".parse().unwrap(), 0, 0)),
                    ),
                    ia_pd(PD_IAID, 0, 0, Some((pd_prefix(), 56, 0, 0))),
                ],
            ))
            .encode(),
            stat::PASS_IA_MISMATCH,
        ),
        (
            "no IA at all",
            direct(msg(MSG_RENEW, &[client_id(), server_id()])).encode(),
            stat::PASS_IA_MISMATCH,
        ),
        (
            "renew without the address",
            direct(msg(
                MSG_RENEW,
                &[
                    client_id(),
                    server_id(),
                    ia_na(NA_IAID, 0, 0, None),
                    ia_pd(PD_IAID, 0, 0, None),
                ],
            ))
            .encode(),
            stat::PASS_IA_MISMATCH,
        ),
        (
            "wrong server ID",
            direct(msg(
                MSG_RENEW,
                &[
                    client_id(),
                    opt(OPT_SERVERID, &[0, 3, 0, 1, 1, 2, 3, 4, 5, 6]),
                ],
            ))
            .encode(),
            stat::PASS_SERVER_ID,
        ),
        (
            "renew without server ID",
            direct(msg(
                MSG_RENEW,
                &[client_id(), ia_na(NA_IAID, 0, 0, Some((na_addr(), 0, 0)))],
            ))
            .encode(),
            stat::PASS_SERVER_ID,
        ),
        (
            "rebind with server ID",
            direct(msg(MSG_REBIND, &[client_id(), server_id()])).encode(),
            stat::PASS_SERVER_ID,
        ),
        (
            "unknown DUID",
            direct(msg(
                MSG_RENEW,
                &[
                    opt(OPT_CLIENTID, &[0, 3, 0, 1, 9, 9, 9, 9, 9, 9]),
                    server_id(),
                ],
            ))
            .encode(),
            stat::PASS_UNKNOWN_DUID,
        ),
        (
            "DUID longer than the key",
            direct(msg(
                MSG_RENEW,
                &[opt(OPT_CLIENTID, &long_duid), server_id()],
            ))
            .encode(),
            stat::PASS_DUID_TOO_LONG,
        ),
        (
            "request without IAs",
            direct(msg(MSG_REQUEST, &[client_id(), server_id()])).encode(),
            stat::PASS_IA_MISMATCH,
        ),
        (
            "request without server ID",
            direct(msg(
                MSG_REQUEST,
                &[client_id(), ia_na(NA_IAID, 0, 0, Some((na_addr(), 0, 0)))],
            ))
            .encode(),
            stat::PASS_SERVER_ID,
        ),
        (
            "request with another server's ID",
            direct(msg(
                MSG_REQUEST,
                &[
                    client_id(),
                    opt(OPT_SERVERID, &[0, 3, 0, 1, 9, 9, 9, 9, 9, 9]),
                    ia_na(NA_IAID, 0, 0, Some((na_addr(), 0, 0))),
                ],
            ))
            .encode(),
            stat::PASS_SERVER_ID,
        ),
        (
            "request of another address (the controller may grant it)",
            direct(msg(
                MSG_REQUEST,
                &[
                    client_id(),
                    server_id(),
                    ia_na(
                        NA_IAID,
                        0,
                        0,
                        Some(("2001:db8:1::99".parse().unwrap(), 0, 0)),
                    ),
                ],
            ))
            .encode(),
            stat::PASS_IA_MISMATCH,
        ),
        (
            "request of an IA the binding lacks",
            direct(msg(
                MSG_REQUEST,
                &[client_id(), server_id(), ia_na(NA_IAID + 1, 0, 0, None)],
            ))
            .encode(),
            stat::PASS_IA_MISMATCH,
        ),
        (
            "request from an unknown client",
            direct(msg(
                MSG_REQUEST,
                &[
                    opt(OPT_CLIENTID, &[0, 3, 0, 1, 7, 7, 7, 7, 7, 7]),
                    server_id(),
                    ia_na(NA_IAID, 0, 0, None),
                ],
            ))
            .encode(),
            stat::PASS_UNKNOWN_DUID,
        ),
        (
            "confirm with a server ID",
            direct(msg(
                MSG_CONFIRM,
                &[
                    client_id(),
                    server_id(),
                    ia_na(NA_IAID, 0, 0, Some((na_addr(), 0, 0))),
                ],
            ))
            .encode(),
            stat::PASS_SERVER_ID,
        ),
        (
            "confirm without an address (the controller drops it)",
            direct(msg(MSG_CONFIRM, &[client_id(), ia_na(NA_IAID, 0, 0, None)])).encode(),
            stat::PASS_CONFIRM_NO_ADDRESS,
        ),
        (
            "confirm of a prefix alone (the controller drops it)",
            direct(msg(
                MSG_CONFIRM,
                &[
                    client_id(),
                    ia_pd(PD_IAID, 0, 0, Some((pd_prefix(), 56, 0, 0))),
                ],
            ))
            .encode(),
            stat::PASS_CONFIRM_NO_ADDRESS,
        ),
        (
            "confirm without a client ID",
            direct(msg(
                MSG_CONFIRM,
                &[ia_na(NA_IAID, 0, 0, Some((na_addr(), 0, 0)))],
            ))
            .encode(),
            stat::PASS_MALFORMED,
        ),
        (
            "release",
            direct(msg(MSG_RELEASE, &[client_id(), server_id()])).encode(),
            stat::PASS_MSG_TYPE,
        ),
        (
            "leasequery",
            direct(msg(MSG_LEASEQUERY, &[client_id()])).encode(),
            stat::PASS_MSG_TYPE,
        ),
        (
            "unicast renew (the controller answers UseMulticast)",
            {
                let mut f = direct(renew());
                f.dst_ip = server_global();
                f.encode()
            },
            stat::PASS_UNSUPPORTED,
        ),
        (
            "an option the fast path does not know",
            direct(msg(
                MSG_RENEW,
                &[
                    client_id(),
                    server_id(),
                    opt(OPT_CLIENT_FQDN, &[0, 1, b'a', 0]),
                ],
            ))
            .encode(),
            stat::PASS_UNSUPPORTED,
        ),
        (
            "option length past the end",
            direct({
                let mut m = renew();
                m.extend_from_slice(&[0, 8, 0, 9, 0]);
                m
            })
            .encode(),
            stat::PASS_MALFORMED,
        ),
        ("bad UDP checksum", bad_checksum, stat::PASS_MALFORMED),
        (
            "three relay hops",
            relayed(relay_forw(
                relay_forw(relay_forw(renew(), None), None),
                None,
            ))
            .encode(),
            stat::PASS_UNSUPPORTED,
        ),
        (
            "LDRA behind a relay on a link we do not serve",
            {
                let mut p = relay_forw(ldra_forw(renew(), IFACE_ID), None);
                p[2..18].copy_from_slice(&"2001:db8:77::".parse::<Ipv6Addr>().unwrap().octets());
                relayed(p).encode()
            },
            stat::PASS_WRONG_LINK,
        ),
        (
            "relay from a link we do not serve",
            {
                let mut p = relay_forw(renew(), None);
                p[2..18].copy_from_slice(&"2001:db8:77::".parse::<Ipv6Addr>().unwrap().octets());
                relayed(p).encode()
            },
            stat::PASS_WRONG_LINK,
        ),
        (
            "LDRA (link-address ::) with a global peer-address (the controller looks it up)",
            {
                let mut p = ldra_forw(renew(), IFACE_ID);
                p[18..34].copy_from_slice(&"2001:db8:1::77".parse::<Ipv6Addr>().unwrap().octets());
                relayed_to(p, relay_ll(), group("ff02::1:2")).encode()
            },
            stat::PASS_WRONG_LINK,
        ),
        (
            "not DHCP (UDP to port 53)",
            {
                let mut f = direct(renew());
                f.dst_port = 53;
                f.encode()
            },
            stat::PASS_NOT_DHCP,
        ),
    ];
    for (what, input, reason) in cases {
        let before = lab.counter(reason);
        let out = lab.fp.test_run(&input, LO, 1).unwrap();
        assert_eq!(out.verdict, XDP_PASS, "{what}: verdict");
        assert_eq!(out.frame, input, "{what}: frame must be untouched");
        assert_eq!(
            lab.counter(reason),
            before + 1,
            "{what}: reason counter {}",
            stat::NAMES[reason as usize]
        );
    }
}

#[test]
fn expired_binding_is_passed_on() {
    let lab = setup();
    let key = BindingKey::new(CLIENT_DUID).unwrap();
    let mut map = lab.fp.bindings().unwrap().get(&key, 0).unwrap();
    map.expires = now_unix() - 1;
    let mut lab = lab;
    lab.fp.bindings_mut().unwrap().insert(key, map, 0).unwrap();
    let input = direct(renew()).encode();
    let out = lab.fp.test_run(&input, LO, 1).unwrap();
    assert_eq!(out.verdict, XDP_PASS);
    assert_eq!(out.frame, input);
    assert_eq!(lab.counter(stat::PASS_EXPIRED), 1);
}

/// A renewal reaching past what the store is sure to keep for the client (its durable expiry plus
/// the grace period) is left to the controller, which makes it durable before answering.
#[test]
fn renewal_beyond_the_durable_horizon_is_passed_on() {
    let mut lab = setup();
    let key = BindingKey::new(CLIENT_DUID).unwrap();
    let mut binding = lab.fp.bindings().unwrap().get(&key, 0).unwrap();
    binding.durable_until = now_unix() + VALID as u64 - 10;
    lab.fp
        .bindings_mut()
        .unwrap()
        .insert(key, binding, 0)
        .unwrap();
    let input = direct(renew()).encode();
    let out = lab.fp.test_run(&input, LO, 1).unwrap();
    assert_eq!((out.verdict, &out.frame), (XDP_PASS, &input));
    assert_eq!(lab.counter(stat::PASS_NOT_DURABLE), 1);
    // A Request extends the binding as a Renew does: the same horizon holds it back.
    let request = direct(request_msg()).encode();
    let out = lab.fp.test_run(&request, LO, 1).unwrap();
    assert_eq!((out.verdict, &out.frame), (XDP_PASS, &request));
    assert_eq!(lab.counter(stat::PASS_NOT_DURABLE), 2);
    assert_eq!(
        lab.expires(),
        binding.expires,
        "nothing promised, nothing moved"
    );
    // An Advertise promises nothing: still answered.
    let solicit = direct(msg(
        MSG_SOLICIT,
        &[
            client_id(),
            ia_na(NA_IAID, 0, 0, None),
            ia_pd(PD_IAID, 0, 0, None),
        ],
    ));
    assert_eq!(lab.run(&solicit).0, XDP_TX);
}

#[test]
fn disabled_fast_path_passes_everything() {
    let mut lab = setup();
    let mut cfg = lab.fp.global().unwrap();
    cfg.enabled = 0;
    lab.fp.set_global(&cfg).unwrap();
    let input = direct(renew()).encode();
    let out = lab.fp.test_run(&input, LO, 1).unwrap();
    assert_eq!((out.verdict, out.frame), (XDP_PASS, input));
}

/// The controller's object carries none of the benchmark's programs (they are the `bench`
/// feature's, in the benchmark's own object), and leaves its reply in the frame.
#[test]
fn controller_object_has_no_bench_programs() {
    let lab = setup();
    for name in [
        dhcp_common::maps::TRIVIAL_PROGRAM,
        dhcp_common::maps::LOOKUP_FLOOR_PROGRAM,
        dhcp_common::maps::RENEW_FLOOR_PROGRAM,
    ] {
        assert!(
            lab.fp.xdp_program(name).is_err(),
            "{name} is in the controller's object"
        );
    }
    // Without the benchmark's restore, the second run meets the first run's Reply and passes it.
    let input = direct(renew()).encode();
    let out = lab.fp.test_run(&input, LO, 2).unwrap();
    assert_eq!(out.verdict, XDP_PASS);
    assert_eq!(lab.counter(stat::TX_RENEW), 1);
}

/// In the benchmark's build of the object, `repeat` runs the whole fast path every time (the
/// request is put back after each answer), and the trivial program is there to compare against.
#[test]
fn bench_mode_repeats_the_full_answer() {
    let lab = setup_bench();
    let input = direct(renew()).encode();
    let out = lab.fp.test_run(&input, LO, 1000).unwrap();
    assert_eq!(out.verdict, XDP_TX);
    assert_eq!(
        out.frame, input,
        "the request is restored after each answer"
    );
    assert_eq!(lab.counter(stat::TX_RENEW), 1000);
    let trivial = lab
        .fp
        .xdp_program(dhcp_common::maps::TRIVIAL_PROGRAM)
        .unwrap();
    let floor = dhcp_user::fastpath::test_run(trivial, &input, LO, 1000).unwrap();
    assert_eq!(floor.verdict, XDP_PASS);
}

/// The checksum paths the cases above do not take: a UDP payload over 512 bytes (the program
/// sums it in two helper calls) and an IPv6 Hop-by-Hop header between IPv6 and UDP. Each is
/// answered exactly as without it; with the UDP checksum off by one bit, each is passed on.
#[test]
fn long_payloads_and_extension_headers_keep_the_checksums_right() {
    let lab = setup();
    let long_renew = renew_with(&[opt(OPT_VENDOR_CLASS, &[0xab; 600])]);
    assert!(long_renew.len() > 600);
    let long = direct(long_renew).encode();
    let expected = direct_reply(renew_reply()).encode();
    let (verdict, out) = lab
        .fp
        .test_run(&long, LO, 1)
        .map(|o| (o.verdict, o.frame))
        .unwrap();
    assert_eq!(verdict, XDP_TX, "long renew: verdict");
    assert_eq!(out, expected, "long renew: reply bytes");

    // Hop-by-Hop (8 bytes: next header UDP, PadN) after the fixed IPv6 header.
    let plain = direct(renew()).encode();
    let mut hbh = plain.clone();
    let ip = 14;
    hbh[ip + 6] = 0; // next header: Hop-by-Hop
    let payload_len = u16::from_be_bytes([hbh[ip + 4], hbh[ip + 5]]) + 8;
    hbh[ip + 4..ip + 6].copy_from_slice(&payload_len.to_be_bytes());
    hbh.splice(ip + 40..ip + 40, [17, 0, 1, 4, 0, 0, 0, 0]);
    let (verdict, out) = lab
        .fp
        .test_run(&hbh, LO, 1)
        .map(|o| (o.verdict, o.frame))
        .unwrap();
    assert_eq!(verdict, XDP_TX, "renew behind hop-by-hop: verdict");
    assert_eq!(out, expected, "renew behind hop-by-hop: reply bytes");

    for (what, frame, udp) in [("long", long, 14 + 40), ("hop-by-hop", hbh, 14 + 48)] {
        let mut bad = frame.clone();
        bad[udp + 7] ^= 1;
        let before = lab.counter(stat::PASS_MALFORMED);
        let (verdict, out) = lab
            .fp
            .test_run(&bad, LO, 1)
            .map(|o| (o.verdict, o.frame))
            .unwrap();
        assert_eq!(verdict, XDP_PASS, "{what} with a bad checksum: verdict");
        assert_eq!(out, bad, "{what} with a bad checksum: unchanged");
        assert_eq!(
            lab.counter(stat::PASS_MALFORMED),
            before + 1,
            "{what}: counted"
        );
    }
}

/// With a subnet selected by relay address (`relay-addresses`), the controller's rule alone
/// picks relayed clients' subnets: every relayed request, LDRA or not, is passed on untouched
/// (`pass_relay_selector`); direct ones are still answered. With Interface-IDs only
/// (`relay-interface-ids`), a relayed request carrying an Interface-ID is passed on, and one
/// without is answered (no Interface-ID selector can apply to it).
#[test]
fn relayed_requests_are_passed_on_when_relay_selectors_could_apply() {
    let mut lab = setup();
    let mut global = lab.fp.global().unwrap();
    global.relay_selectors = dhcp_common::RELAY_SELECT_BY_ADDRESS;
    lab.fp.set_global(&global).unwrap();
    for input in [
        relayed(relay_forw(renew(), None)),
        relayed(relay_forw(renew(), Some(IFACE_ID))),
        relayed_to(ldra_forw(renew(), IFACE_ID), relay_ll(), group("ff02::1:2")),
    ] {
        let bytes = input.encode();
        let out = lab.fp.test_run(&bytes, LO, 1).unwrap();
        assert_eq!((out.verdict, &out.frame), (XDP_PASS, &bytes));
    }
    assert_eq!(lab.counter(stat::PASS_RELAY_SELECTOR), 3);
    assert_eq!(lab.run(&direct(renew())).0, XDP_TX);

    global.relay_selectors = dhcp_common::RELAY_SELECT_BY_INTERFACE_ID;
    lab.fp.set_global(&global).unwrap();
    let with_id = relayed(relay_forw(renew(), Some(IFACE_ID))).encode();
    let out = lab.fp.test_run(&with_id, LO, 1).unwrap();
    assert_eq!((out.verdict, &out.frame), (XDP_PASS, &with_id));
    assert_eq!(lab.counter(stat::PASS_RELAY_SELECTOR), 4);
    assert_eq!(lab.run(&relayed(relay_forw(renew(), None))).0, XDP_TX);
}

/// NTP server (56) with one address sub-option, RFC 5908 section 4, by hand.
fn ntp_body() -> Vec<u8> {
    let mut b = vec![0, 1, 0, 16];
    b.extend_from_slice(&"2001:db8:1::123".parse::<Ipv6Addr>().unwrap().octets());
    b
}
/// AFTR-Name (64), RFC 6334 section 3: "aftr.example" in DNS wire format.
const AFTR: &[u8] = b"\x04aftr\x07example\x00";
/// Vendor options (17): enterprise 4491, sub-option 1 = 0a0b.
const VENDOR: &[u8] = &[0, 0, 0x11, 0x8b, 0, 1, 0, 2, 0x0a, 0x0b];

/// The lab's subnet with vendor (17), DNS (23), NTP (56), AFTR (64, always-send) and INF_MAX_RT
/// (83, Information-Request only), in code order as the controller fills the slots.
fn options_subnet() -> dhcp_common::SubnetConfig {
    let ntp = ntp_body();
    lab_subnet(slots(&[
        (OPT_VENDOR_OPTS, VENDOR, 0),
        (OPT_DNS_SERVERS, &dns().octets()[..], 0),
        (56, &ntp, 0),
        (64, AFTR, dhcp_common::OPTION_SLOT_ALWAYS),
        (
            OPT_INF_MAX_RT,
            &be32(3600)[..],
            dhcp_common::OPTION_SLOT_INFORMATION_ONLY,
        ),
    ]))
}

/// A Renew asking for vendor, NTP and INF_MAX_RT gets them in slot order with the always-sent
/// AFTR-Name, but no DNS (not asked) and no INF_MAX_RT (a Renew's Reply): copied verbatim.
#[test]
fn configured_options_follow_the_oro_and_always_send() {
    let mut lab = setup();
    lab.set_subnet(&options_subnet());
    let renew = msg(
        MSG_RENEW,
        &[
            client_id(),
            server_id(),
            ia_na(NA_IAID, 0, 0, Some((na_addr(), 0, 0))),
            ia_pd(PD_IAID, 0, 0, Some((pd_prefix(), 56, 0, 0))),
            oro(&[56, OPT_INF_MAX_RT, OPT_VENDOR_OPTS]),
        ],
    );
    let reply = msg(
        MSG_REPLY,
        &[
            server_id(),
            client_id(),
            granted_na(),
            granted_pd(),
            opt(OPT_VENDOR_OPTS, VENDOR),
            opt(56, &ntp_body()),
            opt(64, AFTR),
        ],
    );
    check_answered(
        &lab,
        "renew",
        direct(renew),
        direct_reply(reply),
        stat::TX_RENEW,
    );
    let info = msg(
        MSG_INFORMATION_REQUEST,
        &[client_id(), oro(&[OPT_INF_MAX_RT, OPT_DNS_SERVERS])],
    );
    let info_reply = msg(
        MSG_REPLY,
        &[
            server_id(),
            client_id(),
            opt(OPT_DNS_SERVERS, &dns().octets()),
            opt(64, AFTR),
            opt(OPT_INF_MAX_RT, &be32(3600)),
        ],
    );
    check_answered(
        &lab,
        "information-request",
        direct(info),
        direct_reply(info_reply),
        stat::TX_INFORMATION_REQUEST,
    );
}

/// A Confirm's Reply carries no configured option, not even an always-send one (RFC 8415
/// section 18.3.3: only the Status Code).
#[test]
fn a_confirm_reply_has_no_configured_options() {
    let mut lab = setup();
    lab.set_subnet(&options_subnet());
    check_answered(
        &lab,
        "confirm",
        direct(confirm_msg(na_addr())),
        direct_reply(confirm_reply(true)),
        stat::TX_CONFIRM,
    );
}

/// Options that did not fit the slots: every request but a Confirm goes to the controller,
/// counted as `pass_options_too_big`.
#[test]
fn options_that_do_not_fit_pass_every_request_but_a_confirm() {
    let mut lab = setup();
    let mut subnet = options_subnet();
    subnet.options_fit = 0;
    lab.set_subnet(&subnet);
    check_passed(&lab, "renew", direct(renew()), stat::PASS_OPTIONS_TOO_BIG);
    let info = msg(MSG_INFORMATION_REQUEST, &[client_id()]);
    check_passed(
        &lab,
        "information-request",
        direct(info),
        stat::PASS_OPTIONS_TOO_BIG,
    );
    assert_eq!(
        lab.run(&direct(confirm_msg(na_addr()))).0,
        XDP_TX,
        "confirm answered"
    );
}

/// A binding whose replies carry options the fast path has no set for is passed on; one whose
/// pd-pool has a Prefix Exclude its set does not carry (here the subnet's slots: no room for
/// one that does) only when the ORO asks for 67 and the request has its IA_PD.
#[test]
fn binding_options_and_a_requested_prefix_exclude_are_passed_on() {
    let mut lab = setup();
    lab.add_binding_flags(dhcp_common::BINDING_PD_EXCLUDE);
    let with_67 = msg(
        MSG_RENEW,
        &[
            client_id(),
            server_id(),
            ia_na(NA_IAID, 0, 0, Some((na_addr(), 0, 0))),
            ia_pd(PD_IAID, 0, 0, Some((pd_prefix(), 56, 0, 0))),
            oro(&[OPT_DNS_SERVERS, 67]),
        ],
    );
    check_passed(
        &lab,
        "renew asking for 67",
        direct(with_67),
        stat::PASS_PD_EXCLUDE,
    );
    let address_alone = msg(
        MSG_RENEW,
        &[
            client_id(),
            server_id(),
            ia_na(NA_IAID, 0, 0, Some((na_addr(), 0, 0))),
            oro(&[OPT_DNS_SERVERS, 67]),
        ],
    );
    assert_eq!(
        lab.run(&direct(address_alone)).0,
        XDP_TX,
        "no IA_PD: no IAPREFIX to carry it"
    );
    check_answered(
        &lab,
        "renew without 67",
        direct(renew()),
        direct_reply(renew_reply()),
        stat::TX_RENEW,
    );
    lab.edit_binding(|b| b.option_sets = [dhcp_common::OPTION_SET_NONE; 3]);
    check_passed(
        &lab,
        "options without a set",
        direct(renew()),
        stat::PASS_BINDING_OPTIONS,
    );
}
