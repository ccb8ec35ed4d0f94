//! Vector elementary functions, written once over [`SimdF32`].
//!
//! Each function states its domain and its error bound; the bounds are measured by
//! `tests/accuracy.rs` against a double-double reference on every backend.

use super::SimdF32;

/// log2(e), 0x3FB8AA3B.
const LOG2E: f32 = f32::from_bits(0x3FB8_AA3B);
/// High part of ln 2 with 8 trailing zero bits (0x3F317200), so `k * LN2_HI` is exact
/// for |k| <= 2^8: Cody-Waite reduction.
pub(crate) const LN2_HI: f32 = f32::from_bits(0x3F31_7200);
/// ln 2 - LN2_HI rounded to f32 (0x35BFBE8E); together |error| < 2^-45.
pub(crate) const LN2_LO: f32 = f32::from_bits(0x35BF_BE8E);

/// Error-free sum: `a + b = s + err` exactly (Knuth's TwoSum, no ordering needed).
#[inline(always)]
pub(crate) fn two_sum<V: SimdF32>(a: V, b: V) -> (V, V) {
    let s = a + b;
    let bb = s - a;
    let err = (a - (s - bb)) + (b - bb);
    (s, err)
}

/// The rounding error of the product `p = a * b`: `a * b = p + err` exactly
/// (with FMA, or by Dekker's split; the split needs |a|, |b| < 2^100 to not overflow,
/// a NaN error term is returned as 0 by the callers).
#[inline(always)]
pub(crate) fn two_prod_err<V: SimdF32>(a: V, b: V, p: V) -> V {
    if V::FUSED_MUL_ADD {
        a.mul_add(b, -p)
    } else {
        dekker_prod_err(a, b, p)
    }
}

/// [`two_prod_err`] without FMA, by Dekker's product. (Out of line in compact
/// builds: about 17 operations, used a dozen times by the soft-target kernels.)
#[cfg_attr(not(compact), inline(always))]
#[cfg_attr(compact, inline(never))]
fn dekker_prod_err<V: SimdF32>(a: V, b: V, p: V) -> V {
    let (a_hi, a_lo) = veltkamp_split(a);
    let (b_hi, b_lo) = veltkamp_split(b);
    ((a_hi * b_hi - p) + a_hi * b_lo + a_lo * b_hi) + a_lo * b_lo
}

/// `a = hi + lo` exactly, each half of at most 12 significant bits (Veltkamp's split
/// with 2^12 + 1), so that the products of two halves are exact.
#[inline(always)]
fn veltkamp_split<V: SimdF32>(a: V) -> (V, V) {
    let c = V::splat(4097.0) * a;
    let hi = c - (c - a);
    (hi, a - hi)
}

/// `(a + al)(b + bl)` as an unevaluated sum `p + pl`: `p = a b` rounded, `pl` its
/// exact rounding error plus the low parts to first order (`al`, `bl` of rounding
/// size next to `a`, `b`). Without FMA, where Dekker's split overflows (an operand
/// above 2^115: a BCE at x ~ 1e38), the product's own error is dropped, not the
/// low parts carried in (which held 30 ULP of a `q^gamma` at gamma 4.7).
#[inline(always)]
pub(crate) fn mul_pair<V: SimdF32>(a: V, al: V, b: V, bl: V) -> (V, V) {
    let p = a * b;
    (
        p,
        a.mul_add(bl, al.mul_add(b, two_prod_err_finite(a, b, p))),
    )
}

/// [`two_prod_err`], 0 where it is not finite: without FMA, Dekker's split
/// overflows for an operand above 2^115 and gives NaN, which must not reach the low
/// parts it is added to ([`mul_pair`], and the kernels' weights `alpha / n`).
#[inline(always)]
pub(crate) fn two_prod_err_finite<V: SimdF32>(a: V, b: V, p: V) -> V {
    if V::FUSED_MUL_ADD {
        a.mul_add(b, -p)
    } else {
        dekker_prod_err_finite(a, b, p)
    }
}

/// [`dekker_prod_err`], 0 where it is not finite (out of line in compact builds, as
/// that is).
#[cfg_attr(not(compact), inline(always))]
#[cfg_attr(compact, inline(never))]
fn dekker_prod_err_finite<V: SimdF32>(a: V, b: V, p: V) -> V {
    finite_or_zero(dekker_prod_err(a, b, p))
}

/// `(n + nl) / (d + dl)` as an unevaluated sum: the rounded quotient and, from its
/// exact remainder, the correction to first order (`d > 0`). (Two divisions: with
/// one shared `1 / d`, a subnormal `d` made the reciprocal infinite and the
/// correction NaN.)
#[inline(always)]
pub(crate) fn div_pair<V: SimdF32>(n: V, nl: V, d: V, dl: V) -> (V, V) {
    let r = n / d;
    (r, (fms_exact(r, d, n) + nl - r * dl) / d)
}

