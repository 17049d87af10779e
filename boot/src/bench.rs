//! `cargo run -- bench`: boots the release kernel with its benchmarks and prints
//! their `R` lines as they come, then the same figures as a table, and draws the
//! scale chart (`target/bench/scale.svg`, see [`chart`]), with the Linux
//! anchor's figures when its logs are given (`--anchor LOG`).

use std::path::PathBuf;
use std::time::Duration;

use crate::chart::{self, Costs};
use crate::options::{Bench, Run};
use crate::{build, qemu};

/// One benchmark's figures, from its `R` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// The benchmark's name.
    pub name: String,
    /// `(field, value)` pairs in line order: ns, cyc, min, max, flt.
    pub fields: Vec<(String, String)>,
}

/// Parses `R <name> key=value ...`.
pub fn parse_line(line: &str) -> Option<Figures> {
    let mut words = line.strip_prefix("R ")?.split_whitespace();
    let name = words.next()?.to_string();
    let fields = words
        .map(|word| word.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect::<Option<Vec<_>>>()?;
    Some(Figures { name, fields })
}

/// The figures as an aligned table.
pub fn table(rows: &[Figures]) -> String {
    let width = rows.iter().map(|row| row.name.len()).max().unwrap_or(9).max(9);
    let mut text = format!(
        "{:<width$} {:>14} {:>14} {:>14} {:>14} {:>6}\n",
        "benchmark", "ns/op", "cycles/op", "min ns", "max ns", "flt"
    );
    for row in rows {
        let field =
            |key: &str| row.fields.iter().find(|(k, _)| k == key).map_or("-", |(_, v)| v.as_str());
        text += &format!(
            "{:<width$} {:>14} {:>14} {:>14} {:>14} {:>6}\n",
            row.name,
            field("ns"),
            field("cyc"),
            field("min"),
            field("max"),
            field("flt")
        );
    }
    text
}

/// The median nanoseconds per operation of each row over `logs` (their text),
/// as `anchor-linux/compare.py` reduces several logs of one side. Lines may
/// end in a carriage return (a serial console's) and pad names with spaces.
pub fn medians<'a>(logs: impl IntoIterator<Item = &'a str>) -> Costs {
    let mut all: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    for line in logs.into_iter().flat_map(str::lines) {
        let Some(row) = parse_line(line.trim()) else { continue };
        let ns = row.fields.iter().find(|(key, _)| key == "ns").and_then(|(_, v)| v.parse().ok());
        if let Some(ns) = ns {
            all.entry(row.name).or_default().push(ns);
        }
    }
    all.into_iter()
        .map(|(name, mut values)| {
            values.sort_by(f64::total_cmp);
            let middle = values.len() / 2;
            let median = if values.len() % 2 == 1 {
                values[middle]
            } else {
                (values[middle - 1] + values[middle]) / 2.0
            };
            (name, median)
        })
        .collect()
}

/// The anchor's figures: the medians over the logs at `paths`.
fn anchor(paths: &[String]) -> Result<Option<Costs>, String> {
    if paths.is_empty() {
        return Ok(None);
    }
    let mut texts = Vec::new();
    for path in paths {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read anchor log {path}: {e}"))?;
        texts.push(String::from_utf8_lossy(&bytes).into_owned());
    }
    let figures = medians(texts.iter().map(String::as_str));
    if figures.is_empty() {
        return Err(format!("no `R` lines in the anchor logs {paths:?}"));
    }
    Ok(Some(figures))
}

