//! The softmax focal loss API: validation and errors, the ignore label, reductions
//! and their consistency, gamma 0 = cross entropy, C = 2 = the sigmoid focal loss
//! on the logit difference, infinities and NaN, every tail length and misaligned
//! starts on every backend, determinism.

#[allow(dead_code)]
#[path = "common/measure.rs"]
mod measure;
#[path = "common/rng.rs"]
mod rng;

use focal::{Alpha, Backend, ClassAlpha, Error, Focal, Reduction, SoftmaxFocal, IGNORE_INDEX};
use measure::ulp_error;
use rng::Rng;

/// The accuracy bar of the softmax loss and gradient (ULP).
const BAR: f64 = 8.0;

fn on(backend: Backend, gamma: f32, alpha: ClassAlpha<'_>) -> SoftmaxFocal<'_> {
    SoftmaxFocal::new(gamma, alpha)
        .and_then(|f| f.with_backend(backend))
        .expect("valid parameters, available backend")
}

/// Inputs drawn from `common/rng.rs`'s SplitMix64.
impl Rng {
    fn logits(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| (self.unit() * 2.0 - 1.0) * scale).collect()
    }
    fn labels(&mut self, n: usize, c: usize, ignored: f32) -> Vec<i32> {
        (0..n)
            .map(|_| {
                if self.unit() < ignored {
                    IGNORE_INDEX
                } else {
                    ((self.unit() * c as f32) as usize).min(c - 1) as i32
                }
            })
            .collect()
    }
}

#[test]
fn constructor_validates() {
    assert_eq!(
        SoftmaxFocal::new(-1.0, ClassAlpha::Off),
        Err(Error::InvalidGamma(-1.0))
    );
    assert!(matches!(
        SoftmaxFocal::new(f32::NAN, ClassAlpha::Off),
        Err(Error::InvalidGamma(g)) if g.is_nan()
    ));
    assert_eq!(
        SoftmaxFocal::new(f32::INFINITY, ClassAlpha::Off),
        Err(Error::InvalidGamma(f32::INFINITY))
    );
    assert_eq!(
        SoftmaxFocal::new(2.0, ClassAlpha::Uniform(1.5)),
        Err(Error::InvalidAlpha(1.5))
    );
    assert_eq!(
        SoftmaxFocal::new(2.0, ClassAlpha::PerClass(&[0.5, 3.0, -0.1])),
        Err(Error::InvalidClassAlpha {
            class: 2,
            value: -0.1
        })
    );
    assert!(matches!(
        SoftmaxFocal::new(2.0, ClassAlpha::PerClass(&[0.5, f32::NAN])),
        Err(Error::InvalidClassAlpha { class: 1, .. })
    ));
    assert_eq!(
        SoftmaxFocal::new(2.0, ClassAlpha::PerClass(&[f32::INFINITY])),
        Err(Error::InvalidClassAlpha {
            class: 0,
            value: f32::INFINITY
        })
    );
    let w = [0.25f32, 2.0];
    let fl = SoftmaxFocal::new(1.5, ClassAlpha::PerClass(&w)).expect("valid");
    assert_eq!(fl.gamma(), 1.5);
    assert_eq!(fl.alpha(), ClassAlpha::PerClass(&w));
    for b in Backend::ALL {
        match fl.with_backend(b) {
            Ok(f) => assert_eq!(f.backend(), b),
            Err(e) => assert_eq!(e, Error::BackendUnavailable(b)),
        }
    }
}

