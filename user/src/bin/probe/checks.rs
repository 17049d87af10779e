//! The checks behind each probe mode.

use core::ptr::{read_volatile, write_volatile};
use user::{Ended, Errno, PROT_READ, PROT_WRITE, abi, println};

use super::{PAGE, READ_WRITE, expect, reap, spawn};

/// Pages of private memory the fork check shares.
const FORK_PAGES: u64 = 16;

/// Word `index` of the page at `base + page * PAGE`.
fn word(base: u64, page: u64, index: u64) -> *mut u64 {
    (base + page * PAGE + index * 8) as *mut u64
}

/// Writes `value` to the first word of each of `pages` pages at `base`.
fn fill(base: u64, pages: core::ops::Range<u64>, value: u64) {
    for page in pages {
        // SAFETY: `base` is a read-write mapping of at least `page + 1` pages.
        unsafe { write_volatile(word(base, page, 0), value) };
    }
}

/// Whether each of `pages` pages at `base` starts with `value`.
fn holds(base: u64, pages: core::ops::Range<u64>, value: u64) -> bool {
    // SAFETY: as in `fill`, reading.
    pages.into_iter().all(|page| unsafe { read_volatile(word(base, page, 0)) } == value)
}

/// Copy-on-write copies so far.
fn copies() -> u64 {
    user::statistics().map_or(0, |statistics| statistics.cow_copies)
}

/// Touches a few pages of stack, so that later calls find them private.
#[inline(never)]
fn warm_stack() {
    let mut room = [0u8; 3 * PAGE as usize];
    for byte in room.iter_mut().step_by(512) {
        // SAFETY: a byte of the local array.
        unsafe { write_volatile(byte, 1) };
    }
    core::hint::black_box(&room);
}

/// Fork: writes on either side stay on that side; reads copy nothing; each
/// written page is copied exactly once. The copies are counted by the
/// kernel's statistics, for every process: only when `alone` (no other
/// process copies meanwhile) are they checked. With several processors the
/// parent runs beside the child, so the child counts only after the parent
/// has made its copies (page 8, and its stack, warmed after the fork so that
/// waiting copies nothing more) and said so.
pub fn fork_isolation(alone: bool) -> bool {
    let Ok(base) = user::map_anonymous(FORK_PAGES * PAGE, READ_WRITE) else { return false };
    let Ok(flag) = user::shared_create(PAGE) else { return false };
    let Ok(signal) = user::map_shared(flag, 0, PAGE, READ_WRITE) else { return false };
    fill(base, 0..FORK_PAGES, 0xaa);
    let child = spawn(|| {
        warm_stack();
        // Wait for the parent's write to its own copy of page 8.
        // SAFETY: the shared page, read-write here.
        while unsafe { read_volatile(signal as *const u64) } == 0 {
            user::yield_now();
        }
        let before = copies();
        let read_back = holds(base, 0..FORK_PAGES, 0xaa);
        let after_reads = copies();
        fill(base, 0..4, 0xbb);
        let after_writes = copies();
        let copies_right = !alone
            || expect("copies made by reads", after_reads - before, 0)
                & expect("copies made by 4 writes", after_writes - after_reads, 4);
        expect("child reads its inherited pages", read_back, true)
            & copies_right
            & expect("child page 8 after the parent wrote", holds(base, 8..9, 0xaa), true)
            & expect("child's written pages", holds(base, 0..4, 0xbb), true)
    });
    let Ok(_) = child else { return false };
    warm_stack();
    fill(base, 8..9, 0xcc);
    // SAFETY: as above.
    unsafe { write_volatile(signal as *mut u64, 1) };
    let ended = reap();
    expect("child", ended, Ended::Exited(0))
        & expect("parent's pages 0..4 after the child wrote", holds(base, 0..4, 0xaa), true)
        & expect("parent's page 8", holds(base, 8..9, 0xcc), true)
        & expect("close", user::shared_close(flag), Ok(()))
}

