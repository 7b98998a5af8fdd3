//! Properties of the text-format parser on generated pages, a cross-check against the
//! `prometheus-parse` crate, pages shaped like the kubelet's and kube-apiserver's, and a large
//! page's bounded error storage.

use std::collections::HashSet;

use fleetwatch_telemetry::text::{self, MAX_STORED_ERRORS, MetricType, Page};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

// ---- a model of a page, and its rendering ---------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    /// `# TYPE .. untyped`.
    Untyped,
    /// No TYPE line.
    Bare,
    Histogram,
    Summary,
}

impl Kind {
    fn metric_type(self) -> MetricType {
        match self {
            Kind::Counter => MetricType::Counter,
            Kind::Gauge => MetricType::Gauge,
            Kind::Untyped | Kind::Bare => MetricType::Untyped,
            Kind::Histogram => MetricType::Histogram,
            Kind::Summary => MetricType::Summary,
        }
    }
}

type Labels = Vec<(String, String)>;

#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: Labels,
    value: f64,
    timestamp: Option<i64>,
    /// How to write it: the float format, `{}` for no labels, a trailing comma.
    style: u8,
}

#[derive(Debug, Clone)]
struct Series {
    labels: Labels,
    /// Histogram buckets' `le`, or summary quantiles.
    bounds: Vec<f64>,
    /// Bucket counts (cumulative) or quantile values, one per bound.
    values: Vec<f64>,
    sum: f64,
    count: f64,
}

#[derive(Debug, Clone)]
struct Family {
    name: String,
    help: Option<String>,
    kind: Kind,
    type_first: bool,
    series: Vec<Series>,
    samples: Vec<Sample>,
}

#[derive(Debug, Clone)]
struct SeriesSpec {
    labels: Labels,
    values: Vec<f64>,
    bounds: Vec<f64>,
    increments: Vec<u32>,
    timestamp: Option<i64>,
    styles: Vec<u8>,
}

#[derive(Debug, Clone)]
struct FamilySpec {
    kind: Kind,
    base: String,
    help: Option<String>,
    type_first: bool,
    series: Vec<SeriesSpec>,
}

/// What the generated pages may contain: everything valid, or what `prometheus-parse` reads
/// correctly (no colons in names, label values without `,` `=` `"` `\`, no `{}`, no blanks in
/// label sets).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scope {
    Full,
    PrometheusParse,
}

fn value() -> impl Strategy<Value = f64> {
    prop_oneof![
        3 => any::<f64>(),
        3 => (0u32..100_000).prop_map(f64::from),
        // Integers up to 2^53, written with all their digits (the parser's fast path).
        2 => (0u64..1 << 53).prop_map(|v| v as f64),
        1 => Just(f64::NAN),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => -1e6..1e6f64,
    ]
}

fn label_set(scope: Scope) -> impl Strategy<Value = Labels> {
    let value = match scope {
        Scope::Full => prop_oneof!["\\PC{0,8}", "[\"\\\\\n a-zé{}=,#\t]{0,8}", ".{0,4}",].boxed(),
        Scope::PrometheusParse => "[a-zA-Z0-9 _./:-]{0,12}".boxed(),
    };
    prop::collection::vec(("[a-zA-Z_][a-zA-Z0-9_]{0,8}", value), 0..4).prop_map(|pairs| {
        let mut seen = HashSet::new();
        pairs
            .into_iter()
            .filter(|(name, _)| !matches!(name.as_str(), "le" | "quantile" | "__name__"))
            .filter(|(name, _)| seen.insert(name.clone()))
            .collect()
    })
}

