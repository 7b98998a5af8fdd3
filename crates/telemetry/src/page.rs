//! Families written straight onto the `/metrics` page, for sources with very many series: the
//! collector's object state is about twenty series per pod, a million and more at 60,000 pods.
//!
//! `prometheus_client` encodes every sample through `fmt::Write` and its label-set traits, and
//! only in OpenMetrics (the text format needs a second pass over the page). A [`Section`] writes
//! bytes once, in the format the scrape asked for, with integers through `itoa` and other floats
//! through `ryu`; it allocates nothing per series. Measured side by side (`cargo bench -p
//! fleetwatch-telemetry --bench page`, `bench/RESULTS.md`): 2.3× faster for the text format,
//! 1.5× for OpenMetrics.
//!
//! A page can be streamed: [`Page::streaming`] hands what has been written to a [`Sink`]
//! whenever a section calls [`Samples::flush`] and a chunk's worth is waiting, so a scrape of a
//! 275 MiB page holds a few chunks, not the page. Sections call it between slices of their
//! source, holding no lock, because the sink may wait for a slow reader.
//!
//! Owns: the family metadata lines of both formats, label-value escaping and sample values.
//! Must not: know what the series mean (that is the source's), or buffer between scrapes.

use std::fmt;

use crate::exposition::Format;

/// Series a source writes onto each page itself, after the registries' families. A section's
/// family names must not overlap any registry's.
pub trait Section: Send + Sync + fmt::Debug {
    /// Writes the section's families.
    fn write(&self, page: &mut Page<'_>);
}

/// A family's type. Only what the sections need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    /// Its samples and, in the text format, the family itself are named `…_total`.
    Counter,
}

/// Where a streamed page's chunks go, in order.
pub trait Sink {
    /// Takes the next chunk; `false` once the reader has gone, after which the page writes
    /// nothing more.
    fn send(&mut self, chunk: Vec<u8>) -> bool;
}

/// A streamed page is handed on in chunks of at least this many bytes (except the last): large
/// enough that a chunk is thousands of lines, small enough that a few in flight are little
/// memory. Chosen, not tuned; the streamed page measured 1.4× faster than one buffer at it.
pub const CHUNK_BYTES: usize = 256 * 1024;

/// The page being written, in one format.
pub struct Page<'a> {
    out: &'a mut Vec<u8>,
    format: Format,
    sink: Option<&'a mut dyn Sink>,
    /// The sink's reader has gone.
    closed: bool,
}

impl fmt::Debug for Page<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Page")
            .field("buffered", &self.out.len())
            .field("format", &self.format)
            .field("streaming", &self.sink.is_some())
            .field("closed", &self.closed)
            .finish()
    }
}

impl<'a> Page<'a> {
    /// Writes the whole page onto `out` in `format`.
    pub fn new(out: &'a mut Vec<u8>, format: Format) -> Page<'a> {
        Page {
            out,
            format,
            sink: None,
            closed: false,
        }
    }

    /// Writes onto `out` in `format` and hands each chunk of it to `sink` when a section
    /// flushes; what is left in `out` at the end is the caller's to send.
    pub fn streaming(out: &'a mut Vec<u8>, format: Format, sink: &'a mut dyn Sink) -> Page<'a> {
        Page {
            out,
            format,
            sink: Some(sink),
            closed: false,
        }
    }

    /// Hands what has been written to the sink if it is a chunk's worth (nothing for a page
    /// written whole). May wait for the reader: call it holding no lock.
    pub fn flush(&mut self) {
        let Some(sink) = self.sink.as_deref_mut() else {
            return;
        };
        if self.closed {
            self.out.clear();
        } else if self.out.len() >= CHUNK_BYTES {
            let chunk = std::mem::replace(self.out, Vec::with_capacity(2 * CHUNK_BYTES));
            self.closed = !sink.send(chunk);
        }
    }

