//! Differential test of the fast-path rule: for the same binding and the same request (direct,
//! relayed, VLAN-tagged), the XDP program's reply (BPF_PROG_TEST_RUN) and the controller's reply
//! (`Server::handle`) are the same bytes; every mismatch case is passed on to the controller.
//! Needs root and BPF (as does `cargo xtask test`).

mod fastpath_common;

use std::{net::Ipv6Addr, sync::Arc};

use dhcp_common::{
    dhcpv6::*, stat, BindingKey, BindingValue, OPTION_SET_NA, OPTION_SET_NA_PD, OPTION_SET_NONE,
    OPTION_SET_PD,
};
use dhcp_testwire::Udp6Frame;
use dhcp_user::{
    clock::unix_now as now_unix,
    fastpath::{
        option_sets::SetOptions,
        sync::{
            binding_for, configure, decode_renewal, iface_config, push_binding,
            push_binding_judged, MapSync, Reconfigure, SubnetIndex,
        },
        FastPath, XDP_PASS, XDP_TX,
    },
    netif::{reply_source, IfaceInfo},
    server::{handler::Inbound, vlan, Server},
    store::{LeaseFilter, LeaseStore, LeaseType, SqliteStore},
};
use fastpath_common::{
    controller::{tempdir, *},
    *,
};

struct Pair {
    server: Arc<Server>,
    fp: FastPath,
    /// The interface as the fast path was configured with it (and `reply_source` reads it).
    iface: IfaceInfo,
    binding: BindingValue,
    _dir: tempdir::Dir,
}

/// A server and a fast path configured alike, with one client granted an address and a prefix
/// by the server (Solicit with Rapid Commit, passed through the program first, which notes the
/// client's MAC for the controller as on a link) and its binding pushed into the map.
async fn pair(tag: &str) -> Pair {
    pair_with(tag, "", "").await
}

/// As `pair`, the config extended as [`config_with`] does.
async fn pair_with(tag: &str, pd_pool: &str, extra: &str) -> Pair {
    pair_on(tag, ("", pd_pool), extra, &[]).await
}

/// As `pair_with`, the address pool's table extended with `pool` as [`config_with_pools`] does.
async fn pair_with_pools(tag: &str, pool: &str, pd_pool: &str, extra: &str) -> Pair {
    pair_on(tag, (pool, pd_pool), extra, &[]).await
}

/// As `pair_with_pools` (`pools`: the address pool's and the pd-pool's additions), the client
/// on the line of `vlans` (none: untagged): its Solicit reaches the controller as the
/// tagged-frame socket would hand it on (`vlan::inbound_of`).
async fn pair_on(tag: &str, pools: (&str, &str), extra: &str, vlans: &[(u16, u16)]) -> Pair {
    pair_granted(tag, pools, extra, vlans, &[]).await
}

/// As `pair_on`, the client's Solicit carrying `sent` too (a Vendor Class, say): the binding
/// is pushed with what the controller judged its classes on, as the map sync does.
async fn pair_granted(
    tag: &str,
    pools: (&str, &str),
    extra: &str,
    vlans: &[(u16, u16)],
    sent: &[Vec<u8>],
) -> Pair {
    pair_through(tag, pools, extra, vlans, sent, Path::Direct).await
}

/// As `pair_granted`, the client's Solicit reaching the server by `path` (through a relay:
/// the relays' options are among what its classes are judged on).
async fn pair_through(
    tag: &str,
    pools: (&str, &str),
    extra: &str,
    vlans: &[(u16, u16)],
    sent: &[Vec<u8>],
    path: Path,
) -> Pair {
    let dir = tempdir::Dir::new(tag);
    let config = config_with_pools(&dir.0, pools.0, pools.1, extra);
    let store: Arc<dyn LeaseStore> = Arc::new(SqliteStore::open(dir.0.join("leases.db")).unwrap());
    let server = Server::with_store(config.clone(), store.clone(), &["lo".to_string()]).unwrap();
    server.set_direct_subnet("lo", Some(0));
    assert_eq!(server.server_duid().as_bytes(), SERVER_DUID);

    let mut fp = FastPath::load(None).expect("load the XDP program (needs root and BPF)");
    let lo = IfaceInfo {
        name: "lo".into(),
        ifindex: LO,
        mac: SERVER_MAC,
        link_local: server_ll(),
        addresses: vec![(server_global(), 64)],
    };
    configure(&mut fp, &config, SERVER_DUID, std::slice::from_ref(&lo), 0).unwrap();
    server.read_client_macs(Arc::new(fp.client_macs().unwrap()));

    let grant = with_options(
        msg(
            MSG_SOLICIT,
            &[
                client_id(),
                elapsed(),
                opt(OPT_RAPID_COMMIT, &[]),
                ia_na(NA_IAID, 0, 0, None),
                ia_pd(PD_IAID, 0, 0, None),
            ],
        ),
        sent,
    );
    let (frame, relayed_inbound) = match path {
        Path::Direct => (with_vlans(direct(grant.clone()), vlans).encode(), None),
        _ => {
            let (frame, inbound) = request(path, grant.clone(), vlans);
            (frame.encode(), Some(inbound))
        }
    };
    let passed = fp.test_run(&frame, LO, 1).unwrap();
    assert_eq!(passed.verdict, XDP_PASS, "a new client's Solicit");
    let inbound = if let Some(inbound) = relayed_inbound {
        inbound
    } else if vlans.is_empty() {
        inbound_direct(grant)
    } else {
        vlan::inbound_of(&frame, None, false, SERVER_MAC, LO, "lo").expect("a tagged request")
    };
    let reply = server.handle(&inbound).await.expect("rapid-commit reply");
    let wrapped = !matches!(path, Path::Direct);
    assert_eq!(reply[0], if wrapped { MSG_RELAY_REPL } else { MSG_REPLY });

    let leases = store
        .find(
            &LeaseFilter::Duid {
                duid: CLIENT_DUID.to_vec(),
                iaid: None,
            },
            None,
            16,
        )
        .unwrap();
    assert_eq!(leases.len(), 2, "an address and a prefix: {leases:?}");
    let index = SubnetIndex::new(&config);
    let (key, binding) = binding_for(&leases, now_unix(), &index).expect("fast-path binding");
    // With the option sets its classes and its leases' pools and reservations make
    // (`OPTION_SETS`), and what its classes were judged on (`CLASS_INPUTS`).
    let facts = server.class_facts_of(CLIENT_DUID);
    let binding = push_binding_judged(&mut fp, &index, &key, binding, facts.as_deref()).unwrap();
    Pair {
        server,
        fp,
        iface: lo,
        binding,
        _dir: dir,
    }
}

impl Pair {
    fn addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.binding.na_addr)
    }
    fn prefix(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.binding.pd_prefix)
    }
    fn bound_na(&self) -> Vec<u8> {
        ia_na(NA_IAID, 0, 0, Some((self.addr(), 0, 0)))
    }
    fn bound_pd(&self) -> Vec<u8> {
        ia_pd(
            PD_IAID,
            0,
            0,
            Some((self.prefix(), self.binding.pd_len, 0, 0)),
        )
    }
}

/// `message` with `options` appended (each whole: code, length, body).
fn with_options(mut message: Vec<u8>, options: &[Vec<u8>]) -> Vec<u8> {
    for option in options {
        message.extend_from_slice(option);
    }
    message
}

/// The client messages of the matrix, built for this pair's binding.
#[derive(Clone, Copy)]
enum Ask {
    Renew,
    Rebind,
    RenewAddressAlone,
    /// A Renew of the IA_PD alone.
    RenewPrefixAlone,
    RebindPrefixAlone,
    Solicit,
    RapidSolicit,
    InformationRequest,
    /// A Request naming the binding (the IAs of the Advertise), with an ORO.
    Request,
    /// A Request whose IAs carry no address or prefix, PD first.
    RequestWithoutHints,
    /// A Request of the address alone.
    RequestAddressAlone,
    /// A Confirm of the bound address.
    Confirm,
    /// A Confirm of an address on no link we serve.
    ConfirmNotOnLink,
    /// A Renew whose ORO asks for vendor, DNS, NTP and SIP options (as CPEs do).
    RenewWithOptions,
    /// A Renew whose ORO asks for Prefix Exclude (67) too.
    RenewWithPdExclude,
}

impl Pair {
    fn message(&self, ask: Ask) -> Vec<u8> {
        let dns_and_domain = oro(&[OPT_DNS_SERVERS, OPT_DOMAIN_LIST]);
        let (na, pd) = (self.bound_na(), self.bound_pd());
        match ask {
            Ask::Renew => msg(
                MSG_RENEW,
                &[client_id(), server_id(), elapsed(), na, pd, dns_and_domain],
            ),
            // PD first: the reply keeps the request's order.
            Ask::Rebind => msg(MSG_REBIND, &[client_id(), elapsed(), pd, na]),
            // A client may renew its IAs separately (ISC dhclient runs one process per IA type).
            Ask::RenewAddressAlone => msg(
                MSG_RENEW,
                &[client_id(), server_id(), elapsed(), na, dns_and_domain],
            ),
            Ask::RenewPrefixAlone => msg(
                MSG_RENEW,
                &[client_id(), server_id(), elapsed(), pd, dns_and_domain],
            ),
            Ask::RebindPrefixAlone => msg(MSG_REBIND, &[client_id(), elapsed(), pd]),
            Ask::Solicit => msg(
                MSG_SOLICIT,
                &[
                    client_id(),
                    elapsed(),
                    ia_na(NA_IAID, 0, 0, None),
                    ia_pd(PD_IAID, 0, 0, None),
                    dns_and_domain,
                ],
            ),
            Ask::RapidSolicit => msg(
                MSG_SOLICIT,
                &[
                    client_id(),
                    opt(OPT_RAPID_COMMIT, &[]),
                    ia_na(NA_IAID, 0, 0, None),
                    ia_pd(PD_IAID, 0, 0, None),
                ],
            ),
            Ask::InformationRequest => msg(
                MSG_INFORMATION_REQUEST,
                &[client_id(), elapsed(), oro(&[23, 24, 32])],
            ),
            Ask::Request => msg(
                MSG_REQUEST,
                &[client_id(), server_id(), elapsed(), na, pd, dns_and_domain],
            ),
            Ask::RequestWithoutHints => msg(
                MSG_REQUEST,
                &[
                    client_id(),
                    server_id(),
                    ia_pd(PD_IAID, 0, 0, None),
                    ia_na(NA_IAID, 0, 0, None),
                    oro(&[OPT_DOMAIN_LIST]),
                ],
            ),
            Ask::RequestAddressAlone => msg(MSG_REQUEST, &[client_id(), server_id(), na]),
            Ask::Confirm => msg(
                MSG_CONFIRM,
                &[client_id(), elapsed(), na, pd, dns_and_domain],
            ),
            Ask::RenewWithOptions => msg(
                MSG_RENEW,
                &[
                    client_id(),
                    server_id(),
                    elapsed(),
                    na,
                    pd,
                    oro(&[17, 23, 56, 21]),
                ],
            ),
            Ask::RenewWithPdExclude => msg(
                MSG_RENEW,
                &[client_id(), server_id(), elapsed(), na, pd, oro(&[23, 67])],
            ),
            Ask::ConfirmNotOnLink => msg(
                MSG_CONFIRM,
                &[
                    client_id(),
                    ia_na(NA_IAID, 0, 0, Some((ip("2001:db8:2::1"), 0, 0))),
                ],
            ),
        }
    }
}

