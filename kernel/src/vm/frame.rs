//! The physical frame allocator: a buddy allocator over the `VmPage` array.
//!
//! It owns every usable frame of the memory map and hands them out one at a time
//! or as naturally aligned power-of-two blocks, and it keeps each frame's
//! copy-on-write reference count and pin count.
//!
//! # Layout
//! The page array is dense: it has one record per usable frame and none for holes.
//! A small sorted segment table maps a frame number to its record by
//! binary search (a handful of comparisons: real maps have a few dozen runs). The
//! alternative, one record per frame of the whole span, would cost 16 bytes per
//! frame of every hole; the PCI hole below 4 GiB alone would waste 4 MiB. Frame 0
//! is never managed, so no valid allocation is ever physical address zero.
//!
//! # Guarantees
//! - `alloc` and `free` run in constant time: a bitmap of non-empty free lists
//!   finds the smallest usable order, and splitting or merging a block is bounded
//!   by [`MAX_ORDER`] steps. Freeing does one binary search of the segment table.
//!   A processor cache's refill or spill moves one batch (at most half of
//!   [`MAX_CACHE_LIMIT`] frames); only an allocation about to fail gives every
//!   cache back, in time linear in the frames cached.
//! - A block of order `k` is `2^k` frames aligned to `2^k` frames in physical
//!   address and lies inside one segment: buddies never straddle a hole.
//! - Free buddies are always merged, so `alloc_contiguous(k)` fails only when no
//!   aligned, entirely free block of `2^k` frames exists (frames held in
//!   processor caches are given back first).
//! - With processor caches on (see `frame/cache.rs`), single frames come from and go
//!   back to the running processor's cache, and the lists are touched once per
//!   batch of frames.
//! - Nothing here panics on a caller's mistake. Running out is
//!   [`VmError::OutOfMemory`]; freeing a frame twice, a frame that still has other
//!   sharers or pins, or a frame the allocator does not manage is
//!   [`VmError::BadFrame`], and changes nothing.
//!
//! # References and pins
//! An allocated frame has a reference count (one per copy-on-write sharer) and a
//! pin count. Pins nest: a frame pinned twice stays pinned until unpinned twice.
//! A pinned frame can be neither freed nor released to zero. The count is 32 bits
//! and lives in the record's free-list word, which is unused while allocated.
//! Reaching either count's limit is reported as [`VmError::OutOfMemory`].

mod cache;
mod check;
mod segments;

pub use cache::{CacheStatistics, MAX_CACHE_LIMIT, MAX_PROCESSORS};
pub use check::AccountingError;
pub use segments::MAX_SEGMENTS;

use crate::vm::error::VmError;
use crate::vm::page::{FrameState, NO_LINK, PageFlags, Pfn, VmPage};
use crate::vm::swap::SwapSlots;
use cache::FrameCache;
use segments::{Segment, SegmentTable};

/// Largest buddy order: blocks are at most `2^MAX_ORDER` frames (4 MiB).
pub const MAX_ORDER: u32 = 10;

/// Number of free lists, one per order.
const ORDERS: usize = MAX_ORDER as usize + 1;

/// A range of usable physical memory in bytes, `start..end` (end exclusive).
/// Need not be page aligned; only the whole frames inside it are used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

/// Frame counts by state. `free + allocated + reserved == total`; `pinned`
/// counts the allocated frames whose pin count is non-zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameCounters {
    /// Managed frames.
    pub total: usize,
    /// Frames on the free lists.
    pub free: usize,
    /// Frames handed out (pinned ones included).
    pub allocated: usize,
    /// Allocated frames that are pinned.
    pub pinned: usize,
    /// Frames taken out for good with [`FrameAllocator::reserve`].
    pub reserved: usize,
}

/// The buddy allocator of physical frames. Borrows the page array for its life.
pub struct FrameAllocator<'a> {
    pages: &'a mut [VmPage],
    segments: SegmentTable,
    /// Index of the first free block of each order, or `NO_LINK`.
    free_lists: [u32; ORDERS],
    /// Bit `k` is set when free list `k` is non-empty.
    non_empty: u32,
    counters: FrameCounters,
    /// Swap slots and who holds them: frames and slots are the two places a
    /// page's contents can be, and a frame's record names the slot of its
    /// clean copy, so the two are counted together.
    slots: SwapSlots,
    /// Frames only the reclaim path may take (see [`FrameAllocator::set_reclaim_reserve`]).
    reserve: usize,
    /// Whether the reclaim path is running (and may take the reserve).
    reclaiming: bool,
    /// Each processor's cache of free single frames (see [`cache`]).
    caches: [FrameCache; MAX_PROCESSORS],
    /// Most frames a cache holds; 0: caches are off.
    cache_limit: u32,
    /// The processor whose calls these are: the cache they use.
    processor: usize,
    cache_statistics: CacheStatistics,
}

