//! The scalar backend: the generic kernels at one lane, with libm's `expf` and
//! `log1pf` and an exact `fmaf`. It is the executable specification every vector
//! backend is tested against, and the fallback on every target.

use crate::simd::{SimdF32, MAX_LANES};

/// 1.5 * 2^23: adding and subtracting it rounds |v| < 2^22 to an integer (ties to
/// even) and leaves that integer in the low mantissa bits of the sum.
pub(crate) const ROUND_SHIFTER: f32 = 12_582_912.0;

// SAFETY: plain f32 arithmetic, no CPU feature needed.
unsafe impl SimdF32 for f32 {
    type Mask = bool;
    const LANES: usize = 1;
    /// One f32 per xmm register (16), or per FPU register on microcontrollers.
    const REGISTERS: usize = 16;
    // libm's fmaf is exact but goes through f64; compact builds (single-precision
    // FPUs, where f64 is software) multiply and add and use Dekker's products.
    const FUSED_MUL_ADD: bool = !cfg!(compact);

    #[inline(always)]
    fn splat(v: f32) -> Self {
        v
    }
    #[inline(always)]
    unsafe fn load(ptr: *const f32) -> Self {
        // SAFETY: the caller guarantees ptr is valid for one read.
        unsafe { ptr.read_unaligned() }
    }
    #[inline(always)]
    unsafe fn load_partial(_ptr: *const f32, _n: usize, fill: f32) -> Self {
        // n < LANES = 1: nothing to read.
        fill
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32) {
        // SAFETY: the caller guarantees ptr is valid for one write.
        unsafe { ptr.write_unaligned(self) }
    }
    #[inline(always)]
    unsafe fn store_partial(self, _ptr: *mut f32, _n: usize) {}
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        if cfg!(compact) {
            self * b + c
        } else {
            libm::fmaf(self, b, c)
        }
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        libm::sqrtf(self)
    }
    #[inline(always)]
    fn abs(self) -> Self {
        f32::from_bits(self.to_bits() & 0x7FFF_FFFF)
    }
    #[inline(always)]
    fn max(self, b: Self) -> Self {
        if b < self {
            self
        } else {
            b
        }
    }
    #[inline(always)]
    fn min(self, b: Self) -> Self {
        if self < b {
            self
        } else {
            b
        }
    }
    #[inline(always)]
    fn lt(self, b: Self) -> bool {
        self < b
    }
    #[inline(always)]
    fn le(self, b: Self) -> bool {
        self <= b
    }
    #[inline(always)]
    fn eq(self, b: Self) -> bool {
        self == b
    }
    #[inline(always)]
    fn select(m: bool, a: Self, b: Self) -> Self {
        if m {
            a
        } else {
            b
        }
    }
    #[inline(always)]
    fn and(a: bool, b: bool) -> bool {
        a & b
    }
    #[inline(always)]
    fn or(a: bool, b: bool) -> bool {
        a | b
    }
    #[inline(always)]
    fn bitmask(m: bool) -> u32 {
        u32::from(m)
    }
    #[inline(always)]
    fn round(self) -> Self {
        (self + ROUND_SHIFTER) - ROUND_SHIFTER
    }
    #[inline(always)]
    fn exponent(self) -> Self {
        f32::from_bits((self.to_bits() >> 23) | 0x4B00_0000) - 8_388_735.0
    }
    #[inline(always)]
    fn pow2i(self) -> Self {
        f32::from_bits((self + ROUND_SHIFTER).to_bits().wrapping_add(127) << 23)
    }
    #[inline(always)]
    fn to_array(self) -> [f32; MAX_LANES] {
        let mut a = [0.0; MAX_LANES];
        a[0] = self;
        a
    }
    #[inline(always)]
    fn exp(self) -> Self {
        libm::expf(self)
    }
    // With an f64 FPU, libm's f64 functions give the rounded result and its error;
    // compact builds (single-precision FPUs) use the f32 vector math instead.
    #[cfg(not(compact))]
    #[inline(always)]
    fn exp_nonpositive_parts(self) -> (Self, Self) {
        let x = f64::from(self);
        if x > -0.5 {
            // Near 0, e^x rounded even to f64 drops the distance to 1 (e^-1e-20 is
            // 1.0), which the soft-target gradient needs (sigmoid(1e-20) - 0.5 gave
            // 0 instead of 2.5e-21: an independent audit): from expm1, the residual
            // of hi is exact in f64 (1 - hi by Sterbenz, then one rounding).
            let m = libm::expm1(x);
            let hi = (1.0 + m) as f32;
            return (hi, ((1.0 - f64::from(hi)) + m) as f32);
        }
        // libm's f64 exp gives the f32 result and its rounding error (NaN too).
        let e = libm::exp(x);
        let hi = e as f32;
        (hi, (e - f64::from(hi)) as f32)
    }
    #[cfg(not(compact))]
    #[inline(always)]
    fn log1p_unit_parts(self) -> (Self, Self) {
        // libm's f64 log1p gives the f32 result and its rounding error.
        let l = libm::log1p(f64::from(self));
        let hi = l as f32;
        (hi, (l - f64::from(hi)) as f32)
    }
}

/// Entry points of the scalar backend.
pub(crate) mod entry {
    crate::arch::entry_points!(f32);
}
