//! Many classes (C > 8): each row is vectorized along its classes.
//!
//! Per row: an exp pass that sums `S_o` and, when the gradient is wanted, parks
//! `e_j` in the gradient row (the output serves as the scratch, so `exp` runs once
//! per logit), and meanwhile finds the next row's max (and lane-wise minima, for
//! the range checks) from the same positions, so no row waits for a separate max
//! pass and its reduction (short rows find the max of the row after next, see
//! [`batches`]); then, once a batch of rows is summed, [`row_terms`]
//! finishes them together (one row per lane) and a last pass scales each parked row
//! by its factor (long rows on the vector backends: during the next batch's exp
//! passes, see [`batches`]). A batch is at most `LANES` rows and at most about 64 KB of
//! gradient, so the parked rows are still in L1 or L2 when scaled. The only buffers are
//! the gradient rows and a few `LANES`-wide arrays of per-row sums.

use super::exact_row::exact_row;
use super::{
    exact_lanes, iota, row_terms, shifted, shifted_label, store_first, with_exact_rows, Call,
    Consts, ExactLanes, LossSum, Mode, RowSums, RowTerms,
};
use crate::simd::math::ldexp_pair;
use crate::simd::softmax::math::{
    exp_parts_wide, exp_reduce_arg, exp_reduced, exp_reduced_from, scaled_exp, two_sum,
};
use crate::simd::{SimdF32, MAX_LANES};

/// Rows up to this many classes take the branch-free exp pass.
const SHORT_ROW: usize = 256;

/// Gradient values a batch may park before it is scaled (64 KB: 16 rows of
/// 1000 classes; the rows come back from L2 at worst, and a fuller batch shares
/// [`row_terms`] among more rows: 3-4% faster at C = 1000 and 2000 than 32 KB,
/// and 16 KB was slower still).
const BATCH_VALUES: usize = 16384;
/// How far ahead (in f32) the exp pass asks for the logits and the gradient it
/// will reach (16 KB: a few rows at C = 80, about four vectors' worth of latency
/// at C = 1000). The hardware prefetchers alone left the pass waiting on memory
/// at 65536 x 80 (0.50 ns/logit against 0.39 with it). The logits are asked for
/// ahead of the row whose range the pass finds (`next`), the one that reads them
/// first: ahead of the row itself, rows longer than this distance went to memory
/// unprefetched (C = 8000: 0.48 against 0.22 ns/logit).
const PREFETCH_AHEAD: usize = 4096;

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
/// Fast2Sum needs the operand with the larger exponent first, and within a row one
/// order often holds for every logit.
///
/// `m >= 0` and no logit's exponent above `m`'s ([`fast2sum_bound`]).
const DIFF_MAX_FIRST: u8 = 0;
/// `m < 0`: every `|z| >= |m|`.
const DIFF_Z_FIRST: u8 = 1;
/// Mixed magnitudes: TwoSum.
const DIFF_TWO_SUM: u8 = 2;
/// An infinite max or min, or a logit below `m - NEAR` (rare: a probability ratio
/// above e^103): TwoSum with the special cases of `shifted`, and `exp_parts_wide`.
const DIFF_WIDE: u8 = 3;

/// The other paths take rows whose logits are all within `NEAR` of their max: then
/// `z - m >= -103` (exact, and its residual below 2^-18), in `exp_reduced`'s range
/// without a clamp.
const NEAR: f32 = 103.0;

/// Per-row results of the first two passes, one lane per row of a batch.
struct Batch {
    /// Row max.
    m: [f32; MAX_LANES],
    /// The label's logit (`z_y - m` is formed for the whole batch at once).
    zy: [f32; MAX_LANES],
    /// Row `i`'s exp-sum accumulators (`S_o` is the sum of both's lanes), summed
    /// for the whole batch by [`row_totals`].
    acc_s: [[f32; MAX_LANES]; MAX_LANES],
    acc_c: [[f32; MAX_LANES]; MAX_LANES],
    alpha: [f32; MAX_LANES],
    active: [f32; MAX_LANES],
    /// The label (where the gradient row gets its own entry).
    y: [usize; MAX_LANES],
    /// Rows in the batch.
    rows: usize,
}

