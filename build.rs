//! Sets `cfg(wide_simd)` where the `wide` crate compiles `f32x8` to SIMD
//! instructions (SSE2 on x86, NEON on aarch64, simd128 on wasm32); elsewhere the
//! portable backend reuses the scalar kernels (see `src/arch/portable.rs`).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(wide_simd)");
    println!("cargo::rustc-check-cfg=cfg(compact)");
    println!("cargo::rerun-if-changed=build.rs");
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let has = |f: &str| features.split(',').any(|x| x == f);
    let simd = match arch.as_str() {
        "x86" | "x86_64" => has("sse2"),
        "aarch64" => has("neon"),
        "wasm32" => has("simd128"),
        _ => false,
    };
    // FOCAL_FORCE_COMPACT=1 takes the compact code paths on any target, for the
    // host to measure their accuracy (CI step `embedded`; `tests/accuracy.rs`). Unlike
    // RUSTFLAGS="--cfg compact" it reaches this package only: the dependencies'
    // builds stay valid.
    println!("cargo::rerun-if-env-changed=FOCAL_FORCE_COMPACT");
    let forced = std::env::var("FOCAL_FORCE_COMPACT").is_ok_and(|v| v == "1");
    if simd {
        println!("cargo::rustc-cfg=wide_simd");
    }
    if !simd || forced {
        // No SIMD: a microcontroller or an unusual target. Favour code size: one
        // general-gamma kernel per target kind, f32 math in the scalar backend.
        println!("cargo::rustc-cfg=compact");
    }
}
