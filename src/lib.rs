//! # focal
//!
//! The focal loss (Lin et al., "Focal Loss for Dense Object Detection", 2017) and its
//! gradient over `f32` slices: numerically stable formulas with stated ULP bounds,
//! explicitly vectorized kernels (AVX-512, AVX2+FMA, portable SSE2/NEON/simd128)
//! chosen at run time, a scalar fallback, `no_std`, no allocation.
//!
//! ```
//! use focal::{Alpha, Focal, Reduction};
//!
//! let fl = Focal::new(2.0, Alpha::Balanced(0.25))?;
//! let logits = [4.0f32, -2.0, 0.3, 9.0];
//! let targets = [1.0f32, 0.0, 1.0, -1.0]; // -1 = ignored
//! let mut grad = [0.0f32; 4];
//! let loss = fl.loss_and_grad(&logits, &targets, Reduction::Mean, &mut grad)?;
//! assert!(loss.is_finite() && grad[3] == 0.0);
//! # Ok::<(), focal::Error>(())
//! ```
//!
//! For a logit `x`, target `t` (0, 1, soft in between, or -1 = ignored):
//! `p = sigmoid(x)`, `p_t = p t + (1-p)(1-t)`, `FL = alpha_t (1 - p_t)^gamma BCE`.
//! `1 - p_t` is never formed by subtraction, so confident predictions keep their
//! (tiny) loss and gradient, and the gradient never forms `(1-p_t)^(gamma-1)`, so
//! gamma in (0, 1) stays finite.
//!
//! # Error bounds
//!
//! Against a high-precision reference, over the whole finite `f32` range of logits,
//! for hard, ignored and soft targets, alpha off / balanced / uniform, on every
//! backend (`tests/accuracy.rs` asserts them; README shows the measured maxima):
//!
//! | function | bound |
//! |---|---|
//! | loss, gradient (elementwise, fused, reduced) | 8 ULP for gamma <= 3, 16 ULP for gamma <= 8 |
//! | soft-target gradient (crosses zero) | same, in ULP of the size of its cancelling terms |
//! | `sigmoid` | 1.5 ULP |
//! | `softplus`, `log_sigmoid` | 2 ULP |
//! | `Sum` of 10^7 losses | 4 ULP of the exact sum of the elementwise losses |
//!
//! ULP is measured against the reference rounded to `f32`, with an absolute floor of
//! 2^-149 below the normal range. Finite input never gives NaN or inf (except the
//! reduced loss overflowing `f32` itself); a result that is a normal `f32` is never
//! flushed to zero; NaN input gives NaN for that element; infinite logits give the
//! mathematical limit. The bounds hold for every normaliser of
//! `Reduction::DivideBy(n)`: below 1, where it scales up what the `f32` kernels
//! formed below the normal range (gradient entries, and reduced losses made of
//! such elements), those are computed again in `f64`. Compact builds
//! (microcontrollers, no room for `f64` `exp` and `log1p` in their flash budget)
//! keep the `f32` results there: their bounds hold for `n >= 1`.
//!
//! Beyond the sweep, an alpha-tuned search (alpha chosen so that the result's
//! mantissa lies near 2, where a relative error shows at its full size in ULP)
//! checks these bounds on every backend (`tests/accuracy.rs`,
//! `tuned_alpha_search`).

#![no_std]
#![deny(missing_docs)]
#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(feature = "std")]
extern crate std;

mod arch;
#[cfg(feature = "capi")]
pub mod capi;
mod dispatch;
mod params;
mod scalar;
mod sigmoid;
mod simd;
mod softmax;

pub use dispatch::Backend;
pub use params::{Alpha, Error, Focal, Reduction, SoftTargets, IGNORE};
pub use sigmoid::{log_sigmoid, sigmoid, softplus};
pub use softmax::{ClassAlpha, SoftmaxFocal, IGNORE_INDEX};
