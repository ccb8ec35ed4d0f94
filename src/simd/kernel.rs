//! The focal loss kernels, written once over [`SimdF32`] and monomorphized per
//! backend, gamma kind and target kind. Formulas: `shared/DESIGN.md` §2.
//!
//! The slice drivers take any lengths (they work on the common prefix, so they cannot
//! read or write out of bounds); the public API has checked the lengths and the
//! targets before calling them.

use super::math::{
    div_pair, exp_hilo, finite_or_zero, ln_hilo, log1p_exp_neg_abs, logistic_from_exp, mul_pair,
    one_minus_exp_neg, pos_part, powi_pair, powi_pair_parts, sqrt_hilo, two_prod_err,
    two_prod_err_finite, two_sum, Logistic, LN2_HI, LN2_LO,
};
use super::{SimdF32, MAX_LANES};

/// Gamma kinds: 0..=4 are integer powers by multiplication; anything else is
/// `GENERAL` (`q^n` by multiplication times `q^f` by exp, with `n <= 8`).
pub(crate) const GENERAL: u32 = u32::MAX;

/// Target kinds of a slice, found by the target scan: only hard (0/1) and ignored
/// targets, or some soft ones with torchvision's `p_t`, or with the snippet's.
pub(crate) const HARD: u8 = 0;
pub(crate) const SOFT_TORCHVISION: u8 = 1;
pub(crate) const SOFT_EXP_NEG_BCE: u8 = 2;

/// Scalar coefficients of one call, prepared (and rounded once) by the API.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Coeffs {
    /// gamma.
    pub gamma: f32,
    /// Integer part of gamma used by `GENERAL` (`min(floor(gamma), 8)`).
    pub n: u32,
    /// `gamma - n`.
    pub frac: f32,
    /// alpha_t of the loss for t = 1 and t = 0 (`a_pos` is alpha itself, exact).
    pub a_pos: f32,
    pub a_neg: f32,
    /// The rounding error of `a_neg` (`1 - alpha`), for the soft targets.
    pub a_neg_lo: f32,
    /// `a_pos - a_neg`: 0 when alpha_t does not depend on the target.
    pub a_diff: f32,
    /// alpha_t times the reduction's scale, for the gradient (rounded once from f64),
    /// and their rounding errors (for the soft targets).
    pub ga_pos: f32,
    pub ga_neg: f32,
    pub ga_pos_lo: f32,
    pub ga_neg_lo: f32,
    /// The target value that the hard kernels accept besides 0 and 1: -1 (the
    /// ignore label) normally, NaN (none: no target equals it) for a speculative
    /// `Mean`, whose scale assumed that no element is ignored. See [`focal`].
    pub hard_accept: f32,
}

/// What a kernel call writes and returns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    /// Elementwise loss into `out`.
    Loss,
    /// Elementwise gradient into `out`.
    Grad,
    /// Sum of the losses, nothing written.
    Sum,
    /// Sum of the losses, gradient into `out`.
    Fused,
}

struct Splats<V> {
    /// Whether alpha_t is 0 for some target (then 0 * inf must give 0).
    zero_alpha: bool,
    /// Whether gamma is an integer (n <= 8, frac = 0): no exp in the general kernel.
    integer: bool,
    /// Whether alpha_t is the same for every target (`Off`, `Uniform`).
    uniform: bool,
    /// Whether gamma is an integer and a half (frac = 1/2): `q^(1/2)` by a square
    /// root in the lanes whose `q` is normal.
    half: bool,
    one: V,
    zero: V,
    gamma: V,
    frac: V,
    a_pos: V,
    a_neg: V,
    a_neg_lo: V,
    /// `-ga_pos` (the hard kernels' gradient has the sign of `-s`).
    ga_pos: V,
    ga_neg: V,
    ga_pos_lo: V,
    ga_neg_lo: V,
}

impl<V: SimdF32> Splats<V> {
    #[inline(always)]
    fn new(c: &Coeffs) -> Self {
        Splats {
            zero_alpha: c.a_pos == 0.0 || c.a_neg == 0.0,
            integer: c.frac == 0.0,
            uniform: c.a_diff == 0.0,
            half: c.frac == 0.5,
            one: V::splat(1.0),
            zero: V::splat(0.0),
            gamma: V::splat(c.gamma),
            frac: V::splat(c.frac),
            a_pos: V::splat(c.a_pos),
            a_neg: V::splat(c.a_neg),
            a_neg_lo: V::splat(c.a_neg_lo),
            ga_pos: V::splat(-c.ga_pos),
            ga_neg: V::splat(c.ga_neg),
            ga_pos_lo: V::splat(c.ga_pos_lo),
            ga_neg_lo: V::splat(c.ga_neg_lo),
        }
    }
}

/// `q^G` for the integer kinds up to 2 (hard targets; from 3 on, `powi_pair`).
#[inline(always)]
fn pow_int<V: SimdF32, const G: u32>(q: V, one: V) -> V {
    match G {
        0 => one,
        1 => q,
        _ => q * q,
    }
}

/// `e^(-(f * (zpos + l)))` where `zpos + l = softplus(z)`, with the product carried
/// in hi + lo: for |z| ~ 100 the exponent is ~100 and its rounding error alone would
/// cost hundreds of ULP.
#[inline(always)]
fn exp_neg_frac_softplus<V: SimdF32>(f: V, zpos: V, l: V) -> V {
    let a = f * zpos;
    let a_lo = two_prod_err(f, zpos, a);
    let (s, s_err) = two_sum(a, f * l);
    let lo = a_lo + s_err;
    // lo is NaN only when zpos is infinite (or Dekker's split overflowed); the result
    // is then e^-inf = 0 or NaN from NaN input either way.
    let lo = V::select(lo.eq(lo), lo, V::splat(0.0));
    exp_hilo(-s, -lo)
}

