//! The page the fuzzing child shares with its parent: the call the child is
//! about to make (its index, number, arguments and flags) and how many breaches it
//! saw, and how many calls of each number succeeded and failed (the parent
//! adds those up, to show which calls got past the argument checks at all).
//! When the child is killed, the parent reads where it stopped, starts
//! the next child after that call, and can say which call it was.
//!
//! The child's own calls can unmap the page, protect it, or have the kernel
//! write over it, so each record carries a check word: a record that does not
//! match it is not believed.

use core::ptr::{read_volatile, write_volatile};

use user::{Errno, PROT_READ, PROT_WRITE};

use crate::calls::{Call, PAGE};

/// Mixed into the check word, so that zeros do not pass for a record.
const MAGIC: u64 = 0x5eed_f0cc_c0de_0001;

/// The record's layout in the shared page, in words.
#[repr(C)]
#[derive(Clone, Copy)]
struct Record {
    index: u64,
    number: u64,
    arguments: [u64; 6],
    flags: u64,
    check: u64,
    breaches: u64,
}

impl Record {
    /// The check word of the index, number and arguments.
    fn checksum(&self) -> u64 {
        let words = [self.index, self.number, self.flags].into_iter().chain(self.arguments);
        words.fold(MAGIC, |sum, word| (sum ^ word).rotate_left(13).wrapping_mul(0x9e37_79b9))
    }
}

/// Call numbers counted apart: the known ones, then one slot for the rest.
pub const COUNTED: usize = 16;

/// How many calls of each number succeeded and failed, after the record.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Outcomes {
    /// Calls that returned a value, by number.
    pub succeeded: [u64; COUNTED],
    /// Calls that returned an error, by number.
    pub failed: [u64; COUNTED],
}

/// The shared page, mapped in the parent (and so in every child it forks).
pub struct Progress {
    handle: u64,
    record: *mut Record,
}

impl Progress {
    /// Creates and maps the page.
    pub fn create() -> Result<Progress, Errno> {
        let handle = user::shared_create(PAGE)?;
        let address = user::map_shared(handle, 0, PAGE, PROT_READ | PROT_WRITE)?;
        Ok(Progress { handle, record: address as *mut Record })
    }

    /// Records that call `index` is about to be made as `call`.
    pub fn record(&self, index: u64, call: &Call) {
        let mut record = self.read();
        record.index = index;
        record.number = call.number;
        record.arguments = call.arguments;
        record.flags = call.flags;
        record.check = record.checksum();
        self.write(record);
    }

    /// Counts a breach the child saw; returns how many it saw before.
    pub fn count_breach(&self) -> u64 {
        let mut record = self.read();
        record.breaches += 1;
        self.write(record);
        record.breaches - 1
    }

    /// Counts a call of `number` that succeeded or failed.
    pub fn count_outcome(&self, number: u64, succeeded: bool) {
        let slot = (number as usize).min(COUNTED - 1);
        let outcomes = self.outcomes();
        // SAFETY: the word is in the shared page (see `read`).
        unsafe {
            let word = if succeeded {
                &raw mut (*outcomes).succeeded[slot]
            } else {
                &raw mut (*outcomes).failed[slot]
            };
            write_volatile(word, read_volatile(word) + 1);
        }
    }

    /// The outcomes counted since the last `reset`.
    pub fn counted(&self) -> Outcomes {
        // SAFETY: as in `count_outcome`, reading.
        unsafe { read_volatile(self.outcomes()) }
    }

    /// Where the outcomes are: right after the record.
    fn outcomes(&self) -> *mut Outcomes {
        self.record.wrapping_add(1).cast()
    }

    /// Sets up the page for a child that starts at call `index`.
    pub fn reset(&self, index: u64) {
        // SAFETY: the outcomes are in the shared page (see `read`).
        unsafe { write_volatile(self.outcomes(), Outcomes::default()) };
        let mut record =
            Record { index, number: 0, arguments: [0; 6], flags: 0, check: 0, breaches: 0 };
        record.check = record.checksum();
        self.write(record);
    }

    /// The last call the child recorded and the breaches it counted, if the
    /// record is intact.
    pub fn last(&self) -> Option<(u64, Call, u64)> {
        let record = self.read();
        let call = Call { number: record.number, arguments: record.arguments, flags: record.flags };
        (record.check == record.checksum()).then_some((record.index, call, record.breaches))
    }

    /// Unmaps the page and closes its handle.
    pub fn close(self) {
        // SAFETY: nothing refers to the page once `self` is gone.
        let _ = unsafe { user::unmap(self.record as u64, PAGE) };
        let _ = user::shared_close(self.handle);
    }

    fn read(&self) -> Record {
        // SAFETY: the page is mapped read-write unless one of the child's own
        // calls changed that, which kills the child (see the module docs).
        unsafe { read_volatile(self.record) }
    }

    fn write(&self, record: Record) {
        // SAFETY: as in `read`.
        unsafe { write_volatile(self.record, record) }
    }
}
