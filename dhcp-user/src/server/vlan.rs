//! The tagged-frame path: DHCPv6 from 802.1Q / QinQ lines of a served NIC that has no kernel
//! VLAN interface for them (a subnet's `vlans`). The kernel's stack drops such frames, so an
//! AF_PACKET socket on the NIC takes them, behind a classic BPF filter (IPv6, UDP to 547, inside
//! one or two tags; the outer tag may have been moved into metadata by VLAN rx offload, which
//! PACKET_AUXDATA gives back). The controller parses Ethernet, tags, IPv6 and UDP here, checks
//! the UDP checksum, hands the payload to the same handler with its line attached, and sends the
//! reply as a whole frame with the request's tags: the frame `dhcp-ebpf/src/reply.rs` builds for
//! the same answer, byte for byte. Untagged frames stay on the kernel UDP socket (`io.rs`).

use std::io;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use dhcp_common::dhcpv6::SERVER_PORT;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::handler::Inbound;
use super::ServerError;

const ETH_P_ALL: u16 = 0x0003;
const ETH_P_IPV6: u16 = 0x86dd;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const IPPROTO_UDP: u8 = 17;
/// The reply's hop limit, as the UDP socket's and the fast path's.
const REPLY_HOP_LIMIT: u8 = 64;
/// Longest frame read (the NIC's MTU and tags fit; a longer one is cut and dropped).
const MAX_FRAME: usize = 9216;
/// `tpacket_auxdata::tp_status` bits (linux/if_packet.h).
const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
/// Socket option numbers of linux/if_packet.h the libc crate may lack.
const PACKET_AUXDATA: libc::c_int = 8;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// One VLAN tag as it is on the wire: TPID (0x88a8 or 0x8100) and TCI (priority, DEI, ID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    /// Tag protocol identifier.
    pub tpid: u16,
    /// Tag control information; its low 12 bits are the VLAN ID.
    pub tci: u16,
}

/// Where a tagged request came from on the link, and so where its reply goes: the client's
/// (or on-link relay's) MAC and the frame's tags, outer first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaggedLink {
    /// The request's source MAC: the reply's destination.
    pub peer_mac: [u8; 6],
    /// The tags, outer first; `count` of them are valid (1 or 2).
    pub tags: [Tag; 2],
    /// Number of tags.
    pub count: u8,
}

impl TaggedLink {
    /// The VLAN IDs, outer then inner (0: no inner tag), as `VlanKey` and `vlans` name them.
    pub fn vlan_ids(&self) -> (u16, u16) {
        let id = |i: usize| {
            if usize::from(self.count) > i {
                self.tags[i].tci & 0x0fff
            } else {
                0
            }
        };
        (id(0), id(1))
    }
}

/// A tagged request taken apart: what the handler needs and where the reply goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedRequest {
    /// The line and the peer's MAC.
    pub link: TaggedLink,
    /// The IPv6 source and UDP source port.
    pub source: SocketAddrV6,
    /// The IPv6 destination.
    pub destination: Ipv6Addr,
    /// The UDP payload (the DHCPv6 message).
    pub payload: std::ops::Range<usize>,
}

/// Why a frame the filter let through is not a request to answer (the controller's drop
/// counter, `dropped{reason}`).
pub type Refusal = &'static str;

fn rd16(frame: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]))
}

