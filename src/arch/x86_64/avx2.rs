//! AVX2 + FMA backend: `__m256`, 8 lanes, masked loads and stores for the tail.

use core::arch::x86_64::*;
use core::ops::{Add, Div, Mul, Neg, Sub};

use crate::scalar::ROUND_SHIFTER;
use crate::simd::{SimdF32, MAX_LANES};

/// Eight f32 lanes in a ymm register.
#[derive(Clone, Copy)]
pub(crate) struct Avx2F32(__m256);

macro_rules! binop {
    ($tr:ident, $f:ident, $intr:ident) => {
        impl $tr for Avx2F32 {
            type Output = Self;
            #[inline(always)]
            fn $f(self, b: Self) -> Self {
                // SAFETY: Avx2F32 values only exist inside AVX2 entry points (trait
                // contract of SimdF32), so AVX is enabled on this CPU.
                Avx2F32(unsafe { $intr(self.0, b.0) })
            }
        }
    };
}
binop!(Add, add, _mm256_add_ps);
binop!(Sub, sub, _mm256_sub_ps);
binop!(Mul, mul, _mm256_mul_ps);
binop!(Div, div, _mm256_div_ps);

impl Neg for Avx2F32 {
    type Output = Self;
    #[inline(always)]
    fn neg(self) -> Self {
        // SAFETY: see `binop!`.
        Avx2F32(unsafe { _mm256_xor_ps(self.0, _mm256_set1_ps(-0.0)) })
    }
}

/// Lane mask for the first `n` (< 8) lanes.
#[inline(always)]
fn first_lanes(n: usize) -> __m256i {
    // SAFETY: see `binop!`.
    unsafe {
        let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), idx)
    }
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

// SAFETY: every method uses AVX/AVX2/FMA intrinsics only, and values are only created
// in entry points compiled with `avx2,fma` and entered after detection.
unsafe impl SimdF32 for Avx2F32 {
    type Mask = __m256;
    const LANES: usize = 8;
    const REGISTERS: usize = 16;
    const FUSED_MUL_ADD: bool = true;

