//! The budgeted client against a real API server: construction errors, informers and 429s from a
//! tiny APF priority level. These tests share one control plane and isolate themselves by user,
//! flow schema and namespace; they also share this process's hard ceiling, which is why the
//! ceiling's own test has a test binary (a process) to itself (`tests/ceiling.rs`).

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{connect, eventually, namespace, server_requests_of, settings, sum, test_user};
use fleetwatch_client::{Client, Error, Source, Watch};
use fleetwatch_control_plane::testing;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ListParams};
use kube::config::Kubeconfig;
use kube::core::PartialObjectMeta;
use serde_json::json;

fn config_map(name: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"test": "budget"}},
        "data": {"key": "value"},
    }))
    .expect("a config map")
}

fn name_of(meta: &PartialObjectMeta<ConfigMap>) -> String {
    meta.metadata.name.clone().unwrap_or_default()
}

fn label_count(meta: &PartialObjectMeta<ConfigMap>) -> String {
    meta.metadata
        .labels
        .as_ref()
        .map_or(0, |l| l.len())
        .to_string()
}

async fn connect_to(path: std::path::PathBuf, context: Option<&str>) -> Result<Client, Error> {
    Client::connect(
        Source::Kubeconfig {
            path,
            context: context.map(str::to_owned),
        },
        settings("test"),
    )
    .await
}

#[tokio::test]
async fn construction_errors_name_the_file_context_and_server_never_the_token() {
    let plane = testing::shared();
    // The test's own files live in a directory of its own: the lab's removes only what it made.
    let tmp = tempfile::tempdir().expect("a directory for test kubeconfigs");
    let dir = tmp.path();
    let good = plane.kubeconfig();
    let text = std::fs::read_to_string(&good).expect("kubeconfig");

    let missing = dir.join("missing-kubeconfig");
    let e = connect_to(missing.clone(), None)
        .await
        .expect_err("missing file");
    assert!(matches!(e, Error::Kubeconfig { .. }), "{e}");
    assert!(
        e.to_string().contains(&missing.display().to_string()),
        "{e}"
    );

    let e = connect_to(good.clone(), Some("nope"))
        .await
        .expect_err("unknown context");
    assert!(matches!(e, Error::UnknownContext { .. }), "{e}");
    assert!(e.to_string().contains("fleetwatch-lab"), "{e}");

    // The client CA did not sign the API server's certificate.
    let bad_ca = dir.join("kubeconfig-bad-ca");
    std::fs::write(&bad_ca, text.replace("serving-ca.crt", "client-ca.crt")).expect("write");
    let e = connect_to(bad_ca, None).await.expect_err("wrong CA");
    assert!(matches!(e, Error::Certificate { .. }), "{e}");
    assert!(e.to_string().contains(&plane.apiserver_url()), "{e}");

    // A client certificate that is not there.
    let no_cert = dir.join("kubeconfig-no-cert");
    let crt = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("client-certificate: "))
        .expect("a client certificate")
        .trim_matches('"')
        .to_owned();
    std::fs::write(&no_cert, text.replace(&crt, "/nonexistent/client.crt")).expect("write");
    let e = connect_to(no_cert, None)
        .await
        .expect_err("missing client certificate");
    assert!(e.to_string().contains("/nonexistent/client.crt"), "{e}");

    // Nothing listens on a port we just released; the user authenticates with a token.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let token = "sekret-token-0123456789";
    let unreachable = dir.join("kubeconfig-unreachable");
    // Edited as data, not text (the file's layout is the control plane's business); JSON is
    // YAML, so kube reads it back.
    let mut with_token =
        serde_json::to_value(Kubeconfig::read_from(&good).expect("kubeconfig")).expect("JSON");
    with_token["clusters"][0]["cluster"]["server"] = json!(format!("https://127.0.0.1:{port}"));
    with_token["users"] = json!([{"name": "tok", "user": {"token": token}}]);
    with_token["contexts"][0]["context"]["user"] = json!("tok");
    let with_token = with_token.to_string();
    std::fs::write(&unreachable, &with_token).expect("write");
    let e = connect_to(unreachable, None)
        .await
        .expect_err("unreachable");
    assert!(matches!(e, Error::Unreachable { .. }), "{e}");
    assert!(e.to_string().contains(&format!("127.0.0.1:{port}")), "{e}");
    assert!(
        !format!("{e} {e:?}").contains(token),
        "the token leaked: {e:?}"
    );

    // A kubeconfig that is not YAML: the error must not quote it.
    let broken = dir.join("kubeconfig-broken");
    std::fs::write(&broken, format!("users: [ {{ token: {token}\n")).expect("write");
    let e = connect_to(broken, None).await.expect_err("broken");
    assert!(matches!(e, Error::Kubeconfig { .. }), "{e}");
    assert!(
        !format!("{e} {e:?}").contains(token),
        "the token leaked: {e:?}"
    );
}

