//! The page store of private memory: chunks of frame numbers, shared at fork.
//!
//! An [`AnonymousObject`] holds the pages of one private region. Its pages live
//! in **chunks**: one chunk covers [`CHUNK_PAGES`] consecutive pages (2 MiB, the
//! span of one last-level page table on x86-64) and holds one 4-byte entry per
//! page, the frame number or zero for "never touched". An object is a short
//! sorted list of the chunks it has, keyed by chunk number (virtual address /
//! 2 MiB), so the object's offset is the virtual address itself and splitting a
//! region renumbers nothing.
//!
//! Chunks are reference counted. Fork gives the child a list naming the same
//! chunks: O(chunks), one small list copied, not one frame touched. A chunk
//! held by several objects is read-only to all of them; the first write to a
//! page of it copies the chunk's entries (taking one frame reference per page
//! it holds) into a chunk of the writer's own, and the page-level copy-on-write
//! below then copies the page itself if other holders still have it. So the
//! cost of sharing is paid per 2 MiB, on first write, by the side that writes.
//!
//! Who holds a frame: a frame's reference count is the number of chunks whose
//! entries name it. A page is shared (its translation must not grant write)
//! when its chunk is held by more than one object or its frame by more than
//! one chunk.
//!
//! Every allocation here is fallible: a chunk, or room in a list, that cannot
//! be had is `OutOfMemory`, with nothing changed.
//!
//! # Invariant
//! An object's chunks hold entries only for pages inside its region: splitting
//! a region cuts the chunk that straddles the cut (copying it if it is shared),
//! so that no frame is ever held by a chunk no region can see.
//!
//! # Alternatives not taken
//! - A map from address to frame per region (the old design): fork copies it
//!   page by page and takes a reference per frame, O(resident pages), and costs
//!   about 30 bytes of tree per page on top of the page record.
//! - Mach's shadow objects: fork is O(regions), but every read walks a chain,
//!   pages hidden by copies above them stay held until the chain is collapsed,
//!   and a split region must share a backing object it cannot split.
//! - Sharing whole page-table pages at fork (On-Demand-Fork): fast, but it puts
//!   the page store in the machine's format; here the store is portable and the
//!   page tables stay a cache.
#![forbid(unsafe_code)]

use alloc::sync::Arc;
use alloc::vec::Vec;
use core::mem::size_of;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::vm::error::VmError;
use crate::vm::frame::FrameAllocator;
use crate::vm::mmu::VirtAddr;
use crate::vm::page::{PAGE_SIZE, Pfn};

/// Pages per chunk. Host tests use small chunks so that the simulation's small
/// window of addresses crosses many chunk boundaries.
pub const CHUNK_PAGES: usize = if cfg!(test) { 8 } else { 512 };

/// Bytes of address space one chunk covers.
pub const CHUNK_SPAN: u64 = CHUNK_PAGES as u64 * PAGE_SIZE;

/// Bytes one chunk allocation takes: the entries, the resident count and the
/// reference counts the shared pointer keeps beside them.
pub const CHUNK_BYTES: usize = size_of::<Chunk>() + 2 * size_of::<usize>();

/// Bytes one entry of an object's chunk list takes.
pub const LIST_ENTRY_BYTES: usize = size_of::<(u64, Arc<Chunk>)>();

/// Marks an entry that names a swap slot rather than a frame.
const SWAPPED: u32 = 1 << 31;

/// What a chunk holds for one page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Never touched: reads as zeros.
    Empty,
    /// Resident in this frame.
    Frame(Pfn),
    /// Not resident: its contents are in this swap slot.
    Swapped(u32),
}

impl Entry {
    /// The entry a chunk stores for `word`.
    fn decode(word: u32) -> Entry {
        match word {
            0 => Entry::Empty,
            slot if slot & SWAPPED != 0 => Entry::Swapped(slot & !SWAPPED),
            frame => Entry::Frame(Pfn(u64::from(frame))),
        }
    }

