//! A synthetic dense-detection batch: the logits of a trained RetinaNet classification
//! head and their hard targets, from a fixed-seed generator (same bits on every run and
//! machine). Shared by `examples/retinanet.rs` and `benches/sigmoid.rs` (through
//! `#[path]`); not a crate API.
//!
//! The shape of the distribution, per (anchor, class) element:
//! - background (the vast majority): logits around -4..-8, the range the head settles
//!   in from its prior bias `-ln((1-0.01)/0.01) = -4.6`; a tail of confident ones
//!   down to -14, and a few hard negatives up to +1;
//! - the ground-truth class of a foreground anchor: +2..+6, with a quarter of them
//!   hard (-3..+2).
#![allow(dead_code)]

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast and good enough to draw logits;
/// the constants are the published ones.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, from the top 24 bits (every value exact in f32).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (((self.next_u64() >> 32) * n as u64) >> 32) as usize
    }
}

/// One background (t = 0) logit.
fn negative_logit(rng: &mut SplitMix64) -> f32 {
    let u = rng.unit();
    if u < 0.88 {
        rng.uniform(-8.0, -4.0)
    } else if u < 0.96 {
        rng.uniform(-14.0, -8.0)
    } else {
        rng.uniform(-4.0, 1.0)
    }
}

/// One ground-truth (t = 1) logit.
fn positive_logit(rng: &mut SplitMix64) -> f32 {
    if rng.unit() < 0.75 {
        rng.uniform(2.0, 6.0)
    } else {
        rng.uniform(-3.0, 2.0)
    }
}

/// Logits and targets of `anchors x classes` elements, anchor-major. A fraction
/// `foreground` of the anchors is matched to one ground-truth class (target 1 for that
/// class, 0 for the others); the rest are background. No element is ignored, so the
/// naive port (which knows no ignore label) computes the same function.
pub fn retinanet_batch(
    anchors: usize,
    classes: usize,
    foreground: f32,
    seed: u64,
) -> (Vec<f32>, Vec<f32>) {
    let mut rng = SplitMix64::new(seed);
    let n = anchors * classes;
    let mut logits = Vec::with_capacity(n);
    let mut targets = Vec::with_capacity(n);
    for _ in 0..anchors {
        let class = if rng.unit() < foreground {
            Some(rng.below(classes))
        } else {
            None
        };
        for c in 0..classes {
            if class == Some(c) {
                logits.push(positive_logit(&mut rng));
                targets.push(1.0);
            } else {
                logits.push(negative_logit(&mut rng));
                targets.push(0.0);
            }
        }
    }
    (logits, targets)
}

/// `n` independent elements, each positive with probability `positives`: the same
/// distribution as [`retinanet_batch`] with one class, for any `n`.
pub fn elements(n: usize, positives: f32, seed: u64) -> (Vec<f32>, Vec<f32>) {
    retinanet_batch(n, 1, positives, seed)
}
