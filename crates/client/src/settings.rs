//! The client's settings: who it is (component, version) and its budget. Every limit has a safe
//! default; none can be switched off, and the hard ceiling can only be lowered.

use std::time::Duration;

use crate::backoff::BackoffSettings;
use crate::ceiling::{HARD_REQUESTS_PER_MINUTE, HARD_RESPONSE_BYTES_PER_MINUTE};
use crate::error::{Error, Result};

/// Bounds of the adaptive concurrency limit for non-watch requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Concurrency {
    /// Where the limit starts.
    pub initial: u32,
    /// The limit never drops below this (at least 1).
    pub min: u32,
    /// The limit never grows past this (at most [`Concurrency::HARD_MAX`]).
    pub max: u32,
}

impl Concurrency {
    /// No setting raises the concurrency limit past this.
    pub const HARD_MAX: u32 = 64;
}

impl Default for Concurrency {
    fn default() -> Self {
        Concurrency {
            initial: 4,
            min: 1,
            max: 16,
        }
    }
}

/// Who the client is and what it may spend.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The component name in `User-Agent: fleetwatch-<component>/<version>` (e.g. `collector`).
    pub component: String,
    /// The version in the User-Agent; defaults to this crate's version.
    pub version: String,
    /// Token bucket refill rate for requests, per second (client-go's default: 5).
    pub qps: f64,
    /// Token bucket size (client-go's default: 10).
    pub burst: u32,
    /// The adaptive concurrency limit's bounds.
    pub concurrency: Concurrency,
    /// Requests per minute this process may send; clamped to
    /// [`HARD_REQUESTS_PER_MINUTE`](crate::ceiling::HARD_REQUESTS_PER_MINUTE).
    pub requests_per_minute: u32,
    /// Response bytes per minute this process may receive; clamped to
    /// [`HARD_RESPONSE_BYTES_PER_MINUTE`](crate::ceiling::HARD_RESPONSE_BYTES_PER_MINUTE).
    pub response_bytes_per_minute: u64,
    /// How long a [`Priority::Normal`](crate::Priority::Normal) request may wait at the ceiling
    /// before it is shed.
    pub ceiling_wait: Duration,
    /// Retry and informer backoff (client-go's reflector values by default).
    pub backoff: BackoffSettings,
    /// Each informer waits a random time in `[0, start_jitter]` before its first list, so a fleet
    /// of processes does not list in lock-step. At most 60 s.
    pub start_jitter: Duration,
    /// Each watch asks the server to end it after a random time in `[watch_timeout,
    /// 2 × watch_timeout)` (client-go's 5–10 minutes by default) and then resumes from its last
    /// resourceVersion, so a fleet's watches do not all reconnect together. Between 60 s and 1 h:
    /// the bound covers the initial streaming list too, which must have time to finish.
    pub watch_timeout: Duration,
}

impl Settings {
    /// Defaults for `component`: client-go's 5 QPS / burst 10, the hard ceiling, client-go's
    /// reflector backoff.
    pub fn new(component: impl Into<String>) -> Self {
        Settings {
            component: component.into(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            qps: 5.0,
            burst: 10,
            concurrency: Concurrency::default(),
            requests_per_minute: HARD_REQUESTS_PER_MINUTE,
            response_bytes_per_minute: HARD_RESPONSE_BYTES_PER_MINUTE,
            ceiling_wait: Duration::from_secs(10),
            backoff: BackoffSettings::default(),
            start_jitter: Duration::from_secs(2),
            watch_timeout: Duration::from_secs(300),
        }
    }

    /// The settings as the client applies them: the ceiling and the concurrency limit clamped to
    /// their hard maxima. Errors for settings that would disable a limit (zero or non-finite
    /// rates, an empty bucket, a component name that is not a plain token).
    pub(crate) fn validated(&self) -> Result<Settings> {
        let invalid = |what: &str| Err(Error::Settings(what.to_owned()));
        let plain = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        };
        if !plain(&self.component) || !plain(&self.version) {
            return invalid("component and version must be non-empty [A-Za-z0-9._-] tokens");
        }
        if !(self.qps.is_finite() && self.qps > 0.0) {
            return invalid("qps must be a positive number (the token bucket cannot be disabled)");
        }
        if self.burst == 0 {
            return invalid("burst must be at least 1");
        }
        if self.requests_per_minute == 0 || self.response_bytes_per_minute == 0 {
            return invalid("the ceiling must allow at least one request and one byte per minute");
        }
        if self.backoff.initial.is_zero() || self.backoff.max < self.backoff.initial {
            return invalid("backoff needs 0 < initial <= max");
        }
        let mut applied = self.clone();
        let c = &mut applied.concurrency;
        c.max = c.max.clamp(1, Concurrency::HARD_MAX);
        c.min = c.min.clamp(1, c.max);
        c.initial = c.initial.clamp(c.min, c.max);
        applied.requests_per_minute = self.requests_per_minute.min(HARD_REQUESTS_PER_MINUTE);
        applied.response_bytes_per_minute = self
            .response_bytes_per_minute
            .min(HARD_RESPONSE_BYTES_PER_MINUTE);
        applied.start_jitter = self.start_jitter.min(Duration::from_secs(60));
        applied.watch_timeout = self
            .watch_timeout
            .clamp(Duration::from_secs(60), Duration::from_secs(3600));
        Ok(applied)
    }

    /// `fleetwatch-<component>/<version>`.
    pub fn user_agent(&self) -> String {
        format!("fleetwatch-{}/{}", self.component, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_setting_lifts_the_hard_ceiling() {
        let mut s = Settings::new("test");
        s.requests_per_minute = u32::MAX;
        s.response_bytes_per_minute = u64::MAX;
        s.concurrency.max = 10_000;
        let applied = s.validated().expect("valid");
        assert_eq!(applied.requests_per_minute, HARD_REQUESTS_PER_MINUTE);
        assert_eq!(
            applied.response_bytes_per_minute,
            HARD_RESPONSE_BYTES_PER_MINUTE
        );
        assert_eq!(applied.concurrency.max, Concurrency::HARD_MAX);
    }

    #[test]
    fn limits_cannot_be_disabled() {
        for tweak in [
            |s: &mut Settings| s.qps = 0.0,
            |s: &mut Settings| s.qps = f64::INFINITY,
            |s: &mut Settings| s.burst = 0,
            |s: &mut Settings| s.requests_per_minute = 0,
            |s: &mut Settings| s.component = "a b".into(),
        ] {
            let mut s = Settings::new("test");
            tweak(&mut s);
            assert!(s.validated().is_err(), "{s:?}");
        }
    }
}
