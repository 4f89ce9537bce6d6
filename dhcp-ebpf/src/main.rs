//! XDP fast path for DHCPv6.
//!
//! Answers Renew, Rebind, Solicit and Request from known clients, Confirm and Information-Request
//! straight from BPF maps the controller fills, producing the reply the controller would send,
//! byte for byte (docs/fastpath.md). Everything it cannot answer exactly is passed on untouched.
//!
//! Shape: the entry copies the frame into a per-CPU scratch buffer (`bpf_xdp_load_bytes`), then
//! runs the pipeline, one file per stage: `parse` (frame, relay hop, options), `decide` (policy),
//! `reply` (the reply frame), `commit` (the expiry and the renewal report, the only writes). It
//! then resizes the frame and writes the reply back (`bpf_xdp_adjust_head`/`_tail` +
//! `bpf_xdp_store_bytes`). `scratch` holds the bounded access helpers, `csum` the checksums,
//! `wire` the layouts, `maps` the maps. One exit, below, counts every verdict by reason. The
//! benchmark's build (cargo feature `bench`) adds `bench`: its reference programs, and putting
//! the request back after each answer.
#![no_std]
#![no_main]
// For `opaque`: an empty asm statement is the only way to hide a value's range from LLVM.
#![feature(asm_experimental_arch)]

#[cfg(feature = "bench")]
mod bench;
mod commit;
mod csum;
mod decide;
mod maps;
mod parse;
mod reply;
mod scratch;
mod state;
mod wire;

use aya_ebpf::{
    bindings::xdp_action,
    helpers::{
        bpf_ktime_get_coarse_ns, bpf_xdp_adjust_head, bpf_xdp_adjust_tail, bpf_xdp_load_bytes,
        bpf_xdp_store_bytes,
    },
    macros::xdp,
    programs::XdpContext,
};
use dhcp_common::{stat, LineBudget, LINE_NONE};

use crate::commit::report_renewal;
use crate::decide::stage_decide;
use crate::maps::{CLIENT_MACS, CONFIG, LINE_BUDGET, PASS_BUDGET, SCRATCH, STATS};
use crate::parse::frame::stage_headers;
use crate::parse::line::forget_line;
use crate::reply::stage_build;
use crate::scratch::clobber;
use crate::state::{Reason, GO_ON};
use crate::wire::{ETH_HLEN, FRAME_MAX, IPV6_HLEN, UDP_HLEN};

#[xdp]
pub fn dhcp_xdp(ctx: XdpContext) -> u32 {
    let frame_len = (ctx.data_end() - ctx.data()) as u64;
    let (action, reason) = match try_dhcp_xdp(&ctx) {
        Ok(reason) => (xdp_action::XDP_TX, reason),
        Err(reason) => (xdp_action::XDP_PASS, reason),
    };
    let (action, reason) = if action == xdp_action::XDP_PASS && reason >= stat::PASS_MALFORMED {
        // The line's budget first: a flooded line's excess never spends the global budget,
        // which stays the outer guard (against a flood of many lines).
        if line_admits() {
            rate_limit_pass(reason)
        } else {
            (xdp_action::XDP_DROP, stat::DROP_LINE_BUDGET)
        }
    } else {
        (action, reason)
    };
    count(reason, frame_len);
    if action == xdp_action::XDP_PASS && !note_client_mac() {
        count(stat::CLIENT_MAC_UPDATE_FAILED, frame_len);
    }
    action
}

#[inline(always)]
fn count(reason: Reason, frame_len: u64) {
    if let Some(counter) = STATS.get_ptr_mut(reason) {
        // SAFETY: per-CPU slot, only this CPU touches it while the program runs.
        unsafe {
            (*counter).packets += 1;
            (*counter).bytes += frame_len;
        }
    }
}

