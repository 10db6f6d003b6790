//! TPM 2.0 quote verification.
//!
//! A quote is a `TPMS_ATTEST` signed by an attestation key (AK). Verifying
//! it means, in this order:
//!
//! 1. **AK trust**: the AK must come with a reason to trust it
//!    ([`AkTrust`]): bound by a verified CPU TEE report (Azure vTPM), an AK
//!    certificate chain to a configured root, or an operator-pinned key.
//!    Without one the quote is rejected (`TPM_AK_UNTRUSTED`), never accepted
//!    silently.
//! 2. **Signature** over the exact `TPMS_ATTEST` bytes (`TPM_QUOTE_SIGNATURE`).
//! 3. **Nonce**: `extraData` equals the expected qualifying data
//!    (`TPM_NONCE_MISMATCH`).
//! 4. **PCR digest**: the hash (with the signature's hash algorithm) of the
//!    presented PCR values, bank by bank in selection order and PCR by PCR
//!    ascending, equals `pcrDigest` (`TPM_PCR_DIGEST_MISMATCH`).
//!
//! Only then are the PCR values claims.

pub mod attest;
pub mod azure;
mod cert;
pub mod public;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

pub use attest::{ClockInfo, PcrSelection, TpmSignature, TpmsAttest};
pub use cert::CertifiedAk;
pub use public::AkPublic;

use crate::claims::{PlatformClaims, TcbStatus, TeeKind, TpmClaims};
use crate::error::EvidenceError;

type Result<T> = core::result::Result<T, EvidenceError>;

/// PCR values by TPM hash algorithm id and PCR index.
pub type PcrValues = BTreeMap<u16, BTreeMap<u32, Vec<u8>>>;

/// An AK bound by a CPU TEE report whose own verification the caller did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuBoundAk {
    pub(crate) ak: AkPublic,
    /// The TEE whose report binds the AK.
    pub tee: TeeKind,
    /// The verified report data that binds it.
    pub report_data: [u8; 64],
}

/// Why an AK is trusted. Each variant can only be built by the check that
/// justifies it (or, for [`AkTrust::Pinned`], by an explicit operator choice).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AkTrust {
    /// Bound by a verified CPU TEE report (see [`azure::HclReport::bind_ak`]).
    BoundByCpuReport(CpuBoundAk),
    /// Certified by an AK certificate chain (see [`CertifiedAk::verify`]).
    Certificate(CertifiedAk),
    /// Pinned by the operator (a key recorded at provisioning, or a cloud
    /// provider's published AK for this instance).
    Pinned(AkPublic),
}

impl AkTrust {
    /// The trusted AK.
    pub fn ak(&self) -> &AkPublic {
        match self {
            AkTrust::BoundByCpuReport(b) => &b.ak,
            AkTrust::Certificate(c) => &c.ak,
            AkTrust::Pinned(k) => k,
        }
    }

    /// A short name of the trust model, for claims and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            AkTrust::BoundByCpuReport(_) => "bound-by-cpu-report",
            AkTrust::Certificate(_) => "certificate",
            AkTrust::Pinned(_) => "pinned",
        }
    }
}

/// A verified quote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedTpmQuote {
    pub attest: TpmsAttest,
    /// The signature's (and PCR digest's) hash algorithm.
    pub signature_hash: u16,
    /// The quoted PCR values (only the selected ones).
    pub pcrs: PcrValues,
    /// [`AkTrust::kind`] of the trust that admitted the AK.
    pub ak_trust: &'static str,
}

impl VerifiedTpmQuote {
    /// `extraData`, right-padded with zeros to 64 bytes (extraData is at
    /// most 64 bytes; the loader always uses exactly 64).
    pub fn report_data(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        for (o, b) in out.iter_mut().zip(&self.attest.extra_data) {
            *o = *b;
        }
        out
    }

    /// The claims of this quote alone: TEE `Tpm`, TCB status not applicable,
    /// the quoted PCRs by bank name with hex values.
    pub fn claims(&self) -> PlatformClaims {
        let pcrs = self
            .pcrs
            .iter()
            .map(|(alg, bank)| {
                let name = attest::hash_alg_name(*alg)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("alg-0x{alg:04x}"));
                (
                    name,
                    bank.iter().map(|(i, v)| (*i, hex::encode(v))).collect(),
                )
            })
            .collect();
        PlatformClaims {
            tee: TeeKind::Tpm,
            simulated: false,
            debug: false,
            tcb_status: TcbStatus::NotApplicable,
            advisory_ids: Vec::new(),
            report_data: self.report_data(),
            tdx: None,
            snp: None,
            tpm: Some(TpmClaims {
                pcrs,
                event_log_sha256: None,
            }),
            gpus: Vec::new(),
            nvswitches: Vec::new(),
        }
    }
}

