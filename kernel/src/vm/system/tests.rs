//! Directed tests of the VM over the simulated MMU: one behaviour each, with the
//! statistics and frame counts it must leave behind.

use super::*;
use crate::vm::mmu::{Access, Protection, USER_END, USER_START, VirtAddr};
use crate::vm::page::PageFlags;
use crate::vm::sim::driver::{simulated_vm, touch};
use crate::vm::sim::machine::SimMmu;

const READ_WRITE: Protection = Protection::READ.union(Protection::WRITE);
const BASE: u64 = 0x10_0000;

/// A VM over `frames` frames, without chaos.
fn vm(frames: u64) -> Vm<'static, SimMmu> {
    simulated_vm(frames, 1, 0)
}

/// A new, active space.
fn active_space(vm: &mut Vm<'static, SimMmu>) -> SpaceId {
    let space = vm.create_space();
    vm.activate(space).unwrap();
    space
}

/// Stores one byte at `address` in the active space, faulting as needed.
fn store(vm: &mut Vm<'static, SimMmu>, address: u64, byte: u8) -> Result<(), VmError> {
    let pfn = touch(vm, VirtAddr(address), Access::Write)?;
    vm.mmu_mut().write(pfn, (address % PAGE_SIZE) as usize, &[byte]);
    Ok(())
}

/// Loads one byte at `address` in the active space, faulting as needed.
fn load(vm: &mut Vm<'static, SimMmu>, address: u64) -> Result<u8, VmError> {
    let pfn = touch(vm, VirtAddr(address), Access::Read)?;
    let mut byte = [0];
    vm.mmu().read(pfn, (address % PAGE_SIZE) as usize, &mut byte);
    Ok(byte[0])
}

/// Frames allocated that are not page-table pages.
fn private_object<'v>(
    vm: &'v Vm<'static, SimMmu>,
    space: SpaceId,
    address: u64,
) -> &'v crate::vm::object::AnonymousObject {
    let region = vm.space(space).unwrap().region(VirtAddr(address)).unwrap();
    match region.backing() {
        crate::vm::space::Backing::Anonymous(object) => object,
        crate::vm::space::Backing::Shared { .. } => panic!("not a private region"),
    }
}

/// Frames held for data: all allocated but page tables and the zero page.
fn data_frames(vm: &Vm<'static, SimMmu>) -> usize {
    let zero = usize::from(vm.zero_page().is_some());
    vm.frames().counters().allocated - vm.mmu().table_frames().count() - zero
}

/// The page of `address` in `space`, as the MMU translates it now.
fn translation(
    vm: &Vm<'static, SimMmu>,
    space: SpaceId,
    address: u64,
) -> Option<(Pfn, Protection)> {
    vm.mmu().query(space, VirtAddr(address))
}

#[test]
fn first_touch_zero_fills_and_bad_accesses_fail() {
    let mut vm = vm(32);
    let space = active_space(&mut vm);
    vm.map_anonymous(space, Placement::Exact(VirtAddr(BASE)), 2 * PAGE_SIZE, READ_WRITE).unwrap();
    let read_only =
        vm.map_anonymous(space, Placement::Anywhere, PAGE_SIZE, Protection::READ).unwrap();
    assert_eq!(load(&mut vm, BASE + 5), Ok(0));
    store(&mut vm, BASE + 5, 7).unwrap();
    assert_eq!(load(&mut vm, BASE + 5), Ok(7));
    assert_eq!(store(&mut vm, read_only.0, 1), Err(VmError::Protection));
    assert_eq!(load(&mut vm, BASE + 2 * PAGE_SIZE), Err(VmError::BadAddress));
    assert_eq!(touch(&mut vm, VirtAddr(BASE), Access::Execute), Err(VmError::Protection));
    let statistics = vm.statistics();
    assert_eq!(statistics.zero_fills, 1);
    assert_eq!((statistics.protection_faults, statistics.bad_address_faults), (2, 1));
    assert_eq!(data_frames(&vm), 1);
}

