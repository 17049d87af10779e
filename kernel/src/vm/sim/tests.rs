//! The simulation runs: many seeds by default, a soak or one seed on request.

use std::collections::BTreeMap;
use std::env;
use std::time::Instant;

use super::driver::{Driver, simulated_vm, touch};
use super::invariants;
use super::ops::Op;
use crate::vm::mmu::{Access, Protection, USER_START, VirtAddr};
use crate::vm::page::PAGE_SIZE;
use crate::vm::system::{Placement, VmStatistics};

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

/// How many times a default run must at least have issued each kind of
/// operation: far below what it does (the rarest, `CreateSpace`, about 600
/// times; `ZapObject` and `Zap` about 1,300 and 1,500), so that only a kind
/// lost, or the driver's way to it, fails.
const MINIMUM_PER_KIND: u64 = 100;

/// How many times a default run must at least have taken each of the paths
/// [`check_coverage`] names.
const MINIMUM_PER_PATH: u64 = 40;

/// Activations the machine must at least have refused in a default run (it
/// refuses about 1,100).
const MINIMUM_REFUSED_ACTIVATIONS: u64 = 100;

/// Seeds of a default run that must at least have had several processors
/// (about 360 of 600 do).
const MINIMUM_SEVERAL_PROCESSORS: u64 = 200;

/// What a run of many seeds did, added up.
#[derive(Default)]
struct Summary {
    statistics: VmStatistics,
    operations: BTreeMap<&'static str, u64>,
    out_of_memory: u64,
    discards: u64,
    refused_activations: u64,
    lazy_write_protects: u64,
    mapped_ahead: u64,
    copied: u64,
    /// Seeds run, by processor count.
    processors: BTreeMap<usize, u64>,
    migrations: u64,
}

/// Runs `seeds` seeds from `first` with `operations` each, prints a summary and
/// returns it.
fn run_seeds(first: u64, seeds: u64, operations: u64) -> Summary {
    let started = Instant::now();
    let mut total = Summary::default();
    for seed in first..first + seeds {
        let mut driver = Driver::new(seed);
        driver.run(operations);
        total.out_of_memory += driver.out_of_memory;
        total.discards += driver.spontaneous_discards();
        total.refused_activations += driver.refused_activations();
        total.lazy_write_protects += driver.lazy_write_protects();
        total.mapped_ahead += driver.vm.mmu().mapped_ahead;
        total.copied += driver.vm.mmu().copied;
        *total.processors.entry(driver.vm.mmu().processors()).or_default() += 1;
        total.migrations += driver.migrations;
        add(&mut total.statistics, &driver.vm_statistics());
        for (kind, count) in &driver.operations {
            *total.operations.entry(kind).or_default() += count;
        }
    }
    std::eprintln!(
        "vm simulation: {seeds} seeds x {operations} operations in {:?}: {:?}, \
         {} operations out of memory, {} spontaneous discards, {} refused activations, \
         {} tables write-protected whole, {} translations made ahead; \
         seeds by processor count: {:?}, {} spaces moved between processors; \
         operations by kind: {:?}",
        started.elapsed(),
        total.statistics,
        total.out_of_memory,
        total.discards,
        total.refused_activations,
        total.lazy_write_protects,
        total.mapped_ahead,
        total.processors,
        total.migrations,
        total.operations,
    );
    total
}

