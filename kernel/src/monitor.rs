//! The kernel monitor: a command line on the screen and the serial port.
//!
//! When start-up is done the kernel reads commands typed on the keyboard or sent
//! over serial and answers on every console. This module holds the portable half:
//! parsing a command and editing the line being typed; running commands needs the
//! machine and lives in `monitor::commands`.
//!
//! The parser checks everything it can without the machine (the shape of a
//! program name, that numbers are numbers), so that a typing mistake gets its
//! one-line error before anything is started or killed.

use alloc::string::String;

/// The prompt printed before every command.
pub const PROMPT: &str = "monitor> ";

/// A command the monitor understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// List the commands.
    Help,
    /// Frames, VM page overhead, free/used/pinned, heap.
    Memory,
    /// Page-table cache and fault statistics.
    Vm,
    /// Resize the page-table cache to this many address spaces.
    PageTableCache(usize),
    /// Turn chaos mode (discarding translations all the time) on or off.
    Chaos(bool),
    /// Time since interrupts were enabled.
    Uptime,
    /// The processors: online, their APIC IDs, timers and requests served.
    Cpus,
    /// List the processes.
    Processes,
    /// List the programs in the ramdisk.
    Programs,
    /// Start a program from the ramdisk with this start argument.
    Run(&'a str, u64),
    /// End the process with this id.
    Kill(u64),
    /// Restart the machine.
    Reboot,
    /// Switch the machine off (leave QEMU).
    PowerOff,
}

/// One line of help per command.
pub const HELP: &[(&str, &str)] = &[
    ("help", "list the commands"),
    ("mem", "frames, VM page overhead, free/used/pinned, heap"),
    ("vm", "page-table cache and fault statistics"),
    ("ptcache N", "keep page tables for at most N address spaces (N >= 1)"),
    ("chaos on|off", "discard translations every few faults, or stop"),
    ("uptime", "time since start-up"),
    ("cpus", "processors: online, APIC IDs, timer ticks, requests served"),
    ("ps", "processes: id, program, state"),
    ("programs", "the programs in the ramdisk, with their sizes"),
    ("run NAME [ARG]", "start a program (ARG: decimal or 0x hex, default 0)"),
    ("kill PID", "end a process"),
    ("reboot", "restart the machine"),
    ("poweroff", "switch the machine off"),
];

/// Parses a command line; the error is a one-line message for the user.
pub fn parse(line: &str) -> Result<Option<Command<'_>>, String> {
    let mut words = line.split_ascii_whitespace();
    let Some(name) = words.next() else { return Ok(None) };
    if name == "run" {
        return parse_run(words).map(Some);
    }
    let argument = words.next();
    if let Some(extra) = words.next() {
        return Err(alloc::format!("{name}: unexpected argument {extra:?}"));
    }
    let command = match (name, argument) {
        ("help", None) => Command::Help,
        ("mem", None) => Command::Memory,
        ("vm", None) => Command::Vm,
        ("uptime", None) => Command::Uptime,
        ("cpus", None) => Command::Cpus,
        ("ps", None) => Command::Processes,
        ("programs", None) => Command::Programs,
        ("reboot", None) => Command::Reboot,
        ("poweroff", None) => Command::PowerOff,
        ("chaos", Some("on")) => Command::Chaos(true),
        ("chaos", Some("off")) => Command::Chaos(false),
        ("ptcache", Some(size)) => match size.parse() {
            Ok(size) if size >= 1 => Command::PageTableCache(size),
            _ => return Err(alloc::format!("ptcache: expected a number >= 1, not {size:?}")),
        },
        ("kill", Some(pid)) => Command::Kill(parse_pid(pid)?),
        ("chaos", _) => return Err("chaos: expected `on` or `off`".into()),
        ("ptcache", None) => return Err("ptcache: expected a number >= 1".into()),
        ("kill", None) => return Err("kill: expected a process id (see `ps`)".into()),
        (known, Some(extra)) if is_command(known) => {
            return Err(alloc::format!("{known}: unexpected argument {extra:?}"));
        }
        (unknown, _) => return Err(alloc::format!("unknown command {unknown:?} (try `help`)")),
    };
    Ok(Some(command))
}

/// Whether `name` is one of the commands in [`HELP`].
fn is_command(name: &str) -> bool {
    HELP.iter().any(|(usage, _)| usage.split(' ').next() == Some(name))
}

/// The words after `run`: a program name and an optional start argument.
fn parse_run<'a>(mut words: impl Iterator<Item = &'a str>) -> Result<Command<'a>, String> {
    let Some(name) = words.next() else {
        return Err("run: expected a program name (see `programs`)".into());
    };
    if !is_program_name(name) {
        return Err(alloc::format!("run: {name:?} is not a program name (see `programs`)"));
    }
    let argument = match words.next() {
        None => 0,
        Some(text) => parse_number(text).ok_or_else(|| {
            alloc::format!("run: the argument must be a number (decimal or 0x hex), not {text:?}")
        })?,
    };
    if let Some(extra) = words.next() {
        return Err(alloc::format!("run: unexpected argument {extra:?}"));
    }
    Ok(Command::Run(name, argument))
}

/// Whether `name` could name a program: letters, digits, `_` and `-`, at most
/// [`MAX_PROGRAM_NAME`] of them.
fn is_program_name(name: &str) -> bool {
    name.len() <= MAX_PROGRAM_NAME
        && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
}

/// Longest program name `run` accepts.
const MAX_PROGRAM_NAME: usize = 32;

/// A number written in decimal or in hex after `0x`, that fits in 64 bits.
fn parse_number(text: &str) -> Option<u64> {
    let (digits, radix) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (text, 10),
    };
    // `from_str_radix` would take a sign; only digits are a number here.
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// A process id for `kill`: a number, and not 0 (the kernel's own thread).
fn parse_pid(text: &str) -> Result<u64, String> {
    match parse_number(text) {
        Some(0) => Err("kill: 0 is the kernel, which cannot be killed".into()),
        Some(pid) => Ok(pid),
        None => Err(alloc::format!("kill: expected a process id (see `ps`), not {text:?}")),
    }
}

/// The line being typed, with simple editing.
#[derive(Debug, Default)]
pub struct LineEditor {
    line: String,
}

/// What a typed character did.
#[derive(Debug, PartialEq, Eq)]
pub enum Edit {
    /// Print this character (it was added to the line).
    Echo(char),
    /// The last character was removed: erase it on screen.
    Erase,
    /// The line is complete.
    Submit(String),
    /// Nothing changed.
    Nothing,
}

/// Longest line the editor keeps.
const MAX_LINE: usize = 120;

impl LineEditor {
    /// The line typed so far (to show it again after a report).
    pub fn line(&self) -> &str {
        &self.line
    }

    /// Applies one typed character.
    pub fn type_char(&mut self, character: char) -> Edit {
        match character {
            '\r' | '\n' => Edit::Submit(core::mem::take(&mut self.line)),
            '\u{8}' | '\u{7f}' => match self.line.pop() {
                Some(_) => Edit::Erase,
                None => Edit::Nothing,
            },
            character if character.is_control() || self.line.len() >= MAX_LINE => Edit::Nothing,
            character => {
                self.line.push(character);
                Edit::Echo(character)
            }
        }
    }
}

#[cfg(target_os = "none")]
pub mod commands;
pub mod prompt;

#[cfg(test)]
mod tests;
