//! Verification of an evidence bundle into platform claims.
//!
//! Architecture invariant: the simulated TEE's root is trusted only when the
//! caller sets [`TrustAnchors::simulated_root_der`], an explicit operator
//! option. Evidence chained to it yields claims with `simulated = true`;
//! evidence that presents a simulated root while none is configured is
//! rejected with `SIMULATED_ROOT_NOT_ALLOWED`.

use crate::bundle::{CpuEvidenceKind, EvidenceBundle, BUNDLE_VERSION};
use crate::claims::{GpuClaims, PlatformClaims, TcbStatus, TdxClaims, TeeKind};
use crate::error::EvidenceError;
use crate::tdx::verify::{verify_quote_signatures, PckInfo, VerifiedQuote};
use crate::x509::{self, P256Cert};

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
}

/// Collateral for appraising real evidence's TCB level (Intel TCB info, QE
/// identity, CRLs). No kind is defined yet, so real evidence is rejected
/// with `EVIDENCE_COLLATERAL_MISSING` by [`verify_bundle`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Collateral {}

/// Inputs of verification besides the evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The verification time, seconds since the Unix epoch.
    pub now_unix: u64,
    pub anchors: TrustAnchors,
    pub collateral: Option<Collateral>,
    /// The CA's enrollment nonce. GPU reports must answer
    /// [`crate::binding::gpu_nonce`] of it; required when the bundle
    /// carries GPU evidence (`GPU_NONCE_MISSING` otherwise).
    pub expected_nonce: Option<Vec<u8>>,
    /// Roots for GPU device chains; NVIDIA's device root by default.
    pub gpu_anchors: crate::nvidia::GpuAnchors,
}

impl VerifyOptions {
    /// Options without collateral.
    pub fn new(now_unix: u64, anchors: TrustAnchors) -> Self {
        VerifyOptions {
            now_unix,
            anchors,
            collateral: None,
            expected_nonce: None,
            gpu_anchors: crate::nvidia::GpuAnchors::nvidia(),
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
    /// Identity of each verified GPU (FWID, leaf serial, opaque data), in
    /// bundle order, beside `claims.gpus`.
    pub gpu_devices: Vec<crate::nvidia::GpuDevice>,
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
/// checks. The TCB status then comes from collateral for real evidence
/// (without collateral: `EVIDENCE_COLLATERAL_MISSING`); for evidence chained
/// to the simulated root it is [`crate::sim::SIMULATED_TCB_STATUS`]
/// (simulated platform, `UpToDate` by construction), and `simulated = true`
/// marks it.
///
/// GPU evidence: each entry's SPDM report is verified with its device chain
/// against [`VerifyOptions::gpu_anchors`] and must answer the nonce
/// [`crate::binding::gpu_nonce`]`(expected_nonce, index)` (see
/// [`crate::nvidia`]); the claims land in `claims.gpus`. That the CPU
/// evidence binds exactly these reports is checked by
/// [`VerifiedEvidence::check_binding`].
pub fn verify_bundle(
    bundle: &EvidenceBundle,
    opts: &VerifyOptions,
) -> Result<VerifiedEvidence, EvidenceError> {
    if bundle.version != BUNDLE_VERSION {
        return Err(EvidenceError::Unsupported("evidence bundle version"));
    }
    match bundle.cpu.kind {
        CpuEvidenceKind::TdxQuote => {}
        _ => return Err(EvidenceError::Unsupported("CPU evidence kind")),
    }
    let vq = verify_quote_signatures(&bundle.cpu.quote, &opts.anchors, opts.now_unix)?;
    let tcb_status = match vq.anchor {
        AnchorKind::Simulated => crate::sim::SIMULATED_TCB_STATUS,
        AnchorKind::Intel => match &opts.collateral {
            None => return Err(EvidenceError::CollateralMissing),
            Some(c) => match *c {},
        },
    };
    let mut claims = tdx_claims(&vq, tcb_status);
    let (gpus, gpu_devices) = verify_gpus(bundle, opts)?;
    claims.gpus = gpus;
    Ok(VerifiedEvidence {
        claims,
        evidence_digest: bundle.digest(),
        gpu_evidence_digest: bundle.gpu_evidence_digest(),
        pck: vq.pck,
        gpu_devices,
    })
}

/// Verify every GPU entry of `bundle` (see [`verify_bundle`]).
pub fn verify_gpus(
    bundle: &EvidenceBundle,
    opts: &VerifyOptions,
) -> Result<(Vec<GpuClaims>, Vec<crate::nvidia::GpuDevice>), EvidenceError> {
    if bundle.gpus.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let cpu_nonce = opts
        .expected_nonce
        .as_deref()
        .ok_or(EvidenceError::GpuNonceMissing)?;
    let mut claims = Vec::with_capacity(bundle.gpus.len());
    let mut devices = Vec::with_capacity(bundle.gpus.len());
    for (i, g) in bundle.gpus.iter().enumerate() {
        if bundle.gpus.iter().take(i).any(|o| o.index == g.index) {
            return Err(EvidenceError::GpuIndexDuplicate);
        }
        let nonce = crate::binding::gpu_nonce(cpu_nonce, g.index);
        let v = crate::nvidia::verify_report(
            &g.report,
            &g.certificates,
            &nonce,
            &opts.gpu_anchors,
            opts.now_unix,
        )?;
        // CC mode and devtools are loader-asserted: the loader emits GPU
        // evidence only for GPUs in CC mode "on" (see `crate::nvidia`).
        claims.push(v.claims(g.index, true, false));
        devices.push(v.device(g.index));
    }
    Ok((claims, devices))
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
