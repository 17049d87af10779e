//! Processes on every processor at once: as many computing processes as
//! processors run on all of them together; forks, copy-on-write, shared
//! memory, page faults and 32 switching processes all at once, every one
//! checking its own results, with every frame back afterwards; processes
//! killed while they run on other processors; and reclaim taking the pages of
//! processes running elsewhere (a shootdown each time), which check every page
//! they hold in every round.
//! Four processors, with 8, 2 and 1 cached page tables (fewer than the
//! processors; with one, frame caches of one frame, so that frames move
//! between the caches and the free lists at almost every step), in chaos
//! mode, and under UEFI; and two under Bochs (PCIDs,
//! x2APIC), with every CR3 load checked against a shadow TLB per processor
//! (four there take two minutes: Bochs emulates them one after another).
//! programs: probe
//! run: --smp 4 --kernel-arg test.cpus=4
//! run: --smp 4 --kernel-arg test.cpus=4 --kernel-arg pt_cache=2 --kernel-arg chaos=3
//! run: --smp 4 --kernel-arg test.cpus=4 --kernel-arg pt_cache=1 --kernel-arg frame_cache=1
//! run: --uefi --smp 4 --kernel-arg test.cpus=4
//! run: --bochs --smp 2 --kernel-arg test.cpus=2 --kernel-arg pt_cache=2 --kernel-arg tlb_check
//! timeout: 300
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use bootloader_api::{BootInfo, entry_point};
use kernel::arch::smp;
use kernel::memory::with_vm;
use kernel::process::{self, Pid};
use kernel::testing;
use kernel_tests::probe::{self, COMPUTE, FAULT, FORK_WAIT, VERIFY};
use kernel_tests::{
    accounted_free, assert_all_reaped, expected_cpus, run_until, warm_up_with_probe,
};

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::start();
    // Page-table roots, heap and kernel stacks made before any baseline: as
    // many as the tests have processes at once.
    warm_up();
    testing::run(&kernel::tests![
        processes_run_on_every_processor_at_once,
        everything_at_once_and_every_frame_back,
        processes_running_elsewhere_can_be_killed,
        reclaim_takes_pages_of_processes_running_elsewhere,
    ]);
}

fn warm_up() {
    warm_up_with_probe();
    let pids = spawn_all(&[probe::work(FORK_WAIT, 4); 8]);
    wait_all(&pids);
    assert_all_reaped();
}

/// Starts `probe` once for each argument.
fn spawn_all(arguments: &[u64]) -> Vec<Pid> {
    let spawn = |&argument| process::spawn("probe", argument).expect("spawn probe");
    arguments.iter().map(spawn).collect()
}

/// Runs processes until each of `pids` ended, and checks each exited with 0.
fn wait_all(pids: &[Pid]) {
    for &pid in pids {
        let status = process::wait_for(pid).expect("the process vanished");
        assert_eq!(status, 0, "process {pid} failed (status word {status:#x})");
    }
}

/// The page-table cache's size: at most that many spaces are loaded at
/// once, so at most that many processes run at once.
fn page_tables() -> usize {
    with_vm(|vm| vm.mmu().capacity())
}

/// One computing process per processor: at some moment as many run at once
/// as there are processors (or cached page tables, if fewer), and every
/// processor runs turns of them (if the page tables allow).
fn processes_run_on_every_processor_at_once() {
    let cpus = expected_cpus();
    assert_eq!(smp::counts().0, cpus, "processors online");
    let before: Vec<u64> = (0..cpus).map(process::turns).collect();
    process::most_at_once();
    let pids = spawn_all(&alloc::vec![probe::work(COMPUTE, 5); cpus]);
    wait_all(&pids);
    let at_once = cpus.min(page_tables()) as u64;
    assert_eq!(process::most_at_once(), at_once, "processes running at once");
    if page_tables() >= cpus {
        for (cpu, before) in before.into_iter().enumerate() {
            assert!(process::turns(cpu) > before, "processor {cpu} ran no process");
        }
    }
    assert_all_reaped();
}

/// Fork isolation, shared memory, fault-ins and fork-wait loops, and 32
/// processes switching, all at once on every processor.
fn everything_at_once_and_every_frame_back() {
    let baseline = accounted_free();
    let mut arguments = alloc::vec![probe::MANY];
    for _ in 0..expected_cpus() {
        arguments.extend([
            probe::FORK_AMONG_OTHERS,
            probe::SHARED,
            probe::work(FAULT, 40),
            probe::work(FORK_WAIT, 10),
        ]);
    }
    process::most_at_once();
    wait_all(&spawn_all(&arguments));
    if page_tables() > 1 {
        assert!(process::most_at_once() > 1, "never more than one process at once");
    }
    assert_all_reaped();
    assert_eq!(accounted_free(), baseline, "frames leaked");
}

/// Spinners on every processor, killed from the boot processor while they
/// run: each ends (at its next tick) with the status of a killed process.
fn processes_running_elsewhere_can_be_killed() {
    let baseline = accounted_free();
    let cpus = expected_cpus();
    process::most_at_once();
    let pids = spawn_all(&alloc::vec![probe::SPIN; cpus]);
    let mut most = 0;
    let at_once = cpus.min(page_tables()) as u64;
    run_until("the spinners did not all run at once", 20, || {
        most = most.max(process::most_at_once());
        most >= at_once
    });
    for &pid in &pids {
        assert!(process::kill(pid), "process {pid} could not be killed");
    }
    for pid in pids {
        assert_eq!(process::wait_for(pid), Some(1 << 32), "process {pid}: not killed");
    }
    assert_all_reaped();
    assert_eq!(accounted_free(), baseline, "frames leaked");
}

/// Processes that check every page they hold, round after round, while the
/// boot processor reclaims everything it can again and again: the pages go
/// to swap and come back under them, and the changes reach the processors
/// they run on (shootdowns) before the frames are used again.
fn reclaim_takes_pages_of_processes_running_elsewhere() {
    let baseline = accounted_free();
    let cpus = expected_cpus();
    let shootdowns = || with_vm(|vm| vm.mmu().statistics().shootdowns);
    let moved = || with_vm(|vm| (vm.statistics().pages_reclaimed, vm.statistics().page_ins));
    let (before, (reclaimed_before, page_ins_before)) = (shootdowns(), moved());
    let pids = spawn_all(&alloc::vec![probe::work(VERIFY, 1500); cpus.max(2) - 1]);
    let alive = |pid: &Pid| {
        process::summary(*pid).is_some_and(|p| !matches!(p.state, process::State::Zombie(_)))
    };
    while pids.iter().any(alive) {
        with_vm(|vm| vm.reclaim(usize::MAX / 2));
        // The others run them, not this one.
        process::wait_for_work();
    }
    wait_all(&pids);
    let (reclaimed, page_ins) = moved();
    assert!(reclaimed > reclaimed_before, "no page was reclaimed");
    assert!(page_ins > page_ins_before, "no page came back from swap");
    // With one cached page table the boot processor, which ran a turn last,
    // may keep it loaded while it reclaims: then the others wait.
    if cpus > 1 && page_tables() > 1 {
        assert!(shootdowns() > before, "no change reached another processor");
    }
    assert_all_reaped();
    assert_eq!(accounted_free(), baseline, "frames leaked");
}
