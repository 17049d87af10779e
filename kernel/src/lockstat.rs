//! How long locks are held, when the command line says `lockstat` (or a
//! benchmark turns it on): the VM lock, and the kernel lock that lets one
//! processor at a time run kernel work.
//!
//! Every holder of the VM lock (a system call, a fault, the page daemon, the
//! kernel's own work) runs with interrupts off on this kernel, so its hold
//! times are also how long it keeps other work waiting: the figure a finer
//! lock design has to beat. The kernel lock's holds are how long one
//! processor kept every other one out of the kernel. Off by default: two TSC
//! reads a hold cost a few percent of a cheap call under TCG, and the
//! benchmarks are measured without them.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::arch::tsc;

static ON: AtomicBool = AtomicBool::new(false);

/// The VM lock's holds (`memory::with_vm` and its kin).
pub static VM_LOCK: HoldTimes = HoldTimes::new();
/// The kernel lock's holds (`arch::kernel_lock`).
pub static KERNEL_LOCK: HoldTimes = HoldTimes::new();

/// Starts measuring.
pub fn enable() {
    ON.store(true, Ordering::Relaxed);
}

/// Whether holds are being measured.
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Hold times of one lock.
pub struct HoldTimes {
    holds: AtomicU64,
    cycles: AtomicU64,
    longest: AtomicU64,
    /// Holds by length: bucket `k` counts those under 2^k microseconds (the
    /// last takes the rest).
    buckets: [AtomicU64; 16],
}

/// A hold being measured: recorded when dropped, which must be before the
/// lock is released.
pub struct Hold<'a>(&'a HoldTimes, u64);

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        self.0.record(tsc::read().saturating_sub(self.1));
    }
}

/// What was measured of one lock.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub holds: u64,
    pub mean_ns: u64,
    pub longest_ns: u64,
    /// The bound in microseconds (a power of two) that 99% of holds stayed
    /// under.
    pub p99_under_us: u64,
}

impl HoldTimes {
    const fn new() -> HoldTimes {
        HoldTimes {
            holds: AtomicU64::new(0),
            cycles: AtomicU64::new(0),
            longest: AtomicU64::new(0),
            buckets: [const { AtomicU64::new(0) }; 16],
        }
    }

    /// Starts timing a hold, if measuring.
    pub fn start(&self) -> Option<Hold<'_>> {
        enabled().then(|| Hold(self, tsc::read()))
    }

    /// Counts one hold of `cycles` TSC cycles.
    pub fn record(&self, cycles: u64) {
        self.holds.fetch_add(1, Ordering::Relaxed);
        self.cycles.fetch_add(cycles, Ordering::Relaxed);
        self.longest.fetch_max(cycles, Ordering::Relaxed);
        let micros = cycles * 1_000_000 / tsc::frequency().max(1);
        let bucket = (u64::BITS - micros.leading_zeros()) as usize;
        self.buckets[bucket.min(self.buckets.len() - 1)].fetch_add(1, Ordering::Relaxed);
    }

    /// Forgets what was measured so far.
    pub fn reset(&self) {
        for counter in [&self.holds, &self.cycles, &self.longest].into_iter().chain(&self.buckets) {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// What was measured; `None` if not measuring.
    pub fn summary(&self) -> Option<Summary> {
        if !enabled() {
            return None;
        }
        let holds = self.holds.load(Ordering::Relaxed);
        let nanos = |cycles: u64| cycles * 1_000 / (tsc::frequency() / 1_000_000).max(1);
        let mut seen = 0;
        let mut p99_under_us = 0;
        for (bucket, count) in self.buckets.iter().enumerate() {
            seen += count.load(Ordering::Relaxed);
            if seen * 100 >= holds * 99 {
                p99_under_us = 1u64 << bucket;
                break;
            }
        }
        Some(Summary {
            holds,
            mean_ns: nanos(self.cycles.load(Ordering::Relaxed) / holds.max(1)),
            longest_ns: nanos(self.longest.load(Ordering::Relaxed)),
            p99_under_us,
        })
    }
}

impl core::fmt::Display for Summary {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} holds, mean {} ns, longest {} ns, 99% under {} us",
            self.holds, self.mean_ns, self.longest_ns, self.p99_under_us
        )
    }
}
