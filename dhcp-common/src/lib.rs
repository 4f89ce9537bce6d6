//! Types and constants shared by the XDP fast path (`dhcp-ebpf`) and the controller (`dhcp-user`).
//!
//! Every map key and value is `#[repr(C)]`, `Copy`, made of fixed-width integers and byte arrays
//! with explicit padding, so that the kernel, the controller and `bpftool map dump` (through BTF)
//! all see the same layout. No `bool`, `Option` or enums cross the boundary.
#![no_std]

pub mod dhcpv6;

/// Longest client DUID the fast path keys on. DUID-LLT (14), DUID-LL (10), DUID-UUID (18) and
/// nearly every DUID-EN fit; a client with a longer DUID is served by the controller alone.
pub const FAST_DUID_MAX: usize = 32;
/// Longest server DUID the fast path can put in a Server Identifier option.
pub const FAST_SERVER_DUID_MAX: usize = 32;
/// Longest configured option, code and length included, the fast path copies (a multiple of 8:
/// it is copied a word at a time).
pub const FAST_OPTION_MAX: usize = 136;
/// Longest Prefix Exclude option (RFC 6603: code, length, prefix-len and a subnet ID of at most
/// 16 bytes, 21 in all) an `OptionSet` carries for the IAPREFIX, rounded up to a multiple of 8
/// (it is copied a word at a time).
pub const FAST_PD_EXCLUDE_MAX: usize = 24;
/// Number of configured options a reply may carry in the fast path (`OptionSlot`s of a subnet
/// or of an `OptionSet`).
pub const FAST_OPTION_SLOTS: usize = 8;
/// Capacity of the `OPTION_SETS` array: the distinct option lists (a subnet's merged with the
/// options of a binding's pools, pd-pools and reservations) the fast path answers with. Entry 0
/// is never used (`BindingValue::option_sets` 0 names the subnet's own slots); a list beyond the
/// capacity leaves its bindings to the controller (`OPTION_SET_NONE`).
pub const MAX_OPTION_SETS: u32 = 4096;
/// `BindingValue::option_sets`: this IA combination's reply carries options the fast path has
/// no set for (more than `FAST_OPTION_SLOTS`, one longer than `FAST_OPTION_MAX`, or no room
/// left in `OPTION_SETS`): such a request is passed on (`pass_binding_options`).
pub const OPTION_SET_NONE: u16 = u16::MAX;
/// Index into `BindingValue::option_sets`: a request with an IA_NA alone.
pub const OPTION_SET_NA: usize = 0;
/// Index into `BindingValue::option_sets`: a request with an IA_PD alone.
pub const OPTION_SET_PD: usize = 1;
/// Index into `BindingValue::option_sets`: a request with both an IA_NA and an IA_PD.
pub const OPTION_SET_NA_PD: usize = 2;
/// `OptionSlot::flags`: sent whether or not the client's ORO lists the code (`always-send`).
pub const OPTION_SLOT_ALWAYS: u8 = 1;
/// `OptionSlot::flags`: only in a Reply to an Information-Request (Information Refresh Time,
/// INF_MAX_RT).
pub const OPTION_SLOT_INFORMATION_ONLY: u8 = 2;
/// Longest User Class (15) or Vendor Class (16) option body the fast path compares with the
/// one a binding's classes were judged on (a multiple of 8: compared a word at a time).
pub const FAST_CLASS_DATA_MAX: usize = 96;
/// Capacity of the `CLASS_INPUTS` array: the distinct class inputs of the bindings (clients of
/// one CPE model share one). Entry 0 is never used (`BindingValue::class_inputs` 0: none known).
pub const MAX_CLASS_INPUTS: u32 = 4096;
/// `ClassInputs::present`: the message carried one User Class option.
pub const CLASS_INPUT_USER: u8 = 1;
/// `ClassInputs::present`: the message carried one Vendor Class option.
pub const CLASS_INPUT_VENDOR: u8 = 2;
/// `ClassInputs::present`: set in every entry in use (an empty entry matches nothing).
pub const CLASS_INPUT_IN_USE: u8 = 4;
/// `SubnetConfig::client_classes`: classes can change the subnet's replies in a way the program
/// cannot check (a class on a relay value longer than `FAST_RELAY_VALUE_MAX`, or more of them
/// than `RELAY_CLASS_VALUES` holds): every request but a Confirm is passed on
/// (`pass_client_class`).
pub const CLASSES_PASS: u8 = 1;
/// `SubnetConfig::client_classes`: classes can change the subnet's replies, by what the
/// program can compare: a known client's request is answered only when its class inputs are
/// those of its binding (`BindingValue::class_inputs`), else passed on (`pass_class_inputs`).
pub const CLASSES_CHECK: u8 = 2;
/// `SubnetConfig::client_classes`, with `CLASSES_CHECK`: no class with options takes in a
/// client sending neither User nor Vendor Class, so an Information-Request without them gets
/// the subnet's own options; one with them is passed on (`pass_client_class`).
pub const CLASSES_BARE_INFORMATION: u8 = 4;
/// `SubnetConfig::client_classes`, with `CLASSES_CHECK`: a class that shapes the replies looks
/// at relay options, so the relay hops and which class value each hop's Interface-ID and the
/// innermost Remote-ID equal (`RELAY_CLASS_VALUES`) are compared too.
pub const CLASSES_CHECK_RELAYS: u8 = 8;
/// Longest relay Interface-ID or Remote-ID body (enterprise number included) a class may name
/// for the fast path to look it up (a multiple of 8).
pub const FAST_RELAY_VALUE_MAX: usize = 64;
/// Capacity of `RELAY_CLASS_VALUES`: the distinct relay values the classes name (their index,
/// from 1, fits `ClassInputs`' one-byte fields).
pub const MAX_RELAY_CLASS_VALUES: u32 = 128;
/// `RelayValueKey::kind`: a relay's Interface-ID (18).
pub const RELAY_VALUE_INTERFACE_ID: u8 = 1;
/// `RelayValueKey::kind`: a relay's Remote-ID (37) body, enterprise number first.
pub const RELAY_VALUE_REMOTE_ID: u8 = 2;

