//! Running out of frames through fork, on the smallest machine BIOS boots
//! (21 MiB, about 14 MiB of it free after start-up): a process touches 8 MiB
//! and forks children that share it until fork fails (after about 30: each
//! child takes a kernel stack, the heap for its copy of the page map, page
//! tables). The failure must be `NoMemory` from fork itself, never a kernel
//! panic; every child then checks its memory and exits, and every frame comes
//! back. (With less memory per child the process table, 128 entries, runs out
//! first, with `TryAgain`.)
//! programs: probe
//! run: --memory 21M
//! timeout: 300
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::testing;
use kernel_tests::probe::FORK_UNTIL_OUT_OF_MEMORY;
use kernel_tests::{run_probe, warm_up_with_probe};

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::start();
    warm_up_with_probe();
    testing::run(&kernel::tests![forking_until_memory_runs_out_is_an_error])
}

fn forking_until_memory_runs_out_is_an_error() {
    run_probe(FORK_UNTIL_OUT_OF_MEMORY);
}
