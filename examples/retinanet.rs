//! One training step's classification loss of a dense detector: 100k anchors x 80
//! classes (8M logits, about 0.1% positives) from a trained RetinaNet head. For every
//! backend this CPU has, and for the naive textbook port, it times the fused mean loss
//! and gradient (gamma 2, alpha 0.25 balanced) and measures their error against an
//! f64 reference computed with the stable formulas.
//!
//! `cargo run --release --example retinanet`

use std::time::{Duration, Instant};

use focal::{Alpha, Backend, Focal, Reduction};

mod dense_batch;
#[path = "naive/mod.rs"]
mod naive;

const ANCHORS: usize = 100_000;
const CLASSES: usize = 80;
/// Fraction of anchors matched to a ground-truth box; one positive class each, so
/// 0.08 / 80 = 0.1% of the elements are positive.
const FOREGROUND: f32 = 0.08;
const GAMMA: f32 = 2.0;
const ALPHA: f32 = 0.25;
const SEED: u64 = 2017;
/// Timed runs per implementation; the best one is reported.
const RUNS: usize = 5;

/// The f64 reference of one element: DESIGN.md §2's formulas evaluated in f64, which
/// has 29 more bits than the f32 results it judges. Returns (FL, dFL/dx).
fn reference(x: f32, t: f32, gamma: f64, alpha: f64) -> (f64, f64) {
    let (s, alpha_t) = if t == 1.0 {
        (1.0, alpha)
    } else {
        (-1.0, 1.0 - alpha)
    };
    let z = s * f64::from(x);
    let e = (-z.abs()).exp();
    // q = 1 - p_t = sigmoid(-z), never formed as 1 - p.
    let (q, one_minus_q) = if z >= 0.0 {
        (e / (1.0 + e), 1.0 / (1.0 + e))
    } else {
        (1.0 / (1.0 + e), e / (1.0 + e))
    };
    let log1p_e = e.ln_1p();
    let bce = (-z).max(0.0) + log1p_e; // softplus(-z)
    let q_gamma = (-gamma * (z.max(0.0) + log1p_e)).exp(); // exp(-gamma softplus(z))
    let loss = alpha_t * q_gamma * bce;
    let grad = -s * alpha_t * q_gamma * (gamma * one_minus_q * bce + q);
    (loss, grad)
}

/// Error of `got` in units in the last place of `want` rounded to f32 (absolute, in
/// units of the smallest subnormal, below the normal range).
fn ulp_error(got: f32, want: f64) -> f64 {
    if got.is_nan() {
        return f64::INFINITY;
    }
    let rounded = (want as f32).abs();
    let ulp = if rounded < f32::MIN_POSITIVE {
        f64::from(f32::from_bits(1))
    } else {
        let exponent = (rounded.to_bits() >> 23) as i32 - 127;
        2f64.powi(exponent - 23)
    };
    (f64::from(got) - want).abs() / ulp
}

/// Best wall time of `RUNS` calls, and the last call's result.
fn best_of<R>(mut f: impl FnMut() -> R) -> (R, Duration) {
    let start = Instant::now();
    let mut result = std::hint::black_box(f());
    let mut best = start.elapsed();
    for _ in 1..RUNS {
        let start = Instant::now();
        result = std::hint::black_box(f());
        best = best.min(start.elapsed());
    }
    (result, best)
}

/// One row of the table: an implementation's timing and its error.
struct Row {
    name: &'static str,
    loss: f32,
    time: Duration,
    loss_rel_err: f64,
    grad_max_ulp: f64,
    grad_mean_ulp: f64,
    /// The element with the largest gradient error: (index, got).
    worst: (usize, f32),
}

