//! XDP fast path for DHCPv6.
//!
//! Answers Renew, Rebind, Solicit from known clients and Information-Request straight from BPF
//! maps the controller fills, producing the reply the controller would send, byte for byte
//! (docs/fastpath.md). Everything it cannot answer exactly is passed on untouched.
//!
//! Shape: the entry copies the frame into a per-CPU scratch buffer (`bpf_xdp_load_bytes`), parses
//! and builds the reply there with masked offsets (every access is in bounds by construction, so
//! the verifier needs no per-access proof), then resizes the frame and writes the reply back
//! (`bpf_xdp_adjust_head`/`_tail` + `bpf_xdp_store_bytes`). One exit counts every verdict by
//! reason.
#![no_std]
#![no_main]
// For `opaque`: an empty asm statement is the only way to hide a value's range from LLVM.
#![feature(asm_experimental_arch)]

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{lpm_trie::Key, Array, HashMap, LpmTrie, PerCpuArray, RingBuf},
    helpers::{
        bpf_ktime_get_coarse_ns, bpf_xdp_adjust_head, bpf_xdp_adjust_tail, bpf_xdp_load_bytes,
        bpf_xdp_store_bytes,
    },
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use dhcp_common::{
    dhcpv6::*, stat, BindingKey, BindingValue, GlobalConfig, IfaceConfig, PassBudget, RenewalEvent,
    StatCounter, SubnetConfig, BINDING_HAS_NA, BINDING_HAS_PD, DEFAULT_MAX_BINDINGS, FAST_DUID_MAX,
    FAST_INTERFACE_ID_MAX, FAST_OPTION_MAX, FAST_SERVER_DUID_MAX, MAX_IFACES, MAX_SUBNETS,
};

#[btf_map]
static BINDINGS: HashMap<BindingKey, BindingValue, { DEFAULT_MAX_BINDINGS as usize }> =
    HashMap::new();
#[btf_map]
static SUBNETS: Array<SubnetConfig, { MAX_SUBNETS as usize }> = Array::new();
#[btf_map]
static IFACES: HashMap<u32, IfaceConfig, { MAX_IFACES as usize }> = HashMap::new();
#[btf_map]
static CONFIG: Array<GlobalConfig, 1> = Array::new();
#[btf_map]
static LINKS: LpmTrie<[u8; 16], u16, { MAX_SUBNETS as usize }> = LpmTrie::new();
#[btf_map]
static STATS: PerCpuArray<StatCounter, { stat::COUNT as usize }> = PerCpuArray::new();
#[btf_map]
static PASS_BUDGET: PerCpuArray<PassBudget, 1> = PerCpuArray::new();
#[btf_map]
static EVENTS: RingBuf<RenewalEvent, { 1 << 22 }> = RingBuf::new();
#[btf_map]
static SCRATCH: PerCpuArray<Scratch, 1> = PerCpuArray::new();

/// Frames up to this many bytes are considered; longer ones are passed on.
const FRAME_MAX: usize = 1023;
/// Every offset into a scratch buffer is masked with this; the buffers are twice as large, so a
/// masked offset plus any fixed-size access (at most `BUF - MASK - 1` bytes) stays inside.
const MASK: usize = 1023;
const BUF: usize = 2048;

#[repr(C)]
pub struct Scratch {
    req: [u8; BUF],
    out: [u8; BUF],
    /// The binding key of the request (a map value may serve as a lookup key; the stack is small).
    key: BindingKey,
    link_key: Key<[u8; 16]>,
    st: State,
}

const ETH_HLEN: usize = 14;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const MAX_VLANS: usize = 2;
const IPV6_HLEN: usize = 40;
const MAX_EXT_HDRS: usize = 4;
const UDP_HLEN: usize = 8;
/// Field offsets in the IPv6 header (RFC 8200 section 3).
mod ip6 {
    pub const PAYLOAD_LEN: usize = 4;
    pub const NEXT_HEADER: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC: usize = 8;
    pub const DST: usize = 24;
}
/// Field offsets in the UDP header (RFC 768).
mod udp {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LEN: usize = 4;
    pub const CHECKSUM: usize = 6;
}
const IPPROTO_UDP: u8 = 17;
const REPLY_HOP_LIMIT: u8 = 64;
const RELAY_HLEN: usize = 34;
const MAX_OPTIONS: usize = 16;
const MAX_RELAY_OPTIONS: usize = 8;
const MAX_ORO: usize = 16;
const IA_NA_BARE: usize = 12;
const IA_NA_WITH_ADDR: usize = 12 + 4 + 24;
const IA_PD_BARE: usize = 12;
const IA_PD_WITH_PREFIX: usize = 12 + 4 + 25;

type Reason = u32;

/// What a parse of the client's message found. Offsets point into `Scratch::req`.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Request {
    /// Bounds of the client message (inside the Relay-Forw when relayed).
    start: usize,
    end: usize,
    client_id_off: usize,
    client_id_len: usize,
    server_id_off: usize,
    server_id_len: usize,
    oro_off: usize,
    oro_len: usize,
    na_iaid: u32,
    na_addr_off: usize,
    pd_iaid: u32,
    pd_prefix_off: usize,
    msg_type: u8,
    client_ids: u8,
    server_ids: u8,
    /// Number of IA_NA / IA_PD options seen.
    na_count: u8,
    pd_count: u8,
    /// 1 when the IA_NA carries an IAADDR / the IA_PD an IAPREFIX.
    na_has_addr: u8,
    pd_has_prefix: u8,
    pd_len: u8,
    /// 1 when IA_NA came before IA_PD in the request.
    na_first: u8,
    rapid_commit: u8,
    oros: u8,
}

/// The relay hop around a relayed request. Offsets point into `Scratch::req`.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Relay {
    /// Offset of the Relay-Forw header.
    off: usize,
    interface_id_off: usize,
    interface_id_len: usize,
    has_interface_id: u8,
}

/// Load-time switch for `cargo xtask bench` only (0 in production, where the verifier prunes the
/// branch): after answering, put the request back so BPF_PROG_TEST_RUN's `repeat` runs the whole
/// fast path every time instead of re-reading its own reply. It adds a resize and a copy, so the
/// figure it gives is an upper bound.
#[unsafe(no_mangle)]
static BENCH_RESTORE_REQUEST: u8 = 0;

/// The floor the benchmark compares against: the cheapest possible XDP program.
#[xdp]
pub fn xdp_pass(_ctx: XdpContext) -> u32 {
    xdp_action::XDP_PASS
}

/// The benchmark's second and third references: the kernel work any Renew answer must do, and
/// nothing else, so that the fast path's figure can be read against what cannot be avoided.
/// `xdp_lookup_floor` only looks the client up (by the `BindingKey` at the start of the frame);
/// `xdp_renew_floor` also reads the clock, moves the expiry on and reports it on the ring buffer,
/// as the fast path does. Neither parses, writes a reply or sums a checksum.
#[xdp]
pub fn xdp_lookup_floor(ctx: XdpContext) -> u32 {
    match floor_binding(&ctx) {
        Some(_) => xdp_action::XDP_TX,
        None => xdp_action::XDP_PASS,
    }
}

