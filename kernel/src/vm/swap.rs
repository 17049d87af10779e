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
use alloc::vec::Vec;

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

/// Bytes of [`SwapSlots`] tables per slot: holders, and a bit each in the
/// free and the discarded bitmaps (rounded up).
pub const SLOT_TABLE_BYTES: usize = 3;

/// Which slots of the attached devices are in use, and by whom.
///
/// Slots of all devices share one numbering: device `d` owns `ranges[d]`. A
/// slot's holders are the chunk entries that name it (a page whose contents
/// are only there) plus the frames that were read from it (their records
/// name the slot): while such a frame is not dirty, the slot still holds its
/// contents, and reclaim drops the frame without writing. A slot with no
/// holder is free: it is first marked discarded, and becomes free for reuse
/// once its device has been told ([`SwapSlots::take_some_discarded`]), so
/// that storage a slot held is returned before the slot is written again.
///
/// The tables (a count and two bits a slot) are allocated when a device is
/// attached, never later: nothing here allocates while pages are reclaimed.
#[derive(Debug, Default)]
pub struct SwapSlots {
    /// Holders per slot.
    holders: Vec<u16>,
    /// Bit per slot: free for reuse.
    free: Vec<u64>,
    /// Bit per slot: freed, its device not yet told.
    discarded: Vec<u64>,
    /// Slots of each device, its free count, and where its search for a free
    /// slot starts.
    devices: Vec<Device>,
    /// Slots marked discarded.
    pending: usize,
    /// Chunk entries naming slots, over all slots.
    entries: u64,
}

/// One device's share of the slots.
#[derive(Debug)]
struct Device {
    range: core::ops::Range<u32>,
    free: u32,
    /// Next slot to look at for a free one (allocation goes round).
    rotor: u32,
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

/// Whether bit `slot` of `bits` is set.
fn bit(bits: &[u64], slot: u32) -> bool {
    bits[slot as usize / 64] & (1 << (slot % 64)) != 0
}

/// Sets bit `slot` of `bits` to `on`.
fn set_bit(bits: &mut [u64], slot: u32, on: bool) {
    let word = &mut bits[slot as usize / 64];
    if on {
        *word |= 1 << (slot % 64);
    } else {
        *word &= !(1 << (slot % 64));
    }
}

impl SwapSlots {
    /// Adds a device of `count` slots; returns its index. On failure nothing changed.
    pub fn attach(&mut self, count: u32) -> Result<usize, VmError> {
        let first = u32::try_from(self.holders.len()).map_err(|_| VmError::OutOfMemory)?;
        let end = first.checked_add(count).filter(|end| *end < 1 << 31);
        let end = end.ok_or(VmError::InvalidArgument)?;
        let total = end as usize;
        let words = total.div_ceil(64);
        let oom = |_| VmError::OutOfMemory;
        self.devices.try_reserve(1).map_err(oom)?;
        self.holders.try_reserve_exact(total - self.holders.len()).map_err(oom)?;
        self.free.try_reserve_exact(words - self.free.len()).map_err(oom)?;
        self.discarded.try_reserve_exact(words - self.discarded.len()).map_err(oom)?;
        // Nothing below allocates.
        self.holders.resize(total, 0);
        self.free.resize(words, 0);
        self.discarded.resize(words, 0);
        for slot in first..end {
            set_bit(&mut self.free, slot, true);
        }
        self.devices.push(Device { range: first..end, free: count, rotor: first });
        Ok(self.devices.len() - 1)
    }

    /// The device owning `slot`, and the slot's number on it.
    pub fn device_of(&self, slot: u32) -> (usize, u32) {
        let device = self
            .devices
            .iter()
            .position(|device| device.range.contains(&slot))
            .expect("SwapSlots::device_of: no such slot");
        (device, slot - self.devices[device].range.start)
    }

    /// A free slot of device `device`, with no holder yet: the next free one
    /// from where the last search ended (so that a disk is written in order
    /// while it can be).
    pub fn allocate(&mut self, device: usize) -> Option<u32> {
        let Device { range, free, rotor } = self.devices.get_mut(device)?;
        if *free == 0 {
            return None;
        }
        let length = range.end - range.start;
        let mut at = *rotor;
        // Word by word: every word of the range, the rotor's twice (its
        // slots below the rotor come last), and fewer while free slots are
        // many.
        for _ in 0..=length / 64 + 2 {
            let word = self.free[at as usize / 64] & (!0u64 << (at % 64));
            let next_word = (at / 64 + 1) * 64;
            if word != 0 {
                let slot = (at / 64) * 64 + word.trailing_zeros();
                if range.contains(&slot) {
                    set_bit(&mut self.free, slot, false);
                    *free -= 1;
                    *rotor = slot + 1;
                    if *rotor == range.end {
                        *rotor = range.start;
                    }
                    return Some(slot);
                }
            }
            at = if next_word >= range.end { range.start } else { next_word };
        }
        None
    }

