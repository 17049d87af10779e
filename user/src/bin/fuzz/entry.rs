//! The `syscall` instruction as the fuzzer makes it: with chosen arithmetic
//! and system flags in RFLAGS (the direction, nested-task, alignment-check
//! and sometimes the trap flag among them), and every register the kernel
//! must preserve loaded with a known value and compared afterwards, so that
//! a kernel that leaks or clobbers a register is caught, not just survived.

use core::arch::asm;

/// What every register the call must preserve holds before it.
const CANARY: u64 = 0x5a5a_1234_c3c3_8765;

/// What the processor shows after a call.
#[derive(Clone, Copy, Debug)]
pub struct Returned {
    /// `rax`.
    pub result: u64,
    /// The argument registers (`rdi, rsi, rdx, r10, r8, r9`), which the abi
    /// says are preserved.
    pub arguments: [u64; 6],
    /// The bits of `rbx`, `rbp` and `r12` to `r15` that the call changed.
    pub changed: u64,
    /// RFLAGS right after the call.
    pub flags: u64,
}

/// Makes system call `number` with `arguments`, RFLAGS set to `flags` (those
/// user mode may set) for the `syscall` alone.
///
/// # Safety
/// As [`user::raw`]: the call may change this program's memory.
pub unsafe fn syscall(number: u64, arguments: [u64; 6], flags: u64) -> Returned {
    let [a0, a1, a2, a3, a4, a5] = arguments;
    let (result, changed, flags_after);
    let (o0, o1, o2, o3, o4, o5);
    // SAFETY: saves the registers it loads with the canary and RFLAGS on the
    // stack and restores them before it ends (the direction flag is clear
    // again); `rcx` and `r11`, which `syscall` destroys, carry the flags in
    // and the comparison out. What the call does to memory is the caller's.
    unsafe {
        asm!(
            "push rbx",
            "push rbp",
            "push r12",
            "push r13",
            "push r14",
            "push r15",
            "pushfq",
            "mov rbx, {canary}",
            "mov rbp, rbx",
            "mov r12, rbx",
            "mov r13, rbx",
            "mov r14, rbx",
            "mov r15, rbx",
            "push rcx",
            "popfq",
            "syscall",
            "pushfq",
            "pop rcx",
            "mov r11, {canary}",
            "xor rbx, r11",
            "xor rbp, r11",
            "xor r12, r11",
            "xor r13, r11",
            "xor r14, r11",
            "xor r15, r11",
            "or rbx, rbp",
            "or rbx, r12",
            "or rbx, r13",
            "or rbx, r14",
            "or rbx, r15",
            "mov r11, rbx",
            "popfq",
            "pop r15",
            "pop r14",
            "pop r13",
            "pop r12",
            "pop rbp",
            "pop rbx",
            canary = const CANARY,
            inlateout("rax") number => result,
            inlateout("rdi") a0 => o0,
            inlateout("rsi") a1 => o1,
            inlateout("rdx") a2 => o2,
            inlateout("r10") a3 => o3,
            inlateout("r8") a4 => o4,
            inlateout("r9") a5 => o5,
            inlateout("rcx") flags => flags_after,
            lateout("r11") changed,
        );
    }
    Returned { result, arguments: [o0, o1, o2, o3, o4, o5], changed, flags: flags_after }
}
