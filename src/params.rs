//! Parameters of the focal loss and the crate's error type. All validation lives here.

use core::fmt;

use crate::dispatch::Backend;

/// Class weighting `alpha_t` of the focal loss.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Alpha {
    /// `alpha_t = 1`.
    #[default]
    Off,
    /// `alpha_t = a*t + (1-a)*(1-t)`: the paper's and torchvision's weighting
    /// (positives get `a`, negatives `1-a`).
    Balanced(f32),
    /// `alpha_t = a` for every element: what the widely copied PyTorch snippet
    /// (`alpha * (1-pt)**gamma * bce`) does.
    Uniform(f32),
}

/// How `1 - p_t` is formed for soft targets (`t` strictly between 0 and 1).
///
/// For hard targets (`t` in {0, 1}) both forms are the same function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SoftTargets {
    /// torchvision's `p_t = p*t + (1-p)*(1-t)` (the default).
    #[default]
    Torchvision,
    /// The PyTorch snippet's `p_t = exp(-BCE)`, for code ported from it.
    ExpNegBce,
}

/// How per-element losses are reduced to one number.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reduction {
    /// Sum over all elements (ignored elements contribute 0).
    Sum,
    /// Sum divided by the number of non-ignored elements; 0 when every element is
    /// ignored or the slice is empty (never `0/0`).
    Mean,
    /// Sum divided by a caller-given normaliser (mmdet's `avg_factor`, Detectron's
    /// number of positives). It must be finite and a normal positive `f32`
    /// (`>= f32::MIN_POSITIVE`); the error bounds assume it is `>= 1`.
    DivideBy(f32),
}

/// Everything that can go wrong in a call. Bad input is reported, never a panic.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// Two slices that must have the same length do not.
    LengthMismatch {
        /// Which slice has the wrong length (`"targets"`, `"out"`, `"grad"`, ...).
        slice: &'static str,
        /// The length it must have (the length of the logits).
        expected: usize,
        /// The length it has.
        actual: usize,
    },
    /// A target outside `[0, 1]` that is not the ignore label `-1.0`, or NaN.
    InvalidTarget {
        /// Index of the first offending element.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// `gamma` is negative, infinite or NaN.
    InvalidGamma(f32),
    /// An alpha value outside `[0, 1]` or NaN.
    InvalidAlpha(f32),
    /// A `Reduction::DivideBy` normaliser that is not finite, or below
    /// `f32::MIN_POSITIVE` (zero, negative, subnormal), or NaN.
    InvalidNormalizer(f32),
    /// The requested backend is not supported by this CPU or build.
    BackendUnavailable(Backend),
    /// A slice of a softmax call does not have the length its shape `[N x C]` asks
    /// for (`N` = number of labels, `C` = number of classes): `logits` and `grad`
    /// need `N * C`, `out` needs `N`, a per-class `alpha` needs `C`.
    ShapeMismatch {
        /// Which slice has the wrong length (`"logits"`, `"out"`, `"grad"`,
        /// `"alpha"`).
        slice: &'static str,
        /// The length it must have (`usize::MAX` when `N * C` overflows).
        expected: usize,
        /// The length it has.
        actual: usize,
    },
    /// A softmax call with 0 classes.
    NoClasses,
    /// A label outside `[0, C)` that is not the ignore index
    /// ([`crate::IGNORE_INDEX`], -100).
    InvalidLabel {
        /// The row (index into the labels) of the first offending label.
        row: usize,
        /// Its value.
        label: i32,
    },
    /// A per-class alpha (class weight) that is negative, infinite or NaN.
    InvalidClassAlpha {
        /// The class.
        class: usize,
        /// Its weight.
        value: f32,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::LengthMismatch {
                slice,
                expected,
                actual,
            } => write!(
                f,
                "length mismatch: `{slice}` has {actual} elements, the logits have {expected}"
            ),
            Error::InvalidTarget { index, value } => write!(
                f,
                "invalid target {value} at index {index}: targets must be in [0, 1] or -1 (ignored)"
            ),
            Error::InvalidGamma(g) => write!(f, "invalid gamma {g}: must be finite and >= 0"),
            Error::InvalidAlpha(a) => write!(f, "invalid alpha {a}: must be in [0, 1]"),
            Error::InvalidNormalizer(n) => {
                write!(f, "invalid normaliser {n}: must be finite and >= f32::MIN_POSITIVE")
            }
            Error::BackendUnavailable(b) => {
                write!(f, "backend {b:?} is not available on this CPU or build")
            }
            Error::ShapeMismatch {
                slice,
                expected,
                actual,
            } => write!(
                f,
                "shape mismatch: `{slice}` has {actual} elements, the shape [N x C] needs {expected}"
            ),
            Error::NoClasses => write!(f, "no classes: the number of classes must be >= 1"),
            Error::InvalidLabel { row, label } => write!(
                f,
                "invalid label {label} in row {row}: labels must be in [0, C) or -100 (ignored)"
            ),
            Error::InvalidClassAlpha { class, value } => write!(
                f,
                "invalid alpha {value} for class {class}: must be finite and >= 0"
            ),
        }
    }
}

