//! Internet checksums summed in the program itself (no helper call): the request's UDP checksum
//! check, the pseudo-header sum a sender leaving the checksum to offload writes, the reply's
//! checksum.

use crate::scratch::at;
use crate::wire::{ip6, IPPROTO_UDP, IPV6_HLEN};

/// Longest range `csum_add` sums: a whole frame (the IPv6 addresses and the UDP segment lie in it).
pub(crate) const CSUM_MAX: usize = 1024;

/// Ones-complement sum of `len` (≤ `CSUM_MAX`) bytes of `b` from `off`, chained onto `seed`, in
/// the program itself: the two 32-bit halves of each 8-byte word added into a 64-bit accumulator
/// (at most 2 * 128 additions of < 2^32: no carry lost), folded at the end. No helper call.
/// Bytes after the end up to the next multiple of 8 must be zero (callers zero them). Loads are
/// 8 bytes wide on purpose: the reply is summed right after it was written in small pieces, and
/// each load not covered by one earlier store waits for the store buffer, so fewer, wider loads
/// beat narrower ones that need no splitting.
#[inline(always)]
pub(crate) fn csum_add(b: *mut u8, off: usize, len: usize, seed: u32) -> u32 {
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
pub(crate) fn csum_add_loaded(b: *mut u8, off: usize, len: usize, seed: u32) -> u32 {
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
/// Sum of the IPv6 UDP pseudo-header alone (addresses, upper-layer length, next header), not
/// folded: what a sender leaving the checksum to offload puts in the field, once folded.
#[inline(always)]
pub(crate) fn pseudo_header_sum(b: *mut u8, ip_off: usize, udp_len: usize) -> u32 {
    let tail = (udp_len as u32).to_be() as u64 + (IPPROTO_UDP as u32).to_be() as u64;
    let seed = ((tail & 0xffff_ffff) + (tail >> 32)) as u32;
    csum_add_loaded(b, ip_off + ip6::SRC, 32, seed)
}

/// IPv6 UDP pseudo-header (addresses at `ip_off + ip6::SRC`) plus the UDP segment at `udp_off`.
#[inline(always)]
pub(crate) fn udp_csum<const LOADED: bool>(
    b: *mut u8,
    ip_off: usize,
    udp_off: usize,
    udp_len: usize,
) -> u16 {
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
