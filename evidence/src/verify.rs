//! Verification of an evidence bundle into platform claims.
//!
//! Architecture invariant: the simulated TEE's root is trusted only when the
//! caller sets [`TrustAnchors::simulated_root_der`], an explicit operator
//! option. Evidence chained to it yields claims with `simulated = true`;
//! evidence that presents a simulated root while none is configured is
//! rejected with `SIMULATED_ROOT_NOT_ALLOWED`.

use crate::bundle::{CpuEvidenceKind, EvidenceBundle, BUNDLE_VERSION};
use crate::claims::{PlatformClaims, TcbStatus, TdxClaims, TeeKind};
use crate::error::EvidenceError;
use crate::tdx::verify::{verify_quote_signatures, PckInfo, VerifiedQuote};
use crate::x509::{self, P256Cert};
use std::sync::Arc;

pub use crate::dcap::TdxCollateral;

/// The roots a verifier trusts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustAnchors {
    /// The Intel SGX Root CA certificate (DER).
    pub intel_root_der: Option<Vec<u8>>,
    /// The simulated TEE's root certificate (DER). Set it only when the
    /// operator explicitly enables simulated evidence; never by default.
    pub simulated_root_der: Option<Vec<u8>>,
}

impl TrustAnchors {
    /// Trust the Intel root only.
    pub fn intel(intel_root_der: Vec<u8>) -> Self {
        TrustAnchors {
            intel_root_der: Some(intel_root_der),
            simulated_root_der: None,
        }
    }

    /// Trust the simulated root only (explicit operator choice).
    pub fn simulated(simulated_root_der: Vec<u8>) -> Self {
        TrustAnchors {
            intel_root_der: None,
            simulated_root_der: Some(simulated_root_der),
        }
    }

    /// Which anchor `top` (the last certificate of a chain) is.
    pub(crate) fn match_top(
        &self,
        top: &P256Cert,
        now_unix: u64,
    ) -> Result<AnchorKind, EvidenceError> {
        if self.intel_root_der.is_none() && self.simulated_root_der.is_none() {
            return Err(EvidenceError::NoTrustAnchor);
        }
        if let Some(der) = &self.intel_root_der {
            let anchor = P256Cert::parse(der, EvidenceError::BadTrustAnchor("Intel root"))?;
            if x509::is_anchor(top, &anchor, now_unix)? {
                return Ok(AnchorKind::Intel);
            }
        }
        if let Some(der) = &self.simulated_root_der {
            let anchor = P256Cert::parse(der, EvidenceError::BadTrustAnchor("simulated root"))?;
            if x509::is_anchor(top, &anchor, now_unix)? {
                return Ok(AnchorKind::Simulated);
            }
        } else if x509::subject_contains(top, crate::sim::SIM_ROOT_CN.as_bytes()) {
            return Err(EvidenceError::SimulatedRootNotAllowed);
        }
        Err(EvidenceError::CertUntrustedRoot)
    }
}

/// Which trust anchor a chain ended at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnchorKind {
    /// The Intel SGX Root CA.
    Intel,
    /// The simulated TEE's root.
    Simulated,
    /// An AMD ARK shipped with this crate (SEV-SNP).
    Amd,
}

/// Collateral for appraising real evidence's TCB level.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Collateral {
    /// Intel DCAP collateral (TCB info, QE identity, CRLs and their issuer
    /// chains) for the quote's FMSPC, parsed once and shared: a verifier
    /// keeps one per FMSPC and clones the `Arc`.
    Tdx(Arc<TdxCollateral>),
}

impl Collateral {
    /// Wrap parsed DCAP collateral.
    pub fn tdx(c: TdxCollateral) -> Self {
        Collateral::Tdx(Arc::new(c))
    }
}

/// Inputs of verification besides the evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The verification time, seconds since the Unix epoch.
    pub now_unix: u64,
    pub anchors: TrustAnchors,
    pub collateral: Option<Collateral>,
}

impl VerifyOptions {
    /// Options without collateral.
    pub fn new(now_unix: u64, anchors: TrustAnchors) -> Self {
        VerifyOptions {
            now_unix,
            anchors,
            collateral: None,
        }
    }
}

/// The result of verification: claims and what they were derived from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedEvidence {
    pub claims: PlatformClaims,
    /// [`EvidenceBundle::digest`] of the verified bundle.
    pub evidence_digest: [u8; 32],
    /// [`EvidenceBundle::gpu_evidence_digest`] of the verified bundle.
    pub gpu_evidence_digest: [u8; 32],
    /// For TDX: the PCK leaf's SGX extension, when present.
    pub pck: Option<PckInfo>,
    /// For SEV-SNP: the verified report, its product and chain kind.
    pub snp: Option<crate::snp::VerifiedSnp>,
}

impl VerifiedEvidence {
    /// Check that the report data equals `binding` and that the binding's
    /// GPU digest is the bundle's (`EVIDENCE_BINDING_MISMATCH` otherwise).
    pub fn check_binding(
        &self,
        binding: &crate::binding::Binding<'_>,
    ) -> Result<(), EvidenceError> {
        if binding.gpu_evidence_digest != self.gpu_evidence_digest
            || binding.report_data() != self.claims.report_data
        {
            return Err(EvidenceError::BindingMismatch);
        }
        Ok(())
    }
}

