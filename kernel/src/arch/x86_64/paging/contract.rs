//! The MMU contract, implemented on the page-table cache.
//!
//! Every operation on a space that owns no slot touches only its pinned record;
//! every operation on a slot keeps the TLB in step at once (see `slots`), so
//! `flush` has nothing left to do.

use super::X86Mmu;
use super::slots::{Invalidation, fold};
use super::table::{self, Walker};
use crate::arch::x86_64::memory::{copy_frame, fill_frame};
use crate::arch::x86_64::smp;
use crate::vm::{FrameAllocator, Mmu, Pfn, Protection, SpaceId, USER_END, VirtAddr, VmError};

impl X86Mmu {
    /// Stores `leaf` at `address` in slot `index`, folding and invalidating the
    /// leaf it replaces.
    fn install_leaf(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        index: usize,
        address: VirtAddr,
        leaf: u64,
    ) -> Result<(), VmError> {
        let root = self.slots[index].root;
        let mut made = 0;
        let mut allocate = || {
            let pfn = self.allocate_table(frames, index)?;
            made += 1;
            Ok(pfn)
        };
        let result = table::install(root, address.value(), leaf, &mut allocate);
        self.slots[index].tables += made;
        let previous = result?;
        self.slots[index].installed.note(address.value());
        if previous != 0 {
            fold(frames, previous);
            let mut invalidation = Invalidation::new(self, index);
            invalidation.note(&self.tlb, &mut self.shadows, address.value(), previous);
            self.settle(index, invalidation, false);
        }
        Ok(())
    }

    /// Records (`Some`) or forgets (`None`) the pinned translation at `address`.
    fn record_pin(&mut self, space: SpaceId, address: VirtAddr, pin: Option<(Pfn, Protection)>) {
        match pin {
            Some(pin) => {
                self.spaces.entry(space).or_default().pinned.insert(address, pin);
            }
            None => {
                if let Some(record) = self.spaces.get_mut(&space) {
                    record.pinned.remove(&address);
                }
            }
        }
    }

    /// Forgets the pinned records of `[start, end)`.
    fn unrecord_pins(&mut self, space: SpaceId, start: VirtAddr, end: VirtAddr) {
        if let Some(record) = self.spaces.get_mut(&space) {
            record.pinned.retain(|address, _| !(start..end).contains(address));
            if record.slot.is_none() && record.pinned.is_empty() {
                self.spaces.remove(&space);
                crate::collections::release_if_empty(&mut self.spaces);
            }
        }
    }

    /// Applies `change` to every used leaf of `space` in `[start, end)` without
    /// freeing tables, keeping the TLB in step.
    fn change_leaves(
        &mut self,
        space: SpaceId,
        range: (u64, u64),
        change: &mut dyn FnMut(u64) -> u64,
    ) {
        let Some(index) = self.slot_of(space) else { return };
        let mut invalidation = Invalidation::new(self, index);
        let (tlb, shadows) = (&self.tlb, &mut self.shadows);
        let mut visit = |address: u64, entry: u64| {
            let replacement = change(entry);
            if replacement != entry {
                invalidation.note(tlb, shadows, address, entry);
            }
            replacement
        };
        let mut walker = Walker { visit: &mut visit, emptied: None };
        table::walk(self.slots[index].root, range.0, range.1, &mut walker);
        self.settle(index, invalidation, false);
    }
}

// SAFETY: leaves are encoded from exactly the protection `map` passed or
// `map_ahead` offered, or copied from the source space less write (behind a
// read-only P2 entry, for whole tables) as `copy_translations` offers; rights
// are added afterwards only by such offers (`table::fill_ahead`), and a P2
// entry gets write back only after its leaves lost theirs
// (`split_write_protection`); otherwise leaves are only restricted. Every
// removed or restricted leaf of the loaded root is invalidated before the call
// returns, on this processor and (by a shootdown, waited for) on every other
// that has the root loaded, and every such change marks the root stale on
// every processor without it loaded, so that its PCID is flushed before it
// is loaded there again; a slot loaded on another processor is never taken; page-table pages are freed only
// after that; pinned leaves are recorded and put back whenever a slot is
// emptied, and whole tables holding one are never copied; `zero_page` and
// `copy_page` write exactly the frames named.
unsafe impl Mmu for X86Mmu {
    fn map(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        space: SpaceId,
        address: VirtAddr,
        pfn: Pfn,
        protection: Protection,
        pinned: bool,
    ) -> Result<(), VmError> {
        if let Some(index) = self.slot_of(space) {
            let leaf = table::encode(pfn, protection, pinned);
            self.install_leaf(frames, index, address, leaf)?;
        }
        self.record_pin(space, address, pinned.then_some((pfn, protection)));
        Ok(())
    }

