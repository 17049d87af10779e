//! The page-table cache: slots, eviction, reclaim under pressure, and keeping
//! the TLB in step with every change.

use alloc::vec::Vec;

use super::shadow::Shadow;
use super::table::{self, Walker};
use super::{CpuSet, Slot, X86Mmu};
use crate::arch::x86_64::memory::fill_frame;
use crate::arch::x86_64::smp;
use crate::vm::{FrameAllocator, PageFlags, Pfn, SpaceId, USER_END, VirtAddr, VmError};

/// Most page-table pages a slot keeps, empty, when its owner changes; past
/// this its tables are walked and freed.
const KEEP_TABLES: u64 = 32;

/// Most page-table pages one walk unlinks and frees (4 KiB of list).
pub const EMPTIED_BATCH: usize = 512;

/// Pages of the loaded root invalidated one by one in a single change; past
/// this the whole PCID is flushed instead.
const INVALIDATE_LIMIT: u64 = 32;

/// Tracks what a change to one slot's leaves means for the TLBs: of the
/// running processor if the slot is loaded here, and of the others it is
/// loaded on.
pub(super) struct Invalidation {
    here: bool,
    elsewhere: CpuSet,
    /// Pages that may still be invalidated one by one.
    limit: u64,
    /// Pages noted one by one (invalidated here at once if loaded here).
    pages: u64,
    addresses: [u64; INVALIDATE_LIMIT as usize],
    whole: bool,
    changed: bool,
}

impl Invalidation {
    /// Starts tracking changes to slot `index` of `mmu`.
    pub(super) fn new(mmu: &X86Mmu, index: usize) -> Invalidation {
        let loaded = mmu.loaded_on(index);
        let this = smp::this_cpu();
        Invalidation {
            here: loaded.contains(this),
            elsewhere: loaded.without(this),
            limit: INVALIDATE_LIMIT,
            pages: 0,
            addresses: [0; INVALIDATE_LIMIT as usize],
            whole: false,
            changed: false,
        }
    }

    /// Like [`Invalidation::new`], for a change to the whole user half: any
    /// change then flushes the whole PCID, without page-by-page invalidation.
    fn bulk(mmu: &X86Mmu, index: usize) -> Invalidation {
        Invalidation { limit: 0, ..Invalidation::new(mmu, index) }
    }

    /// Notes that the leaf at `address`, which was `old`, changed; `invlpg`s it
    /// here (telling this processor's shadow TLB, if there is one) while single
    /// pages may be, and keeps it for the other processors the slot is loaded on.
    pub(super) fn note(
        &mut self,
        tlb: &super::Tlb,
        shadows: &mut Option<Vec<Shadow>>,
        address: u64,
        old: u64,
    ) {
        if !table::is_present(old) {
            return;
        }
        self.changed = true;
        if !self.here && self.elsewhere.is_empty() {
            return;
        }
        if let Some(shadows) = shadows.as_mut() {
            // What the others may hold until the shootdown reaches them.
            let (others, count) = self.elsewhere.indices();
            for &cpu in &others[..count] {
                shadows[cpu].may_hold(address, old);
            }
        }
        if self.pages < self.limit {
            if self.here {
                tlb.invalidate_page(address);
                if let Some(shadows) = shadows {
                    shadows[smp::this_cpu()].invalidate_page(address);
                }
            }
            self.addresses[self.pages as usize] = address;
            self.pages += 1;
        } else {
            self.whole = true;
        }
    }
}

impl Invalidation {
    /// Notes that an upper-level entry lost rights: every translation cached
    /// below it may be stale, so the PCID is flushed wherever it is loaded.
    pub(super) fn note_directory(&mut self) {
        self.changed = true;
        self.whole = true;
    }
}

/// Folds a leaf's accessed/dirty bits into its page's record (rule 3).
pub(super) fn fold(frames: &mut FrameAllocator<'_>, entry: u64) {
    let (referenced, dirty) = table::usage(entry);
    let mut flags = PageFlags::empty();
    if referenced {
        flags |= PageFlags::REFERENCED;
    }
    if dirty {
        flags |= PageFlags::DIRTY;
    }
    if !flags.is_empty() {
        frames.set_flags(table::frame_of(entry), flags);
    }
}

