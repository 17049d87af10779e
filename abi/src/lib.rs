//! The system-call interface: numbers, flags, error codes and shared layouts.
//!
//! The kernel and the user library both build on this crate, so that the two
//! sides of the `syscall` instruction cannot disagree.
//!
//! # Calling convention
//! `rax` holds the call number, `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9` the
//! arguments (the System V order, with `r10` for `rcx`, which `syscall`
//! overwrites). The result comes back in `rax`: a value `>= 0`, or a negated
//! [`Errno`]. `rcx` and `r11` are destroyed; every other register is preserved.
#![no_std]
#![forbid(unsafe_code)]

/// Writes bytes to the console: `(buffer, length)` -> bytes written.
pub const WRITE: u64 = 0;
/// Ends the calling process: `(status)`; does not return.
pub const EXIT: u64 = 1;
/// Duplicates the calling process: -> the child's id in the parent, 0 in the child.
pub const FORK: u64 = 2;
/// Waits for a child to end: `(status pointer or 0)` -> its id; the status word
/// is written where the pointer says (see [`exit_status`]).
pub const WAIT: u64 = 3;
/// The caller's process id.
pub const GETPID: u64 = 4;
/// Gives the processor to the next ready process.
pub const YIELD: u64 = 5;
/// Sleeps for a number of timer ticks: `(ticks)`.
pub const SLEEP: u64 = 6;
/// Maps memory: `(address hint or 0, length, protection, flags, handle, offset)`
/// -> address. Private anonymous memory unless `flags` has [`MAP_SHARED`], which
/// maps the shared object `handle` from byte `offset`. A non-zero hint is an
/// exact address.
pub const MMAP: u64 = 7;
/// Unmaps `(address, length)`.
pub const MUNMAP: u64 = 8;
/// Changes the protection of `(address, length, protection)`.
pub const MPROTECT: u64 = 9;
/// Creates a shared-memory object of `(length)` bytes -> its handle.
pub const SHM_CREATE: u64 = 10;
/// Closes a shared-memory handle: `(handle)`.
pub const SHM_CLOSE: u64 = 11;
/// Copies the system's [`Statistics`] to `(buffer, length)` -> bytes copied.
pub const STATISTICS: u64 = 12;
/// Forgets the page-table translations of `(address, length)` (the VM's
/// discard, for one range): the pages stay, the next access rebuilds them.
pub const ZAP: u64 = 13;
/// Sets the page-table cache to `(address spaces)` (0 only asks) -> the size
/// it had before.
pub const PT_CACHE: u64 = 14;

/// Protection bit: readable.
pub const PROT_READ: u64 = 1;
/// Protection bit: writable (needs [`PROT_READ`]).
pub const PROT_WRITE: u64 = 2;
/// Protection bit: executable (needs [`PROT_READ`]).
pub const PROT_EXEC: u64 = 4;
/// `mmap` flag: map a shared object instead of private memory.
pub const MAP_SHARED: u64 = 1;

/// Bit of a status word saying the process was killed rather than exiting.
pub const KILLED: u64 = 1 << 32;

/// One past the highest address a process may map: the bottom half of a 48-bit
/// space less its top page. The kernel's `vm::USER_END` is the same (a
/// compile-time assertion there), so user programs take the edge from here.
pub const USER_END: u64 = 0x0000_7fff_ffff_f000;

/// How a process ended, as a status word says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// It exited with this status.
    Exited(i32),
    /// The kernel killed it.
    Killed,
}

/// Decodes a status word.
pub fn ended(word: u64) -> Ended {
    if word & KILLED != 0 { Ended::Killed } else { Ended::Exited(word as u32 as i32) }
}

/// Why a system call failed (the negated value is returned in `rax`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Errno {
    /// No such handle.
    BadHandle = 9,
    /// No child to wait for.
    NoChild = 10,
    /// Too many processes.
    TryAgain = 11,
    /// Out of memory.
    NoMemory = 12,
    /// The access is not allowed.
    Access = 13,
    /// A user pointer or range is bad.
    Fault = 14,
    /// A malformed argument.
    Invalid = 22,
    /// No such system call.
    NoSystemCall = 38,
}

impl Errno {
    /// The error a raw result stands for, if it is one.
    pub fn from_result(raw: u64) -> Option<Errno> {
        let code = (raw as i64).checked_neg().filter(|code| (1..4096).contains(code))?;
        Some(match code {
            9 => Errno::BadHandle,
            10 => Errno::NoChild,
            11 => Errno::TryAgain,
            12 => Errno::NoMemory,
            13 => Errno::Access,
            14 => Errno::Fault,
            22 => Errno::Invalid,
            _ => Errno::NoSystemCall,
        })
    }

    /// The raw result that reports this error.
    pub fn to_result(self) -> u64 {
        (self as u64).wrapping_neg()
    }
}

/// What the [`STATISTICS`] call reports: VM counters since boot and frames now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct Statistics {
    /// Page faults handled.
    pub faults: u64,
    /// Pages zero-filled on first touch.
    pub zero_fills: u64,
    /// Copy-on-write faults that copied a page.
    pub cow_copies: u64,
    /// Copy-on-write faults that took the last sharer's page over.
    pub cow_reuses: u64,
    /// Address spaces made by fork.
    pub forks: u64,
    /// Free frames now.
    pub free_frames: u64,
    /// Frames in the machine.
    pub total_frames: u64,
    /// Live processes, zombies included.
    pub processes: u64,
}

/// Size of [`Statistics`] in bytes.
pub const STATISTICS_SIZE: usize = core::mem::size_of::<Statistics>();

impl Statistics {
    /// The counters as words, in field order (how they cross the boundary).
    pub fn to_words(&self) -> [u64; 8] {
        [
            self.faults,
            self.zero_fills,
            self.cow_copies,
            self.cow_reuses,
            self.forks,
            self.free_frames,
            self.total_frames,
            self.processes,
        ]
    }

    /// The counters from words in field order.
    pub fn from_words(words: [u64; 8]) -> Statistics {
        let [
            faults,
            zero_fills,
            cow_copies,
            cow_reuses,
            forks,
            free_frames,
            total_frames,
            processes,
        ] = words;
        Statistics {
            faults,
            zero_fills,
            cow_copies,
            cow_reuses,
            forks,
            free_frames,
            total_frames,
            processes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_round_trip_and_values_are_not_errors() {
        for errno in [Errno::BadHandle, Errno::Fault, Errno::Invalid, Errno::NoMemory] {
            assert_eq!(Errno::from_result(errno.to_result()), Some(errno));
        }
        assert_eq!(Errno::from_result(0), None);
        assert_eq!(Errno::from_result(0x20_0000), None);
        assert_eq!(Errno::from_result(u64::MAX - 5000), None);
    }

    #[test]
    fn status_words_decode() {
        assert_eq!(ended(7), Ended::Exited(7));
        assert_eq!(ended(u32::MAX as u64), Ended::Exited(-1));
        assert_eq!(ended(KILLED), Ended::Killed);
    }
}
