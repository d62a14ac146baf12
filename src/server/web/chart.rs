//! A small line chart as inline SVG, rendered on the server from a package's samples: one
//! polyline per series over a shared time axis, the largest value and the time span as labels.
//! No script, no external file; every label goes through [`super::escape::escape`].

use std::fmt::Write;

use super::escape::escape;

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 120.0;
/// Room on the left for the largest value, and below for the time span.
const LEFT: f64 = 64.0;
const BOTTOM: f64 = 18.0;

/// One line of a chart: its label, its CSS class (which sets its colour), its values.
pub struct Series<'a> {
    pub label: &'a str,
    pub class: &'a str,
    pub values: Vec<u64>,
}

/// An SVG chart of `series` over the times `at` (seconds, ascending, one per value); `unit`
/// formats the largest value. With fewer than two samples it says so instead of drawing.
pub fn render(title: &str, at: &[u64], series: &[Series], unit: fn(u64) -> String) -> String {
    let mut svg = String::new();
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .max()
        .unwrap_or(0);
    let _ = write!(
        svg,
        "<figure class=\"chart\"><figcaption>{}</figcaption>\
         <svg viewBox=\"0 0 {WIDTH} {HEIGHT}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         role=\"img\" aria-label=\"{}\">",
        escape(title),
        escape(title)
    );
    let plot_w = WIDTH - LEFT - 4.0;
    let plot_h = HEIGHT - BOTTOM - 8.0;
    let _ = write!(
        svg,
        "<rect class=\"frame\" x=\"{LEFT}\" y=\"4\" width=\"{plot_w}\" height=\"{plot_h}\"/>\
         <text class=\"axis\" x=\"{}\" y=\"14\" text-anchor=\"end\">{}</text>\
         <text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>",
        LEFT - 6.0,
        escape(&unit(max)),
        LEFT - 6.0,
        4.0 + plot_h
    );
    if at.len() < 2 {
        let _ = write!(
            svg,
            "<text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">\
             one sample so far: the chart fills in every few seconds while the page is watched</text>",
            LEFT + plot_w / 2.0,
            4.0 + plot_h / 2.0
        );
    } else {
        let (t0, t1) = (at[0], at[at.len() - 1]);
        let span = (t1 - t0).max(1) as f64;
        let top = max.max(1) as f64;
        for s in series {
            let points: Vec<String> = at
                .iter()
                .zip(&s.values)
                .map(|(t, v)| {
                    let x = LEFT + (t - t0) as f64 / span * plot_w;
                    let y = 4.0 + plot_h - *v as f64 / top * plot_h;
                    format!("{x:.1},{y:.1}")
                })
                .collect();
            let _ = write!(
                svg,
                "<polyline class=\"{}\" points=\"{}\"/>",
                escape(s.class),
                points.join(" ")
            );
        }
        let _ = write!(
            svg,
            "<text class=\"axis\" x=\"{LEFT}\" y=\"{}\">{}</text>",
            HEIGHT - 4.0,
            escape(&format!("last {}", duration(t1 - t0)))
        );
    }
    svg.push_str("</svg><ul class=\"legend\">");
    for s in series {
        let last = s.values.last().copied().unwrap_or(0);
        let _ = write!(
            svg,
            "<li><span class=\"key {}\"></span>{} <b>{}</b></li>",
            escape(s.class),
            escape(s.label),
            escape(&unit(last))
        );
    }
    svg.push_str("</ul></figure>");
    svg
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
        );
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
        );
        assert!(!svg.contains("<polyline"));
        assert!(svg.contains("one sample so far"));
    }
}
