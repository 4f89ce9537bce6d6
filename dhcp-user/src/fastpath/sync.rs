//! Keeping the fast path's maps true to the controller: configuration, bindings pushed on every
//! lease change, a bulk re-sync from the store on start, and the renewals the program answered
//! read back from its ring buffer and made durable.

use crate::log_throttled;
use std::{
    collections::HashMap,
    net::Ipv6Addr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use dhcp_common::{
    for_each_vlan_key, BindingKey, BindingValue, ClassInputs, GlobalConfig, IfaceConfig,
    OptionSlot, RelayValueKey, RenewalEvent, SubnetConfig, VlanKey, BINDING_HAS_NA, BINDING_HAS_PD,
    BINDING_PD_EXCLUDE, BINDING_RENEW_ONLY, CLASSES_CHECK, CLASSES_CHECK_RELAYS, FAST_OPTION_SLOTS,
    FAST_SERVER_DUID_MAX, MAX_SUBNETS, OPTION_SET_NA_PD, OPTION_SET_NONE, OPTION_SET_PD,
    OPTION_SLOT_ALWAYS, OPTION_SLOT_INFORMATION_ONLY, RELAY_SELECT_BY_ADDRESS,
    RELAY_SELECT_BY_INTERFACE_ID, RELAY_VALUE_INTERFACE_ID, RELAY_VALUE_REMOTE_ID,
};
use tokio::{io::unix::AsyncFd, sync::broadcast};
use tracing::{debug, info, warn};

use super::interned::{EntryRefs, SharedEntries};
use super::option_sets::SetOptions;
use super::{FastPath, FastPathError};
use crate::netif::IfaceInfo;
use crate::{
    binding_rule::{Reservations, Standing},
    clock::unix_now,
    config::{
        classes::{ClassFacts, ClassSet, ClientClass},
        Config, PoolHalf, Reservation, Subnet,
    },
    lease_events::LeaseEvent,
    netif::Interfaces,
    options::ConfiguredOption,
    store::{Lease, LeaseFilter, LeasePages, LeaseState, LeaseStore, LeaseType, StoreWriter},
};

/// The controller's leases as the map sync reads them.
pub trait LeaseSource: Send + Sync + 'static {
    /// The lease store (a bulk re-sync streams it).
    fn store(&self) -> &Arc<dyn LeaseStore>;
    /// `duid`'s durable lease rows (at most `limit`), from the controller's in-memory copy.
    fn durable_leases_of(&self, duid: &[u8], limit: usize) -> Vec<Lease>;
    /// A new subscription to lease events (each published once durable).
    fn subscribe(&self) -> broadcast::Receiver<LeaseEvent>;
    /// Calls `visit` with every durable lease row, in key order, from the controller's
    /// in-memory copy (held locked meanwhile: for the start, before anything is served).
    fn each_durable_lease(&self, visit: &mut dyn FnMut(&Lease));
    /// What `duid`'s classes were last judged on (`crate::server::class_facts`), if known.
    fn class_facts_of(&self, duid: &[u8]) -> Option<Arc<ClassFacts>>;
}

/// Where a binding write finds what its client's classes were judged on.
pub type FactsOf<'a> = &'a dyn Fn(&[u8]) -> Option<Arc<ClassFacts>>;

/// No facts: a start, before any request was judged.
pub fn no_facts(_duid: &[u8]) -> Option<Arc<ClassFacts>> {
    None
}

/// Where a bulk re-sync reads the durable leases.
#[derive(Clone, Copy)]
pub enum ResyncSource<'a> {
    /// The store, page by page (while the controller serves: it locks nothing).
    Store(&'a dyn LeaseStore),
    /// The controller's in-memory copy (at the start: no second read of every row from disk).
    Controller(&'a dyn LeaseSource),
}

/// Where the renewals the program answered go.
pub trait RenewalSink: Send + Sync + 'static {
    /// Extends `duid`'s assigned leases of `types` to `expires_unix` (persisted through the
    /// writer's batched submit, not awaited) and publishes `Renewed`; returns how many.
    fn apply_fast_path_renewal(
        &self,
        duid: &[u8],
        expires_unix: i64,
        types: &[LeaseType],
    ) -> Result<usize, anyhow::Error>;
    /// The writer the renewals go through (`flush` makes them durable).
    fn writer(&self) -> &StoreWriter;
}

/// Everything [`start`] needs of the controller it accelerates.
pub trait Controller: LeaseSource + RenewalSink {
    /// The configuration served (the one in force now: a reload may swap it).
    fn config(&self) -> Arc<Config>;
    /// Our DUID, as the program puts it in replies.
    fn server_duid(&self) -> &[u8];
    /// The served interfaces (the program's reply sources follow their addresses).
    fn interfaces(&self) -> &Arc<Interfaces>;
}

/// Where each configured subnet sits in the `SUBNETS` array (its position in the config).
#[derive(Clone, Debug, Default)]
pub struct SubnetIndex {
    by_id: HashMap<u32, u16>,
    /// The config's `grace-period`: how long after expiry the store keeps an address for its client.
    pub grace_period: u32,
    /// Each subnet's pools, by subnet id.
    subnets: HashMap<u32, Subnet>,
    /// The ids of the subnets in `SUBNETS`, by index.
    ids: Vec<u32>,
    /// By subnet id: the ids of the subnets a client of it may be served from, itself first
    /// (`Config::shared_with`), whose pools and reservations the controller's options follow.
    shared: HashMap<u32, Vec<u32>>,
    /// The reservations, for the controller's rule of which leases it keeps.
    reservations: Reservations,
    /// Ifindex of each served interface, by name; filled only with `interface-client-limit`
    /// (the one rule that needs a binding's interface: see `BindingValue::ifindex`).
    ifindex_by_name: HashMap<String, u32>,
    /// `[leasequery] pool-half`: leases outside it are the redundant peer's.
    pool_half: Option<PoolHalf>,
    /// The configuration's client classes, in file order.
    classes: Vec<ClientClass>,
    /// By subnet index: how the program follows classes there (`Config::fast_path_classes`).
    class_modes: Vec<u8>,
    /// True if some class looks at the interface: class inputs then name it.
    classes_look_at_interfaces: bool,
    /// The relay values the classes name, to their `RELAY_CLASS_VALUES` index.
    relay_values: HashMap<RelayValueKey, u8>,
}

impl SubnetIndex {
    pub fn new(config: &Config) -> Self {
        let by_id = config
            .subnets
            .iter()
            .enumerate()
            .filter(|(i, _)| (*i as u32) < MAX_SUBNETS)
            .map(|(i, s)| (s.id, i as u16))
            .collect();
        SubnetIndex {
            by_id,
            grace_period: config.grace_period,
            subnets: config.subnets.iter().map(|s| (s.id, s.clone())).collect(),
            ids: config
                .subnets
                .iter()
                .take(MAX_SUBNETS as usize)
                .map(|s| s.id)
                .collect(),
            shared: (0..config.subnets.len())
                .map(|i| {
                    let ids = config.shared_with(i).into_iter();
                    (
                        config.subnets[i].id,
                        ids.map(|j| config.subnets[j].id).collect(),
                    )
                })
                .collect(),
            reservations: Reservations::new(config),
            pool_half: config.leasequery.pool_half,
            classes: config.client_classes.clone(),
            class_modes: (0..config.subnets.len().min(MAX_SUBNETS as usize))
                .map(|i| config.fast_path_classes(i))
                .collect(),
            classes_look_at_interfaces: config.classes_look_at_interfaces(),
            relay_values: config
                .relay_class_values()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            ifindex_by_name: match config.interface_client_limit {
                Some(_) => config
                    .interfaces
                    .iter()
                    .filter_map(|name| {
                        let ifindex = nix::net::if_::if_nametoindex(name.as_str()).ok()?;
                        Some((name.clone(), ifindex))
                    })
                    .collect(),
                None => HashMap::new(),
            },
        }
    }

    /// True if `lease` is in the redundant peer's half of its pools and not its client's
    /// reservation (by DUID; one by line is judged by the request's line, which only the
    /// controller sees): the controller extends it on a Renew or Rebind, never hands it out on
    /// a Solicit or Request.
    fn renew_only(&self, lease: &Lease) -> bool {
        let Some(subnet) = self.subnets.get(&lease.subnet_id) else {
            return true;
        };
        let key = lease.key();
        !crate::binding_rule::in_own_half(subnet, self.pool_half, &key)
            && self.reservations.of_client(
                lease.subnet_id,
                lease.lease_type,
                &crate::binding_rule::Claimant::duid(&lease.duid),
            ) != Some(key)
    }

    /// The ifindex a binding records for `lease`'s interface: 0 when unknown or not needed,
    /// which makes the fast path pass that client's Solicit and Request on.
    fn ifindex_of(&self, lease: &Lease) -> u32 {
        self.ifindex_by_name
            .get(&lease.interface)
            .copied()
            .unwrap_or(0)
    }

    /// The `BINDING_PD_EXCLUDE` flag of `lease`: whether its pd-pool has a Prefix Exclude.
    fn pd_exclude_flag(&self, lease: &Lease) -> u8 {
        let Some(subnet) = self.subnets.get(&lease.subnet_id) else {
            return 0;
        };
        match lease.lease_type {
            LeaseType::Pd
                if subnet
                    .pd_exclude_for(lease.address, lease.prefix_len)
                    .is_some() =>
            {
                BINDING_PD_EXCLUDE
            }
            _ => 0,
        }
    }