    /// The word a chunk stores for this entry.
    fn encode(self) -> u32 {
        match self {
            Entry::Empty => 0,
            Entry::Frame(pfn) => {
                let frame = u32::try_from(pfn.0).ok().filter(|frame| frame & SWAPPED == 0);
                let frame = frame.expect("Entry: frame beyond 2^31");
                assert!(frame != 0, "Entry: frame 0 is never managed");
                frame
            }
            Entry::Swapped(slot) => {
                assert!(slot & SWAPPED == 0, "Entry: slot beyond 2^31");
                slot | SWAPPED
            }
        }
    }
}

/// The entries of [`CHUNK_PAGES`] consecutive pages.
///
/// An entry changes while the chunk is shared in one way only: reclaim
/// replaces a frame by the slot its contents went to, and a page-in the slot
/// by a frame it read them into ([`AnonymousObject::replace`]). Both keep what
/// every holder sees the same, which is what sharing promises; so the entries
/// are atomic words (plain loads and stores on x86-64), changed through a
/// shared reference under the VM's lock.
pub struct Chunk {
    /// One [`Entry`] per page, encoded: zero, a frame number, or a slot with
    /// [`SWAPPED`] set (frames and slots stay below 2^31).
    entries: [AtomicU32; CHUNK_PAGES],
    /// Non-empty entries (frames and slots).
    resident: u32,
    /// Entries naming slots (changed by [`Chunk::replace`] too, so atomic).
    swapped: AtomicU32,
    /// No entry outside `low..high` is non-zero (the bounds may be wider than
    /// the pages, never narrower): scans, cuts and joins cost the pages
    /// spanned, not the chunk.
    low: u16,
    high: u16,
}

impl Chunk {
    fn empty() -> Chunk {
        Chunk {
            entries: [const { AtomicU32::new(0) }; CHUNK_PAGES],
            resident: 0,
            swapped: AtomicU32::new(0),
            low: 0,
            high: 0,
        }
    }

    /// The slots that may hold pages.
    fn span(&self) -> core::ops::Range<usize> {
        usize::from(self.low)..usize::from(self.high)
    }

    /// Widens the bounds to take in `slots`.
    fn widen(&mut self, slots: core::ops::Range<usize>) {
        if slots.is_empty() {
            return;
        }
        let (low, high) = (slots.start as u16, slots.end as u16);
        if self.low == self.high {
            (self.low, self.high) = (low, high);
        } else {
            (self.low, self.high) = (self.low.min(low), self.high.max(high));
        }
    }

    /// The raw word of page `slot`.
    fn word(&self, slot: usize) -> u32 {
        self.entries[slot].load(Ordering::Relaxed)
    }

    /// What page `slot` holds.
    fn entry(&self, slot: usize) -> Entry {
        Entry::decode(self.word(slot))
    }

    /// The frame of page `slot`, if it is resident.
    fn get(&self, slot: usize) -> Option<Pfn> {
        match self.entry(slot) {
            Entry::Frame(pfn) => Some(pfn),
            _ => None,
        }
    }

    /// Sets page `slot` to `entry` (not empty), returning what it replaces.
    fn set(&mut self, slot: usize, entry: Entry) -> Entry {
        debug_assert!(entry != Entry::Empty);
        let old = self.entry(slot);
        *self.entries[slot].get_mut() = entry.encode();
        let swapped = self.swapped.get_mut();
        *swapped = *swapped + u32::from(matches!(entry, Entry::Swapped(_)))
            - u32::from(matches!(old, Entry::Swapped(_)));
        if old == Entry::Empty {
            self.resident += 1;
            self.widen(slot..slot + 1);
        }
        old
    }

    /// Replaces non-empty `old` at page `slot` by non-empty `new` in a chunk
    /// that may be shared; false (and nothing changed) if `old` is not there.
    fn replace(&self, slot: usize, old: Entry, new: Entry) -> bool {
        debug_assert!(old != Entry::Empty && new != Entry::Empty);
        if self.entry(slot) != old {
            return false;
        }
        self.entries[slot].store(new.encode(), Ordering::Relaxed);
        match (old, new) {
            (Entry::Frame(_), Entry::Swapped(_)) => self.swapped.fetch_add(1, Ordering::Relaxed),
            (Entry::Swapped(_), Entry::Frame(_)) => self.swapped.fetch_sub(1, Ordering::Relaxed),
            _ => 0,
        };
        true
    }

