//! Physical memory at start-up: from the bootloader's memory map to the portable
//! frame allocator, and the kernel heap on top of it.
//!
//! The bootloader reports every region of physical memory; only `Usable` regions
//! become frames the kernel may hand out (its own page tables, the kernel image,
//! boot info and ramdisk are reported as used by the bootloader). The `VmPage`
//! array is carved from the end of the largest usable range and reached through
//! the bootloader's mapping of all physical memory. From here on every frame comes
//! from the portable allocator, which lives inside the kernel's one [`Vm`]; the
//! bootloader's own allocator is never used again.
//!
//! # The heap and the VM lock
//! The heap grows on frames, and the VM allocates heap memory (tree nodes) while
//! it holds the VM lock, so the heap's grow hook cannot simply take that lock. It
//! tries it: when the lock is free the hook takes frames from the allocator; when
//! it is held (the VM itself is allocating, or a page fault interrupted a VM
//! operation) it uses a small reserve of frames set aside for exactly this, and
//! the reserve is refilled every time VM work releases the lock
//! ([`refill_heap_reserve`]). The reserve holds [`HEAP_RESERVE_FRAMES`] frames,
//! several heap steps; besides, the same refill keeps [`HEAP_HEADROOM`] of the
//! heap free. VM work that may need more (a fork copies its parent's page
//! lists) first asks for its room with the lock free (`memory::with_vm_room`),
//! and is refused (`OutOfMemory`) if the heap cannot have it; a fault refuses
//! itself likewise when the heap is short (`page_fault`).
//!
//! The heap lives in one P4 slot of the kernel half that exists from the first
//! heap mapping on, so heap growth never adds a P4 entry and every address-space
//! root (which copies the kernel half at creation) sees it.
//!
//! The heap gives frames back too: the same refill trims arenas that have
//! emptied (`heap::trim`) while the heap keeps the free room it wants. Their
//! pages are unmapped and every TLB context of every processor flushed (a
//! kernel translation may be cached under any PCID, on any processor that ran
//! kernel code) before anything can use the frames or the addresses again.

use bootloader_api::info::{BootInfo, MemoryRegionKind};
use x86_64::structures::paging::{
    FrameAllocator as PagingFrameAllocator, Mapper, OffsetPageTable, Page, PageTable,
    PageTableFlags, PhysFrame, Size4KiB,
};
use x86_64::{PhysAddr, VirtAddr};

use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use spin::Mutex;

use super::paging::X86Mmu;
use super::paging::table::top_level_present;
use crate::boot::HEAP_REGION_START;
use crate::memory::{self, VM};
use crate::vm::Vm;
use crate::vm::frame::{FrameAllocator, PhysRange};
use crate::vm::page::{PAGE_SIZE, Pfn, VmPage};

/// The most usable ranges we keep from the memory map (a PC reports a dozen).
const MAX_RANGES: usize = 128;
/// Size of the heap's first chunk.
const HEAP_INITIAL: u64 = 256 * 1024;
/// Most the heap may grow to.
const HEAP_LIMIT: u64 = 1 << 30;
/// Frames kept aside for heap growth while the VM lock is held.
pub const HEAP_RESERVE_FRAMES: usize = 64;

const _: () = assert!(
    HEAP_REGION_START % (1 << 39) + HEAP_LIMIT <= 1 << 39,
    "the heap must fit in one P4 slot"
);

/// Frames set aside for heap growth while the VM lock is held.
struct FrameReserve {
    frames: [Pfn; HEAP_RESERVE_FRAMES],
    count: usize,
}

static HEAP_RESERVE: Mutex<FrameReserve> =
    Mutex::new(FrameReserve { frames: [Pfn(0); HEAP_RESERVE_FRAMES], count: 0 });

/// Frames taken by the heap: mapped into it, its page tables, and its reserve.
static HEAP_FRAMES: AtomicUsize = AtomicUsize::new(0);

/// Builds the frame allocator from the memory map and starts the kernel heap.
pub fn init_memory(boot_info: &'static BootInfo) {
    let offset = boot_info
        .physical_memory_offset
        .into_option()
        .expect("init_memory: bootloader did not map physical memory");
    memory::set_physical_offset(offset);
    // The bootloader maps every region of the map, and at least the first 4 GiB.
    let end = boot_info.memory_regions.iter().map(|region| region.end).max().unwrap_or(0);
    memory::set_physical_end(end.max(1 << 32));

    let mut ranges = [PhysRange { start: 0, end: 0 }; MAX_RANGES];
    let mut count = 0;
    for region in boot_info.memory_regions.iter() {
        if region.kind == MemoryRegionKind::Usable && count < MAX_RANGES {
            ranges[count] = PhysRange { start: region.start, end: region.end };
            count += 1;
        }
    }
    let ranges = &mut ranges[..count];
    carve_low_pages(ranges);
    let pages = carve_page_array(ranges, offset);
    let frames = FrameAllocator::new(pages, ranges);
    // Neither `Vm::new` nor `X86Mmu::new` allocates: there is no heap yet.
    *VM.lock() = Some(Vm::new(frames, X86Mmu::new()));
    start_heap();
    memory::with_vm(|_| ());
}

