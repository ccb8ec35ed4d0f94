//! The `api_misuse` oracle: one public call with arbitrary (mostly inconsistent)
//! lengths, class counts (0, huge: `N * C` overflowing), labels, targets, parameters
//! and a pinned or forced backend (also ones the CPU lacks). The result must be
//! `Ok` exactly when the documentation says so, and otherwise an `Err` naming one of
//! the things that are wrong (with the documented fields: first bad index, the
//! expected length); never a panic, never an out-of-bounds access (the slices are
//! exact allocations, so AddressSanitizer sees any over-read or over-write).

use core::fmt;

use focal::{Alpha, Backend, Error, Focal, Reduction, SoftTargets, SoftmaxFocal, IGNORE_INDEX};

use crate::bytes::{fmt_f32s, Reader, Writer, SPECIAL_ALPHAS, SPECIAL_GAMMAS};
use crate::check::{show, Failures};
use crate::sigmoid_case::{
    error_in, fmt_alpha, fmt_reduction, parameter_errors, read_alpha, read_reduction,
    reduction_scale, write_alpha, write_reduction,
};
use crate::softmax_case::{Weighting, SPECIAL_WEIGHTS};

/// The calls, selected by `op % OPS`.
pub const OPS: u8 = 12;
/// Largest output slice allocated.
const MAX_OUT: usize = 4096;

/// One call with its arguments.
#[derive(Clone)]
pub struct MisuseCase {
    /// Which call: 0 loss, 1 loss_reduced, 2 grad, 3 loss_and_grad (sigmoid);
    /// 4 `Backend::{sigmoid, softplus, log_sigmoid}` (by `func`), 5 the crate-level
    /// ones; 6 loss, 7 loss_reduced, 8 loss_and_grad (softmax); 9 `Focal::with_backend`,
    /// 10 `SoftmaxFocal::with_backend`, 11 `Backend::force`.
    pub op: u8,
    /// 0 sigmoid, 1 softplus, 2 log_sigmoid (ops 4, 5).
    pub func: u8,
    /// The pinned (or forced) backend; `None`: the active one.
    pub backend: Option<Backend>,
    /// gamma (any bits).
    pub gamma: f32,
    /// Sigmoid alpha (any value).
    pub alpha: Alpha,
    /// Softmax class weighting (any values, any length).
    pub weights: Weighting,
    /// Soft-target form.
    pub soft: SoftTargets,
    /// Reduction (any normaliser).
    pub reduction: Reduction,
    /// Number of classes (0, small, or huge).
    pub classes: usize,
    /// Logits (any length).
    pub logits: Vec<f32>,
    /// Sigmoid targets (any length, any values).
    pub targets: Vec<f32>,
    /// Softmax labels (any length, any values).
    pub labels: Vec<i32>,
    /// Length of the output slice.
    pub out_len: usize,
}

const HUGE_CLASSES: [usize; 6] = [
    usize::MAX,
    usize::MAX / 2 + 1,
    1 << 31,
    (1 << 31) - 1,
    HUGE_POW2,
    usize::MAX / 3,
];

/// 2^32 where `usize` has 64 bits: it truncates to 0 as a `u32`. A 32-bit `usize`
/// (wasm32) cannot hold it; there 2^30, whose `f32` logits would take 2^32 bytes,
/// more than the address space.
#[cfg(target_pointer_width = "64")]
const HUGE_POW2: usize = 1 << 32;
#[cfg(not(target_pointer_width = "64"))]
const HUGE_POW2: usize = 1 << 30;

/// A length near `right` (the consistent one) or anything small.
fn read_len_near(r: &mut Reader<'_>, right: usize) -> usize {
    let b = r.byte();
    match b {
        0..=127 => right,
        128..=191 => right.saturating_add(usize::from(b % 3)).saturating_sub(1),
        _ => usize::from(b % 41),
    }
}

fn backend_of(k: u8) -> Option<Backend> {
    match k % 5 {
        0 => None,
        k => Some(Backend::ALL[usize::from(k - 1)]),
    }
}

fn backend_index(b: Option<Backend>) -> u8 {
    match b {
        None => 0,
        Some(b) => Backend::ALL
            .iter()
            .position(|&x| x == b)
            .map_or(0, |i| i as u8 + 1),
    }
}