    fn map_ahead(
        &mut self,
        _frames: &mut FrameAllocator<'_>,
        space: SpaceId,
        leaves: &[(VirtAddr, Pfn, Protection)],
    ) {
        let Some(index) = self.slot_of(space) else { return };
        let encoded = leaves.iter().map(|&(address, pfn, protection)| {
            (address.value(), table::encode(pfn, protection, false))
        });
        let slot = &mut self.slots[index];
        let mut note = |address| slot.installed.note(address);
        self.statistics.mapped_ahead += table::fill_ahead(slot.root, encoded, &mut note);
    }

    fn copy_translations(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        from: SpaceId,
        to: SpaceId,
        start: VirtAddr,
        end: VirtAddr,
    ) {
        let Some(source) = self.slot_of(from) else { return };
        let target = match self.usable_slot_of(to) {
            Some(index) => index,
            // With one root, or when the slot to take would be the source's,
            // there is no room to keep both.
            None if self.capacity < 2
                || self.pick_victim().is_none_or(|victim| victim == source) =>
            {
                return;
            }
            None => match self.claim(frames, to) {
                Ok(index) => index,
                Err(_) => return,
            },
        };
        let (from_root, to_root) = (self.slots[source].root, self.slots[target].root);
        let mut installed = core::mem::take(&mut self.slots[target].installed);
        let mut made = 0;
        // An optional copy: no reclaim of other slots (which could free the
        // source's tables under it) for its tables.
        let mut allocate = |overwritten| {
            let pfn = self.allocate_table_without_reclaim(frames, !overwritten)?;
            made += 1;
            Ok(pfn)
        };
        let range = (start.value(), end.value());
        let mut copied = 0;
        let mut note = |address| {
            installed.note(address);
            copied += 1;
        };
        let outcome = table::copy_leaves(from_root, to_root, range, &mut allocate, &mut note);
        if outcome != table::Copied::default() {
            // Leaves copied with their tables, or into tables made for them,
            // are not listed one by one.
            installed.overflow();
        }
        let slot = &mut self.slots[target];
        slot.tables += made;
        slot.installed = installed;
        self.statistics.copied_at_fork += copied + outcome.unlisted;
        self.statistics.tables_copied_at_fork += u64::from(outcome.tables > 0);
    }

    fn unmap(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        space: SpaceId,
        start: VirtAddr,
        end: VirtAddr,
    ) {
        if let Some(index) = self.slot_of(space) {
            self.forget(frames, index, (start.value(), end.value()), false, false);
        }
        self.unrecord_pins(space, start, end);
    }

    fn zap(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        space: SpaceId,
        start: VirtAddr,
        end: VirtAddr,
    ) {
        // The page-table pages stay: the range is still mapped, and its next
        // faults would only make them again.
        let mut forget = |entry| {
            if table::is_pinned(entry) {
                return entry;
            }
            fold(frames, entry);
            0
        };
        self.change_leaves(space, (start.value(), end.value()), &mut forget);
    }

    fn protect(&mut self, space: SpaceId, start: VirtAddr, end: VirtAddr, protection: Protection) {
        if let Some(record) = self.spaces.get_mut(&space) {
            for (_, (_, pinned)) in record.pinned.range_mut(start..end) {
                *pinned &= protection;
            }
        }
        let mut restrict = |entry| table::restrict(entry, protection);
        self.change_leaves(space, (start.value(), end.value()), &mut restrict);
    }

