//! The user/kernel boundary holds: attacks a hostile program once made on the
//! kernel (the `hostile` program, one mode each) now fail cleanly or kill only
//! the attacker; the processor's protections are on; the interrupt stacks that
//! can be entered from anywhere have guard pages. Each attack checks that the
//! kernel lives, every process is reaped and every frame comes back. Booted
//! under QEMU, whose default processor here has SMEP, SMAP and UMIP, at the
//! smallest machine, and in Bochs, whose processor follows Intel's `sysret`
//! rule (a non-canonical return address faults in ring 0).
//! programs: hostile
//! run: --kernel-arg pt_cache=2
//! run: --memory 21M --kernel-arg pt_cache=1
//! run: --bochs --kernel-arg pt_cache=2 --kernel-arg tlb_check
//! timeout: 300
#![no_std]
#![no_main]

extern crate alloc;

use bootloader_api::{BootInfo, entry_point};
use kernel::arch::{self, cpu, fpu, gdt, stack};
use kernel::process;
use kernel::testing;
use kernel_tests::{
    accounted_free, assert_all_reaped, heap_in_use, run_program, run_until, warm_up_with,
};
use x86_64::registers::control::{Cr0, Cr0Flags};

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

/// The `hostile` program's modes (see `user/src/bin/hostile/main.rs`).
mod hostile {
    pub const NESTED_TASK: u64 = 1;
    pub const SYSRET_EDGE: u64 = 2;
    pub const ZAP_USER_HALF: u64 = 3;
    pub const SPLIT_REGIONS: u64 = 4;
    pub const FPU_PER_PROCESS: u64 = 5;
    pub const FORK_BOMB: u64 = 6;
    pub const FORK_BOMB_ZOMBIES: u64 = 7;
    pub const PT_CACHE: u64 = 8;
    pub const HUGE_WRITE: u64 = 9;
    pub const NOTHING: u64 = 10;
}

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::start();
    // A first run, so that roots, heap and kernel stacks exist before any
    // baseline is taken.
    warm_up_with("hostile", hostile::NOTHING);
    testing::run(&kernel::tests![
        protections_are_on_where_the_processor_has_them,
        nmi_machine_check_debug_and_double_fault_have_guarded_stacks,
        nested_task_flag_does_not_reach_the_kernel,
        sysret_never_returns_to_a_non_canonical_address,
        zap_of_the_whole_user_half_returns,
        region_splits_are_limited_and_give_their_heap_back,
        fpu_state_is_per_process,
        a_fork_bomb_gets_try_again_and_the_kernel_still_starts_programs,
        zombies_that_are_never_waited_for_fill_only_their_share,
        page_table_cache_size_is_not_for_forked_children,
        a_huge_write_is_cut_short,
        the_kernel_heap_gives_its_frames_back,
        spurious_interrupts_are_counted_and_not_acknowledged,
    ])
}

/// Whether QEMU presents the processor (its brand string says so).
fn under_qemu() -> bool {
    let mut brand = [0u8; 48];
    for (index, leaf) in (0x8000_0002u32..=0x8000_0004).enumerate() {
        let registers = core::arch::x86_64::__cpuid(leaf);
        for (word, value) in
            [registers.eax, registers.ebx, registers.ecx, registers.edx].into_iter().enumerate()
        {
            let at = index * 16 + word * 4;
            brand[at..at + 4].copy_from_slice(&value.to_le_bytes());
        }
    }
    brand.windows(4).any(|window| window == b"QEMU")
}

fn protections_are_on_where_the_processor_has_them() {
    assert_eq!(cpu::enabled(), cpu::offered(), "CR4 lacks a protection the CPU offers");
    assert!(cpu::enabled().smep, "SMEP is off");
    if under_qemu() {
        let on = cpu::enabled();
        assert!(on.smap && on.umip, "QEMU's default processor has SMAP and UMIP: {on:?}");
    }
    assert!(fpu::sse_enabled(), "SSE is not enabled for user mode");
    let caches_off = Cr0Flags::CACHE_DISABLE | Cr0Flags::NOT_WRITE_THROUGH;
    assert!(!Cr0::read().intersects(caches_off), "the caches are off: {:?}", Cr0::read());
}

fn nmi_machine_check_debug_and_double_fault_have_guarded_stacks() {
    let tops = gdt::IST_INDICES.map(gdt::interrupt_stack);
    for (index, top) in gdt::IST_INDICES.iter().zip(tops) {
        assert!(stack::is_pool_stack_top(top), "IST {index} at {top:#x} has no guard page");
    }
    for (first, top) in tops.iter().enumerate() {
        assert!(!tops[first + 1..].contains(top), "two interrupt stacks share {top:#x}");
    }
}

