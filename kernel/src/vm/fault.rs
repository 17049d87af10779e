//! Fault resolution, in portable code.
//!
//! A fault names an address space, an address and an access. The VM finds the
//! region (none: `BadAddress`), checks the access against its protection (not
//! allowed: `Protection`; the caller kills the process), finds or makes the page —
//! zero-filling it on first touch, copying it on a write when other sharers hold it,
//! or taking it over when this space is its last holder — and asks the MMU for the
//! translation. A fault that fails leaves everything as it was.
#![forbid(unsafe_code)]

use super::error::VmError;
use super::frame::FrameAllocator;
use super::mmu::{Access, Mmu, Protection, SpaceId, VirtAddr};
use super::object::{AnonymousObject, ObjectTable};
use super::page::{PAGE_SIZE, Pfn};
use super::space::{Backing, Region};
use super::system::{Vm, VmStatistics};

/// The parts of the VM a fault works with, borrowed apart from the space.
struct Resolver<'v, 'a, M: Mmu> {
    frames: &'v mut FrameAllocator<'a>,
    mmu: &'v mut M,
    statistics: &'v mut VmStatistics,
    space: SpaceId,
    page: VirtAddr,
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
        let result = self.resolve(space, address.page_down(), access);
        match result {
            Err(VmError::Protection) => self.statistics.protection_faults += 1,
            Err(VmError::BadAddress) => self.statistics.bad_address_faults += 1,
            Err(VmError::OutOfMemory) => self.statistics.out_of_memory_faults += 1,
            _ => {}
        }
        result
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
        Ok(pfn)
    }

    /// Finds the region and dispatches on its backing.
    fn resolve(&mut self, space: SpaceId, page: VirtAddr, access: Access) -> Result<(), VmError> {
        let Vm { spaces, frames, mmu, objects, statistics, .. } = self;
        let target = spaces.get_mut(&space).ok_or(VmError::InvalidArgument)?;
        let region = target.region_mut(page).ok_or(VmError::BadAddress)?;
        if !region.protection().allows(access) {
            return Err(VmError::Protection);
        }
        let protection = region.protection() | Protection::USER;
        let pinned = region.pinned();
        let mut resolver = Resolver { frames, mmu, statistics, space, page };
        match region.object_index(page) {
            Some((id, index)) => resolver.shared(objects, id, index, protection, pinned),
            None => match region.backing_mut() {
                Backing::Anonymous(object) => resolver.private(object, access, protection, pinned),
                Backing::Shared { .. } => {
                    unreachable!("resolve: shared region without object index")
                }
            },
        }
    }

    /// The translation the VM state allows for `address` in `space` right now:
    /// the resident frame and the most rights a translation of it may have.
    /// `None` if no frame is resident there.
    pub fn permitted_translation(
        &self,
        space: SpaceId,
        address: VirtAddr,
    ) -> Option<(Pfn, Protection)> {
        let region = self.spaces.get(&space)?.region(address)?;
        let page = address.page_down();
        let pfn = resident_page(&self.objects, region, page)?;
        let mut protection = region.protection() | Protection::USER;
        if matches!(region.backing(), Backing::Anonymous(_)) && self.frames.ref_count(pfn) > 1 {
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
        let Vm { spaces, frames, mmu, objects, statistics, .. } = self;
        let target = spaces.get_mut(&space).ok_or(VmError::InvalidArgument)?;
        let region = target.region_mut(page).ok_or(VmError::BadAddress)?;
        let mut resolver = Resolver { frames, mmu, statistics, space, page };
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
    ) -> Result<(), VmError> {
        let Some(pfn) = object.page(self.page) else {
            let pfn = self.zero_filled()?;
            self.map_or_free(pfn, protection, pinned)?;
            object.insert(self.page, pfn);
            return Ok(());
        };
        let shared = self.frames.ref_count(pfn) > 1;
        if shared && access == Access::Write {
            return self.copy_on_write(object, pfn, protection, pinned);
        }
        if shared {
            self.statistics.rebuild_faults += 1;
            return self.map(pfn, protection - Protection::WRITE, pinned);
        }
        let translation = self.mmu.query(self.space, self.page);
        let read_only = translation
            .is_some_and(|(mapped, rights)| mapped == pfn && !rights.contains(Protection::WRITE));
        if access == Access::Write && read_only {
            self.statistics.cow_reuses += 1;
        } else {
            self.statistics.rebuild_faults += 1;
        }
        self.map(pfn, protection, pinned)
    }

    /// A write to a private page other sharers still hold: copy it, map the copy,
    /// then drop this space's reference on the original.
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
        object.insert(self.page, copy);
        self.frames.release(original).expect("copy_on_write: original not referenced");
        self.statistics.cow_copies += 1;
        Ok(())
    }

    /// Makes a private page resident and held by this object alone; any old
    /// translation of a replaced frame is removed.
    fn exclusive_private(&mut self, object: &mut AnonymousObject) -> Result<Pfn, VmError> {
        let Some(original) = object.page(self.page) else {
            let pfn = self.zero_filled()?;
            object.insert(self.page, pfn);
            return Ok(pfn);
        };
        if self.frames.ref_count(original) == 1 {
            return Ok(original);
        }
        let copy = self.frames.alloc()?;
        self.mmu.copy_page(original, copy);
        object.insert(self.page, copy);
        self.mmu.unmap(self.frames, self.space, self.page, self.page.add(PAGE_SIZE));
        self.mmu.flush(self.space);
        self.frames.release(original).expect("exclusive_private: original not referenced");
        self.statistics.cow_copies += 1;
        Ok(copy)
    }

    /// A fault on a page of a shared object: every mapper sees the same frame.
    fn shared(
        &mut self,
        objects: &mut ObjectTable,
        id: super::object::ObjectId,
        index: u64,
        protection: Protection,
        pinned: bool,
    ) -> Result<(), VmError> {
        let object = objects.get_mut(id).expect("shared fault: no such object");
        if let Some(pfn) = object.page(index) {
            self.statistics.rebuild_faults += 1;
            return self.map(pfn, protection, pinned);
        }
        let pfn = self.zero_filled()?;
        self.map_or_free(pfn, protection, pinned)?;
        object.insert(index, pfn);
        Ok(())
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
