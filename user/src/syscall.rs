//! System-call wrappers (the numbers and conventions are in the `abi` crate).

use core::arch::asm;

use abi::{Ended, Errno, Statistics};

/// Makes system call `number` with up to six arguments; returns the raw result.
///
/// # Safety
/// The kernel validates every argument, so no call can break the kernel; but a
/// call that changes this program's memory (`munmap`, `mprotect`, `mmap` at an
/// exact address) can take memory away from under Rust references.
pub unsafe fn raw(number: u64, arguments: [u64; 6]) -> u64 {
    let result: u64;
    // SAFETY: `syscall` enters the kernel, which preserves every register but
    // `rax` (the result), `rcx` and `r11` (declared clobbered). What the call
    // does to memory is the caller's contract.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number => result,
            in("rdi") arguments[0],
            in("rsi") arguments[1],
            in("rdx") arguments[2],
            in("r10") arguments[3],
            in("r8") arguments[4],
            in("r9") arguments[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    result
}

/// A system call that touches no memory of the caller's Rust objects.
fn call(number: u64, arguments: [u64; 6]) -> Result<u64, Errno> {
    // SAFETY: the calls made through here only read or write memory the
    // wrappers pass as borrowed slices, or none at all.
    let result = unsafe { raw(number, arguments) };
    match Errno::from_result(result) {
        Some(errno) => Err(errno),
        None => Ok(result),
    }
}

/// Writes `bytes` to the console; returns how many were written.
pub fn write(bytes: &[u8]) -> Result<usize, Errno> {
    call(abi::WRITE, [bytes.as_ptr() as u64, bytes.len() as u64, 0, 0, 0, 0]).map(|n| n as usize)
}

/// Ends this process with `status`.
pub fn exit(status: i32) -> ! {
    let _ = call(abi::EXIT, [status as u32 as u64, 0, 0, 0, 0, 0]);
    unreachable!("exit returned")
}

/// Duplicates this process: `Ok(0)` in the child, the child's id in the parent.
pub fn fork() -> Result<u64, Errno> {
    call(abi::FORK, [0; 6])
}

/// Waits for a child to end; returns its id and how it ended.
pub fn wait() -> Result<(u64, Ended), Errno> {
    let mut word = 0u64;
    let pid = call(abi::WAIT, [&raw mut word as u64, 0, 0, 0, 0, 0])?;
    Ok((pid, abi::ended(word)))
}

/// This process's id.
pub fn getpid() -> u64 {
    call(abi::GETPID, [0; 6]).unwrap_or(0)
}

/// Lets the next ready process run.
pub fn yield_now() {
    let _ = call(abi::YIELD, [0; 6]);
}

/// Sleeps for `ticks` timer ticks (10 ms each).
pub fn sleep(ticks: u64) {
    let _ = call(abi::SLEEP, [ticks, 0, 0, 0, 0, 0]);
}

/// Maps `length` bytes of fresh private memory anywhere; returns its address.
pub fn map_anonymous(length: u64, protection: u64) -> Result<u64, Errno> {
    call(abi::MMAP, [0, length, protection, 0, 0, 0])
}

/// Maps `length` bytes of shared object `handle` from byte `offset`.
pub fn map_shared(handle: u64, offset: u64, length: u64, protection: u64) -> Result<u64, Errno> {
    call(abi::MMAP, [0, length, protection, abi::MAP_SHARED, handle, offset])
}

/// Unmaps `[address, address + length)`.
///
/// # Safety
/// No Rust reference may point into the range.
pub unsafe fn unmap(address: u64, length: u64) -> Result<(), Errno> {
    call(abi::MUNMAP, [address, length, 0, 0, 0, 0]).map(|_| ())
}

/// Changes the protection of `[address, address + length)`.
///
/// # Safety
/// No Rust reference into the range may be used in a way the new protection
/// forbids.
pub unsafe fn protect(address: u64, length: u64, protection: u64) -> Result<(), Errno> {
    call(abi::MPROTECT, [address, length, protection, 0, 0, 0]).map(|_| ())
}

/// Creates a shared-memory object of `length` bytes; returns its handle.
pub fn shared_create(length: u64) -> Result<u64, Errno> {
    call(abi::SHM_CREATE, [length, 0, 0, 0, 0, 0])
}

/// Closes a shared-memory handle.
pub fn shared_close(handle: u64) -> Result<(), Errno> {
    call(abi::SHM_CLOSE, [handle, 0, 0, 0, 0, 0]).map(|_| ())
}

/// The kernel's VM statistics now.
pub fn statistics() -> Result<Statistics, Errno> {
    let mut words = [0u64; 8];
    let length = core::mem::size_of_val(&words) as u64;
    call(abi::STATISTICS, [words.as_mut_ptr() as u64, length, 0, 0, 0, 0])?;
    Ok(Statistics::from_words(words))
}

/// Forgets the page-table translations of `[address, address + length)`; the
/// memory keeps its contents and the next access rebuilds them.
pub fn zap(address: u64, length: u64) -> Result<(), Errno> {
    call(abi::ZAP, [address, length, 0, 0, 0, 0]).map(|_| ())
}

/// Sets the page-table cache to `size` address spaces (0 only asks); returns
/// the size it had.
pub fn set_page_table_cache(size: u64) -> Result<u64, Errno> {
    call(abi::PT_CACHE, [size, 0, 0, 0, 0, 0])
}

/// The processor's time-stamp counter.
pub fn cycles() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: `rdtsc` only reads the counter (allowed in ring 3 unless CR4.TSD).
    unsafe { asm!("rdtsc", out("eax") low, out("edx") high, options(nomem, nostack)) };
    (u64::from(high) << 32) | u64::from(low)
}
