//! The frame allocator on the real memory map: exhaustion is an error, every
//! frame comes back, contiguous blocks are aligned and disjoint, zeroed frames are
//! zero, shared frames are freed by their last release, and the heap grows on
//! frames. Run at the default size, with processor frame caches and without,
//! and at the smallest machine BIOS boot allows (which needs the Intel-vendor
//! CPU the runner presents: see `boot/src/qemu.rs`).
//! run:
//! run: --kernel-arg frame_cache=0
//! run: --memory 21M
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use bootloader_api::{BootInfo, entry_point};
use kernel::arch;
use kernel::memory::with_frames;
use kernel::testing;
use kernel::vm::VmError;
use kernel::vm::frame::{FrameAllocator, MAX_ORDER};
use kernel::vm::page::{PAGE_SIZE, Pfn};

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::run(&kernel::tests![
        exhaustion_is_an_error_and_every_frame_comes_back,
        contiguous_blocks_are_aligned_and_disjoint,
        zeroed_frames_are_zero,
        shared_frame_is_freed_by_its_last_release,
        heap_grows_on_frames,
    ])
}

/// Free frames now, after proving the allocator's books balance.
fn checked_free_count() -> usize {
    with_frames(|frames| {
        frames.check().expect("accounting check failed");
        frames.counters().free
    })
}

fn exhaustion_is_an_error_and_every_frame_comes_back() {
    // Room for every frame's number, taken before the baseline is read.
    let mut taken: Vec<Pfn> = Vec::with_capacity(checked_free_count() + 64);
    let baseline = checked_free_count();
    let (error, reserve) = with_frames(|frames| {
        let take = |frames: &mut kernel::vm::FrameAllocator<'_>, taken: &mut Vec<Pfn>| loop {
            match frames.alloc() {
                Ok(pfn) => taken.push(pfn),
                Err(error) => break error,
            }
        };
        let error = take(frames, &mut taken);
        // The frames kept for reclaim (with swap) go only to reclaim.
        let reserve = taken.len();
        frames.set_reclaiming(true);
        let last = take(frames, &mut taken);
        frames.set_reclaiming(false);
        assert_eq!(last, VmError::OutOfMemory);
        (error, baseline - reserve)
    });
    let expected = with_frames(|frames| frames.reclaim_reserve()).min(baseline);
    assert_eq!(reserve, expected, "the reclaim reserve is kept from others");
    assert_eq!(error, VmError::OutOfMemory);
    assert_eq!(taken.len(), baseline, "every free frame is handed out");
    assert_eq!(checked_free_count(), 0);
    assert!(taken.iter().all(|pfn| pfn.0 != 0), "frame 0 handed out");
    with_frames(|frames| taken.iter().for_each(|&pfn| frames.free(pfn).expect("free")));
    assert_eq!(checked_free_count(), baseline);
    log::info!("exhausted and returned {baseline} frames");
}

/// A block of frames as allocated: first frame, one past the last, order.
type Block = (u64, u64, u32);

/// Takes every free frame as contiguous blocks, largest order first, then
/// carves one block of the largest order into one block of every smaller order;
/// every block must be aligned to its size and disjoint from the others, and
/// every frame must come back. No allocation may fail but as its order running
/// out (see [`exhaust`]), and none of the carving may fail at all.
fn contiguous_blocks_are_aligned_and_disjoint() {
    // Room for one block per free frame (the worst case), taken before the
    // baseline is read.
    let mut blocks: Vec<Block> = Vec::with_capacity(checked_free_count() + 64);
    let baseline = checked_free_count();
    // The reclaim reserve too: every frame is the test's.
    with_frames(|frames| {
        frames.set_reclaiming(true);
        exhaust(frames, &mut blocks);
        frames.set_reclaiming(false);
    });
    assert_eq!(checked_free_count(), 0, "frames left free after order 0 ran out");
    let taken: u64 = blocks.iter().map(|&(first, end, _)| end - first).sum();
    assert_eq!(taken, baseline as u64, "the blocks do not hold every frame that was free");
    blocks.sort_unstable();
    for pair in blocks.windows(2) {
        assert!(!buddies(pair[0], pair[1]), "blocks {:?} and {:?} are buddies", pair[0], pair[1]);
    }
    let largest = blocks.iter().filter(|block| block.2 == MAX_ORDER).count();
    assert!(largest > 0, "no block of order {MAX_ORDER}");
    with_frames(|frames| {
        frames.set_reclaiming(true);
        carve(frames, &mut blocks);
        frames.set_reclaiming(false);
    });
    assert_eq!(checked_free_count(), 0, "carving left frames free");
    for &(first, _, order) in &blocks {
        assert_eq!(first % (1 << order), 0, "order-{order} block at {first:#x} misaligned");
    }
    blocks.sort_unstable();
    for pair in blocks.windows(2) {
        assert!(pair[0].1 <= pair[1].0, "blocks {:?} and {:?} overlap", pair[0], pair[1]);
    }
    with_frames(|frames| {
        for &(first, _, order) in &blocks {
            frames.free_contiguous(Pfn(first), order).expect("free_contiguous");
        }
    });
    assert_eq!(checked_free_count(), baseline);
    log::info!("{baseline} frames in {} blocks, {largest} of order {MAX_ORDER}", blocks.len());
}