fn series_spec(scope: Scope) -> impl Strategy<Value = SeriesSpec> {
    let timestamp = match scope {
        Scope::Full => prop::option::of(any::<i64>()).boxed(),
        Scope::PrometheusParse => prop::option::of(0i64..2_000_000_000_000).boxed(),
    };
    (
        label_set(scope),
        prop::collection::vec(value(), 1..4),
        prop::collection::vec(-1e3..1e3f64, 0..5),
        prop::collection::vec(0u32..1000, 6),
        timestamp,
        prop::collection::vec(any::<u8>(), 10),
    )
        .prop_map(
            |(labels, values, bounds, increments, timestamp, styles)| SeriesSpec {
                labels,
                values,
                bounds,
                increments,
                timestamp,
                styles,
            },
        )
}

fn family_spec(scope: Scope) -> impl Strategy<Value = FamilySpec> {
    let kind = prop_oneof![
        Just(Kind::Counter),
        Just(Kind::Gauge),
        Just(Kind::Untyped),
        Just(Kind::Bare),
        Just(Kind::Histogram),
        Just(Kind::Summary),
    ];
    let base = match scope {
        Scope::Full => "[a-zA-Z0-9_:]{0,8}",
        Scope::PrometheusParse => "[a-zA-Z0-9_]{0,8}",
    };
    let help = prop::option::of(prop_oneof!["\\PC{0,20}", "[\\\\\na-z ]{0,10}"]);
    (
        kind,
        base,
        help,
        any::<bool>(),
        prop::collection::vec(series_spec(scope), 0..4),
    )
        .prop_map(|(kind, base, help, type_first, series)| FamilySpec {
            kind,
            base,
            help,
            type_first,
            series,
        })
}

fn page(scope: Scope) -> impl Strategy<Value = Vec<Family>> {
    prop::collection::vec(family_spec(scope), 0..7).prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(index, spec)| build(index, spec))
            .collect()
    })
}

/// Builds a family (and its expected samples) from its spec; `index` makes its name unique.
fn build(index: usize, spec: FamilySpec) -> Family {
    let name = format!("f{index}_{}", spec.base);
    // Leading blanks of HELP text are not part of it.
    let help = spec
        .help
        .map(|help| help.trim_start_matches([' ', '\t']).to_owned());
    let mut kind = spec.kind;
    if kind == Kind::Bare && spec.series.is_empty() && help.is_none() {
        // A family of no line at all would not be on the page.
        kind = Kind::Untyped;
    }
    let mut seen = HashSet::new();
    let mut series = Vec::new();
    let mut samples = Vec::new();
    for spec in spec.series {
        let mut key = spec.labels.clone();
        key.sort();
        if !seen.insert(key) {
            continue;
        }
        let style = |i: usize| spec.styles[i % spec.styles.len()];
        let sample = |name: String, labels: Labels, value: f64, style: u8| Sample {
            name,
            labels,
            value,
            timestamp: spec.timestamp,
            style,
        };
        match kind {
            Kind::Counter | Kind::Gauge | Kind::Untyped | Kind::Bare => {
                samples.push(sample(
                    name.clone(),
                    spec.labels.clone(),
                    spec.values[0],
                    style(0),
                ));
                series.push(Series {
                    labels: spec.labels,
                    bounds: Vec::new(),
                    values: Vec::new(),
                    sum: 0.0,
                    count: 0.0,
                });
            }
            Kind::Histogram => {
                let mut bounds = spec.bounds.clone();
                bounds.sort_by(f64::total_cmp);
                bounds.dedup();
                bounds.push(f64::INFINITY);
                let mut cumulative = 0.0;
                let mut values = Vec::new();
                for (i, &le) in bounds.iter().enumerate() {
                    cumulative += f64::from(spec.increments[i % spec.increments.len()]);
                    values.push(cumulative);
                    let mut labels = spec.labels.clone();
                    labels.push(("le".to_owned(), render_bound(le)));
                    samples.push(sample(
                        format!("{name}_bucket"),
                        labels,
                        cumulative,
                        style(i),
                    ));
                }
                let sum = spec.values[0];
                samples.push(sample(
                    format!("{name}_sum"),
                    spec.labels.clone(),
                    sum,
                    style(7),
                ));
                samples.push(sample(
                    format!("{name}_count"),
                    spec.labels.clone(),
                    cumulative,
                    style(8),
                ));
                series.push(Series {
                    labels: spec.labels,
                    bounds,
                    values,
                    sum,
                    count: cumulative,
                });
            }
            Kind::Summary => {
                let quantiles: Vec<f64> = spec
                    .bounds
                    .iter()
                    .map(|b| (b.abs() / 1e3).min(1.0))
                    .collect();
                for (i, &q) in quantiles.iter().enumerate() {
                    let mut labels = spec.labels.clone();
                    labels.push(("quantile".to_owned(), render_bound(q)));
                    let value = spec.values[i % spec.values.len()];
                    samples.push(sample(name.clone(), labels, value, style(i)));
                }
                let count = f64::from(spec.increments[0]);
                samples.push(sample(
                    format!("{name}_sum"),
                    spec.labels.clone(),
                    spec.values[0],
                    style(7),
                ));
                samples.push(sample(
                    format!("{name}_count"),
                    spec.labels.clone(),
                    count,
                    style(8),
                ));
            }
        }
    }
    Family {
        name,
        help,
        kind,
        type_first: spec.type_first,
        series,
        samples,
    }
}

