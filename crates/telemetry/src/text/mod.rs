//! A strict, fast parser of the Prometheus text exposition format 0.0.4: what kube-apiserver's
//! `/metrics` and the kubelet's `/metrics/resource` serve, and what the collector and the node
//! agent scrape.
//!
//! Start with [`parse`] (or [`parse_bytes`] for a body that may not be UTF-8): it returns a
//! [`Page`] of [`Family`]s in page order, each with its HELP, its [`MetricType`] and its
//! [`Sample`]s; [`Family::histograms`] groups a histogram's buckets by series for quantiles.
//!
//! Owns: the syntax of the format and how its lines make families (which `_bucket`, `_sum` and
//! `_count` samples belong to which histogram or summary). Must not: know anything of
//! Kubernetes or of what a series means, or fail a whole page for one line.
//!
//! # Why strict
//! A page is the input of SLIs: a line read wrongly is a wrong rate or quantile that nobody sees.
//! So every line that the format (and the Go parser of `prometheus/common`, the reference) does
//! not allow is a [`LineError`] naming the line, the column and the [`Reason`] — and only that
//! line is dropped: the rest of the page still counts. Where the Go parser silently drops a line
//! (a histogram sample with neither `le` nor a `_sum`/`_count` name, a summary sample without
//! `quantile`) or a truncated page would go unnoticed (a last sample, HELP or TYPE line without
//! its newline), this parser says so. Errors kept in a page are bounded ([`MAX_STORED_ERRORS`], each line cut to
//! [`MAX_ERROR_TEXT_CHARS`]) and the rest only counted, so a page of garbage costs no more
//! memory than a page of samples. Whitespace is as lenient as the Go parser (blanks and tabs
//! around labels, `=` and values, and at the start of lines; also trailing blanks).
//!
//! # Why hand-written
//! The `prometheus-parse` crate allocates a `String` per sample name and per label name and
//! value, keeps samples in `HashMap`s, and is lenient: it splits labels at `,` and `=` (a
//! value containing either is read wrongly), keeps escapes unresolved, and skips lines it cannot
//! read without saying so. The collector parses kube-apiserver pages of several MB every 30 s per
//! replica, so this parser works on the page's `&str` in one pass: names and (unescaped) label
//! values borrow from the page, all samples of a page live in one `Vec` and all labels in
//! another (a sample holds a range of it), so a sample costs no allocation of its own. A label
//! value allocates only when it had escapes.

mod histogram;
mod parser;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

pub use histogram::{Bucket, Histogram};

/// At most this many [`LineError`]s are kept in a [`Page`]; the others are only counted.
pub const MAX_STORED_ERRORS: usize = 16;

/// A [`LineError`]'s `text` keeps at most this many characters of the line.
pub const MAX_ERROR_TEXT_CHARS: usize = 200;

/// Parses a page of the text format 0.0.4. Never panics and never fails as a whole: a line that
/// is not valid is a [`LineError`] in the page, and parsing goes on with the next line.
pub fn parse(page: &str) -> Page<'_> {
    let mut parser = parser::Parser::default();
    parser.feed(page, true);
    parser.finish()
}

/// Parses a page given as bytes, such as an HTTP body: a line that is not UTF-8 is one
/// [`Reason::InvalidUtf8`] error, and the other lines parse as with [`parse`].
pub fn parse_bytes(page: &[u8]) -> Page<'_> {
    let mut parser = parser::Parser::default();
    let mut rest = page;
    loop {
        match std::str::from_utf8(rest) {
            Ok(text) => {
                parser.feed(text, true);
                break;
            }
            Err(error) => {
                let valid = error.valid_up_to();
                let (good, bad) = rest.split_at(valid);
                // The bad line starts after the last newline before the invalid byte.
                let line_start = good.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                let (good_lines, bad_start) = good.split_at(line_start);
                // A prefix of a valid prefix that ends after a newline is valid UTF-8.
                if let Ok(text) = std::str::from_utf8(good_lines) {
                    parser.feed(text, false);
                }
                let line_end = bad.iter().position(|&b| b == b'\n');
                let line = match line_end {
                    Some(end) => &rest[line_start..valid + end],
                    None => &rest[line_start..],
                };
                let column = bad_start.len() + 1;
                parser.invalid_utf8_line(&String::from_utf8_lossy(line), column);
                match line_end {
                    Some(end) => rest = &rest[valid + end + 1..],
                    None => break,
                }
            }
        }
    }
    parser.finish()
}

