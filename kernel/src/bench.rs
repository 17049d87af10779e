//! In-kernel benchmarks: figures, never pass/fail.
//!
//! Each benchmark runs a fixed number of operations, five times; the printed
//! figures are the median (and the minimum and maximum) per operation, in TSC
//! cycles and in nanoseconds at the calibrated TSC frequency, one line each:
//!
//! `R <name> ns=<median ns> cyc=<median cycles> min=<min ns> max=<max ns> flt=<faults per op>`
//!
//! Lines starting with `I ` carry facts about the machine and the kernel.

use crate::arch::tsc;
use crate::memory::with_frames;
use crate::println;
use crate::vm::page::{PAGE_SIZE, Pfn, VM_PAGE_BYTES};

/// Repetitions of every benchmark.
const REPETITIONS: usize = 5;

mod metadata;
mod page_tables;
mod processes;
mod processors;
mod swap;

/// Runs `operation` `count` times per repetition, prints its line, and returns
/// the median cycles per operation. `operation` must not hold the VM lock when
/// it returns (the fault count is read between repetitions).
pub fn measure(name: &str, count: u64, mut operation: impl FnMut()) -> u64 {
    let faults_before = fault_count();
    let mut cycles = [0u64; REPETITIONS];
    for sample in &mut cycles {
        let start = tsc::read();
        for _ in 0..count {
            operation();
        }
        *sample = (tsc::read() - start) / count;
    }
    let faults = (fault_count() - faults_before) as f64 / (count * REPETITIONS as u64) as f64;
    print_row(name, &mut cycles, faults)
}

/// Prints the line of a benchmark measured `samples` times (cycles per
/// operation each) and returns the median.
fn print_row(name: &str, samples: &mut [u64], faults: f64) -> u64 {
    samples.sort_unstable();
    let ns = |cycles: u64| cycles as f64 * 1e9 / tsc::frequency() as f64;
    let median = samples[samples.len() / 2];
    println!(
        "R {name} ns={:.1} cyc={median} min={:.1} max={:.1} flt={faults:.2}",
        ns(median),
        ns(samples[0]),
        ns(samples[samples.len() - 1])
    );
    median
}

/// Prints a figure derived from measurements, in the same format.
pub fn report(name: &str, cycles: u64, faults: f64) {
    print_row(name, &mut [cycles], faults);
}

/// Page faults the VM has handled so far.
fn fault_count() -> u64 {
    crate::memory::with_vm(|vm| vm.statistics().faults)
}

/// Prints the machine facts every benchmark run starts with.
fn print_facts() {
    let hz = tsc::frequency();
    println!("I tsc_ghz={:.3}", hz as f64 / 1e9);
    let counters = with_frames(|frames| frames.counters());
    println!("I vm_page_bytes_per_frame={VM_PAGE_BYTES}");
    println!(
        "I frames_total={} vm_page_array_kib={} overhead_permille={:.2}",
        counters.total,
        counters.total * VM_PAGE_BYTES / 1024,
        VM_PAGE_BYTES as f64 * 1000.0 / PAGE_SIZE as f64
    );
}

/// Runs every benchmark, the kernel's and the `bench` program's; false if a
/// benchmark's own correctness check failed.
pub fn run_all() -> bool {
    print_facts();
    measure("frame_alloc_free", 100_000, || {
        with_frames(|frames| {
            let pfn = frames.alloc().expect("frame_alloc_free: alloc");
            frames.free(pfn).expect("frame_alloc_free: free");
        })
    });
    frame_bursts();
    for order in [1, 4, 9] {
        let name = alloc::format!("frame_alloc_free_order{order}");
        measure(&name, 20_000, || {
            with_frames(|frames| {
                let first = frames.alloc_contiguous(order).expect("alloc_contiguous");
                frames.free_contiguous(first, order).expect("free_contiguous");
            })
        });
    }
    page_tables::run();
    metadata::run();
    screen();
    let passed = processes::run();
    print_final_facts();
    passed
}

/// The swap benchmarks alone (`bench=swap`), on a machine of their own.
pub fn run_swap() -> bool {
    print_facts();
    let passed = swap::run();
    print_final_facts();
    passed
}

/// The processors' benchmarks alone (`bench=smp`), on a machine of their own.
pub fn run_processors() -> bool {
    print_facts();
    processors::run()
}

/// Single frames taken and given back in bursts of 64, as a run of faults
/// takes them and an exit gives them back: the time per frame. With
/// processor caches on, a burst goes to the free lists a few times, not 64.
fn frame_bursts() {
    const BURST: usize = 64;
    const BURSTS: u64 = 1_000;
    let mut samples = [0u64; REPETITIONS];
    for sample in &mut samples {
        let start = tsc::read();
        for _ in 0..BURSTS {
            with_frames(|frames| {
                let mut taken = [Pfn(0); BURST];
                for slot in &mut taken {
                    *slot = frames.alloc().expect("frame_alloc_free_burst64: alloc");
                }
                for pfn in taken {
                    frames.free(pfn).expect("frame_alloc_free_burst64: free");
                }
            });
        }
        *sample = (tsc::read() - start) / (BURSTS * BURST as u64);
    }
    print_row("frame_alloc_free_burst64_pp", &mut samples, 0.0);
}

/// Prints what the processor frame caches hold and have done.
pub fn print_frame_caches() {
    let (limit, caches) = crate::memory::with_vm(|vm| {
        (vm.frames().frame_cache_limit(), vm.frames().cache_statistics())
    });
    println!(
        "I frame_cache_limit={limit} cached={} hits={} misses={} frees={} refills={} spills={} \
         drains={}",
        caches.cached,
        caches.hits,
        caches.misses,
        caches.frees,
        caches.refills,
        caches.spills,
        caches.drains
    );
}

/// Prints what the VM holds and has done once every benchmark ran.
fn print_final_facts() {
    let (statistics, tables) =
        crate::memory::with_vm(|vm| (vm.statistics(), vm.mmu().statistics()));
    println!("I page_table_pages_end={} roots={}", tables.table_pages, tables.roots);
    println!(
        "I vm_faults={} rebuild={} zero_fill={} cow_copies={} cow_reuses={} forks={}",
        statistics.faults,
        statistics.rebuild_faults,
        statistics.zero_fills,
        statistics.cow_copies,
        statistics.cow_reuses,
        statistics.forks
    );
    print_frame_caches();
    if let Some(holds) = crate::lockstat::VM_LOCK.summary() {
        print_holds("vm_lock", holds);
    }
}

/// Prints a lock's hold times as an `I` line.
fn print_holds(lock: &str, holds: crate::lockstat::Summary) {
    println!(
        "I {lock}_holds={} mean_ns={} longest_ns={} p99_under_us={}",
        holds.holds, holds.mean_ns, holds.longest_ns, holds.p99_under_us
    );
}

/// The screen console: one full line (drawn, then scrolled up), and a whole
/// screenful of lines.
fn screen() {
    let Some(rows) = crate::console::screen_rows() else {
        println!("I screen=none");
        return;
    };
    let line = "[ INFO kernel::bench] the quick brown fox jumps over the lazy dog 0123456789\n";
    // Fill the screen first so that every measured line scrolls.
    for _ in 0..rows {
        crate::console::write_screen_only(line);
    }
    measure("screen_line_scroll", 50, || crate::console::write_screen_only(line));
    println!("I screen_rows={rows}");
    measure("screen_full_scroll", 2, || {
        for _ in 0..rows {
            crate::console::write_screen_only(line);
        }
    });
}
