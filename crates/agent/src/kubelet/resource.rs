//! `/metrics/resource`, filtered: the allowlisted families ([`FAMILIES`]) under their own names
//! and labels, with `node` added; every other family on the page is ignored.
//!
//! The names, types and labels are the kubelet's (`pkg/kubelet/metrics/collectors/
//! resource_metrics.go`). A page with a rejected line is refused whole: the kubelet writes it
//! by machine, so a bad line means a cut or corrupted body, and a partial page would silently
//! lose pods. A sample of an allowed family whose labels are not exactly the expected ones is
//! dropped and counted: a family that grew a label must not collapse into duplicate series.

use fleetwatch_telemetry::page::Kind;
use fleetwatch_telemetry::text::{Label, Page};

use super::{Failure, MAX_SAMPLES};
use crate::snapshot::{Family, LabelSet};

/// One family re-exposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// Its labels, exactly (`node` is added).
    pub labels: &'static [&'static str],
}

const CONTAINER: &[&str] = &["container", "namespace", "pod"];
const POD: &[&str] = &["namespace", "pod"];

const fn allowed(
    name: &'static str,
    help: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
) -> Allowed {
    Allowed {
        name,
        help,
        kind,
        labels,
    }
}

/// The families taken from the page, with the kubelet's help texts.
pub const FAMILIES: [Allowed; 12] = [
    allowed(
        "node_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the node in core-seconds",
        Kind::Counter,
        &[],
    ),
    allowed(
        "node_memory_working_set_bytes",
        "Current working set of the node in bytes",
        Kind::Gauge,
        &[],
    ),
    allowed(
        "node_swap_usage_bytes",
        "Current swap usage of the node in bytes. Reported only on non-windows systems",
        Kind::Gauge,
        &[],
    ),
    allowed(
        "container_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the container in core-seconds",
        Kind::Counter,
        CONTAINER,
    ),
    allowed(
        "container_memory_working_set_bytes",
        "Current working set of the container in bytes",
        Kind::Gauge,
        CONTAINER,
    ),
    allowed(
        "container_swap_usage_bytes",
        "Current amount of the container swap usage in bytes. Reported only on non-windows \
         systems",
        Kind::Gauge,
        CONTAINER,
    ),
    allowed(
        "container_start_time_seconds",
        "Start time of the container since unix epoch in seconds",
        Kind::Gauge,
        CONTAINER,
    ),
    allowed(
        "pod_cpu_usage_seconds_total",
        "Cumulative cpu time consumed by the pod in core-seconds",
        Kind::Counter,
        POD,
    ),
    allowed(
        "pod_memory_working_set_bytes",
        "Current working set of the pod in bytes",
        Kind::Gauge,
        POD,
    ),
    allowed(
        "pod_swap_usage_bytes",
        "Current amount of the pod swap usage in bytes. Reported only on non-windows systems",
        Kind::Gauge,
        POD,
    ),
    allowed(
        "resource_scrape_error",
        "1 if there was an error while getting container metrics, 0 otherwise",
        Kind::Gauge,
        &[],
    ),
    allowed(
        "scrape_error",
        "1 if there was an error while getting container metrics, 0 otherwise (deprecated in \
         1.29)",
        Kind::Gauge,
        &[],
    ),
];

/// What a page gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Filtered {
    /// One per allowlisted family on the page, in [`FAMILIES`]' order.
    pub families: Vec<Family>,
    /// Samples of allowed families dropped for their labels.
    pub unexpected: u64,
}

/// The allowlisted families of `page`, each sample labelled `node`. Fails on a page with a
/// rejected line, one with none of the families, or more than [`MAX_SAMPLES`] samples kept.
pub fn filter(page: &Page<'_>, node: &str) -> Result<Filtered, Failure> {
    if let Some(summary) = page.error_summary() {
        return Err(Failure::new("parse", summary));
    }
    let mut filtered = Filtered {
        families: Vec::new(),
        unexpected: 0,
    };
    let mut kept = 0usize;
    for allowed in &FAMILIES {
        let Some(family) = page.family(allowed.name) else {
            continue;
        };
        let mut out = Family::new(allowed.name, allowed.help, allowed.kind);
        for sample in family.samples() {
            let labels = (sample.name == allowed.name)
                .then(|| labels(allowed, sample.labels, node))
                .flatten();
            let Some(labels) = labels else {
                filtered.unexpected += 1;
                continue;
            };
            kept += 1;
            if kept > MAX_SAMPLES {
                return Err(Failure::new(
                    "too_many_samples",
                    format!("more than {MAX_SAMPLES} resource samples"),
                ));
            }
            out.push(labels, sample.value);
        }
        filtered.families.push(out);
    }
    if filtered.families.is_empty() {
        return Err(Failure::new(
            "parse",
            "none of the kubelet's resource metrics on the page: is --kubelet a kubelet?",
        ));
    }
    Ok(filtered)
}

