//! The simulation runs: many seeds by default, a soak or one seed on request.

use std::env;
use std::time::Instant;

use super::driver::Driver;

/// Seeds in the default run.
const DEFAULT_SEEDS: u64 = 250;

/// Operations per seed in the default run.
const DEFAULT_OPERATIONS: u64 = 500;

/// A number from the environment, if set.
fn setting(name: &str) -> Option<u64> {
    env::var(name)
        .ok()
        .map(|value| value.parse().unwrap_or_else(|_| panic!("{name} must be a number")))
}

/// Runs `seeds` seeds from `first` with `operations` each and prints a summary.
fn run_seeds(first: u64, seeds: u64, operations: u64) {
    let started = Instant::now();
    let mut out_of_memory = 0;
    let mut faults = 0;
    for seed in first..first + seeds {
        let mut driver = Driver::new(seed);
        driver.run(operations);
        out_of_memory += driver.out_of_memory;
        faults += driver.vm_statistics().faults;
    }
    std::eprintln!(
        "vm simulation: {seeds} seeds x {operations} operations in {:?} ({faults} faults, {out_of_memory} out of memory)",
        started.elapsed()
    );
}

#[test]
fn simulation_agrees_with_model() {
    if let Some(seed) = setting("VM_SEED") {
        run_seeds(seed, 1, setting("VM_SOAK_OPS").unwrap_or(DEFAULT_OPERATIONS));
        return;
    }
    let seeds = setting("VM_SOAK_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let operations = setting("VM_SOAK_OPS").unwrap_or(DEFAULT_OPERATIONS);
    run_seeds(0, seeds, operations);
}