fn nested_task_flag_does_not_reach_the_kernel() {
    run_program("hostile", hostile::NESTED_TASK);
}

fn sysret_never_returns_to_a_non_canonical_address() {
    run_program("hostile", hostile::SYSRET_EDGE);
}

fn zap_of_the_whole_user_half_returns() {
    run_program("hostile", hostile::ZAP_USER_HALF);
}

fn region_splits_are_limited_and_give_their_heap_back() {
    let heap = heap_in_use();
    run_program("hostile", hostile::SPLIT_REGIONS);
    assert_eq!(heap_in_use(), heap, "kernel heap bytes still in use after the program ended");
}

fn fpu_state_is_per_process() {
    run_program("hostile", hostile::FPU_PER_PROCESS);
}

/// Starts the bomb in `mode`; once the table is as full as fork lets it be,
/// starts another program from the kernel, which must run; then the bomb ends.
fn fork_bomb(mode: u64) {
    let baseline = accounted_free();
    let bomb = process::spawn("hostile", mode).expect("spawn the bomb");
    let full = process::MAX_PROCESSES - process::RESERVED_PROCESSES;
    run_until("the bomb did not fill the table", 30, || process::processes().len() >= full);
    let other = process::spawn("hostile", hostile::NOTHING).expect("the kernel's reserve");
    assert_eq!(process::wait_for(other), Some(0), "a program started during the bomb failed");
    assert_eq!(process::wait_for(bomb), Some(0), "the bomb's own checks failed");
    assert_all_reaped();
    assert_eq!(accounted_free(), baseline, "frames leaked by the bomb");
}

fn a_fork_bomb_gets_try_again_and_the_kernel_still_starts_programs() {
    fork_bomb(hostile::FORK_BOMB);
}

fn zombies_that_are_never_waited_for_fill_only_their_share() {
    fork_bomb(hostile::FORK_BOMB_ZOMBIES);
}

fn page_table_cache_size_is_not_for_forked_children() {
    run_program("hostile", hostile::PT_CACHE);
}

fn a_huge_write_is_cut_short() {
    run_program("hostile", hostile::HUGE_WRITE);
}

/// Heap that grew for a burst of kernel allocations goes back to the frame
/// allocator once they are freed: what may stay is the page-table pages that
/// mapped it (one per 2 MiB of heap region) and at most one emptied arena that
/// the heap keeps for its free room.
fn the_kernel_heap_gives_its_frames_back() {
    let before = arch::heap_frames();
    // All the heap has free, and 2 MiB more.
    let (size, used) = kernel::heap::usage();
    let blocks = (size - used + (2 << 20)) / (64 * 1024);
    let burst: alloc::vec::Vec<alloc::vec::Vec<u8>> =
        (0..blocks).map(|_| alloc::vec![5u8; 64 * 1024]).collect();
    let grown = arch::heap_frames();
    assert!(grown >= before + 512, "the burst did not grow the heap: {before} -> {grown}");
    assert!(burst.iter().all(|block| block.iter().all(|&byte| byte == 5)));
    drop(burst);
    // The next release of the VM lock trims the heap.
    kernel::memory::with_vm(|_| ());
    let after = arch::heap_frames();
    let kept = (grown - before) * 4096 / (2 << 20) + 2 + kernel::heap::ARENA_BYTES / 4096;
    kernel::println!("heap frames: {before} before, {grown} at the burst, {after} after");
    assert!(after <= before + kept, "heap frames {before} -> {grown} -> {after}");
}

/// IRQ 7 and 15 with nothing in service at the PICs (what a spurious
/// interrupt looks like, delivered here by `int`) are counted, and the kernel
/// carries on taking interrupts: the timer still ticks.
fn spurious_interrupts_are_counted_and_not_acknowledged() {
    let before = arch::interrupts::spurious_interrupts();
    // SAFETY: vectors 39 and 47 are the PICs' IRQ 7 and 15, whose handlers
    // only read the PICs' in-service registers (and acknowledge the cascade).
    unsafe { core::arch::asm!("int 39", "int 47") };
    assert_eq!(arch::interrupts::spurious_interrupts(), before + 2, "not counted as spurious");
    let ticks = arch::ticks();
    let deadline = ticks + 2;
    while arch::ticks() < deadline {
        arch::wait_for_interrupt();
    }
}
