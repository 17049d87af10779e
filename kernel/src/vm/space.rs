//! Address spaces: ordered, non-overlapping regions of user virtual memory.
//!
//! A region says what a range of addresses means: its protection, the memory
//! object behind it and whether its translations are pinned. Regions never
//! overlap; lookups are O(log n) in a map keyed by start address. Splitting a
//! region (for a partial unmap, protect or pin) changes nothing a process can
//! observe, and neither does merging: neighbours with the same protection, pin
//! state and backing (two private regions, or consecutive pages of one shared
//! object) become one region again ([`AddressSpace::merge_around`]), so that the
//! number of regions reflects what a process asked for, and a process cannot
//! grow it without bound by splitting and rejoining.
//!
//! Splitting a private region may cut a chunk of its page store in two, which
//! takes memory, so splits can fail (with nothing changed). Joining two private
//! regions costs their chunk lists, not their pages; two regions that both name
//! one chunk still shared with another space stay apart until it is copied, and
//! a merge that cannot get room for the joined list is simply not made. The
//! halves of a split made in the same call always join again without allocating.
#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;

use super::error::VmError;
use super::frame::FrameAllocator;
use super::mmu::{Protection, SpaceId, USER_END, USER_START, VirtAddr};
use super::object::{AnonymousObject, ObjectId, ObjectTable};
use super::page::PAGE_SIZE;
use super::restore::WorkingSet;

/// What lies behind a region.
#[derive(Debug)]
pub enum Backing {
    /// Private pages, zero-filled on demand, copy-on-write across fork.
    Anonymous(AnonymousObject),
    /// Pages of a shared object, starting at page `offset` of the object.
    Shared {
        /// The object mapped.
        object: ObjectId,
        /// The object page that appears at the region's start.
        offset: u64,
    },
}

/// A contiguous range of one address space with one meaning.
#[derive(Debug)]
pub struct Region {
    start: VirtAddr,
    end: VirtAddr,
    protection: Protection,
    backing: Backing,
    pinned: bool,
}

impl Region {
    /// A new, unpinned region over `[start, end)`.
    pub fn new(start: VirtAddr, end: VirtAddr, protection: Protection, backing: Backing) -> Self {
        Region { start, end, protection, backing, pinned: false }
    }

    /// The first address.
    pub fn start(&self) -> VirtAddr {
        self.start
    }

    /// One past the last address.
    pub fn end(&self) -> VirtAddr {
        self.end
    }

    /// What the region allows.
    pub fn protection(&self) -> Protection {
        self.protection
    }

    /// What lies behind the region.
    pub fn backing(&self) -> &Backing {
        &self.backing
    }

    /// What lies behind the region, for changing its pages.
    pub fn backing_mut(&mut self) -> &mut Backing {
        &mut self.backing
    }

    /// Whether the region's pages are resident and their translations pinned.
    pub fn pinned(&self) -> bool {
        self.pinned
    }

    /// Takes the region apart, keeping what lay behind it.
    pub fn into_backing(self) -> Backing {
        self.backing
    }

    /// Whether `address` lies inside the region.
    pub fn contains(&self, address: VirtAddr) -> bool {
        self.start <= address && address < self.end
    }

    /// The shared object page that appears at `address` (inside the region).
    pub fn object_index(&self, address: VirtAddr) -> Option<(ObjectId, u64)> {
        match self.backing {
            Backing::Shared { object, offset } => {
                Some((object, offset + (address.0 - self.start.0) / PAGE_SIZE))
            }
            Backing::Anonymous(_) => None,
        }
    }

    /// Sets the protection (the caller updates translations).
    pub(super) fn set_protection(&mut self, protection: Protection) {
        self.protection = protection;
    }

    /// Sets the pinned mark (the caller updates translations and frames).
    pub(super) fn set_pinned(&mut self, pinned: bool) {
        self.pinned = pinned;
    }

