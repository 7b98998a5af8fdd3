//! `fleetwatch lab`: a real Kubernetes control plane (etcd, kube-apiserver, optionally
//! kube-controller-manager) on loopback, built from pinned Go modules, filled with synthetic
//! nodes and pods.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use fleetwatch_control_plane::{
    Binaries, ControlPlane, LabOptions, PopulateSpec, Release, Tool, binaries, plane, populate,
};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: LabCommand,
}

#[derive(Debug, clap::Subcommand)]
enum LabCommand {
    /// Build the pinned control-plane binaries (kube-apiserver, kube-controller-manager,
    /// kube-scheduler, etcd) of a Kubernetes release from Go modules into the cache, or confirm
    /// they are there; also the tools the tests use (kube-state-metrics, Helm, kwok). `up` builds
    /// what it needs too.
    Build(ReleaseArg),
    /// Start a control plane on loopback, optionally fill it with synthetic nodes and pods, print
    /// `export KUBECONFIG=…` and return once it is ready. It keeps running until `lab down`.
    /// `--dir` must be new, empty, or a lab's: a directory holding other files is refused.
    Up(UpArgs),
    /// Stop the control plane started by `lab up` in the same directory and delete what it
    /// created there (nothing else). Also cleans up after a run that crashed.
    Down(DirArg),
    /// Show whether a lab is running in the directory, and its processes.
    Status(DirArg),
    /// Run emulated per-node agents of each client pattern against the lab and measure what the
    /// API server pays (CPU, memory, bytes, 429s) and what a probe client sees (GET latency).
    Load(super::lab_load::LoadArgs),
    /// Run every pattern at each cluster size in a lab of its own (grown from the smallest size
    /// to the largest), and write the rows as CSV plus a plot of API-server CPU and probe p99
    /// against cluster size.
    Sweep(super::lab_sweep::SweepArgs),
    /// Draw a sweep's CSV again as SVG and PNG (what `lab sweep` does at its end).
    Plot(super::lab_sweep::PlotArgs),
    /// Fit the simulator's cost model to a sweep's CSV and write a simulator calibration file,
    /// reporting how well each coefficient fits.
    Calibrate(super::lab_calibrate::CalibrateArgs),
}

/// Which Kubernetes release a lab runs; shared by `lab build`, `lab up` and `lab sweep`.
#[derive(Debug, clap::Args)]
pub struct ReleaseArg {
    /// The Kubernetes release to run, with the etcd it was released with: v1.37.2 (today's API
    /// server) or v1.30.14 (the incident's era: LISTs without resourceVersion read etcd and are
    /// built whole in memory). A minor (1.30) names its pinned patch release.
    #[arg(long = "kube-version", default_value = binaries::KUBERNETES_VERSION,
          value_parser = Release::find)]
    pub release: &'static Release,
}

#[derive(Debug, clap::Args)]
struct DirArg {
    /// Lab directory (state, certificates, etcd data, logs, kubeconfig).
    #[arg(long, env = "FLEETWATCH_LAB_DIR", default_value_os_t = default_dir())]
    dir: PathBuf,
}

#[derive(Debug, clap::Args)]
struct UpArgs {
    #[command(flatten)]
    dir: DirArg,
    #[command(flatten)]
    release: ReleaseArg,
    /// Synthetic Node objects to create (ready, with realistic capacity and labels).
    #[arg(long, default_value_t = 0)]
    nodes: usize,
    /// Synthetic Running pods per node, owned by real ReplicaSets (1–3 containers each).
    #[arg(long, default_value_t = 30)]
    pods_per_node: usize,
    /// Also run kube-controller-manager (needed for DaemonSets, ReplicaSets, garbage collection).
    #[arg(long)]
    controllers: bool,
    /// Also run kube-scheduler and kwok, and make the --nodes kwok's fake nodes (annotated
    /// kwok.x-k8s.io/node=fake, labelled type=kwok, untainted): kwok reports them Ready, keeps
    /// their Leases fresh and reports the pods scheduled onto them Running and Ready, so a
    /// DaemonSet (with --controllers) really rolls out onto them. Nothing runs in the pods.
    #[arg(long)]
    kwok: bool,
    #[command(flatten)]
    inflight: InflightArgs,
    /// kube-apiserver replicas on the one etcd (1–4), each on 127.0.0.1 at its own port, as a
    /// highly available control plane runs them. With more than one, none maintains the
    /// `kubernetes` EndpointSlice (it refuses loopback addresses): `lab status` and the
    /// collector's `apiserver.replicas` list them instead.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=4))]
    apiservers: u8,
    /// Create requests in flight at once while populating.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=512))]
    concurrency: u16,
}

/// The API server's concurrency limits; shared by `lab up` and `lab sweep`.
#[derive(Debug, clap::Args)]
pub struct InflightArgs {
    /// kube-apiserver --max-requests-inflight (API server default: 400). Lower it to make a
    /// two-core machine overload like a proportionally sized control plane.
    #[arg(long, requires = "max_mutating_requests_inflight")]
    max_requests_inflight: Option<u32>,
    /// kube-apiserver --max-mutating-requests-inflight (API server default: 200).
    #[arg(long, requires = "max_requests_inflight")]
    max_mutating_requests_inflight: Option<u32>,
}

impl InflightArgs {
    pub fn limits(&self) -> Option<(u32, u32)> {
        self.max_requests_inflight
            .zip(self.max_mutating_requests_inflight)
    }
}

