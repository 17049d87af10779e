//! Entering and leaving user mode: `syscall`/`sysret`, the trap frame, and the
//! kernel-stack switch between tasks.
//!
//! # System calls
//! `syscall` jumps to [`syscall_entry`] in ring 0 with every flag in SFMASK
//! cleared: interrupts masked, and nothing the user left in RFLAGS (NT, which
//! would make the kernel's next `iretq` fault; DF, TF, AC, IOPL, RF, ID; the
//! arithmetic flags) reaches the kernel. It is still on the user's stack. The entry switches to
//! the running task's kernel stack: each processor's top is kept in its
//! [`EntryArea`] (set by [`set_kernel_stack`] together with its TSS's `rsp0`),
//! which IA32_KERNEL_GS_BASE points to. The entry reaches it with `swapgs`,
//! saves the user's stack pointer there, loads the kernel stack, and swaps
//! back at once: the kernel never uses GS otherwise, so nothing a program does
//! to its GS base matters to it, and no other entry needs a `swapgs` (an NMI,
//! machine check or debug exception in that window runs on its own stack and
//! does not use GS either). It then saves every
//! general-purpose register there as a [`TrapFrame`], and calls the kernel's
//! handler with it. [`return_to_user`] restores the frame and leaves with
//! `sysretq`, after [`dispatch`] has checked that the return address is a
//! user address: `sysret` to a non-canonical RIP faults in ring 0 with the
//! user's stack pointer already loaded on Intel processors (CVE-2012-0217), so
//! such a return kills the process instead. (`USER_END` stops a page short of
//! the canonical boundary, so no `syscall` can leave such an address; the check
//! keeps it so should a handler ever set one.) System calls run with interrupts disabled from start to end, so the
//! kernel is never preempted; a call that blocks switches task explicitly.
//!
//! # Task switch
//! Every task has a kernel stack; [`switch`] saves the callee-saved registers on
//! the current one, stores its stack pointer, and resumes the other task where
//! it last called `switch` (or, for a new process, at [`return_to_user`] with a
//! prepared frame). It must be called with interrupts disabled.

use core::arch::naked_asm;
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::VirtAddr;
use x86_64::registers::model_specific::{Efer, EferFlags, KernelGsBase, LStar, SFMask, Star};
use x86_64::registers::rflags::RFlags;

use super::acpi::MAX_CPUS;
use super::gdt;

/// The user's registers at a system call, as saved on the kernel stack.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TrapFrame {
    /// General-purpose registers, in the order [`syscall_entry`] pushes them
    /// (last pushed first).
    pub r15: u64,
    #[allow(missing_docs)]
    pub r14: u64,
    #[allow(missing_docs)]
    pub r13: u64,
    #[allow(missing_docs)]
    pub r12: u64,
    /// Holds the user's RFLAGS at `syscall`.
    pub r11: u64,
    /// Fourth argument.
    pub r10: u64,
    /// Sixth argument.
    pub r9: u64,
    /// Fifth argument.
    pub r8: u64,
    #[allow(missing_docs)]
    pub rbp: u64,
    /// First argument.
    pub rdi: u64,
    /// Second argument.
    pub rsi: u64,
    /// Third argument.
    pub rdx: u64,
    /// Holds the user's return address at `syscall`.
    pub rcx: u64,
    #[allow(missing_docs)]
    pub rbx: u64,
    /// The call number on entry, the result on return.
    pub rax: u64,
    /// Where user mode resumes.
    pub rip: u64,
    /// The user's RFLAGS on return.
    pub rflags: u64,
    /// The user's stack pointer.
    pub rsp: u64,
}

/// Flags a user program may set: CF, PF, AF, ZF, SF, DF, OF. IF is always set.
const USER_FLAGS: u64 = 0b1100_1101_0101;
/// RFLAGS of a new program: IF and the always-one bit 1.
pub const INITIAL_FLAGS: u64 = 0x202;

