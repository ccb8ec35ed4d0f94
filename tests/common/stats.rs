//! Error statistics of one table row: max and 99.9th percentile ULP, non-finite and
//! flushed outputs, and the worst input, for the report and the failure messages.

use std::fmt::Write as _;

use focal::{Alpha, SoftTargets};

use super::measure::{rounds_to_normal, ulp_error, ulp_f32};

/// Histogram resolution: 1/64 ULP up to 64 ULP, one overflow bin above.
const BINS_PER_ULP: f64 = 64.0;
const HIST_ULPS: f64 = 64.0;
const BINS: usize = (BINS_PER_ULP * HIST_ULPS) as usize + 1;

/// One measured output with everything needed to reproduce it.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    /// The logit.
    pub x: f32,
    /// The target (`NaN` for the building blocks, which have none).
    pub t: f32,
    /// gamma (`NaN` for the building blocks).
    pub gamma: f32,
    /// alpha (`Off` for the building blocks).
    pub alpha: Alpha,
    /// Soft-target form.
    pub soft: SoftTargets,
    /// The crate's output.
    pub got: f32,
    /// The reference value.
    pub reference: f64,
    /// What the error is measured against (`|reference|`, or the size of the
    /// cancelling terms).
    pub scale: f64,
}

impl Sample {
    /// Error in ULP of `f32` at the scale.
    pub fn ulp(&self) -> f64 {
        ulp_error(self.got, self.reference, self.scale)
    }

    /// A one-line description: the input, the output, the reference.
    pub fn describe(&self) -> String {
        let mut s = format!("x={:?} ({:#010x})", self.x, self.x.to_bits());
        if !self.t.is_nan() {
            let _ = write!(
                s,
                " t={:?} gamma={:?} alpha={:?} soft={:?}",
                self.t, self.gamma, self.alpha, self.soft
            );
        }
        let _ = write!(
            s,
            ": got {:e} ({:#010x}), ref {:e} (f32 {:e})",
            self.got,
            self.got.to_bits(),
            self.reference,
            self.reference as f32
        );
        if self.scale != self.reference.abs() {
            let _ = write!(s, ", term scale {:e}", self.scale);
        }
        let _ = write!(s, ", error {} ULP", fmt_ulp(self.ulp()));
        s
    }
}

/// Statistics of one row.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Number of outputs measured.
    pub samples: u64,
    /// Largest error in ULP over the finite outputs.
    pub max_ulp: f64,
    /// The input of the largest error.
    pub worst: Option<Sample>,
    hist: Vec<u64>,
    /// Non-finite outputs for finite input.
    pub non_finite: u64,
    /// The first of them.
    pub first_non_finite: Option<Sample>,
    /// Outputs that are 0 where the reference is a normal `f32` (and, for a
    /// cancelling result, at least one ULP of the term scale).
    pub flushed: u64,
    /// The first of them.
    pub first_flushed: Option<Sample>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            samples: 0,
            max_ulp: 0.0,
            worst: None,
            hist: vec![0; BINS],
            non_finite: 0,
            first_non_finite: None,
            flushed: 0,
            first_flushed: None,
        }
    }
}

impl Stats {
    /// Records one output (the input is finite).
    pub fn record(&mut self, s: Sample) {
        self.samples += 1;
        if !s.got.is_finite() {
            self.non_finite += 1;
            self.first_non_finite.get_or_insert(s);
            return;
        }
        if s.got == 0.0 && rounds_to_normal(s.reference) && s.reference.abs() >= ulp_f32(s.scale) {
            self.flushed += 1;
            self.first_flushed.get_or_insert(s);
        }
        let e = s.ulp();
        let bin = ((e * BINS_PER_ULP) as usize).min(BINS - 1);
        self.hist[bin] += 1;
        if e > self.max_ulp || self.worst.is_none() {
            self.max_ulp = e;
            self.worst = Some(s);
        }
    }

    /// The 99.9th percentile of the error over the finite outputs, rounded up to
    /// 1/64 ULP and never above the maximum; above 64 ULP (the histogram's overflow
    /// bin) it is `64 + 1/64`, printed as "> 64".
    pub fn p999(&self) -> f64 {
        let finite: u64 = self.hist.iter().sum();
        if finite == 0 {
            return 0.0;
        }
        let need = (finite as f64 * 0.999).ceil() as u64;
        let mut seen = 0;
        for (i, &c) in self.hist.iter().enumerate() {
            seen += c;
            if seen >= need {
                return ((i + 1) as f64 / BINS_PER_ULP).min(self.max_ulp);
            }
        }
        self.max_ulp
    }

    /// The failures of this row against a bar on the max ULP (none when it holds):
    /// one line each, with the worst or first offending input.
    pub fn failures(&self, row: &str, bar: f64) -> Vec<String> {
        let mut out = Vec::new();
        if self.max_ulp > bar {
            if let Some(w) = &self.worst {
                out.push(format!(
                    "{row}: max error {} ULP > bar {bar} ULP; worst: {}",
                    fmt_ulp(self.max_ulp),
                    w.describe()
                ));
            }
        }
        if let Some(s) = &self.first_non_finite {
            out.push(format!(
                "{row}: {} non-finite output(s) for finite input; first: {}",
                self.non_finite,
                s.describe()
            ));
        }
        if let Some(s) = &self.first_flushed {
            out.push(format!(
                "{row}: {} output(s) flushed to 0 where the reference is a normal f32; first: {}",
                self.flushed,
                s.describe()
            ));
        }
        out
    }

    /// The cells `samples | max ULP | p99.9 ULP | non-finite | flushed` of a markdown
    /// row.
    pub fn cells(&self) -> String {
        let p = self.p999();
        let p = if p > HIST_ULPS {
            format!("> {HIST_ULPS}")
        } else {
            fmt_ulp(p)
        };
        format!(
            "{} | {} | {p} | {} | {}",
            self.samples,
            fmt_ulp(self.max_ulp),
            self.non_finite,
            self.flushed
        )
    }
}

/// An error in ULP for a table: three decimals, or scientific when huge.
pub fn fmt_ulp(e: f64) -> String {
    if e < 1e6 {
        format!("{e:.3}")
    } else {
        format!("{e:.3e}")
    }
}