/// Key of `RELAY_CLASS_VALUES`: one relay value some class names, zero padded; the value is its
/// index (from 1). A relay's value the map does not hold is in no class's condition (index 0).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RelayValueKey {
    /// `RELAY_VALUE_INTERFACE_ID` or `RELAY_VALUE_REMOTE_ID`.
    pub kind: u8,
    pub len: u8,
    pub _pad: [u8; 6],
    pub data: [u8; FAST_RELAY_VALUE_MAX],
}

impl RelayValueKey {
    /// The key of `data` as `kind`, or `None` when longer than `FAST_RELAY_VALUE_MAX`.
    pub fn new(kind: u8, data: &[u8]) -> Option<Self> {
        let mut key = RelayValueKey {
            kind,
            len: data.len() as u8,
            _pad: [0; 6],
            data: [0; FAST_RELAY_VALUE_MAX],
        };
        key.data.get_mut(..data.len())?.copy_from_slice(data);
        Some(key)
    }
}

/// Longest Interface-ID option body from a relay the fast path echoes.
pub const FAST_INTERFACE_ID_MAX: usize = 32;
/// Number of subnets the fast path knows about (index into `SUBNETS`).
pub const MAX_SUBNETS: u32 = 256;
/// Number of interfaces the fast path serves (entries in `IFACES`).
pub const MAX_IFACES: u32 = 64;
/// Default capacity of the binding map.
pub const DEFAULT_MAX_BINDINGS: u32 = 1 << 20;

/// Key of the binding map: the client DUID, zero padded.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BindingKey {
    /// Length of `duid` that is significant (1..=FAST_DUID_MAX).
    pub duid_len: u8,
    pub _pad: [u8; 3],
    pub duid: [u8; FAST_DUID_MAX],
}

impl BindingKey {
    /// The key for `duid`, or `None` when the DUID is too long or empty for the fast path.
    pub fn new(duid: &[u8]) -> Option<Self> {
        if duid.is_empty() || duid.len() > FAST_DUID_MAX {
            return None;
        }
        let mut key = BindingKey {
            duid_len: duid.len() as u8,
            _pad: [0; 3],
            duid: [0; FAST_DUID_MAX],
        };
        key.duid[..duid.len()].copy_from_slice(duid);
        Some(key)
    }

    pub fn duid(&self) -> &[u8] {
        &self.duid[..(self.duid_len as usize).min(FAST_DUID_MAX)]
    }
}

/// `GlobalConfig::relay_selectors`: some subnet is selected by relay Interface-ID.
pub const RELAY_SELECT_BY_INTERFACE_ID: u8 = 1;
/// `GlobalConfig::relay_selectors`: some subnet is selected by relay address.
pub const RELAY_SELECT_BY_ADDRESS: u8 = 2;

/// `BindingValue::flags`: the binding holds an IA_NA with one address.
pub const BINDING_HAS_NA: u8 = 1;
/// `BindingValue::flags`: the binding holds an IA_PD with one prefix.
pub const BINDING_HAS_PD: u8 = 2;
/// `BindingValue::flags`: a lease of the binding is in the redundant peer's half of the pools
/// (and not the client's reservation). The controller extends it on a Renew or Rebind (a
/// failover) but never hands it out on a Solicit or Request, so the fast path answers only
/// those two.
pub const BINDING_RENEW_ONLY: u8 = 4;
/// `BindingValue::flags`: the binding's prefix comes from a pd-pool with a Prefix Exclude (RFC
/// 6603), which the controller puts inside the IAPREFIX when the ORO asks for it (67). The
/// binding's sets for its IA_PD (`OPTION_SET_PD`, `OPTION_SET_NA_PD`) carry it
/// (`OptionSet::pd_exclude`); a request asking for it whose set does not (no room for one) is
/// passed on.
pub const BINDING_PD_EXCLUDE: u8 = 16;
/// The `BindingValue::flags` bits naming the binding's IAs.
pub const BINDING_IAS: u8 = BINDING_HAS_NA | BINDING_HAS_PD;

/// A client's binding as the fast path needs it: at most one IA_NA with one address and one
/// IA_PD with one prefix (the shape of nearly every CPE and host). Clients with more IAs, or
/// more than one address per IA, are served by the controller alone and have no entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindingValue {
    /// Unix seconds at which the earliest valid lifetime of the binding ends.
    pub expires: u64,
    /// Unix seconds until which the lease store is sure to keep the binding's addresses for this
    /// client (its durable expiry plus the grace period). The fast path never tells a client a
    /// lifetime reaching past it, so a crash before a renewal is durable can give nothing away.
    pub durable_until: u64,
    pub na_iaid: u32,
    pub pd_iaid: u32,
    pub na_addr: [u8; 16],
    pub pd_prefix: [u8; 16],
    /// Index into `SUBNETS`: the subnet the binding was granted on.
    pub subnet: u16,
    /// `BINDING_HAS_NA` | `BINDING_HAS_PD`, and `BINDING_RENEW_ONLY`.
    pub flags: u8,
    pub pd_len: u8,
    /// Ifindex of the interface the binding's leases were granted through (0: unknown). Filled
    /// only with `interface-client-limit` set (`GlobalConfig::interface_client_limit`): the
    /// controller may refuse a Solicit or Request arriving elsewhere, so those are passed on.
    pub ifindex: u32,
    /// The configured options of a reply to each IA combination (`OPTION_SET_NA`,
    /// `OPTION_SET_PD`, `OPTION_SET_NA_PD`), which depend on the pools, pd-pools and
    /// reservations of the leases that reply grants: 0, the subnet's own slots
    /// (`SubnetConfig::options`); else an index into `OPTION_SETS`, or `OPTION_SET_NONE`.
    pub option_sets: [u16; 3],
    /// The `CLASS_INPUTS` entry holding what the client's classes were judged on when the
    /// controller last answered it (its User and Vendor Class options, the interface), which
    /// `option_sets` follow on a subnet whose replies classes shape (`CLASSES_CHECK`); 0: none
    /// known (every such request is passed on, `pass_class_inputs`).
    pub class_inputs: u16,
}

/// One configured option of a subnet, pre-encoded by the controller (code, length, body) and
/// copied verbatim into replies by the rule of `flags` and the client's ORO.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OptionSlot {
    /// The option code (matched against the ORO).
    pub code: u16,
    /// Bytes of `data` in use (code and length included); 0: an empty slot.
    pub len: u16,
    /// `OPTION_SLOT_ALWAYS` | `OPTION_SLOT_INFORMATION_ONLY`.
    pub flags: u8,
    pub _pad: [u8; 3],
    pub data: [u8; FAST_OPTION_MAX],
}