/// Shared memory: what one process writes the other reads, through an inherited
/// mapping and through a second mapping of the same handle.
pub fn shared_memory() -> bool {
    let Ok(handle) = user::shared_create(2 * PAGE) else { return false };
    let Ok(shared) = user::map_shared(handle, 0, 2 * PAGE, READ_WRITE) else { return false };
    let child = spawn(|| {
        let Ok(second) = user::map_shared(handle, PAGE, PAGE, READ_WRITE) else { return false };
        // SAFETY: both are read-write mappings of the shared object.
        unsafe {
            while read_volatile(shared as *const u64) != 1 {
                user::yield_now();
            }
            write_volatile(second as *mut u64, 2);
            write_volatile(shared as *mut u64, 3);
        }
        true
    });
    let Ok(_) = child else { return false };
    // SAFETY: the shared mapping, read-write.
    unsafe { write_volatile(shared as *mut u64, 1) };
    let ended = reap();
    // SAFETY: as above.
    let (first, second) =
        unsafe { (read_volatile(shared as *const u64), read_volatile(word(shared, 1, 0))) };
    expect("child", ended, Ended::Exited(0))
        & expect("word written through the inherited mapping", first, 3)
        & expect("word written through the child's second mapping", second, 2)
        & expect("close", user::shared_close(handle), Ok(()))
}

/// The checksum child `index` computes over its pages.
fn expected_checksum(index: u64, pages: u64) -> u64 {
    (0..pages).map(|page| index * 1000 + page * 7).sum()
}

/// `count` children each fill, yield and check private pages, and report a
/// checksum through a shared page; the parent checks them all.
pub fn many_processes(count: u64) -> bool {
    const PAGES: u64 = 4;
    let Ok(handle) = user::shared_create(PAGE) else { return false };
    let Ok(results) = user::map_shared(handle, 0, PAGE, READ_WRITE) else { return false };
    for index in 0..count {
        let child = spawn(|| {
            let Ok(base) = user::map_anonymous(PAGES * PAGE, READ_WRITE) else { return false };
            let mut sum = 0;
            for page in 0..PAGES {
                fill(base, page..page + 1, index * 1000 + page * 7);
                user::yield_now();
            }
            for page in 0..PAGES {
                // SAFETY: written above; this process's own pages.
                sum += unsafe { read_volatile(word(base, page, 0)) };
                user::yield_now();
            }
            // SAFETY: slot `index` of the shared results page.
            unsafe { write_volatile(word(results, 0, index), sum) };
            sum == expected_checksum(index, PAGES)
        });
        if child.is_err() {
            println!("probe: fork {index} failed");
            return false;
        }
    }
    let mut passed = true;
    for _ in 0..count {
        passed &= expect("child", reap(), Ended::Exited(0));
    }
    let mut total = 0;
    for index in 0..count {
        // SAFETY: the shared results page.
        let sum = unsafe { read_volatile(word(results, 0, index)) };
        passed &= expect("checksum", sum, expected_checksum(index, PAGES));
        total += sum;
    }
    println!("probe: {count} processes, total checksum {total}");
    passed & expect("close", user::shared_close(handle), Ok(()))
}

/// A child that touches memory until the kernel runs out of frames is killed;
/// a bystander that took its memory first finishes normally.
pub fn memory_hog() -> bool {
    let Ok(handle) = user::shared_create(PAGE) else { return false };
    let Ok(ready) = user::map_shared(handle, 0, PAGE, READ_WRITE) else { return false };
    let bystander = spawn(|| {
        let Ok(base) = user::map_anonymous(8 * PAGE, READ_WRITE) else { return false };
        fill(base, 0..8, 5);
        // SAFETY: the shared flag page.
        unsafe { write_volatile(ready as *mut u64, 1) };
        for _ in 0..50 {
            user::yield_now();
        }
        holds(base, 0..8, 5)
    });
    // SAFETY: as above.
    while bystander.is_ok() && unsafe { read_volatile(ready as *const u64) } == 0 {
        user::yield_now();
    }
    let hog = spawn(|| {
        let Ok(base) = user::map_anonymous(1 << 32, READ_WRITE) else { return false };
        fill(base, 0..(1 << 20), 1);
        println!("probe: hog was never stopped");
        false
    });
    let (first, second) = (reap(), reap());
    let ended = if first == Ended::Killed { [second, first] } else { [first, second] };
    expect("bystander", bystander.is_ok() && hog.is_ok(), true)
        & expect("children", ended, [Ended::Exited(0), Ended::Killed])
        & expect("close", user::shared_close(handle), Ok(()))
}