fn render_bound(bound: f64) -> String {
    if bound == f64::INFINITY {
        "+Inf".to_owned()
    } else {
        bound.to_string()
    }
}

/// Writes a float in one of the ways Go and Rust do.
fn render_value(value: f64, style: u8) -> String {
    if value.is_nan() {
        return "NaN".to_owned();
    }
    if value.is_infinite() {
        let sign = if value > 0.0 { "+" } else { "-" };
        return match style % 3 {
            0 => format!("{sign}Inf"),
            1 if value > 0.0 => "Inf".to_owned(),
            _ => format!("{sign}inf"),
        };
    }
    match style % 4 {
        0 => format!("{value}"),
        1 => format!("{value:e}"),
        2 => format!("{value:?}"),
        // Go's %g-like exponent: 1e+06, 1.5e-07.
        _ => {
            let scientific = format!("{value:E}");
            match scientific.split_once('E') {
                Some((mantissa, exponent)) => {
                    let (sign, digits) = match exponent.strip_prefix('-') {
                        Some(digits) => ('-', digits),
                        None => ('+', exponent),
                    };
                    format!("{mantissa}e{sign}{digits:0>2}")
                }
                None => scientific,
            }
        }
    }
}

fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// The page's lines, without their newlines.
fn render(families: &[Family], scope: Scope) -> Vec<String> {
    let mut lines = Vec::new();
    for family in families {
        let help = family
            .help
            .as_ref()
            .map(|help| format!("# HELP {} {}", family.name, escape_help(help)));
        let kind = match family.kind {
            Kind::Bare => None,
            kind => Some(format!("# TYPE {} {}", family.name, kind.metric_type())),
        };
        let (first, second) = if family.type_first {
            (kind, help)
        } else {
            (help, kind)
        };
        lines.extend(first);
        lines.extend(second);
        for sample in &family.samples {
            lines.push(render_sample(sample, scope));
        }
    }
    lines
}

fn render_sample(sample: &Sample, scope: Scope) -> String {
    let full = scope == Scope::Full;
    let mut line = sample.name.clone();
    if !sample.labels.is_empty() || (full && sample.style & 0x10 != 0) {
        line.push('{');
        let separator = if full && sample.style & 0x40 != 0 {
            " , "
        } else {
            ","
        };
        let pairs: Vec<String> = sample
            .labels
            .iter()
            .map(|(name, value)| format!("{name}=\"{}\"", escape_label_value(value)))
            .collect();
        line.push_str(&pairs.join(separator));
        if full && sample.style & 0x20 != 0 && !sample.labels.is_empty() {
            line.push(',');
        }
        line.push('}');
    }
    line.push(if full && sample.style & 0x80 != 0 {
        '\t'
    } else {
        ' '
    });
    line.push_str(&render_value(sample.value, sample.style));
    if let Some(timestamp) = sample.timestamp {
        line.push(' ');
        line.push_str(&timestamp.to_string());
    }
    line
}