/// `lo` where it is finite, else 0: for the low parts of unevaluated sums, which an
/// overflowed product or Dekker split (huge operands, no FMA) can make infinite or
/// NaN while the high part is right.
#[inline(always)]
pub(crate) fn finite_or_zero<V: SimdF32>(lo: V) -> V {
    V::select(lo.abs().lt(V::splat(f32::INFINITY)), lo, V::splat(0.0))
}

/// `(q + q_lo)^n` for `q` in `[0, 1]`, `|q_lo|` of rounding size, `n <= 8`, rounded
/// once: binary powering on unevaluated sums, so neither `q`'s rounding nor the
/// products' are multiplied by `n` (a plain `q^8` by three squarings compounds
/// them to 16.6 units of 2^-24, past the 16-ULP bound where the result's mantissa is
/// near 2; found by an independent audit, as 9 units at `q^3`). `n` is the same for
/// every lane of a call. (Out of line in compact builds, where only the scalar
/// kernels use it and flash is what counts.)
#[cfg_attr(not(compact), inline(always))]
#[cfg_attr(compact, inline(never))]
pub(crate) fn powi_pair<V: SimdF32>(q: V, q_lo: V, n: u32) -> V {
    let (hi, lo) = powi_pair_parts(q, q_lo, n);
    hi + lo
}

/// [`powi_pair`] before its final rounding: `(q + q_lo)^n` as `hi + lo`, `lo` holding
/// every product's rounding error and `q_lo` to first order (`n = 0` gives 1).
#[inline(always)]
pub(crate) fn powi_pair_parts<V: SimdF32>(q: V, q_lo: V, mut n: u32) -> (V, V) {
    let zero = V::splat(0.0);
    let (mut acc, mut acc_lo) = (V::splat(1.0), zero);
    let (mut b, mut b_lo) = (q, q_lo);
    let mut first = true;
    while n > 0 {
        if n & 1 == 1 {
            (acc, acc_lo) = if first {
                (b, b_lo)
            } else {
                mul_pair(acc, acc_lo, b, b_lo)
            };
            first = false;
        }
        n >>= 1;
        if n > 0 {
            (b, b_lo) = mul_pair(b, b_lo, b, b_lo);
        }
    }
    (acc, acc_lo)
}

/// `e^x` over the whole f32 range, with gradual underflow to subnormals, `+inf` above
/// 88.72, `0` below -103.97, NaN for NaN. Max error 1 ULP (measured 0.51 in the
/// normal range).
///
/// Cody-Waite reduction `x = k ln2 + r`, |r| <= ln2/2, then the degree-7 Taylor
/// polynomial of `e^r` (truncation < r^8/8! * e^r < 7.6e-9 relative, 0.06 ULP), then
/// scaling by `2^k` as `2^k1 * 2^k2` so that results down to 2^-149 and up to 2^128
/// are formed with one final rounding.
#[inline(always)]
pub(crate) fn exp<V: SimdF32>(x: V) -> V {
    // Clamp, keeping NaN (see `SimdF32::max`).
    exp_clamped(V::splat(89.0).min(V::splat(-104.0).max(x)))
}

/// The body of [`exp`] for `x` in `[-104, 89]` or NaN.
#[inline(always)]
fn exp_clamped<V: SimdF32>(x: V) -> V {
    let (k, m) = exp_reduced(x);
    (V::splat(1.0) + m).ldexp(k)
}

/// `e^x = 2^k (1 + m)` with `k` integer and `m = e^r - 1`, |r| <= ln2/2, for `x` in
/// `[-104, 89]`: Cody-Waite reduction, then the degree-7 Taylor polynomial of
/// `e^r - 1` (truncation < r^8/8! e^r < 7.6e-9 relative to `1 + m`).
#[inline(always)]
fn exp_reduced<V: SimdF32>(x: V) -> (V, V) {
    let k = (x * V::splat(LOG2E)).round();
    let r = k.mul_add(V::splat(-LN2_HI), x);
    let r = k.mul_add(V::splat(-LN2_LO), r);
    // Estrin's scheme: three levels of FMAs instead of a chain of five (the kernels
    // are bound by their latency chains, not by the operation count).
    let r2 = r * r;
    let p67 = r.mul_add(V::splat(1.0 / 5040.0), V::splat(1.0 / 720.0));
    let p45 = r.mul_add(V::splat(1.0 / 120.0), V::splat(1.0 / 24.0));
    let p23 = r.mul_add(V::splat(1.0 / 6.0), V::splat(0.5));
    let p = r2.mul_add(p67, p45);
    let p = r2.mul_add(p, p23);
    (k, r2.mul_add(p, r))
}

/// Cody-Waite reduction for the exp pairs: `x = k ln2 + r + r_lo` with `k` integer,
/// `|r| <= ln2/2` and `r_lo` what rounding `r` dropped (`x` in `[-104, 89]`).
/// `x - k LN2_HI` is exact; `r1 - r` is exact where `r` is not tiny, and where it is
/// its rounding is below 2^-24 of `|k LN2_LO| < 2^-12`.
#[inline(always)]
fn reduce_exp_arg<V: SimdF32>(x: V) -> (V, V, V) {
    let k = (x * V::splat(LOG2E)).round();
    let r1 = k.mul_add(V::splat(-LN2_HI), x);
    let r = k.mul_add(V::splat(-LN2_LO), r1);
    (k, r, k.mul_add(V::splat(-LN2_LO), r1 - r))
}

