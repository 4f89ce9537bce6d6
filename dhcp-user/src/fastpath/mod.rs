//! The XDP fast path as the controller sees it: the embedded object, loading and attaching it,
//! and the maps it answers from.

/// The XDP program built from `dhcp-ebpf` (see build.rs), embedded so the binary is self-contained.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(env!("DHCP_EBPF_OBJECT"));
