//! Many classes (C > 8): each row is vectorized along its classes.
//!
//! Per row: an exp pass that sums `S_o` and, when the gradient is wanted, parks
//! `e_j` in the gradient row (the output serves as the scratch, so `exp` runs once
//! per logit), and meanwhile finds the next row's max (and lane-wise minima, for
//! the range checks) from the same positions, so no row waits for a separate max
//! pass and its reduction; then, once a batch of rows is summed, [`row_terms`]
//! finishes them together (one row per lane) and a last pass scales each parked row
//! by its factor. A batch is at most `LANES` rows and at most about 32 KB of
//! gradient, so the parked rows are still in L1 when scaled. The only buffers are
//! the gradient rows and a few `LANES`-wide arrays of per-row sums.

use super::exact_row::exact_row;
use super::{
    exact_lanes, iota, row_terms, shifted, shifted_label, store_first, with_exact_rows, Call,
    Consts, LossSum, Mode, RowSums,
};
use crate::simd::softmax::math::{
    exp_parts_near, exp_parts_wide, exp_reduced, scaled_exp, two_sum,
};
use crate::simd::{SimdF32, MAX_LANES};

/// Rows up to this many classes take the branch-free exp pass.
const SHORT_ROW: usize = 256;

/// Gradient values a batch may park before it is scaled (32 KB).
const BATCH_VALUES: usize = 8192;

/// Where [`KEEP`] has its 0.
const KEEP_ZERO: usize = SHORT_ROW;

/// Class weights of a short row's exps in its sums: `KEEP_ZERO - y + j` is the first
/// weight of the vector of classes `j..j + LANES` of a row with label `y`, so the
/// label's lane gets 0 and every other 1 (`j - y` is within `+-(SHORT_ROW - 1)`, and
/// a vector reads at most `MAX_LANES` weights).
static KEEP: [f32; 2 * SHORT_ROW + MAX_LANES] = {
    let mut k = [1.0; 2 * SHORT_ROW + MAX_LANES];
    k[KEEP_ZERO] = 0.0;
    k
};

/// How `z - m` is made exact (`d_hi + d_lo`), chosen per row from its max and min:
/// Fast2Sum needs the larger magnitude first, and within a row one order often
/// holds for every logit.
const DIFF_MAX_FIRST: u8 = 0;
/// `m < 0`: every `|z| >= |m|`.
const DIFF_Z_FIRST: u8 = 1;
/// Mixed magnitudes: TwoSum.
const DIFF_TWO_SUM: u8 = 2;
/// An infinite max or min, or a logit below `m - NEAR` (rare: a probability ratio
/// above e^103): TwoSum with the special cases of `shifted`, and `exp_parts_wide`.
const DIFF_WIDE: u8 = 3;

/// The other paths take rows whose logits are all within `NEAR` of their max: then
/// `z - m >= -103` (exact, and its residual below 2^-18), in `exp_parts_near`'s range
/// without a clamp.
const NEAR: f32 = 103.0;

/// Per-row results of the first two passes, one lane per row of a batch.
struct Batch {
    /// Row max.
    m: [f32; MAX_LANES],
    /// The label's logit (`z_y - m` is formed for the whole batch at once).
    zy: [f32; MAX_LANES],
    so_hi: [f32; MAX_LANES],
    so_lo: [f32; MAX_LANES],
    alpha: [f32; MAX_LANES],
    active: [f32; MAX_LANES],
    /// The label (where the gradient row gets its own entry).
    y: [usize; MAX_LANES],
}