/// Verify a quote: AK trust, signature, nonce (`extraData == expected_nonce`),
/// PCR digest. `pcrs` must hold a value for every selected PCR.
pub fn verify_quote(
    attest_bytes: &[u8],
    signature: &[u8],
    pcrs: &PcrValues,
    trust: Option<&AkTrust>,
    expected_nonce: &[u8],
) -> Result<VerifiedTpmQuote> {
    let v = verify_unbound(attest_bytes, signature, pcrs, trust)?;
    if v.attest.extra_data != expected_nonce {
        return Err(EvidenceError::TpmNonceMismatch);
    }
    Ok(v)
}

/// Everything but the nonce: for callers that check `extraData` through a
/// binding afterwards (see [`crate::verify::VerifiedEvidence::check_binding`]).
pub(crate) fn verify_unbound(
    attest_bytes: &[u8],
    signature: &[u8],
    pcrs: &PcrValues,
    trust: Option<&AkTrust>,
) -> Result<VerifiedTpmQuote> {
    let trust = trust.ok_or(EvidenceError::TpmAkUntrusted("no AK trust given"))?;
    let attest = TpmsAttest::parse(attest_bytes)?;
    let sig = TpmSignature::parse(signature)?;
    trust.ak().verify(attest_bytes, &sig)?;
    let hash = sig.hash_alg();
    let alg = attest::digest_alg(hash).ok_or(EvidenceError::TpmAlgUnsupported("hash"))?;
    let mut ctx = aws_lc_rs::digest::Context::new(alg);
    let mut quoted = PcrValues::new();
    for sel in &attest.pcr_select {
        let want_len = attest::digest_alg(sel.hash_alg)
            .map(|a| a.output_len())
            .ok_or(EvidenceError::TpmAlgUnsupported("PCR bank"))?;
        let bank = pcrs.get(&sel.hash_alg);
        for i in &sel.pcrs {
            let v = bank
                .and_then(|b| b.get(i))
                .ok_or(EvidenceError::TpmPcrValues("a selected PCR has no value"))?;
            if v.len() != want_len {
                return Err(EvidenceError::TpmPcrValues("PCR value length"));
            }
            ctx.update(v);
            quoted
                .entry(sel.hash_alg)
                .or_default()
                .insert(*i, v.clone());
        }
    }
    if ctx.finish().as_ref() != attest.pcr_digest.as_slice() {
        return Err(EvidenceError::TpmPcrDigestMismatch);
    }
    Ok(VerifiedTpmQuote {
        attest,
        signature_hash: hash,
        pcrs: quoted,
        ak_trust: trust.kind(),
    })
}

/// The TPM evidence a bundle carries in `cpu.quote` (JSON) for kind
/// `tpm-quote`; an AK certificate chain, when any, goes in
/// `cpu.certificates`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpmQuoteEvidence {
    /// `TPMS_ATTEST`, hex.
    #[serde(with = "crate::hexser::vec")]
    pub attest: Vec<u8>,
    /// `TPMT_SIGNATURE`, hex.
    #[serde(with = "crate::hexser::vec")]
    pub signature: Vec<u8>,
    /// The AK: `TPM2B_PUBLIC`/`TPMT_PUBLIC` or SPKI DER, hex.
    #[serde(with = "crate::hexser::vec")]
    pub ak_public: Vec<u8>,
    /// PCR values: bank name ("sha256") to index to hex.
    pub pcrs: BTreeMap<String, BTreeMap<u32, String>>,
}

impl TpmQuoteEvidence {
    pub fn to_json(&self) -> Vec<u8> {
        // Plain strings and maps serialize infallibly.
        serde_json::to_vec(self).expect("TPM evidence serialization is infallible")
    }

    pub fn from_json(b: &[u8]) -> Result<Self> {
        serde_json::from_slice(b)
            .map_err(|_| EvidenceError::TpmAttestMalformed("TPM evidence JSON"))
    }

    /// The PCR values as [`PcrValues`].
    pub fn pcr_values(&self) -> Result<PcrValues> {
        let mut out = PcrValues::new();
        for (name, bank) in &self.pcrs {
            let alg = attest::hash_alg_from_name(name)
                .ok_or(EvidenceError::TpmAlgUnsupported("PCR bank"))?;
            let mut b = BTreeMap::new();
            for (i, h) in bank {
                let v = hex::decode(h).map_err(|_| EvidenceError::TpmPcrValues("PCR hex"))?;
                b.insert(*i, v);
            }
            out.insert(alg, b);
        }
        Ok(out)
    }
}

