//! The bounded sample queue: the sink's pure core (no clock, no I/O).
//!
//! Every sample pushed gets a sequence number; the queue holds a contiguous range of them,
//! oldest first. The sender takes a *copy* of the front as a request ([`Queue::begin`]) and
//! reports how the request ended ([`Queue::end`]); only then do the samples leave the queue.
//! So a failed request is simply sent again from whatever is at the front then.
//!
//! When a push takes the queue past its capacity, the oldest samples are dropped at once, even
//! those in the request under way. Those are counted as dropped only if that request then
//! fails: a request that succeeds delivered them, and they count as sent. So, at every moment,
//! `pushed = sent + rejected + dropped + queued + dropped_pending`, where the last term is what
//! overflowed out of the request under way.

use std::collections::VecDeque;
use std::ops::Range;

use super::proto::TimeSeries;

/// The bounded queue.
#[derive(Debug)]
pub(crate) struct Queue {
    series: VecDeque<TimeSeries>,
    /// Samples in `series`.
    samples: usize,
    capacity: usize,
    /// The sequence number of the oldest queued sample.
    front: u64,
    /// The sequence numbers of the request under way.
    in_flight: Option<Range<u64>>,
    /// Samples of the request under way that overflowed out of the queue meanwhile.
    dropped_pending: u64,
}

/// What a push or the end of a request changed, for the counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counted {
    pub sent: u64,
    pub rejected: u64,
    pub dropped: u64,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// The receiver took it (2xx).
    Sent,
    /// The receiver refused it for good (4xx other than 429).
    Rejected,
    /// It may be tried again (5xx, 429, connection error, timeout).
    Failed,
}

impl Queue {
    /// An empty queue holding at most `capacity` samples (at least one).
    pub fn new(capacity: usize) -> Queue {
        Queue {
            series: VecDeque::new(),
            samples: 0,
            capacity: capacity.max(1),
            front: 0,
            in_flight: None,
            dropped_pending: 0,
        }
    }

    /// Samples queued, the request under way included.
    pub fn len(&self) -> usize {
        self.samples
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.samples == 0
    }

    /// Whether a request is under way.
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Appends `batch` (series without samples are ignored), then drops the oldest samples past
    /// the capacity. Returns what was dropped outright.
    pub fn push(&mut self, batch: Vec<TimeSeries>) -> Counted {
        for mut series in batch {
            if series.samples.is_empty() {
                continue;
            }
            series.sort_labels();
            self.samples += series.samples.len();
            self.series.push_back(series);
        }
        let over = self.samples.saturating_sub(self.capacity);
        let mut counted = Counted::default();
        if over > 0 {
            let removed = self.remove_front(over);
            // What overflowed out of the request under way is settled when the request ends.
            let pending = self.in_flight.as_ref().map_or(0, |r| overlap(r, &removed));
            self.dropped_pending += pending;
            counted.dropped = len(&removed) - pending;
        }
        counted
    }

    /// Starts a request: a copy of up to `max_samples` of the oldest samples (a series split if
    /// need be), or `None` if the queue is empty.
    ///
    /// The queue must have no request under way ([`end`](Self::end) the last one first).
    pub fn begin(&mut self, max_samples: usize) -> Option<Vec<TimeSeries>> {
        debug_assert!(self.in_flight.is_none(), "a request is already under way");
        if self.samples == 0 {
            return None;
        }
        let mut room = max_samples.max(1);
        let mut request = Vec::new();
        for series in &self.series {
            if room == 0 {
                break;
            }
            let take = series.samples.len().min(room);
            request.push(TimeSeries {
                labels: series.labels.clone(),
                samples: series.samples[..take].to_vec(),
            });
            room -= take;
        }
        let taken = (max_samples.max(1) - room) as u64;
        self.in_flight = Some(self.front..self.front + taken);
        Some(request)
    }

