//! Net of idle: every run carries the same background — a probe's GETs, pod churn, the API
//! server's housekeeping — which the `idle` run at the same cluster size measures, so the fits
//! work on a run minus the idle run of its size (rates scaled to the run's length).
//!
//! Imports [`inputs`](crate::inputs) only.

use std::collections::BTreeMap;

use crate::inputs::{Pattern, Run};

/// Less than one count net of idle in every run: the counter did not move.
pub(crate) const NOT_MOVED: f64 = 0.5;

/// A non-idle run minus the background of its size.
#[derive(Debug, Clone)]
pub(crate) struct Net {
    pub pattern: Pattern,
    pub seconds: f64,
    /// The run's own CPU, background included (sets its weight in the CPU fit).
    pub total_cpu: f64,
    pub cpu: f64,
    pub lists: f64,
    pub from_cache: f64,
    /// Pods read from etcd (for `naive-list-node`, every pod per LIST, not the ones returned).
    pub from_etcd: f64,
    pub list_seconds: f64,
    pub events: f64,
    /// Peak RSS above the idle run's peak (a level, not a rate: not scaled by time).
    pub rss: f64,
}

/// Cluster sizes with runs but no idle run to take them net of.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "no idle run at {} nodes, which the {} run(s) there need: every cost is taken net of the \
     background (probe, churn, housekeeping) that the idle run of the same cluster size \
     measures, so every size needs one",
    join(nodes),
    join(patterns)
)]
pub struct MissingIdle {
    pub nodes: Vec<usize>,
    /// The patterns run at those sizes, in [`Pattern::ALL`]'s order.
    pub patterns: Vec<Pattern>,
}

