//! The virtio-blk swap disk: found on the PCI bus when the runner attaches one
//! (`--swap`), and not otherwise; every page written to a slot (the first, the
//! last and a few hundred between) comes back as written into another frame,
//! a rewritten slot gives its new contents and leaves the others alone, and
//! every frame taken comes back. The writes and reads are made with the VM
//! lock held, as the VM makes them. Prints the time a page takes each way
//! (`I swap_disk_write_ns_per_page=...`). The test parameter `test.disk` says
//! whether the run has a disk (which `swap_disk=off` keeps from the VM). Under UEFI too, whose firmware puts the disk's
//! registers (its 64-bit BAR) at 32 GiB, beyond the mapping of physical memory.
//! run: --swap 16M --kernel-arg swap_disk=off --kernel-arg test.disk=yes
//! run: --uefi --swap 16M --kernel-arg swap_disk=off --kernel-arg test.disk=yes
//! run: --kernel-arg test.disk=no
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use bootloader_api::{BootInfo, entry_point};
use kernel::arch::tsc;
use kernel::drivers::virtio_blk::{SwapDisk, find_swap_disk, keep_swap_disk, take_swap_disk};
use kernel::memory::{physical_offset, with_frames, with_vm};
use kernel::testing;
use kernel::vm::VmError;
use kernel::vm::page::{PAGE_SIZE, Pfn};
use kernel::vm::swap::SwapDevice;

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    match testing::parameter("disk") {
        Some("yes") => testing::run(&kernel::tests![
            the_disk_is_found_with_its_size,
            pages_come_back_as_written,
            a_rewritten_slot_reads_back_new_and_leaves_others,
        ]),
        Some("no") => testing::run(&kernel::tests![no_disk_is_found_without_one]),
        other => panic!("swap_disk: test.disk must be yes or no, not {other:?}"),
    }
}

/// Words in a page.
const WORDS: usize = PAGE_SIZE as usize / 8;
/// Slots of the 16 MiB disk the runner attaches.
const SLOTS: u32 = 4096;

/// Runs `f` with the disk found at start-up, and keeps it again after.
fn with_disk(f: impl FnOnce(&mut SwapDisk)) {
    let mut disk = take_swap_disk().expect("no swap disk was found at start-up");
    f(&mut disk);
    keep_swap_disk(disk);
}

/// The words of frame `pfn`.
fn words(pfn: Pfn) -> &'static mut [u64] {
    let address = (physical_offset() + pfn.addr()) as *mut u64;
    // SAFETY: the frame was allocated to this test, which alone uses it, and
    // physical memory is mapped writable at the offset; the test never holds
    // two of these slices of one frame at once.
    unsafe { core::slice::from_raw_parts_mut(address, WORDS) }
}

