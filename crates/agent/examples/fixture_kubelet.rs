//! The fixture kubelet of `tests/kubelet.rs`, as a process: for running the agent against a
//! kubelet of N pods (the benchmark's).
//!
//! ```text
//! cargo run -p fleetwatch-agent --example fixture_kubelet -- \
//!     [--pods N] [--node NAME] [--listen ADDR] --cert-dir DIR
//! ```
//!
//! Without `--pods` it serves the fixture files (3 pods of node `node-7`); with it, that many
//! generated pods of `--node` (default `node-7`). It writes `ca.crt` and `token` into
//! `--cert-dir`, prints `url=…`, `ca=…`, `token=…` and `node=…` lines once it listens (so a
//! script can read them: `fleetwatch agent --node-name $node --kubelet $url --kubelet-ca $ca
//! --kubelet-token-file $token`), and serves until it is killed.

#[path = "../tests/support/kubelet.rs"]
mod fixture;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use fixture::{Fixture, FixtureKubelet, NODE};

const USAGE: &str =
    "usage: fixture_kubelet [--pods N] [--node NAME] [--listen ADDR] --cert-dir DIR";

#[derive(Debug)]
struct Args {
    pods: Option<usize>,
    node: String,
    listen: SocketAddr,
    cert_dir: PathBuf,
}

fn args() -> Result<Args, String> {
    let mut pods = None;
    let mut node = NODE.to_owned();
    let mut listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let mut cert_dir = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--pods" => pods = Some(value()?.parse().map_err(|e| format!("--pods: {e}"))?),
            "--node" => node = value()?,
            "--listen" => listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--cert-dir" => cert_dir = Some(PathBuf::from(value()?)),
            "--help" | "-h" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    let cert_dir = cert_dir.ok_or(format!("--cert-dir is required\n{USAGE}"))?;
    Ok(Args {
        pods,
        node,
        listen,
        cert_dir,
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let fixture = match args.pods {
        Some(pods) => Fixture::generated(pods, &args.node),
        None => Fixture::files(),
    };
    let node = fixture.node.clone();
    if let Err(e) = std::fs::create_dir_all(&args.cert_dir) {
        eprintln!("{}: {e}", args.cert_dir.display());
        return ExitCode::FAILURE;
    }
    let kubelet = match FixtureKubelet::start_in(fixture, args.listen, &args.cert_dir).await {
        Ok(kubelet) => kubelet,
        Err(e) => {
            eprintln!("cannot serve on {}: {e}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let printed = writeln!(
        out,
        "url={}\nca={}\ntoken={}\nnode={node}",
        kubelet.url,
        kubelet.ca_file.display(),
        kubelet.token_file.display()
    )
    .and_then(|()| out.flush());
    drop(out);
    if printed.is_err() {
        return ExitCode::FAILURE;
    }
    // Serves until killed (SIGTERM/SIGINT end the process); on Ctrl-C, says how much it served.
    let _ = tokio::signal::ctrl_c().await;
    eprintln!(
        "served {} /metrics/resource and {} /stats/summary requests",
        kubelet.requests(fixture::RESOURCE),
        kubelet.requests(fixture::SUMMARY)
    );
    ExitCode::SUCCESS
}
