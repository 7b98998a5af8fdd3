//! From parsed events to series: per client (the top K, the rest as `other`), verb and
//! resource, with every label value bounded.
//!
//! Bounds, so that no client can grow the page: user and user agent are cut to
//! [`MAX_LABEL_BYTES`]; a verb outside the API server's own set is `other` (non-resource
//! requests carry the HTTP method, which a client chooses); each client has at most
//! [`MAX_SERIES_PER_CLIENT`] (verb, resource, code class) combinations, past which the resource
//! is `other` (a request for `/api/v1/made-up-thing` is audited with that resource). So the
//! request counters are at most (K + 1) × (`MAX_SERIES_PER_CLIENT` + 15 verbs × 5 classes).
//!
//! A client that leaves the top K has its series removed, not moved into `other`: a counter
//! never goes down, and `other` stays a true count of what it was given. One that comes back
//! starts again from zero, which Prometheus reads as a counter reset.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::event::{Parsed, Request};
use super::topk::{Decision, TopClients};

/// User names and user agents are cut to this many bytes (at a character boundary).
pub const MAX_LABEL_BYTES: usize = 256;
/// (verb, resource, code class) combinations one client may have before its resources fold
/// into `other`.
pub const MAX_SERIES_PER_CLIENT: usize = 64;
/// The label value that collects clients outside the top K, unknown verbs and resources past
/// a client's budget.
pub const OTHER: &str = "other";
/// The sketch keeps this many times K clients: enough that a client's estimate is close.
const SKETCH_FACTOR: usize = 8;

/// The verbs kept as they are: the API server's resource verbs and the lower-cased HTTP methods
/// of non-resource requests.
const VERBS: [&str; 14] = [
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
    "proxy",
    "connect",
    "post",
    "put",
    "head",
    "options",
];

/// Latency buckets in seconds: a few, from a fast GET to a slow LIST, because every bucket is
/// multiplied by (K + 1) clients, verbs and resources.
const LATENCY_BUCKETS: [f64; 7] = [0.005, 0.025, 0.1, 0.25, 1.0, 5.0, 30.0];

/// Labels of `fleetwatch_collector_audit_requests_total`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, EncodeLabelSet)]
pub struct RequestLabels {
    pub user: String,
    pub user_agent: String,
    pub verb: String,
    pub resource: String,
    pub code_class: String,
}

/// Labels of `fleetwatch_collector_audit_request_duration_seconds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, EncodeLabelSet)]
pub struct DurationLabels {
    pub user: String,
    pub user_agent: String,
    pub verb: String,
    pub resource: String,
}

/// Labels of the outcome counters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// What happened to a webhook request (`fleetwatch_collector_audit_batches_total{outcome}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    Accepted,
    NotJson,
    NotEventList,
    TooLarge,
    BadMethod,
    NotFound,
    ReadError,
}

impl BatchOutcome {
    const ALL: [BatchOutcome; 7] = [
        BatchOutcome::Accepted,
        BatchOutcome::NotJson,
        BatchOutcome::NotEventList,
        BatchOutcome::TooLarge,
        BatchOutcome::BadMethod,
        BatchOutcome::NotFound,
        BatchOutcome::ReadError,
    ];

    pub fn label(self) -> &'static str {
        match self {
            BatchOutcome::Accepted => "accepted",
            BatchOutcome::NotJson => "not_json",
            BatchOutcome::NotEventList => "not_event_list",
            BatchOutcome::TooLarge => "too_large",
            BatchOutcome::BadMethod => "bad_method",
            BatchOutcome::NotFound => "not_found",
            BatchOutcome::ReadError => "read_error",
        }
    }
}

const EVENT_OUTCOMES: [&str; 3] = ["accepted", "ignored_stage", "malformed"];
const CONNECTION_OUTCOMES: [&str; 2] = ["accepted", "handshake_failed"];

