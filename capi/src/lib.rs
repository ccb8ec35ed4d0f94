//! The C ABI of focal: one function per slice operation of the public API, each
//! returning an `int32_t` status (`FOCAL_OK` = 0, one negative code per error kind).
//!
//! Nothing here can panic or unwind: every pointer, length and enum value from C is
//! checked before a slice is formed, and the Rust API reports everything else as an
//! [`Error`] value, mapped to its code. The header `include/focal.h` is generated
//! from this file by cbindgen (`capi/check.sh` regenerates it and fails when the
//! committed one differs).

#![forbid(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![deny(missing_docs)]

use core::ffi::c_char;

use focal_rs::{Alpha, Backend, ClassAlpha, Error, Focal, Reduction, SoftTargets, SoftmaxFocal};

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
/// An error kind this version of the header does not know (a newer library).
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
/// Softmax only: alpha_y = class_alpha[y], one finite weight >= 0 per class.
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

/// Parameters of the sigmoid (binary, multi-label) focal loss.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FocalSigmoidParams {
    /// Focusing parameter: finite, >= 0 (0 gives binary cross entropy).
    pub gamma: f32,
    /// FOCAL_ALPHA_OFF, FOCAL_ALPHA_BALANCED or FOCAL_ALPHA_UNIFORM.
    pub alpha_kind: i32,
    /// The alpha of BALANCED and UNIFORM, in [0, 1]; ignored for OFF.
    pub alpha: f32,
    /// FOCAL_SOFT_TORCHVISION or FOCAL_SOFT_EXP_NEG_BCE.
    pub soft_targets: i32,
    /// FOCAL_BACKEND_AUTO, or a backend to pin the call to.
    pub backend: i32,
}

/// Parameters of the softmax (multi-class) focal loss.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FocalSoftmaxParams {
    /// Focusing parameter: finite, >= 0 (0 gives cross entropy).
    pub gamma: f32,
    /// FOCAL_ALPHA_OFF, FOCAL_ALPHA_UNIFORM or FOCAL_ALPHA_PER_CLASS.
    pub alpha_kind: i32,
    /// The alpha of UNIFORM, in [0, 1]; ignored otherwise.
    pub alpha: f32,
    /// PER_CLASS: `classes` weights (finite, >= 0); ignored otherwise (may be NULL).
    pub class_alpha: *const f32,
    /// FOCAL_BACKEND_AUTO, or a backend to pin the call to.
    pub backend: i32,
}

fn code(e: Error) -> i32 {
    match e {
        Error::LengthMismatch { .. } => FOCAL_ERR_LENGTH_MISMATCH,
        Error::InvalidTarget { .. } => FOCAL_ERR_INVALID_TARGET,
        Error::InvalidGamma(_) => FOCAL_ERR_INVALID_GAMMA,
        Error::InvalidAlpha(_) => FOCAL_ERR_INVALID_ALPHA,
        Error::InvalidNormalizer(_) => FOCAL_ERR_INVALID_NORMALIZER,
        Error::BackendUnavailable(_) => FOCAL_ERR_BACKEND_UNAVAILABLE,
        Error::ShapeMismatch { .. } => FOCAL_ERR_SHAPE_MISMATCH,
        Error::NoClasses => FOCAL_ERR_NO_CLASSES,
        Error::InvalidLabel { .. } => FOCAL_ERR_INVALID_LABEL,
        Error::InvalidClassAlpha { .. } => FOCAL_ERR_INVALID_CLASS_ALPHA,
        _ => FOCAL_ERR_UNKNOWN,
    }
}

fn status(r: Result<(), Error>) -> i32 {
    match r {
        Ok(()) => FOCAL_OK,
        Err(e) => code(e),
    }
}

fn backend_of(b: i32) -> Result<Option<Backend>, i32> {
    match b {
        FOCAL_BACKEND_AUTO => Ok(None),
        FOCAL_BACKEND_SCALAR => Ok(Some(Backend::Scalar)),
        FOCAL_BACKEND_PORTABLE => Ok(Some(Backend::Portable)),
        FOCAL_BACKEND_AVX2 => Ok(Some(Backend::Avx2)),
        FOCAL_BACKEND_AVX512 => Ok(Some(Backend::Avx512)),
        _ => Err(FOCAL_ERR_INVALID_ARGUMENT),
    }
}

