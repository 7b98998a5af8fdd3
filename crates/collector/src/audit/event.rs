//! The few fields of an `audit.k8s.io/v1` `EventList` the receiver reads, and nothing else.
//!
//! Strings are borrowed from the body where JSON allows it (an escaped string, which Go writes
//! for `<`, `>` and `&`, is copied); every other field, `requestObject` and `responseObject`
//! included, is skipped without being built. An item that is not an object, or lacks what a
//! request is counted by, is one malformed event and the rest of the batch still counts; a body
//! that is not JSON, or not an `EventList`, is refused whole.

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The stage at which a request is counted: every request that completes has exactly one
/// event at it (watches too, when they end), so counting only it counts each request once.
pub const COUNTED_STAGE: &str = "ResponseComplete";

/// Why a body was refused whole.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// Not JSON at all (or truncated).
    #[error("the body is not JSON: {0}")]
    NotJson(serde_json::Error),
    /// JSON, but not an `audit.k8s.io/v1` `EventList`.
    #[error("the body is not an audit.k8s.io/v1 EventList: {0}")]
    NotEventList(String),
}

/// One event of a batch, as far as counting goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed<'a> {
    /// A completed request.
    Request(Request<'a>),
    /// An event at another stage (`RequestReceived`, `ResponseStarted`, `Panic`).
    IgnoredStage,
    /// An item the receiver cannot count, and why.
    Malformed(&'static str),
}

/// A completed request: who sent it, what it did, how it ended and how long it took.
#[derive(Debug, Clone, PartialEq)]
pub struct Request<'a> {
    pub user: Cow<'a, str>,
    /// Empty when the event has none.
    pub user_agent: Cow<'a, str>,
    pub verb: Cow<'a, str>,
    /// `pods`, `pods/log`; empty for non-resource requests (`/healthz`, `/metrics`).
    pub resource: Cow<'a, str>,
    /// `responseStatus.code`, if the event has one.
    pub code: Option<i64>,
    /// `stageTimestamp − requestReceivedTimestamp`, in seconds.
    pub latency_seconds: f64,
}

/// Parses a webhook body into its events.
pub fn parse(body: &[u8]) -> Result<Vec<Parsed<'_>>, BatchError> {
    let list: EventList<'_> = serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => BatchError::NotEventList(e.to_string()),
        _ => BatchError::NotJson(e),
    })?;
    if list.api_version.as_ref().map(Str::as_str) != Some("audit.k8s.io/v1") {
        return Err(BatchError::NotEventList(format!(
            "apiVersion is {:?}, not \"audit.k8s.io/v1\"",
            list.api_version
                .as_ref()
                .map(Str::as_str)
                .unwrap_or_default()
        )));
    }
    if list.kind.as_ref().map(Str::as_str) != Some("EventList") {
        return Err(BatchError::NotEventList(format!(
            "kind is {:?}, not \"EventList\"",
            list.kind.as_ref().map(Str::as_str).unwrap_or_default()
        )));
    }
    Ok(list.items.into_iter().map(Item::into_parsed).collect())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventList<'a> {
    #[serde(borrow)]
    api_version: Option<Str<'a>>,
    #[serde(borrow)]
    kind: Option<Str<'a>>,
    // `null` items (Go's nil slice) are no events.
    #[serde(borrow, default, deserialize_with = "items_or_null")]
    items: Vec<Item<'a>>,
}

