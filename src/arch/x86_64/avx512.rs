//! AVX-512 (F) backend: `__m512`, 16 lanes, mask registers for selects and tails.

use core::arch::x86_64::*;
use core::ops::{Add, Div, Mul, Neg, Sub};

use crate::simd::{SimdF32, MAX_LANES};

/// Sixteen f32 lanes in a zmm register.
#[derive(Clone, Copy)]
pub(crate) struct Avx512F32(__m512);

macro_rules! binop {
    ($tr:ident, $f:ident, $intr:ident) => {
        impl $tr for Avx512F32 {
            type Output = Self;
            #[inline(always)]
            fn $f(self, b: Self) -> Self {
                // SAFETY: Avx512F32 values only exist inside AVX-512 entry points
                // (trait contract of SimdF32), so avx512f is enabled on this CPU.
                Avx512F32(unsafe { $intr(self.0, b.0) })
            }
        }
    };
}
binop!(Add, add, _mm512_add_ps);
binop!(Sub, sub, _mm512_sub_ps);
binop!(Mul, mul, _mm512_mul_ps);
binop!(Div, div, _mm512_div_ps);

impl Neg for Avx512F32 {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        // SAFETY: see `binop!`.
        Avx512F32(unsafe {
            _mm512_castsi512_ps(_mm512_xor_si512(
                _mm512_castps_si512(self.0),
                _mm512_set1_epi32(i32::MIN),
            ))
        })
    }
}

