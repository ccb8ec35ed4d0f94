//! The `softmax_differential` oracle: one [`SoftmaxCase`] (rows of `C` logits,
//! labels, gamma, class weights, reduction, offsets) on every backend the CPU has,
//! against the f64 reference (`softmax_reference`) and against Scalar, with the
//! error decisions modelled from the documentation of `SoftmaxFocal`.

use core::fmt;

use focal::{Backend, ClassAlpha, Error, Reduction, SoftmaxFocal, IGNORE_INDEX};

use crate::bytes::{fmt_f32, fmt_f32s, Reader, Writer, SPECIAL_ALPHAS, SPECIAL_GAMMAS};
use crate::check::{focal_bar, loosely, show, sum_losses, within, within_sum, Failures, SUM_BAR};
use crate::sigmoid_case::{
    error_in, fmt_reduction, parameter_errors, read_reduction, reduction_scale, write_reduction,
};
use crate::slices::{input, Fenced};
use crate::softmax_reference;

/// Most logits (`N * C`) decoded.
pub const MAX_CELLS: usize = 2048;

/// Per-class weights worth hitting exactly (the last four are invalid).
pub const SPECIAL_WEIGHTS: [f32; 12] = [
    1.0,
    0.0,
    0.25,
    2.0,
    1e-30,
    f32::from_bits(1),
    1e30,
    3e38,
    -0.5,
    f32::NAN,
    f32::INFINITY,
    -f32::from_bits(1),
];

/// Class weighting of a case (owned; borrowed as `ClassAlpha` per call).
#[derive(Clone, Debug, PartialEq)]
pub enum Weighting {
    /// `ClassAlpha::Off`.
    Off,
    /// `ClassAlpha::Uniform(a)`.
    Uniform(f32),
    /// `ClassAlpha::PerClass(&w)`.
    PerClass(Vec<f32>),
}

impl Weighting {
    fn class_alpha(&self) -> ClassAlpha<'_> {
        match self {
            Weighting::Off => ClassAlpha::Off,
            Weighting::Uniform(a) => ClassAlpha::Uniform(*a),
            Weighting::PerClass(w) => ClassAlpha::PerClass(w),
        }
    }

    fn of(&self, class: usize) -> f64 {
        match self {
            Weighting::Off => 1.0,
            Weighting::Uniform(a) => f64::from(*a),
            Weighting::PerClass(w) => f64::from(w[class]),
        }
    }
}

/// One input of the softmax focal loss.
#[derive(Clone)]
pub struct SoftmaxCase {
    /// Focusing parameter (any bits).
    pub gamma: f32,
    /// Class weighting (any values).
    pub alpha: Weighting,
    /// Reduction of `loss_reduced` and `loss_and_grad`.
    pub reduction: Reduction,
    /// Start offsets (elements) of the logits, the labels and the outputs.
    pub offsets: [usize; 3],
    /// Number of classes `C >= 1`.
    pub classes: usize,
    /// Row-major `[N x C]` logits.
    pub logits: Vec<f32>,
    /// `N` labels (any `i32`: -100 ignores, outside `[0, C)` is an error).
    pub labels: Vec<i32>,
}

struct Run {
    backend: Backend,
    loss: Result<Vec<f32>, Error>,
    reduced: Result<f32, Error>,
    fused: Result<(f32, Vec<f32>), Error>,
}