fn items_or_null<'de: 'a, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Item<'a>>, D::Error> {
    Ok(Option::<Vec<Item<'a>>>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent<'a> {
    #[serde(borrow)]
    stage: Option<Str<'a>>,
    #[serde(borrow)]
    verb: Option<Str<'a>>,
    #[serde(borrow)]
    user: Option<RawUser<'a>>,
    #[serde(borrow)]
    user_agent: Option<Str<'a>>,
    #[serde(borrow)]
    object_ref: Option<RawObjectRef<'a>>,
    response_status: Option<RawStatus>,
    #[serde(borrow)]
    request_received_timestamp: Option<Str<'a>>,
    #[serde(borrow)]
    stage_timestamp: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct RawUser<'a> {
    #[serde(borrow)]
    username: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct RawObjectRef<'a> {
    #[serde(borrow)]
    resource: Option<Str<'a>>,
    #[serde(borrow)]
    subresource: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct RawStatus {
    code: Option<i64>,
}

impl<'a> RawEvent<'a> {
    fn into_parsed(self) -> Parsed<'a> {
        let Some(stage) = self.stage else {
            return Parsed::Malformed("no stage");
        };
        if stage.0 != COUNTED_STAGE {
            return Parsed::IgnoredStage;
        }
        let Some(verb) = self.verb.filter(|v| !v.0.is_empty()) else {
            return Parsed::Malformed("no verb");
        };
        let Some(user) = self.user.and_then(|u| u.username) else {
            return Parsed::Malformed("no user.username");
        };
        let (Some(received), Some(completed)) =
            (self.request_received_timestamp, self.stage_timestamp)
        else {
            return Parsed::Malformed("no requestReceivedTimestamp or stageTimestamp");
        };
        let Some(latency_seconds) = latency(&received.0, &completed.0) else {
            return Parsed::Malformed("timestamps that are not RFC 3339, or out of order");
        };
        Parsed::Request(Request {
            user: user.0,
            user_agent: self.user_agent.map(|s| s.0).unwrap_or_default(),
            verb: verb.0,
            resource: self.object_ref.map(resource).unwrap_or_default(),
            code: self.response_status.and_then(|s| s.code),
            latency_seconds,
        })
    }
}

/// `pods`, or `pods/log` for a subresource.
fn resource(object: RawObjectRef<'_>) -> Cow<'_, str> {
    let resource = object.resource.map(|r| r.0).unwrap_or_default();
    match object.subresource.map(|s| s.0) {
        Some(sub) if !sub.is_empty() => Cow::Owned(format!("{resource}/{sub}")),
        _ => resource,
    }
}

/// Seconds from `received` to `completed` (both `metav1.MicroTime`, RFC 3339); `None` if either
/// does not parse or the request would have completed before it was received.
fn latency(received: &str, completed: &str) -> Option<f64> {
    let received: Timestamp = received.parse().ok()?;
    let completed: Timestamp = completed.parse().ok()?;
    let seconds = completed.duration_since(received).as_secs_f64();
    (seconds >= 0.0).then_some(seconds)
}

/// A string borrowed from the body when it has no escapes, copied when it has.
struct Str<'a>(Cow<'a, str>);

impl Str<'_> {
    fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for StrVisitor<'a> {
            type Value = Str<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Str<'a>, E> {
                Ok(Str(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(StrVisitor(std::marker::PhantomData))
    }
}

/// An item of `items`: an event, or anything else JSON allows there (counted as malformed
/// rather than failing the batch).
enum Item<'a> {
    Event(Box<RawEvent<'a>>),
    NotAnObject,
}

impl<'a> Item<'a> {
    fn into_parsed(self) -> Parsed<'a> {
        match self {
            Item::Event(event) => event.into_parsed(),
            Item::NotAnObject => Parsed::Malformed("an item that is not an object"),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Item<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for ItemVisitor<'a> {
            type Value = Item<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an audit event")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Item<'a>, A::Error> {
                RawEvent::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|event| Item::Event(Box::new(event)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item<'a>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Item::NotAnObject)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Item<'a>, E> {
                Ok(Item::NotAnObject)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Item<'a>, E> {
                Ok(Item::NotAnObject)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Item<'a>, E> {
                Ok(Item::NotAnObject)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Item<'a>, E> {
                Ok(Item::NotAnObject)
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Item<'a>, E> {
                Ok(Item::NotAnObject)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Item<'a>, E> {
                Ok(Item::NotAnObject)
            }
        }
        deserializer.deserialize_any(ItemVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One event as the API server writes it (a real v1.37 event's fields, trimmed).
    pub(crate) fn event(stage: &str, user: &str, agent: &str, verb: &str, code: i64) -> String {
        serde_json::json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": "6b1f5d8e-0c7a-4c7e-9d55-3f1d2c1e9a01", "stage": stage,
            "requestURI": "/api/v1/namespaces/default/pods?limit=500", "verb": verb,
            "user": {"username": user, "groups": ["system:authenticated"]},
            "sourceIPs": ["127.0.0.1"], "userAgent": agent,
            "objectRef": {"resource": "pods", "namespace": "default", "apiVersion": "v1"},
            "responseStatus": {"metadata": {}, "code": code},
            "requestReceivedTimestamp": "2026-03-01T10:00:00.000000Z",
            "stageTimestamp": "2026-03-01T10:00:00.250000Z",
            "annotations": {"authorization.k8s.io/decision": "allow"}
        })
        .to_string()
    }

    pub(crate) fn list(events: &[String]) -> String {
        format!(
            r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{{}},"items":[{}]}}"#,
            events.join(",")
        )
    }

    #[test]
    fn a_completed_request_is_read_with_its_latency() {
        let body = list(&[event(
            "ResponseComplete",
            "alice",
            "kubectl/v1.37.2",
            "list",
            200,
        )]);
        let parsed = parse(body.as_bytes()).expect("an EventList");
        let [Parsed::Request(request)] = parsed.as_slice() else {
            panic!("one request: {parsed:?}");
        };
        assert_eq!(request.user, "alice");
        assert_eq!(request.user_agent, "kubectl/v1.37.2");
        assert_eq!(request.verb, "list");
        assert_eq!(request.resource, "pods");
        assert_eq!(request.code, Some(200));
        assert!((request.latency_seconds - 0.25).abs() < 1e-9);
    }

    #[test]
    fn other_stages_are_ignored_and_bad_items_are_malformed() {
        let body = list(&[
            event("RequestReceived", "a", "x", "get", 200),
            r#"{"stage":"ResponseComplete","verb":"get"}"#.to_owned(),
            "42".to_owned(),
            "[1,[2]]".to_owned(),
            event("ResponseComplete", "a", "x", "get", 200)
                .replace("2026-03-01T10:00:00.250000Z", "yesterday"),
        ]);
        let parsed = parse(body.as_bytes()).expect("an EventList");
        assert_eq!(parsed[0], Parsed::IgnoredStage);
        assert_eq!(parsed[1], Parsed::Malformed("no user.username"));
        assert!(matches!(parsed[2], Parsed::Malformed(_)));
        assert!(matches!(parsed[3], Parsed::Malformed(_)));
        assert!(matches!(parsed[4], Parsed::Malformed(_)));
    }

    #[test]
    fn escaped_strings_and_subresources_are_read() {
        let body = list(&[r#"{"stage":"ResponseComplete","verb":"get","user":{"username":"a\u0026b"},
            "userAgent":"x \u003cy\u003e","objectRef":{"resource":"pods","subresource":"log"},
            "requestReceivedTimestamp":"2026-03-01T10:00:00Z","stageTimestamp":"2026-03-01T10:00:01Z"}"#
            .to_owned()]);
        let parsed = parse(body.as_bytes()).expect("an EventList");
        let [Parsed::Request(request)] = parsed.as_slice() else {
            panic!("one request: {parsed:?}");
        };
        assert_eq!(request.user, "a&b");
        assert_eq!(request.user_agent, "x <y>");
        assert_eq!(request.resource, "pods/log");
        assert_eq!(request.code, None);
    }

    #[test]
    fn bodies_that_are_not_event_lists_are_refused_whole() {
        assert!(matches!(parse(b"not json"), Err(BatchError::NotJson(_))));
        assert!(matches!(
            parse(b"{\"items\":["),
            Err(BatchError::NotJson(_))
        ));
        assert!(matches!(parse(b"[]"), Err(BatchError::NotEventList(_))));
        assert!(matches!(
            parse(br#"{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}"#),
            Err(BatchError::NotEventList(_))
        ));
        assert!(matches!(
            parse(br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{"verb":5}]}"#),
            Err(BatchError::NotEventList(_))
        ));
        let empty = parse(br#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":null}"#);
        assert!(empty.expect("an empty list").is_empty());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn arbitrary_json_around_events_never_panics(
            junk in "[\\[\\]{}\":,0-9a-zA-Z ]{0,200}",
            code in any::<i64>(),
        ) {
            let body = list(&[event("ResponseComplete", "u", "a", "get", code), junk]);
            let _ = parse(body.as_bytes());
        }
    }
}
