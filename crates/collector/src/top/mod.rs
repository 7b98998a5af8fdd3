//! `fleetwatch top`: who is hurting the API server right now, read off a running collector.
//!
//! Owns: reading a collector's `/metrics` over plain HTTP ([`fetch`]), keeping the series it
//! shows ([`page`]), turning two readings into the tables' numbers ([`view`]) and formatting
//! them ([`render`]): per replica and for the cluster, APF priority levels by saturation, flow
//! schemas by execution time, and the audit receiver's clients by cost.
//!
//! Must not: talk to an API server or depend on the API client for anything — during an
//! outage `top` must add zero load to the control plane, so it reads only what the collector
//! already derived. It knows the collector's series names, which is why it lives here.
//!
//! The collector's SLI series are already rates and percentiles over its window and are shown
//! as read; the audit receiver's are raw counters, so a screen needs two readings and shows
//! their rates between the two.

pub mod fetch;
pub mod page;
pub mod render;
pub mod view;

use std::time::{Duration, Instant, SystemTime};

pub use self::fetch::{FetchError, Url};
pub use self::page::Reading;
pub use self::render::{AUDIT_NOT_CONFIGURED, render};
pub use self::view::View;

/// The collector's default address, as `fleetwatch collector --listen` serves it locally.
pub const DEFAULT_URL: &str = "http://127.0.0.1:9470/metrics";
/// The default largest page read: a 5,000-node cluster's collector page is far smaller, and a
/// bound keeps a wrong URL from filling memory.
pub const DEFAULT_MAX_BYTES: usize = 64 << 20;

/// How to read the collector.
#[derive(Debug, Clone)]
pub struct Options {
    pub url: Url,
    /// Time between the two readings of a screen (and between screens).
    pub interval: Duration,
    /// Rows kept per table; the rest are folded into one `other` row.
    pub top: usize,
    /// Time allowed for each read, connecting included.
    pub timeout: Duration,
    /// The largest page read; a larger one is an error.
    pub max_bytes: usize,
}

impl Options {
    /// The defaults of `fleetwatch top` for `url`.
    pub fn new(url: Url) -> Options {
        Options {
            url,
            interval: Duration::from_secs(5),
            top: 10,
            timeout: Duration::from_secs(10),
            max_bytes: DEFAULT_MAX_BYTES,
        }
    }
}

/// Reads the collector's page once.
pub async fn read(options: &Options) -> Result<Reading, FetchError> {
    let body = fetch::get(&options.url, options.timeout, options.max_bytes).await?;
    Ok(Reading::parse(&body, Instant::now(), SystemTime::now()))
}

/// The view of two readings.
pub fn view(options: &Options, previous: &Reading, current: &Reading) -> View {
    view::build(&options.url.text, previous, current, options.top)
}

/// What `--once` does: two reads `interval` apart, one view.
pub async fn once(options: &Options) -> Result<View, FetchError> {
    let first = read(options).await?;
    tokio::time::sleep(options.interval).await;
    let second = read(options).await?;
    Ok(view(options, &first, &second))
}

#[cfg(test)]
mod tests;
