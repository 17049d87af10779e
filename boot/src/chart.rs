//! The scale chart of `make bench`: fork cost against resident memory, and the
//! process switch round trip against the page-table cache size, as one SVG of
//! two panels, with the Linux anchor's figures beside ours when there are any.
//!
//! Pure: figures in, SVG text out, written by hand (two panels of points and
//! lines need no plotting library). Both axes of both panels are logarithmic:
//! resident sizes and cache sizes grow by powers of two, and costs span
//! decades (a fork that copies per page against one that does not). A figure
//! that is missing on either side is simply not drawn.

use std::collections::BTreeMap;
use std::fmt::Write;

/// Nanoseconds per operation, by row name.
pub type Costs = BTreeMap<String, f64>;

/// What one panel shows: a row of ours at each x, with the tick label there.
pub struct Panel {
    /// The panel's heading.
    pub title: &'static str,
    /// What the x axis measures.
    pub x_label: &'static str,
    /// What the y axis measures.
    pub y_label: &'static str,
    /// (x, our row's name, tick label), in increasing x.
    pub points: &'static [(f64, &'static str, &'static str)],
}

/// Fork against resident memory.
pub const FORK: Panel = Panel {
    title: "fork against resident memory",
    x_label: "MiB written before the fork",
    y_label: "time per fork",
    points: &[
        (1.0, "fork_1M", "1"),
        (16.0, "fork_16M", "16"),
        (64.0, "fork_64M", "64"),
        (256.0, "fork_256M", "256"),
    ],
};

/// The switch round trip against the page-table cache size.
pub const SWITCH: Panel = Panel {
    title: "process switch round trip against pt_cache N",
    x_label: "N, address spaces whose page tables are kept (pt_cache)",
    y_label: "time per round trip",
    points: &[
        (1.0, "switch_rtt_process_n1", "1"),
        (2.0, "switch_rtt_process_n2", "2"),
        (4.0, "switch_rtt_process_n4", "4"),
        (8.0, "switch_rtt_process_n8", "8"),
    ],
};

/// Linux rows named differently from ours, as `anchor-linux/compare.py` pairs
/// them: Linux has no page-table cache, so its one process round trip (over
/// pipes) stands beside ours at every N.
const LINUX_ALIASES: &[(&str, &str)] = &[
    ("switch_rtt_process_n1", "pipe_rtt_process"),
    ("switch_rtt_process_n2", "pipe_rtt_process"),
    ("switch_rtt_process_n4", "pipe_rtt_process"),
    ("switch_rtt_process_n8", "pipe_rtt_process"),
];

/// Linux's row for our row `name`: the same name if the anchor has it, else its
/// alias; with the figure.
pub fn linux_figure<'a>(linux: &'a Costs, name: &'a str) -> Option<(&'a str, f64)> {
    if let Some(&figure) = linux.get(name) {
        return Some((name, figure));
    }
    let alias = LINUX_ALIASES.iter().find(|(ours, _)| *ours == name)?.1;
    linux.get(alias).map(|&figure| (alias, figure))
}

/// Width and height of the whole picture.
pub const WIDTH: f64 = 960.0;
/// Height of the whole picture.
pub const HEIGHT: f64 = 420.0;
/// Width of one panel; the second starts here.
pub const PANEL_WIDTH: f64 = 480.0;
/// The plot area inside a panel: left and right edges (from the panel's left).
pub const PLOT_LEFT: f64 = 80.0;
/// Right edge of the plot area, from the panel's left.
pub const PLOT_RIGHT: f64 = 450.0;
/// Top edge of the plot area.
pub const PLOT_TOP: f64 = 60.0;
/// Bottom edge of the plot area.
pub const PLOT_BOTTOM: f64 = 320.0;

/// Our colour and Linux's.
const OURS: &str = "#1f5fa8";
const LINUX: &str = "#d9731a";

/// A logarithmic axis: `low..=high` onto `from..=to` (which may run backwards).
#[derive(Clone, Copy, Debug)]
struct Scale {
    low: f64,
    high: f64,
    from: f64,
    to: f64,
}