    /// What the controller's replies to `value`'s client, in `classes`, carry for each IA
    /// combination (`BindingValue::option_sets`: IA_NA alone, IA_PD alone, both), by its own
    /// rule (`Subnet::reply_options`: the subnet's options, the levels of the classes, then
    /// those of the pools, pd-pools and reservations of the leases granted). A combination the
    /// binding does not hold is never answered.
    pub fn option_sets_of(&self, value: &BindingValue, classes: ClassSet) -> [SetOptions; 3] {
        let subnet = self
            .ids
            .get(value.subnet as usize)
            .and_then(|id| Some((id, self.subnets.get(id)?)));
        let Some((id, subnet)) = subnet else {
            return [SetOptions::Subnet, SetOptions::Subnet, SetOptions::Subnet];
        };
        let shared_subnets = || {
            self.shared
                .get(id)
                .into_iter()
                .flatten()
                .filter_map(|id| self.subnets.get(id))
        };
        let na = (value.flags & BINDING_HAS_NA != 0).then(|| (Ipv6Addr::from(value.na_addr), None));
        let pd = (value.flags & BINDING_HAS_PD != 0)
            .then(|| (Ipv6Addr::from(value.pd_prefix), Some(value.pd_len)));
        let class_levels = crate::config::classes::option_levels_in(&self.classes, classes);
        // Most bindings: no level below the subnet, so every reply carries the subnet's (decided
        // before anything is allocated: a cold start pushes a million of them).
        let own_levels = !class_levels.is_empty()
            || [na, pd].into_iter().flatten().any(|(address, len)| {
                shared_subnets().any(|s| {
                    let (pool, reservation) = s.lease_option_levels(address, len);
                    pool.is_some() || reservation.is_some()
                })
            });
        if !own_levels {
            return [SetOptions::Subnet, SetOptions::Subnet, SetOptions::Subnet];
        }
        let shared: Vec<&Subnet> = shared_subnets().collect();
        let of = |granted: &[Option<(Ipv6Addr, Option<u8>)>]| {
            let Some(granted) = granted.iter().copied().collect::<Option<Vec<_>>>() else {
                return SetOptions::Subnet;
            };
            let base = std::iter::once(&subnet.options[..]).chain(class_levels.iter().copied());
            let options = Subnet::reply_options(base, &shared, &granted);
            if options == subnet.options {
                return SetOptions::Subnet;
            }
            match option_slots(&options) {
                Some(slots) => SetOptions::Slots(slots),
                None => SetOptions::Unfit,
            }
        };
        [of(&[na]), of(&[pd]), of(&[na, pd])]
    }

    /// The classes `facts` put `value`'s client (of `duid`) in and the class inputs the program
    /// compares its requests with, where it follows classes (`CLASSES_CHECK`); `None` there
    /// when the client cannot be answered in XDP until the controller judges it again: no facts
    /// known, inputs longer than the program compares, or a lease of the binding in a pool not
    /// kept for its classes (the controller would not extend it).
    pub fn class_inputs_of(
        &self,
        value: &BindingValue,
        duid: &[u8],
        facts: Option<&ClassFacts>,
    ) -> (ClassSet, Option<ClassInputs>) {
        let mode = self.class_modes.get(value.subnet as usize).copied();
        if mode.unwrap_or(0) & CLASSES_CHECK == 0 {
            return (ClassSet::NONE, None);
        }
        let Some(facts) = facts else {
            return (ClassSet::NONE, None);
        };
        let classes = facts.member_in(&self.classes, duid);
        let subnet = self
            .ids
            .get(value.subnet as usize)
            .and_then(|id| self.subnets.get(id));
        let keys = [
            (value.flags & BINDING_HAS_NA != 0).then(|| crate::store::LeaseKey {
                lease_type: LeaseType::Na,
                address: Ipv6Addr::from(value.na_addr),
                prefix_len: 128,
            }),
            (value.flags & BINDING_HAS_PD != 0).then(|| crate::store::LeaseKey {
                lease_type: LeaseType::Pd,
                address: Ipv6Addr::from(value.pd_prefix),
                prefix_len: value.pd_len,
            }),
        ];
        let admitted = subnet
            .is_some_and(|subnet| keys.iter().flatten().all(|key| subnet.admits(key, classes)));
        if !admitted {
            return (classes, None);
        }
        let ifindex = if self.classes_look_at_interfaces {
            facts.ifindex
        } else {
            0
        };
        let inputs = ClassInputs::new(
            facts.user_class.as_deref(),
            facts.vendor_class.as_deref(),
            ifindex,
        );
        if mode.unwrap_or(0) & CLASSES_CHECK_RELAYS == 0 {
            return (classes, inputs);
        }
        // The program compares which class value each relay option equals.
        let Some(relays) = &facts.relays else {
            return (classes, None);
        };
        let index = |kind: u8, value: &Option<Vec<u8>>| {
            value
                .as_deref()
                .and_then(|value| RelayValueKey::new(kind, value))
                .and_then(|key| self.relay_values.get(&key).copied())
                .unwrap_or(0)
        };
        let (outer, inner) = match relays.interface_ids.as_slice() {
            [] => (None, None),
            [inner] => (None, Some(inner)),
            [outer, inner] => (Some(outer), Some(inner)),
            // The program passes a third hop on.
            _ => return (classes, None),
        };
        let inputs = inputs.map(|mut inputs| {
            inputs.relay_hops = relays.interface_ids.len() as u8;
            inputs.inner_interface_id = inner.map_or(0, |id| index(RELAY_VALUE_INTERFACE_ID, id));
            inputs.outer_interface_id = outer.map_or(0, |id| index(RELAY_VALUE_INTERFACE_ID, id));
            inputs.remote_id = index(RELAY_VALUE_REMOTE_ID, &relays.remote_id);
            inputs
        });
        (classes, inputs)
    }

    /// `sets` ([`SubnetIndex::option_sets_of`]) with the Prefix Exclude of `value`'s prefix
    /// in those of the replies carrying its IA_PD (`OPTION_SET_PD`, `OPTION_SET_NA_PD`), when
    /// its pd-pool has one: the body the controller's `Ctx::push_options` puts inside the
    /// IAPREFIX (`PdExclude::body`, of the pd-pool it finds in the same shared subnets). A
    /// list equal to the subnet's then gets a set of its own, the subnet's slots copied.
    pub fn with_pd_exclude(&self, value: &BindingValue, sets: [SetOptions; 3]) -> [SetOptions; 3] {
        if value.flags & BINDING_PD_EXCLUDE == 0 || value.flags & BINDING_HAS_PD == 0 {
            return sets;
        }
        let Some(id) = self.ids.get(value.subnet as usize) else {
            return sets;
        };
        let (prefix, len) = (Ipv6Addr::from(value.pd_prefix), value.pd_len);
        let exclude = self
            .shared
            .get(id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.subnets.get(id))
            .find_map(|s| s.pd_exclude_for(prefix, len));
        let (Some(exclude), Some(subnet)) = (exclude, self.subnets.get(id)) else {
            return sets;
        };
        let body = exclude.body(prefix, len);
        let [na, pd, both] = sets;
        let add = |set: SetOptions| match set {
            SetOptions::Subnet => match option_slots(&subnet.options) {
                Some(slots) => SetOptions::WithPdExclude(slots, body.clone()),
                None => SetOptions::Unfit,
            },
            SetOptions::Slots(slots) => SetOptions::WithPdExclude(slots, body.clone()),
            other => other,
        };
        [na, add(pd), add(both)]
    }

    /// The array index of subnet `id`.
    pub fn index(&self, id: u32) -> Option<u16> {
        self.by_id.get(&id).copied()
    }

    /// True when the controller keeps `lease` as its client's binding, so that the fast path may
    /// answer for it: [`Standing::Kept`] by the controller's own rule ([`crate::binding_rule`]).
    pub fn controller_keeps(&self, lease: &Lease) -> bool {
        self.subnets
            .get(&lease.subnet_id)
            .is_some_and(|subnet| self.reservations.lease_standing(subnet, lease) == Standing::Kept)
    }
}

/// The subnet's settings as the fast path answers with them. Its configured options (global
/// ones merged in) go into the slots in the controller's order (by code), each encoded as the
/// controller sends it; with more than the slots hold, or one too long for a slot, none go and
/// `options_fit` is 0: the controller answers the subnet's clients.
pub fn subnet_config(subnet: &Subnet) -> SubnetConfig {
    let mut cfg = SubnetConfig {
        preferred_lifetime: subnet.preferred_lifetime,
        valid_lifetime: subnet.valid_lifetime,
        t1: subnet.renew_timer,
        t2: subnet.rebind_timer,
        enabled: 1,
        rapid_commit: subnet.rapid_commit as u8,
        send_preference: subnet.preference.is_some() as u8,
        preference: subnet.preference.unwrap_or(0),
        options_fit: 0,
        option_count: 0,
        client_classes: 0,
        reconfigure: subnet.reconfigure as u8,
        options: [OptionSlot::EMPTY; FAST_OPTION_SLOTS],
    };
    if let Some(slots) = option_slots(&subnet.options) {
        cfg.options[..slots.len()].copy_from_slice(&slots);
        cfg.options_fit = 1;
        cfg.option_count = slots.len() as u8;
    }
    cfg
}

/// `options` (merged, in the controller's order) as the fast path's slots, each encoded as the
/// controller sends it and flagged by its rule (`always-send`, Information-Request only); `None`
/// when they are more than the slots or one is longer than a slot.
pub fn option_slots(options: &[ConfiguredOption]) -> Option<Vec<OptionSlot>> {
    let slots: Vec<OptionSlot> = options
        .iter()
        .map(|option| {
            let flags = (if option.always_send {
                OPTION_SLOT_ALWAYS
            } else {
                0
            }) | (if crate::options::information_only(option.code) {
                OPTION_SLOT_INFORMATION_ONLY
            } else {
                0
            });
            // The bytes the controller sends (`ConfiguredOption::to_option`, re-encoded verbatim).
            OptionSlot::new(option.code, &option.data, flags)
        })
        .collect::<Option<_>>()?;
    (slots.len() <= FAST_OPTION_SLOTS).then_some(slots)
}

/// `GlobalConfig::relay_selectors` for `config`: which relay selectors only the controller
/// applies.
pub fn relay_selectors(config: &Config) -> u8 {
    (if config.selects_by_relay_interface_id() {
        RELAY_SELECT_BY_INTERFACE_ID
    } else {
        0
    }) | (if config.selects_by_relay_address() {
        RELAY_SELECT_BY_ADDRESS
    } else {
        0
    })
}

/// The global entry; a server DUID too long for the fast path disables it.
pub fn global_config(server_duid: &[u8], enabled: bool, pass_rate_per_cpu: u32) -> GlobalConfig {
    let fits = !server_duid.is_empty() && server_duid.len() <= FAST_SERVER_DUID_MAX;
    let mut duid = [0u8; FAST_SERVER_DUID_MAX];
    if fits {
        duid[..server_duid.len()].copy_from_slice(server_duid);
    }
    GlobalConfig {
        clock_to_unix_ns: super::clock_to_unix_ns(),
        enabled: (enabled && fits) as u8,
        server_duid_len: if fits { server_duid.len() as u8 } else { 0 },
        relay_selectors: 0,
        interface_client_limit: 0,
        pass_rate_per_cpu,
        line_pass_budget: 0,
        line_pass_burst: 0,
        server_duid: duid,
    }
}

/// The subnet serving clients attached directly to `iface`: the first naming it (or a pattern
/// matching it) in `interfaces`, else the one whose prefix holds one of the interface's
/// addresses.
pub fn subnet_for_iface<'a>(config: &'a Config, iface: &IfaceInfo) -> Option<(usize, &'a Subnet)> {
    config
        .subnets
        .iter()
        .enumerate()
        .find(|(_, s)| s.serves_interface(&iface.name))
        .or_else(|| {
            config.subnets.iter().enumerate().find(|(_, s)| {
                s.interfaces.is_empty() && iface.addresses.iter().any(|(a, _)| s.prefix.contains(a))
            })
        })
}

