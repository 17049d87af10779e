//! Processor frame caches: a short stack of free frames per processor, in
//! front of the buddy lists (Linux's per-CPU page lists, Bonwick's magazines).
//!
//! Most frames come and go one at a time: a fault takes one, an exit gives
//! back a process's frames one by one. With caches on
//! ([`FrameAllocator::set_frame_caches`]), a single frame is taken from the
//! running processor's cache ([`FrameAllocator::set_processor`]) and given
//! back to it. The buddy lists are touched once per batch: an empty cache is
//! refilled with `batch` frames, and a cache grown past its limit gives the
//! `batch` frames it was given longest ago back to the lists (the cold end:
//! the frames given back last are the likeliest to be in the processor's
//! data cache). A cache is a list linked both ways through its frames' own
//! records, as the free lists are, so it costs no memory of its own but its
//! ends and count, and a spill takes its batch from the cold end without a
//! walk.
//!
//! # What stays true
//! - A cached frame is free: it counts in [`FrameCounters::free`], and nothing
//!   fails for want of it. A single-frame allocation that finds its cache and
//!   the lists empty, a block allocation the lists cannot serve, and a
//!   [`reserve`](FrameAllocator::reserve) of a cached frame first give every
//!   cache back ([`drain_caches`](FrameAllocator::drain_caches)), so the
//!   allocator runs out exactly when it did without caches, and free buddies
//!   are still merged whenever a block is asked for.
//! - Caching changes which frame a call gets, never whether it gets one.
//!
//! # Locking
//! A cache is changed only for its own processor's calls. Today every call
//! runs under the one lock that guards the allocator (`&mut self`: the VM's),
//! so what a cache saves is work on the shared lists, not a lock; it is laid
//! out so that once frames have a lock of their own, a processor's cache is
//! the part that needs none.

use super::{FrameAllocator, MAX_ORDER, segments::Segment};
use crate::vm::page::{FrameState, NO_LINK, PageFlags};

/// Processors with a cache of their own; processor `n` uses cache
/// `n % MAX_PROCESSORS` (sharing one is still correct, only slower).
pub const MAX_PROCESSORS: usize = 64;

/// The largest cache [`FrameAllocator::set_frame_caches`] accepts.
pub const MAX_CACHE_LIMIT: u32 = 1024;

/// One processor's cache: a list linked both ways through its frames'
/// records (`next` towards the tail, `previous` towards the head).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FrameCache {
    /// Index of the frame given back last (the hot end), or `NO_LINK`.
    pub(super) head: u32,
    /// Index of the frame given back longest ago (the cold end), or `NO_LINK`.
    pub(super) tail: u32,
    /// Frames in the list.
    pub(super) count: u32,
}

impl FrameCache {
    pub(super) const EMPTY: FrameCache = FrameCache { head: NO_LINK, tail: NO_LINK, count: 0 };
}

/// What the caches hold and have done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStatistics {
    /// Frames in all caches now (counted as free).
    pub cached: usize,
    /// Single-frame allocations served from a cache.
    pub hits: u64,
    /// Single-frame allocations that had to go to the lists (caches off, or
    /// a cache the lists could not refill).
    pub misses: u64,
    /// Frees kept in a cache.
    pub frees: u64,
    /// Times a cache was refilled from the lists.
    pub refills: u64,
    /// Times a cache gave a batch back to the lists.
    pub spills: u64,
    /// Times every cache was given back for want of frames or of a block.
    pub drains: u64,
}

impl core::fmt::Display for CacheStatistics {
    /// The figures in words, for the log and the monitor.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} frames held; {} allocations from them, {} not; {} frees to them; \
             {} refills, {} spills, {} drains",
            self.cached, self.hits, self.misses, self.frees, self.refills, self.spills, self.drains
        )
    }
}

