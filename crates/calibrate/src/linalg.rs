//! The linear algebra the fits share: least squares through the origin and with an intercept,
//! Householder QR (which also tells dependent columns apart), standard errors, and
//! non-negative least squares; plus the fit statistics (relative RMS, R²) of a [`Quality`].
//!
//! Hand-written rather than a dependency: the largest problem is four unknowns over a few dozen
//! runs, and a linear algebra crate plus an NNLS crate on top would outweigh these lines.
//! Imports only [`Quality`] from the crate.

use crate::coefficient::Quality;

pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

pub(crate) fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// `‖residuals‖ / ‖values‖`: the RMS of the residuals over the RMS of what was fitted.
pub(crate) fn relative_rms(residuals: &[f64], values: &[f64]) -> f64 {
    let (r, v) = (norm(residuals), norm(values));
    if r == 0.0 {
        0.0
    } else if v > 0.0 {
        r / v
    } else {
        f64::INFINITY
    }
}

/// `1 − SS_res / SS_tot` (about the mean), for two or more values that vary.
pub(crate) fn r_squared(residuals: &[f64], values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let total: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
    (total > 0.0).then(|| 1.0 - dot(residuals, residuals) / total)
}

/// Least squares `y ≈ k·x`: `k` and the fit's quality, or `None` if every `x` is 0.
pub(crate) fn slope_through_origin(x: &[f64], y: &[f64]) -> Option<(f64, Quality)> {
    let xx = dot(x, x);
    if !(xx.is_finite() && xx > 0.0) {
        return None;
    }
    let k = dot(x, y) / xx;
    let residuals: Vec<f64> = x.iter().zip(y).map(|(x, y)| y - k * x).collect();
    Some(slope_fit(k, &residuals, y, xx, 1))
}

/// Least squares `y ≈ a + k·x`: `k` and the fit's quality, or `None` unless `x` varies.
pub(crate) fn slope_with_intercept(x: &[f64], y: &[f64]) -> Option<(f64, Quality)> {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxx: f64 = x.iter().map(|x| (x - mx).powi(2)).sum();
    if !(sxx.is_finite() && sxx > 0.0) {
        return None;
    }
    let k = x
        .iter()
        .zip(y)
        .map(|(x, y)| (x - mx) * (y - my))
        .sum::<f64>()
        / sxx;
    let a = my - k * mx;
    let residuals: Vec<f64> = x.iter().zip(y).map(|(x, y)| y - a - k * x).collect();
    Some(slope_fit(k, &residuals, y, sxx, 2))
}

/// A fitted slope `k` with the quality of its fit to `y`: `spread` is what its standard error
/// divides by (Σx², or Σ(x − x̄)² with an intercept), `unknowns` the parameters fitted.
fn slope_fit(k: f64, residuals: &[f64], y: &[f64], spread: f64, unknowns: usize) -> (f64, Quality) {
    let dof = y.len().saturating_sub(unknowns);
    let se = (dof > 0 && k != 0.0)
        .then(|| (dot(residuals, residuals) / dof as f64 / spread).sqrt() / k.abs());
    let quality = Quality {
        relative_rms: relative_rms(residuals, y),
        r_squared: r_squared(residuals, y),
        relative_standard_error: se,
        note: None,
    };
    (k, quality)
}

/// Householder QR of the columns `a` (each as long as `b`), applied to `b` as well: returns the
/// upper-triangular `R` (row-major) and the first `a.len()` entries of `Qᵀb`, or `None` when a
/// column is, to rounding, a combination of the ones before it (or there are more columns than
/// rows).
pub(crate) fn qr(a: &[&[f64]], b: &[f64]) -> Option<(Vec<Vec<f64>>, Vec<f64>)> {
    let (k, m) = (a.len(), b.len());
    if k > m {
        return None;
    }
    let mut w: Vec<Vec<f64>> = a.iter().map(|c| c.to_vec()).collect();
    let mut qb = b.to_vec();
    for j in 0..k {
        let original = norm(a[j]);
        let length = norm(&w[j][j..]);
        if !(original > 0.0 && length > 1e-9 * original) {
            return None;
        }
        let alpha = if w[j][j] > 0.0 { -length } else { length };
        let mut v = w[j][j..].to_vec();
        v[0] -= alpha;
        let vv = dot(&v, &v);
        let reflect = |target: &mut [f64]| {
            let f = 2.0 * dot(&v, target) / vv;
            for (t, vi) in target.iter_mut().zip(&v) {
                *t -= f * vi;
            }
        };
        for column in &mut w[j..] {
            reflect(&mut column[j..]);
        }
        reflect(&mut qb[j..]);
    }
    let r = (0..k)
        .map(|row| {
            (0..k)
                .map(|col| if col >= row { w[col][row] } else { 0.0 })
                .collect()
        })
        .collect();
    qb.truncate(k);
    Some((r, qb))
}