/// Writes the scale chart under `target/bench/`; returns its path.
fn write_chart(ours: &Costs, linux: Option<&Costs>) -> Result<PathBuf, String> {
    let directory = build::target_dir().join("bench");
    std::fs::create_dir_all(&directory)
        .map_err(|e| format!("cannot create {}: {e}", directory.display()))?;
    let path = directory.join("scale.svg");
    std::fs::write(&path, chart::svg(ours, linux))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// Memory of the machine the swap rows run on: small, so that 1.5 times it
/// is quick to walk.
const SWAP_BENCH_MEMORY: &str = "48M";
/// Its swap disk: room for the thrashing rows' working set and more.
const SWAP_BENCH_DISK: &str = "256M";

/// Processors of the machine the processors' rows run on.
const PROCESSORS_BENCH_SMP: u32 = 4;

/// Boots the release kernel headless with `bench once` on one processor (as
/// the Linux anchor boots), then again on a small machine with `bench=swap
/// once`, then on one with [`PROCESSORS_BENCH_SMP`] processors with
/// `bench=smp once`; true if all finished and every benchmark's own checks
/// passed.
pub fn run(options: Bench) -> Result<bool, String> {
    let linux = anchor(&options.anchors)?;
    let mut run = options.run;
    run.release = true;
    run.once = true;
    run.headless = true;
    run.kernel_args.push("bench".into());
    if run.memory == Run::default().memory {
        run.memory = "512M".into();
    }
    if run.smp == Run::default().smp {
        run.smp = 1;
    }
    let images = build::kernel_images(&run)?;
    let image = if run.uefi { &images.uefi } else { &images.bios };
    let mut rows = Vec::new();
    let mut lines = String::new();
    let mut keep = |line: &str| {
        let line = line.trim_end();
        println!("{line}");
        rows.extend(parse_line(line));
        lines += line;
        lines.push('\n');
    };
    let outcome = qemu::run_captured(image, &run, Duration::from_secs(600), &mut keep)?;
    // The swap rows on a small machine of their own, with a swap disk
    // beside the compressed pool.
    let mut small = run.clone();
    small.memory = SWAP_BENCH_MEMORY.into();
    small.swap = Some(SWAP_BENCH_DISK.into());
    small.kernel_args.retain(|arg| arg != "bench");
    small.kernel_args.push("bench=swap".into());
    // A pool that may hold half the machine: room for the thrashing rows'
    // working set in compressed form (4 slots a frame of it).
    small.kernel_args.push("swap_pool=50".into());
    // The command line travels in the image's ramdisk: one of its own.
    let small_images =
        build::kernel_images_in(&small, &build::target_dir().join("images").join("bench-swap"))?;
    let small_image = if small.uefi { &small_images.uefi } else { &small_images.bios };
    let swapped = qemu::run_captured(small_image, &small, Duration::from_secs(900), &mut keep)?;
    // The processors' rows on a machine of several.
    let mut several = run.clone();
    several.smp = PROCESSORS_BENCH_SMP;
    several.memory = Run::default().memory;
    several.kernel_args.retain(|arg| arg != "bench");
    several.kernel_args.push("bench=smp".into());
    let several_images =
        build::kernel_images_in(&several, &build::target_dir().join("images").join("bench-smp"))?;
    let several_image = if several.uefi { &several_images.uefi } else { &several_images.bios };
    let shot = qemu::run_captured(several_image, &several, Duration::from_secs(300), &mut keep)?;
    println!("\n{}", table(&rows));
    if !rows.is_empty() {
        let path = write_chart(&medians([lines.as_str()]), linux.as_ref())?;
        println!("chart: {}", path.display());
    }
    let outcomes =
        [("benchmark", outcome), ("swap benchmark", swapped), ("processors' benchmark", shot)];
    for (what, outcome) in outcomes {
        if !outcome.passed() {
            eprintln!("boot: {what} run ended with {outcome:?}");
        }
    }
    Ok(outcomes.iter().all(|(_, outcome)| outcome.passed()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_lines_are_parsed_and_tabled() {
        let row = parse_line("R fork_0M ns=24610.8 cyc=63939 min=18042.3 max=139295.9 flt=1.12")
            .expect("an R line");
        assert_eq!(row.name, "fork_0M");
        assert_eq!(row.fields[1], ("cyc".to_string(), "63939".to_string()));
        let text = table(&[row]);
        assert!(
            text.lines()
                .nth(1)
                .is_some_and(|line| line.starts_with("fork_0M") && line.ends_with("1.12"))
        );
    }

    #[test]
    fn medians_are_taken_per_row_over_logs() {
        let linux = "R fork_16M                     ns=1238262.0 cyc=3210064 min=1.0 max=2.0 \
                     flt=1.000 ops=1 reps=21\r\nI tsc_ghz=2.6\r\n";
        let figures = medians([
            linux,
            "R fork_16M ns=1000.0 cyc=1 min=1 max=1 flt=0\nR fork_0M ns=5.0 cyc=1 min=1 max=1 flt=0",
            "R fork_16M ns=2000.0 cyc=1 min=1 max=1 flt=0\n",
        ]);
        assert_eq!(figures.len(), 2);
        assert_eq!(figures["fork_16M"], 2000.0);
        assert_eq!(figures["fork_0M"], 5.0);
        let even = medians(["R a ns=1 cyc=1\nR a ns=4 cyc=1\n"]);
        assert_eq!(even["a"], 2.5);
    }

    #[test]
    fn other_lines_are_not_figures() {
        assert_eq!(parse_line("I tsc_ghz=2.6"), None);
        assert_eq!(parse_line("R broken ns"), None);
    }
}
