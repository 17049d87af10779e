//! The compressed swap pool on the machine: pages written through the
//! physical-memory map come back whole into other frames, a page that does not
//! compress is refused, and every frame the pool took goes back when its slots
//! are discarded.
//! run:
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use bootloader_api::{BootInfo, entry_point};
use kernel::arch::PhysicalMap;
use kernel::memory::with_frames;
use kernel::swap::{CompressedPool, PhysicalPages};
use kernel::testing;
use kernel::vm::page::Pfn;
use kernel::vm::{SwapDevice, VmError};

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::run(&kernel::tests![
        pages_come_back_whole_and_frames_go_back,
        a_page_that_does_not_compress_is_refused,
    ])
}

/// Pages written in the first test.
const PAGES: u32 = 96;

/// A small xorshift step.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The test's own view of physical memory, for frames it owns.
fn memory() -> PhysicalMap {
    // SAFETY: the tests reach only frames they took from the allocator, one
    // reference at a time, while the pool, which reaches them too, is not
    // running.
    unsafe { PhysicalMap::new() }
}

/// Fills frame `pfn` with page `index`'s contents: zeros, text-like lines, or a
/// random first half and zeros.
fn fill(pfn: Pfn, index: u32) {
    let mut memory = memory();
    let page = memory.page_mut(pfn);
    let mut state = u64::from(index) * 0x9e37_79b9 + 1;
    match index % 3 {
        0 => page.fill(0),
        1 => {
            for (at, byte) in page.iter_mut().enumerate() {
                let line = b"swap: page out of slot ";
                *byte =
                    if at % 32 < line.len() { line[at % 32] } else { b'0' + (index % 10) as u8 };
            }
        }
        _ => {
            page.fill(0);
            page[..2048].iter_mut().for_each(|byte| *byte = next(&mut state) as u8);
        }
    }
}

/// Free frames now, after proving the allocator's books balance.
fn checked_free_count() -> usize {
    with_frames(|frames| {
        frames.check().expect("accounting check failed");
        frames.counters().free
    })
}

fn pages_come_back_whole_and_frames_go_back() {
    let mut pool = CompressedPool::new(64, PAGES).expect("a pool");
    let mut sources: Vec<Pfn> = Vec::with_capacity(PAGES as usize);
    let baseline = checked_free_count();
    with_frames(|frames| sources.extend((0..PAGES).map(|_| frames.alloc().expect("a frame"))));
    for (slot, &pfn) in (0..PAGES).zip(&sources) {
        fill(pfn, slot);
        with_frames(|frames| pool.write(frames, slot, pfn)).expect("write");
    }
    let held = pool.frames_held();
    assert!(held > 0 && held < PAGES as usize / 2, "{held} frames for {PAGES} pages");
    let mut expected = [0u8; 4096];
    for (slot, &pfn) in (0..PAGES).zip(&sources) {
        memory().page_mut(pfn).fill(0xaa);
        pool.read(slot, pfn).expect("read");
        if slot != 0 {
            fill(sources[0], slot);
            expected.copy_from_slice(memory().page(sources[0]));
            assert!(memory().page(pfn) == &expected, "slot {slot} came back changed");
        }
    }
    log::info!(
        "{PAGES} pages in {held} frames, {} bytes compressed, {} of them filled",
        pool.bytes_stored(),
        pool.statistics().filled_pages
    );
    with_frames(|frames| {
        (0..PAGES).for_each(|slot| pool.discard(frames, slot));
        sources.iter().for_each(|&pfn| frames.free(pfn).expect("free a source frame"));
    });
    assert_eq!(pool.frames_held(), 0);
    assert_eq!(checked_free_count(), baseline);
}

fn a_page_that_does_not_compress_is_refused() {
    let mut pool = CompressedPool::new(4, 4).expect("a pool");
    let baseline = checked_free_count();
    let pfn = with_frames(|frames| frames.alloc()).expect("a frame");
    let mut state = 7;
    memory().page_mut(pfn).iter_mut().for_each(|byte| *byte = next(&mut state) as u8);
    assert_eq!(with_frames(|frames| pool.write(frames, 0, pfn)), Err(VmError::OutOfMemory));
    assert_eq!(pool.read(0, pfn), Err(VmError::InvalidArgument));
    assert_eq!(pool.statistics().refused_incompressible, 1);
    with_frames(|frames| frames.free(pfn)).expect("free");
    assert_eq!(checked_free_count(), baseline);
}
