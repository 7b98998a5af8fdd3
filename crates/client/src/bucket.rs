//! Token-bucket arithmetic shared by the token-bucket layer and the hard ceiling: tokens refill at
//! `rate` per second up to `capacity`. Requests take whole tokens only when they are there (a
//! gate, `gate.rs`, queues the waiters); response bytes, known only once they arrive, are charged
//! after the fact and may put the bucket in debt.

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

    /// How long until the bucket holds `tokens` (zero if it does now).
    pub(crate) fn wait_until(&self, tokens: f64) -> Duration {
        let state = self.refilled();
        self.wait_for(state.tokens - tokens)
    }

    /// Takes `cost` tokens, going into debt if there are fewer: a request takes only the token
    /// its gate saw there, but response bytes are only known once they arrive.
    pub(crate) fn take(&self, cost: f64) {
        self.refilled().tokens -= cost;
    }

    fn wait_for(&self, tokens_after: f64) -> Duration {
        // Within a nanosecond of the goal is there: float rounding must not cost another sleep.
        if tokens_after >= -1e-9 {
            Duration::ZERO
        } else {
            // Settings bound the rates (see `Settings::validated`), but the byte debt has no
            // bound: an absurd one waits "forever" rather than overflowing.
            Duration::try_from_secs_f64(-tokens_after / self.rate).unwrap_or(Duration::MAX)
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
        assert_eq!(bucket.wait_until(10.0), Duration::ZERO);
        bucket.take(10.0);
        assert_eq!(bucket.wait_until(1.0), Duration::from_millis(200));
        assert_eq!(bucket.wait_until(2.0), Duration::from_millis(400));
        tokio::time::advance(Duration::from_millis(200)).await;
        assert_eq!(bucket.wait_until(1.0), Duration::ZERO);
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            bucket.wait_until(10.0),
            Duration::ZERO,
            "refilled to capacity"
        );
        assert_eq!(
            bucket.wait_until(11.0),
            Duration::from_millis(200),
            "never past it"
        );
        bucket.take(100.0);
        assert!(bucket.wait_until(0.0) > Duration::from_secs(17), "in debt");
    }

    #[test]
    fn an_absurd_debt_waits_forever_instead_of_overflowing() {
        let bucket = Bucket::new(1e-300, 1.0);
        bucket.take(1e300);
        assert_eq!(bucket.wait_until(0.0), Duration::MAX);
    }
}