/// `(q^gamma * 2^shift, shift)` for soft targets, `q + q_lo` in (0, 1], with
/// `q^gamma * 2^shift` as an unevaluated sum `(hi, lo)`. The integer kinds multiply
/// pairs (shift 0). The general kind is `e^(gamma ln q)` with `ln q` and the product
/// carried in hi + lo; where `q^gamma < 2^-55` it adds `64 ln 2` to the exponent
/// (`shift = 64`) so that the caller can multiply by a large BCE first.
#[inline(always)]
fn pow_soft<V: SimdF32, const G: u32>(q: V, q_lo: V, n: u32, sp: &Splats<V>) -> (V, V, V) {
    if G != GENERAL {
        let (hi, lo) = powi_pair_parts(q, q_lo, G);
        return (hi, lo, sp.zero);
    }
    if !cfg!(compact) && sp.integer {
        // Integer gamma up to 8 on the general kernel: multiplication only.
        let (hi, lo) = powi_pair_parts(q, q_lo, n);
        return (hi, lo, sp.zero);
    }
    let (h, l) = ln_hilo(q);
    // ln(q + q_lo) = ln q + q_lo / q to first order.
    let l = V::select(sp.zero.lt(q), l + q_lo / q, l);
    let a = sp.gamma * h;
    let a_lo = two_prod_err(sp.gamma, h, a);
    let (s, s_err) = two_sum(a, sp.gamma * l);
    let shift = V::select(s.lt(V::splat(-38.0)), V::splat(64.0), sp.zero);
    // 64 LN2_HI is exact (LN2_HI has 8 trailing zero bits); TwoSum keeps the rest.
    let (s, s_err2) = two_sum(s, shift * V::splat(LN2_HI));
    let lo = shift.mul_add(V::splat(LN2_LO), (a_lo + s_err) + s_err2);
    // lo is NaN where gamma ln q overflowed (then e^-inf = 0 either way) or, without
    // FMA, where Dekker's split of a gamma above 2^115 overflowed (gamma 2.5e35 gave
    // NaN on Portable only); the exponent is then hugely negative and e^s is 0.
    let lo = V::select(lo.eq(lo), lo, sp.zero);
    // e^(s + lo) = (e + e_lo)(1 + lo); s < 6.4 after the shift.
    let (e, e_lo) = s.exp_nonpositive_parts();
    let e_lo = finite_or_zero(e.mul_add(lo, e_lo));
    let zero_q = q.eq(sp.zero);
    (
        V::select(zero_q, sp.zero, e),
        V::select(zero_q, sp.zero, e_lo),
        shift,
    )
}

/// `q^g * b` as `e^(g ln q + ln b)` with both logarithms and the product in hi + lo
/// (`q + q_lo`, `b + b_lo` positive), for the rare lanes where `q^g` underflows
/// before meeting a huge `b`.
#[inline(always)]
fn exp_product_of_powers<V: SimdF32>(q: V, q_lo: V, b: V, b_lo: V, g: V) -> V {
    let zero = V::splat(0.0);
    let (qh, ql) = ln_hilo(q);
    let ql = V::select(zero.lt(q), ql + q_lo / q, ql);
    let (bh, bl) = ln_hilo(b);
    let bl = V::select(zero.lt(b), bl + b_lo / b, bl);
    let a = g * qh;
    let a_lo = two_prod_err(g, qh, a);
    // The lo parts of ln_hilo are not small (they hold log1p's tail): add them into
    // the hi sum too, so that e^hi (1 + lo) only sees rounding-sized lo.
    let (s, s_err) = two_sum(a, bh);
    let (s, s_err2) = two_sum(s, g.mul_add(ql, bl));
    // NaN only from an overflowed product or split (a huge g): e^s is 0 there.
    let lo = (a_lo + s_err) + s_err2;
    exp_hilo(s, V::select(lo.eq(lo), lo, zero))
}

/// What [`element`] computes from the logit alone: the logistic pieces and
/// `ln(1 + e^-|x|)` in hi + lo and rounded (the stages of the software pipeline in
/// `focal`). The hard kernels read only `l`: one value carried from stage to stage
/// instead of two (registers are what the AVX2 pipeline runs short of).
#[derive(Clone, Copy)]
struct Stage1<V> {
    lg: Logistic<V>,
    l_hi: V,
    l_lo: V,
    l: V,
}

/// Pipeline stage 0: `e^-|x|` as `e + el`.
#[inline(always)]
fn stage0<V: SimdF32>(x: V) -> (V, V) {
    x.neg_abs().exp_nonpositive_parts()
}

/// Pipeline stages 0 and 1 together.
#[inline(always)]
fn stage1<V: SimdF32>(x: V) -> Stage1<V> {
    let (e, el) = stage0(x);
    stage1e(e, el)
}

/// Pipeline stage 1, from stage 0's `e + el`.
#[inline(always)]
fn stage1e<V: SimdF32>(e: V, el: V) -> Stage1<V> {
    let lg = logistic_from_exp(e, el);
    let (l_hi, l_lo) = log1p_exp_neg_abs(&lg);
    Stage1 {
        lg,
        l_hi,
        l_lo,
        l: l_hi + l_lo,
    }
}

/// Loss and gradient (`d loss / d x`, times the reduction's scale) of one vector;
/// 0 in the lanes whose target is `ignore` (see [`element2`]).
#[inline(always)]
fn element<V: SimdF32, const G: u32, const SOFT: u8>(
    sp: &Splats<V>,
    n: u32,
    x: V,
    t: V,
    ignore: V,
) -> (V, V) {
    element2::<V, G, SOFT>(sp, n, x, t, ignore, stage1(x))
}

