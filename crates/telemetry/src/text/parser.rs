//! The line parser: one pass over each line's bytes, then the family bookkeeping.
//!
//! A line is first read into a [`Line`] (labels go straight into the page's label vector, and
//! are truncated back if the line turns out bad); only a line read without error is then applied
//! to the families, which may still reject it. Either way a rejected line leaves the page as it
//! was, so one bad line cannot change how the next ones are read.
//!
//! Every index used to slice a line stops at an ASCII byte or at the end of the line, so it is
//! always a character boundary.

use std::borrow::Cow;
use std::collections::HashMap;

use super::{
    FamilyData, Label, LineError, MAX_ERROR_TEXT_CHARS, MAX_STORED_ERRORS, MetricType, Page,
    Reason, SampleData,
};

/// What a line that was read without error says.
enum Line<'a> {
    /// A blank line or a comment other than HELP and TYPE.
    Nothing,
    Help {
        name: &'a str,
        column: usize,
        help: Cow<'a, str>,
    },
    Type {
        name: &'a str,
        column: usize,
        metric_type: MetricType,
    },
    Sample {
        column: usize,
        sample: SampleData<'a>,
    },
}

/// Which series of its family a sample is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A counter's, gauge's or untyped family's sample.
    Plain,
    Bucket,
    Quantile,
    /// A histogram's or summary's `_sum` or `_count`.
    SumOrCount,
}

/// Where a sample goes.
enum Target {
    Current(Role),
    /// A new untyped family named after the sample.
    New,
}

type Failure = (Reason, usize);

#[derive(Default)]
pub(super) struct Parser<'a> {
    page: PageBuilder<'a>,
    /// The family whose group of lines is open.
    current: Option<usize>,
}

#[derive(Default)]
struct PageBuilder<'a> {
    families: Vec<FamilyData<'a>>,
    samples: Vec<SampleData<'a>>,
    labels: Vec<Label<'a>>,
    by_name: HashMap<&'a str, usize>,
    errors: Vec<LineError>,
    error_count: usize,
    lines: usize,
}

impl<'a> Parser<'a> {
    /// Parses the lines of `text`. `at_end`: `text` ends the page, so an unterminated last line
    /// is the page's last line (otherwise `text` ends after a newline, or is empty).
    pub(super) fn feed(&mut self, text: &'a str, at_end: bool) {
        let mut rest = text;
        while !rest.is_empty() {
            let (line, next, terminated) = match rest.find('\n') {
                Some(end) => (&rest[..end], &rest[end + 1..], true),
                None => (rest, "", false),
            };
            rest = next;
            self.page.lines += 1;
            let labels_before = self.page.labels.len();
            let outcome = self.read(line).and_then(|read| {
                if !terminated && at_end && !matches!(read, Line::Nothing) {
                    return Err((Reason::MissingNewline, line.len() + 1));
                }
                self.apply(read)
            });
            if let Err((reason, column)) = outcome {
                self.page.labels.truncate(labels_before);
                self.reject(line, column, reason);
            }
        }
    }

    /// Records a line of the page that is not UTF-8 (`line` is its lossy text).
    pub(super) fn invalid_utf8_line(&mut self, line: &str, column: usize) {
        self.page.lines += 1;
        self.reject(line, column, Reason::InvalidUtf8);
    }