/// Writes the whole configuration into the maps: global entry, subnets, relay links, interfaces.
pub fn configure(
    fp: &mut FastPath,
    config: &Config,
    server_duid: &[u8],
    ifaces: &[IfaceInfo],
    pass_rate_per_cpu: u32,
) -> Result<(), FastPathError> {
    configure_tables(fp, config, ifaces)?;
    fp.set_global(&global_for(config, server_duid, pass_rate_per_cpu))
}

/// The global entry of `config`, enabled.
pub fn global_for(config: &Config, server_duid: &[u8], pass_rate_per_cpu: u32) -> GlobalConfig {
    let mut global = global_config(server_duid, true, pass_rate_per_cpu);
    global.relay_selectors = relay_selectors(config);
    global.interface_client_limit = config.interface_client_limit.is_some() as u8;
    global.line_pass_budget = config.line_pass_budget;
    global.line_pass_burst = config.line_pass_burst;
    global
}

/// Writes the subnets, relay links and interfaces of `config` into the maps.
fn configure_tables(
    fp: &mut FastPath,
    config: &Config,
    ifaces: &[IfaceInfo],
) -> Result<(), FastPathError> {
    let served = config.subnets.iter().take(MAX_SUBNETS as usize);
    let links: Vec<(Ipv6Addr, u8)> = served
        .clone()
        .map(|s| (s.prefix.network(), s.prefix.prefix_len()))
        .collect();
    // Only this configuration's prefixes: the program judges a Confirm's address on the link by
    // them, and picks a relayed client's subnet.
    fp.retain_links(&links)?;
    for (i, (subnet, (prefix, len))) in served.zip(links.iter().copied()).enumerate() {
        let mut cfg = subnet_config(subnet);
        cfg.client_classes = config.fast_path_classes(i);
        fp.set_subnet(i as u16, &cfg)?;
        fp.set_link(prefix, len, i as u16)?;
    }
    fp.set_vlans(&vlan_entries(config, ifaces))?;
    fp.set_relay_class_values(&config.relay_class_values().unwrap_or_default())?;
    for note in config.fast_path_class_notes() {
        warn!("{note}");
    }
    for iface in ifaces {
        fp.set_iface(iface.ifindex, &iface_config(config, iface))?;
    }
    Ok(())
}

/// The `VLANS` entries of `config` on the served `ifaces`: each subnet's `vlans` expanded by
/// `dhcp_common::for_each_vlan_key` (the configuration refuses overlaps and more than
/// `MAX_VLAN_KEYS`), to the subnet's index.
pub fn vlan_entries(config: &Config, ifaces: &[IfaceInfo]) -> Vec<(VlanKey, u16)> {
    let mut entries = std::collections::HashMap::new();
    for (index, subnet) in config.subnets.iter().enumerate().take(MAX_SUBNETS as usize) {
        for lines in &subnet.vlans {
            for iface in ifaces.iter().filter(|i| lines.on(&i.name)) {
                let (outer, inner) = lines.key_ranges();
                for_each_vlan_key(iface.ifindex, outer, inner, |key| {
                    entries.entry(key).or_insert(index as u16);
                });
            }
        }
    }
    entries.into_iter().collect()
}

/// The `IFACES` entry of `iface`: its MAC, its direct subnet, and the sources
/// [`crate::netif::reply_source`] would pick (the fast path is off on an interface without a
/// link-local address).
pub fn iface_config(config: &Config, iface: &IfaceInfo) -> IfaceConfig {
    let subnet = subnet_for_iface(config, iface);
    let (link_local, global) = iface.fast_path_sources();
    IfaceConfig {
        mac: iface.mac,
        subnet: subnet.map(|(i, _)| i as u16).unwrap_or(0),
        link_local: link_local.octets(),
        global: global.unwrap_or(Ipv6Addr::UNSPECIFIED).octets(),
        enabled: (!link_local.is_unspecified()) as u8,
        has_subnet: subnet.is_some() as u8,
        has_global: global.is_some() as u8,
        has_vlans: config.has_vlan_lines(&iface.name) as u8,
        _pad: [0; 4],
    }
}

/// The fast-path binding for one client's leases, or `None` when the controller alone must serve
/// it: DUID too long, more than one address or prefix, leases on different subnets, nothing
/// active, a lease the controller would not keep as it is ([`SubnetIndex::controller_keeps`]).
pub fn binding_for(
    leases: &[Lease],
    now: i64,
    index: &SubnetIndex,
) -> Option<(BindingKey, BindingValue)> {
    let mut active = leases
        .iter()
        .filter(|l| l.state == LeaseState::Assigned && l.expire > now);
    let first = active.next()?;
    let key = BindingKey::new(&first.duid)?;
    let mut builder = BindingBuilder::start(first, index);
    builder.add(first, index);
    for lease in active {
        if lease.duid != first.duid {
            return None;
        }
        builder.add(lease, index);
    }
    builder.finish(index.grace_period).map(|value| (key, value))
}

/// Writes `value` as `key`'s binding in `map`, with its class inputs
/// ([`SubnetIndex::class_inputs_of`], from `facts`) and the option sets of its IA combinations
/// in those classes ([`SubnetIndex::option_sets_of`], with the Prefix Exclude of its prefix:
/// [`SubnetIndex::with_pd_exclude`]) acquired in `shared`, then releases `old`, what the entry
/// it replaces named (acquired first, so an entry both use is never cleared in between).
pub fn put_binding(
    map: &mut aya::maps::HashMap<&mut aya::maps::MapData, BindingKey, BindingValue>,
    shared: &mut SharedEntries,
    index: &SubnetIndex,
    key: &BindingKey,
    value: &mut BindingValue,
    old: EntryRefs,
    facts: Option<&ClassFacts>,
) -> Result<(), FastPathError> {
    let (classes, inputs) = index.class_inputs_of(value, key.duid(), facts);
    let plain = index.option_sets_of(value, classes);
    let wanted = index.with_pd_exclude(value, plain.clone());
    let sets = &mut shared.option_sets;
    value.option_sets = sets.acquire_all(&wanted)?;
    // No room left for a set with the Prefix Exclude: the list without it still answers the
    // requests whose ORO does not ask for 67 (those that do are passed on, `pass_pd_exclude`).
    for i in [OPTION_SET_PD, OPTION_SET_NA_PD] {
        if value.option_sets[i] == OPTION_SET_NONE
            && matches!(wanted[i], SetOptions::WithPdExclude(..))
        {
            value.option_sets[i] = sets.acquire(&plain[i])?;
        }
    }
    value.class_inputs = match &inputs {
        Some(inputs) => shared.class_inputs.acquire(inputs)?,
        None => 0,
    };
    if let Err(source) = map.insert(key, *value, 0) {
        shared.release(EntryRefs::of(value))?;
        return Err(FastPathError::Map {
            name: dhcp_common::maps::BINDINGS,
            source,
        });
    }
    shared.release(old)
}

/// Writes `value` as `key`'s binding (replacing what the map holds), with its shared entries
/// as [`put_binding`] chooses them; returns the value written.
pub fn push_binding(
    fp: &mut FastPath,
    index: &SubnetIndex,
    key: &BindingKey,
    value: BindingValue,
) -> Result<BindingValue, FastPathError> {
    push_binding_judged(fp, index, key, value, None)
}

/// [`push_binding`] for a client whose classes were judged on `facts`.
pub fn push_binding_judged(
    fp: &mut FastPath,
    index: &SubnetIndex,
    key: &BindingKey,
    mut value: BindingValue,
    facts: Option<&ClassFacts>,
) -> Result<BindingValue, FastPathError> {
    let (mut map, shared) = fp.bindings_and_sets()?;
    let old = map
        .get(key, 0)
        .map_or(EntryRefs::default(), |old| EntryRefs::of(&old));
    put_binding(&mut map, shared, index, key, &mut value, old, facts)?;
    Ok(value)
}

/// One client's binding built lease by lease (the active leases of one DUID, in any order), so
/// that a bulk re-sync can stream the store instead of holding every lease in memory.
#[derive(Debug, Clone, Copy)]
pub struct BindingBuilder {
    subnet_id: u32,
    value: BindingValue,
    /// Set when the leases cannot be one fast-path binding (see [`binding_for`]).
    refused: bool,
    /// Set once a lease's interface is in `value.ifindex`.
    has_ifindex: bool,
}

impl BindingBuilder {
    /// A binding started from the client's first active lease (which `add` must then be given
    /// too, like every other).
    pub fn start(first: &Lease, index: &SubnetIndex) -> Self {
        // (`add`, given the same lease, checks that the controller keeps it.)
        let subnet = index.index(first.subnet_id);
        BindingBuilder {
            subnet_id: first.subnet_id,
            value: BindingValue {
                expires: u64::MAX,
                durable_until: 0,
                na_iaid: 0,
                pd_iaid: 0,
                na_addr: [0; 16],
                pd_prefix: [0; 16],
                subnet: subnet.unwrap_or(0),
                flags: 0,
                pd_len: 0,
                ifindex: 0,
                // Chosen when the binding is written (`put_binding`), from the leases' options.
                option_sets: [0; 3],
                class_inputs: 0,
            },
            refused: subnet.is_none(),
            has_ifindex: false,
        }
    }

    /// Adds one active lease of the client.
    pub fn add(&mut self, lease: &Lease, index: &SubnetIndex) {
        if lease.subnet_id != self.subnet_id || !index.controller_keeps(lease) {
            self.refused = true;
            return;
        }
        let value = &mut self.value;
        match lease.lease_type {
            LeaseType::Na => {
                if value.flags & BINDING_HAS_NA != 0 {
                    self.refused = true;
                    return;
                }
                value.flags |= BINDING_HAS_NA;
                value.na_iaid = lease.iaid;
                value.na_addr = lease.address.octets();
            }
            LeaseType::Pd => {
                if value.flags & BINDING_HAS_PD != 0 {
                    self.refused = true;
                    return;
                }
                value.flags |= BINDING_HAS_PD;
                value.pd_iaid = lease.iaid;
                value.pd_prefix = lease.address.octets();
                value.pd_len = lease.prefix_len;
            }
        }
        value.expires = value.expires.min(lease.expire.max(0) as u64);
        // The controller lets a client through a full interface when any of its active leases
        // came through it; one recorded interface is the conservative reading of "any".
        if index.renew_only(lease) {
            value.flags |= BINDING_RENEW_ONLY;
        }
        value.flags |= index.pd_exclude_flag(lease);
        let ifindex = index.ifindex_of(lease);
        if !self.has_ifindex {
            value.ifindex = ifindex;
            self.has_ifindex = true;
        } else if value.ifindex != ifindex {
            value.ifindex = 0;
        }
    }