impl MisuseCase {
    /// Decodes fuzzer bytes.
    pub fn decode(data: &[u8]) -> Self {
        let mut r = Reader::new(data);
        let op = r.byte() % OPS;
        let func = r.byte() % 3;
        let backend = backend_of(r.byte());
        let gamma = r.param(&SPECIAL_GAMMAS, 8.0);
        let alpha = read_alpha(&mut r);
        let soft = if r.byte() & 1 == 0 {
            SoftTargets::Torchvision
        } else {
            SoftTargets::ExpNegBce
        };
        let reduction = read_reduction(&mut r);
        let b = r.byte();
        let classes = match b {
            0..=199 => usize::from(b % 10),
            200..=239 => usize::from(b - 200),
            _ => HUGE_CLASSES[usize::from(b) % HUGE_CLASSES.len()],
        };
        let weights = match r.byte() % 3 {
            0 => Weighting::Off,
            1 => Weighting::Uniform(r.param(&SPECIAL_ALPHAS, 1.0)),
            _ => {
                let n = read_len_near(&mut r, classes.min(64));
                Weighting::PerClass(r.values(n, |r| r.param(&SPECIAL_WEIGHTS, 4.0)))
            }
        };
        let l = usize::from(r.byte() % 65);
        let logits = r.values(l, Reader::logit);
        let t = read_len_near(&mut r, l);
        let targets = r.values(t, Reader::target);
        let n = read_len_near(&mut r, l.checked_div(classes).unwrap_or(0));
        let label = |r: &mut Reader<'_>| {
            let tag = r.byte();
            let p = r.u32();
            match tag {
                0..=191 => (p % 12) as i32,
                192..=223 => IGNORE_INDEX,
                _ => p as i32,
            }
        };
        let labels = (0..n).map(|_| label(&mut r)).collect();
        let right_out = match op {
            6 => n,
            8 => n.saturating_mul(classes),
            _ => l,
        };
        let out_len = read_len_near(&mut r, right_out).min(MAX_OUT);
        MisuseCase {
            op,
            func,
            backend,
            gamma,
            alpha,
            weights,
            soft,
            reduction,
            classes,
            logits,
            targets,
            labels,
            out_len,
        }
    }

    /// Encodes the case for [`MisuseCase::decode`] (the class count must be < 40 or
    /// one of the huge ones; lengths up to 40, logits up to 64).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.byte(self.op);
        w.byte(self.func);
        w.byte(backend_index(self.backend));
        w.param(self.gamma);
        write_alpha(&mut w, self.alpha);
        w.byte(u8::from(self.soft == SoftTargets::ExpNegBce));
        write_reduction(&mut w, self.reduction);
        match HUGE_CLASSES.iter().position(|&c| c == self.classes) {
            Some(i) => w.byte(
                (240..=255u8)
                    .find(|b| usize::from(*b) % 6 == i)
                    .unwrap_or(240),
            ),
            None => w.byte(200 + self.classes as u8),
        }
        // read_len_near: bytes 205..=245 are the lengths 0..=40.
        let small = |w: &mut Writer, n: usize| w.byte(205 + n.min(40) as u8);
        match &self.weights {
            Weighting::Off => w.byte(0),
            Weighting::Uniform(a) => {
                w.byte(1);
                w.param(*a);
            }
            Weighting::PerClass(v) => {
                w.byte(2);
                small(&mut w, v.len());
                w.byte(0);
                for &x in v {
                    w.param(x);
                }
            }
        }
        w.byte(self.logits.len() as u8);
        w.byte(0);
        for &x in &self.logits {
            w.logit(x);
        }
        small(&mut w, self.targets.len());
        w.byte(0);
        for &t in &self.targets {
            w.target(t);
        }
        small(&mut w, self.labels.len());
        for &l in &self.labels {
            w.byte(255);
            w.u32(l as u32);
        }
        small(&mut w, self.out_len);
        w.bytes
    }

    /// Makes the call; `Err` says what broke.
    pub fn check(&self) -> Result<(), String> {
        let mut fails = Failures::default();
        self.check_availability(&mut fails);
        match self.op {
            0..=3 | 9 => self.sigmoid(&mut fails),
            4 | 5 => self.unary(&mut fails),
            6..=8 | 10 => self.softmax(&mut fails),
            _ => self.force(&mut fails),
        }
        fails.into_result()
    }

    /// `is_available` against the CPU's own report; off x86_64 only the compile-time
    /// backends (Scalar, Portable) exist.
    fn check_availability(&self, fails: &mut Failures) {
        #[cfg(target_arch = "x86_64")]
        let (avx2, avx512) = {
            let avx2 =
                std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma");
            (avx2, avx2 && std::is_x86_feature_detected!("avx512f"))
        };
        #[cfg(not(target_arch = "x86_64"))]
        let (avx2, avx512) = (false, false);
        let want = [
            (Backend::Scalar, true),
            (Backend::Portable, true),
            (Backend::Avx2, avx2),
            (Backend::Avx512, avx512),
        ];
        for (b, w) in want {
            if b.is_available() != w {
                fails.push(format!("{b:?}.is_available() = {}, the CPU says {w}", !w));
            }
        }
    }

    /// Pins the backend if one is given: Err exactly for an unavailable one.
    fn pin<T>(
        &self,
        fails: &mut Failures,
        what: &str,
        with: impl FnOnce(Backend) -> Result<T, Error>,
        current: impl Fn(&T) -> Backend,
    ) -> Option<T>
    where
        T: Clone,
    {
        let b = self.backend?;
        match with(b) {
            Ok(v) => {
                if !b.is_available() {
                    fails.push(format!(
                        "{what}.with_backend({b:?}) = Ok for an unavailable backend"
                    ));
                    return None;
                }
                if current(&v) != b {
                    fails.push(format!(
                        "{what}.with_backend({b:?}).backend() = {:?}",
                        current(&v)
                    ));
                }
                Some(v)
            }
            Err(e) => {
                if b.is_available() || e != Error::BackendUnavailable(b) {
                    fails.push(format!(
                        "{what}.with_backend({b:?}) = Err({e:?}), available: {}",
                        b.is_available()
                    ));
                }
                None
            }
        }
    }

    fn expect<T>(
        &self,
        fails: &mut Failures,
        what: &str,
        got: Result<T, Error>,
        allowed: &[Error],
    ) {
        match got {
            Ok(_) if allowed.is_empty() => {}
            Ok(_) => fails.push(format!("{what} = Ok, want one of {allowed:?}")),
            Err(e) => {
                // Display must not panic either.
                let _ = format!("{e}");
                if !error_in(&e, allowed) {
                    fails.push(format!("{what} = Err({e:?}), allowed: {allowed:?}"));
                }
            }
        }
    }

    fn sigmoid(&self, fails: &mut Failures) {
        let a = match self.alpha {
            Alpha::Off => None,
            Alpha::Balanced(a) | Alpha::Uniform(a) => Some(a),
        };
        let allowed = parameter_errors(self.gamma, a);
        let fl = match Focal::new(self.gamma, self.alpha) {
            Ok(fl) => fl.soft_targets(self.soft),
            Err(e) => {
                self.expect(fails, "Focal::new", Err::<(), _>(e), &allowed);
                return;
            }
        };
        if !allowed.is_empty() {
            fails.push(format!("Focal::new = Ok, want one of {allowed:?}"));
            return;
        }
        let fl = match self.backend {
            None => fl,
            Some(_) => match self.pin(fails, "Focal", |b| fl.with_backend(b), Focal::backend) {
                Some(fl) => fl,
                None => return,
            },
        };
        if self.op == 9 {
            return;
        }
        let (x, t) = (&self.logits[..], &self.targets[..]);
        let mut allowed = Vec::new();
        if t.len() != x.len() {
            allowed.push(Error::LengthMismatch {
                slice: "targets",
                expected: x.len(),
                actual: t.len(),
            });
        }
        if let Some(index) = t
            .iter()
            .position(|&v| !(v == -1.0 || (0.0..=1.0).contains(&v)))
        {
            allowed.push(Error::InvalidTarget {
                index,
                value: t[index],
            });
        }
        let out_name = match self.op {
            0 => Some("out"),
            2 | 3 => Some("grad"),
            _ => None,
        };
        if let Some(name) = out_name {
            if self.out_len != x.len() {
                allowed.push(Error::LengthMismatch {
                    slice: name,
                    expected: x.len(),
                    actual: self.out_len,
                });
            }
        }
        if matches!(self.op, 1 | 3) {
            if let (Err(()), Reduction::DivideBy(n)) =
                (reduction_scale(self.reduction, 1), self.reduction)
            {
                allowed.push(Error::InvalidNormalizer(n));
            }
        }
        let mut out = vec![0.0f32; self.out_len];
        let red = self.reduction;
        let (what, got) = match self.op {
            0 => ("loss", fl.loss(x, t, &mut out)),
            1 => ("loss_reduced", fl.loss_reduced(x, t, red).map(|_| ())),
            2 => ("grad", fl.grad(x, t, &mut out)),
            _ => (
                "loss_and_grad",
                fl.loss_and_grad(x, t, red, &mut out).map(|_| ()),
            ),
        };
        self.expect(fails, what, got, &allowed);
    }

    fn unary(&self, fails: &mut Failures) {
        let x = &self.logits[..];
        let mut out = vec![0.0f32; self.out_len];
        let mut allowed = Vec::new();
        if self.out_len != x.len() {
            allowed.push(Error::LengthMismatch {
                slice: "out",
                expected: x.len(),
                actual: self.out_len,
            });
        }
        let got = if self.op == 4 {
            let b = self.backend.unwrap_or_else(Backend::active);
            if !b.is_available() {
                allowed.push(Error::BackendUnavailable(b));
            }
            match self.func {
                0 => b.sigmoid(x, &mut out),
                1 => b.softplus(x, &mut out),
                _ => b.log_sigmoid(x, &mut out),
            }
        } else {
            match self.func {
                0 => focal::sigmoid(x, &mut out),
                1 => focal::softplus(x, &mut out),
                _ => focal::log_sigmoid(x, &mut out),
            }
        };
        self.expect(fails, "unary", got, &allowed);
    }

    fn softmax(&self, fails: &mut Failures) {
        let mut allowed = parameter_errors(
            self.gamma,
            match self.weights {
                Weighting::Uniform(a) => Some(a),
                _ => None,
            },
        );
        if let Weighting::PerClass(w) = &self.weights {
            if let Some(class) = w.iter().position(|&v| !(v.is_finite() && v >= 0.0)) {
                allowed.push(Error::InvalidClassAlpha {
                    class,
                    value: w[class],
                });
            }
        }
        let alpha = match &self.weights {
            Weighting::Off => focal::ClassAlpha::Off,
            Weighting::Uniform(a) => focal::ClassAlpha::Uniform(*a),
            Weighting::PerClass(w) => focal::ClassAlpha::PerClass(w),
        };
        let fl = match SoftmaxFocal::new(self.gamma, alpha) {
            Ok(fl) => fl,
            Err(e) => {
                self.expect(fails, "SoftmaxFocal::new", Err::<(), _>(e), &allowed);
                return;
            }
        };
        if !allowed.is_empty() {
            fails.push(format!("SoftmaxFocal::new = Ok, want one of {allowed:?}"));
            return;
        }
        let fl = match self.backend {
            None => fl,
            Some(_) => match self.pin(
                fails,
                "SoftmaxFocal",
                |b| fl.with_backend(b),
                SoftmaxFocal::backend,
            ) {
                Some(fl) => fl,
                None => return,
            },
        };
        if self.op == 10 {
            return;
        }
        let (x, labels, c) = (&self.logits[..], &self.labels[..], self.classes);
        let n = labels.len();
        let mut allowed = Vec::new();
        if c == 0 {
            allowed.push(Error::NoClasses);
        }
        if let Weighting::PerClass(w) = &self.weights {
            if w.len() != c {
                allowed.push(Error::ShapeMismatch {
                    slice: "alpha",
                    expected: c,
                    actual: w.len(),
                });
            }
        }
        let cells = n.saturating_mul(c);
        if x.len() != cells {
            allowed.push(Error::ShapeMismatch {
                slice: "logits",
                expected: cells,
                actual: x.len(),
            });
        }
        match self.op {
            6 if self.out_len != n => allowed.push(Error::ShapeMismatch {
                slice: "out",
                expected: n,
                actual: self.out_len,
            }),
            8 if self.out_len != cells => allowed.push(Error::ShapeMismatch {
                slice: "grad",
                expected: cells,
                actual: self.out_len,
            }),
            _ => {}
        }
        let bad = |l: i32| l != IGNORE_INDEX && !(l >= 0 && (l as usize) < c);
        if let Some(row) = labels.iter().position(|&l| bad(l)) {
            allowed.push(Error::InvalidLabel {
                row,
                label: labels[row],
            });
        }
        if self.op != 6 {
            if let (Err(()), Reduction::DivideBy(v)) =
                (reduction_scale(self.reduction, 1), self.reduction)
            {
                allowed.push(Error::InvalidNormalizer(v));
            }
        }
        let mut out = vec![0.0f32; self.out_len];
        let red = self.reduction;
        let (what, got) = match self.op {
            6 => ("softmax loss", fl.loss(x, labels, c, &mut out)),
            7 => (
                "softmax loss_reduced",
                fl.loss_reduced(x, labels, c, red).map(|_| ()),
            ),
            _ => (
                "softmax loss_and_grad",
                fl.loss_and_grad(x, labels, c, red, &mut out).map(|_| ()),
            ),
        };
        self.expect(fails, what, got, &allowed);
    }

    /// `Backend::force`: Err exactly for an unavailable backend, then the forced one is
    /// active; `force(None)` returns to the detected best.
    fn force(&self, fails: &mut Failures) {
        let before = Backend::active();
        match (Backend::force(self.backend), self.backend) {
            (Ok(()), Some(b)) if !b.is_available() => fails.push(format!(
                "Backend::force({b:?}) = Ok for an unavailable backend"
            )),
            (Ok(()), Some(b)) if Backend::active() != b => fails.push(format!(
                "Backend::force({b:?}) = Ok but active() = {:?}",
                Backend::active()
            )),
            (Err(e), Some(b)) if b.is_available() || e != Error::BackendUnavailable(b) => fails
                .push(format!(
                    "Backend::force({b:?}) = Err({e:?}), available {}",
                    b.is_available()
                )),
            (Err(e), None) => fails.push(format!("Backend::force(None) = Err({e:?})")),
            (Err(_), Some(_)) if Backend::active() != before => fails.push(format!(
                "a refused Backend::force changed the active backend from {before:?} to {:?}",
                Backend::active()
            )),
            _ => {}
        }
        if let Err(e) = Backend::force(None) {
            fails.push(format!("Backend::force(None) = Err({e:?})"));
        }
        if Backend::active() != Backend::detect() {
            fails.push(format!(
                "after force(None) active() = {:?}, detect() = {:?}",
                Backend::active(),
                Backend::detect()
            ));
        }
    }
}

