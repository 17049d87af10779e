//! The interrupt descriptor table and the CPU exception handlers.
//!
//! Every exception vector has a handler, and every handler reports the same facts:
//! the vector and its name, the error code if the CPU pushed one, where it happened
//! (RIP, CS, RSP), and for a page fault the faulting address (CR2) with the error
//! code's bits decoded. An exception the kernel cannot handle is a kernel bug, so
//! it becomes a panic carrying that report; the panic handler prints it and, under
//! test, fails the run. Page faults first go to the VM (`page_fault`), which
//! resolves most of them; only the ones it refuses are reported. An exception in
//! user mode is the process's mistake, not the kernel's: it kills that process
//! (with the same report in the log) and the kernel carries on.

use core::fmt;
use spin::LazyLock;
use x86_64::VirtAddr;
use x86_64::registers::control::Cr2;
use x86_64::structures::idt::{InterruptDescriptorTable, InterruptStackFrame, PageFaultErrorCode};

use super::gdt::{DEBUG_IST_INDEX, DOUBLE_FAULT_IST_INDEX, MACHINE_CHECK_IST_INDEX, NMI_IST_INDEX};
use crate::process::backtrace::UserPlace;
use crate::vm::USER_END;

/// What an exception handler knows about the exception it is handling.
#[derive(Debug, Clone, Copy)]
pub struct ExceptionReport {
    /// The vector number (0..32).
    pub vector: u8,
    /// The exception's name in the Intel manual.
    pub name: &'static str,
    /// The error code, for the vectors that push one.
    pub error_code: Option<u64>,
    /// The faulting or next instruction.
    pub rip: u64,
    /// Code segment selector at the time of the exception.
    pub cs: u64,
    /// Stack pointer at the time of the exception.
    pub rsp: u64,
    /// The faulting linear address, for page faults.
    pub cr2: Option<u64>,
    /// The interrupted code's frame pointer, for an exception from user mode
    /// (for the killed process's backtrace).
    pub user_frame_pointer: Option<u64>,
}

impl ExceptionReport {
    fn new(
        vector: u8,
        name: &'static str,
        frame: &InterruptStackFrame,
        error: Option<u64>,
    ) -> Self {
        let rip = frame.instruction_pointer.as_u64();
        let cs = u64::from(frame.code_segment.0);
        let user_frame_pointer = match cs & 3 {
            3 => super::backtrace::user_frame_pointer(rip, cs),
            _ => None,
        };
        ExceptionReport {
            vector,
            name,
            error_code: error,
            rip,
            cs,
            rsp: frame.stack_pointer.as_u64(),
            cr2: None,
            user_frame_pointer,
        }
    }

    /// Whether the exception came from user mode (ring 3).
    pub fn from_user(&self) -> bool {
        self.cs & 3 == 3
    }

    /// Where the user code was, for the killed process's backtrace.
    pub fn user_place(&self) -> Option<UserPlace> {
        let place = UserPlace { rip: self.rip, frame_pointer: self.user_frame_pointer };
        self.from_user().then_some(place)
    }
}

impl fmt::Display for ExceptionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (vector {})", self.name, self.vector)?;
        if let Some(code) = self.error_code {
            write!(f, " error={code:#x}")?;
        }
        if let (Some(cr2), Some(code)) = (self.cr2, self.error_code) {
            let bits = PageFaultErrorCode::from_bits_truncate(code);
            write!(f, " cr2={cr2:#x} [{}]", PageFaultBits(bits))?;
        }
        write!(f, " rip={:#x} cs={:#x} rsp={:#x}", self.rip, self.cs, self.rsp)
    }
}

/// The page-fault error code in words.
struct PageFaultBits(PageFaultErrorCode);

impl fmt::Display for PageFaultBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = self.0;
        let present = if bits.contains(PageFaultErrorCode::PROTECTION_VIOLATION) {
            "protection"
        } else {
            "not-present"
        };
        let access = if bits.contains(PageFaultErrorCode::INSTRUCTION_FETCH) {
            "fetch"
        } else if bits.contains(PageFaultErrorCode::CAUSED_BY_WRITE) {
            "write"
        } else {
            "read"
        };
        let mode = if bits.contains(PageFaultErrorCode::USER_MODE) { "user" } else { "kernel" };
        write!(f, "{present} {access} {mode}")?;
        if bits.contains(PageFaultErrorCode::MALFORMED_TABLE) {
            f.write_str(" reserved-bit")?;
        }
        if bits.contains(PageFaultErrorCode::PROTECTION_KEY) {
            f.write_str(" pkey")?;
        }
        Ok(())
    }
}

/// Handles an exception nobody can recover from.
fn fatal(report: &ExceptionReport) -> ! {
    panic!("EXCEPTION: {report}");
}

/// Handles an exception: kills the running process if it came from user mode,
/// else it is fatal.
fn exception(report: &ExceptionReport) {
    if report.from_user() {
        super::kernel_lock::lock();
        crate::process::kill_current(format_args!("{report}"), report.user_place());
    }
    fatal(report);
}

