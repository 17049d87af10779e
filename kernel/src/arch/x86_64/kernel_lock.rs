//! The kernel lock: one processor at a time runs the kernel's own work.
//!
//! Every processor runs user code at once, but kernel code that touches shared
//! state (the process table, the VM, the scheduler) runs on one processor at a
//! time: the holder of this lock. It is the lock of the first SMP Unix kernels,
//! and it keeps the kernel's one-processor reasoning valid (a system call runs
//! with interrupts off from start to end, and no other processor changes
//! anything meanwhile) while processes run in parallel. The finer locks inside
//! (the VM's, the table's, the heap's) stay and are uncontended.
//!
//! # Who holds it
//! - A processor takes it on every entry from user mode that does kernel work:
//!   a system call, an exception, the timer's preemption. It gives it back on
//!   every return to user mode (`context::return_to_user`, or the end of the
//!   interrupt handler that took it).
//! - A processor's idle task holds it while it looks for work and gives it
//!   back only to wait for an interrupt ([`wait_idle`]). A turn of a process
//!   starts and ends in the idle task of one processor, so the lock goes with
//!   the processor, not with a task: a process that blocks in a system call
//!   switches to the idle task with the lock held, and whichever task runs next
//!   on that processor gives it back when it returns to user mode.
//! - The boot processor holds it from the start (the static's initial value):
//!   start-up, the monitor and the tests run as its idle task.
//!
//! # Waiting
//! A waiting processor serves requests (shootdowns) from other processors:
//! the holder may be waiting for this very processor's answer. It spins for
//! some microseconds, polling for them (most holds are shorter), then halts
//! with interrupts on between tries, serving them in their interrupt. It marks
//! itself as waiting, and whoever releases the lock interrupts one waiter, so
//! a halted waiter learns at once. Nothing is held while waiting, and no
//! interrupt handler takes this lock for an interrupt of kernel code, so
//! taking interrupts meanwhile is safe.
//!
//! With one processor online the lock is never taken or released: the boot
//! processor holds it for good, and the entry paths pay nothing for it.

use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use super::acpi::MAX_CPUS;
use super::{smp, tsc};
use crate::lockstat;

/// The holder's index + 1; 0 when free. The boot processor holds it first.
static HOLDER: AtomicUsize = AtomicUsize::new(1);
/// Processors halted until the lock is released.
static WAITING: AtomicU32 = AtomicU32::new(0);
/// Processors halted in their idle task until there is work.
static IDLE: AtomicU32 = AtomicU32::new(0);
/// Times the lock was taken, of them after waiting, and TSC cycles waited.
static TAKEN: AtomicU64 = AtomicU64::new(0);
static CONTENDED: AtomicU64 = AtomicU64::new(0);
static WAITED: AtomicU64 = AtomicU64::new(0);
/// When each processor took the lock (TSC), if hold times are measured
/// (`lockstat`); 0 if not known.
static SINCE: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// How long a waiter spins before it halts, in microseconds. Most holds
/// are a system call or a fault (mean some microseconds, see `lockstat`):
/// spinning through one costs less than a halt and the interrupt that ends
/// it. Longer holds (a fork, a reclaim) are waited for halted.
const SPIN_MICROS: u64 = 20;

/// Whether the lock is in use at all (more than one processor online).
fn shared() -> bool {
    smp::counts().0 > 1
}

/// Takes the lock for the running processor, which must not hold it.
/// Interrupts must be off; they are taken while waiting and off again on
/// return.
pub fn lock() {
    if !shared() {
        return;
    }
    let me = smp::this_cpu();
    assert_ne!(
        HOLDER.load(Ordering::Relaxed),
        me + 1,
        "kernel lock: taken twice by processor {me}"
    );
    TAKEN.fetch_add(1, Ordering::Relaxed);
    if try_take(me) {
        return;
    }
    let start = tsc::read();
    let taken = || {
        CONTENDED.fetch_add(1, Ordering::Relaxed);
        WAITED.fetch_add(tsc::read() - start, Ordering::Relaxed);
    };
    let spin_until = start + SPIN_MICROS * tsc::frequency() / 1_000_000;
    while tsc::read() < spin_until {
        if try_take(me) {
            return taken();
        }
        smp::serve_requests();
        core::hint::spin_loop();
    }
    // Halted from here on, one try per interrupt: a waiter that spun again
    // after each (its timer, a shootdown) would take time from the holder
    // wherever processors share a core (emulators, hyperthreads).
    loop {
        WAITING.fetch_or(1 << me, Ordering::SeqCst);
        if try_take(me) {
            WAITING.fetch_and(!(1 << me), Ordering::SeqCst);
            return taken();
        }
        // The releaser saw the mark and sends an interrupt, which ends this
        // `hlt` even if it came before it (it stays pending until `sti`).
        x86_64::instructions::interrupts::enable_and_hlt();
        x86_64::instructions::interrupts::disable();
    }
}