/// The rest of [`element`] (pipeline stage 2), from the [`Stage1`] pieces of `x`.
///
/// `ignore` is the ignore label, -1, or the hard kernels' `accept` value, which is
/// -1 or a NaN that no target equals (a speculative `Mean`, where a -1 target
/// stops the kernel before it counts): then the comparison is the one that the
/// target check has made already.
#[inline(always)]
fn element2<V: SimdF32, const G: u32, const SOFT: u8>(
    sp: &Splats<V>,
    n: u32,
    x: V,
    t: V,
    ignore: V,
    s1: Stage1<V>,
) -> (V, V) {
    let Stage1 { lg, l, .. } = s1;

    // Hard targets: z = s x with s = 2t - 1; q = 1 - p_t = sigmoid(-z) never by
    // subtraction, L = BCE = softplus(-z).
    let pos = t.eq(sp.one);
    let z = V::select(pos, x, -x);
    let zneg = z.lt(sp.zero);
    let q = V::select(zneg, lg.big, lg.small);
    let omq = V::select(zneg, lg.small, lg.big);
    // Two terms of one sign: within 0.5 ULP of BCE plus l's rounding (0.5 ULP of
    // l <= BCE).
    let bce = pos_part(-z) + l;
    // q's rounding error (first order): the powers from gamma 3 on carry it, and
    // their products' errors, in hi + lo (`powi_pair`); unused (and not computed)
    // for gamma <= 2, whose plain q^2 stays inside the bound.
    let q_lo = V::select(zneg, lg.big_lo, lg.small_lo);
    let qg = if G == GENERAL {
        // z = +inf (a certain, correct prediction) must give frac * z = inf, not
        // the NaN of 0 * inf when frac = 0: clamp to the largest finite value.
        let zpos = V::splat(f32::MAX).min(pos_part(z));
        if sp.integer {
            // Integer gamma on the general kernel: multiplication only.
            powi_pair(q, q_lo, n)
        } else if !cfg!(compact) && sp.half {
            // q^(n + 1/2) = q^n sqrt(q), sqrt(q) from q + q_lo, in the lanes whose q
            // is normal; lanes with a subnormal q take the exp below, which reads the
            // exact softplus (computed only for vectors that have such a lane). Per
            // lane, so that a value's bits do not depend on its neighbours.
            let q0 = V::select(zneg, lg.inv_d, lg.small0);
            let root = sqrt_hilo(q0, q, q_lo);
            let normal = V::splat(f32::MIN_POSITIVE).le(q);
            let qf = if V::all(normal) {
                root
            } else {
                V::select(normal, root, exp_neg_frac_softplus(sp.frac, zpos, l))
            };
            powi_pair(q, q_lo, n) * qf
        } else {
            powi_pair(q, q_lo, n) * exp_neg_frac_softplus(sp.frac, zpos, l)
        }
    } else if G >= 3 {
        powi_pair(q, q_lo, G)
    } else {
        pow_int::<V, G>(q, sp.one)
    };
    let a_t = V::select(pos, sp.a_pos, sp.a_neg);
    let mut loss = qg * bce * a_t;
    if sp.zero_alpha {
        // alpha_t = 0 weighs the element out: 0 also where BCE is infinite (not
        // 0 * inf); a NaN logit still gives NaN.
        let inf = V::splat(f32::INFINITY);
        loss = V::select(V::and(a_t.eq(sp.zero), bce.eq(inf)), sp.zero, loss);
    }
    // dFL/dx = -s alpha_t q^g (g (1-q) L + q): no q^(g-1), finite for every gamma.
    // L is only infinite for x = +-inf, where 1 - q = 0 and the limit of the product
    // is 0: clamp it so that 0 * inf does not make a NaN.
    let inner = if G == 0 {
        q
    } else {
        let bce_c = V::splat(f32::MAX).min(bce);
        // The integer kinds' gamma is a constant: 1 * omq and 2 * omq (an addition)
        // cost no multiplication.
        let gamma = if G == GENERAL {
            sp.gamma
        } else {
            V::splat(G as f32)
        };
        (gamma * omq).mul_add(bce_c, q)
    };
    let mut grad = qg * inner * V::select(pos, sp.ga_pos, sp.ga_neg);

    if SOFT != HARD {
        let (soft_loss, soft_grad) = soft::<V, G>(sp, n, SOFT == SOFT_TORCHVISION, x, t, &s1);
        let hard = V::or(t.eq(sp.one), t.eq(sp.zero));
        loss = V::select(hard, loss, soft_loss);
        grad = V::select(hard, grad, soft_grad);
    }

    let ignored = t.eq(ignore);
    (
        V::select(ignored, sp.zero, loss),
        V::select(ignored, sp.zero, grad),
    )
}

