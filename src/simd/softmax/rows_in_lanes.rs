//! Few classes (C <= 8): one row per lane, so no lane is wasted on a short row.
//!
//! A group of `LANES` rows (`LANES * C` contiguous values) is transposed into one
//! vector per class (`SimdF32::load_rows`: permutes on AVX-512, gathers
//! elsewhere), the whole group (logits, then `e_j`, then the gradient) stays in
//! `MAX_CLASSES` vectors, and the gradient is transposed back
//! (`SimdF32::store_rows`). `exp` runs once per logit.

use super::{
    exact_lanes, row_terms, shifted, shifted_label, store_first, with_exact_rows, Call, Consts,
    LossSum, Mode, RowSums, RowTerms, Weights,
};
use crate::simd::softmax::math::{exp_parts, exp_parts_wide, exp_reduced, scaled_exp, two_sum};
use crate::simd::SimdF32;

/// Largest class count of this driver.
pub(super) const MAX_CLASSES: usize = 8;

/// Runs `$body` for `$j = 0, 1, ..., MAX_CLASSES - 1` while `$j < $c`, unrolled:
/// with constant indices the per-class vectors stay in registers.
macro_rules! for_classes {
    ($j:ident < $c:expr => $body:block) => {
        for_classes!(@ $j, $c, $body, 0 1 2 3 4 5 6 7)
    };
    (@ $j:ident, $c:expr, $body:block, $($k:literal)*) => {
        $(
            #[allow(clippy::identity_op)]
            {
                let $j: usize = $k;
                if $j < $c $body
            }
        )*
    };
}

/// How many rows ahead a group asks for the logits, labels and gradient.
const ROWS_AHEAD: usize = 512;

/// Label value of the padding lanes of the last group: outside `[0, C)`, so they
/// are inactive.
const PAD_LABEL: f32 = -1.0;

/// Runs `rows` rows (`1 <= C <= MAX_CLASSES`); `rows` is covered by every slice the
/// mode uses (see `Call::rows`).
#[inline(always)]
pub(super) fn run<V: SimdF32>(call: &Call<'_>, rows: usize, out: &mut [f32]) -> f64 {
    let c = call.classes;
    if c == 0 || c > MAX_CLASSES {
        return 0.0;
    }
    let k = Consts::<V>::new(call);
    let mut sum = LossSum::<V>::new();
    let mut r0 = 0;
    while r0 < rows {
        let n = (rows - r0).min(V::LANES);
        // SAFETY: rows r0..r0 + n are in bounds of the logits (C each) and labels,
        // and of `out` in the modes that write it (`Call::rows`); C <= 8 keeps the
        // gather offsets tiny.
        unsafe {
            if n == V::LANES {
                group::<V, true>(call, &k, r0, n, out, &mut sum)
            } else {
                group::<V, false>(call, &k, r0, n, out, &mut sum)
            }
        };
        r0 += n;
    }
    match call.mode {
        Mode::Loss => 0.0,
        Mode::Sum | Mode::Fused => sum.finish(),
    }
}

