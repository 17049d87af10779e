//! The kernel heap: first-fit arenas that are mapped on demand and given back.
//!
//! The heap's virtual region is cut into [`ARENA_BYTES`] slots. An *arena* is a
//! `linked_list_allocator` heap over one slot (or, for an allocation too large
//! for one, over as many consecutive slots as it needs), mapped from its start
//! in steps as it grows. Allocation tries the arenas in address order, so memory
//! in use gathers at the bottom of the region; then grows an arena that has
//! unmapped room; then starts a new arena in the lowest free slots. Mapping goes
//! through a hook the machine layer installs (it takes frames from the frame
//! allocator, or from a reserve while the VM lock is held).
//!
//! Frames go back: [`trim`], which the machine layer calls whenever it holds the
//! frame allocator, unmaps every arena with nothing allocated in it (from the
//! top down, the first arena excepted) as long as the heap keeps the free room
//! asked for. So after a program that made the kernel heap grow has ended, its
//! arenas empty out and their frames return to the frame allocator.
//!
//! Running out of frames makes an allocation fail (null), never panic inside
//! the allocator.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicU64, Ordering};
use linked_list_allocator::Heap;
use spin::Mutex;

/// Virtual bytes of one arena slot.
pub const ARENA_BYTES: usize = 512 * 1024;
/// Slots in the heap region (1 GiB).
const SLOTS: usize = 2048;
/// Smallest step by which an arena's mapping grows.
const STEP: usize = 64 * 1024;
/// Marks a slot that belongs to no arena.
const NO_ARENA: u16 = u16::MAX;

/// Maps fresh memory over `[start, start + length)` of the heap region (both
/// page-aligned); false if it could not (nothing is then mapped).
pub type MapHook = fn(start: usize, length: usize) -> bool;

/// Every arena, by slot.
struct Arenas {
    /// Where slot 0 starts (0 until `init`).
    base: usize,
    /// The heap of the arena starting at each slot (empty elsewhere).
    heaps: [Heap; SLOTS],
    /// Slots spanned by the arena starting at each slot (0 elsewhere).
    span: [u16; SLOTS],
    /// The first slot of the arena each slot belongs to, or [`NO_ARENA`].
    owner: [u16; SLOTS],
    /// One past the highest slot in use.
    high: usize,
    /// Bytes mapped, over every arena.
    mapped: usize,
    /// Bytes in use, over every arena.
    in_use: usize,
    /// Arenas with nothing allocated, the first excepted (which stays): what
    /// [`trim`] could give back, so that it need not look when there is none.
    empty: usize,
    /// How the heap maps memory.
    map: Option<MapHook>,
}

struct KernelHeap {
    arenas: Mutex<Arenas>,
}

/// Allocations and frees so far: a refill that sees the same count as the
/// last one knows the heap has not changed since (see [`changes`]).
static CHANGES: AtomicU64 = AtomicU64::new(0);

/// How many times the heap has changed (an allocation, a free, growth or a
/// trim); the same count twice means nothing changed between.
pub fn changes() -> u64 {
    CHANGES.load(Ordering::Acquire)
}

#[global_allocator]
static HEAP: KernelHeap = KernelHeap {
    arenas: Mutex::new(Arenas {
        base: 0,
        heaps: [const { Heap::empty() }; SLOTS],
        span: [0; SLOTS],
        owner: [NO_ARENA; SLOTS],
        high: 0,
        mapped: 0,
        in_use: 0,
        empty: 0,
        map: None,
    }),
};

/// Starts the heap on `size` mapped bytes at `start`, the beginning of a
/// region of `SLOTS * ARENA_BYTES` bytes that only the heap uses, growing
/// through `map`.
///
/// # Safety
/// `start..start + size` must be mapped, writable and unused by anything else
/// for the kernel's lifetime, `size` at most [`ARENA_BYTES`], and the rest of
/// the region mapped only by `map`, at the heap's request.
pub unsafe fn init(start: *mut u8, size: usize, map: MapHook) {
    let mut arenas = HEAP.arenas.lock();
    assert!(arenas.base == 0, "heap::init: called twice");
    assert!(size <= ARENA_BYTES, "heap::init: first arena too large");
    arenas.base = start as usize;
    arenas.map = Some(map);
    // SAFETY: the caller hands over exclusive use of the mapped range.
    unsafe { arenas.heaps[0].init(start, size) };
    arenas.mapped = size;
    arenas.claim(0, 1);
}

