//! The test runner: host tests, then every test kernel under QEMU (or Bochs, for
//! runs that say `--bochs`), then the system checks.
//!
//! Host tests are `cargo test` runs of the portable code, each with a time limit;
//! their own summary lines are parsed and added up, and a suite that exits with
//! failure counts as a failure even after printing results, unless its failures
//! were counted from them. Each file in `tests/src/bin/` is a test kernel; it is
//! booted once per `//! run:` line in its source (runner options, such as
//! `--memory 16M` or `--uefi`; no line means one default run), headless, with a
//! time limit. A kernel's test lines (`test NAME ... ok|FAILED`) are counted, and
//! a run that does not add up (see `report`) counts as one failure of its own; a
//! test that ends its kernel by panicking as expected makes the run boot again,
//! carrying on after it. In `//!` lines, `${NAME}` and `${NAME:-DEFAULT}` stand
//! for the environment variable NAME (or DEFAULT when it is unset), so that a
//! soak can change a run without editing its source.
//!
//! Test-kernel runs go on several at once (`--jobs`, by default one per host
//! processor: QEMU's TCG and Bochs mostly keep one busy each), longest-looking
//! first; each run's lines are then printed together when it ends.
//!
//! Words on the command line choose test kernels by name, and the system checks
//! by the word `system`; a word that chooses nothing is an error. Tools that the
//! chosen runs need are looked for first (see `tools`). The run ends with the
//! failed tests by name, and the last line is always `N passed, N failed`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::bochs;
use crate::build::{self, LevelFilter, workspace_root};
use crate::options::{self, Command as ToolCommand, Run, SYSTEM_CHECKS, Test};
use crate::qemu;
use crate::report::{self, Expected, Next, Report};
use crate::tools::{Host, Missing};
use crate::watch::{self, Ended};

/// Time limit of one test-kernel run, unless its source says `//! timeout: SECONDS`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Time limit of one host test suite, its build included.
const HOST_LIMIT: Duration = Duration::from_secs(900);

/// The host test suites: the package each tests, and the rest of the arguments
/// to `cargo test`.
const HOST_SUITES: &[(&str, &[&str])] =
    &[("kernel", &["--lib"]), ("abi", &[]), ("user", &["--lib"]), ("boot", &[])];

/// Passed, failed and skipped tests so far, and the failed ones' names.
#[derive(Debug, Default)]
pub struct Tally {
    passed: usize,
    failed: usize,
    skipped: usize,
    failures: Vec<String>,
    /// Lines kept to be printed as one block, for a tally of a run that goes
    /// on beside others; `None`: lines are printed as they come.
    kept: Option<Vec<String>>,
}

impl Tally {
    /// A tally that keeps its lines (see [`Tally::absorb`]).
    fn keeping() -> Tally {
        Tally { kept: Some(Vec::new()), ..Tally::default() }
    }

    /// Prints `line`, or keeps it.
    fn say(&mut self, line: String) {
        match &mut self.kept {
            Some(lines) => lines.push(line),
            None => println!("{line}"),
        }
    }

    /// Adds `other`'s counts and failures to this one's, and says the lines
    /// it kept.
    fn absorb(&mut self, other: Tally) {
        for line in other.kept.into_iter().flatten() {
            self.say(line);
        }
        self.passed += other.passed;
        self.failed += other.failed;
        self.skipped += other.skipped;
        self.failures.extend(other.failures);
    }

