//! Physical memory at start-up: from the bootloader's memory map to the portable
//! frame allocator, and the kernel heap on top of it.
//!
//! The bootloader reports every region of physical memory; only `Usable` regions
//! become frames the kernel may hand out (its own page tables, the kernel image,
//! boot info and ramdisk are reported as used by the bootloader). The `VmPage`
//! array is carved from the end of the largest usable range and reached through
//! the bootloader's mapping of all physical memory. From here on every frame comes
//! from the portable allocator; the bootloader's own allocator is never used again.

use bootloader_api::info::{BootInfo, MemoryRegionKind};
use x86_64::structures::paging::{
    FrameAllocator as PagingFrameAllocator, Mapper, OffsetPageTable, Page, PageTable,
    PageTableFlags, PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

use crate::boot::HEAP_REGION_START;
use crate::memory::{self, FRAMES};
use crate::vm::frame::{FrameAllocator, PhysRange};
use crate::vm::page::{PAGE_SIZE, Pfn, VmPage};

/// The most usable ranges we keep from the memory map (a PC reports a dozen).
const MAX_RANGES: usize = 128;
/// Size of the heap's first chunk.
const HEAP_INITIAL: u64 = 256 * 1024;
/// Most the heap may grow to.
const HEAP_LIMIT: u64 = 1 << 30;
/// Smallest step by which the heap grows.
const HEAP_STEP: u64 = 64 * 1024;

/// Builds the frame allocator from the memory map and starts the kernel heap.
pub fn init_memory(boot_info: &'static BootInfo) {
    let offset = boot_info
        .physical_memory_offset
        .into_option()
        .expect("init_memory: bootloader did not map physical memory");
    memory::set_physical_offset(offset);

    let mut ranges = [PhysRange { start: 0, end: 0 }; MAX_RANGES];
    let mut count = 0;
    for region in boot_info.memory_regions.iter() {
        if region.kind == MemoryRegionKind::Usable && count < MAX_RANGES {
            ranges[count] = PhysRange { start: region.start, end: region.end };
            count += 1;
        }
    }
    let ranges = &mut ranges[..count];
    let pages = carve_page_array(ranges, offset);
    *FRAMES.lock() = Some(FrameAllocator::new(pages, ranges));
    start_heap();
}

/// Takes room for the `VmPage` array from the end of the largest usable range
/// (shrinking it) and returns the array, initialised.
fn carve_page_array(ranges: &mut [PhysRange], offset: u64) -> &'static mut [VmPage] {
    // Room for an entry per usable frame, counted before carving: a slight
    // over-estimate, since the carved frames need no entry.
    let entries = FrameAllocator::pages_needed(ranges);
    let bytes = (entries * size_of::<VmPage>()) as u64;
    let largest = ranges
        .iter_mut()
        .max_by_key(|range| range.end - range.start)
        .expect("carve_page_array: no usable memory");
    let end = largest.end & !(PAGE_SIZE - 1);
    let start = end.checked_sub(bytes.next_multiple_of(PAGE_SIZE)).filter(|s| *s >= largest.start);
    let start = start.expect("carve_page_array: largest range cannot hold the page array");
    largest.end = start;
    let address = (offset + start) as *mut VmPage;
    for index in 0..entries {
        // SAFETY: `start..end` is usable RAM that no one else owns now that it
        // left the range list, mapped writable at `offset`; entries fit in it.
        unsafe { address.add(index).write(VmPage::EMPTY) };
    }
    // SAFETY: initialised just above; exclusively owned for the kernel's lifetime.
    unsafe { core::slice::from_raw_parts_mut(address, entries) }
}

/// Adapts the portable allocator to the `x86_64` crate's page-table code.
struct TableFrames<'a, 'b>(&'a mut FrameAllocator<'b>);

// SAFETY: frames come from the portable allocator, which hands each out once.
unsafe impl PagingFrameAllocator<Size4KiB> for TableFrames<'_, '_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        let pfn = self.0.alloc().ok()?;
        Some(PhysFrame::containing_address(PhysAddr::new(pfn.addr())))
    }
}

/// The kernel's view of the active top-level page table.
fn active_mapper() -> OffsetPageTable<'static> {
    let offset = memory::physical_offset();
    let (frame, _) = x86_64::registers::control::Cr3::read();
    let table = (offset + frame.start_address().as_u64()) as *mut PageTable;
    // SAFETY: all physical memory is mapped at `offset`, so `table` is the live
    // top-level table; callers hold `FRAMES`, which serialises kernel mappers.
    unsafe { OffsetPageTable::new(&mut *table, VirtAddr::new(offset)) }
}

/// Maps fresh frames over `start..start + len` in the kernel heap region.
fn map_heap(start: u64, len: u64) -> Option<()> {
    let mut frames = FRAMES.lock();
    let frames = frames.as_mut()?;
    let mut mapper = active_mapper();
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    for address in (start..start + len).step_by(PAGE_SIZE as usize) {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(address));
        let pfn = frames.alloc().ok()?;
        let frame = PhysFrame::containing_address(PhysAddr::new(pfn.addr()));
        // SAFETY: the heap region belongs to the heap alone and `page` is not
        // mapped yet; the frame is fresh from the allocator.
        let flush = unsafe { mapper.map_to(page, frame, flags, &mut TableFrames(frames)) };
        match flush {
            Ok(flush) => flush.flush(),
            Err(_) => {
                let _ = frames.free(pfn);
                return None;
            }
        }
    }
    Some(())
}

/// The heap's grow hook: maps at least `wanted` bytes at `top`.
fn grow_heap(top: usize, wanted: usize) -> Option<usize> {
    let len = (wanted as u64).next_multiple_of(HEAP_STEP);
    let top = top as u64;
    if top + len > HEAP_REGION_START + HEAP_LIMIT {
        return None;
    }
    map_heap(top, len)?;
    Some(len as usize)
}

fn start_heap() {
    map_heap(HEAP_REGION_START, HEAP_INITIAL).expect("start_heap: no frames for the heap");
    // SAFETY: just mapped, used by nothing else; above it lies the rest of the
    // heap region, which only `grow_heap` maps.
    unsafe { crate::heap::init(HEAP_REGION_START as *mut u8, HEAP_INITIAL as usize, grow_heap) };
}

/// Physical frame number of a frame in the `x86_64` crate's terms.
pub fn frame_of(pfn: Pfn) -> PhysFrame {
    PhysFrame::containing_address(PhysAddr::new(pfn.addr()))
}

/// The kernel's address of physical frame `pfn`, through the physical map.
fn frame_pointer(pfn: Pfn) -> *mut u8 {
    (memory::physical_offset() + pfn.addr()) as *mut u8
}

/// Fills frame `pfn` with `byte`.
///
/// The caller must own the frame: it was allocated to the caller and is not
/// mapped anywhere the caller does not control.
pub fn fill_frame(pfn: Pfn, byte: u8) {
    // SAFETY: all physical memory is mapped writable at the physical offset, and
    // the caller owns the frame, so nothing else reads or writes it meanwhile.
    unsafe { core::ptr::write_bytes(frame_pointer(pfn), byte, PAGE_SIZE as usize) };
}

/// Copies frame `pfn` into `buffer`. Same ownership rule as [`fill_frame`].
pub fn read_frame(pfn: Pfn, buffer: &mut [u8; PAGE_SIZE as usize]) {
    // SAFETY: as in `fill_frame`; `buffer` is a distinct, exclusively borrowed
    // kernel buffer of exactly one page.
    unsafe {
        core::ptr::copy_nonoverlapping(frame_pointer(pfn), buffer.as_mut_ptr(), buffer.len())
    };
}