impl X86Mmu {
    /// Makes the change tracked by `invalidation` (and the unlinking of `emptied`
    /// tables) safe on every processor before it returns (the contract's rule
    /// 5): here, the loaded root gets its PCID flushed if single-page
    /// invalidations could not cover it; every other processor with the root
    /// loaded is made to invalidate the same pages, or everything (a
    /// shootdown, waited for); every processor without it loaded is marked to
    /// flush its PCID when it next loads it.
    pub(super) fn settle(&mut self, index: usize, invalidation: Invalidation, emptied: bool) {
        self.statistics.page_invalidations += invalidation.pages;
        if !invalidation.changed && !emptied {
            return;
        }
        let whole = invalidation.whole || emptied;
        let loaded = self.loaded_on(index);
        self.slots[index].stale = CpuSet::ALL.minus(loaded);
        if invalidation.here && whole {
            self.reload(index, true);
        }
        if invalidation.elsewhere.is_empty() {
            return;
        }
        let (targets, count) = invalidation.elsewhere.indices();
        let targets = &targets[..count];
        let pages = &invalidation.addresses[..invalidation.pages as usize];
        let missing = if whole {
            smp::invalidate(targets, smp::Invalidation::All)
        } else {
            smp::invalidate_pages(targets, pages)
        };
        assert_eq!(missing, 0, "page tables: a processor did not answer a shootdown");
        self.statistics.shootdowns += 1;
        if let Some(shadows) = self.shadows.as_mut() {
            for &cpu in targets {
                match whole {
                    true => shadows[cpu].flush_current(),
                    false => pages.iter().for_each(|&page| shadows[cpu].invalidate_page(page)),
                }
            }
        }
    }

    /// Forgets the leaves of slot `index` in `[start, end)` (except pinned ones
    /// if `keep_pinned`), folding their usage bits, and frees emptied tables.
    /// The list of tables to free is sized before the walk, for every table of
    /// the slot, or for [`EMPTIED_BATCH`] if the heap cannot have that, or for
    /// none if it cannot have even that: a walk never needs more heap however
    /// many tables it empties, and the tables the list has no room for stay
    /// linked, empty, until a later walk. Returns whether the list was full
    /// and not empty (tables may be left).
    ///
    /// Forgetting every leaf of a slot that may keep its tables (`keep_tables`:
    /// not when the point is to free them) and holds at most [`KEEP_TABLES`]
    /// clears just the leaves the slot lists as installed, when it has them
    /// all (see [`super::Installed`]); the empty tables stay for the next
    /// owner, who is likely to use the same addresses (one root, N = 1).
    pub(super) fn forget(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        index: usize,
        range: (u64, u64),
        keep_pinned: bool,
        keep_tables: bool,
    ) -> bool {
        let slot = &self.slots[index];
        let whole = range == (0, USER_END);
        if whole && keep_tables && slot.installed.complete() && slot.tables <= KEEP_TABLES {
            self.forget_installed(frames, index, keep_pinned);
            return false;
        }
        let mut invalidation = if range == (0, USER_END) {
            Invalidation::bulk(self, index)
        } else {
            Invalidation::new(self, index)
        };
        // Room for every table the slot holds if the heap has it (one walk
        // then frees them all), else for a batch.
        let mut emptied = Vec::new();
        if emptied.try_reserve_exact(self.slots[index].tables as usize).is_err() {
            // A batch, or with no heap at all none: emptied tables then stay
            // linked until a later walk.
            let _ = emptied.try_reserve_exact(EMPTIED_BATCH);
        }
        let root = self.slots[index].root;
        // A whole walk lists anew what it leaves: the pinned leaves it keeps.
        let mut kept = super::Installed::default();
        let (tlb, shadows) = (&self.tlb, &mut self.shadows);
        let mut visit = |address: u64, entry: u64| {
            if keep_pinned && table::is_pinned(entry) {
                kept.note(address);
                return entry;
            }
            fold(frames, entry);
            invalidation.note(tlb, shadows, address, entry);
            0
        };
        let mut walker = Walker { visit: &mut visit, emptied: Some(&mut emptied) };
        table::walk(root, range.0, range.1, &mut walker);
        if whole {
            self.slots[index].installed = kept;
        }
        self.settle(index, invalidation, !emptied.is_empty());
        let full = !emptied.is_empty() && emptied.len() == emptied.capacity();
        self.free_tables(frames, index, emptied);
        full
    }