    /// Counts and prints the result of the test `name`.
    pub fn record(&mut self, name: &str, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.say(format!("test {name} ... ok"));
                self.passed += 1;
            }
            Err(why) => {
                self.say(format!("test {name} ... FAILED ({why})"));
                self.failed += 1;
                self.failures.push(name.to_string());
            }
        }
    }

    /// Counts a test whose result was printed already.
    fn count(&mut self, name: String, passed: bool) {
        if passed {
            self.passed += 1;
        } else {
            self.failed += 1;
            self.failures.push(name);
        }
    }

    /// Counts and prints a test that could not run for want of `tool`.
    pub fn skip(&mut self, name: &str, tool: crate::tools::Tool) {
        self.say(format!("test {name} ... skipped (needs {}, which is missing)", tool.name()));
        self.skipped += 1;
    }

    /// Prints the end of the run: its time, what was skipped, the failed tests
    /// by name, and last `N passed, N failed`.
    fn finish(&self, started: Instant) {
        println!("\ntotal time {:.1} s", started.elapsed().as_secs_f64());
        if self.skipped > 0 {
            println!("{} skipped: a tool they need is missing (see tool::...)", self.skipped);
        }
        if !self.failures.is_empty() {
            println!("failed:");
            for name in &self.failures {
                println!("    {name}");
            }
        }
        println!("{} passed, {} failed", self.passed, self.failed);
    }
}

/// Runs everything `test` asks for; true if nothing failed. An error (a word
/// that chooses nothing) comes before anything runs.
pub fn run_all(test: &Test) -> Result<bool, String> {
    let started = Instant::now();
    let sources = test_kernel_sources()?;
    let names: Vec<String> = sources.iter().map(|path| file_stem(path)).collect();
    let (chosen, system) = choose(&names, &test.filters)?;
    let kernels: Vec<(String, Result<Vec<KernelRun>, String>)> =
        chosen.iter().map(|&index| (names[index].clone(), kernel_runs(&sources[index]))).collect();
    let kernel_runs = kernels.iter().flat_map(|(_, runs)| runs.iter().flatten()).map(|k| &k.run);
    let check_runs = if system { crate::checks::runs() } else { Vec::new() };
    let missing = Missing::look_for(kernel_runs.chain(&check_runs), &Host::this());

    let mut tally = Tally::default();
    for (name, why) in missing.failures() {
        tally.record(&name, Err(why.to_string()));
    }
    if !test.kernels_only {
        for (package, args) in HOST_SUITES {
            println!("== host tests: cargo test --package {package} {}", args.join(" "));
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let mut command = Command::new(cargo);
            command.current_dir(workspace_root()).args(["test", "--package", package]).args(*args);
            host_suite(&format!("host::{package}"), command, HOST_LIMIT, &mut tally);
        }
    }
    kernel_tests(&kernels, &missing, test.jobs.max(1), &mut tally);
    if system {
        crate::checks::run(&missing, &mut tally);
    }
    tally.finish(started);
    Ok(tally.failed == 0)
}

/// Which of the test kernels `names` the words `filters` choose (indices into
/// `names`), and whether they choose the system checks. No words choose
/// everything; a word that chooses nothing is an error.
fn choose(names: &[String], filters: &[String]) -> Result<(Vec<usize>, bool), String> {
    if filters.is_empty() {
        return Ok(((0..names.len()).collect(), true));
    }
    let mut chosen = Vec::new();
    let mut system = false;
    for word in filters {
        if word == SYSTEM_CHECKS {
            system = true;
            continue;
        }
        let matching: Vec<usize> =
            (0..names.len()).filter(|&i| names[i].contains(word.as_str())).collect();
        if matching.is_empty() {
            return Err(format!(
                "no test kernel matches {word:?} (the test kernels: {}; `{SYSTEM_CHECKS}` runs \
                 the system checks)",
                names.join(", ")
            ));
        }
        chosen.extend(matching);
    }
    chosen.sort();
    chosen.dedup();
    Ok((chosen, system))
}

/// Runs one `cargo test` suite on the host (`command`) within `limit`, echoing
/// it and adding its results; the suite fails as a whole if it did not end with
/// success and its failures were not counted from its result lines, or if it
/// printed none.
fn host_suite(name: &str, mut command: Command, limit: Duration, tally: &mut Tally) {
    let started = watch::own_group(command.stdout(Stdio::piped()).stdin(Stdio::null())).spawn();
    let mut child = match started {
        Ok(child) => child,
        Err(error) => return tally.record(name, Err(format!("cannot run cargo test: {error}"))),
    };
    let mut results: Option<(usize, usize)> = None;
    let ended = watch::watch(&mut child, limit, |line| {
        println!("{line}");
        if let Some((passed, failed)) = parse_cargo_result(line) {
            tally.passed += passed;
            tally.failed += failed;
            let (all_passed, all_failed) = results.unwrap_or_default();
            results = Some((all_passed + passed, all_failed + failed));
        }
    });
    match ended.map(|ended| host_verdict(ended, results, limit)) {
        Ok(Ok(())) => {}
        Ok(Err(why)) | Err(why) => tally.record(name, Err(why)),
    }
}

