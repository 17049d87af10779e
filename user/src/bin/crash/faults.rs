//! Instructions user mode may not run, or not that way: one function each.
//! Each does the forbidden thing and returns only if the processor and the
//! kernel let it pass.

use core::arch::asm;

use user::println;

use crate::NON_CANONICAL;

/// The kernel's code segment selector (the GDT's first entry after null).
const KERNEL_CODE: u64 = 0x08;
/// A port with a device behind it (the PS/2 controller's data port).
const PORT: u16 = 0x60;
/// The EFER model-specific register.
const EFER: u32 = 0xc000_0080;

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

/// `int1` (`icebp`): a debug exception that, unlike `int3`, no gate's
/// privilege level stops.
pub fn icebp() {
    // SAFETY: traps; nothing is changed if it returns.
    unsafe { asm!(".byte 0xf1", options(nomem, nostack)) };
}

/// `ud2` with a non-canonical stack pointer: the exception must come in on
/// the kernel's stack (the TSS's), whatever the user's holds.
pub fn undefined_opcode_with_a_non_canonical_stack() {
    // SAFETY: traps at `ud2`; the stack pointer is never used again.
    unsafe { asm!("mov rsp, {}", "ud2", in(reg) NON_CANONICAL, options(noreturn)) };
}
