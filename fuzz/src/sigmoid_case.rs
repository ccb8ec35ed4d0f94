//! The `sigmoid_differential` oracle: one [`SigmoidCase`] (parameters, reduction,
//! logits, targets, start offsets) run on every backend the CPU has, each checked
//! against the f64 reference (`tests/common/reference.rs`) within the documented
//! bounds and against the Scalar backend, with the error decisions modelled from
//! the documentation.

use core::fmt;

use focal::{Alpha, Backend, Error, Focal, Reduction, SoftTargets};

use crate::bytes::{
    fmt_f32, fmt_f32s, Reader, Writer, SPECIAL_ALPHAS, SPECIAL_GAMMAS, SPECIAL_NORMALIZERS,
};
use crate::check::{focal_bar, loosely, show, sum_losses, within, within_sum, Failures, SUM_BAR};
use crate::reference;
use crate::slices::{input, Fenced};

/// Longest slice decoded.
pub const MAX_LEN: usize = 1024;

/// One input of the sigmoid focal loss.
#[derive(Clone)]
pub struct SigmoidCase {
    /// Focusing parameter (any bits: invalid ones must give `InvalidGamma`).
    pub gamma: f32,
    /// Class weighting (any value: invalid ones must give `InvalidAlpha`).
    pub alpha: Alpha,
    /// Soft-target form.
    pub soft: SoftTargets,
    /// Reduction of `loss_reduced` and `loss_and_grad`.
    pub reduction: Reduction,
    /// Start offsets (elements) of the logits, the targets and the outputs in their
    /// allocations: misaligned starts.
    pub offsets: [usize; 3],
    /// Logits.
    pub logits: Vec<f32>,
    /// Targets, as many as logits.
    pub targets: Vec<f32>,
}

/// Reads a slice length: one byte, or 255 and two more for up to [`MAX_LEN`].
pub fn read_len(r: &mut Reader<'_>, max: usize) -> usize {
    let b = usize::from(r.byte());
    if b < 255 {
        b.min(max)
    } else {
        (255 + usize::from(r.u16()) % (max - 254)).min(max)
    }
}

/// Writes a length for [`read_len`].
pub fn write_len(w: &mut Writer, n: usize) {
    if n < 255 {
        w.byte(n as u8);
    } else {
        w.byte(255);
        w.u16((n - 255) as u16);
    }
}

/// Reads an `Alpha`: a byte `% 3` (off, balanced, uniform) and, for the last two,
/// a value.
pub fn read_alpha(r: &mut Reader<'_>) -> Alpha {
    match r.byte() % 3 {
        0 => Alpha::Off,
        1 => Alpha::Balanced(r.param(&SPECIAL_ALPHAS, 1.0)),
        _ => Alpha::Uniform(r.param(&SPECIAL_ALPHAS, 1.0)),
    }
}

/// Writes an `Alpha` for [`read_alpha`].
pub fn write_alpha(w: &mut Writer, a: Alpha) {
    match a {
        Alpha::Off => w.byte(0),
        Alpha::Balanced(v) => {
            w.byte(1);
            w.param(v);
        }
        Alpha::Uniform(v) => {
            w.byte(2);
            w.param(v);
        }
    }
}

/// Reads a `Reduction`: a byte `% 3` (sum, mean, divide by a value).
pub fn read_reduction(r: &mut Reader<'_>) -> Reduction {
    match r.byte() % 3 {
        0 => Reduction::Sum,
        1 => Reduction::Mean,
        _ => Reduction::DivideBy(r.param(&SPECIAL_NORMALIZERS, 1000.0)),
    }
}

/// Writes a `Reduction` for [`read_reduction`].
pub fn write_reduction(w: &mut Writer, red: Reduction) {
    match red {
        Reduction::Sum => w.byte(0),
        Reduction::Mean => w.byte(1),
        Reduction::DivideBy(v) => {
            w.byte(2);
            w.param(v);
        }
    }
}

/// Formats a `Reduction` as Rust.
pub fn fmt_reduction(red: Reduction) -> String {
    match red {
        Reduction::Sum => "Reduction::Sum".into(),
        Reduction::Mean => "Reduction::Mean".into(),
        Reduction::DivideBy(v) => format!("Reduction::DivideBy({})", fmt_f32(v)),
    }
}

/// Formats an `Alpha` as Rust.
pub fn fmt_alpha(a: Alpha) -> String {
    match a {
        Alpha::Off => "Alpha::Off".into(),
        Alpha::Balanced(v) => format!("Alpha::Balanced({})", fmt_f32(v)),
        Alpha::Uniform(v) => format!("Alpha::Uniform({})", fmt_f32(v)),
    }
}

