//! The backtrace in a killed process's report: where it was, and the chain of
//! calls that led there.
//!
//! User programs are built with frame pointers (`.cargo/config.toml`), so at a
//! fault the program's RBP is its innermost frame: the caller's RBP, then the
//! return address above it. The walk follows that chain through the program's
//! own memory, read word by word by the caller's reader (the user-memory
//! accessors, which turn any bad address into an error), and trusts nothing:
//! the chain must climb the stack, words must be aligned, and it stops at
//! [`MAX_USER_FRAMES`], at a zero return address (the entry's frame), or at the
//! first word it cannot read. A program built without frame pointers gives a
//! short or wrong chain, never a fault.
//!
//! Names come from the program's symbol table (the ramdisk's `symbols.NAME`
//! file, `crate::symbols`), when it has one; programs are static and linked
//! where they run, so addresses are looked up as they are.

use core::fmt::{self, Write};

/// Most frames a killed process's backtrace shows.
pub const MAX_USER_FRAMES: usize = 16;

/// Where a process was when it was killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserPlace {
    /// The instruction that faulted (or would have run next).
    pub rip: u64,
    /// The program's frame pointer (RBP) then, if the kernel could tell.
    pub frame_pointer: Option<u64>,
}

/// Calls `visit` with `place`'s instruction and then each return address of
/// its frame chain, innermost first; `read` reads one word of the process's
/// memory (`None`: it cannot).
pub fn addresses(
    place: UserPlace,
    mut read: impl FnMut(u64) -> Option<u64>,
    mut visit: impl FnMut(u64),
) {
    visit(place.rip);
    let Some(mut frame) = place.frame_pointer else { return };
    for _ in 1..MAX_USER_FRAMES {
        if frame == 0 || !frame.is_multiple_of(8) {
            return;
        }
        let (Some(next), Some(return_address)) = (read(frame), read(frame.wrapping_add(8))) else {
            return;
        };
        if return_address == 0 {
            return;
        }
        visit(return_address);
        if next <= frame {
            return;
        }
        frame = next;
    }
}

/// Writes `place`'s backtrace, a line per frame after a `backtrace:` line:
/// `  #0 0x201234 crash::faults::undefined_opcode+0x4`, the name and offset
/// from `symbols` (the program's table, in `crate::symbols`'s format) when it
/// has the address.
pub fn write(
    out: &mut impl Write,
    place: UserPlace,
    read: impl FnMut(u64) -> Option<u64>,
    symbols: Option<&str>,
) -> fmt::Result {
    writeln!(out, "backtrace:")?;
    let mut depth = 0;
    let mut result = Ok(());
    addresses(place, read, |address| {
        // A return address follows its call, which may be its function's last
        // instruction: look up the byte before it. The first address is the
        // faulting instruction itself.
        let looked_up = if depth == 0 { address } else { address.wrapping_sub(1) };
        let name = symbols.and_then(|table| crate::symbols::lookup(table, looked_up));
        let line = match name {
            Some((name, offset)) => {
                let offset = offset + address - looked_up;
                writeln!(out, "  #{depth} {address:#x} {name}+{offset:#x}")
            }
            None => writeln!(out, "  #{depth} {address:#x}"),
        };
        result = result.and(line);
        depth += 1;
    });
    result
}

#[cfg(test)]
mod tests;
