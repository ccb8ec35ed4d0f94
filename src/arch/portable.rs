//! The portable backend: `wide::f32x8`, whose instructions are chosen when the crate
//! is compiled (SSE2 on x86_64, NEON on aarch64, simd128 on wasm32 with `+simd128`,
//! plain arrays elsewhere). Always available.

use wide::{f32x8, u32x8};

use crate::scalar::ROUND_SHIFTER;
use crate::simd::{SimdF32, MAX_LANES};

// SAFETY: `wide` selects its instructions at compile time from the enabled target
// features, so every method is valid on any CPU the crate was compiled for.
unsafe impl SimdF32 for f32x8 {
    type Mask = f32x8;
    const LANES: usize = 8;
    /// SSE2's 16 xmm registers, two per `f32x8`. (NEON has 32 q registers, 16
    /// `f32x8`, but is only run under qemu here: it keeps SSE2's choices until
    /// they are measured on an aarch64 CPU.)
    const REGISTERS: usize = 8;
    const FUSED_MUL_ADD: bool = cfg!(any(
        target_feature = "fma",
        all(target_arch = "aarch64", target_feature = "neon")
    ));

    #[inline(always)]
    fn splat(v: f32) -> Self {
        f32x8::splat(v)
    }
    #[inline(always)]
    unsafe fn load(ptr: *const f32) -> Self {
        // SAFETY: the caller guarantees 8 readable f32 at ptr.
        f32x8::from(unsafe { ptr.cast::<[f32; 8]>().read_unaligned() })
    }
    #[inline(always)]
    unsafe fn load_partial(ptr: *const f32, n: usize, fill: f32) -> Self {
        let mut a = [fill; 8];
        // SAFETY: the caller guarantees n (< 8) readable f32 at ptr.
        unsafe { core::ptr::copy_nonoverlapping(ptr, a.as_mut_ptr(), n.min(8)) };
        f32x8::from(a)
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32) {
        // SAFETY: the caller guarantees 8 writable f32 at ptr.
        unsafe { ptr.cast::<[f32; 8]>().write_unaligned(self.to_array()) }
    }
    #[inline(always)]
    unsafe fn store_partial(self, ptr: *mut f32, n: usize) {
        let a = self.to_array();
        // SAFETY: the caller guarantees n (< 8) writable f32 at ptr.
        unsafe { core::ptr::copy_nonoverlapping(a.as_ptr(), ptr, n.min(8)) };
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        f32x8::mul_add(self, b, c)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        f32x8::sqrt(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32x8::abs(self)
    }
    #[inline(always)]
    fn max(self, b: Self) -> Self {
        // maxps / NEON fmax give NaN for a NaN `b`; simd128's pmax and the array
        // fallback do not, so those take the compare-and-select form.
        if cfg!(any(
            target_feature = "sse",
            all(target_arch = "aarch64", target_feature = "neon")
        )) {
            self.fast_max(b)
        } else {
            b.simd_lt(self).select(self, b)
        }
    }
    #[inline(always)]
    fn min(self, b: Self) -> Self {
        if cfg!(any(
            target_feature = "sse",
            all(target_arch = "aarch64", target_feature = "neon")
        )) {
            self.fast_min(b)
        } else {
            self.simd_lt(b).select(self, b)
        }
    }
    #[inline(always)]
    fn lt(self, b: Self) -> Self {
        self.simd_lt(b)
    }
    #[inline(always)]
    fn le(self, b: Self) -> Self {
        self.simd_le(b)
    }
    #[inline(always)]
    fn eq(self, b: Self) -> Self {
        self.simd_eq(b)
    }
    #[inline(always)]
    fn select(m: Self, a: Self, b: Self) -> Self {
        m.select(a, b)
    }
    #[inline(always)]
    fn and(a: Self, b: Self) -> Self {
        a & b
    }
    #[inline(always)]
    fn or(a: Self, b: Self) -> Self {
        a | b
    }
    #[inline(always)]
    fn bitmask(m: Self) -> u32 {
        m.to_bitmask()
    }
    #[inline(always)]
    fn round(self) -> Self {
        let s = f32x8::splat(ROUND_SHIFTER);
        (self + s) - s
    }
    #[inline(always)]
    fn exponent(self) -> Self {
        let e = (self.to_bits() >> 23) | u32x8::splat(0x4B00_0000);
        f32x8::from_bits(e) - f32x8::splat(8_388_735.0)
    }
    #[inline(always)]
    fn pow2i(self) -> Self {
        let b = (self + f32x8::splat(ROUND_SHIFTER)).to_bits() + u32x8::splat(127);
        f32x8::from_bits(b << 23)
    }
    #[inline(always)]
    fn to_array(self) -> [f32; MAX_LANES] {
        let mut a = [0.0; MAX_LANES];
        a[..8].copy_from_slice(&f32x8::to_array(self));
        a
    }
}

/// Entry points of the portable backend.
#[cfg(wide_simd)]
pub(crate) mod entry {
    crate::arch::entry_points!(wide::f32x8);
}

/// Where `wide` has no SIMD instructions (`f32x8` would be a plain array: on a
/// Cortex-M4F the monomorphized kernels came to 1.9 MB of `.text` for nothing), the
/// portable backend runs the scalar kernels.
#[cfg(not(wide_simd))]
pub(crate) use crate::scalar::entry;
