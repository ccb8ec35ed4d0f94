//! The public API's error contract: every bad input is an `Err` naming what is wrong,
//! never a panic and never a silent NaN; the edge cases that are not errors (empty
//! slices, everything ignored) give the documented values.
//!
//! `Backend::force` changes process-wide state and `Backend::active` lazily writes
//! that state too, so every test in this binary takes [`serial`] first: tests in one
//! binary run on parallel threads, and an unpinned call racing the force test could
//! otherwise overwrite the forced choice between its store and its check.

use std::sync::{Mutex, MutexGuard};

use focal::{Alpha, Backend, Error, Focal, Reduction, SoftTargets, IGNORE};

static SERIAL: Mutex<()> = Mutex::new(());

/// Serializes the tests of this binary (a failed test poisons the lock; the others
/// still run).
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Every combination of backend and soft-target option, each pinned. (Under Miri,
/// which checks memory accesses, one soft-target option per backend, alternating:
/// the two forms differ in arithmetic only, and each doubled the interpreted time.)
fn losses(gamma: f32, alpha: Alpha) -> Vec<Focal> {
    let mut v = Vec::new();
    let forms = [SoftTargets::Torchvision, SoftTargets::ExpNegBce];
    for (i, b) in Backend::available().enumerate() {
        let forms = if cfg!(miri) {
            &forms[i % 2..i % 2 + 1]
        } else {
            &forms[..]
        };
        for &soft in forms {
            let fl = Focal::new(gamma, alpha)
                .expect("valid parameters")
                .soft_targets(soft)
                .with_backend(b)
                .expect("available backend");
            v.push(fl);
        }
    }
    v
}

/// Runs all four slice calls (with the given reduction where one is taken) and
/// returns their results, in the order loss, loss_reduced, grad, loss_and_grad.
fn all_calls(
    fl: &Focal,
    x: &[f32],
    t: &[f32],
    out: &mut [f32],
    reduction: Reduction,
) -> [Result<(), Error>; 4] {
    [
        fl.loss(x, t, out),
        fl.loss_reduced(x, t, reduction).map(|_| ()),
        fl.grad(x, t, out),
        fl.loss_and_grad(x, t, reduction, out).map(|_| ()),
    ]
}

#[test]
fn length_mismatch_names_the_slice() {
    let _s = serial();
    for fl in losses(2.0, Alpha::Balanced(0.25)) {
        let x = [0.5f32; 5];
        let t = [1.0f32; 5];
        let t_short = [1.0f32; 4];
        let mut out = [0.0f32; 5];
        let mut out_long = [0.0f32; 6];
        let targets_err = Error::LengthMismatch {
            slice: "targets",
            expected: 5,
            actual: 4,
        };
        // Targets are checked first, whatever the output length.
        for r in all_calls(&fl, &x, &t_short, &mut out, Reduction::Sum) {
            assert_eq!(r, Err(targets_err), "{:?}", fl.backend());
        }
        for r in all_calls(&fl, &x, &t_short, &mut out_long, Reduction::Mean) {
            assert_eq!(r, Err(targets_err), "{:?}", fl.backend());
        }
        assert_eq!(
            fl.loss(&x, &t, &mut out_long),
            Err(Error::LengthMismatch {
                slice: "out",
                expected: 5,
                actual: 6
            })
        );
        let grad_err = Err(Error::LengthMismatch {
            slice: "grad",
            expected: 5,
            actual: 6,
        });
        assert_eq!(fl.grad(&x, &t, &mut out_long), grad_err);
        assert_eq!(
            fl.loss_and_grad(&x, &t, Reduction::Sum, &mut out_long)
                .map(|_| ()),
            grad_err
        );
        // Empty logits with non-empty targets is a mismatch too.
        assert_eq!(
            fl.loss_reduced(&[], &t, Reduction::Sum),
            Err(Error::LengthMismatch {
                slice: "targets",
                expected: 0,
                actual: 5
            })
        );
    }
    for b in Backend::available() {
        let x = [0.5f32; 3];
        let mut out = [0.0f32; 2];
        let want = Err(Error::LengthMismatch {
            slice: "out",
            expected: 3,
            actual: 2,
        });
        assert_eq!(b.sigmoid(&x, &mut out), want);
        assert_eq!(b.softplus(&x, &mut out), want);
        assert_eq!(b.log_sigmoid(&x, &mut out), want);
    }
    let mut out = [0.0f32; 2];
    assert!(matches!(
        focal::sigmoid(&[1.0; 3], &mut out),
        Err(Error::LengthMismatch { slice: "out", .. })
    ));
    assert!(matches!(
        focal::softplus(&[1.0; 3], &mut out),
        Err(Error::LengthMismatch { slice: "out", .. })
    ));
    assert!(matches!(
        focal::log_sigmoid(&[1.0; 3], &mut out),
        Err(Error::LengthMismatch { slice: "out", .. })
    ));
}

/// Checks that `r` is `InvalidTarget { index, value }` (NaN compared as NaN).
fn assert_invalid_target(r: Result<(), Error>, index: usize, value: f32, ctx: &str) {
    match r {
        Err(Error::InvalidTarget { index: i, value: v }) => {
            assert_eq!(i, index, "{ctx}: wrong index");
            assert!(
                v.to_bits() == value.to_bits() || (v.is_nan() && value.is_nan()),
                "{ctx}: reported value {v}, offending value {value}"
            );
        }
        other => panic!("{ctx}: expected InvalidTarget at {index}, got {other:?}"),
    }
}

#[test]
fn invalid_targets_report_the_first_offender() {
    let _s = serial();
    let bad = [
        1.5f32,
        -0.5,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -2.0,
        1.0 + f32::EPSILON,
        -f32::from_bits(1), // the smallest negative subnormal
        -1.0 - f32::EPSILON,
    ];
    // Under Miri, which checks the memory accesses, three kinds of offender (the
    // others differ from them in the comparison's arithmetic only): a third of the
    // interpreted time.
    let bad: &[f32] = if cfg!(miri) {
        &[bad[0], bad[2], bad[7]]
    } else {
        &bad
    };
    for fl in losses(1.5, Alpha::Uniform(0.25)) {
        // Lengths and positions cover the vector body and the tail for 1, 8 and 16
        // lanes (under Miri, which has no 16-lane backend, for 1 and 8; 17 takes
        // Portable's pipelined loop).
        let sizes: &[usize] = if cfg!(miri) {
            &[1, 7, 8, 9, 17]
        } else {
            &[1, 7, 8, 9, 16, 17, 37]
        };
        for &n in sizes {
            for pos in [0, n / 2, n - 1] {
                for &v in bad {
                    let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.3 - 2.0).collect();
                    // Valid targets of every kind around the bad one, including -0.0.
                    let mut t: Vec<f32> = (0..n)
                        .map(|i| [1.0, 0.0, IGNORE, 0.3, -0.0][i % 5])
                        .collect();
                    t[pos] = v;
                    // A later offender must not be the one reported.
                    if pos + 1 < n {
                        t[n - 1] = 7.0;
                    }
                    let mut out = vec![0.0f32; n];
                    for (k, r) in all_calls(&fl, &x, &t, &mut out, Reduction::Mean)
                        .into_iter()
                        .enumerate()
                    {
                        let ctx = format!("{:?} call {k} n={n} pos={pos} v={v}", fl.backend());
                        assert_invalid_target(r, pos, v, &ctx);
                    }
                }
            }
        }
    }
}

