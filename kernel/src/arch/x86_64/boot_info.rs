//! What the bootloader hands over, read once at start-up.

use bootloader_api::info::BootInfo;

/// The boot ramdisk's bytes (empty if there is none): the command line and the
/// programs (see `crate::ramdisk`).
pub fn boot_ramdisk(boot_info: &'static BootInfo) -> &'static [u8] {
    let Some(address) = boot_info.ramdisk_addr.into_option() else {
        return &[];
    };
    // SAFETY: the bootloader maps the ramdisk at `ramdisk_addr` for `ramdisk_len`
    // bytes and never reuses it; the kernel only reads it.
    unsafe { core::slice::from_raw_parts(address as *const u8, boot_info.ramdisk_len as usize) }
}

/// The command line the runner put in the boot ramdisk, or "" if there is none.
///
/// The ramdisk is plain text; anything after the first NUL or newline, or a
/// ramdisk that is not UTF-8, is ignored.
pub fn boot_command_line(boot_info: &'static BootInfo) -> &'static str {
    let Some(address) = boot_info.ramdisk_addr.into_option() else {
        return "";
    };
    let len = boot_info.ramdisk_len as usize;
    // SAFETY: the bootloader maps the ramdisk at `ramdisk_addr` for `ramdisk_len`
    // bytes, read-only in spirit and never reused, for the kernel's lifetime.
    let bytes = unsafe { core::slice::from_raw_parts(address as *const u8, len) };
    let end = bytes.iter().position(|&b| b == 0 || b == b'\n').unwrap_or(len);
    core::str::from_utf8(&bytes[..end]).unwrap_or("")
}