#[test]
fn fork_shares_pages_until_written() {
    let mut vm = vm(32);
    let parent = active_space(&mut vm);
    vm.map_anonymous(parent, Placement::Exact(VirtAddr(BASE)), PAGE_SIZE, READ_WRITE).unwrap();
    store(&mut vm, BASE, 1).unwrap();
    let child = vm.fork(parent).unwrap();
    // Fork shares the chunk, not the frame: its count is untouched.
    let (pfn, rights) = translation(&vm, parent, BASE).unwrap();
    assert_eq!((vm.frames().ref_count(pfn), rights.contains(Protection::WRITE)), (1, false));
    assert!(private_object(&vm, child, BASE).chunk_shared(VirtAddr(BASE)));
    vm.activate(child).unwrap();
    assert_eq!(load(&mut vm, BASE), Ok(1));
    store(&mut vm, BASE, 2).unwrap();
    assert_eq!(vm.statistics().cow_copies, 1);
    assert_eq!(vm.frames().ref_count(pfn), 1);
    assert!(!private_object(&vm, child, BASE).chunk_shared(VirtAddr(BASE)));
    assert!(!private_object(&vm, parent, BASE).chunk_shared(VirtAddr(BASE)));
    vm.activate(parent).unwrap();
    assert_eq!(load(&mut vm, BASE), Ok(1));
    store(&mut vm, BASE, 3).unwrap();
    // The page is the parent's alone now: written in place, by a reuse fault
    // or through the writable translation its working set's restore made.
    let statistics = vm.statistics();
    assert_eq!(
        (statistics.cow_copies, statistics.cow_reuses + statistics.pages_restored > 0),
        (1, true)
    );
    assert_eq!(translation(&vm, parent, BASE).map(|(frame, _)| frame), Some(pfn));
    assert_eq!(data_frames(&vm), 2);
}

#[test]
fn discarded_translations_come_back_by_rebuild_faults() {
    let mut vm = vm(32);
    let space = active_space(&mut vm);
    vm.map_anonymous(space, Placement::Exact(VirtAddr(BASE)), PAGE_SIZE, READ_WRITE).unwrap();
    store(&mut vm, BASE, 9).unwrap();
    vm.discard(space).unwrap();
    assert_eq!(translation(&vm, space, BASE), None);
    assert_eq!(vm.mmu().table_frames().count(), 0);
    assert_eq!(load(&mut vm, BASE), Ok(9));
    let statistics = vm.statistics();
    assert_eq!((statistics.zero_fills, statistics.rebuild_faults), (1, 1));
}

#[test]
fn shared_objects_are_seen_by_every_mapper_and_freed_by_the_last() {
    let mut vm = vm(32);
    let first = active_space(&mut vm);
    let second = vm.create_space();
    let object = vm.create_shared(2 * PAGE_SIZE).unwrap();
    vm.map_shared(first, Placement::Exact(VirtAddr(BASE)), object, 0, 2 * PAGE_SIZE, READ_WRITE)
        .unwrap();
    let there = vm
        .map_shared(second, Placement::Anywhere, object, PAGE_SIZE, PAGE_SIZE, READ_WRITE)
        .unwrap();
    store(&mut vm, BASE + PAGE_SIZE + 3, 42).unwrap();
    vm.activate(second).unwrap();
    assert_eq!(load(&mut vm, there.0 + 3), Ok(42));
    vm.close_shared(object).unwrap();
    assert_eq!(
        vm.map_shared(second, Placement::Anywhere, object, 0, PAGE_SIZE, READ_WRITE),
        Err(VmError::InvalidArgument)
    );
    vm.unmap(first, VirtAddr(BASE), 2 * PAGE_SIZE).unwrap();
    assert!(vm.objects().get(object).is_some());
    vm.destroy(second).unwrap();
    assert!(vm.objects().get(object).is_none());
    assert_eq!(data_frames(&vm), 0);
}