#[test]
fn valid_edge_targets_are_accepted() {
    let _s = serial();
    // -0.0, the smallest subnormal, the largest value below 1, and the ignore label.
    let t = [
        -0.0f32,
        f32::from_bits(1),
        1.0 - f32::EPSILON / 2.0,
        IGNORE,
        0.0,
        1.0,
    ];
    let x = [0.3f32; 6];
    for fl in losses(2.0, Alpha::Balanced(0.25)) {
        let mut out = [0.0f32; 6];
        for r in all_calls(&fl, &x, &t, &mut out, Reduction::Mean) {
            assert_eq!(r, Ok(()), "{:?}", fl.backend());
        }
    }
}

#[test]
fn invalid_gamma_and_alpha() {
    let _s = serial();
    for g in [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        -1.0,
        -f32::MIN_POSITIVE,
    ] {
        match Focal::new(g, Alpha::Off) {
            Err(Error::InvalidGamma(v)) => {
                assert!(v.to_bits() == g.to_bits(), "reported {v}, given {g}")
            }
            other => panic!("gamma {g}: {other:?}"),
        }
    }
    for g in [0.0f32, -0.0, f32::from_bits(1), 0.5, 8.0, 100.0, f32::MAX] {
        assert!(Focal::new(g, Alpha::Off).is_ok(), "gamma {g} must be valid");
    }
    for a in [-0.1f32, 1.1, f32::NAN, f32::INFINITY, -f32::from_bits(1)] {
        for alpha in [Alpha::Balanced(a), Alpha::Uniform(a)] {
            match Focal::new(2.0, alpha) {
                Err(Error::InvalidAlpha(v)) => {
                    assert!(v.to_bits() == a.to_bits(), "reported {v}, given {a}")
                }
                other => panic!("{alpha:?}: {other:?}"),
            }
        }
    }
    for a in [0.0f32, -0.0, 1.0, 0.25] {
        assert!(Focal::new(2.0, Alpha::Balanced(a)).is_ok());
        assert!(Focal::new(2.0, Alpha::Uniform(a)).is_ok());
    }
    // An invalid gamma is reported before an invalid alpha.
    assert!(matches!(
        Focal::new(-1.0, Alpha::Uniform(2.0)),
        Err(Error::InvalidGamma(_))
    ));
}

