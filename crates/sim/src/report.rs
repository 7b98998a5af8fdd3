//! Run results for people and programs: a text timeline and summary, the JSON summary, and a
//! self-contained HTML report with inline SVG plots (no network, no scripts).

use std::fmt::Write as _;

use serde::Serialize;

use crate::calibration::Calibration;
use crate::run::{RunResult, RunSummary};

/// The JSON document of `fleetwatch replay --format json` (and `fleetwatch sim`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonReport {
    pub scenario: String,
    pub seed: u64,
    pub calibration: JsonCalibration,
    pub runs: Vec<JsonRun>,
}

/// Where the cost model's numbers came from, in [`JsonReport`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonCalibration {
    pub source: String,
    /// Keys measured on the API server the source names.
    pub measured: Vec<String>,
    /// Keys that are kube-apiserver settings at their defaults.
    pub configured: Vec<&'static str>,
    /// Keys that are plausible values, not measurements.
    pub unmeasured: Vec<String>,
}

/// One run in [`JsonReport`]; fields and order are a public contract.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonRun {
    pub guard: &'static str,
    pub clusters: usize,
    pub large_clusters: usize,
    pub clusters_control_plane_down_peak: u32,
    pub minutes_until_alert: Option<f64>,
    pub minutes_until_customer_impact: Option<f64>,
    pub rollout_halted: bool,
    pub halted_at_wave: Option<usize>,
    pub fleet_nodes_exposed_fraction: f64,
    pub outage_cluster_minutes: f64,
}

fn round(x: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (x * scale).round() / scale
}

impl JsonReport {
    #[must_use]
    pub fn new(
        scenario: &str,
        seed: u64,
        calibration: &Calibration,
        results: &[RunResult],
    ) -> Self {
        let runs = results
            .iter()
            .map(|r| {
                let s = &r.summary;
                JsonRun {
                    guard: s.guard.as_str(),
                    clusters: s.clusters,
                    large_clusters: s.large_clusters,
                    clusters_control_plane_down_peak: s.clusters_control_plane_down_peak,
                    minutes_until_alert: s.minutes_until_alert.map(|m| round(m, 2)),
                    minutes_until_customer_impact: s
                        .minutes_until_customer_impact
                        .map(|m| round(m, 2)),
                    rollout_halted: s.rollout_halted,
                    halted_at_wave: s.halted_at_wave,
                    fleet_nodes_exposed_fraction: round(s.fleet_nodes_exposed_fraction, 6),
                    outage_cluster_minutes: round(s.outage_cluster_minutes, 1),
                }
            })
            .collect();
        Self {
            scenario: scenario.to_owned(),
            seed,
            calibration: JsonCalibration {
                source: calibration.source.clone(),
                measured: calibration.measured.clone(),
                configured: crate::calibration::CONFIGURED.to_vec(),
                unmeasured: calibration.unmeasured(),
            },
            runs,
        }
    }
}

fn minutes(m: Option<f64>) -> String {
    m.map_or_else(|| "never".to_owned(), |m| format!("{m:.1} min"))
}

/// Summary rows: (label, value per run).
fn rows(s: &RunSummary) -> Vec<(&'static str, String)> {
    vec![
        (
            "clusters (large ≥1000 nodes)",
            format!("{} ({})", s.clusters, s.large_clusters),
        ),
        (
            "control planes down at peak",
            format!(
                "{} ({} large)",
                s.clusters_control_plane_down_peak, s.large_clusters_control_plane_down_peak
            ),
        ),
        ("first control-plane alert", minutes(s.minutes_until_alert)),
        (
            "first control plane down",
            minutes(s.minutes_until_first_control_plane_down),
        ),
        (
            "large cluster: change → down (median)",
            minutes(s.large_minutes_from_change_to_down_median),
        ),
        (
            "customer impact starts",
            minutes(s.minutes_until_customer_impact),
        ),
        (
            "peak nodes with failing services",
            format!("{:.1}%", s.peak_failing_node_fraction * 100.0),
        ),
        (
            "rollout halted",
            s.halted_at_wave
                .map_or_else(|| "no".to_owned(), |w| format!("yes, wave {w}")),
        ),
        (
            "fleet nodes exposed (peak)",
            format!("{:.2}%", s.fleet_nodes_exposed_fraction * 100.0),
        ),
        (
            "outage (cluster-minutes)",
            format!("{:.0}", s.outage_cluster_minutes),
        ),
        ("API server OOM restarts", s.api_server_restarts.to_string()),
    ]
}

