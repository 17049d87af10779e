//! The local APIC of each processor, and the I/O APIC.
//!
//! Where the MADT describes them (`acpi::topology`), they replace the two 8259
//! PICs and the PIT: the PICs are remapped (so that a stray interrupt from
//! them lands on a vector with a handler) and then masked whole; the I/O APIC
//! sends the keyboard and COM1 interrupts to the boot processor, as the MADT's
//! overrides say; and each processor's local APIC timer, calibrated once
//! against the TSC, ticks at [`TICK_HZ`](super::interrupts::TICK_HZ).
//!
//! The local APIC is driven in x2APIC mode (its registers are MSRs) where the
//! processor has it, and in xAPIC mode (registers in memory, mapped uncached
//! through `device_memory`) otherwise; QEMU's TCG has only the latter, Bochs's
//! Haswell the former. The registers of "the" local APIC are always those of
//! the processor running the code, so nothing here needs to know which one
//! that is. This is written here rather than taken from the `x2apic` crate:
//! its 0.5 version addresses xAPIC destinations in the wrong bits, leaves
//! LINT0 and LINT1 unmasked with vector 0, and its types cannot be shared
//! between processors.
//!
//! Without a MADT (or without an I/O APIC) none of this is used, and the 8259
//! and the PIT stay in charge of the one processor.

use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use spin::Mutex;
use x86_64::registers::model_specific::Msr;

use super::acpi::{IsaRoute, Topology};

/// Vector of the local APIC's spurious interrupts (its low four bits set, as
/// older processors require).
pub const SPURIOUS_VECTOR: u8 = 0xff;
/// Vector of the local APIC's error interrupt.
pub const ERROR_VECTOR: u8 = 0xfe;

/// IA32_APIC_BASE: the local APIC's base address and enable bits.
const APIC_BASE_MSR: u32 = 0x1b;
/// IA32_APIC_BASE bit 11: the local APIC is enabled.
const BASE_ENABLE: u64 = 1 << 11;
/// IA32_APIC_BASE bit 10: x2APIC mode.
const BASE_X2APIC: u64 = 1 << 10;
/// The first x2APIC MSR; register `offset` is MSR `X2APIC_MSRS + offset / 16`.
const X2APIC_MSRS: u32 = 0x800;

// Register offsets (xAPIC layout).
const ID: u32 = 0x20;
const TASK_PRIORITY: u32 = 0x80;
const END_OF_INTERRUPT: u32 = 0xb0;
const SPURIOUS: u32 = 0xf0;
const ERROR_STATUS: u32 = 0x280;
const COMMAND_LOW: u32 = 0x300;
const COMMAND_HIGH: u32 = 0x310;
const LVT_TIMER: u32 = 0x320;
const LVT_LINT0: u32 = 0x350;
const LVT_LINT1: u32 = 0x360;
const LVT_ERROR: u32 = 0x370;
const TIMER_INITIAL: u32 = 0x380;
const TIMER_CURRENT: u32 = 0x390;
const TIMER_DIVIDE: u32 = 0x3e0;

/// Spurious-vector register bit 8: the APIC is software-enabled.
const SOFTWARE_ENABLE: u32 = 1 << 8;
/// LVT bit 16: masked.
const MASKED: u32 = 1 << 16;
/// LVT timer bit 17: periodic.
const PERIODIC: u32 = 1 << 17;
/// LVT delivery mode NMI.
const DELIVER_NMI: u32 = 0b100 << 8;
/// Divide configuration for a divisor of 16.
const DIVIDE_BY_16: u32 = 0b0011;
/// ICR delivery modes.
const DELIVER_INIT: u32 = 0b101 << 8;
const DELIVER_STARTUP: u32 = 0b110 << 8;
/// ICR bit 14: assert (required for every mode but INIT de-assert).
const ASSERT: u32 = 1 << 14;
/// ICR bit 12 (xAPIC): the last command is still being sent.
const SEND_PENDING: u32 = 1 << 12;

