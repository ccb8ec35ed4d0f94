//! The inputs of the accuracy sweep: the logit grid over the whole finite `f32`
//! range, the soft targets, a fixed-seed PRNG, and the sweep size chosen by the
//! `FOCAL_SWEEP` environment variable.

use focal::{Alpha, SoftTargets};

/// The gammas of the sweep: 0 (BCE), the integer kinds 1..=4, fractional ones, and
/// the largest supported integer power.
pub const GAMMAS: [f32; 9] = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 4.7, 8.0];

/// The class weightings of the sweep.
pub const ALPHAS: [Alpha; 3] = [Alpha::Off, Alpha::Balanced(0.25), Alpha::Uniform(0.25)];

/// Both soft-target forms.
pub const SOFT_FORMS: [SoftTargets; 2] = [SoftTargets::Torchvision, SoftTargets::ExpNegBce];

/// How dense the sweep is: `FOCAL_SWEEP=quick` (about 10x fewer logits, for qemu and
/// miri), unset (the default), `FOCAL_SWEEP=full` (about 10x more, for release
/// checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sweep {
    /// About a tenth of the default grid.
    Quick,
    /// The default grid.
    Default,
    /// About ten times the default grid.
    Full,
}

impl Sweep {
    /// Reads `FOCAL_SWEEP`; an unknown value is an error, not a silent default.
    pub fn from_env() -> Sweep {
        match std::env::var("FOCAL_SWEEP").as_deref() {
            Err(_) | Ok("") | Ok("default") => Sweep::Default,
            Ok("quick") => Sweep::Quick,
            Ok("full") => Sweep::Full,
            Ok(other) => panic!("FOCAL_SWEEP={other}: expected quick, default or full"),
        }
    }

    /// Multiplier of the number of grid points per region.
    pub fn density(self) -> f64 {
        match self {
            Sweep::Quick => 0.1,
            Sweep::Default => 1.0,
            Sweep::Full => 10.0,
        }
    }

    /// A lowercase name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Sweep::Quick => "quick",
            Sweep::Default => "default",
            Sweep::Full => "full",
        }
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fixed-seed, good enough to scatter test
/// points.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Standard normal (Box-Muller, one of the pair).
    pub fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit(); // (0, 1]
        let v = self.unit();
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// A soft target strictly inside `(0, 1)`: an odd multiple of 2^-24, exact in
    /// `f32`, never 0 or 1.
    pub fn soft_target(&mut self) -> f32 {
        let k = (self.next_u64() >> 41) as u32; // 23 bits
        (2 * k + 1) as f32 * (1.0 / 16_777_216.0)
    }
}

/// `n` points from `lo` to `hi` (inclusive), equally spaced in log scale.
fn log_spaced(lo: f64, hi: f64, n: usize) -> impl Iterator<Item = f32> {
    let (a, b) = (lo.ln(), hi.ln());
    (0..n).map(move |i| {
        let v = (a + (b - a) * i as f64 / (n - 1) as f64).exp();
        (v as f32).min(f32::MAX)
    })
}

/// `n` points from `lo` to `hi` (inclusive), equally spaced.
fn uniform(lo: f64, hi: f64, n: usize) -> impl Iterator<Item = f32> {
    (0..n).map(move |i| (lo + (hi - lo) * i as f64 / (n - 1) as f64) as f32)
}

/// `v` and its `k` nearest `f32` neighbours on each side.
fn neighbours(v: f32, k: usize) -> Vec<f32> {
    let mut out = vec![v];
    let (mut up, mut down) = (v, v);
    for _ in 0..k {
        up = up.next_up();
        down = down.next_down();
        out.push(up);
        out.push(down);
    }
    out
}

/// The logit grid, both signs of every magnitude, sorted, without duplicates:
/// 0, subnormals, the normal boundary, 1e-30..1e-3 and the whole finite range in log
/// scale, dense (regular and random) in |x| < 40, dense around 16.6 (where
/// `sigmoid` rounds to 1 in `f32`), 87..89.5 (`exp` over/underflow to subnormals and
/// to inf), 103..105 (`exp` underflow to 0 at about 103.97), and 1e30, `f32::MAX`.
pub fn logits(density: f64) -> Vec<f32> {
    let n = |k: f64| ((k * density).round() as usize).max(3);
    let mut rng = Rng::new(0x5EED_F0CA_1000_0001);
    let mut mags: Vec<f32> = vec![
        0.0,
        f32::from_bits(1),
        f32::from_bits(2),
        f32::from_bits(3),
        f32::from_bits(0x400),
        1e-42,
        1e-40,
        1e-39,
        f32::from_bits(0x007F_FFFF),
        f32::MIN_POSITIVE,
        f32::MIN_POSITIVE.next_up(),
        1e30,
        f32::MAX.next_down(),
        f32::MAX,
    ];
    mags.extend(log_spaced(1e-30, 1e-3, n(200.0)));
    mags.extend(log_spaced(
        1.401_298_464_324_817e-45,
        f64::from(f32::MAX),
        n(400.0),
    ));
    mags.extend(uniform(0.0, 40.0, n(2000.0)));
    mags.extend((0..n(500.0)).map(|_| rng.uniform(0.0, 40.0) as f32));
    mags.extend(uniform(15.5, 17.7, n(300.0)));
    mags.extend(uniform(86.5, 89.5, n(300.0)));
    mags.extend(uniform(103.0, 105.0, n(200.0)));
    // Edges, with their nearest neighbours: sigmoid rounding to 1 (ln 2^24), exp
    // leaving the normal range (ln 2^-126), exp overflowing (ln f32::MAX), exp
    // underflowing to 0 (ln 2^-150 ~ -103.97), and the 104 that clamps often use.
    for edge in [16.635_532_f32, 87.336_55, 88.722_84, 103.972_08, 104.0] {
        mags.extend(neighbours(edge, 8));
    }
    let mut xs: Vec<f32> = mags.iter().flat_map(|&m| [m, -m]).collect();
    xs.sort_by(f32::total_cmp);
    xs.dedup_by(|a, b| a.to_bits() == b.to_bits());
    xs
}

/// The soft targets: 0.1, 0.5, 0.9, 0.999, the edges 0.001 and 1 - 2^-24, and 20
/// random ones from a fixed seed.
pub fn soft_targets() -> Vec<f32> {
    let mut rng = Rng::new(0x5EED_F0CA_1000_0002);
    let mut ts = vec![0.1, 0.5, 0.9, 0.999, 0.001, 1.0 - 1.0 / 16_777_216.0];
    ts.extend((0..20).map(|_| rng.soft_target()));
    ts
}
