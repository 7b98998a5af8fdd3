//! The sweep's plot: API-server CPU and probe p99 against cluster size, one line per pattern.
//!
//! [`write_plots`] draws one figure twice, to an SVG and to a PNG: two log–log panels side by
//! side (API-server CPU after start-up, in cores; the probe's GET p99 in ms, with the 1 s
//! objective dashed across it) and a legend giving each pattern the same colour in both.
//!
//! Fonts: the PNG's text is rasterised by plotters' pure-Rust `ab_glyph` feature from a font
//! compiled into the binary, so it renders on a machine without any system font, fontconfig or
//! freetype (plotters' default `ttf` feature finds fonts through font-kit and those libraries).
//! The font is Hack Regular from `epaint_default_fonts`, the egui project's font crate, released
//! with egui: MIT plus the Bitstream Vera licence (both permissive), full Latin coverage, one
//! 300 KB file. It is registered as `sans-serif`, so the SVG names that family and a viewer
//! draws the SVG with its own sans font.

use std::error::Error;
use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{LabError, Result};
use crate::{LoadReport, Pattern};

/// Width and height of both images, in pixels.
pub const SIZE: (u32, u32) = (1400, 600);
/// The probe's latency objective, drawn across the p99 panel.
const SLO_MS: f64 = 1000.0;
/// The family the embedded font is registered as (plotters' default for axis labels too).
/// Text sizes are even: plotters' `ab_glyph` renderer truncates half the size to whole pixels
/// when it places each glyph, which lifts small glyphs such as "." off the baseline at odd sizes.
const FONT: &str = "sans-serif";
/// Pixels at the right of the figure kept for the legend.
const LEGEND_WIDTH: u32 = 210;

/// Draws `reports` (rows of a sweep: patterns × cluster sizes) as an SVG and a PNG.
///
/// API-server CPU is [`LoadReport::steady_cores`], the cost after the agents' start-up, which
/// the table shows on its own (rows with no time after start-up are left out);
/// probe p99 is `probe_p99_ms` (rows without probe samples are left out). A value at or below
/// zero cannot sit on a log axis: it is drawn at a floor a decade below the panel's smallest
/// positive value. Fails only if `reports` is empty or a file cannot be written.
pub fn write_plots(reports: &[LoadReport], svg: &Path, png: &Path) -> Result<()> {
    let figure = Figure::new(reports).ok_or_else(|| {
        plot_error(
            svg,
            "there are no load reports to plot: the sweep produced no rows".to_owned(),
        )
    })?;
    if !embedded_font_registered() {
        return Err(plot_error(
            svg,
            "the embedded font did not load; no text can be drawn".to_owned(),
        ));
    }
    figure
        .draw(&SVGBackend::new(svg, SIZE).into_drawing_area())
        .map_err(|e| plot_error(svg, e.to_string()))?;
    figure
        .draw(&BitMapBackend::new(png, SIZE).into_drawing_area())
        .map_err(|e| plot_error(png, e.to_string()))?;
    Ok(())
}

fn plot_error(path: &Path, message: String) -> LabError {
    LabError::Plot {
        path: path.to_path_buf(),
        message,
    }
}

/// Registers the embedded font with plotters once per process; false if it does not parse.
fn embedded_font_registered() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, epaint_default_fonts::HACK_REGULAR)
            .is_ok()
    })
}

/// Everything drawn, computed once from the reports and drawn on each backend.
#[derive(Debug)]
struct Figure {
    title: String,
    /// The X range (nodes) and its tick marks, shared by both panels.
    nodes: Range<f64>,
    node_ticks: Vec<f64>,
    cpu: Panel,
    p99: Panel,
    /// One per pattern, in `Pattern::ALL` order then unknown patterns by name.
    series: Vec<Series>,
}