/// Takes a frame apart: Ethernet (`stripped`: the outer tag the kernel moved into metadata),
/// one or two tags, IPv6 (Hop-by-Hop, Routing and Destination Options walked past, as the
/// kernel would), UDP to port 547 with a valid checksum unless `csum_not_ready` (a sender on
/// this host left it to offload, which the kernel trusts too). `our_mac`: a unicast frame must be
/// to it, a multicast one to its group's MAC.
pub fn parse_frame(
    frame: &[u8],
    stripped: Option<Tag>,
    our_mac: [u8; 6],
    csum_not_ready: bool,
) -> Result<TaggedRequest, Refusal> {
    let malformed = "vlan_malformed";
    let mut tags = [Tag { tpid: 0, tci: 0 }; 2];
    let mut count = 0usize;
    if let Some(tag) = stripped {
        tags[0] = tag;
        count = 1;
    }
    let mut at = 12;
    let mut ethertype = rd16(frame, at).ok_or(malformed)?;
    while ethertype == ETH_P_8021Q || ethertype == ETH_P_8021AD {
        if count == 2 {
            return Err("vlan_too_many_tags");
        }
        tags[count] = Tag {
            tpid: ethertype,
            tci: rd16(frame, at + 2).ok_or(malformed)?,
        };
        count += 1;
        at += 4;
        ethertype = rd16(frame, at).ok_or(malformed)?;
    }
    if count == 0 {
        // Untagged: the kernel UDP socket's (the filter should not have let it through).
        return Err("vlan_untagged");
    }
    if ethertype != ETH_P_IPV6 {
        return Err("vlan_not_dhcp");
    }
    let l3 = at + 2;
    let ip = frame.get(l3..l3 + 40).ok_or(malformed)?;
    if ip[0] >> 4 != 6 {
        return Err(malformed);
    }
    let payload_len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let end = l3 + 40 + payload_len;
    if end > frame.len() {
        return Err(malformed);
    }
    let octets = |o: usize| -> [u8; 16] { ip[o..o + 16].try_into().unwrap_or([0; 16]) };
    let (src, dst) = (Ipv6Addr::from(octets(8)), Ipv6Addr::from(octets(24)));
    if src.is_multicast() || src.is_unspecified() {
        return Err(malformed);
    }
    let mut next = ip[6];
    let mut l4 = l3 + 40;
    for _ in 0..8 {
        if !matches!(next, 0 | 43 | 60) {
            break;
        }
        next = *frame.get(l4).ok_or(malformed)?;
        l4 += (usize::from(*frame.get(l4 + 1).ok_or(malformed)?) + 1) * 8;
    }
    if next != IPPROTO_UDP || l4 + 8 > end {
        return Err("vlan_not_dhcp");
    }
    if rd16(frame, l4 + 2) != Some(SERVER_PORT) {
        return Err("vlan_not_dhcp");
    }
    let udp_len = usize::from(rd16(frame, l4 + 4).ok_or(malformed)?);
    if udp_len < 8 || l4 + udp_len != end {
        return Err(malformed);
    }
    let to_us = if dst.is_multicast() {
        let o = dst.octets();
        frame[..6] == [0x33, 0x33, o[12], o[13], o[14], o[15]]
    } else {
        frame[..6] == our_mac
    };
    if !to_us {
        return Err("vlan_not_our_mac");
    }
    // IPv6 forbids a zero UDP checksum (RFC 8200 section 8.1).
    let checksum = rd16(frame, l4 + 6).ok_or(malformed)?;
    if !csum_not_ready && (checksum == 0 || udp_sum(&src, &dst, &frame[l4..end]) != 0xffff) {
        return Err("udp_checksum");
    }
    let mut peer_mac = [0u8; 6];
    peer_mac.copy_from_slice(&frame[6..12]);
    let scope = if src.segments()[0] & 0xffc0 == 0xfe80 {
        u32::MAX
    } else {
        0
    };
    Ok(TaggedRequest {
        link: TaggedLink {
            peer_mac,
            tags,
            count: count as u8,
        },
        source: SocketAddrV6::new(src, rd16(frame, l4).ok_or(malformed)?, 0, scope),
        destination: dst,
        payload: l4 + 8..end,
    })
}

/// What the socket hands the handler for `frame` received on interface `name` (`ifindex`, MAC
/// `mac`), `stripped` and `csum_not_ready` from its PACKET_AUXDATA: the request with its line, a
/// link-local source scoped to the interface. Public so the differential test feeds the
/// controller exactly what this path would.
pub fn inbound_of(
    frame: &[u8],
    stripped: Option<Tag>,
    csum_not_ready: bool,
    mac: [u8; 6],
    ifindex: u32,
    name: &str,
) -> Result<Inbound, Refusal> {
    parse_frame(frame, stripped, mac, csum_not_ready).map(|request| {
        let mut source = request.source;
        if source.scope_id() == u32::MAX {
            source.set_scope_id(ifindex);
        }
        Inbound {
            bytes: frame[request.payload].to_vec(),
            source,
            destination: request.destination,
            ifindex,
            interface: name.to_string(),
            link: Some(request.link),
        }
    })
}