#[test]
fn shape_and_label_errors_name_the_slice_and_row() {
    let fl = SoftmaxFocal::new(2.0, ClassAlpha::Off).expect("valid");
    let x = [0.0f32; 6];
    let mut out = [0.0f32; 2];
    let mut grad = [0.0f32; 6];
    assert_eq!(fl.loss(&x, &[0, 1], 0, &mut out), Err(Error::NoClasses));
    assert_eq!(
        fl.loss(&x[..5], &[0, 1], 3, &mut out),
        Err(Error::ShapeMismatch {
            slice: "logits",
            expected: 6,
            actual: 5
        })
    );
    assert_eq!(
        fl.loss(&x, &[0, 1], 3, &mut out[..1]),
        Err(Error::ShapeMismatch {
            slice: "out",
            expected: 2,
            actual: 1
        })
    );
    assert_eq!(
        fl.loss_and_grad(&x, &[0, 1], 3, Reduction::Sum, &mut grad[..4]),
        Err(Error::ShapeMismatch {
            slice: "grad",
            expected: 6,
            actual: 4
        })
    );
    // N * C overflowing usize.
    assert_eq!(
        fl.loss_reduced(&x, &[0, 1], usize::MAX, Reduction::Sum),
        Err(Error::ShapeMismatch {
            slice: "logits",
            expected: usize::MAX,
            actual: 6
        })
    );
    let pc = SoftmaxFocal::new(2.0, ClassAlpha::PerClass(&[0.5, 0.5])).expect("valid");
    assert_eq!(
        pc.loss(&x, &[0, 1], 3, &mut out),
        Err(Error::ShapeMismatch {
            slice: "alpha",
            expected: 3,
            actual: 2
        })
    );
    for (labels, row, label) in [
        ([0, 3], 1, 3),
        ([-1, 0], 0, -1),
        ([0, -101], 1, -101),
        ([i32::MIN, 0], 0, i32::MIN),
        ([1, i32::MAX], 1, i32::MAX),
    ] {
        let want = Err(Error::InvalidLabel { row, label });
        assert_eq!(fl.loss(&x, &labels, 3, &mut out), want);
        assert_eq!(
            fl.loss_reduced(&x, &labels, 3, Reduction::Mean).map(|_| ()),
            want
        );
        assert_eq!(
            fl.loss_and_grad(&x, &labels, 3, Reduction::Sum, &mut grad)
                .map(|_| ()),
            want
        );
    }
    // The first bad row of a long slice (past the scan's block size).
    let n = 10_000;
    let mut labels = vec![1i32; n];
    labels[7777] = 5;
    labels[9000] = -7;
    let xs = vec![0.0f32; n * 2];
    assert_eq!(
        fl.loss_reduced(&xs, &labels, 2, Reduction::Sum),
        Err(Error::InvalidLabel {
            row: 7777,
            label: 5
        })
    );
    assert_eq!(
        fl.loss_reduced(&x, &[0, 1], 3, Reduction::DivideBy(0.0)),
        Err(Error::InvalidNormalizer(0.0))
    );
    for e in [
        Error::NoClasses,
        Error::InvalidLabel { row: 4, label: 9 },
        Error::ShapeMismatch {
            slice: "alpha",
            expected: 3,
            actual: 2,
        },
        Error::InvalidClassAlpha {
            class: 1,
            value: -1.0,
        },
    ] {
        assert!(!e.to_string().is_empty());
    }
    assert!(Error::InvalidLabel { row: 4, label: 9 }
        .to_string()
        .contains("row 4"));
}

#[test]
fn empty_and_all_ignored() {
    for backend in Backend::available() {
        let fl = on(backend, 2.0, ClassAlpha::Off);
        let mut none: [f32; 0] = [];
        assert_eq!(fl.loss(&[], &[], 5, &mut none), Ok(()));
        assert_eq!(fl.loss_reduced(&[], &[], 5, Reduction::Mean), Ok(0.0));
        assert_eq!(
            fl.loss_and_grad(&[], &[], 5, Reduction::Sum, &mut none),
            Ok(0.0)
        );
        let x = [1.0f32, f32::NAN, 3.0, -2.0, 0.5, f32::INFINITY];
        let labels = [IGNORE_INDEX; 2];
        let mut grad = [7.0f32; 6];
        assert_eq!(
            fl.loss_and_grad(&x, &labels, 3, Reduction::Mean, &mut grad),
            Ok(0.0)
        );
        assert_eq!(grad, [0.0; 6]);
        let mut grad = [7.0f32; 6];
        assert_eq!(
            fl.loss_and_grad(&x, &labels, 3, Reduction::Sum, &mut grad),
            Ok(0.0)
        );
        assert_eq!(grad, [0.0; 6]);
        let mut out = [7.0f32; 2];
        fl.loss(&x, &labels, 3, &mut out).expect("valid");
        assert_eq!(out, [0.0; 2]);
    }
}

