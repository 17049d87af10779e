//! The shadow-TLB check (`tlb_check`) catches a change to the loaded root that
//! was not invalidated: a page is unmapped behind the page-table layer's back
//! (no `invlpg`), and the next switch finds that the translation the processor
//! may hold is gone from the tables. With PCIDs (Bochs) and without (QEMU).
//! run: --kernel-arg pt_cache=2 --kernel-arg tlb_check
//! run: --bochs --kernel-arg pt_cache=2 --kernel-arg tlb_check
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::arch::paging::{table, tlb::Tlb};
use kernel::arch::user_memory;
use kernel::memory::with_vm;
use kernel::testing;
use kernel::vm::{PAGE_SIZE, Placement, Protection, SpaceId, VirtAddr};

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::run(&kernel::tests![a_missed_invalidation_is_caught])
}

/// Where the test page goes.
const BASE: u64 = 0x4000_0000;

fn space_with_a_page() -> SpaceId {
    with_vm(|vm| {
        let space = vm.create_space();
        let placement = Placement::Exact(VirtAddr(BASE));
        let rights = Protection::READ.union(Protection::WRITE);
        vm.map_anonymous(space, placement, PAGE_SIZE, rights).expect("map_anonymous");
        space
    })
}

fn activate(space: SpaceId) {
    with_vm(|vm| vm.activate(space)).expect("activate");
}

fn a_missed_invalidation_is_caught() {
    assert!(with_vm(|vm| vm.mmu().tlb_checks()).is_some(), "boot with tlb_check");
    let (first, second) = (space_with_a_page(), space_with_a_page());
    activate(first);
    user_memory::write_u64(VirtAddr(BASE), 1).expect("write");
    activate(second);
    activate(first);
    let root = Tlb::current_root();
    with_vm(|_| {
        let mut no_tables = || unreachable!("the page's tables exist");
        table::install(root, BASE, 0, &mut no_tables).expect("unmap behind its back")
    });
    testing::expect_panic("a change to the loaded root was not invalidated");
    activate(second);
    panic!("the missed invalidation went unnoticed");
}
