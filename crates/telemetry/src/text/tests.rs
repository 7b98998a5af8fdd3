use std::borrow::Cow;

use super::*;

/// The page's only error, asserting there is exactly one.
fn only_error(page: &str) -> LineError {
    let parsed = parse(page);
    assert_eq!(parsed.error_count(), 1, "{page:?}: {:?}", parsed.errors());
    parsed.errors()[0].clone()
}

fn rejects(line: &str, reason: Reason) {
    let page = format!("ok 1\n{line}\nalso_ok 2\n");
    let error = only_error(&page);
    assert_eq!(error.reason, reason, "{line:?}: {error}");
    assert_eq!(error.line, 2, "{line:?}");
    assert_eq!(error.text, line);
    // The lines around it still count.
    let parsed = parse(&page);
    let names: Vec<&str> = parsed.samples().map(|s| s.name).collect();
    assert_eq!(names, ["ok", "also_ok"], "{line:?}");
}

fn values(page: &str) -> Vec<f64> {
    let parsed = parse(page);
    assert_eq!(parsed.error_count(), 0, "{page:?}: {:?}", parsed.errors());
    parsed.samples().map(|s| s.value).collect()
}

fn labels<'p>(sample: &Sample<'p, '_>) -> Vec<(&'p str, &'p str)> {
    sample
        .labels
        .iter()
        .map(|label| (label.name, &*label.value))
        .collect()
}

/// The example of the format's documentation (exposition_formats.md), with a summary.
const DOCS_EXAMPLE: &str = r#"# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method="post",code="200"} 1027 1395066363000
http_requests_total{method="post",code="400"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path="C:\\DIR\\FILE.TXT",error="Cannot find file:\n\"FILE.TXT\""} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem="division by zero"} +Inf -3982045

# A histogram, which has a pretty complex representation in the text format:
# HELP http_request_duration_seconds A histogram of the request duration.
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.05"} 24054
http_request_duration_seconds_bucket{le="0.1"} 33444
http_request_duration_seconds_bucket{le="0.2"} 100392
http_request_duration_seconds_bucket{le="0.5"} 129389
http_request_duration_seconds_bucket{le="1"} 133988
http_request_duration_seconds_bucket{le="+Inf"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320

# Finally a summary, which has a complex representation, too:
# HELP rpc_duration_seconds A summary of the RPC duration in seconds.
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile="0.01"} 3102
rpc_duration_seconds{quantile="0.05"} 3272
rpc_duration_seconds{quantile="0.5"} 4773
rpc_duration_seconds{quantile="0.9"} 9001
rpc_duration_seconds{quantile="0.99"} 76656
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
"#;

#[test]
fn the_documentation_example_parses_into_its_families() {
    let page = parse(DOCS_EXAMPLE);
    assert_eq!(page.error_count(), 0, "{:?}", page.errors());
    assert_eq!(page.line_count(), DOCS_EXAMPLE.lines().count());
    let families: Vec<(&str, MetricType, usize)> = page
        .families()
        .map(|f| (f.name(), f.metric_type(), f.len()))
        .collect();
    assert_eq!(
        families,
        [
            ("http_requests_total", MetricType::Counter, 2),
            ("msdos_file_access_time_seconds", MetricType::Untyped, 1),
            (
                "metric_without_timestamp_and_labels",
                MetricType::Untyped,
                1
            ),
            ("something_weird", MetricType::Untyped, 1),
            ("http_request_duration_seconds", MetricType::Histogram, 8),
            ("rpc_duration_seconds", MetricType::Summary, 7),
        ]
    );
    let requests = page.family("http_requests_total").expect("family");
    assert_eq!(requests.help(), Some("The total number of HTTP requests."));
    assert_eq!(requests.line(), 1);
    let first = requests.samples().next().expect("sample");
    assert_eq!(labels(&first), [("method", "post"), ("code", "200")]);
    assert_eq!(first.value, 1027.0);
    assert_eq!(first.timestamp_ms, Some(1_395_066_363_000));
    assert_eq!(first.label("code"), Some("200"));
    assert_eq!(first.label("nope"), None);

    let msdos = page
        .family("msdos_file_access_time_seconds")
        .expect("family");
    let sample = msdos.samples().next().expect("sample");
    assert_eq!(sample.label("path"), Some(r"C:\DIR\FILE.TXT"));
    assert_eq!(
        sample.label("error"),
        Some("Cannot find file:\n\"FILE.TXT\"")
    );
    assert_eq!(sample.value, 1.458255915e9);
    assert_eq!(msdos.help(), None);

    let weird = page.family("something_weird").expect("family");
    let sample = weird.samples().next().expect("sample");
    assert_eq!(sample.value, f64::INFINITY);
    assert_eq!(sample.timestamp_ms, Some(-3_982_045));

    let summary = page.family("rpc_duration_seconds").expect("family");
    let names: Vec<&str> = summary.samples().map(|s| s.name).collect();
    assert_eq!(names[0], "rpc_duration_seconds");
    assert_eq!(
        names[5..],
        ["rpc_duration_seconds_sum", "rpc_duration_seconds_count"]
    );
    assert_eq!(summary.samples().nth(5).map(|s| s.value), Some(1.7560473e7));
    // Family lookup is by the base name only.
    assert!(page.family("rpc_duration_seconds_sum").is_none());
}

