//! Intel TDX runtime measurement: extending RTMR3.
//!
//! Every event the loader records (configuration, order, components,
//! failure) is a SHA-384 digest extended into RTMR3, so that a later quote
//! shows it and a verifier can replay the canonical event log against it.
//!
//! Interface: the kernel's TSM measurement file
//! `/sys/class/misc/tdx_guest/measurements/rtmr3:sha384` (Linux 6.16+).
//! Writing exactly 48 bytes at offset 0 in one `write` extends RTMR3 with
//! them (the kernel refuses any other offset or length, so the file is
//! opened without `O_APPEND` and written once). The directory is a
//! parameter so tests can point it at a plain file.
//!
//! Older kernels (Intel's and distributions' TDX trees before 6.16) have no
//! measurement file but a `TDX_CMD_EXTEND_RTMR` ioctl on `/dev/tdx_guest`:
//! `struct tdx_extend_rtmr_req { __u8 data[48]; __u8 index; }`, defined as
//! `_IOR('T', 3, ...)` (and `_IOW` by the "v3" driver; both are tried, in
//! that order). When the configuration names no measurement directory and
//! the default one is absent, the ioctl on the device is used instead.
//!
//! Kernels without configfs-tsm: [`get_report0`] takes the TDREPORT with
//! `TDX_CMD_GET_REPORT0` (`_IOWR('T', 1, struct tdx_report_req { __u8
//! reportdata[64]; __u8 tdreport[1024]; })`, mainline since 6.2) and
//! [`crate::qgs`] has the host's quote generation service quote it.
//!
//! The three ioctl calls are the module's only `unsafe` code; with no usable
//! interface the loader halts with `EVIDENCE_COLLECT_FAILED` rather than run
//! unmeasured.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cel::Sha384Value;
use crate::config::{LoaderConfig, TeeChoice};
use crate::halt::{Halt, HaltCode, HaltContext};

/// The kernel's TDX measurement register directory.
pub const DEFAULT_MEASUREMENTS_DIR: &str = "/sys/class/misc/tdx_guest/measurements";
/// The RTMR3 file in that directory.
pub const RTMR3_FILE: &str = "rtmr3:sha384";
/// The TDX guest device (ioctls).
pub const GUEST_DEVICE: &str = "/dev/tdx_guest";
/// The firmware's CC event log (ACPI CCEL table data).
pub const CCEL_DATA: &str = "/sys/firmware/acpi/tables/data/CCEL";

/// Replay a CCEL event log and compare it with RTMR0..=2 of `quote` (RTMR3
/// is the loader's own, explained by its canonical event log). Every
/// mismatching register is named with the events that produced it; any
/// mismatch or malformed log is an `EVIDENCE_COLLECT_FAILED` halt: a TD whose
/// firmware log does not explain its registers does not go on.
pub fn check_ccel(ccel: &[u8], quote: &[u8]) -> Result<String, Halt> {
    use tl_measured_boot::eventlog::ccel::rtmr_registers;
    use tl_measured_boot::eventlog::{CompareScope, EventLog};
    let fail = |d: String| Halt::new(HaltCode::EvidenceCollectFailed, d);
    let q = tl_evidence::tdx::Quote::parse(quote)
        .map_err(|e| fail(format!("quote: {e} ({})", e.code())))?;
    let log = EventLog::parse_ccel(ccel).map_err(|e| fail(format!("CCEL: {e} ({})", e.code())))?;
    let replay = log
        .replay_ccel()
        .map_err(|e| fail(format!("CCEL: {e} ({})", e.code())))?;
    let firmware_rtmrs = q.body.rtmr.get(..3).unwrap_or(&[]);
    replay
        .compare(
            &rtmr_registers(firmware_rtmrs),
            CompareScope::LoggedRegisters,
        )
        .map_err(|m| {
            fail(format!(
                "CCEL does not replay to the quote's RTMRs (TDX_CCEL_MISMATCH, {}): {}",
                m.code(),
                m.describe("RTMR")
            ))
        })?;
    Ok(format!(
        "CCEL: {} events replay to the quote's RTMR0-2",
        log.events.len()
    ))
}

/// Why an extend failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TdxError {
    #[error("RTMR3 interface {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("RTMR3 interface {path} took {written} of 48 bytes")]
    ShortWrite { path: PathBuf, written: usize },
    #[error("TDX guest device {path}: {source}")]
    Device {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{op} on {path}: {errno}")]
    Ioctl {
        op: &'static str,
        path: PathBuf,
        errno: nix::errno::Errno,
    },
}

