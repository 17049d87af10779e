//! A simulated MMU: translation tables, processors with small TLBs, and
//! physical memory.
//!
//! It implements the [`Mmu`] contract the way a real machine layer might, and
//! misbehaves everywhere the contract allows so that the VM cannot get away with
//! relying on more: page-table pages are real frames taken from the allocator
//! (so `map` can run out of memory); under pressure it discards other spaces'
//! tables and retries; a chaos knob forgets unpinned translations at random;
//! another refuses activations at random, as a machine that needs frames to
//! switch (a root, tables for pinned translations) may; and its TLBs keep
//! serving stale entries until `flush`. It has one to [`MAX_PROCESSORS`]
//! processors, each with its own loaded space and TLB; whoever drives it says
//! which one runs ([`SimMmu::run_on`]), and user accesses go through that
//! one's TLB and the tables like a processor's do. A flush, and every change
//! complete on return, shoots the stale entries down on every processor,
//! unless the [`SimMmu::local_shootdown_only`] fault is injected.
//! `write_protect` is lazy, as on x86: a table wholly inside the range is
//! marked read-only as a whole, its entries keep their write right, and the
//! first writable `map` into it splits the mark back onto the entries.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::vec::Vec;

use super::rng::Rng;
use crate::vm::error::VmError;
use crate::vm::frame::FrameAllocator;
use crate::vm::mmu::{Access, Mmu, Protection, SpaceId, VirtAddr};
use crate::vm::page::{PAGE_SIZE, PageFlags, Pfn};

/// Pages translated by one simulated page-table page (small, so that tables come
/// and go often).
pub const TABLE_PAGES: u64 = 4;

/// Entries in each simulated TLB.
pub const TLB_ENTRIES: usize = 8;

/// Most processors a simulated machine has.
pub const MAX_PROCESSORS: usize = 4;

/// One translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The frame translated to.
    pub pfn: Pfn,
    /// The rights granted.
    pub protection: Protection,
    /// Kept through discard.
    pub pinned: bool,
    /// Set by any access since the last harvest.
    pub referenced: bool,
    /// Set by a write since the last harvest.
    pub dirty: bool,
}

/// One page-table page: a frame and the translations it holds.
#[derive(Debug)]
struct Table {
    frame: Pfn,
    entries: BTreeMap<VirtAddr, Entry>,
    /// No entry grants write, whatever it says (a lazy `write_protect`).
    write_protected: bool,
}

impl Table {
    /// `entry` as a user access sees it through this table.
    fn effective(&self, entry: Entry) -> Entry {
        let mut seen = entry;
        if self.write_protected {
            seen.protection.remove(Protection::WRITE);
        }
        seen
    }
}

/// A cached translation, tagged with its space (like a PCID).
#[derive(Clone, Copy, Debug)]
pub struct TlbEntry {
    /// The space the entry belongs to.
    pub space: SpaceId,
    /// The page translated.
    pub page: VirtAddr,
    /// The frame it translated to when cached.
    pub pfn: Pfn,
    /// The rights it had when cached.
    pub protection: Protection,
}

/// One simulated processor: the space it translates with, and its TLB.
#[derive(Debug, Default)]
struct Processor {
    active: Option<SpaceId>,
    tlb: Vec<TlbEntry>,
}

/// Physical memory: the contents of every frame ever written, shared with
/// the simulated swap device.
pub type SimMemory = std::sync::Arc<std::sync::Mutex<HashMap<Pfn, Box<[u8]>>>>;