/// Scales a summed batch's gradient rows (holding `e_j`) by their factors, sets
/// the labels' entries, rewrites the rows beyond the f32 formulas, and returns the
/// batch's losses (those rows' in f64).
#[inline(always)]
fn scale_batch<V: SimdF32>(
    call: &Call<'_>,
    r0: usize,
    b: &Batch,
    t: &RowTerms<V>,
    exact: ExactLanes,
    out: &mut [f32],
) -> V {
    let c = call.classes;
    let coef = t.coef.to_array();
    let grad_y = t.grad_y.to_array();
    // The batch's gradient rows, contiguous.
    let rows_out = out.get_mut(r0 * c..(r0 + b.rows) * c).unwrap_or_default();
    let lanes = b
        .active
        .iter()
        .zip(b.y.iter().zip(coef.iter().zip(&grad_y)));
    for (g, (&active, (&y, (&cf, &gy)))) in rows_out.chunks_exact_mut(c).zip(lanes) {
        if active != 0.0 {
            finish_row::<V>(g, cf, y, gy, false);
        }
    }
    with_exact_rows(call, r0, exact, t.loss, Some(out))
}

/// A gradient row from its parked exps: scaled by `coef` (unless `scaled`
/// already), the label's entry `grad_y`.
#[inline(always)]
fn finish_row<V: SimdF32>(g: &mut [f32], coef: f32, y: usize, grad_y: f32, scaled: bool) {
    if !scaled {
        scale_pass::<V>(g, coef);
    }
    if let Some(slot) = g.get_mut(y) {
        *slot = grad_y;
    }
}

/// A summed batch whose gradient rows (holding `e_j`) wait for their factors
/// (deferred scaling, see [`batches`]).
struct Scaling<V: SimdF32> {
    /// The batch's first row and row count.
    r0: usize,
    rows: usize,
    coef: [f32; MAX_LANES],
    grad_y: [f32; MAX_LANES],
    y: [usize; MAX_LANES],
    active: [f32; MAX_LANES],
    exact: ExactLanes,
    loss: V,
}

impl<V: SimdF32> Scaling<V> {
    #[inline(always)]
    fn new(r0: usize, b: &Batch, t: &RowTerms<V>, exact: ExactLanes) -> Self {
        Scaling {
            r0,
            rows: b.rows,
            coef: t.coef.to_array(),
            grad_y: t.grad_y.to_array(),
            y: b.y,
            active: b.active,
            exact,
            loss: t.loss,
        }
    }

    /// Row `i`'s scaling for [`sum_row`], if it has one (an active row).
    #[inline(always)]
    fn row(&self, i: usize) -> Option<(usize, f32)> {
        match (self.active.get(i), self.coef.get(i)) {
            (Some(&a), Some(&cf)) if i < self.rows && a != 0.0 => Some((self.r0 + i, cf)),
            _ => None,
        }
    }

    /// Scales the rows not in `done` (bit `i` for row `i`), sets the labels'
    /// entries, rewrites the rows beyond the f32 formulas, and returns the batch's
    /// losses (those rows' in f64).
    #[inline(always)]
    fn finish(&self, call: &Call<'_>, done: u32, out: &mut [f32]) -> V {
        let c = call.classes;
        // The batch's gradient rows, contiguous.
        let rows_out = out
            .get_mut(self.r0 * c..(self.r0 + self.rows) * c)
            .unwrap_or_default();
        let lanes = self
            .active
            .iter()
            .zip(self.y.iter().zip(self.coef.iter().zip(&self.grad_y)));
        for (i, (g, (&active, (&y, (&cf, &gy))))) in
            rows_out.chunks_exact_mut(c).zip(lanes).enumerate()
        {
            if active != 0.0 {
                finish_row::<V>(g, cf, y, gy, done >> i & 1 != 0);
            }
        }
        with_exact_rows(call, self.r0, self.exact, self.loss, Some(out))
    }
}

/// Runs `rows` rows; `rows` is covered by every slice the mode uses (see
/// `Call::rows`).
#[inline(always)]
pub(super) fn run<V: SimdF32>(call: &Call<'_>, rows: usize, out: &mut [f32]) -> f64 {
    if !const { V::LANES > 1 } || call.classes > SHORT_ROW {
        batches::<V, 1>(call, rows, out)
    } else {
        batches::<V, 2>(call, rows, out)
    }
}