#[derive(Debug)]
struct Panel {
    desc: &'static str,
    range: Range<f64>,
    ticks: Vec<f64>,
    /// A dashed horizontal line and its label.
    threshold: Option<(f64, &'static str)>,
}

#[derive(Debug)]
struct Series {
    pattern: String,
    colour: RGBColor,
    /// (nodes, value) sorted by nodes, values already clamped for the log axis.
    cpu: Vec<(f64, f64)>,
    p99: Vec<(f64, f64)>,
}

impl Figure {
    fn new(reports: &[LoadReport]) -> Option<Self> {
        let min_nodes = reports.iter().map(|r| x_of(r.nodes)).reduce(f64::min)?;
        let max_nodes = reports
            .iter()
            .map(|r| x_of(r.nodes))
            .fold(min_nodes, f64::max);

        let mut patterns: Vec<&str> = reports.iter().map(|r| r.pattern.as_str()).collect();
        patterns.sort_by_key(|p| (rank(p), *p));
        patterns.dedup();
        let mut unknown = 0;
        let mut series: Vec<Series> = patterns
            .into_iter()
            .map(|pattern| {
                let colour = known_colour(pattern).unwrap_or_else(|| {
                    unknown += 1;
                    EXTRA_COLOURS[(unknown - 1) % EXTRA_COLOURS.len()]
                });
                let mut rows: Vec<&LoadReport> =
                    reports.iter().filter(|r| r.pattern == pattern).collect();
                rows.sort_by_key(|r| r.nodes);
                Series {
                    pattern: pattern.to_owned(),
                    colour,
                    cpu: rows
                        .iter()
                        .filter(|r| r.seconds > r.startup_seconds)
                        .map(|r| (x_of(r.nodes), r.steady_cores()))
                        .collect(),
                    p99: rows
                        .iter()
                        .filter_map(|r| Some((x_of(r.nodes), r.probe_p99_ms?)))
                        .collect(),
                }
            })
            .collect();

        let cpu_floor = clamp_to_floor(series.iter_mut().map(|s| &mut s.cpu), 1e-3);
        let p99_floor = clamp_to_floor(series.iter_mut().map(|s| &mut s.p99), 1.0);
        let cpu_values = series.iter().flat_map(|s| &s.cpu).map(|p| p.1);
        let p99_values = series.iter().flat_map(|s| &s.p99).map(|p| p.1);
        let (cpu_range, cpu_ticks) = log_axis(cpu_values, cpu_floor);
        let (p99_range, p99_ticks) = log_axis(p99_values.chain([SLO_MS]), p99_floor);

        let nodes = if max_nodes > min_nodes {
            min_nodes / 1.3..max_nodes * 1.3
        } else {
            min_nodes / 2.0..max_nodes * 2.0
        };
        let mut node_ticks: Vec<f64> = reports.iter().map(|r| x_of(r.nodes)).collect();
        node_ticks.sort_by(f64::total_cmp);
        node_ticks.dedup();
        if node_ticks.len() > 12 {
            node_ticks = log_ticks(&nodes);
        }

        Some(Figure {
            title: format!(
                "Load sweep: API-server cost and probe latency by cluster size, {}",
                pods_per_node(reports)
            ),
            nodes,
            node_ticks,
            cpu: Panel {
                desc: "API-server CPU after start-up (cores)",
                range: cpu_range,
                ticks: cpu_ticks,
                threshold: None,
            },
            p99: Panel {
                desc: "probe GET p99 (ms)",
                range: p99_range,
                ticks: p99_ticks,
                threshold: Some((SLO_MS, "SLO 1 s")),
            },
            series,
        })
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), Box<dyn Error>>
    where
        DB::ErrorType: 'static,
    {
        root.fill(&WHITE)?;
        let body = root.titled(&self.title, (FONT, 22))?;
        let (panels, legend) = body.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        let halves = panels.split_evenly((1, 2));
        let [cpu_area, p99_area] = halves.as_slice() else {
            return Err("the figure did not split into two panels".into());
        };
        self.draw_panel(cpu_area, &self.cpu, |s| &s.cpu)?;
        self.draw_panel(p99_area, &self.p99, |s| &s.p99)?;
        self.draw_legend(&legend)?;
        root.present()?;
        Ok(())
    }

    fn draw_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        panel: &Panel,
        points: impl Fn(&Series) -> &[(f64, f64)],
    ) -> Result<(), Box<dyn Error>>
    where
        DB::ErrorType: 'static,
    {
        let mut chart = ChartBuilder::on(area)
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(75)
            .build_cartesian_2d(
                self.nodes
                    .clone()
                    .log_scale()
                    .with_key_points(self.node_ticks.clone()),
                panel
                    .range
                    .clone()
                    .log_scale()
                    .with_key_points(panel.ticks.clone()),
            )?;
        chart
            .configure_mesh()
            .x_desc("nodes")
            .y_desc(panel.desc)
            .x_label_formatter(&|v| format_tick(*v))
            .y_label_formatter(&|v| format_tick(*v))
            .axis_desc_style((FONT, 16))
            .label_style((FONT, 14))
            .bold_line_style(BLACK.mix(0.12))
            .draw()?;

        if let Some((value, label)) = panel.threshold {
            let ends = vec![(self.nodes.start, value), (self.nodes.end, value)];
            chart.draw_series(DashedLineSeries::new(
                ends,
                10,
                6,
                BLACK.mix(0.7).stroke_width(2),
            ))?;
            let style = TextStyle::from((FONT, 14)).pos(Pos::new(HPos::Left, VPos::Bottom));
            chart.draw_series(std::iter::once(
                EmptyElement::at((self.nodes.start, value)) + Text::new(label, (8, -4), style),
            ))?;
        }

        for series in &self.series {
            let points = points(series);
            if points.is_empty() {
                continue;
            }
            chart.draw_series(LineSeries::new(
                points.iter().copied(),
                series.colour.stroke_width(2),
            ))?;
            chart.draw_series(
                points
                    .iter()
                    .map(|&p| Circle::new(p, 4, series.colour.filled())),
            )?;
        }
        Ok(())
    }

