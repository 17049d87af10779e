//! One function per kind of fault. Each does the forbidden thing and returns
//! only if the processor and the kernel let it pass.
//!
//! The program is built without SSE (the kernel target's soft float), so no
//! compiled code keeps anything in the XMM registers or the x87 stack that the
//! SSE and x87 modes use.

use core::arch::asm;

use user::{PROT_EXEC, PROT_READ, PROT_WRITE, abi, println};

/// The kernel's code segment selector (the GDT's first entry after null).
const KERNEL_CODE: u64 = 0x08;
/// An address in neither half of the address space.
const NON_CANONICAL: u64 = 0x1234_5678_9abc_def0;
/// A port with a device behind it (the PS/2 controller's data port).
const PORT: u16 = 0x60;
/// The EFER model-specific register.
const EFER: u32 = 0xc000_0080;
/// Bytes in a page.
const PAGE: u64 = 4096;

/// `ud2`: invalid opcode.
pub fn undefined_opcode() {
    // SAFETY: traps; nothing is changed if it returns.
    unsafe { asm!("ud2", options(nomem, nostack)) };
}

/// `int3` from ring 3: a breakpoint nobody is debugging.
pub fn breakpoint() {
    // SAFETY: as above.
    unsafe { asm!("int3", options(nomem, nostack)) };
}

/// `int 0x80`, the system-call gate of other kernels.
pub fn software_interrupt() {
    // SAFETY: as above.
    unsafe { asm!("int 0x80", options(nomem, nostack)) };
}

/// `sysenter`: invalid in long mode on AMD, a #GP on Intel while
/// `IA32_SYSENTER_CS` is 0; were it set, ring 0 at whatever the MSRs say.
pub fn sysenter() {
    // SAFETY: as above; `rcx` and `rdx` are declared lost in case it returns.
    unsafe { asm!("sysenter", out("rcx") _, out("rdx") _, options(nomem, nostack)) };
}

/// `in` from a port (IOPL 0, no I/O bitmap).
pub fn port_in() {
    let value: u8;
    // SAFETY: as above.
    unsafe { asm!("in al, dx", in("dx") PORT, out("al") value, options(nomem, nostack)) };
    println!("crash: read {value:#x} from port {PORT:#x}");
}

/// `out` to a port.
pub fn port_out() {
    // SAFETY: as above.
    unsafe { asm!("out dx, al", in("dx") PORT, in("al") 0u8, options(nomem, nostack)) };
}

/// `cli`.
pub fn disable_interrupts() {
    // SAFETY: as above.
    unsafe { asm!("cli", options(nomem, nostack)) };
}

/// `hlt`.
pub fn halt() {
    // SAFETY: as above.
    unsafe { asm!("hlt", options(nomem, nostack)) };
}

/// `rdmsr` of EFER.
pub fn read_msr() {
    let (low, high): (u32, u32);
    // SAFETY: as above.
    unsafe {
        asm!("rdmsr", in("ecx") EFER, out("eax") low, out("edx") high, options(nomem, nostack))
    };
    println!("crash: EFER is {:#x}", (u64::from(high) << 32) | u64::from(low));
}

/// `iretq` with a frame whose code segment is the kernel's: a return to a
/// more privileged level, which the processor refuses.
pub fn iret_to_kernel() {
    // SAFETY: builds an interrupt frame on the stack (SS, RSP, RFLAGS, CS,
    // RIP) and returns through it; were it accepted, execution would go on at
    // the label below with the stack as it was before the pushes.
    unsafe {
        asm!(
            "mov {ss:x}, ss",
            "mov {rsp}, rsp",
            "push {ss}",
            "push {rsp}",
            "pushfq",
            "push {cs}",
            "lea {rip}, [rip + 2f]",
            "push {rip}",
            "iretq",
            "2:",
            ss = out(reg) _,
            rsp = out(reg) _,
            rip = out(reg) _,
            cs = in(reg) KERNEL_CODE,
        );
    }
}

/// A jump to a non-canonical address.
pub fn jump_to_non_canonical() {
    // SAFETY: traps at the jump (the processor checks the target first).
    unsafe { asm!("jmp {target}", target = in(reg) NON_CANONICAL, options(nomem, nostack)) };
}

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

/// An integer division by zero (#DE).
pub fn divide_by_zero() {
    // SAFETY: traps; the registers it uses are declared.
    unsafe {
        asm!(
            "div ecx",
            in("ecx") 0u32,
            inout("eax") 1u32 => _,
            inout("edx") 0u32 => _,
            options(nomem, nostack),
        );
    }
}

