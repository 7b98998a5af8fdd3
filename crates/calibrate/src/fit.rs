//! The whole fit: a sweep and a base calibration in, the fitted calibration file and a report
//! per coefficient out.
//!
//! Imports every other module: it takes the runs net of idle ([`net`](crate::net)), runs the
//! [`cpu`](crate::cpu), [`memory`](crate::memory) and [`seats`](crate::seats) fits, writes the
//! file ([`output`](crate::output)) and checks that it parses as a simulator [`Calibration`].

use fleetwatch_sim::{Calibration, SimError};

use crate::coefficient::Coefficient;
use crate::cpu::fit_cpu;
use crate::inputs::Sweep;
use crate::lists::fit_unversioned_lists;
use crate::memory::{fit_cached_memory, fit_listed_memory};
use crate::net::{MissingIdle, net_of_idle};
use crate::output::write_toml;
use crate::report::table;
use crate::seats::fit_seats;

/// The fitted calibration and how each coefficient came out.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    /// The new calibration file: the base text with `source` and the measured keys replaced.
    pub toml: String,
    /// The same, parsed and validated.
    pub calibration: Calibration,
    /// Every coefficient the fits look at, measured or not.
    pub coefficients: Vec<Coefficient>,
}

impl Fitted {
    /// The report for people: one line per coefficient with its base and fitted values, the
    /// runs the fit used, and how well it fits or why it was not measured.
    #[must_use]
    pub fn report(&self) -> String {
        table(&self.coefficients)
    }
}

/// Why a sweep cannot be fitted.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FitError {
    #[error(transparent)]
    MissingIdle(#[from] MissingIdle),
    #[error("the base calibration: {0}")]
    Base(SimError),
    /// The base is a valid calibration, but not laid out so that it can be edited in place.
    #[error("the base calibration: {0}")]
    Layout(String),
    #[error("the fitted calibration does not validate (a bug in the fit): {0}")]
    Output(SimError),
}

