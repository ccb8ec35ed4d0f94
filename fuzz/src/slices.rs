//! Slices at arbitrary start offsets, and output slices fenced by canaries so that a
//! write outside the slice is seen even where AddressSanitizer cannot see it (inside
//! the same allocation).

/// A NaN with a payload no kernel produces: the fence value.
pub const CANARY: u32 = 0x7FC0_DEAD;

/// Room after an output slice that must stay untouched.
const TAIL: usize = 16;

/// An input slice starting `off` elements into its allocation, which ends exactly
/// at the end of the slice (AddressSanitizer sees an over-read).
pub fn input(values: &[f32], off: usize) -> Vec<f32> {
    let mut v = Vec::with_capacity(off + values.len());
    v.extend(core::iter::repeat_n(f32::from_bits(CANARY), off));
    v.extend_from_slice(values);
    v
}

/// An output slice of `len` elements at offset `off`, canaries around it.
pub struct Fenced {
    buf: Vec<f32>,
    off: usize,
    len: usize,
}

impl Fenced {
    /// Every element (slice and fence) starts as the canary.
    pub fn new(len: usize, off: usize) -> Self {
        Fenced {
            buf: vec![f32::from_bits(CANARY); off + len + TAIL],
            off,
            len,
        }
    }

    /// The slice.
    pub fn slice(&mut self) -> &mut [f32] {
        &mut self.buf[self.off..self.off + self.len]
    }

    /// The slice, read.
    pub fn get(&self) -> &[f32] {
        &self.buf[self.off..self.off + self.len]
    }

    /// Resets the slice to the canary (between calls).
    pub fn reset(&mut self) {
        self.slice().fill(f32::from_bits(CANARY));
    }

    /// The index (relative to the slice start, may be negative) of the first fence
    /// element that was written, if any.
    pub fn breached(&self) -> Option<isize> {
        let end = self.off + self.len;
        self.buf
            .iter()
            .enumerate()
            .filter(|&(i, _)| i < self.off || i >= end)
            .find(|&(_, v)| v.to_bits() != CANARY)
            .map(|(i, _)| i as isize - self.off as isize)
    }
}
