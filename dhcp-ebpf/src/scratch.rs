//! The per-CPU scratch buffers and the masked access helpers: every offset into a buffer is
//! masked with `MASK`, so each access is in bounds by construction and the verifier needs no
//! per-access proof. Each verifier workaround (`opaque`, `clobber`, word-sized moves, volatile
//! zero stores) is explained once, here.

use aya_ebpf::btf_maps::lpm_trie::Key;
use dhcp_common::{BindingKey, ClientMac, ClientMacKey, RelayValueKey};

use crate::state::State;

/// Every offset into a scratch buffer is masked with this; the buffers are twice as large, so a
/// masked offset plus any fixed-size access (at most `BUF - MASK - 1` bytes) stays inside.
pub(crate) const MASK: usize = 1023;
pub(crate) const BUF: usize = 2048;

#[repr(C)]
pub struct Scratch {
    pub req: [u8; BUF],
    pub out: [u8; BUF],
    /// The binding key of the request (a map value may serve as a lookup key; the stack is small).
    pub key: BindingKey,
    pub link_key: Key<[u8; 16]>,
    /// A direct frame's `CLIENT_MACS` entry, built by `parse::frame` (`st.note_mac`).
    pub mac_key: ClientMacKey,
    pub mac: ClientMac,
    /// A relay value looked up in `RELAY_CLASS_VALUES` (`decide::relay_value`).
    pub relay_value: RelayValueKey,
    pub st: State,
}

/// Returns `v` unchanged, but LLVM can no longer prove anything about it, so the `& MASK` that
/// follows survives optimisation and the verifier sees every offset bounded (libbpf's
/// `barrier_var`).
#[inline(always)]
pub(crate) fn opaque(mut v: usize) -> usize {
    // SAFETY: an empty asm block that only "modifies" the register holding `v`.
    unsafe {
        core::arch::asm!("{0} = {0}", inout(reg) v, options(nomem, nostack, preserves_flags))
    };
    v
}

/// A compiler barrier: LLVM must assume any memory changed, so values derived from memory are
/// stored before it and reloaded after.
#[inline(always)]
pub(crate) fn clobber() {
    // SAFETY: an empty asm block.
    unsafe { core::arch::asm!("", options(nostack, preserves_flags)) };
}

#[inline(always)]
pub(crate) fn rd8(b: *const u8, off: usize) -> u8 {
    // SAFETY: `off & MASK` < BUF.
    unsafe { *b.add(opaque(off) & MASK) }
}
#[inline(always)]
pub(crate) fn rd16(b: *const u8, off: usize) -> u16 {
    // SAFETY: `off & MASK` + 2 < BUF; unaligned loads are allowed (see `rd64`).
    u16::from_be(unsafe { core::ptr::read_unaligned(b.add(opaque(off) & MASK) as *const u16) })
}
/// Copies exactly `N` bytes (a fixed size the verifier can see); callers advance by the real
/// length, and later writes overwrite the excess.
#[inline(always)]
pub(crate) fn copy_fixed<const N: usize>(dst: *mut u8, doff: usize, src: *const u8, soff: usize) {
    // SAFETY: both masked offsets plus N (≤ BUF - MASK - 1) stay inside their buffers.
    unsafe { copy::<N>(dst.add(opaque(doff) & MASK), src.add(opaque(soff) & MASK)) }
}
/// A pointer to `off` in a scratch buffer. Fields around it are then reached at constant
/// offsets (one masked add per region instead of one per field); the slack after `MASK` covers
/// any constant offset used below 1 KiB.
#[inline(always)]
pub(crate) fn at(b: *mut u8, off: usize) -> *mut u8 {
    // SAFETY: `off & MASK` < BUF.
    unsafe { b.add(opaque(off) & MASK) }
}
#[inline(always)]
pub(crate) fn put8(p: *mut u8, k: usize, v: u8) {
    // SAFETY: `p` comes from `at`, `k` is a small constant.
    unsafe { *p.add(k) = v }
}
#[inline(always)]
pub(crate) fn put16(p: *mut u8, k: usize, v: u16) {
    // SAFETY: as `put8`; unaligned stores are allowed (see `rd64`).
    unsafe { core::ptr::write_unaligned(p.add(k) as *mut u16, v.to_be()) }
}
#[inline(always)]
pub(crate) fn put32(p: *mut u8, k: usize, v: u32) {
    // SAFETY: as `put16`.
    unsafe { core::ptr::write_unaligned(p.add(k) as *mut u32, v.to_be()) }
}
#[inline(always)]
pub(crate) fn get16(p: *const u8, k: usize) -> u16 {
    // SAFETY: as `put16`.
    u16::from_be(unsafe { core::ptr::read_unaligned(p.add(k) as *const u16) })
}
#[inline(always)]
pub(crate) fn get32(p: *const u8, k: usize) -> u32 {
    // SAFETY: as `put16`.
    u32::from_be(unsafe { core::ptr::read_unaligned(p.add(k) as *const u32) })
}
/// Copies one `T` at byte `k`, unaligned.
#[inline(always)]
pub(crate) fn mv<T>(dst: *mut u8, src: *const u8, k: usize) {
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
pub(crate) fn copy<const N: usize>(dst: *mut u8, src: *const u8) {
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
pub(crate) fn copy_upto<const N: usize>(dst: *mut u8, src: *const u8, len: usize) {
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
pub(crate) fn rd64(b: *const u8, off: usize) -> u64 {
    // SAFETY: `off & MASK` + 8 < BUF.
    unsafe { core::ptr::read_unaligned(b.add(opaque(off) & MASK) as *const u64) }
}
/// Mask keeping the first `n` bytes (0..=8) of a little-endian 8-byte load, without a branch.
#[inline(always)]
pub(crate) fn keep_bytes(n: usize) -> u64 {
    let n = if n > 8 { 8 } else { n };
    // (1 << 64) is not a thing: build it from two shifts of at most 32 each.
    let bits = (n * 8) as u64;
    let half = bits / 2;
    ((1u64 << half) << (bits - half)).wrapping_sub(1)
}
#[inline(always)]
pub(crate) fn eq_fixed<const N: usize>(
    a: *const u8,
    aoff: usize,
    b: *const u8,
    boff: usize,
) -> bool {
    // Word by word, accumulated through `opaque` so LLVM cannot turn it into a branch per word.
    let mut diff = 0usize;
    for w in 0..N / 8 {
        diff = opaque(diff | (rd64(a, aoff + w * 8) ^ rd64(b, boff + w * 8)) as usize);
    }
    diff == 0
}
/// Compares the first `len` (≤ N) bytes of two buffers.
#[inline(always)]
pub(crate) fn eq_prefix<const N: usize>(
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
pub(crate) fn zero(v: &mut u8) {
    // SAFETY: a plain store through a valid reference.
    unsafe { core::ptr::write_volatile(v, 0) }
}