fn backend_code(b: Backend) -> i32 {
    match b {
        Backend::Scalar => FOCAL_BACKEND_SCALAR,
        Backend::Portable => FOCAL_BACKEND_PORTABLE,
        Backend::Avx2 => FOCAL_BACKEND_AVX2,
        Backend::Avx512 => FOCAL_BACKEND_AVX512,
        _ => FOCAL_ERR_UNKNOWN,
    }
}

fn reduction_of(kind: i32, normalizer: f32) -> Result<Reduction, i32> {
    match kind {
        FOCAL_REDUCTION_SUM => Ok(Reduction::Sum),
        FOCAL_REDUCTION_MEAN => Ok(Reduction::Mean),
        FOCAL_REDUCTION_DIVIDE_BY => Ok(Reduction::DivideBy(normalizer)),
        _ => Err(FOCAL_ERR_INVALID_ARGUMENT),
    }
}

/// A C array of `n` elements as a slice. NULL is allowed for `n == 0` only.
///
/// # Safety
/// A non-NULL `ptr` must be valid for reads of `n` elements and not be written
/// through another pointer while the slice lives.
unsafe fn input<'a, T>(ptr: *const T, n: usize) -> Result<&'a [T], i32> {
    check_len::<T>(n)?;
    if n == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() || !ptr.is_aligned() {
        return Err(FOCAL_ERR_NULL_POINTER);
    }
    // SAFETY: non-NULL and aligned (checked), `n * size_of::<T>() <= isize::MAX`
    // (checked), valid for `n` reads (the caller's contract, documented in the header).
    Ok(unsafe { core::slice::from_raw_parts(ptr, n) })
}

/// A C array of `n` elements as a mutable slice. NULL is allowed for `n == 0` only.
///
/// # Safety
/// A non-NULL `ptr` must be valid for reads and writes of `n` elements, and the
/// caller has checked that it overlaps no other slice of the call.
unsafe fn output<'a>(ptr: *mut f32, n: usize) -> Result<&'a mut [f32], i32> {
    check_len::<f32>(n)?;
    if n == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() || !ptr.is_aligned() {
        return Err(FOCAL_ERR_NULL_POINTER);
    }
    // SAFETY: non-NULL and aligned (checked), size within isize::MAX (checked), valid
    // and unaliased for `n` elements (the caller's contract and overlap check).
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, n) })
}

fn check_len<T>(n: usize) -> Result<(), i32> {
    match n.checked_mul(core::mem::size_of::<T>()) {
        Some(bytes) if bytes <= isize::MAX as usize => Ok(()),
        _ => Err(FOCAL_ERR_OVERFLOW),
    }
}

/// Whether `[a, a + an)` and `[b, b + bn)` (in elements of `T`) overlap; empty
/// ranges overlap nothing.
fn overlaps<T, U>(a: *const T, an: usize, b: *const U, bn: usize) -> bool {
    let (a0, b0) = (a as usize, b as usize);
    let a1 = a0.saturating_add(an.saturating_mul(core::mem::size_of::<T>()));
    let b1 = b0.saturating_add(bn.saturating_mul(core::mem::size_of::<U>()));
    an != 0 && bn != 0 && a0 < b1 && b0 < a1
}

fn sigmoid_loss_of(p: *const FocalSigmoidParams) -> Result<Focal, i32> {
    // SAFETY: a non-NULL `p` points to a FocalSigmoidParams (the caller's contract);
    // `as_ref` handles NULL.
    let Some(p) = (unsafe { p.as_ref() }) else {
        return Err(FOCAL_ERR_NULL_POINTER);
    };
    let alpha = match p.alpha_kind {
        FOCAL_ALPHA_OFF => Alpha::Off,
        FOCAL_ALPHA_BALANCED => Alpha::Balanced(p.alpha),
        FOCAL_ALPHA_UNIFORM => Alpha::Uniform(p.alpha),
        _ => return Err(FOCAL_ERR_INVALID_ARGUMENT),
    };
    let soft = match p.soft_targets {
        FOCAL_SOFT_TORCHVISION => SoftTargets::Torchvision,
        FOCAL_SOFT_EXP_NEG_BCE => SoftTargets::ExpNegBce,
        _ => return Err(FOCAL_ERR_INVALID_ARGUMENT),
    };
    let backend = backend_of(p.backend)?;
    let fl = Focal::new(p.gamma, alpha).map_err(code)?.soft_targets(soft);
    match backend {
        Some(b) => fl.with_backend(b).map_err(code),
        None => Ok(fl),
    }
}

