//! Page-table pages in the x86_64 4-level format, reached through the physical map.
//!
//! This is the only place that knows how an entry is encoded. A table is a frame
//! of 512 entries, read and written as atomics: the processor sets the accessed
//! and dirty bits behind our back, and atomics make that race well defined.
//!
//! Leaf entries carry one software bit, [`PINNED`]: pinned translations survive
//! [`walk`]s that forget the others. An entry is *used* when it is non-zero; a
//! used entry without `PRESENT` is a translation that grants nothing (the VM asked
//! for a protection without read) but still holds its frame's number, its pin and
//! its accessed/dirty bits. Intermediate entries allow everything (present,
//! writable, user), with one exception: a P2 entry may lack `WRITABLE`, which
//! write-protects the whole 2 MiB below it in one store ([`write_protect`], how
//! fork protects a parent in O(page-table pages)). The leaves below keep their
//! own write bits, which mean nothing while the P2 entry lacks it: every
//! function here reports a leaf as the processor sees it (its *effective*
//! entry, without `WRITABLE` under a protected P2 entry), and [`install`] of a
//! writable leaf there first clears the write bit of every leaf of that table,
//! then gives the P2 entry its write bit back (a lazy split: 512 stores on the
//! first write fault of the 2 MiB after fork).
//!
//! Only the user half (P4 slots 0..256) is ever walked or changed here; the kernel
//! half of every root is a copy of the boot root's and is never touched again.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU64, Ordering};

use x86_64::structures::paging::PageTableFlags as Flags;

use crate::vm::{Pfn, Protection, USER_END, VmError};

/// Entries in one table.
const ENTRIES: usize = 512;
/// First P4 slot of the kernel half, shared by every root.
pub const KERNEL_HALF_FIRST_SLOT: usize = 256;
/// The physical-address bits of an entry.
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;
/// Software bit 9: a pinned leaf.
pub const PINNED: u64 = Flags::BIT_9.bits();
const PRESENT: u64 = Flags::PRESENT.bits();
const WRITABLE: u64 = Flags::WRITABLE.bits();
const USER: u64 = Flags::USER_ACCESSIBLE.bits();
const ACCESSED: u64 = Flags::ACCESSED.bits();
const DIRTY: u64 = Flags::DIRTY.bits();
const NO_EXECUTE: u64 = Flags::NO_EXECUTE.bits();
/// Flags of an entry that points at a lower table.
const TABLE_FLAGS: u64 = PRESENT | WRITABLE | USER;

/// One table: 512 entries.
type Table = [AtomicU64; ENTRIES];

/// The entries of table frame `pfn`.
///
/// Callers pass only frames that are page-table pages of this layer (or the boot
/// root), and drop the reference before such a frame is freed.
fn table(pfn: Pfn) -> &'static Table {
    let address = crate::memory::physical_offset() + pfn.addr();
    // SAFETY: the bootloader maps all physical memory at the physical offset for
    // the kernel's life, so the 4096 bytes at `address` are mapped and suitably
    // aligned for `AtomicU64`. The frame is a page-table page owned by this layer
    // (callers' rule), and every access to it, the processor's included, is
    // atomic, so shared references to it never race.
    unsafe { &*(address as *const Table) }
}

/// Index of `address` in its table at `level` (4 = P4, 1 = P1).
fn index(address: u64, level: u32) -> usize {
    ((address >> (12 + 9 * (level - 1))) & 0x1ff) as usize
}

/// Bytes translated by one entry at `level`.
fn span(level: u32) -> u64 {
    1 << (12 + 9 * (level - 1))
}

/// The frame an entry points at.
pub fn frame_of(entry: u64) -> Pfn {
    Pfn::from_addr(entry & ADDRESS_MASK)
}

/// The leaf entry translating to `pfn` with `protection`.
pub fn encode(pfn: Pfn, protection: Protection, pinned: bool) -> u64 {
    let mut entry = (pfn.addr() & ADDRESS_MASK) | NO_EXECUTE;
    if protection.contains(Protection::READ) {
        entry |= PRESENT;
        if protection.contains(Protection::WRITE) {
            entry |= WRITABLE;
        }
        if protection.contains(Protection::EXECUTE) {
            entry &= !NO_EXECUTE;
        }
    }
    if protection.contains(Protection::USER) {
        entry |= USER;
    }
    if pinned {
        entry |= PINNED;
    }
    entry
}