impl SoftmaxCase {
    /// Decodes fuzzer bytes (every byte string is some case).
    pub fn decode(data: &[u8]) -> Self {
        let mut r = Reader::new(data);
        let gamma = r.param(&SPECIAL_GAMMAS, 8.0);
        let reduction = read_reduction(&mut r);
        let o = usize::from(r.byte());
        let o2 = usize::from(r.byte());
        let offsets = [o & 15, o >> 4, o2 & 15];
        let b = r.byte();
        let classes = if b < 250 {
            1 + usize::from(b) % 40
        } else {
            1 + usize::from(r.u16()) % 300
        };
        let alpha = match r.byte() % 3 {
            0 => Weighting::Off,
            1 => Weighting::Uniform(r.param(&SPECIAL_ALPHAS, 1.0)),
            _ => Weighting::PerClass(r.values(classes, |r| r.param(&SPECIAL_WEIGHTS, 4.0))),
        };
        let rows = (usize::from(r.byte()) % 17).min(MAX_CELLS / classes);
        let logits = r.values(rows * classes, Reader::logit);
        let label = |r: &mut Reader<'_>| {
            let tag = r.byte();
            let p = r.u32();
            match tag {
                0..=199 => (p % classes as u32) as i32,
                200..=227 => IGNORE_INDEX,
                _ => p as i32,
            }
        };
        let labels = if r.byte() % 4 == 3 {
            vec![label(&mut r); rows]
        } else {
            (0..rows).map(|_| label(&mut r)).collect()
        };
        SoftmaxCase {
            gamma,
            alpha,
            reduction,
            offsets,
            classes,
            logits,
            labels,
        }
    }

    /// Encodes the case so that [`SoftmaxCase::decode`] gives it back (seeds).
    /// Needs `1 <= classes <= 300` and at most 16 rows.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.param(self.gamma);
        write_reduction(&mut w, self.reduction);
        w.byte((self.offsets[0] & 15 | (self.offsets[1] & 15) << 4) as u8);
        w.byte((self.offsets[2] & 15) as u8);
        w.byte(255);
        w.u16((self.classes - 1) as u16);
        match &self.alpha {
            Weighting::Off => w.byte(0),
            Weighting::Uniform(a) => {
                w.byte(1);
                w.param(*a);
            }
            Weighting::PerClass(v) => {
                w.byte(2);
                w.values(v, Writer::param);
            }
        }
        w.byte(self.labels.len() as u8);
        w.values(&self.logits, Writer::logit);
        w.byte(0);
        for &l in &self.labels {
            w.byte(255);
            w.u32(l as u32);
        }
        w.bytes
    }

    fn run(&self, fl: &SoftmaxFocal<'_>, backend: Backend) -> Result<Run, String> {
        let fl = fl
            .with_backend(backend)
            .map_err(|e| format!("with_backend({backend:?}) of an available backend: {e:?}"))?;
        let [ox, ol, oo] = self.offsets;
        let (n, c) = (self.labels.len(), self.classes);
        let xb = input(&self.logits, ox);
        let mut lb = Vec::with_capacity(ol + n);
        lb.extend(core::iter::repeat_n(IGNORE_INDEX, ol));
        lb.extend_from_slice(&self.labels);
        let (x, labels) = (&xb[ox..], &lb[ol..]);
        let fence = |what: &str, out: &Fenced| match out.breached() {
            Some(i) => Err(format!(
                "[{}] {what} wrote outside its output slice, at relative index {i}",
                backend.name()
            )),
            None => Ok(()),
        };
        let mut out = Fenced::new(n, oo);
        let loss = fl
            .loss(x, labels, c, out.slice())
            .map(|()| out.get().to_vec());
        fence("loss", &out)?;
        let reduced = fl.loss_reduced(x, labels, c, self.reduction);
        let mut grad = Fenced::new(n * c, oo);
        let fused = fl
            .loss_and_grad(x, labels, c, self.reduction, grad.slice())
            .map(|l| (l, grad.get().to_vec()));
        fence("loss_and_grad", &grad)?;
        Ok(Run {
            backend,
            loss,
            reduced,
            fused,
        })
    }

    /// Runs the case on every available backend; `Err` lists what broke.
    pub fn check(&self) -> Result<(), String> {
        let mut fails = Failures::default();
        let (n, c) = (self.labels.len(), self.classes);
        if c == 0 || self.logits.len() != n * c {
            return Err("malformed case: classes 0 or logits not N x C".into());
        }
        if let Weighting::PerClass(w) = &self.alpha {
            if w.len() != c {
                return Err("malformed case: per-class weights not C long".into());
            }
        }
        let mut param_errors = parameter_errors(
            self.gamma,
            match self.alpha {
                Weighting::Uniform(a) => Some(a),
                _ => None,
            },
        );
        if let Weighting::PerClass(w) = &self.alpha {
            if let Some(class) = w.iter().position(|&v| !(v.is_finite() && v >= 0.0)) {
                param_errors.push(Error::InvalidClassAlpha {
                    class,
                    value: w[class],
                });
            }
        }
        let fl = match SoftmaxFocal::new(self.gamma, self.alpha.class_alpha()) {
            Err(e) => {
                if !error_in(&e, &param_errors) {
                    fails.push(format!(
                        "SoftmaxFocal::new({}, {:?}) = Err({e:?}), allowed: {param_errors:?}",
                        show(self.gamma),
                        self.alpha
                    ));
                }
                return fails.into_result();
            }
            Ok(fl) => {
                if !param_errors.is_empty() {
                    fails.push(format!(
                        "SoftmaxFocal::new({}, {:?}) = Ok, want one of {param_errors:?}",
                        show(self.gamma),
                        self.alpha
                    ));
                    return fails.into_result();
                }
                fl
            }
        };
        let mut runs = Vec::new();
        for b in Backend::available() {
            match self.run(&fl, b) {
                Ok(r) => runs.push(r),
                Err(e) => fails.push(e),
            }
        }
        let invalid_label = self
            .labels
            .iter()
            .position(|&l| l != IGNORE_INDEX && !(l >= 0 && (l as usize) < c))
            .map(|row| Error::InvalidLabel {
                row,
                label: self.labels[row],
            });
        let active = self.labels.iter().filter(|&&l| l != IGNORE_INDEX).count();
        let scale = reduction_scale(self.reduction, active);
        for r in &runs {
            let b = r.backend.name();
            let elementwise: Vec<Error> = invalid_label.iter().copied().collect();
            let mut reducing = elementwise.clone();
            if let (Err(()), Reduction::DivideBy(v)) = (scale, self.reduction) {
                reducing.push(Error::InvalidNormalizer(v));
            }
            let results = [
                ("loss", r.loss.as_ref().err(), &elementwise),
                ("loss_reduced", r.reduced.as_ref().err(), &reducing),
                ("loss_and_grad", r.fused.as_ref().err(), &reducing),
            ];
            for (what, got, allowed) in results {
                match got {
                    None if !allowed.is_empty() => {
                        fails.push(format!("[{b}] {what} = Ok, want one of {allowed:?}"))
                    }
                    Some(e) if !error_in(e, allowed) => {
                        fails.push(format!("[{b}] {what} = Err({e:?}), allowed: {allowed:?}"))
                    }
                    _ => {}
                }
            }
        }
        if invalid_label.is_none() {
            let refs: Vec<Option<softmax_reference::Row>> = (0..n)
                .map(|r| {
                    let row = &self.logits[r * c..(r + 1) * c];
                    let y = self.labels[r];
                    (y != IGNORE_INDEX && row.iter().all(|v| v.is_finite())).then(|| {
                        let y = y as usize;
                        softmax_reference::row(row, y, f64::from(self.gamma), self.alpha.of(y))
                    })
                })
                .collect();
            for r in &runs {
                self.check_values(r, &refs, &scale, &mut fails);
            }
            if let Some(s) = runs.iter().find(|r| r.backend == Backend::Scalar) {
                for r in runs.iter().filter(|r| r.backend != Backend::Scalar) {
                    self.check_against_scalar(r, s, &mut fails);
                }
            }
        }
        fails.into_result()
    }

    fn row_has_nan(&self, r: usize) -> bool {
        let c = self.classes;
        self.logits[r * c..(r + 1) * c].iter().any(|v| v.is_nan())
    }

    fn check_values(
        &self,
        run: &Run,
        refs: &[Option<softmax_reference::Row>],
        scale: &Result<Option<f64>, ()>,
        fails: &mut Failures,
    ) {
        let b = run.backend.name();
        let c = self.classes;
        let bar = focal_bar(self.gamma);
        let elem = |got: f32, want: f64| match bar {
            Some(bar) => within(got, want, want.abs(), bar),
            None => loosely(got, want, want.abs()),
        };
        if let Ok(loss) = &run.loss {
            for (r, want) in refs.iter().enumerate() {
                let l = loss[r];
                let y = self.labels[r];
                match want {
                    Some(w) => {
                        if let Some(e) = elem(l, w.loss) {
                            fails.push(format!("[{b}] loss of row {r} (label {y}): {e}"));
                        }
                    }
                    None if y == IGNORE_INDEX => {
                        if l != 0.0 {
                            fails.push(format!(
                                "[{b}] loss of ignored row {r}: {} (want 0)",
                                show(l)
                            ));
                        }
                    }
                    None if self.row_has_nan(r) => {
                        if !l.is_nan() {
                            fails.push(format!(
                                "[{b}] loss of row {r} with a NaN logit: {} (want NaN)",
                                show(l)
                            ));
                        }
                    }
                    None => {
                        // Infinite logits, no NaN: the limits (no NaN).
                        if l.is_nan() {
                            fails.push(format!(
                                "[{b}] loss of row {r} (infinite logits, no NaN): NaN"
                            ));
                        }
                    }
                }
            }
        }
        let scale = match *scale {
            Ok(Some(s)) => s,
            Ok(None) => {
                // Mean over no active row: 0 and a zero gradient.
                let reduced = run.reduced.as_ref().ok().copied();
                let fused = run.fused.as_ref().ok();
                let bad = reduced.is_some_and(|v| v != 0.0)
                    || fused.is_some_and(|(l, g)| *l != 0.0 || g.iter().any(|&v| v != 0.0));
                if bad {
                    fails.push(format!(
                        "[{b}] Mean with every row ignored: loss_reduced {reduced:?}, \
                         loss_and_grad {fused:?} (want 0, 0, zeros)"
                    ));
                }
                return;
            }
            Err(()) => return,
        };
        let any_nan =
            (0..self.labels.len()).any(|r| self.labels[r] != IGNORE_INDEX && self.row_has_nan(r));
        let red = fmt_reduction(self.reduction);
        if let Ok(loss) = &run.loss {
            let own = sum_losses(loss.iter().map(|&v| f64::from(v)));
            let reduced = [
                ("loss_reduced", run.reduced.as_ref().ok().copied()),
                ("loss_and_grad", run.fused.as_ref().ok().map(|f| f.0)),
            ];
            for (what, got) in reduced {
                let Some(got) = got else { continue };
                if any_nan {
                    if !got.is_nan() {
                        fails.push(format!(
                            "[{b}] {what}({red}) = {} with a NaN row (want NaN)",
                            show(got)
                        ));
                    }
                    continue;
                }
                if own.is_nan() {
                    continue; // reported per row above
                }
                if own.is_infinite() {
                    if got != f32::INFINITY {
                        fails.push(format!(
                            "[{b}] {what}({red}) = {} with an infinite row loss (want +inf)",
                            show(got)
                        ));
                    }
                    continue;
                }
                // Below a normaliser of 1, a sum of row losses under `active`
                // 2^-118 is taken again from the rows in f64 (SoftmaxFocal's
                // Accuracy section): the f32 row losses below the normal range are
                // then not what it adds, and the reference decides alone.
                let active = self.labels.iter().filter(|&&l| l != IGNORE_INDEX).count();
                let refined = scale > 1.0 && own < active as f64 * 2f64.powi(-118);
                let want = own * scale;
                let off = (!refined).then(|| within(got, want, want.abs(), SUM_BAR));
                if let Some(Some(e)) = off {
                    fails.push(format!(
                        "[{b}] {what}({red}) against the exact sum of its row losses times {scale:e}: {e}"
                    ));
                }
                if let (Some(bar), true) = (
                    bar,
                    refs.iter()
                        .zip(&self.labels)
                        .all(|(w, &y)| w.is_some() || y == IGNORE_INDEX),
                ) {
                    let exact = sum_losses(refs.iter().flatten().map(|w| w.loss)) * scale;
                    // The rows' subnormal roundings count at most at scale 1:
                    // larger scales meet them only in sums far above them.
                    let terms = refs.iter().flatten().count();
                    if let Some(e) = within_sum(got, exact, bar, terms, scale.min(1.0)) {
                        fails.push(format!(
                            "[{b}] {what}({red}) against the exact sum of the reference losses times {scale:e}: {e}"
                        ));
                    }
                }
            }
        }
        let Ok((_, grad)) = &run.fused else { return };
        for (r, want) in refs.iter().enumerate() {
            let g = &grad[r * c..(r + 1) * c];
            let y = self.labels[r];
            match want {
                Some(w) => {
                    for (j, (&got, &wj)) in g.iter().zip(&w.grad).enumerate() {
                        if let Some(e) = elem(got, wj * scale) {
                            fails.push(format!("[{b}] grad[{r}][{j}] ({red}, label {y}): {e}"));
                        }
                    }
                }
                None if y == IGNORE_INDEX => {
                    if g.iter().any(|&v| v != 0.0) {
                        fails.push(format!(
                            "[{b}] gradient row {r} of an ignored row is not 0: {g:?}"
                        ));
                    }
                }
                None if self.row_has_nan(r) => {
                    if g.iter().any(|v| !v.is_nan()) {
                        fails.push(format!(
                            "[{b}] gradient row {r} with a NaN logit is not all NaN: {g:?}"
                        ));
                    }
                }
                None => {
                    if g.iter().any(|v| v.is_nan()) {
                        fails.push(format!(
                            "[{b}] gradient row {r} (infinite logits, no NaN) has NaN: {g:?}"
                        ));
                    }
                }
            }
        }
    }

    /// Against Scalar: the same NaN and infinity positions.
    fn check_against_scalar(&self, r: &Run, s: &Run, fails: &mut Failures) {
        let b = r.backend.name();
        let same = |v: f32, w: f32| {
            v.is_nan() == w.is_nan()
                && v.is_infinite() == w.is_infinite()
                && (!v.is_infinite() || v == w)
        };
        if let (Ok(v), Ok(w)) = (&r.loss, &s.loss) {
            for (i, (&v, &w)) in v.iter().zip(w).enumerate() {
                if !same(v, w) {
                    fails.push(format!(
                        "[{b}] loss of row {i} = {}, Scalar {}",
                        show(v),
                        show(w)
                    ));
                }
            }
        }
        if let (Ok((_, v)), Ok((_, w))) = (&r.fused, &s.fused) {
            for (i, (&v, &w)) in v.iter().zip(w).enumerate() {
                if !same(v, w) {
                    fails.push(format!(
                        "[{b}] grad[{}][{}] = {}, Scalar {}",
                        i / self.classes,
                        i % self.classes,
                        show(v),
                        show(w)
                    ));
                }
            }
        }
    }
}

impl fmt::Debug for SoftmaxCase {
    /// Rust source for `tests/fuzz_regressions.rs` (what `cargo fuzz fmt` prints).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "SoftmaxCase {{")?;
        writeln!(f, "    gamma: {},", fmt_f32(self.gamma))?;
        match &self.alpha {
            Weighting::Off => writeln!(f, "    alpha: Weighting::Off,")?,
            Weighting::Uniform(a) => {
                writeln!(f, "    alpha: Weighting::Uniform({}),", fmt_f32(*a))?
            }
            Weighting::PerClass(w) => writeln!(
                f,
                "    alpha: Weighting::PerClass({}),",
                fmt_f32s(w, "    ")
            )?,
        }
        writeln!(f, "    reduction: {},", fmt_reduction(self.reduction))?;
        writeln!(f, "    offsets: {:?},", self.offsets)?;
        writeln!(f, "    classes: {},", self.classes)?;
        writeln!(f, "    logits: {},", fmt_f32s(&self.logits, "    "))?;
        writeln!(f, "    labels: vec!{:?},", self.labels)?;
        write!(f, "}}")
    }
}
