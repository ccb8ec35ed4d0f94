//! Every softmax driver on every backend against Scalar, on inputs small enough for
//! Miri (`.ci/run miri` runs this file): rows in lanes (C = 3), short rows (C = 80)
//! and long rows (C = 300), whose fused call scales a batch's gradient rows during
//! the next batch's exp passes, with the row counts around a batch (8 or 16 rows on
//! the vector backends: the next batch shorter, or none) and ignored rows among them
//! (rows the next batch does not scale). The outputs sit between canaries that
//! must stay untouched.

#[allow(dead_code)]
#[path = "common/measure.rs"]
mod measure;
#[path = "common/rng.rs"]
mod rng;

use focal::{Backend, ClassAlpha, Reduction, SoftmaxFocal, IGNORE_INDEX};
use measure::ulp_error;
use rng::Rng;

/// Twice the accuracy bar of the softmax loss and gradient (ULP): two results
/// within the bar of the reference are within this of each other.
const TOLERANCE: f64 = 16.0;
/// What the canaries around an output hold.
const CANARY: f32 = -7.25;

/// `(loss per row, fused Mean loss, gradient)` of one backend, the outputs checked
/// against their canaries.
fn run(backend: Backend, x: &[f32], labels: &[i32], c: usize) -> (Vec<f32>, f32, Vec<f32>) {
    let fl = SoftmaxFocal::new(2.0, ClassAlpha::Off)
        .and_then(|f| f.with_backend(backend))
        .expect("valid parameters, available backend");
    let n = labels.len();
    // Canary, output, canary; the gradient starts one value off its allocation's
    // alignment.
    let mut loss = vec![CANARY; n + 2];
    let mut grad = vec![CANARY; n * c + 2];
    fl.loss(x, labels, c, &mut loss[1..=n]).expect("valid");
    let mean = fl
        .loss_and_grad(x, labels, c, Reduction::Mean, &mut grad[1..=n * c])
        .expect("valid");
    for out in [&loss, &grad] {
        assert!(
            out[0] == CANARY && out[out.len() - 1] == CANARY,
            "{backend:?} C={c} N={n}: a canary was overwritten"
        );
    }
    (loss[1..=n].to_vec(), mean, grad[1..=n * c].to_vec())
}

#[test]
fn every_driver_matches_scalar() {
    let mut rng = Rng(0x5EED);
    for c in [3usize, 80, 300] {
        // Under Miri (interpreted: minutes for the whole list) one count, three
        // batches on the portable backend, the last of one row.
        let counts: &[usize] = if cfg!(miri) {
            &[17]
        } else {
            &[0, 1, 8, 9, 17, 20]
        };
        for &n in counts {
            let x: Vec<f32> = (0..n * c).map(|_| rng.unit() * 16.0 - 8.0).collect();
            let labels: Vec<i32> = (0..n)
                .map(|_| {
                    if rng.unit() < 0.2 {
                        IGNORE_INDEX
                    } else {
                        ((rng.unit() * c as f32) as usize).min(c - 1) as i32
                    }
                })
                .collect();
            let want = run(Backend::Scalar, &x, &labels, c);
            // Scalar is the reference: its own run is checked for canaries and
            // ignored rows only (against itself it could not fail; under Miri its
            // second run was a third of this test's 170 s).
            for backend in Backend::available() {
                let (l, m, g) = if backend == Backend::Scalar {
                    want.clone()
                } else {
                    run(backend, &x, &labels, c)
                };
                let (want_l, want_m, want_g) = &want;
                let at = format!("{backend:?} C={c} N={n}");
                let pairs = l.iter().zip(want_l).chain(g.iter().zip(want_g));
                for (i, (a, b)) in pairs.chain([(&m, want_m)]).enumerate() {
                    assert!(
                        ulp_error(*a, f64::from(*b), f64::from(*b)) <= TOLERANCE,
                        "{at}, output {i}: {a} vs {b}"
                    );
                }
                // Ignored rows: exactly 0, loss and gradient.
                for (r, _) in labels
                    .iter()
                    .enumerate()
                    .filter(|(_, &y)| y == IGNORE_INDEX)
                {
                    assert_eq!(l[r], 0.0, "{at}: ignored row {r}'s loss");
                    assert!(
                        g[r * c..(r + 1) * c].iter().all(|&v| v == 0.0),
                        "{at}: ignored row {r}'s gradient"
                    );
                }
            }
        }
    }
}
