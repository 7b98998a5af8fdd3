//! API-server memory, from peak RSS:
//! - **per object listed**: every run that LISTs pods, net peak RSS against (LISTs in flight) ×
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

/// The memory a LIST holds per object, from runs that LIST pods: net peak RSS against the mean
/// number of LISTs in flight (Little's law: summed LIST seconds over the run's seconds) times
/// the objects per LIST, by least squares through the origin. The peak over a run set against
/// the mean in flight makes this an upper bound.
pub(crate) fn fit_listed_memory(net: &[Net], base: &Calibration) -> Coefficient {
    let rows: Vec<(f64, f64)> = net
        .iter()
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
            return Err("no run LISTed pods (net of idle)".to_owned());
        }
        let (x, y): (Vec<f64>, Vec<f64>) = rows.iter().copied().unzip();
        let Some((slope, quality)) = slope_through_origin(&x, &y) else {
            return Err(format!(
                "the {runs} runs that LIST pods report no LIST time in flight (pod_list_seconds)"
            ));
        };
        if !(slope.is_finite() && slope > 0.0) {
            return Err(format!(
                "net peak RSS does not grow with the objects of LISTs in flight over these \
                 {runs} runs (slope {})",
                sci(slope)
            ));
        }
        if let Some(r_squared) = quality.r_squared.filter(|&r2| r2 < MIN_R_SQUARED) {
            return Err(format!(
                "net peak RSS does not follow the objects of LISTs in flight over these {runs} \
                 runs (R² {r_squared:.2}; the slope would be {} bytes per object)",
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
pub(crate) fn fit_cached_memory(runs: &[Run], base: &Calibration) -> Coefficient {
    let (x, y): (Vec<f64>, Vec<f64>) = runs
        .iter()
        .filter(|m| m.pattern == Pattern::Idle)
        .map(|m| ((m.pods + m.nodes) as f64, m.apiserver_peak_rss_bytes as f64))
        .unzip();
    let runs = x.len();
    let slope = || {
        let mut sizes = x.clone();
        sizes.sort_by(f64::total_cmp);
        sizes.dedup();
        if sizes.len() < 2 {
            return Err(format!(
                "needs idle runs at two or more cluster sizes, found {}",
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
