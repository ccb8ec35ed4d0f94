//! C arrays as Rust slices, after the checks that make that sound: NULL, alignment,
//! size in bytes, and overlap between an output and the other arrays of a call.

use super::{FOCAL_ERR_NULL_POINTER, FOCAL_ERR_OVERFLOW};

/// A C array of `n` elements as a slice. NULL is allowed for `n == 0` only.
///
/// # Safety
/// A non-NULL `ptr` must be valid for reads of `n` elements and not be written
/// through another pointer while the slice lives.
pub(super) unsafe fn input<'a, T>(ptr: *const T, n: usize) -> Result<&'a [T], i32> {
    check_len::<T>(n)?;
    if n == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() || !ptr.is_aligned() {
        return Err(FOCAL_ERR_NULL_POINTER);
    }
    // SAFETY: non-NULL and aligned (checked), `n * size_of::<T>() <= isize::MAX`
    // (checked), valid for `n` reads (the caller's contract, documented in the header).
    Ok(unsafe { core::slice::from_raw_parts(ptr, n) })
}

/// A C array of `n` elements as a mutable slice. NULL is allowed for `n == 0` only.
///
/// # Safety
/// A non-NULL `ptr` must be valid for reads and writes of `n` elements, and the
/// caller has checked that it overlaps no other slice of the call.
pub(super) unsafe fn output<'a>(ptr: *mut f32, n: usize) -> Result<&'a mut [f32], i32> {
    check_len::<f32>(n)?;
    if n == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() || !ptr.is_aligned() {
        return Err(FOCAL_ERR_NULL_POINTER);
    }
    // SAFETY: non-NULL and aligned (checked), size within isize::MAX (checked), valid
    // and unaliased for `n` elements (the caller's contract and overlap check).
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, n) })
}

/// `n` elements of `T` fit the address space: at most `isize::MAX` bytes, as
/// `slice::from_raw_parts` requires.
pub(super) fn check_len<T>(n: usize) -> Result<(), i32> {
    match n.checked_mul(core::mem::size_of::<T>()) {
        Some(bytes) if bytes <= isize::MAX as usize => Ok(()),
        _ => Err(FOCAL_ERR_OVERFLOW),
    }
}

/// Whether `[a, a + an)` and `[b, b + bn)` (in elements of `T`) overlap; empty
/// ranges overlap nothing.
pub(super) fn overlaps<T, U>(a: *const T, an: usize, b: *const U, bn: usize) -> bool {
    let (a0, b0) = (a as usize, b as usize);
    let a1 = a0.saturating_add(an.saturating_mul(core::mem::size_of::<T>()));
    let b1 = b0.saturating_add(bn.saturating_mul(core::mem::size_of::<U>()));
    an != 0 && bn != 0 && a0 < b1 && b0 < a1
}
