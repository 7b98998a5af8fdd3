//! A cluster's API server replicas as a fluid queueing model, one fixed time step at a time.
//!
//! Requests are aggregated per flow (never per request or per node). Each flow belongs to an APF
//! priority level with a share of the concurrency seats; a request occupies `seats` seats while it
//! executes. Arrivals beyond a level's seats wait in its queue; beyond the queue they get 429.
//! Executing requests share the CPU (processor sharing, at most one core each) with the watch
//! machinery; LISTs from etcd also wait for etcd's read throughput. Service times are exponential,
//! so a step's completions and seat occupancy have closed forms. In-flight LIST responses hold
//! memory; a replica whose memory exceeds its limit is OOM-killed, loses its requests and restarts
//! after a while. Requests slower than their timeout fail.
//!
//! Conservation holds exactly per flow: issued = served + rejected + failed + executing + queued.

use rand_chacha::ChaCha8Rng;

use crate::{calibration::Calibration, fleet::ApiServerSpec, rng};

/// Number of request flows per cluster.
pub const FLOWS: usize = 3;

/// The request flows of a cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// The cluster's own traffic: kubelets, node leases, controllers (GET-class).
    Base = 0,
    /// Node-local DNS cache misses that need the control plane.
    Dns = 1,
    /// The change's agents.
    Change = 2,
}

/// APF priority levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    System = 0,
    Workload = 1,
    /// The change's own bounded lane during a guarded rollout.
    Quarantine = 2,
}

/// What one request of a flow costs.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RequestCost {
    /// CPU, core-seconds.
    pub cpu_seconds: f64,
    /// APF seats occupied while executing.
    pub seats: f64,
    /// Memory held while executing, bytes.
    pub memory_bytes: f64,
    /// Objects read from etcd (0 for watch-cache reads).
    pub etcd_objects: f64,
    /// The request fails if it takes longer than this, seconds.
    pub timeout_seconds: f64,
}

impl RequestCost {
    /// Seconds one request holds its seats and memory on an uncontended API server: its CPU at
    /// a full core, plus its etcd read alone. The estimate a caller makes from the flow's served
    /// requests, applied to those APF rejected or queued too.
    #[must_use]
    pub fn hold_seconds(&self, cal: &Calibration) -> f64 {
        self.cpu_seconds + self.etcd_objects / cal.etcd.objects_per_second
    }
}

/// Cumulative request outcomes of a flow (fluid counts).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counters {
    pub issued: f64,
    pub served: f64,
    /// Rejected with 429, or refused because no replica was up.
    pub rejected: f64,
    /// Timed out, or lost when their replica was OOM-killed.
    pub failed: f64,
}

/// One flow's outcome in one step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FlowStep {
    pub served: f64,
    pub rejected: f64,
    pub failed: f64,
    /// Estimated p99 latency, seconds (capped at the timeout).
    pub p99_seconds: f64,
    /// CPU spent on the flow's requests, cores.
    pub cores: f64,
    /// APF seats its executing requests occupied, on average over the step.
    pub seats: f64,
}

/// The cluster's demands for one step.
#[derive(Debug, Clone, Copy)]
pub struct StepInput {
    pub now: f64,
    pub dt: f64,
    /// New requests per flow in this step (including retries).
    pub arrivals: [f64; FLOWS],
    pub costs: [RequestCost; FLOWS],
    pub levels: [Level; FLOWS],
    /// Watch-event and controller CPU the replicas must also do, cores.
    pub background_cores: f64,
    /// Memory every replica holds regardless of requests (base, watch cache, watches), bytes.
    pub resident_bytes_per_replica: f64,
}

/// What happened in one step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StepOutput {
    pub flows: [FlowStep; FLOWS],
    pub cpu_utilization: f64,
    pub memory_utilization: f64,
    pub replicas_up: u32,
    pub replicas_started: u32,
    pub oom_killed: bool,
}

