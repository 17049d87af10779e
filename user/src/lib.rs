//! The user library: system-call wrappers, `print!`, the entry point and the
//! panic handler every user program shares.
//!
//! Programs are `#![no_std]`, `#![no_main]` binaries that name their main
//! function with [`entry!`]. The kernel starts a program at `_start` with one
//! argument in `rdi` (what the spawner asked for; 0 for `init`), and the value
//! `main` returns becomes the exit status.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod console;
pub mod mem;
pub mod syscall;

pub use abi::{self, Ended, Errno, MAP_SHARED, PROT_EXEC, PROT_READ, PROT_WRITE, Statistics};
pub use syscall::*;

/// Defines `_start`, which calls `$main(argument)` and exits with its result.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// Where the kernel starts this program.
        #[unsafe(no_mangle)]
        pub extern "C" fn _start(argument: u64) -> ! {
            let main: fn(u64) -> i32 = $main;
            $crate::exit(main(argument))
        }
    };
}

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("[{}] panic: {}", getpid(), info);
    exit(101)
}
