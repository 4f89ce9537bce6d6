//! Golden-packet table for the XDP fast path, run through BPF_PROG_TEST_RUN: each case is
//! {what, frame in, expected verdict, expected frame out}. Expected replies are built here by
//! hand from the RFC 8415 layouts, independently of the program and of the server's encoder.
//! Needs root and BPF (as does `cargo xtask test`).

use std::{net::Ipv6Addr, time::SystemTime};

use dhcp_common::{
    dhcpv6::*, stat, BindingKey, BindingValue, GlobalConfig, IfaceConfig, SubnetConfig,
    BINDING_HAS_NA, BINDING_HAS_PD, FAST_OPTION_MAX, FAST_SERVER_DUID_MAX,
};
use dhcp_user::fastpath::{frame::Udp6Frame, FastPath, XDP_PASS, XDP_TX};

const LO: u32 = 1;
const SERVER_MAC: [u8; 6] = [0x02, 0x53, 0, 0, 0, 1];
const CLIENT_MAC: [u8; 6] = [0x02, 0xc1, 0, 0, 0, 1];
const RELAY_MAC: [u8; 6] = [0x02, 0x4e, 0, 0, 0, 1];
const SERVER_DUID: &[u8] = &[0, 1, 0, 1, 0x2a, 0x2b, 0x2c, 0x2d, 2, 0x53, 0, 0, 0, 1];
const CLIENT_DUID: &[u8] = &[0, 3, 0, 1, 2, 0xc1, 0, 0, 0, 1];
const NA_IAID: u32 = 0x0a0b0c0d;
const PD_IAID: u32 = 7;
const PREFERRED: u32 = 3000;
const VALID: u32 = 4000;
const T1: u32 = 1500;
const T2: u32 = 2400;
const INFO_REFRESH: u32 = 86400;
const XID: [u8; 3] = [0x12, 0x34, 0x56];

fn na_addr() -> Ipv6Addr {
    "2001:db8:1::1234".parse().unwrap()
}
fn pd_prefix() -> Ipv6Addr {
    "2001:db8:8000:100::".parse().unwrap()
}
fn server_ll() -> Ipv6Addr {
    "fe80::53".parse().unwrap()
}
fn client_ll() -> Ipv6Addr {
    "fe80::c1".parse().unwrap()
}
fn dns() -> Ipv6Addr {
    "2001:db8:1::53".parse().unwrap()
}
fn domain_wire() -> Vec<u8> {
    b"\x03lab\x07example\x00".to_vec()
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn opt(code: u16, body: &[u8]) -> Vec<u8> {
    let mut v = code.to_be_bytes().to_vec();
    v.extend_from_slice(&(body.len() as u16).to_be_bytes());
    v.extend_from_slice(body);
    v
}
fn msg(msg_type: u8, options: &[Vec<u8>]) -> Vec<u8> {
    let mut v = vec![msg_type, XID[0], XID[1], XID[2]];
    for o in options {
        v.extend_from_slice(o);
    }
    v
}
fn be32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}
fn ia_na(iaid: u32, t1: u32, t2: u32, addr: Option<(Ipv6Addr, u32, u32)>) -> Vec<u8> {
    let mut body = [be32(iaid), be32(t1), be32(t2)].concat();
    if let Some((a, p, v)) = addr {
        body.extend(opt(
            OPT_IAADDR,
            &[&a.octets()[..], &be32(p), &be32(v)].concat(),
        ));
    }
    opt(OPT_IA_NA, &body)
}
fn ia_pd(iaid: u32, t1: u32, t2: u32, prefix: Option<(Ipv6Addr, u8, u32, u32)>) -> Vec<u8> {
    let mut body = [be32(iaid), be32(t1), be32(t2)].concat();
    if let Some((a, len, p, v)) = prefix {
        body.extend(opt(
            OPT_IAPREFIX,
            &[&be32(p)[..], &be32(v), &[len], &a.octets()].concat(),
        ));
    }
    opt(OPT_IA_PD, &body)
}
fn oro(codes: &[u16]) -> Vec<u8> {
    opt(
        OPT_ORO,
        &codes
            .iter()
            .flat_map(|c| c.to_be_bytes())
            .collect::<Vec<_>>(),
    )
}
fn elapsed() -> Vec<u8> {
    opt(OPT_ELAPSED_TIME, &[0, 0])
}

