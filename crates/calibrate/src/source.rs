//! The calibration's `source` line: which sweep, which kube-apiserver, which cluster sizes, and
//! the day. The caller gives the Kubernetes version and the time: the crate reads no clock.
//!
//! Imports [`inputs`](crate::inputs) only.

use crate::inputs::Sweep;

/// "measured by `fleetwatch lab calibrate` from sweep.csv (kube-apiserver v1.37.2, nodes
/// 50–1000, 30 pods per node) on 2026-01-02", the date being `unix_seconds`' UTC day.
#[must_use]
pub fn source(sweep: &Sweep, kubernetes_version: &str, unix_seconds: i64) -> String {
    let path = sweep.path();
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let range = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        match (values.first(), values.last()) {
            (Some(lo), Some(hi)) if lo < hi => format!("{lo}–{hi}"),
            (Some(v), _) => format!("{v}"),
            _ => "?".to_owned(),
        }
    };
    let runs = sweep.runs();
    let nodes = runs.iter().map(|r| r.nodes as f64).collect();
    let per_node = runs
        .iter()
        .map(|r| (r.pods as f64 / r.nodes as f64 * 10.0).round() / 10.0)
        .collect();
    format!(
        "measured by `fleetwatch lab calibrate` from {name} (kube-apiserver \
         {kubernetes_version}, nodes {}, {} pods per node) on {}",
        range(nodes),
        range(per_node),
        date(unix_seconds)
    )
}

/// `YYYY-MM-DD`, the UTC day `unix_seconds` after 1970-01-01T00:00:00Z falls on.
fn date(unix_seconds: i64) -> String {
    let (year, month, day) = civil_from_days(unix_seconds.div_euclid(86_400));
    format!("{year:04}-{month:02}-{day:02}")
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`):
/// a date crate for one date would be more code to trust than these lines.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of the 400-year era, [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year
    let mp = (5 * doy + 2) / 153; // month from March, [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::Pattern;
    use crate::testing::{run, sweep};

    #[test]
    fn civil_from_days_matches_the_calendar() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(10_957), (2000, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_433), (2025, 12, 11));
    }

    #[test]
    fn a_day_runs_from_midnight_to_midnight_utc() {
        let day = 20_433 * 86_400;
        assert_eq!(date(day), "2025-12-11");
        assert_eq!(date(day + 86_399), "2025-12-11");
        assert_eq!(date(day - 1), "2025-12-10");
    }

    #[test]
    fn the_source_names_the_sweep_the_version_the_sizes_and_the_day() {
        let mut runs = vec![run(Pattern::Idle, 50), run(Pattern::Idle, 1000)];
        let sweep = sweep(&runs);
        let per_node = runs[0].pods / runs[0].nodes;
        let day = 20_433 * 86_400 + 3_600;
        assert_eq!(
            source(&sweep, "v9.8.7", day),
            format!(
                "measured by `fleetwatch lab calibrate` from {} (kube-apiserver v9.8.7, nodes \
                 50–1000, {per_node} pods per node) on 2025-12-11",
                sweep.path().display()
            )
        );
        runs.truncate(1);
        runs[0].pods = runs[0].nodes * 25 / 2;
        assert!(
            source(&crate::testing::sweep(&runs), "v1", 0)
                .contains("nodes 50, 12.5 pods per node) on 1970-01-01"),
        );
    }
}
