//! The softmax (multi-class) focal loss kernels, written once over [`SimdF32`].
//!
//! For a row of logits `z` (C classes) with label `y`, `m = max z`,
//! `e_j = exp(z_j - m)` (so the max has `e = 1`), `S_o = sum_{j != y} e_j`,
//! `S = e_y + S_o`:
//!
//! ```text
//! p_y     = e_y / S            q = 1 - p_y = S_o / S  (never 1 - p_y)
//! nll     = -ln p_y = (m - z_y) + ln(1 + T),  T = S - 1 >= 0
//! FL      = alpha_y q^gamma nll
//! dFL/dz_j = alpha_y g (delta_jy - p_j),  g = gamma q^(gamma-1) p_y ln p_y - q^gamma
//!          = -q^gamma (1 + gamma (e_y / S_o) nll)
//! ```
//!
//! No power of `q` with a negative exponent is formed: `q^(gamma-1) p_y ln p_y` is
//! `q^gamma (p_y / q) ln p_y` with `p_y / q = e_y / S_o`, and `(e_y / S_o) nll -> 1`
//! as `S_o -> 0` (then `y` is the max, `e_y = 1` and `nll = ln(1 + S_o)`). Both
//! terms of `g` have one sign. So `dFL/dz_j = c e_j` for `j != y` with
//! `c = alpha_y q^gamma (1 + gamma (e_y/S_o) nll) / S`, and `dFL/dz_y = -c S_o`:
//! the factor `1 - p_y` of the label's entry is the computed `S_o / S`.
//!
//! `T = S - 1` without cancellation: when `y` is a max, `e_y = 1` and `T = S_o`
//! (`nll = ln(1 + S_o)`, the p_y -> 1 case); otherwise `S_o` holds a max's `1`,
//! `S_o - 1` is exact for `S_o <= 2` (Sterbenz), and `p_y < 1/2`, so `nll >= ln 2`
//! absorbs the rounding of `S_o`.
//!
//! Two drivers: [`classes_in_lanes`] vectorizes along each row (C > 8: an
//! exp-and-sum pass that parks `e_j` in the gradient row and finds the next row's
//! max on the way, then a scaling pass), and [`rows_in_lanes`] puts one row per
//! lane for C <= 8 (in-register transposes, all classes in registers). Both finish
//! rows in groups of `LANES` with [`row_terms`], the only place the loss formulas
//! live.

mod classes_in_lanes;
mod exact_row;
mod math;
mod rows_in_lanes;

pub(crate) use self::exact_row::exact_loss_sum;
use self::math::{exp_parts_wide, finite_or_zero, ln1p_hilo, two_prod_err, two_sum};
use super::math::{fms_exact, ln_hilo, powi_pair};
use super::{SimdF32, MAX_LANES};

/// Gamma kinds: 0..=4 are integer powers by multiplication, anything else is
/// `GENERAL` (`q^gamma = e^(gamma ln q)`, `ln q` in hi + lo).
pub(crate) const GENERAL: u32 = u32::MAX;

/// What a call writes and returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Per-row loss into `out` (`N` values), returns 0.
    Loss,
    /// Returns the sum of the row losses, writes nothing.
    Sum,
    /// Returns the sum of the row losses, gradient (`N x C`) into `out`.
    Fused,
}

/// Class weights as the kernels see them.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Weights<'a> {
    /// One weight for every class (1 for no weighting).
    Same(f32),
    /// Weight of class `j` at index `j`.
    PerClass(&'a [f32]),
}

impl Weights<'_> {
    /// The weight of a class (0 for a class out of range: the API rules that out).
    #[inline(always)]
    fn of(&self, class: usize) -> f32 {
        match *self {
            Weights::Same(a) => a,
            Weights::PerClass(w) => w.get(class).copied().unwrap_or(0.0),
        }
    }
}

