//! Floating-point faults with their exceptions unmasked, x87 and SSE, and
//! the checks that either unit works at all in user mode.
//!
//! The program is built without SSE (the kernel target's soft float), so no
//! compiled code keeps anything in the XMM registers or the x87 stack that
//! these functions use.

use core::arch::asm;

use user::println;

/// A plain SSE instruction, which must work: returns if it does.
pub fn sse_usable() {
    // SAFETY: changes only XMM0, which no compiled code uses (module docs).
    unsafe { asm!("xorps xmm0, xmm0", "addss xmm0, xmm0", options(nomem, nostack)) };
}

/// An SSE division by zero with the exception unmasked in MXCSR: a SIMD
/// floating-point exception (#XM). If the processor only records it in
/// MXCSR (QEMU 7.2's TCG raises no SIMD exception), exits with
/// [`NOT_RAISED`](crate::NOT_RAISED).
pub fn sse_divide_by_zero() {
    // MXCSR's default with the divide-by-zero mask (bit 9) cleared.
    let control: u32 = 0x1f80 & !(1 << 9);
    let one: f32 = 1.0;
    let mut after: u32 = 0;
    // SAFETY: changes MXCSR, XMM0 and XMM1, which no compiled code uses, and
    // writes `after`.
    unsafe {
        asm!(
            "ldmxcsr [{control}]",
            "movss xmm0, [{one}]",
            "xorps xmm1, xmm1",
            "divss xmm0, xmm1",
            "stmxcsr [{after}]",
            control = in(reg) &control,
            one = in(reg) &one,
            after = in(reg) &mut after,
            options(nostack),
        );
    }
    println!("crash: divss by zero ran through; MXCSR {control:#x} before, {after:#x} after");
    if after & ZERO_DIVIDE != 0 {
        user::exit(crate::NOT_RAISED);
    }
}

/// MXCSR's zero-divide flag: the processor saw the division by zero.
const ZERO_DIVIDE: u32 = 1 << 2;

/// A plain x87 instruction sequence, which must work: returns if it does.
pub fn x87_usable() {
    // SAFETY: leaves the x87 stack empty, as it found it.
    unsafe { asm!("fninit", "fld1", "fstp st(0)", options(nomem, nostack)) };
}

/// An x87 division by zero with the exception unmasked, then `fwait`: a
/// floating-point error (#MF).
pub fn x87_divide_by_zero() {
    // The default control word with the zero-divide mask (bit 2) cleared.
    let control: u16 = 0x037f & !(1 << 2);
    // SAFETY: changes only the x87 state, which no compiled code uses; it is
    // reset if the fault does not come.
    unsafe {
        asm!(
            "fninit",
            "fldcw [{control}]",
            "fld1",
            "fldz",
            "fdivp st(1), st",
            "fwait",
            "fninit",
            control = in(reg) &control,
            options(nostack, readonly),
        );
    }
}
