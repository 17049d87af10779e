//! Page reclaim: the page daemon and its clock.
//!
//! When free frames run short the VM takes frames back, cheapest first:
//!
//! 1. **Page-table pages of idle spaces.** Translations are a cache (rule 1 of
//!    the MMU contract), so the MMU may drop every table of a space that is
//!    not running ([`Mmu::reclaim_tables`]); the space rebuilds them by
//!    faulting when it runs again.
//! 2. **Clean pages**: a page read back from swap and not written since still
//!    has its contents in its slot (its frame's record names the slot), so its
//!    frame is freed without any I/O.
//! 3. **Dirty pages**, written to a swap device first (see [`super::swap`]).
//!
//! Pages are chosen by a clock (the second-chance algorithm of BSD's and
//! Mach's page daemons) that sweeps every private page of every space in
//! address order, a batch at a time. It harvests the referenced and dirty
//! bits of the translations a batch spans into the page records
//! ([`Mmu::harvest_range`], which also clears them in the translations). A
//! page found referenced loses the bit and stays; one found unreferenced,
//! and not pinned, is evicted: its translations go (which folds their bits
//! once more: a page touched since the harvest is kept after all), then its
//! contents go to the first device that takes them, and every chunk entry
//! naming the frame is replaced by the slot.
//!
//! # Finding a page's mappings without a reverse map
//! Private memory never moves in the address space (there is no `mremap`),
//! fork keeps addresses, and chunks are keyed by address: so every object
//! that holds a frame holds it at the same virtual address, and every space
//! that may translate it does so there. A page held by one object alone is
//! translated only by its space; a shared one is looked up at its address in
//! every space. That is the whole reverse map, and it costs no memory.
//!
//! # What is not reclaimed
//! Pinned pages; pages of shared objects (their mappers would have to be
//! found region by region; a shared object's pages are counted as
//! unreclaimable in the monitor); the zero page; page-table pages of the
//! running space; the kernel's own memory (its heap and stacks).
//!
//! # No deadlock under pressure
//! The frame allocator keeps a reserve that only reclaim may take
//! ([`FrameAllocator::set_reclaim_reserve`]): a compressed pool may need a
//! frame to store what it compresses, and the reserve is refilled by the
//! very frames reclaim frees. Device tables are allocated when a device is
//! attached, never while reclaiming. A fault that fails for lack of frames
//! reclaims and tries again ([`Vm::fault`]).
//!
//! [`FrameAllocator::set_reclaim_reserve`]: super::frame::FrameAllocator::set_reclaim_reserve
#![forbid(unsafe_code)]

use alloc::boxed::Box;

use super::error::VmError;
use super::mmu::{Mmu, SpaceId, VirtAddr};
use super::object::anonymous::Entry;
use super::page::{PAGE_SIZE, PageFlags, Pfn};
use super::space::Backing;
use super::swap::SwapDevice;
use super::system::Vm;

/// Pages the clock gathers before it evicts them (kept on the stack).
const BATCH: usize = 32;

/// Times an operation that ran out of frames reclaims and runs again
/// (see [`Vm::retry_after_reclaim`]).
const RETRIES: usize = 4;

/// Batches in a row that free nothing, with the devices full, after which a
/// sweep gives up.
const FRUITLESS_BATCHES: usize = 2;

/// Where the clock hand is: the next page it looks at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Hand {
    space: u32,
    address: u64,
}

/// Free-frame levels: below `low` the daemon runs; it stops at `high`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Watermarks {
    /// The daemon (or a fault) starts reclaiming below this many free frames.
    pub low: usize,
    /// It reclaims until this many are free.
    pub high: usize,
}

/// A page the clock picked: where, and which frame.
#[derive(Clone, Copy, Debug)]
struct Victim {
    address: VirtAddr,
    pfn: Pfn,
    /// Held by one object alone (chunk and frame), so translated only there.
    alone: bool,
}

impl<'a, M: Mmu> Vm<'a, M> {
    /// Adds a swap device; reclaim tries devices in the order they were
    /// attached. Sets the watermarks and the reclaim reserve from the memory
    /// size if they are not set yet. On failure nothing changed and the
    /// device comes back.
    pub fn attach_swap(
        &mut self,
        device: Box<dyn SwapDevice>,
    ) -> Result<(), (VmError, Box<dyn SwapDevice>)> {
        if self.devices.try_reserve(1).is_err() {
            return Err((VmError::OutOfMemory, device));
        }
        if let Err(error) = self.frames.slots_mut().attach(device.slots()) {
            return Err((error, device));
        }
        self.devices.push(device);
        if self.watermarks == Watermarks::default() {
            let total = self.frames.counters().total;
            let low = (total / 128).clamp(32, 1024);
            self.watermarks = Watermarks { low, high: low * 2 };
            self.frames.set_reclaim_reserve((low / 4).max(16));
        }
        Ok(())
    }

