//! x86_64 page tables: the MMU contract on 4-level paging, as a discardable cache.
//!
//! Page tables hold nothing the portable VM cannot rebuild (the contract's rule
//! 1), so this layer keeps them only for a working set of address spaces and
//! forgets the rest. [`X86Mmu`] owns a small cache of *slots*; a slot is a root
//! (P4) table with its own PCID, and belongs to at most one address space at a
//! time. The kernel half of every root (P4 entries 256..512) is a copy of the boot
//! root's; those entries never change after start-up, so a kernel mapping made
//! later (the heap's) lands in shared lower tables and every root sees it.
//!
//! # Slots
//! - The capacity N is set at boot (`pt_cache=N`, default 8, N = 1 allowed) and
//!   may be changed at run time with [`X86Mmu::set_capacity`], which takes effect
//!   at the next activation: all N roots are made before the activated space gets
//!   its slot (among the first N), and surplus slots are dropped only once it is
//!   loaded, so a failed activation never leaves the running space without its
//!   slot. Roots otherwise stay for good.
//! - Activating a space that still owns a slot just loads that slot's root. A
//!   space without one takes a free slot or evicts the least recently activated:
//!   the victim's leaves are cleared (their accessed/dirty bits go to the page
//!   records first), its PCID is flushed, and the new owner's pinned
//!   translations are installed. The victim's page-table pages stay, empty, for
//!   the new owner when there are at most 32 and the slot lists every leaf it
//!   installed (up to 64); otherwise the tables are walked and freed. With
//!   N = 1 every switch to another space clears the one root.
//! - Fork may also give the child a slot (`copy_translations`), taking a free
//!   one or the least recently activated, but never the parent's.
//! - A space that owns no slot has no translations, only pinned ones recorded on
//!   the side: `map` of an unpinned translation into it does nothing (rule 1
//!   allows forgetting it at once; the space faults it back when it runs).
//!
//! # Pinned translations
//! Every pinned translation is recorded per space as (address, frame,
//! protection) in addition to its leaf (marked with a software bit). Discard
//! keeps pinned leaves; eviction and pressure clear everything, and the record puts
//! the pinned leaves back when the space next gets a slot. The page-table pages
//! that needs are counted and allocated *before* the slot is taken, so an
//! activation that cannot get them fails with `OutOfMemory` having changed
//! nothing, and no pinned translation is ever dropped.
//!
//! # TLB
//! Each slot has PCID `index + 1` (PCID 0 is the boot root's). The layer
//! knows which processor has which slot loaded. Changes to the root loaded
//! here are invalidated at once with `invlpg` (or a flush of the current PCID
//! when page-table pages were freed); every other processor with the root
//! loaded gets a shootdown of the same pages (or of everything), waited for;
//! every processor without it loaded gets the slot marked stale, and its next
//! load there flushes the PCID (see [`tlb`]). Without PCIDs every load
//! flushes anyway. `flush` therefore has nothing left to do. A slot loaded
//! on another processor is never taken (`Busy` when every one is), and an
//! idle processor lets go of its slot before it halts.
//!
//! # Pressure
//! When a page-table page cannot be allocated, the page tables of every idle
//! slot (neither loaded nor being filled) are freed and the allocation is retried
//! once before `OutOfMemory` is reported.
//!
//! # Chaos
//! With `chaos=K` (`chaos` alone means K = 4) the running space loses every
//! unpinned translation before every K-th page fault is resolved, and every
//! activation discards the activated space's. Deterministic (there is no timer
//! to drive it), and K > 1 lets an instruction that touches several pages still
//! complete: with K = 1 one that needs two unmapped pages could fault forever.

mod contract;
mod shadow;
mod slots;
pub mod table;
pub mod tlb;

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use super::acpi::MAX_CPUS;
use super::smp;
use crate::vm::{Pfn, Protection, SpaceId, VirtAddr};
use tlb::Tlb;

/// Largest page-table cache: PCIDs 1..=64.
pub const MAX_CAPACITY: usize = 64;
/// Page-table cache size when the command line does not say.
pub const DEFAULT_CAPACITY: usize = 8;
/// Chaos interval meant by a bare `chaos`.
pub const DEFAULT_CHAOS_INTERVAL: u64 = 4;

