//! High-precision reference for the sigmoid focal loss, its gradient and the building
//! blocks (sigmoid, softplus, log-sigmoid), written independently of `src/` from the
//! formulas of `shared/DESIGN.md` §1-2 and evaluated in `f64`.
//!
//! # Why `f64` is exact enough
//!
//! The kernels are judged in ULP of `f32`; half an ULP is a relative `2^-24 ~ 6e-8`.
//! Every input here is an `f32` (exact in `f64`) and every step is either one `f64`
//! rounding (`2^-53 ~ 1.1e-16` relative) or a call to the platform's `exp`, `ln_1p`,
//! `exp_m1` or `powf` (glibc: < 1 `f64` ULP). What can turn these into large relative
//! errors is cancellation (a difference of close values) or a large condition number;
//! the formulas are chosen so that neither appears, except in one place handled by
//! measurement (below):
//!
//! - `1 - p` is never formed: `sigmoid(x)` and `sigmoid(-x)` both come from
//!   `e = exp(-|x|)` as `1/(1+e)` and `e/(1+e)` (`1 + e` in `[1, 2]`, one rounding).
//!   Error: about 3 `f64` ULP.
//! - `softplus(x) = max(x, 0) + ln_1p(exp(-|x|))`: two non-negative terms, and `ln_1p`
//!   has condition number `e/((1+e) ln(1+e)) <= 1` on `[0, 1]`. About 4 ULP.
//!   `log_sigmoid(x) = -softplus(-x)`.
//! - Hard targets (`t` in {0, 1}), with `z = (2t-1) x`: `q = 1 - p_t = sigmoid(-z)`,
//!   `1 - q = sigmoid(z)`, `L = softplus(-z)`, `q^gamma = exp(-gamma softplus(z))`,
//!   `FL = alpha_t q^gamma L`, `dFL/dx = -(2t-1) alpha_t q^gamma (gamma (1-q) L + q)`:
//!   every sum has non-negative terms. The only amplified error is that of the
//!   exponent `gamma softplus(z)`: its absolute error (about `5 * 2^-53 * gamma
//!   softplus(z)`) becomes a relative error of `q^gamma`. A result that is not flushed
//!   to 0 in `f32` needs `q^gamma >= 2^-150`, so the exponent is below ~104 whenever
//!   it matters, and the relative error stays below `104 * 5 * 2^-53 ~ 6e-14`, i.e.
//!   ~5e-7 of an `f32` ULP.
//! - Soft targets, torchvision (`p_t = p t + (1-p)(1-t)`): `q = sigmoid(-x) t +
//!   sigmoid(x) (1-t)` and `BCE = t softplus(-x) + (1-t) softplus(x)` are sums of
//!   non-negative terms; `1 - t` and `1 - 2t` are exact or one rounding (`t` is an
//!   `f32`); `q >= min(t, 1-t) > 0`, so `q^gamma = powf(q, gamma)` has relative error
//!   about `gamma * 5 * 2^-53`. Above `q = 1/2`, `q^gamma = exp(gamma ln_1p(-p_t))`
//!   from `p_t` itself (also a sum of non-negative terms): `q` rounded to `f64` loses
//!   `p_t` below 2^-53, which a huge gamma (no bound documented, loose check) turns
//!   into an error of `gamma p_t` in the exponent.
//! - Soft targets, snippet (`p_t = exp(-BCE)`): `q = -exp_m1(-BCE)`; `exp_m1` at `-B`
//!   has condition number `B e^-B / (1 - e^-B) <= 1`, so `q` keeps BCE's ~5 ULP, and
//!   `q >= 1 - exp(-H(t)) > 0` (`H` the binary entropy: BCE is at least `H(t)`).
//!   `q^gamma` as for torchvision, from `1 - q = exp(-BCE)` above 1/2.
//!
//! The one real cancellation is the soft-target gradient, which crosses zero near the
//! minimum of the loss:
//! torchvision: `dFL/dx = alpha_t (gamma q^gamma BCE dq/q + q^gamma (p - t))`,
//! `dq/dx = p (1-p) (1-2t)`; snippet: `dFL/dx = alpha_t (p - t) (gamma q^gamma BCE
//! e^-BCE / q + q^gamma)`. Near the zero the terms (and `p` and `t` inside `p - t`)
//! cancel. Here the reference's absolute error is a few `f64` ULP of the *size of the
//! cancelling terms*, [`Point::grad_scale`] (`alpha_t (|gamma term| + q^gamma p +
//! q^gamma t)`, resp. `alpha_t (gamma q^gamma BCE e^-BCE / q + q^gamma) (p + t)`),
//! and the tests measure soft-target gradients in ULP of that scale, not of the
//! result. That is also the only meaningful bar for an `f32` kernel: `p` rounded to
//! `f32` alone moves `p - t` by half an ULP of `p`. No double-double is needed.
//!
//! Away from that zero, and for everything else, the reference's relative error is
//! below `1e-13`, a millionth of an `f32` ULP, so a measured error of `k` ULP is the
//! kernel's to within `1e-6` ULP. `tests/accuracy.rs` cross-checks the formulas (not
//! the precision) against naive ones and the gradients against finite differences.

