//! The calibration file the fit writes: the base file's text with `source` and every measured
//! key replaced, each measured key under a `# measured: VALUE ±N% rms residual (R runs)`
//! comment (replacing an earlier one); everything else, comments included, as it was. Also the
//! number formats people read, in the file's comments and in the report.
//!
//! Imports [`coefficient`](crate::coefficient) only.

use toml_edit::{DocumentMut, Item, Table, Value};

use crate::coefficient::{Coefficient, Outcome, Quality, SIGNIFICANT_DIGITS};

/// The prefix of the comment line written above a fitted key.
pub(crate) const MEASURED: &str = "# measured:";

/// The base text with `source` and every measured key replaced, each measured key under a
/// `# measured:` comment (replacing an earlier one); everything else, comments included, as it
/// was.
///
/// # Errors
/// What in `base_toml` cannot be edited in place: text that is not TOML, or a key that is
/// missing or not a plain `key = value` line in its `[section]` (e.g. an inline table).
pub(crate) fn write_toml(
    base_toml: &str,
    source: &str,
    coefficients: &[Coefficient],
) -> Result<String, String> {
    let mut doc: DocumentMut = base_toml.parse().map_err(|e| format!("{e}"))?;
    let cannot_edit = |key: &str| format!("no `{key} = …` line to replace");
    replace_value(doc.as_table_mut(), "source", Value::from(source))
        .ok_or_else(|| cannot_edit("source"))?;
    for c in coefficients {
        let Outcome::Measured { value, quality } = &c.outcome else {
            continue;
        };
        let missing = || cannot_edit(c.key);
        let (section, name) = c.key.split_once('.').ok_or_else(missing)?;
        let table = doc
            .as_table_mut()
            .get_mut(section)
            .and_then(Item::as_table_mut)
            .ok_or_else(missing)?;
        replace_value(table, name, float(*value)).ok_or_else(missing)?;
        let mut key = table.key_mut(name).ok_or_else(missing)?;
        let decor = key.leaf_decor_mut();
        let prefix = decor
            .prefix()
            .and_then(|p| p.as_str())
            .unwrap_or_default()
            .to_owned();
        let mut kept: String = prefix
            .split_inclusive('\n')
            .filter(|line| !line.trim_start().starts_with(MEASURED))
            .collect();
        // A prefix ends in the key's indentation (after its last newline): the comment goes
        // on a line of its own just above the key, indented as the key is.
        let indent_at = kept.rfind('\n').map_or(0, |i| i + 1);
        let indent = kept.split_off(indent_at);
        kept += &indent;
        kept += &measured_comment(*value, quality, c.runs);
        kept.push('\n');
        kept += &indent;
        decor.set_prefix(kept);
    }
    Ok(doc.to_string())
}

/// A TOML float written as people write them: `8.03e-6` rather than `0.00000803`.
fn float(value: f64) -> Value {
    let magnitude = value.abs();
    let text = if magnitude != 0.0 && !(1e-3..1e7).contains(&magnitude) {
        format!("{value:e}")
    } else {
        format!("{value:?}")
    };
    text.parse().unwrap_or_else(|_| Value::from(value))
}

/// Replaces the value of `name` in `table`, keeping the whitespace and comment around it.
fn replace_value(table: &mut Table, name: &str, mut value: Value) -> Option<()> {
    let old = table.get_mut(name)?.as_value_mut()?;
    *value.decor_mut() = old.decor().clone();
    *old = value;
    Some(())
}

/// `# measured: 3.10e-06 ±12% rms residual (14 runs)`, plus the fit's caveat.
fn measured_comment(value: f64, quality: &Quality, runs: usize) -> String {
    let plural = if runs == 1 { "" } else { "s" };
    let mut text = format!(
        "{MEASURED} {} ±{}% rms residual ({runs} run{plural})",
        sci(value),
        percent(quality.relative_rms)
    );
    if let Some(note) = quality.note {
        text += "; ";
        text += note;
    }
    text
}

