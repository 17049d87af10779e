//! Fault resolution, in portable code.
//!
//! A fault names an address space, an address and an access. The VM finds the
//! region (none: `BadAddress`), checks the access against its protection (not
//! allowed: `Protection`; the caller kills the process), finds or makes the page —
//! mapping the shared zero page for a read of a page never touched, zero-filling
//! it on the first write, copying it on a write when other sharers hold it (its
//! chunk first, if the chunk is shared), or taking it over when this space is its
//! last holder — and asks the MMU for the translation. A fault that fails leaves
//! nothing changed: the chunk copy, the last step that can fail, is undone
//! with the frame and translation made before it.
#![forbid(unsafe_code)]

use super::error::VmError;
use super::frame::FrameAllocator;
use super::mmu::{Access, Mmu, Protection, SpaceId, VirtAddr};
use super::object::anonymous::{CHUNK_SPAN, Entry};
use super::object::{AnonymousObject, ObjectTable};
use super::page::{PAGE_SIZE, Pfn};
use super::space::{Backing, Region};
use super::swap::SwapDevice;
use super::system::{Vm, VmStatistics};
use alloc::boxed::Box;

/// What resolving a fault did, as far as fault-around cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resolved {
    /// A write found its page already this space's to write: a copy-on-write
    /// reuse, or a shared object's resident page.
    Found,
    /// Anything else: a page made, copied, or mapped again.
    Other,
    /// The page was read back from swap: its neighbours in memory were
    /// offered when they came back, and those in swap are not offered.
    PagedIn,
}

/// Frames a fault reclaims on its way when memory is low, and before it
/// tries again when it ran out.
const RECLAIM_ON_FAILURE: usize = 32;

/// Translations offered to the MMU per call (kept on the stack).
const BATCH: usize = 64;

/// Translations gathered for [`Mmu::map_ahead`], offered a batch at a time.
struct Offer<'m, M: Mmu> {
    mmu: &'m mut M,
    space: SpaceId,
    batch: [(VirtAddr, Pfn, Protection); BATCH],
    count: usize,
    offered: u64,
}

impl<M: Mmu> Offer<'_, M> {
    /// Adds one translation, offering the batch when it is full.
    fn push(&mut self, frames: &mut FrameAllocator<'_>, leaf: (VirtAddr, Pfn, Protection)) {
        self.batch[self.count] = leaf;
        self.count += 1;
        self.offered += 1;
        if self.count == BATCH {
            self.mmu.map_ahead(frames, self.space, &self.batch);
            self.count = 0;
        }
    }

    /// Offers what is left and makes it visible; how many were offered in all.
    fn finish(self, frames: &mut FrameAllocator<'_>) -> u64 {
        if self.count > 0 {
            self.mmu.map_ahead(frames, self.space, &self.batch[..self.count]);
        }
        self.mmu.flush(self.space);
        self.offered
    }
}

/// Which neighbours a fault offers the MMU ahead of need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Around {
    /// After a read: every page of the chunk, resident ones with the rights
    /// they may have, untouched ones to the zero page.
    Read,
    /// After a write that found its page this space's alone (a reuse), or a
    /// write to a shared object: the resident pages that are this space's
    /// alone too (every resident page of a shared object), writable, so that
    /// writing through memory a fork shared and the other side has let go,
    /// or through an object another space filled, takes a fault per chunk.
    /// Other pages get nothing: a write fault's untouched or copy-on-write
    /// neighbours would only be faulted on again.
    Write,
}

/// The parts of the VM a fault works with, borrowed apart from the space.
struct Resolver<'v, 'a, M: Mmu> {
    frames: &'v mut FrameAllocator<'a>,
    mmu: &'v mut M,
    devices: &'v mut [Box<dyn SwapDevice>],
    statistics: &'v mut VmStatistics,
    space: SpaceId,
    page: VirtAddr,
    zero: Option<Pfn>,
}