/// Loss and gradient of one vector for soft targets (`0 < t < 1`; other lanes give
/// values that the caller does not use).
///
/// Every factor is carried as an unevaluated sum `hi + lo` and multiplied in pairs
/// ([`mul_pair`]), so the result is rounded once: soft targets put up to seven
/// rounded factors into one product (alpha_t, `q^gamma`, BCE or `p - t`, the gamma
/// term and its `1/q`), and with an alpha that puts the result's mantissa near 2
/// each rounding costs up to one ULP. Rounded one by one they reached 9.0 ULP at
/// gamma <= 3 and 16.5 at gamma 8 (an independent audit; `tests/accuracy.rs`
/// `audit_soft_cases`).
///
/// `torchvision` picks the form (a constant after inlining). Compact builds keep
/// one copy out of line for both forms: flash is what counts there.
#[cfg_attr(not(compact), inline(always))]
#[cfg_attr(compact, inline(never))]
fn soft<V: SimdF32, const G: u32>(
    sp: &Splats<V>,
    n: u32,
    torchvision: bool,
    x: V,
    t: V,
    s1: &Stage1<V>,
) -> (V, V) {
    let Stage1 { lg, l_hi, l_lo, .. } = *s1;
    let xneg = x.lt(sp.zero);
    let p = V::select(xneg, lg.small, lg.big);
    let pm = V::select(xneg, lg.big, lg.small);
    let p_lo = V::select(xneg, lg.small_lo, lg.big_lo);
    let pm_lo = V::select(xneg, lg.big_lo, lg.small_lo);
    // 1 - t = omt + omt_lo exactly (Fast2Sum, 1 >= t).
    let omt = sp.one - t;
    let omt_lo = (sp.one - omt) - t;
    // BCE = t softplus(-x) + (1-t) softplus(x) = softplus(x) - t x
    //     = l + w |x| with w = 1 - t for x > 0 and w = t for x <= 0: no
    //     cancellation, and l is carried in hi + lo.
    let xpos = sp.zero.lt(x);
    let ax = x.abs();
    let w = V::select(xpos, omt, t);
    let w_lo = V::select(xpos, omt_lo, sp.zero);
    // (The tail term uses |x| clamped to finite: w_lo may be 0 at x = inf.)
    let ax_c = V::splat(f32::MAX).min(ax);
    // BCE in hi + lo: w |x| exactly (product error), summed exactly with l_hi.
    // (l_lo is not small next to l_hi for |x| < ln 2: renormalize at the end.)
    let wx = w * ax;
    let (s, s_err) = two_sum(wx, l_hi);
    let wx_lo = two_prod_err(w, ax_c, wx);
    let wx_lo = V::select(wx_lo.eq(wx_lo), wx_lo, sp.zero);
    let tail = (s_err + wx_lo) + w_lo.mul_add(ax_c, l_lo);
    let tail = V::select(tail.eq(tail), tail, sp.zero);
    let bce = s + tail;
    let bce_lo = finite_or_zero(tail - (bce - s));
    // BCE is infinite only for infinite x, where the gradient terms using it
    // tend to 0: clamp so that 0 * inf does not make a NaN.
    let bce_c = V::splat(f32::MAX).min(bce);
    // p - t in hi + lo, without cancellation error: for x >= 0, p = 1 - pm and
    // p - t = (1 - t) - pm, from the exact 1 - t and the small pm.
    let (pmt, pmt_err) = two_sum(V::select(xneg, p, omt), -V::select(xneg, t, pm));
    let pmt_lo = pmt_err + V::select(xneg, p_lo, omt_lo - pm_lo);
    let (q, q_lo, r, r_lo) = if torchvision {
        // q = (1-p) t + p (1-t): non-negative terms; dq/dx = p (1-p) (1-2t);
        // q >= min(t, 1-t) > 0 and |dq/dx / q| <= 2, so BCE (dq/dx) / q is
        // bounded (BCE grows like |x|, p (1-p) decays like e^-|x|).
        // q in hi + lo: exact products and sum, plus the tails of p, 1-p, 1-t.
        let (q, q_lo) = weight(pm, pm_lo, p, p_lo, t, omt, omt_lo);
        // r = BCE (dq/dx) / q, with dq/dx / q formed first (BCE dq/dx
        // underflows where the ratio does not: tiny t at x ~ -60).
        let (pp, pp_lo) = mul_pair(p, p_lo, pm, pm_lo);
        // 1 - 2t exactly (2t is exact).
        let (o, o_lo) = two_sum(sp.one, t * V::splat(-2.0));
        let (dq, dq_lo) = mul_pair(pp, pp_lo, o, o_lo);
        let (ratio, ratio_lo) = div_pair(dq, dq_lo, q, q_lo);
        let (r, r_lo) = mul_pair(bce_c, bce_lo, ratio, ratio_lo);
        (q, q_lo, r, r_lo)
    } else {
        // q = 1 - exp(-BCE); dq/dx = exp(-BCE) (p - t), and BCE exp(-BCE) <= 1/e
        // stays finite. Both in hi + lo: q^gamma multiplies q's relative error by
        // gamma, and a huge gamma multiplies ln q ~ -e^-B, so the distance to 1
        // that q alone rounds away decides q^gamma (gamma 2.8e20 at B = 20.5 gave
        // e^(gamma * 0 + garbage) = NaN).
        let ((q, q_lo), (ex, ex_lo)) = one_minus_exp_neg(bce, bce_lo);
        // r = BCE e^-B / q is at most max(1 + B/2, B e^-B / (1 - e^-B)): form it
        // before meeting p - t, whose product with a tiny BCE (tiny soft t at a
        // large |x|: BCE ~ p - t ~ 1e-26) would underflow to 0 and drop the gamma
        // term of the gradient (a third of it at gamma 0.5). p - t meets it only
        // in (p - t)(1 + gamma r), after gamma (r (p - t) underflowed where gamma r
        // did not: gamma 8.6e9, t = 9.6e-38, x = -2.8e38 lost the gamma term, half
        // of the gradient; a fuzz finding).
        let (n, n_lo) = mul_pair(bce_c, bce_lo, ex, ex_lo);
        let (r, r_lo) = div_pair(n, n_lo, q, q_lo);
        let pos = sp.zero.lt(q);
        let (r, r_lo) = (V::select(pos, r, sp.zero), V::select(pos, r_lo, sp.zero));
        (q, q_lo, r, r_lo)
    };
    let (qg, qg_lo, shift) = pow_soft::<V, G>(q, q_lo, n, sp);
    // alpha_t = a t + (1-a)(1-t), and times the reduction's scale for the gradient:
    // two non-negative terms (no cancellation when alpha_t is small); exactly the
    // weight when both weights are equal (Off, Uniform).
    let ((a_t, a_t_lo), (ga_t, ga_t_lo)) = if sp.uniform {
        ((sp.a_neg, sp.a_neg_lo), (sp.ga_neg, sp.ga_neg_lo))
    } else {
        let ga_pos = -sp.ga_pos;
        (
            weight(sp.a_pos, sp.zero, sp.a_neg, sp.a_neg_lo, t, omt, omt_lo),
            weight(
                ga_pos,
                sp.ga_pos_lo,
                sp.ga_neg,
                sp.ga_neg_lo,
                t,
                omt,
                omt_lo,
            ),
        )
    };

    // The general kind returns q^g scaled by 2^shift where q^g < 2^-55, so that a
    // tiny q^g times a huge BCE is not flushed; one rounding at the end. With
    // BCE >= 1 the scale comes off BCE first (exact: BCE 2^-64 stays normal), or
    // 2^64 q^g BCE could overflow where the loss does not (q^g = 2e-17 at
    // t = 0.0078, gamma 7.9, times BCE = 1.3e36 at x = -1.7e38).
    let big_bce = sp.one.le(bce);
    let bce_s = V::select(big_bce, bce.ldexp(-shift), bce);
    let bce_lo_s = V::select(big_bce, bce_lo.ldexp(-shift), bce_lo);
    let (fl, fl_lo) = mul_pair(qg, qg_lo, bce_s, bce_lo_s);
    let (fl, fl_lo) = mul_pair(fl, fl_lo, a_t, a_t_lo);
    let fl = fl + finite_or_zero(fl_lo);
    let fl = V::select(big_bce, fl, fl.ldexp(-shift));
    let (qg, qg_lo) = (qg.ldexp(-shift), qg_lo.ldexp(-shift));
    // Where q^g itself underflows (tiny t at a huge |x|) while BCE is huge, form
    // the product in the log domain: e^(g ln q + ln BCE), both logs in hi + lo.
    let tiny = V::and(qg.lt(V::splat(1.0e-30)), sp.one.lt(bce));
    let mut loss = if V::bitmask(tiny) != 0 {
        let fl_log = exp_product_of_powers(q, q_lo, bce, bce_lo, sp.gamma) * a_t;
        V::select(tiny, fl_log, fl)
    } else {
        fl
    };
    // An infinite BCE (infinite x) makes the loss infinite: q > 0 for soft t.
    loss = V::select(bce.eq(V::splat(f32::INFINITY)), bce, loss);
    if sp.zero_alpha {
        // alpha_t = 0 weighs the element out: 0 also where BCE is infinite.
        let inf = V::splat(f32::INFINITY);
        loss = V::select(V::and(a_t.eq(sp.zero), bce.eq(inf)), sp.zero, loss);
    }

    // d(q^g BCE)/dx = q^g (g BCE (dq/dx)/q + (p - t)): no negative power of q.
    let (f, f_lo) = if G == 0 {
        (pmt, pmt_lo)
    } else {
        let gr = sp.gamma * r;
        let gr_lo = sp.gamma.mul_add(r_lo, two_prod_err(sp.gamma, r, gr));
        if torchvision {
            // g r + (p - t): the terms may cancel, which the bound allows for (it
            // is relative to their magnitudes).
            let (f, f_err) = two_sum(gr, pmt);
            (f, f_err + (gr_lo + pmt_lo))
        } else {
            // (p - t)(1 + g r): 1 + g r >= 1, clamped to finite: where it
            // overflows (a gamma near f32::MAX), q^gamma is 0 and so is the product.
            let (f, f_err) = two_sum(sp.one, gr);
            let f_c = V::splat(f32::MAX).min(f);
            let f_lo = V::select(f.eq(f_c), f_err + gr_lo, sp.zero);
            mul_pair(pmt, pmt_lo, f_c, f_lo)
        }
    };
    let (gq, gq_lo) = if G == 0 {
        (f, f_lo)
    } else {
        mul_pair(qg, qg_lo, f, f_lo)
    };
    // (A low part made infinite or NaN by an overflow on the way is dropped here.)
    let (grad, grad_lo) = mul_pair(gq, gq_lo, ga_t, ga_t_lo);
    (loss, grad + finite_or_zero(grad_lo))
}

