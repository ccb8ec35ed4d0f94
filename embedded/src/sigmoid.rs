//! The sigmoid focal loss: known answers on both backends this target has, the
//! limits at infinite logits, NaN, ignored elements and every error kind.

use focal::{Alpha, Backend, Error, Focal, Reduction, SoftTargets};

use crate::harness::Run;
use crate::known::{self, T_HARD, T_SOFT, X};

struct Case {
    name: &'static str,
    gamma: f32,
    alpha: Alpha,
    targets: &'static [f32],
    soft: SoftTargets,
    loss: &'static [f64],
    grad: &'static [f64],
    sum: f64,
    mean: f64,
    active: f64,
}

macro_rules! case {
    ($name:literal, $m:ident, $gamma:expr, $alpha:expr, $t:expr, $soft:expr) => {
        Case {
            name: $name,
            gamma: $gamma,
            alpha: $alpha,
            targets: &$t,
            soft: $soft,
            loss: &known::$m::LOSS,
            grad: &known::$m::GRAD,
            sum: known::$m::SUM,
            mean: known::$m::MEAN,
            active: known::$m::ACTIVE,
        }
    };
}

const TV: SoftTargets = SoftTargets::Torchvision;

fn cases() -> [Case; 6] {
    [
        case!(
            "gamma 2, balanced 0.25, hard",
            g2_balanced_hard,
            2.0,
            Alpha::Balanced(0.25),
            T_HARD,
            TV
        ),
        case!(
            "gamma 0 (BCE), hard",
            g0_off_hard,
            0.0,
            Alpha::Off,
            T_HARD,
            TV
        ),
        case!(
            "gamma 1.5, balanced 0.25, hard",
            g15_balanced_hard,
            1.5,
            Alpha::Balanced(0.25),
            T_HARD,
            TV
        ),
        case!(
            "gamma 0.5, uniform 0.4, hard",
            g05_uniform_hard,
            0.5,
            Alpha::Uniform(0.4),
            T_HARD,
            TV
        ),
        case!(
            "gamma 2, balanced 0.25, soft",
            g2_balanced_soft,
            2.0,
            Alpha::Balanced(0.25),
            T_SOFT,
            TV
        ),
        case!(
            "gamma 1.5, soft, exp(-BCE)",
            g15_off_soft_expnegbce,
            1.5,
            Alpha::Off,
            T_SOFT,
            SoftTargets::ExpNegBce
        ),
    ]
}

/// Every slice call of every case on one backend.
pub fn known_answers(run: &mut Run, backend: Backend) {
    let n = X.len();
    for c in cases() {
        let Ok(fl) = Focal::new(c.gamma, c.alpha) else {
            run.check("Focal::new", false);
            continue;
        };
        let Ok(fl) = fl.soft_targets(c.soft).with_backend(backend) else {
            run.check("with_backend", false);
            continue;
        };
        let t = c.targets;
        let mut out = [0.0f32; 10];
        run.check("loss", fl.loss(&X, t, &mut out).is_ok());
        run.close_all("loss", &out[..n], c.loss, 1.0);
        run.check("grad", fl.grad(&X, t, &mut out).is_ok());
        run.close_all("grad", &out[..n], c.grad, 1.0);
        let sum = fl.loss_reduced(&X, t, Reduction::Sum);
        run.close("loss_reduced Sum", 0, sum.unwrap_or(f32::NAN), c.sum);
        let mean = fl.loss_reduced(&X, t, Reduction::Mean);
        run.close("loss_reduced Mean", 0, mean.unwrap_or(f32::NAN), c.mean);
        let by4 = fl.loss_reduced(&X, t, Reduction::DivideBy(4.0));
        run.close(
            "loss_reduced DivideBy(4)",
            0,
            by4.unwrap_or(f32::NAN),
            c.sum / 4.0,
        );
        for (reduction, scale) in [
            (Reduction::Sum, 1.0),
            (Reduction::Mean, 1.0 / c.active),
            (Reduction::DivideBy(4.0), 0.25),
        ] {
            out = [f32::NAN; 10];
            let loss = fl.loss_and_grad(&X, t, reduction, &mut out);
            run.close(
                "loss_and_grad loss",
                0,
                loss.unwrap_or(f32::NAN),
                c.sum * scale,
            );
            run.close_all("loss_and_grad grad", &out[..n], c.grad, scale);
        }
        let mut name = [0u8; 64];
        run.group(label(&mut name, c.name, backend));
    }
}