/// The text report: each run's timeline, then the summaries side by side.
#[must_use]
pub fn text_report(title: &str, results: &[RunResult]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{title}\n");
    for r in results {
        let _ = writeln!(
            out,
            "guard {} — timeline (minutes after the rollout starts)",
            r.summary.guard.as_str()
        );
        for e in &r.timeline {
            let _ = writeln!(out, "  {:>6.1}  {}", e.minute, e.text);
        }
        if let Some(reason) = &r.summary.halt_reason {
            let _ = writeln!(out, "  halt reason: {reason}");
        }
        out.push('\n');
    }
    let table: Vec<Vec<(&str, String)>> = results.iter().map(|r| rows(&r.summary)).collect();
    let label_width = table.first().map_or(0, |t| {
        t.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0)
    });
    let _ = write!(out, "{:label_width$}", "summary");
    for r in results {
        let _ = write!(
            out,
            "  {:>22}",
            format!("guard {}", r.summary.guard.as_str())
        );
    }
    out.push('\n');
    for (i, (label, _)) in table
        .first()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let _ = write!(out, "{label:label_width$}");
        for t in &table {
            let _ = write!(out, "  {:>22}", t[i].1);
        }
        out.push('\n');
    }
    out
}

/// Colours of the plotted series, in order.
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// How the y axis maps values.
#[derive(Debug, Clone, Copy)]
enum Scale {
    /// Linear from 0 to the given maximum (or the data's).
    Linear(Option<f64>),
    /// Logarithmic between the two bounds.
    Log(f64, f64),
}

