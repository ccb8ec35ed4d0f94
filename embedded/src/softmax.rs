//! The softmax focal loss: known answers for 5 classes (one row per lane) and 17
//! classes (classes along the lanes), ignored rows, and every error kind.

use focal::{Backend, ClassAlpha, Error, Reduction, SoftmaxFocal, IGNORE_INDEX};

use crate::harness::Run;
use crate::known::{
    self, SM17_C, SM17_LABELS, SM17_LOGITS, SM5_C, SM5_LABELS, SM5_LOGITS, SM5_WEIGHTS,
};
use crate::sigmoid::label;

struct Case {
    name: &'static str,
    gamma: f32,
    alpha: ClassAlpha<'static>,
    classes: usize,
    logits: &'static [f32],
    labels: &'static [i32],
    loss: &'static [f64],
    grad: &'static [f64],
    sum: f64,
    mean: f64,
    active: f64,
}

macro_rules! case {
    ($name:literal, $m:ident, $gamma:expr, $alpha:expr, $c:ident, $x:ident, $y:ident) => {
        Case {
            name: $name,
            gamma: $gamma,
            alpha: $alpha,
            classes: $c,
            logits: &$x,
            labels: &$y,
            loss: &known::$m::LOSS,
            grad: &known::$m::GRAD,
            sum: known::$m::SUM,
            mean: known::$m::MEAN,
            active: known::$m::ACTIVE,
        }
    };
}

fn cases() -> [Case; 7] {
    use ClassAlpha::{Off, PerClass, Uniform};
    [
        case!(
            "softmax C=5 gamma 2",
            sm5_g2_off,
            2.0,
            Off,
            SM5_C,
            SM5_LOGITS,
            SM5_LABELS
        ),
        case!(
            "softmax C=5 gamma 1.5 uniform",
            sm5_g15_uniform,
            1.5,
            Uniform(0.25),
            SM5_C,
            SM5_LOGITS,
            SM5_LABELS
        ),
        case!(
            "softmax C=5 gamma 0 per-class",
            sm5_g0_perclass,
            0.0,
            PerClass(&SM5_WEIGHTS),
            SM5_C,
            SM5_LOGITS,
            SM5_LABELS
        ),
        case!(
            "softmax C=5 gamma 0.5",
            sm5_g05_off,
            0.5,
            Off,
            SM5_C,
            SM5_LOGITS,
            SM5_LABELS
        ),
        case!(
            "softmax C=17 gamma 2",
            sm17_g2_off,
            2.0,
            Off,
            SM17_C,
            SM17_LOGITS,
            SM17_LABELS
        ),
        case!(
            "softmax C=17 gamma 1.5 uniform",
            sm17_g15_uniform,
            1.5,
            Uniform(0.25),
            SM17_C,
            SM17_LOGITS,
            SM17_LABELS
        ),
        case!(
            "softmax C=17 gamma 0.5",
            sm17_g05_off,
            0.5,
            Off,
            SM17_C,
            SM17_LOGITS,
            SM17_LABELS
        ),
    ]
}

pub fn known_answers(run: &mut Run, backend: Backend) {
    for c in cases() {
        let Ok(fl) = SoftmaxFocal::new(c.gamma, c.alpha).and_then(|f| f.with_backend(backend))
        else {
            run.check("SoftmaxFocal::new", false);
            continue;
        };
        let (x, y, k) = (c.logits, c.labels, c.classes);
        let mut out = [f32::NAN; 5];
        let rows = &mut out[..y.len()];
        run.check("loss", fl.loss(x, y, k, rows).is_ok());
        run.close_all("loss", rows, c.loss, 1.0);
        let sum = fl.loss_reduced(x, y, k, Reduction::Sum);
        run.close("loss_reduced Sum", 0, sum.unwrap_or(f32::NAN), c.sum);
        let mean = fl.loss_reduced(x, y, k, Reduction::Mean);
        run.close("loss_reduced Mean", 0, mean.unwrap_or(f32::NAN), c.mean);
        for (reduction, scale) in [
            (Reduction::Sum, 1.0),
            (Reduction::Mean, 1.0 / c.active),
            (Reduction::DivideBy(4.0), 0.25),
        ] {
            let mut grad = [f32::NAN; 34];
            let grad = &mut grad[..x.len()];
            let loss = fl.loss_and_grad(x, y, k, reduction, grad);
            run.close(
                "loss_and_grad loss",
                0,
                loss.unwrap_or(f32::NAN),
                c.sum * scale,
            );
            run.close_all("loss_and_grad grad", grad, c.grad, scale);
        }
        let mut name = [0u8; 64];
        run.group(label(&mut name, c.name, backend));
    }
}