/// The simulated machine.
pub struct SimMmu {
    spaces: BTreeMap<SpaceId, BTreeMap<u64, Table>>,
    processors: Vec<Processor>,
    /// The processor running: whose TLB accesses go through, whose space
    /// `activate` sets.
    running: usize,
    /// Spaces changed since their last flush (their TLB entries may be stale).
    unflushed: BTreeSet<SpaceId>,
    memory: SimMemory,
    rng: Rng,
    /// Fault injection: shoot stale TLB entries down on the running processor
    /// only, as a machine layer that forgot the others would. The contract is
    /// then broken, and the checks must say so.
    pub local_shootdown_only: bool,
    /// Chance in a thousand, per `map`/`unmap`/`protect`, of discarding a random space.
    pub chaos: u64,
    /// Spaces discarded by chaos or pressure.
    pub spontaneous_discards: u64,
    /// Behave like a page-table cache of one slot: every switch discards the
    /// unpinned translations of every other space.
    pub single_table: bool,
    /// Chance in a thousand, per `activate`, of refusing it with `OutOfMemory`
    /// (having changed nothing, as the contract asks).
    pub activation_refusals: u64,
    /// Activations refused so far.
    pub refused_activations: u64,
    /// `unmap` calls so far (to show an operation's cost is in regions).
    unmap_calls: u64,
    /// `write_protect` calls so far.
    pub write_protects: u64,
    /// Tables write-protected as a whole so far.
    pub lazy_write_protects: u64,
    /// Translations made by `map_ahead` so far.
    pub mapped_ahead: u64,
    /// Translations made by `copy_translations` so far.
    pub copied: u64,
    /// Table frames freed by `reclaim_tables` so far.
    pub reclaimed_tables: usize,
}

impl SimMmu {
    /// The machine's physical memory, for a device that reaches it.
    pub fn memory(&self) -> SimMemory {
        self.memory.clone()
    }

    /// How many times `unmap` was called.
    pub fn unmap_calls(&self) -> u64 {
        self.unmap_calls
    }

    /// A machine of one processor with no translations; `seed` drives chaos
    /// and TLB replacement.
    pub fn new(seed: u64, chaos: u64) -> Self {
        SimMmu {
            spaces: BTreeMap::new(),
            processors: vec![Processor::default()],
            running: 0,
            unflushed: BTreeSet::new(),
            memory: SimMemory::default(),
            rng: Rng::new(seed ^ 0x5151_5151),
            local_shootdown_only: false,
            chaos,
            spontaneous_discards: 0,
            single_table: false,
            activation_refusals: 0,
            refused_activations: 0,
            unmap_calls: 0,
            reclaimed_tables: 0,
            write_protects: 0,
            lazy_write_protects: 0,
            mapped_ahead: 0,
            copied: 0,
        }
    }

    /// Gives the machine `count` processors (1 to [`MAX_PROCESSORS`]); those
    /// added have no space loaded, those taken away forget theirs.
    pub fn set_processors(&mut self, count: usize) {
        assert!((1..=MAX_PROCESSORS).contains(&count), "set_processors: {count} processors");
        self.processors.resize_with(count, Processor::default);
        self.running = self.running.min(count - 1);
    }

    /// How many processors the machine has.
    pub fn processors(&self) -> usize {
        self.processors.len()
    }

    /// Makes processor `cpu` the running one, as a scheduler picking where the
    /// next step runs.
    pub fn run_on(&mut self, cpu: usize) {
        assert!(cpu < self.processors.len(), "run_on: no processor {cpu}");
        self.running = cpu;
    }

    /// The space the running processor translates user accesses by, if any.
    pub fn active(&self) -> Option<SpaceId> {
        self.active_on(self.running)
    }

    /// The space processor `cpu` translates user accesses by, if any.
    pub fn active_on(&self, cpu: usize) -> Option<SpaceId> {
        self.processors.get(cpu).and_then(|processor| processor.active)
    }

    /// Whether `space` changed since its last flush (so that its TLB entries
    /// may still be stale).
    pub fn unflushed(&self, space: SpaceId) -> bool {
        self.unflushed.contains(&space)
    }

