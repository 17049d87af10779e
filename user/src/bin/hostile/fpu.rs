//! x87 and SSE state belongs to each process: a clean default at start, a copy
//! of the parent's at fork, and nothing one process loads reaches another.

use core::arch::asm;

use super::{Ended, expect, reap, spawn};

/// The x87 control word after `fninit`.
const DEFAULT_CONTROL_WORD: u16 = 0x037f;
/// MXCSR at reset.
const DEFAULT_MXCSR: u32 = 0x1f80;
/// The parent's choice: round toward zero, 53-bit precision.
const PARENT_CONTROL_WORD: u16 = 0x0e7f;
/// The parent's choice: round toward zero, flush to zero.
const PARENT_MXCSR: u32 = 0xff80;
/// The child's choice: round down, 24-bit precision.
const CHILD_CONTROL_WORD: u16 = 0x047f;
/// The child's choice: round up.
const CHILD_MXCSR: u32 = 0x5f80;

fn control_word() -> u16 {
    let mut word = 0u16;
    // SAFETY: `fnstcw` stores two bytes to the local.
    unsafe { asm!("fnstcw [{}]", in(reg) &raw mut word, options(nostack)) };
    word
}

fn set_control_word(word: u16) {
    // SAFETY: `fldcw` reads two bytes from the local; every value used here
    // keeps the exceptions masked.
    unsafe { asm!("fldcw [{}]", in(reg) &raw const word, options(nostack)) };
}

fn mxcsr() -> u32 {
    let mut word = 0u32;
    // SAFETY: `stmxcsr` stores four bytes to the local (SSE is on for user
    // mode under every firmware, or this is #UD and the process dies).
    unsafe { asm!("stmxcsr [{}]", in(reg) &raw mut word, options(nostack)) };
    word
}

fn set_mxcsr(word: u32) {
    // SAFETY: `ldmxcsr` reads four bytes from the local; the values used have
    // no reserved bit and keep the exceptions masked.
    unsafe { asm!("ldmxcsr [{}]", in(reg) &raw const word, options(nostack)) };
}

/// Starts with the defaults; a child inherits the parent's settings, changes
/// its own while the parent runs, and the parent's stay as they were.
pub fn state_is_per_process() -> bool {
    let mut held = expect("x87 control word at start", control_word(), DEFAULT_CONTROL_WORD)
        & expect("MXCSR at start", mxcsr(), DEFAULT_MXCSR);
    set_control_word(PARENT_CONTROL_WORD);
    set_mxcsr(PARENT_MXCSR);
    let child = spawn(|| {
        let inherited = expect("child's control word", control_word(), PARENT_CONTROL_WORD)
            & expect("child's MXCSR", mxcsr(), PARENT_MXCSR);
        set_control_word(CHILD_CONTROL_WORD);
        set_mxcsr(CHILD_MXCSR);
        for _ in 0..20 {
            user::yield_now();
        }
        inherited
            & expect("child's control word kept", control_word(), CHILD_CONTROL_WORD)
            & expect("child's MXCSR kept", mxcsr(), CHILD_MXCSR)
    });
    held &= expect("fork", child.is_ok(), true);
    for _ in 0..20 {
        user::yield_now();
        held &= expect("parent's control word", control_word(), PARENT_CONTROL_WORD)
            & expect("parent's MXCSR", mxcsr(), PARENT_MXCSR);
    }
    held & expect("child", reap(), Ended::Exited(0))
}
