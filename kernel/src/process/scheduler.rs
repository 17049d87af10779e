//! Turns, blocking, ending and reaping (see the module documentation of
//! `process` for the design).

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

use crate::arch::acpi::MAX_CPUS;
use crate::arch::kernel_lock;

use super::backtrace::{self, UserPlace};
use super::table::{Parent, Pid, State, with_table};
use crate::arch::{self, context, stack};
use crate::fixed_text::FixedText;
use crate::memory::with_vm;
use crate::vm::{ObjectId, VirtAddr};

/// Each processor's idle task's saved stack pointer while a process runs there.
static IDLE_CONTEXT: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Per processor, a process killed while it ran there (its id; 0: none): it
/// ends at its next system call or timer tick ([`end_if_killed`]).
static KILL_PENDING: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Turns run by each processor so far.
static TURNS: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];
/// Most processes seen running at once (on as many processors) since it was
/// last read by [`most_at_once`].
static MOST_AT_ONCE: AtomicU64 = AtomicU64::new(0);
/// Where an ending process's last context goes (it is never resumed).
static DISCARDED_CONTEXT: AtomicU64 = AtomicU64::new(0);
/// Ticks a sleeper must still have for the system to count as settled.
const SETTLED_TICKS: u64 = arch::interrupts::TICK_HZ;

/// For the idle task (of any processor): runs the next ready process for one
/// turn; if there is none, gives the page daemon its turn, or waits for an
/// interrupt if it had nothing to do. The running processor must hold the
/// kernel lock; it gives it back while it waits.
pub fn idle() {
    let turn = run_next();
    if turn != Turn::Ran && !crate::memory::page_daemon() {
        // The boot processor keeps the clock: any tick may have woken a
        // sleeper. A processor turned away for want of a slot tries again
        // at its next tick. The others wait until they are woken for work.
        halt(arch::this_cpu() == 0 || turn == Turn::Busy);
    }
}

/// Lets go of the last address space this processor ran (so that changes to
/// it need not reach this processor, and its page-table slot may go to
/// another), then waits for an interrupt without the kernel lock. For kernel
/// code that waits while other processors run processes, running none itself.
///
/// Processes ready now (one whose turn here just ended, a sleeper whose time
/// came) are left to the others, which are woken for them: idle, they wait
/// until woken, and nothing else might wake them.
pub fn wait_for_work() {
    let ready = with_table(|table| {
        wake_sleepers(table);
        !table.ready.is_empty()
    });
    if ready {
        kernel_lock::wake_idle();
    }
    halt(true);
}

/// [`wait_for_work`]; with `any_interrupt` false, until woken for work.
fn halt(any_interrupt: bool) {
    arch::without_interrupts(|| {
        if arch::smp::counts().0 > 1 {
            let _ = crate::memory::try_with_vm(|vm| vm.deactivate());
        }
        kernel_lock::wait_idle(any_interrupt);
    });
}

/// What [`run_next`] did.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Turn {
    /// A process had a turn (or ended trying).
    Ran,
    /// None was ready.
    Nothing,
    /// One was, but every page-table slot is loaded on another processor.
    Busy,
}

