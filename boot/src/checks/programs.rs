//! Programs started from the monitor: `run`, `ps` and `kill` of a spinner, a
//! short program's report, and `run bench` to its end while a command is half
//! typed, whose transcript shows that output never continues the prompt line.

use std::time::Duration;

use super::{COMMAND_LIMIT, PROMPT, ask};
use crate::session::Console;

/// `probe`'s mode that spins until it is killed.
const SPINNER: &str = "run probe 8";
/// `probe`'s mode that forks, checks and exits with status 0 (a short run).
const SHORT_PROGRAM: &str = "run probe 1";

/// Starts the spinner with `run`, sees it in `ps`, kills it, and sees it gone
/// from `ps` (the monitor reaps what it kills) and not killable twice.
pub(super) fn run_and_kill_a_spinner(session: &mut Console) -> Result<(), String> {
    let answer = ask(session, SPINNER)?;
    let pid = started_pid(&answer).ok_or_else(|| format!("`{SPINNER}` gave {answer:?}"))?;
    let listing = ask(session, "ps")?;
    match ps_state(&listing, pid) {
        Some(state) if state.starts_with("probe ") && !state.contains("zombie") => {}
        _ => return Err(format!("`ps` does not show process {pid} alive: {listing:?}")),
    }
    let answer = ask(session, &format!("kill {pid}"))?;
    if !answer.contains(&format!("killed process {pid} (probe)")) {
        return Err(format!("`kill {pid}` gave {answer:?}"));
    }
    let listing = ask(session, "ps")?;
    if let Some(state) = ps_state(&listing, pid) {
        return Err(format!("process {pid} is still listed after `kill`: {state:?}"));
    }
    let answer = ask(session, &format!("kill {pid}"))?;
    match answer.trim_end().lines().collect::<Vec<_>>()[..] {
        [line] if line.starts_with("error: kill:") => Ok(()),
        _ => Err(format!("a second `kill {pid}` gave {answer:?}")),
    }
}

/// Starts a short program with `run` and waits for the monitor to say that it
/// exited with status 0.
pub(super) fn run_to_the_end(session: &mut Console) -> Result<(), String> {
    let answer = ask(session, SHORT_PROGRAM)?;
    let pid = started_pid(&answer).ok_or_else(|| format!("`{SHORT_PROGRAM}` gave {answer:?}"))?;
    session.expect(&format!("process {pid} (probe) "), COMMAND_LIMIT)?;
    let report = session.expect(PROMPT, COMMAND_LIMIT)?;
    match report.starts_with("exited with status 0") {
        true => Ok(()),
        false => Err(format!("process {pid} (probe) ended: {report:?}")),
    }
}

/// How long `run bench` may take: about 5 s for the debug kernel under TCG
/// on a 2-core machine, with room for a slower or busier one.
const BENCH_LIMIT: Duration = Duration::from_secs(120);
/// What is typed, without Enter, while `bench` prints.
const TYPED_DURING_BENCH: &str = "upt";
/// The rest of the command, typed once `bench` has ended.
const TYPED_AFTER_BENCH: &str = "ime";

/// Starts `bench` with `run`, types [`TYPED_DURING_BENCH`] while it prints,
/// waits for the monitor's report that it exited, then completes the command
/// (`uptime`) and waits for its answer. Returns everything printed from the
/// `run` command on, if `bench` exited with status 0 and the command was
/// answered.
pub(super) fn run_bench_while_typing(console: &mut Console) -> Result<String, String> {
    let answer = ask(console, "run bench")?;
    let pid = started_pid(&answer).ok_or_else(|| format!("`run bench` gave {answer:?}"))?;
    console.type_text(TYPED_DURING_BENCH)?;
    let mut transcript = answer;
    // The monitor's report, at the start of a line (the kernel's log of a
    // kill names the process too, after its level).
    transcript += &console.expect(&format!("\nprocess {pid} (bench) "), BENCH_LIMIT)?;
    let ending = console.expect("\n", COMMAND_LIMIT)?;
    if !ending.starts_with("exited with status 0") {
        return Err(format!("bench ended: {ending:?}"));
    }
    transcript += &ending;
    console.type_text(&format!("{TYPED_AFTER_BENCH}\r"))?;
    let answer = console.expect(" ticks)", COMMAND_LIMIT)?;
    transcript += &answer;
    transcript += &console.expect(PROMPT, COMMAND_LIMIT)?;
    Ok(transcript)
}

