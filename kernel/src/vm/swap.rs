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

/// Bytes of [`SwapSlots`] tables per slot: holders, free stack, discarded list.
pub const SLOT_TABLE_BYTES: usize = 2 + 4 + 4;

/// Which slots of the attached devices are in use, and by whom.
///
/// Slots of all devices share one numbering: device `d` owns
/// `ranges[d]`. A slot's holders are the chunk entries that name it (a page
/// whose contents are only there) plus the frames that were read from it
/// (their records name the slot): while such a frame is not dirty, the slot
/// still holds its contents, and reclaim drops the frame without writing. A slot with no holder is free: it goes
/// first to the discarded list, and back to its device's free stack once the
/// device has been told ([`SwapSlots::take_discarded`]), so that storage a
/// slot held is returned before the slot is written again.
///
/// The tables are allocated when a device is attached, never later: nothing
/// here allocates while pages are reclaimed.
#[derive(Debug, Default)]
pub struct SwapSlots {
    /// Holders per slot.
    holders: alloc::vec::Vec<u16>,
    /// Slots of each device, and its free slots (a stack).
    devices: alloc::vec::Vec<(core::ops::Range<u32>, alloc::vec::Vec<u32>)>,
    /// Slots freed since the devices were last told.
    discarded: alloc::vec::Vec<u32>,
    /// Chunk entries naming slots, over all slots.
    entries: u64,
}

/// What [`SwapSlots`] counts, for the monitor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SlotCounters {
    /// Slots of every device.
    pub total: u64,
    /// Slots with a holder (or not yet discarded).
    pub used: u64,
    /// Chunk entries naming a slot: pages whose only copy is in swap.
    pub entries: u64,
}

impl SwapSlots {
    /// Adds a device of `count` slots; returns its index. On failure nothing changed.
    pub fn attach(&mut self, count: u32) -> Result<usize, VmError> {
        let first = u32::try_from(self.holders.len()).map_err(|_| VmError::OutOfMemory)?;
        let end = first.checked_add(count).filter(|end| *end < 1 << 31);
        let end = end.ok_or(VmError::InvalidArgument)?;
        let total = end as usize;
        let mut free = alloc::vec::Vec::new();
        free.try_reserve_exact(count as usize).map_err(|_| VmError::OutOfMemory)?;
        self.devices.try_reserve(1).map_err(|_| VmError::OutOfMemory)?;
        self.holders
            .try_reserve_exact(total - self.holders.len())
            .map_err(|_| VmError::OutOfMemory)?;
        let more = total.saturating_sub(self.discarded.capacity());
        self.discarded.try_reserve_exact(more).map_err(|_| VmError::OutOfMemory)?;
        // Nothing below allocates. Low slots are handed out first.
        self.holders.resize(total, 0);
        free.extend((first..end).rev());
        self.devices.push((first..end, free));
        Ok(self.devices.len() - 1)
    }

    /// How many devices are attached.
    pub fn device_count(&self) -> usize {
        self.devices.len()
    }

    /// The device owning `slot`, and the slot's number on it.
    pub fn device_of(&self, slot: u32) -> (usize, u32) {
        let device = self
            .devices
            .iter()
            .position(|(range, _)| range.contains(&slot))
            .expect("SwapSlots::device_of: no such slot");
        (device, slot - self.devices[device].0.start)
    }

    /// A free slot of device `device`, with no holder yet.
    pub fn allocate(&mut self, device: usize) -> Option<u32> {
        self.devices.get_mut(device)?.1.pop()
    }

    /// Gives back a slot [`SwapSlots::allocate`] returned that got no holder.
    pub fn unallocate(&mut self, slot: u32) {
        debug_assert_eq!(self.holders[slot as usize], 0);
        let (device, _) = self.device_of(slot);
        self.devices[device].1.push(slot);
    }

    /// One more chunk entry names `slot`. `OutOfMemory` at the count's limit.
    pub fn hold_entry(&mut self, slot: u32) -> Result<(), VmError> {
        self.hold(slot)?;
        self.entries += 1;
        Ok(())
    }

    /// One chunk entry fewer names `slot`.
    pub fn drop_entry(&mut self, slot: u32) {
        self.entries -= 1;
        self.drop_holder(slot);
    }

    /// A frame now keeps a clean copy of `slot` (its record names the slot).
    pub(super) fn hold_cache(&mut self, slot: u32) -> Result<(), VmError> {
        self.hold(slot)
    }

    /// The frame holding a clean copy of `slot` let it go.
    pub(super) fn drop_cache(&mut self, slot: u32) {
        self.drop_holder(slot);
    }

    /// Holders of `slot`.
    pub fn holders(&self, slot: u32) -> u16 {
        self.holders[slot as usize]
    }

    fn hold(&mut self, slot: u32) -> Result<(), VmError> {
        let holders = &mut self.holders[slot as usize];
        *holders = holders.checked_add(1).ok_or(VmError::OutOfMemory)?;
        Ok(())
    }

    fn drop_holder(&mut self, slot: u32) {
        let holders = &mut self.holders[slot as usize];
        *holders = holders.checked_sub(1).expect("SwapSlots: slot has no holder");
        if *holders == 0 {
            // Room was reserved for every slot at attach.
            debug_assert!(self.discarded.len() < self.discarded.capacity());
            self.discarded.push(slot);
        }
    }

    /// Moves up to `batch.len()` of the slots freed since the devices were
    /// last told into `batch`, as (device, slot on the device), and makes
    /// them free for reuse: the caller tells each device before any slot is
    /// written again. Sets `count` to how many it moved.
    pub fn take_some_discarded(&mut self, batch: &mut [(usize, u32)], count: &mut usize) {
        *count = 0;
        while *count < batch.len() {
            let Some(slot) = self.discarded.pop() else { break };
            let (device, local) = self.device_of(slot);
            batch[*count] = (device, local);
            *count += 1;
            self.devices[device].1.push(slot);
        }
    }

    /// Gives back a slot that was written but got no holder (its device is
    /// told, as for any freed slot).
    pub fn abandon(&mut self, slot: u32) {
        debug_assert_eq!(self.holders[slot as usize], 0);
        self.discarded.push(slot);
    }

    /// Whether more than half the slots are in use: then a page read back
    /// keeps no copy in its slot, and copies already kept are let go as
    /// reclaim meets their pages (Linux's `vm_swap_full`), so that copies of
    /// pages in memory never crowd out pages that have nowhere else to go.
    pub fn tight(&self) -> bool {
        let counters = self.counters();
        counters.used * 2 > counters.total
    }

    /// Slots freed but not yet told to their devices.
    pub fn pending(&self) -> usize {
        self.discarded.len()
    }

    /// Slots in all, in use, and entries naming them.
    pub fn counters(&self) -> SlotCounters {
        let total = self.holders.len() as u64;
        let free: usize = self.devices.iter().map(|(_, free)| free.len()).sum();
        SlotCounters { total, used: total - free as u64, entries: self.entries }
    }

    /// Slots in all and in use on device `device`.
    pub fn device_counters(&self, device: usize) -> (u64, u64) {
        let (range, free) = &self.devices[device];
        let total = u64::from(range.end - range.start);
        (total, total - free.len() as u64)
    }

    /// Bytes the tables take.
    pub fn table_bytes(&self) -> usize {
        self.holders.capacity() * 2
            + self.discarded.capacity() * 4
            + self.devices.iter().map(|(_, free)| free.capacity() * 4).sum::<usize>()
    }
}
