//! The kernel binary: boots, reports what it found, starts `init`, and hands the
//! console to the monitor, which runs processes while it waits for input (or,
//! with `once`, runs them until they settle and powers off, so that scripts can
//! boot it).
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::arch::{self, ExitCode};
use kernel::cmdline::Benchmarks;

entry_point!(kernel_main, config = &kernel::BOOTLOADER_CONFIG);

fn kernel_main(boot_info: &'static mut BootInfo) -> ! {
    let options = kernel::boot::init(boot_info);
    log::info!("start-up complete");
    if let Some(benchmarks) = options.bench {
        let passed = match benchmarks {
            Benchmarks::Main => kernel::bench::run_all(),
            Benchmarks::Swap => kernel::bench::run_swap(),
            Benchmarks::Processors => kernel::bench::run_processors(),
        };
        if options.once {
            arch::exit(if passed { ExitCode::Success } else { ExitCode::Failure });
        }
    } else if let Err(error) = kernel::process::spawn("init", 0) {
        log::warn!("cannot start init: {error}");
    }
    if options.once {
        kernel::process::run_until_settled();
        kernel::memory::log_statistics();
        log::info!("once: powering off");
        arch::exit(ExitCode::Success);
    }
    kernel::monitor::commands::run()
}
