//! A sweep: every pattern at each cluster size, in one lab grown from the smallest size to the
//! largest (growing is cheaper than starting over, and each size keeps the objects of the last).

use crate::error::{LabError, Result};
use crate::{self as load, LoadReport, LoadSettings, LoadSpec, MAX_AGENTS, Pattern};
use fleetwatch_control_plane::ControlPlane;
use fleetwatch_control_plane::populate::{PopulateSpec, populate};

/// No sweep has more runs than this (sizes × patterns), so none goes on for days.
pub const MAX_RUNS: usize = 60;

/// What to sweep.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    /// Cluster sizes in nodes, run from smallest to largest.
    pub sizes: Vec<usize>,
    pub pods_per_node: usize,
    /// Patterns run at every size, in this order (put `idle` first: it is the baseline).
    pub patterns: Vec<Pattern>,
    pub settings: LoadSettings,
    /// Create requests in flight while growing the lab.
    pub populate_concurrency: usize,
}

/// What a sweep is doing, for progress output.
#[derive(Debug)]
pub enum Progress<'a> {
    /// Creating nodes and pods: `done` of `total` objects, growing to `nodes`.
    Growing {
        nodes: usize,
        done: usize,
        total: usize,
    },
    /// Run `run` of `runs` starts.
    Running {
        pattern: Pattern,
        nodes: usize,
        run: usize,
        runs: usize,
    },
    /// A run finished.
    Measured(&'a LoadReport),
}

impl SweepSpec {
    /// The sizes in the order they run (ascending, without repeats), checked against the
    /// bounds and against what the lab holds already (`existing` nodes).
    fn sizes(&self, existing: usize) -> Result<Vec<usize>> {
        let mut sizes = self.sizes.clone();
        sizes.sort_unstable();
        sizes.dedup();
        let invalid = |field, message: String| Err(LabError::invalid(field, message));
        match (sizes.first(), sizes.last()) {
            (None, _) | (_, None) => invalid(
                "sizes",
                "a sweep needs at least one cluster size".to_owned(),
            ),
            (Some(0), _) => invalid("sizes", "cluster sizes must be at least 1 node".to_owned()),
            (_, Some(&largest)) if largest > MAX_AGENTS => invalid(
                "sizes",
                format!("{largest} nodes is more than the load lab emulates ({MAX_AGENTS})"),
            ),
            (Some(&smallest), _) if smallest < existing => invalid(
                "sizes",
                format!(
                    "the lab already has {existing} synthetic nodes, more than the smallest size \
                 {smallest}; sweep in a fresh lab"
                ),
            ),
            _ if self.patterns.is_empty() => {
                invalid("pattern", "a sweep needs at least one pattern".to_owned())
            }
            _ if sizes.len() * self.patterns.len() > MAX_RUNS => invalid(
                "sizes",
                format!(
                    "{} sizes × {} patterns is more than {MAX_RUNS} runs",
                    sizes.len(),
                    self.patterns.len()
                ),
            ),
            _ => Ok(sizes),
        }
    }
}

/// Runs `spec` against `plane`, which holds no synthetic objects or those of a smaller
/// `lab up` with the same pods per node, and returns one report per run.
pub async fn sweep(
    plane: &ControlPlane,
    spec: &SweepSpec,
    on_progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<Vec<LoadReport>> {
    let (mut nodes, pods) = load::cluster_size(plane).await?;
    if pods != nodes * spec.pods_per_node {
        return Err(LabError::invalid(
            "pods_per_node",
            format!(
                "the lab holds {nodes} nodes and {pods} pods, not {} pods per node; sweep in a \
                 fresh lab",
                spec.pods_per_node
            ),
        ));
    }
    let sizes = spec.sizes(nodes)?;
    let runs = sizes.len() * spec.patterns.len();
    let admin = plane.admin_client().await?;
    let mut reports = Vec::with_capacity(runs);
    for size in sizes {
        let growth = PopulateSpec {
            first_node: nodes,
            concurrency: spec.populate_concurrency,
            ..PopulateSpec::new(size, spec.pods_per_node)
        };
        populate(&admin, &growth, &|done, total| {
            on_progress(Progress::Growing {
                nodes: size,
                done,
                total,
            });
        })
        .await?;
        nodes = size;
        for &pattern in &spec.patterns {
            load::quiesce(plane).await?;
            on_progress(Progress::Running {
                pattern,
                nodes,
                run: reports.len() + 1,
                runs,
            });
            let run = LoadSpec {
                pattern,
                agents: nodes,
                nodes,
                pods: growth.pods(),
                settings: spec.settings.clone(),
            };
            let report = load::run(plane, &run).await?;
            on_progress(Progress::Measured(&report));
            reports.push(report);
        }
    }
    Ok(reports)
}
