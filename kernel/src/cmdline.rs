//! The kernel command line.
//!
//! The runner passes options to the kernel as a line of text in the boot ramdisk
//! (the bootloader has no command line of its own): words separated by spaces,
//! each either a flag (`once`) or `key=value` (`pt_cache=4`). Unknown words are
//! reported and ignored, so an old kernel still boots with a newer runner.

/// Options the kernel understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Power off (through isa-debug-exit under QEMU) once start-up work is done.
    pub once: bool,
    /// Run the benchmarks after start-up.
    pub bench: bool,
    /// Log level: `error`, `warn`, `info`, `debug` or `trace`.
    pub log_level: log::LevelFilter,
}

impl Default for Options {
    fn default() -> Self {
        Options { once: false, bench: false, log_level: log::LevelFilter::Info }
    }
}

/// A word of the command line the kernel did not understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownOption<'a>(pub &'a str);

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
            ("bench", None) => options.bench = true,
            ("log", Some(level)) => match level.parse() {
                Ok(level) => options.log_level = level,
                Err(_) => unknown(UnknownOption(word)),
            },
            _ => unknown(UnknownOption(word)),
        }
    }
    options
}

#[cfg(test)]
mod tests;