/// Allocates blocks of each order, largest first, until that order fails; the
/// failure must be `OutOfMemory`, and is proven to be the order running out by
/// the caller: nothing is left free at the end, and no two blocks of one order
/// are buddies (had both halves been free, the order above would have had them
/// whole, as frames are only taken meanwhile, never freed).
fn exhaust(frames: &mut FrameAllocator<'_>, blocks: &mut Vec<Block>) {
    for order in (0..=MAX_ORDER).rev() {
        let error = loop {
            match frames.alloc_contiguous(order) {
                Ok(first) => blocks.push((first.0, first.0 + (1 << order), order)),
                Err(error) => break error,
            }
        };
        assert_eq!(error, VmError::OutOfMemory, "order-{order} allocation failed");
    }
}

/// Frees one block of the largest order, the only free memory then, and takes
/// it back as one block of each smaller order and a last single frame: each
/// must succeed, inside it.
fn carve(frames: &mut FrameAllocator<'_>, blocks: &mut Vec<Block>) {
    let index = blocks.iter().position(|block| block.2 == MAX_ORDER).expect("a largest block");
    let (start, end, _) = blocks.swap_remove(index);
    frames.free_contiguous(Pfn(start), MAX_ORDER).expect("free the largest block");
    for order in (0..MAX_ORDER).rev().chain([0]) {
        let first = frames.alloc_contiguous(order).unwrap_or_else(|error| {
            panic!("order-{order} allocation failed with a free block to carve: {error:?}")
        });
        let block = (first.0, first.0 + (1 << order), order);
        assert!(start <= block.0 && block.1 <= end, "{block:?} is not in the block carved");
        blocks.push(block);
    }
}

/// Whether two blocks, `low` just below `high`, are the two halves of one
/// block of the order above.
fn buddies(low: Block, high: Block) -> bool {
    let (first, end, order) = low;
    order < MAX_ORDER && high.2 == order && high.0 == end && first % (2 << order) == 0
}

fn zeroed_frames_are_zero() {
    let baseline = checked_free_count();
    let dirty = with_frames(|frames| frames.alloc()).expect("alloc");
    arch::fill_frame(dirty, 0xa5);
    with_frames(|frames| frames.free(dirty)).expect("free");
    // LIFO free lists hand the dirty frame straight back.
    let zeroed = with_frames(|frames| frames.alloc_zeroed(|pfn| arch::fill_frame(pfn, 0)));
    let zeroed = zeroed.expect("alloc_zeroed");
    let mut contents = [0xffu8; PAGE_SIZE as usize];
    arch::read_frame(zeroed, &mut contents);
    assert!(contents.iter().all(|&byte| byte == 0), "zeroed frame {zeroed:?} is not zero");
    with_frames(|frames| frames.free(zeroed)).expect("free");
    assert_eq!(checked_free_count(), baseline);
}

fn shared_frame_is_freed_by_its_last_release() {
    let baseline = checked_free_count();
    with_frames(|frames| {
        let pfn = frames.alloc().expect("alloc");
        assert_eq!(frames.add_ref(pfn), Ok(2));
        assert_eq!(frames.free(pfn), Err(VmError::BadFrame), "freeing a shared frame");
        assert_eq!(frames.release(pfn), Ok(false));
        assert_eq!(frames.release(pfn), Ok(true));
        assert_eq!(frames.free(pfn), Err(VmError::BadFrame), "double free");
    });
    assert_eq!(checked_free_count(), baseline);
}

fn heap_grows_on_frames() {
    let before = checked_free_count();
    // More than the heap has free (the VM keeps headroom), so it must grow.
    let (heap_before, used) = kernel::heap::usage();
    let length = heap_before - used + (1 << 20);
    let big: Vec<u8> = alloc::vec![7; length];
    let (heap_after, _) = kernel::heap::usage();
    assert!(heap_after >= heap_before + (1 << 20), "heap did not grow");
    assert!(checked_free_count() + 256 <= before, "heap growth took no frames");
    assert_eq!(big.iter().map(|&b| b as usize).sum::<usize>(), 7 * length);
}
