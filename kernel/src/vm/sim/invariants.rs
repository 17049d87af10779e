//! The invariants checked after every simulated step.
//!
//! - Frame accounting is exact: the allocator's own walk passes, every allocated
//!   frame is held by someone (an anonymous object, a shared object, a page-table
//!   page, or the driver's hog list), and nothing else is allocated.
//! - Each frame's reference count is its number of copy-on-write sharers (the
//!   anonymous objects holding it; one for a shared object's or a table's frame).
//! - Each frame's pin count is the number of pinned regions holding it; pinned
//!   private pages are not shared; every page of a pinned region has a pinned
//!   translation of its frame, and every pinned translation lies in a pinned region.
//! - Every translation present, in the tables or cached in any processor's TLB,
//!   is allowed by the VM state: the right frame, and no right the region (or
//!   copy-on-write sharing) forbids — so no writable translation of a page
//!   shared by several.
//! - No change is left unflushed when an operation returns (the next may run
//!   on another processor), and every processor's TLB agrees with the tables:
//!   each entry is there, to the same frame, with no right the table's lacks
//!   (the shootdown reached every processor).

use std::collections::BTreeMap;
use std::format;
use std::string::String;

use super::machine::{SimMmu, TlbEntry};
use crate::vm::mmu::{Mmu, Protection, SpaceId, VirtAddr};
use crate::vm::object::anonymous::Entry;
use crate::vm::page::{PAGE_SIZE, Pfn};
use crate::vm::space::{Backing, Region};
use crate::vm::system::Vm;

/// Expected reference and pin counts per frame.
#[derive(Default)]
struct Holders {
    references: BTreeMap<Pfn, u64>,
    pins: BTreeMap<Pfn, u64>,
    /// Chunk entries naming each swap slot.
    slot_entries: BTreeMap<u32, u64>,
}

/// Checks every invariant; the error says which broke and where.
pub fn check(vm: &Vm<'_, SimMmu>, hogs: &[Pfn]) -> Result<(), String> {
    vm.frames().check().map_err(|error| format!("frame accounting: {error:?}"))?;
    let mut holders = Holders::default();
    for pfn in hogs.iter().copied().chain(vm.mmu().table_frames()).chain(vm.zero_page()) {
        *holders.references.entry(pfn).or_default() += 1;
    }
    let mut chunks_seen = std::collections::BTreeSet::new();
    for (_, object) in vm.objects().iter() {
        for (_, pfn) in object.pages() {
            *holders.references.entry(pfn).or_default() += 1;
        }
    }
    for space in vm.spaces() {
        for region in space.regions() {
            count_region(vm, space.id(), region, &mut holders, &mut chunks_seen)?;
        }
    }
    check_counts(vm, &holders)?;
    check_slots(vm, &holders)?;
    check_translations(vm)
}

/// Adds a region's holdings and checks its pinned pages.
fn count_region(
    vm: &Vm<'_, SimMmu>,
    space: SpaceId,
    region: &Region,
    holders: &mut Holders,
    chunks_seen: &mut std::collections::BTreeSet<usize>,
) -> Result<(), String> {
    if let Backing::Anonymous(object) = region.backing() {
        // A chunk holds one reference on each frame it names, and one on each
        // slot, however many objects name the chunk; and it names only pages
        // inside the region.
        let mut fresh = std::collections::BTreeMap::new();
        for (identity, address, entry) in object.entries_by_chunk() {
            if !region.contains(address) {
                return Err(format!("{space:?}: a chunk names {address:?} outside its region"));
            }
            if chunks_seen.contains(&identity) {
                continue;
            }
            let (frames, swapped) = fresh.entry(identity).or_insert((0, 0));
            match entry {
                Entry::Frame(pfn) => {
                    *frames += 1;
                    *holders.references.entry(pfn).or_default() += 1;
                }
                Entry::Swapped(slot) => {
                    *swapped += 1;
                    *holders.slot_entries.entry(slot).or_default() += 1;
                }
                Entry::Empty => return Err(format!("{space:?}: an empty entry listed")),
            }
        }
        for (identity, _, frames, swapped) in object.chunk_identities() {
            if chunks_seen.contains(&identity) {
                continue;
            }
            let counted = fresh.get(&identity).copied().unwrap_or((0, 0));
            if counted != (frames, swapped) {
                return Err(format!(
                    "{space:?}: a chunk counts {:?} frames and slots, holds {counted:?}",
                    (frames, swapped)
                ));
            }
        }
        chunks_seen.extend(fresh.keys().copied());
    }
    if !region.pinned() {
        return Ok(());
    }
    let mut page = region.start();
    while page < region.end() {
        let (pfn, _) =
            vm.permitted_translation(space, page).ok_or(format!("pinned {page:?} not resident"))?;
        *holders.pins.entry(pfn).or_default() += 1;
        let shared_chunk = match region.backing() {
            Backing::Anonymous(object) => object.chunk_shared(page),
            Backing::Shared { .. } => false,
        };
        let private = matches!(region.backing(), Backing::Anonymous(_));
        if private && (vm.frames().ref_count(pfn) != 1 || shared_chunk) {
            return Err(format!("pinned private {page:?} in {space:?} is shared"));
        }
        match vm.mmu().entries().find(|(owner, at, _)| *owner == space && *at == page) {
            Some((_, _, entry)) if entry.pinned && entry.pfn == pfn => {}
            other => return Err(format!("pinned {page:?} in {space:?} has translation {other:?}")),
        }
        page = page.add(PAGE_SIZE);
    }
    Ok(())
}

