//! Client-side QinQ lines without kernel VLAN interfaces (the lab's kernel may be built without
//! 802.1Q support): a TAP device per line in the client namespace, for the client program
//! (dhclient runs on it as on a VLAN interface), and threads that put the line's tags on what
//! it sends (802.1ad S-VLAN outside, 802.1Q C-VLAN inside) out of the veth, and hand it back,
//! untagged, the frames arriving on the veth with its tags. Frames leave with their tags
//! in-band and complete checksums (a TAP device offloads nothing).

use std::io;
use std::net::Ipv6Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use crate::{io_err, run_ip, wait_ready, LabError, Namespace};

const ETH_P_ALL: u16 = 0x0003;
const ETH_P_8021Q: u16 = 0x8100;
const ETH_P_8021AD: u16 = 0x88a8;
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const PACKET_AUXDATA: libc::c_int = 8;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
/// How often the threads look at the stop flag.
const POLL_MS: libc::c_int = 100;

/// A frame's two tags as they came, outer first: (TPID, TCI) each.
pub type Tags = [(u16, u16); 2];

/// One line: its TAP interface and tags.
#[derive(Debug, Clone)]
pub struct QinqLine {
    /// The TAP interface the client runs on (`q<s>-<c>`).
    pub ifname: String,
    /// Its interface index in the client namespace (the scope of its link-local address).
    pub ifindex: u32,
    /// Its link-local address (usable: DAD is off).
    pub link_local: Ipv6Addr,
    /// Outer (802.1ad) and inner (802.1Q) VLAN IDs.
    pub s_vlan: u16,
    pub c_vlan: u16,
    /// Every frame handed to the TAP device: its tags as they came, outer first, (TPID, TCI).
    pub received: Arc<Mutex<Vec<Tags>>>,
}

/// The lines and their threads; dropping it stops the threads and removes the TAP devices.
pub struct QinqLines {
    pub lines: Vec<QinqLine>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl QinqLines {
    /// Lines `(s_vlan, c_vlan)` on the client namespace `ns`'s veth `veth`; each TAP device gets
    /// the MAC `02:51:` and then the S-VLAN and C-VLAN IDs, two bytes each (so each client its own
    /// DUID).
    pub fn start(ns: &Namespace, veth: &str, tags: &[(u16, u16)]) -> Result<QinqLines, LabError> {
        let names: Vec<String> = tags.iter().map(|(s, c)| format!("q{s}-{c}")).collect();
        let opened = {
            let names = names.clone();
            let veth = veth.to_string();
            ns.run_in(move || -> Result<(Vec<OwnedFd>, OwnedFd), LabError> {
                let taps = names
                    .iter()
                    .map(|name| open_tap(name))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok((taps, packet_socket(&veth)?))
            })??
        };
        let (taps, socket) = opened;
        let mut lines = Vec::new();
        for (name, (s, c)) in names.iter().zip(tags) {
            let [s_hi, s_lo] = s.to_be_bytes();
            let mac = format!(
                "02:51:{s_hi:02x}:{s_lo:02x}:{:02x}:{:02x}",
                c >> 8,
                c & 0xff
            );
            run_ip(["-n", &ns.name, "link", "set", "dev", name, "address", &mac])?;
            ns.exec(
                "sysctl",
                ["-qw", &format!("net/ipv6/conf/{name}/accept_dad=0")],
            )?;
            run_ip(["-n", &ns.name, "link", "set", "dev", name, "up"])?;
            let end = wait_ready(ns, name, None)?;
            lines.push(QinqLine {
                ifname: name.clone(),
                ifindex: end.ifindex,
                link_local: end.link_local,
                s_vlan: *s,
                c_vlan: *c,
                received: Arc::default(),
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let socket = Arc::new(socket);
        let taps: Vec<Arc<OwnedFd>> = taps.into_iter().map(Arc::new).collect();
        let mut threads = Vec::new();
        for (tap, line) in taps.iter().zip(&lines) {
            let (tap, socket, stop) = (tap.clone(), socket.clone(), stop.clone());
            let tags = [(ETH_P_8021AD, line.s_vlan), (ETH_P_8021Q, line.c_vlan)];
            threads.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(len) = read_ready(tap.as_raw_fd(), &mut buf) else {
                        continue;
                    };
                    if len < 14 {
                        continue;
                    }
                    let mut frame = buf[..12].to_vec();
                    for (tpid, id) in tags {
                        frame.extend_from_slice(&tpid.to_be_bytes());
                        frame.extend_from_slice(&id.to_be_bytes());
                    }
                    frame.extend_from_slice(&buf[12..len]);
                    // SAFETY: a bound packet socket and the frame's bytes.
                    unsafe {
                        libc::send(socket.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0)
                    };
                }
            }));
        }
        type Delivery = ((u16, u16), Arc<OwnedFd>, Arc<Mutex<Vec<Tags>>>);
        let by_tags: Vec<Delivery> = lines
            .iter()
            .zip(taps)
            .map(|(l, tap)| ((l.s_vlan, l.c_vlan), tap, l.received.clone()))
            .collect();
        let stop_rx = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while !stop_rx.load(Ordering::Relaxed) {
                let Ok((len, stripped)) = recv_ready(socket.as_raw_fd(), &mut buf) else {
                    continue;
                };
                let Some((tags, payload_at)) = line_of(&buf[..len], stripped) else {
                    continue;
                };
                let ids = (tags[0].1 & 0x0fff, tags[1].1 & 0x0fff);
                if let Some((_, tap, received)) = by_tags.iter().find(|(t, _, _)| *t == ids) {
                    received
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(tags);
                    let mut frame = buf[..12].to_vec();
                    frame.extend_from_slice(&buf[payload_at..len]);
                    // SAFETY: a TAP fd and the frame's bytes.
                    unsafe { libc::write(tap.as_raw_fd(), frame.as_ptr().cast(), frame.len()) };
                }
            }
        }));
        Ok(QinqLines {
            lines,
            stop,
            threads,
        })
    }
}

