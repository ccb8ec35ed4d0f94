//! The per-backend report of the accuracy sweep: what was measured (rows by
//! function, target kind and gamma), its markdown tables, and the list of broken
//! bars with their worst inputs.

use std::fmt::Write as _;

use focal::{Backend, Reduction, SoftTargets};

use super::bars::{focal_bar, within, SUM_BAR, UNARY};
use super::grid::{Sweep, GAMMAS};
use super::measure::ulp_error;
use super::stats::{fmt_ulp, Stats};

/// What a row measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    /// The elementwise loss.
    Loss,
    /// The elementwise gradient.
    Grad,
}

/// Target kinds, the rows of the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// 0 and 1 (the ignore label -1 is checked apart: its outputs must be 0).
    Hard,
    /// Strictly between 0 and 1, torchvision's `p_t`.
    SoftTorchvision,
    /// Strictly between 0 and 1, the snippet's `p_t = exp(-BCE)`.
    SoftSnippet,
}

impl Kind {
    /// Every kind, in table order.
    pub const ALL: [Kind; 3] = [Kind::Hard, Kind::SoftTorchvision, Kind::SoftSnippet];

    /// The kind of a target (not the ignore label) under a soft form.
    pub fn of(t: f32, soft: SoftTargets) -> Kind {
        if t == 0.0 || t == 1.0 {
            Kind::Hard
        } else if soft == SoftTargets::Torchvision {
            Kind::SoftTorchvision
        } else {
            Kind::SoftSnippet
        }
    }

    /// The row label.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hard => "hard",
            Kind::SoftTorchvision => "soft, torchvision",
            Kind::SoftSnippet => "soft, snippet exp(-BCE)",
        }
    }
}

/// Everything measured on one backend.
pub struct Report {
    /// The backend measured.
    pub backend: Backend,
    /// Indexed by `[func][kind][gamma]`, see `focal_row`.
    pub focal: Vec<Stats>,
    /// sigmoid, softplus, log_sigmoid, in the order of [`UNARY`].
    pub unary: Vec<Stats>,
    /// The fused calls.
    pub fused: Vec<FusedRow>,
    /// The large sum.
    pub sum: Option<SumRow>,
    /// Ignored elements (t = -1) whose loss or gradient is not 0.
    pub ignored_nonzero: u64,
    /// The first of them, described.
    pub first_ignored_nonzero: Option<String>,
}

/// Index of a row in [`Report::focal`].
pub fn focal_row(func: Func, kind: Kind, gamma_index: usize) -> usize {
    let f = match func {
        Func::Loss => 0,
        Func::Grad => 1,
    };
    let k = Kind::ALL.iter().position(|&k| k == kind).unwrap_or(0);
    (f * Kind::ALL.len() + k) * GAMMAS.len() + gamma_index
}

/// One fused `loss_and_grad` call.
pub struct FusedRow {
    /// The reduction.
    pub reduction: Reduction,
    /// The target kind of the slice (hard slices hold only 0, 1, -1).
    pub kind: Kind,
    /// gamma.
    pub gamma: f32,
    /// The gradient against the reference times the reduction's scale.
    pub grad: Stats,
    /// Returned loss vs the exact sum of the crate's own elementwise losses, scaled.
    pub loss_vs_own: f64,
    /// Returned loss vs the exact sum of the reference losses, scaled.
    pub loss_vs_ref: f64,
}

/// The large `loss_reduced(Sum)` check.
pub struct SumRow {
    /// Number of elements.
    pub n: usize,
    /// `loss_reduced(Sum)`.
    pub got: f32,
    /// Exact sum of the backend's own elementwise losses.
    pub exact_own: f64,
    /// Exact sum of the reference losses.
    pub exact_ref: f64,
}

impl Report {
    /// An empty report.
    pub fn new(backend: Backend) -> Report {
        Report {
            backend,
            focal: vec![Stats::default(); 2 * Kind::ALL.len() * GAMMAS.len()],
            unary: vec![Stats::default(); UNARY.len()],
            fused: Vec::new(),
            sum: None,
            ignored_nonzero: 0,
            first_ignored_nonzero: None,
        }
    }
}