#[test]
fn histograms_group_buckets_by_their_other_labels() {
    let page = parse(DOCS_EXAMPLE);
    let family = page
        .family("http_request_duration_seconds")
        .expect("family");
    let histograms = family.histograms();
    assert_eq!(histograms.len(), 1);
    let h = &histograms[0];
    assert!(h.labels.is_empty());
    let les: Vec<f64> = h.buckets.iter().map(|b| b.le).collect();
    assert_eq!(les, [0.05, 0.1, 0.2, 0.5, 1.0, f64::INFINITY]);
    assert_eq!(h.buckets[5].count, 144_320.0);
    assert_eq!(h.sum, Some(53423.0));
    assert_eq!(h.count, Some(144_320.0));
    // Other families have none.
    assert!(
        page.family("rpc_duration_seconds")
            .expect("f")
            .histograms()
            .is_empty()
    );
}

#[test]
fn histogram_series_are_found_whatever_their_label_order_and_interleaving() {
    let page = parse(
        "# TYPE d histogram\n\
         d_bucket{verb=\"GET\",scope=\"cluster\",le=\"1\"} 1\n\
         d_bucket{verb=\"LIST\",le=\"1\",scope=\"cluster\"} 5\n\
         d_bucket{le=\"+Inf\",scope=\"cluster\",verb=\"GET\"} 2\n\
         d_bucket{verb=\"GET\",scope=\"cluster\",le=\"0.5\"} 0\n\
         d_sum{verb=\"GET\",scope=\"cluster\"} 1.5\n\
         d_count{scope=\"cluster\",verb=\"GET\"} 2\n\
         d_bucket{verb=\"LIST\",scope=\"cluster\",le=\"+Inf\"} 7\n",
    );
    assert_eq!(page.error_count(), 0, "{:?}", page.errors());
    let histograms = page.family("d").expect("family").histograms();
    assert_eq!(histograms.len(), 2);
    let get = &histograms[0];
    assert_eq!(get.label("verb"), Some("GET"));
    assert_eq!(get.label("le"), None);
    assert_eq!(get.labels.len(), 2);
    assert_eq!(
        get.buckets,
        [
            Bucket {
                le: 0.5,
                count: 0.0
            },
            Bucket {
                le: 1.0,
                count: 1.0
            },
            Bucket {
                le: f64::INFINITY,
                count: 2.0
            },
        ]
    );
    assert_eq!((get.sum, get.count), (Some(1.5), Some(2.0)));
    let list = &histograms[1];
    assert_eq!(list.label("verb"), Some("LIST"));
    assert_eq!(list.buckets.len(), 2);
    assert_eq!((list.sum, list.count), (None, None));
}

#[test]
fn escaped_label_values_are_unescaped_and_only_they_allocate() {
    let page = parse("x{a=\"plain\",b=\"q\\\"uote\\\\back\\nnew\",c=\"\"} 1\n");
    assert_eq!(page.error_count(), 0, "{:?}", page.errors());
    let sample = page.samples().next().expect("sample");
    assert_eq!(
        labels(&sample),
        [("a", "plain"), ("b", "q\"uote\\back\nnew"), ("c", "")]
    );
    assert!(matches!(sample.labels[0].value, Cow::Borrowed(_)));
    assert!(matches!(sample.labels[1].value, Cow::Owned(_)));
    assert!(matches!(sample.labels[2].value, Cow::Borrowed(_)));
}