/// The frame and rights of a used leaf entry.
pub fn decode(entry: u64) -> (Pfn, Protection) {
    let mut protection = Protection::empty();
    if entry & PRESENT != 0 {
        protection |= Protection::READ;
        if entry & WRITABLE != 0 {
            protection |= Protection::WRITE;
        }
        if entry & NO_EXECUTE == 0 {
            protection |= Protection::EXECUTE;
        }
    }
    if entry & USER != 0 {
        protection |= Protection::USER;
    }
    (frame_of(entry), protection)
}

/// A leaf entry restricted to at most `protection` (rights are only removed).
pub fn restrict(entry: u64, protection: Protection) -> u64 {
    let mut entry = entry;
    if !protection.contains(Protection::READ) {
        entry &= !(PRESENT | WRITABLE);
        entry |= NO_EXECUTE;
    }
    if !protection.contains(Protection::WRITE) {
        entry &= !WRITABLE;
    }
    if !protection.contains(Protection::EXECUTE) {
        entry |= NO_EXECUTE;
    }
    if !protection.contains(Protection::USER) {
        entry &= !USER;
    }
    entry
}

/// Whether the processor may be using (and caching) this entry.
pub fn is_present(entry: u64) -> bool {
    entry & PRESENT != 0
}

/// Whether a leaf is pinned.
pub fn is_pinned(entry: u64) -> bool {
    entry & PINNED != 0
}

/// The referenced and dirty bits of a leaf, as (referenced, dirty).
pub fn usage(entry: u64) -> (bool, bool) {
    (entry & ACCESSED != 0, entry & DIRTY != 0)
}

/// A leaf with its referenced and dirty bits cleared.
pub fn without_usage(entry: u64) -> u64 {
    entry & !(ACCESSED | DIRTY)
}

/// A leaf with its pin cleared.
pub fn without_pin(entry: u64) -> u64 {
    entry & !PINNED
}

/// Fills a fresh root: the kernel half copied from `boot_root`, the user half
/// empty. `root` must be a zeroed table frame.
pub fn fill_root(root: Pfn, boot_root: Pfn) {
    let (source, destination) = (table(boot_root), table(root));
    for slot in KERNEL_HALF_FIRST_SLOT..ENTRIES {
        destination[slot].store(source[slot].load(Ordering::Relaxed), Ordering::Relaxed);
    }
}

/// Whether `root`'s kernel half still equals the boot root's: it must, since a
/// kernel-half P4 entry added after a root was made would be missing from it.
pub fn kernel_half_matches(root: Pfn, boot_root: Pfn) -> bool {
    let (source, copy) = (table(boot_root), table(root));
    (KERNEL_HALF_FIRST_SLOT..ENTRIES).all(|slot| {
        let wanted = source[slot].load(Ordering::Relaxed) & !(ACCESSED | DIRTY);
        copy[slot].load(Ordering::Relaxed) & !(ACCESSED | DIRTY) == wanted
    })
}

/// Whether the P4 entry covering `address` is present in `root`.
pub fn top_level_present(root: Pfn, address: u64) -> bool {
    is_present(table(root)[index(address, 4)].load(Ordering::Relaxed))
}

/// The leaf as the processor sees it under a P2 entry that is (or is not)
/// writable.
fn effective(leaf: u64, writable_above: bool) -> u64 {
    if writable_above { leaf } else { leaf & !WRITABLE }
}

/// The effective leaf entry for `address` under `root`, or 0.
pub fn lookup(root: Pfn, address: u64) -> u64 {
    let mut frame = root;
    let mut writable = true;
    for level in [4, 3, 2] {
        let entry = table(frame)[index(address, level)].load(Ordering::Acquire);
        if !is_present(entry) {
            return 0;
        }
        writable &= entry & WRITABLE != 0;
        frame = frame_of(entry);
    }
    effective(table(frame)[index(address, 1)].load(Ordering::Acquire), writable)
}