/// `e^x` for `x <= 88` (named for its main use, `x <= 0`) as an unevaluated sum
/// `hi + lo` within 0.15 units of 2^-24 relative of `e^x` (for normal results;
/// `hi` is `e^x` rounded): the kernels' `e^-|x|`, whose relative error the sigmoid,
/// softplus and BCE inherit and `q^gamma` multiplies by gamma.
///
/// `e^x = 2^k (1 + m)` by Cody-Waite with the reduced argument in hi + lo (`r + r_lo`),
/// `m = r + r^2 p(r)` with `p` the Taylor series of `(e^r - 1 - r)/r^2` to `r^6/8!`
/// (truncation below `r^9/9! < 2e-10`), and `1 + r + r^2 p` summed by two Fast2Sums:
/// only `r^2 p` (below 0.061) is rounded. (Rounding `r` and `m` to f32, as `exp`
/// does, left 1.1 units, which gamma 7.5 made 7-9 ULP on the vector backends
/// against 3 on the scalar one, whose pair comes from libm's f64 `exp`.)
#[cfg_attr(not(compact), inline(always))]
#[cfg_attr(compact, inline(never))]
pub(crate) fn exp_nonpositive_parts<V: SimdF32>(x: V) -> (V, V) {
    let (k, r, r_lo) = reduce_exp_arg(V::splat(-104.0).max(x));
    let r2 = r * r;
    // Estrin's scheme (the kernels are bound by their latency chains).
    let p01 = r.mul_add(V::splat(1.0 / 6.0), V::splat(0.5));
    let p23 = r.mul_add(V::splat(1.0 / 120.0), V::splat(1.0 / 24.0));
    let p45 = r.mul_add(V::splat(1.0 / 5040.0), V::splat(1.0 / 720.0));
    let p = r2.mul_add(V::splat(1.0 / 40320.0), p45);
    let p = r2.mul_add(p, p23);
    let p = r2.mul_add(p, p01);
    let tail = r2 * p;
    let one = V::splat(1.0);
    // Fast2Sum twice: 1 >= |r| (r within ln2/2), and 1 + r >= 0.7 > r^2 p.
    let s = one + r;
    let s_err = (one - s) + r;
    let hi = s + tail;
    let lo = (s - hi) + tail;
    // e^(r + r_lo) = e^r (1 + r_lo) to first order.
    ldexp_pair(hi, hi.mul_add(r_lo, lo + s_err), k)
}

/// `(hi 2^k, lo 2^k)` as [`SimdF32::ldexp`] gives them. On the vector backends
/// without a native ldexp (AVX2, portable), where every lane's `2^k` is normal (an
/// exp above -87, the usual case), by one scaling instead of ldexp's two steps,
/// with the same single rounding (sigmoid kernels at gamma 2: AVX2 4%, SSE2 3%).
/// Not on the scalar backend, whose code size counts on Cortex-M.
#[inline(always)]
pub(crate) fn ldexp_pair<V: SimdF32>(hi: V, lo: V, k: V) -> (V, V) {
    if !V::NATIVE_LDEXP && const { V::LANES > 1 } && V::all(V::splat(-126.0).le(k)) {
        let s = k.pow2i();
        (hi * s, lo * s)
    } else {
        (hi.ldexp(k), lo.ldexp(k))
    }
}

