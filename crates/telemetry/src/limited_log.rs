//! Rate-limited warnings: one `tracing::warn!` per source per interval, saying how many were
//! suppressed in between.
//!
//! A source that fails every scrape (a page with a bad line, an unreachable kubelet) is one
//! counted, rate-limited error, never a log line per scrape per line. The counting is in
//! [`LimitedLog::admit`], which takes the time as an argument so it is tested without a clock;
//! [`LimitedLog::warn`] is it with [`Instant::now`] and the log line.
//!
//! Memory is bounded: at most [`MAX_SOURCES`] sources are tracked; past that, sources idle for
//! an interval are forgotten, and if none is, new sources share one more entry
//! ([`OVERFLOW_SOURCE`]).

use std::collections::HashMap;
use std::fmt::Display;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// At most this many sources are tracked at once, plus [`OVERFLOW_SOURCE`].
pub const MAX_SOURCES: usize = 1024;

/// The source under which warnings are counted once [`MAX_SOURCES`] are tracked.
pub const OVERFLOW_SOURCE: &str = "(other sources)";

/// Emits warnings at most once per interval per source. Share it (`Arc`) between the tasks
/// that report for the same sources.
#[derive(Debug)]
pub struct LimitedLog {
    interval: Duration,
    sources: Mutex<HashMap<String, Window>>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    /// When the last warning was emitted.
    emitted: Instant,
    /// Warnings suppressed since.
    suppressed: u64,
}

impl LimitedLog {
    /// A log that emits at most one warning per `interval` per source (a zero interval emits
    /// every warning).
    pub fn new(interval: Duration) -> LimitedLog {
        LimitedLog {
            interval,
            sources: Mutex::new(HashMap::new()),
        }
    }

    /// Emits `message` as a `tracing::warn!` for `source`, unless one was emitted for it less
    /// than an interval ago; then it only counts, and the next warning emitted says how many
    /// were suppressed. Returns whether it was emitted.
    pub fn warn(&self, source: &str, message: impl Display) -> bool {
        match self.admit(Instant::now(), source) {
            Some(0) => {
                tracing::warn!(source, "{message}");
                true
            }
            Some(suppressed) => {
                tracing::warn!(
                    source,
                    suppressed,
                    "{message} ({suppressed} more from this source since the last such warning)"
                );
                true
            }
            None => false,
        }
    }

    /// Counts a warning for `source` at `now`: `Some(suppressed)` if it is to be emitted, with
    /// how many were suppressed since the last one emitted; `None` if it is to be suppressed.
    pub fn admit(&self, now: Instant, source: &str) -> Option<u64> {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        let sources = &mut *sources;
        if !sources.contains_key(source) && sources.len() >= MAX_SOURCES {
            let interval = self.interval;
            sources.retain(|_, window| now.saturating_duration_since(window.emitted) < interval);
        }
        let key = if sources.contains_key(source) || sources.len() < MAX_SOURCES {
            source
        } else {
            OVERFLOW_SOURCE
        };
        match sources.get_mut(key) {
            Some(window) => {
                if now.saturating_duration_since(window.emitted) >= self.interval {
                    let suppressed = window.suppressed;
                    *window = Window {
                        emitted: now,
                        suppressed: 0,
                    };
                    Some(suppressed)
                } else {
                    window.suppressed += 1;
                    None
                }
            }
            None => {
                sources.insert(
                    key.to_owned(),
                    Window {
                        emitted: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn first_warning_is_emitted_then_suppressed_within_the_interval() {
        let log = LimitedLog::new(MINUTE);
        let t0 = Instant::now();
        assert_eq!(log.admit(t0, "apiserver-1"), Some(0));
        assert_eq!(log.admit(t0 + Duration::from_secs(1), "apiserver-1"), None);
        assert_eq!(log.admit(t0 + Duration::from_secs(59), "apiserver-1"), None);
    }

    #[test]
    fn after_the_interval_the_next_warning_says_how_many_were_suppressed() {
        let log = LimitedLog::new(MINUTE);
        let t0 = Instant::now();
        assert_eq!(log.admit(t0, "kubelet"), Some(0));
        for second in 1..=3 {
            assert_eq!(log.admit(t0 + Duration::from_secs(second), "kubelet"), None);
        }
        assert_eq!(log.admit(t0 + MINUTE, "kubelet"), Some(3));
        // The count starts again, and so does the interval, from the warning emitted.
        assert_eq!(
            log.admit(t0 + MINUTE + Duration::from_secs(1), "kubelet"),
            None
        );
        assert_eq!(log.admit(t0 + MINUTE * 2, "kubelet"), Some(1));
        assert_eq!(log.admit(t0 + MINUTE * 4, "kubelet"), Some(0));
    }

    #[test]
    fn sources_are_limited_independently() {
        let log = LimitedLog::new(MINUTE);
        let t0 = Instant::now();
        assert_eq!(log.admit(t0, "a"), Some(0));
        assert_eq!(log.admit(t0, "b"), Some(0));
        assert_eq!(log.admit(t0, "a"), None);
        assert_eq!(log.admit(t0 + MINUTE, "b"), Some(0));
        assert_eq!(log.admit(t0 + MINUTE, "a"), Some(1));
    }

    #[test]
    fn a_zero_interval_emits_everything() {
        let log = LimitedLog::new(Duration::ZERO);
        let t0 = Instant::now();
        assert_eq!(log.admit(t0, "a"), Some(0));
        assert_eq!(log.admit(t0, "a"), Some(0));
    }

    #[test]
    fn sources_beyond_the_limit_share_one_entry_until_old_ones_expire() {
        let log = LimitedLog::new(MINUTE);
        let t0 = Instant::now();
        for i in 0..MAX_SOURCES {
            assert_eq!(log.admit(t0, &format!("source-{i}")), Some(0));
        }
        // Full, none idle: new sources are counted together.
        assert_eq!(log.admit(t0, "new-1"), Some(0));
        assert_eq!(log.admit(t0, "new-2"), None);
        assert!(!log.sources.lock().expect("lock").contains_key("new-1"));
        // An interval later the old entries are forgotten, and a new source has its own.
        assert_eq!(log.admit(t0 + MINUTE, "new-3"), Some(0));
        let sources = log.sources.lock().expect("lock");
        assert!(sources.contains_key("new-3"));
        assert_eq!(sources.len(), 1);
    }

    #[test]
    fn warn_reports_whether_it_emitted() {
        let log = LimitedLog::new(MINUTE);
        assert!(log.warn("a", "first"));
        assert!(!log.warn("a", "second"));
    }
}
