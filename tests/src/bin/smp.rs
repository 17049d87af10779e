//! Every processor: as many come online as the machine has (the test
//! parameter `test.cpus`, which the runner's `--smp` gives it), each with an
//! APIC ID of its own; the boot processor is processor 0; each one's local
//! APIC timer ticks; each other processor answers a call (an interrupt sent
//! from the boot processor), once per call, and a processor that is not
//! there is not called; a shootdown (of a page, and of everything) makes a
//! processor that holds a translation in its TLB see the page's new frame,
//! and so does the heap giving pages back and mapping them again; each
//! processor takes single frames from its own cache, and gets the error of
//! a user-memory access the VM refuses;
//! the 8259 is masked while the APICs deliver interrupts; and processes run on
//! every processor, all at once; and stopping the others, as a panic does,
//! halts each, whatever it was doing.
//! Under QEMU (xAPIC mode) with one, two and four processors, under UEFI, and
//! under Bochs (x2APIC mode).
//! programs: probe
//! run: --smp 1 --kernel-arg test.cpus=1
//! run: --smp 2 --kernel-arg test.cpus=2
//! run: --smp 4 --kernel-arg test.cpus=4
//! run: --uefi --smp 4 --kernel-arg test.cpus=4
//! run: --bochs --smp 2 --kernel-arg test.cpus=2
#![no_std]
#![no_main]

extern crate alloc;

use bootloader_api::{BootInfo, entry_point};
use core::sync::atomic::{AtomicU64, Ordering};
use kernel::arch::acpi::MAX_CPUS;
use kernel::arch::paging::{table, tlb::Tlb};
use kernel::arch::smp::Invalidation;
use kernel::arch::{apic, interrupts, smp, user_memory};
use kernel::memory::with_vm;
use kernel::process;
use kernel::testing;
use kernel::vm::page::{FrameState, PAGE_SIZE, Pfn};
use kernel::vm::{SpaceId, VirtAddr, VmError};
use kernel_tests::{
    accounted_free, activate, assert_all_reaped, change_behind_the_layers_back, destroy,
    expected_cpus, probe, run_until, space_with, warm_up_with_probe, write,
};
use x86_64::PhysAddr;
use x86_64::registers::control::Cr3;
use x86_64::structures::paging::PhysFrame;

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::start();
    // Page-table roots, heap and a kernel stack made before any baseline.
    warm_up_with_probe();
    testing::run(&kernel::tests![
        every_processor_comes_online,
        each_processor_has_its_own_apic_id,
        the_boot_processor_is_processor_zero,
        every_processor_timer_ticks,
        every_other_processor_answers_each_call,
        a_shootdown_reaches_every_processor_holding_the_translation,
        heap_pages_given_back_are_forgotten_by_every_processor,
        each_processor_takes_single_frames_from_its_own_cache,
        a_refused_access_returns_its_error_on_every_processor,
        the_apics_deliver_interrupts_and_the_8259_is_masked,
        processes_run_on_every_processor,
        // Last: the others stay stopped.
        stopping_the_others_halts_every_other_processor,
    ]);
}

fn every_processor_comes_online() {
    assert_eq!(smp::counts(), (expected_cpus(), expected_cpus()), "(online, listed)");
    for index in 0..MAX_CPUS {
        assert_eq!(smp::cpu(index).is_some(), index < expected_cpus(), "processor {index}");
    }
}

fn each_processor_has_its_own_apic_id() {
    let ids: alloc::vec::Vec<u32> =
        (0..expected_cpus()).map(|index| smp::cpu(index).expect("online").0).collect();
    for (index, id) in ids.iter().enumerate() {
        assert!(!ids[..index].contains(id), "processors share APIC ID {id}: {ids:?}");
    }
}

fn the_boot_processor_is_processor_zero() {
    assert_eq!(smp::this_cpu(), 0);
    assert_eq!(smp::cpu(0).map(|cpu| cpu.0), Some(apic::id()));
}

fn every_processor_timer_ticks() {
    let ticks = |index| smp::cpu(index).expect("online").1;
    let before: alloc::vec::Vec<u64> = (0..expected_cpus()).map(ticks).collect();
    run_until("every processor's timer ticks 5 times", 5, || {
        before.iter().enumerate().all(|(index, was)| ticks(index) >= was + 5)
    });
}