/// "<case> [<backend>]" in a stack buffer (no allocator).
pub fn label<'a>(buf: &'a mut [u8; 64], what: &str, backend: Backend) -> &'a str {
    let mut len = 0;
    for part in [what, " [", backend.name(), "]"] {
        for &b in part.as_bytes() {
            if len < buf.len() {
                buf[len] = b;
                len += 1;
            }
        }
    }
    core::str::from_utf8(&buf[..len]).unwrap_or("?")
}

/// Infinite logits give the limits, NaN stays NaN, ignored elements give 0, and the
/// empty / all-ignored reductions give 0.
///
/// Limits (gamma > 0, `alpha_t` the balanced weight, `z = (2t-1) x`): z -> +inf:
/// FL -> 0, dFL/dx -> 0; z -> -inf: FL -> +inf, dFL/dx -> -(2t-1) alpha_t (the
/// loss grows like |x|). A huge finite wrong logit (1e30, t = 0): q = 1 in f32,
/// FL = alpha_t x = 0.75 * f32(1e30), gradient 0.75.
pub fn edge_cases(run: &mut Run, backend: Backend) {
    let inf = f32::INFINITY;
    let x = [inf, -inf, inf, -inf, f32::NAN, 1e30, 0.0, -2.0, 5.0];
    let t = [1.0, 1.0, 0.0, 0.0, 1.0, 0.0, -1.0, -1.0, 1.0];
    let big = f64::from(1e30f32) * 0.75;
    let want_loss = [
        0.0,
        f64::INFINITY,
        f64::INFINITY,
        0.0,
        f64::NAN,
        big,
        0.0,
        0.0,
    ];
    let want_grad = [0.0, -0.25, 0.75, 0.0, f64::NAN, 0.75, 0.0, 0.0];
    for gamma in [2.0, 1.5, 0.5, 3.0] {
        let Ok(fl) = Focal::new(gamma, Alpha::Balanced(0.25)).and_then(|f| f.with_backend(backend))
        else {
            run.check("Focal::new", false);
            continue;
        };
        let mut out = [0.0f32; 9];
        run.check("loss", fl.loss(&x, &t, &mut out).is_ok());
        run.close_all("inf/NaN loss", &out[..8], &want_loss, 1.0);
        run.check("finite loss at x=5", out[8].is_finite() && out[8] > 0.0);
        run.check("grad", fl.grad(&x, &t, &mut out).is_ok());
        run.close_all("inf/NaN grad", &out[..8], &want_grad, 1.0);
        // A sum with +inf and NaN in it is NaN; without the NaN it is +inf.
        let s = fl.loss_reduced(&x, &t, Reduction::Sum);
        run.check("Sum with NaN is NaN", s.is_ok_and(|v| v.is_nan()));
        let s = fl.loss_reduced(&x[..4], &t[..4], Reduction::Sum);
        run.check("Sum with +inf is +inf", s == Ok(inf));
        // Finite losses whose f32 sum overflows give +inf, not NaN.
        let s = fl.loss_reduced(&[1e38; 8], &[0.0; 8], Reduction::Sum);
        run.check("overflowing Sum is +inf", s == Ok(inf));
    }
    let Ok(fl) = Focal::new(2.0, Alpha::Off).and_then(|f| f.with_backend(backend)) else {
        run.check("Focal::new", false);
        return;
    };
    let mut g = [1.0f32; 3];
    let all_ignored = fl.loss_and_grad(&[1.0, 2.0, 3.0], &[-1.0; 3], Reduction::Mean, &mut g);
    run.check("all ignored: Mean 0", all_ignored == Ok(0.0));
    run.check("all ignored: grad 0", g == [0.0; 3]);
    run.check(
        "empty: Mean 0",
        fl.loss_reduced(&[], &[], Reduction::Mean) == Ok(0.0),
    );
    run.check(
        "empty: Sum 0",
        fl.loss_and_grad(&[], &[], Reduction::Sum, &mut []) == Ok(0.0),
    );
    // gamma 0 is BCE exactly: same bits as gamma 0 with the alpha the same.
    let mut a = [0.0f32; 10];
    let mut b = [0.0f32; 10];
    let bce = Focal::new(0.0, Alpha::Off).and_then(|f| f.with_backend(backend));
    let ok = bce
        .is_ok_and(|f| f.loss(&X, &T_HARD, &mut a).is_ok() && f.loss(&X, &T_HARD, &mut b).is_ok());
    run.check("gamma 0 deterministic", ok && a == b);
    let mut name = [0u8; 64];
    run.group(label(
        &mut name,
        "edge cases: inf, NaN, ignored, empty",
        backend,
    ));
}