/// The replicas of one cluster.
#[derive(Debug, Clone)]
pub struct ApiServers {
    spec: ApiServerSpec,
    up: u32,
    /// Times at which OOM-killed replicas are ready again.
    restarting: Vec<f64>,
    restarts: u32,
    executing: [f64; FLOWS],
    queued: [f64; FLOWS],
    counters: [Counters; FLOWS],
    /// Time-averaged executing requests per flow in the last step.
    concurrency: [f64; FLOWS],
    /// CPU rate each executing request gets, cores (smoothed across steps).
    rate: f64,
    /// CPU spent rejecting requests in the last step, cores.
    rejection_cores: f64,
}

/// `1 - e^-x`, the fraction of requests present at the start of a step that complete in it.
fn done_fraction(x: f64) -> f64 {
    -(-x).exp_m1()
}

/// Fraction of requests arriving uniformly during a step that complete in it:
/// `1 - (1 - e^-x) / x`.
fn done_fraction_arriving(x: f64) -> f64 {
    if x < 1e-6 {
        x / 2.0
    } else {
        1.0 - done_fraction(x) / x
    }
}

/// Max-min fair split of `budget` among `demands`.
fn water_fill<const N: usize>(budget: f64, demands: [f64; N], members: &[usize]) -> [f64; N] {
    let mut alloc = [0.0; N];
    let mut order: Vec<usize> = members.to_vec();
    order.sort_by(|&a, &b| demands[a].total_cmp(&demands[b]));
    let mut left = budget;
    for (i, &f) in order.iter().enumerate() {
        #[allow(clippy::cast_precision_loss)] // at most FLOWS members
        let share = left / (order.len() - i) as f64;
        alloc[f] = demands[f].min(share);
        left -= alloc[f];
    }
    alloc
}

impl ApiServers {
    #[must_use]
    pub fn new(spec: ApiServerSpec) -> Self {
        Self {
            up: spec.replicas,
            spec,
            restarting: Vec::new(),
            restarts: 0,
            executing: [0.0; FLOWS],
            queued: [0.0; FLOWS],
            counters: [Counters::default(); FLOWS],
            concurrency: [0.0; FLOWS],
            rate: 1.0,
            rejection_cores: 0.0,
        }
    }

    #[must_use]
    pub fn replicas_up(&self) -> u32 {
        self.up
    }

    /// Restarts so far (OOM kills).
    #[must_use]
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    #[must_use]
    pub fn counters(&self, flow: Flow) -> Counters {
        self.counters[flow as usize]
    }

    /// Requests of `flow` admitted and not finished, plus those queued.
    #[must_use]
    pub fn in_flight(&self, flow: Flow) -> f64 {
        self.executing[flow as usize] + self.queued[flow as usize]
    }

    /// Operators' break-glass recovery: every replica restarted, healthy, nothing in flight
    /// (in-flight requests fail).
    pub fn restart_all(&mut self) {
        for f in 0..FLOWS {
            self.counters[f].failed += self.executing[f] + self.queued[f];
            self.executing[f] = 0.0;
            self.queued[f] = 0.0;
        }
        self.up = self.spec.replicas;
        self.restarting.clear();
        self.concurrency = [0.0; FLOWS];
        self.rate = 1.0;
    }

