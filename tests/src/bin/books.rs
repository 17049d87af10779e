//! The harness's books catch leaks: after every test it compares the frames
//! not held by anything but the kernel's caches, the heap's bytes in use and
//! the kernel stacks handed out with what they were before. Each test here
//! leaks one kind of thing on purpose (and says so, `testing::expect_leak`),
//! and passes only if the books show it; balanced work must show nothing.
//! run:
//! run: --memory 21M
#![no_std]
#![no_main]

extern crate alloc;

use bootloader_api::{BootInfo, entry_point};
use kernel::memory::with_vm;
use kernel::testing;

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::run(&kernel::tests![
        balanced_work_leaves_the_books_as_they_were,
        a_leaked_heap_allocation_is_caught,
        a_leaked_address_space_is_caught,
        a_leaked_frame_is_caught,
        a_leaked_kernel_stack_is_caught,
    ])
}

fn balanced_work_leaves_the_books_as_they_were() {
    let block = core::hint::black_box(alloc::vec![3u8; 4096]);
    let space = with_vm(|vm| vm.create_space());
    with_vm(|vm| vm.destroy(space)).expect("destroy");
    drop(block);
}

fn a_leaked_heap_allocation_is_caught() {
    testing::expect_leak();
    core::hint::black_box(alloc::boxed::Box::leak(alloc::boxed::Box::new([1u8; 64])));
}

fn a_leaked_address_space_is_caught() {
    testing::expect_leak();
    with_vm(|vm| vm.create_space());
}

fn a_leaked_frame_is_caught() {
    testing::expect_leak();
    with_vm(|vm| vm.frames_mut().alloc()).expect("a frame");
}

fn a_leaked_kernel_stack_is_caught() {
    testing::expect_leak();
    core::hint::black_box(kernel::arch::stack::allocate().expect("a stack").top());
}
