//! The XDP fast path as the controller sees it: the embedded object, loading and attaching it,
//! pinning, and typed access to the maps it answers from.
//!
//! One program instance and one set of maps serve every interface (a relayed client may arrive
//! on any uplink). Maps are pinned under `<pin-root>/` and each interface's XDP link under
//! `<pin-root>/link-<iface>`, so program and maps outlive a controller restart: renewals keep
//! being answered while the controller is down.

pub mod class_inputs;
pub mod interned;
pub mod option_sets;
pub mod sync;

use std::{
    net::Ipv6Addr,
    os::fd::AsFd,
    path::{Path, PathBuf},
    time::Duration,
};

use aya::{
    maps::{lpm_trie::Key, Array, HashMap as BpfHashMap, LpmTrie, MapData, PerCpuArray},
    programs::{
        links::{FdLink, PinnedLink},
        xdp::XdpLinkId,
        TestRun, TestRunOptions, Xdp, XdpMode,
    },
    Ebpf, EbpfLoader,
};
use dhcp_common::{
    maps as names, stat, BindingKey, BindingValue, ClientMac, ClientMacKey, GlobalConfig,
    IfaceConfig, LineBudget, LineKey, RelayValueKey, StatCounter, SubnetConfig, VlanKey,
};
use thiserror::Error;

/// The XDP program built from `dhcp-ebpf` (see build.rs), embedded so the binary is self-contained.
pub static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(env!("DHCP_EBPF_OBJECT"));

/// Where maps and links are pinned by default (one directory per server under it).
pub const DEFAULT_PIN_ROOT: &str = "/sys/fs/bpf/dhcp-user";
/// Where releases before the product had one name pinned by default; [`adopt_legacy_pins`]
/// moves a server's pins from there.
pub const LEGACY_PIN_ROOT: &str = "/sys/fs/bpf/dhcp-ebpf";

#[derive(Debug, Error)]
pub enum FastPathError {
    #[error("loading the XDP program: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("the XDP program: {0}")]
    Program(#[from] aya::programs::ProgramError),
    #[error("BPF map {name}: {source}")]
    Map {
        name: &'static str,
        source: aya::maps::MapError,
    },
    #[error("pinning {path}: {source}")]
    Pin {
        path: PathBuf,
        source: aya::pin::PinError,
    },
    #[error(
        "{path}: the BPF filesystem refuses names containing a dot ({component:?} has one): pass \
         a --pin-root without dots below the BPF filesystem's mount point"
    )]
    DotInPinPath { path: PathBuf, component: String },
    #[error(
        "{path}: creating the pin directory was refused ({source}): pins need root (or \
         CAP_BPF and CAP_SYS_ADMIN) and a path on a BPF filesystem whose names have no dots"
    )]
    PinDirRefused {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{0} is not on a BPF filesystem, so the fast path's maps cannot be pinned there: mount \
         one with `mount -t bpf bpf /sys/fs/bpf` (`ip netns exec` gives the command a fresh /sys \
         without it; `nsenter --net=/run/netns/NAME` keeps the host's), pass --pin-root on a \
         BPF filesystem, or run with --xdp off"
    )]
    NotBpfFs(PathBuf),
    #[error(
        "this dhcp-user was built without the eBPF toolchain (a stub stands in for the XDP \
         program): build it with `cargo xtask build`, which installs the toolchain, or run with \
         --xdp off"
    )]
    StubObject,
    #[error("interface {0} not found")]
    NoInterface(String),
    #[error("the object has no map {0}")]
    MissingMap(&'static str),
    #[error("the object has no XDP program {0}")]
    MissingProgram(String),
}

/// How the program attaches to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachMode {
    /// Native (driver) mode where the driver supports it, generic otherwise.
    #[default]
    Auto,
    Native,
    Generic,
}

/// The result of one BPF_PROG_TEST_RUN.
#[derive(Debug, Clone)]
pub struct TestRunOutcome {
    /// XDP verdict (`XDP_PASS` = 2, `XDP_TX` = 3, `XDP_DROP` = 1).
    pub verdict: u32,
    /// The frame as the program left it.
    pub frame: Vec<u8>,
    /// Kernel-measured time per run.
    pub duration: Duration,
}

pub const XDP_ABORTED: u32 = 0;
pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;
pub const XDP_TX: u32 = 3;

/// The loaded fast path.
pub struct FastPath {
    ebpf: Ebpf,
    /// `OPTION_SETS` and `CLASS_INPUTS`, taken out of the object so that they are written
    /// alongside `BINDINGS`.
    shared: interned::SharedEntries,
    pin_root: Option<PathBuf>,
    /// Links this process attached and did not pin (detached on drop).
    links: Vec<(String, XdpLinkId)>,
}

impl FastPath {
    /// Loads the embedded program. With `pin_root`, maps already pinned there (by an earlier
    /// controller) are reused, and new ones are pinned there.
    pub fn load(pin_root: Option<&Path>) -> Result<Self, FastPathError> {
        Self::load_sized(pin_root, dhcp_common::DEFAULT_MAX_BINDINGS)
    }

    /// As `load`, with room for `max_bindings` clients in the binding map (preallocated:
    /// about 160 bytes of kernel memory each). A map already pinned keeps its own size.
    pub fn load_sized(pin_root: Option<&Path>, max_bindings: u32) -> Result<Self, FastPathError> {
        Self::load_object(EBPF_OBJECT, pin_root, max_bindings)
    }

