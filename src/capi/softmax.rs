//! The softmax (multi-class) focal loss: parameters and the three slice calls.

use super::backend::backend_of;
use super::slices::{input, output, overlaps};
use super::status::{code, status};
use super::*;
use crate::{ClassAlpha, SoftmaxFocal};

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