/// Every error kind of the softmax API; one class; all rows ignored.
pub fn errors(run: &mut Run, backend: Backend) {
    run.check(
        "gamma -1",
        SoftmaxFocal::new(-1.0, ClassAlpha::Off) == Err(Error::InvalidGamma(-1.0)),
    );
    run.check(
        "alpha 2",
        SoftmaxFocal::new(2.0, ClassAlpha::Uniform(2.0)) == Err(Error::InvalidAlpha(2.0)),
    );
    let w = [1.0, -0.5, 1.0];
    run.check(
        "class alpha -0.5",
        SoftmaxFocal::new(2.0, ClassAlpha::PerClass(&w))
            == Err(Error::InvalidClassAlpha {
                class: 1,
                value: -0.5,
            }),
    );
    let w = [1.0, 1.0, f32::INFINITY];
    run.check(
        "class alpha inf",
        SoftmaxFocal::new(2.0, ClassAlpha::PerClass(&w))
            == Err(Error::InvalidClassAlpha {
                class: 2,
                value: f32::INFINITY,
            }),
    );
    let Ok(fl) = SoftmaxFocal::new(2.0, ClassAlpha::Off).and_then(|f| f.with_backend(backend))
    else {
        run.check("SoftmaxFocal::new", false);
        return;
    };
    let x = [0.5f32; 12];
    let mut out = [0.0f32; 12];
    let y = [0, 1, 2];
    run.check(
        "no classes",
        fl.loss(&x, &y, 0, &mut out[..3]) == Err(Error::NoClasses),
    );
    let shape = |slice, expected, actual| {
        Some(Error::ShapeMismatch {
            slice,
            expected,
            actual,
        })
    };
    run.check(
        "logits shape",
        fl.loss(&x[..11], &y, 4, &mut out[..3]).err() == shape("logits", 12, 11),
    );
    run.check(
        "out shape",
        fl.loss(&x, &y, 4, &mut out[..2]).err() == shape("out", 3, 2),
    );
    run.check(
        "grad shape",
        fl.loss_and_grad(&x, &y, 4, Reduction::Sum, &mut out[..10])
            .err()
            == shape("grad", 12, 10),
    );
    run.check(
        "N*C overflows",
        fl.loss_reduced(&x, &y, usize::MAX, Reduction::Sum).err()
            == shape("logits", usize::MAX, 12),
    );
    let w = [1.0f32; 3];
    let weighted =
        SoftmaxFocal::new(2.0, ClassAlpha::PerClass(&w)).and_then(|f| f.with_backend(backend));
    run.check(
        "alpha shape",
        weighted
            .ok()
            .and_then(|f| f.loss_reduced(&x, &y, 4, Reduction::Sum).err())
            == shape("alpha", 4, 3),
    );
    for bad in [4, -1, i32::MIN] {
        run.check(
            "label",
            fl.loss(&x, &[0, bad, 1], 4, &mut out[..3])
                == Err(Error::InvalidLabel { row: 1, label: bad }),
        );
    }
    run.check(
        "normaliser",
        fl.loss_reduced(&x, &y, 4, Reduction::DivideBy(0.0)) == Err(Error::InvalidNormalizer(0.0)),
    );
    // One class: p = 1, loss 0 and gradient 0.
    let mut g = [1.0f32; 3];
    run.check(
        "one class",
        fl.loss_and_grad(&[3.0, -1.0, 7.0], &[0, 0, 0], 1, Reduction::Mean, &mut g) == Ok(0.0)
            && g == [0.0; 3],
    );
    let mut g = [1.0f32; 12];
    let ign = [IGNORE_INDEX; 3];
    run.check(
        "all ignored",
        fl.loss_and_grad(&x, &ign, 4, Reduction::Mean, &mut g) == Ok(0.0) && g == [0.0; 12],
    );
    let mut name = [0u8; 64];
    run.group(label(&mut name, "softmax errors and edges", backend));
}