/// `3.10e-06`: a value in scientific notation, three significant digits, as in the comments
/// and the report.
pub(crate) fn sci(value: f64) -> String {
    let text = format!("{value:.prec$e}", prec = SIGNIFICANT_DIGITS - 1);
    match text.split_once('e') {
        Some((mantissa, exponent)) => {
            let exponent: i32 = exponent.parse().unwrap_or(0);
            let sign = if exponent < 0 { '-' } else { '+' };
            format!("{mantissa}e{sign}{:02}", exponent.abs())
        }
        None => text,
    }
}

/// A fraction as a percentage for people: `0.123` → `12`, `0.0042` → `0.4`.
pub(crate) fn percent(fraction: f64) -> String {
    let p = fraction * 100.0;
    if !p.is_finite() {
        "?".to_owned()
    } else if p < 1.0 {
        format!("{p:.1}")
    } else {
        format!("{p:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quality(relative_rms: f64, note: Option<&'static str>) -> Quality {
        Quality {
            relative_rms,
            r_squared: None,
            relative_standard_error: None,
            note,
        }
    }

    fn measured(key: &'static str, value: f64, runs: usize) -> Coefficient {
        Coefficient {
            key,
            base: 1.0,
            runs,
            outcome: Outcome::Measured {
                value,
                quality: quality(0.12, None),
            },
        }
    }

    const BASE: &str = "\
# The file's own comment.
format_version = 1
source = \"old\" # where from

[section]
# About a.
# measured: 1.00e+00 ±1% rms residual (2 runs)
a = 1.0
  # About b, indented.
  b = 2 # trailing
c = 3.0
";

    #[test]
    fn measured_keys_get_a_fresh_comment_and_everything_else_stays() {
        let coefficients = [
            measured("section.a", 2.5e-6, 14),
            measured("section.b", 30500.0, 1),
            Coefficient {
                key: "section.c",
                base: 3.0,
                runs: 5,
                outcome: Outcome::NotMeasured {
                    reason: "no runs".to_owned(),
                },
            },
        ];
        let text = write_toml(BASE, "new \"quoted\"", &coefficients).expect("writes");
        assert_eq!(
            text,
            "\
# The file's own comment.
format_version = 1
source = 'new \"quoted\"' # where from

[section]
# About a.
# measured: 2.50e-06 ±12% rms residual (14 runs)
a = 2.5e-6
  # About b, indented.
  # measured: 3.05e+04 ±12% rms residual (1 run)
  b = 30500.0 # trailing
c = 3.0
"
        );
    }

    #[test]
    fn a_base_it_cannot_edit_in_place_is_an_error() {
        let coefficient = [measured("section.a", 2.0, 3)];
        for (base, key) in [
            ("source = \"s\"\nsection = { a = 1.0 }\n", "section.a"),
            ("source = \"s\"\n[section]\nb = 1.0\n", "section.a"),
            ("[section]\na = 1.0\n", "source"),
        ] {
            let err = write_toml(base, "x", &coefficient).expect_err(base);
            assert_eq!(err, format!("no `{key} = …` line to replace"));
        }
        assert!(write_toml("a = [", "x", &coefficient).is_err());
    }

    #[test]
    fn numbers_are_formatted_for_people() {
        assert_eq!(sci(3.1e-6), "3.10e-06");
        assert_eq!(sci(65536.0), "6.55e+04");
        assert_eq!(percent(0.123), "12");
        assert_eq!(percent(0.0042), "0.4");
        assert_eq!(percent(f64::INFINITY), "?");
        for (value, text) in [
            (8.03e-6, "8.03e-6"),
            (0.00203, "0.00203"),
            (30500.0, "30500.0"),
            (10.0, "10.0"),
            (2.5e9, "2.5e9"),
        ] {
            let written = float(value);
            assert_eq!(written.to_string().trim(), text);
            assert_eq!(written.as_float(), Some(value));
        }
        assert_eq!(
            measured_comment(3.1e-6, &quality(0.12, Some("an upper bound")), 14),
            "# measured: 3.10e-06 ±12% rms residual (14 runs); an upper bound"
        );
    }
}
