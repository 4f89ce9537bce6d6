//! Writes the whole reply frame (Ethernet, IPv6, UDP, Relay-Repl, the DHCPv6 reply in the
//! controller's canonical option order) into the scratch `out` buffer.

use crate::{csum::*, maps::*, scratch::*, state::*, wire::*};
use dhcp_common::{
    dhcpv6::*, stat, BindingValue, OptionSet, OptionSlot, SubnetConfig, BINDING_HAS_NA,
    BINDING_HAS_PD, FAST_DUID_MAX, FAST_INTERFACE_ID_MAX, FAST_OPTION_MAX, FAST_OPTION_SLOTS,
    FAST_PD_EXCLUDE_MAX, FAST_SERVER_DUID_MAX, OPTION_SLOT_ALWAYS, OPTION_SLOT_INFORMATION_ONLY,
};

/// Writes the whole reply frame into `out` and its length into `new_len`.
#[inline(always)]
pub(crate) fn stage_build(sc: *mut Scratch) -> u32 {
    code(build(sc))
}

#[inline(always)]
pub(crate) fn build(sc: *mut Scratch) -> Result<(), Reason> {
    // SAFETY: `sc` is this CPU's scratch slot (the entry checked the pointer), ours alone for
    // the run; the stages hand it on and never hold two mutable views of one field.
    let req = unsafe { (*sc).req.as_mut_ptr() };
    // SAFETY: as above; request, reply and state are distinct fields of the slot.
    let out = unsafe { (*sc).out.as_mut_ptr() };
    // SAFETY: as above.
    let st = unsafe { &mut (*sc).st };
    // SAFETY: map values the controller only ever writes whole; read-only here.
    let cfg = unsafe { &*CONFIG.get_ptr(0).ok_or(stat::ABORTED)? };
    // SAFETY: as for `cfg`.
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
    let mut outer_msg_len_off = 0;
    let mut o_inner = 0;
    if st.relayed == 1 {
        if st.two_hops == 1 {
            o = put_relay_repl(out, req, o, &st.outer);
            outer_msg_len_off = o - 2;
            o_inner = o;
        }
        o = put_relay_repl(out, req, o, &st.relay);
        relay_msg_len_off = o - 2;
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
    // The binding's option set for the request's IAs, when not the subnet's slots (`decide`
    // chose it).
    let set = if st.option_set != 0 {
        // SAFETY: as for `cfg`.
        let set = unsafe { &*OPTION_SETS.get_ptr(st.option_set).ok_or(stat::ABORTED)? };
        // Cleared since `decide` (its last binding changed meanwhile): a reply without the
        // set's options would be nobody's answer, so the controller gives it.
        if !set.in_use() {
            return Err(stat::PASS_BINDING_OPTIONS);
        }
        Some(set)
    } else {
        None
    };
    if st.has_binding == 1 {
        let b = &st.binding;
        // The set's Prefix Exclude goes inside the IAPREFIX when the ORO asks for it.
        let exclude = set.filter(|s| st.want_pd_exclude == 1 && s.pd_exclude_len != 0);
        if r.na_first == 1 {
            o = put_ia_na(out, o, r, b, subnet);
            o = put_ia_pd(out, o, r, b, subnet, exclude);
        } else {
            o = put_ia_pd(out, o, r, b, subnet, exclude);
            o = put_ia_na(out, o, r, b, subnet);
        }
    }
    if st.has_status == 1 {
        o = put_status(out, o, st.status_code);
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
    // The configured options, pre-encoded by the controller in its order: the subnet's slots,
    // or the binding's set for the request's IAs (`decide` chose it).
    if st.send_options == 1 {
        let information = r.msg_type == MSG_INFORMATION_REQUEST;
        match set {
            None => {
                o = put_options(
                    out,
                    o,
                    &subnet.options,
                    subnet.option_count,
                    st,
                    information,
                );
            }
            Some(set) => {
                o = put_options(out, o, &set.options, set.option_count, st, information);
            }
        }
    }
    if st.relayed == 1 {
        put16(at(out, relay_msg_len_off), 0, (o - o_msg) as u16);
        if st.two_hops == 1 {
            put16(at(out, outer_msg_len_off), 0, (o - o_inner) as u16);
        }
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
    copy::<2>(
        udp.wrapping_add(udp::DST_PORT),
        at(req, st.l4 + udp::SRC_PORT),
    );
    put16(udp, udp::LEN, out_udp_len as u16);
    put16(udp, udp::CHECKSUM, 0);
    zero_pad(out, o);
    let mut csum = udp_csum(out, l3, o_l4, out_udp_len).ok_or(stat::ABORTED)?;
    if csum == 0 {
        csum = 0xffff;
    }
    // The fold produced the sum in memory order already: store it as is.
    // SAFETY: `at` bounds the offset inside the reply buffer; the store is 2 bytes, unaligned.
    unsafe { core::ptr::write_unaligned(at(out, o_l4 + udp::CHECKSUM) as *mut u16, csum) };
    Ok(())
}

/// The first `count` of `slots` at `o`: each slot the ORO lists (`st.want_slots`) or marked
/// always-send, those for Information-Request replies only in one. Returns the offset after.
#[inline(always)]
fn put_options(
    out: *mut u8,
    o: usize,
    slots: &[OptionSlot; FAST_OPTION_SLOTS],
    count: u8,
    st: &State,
    information: bool,
) -> usize {
    let mut o = o;
    let count = count as usize;
    // An index loop, as before the slots came from two maps: the shape the verifier
    // and the benchmark know.
    #[allow(clippy::needless_range_loop)]
    for j in 0..FAST_OPTION_SLOTS {
        if j >= count {
            break;
        }
        let slot = &slots[j];
        // A power-of-two mask bounds the length for the verifier without changing it (<= 136).
        let len = (slot.len as usize) & 0xff;
        let wanted = slot.flags & OPTION_SLOT_ALWAYS != 0 || (st.want_slots >> j) & 1 == 1;
        let allowed = slot.flags & OPTION_SLOT_INFORMATION_ONLY == 0 || information;
        if len != 0 && wanted && allowed {
            copy_upto::<FAST_OPTION_MAX>(at(out, o), slot.data.as_ptr(), len);
            o += len;
        }
    }
    o
}

/// The Relay-Repl for `hop` at `o`: its header copied (hop-count, link- and peer-address), its
/// Interface-ID if it had one, and the Relay Message option's header, whose length the caller
/// writes in the last two bytes once the message is built. Returns the offset after it.
#[inline(always)]
fn put_relay_repl(out: *mut u8, req: *mut u8, o: usize, hop: &Relay) -> usize {
    let mut o = o;
    let p = at(out, o);
    put8(p, 0, MSG_RELAY_REPL);
    copy::<33>(p.wrapping_add(1), at(req, hop.off + 1));
    o += RELAY_HLEN;
    if hop.has_interface_id == 1 {
        let p = at(out, o);
        put16(p, 0, OPT_INTERFACE_ID);
        put16(p, 2, hop.interface_id_len as u16);
        copy_upto::<FAST_INTERFACE_ID_MAX>(
            p.wrapping_add(4),
            at(req, hop.interface_id_off),
            hop.interface_id_len,
        );
        o += 4 + hop.interface_id_len;
    }
    put16(at(out, o), 0, OPT_RELAY_MSG);
    o + 4
}

#[inline(always)]
pub(crate) fn put_ia_na(
    out: *mut u8,
    o: usize,
    r: &Request,
    b: &BindingValue,
    s: &SubnetConfig,
) -> usize {
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

/// The IA_PD at `o`: one IAPREFIX, holding `exclude`'s Prefix Exclude (RFC 6603) as its one
/// sub-option when given, the controller's layout. Returns the offset after it.
#[inline(always)]
pub(crate) fn put_ia_pd(
    out: *mut u8,
    o: usize,
    r: &Request,
    b: &BindingValue,
    s: &SubnetConfig,
    exclude: Option<&OptionSet>,
) -> usize {
    if r.pd_count == 0 || b.flags & BINDING_HAS_PD == 0 {
        return o;
    }
    // Bounded for the verifier; the controller writes at most 21 bytes.
    let x_len = exclude.map_or(0, |x| (x.pd_exclude_len as usize).min(FAST_PD_EXCLUDE_MAX));
    let p = at(out, o);
    put16(p, 0, OPT_IA_PD);
    put16(p, 2, (IA_PD_WITH_PREFIX + x_len) as u16);
    put32(p, 4, r.pd_iaid);
    put32(p, 8, s.t1);
    put32(p, 12, s.t2);
    put16(p, 16, OPT_IAPREFIX);
    put16(p, 18, (IAPREFIX_FIELDS + x_len) as u16);
    put32(p, 20, s.preferred_lifetime);
    put32(p, 24, s.valid_lifetime);
    put8(p, 28, b.pd_len);
    copy::<16>(p.wrapping_add(29), b.pd_prefix.as_ptr());
    if let Some(x) = exclude {
        copy_upto::<FAST_PD_EXCLUDE_MAX>(
            p.wrapping_add(4 + IA_PD_WITH_PREFIX),
            x.pd_exclude.as_ptr(),
            x_len,
        );
    }
    o + 4 + IA_PD_WITH_PREFIX + x_len
}

/// A message-level Status Code (a Confirm's Reply) at `o`: Success or NotOnLink with the
/// controller's text for it (`dhcp_common::dhcpv6`, shared). Returns the offset after it.
#[inline(always)]
fn put_status(out: *mut u8, o: usize, code: u8) -> usize {
    let p = at(out, o);
    put16(p, 0, OPT_STATUS_CODE);
    put16(p, 4, code as u16);
    // Each text a constant, so the copy unrolls into immediate stores (no read of `.rodata`).
    let len = if code as u16 == STATUS_SUCCESS {
        put_text(p, 6, CONFIRM_ON_LINK_MESSAGE.as_bytes())
    } else {
        put_text(p, 6, CONFIRM_NOT_ON_LINK_MESSAGE.as_bytes())
    };
    put16(p, 2, (2 + len) as u16);
    o + 6 + len
}

/// Writes the constant `text` at `p + k`; returns its length.
#[inline(always)]
fn put_text(p: *mut u8, k: usize, text: &'static [u8]) -> usize {
    let mut i = 0;
    while i < text.len() {
        put8(p, k + i, text[i]);
        i += 1;
    }
    text.len()
}
