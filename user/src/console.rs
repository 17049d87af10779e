//! `print!` and `println!`: formatted text to the console through `write`.
//!
//! Text is gathered in a small buffer and written in as few calls as possible,
//! so that a line from one process is rarely split by another's.

use core::fmt::{self, Write};

/// Bytes gathered before a `write` call.
const BUFFER: usize = 256;

/// A formatter that writes through the `write` system call.
struct Console {
    buffer: [u8; BUFFER],
    used: usize,
}

impl Console {
    fn flush(&mut self) {
        let mut done = 0;
        while done < self.used {
            match crate::write(&self.buffer[done..self.used]) {
                Ok(0) | Err(_) => break,
                Ok(written) => done += written,
            }
        }
        self.used = 0;
    }
}

impl Write for Console {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for &byte in text.as_bytes() {
            if self.used == BUFFER {
                self.flush();
            }
            self.buffer[self.used] = byte;
            self.used += 1;
        }
        Ok(())
    }
}

/// Writes formatted text to the console (what `print!` expands to).
pub fn print(arguments: fmt::Arguments) {
    let mut console = Console { buffer: [0; BUFFER], used: 0 };
    let _ = console.write_fmt(arguments);
    console.flush();
}

/// Prints to the console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

/// Prints a line to the console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}
