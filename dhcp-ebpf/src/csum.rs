//! Internet checksums: the request's UDP checksum check, the pseudo-header sum a sender leaving
//! the checksum to offload writes, the reply's checksum. The sums are the kernel's
//! `csum_partial` (through `bpf_csum_diff` with nothing to subtract): a BPF loop costs one
//! load, two adds and a compare per 4 bytes, while the kernel sums 8 bytes an instruction with
//! carries, so over a ~200-byte frame the helper call is the cheaper of the two.

use aya_ebpf::helpers::bpf_csum_diff;

use crate::scratch::at;
use crate::wire::{ip6, IPPROTO_UDP, IPV6_HLEN};

/// Longest range one `bpf_csum_diff` call takes before kernel 6.12 (its per-CPU scratch pad).
const HELPER_MAX: usize = 512;

/// Ones-complement sum (unfolded, or folded to 16 bits by newer kernels: the same sum either
/// way) of `n` bytes at `p`, chained onto `seed`; `n` must be a multiple of 4 and at most
/// `HELPER_MAX`. None when the kernel refuses the call.
#[inline(always)]
fn helper_sum(p: *mut u8, n: usize, seed: u32) -> Option<u32> {
    // SAFETY: the helper only reads `n` bytes from `p`, which callers keep inside the buffer
    // (`at` leaves BUF - MASK - 1 bytes after it, more than HELPER_MAX); nothing to subtract.
    let sum = unsafe {
        bpf_csum_diff(
            core::ptr::null_mut(),
            0,
            p as *mut _,
            (n & (HELPER_MAX * 2 - 4)) as u32,
            seed,
        )
    };
    (sum >= 0).then_some(sum as u32)
}

/// Ones-complement sum of `len` (at most a frame) bytes of `b` from `off` (a header offset, below
/// 64), chained onto `seed`, not folded. The bytes after the end up to the next multiple of 4
/// must be zero (callers zero them: `zero_pad`). None when the kernel refused a helper call.
#[inline(always)]
pub(crate) fn csum_add(b: *mut u8, off: usize, len: usize, seed: u32) -> Option<u32> {
    let n = (len + 3) & !3;
    if n <= HELPER_MAX {
        return helper_sum(at(b, off), n, seed);
    }
    // Two calls for a long frame (older kernels take at most HELPER_MAX bytes a call); the first
    // part's length is even, so the second continues on the same 16-bit word boundaries.
    let seed = helper_sum(at(b, off), HELPER_MAX, seed)?;
    helper_sum(at(b, off + HELPER_MAX), n - HELPER_MAX, seed)
}
/// Zeroes the 8 bytes from `off` (the padding after a range `csum_add` sums).
#[inline(always)]
pub(crate) fn zero_pad(b: *mut u8, off: usize) {
    // SAFETY: `at` leaves more than 8 bytes of the buffer after its pointer.
    unsafe { core::ptr::write_unaligned(at(b, off) as *mut u64, 0) };
}
#[inline(always)]
pub(crate) fn csum_fold(mut sum: u32) -> u16 {
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    !(sum as u16)
}
/// The rest of the pseudo-header (upper-layer length, next header) as two 32-bit words in
/// memory order, summed with the end-around carry.
#[inline(always)]
fn pseudo_tail(udp_len: usize) -> u32 {
    let tail = (udp_len as u32).to_be() as u64 + (IPPROTO_UDP as u32).to_be() as u64;
    ((tail & 0xffff_ffff) + (tail >> 32)) as u32
}
/// Sum of the IPv6 UDP pseudo-header alone (addresses, upper-layer length, next header), not
/// folded: what a sender leaving the checksum to offload puts in the field, once folded.
#[inline(always)]
pub(crate) fn pseudo_header_sum(b: *mut u8, ip_off: usize, udp_len: usize) -> Option<u32> {
    csum_add(b, ip_off + ip6::SRC, 32, pseudo_tail(udp_len))
}

/// The checksum over the IPv6 UDP pseudo-header (addresses at `ip_off + ip6::SRC`) and the UDP
/// segment at `udp_off`, folded: 0 for a segment whose checksum field is right.
#[inline(always)]
pub(crate) fn udp_csum(b: *mut u8, ip_off: usize, udp_off: usize, udp_len: usize) -> Option<u16> {
    let seed = pseudo_tail(udp_len);
    if udp_off == ip_off + IPV6_HLEN {
        // Addresses and segment are contiguous: one range.
        return csum_add(b, ip_off + ip6::SRC, 32 + udp_len, seed).map(csum_fold);
    }
    let seed = csum_add(b, ip_off + ip6::SRC, 32, seed)?;
    csum_add(b, udp_off, udp_len, seed).map(csum_fold)
}
