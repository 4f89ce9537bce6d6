//! UDP I/O: one socket per served interface on `[::]:547`, bound to the device, joined to
//! All_DHCP_Relay_Agents_and_Servers (ff02::1:2) and All_DHCP_Servers (ff05::1:3) there, with
//! IPV6_RECVPKTINFO to learn where a datagram was sent. Replies leave with hop limit 64, traffic
//! class 0 and flow label 0 (auto flow labels off), from the source [`crate::netif::reply_source`]
//! picks, so the IPv6 header is the one the XDP fast path writes.

use crate::log_throttled;
use std::io::{IoSlice, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::sync::Arc;

use dhcp_common::dhcpv6::{ALL_DHCP_SERVERS, ALL_RELAYS_AND_SERVERS, SERVER_PORT};
use nix::sys::socket::{
    recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags, SockaddrIn6,
};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use crate::config::Config;

use super::handler::{subnet_containing, Inbound};
use super::vlan::{Refusal, TaggedLink, TaggedSocket};
use super::{Durability, Handling, Server, ServerError, Waiting};
use crate::store::{StoreError, Ticket};
use std::collections::VecDeque;

/// Largest datagram read (a DHCPv6 message is far smaller; jumbo relays still fit).
const MAX_DATAGRAM: usize = 65_535;
/// Receive buffer asked for each socket (bytes of queued datagrams, kernel accounting): at
/// about 2 KiB a datagram, some 4 000 requests.
const RECV_BUFFER: libc::c_int = 8 << 20;
/// Requests of one socket awaiting their commit before new ones are dropped.
pub const MAX_IN_FLIGHT: usize = 8192;

/// A served interface's socket.
pub struct InterfaceSocket {
    /// Interface name.
    pub name: String,
    /// Interface index.
    pub ifindex: u32,
    fd: AsyncFd<Socket>,
}

fn io_error(context: String) -> impl FnOnce(std::io::Error) -> ServerError {
    move |source| ServerError::Io { context, source }
}

fn set_int_option(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> std::io::Result<()> {
    // SAFETY: a valid socket fd, a pointer to a live c_int and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

impl InterfaceSocket {
    /// Opens and configures the server socket of `name` (needs CAP_NET_RAW for the device bind
    /// and CAP_NET_BIND_SERVICE for port 547).
    pub fn open(name: &str) -> Result<InterfaceSocket, ServerError> {
        let ifindex = nix::net::if_::if_nametoindex(name).map_err(|errno| ServerError::Io {
            context: format!("interface {name}"),
            source: std::io::Error::from(errno),
        })?;
        let ctx = |what: &str| format!("{what} on {name}");
        let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))
            .map_err(io_error(ctx("creating the UDP socket")))?;
        socket
            .set_only_v6(true)
            .map_err(io_error(ctx("IPV6_V6ONLY")))?;
        // No SO_REUSEADDR: a second server on the same interface (another state directory, a
        // Kea left running) must fail to bind here, not share port 547 and hand out the same
        // pool on its own. Sockets bound to different devices do not conflict without it.
        socket
            .bind_device(Some(name.as_bytes()))
            .map_err(io_error(ctx("SO_BINDTODEVICE")))?;
        socket
            .set_unicast_hops_v6(64)
            .map_err(io_error(ctx("IPV6_UNICAST_HOPS")))?;
        socket
            .set_multicast_hops_v6(64)
            .map_err(io_error(ctx("IPV6_MULTICAST_HOPS")))?;
        set_int_option(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)
            .map_err(io_error(ctx("IPV6_RECVPKTINFO")))?;
        set_int_option(&socket, libc::IPPROTO_IPV6, libc::IPV6_AUTOFLOWLABEL, 0)
            .map_err(io_error(ctx("IPV6_AUTOFLOWLABEL")))?;
        // A deep receive queue rides out the moments the controller is off the CPU (a busy
        // host, a long commit) instead of dropping the requests that arrive meanwhile: as root,
        // SO_RCVBUFFORCE lifts the net.core.rmem_max cap; else the capped size is taken.
        if set_int_option(&socket, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RECV_BUFFER).is_err() {
            if let Err(err) = socket.set_recv_buffer_size(RECV_BUFFER as usize) {
                debug!(interface = %name, error = %err, "SO_RCVBUF");
            }
        }
        socket
            .set_nonblocking(true)
            .map_err(io_error(ctx("O_NONBLOCK")))?;
        let bind = SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, SERVER_PORT, 0, 0);
        socket.bind(&bind.into()).map_err(|source| {
            let context = if source.kind() == std::io::ErrorKind::AddrInUse {
                ctx("binding [::]:547 (another DHCPv6 server, or another dhcp-user serve, already serves this interface)")
            } else {
                ctx("binding [::]:547")
            };
            ServerError::Io { context, source }
        })?;
        socket
            .join_multicast_v6(&Ipv6Addr::from(ALL_RELAYS_AND_SERVERS), ifindex)
            .map_err(io_error(ctx("joining ff02::1:2")))?;
        // RFC 8415 section 7.1: every server is a member of All_DHCP_Servers; relays given only
        // an upstream interface (ISC dhcrelay -u IFACE) send there.
        socket
            .join_multicast_v6(&Ipv6Addr::from(ALL_DHCP_SERVERS), ifindex)
            .map_err(io_error(ctx("joining ff05::1:3")))?;
        // SAFETY: the AsyncFd owns the socket, so the fd stays open as long as it is registered.
        let fd = unsafe { AsyncFd::register(socket) }
            .map_err(|err| io_error(ctx("registering the socket"))(err.into_parts().1))?;
        Ok(InterfaceSocket {
            name: name.to_string(),
            ifindex,
            fd,
        })
    }

    /// Waits for the next datagram.
    pub async fn recv(&self) -> std::io::Result<Inbound> {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        self.recv_into(&mut buf).await
    }

    /// Waits for the next datagram, read into `buf` (kept by the caller from one datagram to
    /// the next, so no 64 KiB buffer is allocated and zeroed per packet).
    pub async fn recv_into(&self, buf: &mut [u8]) -> std::io::Result<Inbound> {
        loop {
            let guard = self.fd.readable().await?;
            // Readiness stays set until a read would block, which clears it.
            drop(guard);
            match self.try_recv_into(buf) {
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
                result => return result,
            }
        }
    }

    /// The next datagram already queued, read into `buf`; `WouldBlock` when there is none.
    pub fn try_recv_into(&self, buf: &mut [u8]) -> std::io::Result<Inbound> {
        let (len, source, destination, ifindex) = self.fd.try_io(Interest::READABLE, |inner| {
            let fd = inner.as_raw_fd();
            let mut iov = [IoSliceMut::new(&mut *buf)];
            let mut cmsg = nix::cmsg_space!(libc::in6_pktinfo);
            let msg = recvmsg::<SockaddrIn6>(fd, &mut iov, Some(&mut cmsg), MsgFlags::empty())
                .map_err(std::io::Error::from)?;
            let mut destination = Ipv6Addr::UNSPECIFIED;
            let mut ifindex = self.ifindex;
            if let Ok(cmsgs) = msg.cmsgs() {
                for cmsg in cmsgs {
                    if let ControlMessageOwned::Ipv6PacketInfo(info) = cmsg {
                        destination = Ipv6Addr::from(info.ipi6_addr.s6_addr);
                        ifindex = info.ipi6_ifindex;
                    }
                }
            }
            let source = msg
                .address
                .map(|a| SocketAddrV6::new(a.ip(), a.port(), a.flowinfo(), a.scope_id()))
                .unwrap_or_else(|| SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0));
            Ok((msg.bytes, source, destination, ifindex))
        })?;
        Ok(Inbound {
            bytes: buf[..len].to_vec(),
            source,
            destination,
            ifindex,
            interface: self.name.clone(),
            link: None,
        })
    }

    /// Sends `bytes` to `to`, from `from` (`None`: the kernel chooses).
    pub async fn send(
        &self,
        bytes: &[u8],
        to: SocketAddrV6,
        from: Option<Ipv6Addr>,
    ) -> std::io::Result<()> {
        let datagram = self.datagram(to, from);
        self.fd
            .async_io(Interest::WRITABLE, |inner| datagram.send(inner, bytes))
            .await
    }

    /// As [`InterfaceSocket::send`] without waiting: `WouldBlock` when the send buffer is full.
    pub fn try_send(
        &self,
        bytes: &[u8],
        to: SocketAddrV6,
        from: Option<Ipv6Addr>,
    ) -> std::io::Result<()> {
        let datagram = self.datagram(to, from);
        self.fd
            .try_io(Interest::WRITABLE, |inner| datagram.send(inner, bytes))
    }

    /// Sends now if the socket takes it, else waits until it does.
    async fn send_soon(
        &self,
        bytes: &[u8],
        to: SocketAddrV6,
        from: Option<Ipv6Addr>,
    ) -> std::io::Result<()> {
        match self.try_send(bytes, to, from) {
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                self.send(bytes, to, from).await
            }
            result => result,
        }
    }

    fn datagram(&self, to: SocketAddrV6, from: Option<Ipv6Addr>) -> Datagram {
        let scope = if to.scope_id() == 0 && is_link_scoped(to.ip()) {
            self.ifindex
        } else {
            to.scope_id()
        };
        let source = from.unwrap_or(Ipv6Addr::UNSPECIFIED);
        Datagram {
            to: SockaddrIn6::from(SocketAddrV6::new(*to.ip(), to.port(), 0, scope)),
            info: libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: source.octets(),
                },
                ipi6_ifindex: self.ifindex,
            },
        }
    }
}