#[test]
fn destroy_returns_every_frame() {
    let mut vm = vm(64);
    let parent = active_space(&mut vm);
    vm.map_anonymous(parent, Placement::Exact(VirtAddr(BASE)), 8 * PAGE_SIZE, READ_WRITE).unwrap();
    for page in 0..8 {
        store(&mut vm, BASE + page * PAGE_SIZE, page as u8).unwrap();
    }
    vm.pin(parent, VirtAddr(BASE), 2 * PAGE_SIZE).unwrap();
    let child = vm.fork(parent).unwrap();
    vm.activate(child).unwrap();
    store(&mut vm, BASE + 5 * PAGE_SIZE, 1).unwrap();
    vm.destroy(parent).unwrap();
    vm.destroy(child).unwrap();
    // Only the zero page is left.
    assert_eq!(vm.frames().counters().allocated, 1);
    assert_eq!(data_frames(&vm), 0);
    assert_eq!(vm.frames().counters().pinned, 0);
    vm.frames().check().unwrap();
}

#[test]
fn fork_out_of_memory_frees_what_it_took() {
    let mut vm = vm(24);
    let parent = active_space(&mut vm);
    vm.map_anonymous(parent, Placement::Exact(VirtAddr(BASE)), 6 * PAGE_SIZE, READ_WRITE).unwrap();
    vm.map_anonymous(parent, Placement::Anywhere, PAGE_SIZE, READ_WRITE).unwrap();
    store(&mut vm, USER_START_BYTE, 1).unwrap();
    vm.pin(parent, VirtAddr(BASE), 6 * PAGE_SIZE).unwrap();
    while vm.frames().counters().free > 3 {
        vm.frames_mut().alloc().unwrap();
    }
    let before = vm.frames().counters();
    let one_page_count =
        vm.frames().ref_count(translation(&vm, parent, USER_START_BYTE).unwrap().0);
    assert_eq!(vm.fork(parent), Err(VmError::OutOfMemory));
    assert_eq!(vm.frames().counters(), before);
    assert_eq!(
        vm.frames().ref_count(translation(&vm, parent, USER_START_BYTE).unwrap().0),
        one_page_count
    );
    assert_eq!(vm.spaces().count(), 1);
}

/// The first user page, where `Placement::Anywhere` puts the first mapping.
const USER_START_BYTE: u64 = crate::vm::mmu::USER_START;

#[test]
fn fault_out_of_memory_changes_nothing() {
    let mut vm = vm(16);
    let space = active_space(&mut vm);
    vm.map_anonymous(space, Placement::Exact(VirtAddr(BASE)), 2 * PAGE_SIZE, READ_WRITE).unwrap();
    store(&mut vm, BASE, 1).unwrap();
    let child = vm.fork(space).unwrap();
    // No idle page tables either, which a failed fault would reclaim.
    vm.discard(child).unwrap();
    while vm.frames_mut().alloc().is_ok() {}
    let before = vm.frames().counters();
    assert_eq!(store(&mut vm, BASE + PAGE_SIZE, 1), Err(VmError::OutOfMemory));
    assert_eq!(store(&mut vm, BASE, 2), Err(VmError::OutOfMemory));
    assert_eq!(vm.frames().counters(), before);
    let zero = vm.zero_page().unwrap();
    let untouched = vm.permitted_translation(space, VirtAddr(BASE + PAGE_SIZE));
    assert_eq!(untouched, Some((zero, Protection::READ | Protection::USER)));
    let (pfn, rights) = vm.permitted_translation(child, VirtAddr(BASE)).unwrap();
    assert_eq!((vm.frames().ref_count(pfn), rights.contains(Protection::WRITE)), (1, false));
    assert!(private_object(&vm, space, BASE).chunk_shared(VirtAddr(BASE)));
    assert_eq!(vm.statistics().out_of_memory_faults, 2);
}

#[test]
fn pinned_translations_survive_discard_until_unpinned() {
    let mut vm = vm(32);
    let space = active_space(&mut vm);
    vm.map_anonymous(space, Placement::Exact(VirtAddr(BASE)), 4 * PAGE_SIZE, READ_WRITE).unwrap();
    vm.pin(space, VirtAddr(BASE + PAGE_SIZE), 2 * PAGE_SIZE).unwrap();
    assert_eq!(vm.frames().counters().pinned, 2);
    vm.discard(space).unwrap();
    assert!(translation(&vm, space, BASE + PAGE_SIZE).is_some());
    assert!(translation(&vm, space, BASE + 2 * PAGE_SIZE).is_some());
    let faults = vm.statistics().faults;
    store(&mut vm, BASE + PAGE_SIZE, 5).unwrap();
    assert_eq!(vm.statistics().faults, faults);
    vm.unpin(space, VirtAddr(BASE), 4 * PAGE_SIZE).unwrap();
    assert_eq!(vm.frames().counters().pinned, 0);
    vm.discard(space).unwrap();
    assert_eq!(translation(&vm, space, BASE + PAGE_SIZE), None);
    assert_eq!(load(&mut vm, BASE + PAGE_SIZE), Ok(5));
}

