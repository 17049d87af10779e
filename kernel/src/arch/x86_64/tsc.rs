//! The time-stamp counter: cycle counts for benchmarks, calibrated against the PIT.
//!
//! Benchmarks count TSC ticks; to print nanoseconds the kernel measures the TSC's
//! frequency once, over a 10 ms one-shot countdown of PIT channel 2 (whose input
//! clock is a fixed 1.193182 MHz on every PC and in every emulator).

use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;

/// The PIT's input clock in Hz.
const PIT_HZ: u64 = 1_193_182;
/// Calibration interval: 1/100 s.
const CALIBRATION_DIVISOR: u64 = 100;

static TSC_HZ: AtomicU64 = AtomicU64::new(0);

/// Reads the time-stamp counter.
pub fn read() -> u64 {
    // SAFETY: `rdtsc` has no memory effects and is available on every x86_64 CPU.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// TSC ticks per second, measured on first use.
pub fn frequency() -> u64 {
    match TSC_HZ.load(Ordering::Relaxed) {
        0 => {
            let hz = calibrate();
            TSC_HZ.store(hz, Ordering::Relaxed);
            hz
        }
        hz => hz,
    }
}

/// Counts TSC ticks over a 10 ms PIT channel-2 countdown.
fn calibrate() -> u64 {
    let mut control = Port::<u8>::new(0x61);
    let mut command = Port::<u8>::new(0x43);
    let mut channel2 = Port::<u8>::new(0x42);
    let count = PIT_HZ / CALIBRATION_DIVISOR;
    // SAFETY: ports 0x42, 0x43 and 0x61 are the PIT and its gate on every PC;
    // channel 2 drives only the speaker, which stays disconnected (bit 1 clear).
    let ticks = unsafe {
        let gate = control.read() & !0x03;
        control.write(gate); // gate low: channel 2 holds
        command.write(0b1011_0000); // channel 2, low then high byte, mode 0
        channel2.write(count as u8);
        channel2.write((count >> 8) as u8);
        let start = read();
        control.write(gate | 0x01); // gate high: count down
        while control.read() & 0x20 == 0 {}
        let end = read();
        control.write(gate);
        end - start
    };
    ticks * CALIBRATION_DIVISOR
}