    #[inline(always)]
    fn splat(v: f32) -> Self {
        // SAFETY: see the impl.
        Avx2F32(unsafe { _mm256_set1_ps(v) })
    }
    #[inline(always)]
    unsafe fn load(ptr: *const f32) -> Self {
        // SAFETY: the caller guarantees 8 readable f32; loadu has no alignment need.
        Avx2F32(unsafe { _mm256_loadu_ps(ptr) })
    }
    #[inline(always)]
    unsafe fn load_partial(ptr: *const f32, n: usize, fill: f32) -> Self {
        // SAFETY: maskload reads only the first n lanes (faults are suppressed for
        // the others); the caller guarantees those n are readable.
        unsafe {
            let m = first_lanes(n);
            let v = _mm256_maskload_ps(ptr, m);
            Avx2F32(_mm256_blendv_ps(
                _mm256_set1_ps(fill),
                v,
                _mm256_castsi256_ps(m),
            ))
        }
    }
    #[inline(always)]
    unsafe fn store(self, ptr: *mut f32) {
        // SAFETY: the caller guarantees 8 writable f32.
        unsafe { _mm256_storeu_ps(ptr, self.0) }
    }
    #[inline(always)]
    unsafe fn store_partial(self, ptr: *mut f32, n: usize) {
        // SAFETY: maskstore writes only the first n lanes, which the caller
        // guarantees are writable.
        unsafe { _mm256_maskstore_ps(ptr, first_lanes(n), self.0) }
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        // SAFETY: see the impl (fma is part of this backend's features).
        Avx2F32(unsafe { _mm256_fmadd_ps(self.0, b.0, c.0) })
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        // SAFETY: see the impl.
        Avx2F32(unsafe { _mm256_sqrt_ps(self.0) })
    }
    #[inline(always)]
    fn abs(self) -> Self {
        // SAFETY: see the impl.
        Avx2F32(unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), self.0) })
    }
    #[inline(always)]
    fn neg_abs(self) -> Self {
        // SAFETY: see the impl. Setting the sign bit is one instruction.
        Avx2F32(unsafe { _mm256_or_ps(self.0, _mm256_set1_ps(-0.0)) })
    }
    #[inline(always)]
    fn max(self, b: Self) -> Self {
        // SAFETY: see the impl. maxps returns its second operand on NaN.
        Avx2F32(unsafe { _mm256_max_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn min(self, b: Self) -> Self {
        // SAFETY: see the impl. minps returns its second operand on NaN.
        Avx2F32(unsafe { _mm256_min_ps(self.0, b.0) })
    }
    #[inline(always)]
    fn lt(self, b: Self) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_cmp_ps::<_CMP_LT_OQ>(self.0, b.0) }
    }
    #[inline(always)]
    fn le(self, b: Self) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_cmp_ps::<_CMP_LE_OQ>(self.0, b.0) }
    }
    #[inline(always)]
    fn eq(self, b: Self) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_cmp_ps::<_CMP_EQ_OQ>(self.0, b.0) }
    }
    #[inline(always)]
    fn select(m: __m256, a: Self, b: Self) -> Self {
        // SAFETY: see the impl.
        Avx2F32(unsafe { _mm256_blendv_ps(b.0, a.0, m) })
    }
    #[inline(always)]
    fn and(a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_and_ps(a, b) }
    }
    #[inline(always)]
    fn or(a: __m256, b: __m256) -> __m256 {
        // SAFETY: see the impl.
        unsafe { _mm256_or_ps(a, b) }
    }
    #[inline(always)]
    fn bitmask(m: __m256) -> u32 {
        // SAFETY: see the impl.
        unsafe { _mm256_movemask_ps(m) as u32 }
    }
    #[inline(always)]
    fn round(self) -> Self {
        // SAFETY: see the impl.
        Avx2F32(unsafe {
            _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self.0)
        })
    }
    #[inline(always)]
    fn exponent(self) -> Self {
        // SAFETY: see the impl.
        unsafe {
            let e = _mm256_or_si256(
                _mm256_srli_epi32::<23>(_mm256_castps_si256(self.0)),
                _mm256_set1_epi32(0x4B00_0000),
            );
            Avx2F32(_mm256_sub_ps(
                _mm256_castsi256_ps(e),
                _mm256_set1_ps(8_388_735.0),
            ))
        }
    }
    #[inline(always)]
    fn pow2i(self) -> Self {
        // SAFETY: see the impl.
        unsafe {
            let b = _mm256_castps_si256(_mm256_add_ps(self.0, _mm256_set1_ps(ROUND_SHIFTER)));
            let b = _mm256_add_epi32(b, _mm256_set1_epi32(127));
            Avx2F32(_mm256_castsi256_ps(_mm256_slli_epi32::<23>(b)))
        }
    }
    #[inline(always)]
    fn to_array(self) -> [f32; MAX_LANES] {
        let mut a = [0.0; MAX_LANES];
        // SAFETY: a has room for 8 f32.
        unsafe { _mm256_storeu_ps(a.as_mut_ptr(), self.0) };
        a
    }
    #[inline(always)]
    unsafe fn gather(ptr: *const f32, stride: usize) -> Self {
        // SAFETY: the caller guarantees lanes i < 8 at ptr + i * stride are readable
        // and that the element offsets fit in i32.
        Avx2F32(unsafe { _mm256_i32gather_ps::<4>(ptr, lane_offsets(stride)) })
    }
    #[inline(always)]
    unsafe fn gather_partial(ptr: *const f32, stride: usize, n: usize, fill: f32) -> Self {
        // SAFETY: a masked gather reads only the first n lanes, which the caller
        // guarantees are readable; offsets fit in i32 (caller's guarantee).
        Avx2F32(unsafe {
            _mm256_mask_i32gather_ps::<4>(
                _mm256_set1_ps(fill),
                ptr,
                lane_offsets(stride),
                _mm256_castsi256_ps(first_lanes(n)),
            )
        })
    }
    #[inline(always)]
    unsafe fn load_i32_partial(ptr: *const i32, n: usize, fill: f32) -> Self {
        // SAFETY: maskload reads only the first n lanes (faults suppressed for the
        // others), which the caller guarantees are readable.
        unsafe {
            let m = first_lanes(n);
            let v = _mm256_cvtepi32_ps(_mm256_maskload_epi32(ptr, m));
            Avx2F32(_mm256_blendv_ps(
                _mm256_set1_ps(fill),
                v,
                _mm256_castsi256_ps(m),
            ))
        }
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
        // SAFETY: see the impl. Within each 128-bit half, shuffle_ps gives
        // a0 a2 b0 b2 | a4 a6 b4 b6 (evens); the 64-bit permute 0, 2, 1, 3 then
        // orders it a0 a2 a4 a6 b0 b2 b4 b6.
        unsafe {
            let even = _mm256_castps_pd(_mm256_shuffle_ps::<0x88>(a.0, b.0));
            let odd = _mm256_castps_pd(_mm256_shuffle_ps::<0xDD>(a.0, b.0));
            (
                Avx2F32(_mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(even))),
                Avx2F32(_mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(odd))),
            )
        }
    }
    #[inline(always)]
    unsafe fn load_rows(ptr: *const f32, c: usize, n: usize, out: &mut [Self; 8]) {
        // c contiguous vectors (masked: n c values), then for each class one
        // permute per source vector, blended by the lanes that come from it: c^2
        // permutes, cheaper than gathers up to 4 classes.
        if c > 4 {
            unroll8!(j < c => {
                // SAFETY: lane i < n reads ptr + i c + j, inside row i; offsets
                // below 64.
                out[j] = unsafe { Self::gather_partial(ptr.add(j), c, n, 0.0) };
            });
            return;
        }
        let c = c.min(4);
        // Table index c - 1, masked so the compiler sees it in bounds.
        let tab = c.wrapping_sub(1) & 7;
        let total = n * c;
        // SAFETY: see the impl.
        let zero = unsafe { _mm256_setzero_ps() };
        let mut src = [zero; 8];
        unroll8!(k < c => {
            let count = total.saturating_sub(8 * k).min(8);
            // SAFETY: values 8 k .. 8 k + count are among the n c readable ones
            // (maskload suppresses the others).
            src[k] = unsafe { _mm256_maskload_ps(ptr.add(8 * k), first_lanes(count)) };
        });
        unroll8!(j < c => {
            // SAFETY: see the impl; the tables are 8 i32.
            out[j] = Avx2F32(unsafe {
                let idx = _mm256_loadu_si256(ROWS8.load_idx[tab][j].as_ptr().cast());
                let from = _mm256_loadu_si256(ROWS8.load_src[tab][j].as_ptr().cast());
                let mut acc = _mm256_permutevar8x32_ps(src[0], idx);
                unroll8!(k < c => {
                    if k > 0 {
                        let t = _mm256_permutevar8x32_ps(src[k], idx);
                        let m = _mm256_cmpeq_epi32(from, _mm256_set1_epi32(k as i32));
                        acc = _mm256_blendv_ps(acc, t, _mm256_castsi256_ps(m));
                    }
                });
                acc
            });
        });
    }
    #[inline(always)]
    unsafe fn store_rows(v: &[Self; 8], ptr: *mut f32, c: usize, n: usize) {
        if c > 4 {
            unroll8!(j < c => {
                // SAFETY: lane i < n writes ptr + i c + j, inside row i.
                unsafe { v[j].scatter_partial(ptr.add(j), c, n) };
            });
            return;
        }
        let c = c.min(4);
        // Table index c - 1, masked so the compiler sees it in bounds.
        let tab = c.wrapping_sub(1) & 7;
        let total = n * c;
        unroll8!(k < c => {
            let count = total.saturating_sub(8 * k).min(8);
            // SAFETY: see the impl; the tables are 8 i32; values 8 k .. 8 k + count
            // are among the n c writable ones (maskstore writes only those).
            unsafe {
                let idx = _mm256_loadu_si256(ROWS8.store_idx[tab][k].as_ptr().cast());
                let class = _mm256_loadu_si256(ROWS8.store_class[tab][k].as_ptr().cast());
                let mut acc = _mm256_permutevar8x32_ps(v[0].0, idx);
                unroll8!(j < c => {
                    if j > 0 {
                        let t = _mm256_permutevar8x32_ps(v[j].0, idx);
                        let m = _mm256_cmpeq_epi32(class, _mm256_set1_epi32(j as i32));
                        acc = _mm256_blendv_ps(acc, t, _mm256_castsi256_ps(m));
                    }
                });
                _mm256_maskstore_ps(ptr.add(8 * k), first_lanes(count), acc);
            }
        });
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        // SAFETY: see the impl.
        unsafe {
            let m = _mm_max_ps(
                _mm256_castps256_ps128(self.0),
                _mm256_extractf128_ps::<1>(self.0),
            );
            let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
            let m = _mm_max_ss(m, _mm_movehdup_ps(m));
            _mm_cvtss_f32(m)
        }
    }
    const WIDE_SUMS: bool = true;
    #[inline(always)]
    fn add_wide(acc: [Self; 2], v: Self) -> [Self; 2] {
        // SAFETY: see the impl.
        unsafe {
            let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v.0));
            let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v.0));
            [
                Avx2F32(_mm256_castpd_ps(_mm256_add_pd(
                    _mm256_castps_pd(acc[0].0),
                    lo,
                ))),
                Avx2F32(_mm256_castpd_ps(_mm256_add_pd(
                    _mm256_castps_pd(acc[1].0),
                    hi,
                ))),
            ]
        }
    }
    #[inline(always)]
    fn wide_total(acc: [Self; 2]) -> f64 {
        // SAFETY: see the impl. A fixed order.
        unsafe {
            let s = _mm256_add_pd(_mm256_castps_pd(acc[0].0), _mm256_castps_pd(acc[1].0));
            let s = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd::<1>(s));
            _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)))
        }
    }
    #[inline(always)]
    fn reduce_add_f64(self) -> f64 {
        // SAFETY: see the impl. Both halves widened to f64 and added in a fixed
        // order.
        unsafe {
            let lo = _mm256_cvtps_pd(_mm256_castps256_ps128(self.0));
            let hi = _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(self.0));
            let s = _mm256_add_pd(lo, hi);
            let s = _mm_add_pd(_mm256_castpd256_pd128(s), _mm256_extractf128_pd::<1>(s));
            _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)))
        }
    }
}