    /// Every translation in the tables, as (space, page, entry).
    pub fn entries(&self) -> impl Iterator<Item = (SpaceId, VirtAddr, Entry)> + '_ {
        self.spaces.iter().flat_map(|(space, tables)| {
            tables.values().flat_map(move |table| {
                table
                    .entries
                    .iter()
                    .map(move |(page, entry)| (*space, *page, table.effective(*entry)))
            })
        })
    }

    /// Every entry cached in processor `cpu`'s TLB.
    pub fn tlb(&self, cpu: usize) -> &[TlbEntry] {
        &self.processors[cpu].tlb
    }

    /// The frames held as page-table pages.
    pub fn table_frames(&self) -> impl Iterator<Item = Pfn> + '_ {
        self.spaces.values().flat_map(|tables| tables.values().map(|table| table.frame))
    }

    /// Translates a user access by the running processor's space like the
    /// processor would: its TLB first, then the tables. `None` is a page fault.
    /// A cached entry that does not allow the access faults without a table
    /// walk.
    pub fn translate(&mut self, address: VirtAddr, access: Access) -> Option<Pfn> {
        let space = self.active()?;
        let page = address.page_down();
        let tlb = &self.processors[self.running].tlb;
        let cached = tlb.iter().find(|entry| entry.space == space && entry.page == page);
        if let Some(&entry) = cached {
            if entry.protection.allows(access) {
                self.mark(space, page, entry.pfn, access);
                return Some(entry.pfn);
            }
            // Stricter than x86, which drops the entry on the fault: the contract
            // lets a stale entry stand until `flush`, so a missing flush loops.
            return None;
        }
        let entry = self.lookup(space, page)?;
        if !entry.protection.allows(access) {
            return None;
        }
        self.mark(space, page, entry.pfn, access);
        self.cache(TlbEntry { space, page, pfn: entry.pfn, protection: entry.protection });
        Some(entry.pfn)
    }

    /// Reads bytes of physical memory.
    pub fn read(&self, pfn: Pfn, offset: usize, buffer: &mut [u8]) {
        let memory = self.memory.lock().expect("memory");
        let frame = memory.get(&pfn).expect("SimMmu::read: frame never initialised");
        buffer.copy_from_slice(&frame[offset..offset + buffer.len()]);
    }

    /// Writes bytes of physical memory.
    pub fn write(&mut self, pfn: Pfn, offset: usize, bytes: &[u8]) {
        let mut memory = self.memory.lock().expect("memory");
        let frame = memory.get_mut(&pfn).expect("SimMmu::write: frame never initialised");
        frame[offset..offset + bytes.len()].copy_from_slice(bytes);
    }

    /// Sets the accessed/dirty bits of the table entry, as the page walker does.
    fn mark(&mut self, space: SpaceId, page: VirtAddr, pfn: Pfn, access: Access) {
        if let Some(entry) = self.lookup_mut(space, page)
            && entry.pfn == pfn
        {
            entry.referenced = true;
            entry.dirty |= access == Access::Write;
        }
    }

    /// Caches a translation in the running processor's TLB, evicting a random
    /// entry when full.
    fn cache(&mut self, entry: TlbEntry) {
        let tlb = &mut self.processors[self.running].tlb;
        if tlb.len() >= TLB_ENTRIES {
            let victim = self.rng.below(tlb.len() as u64) as usize;
            tlb.swap_remove(victim);
        }
        tlb.push(entry);
    }

    /// Drops every TLB entry of `space` on every processor (a shootdown), or
    /// only on the running one if that fault is injected.
    fn shoot_down(&mut self, space: SpaceId) {
        let running = self.running;
        for (cpu, processor) in self.processors.iter_mut().enumerate() {
            if cpu == running || !self.local_shootdown_only {
                processor.tlb.retain(|entry| entry.space != space);
            }
        }
        self.unflushed.remove(&space);
    }

    /// The table entry for `page`, if any.
    fn lookup(&self, space: SpaceId, page: VirtAddr) -> Option<Entry> {
        let table = self.spaces.get(&space)?.get(&table_index(page))?;
        table.entries.get(&page).map(|entry| table.effective(*entry))
    }

    /// The table entry for `page`, for the walker to update.
    fn lookup_mut(&mut self, space: SpaceId, page: VirtAddr) -> Option<&mut Entry> {
        let table = self.spaces.get_mut(&space)?.get_mut(&table_index(page))?;
        table.entries.get_mut(&page)
    }

    /// Maybe forgets a random space's unpinned translations (the chaos knob).
    fn maybe_chaos(&mut self, frames: &mut FrameAllocator<'_>) {
        if self.chaos == 0 || !self.rng.chance(self.chaos, 1000) || self.spaces.is_empty() {
            return;
        }
        let spaces: Vec<SpaceId> = self.spaces.keys().copied().collect();
        let victim = self.rng.pick(&spaces);
        self.spontaneous_discards += 1;
        self.forget(frames, victim, false);
    }

    /// A table frame, reclaiming other spaces' tables once if none is free.
    fn table_frame(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        keep: SpaceId,
    ) -> Result<Pfn, VmError> {
        if let Ok(pfn) = frames.alloc() {
            return Ok(pfn);
        }
        let others: Vec<SpaceId> =
            self.spaces.keys().copied().filter(|space| *space != keep).collect();
        for space in others {
            self.spontaneous_discards += 1;
            self.forget(frames, space, false);
        }
        frames.alloc()
    }

    /// Removes the translations of `space` (pinned ones too if `everything`),
    /// folding their bits into the pages and freeing emptied tables.
    fn forget(&mut self, frames: &mut FrameAllocator<'_>, space: SpaceId, everything: bool) {
        if let Some(tables) = self.spaces.get_mut(&space) {
            for table in tables.values_mut() {
                table.entries.retain(|_, entry| {
                    let keep = entry.pinned && !everything;
                    if !keep {
                        fold_bits(frames, entry);
                    }
                    keep
                });
            }
            free_empty_tables(frames, tables);
        }
        self.shoot_down(space);
    }

    /// Applies `change` to every entry of `space` in `[start, end)`.
    fn for_range(
        &mut self,
        space: SpaceId,
        start: VirtAddr,
        end: VirtAddr,
        mut change: impl FnMut(&mut Entry),
    ) {
        let Some(tables) = self.spaces.get_mut(&space) else { return };
        let range = table_index(start)..=table_index(VirtAddr(end.0 - 1));
        for table in tables.range_mut(range).map(|(_, table)| table) {
            table.entries.range_mut(start..end).for_each(|(_, entry)| change(entry));
        }
    }
}

