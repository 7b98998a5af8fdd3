//! The YAML files of `fleetwatch sim`: fleet, change and policy. See `examples/` for documented
//! examples. Errors carry the file, line and column and say what was expected.

use std::{collections::BTreeSet, num::NonZeroU32};

use serde::{Deserialize, de::DeserializeOwned};

use crate::{
    error::{Result, SimError},
    fleet::{ApiServerSpec, Change, ClusterSpec, DnsSpec, Fleet, GIB, Pattern, Timing},
    scenario::{self, Guard, Protections},
};
use fleetwatch_rollout::{DeclaredCache, Policy, ProjectionPolicy, SloGates, WaveStyle};

/// Reads a number and checks it inside the visitor, so the error carries the number's position.
struct Checked {
    expecting: &'static str,
    valid: fn(f64) -> bool,
}

impl serde::de::Visitor<'_> for Checked {
    type Value = f64;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<f64, E> {
        if (self.valid)(v) {
            Ok(v)
        } else {
            Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
        }
    }

    #[allow(clippy::cast_precision_loss)] // any integer that large is out of range anyway
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> std::result::Result<f64, E> {
        self.visit_f64(v as f64)
    }

    #[allow(clippy::cast_precision_loss)]
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> std::result::Result<f64, E> {
        self.visit_f64(v as f64)
    }
}

/// A number > 0.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Positive(f64);

impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let valid = |v: f64| v.is_finite() && v > 0.0;
        d.deserialize_f64(Checked {
            expecting: "a positive number",
            valid,
        })
        .map(Self)
    }
}

/// A number in (0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
struct Fraction(f64);