/// Defines a handler for a vector without an error code.
macro_rules! handler {
    ($fn_name:ident, $vector:expr, $name:expr) => {
        extern "x86-interrupt" fn $fn_name(frame: InterruptStackFrame) {
            exception(&ExceptionReport::new($vector, $name, &frame, None));
        }
    };
}

/// Defines a handler for a vector that pushes an error code.
macro_rules! handler_with_error {
    ($fn_name:ident, $vector:expr, $name:expr) => {
        extern "x86-interrupt" fn $fn_name(frame: InterruptStackFrame, code: u64) {
            exception(&ExceptionReport::new($vector, $name, &frame, Some(code)));
        }
    };
}

handler!(divide_error, 0, "DIVIDE ERROR");
handler!(overflow, 4, "OVERFLOW");
handler!(bound_range_exceeded, 5, "BOUND RANGE EXCEEDED");
handler!(invalid_opcode, 6, "INVALID OPCODE");
handler!(device_not_available, 7, "DEVICE NOT AVAILABLE");
handler_with_error!(invalid_tss, 10, "INVALID TSS");
handler_with_error!(segment_not_present, 11, "SEGMENT NOT PRESENT");
handler_with_error!(stack_segment_fault, 12, "STACK-SEGMENT FAULT");
handler_with_error!(general_protection_fault, 13, "GENERAL PROTECTION FAULT");
handler!(x87_floating_point, 16, "X87 FLOATING-POINT ERROR");
handler_with_error!(alignment_check, 17, "ALIGNMENT CHECK");
handler!(simd_floating_point, 19, "SIMD FLOATING-POINT EXCEPTION");
handler!(virtualization, 20, "VIRTUALIZATION EXCEPTION");
handler_with_error!(cp_protection, 21, "CONTROL PROTECTION EXCEPTION");
handler!(hv_injection, 28, "HYPERVISOR INJECTION EXCEPTION");
handler_with_error!(vmm_communication, 29, "VMM COMMUNICATION EXCEPTION");
handler_with_error!(security, 30, "SECURITY EXCEPTION");

/// `int3`: in the kernel, a report and carry on (a debugging aid); in user mode,
/// like any other trap, the end of the process (no debugger exists to take it).
extern "x86-interrupt" fn breakpoint(frame: InterruptStackFrame) {
    let report = ExceptionReport::new(3, "BREAKPOINT", &frame, None);
    if report.from_user() {
        super::kernel_lock::lock();
        crate::process::kill_current(format_args!("{report}"), report.user_place());
    }
    log::info!("{report}");
}

/// `#DB`. From user mode (the trap flag set by the program) it kills the
/// process. In the kernel, one case is expected: a `syscall` made with the trap
/// flag set traps after the instruction, at the entry's first instruction, with
/// the user's stack still loaded (this handler has its own stack for that);
/// SFMASK has already cleared the flag, so the entry just carries on. Any other
/// kernel debug exception is fatal.
extern "x86-interrupt" fn debug(frame: InterruptStackFrame) {
    let report = ExceptionReport::new(1, "DEBUG", &frame, None);
    let entry = super::context::syscall_entry as *const () as u64;
    if !report.from_user() && report.rip == entry {
        return;
    }
    exception(&report);
}

/// An NMI is the machine's, not the interrupted code's: reported, never fatal
/// to a process, unless another processor is stopping this one (a panic,
/// see `smp::stop_others`). It runs on a stack of its own (it may arrive
/// while `syscall` still runs on the user's stack).
extern "x86-interrupt" fn non_maskable_interrupt(frame: InterruptStackFrame) {
    super::smp::stop_if_told();
    let report = ExceptionReport::new(2, "NON-MASKABLE INTERRUPT", &frame, None);
    log::warn!("{report}");
}

extern "x86-interrupt" fn double_fault(frame: InterruptStackFrame, code: u64) -> ! {
    let report = ExceptionReport::new(8, "DOUBLE FAULT", &frame, Some(code));
    // Most often a page fault that could not be delivered because the kernel ran
    // off its stack into the unmapped guard below it: the fault's address (still
    // in CR2) is then right under the stack pointer.
    let address = Cr2::read_raw();
    let below = frame.stack_pointer.as_u64().wrapping_sub(address);
    if below <= 4096 {
        panic!("EXCEPTION: {report}: kernel stack overflow (guard page hit at {address:#x})");
    }
    fatal(&report)
}

extern "x86-interrupt" fn machine_check(frame: InterruptStackFrame) -> ! {
    fatal(&ExceptionReport::new(18, "MACHINE CHECK", &frame, None))
}

