//! Running monitor commands, and the monitor's input loop.

use crate::arch::{self, ExitCode};
use crate::memory::with_vm;
use crate::monitor::{Command, Edit, HELP, LineEditor, PROMPT, parse};
use crate::vm::page::{PAGE_SIZE, VM_PAGE_BYTES};
use crate::{print, println};

/// Reads commands from the keyboard and the serial line forever.
pub fn run() -> ! {
    let mut editor = LineEditor::default();
    print!("{PROMPT}");
    loop {
        let Some(character) = arch::read_input() else {
            crate::process::idle();
            continue;
        };
        match editor.type_char(character) {
            Edit::Echo(character) => print!("{character}"),
            Edit::Erase => print!("\u{8} \u{8}"),
            Edit::Nothing => {}
            Edit::Submit(line) => {
                println!();
                match parse(&line) {
                    Ok(Some(command)) => execute(command),
                    Ok(None) => {}
                    Err(message) => println!("error: {message}"),
                }
                print!("{PROMPT}");
            }
        }
    }
}

/// Runs one command, printing its answer.
pub fn execute(command: Command) {
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
        Command::Processes => processes(),
        Command::Reboot => arch::reboot(),
        Command::PowerOff => {
            println!("powering off");
            arch::power_off(ExitCode::Success);
        }
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
    let (heap, used) = crate::heap::usage();
    println!("heap: {} KiB, {} KiB in use", heap / 1024, used / 1024);
}

fn vm() {
    let (statistics, tables, capacity, chaos, pcid) = with_vm(|vm| {
        let mmu = vm.mmu();
        (vm.statistics(), mmu.statistics(), mmu.capacity(), mmu.chaos(), mmu.has_pcid())
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
}

/// One line per process: id, program, state.
fn processes() {
    let list = crate::process::processes();
    println!("{:>5}  {:<10} state", "pid", "program");
    for process in &list {
        println!("{:>5}  {:<10} {:?}", process.pid.0, process.name, process.state);
    }
    println!("{} processes", list.len());
}
