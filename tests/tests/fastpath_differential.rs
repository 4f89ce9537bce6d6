//! Differential test of the fast-path rule: for the same binding and the same request (direct,
//! relayed, VLAN-tagged), the XDP program's reply (BPF_PROG_TEST_RUN) and the controller's reply
//! (`Server::handle`) are the same bytes; every mismatch case is passed on to the controller.
//! Needs root and BPF (as does `cargo xtask test`).

mod fastpath_common;

use std::{
    net::{Ipv6Addr, SocketAddrV6},
    sync::Arc,
};

use dhcp_common::{dhcpv6::*, BindingKey, BindingValue};
use dhcp_user::{
    config::Config,
    fastpath::{
        frame::Udp6Frame,
        sync::{binding_for, configure, now_unix, IfaceInfo, SubnetIndex},
        FastPath, XDP_PASS, XDP_TX,
    },
    server::{handler::Inbound, Server},
    store::{LeaseFilter, LeaseStore, SqliteStore},
};
use fastpath_common::*;

struct Pair {
    server: Arc<Server>,
    fp: FastPath,
    binding: BindingValue,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(tag: &str) -> Dir {
            let path = std::env::temp_dir().join(format!("dhcp-diff-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            Dir(path)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn config(state_dir: &std::path::Path) -> Config {
    let text = format!(
        r#"
server-duid = "{duid}"
state-dir = "{dir}"
interfaces = ["lo"]

[[subnet]]
prefix = "2001:db8:1::/64"
interface = "lo"
pools = [{{ low = "2001:db8:1::1000", high = "2001:db8:1::1fff" }}]
pd-pools = [{{ prefix = "2001:db8:8000::/40", delegated-length = 56 }}]
preferred-lifetime = {PREFERRED}
valid-lifetime = {VALID}
renew-timer = {T1}
rebind-timer = {T2}
rapid-commit = true
preference = 200
dns-servers = ["2001:db8:1::53"]
domain-search = ["lab.example"]
information-refresh-time = {INFO_REFRESH}
"#,
        duid = hex(SERVER_DUID),
        dir = state_dir.display(),
    );
    Config::parse(&text, "differential.toml").expect("test config")
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn inbound_direct(bytes: Vec<u8>) -> Inbound {
    Inbound {
        bytes,
        source: SocketAddrV6::new(client_ll(), CLIENT_PORT, 0, LO),
        destination: ALL_RELAYS_AND_SERVERS.into(),
        ifindex: LO,
        interface: "lo".into(),
    }
}

fn inbound_relayed(bytes: Vec<u8>) -> Inbound {
    Inbound {
        bytes,
        source: SocketAddrV6::new(relay_addr(), SERVER_PORT, 0, 0),
        destination: server_global(),
        ifindex: LO,
        interface: "lo".into(),
    }
}

/// A server and a fast path configured alike, with one client granted an address and a prefix
/// by the server (Solicit with Rapid Commit) and its binding pushed into the map.
async fn pair(tag: &str) -> Pair {
    let dir = tempdir::Dir::new(tag);
    let config = config(&dir.0);
    let store: Arc<dyn LeaseStore> = Arc::new(SqliteStore::open(dir.0.join("leases.db")).unwrap());
    let server = Server::with_store(config.clone(), store.clone(), &["lo".to_string()]).unwrap();
    server.set_direct_subnet("lo", Some(0));
    assert_eq!(server.server_duid().as_bytes(), SERVER_DUID);

    let grant = msg(
        MSG_SOLICIT,
        &[
            client_id(),
            elapsed(),
            opt(OPT_RAPID_COMMIT, &[]),
            ia_na(NA_IAID, 0, 0, None),
            ia_pd(PD_IAID, 0, 0, None),
        ],
    );
    let reply = server
        .handle(&inbound_direct(grant))
        .await
        .expect("rapid-commit reply");
    assert_eq!(reply[0], MSG_REPLY);

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
    let (key, binding) =
        binding_for(&leases, now_unix(), &SubnetIndex::new(&config)).expect("fast-path binding");

    let mut fp = FastPath::load(None).expect("load the XDP program (needs root and BPF)");
    let lo = IfaceInfo {
        name: "lo".into(),
        ifindex: LO,
        mac: SERVER_MAC,
        link_local: server_ll(),
        addresses: Vec::new(),
    };
    configure(&mut fp, &config, SERVER_DUID, &[lo], 0).unwrap();
    fp.bindings_mut().unwrap().insert(key, binding, 0).unwrap();
    Pair {
        server,
        fp,
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

    /// Runs `frame` through the program; returns (verdict, DHCPv6 payload of the reply frame).
    fn xdp(&self, frame: &Udp6Frame) -> (u32, Option<Udp6Frame>) {
        let out = self.fp.test_run(&frame.encode(), LO, 1).unwrap();
        let reply = (out.verdict == XDP_TX)
            .then(|| Udp6Frame::decode(&out.frame).expect("valid reply frame"));
        (out.verdict, reply)
    }
}

/// The same request to both: the XDP reply must be the controller's reply, byte for byte, with
/// the addressing the controller's socket would use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fast_path_replies_are_the_controllers_replies() {
    let p = pair("same").await;
    let dns_and_domain = oro(&[OPT_DNS_SERVERS, OPT_DOMAIN_LIST]);
    let renew = msg(
        MSG_RENEW,
        &[
            client_id(),
            server_id(),
            elapsed(),
            p.bound_na(),
            p.bound_pd(),
            dns_and_domain.clone(),
        ],
    );
    let rebind = msg(
        MSG_REBIND,
        &[client_id(), elapsed(), p.bound_pd(), p.bound_na()],
    );
    // A client may renew its IAs separately (ISC dhclient runs one process per IA type).
    let renew_na = msg(
        MSG_RENEW,
        &[
            client_id(),
            server_id(),
            elapsed(),
            p.bound_na(),
            dns_and_domain.clone(),
        ],
    );
    let rebind_pd = msg(MSG_REBIND, &[client_id(), elapsed(), p.bound_pd()]);
    let solicit = msg(
        MSG_SOLICIT,
        &[
            client_id(),
            elapsed(),
            ia_na(NA_IAID, 0, 0, None),
            ia_pd(PD_IAID, 0, 0, None),
            dns_and_domain.clone(),
        ],
    );
    let rapid = msg(
        MSG_SOLICIT,
        &[
            client_id(),
            opt(OPT_RAPID_COMMIT, &[]),
            ia_na(NA_IAID, 0, 0, None),
            ia_pd(PD_IAID, 0, 0, None),
        ],
    );
    let info = msg(
        MSG_INFORMATION_REQUEST,
        &[client_id(), elapsed(), oro(&[23, 24, 32])],
    );
    let iface_id: &[u8] = b"ge-0/0/1.100";
    // (what, request, through a relay, VLAN tags)
    type Case<'a> = (&'a str, Vec<u8>, bool, &'a [(u16, u16)]);
    let cases: Vec<Case> = vec![
        ("renew", renew.clone(), false, &[]),
        ("renew, 802.1Q", renew.clone(), false, &[(0x8100, 100)]),
        (
            "renew, QinQ",
            renew.clone(),
            false,
            &[(0x88a8, 10), (0x8100, 100)],
        ),
        ("rebind, PD first", rebind.clone(), false, &[]),
        ("renew of the address alone", renew_na.clone(), false, &[]),
        ("rebind of the prefix alone", rebind_pd.clone(), false, &[]),
        ("solicit from a known client", solicit.clone(), false, &[]),
        ("solicit with rapid commit", rapid.clone(), false, &[]),
        ("information-request", info.clone(), false, &[]),
        ("relayed renew", renew.clone(), true, &[]),
        (
            "relayed rebind, 802.1Q",
            rebind.clone(),
            true,
            &[(0x8100, 7)],
        ),
        ("relayed solicit", solicit.clone(), true, &[]),
        ("relayed information-request", info.clone(), true, &[]),
    ];
    for (what, request, via_relay, vlans) in cases {
        let (mut frame, inbound) = if via_relay {
            let payload = relay_forw(request.clone(), Some(iface_id));
            (relayed(payload.clone()), inbound_relayed(payload))
        } else {
            (direct(request.clone()), inbound_direct(request.clone()))
        };
        frame.vlans = vlans.to_vec();
        let (verdict, xdp_reply) = p.xdp(&frame);
        assert_eq!(verdict, XDP_TX, "{what}: the fast path must answer");
        let xdp_reply = xdp_reply.unwrap();
        let controller_reply = p
            .server
            .handle(&inbound)
            .await
            .unwrap_or_else(|| panic!("{what}: controller reply"));
        assert_eq!(
            hex(&xdp_reply.payload),
            hex(&controller_reply),
            "{what}: XDP reply (left) differs from the controller's (right)"
        );
        // The addressing the controller's socket uses: back to the sender's address and port,
        // from our link-local (multicast request) or the address the relay sent to.
        assert_eq!(xdp_reply.dst_ip, frame.src_ip, "{what}");
        assert_eq!(xdp_reply.dst_port, frame.src_port, "{what}");
        assert_eq!(xdp_reply.src_port, SERVER_PORT, "{what}");
        assert_eq!(
            xdp_reply.src_ip,
            if via_relay {
                server_global()
            } else {
                server_ll()
            },
            "{what}"
        );
        assert_eq!((xdp_reply.hop_limit, xdp_reply.flow), (64, 0), "{what}");
        assert_eq!(xdp_reply.vlans, vlans.to_vec(), "{what}");
        assert_eq!(
            (xdp_reply.dst_mac, xdp_reply.src_mac),
            (frame.src_mac, SERVER_MAC),
            "{what}"
        );
    }
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
            "request",
            msg(
                MSG_REQUEST,
                &[client_id(), server_id(), p.bound_na(), p.bound_pd()],
            ),
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
