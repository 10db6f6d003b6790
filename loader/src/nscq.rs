//! NVIDIA NVSwitches through NSCQ (`libnvidia-nscq`, the NVSwitch
//! configuration and query library), loaded at run time like NVML: a machine
//! without it gets a clear error, not a link failure.
//!
//! NSCQ's attestation API (`nscq_attestation.h`, API 2.0) is path based:
//! a session observes a path such as `/{label}/config/attestation_report`
//! and the library calls a callback once per matching device, passing the
//! value (for the report and the certificate chain, a fixed-size structure
//! by value). The nonce of the next report is set on the session first
//! (`nscq_session_set_input`). This module wraps the five calls the loader
//! needs in a safe [`Nscq`] type; [`crate::gpu`] applies the rules.
//!
//! This is the module's only `unsafe` code: resolving the library's
//! symbols, calling them with the argument types of `nscq_attestation.h`,
//! and reading the callbacks' arguments. Each callback receives, as its user
//! data, a pointer to a Rust `Vec` that lives on the caller's stack for the
//! whole `nscq_session_path_observe` call; the callbacks only copy the
//! values out (no panics: they run inside C frames).

use std::ffi::{c_char, c_void, CString, OsStr};
use std::fmt;

/// The library NSCQ is loaded from when none is configured.
pub const DEFAULT_NSCQ_LIBRARY: &str = "libnvidia-nscq.so.2";
/// `NSCQ_ARCH_LS10`: the NVSwitch generation with attestation (Hopper HGX).
pub const NSCQ_ARCH_LS10: i8 = 2;
/// Bit 0 of `/config/pcie_mode`: trusted NVLink (TNVL) mode enabled.
pub const TNVL_ENABLED_BIT: i8 = 1 << 0;
/// Bit 1 of `/config/pcie_mode`: the switch's configuration is locked.
pub const TNVL_LOCKED_BIT: i8 = 1 << 1;
/// `NSCQ_ATTESTATION_REPORT_SIZE`.
pub const REPORT_CAPACITY: usize = 0x2000;
/// `NSCQ_CERTIFICATE_CERT_CHAIN_MAX_SIZE`.
pub const CERT_CHAIN_CAPACITY: usize = 0x1400;
/// `NSCQ_SESSION_CREATE_MOUNT_DEVICES`.
const SESSION_CREATE_MOUNT_DEVICES: u32 = 1;

/// Why an NSCQ call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NscqError {
    /// The library could not be loaded or lacks a symbol.
    #[error("{library}: {detail}")]
    Load { library: String, detail: String },
    /// A call returned an error code (or its callback did).
    #[error("{call}: {}", rc_name(*.rc))]
    Call { call: String, rc: i8 },
    /// A call succeeded but its answer is unusable.
    #[error("{call}: {detail}")]
    Answer { call: String, detail: String },
}

/// `nscq_rc_t` names (`nscq_attestation.h`).
pub fn rc_name(rc: i8) -> String {
    let name = match rc {
        0 => "NSCQ_RC_SUCCESS",
        1 => "NSCQ_RC_WARNING_RDT_INIT_FAILURE",
        -1 => "NSCQ_RC_ERROR_NOT_IMPLEMENTED",
        -2 => "NSCQ_RC_ERROR_INVALID_UUID",
        -3 => "NSCQ_RC_ERROR_RESOURCE_NOT_MOUNTABLE",
        -4 => "NSCQ_RC_ERROR_OVERFLOW",
        -5 => "NSCQ_RC_ERROR_UNEXPECTED_VALUE",
        -6 => "NSCQ_RC_ERROR_UNSUPPORTED_DRV",
        -7 => "NSCQ_RC_ERROR_DRV",
        -8 => "NSCQ_RC_ERROR_TIMEOUT",
        -127 => "NSCQ_RC_ERROR_EXT",
        -128 => "NSCQ_RC_ERROR_UNSPECIFIED",
        _ => return format!("NSCQ return code {rc}"),
    };
    format!("{name} ({rc})")
}

// The C types of `nscq_attestation.h`.
#[repr(C)]
#[derive(Clone, Copy)]
struct Uuid {
    bytes: [u8; 16],
}

#[repr(C)]
struct Label {
    data: [c_char; 64],
}

#[repr(C)]
struct AttestationReport {
    report_size: u32,
    report: [u8; REPORT_CAPACITY],
}

#[repr(C)]
struct AttestationCertificate {
    cert_chain: [u8; CERT_CHAIN_CAPACITY],
    cert_chain_size: u32,
}

#[repr(C)]
struct SessionResult {
    rc: i8,
    session: *mut c_void,
}