    /// Clears page `slot`, returning what it held.
    fn take(&mut self, slot: usize) -> Entry {
        let old = Entry::decode(core::mem::take(self.entries[slot].get_mut()));
        if old != Entry::Empty {
            self.resident -= 1;
        }
        if matches!(old, Entry::Swapped(_)) {
            *self.swapped.get_mut() -= 1;
        }
        old
    }

    /// The resident pages as (slot, frame).
    fn frames(&self) -> impl Iterator<Item = (usize, Pfn)> + '_ {
        self.span().filter_map(|slot| self.get(slot).map(|pfn| (slot, pfn)))
    }

    /// The non-empty entries as (slot, entry).
    fn entries(&self) -> impl Iterator<Item = (usize, Entry)> + '_ {
        self.span().map(|slot| (slot, self.entry(slot))).filter(|(_, entry)| *entry != Entry::Empty)
    }

    /// `slots` within the bounds.
    fn within(&self, slots: core::ops::Range<usize>) -> core::ops::Range<usize> {
        let span = self.span();
        slots.start.max(span.start)..slots.end.min(span.end)
    }

    /// Whether any page in `slots` is resident or swapped.
    fn any_in(&self, slots: core::ops::Range<usize>) -> bool {
        self.within(slots).any(|slot| self.word(slot) != 0)
    }

    /// Moves the pages at and above `slot` into `empty`, a chunk with none.
    fn move_above(&mut self, slot: usize, empty: &mut Chunk) {
        let moving = self.within(slot..CHUNK_PAGES);
        if moving.start >= moving.end {
            return;
        }
        let (mut count, mut swapped) = (0, 0);
        for at in moving.clone() {
            let word = core::mem::take(self.entries[at].get_mut());
            count += u32::from(word != 0);
            swapped += u32::from(word & SWAPPED != 0);
            *empty.entries[at].get_mut() = word;
        }
        self.resident -= count;
        empty.resident += count;
        *self.swapped.get_mut() -= swapped;
        *empty.swapped.get_mut() += swapped;
        empty.widen(moving.clone());
        self.high = moving.start as u16;
        self.low = self.low.min(self.high);
    }

    /// Takes every page of `other`, whose pages are all at slots this chunk
    /// has none at, leaving it empty.
    fn join(&mut self, other: &mut Chunk) {
        let span = other.span();
        for slot in span.clone() {
            let theirs = core::mem::take(other.entries[slot].get_mut());
            let ours = self.entries[slot].get_mut();
            debug_assert!(theirs == 0 || *ours == 0, "Chunk::join: pages overlap");
            *ours |= theirs;
        }
        self.resident += core::mem::take(&mut other.resident);
        *self.swapped.get_mut() += core::mem::take(other.swapped.get_mut());
        self.widen(span);
        (other.low, other.high) = (0, 0);
    }
}

/// A chunk's entries, for walking it without a lookup per page.
#[derive(Clone, Copy)]
pub struct ChunkEntries<'c>(&'c Chunk);

impl ChunkEntries<'_> {
    /// What page `slot` of the chunk holds (`Empty` past its end).
    pub fn get(&self, slot: usize) -> Entry {
        if slot < CHUNK_PAGES { self.0.entry(slot) } else { Entry::Empty }
    }
}

/// How a chunk straddling a split is divided.
enum Cut {
    /// Every page of it lies below the split: it stays.
    AllBelow,
    /// Every page of it lies above: it moves, shared or not.
    AllAbove,
    /// It is ours alone: the pages above move to this new chunk.
    Move(Arc<Chunk>),
    /// It is shared: the pages below and above are copied into two new chunks.
    Copies(Arc<Chunk>, Arc<Chunk>),
}

/// A new chunk in a shared pointer, or `OutOfMemory`.
fn new_chunk(chunk: Chunk) -> Result<Arc<Chunk>, VmError> {
    Arc::try_new(chunk).map_err(|_| VmError::OutOfMemory)
}