/// [`run`] with the exp pass finding each row's range (max and lane-wise minima)
/// `LEAD` rows ahead. Short rows on the vector backends: two, so that a row's max,
/// reduced across lanes at the end of a pass, is known a whole row before its own
/// pass starts instead of holding that pass back (7% per logit at C = 80). Long
/// rows: one (a pass hides the reduction, and two rows on was 3% slower at
/// C = 1000); the scalar backend too (one instance of this loop: its code size).
/// `LEAD = 2` runs short rows only, so its instance holds only their exp passes.
#[inline(always)]
fn batches<V: SimdF32, const LEAD: usize>(call: &Call<'_>, rows: usize, out: &mut [f32]) -> f64 {
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
    // The ranges of the next rows (`pre[0]` the next one's, `pre[1]` the one after
    // with `LEAD = 2`), found during earlier rows' exp passes.
    let mut pre: [Option<(f32, V)>; 2] = [None, None];
    // Long rows on the vector backends scale a batch's gradient rows during the
    // next batch's exp passes (row i of the one along row i of the other: the same
    // length, one vector of each per step), where the loop has room for the extra
    // load and store: 0.239 -> 0.219 ns/logit at C = 1000 on AVX-512. Rows left
    // over (the next batch shorter, or an ignored row there) are scaled when the
    // batch is finished (`Scaling::finish`). The other batches are scaled at once
    // by `scale_batch` (finishing them through `Scaling` too cost 3% at C = 80).
    let defer = LEAD == 1 && fused && const { V::LANES > 1 } && c > SHORT_ROW;
    let mut waiting: Option<Scaling<V>> = None;
    let mut r0 = 0;
    while r0 < rows {
        let n = (rows - r0).min(per_batch);
        let mut b = Batch {
            m: [0.0; MAX_LANES],
            zy: [0.0; MAX_LANES],
            acc_s: [[0.0; MAX_LANES]; MAX_LANES],
            acc_c: [[0.0; MAX_LANES]; MAX_LANES],
            alpha: [0.0; MAX_LANES],
            active: [0.0; MAX_LANES],
            y: [0; MAX_LANES],
            rows: n,
        };
        let mut done = 0u32;
        for i in 0..n {
            let (ahead, scaled) = sum_row::<V, LEAD>(
                call,
                r0 + i,
                i,
                &mut b,
                if fused { Some(&mut *out) } else { None },
                pre[0],
                waiting.as_ref().and_then(|w| w.row(i)),
            );
            done |= u32::from(scaled) << i;
            if LEAD == 2 {
                pre = [pre[1], ahead];
            } else {
                pre[0] = ahead;
            }
        }
        if let Some(w) = waiting.take() {
            sum.add(w.finish(call, done, out));
        }
        // SAFETY: each array holds MAX_LANES >= LANES values.
        let sums = unsafe {
            let (dy_hi, dy_lo) = shifted_label(V::load(b.zy.as_ptr()), V::load(b.m.as_ptr()));
            let (so_hi, so_lo) = row_totals::<V>(&b.acc_s, &b.acc_c);
            RowSums {
                dy_hi,
                dy_lo,
                so_hi,
                so_lo,
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
                if defer {
                    waiting = Some(Scaling::new(r0, &b, &t, exact));
                } else {
                    sum.add(scale_batch::<V>(call, r0, &b, &t, exact, out));
                }
            }
        }
        r0 += n;
    }
    if let Some(w) = waiting.take() {
        sum.add(w.finish(call, 0, out));
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
/// `range`: row `r`'s range if an earlier row found it; returns row `r + LEAD`'s,
/// found during this row's exp pass (software pipelining: the max pass of the
/// next row rides on this row's loads, and this row's exp pass does not wait for
/// a reduction). `scale`: an earlier gradient row and its factor, scaled during
/// the exp pass (see [`batches`]); the returned flag tells whether it was.
#[inline(always)]
fn sum_row<V: SimdF32, const LEAD: usize>(
    call: &Call<'_>,
    r: usize,
    i: usize,
    b: &mut Batch,
    grad: Option<&mut [f32]>,
    range: Option<(f32, V)>,
    scale: Option<(usize, f32)>,
) -> (Option<(f32, V)>, bool) {
    let c = call.classes;
    let (Some(row), Some(&label)) = (call.logits.get(r * c..(r + 1) * c), call.labels.get(r))
    else {
        return (None, false);
    };
    // The row `LEAD` on, or this one again at the end (its range is then unused).
    let ahead = r + LEAD;
    let next = call.logits.get(ahead * c..(ahead + 1) * c).unwrap_or(row);
    // The row's gradient and the row to scale, both from one pointer into `grad`
    // (an earlier row: disjoint from this one).
    let null = core::ptr::null_mut();
    let (dst, scale) = match grad {
        Some(g) if g.len() >= (r + 1) * c => {
            let base = g.as_mut_ptr();
            let scale = match scale {
                Some((sr, coef)) if sr < r => (base.wrapping_add(sr * c), coef),
                _ => (null, 0.0),
            };
            (base.wrapping_add(r * c), scale)
        }
        _ => (null, (null, 0.0)),
    };
    let y = match usize::try_from(label) {
        Ok(y) if y < c => y,
        _ => {
            // Ignored row: the lane stays inactive (loss 0), zero gradient.
            if !dst.is_null() {
                // SAFETY: dst is row r of grad, C values in bounds.
                unsafe { core::slice::from_raw_parts_mut(dst, c).fill(0.0) };
            }
            return (None, false);
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
    // (`LEAD = 2` only runs short rows, see `batches`.)
    let short = LEAD == 2 || c <= SHORT_ROW;
    let diff = if !m.is_finite() || any_below(m - NEAR) {
        DIFF_WIDE
    } else if short {
        DIFF_TWO_SUM
    } else if m < 0.0 {
        DIFF_Z_FIRST
    } else if V::bitmask(lo.le(V::splat(-fast2sum_bound(m)))) == 0 {
        DIFF_MAX_FIRST
    } else {
        DIFF_TWO_SUM
    };
    let store = !dst.is_null();
    // Only long rows' exp passes scale (`batches` defers only long rows').
    let scale = if short { (null, 0.0) } else { scale };
    let scaled = !scale.0.is_null();
    // SAFETY: with STORE, dst is the row's gradient: C values, as long as row; a
    // non-null scale row is another row of grad, C values, before r.
    let (acc_s, acc_c, next_range) = unsafe {
        match (store, short, diff) {
            (true, true, DIFF_TWO_SUM) => {
                exp_pass::<V, true, true, DIFF_TWO_SUM>(row, next, dst, scale, m, y)
            }

            (true, true, _) => exp_pass::<V, true, true, DIFF_WIDE>(row, next, dst, scale, m, y),
            (true, false, DIFF_MAX_FIRST) => {
                exp_pass::<V, true, false, DIFF_MAX_FIRST>(row, next, dst, scale, m, y)
            }
            (true, false, DIFF_Z_FIRST) => {
                exp_pass::<V, true, false, DIFF_Z_FIRST>(row, next, dst, scale, m, y)
            }
            (true, false, DIFF_TWO_SUM) => {
                exp_pass::<V, true, false, DIFF_TWO_SUM>(row, next, dst, scale, m, y)
            }
            (true, false, _) => exp_pass::<V, true, false, DIFF_WIDE>(row, next, dst, scale, m, y),
            (false, true, DIFF_TWO_SUM) => {
                exp_pass::<V, false, true, DIFF_TWO_SUM>(row, next, dst, scale, m, y)
            }
            (false, true, _) => exp_pass::<V, false, true, DIFF_WIDE>(row, next, dst, scale, m, y),
            (false, false, DIFF_MAX_FIRST) => {
                exp_pass::<V, false, false, DIFF_MAX_FIRST>(row, next, dst, scale, m, y)
            }
            (false, false, DIFF_Z_FIRST) => {
                exp_pass::<V, false, false, DIFF_Z_FIRST>(row, next, dst, scale, m, y)
            }
            (false, false, DIFF_TWO_SUM) => {
                exp_pass::<V, false, false, DIFF_TWO_SUM>(row, next, dst, scale, m, y)
            }
            (false, false, _) => {
                exp_pass::<V, false, false, DIFF_WIDE>(row, next, dst, scale, m, y)
            }
        }
    };
    if let (Some(zy), Some(sh), Some(sl), Some(a), Some(act), Some(yi)) = (
        b.zy.get_mut(i),
        b.acc_s.get_mut(i),
        b.acc_c.get_mut(i),
        b.alpha.get_mut(i),
        b.active.get_mut(i),
        b.y.get_mut(i),
    ) {
        if let Some(slot) = b.m.get_mut(i) {
            *slot = m;
        }
        *zy = row.get(y).copied().unwrap_or(0.0);
        // SAFETY: each array holds MAX_LANES >= LANES values.
        unsafe {
            acc_s.store(sh.as_mut_ptr());
            acc_c.store(sl.as_mut_ptr());
        }
        *a = call.weights.of(y);
        *act = 1.0;
        *yi = y;
    }
    (Some(next_range), scaled)
}

/// For a max `m >= 0`: the logits above `-bound` (and at most `m`) have an exponent
/// no larger than `m`'s, so that Fast2Sum(-m, z) is exact for them (the condition
/// is on the exponents, not the magnitudes: `-3.9 - 3.5` qualifies, and with it
/// every row of uniform logits in [-4, 4] whose max is above 2).
/// `2^(e + 1)` for `m = 2^e * 1.f` (infinite for `e = 127`), infinite for `m = 0`
/// (`z - 0` is exact), 0 for a subnormal `m` (no logit qualifies: TwoSum).
#[inline(always)]
fn fast2sum_bound(m: f32) -> f32 {
    if m == 0.0 {
        f32::INFINITY
    } else {
        f32::from_bits(m.to_bits() & 0x7F80_0000) * 2.0
    }
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

/// The accumulators of `S_o = sum_{j != y} e^(z_j - m)` (`S_o` is the sum of all
/// lanes of both, see [`row_totals`]); with `STORE`, writes every `e^(z_j - m)`
/// (the label's too, rounded to f32) to `dst`.
///
/// Per lane, a running sum with each addition's rounding error recovered exactly
/// by TwoSum; the errors and the exps' low parts go to a second sum, which stays
/// below 2^-23 of the first, so its own roundings do not count. (A running sum
/// started at 1 with Fast2Sum is three operations cheaper, but where every term is
/// below 2^-24, as when the label dominates the row, the 1 absorbs nothing and the
/// second sum becomes a plain f32 sum of the terms: 8 ULP at C = 36 on one lane, a
/// fuzz finding.) Short rows use one pair; long rows on FMA units without f64 sums
/// (NEON) two (even and odd vectors), which keeps the loop-carried chain at one
/// addition. The other long rows ([`wide_sums`]) sum the exps by
/// [`SimdF32::add_wide`] (f64 lanes on AVX2 and AVX-512) and their low parts in f32
/// (each below 2^-24 of its exp), and return the row's total in lane 0. The result
/// is as accurate as the exps' hi + lo (about 0.15 ULP).
///
/// Returns also the range of `next` (a row of the same length): its max and
/// lane-wise minima.
///
/// Long rows (not `SHORT`) also scale `scale.0`, when not null, by `scale.1`: an
/// earlier gradient row (see [`batches`]), one vector per vector of this row.
///
/// # Safety
/// With `STORE`, `dst` must be valid for writing `row.len()` f32 (a gradient row);
/// a non-null `scale.0` valid for reading and writing as many, disjoint from `dst`.
#[inline(always)]
unsafe fn exp_pass<V: SimdF32, const STORE: bool, const SHORT: bool, const DIFF: u8>(
    row: &[f32],
    next: &[f32],
    dst: *mut f32,
    scale: (*mut f32, f32),
    m: f32,
    y: usize,
) -> (V, V, (f32, V)) {
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
    // Short rows use one pair: their chain is a few vectors long and rows overlap
    // anyway. So do wide sums (`acc[0].1` holds the low parts).
    let second = usize::from(!SHORT && !wide_sums::<V>());
    let mut wide = [V::splat(0.0); 2];
    // A three-stage software pipeline over the full vectors: vector `v + 2` is
    // loaded and reduced (`exp_front`) and vector `v + 1`'s exp formed (`exp_mid`)
    // before vector `v` is stored and summed (`exp_back`), so the out-of-order
    // window holds fewer operations waiting on their inputs (the exp alone is a
    // chain of some fifteen dependent operations). 8-15% per logit over one
    // vector at a time, measured at C = 80 to 1000 on AVX-512.
    let lanes = V::LANES;
    // 1, opaque to the optimizer (see exp_front and exp_back).
    let one = V::splat(core::hint::black_box(1.0f32));
    let sink = Sink {
        one,
        dst,
        y_at,
        y_lane,
        keep,
        scale: scale.0,
        coef: V::splat(scale.1),
    };
    let full = len / lanes;
    let mut v = 0;
    if full > 0 {
        // Vectors 0..full are full and in bounds of row and next (the SAFETY of the
        // exp_front calls).
        // SAFETY: see above.
        let mut front =
            unsafe { exp_front::<V, DIFF, true>(one, row, next, dst, ms, 0, lanes, &mut range) };
        let mut mid = exp_mid(front);
        if full > 1 {
            // SAFETY: see above.
            front = unsafe {
                exp_front::<V, DIFF, true>(one, row, next, dst, ms, lanes, lanes, &mut range)
            };
        }
        // Invariant: `mid` is vector v's exp, `front` vector v + 1's reduction
        // when v + 1 < full.
        while v + 1 < full {
            let ahead = if v + 2 < full {
                // SAFETY: see above.
                unsafe {
                    exp_front::<V, DIFF, true>(
                        one,
                        row,
                        next,
                        dst,
                        ms,
                        (v + 2) * lanes,
                        lanes,
                        &mut range,
                    )
                }
            } else {
                front
            };
            let mid_next = exp_mid(front);
            // SAFETY: vector v is in bounds of dst when STORE, and of keep's window.
            unsafe {
                exp_back::<V, STORE, true, SHORT>(
                    &sink,
                    mid,
                    v * lanes,
                    lanes,
                    &mut acc[v & second],
                    &mut wide,
                )
            };
            mid = mid_next;
            front = ahead;
            v += 1;
        }
        // SAFETY: as above, for the last full vector.
        unsafe {
            exp_back::<V, STORE, true, SHORT>(
                &sink,
                mid,
                v * lanes,
                lanes,
                &mut acc[v & second],
                &mut wide,
            )
        };
        v += 1;
    }
    let j = v * lanes;
    if j < len {
        let rest = len - j;
        // SAFETY: rest values from j are in bounds of row, next (and dst when STORE).
        let front =
            unsafe { exp_front::<V, DIFF, false>(one, row, next, dst, ms, j, rest, &mut range) };
        // SAFETY: as above; keep's window holds LANES values from any j < C.
        unsafe {
            exp_back::<V, STORE, false, SHORT>(
                &sink,
                exp_mid(front),
                j,
                rest,
                &mut acc[v & second],
                &mut wide,
            )
        };
    }
    let [(s0, c0), (s1, c1)] = acc;
    let (s, c) = if !SHORT && wide_sums::<V>() {
        // The row's total as lane 0 of hi + lo (row_totals adds the zeros exactly).
        let total = V::wide_total(wide) + c0.reduce_add_f64();
        let hi = total as f32;
        let lo = (total - f64::from(hi)) as f32;
        let first = iota::<V>().eq(V::splat(0.0));
        (
            V::select(first, V::splat(hi), V::splat(0.0)),
            V::select(first, V::splat(lo), V::splat(0.0)),
        )
    } else if SHORT {
        (s0, c0)
    } else {
        let (s, err) = two_sum(s0, s1);
        (s, (c0 + c1) + err)
    };
    (s, c, (range.0.reduce_max(), range.1))
}

/// `S_o` of every row of a batch as `hi + lo`, lane `i` for row `i`: the sum of
/// the lanes of row `i`'s accumulators `s` and `c` (the error sum), by a
/// transposing tree ([`SimdF32::unzip`]) that adds lane pairs of two rows at each
/// level, the additions of `s` exact (TwoSum, errors to `c`). No horizontal sum per
/// row, whose chain each row would wait on. `c` stays below `2^-23` of `s`, so its
/// own roundings do not count: as accurate as the terms' `hi + lo`.
#[inline(always)]
fn row_totals<V: SimdF32>(
    s: &[[f32; MAX_LANES]; MAX_LANES],
    c: &[[f32; MAX_LANES]; MAX_LANES],
) -> (V, V) {
    let mut vs = [V::splat(0.0); MAX_LANES];
    let mut vc = [V::splat(0.0); MAX_LANES];
    for ((ds, dc), (rs, rc)) in vs
        .iter_mut()
        .zip(vc.iter_mut())
        .zip(s.iter().zip(c))
        .take(V::LANES)
    {
        // SAFETY: each row holds MAX_LANES >= LANES values.
        unsafe {
            *ds = V::load(rs.as_ptr());
            *dc = V::load(rc.as_ptr());
        }
    }
    let mut n = V::LANES;
    while n > 1 {
        for i in 0..n / 2 {
            let (se, so) = V::unzip(vs[2 * i], vs[2 * i + 1]);
            let (ce, co) = V::unzip(vc[2 * i], vc[2 * i + 1]);
            let (t, err) = two_sum(se, so);
            vs[i] = t;
            vc[i] = (ce + co) + err;
        }
        n /= 2;
    }
    // Fast2Sum (|c| is far below |s|): hi is the rounded total.
    let hi = vs[0] + vc[0];
    (hi, vc[0] - (hi - vs[0]))
}

/// The first stage of one vector of [`exp_pass`]: loads the LANES logits from `j`
/// (the first `rest` when not `FULL`), forms `z - m` exactly and returns the
/// reduced argument of its exp ([`exp_reduce_arg`]). Also folds the same positions
/// of `next` into `range` (max, lane-wise min), and asks for the lines
/// `PREFETCH_AHEAD` values on in `next` and (when not null) `dst`.
///
/// # Safety
/// `rest` (LANES when `FULL`) values from `j` are in bounds of `row` and `next`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn exp_front<V: SimdF32, const DIFF: u8, const FULL: bool>(
    one: V,
    row: &[f32],
    next: &[f32],
    dst: *mut f32,
    ms: V,
    j: usize,
    rest: usize,
    range: &mut (V, V),
) -> (V, V, V) {
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
    // Hints only: the addresses may lie past the slices (never dereferenced).
    V::prefetch(next.as_ptr().wrapping_add(j + PREFETCH_AHEAD));
    if !dst.is_null() {
        V::prefetch_write(dst.wrapping_add(j + PREFETCH_AHEAD));
    }
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
        DIFF_TWO_SUM if !fma_units::<V>() => two_sum(z, -ms),
        DIFF_TWO_SUM => {
            // TwoSum(z, -m), two of its additions as `x * one + y` (the same
            // roundings) on the FMA units, which have room next to this pass's
            // additions: 8% at C = 256 (`one` is 1 hidden from the compiler, which
            // would turn them back into additions).
            let b = -ms;
            let d = z.mul_add(one, b);
            let bb = d - z;
            (d, (z - (d - bb)).mul_add(one, b - bb))
        }
        _ => shifted(z, ms),
    };
    // Within NEAR of the max: d >= -103 and |dl| <= 2^-18, exp_reduced's range
    // without a clamp; otherwise clamped at -104 with the residual dropped there
    // (`exp_parts_wide`).
    if DIFF == DIFF_WIDE {
        let far = d.lt(V::splat(-104.0));
        exp_reduce_arg(V::splat(-104.0).max(d), V::select(far, V::splat(0.0), dl))
    } else {
        exp_reduce_arg(d, dl)
    }
}

/// `e^(z - m)` as `hi + lo` from [`exp_front`]'s reduced argument.
#[inline(always)]
fn exp_mid<V: SimdF32>((k, r, r_lo): (V, V, V)) -> (V, V) {
    let (h, l, k) = exp_reduced_from(k, r, r_lo);
    ldexp_pair(h, l, k)
}

/// What [`exp_back`] needs of its row: the same for all its vectors.
#[derive(Clone, Copy)]
struct Sink<V: SimdF32> {
    /// 1, opaque to the optimizer (see [`exp_back`]).
    one: V,
    /// The gradient row (with `STORE`).
    dst: *mut f32,
    /// The first index of the label's vector, `usize::MAX` for short rows.
    y_at: usize,
    /// The label's lane in that vector (long rows).
    y_lane: V::Mask,
    /// The row's window of KEEP (short rows), else null.
    keep: *const f32,
    /// A gradient row of the previous batch, scaled by `coef` along this one
    /// (long rows, see [`batches`]), else null.
    scale: *mut f32,
    coef: V,
}

/// The rest of one vector of [`exp_pass`] from [`exp_mid`]'s exp:
/// `e^(z - m)` of the LANES logits from `j` (the first `rest` when not `FULL`),
/// stored when `STORE`, added to the accumulator pair `acc` (or, for long rows
/// with [`wide_sums`], the exps to `wide` and their low parts to `acc.1`), without
/// the label's lane: weighted by the LANES values of `sink.keep` from `j` when
/// `sink.y_at == usize::MAX`, else lane `sink.y_lane` left out when `j == y_at`.
/// Not `SHORT`: the same `rest` values of `sink.scale`, when not null, are
/// multiplied by `sink.coef`.
///
/// # Safety
/// `sink.dst` is valid for writing `rest` values from `j` when `STORE`, and when
/// `sink.y_at == usize::MAX`, `sink.keep` is valid for reading LANES values from `j`;
/// a non-null `sink.scale` valid for reading and writing `rest` values from `j`
/// (disjoint from `sink.dst`'s).
#[inline(always)]
unsafe fn exp_back<V: SimdF32, const STORE: bool, const FULL: bool, const SHORT: bool>(
    sink: &Sink<V>,
    (mut e, mut el): (V, V),
    j: usize,
    rest: usize,
    acc: &mut (V, V),
    wide: &mut [V; 2],
) {
    let Sink {
        one,
        dst,
        y_at,
        y_lane,
        keep,
        scale,
        coef,
    } = *sink;
    if !SHORT && !scale.is_null() {
        // SAFETY: the caller's guarantee.
        unsafe {
            let p = scale.add(j);
            if FULL {
                (V::load(p) * coef).store(p);
            } else {
                (V::load_partial(p, rest, 0.0) * coef).store_partial(p, rest);
            }
        }
    }
    let zero = V::splat(0.0);
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
    if wide_sums::<V>() && y_at != usize::MAX {
        // Long rows: the label's lane zeroed, the exps to `wide`, their low parts to
        // `acc.1`.
        if j == y_at {
            e = V::select(y_lane, zero, e);
            el = V::select(y_lane, zero, el);
        }
        *wide = V::add_wide(*wide, e);
        acc.1 = acc.1 + el;
        return;
    }
    // The label's lane weighs 0 in the sum, every other 1: short rows read the
    // weights from KEEP, long rows zero the label's lane of `one`.
    let w = if y_at == usize::MAX {
        // SAFETY: the caller's guarantee.
        unsafe { V::load(keep.add(j)) }
    } else if j == y_at {
        V::select(y_lane, zero, one)
    } else {
        one
    };
    // TwoSum of the running sum and w e (exact: w is 0 or 1); the error and w el
    // go to the second sum.
    let a = acc.0;
    let (s, tail_of) = if fma_units::<V>() {
        // The product folds into the sum and into the error's last term: the same
        // roundings, and three of TwoSum's six additions on the FMA units, which
        // have room next to this pass's additions (`one` is opaque to the
        // compiler, which would otherwise turn `x * 1 + y` back into an addition).
        (e.mul_add(w, a), e)
    } else {
        let ew = e * w;
        (a + ew, ew)
    };
    let bb = s - a;
    let tail = if fma_units::<V>() {
        tail_of.mul_add(w, -bb)
    } else {
        tail_of - bb
    };
    let err = (a - (s - bb)) + tail;
    // (w el is exact: the FMA and the product round the same.)
    let low = if fma_units::<V>() {
        el.mul_add(w, err)
    } else {
        el * w + err
    };
    *acc = (s, acc.1 + low);
}

/// Whether long rows sum their exps by [`SimdF32::add_wide`]: in f64 where the
/// backend has it (AVX2, AVX-512: a conversion and an addition per vector, and no
/// chain of TwoSum on the loop's critical path: 2-3% per logit at C = 1000), and
/// without FMA units (TwoSum pairs, what the FMA form below would spend more on).
#[inline(always)]
const fn wide_sums<V: SimdF32>() -> bool {
    V::WIDE_SUMS || !fma_units::<V>()
}

/// Whether additions are worth moving onto the FMA units as `x * one + y`: on the
/// SIMD backends with a hardware FMA, not on the scalar one, whose exact `mul_add`
/// is libm's `fmaf` in software (it made the scalar pass 30% slower).
#[inline(always)]
const fn fma_units<V: SimdF32>() -> bool {
    V::FUSED_MUL_ADD && V::LANES > 1
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
    // Four vectors per step: the loop's own instructions were as many as the
    // scaling's.
    while j + 4 * V::LANES <= len {
        // SAFETY: 4 LANES values from j are in bounds.
        unsafe {
            let p = g.as_mut_ptr().add(j);
            let (a, b) = (V::load(p), V::load(p.add(V::LANES)));
            let (c, d) = (V::load(p.add(2 * V::LANES)), V::load(p.add(3 * V::LANES)));
            (a * cv).store(p);
            (b * cv).store(p.add(V::LANES));
            (c * cv).store(p.add(2 * V::LANES));
            (d * cv).store(p.add(3 * V::LANES));
        }
        j += 4 * V::LANES;
    }
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