type SessionCreateFn = unsafe extern "C" fn(u32) -> SessionResult;
type SessionDestroyFn = unsafe extern "C" fn(*mut c_void);
type PathObserveFn =
    unsafe extern "C" fn(*mut c_void, *const c_char, *const c_void, *mut c_void, u32) -> i8;
type SetInputFn = unsafe extern "C" fn(*mut c_void, u32, *mut c_void, u32) -> i8;
type UuidToLabelFn = unsafe extern "C" fn(*const Uuid, *mut Label, u32) -> i8;

/// An open NSCQ session (devices mounted), destroyed on drop.
pub struct Nscq {
    session: *mut c_void,
    destroy: SessionDestroyFn,
    observe: PathObserveFn,
    set_input: SetInputFn,
    to_label: UuidToLabelFn,
    // Declared last: dropped after `Drop::drop` destroyed the session, so
    // the function pointers above stay valid for as long as they are used.
    _lib: libloading::Library,
}

impl fmt::Debug for Nscq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nscq").finish_non_exhaustive()
    }
}

impl Drop for Nscq {
    fn drop(&mut self) {
        // SAFETY: `session` came from a successful `nscq_session_create` of
        // this library (still loaded: `_lib` drops after this) and is
        // destroyed exactly once, here.
        #[allow(unsafe_code)]
        unsafe {
            (self.destroy)(self.session)
        }
    }
}

/// One callback invocation: the device it was about and the return code.
struct Answer<T> {
    rc: i8,
    value: T,
}

extern "C" fn on_uuid(_device: *const Uuid, rc: i8, uuid: *const Uuid, user: *mut c_void) {
    // SAFETY: `user` is the `Vec<Answer<Option<Uuid>>>` that `observe` passed
    // for this path and keeps alive and unaliased during the call; `uuid` is
    // null or points to a `nscq_uuid_t` valid during the callback.
    #[allow(unsafe_code)]
    unsafe {
        let out = &mut *user.cast::<Vec<Answer<Option<Uuid>>>>();
        out.push(Answer {
            rc,
            value: uuid.as_ref().copied(),
        });
    }
}

extern "C" fn on_i8(_device: *const Uuid, rc: i8, value: i8, user: *mut c_void) {
    // SAFETY: `user` is the `Vec<Answer<i8>>` that `observe` passed.
    #[allow(unsafe_code)]
    unsafe {
        (*user.cast::<Vec<Answer<i8>>>()).push(Answer { rc, value });
    }
}

extern "C" fn on_report(
    _device: *const Uuid,
    rc: i8,
    report: AttestationReport,
    user: *mut c_void,
) {
    let n = usize::try_from(report.report_size).unwrap_or(usize::MAX);
    let value = report.report.get(..n).map(<[u8]>::to_vec);
    // SAFETY: `user` is the `Vec<Answer<Option<Vec<u8>>>>` that `observe` passed.
    #[allow(unsafe_code)]
    unsafe {
        (*user.cast::<Vec<Answer<Option<Vec<u8>>>>>()).push(Answer { rc, value });
    }
}

extern "C" fn on_certificate(
    _device: *const Uuid,
    rc: i8,
    cert: AttestationCertificate,
    user: *mut c_void,
) {
    let n = usize::try_from(cert.cert_chain_size).unwrap_or(usize::MAX);
    let value = cert.cert_chain.get(..n).map(<[u8]>::to_vec);
    // SAFETY: `user` is the `Vec<Answer<Option<Vec<u8>>>>` that `observe` passed.
    #[allow(unsafe_code)]
    unsafe {
        (*user.cast::<Vec<Answer<Option<Vec<u8>>>>>()).push(Answer { rc, value });
    }
}

/// A symbol of `lib` as a value of type `T` (a function pointer type).
///
/// # Safety
/// `T` must be the symbol's real type; the value must not be used after
/// `lib` is dropped.
#[allow(unsafe_code)]
unsafe fn symbol<T: Copy>(lib: &libloading::Library, name: &[u8]) -> Result<T, libloading::Error> {
    // SAFETY: forwarded to the caller (see above).
    unsafe { lib.get::<T>(name).map(|s| *s) }
}

