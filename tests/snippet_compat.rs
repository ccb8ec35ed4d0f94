//! Compatibility with the widely copied PyTorch focal loss snippet:
//!
//! ```python
//! class FocalLoss(nn.Module):
//!     def __init__(self, alpha=0.25, gamma=2, reduction='mean'): ...
//!     def forward(self, inputs, targets):
//!         bce = F.binary_cross_entropy_with_logits(inputs, targets, reduction='none')
//!         pt = torch.exp(-bce)
//!         loss = self.alpha * (1 - pt) ** self.gamma * bce
//!         return loss.mean()   # or loss.sum(), or loss ('none')
//! ```
//!
//! alpha multiplies every element (positives and negatives alike), and for soft
//! targets `pt = exp(-bce)` is not torchvision's `p_t`. The crate reproduces it with
//! `Alpha::Uniform(alpha)` and `SoftTargets::ExpNegBce`. The expected values are the
//! snippet's formula evaluated independently here in f64 (with `1 - pt` as
//! `-expm1(-bce)`, so the f64 values are accurate where the f32 snippet would round
//! `1 - pt` to 0), then compared in ULP.

use focal::{Alpha, Backend, Focal, Reduction, SoftTargets};

const ALPHA: f32 = 0.25;
const GAMMA: f32 = 2.0;

/// f32 unit roundoff, 2^-24.
const U: f64 = 1.0 / 16_777_216.0;

/// The crate's documented bound for the loss at gamma <= 3, per element.
const LOSS_ULP: u64 = 8;

/// Sum and Mean against the f64 reference, relative, in u: every element is within
/// 8 ULP, i.e. at most 16 u relative (an ULP is u to 2u of the value); all terms are
/// non-negative so the sum of the errors is at most 16 u of the sum; the compensated
/// summation adds ~2 u and the final rounding 1 u.
const REDUCED_TOL_U: f64 = 19.0;

/// The crate's Sum and Mean against the exact (f64) sum of its own elementwise
/// losses: compensated summation and one final rounding.
const SUMMATION_ULP: u64 = 2;

/// The gradient against the f64 derivative of the snippet, in u of the error scale
/// of [`snippet_grad`]: the crate's loss bound (16 u relative) plus the few products
/// of the gradient formula; measured well below (printed with --nocapture).
const GRAD_TOL_U: f64 = 32.0;

/// Below the normal range the crate promises absolute accuracy: 64 subnormal ULP.
const GRAD_TOL_ABS: f64 = 64.0 * 1.401_298_464_324_817e-45;

fn softplus64(x: f64) -> f64 {
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

/// `binary_cross_entropy_with_logits(x, t)`: PyTorch evaluates
/// `max(x, 0) - x t + log1p(exp(-|x|))`; the same function written as a sum of
/// non-negative terms, without its cancellation.
fn bce64(x: f64, t: f64) -> f64 {
    t * softplus64(-x) + (1.0 - t) * softplus64(x)
}

/// The snippet's per-element loss, `alpha (1 - exp(-bce))^gamma bce`, in f64.
fn snippet_loss(x: f32, t: f32) -> f64 {
    let bce = bce64(f64::from(x), f64::from(t));
    let one_minus_pt = -(-bce).exp_m1();
    f64::from(ALPHA) * one_minus_pt.powf(f64::from(GAMMA)) * bce
}

/// What autograd gives for the snippet's per-element loss, and the scale of its f32
/// evaluation error. With `b = bce`, `b' = p - t`, `w = 1 - exp(-b)`:
/// `d/dx alpha w^g b = alpha b' w^(g-1) (g exp(-b) b + w)`, the bracket positive. The
/// factor `p - t` is a difference with a rounded p; its error scale is
/// `|p - t| + min(p, 1-p)`.
fn snippet_grad(x: f32, t: f32) -> (f64, f64) {
    let (x, t, g) = (f64::from(x), f64::from(t), f64::from(GAMMA));
    let b = bce64(x, t);
    let w = -(-b).exp_m1();
    let (p, pm) = (sigmoid64(x), sigmoid64(-x));
    let pmt = if x > 0.0 { (1.0 - t) - pm } else { p - t };
    let common = f64::from(ALPHA) * w.powf(g - 1.0) * (g * (-b).exp() * b + w);
    (common * pmt, common * (pmt.abs() + p.min(pm)))
}

/// Distance in ULP between two f32 (absolute below the normal range; NaN is never
/// close to anything).
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

fn snippet(b: Backend) -> Focal {
    Focal::new(GAMMA, Alpha::Uniform(ALPHA))
        .expect("valid parameters")
        .soft_targets(SoftTargets::ExpNegBce)
        .with_backend(b)
        .expect("available backend")
}

/// Deterministic logits spread over `(-limit, limit)`, exact zero included.
fn logits(n: usize, limit: f32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            // A low-discrepancy walk (golden ratio) over (-1, 1).
            let u = ((i as f64 * 0.618_033_988_749_895) % 1.0) * 2.0 - 1.0;
            if i % 17 == 5 {
                0.0
            } else {
                (u * f64::from(limit)) as f32
            }
        })
        .collect()
}