use focal::{Alpha, SoftTargets};

/// The reference at one point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// `FL(x, t)`.
    pub loss: f64,
    /// `d FL / d x`.
    pub grad: f64,
    /// The size of the terms that cancel in `grad`: `|grad|` where nothing cancels
    /// (hard targets, ignored elements, infinite `x`), the sum of the magnitudes of the
    /// cancelling terms for soft targets (see the module doc).
    pub grad_scale: f64,
}

impl Point {
    const ZERO: Point = Point {
        loss: 0.0,
        grad: 0.0,
        grad_scale: 0.0,
    };
}

/// `e^-|x|`, `sigmoid(|x|)` and `sigmoid(-|x|)`, without any `1 - p`.
#[derive(Clone, Copy, Debug)]
struct Logistic {
    e: f64,
    big: f64,
    small: f64,
}

fn logistic(x: f64) -> Logistic {
    let e = (-x.abs()).exp();
    let d = 1.0 + e;
    Logistic {
        e,
        big: 1.0 / d,
        small: e / d,
    }
}

/// `max(x, 0)`, NaN-preserving (`f64::max` would drop the NaN).
fn pos(x: f64) -> f64 {
    if x > 0.0 || x.is_nan() {
        x
    } else {
        0.0
    }
}

/// `sigmoid(x) = 1/(1 + e^-x)`.
pub fn sigmoid(x: f64) -> f64 {
    let lg = logistic(x);
    if x < 0.0 {
        lg.small
    } else {
        lg.big
    }
}

/// `softplus(x) = ln(1 + e^x) = max(x, 0) + ln(1 + e^-|x|)`.
pub fn softplus(x: f64) -> f64 {
    pos(x) + (-x.abs()).exp().ln_1p()
}

/// `ln(sigmoid(x)) = -softplus(-x)`.
pub fn log_sigmoid(x: f64) -> f64 {
    -softplus(-x)
}

/// `alpha_t` for a target in `[0, 1]`, exactly as DESIGN §1 defines it.
pub fn alpha_t(alpha: Alpha, t: f64) -> f64 {
    match alpha {
        Alpha::Off => 1.0,
        Alpha::Balanced(a) => {
            let a = f64::from(a);
            a * t + (1.0 - a) * (1.0 - t)
        }
        Alpha::Uniform(a) => f64::from(a),
    }
}

/// The focal loss and its gradient at logit `x`, target `t` (0, 1, in between, or -1
/// = ignored). `x` may be infinite (the limits); NaN `x` is not handled here.
pub fn focal(x: f64, t: f64, gamma: f64, alpha: Alpha, soft: SoftTargets) -> Point {
    if t == -1.0 {
        return Point::ZERO;
    }
    assert!(
        (0.0..=1.0).contains(&t),
        "reference: target {t} out of range"
    );
    let a_t = alpha_t(alpha, t);
    if x.is_infinite() {
        return limit(x, t, gamma, a_t, soft);
    }
    if t == 0.0 || t == 1.0 {
        hard(x, t, gamma, a_t)
    } else {
        match soft {
            SoftTargets::Torchvision => soft_torchvision(x, t, gamma, a_t),
            SoftTargets::ExpNegBce => soft_snippet(x, t, gamma, a_t),
        }
    }
}

/// Hard target, finite `x`: DESIGN §2 in `z = (2t-1) x`.
pub fn hard(x: f64, t: f64, gamma: f64, a_t: f64) -> Point {
    let s = if t == 1.0 { 1.0 } else { -1.0 };
    let z = s * x;
    let lg = logistic(z);
    let (q, omq) = if z >= 0.0 {
        (lg.small, lg.big)
    } else {
        (lg.big, lg.small)
    };
    let l1p = lg.e.ln_1p();
    let bce = pos(-z) + l1p;
    // q^gamma = exp(-gamma softplus(z)); gamma = 0 gives exp(-0) = 1 exactly.
    let qg = (-gamma * (pos(z) + l1p)).exp();
    let loss = a_t * qg * bce;
    let grad = -s * a_t * qg * (gamma * omq * bce + q);
    Point {
        loss,
        grad,
        grad_scale: grad.abs(),
    }
}

/// Pieces shared by both soft forms, finite `x`.
struct SoftParts {
    /// `sigmoid(x)`.
    p: f64,
    /// `sigmoid(-x) = 1 - p`, computed directly.
    pm: f64,
    /// `t softplus(-x) + (1-t) softplus(x)`.
    bce: f64,
}

