//! The fast-path rule, randomized: random clients bound by the controller and pushed into the
//! map (on odd seeds from a pd-pool with a Prefix Exclude, which an ORO may ask for), then random requests (Renew, Rebind, Solicit, Request, Confirm, Information-Request and
//! others; direct, relayed, 802.1Q, QinQ) with random mutations (truncations,
//! option edits, wrong lengths, duplicated IAs, bytes flipped, options reordered) through
//! BPF_PROG_TEST_RUN. For every frame the program either passes it on untouched (XDP_PASS, the
//! frame as it came) or its reply is, byte for byte, the frame the controller's reply to the
//! same datagram would be (fastpath_common/controller.rs); anything else fails the test with the
//! seed, the case and the frame.
//!
//! Fixed seeds always run (`CI_SEEDS` x `CASES_PER_SEED`), then one random seed, printed first.
//! `FASTPATH_PROPERTY_SEED=N` replays seed N alone; `FASTPATH_PROPERTY_CASES=N` runs N cases
//! for the random (or replayed) seed. Needs root and BPF (as does `cargo xtask test`).

mod fastpath_common;

use std::{
    net::{Ipv6Addr, SocketAddrV6},
    sync::Arc,
    time::Instant,
};

use dhcp_common::{dhcpv6::*, stat};
use dhcp_testwire::Udp6Frame;
use dhcp_user::{
    clock::unix_now as now_unix,
    fastpath::{
        sync::{binding_for, configure, push_binding, SubnetIndex},
        FastPath, XDP_PASS, XDP_TX,
    },
    netif::{reply_source, IfaceInfo},
    server::{handler::Inbound, Server},
    store::{LeaseFilter, LeaseStore, LeaseType, SqliteStore},
};
use fastpath_common::{
    controller::{config, config_with, controller_frame, hex, inbound_direct, relay_ll, tempdir},
    *,
};
use rand::{
    rngs::StdRng,
    seq::{IndexedRandom, SliceRandom},
    RngExt, SeedableRng,
};

/// Seeds every run checks, and how many cases each: 5 x 20 000 = 100 000.
const CI_SEEDS: &[u64] = &[
    0x5eed_0001,
    0x5eed_0002,
    0x5eed_0003,
    0x5eed_0004,
    0x5eed_0005,
];
const CASES_PER_SEED: u64 = 20_000;
/// Clients the controller binds per seed.
const CLIENTS: usize = 24;

/// One client the controller granted leases to.
#[derive(Clone, Debug)]
struct Client {
    duid: Vec<u8>,
    /// (IAID, address) of each IA_NA, (IAID, prefix, length) of each IA_PD.
    na: Vec<(u32, Ipv6Addr)>,
    pd: Vec<(u32, Ipv6Addr, u8)>,
    in_map: bool,
}

struct World {
    server: Arc<Server>,
    fp: FastPath,
    iface: IfaceInfo,
    clients: Vec<Client>,
    _dir: tempdir::Dir,
}

fn random_duid(rng: &mut StdRng) -> Vec<u8> {
    match rng.random_range(0..4) {
        // DUID-LL, DUID-LLT: what clients send.
        0 => {
            let mut d = vec![0, 3, 0, 1];
            d.extend((0..6).map(|_| rng.random::<u8>()));
            d
        }
        1 => {
            let mut d = vec![0, 1, 0, 1];
            d.extend((0..10).map(|_| rng.random::<u8>()));
            d
        }
        // DUID-UUID, DUID-EN and odd lengths (up to beyond what the map keys hold).
        2 => {
            let mut d = vec![0, 4];
            d.extend((0..16).map(|_| rng.random::<u8>()));
            d
        }
        _ => {
            let len = rng.random_range(3..=40);
            let mut d = vec![0, 2];
            d.extend((0..len).map(|_| rng.random::<u8>()));
            d
        }
    }
}

