//! Which clients get series of their own: the top K by request count, found with a
//! space-saving sketch (Metwally, Agrawal, El Abbadi, 2005) in a table of bounded size.
//!
//! Why this shape:
//! - Bounded: the sketch holds at most [`TopClients::capacity`] clients however many there are
//!   (1,000 users, or a client that makes up a new user agent per request), and at most K of
//!   them are labelled. Memory and series do not grow with the number of clients.
//! - Finds the heavy hitters: space-saving keeps every client whose true count exceeds
//!   N / capacity (N requests seen), and over-estimates a count by at most the `error` it
//!   records, so a heavy client is never mistaken for a light one.
//! - Stable: a labelled client is replaced only when a challenger's *guaranteed* count
//!   (count − error) exceeds the incumbent's *estimate* (which can only be too high). Two
//!   clients of similar rates do not take turns, and a burst of one-off clients cannot push a
//!   steady one out: each of them is guaranteed a count of 1 at most.
//! - Current: every [`TopClients::decay`] halves the counts, so a client that stopped sending
//!   gives its place up in time instead of holding it on what it sent last week.

use std::collections::HashMap;
use std::hash::Hash;

/// A client's counts in the sketch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    /// Requests counted for it, an over-estimate by at most `error`.
    count: u64,
    /// How much of `count` it may have inherited from the client it replaced.
    error: u64,
}

impl Counts {
    fn guaranteed(self) -> u64 {
        self.count - self.error
    }
}

/// What [`TopClients::observe`] decided for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<K> {
    /// The client has series of its own.
    Labelled,
    /// The client has series of its own now, in place of `evicted` (whose series are to go).
    Replaced { evicted: K },
    /// The client is counted as `other`.
    Other,
}

/// The top-K clients of a stream of requests.
#[derive(Debug)]
pub struct TopClients<K> {
    k: usize,
    capacity: usize,
    sketch: HashMap<K, Counts>,
    labelled: Vec<K>,
}

impl<K: Clone + Eq + Hash + Ord> TopClients<K> {
    /// Keeps the top `k` clients, in a sketch of `capacity` entries (at least `k + 1`; a few
    /// times `k` keeps the estimates close).
    pub fn new(k: usize, capacity: usize) -> Self {
        TopClients {
            k,
            // Room for the K labelled clients, which stay, and some others.
            capacity: capacity.max(k + 1),
            sketch: HashMap::with_capacity(capacity),
            labelled: Vec::with_capacity(k),
        }
    }

    /// The largest number of clients the sketch holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The clients that have series of their own.
    pub fn labelled(&self) -> &[K] {
        &self.labelled
    }

    /// Counts one request of `client` and says whose series it goes to.
    pub fn observe(&mut self, client: &K) -> Decision<K> {
        let counts = self.offer(client);
        if self.labelled.contains(client) {
            return Decision::Labelled;
        }
        if self.labelled.len() < self.k {
            self.labelled.push(client.clone());
            return Decision::Labelled;
        }
        let Some((weakest, estimate)) = self.weakest() else {
            return Decision::Other;
        };
        if counts.guaranteed() > estimate {
            let evicted = std::mem::replace(&mut self.labelled[weakest], client.clone());
            Decision::Replaced { evicted }
        } else {
            Decision::Other
        }
    }

    /// Halves every count, so that the top K follow what clients send now.
    pub fn decay(&mut self) {
        for counts in self.sketch.values_mut() {
            counts.count /= 2;
            counts.error /= 2;
        }
        self.sketch.retain(|_, counts| counts.count > 0);
    }

    /// Adds one to `client`'s count; a new client takes the place of the least counted one
    /// when the table is full, inheriting its count as error.
    fn offer(&mut self, client: &K) -> Counts {
        if let Some(counts) = self.sketch.get_mut(client) {
            counts.count += 1;
            return *counts;
        }
        let mut counts = Counts { count: 1, error: 0 };
        if self.sketch.len() >= self.capacity {
            // A linear scan: the table is a few times K, and this runs only for a client the
            // table does not hold.
            if let Some(least) = self.least() {
                let inherited = self.sketch.remove(&least).unwrap_or_default().count;
                counts = Counts {
                    count: inherited + 1,
                    error: inherited,
                };
            }
        }
        self.sketch.insert(client.clone(), counts);
        counts
    }

