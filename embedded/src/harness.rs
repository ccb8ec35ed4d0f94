//! Counting checks and printing them through semihosting: one line per group, the
//! failing checks with their values, and a final "N passed, N failed".

use cortex_m_semihosting::hprintln;

/// Relative tolerance of a known answer: 32 f32 ULP (2^-18). The crate promises
/// 8 ULP (gamma <= 3) and 16 ULP (gamma <= 8); the slack covers reductions, whose
/// reference is the exact sum.
pub const REL: f64 = 3.814_697_265_625e-6;

pub struct Run {
    pub passed: u32,
    pub failed: u32,
    group_failed: u32,
    group_checks: u32,
}

impl Run {
    pub const fn new() -> Self {
        Run {
            passed: 0,
            failed: 0,
            group_failed: 0,
            group_checks: 0,
        }
    }

    /// Ends a group of checks with one line.
    pub fn group(&mut self, name: &str) {
        if self.group_failed == 0 {
            hprintln!("ok   {} ({} checks)", name, self.group_checks);
        } else {
            hprintln!(
                "FAIL {} ({} of {} checks failed)",
                name,
                self.group_failed,
                self.group_checks
            );
        }
        self.group_failed = 0;
        self.group_checks = 0;
    }

    pub fn check(&mut self, what: &str, ok: bool) {
        self.group_checks += 1;
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            self.group_failed += 1;
            hprintln!("  failed: {}", what);
        }
    }

    /// `got` within [`REL`] of `want` (exactly 0 when `want` is 0; NaN and infinities
    /// must match).
    pub fn close(&mut self, what: &str, i: usize, got: f32, want: f64) {
        let g = f64::from(got);
        let ok = if want.is_nan() {
            got.is_nan()
        } else if want.is_infinite() || want == 0.0 {
            g == want
        } else {
            (g - want).abs() <= REL * want.abs()
        };
        self.group_checks += 1;
        if ok {
            self.passed += 1;
        } else {
            self.failed += 1;
            self.group_failed += 1;
            hprintln!("  failed: {}[{}]: got {:e}, want {:e}", what, i, got, want);
        }
    }

    pub fn close_all(&mut self, what: &str, got: &[f32], want: &[f64], scale: f64) {
        self.check("length", got.len() == want.len());
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            self.close(what, i, g, w * scale);
        }
    }
}
