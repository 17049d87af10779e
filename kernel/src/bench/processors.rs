//! The processors' benchmarks (`bench=smp`, on a machine with several).
//!
//! - A request's round trip to another processor, and TLB shootdowns of one
//!   page, of 32 pages (one `invlpg` each, under Linux's 33-page ceiling) and
//!   of everything (a CR3 reload), each sent to one processor and to every
//!   other one at once. The figures are the sender's: from posting the
//!   requests to the last answer.
//! - Work run by one process, by two at once, and by one per processor at
//!   once: computing in user mode alone, faulting pages in, forking. Each
//!   row is the wall time per round of one worker, from the first spawn to
//!   the last reap; the `I` line after each kind gives the speedups (rounds
//!   done per unit of time, against one worker), the share of the workers'
//!   time spent waiting for the kernel lock and its contended takes per
//!   round; the next two how long the kernel lock and the VM lock were held
//!   in all the kind's batches (measured in every batch, so that all pay the
//!   same for it).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;

use super::{REPETITIONS, print_holds, print_row};
use crate::arch::smp::{self, Invalidation};
use crate::arch::{kernel_lock, tsc};
use crate::lockstat;
use crate::println;
use crate::process;

/// Requests per repetition.
const COUNT: u64 = 2_000;
/// A user address to invalidate (nothing need be mapped there).
const PAGE: u64 = 0x4000_0000;

/// Runs them; false if a request went unanswered or a worker failed.
pub fn run() -> bool {
    let (online, _) = smp::counts();
    println!("I cpus_online={online}");
    if online < 2 {
        println!("I shootdowns=none (one processor)");
        return true;
    }
    let passed = shootdowns(online) & parallel(online);
    super::print_frame_caches();
    passed
}

fn shootdowns(online: usize) -> bool {
    let every: Vec<usize> = (1..online).collect();
    let mut answered = true;
    for (targets, suffix) in [(&every[..1], "1"), (&every[..], "all")] {
        let name = |row: &str| format!("{row}_to_{suffix}_of_{online}");
        super::measure(&name("ipi_round_trip"), COUNT, || {
            answered &= smp::ping(targets) == 0;
        });
        for (row, what) in [
            ("shootdown_1page", Invalidation::range(PAGE, 1)),
            ("shootdown_32pages", Invalidation::range(PAGE, 32)),
            ("shootdown_all", Invalidation::All),
        ] {
            super::measure(&name(row), COUNT, || answered &= smp::invalidate(targets, what) == 0);
        }
    }
    answered
}

/// The `probe` program's argument for `rounds` rounds of one kind of work
/// (its mode 10; see `user/src/bin/probe/main.rs`).
const fn work(kind: u64, rounds: u64) -> u64 {
    10 | kind << 8 | rounds << 16
}

/// The kinds of work: row name, the probe's kind, rounds per worker (enough
/// that the spawns and reaps are a small part of the time).
const WORK: [(&str, u64, u64); 3] = [
    // A million additions a round, no system call.
    ("par_compute_1M_adds", 0, 20),
    // 64 pages mapped, written, read back and unmapped a round.
    ("par_fault_64pages", 1, 100),
    // A fork of a child that exits at once, and a wait, a round.
    ("par_fork_exit_wait", 2, 200),
];

/// What one batch of workers cost: wall-time TSC cycles, page faults, and
/// the kernel lock's contended takes and cycles waited.
#[derive(Clone, Copy, Default)]
struct Batch {
    cycles: u64,
    faults: u64,
    contended: u64,
    waited: u64,
}

/// Each kind of work by one worker, by two, and by one per processor, at
/// once. The batches take turns (one of each size per repetition), so that
/// the host's slower moments fall on every size alike.
fn parallel(online: usize) -> bool {
    // Every batch pays the same two TSC reads a hold.
    lockstat::enable();
    let mut counts = alloc::vec![1, 2, online];
    counts.dedup();
    for (name, kind, rounds) in WORK {
        lockstat::KERNEL_LOCK.reset();
        lockstat::VM_LOCK.reset();
        let mut runs = alloc::vec![Vec::with_capacity(REPETITIONS); counts.len()];
        let mut at_once = alloc::vec![0; counts.len()];
        for _ in 0..REPETITIONS {
            for (size, &workers) in counts.iter().enumerate() {
                process::most_at_once();
                let Some(batch) = run_batch(work(kind, rounds), workers) else { return false };
                runs[size].push(batch);
                at_once[size] = at_once[size].max(process::most_at_once());
            }
        }
        let mut speedups = String::new();
        let mut alone = 0;
        for ((&workers, batches), at_once) in counts.iter().zip(&mut runs).zip(at_once) {
            let faults = batches.iter().map(|batch| batch.faults).sum::<u64>() as f64
                / (REPETITIONS as u64 * workers as u64 * rounds) as f64;
            let mut per_round: Vec<u64> =
                batches.iter().map(|batch| batch.cycles / rounds).collect();
            let median = print_row(&format!("{name}_x{workers}"), &mut per_round, faults);
            if workers == 1 {
                alone = median;
                continue;
            }
            batches.sort_unstable_by_key(|batch| batch.cycles);
            let middle = batches[REPETITIONS / 2];
            let speedup = (workers as u64 * alone) as f64 / median as f64;
            // Of every processor's time: idle ones wait for it too.
            let waiting = middle.waited as f64 / (online as u64 * middle.cycles) as f64;
            let contended = middle.contended as f64 / (workers as u64 * rounds) as f64;
            let _ = write!(
                speedups,
                " speedup_{workers}={speedup:.2} at_once_{workers}={at_once} \
                 lock_wait_share_{workers}={waiting:.3} contended_per_round_{workers}={contended:.2}",
            );
        }
        println!("I {name}{speedups}");
        for (lock, times) in
            [("kernel_lock", &lockstat::KERNEL_LOCK), ("vm_lock", &lockstat::VM_LOCK)]
        {
            if let Some(holds) = times.summary() {
                print_holds(&format!("{name}_{lock}"), holds);
            }
        }
    }
    true
}

/// Spawns `workers` probes with `argument` and waits for them all.
fn run_batch(argument: u64, workers: usize) -> Option<Batch> {
    let faults = super::fault_count();
    let (_, contended, waited) = kernel_lock::statistics();
    let start = tsc::read();
    let mut pids = Vec::new();
    for _ in 0..workers {
        match process::spawn("probe", argument) {
            Ok(pid) => pids.push(pid),
            Err(error) => {
                log::error!("cannot start a worker: {error}");
                return None;
            }
        }
    }
    for pid in pids {
        if process::wait_for(pid) != Some(0) {
            log::error!("a worker (probe {argument:#x}) failed");
            return None;
        }
    }
    let cycles = tsc::read() - start;
    let (_, contended_after, waited_after) = kernel_lock::statistics();
    Some(Batch {
        cycles,
        faults: super::fault_count() - faults,
        contended: contended_after - contended,
        waited: waited_after - waited,
    })
}
