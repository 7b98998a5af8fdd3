//! More kube-apiserver replicas on the lab's etcd, as a highly available control plane runs
//! them: each on 127.0.0.1 at a port of its own, with the same certificates, flags and service
//! account issuer as the first.
//!
//! The API server refuses to advertise a loopback address in the `kubernetes` EndpointSlice
//! ("may not be in the loopback range"), and replicas that share an address would need one
//! port, so with more than one replica no replica maintains that slice
//! (`--endpoint-reconciler-type=none`): clients are given the replicas' URLs
//! ([`ControlPlane::apiserver_urls`]).

use super::launch::{Launch, on_free_ports};
use super::{ControlPlane, LabOptions, STOP_GRACE, lock, recipes};
use crate::binaries::Binaries;
use crate::error::{Error, Result};
use crate::process::free_port;

/// The most replicas besides the first.
pub const MAX_EXTRA_APISERVERS: usize = 3;
const NAMES: [&str; MAX_EXTRA_APISERVERS] =
    ["kube-apiserver-2", "kube-apiserver-3", "kube-apiserver-4"];
/// Added to every replica's flags when there is more than one.
pub(super) const NO_ENDPOINT_RECONCILER: &str = "--endpoint-reconciler-type=none";

impl ControlPlane {
    /// Starts `options.extra_apiservers` more replicas, each ready before the next.
    pub(super) async fn start_replicas(
        &self,
        binaries: &Binaries,
        options: &LabOptions,
    ) -> Result<()> {
        if options.extra_apiservers > MAX_EXTRA_APISERVERS {
            return Err(Error::Replicas {
                asked: options.extra_apiservers,
                max: MAX_EXTRA_APISERVERS,
            });
        }
        let issuer = format!("--service-account-issuer={}/", self.apiserver_url());
        for name in NAMES.into_iter().take(options.extra_apiservers) {
            let log = self.dir.log(name);
            let (launch, url) = on_free_ports(name, &log, async || {
                let port = free_port()?;
                let args = recipes::apiserver(
                    &self.etcd_url(),
                    port,
                    &self.dir.pki(),
                    options.max_requests_inflight,
                )
                .into_iter()
                .map(|arg| {
                    // One issuer for the control plane: a token from one replica works at all.
                    if arg.starts_with("--service-account-issuer=") {
                        issuer.clone()
                    } else {
                        arg
                    }
                })
                .chain([NO_ENDPOINT_RECONCILER.to_owned()])
                .collect();
                let launch = self.launch_of(name, &binaries.kube_apiserver, args, options);
                let url = recipes::apiserver_url(port);
                self.run_until_readyz(&launch, &url).await?;
                Ok((launch, url))
            })
            .await?;
            self.state().replica_urls.push(url.clone());
            lock(&self.replicas).push((launch, url));
            self.save_state()?;
        }
        Ok(())
    }

    /// Every replica's URL, the first (the kubeconfig's server) first.
    pub fn apiserver_urls(&self) -> Vec<String> {
        let state = self.state();
        std::iter::once(state.apiserver_url.clone())
            .chain(state.replica_urls.iter().cloned())
            .collect()
    }

    /// Stops the extra replica `index` (0 is `kube-apiserver-2`) with SIGTERM and leaves it
    /// down; the others keep serving.
    pub async fn stop_replica(&self, index: usize) -> Result<()> {
        let (launch, _) = self.replica(index)?;
        if let Some(process) = self.process(launch.name) {
            process.terminate(STOP_GRACE).await;
        }
        Ok(())
    }

    /// Starts the extra replica `index` again after [`ControlPlane::stop_replica`], on the same
    /// port, and waits until it is ready.
    pub async fn start_replica_again(&self, index: usize) -> Result<()> {
        let (launch, url) = self.replica(index)?;
        self.run_until_readyz(&launch, &url).await
    }

    fn replica(&self, index: usize) -> Result<(Launch, String)> {
        lock(&self.replicas)
            .get(index)
            .cloned()
            .ok_or(Error::CannotRestart)
    }
}
