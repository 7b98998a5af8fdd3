//! The view and its rendering on fixture pages: `lab-*.prom` are two reads of a real collector
//! on the lab's control plane (one replica answering, one listed but unreachable);
//! `busy-*.prom` are built in the collector's shapes (the families and labels of
//! `apiserver::signals` and `apiserver::encode`) for a loaded cluster, with the audit
//! receiver's counters ten seconds apart and one bad line on the second page.

use std::time::{Duration, Instant, SystemTime};

use super::page::Reading;
use super::render::{self, AUDIT_NOT_CONFIGURED};
use super::view::{self, Audit, ClientRow, State, View};

const LAB: [&str; 2] = [
    include_str!("../../tests/fixtures/top/lab-1.prom"),
    include_str!("../../tests/fixtures/top/lab-2.prom"),
];
const BUSY: [&str; 2] = [
    include_str!("../../tests/fixtures/top/busy-1.prom"),
    include_str!("../../tests/fixtures/top/busy-2.prom"),
];
const A: &str = "https://10.0.0.1:6443";
const B: &str = "https://10.0.0.2:6443";
const C: &str = "https://10.0.0.3:6443";

/// The two pages read ten seconds apart.
fn view_of(pages: [&str; 2], top: usize) -> View {
    let start = Instant::now();
    let first = Reading::parse(pages[0].as_bytes(), start, SystemTime::UNIX_EPOCH);
    let second = Reading::parse(
        pages[1].as_bytes(),
        start + Duration::from_secs(10),
        SystemTime::UNIX_EPOCH + Duration::from_secs(10),
    );
    view::build("http://collector:9470/metrics", &first, &second, top)
}

fn close(actual: Option<f64>, expected: f64) -> bool {
    actual.is_some_and(|a| (a - expected).abs() <= 1e-9 * expected.abs().max(1.0))
}

#[test]
fn the_real_page_shows_the_answering_replica_up_the_unreachable_one_down_and_the_cluster() {
    let view = view_of(LAB, 10);
    let names: Vec<&str> = view.replicas.iter().map(|r| r.replica.as_str()).collect();
    assert_eq!(
        names,
        [
            "https://127.0.0.1:33327",
            "https://192.0.2.2:33327",
            "cluster"
        ]
    );
    let (live, dead, cluster) = (&view.replicas[0], &view.replicas[1], &view.replicas[2]);
    assert_eq!(live.state, State::Up);
    // GET 200 and PUT 200 are the only non-zero rates of the page.
    assert!(close(
        live.requests_per_second,
        0.5612013528993535 + 0.04676677940827945
    ));
    assert!(close(live.ratio_5xx, 0.0));
    assert!(close(live.get_p99, 0.00495), "{:?}", live.get_p99);
    assert_eq!(live.list_cluster_p99, None, "the quiet lab served no LIST");
    assert!(close(live.rss_bytes, 291082240.0));
    assert!(close(live.restarts, 0.0));
    assert_eq!(dead.state, State::Down);
    assert_eq!(dead.requests_per_second, None);
    assert_eq!(cluster.state, State::Cluster { up: 1, of: 2 });
    assert!(close(cluster.cpu_cores, 0.024318725292305309));
    assert_eq!(view.bad_lines, 0);
    assert_eq!(view.audit, Audit::NotConfigured);
    let screen = render::render(&view);
    assert!(screen.contains(AUDIT_NOT_CONFIGURED), "{screen}");
    assert!(screen.contains("1/2 up"), "{screen}");
}