#[xdp]
pub fn xdp_renew_floor(ctx: XdpContext) -> u32 {
    let Some(binding) = floor_binding(&ctx) else {
        return xdp_action::XDP_PASS;
    };
    let Some(cfg) = CONFIG.get_ptr(0) else {
        return xdp_action::XDP_PASS;
    };
    // SAFETY: a map value; the controller writes it whole.
    let now_ns = unsafe { bpf_ktime_get_coarse_ns().wrapping_add((*cfg).clock_to_unix_ns) };
    let expires = now_ns / 1_000_000_000 + 3600;
    // SAFETY: a map value of ours; concurrent writers only ever store whole expiries.
    unsafe { (*binding).expires = expires };
    if let Some(mut entry) = EVENTS.reserve(0) {
        let ev = entry.as_mut_ptr();
        // SAFETY: a reserved, 8-byte aligned `RenewalEvent`.
        unsafe {
            (*ev).expires = expires;
            (*ev).at_ns = now_ns;
        }
        entry.submit(0);
    }
    xdp_action::XDP_TX
}

/// The binding whose key the frame starts with.
#[inline(always)]
fn floor_binding(ctx: &XdpContext) -> Option<*mut BindingValue> {
    let start = ctx.data();
    if start + core::mem::size_of::<BindingKey>() > ctx.data_end() {
        return None;
    }
    // SAFETY: the key's bytes lie inside the frame (checked above); the helper only reads them.
    let key = unsafe { &*(start as *const BindingKey) };
    BINDINGS.get_ptr_mut(key)
}

#[xdp]
pub fn dhcp_xdp(ctx: XdpContext) -> u32 {
    let frame_len = (ctx.data_end() - ctx.data()) as u64;
    let (action, reason) = match try_dhcp_xdp(&ctx) {
        Ok(reason) => (xdp_action::XDP_TX, reason),
        Err(reason) => (xdp_action::XDP_PASS, reason),
    };
    let (action, reason) = if action == xdp_action::XDP_PASS && reason >= stat::PASS_MALFORMED {
        rate_limit_pass(reason)
    } else {
        (action, reason)
    };
    if let Some(counter) = STATS.get_ptr_mut(reason) {
        // SAFETY: per-CPU slot, only this CPU touches it while the program runs.
        unsafe {
            (*counter).packets += 1;
            (*counter).bytes += frame_len;
        }
    }
    action
}

/// Applies the per-CPU budget of DHCPv6 messages passed on to the controller, so a flood of
/// Solicits from random DUIDs cannot starve it. Beyond the budget the frame is dropped.
#[inline(always)]
fn rate_limit_pass(reason: Reason) -> (u32, Reason) {
    let Some(cfg) = CONFIG.get_ptr(0) else {
        return (xdp_action::XDP_PASS, reason);
    };
    let rate = unsafe { (*cfg).pass_rate_per_cpu };
    if rate == 0 {
        return (xdp_action::XDP_PASS, reason);
    }
    let Some(budget) = PASS_BUDGET.get_ptr_mut(0) else {
        return (xdp_action::XDP_PASS, reason);
    };
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    // SAFETY: per-CPU slot.
    unsafe {
        if now.wrapping_sub((*budget).window_start_ns) >= 1_000_000_000 {
            (*budget).window_start_ns = now;
            (*budget).passed = 0;
        }
        if (*budget).passed >= rate {
            return (xdp_action::XDP_DROP, stat::DROP_RATE_LIMIT);
        }
        (*budget).passed += 1;
    }
    (xdp_action::XDP_PASS, reason)
}

// ---- masked scratch access ----------------------------------------------------------------

