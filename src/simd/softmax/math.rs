//! Elementary functions of the softmax kernels, over [`SimdF32`].
//!
//! The softmax needs arguments carried as unevaluated sums `hi + lo`: the shifted
//! logit `z - m` is not exact in f32 (`5.2 - (-3.7)` loses bits), and an error of
//! `2^-18` in the argument of `exp` is 64 ULP of the result. So `exp` here takes
//! `hi + lo` and folds `lo` into its argument reduction, and the logarithms return
//! `hi + lo`. The logarithm's core (`log1p_small_tail`) and `ln_hilo` are
//! `simd::math`'s, shared with the sigmoid kernels.

use crate::simd::math::{ldexp_pair, log1p_small_tail};
use crate::simd::SimdF32;

/// log2(e), 0x3FB8AA3B.
const LOG2E: f32 = f32::from_bits(0x3FB8_AA3B);
/// High part of ln 2 with 8 trailing zero bits (0x3F317200): `k * LN2_HI` is exact
/// for |k| <= 2^8 (Cody-Waite).
const LN2_HI: f32 = f32::from_bits(0x3F31_7200);
/// ln 2 - LN2_HI rounded to f32 (0x35BFBE8E); together |error| < 2^-45.
const LN2_LO: f32 = f32::from_bits(0x35BF_BE8E);
/// `P(r) ~ (e^r - 1 - r) / r^2` on `[-ln2/2, ln2/2]`, degree 5, highest first:
/// mpmath's `chebyfit` (near-minimax, absolute error 1.4e-9), coefficients rounded
/// to f32; with the rounded coefficients `r^2 P(r)` is within 0.012 ULP (2^-24
/// relative) of `e^r - 1 - r` relative to `e^r`, measured in 40-digit arithmetic.
const EXP_P: [f32; 6] = [
    f32::from_bits(0x3950_9272), // 1.9890981e-4
    f32::from_bits(0x3AB6_A18B), // 1.3933642e-3
    f32::from_bits(0x3C08_8870), // 8.3333105e-3
    f32::from_bits(0x3D2A_AA75), // 4.1666467e-2
    f32::from_bits(0x3E2A_AAAB), // 1/6
    f32::from_bits(0x3F00_0000), // 1/2
];
/// ln 2 rounded to f32 (0x3F317218), last bit at 2^-24.
const LN2_F32: f32 = f32::from_bits(0x3F31_7218);
/// ln 2 - LN2_F32 rounded to f32 (-1.904654e-9, 0xB102E308); |error| < 2^-53.
const LN2_F32_LO: f32 = f32::from_bits(0xB102_E308);

// TwoSum and the exact product error are shared with the sigmoid kernels.
pub(crate) use crate::simd::math::{two_prod_err, two_sum};

/// NaN lanes to 0: for residuals, which are NaN exactly when the value they correct
/// is infinite or NaN (and then the correction is meaningless).
#[inline(always)]
pub(crate) fn finite_or_zero<V: SimdF32>(v: V) -> V {
    V::select(v.eq(v), v, V::splat(0.0))
}

/// `e^(hi + lo)` as an unevaluated sum `e_hi + e_lo` for `hi <= 0` (or NaN) and
/// `|lo| <= 2^-20 max(|hi|, 1)`, `|lo| <= 2^-8` (below -104 `hi` is clamped and
/// `lo` must not lift the result off 0; see [`exp_parts_wide`]): `e_hi` within
/// 0.75 ULP, `e_hi + e_lo` within about 0.1 ULP (of `e_hi`) in the normal range, so
/// that sums and powers of exps do not inherit half an ULP from each term. 0 below
/// about -103.97, NaN for NaN `hi`.
///
/// Reduction `hi + lo = k ln2 + r + r_lo` with `r` exact: with an FMA,
/// `r = hi - k LN2_F32` is exact (ln2 rounded to f32 has its last bit at 2^-24,
/// so the difference, below 0.35, fits in 24 bits) and `r_lo = lo - k (ln2 -
/// LN2_F32)`, |r_lo| up to 2^-17 (|lo| is up to half an ULP of `hi`); without one,
/// Cody-Waite with `LN2_HI` (8 zero bits) and TwoSum. Then `e^(r + r_lo) = 1 + r + u`
/// with `u = r^2 P(r) + r_lo e^r`, `e^r` to third order there (`P` = [`EXP_P`],
/// error below 0.012 ULP of `e^r`; the truncations, `r_lo r^4 / 24` and
/// `r_lo^2 / 2`, below 2^-34):
/// `e_hi = 1 + (r + u)` (two roundings), `e_lo = ((1 - e_hi) + r) + u`, the
/// residual of both within 2^-43 (see [`exp_reduced`]). Both parts scaled by `2^k`
/// (`ldexp`).
#[inline(always)]
pub(crate) fn exp_parts<V: SimdF32>(hi: V, lo: V) -> (V, V) {
    let (h, l, k) = exp_reduced(V::splat(-104.0).max(hi), lo);
    ldexp_pair(h, l, k)
}

