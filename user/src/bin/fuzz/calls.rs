//! What the fuzzer calls: one random system call at a time, every argument
//! register filled, the ones a call reads drawn from pools of boundary values
//! (the edges of user space, kernel-half and non-canonical addresses,
//! unaligned pointers, zero and huge lengths, bad handles and flags) and of the
//! fuzzer's own memory; then a check of the result against what the boundary
//! must hold whatever state the kernel is in.

use core::fmt;

use user::{Errno, PROT_EXEC, PROT_READ, PROT_WRITE, abi};

use crate::entry::{self, Returned};
use crate::random::Random;

/// Bytes in a page.
pub const PAGE: u64 = 4096;
/// Read-write pages of scratch memory (the kernel may write there).
pub const SCRATCH_PAGES: u64 = 2;
/// Printable bytes at the end of the text page: at most this much a `write`
/// call prints.
pub const TEXT: u64 = 64;
/// Largest zap range made unless huge zaps are asked for (the kernel walks a
/// sparse zap range page by page).
const ZAP_LIMIT: u64 = 64 << 20;

/// One system call: its number, all six argument registers, and RFLAGS.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Call {
    /// The call number (`rax`).
    pub number: u64,
    /// `rdi, rsi, rdx, r10, r8, r9`.
    pub arguments: [u64; 6],
    /// RFLAGS at the `syscall`.
    pub flags: u64,
}

/// RFLAGS bit 1, always set, and the interrupt flag.
const BASE_FLAGS: u64 = 0x202;
/// The trap flag: the single-step trap comes after the `syscall`.
const TRAP_FLAG: u64 = 1 << 8;
/// The interrupt flag.
const INTERRUPT_FLAG: u64 = 1 << 9;
/// The I/O privilege level (user mode cannot change it; `popfq` ignores it).
const IO_PRIVILEGE: u64 = 3 << 12;
/// Flags user mode may set: carry, parity, adjust, zero, sign, direction,
/// overflow, nested task, alignment check, and attempts at the I/O privilege
/// level.
const SETTABLE_FLAGS: u64 =
    0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x400 | 0x800 | IO_PRIVILEGE | NESTED_TASK | (1 << 18);
/// The nested-task flag, which `syscall` does not clear unless the kernel
/// asks it to (SFMASK).
const NESTED_TASK: u64 = 1 << 14;

/// What a run may do beyond the default.
#[derive(Clone, Copy, Debug)]
pub struct Allowed {
    /// Zap ranges over `ZAP_LIMIT` (a sparse one stalls today's kernel).
    pub huge_zaps: bool,
    /// The nested-task and trap flags at the `syscall` (on by default).
    pub system_flags: bool,
}

/// The fuzzer's own memory, set up by the parent before any child is forked,
/// so every child finds it at the same addresses.
#[derive(Clone, Copy, Debug)]
pub struct Targets {
    /// `SCRATCH_PAGES` read-write pages, then an inaccessible page: where the
    /// kernel may write (statistics, wait's status word).
    pub scratch: u64,
    /// A read-only page ending in `TEXT` dots, then an inaccessible page: what
    /// `write` may print.
    pub text: u64,
    /// A read-only page of zeros.
    pub read_only: u64,
    /// The page of this program's code that makes the calls.
    pub code: u64,
    /// A page of this program's writable data.
    pub data: u64,
    /// A page of this program's stack.
    pub stack: u64,
}

/// What this child's earlier calls gave: mappings and shared-memory handles,
/// which later calls use, unmap and close.
#[derive(Default)]
pub struct Results {
    mappings: [u64; 8],
    handles: [u64; 8],
    next_mapping: usize,
    next_handle: usize,
}

/// Every call but `exit` (made once, at the end, by the fuzzer itself).
const KNOWN: [u64; 14] = [
    abi::WRITE,
    abi::FORK,
    abi::WAIT,
    abi::GETPID,
    abi::YIELD,
    abi::SLEEP,
    abi::MMAP,
    abi::MUNMAP,
    abi::MPROTECT,
    abi::SHM_CREATE,
    abi::SHM_CLOSE,
    abi::STATISTICS,
    abi::ZAP,
    abi::PT_CACHE,
];

