//! The simulator benchmark: 500 clusters, 1,000,000 nodes in all, 6 virtual hours, the
//! 2024-12-11 change rolled out unguarded (the busiest case: crash-looping control planes).
//! Run with `bench/sim.sh` (results go to `bench/RESULTS.md` by hand).

use criterion::{Criterion, criterion_group, criterion_main};
use fleetwatch_sim::{Calibration, ClusterSpec, Guard, RunSpec, replay, run};

/// `clusters` clusters of 1 staging + log-spaced sizes from 40 to 10,000 nodes, scaled so
/// they add up to `total_nodes`.
fn bench_spec(clusters: u32, total_nodes: f64) -> RunSpec {
    let mut spec = replay(Guard::Off, 1, 0, Calibration::default());
    let raw: Vec<f64> = (0..clusters)
        .map(|i| 40.0 * 250f64.powf(f64::from(i) / f64::from(clusters - 1)))
        .collect();
    let scale = total_nodes / raw.iter().sum::<f64>();
    spec.fleet.clusters = raw
        .iter()
        .enumerate()
        .map(|(i, n)| {
            // Sizes are small positive counts.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let nodes = (n * scale).round().max(1.0) as u32;
            ClusterSpec::new(format!("c{i:03}"), nodes, i == 0)
        })
        .collect();
    spec
}

fn fleet(c: &mut Criterion) {
    let spec = bench_spec(500, 1_000_000.0);
    let nodes = spec.fleet.total_nodes();
    assert!((nodes - 1_000_000.0).abs() < 1000.0, "{nodes}");
    let mut group = c.benchmark_group("sim");
    group.sample_size(10);
    group.bench_function("500 clusters, 1M nodes, 6 h, guard off", |b| {
        b.iter(|| run(spec.clone()).expect("plans"));
    });
    group.finish();
}

criterion_group!(benches, fleet);
criterion_main!(benches);