/// Frames the heap holds: mapped into it, its page tables, and its reserve.
pub fn heap_frames() -> usize {
    HEAP_FRAMES.load(Ordering::Relaxed)
}

/// Free heap kept ahead of VM work, besides the reserve. Work that may need
/// more (a fork, in proportion to its parent's pages) asks for its room first
/// (`memory::with_vm_room`).
pub const HEAP_HEADROOM: usize = 256 * 1024;

/// Tops the heap's frame reserve up from `frames`, grows the heap so that
/// [`HEAP_HEADROOM`] of it is free, and gives back arenas that have emptied
/// while that much stays free (so the two never undo each other: what growth
/// maps is never more than trimming leaves). Called whenever VM work is about to release the
/// VM lock. Returns whether [`HEAP_HEADROOM`] is free.
pub fn refill_heap_reserve(frames: &mut FrameAllocator<'_>) -> bool {
    // Nothing to do if the heap has not changed since a refill left the
    // headroom free and the reserve full (the common case: most VM work
    // allocates no heap).
    if SETTLED_AT.load(Ordering::Relaxed) == crate::heap::changes() {
        return true;
    }
    let headroom = HEAP_HEADROOM;
    // Short of frames, the heap just keeps what it has; calls that need room
    // ask for it themselves (`memory::with_vm_room`).
    let roomy = ensure_heap_free(frames, headroom);
    let mut unmapped = false;
    crate::heap::trim(headroom, |start, length| {
        unmap_heap(start as u64, length as u64, frames);
        unmapped = true;
    });
    if unmapped {
        // Any processor may hold the pages' translations, under any PCID.
        let missing = super::smp::invalidate_everywhere(super::smp::Invalidation::Everything);
        assert_eq!(missing, 0, "heap trim: a processor did not drop the heap's pages");
    }
    if fill_reserve(frames) && roomy {
        SETTLED_AT.store(crate::heap::changes(), Ordering::Relaxed);
    }
    roomy
}

/// The heap's change count (`heap::changes`) when a refill last left the
/// headroom free and the reserve full; `u64::MAX`: not since it started.
static SETTLED_AT: AtomicU64 = AtomicU64::new(u64::MAX);

/// Grows the heap from `frames` until `bytes` of it are free, if frames allow;
/// whether they are.
pub fn ensure_heap_free(frames: &mut FrameAllocator<'_>, bytes: usize) -> bool {
    crate::heap::ensure_headroom(bytes, |start, length| {
        map_heap_from(start as u64, length as u64, &mut HeapFrames::Allocator(frames)).is_some()
    })
}