impl TdxError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Io { .. } => "TDX_RTMR_IO",
            Self::ShortWrite { .. } => "TDX_RTMR_SHORT_WRITE",
            Self::Device { .. } => "TDX_DEVICE_IO",
            Self::Ioctl { op, .. } if *op == "TDX_CMD_GET_REPORT0" => "TDX_GET_REPORT0",
            Self::Ioctl { .. } => "TDX_RTMR_IOCTL",
        }
    }
}

impl From<TdxError> for Halt {
    fn from(e: TdxError) -> Halt {
        Halt::new(
            HaltCode::EvidenceCollectFailed,
            format!("{} ({})", e, e.code()),
        )
    }
}

/// Extends RTMR3 through the TSM measurement file, or the older ioctl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtmr3Extender {
    path: PathBuf,
    via: Via,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    MeasurementFile,
    Ioctl,
}

impl Rtmr3Extender {
    /// The extender for `measurements_dir/rtmr3:sha384`.
    pub fn new(measurements_dir: &Path) -> Self {
        Rtmr3Extender {
            path: measurements_dir.join(RTMR3_FILE),
            via: Via::MeasurementFile,
        }
    }

    /// The extender through `TDX_CMD_EXTEND_RTMR` on `device`.
    pub fn ioctl(device: &Path) -> Self {
        Rtmr3Extender {
            path: device.to_path_buf(),
            via: Via::Ioctl,
        }
    }

    /// The file written to (or the device the ioctl goes to).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this extender uses the ioctl.
    pub fn uses_ioctl(&self) -> bool {
        self.via == Via::Ioctl
    }

    /// Check that the interface exists and opens for writing, without
    /// extending anything.
    pub fn probe(&self) -> Result<(), TdxError> {
        self.open().map(drop)
    }

    fn open(&self) -> Result<std::fs::File, TdxError> {
        // No create (the kernel provides the file), no append (the kernel
        // refuses offsets other than 0), no truncate (not supported there).
        OpenOptions::new()
            .write(true)
            .open(&self.path)
            .map_err(|source| TdxError::Io {
                path: self.path.clone(),
                source,
            })
    }

    /// Extend RTMR3 with `digest`: one 48-byte write at offset 0 (or one
    /// `TDX_CMD_EXTEND_RTMR` with index 3).
    pub fn extend(&self, digest: &Sha384Value) -> Result<(), TdxError> {
        if self.via == Via::Ioctl {
            return extend_rtmr_ioctl(&self.path, 3, digest);
        }
        let mut f = self.open()?;
        let written = f.write(digest).map_err(|source| TdxError::Io {
            path: self.path.clone(),
            source,
        })?;
        if written != digest.len() {
            return Err(TdxError::ShortWrite {
                path: self.path.clone(),
                written,
            });
        }
        Ok(())
    }
}

/// The extender the configuration asks for: for `tee = "tdx"` RTMR3 under
/// `tdx_measurements_dir` (default [`DEFAULT_MEASUREMENTS_DIR`]); for
/// `tee = "sim"` only when `tdx_measurements_dir` is set (the simulated
/// TEE's event log is otherwise the only record); none for other TEEs.
pub fn extender_for(cfg: &LoaderConfig) -> Option<Rtmr3Extender> {
    match (cfg.tee, &cfg.tdx_measurements_dir) {
        (TeeChoice::Tdx, Some(dir)) => Some(Rtmr3Extender::new(dir)),
        (TeeChoice::Tdx, None) => {
            let sysfs = Rtmr3Extender::new(Path::new(DEFAULT_MEASUREMENTS_DIR));
            if !sysfs.path().exists() && Path::new(GUEST_DEVICE).exists() {
                Some(Rtmr3Extender::ioctl(Path::new(GUEST_DEVICE)))
            } else {
                Some(sysfs)
            }
        }
        (TeeChoice::Sim, Some(dir)) => Some(Rtmr3Extender::new(dir)),
        _ => None,
    }
}

/// Probe the configured extender and install it as `ctx`'s hardware
/// extender. A missing or unwritable interface is an
/// `EVIDENCE_COLLECT_FAILED` halt: the loader does not run unmeasured.
pub fn install(cfg: &LoaderConfig, ctx: &mut HaltContext) -> Result<(), Halt> {
    let Some(ext) = extender_for(cfg) else {
        return Ok(());
    };
    ext.probe()?;
    ctx.set_extender(move |d| ext.extend(d).map_err(|e| format!("{e} ({})", e.code())));
    Ok(())
}

// ---- /dev/tdx_guest ioctls -------------------------------------------------