/// The same request to both: the XDP reply frame must be, byte for byte, the frame the
/// controller's reply would be on the link (payload, Ethernet, VLAN, IPv6 and UDP headers).
async fn same_frame(tag: &str, ask: Ask, path: Path, vlans: &[(u16, u16)]) {
    same_frame_of(&pair(tag).await, tag, ask, path, vlans).await;
}

async fn same_frame_of(p: &Pair, tag: &str, ask: Ask, path: Path, vlans: &[(u16, u16)]) {
    same_frame_for(p, tag, p.message(ask), path, vlans).await;
}

/// [`same_frame_of`] for the client message `message`.
async fn same_frame_for(p: &Pair, tag: &str, message: Vec<u8>, path: Path, vlans: &[(u16, u16)]) {
    let (frame, inbound) = request(path, message, vlans);
    let out = p.fp.test_run(&frame.encode(), LO, 1).unwrap();
    assert_eq!(out.verdict, XDP_TX, "{tag}: the fast path must answer");
    let payload = p
        .server
        .handle(&inbound)
        .await
        .unwrap_or_else(|| panic!("{tag}: controller reply"));
    let source = reply_source(&p.iface, frame.dst_ip, frame.src_ip)
        .unwrap_or_else(|| panic!("{tag}: the controller has a source for this reply"));
    let expected = controller_frame(&frame, source, payload).encode();
    assert_eq!(
        hex(&out.frame),
        hex(&expected),
        "{tag}: XDP frame (left) differs from the controller's (right)"
    );
}

/// One named test per case: `name: message, path, VLAN tags;`.
macro_rules! same_frame_cases {
    ($($(#[doc = $doc:literal])* $name:ident: $ask:expr, $path:expr, $vlans:expr;)*) => {$(
        $(#[doc = $doc])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            same_frame(stringify!($name), $ask, $path, $vlans).await;
        }
    )*};
}

const DOT1Q: &[(u16, u16)] = &[(0x8100, 100)];
const QINQ: &[(u16, u16)] = &[(0x88a8, 10), (0x8100, 100)];

fn relay_global_to_us() -> Path {
    Path::Relay {
        from: relay_addr(),
        to: server_global(),
    }
}
fn relay_ll_to_our_ll() -> Path {
    Path::Relay {
        from: relay_ll(),
        to: server_ll(),
    }
}
fn relay_ll_to(group: &str) -> Path {
    Path::Relay {
        from: relay_ll(),
        to: ip(group),
    }
}
fn relay_global_to(group: &str) -> Path {
    Path::Relay {
        from: relay_addr(),
        to: ip(group),
    }
}

/// An access node's LDRA on the link, from its link-local address to ff02::1:2.
fn ldra() -> Path {
    Path::Ldra {
        from: relay_ll(),
        to: ip(TO_RELAYS),
    }
}

/// An access node's LDRA behind an L3 relay that sends from its global address to ours.
fn ldra_behind_relay() -> Path {
    Path::LdraBehindRelay {
        from: relay_addr(),
        to: server_global(),
    }
}

same_frame_cases! {
    /// A direct Renew to ff02::1:2 is answered from our link-local address.
    direct_renew: Ask::Renew, Path::Direct, &[];
    /// The same behind one 802.1Q tag, kept in the reply.
    direct_renew_dot1q: Ask::Renew, Path::Direct, DOT1Q;
    /// The same behind QinQ (802.1ad outer, 802.1Q inner).
    direct_renew_qinq: Ask::Renew, Path::Direct, QINQ;
    /// A Rebind with the IA_PD first gets its IAs back in that order.
    direct_rebind_pd_first: Ask::Rebind, Path::Direct, &[];
    /// A Renew of the address alone extends only the address.
    direct_renew_address_alone: Ask::RenewAddressAlone, Path::Direct, &[];
    /// A Rebind of the prefix alone extends only the prefix.
    direct_rebind_prefix_alone: Ask::RebindPrefixAlone, Path::Direct, &[];
    /// A known client's Solicit gets the Advertise of its binding.
    direct_solicit_known: Ask::Solicit, Path::Direct, &[];
    /// With Rapid Commit, a Reply.
    direct_solicit_rapid_commit: Ask::RapidSolicit, Path::Direct, &[];
    /// An Information-Request gets DNS, domain list and refresh time.
    direct_information_request: Ask::InformationRequest, Path::Direct, &[];
    /// A relay sending to our global address is answered from it.
    relayed_renew_to_our_global: Ask::Renew, relay_global_to_us(), &[];
    /// The same, VLAN-tagged.
    relayed_rebind_to_our_global_dot1q: Ask::Rebind, relay_global_to_us(), DOT1Q;
    relayed_solicit_to_our_global: Ask::Solicit, relay_global_to_us(), &[];
    relayed_information_request_to_our_global: Ask::InformationRequest, relay_global_to_us(), &[];
    /// A relay sending to our link-local address is answered from it.
    relayed_renew_to_our_link_local: Ask::Renew, relay_ll_to_our_ll(), &[];
    /// A relay on the link sending to ff02::1:2 from its link-local address is answered from
    /// ours, never from the group (the bug of issue 14).
    relayed_renew_to_ff02_from_link_local: Ask::Renew, relay_ll_to(TO_RELAYS), &[];
    relayed_rebind_to_ff02_from_link_local_qinq: Ask::Rebind, relay_ll_to(TO_RELAYS), QINQ;
    relayed_solicit_to_ff02_from_link_local: Ask::RapidSolicit, relay_ll_to(TO_RELAYS), &[];
    /// A relay sending to ff02::1:2 from a global address is answered from our global address.
    relayed_renew_to_ff02_from_global: Ask::Renew, relay_global_to(TO_RELAYS), &[];
    /// A relay sending to All_DHCP_Servers (ff05::1:3, dhcrelay's default) from a global
    /// address is answered from our global address.
    relayed_renew_to_ff05_from_global: Ask::Renew, relay_global_to(TO_SERVERS), &[];
    relayed_rebind_to_ff05_from_global_dot1q: Ask::Rebind, relay_global_to(TO_SERVERS), DOT1Q;
    relayed_information_request_to_ff05_from_global: Ask::InformationRequest, relay_global_to(TO_SERVERS), &[];
    /// ... and from our link-local address when the relay used its link-local one.
    relayed_renew_to_ff05_from_link_local: Ask::Renew, relay_ll_to(TO_SERVERS), &[];
    /// An LDRA's Renew (link-address ::) is served from the interface's subnet, answered from
    /// our link-local address to the LDRA's, Interface-ID echoed.
    ldra_renew: Ask::Renew, ldra(), &[];
    /// An LDRA's Rebind, the same, behind one 802.1Q tag.
    ldra_rebind_dot1q: Ask::Rebind, ldra(), DOT1Q;
    /// An LDRA-relayed known Solicit gets the Advertise of its binding.
    ldra_solicit_known: Ask::Solicit, ldra(), &[];
    /// With Rapid Commit, a Reply.
    ldra_solicit_rapid_commit: Ask::RapidSolicit, ldra(), &[];
    /// An LDRA behind an L3 relay (two hops): the relay's link-address names the subnet; the
    /// Relay-Repl nests both hops, each Interface-ID echoed.
    ldra_behind_relay_renew: Ask::Renew, ldra_behind_relay(), &[];
    /// The same for a Rebind, behind one 802.1Q tag.
    ldra_behind_relay_rebind_dot1q: Ask::Rebind, ldra_behind_relay(), DOT1Q;
    /// The same for a known client's Solicit.
    ldra_behind_relay_solicit_known: Ask::Solicit, ldra_behind_relay(), &[];
    /// An LDRA's Information-Request gets the interface subnet's options.
    ldra_information_request: Ask::InformationRequest, ldra(), &[];
    /// A known client's Request naming its binding gets the Reply that extends it.
    direct_request_known: Ask::Request, Path::Direct, &[];
    /// The same behind QinQ.
    direct_request_known_qinq: Ask::Request, Path::Direct, QINQ;
    /// A Request whose IAs name no address or prefix gets the binding, in the request's order.
    direct_request_without_hints: Ask::RequestWithoutHints, Path::Direct, &[];
    /// A Request of the address alone extends only the address.
    direct_request_address_alone: Ask::RequestAddressAlone, Path::Direct, &[];
    /// A relayed Request to our global address.
    relayed_request_to_our_global: Ask::Request, relay_global_to_us(), &[];
    /// A relay on the link sending a Request to ff02::1:2, 802.1Q.
    relayed_request_to_ff02_from_link_local_dot1q: Ask::Request, relay_ll_to(TO_RELAYS), DOT1Q;
    /// A relay sending a hint-less Request to ff05::1:3 from a global address.
    relayed_request_without_hints_to_ff05: Ask::RequestWithoutHints, relay_global_to(TO_SERVERS), &[];
    /// An LDRA's Request.
    ldra_request: Ask::Request, ldra(), &[];
    /// An LDRA behind an L3 relay: a Request, both hops.
    ldra_behind_relay_request: Ask::Request, ldra_behind_relay(), &[];
    /// A Confirm of the bound address on its link: Success.
    direct_confirm: Ask::Confirm, Path::Direct, &[];
    /// The same behind one 802.1Q tag.
    direct_confirm_dot1q: Ask::Confirm, Path::Direct, DOT1Q;
    /// A Confirm of an address on no link we serve: NotOnLink.
    direct_confirm_not_on_link: Ask::ConfirmNotOnLink, Path::Direct, &[];
    /// A relayed Confirm to our global address.
    relayed_confirm_to_our_global: Ask::Confirm, relay_global_to_us(), &[];
    /// A relayed Confirm from a client on another link, to ff05::1:3, QinQ: NotOnLink.
    relayed_confirm_not_on_link_to_ff05_qinq: Ask::ConfirmNotOnLink, relay_global_to(TO_SERVERS), QINQ;
    /// An LDRA's Confirm.
    ldra_confirm: Ask::Confirm, ldra(), &[];
    /// An LDRA behind an L3 relay: a Confirm of an address of no link of ours.
    ldra_behind_relay_confirm_not_on_link: Ask::ConfirmNotOnLink, ldra_behind_relay(), &[];
}

/// Lines of `lo` for [`pair_on`]: the QinQ line (S-VLAN 10, C-VLAN 100) and the 802.1Q line
/// 100 are the subnet's, so XDP finds it in `VLANS` and the controller by `Config::vlan_subnet`.
const LO_LINES: &str = r#"vlans = [
  { interface = "lo", s-vlan = 10, c-vlan = 100 },
  { interface = "lo", s-vlan = 100 },
]"#;

