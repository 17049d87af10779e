//! Exceptions are caught and reported: a deliberate page fault in kernel mode
//! must panic with its vector, the faulting address (CR2) and the decoded error
//! bits; a breakpoint must return. Booted through BIOS and through UEFI.
//! run:
//! run: --uefi
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use bootloader_api::{BootInfo, entry_point};
use kernel::testing;

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::run(&kernel::tests![breakpoint_returns, page_fault_reports_cr2])
}

fn breakpoint_returns() {
    x86_64::instructions::interrupts::int3();
}

/// An address in the lower half that nothing maps.
const UNMAPPED: u64 = 0x0000_0dea_dbee_f000;

/// The expected text is made from [`UNMAPPED`], and the bracket after the
/// address ends it, so a fault at any other address fails the test.
fn page_fault_reports_cr2() {
    testing::expect_panic(
        format!("PAGE FAULT (vector 14) error=0x0 cr2={UNMAPPED:#x} [not-present read kernel]")
            .leak(),
    );
    let pointer = UNMAPPED as *const u64;
    // SAFETY: deliberately unsound: the read must fault, and the fault handler
    // never returns to this code.
    let value = unsafe { pointer.read_volatile() };
    panic!("read of unmapped memory returned {value}");
}
