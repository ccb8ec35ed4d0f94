//! The elementwise building blocks: sigmoid, softplus, log-sigmoid over a C array.

use super::slices::{input, output, overlaps};
use super::status::status;
use super::*;
use crate::Error;

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
    unsafe { unary(x, n, out, crate::sigmoid) }
}

/// Elementwise `out[i] = softplus(x[i]) = ln(1 + e^x[i])` (max error 2 ULP); as
/// focal_sigmoid.
///
/// # Safety
/// Non-NULL pointers must be valid for `n` elements.
#[no_mangle]
pub unsafe extern "C" fn focal_softplus(x: *const f32, n: usize, out: *mut f32) -> i32 {
    // SAFETY: the caller's contract, forwarded.
    unsafe { unary(x, n, out, crate::softplus) }
}

/// Elementwise `out[i] = ln(sigmoid(x[i]))` (max error 2 ULP); as focal_sigmoid.
///
/// # Safety
/// Non-NULL pointers must be valid for `n` elements.
#[no_mangle]
pub unsafe extern "C" fn focal_log_sigmoid(x: *const f32, n: usize, out: *mut f32) -> i32 {
    // SAFETY: the caller's contract, forwarded.
    unsafe { unary(x, n, out, crate::log_sigmoid) }
}
