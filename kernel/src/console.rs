//! Kernel console output: `print!`/`println!` and the `log` back end.
//!
//! Every line goes to the serial console (through `arch`) and, once memory is up,
//! to the screen. Log lines carry their level and module, so
//! `[ INFO kernel::boot] ...` says who spoke.
//!
//! The monitor writes its prompt and echoes keys through functions of its own
//! ([`show_prompt`], [`type_on_prompt`]); everything else is other output,
//! which ends a prompt line that is showing before it is written, so that it
//! never continues the prompt (the rule is `monitor::prompt`'s).

use bootloader_api::info::FrameBuffer;
use core::fmt::{self, Write};
use log::{LevelFilter, Metadata, Record};
use spin::Mutex;

use crate::monitor::prompt::{PromptLine, Typing};
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

/// Where the text stands with respect to the monitor's prompt. Taken before
/// `SCREEN`, with interrupts off.
static PROMPT_LINE: Mutex<PromptLine> = Mutex::new(PromptLine::new());

/// Writes to the serial console and the screen, remembering the last
/// character written.
struct Everywhere<'a> {
    screen: spin::MutexGuard<'a, Option<Screen>>,
    last: Option<char>,
}

impl Everywhere<'_> {
    /// Both consoles; the caller has interrupts off.
    fn lock() -> Everywhere<'static> {
        Everywhere { screen: SCREEN.lock(), last: None }
    }
}

impl Write for Everywhere<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        crate::arch::console_write(format_args!("{text}"));
        if let Some(screen) = self.screen.as_mut() {
            let _ = screen.write_str(text);
        }
        self.last = text.chars().last().or(self.last);
        Ok(())
    }
}

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

/// Writes formatted text to every console, after ending the prompt line if
/// it is showing.
pub fn write_fmt(args: fmt::Arguments) {
    crate::arch::without_interrupts(|| {
        let mut prompt = PROMPT_LINE.lock();
        let mut out = Everywhere::lock();
        if prompt.before_output() {
            let _ = out.write_str("\n");
        }
        let _ = out.write_fmt(args);
        prompt.after_output(out.last, crate::arch::ticks());
    });
}

/// Shows the monitor's `prompt` and the `line` typed so far, on a line of
/// their own.
pub fn show_prompt(prompt: &str, line: &str) {
    crate::arch::without_interrupts(|| {
        let mut state = PROMPT_LINE.lock();
        let new_line = state.show_prompt();
        write_prompt(new_line, prompt, line);
    });
}

/// Echoes `echo` for a key typed on the prompt line; if other output has
/// ended that line, shows `prompt` and the whole `line` again instead.
pub fn type_on_prompt(echo: &str, prompt: &str, line: &str) {
    crate::arch::without_interrupts(|| {
        let mut state = PROMPT_LINE.lock();
        match state.typing() {
            Typing::Echo => {
                let _ = Everywhere::lock().write_str(echo);
            }
            Typing::ShowAgain { new_line } => write_prompt(new_line, prompt, line),
        }
    });
}

/// Writes the prompt and the typed line, after a newline if `new_line`.
fn write_prompt(new_line: bool, prompt: &str, line: &str) {
    let mut out = Everywhere::lock();
    let _ = write!(out, "{}{prompt}{line}", if new_line { "\n" } else { "" });
}

/// Ends the prompt line: the command typed on it was entered.
pub fn end_prompt() {
    crate::arch::without_interrupts(|| PROMPT_LINE.lock().end_prompt());
}

/// Whether the monitor should show its prompt again: other output ended the
/// prompt line, finished its own, and has been quiet for a moment.
pub fn prompt_owed() -> bool {
    crate::arch::without_interrupts(|| PROMPT_LINE.lock().prompt_owed(crate::arch::ticks()))
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