    pub(super) fn finish(self) -> Page<'a> {
        let PageBuilder {
            families,
            samples,
            labels,
            by_name,
            errors,
            error_count,
            lines,
        } = self.page;
        Page {
            families,
            samples,
            labels,
            by_name,
            errors,
            error_count,
            lines,
        }
    }

    fn reject(&mut self, line: &str, column: usize, reason: Reason) {
        let page = &mut self.page;
        page.error_count += 1;
        if page.errors.len() < MAX_STORED_ERRORS {
            let text = match line.char_indices().nth(MAX_ERROR_TEXT_CHARS) {
                Some((cut, _)) => &line[..cut],
                None => line,
            };
            page.errors.push(LineError {
                line: page.lines,
                column,
                text: text.to_owned(),
                reason,
            });
        }
    }

    // ---- reading one line -------------------------------------------------------------------

    fn read(&mut self, line: &'a str) -> Result<Line<'a>, Failure> {
        let bytes = line.as_bytes();
        let start = skip_blanks(bytes, 0);
        match bytes.get(start) {
            None => Ok(Line::Nothing),
            Some(b'#') => read_comment(line, start + 1),
            Some(_) => self.read_sample(line, start),
        }
    }

    fn read_sample(&mut self, line: &'a str, start: usize) -> Result<Line<'a>, Failure> {
        let bytes = line.as_bytes();
        let name_end = metric_name_end(bytes, start);
        if name_end == start {
            return Err((Reason::InvalidMetricName, start + 1));
        }
        let name = &line[start..name_end];
        let mut at = skip_blanks(bytes, name_end);
        let labels_start = self.page.labels.len();
        match bytes.get(at) {
            Some(b'{') => at = skip_blanks(bytes, self.read_labels(line, at + 1)?),
            // A byte that can be neither in a name nor after it, e.g. `a-b 1` or `a=1`.
            Some(_) if at == name_end => return Err((Reason::InvalidMetricName, at + 1)),
            _ => {}
        }
        if at == bytes.len() {
            return Err((Reason::MissingValue, at + 1));
        }
        let value_end = token_end(bytes, at);
        let value = parse_float(&line[at..value_end]).ok_or((Reason::InvalidValue, at + 1))?;
        at = skip_blanks(bytes, value_end);
        let mut timestamp_ms = None;
        if at < bytes.len() {
            let end = token_end(bytes, at);
            let timestamp = line[at..end]
                .parse::<i64>()
                .map_err(|_| (Reason::InvalidTimestamp, at + 1))?;
            timestamp_ms = Some(timestamp);
            at = skip_blanks(bytes, end);
            if at < bytes.len() {
                return Err((Reason::TrailingGarbage, at + 1));
            }
        }
        Ok(Line::Sample {
            column: start + 1,
            sample: SampleData {
                name,
                labels_start,
                labels_end: self.page.labels.len(),
                value,
                timestamp_ms,
            },
        })
    }

    /// Reads labels from just after `{`; returns the index after `}`.
    fn read_labels(&mut self, line: &'a str, mut at: usize) -> Result<usize, Failure> {
        let bytes = line.as_bytes();
        let first = self.page.labels.len();
        let mut sorted = true;
        loop {
            at = skip_blanks(bytes, at);
            match bytes.get(at) {
                None => return Err((Reason::UnterminatedLabelSet, at + 1)),
                Some(b'}') => return Ok(at + 1),
                Some(_) => {}
            }
            let name_start = at;
            let name_end = label_name_end(bytes, at);
            if name_end == at {
                return Err((Reason::InvalidLabelName, at + 1));
            }
            let name = &line[at..name_end];
            if name == "__name__" {
                return Err((Reason::ReservedLabelName, at + 1));
            }
            at = skip_blanks(bytes, name_end);
            match bytes.get(at) {
                Some(b'=') => {}
                // A byte that cannot be in a label name, right after one: `a-b="c"`.
                Some(&b) if at == name_end && !matches!(b, b'}' | b',' | b'"') => {
                    return Err((Reason::InvalidLabelName, at + 1));
                }
                _ => return Err((Reason::ExpectedEquals, at + 1)),
            }
            at = skip_blanks(bytes, at + 1);
            if bytes.get(at) != Some(&b'"') {
                return Err((Reason::ExpectedQuote, at + 1));
            }
            let (value, after) = read_label_value(line, at + 1)?;
            // Go clients write labels sorted by name: while they are, a name greater than the
            // last cannot be a duplicate, and one comparison replaces a scan.
            let labels = &self.page.labels[first..];
            let ascending = sorted && labels.last().is_none_or(|last| last.name < name);
            if !ascending && labels.iter().any(|label| label.name == name) {
                return Err((Reason::DuplicateLabelName, name_start + 1));
            }
            sorted = ascending;
            self.page.labels.push(Label { name, value });
            at = skip_blanks(bytes, after);
            match bytes.get(at) {
                None => return Err((Reason::UnterminatedLabelSet, at + 1)),
                Some(b',') => at += 1,
                Some(b'}') => return Ok(at + 1),
                Some(_) => return Err((Reason::ExpectedCommaOrBrace, at + 1)),
            }
        }
    }

    // ---- families ---------------------------------------------------------------------------

    fn apply(&mut self, line: Line<'a>) -> Result<(), Failure> {
        match line {
            Line::Nothing => Ok(()),
            Line::Help { name, column, help } => self
                .apply_help(name, help)
                .map_err(|reason| (reason, column)),
            Line::Type {
                name,
                column,
                metric_type,
            } => self
                .apply_type(name, metric_type)
                .map_err(|reason| (reason, column)),
            Line::Sample { column, sample } => {
                self.apply_sample(sample).map_err(|reason| (reason, column))
            }
        }
    }

    fn current(&self) -> Option<&FamilyData<'a>> {
        self.current.and_then(|index| self.page.families.get(index))
    }

    fn apply_help(&mut self, name: &'a str, help: Cow<'a, str>) -> Result<(), Reason> {
        let index = match self.existing(name) {
            Existing::Current(index) => index,
            Existing::Ended(index) => {
                return Err(match self.page.families[index].help {
                    Some(_) => Reason::DuplicateHelp,
                    None => Reason::NotContiguous,
                });
            }
            Existing::None => self.new_family(name, MetricType::Untyped, false),
        };
        let family = &mut self.page.families[index];
        if family.help.is_some() {
            return Err(Reason::DuplicateHelp);
        }
        family.help = Some(help);
        Ok(())
    }

    fn apply_type(&mut self, name: &'a str, metric_type: MetricType) -> Result<(), Reason> {
        let index = match self.existing(name) {
            Existing::Current(index) => index,
            Existing::Ended(index) => {
                let family = &self.page.families[index];
                return Err(if family.typed {
                    Reason::DuplicateType
                } else if family.samples_end > family.samples_start {
                    Reason::TypeAfterSamples
                } else {
                    Reason::NotContiguous
                });
            }
            Existing::None => {
                self.new_family(name, metric_type, true);
                return Ok(());
            }
        };
        let family = &mut self.page.families[index];
        if family.typed {
            return Err(Reason::DuplicateType);
        }
        if family.samples_end > family.samples_start {
            return Err(Reason::TypeAfterSamples);
        }
        family.metric_type = metric_type;
        family.typed = true;
        Ok(())
    }

    fn apply_sample(&mut self, sample: SampleData<'a>) -> Result<(), Reason> {
        let index = match self.target(sample.name)? {
            Target::Current(role) => {
                let labels = &self.page.labels[sample.labels_start..sample.labels_end];
                match role {
                    Role::Bucket => {
                        check_float_label(labels, "le", Reason::MissingLe, Reason::InvalidLe)?
                    }
                    Role::Quantile => check_float_label(
                        labels,
                        "quantile",
                        Reason::MissingQuantile,
                        Reason::InvalidQuantile,
                    )?,
                    Role::Plain | Role::SumOrCount => {}
                }
                self.current.unwrap_or_default()
            }
            Target::New => self.new_family(sample.name, MetricType::Untyped, false),
        };
        self.page.samples.push(sample);
        self.page.families[index].samples_end = self.page.samples.len();
        Ok(())
    }

    /// Which family a sample named `name` belongs to, or why it belongs to none.
    fn target(&self, name: &str) -> Result<Target, Reason> {
        if let Some(family) = self.current() {
            let suffix = name.strip_prefix(family.name);
            let role = match (family.metric_type, suffix) {
                (MetricType::Histogram, Some("_bucket")) => Some(Role::Bucket),
                (MetricType::Summary, Some("")) => Some(Role::Quantile),
                (MetricType::Histogram | MetricType::Summary, Some("_sum" | "_count")) => {
                    Some(Role::SumOrCount)
                }
                (MetricType::Histogram, Some("")) | (MetricType::Summary, Some("_bucket")) => {
                    return Err(Reason::WrongSampleName);
                }
                (MetricType::Counter | MetricType::Gauge | MetricType::Untyped, Some("")) => {
                    Some(Role::Plain)
                }
                _ => None,
            };
            if let Some(role) = role {
                return Ok(Target::Current(role));
            }
        }
        // Not the current family's: it starts a new family, unless it is of one that ended.
        if self.page.by_name.contains_key(name) {
            return Err(Reason::NotContiguous);
        }
        let of_ended = |suffix: &str, histogram_only: bool| {
            name.strip_suffix(suffix)
                .and_then(|base| self.page.by_name.get(base))
                .and_then(|&index| self.page.families.get(index))
                .is_some_and(|family| {
                    family.metric_type == MetricType::Histogram
                        || (!histogram_only && family.metric_type == MetricType::Summary)
                })
        };
        if of_ended("_bucket", true) || of_ended("_sum", false) || of_ended("_count", false) {
            return Err(Reason::NotContiguous);
        }
        Ok(Target::New)
    }

    fn existing(&self, name: &str) -> Existing {
        match self.page.by_name.get(name) {
            Some(&index) if Some(index) == self.current => Existing::Current(index),
            Some(&index) => Existing::Ended(index),
            None => Existing::None,
        }
    }

    /// Opens a new family (which closes the current one) and returns its index.
    fn new_family(&mut self, name: &'a str, metric_type: MetricType, typed: bool) -> usize {
        let index = self.page.families.len();
        let samples = self.page.samples.len();
        self.page.families.push(FamilyData {
            name,
            help: None,
            metric_type,
            typed,
            line: self.page.lines,
            samples_start: samples,
            samples_end: samples,
        });
        self.page.by_name.insert(name, index);
        self.current = Some(index);
        index
    }
}

