//! Where the API server reads a LIST without resourceVersion from: the share of the `naive-list`
//! runs' pods that came from etcd. 1 on API servers that serve such a LIST as a quorum read from
//! etcd (before consistent reads from the watch cache, KEP-2340), 0 on those that serve it from
//! the cache. The simulator charges those LISTs' per-object CPU and etcd reads by it.
//!
//! Imports [`inputs`](crate::inputs), [`linalg`](crate::linalg),
//! [`coefficient`](crate::coefficient).

use fleetwatch_sim::Calibration;

use crate::coefficient::{Coefficient, Outcome, Quality, sig};
use crate::inputs::{Pattern, Run};
use crate::linalg::relative_rms;

/// The pooled share of the `naive-list` runs' pods listed from etcd (their LISTs carry no
/// resourceVersion), with each run's own share as the spread. Unlike the other coefficients a
/// measured 0 is a value: today's API server reads none of them from etcd.
pub(crate) fn fit_unversioned_lists(runs: &[Run], base: &Calibration) -> Coefficient {
    let key = "api_server.fraction_of_unversioned_lists_from_etcd";
    let rows: Vec<(f64, f64)> = runs
        .iter()
        .filter(|r| r.pattern == Pattern::NaiveList && r.pods_listed > 0)
        .map(|r| (r.pods_listed as f64, r.pods_listed_from_etcd as f64))
        .collect();
    let (listed, from_etcd) = rows
        .iter()
        .fold((0.0, 0.0), |(l, e), &(listed, etcd)| (l + listed, e + etcd));
    let outcome = if rows.is_empty() {
        Outcome::NotMeasured {
            reason: "no naive-list run listed pods".to_owned(),
        }
    } else {
        let share = from_etcd / listed;
        let shares: Vec<f64> = rows.iter().map(|&(l, e)| e / l).collect();
        let residuals: Vec<f64> = shares.iter().map(|s| s - share).collect();
        Outcome::Measured {
            value: sig(share),
            quality: Quality {
                // About 1 (the share itself), so that a share of 0 still reads as a spread.
                relative_rms: relative_rms(&residuals, &vec![1.0; shares.len()]),
                r_squared: None,
                relative_standard_error: None,
                note: Some("pods listed from etcd over pods listed, naive-list runs"),
            },
        }
    };
    Coefficient {
        key,
        base: base.api_server.fraction_of_unversioned_lists_from_etcd,
        runs: rows.len(),
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::run;

    fn naive(listed: u64, from_etcd: u64) -> Run {
        Run {
            pods_listed: listed,
            pods_listed_from_etcd: from_etcd,
            ..run(Pattern::NaiveList, 50)
        }
    }

    fn value(runs: &[Run]) -> Outcome {
        fit_unversioned_lists(runs, &Calibration::default()).outcome
    }

    #[test]
    fn the_share_is_pooled_over_naive_list_runs_and_zero_is_measured() {
        let all = value(&[naive(1_000, 1_000), naive(3_000, 3_000)]);
        assert!(
            matches!(all, Outcome::Measured { value, .. } if value == 1.0),
            "{all:?}"
        );
        let none = value(&[naive(1_000, 0), naive(3_000, 0)]);
        assert!(
            matches!(none, Outcome::Measured { value, .. } if value == 0.0),
            "{none:?}"
        );
        let half = value(&[naive(1_000, 0), naive(1_000, 1_000)]);
        match half {
            Outcome::Measured { value, quality } => {
                assert_eq!(value, 0.5);
                assert!((quality.relative_rms - 0.5).abs() < 1e-12, "{quality:?}");
            }
            other => panic!("{other:?}"),
        }
        let other_patterns = [Run {
            pods_listed: 10,
            pods_listed_from_etcd: 10,
            ..run(Pattern::WatchAll, 50)
        }];
        assert!(matches!(
            value(&other_patterns),
            Outcome::NotMeasured { .. }
        ));
    }
}
