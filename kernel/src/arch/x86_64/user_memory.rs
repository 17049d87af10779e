//! Kernel access to user memory that survives faults the VM cannot resolve.
//!
//! The kernel reads and writes user pages through the active address space's
//! translations, and only here: with SMAP on (`cpu`), each accessor sets
//! RFLAGS.AC (`stac`) for its one access and clears it (`clac`) on both paths
//! out, and a kernel-mode fault on a user address outside an accessor is a
//! kernel bug (the page-fault handler panics rather than resolve it). A
//! missing translation is just a page fault that the VM resolves; but an
//! address the VM refuses (unmapped, or not allowed) must become an error for
//! the caller, not a kernel panic.
//!
//! Each accessor's one access instruction has an entry in a table of fixups
//! (Linux's exception table): the assembler puts the instruction's address
//! and the place to resume at in the section `user_fixups`, one entry per
//! copy of the accessor the compiler makes. The page-fault handler, when the
//! VM refuses a kernel-mode fault on a user address, looks the faulting
//! instruction up: if it is an accessor's, it records the VM's error for the
//! running processor and resumes at the fixup. Nothing is set or cleared per
//! access, and a fault anywhere else is a kernel bug whatever another
//! processor is doing (a single recovery point set by whichever processor
//! entered an accessor last, as BSD's `pcb_onfault` is per thread, would
//! not know whose fault it was).
//!
//! Accessors must be called without the VM lock held (the fault handler needs
//! it), and touch one naturally aligned word, so one access faults at most once
//! per page.

use core::arch::asm;
use spin::Mutex;

use super::acpi::MAX_CPUS;
use super::smp;
use crate::vm::{USER_END, USER_START, VirtAddr, VmError};

/// One entry of the fixup table: where an accessor's access instruction is
/// and where it resumes after a refused fault, each as an offset from the
/// field itself (so the table needs no relocation wherever the kernel is
/// loaded).
#[repr(C)]
struct Fixup {
    access: i32,
    resume: i32,
}

unsafe extern "C" {
    // The linker's bounds of the section `user_fixups` (a section whose name
    // is a C identifier gets them).
    static __start_user_fixups: Fixup;
    static __stop_user_fixups: Fixup;
}

/// Why each processor's last refused access was refused: set by the fault
/// handler and taken by the accessor it resumes, on that processor.
static REFUSALS: [Mutex<Option<VmError>>; MAX_CPUS] = [const { Mutex::new(None) }; MAX_CPUS];

/// The fixup table.
fn fixups() -> &'static [Fixup] {
    let start = &raw const __start_user_fixups;
    let stop = &raw const __stop_user_fixups;
    // SAFETY: the linker gathers every accessor's entries, and nothing else,
    // into `user_fixups` and bounds it with these two symbols; each entry is
    // the two 4-byte words of a `Fixup`, aligned to 4, written by the
    // assembler and never changed.
    unsafe { core::slice::from_raw_parts(start, stop.offset_from(start) as usize) }
}

/// Where the accessor whose access instruction is at `instruction` resumes
/// after a refused fault; `None` if no accessor's access is there (the only
/// place a kernel-mode fault on a user address is expected).
pub(super) fn resume_for(instruction: u64) -> Option<u64> {
    fixups().iter().find_map(|fixup| {
        let access = &raw const fixup.access as u64;
        let resume = &raw const fixup.resume as u64;
        let access = access.wrapping_add_signed(i64::from(fixup.access));
        (access == instruction).then(|| resume.wrapping_add_signed(i64::from(fixup.resume)))
    })
}

/// Called by the page-fault handler before it resumes an accessor whose
/// access the VM refused: the error that accessor returns, kept for the
/// running processor.
pub(super) fn refuse(error: VmError) {
    *REFUSALS[smp::this_cpu()].lock() = Some(error);
}

/// The fixup table entry of an accessor: its access at label 6 resumes at
/// label 2. `R` (retain) keeps the section through the linker's garbage
/// collection, which sees no reference to it but the bounds.
macro_rules! fixup_entry {
    () => {
        ".pushsection user_fixups, \"aR\"\n.balign 4\n.long 6b - .\n.long 2b - .\n.popsection"
    };
}

/// Checks that `address` is a user address of an aligned 8-byte word.
fn check(address: VirtAddr) -> Result<u64, VmError> {
    let address = address.value();
    if !(USER_START..USER_END - 8).contains(&address) || !address.is_multiple_of(8) {
        return Err(VmError::BadAddress);
    }
    Ok(address)
}

/// The error of the fault an accessor just recovered from, on this processor.
fn refusal() -> VmError {
    REFUSALS[smp::this_cpu()].lock().take().expect("user_memory: recovered without a refusal")
}

/// Reads the word at user address `address` of the active space.
pub fn read_u64(address: VirtAddr) -> Result<u64, VmError> {
    let address = check(address)?;
    let value: u64;
    let failed: u64;
    // SAFETY: `address` is an aligned user address (checked), and the kernel
    // half, where Rust objects live, is out of its reach. If the VM cannot make
    // the access valid, the fault handler finds the load (label 6) in the
    // fixup table and resumes at label 2 with every register as it was at the
    // load. `stac`/`clac` run only when SMAP is on (they are #UD without it),
    // and AC is clear again on both paths out.
    unsafe {
        asm!(
            "test {smap:l}, {smap:l}",
            "jz 4f",
            "stac",
            "4:",
            "6:",
            "mov {value}, qword ptr [{address}]",
            "xor {failed:e}, {failed:e}",
            "jmp 3f",
            "2:",
            "mov {failed:e}, 1",
            "xor {value:e}, {value:e}",
            "3:",
            "test {smap:l}, {smap:l}",
            "jz 5f",
            "clac",
            "5:",
            fixup_entry!(),
            address = in(reg) address,
            smap = in(reg) u64::from(super::cpu::smap()),
            value = out(reg) value,
            failed = out(reg) failed,
            options(nostack),
        );
    }
    if failed != 0 { Err(refusal()) } else { Ok(value) }
}

/// Writes `value` to the word at user address `address` of the active space.
pub fn write_u64(address: VirtAddr, value: u64) -> Result<(), VmError> {
    let address = check(address)?;
    let failed: u64;
    // SAFETY: as in `read_u64`: an aligned user address, out of reach of every
    // Rust object, with a fixup for the one store.
    unsafe {
        asm!(
            "test {smap:l}, {smap:l}",
            "jz 4f",
            "stac",
            "4:",
            "6:",
            "mov qword ptr [{address}], {value}",
            "xor {failed:e}, {failed:e}",
            "jmp 3f",
            "2:",
            "mov {failed:e}, 1",
            "3:",
            "test {smap:l}, {smap:l}",
            "jz 5f",
            "clac",
            "5:",
            fixup_entry!(),
            address = in(reg) address,
            smap = in(reg) u64::from(super::cpu::smap()),
            value = in(reg) value,
            failed = out(reg) failed,
            options(nostack),
        );
    }
    if failed != 0 { Err(refusal()) } else { Ok(()) }
}