    fn draw_legend<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
    ) -> Result<(), Box<dyn Error>>
    where
        DB::ErrorType: 'static,
    {
        let left = TextStyle::from((FONT, 16)).pos(Pos::new(HPos::Left, VPos::Center));
        area.draw(&Text::new("pattern", (10, 30), left.clone()))?;
        for (i, series) in self.series.iter().enumerate() {
            let y = 60 + 26 * i32::try_from(i).unwrap_or(i32::MAX / 64);
            let line = series.colour.stroke_width(2);
            area.draw(&PathElement::new(vec![(10, y), (44, y)], line))?;
            area.draw(&Circle::new((27, y), 4, series.colour.filled()))?;
            area.draw(&Text::new(series.pattern.as_str(), (52, y), left.clone()))?;
        }
        Ok(())
    }
}

/// Where a pattern sorts: `Pattern::ALL`'s order, unknown names after.
fn rank(pattern: &str) -> usize {
    Pattern::ALL
        .iter()
        .position(|p| p.name() == pattern)
        .unwrap_or(Pattern::ALL.len())
}

/// The colour of a known pattern: the same in every plot (greys and blues for the cheap
/// designs, warm colours for the ones that caused the incident).
fn known_colour(pattern: &str) -> Option<RGBColor> {
    let pattern = Pattern::ALL.into_iter().find(|p| p.name() == pattern)?;
    Some(match pattern {
        Pattern::Idle => RGBColor(127, 127, 127),
        Pattern::NaiveList => RGBColor(214, 39, 40),
        Pattern::NaiveListNode => RGBColor(255, 127, 14),
        Pattern::WatchAll => RGBColor(148, 103, 189),
        Pattern::WatchNode => RGBColor(31, 119, 180),
        Pattern::Fleetwatch => RGBColor(44, 160, 44),
    })
}

/// Colours for patterns this file does not know, in order of name.
const EXTRA_COLOURS: [RGBColor; 4] = [
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Nodes as an X value (an empty cluster is drawn at 1: a log axis has no 0).
fn x_of(nodes: usize) -> f64 {
    nodes.max(1) as f64
}

/// Drops points that are not finite and raises the others to a floor a decade below the
/// smallest positive value (or `default` if there is none); returns the floor.
fn clamp_to_floor<'a>(series: impl Iterator<Item = &'a mut Vec<(f64, f64)>>, default: f64) -> f64 {
    let series: Vec<&mut Vec<(f64, f64)>> = series.collect();
    let floor = series
        .iter()
        .flat_map(|points| points.iter())
        .map(|p| p.1)
        .filter(|v| v.is_finite() && *v > 0.0)
        .reduce(f64::min)
        .map_or(default, |min| min / 10.0);
    for points in series {
        points.retain(|p| p.1.is_finite());
        for p in points.iter_mut() {
            p.1 = p.1.max(floor);
        }
    }
    floor
}

/// A log axis that holds `values` with some room, and its ticks (at least two).
fn log_axis(values: impl Iterator<Item = f64>, floor: f64) -> (Range<f64>, Vec<f64>) {
    let (lo, hi) = values.fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (lo, hi) = if lo.is_finite() && lo > 0.0 {
        (lo, hi)
    } else {
        (floor, floor)
    };
    let mut range = lo / 1.5..hi * 1.5;
    let mut ticks = log_ticks(&range);
    if ticks.len() < 2 {
        // Too narrow for two ticks: widen to whole decades.
        let start = 10_f64.powf(range.start.log10().floor());
        let end = 10_f64.powf(range.end.log10().ceil());
        range = start..if end > start { end } else { start * 10.0 };
        ticks = log_ticks(&range);
    }
    (range, ticks)
}