pub fn default_dir() -> PathBuf {
    binaries::cache_dir().join("lab")
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command {
        LabCommand::Build(ReleaseArg { release }) => build(release).await,
        LabCommand::Up(up_args) => up(up_args).await,
        LabCommand::Down(DirArg { dir }) => down(&dir).await,
        LabCommand::Status(DirArg { dir }) => status(&dir),
        LabCommand::Load(load_args) => super::lab_load::run(load_args).await,
        LabCommand::Sweep(sweep_args) => super::lab_sweep::run(sweep_args).await,
        LabCommand::Plot(plot_args) => super::lab_sweep::plot(&plot_args),
        LabCommand::Calibrate(calibrate_args) => super::lab_calibrate::run(calibrate_args),
    }
}

async fn build(release: &'static Release) -> anyhow::Result<()> {
    let cache = binaries::cache_dir();
    let started = Instant::now();
    let (built, tools) = tokio::task::spawn_blocking(move || {
        let mut on_step = |step: &str| tracing::info!("{step}");
        let built = Binaries::ensure(&cache, release, true, &mut on_step)?;
        // The tools the tests run beside the lab: the collector's compatibility oracle, Helm for
        // the chart, and kwok for fake nodes.
        let tools = Tool::ALL
            .iter()
            .map(|tool| tool.ensure(&cache, &mut on_step))
            .collect::<Result<Vec<_>, _>>()?;
        Ok::<_, fleetwatch_control_plane::Error>((built, tools))
    })
    .await??;
    tracing::info!(
        kubernetes = release.kubernetes,
        etcd = release.etcd,
        elapsed_s = started.elapsed().as_secs(),
        "control-plane binaries ready"
    );
    for path in [
        &built.etcd,
        &built.kube_apiserver,
        &built.kube_controller_manager,
        &built.kube_scheduler,
    ]
    .into_iter()
    .chain(&tools)
    {
        println!("{}", path.display());
    }
    Ok(())
}

async fn up(args: UpArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut options = LabOptions::new(&args.dir.dir);
    options.release = args.release.release;
    options.controllers = args.controllers;
    options.kwok = args.kwok;
    options.detached = true;
    options.max_requests_inflight = args.inflight.limits();
    options.extra_apiservers = usize::from(args.apiservers) - 1;
    let plane = ControlPlane::start(options)
        .await
        .context("starting the lab control plane")?;
    tracing::info!(
        server = plane.apiserver_urls().join(" "),
        kubernetes = plane.kubernetes_version(),
        elapsed_s = format!("{:.1}", started.elapsed().as_secs_f64()),
        "control plane ready"
    );
    if args.nodes > 0 {
        let mut spec = PopulateSpec::new(args.nodes, args.pods_per_node);
        spec.concurrency = args.concurrency.into();
        spec.kwok = args.kwok;
        if let Err(e) = fill(&plane, &spec).await {
            if let Err(stop) = plane.stop().await {
                tracing::error!("stopping the lab after the failure below: {stop}");
            }
            return Err(e.context("populating the lab (the control plane was stopped again)"));
        }
    }
    tracing::info!(
        elapsed_s = format!("{:.1}", started.elapsed().as_secs_f64()),
        "lab up; stop it with `fleetwatch lab down --dir {}`",
        plane.dir().display()
    );
    println!("export KUBECONFIG={}", plane.kubeconfig().display());
    Ok(())
}

/// A progress bar counting `total` objects (or runs) on stderr.
pub fn progress_bar(total: usize, unit: &str) -> anyhow::Result<ProgressBar> {
    let template =
        format!("{{msg}} [{{bar:40}}] {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})");
    let bar = ProgressBar::new(total as u64).with_style(
        ProgressStyle::with_template(&template)
            .context("progress bar template")?
            .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    Ok(bar)
}

async fn fill(plane: &ControlPlane, spec: &PopulateSpec) -> anyhow::Result<()> {
    let client = plane.admin_client().await?;
    let bar = progress_bar(spec.objects(), "objects")?;
    bar.set_message(format!(
        "creating {} nodes and {} pods",
        spec.nodes,
        spec.pods()
    ));
    let started = Instant::now();
    populate(&client, spec, &|done, _| bar.set_position(done as u64)).await?;
    bar.finish_and_clear();
    tracing::info!(
        nodes = spec.nodes,
        pods = spec.pods(),
        elapsed_s = format!("{:.1}", started.elapsed().as_secs_f64()),
        "synthetic objects created"
    );
    Ok(())
}

async fn down(dir: &std::path::Path) -> anyhow::Result<()> {
    let stopped = plane::down(dir).await?;
    for process in &stopped {
        tracing::info!(name = process.name, pid = process.pid, "stopped");
    }
    tracing::info!(dir = %dir.display(), "lab removed (files the lab did not create are kept)");
    Ok(())
}

fn status(dir: &std::path::Path) -> anyhow::Result<()> {
    let Some(state) = plane::read_state_in(dir)? else {
        println!("no lab in {}", dir.display());
        return Ok(());
    };
    println!(
        "lab in {}: Kubernetes {}, API server {}",
        dir.display(),
        state.kubernetes_version,
        state.apiserver_url
    );
    for process in &state.processes {
        let running = if process.is_running() {
            "running"
        } else {
            "not running"
        };
        println!("  {:<24} pid {:<8} {running}", process.name, process.pid);
    }
    Ok(())
}