/// The reply IAs the controller grants for this binding (docs/fastpath.md).
fn granted_na() -> Vec<u8> {
    ia_na(NA_IAID, T1, T2, Some((na_addr(), PREFERRED, VALID)))
}
fn granted_pd() -> Vec<u8> {
    ia_pd(PD_IAID, T1, T2, Some((pd_prefix(), 56, PREFERRED, VALID)))
}

fn direct(payload: Vec<u8>) -> Udp6Frame {
    Udp6Frame {
        dst_mac: [0x33, 0x33, 0, 1, 0, 2],
        src_mac: CLIENT_MAC,
        vlans: vec![],
        src_ip: client_ll(),
        dst_ip: ALL_RELAYS_AND_SERVERS.into(),
        hop_limit: 1,
        flow: 0,
        src_port: CLIENT_PORT,
        dst_port: SERVER_PORT,
        payload,
    }
}
fn direct_reply(payload: Vec<u8>) -> Udp6Frame {
    Udp6Frame {
        dst_mac: CLIENT_MAC,
        src_mac: SERVER_MAC,
        vlans: vec![],
        src_ip: server_ll(),
        dst_ip: client_ll(),
        hop_limit: 64,
        flow: 0,
        src_port: SERVER_PORT,
        dst_port: CLIENT_PORT,
        payload,
    }
}
fn relay_addr() -> Ipv6Addr {
    "2001:db8:99::1".parse().unwrap()
}
fn server_global() -> Ipv6Addr {
    "2001:db8:99::547".parse().unwrap()
}
fn relay_forw(inner: Vec<u8>, interface_id: Option<&[u8]>) -> Vec<u8> {
    let mut v = vec![MSG_RELAY_FORW, 0];
    v.extend_from_slice(&"2001:db8:1::".parse::<Ipv6Addr>().unwrap().octets());
    v.extend_from_slice(&client_ll().octets());
    if let Some(id) = interface_id {
        v.extend(opt(OPT_INTERFACE_ID, id));
    }
    v.extend(opt(
        OPT_REMOTE_ID,
        &[0, 0, 0x0d, 0xe9, b'p', b'o', b'r', b't', b'1'],
    ));
    v.extend(opt(OPT_RELAY_MSG, &inner));
    v
}
fn relay_repl(inner: Vec<u8>, interface_id: Option<&[u8]>) -> Vec<u8> {
    let mut v = vec![MSG_RELAY_REPL, 0];
    v.extend_from_slice(&"2001:db8:1::".parse::<Ipv6Addr>().unwrap().octets());
    v.extend_from_slice(&client_ll().octets());
    if let Some(id) = interface_id {
        v.extend(opt(OPT_INTERFACE_ID, id));
    }
    v.extend(opt(OPT_RELAY_MSG, &inner));
    v
}
fn relayed(payload: Vec<u8>) -> Udp6Frame {
    Udp6Frame {
        dst_mac: SERVER_MAC,
        src_mac: RELAY_MAC,
        vlans: vec![],
        src_ip: relay_addr(),
        dst_ip: server_global(),
        hop_limit: 64,
        flow: 0,
        src_port: SERVER_PORT,
        dst_port: SERVER_PORT,
        payload,
    }
}
fn relayed_reply(payload: Vec<u8>) -> Udp6Frame {
    Udp6Frame {
        dst_mac: RELAY_MAC,
        src_mac: SERVER_MAC,
        vlans: vec![],
        src_ip: server_global(),
        dst_ip: relay_addr(),
        hop_limit: 64,
        flow: 0,
        src_port: SERVER_PORT,
        dst_port: SERVER_PORT,
        payload,
    }
}

fn with_vlans(mut f: Udp6Frame, vlans: &[(u16, u16)]) -> Udp6Frame {
    f.vlans = vlans.to_vec();
    f
}