    /// Whether the reader has gone: a section may stop writing.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Writes a family's HELP and TYPE lines and returns the writer of its samples. `name` is
    /// the samples' name: a counter's ends in `_total`.
    pub fn family(&mut self, name: &'static str, help: &str, kind: Kind) -> Samples<'_, 'a> {
        let (family_name, kind_word) = match (kind, self.format) {
            (Kind::Gauge, _) => (name, "gauge"),
            (Kind::Counter, Format::Text) => (name, "counter"),
            (Kind::Counter, Format::OpenMetrics) => {
                (name.strip_suffix("_total").unwrap_or(name), "counter")
            }
        };
        let out = &mut *self.out;
        out.extend_from_slice(b"# HELP ");
        out.extend_from_slice(family_name.as_bytes());
        out.push(b' ');
        escape(out, help, false);
        out.extend_from_slice(b"\n# TYPE ");
        out.extend_from_slice(family_name.as_bytes());
        out.push(b' ');
        out.extend_from_slice(kind_word.as_bytes());
        out.push(b'\n');
        Samples { page: self, name }
    }
}

/// Writes the samples of one family.
#[derive(Debug)]
pub struct Samples<'p, 'a> {
    page: &'p mut Page<'a>,
    name: &'static str,
}

impl Samples<'_, '_> {
    /// [`Page::flush`]: between slices of a family's samples, holding no lock.
    pub fn flush(&mut self) {
        self.page.flush();
    }

    /// [`Page::is_closed`].
    pub fn is_closed(&self) -> bool {
        self.page.is_closed()
    }

    /// One sample: `name{labels} value`.
    pub fn sample(&mut self, labels: &impl Labels, value: f64) {
        let out = &mut *self.page.out;
        out.extend_from_slice(self.name.as_bytes());
        let mut writer = LabelWriter { out, first: true };
        labels.write(&mut writer);
        if !writer.first {
            writer.out.push(b'}');
        }
        out.push(b' ');
        push_value(out, value);
        out.push(b'\n');
    }
}

/// Label pairs, written in order.
pub trait Labels {
    fn write(&self, writer: &mut LabelWriter<'_>);
}

impl<const N: usize> Labels for [(&str, &str); N] {
    fn write(&self, writer: &mut LabelWriter<'_>) {
        for (name, value) in self {
            writer.label(name, value);
        }
    }
}

impl<A: Labels, B: Labels> Labels for (A, B) {
    fn write(&self, writer: &mut LabelWriter<'_>) {
        self.0.write(writer);
        self.1.write(writer);
    }
}

/// Writes label pairs between braces (none at all for an empty set).
#[derive(Debug)]
pub struct LabelWriter<'o> {
    out: &'o mut Vec<u8>,
    first: bool,
}

impl LabelWriter<'_> {
    /// One `name="value"` pair; `name` must be a valid label name.
    pub fn label(&mut self, name: &str, value: &str) {
        self.out.push(if self.first { b'{' } else { b',' });
        self.first = false;
        self.out.extend_from_slice(name.as_bytes());
        self.out.extend_from_slice(b"=\"");
        escape(self.out, value, true);
        self.out.push(b'"');
    }
}

/// Appends `text` escaped as both formats escape label values (`\\`, `\"`, `\n`) or HELP text
/// (`\\`, `\n`; quotes stay, as the text format wants).
fn escape(out: &mut Vec<u8>, text: &str, quotes: bool) {
    let bytes = text.as_bytes();
    // Almost no value needs escaping, and most are a few bytes long: one pass without branches,
    // which the compiler vectorises. (memchr3's per-call dispatch was 40% of writing a large
    // page of short label values, `cargo bench -p fleetwatch-collector --bench objects`.)
    let dirty = bytes.iter().fold(false, |dirty, &b| {
        dirty | (b == b'\\') | (b == b'\n') | (quotes & (b == b'"'))
    });
    if !dirty {
        out.extend_from_slice(bytes);
        return;
    }
    for byte in bytes {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'"' if quotes => out.extend_from_slice(b"\\\""),
            other => out.push(*other),
        }
    }
}

/// The largest magnitude below which every integer is exactly an `f64` (2^53).
const EXACT_INTEGERS: f64 = 9_007_199_254_740_992.0;

