//! Client classes (`[[client-classes]]`): named sets of clients matched on what a message
//! carries (Vendor Class 16, User Class 15), what its relays add (Interface-ID 18, Remote-ID 37),
//! the interface it came in on and the client's DUID. A class selects pools (a pool with
//! `client-classes` serves only their members) and options (the `class` level, between the
//! subnet and the pool: [`crate::options::merge`]).
//!
//! Membership is evaluated on every message ([`member_of`]): a client that stops sending its
//! vendor class leaves the class at once. The fast path answers a known client of a subnet whose
//! replies classes can change only while its requests carry what the controller last judged it
//! on ([`ClassFacts`], [`Config::fast_path_classes`]).

use super::{interface_matches, Config};
use crate::options::ConfiguredOption;
use crate::proto::{DhcpOption, Message, OptionList, RelayMessage};
use crate::store::{LeaseKey, LeaseType};

/// Most classes one configuration may define: membership is a 64-bit set.
pub const MAX_CLASSES: usize = 64;

/// The classes a client is in, by their index in `Config::client_classes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ClassSet(pub u64);

impl ClassSet {
    /// No class.
    pub const NONE: ClassSet = ClassSet(0);

    /// True if the class at `index` is in the set.
    pub fn contains(self, index: usize) -> bool {
        index < MAX_CLASSES && self.0 & (1 << index) != 0
    }

    /// The set with the class at `index` added.
    pub fn with(self, index: usize) -> ClassSet {
        ClassSet(self.0 | (1u64 << index))
    }

    /// True if the two sets share a class.
    pub fn meets(self, other: ClassSet) -> bool {
        self.0 & other.0 != 0
    }

    /// The indices in the set, in file order.
    pub fn indices(self) -> impl Iterator<Item = usize> {
        (0..MAX_CLASSES).filter(move |i| self.contains(*i))
    }
}

/// Matching opaque data: equal, or starting with the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataMatch {
    pub bytes: Vec<u8>,
    /// True: the data starts with `bytes`; false: it is `bytes`.
    pub prefix: bool,
}

impl DataMatch {
    fn matches(&self, data: &[u8]) -> bool {
        if self.prefix {
            data.starts_with(&self.bytes)
        } else {
            data == self.bytes.as_slice()
        }
    }
}

/// A Vendor Class condition: the enterprise number and/or one vendor-class-data item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VendorClassMatch {
    pub enterprise: Option<u32>,
    pub data: Option<DataMatch>,
}

/// One `[[client-classes]]` entry: every condition given must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientClass {
    pub name: String,
    /// An option 16 of the client's message with this enterprise number and/or data item.
    pub vendor_class: Option<VendorClassMatch>,
    /// A user-class-data item of the client's option 15.
    pub user_class: Option<DataMatch>,
    /// The Interface-ID of one of the relays (any hop, as `relay-interface-ids` selects).
    pub relay_interface_id: Option<Vec<u8>>,
    /// The Remote-ID of the relay closest to the client: enterprise number (4 bytes) then id.
    pub relay_remote_id: Option<Vec<u8>>,
    /// Interface name patterns (an interface group, as a subnet's `interfaces`): the message
    /// came in on one of them.
    pub interfaces: Vec<String>,
    /// The client's DUID starts with these bytes.
    pub duid_prefix: Option<Vec<u8>>,
    /// The class's options (the `class` level).
    pub options: Vec<ConfiguredOption>,
}

/// What a client's membership is judged on: one message, as received.
pub struct ClassInput<'a> {
    pub message: &'a Message,
    /// The relay hops, outermost first (none when direct).
    pub relays: &'a [&'a RelayMessage],
    /// The receiving interface's name.
    pub interface: &'a str,
}

impl ClientClass {
    /// True if the message of `input` puts its client in this class.
    pub fn matches(&self, input: &ClassInput<'_>) -> bool {
        let message = input.message;
        if let Some(want) = &self.vendor_class {
            let any = message.options.iter().any(|o| match o {
                DhcpOption::VendorClass(body) => vendor_class_matches(want, body),
                _ => false,
            });
            if !any {
                return false;
            }
        }
        if let Some(want) = &self.user_class {
            let any = message.options.iter().any(|o| match o {
                DhcpOption::UserClass(body) => items(body).any(|item| want.matches(item)),
                _ => false,
            });
            if !any {
                return false;
            }
        }
        if let Some(want) = &self.relay_interface_id {
            if !input
                .relays
                .iter()
                .any(|r| r.interface_id() == Some(want.as_slice()))
            {
                return false;
            }
        }
        if let Some(want) = &self.relay_remote_id {
            let got = input
                .relays
                .last()
                .and_then(|r| r.remote_id())
                .map(remote_id_body);
            if got.as_deref() != Some(want.as_slice()) {
                return false;
            }
        }
        if !self.interfaces.is_empty()
            && !self
                .interfaces
                .iter()
                .any(|p| interface_matches(p, input.interface))
        {
            return false;
        }
        if let Some(want) = &self.duid_prefix {
            let duid = message
                .client_id()
                .map(|d| d.as_bytes())
                .unwrap_or_default();
            if !duid.starts_with(want) {
                return false;
            }
        }
        true
    }
}

