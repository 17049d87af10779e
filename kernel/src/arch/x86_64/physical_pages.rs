//! Page contents through the physical-memory map, for the compressed swap pool.

use crate::swap::pool::{PageBytes, PhysicalPages};
use crate::vm::page::Pfn;

use super::memory::frame_pointer;

/// Reaches every frame through the bootloader's mapping of all physical
/// memory (`memory::physical_offset`). Its users ask only for frames they own
/// (the [`PhysicalPages`] contract): the pool's storage frames, and the frame
/// the VM hands to the pool with its lock held.
#[derive(Clone, Copy, Debug, Default)]
pub struct PhysicalMap;

impl PhysicalPages for PhysicalMap {
    fn page(&self, pfn: Pfn) -> &PageBytes {
        // SAFETY: all physical memory is mapped at the physical offset, so the
        // address is mapped, readable and page-aligned (alignment 1 suffices
        // for bytes); the caller owns the frame, so nothing writes it while
        // the borrow of `self` that bounds this reference lasts.
        unsafe { &*frame_pointer(pfn).cast::<PageBytes>() }
    }

    fn page_mut(&mut self, pfn: Pfn) -> &mut PageBytes {
        // SAFETY: as in `page`, and the mapping is writable; the caller owns
        // the frame and this exclusive borrow of `self` bounds the reference,
        // so no other reference to the frame is made through this map
        // meanwhile.
        unsafe { &mut *frame_pointer(pfn).cast::<PageBytes>() }
    }
}