enum Existing {
    Current(usize),
    Ended(usize),
    None,
}

fn check_float_label(
    labels: &[Label<'_>],
    name: &str,
    missing: Reason,
    invalid: Reason,
) -> Result<(), Reason> {
    let value = super::label(labels, name).ok_or(missing)?;
    parse_float(value).map(|_| ()).ok_or(invalid)
}

/// Reads a comment from just after `#`: HELP and TYPE lines, anything else is ignored.
fn read_comment(line: &str, start: usize) -> Result<Line<'_>, Failure> {
    let bytes = line.as_bytes();
    let keyword_start = skip_blanks(bytes, start);
    let keyword_end = token_end(bytes, keyword_start);
    let keyword = &line[keyword_start..keyword_end];
    let help = match keyword {
        "HELP" => true,
        "TYPE" => false,
        _ => return Ok(Line::Nothing),
    };
    let name_start = skip_blanks(bytes, keyword_end);
    if name_start == bytes.len() {
        // `# HELP` alone is a comment, as for the Go parser.
        return Ok(Line::Nothing);
    }
    let name_end = metric_name_end(bytes, name_start);
    if name_end == name_start {
        return Err((Reason::InvalidMetricName, name_start + 1));
    }
    if name_end < bytes.len() && !is_blank(bytes[name_end]) {
        return Err((Reason::InvalidMetricName, name_end + 1));
    }
    let name = &line[name_start..name_end];
    let column = name_start + 1;
    let rest = skip_blanks(bytes, name_end);
    if help {
        let help =
            unescape_help(&line[rest..]).map_err(|at| (Reason::InvalidEscape, rest + at + 1))?;
        return Ok(Line::Help { name, column, help });
    }
    if rest == bytes.len() {
        return Err((Reason::MissingType, rest + 1));
    }
    let type_end = token_end(bytes, rest);
    let metric_type =
        MetricType::from_keyword(&line[rest..type_end]).ok_or((Reason::UnknownType, rest + 1))?;
    let after = skip_blanks(bytes, type_end);
    if after < bytes.len() {
        return Err((Reason::TrailingGarbage, after + 1));
    }
    Ok(Line::Type {
        name,
        column,
        metric_type,
    })
}

