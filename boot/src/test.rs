//! The test runner: host tests, then every test kernel under QEMU (or Bochs, for
//! runs that say `--bochs`).
//!
//! Host tests are `cargo test` runs of the portable code; their own summary lines
//! are parsed and added up. Each file in `tests/src/bin/` is a test kernel; it is
//! booted once per `//! run:` line in its source (runner options, such as
//! `--memory 16M` or `--uefi`; no line means one default run), headless, with a
//! time limit. In those lines, `${NAME}` and `${NAME:-DEFAULT}` stand for the
//! environment variable NAME (or DEFAULT when it is unset), so that a soak can
//! change a run without editing its source. A kernel's test lines (`test NAME ... ok|FAILED`) are counted; a
//! kernel that fails, hangs, or reboots without naming a failed test counts as one
//! failure of its own. The last line is always `N passed, N failed`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bochs;
use crate::build::{self, LevelFilter, workspace_root};
use crate::options::{self, Command as ToolCommand, Run, Test};
use crate::qemu::{self, Outcome};

/// Time limit of one test-kernel run, unless its source says `//! timeout: SECONDS`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// The host test suites: arguments to `cargo test`.
const HOST_SUITES: &[&[&str]] =
    &[&["--package", "kernel", "--lib"], &["--package", "abi"], &["--package", "boot"]];

/// Passed and failed tests so far.
#[derive(Debug, Default)]
pub struct Tally {
    passed: usize,
    failed: usize,
}

impl Tally {
    /// Counts and prints the result of the test `name`.
    pub fn record(&mut self, name: &str, result: Result<(), String>) {
        match result {
            Ok(()) => {
                println!("test {name} ... ok");
                self.passed += 1;
            }
            Err(why) => {
                println!("test {name} ... FAILED ({why})");
                self.failed += 1;
            }
        }
    }
}

/// Runs everything `test` asks for; true if nothing failed.
pub fn run_all(test: &Test) -> Result<bool, String> {
    let started = Instant::now();
    let mut tally = Tally::default();
    if !test.kernels_only {
        for suite in HOST_SUITES {
            host_suite(suite, &mut tally)?;
        }
    }
    kernel_tests(test.filter.as_deref(), &mut tally)?;
    if test.filter.as_deref().is_none_or(|filter| "system".contains(filter)) {
        crate::checks::run(&mut tally)?;
    }
    println!("\ntotal time {:.1} s", started.elapsed().as_secs_f64());
    println!("{} passed, {} failed", tally.passed, tally.failed);
    Ok(tally.failed == 0)
}

/// Runs one `cargo test` suite on the host, echoing it and adding its results.
fn host_suite(args: &[&str], tally: &mut Tally) -> Result<(), String> {
    println!("== host tests: cargo test {}", args.join(" "));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut child = Command::new(cargo)
        .current_dir(workspace_root())
        .arg("test")
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run cargo test: {e}"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut seen_results = false;
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        println!("{line}");
        if let Some((passed, failed)) = parse_cargo_result(&line) {
            tally.passed += passed;
            tally.failed += failed;
            seen_results = true;
        }
    }
    let status = child.wait().map_err(|e| format!("waiting for cargo test: {e}"))?;
    if !status.success() && !seen_results {
        println!("test host::{} ... FAILED (did not build or run: {status})", args.join("_"));
        tally.failed += 1;
    }
    Ok(())
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

/// Builds every test kernel, then boots each of its runs.
fn kernel_tests(filter: Option<&str>, tally: &mut Tally) -> Result<(), String> {
    let sources = test_kernel_sources(filter)?;
    if sources.is_empty() {
        println!("== no test kernels match");
        return Ok(());
    }
    println!("== building {} test kernels", sources.len());
    let dir = build::cargo_build(&["--package", "kernel-tests", "--bins"], false)?;
    for source in &sources {
        for kernel_run in kernel_runs(source)? {
            run_kernel(&dir, &kernel_run, tally)?;
        }
    }
    Ok(())
}

