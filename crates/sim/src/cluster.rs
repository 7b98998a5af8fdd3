//! One cluster: its API servers, its nodes' DNS caches, the change's agents on its nodes, its
//! control-plane SLIs and alert. Nodes are counts, never objects.

use fleetwatch_rollout::{Observation, Resources};
use rand_chacha::ChaCha8Rng;

use crate::{
    agents::{self, ChangeLoad},
    apiserver::{ApiServers, Counters, FLOWS, Flow, Level, RequestCost, StepInput},
    calibration::Calibration,
    dns::DnsCaches,
    fleet::{ClusterSpec, DnsSpec, Pattern},
};

/// A DaemonSet reaches its target node count this long after the change is applied (pods
/// created, images pulled, started).
const RAMP_SECONDS: f64 = 60.0;
/// Time constant of the smoothed SLIs, seconds.
const SLI_WINDOW_SECONDS: f64 = 60.0;
/// An SLO breach must last this long to fire an alert, seconds.
const ALERT_FOR_SECONDS: f64 = 120.0;
/// Alerting thresholds (SIG Scalability SLOs; 429s beyond 5%).
const ALERT_GET_P99_SECONDS: f64 = 1.0;
const ALERT_LIST_P99_SECONDS: f64 = 30.0;
const ALERT_429_RATIO: f64 = 0.05;
/// The control plane counts as down when fewer than this fraction of the cluster's own
/// requests are served.
const DOWN_AVAILABILITY: f64 = 0.5;

/// What every cluster shares in a run.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    pub cal: &'a Calibration,
    pub dns: &'a DnsSpec,
    pub pattern: Pattern,
    /// The change's requests run in their own bounded APF level.
    pub quarantine: bool,
    pub dt: f64,
}

/// Exponentially weighted moving average.
#[derive(Debug, Clone, Copy, Default)]
struct Ewma(f64);

impl Ewma {
    fn add(&mut self, value: f64, alpha: f64) {
        self.0 += alpha * (value - self.0);
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Slis {
    get_p99: Ewma,
    list_p99: Ewma,
    issued: Ewma,
    rejected: Ewma,
    base_resolved: Ewma,
    base_served: Ewma,
    other_cores: Ewma,
    other_memory: Ewma,
    other_seats: Ewma,
    cpu: Ewma,
}

/// Requests to re-issue later (the change's retries), by step.
#[derive(Debug, Clone)]
struct RetryRing {
    slots: Vec<f64>,
    delay_steps: usize,
}

impl RetryRing {
    fn new(delay_seconds: f64, dt: f64) -> Self {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a small positive count
        let delay_steps = ((delay_seconds / dt).round() as usize).max(1);
        Self {
            slots: vec![0.0; delay_steps + 1],
            delay_steps,
        }
    }

    fn take(&mut self, step: usize) -> f64 {
        let len = self.slots.len();
        std::mem::take(&mut self.slots[step % len])
    }

    fn push(&mut self, step: usize, amount: f64) {
        let len = self.slots.len();
        self.slots[(step + self.delay_steps) % len] += amount;
    }

    fn clear(&mut self) {
        self.slots.iter_mut().for_each(|s| *s = 0.0);
    }
}

/// What the fleet needs from a cluster after a step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ClusterStep {
    pub down: bool,
    pub failing_nodes: f64,
    pub agents: f64,
    pub get_p99_seconds: f64,
    pub cpu_utilization: f64,
    /// An SLO breach has lasted long enough to alert, starting this step.
    pub alert_fired: bool,
}

/// One simulated cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub spec: ClusterSpec,
    api: ApiServers,
    dns: DnsCaches,
    load: ChangeLoad,
    costs: [RequestCost; FLOWS],
    agents: f64,
    ramp_from: f64,
    target: f64,
    ramp_progress: f64,
    /// Removal was ordered; `true` if through the break-glass lane (works while overloaded).
    removing: Option<bool>,
    relist: f64,
    retries: RetryRing,
    slis: Slis,
    breach_since: Option<f64>,
    /// What the change asked so far (core-, byte- and seat-seconds), rejected requests included.
    asked: Resources,
    down: bool,
    down_seconds: f64,
    rng: ChaCha8Rng,
}

impl Cluster {
    #[must_use]
    pub fn new(spec: ClusterSpec, env: &Env<'_>, rng: ChaCha8Rng) -> Self {
        let load = agents::change_load(env.pattern, env.cal, &spec);
        let timeout = env.cal.api_server.request_timeout_seconds;
        let costs = [
            agents::get_cost(env.cal, timeout),
            agents::get_cost(env.cal, env.cal.dns.timeout_seconds),
            load.cost,
        ];
        Self {
            api: ApiServers::new(spec.api.clone()),
            dns: DnsCaches::new(spec.nodes, env.dns),
            load,
            costs,
            agents: 0.0,
            ramp_from: 0.0,
            target: 0.0,
            ramp_progress: 1.0,
            removing: None,
            relist: 0.0,
            retries: RetryRing::new(load.retry.delay_seconds, env.dt),
            slis: Slis::default(),
            breach_since: None,
            asked: Resources::default(),
            down: false,
            down_seconds: 0.0,
            spec,
            rng,
        }
    }