/// Grows the heap, if less than `headroom` bytes of it are free, through
/// `map(start, length)`, which maps exactly that range and says whether it did.
/// Returns whether `headroom` bytes are free.
pub fn ensure_headroom(headroom: usize, mut map: impl FnMut(usize, usize) -> bool) -> bool {
    let mut arenas = HEAP.arenas.lock();
    if arenas.free() < headroom {
        CHANGES.fetch_add(1, Ordering::Release);
    }
    while arenas.free() < headroom {
        let wanted = headroom - arenas.free();
        if !arenas.grow(wanted.min(ARENA_BYTES / 2), &mut map) {
            return false;
        }
    }
    true
}

/// Unmaps empty arenas, highest first, while more than `keep` bytes would stay
/// free, through `unmap(start, length)`, which unmaps that range and gives its
/// frames back. Returns the bytes given back.
pub fn trim(keep: usize, mut unmap: impl FnMut(usize, usize)) -> usize {
    let mut arenas = HEAP.arenas.lock();
    let mut free = arenas.free();
    let mut given = 0;
    if free <= keep || arenas.empty == 0 {
        return 0;
    }
    CHANGES.fetch_add(1, Ordering::Release);
    for slot in (1..arenas.high).rev() {
        let size = arenas.heaps[slot].size();
        let empty = arenas.span[slot] > 0 && arenas.heaps[slot].used() == 0;
        if empty && free >= keep + size {
            let start = arenas.heaps[slot].bottom() as usize;
            arenas.release(slot);
            unmap(start, size);
            free -= size;
            given += size;
        }
    }
    given
}

/// Bytes the heap has mapped, and bytes in use.
pub fn usage() -> (usize, usize) {
    let arenas = HEAP.arenas.lock();
    (arenas.size(), arenas.used())
}