    /// The map value, or `None` when the controller alone must serve this client.
    pub fn finish(self, grace_period: u32) -> Option<BindingValue> {
        if self.refused {
            return None;
        }
        let mut value = self.value;
        value.durable_until = value.expires + u64::from(grace_period);
        Some(value)
    }
}

/// Counts of one bulk re-sync.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ResyncReport {
    pub clients: u64,
    pub pushed: u64,
    /// Entries the pinned map held with a later expiry than the store (renewals answered while the
    /// controller was down): kept, and written back to the store.
    pub kept_later_expiry: u64,
    pub removed: u64,
    pub controller_only: u64,
}

/// A client (DUID) whose binding the pinned map holds with a later expiry than the store: a
/// renewal the program answered while no controller was there to record it.
pub type LaterExpiry = (Vec<u8>, i64);

/// Pushes every active binding in the store into the map, merging with what a surviving pinned map
/// holds (an expiry never moves backwards), and removes map entries the store does not back.
/// Returns the clients whose map expiry is later than the store's.
pub fn resync(
    fp: &mut FastPath,
    source: ResyncSource<'_>,
    index: &SubnetIndex,
    now: i64,
    facts: FactsOf<'_>,
) -> Result<(ResyncReport, Vec<LaterExpiry>), anyhow::Error> {
    let started = Instant::now();
    // Streamed: one small builder per client (about 110 bytes), never every lease at once.
    let mut builders: HashMap<BindingKey, BindingBuilder, foldhash::fast::RandomState> =
        HashMap::default();
    let mut too_long: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    let mut add = |lease: &Lease| {
        if lease.state != LeaseState::Assigned || lease.expire <= now {
            return;
        }
        match BindingKey::new(&lease.duid) {
            Some(key) => builders
                .entry(key)
                .or_insert_with(|| BindingBuilder::start(lease, index))
                .add(lease, index),
            None => {
                too_long.insert(lease.duid.clone());
            }
        }
    };
    match source {
        ResyncSource::Store(store) => {
            for lease in LeasePages::new(store, LeaseFilter::All, 10_000) {
                add(&lease?);
            }
        }
        ResyncSource::Controller(controller) => controller.each_durable_lease(&mut add),
    }
    let mut report = ResyncReport {
        clients: (builders.len() + too_long.len()) as u64,
        controller_only: too_long.len() as u64,
        ..Default::default()
    };
    drop(too_long);
    let mut writes_back = Vec::new();
    let (mut map, sets) = fp.bindings_and_sets()?;
    let total = builders.len();
    let mut wanted: std::collections::HashSet<BindingKey, foldhash::fast::RandomState> =
        std::collections::HashSet::with_capacity_and_hasher(total, Default::default());
    for (n, (key, builder)) in builders.drain().enumerate() {
        let Some(mut value) = builder.finish(index.grace_period) else {
            report.controller_only += 1;
            continue;
        };
        let existing = map.get(&key, 0).ok();
        if let Some(existing) = existing {
            let same = existing.na_addr == value.na_addr
                && existing.pd_prefix == value.pd_prefix
                && existing.flags == value.flags
                && existing.na_iaid == value.na_iaid
                && existing.pd_iaid == value.pd_iaid;
            if same && existing.expires > value.expires {
                value.expires = existing.expires;
                report.kept_later_expiry += 1;
                writes_back.push((key.duid().to_vec(), existing.expires as i64));
            }
        }
        let old = existing.map_or(EntryRefs::default(), |e| EntryRefs::of(&e));
        let judged = facts(key.duid());
        put_binding(
            &mut map,
            sets,
            index,
            &key,
            &mut value,
            old,
            judged.as_deref(),
        )?;
        wanted.insert(key);
        report.pushed += 1;
        if total >= 100_000 && (n + 1) % 100_000 == 0 {
            info!(
                "fast path re-sync: {} / {} clients pushed ({:.1}s)",
                n + 1,
                total,
                started.elapsed().as_secs_f64()
            );
        }
    }
    let stale: Vec<BindingKey> = map
        .keys()
        .filter_map(Result::ok)
        .filter(|k| !wanted.contains(k))
        .collect();
    for key in stale {
        if let Ok(old) = map.get(&key, 0) {
            let _ = map.remove(&key);
            sets.release(EntryRefs::of(&old))?;
        }
        report.removed += 1;
    }
    info!(
        "fast path re-sync: {} bindings pushed, {} controller-only, {} kept a later expiry, {} stale removed in {:.2}s",
        report.pushed,
        report.controller_only,
        report.kept_later_expiry,
        report.removed,
        started.elapsed().as_secs_f64()
    );
    Ok((report, writes_back))
}

/// What the prefill thread is given: first the index of the configuration served, then the
/// rows, page by page, as the controller loads its copy of them.
enum PrefillInput {
    Index(Box<SubnetIndex>),
    Rows(Vec<Lease>),
}

/// Pages of rows waiting for the prefill thread at most: the controller's load waits for it
/// beyond this (a bounded hand-off, a few tens of thousands of leases).
const PREFILL_PAGES_QUEUED: usize = 4;

/// The fast path loaded, and on a cold start its binding map filled, on a thread of its own
/// while the controller loads its copy of the leases: the verifier, the map's preallocation
/// and one map update per client overlap the store's read instead of following it. The rows
/// come from the controller's load ([`Prefill::config`], [`Prefill::rows`]): one read of the
/// store for both, so the map holds exactly the bindings the controller's copy does.
///
/// Only a cold start is filled this way (no pinned binding map, or an empty one): nothing is
/// attached yet, so a binding half built (a client's IA_NA pushed, its IA_PD still to come)
/// is never seen by the program. With pinned bindings the program is attached and answering,
/// so [`start_prefilled`] merges them with the copy afterwards, as [`start`] does.
pub struct Prefill {
    input: Option<std::sync::mpsc::SyncSender<PrefillInput>>,
    thread: std::thread::JoinHandle<Result<Prefilled, FastPathError>>,
}

/// The fast path as the prefill thread leaves it.
pub struct Prefilled {
    fp: FastPath,
    /// The cold fill's counts (`None`: the map held bindings; [`start_prefilled`] re-syncs).
    report: Option<ResyncReport>,
}

impl Prefilled {
    /// The fast path loaded (not attached).
    pub fn fast_path(&self) -> &FastPath {
        &self.fp
    }

    /// The cold fill's counts; `None` when the map held bindings (left to the re-sync).
    pub fn filled(&self) -> Option<ResyncReport> {
        self.report
    }
}

impl Prefill {
    /// Starts loading the fast path with `settings` on a thread of its own.
    pub fn spawn(settings: &FastPathSettings) -> std::io::Result<Self> {
        let (input, rows) = std::sync::mpsc::sync_channel(PREFILL_PAGES_QUEUED);
        let (pin_root, max_bindings) = (settings.pin_root.clone(), settings.max_bindings);
        let thread = std::thread::Builder::new()
            .name("fastpath-prefill".into())
            .spawn(move || prefill(pin_root.as_deref(), max_bindings, rows))?;
        Ok(Prefill {
            input: Some(input),
            thread,
        })
    }

    /// The configuration the controller serves (before the first rows).
    pub fn config(&mut self, config: &Config) {
        self.send(PrefillInput::Index(Box::new(SubnetIndex::new(config))));
    }

    /// The next page of the controller's rows.
    pub fn rows(&mut self, rows: Vec<Lease>) {
        self.send(PrefillInput::Rows(rows));
    }

    fn send(&mut self, input: PrefillInput) {
        // A thread that stopped early (a warm start, or the load failed) takes nothing more;
        // `finish` says why.
        if let Some(tx) = &self.input {
            if tx.send(input).is_err() {
                self.input = None;
            }
        }
    }