fn every_other_processor_answers_each_call() {
    let calls = |index| smp::cpu(index).expect("online").2;
    for index in 1..expected_cpus() {
        for round in 0..3 {
            let before = calls(index);
            assert!(smp::call(index), "processor {index} did not answer call {round}");
            assert_eq!(calls(index), before + 1, "processor {index}, call {round}");
        }
    }
    assert!(!smp::call(expected_cpus()), "a processor that is not there answered");
}

/// Where the shootdown test's page is.
const BASE: u64 = 0x4000_0000;

/// On another processor: loads the root at physical `root`, returns the one
/// it had.
fn swap_root(root: u64) -> u64 {
    let (old, flags) = Cr3::read_raw();
    // SAFETY: `root` is a complete root (a space's, or the one this processor
    // had), whose kernel half is the boot root's; this processor runs only
    // kernel code meanwhile, in its idle loop and request handler.
    unsafe { Cr3::write_raw(PhysFrame::containing_address(PhysAddr::new(root)), flags) };
    old.start_address().as_u64()
}

/// On another processor: the word at `BASE` through its loaded root.
fn read_base(_: u64) -> u64 {
    user_memory::read_u64(VirtAddr(BASE)).expect("the page is mapped")
}

fn a_shootdown_reaches_every_processor_holding_the_translation() {
    let others: alloc::vec::Vec<usize> = (1..expected_cpus()).collect();
    if others.is_empty() {
        // Nobody to shoot at: nothing is waited for.
        assert_eq!(smp::invalidate_others(Invalidation::All), 0);
        return;
    }
    let (pages_before, all_before) = smp::shootdowns_served();
    for what in [Invalidation::range(BASE, 1), Invalidation::range(BASE, 512)] {
        let space = space_with(BASE, 1);
        activate(space);
        write(VirtAddr(BASE), 0x1111);
        let root = Tlb::current_root();
        let mut roots = alloc::vec::Vec::new();
        for &cpu in &others {
            roots.push(smp::run_on(cpu, swap_root, root.addr()).expect("no answer"));
            assert_eq!(smp::run_on(cpu, read_base, 0), Some(0x1111), "processor {cpu}");
        }
        // Another frame behind the page, as the page-table layer would put
        // one there (without telling the other processors yet).
        let other = with_vm(|vm| vm.frames_mut().alloc()).expect("a frame");
        kernel::arch::fill_frame(other, 0x22);
        let mut original = 0;
        change_behind_the_layers_back(root, VirtAddr(BASE), |leaf| {
            original = leaf;
            leaf ^ table::frame_of(leaf).addr() ^ other.addr()
        });
        let stale = smp::run_on(others[0], read_base, 0);
        kernel::println!(
            "smp: {what:?}: before it, processor {} read {:#x}",
            others[0],
            stale.unwrap_or(0)
        );
        assert_eq!(smp::invalidate(&others, what), 0, "{what:?}: not every processor answered");
        for &cpu in &others {
            let seen = smp::run_on(cpu, read_base, 0);
            assert_eq!(seen, Some(0x2222_2222_2222_2222), "{what:?}: processor {cpu}");
        }
        for (&cpu, &old) in others.iter().zip(&roots) {
            smp::run_on(cpu, swap_root, old).expect("no answer");
        }
        change_behind_the_layers_back(root, VirtAddr(BASE), |_| original);
        x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(BASE));
        with_vm(|vm| vm.frames_mut().free(other)).expect("free the frame");
        destroy(&[space]);
    }
    let (pages, all) = smp::shootdowns_served();
    let served = (others.len() as u64, others.len() as u64);
    assert_eq!((pages - pages_before, all - all_before), served, "(pages, everything) served");
}

/// On another processor: the word at kernel address `address`.
fn read_word(address: u64) -> u64 {
    // SAFETY: the caller passes an aligned address of a heap block it holds.
    unsafe { (address as *const u64).read_volatile() }
}