impl fmt::Debug for MisuseCase {
    /// Rust source for `tests/fuzz_regressions.rs` (what `cargo fuzz fmt` prints).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "MisuseCase {{")?;
        writeln!(f, "    op: {},", self.op)?;
        writeln!(f, "    func: {},", self.func)?;
        match self.backend {
            None => writeln!(f, "    backend: None,")?,
            Some(b) => writeln!(f, "    backend: Some(Backend::{b:?}),")?,
        }
        writeln!(f, "    gamma: {},", crate::bytes::fmt_f32(self.gamma))?;
        writeln!(f, "    alpha: {},", fmt_alpha(self.alpha))?;
        match &self.weights {
            Weighting::Off => writeln!(f, "    weights: Weighting::Off,")?,
            Weighting::Uniform(a) => writeln!(
                f,
                "    weights: Weighting::Uniform({}),",
                crate::bytes::fmt_f32(*a)
            )?,
            Weighting::PerClass(w) => writeln!(
                f,
                "    weights: Weighting::PerClass({}),",
                fmt_f32s(w, "    ")
            )?,
        }
        writeln!(f, "    soft: SoftTargets::{:?},", self.soft)?;
        writeln!(f, "    reduction: {},", fmt_reduction(self.reduction))?;
        writeln!(f, "    classes: {},", self.classes)?;
        writeln!(f, "    logits: {},", fmt_f32s(&self.logits, "    "))?;
        writeln!(f, "    targets: {},", fmt_f32s(&self.targets, "    "))?;
        writeln!(f, "    labels: vec!{:?},", self.labels)?;
        writeln!(f, "    out_len: {},", self.out_len)?;
        write!(f, "}}")
    }
}

/// Describes a float (re-export for the tests).
pub fn describe(v: f32) -> String {
    show(v)
}
