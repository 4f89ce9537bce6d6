//! An array map whose entries bindings share by content: each distinct value in one entry,
//! reference-counted by the bindings naming it, cleared when the last one goes. Entry 0 is
//! never used (a binding's 0 names no entry).

use std::collections::HashMap;

use aya::{
    maps::{Array, MapData},
    Pod,
};

use super::{map_err, FastPathError};

/// The controller's copy of one such array.
pub struct Interned<T: Pod> {
    map: Array<MapData, T>,
    name: &'static str,
    /// What a cleared entry holds.
    empty: T,
    /// Entry by content key; only entries in use.
    by_key: HashMap<Vec<u8>, u16>,
    /// By entry: its content key and how many bindings use it.
    entries: Vec<Option<(Vec<u8>, u32)>>,
    /// Where the search for a free entry starts: round the array, so that an entry just freed
    /// is the last reused (a run of the program may still be reading it).
    next: usize,
}

impl<T: Pod> Interned<T> {
    /// The table over `map` (pinned maps keep what an earlier controller wrote): entries whose
    /// content `key_of` reads are learnt, counted once for each of `used` (the entries the
    /// bindings in the map name), and cleared when none uses them.
    pub fn load(
        map: Array<MapData, T>,
        name: &'static str,
        empty: T,
        key_of: impl Fn(&T) -> Option<Vec<u8>>,
        used: impl IntoIterator<Item = u16>,
    ) -> Result<Self, FastPathError> {
        let capacity = map.len() as usize;
        let mut table = Interned {
            map,
            name,
            empty,
            by_key: HashMap::new(),
            entries: vec![None; capacity],
            next: 1,
        };
        for id in 1..capacity {
            let value = table.map.get(&(id as u32), 0).map_err(map_err(name))?;
            if let Some(key) = key_of(&value) {
                table.by_key.insert(key.clone(), id as u16);
                table.entries[id] = Some((key, 0));
            }
        }
        if table.by_key.is_empty() {
            return Ok(table);
        }
        for id in used {
            if let Some(Some((_, refs))) = table.entries.get_mut(id as usize) {
                *refs += 1;
            }
        }
        let unused: Vec<u16> = (1..capacity)
            .filter(|&id| matches!(table.entries[id], Some((_, 0))))
            .map(|id| id as u16)
            .collect();
        for id in unused {
            table.clear(id)?;
        }
        Ok(table)
    }

    /// The entry holding content `key`, one more binding using it: the shared one, else a new
    /// one written with `value()`; `None` when the array is full.
    pub fn acquire(
        &mut self,
        key: Vec<u8>,
        value: impl FnOnce() -> T,
    ) -> Result<Option<u16>, FastPathError> {
        if let Some(&id) = self.by_key.get(&key) {
            if let Some((_, refs)) = &mut self.entries[id as usize] {
                *refs += 1;
            }
            return Ok(Some(id));
        }
        let capacity = self.entries.len();
        let Some(id) = (0..capacity - 1)
            .map(|i| 1 + (self.next - 1 + i) % (capacity - 1))
            .find(|&id| self.entries[id].is_none())
        else {
            return Ok(None);
        };
        self.map
            .set(id as u32, value(), 0)
            .map_err(map_err(self.name))?;
        self.by_key.insert(key.clone(), id as u16);
        self.entries[id] = Some((key, 1));
        self.next = id % (capacity - 1) + 1;
        Ok(Some(id as u16))
    }

    /// One binding fewer uses entry `id`; an entry no binding uses any more is cleared. An id
    /// naming no entry (0, or a "none" marker beyond the array) is ignored.
    pub fn release(&mut self, id: u16) -> Result<(), FastPathError> {
        let Some(Some((_, refs))) = self.entries.get_mut(id as usize) else {
            return Ok(());
        };
        *refs = refs.saturating_sub(1);
        if *refs == 0 {
            self.clear(id)?;
        }
        Ok(())
    }

    /// Entries in use.
    pub fn in_use(&self) -> usize {
        self.by_key.len()
    }

    /// Entries the array has room for (entry 0 included, never used).
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }

    fn clear(&mut self, id: u16) -> Result<(), FastPathError> {
        if let Some((key, _)) = self.entries[id as usize].take() {
            self.by_key.remove(&key);
        }
        self.map
            .set(id as u32, self.empty, 0)
            .map_err(map_err(self.name))
    }
}

/// The entries the bindings in `bindings` (a pinned binding map) name, as `named` reads them
/// off each value, once per binding: what [`Interned::load`] counts.
pub fn named_by_bindings<I: IntoIterator<Item = u16>>(
    bindings: Option<&aya::maps::Map>,
    named: impl Fn(&dhcp_common::BindingValue) -> I,
) -> Result<Vec<u16>, FastPathError> {
    use dhcp_common::{maps::BINDINGS, BindingKey, BindingValue};
    let Some(bindings) = bindings else {
        return Ok(Vec::new());
    };
    let bindings: aya::maps::HashMap<&MapData, BindingKey, BindingValue> =
        aya::maps::HashMap::try_from(bindings).map_err(map_err(BINDINGS))?;
    Ok(bindings
        .iter()
        .filter_map(Result::ok)
        .flat_map(|(_, value)| named(&value))
        .collect())
}

/// The shared entries one binding names: its option sets and its class inputs, acquired before
/// it is written and released once it is replaced or removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntryRefs {
    pub option_sets: [u16; 3],
    pub class_inputs: u16,
}

impl EntryRefs {
    /// What `value` names.
    pub fn of(value: &dhcp_common::BindingValue) -> Self {
        EntryRefs {
            option_sets: value.option_sets,
            class_inputs: value.class_inputs,
        }
    }
}

/// The arrays whose entries bindings share.
pub struct SharedEntries {
    pub option_sets: super::option_sets::OptionSetTable,
    pub class_inputs: super::class_inputs::ClassInputTable,
}

impl SharedEntries {
    /// One binding fewer names each of `refs`.
    pub fn release(&mut self, refs: EntryRefs) -> Result<(), FastPathError> {
        self.option_sets.release(refs.option_sets)?;
        self.class_inputs.release(refs.class_inputs)
    }
}
