//! The VM facade: every address space, every shared object, the frames and the MMU.
//!
//! [`Vm`] is what the rest of the kernel holds (behind one lock). Its operations
//! are the ones a process needs — map anonymous or shared memory, unmap, protect,
//! pin, fork, exit — plus fault resolution (in `fault`) and the hooks the scheduler
//! and the machine layer need (activate, discard). Every operation either succeeds
//! or fails with nothing observable changed and nothing leaked.
//!
//! # Design
//!
//! - **Who holds a frame.** A private region's pages live in its own
//!   [`AnonymousObject`], in chunks that several objects may share after fork;
//!   a shared region names a [`SharedObject`] and an offset. A frame's
//!   reference count (kept by the frame allocator) is the number of holders:
//!   the chunks naming it, or one for a shared object's page. The zero page
//!   is the VM's own. Page-table pages belong to the MMU. Nothing else holds
//!   frames, so destroying every space and closing every handle frees every
//!   frame but the zero page.
//! - **Copy-on-write.** Fork gives the child an anonymous object naming the
//!   same chunks (no frame count changes) and write-protects the parent's
//!   translations. A write fault on a page whose chunk is shared copies the
//!   chunk (each of its frames gains a count), then, if the page's count is
//!   above one, the page; a page whose chunk and frame are this object's alone
//!   is taken over. No translation of a page whose chunk is shared or whose
//!   count is above one ever grants write.
//! - **Shared objects** count the regions mapping them (a split region counts
//!   twice) and the open handles; the last of either to go frees the object.
//! - **Pinning** makes a range resident, exclusive (copy-on-write broken), its
//!   frames pinned and its translations pinned; the MMU keeps pinned translations
//!   through discard. Fork copies pinned private pages instead of sharing them.
//! - **Regions are limited.** No space holds more than the region limit
//!   ([`Vm::set_region_limit`]), however its regions came to be: a call that
//!   would end with more (a new mapping, a partial protect whose splits do not
//!   merge away, a hole in a region) fails with `OutOfMemory` and nothing
//!   changes, like Linux's `max_map_count`. Neighbours that can be one region are merged
//!   after every change, so splitting and rejoining does not use the limit up.
//! - **Translations are a cache.** Any unpinned translation may vanish at any time;
//!   the next access faults and the VM makes it again (a rebuild fault).
//! - **Processors.** Each processor has its own active space, the one it last
//!   activated (the MMU says which processor runs a call). A change to a space
//!   is flushed once, whichever processors have it loaded: the MMU's flush
//!   reaches them all, so the VM never tracks where a space is loaded.
//!
//! [`SharedObject`]: super::object::SharedObject
#![forbid(unsafe_code)]

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::error::VmError;
use super::frame::FrameAllocator;
use super::mmu::{Access, Mmu, Protection, SpaceId, VirtAddr};
use super::object::{AnonymousObject, ObjectId, ObjectTable};
use super::page::{PAGE_SIZE, Pfn};
use super::space::{AddressSpace, Backing, Region, check_range};
use super::swap::SwapDevice;

/// Counters of what the VM has done, for statistics and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmStatistics {
    /// Faults handled, successful or not.
    pub faults: u64,
    /// Faults on a page the VM already had, that only needed the translation
    /// made again (after a discard, a fork, or a first read of a shared page).
    pub rebuild_faults: u64,
    /// Pages allocated and zero-filled on first touch.
    pub zero_fills: u64,
    /// Copy-on-write faults that had to copy the page.
    pub cow_copies: u64,
    /// Copy-on-write faults that took the page over without copying (last sharer).
    pub cow_reuses: u64,
    /// Faults refused because the access is not allowed.
    pub protection_faults: u64,
    /// Faults refused because nothing is mapped there.
    pub bad_address_faults: u64,
    /// Faults that ran out of frames.
    pub out_of_memory_faults: u64,
    /// Address spaces created by fork.
    pub forks: u64,
    /// Pages copied eagerly by fork (pages of pinned regions).
    pub fork_copies: u64,
    /// Reads of private pages never touched, answered with the zero page.
    pub zero_page_maps: u64,
    /// Chunks of the page store copied because a space wrote to one it
    /// shared after fork.
    pub chunk_copies: u64,
    /// Translations offered to the MMU ahead of need by fault-around.
    pub pages_offered_ahead: u64,
    /// Translations of working sets made again at activation.
    pub pages_restored: u64,
    /// Pages the page daemon looked at (see `reclaim`).
    pub pages_scanned: u64,
    /// Pages it let stay because they had been referenced since its last look.
    pub pages_referenced: u64,
    /// Pages whose frames it freed.
    pub pages_reclaimed: u64,
    /// Of those, pages it could drop without writing (their swap copy was current).
    pub clean_reclaims: u64,
    /// Pages written to swap.
    pub page_outs: u64,
    /// Writes a device refused (full, or a page that does not compress).
    pub page_out_refusals: u64,
    /// Pages read back from swap.
    pub page_ins: u64,
    /// Reads that failed (the fault failed with them).
    pub page_in_errors: u64,
    /// Page-table pages freed by reclaim.
    pub tables_reclaimed: u64,
    /// Times reclaim ran (by the daemon, or by an allocation that failed).
    pub reclaim_runs: u64,
}

