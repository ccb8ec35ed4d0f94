//! Every vector backend against the scalar one (the executable specification), for
//! every slice length 0..=2*16+1 with misaligned starts and a few long ones (the
//! kernels' steady state), every call, hard and mixed soft targets and the three
//! gamma kinds (0, integer 2, general 1.5). Also: outputs are
//! written only inside their slice, inputs are never written, and an element in the
//! tail of a slice gets the same bits as the same element in a full vector.

use focal::{Alpha, Backend, Focal, Reduction, SoftTargets, IGNORE};

/// Longest slice of the every-length test: two full AVX-512 vectors and a tail of
/// one.
const MAX_LEN: usize = 2 * 16 + 1;
/// Lengths of the long-slice test: the kernels' two-vector steps (AVX-512, and
/// AVX2 for hard targets with an integer gamma) start at four vectors and load
/// two steps ahead, so their steady state and every exit from it need these
/// (8 and 16 lanes: 4 to 8 vectors, plus tails).
const LONG_LENS: [usize; 8] = [47, 48, 49, 63, 64, 65, 97, 131];
/// Slice starts 0..OFFSETS floats into a 64-byte aligned buffer.
const OFFSETS: usize = 4;
const BUF: usize = 131 + 2 * OFFSETS;

/// f32 unit roundoff, 2^-24.
const U: f64 = 1.0 / 16_777_216.0;

/// Agreement with Scalar, in units of `U` relative to the scale of the value (16 u
/// is 8 ULP at the bottom of a binade, 16 at the top).
///
/// Scalar uses libm's `expf`/`log1pf` and an exact `fmaf`; the vector backends their
/// own exp/log1p (<= 1 ULP each) and, on Portable without FMA, a separately rounded
/// multiply-add. The loss chains one exp, one log1p, a division and two or three
/// products (plus the hi + lo power for gamma = 1.5); each step is <= 1 u, so one
/// backend is within ~7 u of the exact value and two backends within ~14 u of each
/// other. A wrong branch or lane mix-up is O(1) relative, ~10^7 u. (Measured on this
/// machine: <= 4.5 u, printed by the test with --nocapture.)
const TOL_U: f64 = 16.0;

/// Absolute slack for results below the normal range (the crate promises absolute
/// accuracy there): 64 subnormal ULP.
const TOL_ABS: f64 = 64.0 * 1.401_298_464_324_817e-45;

/// Bit pattern written around every output slice; a NaN with a payload no
/// computation produces.
const GUARD: u32 = 0x7FC0_BEEF;

#[repr(C, align(64))]
#[derive(Clone)]
struct Buf([f32; BUF]);

impl Buf {
    fn filled(bits: u32) -> Self {
        Buf([f32::from_bits(bits); BUF])
    }
    /// A copy of `data` starting `off` floats into the buffer, surrounded by guards.
    fn holding(data: &[f32], off: usize) -> Self {
        let mut b = Buf::filled(GUARD);
        b.0[off..off + data.len()].copy_from_slice(data);
        b
    }
    fn bits(&self) -> Vec<u32> {
        self.0.iter().map(|v| v.to_bits()).collect()
    }
}

/// Logits from confident-wrong through 0 to confident-right, with 0, a subnormal,
/// and values past the exp overflow (88.7) and underflow (-104) edges mixed in.
fn logits(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| match i % 11 {
            3 => 0.0,
            7 => [95.0, -110.0, 1e-40, -17.5][(i / 11) % 4],
            _ => ((i * 37) % 23) as f32 * 1.3 - 14.0 + 0.0625 * (i % 5) as f32,
        })
        .collect()
}

/// Hard targets with some ignored, or a mix of hard, ignored and soft targets.
fn targets(n: usize, soft: bool) -> Vec<f32> {
    (0..n)
        .map(|i| match (i % 7, soft) {
            (0 | 3, _) => 1.0,
            (1 | 5, _) => 0.0,
            (2, _) => IGNORE,
            (4, true) => [0.25, 0.7, 0.05, 0.999][(i / 7) % 4],
            (6, true) => [0.5, 0.1, 0.9][(i / 7) % 3],
            (_, false) => [0.0, 1.0][(i / 7) % 2],
            _ => 0.0,
        })
        .collect()
}