/// The opaque-data items of a User Class or Vendor Class body (a 2-byte length each, RFC 8415
/// sections 21.15, 21.16); a truncated item ends the list (it matches nothing).
fn items(mut body: &[u8]) -> impl Iterator<Item = &[u8]> {
    std::iter::from_fn(move || {
        let len = usize::from(u16::from_be_bytes(body.get(..2)?.try_into().ok()?));
        let item = body.get(2..2 + len)?;
        body = &body[2 + len..];
        Some(item)
    })
}

fn vendor_class_matches(want: &VendorClassMatch, body: &[u8]) -> bool {
    let Some((enterprise, data)) = body.split_first_chunk::<4>() else {
        return false;
    };
    if want
        .enterprise
        .is_some_and(|e| e != u32::from_be_bytes(*enterprise))
    {
        return false;
    }
    match &want.data {
        Some(d) => items(data).any(|item| d.matches(item)),
        None => true,
    }
}

/// The classes the client of `input` is in, evaluated in file order.
pub fn member_of(config: &Config, input: &ClassInput<'_>) -> ClassSet {
    member_in(&config.client_classes, input)
}

/// The classes of `classes` (a configuration's, in file order) the client of `input` is in.
pub fn member_in(classes: &[ClientClass], input: &ClassInput<'_>) -> ClassSet {
    classes
        .iter()
        .enumerate()
        .filter(|(_, class)| class.matches(input))
        .fold(ClassSet::NONE, |set, (i, _)| set.with(i))
}

/// The option levels of `classes`, least specific first: the first class in file order wins a
/// code two classes set (as Kea's evaluation order does), so it comes last.
pub fn option_levels(config: &Config, classes: ClassSet) -> Vec<&[ConfiguredOption]> {
    option_levels_in(&config.client_classes, classes)
}

/// [`option_levels`] of the classes `defined` (a configuration's, in file order).
pub fn option_levels_in(defined: &[ClientClass], classes: ClassSet) -> Vec<&[ConfiguredOption]> {
    let mut levels: Vec<&[ConfiguredOption]> = classes
        .indices()
        .filter_map(|i| defined.get(i))
        .map(|c| c.options.as_slice())
        .collect();
    levels.reverse();
    levels
}

/// What a client's classes were judged on when the controller last answered it, besides its
/// DUID: the bodies of the one User Class and one Vendor Class option its message carried, the
/// interface it came in on, and, where classes look at relay options, what its relays sent.
/// The fast path answers the client while its requests carry the same
/// (`dhcp_common::ClassInputs`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClassFacts {
    pub user_class: Option<Vec<u8>>,
    pub vendor_class: Option<Vec<u8>>,
    /// The receiving interface, by name and ifindex.
    pub interface: String,
    pub ifindex: u32,
    /// The relays, when recorded ([`ClassFacts::of`] with relays).
    pub relays: Option<RelayFacts>,
}

/// What a client's relays sent that classes look at: how many hops, the first Interface-ID of
/// each (outermost first), the first Remote-ID of the innermost.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct RelayFacts {
    pub interface_ids: Vec<Option<Vec<u8>>>,
    /// Enterprise number, then the id.
    pub remote_id: Option<Vec<u8>>,
}

impl RelayFacts {
    /// The facts of `relays` (outermost first).
    pub fn of(relays: &[&RelayMessage]) -> RelayFacts {
        RelayFacts {
            interface_ids: relays
                .iter()
                .map(|r| r.interface_id().map(<[u8]>::to_vec))
                .collect(),
            remote_id: relays
                .last()
                .and_then(|r| r.remote_id())
                .map(remote_id_body),
        }
    }

