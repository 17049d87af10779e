//! The kernel command line.
//!
//! The runner passes options to the kernel as a line of text in the boot ramdisk
//! (the bootloader has no command line of its own): words separated by spaces,
//! each either a flag (`once`) or `key=value` (`pt_cache=4`). Unknown words are
//! reported to the caller: the kernel warns of them and boots, so an old kernel
//! still boots with a newer runner, but a test kernel refuses to run its tests
//! (see `testing::start`), since a misspelt word would leave it testing the
//! default configuration under a label that claims another.

/// Options the kernel understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Power off (through isa-debug-exit under QEMU) once start-up work is done.
    pub once: bool,
    /// Which benchmarks to run after start-up, if any (`bench`, `bench=swap`,
    /// `bench=smp`).
    pub bench: Option<Benchmarks>,
    /// Log level: `error`, `warn`, `info`, `debug` or `trace`.
    pub log_level: log::LevelFilter,
    /// Address spaces whose page tables are kept (`pt_cache=N`, N >= 1).
    pub pt_cache: usize,
    /// Chaos mode (`chaos`, or `chaos=K`): the running address space loses its
    /// unpinned translations every K page faults; 0 is off.
    pub chaos: u64,
    /// Check every CR3 load against a shadow TLB that keeps every PCID's
    /// translations (`tlb_check`; slow, for tests).
    pub tlb_check: bool,
    /// Measure how long the VM lock is held (`lockstat`; `memory::hold`).
    pub lockstat: bool,
    /// Test kernels: skip the first N tests (`skip_tests=N`), for the runner's
    /// boot that carries on after a test that ended the kernel by panicking as
    /// it expected.
    pub skip_tests: usize,
    /// Most of memory, in percent, the compressed swap pool may hold
    /// (`swap_pool=PERCENT`; 0 turns it off).
    pub swap_pool: u8,
    /// Swap to a virtio-blk disk if the machine has one (`swap_disk=off`
    /// leaves it alone).
    pub swap_disk: bool,
    /// Most free frames each processor keeps for itself (`frame_cache=N`;
    /// 0 turns the caches off).
    pub frame_cache: u32,
}

/// Prefix of the words that are a test kernel's own parameters
/// (`test.NAME=VALUE`): known to the parser, read by the test kernel.
pub const TEST_PARAMETER: &str = "test.";

/// Page-table cache size when the command line does not say.
pub const DEFAULT_PT_CACHE: usize = 8;
/// Share of memory the compressed swap pool may hold, in percent, when the
/// command line does not say (Linux's zram is often set up with half).
pub const DEFAULT_SWAP_POOL: u8 = 25;
/// Most a `swap_pool=` may ask for.
pub const MAX_SWAP_POOL: u8 = 75;

/// Frames each processor's cache holds when the command line does not say
/// (moved 16 at a time).
pub const DEFAULT_FRAME_CACHE: u32 = 32;

/// Chaos interval meant by a bare `chaos`.
pub const DEFAULT_CHAOS: u64 = 4;

impl Default for Options {
    fn default() -> Self {
        Options {
            once: false,
            bench: None,
            log_level: log::LevelFilter::Info,
            pt_cache: DEFAULT_PT_CACHE,
            chaos: 0,
            tlb_check: false,
            lockstat: false,
            skip_tests: 0,
            swap_pool: DEFAULT_SWAP_POOL,
            swap_disk: true,
            frame_cache: DEFAULT_FRAME_CACHE,
        }
    }
}

/// A word of the command line the kernel did not understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownOption<'a>(pub &'a str);

/// A set of benchmarks (`kernel::bench`); the runner boots a machine for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Benchmarks {
    /// Everything but the two below (`bench`).
    Main,
    /// The swap benchmarks, on a small machine with a swap disk (`bench=swap`).
    Swap,
    /// The processors' benchmarks, on a machine with several (`bench=smp`).
    Processors,
}

/// Parses `line`, calling `unknown` for each word it does not understand.
pub fn parse<'a>(line: &'a str, mut unknown: impl FnMut(UnknownOption<'a>)) -> Options {
    let mut options = Options::default();
    for word in line.split_ascii_whitespace() {
        let (key, value) = match word.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (word, None),
        };
        match (key, value) {
            ("once", None) => options.once = true,
            ("bench", None) => options.bench = Some(Benchmarks::Main),
            ("bench", Some("swap")) => options.bench = Some(Benchmarks::Swap),
            ("bench", Some("smp")) => options.bench = Some(Benchmarks::Processors),
            ("log", Some(level)) => match level.parse() {
                Ok(level) => options.log_level = level,
                Err(_) => unknown(UnknownOption(word)),
            },
            ("pt_cache", Some(size)) => match size.parse() {
                Ok(size) if size >= 1 => options.pt_cache = size,
                _ => unknown(UnknownOption(word)),
            },
            ("chaos", None) => options.chaos = DEFAULT_CHAOS,
            ("tlb_check", None) => options.tlb_check = true,
            ("lockstat", None) => options.lockstat = true,
            ("chaos", Some(interval)) => match interval.parse() {
                Ok(interval) => options.chaos = interval,
                Err(_) => unknown(UnknownOption(word)),
            },
            ("swap_pool", Some(percent)) => match percent.parse() {
                Ok(percent) if percent <= MAX_SWAP_POOL => options.swap_pool = percent,
                _ => unknown(UnknownOption(word)),
            },
            ("frame_cache", Some(limit)) => match limit.parse() {
                Ok(limit) if limit <= crate::vm::frame::MAX_CACHE_LIMIT => {
                    options.frame_cache = limit;
                }
                _ => unknown(UnknownOption(word)),
            },
            ("swap_disk", Some("on")) => options.swap_disk = true,
            ("swap_disk", Some("off")) => options.swap_disk = false,
            ("skip_tests", Some(count)) => match count.parse() {
                Ok(count) => options.skip_tests = count,
                Err(_) => unknown(UnknownOption(word)),
            },
            // A parameter of a test kernel, which reads it itself
            // (`testing::parameter`).
            (key, _) if key.starts_with(TEST_PARAMETER) => {}
            _ => unknown(UnknownOption(word)),
        }
    }
    options
}

#[cfg(test)]
mod tests;
