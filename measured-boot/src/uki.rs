//! TPM PCR 11 prediction for a unified kernel image (UKI), and its PCR 4 digest.
//!
//! systemd-stub extends PCR 11 (from zero), for each UKI section present in canonical
//! order, with the digest of the section name including its NUL and then the digest of
//! the section data (`min(VirtualSize, SizeOfRawData)` bytes of a real PE). Then
//! systemd-pcrphase extends the phase strings `enter-initrd`, `leave-initrd`, `sysinit`,
//! `ready` (without NUL). `systemd-measure calculate` prints the value after each phase.

use serde::Serialize;
use sha2::{Sha256, Sha384};

use crate::digest::{Digest32, Digest48};
use crate::pe::{PeError, PeImage};

/// Measured UKI sections in canonical order (UAPI UKI specification). `.pcrsig` is never
/// measured.
pub const CANONICAL_SECTIONS: &[&str] = &[
    ".linux", ".osrel", ".cmdline", ".initrd", ".ucode", ".splash", ".dtb", ".uname", ".sbat",
    ".pcrpkey",
];

/// The boot phases `systemd-measure` 252 predicts by default.
pub const PHASES: &[&str] = &["enter-initrd", "leave-initrd", "sysinit", "ready"];

/// Errors from UKI processing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UkiError {
    /// Malformed PE.
    #[error(transparent)]
    Pe(#[from] PeError),
    /// A section name not in [`CANONICAL_SECTIONS`] was given for prediction.
    #[error("{0} is not a measured UKI section")]
    UnknownSection(String),
    /// A measured section appears twice.
    #[error("UKI section {0} appears twice")]
    DuplicateSection(String),
    /// A section's data lies outside the file.
    #[error("UKI section {0} data lies outside the file")]
    SectionOutOfFile(String),
}

impl UkiError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Pe(e) => e.code(),
            Self::UnknownSection(_) => "UKI_UNKNOWN_SECTION",
            Self::DuplicateSection(_) => "UKI_DUPLICATE_SECTION",
            Self::SectionOutOfFile(_) => "UKI_SECTION_OUT_OF_FILE",
        }
    }
}

/// A measured section's digests.
#[derive(Debug, Clone, Serialize)]
pub struct SectionDigest {
    /// Section name.
    pub name: String,
    /// Bytes measured.
    pub size: usize,
    /// SHA-256 of the data.
    pub sha256: Digest32,
    /// SHA-384 of the data.
    pub sha384: Digest48,
}

/// PCR 11 after one phase (the phase path as `systemd-measure` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct PhaseValue {
    /// e.g. `enter-initrd:leave-initrd`.
    pub phase: String,
    /// PCR 11 in the SHA-256 bank.
    pub sha256: Digest32,
    /// PCR 11 in the SHA-384 bank.
    pub sha384: Digest48,
}

/// The PCR 11 prediction.
#[derive(Debug, Clone, Serialize)]
pub struct Pcr11Prediction {
    /// Sections in the order measured.
    pub sections: Vec<SectionDigest>,
    /// PCR 11 after the sections, before any phase.
    pub after_sections_sha256: Digest32,
    /// PCR 11 after the sections, SHA-384 bank.
    pub after_sections_sha384: Digest48,
    /// Values after each phase.
    pub phases: Vec<PhaseValue>,
}

struct Bank<D: sha2::Digest> {
    pcr: Vec<u8>,
    _d: core::marker::PhantomData<D>,
}

impl<D: sha2::Digest> Bank<D> {
    fn new() -> Self {
        Self {
            pcr: vec![0u8; <D as sha2::Digest>::output_size()],
            _d: core::marker::PhantomData,
        }
    }
    fn extend_data(&mut self, data: &[u8]) {
        let d = D::digest(data);
        let mut h = D::new();
        h.update(&self.pcr);
        h.update(d);
        self.pcr = h.finalize().to_vec();
    }
}

fn d32(v: &[u8]) -> Digest32 {
    let mut a = [0u8; 32];
    a.copy_from_slice(v.get(..32).unwrap_or(&[0u8; 32]));
    Digest32(a)
}

fn d48(v: &[u8]) -> Digest48 {
    let mut a = [0u8; 48];
    a.copy_from_slice(v.get(..48).unwrap_or(&[0u8; 48]));
    Digest48(a)
}

