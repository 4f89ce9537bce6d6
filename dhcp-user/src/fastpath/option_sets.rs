//! The `OPTION_SETS` array as the controller keeps it: each distinct pre-encoded option list a
//! binding's replies carry (`BindingValue::option_sets`), with the Prefix Exclude of its
//! IAPREFIX if any, in one entry, shared by every binding with that content,
//! reference-counted, and cleared when the last binding using it goes.

use aya::maps::{Array, MapData};
use dhcp_common::{maps as names, OptionSet, OptionSlot, FAST_OPTION_SLOTS, OPTION_SET_NONE};

use super::interned::{named_by_bindings, Interned};
use super::FastPathError;

/// What a binding's reply to one IA combination carries, before it is interned.
#[derive(Clone, Debug)]
pub enum SetOptions {
    /// The subnet's own slots (`BindingValue::option_sets` 0).
    Subnet,
    /// A list the slots cannot hold (`OPTION_SET_NONE`: passed on).
    Unfit,
    /// A list of its own, pre-encoded.
    Slots(Vec<OptionSlot>),
    /// A list (the subnet's, or one of its own), and the Prefix Exclude body
    /// (`PdExclude::body`) the IAPREFIX carries when the ORO asks for it.
    WithPdExclude(Vec<OptionSlot>, Vec<u8>),
}

/// The controller's copy of `OPTION_SETS`: which list each entry holds and how many bindings in
/// the map use it.
pub struct OptionSetTable {
    table: Interned<OptionSet>,
}

/// The content of an entry, as it is found by: the Prefix Exclude body's length and bytes
/// (none: 0), then each slot's flags and bytes. A list with a Prefix Exclude and the same list
/// without are two entries.
fn content_key(slots: &[OptionSlot], pd_exclude: &[u8]) -> Vec<u8> {
    let mut key = vec![pd_exclude.len() as u8];
    key.extend_from_slice(pd_exclude);
    for slot in slots {
        key.push(slot.flags);
        key.extend_from_slice(&slot.data[..slot.len as usize]);
    }
    key
}

/// The content of a map entry, `None` for an unused one.
fn key_of(set: &OptionSet) -> Option<Vec<u8>> {
    let count = (set.option_count as usize).min(FAST_OPTION_SLOTS);
    set.in_use()
        .then(|| content_key(&set.options[..count], set.pd_exclude_body()))
}

impl OptionSetTable {
    /// The table over `map`, learning what an earlier controller left in it (a pinned map:
    /// the bindings it left still name those entries) and how many of `bindings` use each;
    /// entries none uses are cleared.
    pub(super) fn load(
        map: Array<MapData, OptionSet>,
        bindings: Option<&aya::maps::Map>,
    ) -> Result<Self, FastPathError> {
        let used = named_by_bindings(bindings, |value| value.option_sets)?;
        let table = Interned::load(map, names::OPTION_SETS, OptionSet::EMPTY, key_of, used)?;
        Ok(OptionSetTable { table })
    }

    /// The entry for `options`, one more binding using it: 0 for the subnet's own slots, the
    /// shared entry of the same content, a new one, or `OPTION_SET_NONE` (an unfit list, or the
    /// array full).
    pub fn acquire(&mut self, options: &SetOptions) -> Result<u16, FastPathError> {
        let (slots, pd_exclude) = match options {
            SetOptions::Subnet => return Ok(0),
            SetOptions::Unfit => return Ok(OPTION_SET_NONE),
            SetOptions::Slots(slots) => (slots, &[][..]),
            SetOptions::WithPdExclude(slots, body) => (slots, &body[..]),
        };
        let mut set = OptionSet::EMPTY;
        if slots.len() > FAST_OPTION_SLOTS
            || (!pd_exclude.is_empty() && !set.set_pd_exclude(pd_exclude))
        {
            return Ok(OPTION_SET_NONE);
        }
        set.options[..slots.len()].copy_from_slice(slots);
        set.option_count = slots.len() as u8;
        match self.table.acquire(content_key(slots, pd_exclude), || set)? {
            Some(id) => Ok(id),
            None => {
                crate::log_throttled!(
                    warn,
                    "fast path: all {} option sets are in use: clients with pool or reservation \
                     options beyond them are left to the controller",
                    self.table.capacity() - 1
                );
                Ok(OPTION_SET_NONE)
            }
        }
    }

    /// The sets of a binding as `acquire` gives them, one per IA combination.
    pub fn acquire_all(&mut self, options: &[SetOptions; 3]) -> Result<[u16; 3], FastPathError> {
        let mut ids = [0; 3];
        for (id, options) in ids.iter_mut().zip(options) {
            *id = self.acquire(options)?;
        }
        Ok(ids)
    }

    /// One binding fewer uses each of `ids` (a binding's `option_sets`, replaced or removed);
    /// an entry no binding uses any more is cleared.
    pub fn release(&mut self, ids: [u16; 3]) -> Result<(), FastPathError> {
        for id in ids {
            self.table.release(id)?;
        }
        Ok(())
    }

    /// Entries in use.
    pub fn in_use(&self) -> usize {
        self.table.in_use()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An entry is found by all of its content: the same slots with a Prefix Exclude, with
    /// another one, or without, are three entries; what the map holds gives the same key back.
    #[test]
    fn the_prefix_exclude_is_part_of_an_entrys_content() {
        let slots = [OptionSlot::new(23, &[0x20, 1, 0xd, 0xb8], 0).unwrap()];
        let plain = content_key(&slots, &[]);
        let excluded = content_key(&slots, &[64, 0x01]);
        assert_ne!(plain, excluded);
        assert_ne!(excluded, content_key(&slots, &[64, 0x02]));
        assert_ne!(content_key(&[], &[64, 0x01]), content_key(&[], &[]));
        let mut set = OptionSet::EMPTY;
        set.options[0] = slots[0];
        set.option_count = 1;
        assert!(set.set_pd_exclude(&[64, 0x01]));
        assert_eq!(
            content_key(&set.options[..1], set.pd_exclude_body()),
            excluded
        );
    }
}
