//! The accounting check: proves the page array, free lists and counters agree.
//!
//! [`FrameAllocator::check`] walks every record, every free list and every
//! processor cache once (linear time, no allocation) and shows that each managed
//! frame is in exactly one state: free (inside exactly one block, whose head is
//! on exactly one list, the list of its order; or on exactly one processor's
//! cache), allocated (pinned or not) or reserved; and that the counters count
//! exactly those frames. Tests call it after every step; the kernel may call it
//! from a debug command.

use super::segments::Segment;
use super::{FrameAllocator, FrameCounters, MAX_ORDER, ORDERS};
use crate::vm::page::{FrameState, NO_LINK, PageFlags, Pfn, VmPage};
use core::fmt;

/// The first inconsistency [`FrameAllocator::check`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountingError {
    /// The record's state byte is not a valid state, or its order is too large.
    CorruptState {
        /// The frame.
        pfn: Pfn,
    },
    /// The record's frame number is not the one its position in the array implies.
    WrongFrame {
        /// Position in the array.
        index: usize,
        /// The frame number the record holds.
        pfn: Pfn,
    },
    /// A free block is misaligned, runs out of its segment, or lacks its tails.
    MalformedBlock {
        /// The block's first frame.
        pfn: Pfn,
    },
    /// A free tail frame that no free block covers.
    OrphanTail {
        /// The frame.
        pfn: Pfn,
    },
    /// A free block's buddy is free with the same order: they should have merged.
    UnmergedBuddies {
        /// The lower block's first frame.
        pfn: Pfn,
    },
    /// A frame's reference count, pin count or flags contradict its state.
    BadCounts {
        /// The frame.
        pfn: Pfn,
    },
    /// A free list has a stray member, a wrong back link or a cycle, or its bit
    /// in the non-empty mask is wrong.
    BrokenList {
        /// The list's order.
        order: u32,
    },
    /// A processor's cache list has a member that is not a cached frame, a
    /// length other than its count, more frames than the limit, or frames
    /// another cache also has; or some cached frame is on no cache.
    BrokenCache {
        /// The cache's processor.
        processor: usize,
    },
    /// A free block of this order is missing from its free list.
    UnlistedBlock {
        /// The block's order.
        order: u32,
    },
    /// A counter differs from the number of frames in its state.
    CounterMismatch {
        /// The counter's name in [`FrameCounters`].
        counter: &'static str,
        /// Its value.
        recorded: usize,
        /// The number of frames found.
        counted: usize,
    },
}

impl fmt::Display for AccountingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountingError::CounterMismatch { counter, recorded, counted } => {
                write!(f, "counter {counter} is {recorded} but {counted} frames were found")
            }
            other => write!(f, "frame accounting broken: {other:?}"),
        }
    }
}

/// What the walk of the array found.
#[derive(Default)]
struct Tally {
    counters: FrameCounters,
    /// Free block heads found, per order.
    heads: [usize; ORDERS],
    /// Frames found in the `Cached` state.
    cached: usize,
}