    /// Relay-Forw hops carrying these options, outermost first (for [`member_in`]).
    fn messages(&self) -> Vec<RelayMessage> {
        let hops = self.interface_ids.len();
        self.interface_ids
            .iter()
            .enumerate()
            .map(|(i, interface_id)| {
                let mut options: Vec<DhcpOption> = interface_id
                    .clone()
                    .map(DhcpOption::InterfaceId)
                    .into_iter()
                    .collect();
                let remote = self.remote_id.as_deref().filter(|_| i + 1 == hops);
                if let Some((enterprise, id)) = remote.and_then(|r| r.split_first_chunk::<4>()) {
                    options.push(DhcpOption::RemoteId(crate::proto::RemoteId {
                        enterprise: u32::from_be_bytes(*enterprise),
                        remote_id: id.to_vec(),
                    }));
                }
                RelayMessage {
                    msg_type: dhcp_common::dhcpv6::MSG_RELAY_FORW,
                    hop_count: 0,
                    link_address: std::net::Ipv6Addr::UNSPECIFIED,
                    peer_address: std::net::Ipv6Addr::UNSPECIFIED,
                    options,
                }
            })
            .collect()
    }
}

/// A Remote-ID as classes compare it: the enterprise number, then the id.
fn remote_id_body(remote: &crate::proto::RemoteId) -> Vec<u8> {
    let mut body = remote.enterprise.to_be_bytes().to_vec();
    body.extend_from_slice(&remote.remote_id);
    body
}

impl ClassFacts {
    /// The facts of `message`, received on `interface` (`ifindex`) through `relays` (recorded
    /// when given); `None` when it carries more than one User Class or Vendor Class option
    /// (the fast path compares one of each).
    pub fn of(
        message: &Message,
        relays: Option<&[&RelayMessage]>,
        interface: &str,
        ifindex: u32,
    ) -> Option<ClassFacts> {
        let mut facts = ClassFacts {
            user_class: None,
            vendor_class: None,
            interface: interface.to_string(),
            ifindex,
            relays: relays.map(RelayFacts::of),
        };
        for option in &message.options {
            let (slot, body) = match option {
                DhcpOption::UserClass(body) => (&mut facts.user_class, body),
                DhcpOption::VendorClass(body) => (&mut facts.vendor_class, body),
                _ => continue,
            };
            if slot.replace(body.clone()).is_some() {
                return None;
            }
        }
        Some(facts)
    }

    /// The classes of `defined` these facts put `duid`'s client in: [`member_in`] on a message
    /// carrying them, through relays carrying theirs (none when not recorded).
    pub fn member_in(&self, defined: &[ClientClass], duid: &[u8]) -> ClassSet {
        let mut options = Vec::with_capacity(3);
        if let Ok(duid) = crate::proto::Duid::new(duid.to_vec()) {
            options.push(DhcpOption::ClientId(duid));
        }
        options.extend(self.user_class.clone().map(DhcpOption::UserClass));
        options.extend(self.vendor_class.clone().map(DhcpOption::VendorClass));
        let message = Message {
            msg_type: dhcp_common::dhcpv6::MSG_RENEW,
            transaction_id: [0; 3],
            options,
        };
        let hops = self
            .relays
            .as_ref()
            .map(RelayFacts::messages)
            .unwrap_or_default();
        let relays: Vec<&RelayMessage> = hops.iter().collect();
        member_in(
            defined,
            &ClassInput {
                message: &message,
                relays: &relays,
                interface: &self.interface,
            },
        )
    }
}

impl super::Subnet {
    /// True if pool `index` of `lease_type` serves a client in `classes`: it names none, or one
    /// of them.
    pub fn pool_admits(&self, lease_type: LeaseType, index: usize, classes: ClassSet) -> bool {
        let kept = match lease_type {
            LeaseType::Na => self.pool_classes.get(index),
            LeaseType::Pd => self.pd_pool_classes.get(index),
        };
        kept.copied().flatten().is_none_or(|set| set.meets(classes))
    }

    /// True if `key` may be a lease of a client in `classes`: the pool holding it serves them
    /// (an address outside every pool, a reservation's, is not the classes' to judge).
    pub fn admits(&self, key: &LeaseKey, classes: ClassSet) -> bool {
        let index = match key.lease_type {
            LeaseType::Na => self.pools.iter().position(|p| p.contains(key.address)),
            LeaseType::Pd => self
                .pd_pools
                .iter()
                .position(|p| p.holds(key.address, key.prefix_len)),
        };
        index.is_none_or(|i| self.pool_admits(key.lease_type, i, classes))
    }
}