/// The test kernels' sources, sorted, keeping those whose name contains `filter`.
fn test_kernel_sources(filter: Option<&str>) -> Result<Vec<PathBuf>, String> {
    let dir = workspace_root().join("tests").join("src").join("bin");
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut sources: Vec<PathBuf> = entries
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .filter(|path| filter.is_none_or(|f| file_stem(path).contains(f)))
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

/// Boots one test-kernel run and counts its tests.
fn run_kernel(dir: &Path, kernel: &KernelRun, tally: &mut Tally) -> Result<(), String> {
    println!("== test kernel {}", kernel.label);
    let slug: String =
        kernel.label.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let out = build::target_dir().join("images").join("tests").join(slug);
    let line = kernel.run.kernel_args.join(" ");
    let images = build::make_images(
        &dir.join(&kernel.name),
        &out,
        &line,
        &kernel.programs.iter().map(String::as_str).collect::<Vec<_>>(),
        kernel.run.uefi,
        LevelFilter::Warn,
    )?;
    let image = if kernel.run.uefi { &images.uefi } else { &images.bios };
    let started = Instant::now();
    let (mut passed, mut failed) = (0, 0);
    let on_line = |text: &str| {
        let text = text.trim_end();
        match parse_kernel_test(text) {
            Some((test, true, note)) => {
                println!("test {}::{test} ... ok{note}", kernel.label);
                passed += 1;
            }
            Some((test, false, note)) => {
                println!("test {}::{test} ... FAILED{note}", kernel.label);
                failed += 1;
            }
            None => println!("    | {text}"),
        }
    };
    let outcome = if kernel.run.bochs {
        bochs::run_captured(image, &kernel.run, kernel.timeout, on_line)?
    } else {
        qemu::run_captured(image, &kernel.run, kernel.timeout, on_line)?
    };
    let seconds = started.elapsed().as_secs_f64();
    tally.passed += passed;
    tally.failed += failed;
    let clean = outcome == Outcome::Success && failed == 0 && passed > 0;
    if !clean && failed == 0 {
        let why = match outcome {
            Outcome::Success => "reported success but ran no test".to_string(),
            Outcome::Failure => "reported failure".to_string(),
            Outcome::TimedOut => format!("timed out after {} s", kernel.timeout.as_secs()),
            Outcome::Exited(code) => {
                format!("the emulator exited with {code:?} (triple fault or reboot?)")
            }
        };
        println!("test {} ... FAILED ({why})", kernel.label);
        tally.failed += 1;
    }
    println!("   ({} ok, {} failed, {seconds:.1} s)", passed, failed);
    Ok(())
}

/// Parses a kernel's `test NAME ... ok[ note]` or `test NAME ... FAILED[ note]`.
fn parse_kernel_test(line: &str) -> Option<(&str, bool, &str)> {
    let rest = line.strip_prefix("test ")?;
    let (name, result) = rest.split_once(" ... ")?;
    if let Some(note) = result.strip_prefix("ok") {
        Some((name, true, note))
    } else {
        result.strip_prefix("FAILED").map(|note| (name, false, note))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cargo_result_lines_are_counted() {
        let line = "test result: ok. 12 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out";
        assert_eq!(parse_cargo_result(line), Some((12, 3)));
        assert_eq!(parse_cargo_result("test foo ... ok"), None);
    }

    #[test]
    fn environment_variables_are_expanded() {
        let lookup = |name: &str| (name == "SET").then(|| "7".to_string());
        let expand = |line| expand_environment(line, lookup);
        assert_eq!(expand("a=${SET} b=${UNSET}").as_deref(), Ok("a=7 b="));
        assert_eq!(expand("${SET:-1} ${UNSET:-20000}").as_deref(), Ok("7 20000"));
        assert_eq!(expand("no variables").as_deref(), Ok("no variables"));
        assert!(expand("${OPEN").is_err());
    }

    #[test]
    fn kernel_test_lines_are_parsed() {
        assert_eq!(parse_kernel_test("test a::b ... ok"), Some(("a::b", true, "")));
        let failed = parse_kernel_test("test x ... FAILED (why)");
        assert_eq!(failed, Some(("x", false, " (why)")));
        assert_eq!(parse_kernel_test("[ INFO kernel] test ... of nothing"), None);
    }
}
