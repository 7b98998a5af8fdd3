//! Fits the fleet simulator's cost model to a load-lab sweep and writes the calibration file.
//!
//! Owns: reading the sweep CSV `fleetwatch lab sweep` writes, by column name (the names are the
//! contract with the load lab, so this crate does not depend on it); the fits of the API
//! server's CPU, memory and APF-seat coefficients; and what comes out — the calibration text,
//! which keeps the base file's comments, a report per coefficient, and the file's `source` line.
//! It depends on `fleetwatch-sim` only for its [`Calibration`], to parse and validate the base
//! file and what it writes.
//! Must not: do any I/O but reading the sweep CSV it is given ([`Sweep::read`]), read a clock or
//! the environment, or use randomness. The caller — `fleetwatch lab calibrate` — reads the base
//! file, gives the Kubernetes version and the time, prints the report and writes the file; the
//! same sweep, base, version and time give the same bytes.
//!
//! Start with [`Sweep::read`], then [`fit()`] (and [`source()`] for its `source` line); the
//! [`Fitted`] result holds the file's text, the parsed [`Calibration`], every [`Coefficient`]
//! and [`Fitted::report`]. What is fitted, and from what — every count net of the idle run at
//! the same cluster size, which measures the background every run carries:
//! - **API-server CPU** per LIST, per pod listed from the watch cache and from etcd, and per
//!   watch event sent: non-negative least squares over every non-idle run;
//! - **memory per object listed** (net peak RSS against LISTs in flight, an upper bound) and
//!   **per cached object** (idle peak RSS against pods + nodes);
//! - **APF seats** per LIST of the `naive-list` runs: the estimator's cap and objects per seat;
//! - **where a LIST without resourceVersion is read from**: the `naive-list` runs' share of pods
//!   listed from etcd.
//!
//! A coefficient the runs cannot identify keeps its base value and is reported as not measured,
//! with the reason. Everything else in the file keeps its base value.
//!
//! Modules, bottom up; each imports only modules above it in this list: `coefficient` (the
//! outcome of one coefficient), `linalg` (least squares, QR, NNLS), `inputs` (the CSV, checked
//! rows, [`Pattern`]), `net` (runs net of idle), `output` (the TOML text and number formats),
//! `cpu`, `memory`, `seats`, `lists` (the fits), `report`, `source`, and `fit`, which runs them all.
//! This file only declares the modules and re-exports from them.
//!
//! [`Calibration`]: fleetwatch_sim::Calibration

mod coefficient;
mod cpu;
mod fit;
mod inputs;
mod linalg;
mod lists;
mod memory;
mod net;
mod output;
mod report;
mod seats;
mod source;
#[cfg(test)]
mod testing;

pub use coefficient::{Coefficient, Outcome, Quality};
pub use fit::{FitError, Fitted, fit};
pub use inputs::{InputError, Pattern, Run, Sweep};
pub use net::MissingIdle;
pub use source::source;
