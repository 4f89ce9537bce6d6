//! One Relay-Forw hop around the client's message (or around the next hop in): bounds,
//! Interface-ID, Relay Message.

use crate::{scratch::*, state::*, wire::*};
use dhcp_common::{
    dhcpv6::*, stat, FAST_INTERFACE_ID_MAX, LINE_INTERFACE_ID, LINE_LINK_ADDRESS, LINE_NONE,
    LINE_REMOTE_ID,
};

/// Parses the Relay-Forw at `off`: returns the bounds of the relayed message (a client's, or
/// another Relay-Forw: the caller checks) and fills `relay`.
#[inline(always)]
pub(crate) fn parse_relay(
    req: *const u8,
    off: usize,
    end: usize,
    relay: &mut Relay,
    r: &mut Request,
) -> Result<(), Reason> {
    relay.line_kind = LINE_NONE;
    if off + RELAY_HLEN > end {
        return Err(stat::PASS_MALFORMED);
    }
    relay.off = off;
    relay.line_kind = LINE_LINK_ADDRESS;
    relay.has_interface_id = 0;
    relay.has_remote_id = 0;
    let mut inner = 0;
    let mut inner_end = 0;
    let mut o = off + RELAY_HLEN;
    for _ in 0..MAX_RELAY_OPTIONS {
        if o >= end {
            break;
        }
        if o + 4 > end {
            return Err(stat::PASS_MALFORMED);
        }
        let code = rd16(req, o);
        let len = rd16(req, o + 2) as usize;
        let body = o + 4;
        if body + len > end {
            return Err(stat::PASS_MALFORMED);
        }
        if code == OPT_RELAY_MSG {
            if inner != 0 {
                return Err(stat::PASS_UNSUPPORTED);
            }
            inner = body;
            inner_end = body + len;
        } else if code == OPT_INTERFACE_ID {
            // The line first: an Interface-ID too long to echo still names it.
            if relay.line_kind != LINE_INTERFACE_ID {
                relay.line_kind = LINE_INTERFACE_ID;
                relay.line_off = body;
                relay.line_len = len;
            }
            if relay.has_interface_id != 0 || len > FAST_INTERFACE_ID_MAX {
                return Err(stat::PASS_UNSUPPORTED);
            }
            relay.has_interface_id = 1;
            relay.interface_id_off = body;
            relay.interface_id_len = len;
        } else if code == OPT_REMOTE_ID {
            if relay.line_kind == LINE_LINK_ADDRESS {
                relay.line_kind = LINE_REMOTE_ID;
                relay.line_off = body;
                relay.line_len = len;
            }
            if len < REMOTE_ID_MIN_LEN {
                return Err(stat::PASS_UNSUPPORTED);
            }
            // The first, as the controller's classes read it.
            if relay.has_remote_id == 0 {
                relay.has_remote_id = 1;
                relay.remote_id_off = body;
                relay.remote_id_len = len;
            }
        } else if !relay_option_read_as_the_controller_does(code, len) {
            return Err(stat::PASS_UNSUPPORTED);
        }
        o = body + len;
    }
    if o != end || inner == 0 || inner_end < inner + 4 {
        return Err(stat::PASS_UNSUPPORTED);
    }
    r.start = inner;
    r.end = inner_end;
    Ok(())
}

/// True for a relay option the controller's decoder accepts as it is, whatever its body: the
/// ones relays add (Remote-ID, Subscriber-ID, Relay-ID, the client's link-layer address) within
/// the decoder's length rules. Any other option (one the decoder checks, or a code we never
/// met) sends the request to the controller, which decides with the whole decoder.
#[inline(always)]
fn relay_option_read_as_the_controller_does(code: u16, len: usize) -> bool {
    match code {
        OPT_REMOTE_ID => len >= REMOTE_ID_MIN_LEN,
        OPT_RELAY_ID => (DUID_MIN_LEN..=DUID_MAX_LEN).contains(&len),
        OPT_SUBSCRIBER_ID | OPT_CLIENT_LINKLAYER_ADDR => true,
        _ => false,
    }
}
