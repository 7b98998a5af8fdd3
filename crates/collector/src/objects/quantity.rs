//! Kubernetes resource quantities (`500m`, `128Mi`, `1e3`) as the numbers kube-state-metrics
//! exposes: `resource.Quantity`'s `Value()` (rounded up to an integer) and `MilliValue()`
//! (rounded up to thousandths), combined as its `convertValueToFloat64`. Exact integer
//! arithmetic, so a value matches Go's to the last bit.

/// `resource.MaxMilliValue`: above it, `MilliValue()` would overflow an `int64`.
const MAX_MILLI_VALUE: i64 = i64::MAX / 1000;

/// A parsed quantity: `sign × mantissa × 10^exp10 × 2^exp2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quantity {
    negative: bool,
    mantissa: u128,
    exp10: i32,
    exp2: u32,
}

impl Quantity {
    /// Parses the serialized form (`<signedNumber><suffix>`, the suffix one of `Ki`…`Ei`,
    /// `n u m k M G T P E`, or `e<int>`/`E<int>`). `None` for what the API server would not
    /// have accepted.
    pub(crate) fn parse(text: &str) -> Option<Quantity> {
        let text = text.trim();
        let (negative, rest) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(number_len);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return None;
        }
        let mut mantissa: u128 = 0;
        for digit in whole.bytes().chain(fraction.bytes()) {
            mantissa = mantissa
                .checked_mul(10)?
                .checked_add(u128::from(digit - b'0'))?;
        }
        let mut exp10 = -i32::try_from(fraction.len()).ok()?;
        let mut exp2 = 0;
        match suffix {
            "" => {}
            "Ki" => exp2 = 10,
            "Mi" => exp2 = 20,
            "Gi" => exp2 = 30,
            "Ti" => exp2 = 40,
            "Pi" => exp2 = 50,
            "Ei" => exp2 = 60,
            "n" => exp10 -= 9,
            "u" => exp10 -= 6,
            "m" => exp10 -= 3,
            "k" => exp10 += 3,
            "M" => exp10 += 6,
            "G" => exp10 += 9,
            "T" => exp10 += 12,
            "P" => exp10 += 15,
            "E" => exp10 += 18,
            exponent => {
                let digits = exponent
                    .strip_prefix('e')
                    .or_else(|| exponent.strip_prefix('E'))?;
                exp10 = exp10.checked_add(digits.parse::<i32>().ok()?)?;
            }
        }
        Some(Quantity {
            negative,
            mantissa,
            exp10,
            exp2,
        })
    }

    /// `Value()`: the quantity rounded up (away from zero) to an integer, saturating.
    pub(crate) fn value(self) -> i64 {
        self.scaled(0)
    }

    /// `MilliValue()`: the quantity × 1000, rounded up (away from zero), saturating.
    pub(crate) fn milli_value(self) -> i64 {
        self.scaled(3)
    }

    /// kube-state-metrics' `convertValueToFloat64`: `MilliValue() / 1000`, or `Value()` where
    /// the milli-value would overflow. What it exposes for CPU, and for every node resource.
    pub(crate) fn ksm_float(self) -> f64 {
        let value = self.value();
        if value > MAX_MILLI_VALUE {
            return value as f64;
        }
        self.milli_value() as f64 / 1000.0
    }

    /// `sign × ceil(|self| × 10^scale)`, saturating at the `i64` range.
    fn scaled(self, scale: i32) -> i64 {
        let saturated = if self.negative { i64::MIN } else { i64::MAX };
        let Some(mut numerator) = self.mantissa.checked_shl(self.exp2) else {
            return saturated;
        };
        if numerator >> self.exp2 != self.mantissa {
            return saturated;
        }
        let exp = self.exp10.saturating_add(scale);
        let magnitude = if exp >= 0 {
            match 10u128
                .checked_pow(exp.unsigned_abs())
                .and_then(|p| numerator.checked_mul(p))
            {
                Some(m) => m,
                None if numerator == 0 => 0,
                None => return saturated,
            }
        } else {
            match 10u128.checked_pow(exp.unsigned_abs()) {
                Some(divisor) => {
                    let rounded_up = numerator % divisor != 0;
                    numerator /= divisor;
                    numerator + u128::from(rounded_up)
                }
                // Smaller than any representable step: rounds up to one unit, or stays zero.
                None => u128::from(numerator != 0),
            }
        };
        let magnitude = i128::try_from(magnitude).unwrap_or(i128::MAX);
        let signed = if self.negative { -magnitude } else { magnitude };
        i64::try_from(signed).unwrap_or(saturated)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Quantity {
        Quantity::parse(text).unwrap_or_else(|| panic!("{text} parses"))
    }

    #[test]
    fn values_round_up_like_resource_quantity() {
        for (text, value, milli) in [
            ("0", 0, 0),
            ("1", 1, 1000),
            ("100m", 1, 100),
            ("63500m", 64, 63_500),
            ("1.5", 2, 1500),
            ("128Mi", 134_217_728, 134_217_728_000),
            ("262144Mi", 274_877_906_944, 274_877_906_944_000),
            ("500Gi", 536_870_912_000, 536_870_912_000_000),
            ("1k", 1000, 1_000_000),
            ("1e3", 1000, 1_000_000),
            ("1E-3", 1, 1),
            ("1n", 1, 1),
            ("2500u", 1, 3),
            ("110", 110, 110_000),
            ("-100m", -1, -100),
        ] {
            assert_eq!(
                (q(text).value(), q(text).milli_value()),
                (value, milli),
                "{text}"
            );
        }
    }

    #[test]
    fn ksm_floats_are_milli_values_over_a_thousand_until_they_would_overflow() {
        assert_eq!(q("100m").ksm_float(), 0.1);
        assert_eq!(q("63500m").ksm_float(), 63.5);
        assert_eq!(q("128Mi").ksm_float(), 134_217_728.0);
        // 8Ei is beyond an int64 altogether: saturated.
        assert_eq!(q("8Ei").ksm_float(), i64::MAX as f64);
        assert_eq!(q("9000P").ksm_float(), 9e18);
    }

    #[test]
    fn malformed_quantities_are_refused() {
        for text in ["", "m", "1.2.3", "1Xi", "1e", "--1", "1 Mi"] {
            assert_eq!(Quantity::parse(text), None, "{text:?}");
        }
    }
}
