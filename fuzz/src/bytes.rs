//! The byte format of the fuzz inputs: a reader that turns libFuzzer's bytes into
//! values (biased toward the hard cases: the exp over/underflow edges, subnormals,
//! infinities, NaN, soft and ignored targets), and the writer that encodes a value
//! back (always as raw bits), for the committed seeds.
//!
//! Every decision is one byte and every float one tag byte plus four payload bytes,
//! so that libFuzzer's mutations (byte flips, inserted dictionary words, copied
//! ranges) land on meaningful units. An exhausted input reads as zeros: every byte
//! string decodes to some case, none is rejected.

/// Logits worth hitting exactly: 0, subnormals, the sigmoid rounding edge (16.6:
/// `sigmoid(x)` rounds to 1), `log1p` and `exp` edges, the f32 exp overflow (88.72)
/// and underflow (-87.34 normal, -103.97 subnormal, -104 zero), and the range ends.
/// Decoded with a sign and a nudge of up to +-127 ULP.
pub const SPECIAL_LOGITS: [f32; 32] = [
    0.0,
    f32::from_bits(1),           // 2^-149, smallest subnormal
    f32::from_bits(0x007F_FFFF), // largest subnormal
    f32::MIN_POSITIVE,           // 2^-126
    5.960_464_5e-8,              // 2^-24
    1e-4,
    0.5,
    1.0,
    2.0,
    8.0,
    15.942_385, // -ln(2^-23)
    16.6,
    16.635_532, // ln(2^24): sigmoid rounds to 1 above
    17.0,
    24.0,
    33.0,
    50.0,
    87.336_55, // -ln(2^-126): exp leaves the normal range below -x
    88.0,
    88.722_83, // ln(f32::MAX): exp overflows above
    88.7,
    89.0,
    100.0,
    103.0,
    103.972_08, // -ln(2^-150): exp underflows to 0 below -x
    104.0,
    150.0,
    1e4,
    1e10,
    1e30,
    f32::MAX,
    f32::INFINITY,
];

/// Soft and out-of-range targets worth hitting exactly.
pub const SPECIAL_TARGETS: [f32; 16] = [
    0.5,
    f32::from_bits(1),
    5.960_464_5e-8, // 2^-24
    0.999_999_94,   // 1 - 2^-24
    0.25,
    0.9,
    -0.0,
    1.000_000_1,   // invalid: just above 1
    -0.000_000_1,  // invalid: just below 0
    -0.999_999_94, // invalid: next to the ignore label
    -1.000_000_1,  // invalid
    f32::NAN,      // invalid
    f32::INFINITY,
    f32::NEG_INFINITY,
    2.0,
    -100.0,
];

/// Gammas worth hitting exactly: 0 (BCE), the integer kinds, fractional ones (in
/// (0, 1) the textbook gradient has `q^(gamma-1)`), the largest integer power (8),
/// and just above it (all of gamma through exp).
pub const SPECIAL_GAMMAS: [f32; 20] = [
    0.0,
    0.5,
    1.0,
    1.5,
    2.0,
    2.5,
    3.0,
    4.0,
    4.7,
    5.0,
    8.0,
    0.25,
    0.01,
    0.999_999_94,
    3.5,
    7.999_999_5,
    1e-30,
    2.000_000_2,
    8.000_001,
    12.0,
];

/// Alpha values (and out-of-range ones) worth hitting exactly.
pub const SPECIAL_ALPHAS: [f32; 16] = [
    0.0,
    0.25,
    0.5,
    0.75,
    1.0,
    1e-6,
    0.999_999_94,
    0.1,
    0.3,
    5.960_464_5e-8,
    f32::from_bits(1),
    -0.0,
    1.000_000_1,
    -0.1,
    f32::NAN,
    2.0,
];

/// `Reduction::DivideBy` normalisers worth hitting exactly (the last five are invalid).
pub const SPECIAL_NORMALIZERS: [f32; 16] = [
    1.0,
    7.0,
    0.5,
    1e-3,
    1e30,
    3e38,
    1e-30,
    f32::from_bits(1),
    2.0,
    100.0,
    1e6,
    0.0,
    -1.0,
    f32::NAN,
    f32::INFINITY,
    -0.0,
];

