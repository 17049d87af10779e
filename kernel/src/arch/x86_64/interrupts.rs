//! Hardware interrupts: the timer, the PS/2 keyboard and serial input, through
//! the APICs or the legacy PICs.
//!
//! The two 8259 PICs are remapped to vectors 32..48 (above the CPU exceptions).
//! Where the MADT describes the APICs (`apic`), the PICs are then masked and
//! the I/O APIC delivers the keyboard and serial interrupts on the same
//! vectors, while each processor's local APIC timer ticks at [`TICK_HZ`];
//! otherwise the PICs deliver them and the PIT ticks. Keyboard scancodes and serial bytes are only
//! queued by the handlers; decoding happens outside interrupt context, in
//! [`read_input`]. Every handler acknowledges its interrupt before returning
//! (the timer's before it ends a process's turn, which switches stacks).

use core::sync::atomic::{AtomicU64, Ordering};
use crossbeam_queue::ArrayQueue;
use pc_keyboard::{DecodedKey, HandleControl, PS2Keyboard, ScancodeSet1, layouts};
use pic8259::ChainedPics;
use spin::{LazyLock, Mutex};
use x86_64::instructions::port::Port;
use x86_64::structures::idt::{InterruptDescriptorTable, InterruptStackFrame};

use super::{apic, serial};

/// First vector of the primary PIC.
const PIC_OFFSET: u8 = 32;
/// Timer interrupts per second.
pub const TICK_HZ: u64 = 100;
/// Vector of the timer: IRQ 0 (PIT), or the local APIC timer.
pub const TIMER_VECTOR: u8 = PIC_OFFSET;
/// Vector of IRQ 1 (PS/2 keyboard).
const KEYBOARD_VECTOR: u8 = PIC_OFFSET + 1;
/// Vector of IRQ 4 (COM1).
const SERIAL_VECTOR: u8 = PIC_OFFSET + 4;
/// Vector of IRQ 7, where the primary PIC delivers its spurious interrupts.
const SPURIOUS_PRIMARY_VECTOR: u8 = PIC_OFFSET + 7;
/// Vector of IRQ 15, where the secondary PIC delivers its spurious interrupts.
const SPURIOUS_SECONDARY_VECTOR: u8 = PIC_OFFSET + 15;
/// The PICs' command ports (OCW3 "read ISR" goes there, and the ISR comes back).
const PIC_COMMAND_PORTS: [u16; 2] = [0x20, 0xa0];
/// OCW3: the next read of the command port returns the in-service register.
const READ_ISR: u8 = 0x0b;

// SAFETY: the offsets put the PICs' 16 vectors at 32..48, which no CPU exception
// uses.
static PICS: Mutex<ChainedPics> =
    Mutex::new(unsafe { ChainedPics::new(PIC_OFFSET, PIC_OFFSET + 8) });

static TICKS: AtomicU64 = AtomicU64::new(0);
static SPURIOUS: AtomicU64 = AtomicU64::new(0);

/// One input event, queued by an interrupt handler.
#[derive(Debug, Clone, Copy)]
enum RawInput {
    Scancode(u8),
    SerialByte(u8),
}

static INPUT: LazyLock<ArrayQueue<RawInput>> = LazyLock::new(|| ArrayQueue::new(256));

static KEYBOARD: Mutex<PS2Keyboard<layouts::Us104Key, ScancodeSet1>> =
    Mutex::new(PS2Keyboard::new(ScancodeSet1::new(), layouts::Us104Key, HandleControl::Ignore));

/// Installs the interrupt handlers in `idt`.
pub fn install(idt: &mut InterruptDescriptorTable) {
    idt[TIMER_VECTOR].set_handler_fn(timer);
    idt[KEYBOARD_VECTOR].set_handler_fn(keyboard);
    idt[SERIAL_VECTOR].set_handler_fn(serial_input);
    idt[SPURIOUS_PRIMARY_VECTOR].set_handler_fn(irq7);
    idt[SPURIOUS_SECONDARY_VECTOR].set_handler_fn(irq15);
    idt[apic::SPURIOUS_VECTOR].set_handler_fn(apic_spurious);
    idt[apic::ERROR_VECTOR].set_handler_fn(apic_error);
    super::smp::install(idt);
}

extern "x86-interrupt" fn apic_spurious(_frame: InterruptStackFrame) {
    apic::note_spurious();
}

extern "x86-interrupt" fn apic_error(_frame: InterruptStackFrame) {
    apic::note_error();
}

/// Spurious interrupts seen so far (IRQ 7 or 15 with no line in service).
pub fn spurious_interrupts() -> u64 {
    SPURIOUS.load(Ordering::Relaxed)
}

/// Whether IRQ `line` (0..16) is really in service at its PIC.
fn in_service(line: u8) -> bool {
    let port = PIC_COMMAND_PORTS[usize::from(line / 8)];
    let mut command = Port::<u8>::new(port);
    // SAFETY: OCW3 to a PIC's command port selects which register the next read
    // of that port returns; reading it then has no other effect. Interrupts are
    // off in the handler, so nothing else talks to the PIC meanwhile.
    let isr = unsafe {
        command.write(READ_ISR);
        command.read()
    };
    isr & (1 << (line % 8)) != 0
}

/// IRQ 7: nothing is attached there, so it is spurious unless the ISR says
/// otherwise. A spurious one is not acknowledged (the PIC did not set its ISR
/// bit).
extern "x86-interrupt" fn irq7(_frame: InterruptStackFrame) {
    if in_service(7) {
        end_of_interrupt(SPURIOUS_PRIMARY_VECTOR);
    } else {
        SPURIOUS.fetch_add(1, Ordering::Relaxed);
    }
}

