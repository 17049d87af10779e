//! Shared helpers for the test kernels: frame accounting, address spaces touched
//! from kernel mode, and runs of the `probe` program.
#![no_std]

extern crate alloc;

use kernel::arch::paging::table;
use kernel::arch::{self, user_memory};
use kernel::memory::with_vm;
use kernel::process;
use kernel::vm::{PAGE_SIZE, Pfn, Placement, Protection, SpaceId, VirtAddr};
use x86_64::structures::paging::PageTableFlags;

/// Read and write.
pub const READ_WRITE: Protection = Protection::READ.union(Protection::WRITE);

/// Free frames after checking the allocator's books, plus what the heap and the
/// kernel-stack pool took meanwhile (both are the kernel's caches, not the
/// tests').
pub fn accounted_free() -> usize {
    let free = with_vm(|vm| {
        vm.frames().check().expect("frame accounting check failed");
        vm.frames().counters().free
    });
    free + arch::heap_frames() + process::stack_frames()
}

/// Takes every free frame but `leave`, to make memory short; give them back
/// with [`release_frames`].
pub fn hold_frames_but(leave: usize) -> alloc::vec::Vec<Pfn> {
    kernel::memory::with_frames(|frames| {
        // The reclaim reserve cannot be taken by anyone else.
        let count = frames.counters().free.saturating_sub(leave.max(frames.reclaim_reserve()));
        let mut held = alloc::vec::Vec::with_capacity(count);
        for _ in 0..count {
            held.push(frames.alloc().expect("a counted free frame"));
        }
        held
    })
}

/// Gives back frames [`hold_frames_but`] took.
pub fn release_frames(held: alloc::vec::Vec<Pfn>) {
    kernel::memory::with_frames(|frames| {
        held.into_iter().for_each(|pfn| frames.free(pfn).expect("a frame held by the test"));
    });
}

/// A new space with `pages` read-write pages at `start`.
pub fn space_with(start: u64, pages: u64) -> SpaceId {
    with_vm(|vm| {
        let space = vm.create_space();
        let placement = Placement::Exact(VirtAddr(start));
        vm.map_anonymous(space, placement, pages * PAGE_SIZE, READ_WRITE).expect("map_anonymous");
        space
    })
}

pub fn activate(space: SpaceId) {
    with_vm(|vm| vm.activate(space)).expect("activate");
}

pub fn destroy(spaces: &[SpaceId]) {
    with_vm(|vm| spaces.iter().for_each(|&space| vm.destroy(space).expect("destroy")));
}

/// Reads a word of the active space, or panics naming the address.
pub fn read(address: VirtAddr) -> u64 {
    user_memory::read_u64(address).unwrap_or_else(|error| panic!("read {address:?}: {error}"))
}

/// Writes a word of the active space, or panics naming the address.
pub fn write(address: VirtAddr, value: u64) {
    user_memory::write_u64(address, value)
        .unwrap_or_else(|error| panic!("write {address:?}: {error}"));
}

/// Replaces the leaf for `address` under `root` (which must be present) with
/// what `change` makes of it, behind the page-table layer's back: no `invlpg`,
/// no stale mark, as a bug in that layer would. For the tests that the shadow
/// TLB (`tlb_check`) catches such a bug.
pub fn change_behind_the_layers_back(
    root: Pfn,
    address: VirtAddr,
    change: impl FnOnce(u64) -> u64,
) {
    with_vm(|_| {
        let leaf = table::lookup(root, address.value());
        assert!(table::is_present(leaf), "no present leaf at {address:?} to change");
        let mut no_tables = || unreachable!("the page's tables exist");
        table::install(root, address.value(), change(leaf), &mut no_tables)
            .expect("change behind its back")
    });
}

/// Clears the leaf for `address` under `root` behind the page-table layer's
/// back (see [`change_behind_the_layers_back`]).
pub fn unmap_behind_the_layers_back(root: Pfn, address: VirtAddr) {
    change_behind_the_layers_back(root, address, |_| 0);
}

/// Takes write away from the leaf for `address` under `root` behind the
/// page-table layer's back, as a copy-on-write that forgot its flush would.
pub fn write_protect_behind_the_layers_back(root: Pfn, address: VirtAddr) {
    change_behind_the_layers_back(root, address, |leaf| {
        table::restrict(leaf, Protection::READ | Protection::EXECUTE | Protection::USER)
    });
}