/// Which mode the local APICs are in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Not in use: the 8259 delivers interrupts.
    Off = 0,
    /// xAPIC: registers in memory.
    XApic = 1,
    /// x2APIC: registers are MSRs.
    X2Apic = 2,
}

static MODE: AtomicU8 = AtomicU8::new(Mode::Off as u8);
/// Where the xAPIC registers are mapped (virtual), in xAPIC mode.
static XAPIC_REGISTERS: AtomicU64 = AtomicU64::new(0);
/// The timer's initial count for one tick, divided by 16 (0: not calibrated).
static TIMER_COUNT: AtomicU32 = AtomicU32::new(0);
/// Error interrupts seen so far, and the last error status.
static ERRORS: AtomicU64 = AtomicU64::new(0);
static LAST_ERROR: AtomicU32 = AtomicU32::new(0);
/// Spurious interrupts seen so far.
static SPURIOUS_SEEN: AtomicU64 = AtomicU64::new(0);
/// The I/O APIC's registers (virtual address), behind the lock that keeps a
/// register selection and its access together.
static IO_APIC: Mutex<u64> = Mutex::new(0);

/// The mode the local APICs are in.
pub fn mode() -> Mode {
    match MODE.load(Ordering::Relaxed) {
        1 => Mode::XApic,
        2 => Mode::X2Apic,
        _ => Mode::Off,
    }
}

/// Whether interrupts go through the APICs (not the 8259).
pub fn active() -> bool {
    mode() != Mode::Off
}

/// Reads local APIC register `offset` of this processor.
fn read(offset: u32) -> u32 {
    match mode() {
        // SAFETY: x2APIC mode is on, so the MSR exists; reading a register
        // has no side effect (the registers read here have none).
        Mode::X2Apic => unsafe { Msr::new(X2APIC_MSRS + offset / 16).read() as u32 },
        Mode::XApic => {
            let address = XAPIC_REGISTERS.load(Ordering::Relaxed) + u64::from(offset);
            // SAFETY: the registers are mapped uncached at XAPIC_REGISTERS (set
            // before the mode), and `offset` is one of them (4-byte aligned).
            unsafe { core::ptr::read_volatile(address as *const u32) }
        }
        Mode::Off => 0,
    }
}

/// Writes local APIC register `offset` of this processor.
fn write(offset: u32, value: u32) {
    match mode() {
        // SAFETY: as in `read`; the callers write values the register takes.
        Mode::X2Apic => unsafe { Msr::new(X2APIC_MSRS + offset / 16).write(u64::from(value)) },
        Mode::XApic => {
            let address = XAPIC_REGISTERS.load(Ordering::Relaxed) + u64::from(offset);
            // SAFETY: as in `read`.
            unsafe { core::ptr::write_volatile(address as *mut u32, value) }
        }
        Mode::Off => {}
    }
}

/// This processor's APIC ID.
pub fn id() -> u32 {
    match mode() {
        Mode::X2Apic => read(ID),
        Mode::XApic => read(ID) >> 24,
        // CPUID leaf 1: the initial APIC ID, in EBX bits 24..32.
        Mode::Off => core::arch::x86_64::__cpuid(1).ebx >> 24,
    }
}

/// Ends the interrupt being handled on this processor.
pub fn end_of_interrupt() {
    write(END_OF_INTERRUPT, 0);
}

/// Whether the processor has x2APIC mode (CPUID.01H:ECX bit 21).
fn has_x2apic() -> bool {
    core::arch::x86_64::__cpuid(1).ecx & (1 << 21) != 0
}

/// Chooses the mode and maps what it needs; on the boot processor, before
/// [`enable_local`]. False, with nothing changed, if the xAPIC's registers
/// cannot be mapped.
pub fn init(topology: &Topology) -> bool {
    if has_x2apic() {
        MODE.store(Mode::X2Apic as u8, Ordering::SeqCst);
        return true;
    }
    let Some(mapped) = crate::memory::with_vm(|vm| {
        super::device_memory::map_device_memory(vm.frames_mut(), topology.local_apic, 4096)
    }) else {
        return false;
    };
    XAPIC_REGISTERS.store(mapped, Ordering::SeqCst);
    MODE.store(Mode::XApic as u8, Ordering::SeqCst);
    true
}