/// Forks children that each share 8 MiB of touched pages copy-on-write, until
/// fork fails; the failure must be `NoMemory`, and every child then checks its
/// memory and exits (or is killed by the out-of-memory policy, if fork took
/// the last frames it needed to run), and is reaped.
pub fn fork_until_out_of_memory() -> bool {
    const PAGES: u64 = 2048;
    let Ok(handle) = user::shared_create(PAGE) else { return false };
    let Ok(go) = user::map_shared(handle, 0, PAGE, READ_WRITE) else { return false };
    let Ok(base) = user::map_anonymous(PAGES * PAGE, READ_WRITE) else { return false };
    fill(base, 0..PAGES, 3);
    let mut children = 0u64;
    let error = loop {
        let child = spawn(|| {
            // SAFETY: the shared flag page.
            while unsafe { read_volatile(go as *const u64) } == 0 {
                user::yield_now();
            }
            holds(base, 0..PAGES, 3)
        });
        match child {
            Ok(_) => children += 1,
            Err(errno) => break Some(errno),
        }
        if children == 10_000 {
            break None;
        }
    };
    // SAFETY: as above.
    unsafe { write_volatile(go as *mut u64, 1) };
    // A child may find no frame for its first page tables or its stack
    // once fork has taken the last: then the out-of-memory policy kills one
    // (the kernel logs it). None may end any other way: a child that saw
    // wrong memory exits with 1.
    let (mut exited, mut killed) = (0u64, 0u64);
    for _ in 0..children {
        match reap() {
            Ended::Exited(0) => exited += 1,
            Ended::Killed => killed += 1,
            _ => {}
        }
    }
    println!(
        "probe: {children} children forked before fork failed with {error:?}; \
         {exited} exited with 0, {killed} killed for memory"
    );
    expect("fork failure", error, Some(Errno::NoMemory))
        & expect("children that exited with 0 or were killed", exited + killed, children)
        & expect("some children ran to the end", exited > 0, true)
        & expect("parent's memory", holds(base, 0..PAGES, 3), true)
        & expect("close", user::shared_close(handle), Ok(()))
}

/// Checks one bad call's error.
fn refused(what: &str, result: Result<u64, Errno>, errno: Errno) -> bool {
    expect(what, result, Err(errno))
}

/// A raw system call as a result.
fn raw(number: u64, arguments: [u64; 6]) -> Result<u64, Errno> {
    // SAFETY: every call made through here is refused by the kernel before it
    // touches memory.
    let result = unsafe { user::raw(number, arguments) };
    Errno::from_result(result).map_or(Ok(result), Err)
}

/// A kernel address.
const KERNEL: u64 = 0xffff_8000_0000_0000;
/// A user address nothing is mapped at.
const UNMAPPED: u64 = 0x3000_0000_0000;

/// Bad pointers, lengths and arguments are errors, never crashes.
pub fn bad_arguments() -> bool {
    static READ_ONLY: [u64; 8] = [0; 8];
    let valid = READ_ONLY.as_ptr() as u64;
    bad_pointers(valid) & bad_mappings(valid)
}

/// Bad pointers and lengths; `valid` is a read-only user address.
fn bad_pointers(valid: u64) -> bool {
    let (kernel, unmapped) = (KERNEL, UNMAPPED);
    let mut passed = true;
    for (what, pointer, length) in [
        ("write null", 0, 16),
        ("write kernel", kernel, 16),
        ("write unmapped", unmapped, 16),
        ("write overflowing length", valid, u64::MAX),
        ("write past user space", 0x7fff_ffff_f000, 0x2000),
    ] {
        passed &= refused(what, raw(abi::WRITE, [pointer, length, 0, 0, 0, 0]), Errno::Fault);
    }
    let statistics = |pointer| raw(abi::STATISTICS, [pointer, 64, 0, 0, 0, 0]);
    passed &= refused("statistics to null", statistics(0), Errno::Fault);
    passed &= refused("statistics to kernel", statistics(kernel), Errno::Fault);
    passed &= refused("statistics to read-only", statistics(valid), Errno::Fault);
    passed &= refused("wait without a child", raw(abi::WAIT, [0, 0, 0, 0, 0, 0]), Errno::NoChild);
    // With a child to wait for, so that the status pointer is what is refused.
    passed &= expect("fork", spawn(|| true).is_ok(), true);
    passed &= refused("wait to kernel", raw(abi::WAIT, [kernel, 0, 0, 0, 0, 0]), Errno::Fault);
    passed &= refused("wait to read-only", raw(abi::WAIT, [valid, 0, 0, 0, 0, 0]), Errno::Fault);
    passed &= expect("the child, reaped after all", reap(), Ended::Exited(0));
    passed & write_faulting_part_way()
}

