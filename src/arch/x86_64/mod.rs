//! x86_64 backends written with `core::arch` intrinsics, entered through runtime
//! detection (the `wide` types cannot serve them: they pick instructions at compile
//! time).

pub(crate) mod avx2;
pub(crate) mod avx512;

use core::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0, _MM_HINT_T0};

/// `SimdF32::prefetch` of both backends.
#[inline(always)]
pub(crate) fn prefetch_read(ptr: *const f32) {
    // SAFETY: a prefetch never faults and reads nothing architecturally, whatever
    // the address (SSE, part of x86_64's baseline).
    unsafe { _mm_prefetch::<_MM_HINT_T0>(ptr.cast::<i8>()) };
}

/// `SimdF32::prefetch_write` of both backends.
#[inline(always)]
pub(crate) fn prefetch_write(ptr: *mut f32) {
    // SAFETY: as `prefetch_read` (PREFETCHW where the CPU has it, else a hint that
    // does nothing).
    unsafe { _mm_prefetch::<_MM_HINT_ET0>(ptr.cast_const().cast::<i8>()) };
}

/// AVX2 + FMA entry points.
pub(crate) mod avx2_entry {
    super::super::entry_points!(super::avx2::Avx2F32, "avx2,fma");
}

/// AVX-512F entry points.
pub(crate) mod avx512_entry {
    super::super::entry_points!(super::avx512::Avx512F32, "avx512f,avx2,fma");
}