impl<'de> Deserialize<'de> for Fraction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let valid = |v: f64| v > 0.0 && v <= 1.0;
        d.deserialize_f64(Checked {
            expecting: "a fraction in (0, 1]",
            valid,
        })
        .map(Self)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FleetFile {
    #[serde(default)]
    dns: Option<DnsFile>,
    clusters: Vec<ClusterFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DnsFile {
    refresh_seconds: Positive,
    stale_lifetime_minutes: Positive,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClusterFile {
    name: String,
    nodes: NonZeroU32,
    #[serde(default)]
    count: Option<NonZeroU32>,
    #[serde(default)]
    staging: bool,
    #[serde(default)]
    pods_per_node: Option<NonZeroU32>,
    #[serde(default)]
    api_servers: Option<ApiServersFile>,
    /// How `fleetwatch rollout` reaches the cluster (its fleet file is this format): accepted
    /// and ignored here, so one file describes the fleet to both.
    #[serde(default, rename = "kubeconfig")]
    _kubeconfig: Option<String>,
    #[serde(default, rename = "context")]
    _context: Option<String>,
    #[serde(default, rename = "region")]
    _region: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApiServersFile {
    replicas: NonZeroU32,
    cores_per_replica: Positive,
    memory_gib_per_replica: Positive,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum PatternName {
    NaiveList,
    NodeList,
    WatchAll,
    WatchNode,
    Fleetwatch,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangeFile {
    name: String,
    pattern: PatternName,
    #[serde(default)]
    list_interval_seconds: Option<Positive>,
    #[serde(default)]
    timing: Option<Timing>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheFile {
    name: String,
    ttl_minutes: Positive,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    guard: Guard,
    #[serde(default)]
    first_fraction: Option<Fraction>,
    #[serde(default)]
    first_clusters: Option<NonZeroU32>,
    #[serde(default)]
    growth: Option<Positive>,
    #[serde(default)]
    batches: Option<NonZeroU32>,
    #[serde(default)]
    bake_margin_minutes: Option<Positive>,
    #[serde(default)]
    min_bake_minutes: Option<Positive>,
    #[serde(default)]
    caches: Vec<CacheFile>,
    #[serde(default)]
    slo: Option<SloGates>,
    #[serde(default)]
    max_projected_utilization: Option<Fraction>,
    #[serde(default)]
    projection_window_minutes: Option<Positive>,
    #[serde(default)]
    max_failing_node_fraction: Option<Fraction>,
}

fn parse_yaml<T: DeserializeOwned>(file: &str, text: &str) -> Result<T> {
    serde_yaml_ng::from_str(text).map_err(|e| {
        let (line, column) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
        let mut message = e.to_string();
        // The crate appends the position; we print it in front.
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        SimError::Parse {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    })
}

/// Parses a fleet file.
///
/// # Errors
/// [`SimError::Parse`] with line and column, or [`SimError::Invalid`] (no clusters, duplicate
/// names).
pub fn parse_fleet(file: &str, text: &str) -> Result<Fleet> {
    let f: FleetFile = parse_yaml(file, text)?;
    let dns = f.dns.map_or_else(DnsSpec::default, |d| DnsSpec {
        refresh_seconds: d.refresh_seconds.0,
        stale_lifetime_seconds: d.stale_lifetime_minutes.0 * 60.0,
    });
    if dns.stale_lifetime_seconds < dns.refresh_seconds {
        return Err(SimError::invalid(
            file,
            "dns.stale_lifetime_minutes must be at least one refresh interval",
        ));
    }
    let mut clusters = Vec::new();
    for c in f.clusters {
        let count = c.count.map_or(1, NonZeroU32::get);
        for i in 1..=count {
            let name = if c.count.is_some() {
                format!("{}-{i:02}", c.name)
            } else {
                c.name.clone()
            };
            let mut spec = ClusterSpec::new(name, c.nodes.get(), c.staging);
            if let Some(p) = c.pods_per_node {
                spec.pods_per_node = p.get();
            }
            if let Some(a) = &c.api_servers {
                spec.api = ApiServerSpec {
                    replicas: a.replicas.get(),
                    cores_per_replica: a.cores_per_replica.0,
                    memory_bytes_per_replica: a.memory_gib_per_replica.0 * GIB,
                };
            }
            clusters.push(spec);
        }
    }
    if clusters.is_empty() {
        return Err(SimError::invalid(
            file,
            "`clusters` is empty: list at least one cluster",
        ));
    }
    let mut names = BTreeSet::new();
    for c in &clusters {
        if !names.insert(c.name.as_str()) {
            return Err(SimError::invalid(
                file,
                format!("two clusters are named `{}`: names must be unique", c.name),
            ));
        }
    }
    Ok(Fleet { clusters, dns })
}

/// Parses a change file.
///
/// # Errors
/// [`SimError::Parse`] with line and column, or [`SimError::Invalid`].
pub fn parse_change(file: &str, text: &str) -> Result<Change> {
    let f: ChangeFile = parse_yaml(file, text)?;
    let interval_seconds = f.list_interval_seconds.map_or(30.0, |i| i.0);
    let timing = f.timing.unwrap_or_default();
    let periodic = f.list_interval_seconds.is_some() || f.timing.is_some();
    let pattern = match f.pattern {
        PatternName::NaiveList => Pattern::NaiveList {
            interval_seconds,
            timing,
        },
        PatternName::NodeList => Pattern::NodeList {
            interval_seconds,
            timing,
        },
        _ if periodic => {
            return Err(SimError::invalid(
                file,
                "list_interval_seconds and timing apply only to patterns naive-list and node-list",
            ));
        }
        PatternName::WatchAll => Pattern::WatchAll,
        PatternName::WatchNode => Pattern::WatchNode,
        PatternName::Fleetwatch => Pattern::Fleetwatch,
    };
    Ok(Change {
        name: f.name,
        pattern,
    })
}

/// A parsed policy file.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyInput {
    pub guard: Guard,
    pub policy: Policy,
    pub protections: Protections,
}

/// Parses a policy file for a fleet with these DNS caches: the guard's defaults
/// ([`scenario::guard_policy`]) with the file's overrides.
///
/// # Errors
/// [`SimError::Parse`] with line and column, or [`SimError::Invalid`].
pub fn parse_policy(file: &str, text: &str, dns: &DnsSpec) -> Result<PolicyInput> {
    let f: PolicyFile = parse_yaml(file, text)?;
    let (mut policy, protections) = scenario::guard_policy(f.guard, dns);
    match &mut policy.waves {
        WaveStyle::Stratified {
            first_fraction,
            first_clusters,
            growth,
        } => {
            if f.batches.is_some() {
                return Err(SimError::invalid(
                    file,
                    "`batches` applies only to guard: off",
                ));
            }
            if let Some(v) = f.first_fraction {
                *first_fraction = v.0;
            }
            if let Some(v) = f.first_clusters {
                *first_clusters = v.get() as usize;
            }
            if let Some(v) = f.growth {
                if v.0 <= 1.0 {
                    return Err(SimError::invalid(file, "growth must be greater than 1"));
                }
                *growth = v.0;
            }
        }
        WaveStyle::Batches { batches } => {
            if f.first_fraction.is_some() || f.first_clusters.is_some() || f.growth.is_some() {
                return Err(SimError::invalid(
                    file,
                    "first_fraction, first_clusters and growth apply only to guard: on",
                ));
            }
            if let Some(v) = f.batches {
                *batches = v.get() as usize;
            }
        }
    }
    if let Some(v) = f.bake_margin_minutes {
        policy.bake.margin_seconds = v.0 * 60.0;
    }
    if let Some(v) = f.min_bake_minutes {
        policy.bake.min_seconds = v.0 * 60.0;
    }
    policy
        .bake
        .caches
        .extend(f.caches.into_iter().map(|c| DeclaredCache {
            name: c.name,
            ttl_seconds: c.ttl_minutes.0 * 60.0,
        }));
    if let Some(slo) = f.slo {
        policy.gates = Some(slo);
    }
    if f.max_projected_utilization.is_some() || f.projection_window_minutes.is_some() {
        let defaults = policy.projection.unwrap_or_default();
        policy.projection = Some(ProjectionPolicy {
            max_utilization: f
                .max_projected_utilization
                .map_or(defaults.max_utilization, |v| v.0),
            window_seconds: f
                .projection_window_minutes
                .map_or(defaults.window_seconds, |v| v.0 * 60.0),
            ..defaults
        });
    }
    if let Some(v) = f.max_failing_node_fraction {
        policy.max_failing_node_fraction = Some(v.0);
    }
    Ok(PolicyInput {
        guard: f.guard,
        policy,
        protections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FLEET: &str = include_str!("../../../examples/fleet.yaml");
    const CHANGES: [&str; 2] = [
        include_str!("../../../examples/change-naive-list.yaml"),
        include_str!("../../../examples/change-fleetwatch.yaml"),
    ];
    const POLICIES: [&str; 2] = [
        include_str!("../../../examples/policy-guarded.yaml"),
        include_str!("../../../examples/policy-unguarded.yaml"),
    ];

    #[test]
    fn a_rollout_fleet_file_with_node_counts_simulates() {
        let text = "clusters:\n  - {name: s, nodes: 20, staging: true, kubeconfig: s.yaml}\n  \
                    - {name: l, nodes: 1000, kubeconfig: ~/l.yaml, context: c, region: eu}\n";
        let fleet = parse_fleet("fleet.yaml", text).expect("a rollout's fleet file");
        assert_eq!(fleet.clusters.len(), 2);
        assert_eq!(fleet.clusters[1].nodes, 1000);
    }

    #[test]
    fn examples_parse() {
        let fleet = parse_fleet("fleet.yaml", FLEET).expect("example fleet");
        assert_eq!(fleet.clusters.len(), 1 + 1 + 1 + 8 + 20);
        assert_eq!(fleet.clusters[4].name, "prod-medium-02");
        assert_eq!(fleet.dns.stale_lifetime_seconds, 1200.0);
        for c in CHANGES {
            parse_change("change.yaml", c).expect("example change");
        }
        let guarded = parse_policy("p.yaml", POLICIES[0], &fleet.dns).expect("guarded");
        assert_eq!(guarded.guard, Guard::On);
        assert!(guarded.protections.break_glass && guarded.protections.quarantine);
        // The fleet's DNS lifetime and the declared cache both count; bake ≥ 20 min + 5 min.
        assert_eq!(guarded.policy.bake.bake_seconds(), 1500.0);
        let unguarded = parse_policy("p.yaml", POLICIES[1], &fleet.dns).expect("unguarded");
        assert_eq!(unguarded.guard, Guard::Off);
        assert!(!unguarded.protections.break_glass);
    }

    fn parse_error(result: Result<impl std::fmt::Debug>) -> (usize, usize, String) {
        match result {
            Err(SimError::Parse {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn errors_carry_line_column_and_what_was_expected() {
        let bad_type = "clusters:\n  - name: a\n    nodes: many\n";
        let (line, column, message) = parse_error(parse_fleet("f.yaml", bad_type));
        assert_eq!((line, column), (3, 12), "{message}");
        assert!(message.contains("expected"), "{message}");

        let zero = "clusters:\n  - name: a\n    nodes: 0\n";
        let (line, _, message) = parse_error(parse_fleet("f.yaml", zero));
        assert_eq!(line, 3, "{message}");
        assert!(message.contains("nonzero"), "{message}");

        let unknown = "name: x\npattern: naive-list\nlist_interval: 30\n";
        let (line, column, message) = parse_error(parse_change("c.yaml", unknown));
        assert_eq!((line, column), (3, 1), "{message}");
        assert!(message.contains("list_interval_seconds"), "{message}");

        let pattern = "name: x\npattern: poll-everything\n";
        let (line, _, message) = parse_error(parse_change("c.yaml", pattern));
        assert_eq!(line, 2);
        assert!(message.contains("naive-list"), "{message}");

        let fraction = "guard: on\nfirst_fraction: 1.5\n";
        let (line, _, message) = parse_error(parse_policy("p.yaml", fraction, &DnsSpec::default()));
        assert_eq!(line, 2);
        assert!(message.contains("fraction"), "{message}");

        let rendered = SimError::Parse {
            file: "f.yaml".into(),
            line: 3,
            column: 12,
            message: "m".into(),
        }
        .to_string();
        assert_eq!(rendered, "f.yaml:3:12: m");
    }

    #[test]
    fn periodic_changes_and_their_window_parse() {
        let hourly =
            "name: x\npattern: naive-list\nlist_interval_seconds: 3600\ntiming: synchronized\n";
        assert_eq!(
            parse_change("c", hourly).expect("valid").pattern,
            Pattern::NaiveList {
                interval_seconds: 3600.0,
                timing: Timing::Synchronized
            }
        );
        let (line, _, message) = parse_error(parse_change(
            "c",
            "name: x\npattern: node-list\ntiming: hourly\n",
        ));
        assert_eq!(line, 3, "{message}");
        assert!(message.contains("synchronized"), "{message}");
        let policy = "guard: on\nprojection_window_minutes: 60\n";
        let parsed = parse_policy("p", policy, &DnsSpec::default()).expect("valid");
        assert_eq!(parsed.policy.bake_seconds(), 300.0 + 3600.0);
        let projection = parsed.policy.projection.expect("guarded");
        assert_eq!(projection.window_seconds, 3600.0);
    }

    #[test]
    fn whole_file_problems_are_reported() {
        let dup = "clusters:\n  - name: a\n    nodes: 1\n  - name: a\n    nodes: 2\n";
        assert!(matches!(
            parse_fleet("f", dup),
            Err(SimError::Invalid { .. })
        ));
        assert!(matches!(
            parse_fleet("f", "clusters: []\n"),
            Err(SimError::Invalid { .. })
        ));
        let timed = "name: x\npattern: watch-all\ntiming: synchronized\n";
        assert!(matches!(
            parse_change("c", timed),
            Err(SimError::Invalid { .. })
        ));
        let mixed = "guard: off\ngrowth: 3\n";
        assert!(matches!(
            parse_policy("p", mixed, &DnsSpec::default()),
            Err(SimError::Invalid { .. })
        ));
    }

    fn check_position(text: &str, result: Result<impl std::fmt::Debug>) {
        if let Err(SimError::Parse { line, column, .. }) = result {
            assert!(
                line >= 1 && line <= text.lines().count() + 1,
                "line {line} in {text:?}"
            );
            assert!(column >= 1);
        }
    }

    proptest! {
        /// Arbitrary text never panics the parsers; errors point inside the text.
        #[test]
        fn arbitrary_text(text in "\\PC{0,200}") {
            check_position(&text, parse_fleet("f", &text));
            check_position(&text, parse_change("c", &text));
            check_position(&text, parse_policy("p", &text, &DnsSpec::default()));
        }

        /// Damaging one line of an example gives a valid file or an error placed in the text.
        #[test]
        fn damaged_examples(line in 0usize..100, junk in "[ :a-z0-9_.\\-\\[\\]{}#]{0,16}") {
            let damage = |text: &str| {
                let mut lines: Vec<&str> = text.lines().collect();
                let i = line % lines.len();
                lines[i] = &junk;
                lines.join("\n")
            };
            let fleet = damage(FLEET);
            check_position(&fleet, parse_fleet("f", &fleet));
            let change = damage(CHANGES[0]);
            check_position(&change, parse_change("c", &change));
            let policy = damage(POLICIES[0]);
            check_position(&policy, parse_policy("p", &policy, &DnsSpec::default()));
        }
    }
}
