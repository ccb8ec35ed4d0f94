//! See fuzz/README.md and fuzz/src/sigmoid_case.rs for what this target checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: focal_fuzz::SigmoidCase| {
    focal_fuzz::verdict(&case, case.check());
});
