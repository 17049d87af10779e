//! Kernel console output: `print!`/`println!` and the `log` back end.
//!
//! Every line goes to the serial console (through `arch`) and, once memory is up,
//! to the screen. Log lines carry their level and module, so
//! `[ INFO kernel::boot] ...` says who spoke.

use bootloader_api::info::FrameBuffer;
use core::fmt::{self, Write};
use log::{LevelFilter, Metadata, Record};
use spin::Mutex;

use crate::screen::TextConsole;

/// The screen console and the framebuffer it draws on.
struct Screen {
    text: TextConsole,
    framebuffer: FrameBuffer,
}

impl Write for Screen {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.text.write_str(text, self.framebuffer.buffer_mut());
        Ok(())
    }
}

static SCREEN: Mutex<Option<Screen>> = Mutex::new(None);

/// Starts drawing the console on `framebuffer`. Needs the heap (back buffer).
pub fn init_screen(mut framebuffer: FrameBuffer) {
    let buffer = framebuffer.buffer_mut();
    let pages = crate::arch::map_write_combining(buffer.as_ptr() as u64, buffer.len() as u64);
    log::info!("screen: {} KiB framebuffer, {pages} pages write-combining", buffer.len() / 1024);
    // Clear what the firmware and the bootloader left on the screen.
    buffer.fill(0);
    let text = TextConsole::new(framebuffer.info());
    *SCREEN.lock() = Some(Screen { text, framebuffer });
}

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

/// Where the framebuffer is mapped (start, bytes), if there is a screen.
pub fn framebuffer_range() -> Option<(u64, usize)> {
    crate::arch::without_interrupts(|| {
        SCREEN.lock().as_ref().map(|screen| {
            let buffer = screen.framebuffer.buffer();
            (buffer.as_ptr() as u64, buffer.len())
        })
    })
}

/// Text rows of the screen console, if there is one.
pub fn screen_rows() -> Option<usize> {
    crate::arch::without_interrupts(|| SCREEN.lock().as_ref().map(|screen| screen.text.rows()))
}

/// Writes `text` to the screen console only (for measuring it).
pub fn write_screen_only(text: &str) {
    crate::arch::without_interrupts(|| {
        if let Some(screen) = SCREEN.lock().as_mut() {
            let _ = screen.write_str(text);
        }
    });
}

/// Writes formatted text to every console.
pub fn write_fmt(args: fmt::Arguments) {
    crate::arch::console_write(args);
    crate::arch::without_interrupts(|| {
        if let Some(screen) = SCREEN.lock().as_mut() {
            let _ = screen.write_fmt(args);
        }
    });
}

/// Like [`write_fmt`], but usable while the kernel is panicking: takes the
/// consoles' locks even if they are held.
pub fn write_fmt_panicking(args: fmt::Arguments) {
    crate::arch::console_write_panicking(args);
    if SCREEN.is_locked() {
        // SAFETY: only the panic path calls this, with interrupts off on the one
        // CPU; the lock's holder never runs again, so at worst a line is torn.
        unsafe { SCREEN.force_unlock() };
    }
    if let Some(screen) = SCREEN.lock().as_mut() {
        let _ = screen.write_fmt(args);
    }
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