    /// As `load_sized`, from `object`: any build of `dhcp-ebpf` (the benchmark loads its own,
    /// which adds reference programs). Every XDP program in the object is loaded; [`attach`]
    /// attaches the fast path's.
    ///
    /// [`attach`]: FastPath::attach
    pub fn load_object(
        object: &[u8],
        pin_root: Option<&Path>,
        max_bindings: u32,
    ) -> Result<Self, FastPathError> {
        if object.is_empty() {
            return Err(FastPathError::StubObject);
        }
        let mut loader = EbpfLoader::new();
        loader.map_max_entries(names::BINDINGS, max_bindings.max(1));
        if let Some(root) = pin_root {
            if !on_bpf_fs(root) {
                return Err(FastPathError::NotBpfFs(root.into()));
            }
            refuse_dots_on_bpf_fs(root)?;
            std::fs::create_dir_all(root).map_err(|source| {
                if source.kind() == std::io::ErrorKind::PermissionDenied {
                    FastPathError::PinDirRefused {
                        path: root.into(),
                        source,
                    }
                } else {
                    FastPathError::Io {
                        path: root.into(),
                        source,
                    }
                }
            })?;
            retire_incompatible_pins(root)?;
            for name in PINNED_MAPS {
                loader.map_pin_path(name, root.join(name));
            }
        }
        let mut ebpf = loader.load(object)?;
        let programs: Vec<String> = ebpf.programs().map(|(name, _)| name.to_string()).collect();
        for name in &programs {
            if let Some(program) = ebpf.program_mut(name) {
                let program: &mut Xdp = program.try_into()?;
                program.load()?;
            }
        }
        if ebpf.program(names::PROGRAM).is_none() {
            return Err(FastPathError::MissingProgram(names::PROGRAM.to_string()));
        }
        let sets = ebpf
            .take_map(names::OPTION_SETS)
            .ok_or(FastPathError::MissingMap(names::OPTION_SETS))?;
        let sets = Array::try_from(sets).map_err(map_err(names::OPTION_SETS))?;
        let option_sets = option_sets::OptionSetTable::load(sets, ebpf.map(names::BINDINGS))?;
        let inputs = ebpf
            .take_map(names::CLASS_INPUTS)
            .ok_or(FastPathError::MissingMap(names::CLASS_INPUTS))?;
        let inputs = Array::try_from(inputs).map_err(map_err(names::CLASS_INPUTS))?;
        let class_inputs = class_inputs::ClassInputTable::load(inputs, ebpf.map(names::BINDINGS))?;
        Ok(FastPath {
            ebpf,
            shared: interned::SharedEntries {
                option_sets,
                class_inputs,
            },
            pin_root: pin_root.map(Path::to_path_buf),
            links: Vec::new(),
        })
    }

    /// The loaded XDP program called `name` (the fast path is `names::PROGRAM`; a benchmark
    /// build of the object has others).
    pub fn xdp_program(&self, name: &str) -> Result<&Xdp, FastPathError> {
        Ok(self
            .ebpf
            .program(name)
            .ok_or_else(|| FastPathError::MissingProgram(name.to_string()))?
            .try_into()?)
    }

    /// Where maps and links are pinned, if anywhere.
    pub fn pin_root(&self) -> Option<&Path> {
        self.pin_root.as_deref()
    }

    /// The fast-path program (for BPF_PROG_TEST_RUN: [`FastPath::test_run`]).
    pub fn program(&self) -> Result<&Xdp, FastPathError> {
        self.xdp_program(names::PROGRAM)
    }

