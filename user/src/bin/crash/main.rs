//! `crash`: does one thing a user program must not be able to get away with,
//! chosen by the start argument, so that a test kernel can check each kind of
//! fault kills the process and only the process.
//!
//! A mode that is not killed falls through and exits with [`ALLOWED`]; the
//! calm and "usable" modes exit with 0 when all went well, which lets a test
//! tell "SSE does not work at all in user mode" from "an SSE fault does not
//! kill". The modes that read system registers UMIP guards (`sgdt`, `smsw`)
//! print what they read, since without UMIP they are allowed. A fault the
//! processor records without raising it exits with [`NOT_RAISED`].
#![no_std]
#![no_main]

mod entries;
mod exhaustion;
mod faults;
mod floating;

use user::println;

user::entry!(main);

/// Bytes in a page.
pub const PAGE: u64 = 4096;
/// An address in neither half of the address space.
pub const NON_CANONICAL: u64 = 0x1234_5678_9abc_def0;

/// Exit status of a mode whose fault the kernel let pass.
pub const ALLOWED: i32 = 0;
/// Exit status of a mode whose fault the processor recorded but did not
/// raise (an emulator that does not implement it), so the kernel never saw it.
pub const NOT_RAISED: i32 = 3;
/// Exit status for a mode this program does not know.
pub const UNKNOWN_MODE: i32 = 100;

/// The modes that need not be killed: calm, the checks that SSE and the x87
/// work at all, and system calls made with odd flags or stack pointers (which
/// the kernel may refuse by killing, or run).
const HARMLESS: [u64; 9] = [0, 12, 14, 21, 22, 23, 25, 26, 28];

/// The argument is the mode; the numbers are shared with the test kernels
/// (`tests/src/lib.rs`, module `crash`).
fn main(mode: u64) -> i32 {
    let kind: fn() = match mode {
        0 => || {},
        1 => faults::undefined_opcode,
        2 => faults::breakpoint,
        3 => faults::software_interrupt,
        4 => faults::sysenter,
        5 => faults::port_in,
        6 => faults::port_out,
        7 => faults::disable_interrupts,
        8 => faults::halt,
        9 => faults::read_msr,
        10 => faults::iret_to_kernel,
        11 => faults::jump_to_non_canonical,
        12 => floating::sse_usable,
        13 => floating::sse_divide_by_zero,
        14 => floating::x87_usable,
        15 => floating::x87_divide_by_zero,
        16 => faults::divide_by_zero,
        17 => faults::read_cr0,
        18 => faults::store_gdt,
        19 => faults::store_machine_status,
        20 => entries::syscall_at_the_top,
        21 => entries::syscall_with_the_trap_flag,
        22 => entries::syscall_with_nested_task,
        23 => entries::yield_with_nested_task,
        24 => faults::icebp,
        25 => entries::syscall_with_a_kernel_stack,
        26 => entries::syscall_with_a_non_canonical_stack,
        27 => faults::undefined_opcode_with_a_non_canonical_stack,
        28 => exhaustion::split_into_regions,
        29 => exhaustion::touch_far_apart,
        30 => entries::system_calls_after_changing_gs,
        _ => {
            println!("crash: unknown mode {mode}");
            return UNKNOWN_MODE;
        }
    };
    kind();
    if !HARMLESS.contains(&mode) {
        println!("crash: mode {mode} was allowed");
    }
    ALLOWED
}
