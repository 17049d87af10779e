//! The kernel monitor: a command line on the screen and the serial port.
//!
//! When start-up is done the kernel reads commands typed on the keyboard or sent
//! over serial and answers on every console. This module holds the portable half:
//! parsing a command and editing the line being typed; running commands needs the
//! machine and lives in `monitor::commands`.

use alloc::string::String;

/// The prompt printed before every command.
pub const PROMPT: &str = "monitor> ";

/// A command the monitor understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
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
    /// List the processes.
    Processes,
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
    ("ps", "processes: id, program, state"),
    ("reboot", "restart the machine"),
    ("poweroff", "switch the machine off"),
];

/// Parses a command line; the error is a one-line message for the user.
pub fn parse(line: &str) -> Result<Option<Command>, String> {
    let mut words = line.split_ascii_whitespace();
    let Some(name) = words.next() else { return Ok(None) };
    let argument = words.next();
    if let Some(extra) = words.next() {
        return Err(alloc::format!("{name}: unexpected argument {extra:?}"));
    }
    let command = match (name, argument) {
        ("help", None) => Command::Help,
        ("mem", None) => Command::Memory,
        ("vm", None) => Command::Vm,
        ("uptime", None) => Command::Uptime,
        ("ps", None) => Command::Processes,
        ("reboot", None) => Command::Reboot,
        ("poweroff", None) => Command::PowerOff,
        ("chaos", Some("on")) => Command::Chaos(true),
        ("chaos", Some("off")) => Command::Chaos(false),
        ("ptcache", Some(size)) => match size.parse() {
            Ok(size) if size >= 1 => Command::PageTableCache(size),
            _ => return Err(alloc::format!("ptcache: expected a number >= 1, not {size:?}")),
        },
        ("chaos", _) => return Err("chaos: expected `on` or `off`".into()),
        ("ptcache", None) => return Err("ptcache: expected a number >= 1".into()),
        (known, Some(extra)) if HELP.iter().any(|(usage, _)| *usage == known) => {
            return Err(alloc::format!("{known}: unexpected argument {extra:?}"));
        }
        (unknown, _) => return Err(alloc::format!("unknown command {unknown:?} (try `help`)")),
    };
    Ok(Some(command))
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

#[cfg(test)]
mod tests;
