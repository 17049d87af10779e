//! System calls made from odd machine states: at the very top of user
//! space, with the trap or nested-task flag set, with a stack pointer that is
//! no user address. The kernel may kill the process or run the call, but
//! must not fault itself.

use core::arch::asm;

use user::{PROT_EXEC, PROT_READ, PROT_WRITE, abi, println};

use crate::{NON_CANONICAL, PAGE};

/// The first non-canonical address of the lower half (user space ends there
/// today; if it ends lower, the kernel refuses the mapping below it).
const CANONICAL_END: u64 = 0x0000_8000_0000_0000;

/// A `syscall` in the two bytes below the canonical edge (the last of user
/// space today): its return address is the first non-canonical address, which `sysret` must not be asked to go to
/// in ring 0 (on Intel processors it faults there, on the user's stack). If
/// the kernel does not map that page, the jump there is a plain page fault.
pub fn syscall_at_the_top() {
    let page = CANONICAL_END - PAGE;
    // SAFETY: an exact mapping where nothing is mapped.
    let mapped = unsafe { user::raw(abi::MMAP, [page, PAGE, PROT_READ | PROT_WRITE, 0, 0, 0]) };
    if mapped == page {
        // SAFETY: the page was just mapped read-write; nothing refers to it.
        unsafe {
            core::ptr::write_volatile((page + PAGE - 2) as *mut [u8; 2], [0x0f, 0x05]);
            let _ = user::protect(page, PAGE, PROT_READ | PROT_EXEC);
        }
    } else {
        println!("crash: the last page of user space cannot be mapped: {mapped:#x}");
    }
    // SAFETY: runs `syscall` (getpid) at the top of user space; whatever the
    // kernel does, nothing comes back here.
    unsafe {
        asm!(
            "jmp {target}",
            target = in(reg) CANONICAL_END - 2,
            in("rax") abi::GETPID,
            options(nomem, nostack),
        );
    }
}

/// RFLAGS.TF, the trap flag.
const TRAP_FLAG: u64 = 1 << 8;
/// RFLAGS.NT, the nested-task flag.
const NESTED_TASK: u64 = 1 << 14;

/// `syscall` (getpid) with `flags` added to RFLAGS, back to the flags before.
fn syscall_with_flags(flags: u64, number: u64, arguments: [u64; 3]) -> u64 {
    let result: u64;
    // SAFETY: sets the flags for the `syscall` alone and restores them from
    // the copy pushed first; the kernel preserves every register but rax,
    // rcx and r11. With the trap flag, a debug trap may come after the
    // `syscall` (in the kernel) or after the `popfq`: the kernel decides.
    unsafe {
        asm!(
            "pushfq",
            "pushfq",
            "or qword ptr [rsp], {flags}",
            "popfq",
            "syscall",
            "popfq",
            flags = in(reg) flags,
            inlateout("rax") number => result,
            in("rdi") arguments[0],
            in("rsi") arguments[1],
            in("rdx") arguments[2],
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    result
}

/// `syscall` with the trap flag set: the single-step trap comes after the
/// `syscall`, at the kernel's entry, still on the user's stack.
pub fn syscall_with_the_trap_flag() {
    let pid = syscall_with_flags(TRAP_FLAG, abi::GETPID, [0; 3]);
    println!("crash: getpid with the trap flag gave {pid}");
}

/// `syscall` with the nested-task flag set, for a call whose copy from user
/// memory faults in the kernel (a fresh page, not yet present), so that the
/// kernel takes a page fault and returns from it with NT as the user left it.
pub fn syscall_with_nested_task() {
    let Ok(page) = user::map_anonymous(PAGE, PROT_READ | PROT_WRITE) else { return };
    let written = syscall_with_flags(NESTED_TASK, abi::WRITE, [page, 1, 0]);
    println!("crash: write with the nested-task flag gave {written:#x}");
}

/// `yield` with the nested-task flag set, many times, while a child spins
/// and so is preempted by the timer: whatever RFLAGS the kernel carries from
/// the blocked call into the next task switch must not reach the `iretq`
/// that resumes the child (with NT set, `iretq` faults in long mode).
pub fn yield_with_nested_task() {
    let Ok(child) = user::fork() else { return };
    if child == 0 {
        let until = user::cycles() + SPIN_CYCLES;
        while user::cycles() < until {
            core::hint::spin_loop();
        }
        user::exit(0);
    }
    for _ in 0..YIELDS {
        syscall_with_flags(NESTED_TASK, abi::YIELD, [0; 3]);
    }
    let ended = user::wait();
    println!("crash: {YIELDS} yields with the nested-task flag beside a spinning child: {ended:?}");
}

/// How long the child of `yield_with_nested_task` spins, in cycles.
const SPIN_CYCLES: u64 = 500_000_000;
/// Yields `yield_with_nested_task` makes.
const YIELDS: u32 = 200;

/// An address in the kernel half, where the kernel's own mappings begin.
const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;

/// `syscall` (getpid) with the stack pointer at `stack`, back to the real one
/// after: the kernel must not use the user's stack pointer in ring 0.
fn syscall_with_stack(stack: u64) -> u64 {
    let result: u64;
    // SAFETY: keeps the stack pointer in r12 (preserved by the kernel) over
    // the call and puts it back; nothing touches the stack in between.
    unsafe {
        asm!(
            "mov r12, rsp",
            "mov rsp, {stack}",
            "syscall",
            "mov rsp, r12",
            stack = in(reg) stack,
            out("r12") _,
            inlateout("rax") abi::GETPID => result,
            lateout("rcx") _,
            lateout("r11") _,
        );
    }
    result
}

/// `syscall` with the stack pointer in the kernel half.
pub fn syscall_with_a_kernel_stack() {
    let pid = syscall_with_stack(KERNEL_HALF + 0x1000);
    println!("crash: getpid with the stack pointer in the kernel half gave {pid}");
}

/// `syscall` with a non-canonical stack pointer.
pub fn syscall_with_a_non_canonical_stack() {
    let pid = syscall_with_stack(NON_CANONICAL);
    println!("crash: getpid with a non-canonical stack pointer gave {pid}");
}

/// Changes GS (the user data selector, then the null one; each load may
/// change the GS base) and makes system calls, a fork among them: the
/// kernel must not care. Exits with 0 if every call worked.
pub fn system_calls_after_changing_gs() {
    for selector in ["ss", "0"] {
        // SAFETY: loads a selector a program may load into GS (its own data
        // segment, or null); nothing in this program uses GS.
        unsafe {
            match selector {
                "ss" => asm!("mov {0:x}, ss", "mov gs, {0:x}", out(reg) _, options(nomem, nostack)),
                _ => asm!("xor {0:e}, {0:e}", "mov gs, {0:x}", out(reg) _, options(nomem, nostack)),
            }
        }
        let pid = user::getpid();
        if (0..100).any(|_| user::getpid() != pid) {
            user::exit(1);
        }
        match user::fork() {
            Ok(0) => user::exit(7),
            Ok(_) => {
                if !matches!(user::wait(), Ok((_, abi::Ended::Exited(7)))) {
                    user::exit(2);
                }
            }
            Err(_) => user::exit(3),
        }
    }
    user::exit(0);
}
