//! The one place the fast path writes state: a renewal's new expiry in the binding map, and its
//! report on the `EVENTS` ring buffer (the controller makes it durable within a second).

use crate::{maps::*, scratch::*, state::*};
use dhcp_common::{BindingKey, BindingValue, BINDING_IAS};

/// Moves the binding's expiry on after a renewal (Renew, Rebind, Request, Rapid-Commit Solicit)
/// that `decide` accepted and `st.new_expires` holds.
#[inline(always)]
pub(crate) fn move_expiry(b: &mut BindingValue, st: &State) {
    // The map's expiry is the earliest of the binding's IAs: it moves on only when all of
    // them were renewed (the controller re-reads the store once the renewal is durable).
    if st.renewed_ias == b.flags & BINDING_IAS {
        b.expires = st.new_expires;
    }
}

/// Reports the renewal just sent on the `EVENTS` ring buffer, so the store follows the map.
#[inline(always)]
pub(crate) fn report_renewal(sc: *mut Scratch) {
    // SAFETY: the per-CPU scratch slot is ours for the duration of this run.
    let st = unsafe { &(*sc).st };
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
