//! Working-set restore: when a space comes back to a processor that has
//! dropped its translations (one page table shared by all, an evicted slot,
//! chaos), the pages it was using are mapped in one batch at activation
//! instead of faulting back one at a time.
//!
//! Each space remembers the last [`WORKING_SET`] pages that faulted in it. At
//! an activation after which the MMU says it did not keep the space's
//! translations, every remembered page whose frame was referenced — the bit the
//! MMU folds into the page record when it drops a translation the processor
//! used (the contract's rule 3) — is mapped again with the rights it may have,
//! and its referenced bit is cleared; a page that was not referenced since is
//! forgotten. So a page stays in the set while it is used between switches,
//! and a switch costs at most [`WORKING_SET`] translations however large the
//! space.
#![forbid(unsafe_code)]

use super::mmu::{Mmu, SpaceId, VirtAddr};
use super::page::PageFlags;
use super::system::Vm;

/// Pages a space's working set remembers.
pub const WORKING_SET: usize = 32;

/// The pages that faulted last in one space, most recent last (a small ring,
/// no heap).
#[derive(Clone, Debug, Default)]
pub struct WorkingSet {
    pages: [VirtAddr; WORKING_SET],
    len: usize,
    /// Where the next page goes once the set is full.
    next: usize,
}

impl WorkingSet {
    /// Remembers `page` (nothing if it is remembered already).
    pub fn note(&mut self, page: VirtAddr) {
        if self.pages().any(|known| known == page) {
            return;
        }
        if self.len < WORKING_SET {
            self.pages[self.len] = page;
            self.len += 1;
        } else {
            self.pages[self.next] = page;
            self.next = (self.next + 1) % WORKING_SET;
        }
    }

    /// The remembered pages.
    pub fn pages(&self) -> impl Iterator<Item = VirtAddr> + '_ {
        self.pages[..self.len].iter().copied()
    }

    /// Forgets the pages `keep` refuses.
    pub fn retain(&mut self, mut keep: impl FnMut(VirtAddr) -> bool) {
        let mut kept = 0;
        for index in 0..self.len {
            let page = self.pages[index];
            if keep(page) {
                self.pages[kept] = page;
                kept += 1;
            }
        }
        self.len = kept;
        self.next = 0;
    }
}

impl<M: Mmu> Vm<'_, M> {
    /// Maps the referenced pages of `space`'s working set again (see the
    /// module documentation). Failures only leave pages to fault back.
    pub(super) fn restore_working_set(&mut self, space: SpaceId) {
        let Some(target) = self.spaces.get(&space) else { return };
        let mut set = target.working_set().clone();
        let mut found = [None; WORKING_SET];
        for (slot, page) in set.pages().enumerate() {
            let pinned = target.region(page).is_none_or(|region| region.pinned());
            found[slot] = self.permitted_translation(space, page).filter(|_| !pinned);
        }
        let Vm { frames, mmu, statistics, .. } = self;
        let mut slot = 0;
        set.retain(|page| {
            let entry = found[slot];
            slot += 1;
            let Some((pfn, protection)) = entry else { return false };
            if !frames.flags(pfn).contains(PageFlags::REFERENCED) {
                return false;
            }
            if mmu.map(frames, space, page, pfn, protection, false).is_ok() {
                frames.clear_flags(pfn, PageFlags::REFERENCED);
                statistics.pages_restored += 1;
            }
            true
        });
        mmu.flush(space);
        if let Some(target) = self.spaces.get_mut(&space) {
            *target.working_set_mut() = set;
        }
    }
}
