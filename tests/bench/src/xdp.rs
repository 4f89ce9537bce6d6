//! The fast path measured without a network: BPF_PROG_TEST_RUN of the XDP program, next to the
//! trivial XDP_PASS program in the same run, and the binding map filled to scale.
//!
//! The program is the benchmark's build of the object ([`crate::BENCH_OBJECT`], dhcp-ebpf with
//! feature `bench`): after answering, it puts the request back, so `repeat` runs the full answer every time. The restore costs a copy
//! of the frame, so the figures are a slight upper bound on a live answer.

use std::{
    net::Ipv6Addr,
    os::fd::{AsFd, AsRawFd},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use anyhow::{bail, Context, Result};
use aya::maps::IterableMap;
use dhcp_common::{
    dhcpv6::*, BindingKey, BindingValue, ClassInputs, GlobalConfig, IfaceConfig, OptionSlot,
    SubnetConfig, BINDING_HAS_NA, BINDING_HAS_PD, CLASSES_BARE_INFORMATION, CLASSES_CHECK,
    FAST_OPTION_SLOTS, FAST_SERVER_DUID_MAX, OPTION_SLOT_INFORMATION_ONLY,
};

use dhcp_testwire::dhcpv6::{self as wire, elapsed, ia_na, ia_pd, msg, opt, oro};
use dhcp_testwire::frame::Udp6Frame;
use dhcp_user::fastpath::{test_run, FastPath, XDP_PASS, XDP_TX};

/// Loopback: BPF_PROG_TEST_RUN frames "arrive" on it.
pub const LO: u32 = 1;
pub const SERVER_DUID: &[u8] = &[0, 1, 0, 1, 0x2a, 0x2b, 0x2c, 0x2d, 2, 0x53, 0, 0, 0, 1];
/// The measured client: a DUID none of the fill clients has.
pub const CLIENT_DUID: &[u8] = &[0, 3, 0, 1, 2, 0xc1, 0, 0, 0, 1];
pub const SUBNET: u16 = 3;
/// A subnet whose replies a client class shapes (`CLASSES_CHECK`), reached through a relay.
pub const CLASS_SUBNET: u16 = 4;
/// The measured client of `CLASS_SUBNET`, judged on `CLASS_VENDOR_CLASS`.
pub const CLASS_CLIENT_DUID: &[u8] = &[0, 3, 0, 1, 2, 0xc1, 0, 0, 0, 2];
/// Its Vendor Class body: enterprise 4491, one item (a CPE's model string).
const CLASS_VENDOR_CLASS: &[u8] = b"\x00\x00\x11\x8b\x00\x0bACME-CPE-X1";
pub const NA_IAID: u32 = 0x0a0b0c0d;
pub const PD_IAID: u32 = 7;
pub const PREFERRED: u32 = 3000;
pub const VALID: u32 = 4000;
pub const T1: u32 = 1500;
pub const T2: u32 = 2400;
pub const INFO_REFRESH: u32 = 86400;
const XID: u32 = 0x123456;
const SERVER_MAC: [u8; 6] = [0x02, 0x53, 0, 0, 0, 1];
const CLIENT_MAC: [u8; 6] = [0x02, 0xc1, 0, 0, 0, 1];
const RELAY_MAC: [u8; 6] = [0x02, 0x4e, 0, 0, 0, 1];

pub fn link_prefix() -> Ipv6Addr {
    "2001:db8:1::".parse().unwrap()
}
fn class_link_prefix() -> Ipv6Addr {
    "2001:db8:2::".parse().unwrap()
}
fn class_na() -> Ipv6Addr {
    "2001:db8:2::c1".parse().unwrap()
}
fn server_ll() -> Ipv6Addr {
    "fe80::53".parse().unwrap()
}
fn client_ll() -> Ipv6Addr {
    "fe80::c1".parse().unwrap()
}
fn relay_addr() -> Ipv6Addr {
    "2001:db8:99::1".parse().unwrap()
}
fn server_global() -> Ipv6Addr {
    "2001:db8:99::547".parse().unwrap()
}
fn dns() -> Ipv6Addr {
    "2001:db8:1::53".parse().unwrap()
}
fn domain_wire() -> Vec<u8> {
    b"\x03lab\x07example\x00".to_vec()
}

/// The address of fill client `index` (the measured client is index `u32::MAX`).
pub fn na_addr(index: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(link_prefix()) | 0x1_0000_0000 | index as u128)
}
/// The /56 delegated to client `index`, from 2001:db8:8000::/33.
pub fn pd_prefix(index: u32) -> Ipv6Addr {
    let base: u128 = u128::from("2001:db8:8000::".parse::<Ipv6Addr>().unwrap());
    Ipv6Addr::from(base | (((index & 0x7f_ffff) as u128) << 72))
}