/// The kind of a family, from its `# TYPE` line (untyped when there is none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// A value that only goes up (and resets on restart).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Cumulative `_bucket{le=..}` counts with `_sum` and `_count`.
    Histogram,
    /// Precomputed `{quantile=..}` values with `_sum` and `_count`.
    Summary,
    /// No `# TYPE`, or `# TYPE .. untyped`.
    Untyped,
}

impl MetricType {
    /// The type as the format writes it (`counter`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Untyped => "untyped",
        }
    }

    /// The type a `# TYPE` line names; `None` for any other word. Lower case only, as
    /// Prometheus itself reads it.
    pub fn from_keyword(keyword: &str) -> Option<MetricType> {
        Some(match keyword {
            "counter" => MetricType::Counter,
            "gauge" => MetricType::Gauge,
            "histogram" => MetricType::Histogram,
            "summary" => MetricType::Summary,
            "untyped" => MetricType::Untyped,
            _ => return None,
        })
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One label of a sample. The name borrows from the page; so does the value unless it had
/// escapes (`\\`, `\"`, `\n`), which are resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Label<'a> {
    /// The label's name.
    pub name: &'a str,
    /// The label's value, unescaped.
    pub value: Cow<'a, str>,
}

/// Why a line was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum Reason {
    /// A metric name (of a sample, HELP or TYPE) outside `[a-zA-Z_:][a-zA-Z0-9_:]*`.
    #[error("invalid metric name (allowed: [a-zA-Z_:][a-zA-Z0-9_:]*)")]
    InvalidMetricName,
    /// A label name outside `[a-zA-Z_][a-zA-Z0-9_]*`.
    #[error("invalid label name (allowed: [a-zA-Z_][a-zA-Z0-9_]*)")]
    InvalidLabelName,
    /// The label name `__name__`, which is reserved.
    #[error("the label name __name__ is reserved")]
    ReservedLabelName,
    /// A label name not followed by `=`.
    #[error("expected '=' after the label name")]
    ExpectedEquals,
    /// A label value that does not start with `"`.
    #[error("expected '\"' to open the label value")]
    ExpectedQuote,
    /// An escape other than `\\`, `\"` and `\n` in a label value, or than `\\` and `\n` in
    /// HELP text.
    #[error("invalid escape (a label value allows \\\\, \\\" and \\n; HELP text \\\\ and \\n)")]
    InvalidEscape,
    /// A label value without its closing `"` on the line.
    #[error("label value not closed with '\"'")]
    UnterminatedLabelValue,
    /// Something other than `,` or `}` after a label value.
    #[error("expected ',' or '}}' after the label value")]
    ExpectedCommaOrBrace,
    /// A label set without its closing `}` on the line.
    #[error("label set not closed with '}}'")]
    UnterminatedLabelSet,
    /// The same label name twice in one sample.
    #[error("the same label name twice in one sample")]
    DuplicateLabelName,
    /// A sample line that ends before its value.
    #[error("missing sample value")]
    MissingValue,
    /// A value that is not a float as Go writes them (`1`, `-2.5e-3`, `NaN`, `+Inf`, `-Inf`), or
    /// beyond the range of `f64`.
    #[error("invalid sample value (expected a float such as 1, -2.5e-3, NaN, +Inf or -Inf)")]
    InvalidValue,
    /// A timestamp that is not an integer (milliseconds since the epoch) in `i64`.
    #[error("invalid timestamp (expected integer milliseconds since the epoch)")]
    InvalidTimestamp,
    /// More text after the timestamp, or after the type of a TYPE line.
    #[error("unexpected text at the end of the line")]
    TrailingGarbage,
    /// A TYPE line with a metric name but no type.
    #[error("TYPE line without a type")]
    MissingType,
    /// A TYPE line with a type other than counter, gauge, histogram, summary and untyped.
    #[error("unknown metric type (expected counter, gauge, histogram, summary or untyped)")]
    UnknownType,
    /// A second TYPE line for one family.
    #[error("second TYPE line for this family")]
    DuplicateType,
    /// A TYPE line after the first sample of its family.
    #[error("TYPE line after the family's first sample")]
    TypeAfterSamples,
    /// A second HELP line for one family.
    #[error("second HELP line for this family")]
    DuplicateHelp,
    /// A histogram's `_bucket` sample without an `le` label.
    #[error("histogram bucket without an le label")]
    MissingLe,
    /// A histogram's `_bucket` sample whose `le` is not a float.
    #[error("histogram bucket whose le label is not a float")]
    InvalidLe,
    /// A summary's quantile sample (the family's own name) without a `quantile` label.
    #[error("summary sample without a quantile label")]
    MissingQuantile,
    /// A summary's quantile sample whose `quantile` is not a float.
    #[error("summary sample whose quantile label is not a float")]
    InvalidQuantile,
    /// A sample named after the current histogram or summary that is none of its series: a
    /// histogram's own name (it only has `_bucket`, `_sum`, `_count`), a summary's `_bucket`.
    #[error(
        "sample name not among the current family's series (a histogram has _bucket, _sum and \
         _count; a summary its own name, _sum and _count)"
    )]
    WrongSampleName,
    /// A sample, HELP or TYPE line of a family whose lines ended earlier on the page: a
    /// family's lines must be one group.
    #[error("line of a family whose group of lines ended earlier on the page")]
    NotContiguous,
    /// A line that is not valid UTF-8 ([`parse_bytes`] only).
    #[error("line is not valid UTF-8")]
    InvalidUtf8,
    /// The page's last line has no newline: the format requires one, and a page cut short (by
    /// a size limit, a dropped connection) looks like this.
    #[error("last line without a newline (was the page cut short?)")]
    MissingNewline,
}