/// The kernel uapi layouts (`include/uapi/linux/tdx-guest.h`).
mod uapi {
    /// `struct tdx_report_req`.
    #[repr(C)]
    pub struct ReportReq {
        pub reportdata: [u8; 64],
        pub tdreport: [u8; crate::qgs::TDREPORT_LEN],
    }
    const _: () = assert!(core::mem::size_of::<ReportReq>() == 1088);

    /// `struct tdx_extend_rtmr_req` (pre-6.16 trees).
    #[repr(C)]
    pub struct ExtendRtmrReq {
        pub data: [u8; 48],
        pub index: u8,
    }
    const _: () = assert!(core::mem::size_of::<ExtendRtmrReq>() == 49);

    /// The macros generate `unsafe fn`s, called only from [`super::get_report0`]
    /// and [`super::extend_rtmr_ioctl`].
    #[allow(unsafe_code)]
    pub mod ioctl {
        use super::{ExtendRtmrReq, ReportReq};
        nix::ioctl_readwrite!(get_report0, b'T', 1, ReportReq);
        nix::ioctl_read!(extend_rtmr_r, b'T', 3, ExtendRtmrReq);
        nix::ioctl_write_ptr!(extend_rtmr_w, b'T', 3, ExtendRtmrReq);
    }
}

fn open_device(path: &Path) -> Result<std::fs::File, TdxError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| TdxError::Device {
            path: path.to_path_buf(),
            source,
        })
}

/// `TDX_CMD_EXTEND_RTMR` on `device`: `_IOR` first, `_IOW` (the "v3"
/// driver's number) when the first is not known (`ENOTTY`).
pub fn extend_rtmr_ioctl(device: &Path, index: u8, digest: &Sha384Value) -> Result<(), TdxError> {
    use std::os::fd::AsRawFd;
    let f = open_device(device)?;
    let mut req = uapi::ExtendRtmrReq {
        data: *digest,
        index,
    };
    let fd = f.as_raw_fd();
    // SAFETY: `fd` is an open descriptor owned by `f`, alive for both calls;
    // `req` is a live, exclusively borrowed `ExtendRtmrReq` of exactly the
    // size both request numbers encode (49 bytes); the driver reads (and for
    // `_IOR` may write) only within it.
    #[allow(unsafe_code)]
    let r = unsafe {
        match uapi::ioctl::extend_rtmr_r(fd, &mut req) {
            Err(nix::errno::Errno::ENOTTY) => uapi::ioctl::extend_rtmr_w(fd, &req),
            other => other,
        }
    };
    r.map(drop).map_err(|errno| TdxError::Ioctl {
        op: "TDX_CMD_EXTEND_RTMR",
        path: device.to_path_buf(),
        errno,
    })
}

/// The TDREPORT binding `report_data`, through `TDX_CMD_GET_REPORT0` on
/// `device` (for quoting by the host's QGS, see [`crate::qgs`]).
pub fn get_report0(
    device: &Path,
    report_data: &[u8; 64],
) -> Result<[u8; crate::qgs::TDREPORT_LEN], TdxError> {
    use std::os::fd::AsRawFd;
    let f = open_device(device)?;
    let mut req = uapi::ReportReq {
        reportdata: *report_data,
        tdreport: [0; crate::qgs::TDREPORT_LEN],
    };
    // SAFETY: `f` owns the descriptor for the call; `req` is a live,
    // exclusively borrowed `ReportReq` of the 1088 bytes the request number
    // encodes; the driver reads `reportdata` and writes `tdreport` only.
    #[allow(unsafe_code)]
    let r = unsafe { uapi::ioctl::get_report0(f.as_raw_fd(), &mut req) };
    r.map_err(|errno| TdxError::Ioctl {
        op: "TDX_CMD_GET_REPORT0",
        path: device.to_path_buf(),
        errno,
    })?;
    Ok(req.tdreport)
}