    /// Attaches to `iface`. `Auto` tries native mode, then generic. With a pin root, the link is
    /// pinned (replacing a stale pin) so the program keeps running when this process exits.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<XdpMode, FastPathError> {
        let ifindex = ifindex(iface)?;
        let program: &mut Xdp = self
            .ebpf
            .program_mut(names::PROGRAM)
            .ok_or_else(|| FastPathError::MissingProgram(names::PROGRAM.to_string()))?
            .try_into()?;
        // A pinned link from an earlier controller keeps the old program attached: replace it.
        if let Some(root) = &self.pin_root {
            let pin = root.join(link_pin_name(iface));
            if pin.exists() {
                // Unpinning drops the last reference: the old program detaches as ours attaches.
                if let Ok(old) = PinnedLink::from_pin(&pin) {
                    let old_link: FdLink = old.unpin().map_err(|source| FastPathError::Io {
                        path: pin.clone(),
                        source,
                    })?;
                    drop(old_link);
                }
                let _ = std::fs::remove_file(&pin);
            }
        }
        let tries: &[XdpMode] = match mode {
            AttachMode::Auto => &[XdpMode::Driver, XdpMode::Skb],
            AttachMode::Native => &[XdpMode::Driver],
            AttachMode::Generic => &[XdpMode::Skb],
        };
        let mut last_err = None;
        for &try_mode in tries {
            match program.attach_to_if_index(ifindex, try_mode) {
                Ok(link_id) => {
                    if let Some(root) = &self.pin_root {
                        let pin = root.join(link_pin_name(iface));
                        let link = program.take_link(link_id)?;
                        let fd_link: FdLink = link.try_into().map_err(|_| {
                            FastPathError::Program(aya::programs::ProgramError::AlreadyAttached)
                        })?;
                        fd_link
                            .pin(&pin)
                            .map_err(|source| FastPathError::Pin { path: pin, source })?;
                    } else {
                        self.links.push((iface.to_string(), link_id));
                    }
                    return Ok(try_mode);
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.expect("at least one mode tried").into())
    }

    /// Detaches from `iface` and removes its pinned link.
    pub fn detach(&mut self, iface: &str) -> Result<(), FastPathError> {
        if let Some(root) = &self.pin_root {
            let pin = root.join(link_pin_name(iface));
            if let Ok(link) = PinnedLink::from_pin(&pin) {
                let _ = link.unpin();
            }
        }
        if let Some(pos) = self.links.iter().position(|(name, _)| name == iface) {
            let (_, id) = self.links.remove(pos);
            let program: &mut Xdp = self
                .ebpf
                .program_mut(names::PROGRAM)
                .ok_or_else(|| FastPathError::MissingProgram(names::PROGRAM.to_string()))?
                .try_into()?;
            program.detach(id)?;
        }
        Ok(())
    }

    /// Removes every pin under the pin root (maps and links): the operator's "unload".
    pub fn unpin_all(root: &Path) -> std::io::Result<()> {
        if root.exists() {
            std::fs::remove_dir_all(root)?;
        }
        Ok(())
    }

    fn map_mut(&mut self, name: &'static str) -> Result<&mut aya::maps::Map, FastPathError> {
        self.ebpf
            .map_mut(name)
            .ok_or(FastPathError::MissingMap(name))
    }

    fn map(&self, name: &'static str) -> Result<&aya::maps::Map, FastPathError> {
        self.ebpf.map(name).ok_or(FastPathError::MissingMap(name))
    }

    pub fn set_global(&mut self, cfg: &GlobalConfig) -> Result<(), FastPathError> {
        let mut array: Array<&mut MapData, GlobalConfig> =
            Array::try_from(self.map_mut(names::CONFIG)?).map_err(map_err(names::CONFIG))?;
        array.set(0, cfg, 0).map_err(map_err(names::CONFIG))
    }

    pub fn global(&self) -> Result<GlobalConfig, FastPathError> {
        let array: Array<&MapData, GlobalConfig> =
            Array::try_from(self.map(names::CONFIG)?).map_err(map_err(names::CONFIG))?;
        array.get(&0, 0).map_err(map_err(names::CONFIG))
    }

    pub fn set_subnet(&mut self, index: u16, cfg: &SubnetConfig) -> Result<(), FastPathError> {
        let mut array: Array<&mut MapData, SubnetConfig> =
            Array::try_from(self.map_mut(names::SUBNETS)?).map_err(map_err(names::SUBNETS))?;
        array
            .set(index as u32, cfg, 0)
            .map_err(map_err(names::SUBNETS))
    }

    pub fn set_iface(&mut self, ifindex: u32, cfg: &IfaceConfig) -> Result<(), FastPathError> {
        let mut map: BpfHashMap<&mut MapData, u32, IfaceConfig> =
            BpfHashMap::try_from(self.map_mut(names::IFACES)?).map_err(map_err(names::IFACES))?;
        map.insert(ifindex, cfg, 0).map_err(map_err(names::IFACES))
    }

    /// Relayed requests whose link-address falls in `prefix/len` are on subnet `index`.
    pub fn set_link(&mut self, prefix: Ipv6Addr, len: u8, index: u16) -> Result<(), FastPathError> {
        let mut trie: LpmTrie<&mut MapData, [u8; 16], u16> =
            LpmTrie::try_from(self.map_mut(names::LINKS)?).map_err(map_err(names::LINKS))?;
        trie.insert(&Key::new(len as u32, prefix.octets()), index, 0)
            .map_err(map_err(names::LINKS))
    }

    /// Makes `VLANS` hold exactly `entries` (a pinned map still holds an earlier
    /// configuration's lines: a stale one would serve a line no subnet names any more).
    pub fn set_vlans(&mut self, entries: &[(VlanKey, u16)]) -> Result<(), FastPathError> {
        self.replace_entries(names::VLANS, entries)
    }

    /// Makes `RELAY_CLASS_VALUES` hold exactly `entries`: each relay value a class names, to
    /// its index ([`crate::config::Config::relay_class_values`]).
    pub fn set_relay_class_values(
        &mut self,
        entries: &[(RelayValueKey, u8)],
    ) -> Result<(), FastPathError> {
        self.replace_entries(names::RELAY_CLASS_VALUES, entries)
    }

    /// Makes the hash map `name` hold exactly `entries`: stale keys removed, the rest written.
    fn replace_entries<K, V>(
        &mut self,
        name: &'static str,
        entries: &[(K, V)],
    ) -> Result<(), FastPathError>
    where
        K: aya::Pod + Eq + std::hash::Hash,
        V: aya::Pod,
    {
        let mut map: BpfHashMap<&mut MapData, K, V> =
            BpfHashMap::try_from(self.map_mut(name)?).map_err(map_err(name))?;
        let wanted: std::collections::HashSet<K> = entries.iter().map(|(k, _)| *k).collect();
        let stale: Vec<K> = map
            .keys()
            .filter_map(Result::ok)
            .filter(|key| !wanted.contains(key))
            .collect();
        for key in &stale {
            map.remove(key).map_err(map_err(name))?;
        }
        for (key, value) in entries {
            map.insert(key, value, 0).map_err(map_err(name))?;
        }
        Ok(())
    }

    /// Removes every `LINKS` entry but the prefixes in `keep` (a pinned map still holds the
    /// prefixes of an earlier configuration; a stale one would name a subnet for an address no
    /// configured prefix holds, or shadow a shorter one). Returns how many it removed.
    pub fn retain_links(&mut self, keep: &[(Ipv6Addr, u8)]) -> Result<usize, FastPathError> {
        let mut trie: LpmTrie<&mut MapData, [u8; 16], u16> =
            LpmTrie::try_from(self.map_mut(names::LINKS)?).map_err(map_err(names::LINKS))?;
        let stale: Vec<Key<[u8; 16]>> = trie
            .keys()
            .filter_map(Result::ok)
            .filter(|key| {
                !keep
                    .iter()
                    .any(|(p, len)| key.prefix_len() == *len as u32 && key.data() == p.octets())
            })
            .collect();
        for key in &stale {
            trie.remove(key).map_err(map_err(names::LINKS))?;
        }
        Ok(stale.len())
    }

    /// The binding map, for bulk work (sync, benches).
    pub fn bindings_mut(
        &mut self,
    ) -> Result<BpfHashMap<&mut MapData, BindingKey, BindingValue>, FastPathError> {
        BpfHashMap::try_from(self.map_mut(names::BINDINGS)?).map_err(map_err(names::BINDINGS))
    }

    /// The binding map and the shared entries its values name, to write both (a binding's
    /// entries are acquired before it is written and released once it is replaced).
    pub fn bindings_and_sets(
        &mut self,
    ) -> Result<
        (
            BpfHashMap<&mut MapData, BindingKey, BindingValue>,
            &mut interned::SharedEntries,
        ),
        FastPathError,
    > {
        let map = self
            .ebpf
            .map_mut(names::BINDINGS)
            .ok_or(FastPathError::MissingMap(names::BINDINGS))?;
        let map = BpfHashMap::try_from(map).map_err(map_err(names::BINDINGS))?;
        Ok((map, &mut self.shared))
    }

    /// The option sets in use (`OPTION_SETS`).
    pub fn option_sets(&self) -> &option_sets::OptionSetTable {
        &self.shared.option_sets
    }

    /// The class inputs in use (`CLASS_INPUTS`).
    pub fn class_inputs(&self) -> &class_inputs::ClassInputTable {
        &self.shared.class_inputs
    }

    pub fn bindings(
        &self,
    ) -> Result<BpfHashMap<&MapData, BindingKey, BindingValue>, FastPathError> {
        BpfHashMap::try_from(self.map(names::BINDINGS)?).map_err(map_err(names::BINDINGS))
    }

    /// The lines the program admitted recently and their buckets (`LINE_BUDGET`): which lines
    /// exist, and how many of each one's messages were dropped over its budget.
    pub fn line_budgets(&self) -> Result<Vec<(LineKey, LineBudget)>, FastPathError> {
        let map: BpfHashMap<&MapData, LineKey, LineBudget> =
            BpfHashMap::try_from(self.map(names::LINE_BUDGET)?)
                .map_err(map_err(names::LINE_BUDGET))?;
        Ok(map.iter().filter_map(Result::ok).collect())
    }

    /// A reader of `CLIENT_MACS` (direct clients' source MACs) on its own descriptor, so the
    /// controller's request path reads it without the lock around this object.
    pub fn client_macs(&self) -> Result<ClientMacs, FastPathError> {
        let id = match self.map(names::CLIENT_MACS)? {
            aya::maps::Map::LruHashMap(data) => data.info().map_err(map_err(names::CLIENT_MACS))?,
            _ => return Err(FastPathError::MissingMap(names::CLIENT_MACS)),
        }
        .id();
        let data = MapData::from_id(id).map_err(map_err(names::CLIENT_MACS))?;
        let map = BpfHashMap::try_from(aya::maps::Map::LruHashMap(data))
            .map_err(map_err(names::CLIENT_MACS))?;
        Ok(ClientMacs { map })
    }

    /// Takes the renewal ring buffer out of the object (the controller's reader owns it).
    pub fn take_events(&mut self) -> Result<aya::maps::RingBuf<MapData>, FastPathError> {
        let map = self
            .ebpf
            .take_map(names::EVENTS)
            .ok_or(FastPathError::MissingMap(names::EVENTS))?;
        aya::maps::RingBuf::try_from(map).map_err(map_err(names::EVENTS))
    }

    /// Counters summed over CPUs, indexed by `dhcp_common::stat`.
    pub fn stats(&self) -> Result<Vec<StatCounter>, FastPathError> {
        let array: PerCpuArray<&MapData, StatCounter> =
            PerCpuArray::try_from(self.map(names::STATS)?).map_err(map_err(names::STATS))?;
        let mut totals = vec![StatCounter::default(); stat::COUNT as usize];
        for (index, total) in totals.iter_mut().enumerate() {
            let per_cpu = array
                .get(&(index as u32), 0)
                .map_err(map_err(names::STATS))?;
            for c in per_cpu.iter() {
                total.packets += c.packets;
                total.bytes += c.bytes;
            }
        }
        Ok(totals)
    }

    /// Runs the program once on `frame` as if it arrived on `ifindex` (BPF_PROG_TEST_RUN).
    pub fn test_run(
        &self,
        frame: &[u8],
        ifindex: u32,
        repeat: u32,
    ) -> Result<TestRunOutcome, FastPathError> {
        test_run(self.program()?, frame, ifindex, repeat)
    }

    /// The whole object, for tools that need more (benches).
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }
}