/// The tagged path end to end on both sides, for a client bound on its line: the request frame
/// goes to XDP (BPF_PROG_TEST_RUN) and, as the controller's AF_PACKET socket takes it
/// (`vlan::inbound_of`: tags, IPv6, UDP and checksum parsed), to the handler; the controller's
/// reply frame is the one its socket sends (`vlan::build_frame`, from the source `send_reply`
/// picks). The two frames are compared whole: Ethernet, both tags, IPv6, UDP, payload; nothing
/// is masked.
async fn same_frame_on_line(tag: &str, ask: Ask, vlans: &[(u16, u16)]) {
    let p = pair_on(tag, ("", ""), LO_LINES, vlans).await;
    let frame = with_vlans(direct(p.message(ask)), vlans).encode();
    let out = p.fp.test_run(&frame, LO, 1).unwrap();
    assert_eq!(out.verdict, XDP_TX, "{tag}: the fast path must answer");
    let inbound = vlan::inbound_of(&frame, None, false, SERVER_MAC, LO, "lo")
        .unwrap_or_else(|refused| panic!("{tag}: the tagged path refused it: {refused}"));
    let link = inbound.link.expect("a tagged request has its line");
    let payload = p
        .server
        .handle(&inbound)
        .await
        .unwrap_or_else(|| panic!("{tag}: controller reply"));
    let from = reply_source(&p.iface, inbound.destination, *inbound.source.ip())
        .unwrap_or_else(|| panic!("{tag}: the controller has a source for this reply"));
    let sent = vlan::build_frame(&link, SERVER_MAC, from, inbound.source, &payload);
    assert_eq!(
        hex(&out.frame),
        hex(&sent),
        "{tag}: XDP frame (left) differs from the tagged socket's (right)"
    );
}

/// A QinQ client's Renew: XDP's reply and the controller's tagged-socket frame are the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qinq_line_renew_xdp_and_tagged_socket_send_the_same_frame() {
    same_frame_on_line("qinq-renew", Ask::Renew, QINQ_LINE).await;
}

/// A known QinQ client's Solicit: the same Advertise frame from both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qinq_line_known_solicit_xdp_and_tagged_socket_send_the_same_frame() {
    same_frame_on_line("qinq-solicit", Ask::Solicit, QINQ_LINE).await;
}

/// A QinQ client's Rebind (IA_PD first) and Information-Request: the same frames.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qinq_line_rebind_and_information_request_send_the_same_frame() {
    same_frame_on_line("qinq-rebind", Ask::Rebind, QINQ_LINE).await;
    same_frame_on_line("qinq-info", Ask::InformationRequest, QINQ_LINE).await;
}

/// An 802.1Q client with priority bits in its TCI (PCP 5): the reply keeps the whole TCI on both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot1q_line_renew_with_priority_sends_the_same_frame() {
    same_frame_on_line("dot1q-renew", Ask::Renew, &[(0x8100, 0xa000 | 100)]).await;
}

/// The line of [`LO_LINES`] as a QinQ client's frame carries it: 802.1ad 10 outside 802.1Q 100.
const QINQ_LINE: &[(u16, u16)] = &[(0x88a8, 10), (0x8100, 100)];

/// A Request answered in XDP has the store effect of the controller's: the renewal it reports
/// on the ring buffer, applied as the fast path applies it, leaves the client's leases with
/// the expiry the controller's own Request would give them (now + valid-lifetime).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_answered_in_xdp_extends_the_leases_as_the_controller_would() {
    let mut p = pair("request-durable").await;
    let mut ring = p.fp.take_events().unwrap();
    let (frame, _) = request(Path::Direct, p.message(Ask::Request), &[]);
    let out = p.fp.test_run(&frame.encode(), LO, 1).unwrap();
    assert_eq!(out.verdict, XDP_TX);
    let item = ring.next().expect("the Request's renewal report");
    let (renewal, types) = decode_renewal(&item).expect("a whole report");
    drop(item);
    assert_eq!(renewal.msg_type, MSG_REQUEST);
    assert_eq!(types, [LeaseType::Na, LeaseType::Pd]);
    let now = now_unix();
    assert!(renewal.expires as i64 >= now + VALID as i64 - 2);
    // (Within the second of the grant there is nothing to extend: the leases already end then.)
    p.server
        .apply_fast_path_renewal(CLIENT_DUID, renewal.expires as i64, &types)
        .unwrap();
    p.server.writer().flush().await.unwrap();
    let leases = p.server.durable_leases_of(CLIENT_DUID, 16);
    assert_eq!(leases.len(), 2, "the address and the prefix");
    for lease in leases {
        assert_eq!(lease.expire, renewal.expires as i64, "{lease:?}");
    }
}

/// Where the fast path cannot know the source the controller would pick (no global address on
/// the interface, or several), or the request went somewhere the controller's socket does not
/// listen, the frame is passed on untouched, under the reason named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknowable_sources_are_passed_on() {
    let mut p = pair("no-source").await;
    let renew = p.message(Ask::Renew);
    let config = p.server.config().clone();
    // (what, the interface's global addresses, the request's path, the reason counted)
    type Case<'a> = (&'a str, Vec<(Ipv6Addr, u8)>, Path, u32);
    let cases: Vec<Case> = vec![
        (
            "global reply, no global address on the interface",
            vec![],
            relay_global_to(TO_SERVERS),
            stat::PASS_NO_SOURCE,
        ),
        (
            "global reply, two global addresses on the interface",
            vec![(server_global(), 64), (ip("2001:db8:77::547"), 64)],
            relay_global_to(TO_RELAYS),
            stat::PASS_NO_SOURCE,
        ),
        (
            "relayed to a group we did not join",
            vec![(server_global(), 64)],
            relay_ll_to("ff02::1"),
            stat::PASS_UNSUPPORTED,
        ),
        (
            "direct to ff05::1:3 (clients use ff02::1:2)",
            vec![(server_global(), 64)],
            Path::Direct,
            stat::PASS_UNSUPPORTED,
        ),
    ];
    for (what, addresses, path, reason) in cases {
        p.iface.addresses = addresses;
        p.fp.set_iface(LO, &iface_config(&config, &p.iface))
            .unwrap();
        let (mut frame, _) = request(path, renew.clone(), &[]);
        if matches!(path, Path::Direct) {
            frame.dst_ip = ip(TO_SERVERS);
        }
        let encoded = frame.encode();
        let before = p.fp.stats().unwrap()[reason as usize].packets;
        let out = p.fp.test_run(&encoded, LO, 1).unwrap();
        assert_eq!(out.verdict, XDP_PASS, "{what}");
        assert_eq!(out.frame, encoded, "{what}: passed on untouched");
        assert_eq!(
            p.fp.stats().unwrap()[reason as usize].packets,
            before + 1,
            "{what}: counted as {}",
            stat::NAMES[reason as usize]
        );
    }
}

/// A frame whose UDP checksum was left to offload (the field holds the pseudo-header sum, as a
/// relay or client on this host sends over veth) is passed on under pass_csum_offload, not
/// pass_malformed; the kernel would deliver it to the controller, which answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offloaded_checksums_are_passed_under_their_own_reason() {
    let p = pair("csum-offload").await;
    let (frame, inbound) = request(relay_ll_to(TO_RELAYS), p.message(Ask::Renew), &[]);
    let mut encoded = frame.encode();
    let udp = encoded.len() - frame.payload.len() - 8;
    let segment_len = (frame.payload.len() + 8) as u32;
    encoded[udp + 6..udp + 8]
        .copy_from_slice(&pseudo_header_sum(&frame, segment_len).to_be_bytes());
    let out = p.fp.test_run(&encoded, LO, 1).unwrap();
    assert_eq!(out.verdict, XDP_PASS);
    assert_eq!(out.frame, encoded, "passed on untouched");
    let stats = p.fp.stats().unwrap();
    assert_eq!(stats[stat::PASS_CSUM_OFFLOAD as usize].packets, 1);
    assert_eq!(stats[stat::PASS_MALFORMED as usize].packets, 0);
    assert!(
        p.server.handle(&inbound).await.is_some(),
        "the controller answers it"
    );

    // A checksum that is neither right nor the pseudo-header sum is malformed.
    encoded[udp + 6] ^= 0x40;
    let out = p.fp.test_run(&encoded, LO, 1).unwrap();
    assert_eq!(out.verdict, XDP_PASS);
    assert_eq!(
        p.fp.stats().unwrap()[stat::PASS_MALFORMED as usize].packets,
        1
    );
}

/// The folded, not complemented, sum of the UDP pseudo-header: what Linux puts in the checksum
/// field of a datagram whose checksum it leaves to the device (CHECKSUM_PARTIAL).
fn pseudo_header_sum(frame: &Udp6Frame, udp_len: u32) -> u16 {
    let mut sum: u64 = 0;
    for chunk in frame
        .src_ip
        .octets()
        .chunks(2)
        .chain(frame.dst_ip.octets().chunks(2))
    {
        sum += u64::from(u16::from_be_bytes([chunk[0], chunk[1]]));
    }
    sum += u64::from(udp_len >> 16) + u64::from(udp_len & 0xffff) + 17;
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Each case where the fast path cannot be sure of the controller's answer is passed on, frame
/// untouched, and the controller does answer it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatches_are_passed_to_the_controller() {
    let p = pair("mismatch").await;
    let other_server = opt(OPT_SERVERID, &[0, 3, 0, 1, 9, 9, 9, 9, 9, 9]);
    let unknown_client = opt(OPT_CLIENTID, &[0, 3, 0, 1, 7, 7, 7, 7, 7, 7]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "wrong IAID",
            msg(
                MSG_RENEW,
                &[
                    client_id(),
                    server_id(),
                    ia_na(NA_IAID + 1, 0, 0, Some((p.addr(), 0, 0))),
                    p.bound_pd(),
                ],
            ),
        ),
        (
            "wrong server ID",
            msg(
                MSG_RENEW,
                &[client_id(), other_server, p.bound_na(), p.bound_pd()],
            ),
        ),
        (
            "unknown DUID",
            msg(
                MSG_RENEW,
                &[unknown_client, server_id(), p.bound_na(), p.bound_pd()],
            ),
        ),
        (
            "request without a server ID",
            msg(MSG_REQUEST, &[client_id(), p.bound_na(), p.bound_pd()]),
        ),
        (
            "request of another address",
            msg(
                MSG_REQUEST,
                &[
                    client_id(),
                    server_id(),
                    ia_na(NA_IAID, 0, 0, Some((ip("2001:db8:1::1fff"), 0, 0))),
                ],
            ),
        ),
        (
            "confirm with a server ID",
            msg(MSG_CONFIRM, &[client_id(), server_id(), p.bound_na()]),
        ),
        (
            "confirm without an address",
            msg(MSG_CONFIRM, &[client_id(), ia_na(NA_IAID, 0, 0, None)]),
        ),
        (
            "release",
            msg(
                MSG_RELEASE,
                &[client_id(), server_id(), p.bound_na(), p.bound_pd()],
            ),
        ),
    ];
    for (what, request) in cases {
        let frame = direct(request.clone()).encode();
        let out = p.fp.test_run(&frame, LO, 1).unwrap();
        assert_eq!(out.verdict, XDP_PASS, "{what}");
        assert_eq!(out.frame, frame, "{what}: passed on untouched");
    }

    // Expired in the map: passed on; the controller is the one to decide.
    let key = BindingKey::new(CLIENT_DUID).unwrap();
    let mut expired = p.binding;
    expired.expires = now_unix() as u64 - 1;
    let mut p = p;
    p.fp.bindings_mut()
        .unwrap()
        .insert(key, expired, 0)
        .unwrap();
    let renew = msg(
        MSG_RENEW,
        &[client_id(), server_id(), p.bound_na(), p.bound_pd()],
    );
    let out =
        p.fp.test_run(&direct(renew.clone()).encode(), LO, 1)
            .unwrap();
    assert_eq!(out.verdict, XDP_PASS, "expired");
    assert!(
        p.server.handle(&inbound_direct(renew)).await.is_some(),
        "the controller answers what was passed on"
    );
}

