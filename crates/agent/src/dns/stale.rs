//! Whether the node's resolver is serving an answer past its TTL: a pure function of each
//! poll's two outcomes for one name and the time, so it is tested with a made-up clock.
//!
//! # The definition
//!
//! At a poll at time `now`, the resolver's answer for a name is **stale**, and
//! `served_stale` is 1, when all of these hold:
//!
//! 1. the resolver answered with at least one address (NOERROR, A records);
//! 2. the cluster DNS did not answer this poll (timeout, SERVFAIL, REFUSED, a socket error or
//!    a malformed reply; an NXDOMAIN or an empty answer *is* an answer), and has not answered
//!    at any poll since `failing_since`, the start of the first of these failed polls;
//! 3. `now > expiry`, where `expiry` is the earlier of
//!    - *by the upstream*: `failing_since + T`, with `T` the TTL of the cluster DNS's last
//!      answer with addresses for this name (no such answer since the agent started: no bound);
//!    - *by the resolver*: `t1 + r1`, with `(t1, r1)` the time and TTL of the resolver's first
//!      answer since `failing_since` with the addresses it gives now (a new set of addresses
//!      starts again).
//!
//! `stale_seconds` is then `now - expiry`, else 0.
//!
//! Why each bound holds. The cache forwards to the cluster DNS (an assumption: see
//! [`super::DnsConfig::cluster_dns`]), so once that has stopped answering the cache can have
//! got nothing newer than from just before `failing_since`, at most `T` seconds fresh: by
//! `failing_since + T` all of it has expired, whatever TTL the cache now claims. And what the
//! resolver said at `t1` it cannot have refreshed since, so it expired at `t1 + r1` at the
//! latest. The first bound is what catches caches that keep answering with a reset TTL
//! (unbound's `serve-expired` answers with `serve-expired-reply-ttl`, 30 s, again and again;
//! CoreDNS's cache with `keepttl` with the original TTL); the second catches the agent having
//! started during the outage (no `T` yet) and caches whose own TTL runs out sooner. dnsmasq's
//! `--use-stale-cache` and CoreDNS's `serve_stale` answer at TTL 0 once expired, which the
//! second bound sees one poll later.
//!
//! What the definition does not do: call an answer with TTL 0 stale while the cluster DNS
//! works — dnsmasq with `--use-stale-cache` does exactly that, healthy, serving the expired
//! entry once while it refreshes in the background (seen in the test against the real one).
//! Conservative on purpose: `failing_since` rather than the last success is the base, because
//! the cache may have refreshed between the agent's last successful poll and the outage; so
//! detection takes up to one interval more, and `stale_seconds` is a lower bound. TTLs are whole
//! seconds, so is its precision.
//!
//! Owns: the per-name memory this needs — one TTL, one instant, one remembered answer (its
//! addresses, TTL and time), whatever the number of polls.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::wire::Outcome;

/// A server's answer as remembered.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    addresses: Vec<Ipv4Addr>,
    ttl: u32,
    at: Instant,
}

/// One name's memory across polls.
#[derive(Debug, Clone, Default)]
pub struct Staleness {
    /// The TTL of the cluster DNS's last answer with addresses.
    upstream_ttl: Option<u32>,
    /// The start of the first failed cluster DNS poll since it last answered.
    failing_since: Option<Instant>,
    /// The resolver's first answer with its current addresses since `failing_since`.
    resolver_first: Option<Seen>,
}

/// One poll's conclusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub served_stale: bool,
    /// How long past its TTL the answer is (zero unless stale).
    pub stale_for: Duration,
}

impl Verdict {
    const FRESH: Verdict = Verdict {
        served_stale: false,
        stale_for: Duration::ZERO,
    };
}

impl Staleness {
    /// Takes a poll at `now`: what the resolver and the cluster DNS said.
    pub fn observe(&mut self, now: Instant, resolver: &Outcome, upstream: &Outcome) -> Verdict {
        if upstream.answered() {
            if let Outcome::Answer { ttl, .. } = upstream {
                self.upstream_ttl = Some(*ttl);
            }
            self.failing_since = None;
            self.resolver_first = None;
            return Verdict::FRESH;
        }
        let since = *self.failing_since.get_or_insert(now);
        let Outcome::Answer { addresses, ttl } = resolver else {
            // Not serving anything: the outage is visible, not hidden. The remembered answer
            // stays: if the same addresses come back, they are no fresher.
            return Verdict::FRESH;
        };
        let first = match self.resolver_first.take() {
            Some(first) if first.addresses == *addresses => first,
            _ => Seen {
                addresses: addresses.clone(),
                ttl: *ttl,
                at: now,
            },
        };
        let by_resolver = first.at + seconds(first.ttl);
        self.resolver_first = Some(first);
        let by_upstream = self.upstream_ttl.map(|ttl| since + seconds(ttl));
        let expiry = by_upstream.map_or(by_resolver, |by| by.min(by_resolver));
        let stale_for = now.saturating_duration_since(expiry);
        Verdict {
            served_stale: !stale_for.is_zero(),
            stale_for,
        }
    }
}

