//! API-server memory, from peak RSS:
//! - **per object listed**: the `naive-list` runs, net peak RSS against (LISTs in flight) ×
//!   (objects per LIST), through the origin, LISTs in flight by Little's law
//!   (`pod_list_seconds / seconds`) — an upper bound, a peak against a mean;
//! - **per cached object**: the slope of the idle runs' peak RSS against pods + nodes, the
//!   objects the watch cache holds (needs two or more cluster sizes).
//!
//! Imports [`inputs`](crate::inputs), [`net`](crate::net), [`linalg`](crate::linalg),
//! [`coefficient`](crate::coefficient) and [`output`](crate::output)'s number formats.

use fleetwatch_sim::Calibration;

use crate::coefficient::{Coefficient, Outcome, Quality, measured};
use crate::inputs::{Pattern, Run};
use crate::linalg::{slope_through_origin, slope_with_intercept};
use crate::net::{NOT_MOVED, Net};
use crate::output::sci;

/// A single-variable fit explaining less of the variance than this is not a measurement.
const MIN_R_SQUARED: f64 = 0.5;

/// The fewest cluster sizes the watch-cache memory is fitted over.
const MIN_CACHED_SIZES: usize = 3;

/// The memory a LIST holds per object, from the `naive-list` runs: net peak RSS against the
/// mean number of LISTs in flight (Little's law: summed LIST seconds over the run's seconds)
/// times the objects per LIST, by least squares through the origin. The peak over a run set
/// against the mean in flight makes this an upper bound.
///
/// Only `naive-list`: a sweep runs it right after the idle run at each size, so its peak is its
/// own. Go keeps a freed heap resident for minutes, and every later run at that size inherits
/// naive-list's peak — in the 2026-11-28 v1.37.2 sweep, `naive-list-node` with 1–13 objects in
/// flight read 359–2,488 MiB net of idle, the peak of the naive-list run before it.
pub(crate) fn fit_listed_memory(net: &[Net], base: &Calibration) -> Coefficient {
    let rows: Vec<(f64, f64)> = net
        .iter()
        .filter(|n| n.pattern == Pattern::NaiveList)
        .filter(|n| n.lists >= NOT_MOVED && n.from_cache + n.from_etcd > 0.0)
        .map(|n| {
            let in_flight = n.list_seconds.max(0.0) / n.seconds;
            let per_list = (n.from_cache + n.from_etcd) / n.lists;
            (in_flight * per_list, n.rss)
        })
        .collect();
    let runs = rows.len();
    let slope = || {
        if rows.is_empty() {
            return Err("no naive-list run LISTed pods (net of idle)".to_owned());
        }
        let (x, y): (Vec<f64>, Vec<f64>) = rows.iter().copied().unzip();
        let Some((slope, quality)) = slope_through_origin(&x, &y) else {
            return Err(format!(
                "the {runs} naive-list runs report no LIST time in flight (pod_list_seconds)"
            ));
        };
        if !(slope.is_finite() && slope > 0.0) {
            return Err(format!(
                "net peak RSS does not grow with the objects of LISTs in flight over these \
                 {runs} naive-list runs (slope {})",
                sci(slope)
            ));
        }
        if let Some(r_squared) = quality.r_squared.filter(|&r2| r2 < MIN_R_SQUARED) {
            return Err(format!(
                "net peak RSS does not follow the objects of LISTs in flight over these {runs} \
                 naive-list runs (R² {r_squared:.2}; the slope would be {} bytes per object)",
                sci(slope)
            ));
        }
        Ok((slope, quality))
    };
    coefficient(
        "api_server.memory_bytes_per_object_listed",
        base.api_server.memory_bytes_per_object_listed,
        runs,
        slope(),
        "upper bound: peak RSS over mean LISTs in flight",
    )
}

