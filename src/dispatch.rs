//! Backends: which ones this CPU has, the one in use (detected once and cached in an
//! atomic), forcing one, and the routing of every call to its entry points.

use core::sync::atomic::{AtomicU8, Ordering};

use crate::params::Error;
use crate::simd::kernel::{Coeffs, Mode, TargetScan, Unary};
use crate::simd::softmax::Call as SoftmaxCall;

/// A kernel implementation. Every backend gives results within the same documented
/// error bounds; they are not bit-for-bit identical to each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// One element at a time with libm: the reference every other backend is tested
    /// against. Available everywhere.
    Scalar,
    /// `wide::f32x8`, chosen at compile time: SSE2 on x86, NEON on aarch64, simd128
    /// on wasm32 (with `-C target-feature=+simd128`); elsewhere (no SIMD in `wide`)
    /// the scalar kernels. Available everywhere.
    Portable,
    /// x86_64 AVX2 + FMA, 8 lanes; needs runtime support.
    Avx2,
    /// x86_64 AVX-512F, 16 lanes; needs runtime support.
    Avx512,
}

/// Cached choice: 0 = not yet detected, otherwise `index + 1`.
static ACTIVE: AtomicU8 = AtomicU8::new(0);

// Without std, detection goes through CPUID + XGETBV (OS support of the registers).
#[cfg(all(target_arch = "x86_64", not(feature = "std")))]
cpufeatures::new!(cpuid_avx2_fma, "avx2", "fma");
#[cfg(all(target_arch = "x86_64", not(feature = "std")))]
cpufeatures::new!(cpuid_avx512f, "avx512f", "avx2", "fma");

impl Backend {
    /// Every backend, slowest first.
    pub const ALL: [Backend; 4] = [
        Backend::Scalar,
        Backend::Portable,
        Backend::Avx2,
        Backend::Avx512,
    ];