/// Runs `rows` rows; `rows` is covered by every slice the mode uses (see
/// `Call::rows`).
#[inline(always)]
pub(super) fn run<V: SimdF32>(call: &Call<'_>, rows: usize, out: &mut [f32]) -> f64 {
    let c = call.classes;
    if c == 0 {
        return 0.0;
    }
    let k = Consts::<V>::new(call);
    let fused = call.mode == Mode::Fused;
    let per_batch = (BATCH_VALUES / c).clamp(1, V::LANES);
    // Rows whose weight times scale exceeds 1 take `wide_scale_pass` (the compare
    // in f32 may send a row at the edge either way: both are right there).
    let wide_alpha = (1.0 / call.scale) as f32;
    let mut any_wide = false;
    let mut sum = LossSum::<V>::new();
    // The range (max, lane-wise minima) of the next row, found during the exp pass
    // of the current one.
    let mut pre: Option<(f32, V)> = None;
    let mut r0 = 0;
    while r0 < rows {
        let n = (rows - r0).min(per_batch);
        let mut b = Batch {
            m: [0.0; MAX_LANES],
            zy: [0.0; MAX_LANES],
            so_hi: [0.0; MAX_LANES],
            so_lo: [0.0; MAX_LANES],
            alpha: [0.0; MAX_LANES],
            active: [0.0; MAX_LANES],
            y: [0; MAX_LANES],
        };
        for i in 0..n {
            pre = sum_row::<V>(
                call,
                r0 + i,
                i,
                &mut b,
                if fused { Some(&mut *out) } else { None },
                pre,
            );
        }
        // SAFETY: each array holds MAX_LANES >= LANES values.
        let sums = unsafe {
            let (dy_hi, dy_lo) = shifted_label(V::load(b.zy.as_ptr()), V::load(b.m.as_ptr()));
            RowSums {
                dy_hi,
                dy_lo,
                so_hi: V::load(b.so_hi.as_ptr()),
                so_lo: V::load(b.so_lo.as_ptr()),
                alpha: V::load(b.alpha.as_ptr()),
                active: V::load(b.active.as_ptr()).eq(V::splat(1.0)),
            }
        };
        let t = row_terms::<V>(&sums, &k);
        // Rows beyond the f32 formulas (a subnormal S_o, a huge weight on an
        // underflowed one, a weight times scale beyond f32): recomputed in f64 once
        // the batch is written (`wide_rows`, if it visits them, does the same).
        let exact = exact_lanes(&sums, &t, &k);
        // Active rows whose weight times scale exceeds 1 (see `wide_rows`), once per
        // batch.
        any_wide |=
            fused && V::bitmask(V::and(sums.active, V::splat(wide_alpha).lt(sums.alpha))) != 0;
        match call.mode {
            Mode::Loss => {
                let loss = with_exact_rows(call, r0, exact, t.loss, None);
                if let Some(dst) = out.get_mut(r0..r0 + n) {
                    // SAFETY: dst holds n <= LANES values.
                    unsafe { store_first(loss, dst.as_mut_ptr(), n) };
                }
            }
            Mode::Sum => sum.add(with_exact_rows(call, r0, exact, t.loss, None)),
            Mode::Fused => {
                let coef = t.coef.to_array();
                let grad_y = t.grad_y.to_array();
                // The batch's gradient rows, contiguous.
                let rows_out = out.get_mut(r0 * c..(r0 + n) * c).unwrap_or_default();
                let lanes = b
                    .active
                    .iter()
                    .zip(b.y.iter().zip(coef.iter().zip(&grad_y)));
                for (g, (&active, (&y, (&cf, &gy)))) in rows_out.chunks_exact_mut(c).zip(lanes) {
                    if active == 0.0 {
                        continue;
                    }
                    scale_pass::<V>(g, cf);
                    if let Some(slot) = g.get_mut(y) {
                        *slot = gy;
                    }
                }
                sum.add(with_exact_rows(call, r0, exact, t.loss, Some(&mut *out)));
            }
        }
        r0 += n;
    }
    if any_wide {
        wide_rows::<V>(call, rows, out, &k, wide_alpha);
    }
    match call.mode {
        Mode::Loss => 0.0,
        Mode::Sum | Mode::Fused => sum.finish(),
    }
}