    /// Clears the leaves slot `index` lists as installed (but pinned ones if
    /// `keep_pinned`), which are all it has, folding their usage bits; frees
    /// no table.
    fn forget_installed(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        index: usize,
        keep_pinned: bool,
    ) {
        let mut invalidation = Invalidation::bulk(self, index);
        let slot = &mut self.slots[index];
        let listed = core::mem::take(&mut slot.installed);
        let (tlb, shadows) = (&self.tlb, &mut self.shadows);
        for &address in listed.addresses() {
            let mut keep = |leaf| keep_pinned && table::is_pinned(leaf);
            match table::take_leaf(slot.root, address, &mut keep) {
                None => slot.installed.note(address),
                Some(0) => {}
                Some(old) => {
                    fold(frames, old);
                    invalidation.note(tlb, shadows, address, old);
                }
            }
        }
        self.statistics.listed_forgets += 1;
        self.settle(index, invalidation, false);
        #[cfg(debug_assertions)]
        self.check_nothing_left(index, keep_pinned);
    }

    /// Checks by a walk that slot `index` holds no leaf but, if `keep_pinned`,
    /// pinned ones: what the list of installed leaves promised (debug builds,
    /// which every test kernel is, so that a leaf installed unlisted, which
    /// the next owner of the slot could use, fails a test).
    #[cfg(debug_assertions)]
    fn check_nothing_left(&self, index: usize, keep_pinned: bool) {
        let mut visit = |address: u64, entry: u64| {
            assert!(
                keep_pinned && table::is_pinned(entry),
                "page tables: leaf {entry:#x} at {address:#x} left by a listed forget"
            );
            entry
        };
        let mut walker = Walker { visit: &mut visit, emptied: None };
        table::walk(self.slots[index].root, 0, USER_END, &mut walker);
    }

    /// Returns page-table pages no TLB can reach any more to the allocator.
    fn free_tables(&mut self, frames: &mut FrameAllocator<'_>, index: usize, tables: Vec<Pfn>) {
        let count = tables.len() as u64;
        for pfn in tables {
            frames.free(pfn).expect("free_tables: page-table page not freeable");
        }
        self.slots[index].tables -= count;
        self.statistics.table_pages -= count;
    }

    /// A frame for a page-table page, without reclaiming anything: zeroed,
    /// unless `zeroed` is false because the caller overwrites it whole.
    pub(super) fn allocate_table_without_reclaim(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        zeroed: bool,
    ) -> Result<Pfn, VmError> {
        let pfn = frames.alloc()?;
        if zeroed {
            fill_frame(pfn, 0);
        }
        self.statistics.table_pages += 1;
        Ok(pfn)
    }

    /// A zeroed frame for a page-table page; under pressure first empties idle
    /// slots other than `keep`.
    pub(super) fn allocate_table(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        keep: usize,
    ) -> Result<Pfn, VmError> {
        let pfn = match frames.alloc() {
            Ok(pfn) => pfn,
            Err(_) => {
                self.reclaim_idle(frames, keep);
                frames.alloc()?
            }
        };
        fill_frame(pfn, 0);
        self.statistics.table_pages += 1;
        Ok(pfn)
    }