/// Verify a bundle's CPU evidence and produce its claims.
///
/// TDX quotes: see [`crate::tdx::verify`] for the signature and chain
/// checks. The TCB status and advisory IDs then come from DCAP collateral
/// for real evidence ([`crate::dcap`]; without collateral:
/// `EVIDENCE_COLLATERAL_MISSING`). For evidence chained to the simulated
/// root, `simulated = true` marks the claims; with collateral (simulated
/// collateral from [`crate::sim::SimTee::tdx_collateral`]) the same DCAP
/// appraisal runs with the simulated root as the collateral's anchor, and
/// without it the status is [`crate::sim::SIMULATED_TCB_STATUS`]
/// (`UpToDate` by construction). GPU evidence is not verified yet, so a bundle that carries any
/// is rejected as unsupported rather than passed unchecked.
pub fn verify_bundle(
    bundle: &EvidenceBundle,
    opts: &VerifyOptions,
) -> Result<VerifiedEvidence, EvidenceError> {
    if bundle.version != BUNDLE_VERSION {
        return Err(EvidenceError::Unsupported("evidence bundle version"));
    }
    if !bundle.gpus.is_empty() {
        return Err(EvidenceError::Unsupported("GPU evidence verification"));
    }
    match bundle.cpu.kind {
        CpuEvidenceKind::TdxQuote => {}
        CpuEvidenceKind::SnpReport => {
            let v = crate::snp::verify_snp_evidence(
                &bundle.cpu.quote,
                &bundle.cpu.certificates,
                &[],
                &opts.anchors,
                opts.now_unix,
            )?;
            return Ok(VerifiedEvidence {
                claims: crate::snp::snp_claims(&v),
                evidence_digest: bundle.digest(),
                gpu_evidence_digest: bundle.gpu_evidence_digest(),
                pck: None,
                snp: Some(v),
            });
        }
        _ => return Err(EvidenceError::Unsupported("CPU evidence kind")),
    }
    let vq = verify_quote_signatures(&bundle.cpu.quote, &opts.anchors, opts.now_unix)?;
    let (tcb_status, advisory_ids) = match vq.anchor {
        AnchorKind::Simulated => match &opts.collateral {
            None => (crate::sim::SIMULATED_TCB_STATUS, Vec::new()),
            Some(Collateral::Tdx(c)) => {
                // Simulated collateral (crate::sim) through the same DCAP
                // appraisal as real quotes, anchored at the simulated root.
                let root = opts
                    .anchors
                    .simulated_root_der
                    .as_deref()
                    .ok_or(EvidenceError::NoTrustAnchor)?;
                let e = appraise_tdx(&vq, c, root, opts.now_unix)?;
                (e.status, e.advisory_ids)
            }
        },
        AnchorKind::Amd => return Err(EvidenceError::TdxPckChain("AMD root for a TDX quote")),
        AnchorKind::Intel => match &opts.collateral {
            None => return Err(EvidenceError::CollateralMissing),
            Some(Collateral::Tdx(c)) => {
                let root = opts
                    .anchors
                    .intel_root_der
                    .as_deref()
                    .ok_or(EvidenceError::NoTrustAnchor)?;
                let e = appraise_tdx(&vq, c, root, opts.now_unix)?;
                (e.status, e.advisory_ids)
            }
        },
    };
    let mut claims = tdx_claims(&vq, tcb_status);
    claims.advisory_ids = advisory_ids;
    Ok(VerifiedEvidence {
        claims,
        evidence_digest: bundle.digest(),
        gpu_evidence_digest: bundle.gpu_evidence_digest(),
        pck: vq.pck,
        snp: None,
    })
}

/// Appraise a signature-checked TDX quote against DCAP collateral (see
/// [`crate::dcap`]), with `intel_root_der` as the collateral's anchor.
pub fn appraise_tdx(
    vq: &VerifiedQuote,
    collateral: &TdxCollateral,
    intel_root_der: &[u8],
    now_unix: u64,
) -> Result<crate::dcap::TcbEvaluation, EvidenceError> {
    let pck = vq.pck.as_ref().ok_or(EvidenceError::TdxPckChain(
        "PCK certificate has no Intel SGX extension",
    ))?;
    let b = &vq.quote.body;
    let input = crate::dcap::DcapInput {
        td: Some(crate::dcap::TdTcbInput {
            tee_tcb_svn: &b.tee_tcb_svn,
            tee_tcb_svn2: b.tee_tcb_svn2.as_ref(),
            mrsignerseam: &b.mrsignerseam,
            seam_attributes: &b.seam_attributes,
        }),
        pck_chain_der: &vq.pck_chain_der,
        pck,
        qe_report: &vq.quote.qe_report,
    };
    crate::dcap::appraise(&input, collateral, intel_root_der, now_unix)
}

/// Claims of a verified TDX quote, with the given TCB status.
pub fn tdx_claims(vq: &VerifiedQuote, tcb_status: TcbStatus) -> PlatformClaims {
    let b = &vq.quote.body;
    PlatformClaims {
        tee: TeeKind::Tdx,
        simulated: vq.anchor == AnchorKind::Simulated,
        debug: b.debug(),
        tcb_status,
        advisory_ids: Vec::new(),
        report_data: b.report_data,
        tdx: Some(TdxClaims {
            mrtd: b.mrtd,
            rtmr: b.rtmr.to_vec(),
            mrconfigid: b.mrconfigid,
            mrowner: b.mrowner,
            mrownerconfig: b.mrownerconfig,
            td_attributes: b.td_attributes_u64(),
            xfam: b.xfam_u64(),
            tee_tcb_svn: b.tee_tcb_svn,
            mrservicetd: b.mrservicetd.map(hex::encode),
        }),
        snp: None,
        tpm: None,
        gpus: Vec::new(),
    }
}
