//! fork, exit/wait, and copy-on-write faults.

use crate::measure::{Reporter, Sample, faults, time};
use crate::memory::{map, read_pages, unmap, write_pages};
use crate::{MIB_16, PAGE};
use user::{Ended, PROT_READ, PROT_WRITE};

/// Waits for the one child, which must have exited with 0.
pub fn reap() -> Result<(), &'static str> {
    match user::wait() {
        Ok((_, Ended::Exited(0))) => Ok(()),
        Ok(_) => Err("a child failed or was killed"),
        Err(_) => Err("wait failed"),
    }
}

/// A page of shared memory through which children report their figures.
pub struct Mailbox {
    base: u64,
    handle: u64,
}

impl Mailbox {
    /// Creates and maps the mailbox.
    pub fn new() -> Result<Mailbox, &'static str> {
        let handle = user::shared_create(PAGE).map_err(|_| "shm create")?;
        let base =
            user::map_shared(handle, 0, PAGE, PROT_READ | PROT_WRITE).map_err(|_| "shm map")?;
        Ok(Mailbox { base, handle })
    }

    /// Stores word `index`.
    pub fn put(&self, index: u64, value: u64) {
        // SAFETY: the mailbox page is mapped read-write for the program's life.
        unsafe { ((self.base + index * 8) as *mut u64).write_volatile(value) };
    }

    /// Loads word `index`.
    pub fn get(&self, index: u64) -> u64 {
        // SAFETY: as in `put`.
        unsafe { ((self.base + index * 8) as *const u64).read_volatile() }
    }

    /// A child's sample stored at words `index`, `index + 1`.
    pub fn sample(&self, index: u64, operations: u64) -> Sample {
        Sample::new(self.get(index), self.get(index + 1), operations)
    }

    /// Times `body` (in a child) and stores cycles and faults at `index`.
    pub fn record(&self, index: u64, body: impl FnOnce()) {
        let faults_before = faults();
        let start = user::cycles();
        body();
        self.put(index, user::cycles() - start);
        self.put(index + 1, faults() - faults_before);
    }

    /// Unmaps and closes the mailbox.
    pub fn close(self) -> Result<(), &'static str> {
        unmap(self.base, PAGE)?;
        user::shared_close(self.handle).map_err(|_| "shm close")
    }
}

/// Every fork benchmark.
pub fn run(reporter: &mut Reporter) -> Result<(), &'static str> {
    let mailbox = Mailbox::new()?;
    for (mebibytes, forks) in [(0u64, 20u64), (1, 10), (16, 4), (64, 2), (256, 1)] {
        fork_and_exit(reporter, &mailbox, mebibytes, forks)?;
    }
    copy_on_write(reporter, &mailbox)?;
    mailbox.close()
}

/// `fork_<n>M` and `exit_wait_<n>M`: fork a process with `mebibytes` touched,
/// then let the child exit and see that through wait. The child waits for word
/// 0 of the mailbox before it exits, so that a timer tick right after the fork
/// cannot make its exit part of the fork's figure.
fn fork_and_exit(
    reporter: &mut Reporter,
    mailbox: &Mailbox,
    mebibytes: u64,
    forks: u64,
) -> Result<(), &'static str> {
    let length = mebibytes << 20;
    let base = if length > 0 { map(length)? } else { 0 };
    write_pages(base, length, 1);
    let (mut fork_samples, mut exit_samples) = ([Sample::default(); 5], [Sample::default(); 5]);
    for (fork_sample, exit_sample) in fork_samples.iter_mut().zip(&mut exit_samples) {
        let (mut fork_cycles, mut exit_cycles, mut fork_faults, mut exit_faults) = (0, 0, 0, 0);
        for _ in 0..forks {
            mailbox.put(0, 0);
            let before = faults();
            let start = user::cycles();
            if user::fork().map_err(|_| "fork failed")? == 0 {
                while mailbox.get(0) == 0 {
                    user::yield_now();
                }
                user::exit(0);
            }
            let forked = user::cycles();
            fork_cycles += forked - start;
            fork_faults += faults() - before;
            let before = faults();
            let released = user::cycles();
            mailbox.put(0, 1);
            reap()?;
            exit_cycles += user::cycles() - released;
            exit_faults += faults() - before;
        }
        *fork_sample = Sample::new(fork_cycles, fork_faults, forks);
        *exit_sample = Sample::new(exit_cycles, exit_faults, forks);
    }
    reporter.report(&name("fork", mebibytes), &fork_samples);
    reporter.report(&name("exit_wait", mebibytes), &exit_samples);
    if length > 0 {
        unmap(base, length)?;
    }
    Ok(())
}

/// `<what>_<n>M`, in a fixed buffer.
fn name(what: &str, mebibytes: u64) -> heapless_name::Name {
    heapless_name::Name::new(what, mebibytes)
}

/// `fork_child_read_noflt`, `cow_fault_child` (both in the child) and
/// `wp_fault_reuse_parent` (in the parent, after the child exited).
fn copy_on_write(reporter: &mut Reporter, mailbox: &Mailbox) -> Result<(), &'static str> {
    let pages = MIB_16 / PAGE;
    let base = map(MIB_16)?;
    let mut samples = [[Sample::default(); 5]; 3];
    for repetition in 0..5 {
        let value = 10 + repetition as u8;
        write_pages(base, MIB_16, value);
        if user::fork().map_err(|_| "fork failed")? == 0 {
            let mut sum = 0;
            mailbox.record(0, || sum = read_pages(base, MIB_16));
            mailbox.record(2, || write_pages(base, MIB_16, 200));
            let isolated =
                sum == u64::from(value) * pages && read_pages(base, MIB_16) == 200 * pages;
            user::exit(if isolated { 0 } else { 1 });
        }
        reap()?;
        if read_pages(base, MIB_16) != u64::from(value) * pages {
            return Err("the child's copy-on-write writes reached the parent");
        }
        samples[0][repetition] = mailbox.sample(0, pages);
        samples[1][repetition] = mailbox.sample(2, pages);
        samples[2][repetition] = time(pages, || write_pages(base, MIB_16, value + 1));
    }
    reporter.report("fork_child_read_noflt", &samples[0]);
    reporter.report("cow_fault_child", &samples[1]);
    reporter.report("wp_fault_reuse_parent", &samples[2]);
    unmap(base, MIB_16)
}

/// Benchmark names built without a heap.
mod heapless_name {
    /// A short name: `<what>_<n>M`.
    pub struct Name {
        bytes: [u8; 32],
        length: usize,
    }

    impl Name {
        /// `what` followed by `_<mebibytes>M`.
        pub fn new(what: &str, mebibytes: u64) -> Name {
            let mut name = Name { bytes: [0; 32], length: 0 };
            let _ = core::fmt::write(&mut name, format_args!("{what}_{mebibytes}M"));
            name
        }
    }

    impl core::fmt::Write for Name {
        fn write_str(&mut self, text: &str) -> core::fmt::Result {
            let end = (self.length + text.len()).min(self.bytes.len());
            self.bytes[self.length..end].copy_from_slice(&text.as_bytes()[..end - self.length]);
            self.length = end;
            Ok(())
        }
    }

    impl core::ops::Deref for Name {
        type Target = str;
        fn deref(&self) -> &str {
            core::str::from_utf8(&self.bytes[..self.length]).unwrap_or("?")
        }
    }
}