fn sigmoid64(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

fn softplus64(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// The scale the f32 evaluation error of the loss and gradient of one element is
/// proportional to, in f64: the loss itself (a product of non-negative factors), and
/// for the gradient the sum of the magnitudes of its terms, with `p - t` counted as
/// `p + t` (every backend forms it from a rounded p, so two backends can disagree by
/// about u p however small the difference is).
fn scales(x: f32, t: f32, gamma: f32, alpha: Alpha, soft: SoftTargets) -> (f64, f64) {
    if t == IGNORE {
        return (0.0, 0.0);
    }
    let (x, t, g) = (f64::from(x), f64::from(t), f64::from(gamma));
    let at = match alpha {
        Alpha::Off => 1.0,
        Alpha::Balanced(a) => f64::from(a) * t + (1.0 - f64::from(a)) * (1.0 - t),
        Alpha::Uniform(a) => f64::from(a),
    };
    let (p, pm) = (sigmoid64(x), sigmoid64(-x));
    let bce = t * softplus64(-x) + (1.0 - t) * softplus64(x);
    if t == 0.0 || t == 1.0 {
        let z = if t == 1.0 { x } else { -x };
        let q = sigmoid64(-z);
        let qg = (-g * softplus64(z)).exp();
        let grad = at * qg * (g * sigmoid64(z) * bce + q);
        return (at * qg * bce, grad);
    }
    let (q, dq) = match soft {
        SoftTargets::Torchvision => (pm * t + p * (1.0 - t), (p * pm * (1.0 - 2.0 * t)).abs()),
        SoftTargets::ExpNegBce => (-(-bce).exp_m1(), (-bce).exp() * (p + t)),
    };
    let qg = q.powf(g);
    (at * qg * bce, at * (g * qg * bce * dq / q + qg * (p + t)))
}

/// `|a - b| <= TOL_U u scale + TOL_ABS`, NaN never passes.
fn close(a: f32, b: f32, scale: f64) -> bool {
    (f64::from(a) - f64::from(b)).abs() <= TOL_U * U * scale + TOL_ABS
}

/// The results of every call on one input.
#[derive(Clone, Debug)]
struct Results {
    loss: Vec<f32>,
    grad: Vec<f32>,
    sum: f32,
    mean: f32,
    fused_sum: f32,
    fused_sum_grad: Vec<f32>,
    fused_mean: f32,
    fused_mean_grad: Vec<f32>,
}

/// Runs every call with x, t and the outputs at the given offsets into guarded,
/// aligned buffers; checks the guards and that the inputs are unchanged.
fn run_all(fl: &Focal, x: &[f32], t: &[f32], ox: usize, ot: usize, oo: usize) -> Results {
    let n = x.len();
    let xb = Buf::holding(x, ox);
    let tb = Buf::holding(t, ot);
    let (x_before, t_before) = (xb.bits(), tb.bits());
    let xs = &xb.0[ox..ox + n];
    let ts = &tb.0[ot..ot + n];
    let ctx = format!("{:?} n={n} offsets x{ox} t{ot} out{oo}", fl.backend());

    let written = |f: &mut dyn FnMut(&mut [f32]) -> f32| -> (f32, Vec<f32>) {
        let mut ob = Buf::filled(GUARD);
        let v = f(&mut ob.0[oo..oo + n]);
        for (i, o) in ob.0.iter().enumerate() {
            if i < oo || i >= oo + n {
                assert_eq!(o.to_bits(), GUARD, "{ctx}: wrote outside the slice at {i}");
            }
        }
        (v, ob.0[oo..oo + n].to_vec())
    };
    let (_, loss) = written(&mut |o| {
        fl.loss(xs, ts, o).expect("valid input");
        0.0
    });
    let (_, grad) = written(&mut |o| {
        fl.grad(xs, ts, o).expect("valid input");
        0.0
    });
    let (fused_sum, fused_sum_grad) =
        written(&mut |o| fl.loss_and_grad(xs, ts, Reduction::Sum, o).expect("valid"));
    let (fused_mean, fused_mean_grad) =
        written(&mut |o| fl.loss_and_grad(xs, ts, Reduction::Mean, o).expect("valid"));
    let sum = fl.loss_reduced(xs, ts, Reduction::Sum).expect("valid");
    let mean = fl.loss_reduced(xs, ts, Reduction::Mean).expect("valid");
    assert_eq!(xb.bits(), x_before, "{ctx}: logits were written");
    assert_eq!(tb.bits(), t_before, "{ctx}: targets were written");
    Results {
        loss,
        grad,
        sum,
        mean,
        fused_sum,
        fused_sum_grad,
        fused_mean,
        fused_mean_grad,
    }
}

fn focal(gamma: f32, alpha: Alpha, soft: SoftTargets, b: Backend) -> Focal {
    Focal::new(gamma, alpha)
        .expect("valid parameters")
        .soft_targets(soft)
        .with_backend(b)
        .expect("available backend")
}

/// Every (gamma, alpha, soft-target option) combination the tests run.
fn configs() -> Vec<(f32, Alpha, SoftTargets)> {
    let mut v = Vec::new();
    for gamma in [0.0f32, 2.0, 1.5] {
        for alpha in [Alpha::Off, Alpha::Balanced(0.25), Alpha::Uniform(0.25)] {
            for soft in [SoftTargets::Torchvision, SoftTargets::ExpNegBce] {
                v.push((gamma, alpha, soft));
            }
        }
    }
    v
}

#[test]
fn every_backend_matches_scalar_for_every_length_and_offset() {
    let offsets: Vec<(usize, usize, usize)> = (0..OFFSETS)
        .flat_map(|ox| {
            // Targets start at yet another offset.
            (0..OFFSETS).map(move |oo| (ox, (ox + 1 + oo) % OFFSETS, oo))
        })
        .collect();
    compare_with_scalar(0..=MAX_LEN, &offsets);
}

#[test]
fn long_slices_match_scalar() {
    compare_with_scalar(LONG_LENS.into_iter(), &[(0, 0, 0), (1, 2, 3)]);
}

/// Every call on every backend against Scalar, for the given lengths and
/// (logits, targets, output) offsets, every configuration, hard and mixed soft
/// targets.
fn compare_with_scalar(
    lengths: impl Iterator<Item = usize> + Clone,
    offsets: &[(usize, usize, usize)],
) {
    let mut failures = Vec::new();
    let mut checked = 0usize;
    // The largest disagreement seen, in u of the scale (printed with --nocapture).
    let mut worst = (0.0f64, String::new());
    for (gamma, alpha, soft) in configs() {
        for soft_targets in [false, true] {
            for n in lengths.clone() {
                let x = logits(n);
                let t = targets(n, soft_targets);
                let reference =
                    run_all(&focal(gamma, alpha, soft, Backend::Scalar), &x, &t, 0, 0, 0);
                let sc: Vec<(f64, f64)> = (0..n)
                    .map(|i| scales(x[i], t[i], gamma, alpha, soft))
                    .collect();
                let count = t.iter().filter(|&&v| v != IGNORE).count().max(1) as f64;
                let loss_total: f64 = sc.iter().map(|s| s.0).sum();
                for b in Backend::available() {
                    let fl = focal(gamma, alpha, soft, b);
                    for &(ox, ot, oo) in offsets {
                        let r = run_all(&fl, &x, &t, ox, ot, oo);
                        checked += 1;
                        let ctx = format!(
                            "{b:?} gamma={gamma} {alpha:?} {soft:?} soft_targets={soft_targets} \
                                 n={n} offsets x{ox} t{ot} out{oo}"
                        );
                        let mut check = |what: &str, i: usize, got: f32, want: f32, scale: f64| {
                            let err = (f64::from(got) - f64::from(want)).abs();
                            if err > TOL_ABS && err / (U * scale) > worst.0 {
                                worst = (err / (U * scale), format!("{ctx} {what}[{i}]"));
                            }
                            if !close(got, want, scale) {
                                failures.push(format!(
                                    "{ctx} {what}[{i}] x={} t={}: {got:e}, scalar {want:e}",
                                    x.get(i).copied().unwrap_or(f32::NAN),
                                    t.get(i).copied().unwrap_or(f32::NAN),
                                ));
                            }
                        };
                        for (i, &(ls, gs)) in sc.iter().enumerate() {
                            check("loss", i, r.loss[i], reference.loss[i], ls);
                            check("grad", i, r.grad[i], reference.grad[i], gs);
                            check(
                                "fused Sum grad",
                                i,
                                r.fused_sum_grad[i],
                                reference.fused_sum_grad[i],
                                gs,
                            );
                            check(
                                "fused Mean grad",
                                i,
                                r.fused_mean_grad[i],
                                reference.fused_mean_grad[i],
                                gs / count,
                            );
                        }
                        // Sums of non-negative terms: relative agreement of the
                        // terms carries over; the summation itself adds ~2 u.
                        check("Sum", usize::MAX, r.sum, reference.sum, loss_total);
                        check(
                            "fused Sum",
                            usize::MAX,
                            r.fused_sum,
                            reference.fused_sum,
                            loss_total,
                        );
                        check(
                            "Mean",
                            usize::MAX,
                            r.mean,
                            reference.mean,
                            loss_total / count,
                        );
                        check(
                            "fused Mean",
                            usize::MAX,
                            r.fused_mean,
                            reference.fused_mean,
                            loss_total / count,
                        );
                    }
                }
            }
        }
    }
    println!(
        "largest disagreement with Scalar: {:.2} u ({})",
        worst.0, worst.1
    );
    assert!(checked > 0);
    assert!(
        failures.is_empty(),
        "{} disagreements with Scalar (of {checked} runs), first 40:\n{}",
        failures.len(),
        failures[..failures.len().min(40)].join("\n")
    );
}

/// Unary building blocks on every backend against Scalar, every length and offset.
#[test]
fn unary_functions_match_scalar() {
    type Unary = fn(Backend, &[f32], &mut [f32]) -> Result<(), focal::Error>;
    let ops: [(&str, Unary); 3] = [
        ("sigmoid", Backend::sigmoid),
        ("softplus", Backend::softplus),
        ("log_sigmoid", Backend::log_sigmoid),
    ];
    for (name, op) in ops {
        for n in 0..=MAX_LEN {
            let x = logits(n);
            let mut want = vec![0.0f32; n];
            op(Backend::Scalar, &x, &mut want).expect("same length");
            for b in Backend::available() {
                for ox in 0..OFFSETS {
                    for oo in 0..OFFSETS {
                        let xb = Buf::holding(&x, ox);
                        let before = xb.bits();
                        let mut ob = Buf::filled(GUARD);
                        op(b, &xb.0[ox..ox + n], &mut ob.0[oo..oo + n]).expect("same length");
                        assert_eq!(xb.bits(), before, "{name} {b:?}: input written");
                        for (i, o) in ob.0.iter().enumerate() {
                            if i < oo || i >= oo + n {
                                assert_eq!(o.to_bits(), GUARD, "{name} {b:?} n={n}: wrote at {i}");
                            }
                        }
                        for i in 0..n {
                            let (got, w) = (ob.0[oo + i], want[i]);
                            // Each function is documented within 2 ULP: two backends
                            // within 4 ULP = 8 u of the value (16 u at worst binade).
                            assert!(
                                (f64::from(got) - f64::from(w)).abs()
                                    <= 16.0 * U * f64::from(w).abs() + TOL_ABS,
                                "{name} {b:?} n={n} x={}: {got:e}, scalar {w:e}",
                                x[i]
                            );
                        }
                    }
                }
            }
        }
    }
}

/// An element in the tail of a slice gets the same bits as the same element in a
/// full vector. Every rotation of a 37-element slice is computed: each element
/// visits every position (paired body, single body, tail) while the slice's set of
/// targets, and so the kernel chosen, stays the same.
#[test]
fn tail_equals_body_bit_for_bit() {
    let n = 37;
    let x = logits(n);
    for soft_targets in [false, true] {
        let t = targets(n, soft_targets);
        for (gamma, alpha, soft) in configs() {
            for b in Backend::available() {
                let fl = focal(gamma, alpha, soft, b);
                let base = run_all(&fl, &x, &t, 0, 0, 0);
                for r in 1..n {
                    let mut xr = x.clone();
                    let mut tr = t.clone();
                    xr.rotate_left(r);
                    tr.rotate_left(r);
                    let rot = run_all(&fl, &xr, &tr, 0, 0, 0);
                    for k in 0..n {
                        let i = (k + r) % n;
                        let ctx = format!(
                            "{b:?} gamma={gamma} {alpha:?} {soft:?} x={} t={}: element {i} at \
                             position {k} vs {i}",
                            x[i], t[i]
                        );
                        assert_eq!(rot.loss[k].to_bits(), base.loss[i].to_bits(), "loss {ctx}");
                        assert_eq!(rot.grad[k].to_bits(), base.grad[i].to_bits(), "grad {ctx}");
                        assert_eq!(
                            rot.fused_mean_grad[k].to_bits(),
                            base.fused_mean_grad[i].to_bits(),
                            "fused Mean grad {ctx}"
                        );
                    }
                }
            }
        }
    }
}
