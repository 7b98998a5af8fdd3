//! `/stats/summary`: the subset of the Summary API (`k8s.io/kubelet/pkg/apis/stats/v1alpha1`)
//! the agent re-exposes, as the `fleetwatch_agent_{node,pod,container}_…` families listed in
//! the [kubelet module's doc](super).
//!
//! Only the fields read are declared; serde ignores the rest (CPU and memory are
//! `/metrics/resource`'s). Every statistic is optional in the API (`omitempty` pointers): a
//! missing one leaves its series out rather than writing a 0 that is not true. Lists the
//! kubelet may write as `null` (a nil Go slice) read as empty.

use fleetwatch_telemetry::page::Kind;
use serde::{Deserialize, Deserializer};

use super::{Failure, MAX_SAMPLES};
use crate::snapshot::{Family, LabelSet};

#[derive(Debug, Deserialize)]
struct Summary {
    node: NodeStats,
    #[serde(default, deserialize_with = "null_as_empty")]
    pods: Vec<PodStats>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeStats {
    node_name: String,
    fs: Option<FsStats>,
    runtime: Option<RuntimeStats>,
    rlimit: Option<RlimitStats>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeStats {
    image_fs: Option<FsStats>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FsStats {
    available_bytes: Option<u64>,
    capacity_bytes: Option<u64>,
    used_bytes: Option<u64>,
    inodes_free: Option<u64>,
    inodes: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct RlimitStats {
    maxpid: Option<i64>,
    curproc: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodStats {
    pod_ref: PodReference,
    #[serde(default, deserialize_with = "null_as_empty")]
    containers: Vec<ContainerStats>,
    network: Option<NetworkStats>,
    #[serde(default, rename = "volume", deserialize_with = "null_as_empty")]
    volumes: Vec<VolumeStats>,
    #[serde(rename = "ephemeral-storage")]
    ephemeral_storage: Option<FsStats>,
}

#[derive(Debug, Deserialize)]
struct PodReference {
    name: String,
    namespace: String,
    uid: String,
}

/// The pod's default interface, which the API inlines; `interfaces` (all of them) is not read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NetworkStats {
    rx_bytes: Option<u64>,
    tx_bytes: Option<u64>,
}

/// A volume's `FsStats` are inlined beside its name.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct VolumeStats {
    name: String,
    available_bytes: Option<u64>,
    capacity_bytes: Option<u64>,
    used_bytes: Option<u64>,
    pvc_ref: Option<PvcReference>,
}

#[derive(Debug, Deserialize)]
struct PvcReference {
    name: String,
}

#[derive(Debug, Deserialize)]
struct ContainerStats {
    name: String,
    rootfs: Option<FsStats>,
    logs: Option<FsStats>,
}

fn null_as_empty<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// The families, one per variant, in this order on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Series {
    NodeFsAvailable,
    NodeFsCapacity,
    NodeFsUsed,
    NodeFsInodesFree,
    NodeFsInodes,
    NodeImageFsAvailable,
    NodeImageFsCapacity,
    NodeImageFsUsed,
    NodeImageFsInodesFree,
    NodeImageFsInodes,
    NodeMaxPids,
    NodeProcesses,
    PodNetworkReceive,
    PodNetworkTransmit,
    PodEphemeralStorageUsed,
    PodVolumeUsed,
    PodVolumeCapacity,
    PodVolumeAvailable,
    ContainerRootfsUsed,
    ContainerLogsUsed,
}

impl Series {
    const ALL: [Series; 20] = [
        Series::NodeFsAvailable,
        Series::NodeFsCapacity,
        Series::NodeFsUsed,
        Series::NodeFsInodesFree,
        Series::NodeFsInodes,
        Series::NodeImageFsAvailable,
        Series::NodeImageFsCapacity,
        Series::NodeImageFsUsed,
        Series::NodeImageFsInodesFree,
        Series::NodeImageFsInodes,
        Series::NodeMaxPids,
        Series::NodeProcesses,
        Series::PodNetworkReceive,
        Series::PodNetworkTransmit,
        Series::PodEphemeralStorageUsed,
        Series::PodVolumeUsed,
        Series::PodVolumeCapacity,
        Series::PodVolumeAvailable,
        Series::ContainerRootfsUsed,
        Series::ContainerLogsUsed,
    ];

    /// Name, help, kind.
    fn spec(self) -> (&'static str, &'static str, Kind) {
        use Kind::{Counter, Gauge};
        match self {
            Series::NodeFsAvailable => (
                "fleetwatch_agent_node_fs_available_bytes",
                "Bytes available on the kubelet's node filesystem (nodefs)",
                Gauge,
            ),
            Series::NodeFsCapacity => (
                "fleetwatch_agent_node_fs_capacity_bytes",
                "Size of the kubelet's node filesystem (nodefs)",
                Gauge,
            ),
            Series::NodeFsUsed => (
                "fleetwatch_agent_node_fs_used_bytes",
                "Bytes used on the kubelet's node filesystem (nodefs)",
                Gauge,
            ),
            Series::NodeFsInodesFree => (
                "fleetwatch_agent_node_fs_inodes_free",
                "Free inodes of the kubelet's node filesystem (nodefs)",
                Gauge,
            ),
            Series::NodeFsInodes => (
                "fleetwatch_agent_node_fs_inodes",
                "Inodes of the kubelet's node filesystem (nodefs)",
                Gauge,
            ),
            Series::NodeImageFsAvailable => (
                "fleetwatch_agent_node_imagefs_available_bytes",
                "Bytes available on the container runtime's image filesystem (imagefs)",
                Gauge,
            ),
            Series::NodeImageFsCapacity => (
                "fleetwatch_agent_node_imagefs_capacity_bytes",
                "Size of the container runtime's image filesystem (imagefs)",
                Gauge,
            ),
            Series::NodeImageFsUsed => (
                "fleetwatch_agent_node_imagefs_used_bytes",
                "Bytes the container runtime's images use on their filesystem (imagefs)",
                Gauge,
            ),
            Series::NodeImageFsInodesFree => (
                "fleetwatch_agent_node_imagefs_inodes_free",
                "Free inodes of the container runtime's image filesystem (imagefs)",
                Gauge,
            ),
            Series::NodeImageFsInodes => (
                "fleetwatch_agent_node_imagefs_inodes",
                "Inodes of the container runtime's image filesystem (imagefs)",
                Gauge,
            ),
            Series::NodeMaxPids => (
                "fleetwatch_agent_node_rlimit_max_pids",
                "The node's process ID limit, as the kubelet sees it (rlimit.maxpid)",
                Gauge,
            ),
            Series::NodeProcesses => (
                "fleetwatch_agent_node_rlimit_processes",
                "Processes running on the node, as the kubelet counts them (rlimit.curproc)",
                Gauge,
            ),
            Series::PodNetworkReceive => (
                "fleetwatch_agent_pod_network_receive_bytes_total",
                "Bytes the pod received on its default interface",
                Counter,
            ),
            Series::PodNetworkTransmit => (
                "fleetwatch_agent_pod_network_transmit_bytes_total",
                "Bytes the pod sent on its default interface",
                Counter,
            ),
            Series::PodEphemeralStorageUsed => (
                "fleetwatch_agent_pod_ephemeral_storage_used_bytes",
                "Ephemeral storage the pod uses (container layers, logs, emptyDir volumes)",
                Gauge,
            ),
            Series::PodVolumeUsed => (
                "fleetwatch_agent_pod_volume_used_bytes",
                "Bytes used on a pod's volume",
                Gauge,
            ),
            Series::PodVolumeCapacity => (
                "fleetwatch_agent_pod_volume_capacity_bytes",
                "Size of a pod's volume",
                Gauge,
            ),
            Series::PodVolumeAvailable => (
                "fleetwatch_agent_pod_volume_available_bytes",
                "Bytes available on a pod's volume",
                Gauge,
            ),
            Series::ContainerRootfsUsed => (
                "fleetwatch_agent_container_rootfs_used_bytes",
                "Bytes a container's writable layer uses",
                Gauge,
            ),
            Series::ContainerLogsUsed => (
                "fleetwatch_agent_container_logs_used_bytes",
                "Bytes a container's logs use",
                Gauge,
            ),
        }
    }
}

/// The families being filled, indexed by [`Series`], and how many samples they hold.
struct Families {
    families: Vec<Family>,
    samples: usize,
}

impl Families {
    fn new() -> Families {
        let families = Series::ALL
            .iter()
            .map(|series| {
                let (name, help, kind) = series.spec();
                Family::new(name, help, kind)
            })
            .collect();
        Families {
            families,
            samples: 0,
        }
    }

    /// Adds a sample if the kubelet gave the value.
    fn push<V: Into<Option<f64>>>(
        &mut self,
        series: Series,
        labels: &LabelSet,
        value: V,
    ) -> Result<(), Failure> {
        let Some(value) = value.into() else {
            return Ok(());
        };
        self.samples += 1;
        if self.samples > MAX_SAMPLES {
            return Err(Failure::new(
                "too_many_samples",
                format!("more than {MAX_SAMPLES} summary samples"),
            ));
        }
        if let Some(family) = self.families.get_mut(series as usize) {
            family.push(labels.clone(), value);
        }
        Ok(())
    }

    /// The five series of a filesystem.
    fn fs(&mut self, series: [Series; 5], labels: &LabelSet, fs: &FsStats) -> Result<(), Failure> {
        let [available, capacity, used, inodes_free, inodes] = series;
        self.push(available, labels, float(fs.available_bytes))?;
        self.push(capacity, labels, float(fs.capacity_bytes))?;
        self.push(used, labels, float(fs.used_bytes))?;
        self.push(inodes_free, labels, float(fs.inodes_free))?;
        self.push(inodes, labels, float(fs.inodes))
    }
}

fn float(value: Option<u64>) -> Option<f64> {
    value.map(|v| v as f64)
}

/// The families of a summary body, each sample labelled `node`. Fails on a body that is not a
/// Summary, a summary of another node, or more than [`MAX_SAMPLES`] samples.
pub fn families(body: &[u8], node: &str) -> Result<Vec<Family>, Failure> {
    let summary: Summary = serde_json::from_slice(body)
        .map_err(|e| Failure::new("parse", format!("not a stats summary: {e}")))?;
    if summary.node.node_name != node {
        return Err(Failure::new(
            "wrong_node",
            format!(
                "the summary is node {:?}'s, not {node:?}'s: --kubelet is another node's kubelet",
                summary.node.node_name
            ),
        ));
    }
    let mut families = Families::new();
    node_series(&mut families, &summary.node, node)?;
    for pod in &summary.pods {
        pod_series(&mut families, pod, node)?;
    }
    Ok(families.families)
}

fn node_series(families: &mut Families, stats: &NodeStats, node: &str) -> Result<(), Failure> {
    let labels = LabelSet::of([("node", node)]);
    if let Some(fs) = &stats.fs {
        use Series::*;
        let series = [
            NodeFsAvailable,
            NodeFsCapacity,
            NodeFsUsed,
            NodeFsInodesFree,
            NodeFsInodes,
        ];
        families.fs(series, &labels, fs)?;
    }
    if let Some(fs) = stats.runtime.as_ref().and_then(|r| r.image_fs.as_ref()) {
        use Series::*;
        let series = [
            NodeImageFsAvailable,
            NodeImageFsCapacity,
            NodeImageFsUsed,
            NodeImageFsInodesFree,
            NodeImageFsInodes,
        ];
        families.fs(series, &labels, fs)?;
    }
    if let Some(rlimit) = &stats.rlimit {
        families.push(
            Series::NodeMaxPids,
            &labels,
            rlimit.maxpid.map(|v| v as f64),
        )?;
        families.push(
            Series::NodeProcesses,
            &labels,
            rlimit.curproc.map(|v| v as f64),
        )?;
    }
    Ok(())
}

fn pod_series(families: &mut Families, pod: &PodStats, node: &str) -> Result<(), Failure> {
    let reference = &pod.pod_ref;
    let labels = LabelSet::of([
        ("node", node),
        ("namespace", &reference.namespace),
        ("pod", &reference.name),
        ("uid", &reference.uid),
    ]);
    if let Some(network) = &pod.network {
        families.push(Series::PodNetworkReceive, &labels, float(network.rx_bytes))?;
        families.push(Series::PodNetworkTransmit, &labels, float(network.tx_bytes))?;
    }
    let ephemeral = pod.ephemeral_storage.as_ref().and_then(|fs| fs.used_bytes);
    families.push(Series::PodEphemeralStorageUsed, &labels, float(ephemeral))?;
    for volume in &pod.volumes {
        let mut labels = with(&labels, "volume", &volume.name);
        if let Some(pvc) = &volume.pvc_ref {
            labels.0.push(("persistentvolumeclaim", pvc.name.clone()));
        }
        families.push(Series::PodVolumeUsed, &labels, float(volume.used_bytes))?;
        families.push(
            Series::PodVolumeCapacity,
            &labels,
            float(volume.capacity_bytes),
        )?;
        families.push(
            Series::PodVolumeAvailable,
            &labels,
            float(volume.available_bytes),
        )?;
    }
    for container in &pod.containers {
        let labels = with(&labels, "container", &container.name);
        let used = |fs: &Option<FsStats>| float(fs.as_ref().and_then(|fs| fs.used_bytes));
        families.push(
            Series::ContainerRootfsUsed,
            &labels,
            used(&container.rootfs),
        )?;
        families.push(Series::ContainerLogsUsed, &labels, used(&container.logs))?;
    }
    Ok(())
}

/// `labels` and one more.
fn with(labels: &LabelSet, name: &'static str, value: &str) -> LabelSet {
    let mut labels = labels.clone();
    labels.0.push((name, value.to_owned()));
    labels
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/kubelet/stats-summary.json");
    const NODE: &str = "node-7";

    fn family<'f>(families: &'f [Family], name: &str) -> &'f Family {
        families
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no family {name}"))
    }

