//! The sigmoid (binary and multi-label) focal loss over slices.
//!
//! Every call checks the lengths, then bets that every target is 0 or 1 and runs
//! the hard kernel, which checks the targets as it goes; where the bet is lost, it
//! scans the targets (one vectorized pass: validity, soft targets, the count of
//! ignored ones) and runs the kernel chosen for the gamma kind and target kind.
//! Either way the result is the same, bit for bit. Input slices are never written;
//! on error the output slice may be partly written.

use crate::dispatch::Backend;
use crate::params::{
    reduction_scale, sum_needs_exact_terms, Alpha, Error, Focal, Reduction, SoftTargets,
};
use crate::simd::kernel::{Coeffs, Mode, HARD, SOFT_EXP_NEG_BCE, SOFT_TORCHVISION};

mod exact;

/// The ignore label of the sigmoid targets.
const IGNORE: f32 = -1.0;

/// Largest integer part of gamma applied by multiplication on the general path.
const MAX_INT_POWER: f32 = 8.0;

impl Focal {
    /// Elementwise focal loss: `out[i] = FL(logits[i], targets[i])` (0 for ignored).
    ///
    /// Errors: lengths differ, or a target is outside `[0, 1]` and not -1.
    pub fn loss(&self, logits: &[f32], targets: &[f32], out: &mut [f32]) -> Result<(), Error> {
        self.run(Mode::Loss, None, logits, targets, Some("out"), out)?;
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
        let run = self.run(Mode::Sum, Some(reduction), logits, targets, None, &mut [])?;
        Ok(run.map_or(0.0, |(sum, scale)| (sum * scale) as f32))
    }

    /// Elementwise gradient: `out[i] = d FL(logits[i], targets[i]) / d logits[i]`
    /// (0 for ignored elements).
    pub fn grad(&self, logits: &[f32], targets: &[f32], out: &mut [f32]) -> Result<(), Error> {
        self.run(Mode::Grad, None, logits, targets, Some("grad"), out)?;
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
        match self.run(
            Mode::Fused,
            Some(reduction),
            logits,
            targets,
            Some("grad"),
            grad,
        )? {
            Some((sum, scale)) => Ok((sum * scale) as f32),
            None => {
                grad.fill(0.0);
                Ok(0.0)
            }
        }
    }

