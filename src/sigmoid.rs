//! The sigmoid (binary and multi-label) focal loss over slices.
//!
//! Every call validates lengths and targets first (one vectorized pass over the
//! targets), then runs one kernel chosen for the gamma kind and target kind. Input
//! slices are never written; on error the output slice may be partly written.

use crate::dispatch::Backend;
use crate::params::{reduction_scale, Alpha, Error, Focal, Reduction, SoftTargets};
use crate::simd::kernel::{Coeffs, Mode, TargetScan, HARD, SOFT_EXP_NEG_BCE, SOFT_TORCHVISION};

/// Largest integer part of gamma applied by multiplication on the general path.
const MAX_INT_POWER: f32 = 8.0;

impl Focal {
    /// Elementwise focal loss: `out[i] = FL(logits[i], targets[i])` (0 for ignored).
    ///
    /// Errors: lengths differ, or a target is outside `[0, 1]` and not -1.
    pub fn loss(&self, logits: &[f32], targets: &[f32], out: &mut [f32]) -> Result<(), Error> {
        let (backend, soft, _) = self.prepare(logits, targets, Some(("out", out.len())))?;
        let c = self.coeffs(1.0);
        backend.focal(Mode::Loss, soft, &c, logits, targets, out);
        Ok(())
    }

    /// Reduced focal loss (`Sum`, `Mean` over non-ignored elements, or divided by a
    /// normaliser). Empty input, or `Mean` with every element ignored, gives 0.
    pub fn loss_reduced(
        &self,
        logits: &[f32],
        targets: &[f32],
        reduction: Reduction,
    ) -> Result<f32, Error> {
        let (backend, soft, scan) = self.prepare(logits, targets, None)?;
        let Some(scale) = reduction_scale(reduction, scan.active)? else {
            return Ok(0.0);
        };
        let c = self.coeffs(scale);
        let sum = backend.focal(Mode::Sum, soft, &c, logits, targets, &mut []);
        let sum = finite_or_recomputed(sum, backend, soft, &c, logits, targets);
        Ok((sum * scale) as f32)
    }

    /// Elementwise gradient: `out[i] = d FL(logits[i], targets[i]) / d logits[i]`
    /// (0 for ignored elements).
    pub fn grad(&self, logits: &[f32], targets: &[f32], out: &mut [f32]) -> Result<(), Error> {
        let (backend, soft, _) = self.prepare(logits, targets, Some(("grad", out.len())))?;
        let c = self.coeffs(1.0);
        backend.focal(Mode::Grad, soft, &c, logits, targets, out);
        Ok(())
    }

    /// Fused loss and gradient in one pass: returns the reduced loss and writes into
    /// `grad` the gradient of that reduced loss with respect to each logit (what
    /// `loss.backward()` gives). `Mean` with every element ignored gives 0 and a zero
    /// gradient.
    pub fn loss_and_grad(
        &self,
        logits: &[f32],
        targets: &[f32],
        reduction: Reduction,
        grad: &mut [f32],
    ) -> Result<f32, Error> {
        let (backend, soft, scan) = self.prepare(logits, targets, Some(("grad", grad.len())))?;
        let Some(scale) = reduction_scale(reduction, scan.active)? else {
            grad.fill(0.0);
            return Ok(0.0);
        };
        let c = self.coeffs(scale);
        let sum = backend.focal(Mode::Fused, soft, &c, logits, targets, grad);
        let sum = finite_or_recomputed(sum, backend, soft, &c, logits, targets);
        Ok((sum * scale) as f32)
    }