/// Clears the write bit of every leaf of the table below the P2 entry `slot`,
/// then sets the entry's own: the same rights as before, now held by the
/// leaves, so that one of them can be made writable alone.
fn split_write_protection(slot: &AtomicU64) {
    let entry = slot.load(Ordering::Acquire);
    for leaf in table(frame_of(entry)).iter() {
        if leaf.load(Ordering::Acquire) & WRITABLE != 0 {
            leaf.fetch_and(!WRITABLE, Ordering::AcqRel);
        }
    }
    slot.fetch_or(WRITABLE, Ordering::AcqRel);
}

/// Stores `leaf` for user address `address` under `root`, making the missing
/// tables with `allocate` (which returns zeroed frames); a writable leaf under
/// a write-protected P2 entry splits its protection first (only adding rights
/// nothing had). Returns the effective leaf it replaced (0 if none). On error
/// the leaf is unchanged; tables already made stay, empty, and go at the next
/// walk that prunes.
pub fn install(
    root: Pfn,
    address: u64,
    leaf: u64,
    allocate: &mut dyn FnMut() -> Result<Pfn, VmError>,
) -> Result<u64, VmError> {
    debug_assert!(address < USER_END, "install: kernel-half address");
    let mut frame = root;
    let mut writable = true;
    for level in [4, 3, 2] {
        let slot = &table(frame)[index(address, level)];
        let mut entry = slot.load(Ordering::Acquire);
        if level == 2 && is_present(entry) && entry & WRITABLE == 0 && leaf & WRITABLE != 0 {
            split_write_protection(slot);
            entry |= WRITABLE;
        }
        frame = if is_present(entry) {
            writable &= entry & WRITABLE != 0;
            frame_of(entry)
        } else {
            let fresh = allocate()?;
            slot.store(fresh.addr() | TABLE_FLAGS, Ordering::Release);
            fresh
        };
    }
    let previous = table(frame)[index(address, 1)].swap(leaf, Ordering::AcqRel);
    Ok(effective(previous, writable))
}

/// The P2 entry for `address` under `root`, the tables above it made by
/// `allocate` if missing.
fn ensure_directory(
    root: Pfn,
    address: u64,
    allocate: &mut dyn FnMut() -> Result<Pfn, VmError>,
) -> Result<&'static AtomicU64, VmError> {
    let mut frame = root;
    for level in [4, 3] {
        let slot = &table(frame)[index(address, level)];
        let entry = slot.load(Ordering::Acquire);
        frame = if is_present(entry) {
            frame_of(entry)
        } else {
            let fresh = allocate()?;
            slot.store(fresh.addr() | TABLE_FLAGS, Ordering::Release);
            fresh
        };
    }
    Ok(&table(frame)[index(address, 2)])
}

/// What [`copy_leaves`] did beyond the leaves it told `stored_at` of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Copied {
    /// Whole tables copied (their leaves are not listed one by one).
    pub tables: u64,
    /// Leaves stored into tables made for them, not listed one by one.
    pub unlisted: u64,
}

