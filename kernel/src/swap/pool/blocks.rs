//! The pool's frames, grouped in spans and cut into equal blocks by size class.
//!
//! A compressed page of `n` bytes takes one block of the smallest class that
//! holds it: class `c` has blocks of `c * GRAIN` bytes. A class's blocks are
//! laid end to end over a span of one to [`SPAN_MAX`] frames, as many frames as
//! waste the least (as Linux's zsmalloc does): 64-byte blocks fill one frame
//! exactly, but a 2112-byte block alone in a frame would save nothing, while
//! seven of them fill four frames to 90%. A block may thus straddle two
//! frames of its span ([`Extent`]s). Each span has a record with its class, its
//! frames and a bitmap of blocks in use; the spans of a class that still have a
//! free block are on that class's list, so finding a block is a look at the
//! list's head and one `trailing_zeros`. A span whose last block is released
//! gives its frames back to the allocator at once.
//!
//! The records are allocated once, one per frame of the pool's capacity (there
//! are never more spans than frames); unused ones form a free list. Nothing here
//! allocates memory except frames.
#![forbid(unsafe_code)]

use alloc::vec::Vec;

use crate::vm::error::VmError;
use crate::vm::frame::FrameAllocator;
use crate::vm::page::{PAGE_SIZE, Pfn};

/// Bytes per step between size classes.
pub const GRAIN: usize = 64;

/// Largest block: a page compressed to more than this is not worth storing.
pub const MAX_BLOCK: usize = PAGE * 3 / 4;

/// Most frames in a span.
pub const SPAN_MAX: usize = 4;

/// Bytes in a page.
const PAGE: usize = PAGE_SIZE as usize;

/// Size classes: class `c` (1..=CLASSES) holds blocks of `c * GRAIN` bytes.
const CLASSES: usize = MAX_BLOCK / GRAIN;

/// Frames in a span of each class (index `class - 1`).
const SPAN_FRAMES: [u8; CLASSES] = span_frames();

/// The end of a list of records.
const NONE: u32 = u32::MAX;

/// For each class, the span of 1 to [`SPAN_MAX`] frames its blocks fill best
/// (the fewest frames among equals), with at most 64 blocks (one bitmap).
const fn span_frames() -> [u8; CLASSES] {
    let mut spans = [1; CLASSES];
    let mut class = 1;
    while class <= CLASSES {
        let size = class * GRAIN;
        let (mut best, mut best_used) = (1, 0);
        let mut frames = 1;
        while frames <= SPAN_MAX {
            let blocks = frames * PAGE / size;
            // Bytes used per span byte, compared as fractions without division.
            let used = blocks * size * SPAN_MAX / frames;
            if blocks <= 64 && used > best_used {
                (best, best_used) = (frames, used);
            }
            frames += 1;
        }
        spans[class - 1] = best as u8;
        class += 1;
    }
    spans
}

/// Where one stored block is: a record (span) and a block in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    /// Index of the span's record.
    pub record: u32,
    /// Block number inside the span.
    pub index: u8,
}

/// A run of bytes in one frame: `start..end` of frame `pfn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// The frame.
    pub pfn: Pfn,
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

/// One span of the pool, or an unused record (then `class` is 0).
#[derive(Clone, Copy, Debug)]
struct Span {
    /// Frame numbers of the span's frames (the first `SPAN_FRAMES[class - 1]`).
    frames: [u32; SPAN_MAX],
    /// Bit `i` is set when block `i` holds data.
    used: u64,
    /// Next record on the class's list of spans with room, or on the list of
    /// unused records.
    next: u32,
    /// Previous record on the class's list (unused records: `NONE`).
    previous: u32,
    /// Size class, 1..=CLASSES; 0 for an unused record.
    class: u8,
}

impl Span {
    /// An unused record whose free-list successor is `next`.
    const fn unused(next: u32) -> Span {
        Span { frames: [0; SPAN_MAX], used: 0, next, previous: NONE, class: 0 }
    }
}

/// Bytes of metadata per frame of capacity.
pub const RECORD_BYTES: usize = core::mem::size_of::<Span>();

/// The size class of a block of `length` bytes (`1..=MAX_BLOCK`).
pub fn class_of(length: usize) -> u8 {
    debug_assert!((1..=MAX_BLOCK).contains(&length), "class_of: bad length");
    length.div_ceil(GRAIN) as u8
}

/// Bytes in a block of `class`.
fn block_size(class: u8) -> usize {
    usize::from(class) * GRAIN
}

/// Frames in a span of `class`.
pub fn span_of(class: u8) -> usize {
    usize::from(SPAN_FRAMES[usize::from(class) - 1])
}

/// Blocks in a span of `class` (at most 64, so a `u64` bitmap holds them).
fn blocks_per_span(class: u8) -> u32 {
    (span_of(class) * PAGE / block_size(class)) as u32
}

