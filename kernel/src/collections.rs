//! Small helpers for the standard collections the kernel keeps for its life.

use alloc::collections::BTreeMap;

/// Gives an empty map's last node back to the heap. A `BTreeMap` keeps its
/// root node when its last entry is removed; for the maps the kernel keeps for
/// its whole life (spaces, objects, processes, page-table records), that would
/// make the heap's bytes in use depend on what ran before, and a leak would
/// hide among such leftovers.
pub fn release_if_empty<K, V>(map: &mut BTreeMap<K, V>) {
    if map.is_empty() {
        *map = BTreeMap::new();
    }
}