#[test]
fn invalid_normalizer() {
    let _s = serial();
    for fl in losses(2.0, Alpha::Balanced(0.25)) {
        for n in [
            0.0f32,
            -0.0,
            -1.0,
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            // Subnormal: 1/n would overflow f32 (a fuzzer finding).
            f32::from_bits(0x12),
            f32::MIN_POSITIVE / 2.0,
        ] {
            // Non-empty, empty and all-ignored inputs: the normaliser is checked in
            // every case (there is no early return that skips it).
            let cases: [(&[f32], &[f32]); 3] = [
                (&[0.5, -1.0, 2.0], &[1.0, 0.0, 0.5]),
                (&[], &[]),
                (&[0.5, 1.0], &[IGNORE, IGNORE]),
            ];
            for (x, t) in cases {
                let mut grad = vec![0.0f32; x.len()];
                for r in [
                    fl.loss_reduced(x, t, Reduction::DivideBy(n)),
                    fl.loss_and_grad(x, t, Reduction::DivideBy(n), &mut grad),
                ] {
                    match r {
                        Err(Error::InvalidNormalizer(v)) => {
                            assert!(v.to_bits() == n.to_bits(), "reported {v}, given {n}")
                        }
                        other => panic!(
                            "{:?} DivideBy({n}) len {}: {other:?}",
                            fl.backend(),
                            x.len()
                        ),
                    }
                }
            }
        }
        // Small and large positive normalisers are fine.
        for n in [f32::MIN_POSITIVE, 1.0, 3.5, 1e30] {
            assert!(fl
                .loss_reduced(&[0.5], &[1.0], Reduction::DivideBy(n))
                .is_ok());
        }
    }
}

#[test]
fn empty_slices_are_fine() {
    let _s = serial();
    for fl in losses(2.0, Alpha::Balanced(0.25)) {
        let mut out: [f32; 0] = [];
        assert_eq!(fl.loss(&[], &[], &mut out), Ok(()));
        assert_eq!(fl.grad(&[], &[], &mut out), Ok(()));
        for r in [Reduction::Sum, Reduction::Mean, Reduction::DivideBy(4.0)] {
            let v = fl.loss_reduced(&[], &[], r);
            assert_eq!(v.map(f32::to_bits), Ok(0.0f32.to_bits()), "{r:?}");
            let v = fl.loss_and_grad(&[], &[], r, &mut out);
            assert_eq!(v.map(f32::to_bits), Ok(0.0f32.to_bits()), "{r:?}");
        }
    }
    let mut out: [f32; 0] = [];
    for b in Backend::available() {
        assert_eq!(b.sigmoid(&[], &mut out), Ok(()));
        assert_eq!(b.softplus(&[], &mut out), Ok(()));
        assert_eq!(b.log_sigmoid(&[], &mut out), Ok(()));
    }
}