/// The checked pieces of a sigmoid call: the loss, the inputs, and an output (or
/// an empty one when `out` is not used).
struct SigmoidCall<'a> {
    fl: Focal,
    logits: &'a [f32],
    targets: &'a [f32],
    out: &'a mut [f32],
}

/// # Safety
/// As every sigmoid function of the header: non-NULL arrays valid for `n` elements.
unsafe fn sigmoid_call<'a>(
    p: *const FocalSigmoidParams,
    logits: *const f32,
    targets: *const f32,
    n: usize,
    out: Option<*mut f32>,
) -> Result<SigmoidCall<'a>, i32> {
    let fl = sigmoid_loss_of(p)?;
    // SAFETY: the caller's contract for `logits` and `targets`.
    let (logits_s, targets_s) = unsafe { (input(logits, n)?, input(targets, n)?) };
    let out = match out {
        Some(o) => {
            if overlaps(o, n, logits, n) || overlaps(o, n, targets, n) {
                return Err(FOCAL_ERR_OVERLAP);
            }
            // SAFETY: the caller's contract for `out`; it overlaps no input (checked).
            unsafe { output(o, n)? }
        }
        None => &mut [],
    };
    Ok(SigmoidCall {
        fl,
        logits: logits_s,
        targets: targets_s,
        out,
    })
}

/// Elementwise sigmoid focal loss: `out[i] = FL(logits[i], targets[i])`, 0 where
/// `targets[i]` is FOCAL_IGNORE.
///
/// `logits`, `targets` and `out` hold `n` floats each (any may be NULL when `n` is 0);
/// `out` must not overlap the inputs. Targets are in [0, 1] (soft allowed) or -1.
/// Returns FOCAL_OK or FOCAL_ERR_NULL_POINTER, _OVERFLOW, _OVERLAP,
/// _INVALID_ARGUMENT, _INVALID_GAMMA, _INVALID_ALPHA, _BACKEND_UNAVAILABLE,
/// _INVALID_TARGET. On error `out` may be partly written.
///
/// # Safety
/// Non-NULL pointers must be valid for `n` elements (and `params` for one struct).
#[no_mangle]
pub unsafe extern "C" fn focal_sigmoid_loss(
    params: *const FocalSigmoidParams,
    logits: *const f32,
    targets: *const f32,
    n: usize,
    out: *mut f32,
) -> i32 {
    // SAFETY: the caller's contract, forwarded.
    match unsafe { sigmoid_call(params, logits, targets, n, Some(out)) } {
        Ok(c) => status(c.fl.loss(c.logits, c.targets, c.out)),
        Err(e) => e,
    }
}

/// Elementwise gradient of the sigmoid focal loss with respect to each logit (0 for
/// ignored elements), into `grad` (`n` floats, not overlapping the inputs).
/// Returns the codes of focal_sigmoid_loss.
///
/// # Safety
/// Non-NULL pointers must be valid for `n` elements (and `params` for one struct).
#[no_mangle]
pub unsafe extern "C" fn focal_sigmoid_grad(
    params: *const FocalSigmoidParams,
    logits: *const f32,
    targets: *const f32,
    n: usize,
    grad: *mut f32,
) -> i32 {
    // SAFETY: the caller's contract, forwarded.
    match unsafe { sigmoid_call(params, logits, targets, n, Some(grad)) } {
        Ok(c) => status(c.fl.grad(c.logits, c.targets, c.out)),
        Err(e) => e,
    }
}