/// What the page-table layer has done, for statistics and benchmarks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageTableStatistics {
    /// Calls of `activate`.
    pub activations: u64,
    /// Activations that loaded another root (or reloaded a stale one).
    pub switches: u64,
    /// Slots taken from a space that still owned them.
    pub evictions: u64,
    /// Idle slots emptied because a page-table page could not be allocated.
    pub reclaims: u64,
    /// Page-table pages held now, roots included.
    pub table_pages: u64,
    /// Roots among `table_pages`.
    pub roots: u64,
    /// Flushes of one PCID (with PCIDs on).
    pub pcid_flushes: u64,
    /// Root loads or reloads that dropped cached translations.
    pub tlb_flushes: u64,
    /// Single pages invalidated with `invlpg`.
    pub page_invalidations: u64,
    /// Pinned leaves put back when their space got a slot again.
    pub pinned_reinstalls: u64,
    /// Discards made by chaos mode.
    pub chaos_discards: u64,
    /// Translations made ahead of need (fault-around).
    pub mapped_ahead: u64,
    /// Whole forgets done by clearing the listed leaves, without a walk.
    pub listed_forgets: u64,
    /// Shootdowns: changes other processors with the root loaded were made
    /// to invalidate (one request each, however many processors).
    pub shootdowns: u64,
    /// Translations copied from a parent to its child at fork one by one.
    pub copied_at_fork: u64,
    /// Regions whose translations fork copied (partly) as whole tables.
    pub tables_copied_at_fork: u64,
}

/// One cached root.
#[derive(Debug)]
struct Slot {
    root: Pfn,
    pcid: u16,
    owner: Option<SpaceId>,
    /// Activation clock at the last activation (least recent is evicted).
    last_used: u64,
    /// Processors that must flush this slot's PCID at their next load of it
    /// (its translations changed while they did not have it loaded): a PCID on
    /// one processor says nothing about another's.
    stale: CpuSet,
    /// Page-table pages below the root.
    tables: u64,
    /// Where leaves were installed since the slot was last walked whole.
    installed: Installed,
}

/// Most leaf addresses a slot remembers (see [`Installed`]).
const INSTALLED: usize = 64;

/// The addresses of the leaves installed in a slot since it was last walked
/// whole, while there are at most [`INSTALLED`]: clearing those is all that
/// forgetting the slot's leaves takes (see `slots::forget`), where a walk
/// reads every entry of every table (under TCG the cost of a switch with one
/// root). Past that it only says "too many".
#[derive(Debug)]
struct Installed {
    addresses: [u64; INSTALLED],
    len: usize,
    overflowed: bool,
}

impl Default for Installed {
    fn default() -> Self {
        Installed { addresses: [0; INSTALLED], len: 0, overflowed: false }
    }
}

impl Installed {
    /// The addresses listed.
    fn addresses(&self) -> &[u64] {
        &self.addresses[..self.len]
    }

    /// Notes a leaf installed at `address`.
    fn note(&mut self, address: u64) {
        if self.len < INSTALLED {
            self.addresses[self.len] = address;
            self.len += 1;
        } else {
            self.overflowed = true;
        }
    }

    /// Says that leaves were installed without being listed.
    fn overflow(&mut self) {
        self.overflowed = true;
    }

    /// Whether every installed leaf is listed.
    fn complete(&self) -> bool {
        !self.overflowed
    }
}

/// What this layer remembers about an address space.
#[derive(Debug, Default)]
struct SpaceRecord {
    slot: Option<usize>,
    pinned: BTreeMap<VirtAddr, (Pfn, Protection)>,
}

/// The x86_64 implementation of the MMU contract (see the module documentation).
#[derive(Debug)]
pub struct X86Mmu {
    tlb: Tlb,
    boot_root: Pfn,
    slots: Vec<Slot>,
    capacity: usize,
    spaces: BTreeMap<SpaceId, SpaceRecord>,
    /// Per processor, the slot whose root is in its CR3 (`None`: the boot
    /// root).
    loaded: [Option<usize>; MAX_CPUS],
    clock: u64,
    chaos_interval: u64,
    chaos_countdown: u64,
    /// The space whose last activation kept its translations (its slot).
    kept: Option<SpaceId>,
    /// With `tlb_check`: per processor, the shadow every load is checked
    /// against.
    shadows: Option<Vec<shadow::Shadow>>,
    statistics: PageTableStatistics,
}

impl X86Mmu {
    /// Takes over the processor's paging: turns on NX and PCIDs (if present) and
    /// remembers the boot root, whose kernel half every root will share. Allocates
    /// nothing; roots are made at the first activation.
    pub fn new() -> X86Mmu {
        let tlb = Tlb::enable();
        X86Mmu {
            tlb,
            boot_root: Tlb::current_root(),
            slots: Vec::new(),
            capacity: DEFAULT_CAPACITY,
            spaces: BTreeMap::new(),
            loaded: [None; MAX_CPUS],
            clock: 0,
            chaos_interval: 0,
            chaos_countdown: 0,
            kept: None,
            shadows: None,
            statistics: PageTableStatistics::default(),
        }
    }