/// Mask of the first `n` (< 16) lanes.
#[inline(always)]
fn first_lanes(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// Runs `$body` for `$k = 0..8` while `$k < $c`, unrolled (constant indices keep
/// arrays of vectors in registers).
macro_rules! unroll8 {
    ($k:ident < $c:expr => $body:block) => {
        unroll8!(@ $k, $c, $body, 0 1 2 3 4 5 6 7)
    };
    (@ $k:ident, $c:expr, $body:block, $($n:literal)*) => {
        $({
            let $k: usize = $n;
            if $k < $c $body
        })*
    };
}

// SAFETY: every method uses AVX-512F intrinsics only, and values are only created in
// entry points compiled with `avx512f` and entered after detection.
unsafe impl SimdF32 for Avx512F32 {
    type Mask = __mmask16;
    const LANES: usize = 16;
    const REGISTERS: usize = 32;
    const FUSED_MUL_ADD: bool = true;
    const NATIVE_LDEXP: bool = true;

    #[inline(always)]
    fn splat(v: f32) -> Self {
        // SAFETY: see the impl.
        Avx512F32(unsafe { _mm512_set1_ps(v) })
    }
    #[inline(always)]
    unsafe fn load(ptr: *const f32) -> Self {
        // SAFETY: the caller guarantees 16 readable f32; loadu has no alignment need.
        Avx512F32(unsafe { _mm512_loadu_ps(ptr) })
    }
    #[inline(always)]
    unsafe fn load_partial(ptr: *const f32, n: usize, fill: f32) -> Self {
        // SAFETY: a masked load reads only the first n lanes (faults suppressed on
        // the rest); the caller guarantees those are readable.
        Avx512F32(unsafe { _mm512_mask_loadu_ps(_mm512_set1_ps(fill), first_lanes(n), ptr) })
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32) {
        // SAFETY: the caller guarantees 16 writable f32.
        unsafe { _mm512_storeu_ps(ptr, self.0) }
    }
    #[inline(always)]
    unsafe fn store_partial(self, ptr: *mut f32, n: usize) {
        // SAFETY: a masked store writes only the first n lanes, which the caller
        // guarantees are writable.
        unsafe { _mm512_mask_storeu_ps(ptr, first_lanes(n), self.0) }
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: see the impl.
        Avx512F32(unsafe { _mm512_fmadd_ps(self.0, b.0, c.0) })
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        // SAFETY: see the impl.
        Avx512F32(unsafe { _mm512_sqrt_ps(self.0) })
    }
    #[inline(always)]
    fn abs(self) -> Self {
        // SAFETY: see the impl.
        Avx512F32(unsafe { _mm512_abs_ps(self.0) })
    }
    #[inline(always)]
    fn neg_abs(self) -> Self {
        // SAFETY: see the impl. Setting the sign bit is one instruction.
        // (the integer `or`: `_mm512_or_ps` needs AVX-512DQ).
        Avx512F32(unsafe {
            _mm512_castsi512_ps(_mm512_or_si512(
                _mm512_castps_si512(self.0),
                _mm512_set1_epi32(i32::MIN),
            ))
        })
    }
    #[inline(always)]
    fn max(self, b: Self) -> Self {
        // SAFETY: see the impl. maxps returns its second operand on NaN.
        Avx512F32(unsafe { _mm512_max_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn min(self, b: Self) -> Self {
        // SAFETY: see the impl. minps returns its second operand on NaN.
        Avx512F32(unsafe { _mm512_min_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn lt(self, b: Self) -> __mmask16 {
        // SAFETY: see the impl.
        unsafe { _mm512_cmp_ps_mask::<_CMP_LT_OQ>(self.0, b.0) }
    }
    #[inline(always)]
    fn le(self, b: Self) -> __mmask16 {
        // SAFETY: see the impl.
        unsafe { _mm512_cmp_ps_mask::<_CMP_LE_OQ>(self.0, b.0) }
    }
    #[inline(always)]
    fn eq(self, b: Self) -> __mmask16 {
        // SAFETY: see the impl.
        unsafe { _mm512_cmp_ps_mask::<_CMP_EQ_OQ>(self.0, b.0) }
    }
    #[inline(always)]
    fn select(m: __mmask16, a: Self, b: Self) -> Self {
        // SAFETY: see the impl.
        Avx512F32(unsafe { _mm512_mask_blend_ps(m, b.0, a.0) })
    }
    #[inline(always)]
    fn and(a: __mmask16, b: __mmask16) -> __mmask16 {
        a & b
    }
    #[inline(always)]
    fn or(a: __mmask16, b: __mmask16) -> __mmask16 {
        a | b
    }
    #[inline(always)]
    fn bitmask(m: __mmask16) -> u32 {
        u32::from(m)
    }
    #[inline(always)]
    fn round(self) -> Self {
        // SAFETY: see the impl.
        Avx512F32(unsafe {
            _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self.0)
        })
    }
    #[inline(always)]
    fn exponent(self) -> Self {
        // SAFETY: see the impl.
        unsafe {
            let e = _mm512_or_si512(
                _mm512_srli_epi32::<23>(_mm512_castps_si512(self.0)),
                _mm512_set1_epi32(0x4B00_0000),
            );
            Avx512F32(_mm512_sub_ps(
                _mm512_castsi512_ps(e),
                _mm512_set1_ps(8_388_735.0),
            ))
        }
    }
    #[inline(always)]
    fn pow2i(self) -> Self {
        // SAFETY: see the impl. cvtps rounds to nearest; the lanes are integers.
        unsafe {
            let k = _mm512_cvtps_epi32(self.0);
            let b = _mm512_add_epi32(k, _mm512_set1_epi32(127));
            Avx512F32(_mm512_castsi512_ps(_mm512_slli_epi32::<23>(b)))
        }
    }
    #[inline(always)]
    fn ldexp(self, k: Self) -> Self {
        // SAFETY: see the impl. scalef computes self * 2^floor(k) with one rounding,
        // including gradual underflow and overflow.
        Avx512F32(unsafe { _mm512_scalef_ps(self.0, k.0) })
    }
    #[inline(always)]
    fn to_array(self) -> [f32; MAX_LANES] {
        let mut a = [0.0; MAX_LANES];
        // SAFETY: a has room for 16 f32.
        unsafe { _mm512_storeu_ps(a.as_mut_ptr(), self.0) };
        a
    }
    #[inline(always)]
    unsafe fn gather(ptr: *const f32, stride: usize) -> Self {
        // SAFETY: the caller guarantees lanes i < 16 at ptr + i * stride are readable
        // and that the element offsets fit in i32.
        Avx512F32(unsafe { _mm512_i32gather_ps::<4>(lane_offsets(stride), ptr) })
    }
    #[inline(always)]
    unsafe fn gather_partial(ptr: *const f32, stride: usize, n: usize, fill: f32) -> Self {
        // SAFETY: a masked gather reads only the first n lanes, which the caller
        // guarantees are readable; offsets fit in i32 (caller's guarantee).
        Avx512F32(unsafe {
            _mm512_mask_i32gather_ps::<4>(
                _mm512_set1_ps(fill),
                first_lanes(n),
                lane_offsets(stride),
                ptr,
            )
        })
    }
    #[inline(always)]
    unsafe fn scatter(self, ptr: *mut f32, stride: usize) {
        // SAFETY: the caller guarantees lanes i < 16 at ptr + i * stride are
        // writable and distinct, offsets fit in i32.
        unsafe { _mm512_i32scatter_ps::<4>(ptr, lane_offsets(stride), self.0) }
    }
    #[inline(always)]
    unsafe fn scatter_partial(self, ptr: *mut f32, stride: usize, n: usize) {
        // SAFETY: a masked scatter writes only the first n lanes, which the caller
        // guarantees are writable and distinct.
        unsafe { _mm512_mask_i32scatter_ps::<4>(ptr, first_lanes(n), lane_offsets(stride), self.0) }
    }
    #[inline(always)]
    unsafe fn load_i32_partial(ptr: *const i32, n: usize, fill: f32) -> Self {
        // SAFETY: a masked load reads only the first n lanes (faults suppressed on
        // the rest), which the caller guarantees are readable.
        unsafe {
            let m = first_lanes(n);
            let v = _mm512_cvtepi32_ps(_mm512_maskz_loadu_epi32(m, ptr));
            Avx512F32(_mm512_mask_blend_ps(m, _mm512_set1_ps(fill), v))
        }
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        // SAFETY: see the impl.
        unsafe { _mm512_reduce_max_ps(self.0) }
    }
    #[inline(always)]
    fn prefetch(ptr: *const f32) {
        super::prefetch_read(ptr);
    }
    #[inline(always)]
    fn prefetch_write(ptr: *mut f32) {
        super::prefetch_write(ptr);
    }
    #[inline(always)]
    fn unzip(a: Self, b: Self) -> (Self, Self) {
        // SAFETY: see the impl. Index i < 16 picks lane i of a, 16 + i lane i of b.
        unsafe {
            let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
            (
                Avx512F32(_mm512_permutex2var_ps(a.0, even, b.0)),
                Avx512F32(_mm512_permutex2var_ps(a.0, odd, b.0)),
            )
        }
    }
    #[inline(always)]
    unsafe fn load_rows(ptr: *const f32, c: usize, n: usize, out: &mut [Self; 8]) {
        // c contiguous vectors (masked: n c values), then for each class two-source
        // permutes from the vector pairs holding its lanes.
        let c = c.min(8);
        // Table index c - 1, masked so the compiler sees it in bounds.
        let tab = c.wrapping_sub(1) & 7;
        let total = n * c;
        // SAFETY: see the impl.
        let zero = unsafe { _mm512_setzero_ps() };
        let mut src = [zero; 8];
        unroll8!(k < c => {
            let count = total.saturating_sub(16 * k).min(16);
            // SAFETY: values 16 k .. 16 k + count are among the n c readable ones.
            src[k] = unsafe { _mm512_maskz_loadu_ps(first_lanes(count), ptr.add(16 * k)) };
        });
        unroll8!(j < c => {
            // SAFETY: see the impl; the table is 16 i32.
            out[j] = Avx512F32(unsafe {
                let idx = _mm512_loadu_si512(ROWS.load_idx[tab][j].as_ptr().cast());
                let mut acc = _mm512_permutex2var_ps(src[0], idx, src[1]);
                let masks = ROWS.load_mask[tab][j];
                if c > 2 {
                    let t = _mm512_permutex2var_ps(src[2], idx, src[3]);
                    acc = _mm512_mask_mov_ps(acc, masks[1], t);
                }
                if c > 4 {
                    let t = _mm512_permutex2var_ps(src[4], idx, src[5]);
                    acc = _mm512_mask_mov_ps(acc, masks[2], t);
                }
                if c > 6 {
                    let t = _mm512_permutex2var_ps(src[6], idx, src[7]);
                    acc = _mm512_mask_mov_ps(acc, masks[3], t);
                }
                acc
            });
        });
    }
    #[inline(always)]
    unsafe fn store_rows(v: &[Self; 8], ptr: *mut f32, c: usize, n: usize) {
        let c = c.min(8);
        // Table index c - 1, masked so the compiler sees it in bounds.
        let tab = c.wrapping_sub(1) & 7;
        let total = n * c;
        unroll8!(k < c => {
            let count = total.saturating_sub(16 * k).min(16);
            // SAFETY: see the impl; the table is 16 i32; values 16 k .. 16 k + count
            // are among the n c writable ones.
            unsafe {
                let idx = _mm512_loadu_si512(ROWS.store_idx[tab][k].as_ptr().cast());
                let mut acc = _mm512_permutex2var_ps(v[0].0, idx, v[1].0);
                let masks = ROWS.store_mask[tab][k];
                if c > 2 {
                    let t = _mm512_permutex2var_ps(v[2].0, idx, v[3].0);
                    acc = _mm512_mask_mov_ps(acc, masks[1], t);
                }
                if c > 4 {
                    let t = _mm512_permutex2var_ps(v[4].0, idx, v[5].0);
                    acc = _mm512_mask_mov_ps(acc, masks[2], t);
                }
                if c > 6 {
                    let t = _mm512_permutex2var_ps(v[6].0, idx, v[7].0);
                    acc = _mm512_mask_mov_ps(acc, masks[3], t);
                }
                _mm512_mask_storeu_ps(ptr.add(16 * k), first_lanes(count), acc);
            }
        });
    }
    const WIDE_SUMS: bool = true;
    #[inline(always)]
    fn add_wide(acc: [Self; 2], v: Self) -> [Self; 2] {
        // SAFETY: see the impl.
        unsafe {
            let lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v.0));
            let hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                _mm512_castps_pd(v.0),
            )));
            [
                Avx512F32(_mm512_castpd_ps(_mm512_add_pd(
                    _mm512_castps_pd(acc[0].0),
                    lo,
                ))),
                Avx512F32(_mm512_castpd_ps(_mm512_add_pd(
                    _mm512_castps_pd(acc[1].0),
                    hi,
                ))),
            ]
        }
    }
    #[inline(always)]
    fn wide_total(acc: [Self; 2]) -> f64 {
        // SAFETY: see the impl.
        unsafe {
            _mm512_reduce_add_pd(_mm512_add_pd(
                _mm512_castps_pd(acc[0].0),
                _mm512_castps_pd(acc[1].0),
            ))
        }
    }
    #[inline(always)]
    fn reduce_add_f64(self) -> f64 {
        // SAFETY: see the impl. Both halves widened to f64, added lane-wise, then a
        // fixed shuffle tree: the same order on every call.
        unsafe {
            let lo = _mm512_cvtps_pd(_mm512_castps512_ps256(self.0));
            let hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(
                _mm512_castps_pd(self.0),
            )));
            _mm512_reduce_add_pd(_mm512_add_pd(lo, hi))
        }
    }
}