fn soft_parts(x: f64, t: f64) -> SoftParts {
    let lg = logistic(x);
    let (p, pm) = if x < 0.0 {
        (lg.small, lg.big)
    } else {
        (lg.big, lg.small)
    };
    let l1p = lg.e.ln_1p();
    let sp_x = pos(x) + l1p;
    let sp_negx = pos(-x) + l1p;
    SoftParts {
        p,
        pm,
        bce: t * sp_negx + (1.0 - t) * sp_x,
    }
}

/// `q^gamma` for `q` in `[0, 1]` given also `1 - q` (computed without
/// cancellation): `e^(gamma ln q)` with `ln q = ln_1p(-(1 - q))` where `q > 1/2`.
/// `q.powf(gamma)` is not enough for a huge gamma: `q` within 2^-53 of 1 rounds to
/// 1 in `f64` (`1 - q = 7.7e-21` at x = 46.3, t = 2^-149), and `(1 - 7.7e-21)^gamma`
/// is `e^-18` for gamma 2.35e21, not 1. The exponent's relative error stays a few
/// `f64` ULP, and it only matters while it is below ~104.
fn pow_from_complement(q: f64, omq: f64, gamma: f64) -> f64 {
    if gamma == 0.0 {
        return 1.0;
    }
    if q > 0.5 {
        (gamma * (-omq).ln_1p()).exp()
    } else {
        q.powf(gamma)
    }
}

/// torchvision's `p_t = p t + (1-p)(1-t)`, any `t` in `[0, 1]`, finite `x`.
pub fn soft_torchvision(x: f64, t: f64, gamma: f64, a_t: f64) -> Point {
    let SoftParts { p, pm, bce } = soft_parts(x, t);
    let q = pm * t + p * (1.0 - t);
    // 1 - q = p t + (1-p) (1-t), non-negative terms: ln q from it where q > 1/2.
    let qg = pow_from_complement(q, p * t + pm * (1.0 - t), gamma);
    let dq = p * pm * (1.0 - 2.0 * t);
    // gamma q^(gamma-1) dq BCE, written without a negative power of q (q may be 0 for
    // hard t, where dq is 0 too).
    let gterm = if gamma == 0.0 || dq == 0.0 {
        0.0
    } else {
        gamma * qg * bce * (dq / q)
    };
    let loss = a_t * qg * bce;
    let grad = a_t * (gterm + qg * (p - t));
    Point {
        loss,
        grad,
        grad_scale: a_t * (gterm.abs() + qg * p + qg * t),
    }
}

/// The snippet's `p_t = exp(-BCE)`, any `t` in `[0, 1]`, finite `x`.
pub fn soft_snippet(x: f64, t: f64, gamma: f64, a_t: f64) -> Point {
    let SoftParts { p, bce, .. } = soft_parts(x, t);
    let q = -(-bce).exp_m1();
    let ex = (-bce).exp();
    let qg = pow_from_complement(q, ex, gamma);
    // d q / dx = e^-BCE (p - t); the factor multiplying (p - t):
    let factor = if gamma == 0.0 || q == 0.0 {
        qg
    } else {
        gamma * qg * bce * ex / q + qg
    };
    let loss = a_t * qg * bce;
    Point {
        loss,
        grad: a_t * factor * (p - t),
        grad_scale: a_t * factor * (p + t),
    }
}

/// The limits at `x = +-inf` (DESIGN §3: "the mathematically right limit").
fn limit(x: f64, t: f64, gamma: f64, a_t: f64, soft: SoftTargets) -> Point {
    // p = sigmoid(x) is 1 at +inf, 0 at -inf; the loss either vanishes or grows like
    // |x| (infinite unless alpha_t = 0); p (1-p) BCE -> 0 in every gradient.
    let p = if x > 0.0 { 1.0 } else { 0.0 };
    let (loss_zero, grad) = if t == 0.0 || t == 1.0 {
        // z = (2t-1) x: at z = +inf q = 0 and everything vanishes; at z = -inf q = 1,
        // (1-q) L -> 0, and dFL/dx -> -(2t-1) alpha_t.
        let z_pos = (t == 1.0) == (x > 0.0);
        if z_pos {
            (true, 0.0)
        } else {
            (false, -(2.0 * t - 1.0) * a_t)
        }
    } else {
        let grad = match soft {
            // q -> (1-p) t + p (1-t).
            SoftTargets::Torchvision => {
                let (q, omq) = if x > 0.0 { (1.0 - t, t) } else { (t, 1.0 - t) };
                a_t * pow_from_complement(q, omq, gamma) * (p - t)
            }
            // BCE -> inf, q -> 1, and gamma q^gamma BCE e^-BCE / q -> 0.
            SoftTargets::ExpNegBce => a_t * (p - t),
        };
        (false, grad)
    };
    let loss = if loss_zero || a_t == 0.0 {
        0.0
    } else {
        f64::INFINITY
    };
    Point {
        loss,
        grad,
        grad_scale: grad.abs(),
    }
}
