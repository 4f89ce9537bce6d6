//! The `CLASS_INPUTS` array as the controller keeps it: what the classes of bindings on subnets
//! classes shape were judged on (`BindingValue::class_inputs`), each distinct value in one entry
//! shared by the bindings with it (clients of one CPE model send the same Vendor Class).

use aya::maps::{Array, MapData};
use dhcp_common::{maps as names, ClassInputs, CLASS_INPUT_IN_USE};

use super::interned::{named_by_bindings, Interned};
use super::FastPathError;

/// The controller's copy of `CLASS_INPUTS`.
pub struct ClassInputTable {
    table: Interned<ClassInputs>,
}

/// The content an entry is found by: every field the program compares.
fn content_key(inputs: &ClassInputs) -> Vec<u8> {
    let user =
        &inputs.user_class[..usize::from(inputs.user_class_len).min(inputs.user_class.len())];
    let vendor =
        &inputs.vendor_class[..usize::from(inputs.vendor_class_len).min(inputs.vendor_class.len())];
    let mut key = Vec::with_capacity(9 + user.len() + vendor.len());
    key.extend_from_slice(&inputs.ifindex.to_ne_bytes());
    key.push(inputs.present);
    key.extend_from_slice(&inputs.user_class_len.to_ne_bytes());
    key.extend_from_slice(user);
    key.extend_from_slice(&inputs.vendor_class_len.to_ne_bytes());
    key.extend_from_slice(vendor);
    key
}

impl ClassInputTable {
    /// The table over `map`, learning what an earlier controller left in it and how many of
    /// `bindings` use each entry (see [`Interned::load`]).
    pub(super) fn load(
        map: Array<MapData, ClassInputs>,
        bindings: Option<&aya::maps::Map>,
    ) -> Result<Self, FastPathError> {
        let used = named_by_bindings(bindings, |value| [value.class_inputs])?;
        let key_of = |inputs: &ClassInputs| {
            (inputs.present & CLASS_INPUT_IN_USE != 0).then(|| content_key(inputs))
        };
        let table = Interned::load(map, names::CLASS_INPUTS, ClassInputs::EMPTY, key_of, used)?;
        Ok(ClassInputTable { table })
    }

    /// The entry for `inputs`, one more binding using it; 0 (none: the program passes the
    /// client's requests on) when the array is full.
    pub fn acquire(&mut self, inputs: &ClassInputs) -> Result<u16, FastPathError> {
        match self.table.acquire(content_key(inputs), || *inputs)? {
            Some(id) => Ok(id),
            None => {
                crate::log_throttled!(
                    warn,
                    "fast path: all {} class inputs are in use: clients sending other User or \
                     Vendor Classes are left to the controller",
                    self.table.capacity() - 1
                );
                Ok(0)
            }
        }
    }

    /// One binding fewer uses entry `id` (a binding's `class_inputs`, replaced or removed).
    pub fn release(&mut self, id: u16) -> Result<(), FastPathError> {
        self.table.release(id)
    }

    /// Entries in use.
    pub fn in_use(&self) -> usize {
        self.table.in_use()
    }
}
