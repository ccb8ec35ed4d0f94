//! Code-size baseline: the same runtime, inputs and outputs as `size_sigmoid_fused`,
//! without the focal call. `.text` of that binary minus this one's is the kernels'
//! size (see README "Embedded (no_std)", measured by `scripts/edge.sh embedded`).

#![no_std]
#![no_main]

use core::hint::black_box;

use cortex_m_rt::entry;

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
    black_box((&x, &t, gamma, &mut g));
    loop {
        cortex_m::asm::wfi();
    }
}
