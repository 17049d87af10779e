//! Memory objects: where the pages behind a region live.
//!
//! Two kinds exist. An [`AnonymousObject`] backs one private region: its pages are
//! zero-filled on first touch and may be shared copy-on-write with the private
//! regions of forked spaces. A [`SharedObject`] backs shared regions: every mapper
//! sees the same pages, and the object lives while any mapping or handle names it.
//!
//! Copy-on-write sharing is counted on the frames themselves: a frame's reference
//! count (see [`FrameAllocator::add_ref`]) is the number of anonymous objects that
//! hold it. A shared object holds each of its frames exactly once.
#![forbid(unsafe_code)]

use alloc::collections::BTreeMap;

use super::error::VmError;
use super::frame::FrameAllocator;
use super::mmu::VirtAddr;
use super::page::Pfn;

/// The pages of one private region, keyed by virtual address.
///
/// The object's offset is the virtual address itself, so splitting a region splits
/// its object with [`AnonymousObject::split_off`] and nothing needs renumbering.
/// Every frame held here carries one reference for this object.
#[derive(Debug, Default)]
pub struct AnonymousObject {
    pages: BTreeMap<VirtAddr, Pfn>,
}

impl AnonymousObject {
    /// An object with no page yet (everything reads as zero).
    pub fn new() -> Self {
        Self::default()
    }

    /// The frame behind the page at `address`, if it has been touched.
    pub fn page(&self, address: VirtAddr) -> Option<Pfn> {
        self.pages.get(&address).copied()
    }

    /// Installs `pfn` at `address`, returning the frame it replaces.
    pub fn insert(&mut self, address: VirtAddr, pfn: Pfn) -> Option<Pfn> {
        self.pages.insert(address, pfn)
    }

    /// Every resident page, in address order.
    pub fn pages(&self) -> impl Iterator<Item = (VirtAddr, Pfn)> + '_ {
        self.pages.iter().map(|(address, pfn)| (*address, *pfn))
    }

    /// The resident pages in `[start, end)`.
    pub fn pages_in(
        &self,
        start: VirtAddr,
        end: VirtAddr,
    ) -> impl Iterator<Item = (VirtAddr, Pfn)> + '_ {
        self.pages.range(start..end).map(|(address, pfn)| (*address, *pfn))
    }

    /// How many pages are resident.
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether no page is resident.
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Takes every page of `upper`, whose pages all lie above this object's:
    /// the smaller tree's pages go into the larger, so the cost is the smaller.
    pub fn append(&mut self, mut upper: AnonymousObject) {
        if upper.pages.len() > self.pages.len() {
            core::mem::swap(&mut self.pages, &mut upper.pages);
        }
        for (address, pfn) in upper.pages {
            self.pages.insert(address, pfn);
        }
    }

    /// Moves the pages at and above `address` into a new object.
    pub fn split_off(&mut self, address: VirtAddr) -> AnonymousObject {
        AnonymousObject { pages: self.pages.split_off(&address) }
    }

    /// A second object holding the same frames, each with one more reference (the
    /// copy-on-write half of fork). On failure the references taken are returned
    /// and `self` is unchanged.
    pub fn share(&self, frames: &mut FrameAllocator<'_>) -> Result<AnonymousObject, VmError> {
        let mut copy = AnonymousObject::new();
        for (address, pfn) in self.pages() {
            if let Err(error) = frames.add_ref(pfn) {
                copy.release(frames);
                return Err(error);
            }
            copy.pages.insert(address, pfn);
        }
        Ok(copy)
    }

    /// Drops this object's reference on every frame it holds.
    pub fn release(self, frames: &mut FrameAllocator<'_>) {
        for pfn in self.pages.into_values() {
            frames.release(pfn).expect("AnonymousObject::release: frame not referenced");
        }
    }
}

/// A handle naming a shared memory object. Identifiers are never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId(pub u64);

/// Pages visible to every mapper, allocated on first touch.
#[derive(Debug)]
pub struct SharedObject {
    /// Length in pages; mappings must lie inside it.
    size: u64,
    /// Resident pages by page index; each frame is held once, by the object.
    pages: BTreeMap<u64, Pfn>,
    /// Regions (in any space) that map this object.
    mappings: usize,
    /// Open handles (the creator's, and any duplicated since).
    handles: usize,
}

impl SharedObject {
    /// A new object of `size` pages with one open handle.
    pub fn new(size: u64) -> Self {
        SharedObject { size, pages: BTreeMap::new(), mappings: 0, handles: 1 }
    }

