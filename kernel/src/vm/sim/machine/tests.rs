//! Tests of the simulated MMU itself: it must misbehave exactly as far as the
//! contract allows, or the simulation proves nothing.

use super::*;
use crate::vm::frame::PhysRange;
use crate::vm::page::VmPage;

const READ: Protection = Protection::READ.union(Protection::USER);
const PAGE: VirtAddr = VirtAddr(0x40_0000);
const SPACE: SpaceId = SpaceId(1);

/// A frame allocator over `frames` frames.
fn frames(frames: u64) -> FrameAllocator<'static> {
    let usable = [PhysRange { start: 0x10_0000, end: 0x10_0000 + frames * PAGE_SIZE }];
    let pages = Vec::leak(vec![VmPage::EMPTY; FrameAllocator::pages_needed(&usable)]);
    FrameAllocator::new(pages, &usable)
}

/// A machine with `SPACE` active.
fn machine(frames: &mut FrameAllocator<'_>) -> SimMmu {
    let mut mmu = SimMmu::new(7, 0);
    mmu.activate(frames, SPACE).unwrap();
    mmu
}

#[test]
fn the_tlb_serves_a_removed_translation_until_flush() {
    let mut frames = frames(8);
    let mut mmu = machine(&mut frames);
    let pfn = frames.alloc().unwrap();
    mmu.zero_page(pfn);
    mmu.map(&mut frames, SPACE, PAGE, pfn, READ, false).unwrap();
    assert_eq!(mmu.translate(PAGE, Access::Read), Some(pfn));
    mmu.unmap(&mut frames, SPACE, PAGE, PAGE.add(PAGE_SIZE));
    assert_eq!(mmu.translate(PAGE, Access::Read), Some(pfn));
    mmu.flush(SPACE);
    assert_eq!(mmu.translate(PAGE, Access::Read), None);
    assert_eq!(mmu.table_frames().count(), 0);
}

#[test]
fn a_stale_entry_without_the_right_keeps_faulting_until_flush() {
    let mut frames = frames(8);
    let mut mmu = machine(&mut frames);
    let pfn = frames.alloc().unwrap();
    mmu.map(&mut frames, SPACE, PAGE, pfn, READ, false).unwrap();
    assert_eq!(mmu.translate(PAGE, Access::Read), Some(pfn));
    mmu.map(&mut frames, SPACE, PAGE, pfn, READ | Protection::WRITE, false).unwrap();
    assert_eq!(mmu.translate(PAGE, Access::Write), None);
    mmu.flush(SPACE);
    assert_eq!(mmu.translate(PAGE, Access::Write), Some(pfn));
}

#[test]
fn discard_keeps_pinned_translations_and_folds_bits() {
    let mut frames = frames(8);
    let mut mmu = machine(&mut frames);
    let (pinned, plain) = (frames.alloc().unwrap(), frames.alloc().unwrap());
    let writable = READ | Protection::WRITE;
    mmu.map(&mut frames, SPACE, PAGE, pinned, READ, true).unwrap();
    mmu.map(&mut frames, SPACE, PAGE.add(PAGE_SIZE), plain, writable, false).unwrap();
    assert_eq!(mmu.translate(PAGE.add(PAGE_SIZE), Access::Write), Some(plain));
    mmu.discard(&mut frames, SPACE);
    assert_eq!(mmu.query(SPACE, PAGE), Some((pinned, READ)));
    assert_eq!(mmu.query(SPACE, PAGE.add(PAGE_SIZE)), None);
    assert!(frames.flags(plain).contains(PageFlags::DIRTY | PageFlags::REFERENCED));
    mmu.destroy(&mut frames, SPACE);
    assert_eq!(mmu.entries().count(), 0);
    assert_eq!(frames.counters().allocated, 2);
}

