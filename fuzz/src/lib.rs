//! Oracles of the focal fuzz targets.
//!
//! Everything here is plain Rust over `focal` (no libFuzzer, no `arbitrary`), so
//! `tests/fuzz_regressions.rs` of the main crate compiles the same files through
//! `#[path]` and replays the committed corpus and every past finding under
//! `cargo test`. Only `arbitrary_impls` (the libFuzzer input types) is fuzz-only.
//!
//! Each case type has `decode` (fuzzer bytes to a case: every byte string is a
//! case), `encode` (for the seeds), `check` (run on every backend the CPU has;
//! `Err` lists what broke) and a `Debug` that prints Rust source, which is what
//! `cargo fuzz fmt` shows: paste it into a regression test.

#[path = "../../tests/common/measure.rs"]
pub mod measure;
#[path = "../../tests/common/reference.rs"]
pub mod reference;

pub mod bytes;
pub mod check;
pub mod misuse_case;
pub mod sigmoid_case;
pub mod slices;
pub mod softmax_case;
pub mod softmax_reference;
pub mod unary_case;

mod arbitrary_impls;

pub use misuse_case::MisuseCase;
pub use sigmoid_case::SigmoidCase;
pub use softmax_case::SoftmaxCase;
pub use unary_case::UnaryCase;

/// Panics with the failures and the case as Rust source (the fuzz targets' verdict).
pub fn verdict<C: core::fmt::Debug>(case: &C, result: Result<(), String>) {
    if let Err(e) = result {
        panic!("\n{e}\n\nreproducer (tests/fuzz_regressions.rs):\n{case:?}\n");
    }
}