/// The verdict on a host suite that ended so, having printed `results`
/// (passed, failed) in its result lines: failures already counted from them
/// are not counted again.
fn host_verdict(
    ended: Ended,
    results: Option<(usize, usize)>,
    limit: Duration,
) -> Result<(), String> {
    let status = match ended {
        Ended::TimedOut => return Err(format!("timed out after {} s", limit.as_secs())),
        Ended::Exited(status) => status,
    };
    match results {
        None if status.success() => Err("cargo test printed no result".into()),
        None => Err(format!("did not build or run: {status}")),
        Some((_, 0)) if !status.success() => {
            Err(format!("cargo test ended with {status} after its results"))
        }
        Some(_) => Ok(()),
    }
}

/// Parses cargo's `test result: ok. 12 passed; 0 failed; ...` line.
fn parse_cargo_result(line: &str) -> Option<(usize, usize)> {
    let rest = line.strip_prefix("test result: ")?;
    let count = |word: &str| -> Option<usize> {
        let end = rest.find(&format!(" {word}"))?;
        let start = rest[..end].rfind(' ').map_or(0, |i| i + 1);
        rest[start..end].parse().ok()
    };
    Some((count("passed")?, count("failed")?))
}

/// One boot of a test kernel.
struct KernelRun {
    name: String,
    /// User programs for its ramdisk (`//! programs:`).
    programs: Vec<String>,
    label: String,
    run: Run,
    timeout: Duration,
}

/// Builds the chosen test kernels, then boots each of their runs, `jobs` at
/// a time; a run that needs a missing tool is skipped.
fn kernel_tests(
    kernels: &[(String, Result<Vec<KernelRun>, String>)],
    missing: &Missing,
    jobs: usize,
    tally: &mut Tally,
) {
    if kernels.is_empty() {
        return;
    }
    println!("== building the test kernels");
    let dir = match build::cargo_build(&["--package", "kernel-tests", "--bins"], false) {
        Ok(dir) => dir,
        Err(why) => return tally.record("kernels::build", Err(why)),
    };
    let mut runs = Vec::new();
    for (name, kernel_runs) in kernels {
        match kernel_runs {
            Ok(kernel_runs) => {
                for kernel_run in kernel_runs {
                    match missing.blocking(&kernel_run.run) {
                        Some(tool) => tally.skip(&kernel_run.label, tool),
                        None => runs.push(kernel_run),
                    }
                }
            }
            Err(why) => tally.record(name, Err(why.clone())),
        }
    }
    runs.sort_by_key(|kernel_run| first_to_start(kernel_run));
    run_kernels(&dir, &runs, jobs, tally);
}

/// Where a run goes in the order runs start: Bochs runs first (tens of
/// seconds to over a minute each, several times a QEMU run), then runs with more time
/// allowed, then the rest in source order (the sort is stable), so that
/// `jobs` runners finish close together rather than one long run last.
fn first_to_start(kernel_run: &KernelRun) -> (bool, std::cmp::Reverse<Duration>) {
    (!kernel_run.run.bochs, std::cmp::Reverse(kernel_run.timeout))
}

