//! What a test kernel's boot said, and the verdict on it.
//!
//! A boot passes only if everything it says adds up, since each way it can
//! fall short has happened: a guest that resets or triple-faults also ends the
//! emulator, a test that ends the kernel by panicking as expected used to hide
//! every test after it, and a misspelt kernel argument ran the default
//! configuration under a label that named another. So the kernel's lines are
//! collected here ([`Report::read`]) and [`verdict`] requires all of:
//!
//! - the kernel reported success (isa-debug-exit, or Bochs's debug port);
//! - no test failed, and at least one ran;
//! - its configuration line (`configuration: pt_cache=1 tlb_check=on chaos=0
//!   pcid=off cpus=2`) shows what the run asked for ([`Expected`]), as many
//!   processors online as the machine was given among it;
//! - its plan line (`in-kernel tests: N in this kernel, the first K skipped`)
//!   skips exactly what this boot asked it to skip;
//! - and either its summary line (`all M in-kernel tests run passed ...`) counts
//!   as many tests as there were `ok` lines, and they are all of the kernel's
//!   tests, or its last test passed by panicking as expected (`ok (panicked:
//!   ...)`), which ends the kernel: then another boot must carry on after it
//!   ([`Next::SkipTo`], the kernel's `skip_tests=K`).

use crate::options::Run;
use crate::qemu::Outcome;

/// What one boot of a test kernel printed, as far as the verdict goes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    /// From the plan line: the kernel's number of tests, and how many it skipped.
    pub plan: Option<(usize, usize)>,
    /// Tests that passed, in order.
    pub passed: Vec<String>,
    /// Tests that failed.
    pub failed: Vec<String>,
    /// From the summary line: how many tests the kernel says it ran.
    pub summary: Option<usize>,
    /// The last test line was a pass by an expected panic.
    pub ended_by_expected_panic: bool,
    /// The configuration line's `key=value` words.
    pub configuration: Option<Vec<(String, String)>>,
}

/// A test result line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestLine<'a> {
    pub name: &'a str,
    pub passed: bool,
    /// What follows `ok` or `FAILED` (` (panicked: ...)`, ` (why)`).
    pub note: &'a str,
}

/// The note of a test that passed by panicking as it expected.
const EXPECTED_PANIC_NOTE: &str = " (panicked: ";

impl Report {
    /// Takes in one line of the kernel's output; returns it as a test result
    /// if it is one.
    pub fn read<'a>(&mut self, line: &'a str) -> Option<TestLine<'a>> {
        let line = line.trim_end();
        if let Some(test) = parse_test_line(line) {
            if test.passed {
                self.passed.push(test.name.to_string());
            } else {
                self.failed.push(test.name.to_string());
            }
            self.ended_by_expected_panic =
                test.passed && test.note.starts_with(EXPECTED_PANIC_NOTE);
            return Some(test);
        }
        // The kernel says its configuration and plan before any program runs:
        // the first such lines are its own.
        if let Some(plan) = parse_plan(line) {
            self.plan = self.plan.or(Some(plan));
        } else if let Some(count) = parse_summary(line) {
            self.summary = Some(count);
        } else if let Some(words) = line.strip_prefix("configuration: ")
            && self.configuration.is_none()
        {
            let pairs = words.split_whitespace().filter_map(|word| word.split_once('='));
            self.configuration =
                Some(pairs.map(|(key, value)| (key.to_string(), value.to_string())).collect());
        }
        None
    }
}

/// Parses `test NAME ... ok[ note]` or `test NAME ... FAILED[ note]`.
pub fn parse_test_line(line: &str) -> Option<TestLine<'_>> {
    let rest = line.strip_prefix("test ")?;
    let (name, result) = rest.split_once(" ... ")?;
    if let Some(note) = result.strip_prefix("ok") {
        Some(TestLine { name, passed: true, note })
    } else {
        result.strip_prefix("FAILED").map(|note| TestLine { name, passed: false, note })
    }
}

/// Parses `in-kernel tests: N in this kernel, the first K skipped`.
fn parse_plan(line: &str) -> Option<(usize, usize)> {
    let rest = line.strip_prefix("in-kernel tests: ")?;
    let (total, rest) = rest.split_once(" in this kernel, the first ")?;
    let skipped = rest.strip_suffix(" skipped")?;
    Some((total.parse().ok()?, skipped.parse().ok()?))
}