/// The gradient rows whose weight times scale exceeds 1, computed again after the
/// main pass: there the factor can lift exps that underflowed in f32 back to normal
/// gradients, so each is recomputed from the logits with the factor applied before
/// the scaling (`wide_scale_pass`). Rare (class weights above 1, or a normaliser
/// below 1), and kept out of the main loop, whose registers it would crowd. One
/// row per call of [`row_terms`] (lane 0), one compact exp-sum loop.
#[inline(always)]
fn wide_rows<V: SimdF32>(
    call: &Call<'_>,
    rows: usize,
    out: &mut [f32],
    k: &Consts<V>,
    wide_alpha: f32,
) {
    let c = call.classes;
    let zero = V::splat(0.0);
    for r in 0..rows {
        let (Some(z), Some(&label)) = (call.logits.get(r * c..(r + 1) * c), call.labels.get(r))
        else {
            continue;
        };
        let y = match usize::try_from(label) {
            Ok(y) if y < c => y,
            _ => continue,
        };
        let alpha = call.weights.of(y);
        if alpha <= wide_alpha {
            continue;
        }
        let Some(g) = out.get_mut(r * c..(r + 1) * c) else {
            continue;
        };
        let (m, _) = row_range::<V>(z);
        let ms = V::splat(m);
        // S_o with TwoSum and the exps' low parts, the label's lane masked.
        let (mut s, mut e_lo) = (zero, zero);
        let mut j = 0;
        while j < c {
            let rest = (c - j).min(V::LANES);
            // SAFETY: rest values from j are in bounds of z.
            let zv = unsafe {
                if rest == V::LANES {
                    V::load(z.as_ptr().add(j))
                } else {
                    V::load_partial(z.as_ptr().add(j), rest, f32::NEG_INFINITY)
                }
            };
            let (d, dl) = shifted(zv, ms);
            let (e, el) = exp_parts_wide(d, dl);
            // Padding lanes and the label's lane out.
            let in_row = iota::<V>().lt(V::splat(rest as f32));
            // (y's lane index, small and exact in f32, only in y's vector.)
            let y_lane = if (j..j + rest).contains(&y) {
                (y - j) as f32
            } else {
                -1.0
            };
            let is_y = iota::<V>().eq(V::splat(y_lane));
            let e = V::select(is_y, zero, V::select(in_row, e, zero));
            let el = V::select(is_y, zero, V::select(in_row, el, zero));
            let (t, err) = two_sum(s, e);
            s = t;
            e_lo = e_lo + (err + el);
            j += rest;
        }
        let total = s.reduce_add_f64() + e_lo.reduce_add_f64();
        let so_hi = total as f32;
        let so_lo = (total - f64::from(so_hi)) as f32;
        let (d, dl) = shifted_label(z.get(y).copied().unwrap_or(0.0), m);
        let sums = RowSums {
            dy_hi: V::splat(d),
            dy_lo: V::splat(dl),
            so_hi: V::splat(so_hi),
            so_lo: V::splat(so_lo),
            alpha: V::splat(alpha),
            active: zero.eq(zero),
        };
        let t = row_terms::<V>(&sums, k);
        if exact_lanes(&sums, &t, k).grad & 1 != 0 {
            // Beyond the f32 formulas (see `run`): the row in f64.
            let gamma = call.gamma;
            if exact_row(z, y, alpha, gamma, call.scale, Some(&mut *g)).is_some() {
                continue;
            }
        }
        let coef = t.coef.to_array()[0];
        let gy = t.grad_y.to_array()[0];
        wide_scale_pass::<V>(z, g, m, coef);
        if let Some(slot) = g.get_mut(y) {
            *slot = gy;
        }
    }
}