/// Reduced sigmoid focal loss into `*loss`: FOCAL_REDUCTION_SUM, _MEAN (over the
/// non-ignored elements; 0 when there are none) or _DIVIDE_BY `normalizer`
/// (ignored for the others). Returns the codes of focal_sigmoid_loss plus
/// FOCAL_ERR_INVALID_NORMALIZER; `*loss` is written only on FOCAL_OK.
///
/// # Safety
/// Non-NULL pointers must be valid for `n` elements (`params`, `loss`: one).
#[no_mangle]
pub unsafe extern "C" fn focal_sigmoid_loss_reduced(
    params: *const FocalSigmoidParams,
    logits: *const f32,
    targets: *const f32,
    n: usize,
    reduction: i32,
    normalizer: f32,
    loss: *mut f32,
) -> i32 {
    if loss.is_null() || !loss.is_aligned() {
        return FOCAL_ERR_NULL_POINTER;
    }
    let reduction = match reduction_of(reduction, normalizer) {
        Ok(r) => r,
        Err(e) => return e,
    };
    // SAFETY: the caller's contract, forwarded.
    let c = match unsafe { sigmoid_call(params, logits, targets, n, None) } {
        Ok(c) => c,
        Err(e) => return e,
    };
    match c.fl.loss_reduced(c.logits, c.targets, reduction) {
        Ok(v) => {
            // SAFETY: non-NULL and aligned (checked), valid for one write (contract).
            unsafe { loss.write(v) };
            FOCAL_OK
        }
        Err(e) => code(e),
    }
}

/// Fused sigmoid focal loss and gradient in one pass: the reduced loss (as
/// focal_sigmoid_loss_reduced) into `*loss`, and into `grad` (`n` floats) the
/// gradient of that reduced loss with respect to each logit (what
/// `loss.backward()` gives). `grad` must not overlap the inputs or `loss`.
/// Returns the codes of focal_sigmoid_loss_reduced.
///
/// # Safety
/// Non-NULL pointers must be valid for `n` elements (`params`, `loss`: one).
#[no_mangle]
pub unsafe extern "C" fn focal_sigmoid_loss_and_grad(
    params: *const FocalSigmoidParams,
    logits: *const f32,
    targets: *const f32,
    n: usize,
    reduction: i32,
    normalizer: f32,
    loss: *mut f32,
    grad: *mut f32,
) -> i32 {
    if loss.is_null() || !loss.is_aligned() {
        return FOCAL_ERR_NULL_POINTER;
    }
    if overlaps(loss, 1, grad, n) {
        return FOCAL_ERR_OVERLAP;
    }
    let reduction = match reduction_of(reduction, normalizer) {
        Ok(r) => r,
        Err(e) => return e,
    };
    // SAFETY: the caller's contract, forwarded.
    let c = match unsafe { sigmoid_call(params, logits, targets, n, Some(grad)) } {
        Ok(c) => c,
        Err(e) => return e,
    };
    match c.fl.loss_and_grad(c.logits, c.targets, reduction, c.out) {
        Ok(v) => {
            // SAFETY: non-NULL and aligned (checked), valid for one write (contract),
            // not part of `grad` (checked).
            unsafe { loss.write(v) };
            FOCAL_OK
        }
        Err(e) => code(e),
    }
}

/// The checked pieces of a softmax call.
struct SoftmaxCall<'a> {
    fl: SoftmaxFocal<'a>,
    logits: &'a [f32],
    labels: &'a [i32],
    out: &'a mut [f32],
}

