//! The vector abstraction every kernel is written over, once.
//!
//! A backend is a type implementing [`SimdF32`]: `f32` itself (the scalar backend,
//! one lane, with libm's `expf`/`log1pf`), `wide::f32x8` (portable: SSE2, NEON,
//! simd128) and `core::arch` wrappers for AVX2+FMA and AVX-512. The math in
//! [`math`] and the loss kernels in [`kernel`] are generic over it and get
//! monomorphized inside each backend's `#[target_feature]` entry points.

use core::ops::{Add, Div, Mul, Neg, Sub};

pub(crate) mod kernel;
pub(crate) mod math;
pub(crate) mod softmax;

/// The widest vector any backend has (AVX-512: 16 lanes).
pub(crate) const MAX_LANES: usize = 16;

/// A vector of `LANES` f32 values.
///
/// # Safety
///
/// Implementations for ISA extensions call intrinsics that need the CPU feature.
/// Values of such a type are only created inside code reached from that backend's
/// `#[target_feature]` entry points, which dispatch enters only after checking the
/// feature; implementing this trait promises that invariant. All methods are
/// `#[inline(always)]` so they compile into those entry points.
pub(crate) unsafe trait SimdF32:
    Copy
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    /// A lane mask from comparisons.
    type Mask: Copy;
    /// Number of f32 lanes.
    const LANES: usize;
    /// Whether `mul_add` rounds once (a real FMA). Error-free products use it when
    /// true and Dekker's split when false.
    const FUSED_MUL_ADD: bool;
    /// Vector registers of this type the target has: how many values a kernel
    /// can keep in flight before it spills (it chooses its unrolling by it).
    const REGISTERS: usize;

    /// All lanes `v`.
    fn splat(v: f32) -> Self;
    /// Loads `LANES` values.
    ///
    /// # Safety
    /// `ptr` must be valid for reading `LANES` f32 (any alignment).
    unsafe fn load(ptr: *const f32) -> Self;
    /// Loads the first `n < LANES` values and fills the other lanes with `fill`.
    ///
    /// # Safety
    /// `ptr` must be valid for reading `n` f32 (any alignment).
    unsafe fn load_partial(ptr: *const f32, n: usize, fill: f32) -> Self;
    /// Stores `LANES` values.
    ///
    /// # Safety
    /// `ptr` must be valid for writing `LANES` f32 (any alignment).
    unsafe fn store(self, ptr: *mut f32);
    /// Stores the first `n < LANES` lanes.
    ///
    /// # Safety
    /// `ptr` must be valid for writing `n` f32 (any alignment).
    unsafe fn store_partial(self, ptr: *mut f32, n: usize);

    /// `self * b + c`, fused when `FUSED_MUL_ADD`.
    fn mul_add(self, b: Self, c: Self) -> Self;
    /// `|self|`.
    fn abs(self) -> Self;
    /// Square root, NaN below 0: correctly rounded by the instructions of the x86,
    /// NEON and simd128 backends and by libm; `wide`'s software fallback (targets
    /// without SIMD) may be off by an ULP, which `math::sqrt_hilo` corrects anyway.
    fn sqrt(self) -> Self;
    /// `-|self|`.
    #[inline(always)]
    fn neg_abs(self) -> Self {
        -self.abs()
    }
    /// Lane-wise maximum. A NaN in `b` gives NaN (x86 `maxps` takes its second
    /// operand when either is NaN), so `splat(c).max(x)` clamps and keeps NaN `x`.
    fn max(self, b: Self) -> Self;
    /// Lane-wise minimum, NaN in `b` gives NaN, as [`SimdF32::max`].
    fn min(self, b: Self) -> Self;
    /// Lane-wise `self < b` (false for NaN).
    fn lt(self, b: Self) -> Self::Mask;
    /// Lane-wise `self <= b` (false for NaN).
    fn le(self, b: Self) -> Self::Mask;
    /// Lane-wise `self == b` (false for NaN).
    fn eq(self, b: Self) -> Self::Mask;
    /// Lane-wise `m ? a : b`.
    fn select(m: Self::Mask, a: Self, b: Self) -> Self;
    /// Lane-wise and of two masks.
    fn and(a: Self::Mask, b: Self::Mask) -> Self::Mask;
    /// Lane-wise or of two masks.
    fn or(a: Self::Mask, b: Self::Mask) -> Self::Mask;
    /// Bit `i` set when lane `i` of the mask is set.
    fn bitmask(m: Self::Mask) -> u32;
    /// Whether every lane of the mask is set.
    #[inline(always)]
    fn all(m: Self::Mask) -> bool {
        let lanes = Self::LANES.min(32);
        let full = if lanes == 32 {
            u32::MAX
        } else {
            (1u32 << lanes) - 1
        };
        Self::bitmask(m) == full
    }
    /// Round to the nearest integer, ties to even (the value stays a float).
    fn round(self) -> Self;
    /// `floor(log2(self))` as a float, for positive normal lanes (exponent field).
    fn exponent(self) -> Self;
    /// `2^self` for integer-valued lanes in `[-126, 127]` (bit construction).
    fn pow2i(self) -> Self;
    /// The lanes, in order, in the first `LANES` entries.
    fn to_array(self) -> [f32; MAX_LANES];

    /// Whether [`SimdF32::ldexp`] is one instruction (AVX-512's `scalef`), not the
    /// default's two steps.
    const NATIVE_LDEXP: bool = false;
    /// `self * 2^k` for integer-valued `k` in `[-150, 128]`, with one rounding
    /// (gradual underflow, overflow to inf): two exact power-of-two steps by default.
    #[inline(always)]
    fn ldexp(self, k: Self) -> Self {
        let k1 = (k * Self::splat(0.5)).round();
        let k2 = k - k1;
        self * k1.pow2i() * k2.pow2i()
    }

    /// `e^self`; see [`math::exp`] for the bound. The scalar backend uses libm.
    #[inline(always)]
    fn exp(self) -> Self {
        math::exp(self)
    }
    /// `e^self` for `self <= 88` as `(hi, lo)`; see [`math::exp_nonpositive_parts`].
    #[inline(always)]
    fn exp_nonpositive_parts(self) -> (Self, Self) {
        math::exp_nonpositive_parts(self)
    }
    /// `ln(1 + self)` for `self` in `[0, 1]` as `(hi, lo)`; see
    /// [`math::log1p_unit_parts`].
    #[inline(always)]
    fn log1p_unit_parts(self) -> (Self, Self) {
        math::log1p_unit_parts(self)
    }

    // Softmax kernels (`softmax`): strided access for rows-in-lanes, labels, and
    // horizontal reductions. The defaults go through `to_array`/`load`; the x86
    // backends override them with gathers, scatters and shuffles.

    /// Lane `i` read from `ptr + i * stride`.
    ///
    /// # Safety
    /// `ptr.add(i * stride)` must be valid for reading one f32 for every
    /// `i < LANES`, and `LANES * stride <= 2^24` (gathers use 32-bit byte offsets).
    #[inline(always)]
    unsafe fn gather(ptr: *const f32, stride: usize) -> Self {
        // SAFETY: forwarded; LANES < MAX_LANES + 1.
        unsafe { Self::gather_partial(ptr, stride, Self::LANES, 0.0) }
    }
    /// Lane `i < n` read from `ptr + i * stride`, the other lanes `fill`.
    ///
    /// # Safety
    /// `n <= LANES`, and `ptr.add(i * stride)` valid for reading for every `i < n`;
    /// `LANES * stride <= 2^24`.
    #[inline(always)]
    unsafe fn gather_partial(ptr: *const f32, stride: usize, n: usize, fill: f32) -> Self {
        let mut a = [fill; MAX_LANES];
        for (i, v) in a.iter_mut().enumerate().take(n.min(Self::LANES)) {
            // SAFETY: i < n, so lane i is readable (caller's guarantee).
            *v = unsafe { ptr.add(i * stride).read_unaligned() };
        }
        // SAFETY: `a` holds MAX_LANES >= LANES values.
        unsafe { Self::load(a.as_ptr()) }
    }
    /// Writes lane `i` to `ptr + i * stride`.
    ///
    /// # Safety
    /// `ptr.add(i * stride)` must be valid for writing one f32 for every
    /// `i < LANES`, the addresses distinct; `LANES * stride <= 2^24`.
    #[inline(always)]
    unsafe fn scatter(self, ptr: *mut f32, stride: usize) {
        // SAFETY: forwarded.
        unsafe { self.scatter_partial(ptr, stride, Self::LANES) }
    }
    /// Writes lane `i < n` to `ptr + i * stride`.
    ///
    /// # Safety
    /// `n <= LANES`, `ptr.add(i * stride)` valid for writing for every `i < n`, the
    /// addresses distinct; `LANES * stride <= 2^24`.
    #[inline(always)]
    unsafe fn scatter_partial(self, ptr: *mut f32, stride: usize, n: usize) {
        let a = self.to_array();
        for (i, &v) in a.iter().enumerate().take(n.min(Self::LANES)) {
            // SAFETY: i < n, so lane i is writable (caller's guarantee).
            unsafe { ptr.add(i * stride).write_unaligned(v) };
        }
    }
    /// Loads the first `n <= LANES` i32 values converted to f32 (exact for
    /// `|v| <= 2^24`), the other lanes `fill`.
    ///
    /// # Safety
    /// `ptr` must be valid for reading `n` i32 (any alignment).
    #[inline(always)]
    unsafe fn load_i32_partial(ptr: *const i32, n: usize, fill: f32) -> Self {
        let mut a = [fill; MAX_LANES];
        for (i, v) in a.iter_mut().enumerate().take(n.min(Self::LANES)) {
            // SAFETY: i < n (caller's guarantee).
            *v = unsafe { ptr.add(i).read_unaligned() } as f32;
        }
        // SAFETY: `a` holds MAX_LANES >= LANES values.
        unsafe { Self::load(a.as_ptr()) }
    }
    /// The largest lane. With a NaN lane the result is either NaN or the largest
    /// of the other lanes (as `max`'s operand order decides).
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        let a = self.to_array();
        let mut m = a[0];
        for &v in a.iter().take(Self::LANES).skip(1) {
            m = if v < m { m } else { v };
        }
        m
    }
    /// The sum of the lanes, added in f64 in a fixed order (within `16 * 2^-53`
    /// relative of the exact sum: exact as far as an f32 result can tell).
    #[inline(always)]
    fn reduce_add_f64(self) -> f64 {
        let a = self.to_array();
        let mut s = 0.0f64;
        for &v in a.iter().take(Self::LANES) {
            s += f64::from(v);
        }
        s
    }
    /// Whether [`SimdF32::add_wide`] sums in f64 (a widening conversion and f64
    /// additions) rather than by the default TwoSum pair.
    const WIDE_SUMS: bool = false;
    /// Adds the lanes of `v` to an accumulator of many terms, lane-wise, kept to far
    /// better than f32 (its total is [`SimdF32::wide_total`]; `[splat(0.0); 2]` is
    /// empty). By default a running sum and the sum of its rounding errors (TwoSum:
    /// each addition's error recovered exactly, the error sum small enough that its
    /// own roundings do not count); with [`SimdF32::WIDE_SUMS`], `LANES` f64 sums
    /// held as the bits of the two vectors (`n` terms of one sign within
    /// `n 2^-53` relative).
    #[inline(always)]
    fn add_wide(acc: [Self; 2], v: Self) -> [Self; 2] {
        let [s, c] = acc;
        let (t, err) = math::two_sum(s, v);
        [t, c + err]
    }
    /// The total of an [`SimdF32::add_wide`] accumulator, in f64 and in a fixed
    /// order.
    #[inline(always)]
    fn wide_total(acc: [Self; 2]) -> f64 {
        acc[0].reduce_add_f64() + acc[1].reduce_add_f64()
    }
    /// A hint that the cache line holding `ptr` will be read soon. Never
    /// dereferences `ptr`, which may be any address (past a slice's end too); a
    /// no-op where the backend has no prefetch instruction.
    #[inline(always)]
    fn prefetch(ptr: *const f32) {
        let _ = ptr;
    }
    /// As [`SimdF32::prefetch`], for a line that will be written.
    #[inline(always)]
    fn prefetch_write(ptr: *mut f32) {
        let _ = ptr;
    }
    /// The even lanes of `a` followed by those of `b`, and the odd lanes likewise:
    /// adding the two folds lane pairs of two vectors into one, a step of a
    /// transposing reduction (after `log2(LANES)` such steps over `LANES` vectors,
    /// lane `i` holds the sum of vector `i`'s lanes). For an even `LANES`.
    #[inline(always)]
    fn unzip(a: Self, b: Self) -> (Self, Self) {
        let (x, y) = (a.to_array(), b.to_array());
        let half = Self::LANES / 2;
        let (mut even, mut odd) = ([0.0; MAX_LANES], [0.0; MAX_LANES]);
        let pairs = x
            .chunks_exact(2)
            .take(half)
            .chain(y.chunks_exact(2).take(half));
        for ((e, o), pair) in even.iter_mut().zip(odd.iter_mut()).zip(pairs) {
            if let [p0, p1] = *pair {
                (*e, *o) = (p0, p1);
            }
        }
        // SAFETY: both arrays hold MAX_LANES >= LANES values.
        unsafe { (Self::load(even.as_ptr()), Self::load(odd.as_ptr())) }
    }
    /// Transposes `n <= LANES` rows of `c` classes (`1 <= c <= 8`), stored row-major
    /// from `ptr` (`n * c` values): lane `i` of `out[j]` gets `ptr[i * c + j]` for
    /// `j < c`; lanes `i >= n` get 0 and `out[j]` for `j >= c` is left as is.
    ///
    /// # Safety
    /// `ptr` must be valid for reading `n * c` f32; `c <= 8`.
    #[inline(always)]
    unsafe fn load_rows(ptr: *const f32, c: usize, n: usize, out: &mut [Self; 8]) {
        for (j, o) in out.iter_mut().enumerate() {
            if j < c {
                // SAFETY: lane i < n reads ptr + i c + j, inside row i.
                *o = unsafe {
                    if n >= Self::LANES {
                        Self::gather(ptr.add(j), c)
                    } else {
                        Self::gather_partial(ptr.add(j), c, n, 0.0)
                    }
                };
            }
        }
    }
    /// The inverse of [`SimdF32::load_rows`]: writes lane `i < n` of `v[j]` to
    /// `ptr[i * c + j]` for `j < c` (`n * c` values in all).
    ///
    /// # Safety
    /// `ptr` must be valid for writing `n * c` f32; `c <= 8`.
    #[inline(always)]
    unsafe fn store_rows(v: &[Self; 8], ptr: *mut f32, c: usize, n: usize) {
        for (j, x) in v.iter().enumerate() {
            if j < c {
                // SAFETY: lane i < n writes ptr + i c + j, inside row i.
                unsafe {
                    if n >= Self::LANES {
                        x.scatter(ptr.add(j), c)
                    } else {
                        x.scatter_partial(ptr.add(j), c, n)
                    }
                };
            }
        }
    }
}