/// What the tables measure, once for all backends.
pub fn preamble(sweep: Sweep, n_x: usize, n_soft: usize) -> String {
    format!(
        "# focal: measured accuracy\n\n\
         Produced by `cargo test --test accuracy` (sweep `{}`), against the f64 \
         reference of `tests/common/reference.rs`. Logits: {n_x} values (0, subnormals, \
         1e-30..1e-3, the whole finite range in log scale, dense in |x| < 40, around \
         16.6, 87..89.5 and 103..105, 1e30, f32::MAX; both signs). Targets: 0, 1, -1 \
         (ignored: must give exactly 0, not in the statistics) and {n_soft} soft ones, \
         hard targets both in hard-only slices and among soft ones; gamma in {GAMMAS:?}; alpha in {{Off, \
         Balanced(0.25), Uniform(0.25)}}.\n\n\
         Error in ULP of the reference rounded to f32 (2^-149 absolute below the \
         normal range). Soft-target gradients cross zero, so their error is in ULP of \
         the size of the cancelling terms: alpha_t (|gamma q^gamma BCE (dq/dx)/q| + \
         q^gamma p + q^gamma t) for torchvision's p_t, alpha_t (gamma q^gamma BCE \
         e^-BCE / q + q^gamma) (p + t) for the snippet's exp(-BCE). p99.9 is rounded \
         up to 1/64 ULP. Non-finite: outputs that are inf or NaN (the input is \
         finite). Flushed: outputs that are 0 where the reference is a normal f32 \
         (and, for soft gradients, at least 1 ULP of the term scale). Bar: the \
         asserted maximum.\n\n",
        sweep.name()
    )
}