/// Reads values from fuzzer bytes; reads past the end give zeros.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    /// One byte (0 when exhausted).
    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// Four bytes, little endian (zero-padded when exhausted).
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// Two bytes, little endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.byte(), self.byte()])
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// A logit: tag byte, then 4 payload bytes. Tag `% 4`: 0 raw bits (NaN payloads,
    /// subnormals, huge values), 1 a [`SPECIAL_LOGITS`] entry with sign and a nudge of
    /// +-127 ULP, 2 uniform in [-120, 120] (the exp edges, densely), 3 a random
    /// mantissa with exponent in [2^-30, 2^9].
    pub fn logit(&mut self) -> f32 {
        let tag = self.byte();
        let p = self.u32();
        match tag % 4 {
            0 => f32::from_bits(p),
            1 => {
                let base = SPECIAL_LOGITS[(p & 0xFF) as usize % SPECIAL_LOGITS.len()];
                let nudge = i32::from(((p >> 8) & 0xFF) as u8 as i8);
                let v = if base.is_finite() {
                    nudged(base, nudge)
                } else {
                    base
                };
                if p & 0x1_0000 != 0 {
                    -v
                } else {
                    v
                }
            }
            2 => ((f64::from(p) / f64::from(u32::MAX)) * 240.0 - 120.0) as f32,
            _ => {
                let exponent = 97 + (p >> 24) % 40;
                f32::from_bits((p & 0x807F_FFFF) | (exponent << 23))
            }
        }
    }

    /// A target of the sigmoid loss: mostly hard (0, 1) and ignored (-1), then soft,
    /// then the special (and invalid) values, then raw bits (mostly invalid). Tag
    /// byte, 4 payload bytes.
    pub fn target(&mut self) -> f32 {
        let tag = self.byte();
        let p = self.u32();
        match tag {
            0..=79 => 0.0,
            80..=159 => 1.0,
            160..=183 => -1.0,
            184..=231 => (f64::from(p) / (f64::from(u32::MAX) + 1.0)) as f32,
            232..=247 => SPECIAL_TARGETS[p as usize % SPECIAL_TARGETS.len()],
            _ => f32::from_bits(p),
        }
    }

    /// A parameter from `table` (tag < 160), uniform in `[0, hi]` (tag < 232), or
    /// raw bits. Tag byte, 4 payload bytes.
    pub fn param(&mut self, table: &[f32], hi: f32) -> f32 {
        let tag = self.byte();
        let p = self.u32();
        match tag {
            0..=159 => table[p as usize % table.len()],
            160..=231 => ((f64::from(p) / f64::from(u32::MAX)) * f64::from(hi)) as f32,
            _ => f32::from_bits(p),
        }
    }

    /// `n` values of `one`, with a fill mode byte first: `% 4` = 3 repeats the first
    /// value (long slices from short inputs: vector bodies, all-ignored slices),
    /// anything else reads every value.
    pub fn values(&mut self, n: usize, mut one: impl FnMut(&mut Self) -> f32) -> Vec<f32> {
        if self.byte() % 4 == 3 {
            let v = one(self);
            vec![v; n]
        } else {
            (0..n).map(|_| one(self)).collect()
        }
    }
}

/// `v` moved by `ulps` representable steps (within its sign; no wrap past 0 or inf).
pub fn nudged(v: f32, ulps: i32) -> f32 {
    let bits = v.to_bits() as i64 + i64::from(ulps);
    f32::from_bits(bits.clamp(0, 0x7F80_0000) as u32)
}

/// Encodes values so that [`Reader`] decodes them back: every float as raw bits.
#[derive(Default)]
pub struct Writer {
    /// The bytes written so far.
    pub bytes: Vec<u8>,
}

impl Writer {
    /// One byte.
    pub fn byte(&mut self, b: u8) {
        self.bytes.push(b);
    }

    /// Four bytes, little endian.
    pub fn u32(&mut self, v: u32) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    /// Two bytes, little endian.
    pub fn u16(&mut self, v: u16) {
        self.bytes.extend_from_slice(&v.to_le_bytes());
    }

    /// A logit as raw bits (tag 0).
    pub fn logit(&mut self, v: f32) {
        self.byte(0);
        self.u32(v.to_bits());
    }

    /// A target as raw bits (tag 255).
    pub fn target(&mut self, v: f32) {
        self.byte(255);
        self.u32(v.to_bits());
    }

    /// A parameter as raw bits (tag 255).
    pub fn param(&mut self, v: f32) {
        self.byte(255);
        self.u32(v.to_bits());
    }

    /// Values one by one (fill mode 0), or the first repeated when all are equal
    /// bit for bit (fill mode 3).
    pub fn values(&mut self, vs: &[f32], mut one: impl FnMut(&mut Self, f32)) {
        let same = vs.windows(2).all(|w| w[0].to_bits() == w[1].to_bits());
        if same && vs.len() > 1 {
            self.byte(3);
            one(self, vs[0]);
        } else {
            self.byte(0);
            for &v in vs {
                one(self, v);
            }
        }
    }
}

/// `f32::from_bits`, short, for the Rust literals that `cargo fuzz fmt` prints.
pub fn f(bits: u32) -> f32 {
    f32::from_bits(bits)
}

/// A vector of floats from their bits, for the printed literals.
pub fn fs(bits: &[u32]) -> Vec<f32> {
    bits.iter().map(|&b| f32::from_bits(b)).collect()
}

/// Writes `v` as `f(0x...)` with its decimal value in a comment.
pub fn fmt_f32(v: f32) -> String {
    format!("f(0x{:08x}) /* {v:e} */", v.to_bits())
}

/// Writes floats as `fs(&[0x..., ...])`, eight per line, values in a comment when
/// short.
pub fn fmt_f32s(vs: &[f32], indent: &str) -> String {
    let mut s = String::from("fs(&[");
    for (i, v) in vs.iter().enumerate() {
        if i % 8 == 0 {
            s.push('\n');
            s.push_str(indent);
            s.push_str("    ");
        } else {
            s.push(' ');
        }
        s.push_str(&format!("0x{:08x},", v.to_bits()));
    }
    if !vs.is_empty() {
        s.push('\n');
        s.push_str(indent);
    }
    s.push_str("])");
    if !vs.is_empty() && vs.len() <= 16 {
        s.push_str(&format!(" /* {vs:?} */"));
    }
    s
}
