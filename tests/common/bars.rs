//! The accuracy contract the tests assert: DESIGN §3 and the bounds documented in
//! `src/`. A bar is only ever tightened here, never loosened to make a test pass.

/// Max error of the focal loss and its gradient, in ULP: 8 for gamma <= 3, 16 up to
/// gamma = 8.
pub fn focal_bar(gamma: f32) -> f64 {
    if gamma <= 3.0 {
        8.0
    } else {
        16.0
    }
}

/// The building blocks' bounds as documented in `src/sigmoid.rs` and
/// `src/dispatch.rs`: "max error 1.5 ULP" for sigmoid, 2 for softplus and log_sigmoid.
pub const UNARY: [(&str, f64); 3] = [("sigmoid", 1.5), ("softplus", 2.0), ("log_sigmoid", 2.0)];

/// Max error of a reduced loss against the exact sum of its terms, in ULP.
pub const SUM_BAR: f64 = 4.0;

/// `error <= bar`, false for a NaN error.
pub fn within(error: f64, bar: f64) -> bool {
    error <= bar
}