/// The table covering `page`.
fn table_index(page: VirtAddr) -> u64 {
    page.0 / PAGE_SIZE / TABLE_PAGES
}

/// Moves a translation's referenced/dirty bits into its page's record.
fn fold_bits(frames: &mut FrameAllocator<'_>, entry: &mut Entry) {
    let mut flags = PageFlags::empty();
    flags.set(PageFlags::REFERENCED, entry.referenced);
    flags.set(PageFlags::DIRTY, entry.dirty);
    frames.set_flags(entry.pfn, flags);
    entry.referenced = false;
    entry.dirty = false;
}

/// Frees every table that holds no translation.
fn free_empty_tables(frames: &mut FrameAllocator<'_>, tables: &mut BTreeMap<u64, Table>) {
    tables.retain(|_, table| {
        let keep = !table.entries.is_empty();
        if !keep {
            frames.free(table.frame).expect("SimMmu: table frame not freeable");
        }
        keep
    });
}

// SAFETY: the simulation keeps the contract (it is what the tests check): entries
// carry exactly the rights `map` was given or fewer, unmap/flush, discard and
// destroy remove what they promise, pinned entries survive discard, and physical
// accesses touch only the frames named.
#[allow(unsafe_code)]
unsafe impl Mmu for SimMmu {
    fn map(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        space: SpaceId,
        address: VirtAddr,
        pfn: Pfn,
        protection: Protection,
        pinned: bool,
    ) -> Result<(), VmError> {
        assert!(frames.ref_count(pfn) > 0, "SimMmu::map: frame {pfn:?} is not allocated");
        self.maybe_chaos(frames);
        let index = table_index(address);
        if !self.spaces.get(&space).is_some_and(|tables| tables.contains_key(&index)) {
            let frame = self.table_frame(frames, space)?;
            let table = Table { frame, entries: BTreeMap::new(), write_protected: false };
            self.spaces.entry(space).or_default().insert(index, table);
        }
        let table = self
            .spaces
            .get_mut(&space)
            .and_then(|tables| tables.get_mut(&index))
            .expect("map: table");
        if table.write_protected && protection.contains(Protection::WRITE) {
            for entry in table.entries.values_mut() {
                entry.protection.remove(Protection::WRITE);
            }
            table.write_protected = false;
        }
        let entry = Entry { pfn, protection, pinned, referenced: false, dirty: false };
        if let Some(mut old) = table.entries.insert(address, entry) {
            fold_bits(frames, &mut old);
        }
        self.unflushed.insert(space);
        Ok(())
    }

