//! The out-of-memory policy: when a fault cannot be resolved for lack of
//! memory even after reclaim (see `vm::reclaim`), the largest process goes,
//! not whichever touched memory last, as in Linux's OOM killer (which weighs
//! resident and swapped pages the same way, without its adjustments). A
//! page a fork shares counts in each sharer by its share, so that the
//! process chosen is the one whose end frees the most.

use super::scheduler;
use super::table::{MAX_PROCESSES, Pid, State, with_table};
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
    // No heap here: the kernel may have just failed to find some.
    let mut candidates = [None; MAX_PROCESSES];
    let current = with_table(|table| {
        // Not one that runs on another processor: its memory is in use
        // until it next enters the kernel there.
        let current = table.current();
        let alive = table.processes.values().filter(|process| {
            !matches!(process.state, State::Zombie(_))
                && (Some(process.pid) == current || !table.is_running_anywhere(process.pid))
        });
        for (slot, process) in candidates.iter_mut().zip(alive) {
            *slot = Some((process.pid, process.name, process.space));
        }
        current
    });
    let mut largest = None;
    let free = with_vm(|vm| {
        let slots = vm.frames().slots().counters();
        let held: usize = vm.swap_devices().map(|device| device.frames_held()).sum();
        log::info!(
            "out of memory: swap slots {} of {} in use, devices hold {held} frames",
            slots.used,
            slots.total
        );
        for &(pid, name, space) in candidates.iter().flatten() {
            // Of equals, the youngest: the least work lost.
            let (resident, swapped) = vm.footprint(space);
            let weight = (resident + swapped, pid.0);
            if largest.is_none_or(|(other, _, size, _): (Pid, _, u64, _)| weight > (size, other.0))
            {
                largest = Some((pid, name, resident + swapped, (resident, swapped)));
            }
        }
        vm.frames().counters().free
    });
    let Some((victim, name, _, (resident, swapped))) = largest else {
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