/// Compares the expected counts with the allocator's.
fn check_counts(vm: &Vm<'_, SimMmu>, holders: &Holders) -> Result<(), String> {
    let frames = vm.frames();
    for (pfn, count) in &holders.references {
        if u64::from(frames.ref_count(*pfn)) != *count {
            return Err(format!("{pfn:?}: count {} but {count} sharers", frames.ref_count(*pfn)));
        }
        let pins = u64::from(frames.page(*pfn).expect("managed").pin_count());
        if pins != holders.pins.get(pfn).copied().unwrap_or(0) {
            return Err(format!(
                "{pfn:?}: pinned {pins} times, expected {:?}",
                holders.pins.get(pfn)
            ));
        }
    }
    let counters = frames.counters();
    if counters.allocated != holders.references.len() {
        return Err(format!(
            "{} frames allocated but {} held: leak",
            counters.allocated,
            holders.references.len()
        ));
    }
    if counters.pinned != holders.pins.len() {
        return Err(format!("{} frames pinned, expected {}", counters.pinned, holders.pins.len()));
    }
    Ok(())
}

/// Checks that each swap slot's holders are the chunk entries naming it and
/// the frames keeping a clean copy of it, and that no slot is lost.
fn check_slots(vm: &Vm<'_, SimMmu>, holders: &Holders) -> Result<(), String> {
    let frames = vm.frames();
    let mut expected = holders.slot_entries.clone();
    for pfn in holders.references.keys() {
        if let Some(slot) = frames.swap_copy(*pfn) {
            *expected.entry(slot).or_default() += 1;
        }
    }
    let slots = frames.slots();
    let counters = slots.counters();
    let mut held = 0;
    for slot in 0..counters.total as u32 {
        let want = expected.get(&slot).copied().unwrap_or(0);
        if u64::from(slots.holders(slot)) != want {
            return Err(format!("slot {slot}: {} holders, expected {want}", slots.holders(slot)));
        }
        held += u64::from(want > 0);
    }
    let entries: u64 = holders.slot_entries.values().sum();
    if counters.entries != entries {
        return Err(format!("{} slot entries counted, {entries} found", counters.entries));
    }
    if counters.used != held + slots.pending() as u64 {
        return Err(format!(
            "{} slots in use, {held} held and {} waiting to be discarded: leak",
            counters.used,
            slots.pending()
        ));
    }
    Ok(())
}

/// Checks every table entry and TLB entry against the VM state.
fn check_translations(vm: &Vm<'_, SimMmu>) -> Result<(), String> {
    for (space, page, entry) in vm.mmu().entries() {
        allowed(vm, space, page, entry.pfn, entry.protection)
            .map_err(|problem| format!("table: {problem}"))?;
        let region = vm.space(space).and_then(|target| target.region(page));
        if entry.pinned && !region.is_some_and(Region::pinned) {
            return Err(format!(
                "pinned translation of {page:?} in {space:?} outside a pinned region"
            ));
        }
    }
    if let Some(space) = vm.spaces().map(|space| space.id()).find(|id| vm.mmu().unflushed(*id)) {
        return Err(format!("a change to {space:?} was not flushed"));
    }
    for cpu in 0..vm.mmu().processors() {
        for cached in vm.mmu().tlb(cpu) {
            allowed(vm, cached.space, cached.page, cached.pfn, cached.protection)
                .map_err(|problem| format!("TLB of processor {cpu}: {problem}"))?;
            in_tables(vm.mmu(), cached)
                .map_err(|problem| format!("TLB of processor {cpu} after a flush: {problem}"))?;
        }
    }
    Ok(())
}

/// Whether a cached translation is one the tables hold now, or holds fewer
/// rights than it.
fn in_tables(mmu: &SimMmu, cached: &TlbEntry) -> Result<(), String> {
    match mmu.query(cached.space, cached.page) {
        Some((pfn, rights)) if pfn == cached.pfn && rights.contains(cached.protection) => Ok(()),
        other => Err(format!(
            "{:?} in {:?} -> {:?} {:?}, tables hold {other:?}",
            cached.page, cached.space, cached.pfn, cached.protection
        )),
    }
}

/// Whether a translation of `page` to `pfn` with `protection` is allowed.
fn allowed(
    vm: &Vm<'_, SimMmu>,
    space: SpaceId,
    page: VirtAddr,
    pfn: Pfn,
    protection: Protection,
) -> Result<(), String> {
    match vm.permitted_translation(space, page) {
        Some((permitted, rights)) if permitted == pfn && rights.contains(protection) => Ok(()),
        other => {
            Err(format!("{page:?} in {space:?} -> {pfn:?} {protection:?}, VM allows {other:?}"))
        }
    }
}