/// `e^(x + lo) = (h + l) 2^k` before the scaling, `h` in `[0.7, 1.42]`, for `x`
/// in `[-200, 0]` (or NaN) and `|lo| <= 2^-12`: the body of [`exp_parts`], also
/// used where the result is scaled by a large factor before it may underflow.
#[inline(always)]
pub(crate) fn exp_reduced<V: SimdF32>(x: V, lo: V) -> (V, V, V) {
    let (k, r, r_lo) = exp_reduce_arg(x, lo);
    exp_reduced_from(k, r, r_lo)
}

/// The argument reduction of [`exp_reduced`]: `x + lo = k ln2 + r + r_lo`, `r`
/// exact. Split out so that a loop can run it one vector ahead of the rest
/// (software pipelining).
#[inline(always)]
pub(crate) fn exp_reduce_arg<V: SimdF32>(x: V, lo: V) -> (V, V, V) {
    let k = (x * V::splat(LOG2E)).round();
    let (r, r_lo) = if V::FUSED_MUL_ADD {
        (
            k.mul_add(V::splat(-LN2_F32), x),
            k.mul_add(V::splat(-LN2_F32_LO), lo),
        )
    } else {
        let r1 = k.mul_add(V::splat(-LN2_HI), x);
        two_sum(r1, k.mul_add(V::splat(-LN2_LO), lo))
    };
    (k, r, r_lo)
}

/// The rest of [`exp_reduced`], from [`exp_reduce_arg`]'s `(k, r, r_lo)`.
#[inline(always)]
pub(crate) fn exp_reduced_from<V: SimdF32>(k: V, r: V, r_lo: V) -> (V, V, V) {
    let one = V::splat(1.0);
    // Estrin's scheme: the kernels wait on these chains more than they run out of
    // FMA units.
    let r2 = r * r;
    let p01 = r.mul_add(V::splat(EXP_P[0]), V::splat(EXP_P[1]));
    let p23 = r.mul_add(V::splat(EXP_P[2]), V::splat(EXP_P[3]));
    let p45 = r.mul_add(V::splat(EXP_P[4]), V::splat(EXP_P[5]));
    let p = r2.mul_add(p01, p23);
    let p = r2.mul_add(p, p45);
    // e^(r + r_lo) = e^r + r_lo e^r (1 + r_lo/2 + ...): the second term with e^r to
    // third order, off the polynomial's latency chain. Its truncation r_lo r^4/24
    // is below 2^-37 for |r_lo| <= 2^-17 (an exponent near -100 carries a residual
    // that large); `r_lo (1 + r)` alone left r_lo r^2/2, 7 ULP at gamma ln q = -66.9.
    let er = r2.mul_add(r.mul_add(V::splat(1.0 / 6.0), V::splat(0.5)), r);
    let u = r2.mul_add(p, r_lo.mul_add(er, r_lo));
    let h = one + (r + u);
    // The residual of h as an approximation of 1 + r + u, without the error of
    // r + u as a separate term: 1 - h is exact (Sterbenz, h in [0.7, 1.42]); adding
    // r to it is exact too when |u| <= |r| / 2 (then -(1 - h) is within a factor 2
    // of r), and otherwise |r| < 2^-19 and |(1 - h) + r| < 2^-18, so its rounding is
    // below 2^-43. Two operations fewer than Fast2Sum(r, u) and its error.
    let l = ((one - h) + r) + u;
    (h, l, k)
}

