//! The evidence bundle: what the loader sends to the CA, as JSON.
//!
//! ```json
//! { "version": 1,
//!   "cpu": { "kind": "tdx-quote", "quote": "<base64>", "certificates": ["<base64 DER>", ...] },
//!   "gpus": [ { "index": 0, "report": "<base64>", "certificates": ["<base64 DER>", ...] } ],
//!   "nvswitches": [ { "index": 0, "report": "<base64>", "certificates": ["<base64 DER>", ...] } ],
//!   "tpm": { "quote": "<base64 of TPM quote JSON>", "event_log": "<base64>" } }
//! ```
//!
//! `nvswitches` is present only when the CVM has NVSwitches (multi-GPU
//! protected PCIe): one SPDM report per switch, taken through NVIDIA's NSCQ
//! library, in the GPUs' format. A bundle without switches encodes exactly
//! as before the field existed.
//!
//! `tpm` is present only for composite evidence: a vTPM quote beside the
//! CPU TEE's report, its AK bound into the CPU report data (see
//! [`crate::binding`]) and its `extraData` equal to that report data. A
//! bundle without it encodes exactly as before the field existed.
//!
//! The bundle is only a container: nothing in it is trusted until a verifier
//! has checked the CPU evidence's signature chain and the report-data binding
//! (see [`crate::binding`]), which covers every GPU report through
//! [`EvidenceBundle::gpu_evidence_digest`].

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::binding;

/// The only bundle version this crate reads or writes.
pub const BUNDLE_VERSION: u32 = 1;

/// Which CPU evidence a bundle carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum CpuEvidenceKind {
    /// An Intel TDX quote (v4 or v5), as returned by configfs-tsm `outblob`.
    TdxQuote,
    /// An AMD SEV-SNP attestation report.
    SnpReport,
    /// A TPM 2.0 quote (TPMS_ATTEST and signature).
    TpmQuote,
}

/// CPU evidence as collected in the guest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuEvidence {
    pub kind: CpuEvidenceKind,
    #[serde(with = "b64")]
    pub quote: Vec<u8>,
    /// Certificates supplied beside the evidence (SNP extended report table,
    /// TPM AK certificate), leaf first. TDX quotes carry their own chain.
    #[serde(default, with = "b64_list")]
    pub certificates: Vec<Vec<u8>>,
}

/// One GPU's attestation report and its device certificate chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpuEvidence {
    pub index: u32,
    #[serde(with = "b64")]
    pub report: Vec<u8>,
    #[serde(default, with = "b64_list")]
    pub certificates: Vec<Vec<u8>>,
}

/// One NVSwitch's attestation report (SPDM, the GPUs' layout) and its
/// device certificate chain (DER, leaf first).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NvSwitchEvidence {
    /// The switch's position in the loader's NSCQ enumeration; its SPDM
    /// nonce is [`binding::nvswitch_nonce`] of the enrollment nonce and this index.
    pub index: u32,
    #[serde(with = "b64")]
    pub report: Vec<u8>,
    #[serde(default, with = "b64_list")]
    pub certificates: Vec<Vec<u8>>,
}

/// Everything the guest proves about itself at enrollment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceBundle {
    pub version: u32,
    pub cpu: CpuEvidence,
    #[serde(default)]
    pub gpus: Vec<GpuEvidence>,
    /// NVSwitch evidence; empty (and not encoded) without switches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nvswitches: Vec<NvSwitchEvidence>,
    /// A vTPM quote beside the CPU evidence (composite evidence).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tpm: Option<TpmEvidence>,
}

/// A vTPM quote carried beside the CPU evidence, with the firmware's TCG
/// event log that explains its PCRs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmEvidence {
    /// [`crate::tpm::TpmQuoteEvidence`] JSON (TPMS_ATTEST, signature, AK
    /// public area, PCR values).
    #[serde(with = "b64")]
    pub quote: Vec<u8>,
    /// The firmware's TCG event log (`binary_bios_measurements`); empty when
    /// the guest has none. When present the verifier replays it against the
    /// quoted PCRs.
    #[serde(default, with = "b64")]
    pub event_log: Vec<u8>,
}

impl EvidenceBundle {
    /// A bundle of the current version with `cpu` evidence only (no GPU
    /// reports, no vTPM quote); set the others with struct update syntax.
    pub fn new(cpu: CpuEvidence) -> Self {
        EvidenceBundle {
            version: BUNDLE_VERSION,
            cpu,
            gpus: Vec::new(),
            nvswitches: Vec::new(),
            tpm: None,
        }
    }