impl<'a> FrameAllocator<'a> {
    /// Length of the page array that [`new`](Self::new) needs for this map.
    pub fn pages_needed(usable: &[PhysRange]) -> usize {
        SegmentTable::from_ranges(usable).frames()
    }

    /// Builds the allocator with every usable frame free. Extra records past
    /// [`pages_needed`](Self::pages_needed) are left alone.
    ///
    /// # Panics
    /// If `pages` is shorter than `pages_needed(usable)`: the boot code sized it wrong.
    pub fn new(pages: &'a mut [VmPage], usable: &[PhysRange]) -> Self {
        let segments = SegmentTable::from_ranges(usable);
        let needed = segments.frames();
        assert!(pages.len() >= needed, "FrameAllocator::new: page array too small");
        let (pages, _) = pages.split_at_mut(needed);
        let counters = FrameCounters { total: needed, ..FrameCounters::default() };
        let mut allocator = FrameAllocator {
            pages,
            segments,
            free_lists: [NO_LINK; ORDERS],
            non_empty: 0,
            counters,
            slots: SwapSlots::default(),
            reserve: 0,
            reclaiming: false,
            caches: [FrameCache::EMPTY; MAX_PROCESSORS],
            cache_limit: 0,
            processor: 0,
            cache_statistics: CacheStatistics::default(),
        };
        for index in 0..allocator.segments.segments().len() {
            let segment = allocator.segments.segments()[index];
            allocator.populate(&segment);
        }
        allocator
    }

    /// Writes the records of one segment and frees it as maximal aligned blocks.
    fn populate(&mut self, segment: &Segment) {
        for pfn in segment.start..segment.end {
            self.pages[segment.index(pfn)] = VmPage::reserved(pfn as u32);
        }
        let mut pfn = segment.start;
        while pfn < segment.end {
            let fits = (segment.end - pfn).ilog2();
            let order = pfn.trailing_zeros().min(fits).min(MAX_ORDER);
            self.insert_free_block(segment.index(pfn), order);
            pfn += 1 << order;
        }
    }

    /// Allocates one frame with a reference count of one.
    pub fn alloc(&mut self) -> Result<Pfn, VmError> {
        self.alloc_contiguous(0)
    }

    /// Allocates one frame and has `zero` clear it before returning it. The caller
    /// supplies the clearing because only the MMU layer can reach physical memory.
    pub fn alloc_zeroed(&mut self, zero: impl FnOnce(Pfn)) -> Result<Pfn, VmError> {
        let pfn = self.alloc()?;
        zero(pfn);
        Ok(pfn)
    }

    /// Allocates `2^order` contiguous frames aligned to `2^order` frames; each has
    /// a reference count of one and may later be freed alone or with the block.
    /// Fails with `InvalidArgument` if `order > MAX_ORDER`.
    pub fn alloc_contiguous(&mut self, order: u32) -> Result<Pfn, VmError> {
        if order > MAX_ORDER {
            return Err(VmError::InvalidArgument);
        }
        let floor = if self.reclaiming { 0 } else { self.reserve };
        if self.counters.free < floor + (1 << order) {
            return Err(VmError::OutOfMemory);
        }
        let cached = if order == 0 { self.take_cached() } else { None };
        let index = match cached.or_else(|| self.take_block(order)) {
            Some(index) => index,
            None if self.drain_caches() > 0 => {
                self.take_block(order).ok_or(VmError::OutOfMemory)?
            }
            None => return Err(VmError::OutOfMemory),
        };
        for page in &mut self.pages[index..index + (1 << order)] {
            page.set_state(FrameState::Allocated);
            page.set_ref_count(1);
            page.set_flags(PageFlags::empty());
            page.set_pin_count(0);
            page.set_swap_copy(None);
        }
        self.counters.free -= 1 << order;
        self.counters.allocated += 1 << order;
        Ok(self.pages[index].pfn())
    }

