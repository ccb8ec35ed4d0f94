//! See fuzz/README.md and fuzz/src/unary_case.rs for what this target checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|case: focal_fuzz::UnaryCase| {
    focal_fuzz::verdict(&case, case.check());
});
