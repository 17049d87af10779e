//! Kernel access to user memory that survives faults the VM cannot resolve.
//!
//! The kernel reads and writes user pages through the active address space's
//! translations, and only here: with SMAP on (`cpu`), each accessor sets
//! RFLAGS.AC (`stac`) for its one access and clears it (`clac`) on both paths
//! out, and a kernel-mode fault on a user address outside an accessor is a
//! kernel bug (the page-fault handler panics rather than resolve it). A missing translation is just a page fault that
//! the VM resolves; but an address the VM refuses (unmapped, or not allowed)
//! must become an error for the caller, not a kernel panic. Each accessor
//! announces a *recovery point* before its one access (BSD's `pcb_onfault`); the
//! page-fault handler, when the VM refuses a kernel-mode fault on a user address
//! while a recovery point is set, records the VM's error and resumes there.
//!
//! Accessors must be called without the VM lock held (the fault handler needs
//! it), and touch one naturally aligned word, so one access faults at most once
//! per page.

use core::arch::asm;
use core::sync::atomic::{AtomicU64, Ordering};
use spin::Mutex;

use crate::vm::{USER_END, USER_START, VirtAddr, VmError};

/// Where the current accessor resumes after a refused fault (0: none).
static RECOVERY: AtomicU64 = AtomicU64::new(0);
/// Why the last refused fault was refused.
static REFUSAL: Mutex<Option<VmError>> = Mutex::new(None);

/// Called by the page-fault handler for a refused kernel-mode fault on a user
/// address: the address to resume at, if an accessor is running.
pub(super) fn recover(error: VmError) -> Option<u64> {
    let resume = RECOVERY.swap(0, Ordering::SeqCst);
    if resume == 0 {
        return None;
    }
    *REFUSAL.lock() = Some(error);
    Some(resume)
}

/// Whether a user-memory accessor is between its recovery point and its access
/// (the only place a kernel-mode fault on a user address is expected).
pub(super) fn accessor_running() -> bool {
    RECOVERY.load(Ordering::SeqCst) != 0
}

/// Checks that `address` is a user address of an aligned 8-byte word.
fn check(address: VirtAddr) -> Result<u64, VmError> {
    let address = address.value();
    if !(USER_START..USER_END - 8).contains(&address) || !address.is_multiple_of(8) {
        return Err(VmError::BadAddress);
    }
    Ok(address)
}

/// The error of the fault an accessor just recovered from.
fn refusal() -> VmError {
    REFUSAL.lock().take().expect("user_memory: recovered without a refusal")
}

/// Reads the word at user address `address` of the active space.
pub fn read_u64(address: VirtAddr) -> Result<u64, VmError> {
    let address = check(address)?;
    let value: u64;
    let failed: u64;
    // SAFETY: `address` is an aligned user address (checked), and the kernel
    // half, where Rust objects live, is out of its reach. If the VM cannot make
    // the access valid, the fault handler resumes at label 2 with every register
    // as it was at the load, and the recovery point is cleared on both paths.
    // `stac`/`clac` run only when SMAP is on (they are #UD without it), and AC is
    // clear again on both paths out.
    unsafe {
        asm!(
            "lea {scratch}, [rip + 2f]",
            "mov qword ptr [{recovery}], {scratch}",
            "test {smap:l}, {smap:l}",
            "jz 4f",
            "stac",
            "4:",
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
            "mov qword ptr [{recovery}], 0",
            address = in(reg) address,
            smap = in(reg) u64::from(super::cpu::smap()),
            recovery = in(reg) RECOVERY.as_ptr(),
            scratch = out(reg) _,
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
    // Rust object, with the recovery point covering the one store.
    unsafe {
        asm!(
            "lea {scratch}, [rip + 2f]",
            "mov qword ptr [{recovery}], {scratch}",
            "test {smap:l}, {smap:l}",
            "jz 4f",
            "stac",
            "4:",
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
            "mov qword ptr [{recovery}], 0",
            address = in(reg) address,
            smap = in(reg) u64::from(super::cpu::smap()),
            value = in(reg) value,
            recovery = in(reg) RECOVERY.as_ptr(),
            scratch = out(reg) _,
            failed = out(reg) failed,
            options(nostack),
        );
    }
    if failed != 0 { Err(refusal()) } else { Ok(()) }
}
