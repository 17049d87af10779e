//! Asking the kernel for more than it has, in ways that cost it memory of
//! its own: regions and page tables. A limit must be an error or a killed
//! process, never a kernel that runs out.

use user::{PROT_READ, PROT_WRITE, println};

use crate::PAGE;

/// Pages of the mapping `split_into_regions` cuts up.
const SPLIT_PAGES: u64 = 1 << 18;

/// Cuts one large mapping into as many regions as the kernel allows, by
/// write-protecting every other page: each region costs the kernel memory,
/// so there must be a limit that is an error, not the kernel's heap running
/// out.
pub fn split_into_regions() {
    let Ok(base) = user::map_anonymous(SPLIT_PAGES * PAGE, PROT_READ | PROT_WRITE) else { return };
    let mut protected = 0;
    let mut refused = None;
    for page in (0..SPLIT_PAGES).step_by(2) {
        // SAFETY: nothing refers to the mapping.
        match unsafe { user::protect(base + page * PAGE, PAGE, PROT_READ) } {
            Ok(()) => protected += 1,
            Err(errno) => {
                refused = Some(errno);
                break;
            }
        }
    }
    println!("crash: {protected} pages write-protected one by one, then {refused:?}");
    // SAFETY: as above.
    let unmapped = unsafe { user::unmap(base, SPLIT_PAGES * PAGE) };
    println!("crash: unmapping the split mapping: {unmapped:?}");
}

/// Bytes between the pages `touch_far_apart` touches: a page directory and a
/// page table for each.
const GIB: u64 = 1 << 30;
/// Bytes of the mapping `touch_far_apart` touches in.
const FAR: u64 = 1 << 45;

/// Touches one page every GiB of a 32 TiB mapping: few pages, but two page
/// tables each, until the machine runs out of frames for tables. The kernel
/// must kill the process, not fail its own allocation.
pub fn touch_far_apart() {
    let Ok(base) = user::map_anonymous(FAR, PROT_READ | PROT_WRITE) else {
        println!("crash: no 32 TiB mapping");
        return;
    };
    for offset in (0..FAR).step_by(GIB as usize) {
        // SAFETY: a word of the mapping, which nothing else uses.
        unsafe { core::ptr::write_volatile((base + offset) as *mut u64, offset) };
    }
    println!("crash: {} pages touched a GiB apart", FAR / GIB);
}