/// Enables this processor's local APIC in the chosen mode: spurious and
/// error vectors set, LINT0 masked (the 8259's line), LINT1 as NMI, every
/// priority accepted, the timer masked until [`start_timer`].
pub fn enable_local() {
    let mut base = Msr::new(APIC_BASE_MSR);
    // SAFETY: setting the global enable bit (and the x2APIC bit when that mode
    // was chosen, which the processor has) keeps the base address; the
    // registers are then programmed below before any interrupt is unmasked.
    unsafe {
        let mut value = base.read() | BASE_ENABLE;
        if mode() == Mode::X2Apic {
            value |= BASE_X2APIC;
        }
        base.write(value);
    }
    write(SPURIOUS, SOFTWARE_ENABLE | u32::from(SPURIOUS_VECTOR));
    write(LVT_LINT0, MASKED);
    write(LVT_LINT1, DELIVER_NMI);
    write(LVT_TIMER, MASKED);
    write(LVT_ERROR, u32::from(ERROR_VECTOR));
    // The error status is latched by a write; two clear it.
    write(ERROR_STATUS, 0);
    write(ERROR_STATUS, 0);
    write(TASK_PRIORITY, 0);
}

/// Measures the timer against the TSC over 10 ms: how many counts (after
/// dividing by 16) one tick of `hz` takes. On the boot processor, once.
pub fn calibrate_timer(hz: u64) -> u32 {
    write(TIMER_DIVIDE, DIVIDE_BY_16);
    write(LVT_TIMER, MASKED);
    write(TIMER_INITIAL, u32::MAX);
    let tsc_hz = super::tsc::frequency();
    let start = super::tsc::read();
    while super::tsc::read() - start < tsc_hz / 100 {
        core::hint::spin_loop();
    }
    let counted = u32::MAX - read(TIMER_CURRENT);
    write(TIMER_INITIAL, 0);
    let per_tick = (u64::from(counted) * 100 / hz).clamp(1, u64::from(u32::MAX)) as u32;
    TIMER_COUNT.store(per_tick, Ordering::SeqCst);
    per_tick
}

/// The calibrated count per tick (0 before [`calibrate_timer`]).
pub fn timer_count() -> u32 {
    TIMER_COUNT.load(Ordering::Relaxed)
}

/// Starts this processor's timer, periodic on `vector`, at the calibrated rate.
pub fn start_timer(vector: u8) {
    write(TIMER_DIVIDE, DIVIDE_BY_16);
    write(LVT_TIMER, PERIODIC | u32::from(vector));
    write(TIMER_INITIAL, timer_count());
}

/// Sends `low` (vector, delivery mode, level) to the processor with APIC ID
/// `destination`, and waits until the xAPIC has sent it.
fn command(destination: u32, low: u32) {
    match mode() {
        Mode::X2Apic => {
            let value = (u64::from(destination) << 32) | u64::from(low);
            // SAFETY: the ICR takes any destination and a valid command; x2APIC
            // mode is on.
            unsafe { Msr::new(X2APIC_MSRS + COMMAND_LOW / 16).write(value) };
        }
        Mode::XApic => {
            write(COMMAND_HIGH, destination << 24);
            write(COMMAND_LOW, low);
            while read(COMMAND_LOW) & SEND_PENDING != 0 {
                core::hint::spin_loop();
            }
        }
        Mode::Off => {}
    }
}

/// Sends interrupt `vector` to the processor with APIC ID `destination`.
pub fn send_interrupt(destination: u32, vector: u8) {
    command(destination, ASSERT | u32::from(vector));
}

/// Sends an NMI to the processor with APIC ID `destination`: it arrives even
/// with the processor's interrupts off.
pub fn send_nmi(destination: u32) {
    command(destination, ASSERT | DELIVER_NMI);
}

/// Sends an INIT to the processor with APIC ID `destination` (it waits for
/// a start-up).
pub fn send_init(destination: u32) {
    command(destination, ASSERT | DELIVER_INIT);
}

