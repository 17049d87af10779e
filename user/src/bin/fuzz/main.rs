//! `fuzz`: seeded random system calls with boundary arguments, to show that the
//! user/kernel boundary holds: whatever a program passes, the kernel returns an
//! error or does what was asked, and neither crashes, hangs nor leaks.
//!
//! The start argument: the low 32 bits are the seed, bits 32 to 61 the number
//! of calls (0 means [`DEFAULT_CALLS`]), bit 62 leaves the nested-task and
//! trap flags out of RFLAGS at the calls, and bit 63 allows zap ranges over
//! 64 MiB (a sparse zap range is walked page by page today, so a huge one
//! would stall the kernel). The program prints its seed and argument first;
//! the same argument replays the same calls.
//!
//! The calls run in a forked child, since some of them (unmapping or
//! write-protecting the fuzzer's own code, data or stack) kill it. The child
//! records each call in a shared page before making it (see `progress`); when
//! a child dies, the parent forks a new one that carries on after the call
//! that killed its predecessor, until the count is reached. Call `i` draws its
//! random numbers from a generator seeded by the seed and `i` alone (see
//! `random`), so a new child does not repeat its predecessor's draws, and a
//! seed replays the same run: the same calls, the same deaths (as long as
//! timing does not change what the kernel does). `exit` is made
//! only at the end; a `fork`'s child exits at once and is waited for; `sleep`
//! sleeps 0 or 1 tick. Each call is made with random flags in RFLAGS and
//! checked to preserve the registers the abi says it preserves (see
//! `entry`). The parent restores the page-table cache size (calls
//! change it), reports how many children were killed, and exits with 0 unless
//! a result breached the boundary (see `calls::breach`) or a child ended in a
//! way it cannot (exited early).
#![no_std]
#![no_main]

mod calls;
mod entry;
mod progress;
mod random;

use calls::{Allowed, Call, PAGE, Results, SCRATCH_PAGES, TEXT, Targets};
use progress::{COUNTED, Outcomes, Progress};
use random::Random;
use user::{Ended, Errno, PROT_READ, PROT_WRITE, abi, print, println};

user::entry!(main);

/// Calls made when the argument does not say.
pub const DEFAULT_CALLS: u64 = 20_000;
/// The argument's bit that allows huge zap ranges.
const HUGE_ZAPS: u64 = 1 << 63;
/// The argument's bit that leaves the nested-task and trap flags out of
/// RFLAGS (today's kernel does not clear the nested-task flag on entry, and
/// falls to a #GP at its next `iretq`).
const NO_SYSTEM_FLAGS: u64 = 1 << 62;
/// The argument's bits that count the calls, shifted down.
const CALLS: u64 = !(HUGE_ZAPS | NO_SYSTEM_FLAGS) >> 32;
/// The first page a user program may map.
const FIRST_USER_PAGE: u64 = 0x1000;
/// Breaches a child reports one by one; the rest are only counted.
const BREACHES_SHOWN: u64 = 8;
/// Deaths reported one by one; the rest are only counted.
const DEATHS_SHOWN: u64 = 16;

/// What one run of the fuzzer asks for.
#[derive(Clone, Copy)]
struct Plan {
    seed: u32,
    calls: u64,
    allowed: Allowed,
}

/// How the children ended.
#[derive(Default)]
struct Tally {
    children: u64,
    killed: u64,
    exited_early: u64,
    breaches: u64,
    /// Calls the children recorded as made (a killed child's last included).
    made: u64,
    /// How many calls of each number succeeded and failed.
    outcomes: Outcomes,
}

impl Tally {
    /// Adds a child's outcomes.
    fn add(&mut self, outcomes: &Outcomes) {
        for slot in 0..COUNTED {
            self.outcomes.succeeded[slot] += outcomes.succeeded[slot];
            self.outcomes.failed[slot] += outcomes.failed[slot];
        }
    }

    /// Prints how many calls of each number succeeded and failed.
    fn print_outcomes(&self) {
        print!("fuzz: succeeded/failed:");
        for slot in 0..COUNTED {
            let name = calls::name(slot as u64);
            let (succeeded, failed) = (self.outcomes.succeeded[slot], self.outcomes.failed[slot]);
            print!(" {name} {succeeded}/{failed}");
        }
        println!();
    }
}

