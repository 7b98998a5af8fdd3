//! Node-local DNS caches of one cluster, aggregated: nodes are counted by how long their cached
//! records stay usable, never stored one by one.
//!
//! Every `refresh` interval a node's cache misses and asks the control plane. A success makes its
//! records good for `stale_lifetime` (the cache serves stale records when the upstream fails); a
//! node whose records run out has failing services until a refresh succeeds again.

use crate::fleet::DnsSpec;

/// The DNS state of one cluster's nodes.
#[derive(Debug, Clone)]
pub struct DnsCaches {
    /// `deadlines[(head + k) % len]`: healthy nodes whose records run out in `k + 1` intervals.
    deadlines: Vec<f64>,
    head: usize,
    failing: f64,
    nodes: f64,
    interval: f64,
    /// Time into the current interval, and lookup outcomes in it.
    elapsed: f64,
    attempted: f64,
    succeeded: f64,
}

impl DnsCaches {
    /// All `nodes` nodes healthy, their records just refreshed.
    #[must_use]
    pub fn new(nodes: u32, spec: &DnsSpec) -> Self {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a small positive count
        let len = ((spec.stale_lifetime_seconds / spec.refresh_seconds).round() as usize).max(1);
        let mut deadlines = vec![0.0; len];
        deadlines[len - 1] = f64::from(nodes);
        Self {
            deadlines,
            head: 0,
            failing: 0.0,
            nodes: f64::from(nodes),
            interval: spec.refresh_seconds,
            elapsed: 0.0,
            attempted: 0.0,
            succeeded: 0.0,
        }
    }

    /// Nodes whose services are failing now.
    #[must_use]
    pub fn failing(&self) -> f64 {
        self.failing
    }

    /// Lookups that miss and go to the control plane during a step of `dt` seconds.
    #[must_use]
    pub fn lookups(&self, dt: f64, per_refresh: f64, failing_multiplier: f64) -> f64 {
        (self.nodes - self.failing + self.failing * failing_multiplier) * per_refresh * dt
            / self.interval
    }

    /// Records the outcome of a step's lookups: `attempted` sent, `succeeded` answered in time.
    /// At each interval boundary, nodes refresh with the interval's success ratio.
    pub fn step(&mut self, dt: f64, attempted: f64, succeeded: f64) {
        self.attempted += attempted;
        self.succeeded += succeeded;
        self.elapsed += dt;
        while self.elapsed >= self.interval - 1e-9 {
            self.elapsed -= self.interval;
            let ratio = if self.attempted > 0.0 {
                (self.succeeded / self.attempted).clamp(0.0, 1.0)
            } else {
                1.0
            };
            self.attempted = 0.0;
            self.succeeded = 0.0;
            self.refresh(ratio);
        }
    }

    fn refresh(&mut self, success: f64) {
        let len = self.deadlines.len();
        // Records that ran out in this interval: those nodes' services fail.
        self.failing += std::mem::take(&mut self.deadlines[self.head]);
        self.head = (self.head + 1) % len;
        // Healthy and failing nodes refresh; the successful ones are good for a full lifetime.
        let mut renewed = self.failing * success;
        self.failing -= renewed;
        for d in &mut self.deadlines {
            renewed += *d * success;
            *d *= 1.0 - success;
        }
        let newest = (self.head + len - 1) % len;
        self.deadlines[newest] += renewed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_fail_only_after_the_stale_lifetime() {
        let spec = DnsSpec {
            refresh_seconds: 30.0,
            stale_lifetime_seconds: 1200.0,
        };
        let mut dns = DnsCaches::new(1000, &spec);
        // Control plane down from t = 0: nothing succeeds.
        let mut t = 0.0;
        while t < 1190.0 {
            dns.step(1.0, 10.0, 0.0);
            t += 1.0;
            assert_eq!(dns.failing(), 0.0, "failed at {t}");
        }
        for _ in 0..20 {
            dns.step(1.0, 10.0, 0.0);
        }
        assert!((dns.failing() - 1000.0).abs() < 1e-9);
        // Back up: everyone recovers at the first interval with full success.
        for _ in 0..60 {
            dns.step(1.0, 10.0, 10.0);
        }
        assert!(dns.failing() < 1e-9);
        let total: f64 = dns.deadlines.iter().sum::<f64>() + dns.failing;
        assert!((total - 1000.0).abs() < 1e-9);
    }
}
