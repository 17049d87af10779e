//! Physical page frames and their records: the `VmPage` array.
//!
//! Every usable 4 KiB frame of physical memory has exactly one [`VmPage`], kept in
//! one array sized at boot from the memory map (BSD's `vm_page_array`). The record
//! is what the rest of the VM knows about a frame: its number, how many
//! copy-on-write sharers it has, whether it was referenced, dirtied or pinned, and
//! the frame allocator's own bookkeeping (free-list links, state, buddy order).
//!
//! The array costs [`VM_PAGE_BYTES`] per frame, at most 16 bytes (0.4% of memory);
//! the budget is checked at compile time. To stay inside it the link words are
//! shared: while a frame is free they link its free list (or its processor's
//! frame cache), while it is allocated they hold the pin count and the swap
//! slot of its clean copy. Only [`crate::vm::frame`] changes a record.

use bitflags::bitflags;
use core::mem::size_of;

/// Size of a page frame in bytes.
pub const PAGE_SIZE: u64 = 4096;

/// log2 of [`PAGE_SIZE`]: a physical address shifted right by this is a frame number.
pub const PAGE_SHIFT: u32 = 12;

/// Size in bytes of one [`VmPage`], the per-frame cost of the page array.
pub const VM_PAGE_BYTES: usize = size_of::<VmPage>();

const _: () = assert!(size_of::<VmPage>() <= 16, "VmPage exceeds its 16-byte budget");

/// Link value meaning "no neighbour" in the allocator's index-linked free lists.
pub(super) const NO_LINK: u32 = u32::MAX;

/// A physical frame number: a physical address shifted right by [`PAGE_SHIFT`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pfn(pub u64);

impl Pfn {
    /// The physical address of the first byte of the frame.
    pub const fn addr(self) -> u64 {
        self.0 << PAGE_SHIFT
    }

    /// The frame that contains the physical address `address`.
    pub const fn from_addr(address: u64) -> Pfn {
        Pfn(address >> PAGE_SHIFT)
    }
}

bitflags! {
    /// What is known about a frame's use. Referenced and dirty belong to the page,
    /// not to any one mapping of it.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct PageFlags: u8 {
        /// The frame was read or written since the bit was last cleared.
        const REFERENCED = 1 << 0;
        /// The frame was written since the bit was last cleared.
        const DIRTY = 1 << 1;
        /// The frame is pinned (its pin count is non-zero) and may not be freed.
        const PINNED = 1 << 2;
    }
}

/// Where a frame is in the frame allocator's life cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameState {
    /// Never handed out and never free (taken by [`reserve`](crate::vm::frame::FrameAllocator::reserve)).
    Reserved,
    /// First frame of a free buddy block of `2^order` frames, on free list `order`.
    FreeHead {
        /// The block's buddy order.
        order: u8,
    },
    /// A free frame inside a block whose first frame is a [`FrameState::FreeHead`].
    FreeTail,
    /// Handed out; its reference count is at least one.
    Allocated,
    /// Free, but kept in a processor's frame cache instead of on a free list
    /// (see [`crate::vm::frame`]); its `next` word links the cache.
    Cached,
}

const KIND_SHIFT: u32 = 4;
const ORDER_MASK: u8 = (1 << KIND_SHIFT) - 1;
const KIND_RESERVED: u8 = 0;
const KIND_FREE_HEAD: u8 = 1;
const KIND_FREE_TAIL: u8 = 2;
const KIND_ALLOCATED: u8 = 3;
const KIND_CACHED: u8 = 4;

impl FrameState {
    /// Packs the state into one byte: kind in the high nibble, order in the low.
    const fn encode(self) -> u8 {
        match self {
            FrameState::Reserved => KIND_RESERVED << KIND_SHIFT,
            FrameState::FreeHead { order } => (KIND_FREE_HEAD << KIND_SHIFT) | (order & ORDER_MASK),
            FrameState::FreeTail => KIND_FREE_TAIL << KIND_SHIFT,
            FrameState::Allocated => KIND_ALLOCATED << KIND_SHIFT,
            FrameState::Cached => KIND_CACHED << KIND_SHIFT,
        }
    }

