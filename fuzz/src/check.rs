//! The value checks every oracle uses: an `f32` result against an `f64` reference
//! within a bar in ULP (absolute floor 2^-149), with the special values decided
//! exactly, and a list of failures with their context.

use crate::measure::{ulp_error, ulp_f32};

/// Max error of the sigmoid focal loss and gradient (src/lib.rs "Error bounds"): 8 ULP
/// for gamma <= 3, 16 for gamma <= 8. Above 8 nothing is documented: `None`.
pub fn focal_bar(gamma: f32) -> Option<f64> {
    if gamma <= 3.0 {
        Some(8.0)
    } else if gamma <= 8.0 {
        Some(16.0)
    } else {
        None
    }
}

/// Max error of a reduced loss against the exact sum of the crate's own elementwise
/// losses times the scale (src/lib.rs: "`Sum` ... 4 ULP of the exact sum of the
/// elementwise losses").
pub const SUM_BAR: f64 = 4.0;

/// Bounds of the building blocks (src/dispatch.rs): sigmoid 1.5 ULP, softplus and
/// log_sigmoid 2 ULP.
pub const SIGMOID_BAR: f64 = 1.5;
/// See [`SIGMOID_BAR`].
pub const SOFTPLUS_BAR: f64 = 2.0;

/// Relative tolerance for gamma > 8, where no bound is documented: a sanity check
/// (sign, magnitude, no garbage), 2^-10, with an absolute floor of 2^-126 (results
/// near the subnormal range lose relative precision through the intermediates).
pub const LOOSE_REL: f64 = 1.0 / 1024.0;

/// Collected failures of one case.
#[derive(Default, Debug)]
pub struct Failures {
    /// One line each.
    pub lines: Vec<String>,
}

impl Failures {
    /// Adds a failure.
    pub fn push(&mut self, line: String) {
        // A broken kernel fails on every element: keep the report readable.
        if self.lines.len() < 20 {
            self.lines.push(line);
        } else if self.lines.len() == 20 {
            self.lines.push("... (more failures left out)".into());
        }
    }

    /// Ok when nothing failed, else every line.
    pub fn into_result(self) -> Result<(), String> {
        if self.lines.is_empty() {
            Ok(())
        } else {
            Err(self.lines.join("\n"))
        }
    }
}

/// Describes an `f32` exactly.
pub fn show(v: f32) -> String {
    format!("{v:e} ({:#010x})", v.to_bits())
}

/// Checks `got` against the reference `want` (finite input: the reference is finite
/// or a genuine overflow/infinity): a reference that rounds to a finite `f32` needs
/// a finite `got` within `bar` ULP at `scale`; one that rounds to +-inf needs the
/// same infinity, or a finite value within `bar` ULP of `+-f32::MAX` (the exact value
/// sits at the rounding edge). Returns the error description, if any.
pub fn within(got: f32, want: f64, scale: f64, bar: f64) -> Option<String> {
    if want.is_nan() {
        return (!got.is_nan()).then(|| format!("got {}, want NaN", show(got)));
    }
    let w32 = want as f32;
    if w32.is_infinite() {
        let max = f64::from(f32::MAX).copysign(want);
        let ok = got == w32 || (got.is_finite() && ulp_error(got, max, max) <= bar);
        return (!ok).then(|| format!("got {}, want {want:e} (overflows f32)", show(got)));
    }
    if !got.is_finite() {
        return Some(format!("got {} for a finite reference {want:e}", show(got)));
    }
    let e = ulp_error(got, want, scale);
    if e <= bar {
        None
    } else {
        let at = if scale == want.abs() {
            String::new()
        } else {
            format!(" (in ULP of the term scale {scale:e})")
        };
        Some(format!(
            "got {}, want {want:e} (f32 {}): {e:.2} ULP > {bar}{at}",
            show(got),
            show(w32)
        ))
    }
}

/// The loose check where no bound is documented: `|got - want| <= LOOSE_REL scale
/// + 2^-126` (`scale` as in [`within`]; the special values as there).
pub fn loosely(got: f32, want: f64, scale: f64) -> Option<String> {
    if want.is_nan() {
        return (!got.is_nan()).then(|| format!("got {}, want NaN", show(got)));
    }
    let w32 = want as f32;
    if w32.is_infinite() {
        let ok = got == w32
            || (got.is_finite() && (f64::from(got) - want).abs() <= LOOSE_REL * want.abs());
        return (!ok).then(|| format!("got {}, want {want:e} (overflows f32)", show(got)));
    }
    if !got.is_finite() {
        return Some(format!("got {} for a finite reference {want:e}", show(got)));
    }
    let tol = LOOSE_REL * scale + f64::from(f32::MIN_POSITIVE);
    let d = (f64::from(got) - want).abs();
    (d > tol).then(|| {
        format!(
            "got {}, want {want:e}: off by {d:e} > {tol:e} (loose check, gamma > 8)",
            show(got)
        )
    })
}

/// ULP of `v` at `f32` precision (re-export for the oracles).
pub fn ulp(v: f64) -> f64 {
    ulp_f32(v)
}

/// The exact sum of losses (all `>= 0`, or `+inf`, or NaN): NaN if any is NaN, `+inf`
/// if any is infinite (a compensated sum would turn `inf - inf` into NaN), else the
/// compensated sum.
pub fn sum_losses(values: impl IntoIterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.into_iter().collect();
    if v.iter().any(|x| x.is_nan()) {
        f64::NAN
    } else if let Some(&inf) = v.iter().find(|x| x.is_infinite()) {
        inf
    } else {
        crate::measure::exact_sum(v)
    }
}

/// A reduced loss against the exact sum of the reference losses times `scale`, for
/// `terms` losses each within `bar` ULP (absolute floor 2^-149) of the reference.
/// Derived bound: a term's error is at most `bar (2^-149 + 2^-23 |ref_i|)`; the
/// terms are `>= 0`, so they add up to `bar (terms 2^-149 + 2^-23 S)` with
/// `2^-23 S <= 2 ulp(S)`; the summation adds `SUM_BAR` ULP. So: `(2 bar + SUM_BAR)`
/// ULP of the result plus `terms bar 2^-149 scale` absolute.
pub fn within_sum(got: f32, want: f64, bar: f64, terms: usize, scale: f64) -> Option<String> {
    let w32 = want as f32;
    if want.is_nan() || w32.is_infinite() || !got.is_finite() {
        return within(got, want, want.abs(), 2.0 * bar + SUM_BAR);
    }
    let allowed = (2.0 * bar + SUM_BAR) * ulp_f32(want)
        + terms as f64 * bar * crate::measure::MIN_SUBNORMAL * scale;
    let d = (f64::from(got) - want).abs();
    (d > allowed).then(|| {
        format!(
            "got {}, want {want:e}: off by {d:e} > {allowed:e} ((2 x {bar} + {SUM_BAR}) ULP + \
             {terms} x {bar} x 2^-149 x {scale:e})",
            show(got)
        )
    })
}