/// A frame the controller would never answer must be passed on untouched (and the controller,
/// given the datagram, does not answer it either when `controller_silent`).
async fn passed_on_untouched(tag: &str, frame: Udp6Frame, inbound: Option<Inbound>) {
    let p = pair(tag).await;
    let encoded = frame.encode();
    let out = p.fp.test_run(&encoded, LO, 1).unwrap();
    assert_eq!(out.verdict, XDP_PASS, "{tag}: passed on");
    assert_eq!(out.frame, encoded, "{tag}: untouched");
    if let Some(inbound) = inbound {
        assert!(
            p.server.handle(&inbound).await.is_none(),
            "{tag}: the controller does not answer it"
        );
    }
}

/// Found by fastpath_property (seed 1): a relayed Renew to our link-local address in a frame
/// for another host's MAC (a promiscuous device sees it; the kernel drops it) was answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_for_another_mac_is_passed_on() {
    let p = pair("other-mac-msg").await;
    let renew = p.message(Ask::Renew);
    drop(p);
    let (mut frame, _) = request(relay_ll_to_our_ll(), renew.clone(), &[]);
    frame.dst_mac = [0x5a, 0xf1, 0x62, 0x20, 0xa2, 0xa1];
    passed_on_untouched("other-mac", frame, None).await;
    // A group's frame must carry the group's MAC.
    let (mut frame, _) = request(Path::Direct, renew, &[]);
    frame.dst_mac = [0x33, 0x33, 0, 0, 0, 1];
    passed_on_untouched("other-group-mac", frame, None).await;
}

/// Found by fastpath_property (seed 1): a Renew with a Reconfigure Accept carrying a body,
/// which the controller's decoder refuses (the message is dropped), was answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconfigure_accept_with_a_body_is_passed_on() {
    let p = pair("reconf-accept-msg").await;
    let renew = msg(
        MSG_RENEW,
        &[
            client_id(),
            server_id(),
            elapsed(),
            p.bound_na(),
            p.bound_pd(),
            opt(OPT_RECONF_ACCEPT, &[0x91, 0xe6, 0x29, 0xb4]),
        ],
    );
    drop(p);
    let (frame, inbound) = request(relay_global_to(TO_SERVERS), renew, QINQ);
    passed_on_untouched("reconf-accept", frame, Some(inbound)).await;
}

/// Found by fastpath_property (seed 1): a relayed Information-Request whose Relay-Forw carries
/// an empty Remote-ID (RFC 4649: at least the 4-byte enterprise number), which the controller's
/// decoder refuses, was answered. Relay options the decoder checks are the controller's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_option_the_decoder_refuses_is_passed_on() {
    let info = msg(MSG_INFORMATION_REQUEST, &[client_id(), elapsed()]);
    for (tag, relay_option) in [
        ("empty-remote-id", opt(OPT_REMOTE_ID, &[])),
        ("short-relay-id", opt(OPT_RELAY_ID, &[0, 1])),
        ("elapsed-time-in-relay", opt(OPT_ELAPSED_TIME, &[0, 0, 0])),
    ] {
        let (mut frame, mut inbound) = request(relay_global_to(TO_SERVERS), info.clone(), &[]);
        let mut relay = vec![MSG_RELAY_FORW, 0];
        relay.extend_from_slice(&ip("2001:db8:1::").octets());
        relay.extend_from_slice(&client_ll().octets());
        relay.extend(relay_option);
        relay.extend(opt(OPT_RELAY_MSG, &info));
        frame.payload = relay.clone();
        inbound.bytes = relay;
        passed_on_untouched(tag, frame, Some(inbound)).await;
    }
}

/// Found by fastpath_property (seed 1): an Information-Request whose Client ID is 2 bytes
/// (shorter than any DUID; the controller's decoder refuses it) was answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_id_shorter_than_a_duid_is_passed_on() {
    let info = msg(
        MSG_INFORMATION_REQUEST,
        &[elapsed(), opt(OPT_CLIENTID, &[0, 4])],
    );
    let (frame, inbound) = request(Path::Direct, info, &[]);
    passed_on_untouched("short-client-id", frame, Some(inbound)).await;
}

/// Found by fastpath_property (seed 1): a relayed Renew sent to a unicast address that is not
/// ours (in a frame for our MAC) was answered, from that address. The kernel would forward or
/// drop it; only the interface's own addresses are answered in XDP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_request_to_an_address_not_ours_is_passed_on() {
    let p = pair("not-our-address-msg").await;
    let renew = p.message(Ask::Renew);
    drop(p);
    for (tag, to) in [
        ("other-global", ip("2001:db8:99::548")),
        ("other-link-local", ip("fe80::43")),
    ] {
        let (frame, _) = request(
            Path::Relay {
                from: relay_addr(),
                to,
            },
            renew.clone(),
            &[],
        );
        passed_on_untouched(tag, frame, None).await;
    }
}

/// Found by fastpath_property (seed 0x5eed0001): a Renew from a multicast source address
/// (which the kernel drops, RFC 4291 section 2.7) was answered; so would one from `::`, which
/// leaves nowhere to reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multicast_or_unspecified_source_is_passed_on() {
    let p = pair("bad-source-msg").await;
    let renew = p.message(Ask::Renew);
    drop(p);
    for (tag, from) in [
        ("multicast-source", ip("ff80::c1")),
        ("unspecified-source", Ipv6Addr::UNSPECIFIED),
    ] {
        let (mut frame, _) = request(Path::Direct, renew.clone(), DOT1Q);
        frame.src_ip = from;
        passed_on_untouched(tag, frame, None).await;
    }
}

/// Subnet-level options of every kind the lab's clients ask for: NTP (RFC 5908), AFTR-Name
/// (RFC 6334, always-send), vendor options (enterprise 4491), SIP domains, and an INF_MAX_RT
/// that only an Information-Request's Reply may carry.
const SUBNET_OPTIONS: &str = r#"
[[subnet.option]]
name = "ntp-server"
value = [{ server = "2001:db8:1::123" }, { fqdn = "ntp.lab.example" }]
[[subnet.option]]
name = "aftr-name"
value = "aftr.lab.example"
always-send = true
[[subnet.option]]
name = "vendor-opts"
value = { enterprise = 4491, options = [{ code = 1, hex = "0a:0b:0c" }, { code = 2, text = "cm" }] }
[[subnet.option]]
name = "sip-server-d"
value = ["sip.lab.example"]
[[subnet.option]]
name = "inf-max-rt"
value = 3600
"#;

/// The option blocks in XDP: every path and message the fast path answers, with the subnet's
/// NTP, AFTR, vendor and SIP options, is the controller's frame byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subnet_options_are_answered_byte_for_byte() {
    let p = pair_with("subnet-options", "", SUBNET_OPTIONS).await;
    type Case<'a> = (&'a str, Ask, Path, &'a [(u16, u16)]);
    let cases: [Case; 9] = [
        ("renew", Ask::RenewWithOptions, Path::Direct, &[]),
        ("renew dot1q", Ask::RenewWithOptions, Path::Direct, DOT1Q),
        (
            "renew relayed",
            Ask::RenewWithOptions,
            relay_global_to_us(),
            &[],
        ),
        ("renew ldra", Ask::RenewWithOptions, ldra(), QINQ),
        ("renew, only dns asked", Ask::Renew, Path::Direct, &[]),
        ("rebind, no oro", Ask::Rebind, Path::Direct, &[]),
        ("solicit", Ask::Solicit, ldra_behind_relay(), &[]),
        ("request", Ask::Request, Path::Direct, &[]),
        (
            "information-request",
            Ask::InformationRequest,
            Path::Direct,
            &[],
        ),
    ];
    for (what, ask, path, vlans) in cases {
        same_frame_of(&p, what, ask, path, vlans).await;
    }
    // And the options are there: the vendor's, NTP, AFTR (always-send), SIP; no INF_MAX_RT.
    let (_, inbound) = request(Path::Direct, p.message(Ask::RenewWithOptions), &[]);
    let reply = p.server.handle(&inbound).await.expect("controller reply");
    let has = |code: u16| reply.windows(2).any(|w| w == code.to_be_bytes());
    let mut aftr = vec![0, 64, 0, 18];
    aftr.extend_from_slice(b"\x04aftr\x03lab\x07example\x00");
    assert!(
        reply.windows(aftr.len()).any(|w| w == aftr.as_slice()),
        "{}",
        hex(&reply)
    );
    assert!(has(17) && has(56) && has(21), "{}", hex(&reply));
    assert!(
        !reply.windows(4).any(|w| w == [0, 83, 0, 4]),
        "no INF_MAX_RT in a Renew's Reply"
    );
}

/// A direct client's reservation by link-layer address (its frame's MAC, which the program
/// notes for the controller): the controller grants the reserved address, and the program
/// renews it (the MAC stored with the lease) byte for byte as the controller would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_by_the_frames_mac_is_renewed_byte_for_byte() {
    let extra = format!(
        r#"
[[subnet.reservations]]
client-linklayer-address = "{mac}"
address = "2001:db8:1::4242"
"#,
        mac = hex(&CLIENT_MAC)
    );
    let p = pair_with("mac-reservation", "", &extra).await;
    assert_eq!(p.addr(), ip("2001:db8:1::4242"), "the reservation");
    same_frame_of(&p, "mac-reservation", Ask::Renew, Path::Direct, &[]).await;
    assert_eq!(
        p.fp.stats().unwrap()[stat::CLIENT_MAC_UPDATE_FAILED as usize].packets,
        0
    );
}

/// Options of the client's reservation: the controller merges them over the subnet's (the
/// reservation's NTP replaces the subnet's), and the fast path answers with that list, byte
/// for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reservation_options_are_answered_byte_for_byte() {
    let extra = format!(
        r#"{SUBNET_OPTIONS}
[[subnet.reservations]]
duid = "{duid}"
address = "2001:db8:1::4242"
option = [{{ name = "ntp-server", value = [{{ server = "2001:db8:1::124" }}] }}]
"#,
        duid = hex(CLIENT_DUID)
    );
    let p = pair_with("reservation-options", "", &extra).await;
    assert_ne!(p.binding.option_sets[OPTION_SET_NA_PD], 0);
    same_frame_of(&p, "renew", Ask::RenewWithOptions, Path::Direct, &[]).await;
    let (_, inbound) = request(Path::Direct, p.message(Ask::RenewWithOptions), &[]);
    let reply = p.server.handle(&inbound).await.expect("controller reply");
    let mut ntp = vec![0, 1, 0, 16];
    ntp.extend_from_slice(&ip("2001:db8:1::124").octets());
    let ntp = opt(56, &ntp);
    assert!(
        reply.windows(ntp.len()).any(|w| w == ntp.as_slice()),
        "the reservation's NTP server in {}",
        hex(&reply)
    );
    assert!(
        !reply.windows(7).any(|w| w == b"\x03ntp\x03lab"),
        "not the subnet's"
    );
}

/// The subnet's SNTP server (31), always sent.
const SUBNET_SNTP: &str = r#"
[[subnet.option]]
name = "sntp-servers"
value = "2001:db8:1::7a"
always-send = true
"#;

/// A pool's (or pd-pool's) own SNTP server, always sent, added to its table.
const POOL_SNTP: &str =
    r#", option = [{ name = "sntp-servers", value = "2001:db8:1::7b", always-send = true }]"#;