/// Watch-cache memory per object: the slope of the idle runs' peak RSS against the objects the
/// cache holds (pods + nodes), by least squares with an intercept. (The simulator charges it
/// per pod; nodes add one object per pods-per-node pods.)
///
/// Only idle runs whose peak is their own count: one that peaked below an earlier run of the
/// sweep may be showing that run's heap, which Go keeps resident for minutes (the v1.30.14
/// sweep's idle run at 200 nodes read 3,186 MiB after naive-list at 100 nodes peaked at 3,880).
/// Three such sizes at least: a line through two points always fits.
pub(crate) fn fit_cached_memory(runs: &[Run], base: &Calibration) -> Coefficient {
    let mut peak_before = 0;
    let mut own = Vec::new();
    for run in runs {
        if run.pattern == Pattern::Idle && run.apiserver_peak_rss_bytes >= peak_before {
            own.push(run);
        }
        peak_before = peak_before.max(run.apiserver_peak_rss_bytes);
    }
    let (x, y): (Vec<f64>, Vec<f64>) = own
        .iter()
        .map(|m| ((m.pods + m.nodes) as f64, m.apiserver_peak_rss_bytes as f64))
        .unzip();
    let runs = x.len();
    let slope = || {
        let mut sizes = x.clone();
        sizes.sort_by(f64::total_cmp);
        sizes.dedup();
        if sizes.len() < MIN_CACHED_SIZES {
            return Err(format!(
                "needs idle runs at {MIN_CACHED_SIZES} or more cluster sizes that peaked above \
                 every run before them (Go keeps an earlier run's heap resident), found {}",
                sizes.len()
            ));
        }
        let Some((slope, quality)) = slope_with_intercept(&x, &y) else {
            return Err("the idle runs' sizes do not vary".to_owned());
        };
        if !(slope.is_finite() && slope > 0.0) {
            return Err(format!(
                "idle peak RSS does not grow with cluster size over these {runs} runs (slope {})",
                sci(slope)
            ));
        }
        Ok((slope, quality))
    };
    coefficient(
        "api_server.memory_bytes_per_cached_object",
        base.api_server.memory_bytes_per_cached_object,
        runs,
        slope(),
        "idle peak RSS against pods + nodes",
    )
}

/// The coefficient of a slope fit over `runs`: measured with `note`, or not measured and why.
fn coefficient(
    key: &'static str,
    base: f64,
    runs: usize,
    slope: Result<(f64, Quality), String>,
    note: &'static str,
) -> Coefficient {
    let outcome = match slope {
        Ok((slope, quality)) => measured(
            slope,
            Quality {
                note: Some(note),
                ..quality
            },
        ),
        Err(reason) => Outcome::NotMeasured { reason },
    };
    Coefficient {
        key,
        base,
        runs,
        outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::run;

    fn with_rss(pattern: Pattern, nodes: usize, mib: u64) -> Run {
        Run {
            apiserver_peak_rss_bytes: mib << 20,
            ..run(pattern, nodes)
        }
    }

    fn cached(runs: &[Run]) -> Coefficient {
        fit_cached_memory(runs, &Calibration::default())
    }

    #[test]
    fn an_idle_run_in_the_shadow_of_an_earlier_peak_is_left_out() {
        // 1 MiB per 31 objects (30 pods per node + the node) at 10, 20 and 40 nodes...
        let clean = [
            with_rss(Pattern::Idle, 10, 310),
            with_rss(Pattern::NaiveList, 10, 315),
            with_rss(Pattern::Idle, 20, 320),
            with_rss(Pattern::Idle, 40, 340),
        ];
        let fitted = cached(&clean);
        assert_eq!(fitted.runs, 3);
        let per_object = f64::from(1 << 20) / 31.0;
        assert!(
            matches!(fitted.outcome, Outcome::Measured { value, .. }
                if (value / per_object - 1.0).abs() < 0.01),
            "{fitted:?}"
        );
        // ...and an idle run that follows a 2 GiB naive-list peak is not one of them, while a
        // later one above that peak is.
        let mut shadowed = clean.to_vec();
        shadowed.insert(3, with_rss(Pattern::NaiveList, 20, 2048));
        shadowed.push(with_rss(Pattern::Idle, 80, 2100));
        let fitted = cached(&shadowed);
        assert_eq!(fitted.runs, 3, "{fitted:?}");
        shadowed.pop();
        assert_eq!(cached(&shadowed).runs, 2);
        // Two sizes are not enough.
        let fitted = cached(&clean[..3]);
        assert!(
            matches!(&fitted.outcome, Outcome::NotMeasured { reason } if reason.contains("found 2")),
            "{fitted:?}"
        );
    }
}
