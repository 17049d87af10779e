//! The panic handler.
//!
//! A panic means an invariant of the kernel itself broke. The handler prints the
//! message and location on every console, then a backtrace with function names
//! (the kernel resolves them itself, from the symbol table in its ramdisk, so a
//! real PC's screen shows them too), and stops the machine. Under test, and in
//! `once` runs, it leaves QEMU with the failure code so a runner sees the failure;
//! a test that expects a panic is told here and passes instead.

use core::fmt::{self, Write};
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::{self, ExitCode};
use crate::testing;

static EXIT_ON_PANIC: AtomicBool = AtomicBool::new(false);

/// Makes a panic power QEMU off with the failure code instead of halting.
pub fn exit_on_panic(enabled: bool) {
    EXIT_ON_PANIC.store(enabled, Ordering::SeqCst);
}

/// A fixed buffer that keeps the first bytes of a formatted message.
struct MessageBuffer<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> MessageBuffer<N> {
    const fn new() -> Self {
        MessageBuffer { bytes: [0; N], len: 0 }
    }

    fn as_str(&self) -> &str {
        // Truncation can split a character: keep the valid prefix.
        match core::str::from_utf8(&self.bytes[..self.len]) {
            Ok(text) => text,
            Err(error) => core::str::from_utf8(&self.bytes[..error.valid_up_to()]).unwrap_or(""),
        }
    }
}

impl<const N: usize> Write for MessageBuffer<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let room = self.bytes.len() - self.len;
        let take = text.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&text.as_bytes()[..take]);
        self.len += take;
        Ok(())
    }
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    let mut message = MessageBuffer::<512>::new();
    let _ = write!(message, "{}", info.message());
    let message = message.as_str();
    let mut backtrace = MessageBuffer::<2048>::new();
    write_backtrace(&mut backtrace);
    let backtrace = backtrace.as_str();

    if testing::panic_was_expected(message, backtrace) {
        arch::exit(ExitCode::Success);
    }
    match info.location() {
        Some(at) => crate::console::write_fmt_panicking(format_args!(
            "[PANIC] at {}:{}: {message}\n",
            at.file(),
            at.line()
        )),
        None => crate::console::write_fmt_panicking(format_args!("[PANIC] {message}\n")),
    }
    crate::console::write_fmt_panicking(format_args!("{backtrace}"));
    testing::report_panic();
    if EXIT_ON_PANIC.load(Ordering::SeqCst) {
        arch::exit(ExitCode::Failure);
    }
    arch::halt_forever()
}

/// Writes the backtrace of the panicking code, a line per frame: its return
/// address and, from the kernel's own symbol table, the function and offset.
fn write_backtrace(out: &mut impl Write) {
    let _ = writeln!(out, "backtrace:");
    let mut depth = 0;
    arch::backtrace::return_addresses(|address| {
        let _ = match crate::symbols::resolve_return(address) {
            Some((name, offset)) => writeln!(out, "  #{depth} {address:#x} {name}+{offset:#x}"),
            None => writeln!(out, "  #{depth} {address:#x} ?"),
        };
        depth += 1;
    });
}
