//! Tests of regions and address spaces on their own (no frames involved).

use super::*;

const PAGE: u64 = PAGE_SIZE;

/// An anonymous region over `[start, end)` pages.
fn region(start: u64, end: u64) -> Region {
    let backing = Backing::Anonymous(AnonymousObject::new());
    Region::new(VirtAddr(start * PAGE), VirtAddr(end * PAGE), Protection::READ, backing)
}

#[test]
fn lookup_finds_the_containing_region_only() {
    let mut space = AddressSpace::new(SpaceId(1));
    space.insert(region(4, 8));
    space.insert(region(10, 12));
    assert!(space.region(VirtAddr(3 * PAGE)).is_none());
    assert_eq!(space.region(VirtAddr(4 * PAGE)).map(Region::start), Some(VirtAddr(4 * PAGE)));
    assert_eq!(space.region(VirtAddr(8 * PAGE - 1)).map(Region::start), Some(VirtAddr(4 * PAGE)));
    assert!(space.region(VirtAddr(8 * PAGE)).is_none());
    assert!(space.overlaps(VirtAddr(2 * PAGE), VirtAddr(5 * PAGE)));
    assert!(space.overlaps(VirtAddr(9 * PAGE), VirtAddr(11 * PAGE)));
    assert!(!space.overlaps(VirtAddr(8 * PAGE), VirtAddr(10 * PAGE)));
    assert!(space.covers(VirtAddr(5 * PAGE), VirtAddr(8 * PAGE)));
    assert!(!space.covers(VirtAddr(5 * PAGE), VirtAddr(11 * PAGE)));
}

#[test]
fn find_free_range_is_first_fit() {
    let mut space = AddressSpace::new(SpaceId(1));
    assert_eq!(space.find_free_range(PAGE), Some(VirtAddr(USER_START)));
    space.insert(region(1, 3));
    space.insert(region(5, 6));
    assert_eq!(space.find_free_range(2 * PAGE), Some(VirtAddr(3 * PAGE)));
    assert_eq!(space.find_free_range(3 * PAGE), Some(VirtAddr(6 * PAGE)));
    assert_eq!(space.find_free_range(USER_END), None);
}

#[test]
fn isolate_splits_regions_and_shared_objects_count_both_halves() {
    let mut objects = ObjectTable::new();
    let object = objects.create(8);
    objects.add_mapping(object);
    let mut space = AddressSpace::new(SpaceId(1));
    let backing = Backing::Shared { object, offset: 2 };
    space.insert(Region::new(VirtAddr(PAGE), VirtAddr(9 * PAGE), Protection::READ, backing));
    let mut vm = crate::vm::sim::driver::simulated_vm(4, 1, 0);
    space.isolate(&mut objects, vm.frames_mut(), VirtAddr(3 * PAGE), VirtAddr(5 * PAGE)).unwrap();
    let starts: alloc::vec::Vec<u64> =
        space.regions().map(|region| region.start().0 / PAGE).collect();
    assert_eq!(starts, [1, 3, 5]);
    assert_eq!(objects.get(object).map(|shared| shared.mappings()), Some(3));
    let middle = space.region(VirtAddr(4 * PAGE)).expect("middle region");
    assert_eq!(middle.object_index(VirtAddr(4 * PAGE)), Some((object, 5)));
}

#[test]
fn check_range_rejects_malformed_ranges() {
    assert_eq!(check_range(VirtAddr(PAGE), 0), Err(VmError::InvalidArgument));
    assert_eq!(check_range(VirtAddr(PAGE), PAGE + 1), Err(VmError::InvalidArgument));
    assert_eq!(check_range(VirtAddr(PAGE + 8), PAGE), Err(VmError::BadAddress));
    assert_eq!(check_range(VirtAddr(0), PAGE), Err(VmError::BadAddress));
    assert_eq!(check_range(VirtAddr(USER_END - PAGE), 2 * PAGE), Err(VmError::BadAddress));
    assert_eq!(check_range(VirtAddr(PAGE), PAGE), Ok(VirtAddr(2 * PAGE)));
}
