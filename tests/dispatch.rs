//! Runtime dispatch: which backend the CPU gets, and that every available one runs.
//!
//! CI runs this binary natively and under qemu CPU models (`-cpu max`: AVX2+FMA,
//! `-cpu Nehalem`: SSE2 only, aarch64: NEON) with `FOCAL_EXPECT_BACKEND` set to the
//! backend that CPU must get, so a run proves the emulated CPU really took that path
//! (and did not silently fall back to a slower one, or crash on a faster one).

use focal::{Alpha, Backend, Error, Focal, Reduction, SoftTargets};

/// Environment variable naming the backend detection must pick on this CPU.
const EXPECT_VAR: &str = "FOCAL_EXPECT_BACKEND";

/// Largest distance, in ULP, allowed between a vector backend and Scalar.
const MAX_ULP: u32 = 8;

/// Distance between two finite f32 in units in the last place (0 for +0 and -0).
fn ulp_distance(a: f32, b: f32) -> u32 {
    // Map the sign-magnitude bits onto a monotonic integer line.
    fn key(v: f32) -> i64 {
        let bits = v.to_bits();
        if bits & 0x8000_0000 != 0 {
            -i64::from(bits & 0x7FFF_FFFF)
        } else {
            i64::from(bits)
        }
    }
    u32::try_from((key(a) - key(b)).unsigned_abs()).unwrap_or(u32::MAX)
}

/// Small deterministic inputs: hard, ignored and soft targets, logits from
/// confident-wrong through 0 to confident-right, a length with a vector body and a
/// tail for every lane count (1, 8, 16).
fn inputs(soft: bool) -> (Vec<f32>, Vec<f32>) {
    let n = 37;
    let logits = (0..n)
        .map(|i| (i as f32 - 18.0) * 0.93 + 0.11 * ((i * 7) % 5) as f32)
        .collect();
    let targets = (0..n)
        .map(|i| match i % 5 {
            0 | 3 => 1.0,
            1 => 0.0,
            2 => -1.0,
            _ if soft => 0.25 + 0.1 * (i % 4) as f32,
            _ => 0.0,
        })
        .collect();
    (logits, targets)
}

#[test]
fn detected_backend_matches_expectation() {
    let detected = Backend::detect();
    let active = Backend::active();
    let available: Vec<&str> = Backend::available().map(Backend::name).collect();
    // Printed always (visible with --nocapture, and in the output of a failing run).
    println!(
        "focal: detected backend {:?} ({}), active {}, available {:?}",
        detected,
        detected.name(),
        active.name(),
        available
    );
    eprintln!("focal: detected backend {}", detected.name());

    match std::env::var(EXPECT_VAR) {
        Ok(expected) => {
            let expected = expected.trim().to_ascii_lowercase();
            assert!(
                Backend::ALL.iter().any(|b| b.name() == expected),
                "{EXPECT_VAR}={expected:?} is not a backend name (scalar|portable|avx2|avx512)"
            );
            assert_eq!(
                detected.name(),
                expected,
                "Backend::detect() is not what {EXPECT_VAR} expects on this CPU"
            );
            assert_eq!(
                active.name(),
                expected,
                "Backend::active() is not what {EXPECT_VAR} expects on this CPU"
            );
        }
        Err(std::env::VarError::NotPresent) => {
            println!("focal: {EXPECT_VAR} not set, nothing to compare against");
        }
        Err(e) => panic!("{EXPECT_VAR} is not valid unicode: {e}"),
    }
}

#[test]
fn detection_is_consistent() {
    let available: Vec<Backend> = Backend::available().collect();
    // Scalar and Portable exist on every target, slowest first.
    assert_eq!(available.first(), Some(&Backend::Scalar));
    assert_eq!(available.get(1), Some(&Backend::Portable));
    assert_eq!(Some(&Backend::detect()), available.last());
    for b in Backend::ALL {
        assert_eq!(b.is_available(), available.contains(&b), "{b:?}");
    }
    // Not forced in this binary, so active is the detected best.
    assert_eq!(Backend::active(), Backend::detect());
    // Order of ALL is the order of available.
    let order: Vec<Backend> = Backend::ALL
        .into_iter()
        .filter(|b| available.contains(b))
        .collect();
    assert_eq!(order, available);
}

/// The crate's detection agrees with std's, whichever detection path the crate was
/// built with (std, or CPUID + XGETBV through `cpufeatures` without `std`).
#[cfg(target_arch = "x86_64")]
#[test]
fn x86_availability_matches_std_detection() {
    let avx2_fma = std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
    let avx512f = std::is_x86_feature_detected!("avx512f");
    println!("std detects: avx2+fma {avx2_fma}, avx512f {avx512f}");
    assert_eq!(Backend::Avx2.is_available(), avx2_fma, "Avx2 vs avx2+fma");
    assert_eq!(
        Backend::Avx512.is_available(),
        avx512f && avx2_fma,
        "Avx512 vs avx512f (+avx2, fma)"
    );
    let expected = if avx512f && avx2_fma {
        Backend::Avx512
    } else if avx2_fma {
        Backend::Avx2
    } else {
        Backend::Portable
    };
    assert_eq!(Backend::detect(), expected);
}