    /// Raises the change's node fraction (monotonic; the DaemonSet's node selector widens).
    pub fn apply(&mut self, node_fraction: f64) {
        let target = (node_fraction * f64::from(self.spec.nodes)).ceil();
        if target > self.target && self.removing.is_none() {
            self.start_ramp(target);
        }
    }

    /// Removes the change. Without break-glass the removal needs a working control plane: while
    /// it is down the cluster is locked out.
    pub fn roll_back(&mut self, break_glass: bool) {
        if self.removing.is_none() {
            self.removing = Some(break_glass);
            self.start_ramp(0.0);
        }
    }

    /// The operators' manual recovery of a locked-out cluster (scale down, block the agents,
    /// restart the API servers): the change is gone and the control plane restarts clean.
    pub fn recover_manually(&mut self) {
        self.removing = Some(true);
        self.target = 0.0;
        self.agents = 0.0;
        self.ramp_progress = 1.0;
        self.relist = 0.0;
        self.retries.clear();
        self.api.restart_all();
    }

    fn start_ramp(&mut self, target: f64) {
        self.ramp_from = self.agents;
        self.target = target;
        self.ramp_progress = 0.0;
    }

    /// Whether a removal is ordered but cannot proceed because the control plane is down.
    #[must_use]
    pub fn locked_out(&self) -> bool {
        self.removing == Some(false) && self.agents > 0.0 && self.down
    }

    #[must_use]
    pub fn is_down(&self) -> bool {
        self.down
    }

    #[must_use]
    pub fn down_seconds(&self) -> f64 {
        self.down_seconds
    }

    #[must_use]
    pub fn agents(&self) -> f64 {
        self.agents
    }

    #[must_use]
    pub fn restarts(&self) -> u32 {
        self.api.restarts()
    }

    /// Request accounting of a flow, and what is still in flight.
    #[must_use]
    pub fn requests(&self, flow: Flow) -> (Counters, f64) {
        (self.api.counters(flow), self.api.in_flight(flow))
    }

    /// What the rollout engine sees.
    #[must_use]
    pub fn observe(&self) -> Observation {
        let s = &self.slis;
        Observation {
            get_p99_seconds: s.get_p99.0,
            list_p99_seconds: s.list_p99.0,
            ratio_429: if s.issued.0 > 0.0 {
                s.rejected.0 / s.issued.0
            } else {
                0.0
            },
            restarts: self.api.restarts(),
            admitted_nodes: self.agents,
            failing_node_fraction: self.dns.failing() / f64::from(self.spec.nodes),
            change_asked_total: self.asked,
            other_in_use: Resources {
                cpu_cores: s.other_cores.0,
                memory_bytes: s.other_memory.0,
                seats: s.other_seats.0,
            },
        }
    }

    /// Adds one step of what the change asks: every request it issued this step (retries of
    /// rejected ones included) at its estimated cost, its watches' CPU and memory.
    fn accrue_asked(
        &mut self,
        requests: f64,
        background_cores: f64,
        watch_bytes: f64,
        env: &Env<'_>,
    ) {
        let cost = &self.load.cost;
        let hold = cost.hold_seconds(env.cal);
        let asked = &mut self.asked;
        asked.cpu_cores += requests * cost.cpu_seconds + background_cores * env.dt;
        asked.memory_bytes += requests * cost.memory_bytes * hold + watch_bytes * env.dt;
        asked.seats += requests * cost.seats * hold;
    }

