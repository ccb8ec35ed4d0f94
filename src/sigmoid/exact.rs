//! One element of the sigmoid focal loss in f64, for the results that the f32
//! kernels cannot carry: with `Reduction::DivideBy(n)`, `n < 1`, the gradient
//! `alpha_t q^gamma (...) / n` of a confident element is formed in f32 as a product
//! below the normal range (a subnormal's few bits, or 0) and then scaled up by the
//! weight `alpha_t / n`: a normal result with a subnormal's error. The same holds
//! for a reduced loss made of such elements. f64 has the range (down to 2^-1074,
//! while `alpha_t / n <= 2^126`) and the precision to carry them: each quantity is
//! one or two libm calls (< 1 ULP of f64) and products, so the f32 results are the
//! f64 values rounded once. Such elements are rare (a normaliser below 1, and a
//! logit beyond about 30 on the side of its target), so scalar f64 costs nothing
//! that matters. Not in compact builds (microcontrollers): f64 `exp` and `log1p`
//! would not fit the flash budget; the exception stays documented there.

use crate::params::SoftTargets;

/// `ln(1 + e^-|v|)`.
fn log1p_exp_neg_abs(v: f64) -> f64 {
    libm::log1p(libm::exp(-v.abs()))
}

/// `sigmoid(v)`, with no `1 - p` anywhere.
fn sigmoid(v: f64) -> f64 {
    let e = libm::exp(-v.abs());
    if v >= 0.0 {
        1.0 / (1.0 + e)
    } else {
        e / (1.0 + e)
    }
}

/// The per-element parameters of one call.
#[derive(Clone, Copy, Debug)]
pub(super) struct Element {
    /// Focusing parameter.
    pub gamma: f32,
    /// alpha for target 1.
    pub a_pos: f64,
    /// alpha for target 0.
    pub a_neg: f64,
    /// The soft-target form.
    pub soft: SoftTargets,
    /// The reduction's scale, applied to the gradient.
    pub scale: f64,
}

impl Element {
    /// `(loss, gradient times the scale)` of logit `x` with target `t` (0, 1 or in
    /// between; not ignored), in f64. NaN for a NaN logit; infinite logits give the
    /// kernels' limits (`0 * inf` never forms a NaN: BCE is clamped to `f32::MAX`
    /// where it multiplies, as in the kernels). `q` and `1 - q` are each formed
    /// without cancellation, and `ln q` from the smaller of the two: a huge gamma
    /// multiplies `ln q`, which a `q` rounded to 1 would make 0.
    pub(super) fn loss_and_grad(&self, x: f32, t: f32) -> (f64, f64) {
        let (x, t, g) = (f64::from(x), f64::from(t), f64::from(self.gamma));
        let a_t = self.a_pos * t + self.a_neg * (1.0 - t);
        if x.is_nan() {
            return (f64::NAN, f64::NAN);
        }
        if a_t == 0.0 {
            return (0.0, 0.0);
        }
        let max = f64::from(f32::MAX);
        // q^g from q and 1 - q.
        let pow = |q: f64, omq: f64| {
            if g == 0.0 {
                1.0
            } else if q <= 0.5 {
                libm::exp(g * libm::log(q))
            } else {
                libm::exp(g * libm::log1p(-omq))
            }
        };
        let (loss, grad) = if t == 0.0 || t == 1.0 {
            // z = s x with s = 2t - 1; q = 1 - p_t = sigmoid(-z), 1 - q = sigmoid(z),
            // BCE = softplus(-z); dFL/dx = -s alpha_t q^g (g (1 - q) BCE + q).
            let s = if t == 1.0 { 1.0 } else { -1.0 };
            let z = s * x;
            let (q, omq) = (sigmoid(-z), sigmoid(z));
            let bce = (-z).max(0.0) + log1p_exp_neg_abs(z);
            let qg = pow(q, omq);
            let inner = g * omq * bce.min(max) + q;
            (a_t * qg * bce, -s * qg * inner)
        } else {
            // Soft targets: BCE = softplus(x) - t x = l + w |x|, w = 1 - t for
            // x > 0, t otherwise (no cancellation); p - t without cancellation
            // error beyond the terms' own (1 - t is exact in f64).
            let w = if x > 0.0 { 1.0 - t } else { t };
            let bce = w * x.abs() + log1p_exp_neg_abs(x);
            let bce_c = bce.min(max);
            let (p, pm) = (sigmoid(x), sigmoid(-x));
            let pmt = if x < 0.0 { p - t } else { (1.0 - t) - pm };
            let (qg, factor) = match self.soft {
                SoftTargets::Torchvision => {
                    // q = (1 - p) t + p (1 - t) >= min(t, 1 - t) > 0, and
                    // 1 - q = p t + (1 - p)(1 - t); dq/dx = p (1 - p) (1 - 2t).
                    let q = pm * t + p * (1.0 - t);
                    let omq = p * t + pm * (1.0 - t);
                    let dq = p * pm * (1.0 - 2.0 * t);
                    (pow(q, omq), g * (bce_c * (dq / q)) + pmt)
                }
                SoftTargets::ExpNegBce => {
                    // q = 1 - e^-BCE; dq/dx = e^-BCE (p - t); the factor
                    // (p - t)(1 + g BCE e^-BCE / q), its second term clamped to
                    // finite as in the kernels.
                    let ex = libm::exp(-bce);
                    let q = -libm::expm1(-bce);
                    let r = if q > 0.0 { bce_c * ex / q } else { 0.0 };
                    (pow(q, ex), pmt * (1.0 + g * r).min(max))
                }
            };
            // An infinite BCE (infinite x) gives an infinite loss: q > 0.
            let loss = if bce == f64::INFINITY {
                bce
            } else {
                a_t * qg * bce
            };
            (loss, qg * factor)
        };
        (loss, (a_t * self.scale) * grad)
    }
}
