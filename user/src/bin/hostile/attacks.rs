//! The attacks, each with what the process must see when the kernel holds.

use core::arch::asm;
use core::ptr::{read_volatile, write_volatile};
use user::{Ended, Errno, PROT_EXEC, PROT_READ, PROT_WRITE, abi, println};

use super::{PAGE, expect, reap, spawn};

/// Read and write.
const READ_WRITE: u64 = PROT_READ | PROT_WRITE;
/// The highest page a process may map.
const TOP_PAGE: u64 = abi::USER_END - PAGE;
/// `syscall`, as bytes.
const SYSCALL: [u8; 2] = [0x0f, 0x05];

/// `mmap` at exactly `address`.
fn map_at(address: u64, length: u64, protection: u64) -> Result<u64, Errno> {
    // SAFETY: a fresh mapping at an address this program does not use.
    let result = unsafe { user::raw(abi::MMAP, [address, length, protection, 0, 0, 0]) };
    match Errno::from_result(result) {
        Some(errno) => Err(errno),
        None => Ok(result),
    }
}

/// Sets RFLAGS.NT (nested task) in user mode, where `popfq` allows it.
fn set_nested_task() {
    // SAFETY: only RFLAGS changes; NT means nothing to user code in long mode.
    unsafe { asm!("pushfq", "or qword ptr [rsp], 0x4000", "popfq") };
}

/// NT left set across system calls and preemption: the kernel must not inherit
/// it (an `iretq` with NT set faults).
pub fn nested_task_flag() -> bool {
    let child = spawn(|| {
        for _ in 0..50 {
            user::yield_now();
        }
        true
    });
    for round in 0..50u64 {
        set_nested_task();
        user::yield_now();
        set_nested_task();
        // Long enough for the timer to preempt now and then, with NT set.
        let until = user::cycles() + 2_000_000 * (round % 4);
        while user::cycles() < until {
            core::hint::spin_loop();
        }
    }
    expect("fork", child.is_ok(), true) & expect("child", reap(), Ended::Exited(0))
}

/// Jumps to `address` with `rax` = getpid, as a `syscall` there would expect.
fn jump_with_getpid(address: u64) -> ! {
    // SAFETY: deliberately leaves Rust: the process ends by the fault that
    // follows (checked by the parent).
    unsafe { asm!("jmp {}", in(reg) address, in("rax") abi::GETPID, options(noreturn)) }
}

/// The page at the canonical edge cannot be mapped, so no `syscall` can make
/// `sysret` return to a non-canonical address; a `syscall` in the last bytes
/// of the highest page returns to the first address past it, which kills the
/// process by a user-mode fault, not the kernel.
pub fn sysret_to_the_canonical_edge() -> bool {
    let everything = READ_WRITE | PROT_EXEC;
    let edge = abi::USER_END;
    let mut held = expect("map the edge page", map_at(edge, PAGE, everything), Err(Errno::Invalid));
    held &= expect("map the top page", map_at(TOP_PAGE, PAGE, everything), Ok(TOP_PAGE));
    let entry = TOP_PAGE + PAGE - SYSCALL.len() as u64;
    for (offset, byte) in SYSCALL.iter().enumerate() {
        // SAFETY: the top page was just mapped read-write-execute.
        unsafe { write_volatile((entry + offset as u64) as *mut u8, *byte) };
    }
    let child = spawn(|| jump_with_getpid(entry));
    held &= expect("fork", child.is_ok(), true);
    held &= expect("syscall in the top page's last bytes", reap(), Ended::Killed);
    let child = spawn(|| jump_with_getpid(edge - SYSCALL.len() as u64 + PAGE));
    held &= expect("fork", child.is_ok(), true);
    held & expect("jump past the top page", reap(), Ended::Killed)
}

/// `zap` of the whole user half of a sparse space returns (it used to step
/// through the holes a page at a time), and the pages keep their contents.
pub fn zap_the_whole_user_half() -> bool {
    let Ok(low) = user::map_anonymous(PAGE, READ_WRITE) else { return false };
    let mut held = expect("map the top page", map_at(TOP_PAGE, PAGE, READ_WRITE), Ok(TOP_PAGE));
    // SAFETY: both pages are mapped read-write.
    unsafe {
        write_volatile(low as *mut u64, 11);
        write_volatile(TOP_PAGE as *mut u64, 22);
    }
    let start = user::cycles();
    held &= expect("zap", user::zap(PAGE, abi::USER_END - PAGE), Ok(()));
    println!("hostile: zap of the whole user half took {} cycles", user::cycles() - start);
    // SAFETY: as above.
    let (a, b) =
        unsafe { (read_volatile(low as *const u64), read_volatile(TOP_PAGE as *const u64)) };
    held & expect("low page", a, 11) & expect("top page", b, 22)
}