/// `1 - e^-b` and `e^-b` for `b = b_hi + b_lo >= 0` (`|b_lo|` of rounding size), each
/// as an unevaluated sum `(hi, lo)` within 2^-28 relative (measured 2.8e-9, 0.05
/// units of 2^-24, from the rounding of the `r^3` term near `b = ln2 / 2`; the test
/// below; `e^-b` while its low part is a normal number, `b` below 70): the snippet's
/// `q = 1 - exp(-BCE)`, whose relative error `q^gamma` multiplies by gamma (a
/// rounded `expm1` cost 8 units of 2^-24 at gamma 8; an independent audit).
///
/// `e^-b = 2^k (1 + m)` with `k = round(-b / ln 2)` (down to -150: `b` is clamped to
/// 104, past which `e^-b` rounds to 0) and `m = e^r - 1`, `r` in hi + lo by
/// Cody-Waite; `m = r + r^2/2 + r^3 d(r)` with the first two terms and `r^2`
/// carried exactly, `d` the Taylor series to `r^6/9!` (truncation below
/// `r^10/10! < 7e-12`). Then `q = -m` for `k = 0` (no cancellation), and
/// `q = 1 - e^-b` by TwoSum below (`e^-b <= 0.71`). NaN `b` gives NaN.
#[inline(always)]
pub(crate) fn one_minus_exp_neg<V: SimdF32>(b: V, b_lo: V) -> ((V, V), (V, V)) {
    let one = V::splat(1.0);
    let x = -V::splat(104.0).min(b);
    let (k, r, r_err) = reduce_exp_arg(x);
    let r_lo = V::select(b.lt(V::splat(104.0)), r_err - b_lo, r_err);
    let r2 = r * r;
    let r2_err = two_prod_err(r, r, r2);
    let d = r.mul_add(V::splat(1.0 / 362_880.0), V::splat(1.0 / 40320.0));
    let d = r.mul_add(d, V::splat(1.0 / 5040.0));
    let d = r.mul_add(d, V::splat(1.0 / 720.0));
    let d = r.mul_add(d, V::splat(1.0 / 120.0));
    let d = r.mul_add(d, V::splat(1.0 / 24.0));
    let d = r.mul_add(d, V::splat(1.0 / 6.0));
    let half = V::splat(0.5);
    let (s, s_err) = two_sum(r, r2 * half);
    let (m, m_err) = two_sum(s, r2 * (r * d));
    // e^(r + r_lo) - 1 = m + e^r r_lo = m + (1 + m) r_lo to first order. ((1 + r) r_lo
    // was 0.08 units of 2^-24 off in q at b ~ 1: the test below.)
    let m_lo = (s_err + m_err) + r2_err.mul_add(half, m.mul_add(r_lo, r_lo));
    // Fast2Sum: 1 >= |m|.
    let e1 = one + m;
    let (e, e_lo) = ldexp_pair(e1, ((one - e1) + m) + m_lo, k);
    let (q, q_err) = two_sum(one, -e);
    let k0 = k.eq(V::splat(0.0));
    // (0 - m: b = 0 gives q = +0, not -0.)
    let zero = V::splat(0.0);
    let q_lo = V::select(k0, zero - m_lo, q_err - e_lo);
    ((V::select(k0, zero - m, q), q_lo), (e, e_lo))
}

/// `ln(1 + f) - f` for `f` in `[-0.25, 0.5]`, fdlibm's arrangement
/// `-(f^2/2 - s (f^2/2 + R(s^2)))` with `s = f / (2 + f)` and `R` the atanh Taylor
/// series to s^10 (truncation 2 s^13 / 13 < 1.3e-10 at s = 0.2). Kept apart from the
/// exact `f`, it gives `ln(1 + f)` as an unevaluated sum `f + tail`.
#[inline(always)]
pub(crate) fn log1p_small_tail<V: SimdF32>(f: V) -> V {
    let s = f / (V::splat(2.0) + f);
    let z = s * s;
    // Estrin's scheme, as in `exp_reduced`.
    let z2 = z * z;
    let r01 = z.mul_add(V::splat(2.0 / 5.0), V::splat(2.0 / 3.0));
    let r23 = z.mul_add(V::splat(2.0 / 9.0), V::splat(2.0 / 7.0));
    let r = z2.mul_add(V::splat(2.0 / 11.0), r23);
    let r = z2.mul_add(r, r01);
    let r = r * z;
    let hfsq = V::splat(0.5) * f * f;
    // -(hfsq - s (hfsq + R))
    -s.mul_add(-(hfsq + r), hfsq)
}

/// `ln(1 + a)` for `a` in `[0, 1]` (the `log1p(exp(-|x|))` of softplus) as an
/// unevaluated sum `hi + lo`; `hi + lo` rounded is within 1 ULP, the pair itself
/// within about 0.1 ULP of `hi`. `a = 0` gives 0, subnormal `a` gives `a`.
///
/// One path for every lane, by range reduction and fdlibm's atanh series: no
/// branch on the data. (A cheaper Taylor series for `a <= 0.15`, taken where a
/// whole vector allowed it, was slower once the kernels were software-pipelined:
/// on logits where a third of the vectors mix both kinds, the mispredicted branch
/// cost more than the division it saved; see `kernel::focal`.)
#[cfg_attr(not(compact), inline(always))]
#[cfg_attr(compact, inline(never))]
pub(crate) fn log1p_unit_parts<V: SimdF32>(a: V) -> (V, V) {
    // 1 + a = 2^k (1 + f): k = 0, f = a for a < 0.5 (exact, no rounding of 1 + a);
    // k = 1, f = (a - 1)/2 in [-0.25, 0] for a >= 0.5 (exact by Sterbenz).
    let big = V::splat(0.5).le(a);
    let zero = V::splat(0.0);
    let f = V::select(big, a.mul_add(V::splat(0.5), V::splat(-0.5)), a);
    let kh = V::select(big, V::splat(LN2_HI), zero);
    let kl = V::select(big, V::splat(LN2_LO), zero);
    // Fast2Sum: |kh| >= |f| when k = 1, and kh = 0 adds exactly when k = 0.
    let hi = kh + f;
    let err = f - (hi - kh);
    (hi, err + (kl + log1p_small_tail(f)))
}

