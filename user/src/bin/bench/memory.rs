//! Private memory: the cheapest call, first-touch faults, the zeroing floor,
//! mmap/munmap and mprotect.

use crate::measure::{Reporter, Sample, time};
use crate::{MIB_16, MIB_64, PAGE};
use user::{PROT_READ, PROT_WRITE};

const READ_WRITE: u64 = PROT_READ | PROT_WRITE;

/// Writes `value` to the first byte of every page of `[base, base + length)`.
pub fn write_pages(base: u64, length: u64, value: u8) {
    for address in (base..base + length).step_by(PAGE as usize) {
        // SAFETY: the caller mapped the range read-write.
        unsafe { (address as *mut u8).write_volatile(value) };
    }
}

/// Sums the first byte of every page of `[base, base + length)`.
pub fn read_pages(base: u64, length: u64) -> u64 {
    (base..base + length)
        .step_by(PAGE as usize)
        // SAFETY: the caller mapped the range readable.
        .map(|address| u64::from(unsafe { (address as *const u8).read_volatile() }))
        .sum()
}

/// Maps `length` bytes read-write, or fails the check.
pub fn map(length: u64) -> Result<u64, &'static str> {
    user::map_anonymous(length, READ_WRITE).map_err(|_| "mmap failed")
}

/// Unmaps a range the benchmark owns.
pub fn unmap(base: u64, length: u64) -> Result<(), &'static str> {
    // SAFETY: the benchmarks hold no references into their mappings.
    unsafe { user::unmap(base, length) }.map_err(|_| "munmap failed")
}

/// Every private-memory benchmark.
pub fn run(reporter: &mut Reporter) -> Result<(), &'static str> {
    reporter.run("null_syscall_getppid", || {
        time(100_000, || {
            for _ in 0..100_000 {
                core::hint::black_box(user::getpid());
            }
        })
    });
    faults_and_zeroing(reporter)?;
    zero_page_reads(reporter)?;
    map_unmap(reporter)?;
    protect(reporter)
}

/// `anon_write_fault_4k` on fresh memory, then `memset_resident_per_page` and
/// `store_loop_resident_per_page` on it.
///
/// `write_bytes` is a call to the user library's `memset` (unrolled 8-byte
/// stores, `user::mem`); the store loop is the same stores one a loop pass,
/// volatile, for comparison.
fn faults_and_zeroing(reporter: &mut Reporter) -> Result<(), &'static str> {
    let pages = MIB_64 / PAGE;
    let mut resident = [Sample::default(); 5];
    let mut first_touch = [Sample::default(); 5];
    let mut stores = [Sample::default(); 5];
    for ((touch, memset), store) in first_touch.iter_mut().zip(&mut resident).zip(&mut stores) {
        let base = map(MIB_64)?;
        *touch = time(pages, || write_pages(base, MIB_64, 1));
        // SAFETY: the whole range is mapped read-write and referenced by nothing.
        *memset =
            time(pages, || unsafe { core::ptr::write_bytes(base as *mut u8, 7, MIB_64 as usize) });
        if read_pages(base, MIB_64) != 7 * pages {
            return Err("memset contents");
        }
        *store = time(pages, || {
            for address in (base..base + MIB_64).step_by(8) {
                // SAFETY: as above; `address` is 8-byte aligned inside the range.
                unsafe { (address as *mut u64).write_volatile(0x0808_0808_0808_0808) };
            }
        });
        if read_pages(base, MIB_64) != 8 * pages {
            return Err("store loop contents");
        }
        unmap(base, MIB_64)?;
    }
    reporter.report("anon_write_fault_4k", &first_touch);
    reporter.report("memset_resident_per_page", &resident);
    reporter.report("store_loop_resident_per_page", &stores);
    Ok(())
}

/// `anon_read_fault_zeropage` then `write_fault_after_zeropage` on the same pages.
fn zero_page_reads(reporter: &mut Reporter) -> Result<(), &'static str> {
    let pages = MIB_64 / PAGE;
    let (mut reads, mut writes) = ([Sample::default(); 5], [Sample::default(); 5]);
    for (read, write) in reads.iter_mut().zip(&mut writes) {
        let base = map(MIB_64)?;
        let mut sum = 1;
        *read = time(pages, || sum = read_pages(base, MIB_64));
        if sum != 0 {
            return Err("fresh memory is not zero");
        }
        *write = time(pages, || write_pages(base, MIB_64, 2));
        unmap(base, MIB_64)?;
    }
    reporter.report("anon_read_fault_zeropage", &reads);
    reporter.report("write_fault_after_zeropage", &writes);
    Ok(())
}

/// `mmap_munmap_4K`, `mmap_munmap_1M` (untouched) and `munmap_16M_touched_pp`.
fn map_unmap(reporter: &mut Reporter) -> Result<(), &'static str> {
    for (name, length) in [("mmap_munmap_4K", PAGE), ("mmap_munmap_1M", 1 << 20)] {
        let mut failed = false;
        reporter.run(name, || {
            time(20_000, || {
                for _ in 0..20_000 {
                    failed |= map(length).and_then(|base| unmap(base, length)).is_err();
                }
            })
        });
        if failed {
            return Err("mmap/munmap pair failed");
        }
    }
    let mut samples = [Sample::default(); 5];
    for sample in &mut samples {
        let base = map(MIB_16)?;
        write_pages(base, MIB_16, 3);
        let mut result = Ok(());
        *sample = time(MIB_16 / PAGE, || result = unmap(base, MIB_16));
        result?;
    }
    reporter.report("munmap_16M_touched_pp", &samples);
    Ok(())
}

/// `mprotect_1page_call` and `mprotect_16M_call`: read-only, then read-write.
fn protect(reporter: &mut Reporter) -> Result<(), &'static str> {
    for (name, length, calls) in
        [("mprotect_1page_call", PAGE, 2000), ("mprotect_16M_call", MIB_16, 200)]
    {
        let base = map(length)?;
        write_pages(base, length, 4);
        let mut failed = false;
        reporter.run(name, || {
            time(calls, || {
                for call in 0..calls {
                    let protection = if call % 2 == 0 { PROT_READ } else { READ_WRITE };
                    // SAFETY: nothing writes the range while it is read-only.
                    failed |= unsafe { user::protect(base, length, protection) }.is_err();
                }
            })
        });
        if failed || read_pages(base, length) != 4 * (length / PAGE) {
            return Err("mprotect");
        }
        write_pages(base, length, 5); // writable again after an even number of calls
        unmap(base, length)?;
    }
    Ok(())
}
