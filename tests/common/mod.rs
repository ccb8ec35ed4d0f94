//! Test support shared by the integration tests: the high-precision reference, the
//! error measures, the sweep inputs, the asserted bars, the error statistics and the
//! report.
//!
//! Each test binary compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod bars;
pub mod grid;
pub mod measure;
pub mod reference;
pub mod report;
pub mod rng;
pub mod stats;
