//! Keeping the monitor's prompt line whole when other output arrives.
//!
//! Programs started with `run` go on in the background, and the kernel logs as
//! it pleases, so text may arrive while the prompt and a half-typed command are
//! the last line of the screen and of the serial console. Written as it comes,
//! it would continue that line (`monitor> ruinit: pid 1 running`). The console
//! follows one rule instead, kept here so that it is tested on the host:
//!
//! - output that is not the monitor's own, arriving while the prompt line is
//!   showing, first ends that line;
//! - once that output has ended its own line and a moment has passed with none
//!   (so that a burst of lines is not cut by prompts), the monitor shows the
//!   prompt and what was typed again;
//! - a key typed before then shows them again at once, on a line of their own,
//!   instead of being echoed after the other output.

/// Timer ticks without other output before the prompt is shown again (at
/// 100 Hz: 50 ms).
pub const QUIET_TICKS: u64 = 5;

/// Where the console's text stands with respect to the prompt.
#[derive(Debug)]
pub struct PromptLine {
    /// The last text written ended a line (or nothing was written yet).
    at_line_start: bool,
    /// The current line is the prompt and what was typed on it.
    showing: bool,
    /// Other output ended the prompt line; the prompt is owed again.
    interrupted: bool,
    /// The tick of the last other output.
    last_output: u64,
}

/// What the monitor's console writes when a key is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typing {
    /// The prompt line is current: echo the key.
    Echo,
    /// It is not: write the prompt and the whole typed line again, after a
    /// newline if `new_line`.
    ShowAgain {
        /// The cursor is within another line.
        new_line: bool,
    },
}

impl Default for PromptLine {
    fn default() -> Self {
        PromptLine::new()
    }
}

impl PromptLine {
    /// A console at the start of an empty line, with no prompt.
    pub const fn new() -> Self {
        PromptLine { at_line_start: true, showing: false, interrupted: false, last_output: 0 }
    }

    /// Other output is about to be written: whether a newline must go first,
    /// to end the prompt line.
    pub fn before_output(&mut self) -> bool {
        if !self.showing {
            return false;
        }
        self.showing = false;
        self.interrupted = true;
        self.at_line_start = true;
        true
    }

    /// Other output was written, its last character `last` (`None`: nothing),
    /// at tick `now`.
    pub fn after_output(&mut self, last: Option<char>, now: u64) {
        if let Some(last) = last {
            self.at_line_start = last == '\n';
            self.last_output = now;
        }
    }

    /// The monitor shows the prompt (and what was typed): whether a newline
    /// must go first. From then on the prompt line is current.
    pub fn show_prompt(&mut self) -> bool {
        let new_line = !self.at_line_start;
        self.showing = true;
        self.interrupted = false;
        self.at_line_start = false;
        new_line
    }

    /// A key was typed: how to show it.
    pub fn typing(&mut self) -> Typing {
        match self.showing {
            true => Typing::Echo,
            false => Typing::ShowAgain { new_line: self.show_prompt() },
        }
    }

    /// The command line was entered: the prompt line ends (the monitor writes
    /// the newline itself, and its answers are its own output).
    pub fn end_prompt(&mut self) {
        self.showing = false;
        self.interrupted = false;
    }

    /// Whether the prompt is owed and may be shown again at tick `now`: other
    /// output ended its line, and none came for [`QUIET_TICKS`].
    pub fn prompt_owed(&self, now: u64) -> bool {
        self.interrupted && self.at_line_start && now >= self.last_output + QUIET_TICKS
    }
}

#[cfg(test)]
mod tests;