#[test]
fn pinning_breaks_copy_on_write_sharing() {
    let mut vm = vm(32);
    let parent = active_space(&mut vm);
    vm.map_anonymous(parent, Placement::Exact(VirtAddr(BASE)), PAGE_SIZE, READ_WRITE).unwrap();
    store(&mut vm, BASE, 6).unwrap();
    let child = vm.fork(parent).unwrap();
    vm.pin(child, VirtAddr(BASE), PAGE_SIZE).unwrap();
    vm.activate(child).unwrap();
    assert_eq!(load(&mut vm, BASE), Ok(6));
    let (parent_frame, _) = vm.permitted_translation(parent, VirtAddr(BASE)).unwrap();
    let (child_frame, _) = vm.permitted_translation(child, VirtAddr(BASE)).unwrap();
    assert_ne!(parent_frame, child_frame);
    assert_eq!((vm.frames().ref_count(parent_frame), vm.frames().ref_count(child_frame)), (1, 1));
    assert_eq!(vm.statistics().cow_copies, 1);
}

#[test]
fn failed_pin_undoes_its_pins() {
    let mut vm = vm(16);
    let space = active_space(&mut vm);
    vm.map_anonymous(space, Placement::Exact(VirtAddr(BASE)), 3 * PAGE_SIZE, READ_WRITE).unwrap();
    while vm.frames().counters().free > 2 {
        vm.frames_mut().alloc().unwrap();
    }
    assert_eq!(vm.pin(space, VirtAddr(BASE), 3 * PAGE_SIZE), Err(VmError::OutOfMemory));
    assert_eq!(vm.frames().counters().pinned, 0);
    assert!(vm.space(space).unwrap().regions().all(|region| !region.pinned()));
    assert!(vm.mmu().entries().all(|(_, _, entry)| !entry.pinned));
}

#[test]
fn user_ranges_are_checked_and_faulted_in() {
    let mut vm = vm(32);
    let space = active_space(&mut vm);
    vm.map_anonymous(space, Placement::Exact(VirtAddr(BASE)), 2 * PAGE_SIZE, READ_WRITE).unwrap();
    vm.map_anonymous(
        space,
        Placement::Exact(VirtAddr(BASE + 2 * PAGE_SIZE)),
        PAGE_SIZE,
        Protection::READ,
    )
    .unwrap();
    assert_eq!(
        vm.check_user_range(space, VirtAddr(BASE + 10), 3 * PAGE_SIZE - 20, Access::Read),
        Ok(())
    );
    assert_eq!(
        vm.check_user_range(space, VirtAddr(BASE + 10), 3 * PAGE_SIZE - 20, Access::Write),
        Err(VmError::Protection)
    );
    assert_eq!(
        vm.check_user_range(space, VirtAddr(BASE + 10), 3 * PAGE_SIZE, Access::Read),
        Err(VmError::BadAddress)
    );
    assert_eq!(vm.check_user_range(space, VirtAddr(BASE), 0, Access::Write), Ok(()));
    vm.fault_in(space, VirtAddr(BASE + 100), PAGE_SIZE, Access::Write).unwrap();
    let faults = vm.statistics().faults;
    store(&mut vm, BASE + 100, 1).unwrap();
    store(&mut vm, BASE + PAGE_SIZE + 99, 1).unwrap();
    assert_eq!(vm.statistics().faults, faults);
}