    /// Whether `next`, which starts where this region ends, can join it.
    fn can_absorb(&self, next: &Region) -> bool {
        let backings = match (&self.backing, &next.backing) {
            (Backing::Anonymous(lower), Backing::Anonymous(upper)) => lower.can_append(upper),
            (
                Backing::Shared { object, offset },
                Backing::Shared { object: next_object, offset: next_offset },
            ) => {
                let pages = (self.end.0 - self.start.0) / PAGE_SIZE;
                object == next_object && offset + pages == *next_offset
            }
            _ => false,
        };
        self.end == next.start
            && self.protection == next.protection
            && self.pinned == next.pinned
            && backings
    }

    /// Makes room for [`Region::absorb`] to take `next` without allocating.
    fn reserve_for(&mut self, next: &Region) -> Result<(), VmError> {
        match (&mut self.backing, &next.backing) {
            (Backing::Anonymous(lower), Backing::Anonymous(upper)) => lower.reserve_for(upper),
            _ => Ok(()),
        }
    }

    /// Joins `next` (see [`Region::can_absorb`], after [`Region::reserve_for`])
    /// to this region; a shared object loses the mapping `next` counted.
    fn absorb(&mut self, objects: &mut ObjectTable, next: Region) {
        debug_assert!(self.can_absorb(&next));
        self.end = next.end;
        match (&mut self.backing, next.backing) {
            (Backing::Anonymous(object), Backing::Anonymous(upper)) => object.append(upper),
            (Backing::Shared { object, .. }, Backing::Shared { .. }) => {
                objects.forget_split_mapping(*object);
            }
            _ => unreachable!("Region::absorb: backings differ"),
        }
    }

    /// Cuts the region at `address` (strictly inside it), keeping the lower part
    /// and returning the upper one. On failure nothing changed.
    fn split_off(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        address: VirtAddr,
    ) -> Result<Region, VmError> {
        debug_assert!(self.start < address && address < self.end);
        let backing = match &mut self.backing {
            Backing::Anonymous(object) => Backing::Anonymous(object.split_off(address, frames)?),
            Backing::Shared { object, offset } => Backing::Shared {
                object: *object,
                offset: *offset + (address.0 - self.start.0) / PAGE_SIZE,
            },
        };
        let upper = Region {
            start: address,
            end: self.end,
            protection: self.protection,
            backing,
            pinned: self.pinned,
        };
        self.end = address;
        Ok(upper)
    }
}

/// Checks that `[start, start + length)` is a page-aligned, non-empty range of
/// user addresses, and returns its end.
pub fn check_range(start: VirtAddr, length: u64) -> Result<VirtAddr, VmError> {
    if length == 0 || !length.is_multiple_of(PAGE_SIZE) {
        return Err(VmError::InvalidArgument);
    }
    let end = start.checked_add(length).ok_or(VmError::BadAddress)?;
    if !start.is_page_aligned() || start.0 < USER_START || end.0 > USER_END {
        return Err(VmError::BadAddress);
    }
    Ok(end)
}

/// One address space: an identifier, its regions, and the pages it faulted
/// on last (see [`super::restore`]).
#[derive(Debug)]
pub struct AddressSpace {
    id: SpaceId,
    regions: BTreeMap<VirtAddr, Region>,
    working_set: WorkingSet,
}

impl AddressSpace {
    /// An empty space named `id`.
    pub fn new(id: SpaceId) -> Self {
        AddressSpace { id, regions: BTreeMap::new(), working_set: WorkingSet::default() }
    }

    /// The space's identifier.
    pub fn id(&self) -> SpaceId {
        self.id
    }

    /// The pages that faulted last.
    pub fn working_set(&self) -> &WorkingSet {
        &self.working_set
    }

    /// The pages that faulted last, for noting one or restoring them.
    pub(super) fn working_set_mut(&mut self) -> &mut WorkingSet {
        &mut self.working_set
    }

