//! XDP fast path for DHCPv6 (skeleton: counts and passes everything on).
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action,
    btf_maps::{Array, HashMap, LpmTrie, PerCpuArray, RingBuf},
    macros::{btf_map, xdp},
    programs::XdpContext,
};
use dhcp_common::{
    stat, BindingKey, BindingValue, GlobalConfig, IfaceConfig, PassBudget, StatCounter, SubnetConfig,
    DEFAULT_MAX_BINDINGS, MAX_IFACES, MAX_SUBNETS,
};

#[btf_map]
static BINDINGS: HashMap<BindingKey, BindingValue, { DEFAULT_MAX_BINDINGS as usize }> = HashMap::new();
#[btf_map]
static SUBNETS: Array<SubnetConfig, { MAX_SUBNETS as usize }> = Array::new();
#[btf_map]
static IFACES: HashMap<u32, IfaceConfig, { MAX_IFACES as usize }> = HashMap::new();
#[btf_map]
static CONFIG: Array<GlobalConfig, 1> = Array::new();
#[btf_map]
static LINKS: LpmTrie<[u8; 16], u16, { MAX_SUBNETS as usize }> = LpmTrie::new();
#[btf_map]
static STATS: PerCpuArray<StatCounter, { stat::COUNT as usize }> = PerCpuArray::new();
#[btf_map]
static PASS_BUDGET: PerCpuArray<PassBudget, 1> = PerCpuArray::new();
#[btf_map]
static EVENTS: RingBuf<dhcp_common::RenewalEvent, { 1 << 22 }> = RingBuf::new();

#[xdp]
pub fn dhcp_xdp(ctx: XdpContext) -> u32 {
    let len = (ctx.data_end() - ctx.data()) as u64;
    if let Some(c) = STATS.get_ptr_mut(stat::PASS_NOT_DHCP) {
        unsafe {
            (*c).packets += 1;
            (*c).bytes += len;
        }
    }
    xdp_action::XDP_PASS
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