/// The markdown report of one backend, and its failures.
pub fn render(r: &Report) -> (String, Vec<String>) {
    let b = r.backend.name();
    let mut s = String::new();
    let mut fails = Vec::new();
    let _ = writeln!(s, "## Backend `{b}`\n");
    let _ = writeln!(
        s,
        "Focal loss and elementwise gradient: error in ULP of the reference rounded to \
         f32; soft-target gradients in ULP of the cancelling-term scale (see above). \
         Max over alpha and over every target of the kind.\n"
    );
    let _ = writeln!(
        s,
        "| function | targets | gamma | samples | max ULP | p99.9 ULP | non-finite | flushed | bar |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for func in [Func::Loss, Func::Grad] {
        for kind in Kind::ALL {
            for (gi, &gamma) in GAMMAS.iter().enumerate() {
                let st = &r.focal[focal_row(func, kind, gi)];
                let bar = focal_bar(gamma);
                let fname = match func {
                    Func::Loss => "loss",
                    Func::Grad => "grad",
                };
                let _ = writeln!(
                    s,
                    "| {fname} | {} | {gamma} | {} | {bar} |",
                    kind.name(),
                    st.cells()
                );
                let row = format!("[{b}] {fname}, {}, gamma {gamma}", kind.name());
                fails.extend(st.failures(&row, bar));
            }
        }
    }
    if let Some(first) = &r.first_ignored_nonzero {
        fails.push(format!(
            "[{b}] {} ignored element output(s) are not 0; first: {first}",
            r.ignored_nonzero
        ));
    }
    let _ = writeln!(
        s,
        "\nBuilding blocks over the same logits, error in ULP of the reference rounded \
         to f32.\n"
    );
    let _ = writeln!(
        s,
        "| function | samples | max ULP | p99.9 ULP | non-finite | flushed | bar |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|");
    for (k, &(name, bar)) in UNARY.iter().enumerate() {
        let st = &r.unary[k];
        let _ = writeln!(s, "| {name} | {} | {bar} |", st.cells());
        fails.extend(st.failures(&format!("[{b}] {name}"), bar));
    }
    let _ = writeln!(
        s,
        "\nFused `loss_and_grad`, Balanced(0.25), logits |x| <= 1e6: gradient vs the \
         reference gradient times the reduction's scale (ULP as above); returned loss \
         vs the exact sum (f64 Neumaier) of the backend's own elementwise losses, and \
         of the reference losses, times the scale.\n"
    );
    let _ = writeln!(
        s,
        "| reduction | targets | gamma | grad samples | grad max ULP | grad p99.9 ULP | non-finite | flushed | loss vs own sum (ULP) | loss vs reference (ULP) |"
    );
    let _ = writeln!(s, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for f in &r.fused {
        let red = match f.reduction {
            Reduction::Mean => "Mean".to_string(),
            Reduction::DivideBy(n) => format!("DivideBy({n})"),
            Reduction::Sum => "Sum".to_string(),
        };
        let _ = writeln!(
            s,
            "| {red} | {} | {} | {} | {} | {} |",
            f.kind.name(),
            f.gamma,
            f.grad.cells(),
            fmt_ulp(f.loss_vs_own),
            fmt_ulp(f.loss_vs_ref)
        );
        let row = format!("[{b}] fused {red}, {}, gamma {}", f.kind.name(), f.gamma);
        fails.extend(
            f.grad
                .failures(&format!("{row}, gradient"), focal_bar(f.gamma)),
        );
        if !within(f.loss_vs_own, SUM_BAR) {
            fails.push(format!(
                "{row}: returned loss is {} ULP from the exact sum of the backend's own \
                 elementwise losses times the scale (bar {SUM_BAR})",
                fmt_ulp(f.loss_vs_own)
            ));
        }
    }
    if let Some(sum) = &r.sum {
        let own = ulp_error(sum.got, sum.exact_own, sum.exact_own);
        let vs_ref = ulp_error(sum.got, sum.exact_ref, sum.exact_ref);
        let _ = writeln!(
            s,
            "\n`loss_reduced(Sum)` of {} detector-head-like elements (hard targets, gamma 2, \
             Balanced(0.25)) vs the exact (f64 Neumaier) sum of the backend's own \
             elementwise losses, and of the reference losses.\n",
            sum.n
        );
        let _ = writeln!(
            s,
            "| elements | loss_reduced(Sum) | exact sum, own losses | ULP | exact sum, reference | ULP |"
        );
        let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|");
        let _ = writeln!(
            s,
            "| {} | {:e} | {:e} | {} | {:e} | {} |",
            sum.n,
            sum.got,
            sum.exact_own,
            fmt_ulp(own),
            sum.exact_ref,
            fmt_ulp(vs_ref)
        );
        for (what, e, exact) in [
            ("own elementwise losses", own, sum.exact_own),
            ("reference losses", vs_ref, sum.exact_ref),
        ] {
            if !within(e, SUM_BAR) {
                fails.push(format!(
                    "[{b}] loss_reduced(Sum) of {} elements = {:e}, {} ULP from the exact \
                     sum of the {what} {exact:e} (bar {SUM_BAR})",
                    sum.n,
                    sum.got,
                    fmt_ulp(e)
                ));
            }
        }
    }
    s.push('\n');
    (s, fails)
}

/// Failures that repeat over backends, gammas and alphas, grouped by what went wrong
/// so that the report stays readable: each group lists where it happened and one
/// full example.
#[derive(Default)]
pub struct Grouped(Vec<(String, Vec<&'static str>, Vec<f32>, String)>);

impl Grouped {
    /// Records one failure under its group.
    pub fn push(&mut self, what: String, backend: Backend, gamma: f32, example: String) {
        let i = match self.0.iter().position(|g| g.0 == what) {
            Some(i) => i,
            None => {
                self.0.push((what, Vec::new(), Vec::new(), example));
                self.0.len() - 1
            }
        };
        let g = &mut self.0[i];
        if !g.1.contains(&backend.name()) {
            g.1.push(backend.name());
        }
        if !g.2.contains(&gamma) {
            g.2.push(gamma);
        }
    }

    /// One line per group.
    pub fn lines(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|(what, backends, gammas, example)| {
                format!("{what} [backends {backends:?}, gamma {gammas:?}]; e.g. {example}")
            })
            .collect()
    }
}

/// A word for the kind of a value, for grouping failures.
pub fn kind_of(v: f32) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v == f32::INFINITY {
        "+inf"
    } else if v == f32::NEG_INFINITY {
        "-inf"
    } else if v == 0.0 {
        "0"
    } else {
        "finite"
    }
}