pub fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The binding of a client with address `na` and prefix `pd`, valid for another `for_secs`.
pub fn binding(na: Ipv6Addr, pd: Ipv6Addr, for_secs: u64) -> BindingValue {
    BindingValue {
        expires: now_unix() + for_secs,
        durable_until: now_unix() + 2 * for_secs,
        na_iaid: NA_IAID,
        pd_iaid: PD_IAID,
        na_addr: na.octets(),
        pd_prefix: pd.octets(),
        subnet: SUBNET,
        flags: BINDING_HAS_NA | BINDING_HAS_PD,
        pd_len: 56,
        ifindex: 0,
        option_sets: [0; 3],
        class_inputs: 0,
    }
}

/// Who the server is on the interface the program runs on.
pub struct ServerSide {
    pub ifindex: u32,
    pub mac: [u8; 6],
    pub link_local: Ipv6Addr,
    /// The interface's one global address, when it has one (relays send to it).
    pub global: Option<Ipv6Addr>,
    pub duid: Vec<u8>,
}

/// Fills the configuration maps as the controller would for one interface on subnet `SUBNET`.
pub fn configure(fp: &mut FastPath, side: &ServerSide) -> Result<()> {
    let mut server_duid = [0u8; FAST_SERVER_DUID_MAX];
    server_duid[..side.duid.len()].copy_from_slice(&side.duid);
    fp.set_global(&GlobalConfig {
        clock_to_unix_ns: dhcp_user::fastpath::clock_to_unix_ns(),
        enabled: 1,
        server_duid_len: side.duid.len() as u8,
        relay_selectors: 0,
        interface_client_limit: 0,
        pass_rate_per_cpu: 0,
        line_pass_budget: 0,
        line_pass_burst: 0,
        server_duid,
    })?;
    fp.set_iface(
        side.ifindex,
        &IfaceConfig {
            mac: side.mac,
            subnet: SUBNET,
            link_local: side.link_local.octets(),
            global: side.global.unwrap_or(Ipv6Addr::UNSPECIFIED).octets(),
            enabled: 1,
            has_subnet: 1,
            has_global: side.global.is_some() as u8,
            has_vlans: 0,
            _pad: [0; 4],
        },
    )?;
    let mut options = [OptionSlot::EMPTY; FAST_OPTION_SLOTS];
    options[0] = OptionSlot::new(OPT_DNS_SERVERS, &dns().octets(), 0).context("dns slot")?;
    options[1] = OptionSlot::new(OPT_DOMAIN_LIST, &domain_wire(), 0).context("domain slot")?;
    options[2] = OptionSlot::new(
        OPT_INFORMATION_REFRESH_TIME,
        &INFO_REFRESH.to_be_bytes(),
        OPTION_SLOT_INFORMATION_ONLY,
    )
    .context("refresh slot")?;
    let subnet = SubnetConfig {
        preferred_lifetime: PREFERRED,
        valid_lifetime: VALID,
        t1: T1,
        t2: T2,
        enabled: 1,
        rapid_commit: 1,
        send_preference: 1,
        preference: 200,
        options_fit: 1,
        option_count: 3,
        client_classes: 0,
        reconfigure: 0,
        options,
    };
    fp.set_subnet(SUBNET, &subnet)?;
    fp.set_link(link_prefix(), 64, SUBNET)?;
    fp.set_subnet(
        CLASS_SUBNET,
        &SubnetConfig {
            client_classes: CLASSES_CHECK | CLASSES_BARE_INFORMATION,
            ..subnet
        },
    )?;
    fp.set_link(class_link_prefix(), 64, CLASS_SUBNET)?;
    Ok(())
}