/// One receive path of a served interface: its kernel UDP socket, or the AF_PACKET socket of
/// its VLAN lines (`server::vlan`). One socket loop serves either.
pub enum Endpoint {
    /// The kernel UDP socket: untagged frames (and what a kernel VLAN interface delivers).
    Udp(InterfaceSocket),
    /// The tagged frames of a NIC with `vlans` lines.
    Tagged(TaggedSocket),
}

impl Endpoint {
    /// Interface name.
    pub fn name(&self) -> &str {
        match self {
            Endpoint::Udp(s) => &s.name,
            Endpoint::Tagged(s) => &s.name,
        }
    }

    /// Interface index.
    pub fn ifindex(&self) -> u32 {
        match self {
            Endpoint::Udp(s) => s.ifindex,
            Endpoint::Tagged(s) => s.ifindex,
        }
    }

    async fn readable(&self) -> std::io::Result<()> {
        match self {
            // Readiness stays set until a read would block, which clears it.
            Endpoint::Udp(s) => s.fd.readable().await.map(drop),
            Endpoint::Tagged(s) => s.readable().await,
        }
    }

    /// The next request queued: `Ok(Err(reason))` a frame dropped on the tagged path.
    fn try_recv_into(&self, buf: &mut [u8]) -> std::io::Result<Result<Inbound, Refusal>> {
        match self {
            Endpoint::Udp(s) => s.try_recv_into(buf).map(Ok),
            Endpoint::Tagged(s) => s.try_recv_into(buf),
        }
    }
}

