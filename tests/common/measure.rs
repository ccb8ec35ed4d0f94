//! Measuring an `f32` result against an `f64` reference: ULP distance and an
//! (effectively) exact sum.

/// 2^-149, the smallest positive `f32` (subnormal): the absolute error floor.
pub const MIN_SUBNORMAL: f64 = 1.401_298_464_324_817e-45;

/// The spacing of `f32` at `v` rounded to `f32`: `2^(e-23)` for a normal value with
/// exponent `e`, `2^-149` below the normal range. A reference that rounds to
/// infinity gets the spacing at `f32::MAX`.
pub fn ulp_f32(v: f64) -> f64 {
    let r = (v as f32).abs();
    let r = if r.is_finite() { r } else { f32::MAX };
    if r < f32::MIN_POSITIVE {
        return MIN_SUBNORMAL;
    }
    let biased = (r.to_bits() >> 23) as i32;
    2f64.powi(biased - 127 - 23)
}

/// `|got - reference|` in ULP of `f32` at `scale` (`|reference|` unless the reference
/// is a difference of larger terms, see `reference::Point::grad_scale`).
pub fn ulp_error(got: f32, reference: f64, scale: f64) -> f64 {
    (f64::from(got) - reference).abs() / ulp_f32(scale)
}

/// Whether `v` rounded to `f32` is a normal number (non-zero, not subnormal).
pub fn rounds_to_normal(v: f64) -> bool {
    (v as f32).abs() >= f32::MIN_POSITIVE
}

/// Neumaier's compensated sum in `f64`. For the sums in the tests (at most ~10^7
/// terms of one sign) its relative error is below `2 * 2^-53 + n * 2^-106`, about
/// `2e-16`: exact as far as an `f32` result can tell.
#[derive(Clone, Copy, Debug, Default)]
pub struct Neumaier {
    sum: f64,
    comp: f64,
}

impl Neumaier {
    /// Adds one term.
    pub fn add(&mut self, v: f64) {
        let t = self.sum + v;
        if self.sum.abs() >= v.abs() {
            self.comp += (self.sum - t) + v;
        } else {
            self.comp += (v - t) + self.sum;
        }
        self.sum = t;
    }

    /// The compensated total.
    pub fn total(&self) -> f64 {
        self.sum + self.comp
    }
}

/// The compensated sum of a sequence.
pub fn exact_sum(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut s = Neumaier::default();
    for v in values {
        s.add(v);
    }
    s.total()
}