    #[test]
    fn the_fixture_gives_every_series() {
        let families = families(FIXTURE.as_bytes(), NODE).expect("the fixture");
        for f in &families {
            assert!(!f.samples.is_empty(), "{} is empty", f.name);
        }
        let used = family(&families, "fleetwatch_agent_node_fs_used_bytes");
        assert_eq!(
            used.samples,
            [(LabelSet::of([("node", NODE)]), 23_484_452_864.0)]
        );
        let network = family(
            &families,
            "fleetwatch_agent_pod_network_receive_bytes_total",
        );
        assert_eq!(
            network.samples.len(),
            2,
            "kube-proxy's pod is on the host's network"
        );
        let volumes = family(&families, "fleetwatch_agent_pod_volume_used_bytes");
        let pvc = volumes
            .samples
            .iter()
            .find(|(labels, _)| labels.0.iter().any(|l| l.0 == "persistentvolumeclaim"))
            .expect("a PVC's volume");
        assert_eq!(
            pvc.0,
            LabelSet::of([
                ("node", NODE),
                ("namespace", "payments"),
                ("pod", "postgres-0"),
                ("uid", "0f3c54d2-6a4e-4b8e-9a51-2f7c1d9e8b30"),
                ("volume", "data"),
                ("persistentvolumeclaim", "data-postgres-0"),
            ])
        );
        let rootfs = family(&families, "fleetwatch_agent_container_rootfs_used_bytes");
        assert_eq!(rootfs.samples.len(), 4);
    }

