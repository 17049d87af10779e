//! Fork: a new address space that shares the parent's memory copy-on-write.
//!
//! Private pages are shared, not copied: the child's anonymous objects name the
//! same chunks of the page store (see [`super::object::anonymous`]), so fork
//! costs O(regions + chunks) and touches no frame, and the parent's writable
//! translations are write-protected through the MMU; the MMU may give the
//! child read-only copies of the parent's translations (`copy_translations`,
//! for a bounded number of pages). Whichever side writes first copies the
//! chunk, then the page; the last holder takes it over without copying.
//! Shared regions stay shared: the child maps the same objects. Pinned private
//! pages are copied at once, so that the parent's pinned translations never
//! need write-protecting.
#![forbid(unsafe_code)]

use super::error::VmError;
use super::frame::FrameAllocator;
use super::mmu::{Mmu, Protection, SpaceId, VirtAddr};
use super::object::anonymous::{CHUNK_PAGES, CHUNK_SPAN};
use super::object::{AnonymousObject, ObjectTable};
use super::page::PAGE_SIZE;
use super::space::{AddressSpace, Backing, Region};
use super::system::{Vm, release_region};

/// Pages in memory whose translations fork offers a child at most, sixteen
/// chunks' worth (32 MiB on x86): copying them costs the MMU about one
/// page-table page per chunk (x86 copies whole leaf tables), so this bounds
/// what fork spends on them however large the parent is.
pub const FORK_COPY_PAGES: usize = 16 * CHUNK_PAGES;

/// The pages `region` has in memory, counted up to a little past `limit`.
fn pages_in_memory(region: &Region, objects: &ObjectTable, limit: usize) -> usize {
    match region.backing() {
        // An object holds its own region's pages alone.
        Backing::Anonymous(object) => object.chunks_in_memory().map(|(_, pages)| pages).sum(),
        Backing::Shared { object, offset } => objects.get(*object).map_or(0, |shared| {
            let pages = (region.end().0 - region.start().0) / PAGE_SIZE;
            shared.pages_in(*offset..offset + pages).take(limit + 1).count()
        }),
    }
}

/// The end of the longest run of `object`'s chunks from `region`'s start
/// whose pages in memory fit in `budget`, which it spends.
fn affordable_end(region: &Region, object: &AnonymousObject, budget: &mut usize) -> VirtAddr {
    let mut end = region.start();
    for (start, pages) in object.chunks_in_memory() {
        if pages > *budget {
            break;
        }
        *budget -= pages;
        end = VirtAddr((start.0 + CHUNK_SPAN).min(region.end().0));
    }
    end
}

impl<'a, M: Mmu> Vm<'a, M> {
    /// Creates a copy-on-write copy of `parent`. On error nothing changed.
    pub fn fork(&mut self, parent: SpaceId) -> Result<SpaceId, VmError> {
        if !self.spaces.contains_key(&parent) {
            return Err(VmError::InvalidArgument);
        }
        let id = self.allocate_space_id();
        let child = self.copy_regions(parent, id)?;
        self.spaces.insert(id, child);
        self.write_protect_private(parent);
        self.copy_translations(parent, id);
        self.statistics.forks += 1;
        Ok(id)
    }

    /// Offers the child the parent's translations of the parent's unpinned
    /// regions, read-only: right after fork they name the same frames (the
    /// chunks are shared, shared objects are shared), so the child may start
    /// with them. The parent's pinned regions are left out: the child got
    /// copies of their pages (and its own regions are never pinned, so it is
    /// the parent's mark that counts).
    ///
    /// At most [`FORK_COPY_PAGES`] pages in memory are offered, small regions
    /// (code, data, stack) first so that one large region cannot take their
    /// share; a large region is offered whole chunks from its start while the
    /// budget lasts. The child's first touch of the rest maps a chunk at a
    /// time (fault-around), so fork's cost stops growing with the parent's
    /// size while a child that reads a moderate working set takes no fault.
    fn copy_translations(&mut self, parent: SpaceId, child: SpaceId) {
        let Vm { spaces, frames, mmu, objects, .. } = self;
        let Some(source) = spaces.get(&parent) else { return };
        let mut budget = FORK_COPY_PAGES;
        for small in [true, false] {
            for region in source.regions().filter(|region| !region.pinned()) {
                let in_memory = pages_in_memory(region, objects, budget);
                if (in_memory <= CHUNK_PAGES) != small {
                    continue;
                }
                let end = if in_memory <= budget {
                    budget -= in_memory;
                    region.end()
                } else if let Backing::Anonymous(object) = region.backing() {
                    affordable_end(region, object, &mut budget)
                } else {
                    continue;
                };
                if region.start() < end {
                    mmu.copy_translations(frames, parent, child, region.start(), end);
                }
            }
        }
        mmu.flush(child);
    }

    /// Builds the child's regions; on error releases what it took.
    fn copy_regions(&mut self, parent: SpaceId, id: SpaceId) -> Result<AddressSpace, VmError> {
        let Vm { spaces, frames, mmu, objects, statistics, .. } = self;
        let source = spaces.get(&parent).expect("copy_regions: no parent");
        let mut child = AddressSpace::new(id);
        for region in source.regions() {
            let backing = match region.backing() {
                Backing::Anonymous(object) if region.pinned() => {
                    let copy = copy_pages(frames, mmu, object);
                    if let Ok(copy) = &copy {
                        statistics.fork_copies += copy.pages().count() as u64;
                    }
                    copy.map(Backing::Anonymous)
                }
                Backing::Anonymous(object) => object.share().map(Backing::Anonymous),
                Backing::Shared { object, offset } => {
                    objects.add_mapping(*object);
                    Ok(Backing::Shared { object: *object, offset: *offset })
                }
            };
            match backing {
                Ok(backing) => child.insert(Region::new(
                    region.start(),
                    region.end(),
                    region.protection(),
                    backing,
                )),
                Err(error) => {
                    release_all(frames, objects, child);
                    return Err(error);
                }
            }
        }
        Ok(child)
    }

    /// Removes write from the parent's translations of shared private pages.
    fn write_protect_private(&mut self, parent: SpaceId) {
        let source = self.spaces.get(&parent).expect("write_protect_private: no parent");
        for region in source.regions() {
            let Backing::Anonymous(object) = region.backing() else { continue };
            let writable = region.protection().contains(Protection::WRITE);
            if writable && !region.pinned() && !object.is_empty() {
                self.mmu.write_protect(parent, region.start(), region.end());
            }
        }
        self.mmu.flush(parent);
    }
}

/// A new object holding private copies of every page of `object`.
fn copy_pages<M: Mmu>(
    frames: &mut FrameAllocator<'_>,
    mmu: &mut M,
    object: &AnonymousObject,
) -> Result<AnonymousObject, VmError> {
    let mut copy = AnonymousObject::new();
    for (address, pfn) in object.pages() {
        match copy.prepare(address, frames).and_then(|()| frames.alloc()) {
            Ok(fresh) => {
                mmu.copy_page(pfn, fresh);
                copy.set(address, fresh);
            }
            Err(error) => {
                copy.release(frames);
                return Err(error);
            }
        }
    }
    Ok(copy)
}

/// Releases every region of a space that never had translations.
fn release_all(
    frames: &mut FrameAllocator<'_>,
    objects: &mut ObjectTable,
    mut space: AddressSpace,
) {
    for region in space.take_all() {
        release_region(frames, objects, region);
    }
}
