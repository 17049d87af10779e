//! The pool's frames, cut into equal blocks by size class.
//!
//! A compressed page of `n` bytes takes one block of the smallest class that
//! holds it: class `c` has blocks of `c * GRAIN` bytes, as many as fit in a
//! frame (64 of 64 bytes, one of 3072: a frame of class `c` wastes
//! `PAGE % (c * GRAIN)` bytes at its end). Each frame the pool holds has a
//! record with its class and a bitmap of blocks in use; the frames of a class
//! that still have a free block are on that class's list, so finding a block
//! is a look at the list's head and one `trailing_zeros`. A frame whose last
//! block is released goes back to the allocator at once.
//!
//! The records are allocated once, one per frame of the pool's capacity;
//! unused ones form a free list. Nothing here allocates memory except frames.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use crate::vm::error::VmError;
use crate::vm::frame::FrameAllocator;
use crate::vm::page::{PAGE_SIZE, Pfn};

/// Bytes per step between size classes.
pub const GRAIN: usize = 64;

/// Largest block: a page compressed to more than this is not worth storing.
pub const MAX_BLOCK: usize = PAGE_SIZE as usize * 3 / 4;

/// Size classes: class `c` (1..=CLASSES) holds blocks of `c * GRAIN` bytes.
const CLASSES: usize = MAX_BLOCK / GRAIN;

/// The end of a list of records.
const NONE: u32 = u32::MAX;

/// Where one stored block is: a record (pool frame) and a block in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// Index of the frame's record.
    pub record: u32,
    /// Block number inside the frame.
    pub index: u8,
}

/// One frame of the pool, or an unused record (then `class` is 0).
#[derive(Clone, Copy, Debug)]
struct PoolFrame {
    /// The frame.
    pfn: Pfn,
    /// Bit `i` is set when block `i` holds data.
    used: u64,
    /// Next record on the class's list of frames with room, or on the list
    /// of unused records.
    next: u32,
    /// Previous record on the class's list (unused records: `NONE`).
    previous: u32,
    /// Size class, 1..=CLASSES; 0 for an unused record.
    class: u8,
}

impl PoolFrame {
    /// An unused record whose free-list successor is `next`.
    const fn unused(next: u32) -> PoolFrame {
        PoolFrame { pfn: Pfn(0), used: 0, next, previous: NONE, class: 0 }
    }
}

/// Bytes of metadata per frame of capacity.
pub const RECORD_BYTES: usize = core::mem::size_of::<PoolFrame>();

/// The size class of a block of `length` bytes (`1..=MAX_BLOCK`).
pub fn class_of(length: usize) -> u8 {
    debug_assert!((1..=MAX_BLOCK).contains(&length), "class_of: bad length");
    length.div_ceil(GRAIN) as u8
}

/// Bytes in a block of `class`.
pub fn block_size(class: u8) -> usize {
    usize::from(class) * GRAIN
}

/// Blocks in a frame of `class` (at most 64, so a `u64` bitmap holds them).
fn blocks_per_frame(class: u8) -> u32 {
    (PAGE_SIZE as usize / block_size(class)) as u32
}

/// The bitmap of a frame of `class` with every block in use.
fn full_mask(class: u8) -> u64 {
    u64::MAX >> (64 - blocks_per_frame(class))
}

/// The pool's frames and their blocks (see the module documentation).
pub struct BlockStore {
    /// One record per frame of capacity.
    records: Vec<PoolFrame>,
    /// First unused record, or `NONE`.
    unused: u32,
    /// Per class (index `class - 1`), the first frame with a free block.
    with_room: [u32; CLASSES],
    /// Frames held now.
    held: usize,
}

