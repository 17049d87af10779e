//! Directed tests of several processors: a change made on one must reach the
//! TLB of another that has the space loaded, by the time `flush` returns.

use super::*;

/// A VM on two processors with one space holding a writable page at `BASE`,
/// active on processor 1, which has written `byte` there (so that its TLB
/// caches the page, writable); processor 0 runs next. Returns the space and
/// the page's frame.
fn loaded_on_processor_1(vm: &mut Vm<'static, SimMmu>, byte: u8) -> (SpaceId, Pfn) {
    vm.mmu_mut().set_processors(2);
    vm.mmu_mut().run_on(1);
    let space = active_space(vm);
    vm.map_anonymous(space, Placement::Exact(VirtAddr(BASE)), PAGE_SIZE, READ_WRITE).unwrap();
    store(vm, BASE, byte).unwrap();
    let (pfn, _) = translation(vm, space, BASE).unwrap();
    vm.mmu_mut().run_on(0);
    (space, pfn)
}

/// What processor 1 translates `BASE` to for `access` now, without faulting.
fn seen_by_processor_1(vm: &mut Vm<'static, SimMmu>, access: Access) -> Option<Pfn> {
    vm.mmu_mut().run_on(1);
    vm.mmu_mut().translate(VirtAddr(BASE), access)
}

/// Processor 1's view of its page after processor 0 unmapped it.
fn unmapped_by_processor_0(local_shootdown_only: bool) -> (Pfn, Option<Pfn>) {
    let mut vm = vm(32);
    vm.mmu_mut().local_shootdown_only = local_shootdown_only;
    let (space, pfn) = loaded_on_processor_1(&mut vm, 5);
    vm.unmap(space, VirtAddr(BASE), PAGE_SIZE).unwrap();
    assert_eq!((vm.active_on(0), vm.active_on(1)), (None, Some(space)));
    (pfn, seen_by_processor_1(&mut vm, Access::Read))
}

#[test]
fn an_unmap_on_one_processor_reaches_the_tlb_of_another() {
    let (pfn, seen) = unmapped_by_processor_0(false);
    assert_eq!(seen, None, "processor 1 still reads the freed {pfn:?}");
}

#[test]
fn without_the_shootdown_another_processor_keeps_reading_a_freed_frame() {
    // The test above, on a machine that forgets the other processors: it
    // would fail, since processor 1 reads the frame the unmap freed.
    let (pfn, seen) = unmapped_by_processor_0(true);
    assert_eq!(seen, Some(pfn));
}

#[test]
fn a_write_protect_on_one_processor_reaches_the_tlb_of_another() {
    let mut vm = vm(32);
    let (space, pfn) = loaded_on_processor_1(&mut vm, 5);
    vm.protect(space, VirtAddr(BASE), PAGE_SIZE, Protection::READ).unwrap();
    assert_eq!(seen_by_processor_1(&mut vm, Access::Write), None);
    assert_eq!(seen_by_processor_1(&mut vm, Access::Read), Some(pfn));
    assert_eq!(store(&mut vm, BASE, 6), Err(VmError::Protection));
    assert_eq!(load(&mut vm, BASE), Ok(5));
}

#[test]
fn a_fork_on_one_processor_keeps_the_child_apart_from_a_parent_running_on_another() {
    let mut vm = vm(32);
    let (parent, pfn) = loaded_on_processor_1(&mut vm, 5);
    let child = vm.fork(parent).unwrap();
    vm.activate(child).unwrap();
    // The parent's next write, on processor 1, must copy rather than go
    // through its TLB into the frame the child now shares.
    assert_eq!(seen_by_processor_1(&mut vm, Access::Write), None);
    store(&mut vm, BASE, 6).unwrap();
    assert_eq!(vm.statistics().cow_copies, 1);
    vm.mmu_mut().run_on(0);
    assert_eq!(vm.active(), Some(child));
    assert_eq!(load(&mut vm, BASE), Ok(5));
    assert_eq!(translation(&vm, child, BASE).map(|(frame, _)| frame), Some(pfn));
}

#[test]
fn each_processor_keeps_its_own_active_space() {
    let mut vm = vm(32);
    let (space, _) = loaded_on_processor_1(&mut vm, 5);
    let other = active_space(&mut vm);
    assert_eq!((vm.active(), vm.active_on(1)), (Some(other), Some(space)));
    // Activated on processor 0 too, as a thread of it would be; then gone
    // from both when destroyed.
    vm.activate(space).unwrap();
    vm.destroy(space).unwrap();
    assert_eq!((vm.active_on(0), vm.active_on(1), vm.mmu().active_on(1)), (None, None, None));
}