impl Config {
    /// How the fast path follows client classes on the subnet at `index`
    /// (`SubnetConfig::client_classes`): 0 when they cannot change its replies; else
    /// `CLASSES_CHECK`, with `CLASSES_CHECK_RELAYS` when a class that can (one with options, or
    /// one a pool of its shared network is kept for) looks at relay options, and
    /// `CLASSES_BARE_INFORMATION` when every class with options needs a User or Vendor Class
    /// (a request with neither is in none of them); `CLASSES_PASS` when the program cannot
    /// look the classes' relay values up ([`Config::relay_class_values`]).
    pub fn fast_path_classes(&self, index: usize) -> u8 {
        use dhcp_common::{
            CLASSES_BARE_INFORMATION, CLASSES_CHECK, CLASSES_CHECK_RELAYS, CLASSES_PASS,
        };
        if !self.classes_shape_subnet(index) {
            return 0;
        }
        let kept = self
            .shared_with(index)
            .into_iter()
            .flat_map(|i| {
                let s = &self.subnets[i];
                s.pool_classes.iter().chain(&s.pd_pool_classes).flatten()
            })
            .fold(ClassSet::NONE, |all, set| ClassSet(all.0 | set.0));
        let shaping = self
            .client_classes
            .iter()
            .enumerate()
            .filter(|(i, c)| !c.options.is_empty() || kept.contains(*i))
            .map(|(_, c)| c);
        let relays = shaping
            .clone()
            .any(|c| c.relay_interface_id.is_some() || c.relay_remote_id.is_some());
        if relays && self.relay_class_values().is_none() {
            return CLASSES_PASS;
        }
        let bare = self
            .client_classes
            .iter()
            .filter(|c| !c.options.is_empty())
            .all(|c| c.user_class.is_some() || c.vendor_class.is_some());
        CLASSES_CHECK
            | if bare { CLASSES_BARE_INFORMATION } else { 0 }
            | if relays { CLASSES_CHECK_RELAYS } else { 0 }
    }

    /// Every relay value a class names, once, in file order: the `RELAY_CLASS_VALUES` entries,
    /// each to its position from 1. `None` when one is longer than the program looks up
    /// (`FAST_RELAY_VALUE_MAX`) or they are more than the map holds.
    pub fn relay_class_values(&self) -> Option<Vec<(dhcp_common::RelayValueKey, u8)>> {
        use dhcp_common::{RelayValueKey, RELAY_VALUE_INTERFACE_ID, RELAY_VALUE_REMOTE_ID};
        let mut keys: Vec<RelayValueKey> = Vec::new();
        for class in &self.client_classes {
            let named = [
                (RELAY_VALUE_INTERFACE_ID, &class.relay_interface_id),
                (RELAY_VALUE_REMOTE_ID, &class.relay_remote_id),
            ];
            for (kind, value) in named {
                let Some(value) = value else { continue };
                let key = RelayValueKey::new(kind, value)?;
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
        }
        if keys.len() > dhcp_common::MAX_RELAY_CLASS_VALUES as usize {
            return None;
        }
        Some(keys.into_iter().zip(1..).collect())
    }

    /// Why the fast path leaves requests that classes shape to the controller, for the operator
    /// (`check-config`, and a warning when the maps are filled): the relay values it cannot
    /// look up. Empty when it follows every class.
    pub fn fast_path_class_notes(&self) -> Vec<String> {
        let passed: Vec<String> = (0..self.subnets.len())
            .filter(|&i| self.fast_path_classes(i) == dhcp_common::CLASSES_PASS)
            .map(|i| self.subnets[i].prefix.to_string())
            .collect();
        if passed.is_empty() {
            return Vec::new();
        }
        vec![format!(
            "the fast path passes every request but a Confirm of {} to the controller: a \
             client class's relay-interface-id or relay-remote-id is longer than {} bytes, or \
             the classes name more than {} of them",
            passed.join(", "),
            dhcp_common::FAST_RELAY_VALUE_MAX,
            dhcp_common::MAX_RELAY_CLASS_VALUES
        )]
    }

    /// True if some class looks at the receiving interface (`interfaces`).
    pub fn classes_look_at_interfaces(&self) -> bool {
        self.client_classes.iter().any(|c| !c.interfaces.is_empty())
    }

    /// True if client classes can change what the controller answers a client of the subnet
    /// at `index`: some class has options, or a pool of its shared network is kept for some
    /// classes. The fast path then leaves the subnet's clients to the controller.
    pub fn classes_shape_subnet(&self, index: usize) -> bool {
        if self.client_classes.iter().any(|c| !c.options.is_empty()) {
            return true;
        }
        self.shared_with(index).into_iter().any(|i| {
            let s = &self.subnets[i];
            s.pool_classes
                .iter()
                .chain(&s.pd_pool_classes)
                .any(Option::is_some)
        })
    }
}

pub(super) mod parse;

#[cfg(test)]
mod tests;
