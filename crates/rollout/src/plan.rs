//! The wave planner: targets + policy → an ordered list of waves.

use serde::{Deserialize, Serialize};

use crate::{
    cluster::{ClusterId, Resources},
    gate::SloGates,
    projection::ProjectionPolicy,
};

/// A cluster the change may be delivered to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    /// Nodes in the cluster; the change is a per-node agent, so node fractions apply to this.
    pub nodes: u32,
    /// Staging clusters come first, at the full node fraction.
    pub staging: bool,
    /// What the control plane can give, summed over its replicas: CPU cores, memory bytes, and
    /// the APF seats of the priority level the change runs in once the rollout is over.
    pub capacity: Resources,
}

/// A cache whose lifetime hides a failure (a DNS cache serving stale records, a lease, a
/// client-side cache). Bake must outlast the longest one, or symptoms surface after the next wave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeclaredCache {
    pub name: String,
    pub ttl_seconds: f64,
}

/// How long each wave bakes before the next one starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BakePolicy {
    /// Caches in play; bake ≥ the longest TTL + `margin_seconds`.
    pub caches: Vec<DeclaredCache>,
    pub margin_seconds: f64,
    /// Lower bound whatever the caches say.
    pub min_seconds: f64,
    /// Readings further apart than this (the executor was down or stalled) are a gap: it is not
    /// bake time, and the change's measurement windows restart.
    #[serde(default = "default_max_reading_gap_seconds")]
    pub max_reading_gap_seconds: f64,
}

/// Default of [`BakePolicy::max_reading_gap_seconds`]: a minute, several of the simulator's
/// 10 s ticks or of a Prometheus scrape interval. A policy choice, not a measurement.
pub const DEFAULT_MAX_READING_GAP_SECONDS: f64 = 60.0;

fn default_max_reading_gap_seconds() -> f64 {
    DEFAULT_MAX_READING_GAP_SECONDS
}

impl BakePolicy {
    /// Bake time of every wave, in seconds: `max(min, longest TTL + margin)`.
    #[must_use]
    pub fn bake_seconds(&self) -> f64 {
        let longest = self
            .caches
            .iter()
            .map(|c| c.ttl_seconds)
            .fold(0.0, f64::max);
        self.min_seconds.max(longest + self.margin_seconds)
    }
}

/// How production clusters are grouped into waves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "style", rename_all = "kebab-case")]
pub enum WaveStyle {
    /// Scale-stratified: the `first_clusters` largest production clusters enter first at
    /// `first_fraction` of their nodes; each later wave admits `growth` times as many new
    /// clusters (next largest first) and multiplies every admitted cluster's node fraction by
    /// `growth`, up to 1.
    Stratified {
        first_fraction: f64,
        first_clusters: usize,
        growth: f64,
    },
    /// The common practice the incident followed: production in `batches` equal batches in the
    /// order given, every node at once.
    Batches { batches: usize },
}

impl Policy {
    /// Bake time of every wave, in seconds: what the caches ask ([`BakePolicy::bake_seconds`]),
    /// and at least a settle time and a full measurement window when the policy projects.
    #[must_use]
    pub fn bake_seconds(&self) -> f64 {
        let measuring = self
            .projection
            .as_ref()
            .map_or(0.0, |p| p.settle_seconds + p.window_seconds);
        self.bake.bake_seconds().max(measuring)
    }
}

/// Everything that decides a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub waves: WaveStyle,
    pub bake: BakePolicy,
    /// Control-plane SLO gates evaluated during bake; `None` watches no control-plane signal.
    pub gates: Option<SloGates>,
    /// Halt when the fraction of nodes with failing services in an admitted cluster exceeds this
    /// (the "service health" check that most pipelines have).
    pub max_failing_node_fraction: Option<f64>,
    /// Load projection before each new wave; `None` disables it.
    pub projection: Option<ProjectionPolicy>,
}

/// One cluster's part in a wave: raise its node fraction to `node_fraction`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub cluster: ClusterId,
    pub node_fraction: f64,
}