/// One kernel call. The drivers work on the rows that every slice covers, so
/// inconsistent lengths cannot make them read or write out of bounds; labels
/// outside `[0, classes)` are treated as ignored. The API has validated all of it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Call<'a> {
    /// What to write and return.
    pub mode: Mode,
    /// Row-major `[N x classes]` logits.
    pub logits: &'a [f32],
    /// `N` labels.
    pub labels: &'a [i32],
    /// Number of classes, `>= 1`.
    pub classes: usize,
    /// `alpha_y`.
    pub weights: Weights<'a>,
    /// Focusing parameter, finite and `>= 0`.
    pub gamma: f32,
    /// The reduction's scale (`1`, `1/active rows`, `1/normaliser`), applied to the
    /// gradient.
    pub scale: f64,
}

impl Call<'_> {
    /// Number of rows every slice covers for this mode.
    fn rows(&self, out_len: usize) -> usize {
        if self.classes == 0 {
            return 0;
        }
        let rows = self.labels.len().min(self.logits.len() / self.classes);
        match self.mode {
            Mode::Loss => rows.min(out_len),
            Mode::Sum => rows,
            Mode::Fused => rows.min(out_len / self.classes),
        }
    }
}

/// Runs a call on one backend: picks the driver for the class count. The gamma
/// kind is a branch in [`row_terms`], taken once per `LANES` rows: the per-logit
/// passes do not depend on gamma, so they are compiled once.
#[inline(always)]
pub(crate) fn run<V: SimdF32>(call: &Call<'_>, out: &mut [f32]) -> f64 {
    let rows = call.rows(out.len());
    if call.classes <= rows_in_lanes::MAX_CLASSES {
        rows_in_lanes::run::<V>(call, rows, out)
    } else {
        classes_in_lanes::run::<V>(call, rows, out)
    }
}

/// 0..=4 for those integer gammas, `GENERAL` otherwise.
pub(crate) fn gamma_kind(gamma: f32) -> u32 {
    match gamma {
        0.0 => 0,
        1.0 => 1,
        2.0 => 2,
        3.0 => 3,
        4.0 => 4,
        _ => GENERAL,
    }
}

/// Per-call constants, splatted once.
#[derive(Clone, Copy)]
pub(super) struct Consts<V> {
    /// [`gamma_kind`] of gamma.
    kind: u32,
    /// One class: `S_o` is exactly 0.
    one_class: bool,
    gamma: V,
    /// The reduction's scale as `hi + lo`, so `alpha_y * scale` rounds once.
    scale_hi: V,
    scale_lo: V,
}

impl<V: SimdF32> Consts<V> {
    #[inline(always)]
    pub(super) fn new(call: &Call<'_>) -> Self {
        let hi = call.scale as f32;
        let lo = (call.scale - f64::from(hi)) as f32;
        Consts {
            kind: gamma_kind(call.gamma),
            one_class: call.classes == 1,
            gamma: V::splat(call.gamma),
            scale_hi: V::splat(hi),
            scale_lo: V::splat(lo),
        }
    }
}

/// What the drivers know about `LANES` rows (one per lane) after the max and the
/// exp-sum passes.
#[derive(Clone, Copy)]
pub(super) struct RowSums<V: SimdF32> {
    /// `z_y - m` as `hi + lo`, `<= 0`; `hi == 0` exactly when `z_y` is a row max.
    pub dy_hi: V,
    pub dy_lo: V,
    /// `S_o = sum_{j != y} e^(z_j - m)` as `hi + lo`.
    pub so_hi: V,
    pub so_lo: V,
    /// `alpha_y`.
    pub alpha: V,
    /// Rows that are not ignored (the others give exactly 0).
    pub active: V::Mask,
}

/// A group of rows finished: loss, the gradient factor of the other classes
/// (`dFL/dz_j = coef e_j`, scale included) and the label's gradient entry.
#[derive(Clone, Copy)]
pub(super) struct RowTerms<V: SimdF32> {
    pub loss: V,
    pub coef: V,
    pub grad_y: V,
    /// Lanes whose `q^gamma` or `q^gamma nll` is below the normal range.
    pub fragile: V::Mask,
}