/// Runs the next ready process for one turn.
fn run_next() -> Turn {
    arch::without_interrupts(|| {
        reap_orphans();
        let Some((pid, space, top, context)) = pick() else { return Turn::Nothing };
        match with_vm(|vm| vm.retry_after_reclaim(64, |vm| vm.activate(space))) {
            Ok(()) => {}
            Err(crate::vm::VmError::Busy) => {
                // Every page-table slot is loaded on another processor: it
                // waits for one of them to let go.
                with_table(|table| {
                    table.processes.get_mut(&pid).expect("run_next: picked").state = State::Ready;
                    table.ready.push_front(pid);
                    table.set_current(None);
                });
                return Turn::Busy;
            }
            Err(error) => {
                log::warn!("process {pid} killed: cannot activate its address space: {error}");
                with_table(|table| table.set_current(None));
                terminate(pid, abi::KILLED);
                return Turn::Ran;
            }
        }
        with_table(|table| {
            table.processes[&pid].fpu.restore();
            // Counted once its space is loaded: no earlier may it run.
            let running = table.current.iter().flatten().count() as u64;
            MOST_AT_ONCE.fetch_max(running, Ordering::Relaxed);
        });
        context::set_kernel_stack(top);
        TURNS[arch::this_cpu()].fetch_add(1, Ordering::Relaxed);
        let idle = IDLE_CONTEXT[arch::this_cpu()].as_ptr();
        // SAFETY: interrupts are disabled; `idle` is this processor's idle
        // task's slot, and `context` was saved by the process when it last
        // left (or laid out by `prepare_stack`); its kernel stack is mapped
        // while it lives, and no other processor runs it (it was ready).
        unsafe { context::switch(idle, context) };
        with_table(|table| {
            table.set_current(None);
            // Its turn is over: keep its registers (unless it has ended).
            if let Some(process) = table.processes.get_mut(&pid)
                && !matches!(process.state, State::Zombie(_))
            {
                process.fpu.save();
            }
        });
        Turn::Ran
    })
}

/// Wakes due sleepers, takes the next ready process and marks it running:
/// its id, space, kernel stack top and saved context.
fn pick() -> Option<(Pid, crate::vm::SpaceId, u64, u64)> {
    with_table(|table| {
        wake_sleepers(table);
        while let Some(pid) = table.ready.pop_front() {
            let Some(process) = table.processes.get_mut(&pid) else { continue };
            if process.state != State::Ready {
                continue;
            }
            process.state = State::Running;
            let found = (pid, process.space, process.stack.top(), *process.context);
            table.set_current(Some(pid));
            if !table.ready.is_empty() {
                // More work than this processor: another may take it.
                kernel_lock::wake_idle();
            }
            return Some(found);
        }
        None
    })
}

/// Makes the sleepers whose time has come ready.
fn wake_sleepers(table: &mut super::table::Table) {
    let now = arch::ticks();
    for process in table.processes.values_mut() {
        if matches!(process.state, State::Sleeping(until) if until <= now) {
            process.state = State::Ready;
            table.ready.push_back(process.pid);
        }
    }
}

/// Leaves the running process for the idle task; returns when it runs again.
/// The caller has set its state. Interrupts must be disabled.
fn switch_to_idle() {
    let save = with_table(|table| &raw mut *table.running().context);
    let idle = IDLE_CONTEXT[arch::this_cpu()].load(Ordering::SeqCst);
    // SAFETY: interrupts are disabled (caller's rule); `save` is the running
    // process's boxed context slot, which lives as long as the process; this
    // processor's idle task's context was saved by `run_next`, which is what
    // started this turn (a turn starts and ends on one processor).
    unsafe { context::switch(save, idle) };
}

/// Turns processor `cpu` has run so far.
pub fn turns(cpu: usize) -> u64 {
    TURNS.get(cpu).map_or(0, |turns| turns.load(Ordering::Relaxed))
}

/// The most processes that ran at once (each on a processor of its own)
/// since the last call; starts counting again.
pub fn most_at_once() -> u64 {
    MOST_AT_ONCE.swap(0, Ordering::Relaxed)
}

/// Ends the running process if it was killed while it ran here (see
/// [`kill`]); for the entries from user mode: system calls and the timer.
pub fn end_if_killed() {
    let pending = &KILL_PENDING[arch::this_cpu()];
    if pending.load(Ordering::Relaxed) == 0 {
        return;
    }
    let killed = pending.swap(0, Ordering::SeqCst);
    let current = with_table(|table| table.current());
    if current.is_some_and(|pid| pid.0 == killed) {
        log::debug!("process {killed} ends: it was killed while it ran");
        exit_current(abi::KILLED);
    }
}