/// One line chart as inline SVG.
fn chart(
    title: &str,
    unit: &str,
    minutes: &[f64],
    lines: &[(String, &[f64])],
    scale: Scale,
) -> String {
    const W: f64 = 640.0;
    const H: f64 = 220.0;
    const L: f64 = 56.0;
    const R: f64 = 150.0;
    const T: f64 = 36.0;
    const B: f64 = 30.0;
    // Whole hours on the x axis.
    let x_max = (minutes.last().copied().unwrap_or(1.0) / 60.0)
        .ceil()
        .max(1.0)
        * 60.0;
    let data_max = lines
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .fold(0.0, f64::max);
    let (lo, hi, log) = match scale {
        Scale::Linear(max) => (0.0, max.unwrap_or_else(|| nice_ceiling(data_max)), false),
        Scale::Log(lo, hi) => (lo.ln(), hi.ln(), true),
    };
    let y = |v: f64| {
        let v = if log {
            v.max(scale_floor(scale)).ln()
        } else {
            v
        };
        T + (H - T - B) * (1.0 - ((v - lo) / (hi - lo)).clamp(0.0, 1.0))
    };
    let x = |m: f64| L + (W - L - R) * m / x_max;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img"><title>{t}</title><text x="{L}" y="16" font-weight="bold">{t}</text>"#,
        t = esc(title)
    );
    // Axes and ticks.
    let _ = write!(
        svg,
        r##"<line x1="{L}" y1="{}" x2="{}" y2="{}" stroke="#333"/><line x1="{L}" y1="{T}" x2="{L}" y2="{}" stroke="#333"/>"##,
        H - B,
        W - R,
        H - B,
        H - B
    );
    for i in 0..=6 {
        let m = x_max * f64::from(i) / 6.0;
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{:.0}</text>"#,
            x(m),
            H - B + 14.0,
            m
        );
    }
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{}" text-anchor="middle">minutes</text>"#,
        W - R - 20.0,
        H - 2.0
    );
    let ticks: Vec<f64> = if log {
        let mut t = Vec::new();
        let mut v = scale_floor(scale);
        while v.ln() <= hi + 1e-9 {
            t.push(v);
            v *= 10.0;
        }
        t
    } else {
        (0..=4).map(|i| hi * f64::from(i) / 4.0).collect()
    };
    for v in ticks {
        let _ = write!(
            svg,
            r##"<line x1="{L}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            W - R,
            L - 4.0,
            y(v) + 4.0,
            format_tick(v),
            yy = y(v)
        );
    }
    let _ = write!(svg, r#"<text x="4" y="{}">{}</text>"#, T - 8.0, esc(unit));
    for (k, (label, values)) in lines.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let points: Vec<String> = minutes
            .iter()
            .zip(values.iter())
            .map(|(&m, &v)| format!("{:.1},{:.1}", x(m), y(v)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{}"/><rect x="{}" y="{}" width="10" height="10" fill="{colour}"/><text x="{}" y="{}">{}</text>"#,
            points.join(" "),
            W - R + 10.0,
            T + 16.0 * k as f64,
            W - R + 24.0,
            T + 16.0 * k as f64 + 9.0,
            esc(label)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The smallest 1, 2 or 4 × 10^k at least `v` (so quarter ticks are round), 1 for nothing.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 4.0, 8.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&c| c >= v)
        .unwrap_or(10.0 * magnitude)
}

fn scale_floor(scale: Scale) -> f64 {
    match scale {
        Scale::Log(lo, _) => lo,
        Scale::Linear(_) => 0.0,
    }
}

fn format_tick(v: f64) -> String {
    if v == 0.0 || (0.01..1000.0).contains(&v.abs()) {
        format!("{v:.2}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned()
    } else {
        format!("{v:.0e}")
    }
}

/// The self-contained HTML report: plots over time for every run and the summary table, under
/// `calibration` (where the cost model's numbers come from, one line each, as
/// [`Calibration::provenance`] gives it).
#[must_use]
pub fn html_report(title: &str, results: &[RunResult], calibration: &str) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<h1>{}</h1><pre style=\"white-space: pre-wrap\">{}</pre>",
        esc(title),
        esc(calibration)
    );
    // Summary table.
    body.push_str("<h2>Summary</h2><table><tr><th></th>");
    for r in results {
        let _ = write!(body, "<th>guard {}</th>", r.summary.guard.as_str());
    }
    body.push_str("</tr>");
    let table: Vec<Vec<(&str, String)>> = results.iter().map(|r| rows(&r.summary)).collect();
    for (i, (label, _)) in table
        .first()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        let _ = write!(body, "<tr><td>{}</td>", esc(label));
        for t in &table {
            let _ = write!(body, "<td>{}</td>", esc(&t[i].1));
        }
        body.push_str("</tr>");
    }
    body.push_str("</table>");
    // Fleet-wide comparisons: one line per run.
    if let Some(first) = results.first() {
        let minutes = &first.series.minutes;
        let per_run = |f: &dyn Fn(&RunResult) -> Vec<f64>| -> Vec<(String, Vec<f64>)> {
            results
                .iter()
                .map(|r| (format!("guard {}", r.summary.guard.as_str()), f(r)))
                .collect()
        };
        let down = per_run(&|r| {
            r.series
                .clusters_down
                .iter()
                .map(|&d| f64::from(d))
                .collect()
        });
        let failing = per_run(&|r| {
            r.series
                .failing_node_fraction
                .iter()
                .map(|f| f * 100.0)
                .collect()
        });
        let exposed = per_run(&|r| {
            r.series
                .exposed_node_fraction
                .iter()
                .map(|f| f * 100.0)
                .collect()
        });
        #[allow(clippy::cast_precision_loss)] // wave numbers are small
        let waves = per_run(&|r| {
            r.series
                .wave
                .iter()
                .map(|w| w.map_or(-1.0, |w| w as f64) + 1.0)
                .collect()
        });
        body.push_str("<h2>Fleet</h2><div class=\"grid\">");
        for (title, unit, lines) in [
            ("Clusters with the control plane down", "clusters", &down),
            (
                "Nodes with failing DNS (services down)",
                "% of nodes",
                &failing,
            ),
            ("Nodes running the change", "% of nodes", &exposed),
            ("Rollout wave in progress (0 = none)", "wave + 1", &waves),
        ] {
            let lines: Vec<(String, &[f64])> = lines
                .iter()
                .map(|(l, v)| (l.clone(), v.as_slice()))
                .collect();
            body.push_str(&chart(title, unit, minutes, &lines, Scale::Linear(None)));
        }
        body.push_str("</div>");
    }
    // Per run: latency and CPU per size class.
    for r in results {
        let _ = write!(
            body,
            "<h2>guard {}: control planes by cluster size</h2><div class=\"grid\">",
            r.summary.guard.as_str()
        );
        let classes = crate::fleet::SizeClass::ALL;
        let p99: Vec<(String, &[f64])> = classes
            .iter()
            .zip(&r.series.get_p99_seconds)
            .map(|(c, v)| (c.label().to_owned(), v.as_slice()))
            .collect();
        let cpu: Vec<(String, Vec<f64>)> = classes
            .iter()
            .zip(&r.series.cpu_utilization)
            .map(|(c, v)| (c.label().to_owned(), v.iter().map(|u| u * 100.0).collect()))
            .collect();
        let cpu: Vec<(String, &[f64])> =
            cpu.iter().map(|(l, v)| (l.clone(), v.as_slice())).collect();
        body.push_str(&chart(
            "API server GET p99 latency (mean over clusters)",
            "seconds",
            &r.series.minutes,
            &p99,
            Scale::Log(0.001, 100.0),
        ));
        body.push_str(&chart(
            "API server CPU utilization (mean over clusters; 0 while no replica is up)",
            "%",
            &r.series.minutes,
            &cpu,
            Scale::Linear(Some(100.0)),
        ));
        body.push_str("</div><h3>Timeline</h3><table>");
        for e in &r.timeline {
            let _ = write!(
                body,
                "<tr><td>{:.1} min</td><td>{}</td></tr>",
                e.minute,
                esc(&e.text)
            );
        }
        body.push_str("</table>");
    }
    format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>\
         body{{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}}\
         table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}\
         .grid{{display:flex;flex-wrap:wrap;gap:12px}}svg{{font-size:11px;background:#fafafa}}\
         </style></head><body>{body}</body></html>\n",
        esc(title)
    )
}