    /// The unlabelled client with the smallest count (the smallest key among equals, for
    /// determinism). Labelled clients stay in the table, so that an incumbent is always
    /// compared on its own count, never on a 0 left by having been pushed out of it.
    fn least(&self) -> Option<K> {
        self.sketch
            .iter()
            .filter(|(k, _)| !self.labelled.contains(k))
            .min_by(|a, b| a.1.count.cmp(&b.1.count).then_with(|| a.0.cmp(b.0)))
            .map(|(k, _)| k.clone())
    }

    /// The labelled client with the smallest estimate, by index, and that estimate (0 for one
    /// the sketch no longer holds).
    fn weakest(&self) -> Option<(usize, u64)> {
        self.labelled
            .iter()
            .enumerate()
            .map(|(i, k)| (i, self.sketch.get(k).map_or(0, |c| c.count)))
            .min_by_key(|&(i, estimate)| (estimate, std::cmp::Reverse(i)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_first_k_clients_are_labelled_then_others_are_folded() {
        let mut top = TopClients::new(2, 8);
        assert_eq!(top.observe(&"a"), Decision::Labelled);
        assert_eq!(top.observe(&"b"), Decision::Labelled);
        assert_eq!(top.observe(&"c"), Decision::Other);
        assert_eq!(top.observe(&"a"), Decision::Labelled);
    }

    #[test]
    fn a_steady_heavy_client_replaces_a_light_one_and_keeps_its_place() {
        let name = |s: &str| s.to_owned();
        let mut top = TopClients::new(2, 8);
        top.observe(&name("light-1"));
        top.observe(&name("light-2"));
        let decisions: Vec<_> = (0..3).map(|_| top.observe(&name("heavy"))).collect();
        assert_eq!(decisions[0], Decision::Other);
        assert_eq!(
            decisions[1],
            Decision::Replaced {
                evicted: name("light-2")
            },
            "a guaranteed 2 beats an estimate of 1"
        );
        assert_eq!(decisions[2], Decision::Labelled);
        // A thousand one-off clients do not move it.
        for i in 0..1000 {
            let decision = top.observe(&format!("one-off-{i}"));
            assert!(
                !matches!(&decision, Decision::Replaced { evicted } if evicted == "heavy"),
                "{decision:?}"
            );
        }
        assert!(top.labelled().contains(&name("heavy")));
    }

    #[test]
    fn an_idle_client_gives_its_place_up_after_decay() {
        let mut top = TopClients::new(1, 4);
        for _ in 0..8 {
            top.observe(&"old");
        }
        for _ in 0..4 {
            top.decay();
        }
        // 8 halved four times is 0: "old" has left the sketch, and the next client takes its
        // place.
        assert_eq!(top.observe(&"new"), Decision::Replaced { evicted: "old" });
        assert_eq!(top.observe(&"newer"), Decision::Other);
    }

    proptest! {
        /// Whatever the stream: never more than K labelled, never more than `capacity` in
        /// the sketch, and a client sending two thirds of a stream is labelled early on.
        #[test]
        fn bounded_and_finds_the_majority(
            k in 1usize..6,
            stream in proptest::collection::vec(0u16..500, 1..2000),
        ) {
            let mut top = TopClients::new(k, 4 * k);
            let majority = 9999u16;
            for (i, client) in stream.iter().enumerate() {
                top.observe(client);
                top.observe(&majority);
                top.observe(&majority);
                prop_assert!(top.labelled().len() <= k);
                prop_assert!(top.sketch.len() <= top.capacity());
                if i > 8 * k {
                    prop_assert!(top.labelled().contains(&majority));
                }
            }
        }
    }
}