/// IRQ 15: as IRQ 7, but a spurious one from the secondary PIC still went
/// through the primary's cascade line, which must be acknowledged.
extern "x86-interrupt" fn irq15(_frame: InterruptStackFrame) {
    if in_service(15) {
        end_of_interrupt(SPURIOUS_SECONDARY_VECTOR);
    } else {
        SPURIOUS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: port 0x20 is the primary PIC's command port; 0x20 there is a
        // non-specific end of interrupt for the cascade line it delivered.
        unsafe { Port::<u8>::new(0x20).write(0x20) };
    }
}

/// Programs the interrupt controllers and the timer (the APICs where the MADT
/// describes them, else the PICs and the PIT), unmasks timer, keyboard and
/// COM1, and enables interrupts. The IDT must be loaded.
pub fn init() {
    LazyLock::force(&INPUT);
    let apics = super::acpi::topology()
        .and_then(|topology| Some((topology, topology.io_apic?)))
        .filter(|(topology, (address, _))| apic::init(topology) && apic::init_io_apic(*address));
    // SAFETY: the PICs are remapped to vectors whose handlers `install` set;
    // with the APICs in charge every line is masked, otherwise only the three
    // lines with handlers are unmasked.
    unsafe {
        let mut pics = PICS.lock();
        pics.initialize();
        match apics {
            Some(_) => pics.write_masks(0xff, 0xff),
            None => pics.write_masks(!0b0001_0011, 0xff),
        }
    }
    match apics {
        Some((topology, (_, gsi_base))) => {
            apic::enable_local();
            let count = apic::calibrate_timer(TICK_HZ);
            apic::start_timer(TIMER_VECTOR);
            let this = apic::id();
            apic::route(topology.isa[1], gsi_base, KEYBOARD_VECTOR, this);
            apic::route(topology.isa[4], gsi_base, SERIAL_VECTOR, this);
            log::info!(
                "interrupts: {:?} local APICs, I/O APIC; timer {TICK_HZ} Hz ({count} counts a tick)",
                apic::mode()
            );
        }
        None => start_timer(),
    }
    serial::enable_receive_interrupt();
    x86_64::instructions::interrupts::enable();
}

/// Runs PIT channel 0 in rate-generator mode at [`TICK_HZ`].
fn start_timer() {
    let divisor = (1_193_182 / TICK_HZ) as u16;
    let mut command = Port::<u8>::new(0x43);
    let mut channel0 = Port::<u8>::new(0x40);
    // SAFETY: ports 0x40/0x43 are the PIT's channel 0 and command register.
    unsafe {
        command.write(0b0011_0100); // channel 0, low then high byte, mode 2
        channel0.write(divisor as u8);
        channel0.write((divisor >> 8) as u8);
    }
}

/// The 8259s' interrupt masks (primary, secondary), as they read now.
pub fn legacy_masks() -> (u8, u8) {
    // SAFETY: reading a PIC's data port outside an initialisation sequence
    // returns its mask register and changes nothing.
    unsafe { (Port::<u8>::new(0x21).read(), Port::<u8>::new(0xa1).read()) }
}

/// Timer ticks since interrupts were enabled.
pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

fn end_of_interrupt(vector: u8) {
    if apic::active() {
        apic::end_of_interrupt();
        return;
    }
    // SAFETY: `vector` is the PIC interrupt being handled right now.
    unsafe { PICS.lock().notify_end_of_interrupt(vector) };
}

extern "x86-interrupt" fn timer(frame: InterruptStackFrame) {
    let cpu = super::smp::this_cpu();
    super::smp::note_tick(cpu);
    end_of_interrupt(TIMER_VECTOR);
    if cpu == 0 {
        // The boot processor's ticks are the clock.
        TICKS.fetch_add(1, Ordering::Relaxed);
    }
    // A process interrupted in user mode has had its turn. (The kernel itself
    // is never preempted: it holds no lock and no half-done state in user mode.)
    if frame.code_segment.rpl() == x86_64::PrivilegeLevel::Ring3 {
        let _kernel = super::kernel_lock::FromUser::enter(true);
        crate::process::preempt();
    }
}

extern "x86-interrupt" fn keyboard(_frame: InterruptStackFrame) {
    // SAFETY: reading port 0x60 takes the byte the keyboard controller holds.
    let scancode = unsafe { Port::<u8>::new(0x60).read() };
    let _ = INPUT.push(RawInput::Scancode(scancode));
    end_of_interrupt(KEYBOARD_VECTOR);
}

extern "x86-interrupt" fn serial_input(_frame: InterruptStackFrame) {
    serial::receive_all(|byte| {
        let _ = INPUT.push(RawInput::SerialByte(byte));
    });
    end_of_interrupt(SERIAL_VECTOR);
}

/// The next character typed on the keyboard or received on the serial line.
pub fn read_input() -> Option<char> {
    while let Some(raw) = INPUT.pop() {
        match raw {
            RawInput::SerialByte(byte) => return Some(char::from(byte)),
            RawInput::Scancode(code) => {
                let mut keyboard = KEYBOARD.lock();
                let Ok(Some(event)) = keyboard.add_byte(code) else { continue };
                if let Some(DecodedKey::Unicode(character)) = keyboard.process_keyevent(event) {
                    return Some(character);
                }
            }
        }
    }
    None
}

/// Waits for the next interrupt with interrupts enabled.
pub fn wait_for_interrupt() {
    x86_64::instructions::interrupts::enable_and_hlt();
}