/// The one's complement sum (folded, not inverted) of the IPv6 pseudo-header and `segment`.
fn udp_sum(src: &Ipv6Addr, dst: &Ipv6Addr, segment: &[u8]) -> u16 {
    let mut sum: u64 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u64::from(word);
        }
    };
    add(&src.octets());
    add(&dst.octets());
    add(&(segment.len() as u32).to_be_bytes());
    add(&[0, 0, 0, IPPROTO_UDP]);
    add(segment);
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The reply frame: Ethernet to the peer from `our_mac` with the request's tags, IPv6 (version
/// 6, traffic class and flow label 0, hop limit 64) from `from` to `to`, UDP from 547 with its
/// checksum (0 sent as 0xffff), no padding: the fast path's frame (`dhcp-ebpf/src/reply.rs`).
pub fn build_frame(
    link: &TaggedLink,
    our_mac: [u8; 6],
    from: Ipv6Addr,
    to: SocketAddrV6,
    payload: &[u8],
) -> Vec<u8> {
    let udp_len = 8 + payload.len();
    let mut frame = Vec::with_capacity(14 + 8 + 40 + udp_len);
    frame.extend_from_slice(&link.peer_mac);
    frame.extend_from_slice(&our_mac);
    for tag in &link.tags[..usize::from(link.count).min(2)] {
        frame.extend_from_slice(&tag.tpid.to_be_bytes());
        frame.extend_from_slice(&tag.tci.to_be_bytes());
    }
    frame.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
    frame.extend_from_slice(&0x6000_0000u32.to_be_bytes());
    frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
    frame.extend_from_slice(&[IPPROTO_UDP, REPLY_HOP_LIMIT]);
    frame.extend_from_slice(&from.octets());
    frame.extend_from_slice(&to.ip().octets());
    let l4 = frame.len();
    frame.extend_from_slice(&SERVER_PORT.to_be_bytes());
    frame.extend_from_slice(&to.port().to_be_bytes());
    frame.extend_from_slice(&(udp_len as u16).to_be_bytes());
    frame.extend_from_slice(&[0, 0]);
    frame.extend_from_slice(payload);
    let mut checksum = !udp_sum(&from, to.ip(), &frame[l4..]);
    if checksum == 0 {
        checksum = 0xffff;
    }
    frame[l4 + 6..l4 + 8].copy_from_slice(&checksum.to_be_bytes());
    frame
}

/// The classic BPF filter: IPv6 UDP to port 547 behind one or two in-band tags, or behind none
/// when the kernel moved the (only, or outer) tag into metadata (`vlan_avail`). Everything else
/// on the NIC stays out of the socket. No extension headers (the common case; a request with
/// them reaches neither path, as with the UDP socket's hop-by-hop rules it would be rare).
fn filter() -> Vec<libc::sock_filter> {
    const LDH_ABS: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_ABS) as u16;
    const LDW_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const LDB_IND: u16 = (libc::BPF_LD | libc::BPF_B | libc::BPF_IND) as u16;
    const LDH_IND: u16 = (libc::BPF_LD | libc::BPF_H | libc::BPF_IND) as u16;
    const LDX_IMM: u16 = (libc::BPF_LDX | libc::BPF_W | libc::BPF_IMM) as u16;
    const JEQ: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
    const RET: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    // SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT (linux/filter.h).
    const VLAN_AVAIL: u32 = (-0x1000i32 + 48) as u32;
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    // Jump offsets count from the next instruction; the targets are named on the right.
    vec![
        op(LDH_ABS, 0, 0, 12),                   // 0: the first ethertype
        op(JEQ, 7, 0, u32::from(ETH_P_IPV6)),    // 1: -> 9 (no in-band tag)
        op(JEQ, 1, 0, u32::from(ETH_P_8021Q)),   // 2: -> 4
        op(JEQ, 0, 17, u32::from(ETH_P_8021AD)), // 3: -> 4, else drop (21)
        op(LDH_ABS, 0, 0, 16),                   // 4: behind one tag
        op(JEQ, 7, 0, u32::from(ETH_P_IPV6)),    // 5: -> 13
        op(JEQ, 0, 14, u32::from(ETH_P_8021Q)),  // 6: -> 7, else drop (21)
        op(LDH_ABS, 0, 0, 20),                   // 7: behind two tags
        op(JEQ, 6, 12, u32::from(ETH_P_IPV6)),   // 8: -> 15, else drop (21)
        op(LDW_ABS, 0, 0, VLAN_AVAIL),           // 9: untagged in-band: a stripped tag?
        op(JEQ, 10, 0, 0),                       // 10: none -> drop (21)
        op(LDX_IMM, 0, 0, 14),                   // 11
        op(JA, 0, 0, 3),                         // 12: -> 16
        op(LDX_IMM, 0, 0, 18),                   // 13
        op(JA, 0, 0, 1),                         // 14: -> 16
        op(LDX_IMM, 0, 0, 22),                   // 15
        op(LDB_IND, 0, 0, 6),                    // 16: IPv6 next header
        op(JEQ, 0, 3, u32::from(IPPROTO_UDP)),   // 17: else drop (21)
        op(LDH_IND, 0, 0, 42),                   // 18: UDP destination port
        op(JEQ, 0, 1, u32::from(SERVER_PORT)),   // 19: else drop (21)
        op(RET, 0, 0, MAX_FRAME as u32),         // 20: take it
        op(RET, 0, 0, 0),                        // 21: drop
    ]
}