/// A Renew from `duid` for its NA and PD (the shape every CPE sends).
pub fn renew(xid: u32, duid: &[u8], server_duid: &[u8], na: Ipv6Addr, pd: Ipv6Addr) -> Vec<u8> {
    msg(
        MSG_RENEW,
        xid,
        &[
            opt(OPT_CLIENTID, duid),
            opt(OPT_SERVERID, server_duid),
            elapsed(),
            ia_na(NA_IAID, 0, 0, Some((na, 0, 0))),
            ia_pd(PD_IAID, 0, 0, Some((pd, 56, 0, 0))),
            oro(&[OPT_DNS_SERVERS, OPT_DOMAIN_LIST]),
        ],
    )
}

fn measured_na() -> Ipv6Addr {
    na_addr(u32::MAX)
}
fn measured_pd() -> Ipv6Addr {
    pd_prefix(0x7f_ffff)
}

/// The request payloads measured, by name.
fn requests() -> Vec<(&'static str, Vec<u8>)> {
    let client = || opt(OPT_CLIENTID, CLIENT_DUID);
    let na_req = || ia_na(NA_IAID, 0, 0, Some((measured_na(), 0, 0)));
    let pd_req = || ia_pd(PD_IAID, 0, 0, Some((measured_pd(), 56, 0, 0)));
    vec![
        (
            "renew",
            renew(XID, CLIENT_DUID, SERVER_DUID, measured_na(), measured_pd()),
        ),
        (
            "rebind",
            msg(MSG_REBIND, XID, &[client(), elapsed(), na_req(), pd_req()]),
        ),
        (
            "solicit_known",
            msg(
                MSG_SOLICIT,
                XID,
                &[
                    client(),
                    elapsed(),
                    ia_na(NA_IAID, 0, 0, None),
                    ia_pd(PD_IAID, 0, 0, None),
                    oro(&[OPT_DNS_SERVERS]),
                ],
            ),
        ),
        (
            "request",
            msg(
                MSG_REQUEST,
                XID,
                &[
                    client(),
                    opt(OPT_SERVERID, SERVER_DUID),
                    elapsed(),
                    na_req(),
                    pd_req(),
                    oro(&[OPT_DNS_SERVERS, OPT_DOMAIN_LIST]),
                ],
            ),
        ),
        (
            "confirm",
            msg(MSG_CONFIRM, XID, &[client(), elapsed(), na_req(), pd_req()]),
        ),
        (
            "information_request",
            msg(
                MSG_INFORMATION_REQUEST,
                XID,
                &[
                    client(),
                    elapsed(),
                    oro(&[OPT_DNS_SERVERS, OPT_DOMAIN_LIST]),
                ],
            ),
        ),
    ]
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

fn relayed(inner: &[u8]) -> Udp6Frame {
    relayed_from(inner, link_prefix())
}

fn relayed_from(inner: &[u8], link: Ipv6Addr) -> Udp6Frame {
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
        payload: wire::relay_forw(inner, link, client_ll(), Some(b"eth0/1/2:vlan100")),
    }
}

/// One case: its name, the frame in, the frame measured.
pub struct Case {
    pub name: String,
    pub frame: Vec<u8>,
}

/// Every request, direct and relayed.
pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for (name, payload) in requests() {
        out.push(Case {
            name: format!("{name}_direct"),
            frame: direct(payload.clone()).encode(),
        });
        out.push(Case {
            name: format!("{name}_relayed"),
            frame: relayed(&payload).encode(),
        });
    }
    // A class client's Renew (its Vendor Class compared with the one it was judged on).
    let class_renew = msg(
        MSG_RENEW,
        XID,
        &[
            opt(OPT_CLIENTID, CLASS_CLIENT_DUID),
            opt(OPT_SERVERID, SERVER_DUID),
            elapsed(),
            ia_na(NA_IAID, 0, 0, Some((class_na(), 0, 0))),
            opt(OPT_VENDOR_CLASS, CLASS_VENDOR_CLASS),
            oro(&[OPT_DNS_SERVERS, OPT_DOMAIN_LIST]),
        ],
    );
    out.push(Case {
        name: "renew_class_relayed".into(),
        frame: relayed_from(&class_renew, class_link_prefix()).encode(),
    });
    out
}

/// The benchmark's build of the fast path, loaded and configured for the measured client.
pub struct Bench {
    pub fp: FastPath,
    /// The renewal reports' ring buffer. Nothing reads it during a run, so it is full after the
    /// first ~58 000 answers and later reservations fail (the cheaper path); `drain_reports`
    /// empties it for a run where every reservation succeeds.
    reports: aya::maps::RingBuf<aya::maps::MapData>,
}