    /// Advances the replicas by one step.
    pub fn step(
        &mut self,
        input: &StepInput,
        cal: &Calibration,
        rng: &mut ChaCha8Rng,
    ) -> StepOutput {
        let mut out = StepOutput::default();
        let StepInput {
            now,
            dt,
            arrivals,
            costs,
            levels,
            ..
        } = *input;
        let before = self.restarting.len();
        self.restarting.retain(|&ready_at| ready_at > now);
        #[allow(clippy::cast_possible_truncation)] // at most `replicas` entries
        let started = (before - self.restarting.len()) as u32;
        self.up += started;
        out.replicas_started = started;
        for (c, a) in self.counters.iter_mut().zip(arrivals) {
            c.issued += a;
        }
        if self.up == 0 {
            for f in 0..FLOWS {
                self.counters[f].rejected += arrivals[f];
                out.flows[f] = FlowStep {
                    rejected: arrivals[f],
                    p99_seconds: costs[f].timeout_seconds,
                    ..FlowStep::default()
                };
            }
            return out;
        }
        let up = f64::from(self.up);
        let capacity = up * self.spec.cores_per_replica;
        let background = input.background_cores + self.rejection_cores;
        let r = self.rate;
        let etcd_concurrency: f64 = (0..FLOWS)
            .filter(|&f| costs[f].etcd_objects > 0.0)
            .map(|f| self.concurrency[f])
            .sum::<f64>()
            .max(1.0);

        // Per flow: effective service time (cut by the timeout) and seat-seconds.
        let mut service = [0.0; FLOWS];
        let mut x = [0.0; FLOWS];
        let mut carried_occupancy = [0.0; FLOWS];
        let mut new_occupancy = [0.0; FLOWS];
        let mut exec = [0.0; FLOWS];
        for f in 0..FLOWS {
            let c = &costs[f];
            exec[f] =
                c.cpu_seconds / r + c.etcd_objects * etcd_concurrency / cal.etcd.objects_per_second;
            service[f] = exec[f] * done_fraction(c.timeout_seconds / exec[f]);
            x[f] = dt / service[f];
            carried_occupancy[f] = self.executing[f] * c.seats * service[f] * done_fraction(x[f]);
            new_occupancy[f] = c.seats * service[f] * done_fraction_arriving(x[f]);
        }

        // Admission per priority level (shares indexed by `Level`).
        let shares = [
            cal.apf.system_share,
            cal.apf.workload_share,
            cal.apf.quarantine_share,
        ];
        let mut admitted = [0.0; FLOWS];
        let mut rejected = [0.0; FLOWS];
        for (l, share) in shares.iter().enumerate() {
            let members: Vec<usize> = (0..FLOWS).filter(|&f| levels[f] as usize == l).collect();
            if members.is_empty() {
                continue;
            }
            let held: f64 = members.iter().map(|&f| carried_occupancy[f]).sum();
            let budget = (cal.apf.seats_per_replica * share * up * dt - held).max(0.0);
            let mut demand = [0.0; FLOWS];
            for &f in &members {
                demand[f] = (self.queued[f] + arrivals[f]) * new_occupancy[f];
            }
            let alloc = water_fill(budget, demand, &members);
            #[allow(clippy::cast_precision_loss)]
            let queue_cap = cal.apf.queue_length_per_level_per_replica * up / members.len() as f64;
            for &f in &members {
                let waiting = self.queued[f] + arrivals[f];
                admitted[f] = if new_occupancy[f] > 0.0 {
                    (alloc[f] / new_occupancy[f]).min(waiting)
                } else {
                    waiting
                };
                let left = waiting - admitted[f];
                self.queued[f] = left.min(queue_cap);
                rejected[f] = left - self.queued[f];
            }
        }

        // Completions, latency, CPU and memory.
        let mut concurrency = [0.0; FLOWS];
        let mut listing_bytes = 0.0;
        let mut rejecting = 0.0;
        for f in 0..FLOWS {
            let c = &costs[f];
            let done = self.executing[f] * done_fraction(x[f])
                + admitted[f] * done_fraction_arriving(x[f]);
            self.executing[f] = self.executing[f] * (-x[f]).exp()
                + admitted[f] * (1.0 - done_fraction_arriving(x[f]));
            let wait = if self.queued[f] > 0.0 {
                self.queued[f] * dt / admitted[f].max(1e-9)
            } else {
                0.0
            };
            let served = done * done_fraction((c.timeout_seconds - wait).max(0.0) / exec[f]);
            let failed = done - served;
            concurrency[f] =
                (carried_occupancy[f] + admitted[f] * new_occupancy[f]) / (c.seats * dt);
            listing_bytes += concurrency[f] * c.memory_bytes;
            rejecting += rejected[f];
            let counters = &mut self.counters[f];
            counters.served += served;
            counters.failed += failed;
            counters.rejected += rejected[f];
            out.flows[f] = FlowStep {
                served,
                rejected: rejected[f],
                failed,
                p99_seconds: (wait + 4.6 * exec[f]).min(c.timeout_seconds),
                cores: concurrency[f] * r,
                seats: concurrency[f] * c.seats,
            };
        }
        let executing: f64 = concurrency.iter().sum();
        let target = (capacity / (executing + background)).min(1.0);
        self.rate = 0.5 * (self.rate + target);
        self.concurrency = concurrency;
        self.rejection_cores = rejecting * cal.api_server.cpu_seconds_per_rejected_request / dt;
        let used = executing * r + background * (capacity / (executing + background)).min(1.0);
        out.cpu_utilization = (used / capacity).min(1.0);
        let memory = input.resident_bytes_per_replica + listing_bytes / up;
        out.memory_utilization = memory / self.spec.memory_bytes_per_replica;
        if memory > self.spec.memory_bytes_per_replica {
            // One replica is OOM-killed: its share of the requests fails.
            for f in 0..FLOWS {
                let lost = (self.executing[f] + self.queued[f]) / up;
                self.executing[f] -= self.executing[f] / up;
                self.queued[f] -= self.queued[f] / up;
                self.counters[f].failed += lost;
                out.flows[f].failed += lost;
            }
            self.up -= 1;
            self.restarts += 1;
            self.restarting
                .push(now + cal.api_server.restart_seconds * rng::uniform(rng, 0.8, 1.2));
            out.oom_killed = true;
        }
        out.replicas_up = self.up;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{agents, fleet::ClusterSpec};
    use rand_chacha::rand_core::SeedableRng;

    fn run(
        cal: &Calibration,
        arrivals_per_second: [f64; FLOWS],
        costs: [RequestCost; FLOWS],
        steps: usize,
    ) -> (ApiServers, StepOutput) {
        let mut api = ApiServers::new(ClusterSpec::new("c", 1000, false).api);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut out = StepOutput::default();
        for i in 0..steps {
            #[allow(clippy::cast_precision_loss)]
            let input = StepInput {
                now: i as f64,
                dt: 1.0,
                arrivals: arrivals_per_second,
                costs,
                levels: [Level::System, Level::Workload, Level::Workload],
                background_cores: 1.0,
                resident_bytes_per_replica: 4e9,
            };
            out = api.step(&input, cal, &mut rng);
        }
        (api, out)
    }

    fn assert_conserved(api: &ApiServers) {
        for flow in [Flow::Base, Flow::Dns, Flow::Change] {
            let c = api.counters(flow);
            let accounted = c.served + c.rejected + c.failed + api.in_flight(flow);
            assert!(
                (c.issued - accounted).abs() <= 1e-6 * c.issued.max(1.0),
                "{flow:?}: {c:?} in flight {}",
                api.in_flight(flow)
            );
        }
    }

    #[test]
    fn light_load_is_served_fast() {
        let cal = Calibration::default();
        let get = agents::get_cost(&cal, 60.0);
        let (api, out) = run(&cal, [200.0, 20.0, 0.0], [get; FLOWS], 300);
        assert!(out.flows[0].p99_seconds < 0.05, "{out:?}");
        assert!(out.flows[0].rejected < 1e-9);
        assert_eq!(api.restarts(), 0);
        assert_conserved(&api);
    }

    #[test]
    fn list_storm_overloads_and_conserves_requests() {
        // LISTs from etcd, built whole in memory: the incident era's API server.
        let cal = Calibration::built_in("1.30").expect("the 1.30 calibration");
        let get = agents::get_cost(&cal, 60.0);
        let list = agents::list_cost(&cal, 150_000.0, 1.0);
        let (api, out) = run(&cal, [200.0, 20.0, 150.0], [get, get, list], 600);
        assert!(
            out.flows[0].p99_seconds > 1.0 || api.restarts() > 0 || out.replicas_up < 3,
            "{out:?}"
        );
        let c = api.counters(Flow::Change);
        assert!(c.rejected + c.failed > 0.1 * c.issued, "{c:?}");
        assert_conserved(&api);
    }
}
