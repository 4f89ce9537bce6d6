//! The client message's options: what the fast path reads, what it ignores, what makes it pass.

use crate::{scratch::*, state::*, wire::*};
use dhcp_common::{dhcpv6::*, stat};

/// Walks the client message's options once, noting what the fast path needs. Any option it does
/// not know (other than a few that never change the reply) sends the message to the controller.
#[inline(always)]
pub(crate) fn parse_message(req: *const u8, r: &mut Request) -> Result<(), Reason> {
    let off = r.start;
    let end = r.end;
    if end < off + 4 {
        return Err(stat::PASS_MALFORMED);
    }
    r.msg_type = rd8(req, off);
    zero(&mut r.client_ids);
    zero(&mut r.server_ids);
    zero(&mut r.oros);
    zero(&mut r.na_count);
    zero(&mut r.pd_count);
    zero(&mut r.na_has_addr);
    zero(&mut r.pd_has_prefix);
    zero(&mut r.na_first);
    zero(&mut r.rapid_commit);
    zero(&mut r.reconf_accept);
    zero(&mut r.user_classes);
    zero(&mut r.vendor_classes);
    let mut o = off + 4;
    for _ in 0..MAX_OPTIONS {
        if o >= end {
            break;
        }
        // The Request fields go through memory between options (see `parse_option`).
        clobber();
        let next = parse_option(req, r, o);
        if next >= OPTION_ERROR {
            return Err((next - OPTION_ERROR) as Reason);
        }
        o = next;
    }
    if o != end {
        return Err(stat::PASS_UNSUPPORTED);
    }
    Ok(())
}

/// `parse_option` returns the next option's offset, or this plus a `stat` reason.
pub(crate) const OPTION_ERROR: usize = 0x1_0000;

/// One option of the client message at `o`. The Request fields must live in memory across the
/// option loop: kept in registers, every combination of their values would be a separate
/// verifier state. Inlined (a bpf-to-bpf call per option costs more than the option), with a
/// `clobber` before each option so LLVM writes the fields back and reloads them.
#[inline(always)]
pub(crate) fn parse_option(req: *const u8, r: &mut Request, o: usize) -> usize {
    let end = r.end;
    if o + 4 > end {
        return OPTION_ERROR + stat::PASS_MALFORMED as usize;
    }
    let p = at(req as *mut u8, o);
    let code = get16(p, 0);
    let len = get16(p, 2) as usize;
    let body = o + 4;
    if body + len > end {
        return OPTION_ERROR + stat::PASS_MALFORMED as usize;
    }
    // The controller's decoder refuses a DUID outside these bounds and drops the message.
    if (code == OPT_CLIENTID || code == OPT_SERVERID)
        && !(DUID_MIN_LEN..=DUID_MAX_LEN).contains(&len)
    {
        return OPTION_ERROR + stat::PASS_MALFORMED as usize;
    }
    match code {
        OPT_CLIENTID => {
            r.client_ids += 1;
            r.client_id_off = body;
            r.client_id_len = len;
        }
        OPT_SERVERID => {
            r.server_ids += 1;
            r.server_id_off = body;
            r.server_id_len = len;
        }
        OPT_ORO => {
            r.oros += 1;
            r.oro_off = body;
            r.oro_len = len;
        }
        OPT_IA_NA => {
            if len == IA_NA_WITH_ADDR && get16(p, 16) == OPT_IAADDR && get16(p, 18) == 24 {
                r.na_has_addr = 1;
                r.na_addr_off = body + 16;
            } else if len != IA_NA_BARE {
                return OPTION_ERROR + stat::PASS_UNSUPPORTED as usize;
            }
            if r.pd_count == 0 {
                r.na_first = 1;
            }
            r.na_count += 1;
            r.na_iaid = get32(p, 4);
        }
        OPT_IA_PD => {
            if len == IA_PD_WITH_PREFIX && get16(p, 16) == OPT_IAPREFIX && get16(p, 18) == 25 {
                r.pd_has_prefix = 1;
                // SAFETY: as `get16`.
                r.pd_len = unsafe { *p.add(4 + 16 + 8) };
                r.pd_prefix_off = body + 16 + 9;
            } else if len != IA_PD_BARE {
                return OPTION_ERROR + stat::PASS_UNSUPPORTED as usize;
            }
            r.pd_count += 1;
            r.pd_iaid = get32(p, 4);
        }
        OPT_RAPID_COMMIT => {
            if len != 0 {
                return OPTION_ERROR + stat::PASS_MALFORMED as usize;
            }
            r.rapid_commit = 1;
        }
        OPT_ELAPSED_TIME => {
            if len != 2 {
                return OPTION_ERROR + stat::PASS_MALFORMED as usize;
            }
        }
        // The controller's decoder refuses a Reconfigure Accept with a body (RFC 8415 section
        // 21.20: it has none) and drops the message.
        OPT_RECONF_ACCEPT => {
            if len != 0 {
                return OPTION_ERROR + stat::PASS_MALFORMED as usize;
            }
            r.reconf_accept = 1;
        }
        // What client classes are judged on (`decide::class_inputs_match`).
        OPT_USER_CLASS => {
            r.user_classes += 1;
            r.user_class_off = body;
            r.user_class_len = len;
        }
        OPT_VENDOR_CLASS => {
            r.vendor_classes += 1;
            r.vendor_class_off = body;
            r.vendor_class_len = len;
        }
        _ => return OPTION_ERROR + stat::PASS_UNSUPPORTED as usize,
    }
    body + len
}