#[tokio::test]
async fn informers_converge_are_shared_and_reads_go_through_them_only() {
    let plane = testing::shared();
    let kubeconfig = test_user(plane, "fw-informers", "workload-low").await;
    namespace(plane, "informers").await;
    let client = connect(kubeconfig, settings("test")).await;
    let writer = client.writer::<ConfigMap>("informers");
    for i in 0..5 {
        writer
            .create(&config_map(&format!("cm-{i}")))
            .await
            .expect("create");
    }

    let watch = || Watch::<ConfigMap>::namespaced("informers").labels("test=budget");
    let informer = client
        .metadata_informer(watch(), name_of)
        .expect("an informer");
    informer.ready().await;
    let names = |i: &fleetwatch_client::Informer<String>| -> BTreeSet<String> {
        i.store().iter().map(|(_, v)| v.clone()).collect()
    };
    let expected: BTreeSet<String> = (0..5).map(|i| format!("cm-{i}")).collect();
    assert_eq!(names(&informer), expected);

    // Changes arrive by watch, with no further list.
    writer.delete("cm-0").await.expect("delete");
    writer
        .apply("cm-9", &config_map("cm-9"))
        .await
        .expect("apply");
    let mut expected = expected;
    expected.remove("cm-0");
    expected.insert("cm-9".to_owned());
    eventually(Duration::from_secs(20), "the watch to deliver", || {
        names(&informer) == expected
    })
    .await;
    assert_eq!(informer.stats().lists, 1);

    // The same resource and selector is one shared watch; another projection is refused.
    let again = client
        .metadata_informer(watch(), name_of)
        .expect("the shared informer");
    assert_eq!(again.stats(), informer.stats());
    let e = client
        .metadata_informer(watch(), label_count)
        .expect_err("a second projection");
    assert!(matches!(e, Error::ConflictingProjection { .. }), "{e}");

    // Dropping every handle and asking again does not list again: no polling by re-creation.
    let lists = informer.stats().lists;
    drop((informer, again));
    let revived = client
        .metadata_informer(watch(), name_of)
        .expect("the running informer");
    assert_eq!(revived.stats().lists, lists);
    assert_eq!(names(&revived), expected);

    // Non-resource scrapes are allowed; resource paths are not.
    assert!(
        client
            .scrape("/readyz")
            .await
            .expect("readyz")
            .contains("ok")
    );
    let e = client
        .scrape("/api/v1/pods")
        .await
        .expect_err("a LIST by path");
    assert!(matches!(e, Error::NotScrapable { .. }), "{e}");
}

/// A flow schema for our user in a priority level with a single share that rejects what it
/// cannot seat: a flood of creates meets 429s.
#[tokio::test]
async fn flood_against_a_tiny_priority_level_stays_in_rate_honours_retry_after_and_finishes() {
    const USER: &str = "fw-429";
    const CREATES: usize = 300;
    let plane = testing::shared();
    common::tiny_priority_level(plane, "fw-tiny").await;
    let kubeconfig = test_user(plane, USER, "fw-tiny").await;
    namespace(plane, "flood").await;
    let mut settings = settings("flood");
    settings.qps = 50.0;
    settings.burst = 50;
    settings.concurrency.initial = 16;
    settings.concurrency.max = 16;
    let client = connect(kubeconfig, settings).await;

    // The lowest concurrency limit seen during the flood (additive increase restores it after).
    let lowest = Arc::new(Mutex::new(f64::MAX));
    let sampler = {
        let (client, lowest) = (client.clone(), lowest.clone());
        tokio::spawn(async move {
            loop {
                let text = common::client_metrics(&client);
                let limit = sum(&text, "fleetwatch_client_concurrency_limit", &[]);
                {
                    let mut lowest = lowest.lock().expect("lock");
                    *lowest = lowest.min(limit);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let before = server_requests_of(plane, USER).await;
    let started = Instant::now();
    let writer = client.writer::<ConfigMap>("flood");
    let work = (0..CREATES).map(|i| {
        let writer = writer.clone();
        async move { writer.create(&config_map(&format!("flood-{i}"))).await }
    });
    let results = futures::future::join_all(work).await;
    let elapsed = started.elapsed().as_secs_f64();
    let after = server_requests_of(plane, USER).await;

    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.as_ref().err().map(ToString::to_string))
        .collect();
    assert!(
        failed.is_empty(),
        "{} creates failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    let admin = plane.admin_client().await.expect("admin");
    // The test's oracle: one LIST by the lab's admin, outside the client under test.
    #[allow(clippy::disallowed_methods)]
    let stored = Api::<ConfigMap>::namespaced(admin, "flood")
        .list(&ListParams::default().labels("test=budget"))
        .await
        .expect("list")
        .items
        .len();
    assert_eq!(stored, CREATES, "every create landed");

    let dispatched = after.0 - before.0;
    let rejected = after.1 - before.1;
    let ours = common::client_metrics(&client);
    let retried_after = sum(
        &ours,
        "fleetwatch_client_retries_total",
        &[("reason", "retry_after")],
    );
    let too_early = sum(
        &ours,
        "fleetwatch_client_retry_delay_seconds_bucket",
        &[("reason", "retry_after"), ("le", "0.99")],
    );
    sampler.abort();
    let limit = *lowest.lock().expect("lock");
    println!(
        "429 test: {CREATES} creates in {elapsed:.1} s; API server dispatched {dispatched}, \
         rejected (429) {rejected}; retries after Retry-After {retried_after}; \
         lowest concurrency limit {limit}"
    );
    assert!(
        rejected > 0.0,
        "the priority level never rejected: the test proves nothing"
    );
    assert!(
        retried_after > 0.0,
        "429s came without Retry-After or were not retried"
    );
    assert_eq!(too_early, 0.0, "a retry came sooner than Retry-After said");
    // Everything the server saw, 429s included, fits the token bucket: burst + qps × time.
    let sent = dispatched + rejected;
    assert!(
        sent <= 50.0 + 50.0 * elapsed + 1.0,
        "{sent} requests in {elapsed:.1} s exceed 50 + 50/s"
    );
    assert!(
        limit < 12.0,
        "the concurrency limit did not back off on 429s: lowest {limit}"
    );
}
