//! Accuracy of the softmax focal loss on every backend against a high-precision
//! reference: per-row loss, the gradient (fused call, reductions Sum and Mean), and
//! the reduced losses, over rows whose logits span +-1e-3..+-1e4 (a seventh of them
//! +-1e6), with one dominant class (p_y -> 1 and p_y -> 0), ties, and moderate rows;
//! C in {1, 2, 3, 8, 9, 33, 80, 1000} (9 and 33: both drivers' edges and vector
//! tails), gamma in {0, 0.5, 1, 2, 3, 4.7, 8}, alpha off and per class.
//!
//! `cargo test --test softmax_accuracy -- --nocapture` prints one table per backend;
//! the tables also go to `target/softmax-accuracy-tables.md`. `FOCAL_SWEEP=quick`
//! uses a quarter of the rows (qemu).
//!
//! Bars: loss and every gradient entry within 8 ULP of the reference (no entry
//! crosses zero: the kernel never forms `delta_jy - p_j` by subtraction, so each is
//! measured in ULP of itself, absolute 2^-149 below the normal range); reduced
//! losses within 8 ULP of the exact sum of the reference losses; no non-finite
//! output; no output flushed to 0 where the reference is a normal f32.

#[allow(dead_code)]
#[path = "common/measure.rs"]
mod measure;

use std::fmt::Write as _;
use std::time::Instant;

use focal::{Backend, ClassAlpha, Reduction, SoftmaxFocal};
use measure::{exact_sum, rounds_to_normal, ulp_error, Neumaier};

/// The asserted bar for loss, gradient and reductions, in ULP.
const BAR: f64 = 8.0;
const CLASSES: [usize; 8] = [1, 2, 3, 8, 9, 33, 80, 1000];
const GAMMAS: [f32; 7] = [0.0, 0.5, 1.0, 2.0, 3.0, 4.7, 8.0];

/// The high-precision reference, in f64, written from the formulas (not from the
/// kernels' code): shared with the fuzz targets, whose module doc says why its
/// relative error stays below 1e-13. `check_reference` cross-checks it against the
/// textbook formulas and against finite differences.
#[allow(dead_code)] // `row` (the one-call form) serves the fuzz targets.
#[path = "../fuzz/src/softmax_reference.rs"]
mod softmax_reference;

mod reference {
    pub use super::softmax_reference::{parts, row_of as row, Parts, Row};

    /// The textbook formulas in f64 (softmax, then `(1-p)^gamma`, `ln p`, the
    /// chain rule): for cross-checking `row` on benign rows only.
    pub fn textbook(z: &[f32], y: usize, gamma: f64, alpha: f64) -> Row {
        let m = z
            .iter()
            .fold(f64::NEG_INFINITY, |a, &v| a.max(f64::from(v)));
        let e: Vec<f64> = z.iter().map(|&v| (f64::from(v) - m).exp()).collect();
        let s: f64 = e.iter().sum();
        let p: Vec<f64> = e.iter().map(|v| v / s).collect();
        let py = p[y];
        let loss = -alpha * (1.0 - py).powf(gamma) * py.ln();
        let g = gamma * (1.0 - py).powf(gamma - 1.0) * py * py.ln() - (1.0 - py).powf(gamma);
        let grad = (0..z.len())
            .map(|j| alpha * g * (if j == y { 1.0 } else { 0.0 } - p[j]))
            .collect();
        Row { loss, grad }
    }

    /// The loss alone, for finite differences.
    pub fn loss(z: &[f64], y: usize, gamma: f64) -> f64 {
        let m = z.iter().fold(f64::NEG_INFINITY, |a, &v| a.max(v));
        let s: f64 = z.iter().map(|v| (v - m).exp()).sum();
        let lp = z[y] - m - s.ln();
        -(1.0 - lp.exp()).powf(gamma) * lp
    }
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// `+-10^u`, u uniform in [lo, hi].
    fn spanning(&mut self, lo: f64, hi: f64) -> f32 {
        let v = 10f64.powf(lo + (hi - lo) * self.unit()) as f32;
        if self.next() & 1 == 0 {
            v
        } else {
            -v
        }
    }
}