impl Bench {
    pub fn load() -> Result<Self> {
        Bench::load_sized(dhcp_common::DEFAULT_MAX_BINDINGS)
    }

    /// As `load`, with a binding map of `max_bindings` entries.
    pub fn load_sized(max_bindings: u32) -> Result<Self> {
        Bench::load_object(crate::BENCH_OBJECT, max_bindings)
    }

    /// As `load_sized`, from `object` (another benchmark's build: the baseline), its maps
    /// filled alike.
    pub fn load_object(object: &[u8], max_bindings: u32) -> Result<Self> {
        let mut fp = FastPath::load_object(object, None, max_bindings)
            .context("loading the benchmark's build of the XDP program (needs root and BPF)")?;
        configure(
            &mut fp,
            &ServerSide {
                ifindex: LO,
                mac: SERVER_MAC,
                link_local: server_ll(),
                // The relayed cases are sent to it: only an address of the interface's is
                // answered (`pass_not_our_address`).
                global: Some(server_global()),
                duid: SERVER_DUID.to_vec(),
            },
        )?;
        fp.bindings_mut()?
            .insert(
                BindingKey::new(CLIENT_DUID).context("client DUID")?,
                binding(measured_na(), measured_pd(), 1_000_000),
                0,
            )
            .context("inserting the measured client's binding")?;
        let (mut bindings, shared) = fp.bindings_and_sets()?;
        let judged = ClassInputs::new(None, Some(CLASS_VENDOR_CLASS), 0).context("class inputs")?;
        let mut class_binding = binding(class_na(), Ipv6Addr::UNSPECIFIED, 1_000_000);
        class_binding.subnet = CLASS_SUBNET;
        class_binding.flags = BINDING_HAS_NA;
        class_binding.class_inputs = shared.class_inputs.acquire(&judged)?;
        bindings
            .insert(
                BindingKey::new(CLASS_CLIENT_DUID).context("class client DUID")?,
                class_binding,
                0,
            )
            .context("inserting the class client's binding")?;
        let reports = fp
            .take_events()
            .context("the renewal reports' ring buffer")?;
        Ok(Bench { fp, reports })
    }

    /// Checks that `frame` is answered (XDP_TX and, in bench mode, the request restored).
    pub fn check_answered(&self, name: &str, frame: &[u8]) -> Result<()> {
        let out = self.fp.test_run(frame, LO, 1)?;
        if out.verdict != XDP_TX {
            bail!(
                "{name}: the fast path did not answer (verdict {}, expected XDP_TX)",
                out.verdict
            );
        }
        if out.frame != frame {
            bail!("{name}: bench mode should restore the request after answering");
        }
        Ok(())
    }

    /// Kernel-measured ns per run of the fast path on `frame`, `repeat` times.
    pub fn fast_ns(&self, frame: &[u8], repeat: u32) -> Result<f64> {
        let out = self.fp.test_run(frame, LO, repeat)?;
        if out.verdict != XDP_TX {
            bail!("fast path verdict {} during the run", out.verdict);
        }
        Ok(duration_ns(out.duration))
    }

    /// The same for one of the floor programs (`names::LOOKUP_FLOOR_PROGRAM`,
    /// `RENEW_FLOOR_PROGRAM`), on a frame that starts with the measured client's binding key, so
    /// that its lookup hits as the fast path's does.
    pub fn floor_ns(&self, program: &'static str, repeat: u32) -> Result<f64> {
        let frame = key_frame_for_client()?;
        let out = test_run(self.fp.xdp_program(program)?, &frame, LO, repeat)?;
        if out.verdict != XDP_TX {
            bail!(
                "{program}: verdict {} (expected XDP_TX: the measured client's binding is in the map)",
                out.verdict
            );
        }
        Ok(duration_ns(out.duration))
    }

    /// Empties the renewal reports' ring buffer.
    pub fn drain_reports(&mut self) {
        while self.reports.next().is_some() {}
    }