/// Predict PCR 11 from section contents given by name (any order; they are measured in
/// canonical order). Names must be measured sections; `.pcrsig` is rejected.
pub fn predict_pcr11(sections: &[(&str, &[u8])]) -> Result<Pcr11Prediction, UkiError> {
    for (i, (name, _)) in sections.iter().enumerate() {
        if !CANONICAL_SECTIONS.contains(name) {
            return Err(UkiError::UnknownSection((*name).to_owned()));
        }
        if sections
            .get(..i)
            .is_some_and(|before| before.iter().any(|(n, _)| n == name))
        {
            return Err(UkiError::DuplicateSection((*name).to_owned()));
        }
    }
    let mut b256 = Bank::<Sha256>::new();
    let mut b384 = Bank::<Sha384>::new();
    let mut measured = Vec::new();
    for canon in CANONICAL_SECTIONS {
        let Some((_, data)) = sections.iter().find(|(n, _)| n == canon) else {
            continue;
        };
        let mut name = canon.as_bytes().to_vec();
        name.push(0);
        for b in [&name[..], data] {
            b256.extend_data(b);
            b384.extend_data(b);
        }
        measured.push(SectionDigest {
            name: (*canon).to_owned(),
            size: data.len(),
            sha256: Digest32::sha256(data),
            sha384: Digest48::sha384(data),
        });
    }
    let after_sections_sha256 = d32(&b256.pcr);
    let after_sections_sha384 = d48(&b384.pcr);
    let mut phases = Vec::new();
    let mut path = String::new();
    for p in PHASES {
        b256.extend_data(p.as_bytes());
        b384.extend_data(p.as_bytes());
        if !path.is_empty() {
            path.push(':');
        }
        path.push_str(p);
        phases.push(PhaseValue {
            phase: path.clone(),
            sha256: d32(&b256.pcr),
            sha384: d48(&b384.pcr),
        });
    }
    Ok(Pcr11Prediction {
        sections: measured,
        after_sections_sha256,
        after_sections_sha384,
        phases,
    })
}

/// The measured sections of a UKI PE, `min(VirtualSize, SizeOfRawData)` bytes each.
/// Sections that systemd-stub does not measure (`.text`, `.pcrsig`, ...) are skipped.
pub fn uki_sections<'a>(pe: &PeImage<'a>) -> Result<Vec<(String, &'a [u8])>, UkiError> {
    let mut out: Vec<(String, &'a [u8])> = Vec::new();
    for s in pe.sections() {
        if !CANONICAL_SECTIONS.contains(&s.name.as_str()) {
            continue;
        }
        if out.iter().any(|(n, _)| *n == s.name) {
            return Err(UkiError::DuplicateSection(s.name.clone()));
        }
        let data = pe
            .section_data(s)
            .ok_or_else(|| UkiError::SectionOutOfFile(s.name.clone()))?;
        out.push((s.name.clone(), data));
    }
    Ok(out)
}

/// PCR 11 and PCR 4 predictions for a UKI file.
#[derive(Debug, Clone, Serialize)]
pub struct UkiPrediction {
    /// SHA-256 of the UKI file.
    pub uki_sha256: Digest32,
    /// PCR 4 event digest (EV_EFI_BOOT_SERVICES_APPLICATION): Authenticode SHA-256.
    pub pcr4_event_sha256: Digest32,
    /// Authenticode SHA-384 (the RTMR1 event digest on TDX).
    pub authenticode_sha384: Digest48,
    /// PCR 11.
    pub pcr11: Pcr11Prediction,
}

/// Predict PCR 11 and the PCR 4 event digest of a UKI PE file.
pub fn predict_uki(uki: &[u8]) -> Result<UkiPrediction, UkiError> {
    let pe = PeImage::parse(uki)?;
    let secs = uki_sections(&pe)?;
    let refs: Vec<(&str, &[u8])> = secs.iter().map(|(n, d)| (n.as_str(), *d)).collect();
    Ok(UkiPrediction {
        uki_sha256: Digest32::sha256(uki),
        pcr4_event_sha256: pe.authenticode_sha256()?,
        authenticode_sha384: pe.authenticode_sha384()?,
        pcr11: predict_pcr11(&refs)?,
    })
}
