//! Kernel stacks for processes, each with an unmapped guard below it.
//!
//! Every process runs its system calls and interrupts on a kernel stack of its
//! own. Stacks live in a region of the kernel half (in the heap's P4 slot, above
//! the heap's limit, so every address-space root sees them); each slot is
//! [`SLOT_BYTES`] of address space whose low part is never mapped, so running off
//! the bottom of a stack faults (and the double-fault handler, on its own stack,
//! reports it) instead of corrupting a neighbour.
//!
//! Stacks are kept for reuse when their process is reaped, mapped, with their
//! frames: unmapping a kernel page would need a TLB flush under every PCID. The
//! frames they hold (and the page tables mapping them) are counted by
//! [`stack_frames`], like the heap's, so that tests can balance their books.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use spin::Mutex;
use x86_64::VirtAddr;
use x86_64::structures::paging::{
    FrameAllocator as PagingFrameAllocator, Mapper, OffsetPageTable, Page, PageTable,
    PageTableFlags, PhysFrame, Size4KiB,
};

use super::memory::frame_of;
use super::paging::tlb::Tlb;
use crate::boot::HEAP_REGION_START;
use crate::memory;
use crate::vm::VmError;
use crate::vm::frame::FrameAllocator;
use crate::vm::page::PAGE_SIZE;

/// Pages of one stack.
pub const STACK_PAGES: u64 = 8;
/// Address space per stack: the stack on top, a guard below.
const SLOT_BYTES: u64 = 2 * STACK_PAGES * PAGE_SIZE;
/// Where the stack region starts: 2 GiB into the heap's P4 slot (the heap stops
/// at 1 GiB).
const REGION_START: u64 = HEAP_REGION_START + (2 << 30);
/// Most stacks there can be.
pub const MAX_STACKS: usize = 1024;

/// A process's kernel stack: its slot, and the address just above it.
#[derive(Debug)]
pub struct KernelStack {
    slot: usize,
}

impl KernelStack {
    /// The first address above the stack (16-byte aligned): the initial pointer.
    pub fn top(&self) -> u64 {
        REGION_START + (self.slot as u64 + 1) * SLOT_BYTES
    }
}

/// Stacks made so far, and those free for reuse.
struct Pool {
    made: usize,
    free: Vec<usize>,
}

static POOL: Mutex<Pool> = Mutex::new(Pool { made: 0, free: Vec::new() });
static FRAMES: AtomicUsize = AtomicUsize::new(0);

/// Whether `top` is the top of a stack of this pool (which has an unmapped
/// guard page below it): for tests of the interrupt stacks.
pub fn is_pool_stack_top(top: u64) -> bool {
    top > REGION_START
        && (top - REGION_START).is_multiple_of(SLOT_BYTES)
        && (top - REGION_START) / SLOT_BYTES <= MAX_STACKS as u64
}

/// Stacks handed out and not given back.
pub fn stacks_in_use() -> usize {
    let pool = POOL.lock();
    pool.made - pool.free.len()
}

/// Frames held by kernel stacks and the page tables that map them.
pub fn stack_frames() -> usize {
    FRAMES.load(Ordering::Relaxed)
}

/// A kernel stack: a reused one, or a new one mapped on fresh frames.
pub fn allocate() -> Result<KernelStack, VmError> {
    let mut pool = POOL.lock();
    if let Some(slot) = pool.free.pop() {
        return Ok(KernelStack { slot });
    }
    if pool.made == MAX_STACKS {
        return Err(VmError::OutOfMemory);
    }
    let slot = pool.made;
    // Room for every stack there can be, once: the list never grows later, so
    // the heap's bytes in use do not depend on how many stacks were made.
    pool.free.reserve(MAX_STACKS);
    // Short of frames, reclaim (see `vm::reclaim`) and try again: what a
    // failed attempt mapped stays for the next.
    memory::with_vm(|vm| vm.retry_after_reclaim(16, |vm| map_slot(slot, vm.frames_mut())))?;
    pool.made += 1;
    Ok(KernelStack { slot })
}

/// Gives a stack back for reuse. No task may be running on it.
pub fn release(stack: KernelStack) {
    POOL.lock().free.push(stack.slot);
}

/// Adapts the frame allocator to the `x86_64` crate's page-table code, counting.
struct TableFrames<'a, 'b>(&'a mut FrameAllocator<'b>);

// SAFETY: frames come from the portable allocator, which hands each out once.
unsafe impl PagingFrameAllocator<Size4KiB> for TableFrames<'_, '_> {
    fn allocate_frame(&mut self) -> Option<PhysFrame> {
        let pfn = self.0.alloc().ok()?;
        super::fill_frame(pfn, 0);
        FRAMES.fetch_add(1, Ordering::Relaxed);
        Some(frame_of(pfn))
    }
}

/// Maps the stack pages of `slot` (not its guard). On failure what was mapped
/// stays mapped and counted, and is used by the next attempt.
fn map_slot(slot: usize, frames: &mut FrameAllocator<'_>) -> Result<(), VmError> {
    let offset = memory::physical_offset();
    let root = Tlb::current_root();
    // SAFETY: all physical memory is mapped at `offset`; the stack region's P4
    // entry is the heap's, shared by every root, and only this function (under
    // the pool lock) maps in the region.
    let mut mapper = unsafe {
        OffsetPageTable::new(
            &mut *((offset + root.addr()) as *mut PageTable),
            VirtAddr::new(offset),
        )
    };
    let flags = PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::NO_EXECUTE;
    let top = REGION_START + (slot as u64 + 1) * SLOT_BYTES;
    for index in 1..=STACK_PAGES {
        let page = Page::<Size4KiB>::containing_address(VirtAddr::new(top - index * PAGE_SIZE));
        if mapper.translate_page(page).is_ok() {
            continue;
        }
        let pfn = frames.alloc()?;
        FRAMES.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the page is in the stack region, unmapped (checked), and the
        // frame is fresh.
        let mapped = unsafe { mapper.map_to(page, frame_of(pfn), flags, &mut TableFrames(frames)) };
        match mapped {
            Ok(flush) => flush.flush(),
            Err(_) => {
                frames.free(pfn).expect("map_slot: fresh frame not freeable");
                FRAMES.fetch_sub(1, Ordering::Relaxed);
                return Err(VmError::OutOfMemory);
            }
        }
    }
    Ok(())
}
