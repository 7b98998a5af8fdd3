//! The fleet file of `fleetwatch rollout`: the clusters a change rolls out to and how to reach
//! each. It is `fleetwatch sim --fleet`'s format wherever the meaning is the same (`name`,
//! `staging`, `nodes`, `api_servers`), so a user simulates the fleet they roll out to, with the
//! keys only a rollout needs (`kubeconfig`, `context`, `region`), which the simulator accepts and
//! ignores. Node counts are discovered live; a `nodes` given here is only a hint.
//!
//! ```yaml
//! clusters:
//!   - name: staging-eu
//!     kubeconfig: kubeconfigs/staging-eu.yaml   # relative to this file, or ~/…, or absolute
//!     context: admin@staging-eu                 # optional: the kubeconfig's current context
//!     staging: true                             # the staging tier gets the change first
//!     region: eu-west-1                         # optional, shown in plans
//!   - name: prod-us-gpu
//!     kubeconfig: /etc/fleetwatch/prod-us-gpu.yaml
//!     api_servers: {replicas: 3, cores_per_replica: 32, memory_gib_per_replica: 128}
//! ```

use std::collections::BTreeSet;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::change::Location;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("{at}: {reason}")]
    Parse { at: Location, reason: String },
    #[error("{file}: {reason}")]
    Invalid { file: PathBuf, reason: String },
}

/// One cluster of the fleet.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetCluster {
    pub name: String,
    /// Resolved against the fleet file's directory (and `~/` against `$HOME`).
    pub kubeconfig: PathBuf,
    /// The kubeconfig's context; its current context when `None`.
    pub context: Option<String>,
    pub staging: bool,
    pub region: Option<String>,
    /// The node count the file states, if any; the rollout uses the live count.
    pub nodes_hint: Option<u32>,
    /// The control plane's size, if stated (it cannot be discovered through the API).
    pub api_servers: Option<ApiServers>,
}

#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiServers {
    pub replicas: NonZeroU32,
    pub cores_per_replica: f64,
    pub memory_gib_per_replica: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetFile {
    /// The simulator's node-local DNS model; a rollout measures DNS instead.
    #[serde(default, rename = "dns")]
    _dns: Option<serde::de::IgnoredAny>,
    clusters: Vec<ClusterFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterFile {
    name: String,
    kubeconfig: String,
    #[serde(default)]
    context: Option<String>,
    #[serde(default)]
    staging: bool,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    nodes: Option<NonZeroU32>,
    #[serde(default)]
    api_servers: Option<ApiServers>,
    /// The simulator's pods per node; a rollout does not need it.
    #[serde(default, rename = "pods_per_node")]
    _pods_per_node: Option<NonZeroU32>,
    #[serde(default, rename = "count")]
    _count: Option<NotForRollout>,
}

/// `count` replicates a simulated cluster; refused while parsing, so the error has the line
/// and column of the cluster's entry.
struct NotForRollout;

impl<'de> Deserialize<'de> for NotForRollout {
    fn deserialize<D: serde::Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "`count` replicates a simulated cluster; a rollout lists each cluster with its own \
             kubeconfig",
        ))
    }
}

/// Reads the fleet file at `path`.
///
/// # Errors
/// [`FleetError`] with the file (and line and column where the YAML says it).
pub fn load(path: &Path) -> Result<Vec<FleetCluster>, FleetError> {
    let text = std::fs::read_to_string(path).map_err(|e| FleetError::Invalid {
        file: path.to_owned(),
        reason: format!("cannot be read: {e}"),
    })?;
    let home = std::env::var_os("HOME").map(PathBuf::from);
    parse(path, &text, home.as_deref())
}

