//! The screen console: log lines reach the framebuffer, which is mapped
//! write-combining. Booted through BIOS and UEFI (different framebuffers).
//! run:
//! run: --uefi
#![no_std]
#![no_main]

use bootloader_api::{BootInfo, entry_point};
use kernel::{console, testing};

entry_point!(main, config = &kernel::BOOTLOADER_CONFIG);

fn main(boot_info: &'static mut BootInfo) -> ! {
    kernel::boot::init(boot_info);
    testing::run(&kernel::tests![log_lines_reach_the_screen, framebuffer_is_write_combining])
}

/// Bytes of the framebuffer that are not black.
fn lit_bytes() -> usize {
    let (start, len) = console::framebuffer_range().expect("no screen");
    // SAFETY: the framebuffer is mapped for `len` bytes at `start` for the
    // kernel's lifetime; reading it races only with the console, which this
    // test does not run concurrently (one CPU, no printing meanwhile).
    let pixels = unsafe { core::slice::from_raw_parts(start as *const u8, len) };
    pixels.iter().filter(|&&byte| byte != 0).count()
}

fn log_lines_reach_the_screen() {
    let rows = console::screen_rows().expect("no screen");
    for _ in 0..rows {
        console::write_screen_only("\n");
    }
    assert_eq!(lit_bytes(), 0, "scrolling blank lines did not clear the screen");
    log::info!("a line for the screen");
    assert!(lit_bytes() > 100, "the log line did not reach the framebuffer");
}

fn framebuffer_is_write_combining() {
    let (start, len) = console::framebuffer_range().expect("no screen");
    for address in [start, start + len as u64 / 2, start + len as u64 - 1] {
        assert!(
            kernel::arch::pat::is_write_combining(address),
            "{address:#x} is not write-combining"
        );
    }
}