impl BlockStore {
    /// A store that may hold up to `capacity` frames; its records are
    /// allocated here (`OutOfMemory` if the heap cannot have them,
    /// `InvalidArgument` if `capacity` does not fit a record index).
    pub fn new(capacity: usize) -> Result<BlockStore, VmError> {
        if capacity >= NONE as usize {
            return Err(VmError::InvalidArgument);
        }
        let mut records = Vec::new();
        records.try_reserve_exact(capacity).map_err(|_| VmError::OutOfMemory)?;
        records.extend(
            (1..=capacity)
                .map(|next| PoolFrame::unused(if next == capacity { NONE } else { next as u32 })),
        );
        let unused = if capacity == 0 { NONE } else { 0 };
        Ok(BlockStore { records, unused, with_room: [NONE; CLASSES], held: 0 })
    }

    /// Frames held now.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Frames the store may hold.
    pub fn capacity(&self) -> usize {
        self.records.len()
    }

    /// Takes a free block of `class`, from a frame of that class with room or
    /// else a new frame from `frames`. `OutOfMemory` when the store holds its
    /// capacity already, or the allocator has no frame.
    pub fn allocate(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        class: u8,
    ) -> Result<Block, VmError> {
        let list = usize::from(class) - 1;
        if self.with_room[list] == NONE {
            self.add_frame(frames, class)?;
        }
        let record = self.with_room[list];
        let frame = &mut self.records[record as usize];
        let index = (!frame.used).trailing_zeros();
        frame.used |= 1 << index;
        if frame.used == full_mask(class) {
            self.unlink(record);
        }
        Ok(Block { record, index: index as u8 })
    }

    /// Gives back a block that [`allocate`](Self::allocate) handed out; the
    /// frame goes back to `frames` when it was its last block in use.
    pub fn release(&mut self, frames: &mut FrameAllocator<'_>, block: Block) {
        let frame = &mut self.records[block.record as usize];
        let bit = 1u64 << block.index;
        assert!(frame.class != 0 && frame.used & bit != 0, "BlockStore::release: block not in use");
        let was_full = frame.used == full_mask(frame.class);
        frame.used &= !bit;
        let (now_empty, class, pfn) = (frame.used == 0, frame.class, frame.pfn);
        if !was_full && now_empty {
            self.unlink(block.record);
        }
        if now_empty {
            frames.free(pfn).expect("BlockStore::release: allocator refused a pool frame");
            self.records[block.record as usize] = PoolFrame::unused(self.unused);
            self.unused = block.record;
            self.held -= 1;
        } else if was_full {
            self.push(block.record, class);
        }
    }

    /// The frame that holds `block`, the block's first byte in it and its size.
    pub fn place(&self, block: Block) -> (Pfn, usize, usize) {
        let frame = &self.records[block.record as usize];
        let size = block_size(frame.class);
        (frame.pfn, usize::from(block.index) * size, size)
    }

    /// Takes a frame from `frames` for `class` and puts it on the class's list.
    fn add_frame(&mut self, frames: &mut FrameAllocator<'_>, class: u8) -> Result<(), VmError> {
        let record = self.unused;
        if record == NONE {
            return Err(VmError::OutOfMemory);
        }
        let pfn = frames.alloc()?;
        self.unused = self.records[record as usize].next;
        self.records[record as usize] =
            PoolFrame { pfn, used: 0, next: NONE, previous: NONE, class };
        self.push(record, class);
        self.held += 1;
        Ok(())
    }

    /// Puts `record` at the head of the list of frames of `class` with room.
    fn push(&mut self, record: u32, class: u8) {
        let list = usize::from(class) - 1;
        let old_head = self.with_room[list];
        let frame = &mut self.records[record as usize];
        frame.next = old_head;
        frame.previous = NONE;
        if old_head != NONE {
            self.records[old_head as usize].previous = record;
        }
        self.with_room[list] = record;
    }

    /// Takes `record` off its class's list of frames with room.
    fn unlink(&mut self, record: u32) {
        let PoolFrame { next, previous, class, .. } = self.records[record as usize];
        if previous == NONE {
            self.with_room[usize::from(class) - 1] = next;
        } else {
            self.records[previous as usize].next = next;
        }
        if next != NONE {
            self.records[next as usize].previous = previous;
        }
        let frame = &mut self.records[record as usize];
        frame.next = NONE;
        frame.previous = NONE;
    }
}