/// Returns `v` unchanged, but LLVM can no longer prove anything about it, so the `& MASK` that
/// follows survives optimisation and the verifier sees every offset bounded (libbpf's
/// `barrier_var`).
#[inline(always)]
fn opaque(mut v: usize) -> usize {
    // SAFETY: an empty asm block that only "modifies" the register holding `v`.
    unsafe {
        core::arch::asm!("{0} = {0}", inout(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// A compiler barrier: LLVM must assume any memory changed, so values derived from memory are
/// stored before it and reloaded after.
#[inline(always)]
fn clobber() {
    // SAFETY: an empty asm block.
    unsafe { core::arch::asm!("", options(nostack, preserves_flags)) };
}

#[inline(always)]
fn rd8(b: *const u8, off: usize) -> u8 {
    // SAFETY: `off & MASK` < BUF.
    unsafe { *b.add(opaque(off) & MASK) }
}
#[inline(always)]
fn rd16(b: *const u8, off: usize) -> u16 {
    // SAFETY: `off & MASK` + 2 < BUF; unaligned loads are allowed (see `rd64`).
    u16::from_be(unsafe { core::ptr::read_unaligned(b.add(opaque(off) & MASK) as *const u16) })
}
#[inline(always)]
fn rd32(b: *const u8, off: usize) -> u32 {
    // SAFETY: as `rd16`.
    u32::from_be(unsafe { core::ptr::read_unaligned(b.add(opaque(off) & MASK) as *const u32) })
}
#[inline(always)]
fn wr8(b: *mut u8, off: usize, v: u8) {
    // SAFETY: `off & MASK` < BUF.
    unsafe { *b.add(opaque(off) & MASK) = v }
}
#[inline(always)]
fn wr16(b: *mut u8, off: usize, v: u16) {
    // SAFETY: as `rd16`.
    unsafe { core::ptr::write_unaligned(b.add(opaque(off) & MASK) as *mut u16, v.to_be()) }
}
#[inline(always)]
fn wr32(b: *mut u8, off: usize, v: u32) {
    // SAFETY: as `rd16`.
    unsafe { core::ptr::write_unaligned(b.add(opaque(off) & MASK) as *mut u32, v.to_be()) }
}
/// Copies exactly `N` bytes (a fixed size the verifier can see); callers advance by the real
/// length, and later writes overwrite the excess.
#[inline(always)]
fn copy_fixed<const N: usize>(dst: *mut u8, doff: usize, src: *const u8, soff: usize) {
    // SAFETY: both masked offsets plus N (≤ BUF - MASK - 1) stay inside their buffers.
    unsafe { copy::<N>(dst.add(opaque(doff) & MASK), src.add(opaque(soff) & MASK)) }
}
/// A pointer to `off` in a scratch buffer. Fields around it are then reached at constant
/// offsets (one masked add per region instead of one per field); the slack after `MASK` covers
/// any constant offset used below 1 KiB.
#[inline(always)]
fn at(b: *mut u8, off: usize) -> *mut u8 {
    // SAFETY: `off & MASK` < BUF.
    unsafe { b.add(opaque(off) & MASK) }
}
#[inline(always)]
fn put8(p: *mut u8, k: usize, v: u8) {
    // SAFETY: `p` comes from `at`, `k` is a small constant.
    unsafe { *p.add(k) = v }
}
#[inline(always)]
fn put16(p: *mut u8, k: usize, v: u16) {
    // SAFETY: as `put8`; unaligned stores are allowed (see `rd64`).
    unsafe { core::ptr::write_unaligned(p.add(k) as *mut u16, v.to_be()) }
}
#[inline(always)]
fn put32(p: *mut u8, k: usize, v: u32) {
    // SAFETY: as `put16`.
    unsafe { core::ptr::write_unaligned(p.add(k) as *mut u32, v.to_be()) }
}
#[inline(always)]
fn get16(p: *const u8, k: usize) -> u16 {
    // SAFETY: as `put16`.
    u16::from_be(unsafe { core::ptr::read_unaligned(p.add(k) as *const u16) })
}
#[inline(always)]
fn get32(p: *const u8, k: usize) -> u32 {
    // SAFETY: as `put16`.
    u32::from_be(unsafe { core::ptr::read_unaligned(p.add(k) as *const u32) })
}
/// Copies one `T` at byte `k`, unaligned.
#[inline(always)]
fn mv<T>(dst: *mut u8, src: *const u8, k: usize) {
    // SAFETY: callers keep `k + size_of::<T>()` within both regions; unaligned access is allowed.
    unsafe {
        core::ptr::write_unaligned(
            dst.add(k) as *mut T,
            core::ptr::read_unaligned(src.add(k) as *const T),
        )
    }
}
/// Copies `N` bytes between two such pointers (non-overlapping), in 8-, 4- and 2-byte moves: a
/// `copy_nonoverlapping` of a byte array becomes one load and one store per byte on this
/// target, whatever the CPU allows. A tail shorter than the word is copied by a last move that
/// overlaps the previous one (same bytes, written twice).
#[inline(always)]
fn copy<const N: usize>(dst: *mut u8, src: *const u8) {
    // Both pointers come from `at` (or are map-value fields at least N long); every move below
    // stays within the first N bytes.
    let mut k = 0;
    while k + 8 <= N {
        mv::<u64>(dst, src, k);
        k += 8;
    }
    if k == N {
        return;
    }
    if N >= 8 {
        mv::<u64>(dst, src, N - 8);
    } else if N >= 4 {
        mv::<u32>(dst, src, 0);
        mv::<u32>(dst, src, N - 4);
    } else if N >= 2 {
        mv::<u16>(dst, src, 0);
        mv::<u16>(dst, src, N - 2);
    } else {
        mv::<u8>(dst, src, 0);
    }
}
/// Copies `len` (≤ N) bytes, 8 at a time; at most 7 bytes past `len` are written and later
/// overwritten or left beyond the frame's end.
#[inline(always)]
fn copy_upto<const N: usize>(dst: *mut u8, src: *const u8, len: usize) {
    for w in 0..N / 8 {
        if w * 8 >= len {
            break;
        }
        // SAFETY: w * 8 + 8 ≤ N, within both buffers.
        unsafe {
            let word = core::ptr::read_unaligned(src.add(w * 8) as *const u64);
            core::ptr::write_unaligned(dst.add(w * 8) as *mut u64, word);
        }
    }
}

/// An unaligned 8-byte load (the program is built with misaligned access allowed: x86 and arm64
/// handle it, and the verifier permits it for map values).
#[inline(always)]
fn rd64(b: *const u8, off: usize) -> u64 {
    // SAFETY: `off & MASK` + 8 < BUF.
    unsafe { core::ptr::read_unaligned(b.add(opaque(off) & MASK) as *const u64) }
}
/// Mask keeping the first `n` bytes (0..=8) of a little-endian 8-byte load, without a branch.
#[inline(always)]
fn keep_bytes(n: usize) -> u64 {
    let n = if n > 8 { 8 } else { n };
    // (1 << 64) is not a thing: build it from two shifts of at most 32 each.
    let bits = (n * 8) as u64;
    let half = bits / 2;
    ((1u64 << half) << (bits - half)).wrapping_sub(1)
}
#[inline(always)]
fn eq_fixed<const N: usize>(a: *const u8, aoff: usize, b: *const u8, boff: usize) -> bool {
    // Word by word, accumulated through `opaque` so LLVM cannot turn it into a branch per word.
    let mut diff = 0usize;
    for w in 0..N / 8 {
        diff = opaque(diff | (rd64(a, aoff + w * 8) ^ rd64(b, boff + w * 8)) as usize);
    }
    diff == 0
}
/// Compares the first `len` (≤ N) bytes of two buffers.
#[inline(always)]
fn eq_prefix<const N: usize>(
    a: *const u8,
    aoff: usize,
    b: *const u8,
    boff: usize,
    len: usize,
) -> bool {
    let mut diff = 0usize;
    for w in 0..N / 8 {
        let keep = keep_bytes(len.saturating_sub(w * 8));
        diff = opaque(diff | ((rd64(a, aoff + w * 8) ^ rd64(b, boff + w * 8)) & keep) as usize);
    }
    diff == 0
}

/// Stores a zero byte. Adjacent plain stores of zero are merged into a `memset` call, which the BPF
/// target turns into a byte-wise loop in a subprogram; a volatile store stays one instruction.
#[inline(always)]
fn zero(v: &mut u8) {
    // SAFETY: a plain store through a valid reference.
    unsafe { core::ptr::write_volatile(v, 0) }
}

// ---- checksum --------------------------------------------------------------------------------

/// Longest range `csum_add` sums: a whole frame (the IPv6 addresses and the UDP segment lie in it).
const CSUM_MAX: usize = 1024;

/// Ones-complement sum of `len` (≤ `CSUM_MAX`) bytes of `b` from `off`, chained onto `seed`, in
/// the program itself: the two 32-bit halves of each 8-byte word added into a 64-bit accumulator
/// (at most 2 * 128 additions of < 2^32: no carry lost), folded at the end. No helper call.
/// Bytes after the end up to the next multiple of 8 must be zero (callers zero them). Loads are
/// 8 bytes wide on purpose: the reply is summed right after it was written in small pieces, and
/// each load not covered by one earlier store waits for the store buffer, so fewer, wider loads
/// beat narrower ones that need no splitting.
#[inline(always)]
fn csum_add(b: *mut u8, off: usize, len: usize, seed: u32) -> u32 {
    let p = at(b, off);
    let mut acc = seed as u64;
    for w in 0..CSUM_MAX / 8 {
        if w * 8 >= len {
            break;
        }
        // SAFETY: `p` is at most MASK into a BUF-byte buffer and w * 8 + 8 ≤ CSUM_MAX, so the
        // word lies inside; unaligned loads are allowed (see `rd64`).
        let x = unsafe { core::ptr::read_unaligned(p.add(w * 8) as *const u64) };
        acc += (x & 0xffff_ffff) + (x >> 32);
    }
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc as u32
}
/// As `csum_add`, for data not written just before (the request, copied in at the start): 32-bit
/// zero-extending loads, four per step, need no splitting. The 16 bytes after the end must be
/// zero.
#[inline(always)]
fn csum_add_loaded(b: *mut u8, off: usize, len: usize, seed: u32) -> u32 {
    let p = at(b, off);
    let mut acc = seed as u64;
    for step in 0..CSUM_MAX / 16 {
        let k = step * 16;
        if k >= len {
            break;
        }
        for i in 0..4 {
            // SAFETY: as in `csum_add`, k + 16 ≤ CSUM_MAX.
            acc += unsafe { core::ptr::read_unaligned(p.add(k + i * 4) as *const u32) } as u64;
        }
    }
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc as u32
}
/// Zeroes the 8 bytes from `off` (the padding after a range `csum_add` sums).
#[inline(always)]
fn zero_pad(b: *mut u8, off: usize) {
    // SAFETY: `at` leaves more than 8 bytes of the buffer after its pointer.
    unsafe { core::ptr::write_unaligned(at(b, off) as *mut u64, 0) };
}
#[inline(always)]
fn csum_fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}
/// Sum of the IPv6 UDP pseudo-header alone (addresses, upper-layer length, next header), not
/// folded: what a sender leaving the checksum to offload puts in the field, once folded.
#[inline(always)]
fn pseudo_header_sum(b: *mut u8, ip_off: usize, udp_len: usize) -> u32 {
    let tail = (udp_len as u32).to_be() as u64 + (IPPROTO_UDP as u32).to_be() as u64;
    let seed = ((tail & 0xffff_ffff) + (tail >> 32)) as u32;
    csum_add_loaded(b, ip_off + ip6::SRC, 32, seed)
}

/// IPv6 UDP pseudo-header (addresses at `ip_off + ip6::SRC`) plus the UDP segment at `udp_off`.
#[inline(always)]
fn udp_csum<const LOADED: bool>(b: *mut u8, ip_off: usize, udp_off: usize, udp_len: usize) -> u16 {
    let sum = |off, len, seed| {
        if LOADED {
            csum_add_loaded(b, off, len, seed)
        } else {
            csum_add(b, off, len, seed)
        }
    };
    // The rest of the pseudo-header (upper-layer length, next header) as two 32-bit words in
    // memory order, summed with the end-around carry: no helper call needed.
    let tail = (udp_len as u32).to_be() as u64 + (IPPROTO_UDP as u32).to_be() as u64;
    let seed = ((tail & 0xffff_ffff) + (tail >> 32)) as u32;
    if udp_off == ip_off + IPV6_HLEN {
        // Addresses and segment are contiguous: one range.
        return csum_fold(sum(ip_off + ip6::SRC, 32 + udp_len, seed));
    }
    let seed = sum(ip_off + ip6::SRC, 32, seed);
    csum_fold(sum(udp_off, udp_len, seed))
}

// ---- the fast path ---------------------------------------------------------------------------

/// Everything one run learns, kept in the per-CPU scratch slot (the BPF stack is 512 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct State {
    r: Request,
    relay: Relay,
    /// Copy of the client's binding (when `has_binding`).
    binding: BindingValue,
    /// The interface's MAC and the reply's IPv6 source (chosen in `decide`, copied so the build
    /// needs no second lookup).
    mac: [u8; 8],
    source: [u8; 16],
    frame_len: usize,
    l3: usize,
    l4: usize,
    msg: usize,
    new_len: usize,
    now_ns: u64,
    new_expires: u64,
    ifindex: u32,
    subnet_index: u32,
    relayed: u8,
    reply_type: u8,
    commits: u8,
    has_binding: u8,
    want_dns: u8,
    want_domain: u8,
    want_refresh: u8,
    reason: u8,
    renewed_ias: u8,
}

/// Stage result meaning "carry on" (every other value is a `stat` reason).
const GO_ON: u32 = u32::MAX;

#[inline(always)]
fn code(result: Result<(), Reason>) -> u32 {
    match result {
        Ok(()) => GO_ON,
        Err(reason) => reason,
    }
}

#[inline(always)]
fn try_dhcp_xdp(ctx: &XdpContext) -> Result<Reason, Reason> {
    let frame_len = ctx.data_end() - ctx.data();
    if frame_len < ETH_HLEN + IPV6_HLEN + UDP_HLEN + 4 {
        return Err(stat::PASS_NOT_DHCP);
    }
    if frame_len > FRAME_MAX {
        return Err(stat::PASS_TOO_BIG);
    }
    let sc = SCRATCH.get_ptr_mut(0).ok_or(stat::ABORTED)?;
    // SAFETY: the per-CPU scratch slot is ours for the duration of this run.
    let loaded = unsafe {
        bpf_xdp_load_bytes(
            ctx.ctx,
            0,
            (*sc).req.as_mut_ptr() as *mut _,
            frame_len as u32,
        )
    };
    if loaded != 0 {
        return Err(stat::ABORTED);
    }
    unsafe { (*sc).st.frame_len = frame_len };
    clobber();
    let c = stage_headers(sc);
    if c != GO_ON {
        return Err(c);
    }
    clobber();
    let c = stage_decide(ctx.ctx, sc);
    if c != GO_ON {
        return Err(c);
    }
    clobber();
    let c = stage_build(sc);
    if c != GO_ON {
        return Err(c);
    }
    let st = unsafe { &mut (*sc).st };
    let new_len = st.new_len;
    // Resize the frame and write the reply over it. A longer reply grows at the front: every
    // driver guarantees XDP_PACKET_HEADROOM (256 bytes) there, while the tailroom of a frame can
    // be next to nothing (a veth peer's small skb). A shorter one is trimmed at the tail.
    let delta = new_len as i32 - frame_len as i32;
    let resized = if delta > 0 {
        unsafe { bpf_xdp_adjust_head(ctx.ctx, -delta) }
    } else {
        unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) }
    };
    if resized != 0 {
        return Err(stat::PASS_NO_ROOM);
    }
    if new_len < ETH_HLEN + IPV6_HLEN + UDP_HLEN + 4 || new_len > FRAME_MAX {
        return Err(stat::ABORTED);
    }
    let stored = unsafe {
        bpf_xdp_store_bytes(ctx.ctx, 0, (*sc).out.as_mut_ptr() as *mut _, new_len as u32)
    };
    if stored != 0 {
        // The frame is already resized: it cannot be handed on as it was.
        return Err(stat::ABORTED);
    }
    if st.commits == 1 {
        // The map's expiry moved on in `stage_decide`; tell the controller so the store follows.
        // A full ring only delays durability of this renewal until the controller's next resync.
        if let Some(mut entry) = EVENTS.reserve(0) {
            let ev = entry.as_mut_ptr();
            // Field by field: a whole-struct write zeroes `_pad` with a byte-wise `memset` call.
            // SAFETY: `ev` is a reserved, 8-byte aligned `RenewalEvent`.
            unsafe {
                (*ev).expires = st.new_expires;
                (*ev).at_ns = st.now_ns;
                copy::<{ core::mem::size_of::<BindingKey>() }>(
                    core::ptr::addr_of_mut!((*ev).key) as *mut u8,
                    core::ptr::addr_of!((*sc).key) as *const u8,
                );
                (*ev).ifindex = st.ifindex;
                // `msg_type`, `relayed`, `ias` and the five padding bytes in one store.
                core::ptr::write_volatile(
                    core::ptr::addr_of_mut!((*ev).msg_type) as *mut u64,
                    st.r.msg_type as u64 | (st.relayed as u64) << 8 | (st.renewed_ias as u64) << 16,
                );
            }
            entry.submit(0);
        }
    }
    // SAFETY: a plain read of a load-time constant.
    if unsafe { core::ptr::read_volatile(&BENCH_RESTORE_REQUEST) } != 0 {
        let back = if delta > 0 {
            unsafe { bpf_xdp_adjust_head(ctx.ctx, delta) }
        } else {
            unsafe { bpf_xdp_adjust_tail(ctx.ctx, -delta) }
        };
        if back != 0
            || unsafe {
                bpf_xdp_store_bytes(
                    ctx.ctx,
                    0,
                    (*sc).req.as_mut_ptr() as *mut _,
                    frame_len as u32,
                )
            } != 0
        {
            return Err(stat::ABORTED);
        }
    }
    Ok(st.reason as Reason)
}

