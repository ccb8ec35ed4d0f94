//! The fuzzers' oracles under `cargo test`: the committed seed corpus (`fuzz/corpus/`)
//! replayed through the same checks the fuzz targets run (the files of `fuzz/src/`,
//! compiled here through `#[path]`), and every input a fuzzer ever found, as a test
//! with the bug it found named in a comment.
//!
//! Turning a finding into a test: `cargo +nightly fuzz fmt TARGET ARTIFACT` prints the
//! case as Rust (a `SigmoidCase { .. }`, `SoftmaxCase`, `UnaryCase` or `MisuseCase`
//! literal); paste it into a new `#[test]` below, calling `must_pass(case)`, with a
//! comment naming the bug. A test for a bug not fixed yet is marked
//! `#[ignore = "bug: ..."]` until the fix lands.
//!
//! The checks run on every backend this CPU has (`Backend::available()`).
#![allow(dead_code)]

#[path = "common/measure.rs"]
mod measure;
#[path = "common/reference.rs"]
mod reference;

#[path = "../fuzz/src/bytes.rs"]
mod bytes;
#[path = "../fuzz/src/check.rs"]
mod check;
#[path = "../fuzz/src/misuse_case.rs"]
mod misuse_case;
#[path = "../fuzz/src/sigmoid_case.rs"]
mod sigmoid_case;
#[path = "../fuzz/src/slices.rs"]
mod slices;
#[path = "../fuzz/src/softmax_case.rs"]
mod softmax_case;
#[path = "../fuzz/src/softmax_reference.rs"]
mod softmax_reference;
#[path = "../fuzz/src/unary_case.rs"]
mod unary_case;

use std::fmt::Debug;
use std::path::Path;

#[allow(unused_imports)]
use bytes::{f, fs};
#[allow(unused_imports)]
use focal::{Alpha, Backend, Reduction, SoftTargets};
use misuse_case::MisuseCase;
use sigmoid_case::SigmoidCase;
use softmax_case::SoftmaxCase;
#[allow(unused_imports)]
use softmax_case::Weighting;
use unary_case::UnaryCase;

/// Runs a case's checks; panics with the failures and the case.
fn must_pass<C: Debug>(case: &C, result: Result<(), String>) {
    if let Err(e) = result {
        panic!("\n{e}\n\ncase:\n{case:?}\n");
    }
}