/// The SNTP server (31) in the controller's reply to `ask`, if it carries one.
async fn sntp_server(p: &Pair, ask: Ask) -> Option<Ipv6Addr> {
    let (_, inbound) = request(Path::Direct, p.message(ask), &[]);
    let reply = p.server.handle(&inbound).await.expect("controller reply");
    reply
        .windows(20)
        .find(|w| w[..4] == [0, 31, 0, 16])
        .map(|w| Ipv6Addr::from(<[u8; 16]>::try_from(&w[4..]).unwrap()))
}

/// An address pool's own option replaces the subnet's of that code in the replies granting
/// its address (a Renew of both IAs, of the IA_NA alone, an Advertise), the subnet's staying
/// in one of the IA_PD alone: each answered in XDP with the controller's bytes, the two lists
/// one option set each (the pool's shared by both combinations that carry it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_option_is_answered_byte_for_byte() {
    let p = pair_with_pools("pool-options", POOL_SNTP, "", SUBNET_SNTP).await;
    let sets = p.binding.option_sets;
    assert!(
        ![0, OPTION_SET_NONE].contains(&sets[OPTION_SET_NA]),
        "{sets:?}"
    );
    assert_eq!(
        sets[OPTION_SET_NA_PD], sets[OPTION_SET_NA],
        "one list, one set"
    );
    assert_eq!(
        sets[OPTION_SET_PD], 0,
        "the prefix alone: the subnet's slots"
    );
    assert_eq!(p.fp.option_sets().in_use(), 1);
    for (what, ask) in [
        ("renew", Ask::Renew),
        ("renew address alone", Ask::RenewAddressAlone),
        ("renew prefix alone", Ask::RenewPrefixAlone),
        ("rebind", Ask::Rebind),
        ("solicit", Ask::Solicit),
        ("request", Ask::Request),
    ] {
        same_frame_of(&p, what, ask, Path::Direct, &[]).await;
    }
    same_frame_of(&p, "relayed", Ask::Renew, relay_global_to_us(), &[]).await;
    let pool = Some(ip("2001:db8:1::7b"));
    assert_eq!(sntp_server(&p, Ask::Renew).await, pool);
    assert_eq!(sntp_server(&p, Ask::RenewAddressAlone).await, pool);
    assert_eq!(
        sntp_server(&p, Ask::RenewPrefixAlone).await,
        Some(ip("2001:db8:1::7a"))
    );
}

/// A pd-pool's own option replaces the subnet's of that code (the most specific level wins):
/// the fast path answers a Renew of the IA_PD alone, and of both IAs, with the controller's
/// bytes, the pd-pool's SNTP server in them; one of the IA_NA alone carries the subnet's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pd_pool_option_replaces_the_subnets_byte_for_byte() {
    let p = pair_with("pd-pool-options", POOL_SNTP, SUBNET_SNTP).await;
    let sets = p.binding.option_sets;
    assert_eq!(
        sets[OPTION_SET_NA], 0,
        "the address alone: the subnet's slots"
    );
    assert_eq!(sets[OPTION_SET_NA_PD], sets[OPTION_SET_PD]);
    for (what, ask) in [
        ("renew prefix alone", Ask::RenewPrefixAlone),
        ("renew", Ask::Renew),
        ("rebind prefix alone", Ask::RebindPrefixAlone),
        ("renew address alone", Ask::RenewAddressAlone),
    ] {
        same_frame_of(&p, what, ask, Path::Direct, &[]).await;
    }
    let pool = Some(ip("2001:db8:1::7b"));
    assert_eq!(sntp_server(&p, Ask::RenewPrefixAlone).await, pool);
    assert_eq!(sntp_server(&p, Ask::Renew).await, pool);
    assert_eq!(
        sntp_server(&p, Ask::RenewAddressAlone).await,
        Some(ip("2001:db8:1::7a"))
    );
}

/// A reservation's own option outranks its pool's of the same code (reservation > pool >
/// subnet): the fast path answers the reserved client with the reservation's SNTP server,
/// byte for byte, and a Renew of its prefix alone with the subnet's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_option_outranks_the_pools_byte_for_byte() {
    let extra = format!(
        r#"{SUBNET_SNTP}
[[subnet.reservations]]
duid = "{duid}"
address = "2001:db8:1::1042"
option = [{{ name = "sntp-servers", value = "2001:db8:1::7c", always-send = true }}]
"#,
        duid = hex(CLIENT_DUID)
    );
    let p = pair_with_pools("reservation-over-pool", POOL_SNTP, "", &extra).await;
    assert_eq!(
        p.addr(),
        ip("2001:db8:1::1042"),
        "the reservation, in the pool"
    );
    for (what, ask) in [
        ("renew", Ask::Renew),
        ("renew address alone", Ask::RenewAddressAlone),
        ("renew prefix alone", Ask::RenewPrefixAlone),
    ] {
        same_frame_of(&p, what, ask, Path::Direct, &[]).await;
    }
    let reservation = Some(ip("2001:db8:1::7c"));
    assert_eq!(sntp_server(&p, Ask::Renew).await, reservation);
    assert_eq!(sntp_server(&p, Ask::RenewAddressAlone).await, reservation);
    assert_eq!(
        sntp_server(&p, Ask::RenewPrefixAlone).await,
        Some(ip("2001:db8:1::7a"))
    );
}

/// Reply options beyond the slots (the subnet's eight and the pool's SNTP server) have no set:
/// the fast path passes such a request on unchanged (`pass_binding_options`), and the
/// controller's reply carries the pool's option; a Renew of the prefix alone (the subnet's
/// eight) is still answered in XDP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_options_beyond_the_slots_are_left_to_the_controller() {
    let p = pair_with_pools("pool-options-unfit", POOL_SNTP, "", SUBNET_OPTIONS).await;
    let sets = p.binding.option_sets;
    assert_eq!(sets[OPTION_SET_NA], OPTION_SET_NONE);
    assert_eq!(sets[OPTION_SET_NA_PD], OPTION_SET_NONE);
    assert_eq!(sets[OPTION_SET_PD], 0);
    for ask in [Ask::Renew, Ask::RenewAddressAlone] {
        let (frame, _) = request(Path::Direct, p.message(ask), &[]);
        let before = p.fp.stats().unwrap()[stat::PASS_BINDING_OPTIONS as usize].packets;
        let out = p.fp.test_run(&frame.encode(), LO, 1).unwrap();
        assert_eq!(out.verdict, XDP_PASS);
        assert_eq!(out.frame, frame.encode(), "passed unchanged");
        let after = p.fp.stats().unwrap()[stat::PASS_BINDING_OPTIONS as usize].packets;
        assert_eq!(after, before + 1, "counted as pass_binding_options");
    }
    assert_eq!(
        sntp_server(&p, Ask::Renew).await,
        Some(ip("2001:db8:1::7b"))
    );
    same_frame_of(&p, "prefix alone", Ask::RenewPrefixAlone, Path::Direct, &[]).await;
}

/// Bindings with the same option list share one set; a set no binding uses any more is
/// cleared from `OPTION_SETS`, and the program then passes a binding still naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn option_sets_are_shared_and_cleared_when_unused() {
    let mut p = pair_with_pools("option-sets-shared", POOL_SNTP, "", SUBNET_SNTP).await;
    let index = SubnetIndex::new(&p.server.config());
    let other = BindingKey::new(&[0, 3, 0, 1, 9, 9, 9, 9, 9, 9]).unwrap();
    let mut value = p.binding;
    value.na_addr = ip("2001:db8:1::1100").octets();
    let written = push_binding(&mut p.fp, &index, &other, value).unwrap();
    assert_eq!(written.option_sets, p.binding.option_sets, "the same list");
    assert_eq!(p.fp.option_sets().in_use(), 1);
    // Out of the pool: the subnet's slots; the first client's set stays.
    value.na_addr = ip("2001:db8:1::42").octets();
    let written = push_binding(&mut p.fp, &index, &other, value).unwrap();
    assert_eq!(written.option_sets, [0; 3]);
    assert_eq!(p.fp.option_sets().in_use(), 1);
    same_frame_of(&p, "renew", Ask::Renew, Path::Direct, &[]).await;
    // The first client's too: the set is cleared. A stale binding naming it is passed on.
    let key = BindingKey::new(CLIENT_DUID).unwrap();
    let mut first = p.binding;
    first.na_addr = ip("2001:db8:1::43").octets();
    push_binding(&mut p.fp, &index, &key, first).unwrap();
    assert_eq!(p.fp.option_sets().in_use(), 0);
    let mut stale = p.fp.bindings().unwrap().get(&key, 0).unwrap();
    stale.na_addr = p.binding.na_addr;
    stale.option_sets = p.binding.option_sets;
    p.fp.bindings_mut().unwrap().insert(key, stale, 0).unwrap();
    let (frame, _) = request(Path::Direct, p.message(Ask::Renew), &[]);
    let out = p.fp.test_run(&frame.encode(), LO, 1).unwrap();
    assert_eq!(
        out.verdict, XDP_PASS,
        "a cleared set is never answered from"
    );
}

/// The pd-pool's Prefix Exclude: `excluded-prefix` /64 out of the delegated /56s.
const PD_EXCLUDE_64: &str = r#", excluded-prefix = "2001:db8:8000:1::/64""#;

/// A second pd-pool after the differential config's own (which has no Prefix Exclude): /48s
/// whose excluded /128 takes an 80-bit subnet ID (an 11-byte body), and a reservation of one of
/// them for the client.
const SECOND_PD_POOL: &str = r#" }, { prefix = "2001:db8:9000::/40", delegated-length = 48, excluded-prefix = "2001:db8:9000:abcd::1/128""#;
fn pd_reservation() -> String {
    format!(
        "[[subnet.reservations]]\nduid = \"{}\"\nprefix = \"2001:db8:9012::/48\"\n",
        hex(CLIENT_DUID)
    )
}

/// The IAPREFIX the controller grants `p`'s prefix, with the Prefix Exclude body `exclude`
/// (prefix-len and subnet ID) as its one sub-option, or none.
fn iaprefix_of(p: &Pair, exclude: Option<&[u8]>) -> Vec<u8> {
    let mut body = [&PREFERRED.to_be_bytes()[..], &VALID.to_be_bytes()].concat();
    body.push(p.binding.pd_len);
    body.extend_from_slice(&p.prefix().octets());
    if let Some(x) = exclude {
        body.extend(opt(67, x));
    }
    opt(OPT_IAPREFIX, &body)
}