    fn map_ahead(
        &mut self,
        _frames: &mut FrameAllocator<'_>,
        space: SpaceId,
        leaves: &[(VirtAddr, Pfn, Protection)],
    ) {
        // Only into tables that exist, like x86; and only some, at random,
        // since the contract allows any subset.
        self.unflushed.insert(space);
        for &(address, pfn, protection) in leaves {
            let Some(table) = self
                .spaces
                .get_mut(&space)
                .and_then(|tables| tables.get_mut(&table_index(address)))
            else {
                continue;
            };
            if self.rng.chance(1, 8) {
                continue;
            }
            if table.write_protected && protection.contains(Protection::WRITE) {
                // As `map` does: the table's mark moves onto its entries.
                for entry in table.entries.values_mut() {
                    entry.protection.remove(Protection::WRITE);
                }
                table.write_protected = false;
            }
            match table.entries.get_mut(&address) {
                None => {
                    let entry =
                        Entry { pfn, protection, pinned: false, referenced: false, dirty: false };
                    table.entries.insert(address, entry);
                }
                // Fewer rights to the same frame: it gains the ones offered.
                Some(entry) if entry.pfn == pfn && protection.contains(entry.protection) => {
                    entry.protection = protection;
                }
                Some(_) => continue,
            }
            self.mapped_ahead += 1;
        }
    }

    fn copy_translations(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        from: SpaceId,
        to: SpaceId,
        start: VirtAddr,
        end: VirtAddr,
    ) {
        // Everything in the range, pinned or not, as a careless machine
        // would: the VM must not ask where `to` may not have it.
        self.unflushed.insert(to);
        let copies: Vec<(VirtAddr, Entry)> = self
            .entries()
            .filter(|(space, page, _)| *space == from && start <= *page && *page < end)
            .map(|(_, page, entry)| (page, entry))
            .collect();
        for (page, entry) in copies {
            // Some, at random: the contract allows any subset.
            if self.rng.chance(1, 8) || self.lookup(to, page).is_some() {
                continue;
            }
            let index = table_index(page);
            if !self.spaces.get(&to).is_some_and(|tables| tables.contains_key(&index)) {
                let Ok(frame) = self.table_frame(frames, to) else { return };
                let table = Table { frame, entries: BTreeMap::new(), write_protected: false };
                self.spaces.entry(to).or_default().insert(index, table);
            }
            let table = self.spaces.get_mut(&to).and_then(|tables| tables.get_mut(&index));
            let copy = Entry {
                protection: entry.protection - Protection::WRITE,
                pinned: false,
                referenced: false,
                dirty: false,
                ..entry
            };
            table.expect("copy_translations: table").entries.insert(page, copy);
            self.copied += 1;
        }
    }

    fn unmap(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        space: SpaceId,
        start: VirtAddr,
        end: VirtAddr,
    ) {
        self.unmap_calls += 1;
        self.maybe_chaos(frames);
        self.unflushed.insert(space);
        let Some(tables) = self.spaces.get_mut(&space) else { return };
        for table in tables.values_mut() {
            table.entries.retain(|page, entry| {
                let keep = *page < start || *page >= end;
                if !keep {
                    fold_bits(frames, entry);
                }
                keep
            });
        }
        free_empty_tables(frames, tables);
    }

    fn protect(&mut self, space: SpaceId, start: VirtAddr, end: VirtAddr, protection: Protection) {
        self.unflushed.insert(space);
        self.for_range(space, start, end, |entry| entry.protection &= protection);
    }