/// `w_pos t + w_neg (1 - t)` as `(hi, lo)`, the weights and `1 - t` given as
/// `hi + lo`: exact products, TwoSum, the tails to first order. (alpha_t, and
/// torchvision's `q = (1-p) t + p (1-t)`.)
#[inline(always)]
fn weight<V: SimdF32>(
    w_pos: V,
    w_pos_lo: V,
    w_neg: V,
    w_neg_lo: V,
    t: V,
    omt: V,
    omt_lo: V,
) -> (V, V) {
    let a = w_pos * t;
    let b = w_neg * omt;
    let (s, s_err) = two_sum(a, b);
    let tails = w_pos_lo.mul_add(t, w_neg_lo.mul_add(omt, w_neg * omt_lo));
    // (A weight above 2^115, `alpha / n` with a normaliser below 2^-115, overflows
    // Dekker's split without FMA: its error is dropped, as `mul_pair` drops its
    // own. A NaN error made the gradient's whole low part be dropped: 1070 ULP on
    // SSE2 at gamma 3.5, n = 9.4e-38; a fuzz finding.)
    let errs = two_prod_err_finite(w_pos, t, a) + two_prod_err_finite(w_neg, omt, b);
    let lo = s_err + errs + tails;
    (s, lo)
}

/// Whether every lane of `t` holds 0, 1 or `accept` (what a hard kernel may see).
#[inline(always)]
fn hard_targets<V: SimdF32>(t: V, accept: V) -> bool {
    let one = V::splat(1.0);
    let zero = V::splat(0.0);
    V::all(V::or(V::or(t.eq(one), t.eq(zero)), t.eq(accept)))
}

/// Compensated (Kahan) sum kept per lane; lanes are combined in f64 in lane order,
/// so a given backend gives the same bits on every run.
struct LaneSum<V> {
    s: V,
    c: V,
}

impl<V: SimdF32> LaneSum<V> {
    #[inline(always)]
    fn new() -> Self {
        LaneSum {
            s: V::splat(0.0),
            c: V::splat(0.0),
        }
    }

    #[inline(always)]
    fn add(&mut self, v: V) {
        let y = v - self.c;
        let t = self.s + y;
        self.c = (t - self.s) - y;
        self.s = t;
    }

    #[inline(always)]
    fn finish(self) -> f64 {
        let s = self.s.to_array();
        let c = self.c.to_array();
        let mut total = 0.0f64;
        for i in 0..V::LANES.min(MAX_LANES) {
            total += f64::from(s[i]) - f64::from(c[i]);
        }
        total
    }
}

/// One full vector's results at `i`: its loss into `sum`, which is then swapped
/// with `sum2` (vector k goes to sum k mod 2), when the mode sums; the loss or the
/// gradient stored at `out[i..]` when it writes.
///
/// # Safety
/// When the mode writes, `i + LANES <= out.len()`.
#[inline(always)]
unsafe fn emit<V: SimdF32>(
    mode: Mode,
    sum: &mut LaneSum<V>,
    sum2: &mut LaneSum<V>,
    out: &mut [f32],
    i: usize,
    loss: V,
    grad: V,
) {
    if matches!(mode, Mode::Sum | Mode::Fused) {
        sum.add(loss);
        core::mem::swap(sum, sum2);
    }
    let written = match mode {
        Mode::Sum => return,
        Mode::Loss => loss,
        Mode::Grad | Mode::Fused => grad,
    };
    // SAFETY: i + LANES <= out.len() (the caller's contract).
    unsafe { written.store(out.as_mut_ptr().add(i)) };
}