#[test]
fn all_ignored_mean_is_zero_with_zero_gradient() {
    let _s = serial();
    for fl in losses(2.0, Alpha::Balanced(0.25)) {
        for n in [1usize, 5, 8, 16, 17, 37] {
            let x: Vec<f32> = (0..n).map(|i| i as f32 - 3.0).collect();
            let t = vec![IGNORE; n];
            assert_eq!(fl.loss_reduced(&x, &t, Reduction::Mean), Ok(0.0));
            assert_eq!(fl.loss_reduced(&x, &t, Reduction::Sum), Ok(0.0));
            // Pre-filled with NaN so that an untouched gradient is noticed.
            let mut grad = vec![f32::NAN; n];
            let v = fl.loss_and_grad(&x, &t, Reduction::Mean, &mut grad);
            assert_eq!(v, Ok(0.0));
            assert!(grad.iter().all(|&g| g == 0.0), "{grad:?}");
            let mut grad = vec![f32::NAN; n];
            assert_eq!(fl.loss_and_grad(&x, &t, Reduction::Sum, &mut grad), Ok(0.0));
            assert!(grad.iter().all(|&g| g == 0.0), "{grad:?}");
            let mut out = vec![f32::NAN; n];
            fl.loss(&x, &t, &mut out).expect("valid input");
            assert!(out.iter().all(|&l| l == 0.0), "{out:?}");
        }
    }
}

#[test]
fn with_backend_checks_availability() {
    let _s = serial();
    for b in Backend::ALL {
        let r = Focal::new(2.0, Alpha::Off).and_then(|fl| fl.with_backend(b));
        if b.is_available() {
            assert_eq!(r.map(|fl| fl.backend()), Ok(b));
        } else {
            assert_eq!(r, Err(Error::BackendUnavailable(b)));
            let mut out = [0.0f32; 1];
            assert_eq!(
                b.sigmoid(&[0.0], &mut out),
                Err(Error::BackendUnavailable(b))
            );
            assert_eq!(Backend::force(Some(b)), Err(Error::BackendUnavailable(b)));
        }
    }
    // Scalar and Portable exist in every build, and `available` lists exactly the
    // backends that say they are available, in `ALL` order.
    assert!(Backend::Scalar.is_available() && Backend::Portable.is_available());
    let listed: Vec<Backend> = Backend::available().collect();
    let expected: Vec<Backend> = Backend::ALL
        .into_iter()
        .filter(|b| b.is_available())
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(
        Backend::detect(),
        *listed.last().expect("scalar is always there")
    );
    let unavailable = Backend::ALL.into_iter().find(|b| !b.is_available());
    if unavailable.is_none() {
        println!("every backend is available on this CPU: BackendUnavailable not reachable");
    }
}

/// Restores detection when dropped, so a failing force test does not leave the
/// process on a forced backend.
struct Unforce;

impl Drop for Unforce {
    fn drop(&mut self) {
        let _ = Backend::force(None);
    }
}

#[test]
fn force_round_trip() {
    let _s = serial();
    let _restore = Unforce;
    let x = [3.0f32, -2.0, 0.5];
    let t = [1.0f32, 1.0, 0.0];
    let unpinned = Focal::new(2.0, Alpha::Balanced(0.25)).expect("valid");
    for b in Backend::available() {
        assert_eq!(Backend::force(Some(b)), Ok(()));
        assert_eq!(Backend::active(), b);
        assert_eq!(unpinned.backend(), b);
        // An unpinned call now gives the same bits as one pinned to that backend.
        let pinned = unpinned.with_backend(b).expect("available");
        assert_eq!(
            unpinned
                .loss_reduced(&x, &t, Reduction::Sum)
                .map(f32::to_bits),
            pinned
                .loss_reduced(&x, &t, Reduction::Sum)
                .map(f32::to_bits)
        );
        let (mut a, mut c) = ([0.0f32; 3], [0.0f32; 3]);
        focal::softplus(&x, &mut a).expect("same lengths");
        b.softplus(&x, &mut c).expect("same lengths");
        assert_eq!(a.map(f32::to_bits), c.map(f32::to_bits));
    }
    // A pinned loss ignores the forced backend.
    assert_eq!(Backend::force(Some(Backend::Scalar)), Ok(()));
    assert_eq!(Backend::active(), Backend::Scalar);
    let pinned = unpinned
        .with_backend(Backend::detect())
        .expect("detected backend is available");
    assert_eq!(pinned.backend(), Backend::detect());
    assert_eq!(Backend::force(None), Ok(()));
    assert_eq!(Backend::active(), Backend::detect());
    assert_eq!(unpinned.backend(), Backend::detect());
}