/// Ignored rows contribute nothing (whatever their logits, NaN and inf included),
/// are left out of `Mean`, and get a zero gradient row; the other rows are
/// unaffected.
#[test]
fn ignored_rows_contribute_nothing() {
    let mut rng = Rng(11);
    for backend in Backend::available() {
        for c in [1usize, 2, 3, 8, 9, 80] {
            let n = 37;
            let mut x = rng.logits(n * c, 6.0);
            let labels = rng.labels(n, c, 0.3);
            for (r, &l) in labels.iter().enumerate() {
                if l == IGNORE_INDEX {
                    x[r * c] = if r % 2 == 0 { f32::NAN } else { f32::INFINITY };
                }
            }
            let kept: Vec<usize> = (0..n).filter(|&r| labels[r] != IGNORE_INDEX).collect();
            let xk: Vec<f32> = kept
                .iter()
                .flat_map(|&r| x[r * c..(r + 1) * c].to_vec())
                .collect();
            let lk: Vec<i32> = kept.iter().map(|&r| labels[r]).collect();
            let fl = on(backend, 2.0, ClassAlpha::Uniform(0.5));

            let mut out = vec![0.0f32; n];
            fl.loss(&x, &labels, c, &mut out).expect("valid");
            let mut outk = vec![0.0f32; kept.len()];
            fl.loss(&xk, &lk, c, &mut outk).expect("valid");
            for (i, &r) in kept.iter().enumerate() {
                assert_eq!(
                    out[r].to_bits(),
                    outk[i].to_bits(),
                    "{backend:?} C={c} row {r}"
                );
            }
            for r in (0..n).filter(|&r| labels[r] == IGNORE_INDEX) {
                assert_eq!(out[r], 0.0);
            }

            let mut grad = vec![0.0f32; n * c];
            let mean = fl
                .loss_and_grad(&x, &labels, c, Reduction::Mean, &mut grad)
                .expect("valid");
            let mut gradk = vec![0.0f32; kept.len() * c];
            let meank = fl
                .loss_and_grad(&xk, &lk, c, Reduction::Mean, &mut gradk)
                .expect("valid");
            assert!(
                ulp_error(mean, f64::from(meank), f64::from(meank)) <= 1.0,
                "{mean} vs {meank}"
            );
            for (i, &r) in kept.iter().enumerate() {
                assert_eq!(&grad[r * c..(r + 1) * c], &gradk[i * c..(i + 1) * c]);
            }
            for r in (0..n).filter(|&r| labels[r] == IGNORE_INDEX) {
                assert!(grad[r * c..(r + 1) * c].iter().all(|&g| g == 0.0));
            }
        }
    }
}

/// Sum of the per-row losses, `Sum`, `Mean` (over non-ignored rows), `DivideBy`, and
/// the fused call agree; the gradient of `Mean` is the gradient of `Sum` over the
/// number of non-ignored rows.
#[test]
fn reductions_agree() {
    let mut rng = Rng(5);
    let w: Vec<f32> = (0..80).map(|_| rng.unit()).collect();
    for backend in Backend::available() {
        for c in [2usize, 3, 8, 17, 80] {
            for alpha in [
                ClassAlpha::Off,
                ClassAlpha::Uniform(0.25),
                ClassAlpha::PerClass(&w[..c]),
            ] {
                let n = 301;
                let x = rng.logits(n * c, 8.0);
                let labels = rng.labels(n, c, 0.1);
                let active = labels.iter().filter(|&&l| l != IGNORE_INDEX).count();
                let fl = on(backend, 1.5, alpha);
                let mut out = vec![0.0f32; n];
                fl.loss(&x, &labels, c, &mut out).expect("valid");
                let exact: f64 = measure::exact_sum(out.iter().map(|&v| f64::from(v)));
                let sum = fl
                    .loss_reduced(&x, &labels, c, Reduction::Sum)
                    .expect("valid");
                let mean = fl
                    .loss_reduced(&x, &labels, c, Reduction::Mean)
                    .expect("valid");
                let div = fl
                    .loss_reduced(&x, &labels, c, Reduction::DivideBy(7.0))
                    .expect("valid");
                let mut gs = vec![0.0f32; n * c];
                let mut gm = vec![0.0f32; n * c];
                let fsum = fl
                    .loss_and_grad(&x, &labels, c, Reduction::Sum, &mut gs)
                    .expect("valid");
                let fmean = fl
                    .loss_and_grad(&x, &labels, c, Reduction::Mean, &mut gm)
                    .expect("valid");
                assert!(
                    ulp_error(sum, exact, exact) <= 1.0,
                    "{backend:?} C={c}: {sum} vs {exact}"
                );
                assert_eq!(sum.to_bits(), fsum.to_bits());
                assert_eq!(mean.to_bits(), fmean.to_bits());
                let m = exact / active as f64;
                assert!(ulp_error(mean, m, m) <= 1.0, "{mean} vs {m}");
                let d = exact / 7.0;
                assert!(ulp_error(div, d, d) <= 1.0, "{div} vs {d}");
                // Both are within the bar of their references (tests/softmax_accuracy.rs).
                for (a, b) in gs.iter().zip(&gm) {
                    let want = f64::from(*a) / active as f64;
                    assert!(ulp_error(*b, want, want) <= 2.0 * BAR, "{b} vs {want}");
                }
                // The gradient of each row sums to 0 (softmax invariance).
                for r in 0..n {
                    let row = &gs[r * c..(r + 1) * c];
                    let scale: f32 = row.iter().map(|v| v.abs()).sum();
                    let total: f32 = row.iter().sum();
                    assert!(total.abs() <= scale * 1e-5 + 1e-30, "row {r}: {row:?}");
                }
            }
        }
    }
}