/// Numbers no call has: just past the last, small and huge ones, and known
/// numbers with high bits set (which a kernel looking at `eax` alone would run).
const UNKNOWN: [u64; 12] = [
    15,
    16,
    64,
    255,
    0xffff,
    u32::MAX as u64,
    (1 << 32) | abi::GETPID,
    (1 << 32) | abi::WRITE,
    (1 << 63) | abi::YIELD,
    1 << 63,
    u64::MAX - 1,
    u64::MAX,
];

/// A user address nothing is mapped at.
const UNMAPPED: u64 = 0x3000_0000_0000;

/// Addresses at and past the edges of user space.
const EDGES: [u64; 19] = [
    0,
    1,
    7,
    0xff8,
    0x1000,
    abi::USER_END - PAGE,
    abi::USER_END - 64,
    abi::USER_END - 8,
    abi::USER_END - 1,
    abi::USER_END,
    0x0000_8000_0000_0000,
    0x1234_5678_9abc_def0,
    0xffff_7fff_ffff_f000,
    0xffff_8000_0000_0000,
    0xffff_8000_0010_0000,
    0xffff_ff00_0000_0000,
    u64::MAX - 7,
    u64::MAX,
    UNMAPPED,
];

/// Lengths: zero, around a word and a page, huge, and wrapping.
const LENGTHS: [u64; 22] = [
    0,
    1,
    7,
    8,
    9,
    63,
    64,
    65,
    PAGE - 1,
    PAGE,
    PAGE + 1,
    2 * PAGE,
    16 * PAGE,
    1 << 20,
    1 << 30,
    1 << 46,
    1 << 47,
    abi::USER_END,
    1 << 63,
    u64::MAX - PAGE + 2,
    u64::MAX - 7,
    u64::MAX,
];

/// Offsets into the scratch pages, up to and past their end.
const SCRATCH_OFFSETS: [u64; 12] = [
    0,
    1,
    7,
    8,
    63,
    PAGE - 8,
    PAGE - 1,
    PAGE,
    SCRATCH_PAGES * PAGE - 64,
    SCRATCH_PAGES * PAGE - 8,
    SCRATCH_PAGES * PAGE - 1,
    SCRATCH_PAGES * PAGE,
];

/// Protection words: every combination, an unknown bit, and high bits.
const PROTECTIONS: [u64; 11] = [
    0,
    PROT_READ,
    PROT_WRITE,
    PROT_READ | PROT_WRITE,
    PROT_EXEC,
    PROT_READ | PROT_EXEC,
    PROT_READ | PROT_WRITE | PROT_EXEC,
    8,
    0xff,
    (1 << 32) | PROT_READ | PROT_WRITE,
    u64::MAX,
];

/// Protections the kernel accepts.
const GOOD_PROTECTIONS: [u64; 4] = [0, PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_EXEC];

/// `mmap` flags: private, shared, unknown bits.
const FLAGS: [u64; 7] = [0, 0, abi::MAP_SHARED, abi::MAP_SHARED, 2, 0x80, (1 << 63) | 1];

/// Offsets into a shared object.
const OFFSETS: [u64; 10] = [
    0,
    1,
    PAGE - 1,
    PAGE,
    2 * PAGE,
    (1 << 30) - PAGE,
    1 << 30,
    1 << 63,
    u64::MAX - PAGE + 1,
    u64::MAX,
];

/// Handles: small ones, the per-process limit, and huge ones.
const HANDLES: [u64; 8] = [0, 1, 2, 63, 64, 65, 1 << 32, u64::MAX];

/// Page-table cache sizes: asking, the limits and past them.
const CACHE_SIZES: [u64; 11] = [0, 0, 1, 2, 4, 8, 63, 64, 65, (1 << 32) | 4, u64::MAX];

