//! What a cluster's own traffic and the change's agents ask of the API server, per pattern.
//!
//! Everything here is per cluster and depends only on its size, so it is computed once.

use crate::{
    apiserver::RequestCost,
    calibration::Calibration,
    fleet::{ClusterSpec, Pattern, Timing},
};

/// A `/metrics` scrape costs this many single-object GETs (large text body).
const SCRAPE_GETS: f64 = 10.0;
/// fleetwatch's collector scrapes every API server replica this often.
const SCRAPE_INTERVAL_SECONDS: f64 = 15.0;

/// How a client retries a request that was rejected (429) or failed: this fraction is re-issued
/// after `delay_seconds` (a fluid stand-in for its backoff), the rest is dropped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub fraction: f64,
    pub delay_seconds: f64,
}

impl RetryPolicy {
    pub const NONE: RetryPolicy = RetryPolicy {
        fraction: 0.0,
        delay_seconds: 0.0,
    };
}

/// The change's demands in one cluster.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChangeLoad {
    /// What one of its requests costs.
    pub cost: RequestCost,
    /// Periodic requests per running agent per second, on average.
    pub requests_per_agent_per_second: f64,
    /// When the periodic requests come: spread evenly, or all at once every interval.
    pub timing: Timing,
    /// Requests an agent makes when it starts or must relist (a broken watch).
    pub requests_per_start: f64,
    /// Requests per second of the per-cluster part (a collector) while any agent runs.
    pub cluster_requests_per_replica_per_second: f64,
    /// Watch-event CPU per running agent, in cores.
    pub background_cores_per_agent: f64,
    /// Watch-event CPU of the per-cluster part while any agent runs, in cores.
    pub cluster_background_cores: f64,
    /// Open watches per running agent.
    pub watches_per_agent: f64,
    pub retry: RetryPolicy,
}

/// The cluster's own GET-class request (kubelets, controllers, DNS misses).
#[must_use]
pub fn get_cost(cal: &Calibration, timeout_seconds: f64) -> RequestCost {
    RequestCost {
        cpu_seconds: cal.api_server.cpu_seconds_per_get,
        seats: 1.0,
        memory_bytes: 0.0,
        etcd_objects: 0.0,
        timeout_seconds,
    }
}

/// A LIST of `objects` objects, `etcd_fraction` of them read from etcd and the rest from the
/// watch cache.
#[must_use]
pub fn list_cost(cal: &Calibration, objects: f64, etcd_fraction: f64) -> RequestCost {
    let a = &cal.api_server;
    let per_object = etcd_fraction * a.cpu_seconds_per_object_listed_from_etcd
        + (1.0 - etcd_fraction) * a.cpu_seconds_per_object_listed_from_cache;
    RequestCost {
        cpu_seconds: a.cpu_seconds_per_list + objects * per_object,
        seats: (objects / cal.apf.objects_per_list_seat).clamp(1.0, cal.apf.max_seats_per_request),
        memory_bytes: objects * a.memory_bytes_per_object_listed,
        etcd_objects: etcd_fraction * objects,
        timeout_seconds: a.request_timeout_seconds,
    }
}

/// An informer's list (`resourceVersion=0`): always the watch cache.
const FROM_CACHE: f64 = 0.0;

/// The change's load in a cluster of this shape.
#[must_use]
pub fn change_load(pattern: Pattern, cal: &Calibration, cluster: &ClusterSpec) -> ChangeLoad {
    let timeout = cal.api_server.request_timeout_seconds;
    let event_cpu = cal.api_server.cpu_seconds_per_watch_event;
    let pod_events = cluster.pods() * cal.cluster.pod_events_per_pod_per_second;
    let node_pod_events =
        f64::from(cluster.pods_per_node) * cal.cluster.pod_events_per_pod_per_second;
    let idle = ChangeLoad {
        cost: get_cost(cal, timeout),
        requests_per_agent_per_second: 0.0,
        timing: Timing::Jittered,
        requests_per_start: 0.0,
        cluster_requests_per_replica_per_second: 0.0,
        background_cores_per_agent: 0.0,
        cluster_background_cores: 0.0,
        watches_per_agent: 0.0,
        retry: RetryPolicy::NONE,
    };
    // client-go's reflector backs off (0.8 s doubling to 30 s) before relisting.
    let reflector = RetryPolicy {
        fraction: 1.0,
        delay_seconds: 10.0,
    };
    // A poller retries a 429 after a second.
    let poller = RetryPolicy {
        fraction: 1.0,
        delay_seconds: 1.0,
    };
    match pattern {
        Pattern::NaiveList {
            interval_seconds,
            timing,
        } => ChangeLoad {
            // Without resourceVersion: etcd on the API servers of 2024, the watch cache on
            // today's (consistent reads from cache) — as the calibration measured.
            cost: list_cost(
                cal,
                cluster.pods(),
                cal.api_server.fraction_of_unversioned_lists_from_etcd,
            ),
            requests_per_agent_per_second: 1.0 / interval_seconds,
            timing,
            retry: poller,
            ..idle
        },
        Pattern::NodeList {
            interval_seconds,
            timing,
        } => ChangeLoad {
            cost: list_cost(cal, f64::from(cluster.pods_per_node), FROM_CACHE),
            requests_per_agent_per_second: 1.0 / interval_seconds,
            timing,
            retry: poller,
            ..idle
        },
        Pattern::WatchAll => ChangeLoad {
            cost: list_cost(cal, cluster.pods(), FROM_CACHE),
            requests_per_start: 1.0,
            background_cores_per_agent: pod_events * event_cpu,
            watches_per_agent: 1.0,
            retry: reflector,
            ..idle
        },
        Pattern::WatchNode => ChangeLoad {
            cost: list_cost(cal, f64::from(cluster.pods_per_node), FROM_CACHE),
            requests_per_start: 1.0,
            background_cores_per_agent: node_pod_events * event_cpu,
            watches_per_agent: 1.0,
            retry: reflector,
            ..idle
        },
        Pattern::Fleetwatch => ChangeLoad {
            cost: RequestCost {
                cpu_seconds: SCRAPE_GETS * cal.api_server.cpu_seconds_per_get,
                ..get_cost(cal, timeout)
            },
            cluster_requests_per_replica_per_second: 1.0 / SCRAPE_INTERVAL_SECONDS,
            cluster_background_cores: pod_events * event_cpu,
            // The budgeted client gives up on half of its retries and backs off long.
            retry: RetryPolicy {
                fraction: 0.5,
                delay_seconds: 30.0,
            },
            ..idle
        },
    }
}