impl Drop for QinqLines {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// The two tags (TPID, TCI) of a received frame, outer first, and where its ethertype starts
/// after them; `stripped`: the outer tag the kernel moved into metadata.
fn line_of(frame: &[u8], stripped: Option<(u16, u16)>) -> Option<(Tags, usize)> {
    let rd = |at: usize| Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]));
    let mut tags = Vec::new();
    tags.extend(stripped);
    let mut at = 12;
    while matches!(rd(at)?, ETH_P_8021Q | ETH_P_8021AD) && tags.len() < 2 {
        tags.push((rd(at)?, rd(at + 2)?));
        at += 4;
    }
    (tags.len() == 2).then(|| ([tags[0], tags[1]], at))
}

fn open_tap(name: &str) -> Result<OwnedFd, LabError> {
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    let what = format!("creating the TAP device {name}");
    // SAFETY: a plain open; the fd is owned at once.
    let raw = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    if raw < 0 {
        return Err(io_err(what)(io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a fresh fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF with a live ifreq.
    if unsafe { libc::ioctl(raw, TUNSETIFF, &mut req) } < 0 {
        return Err(io_err(what)(io::Error::last_os_error()));
    }
    Ok(fd)
}

fn setsockopt_int(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: a valid fd and a live c_int of the right size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A packet socket on `veth` (every frame in, our own sends excluded, the stripped tag in
/// PACKET_AUXDATA), in the calling thread's namespace.
fn packet_socket(veth: &str) -> Result<OwnedFd, LabError> {
    let what = format!("packet socket on {veth}");
    let ifindex = nix::net::if_::if_nametoindex(veth)
        .map_err(|e| io_err(what.clone())(io::Error::from(e)))?;
    // SAFETY: plain socket creation; the fd is owned at once.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(ETH_P_ALL.to_be()),
        )
    };
    if raw < 0 {
        return Err(io_err(what)(io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a fresh fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    setsockopt_int(raw, libc::SOL_PACKET, PACKET_AUXDATA).map_err(io_err(what.clone()))?;
    setsockopt_int(raw, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING).map_err(io_err(what.clone()))?;
    // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set.
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
        return Err(io_err(what)(io::Error::last_os_error()));
    }
    Ok(fd)
}

/// Waits up to [`POLL_MS`] for `fd` to be readable.
fn ready(fd: RawFd) -> io::Result<()> {
    let mut poll = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one live pollfd.
    match unsafe { libc::poll(&mut poll, 1, POLL_MS) } {
        1 => Ok(()),
        0 => Err(io::ErrorKind::WouldBlock.into()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// One frame from a TAP fd, when one comes within [`POLL_MS`].
fn read_ready(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    ready(fd)?;
    // SAFETY: a valid fd and a buffer of the given length.
    let len = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(len as usize)
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

/// One frame from the packet socket with the tag (TPID, TCI) the kernel stripped, when one comes
/// within [`POLL_MS`].
fn recv_ready(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<(u16, u16)>)> {
    ready(fd)?;
    let mut control = [0u64; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr is valid; the buffers are set and outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: a valid fd and a msghdr whose buffers are live.
    let len = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    if len < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut stripped = None;
    // SAFETY: walking the control messages the kernel wrote, with the libc macros.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_PACKET && (*cmsg).cmsg_type == PACKET_AUXDATA {
                let aux = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<AuxData>());
                if aux.tp_status & TP_STATUS_VLAN_VALID != 0 {
                    let tpid = if aux.tp_status & TP_STATUS_VLAN_TPID_VALID != 0 {
                        aux.tp_vlan_tpid
                    } else {
                        ETH_P_8021Q
                    };
                    stripped = Some((tpid, aux.tp_vlan_tci));
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    Ok((len as usize, stripped))
}
