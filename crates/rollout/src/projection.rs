//! Load projection: the change's measured API cost per admitted node, projected to the full size
//! of every cluster it has not fully reached, and compared with that cluster's capacity.
//!
//! Two fits over the measured points (cluster size `N`, cost per admitted node `k`):
//! - **linear**: total cost grows linearly with nodes, `cost(N) = N · max(k)`;
//! - **quadratic**: the cost per node grows with cluster size (every node reads cluster-wide
//!   state), `k(N) = α + β·N` by least squares, so `cost(N) = N · (α + β·N)`. It needs two
//!   distinct sizes — which is why the planner puts the largest clusters in the first production
//!   wave at a small node fraction.
//!
//! The worse of the two wins.

use serde::{Deserialize, Serialize};

use crate::cluster::ClusterId;

/// When and how strictly to project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectionPolicy {
    /// A cluster may be projected to use at most this fraction of its API server CPU, including
    /// what it already uses without the change.
    pub max_utilization: f64,
    /// Seconds after a wave starts before its measurements count (agents still starting).
    pub settle_seconds: f64,
}

impl Default for ProjectionPolicy {
    fn default() -> Self {
        Self {
            max_utilization: 0.7,
            settle_seconds: 300.0,
        }
    }
}

/// One measured point: the change's API cost in a cluster of `cluster_nodes` nodes, of which
/// `admitted_nodes` run it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub cluster_nodes: u32,
    pub admitted_nodes: f64,
    /// CPU cores the change's requests cost the API servers (attributed by its flow schema).
    pub cost_cores: f64,
}

impl Sample {
    fn per_node(&self) -> f64 {
        self.cost_cores / self.admitted_nodes
    }
}

/// Which fit produced a projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fit {
    Linear,
    Quadratic,
}

/// A projected overload: the change at full size would need more than the cluster can give.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    pub cluster: ClusterId,
    pub projected_cores: f64,
    pub headroom_cores: f64,
    pub fit: Fit,
}

/// The two fits over a set of samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fits {
    /// Largest measured cost per node, in cores.
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
            .filter(|s| s.admitted_nodes >= 1.0 && s.cost_cores.is_finite())
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

    /// Projected cost in cores of the change on every node of a cluster of `nodes` nodes, and the
    /// fit that gave it (the worse of the two).
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_per_node_cost_projects_linearly() {
        let samples = [
            Sample {
                cluster_nodes: 50,
                admitted_nodes: 50.0,
                cost_cores: 0.5,
            },
            Sample {
                cluster_nodes: 5000,
                admitted_nodes: 50.0,
                cost_cores: 0.5,
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
                cost_cores: 40.0 * 4e-4,
            },
            Sample {
                cluster_nodes: 4000,
                admitted_nodes: 40.0,
                cost_cores: 40.0 * 4e-2,
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
            cost_cores: 0.4,
        }];
        let fits = Fits::new(&samples).expect("samples");
        assert_eq!(fits.quadratic, None);
        assert!(
            Fits::new(&[Sample {
                cluster_nodes: 40,
                admitted_nodes: 0.0,
                cost_cores: 0.0
            }])
            .is_none()
        );
    }
}
