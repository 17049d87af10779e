//! `cargo run -- bench`: boots the release kernel with its benchmarks and prints
//! their `R` lines as they come, then the same figures as a table.

use std::time::Duration;

use crate::options::Run;
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

/// Boots the release kernel headless with `bench once`; true if it finished and
/// every benchmark's own checks passed.
pub fn run(mut run: Run) -> Result<bool, String> {
    run.release = true;
    run.once = true;
    run.headless = true;
    run.kernel_args.push("bench".into());
    if run.memory == Run::default().memory {
        run.memory = "512M".into();
    }
    let images = build::kernel_images(&run)?;
    let image = if run.uefi { &images.uefi } else { &images.bios };
    let mut rows = Vec::new();
    let outcome = qemu::run_captured(image, &run, Duration::from_secs(600), |line| {
        let line = line.trim_end();
        println!("{line}");
        rows.extend(parse_line(line));
    })?;
    println!("\n{}", table(&rows));
    if !outcome.passed() {
        eprintln!("boot: benchmark run ended with {outcome:?}");
    }
    Ok(outcome.passed())
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
    fn other_lines_are_not_figures() {
        assert_eq!(parse_line("I tsc_ghz=2.6"), None);
        assert_eq!(parse_line("R broken ns"), None);
    }
}
