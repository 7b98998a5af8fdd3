//! Load projection: the change's measured demand per admitted node, projected to the full size
//! of every cluster it has not fully reached, for every resource it can exhaust, and compared
//! with that cluster's headroom.
//!
//! Two fits per resource over the measured points (cluster size `N`, demand per admitted node
//! `k`):
//! - **linear**: total demand grows linearly with nodes, `d(N) = N · max(k)`;
//! - **quadratic**: the demand per node grows with cluster size (every node reads cluster-wide
//!   state), `k(N) = α + β·N` by least squares, so `d(N) = N · (α + β·N)`. It needs two
//!   distinct sizes — which is why the planner puts the largest clusters in the first production
//!   wave at a small node fraction.
//!
//! The worse of the two wins. The demand of each resource is what [`crate::window`] measured: the
//! mean for CPU, the peak for memory and seats.

use serde::{Deserialize, Serialize};

use crate::cluster::{ClusterId, Resource, Resources};

/// When and how strictly to project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectionPolicy {
    /// A cluster may be projected to use at most this fraction of each resource's capacity,
    /// including what it already uses without the change.
    pub max_utilization: f64,
    /// Seconds after a wave's steps are carried out before its measurements count (agents still
    /// starting).
    pub settle_seconds: f64,
    /// Seconds of readings the change's demand is measured over before a wave may pass: at least
    /// the longest period of the change's calls (its poll or resync interval), so that a change
    /// calling once an hour is measured over an hour. Declared, not learned: a period cannot be
    /// learned from a window too short to see it twice. Every wave bakes at least
    /// `settle_seconds + window_seconds`.
    pub window_seconds: f64,
}

impl Default for ProjectionPolicy {
    fn default() -> Self {
        Self {
            max_utilization: 0.7,
            settle_seconds: 300.0,
            // Twenty minutes: covers changes that call every few seconds up to every twenty
            // minutes, and with the settle time fits the 25-minute bake a 20-minute DNS cache
            // lifetime asks for anyway. A policy choice, not a measurement.
            window_seconds: 1200.0,
        }
    }
}

/// One measured point of one resource: the change's demand in a cluster of `cluster_nodes`
/// nodes, of which `admitted_nodes` run it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub cluster_nodes: u32,
    pub admitted_nodes: f64,
    pub demand: f64,
}

impl Sample {
    fn per_node(&self) -> f64 {
        self.demand / self.admitted_nodes
    }
}

/// Which fit produced a projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fit {
    Linear,
    Quadratic,
}

/// A projected overload: the change at full size would need more of `resource` than the cluster
/// has left. Amounts are in the resource's [unit](Resource::unit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    pub cluster: ClusterId,
    pub resource: Resource,
    pub projected: f64,
    pub headroom: f64,
    pub fit: Fit,
}

impl std::fmt::Display for Projection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (scale, unit) = match self.resource {
            Resource::Memory => (1.0 / f64::from(1u32 << 30), "GiB"),
            r => (1.0, r.unit()),
        };
        let fit = match self.fit {
            Fit::Linear => "linear",
            Fit::Quadratic => "quadratic",
        };
        write!(
            f,
            "{} would need {:.0} {unit} ({fit} fit) against {:.0} {unit} of headroom",
            self.resource,
            self.projected * scale,
            self.headroom * scale
        )
    }
}

/// The two fits over a set of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fits {
    /// Largest measured demand per node.
    pub linear_per_node: f64,
    /// `(α, β)` of `k(N) = α + β·N`; `None` until two distinct cluster sizes are measured.
    pub quadratic: Option<(f64, f64)>,
}

impl Fits {
    /// Fits the samples with an admitted node or more; `None` if there are none.
    #[must_use]
    pub fn new(samples: &[Sample]) -> Option<Self> {
        let points: Vec<(f64, f64)> = samples
            .iter()
            .filter(|s| s.admitted_nodes >= 1.0 && s.demand.is_finite())
            .map(|s| (f64::from(s.cluster_nodes), s.per_node()))
            .collect();
        if points.is_empty() {
            return None;
        }
        let linear_per_node = points.iter().map(|p| p.1).fold(0.0, f64::max);
        #[allow(clippy::cast_precision_loss)] // a handful of clusters
        let n = points.len() as f64;
        let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
        let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
        let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
        let quadratic = (sxx > 0.0).then(|| {
            let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
            let beta = (sxy / sxx).max(0.0);
            (mean_y - beta * mean_x, beta)
        });
        Some(Self {
            linear_per_node,
            quadratic,
        })
    }