    fn write_protect(&mut self, space: SpaceId, start: VirtAddr, end: VirtAddr) {
        let Some(record) = self.spaces.get_mut(&space) else { return };
        for (_, (_, pinned)) in record.pinned.range_mut(start..end) {
            pinned.remove(Protection::WRITE);
        }
        let Some(index) = record.slot else { return };
        let mut invalidation = Invalidation::new(self, index);
        let (tlb, shadows) = (&self.tlb, &mut self.shadows);
        let mut note = |address, old| invalidation.note(tlb, shadows, address, old);
        let root = self.slots[index].root;
        if table::write_protect(root, start.value(), end.value(), &mut note) {
            invalidation.note_directory();
        }
        self.settle(index, invalidation, false);
    }

    fn unpin(&mut self, space: SpaceId, start: VirtAddr, end: VirtAddr) {
        self.unrecord_pins(space, start, end);
        self.change_leaves(space, (start.value(), end.value()), &mut table::without_pin);
    }

    fn flush(&mut self, _space: SpaceId) {
        // Nothing is deferred: every change was made visible when it was made.
    }

    fn harvest(&mut self, frames: &mut FrameAllocator<'_>, space: SpaceId) {
        self.harvest_range(frames, space, VirtAddr(0), VirtAddr(USER_END));
    }

    fn harvest_range(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        space: SpaceId,
        start: VirtAddr,
        end: VirtAddr,
    ) {
        let mut harvest = |entry| {
            fold(frames, entry);
            table::without_usage(entry)
        };
        self.change_leaves(space, (start.0, end.0), &mut harvest);
    }

    fn reclaim_tables(&mut self, frames: &mut FrameAllocator<'_>) -> usize {
        let before = self.statistics.table_pages;
        // Idle slots keep their roots (one frame each, at most the capacity).
        self.reclaim_idle(frames, usize::MAX);
        (before - self.statistics.table_pages) as usize
    }

    fn discard(&mut self, frames: &mut FrameAllocator<'_>, space: SpaceId) {
        if let Some(index) = self.slot_of(space) {
            self.forget(frames, index, (0, USER_END), true, true);
        }
    }

    fn destroy(&mut self, frames: &mut FrameAllocator<'_>, space: SpaceId) {
        if let Some(index) = self.slot_of(space) {
            self.release_slot(frames, index, true);
        }
        self.spaces.remove(&space);
        crate::collections::release_if_empty(&mut self.spaces);
    }

    fn activate(&mut self, frames: &mut FrameAllocator<'_>, space: SpaceId) -> Result<(), VmError> {
        self.grow_slots(frames)?;
        let (index, kept) = match self.usable_slot_of(space) {
            Some(index) => (index, true),
            None => (self.claim(frames, space)?, false),
        };
        self.kept = kept.then_some(space);
        self.statistics.activations += 1;
        self.clock += 1;
        self.slots[index].last_used = self.clock;
        if !self.loaded_here(index) || self.slots[index].stale.contains(smp::this_cpu()) {
            self.load(index);
        } else if let Some(shadows) = self.shadows.as_mut() {
            shadows[smp::this_cpu()].check_current();
        }
        self.shrink_slots(frames);
        if self.chaos() {
            self.forget(frames, index, (0, USER_END), true, true);
            self.statistics.chaos_discards += 1;
            self.kept = None;
        }
        Ok(())
    }

    fn kept_translations(&self, space: SpaceId) -> bool {
        self.kept == Some(space)
    }

    fn deactivate(&mut self, _frames: &mut FrameAllocator<'_>) {
        self.unload();
    }

    fn this_cpu(&self) -> usize {
        smp::this_cpu()
    }

    fn query(&self, space: SpaceId, address: VirtAddr) -> Option<(Pfn, Protection)> {
        let page = address.page_down();
        if let Some(index) = self.slot_of(space) {
            let leaf = table::lookup(self.slots[index].root, page.value());
            return (leaf != 0).then(|| table::decode(leaf));
        }
        self.spaces.get(&space)?.pinned.get(&page).copied()
    }

    fn zero_page(&mut self, pfn: Pfn) {
        fill_frame(pfn, 0);
    }

    fn copy_page(&mut self, source: Pfn, destination: Pfn) {
        copy_frame(source, destination);
    }
}