/// Margins of a dominant logit over the rest: from near-ties to e^-margin far below
/// the f32 range (S_o, the loss and the gradient go through the subnormals and 0).
const MARGINS: [f32; 20] = [
    1e-3, 0.1, 1.0, 3.0, 8.0, 16.0, 17.5, 30.0, 50.0, 70.0, 86.0, 88.5, 90.0, 95.0, 100.0, 103.5,
    110.0, 150.0, 1e3, 1e4,
];

/// The rows of one class count: (logits, labels), row-major.
fn rows(c: usize, count: usize, rng: &mut Rng) -> (Vec<f32>, Vec<i32>) {
    let mut x = Vec::with_capacity(c * count);
    let mut labels = Vec::with_capacity(count);
    for r in 0..count {
        let y = rng.below(c);
        let family = r % 7;
        let mut row: Vec<f32> = match family {
            // Moderate: |z| up to ~10.
            0 => (0..c).map(|_| rng.spanning(-3.0, 1.0)).collect(),
            // Ties: every logit equal, or a few distinct values.
            1 => {
                let v = rng.spanning(-3.0, 4.0);
                let w = rng.spanning(-3.0, 4.0);
                (0..c).map(|j| if j % 3 == 0 { v } else { w }).collect()
            }
            // Wider than the grid asks: +-1e-3..+-1e6 (ranges beyond 2^16).
            6 => (0..c).map(|_| rng.spanning(-3.0, 6.0)).collect(),
            // Spanning +-1e-3..+-1e4.
            _ => (0..c).map(|_| rng.spanning(-3.0, 4.0)).collect(),
        };
        match family {
            // p_y -> 1: the label dominates by a margin.
            2 | 3 => {
                let max = row.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
                let margin = MARGINS[rng.below(MARGINS.len())];
                row[y] = max + margin;
            }
            // p_y -> 1 by a margin anywhere in 4..20 (1 - p_y from about 2e-9 to
            // 2e-2), not on the grid above: where gamma multiplies the error of
            // ln q (an independent audit found 9.1 ULP at a margin of 9.4).
            5 => {
                let max = row.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
                row[y] = max + (4.0 + 16.0 * rng.unit()) as f32;
            }
            // p_y -> 0: another class dominates by a margin.
            4 if c > 1 => {
                let k = (y + 1 + rng.below(c - 1)) % c;
                let max = row.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
                row[k] = max + MARGINS[rng.below(MARGINS.len())];
            }
            _ => {}
        }
        x.extend_from_slice(&row);
        labels.push(y as i32);
    }
    (x, labels)
}

/// Worst error of one quantity, with where it happened.
#[derive(Clone, Copy, Default)]
struct Worst {
    ulp: f64,
    row: usize,
    class: usize,
    got: f32,
    want: f64,
}

impl Worst {
    fn update(&mut self, got: f32, want: f64, row: usize, class: usize) {
        let e = ulp_error(got, want, want);
        if e > self.ulp || e.is_nan() {
            *self = Worst {
                ulp: if e.is_nan() { f64::INFINITY } else { e },
                row,
                class,
                got,
                want,
            };
        }
    }
}

/// One measured cell: a backend, C, gamma, alpha kind.
#[derive(Default)]
struct Cell {
    loss: Worst,
    grad: Worst,
    sum: f64,
    mean: f64,
    non_finite: usize,
    flushed: usize,
    outputs: usize,
}

