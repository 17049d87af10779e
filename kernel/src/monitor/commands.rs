//! Running monitor commands, and the monitor's input loop.
//!
//! Programs started with `run` are the kernel's children, and nobody else waits
//! for them: the input loop looks at them between reading characters, reaps
//! each one that has ended and says how it ended, so that they run in the
//! background while the monitor keeps answering.

use alloc::vec::Vec;

use crate::arch;
use crate::memory::with_vm;
use crate::monitor::{Command, Edit, HELP, LineEditor, PROMPT, parse};
use crate::process::{self, Pid, State};
use crate::vm::page::{PAGE_SIZE, VM_PAGE_BYTES};
use crate::{console, println};

/// A program started with `run`, which the monitor reaps.
struct Started {
    /// Its process.
    pid: Pid,
    /// Its program.
    name: &'static str,
}

/// Reads commands from the keyboard and the serial line forever.
pub fn run() -> ! {
    let mut editor = LineEditor::default();
    let mut started = Vec::new();
    console::show_prompt(PROMPT, "");
    loop {
        report_ended(&mut started);
        if console::prompt_owed() {
            console::show_prompt(PROMPT, editor.line());
        }
        let Some(character) = arch::read_input() else {
            process::idle();
            continue;
        };
        match editor.type_char(character) {
            Edit::Echo(character) => {
                console::type_on_prompt(character.encode_utf8(&mut [0; 4]), PROMPT, editor.line());
            }
            Edit::Erase => console::type_on_prompt("\u{8} \u{8}", PROMPT, editor.line()),
            Edit::Nothing => {}
            Edit::Submit(line) => {
                // The whole command on one line, even if output cut it.
                console::type_on_prompt("", PROMPT, &line);
                console::end_prompt();
                println!();
                match parse(&line) {
                    Ok(Some(command)) => execute(command, &mut started),
                    Ok(None) => {}
                    Err(message) => println!("error: {message}"),
                }
                console::show_prompt(PROMPT, editor.line());
            }
        }
    }
}

/// Runs one command, printing its answer; programs it starts join `started`.
fn execute(command: Command, started: &mut Vec<Started>) {
    match command {
        Command::Help => {
            for (usage, what) in HELP {
                println!("  {usage:<14} {what}");
            }
        }
        Command::Memory => memory(),
        Command::Vm => vm(),
        Command::PageTableCache(size) => {
            let size = with_vm(|vm| {
                vm.mmu_mut().set_capacity(size);
                vm.mmu().capacity()
            });
            println!("page-table cache: {size} address spaces");
        }
        Command::Chaos(on) => {
            // Not every fault: an instruction touching two pages would never
            // complete if each fault discarded the other page's translation.
            let interval = if on { arch::paging::DEFAULT_CHAOS_INTERVAL } else { 0 };
            with_vm(|vm| vm.mmu_mut().set_chaos_interval(interval));
            println!("chaos: {}", if on { "on" } else { "off" });
        }
        Command::Uptime => {
            let ticks = arch::ticks();
            let hz = arch::interrupts::TICK_HZ;
            println!("uptime {}.{:02} s ({ticks} ticks)", ticks / hz, ticks % hz * 100 / hz);
        }
        Command::Cpus => cpus(),
        Command::Processes => processes(),
        Command::Programs => programs(),
        Command::Run(name, argument) => run_program(name, argument, started),
        Command::Kill(pid) => kill(Pid(pid), started),
        Command::Reboot => arch::reboot(|line| println!("{line}")),
        Command::PowerOff => arch::power_off(|line| println!("{line}")),
    }
}

/// `cpus`: one line for the machine, one per processor online.
fn cpus() {
    let (online, listed) = arch::smp::counts();
    let (pages, everything) = arch::smp::shootdowns_served();
    println!(
        "cpus: {online} online of {listed}; local APICs {:?}, timer {} counts a tick; \
         shootdowns served: {pages} of pages, {everything} of everything",
        arch::apic::mode(),
        arch::apic::timer_count()
    );
    let (taken, contended, waited) = arch::kernel_lock::statistics();
    let waited_us = waited / (arch::tsc::frequency() / 1_000_000).max(1);
    println!(
        "  kernel lock: taken {taken} times, {contended} after waiting, {waited_us} us waited"
    );
    if let Some(holds) = crate::lockstat::KERNEL_LOCK.summary() {
        println!("  kernel lock held: {holds}");
    }
    for index in 0.. {
        let Some((apic_id, ticks, served)) = arch::smp::cpu(index) else { break };
        let turns = crate::process::turns(index);
        println!(
            "  cpu {index}: APIC ID {apic_id}, {ticks} ticks, {served} requests served, \
             {turns} process turns"
        );
    }
}