impl OptionSlot {
    pub const EMPTY: OptionSlot = OptionSlot {
        code: 0,
        len: 0,
        flags: 0,
        _pad: [0; 3],
        data: [0; FAST_OPTION_MAX],
    };

    /// The slot of option `code` with `body` (code, length and body, as on the wire), or `None`
    /// when it is longer than a slot.
    pub fn new(code: u16, body: &[u8], flags: u8) -> Option<OptionSlot> {
        let len = 4 + body.len();
        if len > FAST_OPTION_MAX {
            return None;
        }
        let mut slot = OptionSlot::EMPTY;
        slot.code = code;
        slot.len = len as u16;
        slot.flags = flags;
        slot.data[..2].copy_from_slice(&code.to_be_bytes());
        slot.data[2..4].copy_from_slice(&(body.len() as u16).to_be_bytes());
        slot.data[4..len].copy_from_slice(body);
        Some(slot)
    }
}

/// One distinct list of configured options in `OPTION_SETS`, pre-encoded as the subnet's are
/// (`SubnetConfig::options`: same slots, order and flags), for the bindings whose leases'
/// pools, pd-pools or reservations add options of their own, or whose prefix's pd-pool has a
/// Prefix Exclude (`pd_exclude`). Written by the controller, which shares an entry among the
/// bindings with the same content and clears it when none is left.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct OptionSet {
    /// Number of `options` in use (the first ones).
    pub option_count: u8,
    /// Bytes of `pd_exclude` in use (0: none).
    pub pd_exclude_len: u8,
    pub _pad: [u8; 6],
    /// The Prefix Exclude option (67: code, length, body) of the binding's pd-pool, pre-encoded
    /// for its delegated length: inside the IAPREFIX of a reply whose ORO lists 67. Its body
    /// depends on the pd-pool's `excluded-prefix` and the delegated length alone, not on the
    /// prefix, so the bindings of one pd-pool share it.
    pub pd_exclude: [u8; FAST_PD_EXCLUDE_MAX],
    pub options: [OptionSlot; FAST_OPTION_SLOTS],
}

impl OptionSet {
    pub const EMPTY: OptionSet = OptionSet {
        option_count: 0,
        pd_exclude_len: 0,
        _pad: [0; 6],
        pd_exclude: [0; FAST_PD_EXCLUDE_MAX],
        options: [OptionSlot::EMPTY; FAST_OPTION_SLOTS],
    };

    /// Whether the entry holds a list (an unused one is all zero): some option, or a Prefix
    /// Exclude (a subnet without options may have a pd-pool with one).
    #[inline(always)]
    pub const fn in_use(&self) -> bool {
        self.option_count != 0 || self.pd_exclude_len != 0
    }

    /// Sets the Prefix Exclude option with `body` (prefix-len and subnet ID, as
    /// `PdExclude::body` encodes them); false when it is longer than `pd_exclude`.
    pub fn set_pd_exclude(&mut self, body: &[u8]) -> bool {
        let len = 4 + body.len();
        if len > FAST_PD_EXCLUDE_MAX {
            return false;
        }
        self.pd_exclude = [0; FAST_PD_EXCLUDE_MAX];
        self.pd_exclude[..2].copy_from_slice(&dhcpv6::OPT_PD_EXCLUDE.to_be_bytes());
        self.pd_exclude[2..4].copy_from_slice(&(body.len() as u16).to_be_bytes());
        self.pd_exclude[4..len].copy_from_slice(body);
        self.pd_exclude_len = len as u8;
        true
    }

    /// The Prefix Exclude option's body (empty: none).
    pub fn pd_exclude_body(&self) -> &[u8] {
        let len = (self.pd_exclude_len as usize).min(FAST_PD_EXCLUDE_MAX);
        self.pd_exclude.get(4..len).unwrap_or(&[])
    }
}

/// What a client's classes were judged on, in `CLASS_INPUTS`: the bodies of the one User Class
/// (15) and one Vendor Class (16) option its message carried, and the interface it came in on
/// when some class looks at interfaces. Written by the controller, shared among the bindings
/// with the same inputs, cleared when none is left.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ClassInputs {
    /// The receiving interface's ifindex; 0: any (no class looks at the interface).
    pub ifindex: u32,
    pub user_class_len: u16,
    pub vendor_class_len: u16,
    /// `CLASS_INPUT_IN_USE` | `CLASS_INPUT_USER` | `CLASS_INPUT_VENDOR`.
    pub present: u8,
    /// With `CLASSES_CHECK_RELAYS`: the Relay-Forw hops (0 to 2), and the `RELAY_CLASS_VALUES`
    /// index (0: none) of the innermost hop's Interface-ID, of the outer hop's, and of the
    /// innermost hop's Remote-ID; all 0 otherwise.
    pub relay_hops: u8,
    pub inner_interface_id: u8,
    pub outer_interface_id: u8,
    pub remote_id: u8,
    pub _pad: [u8; 3],
    pub user_class: [u8; FAST_CLASS_DATA_MAX],
    pub vendor_class: [u8; FAST_CLASS_DATA_MAX],
}

impl ClassInputs {
    pub const EMPTY: ClassInputs = ClassInputs {
        ifindex: 0,
        user_class_len: 0,
        vendor_class_len: 0,
        present: 0,
        relay_hops: 0,
        inner_interface_id: 0,
        outer_interface_id: 0,
        remote_id: 0,
        _pad: [0; 3],
        user_class: [0; FAST_CLASS_DATA_MAX],
        vendor_class: [0; FAST_CLASS_DATA_MAX],
    };