impl<'a, M: Mmu> Vm<'a, M> {
    /// Resolves a fault by `access` at `address` in `space`: on success the access
    /// can be retried; on error nothing changed.
    pub fn fault(
        &mut self,
        space: SpaceId,
        address: VirtAddr,
        access: Access,
    ) -> Result<(), VmError> {
        self.statistics.faults += 1;
        if !self.devices.is_empty() {
            self.balance_at_most(RECLAIM_ON_FAILURE);
        }
        let page = address.page_down();
        let result =
            self.retry_after_reclaim(RECLAIM_ON_FAILURE, |vm| vm.resolve(space, page, access));
        if let Ok(resolved) = result {
            if let Some(target) = self.spaces.get_mut(&space) {
                target.working_set_mut().note(page);
            }
            // A write that found its page this space's to write (a reuse, or
            // a shared object's page already there) offers its neighbours;
            // one that made or copied its page does not: they are likely
            // untouched or shared too.
            match (access, resolved) {
                (_, Resolved::PagedIn) => {}
                (Access::Read | Access::Execute, _) => self.map_ahead(space, page, Around::Read),
                (Access::Write, Resolved::Found) => self.map_ahead(space, page, Around::Write),
                (Access::Write, Resolved::Other) => {}
            }
        }
        let result = result.map(drop);
        match result {
            Err(VmError::Protection) => self.statistics.protection_faults += 1,
            Err(VmError::BadAddress) => self.statistics.bad_address_faults += 1,
            Err(VmError::OutOfMemory) => self.statistics.out_of_memory_faults += 1,
            _ => {}
        }
        result
    }

    /// Fault-around on a private page (see [`Around`]): offers the MMU
    /// translations of the other pages of the same chunk inside the region,
    /// so that reading through a forked, discarded or fresh range, or writing
    /// through one this space has come to own alone, takes one fault per
    /// chunk rather than one per page.
    fn map_ahead(&mut self, space: SpaceId, page: VirtAddr, around: Around) {
        let Vm { spaces, frames, mmu, statistics, zero_page, objects, .. } = self;
        let Some(region) = spaces.get(&space).and_then(|target| target.region(page)) else {
            return;
        };
        if region.pinned() {
            return;
        }
        let chunk_start = page.0 - page.0 % CHUNK_SPAN;
        let start = region.start().0.max(chunk_start);
        let end = region.end().0.min(chunk_start + CHUNK_SPAN);
        let rights = region.protection() | Protection::USER;
        let read_only = rights - Protection::WRITE;
        let pages = (start..end).step_by(PAGE_SIZE as usize).map(VirtAddr).filter(|at| *at != page);
        let batch = [(VirtAddr(0), Pfn(0), read_only); BATCH];
        let mut offer = Offer { mmu, space, batch, count: 0, offered: 0 };
        match region.backing() {
            Backing::Shared { object, offset } => {
                // Every mapper may have every right the region allows.
                let Some(shared) = objects.get(*object) else { return };
                let first = offset + (start - region.start().0) / PAGE_SIZE;
                let last = offset + (end - region.start().0) / PAGE_SIZE;
                for (index, pfn) in shared.pages_in(first..last) {
                    let at = VirtAddr(region.start().0 + (index - offset) * PAGE_SIZE);
                    if at != page {
                        offer.push(frames, (at, pfn, rights));
                    }
                }
            }
            Backing::Anonymous(object) => {
                let (entries, shared_chunk) = match object.chunk_entries(page) {
                    Some((entries, shared)) => (Some(entries), shared),
                    None if around == Around::Read => (None, false),
                    None => return,
                };
                for at in pages {
                    let slot = ((at.0 - chunk_start) / PAGE_SIZE) as usize;
                    let entry = entries.map_or(Entry::Empty, |entries| entries.get(slot));
                    let leaf = match (entry, around) {
                        (Entry::Empty, Around::Read) => match zero_page {
                            Some(zero) => (at, *zero, read_only),
                            None => continue,
                        },
                        // A swapped page is read back only when touched.
                        (Entry::Empty | Entry::Swapped(_), _) => continue,
                        (Entry::Frame(pfn), _) => {
                            let exclusive = !shared_chunk && frames.ref_count(pfn) == 1;
                            match (exclusive, around) {
                                (true, _) => (at, pfn, rights),
                                (false, Around::Read) => (at, pfn, read_only),
                                (false, Around::Write) => continue,
                            }
                        }
                    };
                    offer.push(frames, leaf);
                }
            }
        }
        statistics.pages_offered_ahead += offer.finish(frames);
    }