    /// The digest of all GPU-side evidence that the CPU report data binds
    /// ([`binding::device_evidence_digest`] over each GPU's and then each
    /// NVSwitch's report, in bundle order; without switches this is
    /// [`binding::gpu_evidence_digest`] of the GPU reports).
    pub fn gpu_evidence_digest(&self) -> [u8; 32] {
        binding::device_evidence_digest(
            self.gpus.iter().map(|g| g.report.as_slice()),
            self.nvswitches.iter().map(|s| s.report.as_slice()),
        )
    }

    /// [`binding::tpm_ak_digest`] of the composite TPM quote's AK, as carried;
    /// `None` without TPM evidence or when its JSON does not parse (the
    /// verifier rejects such a bundle anyway).
    pub fn tpm_ak_digest(&self) -> Option<[u8; 32]> {
        let t = self.tpm.as_ref()?;
        let ev = crate::tpm::TpmQuoteEvidence::from_json(&t.quote).ok()?;
        Some(binding::tpm_ak_digest(&ev.ak_public))
    }

    /// The report data a CPU report must carry for this bundle to bind the CA
    /// `nonce`, the guest's signing key (SubjectPublicKeyInfo DER) and its
    /// encryption key: [`binding::Binding`] over them and this bundle's GPU,
    /// NVSwitch and vTPM evidence. The CA checks it before issuing; a
    /// reviewer checks it against a published certificate.
    pub fn expected_report_data(
        &self,
        nonce: &[u8],
        signing_public_key: &[u8],
        encryption_public_key: &[u8],
    ) -> [u8; 64] {
        binding::Binding {
            nonce,
            signing_public_key,
            encryption_public_key,
            gpu_evidence_digest: self.gpu_evidence_digest(),
            tpm_ak_digest: self.tpm_ak_digest(),
        }
        .report_data()
    }

    /// SHA-256 over the bundle's JSON encoding as produced by [`Self::to_json`];
    /// this is the "evidence digest" that certificates and run reports name.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.to_json()).into()
    }

    /// The bundle's JSON encoding (struct field order, no whitespace).
    pub fn to_json(&self) -> Vec<u8> {
        // Serializing plain structs of integers, enums, strings and byte
        // vectors to JSON cannot fail.
        serde_json::to_vec(self).expect("bundle serialization is infallible")
    }
}

mod b64 {
    use base64::{engine::general_purpose::STANDARD, Engine};
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(b))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        STANDARD.decode(s).map_err(D::Error::custom)
    }
}

mod b64_list {
    use base64::{engine::general_purpose::STANDARD, Engine};
    use serde::{de::Error, ser::SerializeSeq, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for b in v {
            seq.serialize_element(&STANDARD.encode(b))?;
        }
        seq.end()
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        v.into_iter()
            .map(|s| STANDARD.decode(s).map_err(D::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_digest_covers_gpus() {
        let mut b = EvidenceBundle::new(CpuEvidence {
            kind: CpuEvidenceKind::TdxQuote,
            quote: vec![1, 2, 3],
            certificates: vec![],
        });
        let back: EvidenceBundle = serde_json::from_slice(&b.to_json()).expect("round trip");
        assert_eq!(back, b);
        let (d0, g0) = (b.digest(), b.gpu_evidence_digest());
        b.gpus.push(GpuEvidence {
            index: 0,
            report: vec![9],
            certificates: vec![],
        });
        assert_ne!(d0, b.digest());
        assert_ne!(g0, b.gpu_evidence_digest());
        // No switches: the field is not encoded at all.
        assert!(!String::from_utf8_lossy(&b.to_json()).contains("nvswitches"));
        let (d1, g1) = (b.digest(), b.gpu_evidence_digest());
        b.nvswitches.push(NvSwitchEvidence {
            index: 0,
            report: vec![7],
            certificates: vec![],
        });
        assert_ne!(d1, b.digest());
        assert_ne!(g1, b.gpu_evidence_digest());
        let back: EvidenceBundle = serde_json::from_slice(&b.to_json()).expect("round trip");
        assert_eq!(back, b);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let j = r#"{"version":1,"cpu":{"kind":"tdx-quote","quote":"AQID"},"extra":1}"#;
        assert!(serde_json::from_str::<EvidenceBundle>(j).is_err());
    }
}
