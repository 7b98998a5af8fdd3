//! The cost model's coefficients, from a versioned TOML file (`format_version = 2`).
//!
//! The built-in files beside this module, one per Kubernetes release the load lab measured
//! (`calibration.toml` for v1.37.2, `calibration-v1.30.toml` for v1.30.14), document every key
//! and its unit. `fleetwatch lab calibrate` (the `fleetwatch-calibrate` crate) measured some of
//! their keys on a real API server, each marked by a `# measured:` line; the others are
//! plausible values ([`Calibration::unmeasured`]) or kube-apiserver settings ([`CONFIGURED`]).
//! `calibration-plausible.toml` is the same file with nothing measured, the fit's base.

use serde::{Deserialize, Serialize};

use crate::error::{Result, SimError};

/// The built-in calibration of today's API server (v1.37), the simulator's default.
pub const DEFAULT_TOML: &str = include_str!("calibration.toml");
/// The built-in calibration of the incident's era (v1.30: LISTs without resourceVersion read
/// etcd and are built whole in memory), what `fleetwatch replay` uses by default.
pub const V1_30_TOML: &str = include_str!("calibration-v1.30.toml");

/// Plausible values for every key, none measured: the base `fleetwatch lab calibrate` fits a
/// sweep against unless given another.
pub const PLAUSIBLE_TOML: &str = include_str!("calibration-plausible.toml");

/// The built-in calibrations, newest first, by the Kubernetes minor whose API server they were
/// measured on.
pub const BUILT_IN: [(&str, &str); 2] = [("1.37", DEFAULT_TOML), ("1.30", V1_30_TOML)];

/// Keys that are kube-apiserver settings at their defaults, not costs: nothing to measure
/// (`--request-timeout` 60 s; `--max-requests-inflight` 400 + `--max-mutating-requests-inflight`
/// 200 seats).
pub const CONFIGURED: [&str; 2] = [
    "api_server.request_timeout_seconds",
    "apf.seats_per_replica",
];

/// The comment line `fleetwatch lab calibrate` writes above each key it measured.
const MEASURED_MARK: &str = "# measured:";

/// The only format this build reads.
pub const FORMAT_VERSION: u32 = 2;

