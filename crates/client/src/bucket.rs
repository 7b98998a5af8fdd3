//! Token-bucket arithmetic shared by the token-bucket layer and the hard ceiling: tokens refill
//! at `rate` per second up to `capacity`; taking more than there is reserves future tokens, so
//! waiters are served in order without polling.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct Bucket {
    rate: f64,
    capacity: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    /// A full bucket.
    pub(crate) fn new(rate: f64, capacity: f64) -> Self {
        Bucket {
            rate,
            capacity,
            state: Mutex::new(State {
                tokens: capacity,
                updated: Instant::now(),
            }),
        }
    }

    /// Takes `cost` tokens if the wait for them is at most `max_wait`, and returns that wait;
    /// otherwise takes nothing and returns `Err` with the wait it would have been.
    pub(crate) fn reserve(&self, cost: f64, max_wait: Duration) -> Result<Duration, Duration> {
        let mut state = self.refilled();
        let wait = self.wait_for(state.tokens - cost);
        if wait > max_wait {
            return Err(wait);
        }
        state.tokens -= cost;
        Ok(wait)
    }

    /// How long until the bucket is no longer in debt (see [`Bucket::charge`]).
    pub(crate) fn debt_wait(&self) -> Duration {
        let state = self.refilled();
        self.wait_for(state.tokens)
    }

    /// Takes `cost` tokens after the fact, going into debt if needed (for response bytes, which
    /// are only known once they arrive).
    pub(crate) fn charge(&self, cost: f64) {
        self.refilled().tokens -= cost;
    }

    fn wait_for(&self, tokens_after: f64) -> Duration {
        if tokens_after >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-tokens_after / self.rate)
        }
    }

    fn refilled(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update is a pair of plain assignments: a panic elsewhere cannot leave it torn.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let elapsed = now.duration_since(state.updated).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.rate).min(self.capacity);
        state.updated = now;
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn burst_then_rate() {
        let bucket = Bucket::new(5.0, 10.0);
        for _ in 0..10 {
            assert_eq!(bucket.reserve(1.0, Duration::ZERO), Ok(Duration::ZERO));
        }
        assert!(bucket.reserve(1.0, Duration::ZERO).is_err());
        assert_eq!(
            bucket.reserve(1.0, Duration::from_secs(1)),
            Ok(Duration::from_millis(200))
        );
        assert_eq!(
            bucket.reserve(1.0, Duration::from_secs(1)),
            Ok(Duration::from_millis(400))
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(bucket.reserve(1.0, Duration::ZERO), Ok(Duration::ZERO));
        bucket.charge(100.0);
        assert!(bucket.debt_wait() > Duration::from_secs(17));
    }
}
