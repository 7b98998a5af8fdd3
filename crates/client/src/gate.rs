//! A gate in front of a token bucket, where requests that must wait for a token are served by
//! [`Priority`], then in arrival order. A `Critical` request therefore never waits behind
//! `Normal` or `Background` ones: it waits only for the next token and for earlier `Critical`
//! requests.
//!
//! Only the head of the queue sleeps on a timer (until the bucket holds a token); the others sleep
//! until the head leaves and wakes the next, so a long queue costs one wake-up per token, not one
//! per waiter. Tokens are taken when they are there, never reserved ahead, which is what lets a
//! later, more urgent request go first.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::bucket::Bucket;
use crate::priority::Priority;

/// A token bucket with a priority queue of waiters.
#[derive(Debug)]
pub(crate) struct Gate {
    tokens: Bucket,
    /// A bucket whose debt holds every request back (the ceiling's response bytes).
    debt: Option<Arc<Bucket>>,
    queue: Mutex<Queue>,
}

/// A waiter's place: priority first, then arrival.
type Place = (Priority, u64);

#[derive(Debug, Default)]
struct Queue {
    waiting: BTreeMap<Place, Arc<Notify>>,
    arrivals: u64,
}

impl Queue {
    fn head(&self) -> Option<Place> {
        self.waiting.keys().next().copied()
    }

    /// Removes `place`; if it was the head, wakes the new head so it starts its own timer.
    fn leave(&mut self, place: Place) {
        let was_head = self.head() == Some(place);
        if self.waiting.remove(&place).is_some()
            && was_head
            && let Some(next) = self.waiting.values().next()
        {
            next.notify_one();
        }
    }
}

/// How a request got through [`Gate::enter`].
#[derive(Debug)]
pub(crate) enum Entry<'a> {
    /// A token was there and nobody more urgent was waiting for it: taken.
    Now,
    /// In the queue: [`Waiter::wait`] for its turn.
    Queued(Waiter<'a>),
}

/// A request in the queue. Dropping it (a caller that gave up) gives its place up.
#[derive(Debug)]
pub(crate) struct Waiter<'a> {
    gate: &'a Gate,
    place: Place,
    notify: Arc<Notify>,
    deadline: Option<Instant>,
    estimate: Duration,
}

/// A queued request's deadline passed before its turn came: more urgent requests went first.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Late;

impl Gate {
    /// A gate in front of `tokens`.
    pub(crate) fn new(tokens: Bucket) -> Self {
        Gate {
            tokens,
            debt: None,
            queue: Mutex::default(),
        }
    }

    /// The same gate, also holding every request back while `debt` is in debt.
    pub(crate) fn held_back_by(self, debt: Arc<Bucket>) -> Self {
        Gate {
            debt: Some(debt),
            ..self
        }
    }