/// Ends the running process's turn; it stays ready (the timer's preemption, and
/// `yield`). Interrupts must be disabled.
pub fn preempt() {
    end_if_killed();
    with_table(|table| {
        let process = table.running();
        process.state = State::Ready;
        let pid = process.pid;
        table.ready.push_back(pid);
    });
    switch_to_idle();
}

/// Blocks the running process until tick `until`.
pub fn sleep_until(until: u64) {
    with_table(|table| table.running().state = State::Sleeping(until));
    switch_to_idle();
}

/// Blocks the running process until one of its children ends.
pub fn block_waiting() {
    with_table(|table| table.running().state = State::Waiting);
    switch_to_idle();
}

/// Ends the running process with status word `status`. Interrupts disabled.
pub fn exit_current(status: u64) -> ! {
    let pid = with_table(|table| table.running().pid);
    terminate(pid, status);
    let idle = IDLE_CONTEXT[arch::this_cpu()].load(Ordering::SeqCst);
    // SAFETY: interrupts are disabled; this process is a zombie and is never
    // resumed, so its context goes to a slot nobody reads; its kernel stack
    // is freed only once no processor has it as current (see `reap`).
    unsafe { context::switch(DISCARDED_CONTEXT.as_ptr(), idle) };
    unreachable!("exit_current: a zombie was resumed")
}

/// The last report of a process killed for a fault: the log line's text and
/// its backtrace (see [`kill_current`]). Fixed-size: a process may be killed
/// because the heap ran out.
static LAST_KILL_REPORT: Mutex<FixedText<KILL_REPORT_BYTES>> = Mutex::new(FixedText::new());
/// Room for the report's first line and [`backtrace::MAX_USER_FRAMES`] lines.
const KILL_REPORT_BYTES: usize = 4096;

/// Kills the running process (a fault in user mode), logging `why` and the
/// backtrace of the program from `place` (where it was, if the caller knows),
/// with function names from the program's symbol table in the ramdisk
/// (`symbols.NAME`) when it has one. The program's memory is read through the
/// user-memory accessors, before it is torn down.
pub fn kill_current(why: fmt::Arguments, place: Option<UserPlace>) -> ! {
    let (pid, name) = with_table(|table| {
        let process = table.running();
        (process.pid, process.name)
    });
    let mut report = FixedText::<KILL_REPORT_BYTES>::new();
    let _ = write!(report, "process {pid} ({name}) killed: {why}");
    let line_end = report.as_str().len();
    if let Some(place) = place {
        let read = |address| arch::user_memory::read_u64(VirtAddr(address)).ok();
        let _ = writeln!(report);
        let _ = backtrace::write(&mut report, place, read, program_symbols(name));
    }
    let (line, backtrace) = report.as_str().split_at(line_end);
    log::warn!("{line}");
    crate::print!("{}", backtrace.strip_prefix('\n').unwrap_or(backtrace));
    arch::without_interrupts(|| *LAST_KILL_REPORT.lock() = report.clone());
    exit_current(abi::KILLED)
}

/// Calls `f` with the report of the last process killed for a fault (empty
/// if none was): its log line, then its backtrace.
pub fn with_last_kill_report<R>(f: impl FnOnce(&str) -> R) -> R {
    arch::without_interrupts(|| f(LAST_KILL_REPORT.lock().as_str()))
}

/// Program `name`'s symbol table, if the ramdisk has one (`symbols.NAME`).
fn program_symbols(name: &str) -> Option<&'static str> {
    let file = crate::ramdisk::get()
        .files()
        .map_while(Result::ok)
        .find(|file| file.name.strip_prefix("symbols.") == Some(name))?;
    core::str::from_utf8(file.content).ok()
}

