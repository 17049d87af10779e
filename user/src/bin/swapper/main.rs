//! Programs larger than memory, for the reclaim tests and benchmarks: each
//! mode touches more memory than the machine has and checks every byte of it
//! afterwards, so that a page lost or mixed up on its way to swap and back is
//! caught. The argument's low byte is the mode, the next bytes the size in
//! MiB; the exit status is 0 when every check held.
//!
//! A page's contents are derived from its number and a seed: 256 bytes that
//! look random, repeated to fill the page. A compressed pool shrinks that to
//! about a tenth, and every byte still says which page and which write it
//! came from.
#![no_std]
#![no_main]

use user::{Ended, Errno, PROT_READ, PROT_WRITE, println};

user::entry!(main);

/// Bytes in a page.
const PAGE: u64 = 4096;
/// Words in a page.
const WORDS: usize = PAGE as usize / 8;
/// Words that differ within a page; the rest repeat them.
const DISTINCT: usize = 32;
/// Read and write.
const READ_WRITE: u64 = PROT_READ | PROT_WRITE;

/// Touches every page, then checks them all in order and out of order.
pub const BIG: u64 = 1;
/// Touches, forks, and both sides write parts and check everything.
pub const FORK: u64 = 2;
/// Private memory larger than the machine beside a shared object both sides use.
pub const SHARED: u64 = 3;
/// Writes every page, then touches each twice more in order (a benchmark).
pub const THRASH_SEQUENTIAL: u64 = 4;
/// Writes every page, then touches each twice more out of order.
pub const THRASH_RANDOM: u64 = 5;
/// Writes every page, then sleeps for good (a large process for the
/// out-of-memory policy to find).
pub const HOLD: u64 = 6;

fn main(argument: u64) -> i32 {
    let mode = argument & 0xff;
    let pages = (argument >> 8) * 256;
    let passed = match mode {
        BIG => big(pages),
        FORK => fork(pages),
        SHARED => shared(pages),
        THRASH_SEQUENTIAL => thrash(pages, false),
        THRASH_RANDOM => thrash(pages, true),
        HOLD => hold(pages),
        _ => {
            println!("swapper: unknown mode {mode}");
            false
        }
    };
    if passed { 0 } else { 1 }
}

/// Word `index` of page `page` written with `seed`.
fn expected(page: u64, index: usize, seed: u64) -> u64 {
    let mut x = (page << 8 | (index % DISTINCT) as u64) ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x
}

/// The words of page `page` of the mapping at `base`.
fn page_words(base: u64, page: u64) -> &'static mut [u64] {
    // SAFETY: `base` is a read-write mapping this program made and never
    // unmaps, at least `page + 1` pages long; each call's slice is used
    // before the next call makes another over the same page.
    unsafe { core::slice::from_raw_parts_mut((base + page * PAGE) as *mut u64, WORDS) }
}

/// Writes page `page` with `seed`.
fn fill(base: u64, page: u64, seed: u64) {
    for (index, word) in page_words(base, page).iter_mut().enumerate() {
        *word = expected(page, index, seed);
    }
}

/// Whether page `page` holds what `seed` wrote; says where it does not.
fn check(base: u64, page: u64, seed: u64) -> bool {
    let words = page_words(base, page);
    for (index, word) in words.iter().enumerate() {
        if *word != expected(page, index, seed) {
            println!(
                "swapper: page {page} word {index}: {word:#x}, expected {:#x} (seed {seed})",
                expected(page, index, seed)
            );
            return false;
        }
    }
    true
}

/// Pages in an order that jumps around: a multiplicative walk (the step is
/// odd, so every page of a power-of-two count is met once).
fn scattered(pages: u64) -> impl Iterator<Item = u64> {
    let size = pages.next_power_of_two();
    (0..size)
        .map(move |i| (i.wrapping_mul(0x9e37_79b9) + 12_345) % size)
        .filter(move |p| *p < pages)
}

/// Maps `pages` pages, or says why not.
fn map(pages: u64) -> Option<u64> {
    match user::map_anonymous(pages * PAGE, READ_WRITE) {
        Ok(base) => Some(base),
        Err(errno) => {
            println!("swapper: mmap of {pages} pages failed: {errno:?}");
            None
        }
    }
}