    /// The entry for these option bodies (`None`: the message had no such option) and
    /// `ifindex`, or `None` when a body is longer than `FAST_CLASS_DATA_MAX`.
    pub fn new(
        user_class: Option<&[u8]>,
        vendor_class: Option<&[u8]>,
        ifindex: u32,
    ) -> Option<Self> {
        let mut entry = ClassInputs::EMPTY;
        entry.ifindex = ifindex;
        entry.present = CLASS_INPUT_IN_USE;
        if let Some(body) = user_class {
            entry
                .user_class
                .get_mut(..body.len())?
                .copy_from_slice(body);
            entry.user_class_len = body.len() as u16;
            entry.present |= CLASS_INPUT_USER;
        }
        if let Some(body) = vendor_class {
            entry
                .vendor_class
                .get_mut(..body.len())?
                .copy_from_slice(body);
            entry.vendor_class_len = body.len() as u16;
            entry.present |= CLASS_INPUT_VENDOR;
        }
        Some(entry)
    }
}

/// Per-subnet settings the fast path answers with. Written by the controller.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SubnetConfig {
    pub preferred_lifetime: u32,
    pub valid_lifetime: u32,
    pub t1: u32,
    pub t2: u32,
    /// 1 when the subnet is configured (0 entries are never answered from).
    pub enabled: u8,
    /// 1 when a Solicit with Rapid Commit gets a Reply straight away.
    pub rapid_commit: u8,
    /// 1 when an Advertise carries a Preference option with `preference`.
    pub send_preference: u8,
    pub preference: u8,
    /// 1 when the subnet's configured options all fit `options`; 0: every request but a Confirm
    /// is passed on (`pass_options_too_big`).
    pub options_fit: u8,
    /// Number of `options` in use (the first ones): the program looks at no more.
    pub option_count: u8,
    /// Whether client classes can change what the controller answers this subnet's clients
    /// (class options, or pools of its shared network kept for some classes), and how the
    /// program follows them: 0 (they cannot), `CLASSES_PASS`, or `CLASSES_CHECK` with
    /// `CLASSES_BARE_INFORMATION`.
    pub client_classes: u8,
    /// 1 when `reconfigure` is on for the subnet: a committing request carrying Reconfigure
    /// Accept is passed on (`pass_reconfigure`), the controller's Reply holding a per-client key.
    pub reconfigure: u8,
    /// The subnet's configured options (global ones merged in), in the controller's canonical
    /// order (by code); unused slots have `len` 0.
    pub options: [OptionSlot; FAST_OPTION_SLOTS],
}

/// Settings of one served interface, keyed by ifindex in `IFACES`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct IfaceConfig {
    pub mac: [u8; 6],
    /// Index into `SUBNETS` used for clients talking to us directly on this link.
    pub subnet: u16,
    /// The interface's link-local address: the source of replies to a link-local address when
    /// the request went to a multicast group.
    pub link_local: [u8; 16],
    /// The interface's one global (or unique-local) address: the source of replies to a global
    /// address when the request went to a multicast group. Valid when `has_global` is 1; with
    /// none or several on the interface the controller picks (or the kernel does), so such
    /// requests are passed on.
    pub global: [u8; 16],
    /// 1 when the fast path answers on this interface.
    pub enabled: u8,
    /// 1 when `subnet` is valid (a link with no subnet of its own only serves relays).
    pub has_subnet: u8,
    /// 1 when `global` is valid.
    pub has_global: u8,
    /// 1 when some subnet names VLAN lines on this interface (`vlans`): a direct client's
    /// tagged frame is then served by the subnet of its line in `VLANS`, or passed on
    /// (`pass_no_vlan_line`); 0: tags are not looked at and `subnet` serves it.
    pub has_vlans: u8,
    pub _pad: [u8; 4],
}

/// Global runtime settings, entry 0 of the one-entry `CONFIG` array.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct GlobalConfig {
    /// Added to `bpf_ktime_get_coarse_ns()` to get Unix time in nanoseconds.
    pub clock_to_unix_ns: u64,
    /// 1 when the fast path answers at all (0: everything goes to the controller).
    pub enabled: u8,
    pub server_duid_len: u8,
    /// Which relay selectors some subnet has (`relay-interface-ids`: `RELAY_SELECT_BY_INTERFACE_ID`,
    /// `relay-addresses`: `RELAY_SELECT_BY_ADDRESS`): only the controller applies them, so the
    /// relayed requests they could apply to are passed on (with addresses, every relayed one;
    /// with Interface-IDs, those carrying an Interface-ID).
    pub relay_selectors: u8,
    /// 1 when `interface-client-limit` is set: a Solicit or Request of a known client arriving
    /// on another interface than its binding's (`BindingValue::ifindex`) is passed on, as the
    /// controller may refuse it when that interface is full.
    pub interface_client_limit: u8,
    /// Per-CPU budget of packets passed on per second (0: unlimited). See `PASS_BUDGET`.
    pub pass_rate_per_cpu: u32,
    /// Packets per second each line may pass on to the controller (`line-pass-budget`; 0: no
    /// per-line admission). See [`LineKey`] and `LINE_BUDGET`.
    pub line_pass_budget: u32,
    /// How many packets a line may pass on at once above its steady rate (`line-pass-burst`,
    /// at least 1 when `line_pass_budget` is set).
    pub line_pass_burst: u32,
    pub server_duid: [u8; FAST_SERVER_DUID_MAX],
}

/// Key of the `LINKS` LPM trie: relayed traffic picks its subnet by the Relay-Forw link-address.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LinkKey {
    pub prefix_len: u32,
    pub addr: [u8; 16],
}

/// Capacity of the `VLANS` map: the (interface, S-VLAN, C-VLAN) keys the configuration's
/// `vlans` ranges expand to ([`for_each_vlan_key`]); a configuration needing more is refused.
pub const MAX_VLAN_KEYS: u32 = 1 << 16;
/// `VlanKey::inner_vlan` of an entry that stands for every C-VLAN (1 to 4094) of its S-VLAN, so
/// a range of all inner tags costs one entry per outer tag.
pub const VLAN_ANY: u16 = 0xffff;
/// Highest VLAN ID a tag may carry (4095 is reserved, IEEE 802.1Q).
pub const VLAN_ID_MAX: u16 = 4094;

/// Key of the `VLANS` map: a direct client's line by the frame's tags, to the index of its
/// subnet in `SUBNETS` (a `u16` value). `inner_vlan` is 0 for a frame with one tag and
/// [`VLAN_ANY`] for an entry matching every inner tag.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VlanKey {
    pub ifindex: u32,
    pub outer_vlan: u16,
    pub inner_vlan: u16,
}

