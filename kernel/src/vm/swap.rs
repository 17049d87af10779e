//! Swap devices: where the contents of reclaimed pages go.
//!
//! A [`SwapDevice`] stores whole pages in numbered slots. The VM decides which
//! pages leave memory and which slot each one takes (see `reclaim`); a device
//! only moves bytes between a frame and a slot. Two kinds exist in the kernel:
//! a compressed pool in memory, which works on every machine, and a block
//! device (virtio-blk). The host tests use a simulated one.
//!
//! Devices reach physical memory themselves (the VM never does): `write`
//! reads the frame named, `read` fills it. A device may keep frames of its
//! own for storage (the pool keeps compressed pages in them); it takes them
//! from the frame allocator it is handed, so that they are counted like every
//! other frame, and gives them back in `discard`.
#![forbid(unsafe_code)]

use super::error::VmError;
use super::frame::FrameAllocator;
use super::page::Pfn;

/// A store of page-sized slots (see the module documentation).
///
/// Slots are numbered `0..slots()`. The VM writes a slot before it reads it,
/// never reads a slot it has discarded since, and discards a slot before it
/// writes other contents to it only through `write` (which replaces).
pub trait SwapDevice: Send {
    /// A short name for the monitor and the logs (`pool`, `disk`).
    fn name(&self) -> &'static str;

    /// How many slots the device has.
    fn slots(&self) -> u32;

    /// Stores the contents of frame `pfn` in `slot`, replacing what the slot
    /// held. Fails with `OutOfMemory` when the device cannot take this page
    /// now (a pool that is full, or a page that does not compress): the VM
    /// then tries another device, or another page. On failure the slot holds
    /// nothing the VM relies on. May take frames from `frames` for storage.
    fn write(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        slot: u32,
        pfn: Pfn,
    ) -> Result<(), VmError>;

    /// Fills frame `pfn` with the contents last written to `slot`. An error
    /// (a failing disk) leaves the frame's contents undefined.
    fn read(&mut self, slot: u32, pfn: Pfn) -> Result<(), VmError>;

    /// The slot's contents are no longer needed: storage it holds may go back
    /// (frames to `frames`).
    fn discard(&mut self, frames: &mut FrameAllocator<'_>, slot: u32);

    /// Frames the device holds for storage right now.
    fn frames_held(&self) -> usize {
        0
    }

    /// Bytes of stored data, before any packing overhead (for the monitor).
    fn bytes_stored(&self) -> u64 {
        0
    }
}