    #[test]
    fn missing_fields_leave_series_out_and_nulls_are_empty() {
        let body = json!({
            "node": {"nodeName": NODE, "fs": {"usedBytes": 5}, "runtime": {}},
            "pods": [{
                "podRef": {"name": "a", "namespace": "n", "uid": "u"},
                "containers": null,
                "volume": [{"name": "v", "capacityBytes": 9}],
                "network": {"name": "eth0", "interfaces": []},
                "unknown": {"x": [1, 2]},
            }],
        });
        let families = families(body.to_string().as_bytes(), NODE).expect("a summary");
        let counts: Vec<(&str, usize)> = families
            .iter()
            .filter(|f| !f.samples.is_empty())
            .map(|f| (f.name, f.samples.len()))
            .collect();
        assert_eq!(
            counts,
            [
                ("fleetwatch_agent_node_fs_used_bytes", 1),
                ("fleetwatch_agent_pod_volume_capacity_bytes", 1)
            ]
        );
        let no_pods = json!({"node": {"nodeName": NODE}, "pods": null}).to_string();
        assert!(families_ok(&no_pods));
    }

    fn families_ok(body: &str) -> bool {
        families(body.as_bytes(), NODE).is_ok()
    }

    #[test]
    fn another_nodes_summary_or_a_wrong_shape_is_refused() {
        assert_eq!(
            families(FIXTURE.as_bytes(), "node-8")
                .expect_err("wrong node")
                .reason,
            "wrong_node"
        );
        for body in [
            "",
            "{}",
            "{\"node\": {\"nodeName\": 7}}",
            "{\"node\": {\"nodeName\": \"node-7\", \"fs\": {\"usedBytes\": -1}}}",
            &FIXTURE[..FIXTURE.len() / 2],
        ] {
            assert_eq!(
                families(body.as_bytes(), NODE).expect_err(body).reason,
                "parse"
            );
        }
    }

