//! The reference model: what a process should see, as simply as possible.
//!
//! Each space is a map from page address to (protection, contents); private
//! contents are owned bytes (fork deep-copies them), shared contents name a page of
//! a model object. There are no frames, no regions and no copy-on-write here: the
//! model says what every operation must return and what every read must see, and
//! the VM has to agree.

use std::collections::BTreeMap;
use std::vec::Vec;

use crate::vm::error::VmError;
use crate::vm::mmu::{Access, Protection, SpaceId, USER_END, USER_START, VirtAddr};
use crate::vm::object::ObjectId;
use crate::vm::page::PAGE_SIZE;

/// Bytes of one page; `None` reads as zeros.
type Bytes = Option<Box<[u8]>>;

/// What lies at one page.
#[derive(Clone, Debug)]
enum Contents {
    Private(Bytes),
    Shared { object: ObjectId, index: u64 },
}

/// One mapped page.
#[derive(Clone, Debug)]
struct Page {
    protection: Protection,
    contents: Contents,
}

/// One shared object's pages and whether its handle is open.
#[derive(Debug)]
struct Object {
    pages: Vec<Bytes>,
    open: bool,
}

/// The whole model.
#[derive(Debug, Default)]
pub struct Model {
    spaces: BTreeMap<SpaceId, BTreeMap<VirtAddr, Page>>,
    objects: BTreeMap<ObjectId, Object>,
}

/// The range rule the VM applies: non-empty, whole pages, inside user space.
pub fn check_range(start: VirtAddr, length: u64) -> Result<VirtAddr, VmError> {
    if length == 0 || !length.is_multiple_of(PAGE_SIZE) {
        return Err(VmError::InvalidArgument);
    }
    let end = start.0.checked_add(length).ok_or(VmError::BadAddress)?;
    if !start.is_page_aligned() || start.0 < USER_START || end > USER_END {
        return Err(VmError::BadAddress);
    }
    Ok(VirtAddr(end))
}

/// The protection rule: no write or execute without read.
pub fn check_protection(protection: Protection) -> Result<(), VmError> {
    let needs_read = protection.intersects(Protection::WRITE | Protection::EXECUTE);
    if needs_read && !protection.contains(Protection::READ) {
        return Err(VmError::InvalidArgument);
    }
    Ok(())
}

/// The pages of `[start, end)`.
fn pages(start: VirtAddr, end: VirtAddr) -> impl Iterator<Item = VirtAddr> {
    (start.0..end.0).step_by(PAGE_SIZE as usize).map(VirtAddr)
}

impl Model {
    /// Adds an empty space.
    pub fn create_space(&mut self, space: SpaceId) {
        self.spaces.insert(space, BTreeMap::new());
    }

    /// Removes a space.
    pub fn destroy(&mut self, space: SpaceId) {
        self.spaces.remove(&space);
    }

    /// The mapped pages of `space`, with their protection.
    pub fn mapped(&self, space: SpaceId) -> Vec<(VirtAddr, Protection)> {
        self.spaces[&space].iter().map(|(page, entry)| (*page, entry.protection)).collect()
    }

    /// The lowest free range of `length` bytes (first fit).
    pub fn find_free_range(&self, space: SpaceId, length: u64) -> Option<VirtAddr> {
        let mut candidate = USER_START;
        for page in self.spaces[&space].keys() {
            if page.0 >= candidate + length {
                break;
            }
            if page.0 >= candidate {
                candidate = page.0 + PAGE_SIZE;
            }
        }
        (candidate + length <= USER_END).then_some(VirtAddr(candidate))
    }

    /// Whether any page of `[start, end)` is mapped.
    fn overlaps(&self, space: SpaceId, start: VirtAddr, end: VirtAddr) -> bool {
        self.spaces[&space].range(start..end).next().is_some()
    }

    /// Whether every page of `[start, end)` is mapped.
    fn covers(&self, space: SpaceId, start: VirtAddr, end: VirtAddr) -> bool {
        pages(start, end).all(|page| self.spaces[&space].contains_key(&page))
    }

    /// The result a placement must have: the address, or the error.
    pub fn place(
        &self,
        space: SpaceId,
        exact: Option<VirtAddr>,
        length: u64,
    ) -> Result<VirtAddr, VmError> {
        match exact {
            None => {
                check_range(VirtAddr(USER_START), length)?;
                self.find_free_range(space, length).ok_or(VmError::OutOfMemory)
            }
            Some(start) => {
                let end = check_range(start, length)?;
                if self.overlaps(space, start, end) {
                    return Err(VmError::InvalidArgument);
                }
                Ok(start)
            }
        }
    }

    /// Maps private zero pages at `start` (already checked by `place`).
    pub fn map_anonymous(
        &mut self,
        space: SpaceId,
        start: VirtAddr,
        length: u64,
        protection: Protection,
    ) {
        let target = self.spaces.get_mut(&space).expect("model: no space");
        for page in pages(start, start.add(length)) {
            target.insert(page, Page { protection, contents: Contents::Private(None) });
        }
    }

    /// Creates a shared object with an open handle.
    pub fn create_shared(&mut self, object: ObjectId, pages: u64) {
        self.objects.insert(object, Object { pages: vec![None; pages as usize], open: true });
    }