impl FrameAllocator<'_> {
    /// Turns processor caches on, each holding at most `limit` frames (clamped
    /// to [`MAX_CACHE_LIMIT`]) and moving half that many at a time, or off
    /// (`limit` 0, which gives every cached frame back).
    pub fn set_frame_caches(&mut self, limit: u32) {
        let limit = limit.min(MAX_CACHE_LIMIT);
        if limit < self.cache_limit {
            self.drain_caches();
        }
        self.cache_limit = limit;
    }

    /// The limit set by [`set_frame_caches`](Self::set_frame_caches); 0 if off.
    pub fn frame_cache_limit(&self) -> u32 {
        self.cache_limit
    }

    /// Names the processor whose calls follow: single frames come from its
    /// cache and go back to it.
    pub fn set_processor(&mut self, processor: usize) {
        self.processor = processor % MAX_PROCESSORS;
    }

    /// What the caches hold and have done.
    pub fn cache_statistics(&self) -> CacheStatistics {
        let cached = self.caches.iter().map(|cache| cache.count as usize).sum();
        CacheStatistics { cached, ..self.cache_statistics }
    }

    /// Gives every cached frame back to the lists (merging buddies); returns
    /// how many there were.
    pub fn drain_caches(&mut self) -> usize {
        let mut drained = 0;
        for processor in 0..MAX_PROCESSORS {
            let cache = core::mem::replace(&mut self.caches[processor], FrameCache::EMPTY);
            self.give_back_list(cache.head);
            drained += cache.count as usize;
        }
        if drained > 0 {
            self.cache_statistics.drains += 1;
        }
        drained
    }

    /// Frames a cache moves to or from the lists at a time.
    fn batch(&self) -> u32 {
        (self.cache_limit / 2).max(1)
    }

    /// A free frame from the running processor's cache, refilled from the
    /// lists if it is empty; `None` if caches are off or none could be had.
    /// The frame's record is still `Cached`: the caller hands it out.
    pub(super) fn take_cached(&mut self) -> Option<usize> {
        if self.cache_limit == 0 {
            self.cache_statistics.misses += 1;
            return None;
        }
        let processor = self.processor;
        if self.caches[processor].count == 0 {
            self.refill(processor);
        }
        let cache = self.caches[processor];
        if cache.count == 0 {
            self.cache_statistics.misses += 1;
            return None;
        }
        let index = cache.head as usize;
        let next = self.pages[index].next();
        if next == NO_LINK {
            self.caches[processor] = FrameCache::EMPTY;
        } else {
            self.pages[next as usize].set_previous(NO_LINK);
            self.caches[processor] = FrameCache { head: next, count: cache.count - 1, ..cache };
        }
        self.cache_statistics.hits += 1;
        Some(index)
    }

    /// Keeps a frame just freed (record cleared, counted free) in the
    /// running processor's cache, if caches are on. Past the limit, the
    /// frames freed longest ago go back to the lists.
    pub(super) fn cache_freed(&mut self, index: usize) -> bool {
        if self.cache_limit == 0 {
            return false;
        }
        let processor = self.processor;
        self.push_cached(processor, index);
        self.cache_statistics.frees += 1;
        if self.caches[processor].count > self.cache_limit {
            self.spill(processor);
        }
        true
    }

    /// Moves up to a batch of single frames from the lists to an empty
    /// cache, as few blocks as the lists allow (one block of 16 for a batch
    /// of 16, if there is one), appending each frame at the tail: the cache
    /// hands the frames out in ascending order, as the lists would
    /// (consecutive pages of a process get consecutive frames).
    fn refill(&mut self, processor: usize) {
        let batch = self.batch();
        let mut moved = 0;
        while moved < batch {
            let largest = (batch - moved).ilog2().min(MAX_ORDER);
            let Some((index, order)) =
                (0..=largest).rev().find_map(|order| Some((self.take_block(order)?, order)))
            else {
                break;
            };
            for frame in index..index + (1 << order) {
                self.append_cached(processor, frame);
            }
            moved += 1 << order;
        }
        if moved > 0 {
            self.cache_statistics.refills += 1;
        }
    }

    /// Gives the oldest batch of a cache back to the lists, from its tail.
    fn spill(&mut self, processor: usize) {
        for _ in 0..self.batch() {
            let cache = self.caches[processor];
            if cache.count == 0 {
                break;
            }
            let index = cache.tail as usize;
            let previous = self.pages[index].previous();
            if previous == NO_LINK {
                self.caches[processor] = FrameCache::EMPTY;
            } else {
                self.pages[previous as usize].set_next(NO_LINK);
                self.caches[processor] =
                    FrameCache { tail: previous, count: cache.count - 1, ..cache };
            }
            self.give_back(index);
        }
        self.cache_statistics.spills += 1;
    }

    /// Puts a free frame's record at the head of a cache.
    fn push_cached(&mut self, processor: usize, index: usize) {
        let cache = self.caches[processor];
        self.mark_cached(index, NO_LINK, cache.head);
        let tail = if cache.head == NO_LINK {
            index as u32
        } else {
            self.pages[cache.head as usize].set_previous(index as u32);
            cache.tail
        };
        self.caches[processor] = FrameCache { head: index as u32, tail, count: cache.count + 1 };
    }

    /// Puts a free frame's record at the tail of a cache.
    fn append_cached(&mut self, processor: usize, index: usize) {
        let cache = self.caches[processor];
        self.mark_cached(index, cache.tail, NO_LINK);
        let head = if cache.tail == NO_LINK {
            index as u32
        } else {
            self.pages[cache.tail as usize].set_next(index as u32);
            cache.head
        };
        self.caches[processor] = FrameCache { head, tail: index as u32, count: cache.count + 1 };
    }

    /// Makes a free frame's record a cached one, linked between `previous`
    /// and `next`.
    fn mark_cached(&mut self, index: usize, previous: u32, next: u32) {
        let page = &mut self.pages[index];
        page.set_state(FrameState::Cached);
        page.set_ref_count(0);
        page.set_flags(PageFlags::empty());
        page.set_links(previous, next);
    }

    /// Returns every frame of a cache list, from `head`, to the buddy lists.
    fn give_back_list(&mut self, mut head: u32) {
        while head != NO_LINK {
            let index = head as usize;
            head = self.pages[index].next();
            self.give_back(index);
        }
    }

    /// Returns one frame, taken off its cache, to the buddy lists.
    fn give_back(&mut self, index: usize) {
        let pfn = self.pages[index].pfn().0;
        let segment: Segment =
            *self.segments.find(pfn).expect("frame cache: a cached frame is managed");
        self.merge_free(&segment, pfn, 0);
    }
}