/// The page a test writes to `slot`: every word different, and different
/// for each slot and `generation`.
fn pattern(slot: u32, generation: u64, index: usize) -> u64 {
    (u64::from(slot) << 32 | index as u64) ^ generation.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Fills frame `pfn` with the pattern of `slot`.
fn fill(pfn: Pfn, slot: u32, generation: u64) {
    for (index, word) in words(pfn).iter_mut().enumerate() {
        *word = pattern(slot, generation, index);
    }
}

/// Panics unless frame `pfn` holds the pattern of `slot`.
fn check(pfn: Pfn, slot: u32, generation: u64) {
    for (index, word) in words(pfn).iter().enumerate() {
        let expected = pattern(slot, generation, index);
        assert_eq!(*word, expected, "slot {slot}: word {index} is {word:#x}, not {expected:#x}");
    }
}

/// Writes frame `pfn` to `slot`, with the VM lock held, as the VM does.
fn write(disk: &mut SwapDisk, slot: u32, pfn: Pfn) -> Result<(), VmError> {
    with_frames(|frames| disk.write(frames, slot, pfn))
}

/// Reads `slot` into frame `pfn`, with the VM lock held, as the VM does.
fn read(disk: &mut SwapDisk, slot: u32, pfn: Pfn) -> Result<(), VmError> {
    with_vm(|_| disk.read(slot, pfn))
}

/// Two frames for the test, and the free count before they were taken.
fn two_frames() -> ([Pfn; 2], usize) {
    with_frames(|frames| {
        let free = frames.counters().free;
        ([frames.alloc().expect("a frame"), frames.alloc().expect("a frame")], free)
    })
}

/// Gives back what [`two_frames`] took and checks the free count is back.
fn give_back(taken: [Pfn; 2], free: usize) {
    with_frames(|frames| {
        taken.iter().for_each(|&pfn| frames.free(pfn).expect("free"));
        frames.check().expect("the frame allocator's books");
        assert_eq!(frames.counters().free, free, "a frame did not come back");
    });
}

fn no_disk_is_found_without_one() {
    assert!(take_swap_disk().is_none(), "start-up found a disk the runner did not attach");
    assert!(find_swap_disk().is_none(), "a search of the bus found a disk");
}

fn the_disk_is_found_with_its_size() {
    with_disk(|disk| {
        assert_eq!(disk.name(), "disk");
        assert_eq!(disk.slots(), SLOTS, "16 MiB is 4096 slots of a page");
        assert_eq!(disk.bytes_stored(), 0);
        log::info!("swap disk at {}", disk.location());
    });
    assert!(find_swap_disk().is_none(), "the same device was opened twice");
}

/// The slots the test writes: 0, the last, and 300 spread over the rest.
fn chosen_slots() -> Vec<u32> {
    let mut slots: Vec<u32> = (0..300u32).map(|n| n * 13 % SLOTS).collect();
    slots.push(SLOTS - 1);
    slots
}

fn pages_come_back_as_written() {
    let ([source, destination], free) = two_frames();
    let slots = chosen_slots();
    with_disk(|disk| {
        let mut write_cycles = 0;
        for &slot in &slots {
            fill(source, slot, 1);
            let start = tsc::read();
            write(disk, slot, source).expect("write");
            write_cycles += tsc::read() - start;
        }
        assert_eq!(disk.bytes_stored(), slots.len() as u64 * PAGE_SIZE);
        let mut read_cycles = 0;
        for &slot in slots.iter().rev() {
            words(destination).fill(0xdead_beef_dead_beef);
            let start = tsc::read();
            read(disk, slot, destination).expect("read");
            read_cycles += tsc::read() - start;
            check(destination, slot, 1);
        }
        let ns = |cycles: u64| cycles * 1_000_000_000 / tsc::frequency() / slots.len() as u64;
        kernel::println!(
            "I swap_disk_write_ns_per_page={} swap_disk_read_ns_per_page={} pages={}",
            ns(write_cycles),
            ns(read_cycles),
            slots.len()
        );
        assert_eq!(write(disk, SLOTS, source), Err(VmError::InvalidArgument));
        assert_eq!(read(disk, SLOTS, destination), Err(VmError::InvalidArgument));
        with_frames(|frames| slots.iter().for_each(|&slot| disk.discard(frames, slot)));
        assert_eq!(disk.bytes_stored(), 0);
    });
    give_back([source, destination], free);
}

fn a_rewritten_slot_reads_back_new_and_leaves_others() {
    let ([source, destination], free) = two_frames();
    let last = SLOTS - 1;
    with_disk(|disk| {
        for slot in [0, 1, last] {
            fill(source, slot, 2);
            write(disk, slot, source).expect("write");
        }
        fill(source, 0, 3);
        write(disk, 0, source).expect("rewrite");
        read(disk, 0, destination).expect("read");
        check(destination, 0, 3);
        for slot in [1, last] {
            read(disk, slot, destination).expect("read");
            check(destination, slot, 2);
        }
        with_frames(|frames| [0, 1, last].iter().for_each(|&slot| disk.discard(frames, slot)));
    });
    give_back([source, destination], free);
}
