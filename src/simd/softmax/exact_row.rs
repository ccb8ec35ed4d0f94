//! One row of the softmax focal loss in f64, for the rows the f32 kernels cannot
//! represent (both fuzzer findings):
//!
//! - the label is the row's max and every other class is so far below it that
//!   `S_o` (and so `q = 1 - p_y` and `nll`) is below the normal f32 range, while the
//!   label's weight times the reduction's scale exceeds 1: the loss
//!   `alpha_y q^gamma nll ~ alpha_y S_o` and the gradient entries are normal f32
//!   values built from sums that f32 holds only as subnormals or 0 (weight 1e30,
//!   `S_o = e^-120`: loss 7.7e-23 returned as 0);
//! - the same rows with `S_o` below 2^-100 (or 0) and any weight: each `e_j` below
//!   2^-126 is rounded to a multiple of 2^-149, and their sum (the loss, ~S_o) was
//!   off by up to C/2 units of 2^-149 (10.7 at C = 24, against the bound of 8), or
//!   0 where each `e_j` underflowed but their sum does not (134 e^-104);
//! - the weight times the scale is beyond f32 (a weight of 3e38 and a normaliser
//!   of 3.6e-19: 8e56): entries that overflow must be infinite (not NaN) and the
//!   small ones normal (not flushed by an infinite factor).
//!
//! f64 has the exponent range (down to 2^-1074) and the precision (2^-53) to carry
//! them: each quantity below is one or two libm calls (< 1 ULP of f64 each) and
//! products, so the f32 results are the f64 values rounded once (< 0.51 ULP). Such
//! rows are rare (they need a class weight above 1 or a normaliser below 1, and a
//! margin above ~87 in the logits), so scalar f64 (software on single-precision
//! FPUs) costs nothing that matters.

use super::{Call, MAX_LANES};

/// `S_o` below this (f32, 2^-100) sends an active row here (with one class only
/// when the factor exceeds 1). Each `e_j` below 2^-126 is rounded to a multiple of
/// 2^-149 (its low part cannot hold that rounding), so `S_o` carries up to C/2
/// such units: 9.6 ULP for 22 terms of e^-90 summing to 1.8e-38, a normal number
/// (a fuzz finding). From 2^-100 up they are below C 2^-50 of `S_o`. Such rows
/// have every other class more than 69 below the label: rare, and then a scalar
/// pass over the row.
pub(super) const EXACT_BELOW: f32 = f32::from_bits(0x0D80_0000);

/// `alpha_y * scale` (f32) from this up sends an active row here: the f32 factor
/// `alpha_y scale q^gamma (1 + gamma (e_y/S_o) nll) / S` would come within a
/// factor of 2^28 of overflowing (f64 holds it up to 2^1024).
pub(super) const EXACT_ABOVE: f32 = 1.0e30;