#[test]
fn label_values_may_hold_any_character_but_newline() {
    let page = parse("x{a=\"}{,= #é\t\\\\\"} 1\n");
    assert_eq!(page.error_count(), 0, "{:?}", page.errors());
    assert_eq!(
        page.samples().next().and_then(|s| s.label("a")),
        Some("}{,= #é\t\\")
    );
}

#[test]
fn empty_label_sets_trailing_commas_and_blanks_are_valid() {
    let page = parse(
        "a{} 1\n\
         b{x=\"1\",} 2\n\
         c { x = \"1\" , y=\"2\" , } 3\n\
         \t  d{x=\"1\"}4\n\
         e 5   \n\
         f\t6\t7\t\n",
    );
    assert_eq!(page.error_count(), 0, "{:?}", page.errors());
    let samples: Vec<(&str, usize, f64, Option<i64>)> = page
        .samples()
        .map(|s| (s.name, s.labels.len(), s.value, s.timestamp_ms))
        .collect();
    assert_eq!(
        samples,
        [
            ("a", 0, 1.0, None),
            ("b", 1, 2.0, None),
            ("c", 2, 3.0, None),
            ("d", 1, 4.0, None),
            ("e", 0, 5.0, None),
            ("f", 0, 6.0, Some(7)),
        ]
    );
}

#[test]
fn values_in_gos_float_formats() {
    let page = "a 1e+06\nb 1.5E-07\nc -0\nd .5\ne +3\nf 1.\ng 12345678901234567890\n\
                h -Inf\ni Inf\nj infinity\nk -INF\nl 0.1\nm 1e-400\nn 007\no 1.7976931348623157e308\n";
    assert_eq!(
        values(page),
        [
            1e6,
            1.5e-7,
            -0.0,
            0.5,
            3.0,
            1.0,
            1.2345678901234567e19,
            f64::NEG_INFINITY,
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.1,
            0.0,
            7.0,
            f64::MAX,
        ]
    );
    assert!(values("x NaN\ny nan\n").iter().all(|v| v.is_nan()));
    assert!(values("x -0\n")[0].is_sign_negative());
}

#[test]
fn values_go_does_not_write_or_read_are_rejected() {
    for value in [
        "1.2.3", "0x10", "0x1p-2", "1_000", "+NaN", "-nan", "1e400", "-1e400", "nan1", "e5", ".",
        "1e", "--1", "one", "1,5", "∞", "1\r",
    ] {
        rejects(&format!("x {value}"), Reason::InvalidValue);
    }
}

#[test]
fn timestamps() {
    let page = parse("a 1 0\nb 1 -5\nc 1 +5\nd 1 9223372036854775807\n");
    assert_eq!(page.error_count(), 0, "{:?}", page.errors());
    let timestamps: Vec<Option<i64>> = page.samples().map(|s| s.timestamp_ms).collect();
    assert_eq!(timestamps, [Some(0), Some(-5), Some(5), Some(i64::MAX)]);
    for timestamp in ["1.5", "12a", "9223372036854775808", "1e3", "NaN"] {
        rejects(&format!("x 1 {timestamp}"), Reason::InvalidTimestamp);
    }
    rejects("x 1 2 3", Reason::TrailingGarbage);
    rejects("x{a=\"b\"} 1 2 # comment", Reason::TrailingGarbage);
}

#[test]
fn help_text_has_its_escapes_resolved() {
    let page = parse(
        "# HELP a Back\\\\slash and\\nnewline, \"quotes\" stay.\n\
         a 1\n\
         # HELP b\n\
         # HELP c   \n\
         #HELP d  leading blanks go, trailing stay \n",
    );
    assert_eq!(page.error_count(), 0, "{:?}", page.errors());
    let helps: Vec<(&str, Option<&str>)> = page.families().map(|f| (f.name(), f.help())).collect();
    assert_eq!(
        helps,
        [
            ("a", Some("Back\\slash and\nnewline, \"quotes\" stay.")),
            ("b", Some("")),
            ("c", Some("")),
            ("d", Some("leading blanks go, trailing stay ")),
        ]
    );
}

