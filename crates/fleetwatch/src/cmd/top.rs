//! `fleetwatch top`: who is hurting the API server right now, read off a running collector.
//!
//! Only the flags, the refresh loop and the terminal live here; reading the page and the tables
//! are `fleetwatch_collector::top`. It makes no API-server request: it reads the collector.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use fleetwatch_collector::top::{self, Options, Url, render::clock};

#[derive(Debug, clap::Args)]
// `after_long_help`, not `long_about`: the doc comment of the `Top` variant in main.rs sets
// (and so replaces) the about texts, and `--help` must still say what each table means.
#[command(
    after_long_help = "Show who is loading the API server right now, read off a running fleetwatch \
                  collector's /metrics over plain HTTP. It makes no request to the API server \
                  itself, so it is safe to run while the control plane is overloaded.\n\n\
                  It reads the page, waits --interval, reads it again and shows one screen \
                  (then one per interval until Ctrl-C; --once shows one and exits). The \
                  collector's SLIs are already rates and percentiles over its own window (5 min \
                  by default) and are shown as read; the audit clients' rates are computed from \
                  the two reads.\n\n\
                  API server replicas: one row per replica the collector scrapes and one for the \
                  cluster (`replica=\"cluster\"`, the replicas combined). STATE is up, unready \
                  (/readyz or /livez failing), DOWN (/metrics not answering) or, for the \
                  cluster, how many replicas are up. REQ/S is requests served per second; 5XX and \
                  429 the share of them with those codes; GET P99 the p99 of single-object GETs, \
                  LIST NS P99 and LIST CLUSTER P99 of namespaced and cluster-wide LISTs (the SLOs \
                  are 1 s and 30 s); INFLIGHT requests being served; CPU and RSS of the API \
                  server process; RESTARTS seen since the collector started.\n\n\
                  APF priority levels, most saturated first: SEATS in use against the LIMIT of \
                  each API Priority and Fairness level, SATURATION their ratio (a level at 100% \
                  queues, then rejects), QUEUED requests waiting, WAIT P99 of the queue wait, \
                  REJECTED requests per second (429s to clients). `exempt` is not limited.\n\n\
                  Top flow schemas by execution time: who the API server works for, as APF \
                  classifies requests. EXEC S/S is seconds of request execution per second \
                  (2.0: two of its requests executing at any moment, on average), SHARE its \
                  part of the total, DISPATCHED requests per second, SEATS/S APF's estimated \
                  seats per second (a LIST's estimate grows with the objects it reads).\n\n\
                  Top audit clients (when the collector's audit webhook receiver is set up; \
                  otherwise \"audit webhook not configured\"): per user and user agent, REQ/S, \
                  BUSY S/S (API-server seconds spent on its requests per second), P99 latency, \
                  the 4XX and 5XX shares and the verb and resource it MOSTLY calls.\n\n\
                  Each table keeps --top rows and folds the rest into one `other` row."
)]
pub struct Args {
    /// The collector's /metrics URL (plain http://).
    #[arg(long, value_name = "URL", default_value = top::DEFAULT_URL)]
    collector: String,

    /// Seconds between the two reads of a screen, and between screens.
    #[arg(long, value_name = "SECS", default_value_t = 5.0)]
    interval: f64,

    /// Read twice, print one screen and exit (for scripts and tests).
    #[arg(long)]
    once: bool,

    /// Rows per table; the rest are folded into one `other` row.
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,

    /// Seconds allowed for each read of the page, connecting included.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    timeout: f64,

    /// The largest page read, in MiB; a larger one is an error.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    max_page_mib: usize,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let options = options(&args)?;
    if args.once {
        let view = top::once(&options).await?;
        print!("{}", top::render(&view));
        return Ok(());
    }
    tokio::select! {
        result = refresh(&options) => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

fn options(args: &Args) -> anyhow::Result<Options> {
    let seconds = |flag: &str, value: f64| {
        if !(0.1..=3600.0).contains(&value) {
            bail!("--{flag} {value}: must be between 0.1 and 3600 seconds");
        }
        Ok(Duration::from_secs_f64(value))
    };
    if args.top == 0 {
        bail!("--top 0: must show at least one row");
    }
    if !(1..=4096).contains(&args.max_page_mib) {
        bail!(
            "--max-page-mib {}: must be between 1 and 4096",
            args.max_page_mib
        );
    }
    let url = Url::parse(&args.collector).context("--collector")?;
    Ok(Options {
        interval: seconds("interval", args.interval)?,
        timeout: seconds("timeout", args.timeout)?,
        top: args.top,
        max_bytes: args.max_page_mib << 20,
        ..Options::new(url)
    })
}

/// A screen per interval until stopped. A first read that fails is an error (a wrong URL, a
/// collector not running); later failures are shown and retried, since an outage is exactly
/// when a collector may answer slowly.
async fn refresh(options: &Options) -> anyhow::Result<()> {
    let terminal = std::io::stdout().is_terminal();
    let mut previous = top::read(options).await?;
    if terminal {
        eprintln!(
            "read {}; the first screen follows the second read, in {:.1} s",
            options.url.text,
            options.interval.as_secs_f64()
        );
    }
    loop {
        tokio::time::sleep(options.interval).await;
        match top::read(options).await {
            Ok(current) => {
                let screen = top::render(&top::view(options, &previous, &current));
                match show(&screen, terminal) {
                    Ok(()) => {}
                    // A closed pipe (`| head`) is the reader saying it has seen enough.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                    Err(e) => return Err(e).context("writing to stdout"),
                }
                previous = current;
            }
            Err(error) => eprintln!(
                "{} UTC: {error} (trying again in {:.1} s)",
                clock(SystemTime::now()),
                options.interval.as_secs_f64()
            ),
        }
    }
}

/// Prints a screen: over the last one on a terminal, after it (a blank line apart) otherwise.
fn show(screen: &str, terminal: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    // Clear and home the cursor only on a terminal: in a pipe or a file they would be noise.
    if terminal {
        write!(out, "\x1b[2J\x1b[H{screen}")?;
    } else {
        writeln!(out, "{screen}")?;
    }
    out.flush()
}
