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
//! - the root being left: what may be cached under its PCID still agrees with
//!   its tables (this layer invalidates a change to the loaded root at once,
//!   or flushes its PCID by reloading it); then, unless this load flushes that
//!   PCID, every leaf that may be cached by now stays in the shadow;
//! - the root being loaded without a flush: what may be cached under its PCID
//!   agrees with the tables it will now be used with.
//!
//! Without PCIDs every load flushes everything, and only the first check has
//! anything to find.
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
#[derive(Debug)]
pub struct Shadow {
    /// Whether loads flush one PCID (true) or every translation (false).
    has_pcid: bool,
    cached: BTreeMap<u16, BTreeMap<u64, u64>>,
    /// The root in CR3 and its PCID, once this layer has loaded one.
    current: Option<(Pfn, u16)>,
    /// Loads checked so far.
    pub checks: u64,
}

impl Shadow {
    /// A shadow of an empty TLB, with or without PCIDs.
    pub fn new(has_pcid: bool) -> Shadow {
        Shadow { has_pcid, cached: BTreeMap::new(), current: None, checks: 0 }
    }

    /// Records a CR3 load of `root` under `pcid`, which dropped that PCID's
    /// translations (every translation, without PCIDs) if `flushed`.
    pub fn load(&mut self, root: Pfn, pcid: u16, flushed: bool) {
        let has_pcid = self.has_pcid;
        self.checks += 1;
        if let Some((old_root, old_pcid)) = self.current {
            // A load that flushes the very PCID it leaves is how a root whose
            // tables were just freed is invalidated: nothing of it is left to
            // check. Any other load leaves a root whose changes must all have
            // been invalidated already.
            if !(flushed && old_pcid == pcid) {
                self.check(old_root, old_pcid, "a change to the loaded root was not invalidated");
            }
            let flushes_old = flushed && (!has_pcid || old_pcid == pcid);
            if !flushes_old {
                self.cache(old_root, old_pcid);
            }
        }
        if !flushed {
            self.check(root, pcid, "loaded without a flush: a stale translation");
        } else if has_pcid {
            self.cached.remove(&pcid);
        } else {
            self.cached.clear();
        }
        self.cache(root, pcid);
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

    /// Checks what the current PCID may hold against its root's tables now:
    /// for an activation that keeps the loaded root (the processor goes on
    /// using whatever it cached).
    pub fn check_current(&mut self) {
        if let Some((root, pcid)) = self.current {
            self.checks += 1;
            self.check(root, pcid, "a change made while it was loaded did not reach it");
        }
    }

    /// Records that the processor may hold `leaf` for `address` under its
    /// current PCID (if the leaf is present with its accessed bit): another
    /// processor is changing it while this one has the root loaded, and may
    /// have used it since its load.
    pub fn may_hold(&mut self, address: u64, leaf: u64) {
        if let Some((_, pcid)) = self.current
            && table::is_present(leaf)
            && table::usage(leaf).0
        {
            self.cached.entry(pcid).or_default().insert(address & !0xfff, leaf);
        }
    }

    /// Records a CR3 reload that flushed the current PCID (a shootdown of
    /// everything): it forgets all it cached.
    pub fn flush_current(&mut self) {
        if let Some((_, pcid)) = self.current {
            match self.has_pcid {
                true => self.cached.remove(&pcid),
                false => {
                    self.cached.clear();
                    None
                }
            };
        }
    }

    /// Panics, saying `why`, if anything `pcid` may hold disagrees with the
    /// tables under `root`.
    fn check(&self, root: Pfn, pcid: u16, why: &str) {
        for (&address, &old) in self.cached.get(&pcid).into_iter().flatten() {
            let leaf = table::lookup(root, address);
            assert!(
                agrees(old, leaf),
                "TLB check: PCID {pcid} may hold {address:#x} -> {old:#x} but its tables say \
                 {leaf:#x}: {why}"
            );
        }
    }

    /// Every leaf of `root` the processor may have cached under `pcid` by now
    /// joins the shadow. It sets the accessed bit as it caches a translation,
    /// so a leaf without it is not cached (yet).
    fn cache(&mut self, root: Pfn, pcid: u16) {
        let cached = self.cached.entry(pcid).or_default();
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
