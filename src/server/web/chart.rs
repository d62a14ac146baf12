//! A small line chart as inline SVG, rendered on the server from a package's samples: one
//! polyline per series over a shared time axis, the largest value and the time span as labels.
//! No script, no external file; a `maud` template, so every label is escaped.

use maud::{html, Markup};

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 120.0;
/// Room on the left for the largest value, and below for the time span.
const LEFT: f64 = 64.0;
const BOTTOM: f64 = 18.0;
/// The plot's area, inside the frame.
const PLOT_W: f64 = WIDTH - LEFT - 4.0;
const PLOT_H: f64 = HEIGHT - BOTTOM - 8.0;

/// One line of a chart: its label, its CSS class (which sets its colour), its values.
pub struct Series<'a> {
    pub label: &'a str,
    pub class: &'a str,
    pub values: Vec<u64>,
}

/// An SVG chart of `series` over the times `at` (seconds, ascending, one per value); `unit`
/// formats the largest value. With fewer than two samples it says so instead of drawing.
pub fn render(title: &str, at: &[u64], series: &[Series], unit: fn(u64) -> String) -> Markup {
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0);
    html! {
        figure class="chart" {
            figcaption { (title) }
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } width=(WIDTH) height=(HEIGHT)
                role="img" aria-label=(title) {
                rect class="frame" x=(LEFT) y="4" width=(PLOT_W) height=(PLOT_H) {}
                text class="axis" x=(LEFT - 6.0) y="14" text-anchor="end" { (unit(max)) }
                text class="axis" x=(LEFT - 6.0) y=(4.0 + PLOT_H) text-anchor="end" { "0" }
                @if at.len() < 2 {
                    text class="axis" x=(LEFT + PLOT_W / 2.0) y=(4.0 + PLOT_H / 2.0)
                        text-anchor="middle" {
                        "one sample so far: the chart fills in every few seconds while the page is watched"
                    }
                } @else {
                    (lines(at, series, max))
                }
            }
            (legend(series, unit))
        }
    }
}

/// One polyline per series and the time span below them; `at` has two times or more.
fn lines(at: &[u64], series: &[Series], max: u64) -> Markup {
    let (t0, t1) = (at[0], at[at.len() - 1]);
    let span = (t1 - t0).max(1) as f64;
    let top = max.max(1) as f64;
    let points = |values: &[u64]| -> String {
        let points: Vec<String> = at
            .iter()
            .zip(values)
            .map(|(t, v)| {
                let x = LEFT + (t - t0) as f64 / span * PLOT_W;
                let y = 4.0 + PLOT_H - *v as f64 / top * PLOT_H;
                format!("{x:.1},{y:.1}")
            })
            .collect();
        points.join(" ")
    };
    html! {
        @for s in series {
            polyline class=(s.class) points=(points(&s.values)) {}
        }
        text class="axis" x=(LEFT) y=(HEIGHT - 4.0) { "last " (duration(t1 - t0)) }
    }
}

/// Each series' colour, label and newest value.
fn legend(series: &[Series], unit: fn(u64) -> String) -> Markup {
    html! {
        ul class="legend" {
            @for s in series {
                li {
                    span class={ "key " (s.class) } {}
                    (s.label) " " b { (unit(s.values.last().copied().unwrap_or(0))) }
                }
            }
        }
    }
}

/// `95 s`, `4 min`, `2 h 5 min`.
fn duration(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_one_line_per_series_and_escaped_labels() {
        let svg = render(
            "peers <now>",
            &[100, 105, 110],
            &[
                Series {
                    label: "seeders",
                    class: "s1",
                    values: vec![1, 2, 2],
                },
                Series {
                    label: "leechers & co",
                    class: "s2",
                    values: vec![0, 0, 4],
                },
            ],
            |n| n.to_string(),
        )
        .into_string();
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("peers &lt;now&gt;"));
        assert!(svg.contains("leechers &amp; co <b>4</b>"));
        assert!(svg.contains("last 10 s"));
        // The top of the plot is the largest value; the first point of `s2` is at the bottom.
        assert!(svg.contains("points=\"64.0,98.0"));
        assert!(!svg.contains("NaN"));
    }

    #[test]
    fn one_sample_is_no_line() {
        let svg = render(
            "bytes",
            &[7],
            &[Series {
                label: "web seed",
                class: "s1",
                values: vec![0],
            }],
            |n| n.to_string(),
        )
        .into_string();
        assert!(!svg.contains("<polyline"));
        assert!(svg.contains("one sample so far"));
    }
}