impl ChangeLoad {
    /// Periodic requests `agents` agents make in the step that ends at step `step` of `dt`
    /// seconds: a step's share when spread, a whole interval's at once when synchronized.
    #[must_use]
    pub fn periodic_requests(&self, agents: f64, step: usize, dt: f64) -> f64 {
        let per_second = agents * self.requests_per_agent_per_second;
        match self.timing {
            Timing::Jittered => per_second * dt,
            Timing::Synchronized => {
                // A whole positive number of steps per interval.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let steps =
                    ((1.0 / (self.requests_per_agent_per_second * dt)).round() as usize).max(1);
                if step > 0 && step.is_multiple_of(steps) {
                    agents
                } else {
                    0.0
                }
            }
        }
    }

    /// API server CPU, in cores, that `agents` agents would ask for in steady state if nothing
    /// were rejected (the offered load).
    #[must_use]
    pub fn offered_cores(&self, agents: f64, replicas: u32) -> f64 {
        if agents <= 0.0 {
            return 0.0;
        }
        let requests = agents * self.requests_per_agent_per_second
            + f64::from(replicas) * self.cluster_requests_per_replica_per_second;
        requests * self.cost.cpu_seconds
            + agents * self.background_cores_per_agent
            + self.cluster_background_cores
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cluster(nodes: u32) -> ClusterSpec {
        // Same control plane for every size: only the change's own load may vary.
        ClusterSpec {
            api: crate::fleet::ApiServerSpec::for_nodes(5000),
            ..ClusterSpec::new("c", nodes, false)
        }
    }

    proptest! {
        /// A bigger cluster never lowers the naive-list load: per node and in total, CPU and memory.
        #[test]
        fn naive_list_load_is_monotonic_in_cluster_size(a in 1u32..20_000, b in 1u32..20_000) {
            let (small, big) = (a.min(b), a.max(b));
            let cal = Calibration::default();
            let pattern = Pattern::NaiveList { interval_seconds: 30.0, timing: Timing::Jittered };
            let ls = change_load(pattern, &cal, &cluster(small));
            let lb = change_load(pattern, &cal, &cluster(big));
            prop_assert!(lb.cost.cpu_seconds >= ls.cost.cpu_seconds);
            prop_assert!(lb.cost.memory_bytes >= ls.cost.memory_bytes);
            prop_assert!(lb.cost.seats >= ls.cost.seats);
            prop_assert!(lb.offered_cores(f64::from(big), 3) >= ls.offered_cores(f64::from(small), 3));
        }
    }

    #[test]
    fn synchronized_calls_ask_as_much_as_spread_ones_all_at_once() {
        let cal = Calibration::default();
        let load = |timing| {
            let pattern = Pattern::NaiveList {
                interval_seconds: 600.0,
                timing,
            };
            change_load(pattern, &cal, &cluster(100))
        };
        let per_step = |timing| -> Vec<f64> {
            (1..=1200)
                .map(|step| load(timing).periodic_requests(50.0, step, 1.0))
                .collect()
        };
        let (spread, synchronized) = (per_step(Timing::Jittered), per_step(Timing::Synchronized));
        let total = |v: &[f64]| v.iter().sum::<f64>();
        assert!((total(&spread) - 100.0).abs() < 1e-9);
        assert!((total(&synchronized) - 100.0).abs() < 1e-9);
        // Every node at once, at the 600th and 1200th second.
        assert_eq!(synchronized.iter().filter(|&&r| r > 0.0).count(), 2);
        assert_eq!(synchronized[599], 50.0);
    }

    #[test]
    fn patterns_scale_as_the_load_lab_says() {
        let cal = Calibration::default();
        let per_node = |p: Pattern, n: u32| {
            change_load(p, &cal, &cluster(n)).offered_cores(f64::from(n), 3) / f64::from(n)
        };
        let naive = Pattern::NaiveList {
            interval_seconds: 30.0,
            timing: Timing::Jittered,
        };
        // Per-node cost grows with cluster size for the cluster-wide patterns...
        assert!(per_node(naive, 5000) > 50.0 * per_node(naive, 50));
        assert!(per_node(Pattern::WatchAll, 5000) > 50.0 * per_node(Pattern::WatchAll, 50));
        // ...stays flat for the node-scoped watch...
        assert!(
            (per_node(Pattern::WatchNode, 5000) - per_node(Pattern::WatchNode, 50)).abs() < 1e-12
        );
        // ...and fleetwatch's total is per cluster, so its per-node cost falls.
        assert!(per_node(Pattern::Fleetwatch, 5000) < per_node(Pattern::Fleetwatch, 50));
    }
}