/// `node` and the sample's labels in `allowed`'s order, if the sample has exactly those.
fn labels(allowed: &Allowed, labels: &[Label<'_>], node: &str) -> Option<LabelSet> {
    if labels.len() != allowed.labels.len() {
        return None;
    }
    let mut set = Vec::with_capacity(labels.len() + 1);
    set.push(("node", node.to_owned()));
    for name in allowed.labels {
        // The parser refuses a label twice, so equal lengths and all found is exactly.
        let label = labels.iter().find(|label| label.name == *name)?;
        set.push((*name, label.value.clone().into_owned()));
    }
    Some(LabelSet(set))
}

#[cfg(test)]
mod tests {
    use fleetwatch_telemetry::text;
    use proptest::prelude::*;

    use super::*;

    const FIXTURE: &str = include_str!("../../tests/fixtures/kubelet/metrics-resource.txt");

    fn filtered(page: &str) -> Result<Filtered, Failure> {
        filter(&text::parse(page), "node-7")
    }

    #[test]
    fn the_fixture_gives_every_family_it_has() {
        let filtered = filtered(FIXTURE).expect("the fixture");
        assert_eq!(filtered.unexpected, 0);
        let names: Vec<_> = filtered.families.iter().map(|f| f.name).collect();
        assert_eq!(
            names.len(),
            11,
            "all but the hidden scrape_error: {names:?}"
        );
        let cpu = &filtered.families[3];
        assert_eq!(cpu.name, "container_cpu_usage_seconds_total");
        assert_eq!(cpu.samples.len(), 4);
        assert_eq!(
            cpu.samples[0].0,
            LabelSet::of([
                ("node", "node-7"),
                ("container", "coredns"),
                ("namespace", "kube-system"),
                ("pod", "coredns-6f6b679f8f-x7lqd"),
            ])
        );
    }

    #[test]
    fn other_families_and_unexpected_labels_are_left_out() {
        let page = "# TYPE other_total counter\nother_total{pod=\"a\"} 1\n\
                    # TYPE pod_memory_working_set_bytes gauge\n\
                    pod_memory_working_set_bytes{namespace=\"n\",pod=\"a\"} 5 1700000000000\n\
                    pod_memory_working_set_bytes{pod=\"b\",namespace=\"n\"} 6\n\
                    pod_memory_working_set_bytes{namespace=\"n\",pod=\"c\",extra=\"x\"} 7\n\
                    pod_memory_working_set_bytes{namespace=\"n\"} 8\n";
        let filtered = filtered(page).expect("a page");
        assert_eq!(filtered.unexpected, 2);
        assert_eq!(filtered.families.len(), 1);
        let samples = &filtered.families[0].samples;
        assert_eq!(samples.len(), 2);
        assert_eq!(
            samples[1],
            (
                LabelSet::of([("node", "node-7"), ("namespace", "n"), ("pod", "b")]),
                6.0
            )
        );
    }

    #[test]
    fn a_page_with_a_bad_line_or_without_the_families_is_refused() {
        let cut = &FIXTURE[..FIXTURE.len() - 3];
        assert_eq!(filtered(cut).expect_err("cut").reason, "parse");
        assert_eq!(
            filtered("# a comment\nx 1\n").expect_err("other").reason,
            "parse"
        );
    }

    #[test]
    fn too_many_samples_are_refused() {
        let mut page = String::from("# TYPE pod_cpu_usage_seconds_total counter\n");
        for i in 0..=MAX_SAMPLES {
            page.push_str(&format!(
                "pod_cpu_usage_seconds_total{{namespace=\"n\",pod=\"p{i}\"}} 1\n"
            ));
        }
        assert_eq!(
            filtered(&page).expect_err("too many").reason,
            "too_many_samples"
        );
    }

    /// Lines made of the allowlisted names, label names and odd values, so that arbitrary
    /// input reaches the filter's label matching, not only the parser's rejections.
    fn line() -> impl Strategy<Value = String> {
        let name = prop::sample::select(
            FAMILIES
                .iter()
                .map(|f| f.name)
                .chain(["x", "# TYPE pod_cpu_usage_seconds_total gauge", ""])
                .collect::<Vec<_>>(),
        );
        let label = prop::sample::select(vec!["container", "namespace", "pod", "node", "le"]);
        let labels = prop::collection::vec((label, "[a-z\"\\\\]{0,4}"), 0..4);
        let value = prop::sample::select(vec!["1", "NaN", "-Inf", "2.5e+09", "x", ""]);
        (name, labels, value, any::<bool>()).prop_map(|(name, labels, value, braces)| {
            let labels: Vec<String> = labels.iter().map(|(n, v)| format!("{n}=\"{v}\"")).collect();
            if braces {
                format!("{name}{{{}}} {value}", labels.join(","))
            } else {
                format!("{name} {value}")
            }
        })
    }

    proptest! {
        #[test]
        fn the_filter_never_panics_on_any_text(page in any::<String>()) {
            let _ = filtered(&page);
        }

        #[test]
        fn the_filter_keeps_no_more_than_the_page_has(lines in prop::collection::vec(line(), 0..40)) {
            let page = lines.join("\n") + "\n";
            let parsed = text::parse(&page);
            if let Ok(filtered) = filter(&parsed, "n") {
                let kept: usize = filtered.families.iter().map(|f| f.samples.len()).sum();
                prop_assert!(kept + filtered.unexpected as usize <= parsed.sample_count());
                for (labels, _) in filtered.families.iter().flat_map(|f| &f.samples) {
                    prop_assert_eq!(labels.0.first().map(|l| l.0), Some("node"));
                }
            }
        }
    }
}