impl VlanKey {
    /// The keys a frame's line is looked up by, in order, until one is found: its exact tags,
    /// then (with a valid inner tag) its outer tag with [`VLAN_ANY`]. The fast path and the
    /// controller both look up this way.
    pub fn lookups(ifindex: u32, outer_vlan: u16, inner_vlan: u16) -> [VlanKey; 2] {
        let exact = VlanKey {
            ifindex,
            outer_vlan,
            inner_vlan,
        };
        // A reserved inner ID (4095) is in no range: only its own key, which no entry has.
        let any = VlanKey {
            inner_vlan: if inner_vlan == 0 || inner_vlan > VLAN_ID_MAX {
                inner_vlan
            } else {
                VLAN_ANY
            },
            ..exact
        };
        [exact, any]
    }
}

/// Capacity of the `CLIENT_MACS` LRU map: the direct clients whose frames were passed on
/// recently (the least recently seen is evicted first).
pub const MAX_CLIENT_MACS: u32 = 1 << 16;

/// Key of the `CLIENT_MACS` map: a direct client's frame by where it came from: the ingress
/// interface, its VLAN IDs (low 12 bits of each tag, 0 when absent) and its IPv6 source. The
/// value is the frame's source MAC ([`ClientMac`]), which the kernel's UDP socket does not give
/// the controller (RFC 6939 option 79 for a client on our own link).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientMacKey {
    pub ifindex: u32,
    pub outer_vlan: u16,
    pub inner_vlan: u16,
    pub source: [u8; 16],
}

/// Value of the `CLIENT_MACS` map: the source MAC of the last DHCPv6 frame passed on from its
/// key, padded to 8 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ClientMac {
    pub mac: [u8; 6],
    pub _pad: [u8; 2],
}

/// Calls `f` with every `VLANS` key of the line range `outer` x `inner` on `ifindex` (ranges
/// both ends included; `inner` `None`: frames with a single tag). A full inner range (1 to
/// 4094) is one [`VLAN_ANY`] key per outer tag; any other, one key per pair.
pub fn for_each_vlan_key(
    ifindex: u32,
    outer: (u16, u16),
    inner: Option<(u16, u16)>,
    mut f: impl FnMut(VlanKey),
) {
    for outer_vlan in outer.0..=outer.1 {
        let key = |inner_vlan| VlanKey {
            ifindex,
            outer_vlan,
            inner_vlan,
        };
        match inner {
            None => f(key(0)),
            Some((1, VLAN_ID_MAX)) => f(key(VLAN_ANY)),
            Some((low, high)) => (low..=high).for_each(|inner_vlan| f(key(inner_vlan))),
        }
    }
}

/// How many keys [`for_each_vlan_key`] gives for the range.
pub fn vlan_key_count(outer: (u16, u16), inner: Option<(u16, u16)>) -> u32 {
    let span = |(low, high): (u16, u16)| u32::from(high.saturating_sub(low)) + 1;
    let per_outer = match inner {
        None | Some((1, VLAN_ID_MAX)) => 1,
        Some(range) => span(range),
    };
    span(outer) * per_outer
}

/// What the fast path tells the controller about each exchange it answered (ring buffer).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RenewalEvent {
    /// New expiry (Unix seconds) now in the binding map.
    pub expires: u64,
    /// Unix time the reply was sent, nanoseconds.
    pub at_ns: u64,
    pub key: BindingKey,
    pub ifindex: u32,
    /// DHCPv6 message type answered (Renew, Rebind, Request, Solicit).
    pub msg_type: u8,
    /// 1 when the request came through a relay.
    pub relayed: u8,
    /// Which of the binding's IAs the reply extended: `BINDING_HAS_NA` | `BINDING_HAS_PD`.
    pub ias: u8,
    pub _pad: [u8; 5],
}

/// Per-CPU token bucket limiting what is passed on to the controller.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PassBudget {
    pub window_start_ns: u64,
    pub passed: u32,
    pub _pad: u32,
}

/// `LineKey::kind`: no line known yet (the frame was not parsed that far): not admitted per line.
pub const LINE_NONE: u8 = 0;
/// `LineKey::kind`: a direct client: the ingress interface and the frame's VLAN IDs.
pub const LINE_DIRECT: u8 = 1;
/// `LineKey::kind`: relayed, named by the innermost relay's Interface-ID (18), hashed.
pub const LINE_INTERFACE_ID: u8 = 2;
/// `LineKey::kind`: relayed, named by the innermost relay's Remote-ID (37) body (enterprise
/// number, then the id), hashed: when that relay sent no Interface-ID.
pub const LINE_REMOTE_ID: u8 = 3;
/// `LineKey::kind`: relayed without either identity: the innermost relay's link-address, hashed.
pub const LINE_LINK_ADDRESS: u8 = 4;
/// Longest line identity (Interface-ID or Remote-ID body) hashed in full; of a longer one the
/// first this many bytes are hashed, with its whole length.
pub const LINE_ID_HASH_MAX: usize = 64;
/// Capacity of the `LINE_BUDGET` LRU map: the lines admitted recently. A flood of lines beyond
/// it evicts the least recently seen, whose bucket then starts full again.
pub const MAX_LINES: u32 = 1 << 16;

/// The line a request came from, as the fast path admits it (docs/fastpath.md, "Admission per
/// line"): key of the `LINE_BUDGET` map. Built by [`LineKey::direct`], [`LineKey::relayed`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LineKey {
    /// [`line_hash`] of the relay's identity (or link-address); 0 for a direct line.
    pub id: u64,
    /// The interface a direct client's frame came in on; 0 when relayed.
    pub ifindex: u32,
    /// VLAN IDs (the TCI's low 12 bits) of a direct client's frame, outer then inner; 0 when
    /// absent or relayed.
    pub outer_vlan: u16,
    pub inner_vlan: u16,
    /// `LINE_DIRECT`, `LINE_INTERFACE_ID`, `LINE_REMOTE_ID` or `LINE_LINK_ADDRESS`.
    pub kind: u8,
    pub _pad: [u8; 7],
}

impl LineKey {
    /// A direct client's line: `ifindex`, and the VLAN IDs of its frame's tags (0: none).
    pub fn direct(ifindex: u32, outer_vlan: u16, inner_vlan: u16) -> Self {
        LineKey {
            id: 0,
            ifindex,
            outer_vlan: outer_vlan & 0x0fff,
            inner_vlan: inner_vlan & 0x0fff,
            kind: LINE_DIRECT,
            _pad: [0; 7],
        }
    }