/// Where to place a new mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// At the lowest free range that fits.
    Anywhere,
    /// Exactly here; fails with `InvalidArgument` if anything is mapped there.
    Exact(VirtAddr),
}

/// The whole virtual memory system.
pub struct Vm<'a, M: Mmu> {
    pub(super) frames: FrameAllocator<'a>,
    pub(super) mmu: M,
    pub(super) spaces: BTreeMap<SpaceId, AddressSpace>,
    pub(super) objects: ObjectTable,
    pub(super) statistics: VmStatistics,
    /// The frame every never-touched private page reads as, mapped read-only;
    /// `None` only if there was no frame for it at start.
    pub(super) zero_page: Option<Pfn>,
    /// Swap devices, in the order reclaim tries them (see `reclaim`).
    pub(super) devices: Vec<Box<dyn SwapDevice>>,
    /// Devices reclaim may not write to, by bit (see `set_swap_device_enabled`).
    pub(super) swap_disabled: u64,
    /// Whether the clock learns usage by forgetting translations rather
    /// than by harvesting their bits (see `set_usage_by_discard`).
    pub(super) usage_by_discard: bool,
    /// Devices that refused a page in the current sweep, by bit.
    pub(super) swap_full: u64,
    /// Where the page daemon's clock hand is.
    pub(super) hand: super::reclaim::Hand,
    /// When the daemon starts, and where it stops (see `reclaim`).
    pub(super) watermarks: super::reclaim::Watermarks,
    next_space: u32,
    /// The space each processor last activated, by [`Mmu::this_cpu`]; grown
    /// the first time a processor activates one.
    active: Vec<Option<SpaceId>>,
    region_limit: usize,
}

impl<'a, M: Mmu> Vm<'a, M> {
    /// A VM owning `frames` that translates through `mmu`. Takes one frame for
    /// the shared zero page, held for the VM's life.
    pub fn new(mut frames: FrameAllocator<'a>, mut mmu: M) -> Self {
        let zero_page = frames.alloc().ok();
        if let Some(zero) = zero_page {
            mmu.zero_page(zero);
        }
        Vm {
            zero_page,
            frames,
            mmu,
            spaces: BTreeMap::new(),
            objects: ObjectTable::new(),
            statistics: VmStatistics::default(),
            devices: Vec::new(),
            swap_disabled: 0,
            swap_full: 0,
            usage_by_discard: false,
            hand: super::reclaim::Hand::default(),
            watermarks: super::reclaim::Watermarks::default(),
            next_space: 1,
            active: Vec::new(),
            region_limit: usize::MAX,
        }
    }

    /// Sets the most regions any one space may have (see the module docs).
    pub fn set_region_limit(&mut self, limit: usize) {
        self.region_limit = limit;
    }

    /// `OutOfMemory` if `space` cannot take `more` regions.
    fn check_region_room(&self, space: SpaceId, more: usize) -> Result<(), VmError> {
        let target = self.spaces.get(&space).ok_or(VmError::InvalidArgument)?;
        if target.region_count() + more > self.region_limit {
            return Err(VmError::OutOfMemory);
        }
        Ok(())
    }