/// The fleet written in `text` (the contents of `path`); `home` resolves `~/` paths.
///
/// # Errors
/// As [`load`].
pub fn parse(
    path: &Path,
    text: &str,
    home: Option<&Path>,
) -> Result<Vec<FleetCluster>, FleetError> {
    let file: FleetFile = serde_yaml_ng::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        let mut reason = e.to_string();
        // The library appends the position, which the location already says.
        if let Some(i) = reason.find(" at line ") {
            reason.truncate(i);
        }
        FleetError::Parse {
            at: Location {
                file: path.to_owned(),
                line,
                column,
            },
            reason,
        }
    })?;
    let invalid = |reason: String| FleetError::Invalid {
        file: path.to_owned(),
        reason,
    };
    if file.clusters.is_empty() {
        return Err(invalid(
            "`clusters` is empty: list at least one cluster".to_owned(),
        ));
    }
    let base = path.parent().unwrap_or_else(|| Path::new("."));
    let mut names = BTreeSet::new();
    let mut clusters = Vec::with_capacity(file.clusters.len());
    for c in file.clusters {
        if !names.insert(c.name.clone()) {
            return Err(invalid(format!(
                "two clusters are named `{}`: names must be unique",
                c.name
            )));
        }
        if let Some(a) = &c.api_servers {
            check_api_servers(&c.name, a).map_err(invalid)?;
        }
        let kubeconfig = resolve(base, home, &c.kubeconfig)
            .map_err(|reason| invalid(format!("cluster `{}`: kubeconfig {reason}", c.name)))?;
        clusters.push(FleetCluster {
            name: c.name,
            kubeconfig,
            context: c.context,
            staging: c.staging,
            region: c.region,
            nodes_hint: c.nodes.map(NonZeroU32::get),
            api_servers: c.api_servers,
        });
    }
    if !clusters.iter().any(|c| !c.staging) {
        return Err(invalid(
            "every cluster is `staging: true`: a rollout needs at least one production cluster"
                .to_owned(),
        ));
    }
    Ok(clusters)
}

fn check_api_servers(cluster: &str, a: &ApiServers) -> Result<(), String> {
    for (field, value) in [
        ("cores_per_replica", a.cores_per_replica),
        ("memory_gib_per_replica", a.memory_gib_per_replica),
    ] {
        if !(value.is_finite() && value > 0.0) {
            return Err(format!(
                "cluster `{cluster}`: api_servers.{field} is {value}; expected a positive number"
            ));
        }
    }
    Ok(())
}