    /// Takes a block of `order` off the free lists, splitting a larger one if
    /// need be, and returns its first record's index (its records still say
    /// free); `None` if the lists have none.
    fn take_block(&mut self, order: u32) -> Option<usize> {
        let candidates = self.non_empty & !((1 << order) - 1);
        if candidates == 0 {
            return None;
        }
        let mut found = candidates.trailing_zeros();
        let index = self.free_lists[found as usize] as usize;
        self.unlink(index, found);
        while found > order {
            found -= 1;
            self.push(index + (1 << found), found);
        }
        Some(index)
    }

    /// Frees one frame whose reference count is exactly one and that is not
    /// pinned. Anything else (free, shared, pinned, unknown) is `BadFrame`.
    pub fn free(&mut self, pfn: Pfn) -> Result<(), VmError> {
        self.free_contiguous(pfn, 0)
    }

    /// Frees the `2^order` frames starting at `first`, each of which must be
    /// allocated with a reference count of one and no pins (`BadFrame`
    /// otherwise, also if a frame is not managed). The frames need not have come
    /// from one `alloc_contiguous`. A misaligned `first` or an order above
    /// [`MAX_ORDER`] is `InvalidArgument`. On error nothing is freed.
    pub fn free_contiguous(&mut self, first: Pfn, order: u32) -> Result<(), VmError> {
        if order > MAX_ORDER || first.0 & ((1 << order) - 1) != 0 {
            return Err(VmError::InvalidArgument);
        }
        let segment = *self.segments.find(first.0).ok_or(VmError::BadFrame)?;
        if !segment.holds(first.0, 1 << order) {
            return Err(VmError::BadFrame);
        }
        let index = segment.index(first.0);
        let block = &self.pages[index..index + (1 << order)];
        if !block.iter().all(is_sole_unpinned_owner) {
            return Err(VmError::BadFrame);
        }
        self.release_block(&segment, first.0, order);
        Ok(())
    }

    /// Adds one copy-on-write sharer to an allocated frame and returns the new
    /// count. `BadFrame` if the frame is not allocated; `OutOfMemory` if the count
    /// is already at `u16::MAX` (the caller can copy the page instead).
    pub fn add_ref(&mut self, pfn: Pfn) -> Result<u16, VmError> {
        let page = self.allocated_mut(pfn)?;
        let count = page.ref_count().checked_add(1).ok_or(VmError::OutOfMemory)?;
        page.set_ref_count(count);
        Ok(count)
    }

    /// Drops one reference. When it was the last one the frame is freed and the
    /// result is `true`. `BadFrame` if the frame is not allocated, or if this is the
    /// last reference of a pinned frame (then nothing changes).
    pub fn release(&mut self, pfn: Pfn) -> Result<bool, VmError> {
        let page = self.allocated_mut(pfn)?;
        match page.ref_count() {
            1 => self.free(pfn).map(|()| true),
            count => {
                page.set_ref_count(count - 1);
                Ok(false)
            }
        }
    }

    /// Keeps `frames` free frames for the reclaim path: other allocations fail
    /// once only that many are left, so that reclaim (which may need frames to
    /// store what it evicts, or page-table pages) always has some.
    pub fn set_reclaim_reserve(&mut self, frames: usize) {
        self.reserve = frames;
    }

    /// The frames kept for the reclaim path.
    pub fn reclaim_reserve(&self) -> usize {
        self.reserve
    }

    /// Lets allocations take the reserve (while `reclaiming`), or not.
    pub fn set_reclaiming(&mut self, reclaiming: bool) {
        self.reclaiming = reclaiming;
    }

    /// The swap slots and their holders.
    pub fn slots(&self) -> &SwapSlots {
        &self.slots
    }

    /// The swap slots, to attach devices and hand out slots.
    pub fn slots_mut(&mut self) -> &mut SwapSlots {
        &mut self.slots
    }

    /// The slot holding a clean copy of the allocated frame `pfn`, if any.
    pub fn swap_copy(&self, pfn: Pfn) -> Option<u32> {
        self.page(pfn).and_then(VmPage::swap_copy)
    }

