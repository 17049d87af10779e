//! Page faults: rebuilding translations through the portable VM.
//!
//! Page tables are a cache, so most page faults are not errors: the VM resolves
//! them ([`Vm::fault`](crate::vm::Vm::fault)) by zero-filling, copying on write,
//! or making a forgotten translation again (a rebuild fault, counted apart by the
//! VM). Only a fault the VM refuses is an error, and what happens then depends on
//! who faulted:
//! - kernel mode inside a user-memory accessor: the accessor returns the error
//!   (`user_memory`);
//! - user mode: the process dies (processes come later; until then it is fatal);
//! - kernel mode anywhere else: a kernel bug, a panic with the full report.

use core::fmt;
use x86_64::structures::idt::PageFaultErrorCode;

use crate::memory;
use crate::vm::{Access, USER_END, USER_START, VirtAddr, VmError};

/// Kernel heap a fault may need (one entry of a page tree, with margin).
const FAULT_HEAP: usize = 4096;

/// Why a page fault could not be resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// The address is not a user address (or the page tables are corrupt).
    NotUserAddress,
    /// The VM does not exist yet, or no address space is active.
    NoAddressSpace,
    /// The fault interrupted code holding the VM lock: the kernel touched user
    /// memory while holding it.
    VmLockHeld,
    /// The VM refused the access.
    Refused(VmError),
}

impl fmt::Display for Unresolved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unresolved::NotUserAddress => f.write_str("not a user address"),
            Unresolved::NoAddressSpace => f.write_str("no address space is active"),
            Unresolved::VmLockHeld => f.write_str("VM lock held while touching user memory"),
            Unresolved::Refused(error) => write!(f, "VM: {error}"),
        }
    }
}

/// The access a page-fault error code describes.
fn access_of(code: PageFaultErrorCode) -> Access {
    if code.contains(PageFaultErrorCode::INSTRUCTION_FETCH) {
        Access::Execute
    } else if code.contains(PageFaultErrorCode::CAUSED_BY_WRITE) {
        Access::Write
    } else {
        Access::Read
    }
}

/// Resolves a page fault at `address` through the VM of the active space. In
/// chaos mode, every few faults first discard the space's unpinned translations.
pub fn resolve(address: u64, code: PageFaultErrorCode) -> Result<(), Unresolved> {
    let user = (USER_START..USER_END).contains(&address);
    if !user || code.contains(PageFaultErrorCode::MALFORMED_TABLE) {
        return Err(Unresolved::NotUserAddress);
    }
    let resolved = memory::try_with_vm(|vm| {
        let space = vm.active().ok_or(Unresolved::NoAddressSpace)?;
        // A fault may insert into a page tree: refuse it (the process dies, the
        // kernel lives) rather than let the heap run dry inside the VM.
        if !memory::heap_room_or_reclaim(vm, FAULT_HEAP) {
            return Err(Unresolved::Refused(vm.refuse_fault_for_memory()));
        }
        if vm.mmu_mut().chaos_due() {
            vm.discard(space).map_err(Unresolved::Refused)?;
        }
        vm.fault(space, VirtAddr(address), access_of(code)).map_err(Unresolved::Refused)
    });
    match resolved {
        Some(result) => result,
        None if memory::VM.is_locked() => Err(Unresolved::VmLockHeld),
        None => Err(Unresolved::NoAddressSpace),
    }
}

/// Where a kernel-mode fault resumes, if the VM refused it and its
/// instruction is a user-memory accessor's access (which resumes at
/// `resume`, from `user_memory::resume_for`): the accessor then returns the
/// VM's error.
pub fn recovery_point(resume: Option<u64>, unresolved: Unresolved) -> Option<u64> {
    match (resume, unresolved) {
        (Some(resume), Unresolved::Refused(error)) => {
            super::user_memory::refuse(error);
            Some(resume)
        }
        _ => None,
    }
}
