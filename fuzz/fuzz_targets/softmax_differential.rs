//! See fuzz/README.md and fuzz/src/softmax_case.rs for what this target checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: focal_fuzz::SoftmaxCase| {
    focal_fuzz::verdict(&case, case.check());
});