/// Unmaps `start..start + len` of the heap region and frees its frames. The
/// caller flushes every TLB context of every processor before anything else
/// can reuse them (nothing can before it returns: the frames go back under the
/// VM lock, which the caller holds).
fn unmap_heap(start: u64, len: u64, frames: &mut FrameAllocator<'_>) {
    let mut mapper = kernel_mapper();
    for address in (start..start + len).step_by(PAGE_SIZE as usize) {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(address));
        let (frame, flush) = mapper.unmap(page).expect("unmap_heap: a heap page was not mapped");
        // Flushed with every context below.
        flush.ignore();
        let pfn = Pfn::from_addr(frame.start_address().as_u64());
        frames.free(pfn).expect("unmap_heap: heap frame not freeable");
        HEAP_FRAMES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Tops the heap's frame reserve up from `frames`; whether it is full.
fn fill_reserve(frames: &mut FrameAllocator<'_>) -> bool {
    let Some(mut reserve) = HEAP_RESERVE.try_lock() else { return false };
    while reserve.count < HEAP_RESERVE_FRAMES {
        let Ok(pfn) = frames.alloc() else { break };
        let slot = reserve.count;
        reserve.frames[slot] = pfn;
        reserve.count += 1;
        HEAP_FRAMES.fetch_add(1, Ordering::Relaxed);
    }
    reserve.count == HEAP_RESERVE_FRAMES
}

/// Where the heap's frames come from: the allocator when the VM lock was free,
/// the reserve when it is held.
enum HeapFrames<'a, 'b> {
    Allocator(&'a mut FrameAllocator<'b>),
    Reserve(&'a mut FrameReserve),
}

impl HeapFrames<'_, '_> {
    /// One frame for the heap, or `None`.
    fn take(&mut self) -> Option<Pfn> {
        match self {
            HeapFrames::Allocator(frames) => {
                let pfn = frames.alloc().ok()?;
                HEAP_FRAMES.fetch_add(1, Ordering::Relaxed);
                Some(pfn)
            }
            HeapFrames::Reserve(reserve) => {
                reserve.count = reserve.count.checked_sub(1)?;
                Some(reserve.frames[reserve.count])
            }
        }
    }

    /// Gives back a frame `take` returned that ended up unused.
    fn give_back(&mut self, pfn: Pfn) {
        match self {
            HeapFrames::Allocator(frames) => {
                frames.free(pfn).expect("give_back: fresh frame not freeable");
                HEAP_FRAMES.fetch_sub(1, Ordering::Relaxed);
            }
            HeapFrames::Reserve(reserve) => {
                let slot = reserve.count;
                reserve.frames[slot] = pfn;
                reserve.count += 1;
            }
        }
    }
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

/// Pages below 1 MiB kept for starting the other processors (`smp`): the
/// start-up code, and the page tables it runs on.
pub const LOW_PAGES: u64 = 4;
/// Where they are (physical; 0: none were to be had).
static LOW_PAGES_AT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

/// The [`LOW_PAGES`] pages below 1 MiB kept for `smp`, if memory had them.
pub fn low_pages() -> Option<u64> {
    Some(LOW_PAGES_AT.load(Ordering::Relaxed)).filter(|&at| at != 0)
}

/// Takes [`LOW_PAGES`] pages from the top of a usable range lying below
/// 1 MiB (a processor starts in real mode at a page there), before the frame
/// allocator is made. The first page is left alone: real-mode firmware data
/// may lie there.
fn carve_low_pages(ranges: &mut [PhysRange]) {
    const LIMIT: u64 = 0x10_0000;
    let bytes = LOW_PAGES * PAGE_SIZE;
    let fits = |range: &&mut PhysRange| {
        let end = range.end & !(PAGE_SIZE - 1);
        range.end <= LIMIT && end >= range.start.max(PAGE_SIZE) + bytes
    };
    if let Some(range) = ranges.iter_mut().filter(fits).max_by_key(|range| range.end) {
        range.end = (range.end & !(PAGE_SIZE - 1)) - bytes;
        LOW_PAGES_AT.store(range.end, Ordering::Relaxed);
    }
}

/// Adapts the heap's frame source to the `x86_64` crate's page-table code.
struct TableFrames<'a, 'b, 'c>(&'a mut HeapFrames<'b, 'c>);

// SAFETY: frames come from the portable allocator (directly or through the
// reserve), which hands each out once.
unsafe impl PagingFrameAllocator<Size4KiB> for TableFrames<'_, '_, '_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        let pfn = self.0.take()?;
        fill_frame(pfn, 0);
        Some(frame_of(pfn))
    }
}

/// The kernel's mapper of the boot root, whose kernel half every root shares.
pub(super) fn kernel_mapper() -> OffsetPageTable<'static> {
    let offset = memory::physical_offset();
    let root = boot_root();
    let table = (offset + root.addr()) as *mut PageTable;
    // SAFETY: all physical memory is mapped at `offset`, so `table` is the boot
    // root; only the heap (growing and giving pages back) and device mappings
    // (`device_memory`) change it. The heap does so under its lock; device
    // mappings are made by the kernel lock's holder, the one processor that
    // runs code that may grow the heap, and interrupt handlers allocate none,
    // so neither interrupts the other.
    unsafe { OffsetPageTable::new(&mut *table, VirtAddr::new(offset)) }
}

/// The boot root: the page table the kernel was entered with.
pub(super) fn boot_root() -> Pfn {
    static BOOT_ROOT: spin::Once<Pfn> = spin::Once::new();
    *BOOT_ROOT.call_once(super::paging::tlb::Tlb::current_root)
}

/// Maps fresh frames over `start..start + len` in the kernel heap region, taking
/// them from the allocator if the VM lock is free, else from the reserve.
fn map_heap(start: u64, len: u64) -> Option<()> {
    if let Some(mut vm) = VM.try_lock() {
        let vm = vm.as_mut()?;
        vm.enter();
        return map_heap_from(start, len, &mut HeapFrames::Allocator(vm.frames_mut()));
    }
    let mut reserve = HEAP_RESERVE.lock();
    map_heap_from(start, len, &mut HeapFrames::Reserve(&mut reserve))
}

