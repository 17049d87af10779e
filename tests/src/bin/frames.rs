//! The frame allocator on the real memory map: exhaustion is an error, every
//! frame comes back, contiguous blocks are aligned and disjoint, zeroed frames are
//! zero, shared frames are freed by their last release, and the heap grows on
//! frames. Run at the default size and at the smallest machine BIOS boot allows
//! (which needs the Intel-vendor CPU the runner presents: see `boot/src/qemu.rs`).
//! run:
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
use kernel::vm::frame::MAX_ORDER;
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
    let error = with_frames(|frames| {
        loop {
            match frames.alloc() {
                Ok(pfn) => taken.push(pfn),
                Err(error) => break error,
            }
        }
    });
    assert_eq!(error, VmError::OutOfMemory);
    assert_eq!(taken.len(), baseline, "every free frame is handed out");
    assert_eq!(checked_free_count(), 0);
    assert!(taken.iter().all(|pfn| pfn.0 != 0), "frame 0 handed out");
    with_frames(|frames| taken.iter().for_each(|&pfn| frames.free(pfn).expect("free")));
    assert_eq!(checked_free_count(), baseline);
    log::info!("exhausted and returned {baseline} frames");
}

fn contiguous_blocks_are_aligned_and_disjoint() {
    let mut blocks: Vec<(u64, u64, u32)> = Vec::with_capacity(256);
    let baseline = checked_free_count();
    for round in 0..200u32 {
        let order = round % (MAX_ORDER + 1);
        let Ok(first) = with_frames(|frames| frames.alloc_contiguous(order)) else {
            continue;
        };
        assert_eq!(first.0 % (1 << order), 0, "order-{order} block at {first:?} misaligned");
        blocks.push((first.0, first.0 + (1 << order), order));
    }
    assert!(!blocks.is_empty(), "no contiguous block could be allocated");
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
