//! The sink's typed configuration, validated where it enters ([`Config::validate`]).

use std::path::PathBuf;
use std::time::Duration;

use http::Uri;

/// How long one request may take, connecting included, before it is abandoned and retried.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The most samples one request carries (Prometheus's own `max_samples_per_send` is 2,000).
pub const DEFAULT_MAX_SAMPLES_PER_REQUEST: usize = 2_000;
/// The most samples the queue holds; past that the oldest are dropped.
pub const DEFAULT_CAPACITY: usize = 100_000;
/// The first retry waits about this long…
pub const DEFAULT_MIN_BACKOFF: Duration = Duration::from_millis(100);
/// …doubling up to this (also the cap on a receiver's `Retry-After`).
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where and how the sink sends.
///
/// Start from [`Config::new`] and set fields: more may come (hence `non_exhaustive`).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// The receiver's write endpoint, e.g. `http://prometheus:9090/api/v1/write`. `http://` or
    /// `https://`; for https the server certificate is checked against the system's roots and
    /// [`ca_file`](Self::ca_file).
    pub url: String,
    /// PEM certificates trusted for https in addition to the system's roots (a private CA).
    pub ca_file: Option<PathBuf>,
    /// The limit on one request, connecting included ([`DEFAULT_TIMEOUT`]).
    pub timeout: Duration,
    /// The most samples in one request ([`DEFAULT_MAX_SAMPLES_PER_REQUEST`]).
    pub max_samples_per_request: usize,
    /// The most samples queued, those being sent included ([`DEFAULT_CAPACITY`]).
    pub capacity: usize,
    /// The first retry's backoff ([`DEFAULT_MIN_BACKOFF`]).
    pub min_backoff: Duration,
    /// The longest backoff and the cap on `Retry-After` ([`DEFAULT_MAX_BACKOFF`]).
    pub max_backoff: Duration,
}

impl Config {
    /// The defaults, sending to `url`.
    pub fn new(url: impl Into<String>) -> Config {
        Config {
            url: url.into(),
            ca_file: None,
            timeout: DEFAULT_TIMEOUT,
            max_samples_per_request: DEFAULT_MAX_SAMPLES_PER_REQUEST,
            capacity: DEFAULT_CAPACITY,
            min_backoff: DEFAULT_MIN_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
        }
    }

    /// Checks every field, naming the one that is wrong, and returns the parsed URL.
    pub fn validate(&self) -> Result<Uri, ConfigError> {
        let invalid = |field: &'static str, reason: String| ConfigError::Invalid { field, reason };
        let uri: Uri = self
            .url
            .parse()
            .map_err(|e| invalid("url", format!("{:?} is not a URL: {e}", self.url)))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(invalid(
                    "url",
                    format!("{:?} must start with http:// or https://", self.url),
                ));
            }
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(invalid("url", format!("{:?} has no host", self.url)));
        }
        if self.ca_file.is_some() && uri.scheme_str() != Some("https") {
            return Err(invalid(
                "ca_file",
                format!("is set but {:?} is not an https URL", self.url),
            ));
        }
        if self.timeout.is_zero() {
            return Err(invalid("timeout", "must be more than zero".into()));
        }
        if self.max_samples_per_request == 0 {
            return Err(invalid(
                "max_samples_per_request",
                "must be at least 1".into(),
            ));
        }
        if self.capacity == 0 {
            return Err(invalid("capacity", "must be at least 1".into()));
        }
        if self.min_backoff.is_zero() {
            return Err(invalid("min_backoff", "must be more than zero".into()));
        }
        if self.max_backoff < self.min_backoff {
            return Err(invalid(
                "max_backoff",
                format!(
                    "{:?} is less than min_backoff ({:?})",
                    self.max_backoff, self.min_backoff
                ),
            ));
        }
        Ok(uri)
    }
}

/// A configuration the sink cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A field's value is wrong.
    #[error("remote_write.{field}: {reason}")]
    Invalid {
        /// The field, as named in [`Config`].
        field: &'static str,
        /// What is wrong and what would be right.
        reason: String,
    },
    /// The TLS trust roots could not be loaded.
    #[error("remote_write.{field}: {reason}")]
    Tls {
        /// `ca_file`, or `url` for the system's roots.
        field: &'static str,
        /// What failed.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(config: &Config) -> String {
        config.validate().expect_err("invalid").to_string()
    }

    #[test]
    fn the_defaults_are_valid() {
        let uri = Config::new("http://127.0.0.1:9090/api/v1/write")
            .validate()
            .expect("valid");
        assert_eq!(uri.path(), "/api/v1/write");
        Config::new("https://prometheus.example/api/v1/write")
            .validate()
            .expect("https is supported");
    }

    #[test]
    fn errors_name_the_field() {
        assert!(error(&Config::new("ftp://x/")).starts_with("remote_write.url: "));
        assert!(error(&Config::new("/api/v1/write")).contains("http:// or https://"));
        let mut config = Config::new("http://x/");
        config.capacity = 0;
        assert_eq!(error(&config), "remote_write.capacity: must be at least 1");
        let mut config = Config::new("http://x/");
        config.max_backoff = Duration::from_millis(1);
        assert!(error(&config).starts_with("remote_write.max_backoff: "));
        let mut config = Config::new("http://x/");
        config.ca_file = Some("/ca.pem".into());
        assert!(error(&config).starts_with("remote_write.ca_file: "));
    }
}
