//! The MMU contract: what the machine layer promises the portable VM.
//!
//! The VM decides *what* each address space may see; an implementation of [`Mmu`]
//! decides *how* the machine translates addresses. The VM never looks at a page
//! table: it asks for translations to be made, changed or forgotten through this
//! trait, and it reaches physical memory only through [`Mmu::zero_page`] and
//! [`Mmu::copy_page`]. This mirrors NetBSD's pmap(9), and the same rules hold:
//!
//! 1. **Translations hold only redundant information.** Everything needed to
//!    rebuild a translation lives in the VM (regions, memory objects, page
//!    records). An implementation may forget any translation at any moment — to
//!    reclaim page-table frames under pressure, to evict an idle address space
//!    from a page-table cache, or because it keeps only one set of page tables —
//!    **except pinned ones**, which it keeps until the VM unmaps or unpins them or
//!    destroys the space: whenever the space is active, its pinned translations
//!    work without a fault (an implementation that shares one page table between
//!    spaces sets them aside on a switch and puts them back in `activate`). A
//!    forgotten translation shows up as a fault, which the VM resolves by asking
//!    for it again (a "rebuild" fault).
//! 2. **Changes may be deferred until [`Mmu::flush`].** After `map`, `unmap`,
//!    `protect` or `unpin` the machine (its TLBs in particular) may keep using
//!    the old translation until the VM calls `flush` for that space. The VM calls
//!    `flush` before it lets anybody observe the change, and always before it
//!    frees or reuses a frame whose translation it removed. [`Mmu::discard`] and
//!    [`Mmu::destroy`] are complete when they return.
//! 3. **Referenced and modified bits belong to pages, not to translations.**
//!    Before an implementation forgets a translation (for whatever reason) it
//!    folds that translation's referenced/dirty bits into the page's record
//!    ([`REFERENCED`], [`DIRTY`]); [`Mmu::harvest`] does the
//!    same for every live translation of a space.
//! 4. **Never more than asked.** A translation never grants a right that the VM
//!    did not pass to `map` for that page, or offer for it (`map_ahead`, or
//!    `copy_translations`, which offers the source's rights less write) since
//!    (the VM relies on this for copy-on-write: a page shared by several
//!    sharers is never offered write). A translation may grant less, or be
//!    missing; both only cost a fault.
//! 5. **A change is complete on every processor.** Each processor translates
//!    with the space it last activated and caches translations in a TLB of its
//!    own; a space may be loaded on several processors at once (its threads),
//!    and stays loaded on one that has moved on to kernel work or idles. When
//!    `flush(space)` returns, no processor may still use a translation of
//!    `space` that the changes before it removed or restricted, whichever
//!    processor made them and whichever have `space` loaded, or had it loaded:
//!    the implementation shoots the stale copies down everywhere (on x86, an
//!    interrupt to the other processors). The same holds for every call said to
//!    be complete on return (`discard`, `destroy`, `reclaim_tables`), and for
//!    translations the implementation forgets on its own (rule 1). Added rights
//!    may reach another processor late: a stale copy with fewer rights only
//!    costs a fault there, whose resolution flushes again.
//!
//! The VM runs on one processor at a time (behind its lock), but not always
//! the same one: [`Mmu::this_cpu`] names the processor running the call.
//! `activate` concerns that processor alone; `flush`, and every change, concern
//! all of them.
//!
//! Page-table pages are frames like any other: operations that may need one take
//! the [`FrameAllocator`] explicitly (the whole VM sits behind one lock, so the
//! allocator cannot be reached any other way without re-entrancy), and may fail
//! with [`VmError::OutOfMemory`] — after changing nothing. Operations that free
//! page-table pages take it too. An implementation may reclaim page-table pages of
//! other, idle spaces and retry before it gives up: by rule 1 that is always
//! allowed, as long as pinned translations stay.
//!
//! The trait is an `unsafe trait` because the VM's memory safety rests on it: a
//! translation that outlives the `unmap` + `flush` that removed it, or that grants
//! write to a copy-on-write page, lets a process read or corrupt frames it does not
//! own.
//!
//! [`REFERENCED`]: super::page::PageFlags::REFERENCED
//! [`DIRTY`]: super::page::PageFlags::DIRTY
#![deny(unsafe_code)]

use core::fmt;

use bitflags::bitflags;

use super::error::VmError;
use super::frame::FrameAllocator;
use super::page::{PAGE_SIZE, Pfn};

/// First user virtual address: page zero is never mapped, so null pointers fault.
pub const USER_START: u64 = 0x1000;

/// One past the last user virtual address: the bottom half of a 48-bit space
/// less its top page, as in Linux. A `syscall` in the last bytes of that page
/// would leave the first non-canonical address in RCX, and `sysret` to it takes
/// a general-protection fault in ring 0 on the user's stack on Intel processors
/// (CVE-2012-0217); with the page never mappable, every `syscall` returns to a
/// canonical address. (The return path checks it anyway.)
pub const USER_END: u64 = 0x0000_7fff_ffff_f000;
const _: () = assert!(USER_END == abi::USER_END, "the ABI's USER_END must match the VM's");

