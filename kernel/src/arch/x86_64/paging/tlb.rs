//! The TLB: which root the processor uses, and forgetting what it cached.
//!
//! With process-context identifiers (CPUID.01H:ECX bit 17, enabled through
//! CR4.PCIDE) every cached translation is tagged with the PCID that was current
//! when it was cached, so loading another root with "no flush" keeps the cached
//! translations of every other PCID: switching back to a retained slot costs no
//! TLB refill. Without PCIDs every CR3 load drops all non-global translations.
//!
//! Invalidation:
//! - one page of the *loaded* root: `invlpg` (it acts on the current PCID);
//! - everything of the loaded root: reload CR3 with the flush bit (PCID) or
//!   plainly (no PCID);
//! - everything of a root that is *not* loaded: deferred — the caller marks the
//!   slot stale and the next [`Tlb::load`] of it flushes its PCID as it switches.
//!   That is the single-context invalidation INVPCID would do, without needing
//!   INVPCID, so this layer never uses that instruction.
//!
//! The kernel half is the same in every root. It loses mappings only when the
//! heap gives pages back, and then every PCID of every processor is flushed
//! (`memory::refill_heap_reserve`); otherwise the per-PCID copies of kernel
//! translations never need flushing.

use x86_64::PhysAddr;
use x86_64::instructions::tlb;
use x86_64::registers::control::{Cr3, Cr3Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::{Efer, EferFlags};
use x86_64::structures::paging::PhysFrame;

use crate::vm::Pfn;

/// CPUID.01H:ECX bit announcing PCIDs.
const CPUID_PCID: u32 = 1 << 17;

/// The machine's TLB controls.
#[derive(Debug)]
pub struct Tlb {
    pcid: bool,
}

impl Tlb {
    /// Turns on what this layer relies on: no-execute pages (EFER.NXE), and PCIDs
    /// when the processor has them.
    pub fn enable() -> Tlb {
        // SAFETY: setting NXE only makes the NX bit meaningful; every existing
        // kernel mapping was built with NX where intended (the bootloader and the
        // heap already rely on it).
        unsafe { Efer::update(|flags| flags.insert(EferFlags::NO_EXECUTE_ENABLE)) };
        let pcid = core::arch::x86_64::__cpuid(1).ecx & CPUID_PCID != 0;
        if pcid {
            let (root, _) = Cr3::read_raw();
            // SAFETY: CR4.PCIDE may be set only while CR3[11:0] is zero, so CR3 is
            // first reloaded with the same root and no flags (nothing changes but a
            // TLB flush); the boot root then runs as PCID 0.
            unsafe {
                Cr3::write(root, Cr3Flags::empty());
                Cr4::update(|flags| flags.insert(Cr4Flags::PCID));
            }
        }
        Tlb { pcid }
    }

    /// Whether translations are tagged with PCIDs.
    pub fn has_pcid(&self) -> bool {
        self.pcid
    }

    /// The root the processor uses now.
    pub fn current_root() -> Pfn {
        Pfn::from_addr(Cr3::read_raw().0.start_address().as_u64())
    }

    /// Makes `root` (tagged `pcid`) the processor's root. With PCIDs, `flush`
    /// drops what was cached under `pcid`; without, every load drops everything.
    /// Returns whether cached translations were dropped.
    ///
    /// `root` must be a complete root of this layer: the kernel half identical to
    /// the boot root's, the user half owned by this layer.
    pub fn load(&self, root: Pfn, pcid: u16, flush: bool) -> bool {
        let frame = PhysFrame::containing_address(PhysAddr::new(root.addr()));
        if self.pcid {
            let pcid = x86_64::instructions::tlb::Pcid::new(pcid).expect("Tlb::load: bad PCID");
            // SAFETY: the kernel half of `root` equals the boot root's (caller's
            // rule), so the kernel keeps running unchanged; PCIDE is on.
            unsafe {
                if flush {
                    Cr3::write_pcid(frame, pcid);
                } else {
                    Cr3::write_pcid_no_flush(frame, pcid);
                }
            }
            flush
        } else {
            // SAFETY: as above; without PCIDs the load drops the whole TLB.
            unsafe { Cr3::write(frame, Cr3Flags::empty()) };
            true
        }
    }

    /// Drops the cached translation of the page at `address` in the loaded root.
    pub fn invalidate_page(&self, address: u64) {
        tlb::flush(x86_64::VirtAddr::new(address));
    }
}