/// Permutation tables of `load_rows` / `store_rows` for `c = 1..=8` classes
/// (index `c - 1`), 16 lanes. A group of 16 rows is `16 c` contiguous values, `c`
/// vectors; value `e` of the group is row `e / c`, class `e % c`.
struct RowTables {
    /// Class `j`'s lane `i` is value `e = i c + j`: lane `e % 32` of the vector pair
    /// `e / 32` (two-source permute index).
    load_idx: [[[i32; 16]; 8]; 8],
    /// Lanes of class `j` taken from vector pair `p`.
    load_mask: [[[u16; 4]; 8]; 8],
    /// Output vector `k`'s lane `l` is value `e = 16 k + l`: lane `e / c` of class
    /// `e % c`, in the class pair `(e % c) / 2` (two-source permute index).
    store_idx: [[[i32; 16]; 8]; 8],
    /// Lanes of output vector `k` taken from class pair `p`.
    store_mask: [[[u16; 4]; 8]; 8],
}

const ROWS: RowTables = row_tables();

const fn row_tables() -> RowTables {
    let mut t = RowTables {
        load_idx: [[[0; 16]; 8]; 8],
        load_mask: [[[0; 4]; 8]; 8],
        store_idx: [[[0; 16]; 8]; 8],
        store_mask: [[[0; 4]; 8]; 8],
    };
    let mut c = 1;
    while c <= 8 {
        let mut j = 0;
        while j < c {
            let mut i = 0;
            while i < 16 {
                let e = i * c + j;
                t.load_idx[c - 1][j][i] = (e % 32) as i32;
                t.load_mask[c - 1][j][e / 32] |= 1 << i;
                let f = j * 16 + i;
                t.store_idx[c - 1][j][i] = (f / c + 16 * ((f % c) % 2)) as i32;
                t.store_mask[c - 1][j][(f % c) / 2] |= 1 << i;
                i += 1;
            }
            j += 1;
        }
        c += 1;
    }
    t
}

/// Element offsets `i * stride` of the 16 lanes, for gathers and scatters.
#[inline(always)]
fn lane_offsets(stride: usize) -> __m512i {
    // SAFETY: see `binop!`. The product fits in i32 by the callers' contract.
    unsafe {
        _mm512_mullo_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(stride as i32),
        )
    }
}