/// Parses `all M in-kernel tests run passed (...)`.
fn parse_summary(line: &str) -> Option<usize> {
    let rest = line.strip_prefix("all ")?;
    let (count, rest) = rest.split_once(' ')?;
    rest.starts_with("in-kernel tests run passed").then(|| count.parse().ok())?
}

/// What a boot must do after this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The kernel's tests are all done.
    Done,
    /// Boot again, skipping this many tests: the last one ended the kernel by
    /// panicking as it expected.
    SkipTo(usize),
}

/// The configuration a run asked for, as the kernel's configuration line must
/// show it: each key with the value it must have, or `None` for "any but 0"
/// (a bare `chaos`, whose interval is the kernel's choice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected(pub Vec<(&'static str, Option<String>)>);

impl Expected {
    /// What `run` asks of the kernel: `pt_cache` and `frame_cache` if it
    /// names them, `tlb_check`
    /// and chaos on or off, PCIDs on under Bochs, off under QEMU's TCG with
    /// its default processor (which has none), and every processor the
    /// machine has online (unless QEMU's own `-smp` gave it some).
    pub fn of(run: &Run) -> Expected {
        let mut pt_cache = None;
        let mut frame_cache = None;
        let mut tlb_check = false;
        let mut chaos = Some("0".to_string());
        for word in &run.kernel_args {
            match word.split_once('=') {
                Some(("pt_cache", size)) => pt_cache = Some(size.to_string()),
                Some(("frame_cache", limit)) => frame_cache = Some(limit.to_string()),
                Some(("chaos", interval)) => chaos = Some(interval.to_string()),
                None if word == "chaos" => chaos = None,
                None if word == "tlb_check" => tlb_check = true,
                _ => {}
            }
        }
        let on_off = |on: bool| Some(if on { "on" } else { "off" }.to_string());
        let mut keys = Vec::new();
        if let Some(size) = pt_cache {
            keys.push(("pt_cache", Some(size)));
        }
        if let Some(limit) = frame_cache {
            keys.push(("frame_cache", Some(limit)));
        }
        keys.push(("tlb_check", on_off(tlb_check)));
        keys.push(("chaos", chaos));
        let default_processor = !run.qemu_sets("-cpu");
        if run.bochs {
            keys.push(("pcid", on_off(true)));
        } else if run.accel == "tcg" && default_processor {
            keys.push(("pcid", on_off(false)));
        }
        if !run.qemu_sets("-smp") {
            keys.push(("cpus", Some(run.smp.to_string())));
        }
        Expected(keys)
    }

    /// Why `configuration` is not what was asked for, if it is not.
    pub fn mismatch(&self, configuration: &[(String, String)]) -> Option<String> {
        for (key, wanted) in &self.0 {
            let got = configuration.iter().find(|(name, _)| name == key).map(|(_, value)| value);
            let fits = match (wanted, got) {
                (_, None) => false,
                (Some(wanted), Some(got)) => wanted == got,
                (None, Some(got)) => got != "0",
            };
            if !fits {
                let wanted = wanted.as_deref().unwrap_or("on");
                let got = got.map_or("nothing".to_string(), |got| format!("{key}={got}"));
                return Some(format!("asked for {key}={wanted}, the kernel says {got}"));
            }
        }
        None
    }
}

