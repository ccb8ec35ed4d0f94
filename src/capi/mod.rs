//! The C ABI (feature `capi`): one function per slice operation of the public API, each
//! returning an `int32_t` status (`FOCAL_OK` = 0, one negative code per error kind).
//!
//! Nothing here can panic or unwind: every pointer, length and enum value from C is
//! checked before a slice is formed, and the Rust API reports everything else as an
//! [`Error`](crate::Error) value, mapped to its code. The module uses `core` only, so
//! it builds without `std` too. The header `include/focal.h` is generated from these
//! files by cbindgen (`scripts/capi-check.sh` regenerates it and fails when the
//! committed one differs). The libraries for C (`libfocal.a`, `libfocal.so`) are this
//! crate built as a `staticlib` and a `cdylib`:
//!
//! ```sh
//! cargo rustc --profile capi --features capi --crate-type staticlib,cdylib
//! ```
//!
//! The items are Rust-callable too, but they exist for C: from Rust, use the safe API.

use crate::Reduction;

// In the order of the header: cbindgen follows these declarations (blank lines keep
// rustfmt from sorting them).
mod sigmoid;

mod softmax;

mod elementwise;

mod backend;

mod status;

mod slices;

pub use backend::{
    focal_backend_active, focal_backend_force, focal_backend_is_available, focal_backend_name,
};
pub use elementwise::{focal_log_sigmoid, focal_sigmoid, focal_softplus};
pub use sigmoid::{
    focal_sigmoid_grad, focal_sigmoid_loss, focal_sigmoid_loss_and_grad,
    focal_sigmoid_loss_reduced, FocalSigmoidParams,
};
pub use softmax::{
    focal_softmax_loss, focal_softmax_loss_and_grad, focal_softmax_loss_reduced, FocalSoftmaxParams,
};
pub use status::focal_status_message;

/// Success.
pub const FOCAL_OK: i32 = 0;
/// A required pointer is NULL (a slice pointer may be NULL only when its length is 0).
pub const FOCAL_ERR_NULL_POINTER: i32 = -1;
/// Two slices that must have the same length do not.
pub const FOCAL_ERR_LENGTH_MISMATCH: i32 = -2;
/// A target outside [0, 1] that is not the ignore label -1, or NaN.
pub const FOCAL_ERR_INVALID_TARGET: i32 = -3;
/// gamma is negative, infinite or NaN.
pub const FOCAL_ERR_INVALID_GAMMA: i32 = -4;
/// An alpha outside [0, 1], or NaN.
pub const FOCAL_ERR_INVALID_ALPHA: i32 = -5;
/// A FOCAL_REDUCTION_DIVIDE_BY normaliser that is not finite and > 0.
pub const FOCAL_ERR_INVALID_NORMALIZER: i32 = -6;
/// The requested backend is not supported by this CPU or build.
pub const FOCAL_ERR_BACKEND_UNAVAILABLE: i32 = -7;
/// A softmax slice does not have the length its shape [N x C] asks for.
pub const FOCAL_ERR_SHAPE_MISMATCH: i32 = -8;
/// A softmax call with 0 classes.
pub const FOCAL_ERR_NO_CLASSES: i32 = -9;
/// A softmax label outside [0, C) that is not FOCAL_IGNORE_INDEX (-100).
pub const FOCAL_ERR_INVALID_LABEL: i32 = -10;
/// A per-class alpha that is negative, infinite or NaN.
pub const FOCAL_ERR_INVALID_CLASS_ALPHA: i32 = -11;
/// A length (or rows * classes) too large for the address space: its bytes would
/// exceed PTRDIFF_MAX.
pub const FOCAL_ERR_OVERFLOW: i32 = -12;
/// An enum argument (alpha kind, soft-target option, reduction, backend) with a value
/// that names nothing.
pub const FOCAL_ERR_INVALID_ARGUMENT: i32 = -13;
/// An output slice overlaps an input slice or another output.
pub const FOCAL_ERR_OVERLAP: i32 = -14;
/// Reserved for an error kind without a code of its own; this version never returns
/// it (every error kind maps to its code, checked when compiling).
pub const FOCAL_ERR_UNKNOWN: i32 = -99;

/// The target value that marks an element as ignored (loss 0, gradient 0, not
/// counted by FOCAL_REDUCTION_MEAN).
pub const FOCAL_IGNORE: f32 = -1.0;
/// The softmax label that marks a row as ignored.
pub const FOCAL_IGNORE_INDEX: i32 = -100;

/// alpha_t = 1.
pub const FOCAL_ALPHA_OFF: i32 = 0;
/// alpha_t = a t + (1 - a)(1 - t) (the paper's and torchvision's).
pub const FOCAL_ALPHA_BALANCED: i32 = 1;
/// alpha_t = a for every element (the PyTorch snippet's; softmax: every class).
pub const FOCAL_ALPHA_UNIFORM: i32 = 2;
/// Softmax only: `alpha_y = class_alpha[y]`, one finite weight >= 0 per class.
pub const FOCAL_ALPHA_PER_CLASS: i32 = 3;

/// Soft targets use torchvision's p_t = p t + (1 - p)(1 - t) (the default).
pub const FOCAL_SOFT_TORCHVISION: i32 = 0;
/// Soft targets use the PyTorch snippet's p_t = exp(-BCE).
pub const FOCAL_SOFT_EXP_NEG_BCE: i32 = 1;

/// Sum over all elements (rows).
pub const FOCAL_REDUCTION_SUM: i32 = 0;
/// Sum divided by the number of non-ignored elements (rows); 0 when there are none.
pub const FOCAL_REDUCTION_MEAN: i32 = 1;
/// Sum divided by the caller's normaliser (finite, > 0).
pub const FOCAL_REDUCTION_DIVIDE_BY: i32 = 2;

/// Calls run on the forced backend, else the best one this CPU has.
pub const FOCAL_BACKEND_AUTO: i32 = -1;
/// One element at a time (the reference); available everywhere.
pub const FOCAL_BACKEND_SCALAR: i32 = 0;
/// Compile-time SIMD (SSE2, NEON, simd128); available everywhere.
pub const FOCAL_BACKEND_PORTABLE: i32 = 1;
/// x86_64 AVX2 + FMA.
pub const FOCAL_BACKEND_AVX2: i32 = 2;
/// x86_64 AVX-512F.
pub const FOCAL_BACKEND_AVX512: i32 = 3;

/// The reduction a FOCAL_REDUCTION_* value names; `normalizer` counts for DIVIDE_BY only.
fn reduction_of(kind: i32, normalizer: f32) -> Result<Reduction, i32> {
    match kind {
        FOCAL_REDUCTION_SUM => Ok(Reduction::Sum),
        FOCAL_REDUCTION_MEAN => Ok(Reduction::Mean),
        FOCAL_REDUCTION_DIVIDE_BY => Ok(Reduction::DivideBy(normalizer)),
        _ => Err(FOCAL_ERR_INVALID_ARGUMENT),
    }
}