    /// Unpacks a byte made by `encode`; `None` for a byte it cannot have made.
    const fn decode(byte: u8) -> Option<FrameState> {
        let order = byte & ORDER_MASK;
        match (byte >> KIND_SHIFT, order) {
            (KIND_RESERVED, 0) => Some(FrameState::Reserved),
            (KIND_FREE_HEAD, order) => Some(FrameState::FreeHead { order }),
            (KIND_FREE_TAIL, 0) => Some(FrameState::FreeTail),
            (KIND_ALLOCATED, 0) => Some(FrameState::Allocated),
            (KIND_CACHED, 0) => Some(FrameState::Cached),
            _ => None,
        }
    }
}

/// The record of one physical frame. 16 bytes: frame number, two link words,
/// reference count, flags and state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C)]
pub struct VmPage {
    /// Frame number; frames at or above 2^32 (16 TiB) are not managed.
    frame: u32,
    /// Next free-list index while free; the swap slot of a clean copy while
    /// allocated (see [`VmPage::swap_copy`]).
    next: u32,
    /// Previous free-list index while free; pin count while allocated.
    shared: u32,
    /// Copy-on-write sharers (mappings or objects holding the frame).
    references: u16,
    /// Referenced, dirty, pinned.
    flags: PageFlags,
    /// [`FrameState`], packed.
    state: u8,
}

impl VmPage {
    /// An unused record, for initialising the array before the allocator fills it.
    pub const EMPTY: VmPage = VmPage {
        frame: 0,
        next: NO_LINK,
        shared: NO_LINK,
        references: 0,
        flags: PageFlags::empty(),
        state: FrameState::Reserved.encode(),
    };

    /// A reserved, unreferenced record for frame `frame` (which must fit 32 bits).
    pub(super) const fn reserved(frame: u32) -> VmPage {
        VmPage { frame, ..VmPage::EMPTY }
    }

    /// The frame this record describes.
    pub const fn pfn(&self) -> Pfn {
        Pfn(self.frame as u64)
    }

    /// Number of copy-on-write sharers; zero unless allocated.
    pub const fn ref_count(&self) -> u16 {
        self.references
    }

    /// The frame's flags.
    pub const fn flags(&self) -> PageFlags {
        self.flags
    }

    /// The frame's allocator state; `None` if the record is corrupt.
    pub const fn state(&self) -> Option<FrameState> {
        FrameState::decode(self.state)
    }

    /// Nested pins of an allocated frame; zero for any other frame.
    pub const fn pin_count(&self) -> u32 {
        match self.state() {
            Some(FrameState::Allocated) => self.shared,
            _ => 0,
        }
    }

    /// The swap slot that holds a clean copy of this allocated frame (read
    /// from it and not written since), if any. The free-list word holds it
    /// while the frame is allocated.
    pub const fn swap_copy(&self) -> Option<u32> {
        match self.state() {
            Some(FrameState::Allocated) if self.next != NO_LINK => Some(self.next),
            _ => None,
        }
    }

    /// Records (or clears) the slot holding a clean copy; the frame is allocated.
    pub(super) fn set_swap_copy(&mut self, slot: Option<u32>) {
        self.next = slot.unwrap_or(NO_LINK);
    }

    /// Sets the allocator state.
    pub(super) fn set_state(&mut self, state: FrameState) {
        self.state = state.encode();
    }

    /// Next free-list index ([`NO_LINK`] at the tail).
    pub(super) const fn next(&self) -> u32 {
        self.next
    }

    /// Previous free-list index ([`NO_LINK`] at the head); meaningful only while free.
    pub(super) const fn previous(&self) -> u32 {
        self.shared
    }

    /// Sets both free-list links.
    pub(super) fn set_links(&mut self, previous: u32, next: u32) {
        self.shared = previous;
        self.next = next;
    }

    /// Sets the next free-list link.
    pub(super) fn set_next(&mut self, next: u32) {
        self.next = next;
    }

    /// Sets the previous free-list link.
    pub(super) fn set_previous(&mut self, previous: u32) {
        self.shared = previous;
    }

    /// Sets the pin count; the caller keeps the state allocated.
    pub(super) fn set_pin_count(&mut self, pins: u32) {
        self.shared = pins;
    }

    /// Sets the copy-on-write reference count.
    pub(super) fn set_ref_count(&mut self, references: u16) {
        self.references = references;
    }

    /// Replaces the flags.
    pub(super) fn set_flags(&mut self, flags: PageFlags) {
        self.flags = flags;
    }
}

impl Default for VmPage {
    fn default() -> Self {
        VmPage::EMPTY
    }
}

#[cfg(test)]
mod tests;
