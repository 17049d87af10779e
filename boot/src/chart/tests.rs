//! The chart's geometry: each figure's point where its size and its decade
//! put it, Linux's beside ours, and what is missing left out.

use super::*;

const WIDTH_OF_PLOT: f64 = PLOT_RIGHT - PLOT_LEFT;
const HEIGHT_OF_PLOT: f64 = PLOT_BOTTOM - PLOT_TOP;

fn figures(rows: &[(&str, f64)]) -> Costs {
    rows.iter().map(|&(name, value)| (name.to_string(), value)).collect()
}

/// Ours: fork from 10 µs at 1 MiB to 10 ms at 256 MiB, a decade a step; the
/// switch round trip at 200 µs with one page table and 20 µs with more.
fn ours() -> Costs {
    figures(&[
        ("fork_0M", 5e3),
        ("fork_1M", 1e4),
        ("fork_16M", 1e5),
        ("fork_64M", 1e6),
        ("fork_256M", 1e7),
        ("switch_rtt_process_n1", 2e5),
        ("switch_rtt_process_n2", 2e4),
        ("switch_rtt_process_n4", 2e4),
        ("switch_rtt_process_n8", 2e4),
    ])
}

/// The value of attribute `name` in `line`.
fn attribute(line: &str, name: &str) -> f64 {
    let start = line.find(&format!(" {name}=\"")).expect("attribute") + name.len() + 3;
    let length = line[start..].find('"').expect("closing quote");
    line[start..start + length].parse().expect("a number")
}

/// The centres of the points of series `class` whose tooltip names `row`.
fn points(svg: &str, class: &str, row: &str) -> Vec<(f64, f64)> {
    svg.lines()
        .filter(|line| line.starts_with(&format!("<circle class=\"{class}\"")))
        .filter(|line| line.contains(&format!("<title>{row}: ")))
        .map(|line| (attribute(line, "cx"), attribute(line, "cy")))
        .collect()
}

/// Asserts the one point of `class` for `row` is at (`x`, `y`), to the 0.1 the
/// SVG is written with.
fn assert_point(svg: &str, class: &str, row: &str, x: f64, y: f64) {
    let found = points(svg, class, row);
    assert_eq!(found.len(), 1, "one {class} point for {row}");
    let (cx, cy) = found[0];
    assert!(
        (cx - x).abs() <= 0.06 && (cy - y).abs() <= 0.06,
        "{row}: ({cx}, {cy}), not ({x}, {y})"
    );
}

#[test]
fn points_land_on_their_size_and_their_decade() {
    let svg = svg(&ours(), None);
    // Fork: 1 to 256 MiB across the plot, 10 µs to 10 ms up it, both logarithmic.
    assert_point(&svg, "ours", "fork_1M", PLOT_LEFT, PLOT_BOTTOM);
    assert_point(&svg, "ours", "fork_256M", PLOT_RIGHT, PLOT_TOP);
    let (x16, y16) = (PLOT_LEFT + WIDTH_OF_PLOT / 2.0, PLOT_BOTTOM - HEIGHT_OF_PLOT / 3.0);
    assert_point(&svg, "ours", "fork_16M", x16, y16);
    let (x64, y64) = (PLOT_LEFT + WIDTH_OF_PLOT * 0.75, PLOT_BOTTOM - HEIGHT_OF_PLOT * 2.0 / 3.0);
    assert_point(&svg, "ours", "fork_64M", x64, y64);
    // Switch, in the second panel: N = 1 to 8 across; 20 µs and 200 µs within
    // the decades 10 µs to 1 ms, log10(2) and 1 + log10(2) of two decades up.
    let right = PANEL_WIDTH;
    let y_fast = PLOT_BOTTOM - HEIGHT_OF_PLOT * 2f64.log10() / 2.0;
    let y_slow = PLOT_BOTTOM - HEIGHT_OF_PLOT * (1.0 + 2f64.log10()) / 2.0;
    assert_point(&svg, "ours", "switch_rtt_process_n1", right + PLOT_LEFT, y_slow);
    let x2 = right + PLOT_LEFT + WIDTH_OF_PLOT / 3.0;
    assert_point(&svg, "ours", "switch_rtt_process_n2", x2, y_fast);
    assert_point(&svg, "ours", "switch_rtt_process_n8", right + PLOT_RIGHT, y_fast);
    // A row the chart does not show is not drawn.
    assert!(points(&svg, "ours", "fork_0M").is_empty());
    for label in [">10 µs<", ">100 µs<", ">1 ms<", ">10 ms<"] {
        assert!(svg.contains(label), "tick {label}");
    }
}

