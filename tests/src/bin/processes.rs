//! User processes: ring 3, system calls, the scheduler, fork and copy-on-write,
//! shared memory, bad arguments, faults that kill, and running out of memory.
//! Each test starts the `probe` program from the ramdisk in one mode, runs the
//! scheduler until it ends, and checks its status, that every process is reaped
//! and that the free-frame count is back at its baseline. Booted with 1, 4 and 64
//! cached page tables, in chaos mode, and at the smallest machine BIOS boots
//! (21 MiB), where the memory hog really runs the machine out of frames; and in
//! Bochs, whose processor has PCIDs (QEMU's TCG has none), with 1 and 4, every
//! CR3 load checked against a shadow TLB (`tlb_check`). Every run has two
//! processors unless it says otherwise: with one, and with four, where one
//! cached page table is fewer than the processors that want one.
//! programs: probe
//! run: --kernel-arg pt_cache=1
//! run: --kernel-arg pt_cache=4
//! run: --smp 1 --kernel-arg pt_cache=4
//! run: --smp 4 --kernel-arg pt_cache=1
//! run: --smp 4 --kernel-arg pt_cache=4 --kernel-arg chaos=3
//! run: --uefi
//! run: --kernel-arg pt_cache=64
//! run: --kernel-arg pt_cache=4 --kernel-arg chaos=3
//! run: --memory 21M
//! run: --bochs --kernel-arg pt_cache=1 --kernel-arg tlb_check
//! run: --bochs --kernel-arg pt_cache=4 --kernel-arg tlb_check
//! timeout: 300
#![no_std]
#![no_main]

extern crate alloc;

use bootloader_api::{BootInfo, entry_point};
use kernel::memory::with_vm;
use kernel::process;
use kernel::testing;
use kernel_tests::probe::{BAD_ARGUMENTS, CRASHES, FORK, HOG, MANY, SHARED, SPIN, WAIT_ON_SPINNER};
use kernel_tests::{accounted_free, assert_all_reaped, run_probe, run_until, warm_up_with_probe};

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
        a_waiting_parent_and_its_orphan_can_be_killed,
    ])
}

/// Runs `probe` once, and gives the heap room, so that what the tests count
/// afterwards is theirs alone.
fn warm_up() {
    warm_up_with_probe();
    let room: alloc::vec::Vec<u8> = alloc::vec![0; 1 << 20];
    drop(room);
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

/// Kills a process blocked in `wait` on a spinning child, then the child, now
/// an orphan: both end, are reaped, and every frame comes back.
fn a_waiting_parent_and_its_orphan_can_be_killed() {
    let baseline = accounted_free();
    let parent = process::spawn("probe", WAIT_ON_SPINNER).expect("spawn probe");
    let state = |pid| process::processes().into_iter().find(|p| p.pid == pid).map(|p| p.state);
    run_until("the parent did not wait", 10, || state(parent) == Some(process::State::Waiting));
    let child = process::processes().into_iter().find(|p| p.pid != parent).expect("the child").pid;
    assert!(process::kill(parent), "the waiting parent could not be killed");
    assert_eq!(process::wait_for(parent), Some(abi_killed()));
    assert!(process::kill(child), "the orphan could not be killed");
    // Running on another processor, it ends at its next timer tick there.
    run_until("the killed orphan did not end", 10, || state(child).is_none());
    assert_all_reaped();
    assert_eq!(accounted_free(), baseline, "frames leaked");
}

/// The status word of a killed process.
fn abi_killed() -> u64 {
    1 << 32
}

/// The hog must die of running out of memory (a fault the VM refused for
/// want of frames), not of anything else a `Killed` could hide.
fn a_memory_hog_is_killed_and_others_continue() {
    let before = with_vm(|vm| vm.statistics().out_of_memory_faults);
    run_probe(HOG);
    let after = with_vm(|vm| vm.statistics().out_of_memory_faults);
    assert!(after > before, "the hog was killed, but not by running out of memory");
}
