//! PNG plots with plotters' bitmap backend. Text goes through ab_glyph with a font file we load
//! ourselves ([`register_font`]); without one, the same plots are drawn with no text at all
//! (no captions, tick labels or legends), so a machine without fonts still gets its pictures.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Result, anyhow};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// Where a font is looked for when none is configured (Debian/Ubuntu, Fedora, Arch).
pub const FONT_CANDIDATES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

const FAMILY: &str = "sans-serif";

static REGISTERED: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Registers the first readable, valid font of `candidates` for all plots of this process
/// (once; later calls return the first result). `None`: plots are drawn without text.
pub fn register_font(candidates: &[PathBuf]) -> Option<PathBuf> {
    REGISTERED
        .get_or_init(|| {
            candidates.iter().find_map(|path| {
                let bytes = std::fs::read(path).ok()?;
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).ok()?;
                Some(path.clone())
            })
        })
        .clone()
}

/// Whether plots of this process draw text.
pub fn has_text() -> bool {
    REGISTERED.get().is_some_and(Option::is_some)
}

fn err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing plot: {e}")
}

fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    COLORS[i % COLORS.len()]
}

/// One bar series of a grouped bar chart: a value per category (`None`: no bar).
pub struct BarSeries {
    pub name: String,
    pub values: Vec<Option<f64>>,
}

/// Grouped bars: one group per category, one bar per series in it.
pub fn grouped_bars(
    path: &Path,
    title: &str,
    y_label: &str,
    categories: &[String],
    series: &[BarSeries],
) -> Result<()> {
    let text = has_text();
    let root = BitMapBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().flatten())
        .fold(0.0f64, |m, &v| m.max(v));
    // Head room for the legend, drawn in the upper right.
    let top = if max > 0.0 { max * 1.35 } else { 1.0 };
    let n = categories.len().max(1);
    let mut builder = ChartBuilder::on(&root);
    builder.margin(15);
    if text {
        builder
            .caption(title, (FAMILY, 22))
            .x_label_area_size(40)
            .y_label_area_size(70);
    }
    let mut chart = builder
        .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), 0f64..top)
        .map_err(err)?;
    let label_of = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < categories.len() {
            categories[i as usize].clone()
        } else {
            String::new()
        }
    };
    let mut mesh = chart.configure_mesh();
    mesh.disable_x_mesh();
    if text {
        mesh.x_labels(n + 1)
            .x_label_formatter(&label_of)
            .y_desc(y_label)
            .label_style((FAMILY, 14));
    } else {
        mesh.x_labels(0).y_labels(0);
    }
    mesh.draw().map_err(err)?;
    let width = 0.8 / series.len().max(1) as f64;
    for (s, bars) in series.iter().enumerate() {
        let c = color(s);
        let rects: Vec<_> = bars
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let v = (*v)?;
                let x0 = i as f64 - 0.4 + s as f64 * width;
                Some(Rectangle::new(
                    [(x0, 0.0), (x0 + width * 0.95, v)],
                    c.filled(),
                ))
            })
            .collect();
        let drawn = chart.draw_series(rects).map_err(err)?;
        if text {
            drawn
                .label(bars.name.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        }
    }
    if text && !series.is_empty() {
        draw_legend(&mut chart, 14)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// One panel of a line chart: named lines of `(x, y)` points.
pub struct Panel {
    pub title: String,
    pub lines: Vec<Line>,
}

pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
    /// Draw a marker at each point (sparse series such as validation losses).
    pub markers: bool,
}

/// Line charts side by side, one panel each, sharing the y range.
pub fn line_panels(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    panels: &[Panel],
) -> Result<()> {
    let text = has_text();
    let columns = panels.len().max(1);
    let root = BitMapBackend::new(path, ((450 * columns).max(600) as u32, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = if text {
        root.titled(title, (FAMILY, 22)).map_err(err)?
    } else {
        root
    };
    let points = || {
        panels
            .iter()
            .flat_map(|p| p.lines.iter().flat_map(|l| l.points.iter()))
    };
    let finite = |v: &f64| v.is_finite();
    let (mut y_min, mut y_max) = points()
        .map(|p| p.1)
        .filter(finite)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), y| {
            (lo.min(y), hi.max(y))
        });
    if y_min > y_max {
        (y_min, y_max) = (0.0, 1.0);
    }
    let pad = ((y_max - y_min) * 0.05).max(1e-3);
    for (area, panel) in root.split_evenly((1, columns)).iter().zip(panels) {
        let x_max = panel
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.0))
            .fold(1.0f64, f64::max);
        let mut builder = ChartBuilder::on(area);
        builder.margin(12);
        if text {
            builder
                .caption(&panel.title, (FAMILY, 18))
                .x_label_area_size(35)
                .y_label_area_size(55);
        }
        let mut chart = builder
            .build_cartesian_2d(0f64..x_max, (y_min - pad)..(y_max + pad))
            .map_err(err)?;
        let mut mesh = chart.configure_mesh();
        if text {
            mesh.x_desc(x_label)
                .y_desc(y_label)
                .label_style((FAMILY, 13));
        } else {
            mesh.x_labels(0).y_labels(0);
        }
        mesh.draw().map_err(err)?;
        for (i, line) in panel.lines.iter().enumerate() {
            let c = color(i);
            let points: Vec<(f64, f64)> = line
                .points
                .iter()
                .copied()
                .filter(|p| p.1.is_finite())
                .collect();
            let drawn = chart
                .draw_series(LineSeries::new(points.clone(), c.stroke_width(2)))
                .map_err(err)?;
            if text {
                drawn.label(line.name.clone()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 14, y)], c.stroke_width(2))
                });
            }
            if line.markers {
                chart
                    .draw_series(points.iter().map(|&p| Circle::new(p, 3, c.filled())))
                    .map_err(err)?;
            }
        }
        if text && !panel.lines.is_empty() {
            draw_legend(&mut chart, 13)?;
        }
    }
    root.present().map_err(err)?;
    Ok(())
}

/// The series labels in the upper right, on a translucent white box.
fn draw_legend<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    size: u32,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    chart
        .configure_series_labels()
        .label_font((FAMILY, size))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err)
}