/// Where a reply goes and from which source.
struct Datagram {
    to: SockaddrIn6,
    info: libc::in6_pktinfo,
}

impl Datagram {
    fn send(&self, socket: &Socket, bytes: &[u8]) -> std::io::Result<()> {
        let iov = [IoSlice::new(bytes)];
        let cmsgs = [ControlMessage::Ipv6PacketInfo(&self.info)];
        sendmsg(
            socket.as_raw_fd(),
            &iov,
            &cmsgs,
            MsgFlags::empty(),
            Some(&self.to),
        )
        .map(|_| ())
        .map_err(std::io::Error::from)
    }
}

fn is_link_scoped(address: &Ipv6Addr) -> bool {
    address.segments()[0] & 0xffc0 == 0xfe80 || address.is_multicast()
}

/// The subnet of clients directly on `iface`: the first subnet naming it (or a pattern matching
/// it) in `interfaces`, else the one containing one of the interface's addresses.
pub fn interface_subnet(config: &Config, iface: &str) -> Option<usize> {
    if let Some(index) = config
        .subnets
        .iter()
        .position(|s| s.serves_interface(iface))
    {
        return Some(index);
    }
    let addresses = nix::ifaddrs::getifaddrs().ok()?;
    addresses
        .filter(|a| a.interface_name == iface)
        .filter_map(|a| a.address.and_then(|s| s.as_sockaddr_in6().map(|s| s.ip())))
        .find_map(|address| subnet_containing(config, address))
}

