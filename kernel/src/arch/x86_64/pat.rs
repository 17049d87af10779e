//! Write-combining for the framebuffer, through the page attribute table.
//!
//! Video memory is uncached by default, so every pixel store is a bus
//! transaction; write-combining lets the CPU merge them into bursts, which is what
//! makes a full-screen copy fast on real hardware. The PAT's entry 1 (selected by
//! PWT=1, PCD=0, PAT=0) is write-through after reset; this module makes it
//! write-combining and sets PWT on the framebuffer's pages. (Under QEMU's TCG
//! memory types have no effect; this matters on hardware.)

use x86_64::VirtAddr;
use x86_64::registers::model_specific::Msr;
use x86_64::structures::paging::mapper::{MappedFrame, TranslateResult};
use x86_64::structures::paging::{Mapper, Page, PageTableFlags, Size2MiB, Size4KiB, Translate};

/// IA32_PAT.
const PAT_MSR: u32 = 0x277;
/// Memory type "write-combining" in a PAT entry.
const WRITE_COMBINING: u64 = 0x01;

/// Whether the CPU has a PAT (CPUID.01H:EDX bit 16).
fn has_pat() -> bool {
    let features = core::arch::x86_64::__cpuid(1);
    features.edx & (1 << 16) != 0
}

/// Makes PAT entry 1 write-combining. Entry 1 is otherwise unused: every other
/// mapping of the kernel has PWT clear.
fn program_pat() {
    let mut pat = Msr::new(PAT_MSR);
    // SAFETY: changing entry 1 affects only pages with PWT=1, PCD=0, PAT=0, which
    // no mapping had before; the other entries keep their reset values.
    unsafe {
        let value = pat.read();
        pat.write((value & !(0xff << 8)) | (WRITE_COMBINING << 8));
    }
}

/// Maps `start..start + len` (the framebuffer) write-combining; returns the
/// number of pages changed, or 0 without a PAT.
pub fn map_write_combining(start: u64, len: u64) -> u64 {
    if !has_pat() {
        return 0;
    }
    program_pat();
    let mut mapper = super::memory::kernel_mapper();
    let mut address = start & !0xfff;
    let mut changed = 0;
    while address < start + len {
        let virt = VirtAddr::new(address);
        let TranslateResult::Mapped { frame, flags, .. } = mapper.translate(virt) else {
            break;
        };
        let flags = (flags | PageTableFlags::WRITE_THROUGH) - PageTableFlags::NO_CACHE;
        // SAFETY: the pages map the framebuffer, which only the screen console
        // writes; changing their memory type keeps every address valid.
        let step = match frame {
            MappedFrame::Size4KiB(_) => unsafe {
                let page = Page::<Size4KiB>::containing_address(virt);
                mapper.update_flags(page, flags).map(|flush| flush.flush()).map_or(0, |()| 0x1000)
            },
            MappedFrame::Size2MiB(_) => unsafe {
                let page = Page::<Size2MiB>::containing_address(virt);
                mapper
                    .update_flags(page, flags)
                    .map(|flush| flush.flush())
                    .map_or(0, |()| 0x20_0000)
            },
            MappedFrame::Size1GiB(_) => 0,
        };
        if step == 0 {
            break;
        }
        changed += step / 0x1000;
        address = (address & !(step - 1)) + step;
    }
    // Lines cached under the old memory type must not linger.
    x86_64::instructions::tlb::flush_all();
    // SAFETY: `wbinvd` writes back and invalidates caches; it has no other effect.
    unsafe { core::arch::asm!("wbinvd", options(nostack, preserves_flags)) };
    changed
}

/// Whether the page holding `address` is mapped write-combining: PAT entry 1 is
/// write-combining and the page selects it.
pub fn is_write_combining(address: u64) -> bool {
    // SAFETY: reading IA32_PAT has no side effects; the PAT exists (checked).
    let entry_one =
        has_pat() && (unsafe { Msr::new(PAT_MSR).read() } >> 8) & 0xff == WRITE_COMBINING;
    let mapper = super::memory::kernel_mapper();
    let TranslateResult::Mapped { flags, frame, .. } = mapper.translate(VirtAddr::new(address))
    else {
        return false;
    };
    let pat_bit = match frame {
        // Bit 7 of a 4 KiB entry, bit 12 of a large one, selects the upper PAT half.
        MappedFrame::Size4KiB(_) => flags.contains(PageTableFlags::HUGE_PAGE),
        _ => flags.bits() & (1 << 12) != 0,
    };
    entry_one
        && flags.contains(PageTableFlags::WRITE_THROUGH)
        && !flags.contains(PageTableFlags::NO_CACHE)
        && !pat_bit
}