#[test]
fn placement_and_argument_errors() {
    let mut vm = vm(16);
    let space = vm.create_space();
    let first =
        vm.map_anonymous(space, Placement::Anywhere, 2 * PAGE_SIZE, Protection::READ).unwrap();
    assert_eq!(first, VirtAddr(USER_START_BYTE));
    let overlap = Placement::Exact(VirtAddr(USER_START_BYTE + PAGE_SIZE));
    assert_eq!(
        vm.map_anonymous(space, overlap, PAGE_SIZE, Protection::READ),
        Err(VmError::InvalidArgument)
    );
    assert_eq!(
        vm.map_anonymous(space, Placement::Anywhere, PAGE_SIZE, Protection::WRITE),
        Err(VmError::InvalidArgument)
    );
    assert_eq!(
        vm.find_free_range(space, PAGE_SIZE),
        Some(VirtAddr(USER_START_BYTE + 2 * PAGE_SIZE))
    );
    let object = vm.create_shared(PAGE_SIZE).unwrap();
    let beyond =
        vm.map_shared(space, Placement::Anywhere, object, PAGE_SIZE, PAGE_SIZE, Protection::READ);
    assert_eq!(beyond, Err(VmError::InvalidArgument));
    assert_eq!(
        vm.protect(space, VirtAddr(BASE), PAGE_SIZE, Protection::READ),
        Err(VmError::BadAddress)
    );
    assert_eq!(vm.unmap(space, VirtAddr(BASE), PAGE_SIZE), Ok(()));
    assert_eq!(vm.fork(SpaceId(99)), Err(VmError::InvalidArgument));
}

#[test]
fn zap_forgets_translations_of_a_range_or_a_whole_object() {
    let mut vm = vm(32);
    let space = active_space(&mut vm);
    let object = vm.create_shared(2 * PAGE_SIZE).unwrap();
    vm.map_shared(space, Placement::Exact(VirtAddr(BASE)), object, 0, 2 * PAGE_SIZE, READ_WRITE)
        .unwrap();
    store(&mut vm, BASE, 1).unwrap();
    store(&mut vm, BASE + PAGE_SIZE, 2).unwrap();
    vm.zap(space, VirtAddr(BASE), PAGE_SIZE).unwrap();
    assert_eq!(translation(&vm, space, BASE), None);
    assert!(translation(&vm, space, BASE + PAGE_SIZE).is_some());
    assert_eq!(load(&mut vm, BASE), Ok(1));
    assert_eq!(vm.statistics().rebuild_faults, 1);
    vm.zap_object(object).unwrap();
    assert_eq!(vm.mmu().entries().count(), 0);
    assert_eq!(load(&mut vm, BASE + PAGE_SIZE), Ok(2));
    vm.close_shared(object).unwrap();
    vm.unmap(space, VirtAddr(BASE), 2 * PAGE_SIZE).unwrap();
    assert_eq!(vm.zap_object(object), Err(VmError::InvalidArgument));
}

#[test]
fn harvest_moves_referenced_and_dirty_bits_to_pages() {
    let mut vm = vm(32);
    let space = active_space(&mut vm);
    vm.map_anonymous(space, Placement::Exact(VirtAddr(BASE)), 2 * PAGE_SIZE, READ_WRITE).unwrap();
    store(&mut vm, BASE, 1).unwrap();
    load(&mut vm, BASE + PAGE_SIZE).unwrap();
    vm.harvest(space).unwrap();
    let written = translation(&vm, space, BASE).unwrap().0;
    let read = translation(&vm, space, BASE + PAGE_SIZE).unwrap().0;
    assert!(vm.frames().flags(written).contains(PageFlags::DIRTY | PageFlags::REFERENCED));
    assert_eq!(
        vm.frames().flags(read) & (PageFlags::DIRTY | PageFlags::REFERENCED),
        PageFlags::REFERENCED
    );
}