    /// Lets reclaim write to device `index`, or not (to measure one device
    /// of several); pages already there are read back either way.
    pub fn set_swap_device_enabled(&mut self, index: usize, enabled: bool) {
        let bit = 1u64 << index.min(63);
        if enabled {
            self.swap_disabled &= !bit;
        } else {
            self.swap_disabled |= bit;
        }
    }

    /// Makes the clock learn which pages are used by forgetting their
    /// translations (rule 1 allows it; the pages still used fault back)
    /// instead of harvesting the referenced bits: for measuring the two.
    pub fn set_usage_by_discard(&mut self, on: bool) {
        self.usage_by_discard = on;
    }

    /// The attached swap devices.
    pub fn swap_devices(&self) -> impl Iterator<Item = &dyn SwapDevice> + '_ {
        self.devices.iter().map(|device| &**device)
    }

    /// The daemon's free-frame levels.
    pub fn watermarks(&self) -> Watermarks {
        self.watermarks
    }

    /// Sets the daemon's free-frame levels (`low <= high`).
    pub fn set_watermarks(&mut self, watermarks: Watermarks) {
        self.watermarks = watermarks;
    }

    /// Runs `operation`; while it fails for lack of frames and reclaim frees
    /// some (up to `batch` a time), runs it again, at most [`RETRIES`] more
    /// times. Right for any operation that changes nothing when it fails,
    /// which every VM operation is: a fault, a fork, a map, an activation.
    pub fn retry_after_reclaim<R>(
        &mut self,
        batch: usize,
        mut operation: impl FnMut(&mut Self) -> Result<R, VmError>,
    ) -> Result<R, VmError> {
        let mut result = operation(self);
        for _ in 0..RETRIES {
            if !matches!(result, Err(VmError::OutOfMemory)) || self.reclaim(batch) == 0 {
                break;
            }
            result = operation(self);
        }
        result
    }

    /// The page daemon's work: if free frames are below the low watermark,
    /// reclaims up to the high one. Returns the frames freed.
    pub fn balance(&mut self) -> usize {
        self.balance_at_most(usize::MAX)
    }

    /// Like [`Vm::balance`], freeing at most `limit` frames (what a fault
    /// does on its way, leaving the rest to the daemon).
    pub fn balance_at_most(&mut self, limit: usize) -> usize {
        let free = self.frames.counters().free;
        if free >= self.watermarks.low {
            return 0;
        }
        self.reclaim((self.watermarks.high - free).min(limit))
    }

    /// Pages of `space`'s private memory in frames and in swap, a chunk
    /// that fork shares counting by this space's share of it: what the
    /// out-of-memory policy weighs. O(regions + chunks).
    pub fn footprint(&self, space: SpaceId) -> (u64, u64) {
        let Some(target) = self.spaces.get(&space) else { return (0, 0) };
        let (mut resident, mut swapped) = (0, 0);
        for region in target.regions() {
            if let Backing::Anonymous(object) = region.backing() {
                for (_, holders, frames, slots) in object.chunk_identities() {
                    resident += (frames / holders.max(1)) as u64;
                    swapped += (slots / holders.max(1)) as u64;
                }
            }
        }
        (resident, swapped)
    }

    /// Frees up to `want` frames (see the module documentation); returns how
    /// many it freed. Bounded: the clock goes round at most twice.
    pub fn reclaim(&mut self, want: usize) -> usize {
        self.statistics.reclaim_runs += 1;
        self.frames.set_reclaiming(true);
        let before = self.frames.counters().free;
        let tables = self.mmu.reclaim_tables(&mut self.frames);
        self.statistics.tables_reclaimed += tables as u64;
        if !self.devices.is_empty() {
            self.settle_swap();
            self.sweep(before + want);
            self.settle_swap();
        }
        self.frames.set_reclaiming(false);
        self.frames.counters().free.saturating_sub(before)
    }

    /// Tells the devices which slots are free again (so that a pool gives
    /// back what it stored there), and lets them be used.
    pub fn settle_swap(&mut self) {
        let Vm { frames, devices, .. } = self;
        let mut discarded = [(0, 0); BATCH];
        loop {
            let mut count = 0;
            frames.slots_mut().take_some_discarded(&mut discarded, &mut count);
            if count == 0 {
                return;
            }
            for &(device, local) in &discarded[..count] {
                devices[device].discard(frames, local);
            }
        }
    }

    /// Runs the clock until `target` frames are free, the devices are full,
    /// or it has gone round twice.
    fn sweep(&mut self, target: usize) {
        let budget = 2 * (self.frames.counters().allocated + BATCH);
        let mut scanned = 0;
        let mut wrapped = 0;
        self.swap_full = 0;
        let mut fruitless = 0;
        while self.frames.counters().free < target && scanned < budget && wrapped < 3 {
            let mut victims = [None; BATCH];
            let (space, found) = self.gather(&mut victims);
            let Some(space) = space else {
                // Past the last space: round again from the first.
                self.hand = Hand::default();
                wrapped += 1;
                continue;
            };
            scanned += found;
            let chosen = self.second_chance(&mut victims[..found]);
            if chosen == 0 {
                continue;
            }
            // A device that took nothing more does not stop the sweep at
            // once (clean pages can still go, and copies give their slots
            // up), but a few batches in a row that free nothing with the
            // devices full do: the rest of the sweep would be the same.
            let before = self.frames.counters().free;
            self.evict(space, &victims[..found]);
            let freed = self.frames.counters().free > before;
            fruitless = if freed || self.swap_has_room() { 0 } else { fruitless + 1 };
            if fruitless >= FRUITLESS_BATCHES {
                return;
            }
        }
    }

    /// Whether some device reclaim may write to has a free slot and has not
    /// refused a page in this sweep.
    fn swap_has_room(&self) -> bool {
        (0..self.devices.len()).any(|device| self.may_write(device))
    }

    /// Whether reclaim may try device `device` now.
    fn may_write(&self, device: usize) -> bool {
        let bit = 1 << device.min(63);
        let (total, used) = self.frames.slots().device_counters(device);
        (self.swap_disabled | self.swap_full) & bit == 0 && used < total
    }

    /// Gathers up to [`BATCH`] resident private pages of one space from the
    /// hand on (harvesting the range they span), and moves the hand past
    /// them. Returns the space (`None` past the last one) and how
    /// many pages it found.
    fn gather(&mut self, victims: &mut [Option<Victim>; BATCH]) -> (Option<SpaceId>, usize) {
        loop {
            let Some((&id, space)) = self.spaces.range(SpaceId(self.hand.space)..).next() else {
                return (None, 0);
            };
            if id.0 != self.hand.space {
                self.hand = Hand { space: id.0, address: 0 };
            }
            let mut found = 0;
            let mut next = None;
            let from = VirtAddr(self.hand.address);
            'regions: for region in space.regions().filter(|region| region.end() > from) {
                let Backing::Anonymous(object) = region.backing() else { continue };
                if region.pinned() {
                    continue;
                }
                let start = region.start().max(from);
                for (address, entry) in object.entries_in(start, region.end()) {
                    if found == BATCH {
                        next = Some(address);
                        break 'regions;
                    }
                    if let Entry::Frame(pfn) = entry {
                        let alone =
                            !object.chunk_shared(address) && self.frames.ref_count(pfn) == 1;
                        victims[found] = Some(Victim { address, pfn, alone });
                        found += 1;
                    }
                }
            }
            match next {
                Some(address) => self.hand.address = address.0,
                None => self.hand = Hand { space: id.0 + 1, address: 0 },
            }
            if found > 0 && self.usage_by_discard {
                // Learn usage by forgetting the translations (their bits are
                // folded as they go): the pages still used fault back.
                for victim in victims[..found].iter().flatten() {
                    let end = victim.address.add(PAGE_SIZE);
                    self.mmu.zap(&mut self.frames, id, victim.address, end);
                }
                self.mmu.flush(id);
            } else if found > 0 {
                // What the batch spans, harvested: O(its page tables), not
                // the space's.
                let first = victims[0].expect("gather: first victim").address;
                let last = victims[found - 1].expect("gather: last victim").address;
                self.mmu.harvest_range(&mut self.frames, id, first, last.add(PAGE_SIZE));
            }
            if found > 0 || next.is_some() {
                return (Some(id), found);
            }
            // An empty space: on to the next.
        }
    }

    /// Gives the referenced pages among `victims` their second chance
    /// (clearing the bit, dropping them from the list), and drops pinned
    /// ones. Returns how many are left.
    fn second_chance(&mut self, victims: &mut [Option<Victim>]) -> usize {
        let tight = self.frames.slots().tight();
        let mut left = 0;
        for victim in victims.iter_mut() {
            let Some(page) = *victim else { continue };
            self.statistics.pages_scanned += 1;
            if tight {
                // Slots are short: a page in memory lets its copy go.
                self.frames.forget_swap_copy(page.pfn);
            }
            let flags = self.frames.flags(page.pfn);
            if flags.contains(PageFlags::PINNED) {
                *victim = None;
            } else if flags.contains(PageFlags::REFERENCED) {
                self.frames.clear_flags(page.pfn, PageFlags::REFERENCED);
                self.statistics.pages_referenced += 1;
                *victim = None;
            } else {
                left += 1;
            }
        }
        left
    }

    /// Evicts the chosen pages of `space`: removes their translations
    /// (everywhere, for shared ones), then writes and frees each (those no
    /// device takes stay, and fault their translations back).
    fn evict(&mut self, space: SpaceId, victims: &[Option<Victim>]) {
        // With nowhere to write, only pages with a clean copy can go: the
        // others keep their translations.
        let room = self.swap_has_room();
        let mut chosen = [None; BATCH];
        for (slot, page) in victims.iter().enumerate() {
            chosen[slot] = page.filter(|page| room || self.frames.swap_copy(page.pfn).is_some());
        }
        let victims = &chosen[..victims.len()];
        for page in victims.iter().flatten() {
            self.forget_translations(space, *page);
        }
        self.mmu.flush(space);
        for page in victims.iter().flatten() {
            let flags = self.frames.flags(page.pfn);
            if flags.contains(PageFlags::REFERENCED) {
                // Touched since the harvest: it stays (and faults back in).
                self.frames.clear_flags(page.pfn, PageFlags::REFERENCED);
                self.statistics.pages_referenced += 1;
                continue;
            }
            let slot = match self.frames.swap_copy(page.pfn) {
                Some(slot) if !flags.contains(PageFlags::DIRTY) => {
                    self.statistics.clean_reclaims += 1;
                    slot
                }
                _ => {
                    self.frames.forget_swap_copy(page.pfn);
                    match self.write_out(page.pfn) {
                        Some(slot) => slot,
                        None => continue,
                    }
                }
            };
            self.replace_holders(space, *page, slot);
        }
    }

    /// Removes every translation of `page` (in `space` only if it is held
    /// there alone; else in every space mapping private memory at its
    /// address). Shared ones are flushed here; `space`'s by the caller.
    fn forget_translations(&mut self, space: SpaceId, page: Victim) {
        let end = page.address.add(PAGE_SIZE);
        if page.alone {
            self.mmu.zap(&mut self.frames, space, page.address, end);
            return;
        }
        for (id, other) in &self.spaces {
            // A pinned region's page is its own (pinning breaks sharing):
            // it is not this frame, and its translation must stay.
            let private = other.region(page.address).is_some_and(|region| {
                matches!(region.backing(), Backing::Anonymous(_)) && !region.pinned()
            });
            if private {
                self.mmu.zap(&mut self.frames, *id, page.address, end);
                if *id != space {
                    self.mmu.flush(*id);
                }
            }
        }
    }

    /// Writes `pfn` to the first device that takes it; the slot, or `None`
    /// if no device has room.
    fn write_out(&mut self, pfn: Pfn) -> Option<u32> {
        for device in 0..self.devices.len() {
            if !self.may_write(device) {
                continue;
            }
            let Some(slot) = self.frames.slots_mut().allocate(device) else { continue };
            let (_, local) = self.frames.slots().device_of(slot);
            match self.devices[device].write(&mut self.frames, local, pfn) {
                Ok(()) => {
                    self.statistics.page_outs += 1;
                    return Some(slot);
                }
                Err(_) => {
                    // Full (or the page does not suit it): not tried again
                    // in this sweep.
                    self.statistics.page_out_refusals += 1;
                    self.frames.slots_mut().unallocate(slot);
                    self.swap_full |= 1 << device.min(63);
                }
            }
        }
        None
    }

    /// Makes every chunk entry naming `page`'s frame name `slot` instead,
    /// moving each entry's hold from the frame to the slot; the frame is
    /// free once the last goes.
    fn replace_holders(&mut self, space: SpaceId, page: Victim, slot: u32) {
        let Vm { spaces, frames, .. } = self;
        let (old, new) = (Entry::Frame(page.pfn), Entry::Swapped(slot));
        let holders = spaces.iter().filter(|(id, _)| !page.alone || **id == space);
        for (_, target) in holders {
            let Some(region) = target.region(page.address) else { continue };
            let Backing::Anonymous(object) = region.backing() else { continue };
            // A chunk several objects hold is replaced once.
            if object.entry(page.address) != old {
                continue;
            }
            // The slot's hold first: a clean copy's slot would be freed with
            // the frame otherwise.
            if frames.slots_mut().hold_entry(slot).is_err() {
                break;
            }
            let replaced = object.replace(page.address, old, new);
            debug_assert!(replaced);
            frames.release(page.pfn).expect("reclaim: frame not referenced");
        }
        if frames.slots().holders(slot) == 0 {
            frames.slots_mut().abandon(slot);
        }
        if frames.ref_count(page.pfn) == 0 {
            self.statistics.pages_reclaimed += 1;
        } else {
            debug_assert!(false, "reclaim: a holder of {:?} was not found", page.pfn);
        }
    }
}