impl TrapFrame {
    /// A frame that starts user code at `entry` with `stack` and `argument` in rdi.
    pub fn start(entry: u64, stack: u64, argument: u64) -> TrapFrame {
        TrapFrame {
            rip: entry,
            rsp: stack,
            rdi: argument,
            rflags: INITIAL_FLAGS,
            ..Default::default()
        }
    }

    /// Keeps the flags the user may control, and interrupts enabled.
    pub fn sanitize_flags(&mut self) {
        self.rflags = (self.rflags & USER_FLAGS) | INITIAL_FLAGS;
    }
}

/// What `syscall_entry` needs of the processor it runs on, reached through
/// IA32_KERNEL_GS_BASE: the running task's kernel stack top, and a word for
/// the user's stack pointer while the entry saves it.
#[repr(C)]
pub struct EntryArea {
    kernel_stack: AtomicU64,
    user_stack: AtomicU64,
}

/// Offsets of [`EntryArea`]'s fields, for the entry's assembly.
const KERNEL_STACK_OFFSET: usize = 0;
const USER_STACK_OFFSET: usize = 8;

/// Each processor's entry area, by index (`smp::this_cpu`).
static ENTRY_AREAS: [EntryArea; MAX_CPUS] =
    [const { EntryArea { kernel_stack: AtomicU64::new(0), user_stack: AtomicU64::new(0) } };
        MAX_CPUS];

/// The kernel's system-call handler: gets the frame, leaves the result in `rax`.
type Handler = extern "C" fn(&mut TrapFrame);
static HANDLER: AtomicU64 = AtomicU64::new(0);

/// Turns on `syscall`/`sysret` with `handler` as the kernel side, on the boot
/// processor. The GDT must be loaded (its order is what STAR needs).
pub fn init(handler: Handler) {
    HANDLER.store(handler as usize as u64, Ordering::SeqCst);
    init_processor(0);
}

/// Turns on `syscall`/`sysret` on processor `cpu` (the running one), whose
/// entry area is `ENTRY_AREAS[cpu]`.
pub fn init_processor(cpu: usize) {
    KernelGsBase::write(VirtAddr::from_ptr(&ENTRY_AREAS[cpu]));
    let selectors = gdt::selectors();
    Star::write(
        selectors.user_code,
        selectors.user_data,
        selectors.kernel_code,
        selectors.kernel_data,
    )
    .expect("context::init: GDT order does not suit sysret");
    LStar::write(VirtAddr::new(syscall_entry as *const () as u64));
    // Every flag, as Linux does: the kernel starts from a known RFLAGS.
    SFMask::write(RFlags::all());
    // SAFETY: enabling SCE only makes `syscall` usable; LSTAR, STAR and SFMASK
    // were set just above.
    unsafe { Efer::update(|flags| flags.insert(EferFlags::SYSTEM_CALL_EXTENSIONS)) };
}

/// Makes `top` the running processor's kernel stack for entries from user
/// mode (system calls, and interrupts through its TSS). Call with interrupts
/// disabled.
pub fn set_kernel_stack(top: u64) {
    let cpu = super::smp::this_cpu();
    ENTRY_AREAS[cpu].kernel_stack.store(top, Ordering::SeqCst);
    gdt::set_privilege_stack(cpu, top);
}

/// Calls the registered handler (the indirection keeps the entry in this module).
extern "C" fn dispatch(frame: &mut TrapFrame) {
    // Given back by `return_to_user`.
    super::kernel_lock::lock();
    let handler = HANDLER.load(Ordering::Relaxed);
    assert_ne!(handler, 0, "dispatch: system call before context::init");
    // SAFETY: HANDLER only ever holds a `Handler` stored by `init`.
    let handler: Handler = unsafe { core::mem::transmute(handler as usize) };
    frame.sanitize_flags();
    handler(frame);
    if frame.rip >= crate::vm::USER_END {
        // The chain from the program's RBP shows who made the call.
        let place =
            crate::process::backtrace::UserPlace { rip: frame.rip, frame_pointer: Some(frame.rbp) };
        crate::process::kill_current(
            format_args!("system call would return to {:#x}, outside user space", frame.rip),
            Some(place),
        );
    }
}