/// [`map_heap`] with its frame source chosen. On failure nothing stays mapped
/// (page-table pages made on the way stay, counted as the heap's).
fn map_heap_from(start: u64, len: u64, source: &mut HeapFrames<'_, '_>) -> Option<()> {
    let end = start.checked_add(len).filter(|end| *end <= HEAP_REGION_START + HEAP_LIMIT)?;
    let mut mapper = kernel_mapper();
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    for address in (start..end).step_by(PAGE_SIZE as usize) {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(address));
        let mapped = source.take().and_then(|pfn| {
            // SAFETY: the heap region belongs to the heap alone and `page` is
            // not mapped yet; the frame is fresh from the allocator.
            let flush =
                unsafe { mapper.map_to(page, frame_of(pfn), flags, &mut TableFrames(source)) };
            match flush {
                Ok(flush) => {
                    flush.flush();
                    Some(())
                }
                Err(_) => {
                    source.give_back(pfn);
                    None
                }
            }
        });
        if mapped.is_none() {
            unmap_partial(&mut mapper, start, address, source);
            return None;
        }
    }
    Some(())
}

/// Undoes a failed [`map_heap_from`]: unmaps `start..end` (mapped, never used)
/// and gives the frames back where they came from.
fn unmap_partial(
    mapper: &mut OffsetPageTable<'static>,
    start: u64,
    end: u64,
    source: &mut HeapFrames<'_, '_>,
) {
    for address in (start..end).step_by(PAGE_SIZE as usize) {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(address));
        let (frame, flush) = mapper.unmap(page).expect("unmap_partial: page not mapped");
        // Only ever loaded on this processor, by nothing: the invlpg suffices.
        flush.flush();
        source.give_back(Pfn::from_addr(frame.start_address().as_u64()));
    }
}

/// The heap's map hook: maps `start..start + length` of the heap region.
fn grow_heap(start: usize, length: usize) -> bool {
    debug_assert!(top_level_present(boot_root(), start as u64), "grow_heap: heap P4 slot missing");
    map_heap(start as u64, length as u64).is_some()
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
pub(super) fn frame_pointer(pfn: Pfn) -> *mut u8 {
    (memory::physical_offset() + pfn.addr()) as *mut u8
}

/// 8-byte words in a page.
const WORDS_PER_PAGE: usize = PAGE_SIZE as usize / 8;

/// Fills frame `pfn` with `byte`, 32 words to an unrolled block (`words`,
/// which says why: zeroing a frame is part of every first-touch fault, and
/// emulators run `rep stosq` slowly).
///
/// The caller must own the frame: it was allocated to the caller and is not
/// mapped anywhere the caller does not control.
pub fn fill_frame(pfn: Pfn, byte: u8) {
    // SAFETY: all physical memory is mapped writable at the physical offset, a
    // frame's address there is page-aligned, and the caller owns the frame, so
    // nothing else reads or writes it meanwhile.
    let word = u64::from(byte) * 0x0101_0101_0101_0101;
    unsafe { words::store_words(frame_pointer(pfn).cast(), word, WORDS_PER_PAGE) };
}

/// Copies frame `source` over frame `destination`. The caller must own both
/// (as for [`fill_frame`]); they must differ.
pub fn copy_frame(source: Pfn, destination: Pfn) {
    assert_ne!(source, destination, "copy_frame: source is the destination");
    // SAFETY: both frames are mapped at the physical offset and owned by the
    // caller; distinct frames never overlap.
    unsafe {
        words::move_words_up(
            frame_pointer(destination).cast(),
            frame_pointer(source).cast(),
            WORDS_PER_PAGE,
        );
    }
}

/// Writes `bytes` into frame `pfn` from byte `offset` on. Same ownership
/// rule as [`fill_frame`]; panics if they do not fit in the frame.
pub fn write_frame(pfn: Pfn, offset: usize, bytes: &[u8]) {
    assert!(offset + bytes.len() <= PAGE_SIZE as usize, "write_frame: past the frame");
    // SAFETY: as in `fill_frame`; the range lies inside the frame (checked),
    // and `bytes` is kernel memory, not the frame.
    unsafe {
        core::ptr::copy_nonoverlapping(bytes.as_ptr(), frame_pointer(pfn).add(offset), bytes.len())
    };
}

/// Copies frame `pfn` into `buffer`. Same ownership rule as [`fill_frame`].
pub fn read_frame(pfn: Pfn, buffer: &mut [u8; PAGE_SIZE as usize]) {
    // SAFETY: as in `fill_frame`; `buffer` is a distinct, exclusively borrowed
    // kernel buffer of exactly one page.
    unsafe {
        core::ptr::copy_nonoverlapping(frame_pointer(pfn), buffer.as_mut_ptr(), buffer.len())
    };
}
