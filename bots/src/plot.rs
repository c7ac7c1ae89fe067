//! The latency chart (`--svg FILE`): a percentile spectrum, drawn with
//! plotters into an SVG.

use hdrhistogram::Histogram;
use plotters::prelude::*;

/// Percentiles across as "nines", log10(1 / (1 - q)): 0 is p0, 5 is p99.999.
const NINES: f64 = 5.0;

const COLORS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x17, 0xbe, 0xcf),
];

/// The percentile spectrum of each histogram (microseconds) as one line,
/// in milliseconds up, with a legend that gives each line's p99.
pub(crate) fn plot(title: &str, lines: &[(String, &Histogram<u64>)]) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (900, 520)).into_drawing_area();
        draw(&root, title, lines).map_err(|e| anyhow::anyhow!("drawing the chart: {e}"))?;
        root.present()
            .map_err(|e| anyhow::anyhow!("drawing the chart: {e}"))?;
    }
    Ok(svg)
}

fn ms_at(h: &Histogram<u64>, quantile: f64) -> f64 {
    h.value_at_quantile(quantile.min(1.0)) as f64 / 1000.0
}

/// "p99.9" for 3 nines.
fn percentile_label(nines: f64) -> String {
    match nines.round() as usize {
        0 => "p0".to_owned(),
        1 => "p90".to_owned(),
        2 => "p99".to_owned(),
        n => format!("p99.{}", "9".repeat(n - 2)),
    }
}

type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

fn draw(
    root: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    title: &str,
    lines: &[(String, &Histogram<u64>)],
) -> DrawResult {
    root.fill(&WHITE)?;
    let top_ms = lines
        .iter()
        .map(|(_, h)| h.max() as f64 / 1000.0)
        .fold(0.0, f64::max)
        .max(0.001);
    let mut chart = ChartBuilder::on(root)
        .caption(title, ("sans-serif", 15))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..NINES, 0f64..top_ms * 1.05)?;
    chart
        .configure_mesh()
        .x_labels(NINES as usize + 1)
        .x_label_formatter(&|n| percentile_label(*n))
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 13))
        .light_line_style(WHITE)
        .draw()?;
    for (k, (name, h)) in lines.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let points = (0..=100).map(|i| {
            let nines = NINES * f64::from(i) / 100.0;
            (nines, ms_at(h, 1.0 - 10f64.powf(-nines)))
        });
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))?
            .label(format!("{name} — p99 {:.2} ms", ms_at(h, 0.99)))
            .legend(move |(x, y)| Rectangle::new([(x, y - 2), (x + 14, y + 2)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.2))
        .label_font(("sans-serif", 12))
        .draw()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::histogram;

    #[test]
    fn the_plot_is_an_svg_with_one_line_per_histogram() {
        let mut a = histogram();
        let mut b = histogram();
        for v in 1..1000 {
            a.record(v * 10).expect("in range");
            b.record(v * 30).expect("in range");
        }
        let svg = plot("a <title>", &[("one".into(), &a), ("two".into(), &b)]).unwrap();
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        // The data lines are the polylines 2 wide (plotters draws the axes
        // and the grid as polylines 1 wide).
        let lines = svg
            .split("<polyline")
            .skip(1)
            .filter(|l| l.contains(r#"stroke-width="2""#));
        assert_eq!(lines.count(), 2);
        assert!(svg.contains("a &lt;title&gt;"));
    }

    #[test]
    fn percentiles_are_labelled_by_their_nines() {
        let labels: Vec<String> = (0..=5).map(|n| percentile_label(f64::from(n))).collect();
        assert_eq!(labels, ["p0", "p90", "p99", "p99.9", "p99.99", "p99.999"]);
    }
}
