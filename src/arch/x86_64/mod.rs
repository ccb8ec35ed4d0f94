//! x86_64 backends written with `core::arch` intrinsics, entered through runtime
//! detection (the `wide` types cannot serve them: they pick instructions at compile
//! time).

pub(crate) mod avx2;
pub(crate) mod avx512;

/// AVX2 + FMA entry points.
pub(crate) mod avx2_entry {
    super::super::entry_points!(super::avx2::Avx2F32, "avx2,fma");
}

/// AVX-512F entry points.
pub(crate) mod avx512_entry {
    super::super::entry_points!(super::avx512::Avx512F32, "avx512f,avx2,fma");
}