/// The controller's reply to `message` sent directly.
async fn controller_reply(p: &Pair, message: Vec<u8>) -> Vec<u8> {
    let (_, inbound) = request(Path::Direct, message, &[]);
    p.server.handle(&inbound).await.expect("controller reply")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// RFC 6603 section 4.2: OPTION_PD_EXCLUDE only to a client that asked for it in its ORO, then
/// inside the IAPREFIX (its one sub-option), the excluded prefix within the delegated one and
/// longer. The fast path answers both, byte for byte as the controller: every message it
/// answers for a PD binding (both IAs, the IA_PD alone, PD first, relayed), with 67 in the ORO
/// and without; the IA_NA alone never carries it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_exclude_is_answered_in_xdp_only_when_asked_for() {
    let p = pair_with("pd-exclude", PD_EXCLUDE_64, "").await;
    assert_ne!(p.binding.flags & dhcp_common::BINDING_PD_EXCLUDE, 0);
    let sets = p.binding.option_sets;
    assert_eq!(
        sets[OPTION_SET_NA], 0,
        "the address alone: the subnet's slots"
    );
    assert!(
        ![0, OPTION_SET_NONE].contains(&sets[OPTION_SET_PD]),
        "{sets:?}"
    );
    assert_eq!(
        sets[OPTION_SET_NA_PD], sets[OPTION_SET_PD],
        "one content, one set"
    );
    assert_eq!(p.fp.option_sets().in_use(), 1);
    let before = p.fp.stats().unwrap();
    for (what, ask) in [
        ("renew", Ask::Renew),
        ("rebind, pd first", Ask::Rebind),
        ("renew prefix alone", Ask::RenewPrefixAlone),
        ("rebind prefix alone", Ask::RebindPrefixAlone),
        ("renew address alone", Ask::RenewAddressAlone),
        ("solicit", Ask::Solicit),
        ("rapid solicit", Ask::RapidSolicit),
        ("request", Ask::Request),
        ("request without hints", Ask::RequestWithoutHints),
    ] {
        same_frame_of(&p, what, ask, Path::Direct, &[]).await;
        let asking = with_oro_code(&p.message(ask), 67);
        same_frame_for(&p, &format!("{what}, 67 asked"), asking, Path::Direct, &[]).await;
    }
    same_frame_of(
        &p,
        "the test's own",
        Ask::RenewWithPdExclude,
        relay_global_to_us(),
        &[],
    )
    .await;
    let asking = with_oro_code(&p.message(Ask::Rebind), 67);
    same_frame_for(&p, "ldra rebind, 67 asked", asking, ldra(), QINQ).await;
    let after = p.fp.stats().unwrap();
    let grew = |i: u32| after[i as usize].packets - before[i as usize].packets;
    assert_eq!(grew(stat::TX_RENEW), 7, "renewals answered in XDP");
    assert_eq!(grew(stat::TX_REBIND), 5);
    assert_eq!(grew(stat::PASS_PD_EXCLUDE), 0, "none passed on");

    // The controller's bytes, which the program matched: /64, subnet ID 0x01 (the excluded
    // prefix is the delegated /56's first 56 bits and 0x01 after: within it and longer).
    let with = controller_reply(&p, p.message(Ask::RenewWithPdExclude)).await;
    assert!(
        contains(&with, &iaprefix_of(&p, Some(&[64, 0x01]))),
        "IAPREFIX with PD_EXCLUDE in {}",
        hex(&with)
    );
    let without = controller_reply(&p, p.message(Ask::Renew)).await;
    assert!(
        contains(&without, &iaprefix_of(&p, None)),
        "a bare IAPREFIX without the ORO asking (MUST NOT send it unasked): {}",
        hex(&without)
    );
    let alone = controller_reply(&p, with_oro_code(&p.message(Ask::RenewAddressAlone), 67)).await;
    assert!(!contains(&alone, &[0, 67]), "no IA_PD, no Prefix Exclude");
}

/// Bindings of one pd-pool share its Prefix Exclude's set (the body depends on the excluded
/// prefix and the delegated length alone); one whose prefix is in no pd-pool with one is
/// answered from the subnet's slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pd_pools_prefix_exclude_is_one_set_for_its_bindings() {
    let mut p = pair_with("pd-exclude-shared", PD_EXCLUDE_64, "").await;
    let index = SubnetIndex::new(&p.server.config());
    let other = BindingKey::new(&[0, 3, 0, 1, 9, 9, 9, 9, 9, 7]).unwrap();
    let mut value = p.binding;
    value.pd_prefix = ip("2001:db8:8000:4500::").octets();
    let written = push_binding(&mut p.fp, &index, &other, value).unwrap();
    assert_eq!(written.option_sets, p.binding.option_sets, "the same set");
    assert_eq!(p.fp.option_sets().in_use(), 1);
    // Out of every pd-pool: no Prefix Exclude, the subnet's slots.
    value.pd_prefix = ip("2001:db8:7000::").octets();
    let written = push_binding(&mut p.fp, &index, &other, value).unwrap();
    assert_eq!(written.option_sets, [0; 3]);
    assert_eq!(p.fp.option_sets().in_use(), 1, "the first client's stays");
}

/// Two pd-pools, the second with a Prefix Exclude: a client delegated from the first is
/// answered in XDP without one (its ORO asking or not), from the subnet's slots; a client
/// reserved a /48 of the second gets its 11-byte body (an excluded /128) inside the IAPREFIX,
/// the IA_PD's and the IAPREFIX's lengths the controller's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pd_pool_without_exclude_next_to_one_with_is_answered_byte_for_byte() {
    let plain = pair_with("pd-exclude-neighbour", SECOND_PD_POOL, "").await;
    assert_eq!(plain.binding.pd_len, 56, "the first pd-pool's");
    assert_eq!(plain.binding.flags & dhcp_common::BINDING_PD_EXCLUDE, 0);
    assert_eq!(plain.binding.option_sets, [0; 3]);
    let asking = with_oro_code(&plain.message(Ask::Renew), 67);
    same_frame_for(&plain, "renew, 67 asked", asking.clone(), Path::Direct, &[]).await;
    let reply = controller_reply(&plain, asking).await;
    assert!(
        contains(&reply, &iaprefix_of(&plain, None)),
        "{}",
        hex(&reply)
    );

    let reserved = pair_with("pd-exclude-reserved", SECOND_PD_POOL, &pd_reservation()).await;
    assert_eq!(reserved.prefix(), ip("2001:db8:9012::"), "the reservation");
    assert_ne!(reserved.binding.flags & dhcp_common::BINDING_PD_EXCLUDE, 0);
    for (what, ask) in [
        ("renew", Ask::RenewWithPdExclude),
        ("renew prefix alone", Ask::RenewPrefixAlone),
        ("rebind prefix alone", Ask::RebindPrefixAlone),
        ("solicit", Ask::Solicit),
    ] {
        let asking = with_oro_code(&reserved.message(ask), 67);
        same_frame_for(&reserved, what, asking, Path::Direct, &[]).await;
    }
    let body = [128, 0xab, 0xcd, 0, 0, 0, 0, 0, 0, 0, 1];
    let reply = controller_reply(&reserved, reserved.message(Ask::RenewWithPdExclude)).await;
    assert!(
        contains(&reply, &iaprefix_of(&reserved, Some(&body))),
        "{}",
        hex(&reply)
    );
}

/// With `OPTION_SETS` full, a binding whose Prefix Exclude finds no room keeps the list without
/// it (here the subnet's slots): a Renew asking for 67 is passed on unchanged
/// (`pass_pd_exclude`), one without 67 is still answered in XDP, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_exclude_without_room_is_left_to_the_controller() {
    let mut p = pair_with("pd-exclude-full", PD_EXCLUDE_64, "").await;
    let index = SubnetIndex::new(&p.server.config());
    let key = BindingKey::new(CLIENT_DUID).unwrap();
    // Out of the pd-pool for a moment, its set released; then every entry taken.
    let mut away = p.binding;
    away.pd_prefix = ip("2001:db8:7000::").octets();
    push_binding(&mut p.fp, &index, &key, away).unwrap();
    assert_eq!(p.fp.option_sets().in_use(), 0);
    {
        let (_, sets) = p.fp.bindings_and_sets().unwrap();
        for i in 1u32.. {
            let slot = dhcp_common::OptionSlot::new(31, &i.to_be_bytes(), 0).unwrap();
            let set = SetOptions::Slots(vec![slot]);
            if sets.option_sets.acquire(&set).unwrap() == OPTION_SET_NONE {
                break;
            }
        }
    }
    let written = push_binding(&mut p.fp, &index, &key, p.binding).unwrap();
    assert_eq!(written.option_sets, [0; 3], "the subnet's slots");
    let (frame, _) = request(Path::Direct, p.message(Ask::RenewWithPdExclude), &[]);
    let before = p.fp.stats().unwrap()[stat::PASS_PD_EXCLUDE as usize].packets;
    let out = p.fp.test_run(&frame.encode(), LO, 1).unwrap();
    assert_eq!(out.verdict, XDP_PASS);
    assert_eq!(out.frame, frame.encode(), "passed unchanged");
    let after = p.fp.stats().unwrap()[stat::PASS_PD_EXCLUDE as usize].packets;
    assert_eq!(after, before + 1, "counted as pass_pd_exclude");
    same_frame_of(&p, "renew without 67", Ask::Renew, Path::Direct, &[]).await;
}

/// Debian's dhcpcd 9.4.1, given a Prefix Exclude, puts a zero-length OPTION_PD_EXCLUDE after
/// the IAPREFIX (in the IA_PD, outside the IAPREFIX) and leaves two bytes of garbage after its
/// last option: the controller's decoder drops such a message (`option_header_truncated`), so
/// the fast path must not answer it; without the garbage the IA_PD is not one it knows, and is
/// passed on too (the controller answers it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dhcpcd_renew_with_its_malformed_prefix_exclude_is_passed_on() {
    let p = pair_with("pd-exclude-dhcpcd", PD_EXCLUDE_64, "").await;
    let mut iaprefix = iaprefix_of(&p, None);
    iaprefix.extend(opt(67, &[]));
    let ia_pd = opt(
        OPT_IA_PD,
        &[&PD_IAID.to_be_bytes()[..], &[0; 8], &iaprefix].concat(),
    );
    let renew = msg(
        MSG_RENEW,
        &[
            client_id(),
            server_id(),
            p.bound_na(),
            ia_pd,
            oro(&[82, 83, 67]),
            elapsed(),
        ],
    );
    for (what, message, answered) in [
        (
            "with its garbage",
            [&renew[..], &[0x77, 0x6f]].concat(),
            false,
        ),
        ("without", renew, true),
    ] {
        let (frame, inbound) = request(Path::Direct, message, &[]);
        let encoded = frame.encode();
        let out = p.fp.test_run(&encoded, LO, 1).unwrap();
        assert_eq!(out.verdict, XDP_PASS, "{what}: passed on");
        assert_eq!(out.frame, encoded, "{what}: untouched");
        let reply = p.server.handle(&inbound).await;
        assert_eq!(reply.is_some(), answered, "{what}: the controller's answer");
    }
}

/// A controller starting on pinned maps learns the option sets an earlier one left and the
/// bindings using them: a second client with the same list shares the entry, which stays
/// while either uses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_option_sets_are_learned_with_their_bindings() {
    let p = pair_with_pools("option-sets-pinned", POOL_SNTP, "", SUBNET_SNTP).await;
    let root = std::path::PathBuf::from(format!(
        "/sys/fs/bpf/dhcp-option-sets-test-{}",
        std::process::id()
    ));
    let _ = FastPath::unpin_all(&root);
    let index = SubnetIndex::new(&p.server.config());
    let key = BindingKey::new(CLIENT_DUID).unwrap();
    let written = {
        let mut earlier = FastPath::load(Some(&root)).unwrap();
        push_binding(&mut earlier, &index, &key, p.binding).unwrap()
    };
    let mut fp = FastPath::load(Some(&root)).unwrap();
    assert_eq!(fp.option_sets().in_use(), 1, "learned from the pinned map");
    let other = BindingKey::new(&[0, 3, 0, 1, 9, 9, 9, 9, 9, 8]).unwrap();
    let again = push_binding(&mut fp, &index, &other, p.binding).unwrap();
    assert_eq!(again.option_sets, written.option_sets, "the same entry");
    let mut moved = p.binding;
    moved.na_addr = ip("2001:db8:1::42").octets();
    push_binding(&mut fp, &index, &key, moved).unwrap();
    assert_eq!(
        fp.option_sets().in_use(),
        1,
        "the second client still uses it"
    );
    push_binding(&mut fp, &index, &other, moved).unwrap();
    assert_eq!(fp.option_sets().in_use(), 0, "and then none");
    drop(fp);
    FastPath::unpin_all(&root).unwrap();
}

