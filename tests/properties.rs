//! Property tests of the sigmoid focal loss, run on every backend this CPU has.
//!
//! Each property is checked by proptest on random slices and then, for every case,
//! on every available backend. The f64 reference below is written independently of
//! the crate (stable textbook formulas evaluated in double precision); it is used
//! for the gradient check and for the scale of the tolerances of soft targets.
//!
//! Failure persistence is off (no regression files are written next to the tests);
//! a failing case is printed in full by proptest.

use focal::{Alpha, Backend, Error, Focal, Reduction, SoftTargets, IGNORE};
use proptest::prelude::*;
use proptest::test_runner::Config;

/// f32 unit roundoff, 2^-24.
const U: f64 = 1.0 / 16_777_216.0;

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

// ---------------------------------------------------------------- f64 reference

fn softplus64(x: f64) -> f64 {
    // max(x, 0) + ln(1 + e^-|x|): two non-negative terms.
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn sigmoid64(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

fn alpha_t64(alpha: Alpha, t: f64) -> f64 {
    match alpha {
        Alpha::Off => 1.0,
        Alpha::Balanced(a) => {
            let a = f64::from(a);
            a * t + (1.0 - a) * (1.0 - t)
        }
        Alpha::Uniform(a) => f64::from(a),
    }
}

fn is_hard(t: f32) -> bool {
    t == 0.0 || t == 1.0
}

/// The focal loss of one element in f64.
fn ref_loss(x: f64, t: f32, gamma: f64, alpha: Alpha, soft: SoftTargets) -> f64 {
    if t == IGNORE {
        return 0.0;
    }
    let at = alpha_t64(alpha, f64::from(t));
    if is_hard(t) {
        // z: the logit signed toward the target; 1 - p_t = sigmoid(-z), so
        // (1 - p_t)^gamma = exp(-gamma softplus(z)) and BCE = softplus(-z).
        let z = if t == 1.0 { x } else { -x };
        let qg = if gamma == 0.0 {
            1.0
        } else {
            (-gamma * softplus64(z)).exp()
        };
        return at * qg * softplus64(-z);
    }
    let t = f64::from(t);
    let bce = t * softplus64(-x) + (1.0 - t) * softplus64(x);
    let q = match soft {
        SoftTargets::Torchvision => sigmoid64(-x) * t + sigmoid64(x) * (1.0 - t),
        SoftTargets::ExpNegBce => -(-bce).exp_m1(),
    };
    at * q.powf(gamma) * bce
}

/// The analytic gradient of [`ref_loss`] and the scale its f32 evaluation error is
/// measured against: the sum of the magnitudes of the terms the gradient is formed
/// from, where the factor `p - t` of soft targets counts as `|p - t| + min(p, 1-p)`.
/// A difference of a computed `p` and an exact `t` has an absolute error about
/// `u min(p, 1-p)` however small the difference, provided `p` near 1 is handled as
/// `(1-t) - sigmoid(-x)` (never forming `1 - p` by subtraction, DESIGN.md section 2);
/// the scale is symmetric under the mirror `(x, t) -> (-x, 1-t)`.
fn ref_grad(x: f64, t: f32, gamma: f64, alpha: Alpha, soft: SoftTargets) -> (f64, f64) {
    if t == IGNORE {
        return (0.0, 0.0);
    }
    let at = alpha_t64(alpha, f64::from(t));
    if is_hard(t) {
        // dFL/dx = -s alpha_t q^g (g (1-q) L + q): all terms of one sign.
        let (s, z) = if t == 1.0 { (1.0, x) } else { (-1.0, -x) };
        let q = sigmoid64(-z);
        let qg = if gamma == 0.0 {
            1.0
        } else {
            (-gamma * softplus64(z)).exp()
        };
        let g = -s * at * qg * (gamma * sigmoid64(z) * softplus64(-z) + q);
        return (g, g.abs());
    }
    let t = f64::from(t);
    let (p, pm) = (sigmoid64(x), sigmoid64(-x));
    let pmt = if x > 0.0 { (1.0 - t) - pm } else { p - t };
    let pmt_scale = pmt.abs() + p.min(pm);
    let bce = t * softplus64(-x) + (1.0 - t) * softplus64(x);
    let (q, dq, dq_scale) = match soft {
        SoftTargets::Torchvision => {
            let dq = p * pm * (1.0 - 2.0 * t);
            (pm * t + p * (1.0 - t), dq, dq.abs())
        }
        SoftTargets::ExpNegBce => {
            let e = (-bce).exp();
            (-(-bce).exp_m1(), e * pmt, e * pmt_scale)
        }
    };
    let qg = q.powf(gamma);
    let g = at * (gamma * qg * bce * dq / q + qg * pmt);
    let scale = at.abs() * (gamma * qg * bce * dq_scale / q + qg * pmt_scale);
    (g, scale)
}

// ---------------------------------------------------------------- helpers

/// Distance between two f32 in units in the last place (0 for +0 and -0; measured
/// on the integer line of the bit patterns, so it is absolute below the normal
/// range; NaN is never close to anything).
fn ulp_distance(a: f32, b: f32) -> u64 {
    fn key(v: f32) -> i64 {
        let bits = v.to_bits();
        if bits & 0x8000_0000 != 0 {
            -i64::from(bits & 0x7FFF_FFFF)
        } else {
            i64::from(bits)
        }
    }
    if a.is_nan() || b.is_nan() {
        return u64::MAX;
    }
    (key(a) - key(b)).unsigned_abs()
}

fn focal(gamma: f32, alpha: Alpha, soft: SoftTargets, b: Backend) -> Focal {
    Focal::new(gamma, alpha)
        .expect("valid parameters")
        .soft_targets(soft)
        .with_backend(b)
        .expect("available backend")
}

fn run_loss(fl: &Focal, x: &[f32], t: &[f32]) -> Result<Vec<f32>, Error> {
    let mut out = vec![f32::NAN; x.len()];
    fl.loss(x, t, &mut out)?;
    Ok(out)
}

fn run_grad(fl: &Focal, x: &[f32], t: &[f32]) -> Result<Vec<f32>, Error> {
    let mut out = vec![f32::NAN; x.len()];
    fl.grad(x, t, &mut out)?;
    Ok(out)
}

fn run_fused(fl: &Focal, x: &[f32], t: &[f32], r: Reduction) -> Result<(f32, Vec<f32>), Error> {
    let mut out = vec![f32::NAN; x.len()];
    let v = fl.loss_and_grad(x, t, r, &mut out)?;
    Ok((v, out))
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn backends() -> Vec<Backend> {
    Backend::available().collect()
}

// ---------------------------------------------------------------- strategies

/// Every finite f32: both signs, zero, subnormal, normal up to f32::MAX.
fn any_finite() -> impl Strategy<Value = f32> {
    use proptest::num::f32 as f;
    prop_oneof![
        3 => f::POSITIVE | f::NEGATIVE | f::NORMAL | f::SUBNORMAL | f::ZERO,
        3 => -40.0f32..40.0,
        1 => prop_oneof![
            Just(f32::MAX),
            Just(f32::MIN),
            Just(f32::MIN_POSITIVE),
            Just(-f32::MIN_POSITIVE),
            Just(88.72f32),
            Just(-88.72f32),
            Just(103.97f32),
            Just(-103.97f32),
            Just(1e30f32),
            Just(-1e30f32),
        ],
    ]
}

/// A hard target.
fn hard_target() -> impl Strategy<Value = f32> {
    prop_oneof![Just(0.0f32), Just(1.0f32)]
}

/// A soft target strictly inside (0, 1), with weight on the ends.
fn soft_target() -> impl Strategy<Value = f32> {
    prop_oneof![
        3 => (0.0f32..1.0).prop_filter("strictly soft", |t| *t > 0.0 && *t < 1.0),
        1 => 1e-30f32..1e-3,
        1 => (0.999f32..1.0).prop_filter("strictly below 1", |t| *t < 1.0),
    ]
}

/// Any valid target: hard, soft or ignored.
fn any_target() -> impl Strategy<Value = f32> {
    prop_oneof![
        3 => hard_target(),
        2 => soft_target(),
        1 => Just(IGNORE),
    ]
}

/// gamma in [0, 8], with weight on the integer kinds that have their own kernels.
fn gamma() -> impl Strategy<Value = f32> {
    prop_oneof![
        2 => (0u32..=8).prop_map(|g| g as f32),
        1 => (0u32..=16).prop_map(|g| g as f32 * 0.5),
        2 => 0.0f32..=8.0,
        1 => 0.0f32..0.01,
    ]
}

/// alpha in [0, 1], with weight on the ends (where alpha_t of a soft target can be
/// small) and on the usual 0.25.
fn unit() -> impl Strategy<Value = f32> {
    prop_oneof![
        1 => Just(0.0f32),
        1 => Just(1.0f32),
        1 => Just(0.25f32),
        3 => 0.0f32..=1.0,
        1 => 1e-4f32..1e-2,
        1 => 0.99f32..=1.0,
    ]
}

fn alpha() -> impl Strategy<Value = Alpha> {
    prop_oneof![
        Just(Alpha::Off),
        unit().prop_map(Alpha::Balanced),
        unit().prop_map(Alpha::Uniform),
    ]
}

fn soft_kind() -> impl Strategy<Value = SoftTargets> {
    prop_oneof![Just(SoftTargets::Torchvision), Just(SoftTargets::ExpNegBce)]
}

/// Up to 40 elements: a vector body and a tail for every lane count.
fn slice_of(
    x: impl Strategy<Value = f32>,
    t: impl Strategy<Value = f32>,
) -> impl Strategy<Value = (Vec<f32>, Vec<f32>)> {
    prop::collection::vec((x, t), 0..40).prop_map(|v| v.into_iter().unzip())
}

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(config(256))]

    /// gamma = 0 with no alpha is BCE, bit for bit the crate's own softplus on the
    /// same backend: softplus(-x) for t = 1, softplus(x) for t = 0, 0 when ignored.
    #[test]
    fn gamma_zero_is_bce(
        (x, t) in slice_of(
            prop_oneof![4 => any_finite(), 1 => Just(f32::INFINITY), 1 => Just(f32::NEG_INFINITY)],
            prop_oneof![3 => hard_target(), 1 => Just(IGNORE)],
        ),
        soft in soft_kind(),
    ) {
        let neg: Vec<f32> = x.iter().map(|v| -v).collect();
        for b in backends() {
            let fl = focal(0.0, Alpha::Off, soft, b);
            let loss = run_loss(&fl, &x, &t).expect("valid input");
            let mut sp_pos = vec![0.0f32; x.len()];
            let mut sp_neg = vec![0.0f32; x.len()];
            b.softplus(&x, &mut sp_pos).expect("same length");
            b.softplus(&neg, &mut sp_neg).expect("same length");
            for i in 0..x.len() {
                let want = if t[i] == 1.0 {
                    sp_neg[i]
                } else if t[i] == 0.0 {
                    sp_pos[i]
                } else {
                    0.0
                };
                prop_assert_eq!(
                    loss[i].to_bits(), want.to_bits(),
                    "{:?} x={:e} t={}: loss {:e}, softplus {:e}", b, x[i], t[i], loss[i], want
                );
            }
        }
    }

    /// Finite input gives finite (and non-negative) loss and finite gradient, with
    /// the sign of the gradient pointing away from the target for hard targets; the
    /// mean of finite losses is finite and a sum is never NaN.
    #[test]
    fn finite_in_finite_out(
        (x, t) in slice_of(any_finite(), any_target()),
        g in gamma(),
        a in alpha(),
        soft in soft_kind(),
    ) {
        for b in backends() {
            let fl = focal(g, a, soft, b);
            let loss = run_loss(&fl, &x, &t).expect("valid input");
            let grad = run_grad(&fl, &x, &t).expect("valid input");
            for i in 0..x.len() {
                let ctx = format!(
                    "{b:?} gamma={g:e} {a:?} {soft:?} x={:e} t={:e}: loss {:e} grad {:e}",
                    x[i], t[i], loss[i], grad[i]
                );
                prop_assert!(loss[i].is_finite() && loss[i] >= 0.0, "{}", ctx);
                prop_assert!(grad[i].is_finite(), "{}", ctx);
                if t[i] == 1.0 {
                    prop_assert!(grad[i] <= 0.0, "{}", ctx);
                } else if t[i] == 0.0 {
                    prop_assert!(grad[i] >= 0.0, "{}", ctx);
                }
            }
            let mean = fl.loss_reduced(&x, &t, Reduction::Mean).expect("valid input");
            prop_assert!(
                mean.is_finite() && mean >= 0.0,
                "{:?} gamma={:e} {:?} {:?}: Mean {:e} of x={:?} t={:?}", b, g, a, soft, mean, x, t
            );
            let (fused_mean, fused_grad) = run_fused(&fl, &x, &t, Reduction::Mean).expect("valid");
            prop_assert!(fused_mean.is_finite(), "{:?}: fused Mean {:e}", b, fused_mean);
            prop_assert!(fused_grad.iter().all(|v| v.is_finite()), "{:?}: {:?}", b, fused_grad);
            let sum = fl.loss_reduced(&x, &t, Reduction::Sum).expect("valid input");
            prop_assert!(!sum.is_nan() && sum >= 0.0, "{:?}: Sum {:e}", b, sum);
        }
    }
}

/// Tolerance of the gradient check, in units of `U` times the error scale of
/// [`ref_grad`] (the sum of the magnitudes of the terms).
///
/// Budget: sigmoid and softplus carry <= 2 ULP each; `q` for soft targets is a sum of
/// two such products (<= 3 u); `q^gamma` multiplies the relative error of `q` by
/// gamma <= 8 (<= 24 u; hard targets avoid this by computing `q^gamma` as one
/// `exp(-gamma softplus(z))` with the product carried in hi + lo); the remaining
/// products, the FMA and the final scaling add < 8 u. That is < 40 u; 64 u leaves
/// headroom without hiding a wrong formula (a wrong term is O(1) of the scale, i.e.
/// ~10^7 u). The central difference itself (step h = 2^-20 max(|x|, 1), f64)
/// contributes < 1 u, checked against the analytic f64 gradient in the test:
/// truncation (g+1)^2 h^2 / 6 < 1.2e-8 relative (0.2 u) for |x| < 30, g <= 8;
/// rounding ~2^-52 |f| / h = 2^-32 |f| / max(|x|, 1), |f| <= 30 scale (0.15 u).
/// Measured on this machine over 2*10^5 random hard and soft (t <= 0.5) cases per
/// backend, away from the defects in the regression tests below: <= 25 u.
const GRAD_TOL_U: f64 = 64.0;

/// Below the normal range the crate promises absolute accuracy: a few subnormal
/// ULP, scaled by the factors (< 2^8) a subnormal intermediate is multiplied with.
const GRAD_TOL_ABS: f64 = 256.0 * 1.401_298_464_324_817e-45;

/// Central difference of the f64 reference with a relative step.
fn central_difference(x: f32, t: f32, gamma: f32, alpha: Alpha, soft: SoftTargets) -> f64 {
    let x = f64::from(x);
    let h = x.abs().max(1.0) * (1.0 / 1_048_576.0);
    let f = |v: f64| ref_loss(v, t, f64::from(gamma), alpha, soft);
    (f(x + h) - f(x - h)) / (2.0 * h)
}

/// Checks the gradient of every backend against `want[i] = (value, scale)`.
fn check_grad(
    x: &[f32],
    t: &[f32],
    g: f32,
    a: Alpha,
    soft: SoftTargets,
    want: &[(f64, f64)],
    what: &str,
) -> Result<(), TestCaseError> {
    for b in backends() {
        let fl = focal(g, a, soft, b);
        let grad = run_grad(&fl, x, t).expect("valid input");
        for i in 0..x.len() {
            let (v, scale) = want[i];
            let err = (f64::from(grad[i]) - v).abs();
            let tol = GRAD_TOL_U * U * scale + GRAD_TOL_ABS;
            prop_assert!(
                err <= tol,
                "{:?} x={:e} t={:e} gamma={:e} {:?} {:?}: grad {:e}, {} {:e}, \
                 error {:.1} u of scale {:e}",
                b,
                x[i],
                t[i],
                g,
                a,
                soft,
                grad[i],
                what,
                v,
                err / (U * scale),
                scale
            );
        }
    }
    Ok(())
}

/// The central differences of a slice, each checked against the reference's own
/// analytic gradient first (validating the reference and the step).
fn central_differences(
    x: &[f32],
    t: &[f32],
    g: f32,
    a: Alpha,
    soft: SoftTargets,
) -> Result<Vec<(f64, f64)>, TestCaseError> {
    let mut want = Vec::with_capacity(x.len());
    for i in 0..x.len() {
        let fd = central_difference(x[i], t[i], g, a, soft);
        let (analytic, scale) = ref_grad(f64::from(x[i]), t[i], f64::from(g), a, soft);
        prop_assert!(
            (fd - analytic).abs() <= U * scale + 1e-300,
            "reference: x={} t={} g={} {:?} {:?}: fd {:e} analytic {:e}",
            x[i],
            t[i],
            g,
            a,
            soft,
            fd,
            analytic
        );
        want.push((fd, scale));
    }
    Ok(want)
}

proptest! {
    #![proptest_config(config(256))]

    /// Hard targets: the gradient equals a central difference of the f64 reference.
    #[test]
    fn gradient_hard_matches_central_difference(
        (x, t) in slice_of(-30.0f32..30.0, prop_oneof![4 => hard_target(), 1 => Just(IGNORE)]),
        g in gamma(),
        a in alpha(),
        soft in soft_kind(),
    ) {
        let want = central_differences(&x, &t, g, a, soft)?;
        check_grad(&x, &t, g, a, soft, &want, "central difference")?;
    }

    /// Soft (and mixed) targets: the gradient equals a central difference of the
    /// f64 reference.
    #[test]
    fn gradient_soft_matches_central_difference(
        (x, t) in slice_of(-30.0f32..30.0, prop_oneof![1 => hard_target(), 3 => soft_target()]),
        g in gamma(),
        a in alpha(),
        soft in soft_kind(),
    ) {
        let want = central_differences(&x, &t, g, a, soft)?;
        check_grad(&x, &t, g, a, soft, &want, "central difference")?;
    }

    /// Hard targets over the whole finite range (huge, subnormal, exp edges): the
    /// gradient equals the reference's analytic gradient (already validated against
    /// central differences above).
    #[test]
    fn gradient_hard_whole_range(
        (x, t) in slice_of(any_finite(), hard_target()),
        g in gamma(),
        a in alpha(),
    ) {
        let want: Vec<(f64, f64)> = x.iter().zip(&t)
            .map(|(&x, &t)| ref_grad(f64::from(x), t, f64::from(g), a, SoftTargets::Torchvision))
            .collect();
        check_grad(&x, &t, g, a, SoftTargets::Torchvision, &want, "reference")?;
    }

    /// Soft targets over the whole finite range.
    #[test]
    fn gradient_soft_whole_range(
        (x, t) in slice_of(any_finite(), soft_target()),
        g in gamma(),
        a in alpha(),
        soft in soft_kind(),
    ) {
        let want: Vec<(f64, f64)> = x.iter().zip(&t)
            .map(|(&x, &t)| ref_grad(f64::from(x), t, f64::from(g), a, soft))
            .collect();
        check_grad(&x, &t, g, a, soft, &want, "reference")?;
    }
}

/// A value in [0, 1] whose complement 1 - v is exact in f32 (a multiple of 2^-20),
/// so that the mirrored alpha and target are exactly `1 - a` and `1 - t`.
fn dyadic_unit() -> impl Strategy<Value = f32> {
    (0u32..=(1 << 20)).prop_map(|k| k as f32 / 1_048_576.0)
}

/// A soft target that is a multiple of 2^-20, with weight near 0 and 1 (where the
/// two sides of the mirror differ most in conditioning).
fn dyadic_soft() -> impl Strategy<Value = f32> {
    prop_oneof![
        2 => 1u32..(1 << 20),
        1 => 1u32..1024,
        1 => ((1 << 20) - 1024)..(1u32 << 20),
    ]
    .prop_map(|k| k as f32 / 1_048_576.0)
}

/// Tolerance of the mirror image for soft targets, in units of `U` times the error
/// scale: the two sides round differently (`fma(t, sp(-x), (1-t) sp(x))` against
/// `fma(1-t, sp(x), t sp(-x))`, `p - t` against `(1-p) - (1-t)` with separately
/// rounded p and 1-p), each within the gradient budget above of the exact value,
/// so their difference is within twice that budget.
const MIRROR_TOL_U: f64 = 2.0 * GRAD_TOL_U;

proptest! {
    #![proptest_config(config(256))]

    /// (x, t, Balanced(a)) -> (-x, 1-t, Balanced(1-a)) is the same loss and the
    /// negated gradient. Hard targets go through the same operations on both sides
    /// (the same z and the same alpha_t), so they must be bit-exact for any finite x;
    /// reductions over hard-only slices too.
    #[test]
    fn mirror_symmetry_hard_is_bit_exact(
        (x, t) in slice_of(any_finite(), prop_oneof![4 => hard_target(), 1 => Just(IGNORE)]),
        g in gamma(),
        a in dyadic_unit(),
    ) {
        let xm: Vec<f32> = x.iter().map(|v| -v).collect();
        let tm: Vec<f32> = t.iter().map(|&v| if v == IGNORE { IGNORE } else { 1.0 - v }).collect();
        for b in backends() {
            for soft in [SoftTargets::Torchvision, SoftTargets::ExpNegBce] {
                let fl = focal(g, Alpha::Balanced(a), soft, b);
                let fm = focal(g, Alpha::Balanced(1.0 - a), soft, b);
                let l = run_loss(&fl, &x, &t).expect("valid");
                let lm = run_loss(&fm, &xm, &tm).expect("valid");
                prop_assert_eq!(bits(&l), bits(&lm), "{:?} gamma={} a={}", b, g, a);
                let gr = run_grad(&fl, &x, &t).expect("valid");
                let grm: Vec<f32> = run_grad(&fm, &xm, &tm).expect("valid").iter().map(|v| -v).collect();
                // -0.0 and 0.0 compare equal: compare values, and NaN never passes.
                for i in 0..x.len() {
                    prop_assert!(
                        gr[i] == grm[i],
                        "{:?} gamma={} a={} x={:e} t={}: grad {:e}, mirrored {:e}",
                        b, g, a, x[i], t[i], gr[i], -grm[i]
                    );
                }
                for r in [Reduction::Sum, Reduction::Mean] {
                    let (v, gf) = run_fused(&fl, &x, &t, r).expect("valid");
                    let (vm, gfm) = run_fused(&fm, &xm, &tm, r).expect("valid");
                    prop_assert_eq!(v.to_bits(), vm.to_bits(), "{:?} {:?}", b, r);
                    for i in 0..x.len() {
                        prop_assert!(gf[i] == -gfm[i], "{:?} {:?} i={}", b, r, i);
                    }
                }
            }
        }
    }

    /// The mirror image with soft targets: the loss within a few ULP, the gradient
    /// negated within the tolerance scaled like the gradient check.
    #[test]
    fn mirror_symmetry_soft_is_close(
        (x, t) in slice_of(-60.0f32..60.0, prop_oneof![1 => hard_target(), 3 => dyadic_soft()]),
        g in gamma(),
        a in dyadic_unit(),
        soft in soft_kind(),
    ) {
        let xm: Vec<f32> = x.iter().map(|v| -v).collect();
        let tm: Vec<f32> = t.iter().map(|v| 1.0 - v).collect();
        for b in backends() {
            let fl = focal(g, Alpha::Balanced(a), soft, b);
            let fm = focal(g, Alpha::Balanced(1.0 - a), soft, b);
            let l = run_loss(&fl, &x, &t).expect("valid");
            let lm = run_loss(&fm, &xm, &tm).expect("valid");
            let gr = run_grad(&fl, &x, &t).expect("valid");
            let grm = run_grad(&fm, &xm, &tm).expect("valid");
            for i in 0..x.len() {
                let reference = ref_loss(f64::from(x[i]), t[i], f64::from(g), Alpha::Balanced(a), soft);
                let (_, scale) = ref_grad(f64::from(x[i]), t[i], f64::from(g), Alpha::Balanced(a), soft);
                // The loss is a product of non-negative factors: relative error, so
                // ULP; its budget is the gradient's (q^gamma dominates).
                let tol_loss = MIRROR_TOL_U * U * reference + GRAD_TOL_ABS;
                prop_assert!(
                    (f64::from(l[i]) - f64::from(lm[i])).abs() <= tol_loss,
                    "{:?} {:?} gamma={} a={} x={:e} t={}: loss {:e}, mirrored {:e} ({} ULP)",
                    b, soft, g, a, x[i], t[i], l[i], lm[i], ulp_distance(l[i], lm[i])
                );
                let tol = MIRROR_TOL_U * U * scale + GRAD_TOL_ABS;
                prop_assert!(
                    (f64::from(gr[i]) + f64::from(grm[i])).abs() <= tol,
                    "{:?} {:?} gamma={} a={} x={:e} t={}: grad {:e}, mirrored {:e}, scale {:e}",
                    b, soft, g, a, x[i], t[i], gr[i], -grm[i], scale
                );
                if is_hard(t[i]) {
                    prop_assert_eq!(l[i].to_bits(), lm[i].to_bits());
                    prop_assert!(gr[i] == -grm[i]);
                }
            }
        }
    }

    /// Ignored elements are invisible: inserting them anywhere (or appending them)
    /// leaves every other element's loss and gradient bit-identical (elementwise and
    /// fused Mean, whose denominator counts only the others) and the Mean within the
    /// regrouping of its sum. The Mean is not promised bit-identical: the kernels
    /// group vectors into accumulators by position, and the grouping depends on the
    /// slice length. A changed denominator would be off by a factor (n+k)/n.
    #[test]
    fn ignored_elements_are_invisible(
        (x, t) in slice_of(-50.0f32..50.0, prop_oneof![hard_target(), soft_target()]),
        inserts in prop::collection::vec((any::<prop::sample::Index>(), any_finite()), 0..24),
        g in gamma(),
        a in alpha(),
        soft in soft_kind(),
    ) {
        // The slice with ignored elements inserted, and where the originals went.
        let mut xi: Vec<f32> = x.clone();
        let mut ti: Vec<f32> = t.clone();
        let mut pos: Vec<usize> = (0..x.len()).collect();
        for (idx, v) in &inserts {
            let at = idx.index(xi.len() + 1);
            xi.insert(at, *v);
            ti.insert(at, IGNORE);
            for p in pos.iter_mut() {
                if *p >= at {
                    *p += 1;
                }
            }
        }
        let mut xa = x.clone();
        let mut ta = t.clone();
        for (_, v) in &inserts {
            xa.push(*v);
            ta.push(IGNORE);
        }
        for b in backends() {
            let fl = focal(g, a, soft, b);
            let l = run_loss(&fl, &x, &t).expect("valid");
            let gr = run_grad(&fl, &x, &t).expect("valid");
            let (mean, gm) = run_fused(&fl, &x, &t, Reduction::Mean).expect("valid");
            let li = run_loss(&fl, &xi, &ti).expect("valid");
            let gri = run_grad(&fl, &xi, &ti).expect("valid");
            let (mean_i, gmi) = run_fused(&fl, &xi, &ti, Reduction::Mean).expect("valid");
            let (mean_a, gma) = run_fused(&fl, &xa, &ta, Reduction::Mean).expect("valid");
            let ctx = format!("{b:?} gamma={g} {a:?} {soft:?}");
            for (i, &p) in pos.iter().enumerate() {
                prop_assert_eq!(l[i].to_bits(), li[p].to_bits(), "{} loss {}", ctx, i);
                prop_assert_eq!(gr[i].to_bits(), gri[p].to_bits(), "{} grad {}", ctx, i);
                prop_assert_eq!(gm[i].to_bits(), gmi[p].to_bits(), "{} Mean grad {}", ctx, i);
                prop_assert_eq!(gm[i].to_bits(), gma[i].to_bits(), "{} Mean grad {}", ctx, i);
            }
            for (i, &tv) in ti.iter().enumerate() {
                if tv == IGNORE {
                    prop_assert!(li[i] == 0.0 && gri[i] == 0.0 && gmi[i] == 0.0, "{} {}", ctx, i);
                }
            }
            prop_assert!(gma[x.len()..].iter().all(|&v| v == 0.0), "{}", ctx);
            // The losses are non-negative: each compensated partial sum is within ~2 u
            // of its exact value and the partials are added in f64, so two groupings
            // of one sum differ by < 4 u before the final rounding; 4 ULP.
            prop_assert!(
                ulp_distance(mean, mean_a) <= 4,
                "{} appended: Mean {:e} vs {:e}", ctx, mean, mean_a
            );
            prop_assert!(
                ulp_distance(mean, mean_i) <= 4,
                "{} inserted: Mean {:e} vs {:e}", ctx, mean, mean_i
            );
        }
    }

    /// Reductions: Mean = DivideBy(active count) bit for bit, Mean = Sum / count and
    /// DivideBy(n) = Sum / n within 2 ULP (both sides are the exact quotient rounded
    /// twice: < 2 ULP apart), the fused gradient with Sum is the elementwise
    /// gradient bit for bit, with Mean it is grad / count within 2 ULP where alpha_t
    /// is one coefficient (hard targets, Off, Uniform: again two roundings each,
    /// RN(P RN(a/c)) against RN(RN(P a)/c)). For Balanced alpha and a soft target,
    /// alpha_t = a t + (1-a)(1-t) comes from two coefficients each scaled and rounded
    /// once: with a formula free of cancellation each side is within ~3 u of the
    /// exact factor, so the two are < 7 u + 1.5 ULP, i.e. <= 8 ULP, apart.
    #[test]
    fn reductions_are_consistent(
        (x, t) in slice_of(-1000.0f32..1000.0, any_target()),
        n in prop_oneof![0.25f32..2000.0, (1u32..100).prop_map(|k| k as f32)],
        g in gamma(),
        a in alpha(),
        soft in soft_kind(),
    ) {
        let count = t.iter().filter(|&&v| v != IGNORE).count();
        for b in backends() {
            let fl = focal(g, a, soft, b);
            let ctx = format!("{b:?} gamma={g} {a:?} {soft:?} x={x:?} t={t:?}");
            let sum = fl.loss_reduced(&x, &t, Reduction::Sum).expect("valid");
            let mean = fl.loss_reduced(&x, &t, Reduction::Mean).expect("valid");
            let by_n = fl.loss_reduced(&x, &t, Reduction::DivideBy(n)).expect("valid");
            let grad = run_grad(&fl, &x, &t).expect("valid");
            let (_, g_sum) = run_fused(&fl, &x, &t, Reduction::Sum).expect("valid");
            let (_, g_mean) = run_fused(&fl, &x, &t, Reduction::Mean).expect("valid");
            prop_assert_eq!(bits(&g_sum), bits(&grad), "{}", ctx);
            if count == 0 {
                prop_assert_eq!(mean.to_bits(), 0.0f32.to_bits(), "{}", ctx);
                prop_assert!(g_mean.iter().all(|&v| v == 0.0), "{}", ctx);
                continue;
            }
            let c = count as f32;
            let by_count = fl.loss_reduced(&x, &t, Reduction::DivideBy(c)).expect("valid");
            prop_assert_eq!(mean.to_bits(), by_count.to_bits(), "{}", ctx);
            prop_assert!(
                ulp_distance(mean, sum / c) <= 2,
                "{} Mean {:e}, Sum/count {:e}", ctx, mean, sum / c
            );
            // (Below n = 1, a sum under len 2^-118 is taken again from the elements
            // in f64, more accurately than Sum / n: tests/accuracy.rs checks it.)
            let refined = n < 1.0 && f64::from(sum) < x.len() as f64 * 2f64.powi(-117);
            prop_assert!(
                refined || ulp_distance(by_n, sum / n) <= 2,
                "{} DivideBy({}) {:e}, Sum/n {:e}", ctx, n, by_n, sum / n
            );
            for i in 0..x.len() {
                let two_coefficients = matches!(a, Alpha::Balanced(_)) && !is_hard(t[i]);
                let tol = if two_coefficients { 8 } else { 2 };
                prop_assert!(
                    ulp_distance(g_mean[i], grad[i] / c) <= tol,
                    "{} i={}: Mean grad {:e}, grad/count {:e}", ctx, i, g_mean[i], grad[i] / c
                );
            }
        }
    }

    /// The fused call is the separate calls, bit for bit: its value is
    /// `loss_reduced` with the same reduction, its gradient with Sum is `grad`.
    #[test]
    fn fused_equals_separate_calls(
        (x, t) in slice_of(any_finite(), any_target()),
        n in 0.25f32..2000.0,
        g in gamma(),
        a in alpha(),
        soft in soft_kind(),
    ) {
        for b in backends() {
            let fl = focal(g, a, soft, b);
            let ctx = format!("{b:?} gamma={g} {a:?} {soft:?} x={x:?} t={t:?}");
            let grad = run_grad(&fl, &x, &t).expect("valid");
            for r in [Reduction::Sum, Reduction::Mean, Reduction::DivideBy(n)] {
                let (v, gr) = run_fused(&fl, &x, &t, r).expect("valid");
                let sep = fl.loss_reduced(&x, &t, r).expect("valid");
                prop_assert_eq!(v.to_bits(), sep.to_bits(), "{} {:?}", ctx, r);
                if r == Reduction::Sum {
                    prop_assert_eq!(bits(&gr), bits(&grad), "{}", ctx);
                }
            }
        }
    }
}

// ---------------------------------------------------------------- known defects
//
// Deterministic witnesses of defects in src/ that the properties above found. Each
// checks the documented contract on one exact input and fails until the defect is
// fixed; the properties find them (and others like them) at random too.

/// `Err(message)` when the gradient of one element on backend `b` is off the f64
/// reference by more than the gradient tolerance.
fn grad_error(
    b: Backend,
    x: f32,
    t: f32,
    g: f32,
    a: Alpha,
    soft: SoftTargets,
) -> Result<(), String> {
    let fl = focal(g, a, soft, b);
    let got = run_grad(&fl, &[x], &[t]).expect("valid input")[0];
    let (want, scale) = ref_grad(f64::from(x), t, f64::from(g), a, soft);
    let err = (f64::from(got) - want).abs();
    if err <= GRAD_TOL_U * U * scale + GRAD_TOL_ABS {
        Ok(())
    } else {
        Err(format!(
            "{b:?} {soft:?} {a:?} gamma={g} x={x:e} t={t}: grad {got:e}, reference {want:e} \
             ({:.0} u of scale {scale:e})",
            err / (U * scale)
        ))
    }
}

fn assert_no_errors(errors: Vec<String>) {
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// Soft targets, |x| near f32::MAX, gamma > 1: `gamma * q^gamma * BCE` overflows to
/// inf and is multiplied by `dq/dx / q = 0`, giving NaN (torchvision) or inf
/// (snippet). The reference gradient is `q^gamma (p - t)`: 0.729 and 0.9 here.
#[test]
fn regression_soft_gradient_is_finite_at_huge_logits() {
    let mut errors = Vec::new();
    for b in backends() {
        for soft in [SoftTargets::Torchvision, SoftTargets::ExpNegBce] {
            for (x, t, g) in [
                (f32::MAX, 0.1f32, 2.0f32),
                (f32::MAX, 0.1, 1.5),
                (-f32::MAX, 0.9, 2.0),
                (1e38, 1e-7, 8.0),
            ] {
                errors.extend(grad_error(b, x, t, g, Alpha::Off, soft).err());
            }
        }
    }
    assert_no_errors(errors);
}

/// The snippet's soft-target gradient for large BCE: an early `expm1_nonpositive`
/// (since replaced by `one_minus_exp_neg`) clamped its argument at -30 and returned
/// e^-30 as `exp(-BCE)`, so the term `gamma q^(gamma-1) exp(-BCE) (p - t) BCE` grew
/// like 1e-13 BCE instead of vanishing (x = 1e20, t = 0.1, gamma = 0.5: about 3.8e6
/// instead of 0.9).
#[test]
fn regression_snippet_soft_gradient_at_large_bce() {
    let mut errors = Vec::new();
    for b in backends() {
        for (x, t, g) in [
            (1e20f32, 0.1f32, 0.5f32),
            (1e9, 0.1, 2.0),
            (-1e12, 0.7, 1.0),
        ] {
            errors.extend(grad_error(b, x, t, g, Alpha::Off, SoftTargets::ExpNegBce).err());
        }
    }
    assert_no_errors(errors);
}

/// A lane's running f32 sum overflows and Kahan's compensation turns it into
/// `inf - inf = NaN`: 64 losses of 3e38 give Sum NaN (must be +inf, the rounded
/// exact sum) and Mean NaN (must be 3e38, the mean of finite values).
#[test]
fn regression_sum_overflow_is_not_nan() {
    let x = vec![-3e38f32; 64];
    let t = vec![1.0f32; 64];
    let mut errors = Vec::new();
    for b in backends() {
        let fl = focal(0.0, Alpha::Off, SoftTargets::Torchvision, b);
        let each = run_loss(&fl, &x, &t).expect("valid")[0];
        let sum = fl.loss_reduced(&x, &t, Reduction::Sum).expect("valid");
        let mean = fl.loss_reduced(&x, &t, Reduction::Mean).expect("valid");
        if sum != f32::INFINITY {
            errors.push(format!("{b:?}: Sum {sum:e}, expected inf"));
        }
        // ulp_distance of NaN is large, so NaN fails too.
        if ulp_distance(mean, each) > 2 {
            errors.push(format!("{b:?}: Mean {mean:e}, expected {each:e}"));
        }
    }
    assert_no_errors(errors);
}

/// Balanced alpha with a soft target near the weight crossover: alpha_t is formed
/// as `a_neg + t (a_pos - a_neg)` from coefficients rounded to f32, which cancels
/// when alpha_t is much smaller than `1 - a` (here alpha_t = 0.002, the loss and
/// gradient are off by hundreds of ULP). `a t + (1-a)(1-t)` is a sum of non-negative
/// terms and has no such cancellation. Without FMA (Portable) the product is
/// rounded before the addition, so even a = 0 is affected, which also makes the
/// fused Mean gradient disagree with grad / count.
#[test]
fn regression_balanced_alpha_soft_target_cancellation() {
    let mut errors = Vec::new();
    for b in backends() {
        for (x, t, a, g) in [
            (0.0f32, 0.999f32, 1e-3f32, 0.0f32),
            (1.5, 1e-3, 0.999, 2.0),
            (0.0, 0.999, 0.0, 0.0),
        ] {
            let alpha = Alpha::Balanced(a);
            let fl = focal(g, alpha, SoftTargets::Torchvision, b);
            let loss = run_loss(&fl, &[x], &[t]).expect("valid")[0];
            let want = ref_loss(
                f64::from(x),
                t,
                f64::from(g),
                alpha,
                SoftTargets::Torchvision,
            );
            // The crate promises <= 8 ULP for the loss at gamma <= 3.
            if ulp_distance(loss, want as f32) > 8 {
                errors.push(format!(
                    "{b:?} a={a} gamma={g} x={x} t={t}: loss {loss:e}, reference {want:e} ({} ULP)",
                    ulp_distance(loss, want as f32)
                ));
            }
            errors.extend(grad_error(b, x, t, g, alpha, SoftTargets::Torchvision).err());
        }
        // The fused Mean gradient against grad / count (8 ULP for Balanced alpha and
        // a soft target, see `reductions_are_consistent`).
        let fl = focal(0.0, Alpha::Balanced(0.0), SoftTargets::Torchvision, b);
        let mut t = vec![0.0f32; 17];
        t[16] = 0.999;
        let x = vec![0.0f32; 17];
        let grad = run_grad(&fl, &x, &t).expect("valid")[16];
        let (_, gm) = run_fused(&fl, &x, &t, Reduction::Mean).expect("valid");
        if ulp_distance(gm[16], grad / 17.0) > 8 {
            errors.push(format!(
                "{b:?} Balanced(0) t=0.999 x=0, Mean over 17: fused grad {:e}, grad/17 {:e}",
                gm[16],
                grad / 17.0
            ));
        }
    }
    assert_no_errors(errors);
}

/// Soft targets with p = sigmoid(x) near 1: `p - t` is formed from p rounded to f32,
/// which loses the digits of 1 - p (absolute error ~3e-8 on a difference of ~1e-3
/// here: ~100 u). `(1 - t) - sigmoid(-x)` keeps them (1 - t is exact for t >= 0.5).
#[test]
fn regression_soft_gradient_p_minus_t_near_one() {
    let mut errors = Vec::new();
    for b in backends() {
        for soft in [SoftTargets::Torchvision, SoftTargets::ExpNegBce] {
            for (x, t) in [
                (14.827578f32, 0.999f32),
                (11.746709, 1.0 - 1.0 / 1_048_576.0),
            ] {
                errors.extend(grad_error(b, x, t, 0.0, Alpha::Off, soft).err());
            }
        }
    }
    assert_no_errors(errors);
}