/// Points the leaf for `address` under `root` at another frame (a fresh one,
/// never freed), keeping its rights and usage bits, behind the page-table
/// layer's back, as a page replaced without a flush would be.
pub fn move_behind_the_layers_back(root: Pfn, address: VirtAddr) {
    let other = with_vm(|vm| vm.frames_mut().alloc()).expect("a frame to point at");
    change_behind_the_layers_back(root, address, |leaf| {
        // The frame's address bits are exactly the leaf's address field.
        leaf ^ table::frame_of(leaf).addr() ^ other.addr()
    });
}

/// Clears the dirty bit of the leaf for `address` under `root` behind the
/// page-table layer's back, as a harvest that forgot its flush would: a
/// processor holding the translation as dirty would not set the bit again.
pub fn clean_behind_the_layers_back(root: Pfn, address: VirtAddr) {
    change_behind_the_layers_back(root, address, |leaf| leaf & !PageTableFlags::DIRTY.bits());
}

/// Clears the accessed bit of the leaf for `address` under `root` behind the
/// page-table layer's back, as an ageing scan that forgot its flush would: a
/// processor holding the translation would not set the bit again, and the
/// next use would go unnoticed.
pub fn age_behind_the_layers_back(root: Pfn, address: VirtAddr) {
    change_behind_the_layers_back(root, address, |leaf| leaf & !PageTableFlags::ACCESSED.bits());
}

/// The `probe` program's modes (see `user/src/bin/probe/main.rs`).
pub mod probe {
    pub const FORK: u64 = 1;
    /// [`FORK`] with other processes running: the kernel's copy counts are
    /// not checked.
    pub const FORK_AMONG_OTHERS: u64 = FORK | 1 << 8;
    pub const SHARED: u64 = 2;
    pub const MANY: u64 = 3;
    pub const HOG: u64 = 4;
    pub const BAD_ARGUMENTS: u64 = 5;
    pub const CRASHES: u64 = 6;
    pub const FORK_UNTIL_OUT_OF_MEMORY: u64 = 7;
    pub const SPIN: u64 = 8;
    pub const WAIT_ON_SPINNER: u64 = 9;
    /// Mode 10: `rounds` rounds of one kind of work (the next constants).
    pub const fn work(kind: u64, rounds: u64) -> u64 {
        10 | kind << 8 | rounds << 16
    }
    /// A million additions a round, no system call.
    pub const COMPUTE: u64 = 0;
    /// 64 pages mapped, faulted in by writes, checked and unmapped a round.
    pub const FAULT: u64 = 1;
    /// A fork of a child that exits at once, and a wait, a round.
    pub const FORK_WAIT: u64 = 2;
    /// 64 pages kept; each round checks what the last one wrote in each,
    /// and writes anew.
    pub const VERIFY: u64 = 3;
}

/// The `crash` program's modes (see `user/src/bin/crash/main.rs`): each does
/// one forbidden thing, but `CALM` (exits with 0), and `SSE_USABLE` and
/// `X87_USABLE`, which exit with 0 if a plain SSE or x87 instruction works.
/// Modes of the `swapper` program (its argument: mode, then MiB from bit 8).
pub mod swapper {
    pub const BIG: u64 = 1;
    pub const FORK: u64 = 2;
    pub const SHARED: u64 = 3;
    pub const HOLD: u64 = 6;

    /// The argument for `mode` over `mib` MiB.
    pub const fn argument(mode: u64, mib: u64) -> u64 {
        mode | mib << 8
    }
}