    fn write_protect(&mut self, space: SpaceId, start: VirtAddr, end: VirtAddr) {
        self.write_protects += 1;
        self.unflushed.insert(space);
        let Some(tables) = self.spaces.get_mut(&space) else { return };
        let range = table_index(start)..=table_index(VirtAddr(end.0 - 1));
        for (index, table) in tables.range_mut(range) {
            let first = VirtAddr(index * TABLE_PAGES * PAGE_SIZE);
            let whole = start <= first && first.add(TABLE_PAGES * PAGE_SIZE) <= end;
            if whole {
                table.write_protected = true;
                self.lazy_write_protects += 1;
            } else {
                for (_, entry) in table.entries.range_mut(start..end) {
                    entry.protection.remove(Protection::WRITE);
                }
            }
        }
    }

    fn unpin(&mut self, space: SpaceId, start: VirtAddr, end: VirtAddr) {
        self.unflushed.insert(space);
        self.for_range(space, start, end, |entry| entry.pinned = false);
    }

    fn flush(&mut self, space: SpaceId) {
        self.shoot_down(space);
    }

    fn harvest(&mut self, frames: &mut FrameAllocator<'_>, space: SpaceId) {
        let Some(tables) = self.spaces.get_mut(&space) else { return };
        for table in tables.values_mut() {
            table.entries.values_mut().for_each(|entry| fold_bits(frames, entry));
        }
    }

    fn harvest_range(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        space: SpaceId,
        start: VirtAddr,
        end: VirtAddr,
    ) {
        self.for_range(space, start, end, |entry| fold_bits(frames, entry));
    }

    fn discard(&mut self, frames: &mut FrameAllocator<'_>, space: SpaceId) {
        self.forget(frames, space, false);
    }

    fn reclaim_tables(&mut self, frames: &mut FrameAllocator<'_>) -> usize {
        let before = frames.counters().free;
        let loaded: BTreeSet<SpaceId> =
            self.processors.iter().filter_map(|processor| processor.active).collect();
        let others: Vec<SpaceId> =
            self.spaces.keys().copied().filter(|space| !loaded.contains(space)).collect();
        for space in others {
            self.forget(frames, space, false);
        }
        self.reclaimed_tables += frames.counters().free - before;
        frames.counters().free - before
    }

    fn destroy(&mut self, frames: &mut FrameAllocator<'_>, space: SpaceId) {
        self.forget(frames, space, true);
        self.spaces.remove(&space);
        for processor in &mut self.processors {
            if processor.active == Some(space) {
                processor.active = None;
            }
        }
    }

    fn activate(&mut self, frames: &mut FrameAllocator<'_>, space: SpaceId) -> Result<(), VmError> {
        if self.activation_refusals > 0 && self.rng.chance(self.activation_refusals, 1000) {
            self.refused_activations += 1;
            return Err(VmError::OutOfMemory);
        }
        if self.single_table && self.active().is_some_and(|previous| previous != space) {
            let others: Vec<SpaceId> =
                self.spaces.keys().copied().filter(|other| *other != space).collect();
            for other in others {
                self.forget(frames, other, false);
            }
        }
        self.processors[self.running].active = Some(space);
        Ok(())
    }

    fn this_cpu(&self) -> usize {
        self.running
    }

    fn kept_translations(&self, space: SpaceId) -> bool {
        // Any answer is allowed: say yes for some spaces, no for others.
        space.0 % 2 == 0
    }

    fn query(&self, space: SpaceId, address: VirtAddr) -> Option<(Pfn, Protection)> {
        self.lookup(space, address.page_down()).map(|entry| (entry.pfn, entry.protection))
    }

    fn zero_page(&mut self, pfn: Pfn) {
        self.memory
            .lock()
            .expect("memory")
            .insert(pfn, vec![0; PAGE_SIZE as usize].into_boxed_slice());
    }

    fn copy_page(&mut self, source: Pfn, destination: Pfn) {
        let mut memory = self.memory.lock().expect("memory");
        let copy =
            memory.get(&source).expect("SimMmu::copy_page: source never initialised").clone();
        memory.insert(destination, copy);
    }
}

#[cfg(test)]
mod tests;