/// Serves `interfaces` until `shutdown` turns true: [`open_sockets`], then [`serve_sockets`].
pub async fn serve(
    server: Arc<Server>,
    interfaces: &[String],
    shutdown: watch::Receiver<bool>,
) -> Result<(), ServerError> {
    let sockets = open_sockets(&server, interfaces)?;
    serve_sockets(server, sockets, shutdown).await
}

/// Opens every interface's socket (any failure is returned before anything is served) and
/// records each interface's direct subnet. Once this returns, requests queue in the sockets.
pub fn open_sockets(
    server: &Server,
    interfaces: &[String],
) -> Result<Vec<Arc<Endpoint>>, ServerError> {
    let mut sockets = Vec::new();
    for name in interfaces {
        let socket = InterfaceSocket::open(name)?;
        let subnet = interface_subnet(&server.config(), name);
        match subnet {
            Some(index) => info!(
                interface = %name,
                subnet = %server.config().subnets[index],
                "serving"
            ),
            None => {
                info!(interface = %name, "serving relayed clients only (no subnet on the link)")
            }
        }
        server.set_direct_subnet(name, subnet);
        sockets.push(Arc::new(Endpoint::Udp(socket)));
        if server.config().has_vlan_lines(name) {
            let mac = server
                .interfaces()
                .by_name(name)
                .map(|info| info.mac)
                .ok_or_else(|| ServerError::Io {
                    context: format!("reading the MAC of {name} (VLAN lines)"),
                    source: std::io::ErrorKind::NotFound.into(),
                })?;
            sockets.push(Arc::new(Endpoint::Tagged(TaggedSocket::open(name, mac)?)));
            info!(interface = %name, "serving its VLAN lines (tagged frames, AF_PACKET)");
        }
    }
    for subnet in &server.config().subnets {
        for lines in subnet
            .vlans
            .iter()
            .filter(|l| !interfaces.iter().any(|i| l.on(i)))
        {
            warn!(subnet = %subnet, lines = %lines, "VLAN lines on an interface not served");
        }
    }
    Ok(sockets)
}

/// Serves each socket in its own task (`socket_loop`); runs the timers; ends when `shutdown`
/// turns true.
pub async fn serve_sockets(
    server: Arc<Server>,
    sockets: Vec<Arc<Endpoint>>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), ServerError> {
    let mut tasks = tokio::task::JoinSet::new();
    for socket in sockets {
        tasks.spawn(socket_loop(server.clone(), socket, shutdown.clone()));
    }
    tasks.spawn(server.clone().run_timers(shutdown.clone()));
    tasks.spawn(server.interfaces().clone().run_refresh(shutdown.clone()));
    while tasks.join_next().await.is_some() {}
    // Everything answered is durable already; this waits for fast-path reports still queued.
    if let Err(err) = server.writer().flush().await {
        warn!(error = %err, "flushing the lease store on shutdown failed");
    }
    Ok(())
}

/// A reply waiting for its lease changes to be durable.
struct Queued {
    ticket: Ticket,
    waiting: Waiting,
    destination: Ipv6Addr,
    /// The line of a tagged request (its reply is a whole frame).
    link: Option<TaggedLink>,
}

