//! The fast-path test fixture shared by the golden-packet and differential tests: one server,
//! one client with an address and a prefix, frames around hand-built DHCPv6 messages.
#![allow(dead_code)]

use std::{net::Ipv6Addr, time::SystemTime};

use dhcp_common::{
    dhcpv6::*, BindingKey, BindingValue, GlobalConfig, IfaceConfig, OptionSlot, SubnetConfig,
    BINDING_HAS_NA, BINDING_HAS_PD, FAST_OPTION_SLOTS, FAST_SERVER_DUID_MAX,
    OPTION_SLOT_INFORMATION_ONLY,
};
#[allow(unused_imports)]
pub use dhcp_testwire::dhcpv6::{
    self as wire, be32, elapsed, ia_na, ia_pd, opt, oro, with_oro_code,
};
use dhcp_testwire::Udp6Frame;
use dhcp_user::fastpath::FastPath;

pub mod controller;

pub const LO: u32 = 1;
pub const SERVER_MAC: [u8; 6] = [0x02, 0x53, 0, 0, 0, 1];
pub const CLIENT_MAC: [u8; 6] = [0x02, 0xc1, 0, 0, 0, 1];
pub const RELAY_MAC: [u8; 6] = [0x02, 0x4e, 0, 0, 0, 1];
pub const SERVER_DUID: &[u8] = &[0, 1, 0, 1, 0x2a, 0x2b, 0x2c, 0x2d, 2, 0x53, 0, 0, 0, 1];
pub const CLIENT_DUID: &[u8] = &[0, 3, 0, 1, 2, 0xc1, 0, 0, 0, 1];
pub const NA_IAID: u32 = 0x0a0b0c0d;
pub const PD_IAID: u32 = 7;
pub const PREFERRED: u32 = 3000;
pub const VALID: u32 = 4000;
pub const T1: u32 = 1500;
pub const T2: u32 = 2400;
pub const INFO_REFRESH: u32 = 86400;
pub const XID: [u8; 3] = [0x12, 0x34, 0x56];

