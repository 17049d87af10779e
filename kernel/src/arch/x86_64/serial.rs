//! The serial console on COM1.
//!
//! Serial is the console every test reads, so it comes up first and never depends
//! on the heap. On machines without a UART (most laptops) it stays silent instead
//! of hanging: the port is probed before use.

use core::fmt::{self, Write};
use spin::Mutex;
use uart_16550::backend::PioBackend;
use uart_16550::{Config, Uart16550, Uart16550Tty};

/// I/O port base of COM1.
const COM1: u16 = 0x3f8;

static SERIAL: Mutex<Option<Uart16550Tty<PioBackend>>> = Mutex::new(None);

/// Probes and initialises COM1; output is dropped if no UART answers.
pub fn init() {
    // SAFETY: 0x3f8..0x400 is the standard COM1 register block; nothing else in
    // the kernel drives these ports, and the device lives as long as the kernel.
    let Ok(mut uart) = (unsafe { Uart16550::new_port(COM1) }) else {
        return;
    };
    if !uart.check_present() || uart.init(Config::default()).is_err() {
        return;
    }
    *SERIAL.lock() = Some(Uart16550Tty::from_inner(uart));
}

/// Writes formatted text to the serial console, if there is one.
pub fn write_fmt(args: fmt::Arguments) {
    x86_64::instructions::interrupts::without_interrupts(|| {
        if let Some(tty) = SERIAL.lock().as_mut() {
            let _ = tty.write_fmt(args);
        }
    });
}

/// Writes formatted text even if the console lock is held, for the panic path
/// only: a panic while printing must still be reported.
pub fn write_fmt_panicking(args: fmt::Arguments) {
    if SERIAL.is_locked() {
        // SAFETY: called only on the panic path with interrupts off on the one
        // CPU we run; the holder of the lock will never run again, so stealing
        // it at worst interleaves a half-written line.
        unsafe { SERIAL.force_unlock() };
    }
    write_fmt(args);
}

/// Asks COM1 to interrupt when a byte arrives.
pub fn enable_receive_interrupt() {
    if let Some(tty) = SERIAL.lock().as_mut() {
        tty.inner_mut().enable_interrupts(uart_16550::spec::registers::IER::DATA_READY);
    }
}

/// Passes every byte COM1 has received to `byte`.
pub fn receive_all(mut byte: impl FnMut(u8)) {
    if let Some(tty) = SERIAL.lock().as_mut() {
        while let Ok(received) = tty.inner_mut().try_receive_byte() {
            byte(received);
        }
    }
}
