//! Ethernet (two VLAN tags at most), IPv6 (bounded extension headers), UDP to port 547 with a
//! valid checksum.

use crate::parse::line::direct_line;
use crate::{csum::*, scratch::*, state::*, wire::*};
use dhcp_common::{dhcpv6::*, stat};
use dhcp_common::{ClientMac, ClientMacKey};

/// Ethernet (two VLAN tags at most), IPv6 (bounded extension headers), UDP to port 547 with a
/// valid checksum. Fills `l3`, `l4`, `msg` bounds.
#[inline(always)]
pub(crate) fn stage_headers(sc: *mut Scratch) -> u32 {
    code(headers(sc))
}

#[inline(always)]
pub(crate) fn headers(sc: *mut Scratch) -> Result<(), Reason> {
    // SAFETY: `sc` is this CPU's scratch slot (the entry checked the pointer), ours alone for
    // the run; the stages hand it on and never hold two mutable views of one field.
    let req = unsafe { (*sc).req.as_mut_ptr() };
    // SAFETY: as above; the request bytes and the state are distinct fields.
    let st = unsafe { &mut (*sc).st };
    let frame_len = st.frame_len;
    let mut l3 = 12;
    let mut ethertype = rd16(req, l3);
    let mut vlan_ids = [0u16; MAX_VLANS];
    for vlan_id in vlan_ids.iter_mut() {
        if ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
            *vlan_id = rd16(req, l3 + 2);
            l3 += 4;
            ethertype = rd16(req, l3);
        }
    }
    // The line for admission, before anything that passes the frame on is judged.
    direct_line(st, vlan_ids[0], vlan_ids[1]);
    st.outer_vlan = vlan_ids[0] & 0x0fff;
    st.inner_vlan = vlan_ids[1] & 0x0fff;
    if ethertype != ETH_P_IPV6 {
        return Err(stat::PASS_NOT_DHCP);
    }
    l3 += 2;
    if rd8(req, l3) >> 4 != 6 {
        return Err(stat::PASS_NOT_DHCP);
    }
    // A multicast source is dropped by the kernel (RFC 4291 section 2.7), and an unspecified one
    // leaves nowhere to send the reply: both are the controller's to see (or not).
    let src = l3 + ip6::SRC;
    if rd8(req, src) == 0xff || (rd64(req, src) | rd64(req, src + 8)) == 0 {
        return Err(stat::PASS_MALFORMED);
    }
    let ip_payload = rd16(req, l3 + ip6::PAYLOAD_LEN) as usize;
    if l3 + IPV6_HLEN + ip_payload > frame_len {
        return Err(stat::PASS_MALFORMED);
    }
    // Extension headers the kernel would walk past too; a fragment goes to the controller.
    let mut next = rd8(req, l3 + ip6::NEXT_HEADER);
    let mut l4 = l3 + IPV6_HLEN;
    for _ in 0..MAX_EXT_HDRS {
        if next == 0 || next == 43 || next == 60 {
            next = rd8(req, l4);
            l4 += (rd8(req, l4 + 1) as usize + 1) * 8;
        }
    }
    if next != IPPROTO_UDP {
        return Err(stat::PASS_NOT_DHCP);
    }
    if l4 + UDP_HLEN > frame_len || rd16(req, l4 + udp::DST_PORT) != SERVER_PORT {
        return Err(stat::PASS_NOT_DHCP);
    }
    let udp_len = rd16(req, l4 + udp::LEN) as usize;
    if udp_len < UDP_HLEN + 4 || l4 + udp_len != l3 + IPV6_HLEN + ip_payload {
        return Err(stat::PASS_MALFORMED);
    }
    // Zero what follows the segment (Ethernet padding, or nothing) for the checksum's last word.
    zero_pad(req, l4 + udp_len);
    // The kernel drops a bad checksum before the controller's socket sees it: so must we. A
    // sender on this host may have left the sum to offload (the field then holds only the
    // pseudo-header's sum, which the kernel trusts); that is passed on under its own reason.
    let check = rd16(req, l4 + udp::CHECKSUM);
    if check == 0 || udp_csum(req, l3, l4, udp_len).ok_or(stat::ABORTED)? != 0 {
        let pseudo = pseudo_header_sum(req, l3, udp_len).ok_or(stat::ABORTED)?;
        if check == u16::from_be(!csum_fold(pseudo)) {
            return Err(stat::PASS_CSUM_OFFLOAD);
        }
        return Err(stat::PASS_MALFORMED);
    }
    st.l3 = l3;
    st.l4 = l4;
    st.msg = l4 + UDP_HLEN;
    st.r.end = l4 + udp_len;
    if rd8(req, st.msg) != MSG_RELAY_FORW {
        note_client_mac(sc, req, l3);
    }
    Ok(())
}

/// Builds the frame's `CLIENT_MACS` entry (its interface, VLAN IDs and IPv6 source to its
/// source MAC), written at the exit if the frame is passed on: the controller's socket gives it
/// no MAC, and a direct client's link-layer address names its line (RFC 6939).
#[inline(always)]
fn note_client_mac(sc: *mut Scratch, req: *const u8, l3: usize) {
    // SAFETY: this CPU's scratch slot; the key and the value are fields no one else holds.
    let (key, mac, st) = unsafe { (&mut (*sc).mac_key, &mut (*sc).mac, &mut (*sc).st) };
    // The first word whole (ifindex, outer and inner VLAN), so the key holds no stale bytes.
    let first = st.ifindex as u64 | (st.outer_vlan as u64) << 32 | (st.inner_vlan as u64) << 48;
    // SAFETY: `ClientMacKey` starts with those three fields, 8 bytes, 4-byte aligned.
    unsafe { core::ptr::write_unaligned(key as *mut ClientMacKey as *mut u64, first) };
    copy_fixed::<16>(key.source.as_mut_ptr(), 0, req, l3 + ip6::SRC);
    // The source MAC (bytes 6 to 11) and two bytes of padding from the EtherType: cleared.
    copy_fixed::<8>(mac as *mut ClientMac as *mut u8, 0, req, 6);
    mac._pad = [0; 2];
    st.note_mac = 1;
}