/// Kills process `pid`, which must not be the one running here; false if no
/// such process is alive. One that runs on another processor is marked, and
/// ends at its next system call or timer tick there (its memory is in use
/// until then); any other ends now. Logged at debug level only: the caller
/// (the monitor, a test) says what it killed.
pub fn kill(pid: Pid) -> bool {
    let (alive, elsewhere) = with_table(|table| {
        let alive = table.current() != Some(pid)
            && table.processes.get(&pid).is_some_and(|p| !matches!(p.state, State::Zombie(_)));
        (alive, table.current.iter().position(|&current| current == Some(pid)))
    });
    if !alive {
        return false;
    }
    log::debug!("process {pid} killed by the kernel");
    match elsewhere {
        Some(cpu) => KILL_PENDING[cpu].store(pid.0, Ordering::SeqCst),
        None => arch::without_interrupts(|| terminate(pid, abi::KILLED)),
    }
    true
}

/// Makes `pid` a zombie with `status`: orphans its children, wakes its parent,
/// closes its handles and returns its memory. The kernel stack stays until the
/// zombie is reaped.
fn terminate(pid: Pid, status: u64) {
    let (space, handles) = with_table(|table| {
        for child in table.processes.values_mut() {
            if child.parent == Parent::Process(pid) {
                child.parent = Parent::Orphan;
            }
        }
        let process = table.processes.get_mut(&pid).expect("terminate: no such process");
        process.state = State::Zombie(status);
        let handles: alloc::vec::Vec<ObjectId> =
            core::mem::take(&mut process.handles).into_values().collect();
        let (space, parent) = (process.space, process.parent);
        if let Parent::Process(parent) = parent
            && let Some(parent) = table.processes.get_mut(&parent)
            && parent.state == State::Waiting
        {
            parent.state = State::Ready;
            table.ready.push_back(parent.pid);
        }
        // Its parent, or kernel code waiting on the boot processor, may be
        // waiting for this.
        kernel_lock::wake_idle();
        (space, handles)
    });
    with_vm(|vm| {
        for object in handles {
            vm.close_shared(object).expect("terminate: handle of a missing object");
        }
        vm.destroy(space).expect("terminate: space already gone");
    });
}

/// Removes zombie `pid` from the table and frees its kernel stack; its status.
/// No task may be running on its stack (true of any zombie but the caller).
pub fn reap(pid: Pid) -> Option<u64> {
    let process = with_table(|table| {
        let zombie = matches!(table.processes.get(&pid)?.state, State::Zombie(_));
        if !zombie || table.is_running_anywhere(pid) {
            return None;
        }
        let process = table.processes.remove(&pid);
        crate::collections::release_if_empty(&mut table.processes);
        process
    })?;
    let State::Zombie(status) = process.state else { unreachable!("reap: not a zombie") };
    stack::release(process.stack);
    Some(status)
}

/// Reaps every zombie nobody will wait for.
fn reap_orphans() {
    let orphans: alloc::vec::Vec<Pid> = with_table(|table| {
        let orphans = table.processes.values().filter(|process| {
            process.parent == Parent::Orphan && matches!(process.state, State::Zombie(_))
        });
        orphans.map(|process| process.pid).collect()
    });
    for pid in orphans {
        reap(pid);
    }
}

/// For kernel code (the idle task): runs processes until `pid`, which the
/// kernel started, ends; reaps it and returns its status word (`None` if there
/// is no such process).
pub fn wait_for(pid: Pid) -> Option<u64> {
    loop {
        if let Some(status) = reap(pid) {
            return Some(status);
        }
        if !with_table(|table| table.processes.contains_key(&pid)) {
            return None;
        }
        idle();
    }
}

/// For kernel code (the idle task): runs processes until none is ready and every
/// sleeper has at least a second left to sleep.
pub fn run_until_settled() {
    loop {
        let now = arch::ticks();
        let settled = with_table(|table| {
            table.processes.values().all(|process| match process.state {
                State::Sleeping(until) => until >= now + SETTLED_TICKS,
                State::Waiting | State::Zombie(_) => true,
                State::Ready | State::Running => false,
            })
        });
        if settled {
            return;
        }
        idle();
    }
}