    /// Records that `pfn` (allocated, with no copy yet) holds a clean copy of
    /// `slot`, which it then holds.
    pub fn set_swap_copy(&mut self, pfn: Pfn, slot: u32) -> Result<(), VmError> {
        let page = self.allocated_mut(pfn)?;
        if page.swap_copy().is_some() {
            return Err(VmError::BadFrame);
        }
        self.slots.hold_cache(slot)?;
        self.allocated_mut(pfn)?.set_swap_copy(Some(slot));
        Ok(())
    }

    /// Forgets the clean copy `pfn` had (it is about to be written, or was).
    pub fn forget_swap_copy(&mut self, pfn: Pfn) {
        if let Ok(page) = self.allocated_mut(pfn)
            && let Some(slot) = page.swap_copy()
        {
            page.set_swap_copy(None);
            self.slots.drop_cache(slot);
        }
    }

    /// Reference count of a frame; zero if it is free, reserved or unknown.
    pub fn ref_count(&self, pfn: Pfn) -> u16 {
        self.page(pfn).map_or(0, VmPage::ref_count)
    }

    /// Flags of a frame; empty if it is unknown.
    pub fn flags(&self, pfn: Pfn) -> PageFlags {
        self.page(pfn).map_or(PageFlags::empty(), VmPage::flags)
    }

    /// Sets `flags` on an allocated frame. `PINNED` is ignored (use [`pin`](Self::pin)),
    /// and so is a frame that is not allocated: flags are cleared when it is.
    pub fn set_flags(&mut self, pfn: Pfn, flags: PageFlags) {
        if let Ok(page) = self.allocated_mut(pfn) {
            page.set_flags(page.flags() | (flags - PageFlags::PINNED));
        }
    }

    /// Clears `flags` on an allocated frame, with the same exceptions as
    /// [`set_flags`](Self::set_flags).
    pub fn clear_flags(&mut self, pfn: Pfn, flags: PageFlags) {
        if let Ok(page) = self.allocated_mut(pfn) {
            page.set_flags(page.flags() - (flags - PageFlags::PINNED));
        }
    }

    /// Pins an allocated frame once more; pins nest. `BadFrame` if the frame is not
    /// allocated.
    pub fn pin(&mut self, pfn: Pfn) -> Result<(), VmError> {
        let page = self.allocated_mut(pfn)?;
        let pins = page.pin_count().checked_add(1).ok_or(VmError::OutOfMemory)?;
        page.set_pin_count(pins);
        page.set_flags(page.flags() | PageFlags::PINNED);
        if pins == 1 {
            self.counters.pinned += 1;
        }
        Ok(())
    }

    /// Removes one pin. `BadFrame` if the frame is not allocated or not pinned.
    pub fn unpin(&mut self, pfn: Pfn) -> Result<(), VmError> {
        let page = self.allocated_mut(pfn)?;
        let pins = page.pin_count().checked_sub(1).ok_or(VmError::BadFrame)?;
        page.set_pin_count(pins);
        if pins == 0 {
            page.set_flags(page.flags() - PageFlags::PINNED);
            self.counters.pinned -= 1;
        }
        Ok(())
    }

    /// Takes a free frame out of circulation for good (for example one the boot
    /// code already uses). `BadFrame` if it is not free or not managed.
    pub fn reserve(&mut self, pfn: Pfn) -> Result<(), VmError> {
        let segment = *self.segments.find(pfn.0).ok_or(VmError::BadFrame)?;
        if self.pages[segment.index(pfn.0)].state() == Some(FrameState::Cached) {
            self.drain_caches();
        }
        let (head, order) = self.free_block_of(&segment, pfn.0).ok_or(VmError::BadFrame)?;
        self.unlink(segment.index(head), order);
        let mut head = head;
        for half in (0..order).rev() {
            let upper = head + (1 << half);
            let (keep, spare) = if pfn.0 >= upper { (upper, head) } else { (head, upper) };
            self.push(segment.index(spare), half);
            head = keep;
        }
        self.pages[segment.index(pfn.0)].set_state(FrameState::Reserved);
        self.counters.free -= 1;
        self.counters.reserved += 1;
        Ok(())
    }

    /// The frame counters.
    pub fn counters(&self) -> FrameCounters {
        self.counters
    }

    /// Whether the allocator manages frame `pfn`.
    pub fn contains(&self, pfn: Pfn) -> bool {
        self.segments.find(pfn.0).is_some()
    }

    /// The record of a managed frame.
    pub fn page(&self, pfn: Pfn) -> Option<&VmPage> {
        let segment = self.segments.find(pfn.0)?;
        Some(&self.pages[segment.index(pfn.0)])
    }

