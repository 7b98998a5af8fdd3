//! What is simulated: the fleet's clusters, their DNS caches, and the change being rolled out.

use serde::{Deserialize, Serialize};

/// Clusters of at least this many nodes are "large" in summaries.
pub const LARGE_CLUSTER_NODES: u32 = 1000;

/// Size classes used in reports: small (< 200 nodes), medium (< 1000), large.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SizeClass {
    Small,
    Medium,
    Large,
}

impl SizeClass {
    pub const ALL: [SizeClass; 3] = [SizeClass::Small, SizeClass::Medium, SizeClass::Large];

    #[must_use]
    pub fn of(nodes: u32) -> Self {
        match nodes {
            n if n >= LARGE_CLUSTER_NODES => SizeClass::Large,
            n if n >= 200 => SizeClass::Medium,
            _ => SizeClass::Small,
        }
    }

    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            SizeClass::Small => "small (<200 nodes)",
            SizeClass::Medium => "medium (200-999)",
            SizeClass::Large => "large (≥1000)",
        }
    }
}

/// A cluster's control plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiServerSpec {
    pub replicas: u32,
    pub cores_per_replica: f64,
    pub memory_bytes_per_replica: f64,
}

impl ApiServerSpec {
    /// What a managed control plane typically gets for a cluster of `nodes` nodes: three
    /// replicas, growing in size with the cluster.
    #[must_use]
    pub fn for_nodes(nodes: u32) -> Self {
        let (cores, gib) = match nodes {
            0..=100 => (4.0, 16.0),
            101..=500 => (8.0, 32.0),
            501..=2000 => (16.0, 64.0),
            _ => (32.0, 128.0),
        };
        Self {
            replicas: 3,
            cores_per_replica: cores,
            memory_bytes_per_replica: gib * GIB,
        }
    }

    /// CPU of the whole control plane, in cores.
    #[must_use]
    pub fn total_cores(&self) -> f64 {
        f64::from(self.replicas) * self.cores_per_replica
    }
}

/// Bytes in a GiB.
pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// One cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSpec {
    pub name: String,
    pub nodes: u32,
    pub pods_per_node: u32,
    pub staging: bool,
    pub api: ApiServerSpec,
}

impl ClusterSpec {
    /// A cluster with default pods per node (30) and a default control plane for its size.
    #[must_use]
    pub fn new(name: impl Into<String>, nodes: u32, staging: bool) -> Self {
        Self {
            name: name.into(),
            nodes,
            pods_per_node: 30,
            staging,
            api: ApiServerSpec::for_nodes(nodes),
        }
    }

    #[must_use]
    pub fn pods(&self) -> f64 {
        f64::from(self.nodes) * f64::from(self.pods_per_node)
    }
}

/// Node-local DNS caches: each node refreshes every `refresh_seconds` (a miss goes to the control
/// plane) and keeps serving a stale record for `stale_lifetime_seconds` after its last success.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsSpec {
    pub refresh_seconds: f64,
    pub stale_lifetime_seconds: f64,
}

impl Default for DnsSpec {
    fn default() -> Self {
        Self {
            refresh_seconds: 30.0,
            stale_lifetime_seconds: 20.0 * 60.0,
        }
    }
}

/// The fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fleet {
    pub clusters: Vec<ClusterSpec>,
    pub dns: DnsSpec,
}

impl Fleet {
    #[must_use]
    pub fn total_nodes(&self) -> f64 {
        self.clusters.iter().map(|c| f64::from(c.nodes)).sum()
    }
}

/// How the change's per-node agent uses the API server (the load lab's client patterns).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "pattern", rename_all = "kebab-case")]
pub enum Pattern {
    /// Every node LISTs all pods cluster-wide every interval, without resourceVersion (from etcd
    /// on the API servers of 2024); retries a 429 after 1 s.
    NaiveList {
        interval_seconds: f64,
        timing: Timing,
    },
    /// Every node LISTs its own pods every interval from the watch cache (`resourceVersion=0`,
    /// `spec.nodeName` field selector): periodic, but its cost does not grow with the cluster.
    NodeList {
        interval_seconds: f64,
        timing: Timing,
    },
    /// Every node watches all pods cluster-wide (a LIST from the watch cache, then a watch).
    WatchAll,
    /// Every node watches its own pods (`spec.nodeName` field selector, served by the watch-cache
    /// index).
    WatchNode,
    /// fleetwatch: one budgeted collector per cluster scrapes the API servers; node agents read
    /// the kubelet and make no API request.
    Fleetwatch,
}

/// When the nodes of a periodic pattern make their calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Timing {
    /// Spread evenly over the interval (each node with its own jittered phase).
    #[default]
    Jittered,
    /// All at once, at every multiple of the interval since the run started (a cron schedule,
    /// or agents that all started together and never jitter).
    Synchronized,
}

/// The change being rolled out: a per-node agent (a DaemonSet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub name: String,
    pub pattern: Pattern,
}