/// The call that `random` makes next.
pub fn generate(
    random: &mut Random,
    targets: &Targets,
    results: &Results,
    allowed: Allowed,
) -> Call {
    let mut arguments = [0; 6];
    arguments.iter_mut().for_each(|argument| *argument = random.next());
    let number = if random.one_in(8) {
        if random.one_in(2) { random.pick(&UNKNOWN) } else { random.next() | 0x100 }
    } else {
        random.pick(&KNOWN)
    };
    let a = &mut arguments;
    match number {
        abi::WRITE => {
            a[0] = text_pointer(random, targets);
            a[1] = printable(a[0], length(random, a[0]));
        }
        abi::FORK | abi::WAIT => a[0] = written_pointer(random, targets, results),
        abi::SLEEP => a[0] = u64::from(random.one_in(16)),
        abi::MMAP if random.one_in(2) => plausible_mmap(random, results, a),
        abi::MMAP => mmap(random, targets, results, a),
        abi::MUNMAP | abi::MPROTECT | abi::ZAP if random.one_in(2) => {
            a[0] = plausible_start(random, results);
            a[1] = PAGE * (1 + random.below(16));
            a[2] = random.pick(&GOOD_PROTECTIONS);
        }
        abi::MUNMAP | abi::MPROTECT | abi::ZAP => {
            a[0] = range_start(random, targets, results);
            a[1] = length(random, a[0]);
            a[2] = random.pick(&PROTECTIONS);
            if number == abi::ZAP && !allowed.huge_zaps {
                a[1] = tame(a[0], a[1]);
            }
        }
        abi::SHM_CREATE => a[0] = length(random, 0),
        abi::SHM_CLOSE => a[0] = handle(random, results),
        abi::STATISTICS => {
            a[0] = written_pointer(random, targets, results);
            a[1] = length(random, a[0]);
        }
        abi::PT_CACHE => a[0] = random.pick(&CACHE_SIZES),
        _ => {}
    }
    let mut flags = BASE_FLAGS | (random.next() & SETTABLE_FLAGS);
    if random.one_in(64) {
        flags |= TRAP_FLAG;
    }
    if !allowed.system_flags {
        flags &= !(TRAP_FLAG | NESTED_TASK);
    }
    Call { number, arguments, flags }
}

/// A random address: anything, a user address, or a user page.
fn wild(random: &mut Random) -> u64 {
    let bits = random.next();
    match random.below(3) {
        0 => bits,
        1 => bits & (abi::USER_END - 1),
        _ => bits & (abi::USER_END - 1) & !(PAGE - 1),
    }
}

/// What `write` reads: the printable text (so the console gets dots, not
/// binary), the edges, or anywhere.
fn text_pointer(random: &mut Random, targets: &Targets) -> u64 {
    match random.below(4) {
        0 | 1 => targets.text + PAGE - TEXT + random.pick(&[0, 1, 8, TEXT - 8, TEXT - 1, TEXT]),
        2 => random.pick(&EDGES),
        _ => wild(random),
    }
}

/// Where the kernel is asked to write: never this program's stack or data
/// (that would only corrupt the fuzzer), but scratch, read-only pages, code,
/// earlier mappings, the edges, or anywhere.
fn written_pointer(random: &mut Random, targets: &Targets, results: &Results) -> u64 {
    match random.below(8) {
        0 | 1 => random.pick(&EDGES),
        2 | 3 => targets.scratch + random.pick(&SCRATCH_OFFSETS),
        4 => {
            let page = random.pick(&[targets.read_only, targets.text, targets.code]);
            page + random.pick(&[0, 1, 8, PAGE - 8])
        }
        5 => random.pick(&results.mappings) + random.pick(&[0, 8, PAGE - 8, PAGE]),
        _ => wild(random),
    }
}

/// The start of a range to unmap, protect or zap: the edges, earlier
/// mappings, the fuzzer's own pages (its code, data and stack among them,
/// which kills this child), or anywhere; sometimes unaligned.
fn range_start(random: &mut Random, targets: &Targets, results: &Results) -> u64 {
    let start = match random.below(10) {
        0..=2 => random.pick(&EDGES),
        3 | 4 => random.pick(&results.mappings),
        5 => {
            random.pick(&[targets.scratch, targets.scratch + PAGE, targets.text, targets.read_only])
        }
        6 => random.pick(&[targets.code, targets.data, targets.stack]),
        _ => wild(random),
    };
    if random.one_in(8) { start.wrapping_add(random.pick(&[1, 8, PAGE / 2])) } else { start }
}