/// `p` after a reload to `config` (`MapSync::reconfigure`, as `dhcp-user reload` does it):
/// its binding as the map now holds it.
fn reloaded(p: Pair, config: dhcp_user::config::Config) -> Pair {
    let Pair {
        server,
        fp,
        iface,
        binding: _,
        _dir,
    } = p;
    server.swap_config(config.clone(), &["lo".to_string()]);
    server.set_direct_subnet("lo", Some(0));
    let shared = Arc::new(std::sync::Mutex::new(fp));
    let sync = MapSync::new(
        shared.clone(),
        SubnetIndex::new(&server.config()),
        server.clone(),
    );
    let with = Reconfigure {
        server_duid: SERVER_DUID,
        ifaces: std::slice::from_ref(&iface),
        pass_rate_per_cpu: 0,
    };
    sync.reconfigure(&config, &with).unwrap();
    drop(sync);
    let fp = Arc::try_unwrap(shared).ok().unwrap().into_inner().unwrap();
    let key = BindingKey::new(CLIENT_DUID).unwrap();
    let binding = fp.bindings().unwrap().get(&key, 0).unwrap();
    Pair {
        server,
        fp,
        iface,
        binding,
        _dir,
    }
}

/// A reload that changes a pool's option re-pushes the option sets with the bindings
/// (`MapSync::reconfigure`): the client is answered in XDP with the new list, the
/// controller's bytes, and the set of the old list is cleared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_repushes_the_option_sets() {
    let p = pair_with_pools("option-sets-reload", POOL_SNTP, "", SUBNET_SNTP).await;
    assert_ne!(p.binding.option_sets[OPTION_SET_NA], 0);
    let config = config_with_pools(&p._dir.0, &POOL_SNTP.replace("7b", "7d"), "", SUBNET_SNTP);
    let p = reloaded(p, config);
    assert_eq!(p.fp.option_sets().in_use(), 1, "the old list's set cleared");
    assert_ne!(p.binding.option_sets[OPTION_SET_NA], 0);
    same_frame_of(&p, "renew after the reload", Ask::Renew, Path::Direct, &[]).await;
    assert_eq!(
        sntp_server(&p, Ask::RenewAddressAlone).await,
        Some(ip("2001:db8:1::7d"))
    );
}

/// A Vendor Class option (16) of enterprise 4491 with one data item.
fn vendor_class(data: &[u8]) -> Vec<u8> {
    let mut body = 4491u32.to_be_bytes().to_vec();
    body.extend_from_slice(&(data.len() as u16).to_be_bytes());
    body.extend_from_slice(data);
    opt(OPT_VENDOR_CLASS, &body)
}

/// A class by Vendor Class (`ACME-CPE` items) with its own SNTP server over the subnet's.
const VENDOR_CLASS_OPTIONS: &str = r#"[[subnet.option]]
name = "sntp-servers"
value = "2001:db8:1::7a"
always-send = true
[[client-classes]]
name = "acme-cpe"
vendor-class = { enterprise = 4491, prefix = "ACME-CPE" }
[[client-classes.option]]
name = "sntp-servers"
value = "2001:db8:1::7c"
always-send = true
"#;

/// Whether the controller's reply to `message` carries the SNTP server `server`.
async fn controller_sends_sntp(p: &Pair, message: Vec<u8>, server: &str) -> bool {
    let (_, inbound) = request(Path::Direct, message, &[]);
    let reply = p.server.handle(&inbound).await.expect("controller reply");
    let option = opt(31, &ip(server).octets());
    reply.windows(option.len()).any(|w| w == option.as_slice())
}

/// `message` through the program: passed on unchanged, counted as `reason`.
fn passed_as(p: &Pair, message: Vec<u8>, reason: u32, what: &str) {
    passed_through(p, Path::Direct, message, reason, what);
}

/// `message` by `path` through the program: passed on unchanged, counted as `reason`.
fn passed_through(p: &Pair, path: Path, message: Vec<u8>, reason: u32, what: &str) {
    let (frame, _) = request(path, message, &[]);
    let before = p.fp.stats().unwrap()[reason as usize].packets;
    let out = p.fp.test_run(&frame.encode(), LO, 1).unwrap();
    assert_eq!(out.verdict, XDP_PASS, "{what}");
    assert_eq!(out.frame, frame.encode(), "{what}: passed unchanged");
    let after = p.fp.stats().unwrap()[reason as usize].packets;
    assert_eq!(
        after,
        before + 1,
        "{what}: counted as {}",
        stat::NAMES[reason as usize]
    );
}

/// A client in a class by its Vendor Class: its renewals carrying the same Vendor Class are
/// answered in XDP with the controller's bytes, the class's SNTP server over the subnet's
/// (`CLASS_INPUTS` holds what it was judged on, its option set the class level).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_class_client_renewing_with_its_vendor_class_is_answered_in_xdp() {
    let sent = [vendor_class(b"ACME-CPE-X1")];
    let p = pair_granted("class-vendor", ("", ""), VENDOR_CLASS_OPTIONS, &[], &sent).await;
    assert_ne!(p.binding.class_inputs, 0, "judged on its Vendor Class");
    assert_ne!(
        p.binding.option_sets[OPTION_SET_NA_PD], 0,
        "the class's options"
    );
    assert_eq!(p.fp.class_inputs().in_use(), 1);
    for (tag, ask) in [
        ("renew", Ask::Renew),
        ("rebind", Ask::Rebind),
        ("renew of the address", Ask::RenewAddressAlone),
        ("solicit", Ask::Solicit),
    ] {
        let message = with_options(p.message(ask), &sent);
        same_frame_for(&p, tag, message.clone(), Path::Direct, &[]).await;
        assert!(
            controller_sends_sntp(&p, message, "2001:db8:1::7c").await,
            "{tag}"
        );
    }
}

/// The same client renewing with another Vendor Class, or none, or two, is in other classes
/// than its binding was judged for: passed on unchanged (`pass_class_inputs`), and the
/// controller answers with the subnet's SNTP server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_with_other_class_inputs_is_passed_to_the_controller() {
    let sent = [vendor_class(b"ACME-CPE-X1")];
    let p = pair_granted("class-change", ("", ""), VENDOR_CLASS_OPTIONS, &[], &sent).await;
    let other = with_options(p.message(Ask::Renew), &[vendor_class(b"OTHER-CPE")]);
    passed_as(
        &p,
        other.clone(),
        stat::PASS_CLASS_INPUTS,
        "another vendor class",
    );
    assert!(controller_sends_sntp(&p, other, "2001:db8:1::7a").await);
    // The same class, other bytes: one more item (membership may not change; the program
    // does not judge, it compares).
    let longer = with_options(p.message(Ask::Renew), &[vendor_class(b"ACME-CPE-X1-2")]);
    passed_as(&p, longer, stat::PASS_CLASS_INPUTS, "another data item");
    passed_as(
        &p,
        p.message(Ask::Renew),
        stat::PASS_CLASS_INPUTS,
        "no vendor class",
    );
    let twice = with_options(p.message(Ask::Renew), &[sent[0].clone(), sent[0].clone()]);
    passed_as(&p, twice, stat::PASS_CLASS_INPUTS, "two vendor classes");
    let user_class = opt(OPT_USER_CLASS, &[0, 3, b'a', b'b', b'c']);
    let both = with_options(p.message(Ask::Renew), &[sent[0].clone(), user_class]);
    passed_as(&p, both, stat::PASS_CLASS_INPUTS, "a user class besides");
}

/// A binding pushed before any request was judged (a start: the store knows no Vendor Class)
/// has no class inputs: its renewals go to the controller until it answers one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_without_judged_inputs_is_passed_to_the_controller() {
    let sent = [vendor_class(b"ACME-CPE-X1")];
    let mut p = pair_granted("class-unjudged", ("", ""), VENDOR_CLASS_OPTIONS, &[], &sent).await;
    let key = BindingKey::new(CLIENT_DUID).unwrap();
    let index = SubnetIndex::new(&p.server.config());
    p.binding = push_binding(&mut p.fp, &index, &key, p.binding).unwrap();
    assert_eq!(p.binding.class_inputs, 0);
    assert_eq!(
        p.fp.class_inputs().in_use(),
        0,
        "the entry cleared with its last binding"
    );
    let renew = with_options(p.message(Ask::Renew), &sent);
    passed_as(&p, renew, stat::PASS_CLASS_INPUTS, "no inputs known");
}

/// Client classes with options of their own by the DUID's first bytes: the binding is the
/// DUID's, so its renewals are answered in XDP with the class's option; an
/// Information-Request (no binding to compare with, and a class that takes in a client
/// sending no Vendor Class) is passed on (`pass_client_class`), and the controller answers
/// with the class's option.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duid_prefix_class_options_are_answered_in_xdp() {
    let extra = format!(
        r#"[[subnet.option]]
name = "sntp-servers"
value = "2001:db8:1::7a"
always-send = true
[[client-classes]]
name = "lab-cpe"
duid-prefix = "{prefix}"
[[client-classes.option]]
name = "sntp-servers"
value = "2001:db8:1::7c"
always-send = true
"#,
        prefix = hex(&CLIENT_DUID[..4])
    );
    let p = pair_with("class-options", "", &extra).await;
    same_frame_of(&p, "renew", Ask::Renew, Path::Direct, &[]).await;
    assert!(controller_sends_sntp(&p, p.message(Ask::Renew), "2001:db8:1::7c").await);
    let info = p.message(Ask::InformationRequest);
    passed_as(
        &p,
        info.clone(),
        stat::PASS_CLIENT_CLASS,
        "information-request",
    );
    assert!(controller_sends_sntp(&p, info, "2001:db8:1::7c").await);
}

/// Where every class with options needs a Vendor or User Class, an Information-Request with
/// neither is in none: answered in XDP with the subnet's options; one with a Vendor Class is
/// passed on (`pass_client_class`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_information_request_gets_the_subnet_options_in_xdp() {
    let p = pair_with("class-info", "", VENDOR_CLASS_OPTIONS).await;
    let info = p.message(Ask::InformationRequest);
    same_frame_for(&p, "information-request", info.clone(), Path::Direct, &[]).await;
    assert!(controller_sends_sntp(&p, info.clone(), "2001:db8:1::7a").await);
    let with_class = with_options(info, &[vendor_class(b"ACME-CPE-X1")]);
    passed_as(
        &p,
        with_class.clone(),
        stat::PASS_CLIENT_CLASS,
        "with a vendor class",
    );
    assert!(controller_sends_sntp(&p, with_class, "2001:db8:1::7c").await);
}

/// The test relay's Remote-ID (enterprise 3561, "port1": `relay_forw`) and a class on it
/// with its own SNTP server.
const REMOTE_ID_CLASS: &str = r#"[[subnet.option]]
name = "sntp-servers"
value = "2001:db8:1::7a"
always-send = true
[[client-classes]]
name = "by-remote-id"
relay-remote-id = { enterprise = 3561, id = "70:6f:72:74:31" }
[[client-classes.option]]
name = "sntp-servers"
value = "2001:db8:1::7c"
always-send = true
"#;

