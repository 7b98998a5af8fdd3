//! Leader election through a `coordination.k8s.io/v1` Lease, for work that one replica of a
//! component does at a time (the collector's watches and scrapes).
//!
//! `kube-lease-manager` runs the protocol: server-side apply on the Lease, so two candidates
//! cannot both take it; the holder renews `grace` before expiry; a candidate waits until the
//! holder's lease has expired, then takes it. This module drives it through the budgeted stack
//! at [`Priority::Critical`] (a renewal shed by the ceiling would hand leadership away) and
//! publishes whether this process leads on a watch channel.
//!
//! Must not: keep leading when a renewal fails. On an API error the process steps down at
//! once (publishes `false`), waits a backoff, and starts over with a fresh manager, which finds
//! the Lease still its own if nobody took it meanwhile. Stepping down early costs a little
//! work; leading on past a lost lease would make two leaders.

use std::time::Duration;

use kube_lease_manager::{LeaseManager, LeaseManagerBuilder};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::priority::Priority;

/// After a failed renewal or lease read, the next attempt waits this long.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(2);

/// Which Lease, who this process is, and how long a lease lasts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    /// The Lease's namespace (the component's own, for least privilege).
    pub namespace: String,
    /// The Lease's name, shared by every replica of the component.
    pub name: String,
    /// This process's identity in `holderIdentity`: unique among the replicas (a pod name).
    pub identity: String,
    /// How long a lease lasts after its last renewal: a follower takes over at most this long
    /// after the leader stops renewing (plus up to a second of jitter).
    pub duration: Duration,
    /// The leader renews this long before its lease expires.
    pub grace: Duration,
}

impl LeaseSettings {
    /// Checks that the durations make a lease that can be renewed.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.duration.as_secs() < 2 {
            return Err("the lease duration must be at least 2 seconds".into());
        }
        if self.grace.as_secs() == 0 || self.grace >= self.duration {
            return Err(format!(
                "the renewal grace ({}s) must be at least a second and shorter than the lease \
                 duration ({}s)",
                self.grace.as_secs(),
                self.duration.as_secs()
            ));
        }
        Ok(())
    }
}

/// A running candidacy: [`Leadership::leading`] says whether this process leads now.
#[derive(Debug)]
pub struct Leadership {
    leading: watch::Receiver<bool>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Leadership {
    /// Whether this process leads, changing as leadership is gained and lost.
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }

    /// Stops campaigning and, if this process holds the Lease, releases it so a follower takes
    /// over at once instead of after the lease expires. Waits at most `timeout`.
    pub async fn release(mut self, timeout: Duration) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        matches!(
            tokio::time::timeout(timeout, &mut self.task).await,
            Ok(Ok(()))
        )
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        // Not released: the lease expires by itself.
        self.task.abort();
    }
}

impl Client {
    /// Campaigns for the Lease `settings` names (creating it if it does not exist) until the
    /// returned [`Leadership`] is released or dropped.
    pub fn campaign(&self, settings: LeaseSettings) -> Result<Leadership> {
        settings.validate().map_err(Error::Settings)?;
        let kube = self.with_priority(Priority::Critical).kube();
        let server = self.server().to_owned();
        let (publish, leading) = watch::channel(false);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(campaign(kube, server, settings, publish, stopped));
        Ok(Leadership {
            leading,
            stop: Some(stop),
            task,
        })
    }
}

async fn campaign(
    kube: kube::Client,
    server: String,
    settings: LeaseSettings,
    publish: watch::Sender<bool>,
    mut stopped: oneshot::Receiver<()>,
) {
    let step_down = |error: &dyn std::fmt::Display| {
        if publish.send_replace(false) {
            tracing::warn!(%server, lease = %settings.name, %error, "leadership: stepping down");
        } else {
            tracing::warn!(%server, lease = %settings.name, %error, "leadership: lease unavailable");
        }
    };
    loop {
        let manager = tokio::select! {
            _ = &mut stopped => return,
            built = manager(kube.clone(), &settings) => built,
        };
        match manager {
            Ok(manager) => {
                let error = tokio::select! {
                    _ = &mut stopped => return release(&manager, &publish, &settings).await,
                    error = follow(&manager, &publish) => error,
                };
                step_down(&error);
            }
            Err(error) => step_down(&error),
        }
        tokio::select! {
            _ = &mut stopped => return,
            () = tokio::time::sleep(RETRY_AFTER_ERROR) => {}
        }
    }
}

async fn manager(
    kube: kube::Client,
    settings: &LeaseSettings,
) -> std::result::Result<LeaseManager, kube_lease_manager::LeaseManagerError> {
    LeaseManagerBuilder::new(kube, &settings.name)
        .with_namespace(&settings.namespace)
        .with_identity(&settings.identity)
        .with_duration(settings.duration.as_secs())
        .with_grace(settings.grace.as_secs())
        .with_field_manager(format!("fleetwatch-{}", settings.identity))
        .build()
        .await
}

/// Publishes each change of leadership until the manager fails.
async fn follow(
    manager: &LeaseManager,
    publish: &watch::Sender<bool>,
) -> kube_lease_manager::LeaseManagerError {
    loop {
        match manager.changed().await {
            Ok(leading) => {
                tracing::info!(leading, "leadership changed");
                publish.send_replace(leading);
            }
            Err(error) => return error,
        }
    }
}

async fn release(manager: &LeaseManager, publish: &watch::Sender<bool>, settings: &LeaseSettings) {
    publish.send_replace(false);
    match manager.release().await {
        Ok(()) => tracing::info!(lease = %settings.name, "leadership released"),
        Err(error) => tracing::warn!(lease = %settings.name, %error, "releasing the lease failed"),
    }
}
