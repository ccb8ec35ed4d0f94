//! The softmax (multi-class) focal loss over row-major `[N x C]` logits.
//!
//! Every call validates the shape, the labels (one pass) and the reduction first,
//! then runs one kernel chosen for the gamma kind and the class count. Input slices
//! are never written; on error the output slice may be partly written.

use crate::dispatch::Backend;
use crate::params::{reduction_scale, sum_needs_exact_terms, Error, Reduction};
use crate::simd::softmax::{exact_loss_sum, Call, Mode, Weights};

/// The label that marks a row as ignored (PyTorch's default `ignore_index`): loss 0,
/// gradient row 0, and the row is not counted by [`Reduction::Mean`].
pub const IGNORE_INDEX: i32 = -100;

/// Class weighting `alpha_y` of the softmax focal loss (the weight of the row's
/// label class).
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum ClassAlpha<'a> {
    /// `alpha_y = 1`.
    #[default]
    Off,
    /// `alpha_y = a` for every class, `a` in `[0, 1]` (as the sigmoid loss's
    /// [`crate::Alpha::Uniform`]).
    Uniform(f32),
    /// `alpha_y = w[y]`: one weight per class (length `C`), finite and `>= 0`; like
    /// PyTorch's `weight`, a weight may exceed 1. `Mean` still divides by the number
    /// of non-ignored rows, not by the sum of their weights.
    PerClass(&'a [f32]),
}

/// Softmax (multi-class) focal loss parameters, validated once at construction.
///
/// For a row of logits `z` (`C` classes) with label `y`,
/// `p = softmax(z)`, `FL = -alpha_y (1 - p_y)^gamma ln(p_y)`; gamma 0 is cross
/// entropy. Labels are `i32`: `0..C` name a class and [`IGNORE_INDEX`] (-100, as
/// PyTorch) ignores the row; signed, so PyTorch's convention carries over as is
/// (`int64` targets narrowed to `i32`), and any class count up to `2^31` fits.
///
/// Numerics: `ln p_y = (z_y - m) - ln(sum_j e^(z_j - m))` with `m` the row max and
/// `z_j - m` carried exactly (hi + lo); `1 - p_y` is the sum of the other classes'
/// probabilities, never a subtraction; the gradient
/// `dFL/dz_j = alpha_y g (delta_jy - p_j)`,
/// `g = gamma (1-p_y)^(gamma-1) p_y ln(p_y) - (1-p_y)^gamma`, is evaluated as
/// `-(1-p_y)^gamma (1 + gamma (p_y / (1-p_y)) (-ln p_y))`, whose ratio tends to 1
/// as `p_y -> 1`: no power with a negative exponent, finite for every gamma.
///
/// # Accuracy
///
/// Against a high-precision reference (`tests/softmax_accuracy.rs`, whose table
/// `cargo test --test softmax_accuracy -- --nocapture` prints), on every backend
/// and for any class count: the per-row loss, every gradient entry (for every
/// reduction) and the reduced losses are within **8 ULP** for gamma <= 8 (absolute
/// 2^-149 below the normal range). Beyond gamma 8 the bound grows by about 0.7 ULP
/// per unit of gamma (the power multiplies the last rounding of `1 - p_y`). Finite
/// logits give finite results (a loss that exceeds `f32::MAX` is `+inf`), and no
/// result whose exact value is a normal f32 is flushed to 0: where a class weight
/// times the reduction's scale exceeds 1 (weights above 1, normalisers below 1),
/// the row's gradient is computed with the factor applied before the exps are
/// scaled, so probabilities below the f32 range still give their normal gradient
/// entries (such rows cost a second pass). Rows that f32 cannot carry are
/// computed in f64 by a scalar path, whatever the backend: every other class more
/// than 69 below the label (the other probabilities sum below 2^-100, from exps
/// rounded in the subnormal range), a weight
/// times scale above 1 on a `(1 - p_y)^gamma` or loss below the normal range, and
/// a weight times scale beyond 1e30. They are rare (a margin above 69, or weights
/// above 1 or normalisers below 1), and the bound then holds for any weight and
/// normaliser. The reduced loss (`loss_reduced`, and the loss `loss_and_grad`
/// returns) adds the per-row losses, which are `f32`: a row loss below the normal
/// range keeps only a subnormal's bits, which a normaliser below 1 would scale up
/// (an audit found 22 ULP, and a normal 1.2e-33 returned as 0, at normalisers near
/// 1e-17). So with a normaliser below 1, a sum below `active rows * 2^-118`, where
/// those bits could show, is taken again from every row in f64 (a scalar pass; rows
/// that confident are rare), and the reduced loss's bound holds for every
/// normaliser too (`tests/softmax_accuracy.rs`, `tiny_rows_divided_by_a_small_normaliser`).
///
/// Special values: a NaN logit makes its row's loss and gradient NaN (other rows
/// are untouched); a `+inf` logit takes all the probability (ties at `+inf` share
/// it), so the loss is 0 or `+inf` and the gradient its finite limit; `-inf` has
/// probability 0. Ignored rows give exactly 0 whatever their logits.
///
/// ```
/// use focal::{ClassAlpha, Reduction, SoftmaxFocal};
///
/// let fl = SoftmaxFocal::new(2.0, ClassAlpha::Off)?;
/// // 3 rows of 4 classes, row-major; the last row is ignored.
/// let logits = [2.0f32, 0.5, -1.0, 0.0, 0.1, 0.2, 3.0, -2.0, 9.0, 9.0, 9.0, 9.0];
/// let labels = [0i32, 2, focal::IGNORE_INDEX];
/// let mut grad = [0.0f32; 12];
/// let loss = fl.loss_and_grad(&logits, &labels, 4, Reduction::Mean, &mut grad)?;
/// assert!(loss > 0.0 && grad[8..].iter().all(|&g| g == 0.0));
/// # Ok::<(), focal::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoftmaxFocal<'a> {
    gamma: f32,
    alpha: ClassAlpha<'a>,
    backend: Option<Backend>,
}