/// Ethernet (two VLAN tags at most), IPv6 (bounded extension headers), UDP to port 547 with a
/// valid checksum. Fills `l3`, `l4`, `msg` bounds.
#[inline(always)]
fn stage_headers(sc: *mut Scratch) -> u32 {
    code(headers(sc))
}

#[inline(always)]
fn headers(sc: *mut Scratch) -> Result<(), Reason> {
    let req = unsafe { (*sc).req.as_mut_ptr() };
    let st = unsafe { &mut (*sc).st };
    let frame_len = st.frame_len;
    let mut l3 = 12;
    let mut ethertype = rd16(req, l3);
    for _ in 0..MAX_VLANS {
        if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
            l3 += 4;
            ethertype = rd16(req, l3);
        }
    }
    if ethertype != ETH_P_IPV6 {
        return Err(stat::PASS_NOT_DHCP);
    }
    l3 += 2;
    if rd8(req, l3) >> 4 != 6 {
        return Err(stat::PASS_NOT_DHCP);
    }
    let ip_payload = rd16(req, l3 + ip6::PAYLOAD_LEN) as usize;
    if l3 + IPV6_HLEN + ip_payload > frame_len {
        return Err(stat::PASS_MALFORMED);
    }
    // Extension headers the kernel would walk past too; a fragment goes to the controller.
    let mut next = rd8(req, l3 + ip6::NEXT_HEADER);
    let mut l4 = l3 + IPV6_HLEN;
    for _ in 0..MAX_EXT_HDRS {
        if next == 0 || next == 43 || next == 60 {
            next = rd8(req, l4);
            l4 += (rd8(req, l4 + 1) as usize + 1) * 8;
        }
    }
    if next != IPPROTO_UDP {
        return Err(stat::PASS_NOT_DHCP);
    }
    if l4 + UDP_HLEN > frame_len || rd16(req, l4 + udp::DST_PORT) != SERVER_PORT {
        return Err(stat::PASS_NOT_DHCP);
    }
    let udp_len = rd16(req, l4 + udp::LEN) as usize;
    if udp_len < UDP_HLEN + 4 || l4 + udp_len != l3 + IPV6_HLEN + ip_payload {
        return Err(stat::PASS_MALFORMED);
    }
    // Zero what follows the segment (Ethernet padding, or nothing) for the checksum's last word.
    zero_pad(req, l4 + udp_len);
    zero_pad(req, l4 + udp_len + 8);
    // The kernel drops a bad checksum before the controller's socket sees it: so must we. A
    // sender on this host may have left the sum to offload (the field then holds only the
    // pseudo-header's sum, which the kernel trusts); that is passed on under its own reason.
    let check = rd16(req, l4 + udp::CHECKSUM);
    if check == 0 || udp_csum::<true>(req, l3, l4, udp_len) != 0 {
        if check == u16::from_be(!csum_fold(pseudo_header_sum(req, l3, udp_len))) {
            return Err(stat::PASS_CSUM_OFFLOAD);
        }
        return Err(stat::PASS_MALFORMED);
    }
    st.l3 = l3;
    st.l4 = l4;
    st.msg = l4 + UDP_HLEN;
    st.r.end = l4 + udp_len;
    Ok(())
}