/// A `write` whose buffer runs into an unmapped page prints what lies before
/// it and says how much (a short count); one that starts there is `Fault`.
fn write_faulting_part_way() -> bool {
    let Ok(base) = user::map_anonymous(2 * PAGE, READ_WRITE) else { return false };
    // SAFETY: nothing refers to the second page.
    let second = unsafe { user::unmap(base + PAGE, PAGE) };
    let mut passed = expect("unmap the second page", second, Ok(()));
    let start = base + PAGE - 256;
    for offset in (0..256).step_by(8) {
        // SAFETY: inside the first page, mapped read-write.
        unsafe { write_volatile((start + offset) as *mut u64, u64::from_le_bytes(*b"partial\n")) };
    }
    passed &= expect("write into the hole", raw(abi::WRITE, [start, 512, 0, 0, 0, 0]), Ok(256));
    passed &= refused(
        "write from the hole",
        raw(abi::WRITE, [base + PAGE, 16, 0, 0, 0, 0]),
        Errno::Fault,
    );
    // SAFETY: nothing refers to the first page any more.
    passed & expect("unmap", unsafe { user::unmap(base, PAGE) }, Ok(()))
}

/// Bad mapping requests and handles; `valid` is a read-only user address.
fn bad_mappings(valid: u64) -> bool {
    let (kernel, unmapped) = (KERNEL, UNMAPPED);
    let mut passed = true;
    let mmap = |address, length, protection, flags, handle| {
        raw(abi::MMAP, [address, length, protection, flags, handle, 0])
    };
    passed &= refused("mmap zero length", mmap(0, 0, PROT_READ, 0, 0), Errno::Invalid);
    passed &= refused("mmap huge", mmap(0, !0xfff, PROT_READ, 0, 0), Errno::Invalid);
    passed &= refused("mmap write-only", mmap(0, PAGE, PROT_WRITE, 0, 0), Errno::Invalid);
    passed &= refused("mmap at kernel", mmap(kernel, PAGE, PROT_READ, 0, 0), Errno::Invalid);
    passed &=
        refused("mmap bad handle", mmap(0, PAGE, PROT_READ, abi::MAP_SHARED, 77), Errno::BadHandle);
    passed &= refused("mmap bad flags", mmap(0, PAGE, PROT_READ, 0x80, 0), Errno::Invalid);
    passed &=
        refused("munmap kernel", raw(abi::MUNMAP, [kernel, PAGE, 0, 0, 0, 0]), Errno::Invalid);
    passed &= refused(
        "munmap unaligned",
        raw(abi::MUNMAP, [valid + 1, PAGE, 0, 0, 0, 0]),
        Errno::Invalid,
    );
    passed &= refused(
        "mprotect unmapped",
        raw(abi::MPROTECT, [unmapped, PAGE, PROT_READ, 0, 0, 0]),
        Errno::Fault,
    );
    passed &= refused(
        "mprotect overflow",
        raw(abi::MPROTECT, [valid & !0xfff, !0xfff, PROT_READ, 0, 0, 0]),
        Errno::Invalid,
    );
    passed &=
        refused("shared zero length", raw(abi::SHM_CREATE, [0, 0, 0, 0, 0, 0]), Errno::Invalid);
    passed &=
        refused("close bad handle", raw(abi::SHM_CLOSE, [12345, 0, 0, 0, 0, 0]), Errno::BadHandle);
    passed &= refused("unknown call", raw(999, [0; 6]), Errno::NoSystemCall);
    passed & limits()
}