    /// Sets the page-table cache size (clamped to `1..=MAX_CAPACITY`); applied at
    /// the next activation, which may then evict slots or make roots.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity.clamp(1, MAX_CAPACITY);
    }

    /// The page-table cache size asked for.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Turns chaos mode on (every `interval`-th fault) or off (0).
    pub fn set_chaos_interval(&mut self, interval: u64) {
        self.chaos_interval = interval;
        self.chaos_countdown = interval;
    }

    /// Turns the shadow-TLB check of every CR3 load on or off (see [`shadow`]).
    /// Turned on, it assumes nothing is cached yet, so it belongs at start-up.
    pub fn set_tlb_check(&mut self, on: bool) {
        let has_pcid = self.tlb.has_pcid();
        self.shadows = on.then(|| (0..MAX_CPUS).map(|_| shadow::Shadow::new(has_pcid)).collect());
    }

    /// Loads checked against the shadow TLBs so far, on every processor
    /// (`None`: the check is off).
    pub fn tlb_checks(&self) -> Option<u64> {
        self.shadows.as_ref().map(|shadows| shadows.iter().map(|shadow| shadow.checks).sum())
    }

    /// Whether chaos mode is on.
    pub fn chaos(&self) -> bool {
        self.chaos_interval != 0
    }

    /// Counts a page fault for chaos mode: true when the running space must lose
    /// its unpinned translations before this fault is resolved.
    pub fn chaos_due(&mut self) -> bool {
        if self.chaos_interval == 0 {
            return false;
        }
        self.chaos_countdown -= 1;
        if self.chaos_countdown > 0 {
            return false;
        }
        self.chaos_countdown = self.chaos_interval;
        self.statistics.chaos_discards += 1;
        true
    }

    /// Whether the processor tags translations with PCIDs.
    pub fn has_pcid(&self) -> bool {
        self.tlb.has_pcid()
    }

    /// Whether `space` owns a slot now (its page tables are cached).
    pub fn has_slot(&self, space: SpaceId) -> bool {
        self.slot_of(space).is_some()
    }

    /// Page-table pages below the root of `space`'s slot (0 without a slot).
    pub fn table_pages_of(&self, space: SpaceId) -> u64 {
        self.slot_of(space).map_or(0, |index| self.slots[index].tables)
    }

    /// What this layer has done so far.
    pub fn statistics(&self) -> PageTableStatistics {
        self.statistics
    }

    /// The slot `space` owns, if any.
    fn slot_of(&self, space: SpaceId) -> Option<usize> {
        self.spaces.get(&space).and_then(|record| record.slot)
    }

    /// The processors with slot `index`'s root in CR3.
    fn loaded_on(&self, index: usize) -> CpuSet {
        let cpus = self.loaded.iter().enumerate().filter(|(_, loaded)| **loaded == Some(index));
        cpus.fold(CpuSet::EMPTY, |set, (cpu, _)| set.with(cpu))
    }

    /// Whether slot `index`'s root is in the running processor's CR3.
    fn loaded_here(&self, index: usize) -> bool {
        self.loaded[smp::this_cpu()] == Some(index)
    }
}

/// A set of processors, by index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuSet(u32);

impl CpuSet {
    /// No processor.
    pub const EMPTY: CpuSet = CpuSet(0);
    /// Every processor there may be.
    pub const ALL: CpuSet = CpuSet((1 << MAX_CPUS) - 1);

    /// This set and processor `cpu`.
    pub fn with(self, cpu: usize) -> CpuSet {
        CpuSet(self.0 | 1 << cpu)
    }

    /// This set without processor `cpu`.
    pub fn without(self, cpu: usize) -> CpuSet {
        CpuSet(self.0 & !(1 << cpu))
    }

    /// This set without those of `other`.
    pub fn minus(self, other: CpuSet) -> CpuSet {
        CpuSet(self.0 & !other.0)
    }

    /// Whether `cpu` is in the set.
    pub fn contains(self, cpu: usize) -> bool {
        self.0 & (1 << cpu) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The processors in the set, as a list of indices and its length.
    pub fn indices(self) -> ([usize; MAX_CPUS], usize) {
        let mut list = [0; MAX_CPUS];
        let mut len = 0;
        for cpu in (0..MAX_CPUS).filter(|&cpu| self.contains(cpu)) {
            list[len] = cpu;
            len += 1;
        }
        (list, len)
    }
}

impl Default for X86Mmu {
    fn default() -> Self {
        X86Mmu::new()
    }
}