#[test]
fn backend_names_and_lanes() {
    let _s = serial();
    let names: Vec<&str> = Backend::ALL.iter().map(|b| b.name()).collect();
    assert_eq!(names, ["scalar", "portable", "avx2", "avx512"]);
    let lanes: Vec<usize> = Backend::ALL.iter().map(|b| b.lanes()).collect();
    assert_eq!(lanes, [1, 8, 8, 16]);
}

#[test]
fn errors_display_and_implement_error() {
    let _s = serial();
    let errors = [
        Error::LengthMismatch {
            slice: "targets",
            expected: 3,
            actual: 2,
        },
        Error::InvalidTarget {
            index: 4,
            value: 1.5,
        },
        Error::InvalidGamma(-1.0),
        Error::InvalidAlpha(1.1),
        Error::InvalidNormalizer(0.0),
        Error::BackendUnavailable(Backend::Avx512),
    ];
    for e in errors {
        let s = e.to_string();
        assert!(!s.trim().is_empty(), "{e:?} displays as empty");
        let as_error: &dyn core::error::Error = &e;
        assert!(as_error.source().is_none());
        assert_eq!(as_error.to_string(), s);
        // Usable through std's boxed error too.
        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
        assert_eq!(boxed.to_string(), s);
    }
    // The messages carry the details a user needs.
    let s = errors[0].to_string();
    assert!(
        s.contains("targets") && s.contains('3') && s.contains('2'),
        "{s}"
    );
    let s = errors[1].to_string();
    assert!(s.contains('4') && s.contains("1.5"), "{s}");
}

#[test]
fn no_panic_on_extreme_valid_input() {
    let _s = serial();
    // Valid calls with extreme values return Ok (the values are checked elsewhere).
    let x = [
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        0.0,
        -0.0,
        f32::from_bits(1),
    ];
    let t = [1.0f32, 0.0, 1.0, 0.0, 0.5, IGNORE, 0.25, 1.0];
    for gamma in [0.0f32, 0.5, 2.0, 7.3, 100.0] {
        for fl in losses(gamma, Alpha::Balanced(0.25)) {
            let mut out = [0.0f32; 8];
            for r in all_calls(&fl, &x, &t, &mut out, Reduction::Mean) {
                assert_eq!(r, Ok(()));
            }
        }
    }
}

/// Logits of one hard-target slice, spread over the region where every path of the
/// kernel is used (confident and not).
fn spread_logits(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 37) % 101) as f32 * 0.23 - 11.0)
        .collect()
}

/// The calls run before the targets are scanned, betting that every target is 0 or
/// 1 (and, for `Mean`, that none is ignored). A bet lost in the middle of the slice
/// must give, bit for bit, what the checked path gives: here the same slice with the
/// odd target moved to the end (which skips the bet), compared on every element
/// that both slices share. Lengths cover the pipelined loop, the single vectors and
/// the tail on every backend.
#[test]
fn lost_target_bets_give_the_checked_results() {
    let _s = serial();
    // (Under Miri, which interprets every operation, one length: it still covers
    // the pipelined loop, the single vectors and the tail of Scalar and Portable.)
    let sizes: &[usize] = if cfg!(miri) { &[37] } else { &[37, 100, 1000] };
    for fl in losses(2.0, Alpha::Balanced(0.25)) {
        for &n in sizes {
            let x = spread_logits(n);
            let hard: Vec<f32> = (0..n).map(|i| (i % 3 == 0) as u8 as f32).collect();
            // Lost in the first vector, in the middle and in the tail (under Miri
            // without k = 1, the first vector's path again).
            let ks: &[usize] = if cfg!(miri) {
                &[0, n / 2, n - 2]
            } else {
                &[0, 1, n / 2, n - 2]
            };
            for odd in [IGNORE, 0.3] {
                for &k in ks {
                    // a: the odd target at k (the bet is lost there); b: at the end.
                    let mut ta = hard.clone();
                    ta[k] = odd;
                    let mut tb = hard.clone();
                    tb[n - 1] = odd;
                    let shared = |i: usize| i != k && i != n - 1;
                    let ctx = format!("{:?} n={n} odd={odd} k={k}", fl.backend());
                    let (mut ga, mut gb) = (vec![0.0f32; n], vec![0.0f32; n]);
                    for red in [Reduction::Mean, Reduction::Sum] {
                        fl.loss_and_grad(&x, &ta, red, &mut ga).expect("valid");
                        fl.loss_and_grad(&x, &tb, red, &mut gb).expect("valid");
                        for i in (0..n).filter(|&i| shared(i)) {
                            assert_eq!(ga[i].to_bits(), gb[i].to_bits(), "{ctx} {red:?} i={i}");
                        }
                    }
                    fl.grad(&x, &ta, &mut ga).expect("valid");
                    fl.grad(&x, &tb, &mut gb).expect("valid");
                    fl.loss(&x, &ta, &mut ga).expect("valid");
                    fl.loss(&x, &tb, &mut gb).expect("valid");
                    for i in (0..n).filter(|&i| shared(i)) {
                        assert_eq!(ga[i].to_bits(), gb[i].to_bits(), "{ctx} loss i={i}");
                    }
                    if odd == IGNORE {
                        assert_eq!(ga[k], 0.0, "{ctx}: the ignored element");
                    }
                }
            }
        }
    }
}