/// `1 / normaliser` of a valid reduction over `active` elements (`None` for `Mean`
/// over nothing), or `Err(())` for an invalid normaliser.
pub fn reduction_scale(red: Reduction, active: usize) -> Result<Option<f64>, ()> {
    match red {
        Reduction::Sum => Ok(Some(1.0)),
        Reduction::Mean if active == 0 => Ok(None),
        Reduction::Mean => Ok(Some(1.0 / active as f64)),
        Reduction::DivideBy(n) if n >= f32::MIN_POSITIVE && n.is_finite() => {
            Ok(Some(1.0 / f64::from(n)))
        }
        Reduction::DivideBy(_) => Err(()),
    }
}

/// Whether `a` is one of `allowed`, comparing floats by bits.
pub fn error_in(a: &Error, allowed: &[Error]) -> bool {
    let key = format!("{a:?}");
    allowed.iter().any(|e| format!("{e:?}") == key)
}

/// The errors a constructor may return for gamma and an alpha value (documented in
/// `Focal::new` / `SoftmaxFocal::new`: gamma finite and `>= 0`, alpha in `[0, 1]`).
pub fn parameter_errors(gamma: f32, alpha: Option<f32>) -> Vec<Error> {
    let mut v = Vec::new();
    if !(gamma.is_finite() && gamma >= 0.0) {
        v.push(Error::InvalidGamma(gamma));
    }
    if let Some(a) = alpha {
        if !(0.0..=1.0).contains(&a) {
            v.push(Error::InvalidAlpha(a));
        }
    }
    v
}

/// Results of one backend.
struct Run {
    backend: Backend,
    loss: Result<Vec<f32>, Error>,
    grad: Result<Vec<f32>, Error>,
    reduced: Result<f32, Error>,
    fused: Result<(f32, Vec<f32>), Error>,
}

impl SigmoidCase {
    /// Decodes fuzzer bytes (every byte string is some case).
    pub fn decode(data: &[u8]) -> Self {
        let mut r = Reader::new(data);
        let gamma = r.param(&SPECIAL_GAMMAS, 8.0);
        let alpha = read_alpha(&mut r);
        let soft = if r.byte() & 1 == 0 {
            SoftTargets::Torchvision
        } else {
            SoftTargets::ExpNegBce
        };
        let reduction = read_reduction(&mut r);
        let o = usize::from(r.byte());
        let o2 = usize::from(r.byte());
        let offsets = [o & 15, o >> 4, o2 & 15];
        let n = read_len(&mut r, MAX_LEN);
        let logits = r.values(n, Reader::logit);
        let targets = r.values(n, Reader::target);
        SigmoidCase {
            gamma,
            alpha,
            soft,
            reduction,
            offsets,
            logits,
            targets,
        }
    }

