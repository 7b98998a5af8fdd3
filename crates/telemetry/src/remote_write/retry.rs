//! What to do after a response: the retry policy and the backoff, pure (the randomness is a
//! generator passed in).

use std::time::Duration;

use http::StatusCode;
use rand::Rng;

/// What a response (or its absence) means for the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// 2xx: delivered.
    Sent,
    /// Refused for good (any 4xx but 429, and 1xx/3xx): retrying would be refused again.
    Rejected,
    /// Worth retrying (5xx, 429).
    Retry,
}

/// The verdict on a response status, following Prometheus's own remote-write client: 5xx and
/// 429 are recoverable, every other non-2xx is not.
pub(crate) fn verdict(status: StatusCode) -> Verdict {
    if status.is_success() {
        Verdict::Sent
    } else if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        Verdict::Retry
    } else {
        Verdict::Rejected
    }
}

/// A `Retry-After` header's delay, if it is a number of seconds (the HTTP-date form is not
/// honoured; the backoff applies instead), capped at `cap`.
pub(crate) fn retry_after(header: Option<&str>, cap: Duration) -> Option<Duration> {
    let seconds: u64 = header?.trim().parse().ok()?;
    Some(Duration::from_secs(seconds).min(cap))
}

/// Exponential backoff with jitter: the n-th consecutive failure waits a random time between
/// half and all of `min × 2ⁿ`, capped at `max`.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    /// A backoff from `min` to `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            failures: 0,
        }
    }

    /// The wait after one more failure.
    pub fn next(&mut self, rng: &mut impl Rng) -> Duration {
        let ceiling = self
            .min
            .saturating_mul(2u32.saturating_pow(self.failures))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let floor = ceiling / 2;
        let jitter = ceiling - floor;
        floor + jitter.mul_f64(rng.random::<f64>())
    }

    /// After a success: the next failure waits about `min` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn only_5xx_and_429_are_retried() {
        assert_eq!(verdict(StatusCode::OK), Verdict::Sent);
        assert_eq!(verdict(StatusCode::NO_CONTENT), Verdict::Sent);
        assert_eq!(verdict(StatusCode::INTERNAL_SERVER_ERROR), Verdict::Retry);
        assert_eq!(verdict(StatusCode::SERVICE_UNAVAILABLE), Verdict::Retry);
        assert_eq!(verdict(StatusCode::TOO_MANY_REQUESTS), Verdict::Retry);
        assert_eq!(verdict(StatusCode::BAD_REQUEST), Verdict::Rejected);
        assert_eq!(verdict(StatusCode::NOT_FOUND), Verdict::Rejected);
        assert_eq!(verdict(StatusCode::PAYLOAD_TOO_LARGE), Verdict::Rejected);
        assert_eq!(verdict(StatusCode::MOVED_PERMANENTLY), Verdict::Rejected);
    }

    #[test]
    fn retry_after_is_seconds_capped() {
        let cap = Duration::from_secs(30);
        assert_eq!(retry_after(Some("2"), cap), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(Some(" 3600 "), cap), Some(cap));
        assert_eq!(
            retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT"), cap),
            None
        );
        assert_eq!(retry_after(None, cap), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_resets() {
        let mut rng = StdRng::seed_from_u64(7);
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(30));
        let mut backoff = Backoff::new(min, max);
        for n in 0..20 {
            let ceiling = (min * 2u32.pow(n.min(15))).min(max);
            let wait = backoff.next(&mut rng);
            assert!(
                wait >= ceiling / 2 && wait <= ceiling,
                "failure {n}: {wait:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next(&mut rng) <= min);
    }
}