impl Nscq {
    /// Load the library at `library` (a file name goes through the dynamic
    /// loader's search path) and open a session with the devices mounted.
    pub fn open(library: &OsStr) -> Result<Nscq, NscqError> {
        let name = std::path::Path::new(library).display().to_string();
        let load = |detail: String| NscqError::Load {
            library: name.clone(),
            detail,
        };
        // SAFETY: loading runs the library's initialisers; NSCQ's are those
        // of NVIDIA's driver package, which the operator installed (or the
        // configured path names). Each symbol is read with the function
        // type `nscq_attestation.h` declares for it.
        #[allow(unsafe_code)]
        let (lib, create, destroy, observe, set_input, to_label) = unsafe {
            let lib = libloading::Library::new(library).map_err(|e| load(e.to_string()))?;
            let create = symbol::<SessionCreateFn>(&lib, b"nscq_session_create\0");
            let destroy = symbol::<SessionDestroyFn>(&lib, b"nscq_session_destroy\0");
            let observe = symbol::<PathObserveFn>(&lib, b"nscq_session_path_observe\0");
            let set_input = symbol::<SetInputFn>(&lib, b"nscq_session_set_input\0");
            let to_label = symbol::<UuidToLabelFn>(&lib, b"nscq_uuid_to_label\0");
            match (create, destroy, observe, set_input, to_label) {
                (Ok(c), Ok(d), Ok(o), Ok(s), Ok(t)) => (lib, c, d, o, s, t),
                (c, d, o, s, t) => {
                    let e = [c.err(), d.err(), o.err(), s.err(), t.err()]
                        .into_iter()
                        .flatten()
                        .next()
                        .map_or_else(String::new, |e| e.to_string());
                    return Err(load(e));
                }
            }
        };
        // SAFETY: `create` has the C signature `nscq_session_result_t (uint32_t)`.
        #[allow(unsafe_code)]
        let r = unsafe { create(SESSION_CREATE_MOUNT_DEVICES) };
        if r.rc < 0 || r.session.is_null() {
            return Err(NscqError::Call {
                call: "nscq_session_create".into(),
                rc: if r.rc < 0 { r.rc } else { -128 },
            });
        }
        Ok(Nscq {
            session: r.session,
            destroy,
            observe,
            set_input,
            to_label,
            _lib: lib,
        })
    }

    /// Observe `path` with `callback`, collecting what it reports.
    fn observe<T>(&self, path: &str, callback: *const c_void) -> Result<Vec<Answer<T>>, NscqError> {
        let c_path = CString::new(path).map_err(|_| NscqError::Answer {
            call: path.into(),
            detail: "path contains a NUL byte".into(),
        })?;
        let mut out: Vec<Answer<T>> = Vec::new();
        // SAFETY: `session` is open; `c_path` is a NUL-terminated string
        // alive for the call; `callback` is one of this module's callbacks,
        // chosen by the caller to match the value type of `path` and the `T`
        // of `out`, whose address is the user data and which outlives the call.
        #[allow(unsafe_code)]
        let rc = unsafe {
            (self.observe)(
                self.session,
                c_path.as_ptr(),
                callback,
                (&raw mut out).cast::<c_void>(),
                0,
            )
        };
        if rc < 0 {
            return Err(NscqError::Call {
                call: format!("nscq_session_path_observe {path}"),
                rc,
            });
        }
        if let Some(a) = out.iter().find(|a| a.rc < 0) {
            return Err(NscqError::Call {
                call: path.into(),
                rc: a.rc,
            });
        }
        Ok(out)
    }

    /// Exactly one answer for a per-device path.
    fn one<T>(&self, path: &str, callback: *const c_void) -> Result<T, NscqError> {
        let mut out = self.observe::<T>(path, callback)?;
        match (out.pop(), out.is_empty()) {
            (Some(a), true) => Ok(a.value),
            (None, _) => Err(NscqError::Answer {
                call: path.into(),
                detail: "no device answered".into(),
            }),
            (Some(_), false) => Err(NscqError::Answer {
                call: path.into(),
                detail: format!("{} answers for one device", out.len() + 1),
            }),
        }
    }

    /// The labels of every NVSwitch NSCQ knows, in its enumeration order.
    /// A label is what per-device paths start with (`/{label}/...`).
    pub fn switch_labels(&self) -> Result<Vec<String>, NscqError> {
        let path = "/drv/nvswitch/{device}/uuid";
        let answers = self.observe::<Option<Uuid>>(path, on_uuid as *const c_void)?;
        let mut labels = Vec::with_capacity(answers.len());
        for a in answers {
            let uuid = a.value.ok_or_else(|| NscqError::Answer {
                call: path.into(),
                detail: "null UUID".into(),
            })?;
            let mut label = Label { data: [0; 64] };
            // SAFETY: both pointers are to live, properly sized `#[repr(C)]`
            // values; the signature is `nscq_rc_t (const nscq_uuid_t*,
            // nscq_label_t*, uint32_t)`.
            #[allow(unsafe_code)]
            let rc = unsafe { (self.to_label)(&uuid, &mut label, 0) };
            if rc < 0 {
                return Err(NscqError::Call {
                    call: "nscq_uuid_to_label".into(),
                    rc,
                });
            }
            labels.push(parse_label(&label.data)?);
        }
        Ok(labels)
    }

