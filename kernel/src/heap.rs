//! The kernel heap.
//!
//! A first-fit heap from `linked_list_allocator` over a virtual region that the
//! architecture reserves for it. Memory set-up maps a first chunk and installs a
//! grow hook; when an allocation does not fit, the hook maps fresh frames at the
//! heap's top and the allocation is retried. Running out of frames makes the
//! allocation fail (null), never panic inside the allocator.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};
use linked_list_allocator::Heap;
use spin::Mutex;

/// Extends the heap's memory: given the heap's current top and the bytes wanted,
/// makes at least that many bytes at `top` usable and returns how many it added.
pub type GrowHook = fn(top: usize, wanted: usize) -> Option<usize>;

struct KernelHeap {
    heap: Mutex<Heap>,
    grow: Mutex<Option<GrowHook>>,
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap { heap: Mutex::new(Heap::empty()), grow: Mutex::new(None) };

/// Starts the heap on `size` mapped bytes at `start`, growing through `grow`.
///
/// # Safety
/// `start..start + size` must be mapped, writable, unused by anything else for the
/// kernel's lifetime, and followed by virtual space that only `grow` maps.
pub unsafe fn init(start: *mut u8, size: usize, grow: GrowHook) {
    let mut heap = HEAP.heap.lock();
    assert!(heap.size() == 0, "heap::init: called twice");
    // SAFETY: the caller hands over exclusive use of the mapped region.
    unsafe { heap.init(start, size) };
    *HEAP.grow.lock() = Some(grow);
}

/// Grows the heap, if less than `headroom` bytes of it are free, through
/// `map(top, wanted)`, which maps at least `wanted` bytes at the heap's top and
/// returns how many it mapped.
pub fn ensure_headroom(headroom: usize, map: impl FnOnce(usize, usize) -> Option<usize>) {
    let mut heap = HEAP.heap.lock();
    let free = heap.size() - heap.used();
    if free >= headroom {
        return;
    }
    if let Some(added) = map(heap.top() as usize, headroom - free) {
        // SAFETY: `map` promises `added` usable bytes at the heap's top, mapped
        // and owned by nobody else.
        unsafe { heap.extend(added) };
    }
}

/// Bytes of the heap free now (without growing it).
pub fn free_bytes() -> usize {
    let heap = HEAP.heap.lock();
    heap.size() - heap.used()
}

/// Bytes the heap manages, and bytes in use.
pub fn usage() -> (usize, usize) {
    let heap = HEAP.heap.lock();
    (heap.size(), heap.used())
}

impl KernelHeap {
    /// Asks the grow hook for room for `layout`, then extends the heap.
    fn grow(&self, heap: &mut Heap, layout: Layout) -> bool {
        let Some(hook) = *self.grow.lock() else {
            return false;
        };
        let wanted = layout.size() + layout.align();
        let Some(added) = hook(heap.top() as usize, wanted) else {
            return false;
        };
        // SAFETY: the hook promises `added` usable bytes starting at `top`, mapped
        // and owned by nobody else.
        unsafe { heap.extend(added) };
        true
    }
}

// SAFETY: all state is behind locks; allocations come from `Heap`, which hands out
// disjoint, correctly aligned blocks of memory it owns.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let mut heap = self.heap.lock();
        loop {
            if let Ok(block) = heap.allocate_first_fit(layout) {
                return block.as_ptr();
            }
            if !self.grow(&mut heap, layout) {
                return ptr::null_mut();
            }
        }
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        if let Some(block) = NonNull::new(block) {
            // SAFETY: the caller passes a block this allocator returned with
            // `layout`, as `GlobalAlloc::dealloc` requires.
            unsafe { self.heap.lock().deallocate(block, layout) };
        }
    }
}