#[test]
fn replica_rows_have_ratios_percentiles_and_state_and_the_cluster_adds_restarts() {
    let view = view_of(BUSY, 10);
    let row = |name: &str| {
        view.replicas
            .iter()
            .find(|r| r.replica == name)
            .unwrap_or_else(|| panic!("no row for {name}"))
    };
    let a = row(A);
    assert_eq!(a.state, State::Up);
    assert!(close(a.requests_per_second, 400.0));
    assert!(close(a.ratio_5xx, 20.0 / 400.0));
    assert!(close(a.ratio_429, 30.0 / 400.0));
    assert!(close(a.get_p99, 0.012));
    assert!(close(a.list_namespace_p99, 0.35));
    assert!(close(a.list_cluster_p99, 4.2));
    assert!(close(a.inflight, 184.0));
    assert_eq!(row(B).state, State::Unready, "readyz failing");
    let c = row(C);
    assert_eq!(c.state, State::Down);
    assert_eq!((c.requests_per_second, c.cpu_cores), (None, None));
    assert!(close(c.restarts, 2.0));
    let cluster = view.replicas.last().expect("a cluster row");
    assert_eq!(cluster.replica, "cluster");
    assert_eq!(cluster.state, State::Cluster { up: 2, of: 3 });
    assert!(close(cluster.requests_per_second, 500.0));
    assert!(close(cluster.ratio_429, 30.0 / 500.0));
    assert!(close(cluster.restarts, 3.0));
}

#[test]
fn priority_levels_sort_by_saturation_and_fold_past_the_top() {
    let view = view_of(BUSY, 3);
    let names: Vec<&str> = view.levels.rows.iter().map(|r| r.level.as_str()).collect();
    assert_eq!(names, ["workload-low", "catch-all", "global-default"]);
    let low = &view.levels.rows[0];
    assert!(close(low.saturation(), 1.0));
    assert!(close(Some(low.rejections_per_second), 15.0));
    assert!(close(Some(low.queued), 120.0));
    assert!(close(low.wait_p99, 2.5));
    let (folded, other) = view.levels.other.as_ref().expect("five levels folded");
    assert_eq!(*folded, 5);
    assert!(close(
        Some(other.seats_in_use),
        10.0 + 5.0 + 3.0 + 0.0 + 1.0
    ));

    // Unfolded, the exempt level (not limited by APF) sorts last, without a saturation.
    let all = view_of(BUSY, 100).levels;
    assert!(all.other.is_none());
    let last = all.rows.last().expect("levels");
    assert_eq!((last.level.as_str(), last.saturation()), ("exempt", None));
}

#[test]
fn flow_schemas_sort_by_execution_time_and_fold_the_rest() {
    let view = view_of(BUSY, 10);
    assert_eq!(view.flows.rows.len(), 10);
    let first = &view.flows.rows[0];
    assert_eq!(
        (first.flow_schema.as_str(), first.priority_level.as_str()),
        ("telemetry-agent", "workload-low")
    );
    assert!(close(Some(first.estimated_seats_per_second), 2400.0));
    let costs: Vec<f64> = view
        .flows
        .rows
        .iter()
        .map(|r| r.execution_seconds_per_second)
        .collect();
    assert!(costs.windows(2).all(|w| w[0] >= w[1]), "{costs:?}");
    let (n, other) = view.flows.other.as_ref().expect("two folded");
    assert_eq!(*n, 2);
    assert!(close(Some(other.execution_seconds_per_second), 0.03 + 0.02));
    assert!(close(Some(other.dispatched_per_second), 1.5 + 1.0));
}

fn clients(view: &View) -> (&[ClientRow], Option<&(usize, ClientRow)>) {
    match &view.audit {
        Audit::Clients(clients) => (&clients.rows, clients.other.as_ref()),
        Audit::NotConfigured => panic!("the busy pages have audit series"),
    }
}

