//! Policy: direct or relayed, which subnet, which message, which binding, which reply and from
//! which source address. No side effects but the expiry move it hands to `commit`.

use crate::commit::move_expiry;
use crate::parse::{line::relay_line, options::parse_message, relay::parse_relay};
use crate::{maps::*, scratch::*, state::*, wire::*};
use aya_ebpf::helpers::bpf_ktime_get_coarse_ns;
use dhcp_common::{
    dhcpv6::*, stat, BindingKey, BindingValue, ClassInputs, GlobalConfig, IfaceConfig, OptionSlot,
    VlanKey, BINDING_HAS_NA, BINDING_HAS_PD, BINDING_PD_EXCLUDE, BINDING_RENEW_ONLY,
    CLASSES_BARE_INFORMATION, CLASSES_CHECK, CLASSES_CHECK_RELAYS, CLASSES_PASS,
    CLASS_INPUT_IN_USE, CLASS_INPUT_USER, CLASS_INPUT_VENDOR, FAST_CLASS_DATA_MAX, FAST_DUID_MAX,
    FAST_OPTION_SLOTS, FAST_RELAY_VALUE_MAX, FAST_SERVER_DUID_MAX, OPTION_SET_NA, OPTION_SET_NA_PD,
    OPTION_SET_PD, RELAY_SELECT_BY_ADDRESS, RELAY_SELECT_BY_INTERFACE_ID, RELAY_VALUE_INTERFACE_ID,
    RELAY_VALUE_REMOTE_ID,
};

/// Direct or relayed, which subnet, which message, which binding, and what to answer.
#[inline(always)]
pub(crate) fn stage_decide(ctx: *mut aya_ebpf::bindings::xdp_md, sc: *mut Scratch) -> u32 {
    code(decide(ctx, sc))
}