/// Ticks at 1, 2 and 5 times powers of ten inside `range`; only powers of ten if that makes
/// too many, and only every few of those over very wide ranges.
fn log_ticks(range: &Range<f64>) -> Vec<f64> {
    let first = range.start.log10().floor() as i32;
    let last = range.end.log10().ceil() as i32;
    let inside = |v: &f64| range.start <= *v && *v <= range.end;
    let fine: Vec<f64> = (first..=last)
        .flat_map(|e| [1.0, 2.0, 5.0].map(|m| times_ten_to(m, e)))
        .filter(inside)
        .collect();
    if fine.len() <= 10 {
        return fine;
    }
    let decades: Vec<f64> = (first..=last)
        .map(|e| times_ten_to(1.0, e))
        .filter(inside)
        .collect();
    let step = decades.len().div_ceil(10).max(1);
    decades.into_iter().step_by(step).collect()
}

/// `m`·10^`e`, dividing for negative `e` so that 5·10⁻² is exactly the literal `0.05`.
fn times_ten_to(m: f64, e: i32) -> f64 {
    if e >= 0 {
        m * 10_f64.powi(e)
    } else {
        m / 10_f64.powi(-e)
    }
}

/// A tick label: whole numbers from 1 up, otherwise as many decimals as the first digit needs.
fn format_tick(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        let decimals = (-(v.log10() + 1e-9).floor()).clamp(0.0, 12.0) as usize;
        format!("{v:.decimals$}")
    }
}

