//! The x87/SSE register state of user processes.
//!
//! The kernel itself is soft-float (its target has no SSE), so the FPU and SSE
//! registers only ever hold user state, and the kernel can leave them loaded
//! while it runs: a process's state is saved when its turn ends and restored when
//! its next one begins (`process::scheduler`), never on system-call or interrupt
//! entry. Each process owns an [`FpuState`]: a clean default at spawn, a copy of
//! the parent's live registers at fork.
//!
//! The state is saved with `fxsave64`, which covers x87, MMX and SSE (XMM0-15,
//! MXCSR). Processors with AVX have wider registers that `fxsave` does not save;
//! the kernel does not enable them (XCR0 keeps only x87 and SSE, the reset
//! value), so user code cannot use them and nothing leaks through them.
//!
//! [`init`] turns SSE on whatever the firmware left (BIOS boot leaves it off,
//! UEFI on): CR4.OSFXSR (`fxsave` and SSE instructions), CR4.OSXMMEXCPT (an
//! unmasked SSE exception is `#XM`, not `#UD`), CR0.MP and CR0.NE (x87 errors are
//! `#MF` exceptions, not an external interrupt), CR0.EM and CR0.TS clear.

use core::arch::asm;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

/// Bytes `fxsave64` writes.
const FXSAVE_BYTES: usize = 512;
/// The x87 control word at reset (`fninit`): every exception masked, 64-bit
/// precision, round to nearest.
const DEFAULT_CONTROL_WORD: u16 = 0x037f;
/// MXCSR at reset: every SSE exception masked, round to nearest.
const DEFAULT_MXCSR: u32 = 0x1f80;
/// Offset of FCW in the `fxsave` image.
const CONTROL_WORD_OFFSET: usize = 0;
/// Offset of MXCSR in the `fxsave` image.
const MXCSR_OFFSET: usize = 24;

/// One process's x87/SSE registers, in `fxsave64` layout (16-byte aligned, as
/// the instruction requires).
#[repr(C, align(16))]
#[derive(Clone)]
pub struct FpuState([u8; FXSAVE_BYTES]);

impl FpuState {
    /// The state of a new program: empty x87 stack, every exception masked,
    /// zeroed registers.
    pub fn initial() -> Self {
        let mut bytes = [0u8; FXSAVE_BYTES];
        bytes[CONTROL_WORD_OFFSET..CONTROL_WORD_OFFSET + 2]
            .copy_from_slice(&DEFAULT_CONTROL_WORD.to_le_bytes());
        bytes[MXCSR_OFFSET..MXCSR_OFFSET + 4].copy_from_slice(&DEFAULT_MXCSR.to_le_bytes());
        FpuState(bytes)
    }

    /// The registers as they are now (at fork: the running parent's).
    pub fn current() -> Self {
        let mut state = FpuState([0; FXSAVE_BYTES]);
        state.save();
        state
    }

    /// Stores the processor's registers here.
    pub fn save(&mut self) {
        // SAFETY: `fxsave64` writes 512 bytes to a 16-byte-aligned address:
        // `self` is exactly that (repr(C, align(16)), 512 bytes). CR4.OSFXSR
        // is set by `init` before any process exists.
        unsafe { asm!("fxsave64 [{}]", in(reg) self.0.as_mut_ptr(), options(nostack)) };
    }

    /// Loads the processor's registers from here.
    pub fn restore(&self) {
        // SAFETY: a 16-byte-aligned 512-byte image, made by `initial` (valid
        // reserved fields, MXCSR without reserved bits) or by `fxsave64`, so
        // `fxrstor64` cannot fault on it; the kernel does not use these registers.
        unsafe { asm!("fxrstor64 [{}]", in(reg) self.0.as_ptr(), options(nostack, readonly)) };
    }

    /// The x87 control word saved here.
    pub fn control_word(&self) -> u16 {
        u16::from_le_bytes([self.0[CONTROL_WORD_OFFSET], self.0[CONTROL_WORD_OFFSET + 1]])
    }

    /// MXCSR saved here.
    pub fn mxcsr(&self) -> u32 {
        let bytes = &self.0[MXCSR_OFFSET..MXCSR_OFFSET + 4];
        u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
    }
}

/// Turns on x87 and SSE for user mode and loads the default state.
pub fn init() {
    let mut cr0 = Cr0::read();
    cr0.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
    cr0.insert(Cr0Flags::MONITOR_COPROCESSOR | Cr0Flags::NUMERIC_ERROR);
    // SAFETY: only the FPU-related bits change; paging and protection stay.
    unsafe { Cr0::write(cr0) };
    // SAFETY: every x86_64 processor has FXSR and SSE; these bits only let user
    // code use them and make their exceptions precise.
    unsafe {
        Cr4::update(|flags| {
            flags.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
        })
    };
    FpuState::initial().restore();
}

/// Whether CR4 has SSE enabled for user mode (for tests).
pub fn sse_enabled() -> bool {
    Cr4::read().contains(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE)
}