/// The focal loss over slices: writes `out` (loss or gradient, per `mode`) and
/// returns the compensated sum of the losses (0 when the mode does not sum).
///
/// The hard kernels check their targets as they go (0, 1 or `c.hard_accept`, two
/// compares per vector): so the API can run them before it has scanned the
/// targets, betting that they are all hard (the common case, where the scan's
/// pass over memory is saved). A vector with any other target stops the kernel
/// with `None` (its output and the outputs before it may have been written);
/// the caller then scans and runs again. After a scan the check always passes.
#[inline(always)]
pub(crate) fn focal<V: SimdF32, const G: u32, const SOFT: u8>(
    mode: Mode,
    c: &Coeffs,
    x: &[f32],
    t: &[f32],
    out: &mut [f32],
) -> Option<f64> {
    let accept = V::splat(c.hard_accept);
    // The label whose lanes give 0 in the full vectors: for the hard kernels the
    // value that their check compares with already (see `element2`).
    let ignore = if SOFT == HARD { accept } else { V::splat(-1.0) };
    let writes = !matches!(mode, Mode::Sum);
    let len = if writes {
        x.len().min(t.len()).min(out.len())
    } else {
        x.len().min(t.len())
    };
    let sp = Splats::<V>::new(c);
    // Two compensated sums, vector k into sum k mod 2 (pairs in the paired loop; the
    // single loop swaps the sums after each vector), so that Sum and Fused, and
    // every backend of a given lane count, add in one order.
    let mut sum = LaneSum::<V>::new();
    let mut sum2 = LaneSum::<V>::new();
    let mut i = 0;
    let sums = matches!(mode, Mode::Sum | Mode::Fused);
    let written = |loss: V, grad: V| if mode == Mode::Loss { loss } else { grad };
    // Software pipeline, three stages in flight: the exps of the vectors two steps
    // ahead, the rest of the logistic of the next step's, and the loss and
    // gradient of this step's. The stages are independent chains of about 40
    // cycles each that the out-of-order core overlaps; run in sequence, one
    // vector's chain was longer than the scheduler could see past (25-30% faster
    // on AVX-512 and AVX2). Each value still goes through the same operations as
    // in `element`: the bits do not change. The logits are loaded again where a
    // stage needs them (an L1 hit, where carrying them would take registers).
    // Two vectors per step where the registers hold both steps' stages
    // ([`paired`]), one elsewhere. Written out for each (a version generic over the
    // step, with arrays, was 10-20% slower: the arrays stayed in memory).
    // (Not in compact builds: microcontrollers, where it would be a second copy of
    // the kernel in flash.)
    let ld = |k: usize| {
        debug_assert!(k + V::LANES <= len);
        // SAFETY: every call below passes k + LANES <= len <= x.len().
        unsafe { V::load(x.as_ptr().add(k)) }
    };
    // (`const`, so that even unoptimized builds keep only one of the two loops: with
    // a plain `let`, the wasm debug build compiled both and took 5.5 min.)
    if !cfg!(compact) && const { paired::<V, G, SOFT>() } && 4 * V::LANES <= len {
        // Invariant at the top of the loop: (pa, pb) hold the first stage of
        // vectors i, i + 1; where i + 4 LANES <= len, (ea, eb) hold the exps of
        // i + 2, i + 3.
        let mut pa = stage1(ld(0));
        let mut pb = stage1(ld(V::LANES));
        let mut ea = stage0(ld(2 * V::LANES));
        let mut eb = stage0(ld(3 * V::LANES));
        while i + 2 * V::LANES <= len {
            // SAFETY: i + 2 LANES <= len <= the length of every slice used.
            let (ta, tb) = unsafe {
                (
                    V::load(t.as_ptr().add(i)),
                    V::load(t.as_ptr().add(i + V::LANES)),
                )
            };
            if SOFT == HARD && !(hard_targets(ta, accept) && hard_targets(tb, accept)) {
                return None;
            }
            let (cpa, cpb) = (pa, pb);
            // (Past the end, the stages below work on stale vectors whose results
            // are never used: the loop stops first.)
            pa = stage1e(ea.0, ea.1);
            pb = stage1e(eb.0, eb.1);
            if i + 6 * V::LANES <= len {
                ea = stage0(ld(i + 4 * V::LANES));
                eb = stage0(ld(i + 5 * V::LANES));
            }
            let (la, ga) = element2::<V, G, SOFT>(&sp, c.n, ld(i), ta, ignore, cpa);
            let (lb, gb) = element2::<V, G, SOFT>(&sp, c.n, ld(i + V::LANES), tb, ignore, cpb);
            // SAFETY: i + 2 LANES <= len <= out.len() when the mode writes.
            unsafe {
                emit(mode, &mut sum, &mut sum2, out, i, la, ga);
                emit(mode, &mut sum, &mut sum2, out, i + V::LANES, lb, gb);
            }
            i += 2 * V::LANES;
        }
    }
    if !cfg!(compact) && const { !paired::<V, G, SOFT>() } && 2 * V::LANES <= len {
        // As above, one vector per step: p0 holds the first stage of vector i and,
        // where i + 2 LANES <= len, e1 the exp of i + 1.
        let mut p0 = stage1(ld(0));
        let mut e1 = stage0(ld(V::LANES));
        while i + V::LANES <= len {
            // SAFETY: i + LANES <= len <= the length of every slice used.
            let tv = unsafe { V::load(t.as_ptr().add(i)) };
            if SOFT == HARD && !hard_targets(tv, accept) {
                return None;
            }
            let cp = p0;
            p0 = stage1e(e1.0, e1.1);
            if i + 3 * V::LANES <= len {
                e1 = stage0(ld(i + 2 * V::LANES));
            }
            let (loss, grad) = element2::<V, G, SOFT>(&sp, c.n, ld(i), tv, ignore, cp);
            // SAFETY: i + LANES <= len <= out.len() when the mode writes.
            unsafe { emit(mode, &mut sum, &mut sum2, out, i, loss, grad) };
            i += V::LANES;
        }
    }
    while i + V::LANES <= len {
        // SAFETY: i + LANES <= len <= the length of every slice used.
        let (xv, tv) = unsafe { (V::load(x.as_ptr().add(i)), V::load(t.as_ptr().add(i))) };
        if SOFT == HARD && !hard_targets(tv, accept) {
            return None;
        }
        let (loss, grad) = element::<V, G, SOFT>(&sp, c.n, xv, tv, ignore);
        // SAFETY: i + LANES <= len <= out.len() when the mode writes.
        unsafe { emit(mode, &mut sum, &mut sum2, out, i, loss, grad) };
        i += V::LANES;
    }
    let rest = len - i;
    if rest > 0 {
        // The tail goes through the same vector code: x padded with 0, t with the
        // ignore label, so padding lanes add exactly 0 to the sum.
        // SAFETY: rest elements from i are in bounds of every slice used.
        let (xv, tv) = unsafe {
            (
                V::load_partial(x.as_ptr().add(i), rest, 0.0),
                V::load_partial(t.as_ptr().add(i), rest, -1.0),
            )
        };
        if SOFT == HARD {
            // The check pads with 0, which is always accepted.
            // SAFETY: rest elements from i are in bounds of t.
            let tc = unsafe { V::load_partial(t.as_ptr().add(i), rest, 0.0) };
            if !hard_targets(tc, accept) {
                return None;
            }
        }
        // (Padding lanes hold -1 and real -1 targets passed the check: -1 is the
        // label to zero here.)
        let (loss, grad) = element::<V, G, SOFT>(&sp, c.n, xv, tv, V::splat(-1.0));
        if sums {
            sum.add(loss);
        }
        if writes {
            // SAFETY: rest (< LANES) elements from i are in bounds of out.
            unsafe { written(loss, grad).store_partial(out.as_mut_ptr().add(i), rest) };
        }
    }
    Some(if sums {
        // f64 addition commutes: the parity of the swaps does not matter.
        sum.finish() + sum2.finish()
    } else {
        0.0
    })
}