/// `ln(q)` for positive finite `q` (used on `(0, 1]`, and for BCE) as `hi + lo`, not
/// normalized (lo holds log1p's tail, up to 0.1), so that `gamma * ln(q)` can be formed without losing the tail bits.
/// Subnormal `q` is scaled by 2^24 first.
#[inline(always)]
pub(crate) fn ln_hilo<V: SimdF32>(q: V) -> (V, V) {
    let tiny = q.lt(V::splat(f32::MIN_POSITIVE));
    let qs = V::select(tiny, q * V::splat(16_777_216.0), q);
    let (k, m) = frexp(qs);
    let k = V::select(tiny, k - V::splat(24.0), k);
    // m in [1, 2): fold m >= 1.5 to m/2 so that f = m - 1 in [-0.25, 0.5) (exact).
    let big = V::splat(1.5).le(m);
    let m = V::select(big, m * V::splat(0.5), m);
    let k = V::select(big, k + V::splat(1.0), k);
    let f = m - V::splat(1.0);
    // ln q = k ln2_hi + f + tail + k ln2_lo; the first two summed exactly.
    let (hi, err) = two_sum(k * V::splat(LN2_HI), f);
    (hi, err + k.mul_add(V::splat(LN2_LO), log1p_small_tail(f)))
}

/// `(k, m)` with `x = 2^k * m`, `m` in `[1, 2)`, for positive normal `x`.
#[inline(always)]
fn frexp<V: SimdF32>(x: V) -> (V, V) {
    // k from the exponent field; m = x * 2^-k is exact. 2^-127 is not a normal
    // number (`pow2i` builds normal ones): for the top binade, x / 2 first (a BCE
    // of 2.4e38, at x = f32::MAX with t = 0.3, got m = 0 and a loss 60 times too
    // small; a fuzz finding).
    let k = x.exponent();
    let top = V::splat(126.0).lt(k);
    let m = V::select(
        top,
        (x * V::splat(0.5)) * V::splat(-126.0).pow2i(),
        x * (-k).pow2i(),
    );
    (k, m)
}

/// `c - a*b`, exact whenever the result is representable (the remainder of a
/// rounded quotient): one FMA, or Dekker's product error without FMA.
#[inline(always)]
pub(crate) fn fms_exact<V: SimdF32>(a: V, b: V, c: V) -> V {
    if V::FUSED_MUL_ADD {
        (-a).mul_add(b, c)
    } else {
        let p = a * b;
        (c - p) - two_prod_err(a, b, p)
    }
}

/// `sqrt(q + q_lo)` for positive normal `q` and `|q_lo| <= ulp(q)`, from the root
/// of `q0`, any value within a few ULP of `q` (available earlier: the root and
/// `1 / (2 s)` run while `q` is being corrected): `s = sqrt(q0)` corrected by the
/// exact remainder `q - s^2` plus `q_lo` (first order), within about 0.5 ULP.
#[inline(always)]
pub(crate) fn sqrt_hilo<V: SimdF32>(q0: V, q: V, q_lo: V) -> V {
    let s = q0.sqrt();
    let half_inv = V::splat(0.5) / s;
    let rem = fms_exact(s, s, q) + q_lo;
    rem.mul_add(half_inv, s)
}

/// `e^(hi + lo)` for an exponent carried as an unevaluated sum with |lo| << 1 ulp
/// of hi: `e^hi (1 + lo)`. Compact builds take [`exp_hilo_pair`] instead: libm's
/// `expf` would be 460 bytes of flash that nothing else uses there.
#[inline(always)]
pub(crate) fn exp_hilo<V: SimdF32>(hi: V, lo: V) -> V {
    if cfg!(compact) {
        exp_hilo_pair(hi, lo)
    } else {
        let e = hi.exp();
        e.mul_add(lo, e)
    }
}

/// [`exp_hilo`] from the out-of-line [`exp_nonpositive_parts`] (`+inf` past 88.72,
/// 0 below -104, NaN for NaN): `(e + e_lo)(1 + lo)`, rounded once, within
/// 0.64 ULP from `hi = -80` up and 1 ULP below (the test below).
#[inline(always)]
fn exp_hilo_pair<V: SimdF32>(hi: V, lo: V) -> V {
    // Clamped as `exp` clamps (keeping NaN): the pair is for arguments up to 88.7.
    let (e, e_lo) = exp_nonpositive_parts(V::splat(89.0).min(hi));
    // Past 88.72, e = inf and inf * 0 would make the correction NaN.
    e + finite_or_zero(e.mul_add(lo, e_lo))
}

/// The pieces of the logistic function at `|x|` shared by softplus, sigmoid and the
/// loss kernels.
#[derive(Clone, Copy)]
pub(crate) struct Logistic<V> {
    /// `e^-|x|`, in `[0, 1]`, rounded.
    pub e: V,
    /// The rounding error of `e`.
    pub el: V,
    /// `1 / (1 + e)` rounded once, for first-order corrections.
    pub inv_d: V,
    /// `e / (1 + e)` within about 1 ULP (`small` before its correction).
    pub small0: V,
    /// `sigmoid(|x|) = 1/(1 + e^-|x|)`, in `[0.5, 1]`.
    pub big: V,
    /// `sigmoid(-|x|) = e^-|x| / (1 + e^-|x|)`, in `[0, 0.5]`, never by subtraction.
    pub small: V,
    /// The rounding error of `big` (first order).
    pub big_lo: V,
    /// The rounding error of `small` (first order).
    pub small_lo: V,
}

