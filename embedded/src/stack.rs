//! Stack high-water marks of the public calls on each backend of the target (forced in
//! turn): the stack below the caller is painted with a pattern, the call runs, and the
//! lowest overwritten word gives the depth. The crate allocates nothing and keeps one byte
//! of static state (the cached backend), so this is all the RAM a call needs besides
//! the caller's slices.

use core::ptr::{read_volatile, write_volatile};

use cortex_m::register::msp;
use cortex_m_semihosting::hprintln;
use focal::{Alpha, Backend, ClassAlpha, Focal, Reduction, SoftmaxFocal};

use crate::known::{
    SM17_C, SM17_LABELS, SM17_LOGITS, SM5_C, SM5_LABELS, SM5_LOGITS, T_HARD, T_SOFT, X,
};

/// Bytes painted below the measuring frame (RAM is 4 MiB; the firmware uses little).
const PAINT: usize = 64 * 1024;
const PATTERN: u32 = 0xA5C3_5A3C;

#[inline(never)]
fn paint(top: usize) {
    // Stay clear of this function's own frame, which lies just below `top`.
    let end = msp::read() as usize - 64;
    let mut a = top - PAINT;
    while a < end {
        // SAFETY: [top - PAINT, end) is unused stack below the live frames (the
        // stack is 4 MiB at the top of RAM and nothing else runs: no interrupts).
        unsafe { write_volatile(a as *mut u32, PATTERN) };
        a += 4;
    }
}

#[inline(never)]
fn depth(top: usize) -> usize {
    let mut a = top - PAINT;
    // SAFETY: the same region `paint` wrote; reading it is reading RAM.
    while a < top && unsafe { read_volatile(a as *const u32) } == PATTERN {
        a += 4;
    }
    top - a
}

/// Stack bytes used by `f` (plus a few words of the closure call itself); PAINT
/// means "at least": the call went past the painted region.
#[inline(never)]
fn measure(f: impl FnOnce()) -> usize {
    let top = msp::read() as usize;
    paint(top);
    f();
    depth(top)
}

pub fn report() {
    if cfg!(debug_assertions) {
        // Unoptimized, every local of the inlined kernels has its own stack slot:
        // tens of KiB that say nothing about shipped firmware.
        hprintln!("stack high-water marks: release build only (scripts/edge.sh embedded-release)");
        return;
    }
    for b in [Backend::Scalar, Backend::Portable] {
        if Backend::force(Some(b)).is_ok() {
            hprintln!("stack high-water marks on {}:", b.name());
            report_active();
        }
    }
    let _ = Backend::force(None);
}

fn report_active() {
    let mut g = [0.0f32; 34];
    let fused = |gamma: f32, t: &'static [f32], g: &mut [f32]| {
        if let Ok(fl) = Focal::new(gamma, Alpha::Balanced(0.25)) {
            let _ = core::hint::black_box(fl.loss_and_grad(&X, t, Reduction::Mean, &mut g[..10]));
        }
    };
    let n = measure(|| fused(2.0, &T_HARD, &mut g));
    hprintln!("  sigmoid loss_and_grad, gamma 2, hard: {} bytes", n);
    let n = measure(|| fused(1.5, &T_HARD, &mut g));
    hprintln!("  sigmoid loss_and_grad, gamma 1.5, hard: {} bytes", n);
    let n = measure(|| fused(1.5, &T_SOFT, &mut g));
    hprintln!("  sigmoid loss_and_grad, gamma 1.5, soft: {} bytes", n);
    let n = measure(|| {
        if let Ok(fl) = Focal::new(2.0, Alpha::Off) {
            let x = [f32::INFINITY, 1.0];
            let _ = core::hint::black_box(fl.loss_reduced(&x, &[0.0, 1.0], Reduction::Sum));
        }
    });
    hprintln!(
        "  sigmoid loss_reduced, non-finite sum (f64 re-sum): {} bytes",
        n
    );
    let n = measure(|| {
        if let Ok(fl) = SoftmaxFocal::new(2.0, ClassAlpha::Off) {
            let r = fl.loss_and_grad(
                &SM5_LOGITS,
                &SM5_LABELS,
                SM5_C,
                Reduction::Mean,
                &mut g[..25],
            );
            let _ = core::hint::black_box(r);
        }
    });
    hprintln!("  softmax loss_and_grad, C=5: {} bytes", n);
    let n = measure(|| {
        if let Ok(fl) = SoftmaxFocal::new(1.5, ClassAlpha::Off) {
            let r = fl.loss_and_grad(&SM17_LOGITS, &SM17_LABELS, SM17_C, Reduction::Mean, &mut g);
            let _ = core::hint::black_box(r);
        }
    });
    hprintln!("  softmax loss_and_grad, C=17: {} bytes", n);
}
