//! Timing, fault counting and the `R` line format.

use user::println;

/// Repetitions of every benchmark.
pub const REPETITIONS: usize = 5;

/// Page faults the kernel has handled so far.
pub fn faults() -> u64 {
    user::statistics().map_or(0, |statistics| statistics.faults)
}

/// One timed repetition: total cycles and faults over `operations` operations.
#[derive(Clone, Copy, Default)]
pub struct Sample {
    cycles: u64,
    faults: u64,
    operations: u64,
}

/// Times `body`, which performs `operations` operations.
pub fn time(operations: u64, body: impl FnOnce()) -> Sample {
    let faults_before = faults();
    let start = user::cycles();
    body();
    let cycles = user::cycles() - start;
    Sample { cycles, faults: faults() - faults_before, operations }
}

impl Sample {
    /// A sample measured elsewhere (in a child), with its fault count.
    pub fn new(cycles: u64, faults: u64, operations: u64) -> Sample {
        Sample { cycles, faults, operations }
    }
}

/// Prints `R` lines; knows the TSC frequency.
pub struct Reporter {
    mhz: u64,
}

impl Reporter {
    /// A reporter for a TSC ticking at `mhz` MHz.
    pub fn new(mhz: u64) -> Reporter {
        Reporter { mhz }
    }

    /// Runs `repetition` [`REPETITIONS`] times and reports its samples.
    pub fn run(&mut self, name: &str, mut repetition: impl FnMut() -> Sample) {
        let mut samples = [Sample::default(); REPETITIONS];
        for sample in &mut samples {
            *sample = repetition();
        }
        self.report(name, &samples);
    }

    /// Prints the line for `samples`: median, minimum and maximum per operation.
    pub fn report(&mut self, name: &str, samples: &[Sample]) {
        let mut per_op: [u64; REPETITIONS] = [0; REPETITIONS];
        let (mut faults, mut operations) = (0, 0);
        for (slot, sample) in per_op.iter_mut().zip(samples) {
            *slot = sample.cycles / sample.operations.max(1);
            faults += sample.faults;
            operations += sample.operations;
        }
        let per_op = &mut per_op[..samples.len().min(REPETITIONS)];
        per_op.sort_unstable();
        let median = per_op[per_op.len() / 2];
        let (min, max) = (per_op[0], per_op[per_op.len() - 1]);
        let flt = faults * 100 / operations.max(1);
        println!(
            "R {name} ns={} cyc={median} min={} max={} flt={}.{:02}",
            self.ns(median),
            self.ns(min),
            self.ns(max),
            flt / 100,
            flt % 100
        );
    }

    /// Cycles in nanoseconds, with one decimal.
    fn ns(&self, cycles: u64) -> Nanoseconds {
        Nanoseconds(cycles * 10_000 / self.mhz)
    }
}

/// Tenths of a nanosecond, printed as `123.4`.
struct Nanoseconds(u64);

impl core::fmt::Display for Nanoseconds {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}", self.0 / 10, self.0 % 10)
    }
}