/// A class on the relay's Remote-ID: a client granted through that relay is answered in XDP
/// with the class's option while its renewals come through it (the Remote-ID is the class's
/// value, `RELAY_CLASS_VALUES`); the same client direct, or behind another relay hop, is
/// passed on (`pass_class_inputs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_id_class_is_answered_in_xdp_through_its_relay() {
    let path = relay_global_to_us();
    let p = pair_through("class-remote-id", ("", ""), REMOTE_ID_CLASS, &[], &[], path).await;
    assert_ne!(p.binding.class_inputs, 0, "judged on its relay");
    for (tag, ask) in [("renew", Ask::Renew), ("rebind", Ask::Rebind)] {
        same_frame_for(&p, tag, p.message(ask), path, &[]).await;
        let (_, inbound) = request(path, p.message(ask), &[]);
        let reply = p.server.handle(&inbound).await.expect("controller reply");
        let class = opt(31, &ip("2001:db8:1::7c").octets());
        assert!(
            reply.windows(class.len()).any(|w| w == class.as_slice()),
            "{tag}"
        );
    }
    passed_as(&p, p.message(Ask::Renew), stat::PASS_CLASS_INPUTS, "direct");
    let behind = Path::LdraBehindRelay {
        from: relay_addr(),
        to: server_global(),
    };
    passed_through(
        &p,
        behind,
        p.message(Ask::Renew),
        stat::PASS_CLASS_INPUTS,
        "two hops",
    );
}

/// A client of that subnet direct (no relay, so in no Remote-ID class) is answered in XDP with
/// the subnet's option; relayed with another Remote-ID than the class's it would be in none of
/// the classes either, but its inputs say "direct": passed on (`pass_class_inputs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_client_beside_a_remote_id_class_is_answered_in_xdp() {
    let p = pair_with("class-remote-direct", "", REMOTE_ID_CLASS).await;
    assert_ne!(p.binding.class_inputs, 0);
    same_frame_of(&p, "renew", Ask::Renew, Path::Direct, &[]).await;
    assert!(controller_sends_sntp(&p, p.message(Ask::Renew), "2001:db8:1::7a").await);
    let path = relay_global_to_us();
    passed_through(
        &p,
        path,
        p.message(Ask::Renew),
        stat::PASS_CLASS_INPUTS,
        "relayed",
    );
}

/// A class on a relay value longer than the program looks up (`FAST_RELAY_VALUE_MAX`) leaves
/// every request of the subnet but a Confirm to the controller (`pass_client_class`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overlong_relay_class_value_leaves_the_subnet_to_the_controller() {
    let long = vec!["ab"; 80].join(":");
    let extra = format!(
        "[[client-classes]]\nname = \"long\"\nrelay-remote-id = {{ enterprise = 9, id = \"{long}\" }}\n\
         [[client-classes.option]]\nname = \"sntp-servers\"\nvalue = \"2001:db8:1::7c\"\n"
    );
    let p = pair_with("class-relay-long", "", &extra).await;
    assert_eq!(p.binding.class_inputs, 0);
    passed_as(&p, p.message(Ask::Renew), stat::PASS_CLIENT_CLASS, "renew");
    same_frame_of(&p, "confirm", Ask::Confirm, Path::Direct, &[]).await;
}

/// A binding whose address pool is kept for a class is answered in XDP while the client's
/// inputs keep it in that class; judged again out of it (another Vendor Class), the binding
/// loses its inputs (the controller would not extend that lease) and is passed on, whatever
/// the client sends next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_out_of_its_pools_class_loses_its_inputs() {
    let extra = r#"[[client-classes]]
name = "acme-cpe"
vendor-class = { enterprise = 4491, prefix = "ACME-CPE" }
"#;
    let pool = r#", client-classes = ["acme-cpe"]"#;
    let sent = [vendor_class(b"ACME-CPE-X1")];
    let mut p = pair_granted("class-pool", (pool, ""), extra, &[], &sent).await;
    assert_ne!(p.binding.class_inputs, 0);
    same_frame_for(
        &p,
        "renew",
        with_options(p.message(Ask::Renew), &sent),
        Path::Direct,
        &[],
    )
    .await;
    // The controller judges a Renew without the Vendor Class (and answers it as it does).
    let (_, inbound) = request(Path::Direct, p.message(Ask::Renew), &[]);
    p.server.handle(&inbound).await.expect("controller reply");
    let facts = p.server.class_facts_of(CLIENT_DUID);
    let key = BindingKey::new(CLIENT_DUID).unwrap();
    let index = SubnetIndex::new(&p.server.config());
    p.binding = push_binding_judged(&mut p.fp, &index, &key, p.binding, facts.as_deref()).unwrap();
    assert_eq!(p.binding.class_inputs, 0, "out of the pool's class");
    let renew = with_options(p.message(Ask::Renew), &sent);
    passed_as(
        &p,
        renew,
        stat::PASS_CLASS_INPUTS,
        "renew with the class again",
    );
}

/// A class on the interface too: the inputs name the interface it was judged on (its
/// ifindex), and the client's renewal arriving on it is answered in XDP with the class's
/// option.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interface_class_is_answered_on_its_interface_only() {
    let extra = r#"[[subnet.option]]
name = "sntp-servers"
value = "2001:db8:1::7a"
always-send = true
[[client-classes]]
name = "on-lo"
interfaces = ["lo"]
vendor-class = { enterprise = 4491 }
[[client-classes.option]]
name = "sntp-servers"
value = "2001:db8:1::7c"
always-send = true
"#;
    let sent = [vendor_class(b"ANY")];
    let p = pair_granted("class-iface", ("", ""), extra, &[], &sent).await;
    assert_ne!(p.binding.class_inputs, 0);
    let renew = with_options(p.message(Ask::Renew), &sent);
    same_frame_for(&p, "renew on lo", renew.clone(), Path::Direct, &[]).await;
    assert!(controller_sends_sntp(&p, renew.clone(), "2001:db8:1::7c").await);
}

/// What a client's classes were judged on is kept while it has a lease, for its binding, and
/// dropped once it released them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_released_everything_leaves_no_class_facts() {
    let sent = [vendor_class(b"ACME-CPE-X1")];
    let p = pair_granted("class-release", ("", ""), VENDOR_CLASS_OPTIONS, &[], &sent).await;
    let facts = p.server.class_facts_of(CLIENT_DUID).expect("judged facts");
    assert_eq!(facts.vendor_class.as_deref(), Some(&sent[0][4..]));
    let release = msg(
        MSG_RELEASE,
        &[
            client_id(),
            server_id(),
            elapsed(),
            p.bound_na(),
            p.bound_pd(),
        ],
    );
    let (_, inbound) = request(Path::Direct, release, &[]);
    p.server.handle(&inbound).await.expect("controller reply");
    assert!(p.server.class_facts_of(CLIENT_DUID).is_none());
}

/// A reload that changes a class's option rewrites the bindings with the facts their classes
/// were judged on (`MapSync::reconfigure`): the class client keeps being answered in XDP, now
/// with the new option, the controller's bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_repushes_class_options_with_the_judged_inputs() {
    let sent = [vendor_class(b"ACME-CPE-X1")];
    let p = pair_granted("class-reload", ("", ""), VENDOR_CLASS_OPTIONS, &[], &sent).await;
    assert_ne!(p.binding.class_inputs, 0);
    let options = VENDOR_CLASS_OPTIONS.replace("2001:db8:1::7c", "2001:db8:1::7d");
    let config = config_with_pools(&p._dir.0, "", "", &options);
    let p = reloaded(p, config);
    assert_ne!(
        p.binding.class_inputs, 0,
        "still judged on its Vendor Class"
    );
    let renew = with_options(p.message(Ask::Renew), &sent);
    same_frame_for(
        &p,
        "renew after the reload",
        renew.clone(),
        Path::Direct,
        &[],
    )
    .await;
    assert!(controller_sends_sntp(&p, renew, "2001:db8:1::7d").await);
}

/// A controller starting on pinned maps learns the class inputs an earlier one left, counted
/// by the bindings naming them: the entry stays while a binding names it, and goes with the
/// last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pinned_class_inputs_are_learned_with_their_bindings() {
    let sent = [vendor_class(b"ACME-CPE-X1")];
    let p = pair_granted("class-pinned", ("", ""), VENDOR_CLASS_OPTIONS, &[], &sent).await;
    let root = std::path::PathBuf::from(format!(
        "/sys/fs/bpf/dhcp-class-inputs-test-{}",
        std::process::id()
    ));
    let _ = FastPath::unpin_all(&root);
    let index = SubnetIndex::new(&p.server.config());
    let key = BindingKey::new(CLIENT_DUID).unwrap();
    let facts = p.server.class_facts_of(CLIENT_DUID);
    let written = {
        let mut earlier = FastPath::load(Some(&root)).unwrap();
        push_binding_judged(&mut earlier, &index, &key, p.binding, facts.as_deref()).unwrap()
    };
    assert_ne!(written.class_inputs, 0);
    let mut fp = FastPath::load(Some(&root)).unwrap();
    assert_eq!(fp.class_inputs().in_use(), 1, "learned from the pinned map");
    let other = BindingKey::new(&[0, 3, 0, 1, 9, 9, 9, 9, 9, 8]).unwrap();
    let again = push_binding_judged(&mut fp, &index, &other, p.binding, facts.as_deref()).unwrap();
    assert_eq!(again.class_inputs, written.class_inputs, "the same entry");
    push_binding(&mut fp, &index, &key, p.binding).unwrap();
    assert_eq!(
        fp.class_inputs().in_use(),
        1,
        "the second client still uses it"
    );
    push_binding(&mut fp, &index, &other, p.binding).unwrap();
    assert_eq!(fp.class_inputs().in_use(), 0, "and then none");
    drop(fp);
    FastPath::unpin_all(&root).unwrap();
}

/// A class on an access node's Interface-ID (an LDRA) behind an aggregation relay: a client
/// granted through both hops is answered in XDP through them with the class's option (the
/// inner hop's Interface-ID is the class's value, the outer's none); through the LDRA alone,
/// one hop fewer, it is passed on (`pass_class_inputs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interface_id_class_is_answered_in_xdp_through_two_hops() {
    let extra = r#"[[subnet.option]]
name = "sntp-servers"
value = "2001:db8:1::7a"
always-send = true
[[client-classes]]
name = "access-port"
relay-interface-id = "an-1/1/1:7"
[[client-classes.option]]
name = "sntp-servers"
value = "2001:db8:1::7c"
always-send = true
"#;
    let path = Path::LdraBehindRelay {
        from: relay_addr(),
        to: server_global(),
    };
    let p = pair_through("class-iid", ("", ""), extra, &[], &[], path).await;
    assert_ne!(p.binding.class_inputs, 0);
    same_frame_for(&p, "renew", p.message(Ask::Renew), path, &[]).await;
    let (_, inbound) = request(path, p.message(Ask::Renew), &[]);
    let reply = p.server.handle(&inbound).await.expect("controller reply");
    let class = opt(31, &ip("2001:db8:1::7c").octets());
    assert!(reply.windows(class.len()).any(|w| w == class.as_slice()));
    let ldra = ldra();
    passed_through(
        &p,
        ldra,
        p.message(Ask::Renew),
        stat::PASS_CLASS_INPUTS,
        "one hop",
    );
}
