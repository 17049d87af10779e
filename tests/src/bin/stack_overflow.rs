//! Running off the end of the kernel stack: the page fault on the guard page
//! below the stack cannot be delivered on that stack, so it becomes a double
//! fault, whose handler runs on a stack of its own and reports the overflow
//! instead of the kernel silently corrupting whatever lies below.
//! run:
//! run: --bochs
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::testing;

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::run(&kernel::tests![deep_recursion_is_reported_as_a_stack_overflow])
}

fn deep_recursion_is_reported_as_a_stack_overflow() {
    testing::expect_panic("kernel stack overflow (guard page hit at");
    let depth = recurse(core::hint::black_box(u64::MAX));
    panic!("recursion returned {depth} without overflowing the stack");
}

/// Uses a kilobyte of stack per level until `levels` run out.
#[inline(never)]
fn recurse(levels: u64) -> u64 {
    let mut frame = [0u8; 1024];
    core::hint::black_box(&mut frame);
    if levels == 0 {
        return 0;
    }
    recurse(levels - 1) + u64::from(frame[levels as usize % 1024])
}