/// Measures one backend on one (C, gamma, alpha).
fn measure(
    backend: Backend,
    c: usize,
    gamma: f32,
    weights: Option<&[f32]>,
    x: &[f32],
    labels: &[i32],
    parts: &[reference::Parts],
) -> Cell {
    let alpha = weights.map_or(ClassAlpha::Off, ClassAlpha::PerClass);
    let fl = SoftmaxFocal::new(gamma, alpha)
        .and_then(|f| f.with_backend(backend))
        .expect("valid parameters, available backend");
    let n = labels.len();
    let mut loss = vec![0.0f32; n];
    let mut grad = vec![0.0f32; n * c];
    let mut grad_mean = vec![0.0f32; n * c];
    fl.loss(x, labels, c, &mut loss).expect("valid input");
    fl.loss_and_grad(x, labels, c, Reduction::Mean, &mut grad_mean)
        .expect("valid input");
    let sum_fused = fl
        .loss_and_grad(x, labels, c, Reduction::Sum, &mut grad)
        .expect("valid input");
    let sum = fl
        .loss_reduced(x, labels, c, Reduction::Sum)
        .expect("valid input");
    let mean = fl
        .loss_reduced(x, labels, c, Reduction::Mean)
        .expect("valid input");
    let mut cell = Cell::default();
    let mut exact = Neumaier::default();
    for (r, p) in parts.iter().enumerate() {
        let y = labels[r] as usize;
        let a = weights.map_or(1.0, |w| f64::from(w[y]));
        let want = reference::row(p, f64::from(gamma), a);
        exact.add(want.loss);
        let mut check = |got: f32, want: f64, worst: &mut Worst, class: usize| {
            cell.outputs += 1;
            if !got.is_finite() {
                cell.non_finite += 1;
            }
            if got == 0.0 && rounds_to_normal(want) {
                cell.flushed += 1;
            }
            worst.update(got, want, r, class);
        };
        check(loss[r], want.loss, &mut cell.loss, y);
        for j in 0..c {
            check(grad[r * c + j], want.grad[j], &mut cell.grad, j);
            check(
                grad_mean[r * c + j],
                want.grad[j] / n as f64,
                &mut cell.grad,
                j,
            );
        }
    }
    let total = exact.total();
    cell.sum = ulp_error(sum, total, total).max(ulp_error(sum_fused, total, total));
    let m = total / n as f64;
    cell.mean = ulp_error(mean, m, m);
    cell
}

/// `error <= BAR`, false for NaN.
fn within(error: f64) -> bool {
    error <= BAR
}

