//! The DNS probe: names resolved through the node's resolver and directly against the cluster
//! DNS service, to see a cache serving answers past their TTL while the upstream fails.
//!
//! The incident it is for: the control plane went down, and node-local DNS caches kept
//! answering from their expired entries for about twenty minutes, so nothing looked wrong until
//! the entries were dropped and every lookup failed at once. Each interval, every name's A
//! records are looked up through the resolver (`server="resolver"`) and, when configured,
//! straight from the cluster DNS (`server="cluster_dns"`), both at once, and
//! [`stale`] decides from the two whether the resolver's answer is past its TTL — its module
//! doc has the exact definition. A records only: the cache is the same for AAAA, and Kubernetes
//! service names have A records except in IPv6-only clusters (where the lookups say `nodata`).
//!
//! Series, each with `node` and `name` labels (per lookup also `server`):
//! - `fleetwatch_agent_dns_up`: 1 when the last lookup answered with an address;
//! - `fleetwatch_agent_dns_lookup_duration_seconds`: how long the last lookup took;
//! - `fleetwatch_agent_dns_answer_ttl_seconds`: the last answer's lowest TTL (only when it had
//!   one);
//! - `fleetwatch_agent_dns_lookups_total{result}`: lookups by `result` (`success`, `nodata`,
//!   `nxdomain`, `servfail`, `refused`, `timeout`, `error`), counted since the agent started;
//! - `fleetwatch_agent_dns_served_stale` (0/1) and `fleetwatch_agent_dns_stale_seconds`, per
//!   name, only when the cluster DNS is configured;
//! - `fleetwatch_agent_dns_stale_check_enabled{node}`: whether it is.
//!
//! Owns: its state across polls, bounded by [`MAX_NAMES`]: per name the lookup counters and one
//! remembered answer ([`stale::Staleness`]). Must not: use a resolver library (hickory's
//! resolver caches and clamps TTLs, hiding what the probe looks for) or the system's (it caches
//! too, and follows search lists); names are queried as given, as absolute names.

pub mod stale;
pub mod wire;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use fleetwatch_telemetry::page::Kind;
use hickory_proto::rr::Name;

use crate::error::Error;
use crate::health;
use crate::snapshot::{Family, LabelSet, Latest};
use crate::source::{self, Build, Source, Task};
use stale::Staleness;
use wire::{Outcome, RESULTS};

/// The cluster's API server name, resolved by default.
pub const DEFAULT_NAME: &str = "kubernetes.default.svc.cluster.local";
/// At most this many names: each is two lookups an interval and a few dozen series.
pub const MAX_NAMES: usize = 16;
/// The shortest interval accepted (the test runs at 500 ms).
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// A nameserver read from `resolv.conf` is asked on this port.
pub const DNS_PORT: u16 = 53;

/// The `server` label values: the node's resolver and the cluster DNS.
const SERVERS: [&str; 2] = ["resolver", "cluster_dns"];

/// What is resolved, through which servers, how often.
#[derive(Debug, Clone, PartialEq)]
pub struct DnsConfig {
    /// The names resolved each interval.
    pub names: Vec<String>,
    /// The node's resolver; `None` means the first `nameserver` of `resolv_conf`.
    pub resolver: Option<SocketAddr>,
    /// Where the node's resolver is read from when not given.
    pub resolv_conf: PathBuf,
    /// The cluster DNS service (the upstream the node's cache forwards to); `None` turns the
    /// stale-answer check off, and a series says so. It must be the address the cache itself
    /// forwards to, reachable from the agent: the check takes this server failing for the
    /// cache's upstream failing. With node-local-dns that is the `kube-dns-upstream` service's
    /// ClusterIP, not kube-dns's, which node-local-dns takes over on the node.
    pub cluster_dns: Option<SocketAddr>,
    /// How often every name is resolved.
    pub interval: Duration,
    /// Per query.
    pub timeout: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            names: vec![DEFAULT_NAME.to_owned()],
            resolver: None,
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            cluster_dns: None,
            interval: Duration::from_secs(10),
            timeout: Duration::from_secs(2),
        }
    }
}