/// Reads a label value from just after its opening `"`; returns it and the index after the
/// closing `"`. Borrows unless the value has escapes.
fn read_label_value(line: &str, start: usize) -> Result<(Cow<'_, str>, usize), Failure> {
    let bytes = line.as_bytes();
    let unterminated = (Reason::UnterminatedLabelValue, start);
    let mut at = start;
    loop {
        match bytes.get(at) {
            None => return Err(unterminated),
            Some(b'"') => return Ok((Cow::Borrowed(&line[start..at]), at + 1)),
            Some(b'\\') => break,
            Some(_) => at += 1,
        }
    }
    let mut value = String::with_capacity(at - start + 16);
    value.push_str(&line[start..at]);
    loop {
        // `at` is at a backslash.
        match bytes.get(at + 1) {
            Some(b'\\') => value.push('\\'),
            Some(b'"') => value.push('"'),
            Some(b'n') => value.push('\n'),
            Some(_) => return Err((Reason::InvalidEscape, at + 1)),
            None => return Err(unterminated),
        }
        at += 2;
        let segment = at;
        loop {
            match bytes.get(at) {
                None => return Err(unterminated),
                Some(b'"') => {
                    value.push_str(&line[segment..at]);
                    return Ok((Cow::Owned(value), at + 1));
                }
                Some(b'\\') => {
                    value.push_str(&line[segment..at]);
                    break;
                }
                Some(_) => at += 1,
            }
        }
    }
}

