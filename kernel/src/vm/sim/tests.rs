//! The simulation runs: many seeds by default, a soak or one seed on request.

use std::env;
use std::time::Instant;

use super::driver::Driver;
use crate::vm::system::VmStatistics;

/// Seeds in the default run.
const DEFAULT_SEEDS: u64 = 600;

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
    let mut total = VmStatistics::default();
    let (mut out_of_memory, mut discards) = (0, 0);
    for seed in first..first + seeds {
        let mut driver = Driver::new(seed);
        driver.run(operations);
        out_of_memory += driver.out_of_memory;
        discards += driver.spontaneous_discards();
        add(&mut total, &driver.vm_statistics());
    }
    std::eprintln!(
        "vm simulation: {seeds} seeds x {operations} operations in {:?}: {total:?}, \
         {out_of_memory} operations out of memory, {discards} spontaneous discards",
        started.elapsed()
    );
}

/// Adds one run's statistics to a total.
fn add(total: &mut VmStatistics, run: &VmStatistics) {
    total.faults += run.faults;
    total.rebuild_faults += run.rebuild_faults;
    total.zero_fills += run.zero_fills;
    total.cow_copies += run.cow_copies;
    total.cow_reuses += run.cow_reuses;
    total.protection_faults += run.protection_faults;
    total.bad_address_faults += run.bad_address_faults;
    total.out_of_memory_faults += run.out_of_memory_faults;
    total.forks += run.forks;
    total.fork_copies += run.fork_copies;
}

#[test]
fn simulation_agrees_with_model() {
    if let Some(seed) = setting("VM_SEED") {
        run_seeds(seed, 1, setting("VM_SOAK_OPS").unwrap_or(DEFAULT_OPERATIONS));
        return;
    }
    let seeds = setting("VM_SOAK_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let operations = setting("VM_SOAK_OPS").unwrap_or(DEFAULT_OPERATIONS);
    run_seeds(setting("VM_SOAK_FIRST").unwrap_or(0), seeds, operations);
}
