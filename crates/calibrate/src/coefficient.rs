//! What a fit says about one coefficient: measured (the value, rounded for the file, and how
//! well it fits) or not measured (why), and the base value it would otherwise keep.
//!
//! Imports nothing from the crate.

/// Significant digits of a fitted value in the written file: more would be false precision.
pub(crate) const SIGNIFICANT_DIGITS: usize = 3;

/// One coefficient's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Coefficient {
    /// Dotted key in the calibration file, e.g. `api_server.cpu_seconds_per_list`.
    pub key: &'static str,
    /// Its value in the base calibration.
    pub base: f64,
    /// Runs the fit used.
    pub runs: usize,
    pub outcome: Outcome,
}

/// Whether a coefficient was measured.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Fitted; `value` is what the new file holds (rounded to three significant digits).
    Measured { value: f64, quality: Quality },
    /// Not identifiable from these runs: the file keeps the base value.
    NotMeasured { reason: String },
}

/// How well a fit matches its runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Quality {
    /// RMS of the fit's residuals over the RMS of what it fits (0.12 reads as ±12%). Shared by
    /// the coefficients of one fit.
    pub relative_rms: f64,
    /// Coefficient of determination of the fit, where it has one.
    pub r_squared: Option<f64>,
    /// This coefficient's standard error over its value, where the fit has more runs than
    /// unknowns.
    pub relative_standard_error: Option<f64>,
    /// A caveat that travels with the value into the file's comment.
    pub note: Option<&'static str>,
}

impl Coefficient {
    /// The value the new file holds: the measured one, or the base one.
    #[must_use]
    pub fn value(&self) -> f64 {
        match self.outcome {
            Outcome::Measured { value, .. } => value,
            Outcome::NotMeasured { .. } => self.base,
        }
    }
}

/// A measured outcome with `value` rounded for the file, or not measured if it is not a
/// positive finite number.
pub(crate) fn measured(value: f64, quality: Quality) -> Outcome {
    let rounded = sig(value);
    if rounded.is_finite() && rounded > 0.0 {
        Outcome::Measured {
            value: rounded,
            quality,
        }
    } else {
        Outcome::NotMeasured {
            reason: format!("the fit gave {value}, not a positive number"),
        }
    }
}

/// `value` rounded to [`SIGNIFICANT_DIGITS`] (through its decimal text: no binary residue).
pub(crate) fn sig(value: f64) -> f64 {
    format!("{value:.prec$e}", prec = SIGNIFICANT_DIGITS - 1)
        .parse()
        .unwrap_or(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quality() -> Quality {
        Quality {
            relative_rms: 0.0,
            r_squared: None,
            relative_standard_error: None,
            note: None,
        }
    }

    #[test]
    fn values_are_rounded_to_three_significant_digits() {
        assert_eq!(sig(65536.0), 65500.0);
        assert_eq!(sig(3.14159e-6), 3.14e-6);
        assert_eq!(
            measured(3.14159e-6, quality()),
            Outcome::Measured {
                value: 3.14e-6,
                quality: quality()
            }
        );
    }

    #[test]
    fn a_value_that_is_not_a_positive_number_is_not_measured() {
        for value in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(
                matches!(measured(value, quality()), Outcome::NotMeasured { reason }
                    if reason.contains("not a positive number")),
                "{value}"
            );
        }
        let c = Coefficient {
            key: "k",
            base: 7.0,
            runs: 0,
            outcome: measured(0.0, quality()),
        };
        assert_eq!(c.value(), c.base);
    }
}
