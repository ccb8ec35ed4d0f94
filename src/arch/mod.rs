//! One module per vector backend, each implementing [`crate::simd::SimdF32`], plus
//! the macro that stamps out a backend's entry points.

pub(crate) mod portable;
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86_64;

/// Defines a backend's entry points: the generic kernels monomorphized for one vector
/// type, compiled with that backend's target features (the only functions that carry
/// `#[target_feature]`; everything below them is `#[inline(always)]`).
macro_rules! entry_points {
    ($V:ty $(, $feature:literal)?) => {
        use crate::simd::kernel::{self, Coeffs, Mode, TargetScan, Unary};

        /// The focal loss kernel; see [`kernel::focal`].
        ///
        /// # Safety
        /// The CPU must support this backend's target features.
        $(#[target_feature(enable = $feature)])?
        pub(crate) unsafe fn focal(
            mode: Mode,
            soft: u8,
            c: &Coeffs,
            x: &[f32],
            t: &[f32],
            out: &mut [f32],
        ) -> Option<f64> {
            crate::arch::align_frame::<$V>();
            kernel::focal_dispatch::<$V>(mode, soft, c, x, t, out)
        }

        /// The target scan; see [`kernel::scan_targets`].
        ///
        /// # Safety
        /// The CPU must support this backend's target features.
        $(#[target_feature(enable = $feature)])?
        pub(crate) unsafe fn scan(t: &[f32]) -> TargetScan {
            crate::arch::align_frame::<$V>();
            kernel::scan_targets::<$V>(t)
        }

        /// An elementwise building block; see [`kernel::unary`].
        ///
        /// # Safety
        /// The CPU must support this backend's target features.
        $(#[target_feature(enable = $feature)])?
        pub(crate) unsafe fn unary(op: Unary, x: &[f32], out: &mut [f32]) {
            crate::arch::align_frame::<$V>();
            kernel::unary::<$V>(op, x, out)
        }

        /// The softmax focal loss kernels; see [`crate::simd::softmax::run`].
        ///
        /// # Safety
        /// The CPU must support this backend's target features.
        $(#[target_feature(enable = $feature)])?
        pub(crate) unsafe fn softmax(
            call: &crate::simd::softmax::Call<'_>,
            out: &mut [f32],
        ) -> f64 {
            crate::arch::align_frame::<$V>();
            crate::simd::softmax::run::<$V>(call, out)
        }
    };
}
pub(crate) use entry_points;

/// A stack object aligned to a cache line.
#[repr(align(64))]
pub(crate) struct FrameAnchor {
    _byte: u8,
}

/// Makes the calling entry point realign its stack frame to 64 bytes (an object
/// of that alignment lives in it), so that its vector spill slots are aligned and
/// never straddle cache lines. Without it the AVX2 kernels, which spill (16
/// registers), ran at one of two speeds depending on where the caller's stack
/// happened to end: 1.43 or 1.55-1.7 ns per element for the fused gamma = 2
/// sigmoid kernel, 32-byte spills at an odd multiple of 16 crossing lines (the
/// frame itself is only 16-aligned by the ABI). Costs two instructions per call;
/// nothing for the scalar backend (`V = f32`), which spills no vectors, and whose
/// entry points count against the microcontroller build's flash budget.
#[inline(always)]
pub(crate) fn align_frame<V: crate::simd::SimdF32>() {
    if V::LANES > 1 {
        let anchor = FrameAnchor {
            _byte: core::hint::black_box(0),
        };
        core::hint::black_box(&anchor);
    }
}
