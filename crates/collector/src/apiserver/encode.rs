//! The API-server source's series, encoded from its state on each `/metrics` scrape: every
//! signal per replica (`replica="https://…"`) and for the cluster (`replica="cluster"`), each
//! replica's up series per endpoint, and the source's own errors.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::ApiServers;
use super::signals::{Derive, PREFIX, QUANTILES, SIGNALS};
use super::window::{Derived, Value, quantile};

/// Reads one number off a replica's state.
type ReplicaValue<T> = fn(&super::scrape::Replica) -> T;

/// The `replica` label of the cluster-wide series.
pub const CLUSTER: &str = "cluster";

impl Collector for ApiServers {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let state = self.state();
        let replicas: Vec<(&str, &Derived)> = state
            .replicas
            .iter()
            .filter_map(|(server, r)| r.derived().map(|d| (server.as_str(), d)))
            .collect();
        let cluster = Derived::combine(replicas.iter().map(|(_, d)| *d));
        let all = replicas
            .iter()
            .copied()
            .chain((!replicas.is_empty()).then_some((CLUSTER, &cluster)));
        let all: Vec<(&str, &Derived)> = all.collect();
        for (i, signal) in SIGNALS.iter().enumerate() {
            let name = format!("{PREFIX}{}", signal.name);
            let mut family =
                encoder.encode_descriptor(&name, signal.help, None, MetricType::Gauge)?;
            for (replica, derived) in &all {
                for (key, value) in &derived.signals[i] {
                    let mut labels: Vec<(&str, &str)> = vec![("replica", replica)];
                    labels.extend(
                        signal
                            .by
                            .iter()
                            .copied()
                            .zip(key.iter().map(String::as_str)),
                    );
                    match (signal.derive, value) {
                        (Derive::Quantiles, Value::Histogram { buckets, .. }) => {
                            for (q, percentile) in QUANTILES {
                                let Some(v) = quantile(q, buckets) else {
                                    continue;
                                };
                                // `quantile` is reserved for summaries (promtool refuses it on a
                                // gauge): these are percentiles of the window, `percentile="99"`.
                                let mut labels = labels.clone();
                                labels.push(("percentile", percentile));
                                ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
                            }
                        }
                        (_, Value::Scalar(v)) => {
                            ConstGauge::new(*v).encode(family.encode_family(&labels)?)?;
                        }
                        _ => {}
                    }
                }
            }
        }
        let up_name = format!("{PREFIX}up");
        let mut up = encoder.encode_descriptor(
            &up_name,
            "Whether the replica's endpoint answered 2xx at the last scrape",
            None,
            MetricType::Gauge,
        )?;
        for (server, replica) in &state.replicas {
            for (endpoint, ok) in &replica.up {
                let labels = [
                    ("replica", server.as_str()),
                    ("endpoint", endpoint.as_str()),
                ];
                ConstGauge::new(i64::from(*ok)).encode(up.encode_family(&labels)?)?;
            }
        }
        let failing_name = format!("{PREFIX}readyz_check_failing");
        let mut failing = encoder.encode_descriptor(
            &failing_name,
            "A readiness check the replica reported failing at the last scrape",
            None,
            MetricType::Gauge,
        )?;
        for (server, replica) in &state.replicas {
            for check in &replica.failing_checks {
                let labels = [("replica", server.as_str()), ("check", check.as_str())];
                ConstGauge::new(1).encode(failing.encode_family(&labels)?)?;
            }
        }
        let errors_name = format!("{PREFIX}scrape_errors");
        let mut errors = encoder.encode_descriptor(
            &errors_name,
            "Failed reads of a replica's endpoint, by reason",
            None,
            MetricType::Counter,
        )?;
        for (server, replica) in &state.replicas {
            for ((endpoint, reason), count) in &replica.errors {
                let labels = [
                    ("replica", server.as_str()),
                    ("endpoint", endpoint.as_str()),
                    ("reason", reason),
                ];
                ConstCounter::new(*count).encode(errors.encode_family(&labels)?)?;
            }
        }
        let counters: [(&str, &str, ReplicaValue<u64>); 2] = [
            (
                "bad_lines",
                "Lines of the replica's /metrics pages that did not parse (the rest of each page counted)",
                |r| r.bad_lines,
            ),
            (
                "restarts",
                "Restarts of the replica seen by the collector (a new process start time)",
                |r| r.restarts,
            ),
        ];
        for (name, help, count) in counters {
            let name = format!("{PREFIX}{name}");
            let mut family = encoder.encode_descriptor(&name, help, None, MetricType::Counter)?;
            for (server, replica) in &state.replicas {
                let labels = [("replica", server.as_str())];
                ConstCounter::new(count(replica)).encode(family.encode_family(&labels)?)?;
            }
        }
        let gauges: [(&str, &str, ReplicaValue<f64>); 2] = [
            (
                "page_bytes",
                "Size of the replica's last /metrics page",
                |r| r.page_bytes as f64,
            ),
            (
                "scrape_duration_seconds",
                "Time the last read of the replica's three endpoints took",
                |r| r.scrape_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            let name = format!("{PREFIX}{name}");
            let mut family = encoder.encode_descriptor(&name, help, None, MetricType::Gauge)?;
            for (server, replica) in &state.replicas {
                let labels = [("replica", server.as_str())];
                ConstGauge::new(value(replica)).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