/// A virtual address in some address space.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VirtAddr(pub u64);

impl VirtAddr {
    /// The address as a number.
    pub const fn value(self) -> u64 {
        self.0
    }

    /// Whether the address is the first byte of a page.
    pub const fn is_page_aligned(self) -> bool {
        self.0.is_multiple_of(PAGE_SIZE)
    }

    /// The first byte of the page holding this address.
    pub const fn page_down(self) -> VirtAddr {
        VirtAddr(self.0 - self.0 % PAGE_SIZE)
    }

    /// The address `bytes` further on, or `None` on overflow.
    pub const fn checked_add(self, bytes: u64) -> Option<VirtAddr> {
        match self.0.checked_add(bytes) {
            Some(value) => Some(VirtAddr(value)),
            None => None,
        }
    }

    /// The address `bytes` further on; panics on overflow (a kernel bug).
    pub const fn add(self, bytes: u64) -> VirtAddr {
        match self.0.checked_add(bytes) {
            Some(value) => VirtAddr(value),
            None => panic!("VirtAddr::add: overflow"),
        }
    }
}

impl fmt::Debug for VirtAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VirtAddr({:#x})", self.0)
    }
}

bitflags! {
    /// What a region, or a translation, allows.
    ///
    /// Every accessible user protection includes `READ`: the machine cannot express
    /// write-only or execute-only pages, so the VM refuses them.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub struct Protection: u8 {
        /// Loads are allowed.
        const READ = 1 << 0;
        /// Stores are allowed.
        const WRITE = 1 << 1;
        /// Instruction fetches are allowed.
        const EXECUTE = 1 << 2;
        /// The page is reachable from user mode (set on every user translation).
        const USER = 1 << 3;
    }
}

impl Protection {
    /// Whether this protection allows `access`.
    pub fn allows(self, access: Access) -> bool {
        self.contains(access.required())
    }
}

/// The kind of a memory access, as a fault reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// A load.
    Read,
    /// A store.
    Write,
    /// An instruction fetch.
    Execute,
}

impl Access {
    /// The protection bit this access needs.
    pub fn required(self) -> Protection {
        match self {
            Access::Read => Protection::READ,
            Access::Write => Protection::WRITE,
            Access::Execute => Protection::EXECUTE,
        }
    }
}

/// A small handle naming an address space, to the VM and to the MMU alike.
///
/// Identifiers are never reused while the VM lives, so an implementation may key
/// its caches by them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpaceId(pub u32);

/// The machine-dependent half of the VM (see the module documentation).
///
/// Ranges are half open, `[start, end)`, page aligned, and inside
/// `[USER_START, USER_END)`. A space the implementation has never seen is a space
/// with no translations; the VM introduces a space only by using it.
///
/// # Safety
///
/// Implementations must keep the five rules of the module documentation: never a
/// translation with more rights than the last `map` or offer (`map_ahead`,
/// `copy_translations`) for that page gave; no
/// translation (nor cached copy of one, on any processor) left after `unmap` +
/// `flush`, `discard`, or `destroy` that the call was meant to remove; pinned
/// translations kept until unmapped, unpinned or destroyed; and
/// `zero_page`/`copy_page` touching exactly the frames named.
#[allow(unsafe_code)] // Declaring the contract; the VM itself implements no unsafe trait.
pub unsafe trait Mmu {
    /// Translates the page at `address` in `space` to `pfn` with `protection`,
    /// replacing any translation already there (pmap_enter). A pinned translation
    /// survives [`Mmu::discard`]. A protection without `READ` is legal: it grants
    /// nothing, but a pinned one still holds its place. May need page-table frames;
    /// on failure nothing changed.
    fn map(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        space: SpaceId,
        address: VirtAddr,
        pfn: Pfn,
        protection: Protection,
        pinned: bool,
    ) -> Result<(), VmError>;

    /// Offers translations ahead of need (fault-around): each `(address,
    /// frame, protection)` may be made, unpinned, where the page has no
    /// translation yet, or where it has one to the same frame with fewer
    /// rights (which then gains the ones offered); any other translation
    /// stays as it is. Purely an optimisation:
    /// an implementation may make any subset, and the default makes none
    /// (rule 1: a translation not made is a fault later). Never fails; it
    /// need not allocate page-table pages for it. The VM calls `flush` after.
    fn map_ahead(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        space: SpaceId,
        leaves: &[(VirtAddr, Pfn, Protection)],
    ) {
        let _ = (frames, space, leaves);
    }

    /// Offers `to` copies of `from`'s unpinned translations in `[start, end)`,
    /// without write, where `to` has none (pmap_copy: fork gives the child the
    /// parent's view of the memory they now share, so that the child's first
    /// touches need no fault). The VM asks only where `from` has no pinned
    /// translation and every translation `from` may have is one `to` may have
    /// without write.
    /// Like [`Mmu::map_ahead`], purely an optimisation: an implementation may
    /// copy any subset, or nothing (the default), and need not allocate.
    fn copy_translations(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        from: SpaceId,
        to: SpaceId,
        start: VirtAddr,
        end: VirtAddr,
    ) {
        let _ = (frames, from, to, start, end);
    }