/// A wave: steps applied together, then one bake.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Wave {
    pub index: usize,
    pub steps: Vec<Step>,
    pub bake_seconds: f64,
}

/// The ordered waves of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub waves: Vec<Wave>,
}

/// Why a plan cannot be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlanError {
    #[error("no target clusters: the fleet must list at least one cluster")]
    NoTargets,
    #[error("invalid policy: {0}")]
    InvalidPolicy(String),
}

/// Plans the waves of a rollout. Staging clusters form wave 0 (at every node); production
/// clusters follow in the policy's [`WaveStyle`]. Every cluster ends at node fraction 1.
///
/// # Errors
/// [`PlanError`] when there are no targets or the policy's numbers are out of range.
pub fn plan(targets: &[Target], policy: &Policy) -> Result<Plan, PlanError> {
    if targets.is_empty() {
        return Err(PlanError::NoTargets);
    }
    if let Some(projection) = &policy.projection {
        check_projection(projection)?;
    }
    let gap = policy.bake.max_reading_gap_seconds;
    if !(gap.is_finite() && gap > 0.0) {
        return Err(PlanError::InvalidPolicy(
            "max_reading_gap_seconds must be a finite, positive number".into(),
        ));
    }
    let bake_seconds = policy.bake_seconds();
    if !(bake_seconds.is_finite() && bake_seconds >= 0.0) {
        return Err(PlanError::InvalidPolicy(
            "bake time must be a finite, non-negative number".into(),
        ));
    }
    let mut waves: Vec<Vec<Step>> = Vec::new();
    let staging: Vec<Step> = targets
        .iter()
        .enumerate()
        .filter(|(_, t)| t.staging)
        .map(|(i, _)| Step {
            cluster: ClusterId(i),
            node_fraction: 1.0,
        })
        .collect();
    if !staging.is_empty() {
        waves.push(staging);
    }
    let production: Vec<ClusterId> = targets
        .iter()
        .enumerate()
        .filter(|(_, t)| !t.staging)
        .map(|(i, _)| ClusterId(i))
        .collect();
    match &policy.waves {
        WaveStyle::Batches { batches } => {
            if *batches == 0 {
                return Err(PlanError::InvalidPolicy(
                    "batches must be at least 1".into(),
                ));
            }
            let per_batch = production.len().div_ceil(*batches).max(1);
            for chunk in production.chunks(per_batch) {
                waves.push(
                    chunk
                        .iter()
                        .map(|&cluster| Step {
                            cluster,
                            node_fraction: 1.0,
                        })
                        .collect(),
                );
            }
        }
        WaveStyle::Stratified {
            first_fraction,
            first_clusters,
            growth,
        } => {
            if !(*first_fraction > 0.0 && *first_fraction <= 1.0) {
                return Err(PlanError::InvalidPolicy(
                    "first_fraction must be in (0, 1]".into(),
                ));
            }
            if !(growth.is_finite() && *growth > 1.0) {
                return Err(PlanError::InvalidPolicy(
                    "growth must be greater than 1".into(),
                ));
            }
            if *first_clusters == 0 {
                return Err(PlanError::InvalidPolicy(
                    "first_clusters must be at least 1".into(),
                ));
            }
            let mut by_size = production;
            // Largest first; ties keep the fleet's order so plans are deterministic.
            by_size.sort_by(|a, b| targets[b.0].nodes.cmp(&targets[a.0].nodes).then(a.cmp(b)));
            waves.extend(stratified(
                &by_size,
                *first_fraction,
                *first_clusters,
                *growth,
            ));
        }
    }
    Ok(Plan {
        waves: waves
            .into_iter()
            .enumerate()
            .map(|(index, steps)| Wave {
                index,
                steps,
                bake_seconds,
            })
            .collect(),
    })
}

