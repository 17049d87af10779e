//! The user/kernel boundary holds under random system calls: the `fuzz`
//! program (`user/src/bin/fuzz/`) makes seeded random calls with boundary
//! arguments, in children it replaces whenever one is killed. The kernel must
//! survive, the program must see no breach (a range outside user space
//! accepted, an unknown call number run, an error the abi does not define),
//! every process must be reaped, every frame come back and the page-table
//! cache keep its size. The program prints its seed and argument first; that
//! argument replays the run.
//!
//! The test parameters `test.fuzz_calls=N` (at least 20,000 in the default
//! runs) and `test.fuzz_seed=S` set the run; the runner fills them from the
//! environment, so `FUZZ_CALLS=1000000 FUZZ_SEED=7 FUZZ_TIMEOUT=3600` soaks.
//! `test.fuzz_huge_zaps=0` (`FUZZ_HUGE_ZAPS=0`) keeps zap ranges under 64 MiB,
//! and `test.fuzz_no_system_flags=1` (`FUZZ_NO_SYSTEM_FLAGS=1`) keeps the
//! nested-task and trap flags out of RFLAGS at the calls; by default both are
//! allowed (a sparse zap costs its regions, and `syscall` clears every flag).
//! Booted with the default memory and at the smallest machine BIOS boots
//! (21 MiB).
//! programs: fuzz
//! run: --kernel-arg test.fuzz_calls=${FUZZ_CALLS:-20000} --kernel-arg test.fuzz_seed=${FUZZ_SEED:-1} --kernel-arg test.fuzz_huge_zaps=${FUZZ_HUGE_ZAPS:-1} --kernel-arg test.fuzz_no_system_flags=${FUZZ_NO_SYSTEM_FLAGS:-0}
//! run: --memory 21M --kernel-arg test.fuzz_calls=${FUZZ_CALLS:-20000} --kernel-arg test.fuzz_seed=${FUZZ_SEED:-2} --kernel-arg test.fuzz_huge_zaps=${FUZZ_HUGE_ZAPS:-1} --kernel-arg test.fuzz_no_system_flags=${FUZZ_NO_SYSTEM_FLAGS:-0}
//! timeout: ${FUZZ_TIMEOUT:-300}
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::memory::with_vm;
use kernel::process;
use kernel::{arch, println, testing};
use kernel_tests::{accounted_free, assert_all_reaped, warm_up_with};

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

/// Calls made unless the command line says.
const DEFAULT_CALLS: u64 = 20_000;
/// The seed unless the command line says.
const DEFAULT_SEED: u64 = 1;
/// Timer ticks a second.
const TICKS_PER_SECOND: u64 = 100;

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::start();
    warm_up();
    testing::run(&kernel::tests![
        user_programs_and_the_kernel_agree_where_user_space_ends,
        random_system_calls_leave_the_kernel_whole,
    ])
}

/// Runs a few calls once, and gives the heap room, so that what the test
/// counts afterwards is its own.
fn warm_up() {
    warm_up_with("fuzz", argument(DEFAULT_SEED, 100) | allowances());
    let room: alloc::vec::Vec<u8> = alloc::vec![0; 1 << 20];
    drop(room);
}

extern crate alloc;

/// The `fuzz` program's argument bit that allows huge zap ranges.
const HUGE_ZAPS: u64 = 1 << 63;
/// The `fuzz` program's argument bit that keeps the nested-task and trap
/// flags out of RFLAGS.
const NO_SYSTEM_FLAGS: u64 = 1 << 62;

/// The `fuzz` program's argument for `calls` calls seeded with `seed`.
fn argument(seed: u64, calls: u64) -> u64 {
    (calls << 32) | (seed & 0xffff_ffff)
}

/// The `fuzz` argument bits the command line asks for beyond seed and count.
fn allowances() -> u64 {
    let huge_zaps = if option("fuzz_huge_zaps").unwrap_or(0) != 0 { HUGE_ZAPS } else { 0 };
    let no_system_flags =
        if option("fuzz_no_system_flags").unwrap_or(0) != 0 { NO_SYSTEM_FLAGS } else { 0 };
    huge_zaps | no_system_flags
}

/// The value of the command-line word `key=VALUE`, if there is one and it
/// is a number.
fn option(key: &str) -> Option<u64> {
    testing::parameter(key)?.parse().ok()
}

fn user_programs_and_the_kernel_agree_where_user_space_ends() {
    assert_eq!(abi::USER_END, kernel::vm::USER_END, "abi::USER_END is not the kernel's");
}

fn random_system_calls_leave_the_kernel_whole() {
    let calls = option("fuzz_calls").unwrap_or(DEFAULT_CALLS);
    let seed = option("fuzz_seed").unwrap_or(DEFAULT_SEED);
    let cache = with_vm(|vm| vm.mmu().capacity());
    let baseline = free_and_cached();
    let started = arch::ticks();
    let pid = process::spawn("fuzz", argument(seed, calls) | allowances()).expect("spawn fuzz");
    let status = process::wait_for(pid).expect("fuzz vanished");
    let ticks = arch::ticks() - started;
    println!(
        "syscall_fuzz: {calls} calls, seed {seed:#x}, {}.{:02} s",
        ticks / TICKS_PER_SECOND,
        ticks % TICKS_PER_SECOND
    );
    assert_eq!(status, 0, "fuzz seed {seed:#x} failed (status word {status:#x})");
    assert_all_reaped();
    assert_eq!(free_and_cached(), baseline, "frames leaked by fuzz seed {seed:#x}");
    assert_eq!(with_vm(|vm| vm.mmu().capacity()), cache, "the page-table cache size changed");
}

/// Free frames, counted as `accounted_free` does, plus the page-table pages
/// the cache holds once no process is left: the calls shrink and grow the
/// cache, which frees tables the kernel would otherwise have kept.
fn free_and_cached() -> usize {
    accounted_free() + with_vm(|vm| vm.mmu().statistics().table_pages) as usize
}
