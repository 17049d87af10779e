//! A shadow TLB that forgets nothing it is not told to forget: the check behind
//! `tlb_check`.
//!
//! Emulators drop every translation at each CR3 load, PCIDs or not, so no run
//! under one can show a flush this layer forgot on a processor that keeps other
//! PCIDs' translations. The shadow stands for the worst processor the
//! architecture allows: while a PCID is current, any present leaf of its root
//! may be cached, and a cached translation stays until `invlpg` of its page
//! while its PCID is current, or a CR3 load that flushes its PCID (without
//! PCIDs, any CR3 load). Walking the tables, not trusting this layer's own
//! bookkeeping, it checks at every load:
//!
//! - switching away from a root whose PCID keeps its translations: what may be
//!   cached under it still agrees with the root's tables (changes to the loaded
//!   root are invalidated at once); then every present leaf joins the cache;
//! - loading a root without a flush: what may be cached under its PCID agrees
//!   with the tables it will now be used with.
//!
//! A cached translation *agrees* with a leaf when the leaf is present, names the
//! same frame, grants every right the cached one does, and keeps the accessed
//! bit (every cached translation had it) and the dirty bit if the cached one had
//! it: a processor does not set them again through a translation it has cached
//! with them set, so clearing them unflushed would lose a reference or a write.
//! Anything else is a stale translation the processor could use, and the check
//! panics naming it.
//!
//! Paging-structure caches (cached upper-level entries) are not modelled; they
//! are dropped by the same flushes, and this layer frees a table only after a
//! flush of the PCIDs that reached it.

use alloc::collections::BTreeMap;

use super::table::{self, Walker};
use crate::vm::{Pfn, USER_END};

/// What the processor may have cached: per PCID, page address to leaf.
#[derive(Debug, Default)]
pub struct Shadow {
    cached: BTreeMap<u16, BTreeMap<u64, u64>>,
    /// The root in CR3 and its PCID, once this layer has loaded one.
    current: Option<(Pfn, u16)>,
    /// Loads checked so far.
    pub checks: u64,
}

impl Shadow {
    /// Records a CR3 load of `root` under `pcid`, which dropped that PCID's
    /// translations (every translation, without PCIDs) if `flushed`.
    pub fn load(&mut self, root: Pfn, pcid: u16, flushed: bool, has_pcid: bool) {
        self.checks += 1;
        if let Some((old_root, old_pcid)) = self.current {
            // A load that flushes the PCID being left keeps nothing of it: the
            // flush is how a root whose tables were freed is invalidated.
            let keeps_old = !flushed || (has_pcid && old_pcid != pcid);
            if keeps_old {
                self.leave(old_root, old_pcid);
            }
        }
        if flushed {
            if has_pcid {
                self.cached.remove(&pcid);
            } else {
                self.cached.clear();
            }
        } else if let Some(cached) = self.cached.get(&pcid) {
            for (&address, &old) in cached {
                let leaf = table::lookup(root, address);
                assert!(
                    agrees(old, leaf),
                    "TLB check: PCID {pcid} loaded without a flush while it may still hold \
                     {address:#x} -> {old:#x}, now {leaf:#x}: a stale translation"
                );
            }
        }
        self.current = Some((root, pcid));
    }

    /// Records `invlpg` of `address`: the current PCID forgets it.
    pub fn invalidate_page(&mut self, address: u64) {
        if let Some((_, pcid)) = self.current
            && let Some(cached) = self.cached.get_mut(&pcid)
        {
            cached.remove(&(address & !0xfff));
        }
    }

    /// The processor leaves `root` (`pcid`): what it may hold must agree with the
    /// tables, and from now on it may hold every present leaf of them.
    fn leave(&mut self, root: Pfn, pcid: u16) {
        let cached = self.cached.entry(pcid).or_default();
        for (&address, &old) in cached.iter() {
            let leaf = table::lookup(root, address);
            assert!(
                agrees(old, leaf),
                "TLB check: PCID {pcid} may still hold {address:#x} -> {old:#x} while its \
                 tables say {leaf:#x}: a change was not invalidated"
            );
        }
        // A processor sets the accessed bit as it caches a translation, so a
        // leaf without it is not cached.
        let mut visit = |address: u64, entry: u64| {
            if table::is_present(entry) && table::usage(entry).0 {
                cached.insert(address, entry);
            }
            entry
        };
        table::walk(root, 0, USER_END, &mut Walker { visit: &mut visit, emptied: None });
    }
}

/// Whether a translation cached as `cached` is still as good as `leaf`.
fn agrees(cached: u64, leaf: u64) -> bool {
    let ((frame, rights), (now_frame, now_rights)) = (table::decode(cached), table::decode(leaf));
    let dirty = table::usage(cached).1;
    let (now_referenced, now_dirty) = table::usage(leaf);
    table::is_present(leaf)
        && frame == now_frame
        && now_rights.contains(rights)
        && now_referenced
        && (now_dirty || !dirty)
}