/// `coef (h + l) 2^k` for `(h, l, k)` from [`exp_reduced`] and a positive normal
/// (or 0) `coef`, with one rounding into the subnormal range: the exponents of
/// `coef` and `2^k` are added before anything is scaled, so an exp far below the
/// f32 range still gives a normal product when `coef` is large. 0 where the
/// result is below 2^-150 or `coef` is 0; NaN where `coef` is NaN (a NaN logit in
/// the row: the exponent field of NaN would otherwise count as a huge `kc` and the
/// product as underflowed).
#[inline(always)]
pub(crate) fn scaled_exp<V: SimdF32>(h: V, l: V, k: V, coef: V) -> V {
    let zero = V::splat(0.0);
    let kc = coef.exponent();
    // coef = cm 2^kc with cm in [1, 2), exact.
    let cm = coef * (-kc).pow2i();
    let kk = k + kc;
    // x in [0.7, 2.9]; x 2^kk = (x / 2) 2^(kk + 1), kk + 1 in ldexp's range down to
    // the last exponent that can still round up to 2^-149.
    let x = l.mul_add(cm, h * cm) * V::splat(0.5);
    let r = x.ldexp(V::splat(-150.0).max(kk + V::splat(1.0)));
    let r = V::select(V::or(kk.lt(V::splat(-151.0)), coef.le(zero)), zero, r);
    V::select(coef.eq(coef), r, coef)
}

/// [`exp_parts`] for any `hi + lo` with `hi <= 0` (or NaN, or `-inf` with `lo = 0`)
/// and `|lo| <= ulp(hi)`: `lo` is dropped where `hi < -104` (the result is 0 there,
/// and a `lo` of the size of `hi`'s ULP, up to 2^103, must not move it; so is the
/// large `lo` of `shifted_label`'s `hi = -f32::MAX`).
#[inline(always)]
pub(crate) fn exp_parts_wide<V: SimdF32>(hi: V, lo: V) -> (V, V) {
    exp_parts(hi, V::select(hi.lt(V::splat(-104.0)), V::splat(0.0), lo))
}

/// `ln(u)` for positive normal `u` below 2^127 as `(k ln2_hi, k ln2_lo + ln(m))`,
/// `u = 2^k m`, `m` in `[0.75, 1.5)`: the first part exact, the sum within 1 ULP.
#[inline(always)]
fn ln_normal<V: SimdF32>(u: V) -> (V, V) {
    let k = u.exponent();
    // u * 2^-k is exact; m in [1, 2), folded to [0.75, 1.5) so that f = m - 1 is
    // exact and in log1p_small_tail's range.
    let m = u * (-k).pow2i();
    let big = V::splat(1.5).le(m);
    let m = V::select(big, m * V::splat(0.5), m);
    let k = V::select(big, k + V::splat(1.0), k);
    let f = m - V::splat(1.0);
    let l = f + log1p_small_tail(f);
    (k * V::splat(LN2_HI), k.mul_add(V::splat(LN2_LO), l))
}

/// `ln(1 + (x + xl))` for `x >= 0` (below 2^126) and a small correction `xl`, as
/// `hi + lo` (`hi` exact): the rounding of `1 + x` is recovered by TwoSum and
/// added as `err / (1 + x)`, computed as `err * inv_u` with `inv_u` any
/// approximation of `1 / (1 + x)` within a few ULP (it only scales the
/// correction). Subnormal `x` gives `x` (in `lo`).
#[inline(always)]
pub(crate) fn ln1p_hilo<V: SimdF32>(x: V, xl: V, inv_u: V) -> (V, V) {
    let (u, err) = two_sum(V::splat(1.0), x);
    let (hi, lo) = ln_normal(u);
    (hi, (err + xl).mul_add(inv_u, lo))
}
