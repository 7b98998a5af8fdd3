//! The remote-write sink (`remote_write:` or `--remote-write URL`): every interval, the page
//! `/metrics` would serve is pushed to a Prometheus remote-write 1.0 receiver through the
//! shared sink of `fleetwatch-telemetry` (bounded queue, drops oldest and counts it, retries
//! 5xx and 429).
//!
//! Owns: when to push and turning a page into time series. Must not: block `/metrics`, or
//! send anything `/metrics` would not show.

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fleetwatch_telemetry::exposition::{Exposition, Format};
use fleetwatch_telemetry::remote_write::{self, RemoteWrite, Sample, TimeSeries};
use fleetwatch_telemetry::text;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tokio::sync::watch;

use crate::component::stopped;
use crate::error::Error;

/// The `remote_write:` section. Without a URL there is no sink.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RemoteWriteConfig {
    /// The receiver's write endpoint, e.g. `http://prometheus:9090/api/v1/write`.
    pub url: Option<String>,
    /// How often the page is pushed.
    #[serde(rename = "interval_seconds", with = "crate::config::seconds")]
    pub interval: Duration,
    /// PEM certificates trusted for an https receiver, beside the system's roots.
    pub ca_file: Option<PathBuf>,
    /// The most samples queued while the receiver is away; beyond it the oldest are dropped
    /// (and counted).
    pub capacity_samples: usize,
}

impl Default for RemoteWriteConfig {
    fn default() -> Self {
        RemoteWriteConfig {
            url: None,
            interval: Duration::from_secs(30),
            ca_file: None,
            capacity_samples: remote_write::DEFAULT_CAPACITY,
        }
    }
}

impl RemoteWriteConfig {
    /// Checks the section, naming the field that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.interval < Duration::from_secs(1) {
            return Err("remote_write.interval_seconds: must be at least 1".into());
        }
        if let Some(config) = self.sink() {
            config
                .validate()
                .map_err(|e| format!("remote_write: {e}"))?;
        }
        Ok(())
    }

    fn sink(&self) -> Option<remote_write::Config> {
        let url = self.url.as_ref()?;
        let mut config = remote_write::Config::new(url.clone());
        config.ca_file.clone_from(&self.ca_file);
        config.capacity = self.capacity_samples;
        Some(config)
    }

    /// Starts the sink (registering its series in `registry`), if a URL is configured.
    pub fn start(&self, registry: &mut Registry) -> Result<Option<Sink>, Error> {
        let Some(config) = self.sink() else {
            return Ok(None);
        };
        let (sink, task) = RemoteWrite::start(config, registry).map_err(|e| Error::Component {
            component: "remote_write",
            reason: e.to_string(),
        })?;
        tokio::spawn(task);
        Ok(Some(Sink {
            sink,
            interval: self.interval,
        }))
    }
}

/// A started sink: [`Sink::run`] pushes the page every interval until stopped.
#[derive(Debug, Clone)]
pub struct Sink {
    sink: RemoteWrite,
    interval: Duration,
}

impl Sink {
    /// Pushes what `exposition` serves every interval until `stop` turns true.
    pub async fn run(&self, exposition: Exposition, mut stop: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stopped(&mut stop) => return,
                _ = ticks.tick() => self.push(&exposition).await,
            }
        }
    }

    /// Pushes the page once, then sends what is queued until `deadline` and stops.
    pub async fn finish(self, exposition: &Exposition, deadline: Instant) {
        self.push(exposition).await;
        let stats = self.sink.shutdown(deadline).await;
        tracing::info!(
            sent = stats.sent,
            dropped = stats.dropped,
            rejected = stats.rejected,
            "remote-write stopped"
        );
    }

    async fn push(&self, exposition: &Exposition) {
        let exposition = exposition.clone();
        // Rendering and parsing a large page is CPU work: off the async threads.
        let series = tokio::task::spawn_blocking(move || {
            exposition
                .render(Format::Text)
                .map(|page| time_series(&page, now_ms()))
        })
        .await;
        match series {
            Ok(Ok(series)) => self.sink.push(series),
            Ok(Err(_)) | Err(_) => tracing::warn!("remote-write: the page could not be rendered"),
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Every sample of `page` as a series with one sample at `timestamp_ms` (a sample's own
/// timestamp wins).
fn time_series(page: &[u8], timestamp_ms: i64) -> Vec<TimeSeries> {
    text::parse_bytes(page)
        .samples()
        .map(|sample| {
            TimeSeries::new(
                sample.name,
                sample
                    .labels
                    .iter()
                    .map(|l| (l.name, l.value.as_ref().to_owned())),
                vec![Sample::new(
                    sample.value,
                    sample.timestamp_ms.unwrap_or(timestamp_ms),
                )],
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_becomes_a_series_with_its_labels() {
        let page = "# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\"} 3\nb 2 1700000000000\n";
        let series = time_series(page.as_bytes(), 42);
        assert_eq!(series.len(), 2);
        let labels: Vec<(&str, &str)> = series[0]
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(labels, [("__name__", "a_total"), ("x", "1"), ("y", "q\"")]);
        assert_eq!(series[0].samples, [Sample::new(3.0, 42)]);
        assert_eq!(series[1].samples, [Sample::new(2.0, 1_700_000_000_000)]);
    }

    #[test]
    fn a_bad_url_names_the_section() {
        let config = RemoteWriteConfig {
            url: Some("ftp://example".into()),
            ..RemoteWriteConfig::default()
        };
        let error = config.validate().expect_err("refused");
        assert!(error.starts_with("remote_write: "), "{error}");
    }
}
