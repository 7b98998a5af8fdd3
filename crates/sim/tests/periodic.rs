//! Changes that call every 30 s, every 10 minutes or once an hour, spread or synchronized, on a
//! fleet of our own with several clusters of thousands of nodes: the guarded rollout halts each
//! bad one in the first production wave with at most 2 % of the fleet's nodes exposed and no
//! control plane down, and never halts a benign one.
//!
//! "Bad" is shown, not assumed: each bad change is also rolled out unguarded, where it must take
//! a control plane down. The calibration is the incident era's (v1.30: LISTs without
//! resourceVersion read etcd and are built whole in memory), as `fleetwatch replay` uses.

use fleetwatch_sim::{
    Calibration, Change, ClusterSpec, DnsSpec, Fleet, Guard, Pattern, RunResult, RunSpec, Timing,
    run, run::Responders, scenario,
};

/// One staging cluster, then production from 40 to 5,000 nodes: five clusters of 2,000 nodes
/// or more (100 pods per node, a busy fleet), mid-size and small ones (30 pods per node).
fn fleet() -> Fleet {
    let mut clusters = vec![ClusterSpec::new("staging", 50, true)];
    for (i, nodes) in [5000, 4500, 3500, 2500, 2000].into_iter().enumerate() {
        clusters.push(ClusterSpec {
            pods_per_node: 100,
            ..ClusterSpec::new(format!("large-{i}"), nodes, false)
        });
    }
    for (i, nodes) in [1200, 800, 600, 400, 300, 200, 150, 100, 80, 60, 40]
        .into_iter()
        .enumerate()
    {
        clusters.push(ClusterSpec::new(format!("prod-{i}"), nodes, false));
    }
    Fleet {
        clusters,
        dns: DnsSpec::default(),
    }
}

fn poll(pattern: fn(f64, Timing) -> Pattern, minutes: f64, timing: Timing) -> Pattern {
    pattern(minutes * 60.0, timing)
}

fn naive_list(interval_seconds: f64, timing: Timing) -> Pattern {
    Pattern::NaiveList {
        interval_seconds,
        timing,
    }
}

fn node_list(interval_seconds: f64, timing: Timing) -> Pattern {
    Pattern::NodeList {
        interval_seconds,
        timing,
    }
}

/// The change's longest period, which the policy declares as its measurement window (20
/// minutes at least, the default).
fn period_seconds(pattern: Pattern) -> f64 {
    match pattern {
        Pattern::NaiveList {
            interval_seconds, ..
        }
        | Pattern::NodeList {
            interval_seconds, ..
        } => interval_seconds,
        Pattern::WatchAll | Pattern::WatchNode | Pattern::Fleetwatch => 0.0,
    }
}

/// A run of `pattern` under `guard` for `bakes` of the policy's bake times (at least 90 minutes,
/// time for an hourly call to land everywhere).
fn spec(pattern: Pattern, guard: Guard, bakes: f64) -> RunSpec {
    let fleet = fleet();
    let (mut policy, protections) = scenario::guard_policy(guard, &fleet.dns);
    if let Some(projection) = &mut policy.projection {
        projection.window_seconds = projection.window_seconds.max(period_seconds(pattern));
    }
    let horizon_seconds = (bakes * policy.bake_seconds()).max(5400.0);
    RunSpec {
        guard,
        fleet,
        change: Change {
            name: "periodic-agent".into(),
            pattern,
        },
        policy,
        protections,
        responders: Responders::default(),
        calibration: Calibration::built_in("1.30").expect("a built-in calibration for 1.30"),
        seed: 11,
        horizon_seconds,
        step_seconds: 1.0,
    }
}

fn run_ok(spec: RunSpec) -> RunResult {
    run(spec).expect("the fleet and policy plan")
}

const BAD: [(&str, f64, Timing); 5] = [
    ("every 30 s, jittered (the incident)", 0.5, Timing::Jittered),
    ("every 10 min, jittered", 10.0, Timing::Jittered),
    ("every 60 min, jittered", 60.0, Timing::Jittered),
    ("every 20 min, synchronized", 20.0, Timing::Synchronized),
    ("every 60 min, synchronized", 60.0, Timing::Synchronized),
];

fn assert_halted_in_first_production_wave(what: &str, r: &RunResult) {
    let s = &r.summary;
    assert_eq!(s.halted_at_wave, Some(1), "{what}: {s:#?}");
    assert!(s.fleet_nodes_exposed_fraction <= 0.02, "{what}: {s:#?}");
    assert_eq!(s.clusters_control_plane_down_peak, 0, "{what}: {s:#?}");
}

#[test]
fn bad_periodic_changes_take_control_planes_down_unguarded() {
    for (what, minutes, timing) in BAD {
        let r = run_ok(spec(poll(naive_list, minutes, timing), Guard::Off, 0.0));
        let s = &r.summary;
        assert!(
            s.large_clusters_control_plane_down_peak >= 1,
            "{what} must be bad: {s:#?}"
        );
    }
}

#[test]
fn bad_periodic_changes_are_halted_in_the_first_production_wave() {
    for (what, minutes, timing) in BAD {
        // Staging's bake, the first production wave's, and a little more.
        let r = run_ok(spec(poll(naive_list, minutes, timing), Guard::On, 2.3));
        assert_halted_in_first_production_wave(what, &r);
    }
}

/// With the LIST latency gate, the size of these LISTs alone halts the rollout (their p99 is
/// over 30 s from the first one). Without any gate, the load projection must catch each bad
/// change by itself — the hourly synchronized one only once its burst lands inside the window.
#[test]
fn the_load_projection_alone_halts_bad_periodic_changes_in_the_first_production_wave() {
    for (what, minutes, timing) in BAD {
        let mut spec = spec(poll(naive_list, minutes, timing), Guard::On, 2.3);
        spec.policy.gates = None;
        let r = run_ok(spec);
        assert_halted_in_first_production_wave(what, &r);
        let reason = r.summary.halt_reason.as_deref().unwrap_or_default();
        assert!(reason.contains("at full size"), "{what}: {reason}");
    }
}

#[test]
fn benign_changes_are_never_halted() {
    let benign = [
        ("fleetwatch", Pattern::Fleetwatch),
        ("a node-scoped watch", Pattern::WatchNode),
        (
            "its own pods every 10 min, synchronized",
            poll(node_list, 10.0, Timing::Synchronized),
        ),
        (
            "its own pods every 60 min, jittered",
            poll(node_list, 60.0, Timing::Jittered),
        ),
    ];
    for (what, pattern) in benign {
        // Nine waves on this fleet: staging, the largest three at 1 %, and growth by 4.
        let r = run_ok(spec(pattern, Guard::On, 9.5));
        let s = &r.summary;
        assert!(!s.rollout_halted, "{what}: {s:#?}");
        assert!(
            r.timeline
                .iter()
                .any(|e| e.text.starts_with("rollout complete")),
            "{what}: {:#?}",
            r.timeline
        );
        assert_eq!(s.clusters_control_plane_down_peak, 0, "{what}: {s:#?}");
    }
}