/// The verdict on one boot that was asked to skip `skipped` tests: what must
/// come next, or why it failed. A boot with failed tests has failed (those
/// tests are counted already).
pub fn verdict(
    report: &Report,
    outcome: Outcome,
    expected: &Expected,
    skipped: usize,
    limit_seconds: u64,
) -> Result<Next, String> {
    if !report.failed.is_empty() {
        return Err(format!("{} test(s) failed", report.failed.len()));
    }
    if !outcome.passed() {
        return Err(outcome.explain(limit_seconds));
    }
    let Some(configuration) = &report.configuration else {
        return Err("the kernel did not say its configuration".into());
    };
    if let Some(why) = expected.mismatch(configuration) {
        return Err(why);
    }
    let Some((total, plan_skipped)) = report.plan else {
        return Err("the kernel did not say how many tests it has".into());
    };
    if plan_skipped != skipped {
        return Err(format!("asked to skip {skipped} tests, the kernel skipped {plan_skipped}"));
    }
    let ran = report.passed.len();
    if ran == 0 {
        return Err("reported success but ran no test".into());
    }
    match report.summary {
        Some(count) if count != ran => {
            Err(format!("the kernel says {count} tests ran, {ran} said ok"))
        }
        Some(count) if skipped + count != total => {
            Err(format!("the kernel has {total} tests, {skipped} skipped and {count} run"))
        }
        Some(_) => Ok(Next::Done),
        None if !report.ended_by_expected_panic => {
            Err("ended with success but without its summary line".into())
        }
        None if skipped + ran < total => Ok(Next::SkipTo(skipped + ran)),
        None if skipped + ran == total => Ok(Next::Done),
        None => Err(format!("the kernel has {total} tests, {skipped} skipped and {ran} run")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The report of `lines`.
    fn report(lines: &str) -> Report {
        let mut report = Report::default();
        lines.lines().for_each(|line| {
            report.read(line);
        });
        report
    }

    const CONFIGURATION: &str = "configuration: pt_cache=8 tlb_check=off chaos=0 pcid=off cpus=2";

    /// A clean boot of a kernel with `tests` tests.
    fn clean(tests: usize) -> String {
        let mut text = format!(
            "{CONFIGURATION}\nin-kernel tests: {tests} in this kernel, the first 0 skipped\n"
        );
        for index in 0..tests {
            text += &format!("test t{index} ... ok\n");
        }
        text + &format!("all {tests} in-kernel tests run passed (0 skipped of {tests})\n")
    }

    fn judge(lines: &str, outcome: Outcome) -> Result<Next, String> {
        verdict(&report(lines), outcome, &Expected::of(&Run::default()), 0, 60)
    }

    #[test]
    fn lines_are_parsed() {
        let ok = parse_test_line("test a::b ... ok");
        assert_eq!(ok, Some(TestLine { name: "a::b", passed: true, note: "" }));
        let failed = parse_test_line("test x ... FAILED (why)");
        assert_eq!(failed, Some(TestLine { name: "x", passed: false, note: " (why)" }));
        assert_eq!(parse_test_line("[ INFO kernel] test ... of nothing"), None);
        assert_eq!(
            parse_plan("in-kernel tests: 12 in this kernel, the first 3 skipped"),
            Some((12, 3))
        );
        assert_eq!(parse_summary("all 9 in-kernel tests run passed (3 skipped of 12)"), Some(9));
        assert_eq!(parse_summary("all 9 in-kernel tests of this kernel passed"), None);
    }

    #[test]
    fn a_clean_boot_passes() {
        assert_eq!(judge(&clean(3), Outcome::Success), Ok(Next::Done));
    }

    #[test]
    fn a_reset_or_triple_fault_fails_whatever_was_printed() {
        assert!(judge(&clean(3), Outcome::Exited(Some(0))).is_err());
        assert!(judge(&clean(3), Outcome::Exited(None)).is_err());
        assert!(judge(&clean(3), Outcome::TimedOut).is_err());
        assert!(judge(&clean(3), Outcome::Failure).is_err());
        assert!(!Outcome::Exited(Some(0)).passed());
    }

    #[test]
    fn a_missing_ok_line_fails() {
        let text = clean(3).replace("test t1 ... ok\n", "");
        assert!(judge(&text, Outcome::Success).unwrap_err().contains("3 tests ran, 2 said ok"));
    }

    #[test]
    fn a_summary_that_does_not_cover_every_test_fails() {
        let text = clean(3).replace("3 in this kernel", "4 in this kernel");
        assert!(judge(&text, Outcome::Success).is_err());
    }

    #[test]
    fn success_without_summary_or_plan_or_tests_fails() {
        let without_summary: String = clean(2)
            .lines()
            .filter(|line| !line.starts_with("all "))
            .map(|l| l.to_string() + "\n")
            .collect();
        assert!(judge(&without_summary, Outcome::Success).is_err());
        let without_plan = clean(2).replace("in-kernel tests: ", "");
        assert!(judge(&without_plan, Outcome::Success).is_err());
        assert!(judge(&clean(0), Outcome::Success).is_err());
    }

    #[test]
    fn a_failed_test_fails_the_boot() {
        let text = clean(2).replace("test t1 ... ok", "test t1 ... FAILED");
        assert!(judge(&text, Outcome::Success).is_err());
    }

    #[test]
    fn an_expected_panic_before_the_last_test_asks_for_another_boot() {
        let text = format!(
            "{CONFIGURATION}\nin-kernel tests: 4 in this kernel, the first 0 skipped\n\
             test a ... ok\ntest b ... ok (panicked: deliberate)\npower off (success)\n"
        );
        assert_eq!(judge(&text, Outcome::Success), Ok(Next::SkipTo(2)));
        let after = format!(
            "{CONFIGURATION}\nin-kernel tests: 4 in this kernel, the first 2 skipped\n\
             test c ... ok\ntest d ... ok\nall 2 in-kernel tests run passed (2 skipped of 4)\n"
        );
        let expected = Expected::of(&Run::default());
        assert_eq!(verdict(&report(&after), Outcome::Success, &expected, 2, 60), Ok(Next::Done));
        assert!(verdict(&report(&after), Outcome::Success, &expected, 0, 60).is_err());
    }

    #[test]
    fn an_expected_panic_in_the_last_test_ends_the_kernel() {
        let text = format!(
            "{CONFIGURATION}\nin-kernel tests: 2 in this kernel, the first 0 skipped\n\
             test a ... ok\ntest b ... ok (panicked: deliberate)\n"
        );
        assert_eq!(judge(&text, Outcome::Success), Ok(Next::Done));
    }

    #[test]
    fn the_configuration_must_be_the_one_asked_for() {
        let run = |args: &[&str], bochs: bool| Run {
            kernel_args: args.iter().map(|word| word.to_string()).collect(),
            bochs,
            ..Run::default()
        };
        let check = |run: &Run, line: &str| {
            let mut report = Report::default();
            report.read(line);
            Expected::of(run).mismatch(&report.configuration.expect("configuration"))
        };
        let line = "configuration: pt_cache=1 tlb_check=on chaos=4 pcid=on cpus=2";
        assert_eq!(check(&run(&["pt_cache=1", "tlb_check", "chaos"], true), line), None);
        assert_eq!(check(&run(&["pt_cache=1", "tlb_check", "chaos=4"], true), line), None);
        // What a misspelt word used to leave: the default configuration.
        let default = "configuration: pt_cache=8 tlb_check=off chaos=0 pcid=off cpus=2";
        assert!(check(&run(&["pt_cache=1"], false), default).is_some());
        assert!(check(&run(&["tlb_check"], false), default).is_some());
        assert!(check(&run(&["chaos"], false), default).is_some());
        assert!(check(&run(&["chaos=3"], false), default).is_some());
        assert!(check(&run(&[], true), default).is_some(), "Bochs runs have PCIDs");
        assert!(check(&run(&[], false), line).is_some());
        assert!(check(&run(&[], false), "configuration: pt_cache=8").is_some());
        assert_eq!(check(&run(&[], false), default), None);
        // Processors that did not come up.
        let one = "configuration: pt_cache=8 tlb_check=off chaos=0 pcid=off cpus=1";
        assert!(check(&run(&[], false), one).is_some(), "two asked for, one online");
        let four = Run { smp: 4, ..run(&[], false) };
        assert!(check(&four, default).is_some(), "four asked for, two online");
        assert_eq!(check(&Run { smp: 1, ..run(&[], false) }, one), None);
        // Frame caches, when asked for.
        let off = "configuration: pt_cache=8 tlb_check=off chaos=0 pcid=off frame_cache=0 cpus=2";
        assert_eq!(check(&run(&["frame_cache=0"], false), off), None);
        assert!(check(&run(&["frame_cache=0"], false), default).is_some(), "not said");
        assert!(check(&run(&["frame_cache=4"], false), off).is_some(), "another limit");
    }

    #[test]
    fn only_the_first_configuration_and_plan_lines_count() {
        let forged = "configuration: pt_cache=1 tlb_check=on chaos=0 pcid=off\n\
                      in-kernel tests: 3 in this kernel, the first 0 skipped\n";
        let text = clean(3).replace("test t0 ... ok\n", &format!("test t0 ... ok\n{forged}"));
        let report = report(&text);
        assert_eq!(report.plan, Some((3, 0)));
        let run = Run { kernel_args: vec!["pt_cache=1".into()], ..Run::default() };
        let configuration = report.configuration.expect("configuration");
        assert!(Expected::of(&run).mismatch(&configuration).is_some());
    }

    #[test]
    fn a_boot_without_its_configuration_line_fails() {
        let text = clean(2).replace(CONFIGURATION, "");
        assert!(judge(&text, Outcome::Success).unwrap_err().contains("configuration"));
    }
}
