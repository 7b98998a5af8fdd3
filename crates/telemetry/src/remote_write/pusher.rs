//! Pushing a process's `/metrics` page through the sink: every interval the page is rendered,
//! parsed back into time series and queued. The collector and the agent push this way, so what
//! a remote-write receiver gets is exactly what a scrape of `/metrics` would have shown.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use super::{RemoteWrite, Sample, TimeSeries};
use crate::exposition::{Exposition, Format};
use crate::text;

/// A started sink and how often it is given the page: [`PagePusher::run`] pushes until
/// stopped, [`PagePusher::finish`] pushes once more and shuts the sink down.
#[derive(Debug, Clone)]
pub struct PagePusher {
    sink: RemoteWrite,
    interval: Duration,
}

impl PagePusher {
    /// Pushes to `sink` every `interval` (the sink's task must be running).
    pub fn new(sink: RemoteWrite, interval: Duration) -> PagePusher {
        PagePusher { sink, interval }
    }

    /// Pushes what `exposition` serves every interval until `stop` turns true.
    pub async fn run(&self, exposition: Exposition, mut stop: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stopped(&mut stop) => return,
                _ = ticks.tick() => self.push(&exposition).await,
            }
        }
    }

    /// Pushes the page once, then sends what is queued until `deadline` and stops.
    pub async fn finish(self, exposition: &Exposition, deadline: Instant) {
        self.push(exposition).await;
        let stats = self.sink.shutdown(deadline).await;
        tracing::info!(
            sent = stats.sent,
            dropped = stats.dropped,
            rejected = stats.rejected,
            "remote-write stopped"
        );
    }

    async fn push(&self, exposition: &Exposition) {
        let exposition = exposition.clone();
        // Rendering and parsing a large page is CPU work: off the async threads.
        let series = tokio::task::spawn_blocking(move || {
            exposition
                .render(Format::Text)
                .map(|page| time_series(&page, now_ms()))
        })
        .await;
        match series {
            Ok(Ok(series)) => self.sink.push(series),
            Ok(Err(_)) | Err(_) => tracing::warn!("remote-write: the page could not be rendered"),
        }
    }
}

/// Completes when `stop` turns true or its sender is gone, holding no lock on it (so that the
/// task awaiting it in a `select!` stays `Send`).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Every sample of `page` as a series with one sample at `timestamp_ms` (a sample's own
/// timestamp wins).
fn time_series(page: &[u8], timestamp_ms: i64) -> Vec<TimeSeries> {
    text::parse_bytes(page)
        .samples()
        .map(|sample| {
            TimeSeries::new(
                sample.name,
                sample
                    .labels
                    .iter()
                    .map(|l| (l.name, l.value.as_ref().to_owned())),
                vec![Sample::new(
                    sample.value,
                    sample.timestamp_ms.unwrap_or(timestamp_ms),
                )],
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_becomes_a_series_with_its_labels() {
        let page = "# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\"} 3\nb 2 1700000000000\n";
        let series = time_series(page.as_bytes(), 42);
        assert_eq!(series.len(), 2);
        let labels: Vec<(&str, &str)> = series[0]
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(labels, [("__name__", "a_total"), ("x", "1"), ("y", "q\"")]);
        assert_eq!(series[0].samples, [Sample::new(3.0, 42)]);
        assert_eq!(series[1].samples, [Sample::new(2.0, 1_700_000_000_000)]);
    }
}
