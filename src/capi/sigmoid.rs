//! The sigmoid (binary, multi-label) focal loss: parameters and the four slice calls.

use super::backend::backend_of;
use super::slices::{input, output, overlaps};
use super::status::{code, status};
use super::*;
use crate::{Alpha, Focal, SoftTargets};

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
