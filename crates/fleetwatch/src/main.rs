//! `fleetwatch`: control-plane telemetry for Kubernetes fleets that cannot itself overload the
//! control plane, and guarded phased rollouts.
//!
//! This binary only parses arguments, sets up logging and prints errors for humans; each
//! subcommand lives in its own module under `cmd/` and the real work in the library crates.

mod cmd;
mod logging;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "fleetwatch",
    version,
    about = "Control-plane telemetry and guarded rollouts for Kubernetes fleets",
    long_about = "Control-plane telemetry and guarded rollouts for Kubernetes fleets that cannot \
                  themselves overload the control plane.\n\nNew here? Run `fleetwatch replay` (no \
                  cluster needed) to see the 2024-12-11 outage and what a guarded rollout does \
                  instead."
)]
struct Cli {
    /// Log format: `human` for people at a terminal, `json` for log pipelines.
    #[arg(long, global = true, value_enum, default_value_t = logging::LogFormat::Human)]
    log_format: logging::LogFormat,

    /// More log detail (-v: debug, -vv: trace). `RUST_LOG` overrides this.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Replay the 2024-12-11 outage in the fleet simulator, unguarded and guarded (no cluster needed).
    Replay(cmd::replay::Args),
    /// Simulate a rollout of your own change across your own fleet description.
    Sim(cmd::sim::Args),
    /// Run the control-plane telemetry collector for one cluster.
    Collector(cmd::collector::Args),
    /// Run the node agent on one node: kubelet, /proc and DNS health, no API-server requests.
    Agent(cmd::agent::Args),
    /// Run a real Kubernetes control plane on loopback for tests, demos and load measurements.
    Lab(cmd::lab::Args),
    /// Show who is loading the API server right now, read off a running collector.
    Top(cmd::top::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format, cli.verbose);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Replay(args) => cmd::replay::run(args).await,
            Command::Sim(args) => cmd::sim::run(args).await,
            Command::Lab(args) => cmd::lab::run(args).await,
            Command::Collector(args) => cmd::collector::run(args).await,
            Command::Agent(args) => cmd::agent::run(args).await,
            Command::Top(args) => cmd::top::run(args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole context chain on one line: what we were doing, then why.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
