//! Processor protections the kernel turns on where the CPU has them.
//!
//! - **SMEP** (CR4 bit 20): the kernel faults if it ever executes a user page, so
//!   a kernel bug cannot be turned into running code a process wrote.
//! - **SMAP** (CR4 bit 21): the kernel faults if it reads or writes a user page
//!   outside the user-memory accessors, which bracket their one access with
//!   `stac`/`clac` (`user_memory`). A pointer a process passed can then only be
//!   followed on purpose.
//! - **UMIP** (CR4 bit 11): `sgdt`, `sidt`, `sldt`, `smsw` and `str` are
//!   privileged, so a process cannot learn where the kernel keeps its tables.
//!
//! Upper-level page-table entries of the user half allow user access (and
//! writes) and leave the decision to the leaf: the processor grants user access
//! only if every level does, so this adds no right a leaf does not give, and
//! kernel addresses are never under a user-accessible upper entry (the user half
//! is P4 slots 0..256 only). With SMEP and SMAP the leaf's user bit is also what
//! keeps the kernel out, so nothing depends on upper entries either way.
//!
//! QEMU's TCG implements all three (the runner offers them with
//! `-cpu qemu64,+smep,+smap,+umip`); Bochs's Haswell model has SMEP only.

use core::sync::atomic::{AtomicBool, Ordering};
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

/// CPUID leaf 7, EBX: SMEP.
const LEAF7_EBX_SMEP: u32 = 1 << 7;
/// CPUID leaf 7, EBX: SMAP.
const LEAF7_EBX_SMAP: u32 = 1 << 20;
/// CPUID leaf 7, ECX: UMIP.
const LEAF7_ECX_UMIP: u32 = 1 << 2;

static SMAP: AtomicBool = AtomicBool::new(false);

/// Which protections are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Protections {
    /// Supervisor-mode execution prevention.
    pub smep: bool,
    /// Supervisor-mode access prevention.
    pub smap: bool,
    /// User-mode instruction prevention.
    pub umip: bool,
}

/// What the processor offers, from CPUID leaf 7.
pub fn offered() -> Protections {
    let max_leaf = core::arch::x86_64::__cpuid(0).eax;
    if max_leaf < 7 {
        return Protections { smep: false, smap: false, umip: false };
    }
    let leaf = core::arch::x86_64::__cpuid_count(7, 0);
    Protections {
        smep: leaf.ebx & LEAF7_EBX_SMEP != 0,
        smap: leaf.ebx & LEAF7_EBX_SMAP != 0,
        umip: leaf.ecx & LEAF7_ECX_UMIP != 0,
    }
}

/// Turns on every protection the processor offers; returns them.
pub fn harden() -> Protections {
    let offered = offered();
    let mut flags = Cr4Flags::empty();
    flags.set(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION, offered.smep);
    flags.set(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION, offered.smap);
    flags.set(Cr4Flags::USER_MODE_INSTRUCTION_PREVENTION, offered.umip);
    // SAFETY: the kernel never executes user pages, touches user pages only
    // through the accessors (which `stac` first when SMAP is on, as recorded
    // below before any process exists), and never uses the UMIP instructions
    // in user mode.
    unsafe { Cr4::update(|cr4| cr4.insert(flags)) };
    SMAP.store(offered.smap, Ordering::SeqCst);
    enabled()
}

/// Turns the caches on if the firmware left them off: BIOS boot can hand over
/// with CR0.CD and CR0.NW set (seen under Bochs), which on a real PC makes
/// every memory access uncached.
pub fn enable_caches() {
    let cr0 = Cr0::read();
    let off = Cr0Flags::CACHE_DISABLE | Cr0Flags::NOT_WRITE_THROUGH;
    if cr0.intersects(off) {
        // SAFETY: clearing CD and NW only re-enables normal write-back caching
        // (the paging attributes still decide per page); the caches are
        // written back and invalidated first, as the manuals ask when the
        // cache mode changes.
        unsafe {
            core::arch::asm!("wbinvd", options(nostack));
            Cr0::write(cr0 - off);
        }
    }
}

/// The protections CR4 has on now.
pub fn enabled() -> Protections {
    let cr4 = Cr4::read();
    Protections {
        smep: cr4.contains(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION),
        smap: cr4.contains(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION),
        umip: cr4.contains(Cr4Flags::USER_MODE_INSTRUCTION_PREVENTION),
    }
}

/// Whether SMAP is on, so that user accesses need `stac`/`clac`.
pub fn smap() -> bool {
    SMAP.load(Ordering::Relaxed)
}