/// All coefficients of the cost model. Field names carry their units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    pub format_version: u32,
    /// Where the numbers come from (shown in reports).
    pub source: String,
    /// The keys (`api_server.cpu_seconds_per_list`) the file marks as measured, with a
    /// `# measured:` comment line above them; every other key is a plausible value or a
    /// setting.
    #[serde(skip)]
    pub measured: Vec<String>,
    pub api_server: ApiServerCosts,
    pub etcd: EtcdCosts,
    pub apf: Apf,
    pub cluster: ClusterLoad,
    pub dns: DnsCosts,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiServerCosts {
    pub cpu_seconds_per_get: f64,
    pub cpu_seconds_per_list: f64,
    pub cpu_seconds_per_object_listed_from_etcd: f64,
    pub cpu_seconds_per_object_listed_from_cache: f64,
    /// 0–1: of the objects of LISTs without resourceVersion (the incident's), the share read
    /// from etcd — 1 before consistent reads from the watch cache (KEP-2340), 0 after.
    pub fraction_of_unversioned_lists_from_etcd: f64,
    pub memory_bytes_per_object_listed: f64,
    pub cpu_seconds_per_watch_event: f64,
    pub memory_bytes_per_watch: f64,
    pub memory_bytes_per_cached_object: f64,
    pub memory_bytes_base: f64,
    pub cpu_seconds_per_rejected_request: f64,
    pub restart_seconds: f64,
    pub request_timeout_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EtcdCosts {
    pub objects_per_second: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Apf {
    pub seats_per_replica: f64,
    pub queue_length_per_level_per_replica: f64,
    pub objects_per_list_seat: f64,
    pub max_seats_per_request: f64,
    pub system_share: f64,
    pub workload_share: f64,
    pub quarantine_share: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterLoad {
    pub requests_per_node_per_second: f64,
    pub background_cores_per_node: f64,
    pub pod_events_per_pod_per_second: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsCosts {
    pub lookups_per_node_per_refresh: f64,
    pub failing_lookup_multiplier: f64,
    pub timeout_seconds: f64,
}

impl Default for Calibration {
    fn default() -> Self {
        Self::parse("built-in calibration", DEFAULT_TOML)
            .expect("the built-in calibration is valid")
    }
}

impl Calibration {
    /// Parses and validates a calibration file; `file` names it in errors.
    ///
    /// # Errors
    /// [`SimError::Parse`] with line and column for syntax, type and unknown-key errors;
    /// [`SimError::Invalid`] for a wrong `format_version` or a coefficient out of range.
    pub fn parse(file: &str, text: &str) -> Result<Self> {
        let cal: Calibration = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            SimError::at_offset(file, text, offset, e.message().trim_end().to_owned())
        })?;
        if cal.format_version != FORMAT_VERSION {
            return Err(SimError::invalid(
                file,
                format!(
                    "format_version {} is not supported; this build reads format_version {FORMAT_VERSION}",
                    cal.format_version
                ),
            ));
        }
        cal.validate().map_err(|m| SimError::invalid(file, m))?;
        Ok(Calibration {
            measured: measured_keys(text),
            ..cal
        })
    }

    /// The built-in calibration measured on Kubernetes `minor` (`1.30`, `v1.37`).
    ///
    /// # Errors
    /// [`SimError::Invalid`] naming the minors there are calibrations for.
    pub fn built_in(minor: &str) -> Result<Self> {
        let wanted = minor.trim().trim_start_matches('v');
        let (name, text) = BUILT_IN
            .iter()
            .find(|(m, _)| *m == wanted || wanted.starts_with(&format!("{m}.")))
            .ok_or_else(|| {
                let known: Vec<_> = BUILT_IN.iter().map(|(m, _)| *m).collect();
                SimError::invalid(
                    "--kube-version",
                    format!(
                        "no built-in calibration for Kubernetes {minor}; expected one of {}",
                        known.join(", ")
                    ),
                )
            })?;
        Self::parse(&format!("built-in calibration for Kubernetes {name}"), text)
    }

    /// Every coefficient's key that is neither [`measured`](Self::measured) nor
    /// [`CONFIGURED`], sorted.
    #[must_use]
    pub fn unmeasured(&self) -> Vec<String> {
        let Ok(toml::Value::Table(table)) = toml::Value::try_from(self) else {
            return Vec::new();
        };
        table
            .iter()
            .filter_map(|(section, value)| value.as_table().map(|keys| (section, keys)))
            .flat_map(|(section, keys)| keys.keys().map(move |key| format!("{section}.{key}")))
            .filter(|key| !self.measured.contains(key) && !CONFIGURED.contains(&key.as_str()))
            .collect()
    }

    /// For reports: where the numbers come from, and which were measured and which not (one
    /// line each, indented after the first).
    #[must_use]
    pub fn provenance(&self) -> String {
        let list = |keys: &[String]| {
            if keys.is_empty() {
                "none".to_owned()
            } else {
                keys.join(", ")
            }
        };
        let configured: Vec<String> = CONFIGURED.iter().map(|k| (*k).to_owned()).collect();
        format!(
            "calibration: {}\n  measured on that API server: {}\n  kube-apiserver defaults (settings, not costs): {}\n  NOT measured (plausible values, not measurements): {}\n",
            self.source,
            list(&self.measured),
            list(&configured),
            list(&self.unmeasured())
        )
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let a = &self.api_server;
        let positive = [
            ("api_server.cpu_seconds_per_get", a.cpu_seconds_per_get),
            ("api_server.cpu_seconds_per_list", a.cpu_seconds_per_list),
            ("api_server.restart_seconds", a.restart_seconds),
            (
                "api_server.request_timeout_seconds",
                a.request_timeout_seconds,
            ),
            ("etcd.objects_per_second", self.etcd.objects_per_second),
            ("apf.seats_per_replica", self.apf.seats_per_replica),
            ("apf.objects_per_list_seat", self.apf.objects_per_list_seat),
            ("apf.max_seats_per_request", self.apf.max_seats_per_request),
            ("apf.system_share", self.apf.system_share),
            ("apf.workload_share", self.apf.workload_share),
            ("apf.quarantine_share", self.apf.quarantine_share),
            ("dns.timeout_seconds", self.dns.timeout_seconds),
        ];
        let non_negative = [
            (
                "api_server.cpu_seconds_per_object_listed_from_etcd",
                a.cpu_seconds_per_object_listed_from_etcd,
            ),
            (
                "api_server.cpu_seconds_per_object_listed_from_cache",
                a.cpu_seconds_per_object_listed_from_cache,
            ),
            (
                "api_server.memory_bytes_per_object_listed",
                a.memory_bytes_per_object_listed,
            ),
            (
                "api_server.cpu_seconds_per_watch_event",
                a.cpu_seconds_per_watch_event,
            ),
            (
                "api_server.memory_bytes_per_watch",
                a.memory_bytes_per_watch,
            ),
            (
                "api_server.memory_bytes_per_cached_object",
                a.memory_bytes_per_cached_object,
            ),
            ("api_server.memory_bytes_base", a.memory_bytes_base),
            (
                "api_server.cpu_seconds_per_rejected_request",
                a.cpu_seconds_per_rejected_request,
            ),
            (
                "apf.queue_length_per_level_per_replica",
                self.apf.queue_length_per_level_per_replica,
            ),
            (
                "cluster.requests_per_node_per_second",
                self.cluster.requests_per_node_per_second,
            ),
            (
                "cluster.background_cores_per_node",
                self.cluster.background_cores_per_node,
            ),
            (
                "cluster.pod_events_per_pod_per_second",
                self.cluster.pod_events_per_pod_per_second,
            ),
            (
                "dns.lookups_per_node_per_refresh",
                self.dns.lookups_per_node_per_refresh,
            ),
            (
                "dns.failing_lookup_multiplier",
                self.dns.failing_lookup_multiplier,
            ),
        ];
        for (key, v) in positive {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{key} must be a positive number, got {v}"));
            }
        }
        for (key, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return Err(format!("{key} must be a non-negative number, got {v}"));
            }
        }
        let fraction = a.fraction_of_unversioned_lists_from_etcd;
        if !(0.0..=1.0).contains(&fraction) {
            return Err(format!(
                "api_server.fraction_of_unversioned_lists_from_etcd must be between 0 and 1, got {fraction}"
            ));
        }
        let shares = self.apf.system_share + self.apf.workload_share + self.apf.quarantine_share;
        if shares > 1.0 + 1e-9 {
            return Err(format!("apf shares add up to {shares}, more than 1"));
        }
        Ok(())
    }
}