/// The heap gives an emptied arena's pages back (unmapping them), and maps
/// the same addresses again over other frames: every processor that read
/// them before sees the new frames, not the old ones through its TLB.
fn heap_pages_given_back_are_forgotten_by_every_processor() {
    const BYTES: usize = 2 * kernel::heap::ARENA_BYTES;
    // Larger than an arena: a new one, of slots nothing else uses.
    let first = alloc::vec![0x11u8; BYTES];
    let address = first.as_ptr() as u64 + (BYTES / 2) as u64;
    for cpu in 1..expected_cpus() {
        assert_eq!(smp::run_on(cpu, read_word, address), Some(0x1111_1111_1111_1111), "{cpu}");
    }
    let (mapped, _) = kernel::heap::usage();
    drop(first);
    // The refill at the end of VM work trims the heap.
    with_vm(|_| ());
    let (trimmed, _) = kernel::heap::usage();
    assert!(trimmed + BYTES <= mapped, "the arena was not given back: {mapped} -> {trimmed}");
    // The freed frames are held meanwhile, so the heap maps other ones.
    let held = with_vm(|vm| {
        (0..BYTES / PAGE_SIZE as usize)
            .map(|_| vm.frames_mut().alloc())
            .collect::<Result<alloc::vec::Vec<_>, _>>()
    })
    .expect("frames to hold");
    let second = alloc::vec![0x22u8; BYTES];
    let range = second.as_ptr() as u64..second.as_ptr() as u64 + BYTES as u64;
    assert!(range.contains(&address), "the heap put the second block elsewhere: {range:#x?}");
    for cpu in 1..expected_cpus() {
        let seen = smp::run_on(cpu, read_word, address);
        assert_eq!(seen, Some(0x2222_2222_2222_2222), "processor {cpu} read an old frame");
    }
    drop(second);
    with_vm(|vm| held.into_iter().try_for_each(|pfn| vm.frames_mut().free(pfn)))
        .expect("free the held frames");
}

/// Single frames come and go through the running processor's own cache: the
/// frame the boot processor gave back last is the next it takes, however
/// many other processors take and give back frames meanwhile, each from and
/// to its own cache.
fn each_processor_takes_single_frames_from_its_own_cache() {
    let limit = with_vm(|vm| vm.frames().frame_cache_limit());
    assert_eq!(limit, kernel::cmdline::DEFAULT_FRAME_CACHE, "caches are on by default");
    let mine = with_vm(|vm| {
        let frames = vm.frames_mut();
        let pfn = frames.alloc()?;
        frames.free(pfn)?;
        Ok::<_, kernel::vm::VmError>(pfn)
    })
    .expect("a frame");
    let cached = |pfn| with_vm(|vm| vm.frames().page(pfn).and_then(|page| page.state()));
    assert_eq!(cached(mine), Some(FrameState::Cached), "a frame given back");
    for cpu in 1..expected_cpus() {
        let theirs = smp::run_on(cpu, take_and_give_back_a_frame, 0).expect("no answer");
        assert_ne!(theirs, u64::MAX, "processor {cpu} could not take a frame");
        assert_ne!(Pfn(theirs), mine, "processor {cpu} took processor 0's cached frame");
        assert_eq!(cached(Pfn(theirs)), Some(FrameState::Cached), "processor {cpu}'s frame");
    }
    let again = with_vm(|vm| vm.frames_mut().alloc()).expect("a frame");
    with_vm(|vm| vm.frames_mut().free(again)).expect("give it back");
    assert_eq!(again, mine, "processor 0 did not get its own cached frame back");
}

/// A user-memory accessor whose access the VM refuses returns the VM's
/// error on whichever processor it runs: the fault handler finds the access
/// in the fixup table and keeps the error for the processor that faulted.
fn a_refused_access_returns_its_error_on_every_processor() {
    let space = space_with(BASE, 1);
    for cpu in 0..expected_cpus() {
        let seen = match cpu {
            0 => refused_read(u64::from(space.0)),
            _ => smp::run_on(cpu, refused_read, u64::from(space.0)).expect("no answer"),
        };
        assert_eq!(seen, REFUSED_AS_BAD_ADDRESS, "processor {cpu}");
    }
    destroy(&[space]);
}