/// Every file of `fuzz/corpus/<target>/` (the committed seeds), decoded and checked.
fn replay(target: &str, check: impl Fn(&[u8]) -> Result<(), String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    assert!(!entries.is_empty(), "no seeds in {}", dir.display());
    let mut failures = Vec::new();
    for p in &entries {
        let data = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        if let Err(e) = check(&data) {
            failures.push(format!("{}:\n{e}", p.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} seeds of {target} fail:\n{}",
        failures.len(),
        entries.len(),
        failures.join("\n\n")
    );
}

#[test]
fn corpus_sigmoid_differential() {
    replay("sigmoid_differential", |d| {
        let c = SigmoidCase::decode(d);
        c.check().map_err(|e| format!("{e}\n{c:?}"))
    });
}

#[test]
fn corpus_softmax_differential() {
    replay("softmax_differential", |d| {
        let c = SoftmaxCase::decode(d);
        c.check().map_err(|e| format!("{e}\n{c:?}"))
    });
}

#[test]
fn corpus_math_functions() {
    replay("math_functions", |d| {
        let c = UnaryCase::decode(d);
        c.check().map_err(|e| format!("{e}\n{c:?}"))
    });
}

#[test]
fn corpus_api_misuse() {
    replay("api_misuse", |d| {
        let c = MisuseCase::decode(d);
        c.check().map_err(|e| format!("{e}\n{c:?}"))
    });
}

/// The seed generator: `FOCAL_WRITE_SEEDS=1 cargo test --test fuzz_regressions
/// write_seeds -- --ignored` rewrites `fuzz/corpus/*/seed-*` from [`seeds`].
#[test]
#[ignore = "writes fuzz/corpus/; run by hand after changing the seeds"]
fn write_seeds() {
    if std::env::var_os("FOCAL_WRITE_SEEDS").is_none() {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for (target, files) in seeds::all() {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("create corpus dir");
        for (name, data) in files {
            std::fs::write(dir.join(format!("seed-{name}")), data).expect("write seed");
        }
    }
}

/// The seeds round-trip: `decode(encode(case))` prints as the case.
#[test]
fn seeds_round_trip() {
    for (name, c) in seeds::sigmoid() {
        let back = SigmoidCase::decode(&c.encode());
        assert_eq!(format!("{back:?}"), format!("{c:?}"), "sigmoid seed {name}");
    }
    for (name, c) in seeds::softmax() {
        let back = SoftmaxCase::decode(&c.encode());
        assert_eq!(format!("{back:?}"), format!("{c:?}"), "softmax seed {name}");
    }
    for (name, c) in seeds::unary() {
        let back = UnaryCase::decode(&c.encode());
        assert_eq!(format!("{back:?}"), format!("{c:?}"), "unary seed {name}");
    }
    for (name, c) in seeds::misuse() {
        let back = MisuseCase::decode(&c.encode());
        assert_eq!(format!("{back:?}"), format!("{c:?}"), "misuse seed {name}");
    }
}

/// The committed seeds: the hard cases the issue lists, as cases.
mod seeds {
    use super::*;
    use focal::IGNORE_INDEX;

    /// The exp over/underflow and sigmoid rounding edges, both signs, with their
    /// neighbours, subnormals, zero, the range ends and the specials.
    pub fn edge_logits() -> Vec<f32> {
        let mut v = Vec::new();
        for m in [
            16.6f32, 16.635_532, 88.7, 88.722_83, 103.97, 103.972_08, 104.0, 87.336_55, 0.0,
        ] {
            for x in [m, bytes::nudged(m, 1), bytes::nudged(m, -1)] {
                v.push(x);
                v.push(-x);
            }
        }
        v.extend([
            f32::from_bits(1),
            -f32::from_bits(1),
            f32::from_bits(0x007F_FFFF),
            f32::MIN_POSITIVE,
            f32::MAX,
            -f32::MAX,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            1e-30,
            -3.5,
        ]);
        v
    }

    fn sig(
        gamma: f32,
        alpha: Alpha,
        soft: SoftTargets,
        reduction: Reduction,
        offsets: [usize; 3],
        logits: Vec<f32>,
        targets: Vec<f32>,
    ) -> SigmoidCase {
        SigmoidCase {
            gamma,
            alpha,
            soft,
            reduction,
            offsets,
            logits,
            targets,
        }
    }

    pub fn sigmoid() -> Vec<(String, SigmoidCase)> {
        let edges = edge_logits();
        let n = edges.len();
        let tv = SoftTargets::Torchvision;
        let mut v = Vec::new();
        // Every edge with hard, soft and ignored targets.
        for (tn, t) in [
            ("hard1", 1.0f32),
            ("hard0", 0.0),
            ("soft", 0.3),
            ("soft-tiny", 5.960_464_5e-8),
        ] {
            for (gn, gamma) in [
                ("g0", 0.0f32),
                ("g0.5", 0.5),
                ("g2", 2.0),
                ("g4.7", 4.7),
                ("g8", 8.0),
            ] {
                v.push((
                    format!("edges-{tn}-{gn}"),
                    sig(
                        gamma,
                        Alpha::Balanced(0.25),
                        tv,
                        Reduction::Mean,
                        [1, 2, 3],
                        edges.clone(),
                        vec![t; n],
                    ),
                ));
            }
        }
        v.push((
            "edges-snippet".into(),
            sig(
                2.0,
                Alpha::Uniform(0.25),
                SoftTargets::ExpNegBce,
                Reduction::Sum,
                [0, 0, 0],
                edges.clone(),
                vec![0.7; n],
            ),
        ));
        // gamma in (0, 1) at confident predictions.
        v.push((
            "gamma-frac-confident".into(),
            sig(
                0.25,
                Alpha::Off,
                tv,
                Reduction::Sum,
                [0, 1, 0],
                vec![30.0, -30.0, 90.0, -90.0, 17.0, -17.0],
                vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0],
            ),
        ));
        // All ignored (Mean of nothing), long enough for the vector bodies.
        v.push((
            "all-ignored-mean".into(),
            sig(
                2.0,
                Alpha::Balanced(0.25),
                tv,
                Reduction::Mean,
                [0, 0, 0],
                vec![0.5; 40],
                vec![-1.0; 40],
            ),
        ));
        // Ignored with NaN logits, mixed with hard targets.
        v.push((
            "ignored-nan".into(),
            sig(
                1.0,
                Alpha::Off,
                tv,
                Reduction::DivideBy(7.0),
                [3, 0, 5],
                vec![f32::NAN, 1.0, f32::NAN, -2.0],
                vec![-1.0, 1.0, -1.0, 0.0],
            ),
        ));
        // An invalid target after valid ones (first offender in a vector body).
        let mut t = vec![1.0f32; 37];
        t[33] = 1.000_000_1;
        v.push((
            "invalid-target".into(),
            sig(
                2.0,
                Alpha::Off,
                tv,
                Reduction::Sum,
                [0, 0, 0],
                vec![0.0; 37],
                t,
            ),
        ));
        // Huge losses: Mean of f32::MAX-sized losses, and a tiny normaliser.
        v.push((
            "huge-losses".into(),
            sig(
                0.0,
                Alpha::Off,
                tv,
                Reduction::Mean,
                [0, 0, 0],
                vec![-f32::MAX; 33],
                vec![1.0; 33],
            ),
        ));
        v.push((
            "tiny-normaliser".into(),
            sig(
                2.0,
                Alpha::Balanced(0.75),
                tv,
                Reduction::DivideBy(1e-30),
                [0, 0, 0],
                vec![-3.0, 0.5, 20.0, -100.0],
                vec![1.0, 0.0, 0.5, 1.0],
            ),
        ));
        v.push((
            "empty".into(),
            sig(
                2.0,
                Alpha::Off,
                tv,
                Reduction::Mean,
                [0, 0, 0],
                vec![],
                vec![],
            ),
        ));
        v
    }

    pub fn softmax() -> Vec<(String, SoftmaxCase)> {
        let sm = |gamma, alpha, reduction, classes: usize, logits: Vec<f32>, labels: Vec<i32>| {
            SoftmaxCase {
                gamma,
                alpha,
                reduction,
                offsets: [1, 2, 3],
                classes,
                logits,
                labels,
            }
        };
        let mut v = Vec::new();
        // One row per edge: the label at the edge, the others at 0 (p_y -> 1, -> 0).
        for c in [3usize, 9, 33] {
            let edges: Vec<f32> = edge_logits()
                .into_iter()
                .filter(|x| x.is_finite())
                .take(16)
                .collect();
            let mut logits = Vec::new();
            let mut labels = Vec::new();
            for (r, &e) in edges.iter().enumerate() {
                let mut row = vec![0.0f32; c];
                row[r % c] = e;
                logits.extend(row);
                labels.push(if r % 5 == 4 {
                    IGNORE_INDEX
                } else {
                    (r % c) as i32
                });
            }
            for gamma in [0.0f32, 0.5, 2.0, 4.7] {
                v.push((
                    format!("edges-c{c}-g{gamma}"),
                    sm(
                        gamma,
                        Weighting::Off,
                        Reduction::Mean,
                        c,
                        logits.clone(),
                        labels.clone(),
                    ),
                ));
            }
        }
        // Infinities and NaN in rows; all ignored; per-class weights.
        v.push((
            "specials".into(),
            sm(
                2.0,
                Weighting::PerClass(vec![0.25, 1.0, 2.0]),
                Reduction::Sum,
                3,
                vec![
                    f32::INFINITY,
                    0.0,
                    1.0,
                    f32::NEG_INFINITY,
                    2.0,
                    3.0,
                    f32::NAN,
                    0.0,
                    0.0,
                    1.0,
                    2.0,
                    3.0,
                ],
                vec![0, 0, 1, IGNORE_INDEX],
            ),
        ));
        v.push((
            "all-ignored".into(),
            sm(
                2.0,
                Weighting::Off,
                Reduction::Mean,
                9,
                vec![1.0; 36],
                vec![IGNORE_INDEX; 4],
            ),
        ));
        v.push((
            "invalid-label".into(),
            sm(
                2.0,
                Weighting::Uniform(0.5),
                Reduction::DivideBy(3.0),
                4,
                vec![0.5; 12],
                vec![1, 3, 4],
            ),
        ));
        v.push((
            "huge-margin".into(),
            sm(
                1.0,
                Weighting::PerClass(vec![0.5, 1.0]),
                Reduction::Sum,
                2,
                vec![-3e38, 3e38, 3e38, -3e38],
                vec![0, 1],
            ),
        ));
        v
    }

    pub fn unary() -> Vec<(String, UnaryCase)> {
        let mut v = vec![(
            "edges".to_string(),
            UnaryCase {
                offsets: [1, 3],
                x: edge_logits(),
            },
        )];
        // Dense around the exp edges: 64 consecutive floats at each.
        for m in [
            16.6f32, -16.6, 88.72, -88.72, 103.97, -103.97, -104.0, 87.34, -87.34,
        ] {
            v.push((
                format!("around{m}"),
                UnaryCase {
                    offsets: [0, 0],
                    x: (-32..32)
                        .map(|k| bytes::nudged(m.abs(), k).copysign(m))
                        .collect(),
                },
            ));
        }
        let subnormals: Vec<f32> = (0..40u32)
            .map(|k| f32::from_bits(1 << (k % 23)) * if k % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        v.push((
            "subnormals".into(),
            UnaryCase {
                offsets: [2, 5],
                x: subnormals,
            },
        ));
        v
    }

    pub fn misuse() -> Vec<(String, MisuseCase)> {
        let base = MisuseCase {
            op: 0,
            func: 0,
            backend: None,
            gamma: 2.0,
            alpha: Alpha::Balanced(0.25),
            weights: Weighting::Off,
            soft: SoftTargets::Torchvision,
            reduction: Reduction::Mean,
            classes: 3,
            logits: vec![0.5; 6],
            targets: vec![1.0; 6],
            labels: vec![0, 1],
            out_len: 6,
        };
        let mut v = Vec::new();
        for op in 0..misuse_case::OPS {
            let mut c = base.clone();
            c.op = op;
            c.out_len = match op {
                6 => 2,
                _ => 6,
            };
            v.push((format!("op{op}-ok"), c.clone()));
            c.out_len += 1;
            c.targets.pop();
            c.backend = Some(Backend::Avx512);
            v.push((format!("op{op}-mismatch"), c));
        }
        let mut c = base.clone();
        c.op = 8;
        c.classes = usize::MAX;
        c.out_len = 0;
        v.push(("softmax-overflowing-shape".into(), c));
        let mut c = base.clone();
        c.op = 7;
        c.classes = 0;
        c.logits.clear();
        v.push(("softmax-no-classes".into(), c));
        let mut c = base.clone();
        c.gamma = f32::NAN;
        c.alpha = Alpha::Uniform(1.5);
        v.push(("invalid-parameters".into(), c));
        let mut c = base.clone();
        c.op = 3;
        c.reduction = Reduction::DivideBy(0.0);
        c.logits.clear();
        c.targets.clear();
        c.out_len = 0;
        v.push(("empty-invalid-normaliser".into(), c));
        v
    }

    /// Seed files (name, bytes) of one target.
    pub type Files = Vec<(String, Vec<u8>)>;

    pub fn all() -> Vec<(&'static str, Files)> {
        vec![
            (
                "sigmoid_differential",
                sigmoid()
                    .into_iter()
                    .map(|(n, c)| (n, c.encode()))
                    .collect(),
            ),
            (
                "softmax_differential",
                softmax()
                    .into_iter()
                    .map(|(n, c)| (n, c.encode()))
                    .collect(),
            ),
            (
                "math_functions",
                unary().into_iter().map(|(n, c)| (n, c.encode())).collect(),
            ),
            (
                "api_misuse",
                misuse().into_iter().map(|(n, c)| (n, c.encode())).collect(),
            ),
        ]
    }
}

// ---------------------------------------------------------------------------
// Findings of the fuzzers, one test each (newest last).

/// Found by the seed `huge-margin` of softmax_differential (weight 0 variant), on
/// every backend. Bug: a row whose `-ln p_y` exceeds `f32::MAX` (label logit
/// -3e38, another class at 3e38: nll = 6e38) and whose label class has weight 0
/// gives a NaN loss (`nll` overflows to inf in f32, then `inf * 0`), where the
/// exact loss is 0: finite input must give finite output (DESIGN §3).
#[test]
fn softmax_zero_weight_times_overflowing_nll_is_nan() {
    let case = SoftmaxCase {
        gamma: f(0x3f800000), /* 1e0 */
        alpha: Weighting::PerClass(fs(&[0x00000000, 0x3f800000]) /* [0.0, 1.0] */),
        reduction: Reduction::Sum,
        offsets: [1, 2, 3],
        classes: 2,
        logits: fs(&[0xff61b1e6, 0x7f61b1e6, 0x7f61b1e6, 0xff61b1e6]), /* [-3e38, 3e38, 3e38, -3e38] */
        labels: vec![0, 1],
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential in its first minute (a mutation of the seed
/// `specials`), on every backend. Bug: the reduced loss (`Sum`, `Mean`, fused too) of
/// rows where one row loss is +inf (label logit -inf, the others finite) is NaN,
/// not +inf: the compensated f32 lane sum turns `inf - inf` into NaN (the sigmoid
/// loss re-sums in f64 when the lane sum is not finite; the softmax loss does not).
#[test]
fn softmax_sum_with_an_infinite_row_loss_is_nan() {
    let case = SoftmaxCase {
        gamma: f(0x40000000), /* 2e0 */
        alpha: Weighting::Off,
        reduction: Reduction::Sum,
        offsets: [0, 0, 0],
        classes: 3,
        logits: fs(&[0xff800000, 0x40000000, 0x40400000]), /* [-inf, 2.0, 3.0] */
        labels: vec![0],
    };
    must_pass(&case, case.check());
}

/// Found by sigmoid_differential in its first minute (a mutation of the seed
/// `edges-soft-tiny-g8`), on every backend. Bug: a soft target t = 2^-30 at logit
/// -inf with gamma 8 gives a NaN loss; the limit is +inf (q -> t, BCE -> +inf).
/// `q^gamma = t^8 = 2^-240` underflows to 0 in f32 and is multiplied by the infinite
/// BCE: `0 * inf`.
#[test]
fn sigmoid_soft_tiny_target_at_minus_infinity_is_nan() {
    let case = SigmoidCase {
        gamma: f(0x41000000), /* 8e0 */
        alpha: Alpha::Off,
        soft: SoftTargets::Torchvision,
        reduction: Reduction::Sum,
        offsets: [0, 0, 0],
        logits: fs(&[0xff800000]),  /* [-inf] */
        targets: fs(&[0x30800000]), /* [9.313226e-10] = 2^-30 */
    };
    must_pass(&case, case.check());
}

/// Found by an edge grid on an uncommitted change (2026-12-01) that shared one `1/q`
/// between the soft kernels' quotients: torchvision's `q = p (1 - t) + (1 - p) t`
/// is subnormal at x = -89 with t = 2^-149 (p = 2.2e-39), `1/q` overflowed to inf,
/// and `q_lo * (1/q)` made the general power NaN (gamma 1e-30, every backend).
/// The quotients divide by `q` itself.
#[test]
fn sigmoid_soft_subnormal_q_quotients_are_finite() {
    let case = SigmoidCase {
        gamma: f(0x0da24260), /* 1e-30 */
        alpha: Alpha::Off,
        soft: SoftTargets::Torchvision,
        reduction: Reduction::Sum,
        offsets: [0, 0, 0],
        logits: fs(&[0xc2b20000, 0xd01502f9]), /* [-89, -1e10] */
        targets: fs(&[0x00000001, 0x00000001]), /* [2^-149, 2^-149] */
    };
    must_pass(&case, case.check());
}

/// Same input family as the test above, at the finite end (logit -f32::MAX), on
/// every backend. Bug: the loss is 0 where the exact value is 2^-142 ~ 1.8e-43
/// (96 times 2^-149; the documented bound is 16 ULP with an absolute floor of 2^-149
/// below the normal range): `q^gamma = 2^-240` underflows before it meets
/// `BCE = 2^-30 * f32::MAX ~ 2^98`.
#[test]
fn sigmoid_soft_tiny_target_at_minus_max_underflows() {
    let case = SigmoidCase {
        gamma: f(0x41000000), /* 8e0 */
        alpha: Alpha::Off,
        soft: SoftTargets::Torchvision,
        reduction: Reduction::Sum,
        offsets: [0, 0, 0],
        logits: fs(&[0xff7fffff]),  /* [-f32::MAX] */
        targets: fs(&[0x30800000]), /* [2^-30] */
    };
    must_pass(&case, case.check());
}

/// Found by sigmoid_differential (alpha drawn as exactly 0), on every backend. Bug:
/// with `alpha_t = 0` (`Uniform(0)`, or `Balanced(0)` at t = 1) an infinite logit on
/// the wrong side (x = -inf at t = 1, x = +inf at t = 0) gives a NaN loss
/// (`0 * inf`); the loss is 0 for every finite x, so the limit is 0, and the input
/// has no NaN (DESIGN §3: NaN only for NaN input).
#[test]
fn sigmoid_zero_alpha_at_infinite_logit_is_nan() {
    let case = SigmoidCase {
        gamma: f(0x40000000), /* 2e0 */
        alpha: Alpha::Uniform(f(0x00000000)),
        soft: SoftTargets::Torchvision,
        reduction: Reduction::Mean,
        offsets: [0, 0, 0],
        logits: fs(&[0xff800000, 0x7f800000]), /* [-inf, inf] */
        targets: fs(&[0x3f800000, 0x00000000]), /* [1.0, 0.0] */
    };
    must_pass(&case, case.check());
}

/// Found by sigmoid_differential and softmax_differential (normaliser drawn as a
/// subnormal), on every backend. Bug: `Reduction::DivideBy(n)` with `1/n` above
/// `f32::MAX` (n below about 2.9e-39, valid: finite and > 0) gives NaN gradients:
/// `alpha * (1/n)` rounds to inf in f32 and meets a gradient that underflowed to 0
/// (`inf * 0`), e.g. x = -119.6, t = 0, where the exact fused gradient is a normal
/// f32; and +inf where the exact gradient is a finite 1.4e38. (The documented bound
/// only covers n >= 1; NaN for finite input is never allowed.) Fixed by rejecting
/// subnormal normalisers: `Error::InvalidNormalizer`.
#[test]
fn sigmoid_divide_by_subnormal_gives_nan_gradient() {
    let case = SigmoidCase {
        gamma: f(0x40000000), /* 2e0 */
        alpha: Alpha::Off,
        soft: SoftTargets::Torchvision,
        reduction: Reduction::DivideBy(f(0x00000012)), /* 2.5e-44 */
        offsets: [0, 0, 0],
        logits: fs(&[0xc2ef2a17, 0xff800000]), /* [-119.58, -inf] */
        targets: fs(&[0x00000000, 0x00000000]),
    };
    must_pass(&case, case.check());
    // The other face (found by the planted-bug run of sigmoid_differential): x = 0,
    // t = 0, n = 9.18e-41: the exact fused gradient is 1.39e38 (finite), the kernel
    // gives +inf because `1/n` was rounded to f32 first.
    let case = SigmoidCase {
        gamma: f(0x40000000), /* 2e0 */
        alpha: Alpha::Off,
        soft: SoftTargets::Torchvision,
        reduction: Reduction::DivideBy(f(0x0000ffff)), /* 9.1834e-41 */
        offsets: [0, 0, 0],
        logits: fs(&[0x00000000]),
        targets: fs(&[0x00000000]),
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential in its first minutes (many inputs), on every
/// backend. Bug: in `src/simd/softmax/math.rs` `exp_parts(hi, lo)` clamps `hi` to
/// -104 but keeps `lo`, the residual of `z_j - m`, which for a huge gap is itself
/// huge (up to 2^-20 |hi|): for a class far below the row max the result is
/// `e^-104 (1 + lo)` instead of 0. Here `z = (-1.7e38, -120)`, label 0: `z_y - m`
/// rounds to `hi = -1.7e38` with `lo ~ 120`, p_y is 0 and the exact gradient is
/// (-1, +1); the kernel's `e_y ~ 121 e^-104` times `nll = 1.7e38` gives -1.0000141
/// (237 ULP). With a larger gap (row max 4.2e21, label -1.9e15) the gradient came out
/// as -4.5e20 instead of -0.0625.
/// The same root gives negative losses (-8e-44 for a label at the max, the others
/// 1.5e23 below) and non-zero gradient entries (up to 1e-30 seen) for classes of
/// probability 0. Fixed in src/ while the fuzzers were being written (the residual
/// is dropped for clamped lanes); the test keeps it fixed.
#[test]
fn softmax_huge_gap_keeps_the_residual() {
    let case = SoftmaxCase {
        gamma: f(0x3f800000), /* 1e0 */
        alpha: Weighting::Off,
        reduction: Reduction::Sum,
        offsets: [0, 0, 0],
        classes: 2,
        logits: fs(&[0xff00c6c6, 0xc2f00000]), /* [-1.7e38, -120.0] */
        labels: vec![0],
    };
    must_pass(&case, case.check());
}

/// The negative-loss face of the bug above (found as is by softmax_differential):
/// label at the max 1.5e23, the others 1.5e23 below: loss and gradient are exactly
/// 0, the kernel gives -8.1e-44.
#[test]
fn softmax_huge_gap_negative_loss() {
    let case = SoftmaxCase {
        gamma: f(0x00000000),
        alpha: Weighting::Off,
        reduction: Reduction::Sum,
        offsets: [0, 0, 0],
        classes: 3,
        logits: fs(&[0x66000000, 0xc2effe93, 0x00000000]), /* [1.5e23, -119.997, 0.0] */
        labels: vec![0],
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential: `Mean` over rows whose losses sum above
/// `f32::MAX` while the mean is finite (11 rows, mean 5.2e37) is NaN on every
/// backend: the f32 lane sum overflows and is not re-summed in f64 (the sigmoid
/// loss does that). Same root as `softmax_sum_with_an_infinite_row_loss_is_nan`.
#[test]
fn softmax_mean_of_huge_row_losses_is_nan() {
    let case = SoftmaxCase {
        gamma: f(0x00000000),
        alpha: Weighting::Off,
        reduction: Reduction::Mean,
        offsets: [0, 0, 0],
        classes: 2,
        logits: fs(&[
            0xff000000, 0x00000000, 0xff000000, 0x00000000, 0xff000000, 0x00000000,
        ]), /* rows [-1.7e38, 0] */
        labels: vec![0, 0, 0],
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential, on every backend: the same `0 * inf` as
/// `softmax_zero_weight_times_overflowing_nll_is_nan` with a weight of -0.0 (valid:
/// `Uniform(-0.0)` is in [0, 1]) and a label logit of -inf (nll = +inf): the loss is
/// NaN for an input without NaN; it is 0 for every finite input, so the limit is 0.
#[test]
fn softmax_negative_zero_weight_times_infinite_nll_is_nan() {
    let case = SoftmaxCase {
        gamma: f(0x40600000),                     /* 3.5e0 */
        alpha: Weighting::Uniform(f(0x80000000)), /* -0.0 */
        reduction: Reduction::Sum,
        offsets: [0, 0, 0],
        classes: 3,
        logits: fs(&[0xff800000, 0x00000000, 0x40000000]), /* [-inf, 0.0, 2.0] */
        labels: vec![0],
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential, on every backend. Bug: with a large class weight
/// (3e38, valid: finite and >= 0) the loss `alpha q^gamma nll` is formed as
/// `q^gamma * (nll * alpha)`, and `nll * alpha = 1.386 * 3e38` overflows although the
/// loss, 2.34e38, is a finite f32: +inf for finite input.
#[test]
fn softmax_huge_weight_overflows_an_intermediate() {
    let case = SoftmaxCase {
        gamma: f(0x40000000), /* 2e0 */
        alpha: Weighting::PerClass(fs(&[0x7f61b1e6, 0x3f800000, 0x3f800000, 0x3f800000])), /* [3e38, 1, 1, 1] */
        reduction: Reduction::Sum,
        offsets: [0, 0, 0],
        classes: 4,
        logits: fs(&[0x00000000, 0x00000000, 0x00000000, 0x00000000]),
        labels: vec![0],
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential, on every backend. Bug: gradient entries flushed
/// to 0 where the reference is a normal f32 (4.25e-22; DESIGN §3: never flushed): a
/// tiny factor underflows before it meets the label's large weight (1e30).
#[test]
fn softmax_gradient_flushed_before_the_weight() {
    let case = SoftmaxCase {
        gamma: f(0x40898966), /* 4.2980223e0 */
        alpha: Weighting::PerClass(fs(&[
            0x00000001, 0x00000001, 0x00000000, 0x7149f2ca, 0x7149f2ca, 0x7149f2ca, 0x7149f2ca,
            0x7149f2ca, 0x7149f2ca, 0x7149f2ca, 0x7149f2ca, 0x7149f2ca, 0x7149f2ca, 0x7149f2ca,
            0x7149f2ca, 0x7149f2ca, 0x7149f2ca, 0x7149f2ca,
        ])),
        reduction: Reduction::DivideBy(f(0x44065050)), /* 5.372549e2 */
        offsets: [0, 0, 0],
        classes: 18,
        logits: fs(&[
            0xc1d698f8, 0x3a636363, 0x3a636363, 0x3a636363, 0x3a636363, 0x3a636363, 0x3a636363,
            0x39e36363, 0xc2ce1e1e, 0xc2ce1e1e, 0xc2ce1e1e, 0xc2ce1e1e, 0xc2ce1e1e, 0xc2ce1e1e,
            0xc2ce1e1e, 0x410f0f0f, 0xc0ffff89, 0xc0ffff89,
        ]),
        labels: vec![9],
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential, on every backend. Bug: for a huge gamma
/// (1.35e18; no accuracy bound is documented above 8, but the loss is never
/// negative) the loss is -1.58e-35 and the label's gradient +3.6e-19 where both are
/// 0 (q = 0.746, q^gamma = 0): `e^(gamma ln q)` with `ln q` in hi + lo lets the
/// product's residual through.
#[test]
fn softmax_huge_gamma_negative_loss() {
    let case = SoftmaxCase {
        gamma: f(0x5d966666), /* 1.3546827e18 */
        alpha: Weighting::Off,
        reduction: Reduction::Mean,
        offsets: [0, 0, 0],
        classes: 4,
        logits: fs(&[0x3c800000, 0x00000000, 0x00000000, 0x00000000]), /* [2^-6, 0, 0, 0] */
        labels: vec![0],
    };
    must_pass(&case, case.check());
}

/// Found by sigmoid_differential replaying its grown corpus right after commit
/// 1e07a09 ("alpha_t = 0 gives 0 loss also at infinite logits"), on every backend.
/// Regression: with `alpha_t = 0` (here `Uniform(0)`) a NaN logit now gives loss 0
/// (and a reduced loss of 0) while its gradient stays NaN; DESIGN §3: NaN input gives
/// NaN output for that element (and a NaN reduced loss).
#[test]
fn sigmoid_zero_alpha_hides_a_nan_logit() {
    let case = SigmoidCase {
        gamma: f(0x40400000), /* 3e0 */
        alpha: Alpha::Uniform(f(0x00000000)),
        soft: SoftTargets::Torchvision,
        reduction: Reduction::Sum,
        offsets: [0, 0, 0],
        logits: fs(&[0x3f000000, 0xffffffce]), /* [0.5, NaN] */
        targets: fs(&[0x00000000, 0x00000000]),
    };
    must_pass(&case, case.check());
}

/// Found by sigmoid_differential after the soft-target fixes of 1e07a09. Bug: with
/// the snippet's soft-target form and a huge gamma (2.8e20; no accuracy bound above
/// 8, but finite input must give finite output) loss and gradient are NaN where
/// both are 0 (q^gamma underflows). A second input (gamma 2.5e35, x = 5.6e-9,
/// t = 0.99925) gave NaN on Portable/AVX2/AVX-512 but not on Scalar.
/// Cause: `q = 1 - e^-BCE` rounds to 1 for BCE > 17.3 and its `q_lo` held only
/// BCE's tail, so `gamma ln q` was `gamma` times a garbage residual (here +inf,
/// then `e^inf (1 + lo)` with a negative lo); without FMA, Dekker's split of a
/// gamma above 2^115 overflowed into a NaN residual. Fixed in `src/simd/kernel.rs`:
/// above BCE = ln 2, `q = 1 - e^-BCE` with its exact Fast2Sum residual (`e^-BCE`
/// from `exp_nonpositive_parts`, hi + lo), and NaN residuals of `gamma ln q`
/// dropped (the power is 0 there).
#[test]
fn sigmoid_snippet_huge_gamma_is_nan() {
    let case = SigmoidCase {
        gamma: f(0x61726731),                  /* 2.7947174e20 */
        alpha: Alpha::Balanced(f(0x3f400000)), /* 0.75 */
        soft: SoftTargets::ExpNegBce,
        reduction: Reduction::Sum,
        offsets: [0, 0, 0],
        logits: fs(&[0xc1ca7a4c]),  /* [-25.309715] */
        targets: fs(&[0x3f4fb167]), /* [0.8113007] */
    };
    must_pass(&case, case.check());
    let case = SigmoidCase {
        gamma: f(0x7a4100fc), /* 2.5053331e35 */
        alpha: Alpha::Off,
        soft: SoftTargets::ExpNegBce,
        reduction: Reduction::DivideBy(f(0x43eee3e2)), /* 477.78 */
        offsets: [0, 0, 0],
        logits: fs(&[0x31c100fc]),  /* [5.617151e-9] */
        targets: fs(&[0x3f7fcf27]), /* [0.99925464] */
    };
    must_pass(&case, case.check());
}

/// Found by sigmoid_differential after 1e07a09, on every backend. Bug: a subnormal
/// soft target (t = 2.755e-40) with the snippet's form, gamma 0.5, x = -59.06: the
/// gradient is 3.34e-39 where the reference is 5.02e-39 (33% off, 1.2e6 times
/// 2^-149; the bound is 8 ULP with that absolute floor), and the fused gradient
/// (DivideBy(809.3)) 4.13e-42 instead of 6.20e-42.
/// Cause: the gamma term's factor `BCE e^-BCE (p - t) / q` was formed as
/// `(BCE e^-BCE) (p - t)` first: BCE ~ p - t ~ 2.2e-26 and their product (4.8e-52)
/// underflowed to 0, dropping the gamma term (gamma / (1 + gamma) = 1/3 of the
/// gradient). Fixed by dividing by q before multiplying by `p - t`
/// (`BCE e^-BCE / q <= 1 + BCE/2` stays near 1).
#[test]
fn sigmoid_snippet_subnormal_target_gradient() {
    let case = SigmoidCase {
        gamma: f(0x3f000000), /* 0.5 */
        alpha: Alpha::Off,
        soft: SoftTargets::ExpNegBce,
        reduction: Reduction::DivideBy(f(0x444a53e9)), /* 809.3111 */
        offsets: [0, 0, 0],
        logits: fs(&[0xc26c3ffd]),  /* [-59.06249] */
        targets: fs(&[0x00030000]), /* [2.75506e-40] */
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential in CI's 30-second run after aafa46e, on every
/// backend. Bug: with a subnormal uniform class weight (3.95e-42) the gradient of a
/// subnormal result is 21 units of 2^-149 off (the bound is 8): the weight is applied
/// after a product that already lost bits in the subnormal range.
/// Cause: the label's entry was `-coef S_o` with `coef = q^gamma omw / S * alpha`
/// already subnormal (about 50 units of 2^-149 here) and S_o = 55 multiplying its
/// rounding. Fixed in `row_terms` (src/simd/softmax.rs): the label's entry is
/// `-(q^gamma omw / S) S_o` first, times `alpha * scale` last.
#[test]
fn softmax_subnormal_class_weight_gradient() {
    let case = SoftmaxCase {
        gamma: f(0x00000000), /* 0e0 */
        alpha: Weighting::Uniform(f(0x00000b05) /* 3.953e-42 */),
        reduction: Reduction::Sum,
        offsets: [0, 12, 15],
        classes: 56,
        logits: fs(&[
            0x0b0b0b01, 0x308b000b, 0x00000140, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
        ]),
        labels: vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    };
    must_pass(&case, case.check());
}

/// Found by sigmoid_differential (4-minute run after 6615741), on every backend; a
/// bug of the oracle, not of the kernels. Torchvision soft target t = 2^-149 at
/// x = 46.31 with gamma 2.35e21: `1 - q = p_t = 7.7e-21`, so
/// `q^gamma = e^(gamma ln q) = e^-18` and the loss is 6.25e-7, as every backend
/// computes (q in hi + lo keeps `p_t`). The f64 reference formed `q`, which rounds
/// to 1 in f64, and `powf(1, gamma) = 1` gave 46.31. Fixed in
/// tests/common/reference.rs: `q^gamma` from `ln_1p(-p_t)` where `q > 1/2`.
#[test]
fn sigmoid_reference_rounds_q_to_one_for_a_huge_gamma() {
    let case = SigmoidCase {
        gamma: f(0x62ff0200), /* 2.3520319e21 */
        alpha: Alpha::Off,
        soft: SoftTargets::Torchvision,
        reduction: Reduction::Sum,
        offsets: [15, 15, 15],
        logits: fs(&[
            0x00000004, 0x00002b40, 0x0000ff3f, 0x0501fec0, 0x01003e80, 0x80000066, 0x42393fff,
            0x42394002, 0x42394002, 0x42393ffb, 0x42393ffb, 0x42396bd6, 0x42396bd6,
        ]), /* [6e-45, 1.5515e-41, 9.1565e-41, 6.112341e-36, 2.3554729e-38, -1.43e-43, 46.312496, 46.312508, 46.312508, 46.31248, 46.31248, 46.35531, 46.35531] */
        targets: fs(&[
            0x00000000, 0x00000000, 0x00000000, 0x00000001, 0x00000001, 0x00000001, 0x00000001,
            0x00000001, 0x00000001, 0x00000001, 0x00000000, 0x00000000, 0x00000000,
        ]), /* [0.0, 0.0, 0.0, 1e-45, 1e-45, 1e-45, 1e-45, 1e-45, 1e-45, 1e-45, 0.0, 0.0, 0.0] */
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential (first minute of a 4-minute run after 83cd8d3), on
/// every backend. Bug: a row of finite logits whose label sits more than f32::MAX
/// below the max (z_y = -1.743e38, max 1.755e38: nll = 3.5e38) gives a loss of +inf
/// where `alpha nll` (weight 0.25) is 8.74e37: `z_y - m` overflowed to -inf. Fixed by
/// `shifted_label` (src/simd/softmax.rs), which keeps the difference as
/// `-f32::MAX + lo`, and `row_terms` forming such a loss at half scale.
#[test]
fn softmax_label_more_than_max_below_the_max_gives_infinite_loss() {
    let case = SoftmaxCase {
        gamma: f(0x40000000),                                                  /* 2e0 */
        alpha: Weighting::PerClass(fs(&[0x3e800000, 0x3f800000, 0x40000000])), /* [0.25, 1.0, 2.0] */
        reduction: Reduction::Sum,
        offsets: [1, 2, 3],
        classes: 3,
        logits: fs(&[
            0x00214000, 0x00ff0000, 0x0000a802, 0xff032140, 0x30832140, 0x7f03ff00, 0x00000000,
            0x00000000, 0x3f000000, 0xff800000, 0x00000040, 0x00000040,
        ]), /* [3.05353e-39, 2.3418052e-38, 6.027e-41, -1.7430151e38, 9.540955e-10, 1.754529e38, 0.0, 0.0, 0.5, -inf, 9e-44, 9e-44] */
        labels: vec![0, 0, 0, 0],
    };
    must_pass(&case, case.check());
    // The same row with 12 classes (classes_in_lanes driver) and Mean.
    let mut logits = vec![0.0f32; 12];
    logits[0] = f(0xff032140);
    logits[5] = f(0x7f03ff00);
    let case = SoftmaxCase {
        gamma: 0.5,
        alpha: Weighting::Uniform(0.25),
        reduction: Reduction::Mean,
        offsets: [0, 0, 0],
        classes: 12,
        logits,
        labels: vec![0],
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential (after 805 executions of a 4-minute run after the
/// commit above), on every backend. Bug: a row whose label is the max and whose
/// other classes sit more than ~104 below it (z = (119.99, 9.3e-10): `S_o = e^-120
/// = 7.7e-53`, below the f32 range), with a class weight of 1e30 and gamma 3e-39:
/// the exact loss `alpha q^gamma nll = 1e30 * 7.7e-53 = 7.7e-23` and the gradient
/// entries (-7.7e-23, +7.7e-23) are normal f32, all come out 0. `S_o` underflows to 0
/// in f32, so `q = S_o / S = 0` and `q^gamma = 0` (the true `q^gamma` is ~1), which
/// zeroes `coef` before `scaled_exp` lifts `e_1`; the loss is `alpha * 0`. (The docs
/// exempt the loss's precision for weights above 1, "the precision of that
/// subnormal product", but not the gradient: "probabilities below the f32 range
/// still give their normal gradient entries".) Fixed: such rows (active, weight
/// times scale above 1, `S_o` below the normal f32 range) are recomputed in f64
/// (`simd/softmax/exact_row.rs`), whose exponent range holds them.
#[test]
fn softmax_underflowed_so_with_huge_weight_flushes_to_zero() {
    let case = SoftmaxCase {
        gamma: f(0x00214000),                                      /* 3.05353e-39 */
        alpha: Weighting::PerClass(fs(&[0x7149f2ca, 0x3f800000])), /* [1e30, 1.0] */
        reduction: Reduction::Sum,
        offsets: [15, 15, 3],
        classes: 2,
        logits: fs(&[
            0xc28a5a5a, 0xc28a5a5a, 0xc28a5a5a, 0xc28a5a5a, 0xc28a5a5a, 0xc28a5a5a, 0x42efff46,
            0x30800000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000,
        ]), /* [-69.18, -69.18, -69.18, -69.18, -69.18, -69.18, 119.99, 9.3e-10, 0.0, ...] */
        labels: vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    };
    must_pass(&case, case.check());
}

/// The case above with 12 classes, through the classes-in-lanes driver (C > 8):
/// gamma 0, label 0 at 120 with weight 1e30, eleven classes at 0 (`S_o = 11 e^-120`,
/// loss 8.5e-22).
#[test]
fn softmax_underflowed_so_with_huge_weight_many_classes() {
    let mut logits = vec![0.0f32; 24];
    logits[0] = 120.0;
    logits[13] = 120.0;
    let mut weights = vec![1.0f32; 12];
    weights[0] = 1.0e30;
    weights[1] = 3.0e30;
    let case = SoftmaxCase {
        gamma: 0.0,
        alpha: Weighting::PerClass(weights),
        reduction: Reduction::Sum,
        offsets: [0, 0, 0],
        classes: 12,
        logits,
        labels: vec![0, 1],
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential in `.ci/run fuzz`'s 60-second run, on AVX2 and
/// AVX-512 only: row 2 = (NaN, 0, 6.5e32), label 0: the gradient entry of class 1
/// is 0 where Scalar (and the documentation: a NaN logit makes its row's gradient
/// NaN) gives NaN. The label's weight 2 sends the row through the large-weight
/// recomputation, whose `scaled_exp` read NaN's exponent field as a huge exponent of
/// `coef`, counted the product as underflowed and returned 0. Fixed: a NaN `coef`
/// passes through.
#[test]
fn softmax_nan_row_gradient_entry_is_zero_on_avx() {
    let case = SoftmaxCase {
        gamma: f(0x40000000),                                                  /* 2e0 */
        alpha: Weighting::PerClass(fs(&[0x3e800000, 0x3f800000, 0x40000000])), /* [0.25, 1.0, 2.0] */
        reduction: Reduction::Sum,
        offsets: [1, 2, 3],
        classes: 3,
        logits: fs(&[
            0x7f800000, 0x00000000, 0x3f800000, 0xff800000, 0x00000000, 0x40400000, 0x7fc00008,
            0x00000000, 0x76000000, 0x80000000, 0x30800100, 0x00080000,
        ]), /* [inf, 0.0, 1.0, -inf, 0.0, 3.0, NaN, 0.0, 6.490371e32, -0.0, 9.31351e-10, 7.34684e-40] */
        labels: vec![1, 2, 0, 0],
    };
    must_pass(&case, case.check());
}

/// Found by sigmoid_differential in `.ci/run fuzz`'s 60-second run, on every
/// backend. Bug: torchvision soft target t = 0.0078 at x = -1.7e38, gamma 7.94: the
/// loss (2.49e19) came out +inf. `q^gamma = 2e-17 < 2^-55` is carried as
/// `q^gamma 2^64`, and that times BCE = 1.3e36 overflowed before the `2^-64`.
/// Fixed by taking the 2^-64 off BCE first where BCE >= 1.
#[test]
fn sigmoid_scaled_power_times_huge_bce_overflows() {
    let case = SigmoidCase {
        gamma: f(0x40fdf83f),                  /* 7.9365535e0 */
        alpha: Alpha::Balanced(f(0x00600000)), /* 8.816208e-39 */
        soft: SoftTargets::Torchvision,
        reduction: Reduction::Sum,
        offsets: [0, 4, 2],
        logits: fs(&[0x00000000, 0xff000100]), /* [0.0, -1.7014638e38] */
        targets: fs(&[0x3bffffff, 0x3bffffff]), /* [0.0078124995, 0.0078124995] */
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential (3 minutes, after the f64 row path): one class
/// (`S_o = 0`, loss 0), a normaliser of 2.7e-32 (scale 3.7e31 > 1) and gamma 1e-30:
/// NaN gradients and sums. The row took the f64 path, whose empty sum of the
/// other classes was -0 (Rust's `sum` of no f64), and `e_y / -0 = -inf` made
/// `ln q` NaN. Fixed: the sum folds from +0.
#[test]
fn softmax_single_class_with_tiny_normaliser() {
    let case = SoftmaxCase {
        gamma: f(0x0da24260), /* 1e-30 */
        alpha: Weighting::Off,
        reduction: Reduction::DivideBy(f(0x0b0bf4f4)), /* 2.6954708e-32 */
        offsets: [0, 0, 11],
        classes: 1,
        logits: vec![0.0; 16],
        labels: vec![0; 16],
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential (3 minutes): class weights 3e38 and a normaliser
/// of 3.6e-19 (weight times scale 8e56, beyond f32), gamma 0, row (66.19, 66.35,
/// -120, 0, ...): the label's entry (-4.6e56) must overflow to -inf, not NaN, and
/// the entries of the classes at 0 (6.9e27) must not be flushed to 0.
#[test]
fn softmax_weight_times_scale_beyond_f32() {
    for classes in [3, 23] {
        let mut logits = vec![0.0f32; 2 * classes];
        logits[0] = f(0x428462a3);
        logits[1] = f(0x4284b4b5);
        logits[2] = f(0xc2effe8b);
        let case = SoftmaxCase {
            gamma: 0.0,
            alpha: Weighting::PerClass(vec![f(0x7f61b1e6); classes]), /* 3e38 */
            reduction: Reduction::DivideBy(f(0x20d1f4f6)),            /* 3.556808e-19 */
            offsets: [0, 0, 0],
            classes,
            logits,
            labels: vec![0, 1],
        };
        must_pass(&case, case.check());
    }
}

/// Found by softmax_differential (4 minutes): gamma 3.1e32, C = 38, the label 89.5
/// below the row max (`p_y = e^-89.5 = 1.2e-39`, subnormal in f32): the true
/// `q^gamma = e^(-gamma p_y) = 0.9999996` and the loss 91.87; every backend gave 0.
#[test]
fn softmax_huge_gamma_subnormal_p_y() {
    let mut logits = vec![0.0f32; 38];
    for z in &mut logits[..21] {
        *z = f(0xc2b20075); /* -89.0 */
    }
    logits[21] = f(0x36400b00);
    logits[22] = f(0x004a0000);
    logits[25] = 0.5;
    logits[26] = f(0x80000004);
    logits[27] = f(0x00000002);
    let case = SoftmaxCase {
        gamma: f(0x75757500), /* 3.1115375e32 */
        alpha: Weighting::Off,
        reduction: Reduction::Sum,
        offsets: [0, 0, 0],
        classes: 38,
        logits,
        labels: vec![0],
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential (4 minutes): C = 24, the label at 100 and the
/// others near 0, so each `e_j = e^-100` (26.4 units of 2^-149) is rounded in the
/// subnormal range and `S_o` (the loss, gamma 1e-30) was 10.7 units off, against
/// the bound of 8. Fixed: rows with a subnormal `S_o` are computed in f64.
#[test]
fn softmax_subnormal_sum_of_many_exps() {
    let mut logits = vec![0.0f32; 24];
    logits[0] = f(0x42c80040); /* 100.0005 */
    logits[1] = f(0x32aa3f7f);
    let case = SoftmaxCase {
        gamma: f(0x0da24260), /* 1e-30 */
        alpha: Weighting::Off,
        reduction: Reduction::DivideBy(f(0x42fa0004)), /* 125.00003 */
        offsets: [0, 0, 0],
        classes: 24,
        logits,
        labels: vec![0],
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential (4 minutes): gamma 2.0000002 (the general
/// kernel), C = 36, the label at 16.6 and 34 classes at 0 (`q = S_o / S = 2.1e-6`,
/// loss 7.6e-18): loss 8.5 ULP, label gradient 13 ULP.
#[test]
fn softmax_general_gamma_many_equal_exps() {
    let mut logits = vec![0.0f32; 36];
    logits[0] = f(0x4184cc9e); /* 16.6 */
    logits[1] = f(0xc2efffff); /* -120 */
    let case = SoftmaxCase {
        gamma: f(0x40000001),                     /* 2.0000002 */
        alpha: Weighting::Uniform(f(0x3f514b99)), /* 0.8175598 */
        reduction: Reduction::Mean,
        offsets: [0, 0, 0],
        classes: 36,
        logits,
        labels: vec![0],
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential (4 minutes), a bug of the f64 reference, not of
/// the kernels: gamma 1.5e23, C = 6, the label 55 below the max (`p_y = 6e-25`):
/// the reference's `q = 1 - p_y` rounded to 1 and `powf` gave `q^gamma = 1` (loss
/// 55.75) where the kernels' 0.91 (loss 50.76) is right. Fixed in the reference
/// (`ln_1p(-p_y)` above q = 1/2).
#[test]
fn softmax_reference_huge_gamma_tiny_p_y() {
    let case = SoftmaxCase {
        gamma: f(0x6601963f), /* 1.529892e23 */
        alpha: Weighting::Off,
        reduction: Reduction::Sum,
        offsets: [0, 0, 0],
        classes: 6,
        logits: fs(&[
            0x807fffc5, 0xba000000, 0x425c3c3c, 0x425c3c3c, 0xc2db5902, 0xbaba0b5d,
        ]), /* [-1.2e-38, -4.9e-4, 55.06, 55.06, -109.7, -1.4e-3] */
        labels: vec![0],
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential (seconds, after the f64 row path took rows whose
/// weight times scale is beyond f32): weights 3e38, a normaliser of 9.4e-32, and a
/// `+inf` logit in the row: the f64 path gave up on infinite logits and the f32
/// kernel's infinite factor made a NaN entry. Fixed: the f64 path takes infinite
/// logits as the kernels do (`+inf` shares the probability, `-inf` has none).
#[test]
fn softmax_huge_factor_with_infinite_logit() {
    let case = SoftmaxCase {
        gamma: 1.0,
        alpha: Weighting::PerClass(vec![f(0x7f61b1e6); 10]), /* 3e38 */
        reduction: Reduction::DivideBy(f(0x0bf45ef4)),       /* 9.412825e-32 */
        offsets: [0, 0, 0],
        classes: 10,
        logits: fs(&[
            0x7149f287, 0x42ad79da, 0x7f800000, 0xc2769697, 0xc2769697, 0xc2769697, 0xc2769697,
            0xc2769697, 0xc2769697, 0xc2769697, 0x4265a969, 0xf149f287, 0x42c7ffbd, 0xf149f287,
            0xf149f287, 0xf149f287, 0x011f2cd1, 0xbd000000, 0x7149f287, 0x20d11e00,
        ]),
        labels: vec![3, 3],
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential (10 seconds): gamma 7.2e37, the label 51015 below
/// the max (q = 1): on Portable (no FMA) Dekker's split of gamma overflowed and
/// its NaN residual made the loss and gradient NaN. Fixed: the residual of
/// gamma ln q is dropped when not finite.
#[test]
fn softmax_huge_gamma_dekker_split_without_fma() {
    let mut logits = vec![0.0f32; 25];
    logits[0] = f(0x20400000);
    logits[1] = f(0xfbfbfbfb);
    logits[5] = f(0x47474747); /* 51015.3 */
    let case = SoftmaxCase {
        gamma: f(0x7e58cf27), /* 7.204721e37 */
        alpha: Weighting::Off,
        reduction: Reduction::DivideBy(f(0x3a83126f)), /* 1e-3 */
        offsets: [0, 0, 0],
        classes: 25,
        logits,
        labels: vec![0],
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential (seconds): class weights 6e23, gamma 3, C = 33,
/// the label at 33.8 and 31 classes at 0 (`q = 5.8e-14`, `q^3 nll = 1.1e-53`, below
/// f32; times the weight 1e-29): loss 0, gradient 24 ULP. Fixed: rows with a
/// weight times scale above 1 whose `q^gamma` or `q^gamma nll` is below the normal
/// range take the f64 row path.
#[test]
fn softmax_big_weight_on_subnormal_power() {
    let mut logits = vec![0.0f32; 33];
    logits[0] = f(0x42073ee9); /* 33.81 */
    logits[1] = f(0xf0ff0101);
    logits[2] = f(0x8005ff41);
    let case = SoftmaxCase {
        gamma: 3.0,
        alpha: Weighting::PerClass(vec![f(0x66ffffff); 33]), /* 6.04e23 */
        reduction: Reduction::Sum,
        offsets: [0, 0, 0],
        classes: 33,
        logits,
        labels: vec![0],
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential (30 seconds): C = 136, the label at 104 and 134
/// classes at 0: each `e^-104` underflows f32 to 0, their sum (the loss, 9.1e-44 =
/// 65 units of 2^-149) does not; the loss came out 0. Fixed: rows with `S_o = 0`
/// (more than one class) take the f64 row path too.
#[test]
fn softmax_sum_of_underflowed_exps() {
    let mut logits = vec![0.0f32; 136];
    logits[0] = f(0x42d00001); /* 104.00001 */
    logits[1] = f(0xc2db4b4b);
    logits[2] = f(0x348b0b1c);
    logits[3] = f(0x00000140);
    let case = SoftmaxCase {
        gamma: 0.0,
        alpha: Weighting::Off,
        reduction: Reduction::Mean,
        offsets: [0, 0, 0],
        classes: 136,
        logits,
        labels: vec![0],
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential (15 seconds): gamma 1203, weights 2, C = 14, six
/// rows (label at a subnormal, others 0 or -120): the Mean (8.29e-39, subnormal)
/// was 10 units of 2^-149 off the sum of the row losses: per-row loss in f64 in
/// Loss mode (weight 2 > 1), in f32 in Mean mode (weight times scale 1/3). Fixed:
/// the weight alone also sends a row with a subnormal q^gamma nll to f64.
#[test]
fn softmax_mean_of_subnormal_row_losses() {
    let case = SoftmaxCase {
        gamma: f(0x44966666), /* 1.2032e3 */
        alpha: Weighting::PerClass(
            fs(&[
                0x40000000, 0x40000000, 0x40000000, 0x40000000, 0x40000000, 0x40000000, 0x40000000,
                0x40000000, 0x40000000, 0x40000000, 0x40000000, 0x40000000, 0x40000000, 0x40000000,
            ]), /* [2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0] */
        ),
        reduction: Reduction::Mean,
        offsets: [1, 2, 11],
        classes: 14,
        logits: fs(&[
            0x00000100, 0xc2f00000, 0x002e0000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
        ]),
        labels: vec![0, 0, 0, 0, 0, 0],
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential (5 seconds): gamma 3, C = 6, a row (17, -17, 0,
/// -17, -17, -17) with label 0: `S_o = 4.1e-8`, the loss 9.8 ULP off: the
/// rows-in-lanes sum started at 1 with Fast2Sum, so below 2^-24 its error sum was
/// a plain f32 sum of the terms (as in classes_in_lanes before). Fixed: TwoSum
/// from 0.
#[test]
fn softmax_few_classes_sum_of_tiny_exps() {
    let case = SoftmaxCase {
        gamma: f(0x40400000), /* 3e0 */
        alpha: Weighting::Off,
        reduction: Reduction::DivideBy(f(0x00000000) /* 0e0 */),
        offsets: [13, 2, 13],
        classes: 6,
        logits: fs(&[
            0xc188002d, 0xc188002d, 0xc188002d, 0xc2b20040, 0x3080000b, 0x333921d1, 0x41880061,
            0xc188002d, 0x2d2d2d2d, 0xc188002d, 0xc188002d, 0xc188002d, 0xc187ffb9, 0x4184ccd8,
            0xb88b0b00, 0x5d6601a7, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000,
        ]),
        labels: vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential (10 seconds): weights 0.25 and a normaliser of
/// 1.4e-37 (weight times scale 1.8e36): the Sum took the rows' losses from f64
/// (factor beyond 1e30), Loss mode from f32, and the reduction was 4.3 ULP off the
/// scaled sum of the per-row losses. Fixed: the loss's path is judged on the
/// weight alone, the gradient's on weight times scale.
#[test]
fn softmax_reduction_matches_row_losses_with_tiny_normaliser() {
    let case = SoftmaxCase {
        gamma: f(0x41400000), /* 1.2e1 */
        alpha: Weighting::PerClass(
            fs(&[0x3e800000, 0x3e800000, 0x3e800000]), /* [0.25, 0.25, 0.25] */
        ),
        reduction: Reduction::DivideBy(f(0x0241ff19) /* 1.425261e-37 */),
        offsets: [2, 0, 2],
        classes: 3,
        logits: fs(&[
            0xc2ec3c3c, 0xc2ec3c3c, 0xc2ec3c3c, 0xc2ec3c3c, 0xc2ec3c3c, 0xc2ec3c3c,
        ]), /* [-118.117645, -118.117645, -118.117645, -118.117645, -118.117645, -118.117645] */
        labels: vec![2, 2],
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential (1 minute): rows of four `-inf` logits with
/// weights 3e38 and a normaliser of 1e-3 (factor beyond 1e30): the f64 row path
/// gave up on an all `-inf` row and the f32 kernel's infinite factor made NaN.
/// Fixed: the f64 path takes an all `-inf` row as ties (p_j = 1/C), as the
/// kernels do.
#[test]
fn softmax_huge_factor_all_negative_infinite_row() {
    let case = SoftmaxCase {
        gamma: f(0x3f800000), /* 1e0 */
        alpha: Weighting::PerClass(
            fs(&[0x7f61b1e6, 0x7f61b1e6, 0x7f61b1e6, 0x7f61b1e6]), /* [3e38, 3e38, 3e38, 3e38] */
        ),
        reduction: Reduction::DivideBy(f(0x3a83126f) /* 1e-3 */),
        offsets: [0, 0, 1],
        classes: 4,
        logits: fs(&[
            0xff800000, 0xff800000, 0xff800000, 0xff800000, 0xff800000, 0xff800000, 0xff800000,
            0xff800000, 0xff800000, 0xff800000, 0xff800000, 0xff800000, 0xff800000, 0xff800000,
            0xff800000, 0xff800000, 0xff800000, 0xff800000, 0xff800000, 0xff800000, 0xff800000,
            0xff800000, 0xff800000, 0xff800000, 0xff800000, 0xff800000, 0xff800000, 0xff800000,
            0xff800000, 0xff800000, 0xff800000, 0xff800000, 0xff800000, 0xff800000, 0xff800000,
            0xff800000, 0xff800000, 0xff800000, 0xff800000, 0xff800000,
        ]),
        labels: vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    };
    must_pass(&case, case.check());
}

/// Found by softmax_differential (4 minutes, 1.1 M runs): C = 23, the label at 90
/// and 22 classes near 0: each `e^-90` (8.2e-40) is rounded in the subnormal
/// range and their sum `S_o = 1.8e-38` (normal: the loss, gamma 3.7e-41) was 9.6
/// ULP off. Fixed: rows with `S_o` below 2^-100 take the f64 row path.
#[test]
fn softmax_normal_sum_of_subnormal_exps() {
    let case = SoftmaxCase {
        gamma: f(0x0000660e), /* 3.661e-41 */
        alpha: Weighting::Off,
        reduction: Reduction::Sum,
        offsets: [0, 0, 8],
        classes: 23,
        logits: fs(&[
            0x42b3fe98, 0x37032101, 0x0000ff00, 0x01004c00, 0x000000df, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
            0x00000000, 0x00000000, 0x00000000, 0x00000000, 0x00000000,
        ]),
        labels: vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    };
    must_pass(&case, case.check());
}

/// Found by an independent accuracy audit (a random grid in mpmath), on the Scalar
/// backend only. Bug: a soft target of exactly 0.5 at a tiny logit gave a zero
/// gradient (x = 1e-20, gamma 0: 0 instead of 2.5e-21), where the true value is a
/// normal number: nothing cancels there (the gradient is `q^gamma (1 + c) (p - 1/2)`),
/// but the term-scale measure of soft gradients counts a zero as rounding, so the
/// checks above cannot see it. Cause: Scalar's `exp_nonpositive_parts` rounded
/// `e^-1e-20` in f64, which is 1.0, so the residual that carries `p - 1/2` was 0.
/// Fixed with `expm1` near 0 (src/scalar/mod.rs). The gradient is checked here
/// against its closed form, to 1e-6 relative.
#[test]
fn sigmoid_soft_half_target_tiny_logit_gradient_is_not_zero() {
    for soft in [SoftTargets::Torchvision, SoftTargets::ExpNegBce] {
        for gamma in [0.0f32, 0.3, 2.0] {
            let logits = [1e-20f32, -3e-18, 1e-30, 2e-12, -1e-38];
            let targets = [0.5f32; 5];
            let case = SigmoidCase {
                gamma,
                alpha: Alpha::Off,
                soft,
                reduction: Reduction::Sum,
                offsets: [0, 0, 0],
                logits: logits.to_vec(),
                targets: targets.to_vec(),
            };
            must_pass(&case, case.check());
            // t = 1/2: q = 1/2 in both forms (BCE = ln 2 to first order), dq/dx = 0
            // (torchvision) or e^-BCE (p - t) = (p - t)/2 (snippet), p - t = x/4.
            let g = f64::from(gamma);
            let c = match soft {
                SoftTargets::Torchvision => 0.0,
                _ => g * core::f64::consts::LN_2,
            };
            for b in Backend::available() {
                let fl = focal::Focal::new(gamma, Alpha::Off)
                    .unwrap()
                    .soft_targets(soft)
                    .with_backend(b)
                    .unwrap();
                let mut grad = [0f32; 5];
                fl.grad(&logits, &targets, &mut grad).unwrap();
                for (&x, &got) in logits.iter().zip(&grad) {
                    let want = 0.5f64.powf(g) * (1.0 + c) * f64::from(x) / 4.0;
                    let rel = (f64::from(got) - want).abs() / want.abs();
                    assert!(
                        rel < 1e-6,
                        "{b:?} {soft:?} gamma {gamma} x {x:e}: grad {got:e}, want {want:e}"
                    );
                }
            }
        }
    }
}

/// Found by sigmoid_differential in a 300 s random-seed run (fuzz-long.sh), on every
/// backend. Bug: with the snippet form, a huge gamma (8.6e9), a tiny soft target
/// (9.6e-38) and x = -2.8e38 (BCE = 26.3), the gradient lost its gamma term, half of
/// it: `(BCE e^-B / q) (p - t)` (1e-10 times -9.6e-38) underflowed to 0 before
/// gamma could scale it back to -8e-38. Fixed in `element` (src/simd/kernel.rs):
/// the factor `1 + gamma BCE e^-B / q` is formed first and multiplies `p - t`.
#[test]
fn sigmoid_snippet_huge_gamma_tiny_target_keeps_the_gamma_term() {
    let mut targets = fs(&[
        0x3f3f4142, 0x3b3fbfbf, 0x00000000, 0x3ba0a0e0, 0x3f4fcfd0, 0x3f800000, 0x02020228,
    ]);
    targets.resize(79, 0.0);
    let case = SigmoidCase {
        gamma: f(0x4fffff4f), /* 8.589844e9 */
        alpha: Alpha::Off,
        soft: SoftTargets::ExpNegBce,
        reduction: Reduction::Mean,
        offsets: [15, 15, 15],
        logits: vec![f(0xff4f212c); 79], /* -2.7532243e38 */
        targets,
    };
    must_pass(&case, case.check());
}

/// Found by sigmoid_differential in CI's 60-second fixed-seed run (seed 1) after the
/// kernel changes of stop 9 moved its path, on every backend; the bug was older
/// (the previous session's code gives the same). Reduced from the finding: gamma
/// 232.5 (general), torchvision soft target 0.3, x = f32::MAX. Bug: the loss was
/// 2.33 instead of 139.3. q^gamma = 0.7^232.5 = 1e-36 goes through the log domain,
/// `e^(gamma ln q + ln BCE)`, and `ln BCE` of BCE = 2.4e38 (exponent 127) took
/// `frexp`'s mantissa as x * 2^-127, which `pow2i` cannot build (it gave 0). Fixed
/// in `frexp` (src/simd/math.rs): the top binade is halved first.
#[test]
fn sigmoid_log_domain_power_with_bce_in_the_top_binade() {
    let case = SigmoidCase {
        gamma: f(0x43687a00),                  /* 232.47656 */
        alpha: Alpha::Balanced(f(0x3e800000)), /* 0.25 */
        soft: SoftTargets::Torchvision,
        reduction: Reduction::Mean,
        offsets: [1, 2, 3],
        logits: fs(&[0x7f7fffff, 0x3e99999a]), /* [f32::MAX, 0.3] */
        targets: fs(&[0x3e99999a, 0x3e99999a]), /* [0.3, 0.3] */
    };
    must_pass(&case, case.check());
}

/// Found by a 4-minute sigmoid_differential run (2026-12-07), once the oracle
/// checked the fused gradient below a normaliser of 1 everywhere, on Portable
/// (SSE2) only; the bug was older. Bug: 1070 ULP (gamma 3.5, soft target 4.8e-6 at
/// x = -104, n = 9.4e-38): without FMA, the soft kernels' weight `alpha_t / n`
/// (1.1e37, above 2^115) overflowed Dekker's split in `weight`, whose NaN error
/// term then dropped the gradient's whole low part. Fixed in `weight`
/// (src/simd/kernel.rs): each product's error is kept only where finite.
#[test]
fn sigmoid_soft_weight_above_2_115_without_fma() {
    let case = SigmoidCase {
        gamma: f(0x40600000),                  /* 3.5 */
        alpha: Alpha::Balanced(f(0x33800000)), /* 5.9604645e-8 */
        soft: SoftTargets::Torchvision,
        reduction: Reduction::DivideBy(f(0x01ffffff)), /* 9.403954e-38 */
        offsets: [15, 15, 15],
        logits: fs(&[0xc2d00019]),  /* [-104.00019] */
        targets: fs(&[0x36a08600]), /* [4.7839712e-6] */
    };
    must_pass(&case, case.check());
}

/// Found by the same run, in the f64 path of an uncommitted change (the gradient
/// entries and reduced losses that a normaliser below 1 scales up from below the
/// normal range, src/sigmoid/exact.rs), on every backend: `q` rounded to 1 in f64
/// where a huge gamma multiplies `ln q` (gamma 4.3e37, snippet form: 1.7e34
/// instead of 0; a hard target at x = 82: 8.0e-9 instead of 6.8e-5, from `1 - q`
/// formed by subtraction), and `gamma * BCE` with BCE clamped to f64::MAX instead
/// of f32::MAX overflowing into `inf * 0` at x = -inf (NaN).
#[test]
fn sigmoid_small_normaliser_exact_path() {
    let cases = [
        (
            0x7e00_0000,
            Alpha::Balanced(0.0),
            SoftTargets::ExpNegBce,
            0x26a2_4260,
            0x4248_0070,
            0x3da8_0498,
        ),
        (
            0x7e00_0000,
            Alpha::Balanced(0.0),
            SoftTargets::Torchvision,
            0x0200_3f60,
            0x42a3_ffff,
            0,
        ),
        (
            0x4060_0000,
            Alpha::Uniform(0.5),
            SoftTargets::Torchvision,
            0x3f00_0000,
            0xff80_0000,
            0x0c30_1fff,
        ),
        (
            0x4000_0000,
            Alpha::Off,
            SoftTargets::Torchvision,
            0x0da2_4260,
            0xff80_0000,
            0x2667_42ff,
        ),
    ];
    for (gamma, alpha, soft, n, x, t) in cases {
        let case = SigmoidCase {
            gamma: f(gamma),
            alpha,
            soft,
            reduction: Reduction::DivideBy(f(n)),
            offsets: [0, 1, 2],
            logits: fs(&[x]),
            targets: fs(&[t]),
        };
        must_pass(&case, case.check());
    }
}