/// `kubeconfig` as a path: `~/…` under `home`, a relative path under the fleet file's `base`.
fn resolve(base: &Path, home: Option<&Path>, kubeconfig: &str) -> Result<PathBuf, String> {
    if kubeconfig.is_empty() {
        return Err("is empty".to_owned());
    }
    if let Some(rest) = kubeconfig.strip_prefix("~/") {
        let home = home.ok_or("starts with ~/ but $HOME is not set")?;
        return Ok(home.join(rest));
    }
    if kubeconfig.starts_with('~') {
        return Err(format!(
            "`{kubeconfig}`: only ~/ (your own home) is expanded"
        ));
    }
    Ok(base.join(kubeconfig))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const FLEET: &str = "\
dns: {refresh_seconds: 30, stale_lifetime_minutes: 20}
clusters:
  - name: staging
    kubeconfig: kubeconfigs/staging.yaml
    staging: true
    nodes: 20
    pods_per_node: 30
  - name: large
    kubeconfig: ~/large.yaml
    context: admin@large
    region: eu-west-1
    api_servers: {replicas: 3, cores_per_replica: 8, memory_gib_per_replica: 32}
  - name: small
    kubeconfig: /etc/fleetwatch/small.yaml
";

    fn fleet(text: &str) -> Result<Vec<FleetCluster>, FleetError> {
        parse(
            Path::new("/fleets/fleet.yaml"),
            text,
            Some(Path::new("/home/u")),
        )
    }

    #[test]
    fn clusters_resolve_their_kubeconfigs_and_keep_the_simulators_keys() {
        let clusters = fleet(FLEET).expect("a valid fleet");
        let paths: Vec<_> = clusters.iter().map(|c| c.kubeconfig.clone()).collect();
        assert_eq!(
            paths,
            [
                PathBuf::from("/fleets/kubeconfigs/staging.yaml"),
                PathBuf::from("/home/u/large.yaml"),
                PathBuf::from("/etc/fleetwatch/small.yaml"),
            ]
        );
        assert!(clusters[0].staging && !clusters[1].staging);
        assert_eq!(clusters[0].nodes_hint, Some(20));
        assert_eq!(clusters[1].context.as_deref(), Some("admin@large"));
        assert_eq!(clusters[1].region.as_deref(), Some("eu-west-1"));
        assert_eq!(clusters[1].api_servers.map(|a| a.replicas.get()), Some(3));
    }

    #[test]
    fn the_simulators_example_fleet_file_is_refused_for_want_of_kubeconfigs() {
        let example = include_str!("../../../examples/fleet.yaml");
        match fleet(example) {
            Err(FleetError::Parse { at, reason }) => {
                assert!(reason.contains("kubeconfig"), "{at}: {reason}");
            }
            other => panic!("a fleet without kubeconfigs: {other:?}"),
        }
    }

    #[test]
    fn mistakes_are_located_or_named() {
        let cases: [(&str, &str, &str); 5] = [
            (
                "clusters:\n  - name: a\n    kubeconfig: k\n    cont3xt: x\n",
                "4:5",
                "unknown field `cont3xt`",
            ),
            (
                "clusters:\n  - name: a\n",
                "2:5",
                "missing field `kubeconfig`",
            ),
            // A custom refusal is placed at its cluster's entry, and names it.
            (
                "clusters:\n  - name: a\n    kubeconfig: k\n    count: 3\n",
                "2:5",
                "clusters[0]: `count` replicates",
            ),
            (
                "clusters:\n  - name: a\n    kubeconfig: k\n    nodes: 0\n",
                "4:12",
                "nonzero",
            ),
            ("clusters: [\n", "2:1", ""),
        ];
        for (text, position, words) in cases {
            match fleet(text) {
                Err(FleetError::Parse { at, reason }) => {
                    assert_eq!(
                        at.to_string(),
                        format!("/fleets/fleet.yaml:{position}"),
                        "{reason}"
                    );
                    assert!(reason.contains(words), "{reason}");
                }
                other => panic!("{text:?} gave {other:?}"),
            }
        }
        let named = [
            ("clusters: []\n", "is empty"),
            (
                "clusters:\n  - {name: a, kubeconfig: k}\n  - {name: a, kubeconfig: j}\n",
                "two clusters are named `a`",
            ),
            (
                "clusters:\n  - {name: a, kubeconfig: k, staging: true}\n",
                "at least one production cluster",
            ),
            (
                "clusters:\n  - {name: a, kubeconfig: '~bob/k'}\n",
                "only ~/",
            ),
            (
                "clusters:\n  - {name: a, kubeconfig: k, api_servers: {replicas: 1, cores_per_replica: 0, memory_gib_per_replica: 4}}\n",
                "api_servers.cores_per_replica is 0",
            ),
        ];
        for (text, words) in named {
            match fleet(text) {
                Err(FleetError::Invalid { file, reason }) => {
                    assert_eq!(file, PathBuf::from("/fleets/fleet.yaml"));
                    assert!(reason.contains(words), "{reason}");
                }
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }

    proptest! {
        /// Whatever the file holds, parsing answers without panicking, and a located error is
        /// within the file.
        #[test]
        fn any_text_is_answered(text in "(clusters:\n|  - name: a\n|    kubeconfig: k\n|    staging: true\n|[ -~]{0,10}\n){0,10}") {
            let lines = text.lines().count().max(1);
            if let Err(FleetError::Parse { at, .. }) = fleet(&text) {
                prop_assert!(at.line >= 1 && at.line <= lines + 1);
            }
        }
    }
}