#[test]
fn splits_count_against_the_region_limit_and_merge_back() {
    let mut vm = vm(64);
    let space = active_space(&mut vm);
    vm.set_region_limit(5);
    let pages = 16;
    vm.map_anonymous(space, Placement::Exact(VirtAddr(BASE)), pages * PAGE_SIZE, READ_WRITE)
        .unwrap();
    store(&mut vm, BASE + 3 * PAGE_SIZE, 7).unwrap();
    let regions = |vm: &Vm<'static, SimMmu>| vm.space(space).unwrap().region_count();
    // Every other page read-only: 1, 3 split twice each (5 regions), 5 would
    // need 7 and is refused with nothing changed.
    for page in [1, 3] {
        vm.protect(space, VirtAddr(BASE + page * PAGE_SIZE), PAGE_SIZE, Protection::READ).unwrap();
    }
    assert_eq!(regions(&vm), 5);
    let refused = vm.protect(space, VirtAddr(BASE + 5 * PAGE_SIZE), PAGE_SIZE, Protection::READ);
    assert_eq!(refused, Err(VmError::OutOfMemory));
    assert_eq!(regions(&vm), 5);
    assert_eq!(
        vm.space(space).unwrap().region(VirtAddr(BASE + 5 * PAGE_SIZE)).unwrap().protection(),
        READ_WRITE
    );
    // A hole inside one region needs one more; a new mapping too.
    let hole = vm.unmap(space, VirtAddr(BASE + 8 * PAGE_SIZE), PAGE_SIZE);
    assert_eq!(hole, Err(VmError::OutOfMemory));
    assert_eq!(load(&mut vm, BASE + 8 * PAGE_SIZE), Ok(0));
    let far = Placement::Exact(VirtAddr(BASE + 64 * PAGE_SIZE));
    assert_eq!(vm.map_anonymous(space, far, PAGE_SIZE, READ_WRITE), Err(VmError::OutOfMemory));
    // Back to read-write at the limit, in one call: the regions merge into one,
    // with the page kept.
    vm.protect(space, VirtAddr(BASE), pages * PAGE_SIZE, READ_WRITE).unwrap();
    assert_eq!(regions(&vm), 1);
    for page in [1, 3] {
        vm.protect(space, VirtAddr(BASE + page * PAGE_SIZE), PAGE_SIZE, Protection::READ).unwrap();
        vm.protect(space, VirtAddr(BASE + page * PAGE_SIZE), PAGE_SIZE, READ_WRITE).unwrap();
    }
    assert_eq!(regions(&vm), 1);
    assert_eq!(load(&mut vm, BASE + 3 * PAGE_SIZE), Ok(7));
    // An adjacent new mapping with the same protection joins it too.
    let next = Placement::Exact(VirtAddr(BASE + pages * PAGE_SIZE));
    vm.map_anonymous(space, next, PAGE_SIZE, READ_WRITE).unwrap();
    assert_eq!(regions(&vm), 1);
    vm.destroy(space).unwrap();
    assert_eq!(data_frames(&vm), 0);
}

#[test]
fn consecutive_pages_of_a_shared_object_merge_and_count_one_mapping() {
    let mut vm = vm(64);
    let space = active_space(&mut vm);
    let object = vm.create_shared(4 * PAGE_SIZE).unwrap();
    let at = |page: u64| Placement::Exact(VirtAddr(BASE + page * PAGE_SIZE));
    vm.map_shared(space, at(0), object, 0, 2 * PAGE_SIZE, READ_WRITE).unwrap();
    vm.map_shared(space, at(2), object, 2 * PAGE_SIZE, 2 * PAGE_SIZE, READ_WRITE).unwrap();
    // Not consecutive in the object: stays apart.
    vm.map_shared(space, at(4), object, 0, PAGE_SIZE, READ_WRITE).unwrap();
    assert_eq!(vm.space(space).unwrap().region_count(), 2);
    assert_eq!(vm.objects().get(object).unwrap().mappings(), 2);
    store(&mut vm, BASE + 4 * PAGE_SIZE, 9).unwrap();
    assert_eq!(load(&mut vm, BASE), Ok(9));
    vm.close_shared(object).unwrap();
    vm.destroy(space).unwrap();
    assert!(vm.objects().get(object).is_none());
    assert_eq!(data_frames(&vm), 0);
}

