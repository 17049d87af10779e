//! Copying system-call arguments to and from user memory.
//!
//! Built on the fault-safe word accessors of `arch::user_memory`: the range is
//! checked to lie in user space without overflow, then copied a word at a time
//! (partial words at the ends are read, merged and written back — safe because
//! system calls run with interrupts disabled on the only CPU). A fault the VM
//! cannot resolve stops the copy with [`Errno::Fault`]; part of the range may
//! have been written by then.

use abi::Errno;

use crate::arch::user_memory;
use crate::vm::{USER_END, USER_START, VirtAddr};

/// Checks `[address, address + length)` lies in user space; returns its end.
pub fn check_range(address: u64, length: u64) -> Result<u64, Errno> {
    let end = address.checked_add(length).ok_or(Errno::Fault)?;
    if address < USER_START || end > USER_END - 8 {
        return Err(Errno::Fault);
    }
    Ok(end)
}

/// The aligned words covering `[address, end)`.
fn words(address: u64, end: u64) -> impl Iterator<Item = u64> {
    (address & !7..end).step_by(8)
}

/// Fills `buffer` from user memory at `address`.
pub fn copy_from_user(address: u64, buffer: &mut [u8]) -> Result<(), Errno> {
    let end = check_range(address, buffer.len() as u64)?;
    for word in words(address, end) {
        let value = user_memory::read_u64(VirtAddr(word)).map_err(|_| Errno::Fault)?;
        for (index, byte) in value.to_le_bytes().into_iter().enumerate() {
            let at = word + index as u64;
            if (address..end).contains(&at) {
                buffer[(at - address) as usize] = byte;
            }
        }
    }
    Ok(())
}

/// Writes `bytes` to user memory at `address`.
pub fn copy_to_user(address: u64, bytes: &[u8]) -> Result<(), Errno> {
    let end = check_range(address, bytes.len() as u64)?;
    for word in words(address, end) {
        let whole = word >= address && word + 8 <= end;
        let old = if whole {
            0
        } else {
            user_memory::read_u64(VirtAddr(word)).map_err(|_| Errno::Fault)?
        };
        let mut value = old.to_le_bytes();
        for (index, byte) in value.iter_mut().enumerate() {
            let at = word + index as u64;
            if (address..end).contains(&at) {
                *byte = bytes[(at - address) as usize];
            }
        }
        user_memory::write_u64(VirtAddr(word), u64::from_le_bytes(value))
            .map_err(|_| Errno::Fault)?;
    }
    Ok(())
}