/// A private copy of the entries of `chunk` in `slots` (the rest empty), with
/// one more reference on each frame copied; on failure no reference is left.
fn copy_chunk(
    chunk: &Chunk,
    slots: core::ops::Range<usize>,
    frames: &mut FrameAllocator<'_>,
) -> Result<Arc<Chunk>, VmError> {
    let mut copy = new_chunk(Chunk::empty())?;
    let fresh = Arc::get_mut(&mut copy).expect("copy_chunk: new chunk is shared");
    for slot in chunk.within(slots) {
        let entry = chunk.entry(slot);
        let held = match entry {
            Entry::Empty => continue,
            Entry::Frame(pfn) => frames.add_ref(pfn).map(drop),
            Entry::Swapped(swapped) => frames.slots_mut().hold_entry(swapped),
        };
        if let Err(error) = held {
            release_chunk(fresh, frames);
            return Err(error);
        }
        fresh.set(slot, entry);
    }
    Ok(copy)
}

/// Drops the chunk's reference on every frame and slot it names.
fn release_chunk(chunk: &mut Chunk, frames: &mut FrameAllocator<'_>) {
    for slot in chunk.span() {
        match chunk.take(slot) {
            Entry::Empty => {}
            Entry::Frame(pfn) => {
                frames.release(pfn).expect("release_chunk: frame not referenced");
            }
            Entry::Swapped(swapped) => frames.slots_mut().drop_entry(swapped),
        }
    }
}

/// Chunk number and slot of the page at `address`.
fn locate(address: VirtAddr) -> (u64, usize) {
    let page = address.0 / PAGE_SIZE;
    (page / CHUNK_PAGES as u64, (page % CHUNK_PAGES as u64) as usize)
}

/// The address of `slot` in chunk `number`.
fn address_of(number: u64, slot: usize) -> VirtAddr {
    VirtAddr(number * CHUNK_SPAN + slot as u64 * PAGE_SIZE)
}

/// Whether an object whose last chunk is `last` can take one whose first is
/// `first` (each as number and whether held alone): a chunk both name must be
/// each one's alone, so that its entries can be joined.
pub fn chunks_join(last: Option<(u64, bool)>, first: Option<(u64, bool)>) -> bool {
    match (last, first) {
        (Some((low, low_alone)), Some((high, high_alone))) if low == high => {
            low_alone && high_alone
        }
        _ => true,
    }
}

/// The pages of one private region (see the module documentation).
#[derive(Default)]
pub struct AnonymousObject {
    /// (chunk number, chunk), sorted by number; no chunk is empty.
    chunks: Vec<(u64, Arc<Chunk>)>,
    /// An empty chunk a join left over, kept for the next cut: a range
    /// protected and restored again and again (a guard page, a JIT's code)
    /// then cuts and joins without allocating. Counted in the metadata.
    spare: Option<Arc<Chunk>>,
}

impl core::fmt::Debug for AnonymousObject {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AnonymousObject")
            .field("chunks", &self.chunks.len())
            .field("resident", &self.len())
            .finish()
    }
}

impl AnonymousObject {
    /// An object with no page yet (everything reads as zero).
    pub fn new() -> Self {
        Self::default()
    }

    /// Where chunk `number` is in the list, or where it would go.
    fn find(&self, number: u64) -> Result<usize, usize> {
        self.chunks.binary_search_by_key(&number, |(key, _)| *key)
    }

    /// The frame behind the page at `address`, if it has been touched.
    pub fn page(&self, address: VirtAddr) -> Option<Pfn> {
        let (number, slot) = locate(address);
        let index = self.find(number).ok()?;
        self.chunks[index].1.get(slot)
    }

    /// What the page at `address` holds.
    pub fn entry(&self, address: VirtAddr) -> Entry {
        let (number, slot) = locate(address);
        match self.find(number) {
            Ok(index) => self.chunks[index].1.entry(slot),
            Err(_) => Entry::Empty,
        }
    }

    /// The entries of the chunk holding `address`, and whether another
    /// object holds the chunk too; `None` if the object has no such chunk.
    /// For walking a chunk without a lookup per page.
    pub fn chunk_entries(&self, address: VirtAddr) -> Option<(ChunkEntries<'_>, bool)> {
        let (number, _) = locate(address);
        let index = self.find(number).ok()?;
        let chunk = &self.chunks[index].1;
        Some((ChunkEntries(chunk), Arc::strong_count(chunk) > 1))
    }

