//! What one run learns, stage by stage, kept in the per-CPU scratch slot (the BPF stack is 512
//! bytes): the parsed request, the relay hop, the decision, and the verdict reasons.

use dhcp_common::{BindingValue, LineKey};

pub(crate) type Reason = u32;

/// What a parse of the client's message found. Offsets point into `Scratch::req`.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Request {
    /// Bounds of the client message (inside the Relay-Forw when relayed).
    pub start: usize,
    pub end: usize,
    pub client_id_off: usize,
    pub client_id_len: usize,
    pub server_id_off: usize,
    pub server_id_len: usize,
    pub oro_off: usize,
    pub oro_len: usize,
    pub na_iaid: u32,
    pub na_addr_off: usize,
    pub pd_iaid: u32,
    pub pd_prefix_off: usize,
    /// Body of the (last) User Class / Vendor Class option seen.
    pub user_class_off: usize,
    pub user_class_len: usize,
    pub vendor_class_off: usize,
    pub vendor_class_len: usize,
    pub msg_type: u8,
    pub client_ids: u8,
    pub server_ids: u8,
    /// Number of IA_NA / IA_PD options seen.
    pub na_count: u8,
    pub pd_count: u8,
    /// 1 when the IA_NA carries an IAADDR / the IA_PD an IAPREFIX.
    pub na_has_addr: u8,
    pub pd_has_prefix: u8,
    pub pd_len: u8,
    /// 1 when IA_NA came before IA_PD in the request.
    pub na_first: u8,
    pub rapid_commit: u8,
    pub oros: u8,
    /// 1 when the message carries Reconfigure Accept (20).
    pub reconf_accept: u8,
    /// Number of User Class (15) / Vendor Class (16) options seen.
    pub user_classes: u8,
    pub vendor_classes: u8,
}

/// The relay hop around a relayed request. Offsets point into `Scratch::req`.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct Relay {
    /// Offset of the Relay-Forw header.
    pub off: usize,
    pub interface_id_off: usize,
    pub interface_id_len: usize,
    /// The identity naming the hop's line (`dhcp_common::LINE_*`): Interface-ID, else
    /// Remote-ID (their body at `line_off`, `line_len`), else the link-address (`LINE_LINK_ADDRESS`
    /// once the header is read); `LINE_NONE` before. Noted before the hop is judged, so even a
    /// hop passed on names its line.
    pub line_off: usize,
    pub line_len: usize,
    /// The hop's first Remote-ID body (when `has_remote_id`), what classes compare.
    pub remote_id_off: usize,
    pub remote_id_len: usize,
    pub line_kind: u8,
    pub has_interface_id: u8,
    pub has_remote_id: u8,
}

/// Everything one run learns, kept in the per-CPU scratch slot (the BPF stack is 512 bytes).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct State {
    pub r: Request,
    /// The relay hop around the client's message (the innermost).
    pub relay: Relay,
    /// The hop around `relay` when there are two (`two_hops`).
    pub outer: Relay,
    /// The line the frame came from (the key of its `LINE_BUDGET` bucket): set from the frame's
    /// interface and VLANs once they are parsed, then from the innermost relay hop read
    /// (`parse::line`); `kind` is `LINE_NONE` until then.
    pub line: LineKey,
    /// Copy of the client's binding (when `has_binding`).
    pub binding: BindingValue,
    /// The interface's MAC and the reply's IPv6 source (chosen in `decide`, copied so the build
    /// needs no second lookup).
    pub mac: [u8; 8],
    pub source: [u8; 16],
    pub frame_len: usize,
    pub l3: usize,
    pub l4: usize,
    pub msg: usize,
    pub new_len: usize,
    pub now_ns: u64,
    pub new_expires: u64,
    pub ifindex: u32,
    pub subnet_index: u32,
    /// The option slots the reply carries: 0, the subnet's (`SubnetConfig::options`); else
    /// the `OPTION_SETS` entry of the binding's (`BindingValue::option_sets`).
    pub option_set: u32,
    /// The frame's VLAN IDs, outer then inner (0: no such tag), for the subnet of its line.
    pub outer_vlan: u16,
    pub inner_vlan: u16,
    pub relayed: u8,
    /// 1 when two Relay-Forw hops wrap the client's message (an LDRA behind an L3 relay).
    pub two_hops: u8,
    pub reply_type: u8,
    pub commits: u8,
    pub has_binding: u8,
    /// Bit `j` set when the ORO lists the code of option slot `j` (of `option_set`'s slots).
    pub want_slots: u8,
    /// 1 when the ORO lists Prefix Exclude (67).
    pub want_pd_exclude: u8,
    /// 1 when the reply carries configured options (every reply but a Confirm's).
    pub send_options: u8,
    pub reason: u8,
    pub renewed_ias: u8,
    /// 1 when the reply carries a message-level Status Code (a Confirm's), `status_code`.
    pub has_status: u8,
    pub status_code: u8,
    /// 1 when the frame is a direct client's DHCPv6 message whose `CLIENT_MACS` entry
    /// (`Scratch::mac_key`, `Scratch::mac`) is to be written if it is passed on.
    pub note_mac: u8,
}

/// Stage result meaning "carry on" (every other value is a `stat` reason).
pub(crate) const GO_ON: u32 = u32::MAX;

#[inline(always)]
pub(crate) fn code(result: Result<(), Reason>) -> u32 {
    match result {
        Ok(()) => GO_ON,
        Err(reason) => reason,
    }
}
