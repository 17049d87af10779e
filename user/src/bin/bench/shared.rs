//! Shared memory: first touch and existing pages in children, and the discard
//! of a shared region's translations with the rebuild faults that follow.

use crate::fork::{Mailbox, reap};
use crate::measure::{Reporter, Sample, time};
use crate::memory::{read_pages, unmap, write_pages};
use crate::{MIB_16, PAGE};
use user::{PROT_READ, PROT_WRITE};

/// Read and write.
const READ_WRITE: u64 = PROT_READ | PROT_WRITE;

/// A mapped shared-memory object of `length` bytes: (address, handle).
fn shared(length: u64) -> Result<(u64, u64), &'static str> {
    let handle = user::shared_create(length).map_err(|_| "shm create")?;
    let base =
        user::map_shared(handle, 0, length, PROT_READ | PROT_WRITE).map_err(|_| "shm map")?;
    Ok((base, handle))
}

/// Unmaps and closes a shared object.
fn release(base: u64, handle: u64, length: u64) -> Result<(), &'static str> {
    unmap(base, length)?;
    user::shared_close(handle).map_err(|_| "shm close")
}

/// Every shared-memory benchmark.
pub fn run(reporter: &mut Reporter) -> Result<(), &'static str> {
    children(reporter)?;
    zap_and_rebuild(reporter)?;
    zap_sparse_user_half(reporter)
}

/// `zap_sparse_user_half`: `zap` of the whole user half of a space with a page
/// at each end (and the program's own regions), which costs the regions, not
/// the 2^35 pages of the range. The faults are the rebuilds of the program's
/// own code and stack pages on the way back.
fn zap_sparse_user_half(reporter: &mut Reporter) -> Result<(), &'static str> {
    let top = user::abi::USER_END - PAGE;
    // SAFETY: a fresh mapping at the top page, which this program does not use.
    let mapped = unsafe { user::raw(user::abi::MMAP, [top, PAGE, READ_WRITE, 0, 0, 0]) };
    if mapped != top {
        return Err("cannot map the top page");
    }
    let low = user::map_anonymous(PAGE, READ_WRITE).map_err(|_| "map")?;
    write_pages(low, PAGE, 40);
    write_pages(top, PAGE, 41);
    let mut zaps = [Sample::default(); 5];
    for sample in &mut zaps {
        let mut result = Ok(());
        *sample = time(1, || result = user::zap(PAGE, user::abi::USER_END - PAGE));
        result.map_err(|_| "zap of the user half failed")?;
    }
    if read_pages(low, PAGE) != 40 || read_pages(top, PAGE) != 41 {
        return Err("contents lost across a zap of the user half");
    }
    reporter.report("zap_sparse_user_half", &zaps);
    // SAFETY: nothing refers to the two pages any more.
    unsafe { user::unmap(low, PAGE).and(user::unmap(top, PAGE)) }.map_err(|_| "unmap")
}

/// Runs `body` in a child that exits with 0, and waits for it.
fn in_child(body: impl FnOnce()) -> Result<(), &'static str> {
    if user::fork().map_err(|_| "fork failed")? == 0 {
        body();
        user::exit(0);
    }
    reap()
}

/// `shm_child_firsttouch_fault`: a child touches a fresh shared region first;
/// `shm_child_write_existing`: after the parent touched it, another child
/// writes it again.
fn children(reporter: &mut Reporter) -> Result<(), &'static str> {
    let pages = MIB_16 / PAGE;
    let mailbox = Mailbox::new()?;
    let (mut first, mut existing) = ([Sample::default(); 5], [Sample::default(); 5]);
    for repetition in 0..5 {
        let (base, handle) = shared(MIB_16)?;
        in_child(|| mailbox.record(0, || write_pages(base, MIB_16, 21)))?;
        if read_pages(base, MIB_16) != 21 * pages {
            return Err("a child's writes to shared memory are not seen by its parent");
        }
        write_pages(base, MIB_16, 22);
        in_child(|| mailbox.record(2, || write_pages(base, MIB_16, 23)))?;
        if read_pages(base, MIB_16) != 23 * pages {
            return Err("the second child's shared writes are not seen");
        }
        first[repetition] = mailbox.sample(0, pages);
        existing[repetition] = mailbox.sample(2, pages);
        release(base, handle, MIB_16)?;
    }
    reporter.report("shm_child_firsttouch_fault", &first);
    reporter.report("shm_child_write_existing", &existing);
    mailbox.close()
}

/// `shm_zap_ptes_pp`: discard a touched shared region's translations;
/// `shm_refault_write`: write every page again (rebuild faults).
fn zap_and_rebuild(reporter: &mut Reporter) -> Result<(), &'static str> {
    let pages = MIB_16 / PAGE;
    let (base, handle) = shared(MIB_16)?;
    write_pages(base, MIB_16, 30);
    let (mut zaps, mut refaults) = ([Sample::default(); 5], [Sample::default(); 5]);
    for repetition in 0..5 {
        let mut result = Ok(());
        zaps[repetition] = time(pages, || result = user::zap(base, MIB_16));
        result.map_err(|_| "zap failed")?;
        let value = 31 + repetition as u8;
        refaults[repetition] = time(pages, || write_pages(base, MIB_16, value));
        if read_pages(base, MIB_16) != u64::from(value) * pages {
            return Err("contents lost across a zap");
        }
    }
    reporter.report("shm_zap_ptes_pp", &zaps);
    reporter.report("shm_refault_write", &refaults);
    release(base, handle, MIB_16)
}