/// `bench`'s result lines in `transcript`: one `R` line per benchmark and its
/// closing `bench: done`.
pub(super) fn bench_results(transcript: &str) -> Result<(), String> {
    let results = transcript.lines().filter(|line| line.starts_with("R ")).count();
    let done = transcript.lines().any(|line| line.trim_end() == "bench: done");
    match (results, done) {
        (20.., true) => Ok(()),
        _ => Err(format!("bench printed {results} result lines, done: {done}")),
    }
}

/// Whether every line of `transcript` that shows the prompt holds only the
/// prompt and what was typed (a program's output never continues it), and
/// the prompt came back with the typed text after the program's output.
pub(super) fn prompt_kept_whole(transcript: &str) -> Result<(), String> {
    let typed = format!("{TYPED_DURING_BENCH}{TYPED_AFTER_BENCH}");
    for line in transcript.lines().map(str::trim_end) {
        let Some(at) = line.find(PROMPT) else { continue };
        let after = &line[at + PROMPT.len()..];
        if at != 0 || !typed.starts_with(after) {
            return Err(format!("a line mixes the prompt with other output: {line:?}"));
        }
    }
    let shown_again = format!("{PROMPT}{typed}");
    match transcript.lines().any(|line| line.trim_end() == shown_again) {
        true => Ok(()),
        false => Err(format!("the prompt and {typed:?} were not shown whole on a line")),
    }
}

/// The process id in `run`'s answer `started process N (NAME)...`.
fn started_pid(answer: &str) -> Option<u64> {
    let rest = &answer[answer.find("started process ")? + "started process ".len()..];
    rest.split(' ').next()?.parse().ok()
}

/// The rest of `ps`'s line for process `pid` (program and state), if listed.
fn ps_state(listing: &str, pid: u64) -> Option<&str> {
    listing.lines().find_map(|line| {
        let (id, rest) = line.trim_start().split_once(' ')?;
        // The last line, `N processes`, is the count, not process N.
        (id == pid.to_string() && rest.trim() != "processes").then(|| rest.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_line_with_other_output_is_caught() {
        let good = "run bench\r\nstarted process 5 (bench)\r\nmonitor> upt\r\nR x ns=1\r\n\
                    monitor> upt\r\nbench: done\r\nprocess 5 (bench) exited with status 0\r\n\
                    monitor> uptime\r\nuptime 1.00 s (100 ticks)\r\nmonitor> ";
        assert_eq!(prompt_kept_whole(good), Ok(()));
        let mixed = good.replace("monitor> upt\r\nR x", "monitor> uptR x");
        assert!(prompt_kept_whole(&mixed).is_err());
        let cut = good.replace("monitor> uptime\r\n", "ime\r\n");
        assert!(prompt_kept_whole(&cut).is_err(), "the whole command never shown");
        assert!(bench_results(good).is_err(), "one result line is not the suite");
    }

    #[test]
    fn run_and_ps_answers_are_read() {
        assert_eq!(started_pid("started process 12 (probe); `kill 12` ends it\r\n"), Some(12));
        assert_eq!(started_pid("error: run: no program \"x\"\r\n"), None);
        let listing = "  pid  program    state\r\n    1  init       zombie (exited with status 0)\r\n   12  probe      ready\r\n2 processes\r\n";
        assert_eq!(ps_state(listing, 12), Some("probe      ready"));
        assert_eq!(ps_state(listing, 2), None);
        assert_eq!(ps_state(listing, 1).map(|state| state.contains("zombie")), Some(true));
    }
}
