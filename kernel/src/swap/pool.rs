//! A compressed swap pool in memory, like Linux's zram: pages written to it are
//! compressed with LZ4 and packed into frames of the pool's own.
//!
//! # Why LZ4, and `lz4_flex`
//! Page-out runs when memory is short, with the VM lock held, so it must be
//! cheap: LZ4 compresses a page in microseconds and decompresses faster still,
//! at a ratio that is modest (ordinary data halves or better) but pays for
//! itself; slower, tighter codecs (zstd, deflate) would make reclaim the
//! bottleneck. `lz4_flex` is a pure-Rust `no_std` LZ4 whose block module is
//! free of unsafe code in its safe modes, which the pool uses: a corrupt or
//! hostile block makes decoding fail, never write out of bounds. Without its
//! `alloc` feature its hash table is a plain array that the pool keeps and
//! reuses, so compressing a page allocates nothing.
//!
//! # Storage
//! Compressed pages live in frames the pool takes from the [`FrameAllocator`]
//! handed to `write` and gives back in `discard` as soon as one empties, so
//! they are counted like every other frame. Frames are grouped in spans of one
//! to four, each cut into equal blocks of one size class (multiples of
//! [`GRAIN`] bytes, see `blocks`), several pages to a frame: a page that
//! compresses to a little over 2 KiB takes 4/7 of a frame, not a whole one. A
//! page that compresses to more than [`MAX_BLOCK`] bytes is refused
//! (`OutOfMemory`): storing it would save too little, and the VM then tries
//! another device. The pool never holds more than its capacity in frames;
//! past that `write` is refused too. A page filled with one byte value (zeros,
//! most often) takes no block at all: the slot keeps the byte.
//!
//! # Memory
//! All metadata is allocated once, at construction, and fallibly: per slot its
//! location (8 bytes), per frame of capacity a record ([`blocks::RECORD_BYTES`]),
//! the compression table and one scratch buffer. `write`, `read` and `discard`
//! allocate nothing but frames. The pool reaches page contents only through
//! [`PhysicalPages`], which the kernel implements on the physical-memory map
//! and the host tests on an array; it never takes the VM lock (the VM holds it
//! while it calls the device).
#![forbid(unsafe_code)]

pub mod blocks;

#[cfg(test)]
mod tests;

use alloc::vec::Vec;
use lz4_flex::block::{
    CompressTable, compress_into_with_table, decompress_into, get_maximum_output_size,
};

use crate::vm::error::VmError;
use crate::vm::frame::FrameAllocator;
use crate::vm::page::{PAGE_SIZE, Pfn};
use crate::vm::swap::SwapDevice;
use blocks::{Block, BlockStore};
pub use blocks::{GRAIN, MAX_BLOCK};

/// Bytes in a page.
const PAGE: usize = PAGE_SIZE as usize;

/// A page of bytes.
pub type PageBytes = [u8; PAGE];

/// Access to the contents of physical frames.
///
/// The pool asks only for frames it owns: the frame the VM hands to `write` or
/// `read` (which the VM keeps from everyone else meanwhile) and the pool's
/// own storage frames.
pub trait PhysicalPages {
    /// The contents of frame `pfn`.
    fn page(&self, pfn: Pfn) -> &PageBytes;

    /// The contents of frame `pfn`, to write.
    fn page_mut(&mut self, pfn: Pfn) -> &mut PageBytes;
}

/// What one slot holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Location {
    /// Nothing.
    Empty,
    /// A page whose every byte is this one.
    Filled(u8),
    /// A compressed page of `length` bytes in block `index` of record
    /// `record` (a [`Block`], spelt out so the location packs into 8 bytes).
    Stored { record: u32, index: u8, length: u16 },
}

const _: () = assert!(core::mem::size_of::<Location>() == 8);

/// Bytes of metadata per slot.
pub const SLOT_BYTES: usize = core::mem::size_of::<Location>();