/// Parse an AK in any supported encoding (TPM public area or SPKI DER).
pub fn parse_ak(bytes: &[u8]) -> Result<AkPublic> {
    AkPublic::from_tpm_public(bytes).or_else(|_| AkPublic::from_spki_der(bytes))
}

/// Verify a bundle's TPM evidence with the AK trust the anchors allow: an AK
/// certificate chain (bundle certificates) to `tpm_ak_root_der`, or an AK
/// listed in `tpm_pinned_aks`. `extraData` must be the 64-byte binding.
pub(crate) fn verify_bundle_quote(
    quote: &[u8],
    certificates: &[Vec<u8>],
    anchors: &crate::verify::TrustAnchors,
    now_unix: u64,
) -> Result<VerifiedTpmQuote> {
    let ev = TpmQuoteEvidence::from_json(quote)?;
    let ak = parse_ak(&ev.ak_public)?;
    let trust = if !certificates.is_empty() {
        let root = anchors
            .tpm_ak_root_der
            .as_deref()
            .ok_or(EvidenceError::TpmAkUntrusted(
                "no AK certificate root configured",
            ))?;
        let c = CertifiedAk::verify(certificates, root, now_unix)?;
        if c.ak != ak {
            return Err(EvidenceError::TpmAkUntrusted(
                "certificate names another key",
            ));
        }
        AkTrust::Certificate(c)
    } else {
        let pinned = anchors
            .tpm_pinned_aks
            .iter()
            .filter_map(|p| parse_ak(p).ok())
            .any(|p| p == ak);
        if !pinned {
            return Err(EvidenceError::TpmAkUntrusted(
                "AK is neither certified nor pinned",
            ));
        }
        AkTrust::Pinned(ak)
    };
    let v = verify_unbound(&ev.attest, &ev.signature, &ev.pcr_values()?, Some(&trust))?;
    if v.attest.extra_data.len() != 64 {
        return Err(EvidenceError::TpmNonceMismatch);
    }
    Ok(v)
}

/// A verified composite vTPM quote (see [`verify_composite`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct CompositeTpm {
    /// The quoted PCRs, and the event log's digest when one replayed.
    pub claims: TpmClaims,
    /// [`crate::binding::tpm_ak_digest`] of the AK as carried; the caller's
    /// binding check requires the CPU report data to bind it.
    pub ak_digest: [u8; 32],
}

/// Verify a vTPM quote carried beside verified CPU evidence whose report
/// data is `cpu_report_data`:
///
/// 1. the AK is trusted as **bound by the CPU report**: its
///    [`crate::binding::tpm_ak_digest`] is returned and the report data must
///    bind it (the caller's [`crate::verify::VerifiedEvidence::check_binding`],
///    or the CA's binding check, which rebuilds the binding from the bundle);
/// 2. signature, then `extraData == cpu_report_data` (the same nonce and keys
///    the CPU evidence binds; `TPM_NONCE_MISMATCH` otherwise), then the PCR
///    digest;
/// 3. with an event log: it must parse and replay, bank by bank, to the quoted
///    value of every PCR it extends (`TPM_EVENT_LOG_MISMATCH`, naming each
///    mismatching PCR and the events that produced it).
pub fn verify_composite(
    t: &crate::bundle::TpmEvidence,
    tee: TeeKind,
    cpu_report_data: &[u8; 64],
) -> Result<CompositeTpm> {
    use tl_measured_boot::eventlog::{CompareScope, EventLog, HashAlg, Registers};
    let ev = TpmQuoteEvidence::from_json(&t.quote)?;
    let ak = parse_ak(&ev.ak_public)?;
    let trust = AkTrust::BoundByCpuReport(CpuBoundAk {
        ak,
        tee,
        report_data: *cpu_report_data,
    });
    let v = verify_quote(
        &ev.attest,
        &ev.signature,
        &ev.pcr_values()?,
        Some(&trust),
        cpu_report_data,
    )?;
    let mut claims = v.claims().tpm.unwrap_or_default();
    if !t.event_log.is_empty() {
        let log = EventLog::parse(&t.event_log)
            .map_err(|e| EvidenceError::TpmEventLogMalformed(format!("{} ({e})", e.code())))?;
        let quoted: Registers = v
            .pcrs
            .iter()
            .map(|(alg, bank)| (HashAlg(*alg), bank.clone()))
            .collect();
        log.replay()
            .compare(&quoted, CompareScope::LoggedRegisters)
            .map_err(|m| EvidenceError::TpmEventLogMismatch(m.describe("PCR")))?;
        claims.event_log_sha256 = Some(hex::encode(sha2::Sha256::digest(&t.event_log)));
    }
    Ok(CompositeTpm {
        claims,
        ak_digest: crate::binding::tpm_ak_digest(&ev.ak_public),
    })
}