/// Boots each of `runs` with [`run_kernel`], `jobs` at a time. With one job
/// its lines are printed as they come; with more, each run's lines are
/// printed together when it ends, so runs never interleave.
fn run_kernels(dir: &Path, runs: &[&KernelRun], jobs: usize, tally: &mut Tally) {
    if jobs <= 1 {
        return runs.iter().for_each(|kernel_run| run_kernel(dir, kernel_run, tally));
    }
    let next = &AtomicUsize::new(0);
    let (sender, receiver) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(runs.len()) {
            let sender = sender.clone();
            scope.spawn(move || {
                while let Some(kernel_run) = runs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let mut own = Tally::keeping();
                    run_kernel(dir, kernel_run, &mut own);
                    if sender.send(own).is_err() {
                        break;
                    }
                }
            });
        }
        drop(sender);
        for finished in receiver {
            tally.absorb(finished);
        }
    });
}

/// Every test kernel's source, sorted.
fn test_kernel_sources() -> Result<Vec<PathBuf>, String> {
    let dir = workspace_root().join("tests").join("src").join("bin");
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut sources: Vec<PathBuf> = entries
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect();
    sources.sort();
    Ok(sources)
}

fn file_stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The runs a test kernel's source asks for with `//! run:` and `//! timeout:`.
fn kernel_runs(source: &Path) -> Result<Vec<KernelRun>, String> {
    let text = std::fs::read_to_string(source)
        .map_err(|e| format!("cannot read {}: {e}", source.display()))?;
    let name = file_stem(source);
    let mut timeout = DEFAULT_TIMEOUT;
    let mut lines: Vec<String> = Vec::new();
    let mut programs: Vec<String> = Vec::new();
    for line in text.lines().filter(|line| DIRECTIVES.iter().any(|key| line.starts_with(key))) {
        let line = &expand_environment(line, |name| std::env::var(name).ok())
            .map_err(|why| format!("{name}: {why}"))?;
        if let Some(names) = line.strip_prefix("//! programs:") {
            programs.extend(names.split_whitespace().map(String::from));
        } else if let Some(options) = line.strip_prefix("//! run:") {
            lines.push(options.trim().to_string());
        } else if let Some(seconds) = line.strip_prefix("//! timeout:") {
            let seconds =
                seconds.trim().parse().map_err(|_| format!("{name}: bad timeout {seconds:?}"))?;
            timeout = Duration::from_secs(seconds);
        }
    }
    if lines.is_empty() {
        lines.push(String::new());
    }
    lines
        .into_iter()
        .map(|options| {
            let words: Vec<String> = options.split_whitespace().map(String::from).collect();
            match options::parse(&words) {
                Ok(ToolCommand::Run(mut run)) => {
                    run.headless = true;
                    let label = if options.is_empty() {
                        name.clone()
                    } else {
                        format!("{name}[{options}]")
                    };
                    let programs = programs.clone();
                    Ok(KernelRun { name: name.clone(), programs, label, run, timeout })
                }
                _ => Err(format!("{name}: bad run options {options:?}")),
            }
        })
        .collect()
}

/// The lines of a test kernel's source the runner reads.
const DIRECTIVES: [&str; 3] = ["//! programs:", "//! run:", "//! timeout:"];

/// `line` with each `${NAME}` or `${NAME:-DEFAULT}` replaced by the value
/// `lookup` gives for NAME (an environment variable), or by DEFAULT (nothing
/// if none) when it gives none or an empty one.
fn expand_environment(
    line: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut expanded = String::new();
    let mut rest = line;
    while let Some(start) = rest.find("${") {
        expanded.push_str(&rest[..start]);
        let inside = &rest[start + 2..];
        let end = inside.find('}').ok_or_else(|| format!("unclosed ${{ in {line:?}"))?;
        let (name, default) = inside[..end].split_once(":-").unwrap_or((&inside[..end], ""));
        let value = lookup(name).filter(|value| !value.is_empty());
        expanded.push_str(value.as_deref().unwrap_or(default));
        rest = &inside[end + 1..];
    }
    expanded.push_str(rest);
    Ok(expanded)
}

