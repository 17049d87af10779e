use super::*;

/// A console that follows the rule as `crate::console` does, writing to a
/// string: what a user sees.
struct Console {
    text: String,
    state: PromptLine,
    line: String,
    now: u64,
}

impl Console {
    fn new() -> Console {
        let mut console =
            Console { text: String::new(), state: PromptLine::new(), line: String::new(), now: 0 };
        console.show_prompt();
        console
    }

    fn show_prompt(&mut self) {
        if self.state.show_prompt() {
            self.text.push('\n');
        }
        self.text.push_str("monitor> ");
        self.text.push_str(&self.line);
    }

    /// A program (or the log) writes `output`.
    fn program(&mut self, output: &str) {
        if self.state.before_output() {
            self.text.push('\n');
        }
        self.text.push_str(output);
        self.state.after_output(output.chars().last(), self.now);
    }

    /// The user types `key`.
    fn key(&mut self, key: char) {
        self.line.push(key);
        match self.state.typing() {
            Typing::Echo => self.text.push(key),
            Typing::ShowAgain { new_line } => {
                if new_line {
                    self.text.push('\n');
                }
                self.text.push_str("monitor> ");
                self.text.push_str(&self.line);
            }
        }
    }

    /// The monitor's loop, `ticks` later.
    fn idle(&mut self, ticks: u64) {
        self.now += ticks;
        if self.state.prompt_owed(self.now) {
            self.show_prompt();
        }
    }
}

#[test]
fn output_during_typing_gets_lines_of_its_own_and_the_prompt_comes_back() {
    let mut console = Console::new();
    console.key('r');
    console.key('u');
    console.program("bench: fork 1.2 ms\n");
    console.idle(1);
    assert_eq!(console.text, "monitor> ru\nbench: fork 1.2 ms\n", "not yet: more may come");
    console.program("bench: done\n");
    console.idle(QUIET_TICKS);
    assert_eq!(console.text, "monitor> ru\nbench: fork 1.2 ms\nbench: done\nmonitor> ru");
    console.key('n');
    assert!(console.text.ends_with("\nmonitor> run"));
}

#[test]
fn a_key_typed_before_the_prompt_returns_brings_it_back_on_its_own_line() {
    let mut console = Console::new();
    console.program("progress: 10%");
    console.idle(QUIET_TICKS);
    assert_eq!(console.text, "monitor> \nprogress: 10%", "mid-line: no prompt yet");
    console.key('p');
    assert_eq!(console.text, "monitor> \nprogress: 10%\nmonitor> p");
    console.key('s');
    assert_eq!(console.text, "monitor> \nprogress: 10%\nmonitor> ps");
}

#[test]
fn output_after_the_prompt_has_ended_is_left_alone() {
    let mut console = Console::new();
    console.key('p');
    console.key('s');
    // Enter: the monitor ends the prompt line and answers.
    console.state.end_prompt();
    console.line.clear();
    console.text.push('\n');
    console.program("answer\n");
    console.idle(QUIET_TICKS);
    assert_eq!(console.text, "monitor> ps\nanswer\n", "the monitor shows its prompt itself");
    console.show_prompt();
    console.idle(QUIET_TICKS);
    assert_eq!(console.text, "monitor> ps\nanswer\nmonitor> ");
}

#[test]
fn without_a_prompt_nothing_is_added() {
    let mut state = PromptLine::new();
    assert!(!state.before_output());
    state.after_output(Some('\n'), 0);
    assert!(!state.prompt_owed(100));
    assert!(!state.show_prompt(), "at the start of a line");
    assert!(state.before_output());
    state.after_output(None, 1);
    assert!(state.prompt_owed(QUIET_TICKS), "nothing written: still at the line start");
}
