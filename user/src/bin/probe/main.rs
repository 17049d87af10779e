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

/// With mode 1: other processes run meanwhile (the kernel's copy counts are
/// not this test's alone).
const AMONG_OTHERS: u64 = 1 << 8;

/// The argument's low byte is the mode.
fn main(argument: u64) -> i32 {
    let mode = argument & 0xff;
    let passed = match mode {
        1 => checks::fork_isolation(argument & AMONG_OTHERS == 0),
        2 => checks::shared_memory(),
        3 => checks::many_processes(32),
        4 => checks::memory_hog(),
        5 => checks::bad_arguments(),
        6 => checks::crashes_are_killed(),
        7 => checks::fork_until_out_of_memory(),
        8 => spin_forever(),
        9 => wait_on_a_spinner(),
        10 => work(argument >> 8 & 0xff, argument >> 16),
        _ => {
            println!("probe: unknown mode {mode}");
            false
        }
    };
    if passed { 0 } else { 1 }
}

/// Work kinds of mode 10 (the parallel tests and benchmarks): computing
/// alone, faulting pages in, forking.
const COMPUTE: u64 = 0;
const FAULT: u64 = 1;
const FORK: u64 = 2;
const VERIFY: u64 = 3;
/// Pages each round of [`FAULT`] work maps, writes and unmaps.
const FAULT_PAGES: u64 = 64;

/// `rounds` rounds of one kind of work, checking what it can: [`COMPUTE`]
/// (a million additions of user code alone, no system call), [`FAULT`]
/// (map [`FAULT_PAGES`] pages, write each, read them back, unmap) or [`FORK`]
/// (fork a child that exits at once, and wait for it); or [`VERIFY`]: keep
/// [`FAULT_PAGES`] pages, and each round check every one holds what the last
/// round wrote and write the next value (while the kernel takes them away
/// and gives them back), computing between rounds.
fn work(kind: u64, rounds: u64) -> bool {
    if kind == VERIFY {
        return verify(rounds);
    }
    for round in 0..rounds {
        let done = match kind {
            COMPUTE => {
                let mut sum = round;
                for step in 0..1_000_000u64 {
                    sum = core::hint::black_box(sum.wrapping_add(step));
                }
                sum != 0
            }
            FAULT => fault_round(round),
            FORK => spawn(|| true).is_ok() && reap() == Ended::Exited(0),
            _ => {
                println!("probe: unknown work {kind}");
                false
            }
        };
        if !done {
            println!("probe: work {kind} failed in round {round}");
            return false;
        }
    }
    true
}

/// [`VERIFY`] work. Between rounds it computes for a while without
/// touching the pages, so that they grow cold while it runs.
fn verify(rounds: u64) -> bool {
    let length = FAULT_PAGES * PAGE;
    let Ok(base) = user::map_anonymous(length, READ_WRITE) else { return false };
    let word = |page: u64| (base + page * PAGE + (page % 8) * 512) as *mut u64;
    let value = |round: u64, page: u64| round << 32 | page;
    for page in 0..FAULT_PAGES {
        // SAFETY: a word of a page of the fresh private mapping.
        unsafe { word(page).write_volatile(value(0, page)) };
    }
    for round in 1..=rounds {
        for page in 0..FAULT_PAGES {
            // SAFETY: as above.
            let found = unsafe { word(page).read_volatile() };
            if found != value(round - 1, page) {
                println!("probe: page {page} holds {found:#x} in round {round}");
                return false;
            }
            // SAFETY: as above.
            unsafe { word(page).write_volatile(value(round, page)) };
        }
        let mut sum = round;
        for step in 0..50_000u64 {
            sum = core::hint::black_box(sum.wrapping_add(step));
        }
    }
    // SAFETY: nothing refers to the mapping any more.
    unsafe { user::unmap(base, length) }.is_ok()
}

/// One round of [`FAULT`] work.
fn fault_round(round: u64) -> bool {
    let length = FAULT_PAGES * PAGE;
    let Ok(base) = user::map_anonymous(length, READ_WRITE) else { return false };
    for page in 0..FAULT_PAGES {
        // SAFETY: a page of the fresh private mapping.
        unsafe { ((base + page * PAGE) as *mut u64).write_volatile(round ^ page) };
    }
    let intact = (0..FAULT_PAGES).all(|page| {
        // SAFETY: as above.
        unsafe { ((base + page * PAGE) as *const u64).read_volatile() == round ^ page }
    });
    // SAFETY: nothing refers to the mapping any more.
    intact && unsafe { user::unmap(base, length) }.is_ok()
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
