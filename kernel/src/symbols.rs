//! The kernel's own function names, for the backtraces it prints.
//!
//! The runner puts a `symbols` file in the boot ramdisk, made from the very
//! kernel ELF the image boots (`boot/src/symbols.rs`): one line per function,
//! sorted by address, `ADDRESS SIZE NAME` in hexadecimal, addresses as linked.
//! The bootloader loads the kernel at an offset it reports, so a return address
//! is looked up less that offset. Nothing here allocates: a panic may be
//! reporting that the heap is gone.

use spin::Once;

/// The table and the load offset, once boot has found them.
static TABLE: Once<(&'static str, u64)> = Once::new();

/// Installs the symbol table (the ramdisk's `symbols` file, if it has one)
/// and the offset the kernel was loaded at.
pub fn set(table: Option<&'static [u8]>, offset: u64) {
    let text = table.and_then(|bytes| core::str::from_utf8(bytes).ok()).unwrap_or("");
    TABLE.call_once(|| (text, offset));
}

/// The function containing the running kernel's `address`, and how far into
/// it `address` is.
pub fn resolve(address: u64) -> Option<(&'static str, u64)> {
    let (table, offset) = TABLE.get()?;
    lookup(table, address.checked_sub(*offset)?)
}

/// The function that a call returning to `address` was made from, and the
/// offset of `address` in it. The call is the instruction before `address`,
/// which may be the function's last, so `address` itself may lie past its end.
pub fn resolve_return(address: u64) -> Option<(&'static str, u64)> {
    let (name, offset) = resolve(address.checked_sub(1)?)?;
    Some((name, offset + 1))
}

/// The function of `table` containing the linked address `address`.
pub fn lookup(table: &str, address: u64) -> Option<(&str, u64)> {
    table.lines().find_map(|line| {
        let mut fields = line.splitn(3, ' ');
        let start = u64::from_str_radix(fields.next()?, 16).ok()?;
        let size = u64::from_str_radix(fields.next()?, 16).ok()?;
        let name = fields.next()?;
        (start <= address && address - start < size).then(|| (name, address - start))
    })
}

#[cfg(test)]
mod tests;