/// Copies the present, unpinned leaves of the user addresses `[start, end)`
/// under `source` to the same addresses under `target`, without write, where
/// `target` has none; the tables `target` lacks are made with `allocate`
/// (asked for a zeroed frame, or for one the caller overwrites whole), and a
/// 2 MiB block it cannot get one for is left out (as are those after it).
/// A block wholly inside the range that `target` has no table for, and whose
/// source table holds no pinned leaf, gets a copy of the source's whole table,
/// write-protected by its P2 entry (one 4 KiB copy instead of 512 leaf
/// stores; its leaves keep their accessed and dirty bits, which only say the
/// pages were used and written, and their write bits, which the P2 entry
/// overrides until a writable map splits it). Leaves stored into a table that
/// existed are told to `stored_at` one by one; those stored into a table made
/// here are only counted. Only unused slots change, so nothing under `target`
/// needs invalidating.
pub fn copy_leaves(
    source: Pfn,
    target: Pfn,
    (start, end): (u64, u64),
    allocate: &mut dyn FnMut(bool) -> Result<Pfn, VmError>,
    stored_at: &mut dyn FnMut(u64),
) -> Copied {
    let end = end.min(USER_END);
    let mut copied = Copied::default();
    let mut block = start & !(span(2) - 1);
    while block < end {
        let next = block + span(2);
        let Some((from, _)) = leaf_table(source, block) else {
            block = next;
            continue;
        };
        let Ok(directory) = ensure_directory(target, block, &mut || allocate(false)) else { break };
        let entry = directory.load(Ordering::Acquire);
        let whole = start <= block && next <= end;
        let pinned = || table(from).iter().any(|leaf| is_pinned(leaf.load(Ordering::Acquire)));
        if !is_present(entry) && whole && !pinned() {
            let Ok(fresh) = allocate(true) else { break };
            crate::arch::x86_64::memory::copy_frame(from, fresh);
            directory.store(fresh.addr() | (TABLE_FLAGS & !WRITABLE), Ordering::Release);
            copied.tables += 1;
            block = next;
            continue;
        }
        let (to, fresh) = if is_present(entry) {
            (frame_of(entry), false)
        } else {
            let Ok(fresh) = allocate(false) else { break };
            directory.store(fresh.addr() | TABLE_FLAGS, Ordering::Release);
            (fresh, true)
        };
        let (from, to) = (table(from), table(to));
        let first = index(block.max(start), 1);
        let last = if next <= end { ENTRIES } else { index(end, 1) };
        for slot in first..last {
            let leaf = from[slot].load(Ordering::Acquire);
            if !is_present(leaf) || is_pinned(leaf) || to[slot].load(Ordering::Acquire) != 0 {
                continue;
            }
            to[slot].store(leaf & !(WRITABLE | ACCESSED | DIRTY), Ordering::Release);
            if fresh {
                copied.unlisted += 1;
            } else {
                stored_at(block + slot as u64 * span(1));
            }
        }
        block = next;
    }
    copied
}

/// The last-level table translating `address` under `root`, if it exists, and
/// the P2 entry pointing at it.
fn leaf_table(root: Pfn, address: u64) -> Option<(Pfn, &'static AtomicU64)> {
    let mut frame = root;
    let mut directory = None;
    for level in [4, 3, 2] {
        let slot = &table(frame)[index(address, level)];
        let entry = slot.load(Ordering::Acquire);
        if !is_present(entry) {
            return None;
        }
        directory = Some(slot);
        frame = frame_of(entry);
    }
    directory.map(|slot| (frame, slot))
}