/// Direct or relayed, which subnet, which message, which binding, and what to answer.
#[inline(always)]
fn stage_decide(ctx: *mut aya_ebpf::bindings::xdp_md, sc: *mut Scratch) -> u32 {
    code(decide(ctx, sc))
}

#[inline(always)]
fn decide(ctx: *mut aya_ebpf::bindings::xdp_md, sc: *mut Scratch) -> Result<(), Reason> {
    let req = unsafe { (*sc).req.as_mut_ptr() };
    let st = unsafe { &mut (*sc).st };
    let cfg = unsafe { &*CONFIG.get_ptr(0).ok_or(stat::ABORTED)? };
    if cfg.enabled == 0 || cfg.server_duid_len == 0 {
        return Err(stat::PASS_DISABLED);
    }
    st.ifindex = unsafe { (*ctx).ingress_ifindex };
    let iface = unsafe { &*IFACES.get_ptr(st.ifindex).ok_or(stat::PASS_DISABLED)? };
    if iface.enabled == 0 {
        return Err(stat::PASS_DISABLED);
    }
    copy::<6>(st.mac.as_mut_ptr(), iface.mac.as_ptr());

    let dhcp = st.msg;
    let dhcp_end = st.r.end;
    if rd8(req, dhcp) == MSG_RELAY_FORW {
        parse_relay(req, dhcp, dhcp_end, &mut st.relay, &mut st.r)?;
        // The key lives in scratch: an unaligned 8-byte copy into the stack would be refused.
        let key = unsafe { &mut (*sc).link_key };
        key.prefix_len = 128;
        copy_fixed::<16>(key.data.as_mut_ptr(), 0, req, dhcp + 2);
        st.subnet_index = *LINKS.get(key).ok_or(stat::PASS_WRONG_LINK)? as u32;
        st.relayed = 1;
        st.msg = st.r.start;
    } else {
        if iface.has_subnet == 0 {
            return Err(stat::PASS_WRONG_LINK);
        }
        st.subnet_index = iface.subnet as u32;
        st.relayed = 0;
        st.r.start = dhcp;
    }
    reply_source(req, st, iface)?;
    let subnet = unsafe {
        &*SUBNETS
            .get_ptr(st.subnet_index)
            .ok_or(stat::PASS_WRONG_LINK)?
    };
    if subnet.enabled == 0 {
        return Err(stat::PASS_WRONG_LINK);
    }

    parse_message(req, &mut st.r)?;
    let r = &st.r;
    if r.client_ids > 1 || r.server_ids > 1 || r.oros > 1 || r.na_count > 1 || r.pd_count > 1 {
        return Err(stat::PASS_UNSUPPORTED);
    }
    if r.server_ids == 1 && !server_id_matches(req, r, cfg) {
        return Err(stat::PASS_SERVER_ID);
    }
    let (reply_type, reason, commits) = match r.msg_type {
        MSG_INFORMATION_REQUEST => {
            if r.na_count + r.pd_count != 0 {
                return Err(stat::PASS_UNSUPPORTED);
            }
            (MSG_REPLY, stat::TX_INFORMATION_REQUEST, 0)
        }
        MSG_RENEW => {
            if r.server_ids != 1 {
                return Err(stat::PASS_SERVER_ID);
            }
            (MSG_REPLY, stat::TX_RENEW, 1)
        }
        MSG_REBIND => {
            if r.server_ids != 0 {
                return Err(stat::PASS_SERVER_ID);
            }
            (MSG_REPLY, stat::TX_REBIND, 1)
        }
        MSG_SOLICIT => {
            if r.server_ids != 0 {
                return Err(stat::PASS_SERVER_ID);
            }
            if r.rapid_commit == 1 && subnet.rapid_commit == 1 {
                (MSG_REPLY, stat::TX_SOLICIT_REPLY, 1)
            } else {
                (MSG_ADVERTISE, stat::TX_SOLICIT_ADVERTISE, 0)
            }
        }
        _ => return Err(stat::PASS_MSG_TYPE),
    };
    st.reply_type = reply_type;
    st.reason = reason as u8;
    st.commits = commits;

    // Requested options.
    st.want_dns = 0;
    st.want_domain = 0;
    st.want_refresh = 0;
    if r.oros == 1 {
        if r.oro_len > MAX_ORO * 2 || r.oro_len & 1 != 0 {
            return Err(stat::PASS_UNSUPPORTED);
        }
        for i in 0..MAX_ORO {
            if i * 2 < r.oro_len {
                let code = rd16(req, r.oro_off + i * 2);
                st.want_dns |= (code == OPT_DNS_SERVERS) as u8;
                st.want_domain |= (code == OPT_DOMAIN_LIST) as u8;
                st.want_refresh |= (code == OPT_INFORMATION_REFRESH_TIME) as u8;
            }
        }
    }

    st.has_binding = 0;
    if r.msg_type == MSG_INFORMATION_REQUEST {
        if r.client_ids == 1 && r.client_id_len > FAST_DUID_MAX {
            return Err(stat::PASS_UNSUPPORTED);
        }
        return Ok(());
    }
    if r.client_ids != 1 {
        return Err(stat::PASS_MALFORMED);
    }
    if r.client_id_len > FAST_DUID_MAX || r.client_id_len == 0 {
        return Err(stat::PASS_DUID_TOO_LONG);
    }
    // The clock only matters from here on (an Information-Request needs none).
    st.now_ns = unsafe { bpf_ktime_get_coarse_ns() }.wrapping_add(cfg.clock_to_unix_ns);
    let now = st.now_ns / 1_000_000_000;
    let key = unsafe { &mut (*sc).key };
    // `duid_len` and the three padding bytes in one store (see `zero`).
    // SAFETY: the key starts with `duid_len: u8, _pad: [u8; 3]`, 4-byte aligned.
    unsafe {
        core::ptr::write_volatile(key as *mut BindingKey as *mut u32, r.client_id_len as u32)
    };
    let key_words = key.duid.as_mut_ptr();
    for w in 0..FAST_DUID_MAX / 8 {
        let word =
            rd64(req, r.client_id_off + w * 8) & keep_bytes(r.client_id_len.saturating_sub(w * 8));
        // SAFETY: the key's DUID array is FAST_DUID_MAX bytes long, a multiple of 8.
        unsafe { core::ptr::write_unaligned(key_words.add(w * 8) as *mut u64, word) };
    }
    let binding = BINDINGS.get_ptr_mut(&*key).ok_or(stat::PASS_UNKNOWN_DUID)?;
    let b = unsafe { &mut *binding };
    if b.subnet as u32 != st.subnet_index {
        return Err(stat::PASS_WRONG_LINK);
    }
    if b.expires <= now {
        return Err(stat::PASS_EXPIRED);
    }
    // Renew and Rebind must name the bound address/prefix; a Solicit may leave it out.
    if !ias_match(req, r, b, r.msg_type != MSG_SOLICIT) {
        return Err(stat::PASS_IA_MISMATCH);
    }
    // SAFETY: a map value and a scratch field, both `BindingValue`s, never the same memory (a
    // plain assignment would compile to a byte-wise `memmove` call).
    unsafe { core::ptr::copy_nonoverlapping(b as *const BindingValue, &mut st.binding, 1) };
    st.has_binding = 1;
    if commits == 1 {
        st.new_expires = now + subnet.valid_lifetime as u64;
        // Only promise what the store is sure to honour if this box dies before the renewal is
        // durable; beyond that the controller answers (after making it durable).
        if st.new_expires > b.durable_until {
            return Err(stat::PASS_NOT_DURABLE);
        }
        st.renewed_ias = (if r.na_count == 1 { BINDING_HAS_NA } else { 0 })
            | (if r.pd_count == 1 { BINDING_HAS_PD } else { 0 });
        // The map's expiry is the earliest of the binding's IAs: it moves on only when all of
        // them were renewed (the controller re-reads the store once the renewal is durable).
        if st.renewed_ias == b.flags {
            b.expires = st.new_expires;
        }
    }
    Ok(())
}

