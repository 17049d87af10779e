//! The processors' benchmarks (`bench=smp`, on a machine with several): a
//! request's round trip to another processor, and TLB shootdowns of one
//! page, of 32 pages (one `invlpg` each, under Linux's 33-page ceiling) and
//! of everything (a CR3 reload), each sent to one processor and to every
//! other one at once. The figures are the sender's: from posting the
//! requests to the last answer.

use alloc::format;
use alloc::vec::Vec;

use super::measure;
use crate::arch::smp::{self, Invalidation};
use crate::println;

/// Requests per repetition.
const COUNT: u64 = 2_000;
/// A user address to invalidate (nothing need be mapped there).
const PAGE: u64 = 0x4000_0000;

/// Runs them; false if a request went unanswered.
pub fn run() -> bool {
    let (online, _) = smp::counts();
    println!("I cpus_online={online}");
    if online < 2 {
        println!("I shootdowns=none (one processor)");
        return true;
    }
    let every: Vec<usize> = (1..online).collect();
    let mut answered = true;
    for (targets, suffix) in [(&every[..1], "1"), (&every[..], "all")] {
        let name = |row: &str| format!("{row}_to_{suffix}_of_{online}");
        measure(&name("ipi_round_trip"), COUNT, || {
            answered &= smp::ping(targets) == 0;
        });
        for (row, what) in [
            ("shootdown_1page", Invalidation::range(PAGE, 1)),
            ("shootdown_32pages", Invalidation::range(PAGE, 32)),
            ("shootdown_all", Invalidation::All),
        ] {
            measure(&name(row), COUNT, || answered &= smp::invalidate(targets, what) == 0);
        }
    }
    answered
}
