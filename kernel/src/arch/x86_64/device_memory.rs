//! Device registers in memory space (PCI BARs), mapped uncached.
//!
//! The bootloader's mapping of physical memory covers RAM and the first 4 GiB,
//! with the caching of ordinary memory; a device's registers may lie above
//! it (firmware may place 64-bit BARs high), and must not be cached. So each
//! device range gets a mapping of its own in a region of the kernel half kept
//! for them: in the heap's P4 slot, 4 GiB in (above the heap and the kernel
//! stacks), so that every address-space root sees it. Mappings are made at
//! start-up and never removed: devices stay for the kernel's lifetime. Their
//! page-table pages come from the frame allocator and are counted by
//! [`device_table_frames`].

use core::sync::atomic::{AtomicUsize, Ordering};
use spin::Mutex;
use x86_64::structures::paging::{
    FrameAllocator as PagingFrameAllocator, Mapper, Page, PageTableFlags, PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

use super::memory::{fill_frame, frame_of, kernel_mapper};
use crate::boot::HEAP_REGION_START;
use crate::vm::frame::FrameAllocator;
use crate::vm::page::{PAGE_SIZE, Pfn};

/// Where device mappings start: 4 GiB into the heap's P4 slot (the heap stops
/// at 1 GiB, the kernel stacks at 2 GiB plus 64 MiB).
const REGION_START: u64 = HEAP_REGION_START + (4 << 30);
/// Address space for device mappings.
const REGION_BYTES: u64 = 1 << 30;

const _: () = assert!(
    REGION_START % (1 << 39) + REGION_BYTES <= 1 << 39,
    "device mappings must stay in the heap's P4 slot"
);

/// The next unused address of the region.
static NEXT: Mutex<u64> = Mutex::new(REGION_START);

/// Page-table pages made for device mappings.
static TABLE_FRAMES: AtomicUsize = AtomicUsize::new(0);

/// Page-table pages taken for device mappings so far.
pub fn device_table_frames() -> usize {
    TABLE_FRAMES.load(Ordering::Relaxed)
}

/// Adapts the frame allocator to the `x86_64` crate's page-table code.
struct TableFrames<'a, 'b>(&'a mut FrameAllocator<'b>);

// SAFETY: frames come from the portable allocator, which hands each out once.
unsafe impl PagingFrameAllocator<Size4KiB> for TableFrames<'_, '_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        let pfn = self.0.alloc().ok()?;
        fill_frame(pfn, 0);
        TABLE_FRAMES.fetch_add(1, Ordering::Relaxed);
        Some(frame_of(pfn))
    }
}

/// Maps the device registers at physical `start..start + length` uncached
/// (PCD and PWT: PAT entry 3, uncacheable), readable and writable, never
/// executable; returns the kernel address of `start`. Page-table pages come
/// from `frames`. `None` if the range is empty, holds a frame the allocator
/// manages (RAM is no device), or does not fit in what is left of the region,
/// or if frames for page tables ran out (what was mapped then stays mapped,
/// unused).
pub fn map_device_memory(frames: &mut FrameAllocator<'_>, start: u64, length: u64) -> Option<u64> {
    let first = start & !(PAGE_SIZE - 1);
    let end = start.checked_add(length)?.checked_next_multiple_of(PAGE_SIZE)?;
    if length == 0
        || (first..end).step_by(PAGE_SIZE as usize).any(|a| frames.contains(Pfn::from_addr(a)))
    {
        return None;
    }
    let mut next = NEXT.lock();
    let base = *next;
    if base + (end - first) > REGION_START + REGION_BYTES {
        return None;
    }
    *next = base + (end - first);
    let flags = PageTableFlags::PRESENT
        | PageTableFlags::WRITABLE
        | PageTableFlags::NO_EXECUTE
        | PageTableFlags::NO_CACHE
        | PageTableFlags::WRITE_THROUGH;
    x86_64::instructions::interrupts::without_interrupts(|| {
        let mut mapper = kernel_mapper();
        for offset in (0..end - first).step_by(PAGE_SIZE as usize) {
            let page = Page::<Size4KiB>::containing_address(VirtAddr::new(base + offset));
            let frame = PhysFrame::containing_address(PhysAddr::new(first + offset));
            // SAFETY: `page` lies in the device region, which only this function
            // maps, and above `NEXT`'s old value, so nothing maps it yet; the
            // frame is a device's registers, not RAM the kernel hands out
            // (checked above), so no other mapping's contents change meaning.
            let mapped = unsafe { mapper.map_to(page, frame, flags, &mut TableFrames(frames)) };
            // A new page: no TLB holds a translation of it to flush.
            mapped.ok()?.ignore();
        }
        Some(base + (start - first))
    })
}