fn main() -> Result<(), focal::Error> {
    let (x, t) = dense_batch::retinanet_batch(ANCHORS, CLASSES, FOREGROUND, SEED);
    let n = x.len();
    let positives = t.iter().filter(|&&v| v == 1.0).count();

    // The reference: per-element gradients of the mean, and the mean loss summed
    // with Neumaier compensation (f64 alone would do; this makes it exact to ~1 ulp).
    let (mut sum, mut comp) = (0.0f64, 0.0f64);
    let mut ref_grad = Vec::with_capacity(n);
    for (&xi, &ti) in x.iter().zip(&t) {
        let (l, g) = reference(xi, ti, f64::from(GAMMA), f64::from(ALPHA));
        let s = sum + l;
        comp += if sum.abs() >= l.abs() {
            (sum - s) + l
        } else {
            (l - s) + sum
        };
        sum = s;
        ref_grad.push(g / n as f64);
    }
    let ref_loss = (sum + comp) / n as f64;

    let measure = |name: &'static str, loss: f32, time: Duration, grad: &[f32]| {
        let mut max_ulp = 0.0f64;
        let mut worst = (0, grad[0]);
        let mut total = 0.0f64;
        for (i, (&g, &r)) in grad.iter().zip(&ref_grad).enumerate() {
            let e = ulp_error(g, r);
            total += e;
            if e > max_ulp {
                max_ulp = e;
                worst = (i, g);
            }
        }
        Row {
            name,
            loss,
            time,
            loss_rel_err: (f64::from(loss) - ref_loss).abs() / ref_loss,
            grad_max_ulp: max_ulp,
            grad_mean_ulp: total / n as f64,
            worst,
        }
    };

    let mut grad = vec![0.0f32; n];
    let mut rows = Vec::new();
    for backend in Backend::available().collect::<Vec<_>>().into_iter().rev() {
        let fl = Focal::new(GAMMA, Alpha::Balanced(ALPHA))?.with_backend(backend)?;
        let (loss, time) = best_of(|| fl.loss_and_grad(&x, &t, Reduction::Mean, &mut grad));
        rows.push(measure(backend.name(), loss?, time, &grad));
    }
    let (loss, time) = best_of(|| naive::fused_mean(GAMMA, ALPHA, &x, &t, &mut grad));
    let naive_row = measure("naive", loss, time, &grad);
    let naive_time = naive_row.time;
    rows.push(naive_row);

    println!(
        "RetinaNet classification batch: {ANCHORS} anchors x {CLASSES} classes = {n} logits, \
         {positives} positive ({:.3}%), none ignored",
        100.0 * positives as f64 / n as f64
    );
    println!(
        "fused mean focal loss + gradient, gamma {GAMMA}, Alpha::Balanced({ALPHA}); \
         best of {RUNS} runs; active backend: {}",
        Backend::active().name()
    );
    println!("f64 reference loss: {ref_loss:.9e}\n");
    println!(
        "| {:<8} | {:>14} | {:>7} | {:>8} | {:>8} | {:>13} | {:>13} | {:>13} |",
        "backend",
        "loss",
        "ns/elem",
        "Melem/s",
        "vs naive",
        "loss rel err",
        "grad max ULP",
        "grad mean ULP"
    );
    println!(
        "|{:-<10}|{:->16}|{:->9}|{:->10}|{:->10}|{:->15}|{:->15}|{:->15}|",
        ":", ":", ":", ":", ":", ":", ":", ":"
    );
    for r in &rows {
        let ns = r.time.as_secs_f64() * 1e9 / n as f64;
        println!(
            "| {:<8} | {:>14.8e} | {:>7.3} | {:>8.1} | {:>7.1}x | {:>13.2e} | {:>13.4} | {:>13.4} |",
            r.name,
            r.loss,
            ns,
            1e3 / ns,
            naive_time.as_secs_f64() / r.time.as_secs_f64(),
            r.loss_rel_err,
            r.grad_max_ulp,
            r.grad_mean_ulp,
        );
    }
    println!("\nworst gradient element per implementation (gradient of the mean):");
    for r in &rows {
        let (i, got) = r.worst;
        println!(
            "  {:<8} x = {:>10.6}, t = {}: got {:>14.7e}, reference {:>14.7e}",
            r.name, x[i], t[i], got, ref_grad[i]
        );
    }
    Ok(())
}