#[test]
fn pressure_reclaims_other_spaces_tables() {
    let mut frames = frames(3);
    let mut mmu = machine(&mut frames);
    let pfn = frames.alloc().unwrap();
    mmu.map(&mut frames, SpaceId(2), PAGE, pfn, READ, false).unwrap();
    mmu.map(&mut frames, SpaceId(3), PAGE, pfn, READ, true).unwrap();
    assert_eq!(frames.counters().free, 0);
    mmu.map(&mut frames, SPACE, PAGE, pfn, READ, false).unwrap();
    assert_eq!(mmu.query(SpaceId(2), PAGE), None);
    assert_eq!(mmu.query(SpaceId(3), PAGE), Some((pfn, READ)));
    let far = VirtAddr(PAGE.0 + TABLE_PAGES * PAGE_SIZE);
    assert_eq!(mmu.map(&mut frames, SPACE, far, pfn, READ, false), Err(VmError::OutOfMemory));
}

#[test]
fn a_refused_activation_leaves_the_previous_space_active() {
    let mut frames = frames(8);
    let mut mmu = machine(&mut frames);
    let pfn = frames.alloc().unwrap();
    mmu.map(&mut frames, SPACE, PAGE, pfn, READ, false).unwrap();
    mmu.activation_refusals = 1000;
    assert_eq!(mmu.activate(&mut frames, SpaceId(2)), Err(VmError::OutOfMemory));
    assert_eq!((mmu.active(), mmu.refused_activations), (Some(SPACE), 1));
    assert_eq!(mmu.translate(PAGE, Access::Read), Some(pfn));
    mmu.activation_refusals = 0;
    mmu.activate(&mut frames, SpaceId(2)).unwrap();
    assert_eq!(mmu.translate(PAGE, Access::Read), None);
}

/// A machine of two processors with `SPACE` loaded on both, each having read
/// `PAGE` (so that both TLBs cache it); processor 0 runs next.
fn two_processors_reading(frames: &mut FrameAllocator<'_>) -> (SimMmu, Pfn) {
    let mut mmu = machine(frames);
    mmu.set_processors(2);
    let pfn = frames.alloc().unwrap();
    mmu.map(frames, SPACE, PAGE, pfn, READ, false).unwrap();
    assert_eq!(mmu.translate(PAGE, Access::Read), Some(pfn));
    mmu.run_on(1);
    assert_eq!(mmu.active(), None);
    mmu.activate(frames, SPACE).unwrap();
    assert_eq!(mmu.translate(PAGE, Access::Read), Some(pfn));
    mmu.run_on(0);
    (mmu, pfn)
}

#[test]
fn a_flush_on_one_processor_drops_the_entries_of_every_processor() {
    let mut frames = frames(8);
    let (mut mmu, pfn) = two_processors_reading(&mut frames);
    mmu.unmap(&mut frames, SPACE, PAGE, PAGE.add(PAGE_SIZE));
    mmu.run_on(1);
    assert_eq!(mmu.translate(PAGE, Access::Read), Some(pfn));
    mmu.run_on(0);
    mmu.flush(SPACE);
    assert!(mmu.tlb(0).is_empty() && mmu.tlb(1).is_empty());
    mmu.run_on(1);
    assert_eq!(mmu.translate(PAGE, Access::Read), None);
}

#[test]
fn the_injected_fault_leaves_other_processors_stale() {
    let mut frames = frames(8);
    let (mut mmu, pfn) = two_processors_reading(&mut frames);
    mmu.local_shootdown_only = true;
    mmu.discard(&mut frames, SPACE);
    assert!(mmu.tlb(0).is_empty());
    mmu.run_on(1);
    assert_eq!(mmu.translate(PAGE, Access::Read), Some(pfn));
}

#[test]
fn reclaim_spares_the_tables_of_a_space_loaded_on_any_processor() {
    let mut frames = frames(8);
    let (mut mmu, pfn) = two_processors_reading(&mut frames);
    mmu.activate(&mut frames, SpaceId(2)).unwrap();
    assert_eq!(mmu.reclaim_tables(&mut frames), 0);
    assert_eq!(mmu.query(SPACE, PAGE), Some((pfn, READ)));
    mmu.run_on(1);
    mmu.activate(&mut frames, SpaceId(3)).unwrap();
    assert_eq!(mmu.reclaim_tables(&mut frames), 1);
    assert_eq!(mmu.tlb(1).len(), 0);
}