impl FrameAllocator<'_> {
    /// Checks that every frame is in exactly one state and that the free lists and
    /// counters agree with the records. Returns the first inconsistency found.
    pub fn check(&self) -> Result<(), AccountingError> {
        let mut listed = [0; ORDERS];
        for (order, count) in listed.iter_mut().enumerate() {
            *count = self.check_free_list(order as u32)?;
        }
        let mut tally = Tally::default();
        for segment in self.segments.segments() {
            self.check_segment(segment, &mut tally)?;
        }
        for order in 0..ORDERS {
            if tally.heads[order] != listed[order] {
                return Err(AccountingError::UnlistedBlock { order: order as u32 });
            }
        }
        self.check_caches(tally.cached)?;
        tally.counters.total = self.pages.len();
        compare_counters(&self.counters, &tally.counters)
    }

    /// Walks every processor's cache: each is a list of exactly its count of
    /// cached frames, within the limit, linked both ways from its head to
    /// its tail; no two share a frame (lists linked through one word that
    /// share a frame share their last frame); and together they hold the
    /// `cached` frames the walk of the records found, so every cached frame
    /// is on exactly one.
    fn check_caches(&self, cached: usize) -> Result<(), AccountingError> {
        let mut listed = 0;
        for (processor, cache) in self.caches.iter().enumerate() {
            let broken = AccountingError::BrokenCache { processor };
            if cache.count > self.cache_limit {
                return Err(broken);
            }
            let (mut previous, mut current) = (NO_LINK, cache.head);
            for _ in 0..cache.count {
                let page = self.pages.get(current as usize).ok_or(broken)?;
                if page.state() != Some(FrameState::Cached) || page.previous() != previous {
                    return Err(broken);
                }
                (previous, current) = (current, page.next());
            }
            let others = &self.caches[..processor];
            let shared = cache.count > 0 && others.iter().any(|other| other.tail == cache.tail);
            if current != NO_LINK || previous != cache.tail || shared {
                return Err(broken);
            }
            listed += cache.count as usize;
        }
        if listed != cached {
            return Err(AccountingError::BrokenCache { processor: self.processor });
        }
        Ok(())
    }

    /// Walks free list `order` and returns its length; every member must head a
    /// free block of that order and link back to its predecessor.
    fn check_free_list(&self, order: u32) -> Result<usize, AccountingError> {
        let broken = AccountingError::BrokenList { order };
        let head = self.free_lists[order as usize];
        if (head != NO_LINK) != (self.non_empty & (1 << order) != 0) {
            return Err(broken);
        }
        let (mut previous, mut current, mut length) = (NO_LINK, head, 0);
        while current != NO_LINK {
            let page = self.pages.get(current as usize).ok_or(broken)?;
            length += 1;
            let member = page.state() == Some(FrameState::FreeHead { order: order as u8 });
            if !member || page.previous() != previous || length > self.pages.len() {
                return Err(broken);
            }
            (previous, current) = (current, page.next());
        }
        Ok(length)
    }

    /// Walks the records of one segment, counting frames by state.
    fn check_segment(&self, segment: &Segment, tally: &mut Tally) -> Result<(), AccountingError> {
        let mut pfn = segment.start;
        while pfn < segment.end {
            let page = self.record(segment, pfn)?;
            let frame = Pfn(pfn);
            match page.state() {
                Some(FrameState::FreeHead { order }) => {
                    let order = u32::from(order);
                    self.check_free_block(segment, pfn, order)?;
                    tally.counters.free += 1 << order;
                    tally.heads[order as usize] += 1;
                    pfn += 1 << order;
                    continue;
                }
                Some(FrameState::FreeTail) => {
                    return Err(AccountingError::OrphanTail { pfn: frame });
                }
                Some(FrameState::Allocated) => count_allocated(page, tally)?,
                Some(FrameState::Cached) if is_clean(page) => {
                    tally.counters.free += 1;
                    tally.cached += 1;
                }
                Some(FrameState::Cached) => return Err(AccountingError::BadCounts { pfn: frame }),
                Some(FrameState::Reserved) if is_clean(page) => tally.counters.reserved += 1,
                Some(FrameState::Reserved) => {
                    return Err(AccountingError::BadCounts { pfn: frame });
                }
                None => return Err(AccountingError::CorruptState { pfn: frame }),
            }
            pfn += 1;
        }
        Ok(())
    }

    /// Checks the free block of `order` at `first`: aligned, inside the segment,
    /// clean, made of tails after its head, and not mergeable with its buddy.
    fn check_free_block(
        &self,
        segment: &Segment,
        first: u64,
        order: u32,
    ) -> Result<(), AccountingError> {
        let pfn = Pfn(first);
        if order > MAX_ORDER {
            return Err(AccountingError::CorruptState { pfn });
        }
        if first & ((1 << order) - 1) != 0 || !segment.holds(first, 1 << order) {
            return Err(AccountingError::MalformedBlock { pfn });
        }
        if !is_clean(self.record(segment, first)?) {
            return Err(AccountingError::BadCounts { pfn });
        }
        for tail in first + 1..first + (1 << order) {
            let page = self.record(segment, tail)?;
            if page.state() != Some(FrameState::FreeTail) || !is_clean(page) {
                return Err(AccountingError::MalformedBlock { pfn });
            }
        }
        let buddy = first ^ (1 << order);
        let mergeable = order < MAX_ORDER
            && segment.holds(buddy, 1 << order)
            && self.is_free_head(segment.index(buddy), order);
        if mergeable {
            return Err(AccountingError::UnmergedBuddies { pfn: Pfn(first.min(buddy)) });
        }
        Ok(())
    }

    /// The record of `pfn` in `segment`, checked to describe that frame.
    fn record(&self, segment: &Segment, pfn: u64) -> Result<&VmPage, AccountingError> {
        let index = segment.index(pfn);
        let page = &self.pages[index];
        if page.pfn() != Pfn(pfn) {
            return Err(AccountingError::WrongFrame { index, pfn: page.pfn() });
        }
        Ok(page)
    }
}

/// Counts an allocated frame after checking its reference count and pin flag.
fn count_allocated(page: &VmPage, tally: &mut Tally) -> Result<(), AccountingError> {
    let pinned = page.pin_count() > 0;
    if page.ref_count() == 0 || pinned != page.flags().contains(PageFlags::PINNED) {
        return Err(AccountingError::BadCounts { pfn: page.pfn() });
    }
    tally.counters.allocated += 1;
    tally.counters.pinned += usize::from(pinned);
    Ok(())
}

/// Whether a free or reserved record has no references and no flags.
fn is_clean(page: &VmPage) -> bool {
    page.ref_count() == 0 && page.flags().is_empty()
}

/// Compares each recorded counter with the one counted.
fn compare_counters(
    recorded: &FrameCounters,
    counted: &FrameCounters,
) -> Result<(), AccountingError> {
    let pairs = [
        ("total", recorded.total, counted.total),
        ("free", recorded.free, counted.free),
        ("allocated", recorded.allocated, counted.allocated),
        ("pinned", recorded.pinned, counted.pinned),
        ("reserved", recorded.reserved, counted.reserved),
    ];
    match pairs.into_iter().find(|&(_, recorded, counted)| recorded != counted) {
        Some((counter, recorded, counted)) => {
            Err(AccountingError::CounterMismatch { counter, recorded, counted })
        }
        None => Ok(()),
    }
}