/// Panics unless every kind of operation ran at least [`MINIMUM_PER_KIND`]
/// times, the machine refused activations often enough, and seeds of one
/// and of several processors both ran.
fn check_coverage(summary: &Summary) {
    for kind in summary.operations.keys() {
        assert!(Op::KINDS.contains(kind), "{kind} is missing from Op::KINDS");
    }
    for kind in Op::KINDS {
        let count = summary.operations.get(kind).copied().unwrap_or(0);
        assert!(count >= MINIMUM_PER_KIND, "{kind} ran {count} times, under {MINIMUM_PER_KIND}");
    }
    assert!(
        summary.refused_activations >= MINIMUM_REFUSED_ACTIVATIONS,
        "{} refused activations, under {MINIMUM_REFUSED_ACTIVATIONS}",
        summary.refused_activations
    );
    let one = summary.processors.get(&1).copied().unwrap_or(0);
    let several: u64 = summary.processors.range(2..).map(|(_, seeds)| seeds).sum();
    assert!(
        one >= MINIMUM_SEVERAL_PROCESSORS && several >= MINIMUM_SEVERAL_PROCESSORS,
        "{one} seeds of one processor and {several} of several, under {MINIMUM_SEVERAL_PROCESSORS}"
    );
    // The page store's and the lazy MMU's paths, reached often enough (a
    // default run reaches the rarest, cow reuses, about 90 times).
    let paths = [
        ("zero-page reads", summary.statistics.zero_page_maps),
        ("chunk copies", summary.statistics.chunk_copies),
        ("cow reuses", summary.statistics.cow_reuses),
        ("tables write-protected whole", summary.lazy_write_protects),
        ("translations made ahead", summary.mapped_ahead),
        ("translations copied at fork", summary.copied),
        ("working-set pages restored", summary.statistics.pages_restored),
        ("pages written to swap", summary.statistics.page_outs),
        ("pages read back", summary.statistics.page_ins),
        ("clean pages dropped", summary.statistics.clean_reclaims),
        ("referenced pages kept", summary.statistics.pages_referenced),
        ("writes refused", summary.statistics.page_out_refusals),
        ("page-table pages reclaimed", summary.statistics.tables_reclaimed),
        ("spaces moved between processors", summary.migrations),
    ];
    for (path, count) in paths {
        assert!(count >= MINIMUM_PER_PATH, "{path}: {count}, under {MINIMUM_PER_PATH}");
    }
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
    total.zero_page_maps += run.zero_page_maps;
    total.chunk_copies += run.chunk_copies;
    total.pages_offered_ahead += run.pages_offered_ahead;
    total.pages_restored += run.pages_restored;
    total.pages_scanned += run.pages_scanned;
    total.pages_referenced += run.pages_referenced;
    total.pages_reclaimed += run.pages_reclaimed;
    total.clean_reclaims += run.clean_reclaims;
    total.page_outs += run.page_outs;
    total.page_out_refusals += run.page_out_refusals;
    total.page_ins += run.page_ins;
    total.page_in_errors += run.page_in_errors;
    total.tables_reclaimed += run.tables_reclaimed;
    total.reclaim_runs += run.reclaim_runs;
}

#[test]
fn simulation_agrees_with_model() {
    if let Some(seed) = setting("VM_SEED") {
        run_seeds(seed, 1, setting("VM_SOAK_OPS").unwrap_or(DEFAULT_OPERATIONS));
        return;
    }
    let seeds = setting("VM_SOAK_SEEDS").unwrap_or(DEFAULT_SEEDS);
    let operations = setting("VM_SOAK_OPS").unwrap_or(DEFAULT_OPERATIONS);
    let summary = run_seeds(setting("VM_SOAK_FIRST").unwrap_or(0), seeds, operations);
    if (seeds, operations) == (DEFAULT_SEEDS, DEFAULT_OPERATIONS) {
        check_coverage(&summary);
    }
}

/// Seeds the missing-shootdown run may take to fail (it fails within the first).
const SHOOTDOWN_SEEDS: u64 = 20;

#[test]
#[should_panic(expected = "invariant broken: TLB of processor")]
fn a_missing_shootdown_is_caught() {
    // A machine layer that shoots stale entries down on the running
    // processor only: the checks must notice, or they prove nothing.
    for seed in 0..SHOOTDOWN_SEEDS {
        let mut driver = Driver::with_processors(seed, 2);
        driver.vm.mmu_mut().local_shootdown_only = true;
        driver.run(DEFAULT_OPERATIONS);
    }
}

#[test]
#[should_panic(expected = "disagree")]
fn a_missing_shootdown_is_caught_by_the_model_alone() {
    // The same, with the invariants off: a stale entry on another processor
    // lets a read or write through that the model refuses, or shows it a
    // frame whose contents the model does not have.
    for seed in 0..SHOOTDOWN_SEEDS {
        let mut driver = Driver::with_processors(seed, 2);
        driver.vm.mmu_mut().local_shootdown_only = true;
        driver.check_invariants = false;
        driver.run(DEFAULT_OPERATIONS);
    }
}

#[test]
fn a_zap_missed_by_another_processor_breaks_the_tlb_invariant() {
    // The VM still allows the page a zap forgot, so only the comparison
    // with the tables can tell that processor 1 kept it past the flush.
    let mut vm = simulated_vm(32, 1, 0);
    vm.mmu_mut().set_processors(2);
    vm.mmu_mut().local_shootdown_only = true;
    vm.mmu_mut().run_on(1);
    let space = vm.create_space();
    vm.activate(space).expect("activate");
    let page = VirtAddr(USER_START);
    let read_write = Protection::READ | Protection::WRITE;
    vm.map_anonymous(space, Placement::Exact(page), PAGE_SIZE, read_write).expect("map");
    touch(&mut vm, page, Access::Write).expect("touch");
    vm.mmu_mut().run_on(0);
    vm.zap(space, page, PAGE_SIZE).expect("zap");
    let problem = invariants::check(&vm, &[]).expect_err("a stale entry on processor 1");
    assert!(problem.starts_with("TLB of processor 1 after a flush"), "{problem}");
}