fn join<T: ToString>(values: &[T]) -> String {
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every non-idle run net of the idle run(s) of its size.
///
/// # Errors
/// [`MissingIdle`] if some size has runs but no idle run.
pub(crate) fn net_of_idle(runs: &[Run]) -> Result<Vec<Net>, MissingIdle> {
    let baselines = baselines(runs);
    let agents = || runs.iter().filter(|r| r.pattern != Pattern::Idle);
    let orphans: Vec<&Run> = agents()
        .filter(|r| !baselines.contains_key(&r.nodes))
        .collect();
    if !orphans.is_empty() {
        let mut nodes: Vec<usize> = orphans.iter().map(|r| r.nodes).collect();
        let mut patterns: Vec<Pattern> = orphans.iter().map(|r| r.pattern).collect();
        nodes.sort_unstable();
        nodes.dedup();
        patterns.sort_unstable();
        patterns.dedup();
        return Err(MissingIdle { nodes, patterns });
    }
    Ok(agents()
        .filter_map(|r| baselines.get(&r.nodes).map(|idle| Net::new(r, idle)))
        .collect())
}

/// The background at one cluster size: the idle runs' counters per second, and their peak RSS.
#[derive(Debug, Clone, Default)]
struct Baseline {
    cpu: f64,
    lists: f64,
    listed: f64,
    from_etcd: f64,
    list_seconds: f64,
    events: f64,
    rss: f64,
}

/// Idle runs by node count, averaged where a size has several.
fn baselines(runs: &[Run]) -> BTreeMap<usize, Baseline> {
    let mut sums: BTreeMap<usize, (Baseline, f64)> = BTreeMap::new();
    for m in runs.iter().filter(|m| m.pattern == Pattern::Idle) {
        let (b, n) = sums.entry(m.nodes).or_default();
        let per_second = |v: f64| v / m.seconds;
        b.cpu += per_second(m.apiserver_cpu_seconds);
        b.lists += per_second(m.pod_lists as f64);
        b.listed += per_second(m.pods_listed as f64);
        b.from_etcd += per_second(m.pods_listed_from_etcd as f64);
        b.list_seconds += per_second(m.pod_list_seconds);
        b.events += per_second(m.watch_events_sent as f64);
        b.rss += m.apiserver_peak_rss_bytes as f64;
        *n += 1.0;
    }
    sums.into_iter()
        .map(|(nodes, (b, n))| {
            let mean = Baseline {
                cpu: b.cpu / n,
                lists: b.lists / n,
                listed: b.listed / n,
                from_etcd: b.from_etcd / n,
                list_seconds: b.list_seconds / n,
                events: b.events / n,
                rss: b.rss / n,
            };
            (nodes, mean)
        })
        .collect()
}

impl Net {
    fn new(m: &Run, idle: &Baseline) -> Self {
        let net = |value: f64, rate: f64| value - rate * m.seconds;
        let from_etcd_returned = net(m.pods_listed_from_etcd as f64, idle.from_etcd);
        // A field-selected LIST served from etcd reads every pod to return the node's own: its
        // cost follows what it reads, N times what it returns. (Net of idle first: the API
        // server's own relists are cluster-wide; a negative remainder is noise, not reads.)
        let from_etcd = if m.pattern == Pattern::NaiveListNode {
            from_etcd_returned.max(0.0) * m.nodes as f64
        } else {
            from_etcd_returned
        };
        Net {
            pattern: m.pattern,
            seconds: m.seconds,
            total_cpu: m.apiserver_cpu_seconds,
            cpu: net(m.apiserver_cpu_seconds, idle.cpu),
            lists: net(m.pod_lists as f64, idle.lists),
            from_cache: net(m.pods_listed as f64, idle.listed) - from_etcd_returned,
            from_etcd,
            list_seconds: net(m.pod_list_seconds, idle.list_seconds),
            events: net(m.watch_events_sent as f64, idle.events),
            rss: m.apiserver_peak_rss_bytes as f64 - idle.rss,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::run;

    #[test]
    fn a_run_is_taken_net_of_the_idle_runs_of_its_size_as_rates() {
        let idle = run(Pattern::Idle, 50);
        // A second idle run at the same size, twice as long and twice as busy per second.
        let mut idle2 = idle.clone();
        idle2.seconds = 2.0 * idle.seconds;
        idle2.apiserver_cpu_seconds = 4.0 * idle.apiserver_cpu_seconds;
        idle2.watch_events_sent = 4 * idle.watch_events_sent;
        idle2.apiserver_peak_rss_bytes = idle.apiserver_peak_rss_bytes + 1000;
        let mut watch = run(Pattern::WatchAll, 50);
        watch.seconds = 3.0 * idle.seconds;
        let net = net_of_idle(&[idle.clone(), watch.clone(), idle2.clone()]).expect("idle there");
        assert_eq!(net.len(), 1);
        let n = &net[0];
        // The mean idle rate is 1.5× the first run's; the watch run is 3 of its lengths long.
        let cpu_rate = 1.5 * idle.apiserver_cpu_seconds / idle.seconds;
        let events_rate = 1.5 * idle.watch_events_sent as f64 / idle.seconds;
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        assert!(close(
            n.cpu,
            watch.apiserver_cpu_seconds - cpu_rate * watch.seconds
        ));
        assert!(close(
            n.events,
            watch.watch_events_sent as f64 - events_rate * watch.seconds
        ));
        assert_eq!(n.total_cpu, watch.apiserver_cpu_seconds);
        // Peak RSS is a level: net of the idle runs' mean peak, not scaled by time.
        let idle_rss = idle.apiserver_peak_rss_bytes as f64 + 500.0;
        assert!(close(
            n.rss,
            watch.apiserver_peak_rss_bytes as f64 - idle_rss
        ));
        assert!(close(
            n.from_cache + n.from_etcd,
            watch.pods_listed as f64 - 1.5 * idle.pods_listed as f64 / idle.seconds * watch.seconds
        ));
    }

    #[test]
    fn sizes_without_an_idle_run_are_named_with_their_patterns() {
        let runs = [
            run(Pattern::Idle, 50),
            run(Pattern::WatchNode, 50),
            run(Pattern::Fleetwatch, 200),
            run(Pattern::NaiveList, 100),
            run(Pattern::Fleetwatch, 100),
        ];
        let err = net_of_idle(&runs).expect_err("no idle at 100 and 200");
        assert_eq!(
            err,
            MissingIdle {
                nodes: vec![100, 200],
                patterns: vec![Pattern::NaiveList, Pattern::Fleetwatch],
            }
        );
        let message = err.to_string();
        assert!(
            message.starts_with(
                "no idle run at 100, 200 nodes, which the naive-list, fleetwatch run(s) there need"
            ),
            "{message}"
        );
        assert!(message.contains("every size needs one"), "{message}");
    }
}
