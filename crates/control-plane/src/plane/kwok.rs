//! Fake nodes that behave like real ones to the control plane: kube-scheduler binds pods to them
//! and kwok plays their kubelets — it marks them Ready, keeps their Leases in `kube-node-lease`
//! fresh, reports their pods Running and Ready, and finishes deleting deleted pods — so the real
//! DaemonSet controller can roll out onto them. Nothing runs in a pod.
//!
//! The lab runs both with [`LabOptions::kwok`](super::LabOptions::kwok); the nodes are
//! [`populate`](crate::populate)'s with [`PopulateSpec::kwok`](crate::PopulateSpec::kwok).
//! kwok's behaviour is the Stage files beside this crate (`kwok/*-stages.yaml`).

use std::path::{Path, PathBuf};

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, Patch, PatchParams};

use super::launch::{answers_ok, on_free_ports};
use super::{ControlPlane, LabOptions, dir, recipes};
use crate::binaries::Binaries;
use crate::error::{Error, Result};
use crate::process::free_port;

/// The annotation (key, value) that makes a node kwok's: kwok manages only nodes carrying it.
pub const NODE_ANNOTATION: (&str, &str) = ("kwok.x-k8s.io/node", "fake");
/// How long a fake node's Lease lasts; kwok renews it every quarter of that, as a kubelet does
/// (40 s is the kubelet's default too).
pub const NODE_LEASE_SECONDS: u32 = 40;
/// The user kube-scheduler authenticates as: the bootstrap RBAC policy already grants it what a
/// scheduler needs (ClusterRoles `system:kube-scheduler` and `system:volume-scheduler`).
pub const SCHEDULER_USER: &str = "system:kube-scheduler";
/// The user kwok authenticates as, bound to the ClusterRole in `kwok/rbac.yaml`.
pub const KWOK_USER: &str = "kwok-controller";

const STAGES: [(&str, &str); 2] = [
    (
        "node-stages.yaml",
        include_str!("../../kwok/node-stages.yaml"),
    ),
    (
        "pod-stages.yaml",
        include_str!("../../kwok/pod-stages.yaml"),
    ),
];
/// Least privilege rather than `system:masters`: kwok's own ClusterRole lists what it touches,
/// so a kwok that overreaches fails here as it would in a cluster.
const RBAC: &str = include_str!("../../kwok/rbac.yaml");

impl ControlPlane {
    /// Starts kube-scheduler and waits for its `/readyz` (its informers have synced).
    pub(super) async fn start_scheduler(
        &self,
        binaries: &Binaries,
        options: &LabOptions,
    ) -> Result<()> {
        let name = "kube-scheduler";
        let pki = self.dir.pki();
        let (cert, key) = (
            pki.join("kube-scheduler.crt"),
            pki.join("kube-scheduler.key"),
        );
        let serving = self.pki.serving_cert(name)?;
        dir::write_private(&[
            (cert.clone(), serving.cert_pem),
            (key.clone(), serving.key_pem),
        ])?;
        let kubeconfig = self.kubeconfig_for(SCHEDULER_USER, &[])?;
        on_free_ports(name, &self.dir.log(name), async || {
            let port = free_port()?;
            let args = recipes::scheduler(&kubeconfig, port, &cert, &key);
            let launch = self.launch_of(name, &binaries.kube_scheduler, args, options);
            self.run_until_readyz(&launch, &format!("https://127.0.0.1:{port}"))
                .await
        })
        .await
    }

    /// Grants kwok its ClusterRole, writes its Stages and starts it; waits for its `/healthz`,
    /// which it serves once its controllers have started.
    pub(super) async fn start_kwok(&self, exe: &Path, options: &LabOptions) -> Result<()> {
        let name = "kwok";
        self.grant_kwok().await?;
        let stages = self.write_stages()?;
        let stages: Vec<&Path> = stages.iter().map(PathBuf::as_path).collect();
        let kubeconfig = self.kubeconfig_for(KWOK_USER, &[])?;
        on_free_ports(name, &self.dir.log(name), async || {
            let port = free_port()?;
            let args = recipes::kwok(&kubeconfig, &stages, port);
            let launch = self.launch_of(name, exe, args, options);
            let addr = format!("127.0.0.1:{port}");
            self.run(&launch, async || answers_ok(&addr, "/healthz").await)
                .await
        })
        .await
    }

    async fn grant_kwok(&self) -> Result<()> {
        let (role, binding) = rbac()?;
        let client = self.admin_client().await?;
        let apply = PatchParams::apply("fleetwatch-lab");
        let roles: Api<ClusterRole> = Api::all(client.clone());
        let name = role.metadata.name.clone().unwrap_or_default();
        roles.patch(&name, &apply, &Patch::Apply(&role)).await?;
        let bindings: Api<ClusterRoleBinding> = Api::all(client);
        let name = binding.metadata.name.clone().unwrap_or_default();
        bindings
            .patch(&name, &apply, &Patch::Apply(&binding))
            .await?;
        Ok(())
    }

    /// Writes the Stage files into `<dir>/kwok/` and returns their paths.
    fn write_stages(&self) -> Result<Vec<PathBuf>> {
        let dir = self.dir.kwok();
        std::fs::create_dir_all(&dir).map_err(Error::io("creating the kwok directory", &dir))?;
        let files: Vec<(PathBuf, String)> = STAGES
            .iter()
            .map(|(file, text)| (dir.join(file), (*text).to_owned()))
            .collect();
        dir::write_private(&files)?;
        Ok(files.into_iter().map(|(path, _)| path).collect())
    }
}

/// kwok's ClusterRole and its binding, from `kwok/rbac.yaml`.
fn rbac() -> Result<(ClusterRole, ClusterRoleBinding)> {
    let fail = |reason: String| Error::Embedded {
        file: "crates/control-plane/kwok/rbac.yaml",
        reason,
    };
    let (role, binding) = RBAC
        .split_once("\n---\n")
        .ok_or_else(|| fail("expected two documents".to_owned()))?;
    Ok((
        serde_yaml_ng::from_str(role).map_err(|e| fail(e.to_string()))?,
        serde_yaml_ng::from_str(binding).map_err(|e| fail(e.to_string()))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rbac_file_binds_kwoks_user_to_its_role() {
        let (role, binding) = rbac().expect("kwok/rbac.yaml parses");
        assert_eq!(Some(binding.role_ref.name), role.metadata.name);
        let subjects = binding.subjects.expect("subjects");
        assert_eq!(
            subjects
                .iter()
                .map(|s| (s.kind.as_str(), s.name.as_str()))
                .collect::<Vec<_>>(),
            [("User", KWOK_USER)]
        );
    }

    #[test]
    fn each_stage_file_holds_stages_for_its_kind() {
        for ((file, text), (kind, names)) in STAGES.iter().zip([
            ("Node", ["node-initialize", "node-heartbeat"]),
            ("Pod", ["pod-ready", "pod-delete"]),
        ]) {
            let stages: Vec<serde_json::Value> = serde_yaml_ng::Deserializer::from_str(text)
                .map(|document| serde::Deserialize::deserialize(document).expect(file))
                .collect();
            let found: Vec<_> = stages
                .iter()
                .map(|s| {
                    assert_eq!(s["kind"], "Stage", "{file}");
                    assert_eq!(s["spec"]["resourceRef"]["kind"], kind, "{file}");
                    s["metadata"]["name"].as_str().expect("a name")
                })
                .collect();
            assert_eq!(found, names, "{file}");
        }
    }
}
