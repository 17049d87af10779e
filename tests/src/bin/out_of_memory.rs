//! Running out of frames through fork, on the smallest machine BIOS boots
//! (21 MiB): a process touches 8 MiB and forks children that share it until
//! fork fails. Fork shares the page store's chunks and copies no page, so a
//! child costs only its kernel stack and the heap and tables it needs, and on
//! its own 21 MiB would let the process table (128 entries, `TryAgain`) run
//! out first: the test holds every frame but the probe's 8 MiB and a margin
//! of [`MARGIN`] while it runs. The failure must be `NoMemory` from fork
//! itself, never a kernel panic; every child then checks its memory and exits,
//! and every frame comes back.
//! programs: probe
//! Without swap (`swap_pool=0`): running out of frames is the point here.
//! run: --memory 21M --kernel-arg swap_pool=0
//! timeout: 300
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::testing;
use kernel_tests::probe::FORK_UNTIL_OUT_OF_MEMORY;
use kernel_tests::{hold_frames_but, release_frames, run_probe, warm_up_with_probe};

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::start();
    warm_up_with_probe();
    testing::run(&kernel::tests![forking_until_memory_runs_out_is_an_error])
}

/// Frames left free beside the probe's 8 MiB: its own start-up, and a few
/// dozen children's kernel stacks, heap and page tables.
const MARGIN: usize = 400;

/// Pages the probe touches before it forks.
const PROBE_PAGES: usize = 2048;

fn forking_until_memory_runs_out_is_an_error() {
    let held = hold_frames_but(PROBE_PAGES + MARGIN);
    run_probe(FORK_UNTIL_OUT_OF_MEMORY);
    release_frames(held);
}