fn setsockopt<T>(
    fd: libc::c_int,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: a valid fd, a pointer to a live value and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The AF_PACKET socket of one served NIC with VLAN lines.
pub struct TaggedSocket {
    /// Interface name.
    pub name: String,
    /// Interface index.
    pub ifindex: u32,
    mac: [u8; 6],
    fd: AsyncFd<OwnedFd>,
}

impl TaggedSocket {
    /// Opens the socket of `name` whose MAC is `mac` (needs CAP_NET_RAW). The filter is in place
    /// before the socket is bound, so nothing else is ever queued.
    pub fn open(name: &str, mac: [u8; 6]) -> Result<TaggedSocket, ServerError> {
        let ctx = |what: &str| format!("{what} on {name} (VLAN lines)");
        let err = |what: &str| {
            let context = ctx(what);
            move |source| ServerError::Io { context, source }
        };
        let ifindex = nix::net::if_::if_nametoindex(name)
            .map_err(|errno| err("interface")(io::Error::from(errno)))?;
        // Protocol 0: nothing is received until the bind below names one.
        // SAFETY: plain socket creation; the fd is owned at once.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(err("creating the AF_PACKET socket")(
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: `raw` is a fresh fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let program = filter();
        let prog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_ptr() as *mut libc::sock_filter,
        };
        setsockopt(raw, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
            .map_err(err("SO_ATTACH_FILTER"))?;
        setsockopt(raw, libc::SOL_PACKET, PACKET_AUXDATA, &1 as &libc::c_int)
            .map_err(err("PACKET_AUXDATA"))?;
        // Our own replies are not requests (Linux 4.20 and later).
        setsockopt(
            raw,
            libc::SOL_PACKET,
            PACKET_IGNORE_OUTGOING,
            &1 as &libc::c_int,
        )
        .map_err(err("PACKET_IGNORE_OUTGOING"))?;
        // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set below.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = ETH_P_ALL.to_be();
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: a valid fd and a sockaddr_ll of the right size.
        let rc = unsafe {
            libc::bind(
                raw,
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(err("binding the AF_PACKET socket")(
                io::Error::last_os_error(),
            ));
        }
        // SAFETY: the AsyncFd owns the fd, so it stays open as long as it is registered.
        let fd = unsafe { AsyncFd::register(fd) }
            .map_err(|e| err("registering the AF_PACKET socket")(e.into_parts().1))?;
        Ok(TaggedSocket {
            name: name.to_string(),
            ifindex,
            mac,
            fd,
        })
    }

    /// Waits until a frame may be read.
    pub async fn readable(&self) -> io::Result<()> {
        // Readiness stays set until a read would block, which clears it.
        self.fd.readable().await.map(drop)
    }

    /// The next frame already queued, into `buf`: `Ok(Ok(inbound))` a request to handle,
    /// `Ok(Err(reason))` one to drop and count, `WouldBlock` when there is none.
    pub fn try_recv_into(&self, buf: &mut [u8]) -> io::Result<Result<Inbound, Refusal>> {
        let (len, aux) = self.fd.try_io(Interest::READABLE, |inner| {
            recv_with_aux(inner.as_raw_fd(), buf)
        })?;
        if len > buf.len().min(MAX_FRAME) {
            return Ok(Err("vlan_frame_too_long"));
        }
        let stripped = (aux.tp_status & TP_STATUS_VLAN_VALID != 0).then_some(Tag {
            tpid: if aux.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 {
                aux.tp_vlan_tpid
            } else {
                ETH_P_8021Q
            },
            tci: aux.tp_vlan_tci,
        });
        let csum_not_ready = aux.tp_status & TP_STATUS_CSUMNOTREADY != 0;
        Ok(inbound_of(
            &buf[..len],
            stripped,
            csum_not_ready,
            self.mac,
            self.ifindex,
            &self.name,
        ))
    }

    /// Sends `payload` to `to` on `link` from `from`, as a whole frame.
    pub async fn send_soon(
        &self,
        payload: &[u8],
        link: &TaggedLink,
        to: SocketAddrV6,
        from: Ipv6Addr,
    ) -> io::Result<()> {
        let frame = build_frame(link, self.mac, from, to, payload);
        // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set below.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = self.ifindex as i32;
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&link.peer_mac);
        let send = |fd: libc::c_int| {
            // SAFETY: a valid fd, the frame's bytes and a sockaddr_ll of the right size.
            let rc = unsafe {
                libc::sendto(
                    fd,
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&addr as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if rc < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        self.fd
            .async_io(Interest::WRITABLE, |inner| send(inner.as_raw_fd()))
            .await
    }
}

/// `tpacket_auxdata` (linux/if_packet.h).
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct AuxData {
    tp_status: u32,
    tp_len: u32,
    tp_snaplen: u32,
    tp_mac: u16,
    tp_net: u16,
    tp_vlan_tci: u16,
    tp_vlan_tpid: u16,
}

/// One frame into `buf` with its PACKET_AUXDATA; returns its length on the wire (more than
/// `buf` when it was cut) and the aux data (all zero when the kernel sent none).
fn recv_with_aux(fd: libc::c_int, buf: &mut [u8]) -> io::Result<(usize, AuxData)> {
    // u64 words keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid; the buffers are set below and outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: a valid fd and msghdr whose buffers are live.
    let len = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_TRUNC) };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut aux = AuxData::default();
    // SAFETY: walking the control messages the kernel wrote into `control`, within
    // `msg_controllen`, with the libc macros meant for it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_PACKET && (*cmsg).cmsg_type == PACKET_AUXDATA {
                aux = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<AuxData>());
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((len as usize, aux))
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

    fn link(tags: &[(u16, u16)]) -> TaggedLink {
        let mut link = TaggedLink {
            peer_mac: PEER_MAC,
            tags: [Tag { tpid: 0, tci: 0 }; 2],
            count: tags.len() as u8,
        };
        for (i, (tpid, tci)) in tags.iter().enumerate() {
            link.tags[i] = Tag {
                tpid: *tpid,
                tci: *tci,
            };
        }
        link
    }

    /// A client's QinQ Solicit: what `build_frame` makes with the roles swapped, to the group's
    /// MAC.
    fn request(tags: &[(u16, u16)]) -> Vec<u8> {
        let client: Ipv6Addr = "fe80::2".parse().unwrap();
        let group: Ipv6Addr = "ff02::1:2".parse().unwrap();
        let mut frame = build_frame(
            &TaggedLink {
                peer_mac: [0x33, 0x33, 0, 1, 0, 2],
                ..link(tags)
            },
            PEER_MAC,
            client,
            SocketAddrV6::new(group, 546, 0, 0),
            &[1, 0xaa, 0xbb, 0xcc],
        );
        // Swap the ports: the client sends from 546 to 547.
        let l4 = 14 + 4 * tags.len() + 40;
        frame[l4..l4 + 4].copy_from_slice(&[2, 34, 2, 35]);
        let mut sum = !udp_sum(&client, &group, &{
            let mut s = frame[l4..].to_vec();
            s[6..8].copy_from_slice(&[0, 0]);
            s
        });
        if sum == 0 {
            sum = 0xffff;
        }
        frame[l4 + 6..l4 + 8].copy_from_slice(&sum.to_be_bytes());
        frame
    }

    /// Both tags in-band: the line, the peer, the payload; the reply keeps the tags (TCI whole).
    #[test]
    fn qinq_frame_parses_and_reply_keeps_tags() {
        let tags = [(ETH_P_8021AD, 0x2064), (ETH_P_8021Q, 10)];
        let frame = request(&tags);
        let parsed = parse_frame(&frame, None, OUR_MAC, false).unwrap();
        assert_eq!(parsed.link.vlan_ids(), (100, 10));
        assert_eq!(parsed.link.peer_mac, PEER_MAC);
        assert_eq!(&frame[parsed.payload.clone()], &[1, 0xaa, 0xbb, 0xcc]);
        assert_eq!(parsed.source.port(), 546);
        let reply = build_frame(
            &parsed.link,
            OUR_MAC,
            "fe80::1".parse().unwrap(),
            parsed.source,
            &[7],
        );
        assert_eq!(&reply[..12], &[PEER_MAC, OUR_MAC].concat()[..]);
        assert_eq!(&reply[12..20], &[0x88, 0xa8, 0x20, 0x64, 0x81, 0x00, 0, 10]);
        let l4 = 22 + 40;
        let sum = udp_sum(
            &"fe80::1".parse().unwrap(),
            &"fe80::2".parse().unwrap(),
            &reply[l4..],
        );
        assert_eq!(sum, 0xffff, "the reply's UDP checksum verifies");
    }

    /// The outer tag in metadata (VLAN rx offload), the inner in-band: the same line.
    #[test]
    fn stripped_outer_tag_is_the_line_s_vlan() {
        let mut frame = request(&[(ETH_P_8021AD, 100), (ETH_P_8021Q, 11)]);
        frame.drain(12..16);
        let stripped = Tag {
            tpid: ETH_P_8021AD,
            tci: 100,
        };
        let parsed = parse_frame(&frame, Some(stripped), OUR_MAC, false).unwrap();
        assert_eq!(parsed.link.vlan_ids(), (100, 11));
        assert_eq!(parsed.link.tags[0], stripped);
    }

    /// A bad UDP checksum, a third tag, an untagged frame, another host's MAC: refused, named.
    #[test]
    fn bad_frames_are_refused_by_reason() {
        let mut frame = request(&[(ETH_P_8021Q, 5)]);
        let last = frame.len() - 1;
        frame[last] ^= 1;
        assert_eq!(
            parse_frame(&frame, None, OUR_MAC, false),
            Err("udp_checksum")
        );
        assert!(parse_frame(&frame, None, OUR_MAC, true).is_ok());
        let three = request(&[(ETH_P_8021AD, 1), (ETH_P_8021Q, 2)]);
        let stripped = Some(Tag {
            tpid: ETH_P_8021AD,
            tci: 3,
        });
        assert_eq!(
            parse_frame(&three, stripped, OUR_MAC, false),
            Err("vlan_too_many_tags")
        );
        assert_eq!(
            parse_frame(&request(&[]), None, OUR_MAC, false),
            Err("vlan_untagged")
        );
        let mut other = request(&[(ETH_P_8021Q, 5)]);
        other[0..6].copy_from_slice(&[0x33, 0x33, 0, 1, 0, 3]);
        assert_eq!(
            parse_frame(&other, None, OUR_MAC, false),
            Err("vlan_not_our_mac")
        );
    }

    /// The filter's jumps land where the comments say (a wrong offset would run off the end or
    /// skip the port check).
    #[test]
    fn filter_jumps_stay_inside() {
        let program = filter();
        for (i, op) in program.iter().enumerate() {
            if op.code & 0x07 == libc::BPF_JMP as u16 {
                let ja = op.code == (libc::BPF_JMP | libc::BPF_JA) as u16;
                let targets = if ja {
                    vec![i + 1 + op.k as usize]
                } else {
                    vec![i + 1 + usize::from(op.jt), i + 1 + usize::from(op.jf)]
                };
                for t in targets {
                    assert!(t < program.len(), "instruction {i} jumps to {t}");
                }
            }
        }
        assert_eq!(program[20].k, MAX_FRAME as u32);
        assert_eq!(program[21].k, 0);
    }
}