    /// The frame allocator (for accounting, or for frames the kernel needs).
    pub fn frames(&self) -> &FrameAllocator<'a> {
        &self.frames
    }

    /// The frame allocator, for allocating frames outside any address space.
    pub fn frames_mut(&mut self) -> &mut FrameAllocator<'a> {
        &mut self.frames
    }

    /// The machine layer.
    pub fn mmu(&self) -> &M {
        &self.mmu
    }

    /// The machine layer, for machine-specific requests.
    pub fn mmu_mut(&mut self) -> &mut M {
        &mut self.mmu
    }

    /// What the VM has done so far.
    pub fn statistics(&self) -> VmStatistics {
        self.statistics
    }

    /// The space named `id`, for inspection.
    pub fn space(&self, id: SpaceId) -> Option<&AddressSpace> {
        self.spaces.get(&id)
    }

    /// Every live space.
    pub fn spaces(&self) -> impl Iterator<Item = &AddressSpace> + '_ {
        self.spaces.values()
    }

    /// Every live shared object.
    pub fn objects(&self) -> &ObjectTable {
        &self.objects
    }

    /// The shared zero page, if there is one.
    pub fn zero_page(&self) -> Option<Pfn> {
        self.zero_page
    }

    /// Notes which processor runs the calls that follow ([`Mmu::this_cpu`]),
    /// so that the frames they take and give back one at a time come from
    /// and go to that processor's frame cache. Whoever takes the VM's lock
    /// calls it; a stale processor only costs another processor's cache.
    pub fn enter(&mut self) {
        let cpu = self.mmu.this_cpu();
        self.frames.set_processor(cpu);
    }

    /// The space the running processor last activated, if it still lives.
    pub fn active(&self) -> Option<SpaceId> {
        self.active_on(self.mmu.this_cpu())
    }

    /// The space processor `cpu` last activated, if it still lives.
    pub fn active_on(&self, cpu: usize) -> Option<SpaceId> {
        self.active.get(cpu).copied().flatten()
    }

    /// The space named `id`, or `InvalidArgument`.
    pub(super) fn space_mut(&mut self, id: SpaceId) -> Result<&mut AddressSpace, VmError> {
        self.spaces.get_mut(&id).ok_or(VmError::InvalidArgument)
    }

    /// Creates an empty address space.
    pub fn create_space(&mut self) -> SpaceId {
        let id = self.allocate_space_id();
        self.spaces.insert(id, AddressSpace::new(id));
        id
    }

    /// A fresh space identifier (never reused).
    pub(super) fn allocate_space_id(&mut self) -> SpaceId {
        let id = SpaceId(self.next_space);
        self.next_space += 1;
        id
    }

    /// Switches the running processor to `space`; if the MMU did not keep its
    /// translations, maps its working set again (see [`super::restore`]).
    pub fn activate(&mut self, space: SpaceId) -> Result<(), VmError> {
        if !self.spaces.contains_key(&space) {
            return Err(VmError::InvalidArgument);
        }
        let cpu = self.mmu.this_cpu();
        // Room for the processor's record first: once the MMU has switched,
        // nothing may fail.
        if self.active.len() <= cpu {
            let more = cpu + 1 - self.active.len();
            self.active.try_reserve(more).map_err(|_| VmError::OutOfMemory)?;
            self.active.resize(cpu + 1, None);
        }
        self.mmu.activate(&mut self.frames, space)?;
        self.active[cpu] = Some(space);
        if !self.mmu.kept_translations(space) {
            self.restore_working_set(space);
        }
        Ok(())
    }

    /// The running processor stops using its active space (see
    /// [`Mmu::deactivate`]): an idle processor's step before it waits.
    pub fn deactivate(&mut self) {
        let cpu = self.mmu.this_cpu();
        self.mmu.deactivate(&mut self.frames);
        if let Some(active) = self.active.get_mut(cpu) {
            *active = None;
        }
    }

    /// Maps `length` bytes of private, zero-filled memory; returns the address.
    pub fn map_anonymous(
        &mut self,
        space: SpaceId,
        placement: Placement,
        length: u64,
        protection: Protection,
    ) -> Result<VirtAddr, VmError> {
        check_protection(protection)?;
        self.check_region_room(space, 1)?;
        let start = self.place(space, placement, length)?;
        let end = start.add(length);
        let region =
            Region::new(start, end, protection, Backing::Anonymous(AnonymousObject::new()));
        let target = self.spaces.get_mut(&space).ok_or(VmError::InvalidArgument)?;
        target.insert(region);
        target.merge_around(&mut self.objects, start, end);
        Ok(start)
    }

    /// Creates a shared object of `length` bytes with one open handle.
    pub fn create_shared(&mut self, length: u64) -> Result<ObjectId, VmError> {
        if length == 0 || !length.is_multiple_of(PAGE_SIZE) {
            return Err(VmError::InvalidArgument);
        }
        Ok(self.objects.create(length / PAGE_SIZE))
    }

    /// Opens one more handle on a shared object (for example across fork).
    pub fn open_shared(&mut self, object: ObjectId) -> Result<(), VmError> {
        self.objects.open(object)
    }

    /// Closes a handle; the object goes when its last handle and mapping do.
    pub fn close_shared(&mut self, object: ObjectId) -> Result<(), VmError> {
        self.objects.close(&mut self.frames, object)
    }

    /// Maps `length` bytes of a shared object, from byte `offset`, by handle.
    pub fn map_shared(
        &mut self,
        space: SpaceId,
        placement: Placement,
        object: ObjectId,
        offset: u64,
        length: u64,
        protection: Protection,
    ) -> Result<VirtAddr, VmError> {
        let shared = self.objects.get(object).filter(|shared| shared.handles() > 0);
        let size = shared.ok_or(VmError::InvalidArgument)?.size();
        let fits = offset.checked_add(length).is_some_and(|end| end <= size * PAGE_SIZE);
        if !offset.is_multiple_of(PAGE_SIZE) || !fits {
            return Err(VmError::InvalidArgument);
        }
        check_protection(protection)?;
        self.check_region_room(space, 1)?;
        let start = self.place(space, placement, length)?;
        let end = start.add(length);
        let backing = Backing::Shared { object, offset: offset / PAGE_SIZE };
        let target = self.spaces.get_mut(&space).ok_or(VmError::InvalidArgument)?;
        target.insert(Region::new(start, end, protection, backing));
        self.objects.add_mapping(object);
        target.merge_around(&mut self.objects, start, end);
        Ok(start)
    }

    /// Checks a new mapping's range and chooses its address.
    fn place(
        &mut self,
        space: SpaceId,
        placement: Placement,
        length: u64,
    ) -> Result<VirtAddr, VmError> {
        let space = self.space_mut(space)?;
        match placement {
            Placement::Anywhere => {
                check_range(VirtAddr(super::mmu::USER_START), length)?;
                space.find_free_range(length).ok_or(VmError::OutOfMemory)
            }
            Placement::Exact(start) => {
                let end = check_range(start, length)?;
                if space.overlaps(start, end) {
                    return Err(VmError::InvalidArgument);
                }
                Ok(start)
            }
        }
    }

    /// The lowest free range of `length` bytes in `space`.
    pub fn find_free_range(&self, space: SpaceId, length: u64) -> Option<VirtAddr> {
        self.spaces.get(&space)?.find_free_range(length)
    }

    /// Unmaps `[start, start + length)`; holes in the range are fine.
    pub fn unmap(&mut self, space: SpaceId, start: VirtAddr, length: u64) -> Result<(), VmError> {
        let end = check_range(start, length)?;
        let target = self.spaces.get(&space).ok_or(VmError::InvalidArgument)?;
        // Only a hole strictly inside one region adds one (its two ends split it).
        let inside_one =
            target.region(start).is_some_and(|region| region.start() < start && end < region.end());
        self.check_region_room(space, usize::from(inside_one))?;
        let target = self.spaces.get_mut(&space).ok_or(VmError::InvalidArgument)?;
        target.isolate(&mut self.objects, &mut self.frames, start, end)?;
        let removed = target.remove_range(start, end);
        self.mmu.unmap(&mut self.frames, space, start, end);
        self.mmu.flush(space);
        for region in removed {
            self.release_region(region);
        }
        self.settle_swap();
        Ok(())
    }

    /// Returns the frames (and object mapping) of a region whose translations are
    /// already gone.
    pub(super) fn release_region(&mut self, region: Region) {
        release_region(&mut self.frames, &mut self.objects, region);
    }

    /// Changes the protection of `[start, start + length)`, which must be mapped
    /// throughout. Removed rights take effect at once; added ones at the next fault.
    ///
    /// The region limit holds for the regions the change leaves once merged:
    /// the count is worked out before anything changes, and a change that
    /// would pass it fails with `OutOfMemory`.
    pub fn protect(
        &mut self,
        space: SpaceId,
        start: VirtAddr,
        length: u64,
        protection: Protection,
    ) -> Result<(), VmError> {
        let end = check_range(start, length)?;
        check_protection(protection)?;
        let target = self.spaces.get_mut(&space).ok_or(VmError::InvalidArgument)?;
        if !target.covers(start, end) {
            return Err(VmError::BadAddress);
        }
        let splits = target.isolate(&mut self.objects, &mut self.frames, start, end)?;
        // Merges only lower the count: the prediction is needed only past
        // the limit.
        let over = target.region_count() > self.region_limit
            && target.count_if_protected(start, end, protection) > self.region_limit;
        if over {
            // The halves of this call's splits join again without allocating.
            for (split, at) in [(splits.0, start), (splits.1, end)] {
                if split {
                    target.merge_around(&mut self.objects, at, at);
                }
            }
            return Err(VmError::OutOfMemory);
        }
        #[cfg(test)]
        let predicted = target.count_if_protected(start, end, protection);
        let mut removed = Protection::empty();
        for region in target.regions_in_mut(start, end) {
            removed |= region.protection() - protection;
            region.set_protection(protection);
        }
        target.merge_around(&mut self.objects, start, end);
        #[cfg(test)]
        assert_eq!(target.region_count(), predicted, "protect: region count mispredicted");
        // Translations lose only what some region lost: nothing, write alone
        // (which the MMU may do per page-table page), or more.
        if removed == Protection::WRITE {
            self.mmu.write_protect(space, start, end);
        } else if !removed.is_empty() {
            self.mmu.protect(space, start, end, protection | Protection::USER);
        }
        self.mmu.flush(space);
        Ok(())
    }

    /// Destroys a space (process exit), returning every frame it held.
    pub fn destroy(&mut self, space: SpaceId) -> Result<(), VmError> {
        let mut target = self.spaces.remove(&space).ok_or(VmError::InvalidArgument)?;
        crate::collections::release_if_empty(&mut self.spaces);
        self.mmu.destroy(&mut self.frames, space);
        for region in target.take_all() {
            self.release_region(region);
        }
        for active in self.active.iter_mut().filter(|active| **active == Some(space)) {
            *active = None;
        }
        self.settle_swap();
        Ok(())
    }

    /// Forgets the unpinned translations of `space` (they come back by faulting).
    pub fn discard(&mut self, space: SpaceId) -> Result<(), VmError> {
        if !self.spaces.contains_key(&space) {
            return Err(VmError::InvalidArgument);
        }
        self.mmu.discard(&mut self.frames, space);
        Ok(())
    }

    /// Forgets the translations of the unpinned regions in `[start, start +
    /// length)`; the pages stay and come back by faulting. Costs the regions
    /// met, never the pages of the range (holes are skipped whole).
    pub fn zap(&mut self, space: SpaceId, start: VirtAddr, length: u64) -> Result<(), VmError> {
        let end = check_range(start, length)?;
        let target = self.spaces.get(&space).ok_or(VmError::InvalidArgument)?;
        // One request per unpinned region met: holes have no translations.
        for region in target.regions_overlapping(start, end).filter(|region| !region.pinned()) {
            let (from, to) = (region.start().max(start), region.end().min(end));
            self.mmu.zap(&mut self.frames, space, from, to);
        }
        self.mmu.flush(space);
        Ok(())
    }

    /// Forgets the translations of a shared object's pages in every space that
    /// maps it (pinned regions excepted); the pages stay and come back by faulting.
    pub fn zap_object(&mut self, object: ObjectId) -> Result<(), VmError> {
        self.objects.get(object).ok_or(VmError::InvalidArgument)?;
        for (id, space) in &self.spaces {
            let mut zapped = false;
            for region in space.regions().filter(|region| !region.pinned()) {
                if region.object_index(region.start()).is_some_and(|(mapped, _)| mapped == object) {
                    self.mmu.zap(&mut self.frames, *id, region.start(), region.end());
                    zapped = true;
                }
            }
            if zapped {
                self.mmu.flush(*id);
            }
        }
        Ok(())
    }

    /// Folds the referenced/dirty bits of `space`'s translations into the pages.
    pub fn harvest(&mut self, space: SpaceId) -> Result<(), VmError> {
        if !self.spaces.contains_key(&space) {
            return Err(VmError::InvalidArgument);
        }
        self.mmu.harvest(&mut self.frames, space);
        Ok(())
    }

    /// Checks that every page of `[start, start + length)` is mapped with a
    /// protection allowing `access` (the validation step of copy-in/out).
    pub fn check_user_range(
        &self,
        space: SpaceId,
        start: VirtAddr,
        length: u64,
        access: Access,
    ) -> Result<(), VmError> {
        let target = self.spaces.get(&space).ok_or(VmError::InvalidArgument)?;
        if length == 0 {
            return Ok(());
        }
        let end = check_range(start.page_down(), round_up(start, length)?)?;
        let mut cursor = start.page_down();
        while cursor < end {
            let region = target.region(cursor).ok_or(VmError::BadAddress)?;
            if !region.protection().allows(access) {
                return Err(VmError::Protection);
            }
            cursor = region.end();
        }
        Ok(())
    }

    /// Checks a user range like [`Vm::check_user_range`] and faults every page in
    /// for `access`, so that the kernel can then touch it through the translations.
    pub fn fault_in(
        &mut self,
        space: SpaceId,
        start: VirtAddr,
        length: u64,
        access: Access,
    ) -> Result<(), VmError> {
        self.check_user_range(space, start, length, access)?;
        if length == 0 {
            return Ok(());
        }
        let end = start.page_down().add(round_up(start, length)?);
        let mut page = start.page_down();
        while page < end {
            self.fault(space, page, access)?;
            page = page.add(PAGE_SIZE);
        }
        Ok(())
    }
}