fn fmt_ulp(v: f64) -> String {
    if v < 0.995 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

#[test]
fn accuracy_tables() {
    let start = Instant::now();
    let quick = std::env::var("FOCAL_SWEEP").as_deref() == Ok("quick");
    let mut rng = Rng(0x50F7_3A11_2017_0006);
    let backends: Vec<Backend> = Backend::available().collect();
    // results[backend][alpha][c][gamma]
    let mut cells: Vec<Vec<Vec<Vec<Cell>>>> = backends
        .iter()
        .map(|_| (0..2).map(|_| Vec::new()).collect())
        .collect();
    let mut total_rows = 0;
    let mut inputs = Vec::new();
    for &c in &CLASSES {
        let count = match c {
            1..=9 => 6000,
            10..=99 => 2400,
            _ => 480,
        };
        let count = if quick { count / 4 } else { count };
        total_rows += count;
        let (x, labels) = rows(c, count, &mut rng);
        inputs.push((x.clone(), labels.clone()));
        let parts: Vec<reference::Parts> = (0..count)
            .map(|r| reference::parts(&x[r * c..(r + 1) * c], labels[r] as usize))
            .collect();
        let weights: Vec<f32> = (0..c).map(|_| (0.05 + 0.95 * rng.unit()) as f32).collect();
        for (b, &backend) in backends.iter().enumerate() {
            for (ai, w) in [None, Some(&weights[..])].into_iter().enumerate() {
                let row: Vec<Cell> = GAMMAS
                    .iter()
                    .map(|&g| measure(backend, c, g, w, &x, &labels, &parts))
                    .collect();
                cells[b][ai].push(row);
            }
        }
    }

    let mut doc = String::new();
    let _ = writeln!(
        doc,
        "## Softmax focal loss: max error in ULP against the f64 reference\n\n\
         Generated by `cargo test --test softmax_accuracy -- --nocapture` ({total_rows} \
         rows per backend, alpha off and per class, {} sweep). Each cell: loss / gradient \
         (every entry, fused call, reductions Sum and Mean) / reduced Sum / Mean. Bar: \
         {BAR} ULP.\n",
        if quick { "quick" } else { "default" }
    );
    let mut failures = Vec::new();
    for (b, &backend) in backends.iter().enumerate() {
        for (ai, alpha_name) in ["alpha off", "alpha per class"].iter().enumerate() {
            let _ = writeln!(
                doc,
                "### {} ({} lanes), {alpha_name}\n",
                backend.name(),
                backend.lanes()
            );
            let _ = write!(doc, "| gamma |");
            for c in CLASSES {
                let _ = write!(doc, " C={c} |");
            }
            let _ = write!(doc, "\n|---|");
            for _ in CLASSES {
                let _ = write!(doc, "---|");
            }
            doc.push('\n');
            for (gi, &g) in GAMMAS.iter().enumerate() {
                let _ = write!(doc, "| {g} |");
                for (ci, &c) in CLASSES.iter().enumerate() {
                    let cell = &cells[b][ai][ci][gi];
                    let _ = write!(
                        doc,
                        " {} / {} / {} / {} |",
                        fmt_ulp(cell.loss.ulp),
                        fmt_ulp(cell.grad.ulp),
                        fmt_ulp(cell.sum),
                        fmt_ulp(cell.mean)
                    );
                    let at = format!("{} C={c} gamma={g} {alpha_name}", backend.name());
                    for (what, w) in [("loss", &cell.loss), ("grad", &cell.grad)] {
                        if !within(w.ulp) {
                            let (x, labels) = &inputs[ci];
                            let row = &x[w.row * c..(w.row + 1) * c];
                            failures.push(format!(
                                "{at}: {what} {:.2} ULP at row {} class {} (got {:e}, want {:e}); \
                                 label {}, logits {:?}{}",
                                w.ulp,
                                w.row,
                                w.class,
                                w.got,
                                w.want,
                                labels[w.row],
                                &row[..c.min(16)],
                                if c > 16 { " ..." } else { "" }
                            ));
                        }
                    }
                    if !(within(cell.sum) && within(cell.mean)) {
                        failures.push(format!(
                            "{at}: Sum {:.2} / Mean {:.2} ULP",
                            cell.sum, cell.mean
                        ));
                    }
                    if cell.non_finite > 0 || cell.flushed > 0 {
                        failures.push(format!(
                            "{at}: {} non-finite, {} flushed to 0 of {} outputs",
                            cell.non_finite, cell.flushed, cell.outputs
                        ));
                    }
                }
                doc.push('\n');
            }
            let outputs: usize = cells[b][ai].iter().flatten().map(|c| c.outputs).sum();
            let bad: usize = cells[b][ai]
                .iter()
                .flatten()
                .map(|c| c.non_finite + c.flushed)
                .sum();
            let _ = writeln!(
                doc,
                "\n{outputs} outputs, {bad} non-finite or flushed to 0.\n"
            );
        }
    }
    println!("{doc}");
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let _ = std::fs::create_dir_all(&target);
    let _ = std::fs::write(target.join("softmax-accuracy-tables.md"), &doc);
    println!(
        "softmax accuracy sweep took {:.1} s",
        start.elapsed().as_secs_f64()
    );
    for f in &failures {
        println!("FAIL {f}");
    }
    assert!(
        failures.is_empty(),
        "{} bar(s) broken (listed above)",
        failures.len()
    );
}

/// Long rows (C > 256) make `z - m` exact by Fast2Sum when every logit's exponent
/// is at most the max's, and by TwoSum otherwise. Rows whose label is the max `m`
/// and whose other logits all equal one `z` (their exps' errors add up instead of
/// averaging out, and `q^gamma` multiplies them): `z` negative with `|z| > m` but
/// the same exponent (the Fast2Sum path), and `z` one exponent above `m`'s where
/// Fast2Sum(-m, z) would miss the residual (searched for here), which must take
/// TwoSum. Loosening the kernel's condition by one exponent fails this test (46 ULP
/// on loss and gradient, against 2.0 and 4.7 as it is); the sweep above missed it.
#[test]
fn long_rows_shift_exact() {
    const C: usize = 300;
    let fast2sum_misses = |m: f32, z: f32| {
        let d = z - m;
        let fast = z - (d + m);
        let bb = d - z;
        let exact = (z - (d - bb)) + (-m - bb);
        fast != exact
    };
    let mut rng = Rng(0x005E_EDF2);
    let mut x = Vec::new();
    let mut labels = Vec::new();
    for r in 0..64 {
        // m in [4, 8) (exponent 2), z in (-8, -m) (the same exponent) or in
        // [-12, -8] (one above; half of the pairs are misses, none for an m on the
        // 2^-20 grid).
        let (m, z) = loop {
            let m = (4.0 + 4.0 * rng.unit()) as f32;
            let z = if r % 2 == 0 {
                -(m + (8.0 - m) * rng.unit() as f32)
            } else {
                -(8.0 + 4.0 * rng.unit() as f32)
            };
            if z > -8.0 && z < -m && m < 8.0 || z <= -8.0 && fast2sum_misses(m, z) {
                break (m, z);
            }
        };
        let y = rng.below(C);
        let mut row = vec![z; C];
        row[y] = m;
        x.extend_from_slice(&row);
        labels.push(y as i32);
    }
    for backend in Backend::available() {
        for gamma in [0.0f32, 2.0, 4.7] {
            let fl = SoftmaxFocal::new(gamma, ClassAlpha::Off)
                .and_then(|f| f.with_backend(backend))
                .expect("valid parameters, available backend");
            let mut grad = vec![0.0f32; x.len()];
            let mut loss = vec![0.0f32; labels.len()];
            fl.loss(&x, &labels, C, &mut loss).expect("valid input");
            fl.loss_and_grad(&x, &labels, C, Reduction::Sum, &mut grad)
                .expect("valid input");
            for (r, &label) in labels.iter().enumerate() {
                let y = label as usize;
                let z = &x[r * C..(r + 1) * C];
                let want = reference::row(&reference::parts(z, y), f64::from(gamma), 1.0);
                let e = ulp_error(loss[r], want.loss, want.loss);
                assert!(
                    within(e),
                    "{backend:?} gamma {gamma} row {r} (m {}, z {}): loss {} vs {:e}, {e:.2} ULP",
                    z[y],
                    z[(y + 1) % C],
                    loss[r],
                    want.loss
                );
                for j in [y, (y + 1) % C] {
                    let e = ulp_error(grad[r * C + j], want.grad[j], want.grad[j]);
                    assert!(
                        within(e),
                        "{backend:?} gamma {gamma} row {r} grad {j}: {} vs {:e}, {e:.2} ULP",
                        grad[r * C + j],
                        want.grad[j]
                    );
                }
            }
        }
    }
}

/// The reference's formulas against the textbook ones on benign rows (relative
/// 1e-12), and its gradient against central differences of its loss.
#[test]
fn check_reference() {
    let mut rng = Rng(7);
    for c in [2usize, 3, 8, 30] {
        for _ in 0..50 {
            let z: Vec<f32> = (0..c).map(|_| rng.spanning(-2.0, 0.5)).collect();
            let y = rng.below(c);
            for gamma in [0.0, 0.5, 1.0, 2.0, 4.7] {
                let p = reference::parts(&z, y);
                let a = reference::row(&p, gamma, 0.7);
                let b = reference::textbook(&z, y, gamma, 0.7);
                let close =
                    |u: f64, v: f64| (u - v).abs() <= 1e-12 * u.abs().max(v.abs()).max(1e-300);
                assert!(close(a.loss, b.loss), "loss {} vs {}", a.loss, b.loss);
                for j in 0..c {
                    assert!(
                        (a.grad[j] - b.grad[j]).abs() <= 1e-12 * (a.grad[j].abs() + 1e-3),
                        "grad {j}: {} vs {}",
                        a.grad[j],
                        b.grad[j]
                    );
                }
                let zf: Vec<f64> = z.iter().map(|&v| f64::from(v)).collect();
                for j in 0..c {
                    let h = 1e-6;
                    let mut zp = zf.clone();
                    let mut zm = zf.clone();
                    zp[j] += h;
                    zm[j] -= h;
                    let fd = (reference::loss(&zp, y, gamma) - reference::loss(&zm, y, gamma))
                        / (2.0 * h);
                    let g = a.grad[j] / 0.7;
                    assert!((fd - g).abs() <= 1e-6 * (g.abs() + 1e-3), "fd {fd} vs {g}");
                }
            }
        }
    }
    // The exact sum helper agrees with a plain sum on easy input.
    assert_eq!(exact_sum([1.0, 2.0, 3.0]), 6.0);
}

/// Rows of an independent audit (2026-12-01) whose gradient broke the 8-ULP bar
/// before the integer powers carried their products' roundings (gamma 4, a label
/// ahead by about 11.4: 8.4 ULP on every backend) and before `div_by` corrected
/// its quotient exactly without FMA (gamma 7.5, C = 80: 9.0 ULP on SSE2). One row,
/// `Reduction::Sum`, a uniform weight; every backend, every entry and the loss.
#[test]
fn audit_rows() {
    const M4: [u32; 80] = [
        0x3a97_3738,
        0xbec3_612d,
        0x3f13_d200,
        0xbad7_11d2,
        0x3ac0_9068,
        0x3e82_185b,
        0xbfd4_a95f,
        0xc0b7_52df,
        0x4017_9168,
        0xbd3e_b5a1,
        0x3f5c_8b98,
        0x3d07_35c5,
        0xbca1_c78e,
        0xc01d_145e,
        0xc118_18b9,
        0xbcf1_98ed,
        0xbf01_7d88,
        0x4011_96f2,
        0xc111_699e,
        0x3b9c_9788,
        0x3b74_f9d6,
        0xc0ea_2bd6,
        0x3d32_5e14,
        0x3d59_a4e6,
        0x3d2e_b09f,
        0xbb70_76e9,
        0x3d9d_b967,
        0x3af3_4f1d,
        0x3c6b_313d,
        0x3c9e_957c,
        0x3b39_885c,
        0x40ca_b44b,
        0xbffc_6b72,
        0x3cfb_32d8,
        0xba8b_61fa,
        0xbcb4_97e7,
        0x402d_6659,
        0xbb2c_868a,
        0x3a8a_5802,
        0x3dc5_27fb,
        0x3bd2_b85e,
        0xbfc3_93f1,
        0x3be8_9b5a,
        0xbf09_6cb4,
        0xbb5e_3aa2,
        0xbf8c_000b,
        0xbc49_59bf,
        0x3eb7_2323,
        0xc102_0489,
        0x3ea3_0545,
        0xbe12_cad2,
        0x40b8_2641,
        0x3ca2_7a82,
        0x3efa_a580,
        0xbb2f_34ec,
        0x40a2_3ae7,
        0xc112_0af6,
        0x3d02_a41d,
        0x408a_483c,
        0x3df2_af73,
        0x3f79_f9a4,
        0xbac2_34d8,
        0xbe32_a932,
        0x4139_cabe,
        0x3a90_1ada,
        0xbbed_4e0c,
        0xbbe7_9a22,
        0x401e_820e,
        0x3ac3_d968,
        0xbfb6_be63,
        0x3b82_b704,
        0x3d8b_f523,
        0xbcfa_ca35,
        0x4008_e608,
        0xbd9c_cf04,
        0x3e41_cfc0,
        0xbec3_b23a,
        0xbab4_57df,
        0x3dab_b063,
        0xbeff_2557,
    ];
    let cases: [(f32, u32, usize, &[u32]); 4] = [
        (
            4.0,
            0x3f0b_ce03,
            2,
            &[
                0xc586_1b82,
                0xc14e_df92,
                0x4138_208e,
                0x3e17_b123,
                0x3b31_1985,
            ],
        ),
        (
            4.0,
            0x3f6d_9c05,
            2,
            &[
                0xc584_2734,
                0xc14e_dd84,
                0x4138_208e,
                0x3e17_af23,
                0x3b31_1900,
            ],
        ),
        (
            4.0,
            0x3f02_5a62,
            2,
            &[
                0xc587_d571,
                0xc14e_e6a3,
                0x4138_208f,
                0x3e17_b123,
                0x3b31_18b4,
            ],
        ),
        (f32::from_bits(0x40f0_0103), 0x3f7e_ec9b, 63, &M4),
    ];
    let mut broken = Vec::new();
    for backend in Backend::available() {
        for &(gamma, alpha, y, bits) in &cases {
            let z: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
            let alpha = f32::from_bits(alpha);
            let want = reference::row(&reference::parts(&z, y), f64::from(gamma), f64::from(alpha));
            let fl = SoftmaxFocal::new(gamma, ClassAlpha::Uniform(alpha))
                .and_then(|f| f.with_backend(backend))
                .expect("valid parameters, available backend");
            let mut grad = vec![0.0f32; z.len()];
            let label = [y as i32];
            let loss = fl
                .loss_and_grad(&z, &label, z.len(), Reduction::Sum, &mut grad)
                .expect("valid call");
            let mut worst = (ulp_error(loss, want.loss, want.loss), "loss".to_string());
            for (j, (&g, &w)) in grad.iter().zip(&want.grad).enumerate() {
                let e = ulp_error(g, w, w);
                if e > worst.0 || e.is_nan() {
                    worst = (e, format!("grad[{j}]"));
                }
            }
            if worst.0 > 8.0 || worst.0.is_nan() {
                broken.push(format!(
                    "[{}] gamma {gamma} C = {} y = {y}: {} {:.2} ULP",
                    backend.name(),
                    z.len(),
                    worst.1,
                    worst.0
                ));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "audit rows above 8 ULP:\n{}",
        broken.join("\n")
    );
}

/// The reduced loss divided by a normaliser below 1 when every row is so confident
/// that its loss is below the normal f32 range (or rounds to 0), while the scaled
/// sum is a normal number: within the bar of the exact sum of the reference losses
/// times the scale, on every backend, for `loss_reduced` and the loss that
/// `loss_and_grad` returns. (An audit found 22 ULP, and a normal 1.2e-33 returned
/// as 0, at normalisers near 1e-17: the row losses were summed in f32, their
/// subnormal bits lost before the scale.) Rows with the label ahead by 35 to 95,
/// some ignored, C = 2 (rows in lanes) and C = 40 (classes in lanes); beside them a
/// row of ordinary loss, where the sum is normal and the kernels' sum stands.
/// The fused gradient is checked entry by entry too: most of its entries are
/// below the normal range before the division and normal after it.
#[test]
fn tiny_rows_divided_by_a_small_normaliser() {
    let (mut worst, mut worst_grad) = (0.0f64, 0.0f64);
    for c in [2usize, 40] {
        for mixed in [false, true] {
            let rows = 37;
            let mut x = Vec::new();
            let mut labels = Vec::new();
            for r in 0..rows {
                let margin = 35.0 + (r as f32 * 1.7) % 60.0;
                let y = r % c;
                x.extend((0..c).map(|j| {
                    if j == y {
                        3.0
                    } else {
                        3.0 - margin - j as f32 * 0.01
                    }
                }));
                labels.push(if r % 9 == 4 {
                    focal::IGNORE_INDEX
                } else {
                    y as i32
                });
            }
            if mixed {
                x[..c].iter_mut().for_each(|v| *v = 0.0);
            }
            for gamma in [0.5f32, 1.0, 2.0] {
                for n in [0.5f32, 1e-17, 1e-30] {
                    // The reference rows (None for an ignored row), once for the
                    // loss and the gradient.
                    let rows: Vec<_> = labels
                        .iter()
                        .enumerate()
                        .map(|(r, &y)| {
                            let z = &x[r * c..(r + 1) * c];
                            (y >= 0).then(|| {
                                reference::row(
                                    &reference::parts(z, y as usize),
                                    f64::from(gamma),
                                    1.0,
                                )
                            })
                        })
                        .collect();
                    let exact = exact_sum(rows.iter().flatten().map(|row| row.loss)) / f64::from(n);
                    // The gradient of the reduction: the entries of a row whose other
                    // classes sit far below the label are below the normal range
                    // before the division, and normal after it.
                    let want_grad: Vec<f64> = rows
                        .iter()
                        .flat_map(|row| match row {
                            Some(row) => row.grad.iter().map(|g| g / f64::from(n)).collect(),
                            None => vec![0.0; c],
                        })
                        .collect();
                    for backend in Backend::available() {
                        let fl = SoftmaxFocal::new(gamma, ClassAlpha::Off)
                            .and_then(|f| f.with_backend(backend))
                            .expect("valid");
                        let red = Reduction::DivideBy(n);
                        let got = fl.loss_reduced(&x, &labels, c, red).expect("valid");
                        let mut grad = vec![0.0; x.len()];
                        let fused = fl
                            .loss_and_grad(&x, &labels, c, red, &mut grad)
                            .expect("valid");
                        for (what, v) in [("loss_reduced", got), ("loss_and_grad", fused)] {
                            let err = ulp_error(v, exact, exact);
                            worst = worst.max(err);
                            assert!(
                                err <= BAR && (v != 0.0 || !rounds_to_normal(exact)),
                                "{backend:?} C={c} gamma {gamma} DivideBy({n:e}) mixed {mixed}: \
                                 {what} {v:e}, exact {exact:e} ({err:.2} ULP)"
                            );
                        }
                        for (i, (&g, &w)) in grad.iter().zip(&want_grad).enumerate() {
                            let err = ulp_error(g, w, w);
                            worst_grad = worst_grad.max(err);
                            assert!(
                                err <= BAR && (g != 0.0 || !rounds_to_normal(w)),
                                "{backend:?} C={c} gamma {gamma} DivideBy({n:e}) mixed {mixed}: \
                                 grad[{}][{}] {g:e}, exact {w:e} ({err:.2} ULP)",
                                i / c,
                                i % c
                            );
                        }
                    }
                }
            }
        }
    }
    println!(
        "tiny rows over a small normaliser: reduced loss max {worst:.2} ULP, gradient max \
         {worst_grad:.2} ULP"
    );
}