impl DnsConfig {
    /// Checks the settings, naming the one that is wrong.
    pub fn validate(&self) -> Result<(), Error> {
        self.validate_names()?;
        if let Some(resolver) = self.resolver {
            check_server(resolver).map_err(|e| Error::config("--dns-resolver", e))?;
        }
        if let Some(cluster_dns) = self.cluster_dns {
            check_server(cluster_dns).map_err(|e| Error::config("--cluster-dns", e))?;
            if self.resolver == Some(cluster_dns) {
                return Err(Error::config(
                    "--cluster-dns",
                    "is the resolver itself: give the address the node's cache forwards to \
                     (with node-local-dns, the kube-dns-upstream service)",
                ));
            }
        }
        if self.timeout.is_zero() {
            return Err(Error::config("dns timeout", "must be more than 0"));
        }
        if self.interval < MIN_INTERVAL {
            return Err(Error::config(
                "--dns-interval",
                format!("must be at least {MIN_INTERVAL:?}"),
            ));
        }
        if self.timeout >= self.interval {
            return Err(Error::config(
                "--dns-interval",
                format!(
                    "must be longer than the per-query timeout ({:?}): a poll must end before \
                     the next",
                    self.timeout
                ),
            ));
        }
        Ok(())
    }

    fn validate_names(&self) -> Result<(), Error> {
        if self.names.is_empty() {
            return Err(Error::config(
                "--dns-name",
                format!("give at least one name to resolve (e.g. {DEFAULT_NAME})"),
            ));
        }
        if self.names.len() > MAX_NAMES {
            return Err(Error::config(
                "--dns-name",
                format!(
                    "at most {MAX_NAMES} names, not {} (each is two lookups every interval)",
                    self.names.len()
                ),
            ));
        }
        let mut seen = Vec::with_capacity(self.names.len());
        for name in &self.names {
            check_name(name).map_err(|e| Error::config("--dns-name", format!("'{name}': {e}")))?;
            let key = label(name).to_ascii_lowercase();
            if seen.contains(&key) {
                return Err(Error::config(
                    "--dns-name",
                    format!("'{name}' is given twice"),
                ));
            }
            seen.push(key);
        }
        Ok(())
    }

    /// The resolver: as configured, or read from `resolv_conf`.
    fn resolver(&self) -> Result<SocketAddr, Error> {
        if let Some(resolver) = self.resolver {
            return Ok(resolver);
        }
        let path = &self.resolv_conf;
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(
                "--dns-resolver",
                format!("not given, and {} cannot be read: {e}", path.display()),
            )
        })?;
        first_nameserver(&text)
            .map(|ip| SocketAddr::new(ip, DNS_PORT))
            .map_err(|e| {
                Error::config(
                    "--dns-resolver",
                    format!("not given, and {}: {e}", path.display()),
                )
            })
    }
}

/// A DNS name as RFC 1035 has it (letters, digits, `-`, and `_` as in SRV-style names): labels
/// of 1 to 63 characters, 253 in all, an optional final dot.
fn check_name(name: &str) -> Result<(), String> {
    let bare = label(name);
    if bare.is_empty() {
        return Err("is empty".to_owned());
    }
    if bare.len() > 253 {
        return Err("is longer than 253 characters".to_owned());
    }
    for part in bare.split('.') {
        if part.is_empty() || part.len() > 63 {
            return Err("has a label that is empty or longer than 63 characters".to_owned());
        }
        if !part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "label '{part}' has a character other than a letter, a digit, '-' or '_'"
            ));
        }
        if part.starts_with('-') || part.ends_with('-') {
            return Err(format!("label '{part}' starts or ends with '-'"));
        }
    }
    query_name(name).map(|_| ())
}

/// The name as a label value: as given, without a final dot.
fn label(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

/// The absolute name queried: no search list applies.
fn query_name(name: &str) -> Result<Name, String> {
    Name::from_ascii(format!("{}.", label(name))).map_err(|e| e.to_string())
}

fn check_server(address: SocketAddr) -> Result<(), String> {
    if address.ip().is_unspecified() {
        return Err(format!("{address} is not an address to send to"));
    }
    if address.port() == 0 {
        return Err(format!("{address} has no port (DNS is on 53)"));
    }
    Ok(())
}

/// The address of the first `nameserver` line of a resolv.conf.
fn first_nameserver(text: &str) -> Result<IpAddr, String> {
    let line = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with('#') && !line.starts_with(';'))
        .find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("nameserver")).then(|| words.next().unwrap_or(""))
        })
        .ok_or("has no 'nameserver' line")?;
    line.parse()
        .map_err(|_| format!("its first nameserver, '{line}', is not an IP address"))
}