/// "30 pods per node", or the range of the ratios if the rows differ.
fn pods_per_node(reports: &[LoadReport]) -> String {
    let ratios = reports
        .iter()
        .filter(|r| r.nodes > 0)
        .map(|r| r.pods as f64 / r.nodes as f64);
    let Some((lo, hi)) = ratios.fold(None, |acc: Option<(f64, f64)>, v| {
        Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
    }) else {
        return "pods per node unknown".to_owned();
    };
    let show = |v: f64| {
        if (v - v.round()).abs() < 0.05 {
            format!("{v:.0}")
        } else {
            format!("{v:.1}")
        }
    };
    let (lo, hi) = (show(lo), show(hi));
    if lo == hi {
        let noun = if lo == "1" { "pod" } else { "pods" };
        format!("{lo} {noun} per node")
    } else {
        format!("{lo} to {hi} pods per node")
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::path::PathBuf;

    use super::*;

    const SIZES: [usize; 5] = [50, 100, 200, 500, 1000];

    /// A report with the fields the plot reads; every other number zero.
    fn report(pattern: &str, nodes: usize, cpu_seconds: f64, p99: Option<f64>) -> LoadReport {
        LoadReport {
            pattern: pattern.to_owned(),
            nodes,
            pods: nodes * 30,
            agents: nodes,
            seconds: 60.0,
            apiserver_cpu_seconds: cpu_seconds,
            probe_p99_ms: p99,
            ..LoadReport::default()
        }
    }

    /// A whole sweep: every pattern at every size, costs growing with size for the naive ones.
    fn sweep() -> Vec<LoadReport> {
        let mut rows = Vec::new();
        for pattern in Pattern::ALL {
            for n in SIZES {
                let n_f = n as f64;
                let (cpu, p99) = match pattern {
                    Pattern::Idle => (3.0, Some(4.0)),
                    Pattern::NaiveList => (0.2 * n_f, Some(2.0 * n_f)),
                    Pattern::NaiveListNode => (0.15 * n_f, Some(1.5 * n_f)),
                    Pattern::WatchAll => (0.05 * n_f, Some(0.1 * n_f + 5.0)),
                    Pattern::WatchNode => (0.01 * n_f + 3.0, Some(6.0)),
                    Pattern::Fleetwatch => (3.5, Some(4.5)),
                };
                rows.push(report(pattern.name(), n, cpu, p99));
            }
        }
        rows
    }

    fn render(reports: &[LoadReport]) -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().expect("temporary directory");
        let svg = dir.path().join("sweep.svg");
        let png = dir.path().join("sweep.png");
        write_plots(reports, &svg, &png).expect("plots written");
        (dir, svg, png)
    }

    /// The text of every `<text>` element of an SVG file, trimmed.
    fn svg_texts(svg: &Path) -> Vec<String> {
        let svg = fs::read_to_string(svg).expect("SVG readable");
        svg.split("<text")
            .skip(1)
            .filter_map(|element| {
                let (_, rest) = element.split_once('>')?;
                let (text, _) = rest.split_once("</text>")?;
                Some(text.trim().to_owned())
            })
            .collect()
    }

    fn assert_has(texts: &[String], wanted: &str) {
        assert!(
            texts.iter().any(|t| t == wanted),
            "{wanted:?} is not a text of the SVG: {texts:?}"
        );
    }

    /// Width, height and RGB bytes of a PNG file.
    fn decode(png: &Path) -> (u32, u32, Vec<u8>) {
        let file = fs::File::open(png).expect("PNG opens");
        let mut reader = png::Decoder::new(file).read_info().expect("PNG header");
        let mut pixels = vec![0; reader.output_buffer_size()];
        let frame = reader.next_frame(&mut pixels).expect("PNG frame");
        assert_eq!(frame.color_type, png::ColorType::Rgb);
        assert_eq!(frame.bit_depth, png::BitDepth::Eight);
        pixels.truncate(frame.buffer_size());
        (frame.width, frame.height, pixels)
    }

    #[test]
    fn sweep_draws_both_panels_every_pattern_and_the_slo() {
        let (_dir, svg, png) = render(&sweep());

        let texts = svg_texts(&svg);
        for pattern in Pattern::ALL {
            assert_has(&texts, pattern.name());
        }
        for text in [
            "API-server CPU after start-up (cores)",
            "probe GET p99 (ms)",
            "SLO 1 s",
            "Load sweep: API-server cost and probe latency by cluster size, 30 pods per node",
        ] {
            assert_has(&texts, text);
        }
        // Both panels have an X axis of nodes whose ticks are the sweep's sizes.
        assert_eq!(texts.iter().filter(|t| *t == "nodes").count(), 2);
        for n in SIZES {
            let ticks = texts.iter().filter(|t| **t == n.to_string()).count();
            assert!(ticks >= 2, "tick {n} appears {ticks} times");
        }
        // CPU ticks below one core have decimals; the p99 axis reaches the SLO.
        assert_has(&texts, "0.1");
        assert_has(&texts, "1000");

        let bytes = fs::read(&png).expect("PNG readable");
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&bytes[12..16], b"IHDR");
        let width = u32::from_be_bytes([bytes[16], bytes[17], bytes[18], bytes[19]]);
        let height = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
        assert_eq!((width, height), SIZE);

        let (w, h, rgb) = decode(&png);
        assert_eq!((w, h), SIZE);
        let pixel = |x: u32, y: u32| {
            let i = 3 * (y * w + x) as usize;
            [rgb[i], rgb[i + 1], rgb[i + 2]]
        };
        let drawn = rgb.chunks(3).filter(|p| *p != [255, 255, 255]).count();
        assert!(drawn > 20_000, "only {drawn} pixels drawn");
        // Anti-aliased glyphs leave many grey levels; lines and markers alone leave few.
        let mut colours: Vec<[u8; 3]> = rgb.chunks(3).map(|p| [p[0], p[1], p[2]]).collect();
        colours.sort_unstable();
        colours.dedup();
        assert!(
            colours.len() > 100,
            "only {} distinct colours",
            colours.len()
        );
        // Only the title is drawn in the top band: its glyphs must be there.
        let title_ink = (0..22)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .filter(|&(x, y)| pixel(x, y).iter().all(|&c| c < 128))
            .count();
        assert!(title_ink > 300, "the title drew {title_ink} dark pixels");
        // Every pattern's colour appears exactly in the legend column.
        for pattern in Pattern::ALL {
            let RGBColor(r, g, b) = known_colour(pattern.name()).expect("known pattern");
            let found = (0..h)
                .flat_map(|y| (w - LEGEND_WIDTH..w).map(move |x| (x, y)))
                .filter(|&(x, y)| pixel(x, y) == [r, g, b])
                .count();
            assert!(found > 50, "{} drew {found} legend pixels", pattern.name());
        }
    }

    #[test]
    fn empty_input_is_an_error() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let svg = dir.path().join("sweep.svg");
        let err =
            write_plots(&[], &svg, &dir.path().join("sweep.png")).expect_err("nothing to plot");
        assert!(
            matches!(&err, LabError::Plot { path, .. } if *path == svg),
            "{err}"
        );
        assert!(err.to_string().contains("no load reports"), "{err}");
        assert!(!svg.exists());
    }

    #[test]
    fn an_unwritable_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let svg = dir.path().join("sweep.svg");
        let png = dir.path().join("missing").join("sweep.png");
        let err = write_plots(&sweep(), &svg, &png).expect_err("no directory for the PNG");
        assert!(
            matches!(&err, LabError::Plot { path, .. } if *path == png),
            "{err}"
        );
        assert!(svg.exists(), "the SVG is written before the PNG fails");
    }

    #[test]
    fn one_size_zero_negative_and_missing_values_still_draw() {
        let rows = vec![
            report("idle", 100, 0.0, Some(0.0)),
            report("naive-list", 100, -2.0, Some(-1.0)),
            report("watch-node", 100, 6.0, None),
            LoadReport {
                seconds: 0.0,
                ..report("fleetwatch", 100, 1.0, Some(f64::NAN))
            },
        ];
        let (_dir, svg, png) = render(&rows);
        let texts = svg_texts(&svg);
        for text in [
            "idle",
            "naive-list",
            "watch-node",
            "fleetwatch",
            "SLO 1 s",
            "100",
        ] {
            assert_has(&texts, text);
        }
        assert_eq!(decode(&png).0, SIZE.0);

        // The zero and negative values sit on the floor, a decade below the smallest positive one.
        let figure = Figure::new(&rows).expect("rows");
        let cpu: Vec<f64> = figure
            .series
            .iter()
            .flat_map(|s| &s.cpu)
            .map(|p| p.1)
            .collect();
        let expected = [0.01, 0.01, 0.1];
        assert_eq!(cpu.len(), expected.len());
        assert!(
            cpu.iter().zip(expected).all(|(v, e)| (v - e).abs() < 1e-12),
            "{cpu:?}"
        );
        assert!(figure.cpu.range.start < 0.01 && figure.cpu.range.end > 0.1);
        let p99: Vec<f64> = figure
            .series
            .iter()
            .flat_map(|s| &s.p99)
            .map(|p| p.1)
            .collect();
        assert_eq!(
            p99,
            [1.0, 1.0],
            "NaN is dropped, zero and negative sit at the default floor"
        );
        assert!(figure.nodes.start < 100.0 && figure.nodes.end > 100.0);
        assert!(figure.cpu.ticks.len() >= 2 && figure.p99.ticks.len() >= 2);
    }

    #[test]
    fn without_any_probe_the_slo_panel_is_still_drawn() {
        let rows: Vec<LoadReport> = SIZES
            .iter()
            .map(|&n| report("watch-all", n, n as f64, None))
            .collect();
        let (_dir, svg, _png) = render(&rows);
        let texts = svg_texts(&svg);
        assert_has(&texts, "SLO 1 s");
        assert_has(&texts, "probe GET p99 (ms)");
        assert_has(&texts, "watch-all");
    }

    #[test]
    fn points_are_sorted_by_nodes_and_unknown_patterns_get_a_colour() {
        let rows = vec![
            report("fleetwatch", 500, 5.0, Some(3.0)),
            report("custom", 200, 2.0, Some(2.0)),
            report("fleetwatch", 50, 1.0, Some(1.0)),
            report("idle", 200, 1.0, Some(1.0)),
        ];
        let figure = Figure::new(&rows).expect("rows");
        let names: Vec<&str> = figure.series.iter().map(|s| s.pattern.as_str()).collect();
        assert_eq!(names, ["idle", "fleetwatch", "custom"]);
        let nodes: Vec<f64> = figure.series[1].cpu.iter().map(|p| p.0).collect();
        assert_eq!(nodes, [50.0, 500.0]);
        assert_eq!(figure.series[2].colour, EXTRA_COLOURS[0]);
        assert_eq!(figure.node_ticks, [50.0, 200.0, 500.0]);
    }

    #[test]
    fn ticks_and_captions_read_well() {
        assert_eq!(log_ticks(&(0.04..1.2)), [0.05, 0.1, 0.2, 0.5, 1.0]);
        assert_eq!(log_ticks(&(0.5e-6..2e6)).len(), 7);
        assert_eq!(format_tick(0.001), "0.001");
        assert_eq!(format_tick(0.05), "0.05");
        assert_eq!(format_tick(0.5), "0.5");
        assert_eq!(format_tick(1000.0), "1000");
        let mut mixed = vec![report("idle", 10, 1.0, None), report("idle", 20, 1.0, None)];
        mixed[1].pods = 400;
        assert_eq!(pods_per_node(&mixed), "20 to 30 pods per node");
        assert_eq!(
            pods_per_node(&[report("idle", 0, 1.0, None)]),
            "pods per node unknown"
        );
    }
}