    /// Lets a request of `priority` in now, queues it if its wait — behind every waiter of the
    /// same or a more urgent priority — is at most `max_wait` as things stand, or refuses it
    /// with that wait.
    pub(crate) fn enter(
        &self,
        priority: Priority,
        max_wait: Duration,
    ) -> Result<Entry<'_>, Duration> {
        let mut queue = self.queue();
        let place = (priority, queue.arrivals);
        queue.arrivals += 1;
        let ahead = queue.waiting.range(..place).count();
        #[allow(clippy::cast_precision_loss)] // a queue is far shorter than 2^52
        let estimate = self.wait_for(ahead as f64 + 1.0);
        if estimate > max_wait {
            return Err(estimate);
        }
        if estimate.is_zero() {
            self.tokens.take(1.0);
            return Ok(Entry::Now);
        }
        let notify = Arc::new(Notify::new());
        queue.waiting.insert(place, notify.clone());
        Ok(Entry::Queued(Waiter {
            gate: self,
            place,
            notify,
            deadline: Instant::now().checked_add(max_wait),
            estimate,
        }))
    }

    /// Lets a request of `priority` through, waiting as long as it takes.
    pub(crate) async fn pass(&self, priority: Priority) {
        // Without a deadline, `enter` cannot refuse (no wait exceeds `Duration::MAX`) and
        // `wait` cannot be late.
        if let Ok(Entry::Queued(waiter)) = self.enter(priority, Duration::MAX) {
            let _ = waiter.wait().await;
        }
    }

    /// How long until the bucket holds `tokens` and nothing holds requests back.
    fn wait_for(&self, tokens: f64) -> Duration {
        let debt = self
            .debt
            .as_ref()
            .map_or(Duration::ZERO, |d| d.wait_until(0.0));
        debt.max(self.tokens.wait_until(tokens))
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // Every update leaves the map consistent: a panic elsewhere cannot tear it.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Waiter<'_> {
    /// The wait foreseen when the request was queued.
    pub(crate) fn estimate(&self) -> Duration {
        self.estimate
    }

    /// Waits for this request's turn and takes its token, or gives up at the deadline.
    pub(crate) async fn wait(self) -> Result<(), Late> {
        loop {
            let turn = {
                let queue = self.gate.queue();
                if queue.head() == Some(self.place) {
                    let wait = self.gate.wait_for(1.0);
                    if wait.is_zero() {
                        self.gate.tokens.take(1.0);
                        // Dropping `self` leaves the queue and wakes the next head.
                        return Ok(());
                    }
                    Instant::now().checked_add(wait)
                } else {
                    // Not our turn: the head wakes us when it leaves.
                    None
                }
            };
            if self.deadline.is_some_and(|d| d <= Instant::now()) {
                return Err(Late);
            }
            let wake = match (turn, self.deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let notified = self.notify.notified();
            match wake {
                Some(at) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(at) => {}
                        () = notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        self.gate.queue().leave(self.place);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex as StdMutex;

    use super::*;

    /// A gate of one token a second, holding one, with its token taken.
    fn empty_gate() -> Arc<Gate> {
        let gate = Arc::new(Gate::new(Bucket::new(1.0, 1.0)));
        assert!(matches!(
            gate.enter(Priority::Background, Duration::ZERO),
            Ok(Entry::Now)
        ));
        gate
    }

    type Log = Arc<StdMutex<Vec<(&'static str, Duration)>>>;

    /// Spawns a request that passes `gate` at `priority` and logs `name` with when it passed.
    fn request(gate: &Arc<Gate>, log: &Log, name: &'static str, priority: Priority) {
        let (gate, log, start) = (gate.clone(), log.clone(), Instant::now());
        tokio::spawn(async move {
            gate.pass(priority).await;
            log.lock().expect("log").push((name, start.elapsed()));
        });
    }

    #[tokio::test(start_paused = true)]
    async fn a_critical_request_goes_before_normal_ones_already_waiting() {
        let gate = empty_gate();
        let log = Log::default();
        for name in ["normal-1", "normal-2", "normal-3"] {
            request(&gate, &log, name, Priority::Normal);
        }
        tokio::task::yield_now().await;
        request(&gate, &log, "critical", Priority::Critical);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let secs = Duration::from_secs;
        assert_eq!(
            *log.lock().expect("log"),
            [
                ("critical", secs(1)),
                ("normal-1", secs(2)),
                ("normal-2", secs(3)),
                ("normal-3", secs(4)),
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_is_refused_or_late_when_its_wait_exceeds_its_limit() {
        let gate = empty_gate();
        let limit = Duration::from_millis(3_500);
        let Ok(Entry::Queued(first)) = gate.enter(Priority::Normal, limit) else {
            panic!("the first normal request waits a second");
        };
        assert_eq!(first.estimate(), Duration::from_secs(1));
        let Ok(Entry::Queued(second)) = gate.enter(Priority::Normal, limit) else {
            panic!("the second normal request waits two seconds");
        };
        assert_eq!(
            gate.enter(Priority::Normal, Duration::from_millis(2_500))
                .err(),
            Some(Duration::from_secs(3)),
            "a third would wait three seconds: refused"
        );
        assert_eq!(
            gate.enter(Priority::Background, Duration::ZERO).err(),
            Some(Duration::from_secs(3)),
            "a background request queues behind both normal ones"
        );
        // Two critical requests arrive and go first: the first normal one passes at 3 s, the
        // second would at 4 s, past its limit.
        let critical = {
            let gate = gate.clone();
            tokio::spawn(async move {
                gate.pass(Priority::Critical).await;
                gate.pass(Priority::Critical).await;
            })
        };
        tokio::task::yield_now().await;
        let start = Instant::now();
        let (first, second) = tokio::join!(first.wait(), second.wait());
        assert_eq!((first, second), (Ok(()), Err(Late)));
        assert_eq!(
            start.elapsed(),
            limit,
            "the late one gave up at its deadline"
        );
        critical.await.expect("critical requests pass");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_gives_up_passes_its_turn_on() {
        let gate = empty_gate();
        let log = Log::default();
        let head = gate.enter(Priority::Normal, Duration::MAX).expect("queued");
        request(&gate, &log, "next", Priority::Normal);
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(head);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            *log.lock().expect("log"),
            [("next", Duration::from_secs(1))]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn debt_holds_everyone_back() {
        let debt = Arc::new(Bucket::new(1.0, 1.0));
        let gate = Gate::new(Bucket::new(100.0, 100.0)).held_back_by(debt.clone());
        debt.take(4.0);
        assert_eq!(
            gate.enter(Priority::Background, Duration::ZERO).err(),
            Some(Duration::from_secs(3))
        );
        let start = Instant::now();
        gate.pass(Priority::Critical).await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }
}
