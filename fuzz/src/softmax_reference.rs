//! f64 reference of the softmax focal loss of one row of finite logits, and its
//! gradient, written apart from the kernels. Shared by the fuzz targets,
//! `tests/fuzz_regressions.rs` and `tests/softmax_accuracy.rs` (through `#[path]`).
//!
//! `m` = the row max, `e_j = exp(z_j - m)`; `z_j - m` is exact in f64 unless `z_j`
//! is more than 2^29 times smaller than `m` in magnitude, and then the rounding is
//! relative 2^-53 of a difference whose exp is affected by at most 2^-53 |z_j - m|
//! (the e_j that matter have |z_j - m| < 104). `T = sum_{j != argmax} e_j` (`S - 1`
//! without cancellation), `S_o = sum_{j != y} e_j`, `nll = -(z_y - m) + ln_1p(T)`,
//! `q = 1 - p_y = S_o / S`, `q^gamma = powf` (from `ln_1p(-p_y)` above q = 1/2), `FL = alpha q^gamma nll`,
//! `dFL/dz_j = alpha g (delta_jy - p_j)` with `-g = q^gamma (1 + gamma (e_y/S_o)
//! nll)`: products and sums of same-sign terms, relative error below 1e-13 wherever
//! the result is not flushed to 0 in f32.

use crate::measure::Neumaier;

/// Loss and gradient (`d FL / d z_j`) of one row, unscaled, for alpha_y = `alpha`.
pub struct Row {
    /// `FL`.
    pub loss: f64,
    /// `d FL / d z_j`.
    pub grad: Vec<f64>,
}

/// The gamma-independent parts of a row (computed once when a row is checked for
/// several gammas: `tests/softmax_accuracy.rs`).
pub struct Parts {
    e: Vec<f64>,
    y: usize,
    nll: f64,
    so: f64,
    s: f64,
}

/// [`Parts`] of the row `z` (finite) with label `y < z.len()`.
pub fn parts(z: &[f32], y: usize) -> Parts {
    let (argmax, m) = z
        .iter()
        .enumerate()
        .fold((0, f64::NEG_INFINITY), |(bi, bm), (i, &v)| {
            if f64::from(v) > bm {
                (i, f64::from(v))
            } else {
                (bi, bm)
            }
        });
    let e: Vec<f64> = z.iter().map(|&v| (f64::from(v) - m).exp()).collect();
    let mut t = Neumaier::default();
    let mut so = Neumaier::default();
    for (j, &ej) in e.iter().enumerate() {
        if j != argmax {
            t.add(ej);
        }
        if j != y {
            so.add(ej);
        }
    }
    Parts {
        y,
        nll: -(f64::from(z[y]) - m) + t.total().ln_1p(),
        so: so.total(),
        s: 1.0 + t.total(),
        e,
    }
}

/// Loss and gradient of a row from its [`Parts`], for gamma and alpha_y = `alpha`.
pub fn row_of(p: &Parts, gamma: f64, alpha: f64) -> Row {
    let q = p.so / p.s;
    // Above q = 1/2, q^gamma from ln q = ln_1p(-p_y): q itself rounds to 1 in f64
    // for p_y < 2^-54, and a huge gamma (1.5e23 with p_y = 6e-25: q^gamma = 0.91)
    // needs p_y's own bits (a fuzz finding against this reference, not the kernels).
    let ey = p.e[p.y];
    let p_y = ey / p.s;
    let qg = if gamma == 0.0 {
        1.0
    } else if q == 0.0 {
        0.0
    } else if p_y < 0.5 {
        (gamma * (-p_y).ln_1p()).exp()
    } else {
        q.powf(gamma)
    };
    let loss = alpha * qg * p.nll;
    let ratio = if p.so > 0.0 { ey * p.nll / p.so } else { 1.0 };
    let neg_g = qg * (1.0 + gamma * ratio);
    let grad =
        p.e.iter()
            .enumerate()
            .map(|(j, &ej)| {
                if j == p.y {
                    -alpha * neg_g * (p.so / p.s)
                } else {
                    alpha * neg_g * (ej / p.s)
                }
            })
            .collect();
    Row { loss, grad }
}

/// The reference for the row `z` (finite) with label `y < z.len()`.
pub fn row(z: &[f32], y: usize, gamma: f64, alpha: f64) -> Row {
    row_of(&parts(z, y), gamma, alpha)
}