    /// Every region, in address order.
    pub fn regions(&self) -> impl Iterator<Item = &Region> + '_ {
        self.regions.values()
    }

    /// The region containing `address`, in O(log n).
    pub fn region(&self, address: VirtAddr) -> Option<&Region> {
        let (_, region) = self.regions.range(..=address).next_back()?;
        region.contains(address).then_some(region)
    }

    /// The region containing `address`, for changing it.
    pub fn region_mut(&mut self, address: VirtAddr) -> Option<&mut Region> {
        let (_, region) = self.regions.range_mut(..=address).next_back()?;
        region.contains(address).then_some(region)
    }

    /// Whether any region intersects `[start, end)`.
    pub fn overlaps(&self, start: VirtAddr, end: VirtAddr) -> bool {
        if self.region(start).is_some() {
            return true;
        }
        self.regions.range(start..end).next().is_some()
    }

    /// Whether every page of `[start, end)` lies in some region.
    pub fn covers(&self, start: VirtAddr, end: VirtAddr) -> bool {
        let mut cursor = start;
        while cursor < end {
            match self.region(cursor) {
                Some(region) => cursor = region.end,
                None => return false,
            }
        }
        true
    }

    /// The lowest free range of `length` bytes, first fit.
    pub fn find_free_range(&self, length: u64) -> Option<VirtAddr> {
        let mut candidate = VirtAddr(USER_START);
        for region in self.regions.values() {
            if region.start.0.checked_sub(candidate.0).is_some_and(|gap| gap >= length) {
                return Some(candidate);
            }
            candidate = candidate.max(region.end);
        }
        let end = candidate.checked_add(length)?;
        (end.0 <= USER_END).then_some(candidate)
    }

    /// Adds a region; its range must be free.
    pub fn insert(&mut self, region: Region) {
        debug_assert!(!self.overlaps(region.start, region.end), "AddressSpace::insert: overlap");
        self.regions.insert(region.start, region);
    }

    /// Makes `address` a region boundary if it falls strictly inside a region;
    /// whether it did. A shared object gains one mapping when its region is
    /// split. On failure (no memory to cut a chunk) nothing changed.
    pub fn split_at(
        &mut self,
        objects: &mut ObjectTable,
        frames: &mut FrameAllocator<'_>,
        address: VirtAddr,
    ) -> Result<bool, VmError> {
        let Some(region) = self.region_mut(address).filter(|region| region.start != address) else {
            return Ok(false);
        };
        let upper = region.split_off(frames, address)?;
        if let Backing::Shared { object, .. } = upper.backing {
            objects.add_mapping(object);
        }
        self.regions.insert(upper.start, upper);
        Ok(true)
    }

    /// How many regions there are.
    pub fn region_count(&self) -> usize {
        self.regions.len()
    }

    /// Merges every pair of neighbours that can be one region, from the region
    /// ending at `start` to the one starting at `end`: O(log n) plus the regions
    /// met (and the resident pages of private regions joined).
    pub fn merge_around(&mut self, objects: &mut ObjectTable, start: VirtAddr, end: VirtAddr) {
        let first = self.regions.range(..start).next_back().map(|(key, _)| *key);
        let Some(mut cursor) =
            first.or_else(|| self.regions.range(start..).next().map(|(k, _)| *k))
        else {
            return;
        };
        loop {
            let Some((&next_start, _)) = self.regions.range(cursor.add(1)..).next() else {
                return;
            };
            if next_start > end {
                return;
            }
            let mut pair = self.regions.range_mut(cursor..);
            let (_, current) = pair.next().expect("merge_around: cursor vanished");
            let (_, next) = pair.next().expect("merge_around: next vanished");
            if current.can_absorb(next) && current.reserve_for(next).is_ok() {
                let next = self.regions.remove(&next_start).expect("merge_around: vanished");
                let current = self.regions.get_mut(&cursor).expect("merge_around: vanished");
                current.absorb(objects, next);
            } else {
                cursor = next_start;
            }
        }
    }

    /// How many regions there would be if the regions inside `[start, end)`
    /// (after [`AddressSpace::isolate`]) took `protection` and were merged
    /// around like [`AddressSpace::merge_around`] does, without changing
    /// anything: O(log n) plus the regions met.
    pub fn count_if_protected(
        &self,
        start: VirtAddr,
        end: VirtAddr,
        protection: Protection,
    ) -> usize {
        /// What the run of regions merged so far shows its next neighbour.
        struct Tail {
            end: VirtAddr,
            protection: Protection,
            pinned: bool,
            backing: TailBacking,
        }
        enum TailBacking {
            Anonymous(Option<(u64, bool)>),
            Shared { object: ObjectId, next_offset: u64 },
        }
        let tail_of = |region: &Region| {
            let inside = start <= region.start && region.end <= end;
            let backing = match &region.backing {
                Backing::Anonymous(object) => TailBacking::Anonymous(object.last_chunk()),
                Backing::Shared { object, offset } => TailBacking::Shared {
                    object: *object,
                    next_offset: offset + (region.end.0 - region.start.0) / PAGE_SIZE,
                },
            };
            let protection = if inside { protection } else { region.protection };
            Tail { end: region.end, protection, pinned: region.pinned, backing }
        };
        let first = self.regions.range(..start).next_back().map(|(key, _)| *key);
        let from = first.unwrap_or(start);
        let mut merges = 0;
        let mut tail: Option<Tail> = None;
        for region in self.regions.range(from..).map(|(_, region)| region) {
            if region.start > end {
                break;
            }
            let next = tail_of(region);
            let joins = tail.as_ref().is_some_and(|tail| {
                let backings = match (&tail.backing, &region.backing) {
                    (TailBacking::Anonymous(last), Backing::Anonymous(object)) => {
                        super::object::anonymous::chunks_join(*last, object.first_chunk())
                    }
                    (
                        TailBacking::Shared { object, next_offset },
                        Backing::Shared { object: next_object, offset },
                    ) => object == next_object && next_offset == offset,
                    _ => false,
                };
                tail.end == region.start
                    && tail.protection == next.protection
                    && tail.pinned == next.pinned
                    && backings
            });
            tail = match (tail, joins) {
                (Some(mut joined), true) => {
                    merges += 1;
                    joined.end = next.end;
                    joined.backing = match (joined.backing, next.backing) {
                        (TailBacking::Anonymous(last), TailBacking::Anonymous(None)) => {
                            TailBacking::Anonymous(last)
                        }
                        (_, backing) => backing,
                    };
                    Some(joined)
                }
                _ => Some(next),
            };
        }
        self.regions.len() - merges
    }

    /// Splits at both ends of `[start, end)` so that the range is made of whole
    /// regions; whether it split at each. On failure nothing changed.
    pub fn isolate(
        &mut self,
        objects: &mut ObjectTable,
        frames: &mut FrameAllocator<'_>,
        start: VirtAddr,
        end: VirtAddr,
    ) -> Result<(bool, bool), VmError> {
        let first = self.split_at(objects, frames, start)?;
        match self.split_at(objects, frames, end) {
            Ok(second) => Ok((first, second)),
            Err(error) => {
                if first {
                    self.merge_around(objects, start, start);
                }
                Err(error)
            }
        }
    }

    /// Every region that intersects `[start, end)`, in address order: O(log n)
    /// plus the regions found, however large the range.
    pub fn regions_overlapping(
        &self,
        start: VirtAddr,
        end: VirtAddr,
    ) -> impl Iterator<Item = &Region> + '_ {
        let first = self.region(start).filter(|region| region.start < start);
        first.into_iter().chain(self.regions.range(start..end).map(|(_, region)| region))
    }

    /// The regions lying inside `[start, end)` (after [`AddressSpace::isolate`]).
    pub fn regions_in_mut(
        &mut self,
        start: VirtAddr,
        end: VirtAddr,
    ) -> impl Iterator<Item = &mut Region> + '_ {
        self.regions.range_mut(start..end).map(|(_, region)| region)
    }

    /// Removes and returns the regions lying inside `[start, end)` (after
    /// [`AddressSpace::isolate`]).
    pub fn remove_range(&mut self, start: VirtAddr, end: VirtAddr) -> alloc::vec::Vec<Region> {
        let keys: alloc::vec::Vec<VirtAddr> =
            self.regions.range(start..end).map(|(key, _)| *key).collect();
        keys.into_iter().filter_map(|key| self.regions.remove(&key)).collect()
    }

    /// Removes and returns every region.
    pub fn take_all(&mut self) -> alloc::vec::Vec<Region> {
        core::mem::take(&mut self.regions).into_values().collect()
    }
}

#[cfg(test)]
mod tests;
