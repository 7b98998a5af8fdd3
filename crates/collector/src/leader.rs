//! Leader election between the collector's replicas (`leader_election:`): only the leader
//! watches and scrapes, so two replicas cost the API server what one does, plus one Lease
//! renewal every `lease_duration − renew_grace` seconds and a follower's read of the Lease
//! about once per lease duration.
//!
//! Owns: the settings, the process's identity, and the `fleetwatch_collector_leader*` series.
//! The protocol itself is the client's ([`fleetwatch_client::lease`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fleetwatch_client::{Client, Leadership, LeaseSettings};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tokio::sync::watch;

use crate::error::Error;

/// Where a pod's service account says its namespace is.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// The `leader_election:` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaderElectionConfig {
    /// Elect a leader among the replicas; off, this process always leads (one replica).
    pub enabled: bool,
    /// The Lease's namespace [default: the pod's, from its service account; else `default`].
    pub namespace: Option<String>,
    /// The Lease's name, the same for every replica.
    pub name: String,
    /// This replica's identity [default: `$POD_NAME`; else `<hostname>-<pid>`].
    pub identity: Option<String>,
    /// How long a lease lasts after its last renewal: a follower takes over within this (plus
    /// up to a second) after the leader stops. kube-controller-manager's default.
    #[serde(rename = "lease_duration_seconds", with = "crate::config::seconds")]
    pub lease_duration: Duration,
    /// The leader renews this long before its lease would expire.
    #[serde(rename = "renew_grace_seconds", with = "crate::config::seconds")]
    pub renew_grace: Duration,
}

impl Default for LeaderElectionConfig {
    fn default() -> Self {
        LeaderElectionConfig {
            enabled: true,
            namespace: None,
            name: "fleetwatch-collector".to_owned(),
            identity: None,
            lease_duration: Duration::from_secs(15),
            renew_grace: Duration::from_secs(5),
        }
    }
}

impl LeaderElectionConfig {
    /// The Lease settings, defaults filled in from the environment.
    pub fn lease(&self) -> LeaseSettings {
        LeaseSettings {
            namespace: self.namespace.clone().unwrap_or_else(own_namespace),
            name: self.name.clone(),
            identity: self.identity.clone().unwrap_or_else(own_identity),
            duration: self.lease_duration,
            grace: self.renew_grace,
        }
    }

    /// Checks the section, naming the field that is wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("leader_election.name: must not be empty".into());
        }
        self.lease()
            .validate()
            .map_err(|e| format!("leader_election: {e}"))
    }

    /// Campaigns for the Lease, or, when disabled, leads from the start.
    pub fn campaign(&self, client: &Client) -> Result<Candidacy, Error> {
        if !self.enabled {
            return Ok(Candidacy::Always(watch::Sender::new(true)));
        }
        let settings = self.lease();
        tracing::info!(
            namespace = %settings.namespace,
            lease = %settings.name,
            identity = %settings.identity,
            "campaigning for leadership"
        );
        client
            .campaign(settings)
            .map(Candidacy::Elected)
            .map_err(|e| Error::Component {
                component: "leader_election",
                reason: e.to_string(),
            })
    }
}

/// This process's standing: elected through a Lease, or the only replica.
#[derive(Debug)]
pub enum Candidacy {
    /// Leads while it holds the Lease.
    Elected(Leadership),
    /// Leader election is off: leads throughout.
    Always(watch::Sender<bool>),
}

impl Candidacy {
    /// Whether this process leads, changing as it gains and loses the Lease.
    pub fn leading(&self) -> watch::Receiver<bool> {
        match self {
            Candidacy::Elected(leadership) => leadership.leading(),
            Candidacy::Always(always) => always.subscribe(),
        }
    }

    /// Gives the Lease up, so that a follower takes over at once; waits at most `timeout`.
    pub async fn release(self, timeout: Duration) {
        if let Candidacy::Elected(leadership) = self
            && !leadership.release(timeout).await
        {
            tracing::warn!("the lease was not released within {timeout:?}; it will expire");
        }
    }
}

fn own_namespace() -> String {
    std::fs::read_to_string(SERVICE_ACCOUNT_NAMESPACE)
        .map(|ns| ns.trim().to_owned())
        .ok()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

fn own_identity() -> String {
    if let Ok(pod) = std::env::var("POD_NAME")
        && !pod.is_empty()
    {
        return pod;
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "collector".to_owned());
    format!("{host}-{}", std::process::id())
}

/// `fleetwatch_collector_leader*`: whether this process leads, and how often it took over.
#[derive(Debug, Clone, Default)]
pub struct LeaderMetrics {
    leading: Gauge,
    terms: Counter,
    changed: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl LeaderMetrics {
    /// Registers the series in `registry` (the process's, present on followers too).
    pub fn register(registry: &mut Registry) -> LeaderMetrics {
        let metrics = LeaderMetrics::default();
        registry.register(
            "fleetwatch_collector_leader",
            "1 while this replica leads (only the leader watches and scrapes), else 0",
            metrics.leading.clone(),
        );
        registry.register(
            "fleetwatch_collector_leader_terms",
            "Times this replica became the leader: a follower taking over counts one",
            metrics.terms.clone(),
        );
        registry.register(
            "fleetwatch_collector_leader_last_change_timestamp_seconds",
            "When this replica last became the leader or stopped leading (Unix time)",
            metrics.changed.clone(),
        );
        metrics
    }

    /// Records whether this process leads now; a change starts or ends a term.
    pub fn set(&self, leading: bool) {
        let was = self.leading.set(i64::from(leading)) == 1;
        if was == leading {
            return;
        }
        if leading {
            self.terms.inc();
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.changed.set(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_renew_a_fifteen_second_lease_every_ten_seconds() {
        let config = LeaderElectionConfig::default();
        assert!(config.validate().is_ok());
        let lease = config.lease();
        assert_eq!(lease.duration - lease.grace, Duration::from_secs(10));
        assert!(!lease.identity.is_empty());
    }

    #[test]
    fn a_grace_as_long_as_the_lease_is_refused() {
        let config = LeaderElectionConfig {
            renew_grace: Duration::from_secs(15),
            ..LeaderElectionConfig::default()
        };
        let error = config.validate().expect_err("refused");
        assert!(error.starts_with("leader_election: "), "{error}");
    }

    #[test]
    fn terms_count_each_time_leadership_is_gained() {
        let metrics = LeaderMetrics::default();
        metrics.set(true);
        metrics.set(true);
        metrics.set(false);
        metrics.set(true);
        assert_eq!(metrics.terms.get(), 2);
        assert_eq!(metrics.leading.get(), 1);
    }
}