/// The loss formulas (module doc), for `LANES` rows at once.
///
/// Precision: `nll` from the exact `z_y - m` and `ln(1 + T)` in hi + lo; `q` in
/// hi + lo (`S_o / S` with its division remainder and `S`'s rounding), so
/// `q^gamma` does not multiply `q`'s rounding by gamma (integer kinds: nor the
/// products' roundings); `alpha_y * scale` from the
/// split scale. What is left is the exps (1 ULP each, averaged in the sums) and a
/// few final roundings.
#[inline(always)]
pub(super) fn row_terms<V: SimdF32>(r: &RowSums<V>, k: &Consts<V>) -> RowTerms<V> {
    let zero = V::splat(0.0);
    let one = V::splat(1.0);
    let (ey, ey_lo) = exp_parts_wide(r.dy_hi, r.dy_lo);
    let ymax = r.dy_hi.eq(zero);

    // S = e_y + S_o >= 1 as hi + lo.
    let (s_hi, s_err) = two_sum(ey, r.so_hi);
    let s_lo = s_err + (r.so_lo + ey_lo);

    // Divisions are slow (one per several cycles): two reciprocals serve all of
    // them, each quotient corrected by its exact FMA residual where it matters.
    let inv_s = one / s_hi;
    // S_o below the normal range (then y is the max, q and every output are below
    // it too): clamped, so the reciprocal stays finite; the ratio below takes its
    // limit there.
    let tiny_so = r.so_hi.lt(V::splat(f32::MIN_POSITIVE));
    let inv_so = one / V::splat(f32::MIN_POSITIVE).max(r.so_hi);

    // nll = (m - z_y) + ln(1 + T): two non-negative terms. 1 + T = S.
    let t = V::select(ymax, r.so_hi, (r.so_hi - one) + ey);
    let (lh, ll) = ln1p_hilo(t, r.so_lo, inv_s);
    let (n_hi, n_err) = two_sum(-r.dy_hi, lh);
    // The residual is NaN for z_y - m = -inf, where nll = +inf anyway (NaN input
    // stays NaN through n_hi and ll).
    let nll = n_hi + ((finite_or_zero(n_err) + ll) - r.dy_lo);

    // q = S_o / S as hi + lo (q_hi within 1.5 ULP, the sum within ~0.01): the
    // remainder S_o - q_hi S is exact (Sterbenz, and FMA or Dekker for the product).
    let q_hi = r.so_hi * inv_s;
    let p = q_hi * s_hi;
    let rem = (r.so_hi - p) - two_prod_err(q_hi, s_hi, p);
    let q_lo = (rem + r.so_lo - q_hi * s_lo) * inv_s;
    let pos = zero.lt(q_hi);
    // q_lo / q_hi = q_lo S / S_o, only needed to a few bits.
    let q_rel = V::select(pos, q_lo * s_hi * inv_so, zero);

    let qg = if k.kind == 0 {
        one
    } else if k.kind == GENERAL {
        // q^gamma = e^(gamma ln q), the product carried in hi + lo: gamma ln q
        // reaches -100 and more, and its rounding would be multiplied by it.
        // ln q as k ln2 + f + tail with only the small tail rounded (the sigmoid
        // kernels' `ln_hilo`): a logarithm rounded once as a whole is off by up to
        // 2^-25 absolute, which gamma multiplies (9.1 ULP at gamma 7.2 for
        // q = 8.4e-5, found by an independent audit).
        let (h, l) = ln_hilo(q_hi);
        let l = l + q_rel;
        // q close to 1 (p_y < 2^-10): ln q = ln(1 - p_y) from p_y itself,
        // -p_y (1 + p_y/2 + p_y^2/3) (truncation below 2^-32 relative), not from
        // q_hi + q_lo, whose cancellation leaves ~2^-48 absolute: a huge gamma
        // (3e32) multiplied that into the whole answer (a fuzz finding: q^gamma 0
        // for a true 0.9999996). Relative to ln q, p_y's 2-3 ULP are as good.
        let p_y = ey * inv_s;
        let near_one = p_y.lt(V::splat(1.0 / 1024.0));
        let third = V::splat(1.0 / 3.0);
        let ln_near = -(p_y * p_y.mul_add(p_y.mul_add(third, V::splat(0.5)), one));
        let h = V::select(near_one, zero, h);
        let l = V::select(near_one, ln_near, l);
        let a = k.gamma * h;
        let a_err = two_prod_err(k.gamma, h, a);
        let (s, s_err) = two_sum(a, k.gamma * l);
        // The residual is below 2^-20 |s|, but |s| = gamma |ln q| has no bound (a
        // huge gamma): exp_parts_wide drops it where the power underflows anyway.
        // Without FMA, Dekker's split of a gamma above 2^115 overflows: its NaN
        // residual is dropped too (NaN input stays NaN through s).
        let (e, e_lo) = exp_parts_wide(s, finite_or_zero(a_err + s_err));
        // q = 0 gives 0; NaN stays NaN.
        V::select(q_hi.eq(zero), zero, e + e_lo)
    } else {
        // (q_hi + q_lo)^n with the products' roundings carried too (a plain q^4
        // by two squarings compounded them to 8.4 ULP at gamma 4, where the
        // result's mantissa is near 2: an independent audit).
        powi_pair(q_hi, V::select(pos, q_lo, zero), k.kind)
    };

    // alpha_y last: q^gamma nll <= nll does not overflow unless the loss does, and
    // for alpha_y <= 1 nothing underflows before the loss itself would. A zero
    // weight gives 0 also where nll is +inf (the limit), NaN stays NaN.
    let qn = V::select(qg.eq(zero), zero, qg * nll);
    let loss = V::select(V::and(r.alpha.eq(zero), qn.eq(qn)), zero, qn * r.alpha);
    // nll above f32::MAX from finite logits (`shifted_label`: hi = -MAX, the rest
    // in lo): q = 1 there, and alpha q^gamma nll is finite for a weight below 1.
    // Half of nll is finite (at most MAX + ln C); doubling at the end is exact.
    let inf = V::splat(f32::INFINITY);
    let huge = V::and(nll.eq(inf), (-inf).lt(r.dy_hi));
    let loss = if V::bitmask(huge) != 0 {
        let half = V::splat(0.5);
        let nll_half = (half * -r.dy_hi) + ((half * -r.dy_lo) + half * (lh + ll));
        let big = (qg * nll_half) * r.alpha;
        let big = V::select(V::and(r.alpha.eq(zero), qn.eq(qn)), zero, big + big);
        V::select(huge, big, loss)
    } else {
        loss
    };

    // 1 + gamma (e_y / S_o) nll (>= 1); the ratio is 1 for S_o -> 0 (limit: y is
    // the max, nll = ln(1 + S_o)), and nll is clamped so that e_y = 0 with nll = inf
    // gives 0, not NaN.
    let omw = if k.kind == 0 {
        one
    } else {
        let nll_c = V::splat(f32::MAX).min(nll);
        let ratio = div_by(ey * nll_c, r.so_hi, inv_so);
        k.gamma.mul_add(V::select(tiny_so, one, ratio), one)
    };
    let ga = r.alpha.mul_add(k.scale_hi, r.alpha * k.scale_lo);
    // omw / S <= 1 + gamma first, the weight and scale after: no intermediate
    // overflow for a huge weight; q^gamma = 0 gives 0 whatever the factor.
    let f0 = div_by(omw, s_hi, inv_s);
    let f0 = f0.mul_add(-(s_lo * inv_s), f0);
    let coef = V::select(qg.eq(zero), zero, qg * (f0 * ga));
    let grad_y = -coef.mul_add(r.so_hi, coef * r.so_lo);
    // A subnormal coef (a tiny weight or scale) keeps only a few bits, and S_o (up
    // to C - 1) would multiply its rounding (21 units of 2^-149 at C = 56): there
    // the label's entry -q^gamma (omw / S) S_o is formed first and the weight and
    // scale applied last (q^gamma omw S_o / S <= 1 + gamma / e: no overflow).
    let tiny_coef = coef.abs().lt(V::splat(f32::MIN_POSITIVE));
    let grad_y = if V::bitmask(tiny_coef) != 0 {
        let gy = V::select(qg.eq(zero), zero, qg * f0);
        V::select(tiny_coef, -(gy.mul_add(r.so_hi, gy * r.so_lo) * ga), grad_y)
    } else {
        grad_y
    };

    // q^gamma or q^gamma nll below the normal range: with a weight times scale
    // above 1 the results can be normal while these kept only a subnormal's bits.
    let min = V::splat(f32::MIN_POSITIVE);
    RowTerms {
        loss: V::select(r.active, loss, zero),
        coef: V::select(r.active, coef, zero),
        grad_y: V::select(r.active, grad_y, zero),
        fragile: V::or(qg.lt(min), qn.lt(min)),
    }
}