/// Handles and regions are limited (each costs kernel memory); what was
/// granted up to the limit comes back.
fn limits() -> bool {
    let mut handles = [0u64; 64];
    let mut passed = true;
    for handle in handles.iter_mut() {
        *handle = user::shared_create(PAGE).unwrap_or(0);
    }
    passed &= expect("64 handles", handles.iter().all(|&handle| handle != 0), true);
    passed &= refused("handle 65", user::shared_create(PAGE), Errno::TryAgain);
    for handle in handles {
        passed &= expect("close", user::shared_close(handle), Ok(()));
    }
    let base = 0x2000_0000_0000u64;
    let at = |index: u64| base + index * 2 * PAGE;
    let mut mapped = 0;
    let refusal = loop {
        match raw(abi::MMAP, [at(mapped), PAGE, PROT_READ, 0, 0, 0]) {
            Ok(_) => mapped += 1,
            Err(errno) => break errno,
        }
        if mapped > 300 {
            break Errno::Invalid;
        }
    };
    passed &= expect("the region limit's answer", refusal, Errno::NoMemory);
    passed &= expect("regions below the limit", (200..256).contains(&mapped), true);
    // Exactly at the limit: one region less makes room for exactly one.
    // SAFETY: nothing refers to these pages.
    passed &= expect("unmap one", unsafe { user::unmap(at(mapped - 1), PAGE) }, Ok(()));
    passed &= expect(
        "map one again",
        raw(abi::MMAP, [at(mapped - 1), PAGE, PROT_READ, 0, 0, 0]).map(|_| ()),
        Ok(()),
    );
    passed &= refused(
        "and no more",
        raw(abi::MMAP, [at(mapped), PAGE, PROT_READ, 0, 0, 0]),
        Errno::NoMemory,
    );
    // SAFETY: nothing refers to these pages.
    passed &= expect("unmap", unsafe { user::unmap(base, mapped * 2 * PAGE) }, Ok(()));
    passed
}

/// How a crashing child misbehaves.
#[derive(Clone, Copy, Debug)]
enum Crash {
    WriteReadOnly,
    JumpToKernel,
    ReadNull,
    ExecuteStack,
    Privileged,
    UseAfterUnmap,
}

/// Does what `crash` says; returns only if the kernel let it happen.
fn crash(crash: Crash) {
    static READ_ONLY: u64 = 0;
    // SAFETY: none: every branch is meant to fault, and the kernel kills the
    // process before any undefined behaviour could show.
    unsafe {
        match crash {
            Crash::WriteReadOnly => write_volatile(&raw const READ_ONLY as *mut u64, 1),
            Crash::JumpToKernel => {
                let target: extern "C" fn() = core::mem::transmute(0xffff_8000_0010_0000u64);
                target();
            }
            Crash::ReadNull => {
                read_volatile(core::ptr::null::<u64>());
            }
            Crash::ExecuteStack => {
                let code = [0xc3u8; 16];
                let target: extern "C" fn() = core::mem::transmute(code.as_ptr());
                target();
            }
            Crash::Privileged => core::arch::asm!("hlt"),
            Crash::UseAfterUnmap => {
                let Ok(base) = user::map_anonymous(PAGE, READ_WRITE) else { return };
                write_volatile(base as *mut u64, 1);
                let _ = user::unmap(base, PAGE);
                write_volatile(base as *mut u64, 2);
            }
        }
    }
}

/// Each misbehaving child is killed; the parent goes on.
pub fn crashes_are_killed() -> bool {
    let mut passed = true;
    for kind in [
        Crash::WriteReadOnly,
        Crash::JumpToKernel,
        Crash::ReadNull,
        Crash::ExecuteStack,
        Crash::Privileged,
        Crash::UseAfterUnmap,
    ] {
        let child = spawn(|| {
            crash(kind);
            println!("probe: {kind:?} was allowed");
            false
        });
        passed &= expect("fork", child.is_ok(), true);
        if !expect("crashing child", reap(), Ended::Killed) {
            println!("probe: {kind:?} was not killed");
            passed = false;
        }
    }
    passed
}