/// Fits the cost model to `sweep`, starting from the calibration file `base_toml`, and returns
/// the new file (with `source` set to `source`) and a report per coefficient.
///
/// # Errors
/// [`FitError::Base`] if `base_toml` is not a valid calibration and [`FitError::Layout`] if it
/// cannot be edited in place, [`FitError::MissingIdle`] when a cluster size has runs but no idle
/// run.
pub fn fit(sweep: &Sweep, base_toml: &str, source: &str) -> Result<Fitted, FitError> {
    let base = Calibration::parse("base calibration", base_toml).map_err(FitError::Base)?;
    let runs = sweep.runs();
    let net = net_of_idle(runs)?;
    let mut coefficients = fit_cpu(&net, &base).to_vec();
    coefficients.push(fit_listed_memory(&net, &base));
    coefficients.push(fit_cached_memory(runs, &base));
    coefficients.extend(fit_seats(runs, &base));
    coefficients.push(fit_unversioned_lists(runs, &base));
    let toml = write_toml(base_toml, source, &coefficients).map_err(FitError::Layout)?;
    let calibration = Calibration::parse("fitted calibration", &toml).map_err(FitError::Output)?;
    Ok(Fitted {
        toml,
        calibration,
        coefficients,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coefficient::Outcome;
    use crate::inputs::{Pattern, Run};
    use crate::output::{MEASURED, sci};
    use crate::testing::{SweepSpec, Truth, sweep, synthetic};
    use fleetwatch_sim::calibration::PLAUSIBLE_TOML;
    use proptest::prelude::*;

    /// The plausible base with these keys set: a base whose values the test chooses.
    fn base_with(keys: &[(&str, f64)]) -> String {
        let mut doc: toml_edit::DocumentMut = PLAUSIBLE_TOML.parse().expect("the plausible TOML");
        for &(key, value) in keys {
            let (section, name) = key.split_once('.').expect("section.key");
            doc[section][name] = toml_edit::value(value);
        }
        doc.to_string()
    }

    fn parse(base: &str) -> Calibration {
        Calibration::parse("test base", base).expect("valid base")
    }

    fn fit_runs(runs: &[Run], base: &str) -> Fitted {
        fit(&sweep(runs), base, "test").expect("fit")
    }

    fn coefficient<'a>(fitted: &'a Fitted, key: &str) -> &'a Coefficient {
        fitted
            .coefficients
            .iter()
            .find(|c| c.key == key)
            .unwrap_or_else(|| panic!("no coefficient {key}"))
    }

    fn measured_value(fitted: &Fitted, key: &str) -> f64 {
        match &coefficient(fitted, key).outcome {
            Outcome::Measured { value, .. } => *value,
            Outcome::NotMeasured { reason } => panic!("{key} not measured: {reason}"),
        }
    }

    fn not_measured_reason<'a>(fitted: &'a Fitted, key: &str) -> &'a str {
        match &coefficient(fitted, key).outcome {
            Outcome::NotMeasured { reason } => reason,
            Outcome::Measured { .. } => panic!("{key} measured: {:?}", coefficient(fitted, key)),
        }
    }

    fn assert_close(fitted: &Fitted, key: &str, truth: f64, tolerance: f64) {
        let value = measured_value(fitted, key);
        assert!(
            ((value - truth) / truth).abs() <= tolerance,
            "{key}: fitted {value}, truth {truth} (tolerance {tolerance})\n{:#?}",
            fitted.coefficients
        );
    }

    /// The line just above `name = …` in the file.
    fn line_above<'a>(toml: &'a str, name: &str) -> &'a str {
        let lines: Vec<&str> = toml.lines().collect();
        let at = lines
            .iter()
            .position(|l| l.starts_with(&format!("{name} =")))
            .unwrap_or_else(|| panic!("no key {name}"));
        lines[at - 1]
    }

    /// APF rounds a LIST's seats up to `ceil(objects / objects_per_seat)`, the simulator's model
    /// is linear: seats per LIST against objects per LIST through the origin, over the
    /// naive-list runs between 2 seats and the cap, has a slope between `1 / objects_per_seat`
    /// and that plus `Σo / Σo²` (every run rounded up by a whole seat).
    fn assert_objects_per_seat_within_rounding(fitted: &Fitted, truth: &Truth, runs: &[Run]) {
        let objects: Vec<f64> = runs
            .iter()
            .filter(|r| r.pattern == Pattern::NaiveList)
            .map(|r| r.pods as f64)
            .filter(|o| (2.0..truth.max_seats).contains(&(o / truth.objects_per_seat).ceil()))
            .collect();
        assert!(objects.len() >= 2, "{objects:?}");
        let (sum, squares): (f64, f64) =
            (objects.iter().sum(), objects.iter().map(|o| o * o).sum());
        let lowest = 1.0 / (1.0 / truth.objects_per_seat + sum / squares);
        let value = measured_value(fitted, "apf.objects_per_list_seat");
        assert!(
            (lowest * (1.0 - ROUNDING)..=truth.objects_per_seat * (1.0 + ROUNDING))
                .contains(&value),
            "objects per seat {value}, not in [{lowest}, {}]",
            truth.objects_per_seat
        );
    }

    /// Within the three significant digits the file keeps, and the rounding of counts to
    /// integers: what remains of exact data.
    const ROUNDING: f64 = 0.01;

    #[test]
    fn recovers_known_coefficients_from_a_noiseless_sweep() {
        let truth = Truth::default();
        let spec = SweepSpec {
            node_lists_from_etcd: true,
            ..SweepSpec::default()
        };
        let fitted = fit_runs(&synthetic(&truth, &spec), PLAUSIBLE_TOML);
        for (key, want) in [
            ("api_server.cpu_seconds_per_list", truth.per_list),
            (
                "api_server.cpu_seconds_per_object_listed_from_cache",
                truth.per_object_from_cache,
            ),
            (
                "api_server.cpu_seconds_per_object_listed_from_etcd",
                truth.per_object_from_etcd,
            ),
            (
                "api_server.cpu_seconds_per_watch_event",
                truth.per_watch_event,
            ),
            (
                "api_server.memory_bytes_per_object_listed",
                truth.bytes_per_object_listed,
            ),
            (
                "api_server.memory_bytes_per_cached_object",
                truth.bytes_per_cached_object,
            ),
        ] {
            assert_close(&fitted, key, want, ROUNDING);
        }
        assert_close(&fitted, "apf.max_seats_per_request", truth.max_seats, 0.0);
        let cal = &fitted.calibration;
        assert_eq!(
            cal.api_server.cpu_seconds_per_list,
            measured_value(&fitted, "api_server.cpu_seconds_per_list")
        );
        assert_eq!(cal.apf.max_seats_per_request, truth.max_seats);
        let cpu = coefficient(&fitted, "api_server.cpu_seconds_per_list");
        assert_eq!(cpu.runs, spec.agent_runs());
        let Outcome::Measured { quality, .. } = &cpu.outcome else {
            unreachable!("checked above")
        };
        assert!(quality.relative_rms < ROUNDING / 10.0, "{quality:?}");
        assert!(
            quality
                .r_squared
                .is_some_and(|r2| r2 > 1.0 - ROUNDING / 10.0),
            "{quality:?}"
        );
    }

    #[test]
    fn a_counter_that_never_moves_is_not_measured_and_keeps_the_base_value() {
        let objects_per_seat = 100.0;
        let base_toml = base_with(&[
            ("api_server.cpu_seconds_per_object_listed_from_etcd", 33e-6),
            ("apf.objects_per_list_seat", objects_per_seat),
        ]);
        let base = parse(&base_toml);
        // kube-apiserver 1.37 serves every LIST from the watch cache: no etcd-served objects.
        let truth = Truth {
            objects_per_seat,
            ..Truth::default()
        };
        let spec = SweepSpec::default();
        let runs = synthetic(&truth, &spec);
        let fitted = fit_runs(&runs, &base_toml);
        let etcd_key = "api_server.cpu_seconds_per_object_listed_from_etcd";
        let reason = not_measured_reason(&fitted, etcd_key);
        let never = format!(
            "`pods_listed_from_etcd` is 0 net of idle in all {} runs",
            spec.agent_runs()
        );
        assert!(reason.starts_with(&never), "{reason}");
        let etcd = base.api_server.cpu_seconds_per_object_listed_from_etcd;
        assert_eq!(coefficient(&fitted, etcd_key).value(), etcd);
        assert_eq!(
            fitted
                .calibration
                .api_server
                .cpu_seconds_per_object_listed_from_etcd,
            etcd
        );
        assert!(
            !line_above(&fitted.toml, "cpu_seconds_per_object_listed_from_etcd")
                .starts_with(MEASURED)
        );
        // The other CPU coefficients are still recovered without it.
        assert_close(
            &fitted,
            "api_server.cpu_seconds_per_object_listed_from_cache",
            truth.per_object_from_cache,
            ROUNDING,
        );
        // Every naive-list LIST is at the cap: objects per seat is invisible.
        let smallest = runs
            .iter()
            .filter(|r| r.pattern == Pattern::NaiveList)
            .map(|r| r.pods)
            .min()
            .expect("naive-list runs");
        assert!(smallest as f64 >= objects_per_seat * truth.max_seats);
        let reason = not_measured_reason(&fitted, "apf.objects_per_list_seat");
        let cap = format!(
            "reach the cap ({} seats at {objects_per_seat} objects per seat)",
            truth.max_seats
        );
        assert!(reason.contains(&cap), "{reason}");
        assert_eq!(
            fitted.calibration.apf.objects_per_list_seat,
            objects_per_seat
        );
        assert!(!line_above(&fitted.toml, "objects_per_list_seat").starts_with(MEASURED));
    }

    #[test]
    fn small_clusters_show_objects_per_seat_and_the_cap() {
        let truth = Truth {
            objects_per_seat: 120.0,
            max_seats: 8.0,
            ..Truth::default()
        };
        let spec = SweepSpec {
            sizes: vec![5, 10, 15, 20, 40, 80],
            ..SweepSpec::default()
        };
        let base = base_with(&[("apf.objects_per_list_seat", 100.0)]);
        let runs = synthetic(&truth, &spec);
        let fitted = fit_runs(&runs, &base);
        assert_objects_per_seat_within_rounding(&fitted, &truth, &runs);
        assert_close(&fitted, "apf.max_seats_per_request", truth.max_seats, 0.0);
    }

    #[test]
    fn rejected_lists_count_with_the_seats_apf_estimated_for_them() {
        let truth = Truth {
            max_seats: 8.0,
            ..Truth::default()
        };
        let mut runs = synthetic(&truth, &SweepSpec::default());
        let rejected = 200;
        for run in runs.iter_mut().filter(|m| m.pattern == Pattern::NaiveList) {
            // More LISTs, estimated at the cap, then rejected with 429.
            run.throttled_429 = rejected;
            run.agent_level_requests += rejected;
            run.agent_level_seats += rejected as f64 * truth.max_seats;
        }
        let base = base_with(&[("apf.objects_per_list_seat", truth.objects_per_seat)]);
        let fitted = fit_runs(&runs, &base);
        assert_close(&fitted, "apf.max_seats_per_request", truth.max_seats, 0.0);
    }

    #[test]
    fn without_a_capped_list_the_cap_is_not_measured() {
        let truth = Truth::default();
        let spec = SweepSpec {
            sizes: vec![5, 10, 20],
            ..SweepSpec::default()
        };
        let base_toml = base_with(&[
            ("apf.objects_per_list_seat", truth.objects_per_seat),
            ("apf.max_seats_per_request", 12.0),
        ]);
        let runs = synthetic(&truth, &spec);
        let fitted = fit_runs(&runs, &base_toml);
        let reason = not_measured_reason(&fitted, "apf.max_seats_per_request");
        assert!(
            reason.starts_with("no naive-list run's LISTs clearly hit a cap"),
            "{reason}"
        );
        let base = parse(&base_toml);
        assert_eq!(
            fitted.calibration.apf.max_seats_per_request,
            base.apf.max_seats_per_request
        );
        assert_objects_per_seat_within_rounding(&fitted, &truth, &runs);
    }

    #[test]
    fn missing_idle_runs_are_a_clear_error() {
        let mut runs = synthetic(&Truth::default(), &SweepSpec::default());
        runs.retain(|m| !(m.pattern == Pattern::Idle && (m.nodes == 200 || m.nodes == 1000)));
        let err = fit(&sweep(&runs), PLAUSIBLE_TOML, "test").expect_err("no idle at 200 and 1000");
        assert_eq!(
            err,
            FitError::MissingIdle(MissingIdle {
                nodes: vec![200, 1000],
                patterns: Pattern::ALL[1..].to_vec(),
            })
        );
        assert!(
            err.to_string().starts_with(
                "no idle run at 200, 1000 nodes, which the naive-list, naive-list-node, \
                 watch-all, watch-node, fleetwatch run(s) there need"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_bad_base_is_an_error_not_a_panic() {
        let runs = sweep(&synthetic(&Truth::default(), &SweepSpec::default()));
        assert!(matches!(
            fit(&runs, "format_version = 1", "t"),
            Err(FitError::Base(_))
        ));
        assert!(matches!(
            fit(&runs, "not toml", "t"),
            Err(FitError::Base(_))
        ));
    }

    #[test]
    fn output_round_trips_and_keeps_the_base_files_comments() {
        let source = "measured by a test on 2026-01-02 (\"quoted\", `ticks`)";
        let truth = Truth::default();
        let runs = sweep(&synthetic(&truth, &SweepSpec::default()));
        let base = base_with(&[("apf.objects_per_list_seat", truth.objects_per_seat)]);
        let fitted = fit(&runs, &base, source).expect("fit");
        let parsed = Calibration::parse("out", &fitted.toml).expect("output parses");
        assert_eq!(parsed, fitted.calibration);
        assert_eq!(parsed.source, source);
        // (A base's own `# measured:` lines are replaced where the key is fitted again.)
        for line in base
            .lines()
            .filter(|l| l.trim_start().starts_with('#') && !l.starts_with(MEASURED))
        {
            assert!(fitted.toml.contains(line), "lost comment line {line:?}");
        }
        // The keys these runs measure (not etcd's CPU: no LIST read it, as the measured share of
        // LISTs from etcd, 0, says; not objects per seat: every LIST is at the cap), each with
        // its comment right above it and its reported value.
        let mut measured: Vec<&str> = Vec::new();
        for c in &fitted.coefficients {
            let name = c.key.split_once('.').map_or(c.key, |(_, n)| n);
            let above = line_above(&fitted.toml, name);
            match &c.outcome {
                Outcome::Measured { value, .. } => {
                    let comment = format!("{MEASURED} {} ±", sci(*value));
                    assert!(above.starts_with(&comment), "{}: {above:?}", c.key);
                    measured.push(c.key);
                }
                Outcome::NotMeasured { .. } => {
                    assert!(!above.starts_with(MEASURED), "{}: {above:?}", c.key);
                }
            }
        }
        assert_eq!(
            measured,
            [
                "api_server.cpu_seconds_per_list",
                "api_server.cpu_seconds_per_object_listed_from_cache",
                "api_server.cpu_seconds_per_watch_event",
                "api_server.memory_bytes_per_object_listed",
                "api_server.memory_bytes_per_cached_object",
                "apf.max_seats_per_request",
                "api_server.fraction_of_unversioned_lists_from_etcd",
            ]
        );
        let cache = format!("{MEASURED} {} ±", sci(truth.per_object_from_cache));
        assert!(fitted.toml.contains(&cache), "{}", fitted.toml);
        assert!(fitted.toml.contains("upper bound"));
        // Fitting again on the output replaces the measured comments instead of stacking them.
        let again = fit(&runs, &fitted.toml, source).expect("refit");
        assert_eq!(again.toml, fitted.toml);
        assert_eq!(again.toml.matches(MEASURED).count(), measured.len());
        // The report has a line per coefficient, in the same order.
        let report = fitted.report();
        let keys: Vec<&str> = report
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        let want: Vec<&str> = fitted.coefficients.iter().map(|c| c.key).collect();
        assert_eq!(keys, want, "{report}");
    }

    const WATCH: &str = "api_server.cpu_seconds_per_watch_event";

    /// A sweep of an API server whose watch events cost nothing, with `noise`, fitted from a
    /// base that sets its own watch-event cost; and that base.
    fn fit_free_watch_events(noise: f64) -> (Fitted, Calibration) {
        let base_toml = base_with(&[(WATCH, 7.5e-6)]);
        let truth = Truth {
            per_watch_event: 0.0,
            ..Truth::default()
        };
        let spec = SweepSpec {
            noise,
            ..SweepSpec::default()
        };
        (
            fit_runs(&synthetic(&truth, &spec), &base_toml),
            parse(&base_toml),
        )
    }

    #[test]
    fn a_cost_at_zero_keeps_its_base_value() {
        // Measured exactly, the best fit is 0: the file keeps the base value rather than a cost
        // the runs cannot resolve.
        let (fitted, base) = fit_free_watch_events(0.0);
        let reason = not_measured_reason(&fitted, WATCH);
        assert!(reason.contains("puts it at 0"), "{reason}");
        let base_value = base.api_server.cpu_seconds_per_watch_event;
        assert_eq!(coefficient(&fitted, WATCH).value(), base_value);
        assert_eq!(
            fitted.calibration.api_server.cpu_seconds_per_watch_event,
            base_value
        );
    }

    #[test]
    fn with_noise_a_cost_at_zero_is_measured_only_within_its_error() {
        let noise = 0.002;
        let (fitted, base) = fit_free_watch_events(noise);
        let watch = coefficient(&fitted, WATCH);
        match &watch.outcome {
            Outcome::NotMeasured { .. } => {
                assert_eq!(watch.value(), base.api_server.cpu_seconds_per_watch_event);
            }
            // Noise may leave it above 0: then 0 is within three of its standard errors, and
            // the fit's residuals are no larger than the noise that was added.
            Outcome::Measured { value, quality } => {
                let se = quality.relative_standard_error.expect("spare runs") * value;
                assert!(*value <= 3.0 * se, "{watch:?}");
                assert!(quality.relative_rms <= noise, "{watch:?}");
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Coefficients anywhere in a plausible range come back from a slightly noisy sweep.
        #[test]
        fn fit_recovers_random_coefficients(
            per_list in 5e-4f64..1e-2,
            per_object_from_cache in 1e-6f64..3e-5,
            per_object_from_etcd in 5e-6f64..1e-4,
            per_watch_event in 2e-6f64..5e-5,
            bytes_per_object_listed in 5e3f64..1e5,
            bytes_per_cached_object in 2e3f64..5e4,
            noise in 0.0f64..0.001,
            seed in any::<u64>(),
        ) {
            let truth = Truth {
                per_list,
                per_object_from_cache,
                per_object_from_etcd,
                per_watch_event,
                bytes_per_object_listed,
                bytes_per_cached_object,
                ..Truth::default()
            };
            let spec = SweepSpec {
                node_lists_from_etcd: true,
                noise,
                seed,
                ..SweepSpec::default()
            };
            let fitted = fit(&sweep(&synthetic(&truth, &spec)), PLAUSIBLE_TOML, "p");
            prop_assert!(fitted.is_ok(), "{fitted:?}");
            let fitted = fitted.expect("checked");
            for (key, want, tolerance) in [
                ("api_server.cpu_seconds_per_list", per_list, 0.10),
                (
                    "api_server.cpu_seconds_per_object_listed_from_cache",
                    per_object_from_cache,
                    0.05,
                ),
                ("api_server.cpu_seconds_per_object_listed_from_etcd", per_object_from_etcd, 0.10),
                ("api_server.cpu_seconds_per_watch_event", per_watch_event, 0.05),
                ("api_server.memory_bytes_per_object_listed", bytes_per_object_listed, 0.05),
            ] {
                let c = coefficient(&fitted, key);
                let got = c.value();
                let measured = matches!(c.outcome, Outcome::Measured { .. });
                prop_assert!(
                    measured && ((got - want) / want).abs() <= tolerance,
                    "{key}: got {got}, want {want}: {c:?}"
                );
            }
            // Idle runs that peak below an earlier naive-list run are left out of the watch-cache
            // fit (a real API server would still show that run's heap): with fewer than three
            // left it is not measured, and otherwise it is right.
            let cached = coefficient(&fitted, "api_server.memory_bytes_per_cached_object");
            match &cached.outcome {
                Outcome::Measured { value, .. } => prop_assert!(
                    ((value - bytes_per_cached_object) / bytes_per_cached_object).abs() <= 0.10,
                    "{cached:?}, want {bytes_per_cached_object}"
                ),
                Outcome::NotMeasured { reason } => {
                    prop_assert!(reason.contains("peaked above every run before them"), "{reason}");
                }
            }
            prop_assert_eq!(
                &Calibration::parse("out", &fitted.toml).expect("parses"),
                &fitted.calibration
            );
        }
    }
}
