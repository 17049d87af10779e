//! User processes: loading programs, the scheduler, and the system calls.
//!
//! A process is an address space (in the portable VM), a kernel stack, a saved
//! kernel context, a state and an exit status, and a table of shared-memory
//! handles. Programs are static ELF executables from the boot ramdisk, checked by
//! [`elf`] before anything is mapped.
//!
//! # Scheduling
//! Preemptive round robin on every processor, from one ready queue. Each
//! processor has an *idle task*: on the boot processor it is the kernel's own
//! thread (the one that booted, which runs the monitor or a test), on the others
//! the thread that started them. [`idle`] runs the next ready process for one
//! turn, or halts until an interrupt if none is ready. A process's turn ends
//! when it makes a blocking call (`yield`, `sleep`, `wait`, `exit`), is killed,
//! or when its processor's timer interrupts it in user mode; every turn returns
//! to the idle task of the processor it ran on, which picks the next process,
//! activates its address space (through the page-table cache) and switches to
//! its kernel stack. So the monitor gets a look at its input between any two
//! turns on the boot processor. A process made ready wakes a halted processor
//! for it; a turn may run on any processor, and the next on another.
//!
//! One queue with one lock, rather than a queue per processor with stealing:
//! every turn already takes the kernel lock (below), so per-processor queues
//! would save no lock, and one queue keeps round robin fair across processors.
//!
//! The kernel code is never preempted and runs on one processor at a time: the
//! kernel lock (`arch::kernel_lock`) is taken on every entry from user mode and
//! given back on every return, and an idle task holds it but while it halts.
//! System calls run with interrupts disabled, and the timer switches only when
//! it interrupted user mode. No other lock is ever held across a switch.
//!
//! A process killed while it runs on another processor (its memory is in use
//! there) is marked, and ends at its next system call or timer tick.
//!
//! # Faults
//! A user page fault the VM cannot resolve, or any other exception in user mode,
//! kills the process with a log line naming its id, the address and the access;
//! its parent's `wait` reports it as killed. A bad pointer passed to a system call
//! is `Errno::Fault`, never a kernel fault (see `usercopy`).

pub mod backtrace;
pub mod elf;
#[cfg(target_os = "none")]
mod loader;
#[cfg(target_os = "none")]
mod oom;
#[cfg(target_os = "none")]
mod scheduler;
#[cfg(target_os = "none")]
mod syscall;
#[cfg(target_os = "none")]
mod table;
#[cfg(target_os = "none")]
mod usercopy;

#[cfg(target_os = "none")]
pub use loader::{SpawnError, spawn};
#[cfg(target_os = "none")]
pub use oom::{Verdict, out_of_memory};
#[cfg(target_os = "none")]
pub use scheduler::{
    idle, kill, kill_current, most_at_once, preempt, reap, run_until_settled, turns, wait_for,
    wait_for_work, with_last_kill_report,
};
#[cfg(target_os = "none")]
pub use table::{MAX_PROCESSES, Pid, RESERVED_PROCESSES, State, Summary, processes, summary};

/// Turns on system calls. Runs once at start-up, after the GDT.
#[cfg(target_os = "none")]
pub fn init() {
    crate::arch::context::init(syscall::handle);
    crate::memory::with_vm(|vm| vm.set_region_limit(syscall::MAX_REGIONS));
    // The ready queue's whole size now, so that it never grows later (the
    // kernel heap's bytes in use then depend only on what is alive).
    table::with_table(|table| table.ready.reserve(table::MAX_PROCESSES));
}

/// Frames held by processes' kernel stacks (kept for reuse, like the heap's).
#[cfg(target_os = "none")]
pub fn stack_frames() -> usize {
    crate::arch::stack::stack_frames()
}
