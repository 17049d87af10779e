//! The out-of-memory policy: when a fault cannot be resolved for lack of
//! memory even after reclaim (see `vm::reclaim`), the largest process goes,
//! not whichever touched memory last, as in Linux's OOM killer (which weighs
//! resident and swapped pages the same way, without its adjustments).

use super::scheduler;
use super::table::{State, with_table};
use crate::memory::with_vm;

/// What became of a fault that ran out of memory.
pub enum Verdict {
    /// Another process was larger and was killed: the fault can be retried.
    Retry,
    /// The faulting process is the largest (or alone): it must go.
    KillCurrent,
}

/// Picks the largest process by pages in memory and in swap, and kills it
/// unless it is the running one; logs why.
pub fn out_of_memory() -> Verdict {
    let candidates: alloc::vec::Vec<_> = with_table(|table| {
        table
            .processes
            .values()
            .filter(|process| !matches!(process.state, State::Zombie(_)))
            .map(|process| (process.pid, process.name, process.space))
            .collect()
    });
    let current = with_table(|table| table.current);
    let sized = with_vm(|vm| {
        let free = vm.frames().counters().free;
        let slots = vm.frames().slots().counters();
        let held: usize = vm.swap_devices().map(|device| device.frames_held()).sum();
        log::info!(
            "out of memory: swap slots {} of {} in use, devices hold {held} frames",
            slots.used,
            slots.total
        );
        let sizes: alloc::vec::Vec<_> =
            candidates.iter().map(|&(pid, name, space)| (pid, name, vm.footprint(space))).collect();
        (free, sizes)
    });
    let (free, sizes) = sized;
    let Some(&(victim, name, (resident, swapped))) =
        sizes.iter().max_by_key(|(pid, _, (resident, swapped))| (resident + swapped, pid.0))
    else {
        return Verdict::KillCurrent;
    };
    log::warn!(
        "out of memory ({free} frames free, nothing left to reclaim): killing process {victim} \
         ({name}), the largest: {resident} pages in memory, {swapped} in swap"
    );
    if Some(victim) == current || current.is_none() {
        return Verdict::KillCurrent;
    }
    if scheduler::kill(victim) { Verdict::Retry } else { Verdict::KillCurrent }
}