    /// `/{label}/id/arch` (`NSCQ_ARCH_*`).
    pub fn arch(&self, label: &str) -> Result<i8, NscqError> {
        self.one(&format!("/{label}/id/arch"), on_i8 as *const c_void)
    }

    /// `/{label}/config/pcie_mode`: bit 0 TNVL mode, bit 1 locked.
    pub fn tnvl_status(&self, label: &str) -> Result<i8, NscqError> {
        self.one(
            &format!("/{label}/config/pcie_mode"),
            on_i8 as *const c_void,
        )
    }

    /// `/{label}/config/certificate`: the device chain as PEM text.
    pub fn certificate_chain(&self, label: &str) -> Result<Vec<u8>, NscqError> {
        let path = format!("/{label}/config/certificate");
        self.one::<Option<Vec<u8>>>(&path, on_certificate as *const c_void)?
            .ok_or_else(|| NscqError::Answer {
                call: path,
                detail: format!("chain size above {CERT_CHAIN_CAPACITY}"),
            })
    }

    /// `/{label}/config/attestation_report` for `nonce` (set on the session
    /// first): the SPDM GET_MEASUREMENTS request and response.
    pub fn attestation_report(&self, label: &str, nonce: &[u8; 32]) -> Result<Vec<u8>, NscqError> {
        let mut input = *nonce;
        // SAFETY: `input` is 32 live bytes for the call; the signature is
        // `nscq_rc_t (nscq_session_t, uint32_t, void*, uint32_t)`.
        #[allow(unsafe_code)]
        let rc = unsafe { (self.set_input)(self.session, 0, input.as_mut_ptr().cast(), 32) };
        if rc < 0 {
            return Err(NscqError::Call {
                call: "nscq_session_set_input".into(),
                rc,
            });
        }
        let path = format!("/{label}/config/attestation_report");
        self.one::<Option<Vec<u8>>>(&path, on_report as *const c_void)?
            .ok_or_else(|| NscqError::Answer {
                call: path,
                detail: format!("report size above {REPORT_CAPACITY}"),
            })
    }
}

/// A label from `nscq_label_t`: NUL-terminated within its 64 bytes,
/// non-empty, printable ASCII without `/` (it becomes a path segment).
fn parse_label(data: &[c_char; 64]) -> Result<String, NscqError> {
    let bytes: Vec<u8> = data
        .iter()
        .map(|c| c.to_ne_bytes()[0])
        .take_while(|b| *b != 0)
        .collect();
    let bad = |detail: &str| NscqError::Answer {
        call: "nscq_uuid_to_label".into(),
        detail: detail.into(),
    };
    if bytes.len() == 64 {
        return Err(bad("label not NUL-terminated"));
    }
    if bytes.is_empty() || !bytes.iter().all(|b| b.is_ascii_graphic() && *b != b'/') {
        return Err(bad("label empty or not a path segment"));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn label(s: &[u8]) -> [c_char; 64] {
        let mut d = [0 as c_char; 64];
        for (o, b) in d.iter_mut().zip(s) {
            *o = c_char::from_ne_bytes([*b]);
        }
        d
    }

    #[test]
    fn labels_must_be_path_segments() {
        assert_eq!(parse_label(&label(b"SXM-1")).ok().as_deref(), Some("SXM-1"));
        for bad in [&b""[..], b"a/b", b"a b", b"\x7f", &[b'x'; 64]] {
            assert!(parse_label(&label(bad)).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn return_codes_are_named() {
        assert_eq!(rc_name(-8), "NSCQ_RC_ERROR_TIMEOUT (-8)");
        assert_eq!(rc_name(42), "NSCQ return code 42");
    }

    #[test]
    fn abi_sizes_match_the_header() {
        assert_eq!(std::mem::size_of::<AttestationReport>(), 4 + 0x2000);
        assert_eq!(std::mem::size_of::<AttestationCertificate>(), 0x1400 + 4);
        assert_eq!(std::mem::size_of::<Label>(), 64);
        assert_eq!(std::mem::size_of::<Uuid>(), 16);
    }

    #[test]
    fn a_missing_library_is_a_load_error() {
        let e = Nscq::open(OsStr::new("/nonexistent/libnvidia-nscq.so.2")).unwrap_err();
        assert!(matches!(e, NscqError::Load { .. }), "{e}");
    }
}