    /// Counts a fault refused before the VM was asked because the kernel had
    /// no memory to resolve it with (no heap for its page tree); the error.
    pub fn refuse_fault_for_memory(&mut self) -> VmError {
        self.statistics.faults += 1;
        self.statistics.out_of_memory_faults += 1;
        VmError::OutOfMemory
    }

    /// Faults the page at `address` in for `access` and returns its frame, for
    /// kernel copies through physical memory (copy-in/out). After a write access
    /// the frame is this space's alone, so the kernel may write it.
    pub fn user_page(
        &mut self,
        space: SpaceId,
        address: VirtAddr,
        access: Access,
    ) -> Result<Pfn, VmError> {
        self.fault(space, address, access)?;
        let (pfn, _) = self
            .permitted_translation(space, address)
            .expect("user_page: page not resident after fault");
        if access == Access::Write {
            // The kernel writes it through physical memory, where no dirty
            // bit records it: a copy in swap is stale from now on.
            self.frames.forget_swap_copy(pfn);
        }
        Ok(pfn)
    }

    /// Finds the region and dispatches on its backing.
    fn resolve(
        &mut self,
        space: SpaceId,
        page: VirtAddr,
        access: Access,
    ) -> Result<Resolved, VmError> {
        let Vm { spaces, frames, mmu, objects, statistics, zero_page, devices, .. } = self;
        let target = spaces.get_mut(&space).ok_or(VmError::InvalidArgument)?;
        let region = target.region_mut(page).ok_or(VmError::BadAddress)?;
        if !region.protection().allows(access) {
            return Err(VmError::Protection);
        }
        let protection = region.protection() | Protection::USER;
        let pinned = region.pinned();
        let zero = *zero_page;
        let mut resolver = Resolver { frames, mmu, devices, statistics, space, page, zero };
        match region.object_index(page) {
            Some((id, index)) => resolver.shared(objects, id, index, access, protection, pinned),
            None => match region.backing_mut() {
                Backing::Anonymous(object) => resolver.private(object, access, protection, pinned),
                Backing::Shared { .. } => {
                    unreachable!("resolve: shared region without object index")
                }
            },
        }
    }

    /// The translation the VM state allows for `address` in `space` right now:
    /// the resident frame (or the shared zero page, for a private page never
    /// touched) and the most rights a translation of it may have. `None` if no
    /// frame may be mapped there.
    pub fn permitted_translation(
        &self,
        space: SpaceId,
        address: VirtAddr,
    ) -> Option<(Pfn, Protection)> {
        let region = self.spaces.get(&space)?.region(address)?;
        let page = address.page_down();
        let mut protection = region.protection() | Protection::USER;
        let Some(pfn) = resident_page(&self.objects, region, page) else {
            let private = match region.backing() {
                Backing::Anonymous(object) => object.entry(page) == Entry::Empty,
                Backing::Shared { .. } => false,
            };
            return self
                .zero_page
                .filter(|_| private)
                .map(|zero| (zero, protection - Protection::WRITE));
        };
        if let Backing::Anonymous(object) = region.backing()
            && (object.chunk_shared(page) || self.frames.ref_count(pfn) > 1)
        {
            protection.remove(Protection::WRITE);
        }
        Some((pfn, protection))
    }

    /// Makes the page at `page` resident and, if private, held by this space
    /// alone (copying it if it is shared), without mapping it. Returns its frame.
    pub(super) fn make_exclusive(
        &mut self,
        space: SpaceId,
        page: VirtAddr,
    ) -> Result<Pfn, VmError> {
        let Vm { spaces, frames, mmu, objects, statistics, zero_page, devices, .. } = self;
        let target = spaces.get_mut(&space).ok_or(VmError::InvalidArgument)?;
        let region = target.region_mut(page).ok_or(VmError::BadAddress)?;
        let zero = *zero_page;
        let mut resolver = Resolver { frames, mmu, devices, statistics, space, page, zero };
        if let Some((id, index)) = region.object_index(page) {
            let object = objects.get_mut(id).expect("make_exclusive: no such object");
            if let Some(pfn) = object.page(index) {
                return Ok(pfn);
            }
            let pfn = resolver.zero_filled()?;
            object.insert(index, pfn);
            return Ok(pfn);
        }
        let Backing::Anonymous(object) = region.backing_mut() else {
            unreachable!("make_exclusive: shared region without object index")
        };
        resolver.exclusive_private(object)
    }
}