/// A rejected line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// The line's number, from 1.
    pub line: usize,
    /// The byte column where the problem was found, from 1.
    pub column: usize,
    /// The line, cut to [`MAX_ERROR_TEXT_CHARS`] characters.
    pub text: String,
    /// What is wrong with it.
    pub reason: Reason,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}: {:?}",
            self.line, self.column, self.reason, self.text
        )
    }
}

impl std::error::Error for LineError {}

/// A parsed page: its families in page order, and the lines that were rejected.
///
/// Borrows from the page's text; see the [module doc](self) for what is allocated.
pub struct Page<'a> {
    families: Vec<FamilyData<'a>>,
    samples: Vec<SampleData<'a>>,
    labels: Vec<Label<'a>>,
    by_name: HashMap<&'a str, usize>,
    errors: Vec<LineError>,
    error_count: usize,
    lines: usize,
}

#[derive(Debug)]
struct FamilyData<'a> {
    name: &'a str,
    help: Option<Cow<'a, str>>,
    metric_type: MetricType,
    /// Whether a TYPE line said so (a family without one is untyped too).
    typed: bool,
    /// The line of the family's first HELP, TYPE or sample line.
    line: usize,
    samples_start: usize,
    samples_end: usize,
}

#[derive(Debug)]
struct SampleData<'a> {
    name: &'a str,
    labels_start: usize,
    labels_end: usize,
    value: f64,
    timestamp_ms: Option<i64>,
}

impl<'a> Page<'a> {
    /// The families, in the order the page has them (including families with HELP or TYPE but
    /// no samples).
    pub fn families(&self) -> impl ExactSizeIterator<Item = Family<'_, 'a>> + Clone {
        self.families
            .iter()
            .map(move |data| Family { page: self, data })
    }

    /// The family named `name` (a histogram's or summary's base name, not `_bucket`…).
    pub fn family(&self, name: &str) -> Option<Family<'_, 'a>> {
        let &index = self.by_name.get(name)?;
        let data = self.families.get(index)?;
        Some(Family { page: self, data })
    }

    /// Every sample of the page, in page order.
    pub fn samples(&self) -> impl ExactSizeIterator<Item = Sample<'_, 'a>> + Clone {
        self.samples.iter().map(move |data| self.sample(data))
    }

    /// How many samples the page has.
    pub fn sample_count(&self) -> usize {
        self.samples.len()
    }