    /// Ends the request under way (no-op if none).
    pub fn end(&mut self, ending: Ending) -> Counted {
        let Some(range) = self.in_flight.take() else {
            return Counted::default();
        };
        let pending = std::mem::take(&mut self.dropped_pending);
        let mut counted = Counted::default();
        match ending {
            Ending::Failed => counted.dropped = pending,
            Ending::Sent | Ending::Rejected => {
                // Its samples still queued leave now; those that overflowed already left.
                let still_queued = range.end.saturating_sub(self.front);
                self.remove_front(usize::try_from(still_queued).unwrap_or(usize::MAX));
                let all = range.end - range.start;
                if ending == Ending::Sent {
                    counted.sent = all;
                } else {
                    counted.rejected = all;
                }
            }
        }
        counted
    }

    /// Empties the queue, ending any request under way as failed: everything left is dropped.
    pub fn drop_all(&mut self) -> Counted {
        let mut counted = self.end(Ending::Failed);
        let all = self.samples;
        counted.dropped += len(&self.remove_front(all));
        counted
    }

    /// Removes the `n` oldest samples (or all); returns their sequence numbers.
    fn remove_front(&mut self, n: usize) -> Range<u64> {
        let start = self.front;
        let mut left = n.min(self.samples);
        while left > 0 {
            let Some(front) = self.series.front_mut() else {
                break;
            };
            if front.samples.len() <= left {
                left -= front.samples.len();
                self.samples -= front.samples.len();
                self.front += front.samples.len() as u64;
                self.series.pop_front();
            } else {
                front.samples.drain(..left);
                self.samples -= left;
                self.front += left as u64;
                left = 0;
            }
        }
        start..self.front
    }
}

fn len(range: &Range<u64>) -> u64 {
    range.end - range.start
}

fn overlap(a: &Range<u64>, b: &Range<u64>) -> u64 {
    a.end.min(b.end).saturating_sub(a.start.max(b.start))
}

#[cfg(test)]
mod tests {
    use super::super::proto::{Label, Sample};
    use super::*;
    use proptest::prelude::*;

    /// One series per value, named `s<value>`, one sample each.
    fn singles(values: Range<i64>) -> Vec<TimeSeries> {
        values
            .map(|v| {
                TimeSeries::new(
                    format!("s{v}"),
                    [("k", "v")],
                    vec![Sample::new(v as f64, v)],
                )
            })
            .collect()
    }

    fn values(series: &[TimeSeries]) -> Vec<i64> {
        series
            .iter()
            .flat_map(|s| s.samples.iter().map(|x| x.timestamp))
            .collect()
    }

    fn queued(queue: &mut Queue) -> Vec<i64> {
        let request = queue.begin(usize::MAX).unwrap_or_default();
        queue.end(Ending::Failed);
        values(&request)
    }

    #[test]
    fn overflow_drops_exactly_the_oldest() {
        let mut queue = Queue::new(5);
        assert_eq!(queue.push(singles(0..3)).dropped, 0);
        assert_eq!(queue.push(singles(3..9)).dropped, 4);
        assert_eq!(queue.len(), 5);
        assert_eq!(queued(&mut queue), [4, 5, 6, 7, 8]);
        // A single push larger than the capacity keeps its newest samples.
        assert_eq!(queue.push(singles(9..20)).dropped, 11);
        assert_eq!(queued(&mut queue), [15, 16, 17, 18, 19]);
    }

    #[test]
    fn overflow_splits_a_series_keeping_its_newest_samples() {
        let mut queue = Queue::new(3);
        let samples = (0..5).map(|t| Sample::new(t as f64, t)).collect();
        let counted = queue.push(vec![TimeSeries::new("m", [("a", "b")], samples)]);
        assert_eq!(counted.dropped, 2);
        let request = queue.begin(10).expect("queued");
        assert_eq!(values(&request), [2, 3, 4]);
        assert_eq!(request[0].labels[0], Label::new("__name__", "m"));
    }