    /// Checks the lengths (`out` too when `out_name` is given) and the targets, and
    /// runs the kernel for `mode`. Returns the sum of the losses (0 for the
    /// elementwise modes) and the reduction's scale (1 without one), or `None` for
    /// `Mean` with every element ignored (nothing was run).
    fn run(
        &self,
        mode: Mode,
        reduction: Option<Reduction>,
        logits: &[f32],
        targets: &[f32],
        out_name: Option<&'static str>,
        out: &mut [f32],
    ) -> Result<Option<(f64, f64)>, Error> {
        check_len("targets", logits.len(), targets.len())?;
        if let Some(name) = out_name {
            check_len(name, logits.len(), out.len())?;
        }
        // A pinned backend was checked when pinned; the active one is available by
        // construction. Check again anyway: it is one relaxed load.
        let backend = self.backend();
        if !backend.is_available() {
            return Err(Error::BackendUnavailable(backend));
        }
        if let Some(done) = self.run_speculative(backend, mode, reduction, logits, targets, out) {
            return Ok(Some(done));
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
        let scale = match reduction {
            None => 1.0,
            Some(r) => match reduction_scale(r, scan.active)? {
                Some(scale) => scale,
                None => return Ok(None),
            },
        };
        let c = self.coeffs(scale, IGNORE);
        // After the scan the hard kernels' own check passes: `None` cannot happen
        // (NaN would be returned, not a wrong number).
        let sum = backend
            .focal(mode, soft, &c, logits, targets, out)
            .unwrap_or(f64::NAN);
        let sum = finite_or_recomputed(mode, sum, backend, soft, &c, logits, targets);
        let active = scan.active;
        Ok(Some((
            self.refined(mode, scale, active, logits, targets, out, sum),
            scale,
        )))
    }

    /// The bet that every target is 0 or 1 (and, for `Mean`, that none is ignored,
    /// so that the scale is `1 / len`): the hard kernel runs without the scan and
    /// checks the targets itself. Won, the result is the one the scan would have
    /// led to, bit for bit, one pass over the targets cheaper (6% of a fused call
    /// at N = 262144, 17% at 32M, AVX-512). Lost, at the first vector with another
    /// target, `None`: the caller scans and runs again, and the work done until
    /// then is lost (at most one kernel pass; a last target that loses the bet
    /// skips it, as with batches padded by ignored elements).
    fn run_speculative(
        &self,
        backend: Backend,
        mode: Mode,
        reduction: Option<Reduction>,
        logits: &[f32],
        targets: &[f32],
        out: &mut [f32],
    ) -> Option<(f64, f64)> {
        // Compact builds (microcontrollers) scan first: their flash budget has no
        // room for a second path, and their memory is not what they wait on.
        if cfg!(compact) {
            return None;
        }
        // For Mean, no value besides 0 and 1: NaN equals no target.
        let accept = if reduction == Some(Reduction::Mean) {
            f32::NAN
        } else {
            IGNORE
        };
        let last = *targets.last()?;
        if !(last == 0.0 || last == 1.0 || last == accept) {
            return None;
        }
        // An error (a bad normaliser) is reported by the checked path, in its order.
        let scale = match reduction {
            None => 1.0,
            Some(r) => reduction_scale(r, targets.len()).ok()??,
        };
        let c = self.coeffs(scale, accept);
        let sum = backend.focal(mode, HARD, &c, logits, targets, out)?;
        let sum = finite_or_recomputed(mode, sum, backend, HARD, &c, logits, targets);
        // (The count of ignored targets is not known here: all of them, an upper
        // bound, for `refined`'s threshold.)
        let active = targets.len();
        Some((
            self.refined(mode, scale, active, logits, targets, out, sum),
            scale,
        ))
    }

    /// With a scale above 1 (`DivideBy(n)`, `n < 1`; Sum and Mean never have one),
    /// what the f32 kernels formed below the normal range before the scale, in f64
    /// ([`exact`]): the fused gradient's entries whose magnitude is below 2^-100
    /// times the largest weight `alpha * scale` (their unscaled value, or the
    /// kernels' intermediates, may have been subnormal: a subnormal's error, scaled
    /// up), and the reduced loss when the sum of `active` losses is below
    /// `active 2^-118` (where the losses below the normal range could make up more
    /// than 2^-28 of it). Returns the sum to reduce. Such results need logits far on
    /// the side of their targets (beyond about 23 for the gradient at gamma 2), so
    /// the f64 passes are rare; the check is a pass over the gradient. Not in
    /// compact builds (see [`exact`]).
    #[allow(clippy::too_many_arguments)]
    fn refined(
        &self,
        mode: Mode,
        scale: f64,
        active: usize,
        logits: &[f32],
        targets: &[f32],
        out: &mut [f32],
        sum: f64,
    ) -> f64 {
        if cfg!(compact) || scale <= 1.0 {
            return sum;
        }
        let element = self.exact_element(scale);
        if mode == Mode::Fused {
            // (A threshold: its rounding to f32 does not matter.) Blocks of 64 are
            // tested with a branch-free fold, which vectorizes: the pass adds 5% to
            // an AVX2 fused call (27% element by element; gamma 2, N = 262144).
            let below = (element.a_pos.max(element.a_neg) * scale * TINY_GRAD) as f32;
            let blocks = out
                .chunks_mut(64)
                .zip(logits.chunks(64))
                .zip(targets.chunks(64));
            for ((g, x), t) in blocks {
                if !g.iter().fold(false, |any, v| any | (v.abs() < below)) {
                    continue;
                }
                for ((g, &x), &t) in g.iter_mut().zip(x).zip(t) {
                    if g.abs() < below && t != IGNORE {
                        *g = element.loss_and_grad(x, t).1 as f32;
                    }
                }
            }
        }
        if matches!(mode, Mode::Sum | Mode::Fused) && sum_needs_exact_terms(scale, sum, active) {
            return logits
                .iter()
                .zip(targets)
                .filter(|&(_, &t)| t != IGNORE)
                .map(|(&x, &t)| element.loss_and_grad(x, t).0)
                .sum();
        }
        sum
    }

    /// The parameters of [`exact::Element`] for a reduction scale.
    fn exact_element(&self, scale: f64) -> exact::Element {
        let (a_pos, a_neg) = self.alpha_pair();
        exact::Element {
            gamma: self.gamma,
            a_pos,
            a_neg,
            soft: self.soft,
            scale,
        }
    }

    /// alpha for target 1 and for target 0.
    fn alpha_pair(&self) -> (f64, f64) {
        match self.alpha {
            Alpha::Off => (1.0, 1.0),
            Alpha::Balanced(a) => (f64::from(a), 1.0 - f64::from(a)),
            Alpha::Uniform(a) => (f64::from(a), f64::from(a)),
        }
    }

    /// Kernel coefficients for a reduction scale; products with the scale are
    /// rounded once, from f64.
    pub(crate) fn coeffs(&self, scale: f64, hard_accept: f32) -> Coeffs {
        let (a_pos, a_neg) = self.alpha_pair();
        // gamma = n + frac with n <= 8 applied by multiplication; above 8 all of it
        // goes through exp (frac = gamma, exact).
        let n = if self.gamma <= MAX_INT_POWER {
            libm::floorf(self.gamma)
        } else {
            0.0
        };
        let (ga_pos, ga_neg) = (a_pos * scale, a_neg * scale);
        let lo = |v: f64| (v - f64::from(v as f32)) as f32;
        Coeffs {
            gamma: self.gamma,
            n: n as u32,
            frac: self.gamma - n,
            a_pos: a_pos as f32,
            a_neg: a_neg as f32,
            a_neg_lo: lo(a_neg),
            a_diff: (a_pos - a_neg) as f32,
            ga_pos: ga_pos as f32,
            ga_neg: ga_neg as f32,
            ga_pos_lo: lo(ga_pos),
            ga_neg_lo: lo(ga_neg),
            hard_accept,
        }
    }
}

/// 2^-100: see [`Focal::refined`].
const TINY_GRAD: f64 = 1.0 / (1u128 << 100) as f64;

/// The kernels sum in f32 lanes (Kahan). When that sum is not finite (an infinite
/// logit, NaN, or finite losses whose f32 sum overflows), the losses are summed
/// again in f64, a stack chunk at a time: f64 cannot overflow there, an infinite
/// loss stays infinite (Kahan's correction would have made it NaN), and NaN stays
/// NaN. This path costs a second pass and only runs in those cases.
/// (Summing modes only: the elementwise ones pass their 0 through.)
fn finite_or_recomputed(
    mode: Mode,
    sum: f64,
    backend: Backend,
    soft: u8,
    c: &Coeffs,
    logits: &[f32],
    targets: &[f32],
) -> f64 {
    if sum.is_finite() || !matches!(mode, Mode::Sum | Mode::Fused) {
        return sum;
    }
    let mut buf = [0.0f32; 256];
    let mut total = 0.0f64;
    for (x, t) in logits.chunks(buf.len()).zip(targets.chunks(buf.len())) {
        let out = &mut buf[..x.len()];
        // (The targets passed the kernel's check once: it passes again.)
        if backend.focal(Mode::Loss, soft, c, x, t, out).is_none() {
            return f64::NAN;
        }
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