/// A length for a range at `start`: from the pool, small, or reaching exactly
/// to (or just past) the end of user space.
fn length(random: &mut Random, start: u64) -> u64 {
    let to_the_end = abi::USER_END.wrapping_sub(start);
    match random.below(8) {
        0 => to_the_end,
        1 => to_the_end.wrapping_add(random.pick(&[1, 8, PAGE])),
        2 => random.below(3 * PAGE),
        _ => random.pick(&LENGTHS),
    }
}

/// `length` cut to `TEXT` if the range is in user space: the calls may have
/// mapped anything anywhere (zeros, binary), and the console should get at
/// most that much of it a call. Ranges the kernel must refuse keep their
/// length.
fn printable(start: u64, length: u64) -> u64 {
    let inside = start.checked_add(length).is_some_and(|end| end <= abi::USER_END);
    if inside { length.min(TEXT) } else { length }
}

/// `length` cut below `ZAP_LIMIT` if the kernel might accept the range.
fn tame(start: u64, length: u64) -> u64 {
    let acceptable = start.checked_add(length).is_some_and(|end| end <= abi::USER_END + PAGE);
    if acceptable && length > ZAP_LIMIT { length % ZAP_LIMIT } else { length }
}

/// A shared-memory handle: one this child was given, a small or huge one.
fn handle(random: &mut Random, results: &Results) -> u64 {
    match random.below(4) {
        0 | 1 => random.pick(&results.handles),
        2 => random.pick(&HANDLES),
        _ => random.next(),
    }
}

/// Arguments of an `mmap` the kernel may well grant: anywhere or at an
/// unmapped address, a few pages, a good protection, private or shared
/// through a handle this child was given, from its start or a page in.
fn plausible_mmap(random: &mut Random, results: &Results, a: &mut [u64; 6]) {
    a[0] = if random.one_in(2) { 0 } else { UNMAPPED + random.below(1 << 20) * PAGE };
    a[1] = PAGE * (1 + random.below(16));
    a[2] = random.pick(&GOOD_PROTECTIONS);
    a[3] = if random.one_in(2) { 0 } else { abi::MAP_SHARED };
    a[4] = random.pick(&results.handles);
    a[5] = random.pick(&[0, 0, PAGE]);
}

/// A page of an earlier mapping (or of nothing, before there is one), where
/// an unmap, protect or zap of a few pages may well be granted (the fuzzer's own pages come up in
/// `range_start`; here they would only kill the child more often).
fn plausible_start(random: &mut Random, results: &Results) -> u64 {
    let mapping = random.pick(&results.mappings);
    let base = if mapping == 0 { UNMAPPED } else { mapping };
    base + random.below(4) * PAGE
}

/// Arguments of `mmap`: the hint, length, protection, flags, handle, offset.
fn mmap(random: &mut Random, targets: &Targets, results: &Results, a: &mut [u64; 6]) {
    a[0] = match random.below(6) {
        0..=2 => 0,
        3 => random.pick(&EDGES),
        4 => UNMAPPED + random.below(1 << 20) * PAGE,
        5 if random.one_in(2) => targets.scratch + SCRATCH_PAGES * PAGE,
        _ => wild(random),
    };
    a[1] = length(random, a[0]);
    a[2] = random.pick(&PROTECTIONS);
    a[3] = random.pick(&FLAGS);
    a[4] = handle(random, results);
    a[5] = if random.one_in(4) { random.next() } else { random.pick(&OFFSETS) };
}

