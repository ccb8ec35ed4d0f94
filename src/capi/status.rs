//! Status codes: the Rust API's errors as FOCAL_ERR_* values, and their text.

use core::ffi::c_char;

use super::*;
use crate::Error;

/// The code of an error kind. Exhaustive on purpose: a new kind of error does not
/// compile until it has its code (and its line in focal_status_message).
pub(super) fn code(e: Error) -> i32 {
    match e {
        Error::LengthMismatch { .. } => FOCAL_ERR_LENGTH_MISMATCH,
        Error::InvalidTarget { .. } => FOCAL_ERR_INVALID_TARGET,
        Error::InvalidGamma(_) => FOCAL_ERR_INVALID_GAMMA,
        Error::InvalidAlpha(_) => FOCAL_ERR_INVALID_ALPHA,
        Error::InvalidNormalizer(_) => FOCAL_ERR_INVALID_NORMALIZER,
        Error::BackendUnavailable(_) => FOCAL_ERR_BACKEND_UNAVAILABLE,
        Error::ShapeMismatch { .. } => FOCAL_ERR_SHAPE_MISMATCH,
        Error::NoClasses => FOCAL_ERR_NO_CLASSES,
        Error::InvalidLabel { .. } => FOCAL_ERR_INVALID_LABEL,
        Error::InvalidClassAlpha { .. } => FOCAL_ERR_INVALID_CLASS_ALPHA,
    }
}

/// FOCAL_OK or the error's code.
pub(super) fn status(r: Result<(), Error>) -> i32 {
    match r {
        Ok(()) => FOCAL_OK,
        Err(e) => code(e),
    }
}

/// A static NUL-terminated English description of a status code ("ok", "null
/// pointer", ...); "unknown status" for a value that is none.
#[no_mangle]
pub extern "C" fn focal_status_message(status: i32) -> *const c_char {
    let m: &'static [u8] = match status {
        FOCAL_OK => b"ok\0",
        FOCAL_ERR_NULL_POINTER => b"null pointer\0",
        FOCAL_ERR_LENGTH_MISMATCH => b"length mismatch\0",
        FOCAL_ERR_INVALID_TARGET => b"invalid target: must be in [0, 1] or -1\0",
        FOCAL_ERR_INVALID_GAMMA => b"invalid gamma: must be finite and >= 0\0",
        FOCAL_ERR_INVALID_ALPHA => b"invalid alpha: must be in [0, 1]\0",
        FOCAL_ERR_INVALID_NORMALIZER => b"invalid normaliser: must be finite and > 0\0",
        FOCAL_ERR_BACKEND_UNAVAILABLE => b"backend not available on this CPU or build\0",
        FOCAL_ERR_SHAPE_MISMATCH => b"shape mismatch\0",
        FOCAL_ERR_NO_CLASSES => b"no classes\0",
        FOCAL_ERR_INVALID_LABEL => b"invalid label: must be in [0, C) or -100\0",
        FOCAL_ERR_INVALID_CLASS_ALPHA => b"invalid class alpha: must be finite and >= 0\0",
        FOCAL_ERR_OVERFLOW => b"length overflows the address space\0",
        FOCAL_ERR_INVALID_ARGUMENT => b"invalid enum argument\0",
        FOCAL_ERR_OVERLAP => b"an output overlaps another slice\0",
        FOCAL_ERR_UNKNOWN => b"unknown error\0",
        _ => b"unknown status\0",
    };
    m.as_ptr().cast()
}