/// Boots one test-kernel run and counts its tests: again after each test that
/// ends the kernel by panicking as expected, skipping the tests done, until the
/// kernel's tests are all done or a boot fails.
fn run_kernel(dir: &Path, kernel: &KernelRun, tally: &mut Tally) {
    let expected = Expected::of(&kernel.run);
    let mut skip = 0;
    loop {
        let label = match skip {
            0 => kernel.label.clone(),
            _ => format!("{}(after test {skip})", kernel.label),
        };
        tally.say(format!("== test kernel {label}"));
        let started = Instant::now();
        let mut report = Report::default();
        let verdict = boot(dir, kernel, skip, &label, &mut report, tally).and_then(|outcome| {
            let limit = kernel.timeout.as_secs();
            report::verdict(&report, outcome, &expected, skip, limit)
        });
        let seconds = started.elapsed().as_secs_f64();
        let (passed, failed) = (report.passed.len(), report.failed.len());
        tally.say(format!("   ({passed} ok, {failed} failed, {seconds:.1} s)"));
        match verdict {
            Ok(Next::SkipTo(next)) if next > skip => skip = next,
            Ok(Next::SkipTo(_)) => {
                return tally.record(&label, Err("the next boot would not progress".into()));
            }
            Ok(Next::Done) => return,
            // Named failures are counted already.
            Err(_) if !report.failed.is_empty() => return,
            Err(why) => return tally.record(&label, Err(why)),
        }
    }
}