/// The frame resident at `page` behind `region`, if any.
pub(super) fn resident_page(objects: &ObjectTable, region: &Region, page: VirtAddr) -> Option<Pfn> {
    match region.backing() {
        Backing::Anonymous(object) => object.page(page),
        Backing::Shared { .. } => {
            let (id, index) = region.object_index(page)?;
            objects.get(id)?.page(index)
        }
    }
}

impl<M: Mmu> Resolver<'_, '_, M> {
    /// A write, or a read, of a private page.
    fn private(
        &mut self,
        object: &mut AnonymousObject,
        access: Access,
        protection: Protection,
        pinned: bool,
    ) -> Result<Resolved, VmError> {
        let paged_in = self.page_in(object)?;
        let resolved = self.resident_private(object, access, protection, pinned)?;
        Ok(if paged_in { Resolved::PagedIn } else { resolved })
    }

    /// [`Resolver::private`] once the page is not in swap.
    fn resident_private(
        &mut self,
        object: &mut AnonymousObject,
        access: Access,
        protection: Protection,
        pinned: bool,
    ) -> Result<Resolved, VmError> {
        let Some(pfn) = object.page(self.page) else {
            if let Some(zero) = self.zero
                && access != Access::Write
                && !pinned
            {
                self.statistics.zero_page_maps += 1;
                return self
                    .map(zero, protection - Protection::WRITE, false)
                    .map(|()| Resolved::Other);
            }
            let pfn = self.zero_filled()?;
            self.map_or_free(pfn, protection, pinned)?;
            return self.install(object, pfn).map(|_| Resolved::Other);
        };
        let shared = object.chunk_shared(self.page) || self.frames.ref_count(pfn) > 1;
        if shared && access == Access::Write {
            return self.copy_on_write(object, pfn, protection, pinned).map(|()| Resolved::Other);
        }
        if shared {
            self.statistics.rebuild_faults += 1;
            return self.map(pfn, protection - Protection::WRITE, pinned).map(|()| Resolved::Other);
        }
        let translation = self.mmu.query(self.space, self.page);
        let read_only = translation
            .is_some_and(|(mapped, rights)| mapped == pfn && !rights.contains(Protection::WRITE));
        let resolved = if access == Access::Write && read_only {
            self.statistics.cow_reuses += 1;
            Resolved::Found
        } else {
            self.statistics.rebuild_faults += 1;
            Resolved::Other
        };
        self.map(pfn, protection, pinned).map(|()| resolved)
    }

    /// A write to a private page other sharers still hold: copy it, map the
    /// copy, install it (copying the chunk first if it is shared), then drop
    /// this chunk's reference on the original.
    fn copy_on_write(
        &mut self,
        object: &mut AnonymousObject,
        original: Pfn,
        protection: Protection,
        pinned: bool,
    ) -> Result<(), VmError> {
        let copy = self.frames.alloc()?;
        self.mmu.copy_page(original, copy);
        self.map_or_free(copy, protection, pinned)?;
        self.install(object, copy)?;
        self.frames.release(original).expect("copy_on_write: original not referenced");
        self.statistics.cow_copies += 1;
        Ok(())
    }

    /// Makes a private page resident and held by this object alone; any old
    /// translation of a replaced frame (or of the zero page) is removed.
    fn exclusive_private(&mut self, object: &mut AnonymousObject) -> Result<Pfn, VmError> {
        self.page_in(object)?;
        let Some(original) = object.page(self.page) else {
            let pfn = self.zero_filled()?;
            self.install(object, pfn)?;
            return Ok(pfn);
        };
        if !object.chunk_shared(self.page) && self.frames.ref_count(original) == 1 {
            return Ok(original);
        }
        let copy = self.frames.alloc()?;
        self.mmu.copy_page(original, copy);
        self.install(object, copy)?;
        self.frames.release(original).expect("exclusive_private: original not referenced");
        self.statistics.cow_copies += 1;
        Ok(copy)
    }