fn try_take(me: usize) -> bool {
    // Read first: a failed exchange would take the line from the holder.
    if HOLDER.load(Ordering::Relaxed) != 0 {
        return false;
    }
    let taken = HOLDER.compare_exchange(0, me + 1, Ordering::Acquire, Ordering::Relaxed).is_ok();
    if taken && lockstat::enabled() {
        SINCE[me].store(tsc::read(), Ordering::Relaxed);
    }
    taken
}

/// Gives the lock back; the running processor must hold it. Interrupts off.
pub fn unlock() {
    if !shared() {
        return;
    }
    let me = smp::this_cpu();
    let since = SINCE[me].swap(0, Ordering::Relaxed);
    if since != 0 {
        lockstat::KERNEL_LOCK.record(tsc::read().saturating_sub(since));
    }
    let was = HOLDER.swap(0, Ordering::SeqCst);
    assert_eq!(
        was,
        me + 1,
        "kernel lock: released by processor {me}, held by {}",
        was as isize - 1
    );
    let waiting = WAITING.load(Ordering::SeqCst) & !(1 << me);
    if waiting != 0 {
        smp::nudge(waiting.trailing_zeros() as usize);
    }
}

/// Times the lock was taken, times it had to be waited for, and the TSC
/// cycles spent waiting, on every processor.
pub fn statistics() -> (u64, u64, u64) {
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    (load(&TAKEN), load(&CONTENDED), load(&WAITED))
}

/// `extern "C"` [`unlock`], for the return to user mode's assembly.
pub extern "C" fn unlock_for_user() {
    unlock();
}

/// Whether the running processor holds the lock (always, with one online).
pub fn held() -> bool {
    !shared() || HOLDER.load(Ordering::Relaxed) == smp::this_cpu() + 1
}

/// Holds the lock for a handler of an exception or interrupt, if it came from
/// user mode; gives it back when dropped (on the way back to user mode).
pub struct FromUser(bool);

impl FromUser {
    /// Takes the lock if `from_user`.
    pub fn enter(from_user: bool) -> FromUser {
        if from_user {
            lock();
        }
        FromUser(from_user)
    }
}

impl Drop for FromUser {
    fn drop(&mut self) {
        if self.0 {
            unlock();
        }
    }
}

/// For an idle task with nothing to do: gives the lock back, halts until an
/// interrupt (if `any_interrupt`) or until [`wake_idle`] from a processor that
/// made work, and takes the lock again. Interrupts must be off; off again on
/// return.
///
/// Without `any_interrupt`, the processor serves other processors' requests
/// (shootdowns) and takes its timer ticks halted, never touching the lock:
/// an idle processor taking the lock at every interrupt only to find nothing
/// to do would make every shootdown to it cost a wait for the lock.
pub fn wait_idle(any_interrupt: bool) {
    if !shared() {
        x86_64::instructions::interrupts::enable_and_hlt();
        x86_64::instructions::interrupts::disable();
        return;
    }
    let me = smp::this_cpu();
    IDLE.fetch_or(1 << me, Ordering::SeqCst);
    unlock();
    halt_until_woken(me, any_interrupt);
    lock();
}

/// For a processor that has just come up: waits halted, without the lock,
/// until there is work ([`wake_idle`]), then takes the lock for its idle
/// task. Interrupts must be off; off again on return.
pub fn join_idle() {
    let me = smp::this_cpu();
    IDLE.fetch_or(1 << me, Ordering::SeqCst);
    halt_until_woken(me, false);
    lock();
}

/// Halts processor `me`, marked idle, until an interrupt (if `any_interrupt`)
/// or until [`wake_idle`]; clears the mark.
fn halt_until_woken(me: usize, any_interrupt: bool) {
    loop {
        // `wake_idle` clears the mark before its interrupt, which ends this
        // `hlt` even if it came before it (it stays pending until `sti`).
        x86_64::instructions::interrupts::enable_and_hlt();
        x86_64::instructions::interrupts::disable();
        if any_interrupt || IDLE.load(Ordering::SeqCst) & 1 << me == 0 {
            break;
        }
    }
    IDLE.fetch_and(!(1 << me), Ordering::SeqCst);
}

/// Wakes every processor halted in its idle task but this one: there is
/// work (a process made ready, or one ended that the boot processor's kernel
/// code may be waiting for). Does not wait for them.
pub fn wake_idle() {
    let me = smp::this_cpu();
    let mut idle = IDLE.load(Ordering::SeqCst) & !(1 << me);
    while idle != 0 {
        let cpu = idle.trailing_zeros() as usize;
        if IDLE.fetch_and(!(1 << cpu), Ordering::SeqCst) & 1 << cpu != 0 {
            smp::nudge(cpu);
        }
        idle &= idle - 1;
    }
}