/// `x / d` from `inv = fl(1 / d)`: `x inv` corrected by its residual
/// `x - (x inv) d` (exact: one FMA, or Dekker's product without FMA, where an
/// unfused multiply-add left the correction as large as the error it corrects),
/// within about 0.5 ULP like a division.
#[inline(always)]
fn div_by<V: SimdF32>(x: V, d: V, inv: V) -> V {
    let q = x * inv;
    fms_exact(q, d, x).mul_add(inv, q)
}

/// `z - m` as `hi + lo` for a row max `m`. Infinite maxima: a lane equal to `m`
/// gets exactly 0 (ties at `+inf` share the probability, an all `-inf` row is
/// uniform), and the residual of an infinite difference is dropped.
#[inline(always)]
pub(super) fn shifted<V: SimdF32>(z: V, m: V) -> (V, V) {
    let (d, err) = two_sum(z, -m);
    (V::select(z.eq(m), V::splat(0.0), d), finite_or_zero(err))
}

/// [`shifted`] for the label's `z_y - m`, which also feeds `nll`: where the
/// difference of two finite logits overflows (`z_y = -1.7e38` below a max of
/// `1.75e38`), `hi = -f32::MAX` and `lo = (z_y + MAX) - m`, so that `hi + lo` keeps
/// the difference (to a rounding) instead of `-inf`: the loss `alpha q^gamma nll`
/// is finite when `alpha q^gamma < 1` ([`row_terms`] forms it at half scale there).
/// `lo` is then not small, but every exp drops `lo` below `hi = -104`.
#[inline(always)]
pub(super) fn shifted_label<V: SimdF32>(z: V, m: V) -> (V, V) {
    let (d, dl) = shifted(z, m);
    let inf = V::splat(f32::INFINITY);
    let max = V::splat(f32::MAX);
    let over = V::and(d.eq(-inf), V::and((-inf).lt(z), m.lt(inf)));
    (V::select(over, -max, d), V::select(over, (z + max) - m, dl))
}

