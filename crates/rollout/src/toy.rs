//! A toy fleet for the engine's tests: the caller's side of the sans-I/O boundary in a few lines.

use crate::{
    cluster::{ClusterId, Observation, Reading, Resources},
    engine::{Action, Engine, Event},
    gate::SloGates,
    plan::{
        BakePolicy, DEFAULT_MAX_READING_GAP_SECONDS, DeclaredCache, Policy, Step, Target, WaveStyle,
    },
    projection::ProjectionPolicy,
};

/// Seconds between ticks.
pub const TICK: f64 = 10.0;

/// Cluster 0 is staging. With [`policy`] the plan has 7 waves: staging; cluster 1 at 1%;
/// cluster 1 at 4% and clusters 2–5 at 1%; then ×4 each wave up to 1.
pub const SIZES: [u32; 6] = [40, 5000, 3000, 800, 200, 100];

/// The change: per admitted node it asks `flat + per_size · N` cores in a cluster of `N` nodes,
/// and holds `seats_per_core` seats per core-second. With a period, each node's cost of a whole
/// period is asked at once, at every multiple of the period (synchronized calls).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Change {
    pub flat: f64,
    pub per_size: f64,
    pub seats_per_core: f64,
    pub period: Option<f64>,
}

impl Change {
    pub const CHEAP: Change = Change {
        flat: 0.0,
        per_size: 1e-9,
        seats_per_core: 1.0,
        period: None,
    };

    /// Grows with cluster size: `k(N) = per_size · N`.
    pub fn size_dependent(per_size: f64) -> Change {
        Change {
            per_size,
            ..Change::CHEAP
        }
    }
}

/// A toy fleet: what the engine's actions did, and the change's asked totals.
#[derive(Debug, Clone)]
pub struct Toy {
    pub sizes: Vec<u32>,
    pub fraction: Vec<f64>,
    pub change: Change,
    /// Core-seconds asked per cluster so far.
    pub asked: Vec<f64>,
    pub applied: Vec<Step>,
    pub rolled_back: Vec<ClusterId>,
    /// This cluster's GET p99 breaches the SLO while it has the change.
    pub slow: Option<ClusterId>,
    /// Clusters that cannot be read, and from when to when.
    pub unreachable: Vec<(ClusterId, f64, f64)>,
}

impl Toy {
    pub fn new(sizes: Vec<u32>, change: Change, slow: Option<ClusterId>) -> Self {
        Self {
            fraction: vec![0.0; sizes.len()],
            asked: vec![0.0; sizes.len()],
            sizes,
            change,
            applied: vec![],
            rolled_back: vec![],
            slow,
            unreachable: vec![],
        }
    }

    fn admitted_nodes(&self, c: usize) -> f64 {
        (self.fraction[c] * f64::from(self.sizes[c])).ceil()
    }

    /// Accrues what the change asks in `(now - TICK, now]`.
    pub fn advance(&mut self, now: f64) {
        for c in 0..self.sizes.len() {
            let n = f64::from(self.sizes[c]);
            let cores = self.admitted_nodes(c) * (self.change.flat + self.change.per_size * n);
            self.asked[c] += match self.change.period {
                None => cores * TICK,
                Some(p) if (now / p).floor() > ((now - TICK) / p).floor() => cores * p,
                Some(_) => 0.0,
            };
        }
    }

    pub fn readings(&self, now: f64) -> Vec<Reading> {
        (0..self.sizes.len())
            .map(|c| {
                let id = ClusterId(c);
                let cut = self
                    .unreachable
                    .iter()
                    .any(|&(u, from, to)| u == id && now >= from && now < to);
                if cut {
                    return Reading::Unreachable;
                }
                let admitted_nodes = self.admitted_nodes(c);
                let slow = self.slow == Some(id) && admitted_nodes > 0.0;
                Reading::Observed(Observation {
                    admitted_nodes,
                    get_p99_seconds: if slow { 2.0 } else { 0.05 },
                    change_asked_total: Resources {
                        cpu_cores: self.asked[c],
                        memory_bytes: 0.0,
                        seats: self.asked[c] * self.change.seats_per_core,
                    },
                    ..Observation::default()
                })
            })
            .collect()
    }

    pub fn carry_out(&mut self, action: &Action) {
        match *action {
            Action::Apply(step) => {
                self.fraction[step.cluster.0] = step.node_fraction;
                self.applied.push(step);
            }
            Action::RollBack { cluster } => {
                self.fraction[cluster.0] = 0.0;
                self.rolled_back.push(cluster);
            }
        }
    }
}

pub fn policy(window_seconds: f64) -> Policy {
    Policy {
        waves: WaveStyle::Stratified {
            first_fraction: 0.01,
            first_clusters: 1,
            growth: 4.0,
        },
        bake: BakePolicy {
            caches: vec![DeclaredCache {
                name: "dns".into(),
                ttl_seconds: 1200.0,
            }],
            margin_seconds: 300.0,
            min_seconds: 0.0,
            max_reading_gap_seconds: DEFAULT_MAX_READING_GAP_SECONDS,
        },
        gates: Some(SloGates::default()),
        max_failing_node_fraction: Some(0.01),
        projection: Some(ProjectionPolicy {
            window_seconds,
            ..ProjectionPolicy::default()
        }),
    }
}

pub fn targets() -> Vec<Target> {
    SIZES
        .iter()
        .enumerate()
        .map(|(i, &nodes)| Target {
            name: format!("c{i}"),
            nodes,
            staging: i == 0,
            capacity: Resources {
                cpu_cores: 96.0,
                memory_bytes: 3.0 * 128e9,
                seats: 990.0,
            },
        })
        .collect()
}

pub fn setup(change: Change, slow: Option<ClusterId>, window_seconds: f64) -> (Engine, Toy) {
    let engine = Engine::new(targets(), policy(window_seconds)).expect("valid");
    (engine, Toy::new(SIZES.to_vec(), change, slow))
}

/// Carries out every pending action and confirms it at `now`.
pub fn carry_out_pending(engine: &mut Engine, toy: &mut Toy, now: f64) {
    for action in engine.pending().to_vec() {
        toy.carry_out(&action);
        assert!(engine.confirm(&action, now));
    }
}

/// Ticks every [`TICK`] seconds from `from` until the engine finishes or `until`, carrying out
/// and confirming what it asks at once.
pub fn drive(engine: &mut Engine, toy: &mut Toy, from: f64, until: f64) -> Vec<Event> {
    let mut events = Vec::new();
    let mut now = from;
    while !engine.is_finished() && now < until {
        toy.advance(now);
        events.extend(engine.tick(now, &toy.readings(now)).events);
        carry_out_pending(engine, toy, now);
        now += TICK;
    }
    events
}