/// Sends a start-up to the processor with APIC ID `destination`: it starts in
/// real mode at physical address `page * 4096`.
pub fn send_startup(destination: u32, page: u8) {
    command(destination, ASSERT | DELIVER_STARTUP | u32::from(page));
}

/// Error interrupts seen so far and the last error status.
pub fn errors() -> (u64, u32) {
    (ERRORS.load(Ordering::Relaxed), LAST_ERROR.load(Ordering::Relaxed))
}

/// Spurious local APIC interrupts seen so far.
pub fn spurious() -> u64 {
    SPURIOUS_SEEN.load(Ordering::Relaxed)
}

/// For the error interrupt: latches and records the error status, and ends it.
pub fn note_error() {
    write(ERROR_STATUS, 0);
    LAST_ERROR.store(read(ERROR_STATUS), Ordering::Relaxed);
    ERRORS.fetch_add(1, Ordering::Relaxed);
    end_of_interrupt();
}

/// For the spurious vector: counts it. A spurious interrupt is not ended.
pub fn note_spurious() {
    SPURIOUS_SEEN.fetch_add(1, Ordering::Relaxed);
}

// I/O APIC registers: a selector and a window.
const IO_SELECT: u64 = 0x00;
const IO_WINDOW: u64 = 0x10;
/// The version register (bits 16..24: the last redirection entry).
const IO_VERSION: u32 = 0x01;
/// Redirection entry `n` is registers `0x10 + 2n` (low) and `0x11 + 2n` (high).
const IO_REDIRECTION: u32 = 0x10;
/// Redirection entry bits: active low, level-triggered, masked.
const IO_LOW: u32 = 1 << 13;
const IO_LEVEL: u32 = 1 << 15;
const IO_MASKED: u32 = 1 << 16;

/// Reads I/O APIC register `register` with the selector held.
fn io_read(registers: u64, register: u32) -> u32 {
    // SAFETY: `registers` is the I/O APIC's page, mapped uncached; selecting
    // a register and reading the window has no other effect. The caller holds
    // the lock, so no other selection comes between.
    unsafe {
        core::ptr::write_volatile((registers + IO_SELECT) as *mut u32, register);
        core::ptr::read_volatile((registers + IO_WINDOW) as *const u32)
    }
}

/// Writes I/O APIC register `register` with the selector held.
fn io_write(registers: u64, register: u32, value: u32) {
    // SAFETY: as in `io_read`; the callers write redirection entries only.
    unsafe {
        core::ptr::write_volatile((registers + IO_SELECT) as *mut u32, register);
        core::ptr::write_volatile((registers + IO_WINDOW) as *mut u32, value);
    }
}

/// Maps the I/O APIC and masks every entry. False if it cannot be mapped.
pub fn init_io_apic(physical: u64) -> bool {
    let Some(registers) = crate::memory::with_vm(|vm| {
        super::device_memory::map_device_memory(vm.frames_mut(), physical, 4096)
    }) else {
        return false;
    };
    let mut io = IO_APIC.lock();
    *io = registers;
    let last = (io_read(registers, IO_VERSION) >> 16) & 0xff;
    for entry in 0..=last {
        io_write(registers, IO_REDIRECTION + 2 * entry, IO_MASKED);
        io_write(registers, IO_REDIRECTION + 2 * entry + 1, 0);
    }
    true
}

/// Sends ISA interrupt `route` to `vector` on the processor with APIC ID
/// `destination` (fixed delivery, physical destination).
pub fn route(route: IsaRoute, gsi_base: u32, vector: u8, destination: u32) {
    let io = IO_APIC.lock();
    if *io == 0 || route.gsi < gsi_base {
        return;
    }
    let entry = route.gsi - gsi_base;
    let mut low = u32::from(vector);
    if route.low {
        low |= IO_LOW;
    }
    if route.level {
        low |= IO_LEVEL;
    }
    io_write(*io, IO_REDIRECTION + 2 * entry + 1, destination << 24);
    io_write(*io, IO_REDIRECTION + 2 * entry, low);
}