    /// Puts a frame this fault allocated at the faulting page, making its chunk
    /// this object's own first; returns the frame it replaced. If there is no
    /// memory for the chunk, removes whatever translation the page has (the
    /// new frame's, or an old one's) and frees the frame, so nothing changed.
    fn install(&mut self, object: &mut AnonymousObject, pfn: Pfn) -> Result<Option<Pfn>, VmError> {
        let copies_chunk = object.chunk_shared(self.page);
        if let Err(error) = object.prepare(self.page, self.frames) {
            self.unmap_page();
            self.frames.free(pfn).expect("install: fresh frame not freeable");
            return Err(error);
        }
        self.statistics.chunk_copies += u64::from(copies_chunk);
        let old = object.set(self.page, pfn);
        // A translation to the frame replaced (or to the zero page) must go.
        self.unmap_page_if_not(pfn);
        Ok(old)
    }

    /// Removes the faulting page's translation and makes that visible.
    fn unmap_page(&mut self) {
        self.mmu.unmap(self.frames, self.space, self.page, self.page.add(PAGE_SIZE));
        self.mmu.flush(self.space);
    }

    /// Removes the faulting page's translation unless it is to `pfn`.
    fn unmap_page_if_not(&mut self, pfn: Pfn) {
        if self.mmu.query(self.space, self.page).is_some_and(|(mapped, _)| mapped != pfn) {
            self.unmap_page();
        }
    }

    /// If the faulting page is swapped, reads it back into a new frame, which
    /// keeps the slot as its clean copy. In a chunk several objects hold the
    /// entry changes for all of them: the contents are the same. On failure
    /// (no frame, or the device failed) nothing changed.
    fn page_in(&mut self, object: &mut AnonymousObject) -> Result<bool, VmError> {
        let Entry::Swapped(slot) = object.entry(self.page) else { return Ok(false) };
        let pfn = self.frames.alloc()?;
        let (device, local) = self.frames.slots().device_of(slot);
        if let Err(error) = self.devices[device].read(local, pfn) {
            self.frames.free(pfn).expect("page_in: fresh frame not freeable");
            self.statistics.page_in_errors += 1;
            return Err(error);
        }
        let replaced = object.replace(self.page, Entry::Swapped(slot), Entry::Frame(pfn));
        assert!(replaced, "page_in: entry changed under the lock");
        // The frame's hold on the slot before the entry's goes: the slot
        // stays. Not when slots are short, nor past the holders' limit: the
        // frame then just keeps no copy.
        if !self.frames.slots().tight() {
            let _ = self.frames.set_swap_copy(pfn, slot);
        }
        self.frames.slots_mut().drop_entry(slot);
        self.statistics.page_ins += 1;
        Ok(true)
    }

    /// A fault on a page of a shared object: every mapper sees the same frame.
    fn shared(
        &mut self,
        objects: &mut ObjectTable,
        id: super::object::ObjectId,
        index: u64,
        access: Access,
        protection: Protection,
        pinned: bool,
    ) -> Result<Resolved, VmError> {
        let object = objects.get_mut(id).expect("shared fault: no such object");
        if let Some(pfn) = object.page(index) {
            self.statistics.rebuild_faults += 1;
            let resolved = if access == Access::Write { Resolved::Found } else { Resolved::Other };
            return self.map(pfn, protection, pinned).map(|()| resolved);
        }
        let pfn = self.zero_filled()?;
        self.map_or_free(pfn, protection, pinned)?;
        object.insert(index, pfn);
        Ok(Resolved::Other)
    }

    /// A freshly allocated, zeroed frame.
    fn zero_filled(&mut self) -> Result<Pfn, VmError> {
        let pfn = self.frames.alloc()?;
        self.mmu.zero_page(pfn);
        self.statistics.zero_fills += 1;
        Ok(pfn)
    }

    /// Maps a frame this fault just allocated, freeing it if the MMU cannot.
    fn map_or_free(
        &mut self,
        pfn: Pfn,
        protection: Protection,
        pinned: bool,
    ) -> Result<(), VmError> {
        self.map(pfn, protection, pinned).inspect_err(|_| {
            self.frames.free(pfn).expect("map_or_free: fresh frame not freeable");
        })
    }

    /// Asks the MMU for the translation and makes it visible.
    fn map(&mut self, pfn: Pfn, protection: Protection, pinned: bool) -> Result<(), VmError> {
        self.mmu.map(self.frames, self.space, self.page, pfn, protection, pinned)?;
        self.mmu.flush(self.space);
        Ok(())
    }
}