/// The keys under a `# measured:` comment line (the next key line of the same section).
fn measured_keys(text: &str) -> Vec<String> {
    let mut section = String::new();
    let mut marked = false;
    let mut keys = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.trim().to_owned();
            marked = false;
        } else if line.starts_with(MEASURED_MARK) {
            marked = true;
        } else if let Some((key, _)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
            if marked && !section.is_empty() {
                keys.push(format!("{section}.{}", key.trim()));
            }
            marked = false;
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn built_in_calibration_is_valid() {
        let cal = Calibration::default();
        assert_eq!(cal.format_version, FORMAT_VERSION);
    }

    #[test]
    fn each_built_in_calibration_names_its_release_and_what_it_measured() {
        for (minor, _) in BUILT_IN {
            let cal = Calibration::built_in(minor).expect(minor);
            assert!(
                cal.source.contains(&format!("kube-apiserver v{minor}.")),
                "{minor}: {}",
                cal.source
            );
            assert!(!cal.measured.is_empty(), "{minor} measured nothing");
            let unmeasured = cal.unmeasured();
            assert!(cal.measured.iter().all(|k| !unmeasured.contains(k)));
            // Every key is one of the three: the 27 coefficients of format_version 2.
            assert_eq!(
                cal.measured.len() + CONFIGURED.len() + unmeasured.len(),
                27,
                "{minor}"
            );
            assert!(
                CONFIGURED
                    .iter()
                    .all(|k| !unmeasured.contains(&(*k).to_owned()))
            );
        }
        assert_eq!(
            Calibration::built_in("v1.37.2").expect("1.37"),
            Calibration::default()
        );
        let plausible = Calibration::parse("plausible", PLAUSIBLE_TOML).expect("plausible");
        assert!(plausible.measured.is_empty(), "{:?}", plausible.measured);
        assert_eq!(plausible.unmeasured().len(), 27 - CONFIGURED.len());
        let error = Calibration::built_in("1.29").expect_err("no such calibration");
        assert!(error.to_string().contains("1.37, 1.30"), "{error}");
    }

    #[test]
    fn measured_keys_are_the_ones_under_a_measured_comment() {
        let text =
            "[a]\n# measured: 1 ±1%\n# a caveat\nx = 1\ny = 2\n[b]\nz = 3\n# measured: 2\nw = 4\n";
        assert_eq!(measured_keys(text), ["a.x", "b.w"]);
    }

    #[test]
    fn errors_point_at_line_and_column() {
        let text = DEFAULT_TOML.replace(
            "cpu_seconds_per_get = 0.002",
            "cpu_seconds_per_get = \"fast\"",
        );
        let line = text
            .lines()
            .position(|l| l.contains("\"fast\""))
            .expect("edited line")
            + 1;
        match Calibration::parse("cal.toml", &text) {
            Err(SimError::Parse {
                file,
                line: l,
                column,
                message,
            }) => {
                assert_eq!(
                    (file.as_str(), l, column),
                    ("cal.toml", line, 23),
                    "{message}"
                );
                assert!(message.contains("expected f64"), "{message}");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
        let v3 = DEFAULT_TOML.replace("format_version = 2", "format_version = 3");
        assert!(matches!(
            Calibration::parse("c", &v3),
            Err(SimError::Invalid { .. })
        ));
        let unknown = format!("{DEFAULT_TOML}\n[extra]\nx = 1\n");
        assert!(matches!(
            Calibration::parse("c", &unknown),
            Err(SimError::Parse { .. })
        ));
    }

    proptest! {
        /// Any text yields a calibration or an error whose position lies inside the text.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
            check_position(&text);
        }

        /// Damaging one line of a valid file gives a valid file or a well-placed error.
        #[test]
        fn damaged_default_is_reported_in_place(line in 0usize..80, junk in "[=\\[\\]\"a-z0-9.\\- ]{0,12}") {
            let mut lines: Vec<String> = DEFAULT_TOML.lines().map(str::to_owned).collect();
            let i = line % lines.len();
            lines[i] = junk;
            check_position(&lines.join("\n"));
        }
    }

    fn check_position(text: &str) {
        match Calibration::parse("f", text) {
            Ok(_) | Err(SimError::Invalid { .. } | SimError::Plan(_)) => {}
            Err(SimError::Parse { line, column, .. }) => {
                assert!(line >= 1 && line <= text.lines().count().max(1) + 1);
                assert!(column >= 1);
            }
        }
    }
}
