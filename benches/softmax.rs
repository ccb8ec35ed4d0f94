//! Throughput of the softmax focal loss (fused mean loss + gradient, gamma 2) on every
//! backend this CPU has, next to the naive scalar port in the same run.
//!
//! Group ids are `softmax_fused_mean/g2/n{N}_c{C}`; function ids are a backend name
//! (`Backend::name`) or `naive`. Throughput is in logits (`N * C` elements), so
//! criterion's "elem/s" reads as logits per second. Filter with criterion's name
//! filter, e.g. `cargo bench -p focal-benches --bench softmax -- n65536_c80`.
//!
//! The inputs look like a trained classifier's: logits uniform in [-4, 4] with the
//! label's logit raised by 3 (p_y mostly between 0.3 and 0.99), 1% ignored rows.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use focal::{Backend, ClassAlpha, Reduction, SoftmaxFocal, IGNORE_INDEX};

#[path = "../examples/naive/softmax.rs"]
mod naive;

/// (N, C): detection-style 80 classes, 3 classes with many rows, 1000 classes.
const SHAPES: [(usize, usize); 3] = [(65_536, 80), (262_144, 3), (4096, 1000)];
const GAMMA: f32 = 2.0;
const SEED: u64 = 0x5EED_50F7_2017_0006;

/// SplitMix64.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn inputs(n: usize, c: usize) -> (Vec<f32>, Vec<i32>) {
    let mut s = SEED ^ (n as u64) ^ ((c as u64) << 32);
    let mut unit = || (next(&mut s) >> 40) as f32 / (1u64 << 24) as f32;
    let mut x: Vec<f32> = (0..n * c).map(|_| unit() * 8.0 - 4.0).collect();
    let labels = (0..n)
        .map(|r| {
            if unit() < 0.01 {
                return IGNORE_INDEX;
            }
            let y = ((unit() * c as f32) as usize).min(c - 1);
            x[r * c + y] += 3.0;
            y as i32
        })
        .collect();
    (x, labels)
}

fn main() -> Result<(), focal::Error> {
    let mut c = Criterion::default().configure_from_args();
    for (n, classes) in SHAPES {
        let (x, labels) = inputs(n, classes);
        let mut grad = vec![0.0f32; n * classes];
        let mut group = c.benchmark_group(format!("softmax_fused_mean/g2/n{n}_c{classes}"));
        group
            .throughput(Throughput::Elements((n * classes) as u64))
            .sample_size(20)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_millis(1500));
        for backend in Backend::available() {
            let fl = SoftmaxFocal::new(GAMMA, ClassAlpha::Off)?.with_backend(backend)?;
            // The timed calls return their Result unchecked; check the inputs once.
            fl.loss_and_grad(&x, &labels, classes, Reduction::Mean, &mut grad)?;
            group.bench_function(backend.name(), |b| {
                b.iter(|| {
                    let r = fl.loss_and_grad(
                        black_box(&x),
                        black_box(&labels),
                        classes,
                        Reduction::Mean,
                        &mut grad,
                    );
                    black_box(&mut grad);
                    r
                })
            });
        }
        group.bench_function("naive", |b| {
            b.iter(|| {
                let r =
                    naive::fused_mean(GAMMA, black_box(&x), black_box(&labels), classes, &mut grad);
                black_box(&mut grad);
                r
            })
        });
        group.finish();
    }
    c.final_summary();
    Ok(())
}
