//! Leaving QEMU through the isa-debug-exit device, and telling Bochs how a run
//! ended through its debug port.
//!
//! The runner starts QEMU with `-device isa-debug-exit,iobase=0xf4,iosize=0x04`;
//! writing `v` to that port ends QEMU with exit status `(v << 1) | 1`. On real
//! hardware the port is unused and the write does nothing, so callers halt after.
//!
//! Bochs has no such device. The runner turns on its port 0xE9 instead
//! (`port_e9_hack`), whose bytes Bochs prints on its own standard output: a
//! channel of the kernel's alone, since user programs run with IOPL 0 and no I/O
//! permission bitmap, so an `out` to it from ring 3 faults. (They share the
//! serial line with the kernel, which is why the verdict cannot travel there.)

use x86_64::instructions::port::Port;

/// The isa-debug-exit I/O port.
const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Bochs's debug output port (`port_e9_hack`).
const BOCHS_DEBUG_PORT: u16 = 0xe9;

/// What the kernel reports to the runner when it leaves QEMU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// Everything passed: QEMU exits with status 33.
    Success = 0x10,
    /// Something failed: QEMU exits with status 35.
    Failure = 0x11,
}

impl ExitCode {
    /// The word the console announces before power-off: `success` or `failure`.
    pub fn name(self) -> &'static str {
        match self {
            ExitCode::Success => "success",
            ExitCode::Failure => "failure",
        }
    }
}

/// Asks QEMU to exit with `code`. Returns only when not running under QEMU.
pub fn exit(code: ExitCode) {
    let mut port = Port::new(DEBUG_EXIT_PORT);
    // SAFETY: port 0xf4 is reserved for isa-debug-exit under QEMU and unused on
    // PCs; writing it has no effect on kernel memory.
    unsafe { port.write(code as u32) };
}

/// Writes `text` to Bochs's debug port. Under QEMU (no `debugcon` device) and
/// on PCs the port is unused and the bytes go nowhere.
pub fn write_bochs_debug_port(text: &str) {
    let mut port = Port::<u8>::new(BOCHS_DEBUG_PORT);
    for byte in text.bytes() {
        // SAFETY: port 0xe9 is Bochs's debug console and unused on PCs and
        // under QEMU; writing it has no effect on kernel memory.
        unsafe { port.write(byte) };
    }
}
