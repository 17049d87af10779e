//! Process benchmarks: fork with 1 MiB and 16 MiB resident, and the
//! copy-on-write fault, measured with `rdtsc` in user mode around the system
//! call (fork) and around single writes (copy-on-write) by the `probe` program,
//! which prints its own `R` lines.

use crate::arch::tsc;
use crate::process;

/// The `probe` program's benchmark mode.
const BENCHMARK_MODE: u64 = 7;

/// Runs the process benchmarks (if the ramdisk has the `probe` program).
pub fn run() {
    let mhz = tsc::frequency() / 1_000_000;
    match process::spawn("probe", BENCHMARK_MODE | (mhz << 8)) {
        Ok(pid) => match process::wait_for(pid) {
            Some(0) => {}
            status => log::warn!("process benchmarks failed (status word {status:?})"),
        },
        Err(error) => log::warn!("cannot run the process benchmarks: {error}"),
    }
}