    /// The record of an allocated frame, or `BadFrame`.
    fn allocated_mut(&mut self, pfn: Pfn) -> Result<&mut VmPage, VmError> {
        let segment = self.segments.find(pfn.0).ok_or(VmError::BadFrame)?;
        let page = &mut self.pages[segment.index(pfn.0)];
        match page.state() {
            Some(FrameState::Allocated) => Ok(page),
            _ => Err(VmError::BadFrame),
        }
    }

    /// The free block (first frame, order) that holds free frame `pfn`.
    fn free_block_of(&self, segment: &Segment, pfn: u64) -> Option<(u64, u32)> {
        (0..=MAX_ORDER).find_map(|order| {
            let head = pfn & !((1 << order) - 1);
            let found =
                segment.holds(head, 1 << order) && self.is_free_head(segment.index(head), order);
            found.then_some((head, order))
        })
    }

    /// Whether record `index` heads a free block of `order`.
    fn is_free_head(&self, index: usize, order: u32) -> bool {
        self.pages[index].state() == Some(FrameState::FreeHead { order: order as u8 })
    }

    /// Returns a validated allocated block to the free lists, merging it with
    /// free buddies as far as the segment and [`MAX_ORDER`] allow; a single
    /// frame goes to the running processor's cache instead, if caches are on.
    fn release_block(&mut self, segment: &Segment, first: u64, order: u32) {
        let index = segment.index(first);
        for page in &mut self.pages[index..index + (1 << order)] {
            if let Some(slot) = page.swap_copy() {
                self.slots.drop_cache(slot);
            }
            page.set_ref_count(0);
            page.set_flags(PageFlags::empty());
            page.set_state(FrameState::FreeTail);
        }
        self.counters.free += 1 << order;
        self.counters.allocated -= 1 << order;
        if order == 0 && self.cache_freed(index) {
            return;
        }
        self.merge_free(segment, first, order);
    }

    /// Puts the free block of `order` at `first` (records cleared, counted
    /// free) on the free lists, merged with its free buddies.
    fn merge_free(&mut self, segment: &Segment, first: u64, order: u32) {
        let (mut head, mut order) = (first, order);
        while order < MAX_ORDER {
            let buddy = head ^ (1 << order);
            if !segment.holds(buddy, 1 << order) || !self.is_free_head(segment.index(buddy), order)
            {
                break;
            }
            self.unlink(segment.index(buddy), order);
            self.pages[segment.index(head.max(buddy))].set_state(FrameState::FreeTail);
            head = head.min(buddy);
            order += 1;
        }
        self.push(segment.index(head), order);
    }

    /// Marks a fresh block free: its first record a head, the rest tails.
    fn insert_free_block(&mut self, index: usize, order: u32) {
        for page in &mut self.pages[index + 1..index + (1 << order)] {
            page.set_state(FrameState::FreeTail);
        }
        self.push(index, order);
        self.counters.free += 1 << order;
    }

    /// Makes record `index` the head of a free block and puts it on list `order`.
    fn push(&mut self, index: usize, order: u32) {
        let old_head = self.free_lists[order as usize];
        let page = &mut self.pages[index];
        page.set_state(FrameState::FreeHead { order: order as u8 });
        page.set_links(NO_LINK, old_head);
        if old_head != NO_LINK {
            self.pages[old_head as usize].set_previous(index as u32);
        }
        self.free_lists[order as usize] = index as u32;
        self.non_empty |= 1 << order;
    }

    /// Takes record `index` off free list `order`.
    fn unlink(&mut self, index: usize, order: u32) {
        let (previous, next) = (self.pages[index].previous(), self.pages[index].next());
        if previous == NO_LINK {
            self.free_lists[order as usize] = next;
        } else {
            self.pages[previous as usize].set_next(next);
        }
        if next != NO_LINK {
            self.pages[next as usize].set_previous(previous);
        }
        if self.free_lists[order as usize] == NO_LINK {
            self.non_empty &= !(1 << order);
        }
    }
}

/// Whether a record may be freed: allocated, one reference, no pins.
fn is_sole_unpinned_owner(page: &VmPage) -> bool {
    page.state() == Some(FrameState::Allocated) && page.ref_count() == 1 && page.pin_count() == 0
}

#[cfg(test)]
mod tests;
