//! How long the VM lock is held, when the command line says `lockstat`.
//!
//! Every holder of the lock (a system call, a fault, the page daemon, the
//! kernel's own work) runs with interrupts off on this kernel, so the hold
//! times are also how long the lock keeps other work waiting: the figure a
//! finer lock design has to beat. Off by default: two TSC reads a hold cost
//! a few percent of a cheap call under TCG, and the benchmarks are measured
//! without them.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::tsc;

static ON: AtomicBool = AtomicBool::new(false);
static HOLDS: AtomicU64 = AtomicU64::new(0);
static CYCLES: AtomicU64 = AtomicU64::new(0);
static LONGEST: AtomicU64 = AtomicU64::new(0);
/// Holds by length: bucket `k` counts those under 2^k microseconds (the last
/// takes the rest).
static BUCKETS: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];

/// Starts measuring (`lockstat`).
pub fn enable() {
    ON.store(true, Ordering::Relaxed);
}

/// A hold being measured: recorded when dropped, which must be before the
/// lock is released.
pub struct Hold(u64);

/// Starts timing a hold of the lock, if measuring.
pub fn start() -> Option<Hold> {
    ON.load(Ordering::Relaxed).then(|| Hold(tsc::read()))
}

impl Drop for Hold {
    fn drop(&mut self) {
        let cycles = tsc::read().saturating_sub(self.0);
        HOLDS.fetch_add(1, Ordering::Relaxed);
        CYCLES.fetch_add(cycles, Ordering::Relaxed);
        LONGEST.fetch_max(cycles, Ordering::Relaxed);
        let micros = cycles * 1_000_000 / tsc::frequency().max(1);
        let bucket = (u64::BITS - micros.leading_zeros()) as usize;
        BUCKETS[bucket.min(BUCKETS.len() - 1)].fetch_add(1, Ordering::Relaxed);
    }
}

/// What was measured: holds, their mean and longest in nanoseconds, and the
/// bound in microseconds (a power of two) that 99% of them stayed under;
/// `None` if not measuring.
pub fn summary() -> Option<(u64, u64, u64, u64)> {
    if !ON.load(Ordering::Relaxed) {
        return None;
    }
    let holds = HOLDS.load(Ordering::Relaxed);
    let nanos = |cycles: u64| cycles * 1_000 / (tsc::frequency() / 1_000_000).max(1);
    let mean = nanos(CYCLES.load(Ordering::Relaxed) / holds.max(1));
    let longest = nanos(LONGEST.load(Ordering::Relaxed));
    let mut seen = 0;
    let mut bound = 0;
    for (bucket, count) in BUCKETS.iter().enumerate() {
        seen += count.load(Ordering::Relaxed);
        if seen * 100 >= holds * 99 {
            bound = 1u64 << bucket;
            break;
        }
    }
    Some((holds, mean, longest, bound))
}
