//! The panic handler.
//!
//! A panic means an invariant of the kernel itself broke. The handler prints the
//! message and location on every console, then a backtrace with function names
//! (the kernel resolves them itself, from the symbol table in its ramdisk, so a
//! real PC's screen shows them too), and stops the machine: first every other
//! processor (with an NMI, whatever it is doing), then this one. Under test, and in
//! `once` runs, it leaves QEMU with the failure code so a runner sees the failure;
//! a test that expects a panic is told here and passes instead.

use core::fmt::Write;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::arch::{self, ExitCode};
use crate::fixed_text::FixedText;
use crate::testing;

static EXIT_ON_PANIC: AtomicBool = AtomicBool::new(false);

/// Makes a panic power QEMU off with the failure code instead of halting.
pub fn exit_on_panic(enabled: bool) {
    EXIT_ON_PANIC.store(enabled, Ordering::SeqCst);
}

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    x86_64::instructions::interrupts::disable();
    let mut message = FixedText::<512>::new();
    let _ = write!(message, "{}", info.message());
    let message = message.as_str();
    let mut backtrace = FixedText::<2048>::new();
    write_backtrace(&mut backtrace);
    let backtrace = backtrace.as_str();

    if testing::panic_was_expected(message, backtrace) {
        arch::exit(ExitCode::Success);
    }
    // Nothing else runs from here on: no program, and no other processor's
    // lines among the report's.
    arch::smp::stop_others();
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
