//! Run results for people and programs: a text timeline and summary, the JSON summary, and a
//! self-contained HTML report with inline SVG plots (no network, no scripts).

use std::fmt::Write as _;

use serde::Serialize;

use crate::run::{RunResult, RunSummary};

/// The JSON document of `fleetwatch replay --format json` (and `fleetwatch sim`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonReport {
    pub scenario: String,
    pub seed: u64,
    pub runs: Vec<JsonRun>,
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
    pub fn new(scenario: &str, seed: u64, results: &[RunResult]) -> Self {
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
