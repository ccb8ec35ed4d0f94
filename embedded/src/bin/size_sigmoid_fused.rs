//! Code size of the sigmoid fused loss + gradient: gamma is opaque to the compiler,
//! so every gamma kind (integer 0..=4 by multiplication, general through exp) and
//! every target kind are linked in, on every backend the dispatch can pick. No float
//! formatting. `.text` minus `size_base`'s is the figure in the README.

#![no_std]
#![no_main]

use core::hint::black_box;

use cortex_m_rt::entry;
use focal::{Alpha, Focal, Reduction};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}

#[entry]
fn main() -> ! {
    let x = black_box([0.5f32; 16]);
    let t = black_box([1.0f32; 16]);
    let gamma = black_box(2.0f32);
    let mut g = [0.0f32; 16];
    if let Ok(fl) = Focal::new(gamma, Alpha::Balanced(0.25)) {
        black_box(fl.loss_and_grad(&x, &t, Reduction::Mean, &mut g).ok());
    }
    black_box((&x, &t, gamma, &mut g));
    loop {
        cortex_m::asm::wfi();
    }
}