fn join(lines: &[String]) -> String {
    let mut page = String::new();
    for line in lines {
        page.push_str(line);
        page.push('\n');
    }
    page
}

fn same_value(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

/// Asserts that `page` has exactly the families and samples of `model`.
fn assert_page_is(page: &Page<'_>, model: &[Family]) -> Result<(), TestCaseError> {
    prop_assert_eq!(page.families().len(), model.len());
    for (got, want) in page.families().zip(model) {
        prop_assert_eq!(got.name(), want.name.as_str());
        prop_assert_eq!(got.help(), want.help.as_deref());
        prop_assert_eq!(got.metric_type(), want.kind.metric_type());
        prop_assert_eq!(got.len(), want.samples.len(), "family {}", want.name);
        for (sample, expected) in got.samples().zip(&want.samples) {
            prop_assert_eq!(sample.name, expected.name.as_str());
            let labels: Vec<(&str, &str)> = sample
                .labels
                .iter()
                .map(|label| (label.name, &*label.value))
                .collect();
            let expected_labels: Vec<(&str, &str)> = expected
                .labels
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str()))
                .collect();
            prop_assert_eq!(labels, expected_labels);
            prop_assert!(
                same_value(sample.value, expected.value),
                "{} is {} not {}",
                expected.name,
                sample.value,
                expected.value
            );
            prop_assert_eq!(sample.timestamp_ms, expected.timestamp);
        }
        if want.kind == Kind::Histogram {
            let histograms = got.histograms();
            prop_assert_eq!(histograms.len(), want.series.len());
            for (h, series) in histograms.iter().zip(&want.series) {
                let labels: Vec<(&str, &str)> = h
                    .labels
                    .iter()
                    .map(|label| (label.name, &*label.value))
                    .collect();
                let expected: Vec<(&str, &str)> = series
                    .labels
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_str()))
                    .collect();
                prop_assert_eq!(labels, expected);
                let buckets: Vec<(f64, f64)> = h.buckets.iter().map(|b| (b.le, b.count)).collect();
                let expected: Vec<(f64, f64)> = series
                    .bounds
                    .iter()
                    .copied()
                    .zip(series.values.iter().copied())
                    .collect();
                prop_assert_eq!(buckets, expected);
                prop_assert!(h.sum.is_some_and(|sum| same_value(sum, series.sum)));
                prop_assert_eq!(h.count, Some(series.count));
            }
        } else {
            prop_assert!(got.histograms().is_empty());
        }
    }
    Ok(())
}

