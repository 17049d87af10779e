//! A panic prints a backtrace that names the functions it went through, from
//! the kernel's own symbol table (the ramdisk's `symbols` file): what a real
//! PC's screen shows when the kernel dies. The test panics three calls deep
//! and passes only if the backtrace names all three.
//! run:
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::testing;

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::run(&kernel::tests![a_panic_backtrace_names_the_functions_it_went_through])
}

fn a_panic_backtrace_names_the_functions_it_went_through() {
    testing::expect_panic_through(
        "deliberately, three calls deep",
        &["backtrace::outermost", "backtrace::middle", "backtrace::innermost"],
    );
    outermost(3);
}

#[inline(never)]
fn outermost(depth: u64) {
    middle(core::hint::black_box(depth));
    core::hint::black_box(depth);
}

#[inline(never)]
fn middle(depth: u64) {
    innermost(core::hint::black_box(depth));
    core::hint::black_box(depth);
}

#[inline(never)]
fn innermost(depth: u64) {
    panic!("deliberately, {} calls deep", ["no", "one", "two", "three"][depth as usize]);
}