/// Permutation tables of `load_rows` / `store_rows` for `c = 1..=8` classes
/// (index `c - 1`), 8 lanes. A group of 8 rows is `8 c` contiguous values, `c`
/// vectors; value `e` of the group is row `e / c`, class `e % c`.
struct RowTables8 {
    /// Class `j`'s lane `i` is value `e = i c + j`: lane `e % 8` ...
    load_idx: [[[i32; 8]; 8]; 8],
    /// ... of vector `e / 8`.
    load_src: [[[i32; 8]; 8]; 8],
    /// Output vector `k`'s lane `l` is value `e = 8 k + l`: lane `e / c` ...
    store_idx: [[[i32; 8]; 8]; 8],
    /// ... of class `e % c`.
    store_class: [[[i32; 8]; 8]; 8],
}

const ROWS8: RowTables8 = row_tables8();

const fn row_tables8() -> RowTables8 {
    let mut t = RowTables8 {
        load_idx: [[[0; 8]; 8]; 8],
        load_src: [[[0; 8]; 8]; 8],
        store_idx: [[[0; 8]; 8]; 8],
        store_class: [[[0; 8]; 8]; 8],
    };
    let mut c = 1;
    while c <= 8 {
        let mut j = 0;
        while j < c {
            let mut i = 0;
            while i < 8 {
                let e = i * c + j;
                t.load_idx[c - 1][j][i] = (e % 8) as i32;
                t.load_src[c - 1][j][i] = (e / 8) as i32;
                let f = j * 8 + i;
                t.store_idx[c - 1][j][i] = (f / c) as i32;
                t.store_class[c - 1][j][i] = (f % c) as i32;
                i += 1;
            }
            j += 1;
        }
        c += 1;
    }
    t
}

/// Element offsets `i * stride` of the 8 lanes, for gathers.
#[inline(always)]
fn lane_offsets(stride: usize) -> __m256i {
    // SAFETY: see `binop!`. The product fits in i32 by the callers' contract.
    unsafe {
        _mm256_mullo_epi32(
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
            _mm256_set1_epi32(stride as i32),
        )
    }
}