/// Whether [`focal`] takes two vectors per pipeline step: with 32 registers
/// (AVX-512), and with 16 (AVX2) for hard targets and an integer gamma, whose
/// stages are the smallest (AVX2: 4-8% faster at gamma 1 to 4; 20% slower for a
/// general gamma and 7-8% for soft targets, whose stages spilled; SSE2, 8
/// registers of `f32x8`, 6-7% slower even there).
const fn paired<V: SimdF32, const G: u32, const SOFT: u8>() -> bool {
    V::REGISTERS >= 32 || (V::REGISTERS >= 16 && V::LANES > 1 && SOFT == HARD && G != GENERAL)
}

/// Picks the monomorphized kernel for a gamma kind and target kind, once per call.
#[inline(always)]
pub(crate) fn focal_dispatch<V: SimdF32>(
    mode: Mode,
    soft: u8,
    c: &Coeffs,
    x: &[f32],
    t: &[f32],
    out: &mut [f32],
) -> Option<f64> {
    // Compact builds (targets without SIMD in `wide`: microcontrollers) keep one
    // kernel per target kind: integer gamma runs the general kernel's
    // multiplication branch. Elsewhere each integer kind gets its own kernel.
    #[cfg(compact)]
    macro_rules! by_gamma {
        ($soft:expr) => {
            focal::<V, GENERAL, { $soft }>(mode, c, x, t, out)
        };
    }
    #[cfg(not(compact))]
    macro_rules! by_gamma {
        ($soft:expr) => {
            match gamma_kind(c) {
                0 => focal::<V, 0, { $soft }>(mode, c, x, t, out),
                1 => focal::<V, 1, { $soft }>(mode, c, x, t, out),
                2 => focal::<V, 2, { $soft }>(mode, c, x, t, out),
                3 => focal::<V, 3, { $soft }>(mode, c, x, t, out),
                4 => focal::<V, 4, { $soft }>(mode, c, x, t, out),
                _ => focal::<V, GENERAL, { $soft }>(mode, c, x, t, out),
            }
        };
    }
    // Soft targets: gamma 2 (the paper's, and the common label-smoothing setting)
    // gets its own kernel, every other gamma the general one, whose integer branch
    // multiplies pairs as the integer kernels do. All six kinds for both soft forms
    // were 12 of the 18 kernels per backend and doubled the crate's build time
    // (87 s, now 40, release, Zen 3); soft targets at gamma 3 lost up to 13%.
    #[cfg(not(compact))]
    macro_rules! soft_by_gamma {
        ($soft:expr) => {
            if gamma_kind(c) == 2 {
                focal::<V, 2, { $soft }>(mode, c, x, t, out)
            } else {
                focal::<V, GENERAL, { $soft }>(mode, c, x, t, out)
            }
        };
    }
    #[cfg(compact)]
    macro_rules! soft_by_gamma {
        ($soft:expr) => {
            by_gamma!($soft)
        };
    }
    match soft {
        HARD => by_gamma!(HARD),
        SOFT_TORCHVISION => soft_by_gamma!(SOFT_TORCHVISION),
        _ => soft_by_gamma!(SOFT_EXP_NEG_BCE),
    }
}

/// 0..=4 for integer gamma up to 4, `GENERAL` otherwise.
#[cfg(not(compact))]
pub(crate) fn gamma_kind(c: &Coeffs) -> u32 {
    if c.frac == 0.0 && c.n <= 4 && c.gamma == c.n as f32 {
        c.n
    } else {
        GENERAL
    }
}

/// What the target scan found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TargetScan {
    /// Number of targets that are not the ignore label.
    pub active: usize,
    /// Whether any target is strictly between 0 and 1.
    pub any_soft: bool,
    /// Index of the first target outside `[0, 1]` that is not -1 (or NaN).
    pub first_invalid: Option<usize>,
}

/// The running state of the target scan, per lane.
#[derive(Clone, Copy)]
struct ScanAcc<V> {
    /// Minimum of `u = t - t^2` over the targets (ignore labels as 0): `u >= 0`
    /// exactly for `t` in `[0, 1]`, negative (or -inf) for any other number.
    min_u: V,
    /// Sum of `u`: NaN when a target is NaN (or +inf), positive when a target is
    /// soft (`u > 0` only for `0 < t < 1`), otherwise 0.
    sum_u: V,
    /// Number of ignore labels (exact in f32 below 2^24 per lane).
    ignored: V,
}