/// `ln(sum_j e^(z_j)) - z_y` in f64: `(m - z_y) + ln(1 + sum_{j != argmax} e^(z_j - m))`,
/// two non-negative terms, `ln_1p` so that `p_y -> 1` keeps its digits.
fn cross_entropy(z: &[f32], y: usize) -> f64 {
    let (am, m) = z
        .iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |(bi, bm), (i, &v)| {
            if f64::from(v) > bm {
                (i, f64::from(v))
            } else {
                (bi, bm)
            }
        });
    let t: f64 = z
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != am)
        .map(|(_, &v)| (f64::from(v) - m).exp())
        .sum();
    (m - f64::from(z[y])) + t.ln_1p()
}

/// Gamma 0 is cross entropy (and its gradient softmax - onehot), alpha scaling it.
#[test]
fn gamma_zero_is_cross_entropy() {
    let mut rng = Rng(3);
    for backend in Backend::available() {
        for c in [1usize, 2, 3, 8, 33, 1000] {
            let n = 40;
            let x = rng.logits(n * c, 20.0);
            let labels = rng.labels(n, c, 0.0);
            let fl = on(backend, 0.0, ClassAlpha::Off);
            let mut out = vec![0.0f32; n];
            let mut grad = vec![0.0f32; n * c];
            fl.loss(&x, &labels, c, &mut out).expect("valid");
            fl.loss_and_grad(&x, &labels, c, Reduction::Sum, &mut grad)
                .expect("valid");
            for r in 0..n {
                let z = &x[r * c..(r + 1) * c];
                let y = labels[r] as usize;
                let ce = cross_entropy(z, y);
                assert!(
                    ulp_error(out[r], ce, ce) <= BAR,
                    "{backend:?} C={c}: {} vs {ce}",
                    out[r]
                );
                let m = z
                    .iter()
                    .fold(f64::NEG_INFINITY, |a, &v| a.max(f64::from(v)));
                let s: f64 = z.iter().map(|&v| (f64::from(v) - m).exp()).sum();
                for j in 0..c {
                    let p = (f64::from(z[j]) - m).exp() / s;
                    // p - 1 for the label: 1 - p_y as the sum of the others.
                    let want = if j == y {
                        -z.iter()
                            .enumerate()
                            .filter(|&(i, _)| i != y)
                            .map(|(_, &v)| (f64::from(v) - m).exp())
                            .sum::<f64>()
                            / s
                    } else {
                        p
                    };
                    let got = grad[r * c + j];
                    assert!(
                        ulp_error(got, want, want) <= BAR,
                        "{backend:?} C={c} j={j}: {got} vs {want}"
                    );
                }
            }
        }
    }
}