impl<'a> SoftmaxFocal<'a> {
    /// A softmax focal loss with focusing parameter `gamma` (finite, `>= 0`) and
    /// class weighting `alpha`.
    ///
    /// Errors: [`Error::InvalidGamma`], [`Error::InvalidAlpha`] (a `Uniform` value
    /// outside `[0, 1]`), [`Error::InvalidClassAlpha`] (a per-class weight that is
    /// negative or not finite; the first such class is named).
    pub fn new(gamma: f32, alpha: ClassAlpha<'a>) -> Result<Self, Error> {
        // NaN is not finite.
        if !gamma.is_finite() || gamma < 0.0 {
            return Err(Error::InvalidGamma(gamma));
        }
        match alpha {
            ClassAlpha::Off => {}
            ClassAlpha::Uniform(a) => {
                if !(0.0..=1.0).contains(&a) {
                    return Err(Error::InvalidAlpha(a));
                }
            }
            ClassAlpha::PerClass(w) => {
                if let Some((class, &value)) = w
                    .iter()
                    .enumerate()
                    .find(|(_, &v)| !(v.is_finite() && v >= 0.0))
                {
                    return Err(Error::InvalidClassAlpha { class, value });
                }
            }
        }
        Ok(SoftmaxFocal {
            gamma,
            alpha,
            backend: None,
        })
    }

    /// Pins this loss to one backend instead of the detected best one, for tests,
    /// benchmarks and reproducibility. A backend this CPU or build lacks is an error.
    pub fn with_backend(mut self, backend: Backend) -> Result<Self, Error> {
        if !backend.is_available() {
            return Err(Error::BackendUnavailable(backend));
        }
        self.backend = Some(backend);
        Ok(self)
    }

    /// The focusing parameter.
    pub fn gamma(&self) -> f32 {
        self.gamma
    }