/// A sample value as both formats read it: integers without a fraction (most values on a
/// page are 0, 1, counts or timestamps), `NaN`, `+Inf`, `-Inf`, and the shortest decimal that
/// reads back as the same `f64` otherwise.
fn push_value(out: &mut Vec<u8>, value: f64) {
    if value.fract() == 0.0 && value.abs() < EXACT_INTEGERS {
        // Exact: the value is an integer within i64's range.
        out.extend_from_slice(itoa::Buffer::new().format(value as i64).as_bytes());
    } else if value.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 { b"+Inf" } else { b"-Inf" });
    } else {
        out.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn written(format: Format, write: impl FnOnce(&mut Page<'_>)) -> String {
        let mut out = Vec::new();
        write(&mut Page::new(&mut out, format));
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn a_counter_is_named_as_each_format_names_it() {
        let write = |page: &mut Page<'_>| {
            page.family("x_total", "Xs seen.", Kind::Counter)
                .sample(&[("a", "1")], 3.0);
        };
        assert_eq!(
            written(Format::Text, write),
            "# HELP x_total Xs seen.\n# TYPE x_total counter\nx_total{a=\"1\"} 3\n"
        );
        assert_eq!(
            written(Format::OpenMetrics, write),
            "# HELP x Xs seen.\n# TYPE x counter\nx_total{a=\"1\"} 3\n"
        );
    }

    #[test]
    fn labels_are_escaped_and_empty_sets_have_no_braces() {
        let page = written(Format::Text, |page| {
            let mut samples = page.family("g", "a \\ and\nnewline \"quoted\"", Kind::Gauge);
            samples.sample(&([("a", "q\"b\\s\nn")], [("b", "")]), 0.25);
            samples.sample(&[] as &[(&str, &str); 0], f64::NAN);
            samples.sample(&[("c", "d")], f64::NEG_INFINITY);
        });
        assert_eq!(
            page,
            "# HELP g a \\\\ and\\nnewline \"quoted\"\n# TYPE g gauge\n\
             g{a=\"q\\\"b\\\\s\\nn\",b=\"\"} 0.25\ng NaN\ng{c=\"d\"} -Inf\n"
        );
    }

    /// Keeps the chunks; refuses any after the first `accept`.
    struct Chunks {
        accept: usize,
        chunks: Vec<Vec<u8>>,
    }

    impl Sink for Chunks {
        fn send(&mut self, chunk: Vec<u8>) -> bool {
            self.chunks.push(chunk);
            self.chunks.len() < self.accept
        }
    }

    /// Writes `samples` samples of 1 kB each in one family, flushing after each.
    fn write_samples(page: &mut Page<'_>, samples: usize) {
        let mut family = page.family("g", "help", Kind::Gauge);
        let long = "v".repeat(1000);
        for i in 0..samples {
            family.sample(&[("l", long.as_str())], i as f64);
            family.flush();
        }
    }

    /// The chunks handed to `sink` and what is left at the end.
    fn stream(sink: &mut Chunks, samples: usize) -> Vec<u8> {
        let mut rest = Vec::new();
        write_samples(&mut Page::streaming(&mut rest, Format::Text, sink), samples);
        rest
    }

    #[test]
    fn a_streamed_page_is_the_whole_page_in_chunks() {
        let mut whole = Vec::new();
        write_samples(&mut Page::new(&mut whole, Format::Text), 1000);
        let mut sink = Chunks {
            accept: usize::MAX,
            chunks: Vec::new(),
        };
        let rest = stream(&mut sink, 1000);
        assert!(sink.chunks.len() >= 3, "{} chunks", sink.chunks.len());
        assert!(sink.chunks.iter().all(|c| c.len() >= CHUNK_BYTES));
        assert!(rest.len() < CHUNK_BYTES);
        assert_eq!([sink.chunks.concat(), rest].concat(), whole);
    }

    #[test]
    fn a_page_whose_reader_went_stops_buffering() {
        let mut sink = Chunks {
            accept: 1,
            chunks: Vec::new(),
        };
        let rest = stream(&mut sink, 1000);
        assert_eq!(sink.chunks.len(), 1, "nothing is sent after the refusal");
        assert!(
            rest.len() < 2000,
            "what follows is dropped at each flush, not kept"
        );
    }

    proptest! {
        /// Every value and every label value reads back as itself through the crate's strict
        /// parser of the text format.
        #[test]
        fn values_and_label_values_read_back(value in any::<f64>(), label in any::<String>()) {
            let page = written(Format::Text, |page| {
                page.family("g", "help", Kind::Gauge).sample(&[("l", label.as_str())], value);
            });
            let parsed = crate::text::parse(&page);
            prop_assert_eq!(parsed.errors(), &[]);
            let sample = parsed.samples().next().expect("one sample");
            prop_assert!(
                sample.value == value || (sample.value.is_nan() && value.is_nan()),
                "{} != {}", sample.value, value
            );
            prop_assert_eq!(sample.label("l"), Some(label.as_str()));
        }
    }
}