/// With two classes, `softmax([z0, z1])_1 = sigmoid(z1 - z0)`: the softmax focal loss
/// with a uniform alpha is the sigmoid focal loss (`Alpha::Uniform`) of the logit
/// difference, and `dL/dz1 = -dL/dz0 = dFL/dx`. Logits `[0, x]` make the difference
/// exact; both are within their bars of the truth, so they agree within twice it.
#[test]
fn two_classes_match_the_sigmoid_loss() {
    let xs: Vec<f32> = (-400..=400)
        .map(|i| i as f32 * 0.25)
        .chain([1e-6, -1e-6, 3e-3, 87.0, -87.0, 103.0, -103.0, 1e4, -1e4])
        .collect();
    let mut worst = (0.0f64, 0.0f64);
    for backend in Backend::available() {
        for gamma in [0.0f32, 0.5, 1.0, 2.0, 3.0, 4.7] {
            for a in [1.0f32, 0.25] {
                let sm = on(backend, gamma, ClassAlpha::Uniform(a));
                let sg = Focal::new(gamma, Alpha::Uniform(a))
                    .and_then(|f| f.with_backend(backend))
                    .expect("valid");
                for label in [0i32, 1] {
                    let logits: Vec<f32> = xs.iter().flat_map(|&x| [0.0, x]).collect();
                    let labels = vec![label; xs.len()];
                    let targets = vec![label as f32; xs.len()];
                    let mut l_sm = vec![0.0f32; xs.len()];
                    let mut l_sg = vec![0.0f32; xs.len()];
                    let mut g_sm = vec![0.0f32; 2 * xs.len()];
                    let mut g_sg = vec![0.0f32; xs.len()];
                    sm.loss(&logits, &labels, 2, &mut l_sm).expect("valid");
                    sm.loss_and_grad(&logits, &labels, 2, Reduction::Sum, &mut g_sm)
                        .expect("valid");
                    sg.loss(&xs, &targets, &mut l_sg).expect("valid");
                    sg.grad(&xs, &targets, &mut g_sg).expect("valid");
                    for i in 0..xs.len() {
                        let el = ulp_error(l_sm[i], f64::from(l_sg[i]), f64::from(l_sg[i]));
                        let eg1 =
                            ulp_error(g_sm[2 * i + 1], f64::from(g_sg[i]), f64::from(g_sg[i]));
                        let eg0 = ulp_error(-g_sm[2 * i], f64::from(g_sg[i]), f64::from(g_sg[i]));
                        worst.0 = worst.0.max(el);
                        worst.1 = worst.1.max(eg0.max(eg1));
                        assert!(
                            el <= 2.0 * BAR && eg0 <= 2.0 * BAR && eg1 <= 2.0 * BAR,
                            "{backend:?} gamma {gamma} alpha {a} label {label} x {}: loss {} vs {}, \
                             grad ({}, {}) vs {}",
                            xs[i],
                            l_sm[i],
                            l_sg[i],
                            g_sm[2 * i],
                            g_sm[2 * i + 1],
                            g_sg[i]
                        );
                    }
                }
            }
        }
    }
    println!(
        "C = 2 vs sigmoid: max difference loss {:.2} ULP, gradient {:.2} ULP",
        worst.0, worst.1
    );
}

/// Infinite logits give the limits; NaN logits give NaN for their row only.
#[test]
fn infinities_and_nan() {
    let inf = f32::INFINITY;
    for backend in Backend::available() {
        for c in [3usize, 12] {
            for gamma in [0.0f32, 0.5, 2.0, 4.7] {
                let fl = on(backend, gamma, ClassAlpha::Off);
                let row = |v: &[(usize, f32)]| {
                    let mut r: Vec<f32> = (0..c).map(|j| j as f32 * 0.5 - 1.0).collect();
                    for &(j, x) in v {
                        r[j] = x;
                    }
                    r
                };
                // +inf at the label: p_y = 1, loss 0, gradient 0.
                let cases: Vec<(Vec<f32>, i32)> = vec![
                    (row(&[(1, inf)]), 1),
                    (row(&[(2, inf)]), 0),
                    (row(&[(0, -inf)]), 0),
                    (row(&[(0, -inf)]), 2),
                    (row(&[(1, f32::NAN)]), 0),
                    (row(&[]), 2),
                ];
                let x: Vec<f32> = cases.iter().flat_map(|(r, _)| r.clone()).collect();
                let labels: Vec<i32> = cases.iter().map(|&(_, l)| l).collect();
                let n = labels.len();
                let mut out = vec![0.0f32; n];
                let mut grad = vec![0.0f32; n * c];
                fl.loss(&x, &labels, c, &mut out).expect("valid");
                fl.loss_and_grad(&x, &labels, c, Reduction::Sum, &mut grad)
                    .expect("valid");
                let g = |r: usize| &grad[r * c..(r + 1) * c];
                let at = format!("{backend:?} C={c} gamma={gamma}");
                assert_eq!(out[0], 0.0, "{at}");
                assert!(g(0).iter().all(|&v| v == 0.0), "{at}: {:?}", g(0));
                // +inf elsewhere: p_y = 0, loss inf, gradient alpha (p - onehot).
                assert_eq!(out[1], inf, "{at}");
                let near = |v: f32, want: f64| ulp_error(v, want, want) <= BAR;
                assert!(
                    near(g(1)[0], -1.0) && near(g(1)[2], 1.0),
                    "{at}: {:?}",
                    g(1)
                );
                assert!(g(1)
                    .iter()
                    .enumerate()
                    .all(|(j, &v)| j == 0 || j == 2 || v == 0.0));
                // -inf at the label: loss inf, finite gradient.
                assert_eq!(out[2], inf, "{at}");
                assert!(g(2).iter().all(|v| v.is_finite()), "{at}: {:?}", g(2));
                assert!(near(g(2)[0], -1.0), "{at}: {:?}", g(2));
                // -inf elsewhere: that class has probability 0 and gradient 0.
                assert!(out[3].is_finite(), "{at}");
                assert_eq!(g(3)[0], 0.0, "{at}");
                assert!(g(3).iter().all(|v| v.is_finite()));
                // NaN: that row is NaN, the others are not touched by it.
                assert!(out[4].is_nan(), "{at}");
                assert!(g(4).iter().all(|v| v.is_nan()), "{at}: {:?}", g(4));
                assert!(out[5].is_finite() && out[5] > 0.0, "{at}");
                // Finite logits whose differences overflow: e^(z - m) = 0 for the
                // far ones, a loss that overflows to inf, finite gradients.
                let mut huge = row(&[(0, 3e38), (1, -3e38)]);
                huge.extend(row(&[(0, 3e38), (1, -3e38)]));
                let mut o = [0.0f32; 2];
                let mut hg = vec![0.0f32; 2 * c];
                fl.loss(&huge, &[0, 1], c, &mut o).expect("valid");
                fl.loss_and_grad(&huge, &[0, 1], c, Reduction::Sum, &mut hg)
                    .expect("valid");
                assert_eq!(o[0], 0.0, "{at}");
                assert_eq!(o[1], inf, "{at}");
                assert!(hg.iter().all(|v| v.is_finite()), "{at}: {hg:?}");
                assert!(hg[..c].iter().all(|&v| v == 0.0), "{at}: {hg:?}");
                assert!(near(hg[c], 1.0) && near(hg[c + 1], -1.0), "{at}: {hg:?}");
            }
        }
    }
}