impl Source for DnsConfig {
    fn name(&self) -> &'static str {
        "dns"
    }

    fn build(&self, build: &mut Build<'_>) -> Result<Task, Error> {
        self.validate()?;
        let resolver = self.resolver()?;
        let names = self
            .names
            .iter()
            .map(|name| {
                let query = query_name(name).map_err(|e| Error::config("--dns-name", e))?;
                Ok((label(name).to_owned(), query))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let latest = Latest::default();
        build.sections.push(Arc::new(latest.clone()));
        let probe = Arc::new(Probe {
            node: build.node.to_owned(),
            servers: [Some(resolver), self.cluster_dns],
            timeout: self.timeout,
            state: Mutex::new(names.iter().map(|_| NameState::default()).collect()),
            names,
            latest,
            health: build.health.target("dns", build.readiness.component("dns")),
        });
        let (interval, stop) = (self.interval, build.stop.clone());
        Ok(Box::pin(async move {
            source::every(interval, stop, || {
                let probe = probe.clone();
                async move { probe.poll().await }
            })
            .await;
        }))
    }
}

/// The running source.
#[derive(Debug)]
struct Probe {
    node: String,
    /// The label value and the query name of each configured name.
    names: Vec<(String, Name)>,
    /// Indexed like [`SERVERS`]; the cluster DNS may be absent.
    servers: [Option<SocketAddr>; 2],
    timeout: Duration,
    /// Per name, like `names`. Locked only between the lookups and the snapshot, never across
    /// an await.
    state: Mutex<Vec<NameState>>,
    latest: Latest,
    health: health::Target,
}

/// What is kept of one name across polls.
#[derive(Debug, Default)]
struct NameState {
    /// Lookups by server and result, indexed like [`SERVERS`] and [`RESULTS`].
    counts: [[u64; RESULTS.len()]; SERVERS.len()],
    staleness: Staleness,
}

/// One lookup of one poll.
#[derive(Debug)]
struct Lookup {
    outcome: Outcome,
    took: Duration,
}

/// One name's lookups of one poll, indexed like [`SERVERS`].
type Lookups = [Option<Lookup>; 2];

impl Probe {
    async fn poll(&self) {
        let started = Instant::now();
        let lookups: Vec<Lookups> =
            futures::future::join_all(self.names.iter().map(|(_, name)| self.lookup_both(name)))
                .await;
        let families = self.record(started, &lookups);
        self.latest.replace(families);
        self.report(&lookups, started.elapsed());
    }

    /// Both servers at once, so the two answers are of the same moment.
    async fn lookup_both(&self, name: &Name) -> Lookups {
        let [resolver, cluster_dns] = self.servers.map(|server| async move {
            match server {
                Some(server) => Some(timed(server, name, self.timeout).await),
                None => None,
            }
        });
        let (resolver, cluster_dns) = futures::join!(resolver, cluster_dns);
        [resolver, cluster_dns]
    }

    /// Counts the poll's lookups, updates each name's staleness and builds the snapshot.
    fn record(&self, at: Instant, lookups: &[Lookups]) -> Vec<Family> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let mut families = Families::new(self.servers[1].is_some());
        families.enabled.push(
            LabelSet::of([("node", &self.node)]),
            bool_value(families.checking),
        );
        for (((name, _), lookups), state) in self.names.iter().zip(lookups).zip(state.iter_mut()) {
            for (server, lookup) in lookups.iter().enumerate() {
                if let Some(lookup) = lookup {
                    state.counts[server][lookup.outcome.index()] += 1;
                }
            }
            let verdict = match lookups {
                [Some(resolver), Some(upstream)] => Some(state.staleness.observe(
                    at,
                    &resolver.outcome,
                    &upstream.outcome,
                )),
                _ => None,
            };
            families.add(&self.node, name, lookups, state, verdict);
        }
        families.into_vec()
    }

    /// A poll fails, for the source's own health, when a server did not answer: DNS on this
    /// node is in trouble and the log (rate-limited) says where.
    fn report(&self, lookups: &[Lookups], took: Duration) {
        let mut reason = None;
        let mut failures = Vec::new();
        for ((name, _), lookups) in self.names.iter().zip(lookups) {
            for (server, lookup) in lookups.iter().enumerate() {
                let Some(lookup) = lookup.as_ref().filter(|l| !l.outcome.answered()) else {
                    continue;
                };
                reason.get_or_insert(lookup.outcome.result());
                failures.push(describe(name, server, lookup));
            }
        }
        match reason {
            None => self.health.succeeded(took),
            Some(reason) => self.health.failed(reason, took, failures.join("; ")),
        }
    }
}