    /// Empties every slot that is neither loaded (on any processor) nor
    /// `keep`; their spaces rebuild on their next activation (pinned leaves
    /// from their records).
    pub(super) fn reclaim_idle(&mut self, frames: &mut FrameAllocator<'_>, keep: usize) {
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            let loaded = !self.loaded_on(index).is_empty();
            let idle = index != keep && !loaded && slot.owner.is_some();
            if idle && slot.tables > 0 {
                self.release_slot(frames, index, true);
                self.statistics.reclaims += 1;
            }
        }
    }

    /// Takes slot `index` from its owner: every leaf forgotten, tables freed
    /// (in batches of [`EMPTIED_BATCH`]: each walk frees at most that many).
    pub(super) fn release_slot(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        index: usize,
        free_tables: bool,
    ) {
        while self.forget(frames, index, (0, USER_END), false, !free_tables) {}
        if let Some(owner) = self.slots[index].owner.take() {
            let record = self.spaces.get_mut(&owner).expect("release_slot: owner unknown");
            if record.slot == Some(index) {
                record.slot = None;
            }
            if record.slot.is_none() && record.pinned.is_empty() {
                self.spaces.remove(&owner);
                crate::collections::release_if_empty(&mut self.spaces);
            }
        }
    }

    /// Loads slot `index`'s root here, flushing its PCID if it is stale here.
    pub(super) fn load(&mut self, index: usize) {
        let flush = self.slots[index].stale.contains(smp::this_cpu());
        self.reload(index, flush);
        self.statistics.switches += 1;
    }

    /// Loads slot `index`'s root here, dropping its cached translations if
    /// `flush`.
    fn reload(&mut self, index: usize, flush: bool) {
        let this = smp::this_cpu();
        let slot = &mut self.slots[index];
        debug_assert!(
            table::kernel_half_matches(slot.root, self.boot_root),
            "reload: the kernel half changed after this root was made"
        );
        let flushed = self.tlb.load(slot.root, slot.pcid, flush);
        if let Some(shadows) = self.shadows.as_mut() {
            shadows[this].load(slot.root, slot.pcid, flushed);
        }
        if flushed {
            self.statistics.tlb_flushes += 1;
            if self.tlb.has_pcid() {
                self.statistics.pcid_flushes += 1;
            }
        }
        slot.stale = slot.stale.without(this);
        self.loaded[this] = Some(index);
    }

    /// Loads the boot root here (PCID 0, which holds no user translation):
    /// the running processor stops using any slot, which eviction may then
    /// take and no shootdown needs to reach.
    pub(super) fn unload(&mut self) {
        let this = smp::this_cpu();
        if self.loaded[this].is_none() {
            return;
        }
        let flushed = self.tlb.load(self.boot_root, 0, false);
        if let Some(shadows) = self.shadows.as_mut() {
            shadows[this].load(self.boot_root, 0, flushed);
        }
        self.loaded[this] = None;
    }

    /// Makes roots until there are at least as many slots as the capacity.
    pub(super) fn grow_slots(&mut self, frames: &mut FrameAllocator<'_>) -> Result<(), VmError> {
        while self.slots.len() < self.capacity {
            let root = self.allocate_table(frames, usize::MAX)?;
            table::fill_root(root, self.boot_root);
            self.statistics.roots += 1;
            let pcid = self.slots.len() as u16 + 1;
            let slot = Slot {
                root,
                pcid,
                owner: None,
                last_used: 0,
                stale: CpuSet::ALL,
                tables: 0,
                installed: super::Installed::default(),
            };
            self.slots.push(slot);
        }
        Ok(())
    }

    /// Drops the slots above the capacity (after a smaller one was set), once
    /// the loaded slot is below it.
    pub(super) fn shrink_slots(&mut self, frames: &mut FrameAllocator<'_>) {
        while self.slots.len() > self.capacity {
            let index = self.slots.len() - 1;
            if !self.loaded_on(index).is_empty() {
                // Loaded on some processor: dropped at a later activation.
                return;
            }
            self.release_slot(frames, index, true);
            if self.slots[index].tables > 0 {
                // No heap to list its tables in: keep the slot, empty, and
                // drop it at a later activation.
                return;
            }
            let slot = self.slots.pop().expect("shrink_slots: no slot");
            frames.free(slot.root).expect("shrink_slots: root not freeable");
            self.statistics.table_pages -= 1;
            self.statistics.roots -= 1;
        }
    }

    /// The slot `space` owns, if it is one that the current capacity keeps.
    pub(super) fn usable_slot_of(&self, space: SpaceId) -> Option<usize> {
        self.slot_of(space).filter(|&index| index < self.capacity)
    }

    /// Gives `space` a slot: a free one, or the least recently used, evicted.
    /// The page-table pages for its pinned leaves are allocated first, so on
    /// error nothing changed: `OutOfMemory`, or `Busy` if every slot is loaded
    /// on another processor.
    pub(super) fn claim(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        space: SpaceId,
    ) -> Result<usize, VmError> {
        let victim = self.pick_victim().ok_or(VmError::Busy)?;
        let pinned: Vec<(VirtAddr, (Pfn, super::Protection))> = self
            .spaces
            .get(&space)
            .map(|record| record.pinned.iter().map(|(k, v)| (*k, *v)).collect())
            .unwrap_or_default();
        let mut reserved = self.reserve_tables(frames, victim, tables_needed(&pinned))?;
        if self.slots[victim].owner.is_some() {
            self.release_slot(frames, victim, false);
            self.statistics.evictions += 1;
        }
        self.slots[victim].owner = Some(space);
        self.spaces.entry(space).or_default().slot = Some(victim);
        let root = self.slots[victim].root;
        let before = reserved.len() as u64;
        for (address, (pfn, protection)) in pinned {
            let leaf = table::encode(pfn, protection, true);
            let mut take = || reserved.pop().ok_or(VmError::OutOfMemory);
            table::install(root, address.value(), leaf, &mut take)
                .expect("claim: pinned tables miscounted");
            self.slots[victim].installed.note(address.value());
            self.statistics.pinned_reinstalls += 1;
        }
        self.slots[victim].tables += before - reserved.len() as u64;
        // Tables the previous owner left (empty) served instead of these.
        self.statistics.table_pages -= reserved.len() as u64;
        for pfn in reserved {
            frames.free(pfn).expect("claim: fresh table frame not freeable");
        }
        Ok(victim)
    }

    /// A free slot if there is one, else the least recently activated, among
    /// the slots the capacity keeps and no other processor has loaded; `None`
    /// if every one is loaded elsewhere.
    pub(super) fn pick_victim(&self) -> Option<usize> {
        let this = smp::this_cpu();
        let kept = self.slots[..self.capacity.min(self.slots.len())].iter().enumerate();
        let mut takeable =
            kept.filter(|(index, _)| self.loaded_on(*index).without(this).is_empty());
        let mut oldest: Option<(usize, u64)> = None;
        for (index, slot) in &mut takeable {
            if slot.owner.is_none() {
                return Some(index);
            }
            if oldest.is_none_or(|(_, used)| slot.last_used < used) {
                oldest = Some((index, slot.last_used));
            }
        }
        oldest.map(|(index, _)| index)
    }

    /// Allocates `count` table pages up front, or none.
    fn reserve_tables(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        keep: usize,
        count: usize,
    ) -> Result<Vec<Pfn>, VmError> {
        let mut reserved = Vec::with_capacity(count);
        for _ in 0..count {
            match self.allocate_table(frames, keep) {
                Ok(pfn) => reserved.push(pfn),
                Err(error) => {
                    self.statistics.table_pages -= reserved.len() as u64;
                    for pfn in reserved {
                        frames.free(pfn).expect("reserve_tables: fresh frame not freeable");
                    }
                    return Err(error);
                }
            }
        }
        Ok(reserved)
    }
}

/// Page-table pages (P3, P2 and P1) an empty user half needs for these leaves,
/// given in address order.
fn tables_needed(leaves: &[(VirtAddr, (Pfn, super::Protection))]) -> usize {
    let mut count = 0;
    let mut last: [Option<u64>; 3] = [None; 3];
    for (address, _) in leaves {
        for (level, shift) in [39, 30, 21].into_iter().enumerate() {
            let prefix = Some(address.value() >> shift);
            if last[level] != prefix {
                last[level] = prefix;
                count += 1;
            }
        }
    }
    count
}