async fn world(seed: u64, rng: &mut StdRng) -> World {
    let base = std::path::Path::new("/dev/shm");
    let base = if base.is_dir() {
        base.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    let dir = tempdir::Dir::new_in(&base, &format!("property-{seed:x}"));
    // Odd seeds: the pd-pool has a Prefix Exclude, which the replies carry when the ORO lists 67.
    let config = if seed % 2 == 1 {
        config_with(&dir.0, r#", excluded-prefix = "2001:db8:8000:1::/64""#, "")
    } else {
        config(&dir.0)
    };
    let store: Arc<dyn LeaseStore> = Arc::new(SqliteStore::open(dir.0.join("leases.db")).unwrap());
    let server = Server::with_store(config.clone(), store.clone(), &["lo".to_string()]).unwrap();
    server.set_direct_subnet("lo", Some(0));
    let mut fp = FastPath::load(None).expect("load the XDP program (needs root and BPF)");
    let iface = IfaceInfo {
        name: "lo".into(),
        ifindex: LO,
        mac: SERVER_MAC,
        link_local: server_ll(),
        addresses: vec![(server_global(), 64)],
    };
    configure(
        &mut fp,
        &config,
        SERVER_DUID,
        std::slice::from_ref(&iface),
        0,
    )
    .unwrap();
    let index = SubnetIndex::new(&config);

    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let duid = random_duid(rng);
        // Mostly an address and a prefix; some one of them; a few two of a kind.
        let (na_count, pd_count) = match rng.random_range(0..10) {
            0 => (1, 0),
            1 => (0, 1),
            2 => (2, 1),
            3 => (1, 2),
            _ => (1, 1),
        };
        let mut options = vec![
            opt(OPT_CLIENTID, &duid),
            elapsed(),
            opt(OPT_RAPID_COMMIT, &[]),
        ];
        let na_iaids: Vec<u32> = (0..na_count).map(|_| rng.random()).collect();
        let pd_iaids: Vec<u32> = (0..pd_count).map(|_| rng.random()).collect();
        for iaid in &na_iaids {
            options.push(ia_na(*iaid, 0, 0, None));
        }
        for iaid in &pd_iaids {
            options.push(ia_pd(*iaid, 0, 0, None));
        }
        let grant = wire::msg(MSG_SOLICIT, rng.random::<u32>() & 0xff_ffff, &options);
        if server.handle(&inbound_direct(grant)).await.is_none() {
            continue;
        }
        let leases = store
            .find(
                &LeaseFilter::Duid {
                    duid: duid.clone(),
                    iaid: None,
                },
                None,
                16,
            )
            .unwrap();
        let mut client = Client {
            duid,
            na: Vec::new(),
            pd: Vec::new(),
            in_map: false,
        };
        for lease in &leases {
            match lease.lease_type {
                LeaseType::Na => client.na.push((lease.iaid, lease.address)),
                LeaseType::Pd => client
                    .pd
                    .push((lease.iaid, lease.address, lease.prefix_len)),
            }
        }
        if let Some((key, binding)) = binding_for(&leases, now_unix(), &index) {
            push_binding(&mut fp, &index, &key, binding).unwrap();
            client.in_map = true;
        }
        clients.push(client);
    }
    assert!(
        clients.iter().filter(|c| c.in_map).count() >= CLIENTS / 2,
        "most clients are in the map: {clients:?}"
    );
    World {
        server,
        fp,
        iface,
        clients,
        _dir: dir,
    }
}

/// One option edited at random: its length field, its body cut or grown, a byte flipped.
fn edit_option(rng: &mut StdRng, option: &mut Vec<u8>, what: &mut Vec<String>) {
    if option.len() < 4 {
        return;
    }
    match rng.random_range(0..4) {
        0 => {
            let len = u16::from_be_bytes([option[2], option[3]]);
            let new = match rng.random_range(0..3) {
                0 => len.wrapping_add(1),
                1 => len.wrapping_sub(1),
                _ => rng.random(),
            };
            option[2..4].copy_from_slice(&new.to_be_bytes());
            what.push(format!("option length {len} -> {new}"));
        }
        1 => {
            let cut = rng.random_range(4..=option.len());
            option.truncate(cut);
            let len = (cut - 4) as u16;
            option[2..4].copy_from_slice(&len.to_be_bytes());
            what.push(format!("option body cut to {len}"));
        }
        2 => {
            let extra = rng.random_range(1..8);
            option.extend((0..extra).map(|_| rng.random::<u8>()));
            let len = (option.len() - 4) as u16;
            option[2..4].copy_from_slice(&len.to_be_bytes());
            what.push(format!("option body grown to {len}"));
        }
        _ => {
            let at = rng.random_range(0..option.len());
            let bit = 1u8 << rng.random_range(0..8);
            option[at] ^= bit;
            what.push(format!("option byte {at} ^= {bit:#x}"));
        }
    }
}

/// The client message of one case, mutated; `what` collects the description.
fn client_message(rng: &mut StdRng, w: &World, what: &mut Vec<String>) -> Vec<u8> {
    let client = w.clients[rng.random_range(0..w.clients.len())].clone();
    let duid = if rng.random_bool(0.05) {
        what.push("unknown DUID".into());
        random_duid(rng)
    } else {
        client.duid.clone()
    };
    let msg_type = match rng.random_range(0..100) {
        0..25 => MSG_RENEW,
        25..40 => MSG_REBIND,
        40..56 => MSG_SOLICIT,
        56..64 => MSG_INFORMATION_REQUEST,
        64..78 => MSG_REQUEST,
        78..81 => MSG_RELEASE,
        81..92 => MSG_CONFIRM,
        92..95 => MSG_DECLINE,
        _ => rng.random(),
    };
    what.push(format!("type {msg_type}, client {}", hex(&duid)));
    let mut options = Vec::new();
    if !rng.random_bool(0.03) {
        options.push(opt(OPT_CLIENTID, &duid));
    }
    let wants_server_id = matches!(
        msg_type,
        MSG_RENEW | MSG_REQUEST | MSG_RELEASE | MSG_DECLINE
    );
    if wants_server_id != rng.random_bool(0.05) {
        options.push(server_id());
    }
    if rng.random_bool(0.7) {
        let value: u16 = if rng.random_bool(0.5) {
            0
        } else {
            rng.random()
        };
        options.push(opt(OPT_ELAPSED_TIME, &value.to_be_bytes()));
    }
    let lifetimes = |rng: &mut StdRng| -> (u32, u32) {
        if rng.random_bool(0.7) {
            (0, 0)
        } else {
            (rng.random(), rng.random())
        }
    };
    if msg_type != MSG_INFORMATION_REQUEST || rng.random_bool(0.05) {
        let solicit = msg_type == MSG_SOLICIT;
        for &(iaid, addr) in &client.na {
            if rng.random_bool(0.15) {
                continue;
            }
            let (t1, t2) = lifetimes(rng);
            let (p, v) = lifetimes(rng);
            let addr = if rng.random_bool(0.05) {
                what.push("other address".into());
                Ipv6Addr::from(u128::from(addr) ^ 1)
            } else if rng.random_bool(0.05) {
                // Off the link: a Confirm of it earns NotOnLink.
                what.push("address of another link".into());
                Ipv6Addr::from(u128::from(addr) ^ (0x3 << 80))
            } else {
                addr
            };
            let iaid = if rng.random_bool(0.05) {
                iaid ^ 1
            } else {
                iaid
            };
            let hint = !solicit || rng.random_bool(0.3);
            options.push(ia_na(iaid, t1, t2, hint.then_some((addr, p, v))));
        }
        for &(iaid, prefix, len) in &client.pd {
            if rng.random_bool(0.15) {
                continue;
            }
            let (t1, t2) = lifetimes(rng);
            let (p, v) = lifetimes(rng);
            let len = if rng.random_bool(0.05) { len + 1 } else { len };
            let iaid = if rng.random_bool(0.05) {
                iaid ^ 1
            } else {
                iaid
            };
            let hint = !solicit || rng.random_bool(0.3);
            options.push(ia_pd(iaid, t1, t2, hint.then_some((prefix, len, p, v))));
        }
    }
    if msg_type == MSG_SOLICIT && rng.random_bool(0.5) {
        options.push(opt(OPT_RAPID_COMMIT, &[]));
    }
    if rng.random_bool(0.7) {
        let mut codes = vec![
            OPT_DNS_SERVERS,
            OPT_DOMAIN_LIST,
            OPT_INFORMATION_REFRESH_TIME,
            OPT_PREFERENCE,
            OPT_RAPID_COMMIT,
            OPT_PD_EXCLUDE,
            rng.random_range(0..100),
        ];
        codes.shuffle(rng);
        codes.truncate(rng.random_range(0..=codes.len()));
        options.push(oro(&codes));
    }
    if rng.random_bool(0.1) {
        let code = *[
            OPT_RECONF_ACCEPT,
            OPT_USER_CLASS,
            OPT_VENDOR_CLASS,
            OPT_IA_TA,
            OPT_STATUS_CODE,
            OPT_AUTH,
            rng.random(),
        ]
        .choose(rng)
        .unwrap();
        let body: Vec<u8> = (0..rng.random_range(0..12)).map(|_| rng.random()).collect();
        what.push(format!("option {code} added"));
        options.push(opt(code, &body));
    }
    // Option-level mutations.
    let edits = if rng.random_bool(0.5) {
        0
    } else {
        rng.random_range(1..=3)
    };
    for _ in 0..edits {
        if options.is_empty() {
            break;
        }
        let at = rng.random_range(0..options.len());
        match rng.random_range(0..5) {
            0 => {
                what.push(format!("option {at} duplicated"));
                let copy = options[at].clone();
                options.insert(at, copy);
            }
            1 => {
                what.push(format!("option {at} removed"));
                options.remove(at);
            }
            2 => {
                what.push("options reordered".into());
                options.shuffle(rng);
            }
            _ => edit_option(rng, &mut options[at], what),
        }
    }
    let mut message = wire::msg(msg_type, rng.random::<u32>() & 0xff_ffff, &options);
    // Byte-level mutations of the message (the UDP checksum is made after: still valid).
    if rng.random_bool(0.08) {
        let cut = rng.random_range(0..message.len());
        what.push(format!("message cut to {cut}"));
        message.truncate(cut);
    }
    if rng.random_bool(0.08) && !message.is_empty() {
        for _ in 0..rng.random_range(1..=3) {
            let at = rng.random_range(0..message.len());
            let bit = 1u8 << rng.random_range(0..8);
            what.push(format!("message byte {at} ^= {bit:#x}"));
            message[at] ^= bit;
        }
    }
    if rng.random_bool(0.03) {
        let extra: Vec<u8> = (0..rng.random_range(1..6)).map(|_| rng.random()).collect();
        what.push(format!("{} bytes appended", extra.len()));
        message.extend(extra);
    }
    message
}

/// A Relay-Forw around `inner` with random relay fields.
fn relay_message(rng: &mut StdRng, inner: Vec<u8>, what: &mut Vec<String>) -> Vec<u8> {
    let hops = if rng.random_bool(0.9) {
        0
    } else {
        rng.random()
    };
    let link: Ipv6Addr = match rng.random_range(0..10) {
        0 => Ipv6Addr::UNSPECIFIED,
        1 => "2001:db8:2::".parse().unwrap(),
        _ => "2001:db8:1::".parse().unwrap(),
    };
    let mut v = vec![MSG_RELAY_FORW, hops];
    v.extend_from_slice(&link.octets());
    v.extend_from_slice(&client_ll().octets());
    let mut options = Vec::new();
    if rng.random_bool(0.6) {
        options.push(opt(OPT_INTERFACE_ID, b"ge-0/0/1.100"));
    }
    if rng.random_bool(0.5) {
        options.push(opt(
            OPT_REMOTE_ID,
            &[0, 0, 0x0d, 0xe9, b'p', b'o', b'r', b't', b'1'],
        ));
    }
    // The other options relays add (RFC 4580, RFC 5460's Relay-ID, RFC 6939), valid or not.
    if rng.random_bool(0.15) {
        options.push(opt(OPT_SUBSCRIBER_ID, b"subscriber-17"));
    }
    if rng.random_bool(0.1) {
        let len = rng.random_range(0..8);
        options.push(opt(OPT_RELAY_ID, &[0, 1, 0, 1, 9, 9, 9, 9][..len]));
    }
    if rng.random_bool(0.15) {
        options.push(opt(OPT_CLIENT_LINKLAYER_ADDR, &[0, 1, 2, 0xc1, 0, 0, 0, 1]));
    }
    options.push(opt(OPT_RELAY_MSG, &inner));
    if rng.random_bool(0.3) {
        options.shuffle(rng);
    }
    if rng.random_bool(0.1) {
        let at = rng.random_range(0..options.len());
        what.push(format!("relay option {at}:"));
        edit_option(rng, &mut options[at], what);
    }
    if rng.random_bool(0.03) {
        let copy = options[0].clone();
        what.push("relay option duplicated".into());
        options.push(copy);
    }
    what.push(format!("relayed (hops {hops}, link {link})"));
    for o in options {
        v.extend(o);
    }
    v
}

/// The frame of one case.
fn frame(rng: &mut StdRng, w: &World, what: &mut Vec<String>) -> Vec<u8> {
    let message = client_message(rng, w, what);
    let mut f = if rng.random_bool(0.5) {
        let mut f = direct(message);
        match rng.random_range(0..20) {
            0 => f.dst_ip = "ff05::1:3".parse().unwrap(),
            1 => f.dst_ip = server_ll(),
            2 => f.dst_ip = server_global(),
            _ => {}
        }
        if rng.random_bool(0.03) {
            f.src_ip = "2001:db8:1::77".parse().unwrap();
        }
        f
    } else {
        let mut payload = relay_message(rng, message, what);
        if rng.random_bool(0.03) {
            payload = relay_message(rng, payload, what);
        }
        let mut f = relayed(payload);
        let (from, to): (Ipv6Addr, &str) = match rng.random_range(0..6) {
            0 => (relay_addr(), "2001:db8:99::547"),
            1 => (relay_ll(), "fe80::53"),
            2 => (relay_ll(), "ff02::1:2"),
            3 => (relay_addr(), "ff02::1:2"),
            4 => (relay_addr(), "ff05::1:3"),
            _ => (relay_ll(), "ff05::1:3"),
        };
        f.src_ip = from;
        f.dst_ip = to.parse().unwrap();
        f
    };
    if f.dst_ip.is_multicast() {
        let group = f.dst_ip.octets();
        f.dst_mac = [0x33, 0x33, group[12], group[13], group[14], group[15]];
    } else {
        f.dst_mac = SERVER_MAC;
    }
    f.vlans = match rng.random_range(0..4) {
        0 => vec![(0x8100, rng.random_range(1..4095))],
        1 => vec![(0x88a8, rng.random_range(1..4095)), (0x8100, rng.random())],
        _ => vec![],
    };
    // Header fields.
    if rng.random_bool(0.1) {
        match rng.random_range(0..7) {
            0 => f.hop_limit = rng.random(),
            1 => f.flow = rng.random(),
            2 => f.src_port = rng.random(),
            3 => f.dst_port = *[CLIENT_PORT, rng.random()].choose(rng).unwrap(),
            4 => f.dst_mac = rng.random(),
            5 => f.src_mac = rng.random(),
            _ => f.vlans.push((0x8100, rng.random())),
        }
        what.push(format!("header edited: {f:?}"));
    }
    let mut bytes = f.encode();
    // The frame itself: cut, padded, bytes flipped (the checksum then fixed up, or not).
    if rng.random_bool(0.03) {
        // BPF_PROG_TEST_RUN refuses less than an Ethernet header.
        let cut = rng.random_range(14..bytes.len());
        what.push(format!("frame cut to {cut}"));
        bytes.truncate(cut);
    }
    if rng.random_bool(0.03) {
        let pad = rng.random_range(1..32);
        what.push(format!("{pad} bytes of padding"));
        bytes.extend(std::iter::repeat_n(0, pad));
    }
    if rng.random_bool(0.05) && !bytes.is_empty() {
        let at = rng.random_range(0..bytes.len().min(14 + 8 + 40 + 8));
        let bit = 1u8 << rng.random_range(0..8);
        what.push(format!("frame byte {at} ^= {bit:#x}"));
        bytes[at] ^= bit;
        if rng.random_bool(0.5) {
            fix_udp_checksum(&mut bytes, 14 + 4 * f.vlans.len());
        }
    }
    bytes
}

/// Recomputes the UDP checksum of the frame whose IPv6 header is at `ip` (lengths as they are).
fn fix_udp_checksum(bytes: &mut [u8], ip: usize) {
    let Some(hdr) = bytes.get(ip..ip + 40) else {
        return;
    };
    let len = u16::from_be_bytes([hdr[4], hdr[5]]) as usize;
    let src = Ipv6Addr::from(<[u8; 16]>::try_from(&hdr[8..24]).unwrap());
    let dst = Ipv6Addr::from(<[u8; 16]>::try_from(&hdr[24..40]).unwrap());
    let udp = ip + 40;
    if bytes.len() < udp + len || len < 8 {
        return;
    }
    bytes[udp + 6..udp + 8].copy_from_slice(&[0, 0]);
    let mut sum = dhcp_testwire::frame::udp6_checksum(&src, &dst, &bytes[udp..udp + len]);
    if sum == 0 {
        sum = 0xffff;
    }
    bytes[udp + 6..udp + 8].copy_from_slice(&sum.to_be_bytes());
}

/// What the controller's socket on the interface receives for `bytes`, if anything: a valid
/// IPv6/UDP frame to port 547, to one of our addresses or a group we joined, at our MAC or
/// the group's.
fn delivered(bytes: &[u8]) -> Option<(Udp6Frame, Inbound)> {
    let frame = Udp6Frame::decode(bytes).ok()?;
    let ip = 14 + 4 * frame.vlans.len();
    if bytes[ip] >> 4 != 6 || frame.dst_port != SERVER_PORT {
        return None;
    }
    let ours = [
        server_ll(),
        server_global(),
        ALL_RELAYS_AND_SERVERS.into(),
        "ff05::1:3".parse().unwrap(),
    ];
    if !ours.contains(&frame.dst_ip) {
        return None;
    }
    let mac = if frame.dst_ip.is_multicast() {
        let group = frame.dst_ip.octets();
        [0x33, 0x33, group[12], group[13], group[14], group[15]]
    } else {
        SERVER_MAC
    };
    if frame.dst_mac != mac || frame.src_ip.is_multicast() || frame.src_ip.is_unspecified() {
        return None;
    }
    let scope = if frame.src_ip.is_unicast_link_local() {
        LO
    } else {
        0
    };
    let inbound = Inbound {
        bytes: frame.payload.clone(),
        source: SocketAddrV6::new(frame.src_ip, frame.src_port, 0, scope),
        destination: frame.dst_ip,
        ifindex: LO,
        interface: "lo".into(),
        link: None,
    };
    Some((frame, inbound))
}

#[derive(Default, Debug)]
struct Tally {
    passed: u64,
    answered: u64,
    /// The program's answers by counter (`tx_*`), so each message type's share shows.
    by_counter: Vec<(&'static str, u64)>,
}

/// Runs `cases` cases of `seed`; panics on the first frame breaking the rule.
async fn run_seed(seed: u64, cases: u64) -> Tally {
    let mut rng = StdRng::seed_from_u64(seed);
    let w = world(seed, &mut rng).await;
    let mut tally = Tally::default();
    for case in 0..cases {
        let mut what = Vec::new();
        let bytes = frame(&mut rng, &w, &mut what);
        let out = w.fp.test_run(&bytes, LO, 1).unwrap();
        let fail = |why: String| -> ! {
            panic!(
                "seed {seed:#x} (FASTPATH_PROPERTY_SEED={seed}), case {case}: {why}\n\
                 mutations: {what:?}\nframe: {}\nXDP verdict {}, frame: {}",
                hex(&bytes),
                out.verdict,
                hex(&out.frame)
            )
        };
        if out.verdict == XDP_PASS {
            if out.frame != bytes {
                fail("passed on, but changed".into());
            }
            tally.passed += 1;
            continue;
        }
        if out.verdict != XDP_TX {
            fail(format!(
                "verdict {} (neither pass nor an answer)",
                out.verdict
            ));
        }
        let Some((request, inbound)) = delivered(&bytes) else {
            fail("answered a frame the controller's socket would never receive".into());
        };
        let Some(payload) = w.server.handle(&inbound).await else {
            fail("answered, but the controller does not".into());
        };
        let Some(source) = reply_source(&w.iface, request.dst_ip, request.src_ip) else {
            fail("answered, but the controller has no source for a reply".into());
        };
        let expected = controller_frame(&request, source, payload).encode();
        if out.frame != expected {
            fail(format!(
                "the reply differs from the controller's: {}",
                hex(&expected)
            ));
        }
        tally.answered += 1;
    }
    let stats = w.fp.stats().unwrap();
    tally.by_counter = stat::NAMES
        .iter()
        .zip(&stats)
        .filter(|(name, _)| name.starts_with("tx_"))
        .map(|(name, counter)| (*name, counter.packets))
        .collect();
    tally
}

fn env_u64(name: &str) -> Option<u64> {
    let text = std::env::var(name).ok()?;
    let text = text.trim();
    Some(
        match text.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => text.parse(),
        }
        .unwrap_or_else(|_| panic!("{name}={text}: not a number")),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xdp_passes_untouched_or_answers_as_the_controller_does() {
    let replay = env_u64("FASTPATH_PROPERTY_SEED");
    let random_seed = replay.unwrap_or_else(rand::random);
    let random_cases = env_u64("FASTPATH_PROPERTY_CASES").unwrap_or(CASES_PER_SEED);
    eprintln!(
        "fast-path property: random seed {random_seed} (replay with \
         FASTPATH_PROPERTY_SEED={random_seed}), {random_cases} cases"
    );
    let mut seeds: Vec<(u64, u64)> = Vec::new();
    if replay.is_none() {
        seeds.extend(CI_SEEDS.iter().map(|&s| (s, CASES_PER_SEED)));
    }
    seeds.push((random_seed, random_cases));
    for (seed, cases) in seeds {
        let started = Instant::now();
        let tally = run_seed(seed, cases).await;
        eprintln!(
            "seed {seed:#x}: {cases} cases in {:.1} s: {} answered as the controller does, {} \
             passed on untouched",
            started.elapsed().as_secs_f64(),
            tally.answered,
            tally.passed
        );
        eprintln!("  answers by counter: {:?}", tally.by_counter);
        assert!(
            tally.answered > cases / 20,
            "seed {seed:#x}: too few answers to show anything: {tally:?}"
        );
        // Every kind of answer is exercised, Request and Confirm among them.
        for (name, count) in &tally.by_counter {
            assert!(
                *count > 0 || cases < 10_000,
                "seed {seed:#x}: nothing answered under {name}: {tally:?}"
            );
        }
    }
}