/// Writes a passed direct DHCPv6 frame's source MAC to `CLIENT_MACS` (one update per such
/// frame; the controller reads it for the client's link-layer address). False if the update
/// failed.
#[inline(always)]
fn note_client_mac() -> bool {
    let Some(sc) = SCRATCH.get_ptr_mut(0) else {
        return true;
    };
    // SAFETY: this CPU's scratch slot; the pipeline that wrote the entry has returned.
    unsafe {
        if (*sc).st.note_mac == 0 {
            return true;
        }
        let mac = core::ptr::read_unaligned(&raw const (*sc).mac as *const u64);
        // A client's entry already holding its MAC (its retransmissions, its next messages)
        // is left alone: an LRU update allocates a new element every time, several times the
        // cost of the lookup (the lookup marks the entry as used all the same).
        // By reference on purpose: by value, the key and the MAC would be copied to the stack.
        #[allow(clippy::needless_borrows_for_generic_args)]
        if let Some(known) = CLIENT_MACS.get_ptr(&(*sc).mac_key) {
            if core::ptr::read_unaligned(known as *const u64) == mac {
                return true;
            }
        }
        #[allow(clippy::needless_borrows_for_generic_args)]
        CLIENT_MACS.insert(&(*sc).mac_key, &(*sc).mac, 0).is_ok()
    }
}