fn client_id() -> Vec<u8> {
    opt(OPT_CLIENTID, CLIENT_DUID)
}
fn server_id() -> Vec<u8> {
    opt(OPT_SERVERID, SERVER_DUID)
}
fn dns_opt() -> Vec<u8> {
    opt(OPT_DNS_SERVERS, &dns().octets())
}
fn domain_opt() -> Vec<u8> {
    opt(OPT_DOMAIN_LIST, &domain_wire())
}

fn renew() -> Vec<u8> {
    msg(
        MSG_RENEW,
        &[
            client_id(),
            server_id(),
            elapsed(),
            ia_na(NA_IAID, 0, 0, Some((na_addr(), 0, 0))),
            ia_pd(PD_IAID, 0, 0, Some((pd_prefix(), 56, 0, 0))),
            oro(&[OPT_DNS_SERVERS, OPT_DOMAIN_LIST]),
        ],
    )
}
fn renew_reply() -> Vec<u8> {
    msg(
        MSG_REPLY,
        &[
            server_id(),
            client_id(),
            granted_na(),
            granted_pd(),
            dns_opt(),
            domain_opt(),
        ],
    )
}

struct Lab {
    fp: FastPath,
}

fn setup() -> Lab {
    setup_with(false)
}

fn setup_with(bench: bool) -> Lab {
    let mut fp =
        FastPath::load_with(None, bench).expect("load the XDP program (needs root and BPF)");
    let mut server_duid = [0u8; FAST_SERVER_DUID_MAX];
    server_duid[..SERVER_DUID.len()].copy_from_slice(SERVER_DUID);
    fp.set_global(&GlobalConfig {
        boot_to_unix_ns: dhcp_user::fastpath::boot_to_unix_ns(),
        enabled: 1,
        server_duid_len: SERVER_DUID.len() as u8,
        _pad: [0; 2],
        pass_rate_per_cpu: 0,
        server_duid,
    })
    .unwrap();
    fp.set_iface(
        LO,
        &IfaceConfig {
            mac: SERVER_MAC,
            subnet: 3,
            link_local: server_ll().octets(),
            enabled: 1,
            has_subnet: 1,
            _pad: [0; 6],
        },
    )
    .unwrap();
    let mut dns_bytes = [0u8; FAST_OPTION_MAX];
    dns_bytes[..16].copy_from_slice(&dns().octets());
    let mut domain = [0u8; FAST_OPTION_MAX];
    domain[..domain_wire().len()].copy_from_slice(&domain_wire());
    fp.set_subnet(
        3,
        &SubnetConfig {
            preferred_lifetime: PREFERRED,
            valid_lifetime: VALID,
            t1: T1,
            t2: T2,
            info_refresh_time: INFO_REFRESH,
            enabled: 1,
            rapid_commit: 1,
            send_preference: 1,
            preference: 200,
            dns_len: 16,
            domain_len: domain_wire().len() as u16,
            dns: dns_bytes,
            domain,
        },
    )
    .unwrap();
    fp.set_link("2001:db8:1::".parse().unwrap(), 64, 3).unwrap();
    let key = BindingKey::new(CLIENT_DUID).unwrap();
    fp.bindings_mut()
        .unwrap()
        .insert(
            key,
            BindingValue {
                expires: now_unix() + 1000,
                na_iaid: NA_IAID,
                pd_iaid: PD_IAID,
                na_addr: na_addr().octets(),
                pd_prefix: pd_prefix().octets(),
                subnet: 3,
                flags: BINDING_HAS_NA | BINDING_HAS_PD,
                pd_len: 56,
                _pad: [0; 4],
            },
            0,
        )
        .unwrap();
    Lab { fp }
}

impl Lab {
    fn run(&self, frame: &Udp6Frame) -> (u32, Vec<u8>) {
        let out = self.fp.test_run(&frame.encode(), LO, 1).unwrap();
        (out.verdict, out.frame)
    }
    fn expires(&self) -> u64 {
        self.fp
            .bindings()
            .unwrap()
            .get(&BindingKey::new(CLIENT_DUID).unwrap(), 0)
            .unwrap()
            .expires
    }
    fn counter(&self, index: u32) -> u64 {
        self.fp.stats().unwrap()[index as usize].packets
    }
}

