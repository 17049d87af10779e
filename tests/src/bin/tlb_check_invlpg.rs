//! The shadow-TLB check (`tlb_check`) catches a change to the loaded root that
//! was not invalidated: a page is unmapped behind the page-table layer's back
//! (no `invlpg`), and the next switch finds that the translation the processor
//! may hold is gone from the tables. With PCIDs (Bochs) and without (QEMU).
//! run: --kernel-arg pt_cache=2 --kernel-arg tlb_check
//! run: --bochs --kernel-arg pt_cache=2 --kernel-arg tlb_check
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::arch::paging::tlb::Tlb;
use kernel::memory::with_vm;
use kernel::testing;
use kernel::vm::VirtAddr;
use kernel_tests::{activate, space_with, unmap_behind_the_layers_back, write};

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::run(&kernel::tests![a_missed_invalidation_is_caught])
}

/// Where the test page goes.
const BASE: u64 = 0x4000_0000;

fn a_missed_invalidation_is_caught() {
    assert!(with_vm(|vm| vm.mmu().tlb_checks()).is_some(), "boot with tlb_check");
    let (first, second) = (space_with(BASE, 1), space_with(BASE, 1));
    activate(first);
    write(VirtAddr(BASE), 1);
    activate(second);
    activate(first);
    let root = Tlb::current_root();
    unmap_behind_the_layers_back(root, VirtAddr(BASE));
    testing::expect_panic("a change to the loaded root was not invalidated");
    activate(second);
    panic!("the missed invalidation went unnoticed");
}