/// The bet won and the checked path agree: `Mean` over a slice of hard targets is
/// `Sum` divided by the length (within the two roundings of the scales), and the
/// sum of a lost bet's `Mean` matches the count of the elements it keeps.
#[test]
fn target_bets_keep_the_mean_count() {
    let _s = serial();
    for fl in losses(1.5, Alpha::Off) {
        let n = if cfg!(miri) { 100 } else { 1000 };
        let x = spread_logits(n);
        let mut t: Vec<f32> = (0..n).map(|i| (i % 7 == 0) as u8 as f32).collect();
        let sum = f64::from(fl.loss_reduced(&x, &t, Reduction::Sum).expect("valid"));
        let mean = f64::from(fl.loss_reduced(&x, &t, Reduction::Mean).expect("valid"));
        assert!(
            (mean * n as f64 / sum - 1.0).abs() < 1e-6,
            "{:?}",
            fl.backend()
        );
        // Ignore 10 elements from the middle on: Mean divides by n - 10.
        let kept_sum: f64 = {
            for v in &mut t[n / 2..n / 2 + 10] {
                *v = IGNORE;
            }
            f64::from(fl.loss_reduced(&x, &t, Reduction::Sum).expect("valid"))
        };
        let mean = f64::from(fl.loss_reduced(&x, &t, Reduction::Mean).expect("valid"));
        let ctx = format!("{:?}", fl.backend());
        assert!(
            (mean * (n - 10) as f64 / kept_sum - 1.0).abs() < 1e-6,
            "{ctx}"
        );
    }
}

/// An invalid target met by the bet (the last target is valid, so the bet is
/// taken) is still reported, first offender and value, by every call.
#[test]
fn invalid_targets_found_by_a_lost_bet() {
    let _s = serial();
    let sizes: &[usize] = if cfg!(miri) { &[37] } else { &[37, 1000] };
    for fl in losses(2.0, Alpha::Uniform(0.25)) {
        for &n in sizes {
            for pos in [0, n / 2, n - 2] {
                for v in [0.5f32, f32::NAN, 2.0] {
                    let x = spread_logits(n);
                    let mut t = vec![1.0f32; n];
                    t[pos] = 7.0;
                    if v != 0.5 {
                        // Also a later offender, which must not be the one reported.
                        t[n - 2] = v;
                    }
                    let mut out = vec![0.0f32; n];
                    for (k, r) in all_calls(&fl, &x, &t, &mut out, Reduction::Mean)
                        .into_iter()
                        .enumerate()
                    {
                        let ctx = format!("{:?} call {k} n={n} pos={pos}", fl.backend());
                        let (want_pos, want_v) = if pos == n - 2 && v != 0.5 {
                            (pos, v)
                        } else {
                            (pos, 7.0)
                        };
                        assert_invalid_target(r, want_pos, want_v, &ctx);
                    }
                }
            }
        }
    }
}
