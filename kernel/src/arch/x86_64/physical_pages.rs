//! Page contents through the physical-memory map, for the compressed swap pool.

use crate::swap::pool::{PageBytes, PhysicalPages};
use crate::vm::page::Pfn;

use super::memory::frame_pointer;

/// Reaches every frame through the bootloader's mapping of all physical
/// memory (`memory::physical_offset`), as references. Built only with
/// [`new`](Self::new), whose contract makes those references sound.
#[derive(Debug)]
pub struct PhysicalMap {
    _private: (),
}

impl PhysicalMap {
    /// A map for one holder.
    ///
    /// # Safety
    /// The holder asks only for frames it owns, and while a reference it got
    /// lives nothing else reads or writes that frame (no other reference, no
    /// mapping in use, no other `PhysicalMap`). The compressed pool keeps this:
    /// it asks for its own storage frames, which it took from the allocator,
    /// and for the frame the VM hands to `write` or `read` for the call.
    pub unsafe fn new() -> PhysicalMap {
        PhysicalMap { _private: () }
    }
}

impl PhysicalPages for PhysicalMap {
    fn page(&self, pfn: Pfn) -> &PageBytes {
        // SAFETY: all physical memory is mapped at the physical offset, so the
        // address is mapped, readable and page-aligned (bytes need no more);
        // by `new`'s contract nothing writes the frame while the reference,
        // bounded by this borrow of `self`, lives.
        unsafe { &*frame_pointer(pfn).cast::<PageBytes>() }
    }

    fn page_mut(&mut self, pfn: Pfn) -> &mut PageBytes {
        // SAFETY: as in `page`, and the mapping is writable; by `new`'s
        // contract nothing else touches the frame while the reference lives,
        // and this exclusive borrow of `self` keeps the holder from making a
        // second one meanwhile.
        unsafe { &mut *frame_pointer(pfn).cast::<PageBytes>() }
    }
}