/// What the pool holds and has refused, for the monitor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStatistics {
    /// Slots holding a page (compressed or filled).
    pub pages: u64,
    /// Of those, pages filled with one byte value, which take no storage.
    pub filled_pages: u64,
    /// Compressed bytes of the stored pages.
    pub bytes_stored: u64,
    /// Frames held for storage.
    pub frames_held: usize,
    /// Frames the pool may hold.
    pub capacity_frames: usize,
    /// Writes refused because the page did not compress to [`MAX_BLOCK`].
    pub refused_incompressible: u64,
    /// Writes refused because the pool held its capacity (or the allocator
    /// had no frame).
    pub refused_full: u64,
}

/// The compressed pool (see the module documentation), reaching memory
/// through `P`.
pub struct CompressedPool<P> {
    memory: P,
    /// One location per slot.
    slots: Vec<Location>,
    store: BlockStore,
    /// The compressor's hash table, kept off the stack (16 KiB: the enum is
    /// as large as its 32-bit variant, though pages use the 16-bit one).
    table: Vec<CompressTable>,
    /// Compressed output, and compressed input on the way back.
    scratch: Vec<u8>,
    statistics: PoolStatistics,
}

impl<P: PhysicalPages> CompressedPool<P> {
    /// A pool of `slots` slots holding at most `capacity_frames` frames,
    /// reaching memory through `memory`. Allocates all its metadata here:
    /// `OutOfMemory` if the heap cannot have it.
    pub fn with_memory(
        memory: P,
        capacity_frames: usize,
        slots: u32,
    ) -> Result<CompressedPool<P>, VmError> {
        let store = BlockStore::new(capacity_frames)?;
        let mut locations = Vec::new();
        locations.try_reserve_exact(slots as usize).map_err(|_| VmError::OutOfMemory)?;
        locations.resize(slots as usize, Location::Empty);
        let mut table = Vec::new();
        table.try_reserve_exact(1).map_err(|_| VmError::OutOfMemory)?;
        table.push(CompressTable::small());
        let mut scratch = Vec::new();
        let scratch_bytes = get_maximum_output_size(PAGE);
        scratch.try_reserve_exact(scratch_bytes).map_err(|_| VmError::OutOfMemory)?;
        scratch.resize(scratch_bytes, 0);
        let statistics = PoolStatistics { capacity_frames, ..PoolStatistics::default() };
        Ok(CompressedPool { memory, slots: locations, store, table, scratch, statistics })
    }

    /// What the pool holds now and has refused so far.
    pub fn statistics(&self) -> PoolStatistics {
        PoolStatistics { frames_held: self.store.held(), ..self.statistics }
    }

    /// Bytes of metadata the pool allocated at construction.
    pub fn metadata_bytes(&self) -> usize {
        self.slots.len() * SLOT_BYTES
            + self.store.capacity() * blocks::RECORD_BYTES
            + core::mem::size_of::<CompressTable>()
            + self.scratch.len()
    }

    /// The memory the pool reaches pages through (for tests, which fill and
    /// check frames through it).
    #[cfg(test)]
    fn memory(&self) -> &P {
        &self.memory
    }

    /// The memory the pool reaches pages through, to change.
    #[cfg(test)]
    fn memory_mut(&mut self) -> &mut P {
        &mut self.memory
    }

    /// The location of `slot`, or `InvalidArgument` past the last slot.
    fn location(&self, slot: u32) -> Result<Location, VmError> {
        self.slots.get(slot as usize).copied().ok_or(VmError::InvalidArgument)
    }

    /// Compresses frame `pfn` into `scratch`: its length, or `OutOfMemory`
    /// when it is longer than [`MAX_BLOCK`].
    fn compress(&mut self, pfn: Pfn) -> Result<usize, VmError> {
        let page = self.memory.page(pfn);
        let length = compress_into_with_table(page, &mut self.scratch, &mut self.table[0])
            .map_err(|_| VmError::OutOfMemory)?;
        if length > MAX_BLOCK {
            self.statistics.refused_incompressible += 1;
            return Err(VmError::OutOfMemory);
        }
        Ok(length)
    }

