//! Built-in scenarios and the two rollout disciplines they compare.

use fleetwatch_rollout::{
    BakePolicy, DEFAULT_MAX_READING_GAP_SECONDS, DeclaredCache, Policy, ProjectionPolicy, SloGates,
    WaveStyle,
};
use serde::{Deserialize, Serialize};

use crate::{
    fleet::{Change, ClusterSpec, DnsSpec, Fleet, Pattern, Timing},
    rng,
};

/// Whether the rollout is guarded by fleetwatch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Guard {
    /// The incident's practice: staging, then production in a few big batches a few minutes
    /// apart, watching only service health; removal needs a working control plane.
    Off,
    /// fleetwatch: scale-stratified waves, bake ≥ the DNS cache lifetime + margin, control-plane
    /// SLO gates, load projection, the change in a bounded APF lane, break-glass rollback.
    On,
}

impl Guard {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Guard::Off => "off",
            Guard::On => "on",
        }
    }
}

/// Protections beyond the rollout policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protections {
    /// The change's API traffic runs in its own APF level with a bounded share of seats.
    pub quarantine: bool,
    /// Rollback goes through an exempt APF lane and works while the API server is overloaded.
    pub break_glass: bool,
}

/// The rollout policy and protections of a guard setting, for a fleet with these DNS caches.
#[must_use]
pub fn guard_policy(guard: Guard, dns: &DnsSpec) -> (Policy, Protections) {
    match guard {
        Guard::Off => (
            Policy {
                waves: WaveStyle::Batches { batches: 2 },
                // Eight minutes per wave: all production within half an hour. Nobody declared the DNS
                // caches.
                bake: BakePolicy {
                    caches: Vec::new(),
                    margin_seconds: 0.0,
                    min_seconds: 480.0,
                    max_reading_gap_seconds: DEFAULT_MAX_READING_GAP_SECONDS,
                },
                gates: None,
                max_failing_node_fraction: Some(0.01),
                projection: None,
            },
            Protections {
                quarantine: false,
                break_glass: false,
            },
        ),
        Guard::On => (
            Policy {
                waves: WaveStyle::Stratified {
                    first_fraction: 0.01,
                    first_clusters: 3,
                    growth: 4.0,
                },
                bake: BakePolicy {
                    caches: vec![DeclaredCache {
                        name: "node-local DNS (stale records)".into(),
                        ttl_seconds: dns.stale_lifetime_seconds,
                    }],
                    margin_seconds: 300.0,
                    min_seconds: 600.0,
                    max_reading_gap_seconds: DEFAULT_MAX_READING_GAP_SECONDS,
                },
                gates: Some(SloGates::default()),
                max_failing_node_fraction: Some(0.01),
                projection: Some(ProjectionPolicy::default()),
            },
            Protections {
                quarantine: true,
                break_glass: true,
            },
        ),
    }
}

/// Production clusters in the full 2024-12-11 scenario.
pub const DEC_2024_PRODUCTION_CLUSTERS: usize = 250;

/// A fleet like the incident's: one 40-node staging cluster and `production` clusters from tens
/// to thousands of nodes (40% small 20–199, 36% medium 200–999, 24% large 1,000–5,000;
/// log-uniform within each class, order shuffled), DNS records usable 20 minutes after the last
/// successful refresh.
#[must_use]
pub fn dec_2024_fleet(seed: u64, production: usize) -> Fleet {
    let mut rng = rng::stream(seed, u64::MAX);
    let mut clusters = Vec::with_capacity(production + 1);
    clusters.push(ClusterSpec::new("staging", 40, true));
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let sizes: Vec<u32> = (0..production)
        .map(|i| {
            let class = i as f64 / production as f64;
            let (lo, hi): (f64, f64) = if class < 0.40 {
                (20.0, 200.0)
            } else if class < 0.76 {
                (200.0, 1000.0)
            } else {
                (1000.0, 5000.0)
            };
            rng::uniform(&mut rng, lo.ln(), hi.ln()).exp().floor() as u32
        })
        .collect();
    let mut order: Vec<usize> = (0..production).collect();
    for i in (1..order.len()).rev() {
        #[allow(
            clippy::cast_precision_loss,
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss
        )]
        let j = rng::uniform(&mut rng, 0.0, (i + 1) as f64) as usize;
        order.swap(i, j.min(i));
    }
    for (n, &i) in order.iter().enumerate() {
        clusters.push(ClusterSpec::new(
            format!("prod-{:03}", n + 1),
            sizes[i],
            false,
        ));
    }
    Fleet {
        clusters,
        dns: DnsSpec::default(),
    }
}

/// The incident's change: a per-node telemetry agent that LISTs every pod in the cluster from
/// etcd every 30 seconds.
#[must_use]
pub fn dec_2024_change() -> Change {
    Change {
        name: "node-telemetry-agent".into(),
        pattern: Pattern::NaiveList {
            interval_seconds: 30.0,
            timing: Timing::Jittered,
        },
    }
}