fn hard_targets(n: usize) -> Vec<f32> {
    (0..n).map(|i| if i % 3 == 0 { 1.0 } else { 0.0 }).collect()
}

/// Soft targets (label smoothing, distillation) mixed with hard ones.
fn soft_targets(n: usize) -> Vec<f32> {
    const T: [f32; 9] = [0.1, 0.9, 0.3, 1.0, 0.5, 0.0, 0.75, 0.05, 0.95];
    (0..n).map(|i| T[(i * 5) % T.len()]).collect()
}

/// Checks 'none', 'sum' and 'mean' and the gradients of 'sum' and 'mean' on one
/// input, on every backend. Returns the largest loss error seen, in ULP, and the
/// largest gradient error, in u of its scale.
fn check_snippet(x: &[f32], t: &[f32], what: &str) -> (u64, f64) {
    let n = x.len();
    let want: Vec<f64> = x.iter().zip(t).map(|(&x, &t)| snippet_loss(x, t)).collect();
    let want_sum: f64 = want.iter().sum();
    let want_mean = want_sum / n as f64;
    let mut worst_grad = 0.0f64;
    let mut worst_loss = 0u64;
    for b in Backend::available() {
        let fl = snippet(b);
        // reduction='none'
        let mut loss = vec![0.0f32; n];
        fl.loss(x, t, &mut loss).expect("valid input");
        for i in 0..n {
            let d = ulp_distance(loss[i], want[i] as f32);
            worst_loss = worst_loss.max(d);
            assert!(
                d <= LOSS_ULP,
                "{what} {b:?} 'none' x={} t={}: {:e}, snippet {:e} ({d} ULP)",
                x[i],
                t[i],
                loss[i],
                want[i]
            );
        }
        // reduction='sum' and 'mean', plain and fused.
        let own_sum: f64 = loss.iter().map(|&v| f64::from(v)).sum();
        let mut grad = vec![0.0f32; n];
        let sum = fl.loss_reduced(x, t, Reduction::Sum).expect("valid");
        let mean = fl.loss_reduced(x, t, Reduction::Mean).expect("valid");
        let fused_sum = fl
            .loss_and_grad(x, t, Reduction::Sum, &mut grad)
            .expect("valid");
        let grad_sum = grad.clone();
        let fused_mean = fl
            .loss_and_grad(x, t, Reduction::Mean, &mut grad)
            .expect("valid");
        for (name, got, reference, own) in [
            ("sum", sum, want_sum, own_sum),
            ("fused sum", fused_sum, want_sum, own_sum),
            ("mean", mean, want_mean, own_sum / n as f64),
            ("fused mean", fused_mean, want_mean, own_sum / n as f64),
        ] {
            assert!(
                (f64::from(got) - reference).abs() <= REDUCED_TOL_U * U * reference,
                "{what} {b:?} '{name}' n={n}: {got:e}, snippet {reference:e}"
            );
            let d = ulp_distance(got, own as f32);
            assert!(
                d <= SUMMATION_ULP,
                "{what} {b:?} '{name}' n={n}: {got:e}, exact sum of its elements {own:e} ({d} ULP)"
            );
        }
        // The gradients of loss.sum() and loss.mean().
        for (name, g, scale) in [("sum", &grad_sum, 1.0), ("mean", &grad, n as f64)] {
            for i in 0..n {
                let (w, s) = snippet_grad(x[i], t[i]);
                let (w, s) = (w / scale, s / scale);
                let abs_err = (f64::from(g[i]) - w).abs();
                let err = abs_err / (U * s);
                if abs_err > GRAD_TOL_ABS {
                    worst_grad = worst_grad.max(err);
                }
                assert!(
                    abs_err <= GRAD_TOL_U * U * s + GRAD_TOL_ABS,
                    "{what} {b:?} d '{name}'/dx x={} t={}: {:e}, autograd of the snippet {w:e} \
                     ({err:.1} u of scale {s:e})",
                    x[i],
                    t[i],
                    g[i]
                );
            }
        }
    }
    (worst_loss, worst_grad)
}

