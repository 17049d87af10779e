//! The shadow-TLB check (`tlb_check`) catches a change to the loaded root that
//! was not invalidated: a leaf the processor may hold is changed behind the
//! page-table layer's back (no `invlpg`), and the next switch finds that the
//! translation it may hold no longer agrees with the tables. Each way a leaf
//! can stop agreeing is one test: gone, write taken away (a copy-on-write that
//! forgot its flush), another frame, the dirty bit cleared (a harvest that
//! forgot its flush), the accessed bit cleared (an ageing scan that did). With PCIDs (Bochs) and without
//! (QEMU).
//! run: --kernel-arg pt_cache=2 --kernel-arg tlb_check
//! run: --bochs --kernel-arg pt_cache=2 --kernel-arg tlb_check
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::arch::paging::tlb::Tlb;
use kernel::memory::with_vm;
use kernel::testing;
use kernel::vm::{Pfn, VirtAddr};
use kernel_tests::{
    activate, age_behind_the_layers_back, clean_behind_the_layers_back,
    move_behind_the_layers_back, space_with, unmap_behind_the_layers_back, write,
    write_protect_behind_the_layers_back,
};

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::run(&kernel::tests![
        a_missed_invalidation_is_caught,
        a_write_protect_without_invalidation_is_caught,
        a_frame_changed_without_invalidation_is_caught,
        a_dirty_bit_cleared_without_invalidation_is_caught,
        an_accessed_bit_cleared_without_invalidation_is_caught,
    ])
}

/// Where the test page goes.
const BASE: u64 = 0x4000_0000;

/// Writes the test page of a space, loads its root again so that the written
/// (accessed, dirty, writable) leaf is one the processor may hold, has `change`
/// made to it behind the layer's back, and expects the next switch to panic.
fn caught_at_the_next_switch(change: fn(Pfn, VirtAddr)) -> ! {
    assert!(with_vm(|vm| vm.mmu().tlb_checks()).is_some(), "boot with tlb_check");
    let (first, second) = (space_with(BASE, 1), space_with(BASE, 1));
    activate(first);
    write(VirtAddr(BASE), 1);
    activate(second);
    activate(first);
    change(Tlb::current_root(), VirtAddr(BASE));
    testing::expect_panic("a change to the loaded root was not invalidated");
    activate(second);
    panic!("the missed invalidation went unnoticed");
}

fn a_missed_invalidation_is_caught() {
    caught_at_the_next_switch(unmap_behind_the_layers_back)
}

fn a_write_protect_without_invalidation_is_caught() {
    caught_at_the_next_switch(write_protect_behind_the_layers_back)
}

fn a_frame_changed_without_invalidation_is_caught() {
    caught_at_the_next_switch(move_behind_the_layers_back)
}

fn a_dirty_bit_cleared_without_invalidation_is_caught() {
    caught_at_the_next_switch(clean_behind_the_layers_back)
}

fn an_accessed_bit_cleared_without_invalidation_is_caught() {
    caught_at_the_next_switch(age_behind_the_layers_back)
}