    /// A relayed client's line: `kind` (`LINE_INTERFACE_ID`, `LINE_REMOTE_ID`,
    /// `LINE_LINK_ADDRESS`) and the identity's bytes (the option body, or the 16 bytes of the
    /// link-address).
    pub fn relayed(kind: u8, id: &[u8]) -> Self {
        LineKey {
            id: line_hash(id),
            ifindex: 0,
            outer_vlan: 0,
            inner_vlan: 0,
            kind,
            _pad: [0; 7],
        }
    }
}

/// Where [`line_hash`] starts, before the identity's length is mixed in.
pub const LINE_HASH_SEED: u64 = 0xcbf2_9ce4_8422_2325;

/// One step of [`line_hash`]: the next 8 bytes of the identity (little-endian, zero padded).
/// Each step is a bijection of `h` for a given word, so two identities of one length that
/// differ in a single word never collide. The fast path runs the same steps.
#[inline(always)]
pub const fn line_hash_step(h: u64, word: u64) -> u64 {
    let h = (h ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    h ^ (h >> 32)
}

/// The hash of a line identity as the fast path computes it: the seed with the length mixed
/// in, then one [`line_hash_step`] per 8 bytes of the first [`LINE_ID_HASH_MAX`].
pub fn line_hash(id: &[u8]) -> u64 {
    let mut h = line_hash_step(LINE_HASH_SEED, id.len() as u64);
    for chunk in id[..id.len().min(LINE_ID_HASH_MAX)].chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = line_hash_step(h, u64::from_le_bytes(word));
    }
    h
}

/// A line's token bucket in `LINE_BUDGET` (GCRA, the token bucket's "virtual scheduling" form:
/// one word, updated with compare-and-swap by whichever CPU sees the line's packet).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct LineBudget {
    /// The bucket's theoretical arrival time (`bpf_ktime_get_coarse_ns` clock): when it would
    /// be full again. A packet is admitted while this stays within `burst` intervals of now.
    pub tat_ns: u64,
    /// Packets of this line dropped (`drop_line_budget`) while it has been in the map.
    pub dropped: u64,
}