/// Answered cases: the frame out must be exactly the expected frame.
#[test]
fn answered_cases_match_the_expected_frames() {
    let lab = setup();
    let q_in_q = [(0x88a8, 100), (0x8100, 200)];
    let iface_id = b"eth0/1/2:vlan100";
    let cases: Vec<(&str, Udp6Frame, Udp6Frame, u32)> = vec![
        (
            "renew, direct",
            direct(renew()),
            direct_reply(renew_reply()),
            stat::TX_RENEW,
        ),
        (
            "renew, 802.1Q",
            with_vlans(direct(renew()), &[(0x8100, 42)]),
            with_vlans(direct_reply(renew_reply()), &[(0x8100, 42)]),
            stat::TX_RENEW,
        ),
        (
            "renew, QinQ",
            with_vlans(direct(renew()), &q_in_q),
            with_vlans(direct_reply(renew_reply()), &q_in_q),
            stat::TX_RENEW,
        ),
        (
            "rebind, PD before NA, no ORO",
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
            stat::TX_REBIND,
        ),
        (
            "solicit from a known client: advertise with preference",
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
            stat::TX_SOLICIT_ADVERTISE,
        ),
        (
            "solicit with rapid commit: reply",
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
            stat::TX_SOLICIT_REPLY,
        ),
        (
            "information-request",
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
            stat::TX_INFORMATION_REQUEST,
        ),
        (
            "information-request without client id",
            direct(msg(MSG_INFORMATION_REQUEST, &[oro(&[24])])),
            direct_reply(msg(MSG_REPLY, &[server_id(), domain_opt()])),
            stat::TX_INFORMATION_REQUEST,
        ),
        (
            "relayed renew with interface-id",
            relayed(relay_forw(renew(), Some(iface_id))),
            relayed_reply(relay_repl(renew_reply(), Some(iface_id))),
            stat::TX_RENEW,
        ),
        (
            "relayed rebind without interface-id, 802.1Q",
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
            stat::TX_REBIND,
        ),
        (
            "relayed information-request",
            relayed(relay_forw(
                msg(MSG_INFORMATION_REQUEST, &[client_id(), oro(&[23])]),
                Some(b"x"),
            )),
            relayed_reply(relay_repl(
                msg(MSG_REPLY, &[server_id(), client_id(), dns_opt()]),
                Some(b"x"),
            )),
            stat::TX_INFORMATION_REQUEST,
        ),
    ];
    for (what, input, expected, counter) in cases {
        let before = lab.counter(counter);
        let (verdict, out) = lab.run(&input);
        assert_eq!(verdict, XDP_TX, "{what}: verdict");
        let got = Udp6Frame::decode(&out).unwrap_or_else(|e| panic!("{what}: reply frame: {e}"));
        assert_eq!(got, expected, "{what}: reply frame");
        assert_eq!(out, expected.encode(), "{what}: reply bytes");
        assert_eq!(lab.counter(counter), before + 1, "{what}: counter");
    }
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
            "only one of the binding's IAs",
            direct(msg(
                MSG_RENEW,
                &[
                    client_id(),
                    server_id(),
                    ia_na(NA_IAID, 0, 0, Some((na_addr(), 0, 0))),
                ],
            ))
            .encode(),
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
            "request",
            direct(msg(MSG_REQUEST, &[client_id(), server_id()])).encode(),
            stat::PASS_MSG_TYPE,
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
            "two relay hops",
            relayed(relay_forw(relay_forw(renew(), None), None)).encode(),
            stat::PASS_UNSUPPORTED,
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

/// With the benchmark switch on, `repeat` runs the whole fast path every time (the request is
/// put back after each answer), and the trivial program is there to compare against.
#[test]
fn bench_mode_repeats_the_full_answer() {
    let lab = setup_with(true);
    let input = direct(renew()).encode();
    let out = lab.fp.test_run(&input, LO, 1000).unwrap();
    assert_eq!(out.verdict, XDP_TX);
    assert_eq!(
        out.frame, input,
        "the request is restored after each answer"
    );
    assert_eq!(lab.counter(stat::TX_RENEW), 1000);
    let trivial = lab.fp.trivial_program().unwrap();
    let floor = dhcp_user::fastpath::test_run(trivial, &input, LO, 1000).unwrap();
    assert_eq!(floor.verdict, XDP_PASS);
}