    /// Projected demand of the change on every node of a cluster of `nodes` nodes, and the fit
    /// that gave it (the worse of the two).
    #[must_use]
    pub fn project(&self, nodes: u32) -> (f64, Fit) {
        let n = f64::from(nodes);
        let linear = n * self.linear_per_node;
        match self.quadratic {
            Some((alpha, beta)) if n * (alpha + beta * n) > linear => {
                (n * (alpha + beta * n), Fit::Quadratic)
            }
            _ => (linear, Fit::Linear),
        }
    }
}

/// A cluster the change has measured demand in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measured {
    pub cluster_nodes: u32,
    pub admitted_nodes: f64,
    pub demand: Resources,
}

/// A cluster the change has not fully reached, with what it has left of each resource.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub cluster: ClusterId,
    pub nodes: u32,
    pub headroom: Resources,
}

/// Of every resource and candidate, the overload the measurements project worst (by projected
/// demand over headroom), if any.
#[must_use]
pub fn worst_overload(measured: &[Measured], candidates: &[Candidate]) -> Option<Projection> {
    let mut worst: Option<(f64, Projection)> = None;
    for resource in Resource::ALL {
        let samples: Vec<Sample> = measured
            .iter()
            .map(|m| Sample {
                cluster_nodes: m.cluster_nodes,
                admitted_nodes: m.admitted_nodes,
                demand: m.demand.get(resource),
            })
            .collect();
        let Some(fits) = Fits::new(&samples) else {
            continue;
        };
        for c in candidates {
            let (projected, fit) = fits.project(c.nodes);
            let headroom = c.headroom.get(resource);
            let ratio = projected / headroom.max(f64::MIN_POSITIVE);
            if projected > headroom && worst.as_ref().is_none_or(|(w, _)| ratio > *w) {
                let projection = Projection {
                    cluster: c.cluster,
                    resource,
                    projected,
                    headroom,
                    fit,
                };
                worst = Some((ratio, projection));
            }
        }
    }
    worst.map(|(_, p)| p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_per_node_cost_projects_linearly() {
        let samples = [
            Sample {
                cluster_nodes: 50,
                admitted_nodes: 50.0,
                demand: 0.5,
            },
            Sample {
                cluster_nodes: 5000,
                admitted_nodes: 50.0,
                demand: 0.5,
            },
        ];
        let fits = Fits::new(&samples).expect("samples");
        let (cores, fit) = fits.project(5000);
        assert!((cores - 50.0).abs() < 1e-9);
        assert_eq!(fit, Fit::Linear);
    }

    #[test]
    fn size_dependent_cost_projects_quadratically() {
        // k(N) = 1e-5 · N: every node reads the whole cluster.
        let samples = [
            Sample {
                cluster_nodes: 40,
                admitted_nodes: 40.0,
                demand: 40.0 * 4e-4,
            },
            Sample {
                cluster_nodes: 4000,
                admitted_nodes: 40.0,
                demand: 40.0 * 4e-2,
            },
        ];
        let fits = Fits::new(&samples).expect("samples");
        let (cores, fit) = fits.project(5000);
        assert_eq!(fit, Fit::Quadratic);
        assert!((cores - 250.0).abs() < 1e-6, "{cores}");
    }

    #[test]
    fn one_size_gives_only_the_linear_fit() {
        let samples = [Sample {
            cluster_nodes: 40,
            admitted_nodes: 40.0,
            demand: 0.4,
        }];
        let fits = Fits::new(&samples).expect("samples");
        assert_eq!(fits.quadratic, None);
        assert!(
            Fits::new(&[Sample {
                cluster_nodes: 40,
                admitted_nodes: 0.0,
                demand: 0.0
            }])
            .is_none()
        );
    }
}
