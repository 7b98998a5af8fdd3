//! The report for people: one line per coefficient — its base and fitted values, the runs the
//! fit used, and how well it fits or why it was not measured.
//!
//! Imports [`coefficient`](crate::coefficient) and [`output`](crate::output)'s number formats.

use crate::coefficient::{Coefficient, Outcome};
use crate::output::{percent, sci};

/// The table: a header line, then one line per coefficient, in the given order.
pub(crate) fn table(coefficients: &[Coefficient]) -> String {
    let width = coefficients.iter().map(|c| c.key.len()).max().unwrap_or(0);
    let mut text = format!(
        "{:<width$}  {:>9}  {:>9}  {:>4}  fit\n",
        "coefficient", "base", "fitted", "runs"
    );
    for c in coefficients {
        let (value, fit) = match &c.outcome {
            Outcome::Measured { value, quality } => {
                let mut fit = format!("±{}% rms", percent(quality.relative_rms));
                if let Some(r2) = quality.r_squared {
                    fit += &format!(", R² {r2:.4}");
                }
                if let Some(se) = quality.relative_standard_error {
                    fit += &format!(", std. error ±{}%", percent(se));
                }
                if let Some(note) = quality.note {
                    fit += &format!("; {note}");
                }
                (sci(*value), fit)
            }
            Outcome::NotMeasured { reason } => {
                ("(base)".to_owned(), format!("not measured: {reason}"))
            }
        };
        text += &format!(
            "{:<width$}  {:>9}  {:>9}  {:>4}  {fit}\n",
            c.key,
            sci(c.base),
            value,
            c.runs
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coefficient::Quality;

    #[test]
    fn one_aligned_line_per_coefficient() {
        let coefficients = [
            Coefficient {
                key: "api_server.cpu_seconds_per_list",
                base: 5e-3,
                runs: 25,
                outcome: Outcome::Measured {
                    value: 3.12e-3,
                    quality: Quality {
                        relative_rms: 0.36,
                        r_squared: Some(0.80061),
                        relative_standard_error: Some(0.36),
                        note: Some("a caveat"),
                    },
                },
            },
            Coefficient {
                key: "apf.objects_per_list_seat",
                base: 100.0,
                runs: 5,
                outcome: Outcome::NotMeasured {
                    reason: "every LIST at the cap".to_owned(),
                },
            },
        ];
        assert_eq!(
            table(&coefficients),
            "\
coefficient                           base     fitted  runs  fit
api_server.cpu_seconds_per_list   5.00e-03   3.12e-03    25  ±36% rms, R² 0.8006, std. error ±36%; a caveat
apf.objects_per_list_seat         1.00e+02     (base)     5  not measured: every LIST at the cap
"
        );
    }
}