/// Verdict/reason counters: index into the per-CPU `STATS` array.
///
/// One list makes both the numbers (each counter's position) and [`stat::NAMES`], so the two
/// cannot drift apart; a const check below holds each name to its constant's.
pub mod stat {
    /// `NAME = "name",` per counter, in index order: `pub const NAME: u32 = <position>` and the
    /// name at that position of `NAMES`.
    macro_rules! counters {
        ($($(#[$doc:meta])* $id:ident = $name:literal,)*) => {
            counters!(@index 0u32; $($(#[$doc])* $id,)*);
            /// Number of counters (the length of the `STATS` array).
            pub const COUNT: u32 = [$($name),*].len() as u32;
            /// Names in index order, as the controller and bench print them.
            pub const NAMES: [&str; COUNT as usize] = [$($name),*];
            /// The constants' identifiers, in the same order (for the check below).
            const IDENTS: [&str; COUNT as usize] = [$(stringify!($id)),*];
        };
        (@index $n:expr; $(#[$doc:meta])* $id:ident, $($rest:tt)*) => {
            $(#[$doc])*
            pub const $id: u32 = $n;
            counters!(@index $n + 1; $($rest)*);
        };
        (@index $n:expr;) => {};
    }

    counters! {
        TX_RENEW = "tx_renew",
        TX_REBIND = "tx_rebind",
        TX_SOLICIT_ADVERTISE = "tx_solicit_advertise",
        TX_SOLICIT_REPLY = "tx_solicit_reply",
        TX_INFORMATION_REQUEST = "tx_information_request",
        /// A Request naming the client's existing binding (RFC 8415 section 18.3.2), answered
        /// with the Reply that extends it, as a Renew's.
        TX_REQUEST = "tx_request",
        /// A Confirm whose addresses are all on the link: Reply with Status Success.
        TX_CONFIRM = "tx_confirm",
        /// A Confirm whose address is not on the link: Reply with Status NotOnLink.
        TX_CONFIRM_NOT_ON_LINK = "tx_confirm_not_on_link",
        PASS_NOT_DHCP = "pass_not_dhcp",
        PASS_DISABLED = "pass_disabled",
        PASS_MALFORMED = "pass_malformed",
        PASS_MSG_TYPE = "pass_msg_type",
        PASS_UNKNOWN_DUID = "pass_unknown_duid",
        PASS_DUID_TOO_LONG = "pass_duid_too_long",
        PASS_IA_MISMATCH = "pass_ia_mismatch",
        PASS_SERVER_ID = "pass_server_id",
        PASS_EXPIRED = "pass_expired",
        PASS_WRONG_LINK = "pass_wrong_link",
        PASS_UNSUPPORTED = "pass_unsupported",
        PASS_TOO_BIG = "pass_too_big",
        PASS_NO_ROOM = "pass_no_room",
        DROP_RATE_LIMIT = "drop_rate_limit",
        ABORTED = "aborted",
        PASS_NOT_DURABLE = "pass_not_durable",
        /// The UDP checksum field holds only the pseudo-header sum: the sender (a relay or client
        /// on this host, over veth) left the rest to checksum offload, which the kernel trusts but
        /// a program in XDP cannot check.
        PASS_CSUM_OFFLOAD = "pass_csum_offload",
        /// A reply to a multicast request would leave from an address only the controller (or the
        /// kernel) can choose: a global reply address on an interface with no global address, or
        /// with several.
        PASS_NO_SOURCE = "pass_no_source",
        /// The frame's destination MAC is neither the interface's nor the group's of its
        /// destination address: another host's frame (seen by a promiscuous device), which the
        /// kernel would drop before the controller.
        PASS_NOT_OUR_MAC = "pass_not_our_mac",
        /// A relayed request sent to a unicast address that is neither the interface's
        /// link-local nor its global address: another host's, or ours on another interface,
        /// which the controller answers.
        PASS_NOT_OUR_ADDRESS = "pass_not_our_address",
        /// A relayed request while some subnet is selected by relay Interface-ID or address
        /// (the controller's rule, not the fast path's).
        PASS_RELAY_SELECTOR = "pass_relay_selector",
        /// A Confirm the fast path cannot judge: no IA_NA with an address (the controller drops
        /// it), or with more than one.
        PASS_CONFIRM_NO_ADDRESS = "pass_confirm_no_address",
        /// A known client's Solicit or Request on another interface than its binding's, with
        /// `interface-client-limit` set: the controller may refuse it there.
        PASS_CLIENT_LIMIT = "pass_client_limit",
        /// A Confirm whose address is in another subnet's prefix: on the link when that subnet
        /// shares the link (a shared network), which the controller judges.
        PASS_CONFIRM_OTHER_SUBNET = "pass_confirm_other_subnet",
        /// A known client's Solicit or Request whose binding holds a lease of the redundant
        /// peer's half of the pools: the controller gives it one of its own half.
        PASS_PEER_HALF = "pass_peer_half",
        /// The subnet's configured options do not fit the fast path's slots (more than
        /// `FAST_OPTION_SLOTS`, or one longer than `FAST_OPTION_MAX`).
        PASS_OPTIONS_TOO_BIG = "pass_options_too_big",
        /// The options of the binding's pools, pd-pools or reservations make a reply the fast
        /// path has no option set for (`OPTION_SET_NONE`, or an entry missing from
        /// `OPTION_SETS`): more than `FAST_OPTION_SLOTS`, one longer than `FAST_OPTION_MAX`, or
        /// no room left for the list.
        PASS_BINDING_OPTIONS = "pass_binding_options",
        /// The ORO asks for Prefix Exclude (67), the binding's pd-pool has one, and the
        /// binding's option set for the request's IAs does not carry it (`OPTION_SETS` had no
        /// room for one that does).
        PASS_PD_EXCLUDE = "pass_pd_exclude",
        /// Dropped: the line's own budget (`line-pass-budget`, `line-pass-burst`) of messages
        /// passed on to the controller was spent, before the global budget was charged.
        DROP_LINE_BUDGET = "drop_line_budget",
        /// Client classes can change this subnet's replies (`SubnetConfig::client_classes`):
        /// the controller evaluates them on every message.
        PASS_CLIENT_CLASS = "pass_client_class",
        /// A direct client's tagged frame on an interface with `vlans` lines, whose tags match
        /// none of them: the controller finds no subnet for it either (`no_subnet_for_link`).
        PASS_NO_VLAN_LINE = "pass_no_vlan_line",
        /// A Renew, Rebind, Request or Rapid-Commit Solicit carrying Reconfigure Accept on a
        /// subnet with `reconfigure` on: the controller's Reply carries the client's
        /// reconfigure key.
        PASS_RECONFIGURE = "pass_reconfigure",
        /// A known client's request on a subnet whose replies classes shape (`CLASSES_CHECK`),
        /// whose User Class, Vendor Class or interface differ from those its binding's classes
        /// were judged on (or none are known yet): the controller judges them again.
        PASS_CLASS_INPUTS = "pass_class_inputs",
        /// Not a verdict (counted besides one): a direct client's frame passed on whose source
        /// MAC could not be written to `CLIENT_MACS`; the controller then sees no link-layer
        /// address for it (no reservation or line by MAC).
        CLIENT_MAC_UPDATE_FAILED = "client_mac_update_failed",
    }

    /// Each name is its constant's identifier in lower case.
    const fn same_name(name: &str, ident: &str) -> bool {
        let (name, ident) = (name.as_bytes(), ident.as_bytes());
        if name.len() != ident.len() {
            return false;
        }
        let mut i = 0;
        while i < name.len() {
            if name[i] != ident[i].to_ascii_lowercase() {
                return false;
            }
            i += 1;
        }
        true
    }

    const _: () = {
        let mut i = 0;
        while i < COUNT as usize {
            assert!(
                same_name(NAMES[i], IDENTS[i]),
                "a stat name differs from its constant"
            );
            i += 1;
        }
    };
}

/// One per-CPU counter cell.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct StatCounter {
    pub packets: u64,
    pub bytes: u64,
}

/// Names of the maps, as pinned under the pin root (`/sys/fs/bpf/dhcp-user/<state-dir>/` by
/// default), and of the programs in the object.
pub mod maps {
    pub const BINDINGS: &str = "BINDINGS";
    pub const SUBNETS: &str = "SUBNETS";
    pub const IFACES: &str = "IFACES";
    pub const CONFIG: &str = "CONFIG";
    pub const LINKS: &str = "LINKS";
    pub const VLANS: &str = "VLANS";
    pub const STATS: &str = "STATS";
    pub const EVENTS: &str = "EVENTS";
    pub const PASS_BUDGET: &str = "PASS_BUDGET";
    pub const LINE_BUDGET: &str = "LINE_BUDGET";
    pub const SCRATCH: &str = "SCRATCH";
    pub const CLIENT_MACS: &str = "CLIENT_MACS";
    pub const OPTION_SETS: &str = "OPTION_SETS";
    pub const CLASS_INPUTS: &str = "CLASS_INPUTS";
    pub const RELAY_CLASS_VALUES: &str = "RELAY_CLASS_VALUES";
    /// Name of the XDP program in the object.
    pub const PROGRAM: &str = "dhcp_xdp";
    /// In the benchmark's build of the object only (dhcp-ebpf feature `bench`): the trivial
    /// XDP_PASS program (the benchmark's floor).
    pub const TRIVIAL_PROGRAM: &str = "xdp_pass";
    /// Benchmark build only: the kernel work of a Renew answer alone (lookup; lookup, clock and
    /// ring buffer), the benchmark's other references.
    pub const LOOKUP_FLOOR_PROGRAM: &str = "xdp_lookup_floor";
    pub const RENEW_FLOOR_PROGRAM: &str = "xdp_renew_floor";
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    unsafe impl aya::Pod for BindingKey {}
    unsafe impl aya::Pod for BindingValue {}
    unsafe impl aya::Pod for SubnetConfig {}
    unsafe impl aya::Pod for OptionSlot {}
    unsafe impl aya::Pod for OptionSet {}
    unsafe impl aya::Pod for ClassInputs {}
    unsafe impl aya::Pod for RelayValueKey {}
    unsafe impl aya::Pod for IfaceConfig {}
    unsafe impl aya::Pod for GlobalConfig {}
    unsafe impl aya::Pod for LinkKey {}
    unsafe impl aya::Pod for VlanKey {}
    unsafe impl aya::Pod for ClientMacKey {}
    unsafe impl aya::Pod for ClientMac {}
    unsafe impl aya::Pod for RenewalEvent {}
    unsafe impl aya::Pod for PassBudget {}
    unsafe impl aya::Pod for LineKey {}
    unsafe impl aya::Pod for LineBudget {}
    unsafe impl aya::Pod for StatCounter {}
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use core::mem::size_of;

    #[test]
    fn layouts_have_no_hidden_padding() {
        assert_eq!(size_of::<BindingKey>(), 36);
        assert_eq!(
            size_of::<BindingValue>(),
            8 + 8 + 4 + 4 + 16 + 16 + 2 + 1 + 1 + 4 + 3 * 2 + 2
        );
        assert_eq!(
            size_of::<ClassInputs>(),
            4 + 2 + 2 + 1 + 4 + 3 + 2 * FAST_CLASS_DATA_MAX
        );
        assert_eq!(
            size_of::<OptionSet>(),
            1 + 1 + 6 + FAST_PD_EXCLUDE_MAX + FAST_OPTION_SLOTS * size_of::<OptionSlot>()
        );
        assert_eq!(
            size_of::<IfaceConfig>(),
            6 + 2 + 16 + 16 + 1 + 1 + 1 + 1 + 4
        );
        assert_eq!(size_of::<VlanKey>(), 8);
        assert_eq!(size_of::<RelayValueKey>(), 8 + FAST_RELAY_VALUE_MAX);
        assert_eq!(
            size_of::<GlobalConfig>(),
            8 + 1 + 1 + 2 + 4 + 4 + 4 + FAST_SERVER_DUID_MAX
        );
        assert_eq!(size_of::<LineKey>(), 8 + 4 + 2 + 2 + 1 + 7);
        assert_eq!(size_of::<LineBudget>(), 16);
        assert_eq!(size_of::<RenewalEvent>(), 8 + 8 + 36 + 4 + 1 + 1 + 1 + 5);
        assert_eq!(size_of::<OptionSlot>(), 2 + 2 + 1 + 3 + FAST_OPTION_MAX);
        assert_eq!(
            size_of::<SubnetConfig>(),
            4 * 4 + 4 + 4 + FAST_OPTION_SLOTS * size_of::<OptionSlot>()
        );
    }

    /// Identities that differ anywhere in their hashed bytes, or only in length, hash apart;
    /// one longer than the cap is hashed by its first bytes and its length.
    #[test]
    fn line_hash_separates_identities() {
        let a = line_hash(b"eth0/1/2:vlan100");
        assert_ne!(a, line_hash(b"eth0/1/2:vlan101"));
        assert_ne!(line_hash(&[0; 8]), line_hash(&[0; 9]));
        assert_ne!(line_hash(b""), line_hash(&[0]));
        let long = [7u8; LINE_ID_HASH_MAX + 10];
        let mut other = long;
        other[LINE_ID_HASH_MAX + 1] = 8;
        assert_eq!(line_hash(&long), line_hash(&other));
        assert_ne!(line_hash(&long), line_hash(&long[..LINE_ID_HASH_MAX + 9]));
        assert_eq!(
            LineKey::relayed(LINE_INTERFACE_ID, b"x").id,
            LineKey::relayed(LINE_REMOTE_ID, b"x").id
        );
        assert_eq!(LineKey::direct(3, 0xf064, 0).outer_vlan, 100);
    }

    /// A full inner range is one wildcard key per outer tag, found by a frame with any inner
    /// tag; a partial one is a key per pair; a single-tag range matches single-tagged frames only.
    #[test]
    fn vlan_keys_expand_and_look_up_alike() {
        let mut keys = [VlanKey::lookups(0, 0, 0)[0]; 8];
        let mut n = 0;
        for_each_vlan_key(3, (100, 101), Some((1, VLAN_ID_MAX)), |k| {
            keys[n] = k;
            n += 1;
        });
        assert_eq!(n as u32, vlan_key_count((100, 101), Some((1, VLAN_ID_MAX))));
        assert_eq!(VlanKey::lookups(3, 101, 77)[1], keys[1]);
        for_each_vlan_key(3, (7, 7), Some((10, 11)), |k| {
            keys[n] = k;
            n += 1;
        });
        assert_eq!(n, 4);
        assert_eq!(VlanKey::lookups(3, 7, 11)[0], keys[3]);
        for_each_vlan_key(3, (9, 9), None, |k| {
            keys[n] = k;
            n += 1;
        });
        assert_eq!(VlanKey::lookups(3, 9, 0), [keys[4], keys[4]]);
        assert_eq!(vlan_key_count((1, 4094), Some((10, 19))), 40_940);
    }

    /// A set's Prefix Exclude is the option as sent (code 67, length, body) and its body reads
    /// back; the longest RFC 6603 body (prefix-len and 16 bytes) fits, a longer one does not.
    #[test]
    fn an_option_sets_prefix_exclude_is_the_option_as_sent() {
        let mut set = OptionSet::EMPTY;
        assert!(!set.in_use());
        assert!(set.set_pd_exclude(&[64, 0x01]));
        assert_eq!(set.pd_exclude[..6], [0, 67, 0, 2, 64, 0x01]);
        assert_eq!(set.pd_exclude_len, 6);
        assert_eq!(set.pd_exclude_body(), [64, 0x01]);
        assert!(set.in_use(), "a Prefix Exclude alone is a list");
        assert!(set.set_pd_exclude(&[128; 17]));
        assert_eq!(set.pd_exclude_len, 21);
        assert!(!set.set_pd_exclude(&[0; FAST_PD_EXCLUDE_MAX - 3]));
        assert_eq!(set.pd_exclude_body(), [128; 17], "unchanged");
    }

    #[test]
    fn binding_key_rejects_long_duids() {
        assert!(BindingKey::new(&[0u8; FAST_DUID_MAX + 1]).is_none());
        assert!(BindingKey::new(&[]).is_none());
        let k = BindingKey::new(&[0, 1, 2]).unwrap();
        assert_eq!(k.duid(), &[0, 1, 2]);
    }
}