/// Every backend, every row count 0..=2*LANES+1 and class counts around both
/// drivers' edges, misaligned starts: within the bar of the scalar backend's result
/// doubled (both are within the bar of the truth).
#[test]
fn tails_and_misaligned_starts_match_scalar() {
    let mut rng = Rng(17);
    let pool = rng.logits(40 * 40 + 8, 12.0);
    for c in [1usize, 2, 3, 5, 8, 9, 16, 17, 31, 33] {
        for n in 0..=33usize {
            for offset in [0usize, 1, 3] {
                let x = &pool[offset..offset + n * c];
                let labels = rng.labels(n, c, 0.15);
                let reference = on(Backend::Scalar, 2.0, ClassAlpha::Off);
                let mut want_l = vec![0.0f32; n];
                let mut want_g = vec![0.0f32; n * c + 1];
                reference.loss(x, &labels, c, &mut want_l).expect("valid");
                let want_sum = reference
                    .loss_and_grad(x, &labels, c, Reduction::Mean, &mut want_g[1..])
                    .expect("valid");
                for backend in Backend::available() {
                    let fl = on(backend, 2.0, ClassAlpha::Off);
                    let mut out = vec![0.0f32; n];
                    // A misaligned gradient too.
                    let mut grad = vec![0.0f32; n * c + 1];
                    fl.loss(x, &labels, c, &mut out).expect("valid");
                    let sum = fl
                        .loss_and_grad(x, &labels, c, Reduction::Mean, &mut grad[1..])
                        .expect("valid");
                    let at = format!("{backend:?} C={c} N={n} offset {offset}");
                    for (a, b) in out.iter().zip(&want_l) {
                        assert!(
                            ulp_error(*a, f64::from(*b), f64::from(*b)) <= 2.0 * BAR,
                            "{at}: {a} vs {b}"
                        );
                    }
                    for (a, b) in grad.iter().zip(&want_g) {
                        assert!(
                            ulp_error(*a, f64::from(*b), f64::from(*b)) <= 2.0 * BAR,
                            "{at}: {a} vs {b}"
                        );
                    }
                    assert!(
                        ulp_error(sum, f64::from(want_sum), f64::from(want_sum)) <= 2.0 * BAR,
                        "{at}: {sum} vs {want_sum}"
                    );
                }
            }
        }
    }
}

/// The same input gives the same bits, call after call.
#[test]
fn deterministic() {
    let mut rng = Rng(23);
    for backend in Backend::available() {
        for c in [3usize, 80] {
            let n = 1000;
            let x = rng.logits(n * c, 5.0);
            let labels = rng.labels(n, c, 0.05);
            let fl = on(backend, 4.7, ClassAlpha::Off);
            let mut g1 = vec![0.0f32; n * c];
            let mut g2 = vec![0.0f32; n * c];
            let a = fl
                .loss_and_grad(&x, &labels, c, Reduction::Mean, &mut g1)
                .expect("valid");
            let b = fl
                .loss_and_grad(&x, &labels, c, Reduction::Mean, &mut g2)
                .expect("valid");
            assert_eq!(a.to_bits(), b.to_bits());
            assert!(g1.iter().zip(&g2).all(|(p, q)| p.to_bits() == q.to_bits()));
        }
    }
}