/// Every error kind of the sigmoid API, with the values it names.
pub fn errors(run: &mut Run, backend: Backend) {
    run.check(
        "gamma -1",
        Focal::new(-1.0, Alpha::Off) == Err(Error::InvalidGamma(-1.0)),
    );
    run.check(
        "gamma inf",
        Focal::new(f32::INFINITY, Alpha::Off) == Err(Error::InvalidGamma(f32::INFINITY)),
    );
    run.check(
        "gamma NaN",
        matches!(Focal::new(f32::NAN, Alpha::Off), Err(Error::InvalidGamma(g)) if g.is_nan()),
    );
    run.check(
        "alpha 1.5",
        Focal::new(2.0, Alpha::Balanced(1.5)) == Err(Error::InvalidAlpha(1.5)),
    );
    run.check(
        "alpha -0.1",
        Focal::new(2.0, Alpha::Uniform(-0.1)) == Err(Error::InvalidAlpha(-0.1)),
    );
    run.check(
        "alpha NaN",
        matches!(Focal::new(2.0, Alpha::Balanced(f32::NAN)), Err(Error::InvalidAlpha(a)) if a.is_nan()),
    );
    let Ok(fl) = Focal::new(2.0, Alpha::Balanced(0.25)).and_then(|f| f.with_backend(backend))
    else {
        run.check("Focal::new", false);
        return;
    };
    let x = [0.5f32; 11];
    let mut out = [0.0f32; 11];
    let mut t = [1.0f32; 11];
    t[9] = 2.0;
    let bad = Err(Error::InvalidTarget {
        index: 9,
        value: 2.0,
    });
    run.check("target 2.0: loss", fl.loss(&x, &t, &mut out) == bad);
    run.check("target 2.0: grad", fl.grad(&x, &t, &mut out) == bad);
    run.check(
        "target 2.0: loss_reduced",
        fl.loss_reduced(&x, &t, Reduction::Sum).map(|_| ()) == bad,
    );
    run.check(
        "target 2.0: loss_and_grad",
        fl.loss_and_grad(&x, &t, Reduction::Mean, &mut out)
            .map(|_| ())
            == bad,
    );
    t[9] = -0.5;
    run.check(
        "target -0.5",
        fl.loss(&x, &t, &mut out)
            == Err(Error::InvalidTarget {
                index: 9,
                value: -0.5,
            }),
    );
    t[9] = 1.0;
    t[2] = f32::NAN;
    run.check(
        "target NaN",
        matches!(fl.loss(&x, &t, &mut out), Err(Error::InvalidTarget { index: 2, value }) if value.is_nan()),
    );
    t[2] = 1.0;
    let mismatch = |slice, actual| {
        Err(Error::LengthMismatch {
            slice,
            expected: 11,
            actual,
        })
    };
    run.check(
        "targets length",
        fl.loss(&x, &t[..10], &mut out) == mismatch("targets", 10),
    );
    run.check(
        "out length",
        fl.loss(&x, &t, &mut out[..3]) == mismatch("out", 3),
    );
    run.check(
        "grad length",
        fl.grad(&x, &t, &mut out[..3]) == mismatch("grad", 3),
    );
    run.check(
        "fused grad length",
        fl.loss_and_grad(&x, &t, Reduction::Sum, &mut out[..0])
            == Err(Error::LengthMismatch {
                slice: "grad",
                expected: 11,
                actual: 0,
            }),
    );
    for n in [0.0f32, -1.0, f32::INFINITY] {
        run.check(
            "normaliser",
            fl.loss_reduced(&x, &t, Reduction::DivideBy(n)) == Err(Error::InvalidNormalizer(n)),
        );
    }
    run.check(
        "normaliser NaN",
        matches!(
            fl.loss_and_grad(&x, &t, Reduction::DivideBy(f32::NAN), &mut out),
            Err(Error::InvalidNormalizer(n)) if n.is_nan()
        ),
    );
    let mut name = [0u8; 64];
    run.group(label(&mut name, "sigmoid errors", backend));
}