impl<V: SimdF32> ScanAcc<V> {
    #[inline(always)]
    fn new() -> Self {
        let zero = V::splat(0.0);
        ScanAcc {
            min_u: zero,
            sum_u: zero,
            ignored: zero,
        }
    }

    /// One vector of targets: six operations, no mask logic to carry.
    #[inline(always)]
    fn step(&mut self, tv: V) {
        let zero = V::splat(0.0);
        let is_ign = tv.eq(V::splat(-1.0));
        let tt = V::select(is_ign, zero, tv);
        // t - t^2 = t (1 - t): with FMA one rounding of a value whose sign is that of
        // t (1 - t); without, t^2 rounds to at most t for t in [0, 1], and a t just
        // outside still gives a negative u (1 + 2^-23: -2^-23; -2^-149: itself).
        let u = (-tt).mul_add(tt, tt);
        // `min`/`max` put NaN on the second operand; the sum keeps NaN on its own.
        self.min_u = u.min(self.min_u);
        self.sum_u = self.sum_u + u;
        self.ignored = self.ignored + V::select(is_ign, V::splat(1.0), zero);
    }

    #[inline(always)]
    fn merge(self, b: Self) -> Self {
        ScanAcc {
            min_u: self.min_u.min(b.min_u),
            sum_u: self.sum_u + b.sum_u,
            ignored: self.ignored + b.ignored,
        }
    }
}

/// One pass over the targets: validity, count of non-ignored, presence of soft ones.
/// Per vector it only computes `u = t (1 - t)` and accumulates its minimum and sum
/// and the count of ignore labels; they are inspected once per block, and only an
/// invalid block is searched again for its first bad index.
#[inline(always)]
pub(crate) fn scan_targets<V: SimdF32>(t: &[f32]) -> TargetScan {
    // 2^20 vectors per block keep the per-lane counts below 2^24, exact in f32.
    const BLOCK_VECTORS: usize = 1 << 20;
    let zero = V::splat(0.0);
    let mut ignored = 0usize;
    let mut any_soft = false;
    for (b, block) in t.chunks(BLOCK_VECTORS * V::LANES).enumerate() {
        // Independent accumulators: the sums are latency chains.
        let mut acc = [ScanAcc::<V>::new(); 4];
        let mut i = 0;
        while i + 4 * V::LANES <= block.len() {
            for (k, a) in acc.iter_mut().enumerate() {
                // SAFETY: 4 LANES elements from i are in bounds of block.
                a.step(unsafe { V::load(block.as_ptr().add(i + k * V::LANES)) });
            }
            i += 4 * V::LANES;
        }
        let [a0, a1, a2, a3] = acc;
        let mut acc = a0.merge(a1).merge(a2.merge(a3));
        while i + V::LANES <= block.len() {
            // SAFETY: LANES elements from i are in bounds of block.
            acc.step(unsafe { V::load(block.as_ptr().add(i)) });
            i += V::LANES;
        }
        let rest = block.len() - i;
        if rest > 0 {
            // SAFETY: rest elements from i are in bounds; the padding lanes hold the
            // ignore label (valid, counted, subtracted below).
            acc.step(unsafe { V::load_partial(block.as_ptr().add(i), rest, -1.0) });
        }
        // Valid: every u >= 0 (false for NaN) and no NaN in the sum.
        let valid = V::and(zero.le(acc.min_u), acc.sum_u.eq(acc.sum_u));
        if !V::all(valid) {
            let first = block
                .iter()
                .position(|&v| !((0.0..=1.0).contains(&v) || v == -1.0))
                .unwrap_or(0);
            return TargetScan {
                active: 0,
                any_soft: false,
                first_invalid: Some(b * BLOCK_VECTORS * V::LANES + first),
            };
        }
        any_soft |= V::bitmask(zero.lt(acc.sum_u)) != 0;
        let padding = if rest > 0 { V::LANES - rest } else { 0 };
        let counted: f32 = acc.ignored.to_array()[..V::LANES.min(MAX_LANES)]
            .iter()
            .sum();
        ignored += counted as usize - padding;
    }
    TargetScan {
        active: t.len() - ignored,
        any_soft,
        first_invalid: None,
    }
}

/// Applies building block `OP` (a `Unary` as u8) to a slice, tail through the same
/// code. The operation is a const parameter, not a closure: a function item passed
/// as `impl Fn` was called out of line, compiled without the entry's features.
#[inline(always)]
fn map<V: SimdF32, const OP: u8>(x: &[f32], out: &mut [f32]) {
    #[inline(always)]
    fn apply<V: SimdF32, const OP: u8>(v: V) -> V {
        match OP {
            0 => super::math::sigmoid(v),
            1 => super::math::softplus(v),
            _ => super::math::log_sigmoid(v),
        }
    }
    let len = x.len().min(out.len());
    let mut i = 0;
    while i + V::LANES <= len {
        // SAFETY: i + LANES <= len <= both lengths.
        unsafe { apply::<V, OP>(V::load(x.as_ptr().add(i))).store(out.as_mut_ptr().add(i)) };
        i += V::LANES;
    }
    if i < len {
        let rest = len - i;
        // SAFETY: rest elements from i are in bounds of both slices.
        unsafe {
            apply::<V, OP>(V::load_partial(x.as_ptr().add(i), rest, 0.0))
                .store_partial(out.as_mut_ptr().add(i), rest)
        };
    }
}

/// The elementwise building blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unary {
    Sigmoid,
    Softplus,
    LogSigmoid,
}

/// Applies a building block to a slice.
#[inline(always)]
pub(crate) fn unary<V: SimdF32>(op: Unary, x: &[f32], out: &mut [f32]) {
    match op {
        Unary::Sigmoid => map::<V, 0>(x, out),
        Unary::Softplus => map::<V, 1>(x, out),
        Unary::LogSigmoid => map::<V, 2>(x, out),
    }
}
