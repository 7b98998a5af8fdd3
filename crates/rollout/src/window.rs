//! The change's demand in one admitted cluster, measured over a window that covers its period.
//!
//! A change whose calls are minutes to an hour apart shows nothing between calls, so a reading
//! of its cost "now" misses it. The window instead differences the change's asked totals (see
//! [`crate::Observation::change_asked_total`]): counters, so no call between two readings is
//! lost, however far apart the readings are.
//!
//! Per resource, the demand the projection uses is:
//! - **CPU: the mean** over the window. CPU is shared in time: a burst lengthens latency (which
//!   the gates watch in admitted clusters), and what must fit the headroom is the sustained load.
//!   Until the window spans [`crate::ProjectionPolicy::window_seconds`], the mean is taken as
//!   `asked so far / window`, a lower bound of the mean over the first full window — so an
//!   overload it shows is already certain, and the engine may halt early but never pass early.
//!   Once full, it is the mean over everything the window spans.
//! - **Memory and seats: the peak** of the mean over one interval between readings. Both are held,
//!   with hard limits: seats beyond the level's are queued or rejected (a synchronized burst fills
//!   the lane), memory beyond the limit is an OOM kill. A peak only grows, so it too is a lower
//!   bound of the window's. Its resolution is the interval between readings: a burst of requests
//!   much shorter than that interval is averaged over it.

use serde::{Deserialize, Serialize};

use crate::cluster::{Resource, Resources};

/// What the engine has measured of the change in one admitted cluster since the window opened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// When the window opened, and the change's asked totals then.
    pub opened_at: f64,
    pub opened_total: Resources,
    /// The latest reading: when, and the totals then.
    pub last_at: f64,
    pub last_total: Resources,
    /// Highest mean demand over one interval between readings (cores, bytes, seats).
    pub peak: Resources,
}

/// A reading that cannot extend a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// A total went down: the counters were reset (an API server or the caller restarted).
    Reset,
    /// The reading is older than the window's latest.
    Stale,
}

impl Window {
    /// A window opening at `at` on the change's asked totals then.
    #[must_use]
    pub fn open(at: f64, total: Resources) -> Self {
        Self {
            opened_at: at,
            opened_total: total,
            last_at: at,
            last_total: total,
            peak: Resources::default(),
        }
    }

    /// Extends the window to a reading at `at`.
    ///
    /// # Errors
    /// [`Rejected`] when the reading cannot extend it; the caller opens a new window then.
    pub fn record(&mut self, at: f64, total: Resources) -> Result<(), Rejected> {
        if at < self.last_at {
            return Err(Rejected::Stale);
        }
        if Resource::ALL
            .iter()
            .any(|&r| total.get(r) < self.last_total.get(r))
        {
            return Err(Rejected::Reset);
        }
        let interval = at - self.last_at;
        if interval > 0.0 {
            let mean = total.zip(&self.last_total, |now, then| (now - then) / interval);
            self.peak = self.peak.zip(&mean, f64::max);
        }
        self.last_at = at;
        self.last_total = total;
        Ok(())
    }

    /// Seconds the window spans.
    #[must_use]
    pub fn span(&self) -> f64 {
        self.last_at - self.opened_at
    }

    /// Whether the window spans at least `length` seconds.
    #[must_use]
    pub fn is_full(&self, length: f64) -> bool {
        self.span() >= length
    }

    /// Mean demand over the window, as `asked / max(span, length)`: a lower bound of the mean
    /// until the window is full, the mean after.
    #[must_use]
    pub fn mean_at_least(&self, length: f64) -> Resources {
        let over = self.span().max(length).max(f64::MIN_POSITIVE);
        self.last_total
            .zip(&self.opened_total, |now, then| (now - then) / over)
    }

    /// The demand the projection uses: the mean for CPU, the peak for memory and seats (see
    /// the module doc for why), each a lower bound of the full window's.
    #[must_use]
    pub fn demand(&self, length: f64) -> Resources {
        Resources {
            cpu_cores: self.mean_at_least(length).cpu_cores,
            ..self.peak
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cpu(core_seconds: f64) -> Resources {
        Resources {
            cpu_cores: core_seconds,
            memory_bytes: core_seconds * 1e9,
            seats: core_seconds * 2.0,
        }
    }

    #[test]
    fn an_hourly_call_is_averaged_over_the_window_and_its_burst_is_the_peak() {
        // 3600 core-seconds asked in one 10 s interval, once an hour.
        let mut w = Window::open(0.0, cpu(0.0));
        for i in 1..=360 {
            let total = if i >= 180 { 3600.0 } else { 0.0 };
            w.record(f64::from(i) * 10.0, cpu(total))
                .expect("monotonic");
        }
        assert!(w.is_full(3600.0));
        assert!((w.demand(3600.0).cpu_cores - 1.0).abs() < 1e-12);
        assert!((w.peak.cpu_cores - 360.0).abs() < 1e-9);
        assert!((w.demand(3600.0).seats - 720.0).abs() < 1e-9);
    }

    #[test]
    fn a_reset_or_stale_reading_is_rejected() {
        let mut w = Window::open(10.0, cpu(5.0));
        assert_eq!(w.record(20.0, cpu(4.0)), Err(Rejected::Reset));
        assert_eq!(w.record(5.0, cpu(6.0)), Err(Rejected::Stale));
        assert_eq!(w.record(20.0, cpu(6.0)), Ok(()));
    }

    proptest! {
        /// Read at a steady interval, demand before the window is full never exceeds what the
        /// full window reads, so a halt on a partial window is one the full window makes too.
        #[test]
        fn a_partial_window_never_overstates_the_full_one(
            interval in 1.0f64..120.0,
            asked in proptest::collection::vec(0.0f64..50.0, 1..200),
        ) {
            let length = interval * f64::from(u32::try_from(asked.len()).expect("short"));
            let mut w = Window::open(0.0, Resources::default());
            let mut total = 0.0;
            let mut partial = Vec::new();
            for (i, a) in (1u32..).zip(&asked) {
                total += a;
                w.record(f64::from(i) * interval, cpu(total)).expect("monotonic");
                if !w.is_full(length) {
                    partial.push(w.demand(length));
                }
            }
            prop_assert!(w.is_full(length));
            let full = w.demand(length);
            for p in partial {
                for r in Resource::ALL {
                    prop_assert!(p.get(r) <= full.get(r) * (1.0 + 1e-12), "{p:?} > {full:?}");
                }
            }
        }
    }
}