fn main(argument: u64) -> i32 {
    let calls = match (argument >> 32) & CALLS {
        0 => DEFAULT_CALLS,
        calls => calls,
    };
    let allowed = Allowed {
        huge_zaps: argument & HUGE_ZAPS != 0,
        system_flags: argument & NO_SYSTEM_FLAGS == 0,
    };
    let plan = Plan { seed: argument as u32, calls, allowed };
    println!(
        "fuzz: seed {:#x}, {} calls, {:?} (argument {argument:#x} replays this run)",
        plan.seed, plan.calls, plan.allowed
    );
    let (targets, progress) = match set_up() {
        Ok(set) => set,
        Err(errno) => {
            println!("fuzz: set-up failed: {errno:?}");
            return 2;
        }
    };
    let cache = user::set_page_table_cache(0).unwrap_or(0);
    let started = user::cycles();
    let tally = supervise(plan, &targets, &progress);
    let cycles = user::cycles() - started;
    if cache != 0 {
        let _ = user::set_page_table_cache(cache);
    }
    progress.close();
    tally.print_outcomes();
    println!(
        "fuzz: seed {:#x}: {} calls made by {} children, {} killed, {} exited early, {} breaches, {} Mcycles",
        plan.seed,
        tally.made,
        tally.children,
        tally.killed,
        tally.exited_early,
        tally.breaches,
        cycles / 1_000_000
    );
    if tally.breaches == 0 && tally.exited_early == 0 { 0 } else { 1 }
}

/// Maps the memory the calls aim at, and the progress page. The first user
/// page (one of the edges) is mapped inaccessible first, so that the
/// fuzzer's pages, which would land there, are not what a `write` at the edge
/// prints.
fn set_up() -> Result<(Targets, Progress), Errno> {
    let read_write = PROT_READ | PROT_WRITE;
    // SAFETY: an exact mapping where nothing is mapped yet.
    let first = unsafe { user::raw(abi::MMAP, [FIRST_USER_PAGE, PAGE, 0, 0, 0, 0]) };
    if let Some(errno) = Errno::from_result(first) {
        return Err(errno);
    }
    let scratch = user::map_anonymous((SCRATCH_PAGES + 1) * PAGE, read_write)?;
    let text = user::map_anonymous(2 * PAGE, read_write)?;
    let read_only = user::map_anonymous(PAGE, PROT_READ)?;
    for offset in PAGE - TEXT..PAGE {
        // SAFETY: the text page is mapped read-write, and nothing refers to it.
        unsafe { core::ptr::write_volatile((text + offset) as *mut u8, b'.') };
    }
    // SAFETY: nothing refers to these pages.
    unsafe {
        user::protect(scratch + SCRATCH_PAGES * PAGE, PAGE, 0)?;
        user::protect(text, PAGE, PROT_READ)?;
        user::protect(text + PAGE, PAGE, 0)?;
    }
    static DATA: u64 = 0;
    let local = 0u64;
    let page = |address: u64| address & !(PAGE - 1);
    let targets = Targets {
        scratch,
        text,
        read_only,
        code: page(fuzz as *const () as u64),
        data: page(&raw const DATA as u64),
        stack: page(&raw const local as u64),
    };
    Ok((targets, Progress::create()?))
}

/// Runs children until the calls are made; returns how they ended.
fn supervise(plan: Plan, targets: &Targets, progress: &Progress) -> Tally {
    let mut tally = Tally::default();
    let mut start = 0;
    while start < plan.calls {
        progress.reset(start);
        tally.children += 1;
        match user::fork() {
            Ok(0) => fuzz(plan, start, targets, progress),
            Ok(_) => {}
            Err(errno) => {
                println!("fuzz: fork failed at call {start}: {errno:?}");
                tally.exited_early += 1;
                return tally;
            }
        }
        let ended = user::wait().map_or(Ended::Exited(-1), |(_, ended)| ended);
        let (stopped, call, breaches) = progress.last().unwrap_or((start, Call::default(), 0));
        let stopped = stopped.clamp(start, plan.calls);
        tally.breaches += breaches;
        tally.add(&progress.counted());
        tally.made += stopped - start + u64::from(stopped < plan.calls);
        if ended == Ended::Exited(0) && stopped == plan.calls {
            break;
        }
        match ended {
            Ended::Killed => tally.killed += 1,
            Ended::Exited(_) => tally.exited_early += 1,
        }
        if tally.killed + tally.exited_early <= DEATHS_SHOWN {
            println!("fuzz: child {} {ended:?} at call {stopped}: {call}", tally.children);
        }
        start = stopped + 1;
    }
    tally
}

/// The child: makes calls `start..` of the plan, recording each first; exits
/// with 0 after the last.
fn fuzz(plan: Plan, start: u64, targets: &Targets, progress: &Progress) -> ! {
    let mut results = Results::default();
    for index in start..plan.calls {
        let mut random = Random::for_call(plan.seed, index);
        let call = calls::generate(&mut random, targets, &results, plan.allowed);
        progress.record(index, &call);
        let returned = calls::issue(&call, &mut results);
        progress.count_outcome(call.number, Errno::from_result(returned.result).is_none());
        let breach = calls::breach(&call, &returned);
        if let Some(why) = breach.filter(|_| progress.count_breach() < BREACHES_SHOWN) {
            println!("fuzz: call {index}: {call} -> {returned:x?}: {why}");
        }
    }
    progress.record(plan.calls, &Call::default());
    user::exit(0)
}