pub fn na_addr() -> Ipv6Addr {
    "2001:db8:1::1234".parse().unwrap()
}
pub fn pd_prefix() -> Ipv6Addr {
    "2001:db8:8000:100::".parse().unwrap()
}
pub fn server_ll() -> Ipv6Addr {
    "fe80::53".parse().unwrap()
}
pub fn client_ll() -> Ipv6Addr {
    "fe80::c1".parse().unwrap()
}
pub fn dns() -> Ipv6Addr {
    "2001:db8:1::53".parse().unwrap()
}
pub fn domain_wire() -> Vec<u8> {
    b"\x03lab\x07example\x00".to_vec()
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn msg(msg_type: u8, options: &[Vec<u8>]) -> Vec<u8> {
    wire::msg(
        msg_type,
        u32::from_be_bytes([0, XID[0], XID[1], XID[2]]),
        options,
    )
}

/// The reply IAs the controller grants for this binding (docs/fastpath.md).
pub fn granted_na() -> Vec<u8> {
    ia_na(NA_IAID, T1, T2, Some((na_addr(), PREFERRED, VALID)))
}
pub fn granted_pd() -> Vec<u8> {
    ia_pd(PD_IAID, T1, T2, Some((pd_prefix(), 56, PREFERRED, VALID)))
}

pub fn direct(payload: Vec<u8>) -> Udp6Frame {
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
pub fn direct_reply(payload: Vec<u8>) -> Udp6Frame {
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
pub fn relay_addr() -> Ipv6Addr {
    "2001:db8:99::1".parse().unwrap()
}
pub fn server_global() -> Ipv6Addr {
    "2001:db8:99::547".parse().unwrap()
}
pub fn relay_forw(inner: Vec<u8>, interface_id: Option<&[u8]>) -> Vec<u8> {
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
/// A Lightweight DHCPv6 Relay Agent's Relay-Forw (RFC 6221 section 6): link-address `::`,
/// the client's link-local address as peer-address, and the Interface-ID it must include.
pub fn ldra_forw(inner: Vec<u8>, interface_id: &[u8]) -> Vec<u8> {
    let mut v = vec![MSG_RELAY_FORW, 0];
    v.extend_from_slice(&Ipv6Addr::UNSPECIFIED.octets());
    v.extend_from_slice(&client_ll().octets());
    v.extend(opt(OPT_INTERFACE_ID, interface_id));
    v.extend(opt(OPT_RELAY_MSG, &inner));
    v
}
/// The Relay-Repl back to an LDRA: its header (link-address `::`) and Interface-ID echoed.
pub fn ldra_repl(inner: Vec<u8>, interface_id: &[u8]) -> Vec<u8> {
    let mut v = vec![MSG_RELAY_REPL, 0];
    v.extend_from_slice(&Ipv6Addr::UNSPECIFIED.octets());
    v.extend_from_slice(&client_ll().octets());
    v.extend(opt(OPT_INTERFACE_ID, interface_id));
    v.extend(opt(OPT_RELAY_MSG, &inner));
    v
}
pub fn relay_repl(inner: Vec<u8>, interface_id: Option<&[u8]>) -> Vec<u8> {
    let mut v = vec![MSG_RELAY_REPL, 0];
    v.extend_from_slice(&"2001:db8:1::".parse::<Ipv6Addr>().unwrap().octets());
    v.extend_from_slice(&client_ll().octets());
    if let Some(id) = interface_id {
        v.extend(opt(OPT_INTERFACE_ID, id));
    }
    v.extend(opt(OPT_RELAY_MSG, &inner));
    v
}
pub fn relayed(payload: Vec<u8>) -> Udp6Frame {
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
pub fn relayed_reply(payload: Vec<u8>) -> Udp6Frame {
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

pub fn with_vlans(mut f: Udp6Frame, vlans: &[(u16, u16)]) -> Udp6Frame {
    f.vlans = vlans.to_vec();
    f
}

pub fn client_id() -> Vec<u8> {
    opt(OPT_CLIENTID, CLIENT_DUID)
}
pub fn server_id() -> Vec<u8> {
    opt(OPT_SERVERID, SERVER_DUID)
}
pub fn dns_opt() -> Vec<u8> {
    opt(OPT_DNS_SERVERS, &dns().octets())
}
pub fn domain_opt() -> Vec<u8> {
    opt(OPT_DOMAIN_LIST, &domain_wire())
}

pub fn renew() -> Vec<u8> {
    renew_with(&[])
}
/// The Renew of `renew()` with `extra` options after its own.
pub fn renew_with(extra: &[Vec<u8>]) -> Vec<u8> {
    let mut options = vec![
        client_id(),
        server_id(),
        elapsed(),
        ia_na(NA_IAID, 0, 0, Some((na_addr(), 0, 0))),
        ia_pd(PD_IAID, 0, 0, Some((pd_prefix(), 56, 0, 0))),
        oro(&[OPT_DNS_SERVERS, OPT_DOMAIN_LIST]),
    ];
    options.extend_from_slice(extra);
    msg(MSG_RENEW, &options)
}
/// A known client's Request naming its binding (the IAs of the Advertise it got), with the ORO
/// of `renew()`: the controller's Reply is `renew_reply()`.
pub fn request_msg() -> Vec<u8> {
    msg(
        MSG_REQUEST,
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
/// A Confirm of `addr` (RFC 8415 section 18.2.3: no Server ID, the IA_NA with its address).
pub fn confirm_msg(addr: Ipv6Addr) -> Vec<u8> {
    msg(
        MSG_CONFIRM,
        &[
            client_id(),
            elapsed(),
            ia_na(NA_IAID, 0, 0, Some((addr, 0, 0))),
            oro(&[OPT_DNS_SERVERS]),
        ],
    )
}
/// The Status Code option: `code`, then the message text.
pub fn status_opt(code: u16, text: &str) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(text.as_bytes());
    opt(OPT_STATUS_CODE, &body)
}
/// The controller's Reply to a Confirm: Server ID, Client ID, the status, nothing else.
pub fn confirm_reply(on_link: bool) -> Vec<u8> {
    let status = if on_link {
        status_opt(STATUS_SUCCESS, "all addresses on link")
    } else {
        status_opt(STATUS_NOT_ON_LINK, "addresses not on link")
    };
    msg(MSG_REPLY, &[server_id(), client_id(), status])
}
pub fn renew_reply() -> Vec<u8> {
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

pub struct Lab {
    pub fp: FastPath,
}

/// The controller's object, configured for the test client.
pub fn setup() -> Lab {
    setup_object(dhcp_user::fastpath::EBPF_OBJECT)
}

/// The benchmark's build of the object (dhcp-ebpf feature `bench`), configured the same way.
pub fn setup_bench() -> Lab {
    setup_object(dhcp_bench::BENCH_OBJECT)
}

fn setup_object(object: &[u8]) -> Lab {
    let mut fp = FastPath::load_object(object, None, dhcp_common::DEFAULT_MAX_BINDINGS)
        .expect("load the XDP program (needs root and BPF)");
    let mut server_duid = [0u8; FAST_SERVER_DUID_MAX];
    server_duid[..SERVER_DUID.len()].copy_from_slice(SERVER_DUID);
    fp.set_global(&GlobalConfig {
        clock_to_unix_ns: dhcp_user::fastpath::clock_to_unix_ns(),
        enabled: 1,
        server_duid_len: SERVER_DUID.len() as u8,
        relay_selectors: 0,
        interface_client_limit: 0,
        pass_rate_per_cpu: 0,
        line_pass_budget: 0,
        line_pass_burst: 0,
        server_duid,
    })
    .unwrap();
    fp.set_iface(
        LO,
        &IfaceConfig {
            mac: SERVER_MAC,
            subnet: 3,
            link_local: server_ll().octets(),
            global: server_global().octets(),
            enabled: 1,
            has_subnet: 1,
            has_global: 1,
            has_vlans: 0,
            _pad: [0; 4],
        },
    )
    .unwrap();
    fp.set_subnet(
        3,
        &lab_subnet(slots(&[
            (OPT_DNS_SERVERS, &dns().octets()[..], 0),
            (OPT_DOMAIN_LIST, &domain_wire(), 0),
            (
                OPT_INFORMATION_REFRESH_TIME,
                &INFO_REFRESH.to_be_bytes()[..],
                OPTION_SLOT_INFORMATION_ONLY,
            ),
        ])),
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
                durable_until: now_unix() + 1000 + 3600,
                na_iaid: NA_IAID,
                pd_iaid: PD_IAID,
                na_addr: na_addr().octets(),
                pd_prefix: pd_prefix().octets(),
                subnet: 3,
                flags: BINDING_HAS_NA | BINDING_HAS_PD,
                pd_len: 56,
                ifindex: 0,
                option_sets: [0; 3],
                class_inputs: 0,
            },
            0,
        )
        .unwrap();
    Lab { fp }
}

/// The lab's subnet (index 3) with these option slots.
pub fn lab_subnet(options: [OptionSlot; FAST_OPTION_SLOTS]) -> SubnetConfig {
    SubnetConfig {
        preferred_lifetime: PREFERRED,
        valid_lifetime: VALID,
        t1: T1,
        t2: T2,
        enabled: 1,
        rapid_commit: 1,
        send_preference: 1,
        preference: 200,
        options_fit: 1,
        option_count: options.iter().filter(|s| s.len != 0).count() as u8,
        client_classes: 0,
        reconfigure: 0,
        options,
    }
}

/// Option slots as the controller fills them: (code, body, flags), in order.
pub fn slots(options: &[(u16, &[u8], u8)]) -> [OptionSlot; FAST_OPTION_SLOTS] {
    let mut out = [OptionSlot::EMPTY; FAST_OPTION_SLOTS];
    for (slot, (code, body, flags)) in out.iter_mut().zip(options) {
        *slot = OptionSlot::new(*code, body, *flags).expect("fits a slot");
    }
    out
}

impl Lab {
    pub fn run(&self, frame: &Udp6Frame) -> (u32, Vec<u8>) {
        let out = self.fp.test_run(&frame.encode(), LO, 1).unwrap();
        (out.verdict, out.frame)
    }
    pub fn expires(&self) -> u64 {
        self.fp
            .bindings()
            .unwrap()
            .get(&BindingKey::new(CLIENT_DUID).unwrap(), 0)
            .unwrap()
            .expires
    }
    pub fn counter(&self, index: u32) -> u64 {
        self.fp.stats().unwrap()[index as usize].packets
    }
    /// Gives the lab's subnet `subnet` instead (its options, say).
    pub fn set_subnet(&mut self, subnet: &SubnetConfig) {
        self.fp.set_subnet(3, subnet).unwrap();
    }
    /// Sets `flags` on the client's binding.
    pub fn add_binding_flags(&mut self, flags: u8) {
        self.edit_binding(|value| value.flags |= flags);
    }
    /// Rewrites the client's binding as `edit` changes it.
    pub fn edit_binding(&mut self, edit: impl FnOnce(&mut BindingValue)) {
        let key = BindingKey::new(CLIENT_DUID).unwrap();
        let mut value = self.fp.bindings().unwrap().get(&key, 0).unwrap();
        edit(&mut value);
        self.fp
            .bindings_mut()
            .unwrap()
            .insert(key, value, 0)
            .unwrap();
    }
    /// Records `ifindex` as the interface of the client's binding.
    pub fn set_binding_ifindex(&mut self, ifindex: u32) {
        self.edit_binding(|value| value.ifindex = ifindex);
    }
}