extern "x86-interrupt" fn page_fault(mut frame: InterruptStackFrame, code: PageFaultErrorCode) {
    let address = Cr2::read_raw();
    // The report is made only for a fault that is not resolved: most are.
    let report = |frame: &InterruptStackFrame| {
        let mut report = ExceptionReport::new(14, "PAGE FAULT", frame, Some(code.bits()));
        report.cr2 = Some(address);
        report
    };
    let from_user = frame.code_segment.rpl() == x86_64::PrivilegeLevel::Ring3;
    // Given back on the return to user mode (a kill never returns).
    let _kernel = super::kernel_lock::FromUser::enter(from_user);
    if from_user && !code.contains(PageFaultErrorCode::USER_MODE) {
        // A supervisor-mode access made on the program's behalf (QEMU's TCG,
        // for one, pops an `iretq` frame that way, which SMAP then refuses on
        // a user stack): mapping the page again cannot help, and returning
        // would fault forever.
        let report = report(&frame);
        crate::process::kill_current(
            format_args!("{report}: supervisor access from user mode"),
            report.user_place(),
        );
    }
    // Where to resume if the kernel faulted in a user-memory accessor.
    let resume = if from_user {
        None
    } else {
        super::user_memory::resume_for(frame.instruction_pointer.as_u64())
    };
    let accessor = resume.is_some();
    if !from_user && address < USER_END && !accessor {
        // The kernel itself touched (or, under SMEP, ran) a user page: never
        // resolve it, or a user pointer followed by mistake would just work.
        let report = report(&frame);
        panic!("EXCEPTION: {report}: kernel access to user memory outside an accessor");
    }
    let Err(unresolved) = super::page_fault::resolve(address, code) else { return };
    // Out of memory with nothing left to reclaim, in a program or in a
    // kernel copy on its behalf: if a larger process went, its memory is
    // free, so the access is tried again.
    let accessing = from_user || accessor;
    if accessing
        && unresolved == super::page_fault::Unresolved::Refused(crate::vm::VmError::OutOfMemory)
        && let crate::process::Verdict::Retry = crate::process::out_of_memory()
    {
        return;
    }
    let report = report(&frame);
    if from_user {
        crate::process::kill_current(format_args!("{report}: {unresolved}"), report.user_place());
    }
    if let Some(resume) = super::page_fault::recovery_point(resume, unresolved) {
        // SAFETY: `resume` is the recovery label of the user-memory accessor that
        // faulted, which expects to continue there with the registers it had at
        // the faulting access; the handler's return restores exactly those.
        unsafe { frame.as_mut().update(|value| value.instruction_pointer = VirtAddr::new(resume)) };
        return;
    }
    panic!("EXCEPTION: {report}: {unresolved}");
}

static IDT: LazyLock<InterruptDescriptorTable> = LazyLock::new(|| {
    let mut idt = InterruptDescriptorTable::new();
    idt.divide_error.set_handler_fn(divide_error);
    let debug_entry = idt.debug.set_handler_fn(debug);
    // SAFETY: a stack of its own, set by `gdt::init` before interrupts can occur.
    unsafe { debug_entry.set_stack_index(DEBUG_IST_INDEX) };
    let nmi_entry = idt.non_maskable_interrupt.set_handler_fn(non_maskable_interrupt);
    // SAFETY: as for the double fault below: a stack of its own, set by
    // `gdt::init` before interrupts can occur.
    unsafe { nmi_entry.set_stack_index(NMI_IST_INDEX) };
    idt.breakpoint.set_handler_fn(breakpoint);
    idt.overflow.set_handler_fn(overflow);
    idt.bound_range_exceeded.set_handler_fn(bound_range_exceeded);
    idt.invalid_opcode.set_handler_fn(invalid_opcode);
    idt.device_not_available.set_handler_fn(device_not_available);
    let double_fault_entry = idt.double_fault.set_handler_fn(double_fault);
    // SAFETY: the IST slot is set up by `gdt::init` with a stack used by nothing
    // else, and the GDT (with its TSS) is loaded before interrupts can occur.
    unsafe { double_fault_entry.set_stack_index(DOUBLE_FAULT_IST_INDEX) };
    idt.invalid_tss.set_handler_fn(invalid_tss);
    idt.segment_not_present.set_handler_fn(segment_not_present);
    idt.stack_segment_fault.set_handler_fn(stack_segment_fault);
    idt.general_protection_fault.set_handler_fn(general_protection_fault);
    idt.page_fault.set_handler_fn(page_fault);
    idt.x87_floating_point.set_handler_fn(x87_floating_point);
    idt.alignment_check.set_handler_fn(alignment_check);
    let machine_check_entry = idt.machine_check.set_handler_fn(machine_check);
    // SAFETY: as for the double fault: a stack of its own, set by `gdt::init`.
    unsafe { machine_check_entry.set_stack_index(MACHINE_CHECK_IST_INDEX) };
    idt.simd_floating_point.set_handler_fn(simd_floating_point);
    idt.virtualization.set_handler_fn(virtualization);
    idt.cp_protection_exception.set_handler_fn(cp_protection);
    idt.hv_injection_exception.set_handler_fn(hv_injection);
    idt.vmm_communication_exception.set_handler_fn(vmm_communication);
    idt.security_exception.set_handler_fn(security);
    super::interrupts::install(&mut idt);
    idt
});

/// Loads the IDT. Must run after `gdt::init` (the double-fault IST).
pub fn init() {
    IDT.load();
}