    /// The same for the trivial XDP_PASS program.
    pub fn trivial_ns(&self, frame: &[u8], repeat: u32) -> Result<f64> {
        let out = test_run(
            self.fp.xdp_program(dhcp_common::maps::TRIVIAL_PROGRAM)?,
            frame,
            LO,
            repeat,
        )?;
        if out.verdict != XDP_PASS {
            bail!("trivial program verdict {}", out.verdict);
        }
        Ok(duration_ns(out.duration))
    }
}

/// The floor programs' frame: the measured client's binding key as the kernel sees it
/// (`#[repr(C)]`, no implicit padding), then zeros.
pub fn key_frame_for_client() -> Result<Vec<u8>> {
    let key = BindingKey::new(CLIENT_DUID).context("client DUID")?;
    let mut bytes = vec![key.duid_len];
    bytes.extend_from_slice(&key._pad);
    bytes.extend_from_slice(&key.duid);
    bytes.resize(128, 0);
    Ok(bytes)
}

fn duration_ns(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

/// Median of `values` (which must not be empty).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// One measured case: medians over rounds, and every round.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaseResult {
    pub name: String,
    pub fast_ns: f64,
    pub trivial_ns: f64,
    pub ratio: f64,
    pub fast_rounds: Vec<f64>,
    pub trivial_rounds: Vec<f64>,
}

/// Measures `frame`: `rounds` alternations of trivial and fast path, `repeat` runs each.
pub fn measure(
    bench: &Bench,
    name: &str,
    frame: &[u8],
    repeat: u32,
    rounds: usize,
) -> Result<CaseResult> {
    bench.check_answered(name, frame)?;
    let mut fast = Vec::with_capacity(rounds);
    let mut trivial = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        trivial.push(bench.trivial_ns(frame, repeat)?);
        fast.push(bench.fast_ns(frame, repeat)?);
    }
    let fast_ns = median(&fast);
    let trivial_ns = median(&trivial);
    Ok(CaseResult {
        name: name.to_string(),
        fast_ns,
        trivial_ns,
        ratio: fast_ns / trivial_ns.max(1.0),
        fast_rounds: fast,
        trivial_rounds: trivial,
    })
}

/// Key of fill client `index`.
pub fn fill_key(index: u32) -> BindingKey {
    BindingKey::new(&wire::client_duid(index)).expect("a 10-byte DUID fits the key")
}

/// Pushes fill clients `0..count` into the binding map one BPF_MAP_UPDATE_ELEM at a time (what a
/// controller doing `insert` per binding costs). Calls `progress` every 65 536 entries.
pub fn fill_one_by_one(
    fp: &mut FastPath,
    count: u32,
    mut progress: impl FnMut(u32),
) -> Result<Duration> {
    let mut map = fp.bindings_mut()?;
    let start = Instant::now();
    for index in 0..count {
        map.insert(
            fill_key(index),
            binding(na_addr(index), pd_prefix(index), 1_000_000),
            0,
        )
        .with_context(|| format!("inserting binding {index}"))?;
        if index & 0xffff == 0 {
            progress(index);
        }
    }
    Ok(start.elapsed())
}

/// Removes fill clients `0..count` (between the two fill methods).
pub fn clear_fill(fp: &mut FastPath, count: u32) -> Result<()> {
    let mut map = fp.bindings_mut()?;
    for index in 0..count {
        map.remove(&fill_key(index))
            .with_context(|| format!("removing binding {index}"))?;
    }
    Ok(())
}

/// `union bpf_attr` for the BPF_MAP_*_BATCH commands.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// Pushes fill clients `0..count` with BPF_MAP_UPDATE_BATCH, `chunk` per syscall (aya 0.14 has
/// no batch API; the kernel has had it for hash maps since 5.6).
pub fn fill_batched(fp: &mut FastPath, count: u32, chunk: u32) -> Result<Duration> {
    let map = fp.bindings_mut()?;
    let fd = map.map().fd().as_fd().as_raw_fd();
    let start = Instant::now();
    let mut keys = Vec::with_capacity(chunk as usize);
    let mut values = Vec::with_capacity(chunk as usize);
    let mut next = 0u32;
    while next < count {
        let end = count.min(next.saturating_add(chunk));
        keys.clear();
        values.clear();
        for index in next..end {
            keys.push(fill_key(index));
            values.push(binding(na_addr(index), pd_prefix(index), 1_000_000));
        }
        let mut attr = BatchAttr {
            keys: keys.as_ptr() as u64,
            values: values.as_ptr() as u64,
            count: keys.len() as u32,
            map_fd: fd as u32,
            ..Default::default()
        };
        // SAFETY: attr points at `keys`/`values`, which live across the call and hold `count`
        // entries of exactly the map's key and value sizes (both are the map's #[repr(C)] types).
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_UPDATE_BATCH,
                &mut attr as *mut BatchAttr,
                std::mem::size_of::<BatchAttr>() as u32,
            )
        };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            bail!(
                "BPF_MAP_UPDATE_BATCH at binding {next}: {err} ({} of {} written)",
                attr.count,
                keys.len()
            );
        }
        next = end;
    }
    Ok(start.elapsed())
}

