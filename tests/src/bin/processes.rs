//! User processes: ring 3, system calls, the scheduler, fork and copy-on-write,
//! shared memory, bad arguments, faults that kill, and running out of memory.
//! Each test starts the `probe` program from the ramdisk in one mode, runs the
//! scheduler until it ends, and checks its status, that every process is reaped
//! and that the free-frame count is back at its baseline. Booted with 1, 4 and 64
//! cached page tables, in chaos mode, and at the smallest machine BIOS boots
//! (21 MiB), where the memory hog really runs the machine out of frames; and in
//! Bochs, whose processor has PCIDs (QEMU's TCG has none), with 1 and 4, every
//! CR3 load checked against a shadow TLB (`tlb_check`).
//! programs: probe
//! run: --kernel-arg pt_cache=1
//! run: --kernel-arg pt_cache=4
//! run: --uefi
//! run: --kernel-arg pt_cache=64
//! run: --kernel-arg pt_cache=4 --kernel-arg chaos=3
//! run: --memory 21M
//! run: --bochs --kernel-arg pt_cache=1 --kernel-arg tlb_check
//! run: --bochs --kernel-arg pt_cache=4 --kernel-arg tlb_check
#![no_std]
#![no_main]

extern crate alloc;

use bootloader_api::{BootInfo, entry_point};
use kernel::arch;
use kernel::memory::with_vm;
use kernel::process::{self, Pid};
use kernel::testing;

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::start();
    warm_up();
    testing::run(&kernel::tests![
        fork_keeps_writes_apart_and_copies_only_written_pages,
        shared_memory_is_seen_by_both_processes,
        thirty_two_processes_switch_and_agree,
        bad_system_call_arguments_are_errors,
        faulting_programs_are_killed,
        a_spinning_process_is_preempted,
        a_memory_hog_is_killed_and_others_continue,
    ])
}

/// The `probe` program's modes (see `user/src/bin/probe/main.rs`).
const FORK: u64 = 1;
const SHARED: u64 = 2;
const MANY: u64 = 3;
const HOG: u64 = 4;
const BAD_ARGUMENTS: u64 = 5;
const CRASHES: u64 = 6;
const SPIN: u64 = 8;

/// Runs one program so that page-table roots, the heap and a kernel stack exist
/// before any baseline is taken.
fn warm_up() {
    let pid = process::spawn("probe", SHARED).expect("spawn");
    assert_eq!(process::wait_for(pid), Some(0), "warm-up run failed");
    let room: alloc::vec::Vec<u8> = alloc::vec![0; 1 << 20];
    drop(room);
}

/// Free frames after checking the allocator's books, plus what the heap and the
/// kernel-stack pool took meanwhile (both only grow, and are not the tests').
fn accounted_free() -> usize {
    let free = with_vm(|vm| {
        vm.frames().check().expect("frame accounting check failed");
        vm.frames().counters().free
    });
    free + arch::heap_frames() + process::stack_frames()
}

/// Runs `probe` in `mode` to its end and checks it exited with 0, that nothing
/// is left of it, and that every frame came back.
fn run_probe(mode: u64) {
    let baseline = accounted_free();
    let pid = process::spawn("probe", mode).expect("spawn probe");
    let status = process::wait_for(pid).expect("probe vanished");
    assert_eq!(status, 0, "probe mode {mode} failed (status word {status:#x})");
    assert_all_reaped();
    assert_eq!(accounted_free(), baseline, "frames leaked by probe mode {mode}");
}

/// No process is left, not even a zombie.
fn assert_all_reaped() {
    // Orphans are reaped by the idle task's next turn.
    process::idle();
    let left = process::processes();
    assert!(left.is_empty(), "processes left: {left:?}");
}

fn fork_keeps_writes_apart_and_copies_only_written_pages() {
    run_probe(FORK);
}

fn shared_memory_is_seen_by_both_processes() {
    run_probe(SHARED);
}

fn thirty_two_processes_switch_and_agree() {
    let before = with_vm(|vm| vm.mmu().statistics().activations);
    run_probe(MANY);
    let activations = with_vm(|vm| vm.mmu().statistics().activations) - before;
    assert!(activations > 64, "only {activations} activations for 33 processes");
}

fn bad_system_call_arguments_are_errors() {
    run_probe(BAD_ARGUMENTS);
}

fn faulting_programs_are_killed() {
    run_probe(CRASHES);
}

fn a_spinning_process_is_preempted() {
    let baseline = accounted_free();
    let spinner = process::spawn("probe", SPIN).expect("spawn spinner");
    let pid = process::spawn("probe", FORK).expect("spawn probe");
    assert_eq!(process::wait_for(pid), Some(0), "probe beside a spinner failed");
    assert!(process::kill(spinner), "the spinner ended by itself");
    assert_eq!(process::wait_for(spinner), Some(abi_killed()));
    assert_all_reaped();
    assert_eq!(accounted_free(), baseline, "frames leaked");
}

/// The status word of a killed process.
fn abi_killed() -> u64 {
    1 << 32
}

fn a_memory_hog_is_killed_and_others_continue() {
    run_probe(HOG);
    let _ = Pid(0);
}