/// The reply's IPv6 source, by the controller's rule (`dhcp-user/src/netif.rs`, `reply_source`):
/// a request sent to one of our unicast addresses is answered from it; one sent to a group we
/// joined (ff02::1:2, and ff05::1:3 for relays) from the interface's link-local address when the
/// reply goes to a link-local address, else from its one global address. Direct requests must
/// come to ff02::1:2 (a unicast one earns UseMulticast from the controller: we never hand out
/// the Unicast option). Fills `st.source`.
#[inline(always)]
fn reply_source(req: *const u8, st: &mut State, iface: &IfaceConfig) -> Result<(), Reason> {
    let to = st.l3 + ip6::DST;
    if rd8(req, to) != 0xff {
        if st.relayed == 0 {
            return Err(stat::PASS_UNSUPPORTED);
        }
        copy_fixed::<16>(st.source.as_mut_ptr(), 0, req, to);
        return Ok(());
    }
    let joined = eq_fixed::<16>(req, to, ALL_RELAYS_AND_SERVERS.as_ptr(), 0)
        || (st.relayed == 1 && eq_fixed::<16>(req, to, ALL_DHCP_SERVERS.as_ptr(), 0));
    if !joined {
        return Err(stat::PASS_UNSUPPORTED);
    }
    if rd16(req, st.l3 + ip6::SRC) & 0xffc0 == 0xfe80 {
        copy::<16>(st.source.as_mut_ptr(), iface.link_local.as_ptr());
    } else if iface.has_global == 1 {
        copy::<16>(st.source.as_mut_ptr(), iface.global.as_ptr());
    } else {
        return Err(stat::PASS_NO_SOURCE);
    }
    Ok(())
}

/// Writes the whole reply frame into `out` and its length into `new_len`.
#[inline(always)]
fn stage_build(sc: *mut Scratch) -> u32 {
    code(build(sc))
}