    /// Gives back a slot [`SwapSlots::allocate`] returned that got no holder
    /// and holds nothing.
    pub fn unallocate(&mut self, slot: u32) {
        debug_assert_eq!(self.holders[slot as usize], 0);
        let (device, _) = self.device_of(slot);
        set_bit(&mut self.free, slot, true);
        self.devices[device].free += 1;
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
            self.abandon(slot);
        }
    }

    /// Moves up to `batch.len()` of the slots freed since the devices were
    /// last told into `batch`, as (device, slot on the device), and makes
    /// them free for reuse: the caller tells each device before any slot is
    /// written again. Sets `count` to how many it moved.
    pub fn take_some_discarded(&mut self, batch: &mut [(usize, u32)], count: &mut usize) {
        *count = 0;
        let mut word = 0;
        while *count < batch.len() && self.pending > 0 && word < self.discarded.len() {
            while self.discarded[word] != 0 && *count < batch.len() {
                let slot = (word * 64) as u32 + self.discarded[word].trailing_zeros();
                set_bit(&mut self.discarded, slot, false);
                self.pending -= 1;
                let (device, local) = self.device_of(slot);
                batch[*count] = (device, local);
                *count += 1;
                set_bit(&mut self.free, slot, true);
                self.devices[device].free += 1;
            }
            word += 1;
        }
    }

    /// Gives back a slot that has no holder (was written but got none, or
    /// lost its last): its device is told, as for any freed slot.
    pub fn abandon(&mut self, slot: u32) {
        debug_assert_eq!(self.holders[slot as usize], 0);
        debug_assert!(!bit(&self.discarded, slot) && !bit(&self.free, slot));
        set_bit(&mut self.discarded, slot, true);
        self.pending += 1;
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
        self.pending
    }

    /// Slots in all, in use, and entries naming them.
    pub fn counters(&self) -> SlotCounters {
        let total = self.holders.len() as u64;
        let free: u64 = self.devices.iter().map(|device| u64::from(device.free)).sum();
        SlotCounters { total, used: total - free, entries: self.entries }
    }

    /// Slots in all and in use on device `device`.
    pub fn device_counters(&self, device: usize) -> (u64, u64) {
        let device = &self.devices[device];
        let total = u64::from(device.range.end - device.range.start);
        (total, total - u64::from(device.free))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Takes every slot of `device` one by one; returns them.
    fn drain(slots: &mut SwapSlots, device: usize) -> Vec<u32> {
        let mut taken = Vec::new();
        while let Some(slot) = slots.allocate(device) {
            taken.push(slot);
        }
        taken
    }

    #[test]
    fn every_free_slot_is_found_whatever_the_alignment() {
        // Two devices whose ranges start and end inside bitmap words.
        let mut slots = SwapSlots::default();
        assert_eq!(slots.attach(11_900).unwrap(), 0);
        assert_eq!(slots.attach(65_546).unwrap(), 1);
        let mut second = drain(&mut slots, 1);
        assert_eq!(second.len(), 65_546);
        second.sort_unstable();
        assert_eq!(second.first(), Some(&11_900));
        assert_eq!(second.last(), Some(&(11_900 + 65_546 - 1)));
        let free_again = |slots: &mut SwapSlots, freed: &[u32]| {
            freed.iter().for_each(|&slot| slots.abandon(slot));
            let mut batch = [(0, 0); 4];
            let mut count = 0;
            slots.take_some_discarded(&mut batch, &mut count);
            assert_eq!(count, freed.len());
        };
        // The search then stands at 11,902, in the word of the first slot;
        // the only free slot is 11,901, just below it: found after going
        // round every other word.
        free_again(&mut slots, &[11_900, 11_901]);
        assert_eq!(slots.allocate(1), Some(11_900));
        assert_eq!(slots.allocate(1), Some(11_901));
        free_again(&mut slots, &[11_901]);
        assert_eq!(slots.allocate(1), Some(11_901), "a free slot below the search was missed");
        for slot in [11_900 + 65_545, 40_000] {
            free_again(&mut slots, &[slot]);
            assert_eq!(slots.allocate(1), Some(slot), "slot {slot} was free");
            assert_eq!(slots.allocate(1), None);
        }
        assert_eq!(drain(&mut slots, 0).len(), 11_900);
        assert_eq!(slots.counters().used, 11_900 + 65_546);
    }
}