async fn timed(server: SocketAddr, name: &Name, timeout: Duration) -> Lookup {
    let started = Instant::now();
    let outcome = wire::lookup(server, name, timeout).await;
    Lookup {
        outcome,
        took: started.elapsed(),
    }
}

fn describe(name: &str, server: usize, lookup: &Lookup) -> String {
    let detail = match &lookup.outcome {
        Outcome::Error(message) => format!("error: {message}"),
        other => other.result().to_owned(),
    };
    format!("{name} through the {}: {detail}", SERVERS[server])
}

fn bool_value(value: bool) -> f64 {
    if value { 1.0 } else { 0.0 }
}

/// The snapshot's families, filled name by name.
struct Families {
    checking: bool,
    up: Family,
    duration: Family,
    ttl: Family,
    lookups: Family,
    served_stale: Family,
    stale_seconds: Family,
    enabled: Family,
}

impl Families {
    fn new(checking: bool) -> Families {
        Families {
            checking,
            up: Family::new(
                "fleetwatch_agent_dns_up",
                "Whether the name's last lookup through the server answered with an address",
                Kind::Gauge,
            ),
            duration: Family::new(
                "fleetwatch_agent_dns_lookup_duration_seconds",
                "How long the name's last lookup through the server took",
                Kind::Gauge,
            ),
            ttl: Family::new(
                "fleetwatch_agent_dns_answer_ttl_seconds",
                "The lowest TTL of the server's last answer for the name",
                Kind::Gauge,
            ),
            lookups: Family::new(
                "fleetwatch_agent_dns_lookups_total",
                "Lookups of the name through the server, by result",
                Kind::Counter,
            ),
            served_stale: Family::new(
                "fleetwatch_agent_dns_served_stale",
                "Whether the node's resolver answers the name past its TTL while the cluster \
                 DNS fails (1) or not (0)",
                Kind::Gauge,
            ),
            stale_seconds: Family::new(
                "fleetwatch_agent_dns_stale_seconds",
                "How long past its TTL the resolver's answer for the name is, at least",
                Kind::Gauge,
            ),
            enabled: Family::new(
                "fleetwatch_agent_dns_stale_check_enabled",
                "Whether the cluster DNS is configured, so stale answers can be seen (1) or \
                 not (0)",
                Kind::Gauge,
            ),
        }
    }

    fn add(
        &mut self,
        node: &str,
        name: &str,
        lookups: &Lookups,
        state: &NameState,
        verdict: Option<stale::Verdict>,
    ) {
        for (server, lookup) in lookups.iter().enumerate() {
            let Some(lookup) = lookup else { continue };
            let labels =
                || LabelSet::of([("node", node), ("name", name), ("server", SERVERS[server])]);
            let answer_ttl = match &lookup.outcome {
                Outcome::Answer { ttl, .. } => Some(*ttl),
                _ => None,
            };
            self.up.push(labels(), bool_value(answer_ttl.is_some()));
            self.duration.push(labels(), lookup.took.as_secs_f64());
            if let Some(ttl) = answer_ttl {
                self.ttl.push(labels(), f64::from(ttl));
            }
            for (result, count) in RESULTS.iter().zip(state.counts[server]) {
                let mut labels = labels();
                labels.0.push(("result", (*result).to_owned()));
                // Whole counts, far below 2^53: exact as f64.
                self.lookups.push(labels, count as f64);
            }
        }
        if let Some(verdict) = verdict {
            let labels = || LabelSet::of([("node", node), ("name", name)]);
            self.served_stale
                .push(labels(), bool_value(verdict.served_stale));
            self.stale_seconds
                .push(labels(), verdict.stale_for.as_secs_f64());
        }
    }