/// Compensated (Kahan) sum of the row losses kept per lane, moved into an f64 total
/// every `FLUSH` vectors so it stays a few ULP for 2^31 rows; lanes are combined in
/// lane order, so a backend gives the same bits on every run.
pub(super) struct LossSum<V> {
    s: V,
    c: V,
    pending: u32,
    total: f64,
}

impl<V: SimdF32> LossSum<V> {
    const FLUSH: u32 = 1 << 12;

    #[inline(always)]
    pub(super) fn new() -> Self {
        LossSum {
            s: V::splat(0.0),
            c: V::splat(0.0),
            pending: 0,
            total: 0.0,
        }
    }

    #[inline(always)]
    pub(super) fn add(&mut self, v: V) {
        let y = v - self.c;
        let t = self.s + y;
        let full = (1u32 << V::LANES.min(16)) - 1;
        if V::bitmask(t.lt(V::splat(f32::INFINITY))) != full {
            // A lane overflowed, or met an infinite or NaN loss: what is pending
            // goes to the f64 total, this vector too (f64 does not overflow for
            // 2^31 losses; +inf and NaN stay themselves, not inf - inf).
            self.flush();
            self.total += v.reduce_add_f64();
            return;
        }
        self.c = (t - self.s) - y;
        self.s = t;
        self.pending += 1;
        if self.pending == Self::FLUSH {
            self.flush();
        }
    }

    #[inline(always)]
    fn flush(&mut self) {
        // s and c are finite here (add keeps them so).
        self.total += self.s.reduce_add_f64() - self.c.reduce_add_f64();
        self.s = V::splat(0.0);
        self.c = V::splat(0.0);
        self.pending = 0;
    }

    #[inline(always)]
    pub(super) fn finish(mut self) -> f64 {
        self.flush();
        self.total
    }
}