    /// Copies the first `length` bytes of `scratch` into a new block.
    fn store(&mut self, frames: &mut FrameAllocator<'_>, length: usize) -> Result<Block, VmError> {
        let block = self.store.allocate(frames, blocks::class_of(length)).inspect_err(|_| {
            self.statistics.refused_full += 1;
        })?;
        let (first, rest) = self.store.extents(block, length);
        let mut copied = 0;
        for extent in [Some(first), rest].into_iter().flatten() {
            let bytes = extent.end - extent.start;
            let target = &mut self.memory.page_mut(extent.pfn)[extent.start..extent.end];
            target.copy_from_slice(&self.scratch[copied..copied + bytes]);
            copied += bytes;
        }
        Ok(block)
    }

    /// Records that `slot` holds `location` now.
    fn set(&mut self, slot: u32, location: Location) {
        let statistics = &mut self.statistics;
        match location {
            Location::Empty => {}
            Location::Filled(_) => {
                statistics.pages += 1;
                statistics.filled_pages += 1;
            }
            Location::Stored { length, .. } => {
                statistics.pages += 1;
                statistics.bytes_stored += u64::from(length);
            }
        }
        self.slots[slot as usize] = location;
    }
}

/// The byte every byte of `page` is, if there is one.
fn fill_byte(page: &PageBytes) -> Option<u8> {
    let first = page[0];
    let word = u64::from_ne_bytes([first; 8]);
    let same = page.as_chunks::<8>().0.iter().all(|chunk| u64::from_ne_bytes(*chunk) == word);
    same.then_some(first)
}

impl<P: PhysicalPages + Send> SwapDevice for CompressedPool<P> {
    fn name(&self) -> &'static str {
        "pool"
    }

    fn slots(&self) -> u32 {
        self.slots.len() as u32
    }

    fn write(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        slot: u32,
        pfn: Pfn,
    ) -> Result<(), VmError> {
        self.location(slot)?;
        self.discard(frames, slot);
        if let Some(byte) = fill_byte(self.memory.page(pfn)) {
            self.set(slot, Location::Filled(byte));
            return Ok(());
        }
        let length = self.compress(pfn)?;
        let block = self.store(frames, length)?;
        let Block { record, index } = block;
        self.set(slot, Location::Stored { record, index, length: length as u16 });
        Ok(())
    }

    fn read(&mut self, slot: u32, pfn: Pfn) -> Result<(), VmError> {
        match self.location(slot)? {
            Location::Empty => Err(VmError::InvalidArgument),
            Location::Filled(byte) => {
                self.memory.page_mut(pfn).fill(byte);
                Ok(())
            }
            Location::Stored { record, index, length } => {
                let length = usize::from(length);
                let (first, rest) = self.store.extents(Block { record, index }, length);
                let mut copied = 0;
                for extent in [Some(first), rest].into_iter().flatten() {
                    let bytes = extent.end - extent.start;
                    let source = &self.memory.page(extent.pfn)[extent.start..extent.end];
                    self.scratch[copied..copied + bytes].copy_from_slice(source);
                    copied += bytes;
                }
                let page = self.memory.page_mut(pfn);
                match decompress_into(&self.scratch[..length], page) {
                    Ok(PAGE) => Ok(()),
                    _ => Err(VmError::BadFrame),
                }
            }
        }
    }

    fn discard(&mut self, frames: &mut FrameAllocator<'_>, slot: u32) {
        let Ok(location) = self.location(slot) else { return };
        let statistics = &mut self.statistics;
        match location {
            Location::Empty => return,
            Location::Filled(_) => statistics.filled_pages -= 1,
            Location::Stored { record, index, length } => {
                statistics.bytes_stored -= u64::from(length);
                self.store.release(frames, Block { record, index });
            }
        }
        self.statistics.pages -= 1;
        self.slots[slot as usize] = Location::Empty;
    }

    fn frames_held(&self) -> usize {
        self.store.held()
    }

    fn bytes_stored(&self) -> u64 {
        self.statistics.bytes_stored
    }
}