fn big(pages: u64) -> bool {
    let Some(base) = map(pages) else { return false };
    (0..pages).for_each(|page| fill(base, page, 1));
    let mut passed = (0..pages).all(|page| check(base, page, 1));
    passed &= scattered(pages).all(|page| check(base, page, 1));
    // Rewrite every other page: pages read back from swap and written again
    // must go out again, the others may be dropped.
    (0..pages).step_by(2).for_each(|page| fill(base, page, 2));
    passed & (0..pages).all(|page| check(base, page, if page % 2 == 0 { 2 } else { 1 }))
}

/// Touches every page three times, checking and changing its first word
/// (the benchmark times the whole run).
fn thrash(pages: u64, random: bool) -> bool {
    let Some(base) = map(pages) else { return false };
    (0..pages).for_each(|page| fill(base, page, 1));
    let mut passed = true;
    for pass in 0..2u64 {
        let mut touch = |page: u64| {
            let word = &mut page_words(base, page)[0];
            passed &= *word == expected(page, 0, 1) + pass;
            *word += 1;
        };
        if random { scattered(pages).for_each(&mut touch) } else { (0..pages).for_each(touch) }
    }
    if !passed {
        println!("swapper: a touched page lost its contents");
    }
    passed
}

/// Writes every page and sleeps for good.
fn hold(pages: u64) -> bool {
    let Some(base) = map(pages) else { return false };
    (0..pages).for_each(|page| fill(base, page, 1));
    loop {
        user::sleep(1000);
    }
}

fn fork(pages: u64) -> bool {
    let Some(base) = map(pages) else { return false };
    (0..pages).for_each(|page| fill(base, page, 1));
    let child = spawn(|| {
        let mut passed = (0..pages).all(|page| check(base, page, 1));
        (1..pages).step_by(2).for_each(|page| fill(base, page, 3));
        passed &= scattered(pages).all(|page| check(base, page, if page % 2 == 1 { 3 } else { 1 }));
        passed
    });
    (0..pages).step_by(2).for_each(|page| fill(base, page, 4));
    let passed = scattered(pages).all(|page| check(base, page, if page % 2 == 0 { 4 } else { 1 }));
    passed & (child.is_ok() && expect_child(reap()))
}

/// Whether the child ended well; says how it ended if not.
fn expect_child(ended: Ended) -> bool {
    if ended != Ended::Exited(0) {
        println!("swapper: the child ended with {ended:?}");
    }
    ended == Ended::Exited(0)
}

fn shared(pages: u64) -> bool {
    const SHARED_PAGES: u64 = 256;
    let Ok(handle) = user::shared_create(SHARED_PAGES * PAGE) else { return false };
    let Ok(common) = user::map_shared(handle, 0, SHARED_PAGES * PAGE, READ_WRITE) else {
        return false;
    };
    let Some(base) = map(pages) else { return false };
    let child = spawn(|| {
        (0..SHARED_PAGES).for_each(|page| fill(common, page, 5));
        (0..pages).for_each(|page| fill(base, page, 6));
        (0..pages).all(|page| check(base, page, 6))
    });
    (0..pages).for_each(|page| fill(base, page, 7));
    let ended = reap();
    let mut passed = (0..pages).all(|page| check(base, page, 7));
    passed &= (0..SHARED_PAGES).all(|page| check(common, page, 5));
    passed & child.is_ok() & expect_child(ended) & user::shared_close(handle).is_ok()
}

/// `fork`, running `child` in the child (its result is the exit status).
fn spawn(child: impl FnOnce() -> bool) -> Result<u64, Errno> {
    match user::fork() {
        Ok(0) => user::exit(if child() { 0 } else { 1 }),
        Ok(pid) => Ok(pid),
        Err(errno) => {
            println!("swapper: fork failed: {errno:?}");
            Err(errno)
        }
    }
}

/// Waits for a child.
fn reap() -> Ended {
    match user::wait() {
        Ok((_, ended)) => ended,
        Err(errno) => {
            println!("swapper: wait failed: {errno:?}");
            Ended::Exited(-1)
        }
    }
}
