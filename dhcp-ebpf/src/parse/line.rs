//! The line a frame came from, for admission per line (docs/fastpath.md, "Admission per line"):
//! a direct client's interface and VLAN IDs, or the innermost relay hop's identity, hashed as
//! `dhcp_common::line_hash` does, so the controller can name the same key.

use crate::{scratch::*, state::*, wire::*};
use dhcp_common::{
    line_hash_step, LINE_DIRECT, LINE_HASH_SEED, LINE_ID_HASH_MAX, LINE_INTERFACE_ID,
    LINE_LINK_ADDRESS, LINE_NONE, LINE_REMOTE_ID,
};

/// Writes the key as three whole words (`LineKey`'s layout: id; ifindex, outer and inner VLAN;
/// kind and padding), so the padding the map hashes is always zero and no `memset` appears.
#[inline(always)]
fn set_line(st: &mut State, id: u64, ifindex: u32, outer_vlan: u16, inner_vlan: u16, kind: u8) {
    let words = &mut st.line as *mut dhcp_common::LineKey as *mut u64;
    let middle = ifindex as u64 | (outer_vlan as u64) << 32 | (inner_vlan as u64) << 48;
    // SAFETY: `LineKey` is 24 bytes, 8-byte aligned, and these are its three words
    // (little-endian: the fields in declaration order).
    unsafe {
        core::ptr::write_volatile(words, id);
        core::ptr::write_volatile(words.add(1), middle);
        core::ptr::write_volatile(words.add(2), kind as u64);
    }
}

/// No line known (yet): set at the start of every run, since the scratch slot outlives it.
#[inline(always)]
pub(crate) fn forget_line(st: &mut State) {
    set_line(st, 0, 0, 0, 0, LINE_NONE);
}

/// A direct client's line: the interface (`st.ifindex`) and the frame's VLAN IDs.
#[inline(always)]
pub(crate) fn direct_line(st: &mut State, outer_vlan: u16, inner_vlan: u16) {
    let ifindex = st.ifindex;
    set_line(
        st,
        0,
        ifindex,
        outer_vlan & 0x0fff,
        inner_vlan & 0x0fff,
        LINE_DIRECT,
    );
}

/// The line named by the relay hop just read (`st.relay`), when it names one: its Interface-ID,
/// else its Remote-ID, else its link-address unless `::` (an LDRA without the Interface-ID RFC
/// 6221 requires: the line stays what it was, the frame's link or the hop further out).
#[inline(always)]
pub(crate) fn relay_line(req: *const u8, st: &mut State) {
    let hop = &st.relay;
    let kind = hop.line_kind;
    let (off, len) = if kind == LINE_INTERFACE_ID || kind == LINE_REMOTE_ID {
        (hop.line_off, hop.line_len)
    } else if kind == LINE_LINK_ADDRESS {
        let link = hop.off + relay::LINK_ADDRESS;
        if rd64(req, link) | rd64(req, link + 8) == 0 {
            return;
        }
        (link, 16)
    } else {
        return;
    };
    let hashed = if len > LINE_ID_HASH_MAX {
        LINE_ID_HASH_MAX
    } else {
        len
    };
    let mut h = line_hash_step(LINE_HASH_SEED, len as u64);
    for w in 0..LINE_ID_HASH_MAX / 8 {
        if w * 8 < hashed {
            h = line_hash_step(h, rd64(req, off + w * 8) & keep_bytes(hashed - w * 8));
        }
    }
    set_line(st, h, 0, 0, 0, kind);
}
