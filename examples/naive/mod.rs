//! The naive scalar port of the textbook focal loss, as written in most codebases:
//! BCE with logits, then `pt = exp(-bce)`, then `powf`, gradient by the chain rule
//! the way autograd evaluates it. It is the baseline every benchmark and the example
//! compare with. Not part of the crate's API; the example and the benches include it
//! with `#[path]`.
#![allow(dead_code)]

/// `(1 + e^-|x|)` based BCE with logits, as PyTorch computes it.
#[inline]
fn bce_with_logits(x: f32, t: f32) -> f32 {
    x.max(0.0) - x * t + (-x.abs()).exp().ln_1p()
}

/// Mean focal loss and the gradient of the mean, textbook style, balanced alpha.
pub fn fused_mean(gamma: f32, alpha: f32, x: &[f32], t: &[f32], grad: &mut [f32]) -> f32 {
    let n = x.len() as f32;
    let mut sum = 0.0f32;
    for i in 0..x.len() {
        let (xi, ti) = (x[i], t[i]);
        let p = 1.0 / (1.0 + (-xi).exp());
        let bce = bce_with_logits(xi, ti);
        let pt = (-bce).exp();
        let at = alpha * ti + (1.0 - alpha) * (1.0 - ti);
        let w = (1.0 - pt).powf(gamma);
        sum += at * w * bce;
        // d/dx [at (1-pt)^g bce] by the chain rule: dbce = p - t, dpt = -pt dbce.
        let dbce = p - ti;
        let dw = gamma * (1.0 - pt).powf(gamma - 1.0) * pt * dbce;
        grad[i] = at * (dw * bce + w * dbce) / n;
    }
    sum / n
}

/// Mean focal loss only.
pub fn mean(gamma: f32, alpha: f32, x: &[f32], t: &[f32]) -> f32 {
    let mut sum = 0.0f32;
    for i in 0..x.len() {
        let bce = bce_with_logits(x[i], t[i]);
        let pt = (-bce).exp();
        let at = alpha * t[i] + (1.0 - alpha) * (1.0 - t[i]);
        sum += at * (1.0 - pt).powf(gamma) * bce;
    }
    sum / x.len() as f32
}

/// Elementwise focal loss.
pub fn elementwise(gamma: f32, alpha: f32, x: &[f32], t: &[f32], out: &mut [f32]) {
    for i in 0..x.len() {
        let bce = bce_with_logits(x[i], t[i]);
        let pt = (-bce).exp();
        let at = alpha * t[i] + (1.0 - alpha) * (1.0 - t[i]);
        out[i] = at * (1.0 - pt).powf(gamma) * bce;
    }
}
