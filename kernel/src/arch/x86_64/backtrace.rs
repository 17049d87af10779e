//! Walking the kernel's frame-pointer chain, for the backtrace of a panic, and
//! finding in it the frame pointer of user code an exception interrupted.
//!
//! The kernel is built with frame pointers (`.cargo/config.toml`), so every
//! frame starts with the caller's RBP and the return address above it. The
//! walk follows that chain from the current RBP, and trusts nothing: each word
//! is read only if its page is mapped (looked up in the page tables, read
//! through the physical map, no locks and no allocation), the chain must climb
//! the stack, and it stops after [`MAX_FRAMES`].

use core::arch::asm;

use crate::memory;

/// Most frames a backtrace shows.
pub const MAX_FRAMES: usize = 24;
/// The first kernel-half address: frames live there.
const KERNEL_HALF: u64 = 0xffff_8000_0000_0000;
/// Present, and huge page (levels 3 and 2).
const PRESENT: u64 = 1;
const HUGE: u64 = 1 << 7;
/// The physical-address bits of an entry.
const ADDRESS_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Calls `visit` with each return address of the chain, innermost first.
pub fn return_addresses(mut visit: impl FnMut(u64)) {
    let mut frame: u64;
    // SAFETY: reads RBP, nothing else.
    unsafe { asm!("mov {}, rbp", out(reg) frame, options(nomem, nostack, preserves_flags)) };
    for _ in 0..MAX_FRAMES {
        let sane = frame >= KERNEL_HALF && frame.is_multiple_of(8);
        if !sane || !mapped(frame) || !mapped(frame + 8) {
            return;
        }
        // SAFETY: both words are in mapped kernel pages (checked just above);
        // reading them cannot fault, and a wrong value only ends the walk.
        let (next, return_address) = unsafe {
            ((frame as *const u64).read_volatile(), ((frame + 8) as *const u64).read_volatile())
        };
        if return_address < KERNEL_HALF {
            return;
        }
        visit(return_address);
        if next <= frame {
            return;
        }
        frame = next;
    }
}

/// The frame pointer (RBP) of the user code that the exception being handled
/// interrupted at `rip` with code segment `cs`, if the chain shows it.
///
/// The CPU leaves RBP alone when it enters a handler, and the handler's
/// prologue pushes it, so the user's RBP is the word saved by the outermost
/// frame of the chain: the handler's, which sits right under the interrupt
/// frame the CPU pushed (RIP, CS, ..., after an error code for some vectors).
/// That frame is recognised by those two words, never by the saved value
/// itself, which the program chose.
pub fn user_frame_pointer(rip: u64, cs: u64) -> Option<u64> {
    let mut frame: u64;
    // SAFETY: reads RBP, nothing else.
    unsafe { asm!("mov {}, rbp", out(reg) frame, options(nomem, nostack, preserves_flags)) };
    let word = |address: u64| {
        // SAFETY: the word is in a mapped kernel page (checked); reading it
        // cannot fault, and a wrong value only ends the search.
        (address >= KERNEL_HALF && address.is_multiple_of(8) && mapped(address))
            .then(|| unsafe { (address as *const u64).read_volatile() })
    };
    for _ in 0..MAX_FRAMES {
        let interrupt_frame = |at: u64| Some(word(at)? == rip && word(at + 8)? == cs);
        if interrupt_frame(frame + 8)? || interrupt_frame(frame + 16)? {
            return word(frame);
        }
        let next = word(frame)?;
        if next <= frame {
            return None;
        }
        frame = next;
    }
    None
}

/// Whether `address` is mapped in the loaded page tables (which all share the
/// kernel half).
fn mapped(address: u64) -> bool {
    let offset = memory::physical_offset();
    if offset == 0 {
        return false;
    }
    let (root, _) = x86_64::registers::control::Cr3::read_raw();
    let mut table = root.start_address().as_u64();
    for level in (1..=4u32).rev() {
        let index = (address >> (12 + 9 * (level - 1))) & 0x1ff;
        // SAFETY: `table` is a page-table page of the loaded tables, reached
        // through the physical map, which covers all of physical memory; the
        // read is of one aligned word inside it.
        let entry = unsafe { ((offset + table + index * 8) as *const u64).read_volatile() };
        if entry & PRESENT == 0 {
            return false;
        }
        if level == 1 || (level <= 3 && entry & HUGE != 0) {
            return true;
        }
        table = entry & ADDRESS_MASK;
    }
    false
}