/// # Safety
/// As every softmax function of the header.
unsafe fn softmax_call<'a>(
    p: *const FocalSoftmaxParams,
    logits: *const f32,
    labels: *const i32,
    rows: usize,
    classes: usize,
    out: Option<(*mut f32, usize)>,
) -> Result<SoftmaxCall<'a>, i32> {
    // SAFETY: a non-NULL `p` points to a FocalSoftmaxParams (the caller's contract).
    let Some(p) = (unsafe { p.as_ref() }) else {
        return Err(FOCAL_ERR_NULL_POINTER);
    };
    if classes == 0 {
        return Err(FOCAL_ERR_NO_CLASSES);
    }
    let cells = rows.checked_mul(classes).ok_or(FOCAL_ERR_OVERFLOW)?;
    let alpha = match p.alpha_kind {
        FOCAL_ALPHA_OFF => ClassAlpha::Off,
        FOCAL_ALPHA_UNIFORM => ClassAlpha::Uniform(p.alpha),
        FOCAL_ALPHA_PER_CLASS => {
            // SAFETY: PER_CLASS: `class_alpha` is valid for `classes` reads (contract).
            ClassAlpha::PerClass(unsafe { input(p.class_alpha, classes)? })
        }
        _ => return Err(FOCAL_ERR_INVALID_ARGUMENT),
    };
    let backend = backend_of(p.backend)?;
    let fl = SoftmaxFocal::new(p.gamma, alpha).map_err(code)?;
    let fl = match backend {
        Some(b) => fl.with_backend(b).map_err(code)?,
        None => fl,
    };
    // SAFETY: the caller's contract for `logits` and `labels`.
    let (logits_s, labels_s) = unsafe { (input(logits, cells)?, input(labels, rows)?) };
    let out = match out {
        Some((o, len)) => {
            let weights = if p.alpha_kind == FOCAL_ALPHA_PER_CLASS {
                classes
            } else {
                0
            };
            if overlaps(o, len, logits, cells)
                || overlaps(o, len, labels, rows)
                || overlaps(o, len, p.class_alpha, weights)
            {
                return Err(FOCAL_ERR_OVERLAP);
            }
            // SAFETY: the caller's contract for `out`; it overlaps no input (checked).
            unsafe { output(o, len)? }
        }
        None => &mut [],
    };
    Ok(SoftmaxCall {
        fl,
        logits: logits_s,
        labels: labels_s,
        out,
    })
}

/// Per-row softmax focal loss: `out[r] = FL(logits[r*classes .. (r+1)*classes],
/// labels[r])`, 0 for rows labelled FOCAL_IGNORE_INDEX. `logits` is row-major
/// `rows x classes`, `labels` has `rows` values in [0, classes) or -100, `out` has
/// `rows` floats and must not overlap the inputs. Returns FOCAL_OK or
/// FOCAL_ERR_NULL_POINTER, _OVERFLOW, _OVERLAP, _INVALID_ARGUMENT, _NO_CLASSES,
/// _INVALID_GAMMA, _INVALID_ALPHA, _INVALID_CLASS_ALPHA, _BACKEND_UNAVAILABLE,
/// _INVALID_LABEL. On error `out` may be partly written.
///
/// # Safety
/// Non-NULL pointers must be valid for the element counts above (`class_alpha` for
/// `classes` with FOCAL_ALPHA_PER_CLASS).
#[no_mangle]
pub unsafe extern "C" fn focal_softmax_loss(
    params: *const FocalSoftmaxParams,
    logits: *const f32,
    labels: *const i32,
    rows: usize,
    classes: usize,
    out: *mut f32,
) -> i32 {
    // SAFETY: the caller's contract, forwarded.
    match unsafe { softmax_call(params, logits, labels, rows, classes, Some((out, rows))) } {
        Ok(c) => status(c.fl.loss(c.logits, c.labels, classes, c.out)),
        Err(e) => e,
    }
}

/// Reduced softmax focal loss into `*loss`: FOCAL_REDUCTION_SUM, _MEAN (over the
/// non-ignored rows; 0 when there are none) or _DIVIDE_BY `normalizer`. Returns the
/// codes of focal_softmax_loss plus FOCAL_ERR_INVALID_NORMALIZER; `*loss` is
/// written only on FOCAL_OK.
///
/// # Safety
/// As focal_softmax_loss; `loss` valid for one write.
#[no_mangle]
pub unsafe extern "C" fn focal_softmax_loss_reduced(
    params: *const FocalSoftmaxParams,
    logits: *const f32,
    labels: *const i32,
    rows: usize,
    classes: usize,
    reduction: i32,
    normalizer: f32,
    loss: *mut f32,
) -> i32 {
    if loss.is_null() || !loss.is_aligned() {
        return FOCAL_ERR_NULL_POINTER;
    }
    let reduction = match reduction_of(reduction, normalizer) {
        Ok(r) => r,
        Err(e) => return e,
    };
    // SAFETY: the caller's contract, forwarded.
    let c = match unsafe { softmax_call(params, logits, labels, rows, classes, None) } {
        Ok(c) => c,
        Err(e) => return e,
    };
    match c.fl.loss_reduced(c.logits, c.labels, classes, reduction) {
        Ok(v) => {
            // SAFETY: non-NULL and aligned (checked), valid for one write (contract).
            unsafe { loss.write(v) };
            FOCAL_OK
        }
        Err(e) => code(e),
    }
}