#[test]
fn hard_targets_moderate_logits() {
    let (mut loss, mut grad) = (0, 0.0f64);
    for n in [1usize, 7, 16, 33, 100, 1000] {
        let (l, g) = check_snippet(&logits(n, 15.0), &hard_targets(n), "hard");
        (loss, grad) = (loss.max(l), grad.max(g));
    }
    println!("hard targets: largest loss error {loss} ULP, gradient error {grad:.2} u");
}

#[test]
fn soft_targets_moderate_logits() {
    let (mut loss, mut grad) = (0, 0.0f64);
    for n in [1usize, 7, 16, 33, 100, 1000] {
        let (l, g) = check_snippet(&logits(n, 15.0), &soft_targets(n), "soft");
        (loss, grad) = (loss.max(l), grad.max(g));
    }
    println!("soft targets: largest loss error {loss} ULP, gradient error {grad:.2} u");
}

/// Beyond |x| = 15 the f32 snippet itself degrades (`1 - pt` rounds to 0 once bce <
/// 2^-25, i.e. x > ~17 for a correct positive), but the formula it writes down is
/// still well defined; the crate keeps following it, to the same tolerance.
#[test]
fn confident_logits_follow_the_formula() {
    let n = 200;
    check_snippet(&logits(n, 80.0), &hard_targets(n), "hard, |x| < 80");
    check_snippet(&logits(n, 80.0), &soft_targets(n), "soft, |x| < 80");
}

/// Hard targets: the snippet's `pt = exp(-bce)` is torchvision's `p_t`, so both
/// soft-target options give the same bits; `Uniform` weights positives and negatives
/// alike, unlike `Balanced` (which gives the negatives 1 - alpha).
#[test]
fn hard_targets_need_no_option_and_alpha_is_uniform() {
    let n = 64;
    let x = logits(n, 15.0);
    let t = hard_targets(n);
    for b in Backend::available() {
        let mut a = vec![0.0f32; n];
        let mut c = vec![0.0f32; n];
        snippet(b).loss(&x, &t, &mut a).expect("valid");
        Focal::new(GAMMA, Alpha::Uniform(ALPHA))
            .and_then(|f| f.with_backend(b))
            .expect("valid")
            .loss(&x, &t, &mut c)
            .expect("valid");
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            c.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{b:?}"
        );
        let balanced = Focal::new(GAMMA, Alpha::Balanced(ALPHA))
            .and_then(|f| f.with_backend(b))
            .expect("valid")
            .loss_reduced(&x, &t, Reduction::Sum)
            .expect("valid");
        let uniform = snippet(b)
            .loss_reduced(&x, &t, Reduction::Sum)
            .expect("valid");
        assert!(
            (balanced - uniform).abs() > 0.1 * uniform,
            "{b:?}: Balanced {balanced:e} and Uniform {uniform:e} should differ"
        );
    }
}

/// A few values worked out by hand (to f64 precision) from the snippet, so a
/// mistake shared by the reference above and the crate would still show.
#[test]
fn hand_checked_values() {
    // x = 0, t = 1: bce = ln 2, pt = 1/2: 0.25 * 0.25 * ln 2.
    let ln2 = std::f64::consts::LN_2;
    let cases = [
        (0.0f32, 1.0f32, 0.0625 * ln2),
        // x = 0, t = 0.5: bce = ln 2 as well.
        (0.0, 0.5, 0.0625 * ln2),
        // x = ln 3, t = 0: bce = ln(1 + 3) = ln 4, pt = 1/4, (3/4)^2.
        (3.0f64.ln() as f32, 0.0, 0.25 * 0.5625 * 4.0f64.ln()),
    ];
    for (x, t, want) in cases {
        // The f32 rounding of ln 3 moves the third value by < 1e-7 relative.
        assert!(
            (snippet_loss(x, t) - want).abs() <= 2e-7 * want,
            "reference at x={x} t={t}"
        );
        for b in Backend::available() {
            let mut out = [0.0f32];
            snippet(b).loss(&[x], &[t], &mut out).expect("valid");
            assert!(
                (f64::from(out[0]) - want).abs() <= 2e-7 * want + 16.0 * U * want,
                "{b:?} x={x} t={t}: {:e}, by hand {want:e}",
                out[0]
            );
        }
    }
}