    /// Checks lengths and targets; returns the backend, the target kind and the scan.
    fn prepare(
        &self,
        logits: &[f32],
        targets: &[f32],
        out: Option<(&'static str, usize)>,
    ) -> Result<(Backend, u8, TargetScan), Error> {
        check_len("targets", logits.len(), targets.len())?;
        if let Some((name, len)) = out {
            check_len(name, logits.len(), len)?;
        }
        // A pinned backend was checked when pinned; the active one is available by
        // construction. Check again anyway: it is one relaxed load.
        let backend = self.backend();
        if !backend.is_available() {
            return Err(Error::BackendUnavailable(backend));
        }
        let scan = backend.scan(targets);
        if let Some(index) = scan.first_invalid {
            let value = targets.get(index).copied().unwrap_or(f32::NAN);
            return Err(Error::InvalidTarget { index, value });
        }
        let soft = match (scan.any_soft, self.soft) {
            (false, _) => HARD,
            (true, SoftTargets::Torchvision) => SOFT_TORCHVISION,
            (true, SoftTargets::ExpNegBce) => SOFT_EXP_NEG_BCE,
        };
        Ok((backend, soft, scan))
    }

    /// Kernel coefficients for a reduction scale; products with the scale are
    /// rounded once, from f64.
    pub(crate) fn coeffs(&self, scale: f64) -> Coeffs {
        let (a_pos, a_neg) = match self.alpha {
            Alpha::Off => (1.0, 1.0),
            Alpha::Balanced(a) => (f64::from(a), 1.0 - f64::from(a)),
            Alpha::Uniform(a) => (f64::from(a), f64::from(a)),
        };
        // gamma = n + frac with n <= 8 applied by multiplication; above 8 all of it
        // goes through exp (frac = gamma, exact).
        let n = if self.gamma <= MAX_INT_POWER {
            libm::floorf(self.gamma)
        } else {
            0.0
        };
        Coeffs {
            gamma: self.gamma,
            n: n as u32,
            frac: self.gamma - n,
            a_pos: a_pos as f32,
            a_neg: a_neg as f32,
            a_diff: (a_pos - a_neg) as f32,
            ga_pos: (a_pos * scale) as f32,
            ga_neg: (a_neg * scale) as f32,
        }
    }
}

/// The kernels sum in f32 lanes (Kahan). When that sum is not finite (an infinite
/// logit, NaN, or finite losses whose f32 sum overflows), the losses are summed
/// again in f64, a stack chunk at a time: f64 cannot overflow there, an infinite
/// loss stays infinite (Kahan's correction would have made it NaN), and NaN stays
/// NaN. This path costs a second pass and only runs in those cases.
fn finite_or_recomputed(
    sum: f64,
    backend: Backend,
    soft: u8,
    c: &Coeffs,
    logits: &[f32],
    targets: &[f32],
) -> f64 {
    if sum.is_finite() {
        return sum;
    }
    let mut buf = [0.0f32; 256];
    let mut total = 0.0f64;
    for (x, t) in logits.chunks(buf.len()).zip(targets.chunks(buf.len())) {
        let out = &mut buf[..x.len()];
        backend.focal(Mode::Loss, soft, c, x, t, out);
        total += out.iter().map(|&v| f64::from(v)).sum::<f64>();
    }
    total
}

fn check_len(slice: &'static str, expected: usize, actual: usize) -> Result<(), Error> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::LengthMismatch {
            slice,
            expected,
            actual,
        })
    }
}

/// Elementwise `sigmoid(x) = 1/(1 + e^-x)` on the active backend, never formed as
/// `1 - p` (max error 1.5 ULP).
pub fn sigmoid(x: &[f32], out: &mut [f32]) -> Result<(), Error> {
    Backend::active().sigmoid(x, out)
}

/// Elementwise `softplus(x) = ln(1 + e^x)` on the active backend (max error 2 ULP).
pub fn softplus(x: &[f32], out: &mut [f32]) -> Result<(), Error> {
    Backend::active().softplus(x, out)
}

/// Elementwise `ln(sigmoid(x))` on the active backend (max error 2 ULP).
pub fn log_sigmoid(x: &[f32], out: &mut [f32]) -> Result<(), Error> {
    Backend::active().log_sigmoid(x, out)
}