/// Where `syscall` lands (LSTAR): saves a [`TrapFrame`] on the kernel stack,
/// calls [`dispatch`], and returns through [`return_to_user`].
#[unsafe(naked)]
pub extern "C" fn syscall_entry() {
    naked_asm!(
        "swapgs",
        "mov gs:[{user_stack}], rsp",
        "mov rsp, gs:[{kernel_stack}]",
        "push qword ptr gs:[{user_stack}]",
        "swapgs",
        "push r11",
        "push rcx",
        "push rax",
        "push rbx",
        "push rcx",
        "push rdx",
        "push rsi",
        "push rdi",
        "push rbp",
        "push r8",
        "push r9",
        "push r10",
        "push r11",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov rdi, rsp",
        "call {dispatch}",
        "jmp {leave}",
        user_stack = const USER_STACK_OFFSET,
        kernel_stack = const KERNEL_STACK_OFFSET,
        dispatch = sym dispatch,
        leave = sym return_to_user,
    )
}

/// Gives back the kernel lock, restores the [`TrapFrame`] at the stack
/// pointer and returns to user mode. Entered by a jump (from
/// [`syscall_entry`]) or by [`switch`]'s `ret` into a new process, with
/// interrupts disabled and the kernel lock held.
#[unsafe(naked)]
pub extern "C" fn return_to_user() {
    naked_asm!(
        // The frame starts 16-byte aligned, so the call sees the ABI's alignment.
        "call {unlock}",
        "pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
        "pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx", "pop rax", "pop rcx",
        "pop r11", "pop rsp", "sysretq",
        unlock = sym super::kernel_lock::unlock_for_user,
    )
}

/// Saves the callee-saved registers and the stack pointer to `*save`, then
/// resumes the task whose stack pointer is `next`.
///
/// # Safety
/// Interrupts must be disabled; `save` must be writable; `next` must be a stack
/// pointer saved by `switch` (or laid out by [`prepare_stack`]) of a task that is
/// not running, whose stack is still mapped.
#[unsafe(naked)]
pub unsafe extern "C" fn switch(save: *mut u64, next: u64) {
    naked_asm!(
        "push rbp",
        "push rbx",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov [rdi], rsp",
        "mov rsp, rsi",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbx",
        "pop rbp",
        "ret",
    )
}

/// Words [`switch`] pops before returning: six registers and the return address.
const SWITCH_WORDS: usize = 7;

/// Lays out a new task's kernel stack below `top` so that [`switch`] to the
/// returned stack pointer enters user mode with `frame`; returns the pointer.
///
/// # Safety
/// `[top - 256, top)` must be writable memory of a stack no task is running on.
pub unsafe fn prepare_stack(top: u64, frame: &TrapFrame) -> u64 {
    let frame_address = top - size_of::<TrapFrame>() as u64;
    let stack = frame_address - (SWITCH_WORDS * 8) as u64;
    let words = stack as *mut u64;
    // SAFETY: the caller gives the memory below `top`; the frame and the seven
    // words fit in 256 bytes (18 + 7 words).
    unsafe {
        (frame_address as *mut TrapFrame).write(*frame);
        for index in 0..SWITCH_WORDS - 1 {
            words.add(index).write(0);
        }
        words.add(SWITCH_WORDS - 1).write(return_to_user as *const () as u64);
    }
    stack
}

/// The frame a task's system call saved, at the top of its kernel stack `top`.
pub fn frame_at(top: u64) -> *mut TrapFrame {
    (top - size_of::<TrapFrame>() as u64) as *mut TrapFrame
}