    /// A short lowercase name (`"scalar"`, `"portable"`, `"avx2"`, `"avx512"`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::Portable => "portable",
            Backend::Avx2 => "avx2",
            Backend::Avx512 => "avx512",
        }
    }

    /// f32 lanes per vector.
    pub fn lanes(self) -> usize {
        match self {
            Backend::Scalar => 1,
            Backend::Portable if cfg!(wide_simd) => 8,
            Backend::Portable => 1,
            Backend::Avx2 => 8,
            Backend::Avx512 => 16,
        }
    }

    /// Whether this CPU and build can run the backend (checked through CPUID, and
    /// XGETBV for OS support of the wide registers).
    pub fn is_available(self) -> bool {
        match self {
            Backend::Scalar | Backend::Portable => true,
            Backend::Avx2 => has_avx2_fma(),
            Backend::Avx512 => has_avx512(),
        }
    }

    /// The backends this CPU can run, slowest first.
    pub fn available() -> impl Iterator<Item = Backend> {
        Backend::ALL.into_iter().filter(|b| b.is_available())
    }

    /// The fastest backend this CPU can run.
    pub fn detect() -> Backend {
        Backend::available().last().unwrap_or(Backend::Scalar)
    }

    /// The backend calls use when not pinned: the forced one, else the detected best
    /// (detected on first use, then cached).
    pub fn active() -> Backend {
        match ACTIVE.load(Ordering::Relaxed) {
            0 => {
                let b = Backend::detect();
                ACTIVE.store(b.index() + 1, Ordering::Relaxed);
                b
            }
            i => Backend::from_index(i - 1),
        }
    }

    /// Forces every unpinned call in the process onto `backend` (`None` returns to
    /// detection). Forcing a backend this CPU lacks is an error and changes nothing.
    pub fn force(backend: Option<Backend>) -> Result<(), Error> {
        let b = match backend {
            Some(b) if !b.is_available() => return Err(Error::BackendUnavailable(b)),
            Some(b) => b,
            None => Backend::detect(),
        };
        ACTIVE.store(b.index() + 1, Ordering::Relaxed);
        Ok(())
    }

    fn index(self) -> u8 {
        match self {
            Backend::Scalar => 0,
            Backend::Portable => 1,
            Backend::Avx2 => 2,
            Backend::Avx512 => 3,
        }
    }

    fn from_index(i: u8) -> Backend {
        match i {
            1 => Backend::Portable,
            2 => Backend::Avx2,
            3 => Backend::Avx512,
            _ => Backend::Scalar,
        }
    }

    /// Elementwise `sigmoid(x)` on this backend (max error 1.5 ULP).
    pub fn sigmoid(self, x: &[f32], out: &mut [f32]) -> Result<(), Error> {
        self.run_unary(Unary::Sigmoid, x, out)
    }

    /// Elementwise `softplus(x) = ln(1 + e^x)` on this backend (max error 2 ULP).
    pub fn softplus(self, x: &[f32], out: &mut [f32]) -> Result<(), Error> {
        self.run_unary(Unary::Softplus, x, out)
    }

    /// Elementwise `ln(sigmoid(x))` on this backend (max error 2 ULP).
    pub fn log_sigmoid(self, x: &[f32], out: &mut [f32]) -> Result<(), Error> {
        self.run_unary(Unary::LogSigmoid, x, out)
    }

    fn run_unary(self, op: Unary, x: &[f32], out: &mut [f32]) -> Result<(), Error> {
        if out.len() != x.len() {
            return Err(Error::LengthMismatch {
                slice: "out",
                expected: x.len(),
                actual: out.len(),
            });
        }
        if !self.is_available() {
            return Err(Error::BackendUnavailable(self));
        }
        // SAFETY: the backend is available (checked just above).
        unsafe { (self.entries().unary)(op, x, out) };
        Ok(())
    }

    /// Runs the target scan. The caller has checked `is_available`.
    pub(crate) fn scan(self, t: &[f32]) -> TargetScan {
        debug_assert!(self.is_available());
        // SAFETY: the caller checked that the backend is available.
        unsafe { (self.entries().scan)(t) }
    }

    /// Runs the focal kernel (`None`: a hard kernel met a target it does not
    /// accept, see `kernel::focal`). The caller has checked `is_available`.
    pub(crate) fn focal(
        self,
        mode: Mode,
        soft: u8,
        c: &Coeffs,
        x: &[f32],
        t: &[f32],
        out: &mut [f32],
    ) -> Option<f64> {
        debug_assert!(self.is_available());
        // SAFETY: the caller checked that the backend is available.
        unsafe { (self.entries().focal)(mode, soft, c, x, t, out) }
    }

    /// Runs the softmax focal kernel. The caller has checked `is_available`.
    pub(crate) fn softmax(self, call: &SoftmaxCall<'_>, out: &mut [f32]) -> f64 {
        debug_assert!(self.is_available());
        // SAFETY: the caller checked that the backend is available.
        unsafe { (self.entries().softmax)(call, out) }
    }

    /// The backend's entry points. Calling them needs the backend's CPU features;
    /// on other architectures the x86 backends map to scalar (never available there).
    fn entries(self) -> Entries {
        macro_rules! entries {
            ($m:path) => {{
                use $m as m;
                Entries {
                    focal: m::focal,
                    scan: m::scan,
                    unary: m::unary,
                    softmax: m::softmax,
                }
            }};
        }
        match self {
            Backend::Scalar => entries!(crate::scalar::entry),
            Backend::Portable => entries!(crate::arch::portable::entry),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => entries!(crate::arch::x86_64::avx2_entry),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => entries!(crate::arch::x86_64::avx512_entry),
            #[cfg(not(target_arch = "x86_64"))]
            Backend::Avx2 | Backend::Avx512 => entries!(crate::scalar::entry),
        }
    }
}

/// Signature of a backend's focal kernel entry point.
type FocalEntry = unsafe fn(Mode, u8, &Coeffs, &[f32], &[f32], &mut [f32]) -> Option<f64>;

/// One backend's entry points (see `arch::entry_points!`).
struct Entries {
    focal: FocalEntry,
    scan: unsafe fn(&[f32]) -> TargetScan,
    unary: unsafe fn(Unary, &[f32], &mut [f32]),
    softmax: unsafe fn(&SoftmaxCall<'_>, &mut [f32]) -> f64,
}

#[cfg(all(target_arch = "x86_64", feature = "std"))]
fn has_avx2_fma() -> bool {
    std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
}

#[cfg(all(target_arch = "x86_64", feature = "std"))]
fn has_avx512() -> bool {
    has_avx2_fma() && std::is_x86_feature_detected!("avx512f")
}

#[cfg(all(target_arch = "x86_64", not(feature = "std")))]
fn has_avx2_fma() -> bool {
    cpuid_avx2_fma::get()
}

#[cfg(all(target_arch = "x86_64", not(feature = "std")))]
fn has_avx512() -> bool {
    cpuid_avx512f::get()
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx2_fma() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn has_avx512() -> bool {
    false
}
