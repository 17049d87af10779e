//! x86_64: the machine-dependent half of the kernel.
//!
//! Everything that knows about descriptor tables, control registers, I/O ports or
//! page-table formats lives below this module. The rest of the kernel calls only
//! the functions re-exported by `crate::arch`.

pub mod backtrace;
pub mod boot_info;
pub mod context;
pub mod cpu;
pub mod exceptions;
pub mod fpu;
pub mod gdt;
pub mod interrupts;
pub mod memory;
mod page_bytes;
mod page_fault;
pub mod paging;
pub mod pat;
pub mod qemu;
pub mod serial;
pub mod stack;
pub mod tsc;
pub mod user_memory;

pub use interrupts::{init as init_interrupts, read_input, ticks, wait_for_interrupt};
pub use pat::map_write_combining;
pub use qemu::{ExitCode, exit as exit_qemu};
pub use x86_64::instructions::interrupts::without_interrupts;

/// Brings up the processor: serial console, segments, exception handlers, the
/// FPU and SSE, and the protections it offers (SMEP, SMAP, UMIP).
pub fn init_cpu() {
    serial::init();
    gdt::init();
    exceptions::init();
    cpu::enable_caches();
    fpu::init();
    cpu::harden();
}

/// Writes formatted text to every console the machine has.
pub fn console_write(args: core::fmt::Arguments) {
    serial::write_fmt(args);
}

/// Like [`console_write`], but usable while the kernel is panicking.
pub fn console_write_panicking(args: core::fmt::Arguments) {
    serial::write_fmt_panicking(args);
}

/// Stops this CPU for good: interrupts off, halt forever.
pub fn halt_forever() -> ! {
    x86_64::instructions::interrupts::disable();
    loop {
        x86_64::instructions::hlt();
    }
}

/// Says `code` on the console and on Bochs's debug port (`power off (success)`
/// or `power off (failure)`; the latter is the verdict for Bochs, which has no
/// isa-debug-exit), then leaves QEMU with `code` (isa-debug-exit), or else tries
/// an ACPI power-off, or else halts.
pub fn power_off(code: ExitCode) -> ! {
    console_write(format_args!("power off ({})\n", code.name()));
    qemu::write_bochs_debug_port(match code {
        ExitCode::Success => "power off (success)\n",
        ExitCode::Failure => "power off (failure)\n",
    });
    exit_qemu(code);
    qemu::acpi_power_off();
    console_write(format_args!("halted: it is now safe to switch the machine off\n"));
    halt_forever()
}

/// Restarts the machine.
pub fn reboot() -> ! {
    qemu::keyboard_controller_reset();
    // Still here: a triple fault resets every PC.
    x86_64::instructions::interrupts::disable();
    static EMPTY: x86_64::structures::idt::InterruptDescriptorTable =
        x86_64::structures::idt::InterruptDescriptorTable::new();
    EMPTY.load();
    x86_64::instructions::interrupts::int3();
    halt_forever()
}

pub use boot_info::{boot_command_line, boot_ramdisk};
pub use memory::{
    ensure_heap_free, fill_frame, heap_frames, init_memory, read_frame, refill_heap_reserve,
};
pub use page_fault::Unresolved;
pub use paging::X86Mmu as MachineMmu;