/// The max and exp passes of row `r` into lane `i` of the batch; with a gradient
/// (`grad`), parks `e_j` in the row's gradient (or zeroes it for an ignored row).
/// `range`: row `r`'s range if the previous row found it; returns row `r + 1`'s,
/// found during this row's exp pass (software pipelining: the max pass of the
/// next row rides on this row's loads, and this row's exp pass does not wait for
/// a reduction).
#[inline(always)]
fn sum_row<V: SimdF32>(
    call: &Call<'_>,
    r: usize,
    i: usize,
    b: &mut Batch,
    grad: Option<&mut [f32]>,
    range: Option<(f32, V)>,
) -> Option<(f32, V)> {
    let c = call.classes;
    let (Some(row), Some(&label)) = (call.logits.get(r * c..(r + 1) * c), call.labels.get(r))
    else {
        return None;
    };
    // The next row, or this one again at the end (its range is then unused).
    let next = call.logits.get((r + 1) * c..(r + 2) * c).unwrap_or(row);
    let grad_row = grad.and_then(|g| g.get_mut(r * c..(r + 1) * c));
    let y = match usize::try_from(label) {
        Ok(y) if y < c => y,
        _ => {
            // Ignored row: the lane stays inactive (loss 0), zero gradient.
            if let Some(g) = grad_row {
                g.fill(0.0);
            }
            return None;
        }
    };
    let (m, lo) = range.unwrap_or_else(|| row_range::<V>(row));
    // Lanes below a bound, from the per-lane minima (no horizontal min needed).
    let any_below = |bound: f32| V::bitmask(lo.lt(V::splat(bound))) != 0;
    // Infinities, or a range above NEAR (z - m may overflow, or its residual be
    // large, or its exp need the clamp), take the path with the special cases. (A NaN row may land anywhere:
    // it is NaN whatever the path.)
    // Short rows use one data-independent path (the cheaper Fast2Sum orders would be
    // a per-row branch, and mispredicting it costs more than they save); long rows
    // take the cheapest exact order that holds for the whole row.
    let short = c <= SHORT_ROW;
    let diff = if !m.is_finite() || any_below(m - NEAR) {
        DIFF_WIDE
    } else if short {
        DIFF_TWO_SUM
    } else if m < 0.0 {
        DIFF_Z_FIRST
    } else if !any_below(-m) {
        DIFF_MAX_FIRST
    } else {
        DIFF_TWO_SUM
    };
    let store = grad_row.is_some();
    let dst = grad_row.map_or(core::ptr::null_mut(), |g| g.as_mut_ptr());
    // SAFETY: with STORE, dst is the row's gradient: C values, as long as row.
    let (s_hi, s_lo, next_range) = unsafe {
        match (store, short, diff) {
            (true, true, DIFF_TWO_SUM) => {
                exp_pass::<V, true, true, DIFF_TWO_SUM>(row, next, dst, m, y)
            }
            (true, true, _) => exp_pass::<V, true, true, DIFF_WIDE>(row, next, dst, m, y),
            (true, false, DIFF_MAX_FIRST) => {
                exp_pass::<V, true, false, DIFF_MAX_FIRST>(row, next, dst, m, y)
            }
            (true, false, DIFF_Z_FIRST) => {
                exp_pass::<V, true, false, DIFF_Z_FIRST>(row, next, dst, m, y)
            }
            (true, false, DIFF_TWO_SUM) => {
                exp_pass::<V, true, false, DIFF_TWO_SUM>(row, next, dst, m, y)
            }
            (true, false, _) => exp_pass::<V, true, false, DIFF_WIDE>(row, next, dst, m, y),
            (false, true, DIFF_TWO_SUM) => {
                exp_pass::<V, false, true, DIFF_TWO_SUM>(row, next, dst, m, y)
            }
            (false, true, _) => exp_pass::<V, false, true, DIFF_WIDE>(row, next, dst, m, y),
            (false, false, DIFF_MAX_FIRST) => {
                exp_pass::<V, false, false, DIFF_MAX_FIRST>(row, next, dst, m, y)
            }
            (false, false, DIFF_Z_FIRST) => {
                exp_pass::<V, false, false, DIFF_Z_FIRST>(row, next, dst, m, y)
            }
            (false, false, DIFF_TWO_SUM) => {
                exp_pass::<V, false, false, DIFF_TWO_SUM>(row, next, dst, m, y)
            }
            (false, false, _) => exp_pass::<V, false, false, DIFF_WIDE>(row, next, dst, m, y),
        }
    };
    if let (Some(zy), Some(sh), Some(sl), Some(a), Some(act), Some(yi)) = (
        b.zy.get_mut(i),
        b.so_hi.get_mut(i),
        b.so_lo.get_mut(i),
        b.alpha.get_mut(i),
        b.active.get_mut(i),
        b.y.get_mut(i),
    ) {
        if let Some(slot) = b.m.get_mut(i) {
            *slot = m;
        }
        *zy = row.get(y).copied().unwrap_or(0.0);
        *sh = s_hi;
        *sl = s_lo;
        *a = call.weights.of(y);
        *act = 1.0;
        *yi = y;
    }
    Some(next_range)
}