/// What the kernel says about the binding map (`/proc/self/fdinfo/<fd>`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct MapMemory {
    pub memlock_bytes: u64,
    pub max_entries: u64,
    pub key_size: u64,
    pub value_size: u64,
    pub map_flags: u64,
}

pub fn map_memory(fp: &mut FastPath) -> Result<MapMemory> {
    let map = fp.bindings_mut()?;
    let fd = map.map().fd().as_fd().as_raw_fd();
    let path = format!("/proc/self/fdinfo/{fd}");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| -> Result<u64> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .with_context(|| format!("{path} has no {name}"))?;
        let value = line.trim();
        if let Some(hex) = value.strip_prefix("0x") {
            Ok(u64::from_str_radix(hex, 16)?)
        } else {
            Ok(value.parse()?)
        }
    };
    Ok(MapMemory {
        memlock_bytes: field("memlock:")?,
        max_entries: field("max_entries:")?,
        key_size: field("key_size:")?,
        value_size: field("value_size:")?,
        map_flags: field("map_flags:")?,
    })
}

/// The kernel's preallocated hash map layout (kernel/bpf/hashtab.c, 6.x): every entry is a
/// `struct htab_elem` header (hash-list node 16 B, free-list/LRU union 24 B, hash 4 B, padded to
/// 48 B) followed by the key and the value, each rounded up to 8 bytes; every bucket is a list
/// head plus a lock (16 B), one bucket per entry rounded up to a power of two.
pub fn htab_entry_bytes(key_size: u64, value_size: u64) -> (u64, u64) {
    let round8 = |v: u64| v.div_ceil(8) * 8;
    (48 + round8(key_size) + round8(value_size), 16)
}

/// Ns per run with `repeat` = 1 over `frames` (one syscall each): the per-run timer overhead is
/// included, the same for both programs, so the difference is what the fast path costs when its
/// binding is not in cache.
pub fn single_runs(bench: &Bench, frames: &[Vec<u8>], trivial: bool) -> Result<f64> {
    let mut total = 0.0;
    for frame in frames {
        total += if trivial {
            bench.trivial_ns(frame, 1)?
        } else {
            bench.fast_ns(frame, 1)?
        };
    }
    Ok(total / frames.len().max(1) as f64)
}

/// Renew frames of `count` fill clients spread over `0..population`, direct.
pub fn fill_client_renews(count: u32, population: u32) -> Vec<Vec<u8>> {
    let step = (population / count.max(1)).max(1);
    (0..count)
        .map(|i| {
            let index = (i.wrapping_mul(step).wrapping_add(i / 7)) % population.max(1);
            direct(renew(
                XID,
                &wire::client_duid(index),
                SERVER_DUID,
                na_addr(index),
                pd_prefix(index),
            ))
            .encode()
        })
        .collect()
}

/// The fast-path program's size once loaded.
#[derive(Debug, Clone, Copy)]
pub struct ProgramSize {
    /// Instructions after the kernel's translation (`xlated`, 8 bytes each).
    pub translated: u32,
    /// Instructions the verifier processed to accept it (kernel 5.16 and later; else 0).
    pub verified: u32,
}

/// Loads `object` without pins and reads its fast-path program's size from the kernel.
pub fn program_size(object: &[u8]) -> Result<ProgramSize> {
    let fp = FastPath::load_object(object, None, 1).context("loading the XDP object")?;
    let info = fp.program()?.info()?;
    Ok(ProgramSize {
        translated: info.size_translated().unwrap_or(0) / 8,
        verified: info.verified_instruction_count().unwrap_or(0),
    })
}
