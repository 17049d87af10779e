//! Running out of frames through fork, on the smallest machine BIOS boots
//! (21 MiB): a process touches 8 MiB and forks children that share it until
//! fork fails. Fork shares the page store's chunks and copies no page, so a
//! child costs only its kernel stack and the heap and tables it needs, and on
//! its own 21 MiB would let the process table (128 entries, `TryAgain`) run
//! out first: the test holds every frame but the probe's 8 MiB and a margin
//! of [`MARGIN`] while it runs. The failure must be `NoMemory` from fork
//! itself, never a kernel panic; every child then checks its memory and exits
//! (or, if fork took the last frames a child needed to run, is killed by the
//! out-of-memory policy: never any other end), and every frame comes back.
//! And the out-of-memory policy: when a fault finds nothing to reclaim, the
//! largest process is killed, not the one that faulted.
//! programs: probe swapper
//! Without swap (`swap_pool=0`): running out of frames is the point here.
//! run: --memory 21M --kernel-arg swap_pool=0
//! timeout: 300
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::process::{self, State};
use kernel::testing;
use kernel_tests::probe::FORK_UNTIL_OUT_OF_MEMORY;
use kernel_tests::swapper::{BIG, HOLD, argument};
use kernel_tests::{
    accounted_free, assert_all_reaped, hold_frames_but, release_frames, run_probe, run_until,
    warm_up_with, warm_up_with_probe,
};

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::start();
    warm_up_with_probe();
    warm_up_with("swapper", argument(BIG, 1));
    testing::run(&kernel::tests![
        forking_until_memory_runs_out_is_an_error,
        running_out_kills_the_largest_not_the_one_that_faulted,
    ])
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

/// A process writes 6 MiB and sleeps; then, with too few frames left and no
/// swap, a small one writes 1 MiB. Its fault finds nothing to reclaim, so the
/// policy kills the largest process, the sleeper, and the small one carries
/// on to the end.
fn running_out_kills_the_largest_not_the_one_that_faulted() {
    let baseline = accounted_free();
    let big = process::spawn("swapper", argument(HOLD, 6)).expect("spawn the large process");
    let asleep = || {
        process::processes()
            .iter()
            .any(|summary| summary.pid == big && matches!(summary.state, State::Sleeping(_)))
    };
    run_until("the large process fills its memory", 60, asleep);
    let held = hold_frames_but(120);
    let small = process::spawn("swapper", argument(BIG, 1)).expect("spawn the small process");
    let small_status = process::wait_for(small);
    release_frames(held);
    // Still asleep if the policy took the wrong one: end it.
    let killed_here = process::kill(big);
    let big_status = process::wait_for(big);
    assert!(!killed_here, "the large process was still alive");
    assert_eq!(small_status, Some(0), "the process that faulted did not carry on");
    assert_eq!(big_status, Some(abi::KILLED), "the largest process was not the one killed");
    assert_all_reaped();
    assert_eq!(accounted_free(), baseline, "frames leaked");
}