/// Stores each `(address, leaf)` of user addresses in last-level tables that
/// exist already (none is made), where the slot is unused, or where it holds
/// a present leaf of the same frame that `leaf` only adds rights to (write,
/// execute), which it then gains (its usage bits kept); a writable leaf under
/// a write-protected P2 entry splits its protection first, as [`install`]
/// does. Tells `stored_at` each address stored; returns how many. Only rights
/// are added, and the processor caches no translation of an unused slot, so
/// nothing needs invalidating.
pub fn fill_ahead(
    root: Pfn,
    leaves: impl Iterator<Item = (u64, u64)>,
    stored_at: &mut dyn FnMut(u64),
) -> u64 {
    const RIGHTS: u64 = WRITABLE | NO_EXECUTE;
    let mut stored = 0;
    let mut current: Option<(u64, Option<(Pfn, &'static AtomicU64)>)> = None;
    for (address, leaf) in leaves {
        debug_assert!(address < USER_END, "fill_ahead: kernel-half address");
        let block = address & !(span(2) - 1);
        if current.is_none_or(|(at, _)| at != block) {
            current = Some((block, leaf_table(root, address)));
        }
        let Some((_, Some((frame, directory)))) = current else { continue };
        let cell = &table(frame)[index(address, 1)];
        let protected = directory.load(Ordering::Acquire) & WRITABLE == 0;
        let old = effective(cell.load(Ordering::Acquire), !protected);
        let new = if old == 0 {
            leaf
        } else {
            // The same frame, presence, user bit and pin, with rights added
            // only: write gained, or no-execute lost.
            let same = (old ^ leaf) & (ADDRESS_MASK | PRESENT | USER | PINNED) == 0;
            let adds_only =
                leaf & WRITABLE >= old & WRITABLE && leaf & NO_EXECUTE <= old & NO_EXECUTE;
            if !same || !is_present(old) || !adds_only || (old & RIGHTS) == (leaf & RIGHTS) {
                continue;
            }
            (old & !RIGHTS) | (leaf & RIGHTS)
        };
        if new & WRITABLE != 0 && protected {
            split_write_protection(directory);
        }
        if old == 0 {
            // An unused slot: no processor writes it (they set usage bits
            // in present leaves only).
            cell.store(new, Ordering::Release);
        } else {
            // Rights added to a leaf in use, keeping whatever usage bits a
            // processor sets meanwhile.
            let _ = cell.try_update(Ordering::AcqRel, Ordering::Acquire, |leaf| {
                Some((leaf & !RIGHTS) | (new & RIGHTS))
            });
        }
        stored_at(address);
        stored += 1;
    }
    stored
}

/// Clears the leaf for `address` under `root` unless `keep` says to keep it:
/// `Some` of the effective leaf it held (0 if none), `None` if kept. No table
/// is freed, even if it empties.
pub fn take_leaf(root: Pfn, address: u64, keep: &mut dyn FnMut(u64) -> bool) -> Option<u64> {
    let Some((frame, directory)) = leaf_table(root, address) else { return Some(0) };
    let writable = directory.load(Ordering::Acquire) & WRITABLE != 0;
    let cell = &table(frame)[index(address, 1)];
    let leaf = cell.load(Ordering::Acquire);
    if leaf == 0 {
        return Some(0);
    }
    if keep(leaf) {
        return None;
    }
    // Swapped, not stored: the usage bits a processor set since the load
    // come back too (`keep` looks at the pin, which only this layer sets).
    let leaf = cell.swap(0, Ordering::AcqRel);
    Some(effective(leaf, writable))
}

/// Removes write from every leaf of the user addresses `[start, end)` under
/// `root`: each 2 MiB the range covers whole is protected by its P2 entry
/// alone; the leaves of a partly covered one are changed one by one, and
/// `note` is told of each (address, old effective leaf) changed. Returns
/// whether a P2 entry changed (then every cached translation below it may be
/// stale).
pub fn write_protect(root: Pfn, start: u64, end: u64, note: &mut dyn FnMut(u64, u64)) -> bool {
    let end = end.min(USER_END);
    start < end && write_protect_table(root, 4, 0, (start, end), true, note)
}

/// One level of [`write_protect`].
fn write_protect_table(
    frame: Pfn,
    level: u32,
    base: u64,
    range: (u64, u64),
    writable_above: bool,
    note: &mut dyn FnMut(u64, u64),
) -> bool {
    let span = span(level);
    let first = (range.0.saturating_sub(base) / span) as usize;
    let last = (((range.1 - 1 - base) / span) as usize).min(ENTRIES - 1);
    let mut directory_changed = false;
    for (slot, cell) in table(frame).iter().enumerate().take(last + 1).skip(first) {
        let entry = cell.load(Ordering::Acquire);
        let address = base + slot as u64 * span;
        if level == 1 {
            if entry & WRITABLE != 0 && is_present(entry) {
                let old = cell.fetch_and(!WRITABLE, Ordering::AcqRel);
                if writable_above {
                    note(address, old);
                }
            }
            continue;
        }
        if !is_present(entry) {
            continue;
        }
        let whole = range.0 <= address && address + span <= range.1;
        if level == 2 && whole {
            if entry & WRITABLE != 0 {
                cell.fetch_and(!WRITABLE, Ordering::AcqRel);
                directory_changed = true;
            }
            continue;
        }
        let writable = writable_above && entry & WRITABLE != 0;
        directory_changed |=
            write_protect_table(frame_of(entry), level - 1, address, range, writable, note);
    }
    directory_changed
}

/// What a [`walk`] does at every used leaf, and with emptied tables.
pub struct Walker<'a> {
    /// Called with (address, entry) for every used leaf in the range; returns the
    /// entry to store (0 forgets the translation).
    pub visit: &'a mut dyn FnMut(u64, u64) -> u64,
    /// When set, lower tables left empty are unlinked and pushed here, as
    /// many as its capacity allows (the rest stay linked, empty, for a later
    /// walk: the caller may not be able to grow the list); the caller frees
    /// them once no TLB can still reach them.
    pub emptied: Option<&'a mut Vec<Pfn>>,
}

/// Visits every used leaf of the user addresses `[start, end)` under `root`.
pub fn walk(root: Pfn, start: u64, end: u64, walker: &mut Walker<'_>) {
    let end = end.min(USER_END);
    if start < end {
        walk_table(root, 4, 0, (start, end), true, walker);
    }
}

/// One level of [`walk`]: `frame` translates from `base`, `range` is clipped to
/// it; the visitor sees effective leaves. When the walker collects emptied
/// tables, returns whether `frame` (below the root) is left with no used entry:
/// counted during the scan when `range` covers the whole table (a walk of a
/// whole user half scans each table once), else by a second scan. Otherwise it
/// returns false.
fn walk_table(
    frame: Pfn,
    level: u32,
    base: u64,
    range: (u64, u64),
    writable_above: bool,
    walker: &mut Walker<'_>,
) -> bool {
    let span = span(level);
    let first = (range.0.saturating_sub(base) / span) as usize;
    let last = (((range.1 - 1 - base) / span) as usize).min(ENTRIES - 1);
    let whole = range.0 <= base && range.1 >= base + span * ENTRIES as u64;
    let entries = table(frame);
    let mut used = 0;
    for (slot, entry_cell) in entries.iter().enumerate().take(last + 1).skip(first) {
        let entry = entry_cell.load(Ordering::Acquire);
        let address = base + slot as u64 * span;
        if entry == 0 {
            continue;
        }
        if level > 1 && !is_present(entry) {
            used += 1;
            continue;
        }
        if level == 1 {
            if visit_leaf(entry_cell, entry, address, writable_above, walker) != 0 {
                used += 1;
            }
            continue;
        }
        let child = frame_of(entry);
        let writable = writable_above && entry & WRITABLE != 0;
        let child_empty = walk_table(child, level - 1, address, range, writable, walker);
        match walker.emptied.as_deref_mut() {
            Some(emptied) if child_empty && emptied.len() < emptied.capacity() => {
                entry_cell.store(0, Ordering::Release);
                emptied.push(child);
            }
            _ => used += 1,
        }
    }
    match walker.emptied {
        // The root itself is never emptied away.
        None => false,
        Some(_) if level == 4 => false,
        Some(_) if whole => used == 0,
        Some(_) => is_empty(frame),
    }
}

/// Has `walker` visit the leaf in `cell` (which held `entry`) and stores
/// what it returns, if that differs; returns the leaf left.
///
/// The store is a compare-exchange: a processor with the translation in use
/// sets its accessed and dirty bits in the leaf at any moment, and one set
/// between the load and a plain store would be lost. A lost dirty bit loses
/// data: reclaim would take the page for clean and keep an older copy. When
/// the leaf changed, the walker visits it again, bits and all (what visitors
/// do with a leaf, folding its bits and noting it for invalidation, may be
/// done twice).
fn visit_leaf(
    cell: &AtomicU64,
    mut entry: u64,
    address: u64,
    writable_above: bool,
    walker: &mut Walker<'_>,
) -> u64 {
    loop {
        let seen = effective(entry, writable_above);
        let replacement = (walker.visit)(address, seen);
        if replacement == seen {
            return entry;
        }
        match cell.compare_exchange(entry, replacement, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return replacement,
            Err(now) => entry = now,
        }
    }
}

/// Whether every entry of a table is zero.
fn is_empty(frame: Pfn) -> bool {
    table(frame).iter().all(|entry| entry.load(Ordering::Relaxed) == 0)
}