    /// Advances the cluster by one step (`step` counts steps from the start).
    pub fn step(&mut self, step: usize, env: &Env<'_>) -> ClusterStep {
        let (cal, dt) = (env.cal, env.dt);
        #[allow(clippy::cast_precision_loss)]
        let now = step as f64 * dt;
        let nodes = f64::from(self.spec.nodes);

        // The DaemonSet moves towards its target while the control plane works (or, for a
        // break-glass removal, regardless).
        if self.ramp_progress < 1.0 && (!self.down || self.removing == Some(true)) {
            self.ramp_progress = (self.ramp_progress + dt / RAMP_SECONDS).min(1.0);
        }
        let agents = self.ramp_from + (self.target - self.ramp_from) * self.ramp_progress;
        let started = (agents - self.agents).max(0.0);
        self.agents = agents;
        let load = self.load;
        let running = if agents > 0.0 { 1.0 } else { 0.0 };
        let up = f64::from(self.api.replicas_up());

        let dns_lookups = self.dns.lookups(
            dt,
            cal.dns.lookups_per_node_per_refresh,
            cal.dns.failing_lookup_multiplier,
        );
        let arrivals = [
            nodes * cal.cluster.requests_per_node_per_second * dt,
            dns_lookups,
            load.periodic_requests(agents, step, dt)
                + (started + std::mem::take(&mut self.relist)) * load.requests_per_start
                + running * up * load.cluster_requests_per_replica_per_second * dt
                + self.retries.take(step),
        ];
        let change_background =
            agents * load.background_cores_per_agent + running * load.cluster_background_cores;
        let base_background = nodes * cal.cluster.background_cores_per_node;
        let a = &cal.api_server;
        let change_watch_bytes = agents * load.watches_per_agent * a.memory_bytes_per_watch;
        let other_resident = a.memory_bytes_base
            + self.spec.pods() * a.memory_bytes_per_cached_object
            + nodes * a.memory_bytes_per_watch / up.max(1.0);
        let resident = other_resident + change_watch_bytes / up.max(1.0);
        self.accrue_asked(
            arrivals[Flow::Change as usize],
            change_background,
            change_watch_bytes,
            env,
        );
        let change_level = if env.quarantine {
            Level::Quarantine
        } else {
            Level::Workload
        };
        let input = StepInput {
            now,
            dt,
            arrivals,
            costs: self.costs,
            levels: [Level::System, Level::Workload, change_level],
            background_cores: base_background + change_background,
            resident_bytes_per_replica: resident,
        };
        let out = self.api.step(&input, cal, &mut self.rng);

        let change = out.flows[Flow::Change as usize];
        self.retries.push(
            step,
            (change.rejected + change.failed) * load.retry.fraction,
        );
        if out.oom_killed {
            // Watches on the killed replica break; their clients relist elsewhere.
            self.relist += agents * load.watches_per_agent / up.max(1.0);
        }
        let dns_out = out.flows[Flow::Dns as usize];
        // CoreDNS answers from its informer cache, which it cannot keep while the control plane
        // is down: then even the lookups the API server did serve give no usable record.
        self.dns.step(
            dt,
            dns_lookups,
            if self.down { 0.0 } else { dns_out.served },
        );

        let base = out.flows[Flow::Base as usize];
        let alpha = (dt / SLI_WINDOW_SECONDS).min(1.0);
        let s = &mut self.slis;
        s.get_p99.add(base.p99_seconds, alpha);
        let lists = load.cost.memory_bytes > 0.0 && agents > 0.0;
        s.list_p99
            .add(if lists { change.p99_seconds } else { 0.0 }, alpha);
        s.issued.add(arrivals.iter().sum::<f64>(), alpha);
        s.rejected
            .add(out.flows.iter().map(|f| f.rejected).sum::<f64>(), alpha);
        s.base_resolved
            .add(base.served + base.rejected + base.failed, alpha);
        s.base_served.add(base.served, alpha);
        s.other_cores
            .add(base.cores + dns_out.cores + base_background, alpha);
        s.other_memory.add(other_resident * up, alpha);
        let other_seats: f64 = (0..FLOWS)
            .filter(|&f| f != Flow::Change as usize && input.levels[f] == Level::Workload)
            .map(|f| out.flows[f].seats)
            .sum();
        s.other_seats.add(other_seats, alpha);
        s.cpu.add(out.cpu_utilization, alpha);
        let availability = if s.base_resolved.0 > 0.0 {
            s.base_served.0 / s.base_resolved.0
        } else {
            1.0
        };
        self.down = out.replicas_up == 0 || availability < DOWN_AVAILABILITY;
        if self.down {
            self.down_seconds += dt;
        }

        let obs = self.observe();
        let breach = self.down
            || obs.get_p99_seconds > ALERT_GET_P99_SECONDS
            || obs.list_p99_seconds > ALERT_LIST_P99_SECONDS
            || obs.ratio_429 > ALERT_429_RATIO;
        let mut alert_fired = false;
        match (breach, self.breach_since) {
            (false, _) => self.breach_since = None,
            (true, None) => self.breach_since = Some(now),
            (true, Some(since)) => {
                alert_fired =
                    now - since >= ALERT_FOR_SECONDS && now - dt - since < ALERT_FOR_SECONDS
            }
        }
        ClusterStep {
            down: self.down,
            failing_nodes: self.dns.failing(),
            agents,
            get_p99_seconds: obs.get_p99_seconds,
            cpu_utilization: self.slis.cpu.0,
            alert_fired,
        }
    }
}