impl Arenas {
    /// The arenas' first slots, in address order.
    fn starts(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.high).filter(|&slot| self.span[slot] > 0)
    }

    /// Bytes mapped.
    fn size(&self) -> usize {
        self.mapped
    }

    /// Bytes in use.
    fn used(&self) -> usize {
        self.in_use
    }

    /// Bytes free.
    fn free(&self) -> usize {
        self.size() - self.used()
    }

    /// The address where `slot` begins.
    fn slot_start(&self, slot: usize) -> usize {
        self.base + slot * ARENA_BYTES
    }

    /// Marks `slots` slots from `first` as one arena's.
    fn claim(&mut self, first: usize, slots: usize) {
        self.span[first] = slots as u16;
        for owner in &mut self.owner[first..first + slots] {
            *owner = first as u16;
        }
        self.high = self.high.max(first + slots);
    }

    /// Forgets the (empty) arena starting at `first`.
    fn release(&mut self, first: usize) {
        let slots = usize::from(self.span[first]);
        self.empty -= 1;
        self.mapped -= self.heaps[first].size();
        self.heaps[first] = Heap::empty();
        self.span[first] = 0;
        for owner in &mut self.owner[first..first + slots] {
            *owner = NO_ARENA;
        }
        while self.high > 0 && self.owner[self.high - 1] == NO_ARENA {
            self.high -= 1;
        }
    }

    /// Allocates from the arenas there are, lowest first.
    fn allocate(&mut self, layout: Layout) -> Option<NonNull<u8>> {
        for slot in 0..self.high {
            if self.span[slot] == 0 {
                continue;
            }
            let heap = &mut self.heaps[slot];
            let before = heap.used();
            if let Ok(block) = heap.allocate_first_fit(layout) {
                self.in_use += heap.used() - before;
                if before == 0 && slot != 0 {
                    self.empty -= 1;
                }
                return Some(block);
            }
        }
        None
    }

    /// Makes room for at least `bytes` more in one piece: grows an arena with
    /// unmapped room left, or starts a new one. False if mapping failed or the
    /// region is full.
    fn grow(&mut self, bytes: usize, map: &mut impl FnMut(usize, usize) -> bool) -> bool {
        let length = bytes.next_multiple_of(STEP);
        let growable = self.starts().find(|&slot| {
            let end = self.slot_start(slot) + usize::from(self.span[slot]) * ARENA_BYTES;
            self.heaps[slot].top() as usize + length <= end
        });
        if let Some(slot) = growable {
            let top = self.heaps[slot].top() as usize;
            if !map(top, length) {
                return false;
            }
            // SAFETY: `map` just mapped `length` bytes at the arena's top, inside
            // its slots, which nothing but this arena uses.
            unsafe { self.heaps[slot].extend(length) };
            self.mapped += length;
            return true;
        }
        self.start_arena(length, map)
    }

    /// Starts an arena in the lowest free slots that hold `length` bytes,
    /// mapping them. False if there are none or mapping failed.
    fn start_arena(&mut self, length: usize, map: &mut impl FnMut(usize, usize) -> bool) -> bool {
        let length = length.next_multiple_of(STEP);
        let slots = length.div_ceil(ARENA_BYTES);
        let Some(first) = (0..=SLOTS - slots)
            .find(|&first| self.owner[first..first + slots].iter().all(|&o| o == NO_ARENA))
        else {
            return false;
        };
        let start = self.slot_start(first);
        if !map(start, length) {
            return false;
        }
        // SAFETY: `map` just mapped `length` bytes at `start`, the beginning of
        // free slots that only this new arena will use.
        unsafe { self.heaps[first].init(start as *mut u8, length) };
        self.mapped += length;
        self.claim(first, slots);
        if first != 0 {
            self.empty += 1;
        }
        true
    }

    /// Gives a block back to the arena it came from.
    ///
    /// # Safety
    /// `block` came from [`Arenas::allocate`] with `layout`.
    unsafe fn deallocate(&mut self, block: NonNull<u8>, layout: Layout) {
        let slot = (block.as_ptr() as usize - self.base) / ARENA_BYTES;
        let first = usize::from(self.owner[slot]);
        let heap = &mut self.heaps[first];
        let before = heap.used();
        // SAFETY: the block came from this arena's heap with this layout (the
        // caller's promise, and the arena owning its slot is the one that gave
        // it out).
        unsafe { heap.deallocate(block, layout) };
        self.in_use -= before - heap.used();
        if heap.used() == 0 && first != 0 {
            self.empty += 1;
        }
    }
}

// SAFETY: all state is behind the lock; blocks come from the arenas' heaps,
// which hand out disjoint, correctly aligned blocks of memory they own, and
// each block goes back to the arena that owns its address.
unsafe impl GlobalAlloc for KernelHeap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        CHANGES.fetch_add(1, Ordering::Release);
        let mut arenas = self.arenas.lock();
        if let Some(block) = arenas.allocate(layout) {
            return block.as_ptr();
        }
        let Some(map) = arenas.map else { return ptr::null_mut() };
        // Room for the block, its alignment and the allocator's bookkeeping.
        let wanted = layout.size() + layout.align() + 64;
        let grown = if wanted > ARENA_BYTES / 2 {
            arenas.start_arena(wanted, &mut |start, length| map(start, length))
        } else {
            arenas.grow(wanted, &mut |start, length| map(start, length))
        };
        if !grown {
            return ptr::null_mut();
        }
        arenas.allocate(layout).map_or(ptr::null_mut(), NonNull::as_ptr)
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        CHANGES.fetch_add(1, Ordering::Release);
        if let Some(block) = NonNull::new(block) {
            // SAFETY: the caller passes a block this allocator returned with
            // `layout`, as `GlobalAlloc::dealloc` requires.
            unsafe { self.arenas.lock().deallocate(block, layout) };
        }
    }
}
