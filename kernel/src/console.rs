//! Kernel console output: `print!`/`println!` and the `log` back end.
//!
//! Every line goes to all of the machine's consoles through `arch`. Log lines carry
//! their level and module, so `[ INFO kernel::boot] ...` says who spoke.

use core::fmt;
use log::{LevelFilter, Metadata, Record};

/// Prints to the kernel console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => ($crate::console::write_fmt(format_args!($($arg)*)));
}

/// Prints to the kernel console, with a newline.
#[macro_export]
macro_rules! println {
    () => ($crate::print!("\n"));
    ($($arg:tt)*) => ($crate::print!("{}\n", format_args!($($arg)*)));
}

/// Writes formatted text to the console.
pub fn write_fmt(args: fmt::Arguments) {
    crate::arch::console_write(args);
}

struct ConsoleLogger;

impl log::Log for ConsoleLogger {
    fn enabled(&self, _: &Metadata) -> bool {
        true
    }

    fn log(&self, record: &Record) {
        let module = record.module_path().unwrap_or("?");
        write_fmt(format_args!("[{:>5} {}] {}\n", record.level(), module, record.args()));
    }

    fn flush(&self) {}
}

static LOGGER: ConsoleLogger = ConsoleLogger;

/// Installs the console as the `log` back end at `level`.
pub fn init_logger(level: LevelFilter) {
    // A second call fails harmlessly: the logger is already the console.
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}