/// Kernels without configfs-tsm: the TDREPORT from `device`, quoted by the
/// QGS at `qgs`; the quote must bind `report_data`.
pub fn quote_via_qgs(
    device: &Path,
    qgs: &crate::qgs::QgsAddress,
    report_data: &[u8; 64],
    timeout: std::time::Duration,
) -> Result<Vec<u8>, Halt> {
    let report = get_report0(device, report_data)?;
    crate::qgs::quote_report(qgs, &report, report_data, timeout).map_err(|e| {
        Halt::new(
            HaltCode::EvidenceCollectFailed,
            format!("quote from the QGS at {qgs}: {e} ({})", e.code()),
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::halt::HaltMode;

    fn ctx() -> HaltContext {
        HaltContext::with_streams(
            HaltMode::Service,
            Box::new(std::io::sink()),
            Box::new(std::io::sink()),
        )
    }

    #[test]
    fn extend_writes_exactly_the_digest_at_offset_zero() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join(RTMR3_FILE);
        std::fs::write(&f, b"").unwrap();
        let e = Rtmr3Extender::new(d.path());
        assert_eq!(e.path(), f);
        let a: Sha384Value = [0xa5; 48];
        e.extend(&a).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), a.to_vec());
        // Each extend is its own 48-byte write at offset 0.
        let mut b: Sha384Value = [0; 48];
        b[47] = 1;
        e.extend(&b).unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b.to_vec());
    }

    #[test]
    fn missing_or_unwritable_interface_fails() {
        let d = tempfile::tempdir().unwrap();
        let e = Rtmr3Extender::new(d.path());
        // Missing: never created by the loader.
        let err = e.extend(&[1; 48]).unwrap_err();
        assert_eq!(err.code(), "TDX_RTMR_IO");
        assert!(!e.path().exists());
        assert_eq!(Halt::from(err).code, HaltCode::EvidenceCollectFailed);
        // A directory in its place cannot be opened for writing.
        std::fs::create_dir(e.path()).unwrap();
        assert_eq!(e.probe().unwrap_err().code(), "TDX_RTMR_IO");
    }

    fn cfg(tee: &str, dir: Option<&Path>) -> LoaderConfig {
        let mut t = format!(
            r#"
ca_url = "https://127.0.0.1:1"
ca_root = "/nonexistent/ca.pem"
tee = "{tee}"
allow_simulation = true
order_source_dir = "/nonexistent/order"
deadline_seconds = 1
key_mode = "ephemeral"
report_out = "/nonexistent/report.json"
publish_dir = "/nonexistent/publish"
output_dir = "/nonexistent/out"
"#
        );
        if let Some(d) = dir {
            t.push_str(&format!(
                "tdx_measurements_dir = {:?}\n",
                d.display().to_string()
            ));
        }
        LoaderConfig::from_toml(&t).unwrap()
    }

    #[test]
    fn ioctls_on_a_non_device_fail_with_their_codes() {
        // A regular file does not know the TDX ioctls: ENOTTY, never success.
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("tdx_guest");
        std::fs::write(&f, b"").unwrap();
        let e = Rtmr3Extender::ioctl(&f);
        assert!(e.uses_ioctl());
        let err = e.extend(&[1; 48]).unwrap_err();
        assert_eq!(err.code(), "TDX_RTMR_IOCTL");
        assert!(err.to_string().contains("ENOTTY"), "{err}");
        let err = get_report0(&f, &[0; 64]).unwrap_err();
        assert_eq!(err.code(), "TDX_GET_REPORT0");
        let h = quote_via_qgs(
            &f,
            &crate::qgs::QgsAddress::default(),
            &[0; 64],
            std::time::Duration::from_secs(1),
        )
        .unwrap_err();
        assert_eq!(h.code, HaltCode::EvidenceCollectFailed);
        assert!(h.detail.contains("TDX_GET_REPORT0"), "{}", h.detail);
        // A missing device is an I/O error.
        let err = get_report0(&d.path().join("absent"), &[0; 64]).unwrap_err();
        assert_eq!(err.code(), "TDX_DEVICE_IO");
    }

    #[test]
    fn ccel_checks_against_the_quote() {
        let data = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/testdata/tpm-eventlog/go-tdx-guest-ccel/"
        );
        let quote = std::fs::read(format!("{data}cos-113-tdx-quote.dat")).unwrap();
        let ccel = std::fs::read(format!("{data}ccel_data.dat")).unwrap();
        let ok = check_ccel(&ccel, &quote).unwrap();
        assert!(ok.contains("replay to the quote's RTMR0-2"), "{ok}");
        // A flipped digest byte in the log (the offset the measured-boot
        // tests use): the mismatch names its register.
        let mut bad = ccel.clone();
        bad[18101 - 60] ^= 1;
        let h = check_ccel(&bad, &quote).unwrap_err();
        assert_eq!(h.code, HaltCode::EvidenceCollectFailed);
        assert!(
            h.detail.contains("TDX_CCEL_MISMATCH") || h.detail.contains("CCEL:"),
            "{}",
            h.detail
        );
        // Another quote's RTMRs.
        let mut other = quote.clone();
        let rtmr0 = 48 + 136 + 48 * 4; // header; body: TCB SVN..XFAM, MRTD..MROWNERCONFIG
        other[rtmr0] ^= 1;
        let h = check_ccel(&ccel, &other).unwrap_err();
        assert!(h.detail.contains("RTMR0 (events "), "{}", h.detail);
        // Garbage.
        assert!(check_ccel(b"garbage", &quote).is_err());
        assert!(check_ccel(&ccel, b"garbage").is_err());
    }

    #[test]
    fn extender_choice_by_tee() {
        let d = Path::new("/x/measurements");
        assert_eq!(
            extender_for(&cfg("tdx", None)).unwrap().path(),
            Path::new("/sys/class/misc/tdx_guest/measurements/rtmr3:sha384")
        );
        assert_eq!(
            extender_for(&cfg("tdx", Some(d))).unwrap().path(),
            d.join(RTMR3_FILE)
        );
        assert_eq!(extender_for(&cfg("sim", None)), None);
        assert_eq!(
            extender_for(&cfg("sim", Some(d))).unwrap().path(),
            d.join(RTMR3_FILE)
        );
    }

    /// The whole pipeline with `tee = "tdx"` and its work, publish and
    /// output directories under `base`.
    fn run_tdx(base: &Path, measurements: &Path) -> (Result<(), Halt>, Vec<String>, HaltContext) {
        let t = format!(
            r#"
ca_url = "https://127.0.0.1:1"
ca_root = "{b}/ca.pem"
tee = "tdx"
tdx_measurements_dir = "{m}"
order_source_dir = "{b}/order"
deadline_seconds = 1
work_base = "{b}/work"
tmpfs = false
key_mode = "ephemeral"
report_out = "{b}/report.json"
publish_dir = "{b}/publish"
output_dir = "{b}/out"
"#,
            b = base.display(),
            m = measurements.display()
        );
        let cfg = LoaderConfig::from_toml(&t).unwrap();
        let mut c = ctx();
        let mut stages = Vec::new();
        let mut progress = |stage: &str, _: &str| stages.push(stage.to_owned());
        let r = crate::pipeline::run(&cfg, &mut c, &mut progress).map(|_| ());
        (r, stages, c)
    }

    #[test]
    fn pipeline_halts_first_when_rtmr3_is_missing() {
        let d = tempfile::tempdir().unwrap();
        let (r, stages, c) = run_tdx(d.path(), &d.path().join("measurements"));
        assert_eq!(r.unwrap_err().code, HaltCode::EvidenceCollectFailed);
        // Nothing happened: no stage, no event, no directory, no launch.
        assert!(stages.is_empty());
        assert!(c.event_log.records().is_empty());
        let left: Vec<_> = std::fs::read_dir(d.path()).unwrap().collect();
        assert!(left.is_empty());
    }

    #[test]
    fn pipeline_extends_the_first_event_into_rtmr3() {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("measurements");
        std::fs::create_dir(&m).unwrap();
        std::fs::write(m.join(RTMR3_FILE), b"").unwrap();
        let (r, _, c) = run_tdx(d.path(), &m);
        // It goes on until the CA root (absent here) stops it.
        assert_eq!(r.unwrap_err().code, HaltCode::ConfigInvalid);
        assert_eq!(c.event_log.records().len(), 1);
        // What was written is the event's digest: replaying it from zero
        // gives the software register.
        let replay = crate::cel::extend(&[0u8; 48], &read48(&m.join(RTMR3_FILE)));
        assert_eq!(replay, c.event_log.register());
    }

    fn read48(p: &Path) -> Sha384Value {
        std::fs::read(p).unwrap().try_into().unwrap()
    }

    #[test]
    fn install_then_extend_through_the_halt_context() {
        let d = tempfile::tempdir().unwrap();
        let mut c = ctx();
        // Missing interface: refused at install, nothing installed.
        let h = install(&cfg("tdx", Some(d.path())), &mut c).unwrap_err();
        assert_eq!(h.code, HaltCode::EvidenceCollectFailed);
        assert_eq!(c.extend_register(&[9; 48]), Ok(()));
        // Present: every extend reaches the file.
        std::fs::write(d.path().join(RTMR3_FILE), b"").unwrap();
        install(&cfg("tdx", Some(d.path())), &mut c).unwrap();
        let ev = c
            .event_log
            .record(crate::cel::Event::order_accepted(&[3; 32]));
        c.extend_register(&ev).unwrap();
        assert_eq!(
            std::fs::read(d.path().join(RTMR3_FILE)).unwrap(),
            ev.to_vec()
        );
        // The interface disappears: the extend fails (the pipeline halts).
        std::fs::remove_file(d.path().join(RTMR3_FILE)).unwrap();
        assert!(c.extend_register(&ev).unwrap_err().contains("TDX_RTMR_IO"));
    }
}