fn memory() {
    let counters = with_vm(|vm| vm.frames().counters());
    let kib = |frames: usize| frames as u64 * PAGE_SIZE / 1024;
    println!("frames: {} total ({} KiB)", counters.total, kib(counters.total));
    println!("  free {} ({} KiB)", counters.free, kib(counters.free));
    println!(
        "  allocated {} ({} KiB), of which pinned {}",
        counters.allocated,
        kib(counters.allocated),
        counters.pinned
    );
    println!("  reserved {}", counters.reserved);
    let metadata = counters.total * VM_PAGE_BYTES;
    println!("VmPage: {VM_PAGE_BYTES} B per 4 KiB frame, {} KiB in all", metadata / 1024);
    let (metadata, tables) = with_vm(|vm| (vm.metadata(), vm.mmu().statistics().table_pages));
    println!(
        "private pages: {} in {} chunks ({} shared since fork): chunks {} KiB, lists {} KiB",
        metadata.private_pages,
        metadata.chunks,
        metadata.shared_chunks,
        metadata.chunk_bytes / 1024,
        metadata.list_bytes / 1024
    );
    println!(
        "  regions {} ({} KiB); {:.1} B per private page with its VmPage; page tables {} pages apart",
        metadata.regions,
        metadata.region_bytes / 1024,
        metadata.bytes_per_private_page(),
        tables
    );
    let (heap, used) = crate::heap::usage();
    println!("heap: {} KiB, {} KiB in use", heap / 1024, used / 1024);
    swap(&metadata);
}

/// The swap part of `mem`: where private pages are, and each device's use.
fn swap(metadata: &crate::vm::metadata::VmMetadata) {
    let (devices, slots, shared) = with_vm(|vm| {
        let mut devices = alloc::vec::Vec::new();
        for (index, device) in vm.swap_devices().enumerate() {
            let (total, used) = vm.frames().slots().device_counters(index);
            devices.push((device.name(), total, used, device.frames_held(), device.bytes_stored()));
        }
        let shared: usize = vm.objects().iter().map(|(_, object)| object.pages().count()).sum();
        (devices, vm.frames().slots().counters(), shared)
    });
    println!(
        "pages: {} private in memory, {} in swap; {} of shared objects (not reclaimed)",
        metadata.private_pages, metadata.swapped_pages, shared
    );
    if devices.is_empty() {
        println!("swap: none");
        return;
    }
    println!("swap: {} of {} slots in use", slots.used, slots.total);
    for (name, total, used, frames, bytes) in devices {
        println!(
            "  {name}: {used} of {total} slots ({} of {} KiB), {} frames held, {} KiB stored",
            used * PAGE_SIZE / 1024,
            total * PAGE_SIZE / 1024,
            frames,
            bytes / 1024
        );
    }
}

fn vm() {
    let (statistics, tables, capacity, chaos, pcid, caches, limit) = with_vm(|vm| {
        let mmu = vm.mmu();
        let frames = vm.frames();
        (
            vm.statistics(),
            mmu.statistics(),
            mmu.capacity(),
            mmu.chaos(),
            mmu.has_pcid(),
            frames.cache_statistics(),
            frames.frame_cache_limit(),
        )
    });
    println!(
        "page-table cache: {capacity} address spaces, PCID {}, chaos {}",
        if pcid { "on" } else { "off" },
        if chaos { "on" } else { "off" }
    );
    println!(
        "  {} page-table pages ({} roots), {} switches, {} evictions, {} reclaims, {} PCID flushes",
        tables.table_pages,
        tables.roots,
        tables.switches,
        tables.evictions,
        tables.reclaims,
        tables.pcid_flushes
    );
    println!(
        "faults: {} ({} rebuild, {} zero-fill, {} copy-on-write copies, {} reuses)",
        statistics.faults,
        statistics.rebuild_faults,
        statistics.zero_fills,
        statistics.cow_copies,
        statistics.cow_reuses
    );
    println!(
        "reclaim: {} runs, {} pages scanned, {} kept as referenced, {} reclaimed ({} clean), \
         {} page-table pages",
        statistics.reclaim_runs,
        statistics.pages_scanned,
        statistics.pages_referenced,
        statistics.pages_reclaimed,
        statistics.clean_reclaims,
        statistics.tables_reclaimed
    );
    println!(
        "swap: {} page-outs ({} refused), {} page-ins ({} failed)",
        statistics.page_outs,
        statistics.page_out_refusals,
        statistics.page_ins,
        statistics.page_in_errors
    );
    println!("frame caches: up to {limit} per processor, {caches}");
    if let Some(holds) = crate::lockstat::VM_LOCK.summary() {
        println!("vm lock: {holds}");
    }
}