/// Applies the per-CPU budget of DHCPv6 messages passed on to the controller, so a flood of
/// Solicits from random DUIDs cannot starve it. Beyond the budget the frame is dropped.
#[inline(always)]
pub(crate) fn rate_limit_pass(reason: Reason) -> (u32, Reason) {
    let Some(cfg) = CONFIG.get_ptr(0) else {
        return (xdp_action::XDP_PASS, reason);
    };
    // SAFETY: a map value the controller only ever writes whole; read-only here.
    let rate = unsafe { (*cfg).pass_rate_per_cpu };
    if rate == 0 {
        return (xdp_action::XDP_PASS, reason);
    }
    let Some(budget) = PASS_BUDGET.get_ptr_mut(0) else {
        return (xdp_action::XDP_PASS, reason);
    };
    // SAFETY: a helper without arguments or side effects.
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

/// How many times a line's bucket is retried when another CPU moved it in between.
const LINE_CAS_TRIES: usize = 2;

/// Admission per line (`line-pass-budget`, `line-pass-burst`): a token bucket per line
/// (`LINE_BUDGET`, GCRA: one timestamp per line, moved on by compare-and-swap, since any CPU
/// may see the line's frames). False when the line's budget is spent: the frame is dropped.
/// A frame whose line the run never learnt (too short, too big) is admitted.
#[inline(always)]
pub(crate) fn line_admits() -> bool {
    let Some(cfg) = CONFIG.get_ptr(0) else {
        return true;
    };
    // SAFETY: a map value the controller only ever writes whole; read-only here.
    let (rate, burst) = unsafe { ((*cfg).line_pass_budget, (*cfg).line_pass_burst) };
    if rate == 0 {
        return true;
    }
    let Some(sc) = SCRATCH.get_ptr_mut(0) else {
        return true;
    };
    // SAFETY: this CPU's scratch slot; the pipeline that wrote the key has returned.
    let key = unsafe { &(*sc).st.line };
    if key.kind == LINE_NONE {
        return true;
    }
    let interval = 1_000_000_000 / rate as u64;
    let tolerance = interval * (if burst == 0 { 1 } else { burst as u64 });
    // SAFETY: a helper without arguments or side effects.
    let now = unsafe { bpf_ktime_get_coarse_ns() };
    let Some(bucket) = LINE_BUDGET.get_ptr_mut(key) else {
        // A line new (or evicted): its bucket starts full, less this frame. Should another CPU
        // insert it meanwhile, its entry stands (BPF_NOEXIST).
        let fresh = LineBudget {
            tat_ns: now + interval,
            dropped: 0,
        };
        let _ = LINE_BUDGET.insert(key, fresh, aya_ebpf::bindings::BPF_NOEXIST as u64);
        return true;
    };
    // SAFETY: a map value, 8-byte aligned, written by the program only with the atomics below.
    let (tat, dropped) = unsafe { (&raw mut (*bucket).tat_ns, &raw mut (*bucket).dropped) };
    for _ in 0..LINE_CAS_TRIES {
        // SAFETY: as above; an aligned 8-byte load is never torn.
        let old = unsafe { core::ptr::read_volatile(tat) };
        let next = if old > now { old } else { now } + interval;
        if next - now > tolerance {
            break;
        }
        if cmpxchg64(tat, old, next) == old {
            return true;
        }
    }
    // Spent, or moved by other CPUs at every try (the line busy on several at once).
    atomic_add64(dropped, 1);
    false
}

/// 64-bit compare-and-swap (BPF_ATOMIC | BPF_CMPXCHG): stores `new` at `p` if it holds `old`;
/// returns what it held. In asm: Rust gives this target no compare-and-swap (its atomics stop
/// at loads and stores), while the kernel has had the instruction since 5.12.
#[inline(always)]
fn cmpxchg64(p: *mut u64, old: u64, new: u64) -> u64 {
    let mut found = old;
    // SAFETY: `p` is an aligned 8-byte map value field; the instruction reads and writes only it.
    unsafe {
        core::arch::asm!(
            "r0 = cmpxchg_64({p} + 0, r0, {new})",
            p = in(reg) p,
            new = in(reg) new,
            inout("r0") found,
            options(nostack),
        )
    };
    found
}

/// 64-bit atomic add (BPF_ATOMIC | BPF_ADD, the classic XADD).
#[inline(always)]
fn atomic_add64(p: *mut u64, v: u64) {
    // SAFETY: as `cmpxchg64`.
    unsafe {
        core::arch::asm!(
            "lock *(u64 *)({p} + 0) += {v}",
            p = in(reg) p,
            v = in(reg) v,
            options(nostack),
        )
    };
}

#[inline(always)]
pub(crate) fn try_dhcp_xdp(ctx: &XdpContext) -> Result<Reason, Reason> {
    let sc = SCRATCH.get_ptr_mut(0).ok_or(stat::ABORTED)?;
    // SAFETY: the per-CPU scratch slot is ours for the duration of this run.
    unsafe {
        forget_line(&mut (*sc).st);
        (*sc).st.note_mac = 0;
        (*sc).st.ifindex = (*ctx.ctx).ingress_ifindex;
    }
    let frame_len = ctx.data_end() - ctx.data();
    if frame_len < ETH_HLEN + IPV6_HLEN + UDP_HLEN + 4 {
        return Err(stat::PASS_NOT_DHCP);
    }
    if frame_len > FRAME_MAX {
        return Err(stat::PASS_TOO_BIG);
    }
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
    // SAFETY: as above: the slot is ours for this run.
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
    // SAFETY: as above; the stages that held views of the slot have returned.
    let st = unsafe { &mut (*sc).st };
    let new_len = st.new_len;
    // Resize the frame and write the reply over it. A longer reply grows at the front: every
    // driver guarantees XDP_PACKET_HEADROOM (256 bytes) there, while the tailroom of a frame can
    // be next to nothing (a veth peer's small skb). A shorter one is trimmed at the tail.
    let delta = new_len as i32 - frame_len as i32;
    // SAFETY: the helpers take this run's context; the verifier checks every later access.
    let resized = if delta > 0 {
        unsafe { bpf_xdp_adjust_head(ctx.ctx, -delta) }
    } else {
        unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) }
    };
    if resized != 0 {
        return Err(stat::PASS_NO_ROOM);
    }
    if !(ETH_HLEN + IPV6_HLEN + UDP_HLEN + 4..=FRAME_MAX).contains(&new_len) {
        return Err(stat::ABORTED);
    }
    // SAFETY: the helper copies `new_len` bytes (bounded above) from the slot's reply buffer,
    // which holds FRAME_MAX bytes, into the resized frame.
    let stored = unsafe {
        bpf_xdp_store_bytes(ctx.ctx, 0, (*sc).out.as_mut_ptr() as *mut _, new_len as u32)
    };
    if stored != 0 {
        // The frame is already resized: it cannot be handed on as it was.
        return Err(stat::ABORTED);
    }
    if st.commits == 1 {
        report_renewal(sc);
    }
    #[cfg(feature = "bench")]
    if !bench::restore_request(ctx, sc, delta, frame_len) {
        return Err(stat::ABORTED);
    }
    Ok(st.reason as Reason)
}

#[cfg(not(test))]
#[panic_handler]
pub(crate) fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// SAFETY: the kernel reads the program's license from this section, under this one name.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
pub(crate) static LICENSE: [u8; 4] = *b"GPL\0";