/// Resolves HELP text's escapes (`\\` and `\n`); on an invalid one, its offset in `text`.
fn unescape_help(text: &str) -> Result<Cow<'_, str>, usize> {
    let Some(first) = text.find('\\') else {
        return Ok(Cow::Borrowed(text));
    };
    let bytes = text.as_bytes();
    let mut help = String::with_capacity(text.len());
    help.push_str(&text[..first]);
    let mut at = first;
    while at < bytes.len() {
        // `at` is at a backslash.
        match bytes.get(at + 1) {
            Some(b'\\') => help.push('\\'),
            Some(b'n') => help.push('\n'),
            _ => return Err(at),
        }
        at += 2;
        let next = text[at..].find('\\').map_or(text.len(), |i| at + i);
        help.push_str(&text[at..next]);
        at = next;
    }
    Ok(Cow::Owned(help))
}

/// Parses a float as Go writes and reads them: decimal with an optional exponent, `NaN`,
/// `[+-]Inf` or `[+-]Infinity` in any case. No hex floats, no underscores, no signed NaN, and
/// nothing beyond `f64`'s range (Go's `ParseFloat` says out of range; Rust would say infinity).
pub(super) fn parse_float(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    // Most values on a page are counts: integers of a few digits, exact in an f64.
    if !bytes.is_empty() && bytes.len() <= 15 {
        let mut integer: u64 = 0;
        let mut digits = true;
        for &byte in bytes {
            let digit = byte.wrapping_sub(b'0');
            if digit > 9 {
                digits = false;
                break;
            }
            integer = integer * 10 + u64::from(digit);
        }
        if digits {
            // At most 15 digits: below 2^53, so exact.
            #[allow(clippy::cast_precision_loss)] // exact below 2^53, see above
            return Some(integer as f64);
        }
    }
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        return Some(if text.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        });
    }
    if text.eq_ignore_ascii_case("nan") {
        return Some(f64::NAN);
    }
    // Rust also reads `inf`, `nan` and their signed forms, handled (or refused) above.
    if !bytes
        .iter()
        .all(|&b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    text.parse::<f64>().ok().filter(|value| value.is_finite())
}

const fn class_table(metric: bool, first: bool) -> [bool; 256] {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphabetic()
            || b == b'_'
            || (metric && b == b':')
            || (!first && b.is_ascii_digit());
        byte += 1;
    }
    table
}

static METRIC_FIRST: [bool; 256] = class_table(true, true);
static METRIC_REST: [bool; 256] = class_table(true, false);
static LABEL_FIRST: [bool; 256] = class_table(false, true);
static LABEL_REST: [bool; 256] = class_table(false, false);

fn name_end(bytes: &[u8], start: usize, first: &[bool; 256], rest: &[bool; 256]) -> usize {
    match bytes.get(start) {
        Some(&b) if first[usize::from(b)] => {}
        _ => return start,
    }
    let mut at = start + 1;
    while let Some(&b) = bytes.get(at) {
        if !rest[usize::from(b)] {
            break;
        }
        at += 1;
    }
    at
}

/// The end of the metric name at `start` (`start` itself if there is none).
fn metric_name_end(bytes: &[u8], start: usize) -> usize {
    name_end(bytes, start, &METRIC_FIRST, &METRIC_REST)
}

/// The end of the label name at `start` (`start` itself if there is none).
fn label_name_end(bytes: &[u8], start: usize) -> usize {
    name_end(bytes, start, &LABEL_FIRST, &LABEL_REST)
}

fn is_blank(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

fn skip_blanks(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(|&b| is_blank(b)) {
        at += 1;
    }
    at
}

/// The end of the token at `at`: the next blank or the end of the line.
fn token_end(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(|&b| !is_blank(b)) {
        at += 1;
    }
    at
}