/// Fused softmax focal loss and gradient: the reduced loss into `*loss` and the
/// gradient of that reduced loss with respect to each logit into `grad`
/// (`rows x classes`, like `logits`; zero rows for ignored labels). `grad` must not
/// overlap the inputs or `loss`. Returns the codes of focal_softmax_loss_reduced.
///
/// # Safety
/// As focal_softmax_loss; `grad` valid for `rows * classes` writes, `loss` for one.
#[no_mangle]
pub unsafe extern "C" fn focal_softmax_loss_and_grad(
    params: *const FocalSoftmaxParams,
    logits: *const f32,
    labels: *const i32,
    rows: usize,
    classes: usize,
    reduction: i32,
    normalizer: f32,
    loss: *mut f32,
    grad: *mut f32,
) -> i32 {
    if loss.is_null() || !loss.is_aligned() {
        return FOCAL_ERR_NULL_POINTER;
    }
    let cells = rows.saturating_mul(classes);
    if overlaps(loss, 1, grad, cells) {
        return FOCAL_ERR_OVERLAP;
    }
    let reduction = match reduction_of(reduction, normalizer) {
        Ok(r) => r,
        Err(e) => return e,
    };
    // SAFETY: the caller's contract, forwarded.
    let c =
        match unsafe { softmax_call(params, logits, labels, rows, classes, Some((grad, cells))) } {
            Ok(c) => c,
            Err(e) => return e,
        };
    match c
        .fl
        .loss_and_grad(c.logits, c.labels, classes, reduction, c.out)
    {
        Ok(v) => {
            // SAFETY: non-NULL and aligned (checked), valid for one write (contract),
            // not part of `grad` (checked).
            unsafe { loss.write(v) };
            FOCAL_OK
        }
        Err(e) => code(e),
    }
}