/// Makes `call`, keeps what it gave for later calls, and handles `fork`: the
/// new child exits at once, and is waited for (through the call's status
/// pointer, else through a good one). Returns what the processor shows.
pub fn issue(call: &Call, results: &mut Results) -> Returned {
    // SAFETY: the calls may unmap or write-protect any memory of this
    // process, its code, data and stack included; the kernel then kills it
    // (the parent expects that). The kernel writes only where the pointer
    // pools say, and they hold no memory Rust code uses.
    let returned = unsafe { entry::syscall(call.number, call.arguments, call.flags) };
    let result = returned.result;
    let failed = Errno::from_result(result).is_some();
    match call.number {
        abi::FORK if result == 0 => user::exit(0),
        abi::FORK if !failed => reap(call.arguments[0]),
        abi::MMAP if !failed => {
            results.mappings[results.next_mapping] = result;
            results.next_mapping = (results.next_mapping + 1) % results.mappings.len();
        }
        abi::SHM_CREATE if !failed => {
            results.handles[results.next_handle] = result;
            results.next_handle = (results.next_handle + 1) % results.handles.len();
        }
        _ => {}
    }
    returned
}

/// Waits for the child a `fork` call made, with `status` first.
fn reap(status: u64) {
    // SAFETY: `status` comes from the written-pointer pool (see `issue`).
    let result = unsafe { user::raw(abi::WAIT, [status, 0, 0, 0, 0, 0]) };
    if Errno::from_result(result).is_some() {
        let _ = user::wait();
    }
}

/// The errors the abi defines.
const ERRORS: [u64; 8] = [9, 10, 11, 12, 13, 14, 22, 38];

/// What `returned` from `call` shows the boundary let through, if anything.
pub fn breach(call: &Call, returned: &Returned) -> Option<&'static str> {
    if returned.changed != 0 {
        return Some("rbx, rbp or r12 to r15 changed");
    }
    if returned.arguments != call.arguments {
        return Some("an argument register changed");
    }
    if returned.flags & INTERRUPT_FLAG == 0 || returned.flags & IO_PRIVILEGE != 0 {
        return Some("user mode came back with interrupts off or I/O privilege");
    }
    let result = returned.result;
    let code = (result as i64).checked_neg().filter(|code| (1..4096).contains(code));
    if code.is_some_and(|code| !ERRORS.contains(&(code as u64))) {
        return Some("an error the abi does not define");
    }
    if !KNOWN.contains(&call.number) {
        let refused = result == Errno::NoSystemCall.to_result();
        return (!refused).then_some("an unknown call number was not refused");
    }
    if code.is_some() {
        return None;
    }
    let [start, length, ..] = call.arguments;
    let outside = |start: u64, length: u64| {
        start < PAGE || start.checked_add(length).is_none_or(|end| end > abi::USER_END)
    };
    match call.number {
        abi::WRITE if length != 0 && outside(start, length) => {
            Some("write read outside user space")
        }
        abi::STATISTICS if length != 0 && outside(start, length.min(64)) => {
            Some("statistics wrote outside user space")
        }
        abi::MMAP if !result.is_multiple_of(PAGE) || outside(result, length) => {
            Some("mmap gave memory outside user space")
        }
        abi::MMAP if start != 0 && result != start => Some("an exact mmap landed elsewhere"),
        abi::MUNMAP | abi::MPROTECT | abi::ZAP if outside(start, length) => {
            Some("a range outside user space was accepted")
        }
        _ => None,
    }
}

/// A call's name, for reports.
pub fn name(number: u64) -> &'static str {
    match number {
        abi::WRITE => "write",
        abi::EXIT => "exit",
        abi::FORK => "fork",
        abi::WAIT => "wait",
        abi::GETPID => "getpid",
        abi::YIELD => "yield",
        abi::SLEEP => "sleep",
        abi::MMAP => "mmap",
        abi::MUNMAP => "munmap",
        abi::MPROTECT => "mprotect",
        abi::SHM_CREATE => "shm_create",
        abi::SHM_CLOSE => "shm_close",
        abi::STATISTICS => "statistics",
        abi::ZAP => "zap",
        abi::PT_CACHE => "pt_cache",
        _ => "unknown",
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.arguments;
        write!(
            f,
            "{}[{:#x}]({a:#x}, {b:#x}, {c:#x}, {d:#x}, {e:#x}, {g:#x}) flags {:#x}",
            name(self.number),
            self.number,
            self.flags
        )
    }
}
