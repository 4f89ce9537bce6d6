//! What the benchmark's build of the program adds (cargo feature `bench`; the controller's
//! object has none of it): the reference programs, i.e. the cheapest XDP program and the kernel
//! work any Renew answer must do and nothing else, so that the fast path's figure can be read
//! against what cannot be avoided; and [`restore_request`], which lets BPF_PROG_TEST_RUN's
//! `repeat` run the whole fast path every time.

use aya_ebpf::{
    bindings::xdp_action,
    helpers::{
        bpf_ktime_get_coarse_ns, bpf_xdp_adjust_head, bpf_xdp_adjust_tail, bpf_xdp_store_bytes,
    },
    macros::xdp,
    programs::XdpContext,
};
use dhcp_common::{BindingKey, BindingValue};

use crate::maps::{BINDINGS, CONFIG, EVENTS};
use crate::scratch::Scratch;

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
pub(crate) fn floor_binding(ctx: &XdpContext) -> Option<*mut BindingValue> {
    let start = ctx.data();
    if start + core::mem::size_of::<BindingKey>() > ctx.data_end() {
        return None;
    }
    // SAFETY: the key's bytes lie inside the frame (checked above); the helper only reads them.
    let key = unsafe { &*(start as *const BindingKey) };
    BINDINGS.get_ptr_mut(key)
}

/// After the reply is written, puts the request back (undoing the resize, copying the request
/// over the reply) so that BPF_PROG_TEST_RUN's `repeat` answers the same request every time
/// instead of re-reading its own reply. It adds a resize and a copy, so the figure it gives is
/// an upper bound. Returns false when the kernel refused either step.
#[inline(always)]
pub(crate) fn restore_request(
    ctx: &XdpContext,
    sc: *mut Scratch,
    delta: i32,
    frame_len: usize,
) -> bool {
    // SAFETY: the helpers take the program's own context; `delta` is the resize just made.
    let back = unsafe {
        if delta > 0 {
            bpf_xdp_adjust_head(ctx.ctx, delta)
        } else {
            bpf_xdp_adjust_tail(ctx.ctx, -delta)
        }
    };
    // SAFETY: the per-CPU scratch slot is ours for this run; `frame_len` bytes of it hold the
    // request (loaded from the frame at the start, never written since).
    back == 0
        && unsafe {
            bpf_xdp_store_bytes(
                ctx.ctx,
                0,
                (*sc).req.as_mut_ptr() as *mut _,
                frame_len as u32,
            )
        } == 0
}