/// A per-class alpha with every class equal gives what `Uniform` gives, and
/// `Uniform(a)` is `a` times `Off` (within 2 ULP: `a` enters with one more
/// rounding).
#[test]
fn alpha_forms_agree() {
    let mut rng = Rng(29);
    for backend in Backend::available() {
        for c in [3usize, 40] {
            let n = 200;
            let x = rng.logits(n * c, 6.0);
            let labels = rng.labels(n, c, 0.0);
            let w = vec![0.3f32; c];
            let mut outs = Vec::new();
            for alpha in [
                ClassAlpha::Off,
                ClassAlpha::Uniform(0.3),
                ClassAlpha::PerClass(&w),
            ] {
                let mut out = vec![0.0f32; n];
                on(backend, 2.0, alpha)
                    .loss(&x, &labels, c, &mut out)
                    .expect("valid");
                outs.push(out);
            }
            for ((&off, &uniform), &per_class) in outs[0].iter().zip(&outs[1]).zip(&outs[2]) {
                let want = f64::from(off) * f64::from(0.3f32);
                assert!(ulp_error(uniform, want, want) <= 2.0, "{uniform} vs {want}");
                assert_eq!(uniform.to_bits(), per_class.to_bits());
            }
        }
    }
}

/// `(loss, gradient)` of one row in f64 (`alpha_y` and the scale applied), the same
/// formulas as `tests/softmax_accuracy.rs`'s reference: `q = S_o / S`,
/// `-g = q^gamma (1 + gamma (e_y / S_o) nll)`.
fn reference_row(z: &[f32], y: usize, gamma: f64, alpha: f64, scale: f64) -> (f64, Vec<f64>) {
    let (am, m) = z
        .iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |(bi, bm), (i, &v)| {
            if f64::from(v) > bm {
                (i, f64::from(v))
            } else {
                (bi, bm)
            }
        });
    let e: Vec<f64> = z.iter().map(|&v| (f64::from(v) - m).exp()).collect();
    let t: f64 = e
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != am)
        .map(|(_, v)| v)
        .sum();
    let so: f64 = e
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != y)
        .map(|(_, v)| v)
        .sum();
    let s = 1.0 + t;
    let nll = (m - f64::from(z[y])) + t.ln_1p();
    let q = so / s;
    let qg = if gamma == 0.0 { 1.0 } else { q.powf(gamma) };
    let ratio = if so > 0.0 { e[y] * nll / so } else { 1.0 };
    let neg_g = qg * (1.0 + gamma * ratio);
    let grad = (0..z.len())
        .map(|j| {
            if j == y {
                -alpha * scale * neg_g * q
            } else {
                alpha * scale * neg_g * e[j] / s
            }
        })
        .collect();
    (alpha * qg * nll, grad)
}