/// The largest logit of a row, and the lane-wise minima (for the caller's range
/// checks). NaN handling: see `SimdF32::reduce_max`; a NaN logit makes its row NaN
/// through its `exp` either way.
#[inline(always)]
fn row_range<V: SimdF32>(row: &[f32]) -> (f32, V) {
    let len = row.len();
    let mut hi = [V::splat(f32::NEG_INFINITY); 2];
    let mut lo = [V::splat(f32::INFINITY); 2];
    let mut j = 0;
    while j + 2 * V::LANES <= len {
        for (a, (h, l)) in hi.iter_mut().zip(lo.iter_mut()).enumerate() {
            // SAFETY: 2 LANES values from j are in bounds.
            let z = unsafe { V::load(row.as_ptr().add(j + a * V::LANES)) };
            *h = h.max(z);
            *l = l.min(z);
        }
        j += 2 * V::LANES;
    }
    while j < len {
        let rest = (len - j).min(V::LANES);
        // SAFETY: rest values from j are in bounds.
        let (zh, zl) = unsafe {
            if rest == V::LANES {
                let z = V::load(row.as_ptr().add(j));
                (z, z)
            } else {
                let p = row.as_ptr().add(j);
                (
                    V::load_partial(p, rest, f32::NEG_INFINITY),
                    V::load_partial(p, rest, f32::INFINITY),
                )
            }
        };
        hi[0] = hi[0].max(zh);
        lo[0] = lo[0].min(zl);
        j += rest;
    }
    (hi[0].max(hi[1]).reduce_max(), lo[0].min(lo[1]))
}

/// `S_o = sum_{j != y} e^(z_j - m)` as `hi + lo`; with `STORE`, writes every
/// `e^(z_j - m)` (the label's too, rounded to f32) to `dst`.
///
/// Per lane, a running sum with each addition's rounding error recovered exactly
/// by TwoSum; the errors and the exps' low parts go to a second sum, which stays
/// below 2^-23 of the first, so its own roundings do not count. (A running sum
/// started at 1 with Fast2Sum is three operations cheaper, but where every term is
/// below 2^-24, as when the label dominates the row, the 1 absorbs nothing and the
/// second sum becomes a plain f32 sum of the terms: 8 ULP at C = 36 on one lane, a
/// fuzz finding.) Long rows use two pairs (even and odd vectors), which keeps the
/// loop-carried chain at one addition; short rows one. The lanes are added in f64.
/// The result is as accurate as the exps' hi + lo (about 0.15 ULP).
///
/// Returns also the range of `next` (a row of the same length): its max and
/// lane-wise minima.
///
/// # Safety
/// With `STORE`, `dst` must be valid for writing `row.len()` f32 (a gradient row).
#[inline(always)]
unsafe fn exp_pass<V: SimdF32, const STORE: bool, const SHORT: bool, const DIFF: u8>(
    row: &[f32],
    next: &[f32],
    dst: *mut f32,
    m: f32,
    y: usize,
) -> (f32, f32, (f32, V)) {
    let len = row.len().min(next.len());
    let mut range = (V::splat(f32::NEG_INFINITY), V::splat(f32::INFINITY));
    let ms = V::splat(m);
    // The label's lane is left out of the sum. Long rows: by a branch on y's vector
    // and lane (one misprediction per row, cheap next to the row). Short rows: every
    // vector weighs its exps by a window of KEEP (0 at the label, 1 elsewhere),
    // folded into the sums' FMAs.
    let y_at = if SHORT { usize::MAX } else { y - y % V::LANES };
    let y_lane = if SHORT {
        V::splat(0.0).lt(V::splat(0.0))
    } else {
        iota::<V>().eq(V::splat((y - y_at) as f32))
    };
    // Short rows have y < C <= SHORT_ROW = KEEP_ZERO, so the offset is in bounds (a
    // null pointer for long rows, which do not read it).
    let keep = if SHORT {
        KEEP_ZERO
            .checked_sub(y)
            .and_then(|o| KEEP.get(o..))
            .map_or(core::ptr::null(), <[f32]>::as_ptr)
    } else {
        core::ptr::null()
    };
    let mut acc = [(V::splat(0.0), V::splat(0.0)); 2];
    // Short rows use one pair: their chain is a few vectors long, rows overlap
    // anyway, and one horizontal f64 sum per row is saved.
    let second = usize::from(!SHORT);
    let mut j = 0;
    while j + 2 * V::LANES <= len {
        for a in 0..2 {
            let at = j + a * V::LANES;
            let pair = &mut acc[a & second];
            // SAFETY: LANES values from `at` are in bounds (and of dst when STORE).
            unsafe {
                exp_step::<V, STORE, DIFF, true>(
                    row,
                    next,
                    dst,
                    ms,
                    at,
                    V::LANES,
                    y_at,
                    y_lane,
                    pair,
                    keep,
                    &mut range,
                )
            };
        }
        j += 2 * V::LANES;
    }
    while j < len {
        let rest = (len - j).min(V::LANES);
        // SAFETY: rest values from j are in bounds (and of dst when STORE).
        unsafe {
            if rest == V::LANES {
                exp_step::<V, STORE, DIFF, true>(
                    row,
                    next,
                    dst,
                    ms,
                    j,
                    rest,
                    y_at,
                    y_lane,
                    &mut acc[0],
                    keep,
                    &mut range,
                );
            } else {
                exp_step::<V, STORE, DIFF, false>(
                    row,
                    next,
                    dst,
                    ms,
                    j,
                    rest,
                    y_at,
                    y_lane,
                    &mut acc[second],
                    keep,
                    &mut range,
                );
            }
        }
        j += rest;
    }
    let [(s0, c0), (s1, c1)] = acc;
    let total = if SHORT {
        s0.reduce_add_f64() + c0.reduce_add_f64()
    } else {
        s0.reduce_add_f64() + s1.reduce_add_f64() + (c0 + c1).reduce_add_f64()
    };
    let hi = total as f32;
    (
        hi,
        (total - f64::from(hi)) as f32,
        (range.0.reduce_max(), range.1),
    )
}

