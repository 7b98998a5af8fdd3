//! The hard ceiling is the process's: three clients in one process, with their QPS and burst
//! raised to match, together ask for 1,000 requests/s, and the API server's own per-flow counts
//! show one ceiling (1,200 a minute: 20/s, 5 s of it in the bucket), not three. The shed requests
//! are counted and every client is told. A test binary, so a process, of its own: any other
//! test would share the ceiling.

mod common;

use std::time::Duration;

use common::{ceiling_allows, connect, flood, server_requests_of_all, settings, sum, test_user};
use fleetwatch_client::Priority;
use fleetwatch_control_plane::testing;

const USERS: [&str; 3] = ["fw-ceiling-a", "fw-ceiling-b", "fw-ceiling-c"];
const SECONDS: f64 = 10.0;

#[tokio::test]
async fn three_clients_asking_for_1000_requests_per_second_together_get_one_ceiling() {
    let plane = testing::shared();
    let mut clients = Vec::new();
    for user in USERS {
        // Each user has a flow schema of its own: the API server counts each client apart.
        let kubeconfig = test_user(plane, user, "workload-high").await;
        let mut settings = settings("ceiling");
        settings.qps = 1_000.0;
        settings.burst = 1_000;
        settings.concurrency.initial = 64;
        settings.concurrency.max = 64;
        settings.requests_per_minute = u32::MAX;
        let client = connect(kubeconfig, settings).await;
        clients.push(client.with_priority(Priority::Background));
    }
    let told: Vec<_> = clients.iter().map(|c| c.ceiling_hits()).collect();

    let before = server_requests_of_all(plane, &USERS).await;
    let got = flood(&clients, Duration::from_secs_f64(SECONDS)).await;
    let seen = server_requests_of_all(plane, &USERS).await - before;
    let ours = common::client_metrics(&clients[0]);
    let hits = sum(
        &ours,
        "fleetwatch_client_ceiling_hits_total",
        &[("action", "shed")],
    );
    let allowed = ceiling_allows(got.seconds);
    println!(
        "ceiling test: 3 clients asked {} in {:.1} s ({:.0}/s); sent {}, shed {}; API server saw \
         {seen} ({:.1}/s) against the ceiling's {allowed:.0} (one ceiling; three would be \
         {:.0}); ceiling hits {hits}",
        got.asked,
        got.seconds,
        got.asked as f64 / got.seconds,
        got.sent,
        got.shed,
        seen / got.seconds,
        3.0 * allowed,
    );
    assert!(
        got.asked as f64 > 800.0 * SECONDS,
        "the callers did not ask for ~1,000/s"
    );
    assert!(
        seen <= allowed + 2.0,
        "the API server saw {seen}, over one ceiling's {allowed:.0}"
    );
    assert!(
        seen >= 0.8 * ceiling_allows(SECONDS),
        "the ceiling let through only {seen}"
    );
    assert!(
        (seen - got.sent as f64).abs() <= 2.0,
        "server saw {seen}, the clients sent {}",
        got.sent
    );
    assert_eq!(
        hits, got.shed as f64,
        "every shed request is a counted ceiling hit, in the one metric set"
    );
    for told in told {
        assert!(
            told.has_changed().expect("client alive"),
            "a client was not told"
        );
    }
}