    /// Closes an object's handle.
    pub fn close_shared(&mut self, object: ObjectId) -> Result<(), VmError> {
        match self.objects.get_mut(&object) {
            Some(entry) if entry.open => {
                entry.open = false;
                Ok(())
            }
            _ => Err(VmError::InvalidArgument),
        }
    }

    /// Whether the VM must still have the object: a handle is open or a page of
    /// it is mapped somewhere.
    pub fn object_alive(&self, object: ObjectId) -> bool {
        let mapped = |page: &Page| matches!(page.contents, Contents::Shared { object: named, .. } if named == object);
        self.objects.get(&object).is_some_and(|entry| entry.open)
            || self.spaces.values().any(|pages| pages.values().any(mapped))
    }

    /// Checks a shared mapping's object, offset and length.
    pub fn check_shared(&self, object: ObjectId, offset: u64, length: u64) -> Result<(), VmError> {
        let entry =
            self.objects.get(&object).filter(|entry| entry.open).ok_or(VmError::InvalidArgument)?;
        let size = entry.pages.len() as u64 * PAGE_SIZE;
        let fits = offset.checked_add(length).is_some_and(|end| end <= size);
        if !offset.is_multiple_of(PAGE_SIZE) || !fits {
            return Err(VmError::InvalidArgument);
        }
        Ok(())
    }

    /// Maps object pages from byte `offset` at `start` (already checked).
    pub fn map_shared(
        &mut self,
        space: SpaceId,
        start: VirtAddr,
        object: ObjectId,
        offset: u64,
        length: u64,
        protection: Protection,
    ) {
        let target = self.spaces.get_mut(&space).expect("model: no space");
        for (number, page) in pages(start, start.add(length)).enumerate() {
            let contents = Contents::Shared { object, index: offset / PAGE_SIZE + number as u64 };
            target.insert(page, Page { protection, contents });
        }
    }

    /// Unmaps a range (holes allowed).
    pub fn unmap(&mut self, space: SpaceId, start: VirtAddr, length: u64) -> Result<(), VmError> {
        let end = check_range(start, length)?;
        let target = self.spaces.get_mut(&space).expect("model: no space");
        let doomed: Vec<VirtAddr> = target.range(start..end).map(|(page, _)| *page).collect();
        for page in doomed {
            target.remove(&page);
        }
        Ok(())
    }

    /// Changes the protection of a fully mapped range.
    pub fn protect(
        &mut self,
        space: SpaceId,
        start: VirtAddr,
        length: u64,
        protection: Protection,
    ) -> Result<(), VmError> {
        let end = check_range(start, length)?;
        check_protection(protection)?;
        if !self.covers(space, start, end) {
            return Err(VmError::BadAddress);
        }
        let target = self.spaces.get_mut(&space).expect("model: no space");
        for (_, page) in target.range_mut(start..end) {
            page.protection = protection;
        }
        Ok(())
    }

    /// The result a pin or unpin must have if memory suffices.
    pub fn check_pin(&self, space: SpaceId, start: VirtAddr, length: u64) -> Result<(), VmError> {
        let end = check_range(start, length)?;
        if !self.covers(space, start, end) {
            return Err(VmError::BadAddress);
        }
        Ok(())
    }

    /// A copy of `parent` named `child`: private bytes copied, shared ones shared.
    pub fn fork(&mut self, parent: SpaceId, child: SpaceId) {
        let copy = self.spaces[&parent].clone();
        self.spaces.insert(child, copy);
    }

    /// Whether `access` at `address` must succeed, and if not, the error.
    pub fn check_access(
        &self,
        space: SpaceId,
        address: VirtAddr,
        access: Access,
    ) -> Result<(), VmError> {
        let page = self.spaces[&space].get(&address.page_down()).ok_or(VmError::BadAddress)?;
        if !page.protection.allows(access) {
            return Err(VmError::Protection);
        }
        Ok(())
    }

    /// The bytes at `address` (within one page).
    pub fn read(&self, space: SpaceId, address: VirtAddr, buffer: &mut [u8]) {
        let page = &self.spaces[&space][&address.page_down()];
        let bytes = match &page.contents {
            Contents::Private(bytes) => bytes,
            Contents::Shared { object, index } => &self.objects[object].pages[*index as usize],
        };
        let offset = (address.0 % PAGE_SIZE) as usize;
        match bytes {
            Some(bytes) => buffer.copy_from_slice(&bytes[offset..offset + buffer.len()]),
            None => buffer.fill(0),
        }
    }

    /// Stores `data` at `address` (within one page).
    pub fn write(&mut self, space: SpaceId, address: VirtAddr, data: &[u8]) {
        let page =
            self.spaces.get_mut(&space).and_then(|target| target.get_mut(&address.page_down()));
        let bytes = match &mut page.expect("model: write to unmapped page").contents {
            Contents::Private(bytes) => bytes,
            Contents::Shared { object, index } => {
                &mut self.objects.get_mut(object).expect("model: no object").pages[*index as usize]
            }
        };
        let offset = (address.0 % PAGE_SIZE) as usize;
        let bytes = bytes.get_or_insert_with(|| vec![0; PAGE_SIZE as usize].into_boxed_slice());
        bytes[offset..offset + data.len()].copy_from_slice(data);
    }
}
