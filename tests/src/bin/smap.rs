//! SMAP holds: the kernel reading a present user page outside the user-memory
//! accessors is a protection fault, reported as a kernel bug (a panic), never
//! resolved as if the process had faulted. Booted under QEMU, whose default
//! processor here has SMAP (Bochs's Haswell has none).
//! run: --kernel-arg pt_cache=2
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::arch::cpu;
use kernel::testing;
use kernel::vm::VirtAddr;
use kernel_tests::{activate, space_with, write};

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

/// Where the test maps its page.
const BASE: u64 = 0x40_0000;

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::run(&kernel::tests![kernel_read_of_a_present_user_page_faults])
}

/// The only test: it ends the kernel.
fn kernel_read_of_a_present_user_page_faults() {
    assert!(cpu::enabled().smap, "SMAP is off: this processor cannot run this test");
    let space = space_with(BASE, 1);
    activate(space);
    // Through the accessor (stac/clac): the page becomes present and readable.
    write(VirtAddr(BASE), 42);
    testing::expect_panic("[protection read kernel]");
    let pointer = BASE as *const u64;
    // SAFETY: deliberately outside an accessor: with SMAP the read must fault,
    // and the fault handler never returns to this code.
    let value = unsafe { pointer.read_volatile() };
    panic!("a kernel read of user memory outside an accessor returned {value}");
}
