//! Jittered exponential backoff with client-go's reflector values (800 ms → 30 s, ×2, reset after
//! two quiet minutes). One policy, used by the retry layer and by every informer.

use std::time::Duration;

use tokio::time::Instant;
use tower::util::rng::{HasherRng, Rng};

/// Backoff parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffSettings {
    /// The first delay's upper bound.
    pub initial: Duration,
    /// No delay is longer than this.
    pub max: Duration,
    /// Growth per consecutive failure.
    pub factor: f64,
    /// After this long without a failure the next delay starts from `initial` again.
    pub reset_after: Duration,
}

impl Default for BackoffSettings {
    /// client-go's reflector backoff.
    fn default() -> Self {
        BackoffSettings {
            initial: Duration::from_millis(800),
            max: Duration::from_secs(30),
            factor: 2.0,
            reset_after: Duration::from_secs(120),
        }
    }
}

/// Backoff state: consecutive failures and when the last one was.
#[derive(Debug)]
pub struct Backoff {
    settings: BackoffSettings,
    failures: u32,
    last_failure: Option<Instant>,
    rng: HasherRng,
}

impl Backoff {
    pub fn new(settings: BackoffSettings) -> Self {
        Backoff {
            settings,
            failures: 0,
            last_failure: None,
            rng: HasherRng::new(),
        }
    }

    /// Records a failure and returns how long to wait before trying again: "full jitter",
    /// uniform in `(0, min(max, initial × factor^n)]`, with a floor of an eighth of `initial`
    /// so that an unlucky draw never turns into a hot loop.
    pub fn next_delay(&mut self) -> Duration {
        let now = Instant::now();
        if self
            .last_failure
            .is_some_and(|last| now.duration_since(last) >= self.settings.reset_after)
        {
            self.failures = 0;
        }
        self.last_failure = Some(now);
        let exponent = i32::try_from(self.failures).unwrap_or(i32::MAX);
        self.failures = self.failures.saturating_add(1).min(64);
        let cap = (self.settings.initial.as_secs_f64() * self.settings.factor.powi(exponent))
            .min(self.settings.max.as_secs_f64());
        let floor = self.settings.initial.as_secs_f64() / 8.0;
        Duration::from_secs_f64((cap * self.rng.next_f64()).max(floor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn grows_to_the_cap_and_resets_after_quiet_time() {
        let settings = BackoffSettings::default();
        let mut backoff = Backoff::new(settings);
        let delays: Vec<Duration> = (0..12).map(|_| backoff.next_delay()).collect();
        for (n, d) in delays.iter().enumerate() {
            let cap = (0.8 * 2f64.powi(i32::try_from(n).expect("small"))).min(30.0);
            assert!(
                d.as_secs_f64() <= cap + 1e-9,
                "delay {n} = {d:?} over {cap}"
            );
            assert!(*d >= Duration::from_millis(100));
        }
        tokio::time::advance(Duration::from_secs(121)).await;
        assert!(backoff.next_delay() <= Duration::from_millis(800));
    }
}
