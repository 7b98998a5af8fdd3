//! The client's settings: who it is (component, version) and its budget. Every limit has a safe
//! default; none can be switched off, and the hard ceiling can only be lowered. Values that would
//! disable a limit, stall it for ever or overflow a `Duration` are errors naming the field and
//! the form expected.

use std::time::Duration;

use crate::backoff::BackoffSettings;
use crate::ceiling::{HARD_REQUESTS_PER_MINUTE, HARD_RESPONSE_BYTES_PER_MINUTE, Limits};
use crate::error::{Error, Result};

/// The lowest token-bucket rate: one request every 100 s. Lower rates are not a budget but a
/// stall (a request would wait for days), and tiny ones overflow the wait's `Duration`.
pub const MIN_QPS: f64 = 0.01;
/// The longest a `Normal` request may wait at the ceiling: one that may wait longer is
/// `Critical`.
pub const MAX_CEILING_WAIT: Duration = Duration::from_secs(60);
/// Backoff bounds: a first delay under 10 ms is a hot loop, a longest one over 10 minutes is
/// an outage of the client's own making (a server's `Retry-After` is capped at 5 minutes).
pub const MIN_BACKOFF: Duration = Duration::from_millis(10);
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);

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
    /// [`HARD_REQUESTS_PER_MINUTE`](crate::ceiling::HARD_REQUESTS_PER_MINUTE). The ceiling is
    /// the process's: the first client sets it, and every later client must ask for the same
    /// (see [`Budget`](crate::Budget)).
    pub requests_per_minute: u32,
    /// Response bytes per minute this process may receive; clamped to
    /// [`HARD_RESPONSE_BYTES_PER_MINUTE`](crate::ceiling::HARD_RESPONSE_BYTES_PER_MINUTE). Per
    /// process, like `requests_per_minute`.
    pub response_bytes_per_minute: u64,
    /// How long a [`Priority::Normal`](crate::Priority::Normal) request of this client may wait
    /// at the ceiling before it is shed; at most [`MAX_CEILING_WAIT`].
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
    /// their hard maxima, the start jitter and watch timeout to their ranges. Errors for settings
    /// that would disable, stall or overflow a limit, and for a component name that is not a
    /// plain token.
    pub(crate) fn validated(&self) -> Result<Settings> {
        let plain = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        };
        let backoff = &self.backoff;
        let checks = [
            (
                plain(&self.component) && plain(&self.version),
                "component and version: non-empty [A-Za-z0-9._-] tokens".to_owned(),
            ),
            (
                self.qps.is_finite() && self.qps >= MIN_QPS,
                format!(
                    "qps = {:?}: requests per second, a finite number of at least {MIN_QPS} \
                     (the token bucket cannot be disabled)",
                    self.qps
                ),
            ),
            (self.burst >= 1, "burst = 0: at least 1".to_owned()),
            (
                self.requests_per_minute >= 1 && self.response_bytes_per_minute >= 1,
                "requests_per_minute, response_bytes_per_minute: at least 1 (the ceiling \
                 cannot be closed)"
                    .to_owned(),
            ),
            (
                self.ceiling_wait <= MAX_CEILING_WAIT,
                format!(
                    "ceiling_wait = {:?}: at most {MAX_CEILING_WAIT:?} (a request that may \
                     wait longer is Critical)",
                    self.ceiling_wait
                ),
            ),
            (
                MIN_BACKOFF <= backoff.initial
                    && backoff.initial <= backoff.max
                    && backoff.max <= MAX_BACKOFF,
                format!(
                    "backoff.initial = {:?}, backoff.max = {:?}: \
                     {MIN_BACKOFF:?} <= initial <= max <= {MAX_BACKOFF:?}",
                    backoff.initial, backoff.max
                ),
            ),
            (
                backoff.factor.is_finite() && backoff.factor >= 1.0,
                format!(
                    "backoff.factor = {:?}: a finite number of at least 1",
                    backoff.factor
                ),
            ),
        ];
        if let Some((_, expected)) = checks.into_iter().find(|(ok, _)| !ok) {
            return Err(Error::Settings(expected));
        }
        Ok(self.clamped())
    }

    fn clamped(&self) -> Settings {
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
        applied
    }

    /// The process ceiling these settings ask for; call it on [`Settings::validated`] ones, so
    /// that asking for more than the hard maxima compares as asking for them.
    pub(crate) fn limits(&self) -> Limits {
        Limits {
            requests_per_minute: self.requests_per_minute,
            response_bytes_per_minute: self.response_bytes_per_minute,
        }
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
            |s: &mut Settings| s.qps = f64::NAN,
            |s: &mut Settings| s.burst = 0,
            |s: &mut Settings| s.requests_per_minute = 0,
            |s: &mut Settings| s.response_bytes_per_minute = 0,
            |s: &mut Settings| s.component = "a b".into(),
        ] {
            let mut s = Settings::new("test");
            tweak(&mut s);
            assert!(s.validated().is_err(), "{s:?}");
        }
    }

    /// Each value that would stall a limit or overflow a `Duration`, with the field its error
    /// must name and the bound it must state.
    #[test]
    fn values_that_stall_or_overflow_are_errors_naming_the_field_and_the_form() {
        type Case = (fn(&mut Settings), &'static str, &'static str);
        let cases: [Case; 7] = [
            (|s| s.qps = 1e-300, "qps = 1e-300", "at least 0.01"),
            (|s| s.qps = -5.0, "qps = -5.0", "at least 0.01"),
            (
                |s| s.ceiling_wait = Duration::MAX,
                "ceiling_wait",
                "at most 60s",
            ),
            (|s| s.backoff.max = Duration::MAX, "backoff.max", "<= 600s"),
            (
                |s| s.backoff.initial = Duration::from_nanos(1),
                "backoff.initial = 1ns",
                "10ms <= initial",
            ),
            (
                |s| s.backoff.factor = f64::NAN,
                "backoff.factor = NaN",
                "at least 1",
            ),
            (
                |s| s.backoff.factor = 0.5,
                "backoff.factor = 0.5",
                "at least 1",
            ),
        ];
        for (tweak, field, form) in cases {
            let mut s = Settings::new("test");
            tweak(&mut s);
            let error = s.validated().expect_err(field).to_string();
            assert!(
                error.contains(field) && error.contains(form),
                "{error:?} should name {field:?} and say {form:?}"
            );
        }
        let mut s = Settings::new("test");
        s.qps = MIN_QPS;
        s.ceiling_wait = MAX_CEILING_WAIT;
        s.backoff.initial = MIN_BACKOFF;
        s.backoff.max = MAX_BACKOFF;
        assert!(s.validated().is_ok(), "the bounds themselves are valid");
    }
}
