//! The SVG chart of a run (feature `bench-chart`): per row, the speed-up over Python and how
//! many times its floor multiproc's figure is, on log scales.

use std::path::Path;

use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::Run;
use super::report::Figures;

/// One bar chart: `values[i]` for `labels[i]`, bars from 1× outwards.
fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    labels: &[String],
    values: &[Option<f64>],
    color: RGBColor,
    label_width: Option<u32>,
) -> Result<(), String> {
    let e = |e: DrawingAreaErrorKind<DB::ErrorType>| format!("drawing the chart: {e:?}");
    let known = values.iter().flatten().copied();
    let hi = known.clone().fold(10.0f64, f64::max) * 1.5;
    let lo = known.fold(0.5f64, f64::min) / 1.5;
    let n = labels.len() as i32;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(label_width.unwrap_or(8))
        // Segments 0 ..= n - 1: one per row.
        .build_cartesian_2d((lo..hi).log_scale(), (0..(n - 1).max(0)).into_segmented())
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(if label_width.is_some() {
            labels.len()
        } else {
            0
        })
        .y_label_formatter(&|v| match v {
            _ if label_width.is_none() => String::new(),
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => usize::try_from(*i)
                .ok()
                .and_then(|i| labels.get(labels.len().wrapping_sub(i + 1)))
                .cloned()
                .unwrap_or_default(),
            SegmentValue::Last => String::new(),
        })
        .x_label_formatter(&|x| format!("{x}×"))
        .draw()
        .map_err(e)?;
    // Top to bottom in table order.
    let bars = values.iter().enumerate().filter_map(|(i, v)| {
        let y = n - 1 - i as i32;
        v.map(|v| {
            Rectangle::new(
                [
                    (1.0, SegmentValue::Exact(y)),
                    (v, SegmentValue::Exact(y + 1)),
                ],
                color.mix(0.8).filled(),
            )
        })
    });
    chart.draw_series(bars).map_err(e)?;
    let marks = values.iter().enumerate().filter_map(|(i, v)| {
        let y = n - 1 - i as i32;
        v.map(|v| {
            Text::new(
                format!("{v:.2}"),
                (v.max(1.0), SegmentValue::CenterOf(y)),
                ("sans-serif", 11).into_font(),
            )
        })
    });
    chart.draw_series(marks).map_err(e)?;
    Ok(())
}

/// Draws the rows of `run` that have a multiproc figure into an SVG file at `path`.
pub fn draw(run: &Run<'_>, path: &Path) -> Result<(), String> {
    let rows: Vec<_> = run.rows.iter().filter(|r| !r.scenario.is_floor).collect();
    let labels: Vec<String> = rows
        .iter()
        .map(|r| format!("{} ({})", r.scenario.what, r.placement.name()))
        .collect();
    let figures: Vec<Figures> = rows.iter().map(|r| Figures::of(r)).collect();
    let speed: Vec<Option<f64>> = figures.iter().map(Figures::vs_python).collect();
    let floor: Vec<Option<f64>> = figures.iter().map(Figures::above_floor).collect();
    let height = 90 + 22 * u32::try_from(rows.len()).unwrap_or(0);
    let root = SVGBackend::new(path, (1400, height)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<std::io::Error>| format!("drawing the chart: {e:?}");
    root.fill(&WHITE).map_err(e)?;
    let (left, right) = root.split_horizontally(820);
    panel(
        &left,
        "speed-up over Python's multiprocessing (× faster, log)",
        &labels,
        &speed,
        RGBColor(46, 125, 50),
        Some(330),
    )?;
    panel(
        &right,
        "multiproc ÷ floor (× the floor, log)",
        &labels,
        &floor,
        RGBColor(198, 90, 17),
        None,
    )?;
    root.present().map_err(e)?;
    Ok(())
}
