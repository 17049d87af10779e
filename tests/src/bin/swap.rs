//! Programs larger than memory: on the smallest machine BIOS boots (21 MiB),
//! a program writes 40 MiB and checks every byte, a forked pair writes and
//! checks 24 MiB each, and a pair shares an object beside 16 MiB each, with
//! the compressed pool, with a swap disk, and with one page-table root in
//! chaos mode. Pinned pages are never taken, and afterwards frames, heap and
//! swap slots are all back where they were.
//! programs: swapper
//! run: --memory 21M --kernel-arg swap_pool=50 --kernel-arg test.swap=pool
//! run: --memory 21M --swap 64M --kernel-arg swap_pool=0 --kernel-arg test.swap=disk
//! run: --memory 21M --kernel-arg swap_pool=50 --kernel-arg pt_cache=1 --kernel-arg chaos --kernel-arg test.swap=pool
//! run: --memory 21M --swap 64M --kernel-arg swap_pool=0 --kernel-arg pt_cache=1 --kernel-arg chaos --kernel-arg test.swap=disk
//! timeout: 900
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use bootloader_api::{BootInfo, entry_point};
use kernel::memory::with_vm;
use kernel::testing;
use kernel::vm::object::anonymous::Entry;
use kernel::vm::space::Backing;
use kernel::vm::{Access, Mmu, PAGE_SIZE, SpaceId, VirtAddr};
use kernel_tests::swapper::{BIG, FORK, SHARED, argument};
use kernel_tests::{accounted_free, activate, destroy, run_program, space_with, warm_up_with};

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::start();
    warm_up_with("swapper", argument(BIG, 1));
    testing::run(&kernel::tests![
        the_swap_devices_are_the_ones_asked_for,
        a_program_twice_the_memory_keeps_every_byte,
        forked_programs_larger_than_memory_keep_their_pages,
        shared_memory_beside_swapped_private_memory,
        pinned_pages_stay_resident,
    ])
}

/// The devices attached, by name, as the run's `test.swap` says.
fn the_swap_devices_are_the_ones_asked_for() {
    let names: Vec<&str> = with_vm(|vm| vm.swap_devices().map(|device| device.name()).collect());
    let expected = testing::parameter("swap").expect("the run names its devices (test.swap)");
    assert_eq!(names.join(","), expected);
}

/// Page-outs and page-ins so far.
fn traffic() -> (u64, u64) {
    with_vm(|vm| (vm.statistics().page_outs, vm.statistics().page_ins))
}

/// Runs `swapper` in `mode` over `mib` MiB, checks that it swapped both ways,
/// and that every slot and every frame of storage came back.
fn run_swapping(mode: u64, mib: u64) {
    let (outs, ins) = traffic();
    run_program("swapper", argument(mode, mib));
    let (outs_after, ins_after) = traffic();
    kernel::println!(
        "swapper mode {mode}, {mib} MiB: {} page-outs, {} page-ins",
        outs_after - outs,
        ins_after - ins
    );
    assert!(outs_after > outs && ins_after > ins, "the program did not swap");
    let (slots, held) = with_vm(|vm| {
        let held: usize = vm.swap_devices().map(|device| device.frames_held()).sum();
        (vm.frames().slots().counters(), held)
    });
    assert_eq!((slots.used, slots.entries), (0, 0), "swap slots left in use");
    assert_eq!(held, 0, "the pool kept frames");
}

fn a_program_twice_the_memory_keeps_every_byte() {
    run_swapping(BIG, 40);
}

fn forked_programs_larger_than_memory_keep_their_pages() {
    run_swapping(FORK, 24);
}

fn shared_memory_beside_swapped_private_memory() {
    run_swapping(SHARED, 16);
}

/// Where the pinning test maps.
const BASE: u64 = 0x4000_0000;

/// The entries of `pages` pages of `space` from [`BASE`].
fn entries(space: SpaceId, pages: u64) -> Vec<Entry> {
    with_vm(|vm| {
        let entry = |address: VirtAddr| {
            let region = vm.space(space).and_then(|target| target.region(address));
            match region.map(|region| region.backing()) {
                Some(Backing::Anonymous(object)) => object.entry(address),
                _ => panic!("no private region at {address:?}"),
            }
        };
        (0..pages).map(|page| entry(VirtAddr(BASE + page * PAGE_SIZE))).collect()
    })
}

/// A space whose first 16 pages are pinned and the next 48 only written:
/// reclaim asked for everything takes the 48 and leaves the 16 where they
/// were, pinned and mapped.
fn pinned_pages_stay_resident() {
    const PINNED: u64 = 16;
    const PAGES: u64 = 64;
    let baseline = accounted_free();
    let space = space_with(BASE, PAGES);
    activate(space);
    with_vm(|vm| {
        vm.pin(space, VirtAddr(BASE), PINNED * PAGE_SIZE).expect("pin");
        for page in PINNED..PAGES {
            vm.fault(space, VirtAddr(BASE + page * PAGE_SIZE), Access::Write).expect("fault");
        }
    });
    let before = entries(space, PAGES);
    let reclaimed = with_vm(|vm| vm.reclaim(usize::MAX / 2));
    let after = entries(space, PAGES);
    let mut problems = String::new();
    for (page, (was, now)) in before.iter().zip(&after).enumerate() {
        let pinned = (page as u64) < PINNED;
        let fine = match (pinned, was, now) {
            (true, Entry::Frame(old), Entry::Frame(new)) => old == new,
            (false, Entry::Frame(_), Entry::Swapped(_)) => true,
            _ => false,
        };
        if !fine {
            problems += &alloc::format!("page {page}: {was:?} then {now:?}; ");
        }
    }
    assert!(problems.is_empty(), "after reclaim of {reclaimed} frames: {problems}");
    let translated = with_vm(|vm| {
        (0..PINNED).all(|page| {
            let address = VirtAddr(BASE + page * PAGE_SIZE);
            vm.mmu().query(space, address).is_some()
        })
    });
    assert!(translated, "a pinned page lost its translation");
    destroy(&[space]);
    with_vm(|vm| vm.settle_swap());
    assert_eq!(accounted_free(), baseline, "frames leaked");
    let slots = with_vm(|vm| vm.frames().slots().counters());
    assert_eq!((slots.used, slots.entries), (0, 0), "swap slots left in use");
}