/// Solves `R x = y` for upper-triangular `R`.
fn back_substitute(r: &[Vec<f64>], y: &[f64]) -> Vec<f64> {
    let k = y.len();
    let mut x = vec![0.0; k];
    for i in (0..k).rev() {
        let known: f64 = (i + 1..k).map(|j| r[i][j] * x[j]).sum();
        x[i] = (y[i] - known) / r[i][i];
    }
    x
}

/// Least squares `min ‖A x − b‖` over the columns `a`, or `None` if they are dependent.
fn lstsq(a: &[&[f64]], b: &[f64]) -> Option<Vec<f64>> {
    let (r, qb) = qr(a, b)?;
    Some(back_substitute(&r, &qb))
}

/// Standard errors of a least-squares fit over the columns `a` with these residuals:
/// `sqrt(σ² · diag((AᵀA)⁻¹))`, `σ² = ‖r‖² / (m − k)`; `None` without spare runs.
pub(crate) fn standard_errors(a: &[&[f64]], residuals: &[f64]) -> Option<Vec<f64>> {
    let (k, m) = (a.len(), residuals.len());
    if k == 0 || m <= k {
        return None;
    }
    let (r, _) = qr(a, residuals)?;
    let sigma2 = dot(residuals, residuals) / (m - k) as f64;
    // (AᵀA)⁻¹ = R⁻¹ R⁻ᵀ: its diagonal is the squared row norms of R⁻¹.
    let columns: Vec<Vec<f64>> = (0..k)
        .map(|c| {
            let unit: Vec<f64> = (0..k).map(|i| if i == c { 1.0 } else { 0.0 }).collect();
            back_substitute(&r, &unit)
        })
        .collect();
    Some(
        (0..k)
            .map(|i| (sigma2 * columns.iter().map(|c| c[i] * c[i]).sum::<f64>()).sqrt())
            .collect(),
    )
}