/// One vector of [`exp_pass`]: `e^(z - m)` of the LANES logits from `j` (the first
/// `rest` when not `FULL`), stored when `STORE`, added to the accumulator pair
/// `acc` (without the label's lane: weighted by the LANES values of `keep` from `j`
/// when `y_at == usize::MAX`, else lane `y_lane` left out when `j == y_at`).
///
/// Also folds the same positions of `next` into `range` (max, lane-wise min).
///
/// # Safety
/// `rest` (LANES when `FULL`) values from `j` are in bounds of `row` and `next`,
/// `dst` is valid for writing them when `STORE`, and when `y_at == usize::MAX`,
/// `keep` is valid for reading LANES values from `j`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn exp_step<V: SimdF32, const STORE: bool, const DIFF: u8, const FULL: bool>(
    row: &[f32],
    next: &[f32],
    dst: *mut f32,
    ms: V,
    j: usize,
    rest: usize,
    y_at: usize,
    y_lane: V::Mask,
    acc: &mut (V, V),
    keep: *const f32,
    range: &mut (V, V),
) {
    let zero = V::splat(0.0);
    // SAFETY: the caller's guarantee (`next` is as long as `row`).
    let (z, zn_hi, zn_lo) = unsafe {
        if FULL {
            let zn = V::load(next.as_ptr().add(j));
            (V::load(row.as_ptr().add(j)), zn, zn)
        } else {
            let p = next.as_ptr().add(j);
            (
                V::load_partial(row.as_ptr().add(j), rest, f32::NEG_INFINITY),
                V::load_partial(p, rest, f32::NEG_INFINITY),
                V::load_partial(p, rest, f32::INFINITY),
            )
        }
    };
    *range = (range.0.max(zn_hi), range.1.min(zn_lo));
    // z - m = d + dl exactly.
    let (d, dl) = match DIFF {
        DIFF_MAX_FIRST => {
            // |m| >= |z|: Fast2Sum(-m, z).
            let d = z - ms;
            (d, z - (d + ms))
        }
        DIFF_Z_FIRST => {
            // |z| >= |m|: Fast2Sum(z, -m).
            let d = z - ms;
            (d, (z - d) - ms)
        }
        DIFF_TWO_SUM => two_sum(z, -ms),
        _ => shifted(z, ms),
    };
    // Within NEAR of the max: d >= -103 and |dl| <= 2^-18, exp_parts_near's range.
    let (mut e, mut el) = if DIFF == DIFF_WIDE {
        exp_parts_wide(d, dl)
    } else {
        exp_parts_near(d, dl)
    };
    if !FULL {
        // Padding lanes to 0 (with m = -inf they would be ties at the max; the
        // padding's -inf also breaks the Fast2Sum orders).
        let keep = iota::<V>().lt(V::splat(rest as f32));
        e = V::select(keep, e, zero);
        el = V::select(keep, el, zero);
    }
    if STORE {
        // SAFETY: the caller's guarantee.
        unsafe {
            if FULL {
                e.store(dst.add(j));
            } else {
                e.store_partial(dst.add(j), rest);
            }
        }
    }
    if y_at == usize::MAX {
        // SAFETY: the caller's guarantee.
        let w = unsafe { V::load(keep.add(j)) };
        // TwoSum of the running sum and w e, with w in {0, 1} (w e is exact).
        let (s, err) = two_sum(acc.0, e * w);
        *acc = (s, acc.1 + el.mul_add(w, err));
        return;
    }
    if j == y_at {
        e = V::select(y_lane, zero, e);
        el = V::select(y_lane, zero, el);
    }
    let (s, err) = two_sum(acc.0, e);
    *acc = (s, acc.1 + (err + el));
}

