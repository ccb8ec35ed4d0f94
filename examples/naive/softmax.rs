//! The naive scalar port of the softmax focal loss, as written in most codebases:
//! softmax (max-shifted), then the textbook `-(1 - p_y)^gamma ln(p_y)` with `powf`,
//! and the gradient by the chain rule, `g = gamma (1-p_y)^(gamma-1) p_y ln(p_y) -
//! (1-p_y)^gamma`, `dL/dz_j = g (delta_jy - p_j)`. The baseline of
//! `benches/softmax.rs`; not part of the crate's API.
#![allow(dead_code)]

/// Ignored label, as the crate's `IGNORE_INDEX`.
const IGNORE: i32 = -100;

/// Mean (over non-ignored rows) focal loss and the gradient of the mean, alpha off.
pub fn fused_mean(gamma: f32, x: &[f32], labels: &[i32], c: usize, grad: &mut [f32]) -> f32 {
    let active = labels.iter().filter(|&&l| l != IGNORE).count();
    let inv = if active > 0 { 1.0 / active as f32 } else { 0.0 };
    let mut sum = 0.0f32;
    for (r, &label) in labels.iter().enumerate() {
        let z = &x[r * c..(r + 1) * c];
        let g = &mut grad[r * c..(r + 1) * c];
        if label == IGNORE {
            g.fill(0.0);
            continue;
        }
        let y = label as usize;
        let m = z.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
        let mut s = 0.0f32;
        for (gj, &zj) in g.iter_mut().zip(z) {
            *gj = (zj - m).exp();
            s += *gj;
        }
        for gj in g.iter_mut() {
            *gj /= s;
        }
        let py = g[y];
        let lp = py.ln();
        sum += -(1.0 - py).powf(gamma) * lp;
        let dg = gamma * (1.0 - py).powf(gamma - 1.0) * py * lp - (1.0 - py).powf(gamma);
        for (j, gj) in g.iter_mut().enumerate() {
            let delta = if j == y { 1.0 } else { 0.0 };
            *gj = dg * (delta - *gj) * inv;
        }
    }
    sum * inv
}