#[cfg(not(target_arch = "x86_64"))]
#[test]
fn x86_backends_unavailable_elsewhere() {
    assert!(!Backend::Avx2.is_available());
    assert!(!Backend::Avx512.is_available());
    assert_eq!(Backend::detect(), Backend::Portable);
}

#[test]
fn unavailable_backends_are_errors() {
    let fl = Focal::new(2.0, Alpha::Balanced(0.25)).expect("valid parameters");
    for b in Backend::ALL.into_iter().filter(|b| !b.is_available()) {
        assert_eq!(fl.with_backend(b), Err(Error::BackendUnavailable(b)));
        let x = [0.5f32; 3];
        let mut out = [0.0f32; 3];
        assert_eq!(b.sigmoid(&x, &mut out), Err(Error::BackendUnavailable(b)));
    }
}

/// Every available backend runs a fused call and agrees with Scalar within a few ULP,
/// for integer and non-integer gamma, hard and soft targets, every reduction. Under
/// Miri (which is about a million times slower) a corner of the grid runs: one
/// integer and one non-integer gamma, both soft-target forms.
#[test]
fn every_available_backend_agrees_with_scalar() {
    let (gammas, alphas, reductions): (&[f32], &[Alpha], &[Reduction]) = if cfg!(miri) {
        (&[2.0, 1.5], &[Alpha::Balanced(0.25)], &[Reduction::Mean])
    } else {
        (
            &[0.0, 1.0, 2.0, 1.5, 0.25],
            &[Alpha::Off, Alpha::Balanced(0.25), Alpha::Uniform(0.75)],
            &[Reduction::Sum, Reduction::Mean, Reduction::DivideBy(7.0)],
        )
    };
    let modes = [SoftTargets::Torchvision, SoftTargets::ExpNegBce];
    let mut worst = 0u32;
    for soft in [false, true] {
        let (x, t) = inputs(soft);
        let mut g_ref = vec![0.0f32; x.len()];
        let mut g = vec![0.0f32; x.len()];
        for &gamma in gammas {
            for &alpha in alphas {
                for mode in modes {
                    for &reduction in reductions {
                        let base = Focal::new(gamma, alpha)
                            .expect("valid parameters")
                            .soft_targets(mode);
                        let l_ref = base
                            .with_backend(Backend::Scalar)
                            .expect("scalar is always available")
                            .loss_and_grad(&x, &t, reduction, &mut g_ref)
                            .expect("valid call");
                        assert!(l_ref.is_finite() && l_ref > 0.0, "scalar loss {l_ref}");
                        for b in Backend::available().filter(|&b| b != Backend::Scalar) {
                            let fl = base.with_backend(b).expect("available backend");
                            assert_eq!(fl.backend(), b);
                            g.fill(f32::NAN);
                            let l = fl
                                .loss_and_grad(&x, &t, reduction, &mut g)
                                .expect("valid call");
                            let d = ulp_distance(l, l_ref);
                            assert!(
                                d <= MAX_ULP,
                                "{b:?} gamma {gamma} {alpha:?} {mode:?} {reduction:?} soft {soft}: \
                                 loss {l} vs scalar {l_ref} ({d} ULP)"
                            );
                            worst = worst.max(d);
                            for (i, (&gi, &ri)) in g.iter().zip(&g_ref).enumerate() {
                                let d = ulp_distance(gi, ri);
                                assert!(
                                    d <= MAX_ULP,
                                    "{b:?} gamma {gamma} {alpha:?} {mode:?} {reduction:?} \
                                     soft {soft}: grad[{i}] (x {}, t {}) {gi} vs scalar {ri} \
                                     ({d} ULP)",
                                    x[i],
                                    t[i]
                                );
                                worst = worst.max(d);
                                // Ignored elements get exactly zero gradient.
                                if t[i] == -1.0 {
                                    assert_eq!(gi, 0.0, "{b:?}: grad[{i}] of an ignored target");
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    println!("worst distance to Scalar over all backends: {worst} ULP");
}

/// The building blocks route through each backend's entry points too.
#[test]
fn every_available_backend_runs_building_blocks() {
    let (x, _) = inputs(false);
    for b in Backend::available() {
        let mut out = vec![0.0f32; x.len()];
        let mut reference = vec![0.0f32; x.len()];
        type Op = fn(Backend, &[f32], &mut [f32]) -> Result<(), Error>;
        let ops: [(&str, Op); 3] = [
            ("sigmoid", Backend::sigmoid),
            ("softplus", Backend::softplus),
            ("log_sigmoid", Backend::log_sigmoid),
        ];
        for (name, op) in ops {
            op(b, &x, &mut out).expect("available backend");
            op(Backend::Scalar, &x, &mut reference).expect("scalar");
            for (i, (&o, &r)) in out.iter().zip(&reference).enumerate() {
                let d = ulp_distance(o, r);
                assert!(d <= MAX_ULP, "{b:?} {name}({}) = {o} vs scalar {r}", x[i]);
            }
        }
    }
}
