//! Hand-built packets for the tests and the benchmark: DHCPv6 messages byte by byte from the RFC
//! 8415 layouts (`dhcpv6`) and the Ethernet/IPv6/UDP frames around them (`frame`), for
//! BPF_PROG_TEST_RUN, the load generator and checking what the fast path sent. Deliberately
//! independent of the server's codec: what checks the server must not share its encoder.

pub mod dhcpv6;
pub mod frame;

pub use frame::{FrameError, Udp6Frame};
