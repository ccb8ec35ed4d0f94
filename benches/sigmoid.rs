//! Throughput of the sigmoid focal loss on every backend this CPU has, next to the
//! naive textbook port and a memory-bandwidth floor, on the logits of a trained
//! RetinaNet head (see `examples/dense_batch`).
//!
//! Group ids are `{op}/g{gamma}/n{N}` with op in `elementwise`, `mean`, `fused_mean`,
//! plus `stream/n{N}`; function ids are a backend name (`Backend::name`), `naive` or
//! `stream`. Filter with criterion's name filter, e.g.
//! `cargo bench -p focal-benches --bench sigmoid -- fused_mean/g2/n262144`.
//! `scripts/bench-table.sh` turns a full run into the README's speed table.

use std::cell::{OnceCell, RefCell};
use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput};
use focal::{Alpha, Backend, Focal, Reduction};

#[path = "../examples/dense_batch/mod.rs"]
mod dense_batch;
#[path = "../examples/naive/mod.rs"]
mod naive;

/// Slice lengths: L1-resident, L2-resident, L3-sized, and far beyond the caches.
const SIZES: [usize; 4] = [4096, 262_144, 4 << 20, 32 << 20];
const GAMMAS: [f32; 2] = [2.0, 1.5];
const ALPHA: f32 = 0.25;
/// Fraction of positive elements (one class per anchor, i.e. a 1% foreground batch).
const POSITIVES: f32 = 0.01;
const SEED: u64 = 0x5EED_F0CA_2017_0001;

#[derive(Clone, Copy)]
enum Op {
    Elementwise,
    Mean,
    FusedMean,
}

impl Op {
    const ALL: [Op; 3] = [Op::Elementwise, Op::Mean, Op::FusedMean];

    fn name(self) -> &'static str {
        match self {
            Op::Elementwise => "elementwise",
            Op::Mean => "mean",
            Op::FusedMean => "fused_mean",
        }
    }
}

/// Inputs of one size, built on first use so a filtered run only pays for the sizes
/// it measures.
struct Data {
    x: Vec<f32>,
    t: Vec<f32>,
    out: RefCell<Vec<f32>>,
}

impl Data {
    fn new(n: usize) -> Self {
        let (x, t) = dense_batch::elements(n, POSITIVES, SEED);
        Data {
            x,
            t,
            out: RefCell::new(vec![0.0; n]),
        }
    }
}

/// Sampling settings that keep a full run near ten minutes: many short samples for
/// the cache-resident sizes, ten flat samples for the large ones (one naive pass over
/// 32M elements takes about a second).
fn configure(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, n: usize) {
    group.throughput(Throughput::Elements(n as u64));
    if n <= 262_144 {
        group
            .sample_size(20)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_millis(1000));
    } else {
        group
            .sampling_mode(SamplingMode::Flat)
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_millis(2000));
    }
}

/// The bandwidth floor: read `x` and `t`, write `out`, no math.
#[inline(never)]
fn stream(x: &[f32], t: &[f32], out: &mut [f32]) {
    for ((o, &a), &b) in out.iter_mut().zip(x).zip(t) {
        *o = a + b;
    }
}

fn run_op(
    c: &mut Criterion,
    data: &OnceCell<Data>,
    n: usize,
    op: Op,
    gamma: f32,
) -> Result<(), focal::Error> {
    let mut group = c.benchmark_group(format!("{}/g{gamma}/n{n}", op.name()));
    configure(&mut group, n);
    for backend in Backend::available() {
        let fl = Focal::new(gamma, Alpha::Balanced(ALPHA))?.with_backend(backend)?;
        group.bench_function(backend.name(), |b| {
            let d = data.get_or_init(|| Data::new(n));
            let mut out = d.out.borrow_mut();
            let (x, t) = (&d.x[..], &d.t[..]);
            // The timed calls return their Result unchecked; check the inputs once.
            if let Err(e) = fl.loss_reduced(x, t, Reduction::Mean) {
                panic!("benchmark inputs rejected: {e}");
            }
            match op {
                Op::Elementwise => b.iter(|| {
                    let r = fl.loss(black_box(x), black_box(t), &mut out);
                    black_box(&mut out);
                    r
                }),
                Op::Mean => b.iter(|| fl.loss_reduced(black_box(x), black_box(t), Reduction::Mean)),
                Op::FusedMean => b.iter(|| {
                    let r = fl.loss_and_grad(black_box(x), black_box(t), Reduction::Mean, &mut out);
                    black_box(&mut out);
                    r
                }),
            }
        });
    }
    group.bench_function("naive", |b| {
        let d = data.get_or_init(|| Data::new(n));
        let mut out = d.out.borrow_mut();
        let (x, t) = (&d.x[..], &d.t[..]);
        match op {
            Op::Elementwise => b.iter(|| {
                naive::elementwise(gamma, ALPHA, black_box(x), black_box(t), &mut out);
                black_box(&mut out);
            }),
            Op::Mean => b.iter(|| naive::mean(gamma, ALPHA, black_box(x), black_box(t))),
            Op::FusedMean => b.iter(|| {
                let r = naive::fused_mean(gamma, ALPHA, black_box(x), black_box(t), &mut out);
                black_box(&mut out);
                r
            }),
        }
    });
    group.finish();
    Ok(())
}

fn run_stream(c: &mut Criterion, data: &OnceCell<Data>, n: usize) {
    let mut group = c.benchmark_group(format!("stream/n{n}"));
    configure(&mut group, n);
    group.bench_function("stream", |b| {
        let d = data.get_or_init(|| Data::new(n));
        let mut out = d.out.borrow_mut();
        b.iter(|| {
            stream(black_box(&d.x), black_box(&d.t), &mut out);
            black_box(&mut out);
        });
    });
    group.finish();
}

fn main() -> Result<(), focal::Error> {
    let mut c = Criterion::default()
        .nresamples(20_000)
        .configure_from_args();
    for n in SIZES {
        // One size's inputs at a time: 32M elements are 384 MB with the output.
        let data = OnceCell::new();
        run_stream(&mut c, &data, n);
        for op in Op::ALL {
            for gamma in GAMMAS {
                run_op(&mut c, &data, n, op, gamma)?;
            }
        }
    }
    c.final_summary();
    Ok(())
}