#[test]
fn a_sample_after_other_families_reopening_a_help_only_family_is_rejected() {
    let error = only_error("# HELP a x\n# HELP b y\na 1\n");
    assert_eq!((error.line, error.reason), (3, Reason::NotContiguous));
}

#[test]
fn help_with_an_invalid_escape_is_rejected() {
    let error = only_error("# HELP a tab\\there\n");
    assert_eq!(error.reason, Reason::InvalidEscape);
    assert_eq!(error.column, 13);
    assert_eq!(
        only_error("# HELP a ends\\\n").reason,
        Reason::InvalidEscape
    );
    // The family is not created by the bad line.
    assert!(parse("# HELP a tab\\there\n").family("a").is_none());
}

#[test]
fn other_comments_and_blank_lines_are_ignored() {
    let page = parse("\n   \n#\n# just a comment {\"\n#  HELP\n# TYPE\n# HELPER x y\n\t# x\nx 1\n");
    assert_eq!(page.error_count(), 0, "{:?}", page.errors());
    assert_eq!(page.sample_count(), 1);
    assert_eq!(page.families().len(), 1);
    assert_eq!(page.line_count(), 9);
}

#[test]
fn samples_without_type_are_untyped_families_of_their_own() {
    let page = parse("x_sum 1\nx_count 2\nx_bucket{le=\"1\"} 3\nx 4\n");
    assert_eq!(page.error_count(), 0, "{:?}", page.errors());
    let families: Vec<(&str, MetricType)> = page
        .families()
        .map(|f| (f.name(), f.metric_type()))
        .collect();
    assert_eq!(
        families,
        [
            ("x_sum", MetricType::Untyped),
            ("x_count", MetricType::Untyped),
            ("x_bucket", MetricType::Untyped),
            ("x", MetricType::Untyped),
        ]
    );
}

#[test]
fn type_after_samples_of_another_family_starts_a_new_family() {
    let page = parse(
        "a 1\n# TYPE b gauge\n# HELP b The b.\nb 2\n# HELP c C.\n# TYPE c counter\nc 3\n\
         # TYPE empty histogram\n# TYPE d untyped\nd 4\n",
    );
    assert_eq!(page.error_count(), 0, "{:?}", page.errors());
    let families: Vec<(&str, MetricType, Option<&str>, usize, usize)> = page
        .families()
        .map(|f| (f.name(), f.metric_type(), f.help(), f.len(), f.line()))
        .collect();
    assert_eq!(
        families,
        [
            ("a", MetricType::Untyped, None, 1, 1),
            ("b", MetricType::Gauge, Some("The b."), 1, 2),
            ("c", MetricType::Counter, Some("C."), 1, 5),
            ("empty", MetricType::Histogram, None, 0, 8),
            ("d", MetricType::Untyped, None, 1, 9),
        ]
    );
    assert!(page.family("empty").expect("family").is_empty());
}

#[test]
fn unknown_missing_or_uppercase_types_are_rejected() {
    rejects("# TYPE x timer", Reason::UnknownType);
    rejects("# TYPE x COUNTER", Reason::UnknownType);
    rejects("# TYPE x", Reason::MissingType);
    rejects("# TYPE x   ", Reason::MissingType);
    rejects("# TYPE x counter gauge", Reason::TrailingGarbage);
    rejects("# TYPE 1x counter", Reason::InvalidMetricName);
    rejects("# TYPE x-y counter", Reason::InvalidMetricName);
    rejects("# HELP x-y text", Reason::InvalidMetricName);
    // Trailing blanks are fine.
    assert_eq!(parse("# TYPE x counter \t\n").error_count(), 0);
}

#[test]
fn a_second_type_for_a_family_is_rejected_and_the_first_stays() {
    let page = "# TYPE x counter\n# TYPE x gauge\nx 1\n";
    let error = only_error(page);
    assert_eq!(
        (error.line, error.reason, error.column),
        (2, Reason::DuplicateType, 8)
    );
    let parsed = parse(page);
    let family = parsed.family("x").expect("family");
    assert_eq!(
        (family.metric_type(), family.len()),
        (MetricType::Counter, 1)
    );
    // Also from later on the page.
    let error = only_error("# TYPE x counter\nx 1\ny 2\n# TYPE x counter\n");
    assert_eq!((error.line, error.reason), (4, Reason::DuplicateType));
}