    /// The first [`MAX_STORED_ERRORS`] rejected lines, in page order.
    pub fn errors(&self) -> &[LineError] {
        &self.errors
    }

    /// How many lines were rejected, including those not kept in [`Page::errors`].
    pub fn error_count(&self) -> usize {
        self.error_count
    }

    /// How many lines the page has (a last line without a newline counts).
    pub fn line_count(&self) -> usize {
        self.lines
    }

    /// One line for a log saying how many lines were rejected and the first of them; `None`
    /// for a page without errors.
    pub fn error_summary(&self) -> Option<String> {
        let first = self.errors.first()?;
        Some(match self.error_count {
            1 => format!("1 rejected line: {first}"),
            n => format!("{n} rejected lines, the first: {first}"),
        })
    }

    fn sample(&self, data: &SampleData<'a>) -> Sample<'_, 'a> {
        Sample {
            name: data.name,
            labels: self
                .labels
                .get(data.labels_start..data.labels_end)
                .unwrap_or_default(),
            value: data.value,
            timestamp_ms: data.timestamp_ms,
        }
    }
}

impl fmt::Debug for Page<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Page")
            .field("lines", &self.lines)
            .field("families", &self.families.len())
            .field("samples", &self.samples.len())
            .field("error_count", &self.error_count)
            .field("errors", &self.errors)
            .finish()
    }
}

/// One family of a [`Page`]: a name, its HELP and TYPE, and its samples.
#[derive(Clone, Copy)]
pub struct Family<'p, 'a> {
    page: &'p Page<'a>,
    data: &'p FamilyData<'a>,
}

impl<'p, 'a> Family<'p, 'a> {
    /// The family's name: the sample name of a counter, gauge or untyped family, the base
    /// name (without `_bucket`, `_sum`, `_count`) of a histogram or summary.
    pub fn name(&self) -> &'a str {
        self.data.name
    }

    /// The HELP text, unescaped; `None` without a HELP line.
    pub fn help(&self) -> Option<&'p str> {
        self.data.help.as_deref()
    }

    /// The type its TYPE line gave, [`MetricType::Untyped`] without one.
    pub fn metric_type(&self) -> MetricType {
        self.data.metric_type
    }

    /// The line (from 1) where the family starts.
    pub fn line(&self) -> usize {
        self.data.line
    }

    /// The family's samples in page order, under their full names (`x_bucket`, `x_sum`, …).
    pub fn samples(
        &self,
    ) -> impl ExactSizeIterator<Item = Sample<'p, 'a>> + DoubleEndedIterator + Clone + use<'p, 'a>
    {
        let page = self.page;
        page.samples
            .get(self.data.samples_start..self.data.samples_end)
            .unwrap_or_default()
            .iter()
            .map(move |data| page.sample(data))
    }

    /// How many samples the family has.
    pub fn len(&self) -> usize {
        self.data.samples_end - self.data.samples_start
    }

    /// Whether the family has no samples (only HELP or TYPE lines).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A histogram family's series: samples grouped by their labels other than `le`, each
    /// with its buckets sorted by `le`, its `_sum` and its `_count`, in the order the series
    /// first appear. Empty for a family of any other type.
    pub fn histograms(&self) -> Vec<Histogram<'p, 'a>> {
        histogram::group(*self)
    }
}

impl fmt::Debug for Family<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Family")
            .field("name", &self.name())
            .field("type", &self.metric_type())
            .field("help", &self.help())
            .field("samples", &self.len())
            .finish()
    }
}

/// One sample line.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample<'p, 'a> {
    /// The full metric name, e.g. `x_bucket`.
    pub name: &'a str,
    /// The labels, in the order of the line.
    pub labels: &'p [Label<'a>],
    /// The value (`NaN` and infinities included).
    pub value: f64,
    /// The timestamp in milliseconds since the epoch, if the line has one.
    pub timestamp_ms: Option<i64>,
}

impl<'p> Sample<'p, '_> {
    /// The value of the label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&'p str> {
        label(self.labels, name)
    }
}

fn label<'p>(labels: &'p [Label<'_>], name: &str) -> Option<&'p str> {
    labels
        .iter()
        .find(|label| label.name == name)
        .map(|label| &*label.value)
}