/// The loss of row `z` with label `y` (`alpha_y q^gamma nll`, without the scale), in
/// f64, and, when `grad` is given (`z.len()` entries), its gradient times `scale` written
/// there. `None`, with nothing written, when a logit is NaN or `y` is out of
/// range: the vector kernels' result stands. Infinite logits as
/// in the kernels: the `+inf` ones share all the probability, `-inf` has none.
/// Out of line and cold, as [`exact_rows`].
#[cold]
#[inline(never)]
pub(super) fn exact_row(
    z: &[f32],
    y: usize,
    alpha: f32,
    gamma: f32,
    scale: f64,
    grad: Option<&mut [f32]>,
) -> Option<f64> {
    let zy = f64::from(*z.get(y)?);
    if z.iter().any(|v| v.is_nan()) {
        return None;
    }
    let m = z
        .iter()
        .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
    // e_j = e^(z_j - m): the difference of two f32 is exact in f64 unless their
    // exponents are far apart, and then its rounding (2^-53 of |z_j - m|, with
    // z_j - m > -745 where e_j is not 0) moves e_j by far less than 2^-40. With
    // m = +inf: 1 for the +inf logits, 0 for the others; with every logit -inf,
    // 1 for all (ties share the probability, as in the kernels).
    let shift = |v: f64| {
        if m.is_infinite() {
            if v == m {
                0.0
            } else {
                f64::NEG_INFINITY
            }
        } else {
            v - m
        }
    };
    // (A fold from +0: `sum` of no terms, C = 1, is -0, and e_y / -0 = -inf.)
    let s_o = z
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != y)
        .fold(0.0, |s, (_, &v)| s + libm::exp(shift(f64::from(v))));
    let dy = shift(zy);
    let ey = libm::exp(dy);
    let s = ey + s_o;
    // nll = -ln p_y = (m - z_y) + ln S with S >= 1: two non-negative terms; when y
    // is the max, ln(1 + S_o) without rounding 1 + S_o.
    let nll = if dy == 0.0 {
        libm::log1p(s_o)
    } else {
        libm::log(s) - dy
    };
    // q^gamma = e^(gamma ln q), ln q = -ln(1 + e_y / S_o) (no cancellation as q -> 1;
    // -inf when S_o = 0, giving 0 for gamma > 0).
    let qg = if gamma == 0.0 {
        1.0
    } else {
        libm::exp(f64::from(gamma) * -libm::log1p(ey / s_o))
    };
    let alpha = f64::from(alpha);
    // A zero weight weighs the row out, also where nll is +inf.
    let loss = if alpha == 0.0 { 0.0 } else { alpha * qg * nll };
    if let Some(grad) = grad {
        // dFL/dz_j = c e_j (j != y), dFL/dz_y = -c S_o, with
        // c = alpha q^gamma (1 + gamma (e_y / S_o) nll) / S; (e_y / S_o) nll tends
        // to 1 as S_o -> 0 (y the max: nll = ln(1 + S_o)), and is below 1 otherwise.
        // (e_y nll -> 0 as z_y - m -> -inf: 0, not 0 * inf.)
        let ratio = if dy == 0.0 {
            if s_o > 0.0 {
                nll / s_o
            } else {
                1.0
            }
        } else if ey == 0.0 {
            0.0
        } else {
            (ey / s_o) * nll
        };
        let c = alpha * scale * qg * (1.0 + f64::from(gamma) * ratio) / s;
        for (j, (g, &v)) in grad.iter_mut().zip(z).enumerate() {
            *g = if j == y {
                (-c * s_o) as f32
            } else {
                (c * libm::exp(shift(f64::from(v)))) as f32
            };
        }
    }
    Some(loss)
}

/// [`exact_row`] for the rows `r0 + i` of the set bits `i` of `lanes`: each loss
/// into `loss[i]` where bit `i` of `loss_lanes` is set too, each gradient row into
/// `grad` (row-major, `C` values per row, from row 0) when given. Out of line and cold: scalar f64 code that the vector
/// kernels call only when a group holds such a row (`scripts/check-asm.sh`
/// tolerates this one call).
#[cold]
#[inline(never)]
pub(super) fn exact_rows(
    call: &Call<'_>,
    r0: usize,
    lanes: u32,
    loss_lanes: u32,
    loss: &mut [f32; MAX_LANES],
    mut grad: Option<&mut [f32]>,
) {
    let c = call.classes;
    for (i, slot) in loss.iter_mut().enumerate() {
        if lanes >> i & 1 == 0 {
            continue;
        }
        let r = r0 + i;
        let Some(range) = r.checked_mul(c).map(|s| s..s + c) else {
            continue;
        };
        let (Some(z), Some(&y)) = (call.logits.get(range.clone()), call.labels.get(r)) else {
            continue;
        };
        let Ok(y) = usize::try_from(y) else {
            continue;
        };
        let g = grad.as_deref_mut().and_then(|g| g.get_mut(range));
        if let Some(l) = exact_row(z, y, call.weights.of(y), call.gamma, call.scale, g) {
            if loss_lanes >> i & 1 != 0 {
                *slot = l as f32;
            }
        }
    }
}

/// The sum of the active rows' losses (without the scale), each row by
/// [`exact_row`] in f64, added in f64 (relative error below `N 2^-53`): for a
/// reduced loss whose scale exceeds 1 and whose sum of f32 row losses is so small
/// that the rows below the normal range could make up a visible part of it
/// (`SoftmaxFocal::loss_reduced`). Rows with a NaN logit give NaN. Out of line and
/// cold: a scalar pass over every row, taken only for such sums.
#[cold]
#[inline(never)]
pub(crate) fn exact_loss_sum(call: &Call<'_>) -> f64 {
    let c = call.classes;
    let mut sum = 0.0;
    for (r, &y) in call.labels.iter().enumerate() {
        let (Ok(y), Some(start)) = (usize::try_from(y), r.checked_mul(c)) else {
            continue;
        };
        let Some(z) = call.logits.get(start..start.saturating_add(c)) else {
            continue;
        };
        if y >= c {
            continue;
        }
        match exact_row(z, y, call.weights.of(y), call.gamma, call.scale, None) {
            Some(loss) => sum += loss,
            None => return f64::NAN,
        }
    }
    sum
}