#[test]
fn type_after_the_familys_own_samples_is_rejected() {
    let error = only_error("x 1\n# TYPE x counter\nx{a=\"b\"} 2\n");
    assert_eq!((error.line, error.reason), (2, Reason::TypeAfterSamples));
    let error = only_error("x 1\ny 1\n# TYPE x counter\n");
    assert_eq!((error.line, error.reason), (3, Reason::TypeAfterSamples));
}

#[test]
fn a_second_help_is_rejected() {
    let error = only_error("# HELP x one\n# TYPE x gauge\n# HELP x two\nx 1\n");
    assert_eq!((error.line, error.reason), (3, Reason::DuplicateHelp));
    let page = parse("# HELP x one\n# TYPE x gauge\n# HELP x two\nx 1\n");
    assert_eq!(page.family("x").and_then(|f| f.help()), Some("one"));
    // HELP after the family's samples but before another family is accepted, as by Go.
    assert_eq!(parse("x 1\n# HELP x late\n").error_count(), 0);
}

#[test]
fn invalid_metric_names_are_rejected() {
    rejects("1abc 1", Reason::InvalidMetricName);
    rejects("a-b 1", Reason::InvalidMetricName);
    rejects("é 1", Reason::InvalidMetricName);
    rejects("a=1", Reason::InvalidMetricName);
    rejects("{a=\"b\"} 1", Reason::InvalidMetricName);
    // Colons are valid in metric names.
    assert_eq!(values("job:rate5m 1\n:x 2\n"), [1.0, 2.0]);
}

#[test]
fn invalid_label_names_are_rejected() {
    rejects("x{1a=\"b\"} 1", Reason::InvalidLabelName);
    rejects("x{a-b=\"c\"} 1", Reason::InvalidLabelName);
    rejects("x{a:b=\"c\"} 1", Reason::InvalidLabelName);
    rejects("x{,} 1", Reason::InvalidLabelName);
    rejects("x{a=\"b\",,} 1", Reason::InvalidLabelName);
    rejects("x{__name__=\"x\"} 1", Reason::ReservedLabelName);
    // Other names starting with underscores are fine.
    assert_eq!(values("x{__meta=\"1\",_=\"2\"} 1\n"), [1.0]);
}

#[test]
fn badly_quoted_or_escaped_label_values_are_rejected() {
    rejects("x{a=\"b} 1", Reason::UnterminatedLabelValue);
    rejects("x{a=\"b\\\"} 1", Reason::UnterminatedLabelValue);
    rejects("x{a=\"b\\", Reason::UnterminatedLabelValue);
    rejects("x{a=\"\\t\"} 1", Reason::InvalidEscape);
    rejects("x{a=\"\\u0041\"} 1", Reason::InvalidEscape);
    rejects("x{a=\"ok\\\\\\x\"} 1", Reason::InvalidEscape);
    rejects("x{a=\"\\é\"} 1", Reason::InvalidEscape);
    rejects("x{a=b} 1", Reason::ExpectedQuote);
    rejects("x{a='b'} 1", Reason::ExpectedQuote);
    rejects("x{a} 1", Reason::ExpectedEquals);
    rejects("x{a,b=\"c\"} 1", Reason::ExpectedEquals);
    rejects("x{a \"b\"} 1", Reason::ExpectedEquals);
    rejects("x{a=\"b\" c=\"d\"} 1", Reason::ExpectedCommaOrBrace);
    rejects("x{a=\"b\"", Reason::UnterminatedLabelSet);
    rejects("x{a=\"b\",", Reason::UnterminatedLabelSet);
    rejects("x{", Reason::UnterminatedLabelSet);
}

#[test]
fn duplicate_label_names_are_rejected() {
    rejects("x{a=\"1\",a=\"2\"} 1", Reason::DuplicateLabelName);
    rejects("x{a=\"1\",b=\"2\",a=\"1\"} 1", Reason::DuplicateLabelName);
    let error = only_error("x{a=\"1\",b=\"2\",a=\"1\"} 1\n");
    assert_eq!(error.column, 15);
}

#[test]
fn missing_values_are_rejected() {
    rejects("x", Reason::MissingValue);
    rejects("x{a=\"b\"}", Reason::MissingValue);
    rejects("x   ", Reason::MissingValue);
}