pub mod crash {
    pub const CALM: u64 = 0;
    pub const UNDEFINED_OPCODE: u64 = 1;
    pub const BREAKPOINT: u64 = 2;
    pub const INT_0X80: u64 = 3;
    pub const SYSENTER: u64 = 4;
    pub const PORT_IN: u64 = 5;
    pub const PORT_OUT: u64 = 6;
    pub const CLI: u64 = 7;
    pub const HLT: u64 = 8;
    pub const RDMSR: u64 = 9;
    pub const IRETQ_TO_KERNEL: u64 = 10;
    pub const JUMP_TO_NON_CANONICAL: u64 = 11;
    pub const SSE_USABLE: u64 = 12;
    pub const SSE_DIVIDE_BY_ZERO: u64 = 13;
    pub const X87_USABLE: u64 = 14;
    pub const X87_DIVIDE_BY_ZERO: u64 = 15;
    pub const DIVIDE_BY_ZERO: u64 = 16;
    pub const READ_CR0: u64 = 17;
    pub const SGDT: u64 = 18;
    pub const SMSW: u64 = 19;
    pub const SYSCALL_AT_THE_TOP: u64 = 20;
    pub const SYSCALL_WITH_THE_TRAP_FLAG: u64 = 21;
    pub const SYSCALL_WITH_NESTED_TASK: u64 = 22;
    pub const YIELD_WITH_NESTED_TASK: u64 = 23;
    pub const ICEBP: u64 = 24;
    /// System calls (and a fork) after the program changed GS: must exit 0.
    pub const GS_CHANGED: u64 = 30;
    pub const SYSCALL_WITH_A_KERNEL_STACK: u64 = 25;
    pub const SYSCALL_WITH_A_NON_CANONICAL_STACK: u64 = 26;
    pub const UD2_WITH_A_NON_CANONICAL_STACK: u64 = 27;
    pub const SPLIT_INTO_REGIONS: u64 = 28;
    pub const TOUCH_FAR_APART: u64 = 29;
    /// The exit status of a mode whose fault was let pass.
    pub const ALLOWED: u64 = 0;
    /// The exit status of a mode whose fault the processor recorded but did
    /// not raise (QEMU's TCG and SIMD exceptions).
    pub const NOT_RAISED: u64 = 3;
}

/// Runs `program` with `argument` to its end; returns its status word, after
/// checking that every process was reaped and every frame came back.
pub fn run_to_end(program: &'static str, argument: u64) -> u64 {
    let baseline = accounted_free();
    let pid = process::spawn(program, argument).expect("spawn");
    let status = process::wait_for(pid).expect("the program vanished");
    assert_all_reaped();
    assert_eq!(accounted_free(), baseline, "frames leaked by {program} {argument:#x}");
    status
}

/// Runs `program` once with `argument`, expecting status 0, so that
/// page-table roots, the heap and a kernel stack exist before any baseline is
/// taken.
pub fn warm_up_with(program: &'static str, argument: u64) {
    let pid = process::spawn(program, argument).expect("spawn");
    assert_eq!(process::wait_for(pid), Some(0), "warm-up run of {program} failed");
}

/// Runs `probe` once, so that page-table roots, the heap and a kernel stack
/// exist before any baseline is taken.
pub fn warm_up_with_probe() {
    warm_up_with("probe", probe::SHARED);
}

/// Runs `probe` in `mode` to its end and checks it exited with 0, that nothing
/// is left of it, and that every frame came back.
pub fn run_probe(mode: u64) {
    run_program("probe", mode);
}

/// Runs user program `name` in `mode` to its end and checks it exited with 0,
/// that nothing is left of it, and that every frame came back.
pub fn run_program(name: &'static str, mode: u64) {
    let status = run_to_end(name, mode);
    assert_eq!(status, 0, "{name} mode {mode} failed (status word {status:#x})");
}

/// The processors the machine has, as the run says (the test parameter
/// `test.cpus`, which matches the runner's `--smp`).
pub fn expected_cpus() -> usize {
    let cpus = kernel::testing::parameter("cpus").expect("test.cpus is not set");
    cpus.parse().expect("test.cpus is not a number")
}

/// Runs processes until `done`, failing with `what` after `seconds`.
pub fn run_until(what: &str, seconds: u64, mut done: impl FnMut() -> bool) {
    let deadline = arch::ticks() + seconds * arch::interrupts::TICK_HZ;
    while !done() {
        assert!(arch::ticks() < deadline, "{what} within {seconds} s");
        process::idle();
    }
}

/// Kernel heap bytes in use now.
pub fn heap_in_use() -> usize {
    kernel::heap::usage().1
}

/// No process is left, not even a zombie.
pub fn assert_all_reaped() {
    // Orphans are reaped by the idle task's next turn.
    process::idle();
    let left = process::processes();
    assert!(left.is_empty(), "processes left: {left:?}");
}