fn seconds(ttl: u32) -> Duration {
    Duration::from_secs(u64::from(ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up clock: seconds after a fixed start.
    struct Clock(Instant);

    impl Clock {
        fn at(&self, seconds: f64) -> Instant {
            self.0 + Duration::from_secs_f64(seconds)
        }
    }

    fn answer(last: u8, ttl: u32) -> Outcome {
        Outcome::Answer {
            addresses: vec![Ipv4Addr::new(10, 96, 0, last)],
            ttl,
        }
    }

    fn down() -> Outcome {
        Outcome::Error("connection refused".to_owned())
    }

    /// Feeds `(time, resolver, upstream)` polls and returns each verdict.
    fn run(polls: &[(f64, Outcome, Outcome)]) -> Vec<Verdict> {
        let clock = Clock(Instant::now());
        let mut staleness = Staleness::default();
        polls
            .iter()
            .map(|(t, resolver, upstream)| staleness.observe(clock.at(*t), resolver, upstream))
            .collect()
    }

    fn stale(verdicts: &[Verdict]) -> Vec<bool> {
        verdicts.iter().map(|v| v.served_stale).collect()
    }

    #[test]
    fn ttl_zero_while_the_upstream_answers_is_not_stale() {
        // dnsmasq --use-stale-cache, healthy: an expired entry served at TTL 0 while it
        // refreshes.
        let verdicts = run(&[
            (0.0, answer(1, 0), answer(1, 5)),
            (10.0, answer(1, 0), answer(1, 5)),
            (20.0, answer(1, 0), answer(1, 5)),
        ]);
        assert_eq!(stale(&verdicts), [false, false, false]);
    }

    #[test]
    fn a_cache_resetting_its_ttl_is_caught_by_the_upstream_s_ttl() {
        // unbound serve-expired: TTL 30 again and again; the upstream's TTL was 5.
        let verdicts = run(&[
            (0.0, answer(1, 5), answer(1, 5)),
            (10.0, answer(1, 30), down()), // failing since 10: expired by 15
            (14.0, answer(1, 30), down()),
            (16.0, answer(1, 30), down()),
            (26.0, answer(1, 30), down()),
        ]);
        assert_eq!(stale(&verdicts), [false, false, false, true, true]);
        assert_eq!(verdicts[3].stale_for, Duration::from_secs(1));
        assert_eq!(verdicts[4].stale_for, Duration::from_secs(11));
    }

    #[test]
    fn ttl_zero_after_the_resolver_s_own_ttl_ran_out_is_stale() {
        // dnsmasq --use-stale-cache with the upstream gone: counts down, then TTL 0 for ever.
        let verdicts = run(&[
            (0.0, answer(1, 60), answer(1, 60)),
            (1.0, answer(1, 2), down()), // the resolver's copy ends at 3, long before 61
            (2.0, answer(1, 1), down()),
            (3.0, answer(1, 0), down()),
            (3.5, answer(1, 0), down()),
        ]);
        assert_eq!(stale(&verdicts), [false, false, false, false, true]);
        assert_eq!(verdicts[4].stale_for, Duration::from_millis(500));
    }

    #[test]
    fn without_an_upstream_answer_the_resolver_s_ttl_is_the_bound() {
        // The agent started during the outage.
        let verdicts = run(&[
            (0.0, answer(1, 30), down()),
            (20.0, answer(1, 30), down()),
            (31.0, answer(1, 30), down()),
        ]);
        assert_eq!(stale(&verdicts), [false, false, true]);
    }

    #[test]
    fn the_upstream_answering_again_ends_it() {
        let verdicts = run(&[
            (0.0, answer(1, 5), answer(1, 5)),
            (10.0, answer(1, 0), down()),
            (20.0, answer(1, 0), down()),
            (30.0, answer(1, 5), answer(1, 5)),
            (40.0, answer(1, 0), down()), // a new run: not yet past anything
        ]);
        assert_eq!(stale(&verdicts), [false, false, true, false, false]);
    }

    #[test]
    fn nxdomain_from_the_upstream_is_an_answer() {
        let verdicts = run(&[
            (0.0, answer(1, 5), answer(1, 5)),
            (10.0, answer(1, 0), down()),
            (20.0, answer(1, 0), Outcome::NxDomain),
            (30.0, answer(1, 0), Outcome::ServFail), // failing again since 30
        ]);
        assert_eq!(stale(&verdicts), [false, false, false, false]);
    }

    #[test]
    fn a_resolver_that_fails_too_is_not_serving_stale() {
        let verdicts = run(&[
            (0.0, answer(1, 5), answer(1, 5)),
            (10.0, Outcome::ServFail, Outcome::Timeout),
            (20.0, Outcome::Timeout, Outcome::Timeout),
        ]);
        assert_eq!(stale(&verdicts), [false, false, false]);
        assert!(verdicts.iter().all(|v| v.stale_for.is_zero()));
    }

    #[test]
    fn new_addresses_restart_the_resolver_s_bound_but_not_the_upstream_s() {
        let verdicts = run(&[
            (0.0, answer(1, 30), down()),
            (20.0, answer(2, 30), down()), // another copy: fresh until 50, not 30
            (40.0, answer(2, 30), down()),
            (51.0, answer(2, 30), down()),
        ]);
        assert_eq!(stale(&verdicts), [false, false, false, true]);
        assert_eq!(verdicts[3].stale_for, Duration::from_secs(1));

        let verdicts = run(&[
            (0.0, answer(1, 5), answer(1, 5)),
            (10.0, answer(1, 30), down()),
            (12.0, answer(2, 30), down()), // failing since 10: 15 holds whatever the addresses
            (16.0, answer(2, 30), down()),
        ]);
        assert_eq!(stale(&verdicts), [false, false, false, true]);
    }

    #[test]
    fn an_upstream_ttl_of_zero_makes_any_cached_answer_stale_at_once() {
        let verdicts = run(&[
            (0.0, answer(1, 0), answer(1, 0)),
            (10.0, answer(1, 0), down()),
            (10.5, answer(1, 0), down()),
        ]);
        assert_eq!(stale(&verdicts), [false, false, true]);
    }
}