/// One line per process: id, program, state.
fn processes() {
    let list = process::processes();
    println!("{:>5}  {:<10} state", "pid", "program");
    for process in &list {
        println!("{:>5}  {:<10} {}", process.pid.0, process.name, Described(process.state));
    }
    println!("{} processes", list.len());
}

/// A process state in words.
struct Described(State);

impl core::fmt::Display for Described {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            State::Ready => f.write_str("ready"),
            State::Running => f.write_str("running"),
            State::Sleeping(until) => write!(f, "sleeping until tick {until}"),
            State::Waiting => f.write_str("waiting for a child"),
            State::Zombie(status) => write!(f, "zombie ({})", Ending(status)),
        }
    }
}

/// How a process ended, from its status word.
struct Ending(u64);

impl core::fmt::Display for Ending {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match abi::ended(self.0) {
            abi::Ended::Exited(status) => write!(f, "exited with status {status}"),
            abi::Ended::Killed => f.write_str("killed"),
        }
    }
}

/// One line per program of the ramdisk: name and size (the symbol tables
/// that travel with the kernel and the programs are not programs).
fn programs() {
    let mut count = 0;
    for file in crate::ramdisk::get().files() {
        match file {
            Ok(file) if file.name == "symbols" || file.name.starts_with("symbols.") => {}
            Ok(file) => {
                println!("  {:<10} {:>8} bytes", file.name, file.content.len());
                count += 1;
            }
            Err(error) => println!("  (the rest of the ramdisk is unreadable: {error:?})"),
        }
    }
    println!("{count} programs");
}

/// Starts program `name` with `argument` in the background.
fn run_program(name: &str, argument: u64, started: &mut Vec<Started>) {
    // The process keeps its name for good: take the ramdisk's copy.
    let files = crate::ramdisk::get().files().map_while(Result::ok);
    let Some(name) = files.map(|file| file.name).find(|file| *file == name) else {
        println!("error: run: no program {name:?} in the ramdisk (see `programs`)");
        return;
    };
    match process::spawn(name, argument) {
        Ok(pid) => {
            started.push(Started { pid, name });
            println!("started process {pid} ({name}); `kill {pid}` ends it");
        }
        Err(error) => println!("error: run: {name}: {error}"),
    }
}

/// Ends process `pid`; one that `run` started is reaped at once.
fn kill(pid: Pid, started: &mut Vec<Started>) {
    let Some(summary) = process::summary(pid) else {
        println!("error: kill: no process {pid} (see `ps`)");
        return;
    };
    if matches!(summary.state, State::Zombie(_)) || !process::kill(pid) {
        println!("error: kill: process {pid} ({}) has already ended", summary.name);
        return;
    }
    if let Some(index) = started.iter().position(|process| process.pid == pid) {
        started.remove(index);
        process::reap(pid);
    }
    println!("killed process {pid} ({})", summary.name);
}

/// Reaps the programs of `started` that have ended and says how each ended
/// (the console then shows the prompt and the line being typed again).
fn report_ended(started: &mut Vec<Started>) {
    started.retain(|process| match process::reap(process.pid) {
        Some(status) => {
            println!("process {} ({}) {}", process.pid, process.name, Ending(status));
            false
        }
        // Not a zombie yet, or (never, as nobody else reaps it) gone.
        None => process::summary(process.pid).is_some(),
    });
}
