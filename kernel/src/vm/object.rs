//! Memory objects: where the pages behind a region live.
//!
//! Two kinds exist. An [`AnonymousObject`] backs one private region: its pages are
//! zero-filled on first touch and may be shared copy-on-write with the private
//! regions of forked spaces. A [`SharedObject`] backs shared regions: every mapper
//! sees the same pages, and the object lives while any mapping or handle names it.
//!
//! Copy-on-write sharing is counted at two levels: an anonymous object's chunks
//! (see [`anonymous`]) are shared between the objects of forked regions, and a
//! frame's reference count (see [`FrameAllocator::add_ref`]) is the number of
//! chunks that name it. A shared object holds each of its frames exactly once.
#![forbid(unsafe_code)]

pub mod anonymous;

use alloc::collections::BTreeMap;

use super::error::VmError;
use super::frame::FrameAllocator;
use super::page::Pfn;

pub use anonymous::AnonymousObject;

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

    /// The resident pages with index in `range`, as (index, frame).
    pub fn pages_in(&self, range: core::ops::Range<u64>) -> impl Iterator<Item = (u64, Pfn)> + '_ {
        self.pages.range(range).map(|(index, pfn)| (*index, *pfn))
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