/// The three elementwise building blocks share their checks.
///
/// # Safety
/// `x` and `out` valid for `n` elements when non-NULL.
unsafe fn unary(
    x: *const f32,
    n: usize,
    out: *mut f32,
    f: fn(&[f32], &mut [f32]) -> Result<(), Error>,
) -> i32 {
    if overlaps(x, n, out, n) {
        return FOCAL_ERR_OVERLAP;
    }
    // SAFETY: the caller's contract; `out` overlaps `x` nowhere (checked).
    let (x, out) = match unsafe { (input(x, n), output(out, n)) } {
        (Ok(x), Ok(out)) => (x, out),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    status(f(x, out))
}

/// Elementwise `out[i] = sigmoid(x[i]) = 1 / (1 + e^-x[i])` (max error 1.5 ULP) on the
/// active backend. `out` (`n` floats) must not overlap `x`. Returns FOCAL_OK or
/// FOCAL_ERR_NULL_POINTER, _OVERFLOW, _OVERLAP.
///
/// # Safety
/// Non-NULL pointers must be valid for `n` elements.
#[no_mangle]
pub unsafe extern "C" fn focal_sigmoid(x: *const f32, n: usize, out: *mut f32) -> i32 {
    // SAFETY: the caller's contract, forwarded.
    unsafe { unary(x, n, out, focal_rs::sigmoid) }
}

/// Elementwise `out[i] = softplus(x[i]) = ln(1 + e^x[i])` (max error 2 ULP); as
/// focal_sigmoid.
///
/// # Safety
/// Non-NULL pointers must be valid for `n` elements.
#[no_mangle]
pub unsafe extern "C" fn focal_softplus(x: *const f32, n: usize, out: *mut f32) -> i32 {
    // SAFETY: the caller's contract, forwarded.
    unsafe { unary(x, n, out, focal_rs::softplus) }
}

/// Elementwise `out[i] = ln(sigmoid(x[i]))` (max error 2 ULP); as focal_sigmoid.
///
/// # Safety
/// Non-NULL pointers must be valid for `n` elements.
#[no_mangle]
pub unsafe extern "C" fn focal_log_sigmoid(x: *const f32, n: usize, out: *mut f32) -> i32 {
    // SAFETY: the caller's contract, forwarded.
    unsafe { unary(x, n, out, focal_rs::log_sigmoid) }
}

/// The backend unpinned calls run on (a FOCAL_BACKEND_* value >= 0): the forced one,
/// else the best this CPU has (detected on first use).
#[no_mangle]
pub extern "C" fn focal_backend_active() -> i32 {
    backend_code(Backend::active())
}

/// 1 if this CPU and build can run `backend`, 0 if not, FOCAL_ERR_INVALID_ARGUMENT for
/// a value that names no backend (FOCAL_BACKEND_AUTO included).
#[no_mangle]
pub extern "C" fn focal_backend_is_available(backend: i32) -> i32 {
    match backend_of(backend) {
        Ok(Some(b)) => i32::from(b.is_available()),
        Ok(None) | Err(_) => FOCAL_ERR_INVALID_ARGUMENT,
    }
}

/// Forces every unpinned call in the process onto `backend`; FOCAL_BACKEND_AUTO goes
/// back to detection. Returns FOCAL_OK, FOCAL_ERR_BACKEND_UNAVAILABLE (nothing
/// changes) or FOCAL_ERR_INVALID_ARGUMENT.
#[no_mangle]
pub extern "C" fn focal_backend_force(backend: i32) -> i32 {
    match backend_of(backend) {
        Ok(b) => status(Backend::force(b)),
        Err(e) => e,
    }
}

/// The lowercase name of a backend ("scalar", "portable", "avx2", "avx512") as a
/// static NUL-terminated string, or NULL for a value that names no backend.
#[no_mangle]
pub extern "C" fn focal_backend_name(backend: i32) -> *const c_char {
    let name: &'static [u8] = match backend_of(backend) {
        Ok(Some(Backend::Scalar)) => b"scalar\0",
        Ok(Some(Backend::Portable)) => b"portable\0",
        Ok(Some(Backend::Avx2)) => b"avx2\0",
        Ok(Some(Backend::Avx512)) => b"avx512\0",
        _ => return core::ptr::null(),
    };
    name.as_ptr().cast()
}

/// A static NUL-terminated English description of a status code ("ok", "null
/// pointer", ...); "unknown status" for a value that is none.
#[no_mangle]
pub extern "C" fn focal_status_message(status: i32) -> *const c_char {
    let m: &'static [u8] = match status {
        FOCAL_OK => b"ok\0",
        FOCAL_ERR_NULL_POINTER => b"null pointer\0",
        FOCAL_ERR_LENGTH_MISMATCH => b"length mismatch\0",
        FOCAL_ERR_INVALID_TARGET => b"invalid target: must be in [0, 1] or -1\0",
        FOCAL_ERR_INVALID_GAMMA => b"invalid gamma: must be finite and >= 0\0",
        FOCAL_ERR_INVALID_ALPHA => b"invalid alpha: must be in [0, 1]\0",
        FOCAL_ERR_INVALID_NORMALIZER => b"invalid normaliser: must be finite and > 0\0",
        FOCAL_ERR_BACKEND_UNAVAILABLE => b"backend not available on this CPU or build\0",
        FOCAL_ERR_SHAPE_MISMATCH => b"shape mismatch\0",
        FOCAL_ERR_NO_CLASSES => b"no classes\0",
        FOCAL_ERR_INVALID_LABEL => b"invalid label: must be in [0, C) or -100\0",
        FOCAL_ERR_INVALID_CLASS_ALPHA => b"invalid class alpha: must be finite and >= 0\0",
        FOCAL_ERR_OVERFLOW => b"length overflows the address space\0",
        FOCAL_ERR_INVALID_ARGUMENT => b"invalid enum argument\0",
        FOCAL_ERR_OVERLAP => b"an output overlaps another slice\0",
        FOCAL_ERR_UNKNOWN => b"unknown error\0",
        _ => b"unknown status\0",
    };
    m.as_ptr().cast()
}