#[test]
fn zap_of_the_whole_user_half_visits_regions_not_pages() {
    let mut vm = vm(64);
    let space = active_space(&mut vm);
    let far = VirtAddr(USER_END - 16 * PAGE_SIZE);
    vm.map_anonymous(space, Placement::Exact(VirtAddr(BASE)), PAGE_SIZE, READ_WRITE).unwrap();
    vm.map_anonymous(space, Placement::Exact(far), PAGE_SIZE, READ_WRITE).unwrap();
    store(&mut vm, BASE, 1).unwrap();
    store(&mut vm, far.0, 2).unwrap();
    let before = vm.mmu().unmap_calls();
    vm.zap(space, VirtAddr(USER_START), USER_END - USER_START).unwrap();
    // One request per region, none for the 2^35 pages of holes.
    assert_eq!(vm.mmu().unmap_calls() - before, 2);
    assert_eq!(translation(&vm, space, BASE), None);
    assert_eq!(load(&mut vm, far.0), Ok(2));
}

#[test]
fn working_set_comes_back_in_one_batch_and_keeps_only_what_is_used() {
    let mut vm = vm(64);
    vm.mmu_mut().single_table = true;
    let first = active_space(&mut vm);
    assert!(!vm.mmu().kept_translations(first), "the simulation must not keep space 1's");
    vm.map_anonymous(first, Placement::Exact(VirtAddr(BASE)), 4 * PAGE_SIZE, READ_WRITE).unwrap();
    for page in 0..3 {
        store(&mut vm, BASE + page * PAGE_SIZE, page as u8 + 1).unwrap();
    }
    let other = vm.create_space();
    vm.activate(other).unwrap();
    assert_eq!(translation(&vm, first, BASE), None, "one table: the switch dropped them");
    vm.activate(first).unwrap();
    assert_eq!(vm.statistics().pages_restored, 3);
    let faults = vm.statistics().faults;
    for page in 0..3 {
        assert!(translation(&vm, first, BASE + page * PAGE_SIZE).is_some(), "page {page}");
    }
    // This turn uses page 0 only: the next restore brings back only it.
    assert_eq!(load(&mut vm, BASE), Ok(1));
    assert_eq!(vm.statistics().faults, faults, "restored pages faulted");
    vm.activate(other).unwrap();
    vm.activate(first).unwrap();
    assert_eq!(vm.statistics().pages_restored, 4);
    assert!(translation(&vm, first, BASE).is_some());
    assert_eq!(translation(&vm, first, BASE + PAGE_SIZE), None);
    assert_eq!(vm.space(first).unwrap().working_set().pages().count(), 1);
}

#[test]
fn metadata_counts_shared_chunks_once() {
    use crate::vm::object::anonymous::{CHUNK_BYTES, CHUNK_PAGES};
    let mut vm = vm(96);
    let parent = active_space(&mut vm);
    let pages = 2 * CHUNK_PAGES as u64;
    vm.map_anonymous(parent, Placement::Exact(VirtAddr(BASE)), pages * PAGE_SIZE, READ_WRITE)
        .unwrap();
    for page in 0..pages {
        store(&mut vm, BASE + page * PAGE_SIZE, 1).unwrap();
    }
    let alone = vm.metadata();
    assert_eq!((alone.private_pages, alone.chunks, alone.shared_chunks), (pages, 2, 0));
    assert_eq!(alone.chunk_bytes, 2 * CHUNK_BYTES as u64);
    let child = vm.fork(parent).unwrap();
    let forked = vm.metadata();
    assert_eq!((forked.private_pages, forked.chunks, forked.shared_chunks), (pages, 2, 2));
    assert_eq!(forked.regions, 2);
    // The child writes one page: its first chunk is copied, the page too.
    vm.activate(child).unwrap();
    store(&mut vm, BASE, 2).unwrap();
    let written = vm.metadata();
    assert_eq!((written.chunks, written.shared_chunks), (3, 1));
    assert_eq!(written.private_pages, pages + CHUNK_PAGES as u64);
}