/// A client: who sent requests, with what.
type Client = (String, String);
/// One request counter of a client.
type SeriesKey = (String, String, &'static str);

/// The receiver's series, and the state that keeps them bounded. Shared by every connection.
#[derive(Debug)]
pub struct Aggregator {
    requests: Family<RequestLabels, Counter>,
    durations: Family<DurationLabels, Histogram, fn() -> Histogram>,
    events: Family<OutcomeLabels, Counter>,
    batches: Family<OutcomeLabels, Counter>,
    connections: Family<OutcomeLabels, Counter>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    top: TopClients<Client>,
    /// The request counters each labelled client (and `other`) has, to keep them within
    /// budget and to remove them when the client leaves the top K.
    series: HashMap<Client, BTreeSet<SeriesKey>>,
}

/// How many events of a batch went where.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub accepted: u64,
    pub ignored_stage: u64,
    pub malformed: u64,
    /// Why the first malformed event was.
    pub first_malformed: Option<&'static str>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl Aggregator {
    /// Registers `fleetwatch_collector_audit_*` in `registry`, keeping the top `k` clients.
    pub fn register(registry: &mut Registry, k: usize) -> Aggregator {
        let aggregator = Aggregator {
            requests: Family::default(),
            durations: Family::new_with_constructor(latency_histogram),
            events: Family::default(),
            batches: Family::default(),
            connections: Family::default(),
            state: Mutex::new(State {
                top: TopClients::new(k, k.saturating_mul(SKETCH_FACTOR)),
                series: HashMap::new(),
            }),
        };
        registry.register(
            "fleetwatch_collector_audit_requests",
            "Requests the API server audited at ResponseComplete, by client (the top K by \
             requests; the rest as user and user_agent \"other\"), verb, resource and response \
             code class",
            aggregator.requests.clone(),
        );
        registry.register(
            "fleetwatch_collector_audit_request_duration_seconds",
            "Time from requestReceivedTimestamp to stageTimestamp at ResponseComplete, by \
             client, verb and resource; long-running requests (watch, exec, attach, \
             port-forward, proxy) are not observed",
            aggregator.durations.clone(),
        );
        registry.register(
            "fleetwatch_collector_audit_events",
            "Audit events received, by outcome (accepted, ignored_stage, malformed)",
            aggregator.events.clone(),
        );
        registry.register(
            "fleetwatch_collector_audit_batches",
            "Audit webhook requests received, by outcome",
            aggregator.batches.clone(),
        );
        registry.register(
            "fleetwatch_collector_audit_connections",
            "Connections to the audit webhook, by outcome (accepted, handshake_failed: no or \
             an untrusted client certificate, or not TLS)",
            aggregator.connections.clone(),
        );
        // Every outcome is on the page from the start, at 0.
        for outcome in BatchOutcome::ALL {
            let _ = aggregator.batches.get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            });
        }
        for outcome in EVENT_OUTCOMES {
            let _ = aggregator.events.get_or_create(&OutcomeLabels { outcome });
        }
        for outcome in CONNECTION_OUTCOMES {
            let _ = aggregator
                .connections
                .get_or_create(&OutcomeLabels { outcome });
        }
        aggregator
    }

    /// Counts a webhook request's outcome.
    pub fn batch(&self, outcome: BatchOutcome) {
        self.batches
            .get_or_create(&OutcomeLabels {
                outcome: outcome.label(),
            })
            .inc();
    }

    /// Counts a connection: accepted, or refused at the handshake.
    pub fn connection(&self, accepted: bool) {
        let outcome = CONNECTION_OUTCOMES[usize::from(!accepted)];
        self.connections
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// Counts a batch's events into the series.
    pub fn record(&self, events: &[Parsed<'_>]) -> Tally {
        let mut tally = Tally::default();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for event in events {
            match event {
                Parsed::Request(request) => {
                    tally.accepted += 1;
                    self.record_request(&mut state, request);
                }
                Parsed::IgnoredStage => tally.ignored_stage += 1,
                Parsed::Malformed(why) => {
                    tally.malformed += 1;
                    tally.first_malformed.get_or_insert(why);
                }
            }
        }
        drop(state);
        for (outcome, n) in
            EVENT_OUTCOMES
                .into_iter()
                .zip([tally.accepted, tally.ignored_stage, tally.malformed])
        {
            if n > 0 {
                self.events
                    .get_or_create(&OutcomeLabels { outcome })
                    .inc_by(n);
            }
        }
        tally
    }

    /// Halves the top-K counts (see [`TopClients::decay`]).
    pub fn decay(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .top
            .decay();
    }

    fn record_request(&self, state: &mut State, request: &Request<'_>) {
        let client = (
            bounded(&request.user).to_owned(),
            bounded(&request.user_agent).to_owned(),
        );
        let client = match state.top.observe(&client) {
            Decision::Labelled => client,
            Decision::Replaced { evicted } => {
                self.remove_client(state, &evicted);
                client
            }
            Decision::Other => (OTHER.to_owned(), OTHER.to_owned()),
        };
        let verb = known_verb(&request.verb);
        let class = code_class(request.code);
        let series = state.series.entry(client.clone()).or_default();
        let mut key = (
            verb.to_owned(),
            bounded(&request.resource).to_owned(),
            class,
        );
        if !series.contains(&key) && series.len() >= MAX_SERIES_PER_CLIENT {
            key.1 = OTHER.to_owned();
        }
        series.insert(key.clone());
        let (verb, resource, code_class) = key;
        if !long_running(&verb, &request.resource) {
            self.durations
                .get_or_create(&DurationLabels {
                    user: client.0.clone(),
                    user_agent: client.1.clone(),
                    verb: verb.clone(),
                    resource: resource.clone(),
                })
                .observe(request.latency_seconds);
        }
        self.requests
            .get_or_create(&RequestLabels {
                user: client.0,
                user_agent: client.1,
                verb,
                resource,
                code_class: code_class.to_owned(),
            })
            .inc();
    }

    /// Removes every series of a client that left the top K.
    fn remove_client(&self, state: &mut State, client: &Client) {
        for (verb, resource, code_class) in state.series.remove(client).unwrap_or_default() {
            self.requests.remove(&RequestLabels {
                user: client.0.clone(),
                user_agent: client.1.clone(),
                verb: verb.clone(),
                resource: resource.clone(),
                code_class: code_class.to_owned(),
            });
            self.durations.remove(&DurationLabels {
                user: client.0.clone(),
                user_agent: client.1.clone(),
                verb,
                resource,
            });
        }
    }
}

/// `value` cut to [`MAX_LABEL_BYTES`] at a character boundary.
fn bounded(value: &str) -> &str {
    if value.len() <= MAX_LABEL_BYTES {
        return value;
    }
    let mut end = MAX_LABEL_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

fn known_verb(verb: &str) -> &str {
    VERBS.iter().find(|v| **v == verb).copied().unwrap_or(OTHER)
}

/// `2xx` … `5xx`, or `unknown` for no code or one outside 100–599.
fn code_class(code: Option<i64>) -> &'static str {
    match code {
        Some(100..=199) => "1xx",
        Some(200..=299) => "2xx",
        Some(300..=399) => "3xx",
        Some(400..=499) => "4xx",
        Some(500..=599) => "5xx",
        _ => "unknown",
    }
}

/// Requests whose ResponseComplete comes when the client hangs up, not when the server has
/// answered: timing them would say how long watches and shells stay open, not how fast the
/// API server is (the API server's own duration histogram leaves them out too).
fn long_running(verb: &str, resource: &str) -> bool {
    matches!(verb, "watch" | "connect" | "proxy")
        || ["/exec", "/attach", "/portforward", "/proxy"]
            .iter()
            .any(|sub| resource.ends_with(sub))
}

#[cfg(test)]
pub(crate) mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::audit::event::{parse, tests as events};
    use proptest::prelude::*;

    /// The request counters on the page: labels → value.
    pub(crate) fn counters(aggregator: &Aggregator) -> HashMap<RequestLabels, u64> {
        let mut registry = Registry::default();
        registry.register("r", "r", aggregator.requests.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        let mut out = HashMap::new();
        for line in text.lines().filter(|l| l.starts_with("r_total{")) {
            let label = |name: &str| {
                let start = line.find(&format!("{name}=\"")).expect("label") + name.len() + 2;
                line[start..start + line[start..].find('"').expect("quote")].to_owned()
            };
            let value = line
                .rsplit(' ')
                .next()
                .expect("value")
                .parse()
                .expect("int");
            out.insert(
                RequestLabels {
                    user: label("user"),
                    user_agent: label("user_agent"),
                    verb: label("verb"),
                    resource: label("resource"),
                    code_class: label("code_class"),
                },
                value,
            );
        }
        out
    }

    fn request(user: &str, verb: &str, resource: &str, code: i64) -> Parsed<'static> {
        Parsed::Request(Request {
            user: Cow::Owned(user.to_owned()),
            user_agent: Cow::Borrowed("agent"),
            verb: Cow::Owned(verb.to_owned()),
            resource: Cow::Owned(resource.to_owned()),
            code: Some(code),
            latency_seconds: 0.01,
        })
    }

    #[test]
    fn a_request_counts_once_by_client_verb_resource_and_class() {
        let mut registry = Registry::default();
        let aggregator = Aggregator::register(&mut registry, 20);
        let tally = aggregator.record(&[
            request("alice", "list", "pods", 200),
            request("alice", "list", "pods", 200),
            request("alice", "get", "pods", 404),
            Parsed::IgnoredStage,
            Parsed::Malformed("no verb"),
        ]);
        assert_eq!(
            (tally.accepted, tally.ignored_stage, tally.malformed),
            (3, 1, 1)
        );
        let counters = counters(&aggregator);
        let labels = |verb: &str, class: &str| RequestLabels {
            user: "alice".into(),
            user_agent: "agent".into(),
            verb: verb.into(),
            resource: "pods".into(),
            code_class: class.into(),
        };
        assert_eq!(counters.get(&labels("list", "2xx")), Some(&2));
        assert_eq!(counters.get(&labels("get", "4xx")), Some(&1));
        assert_eq!(counters.len(), 2);
    }

    #[test]
    fn unknown_verbs_and_resources_past_the_budget_are_other() {
        let mut registry = Registry::default();
        let aggregator = Aggregator::register(&mut registry, 20);
        let mut events = vec![request("mallory", "FROB", "pods", 200)];
        for i in 0..(MAX_SERIES_PER_CLIENT * 3) {
            events.push(request("mallory", "get", &format!("made-up-{i}"), 404));
        }
        aggregator.record(&events);
        let counters = counters(&aggregator);
        assert!(counters.keys().any(|l| l.verb == OTHER));
        assert!(
            counters.len() <= MAX_SERIES_PER_CLIENT + 1,
            "{}",
            counters.len()
        );
        let folded = counters
            .iter()
            .find(|(l, _)| l.resource == OTHER)
            .map(|(_, v)| *v);
        let expected = (MAX_SERIES_PER_CLIENT * 3 + 1 - MAX_SERIES_PER_CLIENT) as u64;
        assert_eq!(folded, Some(expected));
    }

    #[test]
    fn a_client_that_leaves_the_top_k_loses_its_series() {
        let mut registry = Registry::default();
        let aggregator = Aggregator::register(&mut registry, 1);
        aggregator.record(&[request("light", "get", "pods", 200)]);
        aggregator.record(&[
            request("heavy", "get", "pods", 200),
            request("heavy", "get", "pods", 200),
        ]);
        let counters = counters(&aggregator);
        let users: BTreeSet<&str> = counters.keys().map(|l| l.user.as_str()).collect();
        assert_eq!(users, BTreeSet::from(["heavy", OTHER]));
    }

    #[test]
    fn long_running_requests_are_counted_but_not_timed() {
        assert!(long_running("watch", "pods"));
        assert!(long_running("create", "pods/exec"));
        assert!(!long_running("get", "pods/log"));
        assert!(!long_running("list", "pods"));
    }

    #[test]
    fn labels_are_cut_at_a_character_boundary() {
        let long = "é".repeat(MAX_LABEL_BYTES);
        let cut = bounded(&long);
        assert!(cut.len() <= MAX_LABEL_BYTES && cut.chars().all(|c| c == 'é'));
    }

    proptest! {
        /// A valid EventList of any mix of users, verbs and codes counts exactly its
        /// ResponseComplete events, with at most K + 1 clients; with no more than K users,
        /// under exactly the right labels.
        #[test]
        fn an_event_list_round_trips_into_the_right_counts(
            users in 1u8..30,
            requests in proptest::collection::vec((any::<u8>(), 0usize..4, 100i64..600, any::<bool>()), 0..120),
        ) {
            let verbs = ["get", "list", "create", "delete"];
            let requests: Vec<_> = requests.into_iter().map(|(u, v, c, done)| (u % users, v, c, done)).collect();
            let events: Vec<String> = requests
                .iter()
                .map(|&(user, verb, code, complete)| {
                    let stage = if complete { "ResponseComplete" } else { "RequestReceived" };
                    events::event(stage, &format!("user-{user}"), "agent", verbs[verb], code)
                })
                .collect();
            let body = events::list(&events);
            let parsed = parse(body.as_bytes()).expect("a valid EventList");
            let k = 8;
            let mut registry = Registry::default();
            let aggregator = Aggregator::register(&mut registry, k);
            let tally = aggregator.record(&parsed);
            let complete: Vec<_> = requests.iter().filter(|r| r.3).collect();
            prop_assert_eq!(tally.accepted, complete.len() as u64);
            prop_assert_eq!(tally.ignored_stage, (requests.len() - complete.len()) as u64);
            let counters = counters(&aggregator);
            let clients: BTreeSet<&str> = counters.keys().map(|l| l.user.as_str()).collect();
            prop_assert!(clients.len() <= k + 1);
            // A client that left the top K took its series with it.
            prop_assert!(counters.values().sum::<u64>() <= complete.len() as u64);
            let distinct: BTreeSet<u8> = complete.iter().map(|r| r.0).collect();
            if distinct.len() <= k {
                let mut expected: HashMap<RequestLabels, u64> = HashMap::new();
                for &&(user, verb, code, _) in &complete {
                    *expected
                        .entry(RequestLabels {
                            user: format!("user-{user}"),
                            user_agent: "agent".into(),
                            verb: verbs[verb].into(),
                            resource: "pods".into(),
                            code_class: code_class(Some(code)).into(),
                        })
                        .or_default() += 1;
                }
                prop_assert_eq!(counters, expected);
            }
        }
    }
}
