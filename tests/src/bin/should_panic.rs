//! The panic path: a test that expects a panic passes only if it panics with the
//! expected message, which proves the panic handler reports and exits correctly.
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::testing;

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::run(&kernel::tests![panics_with_its_message])
}

fn panics_with_its_message() {
    testing::expect_panic("deliberate panic 42");
    let answer = core::hint::black_box(42);
    panic!("deliberate panic {answer}");
}