/// One socket's loop: reads what is queued (up to [`RECV_BURST`] datagrams per turn), decides
/// each at once and sends the replies that change no lease; the others wait in order for the
/// writer, whose progress answers a whole batch with one wake-up, and are sent as it passes
/// them. No task and no channel per request. On `shutdown`, what is waiting is answered once
/// durable (at most [`SHUTDOWN_WAIT`]).
async fn socket_loop(
    server: Arc<Server>,
    socket: Arc<Endpoint>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut progress = server.writer().progress();
    let mut queue: VecDeque<Queued> = VecDeque::new();
    loop {
        tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            changed = progress.changed(), if !queue.is_empty() => {
                if changed.is_err() {
                    break;
                }
                let over = *progress.borrow_and_update();
                answer_durable(&server, &socket, &mut queue, over).await;
            }
            ready = socket.readable() => {
                if let Err(err) = ready {
                    log_throttled!(warn, interface = %socket.name(), error = %err, "receive failed");
                    continue;
                }
                for _ in 0..RECV_BURST {
                    let inbound = match socket.try_recv_into(&mut buf) {
                        Ok(Ok(inbound)) => inbound,
                        Ok(Err(reason)) => {
                            server.stats().dropped(reason);
                            continue;
                        }
                        Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(err) => {
                            log_throttled!(warn, interface = %socket.name(), error = %err, "receive failed");
                            break;
                        }
                    };
                    if queue.len() >= MAX_IN_FLIGHT {
                        server.stats().dropped("overload");
                        continue;
                    }
                    match server.begin(&inbound, Durability::Ticket) {
                        Handling::Done(None) => {}
                        Handling::Done(Some(reply)) => {
                            let link = inbound.link.as_ref();
                            send_reply(&server, &socket, &reply, inbound.source, inbound.destination, link).await;
                        }
                        Handling::Waiting(waiting) => {
                            let Some(ticket) = waiting.ticket() else {
                                // Not reached: `Durability::Ticket` always queues with a
                                // ticket. Retire the request rather than leave it in flight.
                                let _ = server.complete(waiting, Err(StoreError::WriterStopped));
                                continue;
                            };
                            queue.push_back(Queued {
                                ticket,
                                waiting,
                                destination: inbound.destination,
                                link: inbound.link,
                            });
                        }
                    }
                }
            }
        }
    }
    // Stopping: what was decided is answered once durable (the writer keeps committing).
    let deadline = tokio::time::Instant::now() + SHUTDOWN_WAIT;
    while let Some(last) = queue.back().map(|q| q.ticket) {
        let over = *progress.borrow_and_update();
        answer_durable(&server, &socket, &mut queue, over).await;
        if last.is_over(over) {
            break;
        }
        match tokio::time::timeout_at(deadline, progress.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => break,
        }
    }
}

/// How long a stopping socket loop waits for the commits of requests it decided.
const SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// Datagrams read per turn of a socket loop before it looks at the writer's progress again.
const RECV_BURST: usize = 64;

/// Sends the replies whose transaction is over (`over`: the writer's progress), in order.
async fn answer_durable(
    server: &Server,
    socket: &Endpoint,
    queue: &mut VecDeque<Queued>,
    over: u64,
) {
    while queue.front().is_some_and(|q| q.ticket.is_over(over)) {
        let Some(Queued {
            ticket,
            waiting,
            destination,
            link,
        }) = queue.pop_front()
        else {
            break;
        };
        let to = waiting.source();
        let result = server.writer().outcome(ticket);
        // A grant refused because another server holds the lease is decided again, with a new
        // ticket (issued after every one queued here, so the queue stays in order).
        match server.settle(waiting, result) {
            Handling::Done(None) => {}
            Handling::Done(Some(reply)) => {
                send_reply(server, socket, &reply, to, destination, link.as_ref()).await;
            }
            Handling::Waiting(waiting) => match waiting.ticket() {
                Some(ticket) => queue.push_back(Queued {
                    ticket,
                    waiting,
                    destination,
                    link,
                }),
                None => {
                    let _ = server.complete(waiting, Err(StoreError::WriterStopped));
                }
            },
        }
    }
}

/// Sends `reply` to `to` from the source `reply_source` picks for a request sent to `destination`
/// (a tagged request's as a whole frame on its `link`).
async fn send_reply(
    server: &Server,
    socket: &Endpoint,
    reply: &[u8],
    to: SocketAddrV6,
    destination: Ipv6Addr,
    link: Option<&TaggedLink>,
) {
    let from = server
        .interfaces()
        .reply_source(socket.ifindex(), destination, *to.ip());
    let sent = match (socket, link, from) {
        (Endpoint::Udp(udp), _, _) => udp.send_soon(reply, to, from).await,
        (Endpoint::Tagged(tagged), Some(link), Some(from)) => {
            tagged.send_soon(reply, link, to, from).await
        }
        // No address to send from (the kernel would pick one; on a line it cannot).
        (Endpoint::Tagged(_), _, _) => {
            server.stats().dropped("vlan_no_source");
            return;
        }
    };
    if let Err(err) = sent {
        debug!(to = %to, error = %err, "send failed");
        server.stats().dropped("send_failed");
    }
}