#[test]
fn without_an_anchor_there_is_no_linux() {
    let svg = svg(&ours(), None);
    assert!(!svg.contains("class=\"linux\""));
    assert!(!svg.contains("Linux"));
}

#[test]
fn linux_figures_stand_beside_ours_and_missing_ones_are_absent() {
    // The anchor has fork at 0, 16 and 256 MiB only, and a pipe round trip.
    let linux = figures(&[
        ("fork_0M", 3e5),
        ("fork_16M", 1e6),
        ("fork_256M", 1e7),
        ("pipe_rtt_process", 2e4),
    ]);
    let svg = svg(&ours(), Some(&linux));
    assert_point(&svg, "linux", "Linux fork_16M", PLOT_LEFT + WIDTH_OF_PLOT / 2.0, {
        PLOT_BOTTOM - HEIGHT_OF_PLOT * 2.0 / 3.0
    });
    assert_point(&svg, "linux", "Linux fork_256M", PLOT_RIGHT, PLOT_TOP);
    assert!(points(&svg, "linux", "Linux fork_1M").is_empty());
    assert!(points(&svg, "linux", "Linux fork_64M").is_empty());
    // One pipe figure at every N, level with our N = 2 row (the same 20 µs).
    let pipes = points(&svg, "linux", "Linux pipe_rtt_process");
    assert_eq!(pipes.len(), 4);
    let ours_n2 = points(&svg, "ours", "switch_rtt_process_n2")[0];
    assert!(pipes.iter().all(|&(_, y)| y == ours_n2.1));
    assert_eq!(pipes[1].0, ours_n2.0);
    assert_eq!(svg.matches("<circle class=\"linux\"").count(), 6);
    assert!(svg.contains("Linux (anchor"));
}

#[test]
fn linux_figures_widen_the_scale() {
    // A Linux fork at 30 ms raises the top of the fork panel to 100 ms.
    let linux = figures(&[("fork_256M", 3e7)]);
    let svg = svg(&ours(), Some(&linux));
    assert_point(&svg, "ours", "fork_256M", PLOT_RIGHT, PLOT_BOTTOM - HEIGHT_OF_PLOT * 0.75);
    assert!(svg.contains(">100 ms<"));
}

#[test]
fn a_panel_without_figures_says_so() {
    let svg = svg(&Costs::new(), None);
    assert_eq!(svg.matches(">no figures<").count(), 2);
    assert!(!svg.contains("<circle"));
}

#[test]
fn durations_are_labelled_in_their_unit() {
    assert_eq!(duration_label(100.0), "100 ns");
    assert_eq!(duration_label(1e4), "10 µs");
    assert_eq!(duration_label(1e6), "1 ms");
    assert_eq!(duration_label(1500.0), "1.50 µs");
    assert_eq!(duration_label(2.5e9), "2.50 s");
}

#[test]
fn linux_rows_are_paired_by_name_then_by_alias() {
    let linux = figures(&[("fork_16M", 1.0), ("pipe_rtt_process", 2.0)]);
    assert_eq!(linux_figure(&linux, "fork_16M"), Some(("fork_16M", 1.0)));
    assert_eq!(linux_figure(&linux, "switch_rtt_process_n4"), Some(("pipe_rtt_process", 2.0)));
    assert_eq!(linux_figure(&linux, "fork_64M"), None);
}
