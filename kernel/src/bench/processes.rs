//! The user-mode benchmarks: the `bench` program measures every VM operation a
//! process can ask for (faults, fork, exit, mmap, mprotect, shared memory, zap,
//! switches) with `rdtsc` and prints its own `R` lines. It gets the TSC
//! frequency in MHz as its argument.

use crate::arch::tsc;
use crate::process;

/// Runs the `bench` program to its end; false if it failed or could not start.
pub fn run() -> bool {
    let mhz = tsc::frequency() / 1_000_000;
    match process::spawn("bench", mhz) {
        Ok(pid) => match process::wait_for(pid) {
            Some(0) => true,
            status => {
                log::error!("the benchmark program failed (status word {status:?})");
                false
            }
        },
        Err(error) => {
            log::error!("cannot run the benchmark program: {error}");
            false
        }
    }
}
