//! Runs focal's kernels on a Cortex-M4F (QEMU mps2-an386) through semihosting:
//! known answers (computed on the host, `known_answers.py`), edge cases and every
//! error kind, on both backends this target has (Scalar and Portable). Prints one
//! line per group and "N passed, N failed"; the exit status is 0 only when nothing
//! failed (a panic also exits 1).

#![no_std]
#![no_main]

mod harness;
#[rustfmt::skip]
mod known;
mod sigmoid;
mod softmax;
mod stack;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use focal::Backend;
use panic_semihosting as _;

#[entry]
fn main() -> ! {
    let mut run = harness::Run::new();
    sigmoid::backends(&mut run);
    for backend in [Backend::Scalar, Backend::Portable] {
        sigmoid::known_answers(&mut run, backend);
        sigmoid::edge_cases(&mut run, backend);
        sigmoid::errors(&mut run, backend);
        sigmoid::building_blocks(&mut run, backend);
        softmax::known_answers(&mut run, backend);
        softmax::errors(&mut run, backend);
    }
    stack::report();
    hprintln!("{} passed, {} failed", run.passed, run.failed);
    debug::exit(if run.failed == 0 {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    #[allow(clippy::empty_loop)]
    loop {}
}
