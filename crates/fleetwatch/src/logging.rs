//! Log set-up: human-readable by default, JSON on request; always to stderr so stdout stays
//! clean for command output (tables, JSON reports, `export KUBECONFIG=…`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

pub fn init(format: LogFormat, verbose: u8) {
    // kube's client logs every non-2xx answer at ERROR, including the expected 500s of `/readyz`
    // polls while a lab API server starts; our own errors already carry the status, so its
    // logs only show with -v.
    let default = match verbose {
        0 => "info,kube_client=off",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.with_target(false).init(),
        LogFormat::Json => builder.json().init(),
    }
}