impl Scale {
    /// Where `value` lands.
    fn position(&self, value: f64) -> f64 {
        let fraction = (value / self.low).ln() / (self.high / self.low).ln();
        self.from + fraction * (self.to - self.from)
    }
}

/// The powers of ten just below the smallest and just above the largest of
/// `values` (positive), at least one decade apart.
fn decades(values: &[f64]) -> (i32, i32) {
    let smallest = values.iter().copied().fold(f64::INFINITY, f64::min);
    let largest = values.iter().copied().fold(0.0, f64::max);
    let low = smallest.log10().floor() as i32;
    let high = (largest.log10().ceil() as i32).max(low + 1);
    (low, high)
}

/// A duration in nanoseconds as a short label: `100 ns`, `10 µs`, `1 ms`, `2 s`.
pub fn duration_label(nanoseconds: f64) -> String {
    let (value, unit) = match nanoseconds {
        n if n >= 1e9 => (n / 1e9, "s"),
        n if n >= 1e6 => (n / 1e6, "ms"),
        n if n >= 1e3 => (n / 1e3, "µs"),
        n => (n, "ns"),
    };
    if value >= 10.0 || value.fract() == 0.0 {
        format!("{value:.0} {unit}")
    } else {
        format!("{value:.2} {unit}")
    }
}

/// Escapes text for SVG.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The chart: both panels, ours and (if `linux` is given) Linux's figures.
pub fn svg(ours: &Costs, linux: Option<&Costs>) -> String {
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         viewBox=\"0 0 {WIDTH} {HEIGHT}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    for (index, panel) in [&FORK, &SWITCH].into_iter().enumerate() {
        draw_panel(&mut out, panel, index as f64 * PANEL_WIDTH, ours, linux);
    }
    legend(&mut out, linux.is_some());
    out += "</svg>\n";
    out
}

/// One series of a panel: (x, row name as shown, figure) where it has one.
type Series<'a> = Vec<(f64, String, f64)>;

/// Draws `panel` with its left edge at `left`.
fn draw_panel(out: &mut String, panel: &Panel, left: f64, ours: &Costs, linux: Option<&Costs>) {
    let ours_series: Series = panel
        .points
        .iter()
        .filter_map(|&(x, name, _)| Some((x, name.to_string(), *ours.get(name)?)))
        .collect();
    let linux_series: Series = linux.map_or_else(Vec::new, |linux| {
        panel
            .points
            .iter()
            .filter_map(|&(x, name, _)| {
                let (row, figure) = linux_figure(linux, name)?;
                Some((x, format!("Linux {row}"), figure))
            })
            .collect()
    });
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"30\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        left + PLOT_LEFT,
        escape(panel.title)
    );
    let values: Vec<f64> = ours_series
        .iter()
        .chain(&linux_series)
        .map(|point| point.2)
        .filter(|&value| value > 0.0)
        .collect();
    let x_scale = Scale {
        low: panel.points[0].0,
        high: panel.points[panel.points.len() - 1].0,
        from: left + PLOT_LEFT,
        to: left + PLOT_RIGHT,
    };
    x_axis(out, panel, x_scale);
    if values.is_empty() {
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">no figures</text>",
            (x_scale.from + x_scale.to) / 2.0,
            (PLOT_TOP + PLOT_BOTTOM) / 2.0
        );
        return;
    }
    let (low, high) = decades(&values);
    let y_scale =
        Scale { low: 10f64.powi(low), high: 10f64.powi(high), from: PLOT_BOTTOM, to: PLOT_TOP };
    y_axis(out, panel, left, y_scale, low..=high);
    series(out, "ours", OURS, "", &ours_series, x_scale, y_scale);
    series(out, "linux", LINUX, " stroke-dasharray=\"6 4\"", &linux_series, x_scale, y_scale);
}

