//! The remote-write 1.0 messages and the request body they travel in.
//!
//! The four messages are Prometheus's `prompb` `WriteRequest`, `TimeSeries`, `Label` and
//! `Sample` (`prompb/remote.proto`, `prompb/types.proto`), declared by hand with the same field
//! numbers — no protoc, no build script. A body is the encoded `WriteRequest` compressed with
//! snappy's *block* format (not the framed format, which receivers reject as corrupt input).

use bytes::Bytes;
use prost::Message as _;

/// The label that carries a series' metric name.
pub const METRIC_NAME_LABEL: &str = "__name__";

/// `prometheus.WriteRequest`: the body of one remote-write request.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    /// The series in this request, each with its samples.
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`: one series' labels and some of its samples, oldest first.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    /// The labels, `__name__` included, sorted by name (the sink sorts them when they are
    /// pushed).
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    /// The samples, in increasing timestamp order.
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
}

/// `prometheus.Label`: a label name and value.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, prost::Message)]
pub struct Label {
    /// The label name (`__name__` for the metric name).
    #[prost(string, tag = "1")]
    pub name: String,
    /// The label value.
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`: a value at a time.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Sample {
    /// The value.
    #[prost(double, tag = "1")]
    pub value: f64,
    /// Milliseconds since the Unix epoch.
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

impl Label {
    /// A label.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Label {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl Sample {
    /// A sample of `value` at `timestamp_ms` (milliseconds since the Unix epoch).
    pub fn new(value: f64, timestamp_ms: i64) -> Sample {
        Sample {
            value,
            timestamp: timestamp_ms,
        }
    }
}

impl TimeSeries {
    /// A series named `name` with `labels` (in any order; `__name__` is added and the labels
    /// sorted by name) and `samples` (oldest first).
    pub fn new<N, V>(
        name: impl Into<String>,
        labels: impl IntoIterator<Item = (N, V)>,
        samples: Vec<Sample>,
    ) -> TimeSeries
    where
        N: Into<String>,
        V: Into<String>,
    {
        let mut series = TimeSeries {
            labels: std::iter::once(Label::new(METRIC_NAME_LABEL, name))
                .chain(labels.into_iter().map(|(n, v)| Label::new(n, v)))
                .collect(),
            samples,
        };
        series.sort_labels();
        series
    }

    /// Sorts the labels by name, as the protocol requires.
    pub fn sort_labels(&mut self) {
        // Stable, so that duplicate names (which a receiver rejects) stay in the order given.
        self.labels.sort_by(|a, b| a.name.cmp(&b.name));
    }

    /// Why a receiver would refuse this series, if it would: no (or an empty) `__name__`, an
    /// empty label name, or a label name twice. Expects sorted labels.
    pub fn problem(&self) -> Option<&'static str> {
        if self.label(METRIC_NAME_LABEL).is_none_or(str::is_empty) {
            return Some("no __name__ label");
        }
        if self.labels.iter().any(|label| label.name.is_empty()) {
            return Some("an empty label name");
        }
        if self
            .labels
            .windows(2)
            .any(|pair| pair[0].name == pair[1].name)
        {
            return Some("a label name twice");
        }
        None
    }

    /// The value of the label `name`, if the series has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|label| label.name == name)
            .map(|label| label.value.as_str())
    }
}

/// Encodes `request` as a remote-write body: protobuf, then snappy block compression.
pub fn encode_body(request: &WriteRequest) -> Result<Bytes, snap::Error> {
    let protobuf = request.encode_to_vec();
    Ok(Bytes::from(
        snap::raw::Encoder::new().compress_vec(&protobuf)?,
    ))
}

/// Decodes a remote-write body (the inverse of [`encode_body`]), as a receiver would.
pub fn decode_body(body: &[u8]) -> Result<WriteRequest, DecodeError> {
    let protobuf = snap::raw::Decoder::new().decompress_vec(body)?;
    Ok(WriteRequest::decode(protobuf.as_slice())?)
}

/// Why a body did not decode.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Not snappy block-compressed data.
    #[error("the body is not snappy block-compressed: {0}")]
    Snappy(#[from] snap::Error),
    /// Not a `WriteRequest`.
    #[error("the body is not a protobuf WriteRequest: {0}")]
    Protobuf(#[from] prost::DecodeError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> WriteRequest {
        WriteRequest {
            timeseries: vec![
                TimeSeries::new(
                    "fleetwatch_demo_seconds",
                    [("zone", "b"), ("cluster", "c-1")],
                    vec![
                        Sample::new(1.5, 1_700_000_000_000),
                        Sample::new(-0.25, 1_700_000_001_000),
                    ],
                ),
                TimeSeries::new("up", [("job", "agent")], vec![Sample::new(f64::MAX, -1)]),
            ],
        }
    }

    #[test]
    fn the_body_decodes_back_to_the_same_request() {
        let request = request();
        let body = encode_body(&request).expect("encode");
        assert_eq!(decode_body(&body).expect("decode"), request);
    }

    #[test]
    fn the_body_is_snappy_block_format_not_framed() {
        let body = encode_body(&request()).expect("encode");
        // The framed format opens with its stream identifier chunk.
        assert!(!body.starts_with(b"\xff\x06\x00\x00sNaPpY"));
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&body)
            .expect("block format");
        assert_eq!(
            WriteRequest::decode(raw.as_slice()).expect("protobuf"),
            request()
        );
    }

    #[test]
    fn field_numbers_match_prompb() {
        // Label{name:"a", value:"b"} = field 1 (len 1) "a", field 2 (len 1) "b".
        assert_eq!(Label::new("a", "b").encode_to_vec(), b"\x0a\x01a\x12\x01b");
        // Sample{value: 1.0, timestamp: 2} = field 1 fixed64, field 2 varint.
        let mut sample = vec![0x09];
        sample.extend_from_slice(&1.0f64.to_le_bytes());
        sample.extend_from_slice(&[0x10, 0x02]);
        assert_eq!(Sample::new(1.0, 2).encode_to_vec(), sample);
        let series = TimeSeries {
            labels: vec![Label::new("a", "b")],
            samples: vec![Sample::new(1.0, 2)],
        };
        let mut expected = vec![0x0a, 6];
        expected.extend_from_slice(b"\x0a\x01a\x12\x01b");
        expected.extend_from_slice(&[0x12, sample.len() as u8]);
        expected.extend_from_slice(&sample);
        assert_eq!(series.encode_to_vec(), expected);
        let request = WriteRequest {
            timeseries: vec![series],
        };
        assert_eq!(request.encode_to_vec()[0], 0x0a);
    }

    #[test]
    fn labels_are_sorted_by_name_with_the_metric_name() {
        let series = request().timeseries.remove(0);
        let names: Vec<&str> = series.labels.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["__name__", "cluster", "zone"]);
        assert_eq!(series.label("__name__"), Some("fleetwatch_demo_seconds"));
    }

    #[test]
    fn series_a_receiver_would_refuse_are_named() {
        assert_eq!(request().timeseries[0].problem(), None);
        let unnamed = TimeSeries::new("", [("a", "b")], vec![]);
        assert_eq!(unnamed.problem(), Some("no __name__ label"));
        let twice = TimeSeries::new("m", [("a", "b"), ("a", "c")], vec![]);
        assert_eq!(twice.problem(), Some("a label name twice"));
        let empty = TimeSeries::new("m", [("", "b")], vec![]);
        assert_eq!(empty.problem(), Some("an empty label name"));
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(matches!(
            decode_body(b"not snappy"),
            Err(DecodeError::Snappy(_))
        ));
    }
}
