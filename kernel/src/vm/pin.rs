//! Pinning: keeping a range resident, private and translated through any discard.
//!
//! Pinning a range faults every page in (zero-filling it, and copying it if other
//! copy-on-write sharers hold it, so that the frame is this space's alone), pins the
//! frame, and asks the MMU for a pinned translation with the region's protection.
//! The MMU keeps pinned translations until they are unmapped, unpinned or their
//! space is destroyed. Pinning is not nested and is not inherited by fork (fork
//! copies pinned private pages at once instead of sharing them).
//!
//! While a region is pinned its private pages keep a reference count of one, so
//! its pinned translations never need write-protecting. Rights removed by a later
//! protect are removed from the pinned translations at once; rights added come
//! back at the next fault, which maps the page pinned again.
#![forbid(unsafe_code)]

use super::error::VmError;
use super::mmu::{Mmu, Protection, SpaceId, VirtAddr};
use super::page::PAGE_SIZE;
use super::space::check_range;
use super::system::{Vm, resident_pages};

impl<'a, M: Mmu> Vm<'a, M> {
    /// Pins `[start, start + length)`, which must be mapped throughout. On error
    /// nothing observable changed (pages may have become resident, which a process
    /// cannot tell from zero-fill on demand).
    pub fn pin(&mut self, space: SpaceId, start: VirtAddr, length: u64) -> Result<(), VmError> {
        let end = check_range(start, length)?;
        let target = self.spaces.get_mut(&space).ok_or(VmError::InvalidArgument)?;
        if !target.covers(start, end) {
            return Err(VmError::BadAddress);
        }
        target.isolate(&mut self.objects, &mut self.frames, start, end)?;
        let mut page = start;
        while page < end {
            if !self.region_pinned(space, page)
                && let Err(error) = self.pin_page(space, page)
            {
                self.unpin_pages(space, start, page);
                self.mmu.flush(space);
                let target = self.spaces.get_mut(&space).expect("pin: space vanished");
                target.merge_around(&mut self.objects, start, end);
                return Err(error);
            }
            page = page.add(PAGE_SIZE);
        }
        let target = self.spaces.get_mut(&space).ok_or(VmError::InvalidArgument)?;
        for region in target.regions_in_mut(start, end) {
            region.set_pinned(true);
        }
        target.merge_around(&mut self.objects, start, end);
        self.mmu.flush(space);
        Ok(())
    }

    /// Unpins every pinned region in `[start, start + length)`, which must be
    /// mapped throughout. The pages stay; their translations become ordinary.
    pub fn unpin(&mut self, space: SpaceId, start: VirtAddr, length: u64) -> Result<(), VmError> {
        let end = check_range(start, length)?;
        let target = self.spaces.get_mut(&space).ok_or(VmError::InvalidArgument)?;
        if !target.covers(start, end) {
            return Err(VmError::BadAddress);
        }
        target.isolate(&mut self.objects, &mut self.frames, start, end)?;
        let target = self.spaces.get_mut(&space).expect("unpin: space vanished");
        for region in target.regions_in_mut(start, end).filter(|region| region.pinned()) {
            for pfn in resident_pages(&self.objects, region) {
                self.frames.unpin(pfn).expect("unpin: pinned page not pinned");
            }
            self.mmu.unpin(space, region.start(), region.end());
            region.set_pinned(false);
        }
        target.merge_around(&mut self.objects, start, end);
        self.mmu.flush(space);
        Ok(())
    }

    /// Whether the region holding `page` is already pinned.
    fn region_pinned(&self, space: SpaceId, page: VirtAddr) -> bool {
        let target = self.spaces.get(&space).expect("region_pinned: no space");
        target.region(page).expect("region_pinned: unmapped page").pinned()
    }

    /// Makes one page resident and exclusive, pins its frame and maps it pinned.
    fn pin_page(&mut self, space: SpaceId, page: VirtAddr) -> Result<(), VmError> {
        let pfn = self.make_exclusive(space, page)?;
        // The kernel may write a pinned page where no dirty bit records it.
        self.frames.forget_swap_copy(pfn);
        let region = self.spaces.get(&space).and_then(|target| target.region(page));
        let protection = region.expect("pin_page: unmapped page").protection() | Protection::USER;
        self.frames.pin(pfn)?;
        let mapped = self.mmu.map(&mut self.frames, space, page, pfn, protection, true);
        if mapped.is_err() {
            self.frames.unpin(pfn).expect("pin_page: frame just pinned");
        }
        mapped
    }

    /// Undoes `pin_page` for the pages of not-yet-pinned regions in
    /// `[start, end)` (the rollback of a failed pin).
    fn unpin_pages(&mut self, space: SpaceId, start: VirtAddr, end: VirtAddr) {
        let mut page = start;
        while page < end {
            if !self.region_pinned(space, page) {
                let (pfn, _) = self
                    .permitted_translation(space, page)
                    .expect("unpin_pages: page not resident");
                self.frames.unpin(pfn).expect("unpin_pages: page not pinned");
                self.mmu.unpin(space, page, page.add(PAGE_SIZE));
            }
            page = page.add(PAGE_SIZE);
        }
    }
}