/// Boots a test kernel once with `skip_tests=skip`, reading its lines into
/// `report` and counting its tests; returns how the emulator run ended.
fn boot(
    dir: &Path,
    kernel: &KernelRun,
    skip: usize,
    label: &str,
    report: &mut Report,
    tally: &mut Tally,
) -> Result<qemu::Outcome, String> {
    let slug: String =
        label.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let out = build::target_dir().join("images").join("tests").join(slug);
    let mut words = kernel.run.kernel_args.clone();
    if skip > 0 {
        words.push(format!("skip_tests={skip}"));
    }
    let images = build::make_images(
        &dir.join(&kernel.name),
        &out,
        &words.join(" "),
        &kernel.programs.iter().map(String::as_str).collect::<Vec<_>>(),
        kernel.run.uefi,
        LevelFilter::Warn,
    )?;
    let image = if kernel.run.uefi { &images.uefi } else { &images.bios };
    let on_line = |text: &str| match report.read(text) {
        Some(test) => {
            let name = format!("{label}::{}", test.name);
            let result = if test.passed { "ok" } else { "FAILED" };
            tally.say(format!("test {name} ... {result}{}", test.note));
            tally.count(name, test.passed);
        }
        None => tally.say(format!("    | {}", text.trim_end())),
    };
    if kernel.run.bochs {
        bochs::run_captured(image, &kernel.run, kernel.timeout, on_line)
    } else {
        qemu::run_captured(image, &kernel.run, kernel.timeout, on_line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_variables_are_expanded() {
        let lookup = |name: &str| (name == "SET").then(|| "7".to_string());
        let expand = |line| expand_environment(line, lookup);
        assert_eq!(expand("a=${SET} b=${UNSET}").as_deref(), Ok("a=7 b="));
        assert_eq!(expand("${SET:-1} ${UNSET:-20000}").as_deref(), Ok("7 20000"));
        assert_eq!(expand("no variables").as_deref(), Ok("no variables"));
        assert!(expand("${OPEN").is_err());
    }

    /// A run of kernel `name` with `options` and `seconds` allowed.
    fn kernel_run(name: &str, options: &[&str], seconds: u64) -> KernelRun {
        let words: Vec<String> = options.iter().map(|word| word.to_string()).collect();
        let Ok(ToolCommand::Run(run)) = options::parse(&words) else { panic!("bad options") };
        let label = format!("{name}{options:?}");
        let timeout = Duration::from_secs(seconds);
        KernelRun { name: name.into(), programs: Vec::new(), label, run, timeout }
    }

    #[test]
    fn bochs_runs_and_the_longest_allowed_start_first() {
        let runs = [
            kernel_run("a", &[], 120),
            kernel_run("b", &["--bochs"], 120),
            kernel_run("c", &[], 900),
            kernel_run("d", &["--bochs"], 300),
            kernel_run("e", &["--uefi"], 120),
        ];
        let mut order: Vec<&KernelRun> = runs.iter().collect();
        order.sort_by_key(|kernel_run| first_to_start(kernel_run));
        let names: Vec<&str> = order.iter().map(|kernel_run| kernel_run.name.as_str()).collect();
        assert_eq!(names, ["d", "b", "c", "a", "e"]);
    }

    #[test]
    fn a_kept_tally_adds_up_and_says_its_lines_when_absorbed() {
        let mut run = Tally::keeping();
        run.record("k::one", Ok(()));
        run.record("k::two", Err("broken".into()));
        run.say("    | a kernel line".into());
        let mut whole = Tally::keeping();
        whole.record("host::x", Ok(()));
        whole.absorb(run);
        assert_eq!((whole.passed, whole.failed), (2, 1));
        assert_eq!(whole.failures, ["k::two"]);
        let lines = whole.kept.expect("kept lines");
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[2], "test k::two ... FAILED (broken)");
    }

    #[test]
    fn cargo_result_lines_are_counted() {
        let line = "test result: ok. 12 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out";
        assert_eq!(parse_cargo_result(line), Some((12, 3)));
        assert_eq!(parse_cargo_result("test foo ... ok"), None);
    }

    fn words(words: &[&str]) -> Vec<String> {
        words.iter().map(|word| word.to_string()).collect()
    }

    #[test]
    fn filter_words_add_up_and_each_must_choose_something() {
        let names = words(&["exceptions", "page_tables", "processes", "tlb_check"]);
        assert_eq!(choose(&names, &[]), Ok((vec![0, 1, 2, 3], true)));
        assert_eq!(choose(&names, &words(&["page"])), Ok((vec![1], false)));
        assert_eq!(choose(&names, &words(&["tlb", "page"])), Ok((vec![1, 3], false)));
        assert_eq!(choose(&names, &words(&["system"])), Ok((vec![], true)));
        assert_eq!(choose(&names, &words(&["proc", "system"])), Ok((vec![2], true)));
        assert!(choose(&names, &words(&["nothing"])).is_err());
        assert!(choose(&names, &words(&["page", "nothing"])).is_err());
        // Only the whole word chooses the system checks.
        assert!(choose(&names, &words(&["sys"])).is_err());
        assert_eq!(choose(&names, &words(&["s"])), Ok((vec![0, 1, 2], false)));
    }

    /// A tally after the host suite `script` (a shell script standing in for
    /// `cargo test`) within `limit`.
    fn suite(script: &str, limit: Duration) -> Tally {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        let mut tally = Tally::default();
        host_suite("host::fake", command, limit, &mut tally);
        tally
    }

    const RESULT: &str = "echo 'test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured'";
    const FAILED_RESULT: &str =
        "echo 'test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured'";

    #[test]
    fn a_clean_host_suite_passes() {
        let tally = suite(&format!("{RESULT}; exit 0"), Duration::from_secs(30));
        assert_eq!((tally.passed, tally.failed), (3, 0));
    }

    #[test]
    fn a_host_suite_that_fails_after_its_results_fails() {
        let tally = suite(&format!("{RESULT}; exit 1"), Duration::from_secs(30));
        assert_eq!((tally.passed, tally.failed), (3, 1));
        assert_eq!(tally.failures, ["host::fake"]);
    }

    #[test]
    fn failures_counted_from_results_are_not_counted_twice() {
        let tally = suite(&format!("{FAILED_RESULT}; exit 101"), Duration::from_secs(30));
        assert_eq!((tally.passed, tally.failed), (2, 1));
    }

    #[test]
    fn a_host_suite_without_results_fails() {
        assert_eq!(suite("exit 0", Duration::from_secs(30)).failed, 1);
        assert_eq!(suite("exit 101", Duration::from_secs(30)).failed, 1);
    }

    #[test]
    fn a_host_suite_that_hangs_fails_at_its_limit() {
        let tally = suite(&format!("{RESULT}; sleep 60"), Duration::from_secs(1));
        assert_eq!((tally.passed, tally.failed), (3, 1));
    }
}