/// One group of `n <= LANES` rows starting at `r0` (`FULL`: `n == LANES`).
///
/// # Safety
/// Rows `r0..r0 + n` are in bounds of `call.logits` (`C` values each) and
/// `call.labels`, and of `out` (`1` or `C` values per row) when the mode writes;
/// `1 <= C <= MAX_CLASSES`.
#[inline(always)]
unsafe fn group<V: SimdF32, const FULL: bool>(
    call: &Call<'_>,
    k: &Consts<V>,
    r0: usize,
    n: usize,
    out: &mut [f32],
    sum: &mut LossSum<V>,
) {
    let c = call.classes;
    let zero = V::splat(0.0);
    // SAFETY: n labels from r0 are in bounds.
    let label = unsafe { V::load_i32_partial(call.labels.as_ptr().add(r0), n, PAD_LABEL) };
    let active = V::and(zero.le(label), label.lt(V::splat(c as f32)));
    // SAFETY: r0 * C is in bounds (or the end) of the logits.
    let base = unsafe { call.logits.as_ptr().add(r0 * c) };
    // The lines of the group ROWS_AHEAD rows on. Hints only: the addresses may lie
    // past the slices (never dereferenced).
    let ahead = (r0 + ROWS_AHEAD) * c;
    V::prefetch(call.labels.as_ptr().wrapping_add(r0 + ROWS_AHEAD).cast());
    let mut line = 0;
    while line < V::LANES * c {
        V::prefetch(call.logits.as_ptr().wrapping_add(ahead + line));
        if call.mode == Mode::Fused {
            V::prefetch_write(out.as_mut_ptr().wrapping_add(ahead + line));
        }
        line += 16;
    }

    // Logits of class j of the n rows, later e^(z_j - m): unrolled to the constant
    // MAX_CLASSES, so the array lives in registers.
    let mut v = [zero; MAX_CLASSES];
    // SAFETY: the n rows from r0, n C values from base, are in bounds.
    unsafe { V::load_rows(base, c, if FULL { V::LANES } else { n }, &mut v) };
    let mut m = v[0];
    for_classes!(j < c => {
        m = m.max(v[j]);
    });

    // Every lane finite with a range below 2^16 (the usual case): the shifted
    // logits need no special case and the exps no wide residuals.
    let mut mn = v[0];
    for_classes!(j < c => {
        mn = mn.min(v[j]);
    });
    let inf = V::splat(f32::INFINITY);
    let narrow = V::and(
        V::and(m.lt(inf), (-inf).lt(m)),
        (m - V::splat(65536.0)).le(mn),
    );
    let lanes = V::LANES.min(16) as u32;
    let (dy_hi, dy_lo, so_hi, so_lo, alpha) = if V::bitmask(narrow) == (1u32 << lanes) - 1 {
        exp_and_sum::<V, true>(call, label, m, &mut v)
    } else {
        exp_and_sum::<V, false>(call, label, m, &mut v)
    };
    let (s, err) = two_sum(so_hi, so_lo);
    let sums = RowSums {
        dy_hi,
        dy_lo,
        so_hi: s,
        so_lo: err,
        alpha,
        active,
    };
    let terms = row_terms::<V>(&sums, k);
    // Rows beyond the f32 formulas (`exact_lanes`): f64.
    let exact = exact_lanes(&sums, &terms, k);
    let RowTerms {
        loss, coef, grad_y, ..
    } = terms;

    match call.mode {
        Mode::Loss => {
            let loss = with_exact_rows(call, r0, exact, loss, None);
            // SAFETY: n outputs from r0 are in bounds in Loss mode.
            unsafe { store_first(loss, out.as_mut_ptr().add(r0), n) }
        }
        Mode::Sum => sum.add(with_exact_rows(call, r0, exact, loss, None)),
        Mode::Fused => {
            // SAFETY: the gradient rows r0..r0 + n are in bounds in Fused mode.
            let gbase = unsafe { out.as_mut_ptr().add(r0 * c) };
            // A weight times scale above 1 can lift exps that underflowed in f32
            // back to normal gradients: then recompute them from the logits with
            // the factor applied before the scaling (rare: class weights above 1,
            // or a normaliser below 1).
            let big = V::and(active, V::splat(1.0).lt(alpha * k.scale_hi));
            if V::bitmask(big) != 0 {
                // SAFETY: as the first load_rows.
                unsafe { V::load_rows(base, c, if FULL { V::LANES } else { n }, &mut v) };
                for_classes!(j < c => {
                    let (d, dl) = shifted(v[j], m);
                    let far = d.lt(V::splat(-200.0));
                    let (h, l, kk) =
                        exp_reduced(V::splat(-200.0).max(d), V::select(far, zero, dl));
                    v[j] = scaled_exp(h, l, kk, coef);
                });
            } else {
                for_classes!(j < c => {
                    v[j] = coef * v[j];
                });
            }
            for_classes!(j < c => {
                let is_y = label.eq(V::splat(j as f32));
                let g = V::select(is_y, grad_y, v[j]);
                // Ignored rows: exactly 0 whatever their logits (NaN included).
                v[j] = V::select(active, g, zero);
            });
            // SAFETY: the gradient rows r0..r0 + n, n C values from gbase, are in
            // bounds.
            unsafe { V::store_rows(&v, gbase, c, if FULL { V::LANES } else { n }) };
            sum.add(with_exact_rows(call, r0, exact, loss, Some(out)));
        }
    }
}

/// Replaces the logits in `v` by `e^(z_j - m)` and returns `(z_y - m)` (hi, lo),
/// `S_o` (hi, lo) and `alpha_y` per lane. `NARROW`: every lane is finite with a
/// range below 2^16, so `z - m` is a plain TwoSum; otherwise `shifted` and
/// `exp_parts_wide` handle infinities and huge ranges. `S_o` is summed by TwoSum.
#[inline(always)]
fn exp_and_sum<V: SimdF32, const NARROW: bool>(
    call: &Call<'_>,
    label: V,
    m: V,
    v: &mut [V; MAX_CLASSES],
) -> (V, V, V, V, V) {
    let c = call.classes;
    let zero = V::splat(0.0);
    let mut dy_hi = zero;
    let mut dy_lo = zero;
    let mut so_hi = zero;
    let mut so_lo = zero;
    let mut alpha = match call.weights {
        Weights::Same(a) => V::splat(a),
        Weights::PerClass(_) => zero,
    };
    for_classes!(j < c => {
        let (d, dl, e, el) = if NARROW {
            let (d, dl) = two_sum(v[j], -m);
            let (e, el) = exp_parts(d, dl);
            (d, dl, e, el)
        } else {
            // (The label's form for every class: its hi is below -104 where it
            // differs from `shifted`, so the exp is the same.)
            let (d, dl) = shifted_label(v[j], m);
            let (e, el) = exp_parts_wide(d, dl);
            (d, dl, e, el)
        };
        let is_y = label.eq(V::splat(j as f32));
        dy_hi = V::select(is_y, d, dy_hi);
        dy_lo = V::select(is_y, dl, dy_lo);
        // At most 7 terms, added with their exact rounding errors and low parts.
        let e_o = V::select(is_y, zero, e);
        // TwoSum from 0, not Fast2Sum from 1: where every term is below 2^-24 (the
        // label dominating) the 1 absorbs nothing and the errors' sum would be a
        // plain f32 sum of the terms (9.8 ULP at gamma 3, a fuzz finding).
        let (s, err) = two_sum(so_hi, e_o);
        so_hi = s;
        so_lo = so_lo + (err + V::select(is_y, zero, el));
        if let Weights::PerClass(_) = call.weights {
            alpha = V::select(is_y, V::splat(call.weights.of(j)), alpha);
        }
        v[j] = e;
    });
    (dy_hi, dy_lo, so_hi, so_lo, alpha)
}
