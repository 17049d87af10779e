//! Test programs for the in-kernel process tests, chosen by the start argument:
//! each mode returns 0 when everything it checked held. (The benchmarks are the
//! `bench` program.)
#![no_std]
#![no_main]

use user::{Ended, Errno, PROT_READ, PROT_WRITE, println};

mod checks;

user::entry!(main);

/// Bytes in a page.
pub const PAGE: u64 = 4096;
/// Read and write.
pub const READ_WRITE: u64 = PROT_READ | PROT_WRITE;

/// The argument's low byte is the mode.
fn main(argument: u64) -> i32 {
    let mode = argument & 0xff;
    let passed = match mode {
        1 => checks::fork_isolation(),
        2 => checks::shared_memory(),
        3 => checks::many_processes(32),
        4 => checks::memory_hog(),
        5 => checks::bad_arguments(),
        6 => checks::crashes_are_killed(),
        7 => checks::fork_until_out_of_memory(),
        8 => spin_forever(),
        9 => wait_on_a_spinner(),
        _ => {
            println!("probe: unknown mode {mode}");
            false
        }
    };
    if passed { 0 } else { 1 }
}

/// Never ends by itself (the kernel's test kills it).
fn spin_forever() -> bool {
    loop {
        core::hint::spin_loop();
    }
}

/// Forks a child that spins forever and waits for it (the kernel's test kills
/// this process while it waits, then the orphaned child).
fn wait_on_a_spinner() -> bool {
    if spawn(spin_forever).is_err() {
        return false;
    }
    let _ = user::wait();
    println!("probe: the spinner ended");
    false
}

/// Fails the check with a message if `result` is not `expected`.
pub fn expect<T: core::fmt::Debug + PartialEq>(what: &str, result: T, expected: T) -> bool {
    if result == expected {
        return true;
    }
    println!("probe: {what}: got {result:?}, expected {expected:?}");
    false
}

/// Waits for one child and says how it ended (`Killed` if waiting failed).
pub fn reap() -> Ended {
    match user::wait() {
        Ok((_, ended)) => ended,
        Err(errno) => {
            println!("probe: wait failed: {errno:?}");
            Ended::Exited(-1)
        }
    }
}

/// `fork`, running `child` in the child (its result is the exit status).
pub fn spawn(child: impl FnOnce() -> bool) -> Result<u64, Errno> {
    match user::fork()? {
        0 => user::exit(if child() { 0 } else { 1 }),
        pid => Ok(pid),
    }
}
