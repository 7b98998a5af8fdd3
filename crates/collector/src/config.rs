//! The collector's configuration file (`--config FILE`, YAML): one section per component, each
//! with defaults, unknown keys refused, and errors that name the file, line and field.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use crate::apiserver::ApiServerConfig;
use crate::audit::AuditConfig;
use crate::error::Error;
use crate::leader::LeaderElectionConfig;
use crate::remote_write::RemoteWriteConfig;

/// Where `/metrics` is served unless configured.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9470";

/// Everything the collector runs, by component.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// The address `/metrics`, `/healthz` and `/readyz` are served on.
    pub listen: SocketAddr,
    /// Scraping the API server's replicas.
    pub apiserver: ApiServerConfig,
    /// Object state from informers.
    pub objects: ObjectsConfig,
    /// The audit webhook receiver (every replica runs it, leader or not).
    pub audit: AuditConfig,
    /// Which replica leads.
    pub leader_election: LeaderElectionConfig,
    /// Pushing the page to a remote-write receiver.
    pub remote_write: RemoteWriteConfig,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            listen: DEFAULT_LISTEN
                .parse()
                .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 9470))),
            apiserver: ApiServerConfig::default(),
            objects: ObjectsConfig::default(),
            audit: AuditConfig::default(),
            leader_election: LeaderElectionConfig::default(),
            remote_write: RemoteWriteConfig::default(),
        }
    }
}

impl CollectorConfig {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<CollectorConfig, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
            at: path.display().to_string(),
            message: format!("cannot read it: {e}"),
        })?;
        CollectorConfig::parse(&path.display().to_string(), &text)
    }

    /// Parses and checks `text`, read from `file`.
    pub fn parse(file: &str, text: &str) -> Result<CollectorConfig, Error> {
        let config: CollectorConfig = if text.trim().is_empty() {
            CollectorConfig::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| {
                let line = e.location().map_or(1, |l| l.line());
                let mut message = e.to_string();
                // The crate appends the position; it is printed in front instead.
                if let Some(i) = message.find(" at line ") {
                    message.truncate(i);
                }
                Error::Config {
                    at: format!("{file}:{line}"),
                    message,
                }
            })?
        };
        config.validate().map_err(|message| Error::Config {
            at: file.to_owned(),
            message,
        })?;
        Ok(config)
    }

    /// Checks settings that are wrong together.
    pub fn validate(&self) -> Result<(), String> {
        self.apiserver.validate()?;
        self.leader_election.validate()?;
        self.audit.validate()?;
        self.remote_write.validate()
    }
}

/// The object-state source's settings (`objects:`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectsConfig {
    /// Whether to watch nodes, pods, namespaces, DaemonSets and Deployments.
    pub enabled: bool,
}

impl Default for ObjectsConfig {
    fn default() -> Self {
        ObjectsConfig { enabled: true }
    }
}

/// Durations as a number of seconds (`interval_seconds: 30`), so that a config file has one
/// unambiguous form.
pub mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let seconds = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(seconds).map_err(|_| {
            serde::de::Error::custom(format!(
                "{seconds} is not a duration in seconds (a non-negative number)"
            ))
        })
    }
}

impl crate::component::Component for ObjectsConfig {
    fn name(&self) -> &'static str {
        "objects"
    }

    fn build(
        &self,
        build: &mut crate::component::Build<'_>,
    ) -> Result<crate::component::Task, Error> {
        let ready = build.readiness.component(self.name());
        if !self.enabled {
            ready.set(true);
            return Ok(Box::pin(async {}));
        }
        let state =
            crate::objects::ObjectState::start(build.client).map_err(|e| Error::Component {
                component: "objects",
                reason: e.to_string(),
            })?;
        build.sections.push(std::sync::Arc::new(state.clone()));
        let mut stop = build.stop.clone();
        Ok(Box::pin(async move {
            tokio::select! {
                () = state.ready() => ready.set(true),
                _ = stop.wait_for(|stop| *stop) => return,
            }
            // The informers run in the client; the state lives as long as the collector.
            let _ = stop.wait_for(|stop| *stop).await;
            drop(state);
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_empty_file_is_the_defaults() {
        assert_eq!(
            CollectorConfig::parse("c.yaml", "").expect("defaults"),
            CollectorConfig::default()
        );
    }

    #[test]
    fn settings_are_read_in_seconds() {
        let config = CollectorConfig::parse(
            "c.yaml",
            "listen: 127.0.0.1:9999\napiserver:\n  interval_seconds: 15\n  timeout_seconds: 2.5\n",
        )
        .expect("parses");
        assert_eq!(config.listen.port(), 9999);
        assert_eq!(config.apiserver.interval, Duration::from_secs(15));
        assert_eq!(config.apiserver.timeout, Duration::from_millis(2500));
    }

    #[test]
    fn errors_name_the_file_line_and_field() {
        let error = CollectorConfig::parse("c.yaml", "apiserver:\n  interval: 15\n")
            .expect_err("an unknown field");
        let message = error.to_string();
        assert!(message.starts_with("c.yaml:2: "), "{message}");
        assert!(message.contains("interval"), "{message}");
        let error = CollectorConfig::parse("c.yaml", "apiserver:\n  interval_seconds: -1\n")
            .expect_err("a negative duration");
        assert!(error.to_string().contains("not a duration"), "{error}");
        let error = CollectorConfig::parse("c.yaml", "apiserver:\n  window_seconds: 30\n")
            .expect_err("a window shorter than two intervals");
        assert!(error.to_string().contains("apiserver.window"), "{error}");
    }
}
