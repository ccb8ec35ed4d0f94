//! Backends: FOCAL_BACKEND_* values and the functions that query and force them.

use core::ffi::c_char;

use super::status::status;
use super::*;
use crate::Backend;

/// The backend a FOCAL_BACKEND_* value names; `None` for FOCAL_BACKEND_AUTO.
pub(super) fn backend_of(b: i32) -> Result<Option<Backend>, i32> {
    match b {
        FOCAL_BACKEND_AUTO => Ok(None),
        FOCAL_BACKEND_SCALAR => Ok(Some(Backend::Scalar)),
        FOCAL_BACKEND_PORTABLE => Ok(Some(Backend::Portable)),
        FOCAL_BACKEND_AVX2 => Ok(Some(Backend::Avx2)),
        FOCAL_BACKEND_AVX512 => Ok(Some(Backend::Avx512)),
        _ => Err(FOCAL_ERR_INVALID_ARGUMENT),
    }
}

/// The FOCAL_BACKEND_* value of a backend. Exhaustive on purpose: a new backend does
/// not compile until it has its value.
fn backend_code(b: Backend) -> i32 {
    match b {
        Backend::Scalar => FOCAL_BACKEND_SCALAR,
        Backend::Portable => FOCAL_BACKEND_PORTABLE,
        Backend::Avx2 => FOCAL_BACKEND_AVX2,
        Backend::Avx512 => FOCAL_BACKEND_AVX512,
    }
}

/// The backend unpinned calls run on (a FOCAL_BACKEND_* value >= 0): the forced one,
/// else the best this CPU has (detected on first use).
#[no_mangle]
pub extern "C" fn focal_backend_active() -> i32 {
    backend_code(Backend::active())
}

/// 1 if this CPU and build can run `backend`, 0 if not, FOCAL_ERR_INVALID_ARGUMENT for
/// a value that names no backend (FOCAL_BACKEND_AUTO included).
#[no_mangle]
pub extern "C" fn focal_backend_is_available(backend: i32) -> i32 {
    match backend_of(backend) {
        Ok(Some(b)) => i32::from(b.is_available()),
        Ok(None) | Err(_) => FOCAL_ERR_INVALID_ARGUMENT,
    }
}

/// Forces every unpinned call in the process onto `backend`; FOCAL_BACKEND_AUTO goes
/// back to detection. Returns FOCAL_OK, FOCAL_ERR_BACKEND_UNAVAILABLE (nothing
/// changes) or FOCAL_ERR_INVALID_ARGUMENT.
#[no_mangle]
pub extern "C" fn focal_backend_force(backend: i32) -> i32 {
    match backend_of(backend) {
        Ok(b) => status(Backend::force(b)),
        Err(e) => e,
    }
}

/// The lowercase name of a backend ("scalar", "portable", "avx2", "avx512") as a
/// static NUL-terminated string, or NULL for a value that names no backend.
#[no_mangle]
pub extern "C" fn focal_backend_name(backend: i32) -> *const c_char {
    let name: &'static [u8] = match backend_of(backend) {
        Ok(Some(Backend::Scalar)) => b"scalar\0",
        Ok(Some(Backend::Portable)) => b"portable\0",
        Ok(Some(Backend::Avx2)) => b"avx2\0",
        Ok(Some(Backend::Avx512)) => b"avx512\0",
        _ => return core::ptr::null(),
    };
    name.as_ptr().cast()
}