/// What [`refused_read`] returns when the read failed as it should.
const REFUSED_AS_BAD_ADDRESS: u64 = 1;

/// On the processor this runs on: reads an unmapped word of `space` through
/// an accessor; [`REFUSED_AS_BAD_ADDRESS`] if that is the error it returns.
fn refused_read(space: u64) -> u64 {
    let space = SpaceId(u32::try_from(space).expect("a space identifier"));
    with_vm(|vm| vm.activate(space)).expect("activate");
    let result = user_memory::read_u64(VirtAddr(2 * BASE));
    with_vm(|vm| vm.deactivate());
    match result {
        Err(VmError::BadAddress) => REFUSED_AS_BAD_ADDRESS,
        Ok(_) => 2,
        Err(_) => 3,
    }
}

/// Takes a frame and gives it back, on the processor this runs on; returns
/// its number (`u64::MAX` if there was none).
fn take_and_give_back_a_frame(_: u64) -> u64 {
    with_vm(|vm| {
        let frames = vm.frames_mut();
        let pfn = frames.alloc().ok()?;
        frames.free(pfn).ok()?;
        Some(pfn.0)
    })
    .unwrap_or(u64::MAX)
}

fn the_apics_deliver_interrupts_and_the_8259_is_masked() {
    assert!(apic::active(), "the APICs are not in use");
    assert_eq!(interrupts::legacy_masks(), (0xff, 0xff), "the 8259's masks");
    let (errors, status) = apic::errors();
    assert_eq!(errors, 0, "local APIC errors (last status {status:#x})");
}

/// One computing process per processor: each processor runs turns of them,
/// and at some moment all run one at once; every frame comes back.
fn processes_run_on_every_processor() {
    let baseline = accounted_free();
    let cpus = expected_cpus();
    let before: alloc::vec::Vec<u64> = (0..cpus).map(process::turns).collect();
    process::most_at_once();
    let work = probe::work(probe::COMPUTE, 10);
    let pids: alloc::vec::Vec<_> =
        (0..cpus).map(|_| process::spawn("probe", work).expect("spawn probe")).collect();
    for pid in pids {
        assert_eq!(process::wait_for(pid), Some(0), "process {pid}");
    }
    for (cpu, before) in before.into_iter().enumerate() {
        assert!(process::turns(cpu) > before, "processor {cpu} ran no process");
    }
    assert_eq!(process::most_at_once(), cpus as u64, "processes running at once");
    assert_all_reaped();
    assert_eq!(accounted_free(), baseline, "frames leaked");
}

/// On another processor: `value`.
fn echo(value: u64) -> u64 {
    value
}

/// On another processor: sets the word at kernel address `address` to 1 and
/// spins, interrupts off, until the machine stops it.
fn spin_until_stopped(address: u64) -> u64 {
    // SAFETY: the caller passes the address of a static atomic word.
    let started = unsafe { &*(address as *const AtomicU64) };
    started.store(1, Ordering::SeqCst);
    loop {
        core::hint::spin_loop();
    }
}

/// What a panic does first: every other processor gets an NMI and halts,
/// even one spinning with its interrupts off (here: in a request's handler,
/// whose requester has given up on it), and none is asked for anything
/// after.
fn stopping_the_others_halts_every_other_processor() {
    static STARTED: AtomicU64 = AtomicU64::new(0);
    let others: alloc::vec::Vec<usize> = (1..expected_cpus()).collect();
    if let Some(&first) = others.first() {
        // Interrupts off there until it stops; `run_on` gives up after a second.
        let address = &STARTED as *const _ as u64;
        assert_eq!(smp::run_on(first, spin_until_stopped, address), None);
        assert_eq!(STARTED.load(Ordering::SeqCst), 1, "it never started");
    }
    assert_eq!(smp::stop_others(), others.len(), "processors that said they stopped");
    for &cpu in &others {
        assert!(smp::cpu(cpu).is_none(), "processor {cpu} is still listed online");
        assert_eq!(smp::run_on(cpu, echo, 7), None, "processor {cpu} was asked for work");
    }
}