fn check_projection(projection: &ProjectionPolicy) -> Result<(), PlanError> {
    let ProjectionPolicy {
        max_utilization,
        settle_seconds,
        window_seconds,
    } = *projection;
    if !(max_utilization > 0.0 && max_utilization <= 1.0) {
        return Err(PlanError::InvalidPolicy(
            "projection max_utilization must be in (0, 1]".into(),
        ));
    }
    if !(settle_seconds.is_finite() && settle_seconds >= 0.0) {
        return Err(PlanError::InvalidPolicy(
            "projection settle_seconds must be a finite, non-negative number".into(),
        ));
    }
    // A window of zero would pass a wave on no measurement at all.
    if !(window_seconds.is_finite() && window_seconds > 0.0) {
        return Err(PlanError::InvalidPolicy(
            "projection window_seconds must be a finite, positive number".into(),
        ));
    }
    Ok(())
}

/// Production waves of the stratified style over clusters sorted largest first.
fn stratified(
    by_size: &[ClusterId],
    first_fraction: f64,
    first_clusters: usize,
    growth: f64,
) -> Vec<Vec<Step>> {
    let mut waves = Vec::new();
    // (cluster, current fraction) of clusters admitted so far.
    let mut admitted: Vec<(ClusterId, f64)> = Vec::new();
    let mut next = 0;
    let mut new_clusters = first_clusters as f64;
    while next < by_size.len() || admitted.iter().any(|&(_, f)| f < 1.0) {
        let mut steps = Vec::new();
        for (cluster, fraction) in &mut admitted {
            if *fraction < 1.0 {
                *fraction = (*fraction * growth).min(1.0);
                steps.push(Step {
                    cluster: *cluster,
                    node_fraction: *fraction,
                });
            }
        }
        // Truncation is intended: a count of clusters.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let take = (new_clusters.round() as usize)
            .max(1)
            .min(by_size.len() - next);
        for &cluster in &by_size[next..next + take] {
            admitted.push((cluster, first_fraction));
            steps.push(Step {
                cluster,
                node_fraction: first_fraction,
            });
        }
        next += take;
        new_clusters *= growth;
        waves.push(steps);
    }
    waves
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn target(name: &str, nodes: u32, staging: bool) -> Target {
        Target {
            name: name.into(),
            nodes,
            staging,
            capacity: Resources {
                cpu_cores: 48.0,
                memory_bytes: 3.0 * 64e9,
                seats: 990.0,
            },
        }
    }

    fn stratified_policy(ttl: f64) -> Policy {
        Policy {
            waves: WaveStyle::Stratified {
                first_fraction: 0.01,
                first_clusters: 2,
                growth: 4.0,
            },
            bake: BakePolicy {
                caches: vec![DeclaredCache {
                    name: "dns".into(),
                    ttl_seconds: ttl,
                }],
                margin_seconds: 300.0,
                min_seconds: 60.0,
                max_reading_gap_seconds: DEFAULT_MAX_READING_GAP_SECONDS,
            },
            gates: Some(SloGates::default()),
            max_failing_node_fraction: Some(0.01),
            projection: Some(ProjectionPolicy::default()),
        }
    }

    fn fraction_of(plan: &Plan, cluster: ClusterId) -> Vec<f64> {
        plan.waves
            .iter()
            .flat_map(|w| {
                w.steps
                    .iter()
                    .filter(|s| s.cluster == cluster)
                    .map(|s| s.node_fraction)
            })
            .collect()
    }

    proptest! {
        #[test]
        fn stratified_plans_hold_their_promises(
            sizes in proptest::collection::vec(1u32..20_000, 1..80),
            staging in 0usize..3,
            ttl in 0.0f64..7200.0,
        ) {
            let mut targets: Vec<Target> =
                (0..staging).map(|i| target(&format!("staging-{i}"), 30, true)).collect();
            targets.extend(sizes.iter().enumerate().map(|(i, &n)| target(&format!("prod-{i}"), n, false)));
            let plan = plan(&targets, &stratified_policy(ttl)).expect("valid policy");
            // Bake outlasts the longest declared cache TTL (plus margin), and a settle time
            // and a full measurement window.
            let projection = ProjectionPolicy::default();
            for wave in &plan.waves {
                prop_assert!(wave.bake_seconds >= ttl + 300.0);
                prop_assert!(
                    wave.bake_seconds >= projection.settle_seconds + projection.window_seconds
                );
            }
            // Staging first, alone.
            if staging > 0 {
                prop_assert!(plan.waves[0].steps.iter().all(|s| targets[s.cluster.0].staging));
            }
            // The largest production cluster is in the first production wave, at a small fraction.
            let first_prod = &plan.waves[usize::from(staging > 0)];
            let largest = sizes.iter().copied().max().expect("non-empty");
            prop_assert!(first_prod.steps.iter().any(|s| targets[s.cluster.0].nodes == largest));
            prop_assert!(first_prod.steps.iter().all(|s| s.node_fraction <= 0.01 + 1e-12));
            // Every cluster ends at 1, its fraction never decreases.
            for i in 0..targets.len() {
                let f = fraction_of(&plan, ClusterId(i));
                prop_assert!(!f.is_empty());
                prop_assert!(f.windows(2).all(|w| w[0] < w[1]));
                prop_assert!((f[f.len() - 1] - 1.0).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn new_clusters_per_wave_grow_geometrically() {
        let targets: Vec<Target> = (0..200)
            .map(|i| target(&format!("p{i}"), 5000 - i * 10, false))
            .collect();
        let plan = plan(&targets, &stratified_policy(1200.0)).expect("valid policy");
        let new_per_wave: Vec<usize> = plan
            .waves
            .iter()
            .map(|w| {
                w.steps
                    .iter()
                    .filter(|s| (s.node_fraction - 0.01).abs() < 1e-12)
                    .count()
            })
            .collect();
        assert_eq!(&new_per_wave[..4], &[2, 8, 32, 128]);
        // Largest first.
        assert_eq!(plan.waves[0].steps[0].cluster, ClusterId(0));
    }

    #[test]
    fn batches_deliver_everything_at_full_fraction() {
        let mut targets = vec![target("staging", 40, true)];
        targets.extend((0..10).map(|i| target(&format!("p{i}"), 100, false)));
        let policy = Policy {
            waves: WaveStyle::Batches { batches: 2 },
            ..stratified_policy(0.0)
        };
        let plan = plan(&targets, &policy).expect("valid policy");
        assert_eq!(plan.waves.len(), 3);
        assert_eq!(plan.waves[1].steps.len(), 5);
        assert!(
            plan.waves
                .iter()
                .flat_map(|w| &w.steps)
                .all(|s| s.node_fraction == 1.0)
        );
    }

    #[test]
    fn bad_policies_are_refused() {
        let targets = vec![target("p", 10, false)];
        assert_eq!(
            plan(&[], &stratified_policy(0.0)),
            Err(PlanError::NoTargets)
        );
        let policy = Policy {
            waves: WaveStyle::Stratified {
                first_fraction: 0.01,
                first_clusters: 1,
                growth: 1.0,
            },
            ..stratified_policy(0.0)
        };
        assert!(matches!(
            plan(&targets, &policy),
            Err(PlanError::InvalidPolicy(_))
        ));
        let no_window = Policy {
            projection: Some(ProjectionPolicy {
                window_seconds: 0.0,
                ..ProjectionPolicy::default()
            }),
            ..stratified_policy(0.0)
        };
        assert_eq!(
            plan(&targets, &no_window),
            Err(PlanError::InvalidPolicy(
                "projection window_seconds must be a finite, positive number".into()
            ))
        );
    }

    #[test]
    fn the_bake_covers_a_window_longer_than_the_caches() {
        let hourly = Policy {
            projection: Some(ProjectionPolicy {
                window_seconds: 3600.0,
                ..ProjectionPolicy::default()
            }),
            ..stratified_policy(1200.0)
        };
        let plan = plan(&[target("p", 10, false)], &hourly).expect("valid policy");
        assert_eq!(plan.waves[0].bake_seconds, 300.0 + 3600.0);
    }
}
