//! The BPF maps the program reads (filled by the controller, `dhcp-user/src/fastpath`) and the
//! two it writes (per-CPU counters and budget, the renewal ring buffer). Layouts come from
//! `dhcp-common`.

use aya_ebpf::{
    btf_maps::{Array, HashMap, LpmTrie, PerCpuArray, RingBuf},
    macros::btf_map,
};
use dhcp_common::{
    stat, BindingKey, BindingValue, GlobalConfig, IfaceConfig, PassBudget, RenewalEvent,
    StatCounter, SubnetConfig, DEFAULT_MAX_BINDINGS, MAX_IFACES, MAX_SUBNETS,
};

use crate::scratch::Scratch;

#[btf_map]
pub(crate) static BINDINGS: HashMap<BindingKey, BindingValue, { DEFAULT_MAX_BINDINGS as usize }> =
    HashMap::new();
#[btf_map]
pub(crate) static SUBNETS: Array<SubnetConfig, { MAX_SUBNETS as usize }> = Array::new();
#[btf_map]
pub(crate) static IFACES: HashMap<u32, IfaceConfig, { MAX_IFACES as usize }> = HashMap::new();
#[btf_map]
pub(crate) static CONFIG: Array<GlobalConfig, 1> = Array::new();
#[btf_map]
pub(crate) static LINKS: LpmTrie<[u8; 16], u16, { MAX_SUBNETS as usize }> = LpmTrie::new();
#[btf_map]
pub(crate) static STATS: PerCpuArray<StatCounter, { stat::COUNT as usize }> = PerCpuArray::new();
#[btf_map]
pub(crate) static PASS_BUDGET: PerCpuArray<PassBudget, 1> = PerCpuArray::new();
#[btf_map]
pub(crate) static EVENTS: RingBuf<RenewalEvent, { 1 << 22 }> = RingBuf::new();
#[btf_map]
pub(crate) static SCRATCH: PerCpuArray<Scratch, 1> = PerCpuArray::new();