/// Lines that are invalid wherever they stand, and change nothing of the page's other lines.
fn corrupt_line(page_lines: &[String]) -> impl Strategy<Value = String> + use<> {
    let copies: Vec<String> = page_lines
        .iter()
        .filter(|line| !line.starts_with('#'))
        .cloned()
        .collect();
    let fixed = prop::sample::select(vec![
        "9bad_name 1".to_owned(),
        "zz_corrupt{a=\"unterminated} 1".to_owned(),
        "zz_corrupt{a=\"\\q\"} 1".to_owned(),
        "zz_corrupt{a=\"1\",a=\"2\"} 1".to_owned(),
        "zz_corrupt{1a=\"b\"} 1".to_owned(),
        "zz_corrupt{a=\"b\" 1".to_owned(),
        "zz_corrupt 1 2 3".to_owned(),
        "zz_corrupt".to_owned(),
        "zz_corrupt one".to_owned(),
        "zz_corrupt 1 later".to_owned(),
        "# TYPE zz_corrupt timer".to_owned(),
        "# TYPE zz_corrupt".to_owned(),
        "# HELP zz_corrupt bad \\t escape".to_owned(),
        "zz_corrupt{__name__=\"x\"} 1".to_owned(),
        "zz-corrupt 1".to_owned(),
    ]);
    if copies.is_empty() {
        fixed.boxed()
    } else {
        // A real sample line with more after it: a bad timestamp or trailing garbage.
        let copy = prop::sample::select(copies).prop_map(|line| format!("{line} 1 x"));
        prop_oneof![fixed, copy].boxed()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn rendered_pages_parse_back_to_their_families(model in page(Scope::Full)) {
        let text = join(&render(&model, Scope::Full));
        let parsed = text::parse(&text);
        prop_assert_eq!(parsed.error_count(), 0, "{:?}\n{}", parsed.errors(), text);
        assert_page_is(&parsed, &model)?;
        // The same page as bytes parses the same.
        assert_page_is(&text::parse_bytes(text.as_bytes()), &model)?;
    }

    #[test]
    fn one_corrupted_line_is_one_error_naming_it(
        (model, lines, at, bad) in page(Scope::Full).prop_flat_map(|model| {
            let lines = render(&model, Scope::Full);
            let n = lines.len();
            let bad = corrupt_line(&lines);
            (Just(model), Just(lines), 0..=n, bad)
        })
    ) {
        let mut lines = lines;
        lines.insert(at, bad.clone());
        let text = join(&lines);
        let parsed = text::parse(&text);
        prop_assert_eq!(parsed.error_count(), 1, "{:?}\n{}", parsed.errors(), text);
        let error = &parsed.errors()[0];
        prop_assert_eq!(error.line, at + 1, "{}", error);
        // The error keeps the line, cut to a bounded length.
        prop_assert!(bad.starts_with(&error.text));
        prop_assert_eq!(
            error.text.chars().count(),
            bad.chars().count().min(text::MAX_ERROR_TEXT_CHARS)
        );
        assert_page_is(&parsed, &model)?;
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_errors_are_bounded(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check_bounds(&text::parse_bytes(&bytes))?;
    }

    #[test]
    fn arbitrary_text_never_panics_and_errors_are_bounded(
        text in prop_oneof![
            any::<String>(),
            "[a-z_{}=\",#\\\\ \t\n.0-9+eE:-]{0,300}",
            "((# (HELP|TYPE) )?[a-z_]{1,3}(\\{[a-z]{1,2}=\"[a-z\\\\\"]{0,3}\"[,}]{0,2})?( [0-9.eE+-]{0,4}){0,3}\n){0,30}",
        ]
    ) {
        check_bounds(&text::parse(&text))?;
    }

    #[test]
    fn damaged_valid_pages_never_panic(
        (text, cuts) in page(Scope::Full).prop_flat_map(|model| {
            let text = join(&render(&model, Scope::Full));
            let n = text.len().max(1);
            (Just(text), prop::collection::vec((0..n, any::<u8>()), 1..8))
        })
    ) {
        let mut bytes = text.into_bytes();
        for (at, byte) in cuts {
            if at < bytes.len() {
                bytes[at] = byte;
            }
        }
        check_bounds(&text::parse_bytes(&bytes))?;
    }

    #[test]
    fn samples_agree_with_prometheus_parse(model in page(Scope::PrometheusParse)) {
        let text = join(&render(&model, Scope::PrometheusParse));
        let ours = text::parse(&text);
        prop_assert_eq!(ours.error_count(), 0, "{:?}", ours.errors());
        let theirs = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(flatten_ours(&ours), flatten_theirs(&theirs), "{}", text);
    }
}

fn check_bounds(page: &Page<'_>) -> Result<(), TestCaseError> {
    prop_assert!(page.error_count() <= page.line_count());
    prop_assert!(page.errors().len() <= MAX_STORED_ERRORS);
    prop_assert!(page.errors().len() <= page.error_count());
    prop_assert!(page.sample_count() + page.error_count() <= page.line_count());
    let mut previous = 0;
    for error in page.errors() {
        prop_assert!(error.line > previous && error.line <= page.line_count());
        prop_assert!(error.column >= 1);
        prop_assert!(error.text.chars().count() <= text::MAX_ERROR_TEXT_CHARS);
        previous = error.line;
    }
    let mut samples = 0;
    for family in page.families() {
        samples += family.samples().count();
        let _ = family.histograms();
    }
    prop_assert_eq!(samples, page.sample_count());
    Ok(())
}

/// A sample as both parsers can say it: name, sorted labels (`le` and `quantile` as floats
/// written the same way), value.
type Flat = (String, Vec<(String, String)>, String);

fn canonical(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else {
        format!("{value:?}")
    }
}

fn flatten_ours(page: &Page<'_>) -> Vec<Flat> {
    let mut flat = Vec::new();
    for family in page.families() {
        for sample in family.samples() {
            let special = match (
                family.metric_type(),
                sample.name.strip_prefix(family.name()),
            ) {
                (MetricType::Histogram, Some("_bucket")) => Some("le"),
                (MetricType::Summary, Some("")) => Some("quantile"),
                _ => None,
            };
            let mut labels: Vec<(String, String)> = sample
                .labels
                .iter()
                .map(|label| {
                    let value = if Some(label.name) == special {
                        canonical(label.value.parse::<f64>().unwrap_or(f64::NAN))
                    } else {
                        label.value.to_string()
                    };
                    (label.name.to_owned(), value)
                })
                .collect();
            labels.sort();
            flat.push((sample.name.to_owned(), labels, canonical(sample.value)));
        }
    }
    flat.sort();
    flat
}

fn flatten_theirs(scrape: &prometheus_parse::Scrape) -> Vec<Flat> {
    use prometheus_parse::Value;
    let mut flat = Vec::new();
    for sample in &scrape.samples {
        let labels = || -> Vec<(String, String)> {
            sample
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let with = |name: &str, value: f64| {
            let mut labels = labels();
            labels.push((name.to_owned(), canonical(value)));
            labels.sort();
            labels
        };
        match &sample.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => {
                let mut labels = labels();
                labels.sort();
                flat.push((sample.metric.clone(), labels, canonical(*v)));
            }
            Value::Histogram(buckets) => {
                for bucket in buckets {
                    flat.push((
                        format!("{}_bucket", sample.metric),
                        with("le", bucket.less_than),
                        canonical(bucket.count),
                    ));
                }
            }
            Value::Summary(quantiles) => {
                for quantile in quantiles {
                    flat.push((
                        sample.metric.clone(),
                        with("quantile", quantile.quantile),
                        canonical(quantile.count),
                    ));
                }
            }
        }
    }
    flat.sort();
    flat
}

// ---- pages shaped like the real ones ---------------------------------------------------------

#[test]
fn a_kubelet_resource_page_parses() {
    let text = include_str!("fixtures/text/kubelet_metrics_resource.txt");
    let page = text::parse(text);
    assert_eq!(page.error_count(), 0, "{:?}", page.errors());
    let memory = page
        .family("container_memory_working_set_bytes")
        .expect("family");
    assert_eq!(memory.metric_type(), MetricType::Gauge);
    assert!(memory.help().is_some_and(|h| h.starts_with("[STABLE]")));
    let coredns = memory
        .samples()
        .find(|s| s.label("container") == Some("coredns"))
        .expect("coredns");
    assert_eq!(coredns.label("namespace"), Some("kube-system"));
    assert_eq!(coredns.value, 1.6347136e7);
    assert_eq!(coredns.timestamp_ms, Some(1_717_171_717_123));
    let node_cpu = page.family("node_cpu_usage_seconds_total").expect("family");
    assert_eq!(node_cpu.metric_type(), MetricType::Counter);
    assert_eq!(
        node_cpu.samples().next().map(|s| s.value),
        Some(3571.592301)
    );
    assert_eq!(
        page.family("scrape_error")
            .and_then(|f| f.samples().next())
            .map(|s| s.value),
        Some(0.0)
    );
}

#[test]
fn an_apiserver_page_gives_per_verb_histograms() {
    let text = include_str!("fixtures/text/apiserver_metrics.txt");
    let page = text::parse(text);
    assert_eq!(page.error_count(), 0, "{:?}", page.errors());
    let duration = page
        .family("apiserver_request_duration_seconds")
        .expect("family");
    assert_eq!(duration.metric_type(), MetricType::Histogram);
    let histograms = duration.histograms();
    let list = histograms
        .iter()
        .find(|h| h.label("verb") == Some("LIST") && h.label("resource") == Some("pods"))
        .expect("LIST pods");
    assert_eq!(list.label("scope"), Some("cluster"));
    assert_eq!(list.buckets.last().map(|b| b.le), Some(f64::INFINITY));
    assert_eq!(list.buckets.last().map(|b| b.count), list.count);
    assert!(
        list.buckets
            .windows(2)
            .all(|w| w[0].le < w[1].le && w[0].count <= w[1].count)
    );
    assert!(list.sum.is_some());
    let requests = page.family("apiserver_request_total").expect("family");
    let throttled: f64 = requests
        .samples()
        .filter(|s| s.label("code") == Some("429"))
        .map(|s| s.value)
        .sum();
    assert_eq!(throttled, 12.0);
    let inflight = page
        .family("apiserver_current_inflight_requests")
        .expect("family");
    assert_eq!(inflight.len(), 2);
}

// ---- a large page ----------------------------------------------------------------------------

#[test]
fn a_10_mb_page_with_garbage_keeps_bounded_errors() {
    let mut text = String::with_capacity(11 << 20);
    text.push_str("# HELP big_seconds A histogram.\n# TYPE big_seconds histogram\n");
    let mut good = 0;
    let mut bad = 0;
    let mut series = 0;
    while text.len() < 10 << 20 {
        for le in ["0.005", "0.1", "1", "+Inf"] {
            text.push_str(&format!(
                "big_seconds_bucket{{verb=\"GET\",resource=\"r{series}\",le=\"{le}\"}} {series}\n"
            ));
            good += 1;
        }
        // Every series has one line of garbage among its lines.
        text.push_str("big_seconds_bucket{verb=\"GET\",resource=\"oops} 1\n");
        bad += 1;
        text.push_str(&format!(
            "big_seconds_sum{{verb=\"GET\",resource=\"r{series}\"}} 1.5\n\
             big_seconds_count{{verb=\"GET\",resource=\"r{series}\"}} {series}\n"
        ));
        good += 2;
        series += 1;
    }
    let page = text::parse(&text);
    assert!(bad > 20_000, "{bad}");
    assert_eq!(page.error_count(), bad);
    assert_eq!(page.errors().len(), MAX_STORED_ERRORS);
    assert_eq!(page.sample_count(), good);
    assert_eq!(page.families().len(), 1);
    assert_eq!(page.line_count(), good + bad + 2);
    let histograms = page.family("big_seconds").expect("family").histograms();
    assert_eq!(histograms.len(), series);
    assert!(
        histograms
            .iter()
            .all(|h| h.buckets.len() == 4 && h.count.is_some())
    );
}

#[test]
fn a_10_mb_page_of_garbage_keeps_bounded_errors() {
    let line = "not a metric line at all {{{ \"\"\" \\\\ \n";
    let text = line.repeat((10 << 20) / line.len());
    let page = text::parse(&text);
    assert_eq!(page.error_count(), text.lines().count());
    assert_eq!(page.errors().len(), MAX_STORED_ERRORS);
    assert_eq!(page.sample_count(), 0);
    assert!(page.errors().iter().all(|e| e.text.len() <= line.len()));
}