#[test]
fn fork_chains_keep_every_side_apart_and_return_every_frame() {
    use crate::vm::object::anonymous::CHUNK_PAGES;
    let mut vm = vm(160);
    let pages = 3 * CHUNK_PAGES as u64;
    let grandparent = active_space(&mut vm);
    vm.map_anonymous(grandparent, Placement::Exact(VirtAddr(BASE)), pages * PAGE_SIZE, READ_WRITE)
        .unwrap();
    // Every other page written; the rest read (the zero page).
    for page in 0..pages {
        match page % 2 {
            0 => store(&mut vm, BASE + page * PAGE_SIZE, 1).unwrap(),
            _ => assert_eq!(load(&mut vm, BASE + page * PAGE_SIZE), Ok(0)),
        }
    }
    let parent = vm.fork(grandparent).unwrap();
    vm.activate(parent).unwrap();
    store(&mut vm, BASE, 2).unwrap();
    store(&mut vm, BASE + PAGE_SIZE, 2).unwrap();
    let child = vm.fork(parent).unwrap();
    // The parent exits before its child; the grandparent and the child write
    // on every side of what they still share.
    vm.destroy(parent).unwrap();
    vm.activate(child).unwrap();
    for page in 0..pages {
        let expected = match page {
            0 | 1 => 2,
            page if page % 2 == 0 => 1,
            _ => 0,
        };
        assert_eq!(load(&mut vm, BASE + page * PAGE_SIZE), Ok(expected), "child page {page}");
        store(&mut vm, BASE + page * PAGE_SIZE, 3).unwrap();
    }
    vm.activate(grandparent).unwrap();
    for page in 0..pages {
        let expected = if page % 2 == 0 { 1 } else { 0 };
        assert_eq!(load(&mut vm, BASE + page * PAGE_SIZE), Ok(expected), "grandparent {page}");
    }
    let grandchild = vm.fork(child).unwrap();
    vm.activate(grandchild).unwrap();
    store(&mut vm, BASE + 5 * PAGE_SIZE, 4).unwrap();
    vm.activate(child).unwrap();
    assert_eq!(load(&mut vm, BASE + 5 * PAGE_SIZE), Ok(3));
    for space in [child, grandchild, grandparent] {
        vm.destroy(space).unwrap();
    }
    assert_eq!(data_frames(&vm), 0);
    vm.frames().check().unwrap();
}

#[test]
fn fork_offers_a_bounded_number_of_translations_small_regions_first() {
    use crate::vm::fork::FORK_COPY_PAGES;
    use crate::vm::object::anonymous::CHUNK_PAGES;
    let mut vm = vm(800);
    let parent = active_space(&mut vm);
    // A large region of twice the budget, and a small one above it.
    let large = 2 * FORK_COPY_PAGES as u64;
    let small = (BASE + 4 * large * PAGE_SIZE, 4);
    vm.map_anonymous(parent, Placement::Exact(VirtAddr(BASE)), large * PAGE_SIZE, READ_WRITE)
        .unwrap();
    vm.map_anonymous(parent, Placement::Exact(VirtAddr(small.0)), small.1 * PAGE_SIZE, READ_WRITE)
        .unwrap();
    for page in 0..large {
        store(&mut vm, BASE + page * PAGE_SIZE, page as u8).unwrap();
    }
    for page in 0..small.1 {
        store(&mut vm, small.0 + page * PAGE_SIZE, 0xEE).unwrap();
    }
    let child = vm.fork(parent).unwrap();
    let translated = |vm: &Vm<'static, SimMmu>, start: u64, pages: u64| {
        (0..pages).filter(|page| translation(vm, child, start + page * PAGE_SIZE).is_some()).count()
    };
    // The simulated MMU copies a random seven in eight of what it is offered.
    let (in_large, in_small) = (translated(&vm, BASE, large), translated(&vm, small.0, small.1));
    assert!(in_small > 0, "the small region was not offered first");
    assert!(in_large + in_small <= FORK_COPY_PAGES, "{in_large} + {in_small} offered");
    assert!(in_large > 0 && translated(&vm, BASE + (large - 1) * PAGE_SIZE, 1) == 0);
    // The child reads everything back, a chunk a fault rather than a page
    // (two faults or so, as the simulated MMU also makes a random subset of
    // what fault-around offers).
    vm.activate(child).unwrap();
    let before = vm.statistics().rebuild_faults;
    for page in 0..large {
        assert_eq!(load(&mut vm, BASE + page * PAGE_SIZE), Ok(page as u8), "page {page}");
    }
    let faults = vm.statistics().rebuild_faults - before;
    assert!(faults <= 4 * large / CHUNK_PAGES as u64, "{faults} faults");
}

mod processors;