    /// Waits for the thread: the loaded fast path, filled on a cold start.
    pub fn finish(mut self) -> Result<Prefilled, FastPathError> {
        self.input = None;
        match self.thread.join() {
            Ok(done) => done,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// The prefill thread: loads the fast path, and when its binding map is empty fills it from
/// the rows as they come, each client's binding rewritten as each of its leases arrives.
fn prefill(
    pin_root: Option<&std::path::Path>,
    max_bindings: u32,
    input: std::sync::mpsc::Receiver<PrefillInput>,
) -> Result<Prefilled, FastPathError> {
    let started = Instant::now();
    let mut fp = FastPath::load_sized(pin_root, max_bindings)?;
    if fp.bindings()?.keys().next().is_some() {
        return Ok(Prefilled { fp, report: None });
    }
    let Ok(PrefillInput::Index(index)) = input.recv() else {
        // The controller failed before its rows: `start_prefilled` is not reached.
        return Ok(Prefilled { fp, report: None });
    };
    let now = unix_now();
    // A keyed fast hash (seeded per process) for keys from the wire, as the controller's copy.
    let mut builders: HashMap<BindingKey, BindingBuilder, foldhash::fast::RandomState> =
        HashMap::default();
    let mut too_long: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    // The shared entries of the clients written with some (a few): released when rewritten.
    let mut with_sets: HashMap<BindingKey, EntryRefs> = HashMap::new();
    let (mut map, sets) = fp.bindings_and_sets()?;
    for page in input {
        let PrefillInput::Rows(rows) = page else {
            continue;
        };
        for lease in rows {
            if lease.state != LeaseState::Assigned || lease.expire <= now {
                continue;
            }
            let Some(key) = BindingKey::new(&lease.duid) else {
                too_long.insert(lease.duid);
                continue;
            };
            let builder = builders
                .entry(key)
                .or_insert_with(|| BindingBuilder::start(&lease, &index));
            builder.add(&lease, &index);
            let old_sets = with_sets.remove(&key).unwrap_or_default();
            match builder.finish(index.grace_period) {
                Some(mut value) => {
                    // No request was judged yet: no class inputs.
                    put_binding(&mut map, sets, &index, &key, &mut value, old_sets, None)?;
                    if EntryRefs::of(&value) != EntryRefs::default() {
                        with_sets.insert(key, EntryRefs::of(&value));
                    }
                }
                // Refused (so far): the controller serves this client; a later lease of it
                // cannot make it a fast-path binding again.
                None => {
                    let _ = map.remove(&key);
                    sets.release(old_sets)?;
                }
            }
        }
    }
    let pushed = builders
        .values()
        .filter(|b| b.finish(index.grace_period).is_some())
        .count() as u64;
    let report = ResyncReport {
        clients: (builders.len() + too_long.len()) as u64,
        pushed,
        controller_only: (builders.len() as u64 - pushed) + too_long.len() as u64,
        ..Default::default()
    };
    info!(
        "fast path filled cold, alongside the controller's load: {} bindings pushed, {} controller-only in {:.2}s",
        report.pushed,
        report.controller_only,
        started.elapsed().as_secs_f64()
    );
    Ok(Prefilled {
        fp,
        report: Some(report),
    })
}

/// Most fast-path renewal reports `follow_renewals` reads before making them durable.
const RENEWALS_PER_ROUND: usize = 8192;

/// Most lease events `MapSync::follow_events` takes in one go before refreshing their clients.
const EVENT_BURST: usize = 1024;

/// The running sync: owns the shared fast path and follows lease events and the ring buffer.
pub struct MapSync {
    fp: Arc<Mutex<FastPath>>,
    /// Swapped by [`MapSync::reconfigure`] while it holds `fp`'s lock: whoever holds that lock
    /// reads the index that matches the maps.
    index: Mutex<Arc<SubnetIndex>>,
    server: Arc<dyn LeaseSource>,
}

/// What [`MapSync::reconfigure`] needs besides the configuration.
pub struct Reconfigure<'a> {
    /// Our DUID, as the program puts it in replies.
    pub server_duid: &'a [u8],
    /// The served interfaces, as last read.
    pub ifaces: &'a [IfaceInfo],
    /// `--pass-rate-per-cpu`.
    pub pass_rate_per_cpu: u32,
}

impl MapSync {
    pub fn new(fp: Arc<Mutex<FastPath>>, index: SubnetIndex, server: Arc<dyn LeaseSource>) -> Self {
        MapSync {
            fp,
            index: Mutex::new(Arc::new(index)),
            server,
        }
    }

    /// The index that matches the maps (call with `fp`'s lock held).
    fn index(&self) -> Arc<SubnetIndex> {
        Arc::clone(&self.index.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Brings the maps to `config` (a reload): the program is told to pass every request on
    /// (to the controller, which already serves `config`), then the subnets, links, interfaces
    /// and every binding are rewritten from the store (a binding whose leases left their pools,
    /// or whose subnet went, is removed: the controller answers it), then the program answers
    /// again. No request is dropped meanwhile; none is answered with a mix of the two.
    pub fn reconfigure(
        &self,
        config: &Config,
        with: &Reconfigure<'_>,
    ) -> Result<ResyncReport, anyhow::Error> {
        let mut fp = self.fp.lock().unwrap_or_else(|e| e.into_inner());
        let running = fp.global()?;
        fp.set_global(&GlobalConfig {
            enabled: 0,
            ..running
        })?;
        configure_tables(&mut fp, config, with.ifaces)?;
        let index = SubnetIndex::new(config);
        // From the store, page by page: the decisions go on meanwhile (the controller's copy
        // would hold their lock for the whole walk).
        let (report, _) = resync(
            &mut fp,
            ResyncSource::Store(self.server.store().as_ref()),
            &index,
            unix_now(),
            &self.facts(),
        )?;
        *self.index.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(index);
        fp.set_global(&global_for(
            config,
            with.server_duid,
            with.pass_rate_per_cpu,
        ))?;
        Ok(report)
    }

    /// Follows a reservation added (`added`) or deleted at run time (the operator API), before
    /// the allocator honours an added one and after it forgets a deleted one, so that the
    /// program never answers from a binding the controller no longer keeps. Under the maps'
    /// lock, the index learns it and the bindings it may change are rebuilt: those of
    /// `clients` (the DUIDs the caller found: the reserved client, the holders of the reserved
    /// address and prefix), or, for a reservation by line (`clients` is `None`: which DUIDs
    /// are on a line only their leases' relay chains tell), every binding from the store, the
    /// program passing every request on meanwhile (as in a reload).
    pub fn reservation_changed(
        &self,
        subnet_id: u32,
        reservation: &Reservation,
        added: bool,
        clients: Option<&[Vec<u8>]>,
    ) -> Result<(), anyhow::Error> {
        let mut fp = self.fp.lock().unwrap_or_else(|e| e.into_inner());
        let index = {
            let mut guard = self.index.lock().unwrap_or_else(|e| e.into_inner());
            let index = Arc::make_mut(&mut guard);
            if added {
                index.reservations.insert(subnet_id, reservation);
            } else {
                index.reservations.remove(subnet_id, reservation);
            }
            Arc::clone(&guard)
        };
        let now = unix_now();
        match clients {
            Some(clients) => {
                for duid in clients {
                    let leases = self.server.durable_leases_of(duid, 64);
                    let facts = self.server.class_facts_of(duid);
                    Self::write_binding(&mut fp, &index, duid, &leases, now, facts.as_deref())?;
                }
            }
            None => {
                let running = fp.global()?;
                fp.set_global(&GlobalConfig {
                    enabled: 0,
                    ..running
                })?;
                let resynced = resync(
                    &mut fp,
                    ResyncSource::Store(self.server.store().as_ref()),
                    &index,
                    now,
                    &self.facts(),
                );
                fp.set_global(&running)?;
                resynced?;
            }
        }
        Ok(())
    }

    /// Re-computes `duid`'s binding from the durable lease rows and writes or removes its map
    /// entry. The rows come from the server's in-memory copy of the store (a SQLite query per
    /// lease event here cost more than the whole 4-way exchange it followed).
    pub fn refresh_client(&self, duid: &[u8], now: i64) -> Result<(), anyhow::Error> {
        if BindingKey::new(duid).is_none() {
            return Ok(());
        }
        let leases = self.server.durable_leases_of(duid, 64);
        let facts = self.server.class_facts_of(duid);
        let mut fp = self.fp.lock().unwrap_or_else(|e| e.into_inner());
        let index = self.index();
        Self::write_binding(&mut fp, &index, duid, &leases, now, facts.as_deref())
    }

    /// What a re-sync while serving reads each client's class facts from.
    fn facts(&self) -> impl Fn(&[u8]) -> Option<Arc<ClassFacts>> + '_ {
        |duid| self.server.class_facts_of(duid)
    }

    /// Writes (or removes) `duid`'s map entry for `leases` under `index` (`fp` locked).
    fn write_binding(
        fp: &mut FastPath,
        index: &SubnetIndex,
        duid: &[u8],
        leases: &[Lease],
        now: i64,
        facts: Option<&ClassFacts>,
    ) -> Result<(), anyhow::Error> {
        let Some(key) = BindingKey::new(duid) else {
            return Ok(());
        };
        let (mut map, sets) = fp.bindings_and_sets()?;
        let existing = map.get(&key, 0).ok();
        let old_sets = existing.map_or(EntryRefs::default(), |e| EntryRefs::of(&e));
        match binding_for(leases, now, index) {
            Some((key, mut value)) => {
                // The program may have moved the expiry on since the store last heard of it.
                if let Some(existing) = existing {
                    if existing.na_addr == value.na_addr && existing.pd_prefix == value.pd_prefix {
                        value.expires = value.expires.max(existing.expires);
                    }
                }
                put_binding(&mut map, sets, index, &key, &mut value, old_sets, facts)?;
            }
            None => {
                if existing.is_some() {
                    let _ = map.remove(&key);
                    sets.release(old_sets)?;
                }
            }
        }
        Ok(())
    }

    /// Follows lease events until the channel closes: every grant, renewal, release, decline,
    /// expiry and clear is reflected in the map. A lag (events lost) triggers a full re-sync.
    pub async fn follow_events(self: Arc<Self>, mut events: broadcast::Receiver<LeaseEvent>) {
        use broadcast::error::{RecvError, TryRecvError};
        loop {
            let first = match events.recv().await {
                Ok(event) => event,
                Err(RecvError::Lagged(missed)) => {
                    self.resync_after_lag(missed);
                    continue;
                }
                Err(RecvError::Closed) => return,
            };
            // Events come in bursts (a client's IA_NA and IA_PD together, a batch of fast-path
            // renewals): each client's binding is rebuilt once per burst, not once per event.
            let mut clients = vec![first.lease.duid];
            let mut missed = None;
            while clients.len() < EVENT_BURST {
                match events.try_recv() {
                    Ok(event) => clients.push(event.lease.duid),
                    Err(TryRecvError::Lagged(n)) => {
                        missed = Some(n);
                        break;
                    }
                    // Empty, or Closed (the next recv sees it).
                    Err(_) => break,
                }
            }
            clients.sort_unstable();
            clients.dedup();
            let now = unix_now();
            for duid in &clients {
                if let Err(e) = self.refresh_client(duid, now) {
                    log_throttled!(
                        warn,
                        "fast path: updating the binding of a client failed: {e:#}"
                    );
                }
            }
            debug!("fast path: {} clients refreshed", clients.len());
            if let Some(missed) = missed {
                self.resync_after_lag(missed);
            }
        }
    }

    fn resync_after_lag(&self, missed: u64) {
        warn!("fast path: {missed} lease events missed; re-syncing the map from the store");
        let mut fp = self.fp.lock().unwrap_or_else(|e| e.into_inner());
        let index = self.index();
        if let Err(e) = resync(
            &mut fp,
            ResyncSource::Store(self.server.store().as_ref()),
            &index,
            unix_now(),
            &self.facts(),
        ) {
            warn!("fast path: re-sync failed: {e:#}");
        }
    }
}

impl crate::server::operator::ReservationFollower for MapSync {
    fn reservation_changed(
        &self,
        subnet_id: u32,
        reservation: &Reservation,
        added: bool,
        clients: Option<&[Vec<u8>]>,
    ) -> Result<(), anyhow::Error> {
        MapSync::reservation_changed(self, subnet_id, reservation, added, clients)
    }
}

/// Applies every renewal report already waiting in the ring (left by the program while no
/// controller read it) to the store, through the writer's batched `submit`; returns how many.
fn drain_waiting_renewals(
    ring: &mut aya::maps::RingBuf<aya::maps::MapData>,
    server: &dyn RenewalSink,
) -> usize {
    let mut applied = 0;
    while let Some(item) = ring.next() {
        let Some((renewal, types)) = decode_renewal(&item) else {
            continue;
        };
        match server.apply_fast_path_renewal(renewal.key.duid(), renewal.expires as i64, &types) {
            Ok(_) => applied += 1,
            Err(e) => log_throttled!(warn, "fast path: recording a renewal failed: {e}"),
        }
    }
    applied
}

/// One report from the ring: the event and the lease types it renewed (`None` for a record
/// shorter than a `RenewalEvent`).
pub fn decode_renewal(item: &[u8]) -> Option<(RenewalEvent, Vec<LeaseType>)> {
    if item.len() < std::mem::size_of::<RenewalEvent>() {
        return None;
    }
    // SAFETY: the program writes whole RenewalEvents (length checked above); read_unaligned
    // copes with any alignment of the ring's bytes.
    let renewal = unsafe { std::ptr::read_unaligned(item.as_ptr() as *const RenewalEvent) };
    let mut types = Vec::with_capacity(2);
    if renewal.ias & BINDING_HAS_NA != 0 {
        types.push(LeaseType::Na);
    }
    if renewal.ias & BINDING_HAS_PD != 0 {
        types.push(LeaseType::Pd);
    }
    Some((renewal, types))
}

/// Reads the renewals the program answered and hands each to the server, which extends the
/// client's leases durably within a second and publishes `Renewed` (active leasequery sees them).
pub async fn follow_renewals(
    ring: aya::maps::RingBuf<aya::maps::MapData>,
    server: Arc<dyn RenewalSink>,
    sync: Arc<MapSync>,
) -> Result<(), anyhow::Error> {
    // SAFETY: the ring buffer owns its fd for as long as the AsyncFd owns the ring buffer.
    let mut ring = unsafe { AsyncFd::register(ring) }
        .map_err(|e| anyhow::anyhow!("watching the fast path's ring buffer: {e}"))?;
    loop {
        let mut guard = ring.readable_mut().await?;
        let mut renewed: Vec<Vec<u8>> = Vec::new();
        // A round ends after RENEWALS_PER_ROUND reports even if more are queued, so that under a
        // sustained flood the batch still reaches the disk and the map learns the new horizon
        // (the ring stays marked readable and the next round starts at once).
        let mut drained = false;
        let mut reports = 0;
        loop {
            if reports == RENEWALS_PER_ROUND {
                break;
            }
            let Some(item) = guard.get_inner_mut().next() else {
                drained = true;
                break;
            };
            reports += 1;
            let Some((renewal, types)) = decode_renewal(&item) else {
                continue;
            };
            match server.apply_fast_path_renewal(renewal.key.duid(), renewal.expires as i64, &types)
            {
                Ok(_) => renewed.push(renewal.key.duid().to_vec()),
                Err(e) => log_throttled!(warn, "fast path: recording a renewal failed: {e}"),
            }
        }
        if drained {
            guard.clear_ready();
        }
        drop(guard);
        if renewed.is_empty() {
            continue;
        }
        // Once durable, the map learns how far the store now vouches for these clients. A
        // failed commit (a full disk) loses these reports, which is safe: the map's horizon
        // stays where the store vouches for, so the program never promised past it. The reader
        // goes on: renewals are made durable again as soon as the store can write.
        if let Err(e) = server.writer().flush().await {
            log_throttled!(
                warn,
                "fast path: {} renewals answered by XDP could not be made durable: {e}",
                renewed.len()
            );
            metrics::counter!("dhcp_fastpath_renewals_not_durable_total")
                .increment(renewed.len() as u64);
            continue;
        }
        let now = unix_now();
        renewed.sort();
        renewed.dedup();
        for duid in &renewed {
            if let Err(e) = sync.refresh_client(duid, now) {
                log_throttled!(warn, "fast path: refreshing a binding failed: {e:#}");
            }
        }
        debug!("fast path: {} renewals durable", renewed.len());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(duid: &[u8], lease_type: LeaseType, address: &str, len: u8, expire: i64) -> Lease {
        Lease {
            preferred_lifetime: 100,
            valid_lifetime: 200,
            cltt: expire - 200,
            expire,
            ..Lease::bare(
                lease_type,
                address.parse().unwrap(),
                len,
                duid.to_vec(),
                if lease_type == LeaseType::Na { 1 } else { 2 },
                7,
            )
        }
    }

    /// Subnet 7 (at index 3 of the map) with an address pool and a PD pool, and `extra`
    /// appended to it (reservations).
    fn index_with(extra: &str) -> SubnetIndex {
        let text = format!(
            "grace-period = 50\n[[subnet]]\nid = 7\nprefix = \"2001:db8::/64\"\n\
             pools = [{{ low = \"2001:db8::1\", high = \"2001:db8::ff\" }}]\n\
             pd-pools = [{{ prefix = \"2001:db8:100::/40\", delegated-length = 56 }}]\n{extra}"
        );
        let mut index = SubnetIndex::new(&Config::parse(&text, "t").unwrap());
        index.by_id.insert(7, 3u16);
        index
    }

    fn index() -> SubnetIndex {
        index_with("")
    }

    /// With `interface-client-limit`, a binding records the ifindex its leases came through (so
    /// the fast path passes a Solicit or Request arriving elsewhere); leases through two
    /// interfaces, or an interface not served, record 0; without the limit, always 0.
    #[test]
    fn a_binding_records_its_interface_only_with_a_client_limit() {
        let duid = [0, 3, 0, 1, 1, 2, 3, 4, 5, 6];
        let limited = |extra: &str| {
            let text = format!(
                "interfaces = [\"lo\"]\ninterface-client-limit = 10\n{extra}[[subnet]]\nid = 7\n\
                 prefix = \"2001:db8::/64\"\n\
                 pools = [{{ low = \"2001:db8::1\", high = \"2001:db8::ff\" }}]\n\
                 pd-pools = [{{ prefix = \"2001:db8:100::/40\", delegated-length = 56 }}]\n"
            );
            let mut index = SubnetIndex::new(&Config::parse(&text, "t").unwrap());
            index.by_id.insert(7, 3u16);
            index
        };
        let on = |iface: &str, lease_type, address, len| {
            let mut l = lease(&duid, lease_type, address, len, 1000);
            l.interface = iface.into();
            l
        };
        let na = on("lo", LeaseType::Na, "2001:db8::5", 128);
        let pd = on("lo", LeaseType::Pd, "2001:db8:100::", 56);
        let (_, value) = binding_for(&[na.clone(), pd.clone()], 10, &limited("")).unwrap();
        assert_eq!(value.ifindex, 1, "lo");
        let elsewhere = on("not-served", LeaseType::Pd, "2001:db8:100::", 56);
        let (_, value) = binding_for(&[na.clone(), elsewhere], 10, &limited("")).unwrap();
        assert_eq!(value.ifindex, 0, "two interfaces");
        let (_, value) = binding_for(&[na, pd], 10, &index()).unwrap();
        assert_eq!(value.ifindex, 0, "no limit");
    }

    /// In a redundant pair, a binding holding a lease of the peer's half of the pools (not the
    /// client's reservation) is marked renew-only: the controller never hands it out on a
    /// Solicit or Request, so neither may the fast path.
    #[test]
    fn a_lease_of_the_peers_half_makes_the_binding_renew_only() {
        let duid = [0, 3, 0, 1, 1, 2, 3, 4, 5, 6];
        let half = |which: &str, extra: &str| {
            let mut index = index_with(extra);
            index.pool_half = Some(if which == "lower" {
                PoolHalf::Lower
            } else {
                PoolHalf::Upper
            });
            index
        };
        // Pool 2001:db8::1..=ff (255 slots): the lower half is ::1..=::80.
        let low = lease(&duid, LeaseType::Na, "2001:db8::5", 128, 1000);
        let high = lease(&duid, LeaseType::Na, "2001:db8::f0", 128, 1000);
        let flags = |l: &Lease, index: &SubnetIndex| {
            binding_for(std::slice::from_ref(l), 10, index)
                .unwrap()
                .1
                .flags
        };
        assert_eq!(flags(&low, &index()) & BINDING_RENEW_ONLY, 0, "no pair");
        assert_eq!(
            flags(&low, &half("lower", "")) & BINDING_RENEW_ONLY,
            0,
            "ours"
        );
        assert_ne!(
            flags(&high, &half("lower", "")) & BINDING_RENEW_ONLY,
            0,
            "the peer's"
        );
        assert_eq!(
            flags(&high, &half("upper", "")) & BINDING_RENEW_ONLY,
            0,
            "ours (upper)"
        );
        let reserved = half(
            "lower",
            "reservations = [{ duid = \"00:03:00:01:01:02:03:04:05:06\", address = \"2001:db8::f0\" }]\n",
        );
        assert_eq!(
            flags(&high, &reserved) & BINDING_RENEW_ONLY,
            0,
            "its reservation"
        );
        // A prefix of the upper half of the PD pool (2^16 /56s in the /40).
        let pd = lease(&duid, LeaseType::Pd, "2001:db8:1ff:ff00::", 56, 1000);
        assert_ne!(
            flags(&pd, &half("lower", "")) & BINDING_RENEW_ONLY,
            0,
            "peer's prefix"
        );
        assert_eq!(
            flags(&pd, &half("upper", "")) & BINDING_RENEW_ONLY,
            0,
            "own prefix"
        );
    }

    #[test]
    fn leases_the_controller_would_not_keep_are_left_to_it() {
        let duid = [0, 3, 0, 1, 1, 2, 3, 4, 5, 6];
        let na = lease(&duid, LeaseType::Na, "2001:db8::5", 128, 1000);
        assert!(binding_for(std::slice::from_ref(&na), 10, &index()).is_some());
        // The pool was shrunk since the lease was granted: the controller answers NoBinding.
        let outside = lease(&duid, LeaseType::Na, "2001:db8::1:5", 128, 1000);
        assert!(binding_for(std::slice::from_ref(&outside), 10, &index()).is_none());
        // ... unless it is the client's own reservation.
        let own = index_with(
            "reservations = [{ duid = \"00:03:00:01:01:02:03:04:05:06\", address = \"2001:db8::1:5\" }]\n",
        );
        assert!(binding_for(&[outside], 10, &own).is_some());
        // The address was reserved for another client since.
        let theirs = index_with(
            "reservations = [{ duid = \"00:03:00:01:ff:ff:ff:ff:ff:ff\", address = \"2001:db8::5\" }]\n",
        );
        assert!(binding_for(std::slice::from_ref(&na), 10, &theirs).is_none());
        // The client was given a reservation since: its Solicit is offered that instead.
        let moved = index_with(
            "reservations = [{ duid = \"00:03:00:01:01:02:03:04:05:06\", address = \"2001:db8::9\" }]\n",
        );
        assert!(binding_for(std::slice::from_ref(&na), 10, &moved).is_none());
        // A prefix outside every PD pool now.
        let pd = lease(&duid, LeaseType::Pd, "2001:db9::", 56, 1000);
        assert!(binding_for(&[na, pd], 10, &index()).is_none());
    }

    /// The relay chain of a request relayed with Remote-ID `id` (enterprise 3561).
    fn relayed_on(id: &[u8]) -> Vec<u8> {
        use crate::proto::{DhcpOption, Message, Packet, RelayMessage, RemoteId};
        let client = Message::new(dhcp_common::dhcpv6::MSG_SOLICIT, [1, 2, 3]);
        Packet::Relay(RelayMessage {
            msg_type: dhcp_common::dhcpv6::MSG_RELAY_FORW,
            hop_count: 0,
            link_address: "2001:db8::1".parse().unwrap(),
            peer_address: "fe80::1".parse().unwrap(),
            options: vec![
                DhcpOption::RemoteId(RemoteId {
                    enterprise: 3561,
                    remote_id: id.to_vec(),
                }),
                DhcpOption::RelayMsg(Box::new(Packet::Message(client))),
            ],
        })
        .encode()
        .unwrap()
    }

    /// A reservation by link-layer address judges a direct client's lease by the MAC stored
    /// with it (its frame's), as the controller does: the MAC's own lease is answered, another
    /// MAC's on the reserved address, or one with no MAC known, is left to the controller.
    #[test]
    fn mac_reservations_follow_the_mac_a_direct_lease_was_served_to() {
        let index = index_with(
            "reservations = [{ client-linklayer-address = \"02:00:00:00:00:79\", address = \"2001:db8::1:5\" }]\n",
        );
        let duid = [0, 3, 0, 1, 1, 2, 3, 4, 5, 6];
        let mut reserved = lease(&duid, LeaseType::Na, "2001:db8::1:5", 128, 1000);
        reserved.link_layer = Some(vec![0, 1, 2, 0, 0, 0, 0, 0x79].into());
        assert!(binding_for(std::slice::from_ref(&reserved), 10, &index).is_some());
        reserved.link_layer = Some(vec![0, 1, 2, 0, 0, 0, 0, 0x7a].into());
        assert!(binding_for(std::slice::from_ref(&reserved), 10, &index).is_none());
        reserved.link_layer = None;
        assert!(binding_for(&[reserved], 10, &index).is_none());
    }

    /// Reservations by line judge a lease by the line it was served on (its stored relay
    /// chain), as the controller does: the line's own lease is answered; a lease of another
    /// line on a key reserved for this one, or a lease of a line that has a reservation
    /// elsewhere (its Solicit moves there), is left to the controller.
    #[test]
    fn line_reservations_follow_the_line_the_lease_was_served_on() {
        let index = index_with(
            "reservations = [{ remote-id = { enterprise = 3561, id = \"aa01\" }, address = \"2001:db8::1:5\" }]\n",
        );
        let duid = [0, 3, 0, 1, 1, 2, 3, 4, 5, 6];
        let mut reserved = lease(&duid, LeaseType::Na, "2001:db8::1:5", 128, 1000);
        reserved.relay_info = relayed_on(&[0xaa, 0x01]);
        assert!(binding_for(std::slice::from_ref(&reserved), 10, &index).is_some());
        reserved.relay_info = relayed_on(&[0xaa, 0x02]);
        assert!(binding_for(std::slice::from_ref(&reserved), 10, &index).is_none());
        let mut pooled = lease(&duid, LeaseType::Na, "2001:db8::5", 128, 1000);
        pooled.relay_info = relayed_on(&[0xaa, 0x01]);
        assert!(binding_for(std::slice::from_ref(&pooled), 10, &index).is_none());
        pooled.relay_info = relayed_on(&[0xaa, 0x03]);
        assert!(binding_for(&[pooled], 10, &index).is_some());
    }

    #[test]
    fn one_address_and_one_prefix_make_a_binding() {
        let duid = [0, 3, 0, 1, 1, 2, 3, 4, 5, 6];
        let leases = vec![
            lease(&duid, LeaseType::Na, "2001:db8::5", 128, 1000),
            lease(&duid, LeaseType::Pd, "2001:db8:100::", 56, 900),
        ];
        let (key, value) = binding_for(&leases, 10, &index()).unwrap();
        assert_eq!(key.duid(), &duid);
        assert_eq!(value.flags, BINDING_HAS_NA | BINDING_HAS_PD);
        assert_eq!(value.expires, 900, "the earliest expiry of the IAs");
        assert_eq!(
            value.durable_until, 950,
            "what the store keeps: expiry plus grace"
        );
        assert_eq!(
            (value.na_iaid, value.pd_iaid, value.pd_len, value.subnet),
            (1, 2, 56, 3)
        );
    }

    #[test]
    fn shapes_the_fast_path_cannot_serve_are_left_to_the_controller() {
        let duid = [0, 3, 0, 1, 1, 2, 3, 4, 5, 6];
        let two_addresses = vec![
            lease(&duid, LeaseType::Na, "2001:db8::5", 128, 1000),
            lease(&duid, LeaseType::Na, "2001:db8::6", 128, 1000),
        ];
        assert!(binding_for(&two_addresses, 10, &index()).is_none());
        let long = vec![lease(&[9u8; 40], LeaseType::Na, "2001:db8::5", 128, 1000)];
        assert!(binding_for(&long, 10, &index()).is_none());
        let expired = vec![lease(&duid, LeaseType::Na, "2001:db8::5", 128, 5)];
        assert!(binding_for(&expired, 10, &index()).is_none());
        let mut released = lease(&duid, LeaseType::Na, "2001:db8::5", 128, 1000);
        released.state = LeaseState::Released;
        assert!(binding_for(&[released], 10, &index()).is_none());
    }

    #[test]
    fn the_streamed_builder_agrees_with_binding_for_in_any_order() {
        let duid = [0, 3, 0, 1, 1, 2, 3, 4, 5, 6];
        let na = lease(&duid, LeaseType::Na, "2001:db8::5", 128, 1000);
        let pd = lease(&duid, LeaseType::Pd, "2001:db8:100::", 56, 900);
        let mut other_subnet = pd.clone();
        other_subnet.subnet_id = 8;
        let na2 = lease(&duid, LeaseType::Na, "2001:db8::6", 128, 1000);
        for leases in [
            vec![na.clone(), pd.clone()],
            vec![pd.clone(), na.clone()],
            vec![na.clone(), other_subnet],
            vec![na.clone(), na2],
            vec![pd],
        ] {
            let whole = binding_for(&leases, 10, &index()).map(|(_, v)| v);
            let mut builder = BindingBuilder::start(&leases[0], &index());
            for l in &leases {
                builder.add(l, &index());
            }
            let streamed = builder.finish(index().grace_period);
            assert_eq!(
                whole.map(|v| format!("{v:?}")),
                streamed.map(|v| format!("{v:?}")),
                "{leases:?}"
            );
        }
    }

    /// Options too long for a slot, or more than the slots, leave the subnet's replies to the
    /// controller (`options_fit` 0); those that fit are pre-encoded in code order.
    #[test]
    fn options_go_into_slots_in_code_order_or_leave_the_subnet_to_the_controller() {
        let text = r#"
state-dir = "/tmp/x"
interfaces = ["eth1"]
[[option]]
name = "aftr-name"
value = "aftr.example"
always-send = true
[[subnet]]
prefix = "2001:db8:1::/64"
pools = [{ low = "2001:db8:1::100", high = "2001:db8:1::1ff" }]
dns-servers = ["2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::4", "2001:db8::5", "2001:db8::6", "2001:db8::7", "2001:db8::8", "2001:db8::9"]
"#;
        let config = Config::parse(text, "t.toml").unwrap();
        let cfg = subnet_config(&config.subnets[0]);
        assert_eq!((cfg.enabled, cfg.options_fit), (1, 0));
        let config = Config::parse(
            &text.replace(r#", "2001:db8::3", "2001:db8::4", "2001:db8::5", "2001:db8::6", "2001:db8::7", "2001:db8::8", "2001:db8::9""#, ""),
            "t.toml",
        )
        .unwrap();
        let cfg = subnet_config(&config.subnets[0]);
        assert_eq!(cfg.options_fit, 1);
        let slots: Vec<(u16, u16, u8)> = cfg
            .options
            .iter()
            .map(|s| (s.code, s.len, s.flags))
            .collect();
        assert_eq!(slots[..2], [(23, 36, 0), (64, 4 + 14, OPTION_SLOT_ALWAYS)]);
        assert_eq!(slots[2].1, 0);
        assert_eq!(
            &cfg.options[1].data[..18],
            b"\x00\x40\x00\x0e\x04aftr\x07example\x00"
        );
    }

    /// A binding's option sets follow the controller's levels for the leases each reply
    /// grants: the address pool's option in the replies granting the address (IA_NA alone, or
    /// with the IA_PD), the subnet's slots for the IA_PD alone (its pd-pool has none); a
    /// reservation's option over the pool's; a list too long for a slot is unfit.
    #[test]
    fn option_sets_follow_the_pools_and_reservations_of_the_leases_granted() {
        let index = |reservation_option: &str| {
            let text = format!(
                r#"
[[subnet]]
id = 7
prefix = "2001:db8::/64"
pools = [{{ low = "2001:db8::1", high = "2001:db8::ff", option = [{{ name = "sntp-servers", value = "2001:db8::7b" }}] }}]
pd-pools = [{{ prefix = "2001:db8:100::/40", delegated-length = 56 }}]
dns-servers = ["2001:db8::53"]
reservations = [{{ duid = "00:03:00:01:01:02:03:04:05:06", address = "2001:db8::5"{reservation_option} }}]
"#
            );
            SubnetIndex::new(&Config::parse(&text, "t").unwrap())
        };
        let slots = |set: &SetOptions| match set {
            SetOptions::Slots(slots) => slots.clone(),
            other => panic!("{other:?}"),
        };
        let duid = [0, 3, 0, 1, 1, 2, 3, 4, 5, 6];
        let leases = vec![
            lease(&duid, LeaseType::Na, "2001:db8::5", 128, 1000),
            lease(&duid, LeaseType::Pd, "2001:db8:100::", 56, 1000),
        ];
        let index_pool = index("");
        let (_, value) = binding_for(&leases, 10, &index_pool).unwrap();
        let [na, pd, both] = index_pool.option_sets_of(&value, ClassSet::NONE);
        let codes = |set: &SetOptions| slots(set).iter().map(|s| s.code).collect::<Vec<_>>();
        assert_eq!(codes(&na), [23, 31]);
        assert!(matches!(pd, SetOptions::Subnet), "{pd:?}");
        assert_eq!(codes(&both), [23, 31]);
        let sntp = |set: &SetOptions| slots(set)[1].data[4..20].to_vec();
        assert_eq!(
            sntp(&na),
            "2001:db8::7b".parse::<Ipv6Addr>().unwrap().octets()
        );

        let reserved = index(r#", option = [{ name = "sntp-servers", value = "2001:db8::7c" }]"#);
        let [na, ..] = reserved.option_sets_of(&value, ClassSet::NONE);
        assert_eq!(
            sntp(&na),
            "2001:db8::7c".parse::<Ipv6Addr>().unwrap().octets()
        );

        let addresses: Vec<String> = (1..=9).map(|i| format!("\"2001:db8::{i}\"")).collect();
        let long = index(&format!(
            r#", option = [{{ name = "sip-server-a", value = [{}] }}]"#,
            addresses.join(", ")
        ));
        let [na, pd, both] = long.option_sets_of(&value, ClassSet::NONE);
        assert!(matches!(na, SetOptions::Unfit), "{na:?}");
        assert!(matches!(both, SetOptions::Unfit), "{both:?}");
        assert!(matches!(pd, SetOptions::Subnet), "{pd:?}");
    }

    /// A binding whose prefix's pd-pool has a Prefix Exclude gets, for the replies carrying
    /// its IA_PD, a set with the controller's body (`PdExclude::body`: /64, subnet ID 0x01 out
    /// of a /56), the subnet's slots or the address pool's list with it; the IA_NA alone keeps
    /// its own. The body is the same for every prefix of the pool; a prefix of a pd-pool
    /// without one gets none.
    #[test]
    fn a_prefix_exclude_goes_into_the_sets_of_the_pd_replies() {
        let text = r#"
[[subnet]]
id = 7
prefix = "2001:db8::/64"
pools = [{ low = "2001:db8::1", high = "2001:db8::ff", option = [{ name = "sntp-servers", value = "2001:db8::7b" }] }]
pd-pools = [
  { prefix = "2001:db8:100::/40", delegated-length = 56, excluded-prefix = "2001:db8:100:1::/64" },
  { prefix = "2001:db8:200::/40", delegated-length = 56 },
]
dns-servers = ["2001:db8::53"]
"#;
        let index = SubnetIndex::new(&Config::parse(text, "t").unwrap());
        let subnet_slots = option_slots(&index.subnets[&7].options).unwrap();
        let duid = [0, 3, 0, 1, 1, 2, 3, 4, 5, 6];
        let sets = |leases: &[Lease]| {
            let (_, value) = binding_for(leases, 10, &index).unwrap();
            index.with_pd_exclude(&value, index.option_sets_of(&value, ClassSet::NONE))
        };
        let excluded = |set: &SetOptions| match set {
            SetOptions::WithPdExclude(slots, body) => (
                slots.iter().map(|s| s.code).collect::<Vec<_>>(),
                body.clone(),
            ),
            other => panic!("{other:?}"),
        };
        let na = lease(&duid, LeaseType::Na, "2001:db8::5", 128, 1000);
        let pd = lease(&duid, LeaseType::Pd, "2001:db8:100:4500::", 56, 1000);
        let [only_na, only_pd, both] = sets(&[na.clone(), pd.clone()]);
        assert!(matches!(only_na, SetOptions::Slots(_)), "{only_na:?}");
        assert_eq!(excluded(&only_pd), (vec![23], vec![64, 0x01]));
        assert_eq!(excluded(&both), (vec![23, 31], vec![64, 0x01]));
        let SetOptions::WithPdExclude(slots, _) = &only_pd else {
            unreachable!()
        };
        assert_eq!(slots[0].data, subnet_slots[0].data, "the subnet's slot");

        let other = lease(&duid, LeaseType::Pd, "2001:db8:1ff:ff00::", 56, 1000);
        let [_, other_pd, _] = sets(std::slice::from_ref(&other));
        assert_eq!(
            excluded(&other_pd),
            (vec![23], vec![64, 0x01]),
            "the same body"
        );

        let plain = lease(&duid, LeaseType::Pd, "2001:db8:200:4500::", 56, 1000);
        let (_, value) = binding_for(std::slice::from_ref(&plain), 10, &index).unwrap();
        assert_eq!(value.flags & BINDING_PD_EXCLUDE, 0);
        let [_, plain_pd, _] = sets(&[plain]);
        assert!(matches!(plain_pd, SetOptions::Subnet), "{plain_pd:?}");
    }

    #[test]
    fn long_server_duid_disables_the_fast_path() {
        assert_eq!(global_config(&[1u8; 40], true, 0).enabled, 0);
        assert_eq!(global_config(&[1u8; 14], true, 0).relay_selectors, 0);
        assert_eq!(global_config(&[1u8; 14], true, 0).enabled, 1);
    }
}

/// How the controller runs the fast path.
#[derive(Clone, Debug)]
pub struct FastPathSettings {
    pub mode: super::AttachMode,
    /// Where maps and links are pinned (`None`: nothing pinned; the program goes with the process).
    pub pin_root: Option<std::path::PathBuf>,
    /// Per-CPU budget of DHCPv6 packets passed on to the controller per second (0: unlimited).
    pub pass_rate_per_cpu: u32,
    /// Capacity of the binding map (clients beyond it are served by the controller alone).
    pub max_bindings: u32,
}

/// Keeps the `IFACES` entries of `ifindexes` in step with the interfaces' addresses (an address
/// added or removed while serving), so the fast path's reply sources stay the controller's.
async fn follow_interfaces(
    fast_path: Arc<Mutex<FastPath>>,
    server: Arc<dyn Controller>,
    ifindexes: Vec<u32>,
) {
    let interfaces = server.interfaces().clone();
    let mut changed = interfaces.subscribe();
    while changed.changed().await.is_ok() {
        let mut fp = fast_path.lock().unwrap_or_else(|e| e.into_inner());
        for ifindex in &ifindexes {
            let Some(info) = interfaces.get(*ifindex) else {
                continue;
            };
            if let Err(err) = fp.set_iface(*ifindex, &iface_config(&server.config(), &info)) {
                warn!(interface = %info.name, error = %err, "fast path: updating the interface entry");
            }
        }
    }
}

/// The running fast path, shared with the controller's tasks.
pub struct FastPathHandle {
    pub fast_path: Arc<Mutex<FastPath>>,
    pub sync: Arc<MapSync>,
    pub report: ResyncReport,
}

/// Loads (reusing pinned maps), configures and attaches the fast path on `ifaces`, re-syncs the
/// binding map from the store, and starts following lease events and the program's renewals.
pub async fn start<C: Controller>(
    settings: &FastPathSettings,
    server: &Arc<C>,
    ifaces: &[String],
) -> Result<FastPathHandle, anyhow::Error> {
    let fp = FastPath::load_sized(settings.pin_root.as_deref(), settings.max_bindings)?;
    start_loaded(settings, server, ifaces, fp, None).await
}

/// As [`start`], with the fast path a [`Prefill`] loaded (and, on a cold start, filled) while
/// the controller loaded its copy: no re-sync then, the map already holds every binding.
pub async fn start_prefilled<C: Controller>(
    settings: &FastPathSettings,
    server: &Arc<C>,
    ifaces: &[String],
    prefilled: Prefilled,
) -> Result<FastPathHandle, anyhow::Error> {
    let Prefilled { fp, report } = prefilled;
    start_loaded(settings, server, ifaces, fp, report).await
}

async fn start_loaded<C: Controller>(
    settings: &FastPathSettings,
    server: &Arc<C>,
    ifaces: &[String],
    mut fp: FastPath,
    filled: Option<ResyncReport>,
) -> Result<FastPathHandle, anyhow::Error> {
    let config = &*server.config();
    let infos = ifaces
        .iter()
        .map(|name| {
            server
                .interfaces()
                .by_name(name)
                .ok_or_else(|| FastPathError::NoInterface(name.clone()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    configure(
        &mut fp,
        config,
        server.server_duid(),
        &infos,
        settings.pass_rate_per_cpu,
    )?;
    let index = SubnetIndex::new(config);
    let mut ring = fp.take_events()?;
    // Renewals the program answered while no controller was reading (this one was killed, or
    // is an upgrade): their reports wait in the ring, and the map holds their later expiries
    // (beyond what the ring could hold). Both reach the store, durably, before this returns,
    // so before the leasequery listener opens: a peer reconnecting catches up on them from
    // the history like on any other change, and no client stays renewed here and unknown
    // (or expiring) there.
    let waiting = drain_waiting_renewals(&mut ring, server.as_ref());
    // A failed flush (a full disk) is not fatal: the map keeps the horizon the store vouches
    // for, and the re-sync below keeps the later expiries.
    if let Err(e) = server.writer().flush().await {
        warn!("fast path: renewals answered while no controller ran are not durable yet: {e}");
    }
    // From the controller's copy of the rows, already in memory: reading them from the store
    // again cost as much as loading that copy.
    let (report, later_expiries) = match filled {
        // Filled cold from the same rows: an empty map had no later expiry to keep.
        Some(report) => (report, Vec::new()),
        None => {
            let source = ResyncSource::Controller(server.as_ref());
            let facts = |duid: &[u8]| server.class_facts_of(duid);
            resync(&mut fp, source, &index, unix_now(), &facts)?
        }
    };
    let kept = later_expiries.len();
    for (duid, expires) in later_expiries {
        server.apply_fast_path_renewal(&duid, expires, &[LeaseType::Na, LeaseType::Pd])?;
    }
    if let Err(e) = server.writer().flush().await {
        warn!("fast path: later expiries kept from the map are not durable yet: {e}");
    }
    if waiting + kept > 0 {
        info!(
            "fast path: {waiting} renewals reported while no controller ran, {kept} later \
             expiries kept from the map: durable, and published to leasequery"
        );
    }
    for info in &infos {
        let mode = fp.attach(&info.name, settings.mode)?;
        info!("fast path attached to {} ({:?} mode)", info.name, mode);
    }
    let fast_path = Arc::new(Mutex::new(fp));
    tokio::spawn(follow_interfaces(
        fast_path.clone(),
        server.clone(),
        infos.iter().map(|i| i.ifindex).collect(),
    ));
    let sync = Arc::new(MapSync::new(fast_path.clone(), index, server.clone()));
    tokio::spawn(sync.clone().follow_events(server.subscribe()));
    let renewals_server = server.clone();
    let renewals_sync = sync.clone();
    tokio::spawn(async move {
        if let Err(e) = follow_renewals(ring, renewals_server, renewals_sync).await {
            warn!("fast path: reading renewals stopped: {e:#}");
        }
    });
    // Every few seconds: keep the Unix-time offset true across wall-clock steps, and export the
    // program's counters to Prometheus (dhcp_fastpath_packets_total{verdict=...}).
    let clock_fp = fast_path.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            let mut fp = clock_fp.lock().unwrap_or_else(|e| e.into_inner());
            if let Ok(mut global) = fp.global() {
                global.clock_to_unix_ns = super::clock_to_unix_ns();
                let _ = fp.set_global(&global);
            }
            if let Ok(counters) = fp.stats() {
                for (name, counter) in dhcp_common::stat::NAMES.iter().zip(counters) {
                    metrics::counter!("dhcp_fastpath_packets_total", "verdict" => *name)
                        .absolute(counter.packets);
                }
            }
        }
    });
    Ok(FastPathHandle {
        fast_path,
        sync,
        report,
    })
}
