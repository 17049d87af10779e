//! `bench`: the VM benchmark suite, run as a user program.
//!
//! Each benchmark measures one VM operation from user mode with `rdtsc`, five
//! repetitions, and prints one line:
//!
//! `R <name> ns=<median ns/op> cyc=<median cycles/op> min=<min ns> max=<max ns> flt=<faults/op>`
//!
//! Faults come from the kernel's own counter (the statistics call), read outside
//! the timed part. Every benchmark also checks that the VM did the right thing
//! (copy-on-write isolation, shared visibility, contents after a rebuild); a
//! failed check prints `bench: check failed: ...` and the program exits with 1.
//! The argument is the TSC frequency in MHz, measured by the kernel.
#![no_std]
#![no_main]

mod fork;
mod measure;
mod memory;
mod shared;
mod switch;

use user::println;

user::entry!(main);

/// One page.
pub const PAGE: u64 = 4096;
/// 64 MiB, in bytes.
pub const MIB_64: u64 = 64 << 20;
/// 16 MiB, in bytes.
pub const MIB_16: u64 = 16 << 20;

/// A group of benchmarks; the error names the correctness check that failed.
type Suite = fn(&mut measure::Reporter) -> Result<(), &'static str>;

fn main(mhz: u64) -> i32 {
    let mhz = if mhz == 0 { 1000 } else { mhz };
    let mut measure = measure::Reporter::new(mhz);
    let suites: [Suite; 4] = [memory::run, fork::run, shared::run, switch::run];
    for suite in suites {
        if let Err(what) = suite(&mut measure) {
            println!("bench: check failed: {what}");
            return 1;
        }
    }
    println!("bench: done");
    0
}