    #[test]
    fn requests_take_at_most_max_samples_and_leave_only_when_they_end() {
        let mut queue = Queue::new(100);
        let samples = (0..5).map(|t| Sample::new(0.0, t)).collect();
        queue.push(vec![TimeSeries::new("a", [("x", "y")], samples)]);
        queue.push(singles(5..8));
        let request = queue.begin(6).expect("queued");
        assert_eq!(values(&request), [0, 1, 2, 3, 4, 5]);
        assert_eq!(queue.len(), 8);
        assert_eq!(queue.end(Ending::Failed), Counted::default());
        // Sent again, from the front.
        assert_eq!(values(&queue.begin(6).expect("queued")), [0, 1, 2, 3, 4, 5]);
        assert_eq!(queue.end(Ending::Sent).sent, 6);
        assert_eq!(queued(&mut queue), [6, 7]);
        queue.begin(1);
        assert_eq!(queue.end(Ending::Rejected).rejected, 1);
        assert_eq!(queued(&mut queue), [7]);
    }

    #[test]
    fn overflow_out_of_a_request_counts_as_dropped_only_if_it_fails() {
        let mut queue = Queue::new(4);
        queue.push(singles(0..4));
        queue.begin(2);
        // 0 and 1 (in flight) and 2 overflow; only 2 is dropped outright.
        assert_eq!(queue.push(singles(4..7)).dropped, 1);
        assert_eq!(
            queue.end(Ending::Sent),
            Counted {
                sent: 2,
                ..Counted::default()
            }
        );
        assert_eq!(queued(&mut queue), [3, 4, 5, 6]);

        queue.begin(2);
        assert_eq!(queue.push(singles(7..8)).dropped, 0);
        assert_eq!(queue.end(Ending::Failed).dropped, 1);
        assert_eq!(queued(&mut queue), [4, 5, 6, 7]);
    }

    #[test]
    fn drop_all_counts_everything_left() {
        let mut queue = Queue::new(10);
        queue.push(singles(0..6));
        queue.begin(3);
        queue.push(singles(6..12)); // 2 dropped, both in flight
        assert_eq!(
            queue.drop_all().dropped,
            12,
            "the 10 queued and the 2 that overflowed"
        );
        assert!(queue.is_empty());
        assert!(!queue.in_flight());
    }

    #[test]
    fn empty_series_are_ignored() {
        let mut queue = Queue::new(1);
        queue.push(vec![TimeSeries::new("a", [("x", "y")], vec![])]);
        assert!(queue.is_empty());
        assert!(queue.begin(5).is_none());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(usize),
        Begin(usize),
        End(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0usize..30).prop_map(Op::Push),
            (1usize..20).prop_map(Op::Begin),
            (0u8..3).prop_map(Op::End),
        ]
    }

    proptest! {
        /// Conservation: every sample pushed is exactly one of sent, rejected, dropped, queued
        /// or pending; the queue never holds more than its capacity.
        #[test]
        fn every_sample_is_accounted_for(
            capacity in 1usize..40,
            ops in prop::collection::vec(op(), 0..60),
        ) {
            let mut queue = Queue::new(capacity);
            let (mut pushed, mut total) = (0u64, Counted::default());
            fn add(total: &mut Counted, c: Counted) {
                total.sent += c.sent;
                total.rejected += c.rejected;
                total.dropped += c.dropped;
            }
            for op in ops {
                match op {
                    Op::Push(n) => {
                        let start = pushed as i64;
                        pushed += n as u64;
                        add(&mut total, queue.push(singles(start..pushed as i64)));
                    }
                    Op::Begin(max) => {
                        if !queue.in_flight() {
                            queue.begin(max);
                        }
                    }
                    Op::End(e) => add(&mut total, queue.end(match e {
                        0 => Ending::Sent,
                        1 => Ending::Rejected,
                        _ => Ending::Failed,
                    })),
                }
                prop_assert!(queue.len() <= capacity);
                let settled = total.sent + total.rejected + total.dropped;
                let unsettled = queue.len() as u64 + queue.dropped_pending;
                prop_assert_eq!(pushed, settled + unsettled);
            }
            add(&mut total, queue.drop_all());
            prop_assert_eq!(pushed, total.sent + total.rejected + total.dropped);
        }
    }
}