    /// Removes every translation, pinned or not, in `[start, end)` (pmap_remove).
    fn unmap(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        space: SpaceId,
        start: VirtAddr,
        end: VirtAddr,
    );

    /// Forgets the unpinned translations in `[start, end)`, a range that stays
    /// mapped (a zap): their next accesses fault and rebuild them, so an
    /// implementation may keep whatever held them (page-table pages) for that.
    /// Pinned translations stay. The default is [`Mmu::unmap`] of the range,
    /// which the VM only asks for ranges without pinned pages.
    fn zap(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        space: SpaceId,
        start: VirtAddr,
        end: VirtAddr,
    ) {
        self.unmap(frames, space, start, end);
    }

    /// Restricts every translation in `[start, end)` to at most `protection`
    /// (pmap_protect): rights are only ever removed here, never added.
    fn protect(&mut self, space: SpaceId, start: VirtAddr, end: VirtAddr, protection: Protection);

    /// Removes write from every translation in `[start, end)`, leaving the
    /// other rights as they are: `protect` with everything but write, which
    /// is the default. An implementation may do it lazily, per page-table page
    /// rather than per translation (how fork protects a parent's memory), as
    /// long as no write goes through once `flush` returns.
    fn write_protect(&mut self, space: SpaceId, start: VirtAddr, end: VirtAddr) {
        let others = Protection::READ | Protection::EXECUTE | Protection::USER;
        self.protect(space, start, end, others);
    }

    /// Turns the pinned translations in `[start, end)` into ordinary ones
    /// (pmap_unwire).
    fn unpin(&mut self, space: SpaceId, start: VirtAddr, end: VirtAddr);

    /// Makes every deferred change to `space` visible to the machine
    /// (pmap_update): on return no processor, this one or another, uses a
    /// translation of `space` that was removed or restricted (rule 5).
    fn flush(&mut self, space: SpaceId);

    /// Folds the referenced/dirty bits of every translation of `space` into the
    /// page records and clears them in the translations.
    fn harvest(&mut self, frames: &mut FrameAllocator<'_>, space: SpaceId);

    /// Frees page-table pages of spaces that are not active on any processor
    /// (their unpinned translations are forgotten, rule 1), for reclaim under
    /// memory pressure; returns how many it freed. The default frees none.
    fn reclaim_tables(&mut self, frames: &mut FrameAllocator<'_>) -> usize {
        let _ = frames;
        0
    }

    /// [`Mmu::harvest`] for the translations in `[start, end)` only (the page
    /// daemon harvests what it is about to look at). The default harvests
    /// the whole space.
    fn harvest_range(
        &mut self,
        frames: &mut FrameAllocator<'_>,
        space: SpaceId,
        start: VirtAddr,
        end: VirtAddr,
    ) {
        let _ = (start, end);
        self.harvest(frames, space);
    }

    /// Forgets every unpinned translation of `space` (and may free the page-table
    /// pages that held them). Complete on return.
    fn discard(&mut self, frames: &mut FrameAllocator<'_>, space: SpaceId);

    /// Forgets everything about `space`, pinned translations included, and frees
    /// its page-table pages. Complete on return; the VM never uses `space` again.
    fn destroy(&mut self, frames: &mut FrameAllocator<'_>, space: SpaceId);

    /// Makes `space` the one the running processor ([`Mmu::this_cpu`])
    /// translates user addresses with (pmap_activate); the others keep theirs,
    /// which may be `space` too. May discard other spaces' unpinned
    /// translations, and may need page-table frames (for example to put back
    /// pinned translations); on failure the running processor's previous space
    /// stays active.
    fn activate(&mut self, frames: &mut FrameAllocator<'_>, space: SpaceId) -> Result<(), VmError>;

    /// The running processor stops translating user addresses with any
    /// space (an idle processor lets go of the last one it ran, so that no
    /// change to it needs to reach this processor any more). The default
    /// does nothing: a machine layer that never takes a space loaded on
    /// another processor need not know.
    fn deactivate(&mut self, frames: &mut FrameAllocator<'_>) {
        let _ = frames;
    }

    /// The index of the processor running this call, from 0 (the boot
    /// processor): whose space `activate` sets, so that the VM can remember
    /// which space each processor translates with. The default, 0, suits a
    /// machine layer that runs the VM on one processor only.
    fn this_cpu(&self) -> usize {
        0
    }

    /// Whether the last [`Mmu::activate`] of `space` kept its unpinned
    /// translations (so that the VM need not restore its working set). Any
    /// answer is safe; `false`, the default, only costs a restore.
    fn kept_translations(&self, space: SpaceId) -> bool {
        let _ = space;
        false
    }

    /// The current translation of the page at `address`, if any (pmap_extract).
    fn query(&self, space: SpaceId, address: VirtAddr) -> Option<(Pfn, Protection)>;

    /// Fills the frame with zeros (pmap_zero_page).
    fn zero_page(&mut self, pfn: Pfn);

    /// Copies the whole frame `source` into `destination` (pmap_copy_page).
    fn copy_page(&mut self, source: Pfn, destination: Pfn);
}
