//! x86_64: the machine-dependent half of the kernel.
//!
//! Everything that knows about descriptor tables, control registers, I/O ports or
//! page-table formats lives below this module. The rest of the kernel calls only
//! the functions re-exported by `crate::arch`.

pub mod acpi;
pub mod apic;
pub mod backtrace;
pub mod boot_info;
pub mod context;
pub mod cpu;
pub mod device_memory;
pub mod exceptions;
pub mod fpu;
pub mod gdt;
pub mod interrupts;
pub mod kernel_lock;
pub mod memory;
mod page_fault;
pub mod paging;
pub mod pat;
pub mod physical_pages;
pub mod qemu;
pub mod serial;
pub mod smp;
pub mod stack;
pub mod tsc;
pub mod user_memory;

pub use device_memory::map_device_memory;
pub use interrupts::{init as init_interrupts, read_input, ticks, wait_for_interrupt};
pub use pat::map_write_combining;
pub use qemu::ExitCode;
pub use smp::this_cpu;
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

/// Ends a run that reports a verdict to the runner (test kernels, `once`,
/// `bench`): says `code` on the console and on Bochs's debug port (`power off
/// (success)` or `power off (failure)`; the latter is the verdict for Bochs,
/// which has no isa-debug-exit), leaves QEMU with `code` (isa-debug-exit), and
/// where neither emulator is there to listen, switches the machine off.
pub fn exit(code: ExitCode) -> ! {
    console_write(format_args!("power off ({})\n", code.name()));
    qemu::write_bochs_debug_port(match code {
        ExitCode::Success => "power off (success)\n",
        ExitCode::Failure => "power off (failure)\n",
    });
    qemu::exit(code);
    acpi::power_off();
    halted()
}

/// Switches the machine off through ACPI (the PM1 control registers and the
/// `\_S5` sleep type), saying so through `say` and on Bochs's debug port:
/// `power off (acpi)`. If the tables give no way, or it does not work, says
/// why and halts.
pub fn power_off(say: impl Fn(&str)) -> ! {
    say("power off (acpi)");
    qemu::write_bochs_debug_port("power off (acpi)\n");
    if acpi::controls().can_power_off() {
        acpi::power_off();
        say("power off: ACPI did not switch the machine off");
    } else {
        say("power off: the ACPI tables give no way to switch off");
    }
    say(HALTED);
    halt_forever()
}

/// What the kernel says when it halts instead of switching off.
const HALTED: &str = "halted: it is now safe to switch the machine off";

/// Says the machine may be switched off by hand (on the serial console), and
/// halts.
fn halted() -> ! {
    console_write(format_args!("{HALTED}\n"));
    halt_forever()
}

/// Restarts the machine: through the FADT's reset register, or else the
/// keyboard controller's reset line, or else a triple fault; saying each
/// through `say` before trying it (`reboot (acpi reset register)`, `reboot
/// (keyboard controller)`, `reboot (triple fault)`), and what did nothing.
pub fn reboot(say: impl Fn(&str)) -> ! {
    x86_64::instructions::interrupts::disable();
    match acpi::controls().reset {
        Some(_) => {
            say("reboot (acpi reset register)");
            acpi::reset();
            say("reboot: the reset register did nothing");
        }
        None => say("reboot: the ACPI tables give no reset register"),
    }
    say("reboot (keyboard controller)");
    acpi::keyboard_controller_reset();
    say("reboot: the keyboard controller did nothing");
    say("reboot (triple fault)");
    static EMPTY: x86_64::structures::idt::InterruptDescriptorTable =
        x86_64::structures::idt::InterruptDescriptorTable::new();
    EMPTY.load();
    x86_64::instructions::interrupts::int3();
    halt_forever()
}

pub use boot_info::{boot_command_line, boot_ramdisk};
pub use memory::{
    HEAP_HEADROOM, ensure_heap_free, fill_frame, heap_frames, init_memory, read_frame,
    refill_heap_reserve,
};
pub use page_fault::Unresolved;
pub use paging::X86Mmu as MachineMmu;
pub use physical_pages::PhysicalMap;