    /// Replaces `old` by `new` at `address`, both non-empty, even in a chunk
    /// other objects hold too: for reclaim (a frame by the slot holding its
    /// contents) and page-in (the reverse), which change where the contents
    /// are and not what they are. False, with nothing changed, if the page
    /// does not hold `old`. The caller moves the references.
    pub fn replace(&self, address: VirtAddr, old: Entry, new: Entry) -> bool {
        let (number, slot) = locate(address);
        self.find(number).is_ok_and(|index| self.chunks[index].1.replace(slot, old, new))
    }

    /// The non-empty entries in `[start, end)`, in address order.
    pub fn entries_in(
        &self,
        start: VirtAddr,
        end: VirtAddr,
    ) -> impl Iterator<Item = (VirtAddr, Entry)> + '_ {
        let first = self.find(locate(start).0).unwrap_or_else(|index| index);
        self.chunks[first..]
            .iter()
            .take_while(move |(number, _)| *number * CHUNK_SPAN < end.0)
            .flat_map(|(number, chunk)| {
                chunk.entries().map(move |(slot, entry)| (address_of(*number, slot), entry))
            })
            .filter(move |(address, _)| start <= *address && *address < end)
    }

    /// Whether the chunk holding `address` is also held by another object (so
    /// that its pages are shared whatever their frames' counts say).
    pub fn chunk_shared(&self, address: VirtAddr) -> bool {
        let (number, _) = locate(address);
        self.find(number).is_ok_and(|index| Arc::strong_count(&self.chunks[index].1) > 1)
    }

    /// Makes the chunk holding `address` exist and be this object's alone
    /// (copying a shared one), so that [`AnonymousObject::set`] may change it.
    /// On failure nothing changed.
    pub fn prepare(
        &mut self,
        address: VirtAddr,
        frames: &mut FrameAllocator<'_>,
    ) -> Result<(), VmError> {
        let (number, _) = locate(address);
        match self.find(number) {
            Ok(index) => {
                let chunk = &self.chunks[index].1;
                if Arc::strong_count(chunk) > 1 {
                    let copy = copy_chunk(chunk, 0..CHUNK_PAGES, frames)?;
                    self.chunks[index].1 = copy;
                }
            }
            Err(index) => {
                self.chunks.try_reserve(1).map_err(|_| VmError::OutOfMemory)?;
                let chunk = new_chunk(Chunk::empty())?;
                self.chunks.insert(index, (number, chunk));
            }
        }
        Ok(())
    }

    /// Installs `pfn` at `address`, returning the frame it replaces. The chunk
    /// must have been made ready with [`AnonymousObject::prepare`], and a
    /// swapped page read back first.
    pub fn set(&mut self, address: VirtAddr, pfn: Pfn) -> Option<Pfn> {
        let (number, slot) = locate(address);
        let index = self.find(number).expect("AnonymousObject::set: chunk not prepared");
        let chunk = Arc::get_mut(&mut self.chunks[index].1)
            .expect("AnonymousObject::set: chunk shared, not prepared");
        match chunk.set(slot, Entry::Frame(pfn)) {
            Entry::Empty => None,
            Entry::Frame(old) => Some(old),
            Entry::Swapped(_) => panic!("AnonymousObject::set: page swapped, not read back"),
        }
    }

    /// Every resident page, in address order.
    pub fn pages(&self) -> impl Iterator<Item = (VirtAddr, Pfn)> + '_ {
        self.chunks.iter().flat_map(|(number, chunk)| {
            chunk.frames().map(move |(slot, pfn)| (address_of(*number, slot), pfn))
        })
    }

    /// The resident pages in `[start, end)`.
    pub fn pages_in(
        &self,
        start: VirtAddr,
        end: VirtAddr,
    ) -> impl Iterator<Item = (VirtAddr, Pfn)> + '_ {
        let first = self.find(locate(start).0).unwrap_or_else(|index| index);
        self.chunks[first..]
            .iter()
            .take_while(move |(number, _)| *number * CHUNK_SPAN < end.0)
            .flat_map(|(number, chunk)| {
                chunk.frames().map(move |(slot, pfn)| (address_of(*number, slot), pfn))
            })
            .filter(move |(address, _)| start <= *address && *address < end)
    }

    /// How many pages are resident (O(chunks)).
    pub fn len(&self) -> usize {
        self.chunks.iter().map(|(_, chunk)| chunk.resident as usize).sum()
    }

    /// Whether no page is resident.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The first chunk's number and whether this object holds it alone.
    pub fn first_chunk(&self) -> Option<(u64, bool)> {
        self.chunks.first().map(|(number, chunk)| (*number, Arc::strong_count(chunk) == 1))
    }

    /// The last chunk's number and whether this object holds it alone.
    pub fn last_chunk(&self) -> Option<(u64, bool)> {
        self.chunks.last().map(|(number, chunk)| (*number, Arc::strong_count(chunk) == 1))
    }

    /// How many chunks the object names.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Each chunk's first address and its pages in memory, in address order
    /// (O(chunks): fork weighs what it offers the MMU by it).
    pub fn chunks_in_memory(&self) -> impl Iterator<Item = (VirtAddr, usize)> + '_ {
        self.chunks.iter().map(|(number, chunk)| {
            let swapped = chunk.swapped.load(Ordering::Relaxed) as usize;
            (address_of(*number, 0), chunk.resident as usize - swapped)
        })
    }

    /// Each chunk as (an identity shared by every object naming it, how many
    /// objects name it, pages in memory, pages in swap), for accounting and
    /// invariant checks.
    pub fn chunk_identities(&self) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
        self.chunks.iter().map(|(_, chunk)| {
            let swapped = chunk.swapped.load(Ordering::Relaxed) as usize;
            let identity = Arc::as_ptr(chunk) as usize;
            (identity, Arc::strong_count(chunk), chunk.resident as usize - swapped, swapped)
        })
    }

    /// Every non-empty entry with the identity of its chunk (as
    /// [`AnonymousObject::chunk_identities`] gives it), in address order.
    pub fn entries_by_chunk(&self) -> impl Iterator<Item = (usize, VirtAddr, Entry)> + '_ {
        self.chunks.iter().flat_map(|(number, chunk)| {
            let identity = Arc::as_ptr(chunk) as usize;
            chunk.entries().map(move |(slot, entry)| (identity, address_of(*number, slot), entry))
        })
    }

    /// Bytes of chunk list this object has allocated, and of its spare chunk.
    pub fn list_bytes(&self) -> usize {
        self.chunks.capacity() * LIST_ENTRY_BYTES + self.spare.as_ref().map_or(0, |_| CHUNK_BYTES)
    }

    /// Makes room to take `upper`'s chunks in [`AnonymousObject::append`].
    /// The halves of a split always have that room already: the lower half
    /// keeps the list's capacity.
    pub fn reserve_for(&mut self, upper: &AnonymousObject) -> Result<(), VmError> {
        let joined = match (self.chunks.last(), upper.chunks.first()) {
            (Some((low, _)), Some((high, _))) => usize::from(low == high),
            _ => 0,
        };
        let more = upper.chunks.len() - joined;
        self.chunks.try_reserve(more).map_err(|_| VmError::OutOfMemory)
    }

    /// Whether [`AnonymousObject::append`] can take `upper` (whose pages all lie
    /// above this object's) without allocating: a chunk both name must be each
    /// one's alone, so that its entries can be joined.
    pub fn can_append(&self, upper: &AnonymousObject) -> bool {
        chunks_join(self.last_chunk(), upper.first_chunk())
    }

    /// Takes every page of `upper`, whose pages all lie above this object's.
    /// The caller checked [`AnonymousObject::can_append`] and made room with
    /// [`AnonymousObject::reserve_for`]; nothing is allocated here.
    pub fn append(&mut self, upper: AnonymousObject) {
        debug_assert!(self.can_append(&upper));
        let mut rest = upper.chunks.into_iter().peekable();
        if let (Some((low, lower)), Some((high, _))) = (self.chunks.last_mut(), rest.peek())
            && low == high
        {
            let (_, mut higher) = rest.next().expect("append: chunk vanished");
            let lower = Arc::get_mut(lower).expect("append: lower chunk shared");
            lower.join(Arc::get_mut(&mut higher).expect("append: upper chunk shared"));
            self.spare.get_or_insert(higher);
        }
        self.chunks.extend(rest);
    }

    /// Moves the pages at and above `address` into a new object. A chunk that
    /// straddles `address` is cut in two (copied first if it is shared). On
    /// failure nothing changed.
    pub fn split_off(
        &mut self,
        address: VirtAddr,
        frames: &mut FrameAllocator<'_>,
    ) -> Result<AnonymousObject, VmError> {
        let (number, slot) = locate(address);
        let straddling = match self.find(number) {
            Ok(index) if slot > 0 => Some(index),
            _ => None,
        };
        let first_upper = match self.find(number) {
            Ok(index) | Err(index) => index + usize::from(straddling.is_some()),
        };
        // Room for the chunks above, and for the upper part of a cut one if
        // it has pages there; none at all (no allocation) if there is
        // nothing above.
        let cut_above =
            straddling.is_some_and(|index| self.chunks[index].1.any_in(slot..CHUNK_PAGES));
        let mut upper = Vec::new();
        upper
            .try_reserve_exact(self.chunks.len() - first_upper + usize::from(cut_above))
            .map_err(|_| VmError::OutOfMemory)?;
        let cut = match straddling {
            Some(index) => Some((index, self.cut(index, slot, frames)?)),
            None => None,
        };
        // Nothing below can fail.
        upper.extend(self.chunks.drain(first_upper..));
        if let Some((index, cut)) = cut {
            match cut {
                Cut::AllBelow => {}
                Cut::AllAbove => {
                    let whole = self.chunks.remove(index);
                    upper.insert(0, whole);
                }
                Cut::Move(mut fresh) => {
                    let low = Arc::get_mut(&mut self.chunks[index].1).expect("cut: chunk shared");
                    low.move_above(
                        slot,
                        Arc::get_mut(&mut fresh).expect("cut: fresh chunk shared"),
                    );
                    upper.insert(0, (number, fresh));
                }
                Cut::Copies(lower, higher) => {
                    // The copies hold their own references; the original is
                    // left to its other holders.
                    self.chunks[index].1 = lower;
                    upper.insert(0, (number, higher));
                }
            }
        }
        Ok(AnonymousObject { chunks: upper, spare: None })
    }

    /// Prepares the cut of chunk `index` at `slot`, allocating what it needs
    /// (and changing nothing).
    fn cut(
        &mut self,
        index: usize,
        slot: usize,
        frames: &mut FrameAllocator<'_>,
    ) -> Result<Cut, VmError> {
        let chunk = &self.chunks[index].1;
        Ok(match (chunk.any_in(0..slot), chunk.any_in(slot..CHUNK_PAGES)) {
            (_, false) => Cut::AllBelow,
            (false, true) => Cut::AllAbove,
            (true, true) if Arc::strong_count(chunk) == 1 => match self.spare.take() {
                Some(spare) => Cut::Move(spare),
                None => Cut::Move(new_chunk(Chunk::empty())?),
            },
            (true, true) => {
                let mut lower = copy_chunk(chunk, 0..slot, frames)?;
                match copy_chunk(chunk, slot..CHUNK_PAGES, frames) {
                    Ok(higher) => Cut::Copies(lower, higher),
                    Err(error) => {
                        let fresh = Arc::get_mut(&mut lower).expect("cut: fresh chunk shared");
                        release_chunk(fresh, frames);
                        return Err(error);
                    }
                }
            }
        })
    }

    /// A second object naming the same chunks (the copy-on-write half of fork):
    /// O(chunks), no frame touched. On failure nothing changed.
    pub fn share(&self) -> Result<AnonymousObject, VmError> {
        let mut chunks = Vec::new();
        chunks.try_reserve_exact(self.chunks.len()).map_err(|_| VmError::OutOfMemory)?;
        chunks.extend(self.chunks.iter().cloned());
        Ok(AnonymousObject { chunks, spare: None })
    }

    /// Drops this object's hold on its chunks; the frames of chunks nobody else
    /// names lose a reference.
    pub fn release(self, frames: &mut FrameAllocator<'_>) {
        for (_, chunk) in self.chunks {
            if let Some(mut chunk) = Arc::into_inner(chunk) {
                release_chunk(&mut chunk, frames);
            }
        }
    }
}
