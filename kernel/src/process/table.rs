//! The process table.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::fmt;
use spin::Mutex;

use crate::arch::acpi::MAX_CPUS;
use crate::arch::fpu::FpuState;
use crate::arch::stack::KernelStack;
use crate::vm::{ObjectId, SpaceId};

/// A process id (1 is the first process started).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Pid(pub u64);

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What a process is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Waiting in the ready queue for its turn.
    Ready,
    /// Running now.
    Running,
    /// Sleeping until the timer reaches this tick.
    Sleeping(u64),
    /// Blocked in `wait` until a child ends.
    Waiting,
    /// Ended with this status word; waiting to be reaped.
    Zombie(u64),
}

/// Who reaps a process when it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parent {
    /// The kernel started it and reaps it with `wait_for`.
    Kernel,
    /// Its parent process, with `wait`.
    Process(Pid),
    /// Nobody: its parent ended first; the idle task reaps it.
    Orphan,
}

/// One process.
pub struct Process {
    /// Its id.
    pub pid: Pid,
    /// The program it runs.
    pub name: &'static str,
    /// Who reaps it.
    pub parent: Parent,
    /// Its address space.
    pub space: SpaceId,
    /// Its kernel stack.
    pub stack: KernelStack,
    /// Its saved kernel stack pointer while it does not run (boxed: a stable
    /// address for the switch to write to).
    pub context: Box<u64>,
    /// What it is doing.
    pub state: State,
    /// Its shared-memory handles.
    pub handles: BTreeMap<u64, ObjectId>,
    /// The next handle number it gets.
    pub next_handle: u64,
    /// Its x87/SSE registers while it does not run (boxed: 512 bytes).
    pub fpu: Box<FpuState>,
}

/// Every process, the ready queue, and who is running.
pub struct Table {
    /// Every process not yet reaped.
    pub processes: BTreeMap<Pid, Process>,
    /// Ready processes, in turn order.
    pub ready: VecDeque<Pid>,
    /// The process each processor runs now (`None`: its idle task).
    pub current: [Option<Pid>; MAX_CPUS],
    next_pid: u64,
}

/// Most processes at once, zombies included.
pub const MAX_PROCESSES: usize = 128;
/// Slots of the table that `fork` leaves to the kernel (programs the monitor
/// starts), so that processes filling the table do not lock it out.
pub const RESERVED_PROCESSES: usize = 8;

static TABLE: Mutex<Table> = Mutex::new(Table {
    processes: BTreeMap::new(),
    ready: VecDeque::new(),
    current: [None; MAX_CPUS],
    next_pid: 1,
});

/// Runs `f` on the table with interrupts disabled. `f` must not switch tasks
/// or take the VM lock.
pub fn with_table<R>(f: impl FnOnce(&mut Table) -> R) -> R {
    crate::arch::without_interrupts(|| f(&mut TABLE.lock()))
}

impl Table {
    /// A fresh process id.
    pub fn allocate_pid(&mut self) -> Pid {
        let pid = Pid(self.next_pid);
        self.next_pid += 1;
        pid
    }

    /// The process the running processor runs, if any (`None`: its idle task).
    pub fn current(&self) -> Option<Pid> {
        self.current[crate::arch::this_cpu()]
    }

    /// Sets the process the running processor runs.
    pub fn set_current(&mut self, pid: Option<Pid>) {
        self.current[crate::arch::this_cpu()] = pid;
    }

    /// Whether process `pid` runs on some processor now.
    pub fn is_running_anywhere(&self, pid: Pid) -> bool {
        self.current.contains(&Some(pid))
    }

    /// The running process. Panics if the idle task is running.
    pub fn running(&mut self) -> &mut Process {
        let pid = self.current().expect("running: no process is running");
        self.processes.get_mut(&pid).expect("running: current process missing")
    }

    /// Adds `process`, ready to run (and wakes an idle processor for it).
    pub fn insert_ready(&mut self, process: Process) {
        let pid = process.pid;
        self.processes.insert(pid, process);
        self.ready.push_back(pid);
        crate::arch::kernel_lock::wake_idle();
    }
}

/// One line of a process listing.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    /// Its id.
    pub pid: Pid,
    /// Its program.
    pub name: &'static str,
    /// Its state.
    pub state: State,
}

/// Every process now, by id.
pub fn processes() -> Vec<Summary> {
    with_table(|table| {
        table
            .processes
            .values()
            .map(|process| Summary { pid: process.pid, name: process.name, state: process.state })
            .collect()
    })
}

/// Process `pid` now, if it is in the table (zombies included).
pub fn summary(pid: Pid) -> Option<Summary> {
    with_table(|table| {
        let process = table.processes.get(&pid)?;
        Some(Summary { pid, name: process.name, state: process.state })
    })
}