#[test]
fn histogram_buckets_need_a_float_le() {
    let head = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\n";
    let error = only_error(&format!("{head}h_bucket{{a=\"b\"}} 1\nh_sum 1\n"));
    assert_eq!((error.line, error.reason), (3, Reason::MissingLe));
    let error = only_error(&format!("{head}h_bucket{{le=\"one\"}} 1\n"));
    assert_eq!(error.reason, Reason::InvalidLe);
    let error = only_error(&format!("{head}h_bucket{{le=\"\"}} 1\n"));
    assert_eq!(error.reason, Reason::InvalidLe);
    // The bad line did not end the family: h_sum is still h's.
    let text = format!("{head}h_bucket 1\nh_sum 1\nh_count 1\n");
    let page = parse(&text);
    assert_eq!(page.family("h").map(|f| f.len()), Some(3));
    assert_eq!(page.families().len(), 1);
}

#[test]
fn summary_quantile_samples_need_a_float_quantile() {
    let head = "# TYPE s summary\ns{quantile=\"0.5\"} 1\n";
    let error = only_error(&format!("{head}s{{a=\"b\"}} 1\n"));
    assert_eq!(error.reason, Reason::MissingQuantile);
    let error = only_error(&format!("{head}s{{quantile=\"half\"}} 1\n"));
    assert_eq!(error.reason, Reason::InvalidQuantile);
    // `_sum` and `_count` need no quantile.
    assert_eq!(
        parse(&format!("{head}s_sum 1\ns_count{{a=\"b\"}} 1\n")).error_count(),
        0
    );
}

#[test]
fn samples_that_are_not_the_current_familys_series_are_rejected() {
    let error = only_error("# TYPE h histogram\nh 1\n");
    assert_eq!((error.line, error.reason), (2, Reason::WrongSampleName));
    let error = only_error("# TYPE s summary\ns_bucket{le=\"1\"} 1\n");
    assert_eq!(error.reason, Reason::WrongSampleName);
    // A name that merely starts like the family's starts a family of its own.
    let page = parse("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_created 1\nhx 2\n");
    assert_eq!(page.error_count(), 0, "{:?}", page.errors());
    assert_eq!(page.families().len(), 3);
}

#[test]
fn a_familys_lines_must_be_one_group() {
    let histogram = "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\n";
    for (late, line) in [
        ("h_sum 1", 5),
        ("h_bucket{le=\"2\"} 1", 5),
        ("h_count 1", 5),
    ] {
        let page = format!("{histogram}other 1\n{late}\n");
        let error = only_error(&page);
        assert_eq!(
            (error.line, error.reason),
            (line, Reason::NotContiguous),
            "{late}"
        );
    }
    let error = only_error("# TYPE s summary\ns_sum 1\nother 1\ns_count 1\n");
    assert_eq!((error.line, error.reason), (4, Reason::NotContiguous));
    let error = only_error("a 1\nb 1\na{x=\"y\"} 2\n");
    assert_eq!((error.line, error.reason), (3, Reason::NotContiguous));
    let error = only_error("a 1\nb 1\n# HELP a late\n");
    assert_eq!((error.line, error.reason), (3, Reason::NotContiguous));
}

#[test]
fn a_bad_line_inside_a_family_does_not_split_it() {
    let page = parse(
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"2\" 1\n# TYPE h_x bogus\n\
         h_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n",
    );
    assert_eq!(page.error_count(), 2);
    assert_eq!(page.families().len(), 1);
    let histograms = page.family("h").expect("family").histograms();
    assert_eq!(histograms.len(), 1);
    assert_eq!(histograms[0].buckets.len(), 2);
    assert_eq!(histograms[0].count, Some(2.0));
}

#[test]
fn errors_are_bounded_but_all_counted() {
    let mut page = String::new();
    for i in 0..100 {
        page.push_str(&format!("good_{i} {i}\nbad line {i}\n"));
    }
    let parsed = parse(&page);
    assert_eq!(parsed.error_count(), 100);
    assert_eq!(parsed.errors().len(), MAX_STORED_ERRORS);
    let lines: Vec<usize> = parsed.errors().iter().map(|e| e.line).collect();
    let expected: Vec<usize> = (0..MAX_STORED_ERRORS).map(|i| 2 * i + 2).collect();
    assert_eq!(lines, expected);
    assert_eq!(parsed.sample_count(), 100);
    assert_eq!(parsed.line_count(), 200);
    let summary = parsed.error_summary().expect("summary");
    assert!(
        summary.starts_with("100 rejected lines, the first: line 2, column 5: "),
        "{summary}"
    );
    assert_eq!(parse("x 1\n").error_summary(), None);
}