/// The x axis: ticks and labels at the panel's points, and its title.
fn x_axis(out: &mut String, panel: &Panel, scale: Scale) {
    let _ = writeln!(
        out,
        "<line x1=\"{:.1}\" y1=\"{PLOT_BOTTOM}\" x2=\"{:.1}\" y2=\"{PLOT_BOTTOM}\" stroke=\"black\"/>",
        scale.from, scale.to
    );
    for &(x, _, label) in panel.points {
        let position = scale.position(x);
        let _ = writeln!(
            out,
            "<line x1=\"{position:.1}\" y1=\"{PLOT_BOTTOM}\" x2=\"{position:.1}\" y2=\"{:.1}\" \
             stroke=\"black\"/>\n<text x=\"{position:.1}\" y=\"{:.1}\" \
             text-anchor=\"middle\">{label}</text>",
            PLOT_BOTTOM + 5.0,
            PLOT_BOTTOM + 20.0
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
        (scale.from + scale.to) / 2.0,
        PLOT_BOTTOM + 40.0,
        escape(panel.x_label)
    );
}

/// The y axis: a labelled grid line at every power of ten in `decades`, and
/// its title.
fn y_axis(
    out: &mut String,
    panel: &Panel,
    left: f64,
    scale: Scale,
    decades: std::ops::RangeInclusive<i32>,
) {
    let (x1, x2) = (left + PLOT_LEFT, left + PLOT_RIGHT);
    let _ = writeln!(
        out,
        "<line x1=\"{x1:.1}\" y1=\"{PLOT_TOP}\" x2=\"{x1:.1}\" y2=\"{PLOT_BOTTOM}\" stroke=\"black\"/>"
    );
    for exponent in decades {
        let value = 10f64.powi(exponent);
        let y = scale.position(value);
        let _ = writeln!(
            out,
            "<line x1=\"{x1:.1}\" y1=\"{y:.1}\" x2=\"{x2:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>\n\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            x1 - 6.0,
            y + 4.0,
            duration_label(value)
        );
    }
    let middle = (PLOT_TOP + PLOT_BOTTOM) / 2.0;
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{middle:.1}\" text-anchor=\"middle\" \
         transform=\"rotate(-90 {:.1} {middle:.1})\">{}</text>",
        left + 18.0,
        left + 18.0,
        escape(panel.y_label)
    );
}

/// A series: a line through its points, and a point with a tooltip at each.
fn series(
    out: &mut String,
    class: &str,
    colour: &str,
    dashes: &str,
    points: &Series,
    x_scale: Scale,
    y_scale: Scale,
) {
    if points.is_empty() {
        return;
    }
    let placed: Vec<(f64, f64, &str, f64)> = points
        .iter()
        .map(|(x, name, value)| {
            (x_scale.position(*x), y_scale.position(*value), name.as_str(), *value)
        })
        .collect();
    let line: Vec<String> = placed.iter().map(|(x, y, _, _)| format!("{x:.1},{y:.1}")).collect();
    let _ = writeln!(
        out,
        "<polyline class=\"{class}\" points=\"{}\" fill=\"none\" stroke=\"{colour}\" \
         stroke-width=\"2\"{dashes}/>",
        line.join(" ")
    );
    for (x, y, name, value) in placed {
        let _ = writeln!(
            out,
            "<circle class=\"{class}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4\" fill=\"{colour}\">\
             <title>{}: {}</title></circle>",
            escape(name),
            duration_label(value)
        );
    }
}

/// The key, under both panels.
fn legend(out: &mut String, with_linux: bool) {
    let y = HEIGHT - 25.0;
    let mut entries = vec![(OURS, "", "this kernel")];
    if with_linux {
        entries.push((
            LINUX,
            " stroke-dasharray=\"6 4\"",
            "Linux (anchor; pipe round trip at every N)",
        ));
    }
    for (index, (colour, dashes, label)) in entries.into_iter().enumerate() {
        let x = PLOT_LEFT + index as f64 * 240.0;
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{colour}\" \
             stroke-width=\"2\"{dashes}/>\n<text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            x + 30.0,
            x + 36.0,
            y + 4.0,
            escape(label)
        );
    }
}

#[cfg(test)]
mod tests;