/// `g_j = coef e^(z_j - m)` computed again from the logits, the factor applied
/// before the result is scaled to its exponent (`scaled_exp`): for rows whose
/// factor is above 1, where an `e_j` below the f32 range can give a normal
/// gradient.
#[inline(always)]
fn wide_scale_pass<V: SimdF32>(z: &[f32], g: &mut [f32], m: f32, coef: f32) {
    let len = z.len().min(g.len());
    let ms = V::splat(m);
    let cv = V::splat(coef);
    // A function, not a closure: a closure was compiled out of line, without the
    // entry point's target features (scripts/check-asm.sh caught it).
    #[inline(always)]
    fn one_pass<V: SimdF32>(zv: V, ms: V, cv: V) -> V {
        let (d, dl) = shifted(zv, ms);
        let far = d.lt(V::splat(-200.0));
        let (h, l, k) = exp_reduced(V::splat(-200.0).max(d), V::select(far, V::splat(0.0), dl));
        scaled_exp(h, l, k, cv)
    }
    let mut j = 0;
    while j + V::LANES <= len {
        // SAFETY: LANES values from j are in bounds of z and g.
        unsafe { one_pass(V::load(z.as_ptr().add(j)), ms, cv).store(g.as_mut_ptr().add(j)) };
        j += V::LANES;
    }
    if j < len {
        let rest = len - j;
        // SAFETY: rest < LANES values from j are in bounds of z and g.
        unsafe {
            one_pass(
                V::load_partial(z.as_ptr().add(j), rest, f32::NEG_INFINITY),
                ms,
                cv,
            )
            .store_partial(g.as_mut_ptr().add(j), rest)
        };
    }
}

/// `g_j *= coef` over a gradient row holding `e_j`.
#[inline(always)]
fn scale_pass<V: SimdF32>(g: &mut [f32], coef: f32) {
    let len = g.len();
    let cv = V::splat(coef);
    let mut j = 0;
    while j + V::LANES <= len {
        // SAFETY: LANES values from j are in bounds.
        unsafe {
            let p = g.as_mut_ptr().add(j);
            (V::load(p) * cv).store(p);
        }
        j += V::LANES;
    }
    if j < len {
        let rest = len - j;
        // SAFETY: rest < LANES values from j are in bounds.
        unsafe {
            let p = g.as_mut_ptr().add(j);
            (V::load_partial(p, rest, 0.0) * cv).store_partial(p, rest);
        }
    }
}