/// The bitmap of a span of `class` with every block in use.
fn full_mask(class: u8) -> u64 {
    u64::MAX >> (64 - blocks_per_span(class))
}

/// The pool's spans and their blocks (see the module documentation).
pub struct BlockStore {
    /// One record per frame of capacity.
    records: Vec<Span>,
    /// First unused record, or `NONE`.
    unused: u32,
    /// Per class (index `class - 1`), the first span with a free block.
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
                .map(|next| Span::unused(if next == capacity { NONE } else { next as u32 })),
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

    /// Takes a free block of `class`, from a span of that class with room or
    /// else a new span of frames from `frames`. `OutOfMemory` when the new
    /// span would take the store past its capacity, or the allocator runs out.
    pub fn allocate(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        class: u8,
    ) -> Result<Block, VmError> {
        let list = usize::from(class) - 1;
        if self.with_room[list] == NONE {
            self.add_span(frames, class)?;
        }
        let record = self.with_room[list];
        let span = &mut self.records[record as usize];
        let index = (!span.used).trailing_zeros();
        span.used |= 1 << index;
        if span.used == full_mask(class) {
            self.unlink(record);
        }
        Ok(Block { record, index: index as u8 })
    }

    /// Gives back a block that [`allocate`](Self::allocate) handed out; the
    /// span's frames go back to `frames` when it was its last block in use.
    pub fn release(&mut self, frames: &mut FrameAllocator<'_>, block: Block) {
        let span = &mut self.records[block.record as usize];
        let bit = 1u64 << block.index;
        assert!(span.class != 0 && span.used & bit != 0, "BlockStore::release: block not in use");
        let was_full = span.used == full_mask(span.class);
        span.used &= !bit;
        let (now_empty, class, numbers) = (span.used == 0, span.class, span.frames);
        if !was_full && now_empty {
            self.unlink(block.record);
        }
        if now_empty {
            for &number in &numbers[..span_of(class)] {
                let freed = frames.free(Pfn(number.into()));
                freed.expect("BlockStore::release: allocator refused a pool frame");
            }
            self.records[block.record as usize] = Span::unused(self.unused);
            self.unused = block.record;
            self.held -= span_of(class);
        } else if was_full {
            self.push(block.record, class);
        }
    }

    /// The bytes of the first `length` bytes of `block`: one extent, or two
    /// when the block straddles two frames of its span.
    pub fn extents(&self, block: Block, length: usize) -> (Extent, Option<Extent>) {
        let span = &self.records[block.record as usize];
        let start = usize::from(block.index) * block_size(span.class);
        let (frame, offset) = (start / PAGE, start % PAGE);
        let first_end = (offset + length).min(PAGE);
        let pfn = |frame: usize| Pfn(span.frames[frame].into());
        let first = Extent { pfn: pfn(frame), start: offset, end: first_end };
        let rest = offset + length - first_end;
        (first, (rest > 0).then(|| Extent { pfn: pfn(frame + 1), start: 0, end: rest }))
    }

    /// Takes a span of frames from `frames` for `class` and puts it on the
    /// class's list; on failure gives back what it took.
    fn add_span(&mut self, frames: &mut FrameAllocator<'_>, class: u8) -> Result<(), VmError> {
        let record = self.unused;
        let count = span_of(class);
        if record == NONE || self.held + count > self.capacity() {
            return Err(VmError::OutOfMemory);
        }
        let mut numbers = [0u32; SPAN_MAX];
        for taken in 0..count {
            match frames.alloc() {
                Ok(pfn) => {
                    numbers[taken] = u32::try_from(pfn.0).expect("BlockStore: frame above 2^32")
                }
                Err(error) => {
                    for &number in &numbers[..taken] {
                        frames.free(Pfn(number.into())).expect("BlockStore: give back a frame");
                    }
                    return Err(error);
                }
            }
        }
        self.unused = self.records[record as usize].next;
        self.records[record as usize] =
            Span { frames: numbers, used: 0, next: NONE, previous: NONE, class };
        self.push(record, class);
        self.held += count;
        Ok(())
    }

    /// Puts `record` at the head of the list of spans of `class` with room.
    fn push(&mut self, record: u32, class: u8) {
        let list = usize::from(class) - 1;
        let old_head = self.with_room[list];
        let span = &mut self.records[record as usize];
        span.next = old_head;
        span.previous = NONE;
        if old_head != NONE {
            self.records[old_head as usize].previous = record;
        }
        self.with_room[list] = record;
    }

    /// Takes `record` off its class's list of spans with room.
    fn unlink(&mut self, record: u32) {
        let Span { next, previous, class, .. } = self.records[record as usize];
        if previous == NONE {
            self.with_room[usize::from(class) - 1] = next;
        } else {
            self.records[previous as usize].next = next;
        }
        if next != NONE {
            self.records[next as usize].previous = previous;
        }
        let span = &mut self.records[record as usize];
        span.next = NONE;
        span.previous = NONE;
    }
}
