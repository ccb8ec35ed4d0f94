//! The `math_functions` oracle: `Backend::{sigmoid, softplus, log_sigmoid}` on every
//! backend the CPU has, against the f64 reference within their documented bounds
//! (1.5, 2 and 2 ULP) and against Scalar. The vector `exp` and `log1p` are not
//! public; they are reached through these three (sigmoid = exp + a division,
//! softplus / log_sigmoid = exp + log1p), over every f32 bit pattern the fuzzer
//! reaches.

use core::fmt;

use focal::Backend;

use crate::bytes::{fmt_f32s, Reader, Writer};
use crate::check::{show, within, Failures, SIGMOID_BAR, SOFTPLUS_BAR};
use crate::reference;
use crate::sigmoid_case::{read_len, write_len, MAX_LEN};
use crate::slices::{input, Fenced};

/// One input of the building blocks.
#[derive(Clone)]
pub struct UnaryCase {
    /// Start offsets of the input and of the output.
    pub offsets: [usize; 2],
    /// The arguments.
    pub x: Vec<f32>,
}

/// A function's name, bound in ULP and f64 reference.
type Function = (&'static str, f64, fn(f64) -> f64);

/// The three functions.
const FUNCTIONS: [Function; 3] = [
    ("sigmoid", SIGMOID_BAR, reference::sigmoid),
    ("softplus", SOFTPLUS_BAR, reference::softplus),
    ("log_sigmoid", SOFTPLUS_BAR, reference::log_sigmoid),
];

fn call(b: Backend, k: usize, x: &[f32], out: &mut [f32]) -> Result<(), focal::Error> {
    match k {
        0 => b.sigmoid(x, out),
        1 => b.softplus(x, out),
        _ => b.log_sigmoid(x, out),
    }
}

impl UnaryCase {
    /// Decodes fuzzer bytes.
    pub fn decode(data: &[u8]) -> Self {
        let mut r = Reader::new(data);
        let o = usize::from(r.byte());
        let n = read_len(&mut r, MAX_LEN);
        let x = r.values(n, Reader::logit);
        UnaryCase {
            offsets: [o & 15, o >> 4],
            x,
        }
    }

    /// Encodes the case for [`UnaryCase::decode`].
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.byte((self.offsets[0] & 15 | (self.offsets[1] & 15) << 4) as u8);
        write_len(&mut w, self.x.len());
        w.values(&self.x, Writer::logit);
        w.bytes
    }

    /// Runs every function on every available backend; `Err` lists what broke.
    pub fn check(&self) -> Result<(), String> {
        let mut fails = Failures::default();
        let [ox, oo] = self.offsets;
        let xb = input(&self.x, ox);
        let x = &xb[ox..];
        for (k, &(name, bar, refn)) in FUNCTIONS.iter().enumerate() {
            let want: Vec<f64> = x.iter().map(|&v| refn(f64::from(v))).collect();
            let mut scalar: Option<Vec<f32>> = None;
            for b in Backend::available() {
                let bn = b.name();
                let mut out = Fenced::new(x.len(), oo);
                if let Err(e) = call(b, k, x, out.slice()) {
                    fails.push(format!("[{bn}] {name}: Err({e:?}) for matching lengths"));
                    continue;
                }
                if let Some(i) = out.breached() {
                    fails.push(format!(
                        "[{bn}] {name} wrote outside its output slice, at {i}"
                    ));
                }
                let got = out.get().to_vec();
                for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
                    // NaN in, NaN out; the limits at +-inf are in the reference.
                    if let Some(e) = within(g, w, w.abs(), bar) {
                        fails.push(format!("[{bn}] {name}({}): {e}", show(x[i])));
                    }
                }
                match &scalar {
                    None => scalar = Some(got),
                    Some(s) => {
                        for (i, (&g, &v)) in got.iter().zip(s).enumerate() {
                            if let Some(e) = within(g, f64::from(v), want[i].abs(), 2.0 * bar) {
                                fails.push(format!(
                                    "[{bn}] {name}({}) against Scalar: {e}",
                                    show(x[i])
                                ));
                            }
                        }
                    }
                }
            }
        }
        fails.into_result()
    }
}

impl fmt::Debug for UnaryCase {
    /// Rust source for `tests/fuzz_regressions.rs` (what `cargo fuzz fmt` prints).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "UnaryCase {{")?;
        writeln!(f, "    offsets: {:?},", self.offsets)?;
        writeln!(f, "    x: {},", fmt_f32s(&self.x, "    "))?;
        write!(f, "}}")
    }
}
