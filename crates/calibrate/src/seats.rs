//! APF seats per LIST, from the `naive-list` runs (their LISTs return every pod, and APF
//! charges a LIST by the objects it may return): the estimator's cap, when LISTs reach it, and
//! objects per seat, from LISTs below it.
//!
//! Imports [`inputs`](crate::inputs), [`linalg`](crate::linalg),
//! [`coefficient`](crate::coefficient).

use fleetwatch_sim::Calibration;

use crate::coefficient::{Coefficient, Outcome, Quality, measured, sig};
use crate::inputs::{Pattern, Run};
use crate::linalg::{relative_rms, slope_through_origin};

/// APF's seats per LIST, from the `naive-list` runs (their LISTs return every pod, and APF
/// charges a LIST by the objects it may return). Requests of the level other than pod LISTs
/// (the probe's GETs) take one seat each.
///
/// If every run's LISTs are large enough to hit the cap at the measured maximum, that maximum
/// is the cap and objects per seat cannot be seen. Otherwise objects per seat is fitted from
/// the runs between 2 seats and the maximum (the simulator's linear model `objects /
/// objects_per_list_seat`, fitted to APF's rounded-up seats), and the maximum is the cap only
/// if some run's LISTs clearly exceed it.
pub(crate) fn fit_seats(runs: &[Run], base: &Calibration) -> [Coefficient; 2] {
    let ops_key = "apf.objects_per_list_seat";
    let max_key = "apf.max_seats_per_request";
    let base_ops = base.apf.objects_per_list_seat;
    let base_max = base.apf.max_seats_per_request;
    let rows: Vec<(f64, f64)> = runs
        .iter()
        .filter(|m| m.pattern == Pattern::NaiveList && m.pod_lists > 0)
        .map(|m| {
            // APF estimates a LIST's seats before it queues or rejects it, so rejected LISTs
            // count as LISTs here (each asked for every pod).
            let attempts = m.pod_lists + m.throttled_429;
            let others = m.agent_level_requests.saturating_sub(attempts) as f64;
            (
                m.pods_listed as f64 / m.pod_lists as f64,
                (m.agent_level_seats - others) / attempts as f64,
            )
        })
        .filter(|&(o, s)| o.is_finite() && s.is_finite() && s > 0.0)
        .collect();
    let coefficient = |key, base, runs, outcome| Coefficient {
        key,
        base,
        runs,
        outcome,
    };
    let not_measured = |reason: &str| Outcome::NotMeasured {
        reason: reason.to_owned(),
    };
    let runs = rows.len();
    let max_seats = rows.iter().map(|&(_, s)| s).fold(0.0, f64::max).round();
    if rows.is_empty() || max_seats < 1.0 {
        let reason = if rows.is_empty() {
            "no naive-list run with pod LISTs and APF seats in the agents' level"
        } else {
            "the naive-list runs' LISTs average under one APF seat"
        };
        return [
            coefficient(ops_key, base_ops, runs, not_measured(reason)),
            coefficient(max_key, base_max, runs, not_measured(reason)),
        ];
    }
    let (o_min, o_max) = rows
        .iter()
        .fold((f64::INFINITY, 0.0_f64), |(lo, hi), &(o, _)| {
            (lo.min(o), hi.max(o))
        });
    let cap_quality = |capped: &[(f64, f64)], note| {
        let residuals: Vec<f64> = capped.iter().map(|&(_, s)| s - max_seats).collect();
        let values: Vec<f64> = capped.iter().map(|&(_, s)| s).collect();
        Quality {
            relative_rms: relative_rms(&residuals, &values),
            r_squared: None,
            relative_standard_error: None,
            note,
        }
    };
    if rows.iter().all(|&(o, _)| o >= base_ops * max_seats) {
        let reason = format!(
            "every naive-list run's LISTs ({:.0}–{:.0} objects) reach the cap ({max_seats} \
             seats at {} objects per seat), so seats do not show objects per seat; smaller \
             clusters would",
            o_min, o_max, base_ops
        );
        return [
            coefficient(ops_key, base_ops, runs, not_measured(&reason)),
            coefficient(
                max_key,
                base_max,
                runs,
                measured(
                    max_seats,
                    cap_quality(&rows, Some("every naive-list LIST at the cap")),
                ),
            ),
        ];
    }
    let between: Vec<(f64, f64)> = rows
        .iter()
        .copied()
        .filter(|&(_, s)| s.round() >= 2.0 && s.round() < max_seats)
        .collect();
    let ops = if between.is_empty() {
        coefficient(
            ops_key,
            base_ops,
            0,
            not_measured(&format!(
                "no naive-list run's LISTs got between 2 and {} seats, where seats grow with \
                 objects",
                max_seats - 1.0
            )),
        )
    } else {
        let (o, s): (Vec<f64>, Vec<f64>) = between.iter().copied().unzip();
        let outcome = match slope_through_origin(&o, &s) {
            Some((slope, quality)) if slope > 0.0 => {
                let mut quality = quality;
                // The standard error of 1/k relative to 1/k is that of k relative to k.
                quality.note = Some("seats per LIST against objects per LIST");
                measured(1.0 / slope, quality)
            }
            _ => not_measured("seats per LIST do not grow with objects per LIST"),
        };
        coefficient(ops_key, base_ops, between.len(), outcome)
    };
    let ops_used = ops.value();
    let capped: Vec<(f64, f64)> = rows
        .iter()
        .copied()
        .filter(|&(o, s)| s.round() >= max_seats && o / ops_used >= max_seats + 0.5)
        .collect();
    let max = if capped.is_empty() {
        let largest = rows
            .iter()
            .filter(|&&(_, s)| s.round() >= max_seats)
            .map(|&(o, _)| o)
            .fold(0.0, f64::max);
        coefficient(
            max_key,
            base_max,
            0,
            not_measured(&format!(
                "no naive-list run's LISTs clearly hit a cap: the most was {max_seats} seats \
                 for {largest:.0} objects, which {} objects per seat explain without one",
                sig(ops_used)
            )),
        )
    } else {
        coefficient(
            max_key,
            base_max,
            capped.len(),
            measured(max_seats, cap_quality(&capped, None)),
        )
    };
    [ops, max]
}
