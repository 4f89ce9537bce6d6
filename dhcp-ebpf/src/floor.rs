//! The benchmark's references, shipped in the same object (the controller never attaches them):
//! the cheapest XDP program, and the kernel work any Renew answer must do and nothing else, so
//! that the fast path's figure can be read against what cannot be avoided.

use aya_ebpf::{
    bindings::xdp_action, helpers::bpf_ktime_get_coarse_ns, macros::xdp, programs::XdpContext,
};
use dhcp_common::{BindingKey, BindingValue};

use crate::maps::{BINDINGS, CONFIG, EVENTS};

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