/// `mprotect` of every other page of a large lazy mapping: the splits count
/// against the region limit and stop with `NoMemory`, changing nothing; other
/// calls that need a region are refused too; restoring the protection merges
/// the regions back, so the limit is free again.
pub fn split_regions_without_end() -> bool {
    let length = 1 << 30;
    let Ok(base) = user::map_anonymous(length, READ_WRITE) else { return false };
    let page = |index: u64| base + index * PAGE;
    let mut splits = 0;
    let refused = loop {
        // SAFETY: nothing here holds a reference into the mapping.
        match unsafe { user::protect(page(2 * splits + 1), PAGE, PROT_READ) } {
            Ok(()) => splits += 1,
            Err(errno) => break errno,
        }
    };
    println!("hostile: {splits} read-only pages split the mapping before {refused:?}");
    let mut held =
        expect("refusal", refused, Errno::NoMemory) & expect("limit", splits < 200, true);
    // The refused page is still writable.
    // SAFETY: the page is mapped read-write (the refused call changed nothing).
    unsafe { write_volatile(page(2 * splits + 1) as *mut u64, 5) };
    // SAFETY: as above, no reference into the mapping.
    let hole = unsafe { user::unmap(page(2 * splits + 100), PAGE) };
    held &= expect("a hole inside a region", hole, Err(Errno::NoMemory));
    held &= expect("a new mapping", user::map_anonymous(PAGE, READ_WRITE), Err(Errno::NoMemory));
    // SAFETY: as above.
    held &= expect("restore", unsafe { user::protect(base, length, READ_WRITE) }, Ok(()));
    for index in 0..splits {
        // SAFETY: as above.
        let again = unsafe { user::protect(page(2 * index + 1), PAGE, PROT_READ) };
        held &= expect("split again after the merge", again, Ok(()));
    }
    // SAFETY: as above.
    held & expect("unmap", unsafe { user::unmap(base, length) }, Ok(()))
}

/// Forks until the kernel says `TryAgain`: with children that wait (alive), or
/// that exit at once and are not waited for (zombies). Then holds the table
/// full for a moment (the kernel's test starts a program meanwhile), lets the
/// children go and reaps them all.
pub fn fork_bomb(zombies: bool) -> bool {
    let Ok(flag) = user::shared_create(PAGE) else { return false };
    let Ok(release) = user::map_shared(flag, 0, PAGE, READ_WRITE) else { return false };
    let mut children = 0u64;
    let refused = loop {
        let child = spawn(|| {
            // SAFETY: the shared page is mapped read-write in every child.
            while !zombies && unsafe { read_volatile(release as *const u64) } == 0 {
                user::sleep(1);
            }
            true
        });
        match child {
            Ok(_) => children += 1,
            Err(errno) => break errno,
        }
    };
    println!("hostile: {children} children before {refused:?}");
    user::sleep(100);
    // SAFETY: as above.
    unsafe { write_volatile(release as *mut u64, 1) };
    let mut held =
        expect("refusal", refused, Errno::TryAgain) & expect("many", children >= 64, true);
    for _ in 0..children {
        held &= expect("child", reap(), Ended::Exited(0));
    }
    held & expect("close", user::shared_close(flag), Ok(()))
}

/// The page-table cache may be changed by a program the kernel started, and
/// asked by anyone, but not changed by a forked child.
pub fn page_table_cache_is_not_for_children() -> bool {
    let Ok(size) = user::set_page_table_cache(0) else { return false };
    let mut held = expect("set by the program", user::set_page_table_cache(size), Ok(size));
    let child = spawn(move || {
        expect("child asks", user::set_page_table_cache(0), Ok(size))
            & expect("child sets", user::set_page_table_cache(2), Err(Errno::Access))
    });
    held &= expect("fork", child.is_ok(), true);
    held & expect("child", reap(), Ended::Exited(0))
}

/// A `write` of far more than a call prints is cut short (bounded work with
/// interrupts off), and the rest can follow.
pub fn huge_write_is_cut_short() -> bool {
    let length = 64 * 1024;
    let Ok(buffer) = user::map_anonymous(length, READ_WRITE) else { return false };
    for offset in 0..length {
        let byte = if offset % 64 == 63 { b'\n' } else { b'.' };
        // SAFETY: inside the mapping just made.
        unsafe { write_volatile((buffer + offset) as *mut u8, byte) };
    }
    // SAFETY: reads the mapping only.
    let bytes = unsafe { core::slice::from_raw_parts(buffer as *const u8, length as usize) };
    let written = user::write(bytes);
    let held = expect("short write", written.is_ok_and(|n| n > 0 && n < bytes.len()), true);
    // SAFETY: no reference into the mapping is used after this.
    held & expect("unmap", unsafe { user::unmap(buffer, length) }, Ok(()))
}
