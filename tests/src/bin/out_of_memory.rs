//! Running out of frames through fork, on the smallest machine BIOS boots
//! (21 MiB, about 14 MiB of it free after start-up): a process touches 8 MiB
//! and forks children that share it until fork fails (after about 30: each
//! child takes a kernel stack, the heap for its copy of the page map, page
//! tables). The failure must be `NoMemory` from fork itself, never a kernel
//! panic; every child then checks its memory and exits, and every frame comes
//! back. (With less memory per child the process table, 128 entries, runs out
//! first, with `TryAgain`.)
//! programs: probe
//! run: --memory 21M
//! timeout: 300
#![no_std]
#![no_main]

extern crate alloc;

use bootloader_api::{BootInfo, entry_point};
use kernel::arch;
use kernel::memory::with_vm;
use kernel::process;
use kernel::testing;

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::start();
    warm_up();
    testing::run(&kernel::tests![forking_until_memory_runs_out_is_an_error])
}

/// The `probe` program's modes (see `user/src/bin/probe/main.rs`).
const SHARED: u64 = 2;
const FORK_UNTIL_OUT_OF_MEMORY: u64 = 7;

/// Runs one program so that page-table roots, the heap and a kernel stack exist
/// before the baseline is taken.
fn warm_up() {
    let pid = process::spawn("probe", SHARED).expect("spawn");
    assert_eq!(process::wait_for(pid), Some(0), "warm-up run failed");
}

/// Free frames after checking the allocator's books, plus what the heap and the
/// kernel-stack pool took meanwhile (both only grow, and are not the test's).
fn accounted_free() -> usize {
    let free = with_vm(|vm| {
        vm.frames().check().expect("frame accounting check failed");
        vm.frames().counters().free
    });
    free + arch::heap_frames() + process::stack_frames()
}

fn forking_until_memory_runs_out_is_an_error() {
    let baseline = accounted_free();
    let pid = process::spawn("probe", FORK_UNTIL_OUT_OF_MEMORY).expect("spawn probe");
    let status = process::wait_for(pid).expect("probe vanished");
    assert_eq!(status, 0, "the probe failed (status word {status:#x})");
    process::idle();
    let left = process::processes();
    assert!(left.is_empty(), "processes left: {left:?}");
    assert_eq!(accounted_free(), baseline, "frames leaked");
}
