//! Fork: a new address space that shares the parent's memory copy-on-write.
//!
//! Private pages are shared, not copied: the child's anonymous objects name the
//! same chunks of the page store (see [`super::object::anonymous`]), so fork
//! costs O(regions + chunks) and touches no frame, and the parent's writable
//! translations are write-protected through the MMU; the MMU may give the
//! child read-only copies of the parent's translations (`copy_translations`). Whichever side writes first copies the chunk, then the
//! page; the last holder takes it over without copying. Shared regions stay
//! shared: the child maps the same objects. Pinned private pages are copied at once,
//! so that the parent's pinned translations never need write-protecting.
#![forbid(unsafe_code)]

use super::error::VmError;
use super::frame::FrameAllocator;
use super::mmu::{Mmu, Protection, SpaceId};
use super::object::{AnonymousObject, ObjectTable};
use super::space::{AddressSpace, Backing, Region};
use super::system::{Vm, release_region};

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
    fn copy_translations(&mut self, parent: SpaceId, child: SpaceId) {
        let Vm { spaces, frames, mmu, .. } = self;
        let Some(source) = spaces.get(&parent) else { return };
        for region in source.regions().filter(|region| !region.pinned()) {
            mmu.copy_translations(frames, parent, child, region.start(), region.end());
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