#[inline(always)]
pub(crate) fn decide(ctx: *mut aya_ebpf::bindings::xdp_md, sc: *mut Scratch) -> Result<(), Reason> {
    // SAFETY: `sc` is this CPU's scratch slot (the entry checked the pointer), ours alone for
    // the run; the stages hand it on and never hold two mutable views of one field.
    let req = unsafe { (*sc).req.as_mut_ptr() };
    // SAFETY: as above; the request bytes (`req`) and the state (`st`) are distinct fields.
    let st = unsafe { &mut (*sc).st };
    // SAFETY: a map value the controller only ever writes whole; read-only here.
    let cfg = unsafe { &*CONFIG.get_ptr(0).ok_or(stat::ABORTED)? };
    if cfg.enabled == 0 || cfg.server_duid_len == 0 {
        return Err(stat::PASS_DISABLED);
    }
    // SAFETY: `ctx` is the kernel's xdp_md for this run.
    st.ifindex = unsafe { (*ctx).ingress_ifindex };
    // SAFETY: a map value the controller only ever writes whole; read-only here.
    let iface = unsafe { &*IFACES.get_ptr(st.ifindex).ok_or(stat::PASS_DISABLED)? };
    if iface.enabled == 0 {
        return Err(stat::PASS_DISABLED);
    }
    copy::<6>(st.mac.as_mut_ptr(), iface.mac.as_ptr());

    let dhcp = st.msg;
    let dhcp_end = st.r.end;
    // The scratch state outlives the run: every field the reply reads is set on every path
    // (a direct request after a two-hop one once wrote its outer length over the MAC).
    st.two_hops = 0;
    if rd8(req, dhcp) == MSG_RELAY_FORW {
        // Each hop names the line as soon as it is read, the innermost last (`relay_line`),
        // whether or not the program goes on to answer.
        let parsed = parse_relay(req, dhcp, dhcp_end, &mut st.relay, &mut st.r);
        relay_line(req, st);
        parsed?;
        if rd8(req, st.r.start) == MSG_RELAY_FORW {
            // A second hop in (an LDRA behind an L3 relay); no third.
            st.outer = st.relay;
            st.two_hops = 1;
            let (inner, inner_end) = (st.r.start, st.r.end);
            let parsed = parse_relay(req, inner, inner_end, &mut st.relay, &mut st.r);
            relay_line(req, st);
            parsed?;
            if rd8(req, st.r.start) == MSG_RELAY_FORW {
                return Err(stat::PASS_UNSUPPORTED);
            }
        }
        // Subnets selected by relay Interface-ID or address follow the controller's rule alone:
        // pass on what one of them could select (with none matching, the rule below is its).
        let has_interface_id =
            st.relay.has_interface_id == 1 || (st.two_hops == 1 && st.outer.has_interface_id == 1);
        if cfg.relay_selectors & RELAY_SELECT_BY_ADDRESS != 0
            || (cfg.relay_selectors & RELAY_SELECT_BY_INTERFACE_ID != 0 && has_interface_id)
        {
            return Err(stat::PASS_RELAY_SELECTOR);
        }
        st.subnet_index = if st.two_hops == 1 {
            two_hop_subnet(sc, req, st.outer.off, st.relay.off)?
        } else {
            relayed_subnet(sc, req, dhcp, st, iface)?
        };
        st.relayed = 1;
        st.msg = st.r.start;
    } else {
        st.subnet_index = direct_subnet(st, iface)?;
        st.relayed = 0;
        st.r.start = dhcp;
    }
    reply_source(req, st, iface)?;
    // SAFETY: a map value the controller only ever writes whole; read-only here.
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
        // A Request of a client whose binding exists: the controller extends it, as a Renew
        // (RFC 8415 section 18.3.2; `Ctx::request` chooses the binding first).
        MSG_REQUEST => {
            if r.server_ids != 1 {
                return Err(stat::PASS_SERVER_ID);
            }
            (MSG_REPLY, stat::TX_REQUEST, 1)
        }
        // Confirm carries no Server ID (section 16.5); the reason is refined in `confirm`.
        MSG_CONFIRM => {
            if r.server_ids != 0 {
                return Err(stat::PASS_SERVER_ID);
            }
            (MSG_REPLY, stat::TX_CONFIRM, 0)
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
    // The controller's Reply that commits gives such a client its reconfigure key (a key per
    // binding, not in the maps): `Ctx::push_reconfigure_key`.
    if commits == 1 && r.reconf_accept == 1 && subnet.reconfigure == 1 {
        return Err(stat::PASS_RECONFIGURE);
    }

    if subnet.options_fit == 0 && r.msg_type != MSG_CONFIRM {
        return Err(stat::PASS_OPTIONS_TOO_BIG);
    }
    // Class membership is the controller's, judged on each message (a Confirm's answer
    // depends on the link alone): what the program cannot compare is passed on; a known
    // client's inputs are compared with its binding's below.
    if subnet.client_classes & CLASSES_PASS != 0 && r.msg_type != MSG_CONFIRM {
        return Err(stat::PASS_CLIENT_CLASS);
    }
    if r.oros == 1 && (r.oro_len > MAX_ORO * 2 || r.oro_len & 1 != 0) {
        return Err(stat::PASS_UNSUPPORTED);
    }
    st.want_slots = 0;
    st.want_pd_exclude = 0;
    st.send_options = 1;
    // The subnet's slots, unless the binding's leases bring options of their own (below).
    st.option_set = 0;

    st.has_binding = 0;
    st.has_status = 0;
    if r.msg_type == MSG_CONFIRM {
        return confirm(sc, req, st);
    }
    if r.msg_type == MSG_INFORMATION_REQUEST {
        if r.client_ids == 1 && r.client_id_len > FAST_DUID_MAX {
            return Err(stat::PASS_UNSUPPORTED);
        }
        // No binding to compare with: only a request no class with options can take in gets
        // the subnet's own options.
        let classes = subnet.client_classes;
        if classes & CLASSES_CHECK != 0
            && (classes & CLASSES_BARE_INFORMATION == 0 || r.user_classes | r.vendor_classes != 0)
        {
            return Err(stat::PASS_CLIENT_CLASS);
        }
        (st.want_slots, st.want_pd_exclude) =
            match_oro(req, r, &subnet.options, subnet.option_count);
        return Ok(());
    }
    if r.client_ids != 1 {
        return Err(stat::PASS_MALFORMED);
    }
    if r.client_id_len > FAST_DUID_MAX || r.client_id_len == 0 {
        return Err(stat::PASS_DUID_TOO_LONG);
    }
    // The clock only matters from here on (an Information-Request needs none).
    // SAFETY: a helper without arguments or side effects.
    st.now_ns = unsafe { bpf_ktime_get_coarse_ns() }.wrapping_add(cfg.clock_to_unix_ns);
    let now = st.now_ns / 1_000_000_000;
    // SAFETY: the scratch slot's binding key, used by nothing else while this reference lives.
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
    // By reference on purpose: `*key` would copy the key onto the stack first.
    #[allow(clippy::needless_borrows_for_generic_args)]
    let binding = BINDINGS.get_ptr_mut(&*key).ok_or(stat::PASS_UNKNOWN_DUID)?;
    // SAFETY: a map value; the controller and other CPUs only ever store whole fields, and the
    // one write here (the expiry, in `commit`) is a single aligned 8-byte store.
    let b = unsafe { &mut *binding };
    if b.subnet as u32 != st.subnet_index {
        return Err(stat::PASS_WRONG_LINK);
    }
    if b.expires <= now {
        return Err(stat::PASS_EXPIRED);
    }
    // The controller may refuse a known client's Solicit or Request on a full interface unless
    // one of its leases came through it (`Ctx::over_client_limit`).
    let hands_out = r.msg_type == MSG_SOLICIT || r.msg_type == MSG_REQUEST;
    if cfg.interface_client_limit == 1 && hands_out && b.ifindex != st.ifindex {
        return Err(stat::PASS_CLIENT_LIMIT);
    }
    // A lease of the redundant peer's half: the controller gives a Solicit or Request one of
    // its own instead (`Ctx::binding`).
    if hands_out && b.flags & BINDING_RENEW_ONLY != 0 {
        return Err(stat::PASS_PEER_HALF);
    }
    // Renew and Rebind must name the bound address/prefix; a Solicit or a Request may leave it
    // out (the controller chooses the binding before any hint).
    let need_addr = r.msg_type == MSG_RENEW || r.msg_type == MSG_REBIND;
    if !ias_match(req, r, b, need_addr) {
        return Err(stat::PASS_IA_MISMATCH);
    }
    // The binding's option sets follow the classes its inputs put the client in.
    if subnet.client_classes & CLASSES_CHECK != 0 {
        let known = CLASS_INPUTS
            .get(b.class_inputs as u32)
            .ok_or(stat::PASS_CLASS_INPUTS)?;
        if !(class_inputs_match(req, r, known, st.ifindex)
            && (subnet.client_classes & CLASSES_CHECK_RELAYS == 0
                || relay_inputs_match(sc, req, st, known)))
        {
            return Err(stat::PASS_CLASS_INPUTS);
        }
    }
    // The options of this reply depend on the pools, pd-pools and reservations of the leases
    // it grants (the controller's `Ctx::push_options`): the binding names the set for the
    // request's IAs (`ias_match` allows one IA_NA, one IA_PD, or both).
    let set = match (r.na_count, r.pd_count) {
        (1, 0) => b.option_sets[OPTION_SET_NA],
        (0, 1) => b.option_sets[OPTION_SET_PD],
        _ => b.option_sets[OPTION_SET_NA_PD],
    };
    let mut set_pd_exclude = 0;
    if set == 0 {
        (st.want_slots, st.want_pd_exclude) =
            match_oro(req, r, &subnet.options, subnet.option_count);
    } else {
        // A set the controller could not make (`OPTION_SET_NONE`) is beyond the array.
        let options = OPTION_SETS
            .get(set as u32)
            .filter(|o| o.in_use())
            .ok_or(stat::PASS_BINDING_OPTIONS)?;
        (st.want_slots, st.want_pd_exclude) =
            match_oro(req, r, &options.options, options.option_count);
        st.option_set = set as u32;
        set_pd_exclude = options.pd_exclude_len;
    }
    // A Prefix Exclude asked for goes inside the IAPREFIX, from the binding's set (`build`);
    // a set without it (none had room) leaves it to the controller.
    if b.flags & BINDING_PD_EXCLUDE != 0
        && st.want_pd_exclude == 1
        && r.pd_count == 1
        && set_pd_exclude == 0
    {
        return Err(stat::PASS_PD_EXCLUDE);
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
        move_expiry(b, st);
    }
    Ok(())
}

/// Whether the request carries what the binding's classes were judged on
/// (`BindingValue::class_inputs`, by the controller's `classes::member_of`): the same one User
/// Class and one Vendor Class body, byte for byte, or the same absence, and the same interface
/// when some class looks at interfaces. Classes on the DUID need no check (the binding is the
/// DUID's); the relays are `relay_inputs_match`'s. `known` is the binding's `CLASS_INPUTS`
/// entry (looked up once for both).
#[inline(always)]
fn class_inputs_match(req: *const u8, r: &Request, known: &ClassInputs, ifindex: u32) -> bool {
    if known.present & CLASS_INPUT_IN_USE == 0 || (known.ifindex != 0 && known.ifindex != ifindex) {
        return false;
    }
    let user = (known.present & CLASS_INPUT_USER != 0) as u8;
    let vendor = (known.present & CLASS_INPUT_VENDOR != 0) as u8;
    if r.user_classes != user || r.vendor_classes != vendor {
        return false;
    }
    let same = |off: usize, len: usize, known_len: u16, known: *const u8| {
        len == known_len as usize && eq_prefix::<FAST_CLASS_DATA_MAX>(req, off, known, 0, len)
    };
    (user == 0
        || same(
            r.user_class_off,
            r.user_class_len,
            known.user_class_len,
            known.user_class.as_ptr(),
        ))
        && (vendor == 0
            || same(
                r.vendor_class_off,
                r.vendor_class_len,
                known.vendor_class_len,
                known.vendor_class.as_ptr(),
            ))
}

/// Whether the request's relays are what the binding's classes were judged on
/// (`CLASSES_CHECK_RELAYS`): as many hops, and each hop's Interface-ID and the innermost
/// Remote-ID equal to the same class value (`RELAY_CLASS_VALUES`), or to none, as then.
#[inline(always)]
fn relay_inputs_match(sc: *mut Scratch, req: *const u8, st: &State, known: &ClassInputs) -> bool {
    let hops = st.relayed + st.two_hops;
    if hops != known.relay_hops {
        return false;
    }
    if hops == 0 {
        return true;
    }
    let inner = &st.relay;
    let interface_id = relay_value(
        sc,
        req,
        RELAY_VALUE_INTERFACE_ID,
        inner.has_interface_id,
        inner.interface_id_off,
        inner.interface_id_len,
    );
    let remote_id = relay_value(
        sc,
        req,
        RELAY_VALUE_REMOTE_ID,
        inner.has_remote_id,
        inner.remote_id_off,
        inner.remote_id_len,
    );
    if interface_id != known.inner_interface_id || remote_id != known.remote_id {
        return false;
    }
    st.two_hops == 0
        || relay_value(
            sc,
            req,
            RELAY_VALUE_INTERFACE_ID,
            st.outer.has_interface_id,
            st.outer.interface_id_off,
            st.outer.interface_id_len,
        ) == known.outer_interface_id
}

/// The `RELAY_CLASS_VALUES` index of the `len` bytes at `off` as `kind` (0: absent, or no
/// class names them; a value longer than any a class may name is none of theirs).
#[inline(always)]
fn relay_value(
    sc: *mut Scratch,
    req: *const u8,
    kind: u8,
    present: u8,
    off: usize,
    len: usize,
) -> u8 {
    if present == 0 || len > FAST_RELAY_VALUE_MAX {
        return 0;
    }
    // SAFETY: the scratch slot's relay-value key, used by nothing else while this lives.
    let key = unsafe { &mut (*sc).relay_value };
    key.kind = kind;
    key.len = len as u8;
    let words = key.data.as_mut_ptr();
    for w in 0..FAST_RELAY_VALUE_MAX / 8 {
        let word = rd64(req, off + w * 8) & keep_bytes(len.saturating_sub(w * 8));
        // SAFETY: the key's data is FAST_RELAY_VALUE_MAX bytes long, a multiple of 8.
        unsafe { core::ptr::write_unaligned(words.add(w * 8) as *mut u64, word) };
    }
    // SAFETY: a map value the controller only ever writes whole; read-only here.
    // By reference, as for `BINDINGS`: the key stays the one copy, in scratch.
    #[allow(clippy::needless_borrows_for_generic_args)]
    let index = unsafe { RELAY_CLASS_VALUES.get(&*key) };
    index.copied().unwrap_or(0)
}

/// Which of `slots` (the first `count`) the ORO lists (`State::want_slots`), and whether it
/// lists Prefix Exclude (`State::want_pd_exclude`): the controller's `options::sent_in`, the
/// reply applying `always-send` and the message rule. The ORO's length was checked.
#[inline(always)]
fn match_oro(
    req: *const u8,
    r: &Request,
    slots: &[OptionSlot; FAST_OPTION_SLOTS],
    count: u8,
) -> (u8, u8) {
    let (mut want_slots, mut want_pd_exclude) = (0u8, 0u8);
    if r.oros == 1 {
        let count = count as usize;
        for i in 0..MAX_ORO {
            // Stop at the end (a test per code left would cost more than the codes).
            if i * 2 >= r.oro_len {
                break;
            }
            let code = rd16(req, r.oro_off + i * 2);
            let mut want = 0u8;
            // An index loop, as before the slots came from two maps: the shape the verifier
            // and the benchmark know.
            #[allow(clippy::needless_range_loop)]
            for j in 0..FAST_OPTION_SLOTS {
                if j >= count {
                    break;
                }
                want |= ((code == slots[j].code) as u8) << j;
            }
            want_slots |= want;
            want_pd_exclude |= (code == OPT_PD_EXCLUDE) as u8;
        }
    }
    (want_slots, want_pd_exclude)
}

/// A Confirm (RFC 8415 section 18.3.3), as the controller's `Ctx::confirm` decides it: with the
/// address of its one IA_NA inside the prefix of the subnet serving the request, Success; in no
/// subnet's prefix, NotOnLink; either way with no IA and no requested option. It needs no
/// binding. Subnet prefixes never overlap (the configuration refuses it) and `LINKS` holds each
/// one. An address of another subnet is passed on: that subnet may share the link (a shared
/// network), which only the controller knows.
#[inline(always)]
fn confirm(sc: *mut Scratch, req: *const u8, st: &mut State) -> Result<(), Reason> {
    let r = &st.r;
    if r.client_ids != 1 {
        return Err(stat::PASS_MALFORMED);
    }
    if r.client_id_len > FAST_DUID_MAX {
        return Err(stat::PASS_DUID_TOO_LONG);
    }
    if r.na_count != 1 || r.na_has_addr != 1 {
        return Err(stat::PASS_CONFIRM_NO_ADDRESS);
    }
    // SAFETY: the scratch slot's LPM key, used by nothing else while this reference lives.
    let key = unsafe { &mut (*sc).link_key };
    key.prefix_len = 128;
    copy_fixed::<16>(key.data.as_mut_ptr(), 0, req, r.na_addr_off);
    // Another subnet's prefix may be on this link too (a shared network): the controller judges.
    let on_link = match LINKS.get(key) {
        Some(&subnet) if subnet as u32 == st.subnet_index => true,
        Some(_) => return Err(stat::PASS_CONFIRM_OTHER_SUBNET),
        None => false,
    };
    st.send_options = 0;
    st.has_status = 1;
    if on_link {
        st.status_code = STATUS_SUCCESS as u8;
    } else {
        st.status_code = STATUS_NOT_ON_LINK as u8;
        st.reason = stat::TX_CONFIRM_NOT_ON_LINK as u8;
    }
    Ok(())
}

/// The subnet of a one-hop relayed client, by the controller's rule (`dhcp-user`,
/// `server/handler.rs`: `relayed_subnet`): the relay's link-address looked up in `LINKS`. A
/// link-address of `::` is a Lightweight DHCPv6 Relay Agent (RFC 6221) on this link: with the
/// client's link-local peer-address (no hop then carries a global address) the interface's own
/// subnet serves it. A global peer-address the controller would try is passed on.
#[inline(always)]
fn relayed_subnet(
    sc: *mut Scratch,
    req: *const u8,
    hop: usize,
    st: &State,
    iface: &IfaceConfig,
) -> Result<u32, Reason> {
    let link = hop + relay::LINK_ADDRESS;
    if rd64(req, link) | rd64(req, link + 8) == 0 {
        if rd16(req, hop + relay::PEER_ADDRESS) & 0xffc0 != 0xfe80 {
            return Err(stat::PASS_WRONG_LINK);
        }
        return direct_subnet(st, iface);
    }
    link_subnet(sc, req, link)
}

/// The subnet of a client on the link the frame came in on (a direct one, or one behind an
/// LDRA there), by the controller's rule (`Config::vlan_subnet`, the receiving interface's
/// direct subnet): on an interface with VLAN lines, a tagged frame's line in `VLANS`
/// (`VlanKey::lookups`: exact, then every inner tag), else passed on; otherwise the interface's.
#[inline(always)]
fn direct_subnet(st: &State, iface: &IfaceConfig) -> Result<u32, Reason> {
    if iface.has_vlans == 1 && (st.outer_vlan | st.inner_vlan) != 0 {
        let [exact, any] = VlanKey::lookups(st.ifindex, st.outer_vlan, st.inner_vlan);
        // SAFETY: map values the controller only ever writes whole; read-only here.
        // By reference, as for `BINDINGS`: the keys stay the one copy on the stack.
        #[allow(clippy::needless_borrows_for_generic_args)]
        let found = unsafe { VLANS.get(&exact).or_else(|| VLANS.get(&any)) };
        return found
            .map(|&subnet| subnet as u32)
            .ok_or(stat::PASS_NO_VLAN_LINE);
    }
    if iface.has_subnet == 0 {
        return Err(stat::PASS_WRONG_LINK);
    }
    Ok(iface.subnet as u32)
}

/// The subnet of a client behind two relay hops, by the controller's rule: the inner hop's
/// link-address when global; when it is `::` or link-local (an LDRA, say) and its peer-address
/// link-local, the outer hop's link-address. Whatever else the controller would try (a global
/// inner peer-address, the outer peer-address, the interface) is passed on.
#[inline(always)]
fn two_hop_subnet(
    sc: *mut Scratch,
    req: *const u8,
    outer: usize,
    inner: usize,
) -> Result<u32, Reason> {
    let link = inner + relay::LINK_ADDRESS;
    let unspecified = rd64(req, link) | rd64(req, link + 8) == 0;
    if !unspecified && rd16(req, link) & 0xffc0 != 0xfe80 {
        return link_subnet(sc, req, link);
    }
    if rd16(req, inner + relay::PEER_ADDRESS) & 0xffc0 != 0xfe80 {
        return Err(stat::PASS_WRONG_LINK);
    }
    let link = outer + relay::LINK_ADDRESS;
    if rd64(req, link) | rd64(req, link + 8) == 0 || rd16(req, link) & 0xffc0 == 0xfe80 {
        return Err(stat::PASS_WRONG_LINK);
    }
    link_subnet(sc, req, link)
}

/// The subnet whose prefix holds the 16 bytes at `link` (`LINKS`), else passed on.
#[inline(always)]
fn link_subnet(sc: *mut Scratch, req: *const u8, link: usize) -> Result<u32, Reason> {
    // The key lives in scratch: an unaligned 8-byte copy into the stack would be refused.
    // SAFETY: the scratch slot's LPM key, used by nothing else while this reference lives.
    let key = unsafe { &mut (*sc).link_key };
    key.prefix_len = 128;
    copy_fixed::<16>(key.data.as_mut_ptr(), 0, req, link);
    Ok(*LINKS.get(key).ok_or(stat::PASS_WRONG_LINK)? as u32)
}

/// The reply's IPv6 source, by the controller's rule (`dhcp-user/src/netif.rs`, `reply_source`):
/// a request sent to one of our unicast addresses is answered from it; one sent to a group we
/// joined (ff02::1:2, and ff05::1:3 for relays) from the interface's link-local address when the
/// reply goes to a link-local address, else from its one global address. Direct requests must
/// come to ff02::1:2 (a unicast one earns UseMulticast from the controller: we never hand out
/// the Unicast option). Fills `st.source`.
#[inline(always)]
pub(crate) fn reply_source(
    req: *const u8,
    st: &mut State,
    iface: &IfaceConfig,
) -> Result<(), Reason> {
    let to = st.l3 + ip6::DST;
    if rd8(req, to) != 0xff {
        if st.relayed == 0 {
            return Err(stat::PASS_UNSUPPORTED);
        }
        if !for_our_mac(req, to, iface) {
            return Err(stat::PASS_NOT_OUR_MAC);
        }
        // Only to an address of this interface the fast path knows: anything else is another
        // host's (the kernel would forward or drop it) or ours on another interface, which the
        // controller answers.
        let ours = eq_fixed::<16>(req, to, iface.link_local.as_ptr(), 0)
            || (iface.has_global == 1 && eq_fixed::<16>(req, to, iface.global.as_ptr(), 0));
        if !ours {
            return Err(stat::PASS_NOT_OUR_ADDRESS);
        }
        copy_fixed::<16>(st.source.as_mut_ptr(), 0, req, to);
        return Ok(());
    }
    let joined = eq_fixed::<16>(req, to, ALL_RELAYS_AND_SERVERS.as_ptr(), 0)
        || (st.relayed == 1 && eq_fixed::<16>(req, to, ALL_DHCP_SERVERS.as_ptr(), 0));
    if !joined {
        return Err(stat::PASS_UNSUPPORTED);
    }
    if !for_our_mac(req, to, iface) {
        return Err(stat::PASS_NOT_OUR_MAC);
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

/// Whether the frame is addressed to us on the link as well: a unicast to the interface's MAC,
/// a group to the group's MAC. The kernel drops anything else before the controller's socket
/// (another host's frame, seen by a promiscuous device: a bridge port, a capture), and a reply
/// would answer a request that was never ours.
#[inline(always)]
fn for_our_mac(req: *const u8, to: usize, iface: &IfaceConfig) -> bool {
    let mac = eth::DST;
    if rd8(req, to) == 0xff {
        return rd16(req, mac) == ETH_IPV6_MCAST
            && rd16(req, mac + 2) == rd16(req, to + 12)
            && rd16(req, mac + 4) == rd16(req, to + 14);
    }
    let ours = |at: usize| u16::from_be_bytes([iface.mac[at], iface.mac[at + 1]]);
    rd16(req, mac) == ours(0) && rd16(req, mac + 2) == ours(2) && rd16(req, mac + 4) == ours(4)
}

#[inline(always)]
pub(crate) fn server_id_matches(req: *const u8, r: &Request, cfg: &GlobalConfig) -> bool {
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
pub(crate) fn ias_match(req: *const u8, r: &Request, b: &BindingValue, need_addr: bool) -> bool {
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