impl core::error::Error for Error {}

/// The target value that marks an element as ignored: loss 0, gradient 0, and not
/// counted by [`Reduction::Mean`].
pub const IGNORE: f32 = -1.0;

/// Focal loss parameters, validated once at construction.
///
/// ```
/// use focal::{Alpha, Focal, Reduction};
/// let fl = Focal::new(2.0, Alpha::Balanced(0.25))?;
/// let logits = [3.0f32, -1.0, 0.5];
/// let targets = [1.0f32, 0.0, -1.0];
/// let mut grad = [0.0f32; 3];
/// let loss = fl.loss_and_grad(&logits, &targets, Reduction::Mean, &mut grad)?;
/// assert!(loss > 0.0 && grad[2] == 0.0);
/// # Ok::<(), focal::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Focal {
    pub(crate) gamma: f32,
    pub(crate) alpha: Alpha,
    pub(crate) soft: SoftTargets,
    pub(crate) backend: Option<Backend>,
}

impl Focal {
    /// A focal loss with focusing parameter `gamma` (finite, `>= 0`) and weighting
    /// `alpha` (values in `[0, 1]`).
    pub fn new(gamma: f32, alpha: Alpha) -> Result<Self, Error> {
        // NaN is not finite.
        if !gamma.is_finite() || gamma < 0.0 {
            return Err(Error::InvalidGamma(gamma));
        }
        match alpha {
            Alpha::Off => {}
            Alpha::Balanced(a) | Alpha::Uniform(a) => {
                if !(0.0..=1.0).contains(&a) {
                    return Err(Error::InvalidAlpha(a));
                }
            }
        }
        Ok(Focal {
            gamma,
            alpha,
            soft: SoftTargets::Torchvision,
            backend: None,
        })
    }

    /// Chooses how soft targets form `1 - p_t` (default: [`SoftTargets::Torchvision`]).
    #[must_use]
    pub fn soft_targets(mut self, soft: SoftTargets) -> Self {
        self.soft = soft;
        self
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
    pub fn alpha(&self) -> Alpha {
        self.alpha
    }

    /// The backend calls on this value run on: the pinned one, else the active one.
    pub fn backend(&self) -> Backend {
        self.backend.unwrap_or_else(Backend::active)
    }
}

/// `1/normaliser` of a reduction, given the number of non-ignored elements.
/// Returns `None` for `Mean` over nothing (the caller returns 0 then).
pub(crate) fn reduction_scale(reduction: Reduction, active: usize) -> Result<Option<f64>, Error> {
    match reduction {
        Reduction::Sum => Ok(Some(1.0)),
        Reduction::Mean if active == 0 => Ok(None),
        Reduction::Mean => Ok(Some(recip(active as f64))),
        Reduction::DivideBy(n) => {
            // A subnormal normaliser is rejected: alpha / n would overflow f32, and
            // gradients that underflowed to 0 would meet an infinite scale (0 * inf).
            if n >= f32::MIN_POSITIVE && n.is_finite() {
                Ok(Some(recip(f64::from(n))))
            } else {
                Err(Error::InvalidNormalizer(n))
            }
        }
    }
}

/// Whether a reduced loss is summed again from its terms in f64: a scale above 1 (a
/// normaliser below 1) multiplies the error of each term below the normal f32 range
/// (up to 8 units of 2^-149), and below `terms * 2^-118` those errors could reach
/// 2^-28 of the sum (1/16 ULP of the result). With a scale of at most 1 they
/// shrink with the result.
pub(crate) fn sum_needs_exact_terms(scale: f64, sum: f64, terms: usize) -> bool {
    scale > 1.0 && sum < terms as f64 * (1.0 / (1u128 << 118) as f64)
}

/// `1 / v`. Compact builds (single-precision FPUs, see `build.rs`) divide in `f32`:
/// `f64` division is a 920-byte software routine there, and the reciprocal only
/// carries half an ULP more.
fn recip(v: f64) -> f64 {
    if cfg!(compact) {
        f64::from(1.0 / v as f32)
    } else {
        1.0 / v
    }
}