/// Computes [`Logistic`] from one exp and one division, compensated: `e^-|x|` is
/// carried as `e + el`, `1 + e` as `d + derr`, and both quotients are corrected by
/// their exact remainders (FMA), so the only rounding left in each sigmoid is the
/// last one (measured max 0.6 ULP).
#[inline(always)]
pub(crate) fn logistic<V: SimdF32>(x: V) -> Logistic<V> {
    let (e, el) = x.neg_abs().exp_nonpositive_parts();
    logistic_from_exp(e, el)
}

/// [`logistic`] from its exp, `e^-|x| = e + el` (so that the kernels can run the
/// exp of one vector ahead of the rest).
#[inline(always)]
pub(crate) fn logistic_from_exp<V: SimdF32>(e: V, el: V) -> Logistic<V> {
    let one = V::splat(1.0);
    let d = one + e;
    // Fast2Sum residual (1 >= e), plus the tail of e: d + derr = 1 + e + el.
    let derr = ((one - d) + e) + el;
    let big0 = one / d;
    // e / d as e (1/d): within about 1 ULP instead of 0.5, and the correction
    // below (from the exact remainder e - small0 d) absorbs that as it absorbs
    // the division's rounding; one division fewer on the kernels' longest chain.
    let small0 = e * big0;
    // 1/(d + derr) = big0 + (1 - big0 d)/d - derr/d^2 + ...; the remainders
    // 1 - big0 d and e - small0 d are exact with FMA.
    let (big_rem, small_rem) = quotient_remainders(big0, small0, d, e);
    let small_rem = small_rem + el;
    // (Each an FMA: one rounding, one instruction.)
    let big_x = derr.mul_add(-big0, big_rem);
    let small_x = derr.mul_add(-small0, small_rem);
    let big_c = big0 * big_x;
    let small_c = big0 * small_x;
    // The corrected quotients with one rounding (an FMA: one latency step fewer);
    // big_c and small_c only serve the residuals below.
    let big = big0.mul_add(big_x, big0);
    let small = big0.mul_add(small_x, small0);
    Logistic {
        e,
        el,
        big,
        small,
        // Fast2Sum residuals (|big0| >= |big_c|): what the rounded sigmoids lost.
        big_lo: big_c - (big - big0),
        small_lo: small_c - (small - small0),
        inv_d: big0,
        small0,
    }
}

/// The remainders `1 - big0 d` and `e - small0 d` of [`logistic_from_exp`]'s
/// quotients (`e` in `[0, 1]`, `d = 1 + e` rounded, `big0 = 1 / d` rounded,
/// `small0 = e big0` rounded), exact: two FMAs, or without FMA Dekker's products
/// with `d` split once and each remainder taken from its `c` down,
/// `c - a_hi d_hi - a_hi d_lo - a_lo d_hi - a_lo d_lo`, which skips the rounded
/// product that [`fms_exact`] forms first (10 operations fewer than two
/// `fms_exact`; SSE2 kernels 4-6% faster at gamma 1.5 and 2). Checked for every f32
/// `e` in `[0, 1]`: the same bits as the two FMAs, and `1 - big0 d` exact (the test
/// below samples it on each backend's arithmetic).
#[inline(always)]
fn quotient_remainders<V: SimdF32>(big0: V, small0: V, d: V, e: V) -> (V, V) {
    let one = V::splat(1.0);
    // (Compact builds keep the two `fms_exact`, through the one out-of-line Dekker
    // product: the same bits in 160 bytes less flash on the Cortex-M4F.)
    if V::FUSED_MUL_ADD || cfg!(compact) {
        return (fms_exact(big0, d, one), fms_exact(small0, d, e));
    }
    let (d_hi, d_lo) = veltkamp_split(d);
    let rem = |a: V, c: V| {
        let (a_hi, a_lo) = veltkamp_split(a);
        (((c - a_hi * d_hi) - a_hi * d_lo) - a_lo * d_hi) - a_lo * d_lo
    };
    (rem(big0, one), rem(small0, e))
}

/// `max(x, 0)` that keeps NaN.
#[inline(always)]
pub(crate) fn pos_part<V: SimdF32>(x: V) -> V {
    V::splat(0.0).max(x)
}

/// `min(x, 0)` that keeps NaN.
#[inline(always)]
pub(crate) fn neg_part<V: SimdF32>(x: V) -> V {
    V::splat(0.0).min(x)
}

/// `ln(1 + e^-|x|)` from the [`Logistic`] pieces, as `hi + lo`:
/// `log1p(e) + el/(1 + e)` to first order in `el`.
#[inline(always)]
pub(crate) fn log1p_exp_neg_abs<V: SimdF32>(lg: &Logistic<V>) -> (V, V) {
    let (hi, lo) = lg.e.log1p_unit_parts();
    (hi, lg.el.mul_add(lg.inv_d, lo))
}