#[test]
fn audit_clients_are_rates_between_the_two_reads_sorted_by_cost() {
    let view = view_of(BUSY, 3);
    let (rows, other) = clients(&view);
    let users: Vec<&str> = rows.iter().map(|r| r.user.as_str()).collect();
    assert_eq!(
        users,
        [
            "system:serviceaccount:monitoring:telemetry-agent",
            "system:kube-controller-manager",
            "system:node:node-1"
        ]
    );
    let agent = &rows[0];
    // 4,150 more requests in 10 s, 80 more seconds of API-server time.
    assert!(close(Some(agent.requests_per_second), 415.0));
    assert!(close(agent.busy_seconds_per_second, 8.0));
    assert!(close(agent.ratio_4xx, 100.0 / 4150.0));
    assert!(close(agent.ratio_5xx, 50.0 / 4150.0));
    // Of the 4,150: 1,000 in (0.1, 1] s and 3,150 in (1, 5] s; p99's rank 4,108.5 is in the
    // second, interpolated linearly as histogram_quantile does.
    assert!(close(agent.p99, 1.0 + 4.0 * (4108.5 - 1000.0) / 3150.0));
    let (verb, resource, share) = agent.top_call.clone().expect("a top call");
    assert_eq!((verb.as_str(), resource.as_str()), ("list", "pods"));
    assert!(close(Some(share), 1.0));
    let kcm = &rows[1];
    assert!(close(Some(kcm.requests_per_second), 52.0));
    assert!(close(kcm.top_call.as_ref().map(|c| c.2), 500.0 / 520.0));
    // The kubelet's counters went from 900 to 50: a reset, counted as 50 from zero.
    assert!(close(Some(rows[2].requests_per_second), 5.0));
    assert!(close(rows[2].busy_seconds_per_second, 0.1));
    // Folded: the receiver's own `other` (100 in 10 s) and alice, new on the second page (10).
    let (n, folded) = other.expect("two folded clients");
    assert_eq!(*n, 2);
    assert!(close(Some(folded.requests_per_second), 11.0));
    assert!(close(folded.busy_seconds_per_second, 0.05 + 0.005));
}

#[test]
fn a_page_with_bad_lines_still_renders_and_says_how_many() {
    let view = view_of(BUSY, 10);
    assert_eq!(view.bad_lines, 1);
    let screen = render::render(&view);
    assert!(
        screen.contains(&format!("warning: 1 of {} lines", view.lines)),
        "{screen}"
    );
    assert!(screen.contains("this line is not a sample"), "{screen}");
    assert!(screen.contains("telemetry-agent"), "{screen}");
}

#[test]
fn the_screen_is_aligned_and_humanized() {
    let screen = render::render(&view_of(BUSY, 10));
    let table: Vec<&str> = screen
        .lines()
        .skip_while(|l| !l.starts_with("REPLICA"))
        .take_while(|l| !l.is_empty())
        .collect();
    assert_eq!(table.len(), 5, "header, three replicas, cluster:\n{screen}");
    // Every row's REQ/S cell ends where the header's does (numbers align right).
    let end = table[0].find("REQ/S").expect("REQ/S column") + "REQ/S".len();
    let a = table.iter().find(|l| l.starts_with(A)).expect("row A");
    assert_eq!(&a[end - "400/s".len()..end], "400/s", "{a}");
    for cell in [
        "5.00%",
        "7.50%",
        "12.0 ms",
        "350 ms",
        "4.20 s",
        "3.50 cores",
        "4.00 GiB",
    ] {
        assert!(a.contains(cell), "{cell} in {a}");
    }
    let c = table.iter().find(|l| l.starts_with(C)).expect("row C");
    assert!(c.contains("DOWN"), "{c}");
    assert!(screen.contains("2/3 up"), "{screen}");
    assert!(screen.contains("other (2 flow schemas)"), "{screen}");
    assert!(screen.contains("list pods (100%)"), "{screen}");
}

#[test]
fn units_are_humanized() {
    assert_eq!(render::percent(0.0), "0%");
    assert_eq!(render::percent(0.00001), "<0.01%");
    assert_eq!(render::percent(0.967), "96.7%");
    assert_eq!(render::duration(0.000_42), "0.42 ms");
    assert_eq!(render::duration(1.5), "1.50 s");
    assert_eq!(render::bytes(291_082_240.0), "277.6 MiB");
    assert_eq!(render::rate(0.5612), "0.56/s");
    assert_eq!(render::number(0.000_012), "1.2e-5");
    assert_eq!(render::rate(12_345.0), "12.3k/s");
    assert_eq!(
        render::clock(SystemTime::UNIX_EPOCH + Duration::from_secs(3_723)),
        "01:02:03"
    );
}