/// `mov` from CR0, privileged whatever UMIP says.
pub fn read_cr0() {
    let value: u64;
    // SAFETY: traps in ring 3.
    unsafe { asm!("mov {}, cr0", out(reg) value, options(nomem, nostack)) };
    println!("crash: CR0 is {value:#x}");
}

/// `sgdt`: allowed in ring 3 unless UMIP is on; prints what it gave away.
pub fn store_gdt() {
    let mut table = [0u8; 10];
    // SAFETY: writes the 10 bytes of `table`.
    unsafe { asm!("sgdt [{}]", in(reg) table.as_mut_ptr(), options(nostack)) };
    let limit = u16::from_le_bytes([table[0], table[1]]);
    let base = u64::from_le_bytes(table[2..10].try_into().unwrap_or([0; 8]));
    println!("crash: sgdt gave base {base:#x} limit {limit:#x}");
}

/// `smsw`: the low bits of CR0, allowed in ring 3 unless UMIP is on.
pub fn store_machine_status() {
    let value: u64;
    // SAFETY: only reads.
    unsafe { asm!("smsw {}", out(reg) value, options(nomem, nostack)) };
    println!("crash: smsw gave {value:#x}");
}

/// A `syscall` in the last two bytes of user space: its return address is
/// the first non-canonical address, which `sysret` must not be asked to go to
/// in ring 0 (on Intel processors it faults there, on the user's stack). If
/// the kernel does not map that page, the jump there is a plain page fault.
pub fn syscall_at_the_top() {
    let page = abi::USER_END - PAGE;
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
            target = in(reg) abi::USER_END - 2,
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

/// `int1` (`icebp`): a debug exception that, unlike `int3`, no gate's
/// privilege level stops.
pub fn icebp() {
    // SAFETY: traps; nothing is changed if it returns.
    unsafe { asm!(".byte 0xf1", options(nomem, nostack)) };
}

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

/// `ud2` with a non-canonical stack pointer: the exception must come in on
/// the kernel's stack (the TSS's), whatever the user's holds.
pub fn undefined_opcode_with_a_non_canonical_stack() {
    // SAFETY: traps at `ud2`; the stack pointer is never used again.
    unsafe { asm!("mov rsp, {}", "ud2", in(reg) NON_CANONICAL, options(noreturn)) };
}

/// Pages of the mapping `split_into_regions` cuts up.
const SPLIT_PAGES: u64 = 1 << 18;

/// Cuts one large mapping into as many regions as the kernel allows, by
/// write-protecting every other page: each region costs the kernel memory,
/// so there must be a limit that is an error, not the kernel's heap running
/// out.
pub fn split_into_regions() {
    let Ok(base) = user::map_anonymous(SPLIT_PAGES * PAGE, PROT_READ | PROT_WRITE) else { return };
    let mut protected = 0;
    let mut refused = None;
    for page in (0..SPLIT_PAGES).step_by(2) {
        // SAFETY: nothing refers to the mapping.
        match unsafe { user::protect(base + page * PAGE, PAGE, PROT_READ) } {
            Ok(()) => protected += 1,
            Err(errno) => {
                refused = Some(errno);
                break;
            }
        }
    }
    println!("crash: {protected} pages write-protected one by one, then {refused:?}");
    // SAFETY: as above.
    let unmapped = unsafe { user::unmap(base, SPLIT_PAGES * PAGE) };
    println!("crash: unmapping the split mapping: {unmapped:?}");
}

/// Bytes between the pages `touch_far_apart` touches: a page directory and a
/// page table for each.
const GIB: u64 = 1 << 30;
/// Bytes of the mapping `touch_far_apart` touches in.
const FAR: u64 = 1 << 45;

/// Touches one page every GiB of a 32 TiB mapping: few pages, but two page
/// tables each, until the machine runs out of frames for tables. The kernel
/// must kill the process, not fail its own allocation.
pub fn touch_far_apart() {
    let Ok(base) = user::map_anonymous(FAR, PROT_READ | PROT_WRITE) else {
        println!("crash: no 32 TiB mapping");
        return;
    };
    for offset in (0..FAR).step_by(GIB as usize) {
        // SAFETY: a word of the mapping, which nothing else uses.
        unsafe { core::ptr::write_volatile((base + offset) as *mut u64, offset) };
    }
    println!("crash: {} pages touched a GiB apart", FAR / GIB);
}