/// `softplus(x) = ln(1 + e^x) = max(x, 0) + log1p(e^-|x|)`: two terms of one sign,
/// no cancellation. Max error 2 ULP.
#[inline(always)]
pub(crate) fn softplus<V: SimdF32>(x: V) -> V {
    let (hi, lo) = logistic_l(x);
    // As the hard kernels form BCE (`kernel::element2`): gamma 0 gives softplus
    // bit for bit.
    pos_part(x) + (hi + lo)
}

/// `log_sigmoid(x) = min(x, 0) - log1p(e^-|x|)`. Max error 2 ULP.
#[inline(always)]
pub(crate) fn log_sigmoid<V: SimdF32>(x: V) -> V {
    let (hi, lo) = logistic_l(x);
    (neg_part(x) - hi) - lo
}

#[inline(always)]
fn logistic_l<V: SimdF32>(x: V) -> (V, V) {
    let (e, el) = x.neg_abs().exp_nonpositive_parts();
    let (hi, lo) = e.log1p_unit_parts();
    // log1p(e + el) = log1p(e) + el/(1 + e) to first order.
    (hi, el.mul_add(V::splat(1.0) / (V::splat(1.0) + e), lo))
}

/// `sigmoid(x) = 1/(1 + e^-x)` with no `1 - p` anywhere. Max error 1.5 ULP.
#[inline(always)]
pub(crate) fn sigmoid<V: SimdF32>(x: V) -> V {
    let lg = logistic(x);
    V::select(x.lt(V::splat(0.0)), lg.small, lg.big)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd::MAX_LANES;

    /// `one_minus_exp_neg`'s pairs against f64 (`expm1`, `exp`: within 2^-52) on the
    /// scalar backend's arithmetic (exact FMA), `b` over zero, subnormals, 1e-30 to 1
    /// in log scale, densely over [0, 2], and on to the clamp at 104, with a low part
    /// of a third of an ULP of either sign: both pairs within 2^-28 relative.
    /// `exp_nonpositive_parts`' pair against libm's f64 `exp` on the scalar backend's
    /// arithmetic (exact FMA), x from -80 to 0 (below, the low part leaves the normal
    /// range): within 0.15 units of 2^-24 relative (measured 0.136).
    #[test]
    #[cfg_attr(miri, ignore = "arithmetic only (no unsafe): minutes interpreted")]
    fn exp_nonpositive_pairs() {
        let worst = (0..=109_440)
            .map(|i| -80.0 + i as f32 * 0.000_731)
            .map(|x| {
                let (hi, lo) = exp_nonpositive_parts::<f32>(x);
                let r = libm::exp(f64::from(x));
                ((f64::from(hi) + f64::from(lo)) - r).abs() / r
            })
            .fold(0.0f64, f64::max);
        let units = worst / 2f64.powi(-24);
        assert!(units < 0.15, "e^x pair: {units} units of 2^-24");
    }

    /// `exp_hilo_pair` (the compact builds' `exp_hilo`, run here on the scalar
    /// backend's arithmetic) against libm's f64 `exp` of `hi + lo`, `hi` from -87
    /// to 88.72 with `lo` up to half an ULP of `hi` of either sign, in ULP of the
    /// result: below 0.64 from -80 up (the rounding, plus the pair's 0.136 units of
    /// 2^-24 where the mantissa is near 1; measured 0.59) and below 1 down to -87,
    /// where the pair's low part is subnormal (libm's `expf` promises 1 ULP). At
    /// the ends: `+inf` past 88.73, subnormals and then 0 down to and below -104,
    /// NaN for NaN.
    #[test]
    #[cfg_attr(miri, ignore = "arithmetic only (no unsafe): minutes interpreted")]
    fn exp_hilo_pair_within_its_bound() {
        let (mut worst, mut worst_low) = (0.0f64, 0.0f64);
        for i in 0..=200_000 {
            let hi = -87.0 + i as f32 * (175.72 / 200_000.0);
            let half = (f32::from_bits(hi.abs().to_bits() + 1) - hi.abs()) / 2.0;
            for lo in [0.0, half, -half, half / 3.0] {
                let got = exp_hilo_pair::<f32>(hi, lo);
                let want = libm::exp(f64::from(hi) + f64::from(lo));
                let ulp = f64::from(f32::from_bits((want as f32).to_bits() + 1) - want as f32);
                let err = (f64::from(got) - want).abs() / ulp;
                if hi >= -80.0 {
                    worst = worst.max(err);
                } else {
                    worst_low = worst_low.max(err);
                }
            }
        }
        assert!(worst < 0.64, "e^(hi + lo), hi >= -80: {worst} ULP");
        assert!(worst_low < 1.0, "e^(hi + lo), hi < -80: {worst_low} ULP");
        assert_eq!(exp_hilo_pair::<f32>(88.73, 0.0), f32::INFINITY);
        assert_eq!(exp_hilo_pair::<f32>(f32::MAX, 0.0), f32::INFINITY);
        let tiny = exp_hilo_pair::<f32>(-100.0, 0.0);
        let want = libm::exp(-100.0) as f32;
        assert!(
            tiny.is_subnormal() && (tiny - want).abs() <= f32::from_bits(1),
            "{tiny:e}"
        );
        assert_eq!(exp_hilo_pair::<f32>(-104.0, 0.0), 0.0);
        assert_eq!(exp_hilo_pair::<f32>(f32::NEG_INFINITY, 0.0), 0.0);
        assert!(exp_hilo_pair::<f32>(f32::NAN, 0.0).is_nan());
    }

    #[test]
    #[cfg_attr(
        miri,
        ignore = "arithmetic only (no unsafe), 10^5 f64 references: minutes interpreted"
    )]
    fn one_minus_exp_neg_pairs() {
        let bs = [0.0f32, f32::from_bits(1), f32::MIN_POSITIVE]
            .into_iter()
            .chain((0..3000).map(|i| libm::powf(10.0, -30.0 + 30.0 * i as f32 / 3000.0)))
            .chain((0..20000).map(|i| 2.0 * i as f32 / 20000.0))
            .chain((0..10000).map(|i| 2.0 + 102.0 * i as f32 / 10000.0));
        let (mut worst_q, mut worst_e) = (0.0f64, 0.0f64);
        for b in bs {
            let ulp = f32::from_bits(b.to_bits() + 1) - b;
            for b_lo in [0.0f32, ulp / 3.0, -ulp / 3.0] {
                let ((q, q_lo), (e, e_lo)) = one_minus_exp_neg(b, b_lo);
                let x = -(f64::from(b) + f64::from(b_lo));
                let (q_ref, e_ref) = (-libm::expm1(x), libm::exp(x));
                let rel =
                    |hi: f32, lo: f32, r: f64| ((f64::from(hi) + f64::from(lo)) - r).abs() / r;
                if q_ref > 0.0 {
                    worst_q = worst_q.max(rel(q, q_lo, q_ref));
                }
                // The low part of e^-b leaves the normal range below 2^-102 (b ~ 70);
                // e^-b alone is a normal f32 down to b = 87.3.
                if e_ref > 1e-30 {
                    worst_e = worst_e.max(rel(e, e_lo, e_ref));
                }
            }
        }
        let bound = 2f64.powi(-28);
        assert!(
            worst_q < bound && worst_e < bound,
            "1 - e^-b: {worst_q:e}, e^-b: {worst_e:e} relative (bound {bound:e})"
        );
    }

    /// [`quotient_remainders`] against the exact remainders (the products of two f32
    /// are exact in f64): `1 - big0 d` exactly, `e - small0 d` rounded once, for `e`
    /// every 997th f32 in `[0, 1]` and every one of the 4096 at each end (0 and the
    /// subnormals, just below 1), on the scalar backend's arithmetic (FMA, or Dekker's
    /// products in compact builds) and the portable one's (Dekker's on SSE2, FMA on
    /// NEON). (The full range of 1.07e9 values was checked once, outside the suite.)
    fn check_quotient_remainders<V: SimdF32>() {
        let top = 1.0f32.to_bits();
        let bits = (0..4096)
            .chain((4096..top - 4096).step_by(997))
            .chain(top - 4096..=top);
        let mut lanes = [0.0f32; MAX_LANES];
        let mut filled = 0;
        let check = |lanes: &[f32]| {
            let mut padded = [1.0f32; MAX_LANES];
            padded[..lanes.len()].copy_from_slice(lanes);
            // SAFETY: MAX_LANES >= LANES readable f32.
            let e = unsafe { V::load(padded.as_ptr()) };
            let d = V::splat(1.0) + e;
            let big0 = V::splat(1.0) / d;
            let small0 = e * big0;
            let (big_rem, small_rem) = quotient_remainders(big0, small0, d, e);
            let arr = |v: V| v.to_array();
            let (e, d, big0, small0) = (arr(e), arr(d), arr(big0), arr(small0));
            let (big_rem, small_rem) = (arr(big_rem), arr(small_rem));
            for i in 0..lanes.len() {
                let d = f64::from(d[i]);
                let big = 1.0 - f64::from(big0[i]) * d;
                let small = f64::from(e[i]) - f64::from(small0[i]) * d;
                assert_eq!(f64::from(big_rem[i]), big, "1 - big0 d at e = {:e}", e[i]);
                assert_eq!(small_rem[i], small as f32, "e - small0 d at e = {:e}", e[i]);
            }
        };
        for b in bits {
            lanes[filled] = f32::from_bits(b);
            filled += 1;
            if filled == V::LANES {
                check(&lanes[..filled]);
                filled = 0;
            }
        }
        check(&lanes[..filled]);
    }

    #[test]
    #[cfg_attr(miri, ignore = "arithmetic only (no unsafe): minutes interpreted")]
    fn quotient_remainders_are_exact() {
        check_quotient_remainders::<f32>();
        #[cfg(wide_simd)]
        check_quotient_remainders::<wide::f32x8>();
    }
}