/// The source MACs of direct clients' frames the program passed on (`CLIENT_MACS`), by
/// interface, VLAN IDs and IPv6 source: a direct client's link-layer address (RFC 6939), which
/// the kernel's UDP socket does not give.
pub struct ClientMacs {
    map: BpfHashMap<MapData, ClientMacKey, ClientMac>,
}

impl ClientMacs {
    /// The MAC of the last DHCPv6 frame from `source` on `ifindex` with VLAN IDs `outer_vlan`,
    /// `inner_vlan` (0: untagged) the program passed on, if it is still in the map.
    pub fn get(
        &self,
        ifindex: u32,
        outer_vlan: u16,
        inner_vlan: u16,
        source: Ipv6Addr,
    ) -> Option<[u8; 6]> {
        let key = ClientMacKey {
            ifindex,
            outer_vlan,
            inner_vlan,
            source: source.octets(),
        };
        self.map.get(&key, 0).ok().map(|value| value.mac)
    }
}

/// Maps pinned under the pin root (the scratch and budget maps, the lines' buckets too, are
/// per-run state and are not).
pub const PINNED_MAPS: [&str; 11] = [
    names::BINDINGS,
    names::OPTION_SETS,
    names::CLASS_INPUTS,
    names::RELAY_CLASS_VALUES,
    names::SUBNETS,
    names::IFACES,
    names::CONFIG,
    names::LINKS,
    names::VLANS,
    names::STATS,
    names::EVENTS,
];