/// Returns the frames (and object mapping) of a region whose translations are
/// already gone (and flushed), unpinning its pages first if it was pinned.
pub(super) fn release_region(
    frames: &mut FrameAllocator<'_>,
    objects: &mut ObjectTable,
    region: Region,
) {
    if region.pinned() {
        for pfn in resident_pages(objects, &region) {
            frames.unpin(pfn).expect("release_region: pinned page not pinned");
        }
    }
    match region.into_backing() {
        Backing::Anonymous(object) => object.release(frames),
        Backing::Shared { object, .. } => objects.remove_mapping(frames, object),
    }
}

/// The frames resident behind `region`, in address order.
pub(super) fn resident_pages(objects: &ObjectTable, region: &Region) -> Vec<Pfn> {
    match region.backing() {
        Backing::Anonymous(object) => object.pages().map(|(_, pfn)| pfn).collect(),
        Backing::Shared { object, offset } => {
            let shared = objects.get(*object).expect("resident_pages: no such object");
            let pages = (region.end().0 - region.start().0) / PAGE_SIZE;
            (*offset..*offset + pages).filter_map(|index| shared.page(index)).collect()
        }
    }
}

/// The length in bytes of the whole pages covering `[start, start + length)`.
fn round_up(start: VirtAddr, length: u64) -> Result<u64, VmError> {
    let first = start.page_down().0;
    let last = start.0.checked_add(length).ok_or(VmError::BadAddress)?;
    let end = last.checked_add(PAGE_SIZE - 1).ok_or(VmError::BadAddress)? / PAGE_SIZE * PAGE_SIZE;
    Ok(end - first)
}

/// Refuses protections the machine cannot express (write or execute without read)
/// and bits that are the VM's to set.
fn check_protection(protection: Protection) -> Result<(), VmError> {
    let needs_read = protection.intersects(Protection::WRITE | Protection::EXECUTE);
    if protection.contains(Protection::USER)
        || (needs_read && !protection.contains(Protection::READ))
    {
        return Err(VmError::InvalidArgument);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