    fn into_vec(self) -> Vec<Family> {
        vec![
            self.up,
            self.duration,
            self.ttl,
            self.lookups,
            self.served_stale,
            self.stale_seconds,
            self.enabled,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> DnsConfig {
        DnsConfig {
            resolver: Some("10.0.0.10:53".parse().expect("address")),
            cluster_dns: Some("10.96.0.10:53".parse().expect("address")),
            ..DnsConfig::default()
        }
    }

    fn field(result: Result<(), Error>) -> String {
        match result {
            Err(Error::Config { field, message }) => format!("{field}: {message}"),
            other => panic!("a config error, not {other:?}"),
        }
    }

    #[test]
    fn the_default_with_servers_is_valid() {
        config().validate().expect("valid");
        DnsConfig::default()
            .validate()
            .expect("valid without servers");
    }

    #[test]
    fn names_are_checked_naming_the_flag() {
        let long = "x".repeat(64);
        let cases: [(Vec<&str>, &str); 7] = [
            (vec![], "at least one"),
            (vec!["a..b"], "empty"),
            (vec!["bad name.example"], "character"),
            (vec!["-x.example"], "'-'"),
            (vec!["a.example", "A.example."], "twice"),
            (vec![&long], "63"),
            (vec!["."], "empty"),
        ];
        for (names, want) in cases {
            let message = field(
                DnsConfig {
                    names: names.iter().map(|n| (*n).to_owned()).collect(),
                    ..config()
                }
                .validate(),
            );
            assert!(message.starts_with("--dns-name: "), "{names:?}: {message}");
            assert!(message.contains(want), "{names:?}: {message}");
        }
        let many = (0..=MAX_NAMES).map(|i| format!("n{i}.example")).collect();
        let message = field(
            DnsConfig {
                names: many,
                ..config()
            }
            .validate(),
        );
        assert!(message.contains("at most 16"), "{message}");
        let ok = DnsConfig {
            names: vec!["_dns._udp.example.".to_owned(), "x-1.example".to_owned()],
            ..config()
        };
        ok.validate().expect("valid names");
    }

    #[test]
    fn servers_and_timing_are_checked_naming_the_flag() {
        let cases = [
            (
                DnsConfig {
                    resolver: Some("0.0.0.0:53".parse().expect("address")),
                    ..config()
                },
                "--dns-resolver",
            ),
            (
                DnsConfig {
                    cluster_dns: Some("10.96.0.10:0".parse().expect("address")),
                    ..config()
                },
                "--cluster-dns",
            ),
            (
                DnsConfig {
                    cluster_dns: config().resolver,
                    ..config()
                },
                "--cluster-dns",
            ),
            (
                DnsConfig {
                    interval: Duration::from_secs(2),
                    ..config()
                },
                "--dns-interval",
            ),
            (
                DnsConfig {
                    interval: Duration::from_millis(10),
                    timeout: Duration::from_millis(5),
                    ..config()
                },
                "--dns-interval",
            ),
        ];
        for (config, want) in cases {
            let message = field(config.validate());
            assert!(message.starts_with(want), "{message}");
        }
    }

    #[test]
    fn the_first_nameserver_is_the_resolver() {
        let text = "# generated\n;comment\nsearch svc.cluster.local\n  nameserver 169.254.20.10 \nnameserver 10.96.0.10\n";
        assert_eq!(
            first_nameserver(text),
            Ok("169.254.20.10".parse().expect("ip"))
        );
        assert_eq!(
            first_nameserver("nameserver fd00::a\n"),
            Ok("fd00::a".parse().expect("ip"))
        );
        assert!(first_nameserver("search x\n").is_err());
        assert!(
            first_nameserver("nameserver nope\n")
                .expect_err("not an address")
                .contains("'nope'")
        );
        assert!(first_nameserver("#nameserver 1.2.3.4\n").is_err());
    }

    #[test]
    fn without_a_resolver_resolv_conf_is_read_and_named_when_wrong() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "nameserver 10.0.0.10\n").expect("write");
        let config = DnsConfig {
            resolv_conf: path.clone(),
            ..DnsConfig::default()
        };
        assert_eq!(
            config.resolver().expect("resolver"),
            "10.0.0.10:53".parse().expect("address")
        );
        std::fs::write(&path, "search cluster.local\n").expect("write");
        let message = field(config.resolver().map(|_| ()));
        assert!(message.starts_with("--dns-resolver: "), "{message}");
        assert!(message.contains(&path.display().to_string()), "{message}");
        let missing = DnsConfig {
            resolv_conf: dir.path().join("absent"),
            ..DnsConfig::default()
        };
        let message = field(missing.resolver().map(|_| ()));
        assert!(message.contains("absent"), "{message}");
    }
}
