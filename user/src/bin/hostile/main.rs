//! Attacks on the user/kernel boundary, one per mode (the start argument's low
//! byte): each is something a hostile program once did to break, hang or spy
//! on the kernel. A mode returns 0 when the kernel held: the call failed
//! cleanly, or only the attacking process died, and what the process can see
//! is what it should. The kernel's test (`tests/src/bin/boundary.rs`) checks
//! the rest: the kernel lives, every process is reaped, every frame and every
//! byte of heap comes back.
#![no_std]
#![no_main]

use user::{Ended, Errno, println};

mod attacks;
mod fpu;

user::entry!(main);

/// Bytes in a page.
pub const PAGE: u64 = 4096;

/// The argument's low byte is the mode.
fn main(argument: u64) -> i32 {
    let mode = argument & 0xff;
    let held = match mode {
        1 => attacks::nested_task_flag(),
        2 => attacks::sysret_to_the_canonical_edge(),
        3 => attacks::zap_the_whole_user_half(),
        4 => attacks::split_regions_without_end(),
        5 => fpu::state_is_per_process(),
        6 => attacks::fork_bomb(false),
        7 => attacks::fork_bomb(true),
        8 => attacks::page_table_cache_is_not_for_children(),
        9 => attacks::huge_write_is_cut_short(),
        10 => true,
        _ => {
            println!("hostile: unknown mode {mode}");
            false
        }
    };
    if held { 0 } else { 1 }
}

/// Fails the check with a message if `result` is not `expected`.
pub fn expect<T: core::fmt::Debug + PartialEq>(what: &str, result: T, expected: T) -> bool {
    if result == expected {
        return true;
    }
    println!("hostile: {what}: got {result:?}, expected {expected:?}");
    false
}

/// `fork`, running `child` in the child (its result is the exit status).
pub fn spawn(child: impl FnOnce() -> bool) -> Result<u64, Errno> {
    match user::fork()? {
        0 => user::exit(if child() { 0 } else { 1 }),
        pid => Ok(pid),
    }
}

/// Waits for one child and says how it ended (`Exited(-1)` if waiting failed).
pub fn reap() -> Ended {
    match user::wait() {
        Ok((_, ended)) => ended,
        Err(errno) => {
            println!("hostile: wait failed: {errno:?}");
            Ended::Exited(-1)
        }
    }
}