#[test]
fn error_text_is_cut_to_a_bounded_number_of_characters() {
    let long = format!("x{{a=\"{}", "é".repeat(1000));
    let error = only_error(&format!("{long}\n"));
    assert_eq!(error.reason, Reason::UnterminatedLabelValue);
    assert_eq!(error.text.chars().count(), MAX_ERROR_TEXT_CHARS);
    assert!(long.starts_with(&error.text));
    assert_eq!(error.column, 5);
    assert_eq!(
        error.to_string()[..60],
        format!(
            "line 1, column 5: label value not closed with '\"': {:?}",
            &error.text
        )[..60]
    );
}

#[test]
fn a_last_line_without_newline_is_rejected() {
    let error = only_error("a 1\nb 2");
    assert_eq!(
        (error.line, error.reason, error.column),
        (2, Reason::MissingNewline, 4)
    );
    let page = parse("a 1\nb 2");
    assert_eq!(page.sample_count(), 1);
    assert_eq!(page.line_count(), 2);
    // A bad last line says what is wrong with it instead; blanks are fine.
    assert_eq!(only_error("a 1\nb{").reason, Reason::UnterminatedLabelSet);
    assert_eq!(parse("a 1\n  ").error_count(), 0);
    assert_eq!(parse("").line_count(), 0);
    // So is a comment: nothing of the page is lost.
    assert_eq!(parse("a 1\n# comment").error_count(), 0);
    assert_eq!(
        only_error("a 1\n# HELP a text").reason,
        Reason::MissingNewline
    );
}

#[test]
fn crlf_line_ends_are_rejected() {
    let page = parse("a 1\r\nb{x=\"y\"} 2\r\n");
    assert_eq!(page.error_count(), 2);
    assert!(
        page.errors()
            .iter()
            .all(|e| e.reason == Reason::InvalidValue)
    );
}

#[test]
fn bytes_that_are_not_utf8_are_one_error_per_line() {
    let mut page = b"a 1\n".to_vec();
    page.extend_from_slice(b"b{x=\"\xff\"} 2\n");
    page.extend_from_slice(b"c 3\n\xc3\n");
    page.extend_from_slice(b"d 4\n");
    let parsed = parse_bytes(&page);
    assert_eq!(parsed.error_count(), 2);
    let errors: Vec<(usize, usize, Reason)> = parsed
        .errors()
        .iter()
        .map(|e| (e.line, e.column, e.reason))
        .collect();
    assert_eq!(
        errors,
        [(2, 6, Reason::InvalidUtf8), (4, 1, Reason::InvalidUtf8)]
    );
    assert_eq!(parsed.errors()[0].text, "b{x=\"\u{fffd}\"} 2");
    let names: Vec<&str> = parsed.samples().map(|s| s.name).collect();
    assert_eq!(names, ["a", "c", "d"]);
    assert_eq!(parsed.line_count(), 5);
    // Invalid UTF-8 on the unterminated last line, and valid bytes alike.
    assert_eq!(parse_bytes(b"a 1\n\xff").error_count(), 1);
    assert_eq!(parse_bytes(b"a 1\n").sample_count(), 1);
    assert_eq!(
        parse_bytes(b"a 1\nb 2").errors()[0].reason,
        Reason::MissingNewline
    );
}

#[test]
fn floats_parse_like_rust_where_go_agrees() {
    use super::parser::parse_float;
    for text in [
        "0",
        "1",
        "123456789012345",
        "1234567890123456",
        "0.30000000000000004",
        "5e-324",
    ] {
        assert_eq!(parse_float(text), text.parse::<f64>().ok(), "{text}");
    }
    assert_eq!(parse_float(""), None);
}

#[test]
fn metric_types_round_trip_through_their_keywords() {
    for t in [
        MetricType::Counter,
        MetricType::Gauge,
        MetricType::Histogram,
        MetricType::Summary,
        MetricType::Untyped,
    ] {
        assert_eq!(MetricType::from_keyword(t.as_str()), Some(t));
        assert_eq!(t.to_string(), t.as_str());
    }
    assert_eq!(MetricType::from_keyword("info"), None);
}