    #[test]
    fn too_many_samples_are_refused() {
        let pods: Vec<Value> = (0..MAX_SAMPLES / 2 + 1)
            .map(|i| {
                json!({"podRef": {"name": format!("p{i}"), "namespace": "n", "uid": "u"},
                            "network": {"rxBytes": 1, "txBytes": 1}})
            })
            .collect();
        let body = json!({"node": {"nodeName": NODE}, "pods": pods}).to_string();
        assert_eq!(
            families(body.as_bytes(), NODE)
                .expect_err("too many")
                .reason,
            "too_many_samples"
        );
    }

    /// Any JSON value, up to a small depth, with the Summary's own keys likely.
    fn json_value() -> impl Strategy<Value = Value> {
        let key = prop::sample::select(vec![
            "node",
            "nodeName",
            "pods",
            "podRef",
            "name",
            "namespace",
            "uid",
            "fs",
            "runtime",
            "imageFs",
            "rlimit",
            "maxpid",
            "curproc",
            "usedBytes",
            "capacityBytes",
            "availableBytes",
            "inodes",
            "inodesFree",
            "network",
            "rxBytes",
            "txBytes",
            "volume",
            "pvcRef",
            "containers",
            "rootfs",
            "logs",
            "ephemeral-storage",
        ]);
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            Just(Value::from(NODE)),
            "[a-z]{0,3}".prop_map(Value::from),
        ];
        leaf.prop_recursive(5, 64, 6, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
                prop::collection::btree_map(key.clone(), inner, 0..6).prop_map(|m| Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
                )),
            ]
        })
    }

    proptest! {
        #[test]
        fn the_parser_never_panics_on_any_bytes(body in any::<Vec<u8>>()) {
            let _ = families(&body, NODE);
        }

        #[test]
        fn the_parser_never_panics_on_any_json(value in json_value()) {
            let body = json!({"node": {"nodeName": NODE}, "pods": [value.clone()]}).to_string();
            let _ = families(body.as_bytes(), NODE);
            let _ = families(value.to_string().as_bytes(), NODE);
        }

        #[test]
        fn the_parser_never_panics_on_a_damaged_fixture(at in 0..FIXTURE.len(), byte in any::<u8>()) {
            let mut body = FIXTURE.as_bytes().to_vec();
            body[at] = byte;
            let _ = families(&body, NODE);
            let _ = families(&body[..at], NODE);
        }
    }
}
