//! API-server CPU: non-negative least squares of every non-idle run's net CPU on its net pod
//! LISTs, pods listed from the watch cache and from etcd, and watch events sent, each run
//! weighted by 1 / its total CPU (measurement noise grows with a run's CPU):
//! `cpu = per_list·lists + per_object_from_cache·(listed − from_etcd)
//! + per_object_from_etcd·from_etcd + per_watch_event·watch_events`.
//!
//! A cost whose counter never moves, that moves in step with another's, that the best fit puts
//! at 0, or that the runs leave uncertain keeps its base value. Imports
//! [`net`](crate::net), [`linalg`](crate::linalg), [`coefficient`](crate::coefficient) and
//! [`output`](crate::output)'s number formats.

use fleetwatch_sim::Calibration;

use crate::coefficient::{Coefficient, Outcome, Quality, measured};
use crate::linalg::{nnls, norm, qr, r_squared, relative_rms, standard_errors};
use crate::net::{NOT_MOVED, Net};
use crate::output::percent;

/// A fitted coefficient whose standard error exceeds this share of its value is not identified
/// by the runs (it mostly absorbs noise): it keeps its base value.
const MAX_RELATIVE_STANDARD_ERROR: f64 = 0.5;

/// The CPU fit: non-negative least squares of net CPU on net lists, objects listed from the
/// watch cache and from etcd, and watch events, each run weighted by 1 / its total CPU.
pub(crate) fn fit_cpu(net: &[Net], base: &Calibration) -> [Coefficient; 4] {
    struct Column {
        key: &'static str,
        base: f64,
        counter: &'static str,
        hint: &'static str,
        x: Vec<f64>,
    }
    let a = &base.api_server;
    let column = |key, base, counter, hint, f: fn(&Net) -> f64| Column {
        key,
        base,
        counter,
        hint,
        x: net.iter().map(f).collect(),
    };
    let columns = [
        column(
            "api_server.cpu_seconds_per_list",
            a.cpu_seconds_per_list,
            "pod_lists",
            "",
            |n| n.lists,
        ),
        column(
            "api_server.cpu_seconds_per_object_listed_from_etcd",
            a.cpu_seconds_per_object_listed_from_etcd,
            "pods_listed_from_etcd",
            ": no pod LIST was served from etcd (recent kube-apiservers serve LISTs without a \
             resourceVersion from the watch cache)",
            |n| n.from_etcd,
        ),
        column(
            "api_server.cpu_seconds_per_object_listed_from_cache",
            a.cpu_seconds_per_object_listed_from_cache,
            "pods_listed − pods_listed_from_etcd",
            ": no pod LIST was served from the watch cache",
            |n| n.from_cache,
        ),
        column(
            "api_server.cpu_seconds_per_watch_event",
            a.cpu_seconds_per_watch_event,
            "watch_events_sent",
            "",
            |n| n.events,
        ),
    ];
    let runs = net.len();
    let y: Vec<f64> = net.iter().map(|n| n.cpu).collect();
    let mut reasons: [Option<String>; 4] = Default::default();
    for (c, reason) in columns.iter().zip(&mut reasons) {
        if runs == 0 {
            *reason = Some("no run besides idle".to_owned());
        } else if c.x.iter().all(|v| v.abs() < NOT_MOVED) {
            *reason = Some(format!(
                "`{}` is 0 net of idle in all {runs} runs, so they say nothing about its cost{}",
                c.counter, c.hint
            ));
        }
    }
    // Each run weighs by 1 / its total CPU: measurement noise grows with a run's CPU, so
    // unweighted, the noise of the largest runs would drown the small costs (an etcd-served
    // node-scoped LIST beside a cluster-wide one). Then each column is scaled to unit length:
    // their magnitudes differ by six orders (lists against objects).
    let weights: Vec<f64> = net.iter().map(|n| 1.0 / n.total_cpu.max(1e-3)).collect();
    let weighted = |v: &[f64]| -> Vec<f64> { v.iter().zip(&weights).map(|(v, w)| v * w).collect() };
    let weighted_columns: Vec<Vec<f64>> = columns.iter().map(|c| weighted(&c.x)).collect();
    let scales: Vec<f64> = weighted_columns.iter().map(|c| norm(c)).collect();
    let scaled: Vec<Vec<f64>> = weighted_columns
        .iter()
        .zip(&scales)
        .map(|(c, s)| c.iter().map(|v| v / s).collect())
        .collect();
    // A column that is a combination of the ones already in cannot be told apart from them.
    let mut free: Vec<usize> = Vec::new();
    for j in 0..columns.len() {
        if reasons[j].is_some() {
            continue;
        }
        if free.len() == runs {
            reasons[j] = Some(format!(
                "{runs} runs cannot separate more than {runs} costs"
            ));
            continue;
        }
        let mut trial: Vec<&[f64]> = free.iter().map(|&i| scaled[i].as_slice()).collect();
        trial.push(&scaled[j]);
        if qr(&trial, &y).is_some() {
            free.push(j);
        } else {
            let others: Vec<&str> = free.iter().map(|&i| columns[i].counter).collect();
            reasons[j] = Some(format!(
                "`{}` moves in step with `{}` across these {runs} runs, so their costs cannot \
                 be told apart",
                columns[j].counter,
                others.join("`, `")
            ));
        }
    }
    // Columns held at their base value contribute their base cost; the rest is fitted.
    let held: Vec<f64> = (0..runs)
        .map(|i| {
            (0..columns.len())
                .filter(|j| !free.contains(j))
                .map(|j| columns[j].base * columns[j].x[i])
                .sum()
        })
        .collect();
    let target: Vec<f64> = y.iter().zip(&held).map(|(y, h)| y - h).collect();
    let free_columns: Vec<Vec<f64>> = free.iter().map(|&j| scaled[j].clone()).collect();
    let solution = if free.is_empty() {
        Vec::new()
    } else {
        nnls(&free_columns, &weighted(&target))
    };
    // A coefficient at the bound 0 is below what these runs resolve: keep the base value (the
    // simulator needs some cost there), and leave the others as fitted with it at 0.
    for (&j, &x) in free.iter().zip(&solution) {
        if x <= 0.0 {
            reasons[j] = Some(format!(
                "the best non-negative fit puts it at 0 over these {runs} runs: its cost is \
                 below what they resolve"
            ));
        }
    }
    // Residuals in CPU seconds, for the report; weighted, for the standard errors.
    let residuals: Vec<f64> = (0..runs)
        .map(|i| {
            let fitted: f64 = free
                .iter()
                .zip(&solution)
                .map(|(&j, &x)| x / scales[j] * columns[j].x[i])
                .sum();
            target[i] - fitted
        })
        .collect();
    let in_fit: Vec<usize> = free
        .iter()
        .zip(&solution)
        .filter(|&(_, &x)| x > 0.0)
        .map(|(&j, _)| j)
        .collect();
    let errors = standard_errors(
        &in_fit
            .iter()
            .map(|&j| scaled[j].as_slice())
            .collect::<Vec<_>>(),
        &weighted(&residuals),
    );
    let relative_rms = relative_rms(&residuals, &y);
    let r_squared = r_squared(&residuals, &y);
    let counters = columns.each_ref().map(|c| c.counter);
    let mut out = columns.map(|c| Coefficient {
        key: c.key,
        base: c.base,
        runs,
        outcome: Outcome::NotMeasured {
            reason: String::new(),
        },
    });
    for (j, coefficient) in out.iter_mut().enumerate() {
        coefficient.outcome = match reasons[j].take() {
            Some(reason) => Outcome::NotMeasured { reason },
            None => {
                let position = free.iter().position(|&f| f == j).unwrap_or(0);
                let x = solution.get(position).copied().unwrap_or(0.0);
                let se = in_fit
                    .iter()
                    .position(|&f| f == j)
                    .and_then(|p| errors.as_ref().map(|e| e[p] / x));
                if let Some(se) = se.filter(|&se| se > MAX_RELATIVE_STANDARD_ERROR) {
                    coefficient.outcome = Outcome::NotMeasured {
                        reason: format!(
                            "the runs leave it uncertain (±{}% standard error over {runs} \
                             runs; few of them move `{}`)",
                            percent(se),
                            counters[j]
                        ),
                    };
                    continue;
                }
                measured(
                    x / scales[j],
                    Quality {
                        relative_rms,
                        r_squared,
                        relative_standard_error: se,
                        note: None,
                    },
                )
            }
        };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(c: &Coefficient) -> &str {
        match &c.outcome {
            Outcome::NotMeasured { reason } => reason,
            Outcome::Measured { .. } => panic!("{} measured: {c:?}", c.key),
        }
    }

    #[test]
    fn costs_whose_counters_move_in_step_cannot_be_told_apart() {
        // Every run LISTs the same number of objects per LIST, so LISTs and objects listed
        // from the cache are one column up to a factor.
        let (per_list, per_object, per_event, objects_per_list) = (2e-3, 4e-6, 8e-6, 1_000.0);
        let net: Vec<Net> = [(10.0, 500.0), (40.0, 100.0), (90.0, 9_000.0), (20.0, 0.0)]
            .into_iter()
            .map(|(lists, events)| {
                let from_cache = lists * objects_per_list;
                let cpu = per_list * lists + per_object * from_cache + per_event * events;
                Net {
                    pattern: crate::inputs::Pattern::WatchAll,
                    seconds: 60.0,
                    total_cpu: cpu + 1.0,
                    cpu,
                    lists,
                    from_cache,
                    from_etcd: 0.0,
                    list_seconds: 0.0,
                    events,
                    rss: 0.0,
                }
            })
            .collect();
        // A base that charges less per cached object than the truth, so that the LISTs absorb
        // the difference.
        let mut base = Calibration::default();
        base.api_server.cpu_seconds_per_object_listed_from_cache = per_object / 4.0;
        let [list, etcd, cache, watch] = fit_cpu(&net, &base);
        assert!(matches!(list.outcome, Outcome::Measured { .. }), "{list:?}");
        assert!(
            reason(&etcd).starts_with("`pods_listed_from_etcd` is 0"),
            "{etcd:?}"
        );
        assert_eq!(
            reason(&cache),
            "`pods_listed − pods_listed_from_etcd` moves in step with `pod_lists` across these \
             4 runs, so their costs cannot be told apart"
        );
        assert_eq!(
            cache.value(),
            base.api_server.cpu_seconds_per_object_listed_from_cache
        );
        // Held at its base value, the cache cost is taken out before the others are fitted.
        let list_cost = per_list + (per_object - cache.value()) * objects_per_list;
        let fitted = list.value();
        assert!(
            ((fitted - list_cost) / list_cost).abs() < 0.01,
            "{fitted} vs {list_cost}"
        );
        let fitted = watch.value();
        assert!(
            ((fitted - per_event) / per_event).abs() < 0.01,
            "{fitted} vs {per_event}"
        );
    }

    #[test]
    fn without_runs_besides_idle_nothing_is_measured() {
        let base = Calibration::default();
        for c in fit_cpu(&[], &base) {
            assert_eq!(reason(&c), "no run besides idle");
            assert_eq!((c.runs, c.value()), (0, c.base));
        }
    }
}
