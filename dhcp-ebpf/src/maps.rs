//! The BPF maps the program reads (filled by the controller, `dhcp-user/src/fastpath`) and the
//! ones it writes (per-CPU counters and budget, the lines' buckets, the renewal ring buffer).
//! Layouts come from `dhcp-common`.

use aya_ebpf::{
    btf_maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
    macros::btf_map,
};
use dhcp_common::{
    stat, BindingKey, BindingValue, ClassInputs, ClientMac, ClientMacKey, GlobalConfig,
    IfaceConfig, LineBudget, LineKey, OptionSet, PassBudget, RelayValueKey, RenewalEvent,
    StatCounter, SubnetConfig, VlanKey, DEFAULT_MAX_BINDINGS, MAX_CLASS_INPUTS, MAX_CLIENT_MACS,
    MAX_IFACES, MAX_LINES, MAX_OPTION_SETS, MAX_RELAY_CLASS_VALUES, MAX_SUBNETS, MAX_VLAN_KEYS,
};

use crate::scratch::Scratch;

#[btf_map]
pub(crate) static BINDINGS: HashMap<BindingKey, BindingValue, { DEFAULT_MAX_BINDINGS as usize }> =
    HashMap::new();
#[btf_map]
pub(crate) static SUBNETS: Array<SubnetConfig, { MAX_SUBNETS as usize }> = Array::new();
/// The option lists of bindings whose pools, pd-pools or reservations add options of their own
/// (`BindingValue::option_sets`), shared among bindings with the same list.
#[btf_map]
pub(crate) static OPTION_SETS: Array<OptionSet, { MAX_OPTION_SETS as usize }> = Array::new();
/// What the classes of bindings on subnets classes shape were judged on
/// (`BindingValue::class_inputs`), shared among bindings with the same inputs.
#[btf_map]
pub(crate) static CLASS_INPUTS: Array<ClassInputs, { MAX_CLASS_INPUTS as usize }> = Array::new();
/// The relay Interface-IDs and Remote-IDs the classes name, to their index
/// (`ClassInputs::inner_interface_id` and the like).
#[btf_map]
pub(crate) static RELAY_CLASS_VALUES: HashMap<
    RelayValueKey,
    u8,
    { MAX_RELAY_CLASS_VALUES as usize },
> = HashMap::new();
#[btf_map]
pub(crate) static IFACES: HashMap<u32, IfaceConfig, { MAX_IFACES as usize }> = HashMap::new();
#[btf_map]
pub(crate) static CONFIG: Array<GlobalConfig, 1> = Array::new();
#[btf_map]
pub(crate) static LINKS: LpmTrie<[u8; 16], u16, { MAX_SUBNETS as usize }> = LpmTrie::new();
/// A direct client's line by its frame's tags (`VlanKey::lookups`) to its subnet's index.
#[btf_map]
pub(crate) static VLANS: HashMap<VlanKey, u16, { MAX_VLAN_KEYS as usize }> = HashMap::new();
#[btf_map]
pub(crate) static STATS: PerCpuArray<StatCounter, { stat::COUNT as usize }> = PerCpuArray::new();
#[btf_map]
pub(crate) static PASS_BUDGET: PerCpuArray<PassBudget, 1> = PerCpuArray::new();
/// One bucket per line, shared by all CPUs (a line's frames may arrive on any queue: a per-CPU
/// bucket would give a line as many budgets as there are CPUs). LRU, so a flood of new lines
/// evicts old buckets instead of filling the map.
#[btf_map]
pub(crate) static LINE_BUDGET: LruHashMap<LineKey, LineBudget, { MAX_LINES as usize }> =
    LruHashMap::new();
/// A direct client's source MAC by (interface, VLAN IDs, IPv6 source), written for every
/// direct DHCPv6 frame passed on (`note_client_mac`), read by the controller, whose UDP socket
/// does not give it (RFC 6939 option 79 for clients on our own link). LRU: the map is written
/// before the controller asks, and the neighbour table is empty at a client's first Solicit.
#[btf_map]
pub(crate) static CLIENT_MACS: LruHashMap<ClientMacKey, ClientMac, { MAX_CLIENT_MACS as usize }> =
    LruHashMap::new();
#[btf_map]
pub(crate) static EVENTS: RingBuf<RenewalEvent, { 1 << 22 }> = RingBuf::new();
#[btf_map]
pub(crate) static SCRATCH: PerCpuArray<Scratch, 1> = PerCpuArray::new();