    /// The class weighting.
    pub fn alpha(&self) -> ClassAlpha<'a> {
        self.alpha
    }

    /// The backend calls on this value run on: the pinned one, else the active one.
    pub fn backend(&self) -> Backend {
        self.backend.unwrap_or_else(Backend::active)
    }

    /// Per-row focal loss: `out[r] = FL(logits[r*C..(r+1)*C], labels[r])`, 0 for
    /// ignored rows. `logits` is row-major `[N x C]` with `N = labels.len()`,
    /// `C = classes`; `out` has `N` values. Max error 8 ULP (gamma <= 8).
    ///
    /// Errors: [`Error::NoClasses`], [`Error::ShapeMismatch`] (`logits`, `out`,
    /// `alpha`), [`Error::InvalidLabel`] (the first bad row),
    /// [`Error::BackendUnavailable`].
    pub fn loss(
        &self,
        logits: &[f32],
        labels: &[i32],
        classes: usize,
        out: &mut [f32],
    ) -> Result<(), Error> {
        let (backend, _) = self.prepare(
            logits,
            labels,
            classes,
            Some(("out", labels.len(), out.len())),
        )?;
        backend.softmax(&self.call(Mode::Loss, logits, labels, classes, 1.0), out);
        Ok(())
    }

    /// Reduced focal loss over the rows: `Sum`, `Mean` over the non-ignored rows,
    /// or divided by a normaliser. No rows, or `Mean` with every row ignored, gives
    /// 0. The sum is compensated (the same bits on every run of a backend); max
    /// error 8 ULP of the exact sum of the exact losses (gamma <= 8, any
    /// normaliser: see the type's Accuracy section).
    /// Errors as [`SoftmaxFocal::loss`], plus [`Error::InvalidNormalizer`].
    pub fn loss_reduced(
        &self,
        logits: &[f32],
        labels: &[i32],
        classes: usize,
        reduction: Reduction,
    ) -> Result<f32, Error> {
        let (backend, active) = self.prepare(logits, labels, classes, None)?;
        let Some(scale) = reduction_scale(reduction, active)? else {
            return Ok(0.0);
        };
        let call = self.call(Mode::Sum, logits, labels, classes, scale);
        let sum = backend.softmax(&call, &mut []);
        Ok(reduced(&call, sum, active))
    }

    /// Fused loss and gradient, one pass over each row: returns the reduced loss and
    /// writes into `grad` (`[N x C]`, like `logits`) the gradient of that reduced loss
    /// with respect to each logit, what `loss.backward()` gives. Ignored rows get a
    /// zero gradient row; `Mean` with every row ignored gives 0 and a zero gradient.
    /// The label's entry uses `1 - p_y` as the sum of the other probabilities, so
    /// it keeps its digits as `p_y -> 1`; every entry is within 8 ULP (gamma <= 8),
    /// the loss as [`SoftmaxFocal::loss_reduced`].
    /// Errors as [`SoftmaxFocal::loss_reduced`] (`grad` for a wrong length).
    pub fn loss_and_grad(
        &self,
        logits: &[f32],
        labels: &[i32],
        classes: usize,
        reduction: Reduction,
        grad: &mut [f32],
    ) -> Result<f32, Error> {
        let cells = labels.len().saturating_mul(classes);
        let (backend, active) =
            self.prepare(logits, labels, classes, Some(("grad", cells, grad.len())))?;
        let Some(scale) = reduction_scale(reduction, active)? else {
            grad.fill(0.0);
            return Ok(0.0);
        };
        let call = self.call(Mode::Fused, logits, labels, classes, scale);
        let sum = backend.softmax(&call, grad);
        Ok(reduced(&call, sum, active))
    }

    /// Checks the shape, the backend and the labels; returns the backend and the
    /// number of non-ignored rows.
    fn prepare(
        &self,
        logits: &[f32],
        labels: &[i32],
        classes: usize,
        out: Option<(&'static str, usize, usize)>,
    ) -> Result<(Backend, usize), Error> {
        if classes == 0 {
            return Err(Error::NoClasses);
        }
        if let ClassAlpha::PerClass(w) = self.alpha {
            check_len("alpha", classes, w.len())?;
        }
        // N * C overflowing usize cannot be the length of a slice.
        let cells = labels.len().saturating_mul(classes);
        check_len("logits", cells, logits.len())?;
        if let Some((name, expected, actual)) = out {
            check_len(name, expected, actual)?;
        }
        let backend = self.backend();
        if !backend.is_available() {
            return Err(Error::BackendUnavailable(backend));
        }
        let active = scan_labels(labels, classes)?;
        Ok((backend, active))
    }

    fn call<'c>(
        &self,
        mode: Mode,
        logits: &'c [f32],
        labels: &'c [i32],
        classes: usize,
        scale: f64,
    ) -> Call<'c>
    where
        'a: 'c,
    {
        let weights = match self.alpha {
            ClassAlpha::Off => Weights::Same(1.0),
            ClassAlpha::Uniform(a) => Weights::Same(a),
            ClassAlpha::PerClass(w) => Weights::PerClass(w),
        };
        Call {
            mode,
            logits,
            labels,
            classes,
            weights,
            gamma: self.gamma,
            scale,
        }
    }
}

/// The reduced loss, `sum * scale`, from the kernels' sum of the `active` rows' f32
/// losses. Each row loss below the normal range carries up to 8 units of 2^-149 of
/// error, which a scale above 1 (a normaliser below 1) scales up with it: where
/// the sum is below `active 2^-118`, so that those errors could reach 2^-28 of it
/// (1/16 ULP of the result), the sum is taken again from every row in f64
/// ([`exact_loss_sum`]; rows that confident are rare, and the pass is not taken
/// otherwise). With a scale of at most 1 the errors shrink with the result.
fn reduced(call: &Call<'_>, sum: f64, active: usize) -> f32 {
    let sum = if sum_needs_exact_terms(call.scale, sum, active) {
        exact_loss_sum(call)
    } else {
        sum
    };
    (sum * call.scale) as f32
}

fn check_len(slice: &'static str, expected: usize, actual: usize) -> Result<(), Error> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            slice,
            expected,
            actual,
        })
    }
}

/// Counts the non-ignored rows; the first label outside `[0, classes)` that is not
/// [`IGNORE_INDEX`] is an error. Branch-free per block (it vectorizes); only a bad
/// block is searched again for its first bad row.
fn scan_labels(labels: &[i32], classes: usize) -> Result<usize, Error> {
    const BLOCK: usize = 4096;
    // Negative labels become >= 2^31 as u32, above the limit; from 2^31 classes on,
    // every non-negative i32 is a class.
    let limit = classes.min(1 << 31) as u32;
    let bad_label = |l: i32| l != IGNORE_INDEX && (l as u32) >= limit;
    let mut ignored = 0usize;
    for (b, block) in labels.chunks(BLOCK).enumerate() {
        let mut bad = false;
        let mut ign = 0u32;
        for &l in block {
            bad |= bad_label(l);
            ign += u32::from(l == IGNORE_INDEX);
        }
        if bad {
            let (i, &label) = block
                .iter()
                .enumerate()
                .find(|(_, &l)| bad_label(l))
                .unwrap_or((0, &0));
            return Err(Error::InvalidLabel {
                row: b * BLOCK + i,
                label,
            });
        }
        ignored += ign as usize;
    }
    Ok(labels.len() - ignored)
}