#[inline(always)]
fn build(sc: *mut Scratch) -> Result<(), Reason> {
    let req = unsafe { (*sc).req.as_mut_ptr() };
    let out = unsafe { (*sc).out.as_mut_ptr() };
    let st = unsafe { &mut (*sc).st };
    let cfg = unsafe { &*CONFIG.get_ptr(0).ok_or(stat::ABORTED)? };
    let subnet = unsafe { &*SUBNETS.get_ptr(st.subnet_index).ok_or(stat::ABORTED)? };
    let l3 = st.l3;
    let r = &st.r;

    // L2: destination = the request's source, source = our MAC, VLAN tags kept. The tags and
    // ethertype take up to 10 bytes; the excess copied is overwritten by the IPv6 header below.
    copy::<6>(out, req.wrapping_add(6));
    copy::<6>(out.wrapping_add(6), st.mac.as_ptr());
    copy::<12>(out.wrapping_add(12), req.wrapping_add(12));
    let o_l4 = l3 + IPV6_HLEN;
    let mut o = o_l4 + UDP_HLEN;
    let mut relay_msg_len_off = 0;
    if st.relayed == 1 {
        let p = at(out, o);
        put8(p, 0, MSG_RELAY_REPL);
        copy::<33>(p.wrapping_add(1), at(req, st.relay.off + 1));
        o += RELAY_HLEN;
        if st.relay.has_interface_id == 1 {
            let p = at(out, o);
            put16(p, 0, OPT_INTERFACE_ID);
            put16(p, 2, st.relay.interface_id_len as u16);
            copy_upto::<FAST_INTERFACE_ID_MAX>(
                p.wrapping_add(4),
                at(req, st.relay.interface_id_off),
                st.relay.interface_id_len,
            );
            o += 4 + st.relay.interface_id_len;
        }
        put16(at(out, o), 0, OPT_RELAY_MSG);
        relay_msg_len_off = o + 2;
        o += 4;
    }
    let o_msg = o;
    let sd_len = (cfg.server_duid_len as usize) & (FAST_SERVER_DUID_MAX * 2 - 1);
    {
        // Header, Server ID, Client ID.
        let p = at(out, o);
        put8(p, 0, st.reply_type);
        copy::<3>(p.wrapping_add(1), at(req, r.start + 1));
        put16(p, 4, OPT_SERVERID);
        put16(p, 6, sd_len as u16);
        copy_upto::<FAST_SERVER_DUID_MAX>(p.wrapping_add(8), cfg.server_duid.as_ptr(), sd_len);
        o += 8 + sd_len;
    }
    if r.client_ids == 1 {
        let p = at(out, o);
        put16(p, 0, OPT_CLIENTID);
        put16(p, 2, r.client_id_len as u16);
        copy_upto::<FAST_DUID_MAX>(p.wrapping_add(4), at(req, r.client_id_off), r.client_id_len);
        o += 4 + r.client_id_len;
    }
    if st.has_binding == 1 {
        let b = &st.binding;
        if r.na_first == 1 {
            o = put_ia_na(out, o, r, b, subnet);
            o = put_ia_pd(out, o, r, b, subnet);
        } else {
            o = put_ia_pd(out, o, r, b, subnet);
            o = put_ia_na(out, o, r, b, subnet);
        }
    }
    if st.reply_type == MSG_ADVERTISE && subnet.send_preference == 1 {
        let p = at(out, o);
        put16(p, 0, OPT_PREFERENCE);
        put16(p, 2, 1);
        put8(p, 4, subnet.preference);
        o += 5;
    }
    if r.msg_type == MSG_SOLICIT && st.reply_type == MSG_REPLY {
        let p = at(out, o);
        put16(p, 0, OPT_RAPID_COMMIT);
        put16(p, 2, 0);
        o += 4;
    }
    if st.want_dns == 1 && subnet.dns_len != 0 {
        let len = (subnet.dns_len as usize) & (FAST_OPTION_MAX * 2 - 1);
        let p = at(out, o);
        put16(p, 0, OPT_DNS_SERVERS);
        put16(p, 2, len as u16);
        copy_upto::<FAST_OPTION_MAX>(p.wrapping_add(4), subnet.dns.as_ptr(), len);
        o += 4 + len;
    }
    if st.want_domain == 1 && subnet.domain_len != 0 {
        let len = (subnet.domain_len as usize) & (FAST_OPTION_MAX * 2 - 1);
        let p = at(out, o);
        put16(p, 0, OPT_DOMAIN_LIST);
        put16(p, 2, len as u16);
        copy_upto::<FAST_OPTION_MAX>(p.wrapping_add(4), subnet.domain.as_ptr(), len);
        o += 4 + len;
    }
    if r.msg_type == MSG_INFORMATION_REQUEST
        && st.want_refresh == 1
        && subnet.info_refresh_time != 0
    {
        let p = at(out, o);
        put16(p, 0, OPT_INFORMATION_REFRESH_TIME);
        put16(p, 2, 4);
        put32(p, 4, subnet.info_refresh_time);
        o += 8;
    }
    if st.relayed == 1 {
        put16(at(out, relay_msg_len_off), 0, (o - o_msg) as u16);
    }
    if o > FRAME_MAX {
        return Err(stat::PASS_TOO_BIG);
    }
    st.new_len = o;
    let out_udp_len = o - o_l4;
    // IPv6 header: version 6, traffic class 0, flow label 0 (the controller's socket matches);
    // source as `reply_source` chose, destination the request's source.
    let ip = at(out, l3);
    let ip_in = at(req, l3);
    put32(ip, 0, 0x6000_0000);
    put16(ip, ip6::PAYLOAD_LEN, out_udp_len as u16);
    put8(ip, ip6::NEXT_HEADER, IPPROTO_UDP);
    put8(ip, ip6::HOP_LIMIT, REPLY_HOP_LIMIT);
    copy::<16>(ip.wrapping_add(ip6::SRC), st.source.as_ptr());
    copy::<16>(ip.wrapping_add(ip6::DST), ip_in.wrapping_add(ip6::SRC));
    // UDP: from 547 to whatever port the request came from.
    let udp = at(out, o_l4);
    put16(udp, udp::SRC_PORT, SERVER_PORT);
    copy::<2>(udp.wrapping_add(udp::DST_PORT), at(req, st.l4 + udp::SRC_PORT));
    put16(udp, udp::LEN, out_udp_len as u16);
    put16(udp, udp::CHECKSUM, 0);
    zero_pad(out, o);
    zero_pad(out, o + 8);
    let mut csum = udp_csum::<true>(out, l3, o_l4, out_udp_len);
    if csum == 0 {
        csum = 0xffff;
    }
    // The fold produced the sum in memory order already: store it as is.
    unsafe { core::ptr::write_unaligned(at(out, o_l4 + udp::CHECKSUM) as *mut u16, csum) };
    Ok(())
}

/// Parses the Relay-Forw at `off`: returns the bounds of the relayed message and fills `relay`.
#[inline(always)]
fn parse_relay(
    req: *const u8,
    off: usize,
    end: usize,
    relay: &mut Relay,
    r: &mut Request,
) -> Result<(), Reason> {
    if off + RELAY_HLEN > end {
        return Err(stat::PASS_MALFORMED);
    }
    relay.off = off;
    relay.has_interface_id = 0;
    let mut inner = 0;
    let mut inner_end = 0;
    let mut o = off + RELAY_HLEN;
    for _ in 0..MAX_RELAY_OPTIONS {
        if o >= end {
            break;
        }
        if o + 4 > end {
            return Err(stat::PASS_MALFORMED);
        }
        let code = rd16(req, o);
        let len = rd16(req, o + 2) as usize;
        let body = o + 4;
        if body + len > end {
            return Err(stat::PASS_MALFORMED);
        }
        if code == OPT_RELAY_MSG {
            if inner != 0 {
                return Err(stat::PASS_UNSUPPORTED);
            }
            inner = body;
            inner_end = body + len;
        } else if code == OPT_INTERFACE_ID {
            if relay.has_interface_id != 0 || len > FAST_INTERFACE_ID_MAX {
                return Err(stat::PASS_UNSUPPORTED);
            }
            relay.has_interface_id = 1;
            relay.interface_id_off = body;
            relay.interface_id_len = len;
        }
        o = body + len;
    }
    if o != end || inner == 0 || inner_end < inner + 4 {
        return Err(stat::PASS_UNSUPPORTED);
    }
    if rd8(req, inner) == MSG_RELAY_FORW {
        return Err(stat::PASS_UNSUPPORTED);
    }
    r.start = inner;
    r.end = inner_end;
    Ok(())
}

