//! The shadow-TLB check (`tlb_check`), on a processor with PCIDs: emulators drop
//! every translation at each CR3 load, so only the shadow, which keeps every
//! PCID's translations as the architecture allows a processor to, can show a
//! flush the page-table layer forgot. Here a workload that changes retained
//! spaces while others run passes the check, and a change made to a retained
//! root behind the layer's back (so that no flush is owed for it) is caught when
//! the root is loaded again: a page unmapped, write-protected, pointed at
//! another frame, or cleaned (its dirty bit cleared). Bochs only: QEMU's TCG has no PCIDs, and without
//! them every load flushes, so nothing stale can survive one.
//! run: --bochs --kernel-arg pt_cache=4 --kernel-arg tlb_check
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use bootloader_api::{BootInfo, entry_point};
use kernel::arch::paging::tlb::Tlb;
use kernel::arch::user_memory;
use kernel::memory::with_vm;
use kernel::testing;
use kernel::vm::{PAGE_SIZE, Pfn, Placement, Protection, SpaceId, VirtAddr};
use kernel_tests::{
    READ_WRITE, activate, clean_behind_the_layers_back, destroy, move_behind_the_layers_back,
    space_with, unmap_behind_the_layers_back, write, write_protect_behind_the_layers_back,
};

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::run(&kernel::tests![
        the_check_is_on_with_pcids,
        changes_to_retained_spaces_pass_the_check,
        a_lost_flush_is_caught,
        a_lost_flush_after_write_protect_is_caught,
        a_lost_flush_after_a_frame_change_is_caught,
        a_lost_flush_after_cleaning_is_caught,
    ])
}

/// Where test mappings go.
const BASE: u64 = 0x4000_0000;

/// Page `page` above [`BASE`].
fn at(page: u64) -> VirtAddr {
    VirtAddr(BASE + page * PAGE_SIZE)
}

fn checks() -> u64 {
    with_vm(|vm| vm.mmu().tlb_checks()).expect("tlb_check is off")
}

fn the_check_is_on_with_pcids() {
    let (pcid, capacity) = with_vm(|vm| (vm.mmu().has_pcid(), vm.mmu().capacity()));
    assert!(pcid, "this kernel needs a processor with PCIDs (boot it with --bochs)");
    assert!(capacity >= 2, "retained spaces need pt_cache >= 2");
    let before = checks();
    let space = space_with(BASE, 1);
    activate(space);
    write(at(0), 1);
    destroy(&[space]);
    assert!(checks() > before, "activation did not reach the check");
}

/// Unmap, write-protect, copy-on-write and eviction of spaces that are not
/// running, then every space runs again: each load is checked.
fn changes_to_retained_spaces_pass_the_check() {
    let spaces: Vec<SpaceId> = (0..6).map(|_| space_with(BASE, 4)).collect();
    let before = checks();
    for round in 0..3 {
        for &space in &spaces {
            activate(space);
            (0..4).for_each(|page| write(at(page), u64::from(space.0) + round));
        }
        let [first, second, third, ..] = spaces[..] else { unreachable!() };
        with_vm(|vm| {
            vm.unmap(first, at(round), PAGE_SIZE).expect("unmap");
            vm.map_anonymous(first, Placement::Exact(at(round)), PAGE_SIZE, READ_WRITE)
                .expect("map again");
            vm.protect(second, at(0), PAGE_SIZE, Protection::READ).expect("protect");
            vm.protect(second, at(0), PAGE_SIZE, READ_WRITE).expect("protect");
            let child = vm.fork(third).expect("fork");
            vm.destroy(child).expect("destroy child");
        });
    }
    for &space in &spaces {
        activate(space);
        assert_eq!(user_memory::read_u64(at(3)), Ok(u64::from(space.0) + 2));
    }
    assert!(checks() >= before + 18, "loads went unchecked");
    destroy(&spaces);
}

/// A page of a retained space is changed while another runs, behind the
/// page-table layer's back, so that its slot is not marked for a flush: the
/// shadow TLB sees that the translation the PCID may still hold no longer
/// agrees with the tables when the space is loaded again without one.
fn caught_when_loaded_again(change: fn(Pfn, VirtAddr)) -> ! {
    let (running, retained) = (space_with(BASE, 1), space_with(BASE, 1));
    activate(retained);
    write(at(0), 1);
    let root = Tlb::current_root();
    activate(running);
    write(at(0), 2);
    change(root, at(0));
    testing::expect_panic("loaded without a flush: a stale translation");
    activate(retained);
    panic!("the lost flush went unnoticed");
}

/// The page is unmapped.
fn a_lost_flush_is_caught() {
    caught_when_loaded_again(unmap_behind_the_layers_back)
}

/// The page loses write, as a copy-on-write of a retained space (a fork of a
/// space that is not running) that forgot its flush would leave it.
fn a_lost_flush_after_write_protect_is_caught() {
    caught_when_loaded_again(write_protect_behind_the_layers_back)
}

/// The page is pointed at another frame.
fn a_lost_flush_after_a_frame_change_is_caught() {
    caught_when_loaded_again(move_behind_the_layers_back)
}

/// The page's dirty bit is cleared.
fn a_lost_flush_after_cleaning_is_caught() {
    caught_when_loaded_again(clean_behind_the_layers_back)
}
