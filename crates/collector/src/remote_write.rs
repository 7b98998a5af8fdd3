//! The remote-write sink (`remote_write:` or `--remote-write URL`): every interval, the page
//! `/metrics` would serve is pushed to a Prometheus remote-write 1.0 receiver through the
//! shared sink of `fleetwatch-telemetry` (bounded queue, drops oldest and counts it, retries
//! 5xx and 429) and its [`PagePusher`].
//!
//! Owns: the section's settings. Must not: block `/metrics`, or send anything `/metrics` would
//! not show.

use std::path::PathBuf;
use std::time::Duration;

use fleetwatch_telemetry::remote_write::{self, PagePusher, RemoteWrite};
use prometheus_client::registry::Registry;
use serde::Deserialize;

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
    pub fn start(&self, registry: &mut Registry) -> Result<Option<PagePusher>, Error> {
        let Some(config) = self.sink() else {
            return Ok(None);
        };
        let (sink, task) = RemoteWrite::start(config, registry).map_err(|e| Error::Component {
            component: "remote_write",
            reason: e.to_string(),
        })?;
        tokio::spawn(task);
        Ok(Some(PagePusher::new(sink, self.interval)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