/// The lanes (bits, one per row of a group) that the f32 formulas cannot
/// represent (`exact_row`'s module doc), among the active ones.
#[derive(Clone, Copy)]
pub(super) struct ExactLanes {
    /// Rows whose loss is recomputed in f64: judged on `alpha_y` alone, as the row
    /// loss is unscaled, so a row takes the same path in every mode (a Mean must
    /// be the mean of the per-row losses).
    pub loss: u32,
    /// Rows whose gradient row is recomputed in f64: judged on `alpha_y * scale`
    /// (the gradient's factor), and every row of `loss`.
    pub grad: u32,
}

/// [`ExactLanes`] of a group: rows with `S_o` subnormal or 0 (with one class only
/// when the factor exceeds 1), with `q^gamma` or `q^gamma nll` below the normal
/// range and a factor above 1, or with a factor beyond `exact_row::EXACT_ABOVE`
/// (or overflowing f32); the factor being `alpha_y` for the loss and
/// `alpha_y * scale` for the gradient.
#[inline(always)]
pub(super) fn exact_lanes<V: SimdF32>(
    r: &RowSums<V>,
    t: &RowTerms<V>,
    k: &Consts<V>,
) -> ExactLanes {
    let loss = exact_lanes_for(r, t, k, r.alpha);
    ExactLanes {
        loss,
        grad: loss | exact_lanes_for(r, t, k, r.alpha * k.scale_hi),
    }
}

/// [`exact_lanes`] for one factor (a function, not a closure, so that it inlines
/// into the `#[target_feature]` entry points: check-asm caught the closure called
/// out of line in the AVX2 entry, at twice the time per row at C = 3).
#[inline(always)]
fn exact_lanes_for<V: SimdF32>(r: &RowSums<V>, t: &RowTerms<V>, k: &Consts<V>, factor: V) -> u32 {
    let zero = V::splat(0.0);
    // (S_o = 0 may be a sum of exps that each underflowed: 134 e^-104 = 65 units
    // of 2^-149. With one class it is exactly 0, and f32 is right.)
    let tiny = r.so_hi.lt(V::splat(exact_row::EXACT_BELOW));
    let big = V::splat(1.0).lt(factor);
    let tiny = if k.one_class {
        V::and(tiny, V::or(zero.lt(r.so_hi), big))
    } else {
        tiny
    };
    let tiny = V::or(tiny, V::and(big, t.fragile));
    let huge = V::splat(exact_row::EXACT_ABOVE).le(factor);
    V::bitmask(V::and(r.active, V::or(tiny, huge)))
}

/// `loss` with the rows of `lanes.loss` recomputed in f64, and, when `grad` is
/// given (all rows, row-major), the gradient rows of `lanes.grad` rewritten.
/// Nothing to do (no call) when no lane is set, the usual case.
#[inline(always)]
pub(super) fn with_exact_rows<V: SimdF32>(
    call: &Call<'_>,
    r0: usize,
    lanes: ExactLanes,
    loss: V,
    grad: Option<&mut [f32]>,
) -> V {
    let rows = if grad.is_some() {
        lanes.grad
    } else {
        lanes.loss
    };
    if rows == 0 {
        return loss;
    }
    let mut a = loss.to_array();
    exact_row::exact_rows(call, r0, rows, lanes.loss, &mut a, grad);
    // SAFETY: a holds MAX_LANES >= LANES values.
    unsafe { V::load(a.as_ptr()) }
}

/// Lane indices `0, 1, ..., 15` as f32.
const IOTA: [f32; MAX_LANES] = [
    0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0,
];

/// The vector `0, 1, ..., LANES - 1`.
#[inline(always)]
pub(super) fn iota<V: SimdF32>() -> V {
    // SAFETY: IOTA holds MAX_LANES >= LANES values.
    unsafe { V::load(IOTA.as_ptr()) }
}

/// Stores the first `n <= LANES` lanes.
///
/// # Safety
/// `ptr` must be valid for writing `n` f32.
#[inline(always)]
pub(super) unsafe fn store_first<V: SimdF32>(v: V, ptr: *mut f32, n: usize) {
    if n >= V::LANES {
        // SAFETY: n >= LANES writable (caller).
        unsafe { v.store(ptr) }
    } else {
        // SAFETY: n < LANES writable (caller).
        unsafe { v.store_partial(ptr, n) }
    }
}
