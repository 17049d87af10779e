//! Host tests of the frame allocator: unit tests here, random sequences checked
//! against a reference model in `properties`.

mod properties;

use super::*;
use alloc::vec;
use alloc::vec::Vec;

/// The byte range covering frames `first..end`.
fn frames(first: u64, end: u64) -> PhysRange {
    PhysRange { start: first * 4096, end: end * 4096 }
}

/// Runs `test` on a fresh allocator over `map`, checking it before and after.
fn with_allocator<R>(map: &[PhysRange], test: impl FnOnce(&mut FrameAllocator<'_>) -> R) -> R {
    let mut pages = vec![VmPage::EMPTY; FrameAllocator::pages_needed(map)];
    let mut allocator = FrameAllocator::new(&mut pages, map);
    assert_eq!(allocator.check(), Ok(()));
    let result = test(&mut allocator);
    assert_eq!(allocator.check(), Ok(()));
    result
}

/// Allocates single frames until the allocator runs out.
fn drain(allocator: &mut FrameAllocator<'_>) -> Vec<Pfn> {
    core::iter::from_fn(|| allocator.alloc().ok()).collect()
}

#[test]
fn empty_map_has_nothing_to_give() {
    with_allocator(&[], |allocator| {
        assert_eq!(allocator.counters(), FrameCounters::default());
        assert_eq!(allocator.alloc(), Err(VmError::OutOfMemory));
        assert_eq!(allocator.free(Pfn(1)), Err(VmError::BadFrame));
    });
}

#[test]
fn frame_zero_is_never_managed() {
    let map = [frames(0, 4)];
    assert_eq!(FrameAllocator::pages_needed(&map), 3);
    with_allocator(&map, |allocator| {
        assert!(!allocator.contains(Pfn(0)));
        let mut handed_out = drain(allocator);
        handed_out.sort();
        assert_eq!(handed_out, [Pfn(1), Pfn(2), Pfn(3)]);
    });
}

#[test]
fn ranges_are_trimmed_to_whole_pages() {
    let map = [PhysRange { start: 0x1001, end: 0x5fff }, PhysRange { start: 0x9000, end: 0x9fff }];
    assert_eq!(FrameAllocator::pages_needed(&map), 3);
    with_allocator(&map, |allocator| {
        assert!(!allocator.contains(Pfn(1)));
        assert!(allocator.contains(Pfn(2)) && allocator.contains(Pfn(4)));
        assert!(!allocator.contains(Pfn(5)) && !allocator.contains(Pfn(9)));
    });
}

#[test]
fn overlapping_unsorted_ranges_are_merged() {
    let map = [frames(20, 30), frames(5, 12), frames(10, 21), frames(40, 41), frames(12, 12)];
    assert_eq!(FrameAllocator::pages_needed(&map), 26);
    with_allocator(&map, |allocator| {
        assert_eq!(allocator.counters().total, 26);
        assert_eq!(drain(allocator).len(), 26);
    });
}

#[test]
fn too_many_ranges_drop_the_smallest() {
    let mut map: Vec<PhysRange> =
        (0..MAX_SEGMENTS as u64).map(|i| frames(10 * i + 1, 10 * i + 3)).collect();
    map.push(frames(2000, 2001));
    map.push(frames(3000, 3100));
    let needed = FrameAllocator::pages_needed(&map);
    // The single frame goes first, then the lowest of the equal two-frame runs.
    assert_eq!(needed, (MAX_SEGMENTS - 1) * 2 + 100);
    with_allocator(&map, |allocator| {
        assert!(allocator.contains(Pfn(3099)) && allocator.contains(Pfn(12)));
        assert!(!allocator.contains(Pfn(2000)) && !allocator.contains(Pfn(1)));
    });
}

#[test]
fn frames_past_sixteen_terabytes_are_ignored() {
    let map = [frames((1 << 32) - 2, (1 << 32) + 5)];
    assert_eq!(FrameAllocator::pages_needed(&map), 2);
}

#[test]
#[should_panic(expected = "FrameAllocator::new: page array too small")]
fn short_page_array_is_a_kernel_bug() {
    let mut pages = vec![VmPage::EMPTY; 2];
    FrameAllocator::new(&mut pages, &[frames(1, 4)]);
}

#[test]
fn exhaustion_is_an_error_and_freeing_restores_everything() {
    with_allocator(&[frames(1, 100), frames(300, 333)], |allocator| {
        let initial = allocator.counters();
        let taken = drain(allocator);
        assert_eq!(taken.len(), 132);
        assert_eq!(allocator.alloc(), Err(VmError::OutOfMemory));
        assert_eq!(allocator.alloc_contiguous(0), Err(VmError::OutOfMemory));
        for pfn in taken {
            allocator.free(pfn).unwrap();
        }
        assert_eq!(allocator.counters(), initial);
    });
}

#[test]
fn double_free_is_bad_frame() {
    with_allocator(&[frames(1, 16)], |allocator| {
        let pfn = allocator.alloc().unwrap();
        allocator.free(pfn).unwrap();
        assert_eq!(allocator.free(pfn), Err(VmError::BadFrame));
        assert_eq!(allocator.release(pfn), Err(VmError::BadFrame));
        assert_eq!(allocator.free(Pfn(500)), Err(VmError::BadFrame));
    });
}

#[test]
fn shared_frame_is_freed_by_its_last_release() {
    with_allocator(&[frames(1, 16)], |allocator| {
        let pfn = allocator.alloc().unwrap();
        assert_eq!(allocator.add_ref(pfn), Ok(2));
        assert_eq!(allocator.free(pfn), Err(VmError::BadFrame));
        assert_eq!(allocator.release(pfn), Ok(false));
        assert_eq!(allocator.ref_count(pfn), 1);
        assert_eq!(allocator.release(pfn), Ok(true));
        assert_eq!(allocator.ref_count(pfn), 0);
        assert_eq!(allocator.add_ref(pfn), Err(VmError::BadFrame));
    });
}

#[test]
fn reference_count_limit_is_an_error() {
    with_allocator(&[frames(1, 2)], |allocator| {
        let pfn = allocator.alloc().unwrap();
        for _ in 1..u16::MAX {
            allocator.add_ref(pfn).unwrap();
        }
        assert_eq!(allocator.add_ref(pfn), Err(VmError::OutOfMemory));
        assert_eq!(allocator.ref_count(pfn), u16::MAX);
    });
}

#[test]
fn pins_nest_and_block_freeing() {
    with_allocator(&[frames(1, 16)], |allocator| {
        let pfn = allocator.alloc().unwrap();
        allocator.pin(pfn).unwrap();
        allocator.pin(pfn).unwrap();
        assert_eq!(allocator.counters().pinned, 1);
        assert!(allocator.flags(pfn).contains(PageFlags::PINNED));
        assert_eq!(allocator.free(pfn), Err(VmError::BadFrame));
        assert_eq!(allocator.release(pfn), Err(VmError::BadFrame));
        allocator.unpin(pfn).unwrap();
        assert_eq!(allocator.free(pfn), Err(VmError::BadFrame));
        allocator.unpin(pfn).unwrap();
        assert_eq!(allocator.unpin(pfn), Err(VmError::BadFrame));
        assert_eq!(allocator.counters().pinned, 0);
        allocator.free(pfn).unwrap();
        assert_eq!(allocator.pin(pfn), Err(VmError::BadFrame));
    });
}

#[test]
fn flags_are_per_allocation_and_pinned_is_not_settable() {
    with_allocator(&[frames(1, 2)], |allocator| {
        let pfn = allocator.alloc().unwrap();
        allocator.set_flags(pfn, PageFlags::DIRTY | PageFlags::REFERENCED | PageFlags::PINNED);
        assert_eq!(allocator.flags(pfn), PageFlags::DIRTY | PageFlags::REFERENCED);
        allocator.clear_flags(pfn, PageFlags::REFERENCED);
        assert_eq!(allocator.flags(pfn), PageFlags::DIRTY);
        allocator.free(pfn).unwrap();
        allocator.set_flags(pfn, PageFlags::DIRTY);
        assert_eq!(allocator.flags(pfn), PageFlags::empty());
        assert_eq!(allocator.alloc(), Ok(pfn));
        assert_eq!(allocator.flags(pfn), PageFlags::empty());
    });
}

#[test]
fn zeroing_runs_only_on_success() {
    with_allocator(&[frames(7, 8)], |allocator| {
        let mut zeroed = None;
        let pfn = allocator.alloc_zeroed(|pfn| zeroed = Some(pfn)).unwrap();
        assert_eq!(zeroed, Some(pfn));
        let result = allocator.alloc_zeroed(|_| panic!("zeroing without a frame"));
        assert_eq!(result, Err(VmError::OutOfMemory));
    });
}

#[test]
fn contiguous_blocks_are_aligned() {
    with_allocator(&[PhysRange { start: 0x3000, end: 0x80_0000 }], |allocator| {
        for order in [0, 3, 1, 10, 5, 2] {
            let first = allocator.alloc_contiguous(order).unwrap();
            assert_eq!(first.0 % (1 << order), 0, "order {order}");
            for pfn in first.0..first.0 + (1 << order) {
                assert_eq!(allocator.ref_count(Pfn(pfn)), 1);
            }
        }
        assert_eq!(allocator.alloc_contiguous(MAX_ORDER + 1), Err(VmError::InvalidArgument));
    });
}

#[test]
fn blocks_never_straddle_a_hole() {
    // Frames 1..8 and 9..17: pfn 8 is a hole, so no aligned block of eight exists.
    with_allocator(&[frames(1, 8), frames(9, 17)], |allocator| {
        assert_eq!(allocator.alloc_contiguous(3), Err(VmError::OutOfMemory));
        assert_eq!(allocator.alloc_contiguous(2).map(|pfn| pfn.0 % 4), Ok(0));
        assert_eq!(allocator.alloc_contiguous(2).map(|pfn| pfn.0 % 4), Ok(0));
        assert_eq!(allocator.alloc_contiguous(2), Err(VmError::OutOfMemory));
    });
}

#[test]
fn contiguous_free_checks_every_frame() {
    with_allocator(&[frames(1, 64)], |allocator| {
        let first = allocator.alloc_contiguous(4).unwrap();
        assert_eq!(allocator.free_contiguous(Pfn(first.0 + 1), 2), Err(VmError::InvalidArgument));
        assert_eq!(allocator.free_contiguous(first, MAX_ORDER + 1), Err(VmError::InvalidArgument));
        allocator.add_ref(Pfn(first.0 + 5)).unwrap();
        assert_eq!(allocator.free_contiguous(first, 4), Err(VmError::BadFrame));
        assert_eq!(allocator.release(Pfn(first.0 + 5)), Ok(false));
        allocator.free(Pfn(first.0 + 3)).unwrap();
        assert_eq!(allocator.free_contiguous(first, 4), Err(VmError::BadFrame));
        allocator.free_contiguous(first, 1).unwrap();
        allocator.free(Pfn(first.0 + 2)).unwrap();
        allocator.free_contiguous(Pfn(first.0 + 4), 2).unwrap();
        allocator.free_contiguous(Pfn(first.0 + 8), 3).unwrap();
        assert_eq!(allocator.counters().allocated, 0);
        assert_eq!(allocator.alloc_contiguous(5).map(|pfn| pfn.0), Ok(32));
    });
}

#[test]
fn reserve_splits_a_free_block() {
    with_allocator(&[frames(1, 40)], |allocator| {
        allocator.reserve(Pfn(21)).unwrap();
        assert_eq!(allocator.reserve(Pfn(21)), Err(VmError::BadFrame));
        assert_eq!(allocator.reserve(Pfn(0)), Err(VmError::BadFrame));
        assert_eq!(allocator.check(), Ok(()));
        let counters = allocator.counters();
        assert_eq!((counters.free, counters.reserved), (38, 1));
        let taken = drain(allocator);
        assert!(!taken.contains(&Pfn(21)));
        assert_eq!(allocator.free(Pfn(21)), Err(VmError::BadFrame));
    });
}

#[test]
fn unknown_frames_read_as_empty() {
    with_allocator(&[frames(1, 4)], |allocator| {
        assert_eq!(allocator.ref_count(Pfn(99)), 0);
        assert_eq!(allocator.flags(Pfn(99)), PageFlags::empty());
        assert!(allocator.page(Pfn(99)).is_none());
        assert_eq!(allocator.pin(Pfn(99)), Err(VmError::BadFrame));
        assert_eq!(allocator.add_ref(Pfn(99)), Err(VmError::BadFrame));
    });
}

#[test]
fn check_catches_corruption() {
    let map = [frames(1, 32)];
    let mut pages = vec![VmPage::EMPTY; FrameAllocator::pages_needed(&map)];
    let mut allocator = FrameAllocator::new(&mut pages, &map);
    let pfn = allocator.alloc().unwrap();
    allocator.counters.free += 1;
    assert!(matches!(
        allocator.check(),
        Err(AccountingError::CounterMismatch { counter: "free", .. })
    ));
    allocator.counters.free -= 1;
    let index = allocator.segments.find(pfn.0).unwrap().index(pfn.0);
    allocator.pages[index].set_ref_count(0);
    assert_eq!(allocator.check(), Err(AccountingError::BadCounts { pfn }));
    allocator.pages[index].set_ref_count(1);
    allocator.pages[index].set_state(FrameState::FreeTail);
    assert_eq!(allocator.check(), Err(AccountingError::OrphanTail { pfn }));
    allocator.pages[index].set_state(FrameState::FreeHead { order: 0 });
    assert!(matches!(
        allocator.check(),
        Err(AccountingError::BadCounts { .. } | AccountingError::UnlistedBlock { .. })
    ));
}

#[test]
fn check_catches_unlisted_block() {
    let map = [frames(1, 32)];
    let mut pages = vec![VmPage::EMPTY; FrameAllocator::pages_needed(&map)];
    let mut allocator = FrameAllocator::new(&mut pages, &map);
    let head = allocator.free_lists[4];
    allocator.free_lists[4] = allocator.pages[head as usize].next();
    allocator.non_empty &= !(1 << 4);
    assert_eq!(allocator.check(), Err(AccountingError::UnlistedBlock { order: 4 }));
}

#[test]
fn a_gigabyte_drains_and_refills() {
    with_allocator(&[PhysRange { start: 0, end: 1 << 30 }], |allocator| {
        let initial = allocator.counters();
        let taken = drain(allocator);
        assert_eq!(taken.len(), (1 << 18) - 1);
        for pfn in taken.into_iter().rev() {
            allocator.free(pfn).unwrap();
        }
        assert_eq!(allocator.counters(), initial);
        assert_eq!(allocator.alloc_contiguous(MAX_ORDER).map(|pfn| pfn.0 % 1024), Ok(0));
    });
}

#[test]
fn a_processor_gets_back_the_frame_it_freed_last() {
    with_allocator(&[frames(1, 256)], |allocator| {
        allocator.set_frame_caches(8);
        let first = allocator.alloc().unwrap();
        let second = allocator.alloc().unwrap();
        allocator.free(first).unwrap();
        allocator.set_processor(1);
        let elsewhere = allocator.alloc().unwrap();
        assert_ne!(elsewhere, first, "processor 1 took a frame from processor 0's cache");
        allocator.set_processor(0);
        assert_eq!(allocator.alloc(), Ok(first));
        assert_eq!(allocator.check(), Ok(()));
        for pfn in [first, second, elsewhere] {
            allocator.free(pfn).unwrap();
        }
    });
}

#[test]
fn the_lists_are_touched_once_per_batch() {
    with_allocator(&[frames(1, 256)], |allocator| {
        allocator.set_frame_caches(8);
        for _ in 0..100 {
            let pfn = allocator.alloc().unwrap();
            allocator.free(pfn).unwrap();
        }
        let statistics = allocator.cache_statistics();
        assert_eq!((statistics.hits, statistics.misses, statistics.frees), (100, 0, 100));
        assert_eq!((statistics.refills, statistics.spills), (1, 0));
        assert_eq!(statistics.cached, 4, "a refill moves half the limit");
        let taken: Vec<Pfn> = (0..20).map(|_| allocator.alloc().unwrap()).collect();
        for pfn in taken {
            allocator.free(pfn).unwrap();
        }
        let statistics = allocator.cache_statistics();
        // 16 frames past the cached 4 are four refills; 20 frees spill at
        // the 9th, 13th and 17th, leaving 8.
        assert_eq!((statistics.refills, statistics.spills, statistics.cached), (5, 3, 8));
    });
}

#[test]
fn frames_in_other_caches_are_not_lost_to_a_processor_that_runs_out() {
    with_allocator(&[frames(1, 9)], |allocator| {
        allocator.set_frame_caches(4);
        let taken = drain(allocator);
        assert_eq!(taken.len(), 8);
        for (n, pfn) in taken.into_iter().enumerate() {
            allocator.set_processor(n % 3);
            allocator.free(pfn).unwrap();
        }
        assert!(allocator.cache_statistics().cached > 0);
        allocator.set_processor(5);
        assert_eq!(drain(allocator).len(), 8);
        assert_eq!(allocator.cache_statistics().drains, 1);
    });
}

#[test]
fn blocks_are_merged_from_cached_frames_when_asked_for() {
    with_allocator(&[frames(0, 16)], |allocator| {
        allocator.set_frame_caches(32);
        let taken = drain(allocator);
        assert_eq!(allocator.alloc_contiguous(3), Err(VmError::OutOfMemory));
        for pfn in taken {
            allocator.free(pfn).unwrap();
        }
        assert_eq!(allocator.cache_statistics().cached, 15);
        assert_eq!(allocator.alloc_contiguous(3).map(|pfn| pfn.0 % 8), Ok(0));
        assert_eq!(allocator.cache_statistics().cached, 0);
    });
}

#[test]
fn a_cached_frame_can_be_reserved() {
    with_allocator(&[frames(1, 64)], |allocator| {
        allocator.set_frame_caches(8);
        let pfn = allocator.alloc().unwrap();
        allocator.free(pfn).unwrap();
        assert_eq!(allocator.page(pfn).and_then(VmPage::state), Some(FrameState::Cached));
        assert_eq!(allocator.reserve(pfn), Ok(()));
        assert_eq!(allocator.counters().reserved, 1);
        assert_eq!(allocator.reserve(pfn), Err(VmError::BadFrame));
    });
}

#[test]
fn turning_caches_off_gives_every_frame_back() {
    with_allocator(&[frames(1, 64)], |allocator| {
        let initial = allocator.counters();
        allocator.set_frame_caches(8);
        let pfn = allocator.alloc().unwrap();
        allocator.free(pfn).unwrap();
        assert!(allocator.cache_statistics().cached > 0);
        allocator.set_frame_caches(0);
        assert_eq!(allocator.cache_statistics().cached, 0);
        assert_eq!(allocator.counters(), initial);
        assert_eq!(allocator.alloc_contiguous(5).map(|pfn| pfn.0 % 32), Ok(0));
    });
}

#[test]
fn check_catches_broken_caches() {
    let map = [frames(1, 64)];
    let mut pages = vec![VmPage::EMPTY; FrameAllocator::pages_needed(&map)];
    let mut allocator = FrameAllocator::new(&mut pages, &map);
    allocator.set_frame_caches(8);
    let pfn = allocator.alloc().unwrap();
    allocator.set_processor(1);
    let other = allocator.alloc().unwrap();
    allocator.free(other).unwrap();
    assert_eq!(allocator.check(), Ok(()));
    let (zero, one) = (allocator.caches[0], allocator.caches[1]);
    let mut last = one.head as usize;
    for _ in 1..one.count {
        last = allocator.pages[last].next() as usize;
    }
    // Processor 1's list runs on into processor 0's: those are on two lists.
    allocator.pages[last].set_next(zero.head);
    allocator.pages[zero.head as usize].set_previous(last as u32);
    allocator.caches[1] = FrameCache { tail: zero.tail, count: one.count + zero.count, ..one };
    assert!(matches!(allocator.check(), Err(AccountingError::BrokenCache { .. })));
    allocator.pages[zero.head as usize].set_previous(NO_LINK);
    assert_eq!(allocator.check(), Err(AccountingError::BrokenCache { processor: 1 }));
    allocator.pages[last].set_next(NO_LINK);
    allocator.caches[1] = one;
    assert_eq!(allocator.check(), Ok(()));
    // A cached frame on no list.
    let second = allocator.pages[zero.head as usize].next();
    allocator.pages[second as usize].set_previous(NO_LINK);
    allocator.caches[0] = FrameCache { head: second, count: zero.count - 1, ..zero };
    assert_eq!(allocator.check(), Err(AccountingError::BrokenCache { processor: 1 }));
    allocator.pages[second as usize].set_previous(zero.head);
    allocator.caches[0] = zero;
    // A list whose back links or tail are wrong.
    allocator.caches[0].tail = zero.head;
    assert_eq!(allocator.check(), Err(AccountingError::BrokenCache { processor: 0 }));
    allocator.caches[0] = zero;
    allocator.pages[second as usize].set_previous(NO_LINK);
    assert_eq!(allocator.check(), Err(AccountingError::BrokenCache { processor: 0 }));
    allocator.pages[second as usize].set_previous(zero.head);
    assert_eq!(allocator.check(), Ok(()));
    // An allocated frame on a list.
    let index = allocator.segments.find(pfn.0).unwrap().index(pfn.0);
    allocator.pages[index].set_next(zero.head);
    allocator.caches[0] = FrameCache { head: index as u32, count: zero.count + 1, ..zero };
    assert_eq!(allocator.check(), Err(AccountingError::BrokenCache { processor: 0 }));
    allocator.caches[0] = zero;
    allocator.pages[index].set_swap_copy(None);
    assert_eq!(allocator.check(), Ok(()));
}

#[test]
fn a_refilled_cache_hands_out_ascending_frames() {
    with_allocator(&[frames(0, 256)], |allocator| {
        allocator.set_frame_caches(16);
        let taken: Vec<u64> = (0..20).map(|_| allocator.alloc().unwrap().0).collect();
        assert!(taken.windows(2).all(|pair| pair[0] < pair[1]), "out of order: {taken:?}");
        for pfn in taken {
            allocator.free(Pfn(pfn)).unwrap();
        }
    });
}