/// sigmoid, softplus and log_sigmoid at X on one backend.
pub fn building_blocks(run: &mut Run, backend: Backend) {
    let mut out = [0.0f32; 10];
    run.check("sigmoid", backend.sigmoid(&X, &mut out).is_ok());
    run.close_all("sigmoid", &out, &known::unary::SIGMOID, 1.0);
    run.check("softplus", backend.softplus(&X, &mut out).is_ok());
    run.close_all("softplus", &out, &known::unary::SOFTPLUS, 1.0);
    run.check("log_sigmoid", backend.log_sigmoid(&X, &mut out).is_ok());
    run.close_all("log_sigmoid", &out, &known::unary::LOG_SIGMOID, 1.0);
    run.check(
        "length",
        backend.sigmoid(&X, &mut out[..2])
            == Err(Error::LengthMismatch {
                slice: "out",
                expected: 10,
                actual: 2,
            }),
    );
    let mut name = [0u8; 64];
    run.group(label(&mut name, "sigmoid, softplus, log_sigmoid", backend));
}

/// The backends of a Cortex-M: Scalar and Portable (wide's plain arrays), Portable
/// detected; the x86 ones unavailable, and forcing them an error that changes
/// nothing.
pub fn backends(run: &mut Run) {
    run.check("detect is Portable", Backend::detect() == Backend::Portable);
    run.check("active is Portable", Backend::active() == Backend::Portable);
    let mut avail = [Backend::Avx512; 4];
    let mut k = 0;
    for b in Backend::available() {
        if k < avail.len() {
            avail[k] = b;
            k += 1;
        }
    }
    run.check(
        "available",
        k == 2 && avail[..2] == [Backend::Scalar, Backend::Portable],
    );
    for b in [Backend::Avx2, Backend::Avx512] {
        run.check("x86 unavailable", !b.is_available());
        run.check(
            "force x86",
            Backend::force(Some(b)) == Err(Error::BackendUnavailable(b)),
        );
        run.check(
            "pin x86",
            Focal::new(2.0, Alpha::Off).and_then(|f| f.with_backend(b))
                == Err(Error::BackendUnavailable(b)),
        );
        let mut out = [0.0f32; 2];
        run.check(
            "unary x86",
            b.sigmoid(&[0.0; 2], &mut out) == Err(Error::BackendUnavailable(b)),
        );
    }
    run.check("still Portable", Backend::active() == Backend::Portable);
    run.check(
        "force Scalar",
        Backend::force(Some(Backend::Scalar)).is_ok(),
    );
    run.check("active Scalar", Backend::active() == Backend::Scalar);
    let fl = Focal::new(2.0, Alpha::Off);
    run.check(
        "unpinned follows",
        fl.is_ok_and(|f| f.backend() == Backend::Scalar),
    );
    run.check("force None", Backend::force(None).is_ok());
    run.check("back to Portable", Backend::active() == Backend::Portable);
    run.group("backends: detection and forcing");
}