/// Extreme but valid parameters: a class weight of 1e30 (and a normaliser) lifts
/// probabilities far below the f32 range to normal gradient entries, which must not
/// be flushed; a weight of 3e38 must not overflow an intermediate; a zero weight
/// times an infinite `nll` is 0, not NaN; an infinite row loss makes `Sum` +inf
/// (not NaN); row losses whose sum exceeds `f32::MAX` still give a finite `Mean`.
#[test]
fn extreme_weights_and_sums() {
    // ULP error; a reference that overflows f32 wants the infinity.
    let ulp = |got: f32, want: f64| {
        if (want as f32).is_infinite() {
            if got == want as f32 {
                0.0
            } else {
                f64::INFINITY
            }
        } else {
            ulp_error(got, want, want)
        }
    };
    for backend in Backend::available() {
        for c in [3usize, 18, 40] {
            // The label far below the max: p_y ~ e^-112, the other far classes too.
            let mut z: Vec<f32> = (0..c).map(|j| (j % 5) as f32 * 0.25).collect();
            z[0] = 8.94;
            z[1] = -103.06;
            z[c - 1] = -103.06;
            let y = 1usize;
            let mut w = vec![1e-45f32; c];
            w[y] = 1e30;
            for (gamma, reduction, scale) in [
                (4.3f32, Reduction::DivideBy(537.0), 1.0 / 537.0),
                (2.0, Reduction::Sum, 1.0),
                (0.0, Reduction::DivideBy(0.5), 2.0),
            ] {
                let fl = on(backend, gamma, ClassAlpha::PerClass(&w));
                let mut g = vec![0.0f32; c];
                fl.loss_and_grad(&z, &[y as i32], c, reduction, &mut g)
                    .expect("valid");
                let (_, want) = reference_row(&z, y, f64::from(gamma), 1e30, scale);
                for j in 0..c {
                    assert!(
                        ulp(g[j], want[j]) <= 2.0 * BAR,
                        "{backend:?} C={c} gamma {gamma} class {j}: {} vs {}",
                        g[j],
                        want[j]
                    );
                }
            }
            // A weight of 3e38 on a finite loss.
            let mut w = vec![1.0f32; c];
            w[0] = 3e38;
            let zeros = vec![0.0f32; c];
            let fl = on(backend, 2.0, ClassAlpha::PerClass(&w));
            let mut out = [0.0f32];
            let mut g = vec![0.0f32; c];
            fl.loss(&zeros, &[0], c, &mut out).expect("valid");
            let sum = fl
                .loss_and_grad(&zeros, &[0], c, Reduction::Sum, &mut g)
                .expect("valid");
            let (want_l, want_g) = reference_row(&zeros, 0, 2.0, 3e38, 1.0);
            assert!(
                ulp(out[0], want_l) <= BAR,
                "{backend:?} C={c}: {} vs {want_l}",
                out[0]
            );
            assert!(ulp(sum, want_l) <= BAR);
            for j in 0..c {
                assert!(
                    ulp(g[j], want_g[j]) <= BAR,
                    "{backend:?}: {} vs {}",
                    g[j],
                    want_g[j]
                );
            }
        }
        // Zero weight, nll = +inf (or above f32::MAX): loss 0, no NaN.
        let w = [0.0f32, 1.0, 1.0];
        for z in [[f32::NEG_INFINITY, 0.0, 2.0], [-3e38, 3e38, 0.0]] {
            let fl = on(backend, 1.5, ClassAlpha::PerClass(&w));
            let mut out = [1.0f32];
            fl.loss(&z, &[0], 3, &mut out).expect("valid");
            assert_eq!(out[0], 0.0, "{backend:?} {z:?}");
            let mut g = [0.0f32; 3];
            let l = fl
                .loss_and_grad(&z, &[0], 3, Reduction::Sum, &mut g)
                .expect("valid");
            assert_eq!(l, 0.0);
            assert!(g.iter().all(|v| v.is_finite()), "{backend:?} {g:?}");
        }
        let fl = on(backend, 0.0, ClassAlpha::Uniform(-0.0));
        let mut out = [1.0f32];
        fl.loss(&[f32::NEG_INFINITY, 0.0, 2.0], &[0], 3, &mut out)
            .expect("valid");
        assert_eq!(out[0], 0.0, "{backend:?}");
        // One infinite row loss: Sum and Mean are +inf, not NaN (many rows, so that
        // the compensated lane sums see it mid-way).
        for c in [3usize, 20] {
            let n = 100;
            let mut x = vec![0.5f32; n * c];
            x[37 * c] = f32::NEG_INFINITY;
            let labels = vec![0i32; n];
            let fl = on(backend, 2.0, ClassAlpha::Off);
            let mut g = vec![0.0f32; n * c];
            for reduction in [Reduction::Sum, Reduction::Mean] {
                let l = fl.loss_reduced(&x, &labels, c, reduction).expect("valid");
                assert_eq!(l, f32::INFINITY, "{backend:?} C={c}");
                let l = fl
                    .loss_and_grad(&x, &labels, c, reduction, &mut g)
                    .expect("valid");
                assert_eq!(l, f32::INFINITY, "{backend:?} C={c}");
                assert!(g.iter().all(|v| v.is_finite()));
            }
            // Row losses of 1.7e38 each: their sum overflows f32, the mean does not.
            let mut x = vec![0.0f32; n * c];
            for r in 0..n {
                x[r * c] = -1.7e38;
            }
            let mean = fl
                .loss_reduced(&x, &labels, c, Reduction::Mean)
                .expect("valid");
            let want = 1.7e38f64 + (c as f64 - 1.0).ln();
            assert!(
                ulp(mean, want) <= BAR,
                "{backend:?} C={c}: {mean} vs {want}"
            );
            let sum = fl
                .loss_reduced(&x, &labels, c, Reduction::Sum)
                .expect("valid");
            assert_eq!(sum, f32::INFINITY);
        }
    }
}