    /// Encodes the case so that [`SigmoidCase::decode`] gives it back (seeds).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.param(self.gamma);
        write_alpha(&mut w, self.alpha);
        w.byte(match self.soft {
            SoftTargets::Torchvision => 0,
            SoftTargets::ExpNegBce => 1,
        });
        write_reduction(&mut w, self.reduction);
        w.byte((self.offsets[0] & 15 | (self.offsets[1] & 15) << 4) as u8);
        w.byte((self.offsets[2] & 15) as u8);
        write_len(&mut w, self.logits.len());
        w.values(&self.logits, Writer::logit);
        w.values(&self.targets, Writer::target);
        w.bytes
    }

    fn run(&self, fl: &Focal, backend: Backend) -> Result<Run, String> {
        let fl = fl
            .with_backend(backend)
            .map_err(|e| format!("with_backend({backend:?}) of an available backend: {e:?}"))?;
        let [ox, ot, oo] = self.offsets;
        let n = self.logits.len();
        let xb = input(&self.logits, ox);
        let tb = input(&self.targets, ot);
        let (x, t) = (&xb[ox..], &tb[ot..]);
        let mut out = Fenced::new(n, oo);
        let fence = |what: &str, out: &Fenced| match out.breached() {
            Some(i) => Err(format!(
                "[{}] {what} wrote outside its output slice, at relative index {i}",
                backend.name()
            )),
            None => Ok(()),
        };
        let loss = fl.loss(x, t, out.slice()).map(|()| out.get().to_vec());
        fence("loss", &out)?;
        out.reset();
        let grad = fl.grad(x, t, out.slice()).map(|()| out.get().to_vec());
        fence("grad", &out)?;
        out.reset();
        let reduced = fl.loss_reduced(x, t, self.reduction);
        let fused = fl
            .loss_and_grad(x, t, self.reduction, out.slice())
            .map(|l| (l, out.get().to_vec()));
        fence("loss_and_grad", &out)?;
        Ok(Run {
            backend,
            loss,
            grad,
            reduced,
            fused,
        })
    }

    /// Runs the case on every available backend; `Err` lists what broke.
    pub fn check(&self) -> Result<(), String> {
        let mut fails = Failures::default();
        if self.logits.len() != self.targets.len() {
            return Err("malformed case: logits and targets differ in length".into());
        }
        let alpha_value = match self.alpha {
            Alpha::Off => None,
            Alpha::Balanced(a) | Alpha::Uniform(a) => Some(a),
        };
        let param_errors = parameter_errors(self.gamma, alpha_value);
        let fl = match Focal::new(self.gamma, self.alpha) {
            Err(e) => {
                if !error_in(&e, &param_errors) {
                    fails.push(format!(
                        "Focal::new({}, {:?}) = Err({e:?}), allowed: {param_errors:?}",
                        show(self.gamma),
                        self.alpha
                    ));
                }
                return fails.into_result();
            }
            Ok(fl) => {
                if !param_errors.is_empty() {
                    fails.push(format!(
                        "Focal::new({}, {:?}) = Ok, want one of {param_errors:?}",
                        show(self.gamma),
                        self.alpha
                    ));
                    return fails.into_result();
                }
                fl.soft_targets(self.soft)
            }
        };
        let mut runs = Vec::new();
        for b in Backend::available() {
            match self.run(&fl, b) {
                Ok(r) => runs.push(r),
                Err(e) => fails.push(e),
            }
        }
        let invalid_target = self
            .targets
            .iter()
            .position(|&t| !(t == -1.0 || (0.0..=1.0).contains(&t)))
            .map(|index| Error::InvalidTarget {
                index,
                value: self.targets[index],
            });
        let active = self.targets.iter().filter(|&&t| t != -1.0).count();
        let scale = reduction_scale(self.reduction, active);
        for r in &runs {
            self.check_errors(r, &invalid_target, &scale, &mut fails);
        }
        if invalid_target.is_none() {
            // Reference per element: None for ignored elements and NaN logits.
            let refs: Vec<Option<reference::Point>> = self
                .logits
                .iter()
                .zip(&self.targets)
                .map(|(&x, &t)| {
                    (t != -1.0 && !x.is_nan()).then(|| {
                        reference::focal(
                            f64::from(x),
                            f64::from(t),
                            f64::from(self.gamma),
                            self.alpha,
                            self.soft,
                        )
                    })
                })
                .collect();
            for r in &runs {
                self.check_values(r, &refs, &scale, &mut fails);
            }
            if let Some(s) = runs.iter().find(|r| r.backend == Backend::Scalar) {
                for r in runs.iter().filter(|r| r.backend != Backend::Scalar) {
                    self.check_against_scalar(r, s, &refs, &mut fails);
                }
            }
        }
        fails.into_result()
    }

    /// Same error decisions as documented: an invalid target is reported (first
    /// index) by every call, an invalid normaliser by the reducing calls.
    fn check_errors(
        &self,
        r: &Run,
        invalid_target: &Option<Error>,
        scale: &Result<Option<f64>, ()>,
        fails: &mut Failures,
    ) {
        let b = r.backend.name();
        let elementwise: Vec<Error> = invalid_target.iter().copied().collect();
        let mut reducing = elementwise.clone();
        if let (Err(()), Reduction::DivideBy(n)) = (scale, self.reduction) {
            reducing.push(Error::InvalidNormalizer(n));
        }
        let mut expect = |what: &str, got: Option<&Error>, allowed: &[Error]| match (got, allowed) {
            (None, []) => {}
            (None, _) => fails.push(format!("[{b}] {what} = Ok, want one of {allowed:?}")),
            (Some(e), _) if !error_in(e, allowed) => {
                fails.push(format!("[{b}] {what} = Err({e:?}), allowed: {allowed:?}"))
            }
            _ => {}
        };
        expect("loss", r.loss.as_ref().err(), &elementwise);
        expect("grad", r.grad.as_ref().err(), &elementwise);
        expect("loss_reduced", r.reduced.as_ref().err(), &reducing);
        expect("loss_and_grad", r.fused.as_ref().err(), &reducing);
    }

    /// Elementwise loss and gradient, the reductions and the fused gradient against
    /// the reference.
    fn check_values(
        &self,
        r: &Run,
        refs: &[Option<reference::Point>],
        scale: &Result<Option<f64>, ()>,
        fails: &mut Failures,
    ) {
        let b = r.backend.name();
        let bar = focal_bar(self.gamma);
        let at = |i: usize| format!("x={} t={}", show(self.logits[i]), show(self.targets[i]));
        let elem = |got: f32, want: f64, scale: f64| match bar {
            Some(bar) => within(got, want, scale, bar),
            None => loosely(got, want, scale),
        };
        let (Ok(loss), Ok(grad)) = (&r.loss, &r.grad) else {
            return;
        };
        for (i, p) in refs.iter().enumerate() {
            let (l, g) = (loss[i], grad[i]);
            match p {
                None if self.targets[i] == -1.0 => {
                    if l != 0.0 || g != 0.0 {
                        fails.push(format!(
                            "[{b}] ignored element {i} ({}): loss {}, grad {} (want 0, 0)",
                            at(i),
                            show(l),
                            show(g)
                        ));
                    }
                }
                None => {
                    if !l.is_nan() || !g.is_nan() {
                        fails.push(format!(
                            "[{b}] NaN logit at {i} ({}): loss {}, grad {} (want NaN, NaN)",
                            at(i),
                            show(l),
                            show(g)
                        ));
                    }
                }
                Some(p) => {
                    if let Some(e) = elem(l, p.loss, p.loss.abs()) {
                        fails.push(format!("[{b}] loss[{i}] at {}: {e}", at(i)));
                    }
                    if let Some(e) = elem(g, p.grad, p.grad_scale) {
                        fails.push(format!("[{b}] grad[{i}] at {}: {e}", at(i)));
                    }
                }
            }
        }
        let Ok(scale) = *scale else {
            return;
        };
        let (Ok(reduced), Ok((fused, fgrad))) = (&r.reduced, &r.fused) else {
            return;
        };
        let Some(scale) = scale else {
            // Mean over nothing: 0 and a zero gradient.
            if *reduced != 0.0 || *fused != 0.0 || fgrad.iter().any(|&g| g != 0.0) {
                fails.push(format!(
                    "[{b}] Mean with every element ignored: loss_reduced {}, loss_and_grad {}, \
                     grad not all 0: {} (want 0, 0, zeros)",
                    show(*reduced),
                    show(*fused),
                    fgrad.iter().any(|&g| g != 0.0)
                ));
            }
            return;
        };
        // The reduced loss against the exact sum of this backend's own elementwise
        // losses (the documented bound), and against the reference's (`within_sum`:
        // the terms' bounds added up, derived there).
        let own = sum_losses(loss.iter().map(|&v| f64::from(v)));
        let any_nan = refs
            .iter()
            .zip(&self.targets)
            .any(|(p, &t)| p.is_none() && t != -1.0);
        for (what, got) in [("loss_reduced", *reduced), ("loss_and_grad", *fused)] {
            let red = fmt_reduction(self.reduction);
            if any_nan {
                if !got.is_nan() {
                    fails.push(format!(
                        "[{b}] {what}({red}) = {} with a NaN logit (want NaN)",
                        show(got)
                    ));
                }
                continue;
            }
            if own.is_nan() {
                continue; // a NaN loss for a non-NaN logit: reported per element above
            }
            let want = own * scale;
            if own.is_infinite() {
                if got != f32::INFINITY {
                    fails.push(format!(
                        "[{b}] {what}({red}) = {} with an infinite loss (want +inf)",
                        show(got)
                    ));
                }
                continue;
            }
            // Below a normaliser of 1, a sum under `active` 2^-118 (of all the
            // targets, when the hard bet was taken: an upper bound) is taken again
            // from the elements in f64 (src/sigmoid.rs, `refined`): the f32
            // elementwise losses below the normal range are then not what it adds,
            // and the reference decides alone.
            let refined = scale > 1.0 && own < self.targets.len() as f64 * 2f64.powi(-118);
            let off = (!refined).then(|| within(got, want, want.abs(), SUM_BAR));
            if let Some(Some(e)) = off {
                fails.push(format!(
                    "[{b}] {what}({red}) against the exact sum of its elementwise losses times {scale:e}: {e}"
                ));
            }
            if let Some(bar) = bar {
                let exact = sum_losses(refs.iter().flatten().map(|p| p.loss)) * scale;
                // The terms' subnormal roundings count at most at scale 1: larger
                // scales meet them only in sums far above them.
                let terms = refs.iter().flatten().count();
                if let Some(e) = within_sum(got, exact, bar, terms, scale.min(1.0)) {
                    fails.push(format!(
                        "[{b}] {what}({red}) against the exact sum of the reference losses times {scale:e}: {e}"
                    ));
                }
            }
        }
        // The fused gradient is the gradient of the reduced loss, for every
        // normaliser (below 1, the entries the kernels formed below the normal range
        // are computed again in f64: src/sigmoid.rs, `refined`).
        for (i, p) in refs.iter().enumerate() {
            let g = fgrad[i];
            match p {
                None if self.targets[i] == -1.0 => {
                    if g != 0.0 {
                        fails.push(format!(
                            "[{b}] fused grad of ignored element {i}: {} (want 0)",
                            show(g)
                        ));
                    }
                }
                None => {
                    if !g.is_nan() {
                        fails.push(format!(
                            "[{b}] fused grad at NaN logit {i}: {} (want NaN)",
                            show(g)
                        ));
                    }
                }
                Some(p) => {
                    if let Some(e) = elem(g, p.grad * scale, p.grad_scale * scale) {
                        fails.push(format!(
                            "[{b}] fused grad[{i}] ({}) at {}: {e}",
                            fmt_reduction(self.reduction),
                            at(i)
                        ));
                    }
                }
            }
        }
    }

    /// Against Scalar: the same NaN and infinity positions, and values within the sum
    /// of both bounds (or loosely for gamma > 8, where the reference bound is not
    /// documented but the two backends must still agree).
    fn check_against_scalar(
        &self,
        r: &Run,
        s: &Run,
        refs: &[Option<reference::Point>],
        fails: &mut Failures,
    ) {
        let b = r.backend.name();
        let pairs = [("loss", &r.loss, &s.loss), ("grad", &r.grad, &s.grad)];
        for (what, got, sc) in pairs {
            let (Ok(got), Ok(sc)) = (got, sc) else {
                continue;
            };
            for (i, (&v, &w)) in got.iter().zip(sc).enumerate() {
                let same_class = v.is_nan() == w.is_nan()
                    && (v.is_infinite() == w.is_infinite())
                    && (!v.is_infinite() || v == w);
                if !same_class {
                    fails.push(format!(
                        "[{b}] {what}[{i}] = {}, Scalar {} (x={} t={})",
                        show(v),
                        show(w),
                        show(self.logits[i]),
                        show(self.targets[i])
                    ));
                    continue;
                }
                let Some(p) = refs[i] else { continue };
                if !v.is_finite() {
                    continue;
                }
                let sc = if what == "loss" {
                    p.loss.abs()
                } else {
                    p.grad_scale
                };
                let e = match focal_bar(self.gamma) {
                    Some(bar) => within(v, f64::from(w), sc, 2.0 * bar),
                    None => loosely(v, f64::from(w), sc.max(f64::from(w).abs())),
                };
                if let Some(e) = e {
                    fails.push(format!(
                        "[{b}] {what}[{i}] against Scalar (x={} t={}): {e}",
                        show(self.logits[i]),
                        show(self.targets[i])
                    ));
                }
            }
        }
        let red = [
            (
                "loss_reduced",
                r.reduced.as_ref().ok().copied(),
                s.reduced.as_ref().ok().copied(),
            ),
            (
                "loss_and_grad",
                r.fused.as_ref().ok().map(|f| f.0),
                s.fused.as_ref().ok().map(|f| f.0),
            ),
        ];
        for (what, v, w) in red {
            let (Some(v), Some(w)) = (v, w) else { continue };
            if v.is_nan() != w.is_nan() || (v.is_infinite() || w.is_infinite()) && v != w {
                fails.push(format!("[{b}] {what} = {}, Scalar {}", show(v), show(w)));
            }
        }
    }
}

impl fmt::Debug for SigmoidCase {
    /// Rust source for `tests/fuzz_regressions.rs` (what `cargo fuzz fmt` prints).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "SigmoidCase {{")?;
        writeln!(f, "    gamma: {},", fmt_f32(self.gamma))?;
        writeln!(f, "    alpha: {},", fmt_alpha(self.alpha))?;
        writeln!(f, "    soft: SoftTargets::{:?},", self.soft)?;
        writeln!(f, "    reduction: {},", fmt_reduction(self.reduction))?;
        writeln!(f, "    offsets: {:?},", self.offsets)?;
        writeln!(f, "    logits: {},", fmt_f32s(&self.logits, "    "))?;
        writeln!(f, "    targets: {},", fmt_f32s(&self.targets, "    "))?;
        write!(f, "}}")
    }
}