/// Removes the pins under `root` of maps whose shape (type, key or value size, or entry count:
/// the binding map keeps its own) differs from this build's, left by an older version: the
/// kernel would bind the new program to them and refuse it, or count into too few slots. The
/// program still attached keeps its own maps until the new one replaces it; the re-sync refills
/// the new binding map from the lease store.
fn retire_incompatible_pins(root: &Path) -> Result<(), FastPathError> {
    let object = aya_obj::Object::parse(EBPF_OBJECT).map_err(|e| FastPathError::Io {
        path: "the embedded XDP object".into(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    })?;
    for name in PINNED_MAPS {
        let path = root.join(name);
        if !path.exists() {
            continue;
        }
        let Some(expected) = object.maps.get(name) else {
            continue;
        };
        let pinned = aya::maps::MapInfo::from_pin(&path).map_err(map_err(name))?;
        let same = pinned.map_type().ok().map(|t| t as u32) == Some(expected.map_type())
            && pinned.key_size() == expected.key_size()
            && pinned.value_size() == expected.value_size()
            && (name == names::BINDINGS || pinned.max_entries() == expected.max_entries());
        if !same {
            tracing::warn!(
                map = name,
                pinned = format!(
                    "key {} B, value {} B, {} entries",
                    pinned.key_size(),
                    pinned.value_size(),
                    pinned.max_entries()
                ),
                wanted = format!(
                    "key {} B, value {} B, {} entries",
                    expected.key_size(),
                    expected.value_size(),
                    expected.max_entries()
                ),
                "pinned map left by another version: replacing it"
            );
            std::fs::remove_file(&path).map_err(|source| FastPathError::Io {
                path: path.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

fn map_err(name: &'static str) -> impl Fn(aya::maps::MapError) -> FastPathError {
    move |source| FastPathError::Map { name, source }
}

/// BPF_PROG_TEST_RUN of any XDP program on `frame`, with `ingress_ifindex` set in the context.
pub fn test_run(
    program: &Xdp,
    frame: &[u8],
    ifindex: u32,
    repeat: u32,
) -> Result<TestRunOutcome, FastPathError> {
    // struct xdp_md: data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex.
    let mut ctx = [0u8; 24];
    ctx[4..8].copy_from_slice(&(frame.len() as u32).to_ne_bytes());
    ctx[12..16].copy_from_slice(&ifindex.to_ne_bytes());
    let mut out = vec![0u8; 4096];
    let mut opts = TestRunOptions::new();
    opts.data_in = Some(frame);
    opts.data_out = Some(&mut out);
    opts.ctx_in = Some(&ctx);
    opts.repeat = repeat.max(1);
    let result = program.test_run(opts)?;
    out.truncate(result.data_size_out as usize);
    let _ = program.fd()?.as_fd();
    Ok(TestRunOutcome {
        verdict: result.return_value,
        frame: out,
        duration: result.duration,
    })
}

/// Whether `path`, or the nearest ancestor of it that exists, lies on a BPF filesystem (pins
/// can only be made there; anywhere else the kernel's error is a bare ENOENT or EPERM).
fn on_bpf_fs(path: &Path) -> bool {
    use nix::sys::statfs::{statfs, BPF_FS_MAGIC};
    let Some(existing) = path.ancestors().find(|dir| dir.exists()) else {
        return false;
    };
    statfs(existing).is_ok_and(|fs| fs.filesystem_type() == BPF_FS_MAGIC)
}

/// The default pin root of a server whose state directory is `state_dir`: one per server, so
/// several servers (or test runs) on a host never share maps by accident.
pub fn default_pin_root(state_dir: &Path) -> PathBuf {
    Path::new(DEFAULT_PIN_ROOT).join(pin_dir_name(state_dir))
}

/// Where a release before the rename pinned the fast path of the server whose state directory
/// is `state_dir` by default (under [`LEGACY_PIN_ROOT`]).
pub fn legacy_pin_root(state_dir: &Path) -> PathBuf {
    Path::new(LEGACY_PIN_ROOT).join(pin_dir_name(state_dir))
}

/// The pin directory's name for `state_dir`: its path with `/` as `-` (`root` for `/`), made
/// valid on the BPF filesystem by [`bpf_fs_name`] (`/tmp/tmp.Ab3` is `tmp-tmp_Ab3-` and a hash).
fn pin_dir_name(state_dir: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let lossy = state_dir.to_string_lossy();
    let name = lossy.trim_matches('/').replace('/', "-");
    let name = if name.is_empty() {
        "root".to_string()
    } else {
        name
    };
    // Not UTF-8: the lossy form may be shared by other paths, so it is hashed as well.
    let lossless = matches!(lossy, std::borrow::Cow::Borrowed(_));
    // Hashed as spelled without a trailing `/` or `.` components (`/srv/x/` is `/srv/x`).
    let normal: PathBuf = state_dir.components().collect();
    bpf_fs_name(&name, normal.as_os_str().as_bytes(), !lossless)
}

/// The name of `iface`'s pinned XDP link (`link-eth0`; a VLAN's `eth0.100` has a dot, so
/// `link-eth0_100-` and a hash).
fn link_pin_name(iface: &str) -> String {
    bpf_fs_name(&format!("link-{iface}"), iface.as_bytes(), false)
}

/// The longest name a directory entry may have (NAME_MAX).
const NAME_MAX: usize = 255;

/// `name` made valid on the BPF filesystem, which refuses names containing a dot (EPERM) or
/// longer than [`NAME_MAX`]. A valid name is kept as it is (so pins made before stay where they
/// are); otherwise each `.` becomes `_`, the front is cut if too long, and `-` plus a stable hash
/// of `source` (what the name was made from) is appended, so distinct sources keep distinct
/// names. `changed` forces the hash (the caller already altered the name).
fn bpf_fs_name(name: &str, source: &[u8], changed: bool) -> String {
    if !changed && !name.contains('.') && name.len() <= NAME_MAX {
        return name.to_string();
    }
    let suffix = format!("-{:08x}", stable_hash(source) as u32);
    let mut mapped = name.replace('.', "_");
    let room = NAME_MAX - suffix.len();
    if mapped.len() > room {
        // Keep the end (the state directory's own name): cut the front at a char boundary.
        let mut cut = mapped.len() - room;
        while !mapped.is_char_boundary(cut) {
            cut += 1;
        }
        mapped.drain(..cut);
    }
    mapped + &suffix
}

/// FNV-1a (64 bits): stable across builds and releases, unlike `std`'s hasher.
fn stable_hash(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Refuses a pin root whose components to be made on the BPF filesystem have a dot (the
/// kernel's refusal would be a bare EPERM). Components above the mount point may have dots.
fn refuse_dots_on_bpf_fs(root: &Path) -> Result<(), FastPathError> {
    use nix::sys::statfs::{statfs, BPF_FS_MAGIC};
    let on_bpf = |dir: &Path| statfs(dir).map(|fs| fs.filesystem_type() == BPF_FS_MAGIC);
    for dir in root.ancestors() {
        match on_bpf(dir) {
            // Above the BPF filesystem.
            Ok(false) => break,
            // Its mount point: a name on the filesystem below.
            Ok(true) if dir.parent().is_none_or(|parent| on_bpf(parent) != Ok(true)) => break,
            // On it, or to be made there (a name with a dot is refused even by lookup).
            _ => {}
        }
        if let Some(component) = dir.file_name().map(|c| c.to_string_lossy()) {
            if component.contains('.') {
                return Err(FastPathError::DotInPinPath {
                    path: root.into(),
                    component: component.into_owned(),
                });
            }
        }
    }
    Ok(())
}

/// True if `dir` holds anything (a pinned map or link, or a directory of them).
fn has_pins(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some())
}

/// Makes an upgrade keep its pinned fast path: when `root` holds no pins but `legacy` (the same
/// server's pins under an earlier default root) does, moves `legacy` to `root` (a rename within
/// the BPF filesystem: the maps, links and the attached program stay as they are) and removes
/// the legacy parent directory once empty. Returns whether it moved anything.
pub fn adopt_legacy_pins(legacy: &Path, root: &Path) -> std::io::Result<bool> {
    if has_pins(root) || !has_pins(legacy) {
        return Ok(false);
    }
    if let Some(parent) = root.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if root.exists() {
        // Empty (checked above): rename needs the target gone or an empty directory.
        std::fs::remove_dir(root)?;
    }
    std::fs::rename(legacy, root)?;
    if let Some(parent) = legacy.parent() {
        // Other servers' pins may still be there: then it stays.
        let _ = std::fs::remove_dir(parent);
    }
    Ok(true)
}

/// The fast path's counters (summed over CPUs) read from its pinned `STATS` map, by name; `None`
/// when nothing is pinned under `pin_root` (fast path off, or never started).
pub fn pinned_stats(
    pin_root: &Path,
) -> Result<Option<Vec<(&'static str, StatCounter)>>, FastPathError> {
    let path = pin_root.join(names::STATS);
    if !path.exists() {
        return Ok(None);
    }
    let data = MapData::from_pin(&path).map_err(map_err(names::STATS))?;
    let array: PerCpuArray<MapData, StatCounter> =
        PerCpuArray::try_from(aya::maps::Map::PerCpuArray(data)).map_err(map_err(names::STATS))?;
    let mut out = Vec::with_capacity(stat::COUNT as usize);
    for (index, name) in stat::NAMES.iter().enumerate() {
        let per_cpu = match array.get(&(index as u32), 0) {
            Ok(per_cpu) => per_cpu,
            // A map pinned by an older program has fewer counters.
            Err(aya::maps::MapError::OutOfBounds { .. }) => break,
            Err(e) => return Err(map_err(names::STATS)(e)),
        };
        let mut total = StatCounter::default();
        for c in per_cpu.iter() {
            total.packets += c.packets;
            total.bytes += c.bytes;
        }
        out.push((*name, total));
    }
    Ok(Some(out))
}

/// How many bindings the pinned `BINDINGS` map under `pin_root` holds (walks its keys).
pub fn pinned_binding_count(pin_root: &Path) -> Result<usize, FastPathError> {
    let path = pin_root.join(names::BINDINGS);
    let data = MapData::from_pin(&path).map_err(map_err(names::BINDINGS))?;
    let map: aya::maps::HashMap<MapData, BindingKey, BindingValue> =
        aya::maps::HashMap::try_from(aya::maps::Map::HashMap(data))
            .map_err(map_err(names::BINDINGS))?;
    Ok(map.keys().filter(Result::is_ok).count())
}

/// The kernel's index of `iface` in the current network namespace.
pub fn ifindex(iface: &str) -> Result<u32, FastPathError> {
    let name =
        std::ffi::CString::new(iface).map_err(|_| FastPathError::NoInterface(iface.into()))?;
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(FastPathError::NoInterface(iface.into()));
    }
    Ok(index)
}

/// Nanoseconds to add to CLOCK_MONOTONIC_COARSE (`bpf_ktime_get_coarse_ns`) to get Unix time: the
/// fast path stores expiries in Unix seconds, as the lease store does. The coarse clock is read
/// without the TSC, and one tick of resolution (a few ms) is nothing next to lifetimes in seconds:
/// on the 2-core EPYC VM a read cost 20 ns against 60 ns for `bpf_ktime_get_boot_ns`. The
/// controller refreshes the offset periodically, so a wall-clock step or a suspend (the monotonic
/// clock stops during one) is followed within seconds.
pub fn clock_to_unix_ns() -> u64 {
    let read = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec we own.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
    };
    let clock = read(libc::CLOCK_MONOTONIC_COARSE);
    let real = read(libc::CLOCK_REALTIME);
    (real - clock).max(0) as u64
}

#[cfg(test)]
mod pin_root_tests {
    use super::*;

    #[test]
    fn a_pin_root_off_the_bpf_filesystem_is_refused_with_how_to_fix_it() {
        let dir = std::env::temp_dir().join("dhcp-user-not-bpffs/maps");
        assert!(!on_bpf_fs(&dir));
        let message = FastPathError::NotBpfFs(dir).to_string();
        assert!(
            message.contains("mount -t bpf bpf /sys/fs/bpf"),
            "{message}"
        );
    }

    #[test]
    fn the_default_pin_root_is_named_after_the_product_and_the_state_dir() {
        assert_eq!(
            default_pin_root(Path::new("/var/lib/dhcp-user")),
            Path::new("/sys/fs/bpf/dhcp-user/var-lib-dhcp-user")
        );
        assert_eq!(
            legacy_pin_root(Path::new("/var/lib/dhcp-user")),
            Path::new("/sys/fs/bpf/dhcp-ebpf/var-lib-dhcp-user")
        );
        assert_eq!(
            default_pin_root(Path::new("/")),
            Path::new("/sys/fs/bpf/dhcp-user/root")
        );
    }

    #[test]
    fn pin_names_never_have_a_dot_and_distinct_state_dirs_keep_distinct_names() {
        let name = |dir: &str| pin_dir_name(Path::new(dir));
        // What `mktemp -d` makes: the dot mapped, and a stable hash of the whole path.
        assert_eq!(name("/tmp/tmp.AbC123"), "tmp-tmp_AbC123-cbeff9b9");
        assert_eq!(name("/tmp/tmp.AbC123/"), name("/tmp/tmp.AbC123"));
        let names = [
            name("/tmp/tmp.AbC123"),
            name("/tmp/tmp.AbC124"),
            name("/tmp/tmp_AbC123"),
            name("/tmp.x/a"),
            name("/tmp/x.a"),
            name("/srv/dhcp/../x"),
        ];
        for (i, a) in names.iter().enumerate() {
            assert!(!a.contains('.') && !a.contains('/'), "{a}");
            for b in &names[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // Names that were valid stay exactly as they were (pins made before stay found).
        assert_eq!(name("/tmp/tmp_AbC123"), "tmp-tmp_AbC123");
        assert_eq!(name("/var/lib/dhcp-user"), "var-lib-dhcp-user");
        // Too long for a directory entry: cut at the front, the hash keeps it distinct.
        let long = format!("/srv/{}", "d".repeat(300));
        let cut = name(&long);
        assert!(
            cut.len() <= NAME_MAX
                && cut.ends_with(&format!("{:08x}", stable_hash(long.as_bytes()) as u32))
        );
        // Not UTF-8: the lossy form is hashed from the real bytes.
        use std::os::unix::ffi::OsStrExt;
        let raw = |bytes: &[u8]| pin_dir_name(Path::new(std::ffi::OsStr::from_bytes(bytes)));
        assert_ne!(raw(b"/srv/\xff"), raw(b"/srv/\xfe"));
        // Links: a VLAN interface's name has a dot.
        assert_eq!(link_pin_name("eth0"), "link-eth0");
        let vlan = link_pin_name("eth0.100");
        assert!(
            vlan.starts_with("link-eth0_100-") && !vlan.contains('.'),
            "{vlan}"
        );
        assert_ne!(vlan, link_pin_name("eth0.101"));
    }

    #[test]
    fn a_pin_root_with_a_dot_below_the_bpf_filesystem_is_refused_naming_it() {
        // `cargo xtask test` mounts the BPF filesystem on /sys/fs/bpf before the tests run.
        let root = Path::new("/sys/fs/bpf/dhcp-user-test/tmp.AbC123/maps");
        let err = refuse_dots_on_bpf_fs(root).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("/sys/fs/bpf/dhcp-user-test/tmp.AbC123/maps")
                && message.contains("refuses names containing a dot")
                && message.contains("tmp.AbC123"),
            "{message}"
        );
        assert!(refuse_dots_on_bpf_fs(Path::new("/sys/fs/bpf/dhcp-user/tmp-tmp_AbC123")).is_ok());
        let refused = FastPathError::PinDirRefused {
            path: "/sys/fs/bpf/x".into(),
            source: std::io::Error::from_raw_os_error(libc::EPERM),
        };
        assert!(refused
            .to_string()
            .contains("/sys/fs/bpf/x: creating the pin directory was refused"));
    }

    #[test]
    fn a_bpf_filesystem_mounted_on_a_path_with_dots_is_accepted() {
        let Some(bpffs) = TempBpfFs::mount("tmp.dhcp-user-bpffs.") else {
            return;
        };
        let fs = bpffs.0.clone();
        let below = refuse_dots_on_bpf_fs(&fs.join("pins/server"));
        let dotted = refuse_dots_on_bpf_fs(&fs.join("pins.v1/server"));
        drop(bpffs);
        assert!(below.is_ok(), "{below:?}");
        assert!(
            matches!(dotted, Err(FastPathError::DotInPinPath { ref component, .. }) if component == "pins.v1"),
            "{dotted:?}"
        );
    }

    /// A BPF filesystem mounted on a fresh directory `<tmp>/<prefix><pid>`; unmounted and
    /// removed on drop.
    struct TempBpfFs(PathBuf);

    impl TempBpfFs {
        /// `None` (the test is skipped, saying why) where mounting needs a root we lack;
        /// `cargo xtask test` runs the tests as root.
        fn mount(prefix: &str) -> Option<Self> {
            use nix::mount::{mount, MsFlags};
            let fs = std::env::temp_dir().join(format!("{prefix}{}", std::process::id()));
            std::fs::create_dir_all(&fs).unwrap();
            if let Err(err) = mount(
                Some("bpf"),
                &fs,
                Some("bpf"),
                MsFlags::empty(),
                None::<&str>,
            ) {
                eprintln!(
                    "skipped: mounting a BPF filesystem on {}: {err}",
                    fs.display()
                );
                let _ = std::fs::remove_dir(&fs);
                return None;
            }
            Some(TempBpfFs(fs))
        }
    }

    impl Drop for TempBpfFs {
        fn drop(&mut self) {
            let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
            let _ = std::fs::remove_dir(&self.0);
        }
    }

    /// A BPF map pinned at `path` (a real pin: bpffs holds nothing else), via bpf(2).
    fn pin_a_map(path: &Path) {
        use std::os::unix::ffi::OsStrExt;
        let mut attr = [0u8; 128];
        // BPF_MAP_CREATE: map_type (BPF_MAP_TYPE_ARRAY = 2), key_size, value_size, max_entries.
        for (at, value) in [2u32, 4, 8, 1].into_iter().enumerate() {
            attr[at * 4..at * 4 + 4].copy_from_slice(&value.to_ne_bytes());
        }
        // SAFETY: bpf(2) with a zeroed attribute union of the size passed.
        let fd = unsafe { libc::syscall(libc::SYS_bpf, 0, attr.as_ptr(), attr.len()) };
        assert!(
            fd >= 0,
            "BPF_MAP_CREATE: {}",
            std::io::Error::last_os_error()
        );
        let name = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
        let mut attr = [0u8; 128];
        // BPF_OBJ_PIN: pathname (a pointer), bpf_fd.
        attr[..8].copy_from_slice(&(name.as_ptr() as u64).to_ne_bytes());
        attr[8..12].copy_from_slice(&(fd as u32).to_ne_bytes());
        // SAFETY: as above; `name` outlives the call.
        let pinned = unsafe { libc::syscall(libc::SYS_bpf, 6, attr.as_ptr(), attr.len()) };
        assert_eq!(
            pinned,
            0,
            "BPF_OBJ_PIN: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: our own descriptor; the pin keeps the map.
        unsafe { libc::close(fd as i32) };
    }

    #[test]
    fn an_upgrade_moves_the_legacy_pins_to_the_new_default_root() {
        let Some(bpffs) = TempBpfFs::mount("dhcp-user-bpffs-") else {
            return;
        };
        let fs = bpffs.0.clone();
        let legacy = fs.join("dhcp-ebpf/var-lib-dhcp-user");
        let root = fs.join("dhcp-user/var-lib-dhcp-user");
        std::fs::create_dir_all(legacy.join("links")).unwrap();
        pin_a_map(&legacy.join(names::STATS));
        // Another server's legacy pins stay where they are.
        let other = fs.join("dhcp-ebpf/srv-other");
        std::fs::create_dir_all(&other).unwrap();
        pin_a_map(&other.join(names::STATS));

        let moved = adopt_legacy_pins(&legacy, &root);
        let moved_again = adopt_legacy_pins(&legacy, &root);
        let stats_pinned = root.join(names::STATS).exists();
        let links_dir = root.join("links").is_dir();
        let legacy_gone = !legacy.exists();
        let other_kept = other.join(names::STATS).exists();
        // A root that already holds pins is never replaced by legacy ones.
        let other_root = fs.join("dhcp-user/srv-other");
        std::fs::create_dir_all(other_root.join("links")).unwrap();
        let kept_current = adopt_legacy_pins(&other, &other_root);
        drop(bpffs);
        assert!(moved.unwrap(), "the legacy pins were not moved");
        assert!(!moved_again.unwrap(), "nothing is left to move");
        assert!(stats_pinned && links_dir, "the pins are under the new root");
        assert!(legacy_gone);
        assert!(other_kept, "another server's legacy pins were touched");
        assert!(!kept_current.unwrap(), "a root with pins was replaced");
    }

    #[test]
    fn a_pin_root_not_yet_made_under_the_bpf_filesystem_is_accepted() {
        // `cargo xtask test` mounts the BPF filesystem on /sys/fs/bpf before the tests run.
        assert!(on_bpf_fs(Path::new(
            "/sys/fs/bpf/dhcp-user-test-not-made/deeper"
        )));
    }
}