    /// The length in pages.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The frame behind page `index`, if it has been touched.
    pub fn page(&self, index: u64) -> Option<Pfn> {
        self.pages.get(&index).copied()
    }

    /// Installs `pfn` at page `index`, which must not be resident.
    pub fn insert(&mut self, index: u64, pfn: Pfn) {
        let previous = self.pages.insert(index, pfn);
        assert!(previous.is_none(), "SharedObject::insert: page already resident");
    }

    /// Every resident page as (index, frame), in index order.
    pub fn pages(&self) -> impl Iterator<Item = (u64, Pfn)> + '_ {
        self.pages.iter().map(|(index, pfn)| (*index, *pfn))
    }

    /// How many regions map the object.
    pub fn mappings(&self) -> usize {
        self.mappings
    }

    /// How many handles are open.
    pub fn handles(&self) -> usize {
        self.handles
    }

    /// Whether nothing names the object any more.
    fn is_unreferenced(&self) -> bool {
        self.mappings == 0 && self.handles == 0
    }

    /// Frees every frame; the object must be unreferenced.
    fn release(self, frames: &mut FrameAllocator<'_>) {
        for pfn in self.pages.into_values() {
            frames.release(pfn).expect("SharedObject::release: frame not referenced");
        }
    }
}

/// Every live shared object, by identifier.
#[derive(Debug, Default)]
pub struct ObjectTable {
    objects: BTreeMap<ObjectId, SharedObject>,
    next: u64,
}

impl ObjectTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates an object of `size` pages with one open handle.
    pub fn create(&mut self, size: u64) -> ObjectId {
        let id = ObjectId(self.next);
        self.next += 1;
        self.objects.insert(id, SharedObject::new(size));
        id
    }

    /// The object named `id`, if it lives.
    pub fn get(&self, id: ObjectId) -> Option<&SharedObject> {
        self.objects.get(&id)
    }

    /// The object named `id`, if it lives, for changing its pages.
    pub fn get_mut(&mut self, id: ObjectId) -> Option<&mut SharedObject> {
        self.objects.get_mut(&id)
    }

    /// Every live object.
    pub fn iter(&self) -> impl Iterator<Item = (ObjectId, &SharedObject)> + '_ {
        self.objects.iter().map(|(id, object)| (*id, object))
    }

    /// Opens one more handle on a live object.
    pub fn open(&mut self, id: ObjectId) -> Result<(), VmError> {
        let object = self.objects.get_mut(&id).ok_or(VmError::InvalidArgument)?;
        if object.handles == 0 {
            return Err(VmError::InvalidArgument);
        }
        object.handles += 1;
        Ok(())
    }

    /// Closes one handle, freeing the object if nothing else names it.
    pub fn close(&mut self, frames: &mut FrameAllocator<'_>, id: ObjectId) -> Result<(), VmError> {
        let object = self.objects.get_mut(&id).ok_or(VmError::InvalidArgument)?;
        if object.handles == 0 {
            return Err(VmError::InvalidArgument);
        }
        object.handles -= 1;
        self.free_if_unreferenced(frames, id);
        Ok(())
    }

    /// Counts one more region mapping the object.
    pub fn add_mapping(&mut self, id: ObjectId) {
        let object = self.objects.get_mut(&id).expect("ObjectTable::add_mapping: no such object");
        object.mappings += 1;
    }

    /// Counts one region fewer when two regions of the object merge (the object
    /// is still mapped by the merged region, so it is never freed here).
    pub fn forget_split_mapping(&mut self, id: ObjectId) {
        let object =
            self.objects.get_mut(&id).expect("ObjectTable::forget_split_mapping: no such object");
        assert!(object.mappings >= 2, "forget_split_mapping: the last mapping");
        object.mappings -= 1;
    }

    /// Counts one region fewer, freeing the object if nothing else names it. The
    /// caller has already removed (and flushed) the region's translations.
    pub fn remove_mapping(&mut self, frames: &mut FrameAllocator<'_>, id: ObjectId) {
        let object =
            self.objects.get_mut(&id).expect("ObjectTable::remove_mapping: no such object");
        object.mappings -= 1;
        self.free_if_unreferenced(frames, id);
    }

    /// Frees the object `id` if no mapping or handle is left.
    fn free_if_unreferenced(&mut self, frames: &mut FrameAllocator<'_>, id: ObjectId) {
        if self.objects.get(&id).is_some_and(SharedObject::is_unreferenced) {
            let object = self.objects.remove(&id).expect("ObjectTable: object vanished");
            crate::collections::release_if_empty(&mut self.objects);
            object.release(frames);
        }
    }
}