/// Non-negative least squares, `min ‖A x − b‖` subject to `x ≥ 0`, over the columns `a`
/// (Lawson & Hanson's active-set method, *Solving Least Squares Problems*, 1974, ch. 23).
///
/// The columns must be independent (the caller checks, with [`qr`]).
pub(crate) fn nnls(a: &[Vec<f64>], b: &[f64]) -> Vec<f64> {
    let k = a.len();
    let mut x = vec![0.0; k];
    let mut passive = vec![false; k];
    let tolerance = 1e-12 * norm(b).max(f64::MIN_POSITIVE);
    let residual = |x: &[f64]| -> Vec<f64> {
        (0..b.len())
            .map(|i| b[i] - (0..k).map(|j| a[j][i] * x[j]).sum::<f64>())
            .collect()
    };
    // Each outer step frees one coefficient; the bound only guards against rounding cycles.
    for _ in 0..3 * k + 3 {
        let r = residual(&x);
        let gradient: Vec<f64> = a.iter().map(|column| dot(column, &r)).collect();
        let Some(t) = (0..k)
            .filter(|&j| !passive[j] && gradient[j] > tolerance)
            .max_by(|&i, &j| gradient[i].total_cmp(&gradient[j]))
        else {
            break;
        };
        passive[t] = true;
        for _ in 0..=k {
            let p: Vec<usize> = (0..k).filter(|&j| passive[j]).collect();
            let columns: Vec<&[f64]> = p.iter().map(|&j| a[j].as_slice()).collect();
            let Some(solution) = lstsq(&columns, b) else {
                passive[t] = false;
                return x;
            };
            let mut s = vec![0.0; k];
            for (&j, v) in p.iter().zip(solution) {
                s[j] = v;
            }
            if p.iter().all(|&j| s[j] > 0.0) {
                x = s;
                break;
            }
            // Step from x towards s until the first coefficient reaches 0, and drop it.
            let alpha = p
                .iter()
                .filter(|&&j| s[j] <= 0.0)
                .map(|&j| x[j] / (x[j] - s[j]))
                .fold(1.0, f64::min);
            for j in 0..k {
                x[j] += alpha * (s[j] - x[j]);
            }
            for &j in &p {
                if x[j] <= 1e-15 * norm(&x).max(f64::MIN_POSITIVE) {
                    passive[j] = false;
                    x[j] = 0.0;
                }
            }
        }
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn nnls_clamps_a_coefficient_the_data_wants_negative() {
        // b = 2·a0 − 1·a1: the unconstrained fit has x1 < 0; NNLS sets it to 0 and refits x0
        // alone.
        let a0 = vec![1.0, 0.0, 1.0, 1.0];
        let a1 = vec![0.0, 1.0, 1.0, 0.0];
        let b: Vec<f64> = a0.iter().zip(&a1).map(|(x, y)| 2.0 * x - y).collect();
        let x = nnls(&[a0.clone(), a1], &b);
        assert_eq!(x[1], 0.0);
        let expected = dot(&a0, &b) / dot(&a0, &a0);
        assert!(close(x[0], expected), "{x:?}");
    }

    #[test]
    fn nnls_gives_the_least_squares_answer_when_it_is_non_negative() {
        let (k0, k1) = (2.0, 1.0);
        let a = vec![vec![1.0, 2.0, 3.0, 4.0], vec![1.0, 1.0, 1.0, 1.0]];
        let b: Vec<f64> = (0..4).map(|i| k0 * a[0][i] + k1 * a[1][i]).collect();
        let x = nnls(&a, &b);
        assert!(close(x[0], k0) && close(x[1], k1), "{x:?}");
    }

    #[test]
    fn qr_refuses_a_column_that_is_a_combination_of_the_others() {
        let a0 = [1.0, 2.0, 3.0];
        let a1 = [0.0, 1.0, 1.0];
        let sum: Vec<f64> = a0.iter().zip(&a1).map(|(x, y)| 3.0 * x - 2.0 * y).collect();
        let b = [1.0, 1.0, 1.0];
        assert!(qr(&[&a0, &a1], &b).is_some());
        assert!(qr(&[&a0, &a1, &sum], &b).is_none());
        // More columns than rows, and a zero column.
        assert!(qr(&[&a0, &a1, &[1.0, 0.0, 0.0], &[0.0, 0.0, 1.0]], &b).is_none());
        assert!(qr(&[&[0.0, 0.0, 0.0]], &b).is_none());
    }

    #[test]
    fn slopes_of_exact_lines_are_exact_and_their_quality_perfect() {
        let x = [1.0, 2.0, 4.0, 8.0];
        let (k, a) = (3.5, 10.0);
        let through_origin: Vec<f64> = x.iter().map(|x| k * x).collect();
        let (got, quality) = slope_through_origin(&x, &through_origin).expect("x varies");
        assert!(close(got, k), "{got}");
        assert_eq!(quality.relative_rms, 0.0);
        assert_eq!(quality.r_squared, Some(1.0));
        assert_eq!(quality.relative_standard_error, Some(0.0));

        let with_intercept: Vec<f64> = x.iter().map(|x| a + k * x).collect();
        let (got, quality) = slope_with_intercept(&x, &with_intercept).expect("x varies");
        assert!(close(got, k), "{got}");
        assert!(quality.relative_rms < 1e-12, "{quality:?}");
        assert!(
            quality.r_squared.is_some_and(|r2| close(r2, 1.0)),
            "{quality:?}"
        );

        assert!(slope_through_origin(&[0.0, 0.0], &[1.0, 2.0]).is_none());
        assert!(slope_with_intercept(&[3.0, 3.0], &[1.0, 2.0]).is_none());
    }

    #[test]
    fn the_standard_error_of_a_slope_is_the_textbook_one() {
        // y = k·x + e through the origin: se(k) = sqrt(Σe² / (n − 1) / Σx²).
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let e = [0.1, -0.2, 0.05, 0.15, -0.1];
        let k = 2.0;
        let y: Vec<f64> = x.iter().zip(&e).map(|(x, e)| k * x + e).collect();
        let (slope, quality) = slope_through_origin(&x, &y).expect("x varies");
        let residuals: Vec<f64> = x.iter().zip(&y).map(|(x, y)| y - slope * x).collect();
        let want = (dot(&residuals, &residuals) / 4.0 / dot(&x, &x)).sqrt();
        let se = quality.relative_standard_error.expect("spare runs") * slope;
        assert!(close(se, want), "{se} vs {want}");
        // The general QR route agrees for one column.
        let general = standard_errors(&[&x], &residuals).expect("spare runs");
        assert!(close(general[0], want), "{general:?} vs {want}");
        assert!(standard_errors(&[&x], &residuals[..1]).is_none());
    }

    #[test]
    fn fit_statistics_handle_the_edges() {
        assert_eq!(relative_rms(&[0.0, 0.0], &[0.0, 0.0]), 0.0);
        assert_eq!(relative_rms(&[1.0], &[0.0]), f64::INFINITY);
        assert!(close(relative_rms(&[3.0], &[-4.0, 0.0]), 0.75));
        assert_eq!(r_squared(&[0.0], &[1.0]), None);
        assert_eq!(r_squared(&[0.0, 0.0], &[2.0, 2.0]), None);
    }
}