/// Walks the client message's options once, noting what the fast path needs. Any option it does
/// not know (other than a few that never change the reply) sends the message to the controller.
#[inline(always)]
fn parse_message(req: *const u8, r: &mut Request) -> Result<(), Reason> {
    let off = r.start;
    let end = r.end;
    if end < off + 4 {
        return Err(stat::PASS_MALFORMED);
    }
    r.msg_type = rd8(req, off);
    zero(&mut r.client_ids);
    zero(&mut r.server_ids);
    zero(&mut r.oros);
    zero(&mut r.na_count);
    zero(&mut r.pd_count);
    zero(&mut r.na_has_addr);
    zero(&mut r.pd_has_prefix);
    zero(&mut r.na_first);
    zero(&mut r.rapid_commit);
    let mut o = off + 4;
    for _ in 0..MAX_OPTIONS {
        if o >= end {
            break;
        }
        // The Request fields go through memory between options (see `parse_option`).
        clobber();
        let next = parse_option(req, r, o);
        if next >= OPTION_ERROR {
            return Err((next - OPTION_ERROR) as Reason);
        }
        o = next;
    }
    if o != end {
        return Err(stat::PASS_UNSUPPORTED);
    }
    Ok(())
}

/// `parse_option` returns the next option's offset, or this plus a `stat` reason.
const OPTION_ERROR: usize = 0x1_0000;

/// One option of the client message at `o`. The Request fields must live in memory across the
/// option loop: kept in registers, every combination of their values would be a separate
/// verifier state. Inlined (a bpf-to-bpf call per option costs more than the option), with a
/// `clobber` before each option so LLVM writes the fields back and reloads them.
#[inline(always)]
fn parse_option(req: *const u8, r: &mut Request, o: usize) -> usize {
    let end = r.end;
    if o + 4 > end {
        return OPTION_ERROR + stat::PASS_MALFORMED as usize;
    }
    let p = at(req as *mut u8, o);
    let code = get16(p, 0);
    let len = get16(p, 2) as usize;
    let body = o + 4;
    if body + len > end {
        return OPTION_ERROR + stat::PASS_MALFORMED as usize;
    }
    match code {
        OPT_CLIENTID => {
            r.client_ids += 1;
            r.client_id_off = body;
            r.client_id_len = len;
        }
        OPT_SERVERID => {
            r.server_ids += 1;
            r.server_id_off = body;
            r.server_id_len = len;
        }
        OPT_ORO => {
            r.oros += 1;
            r.oro_off = body;
            r.oro_len = len;
        }
        OPT_IA_NA => {
            if len == IA_NA_WITH_ADDR && get16(p, 16) == OPT_IAADDR && get16(p, 18) == 24 {
                r.na_has_addr = 1;
                r.na_addr_off = body + 16;
            } else if len != IA_NA_BARE {
                return OPTION_ERROR + stat::PASS_UNSUPPORTED as usize;
            }
            if r.pd_count == 0 {
                r.na_first = 1;
            }
            r.na_count += 1;
            r.na_iaid = get32(p, 4);
        }
        OPT_IA_PD => {
            if len == IA_PD_WITH_PREFIX && get16(p, 16) == OPT_IAPREFIX && get16(p, 18) == 25 {
                r.pd_has_prefix = 1;
                // SAFETY: as `get16`.
                r.pd_len = unsafe { *p.add(4 + 16 + 8) };
                r.pd_prefix_off = body + 16 + 9;
            } else if len != IA_PD_BARE {
                return OPTION_ERROR + stat::PASS_UNSUPPORTED as usize;
            }
            r.pd_count += 1;
            r.pd_iaid = get32(p, 4);
        }
        OPT_RAPID_COMMIT => {
            if len != 0 {
                return OPTION_ERROR + stat::PASS_MALFORMED as usize;
            }
            r.rapid_commit = 1;
        }
        OPT_ELAPSED_TIME => {
            if len != 2 {
                return OPTION_ERROR + stat::PASS_MALFORMED as usize;
            }
        }
        OPT_RECONF_ACCEPT | OPT_USER_CLASS | OPT_VENDOR_CLASS => {}
        _ => return OPTION_ERROR + stat::PASS_UNSUPPORTED as usize,
    }
    body + len
}

#[inline(always)]
fn server_id_matches(req: *const u8, r: &Request, cfg: &GlobalConfig) -> bool {
    r.server_id_len == cfg.server_duid_len as usize
        && eq_prefix::<FAST_SERVER_DUID_MAX>(
            req,
            r.server_id_off,
            cfg.server_duid.as_ptr(),
            0,
            r.server_id_len,
        )
}

/// The request's IAs must be exactly the binding's: same kinds, same IAIDs, and any address or
/// prefix named must be the bound one (`need_addr`: it must be named).
#[inline(always)]
fn ias_match(req: *const u8, r: &Request, b: &BindingValue, need_addr: bool) -> bool {
    let has_na = b.flags & BINDING_HAS_NA != 0;
    let has_pd = b.flags & BINDING_HAS_PD != 0;
    // Every IA asked about must be one of the binding's (a client may renew them separately).
    if r.na_count + r.pd_count == 0 || (r.na_count == 1 && !has_na) || (r.pd_count == 1 && !has_pd)
    {
        return false;
    }
    if r.na_count == 1 {
        if r.na_iaid != b.na_iaid {
            return false;
        }
        if r.na_has_addr == 1 {
            if !eq_fixed::<16>(req, r.na_addr_off, b.na_addr.as_ptr(), 0) {
                return false;
            }
        } else if need_addr {
            return false;
        }
    }
    if r.pd_count == 1 {
        if r.pd_iaid != b.pd_iaid {
            return false;
        }
        if r.pd_has_prefix == 1 {
            if r.pd_len != b.pd_len
                || !eq_fixed::<16>(req, r.pd_prefix_off, b.pd_prefix.as_ptr(), 0)
            {
                return false;
            }
        } else if need_addr {
            return false;
        }
    }
    true
}

#[inline(always)]
fn put_ia_na(out: *mut u8, o: usize, r: &Request, b: &BindingValue, s: &SubnetConfig) -> usize {
    if r.na_count == 0 || b.flags & BINDING_HAS_NA == 0 {
        return o;
    }
    let p = at(out, o);
    put16(p, 0, OPT_IA_NA);
    put16(p, 2, IA_NA_WITH_ADDR as u16);
    put32(p, 4, r.na_iaid);
    put32(p, 8, s.t1);
    put32(p, 12, s.t2);
    put16(p, 16, OPT_IAADDR);
    put16(p, 18, 24);
    copy::<16>(p.wrapping_add(20), b.na_addr.as_ptr());
    put32(p, 36, s.preferred_lifetime);
    put32(p, 40, s.valid_lifetime);
    o + 4 + IA_NA_WITH_ADDR
}

#[inline(always)]
fn put_ia_pd(out: *mut u8, o: usize, r: &Request, b: &BindingValue, s: &SubnetConfig) -> usize {
    if r.pd_count == 0 || b.flags & BINDING_HAS_PD == 0 {
        return o;
    }
    let p = at(out, o);
    put16(p, 0, OPT_IA_PD);
    put16(p, 2, IA_PD_WITH_PREFIX as u16);
    put32(p, 4, r.pd_iaid);
    put32(p, 8, s.t1);
    put32(p, 12, s.t2);
    put16(p, 16, OPT_IAPREFIX);
    put16(p, 18, 25);
    put32(p, 20, s.preferred_lifetime);
    put32(p, 24, s.valid_lifetime);
    put8(p, 28, b.pd_len);
    copy::<16>(p.wrapping_add(29), b.pd_prefix.as_ptr());
    o + 4 + IA_PD_WITH_PREFIX
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
