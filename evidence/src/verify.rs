//! Verification of an evidence bundle into platform claims.
//!
//! Architecture invariant: the simulated TEE's root is trusted only when the
//! caller sets [`TrustAnchors::simulated_root_der`], an explicit operator
//! option. Evidence chained to it yields claims with `simulated = true`;
//! evidence that presents a simulated root while none is configured is
//! rejected with `SIMULATED_ROOT_NOT_ALLOWED`.

use crate::bundle::{CpuEvidenceKind, EvidenceBundle, BUNDLE_VERSION};
use crate::claims::{GpuClaims, NvSwitchClaims, PlatformClaims, TcbStatus, TdxClaims, TeeKind};
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
    /// TPM AKs the operator pins (TPM public area or SPKI DER).
    pub tpm_pinned_aks: Vec<Vec<u8>>,
    /// The root (DER, P-256) that certifies TPM AKs.
    pub tpm_ak_root_der: Option<Vec<u8>>,
}

impl TrustAnchors {
    /// Trust the Intel root only.
    pub fn intel(intel_root_der: Vec<u8>) -> Self {
        TrustAnchors {
            intel_root_der: Some(intel_root_der),
            ..TrustAnchors::default()
        }
    }

    /// Trust the simulated root only (explicit operator choice).
    pub fn simulated(simulated_root_der: Vec<u8>) -> Self {
        TrustAnchors {
            simulated_root_der: Some(simulated_root_der),
            ..TrustAnchors::default()
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
    /// For SEV-SNP: the verified report, its product and chain kind.
    pub snp: Option<crate::snp::VerifiedSnp>,
    /// Identity of each verified GPU (FWID, leaf serial, opaque data), in
    /// bundle order, beside `claims.gpus`.
    pub gpu_devices: Vec<crate::nvidia::GpuDevice>,
    /// Identity of each verified NVSwitch, in bundle order, beside
    /// `claims.nvswitches`.
    pub nvswitch_devices: Vec<crate::nvidia::GpuDevice>,
    /// For composite evidence: [`crate::binding::tpm_ak_digest`] of the
    /// vTPM AK whose quote verified; the report data must bind it.
    pub tpm_ak_digest: Option<[u8; 32]>,
}

impl VerifiedEvidence {
    /// Check that the report data equals `binding` and that the binding's
    /// GPU digest and vTPM AK digest are the bundle's (`EVIDENCE_BINDING_MISMATCH` otherwise).
    pub fn check_binding(
        &self,
        binding: &crate::binding::Binding<'_>,
    ) -> Result<(), EvidenceError> {
        if binding.gpu_evidence_digest != self.gpu_evidence_digest
            || binding.tpm_ak_digest != self.tpm_ak_digest
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
/// (`UpToDate` by construction).
///
/// NVSwitch evidence: likewise, see [`verify_nvswitches`]; the claims land
/// in `claims.nvswitches`, and the binding covers them too.
///
/// GPU evidence: each entry's SPDM report is verified with its device chain
/// against [`VerifyOptions::gpu_anchors`] and must answer the nonce
/// [`crate::binding::gpu_nonce`]`(expected_nonce, index)` (see
/// [`crate::nvidia`]); the claims land in `claims.gpus`. That the CPU
/// evidence binds exactly these reports is checked by
/// [`VerifiedEvidence::check_binding`].
///
/// Composite vTPM evidence ([`EvidenceBundle::tpm`]): see
/// [`crate::tpm::verify_composite`]; its AK digest lands in
/// [`VerifiedEvidence::tpm_ak_digest`] for [`VerifiedEvidence::check_binding`]
/// and its PCRs in `claims.tpm`.
pub fn verify_bundle(
    bundle: &EvidenceBundle,
    opts: &VerifyOptions,
) -> Result<VerifiedEvidence, EvidenceError> {
    if bundle.version != BUNDLE_VERSION {
        return Err(EvidenceError::Unsupported("evidence bundle version"));
    }
    // GPUs and switches first: whatever the CPU evidence kind, no GPU-side
    // entry passes unchecked.
    let (gpus, gpu_devices) = verify_gpus(bundle, opts)?;
    let (nvswitches, nvswitch_devices) = verify_nvswitches(bundle, opts)?;
    let mut v = verify_cpu(bundle, opts)?;
    v.claims.gpus = gpus;
    v.gpu_devices = gpu_devices;
    v.claims.nvswitches = nvswitches;
    v.nvswitch_devices = nvswitch_devices;
    // A device chained to another root than NVIDIA's (the simulated one,
    // trusted only by explicit option) makes the whole platform simulated.
    if v.gpu_devices
        .iter()
        .chain(&v.nvswitch_devices)
        .any(|d| !d.nvidia_root)
    {
        v.claims.simulated = true;
    }
    if let Some(t) = &bundle.tpm {
        if bundle.cpu.kind == CpuEvidenceKind::TpmQuote {
            return Err(EvidenceError::TpmCompositeMisplaced);
        }
        let c = crate::tpm::verify_composite(t, v.claims.tee, &v.claims.report_data)?;
        v.claims.tpm = Some(c.claims);
        v.tpm_ak_digest = Some(c.ak_digest);
    }
    Ok(v)
}

fn verify_cpu(
    bundle: &EvidenceBundle,
    opts: &VerifyOptions,
) -> Result<VerifiedEvidence, EvidenceError> {
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
                gpu_devices: Vec::new(),
                nvswitch_devices: Vec::new(),
                tpm_ak_digest: None,
            });
        }
        CpuEvidenceKind::TpmQuote => {
            let v = crate::tpm::verify_bundle_quote(
                &bundle.cpu.quote,
                &bundle.cpu.certificates,
                &opts.anchors,
                opts.now_unix,
            )?;
            return Ok(VerifiedEvidence {
                claims: v.claims(),
                evidence_digest: bundle.digest(),
                gpu_evidence_digest: bundle.gpu_evidence_digest(),
                pck: None,
                snp: None,
                gpu_devices: Vec::new(),
                nvswitch_devices: Vec::new(),
                tpm_ak_digest: None,
            });
        }
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
    // Last, as in Intel's verifier: a quote that fails appraisal reports
    // that first.
    vq.quote.body.check_attributes()?;
    let mut claims = tdx_claims(&vq, tcb_status);
    claims.advisory_ids = advisory_ids;
    Ok(VerifiedEvidence {
        claims,
        evidence_digest: bundle.digest(),
        gpu_evidence_digest: bundle.gpu_evidence_digest(),
        pck: vq.pck,
        snp: None,
        gpu_devices: Vec::new(),
        nvswitch_devices: Vec::new(),
        tpm_ak_digest: None,
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

/// Verify every NVSwitch entry of `bundle`: each report with its device
/// chain against [`VerifyOptions::gpu_anchors`] (the switches' chains end at
/// the same NVIDIA device root), answering
/// [`crate::binding::nvswitch_nonce`]`(expected_nonce, index)`; see
/// [`crate::nvidia::verify_switch_report`]. Errors name the switch
/// ([`EvidenceError::NvSwitch`]).
pub fn verify_nvswitches(
    bundle: &EvidenceBundle,
    opts: &VerifyOptions,
) -> Result<(Vec<NvSwitchClaims>, Vec<crate::nvidia::GpuDevice>), EvidenceError> {
    if bundle.nvswitches.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let cpu_nonce = opts
        .expected_nonce
        .as_deref()
        .ok_or(EvidenceError::GpuNonceMissing)?;
    let mut claims = Vec::with_capacity(bundle.nvswitches.len());
    let mut devices = Vec::with_capacity(bundle.nvswitches.len());
    for (i, s) in bundle.nvswitches.iter().enumerate() {
        let named = |e: EvidenceError| EvidenceError::NvSwitch {
            index: s.index,
            source: Box::new(e),
        };
        if bundle.nvswitches.iter().take(i).any(|o| o.index == s.index) {
            return Err(named(EvidenceError::GpuIndexDuplicate));
        }
        let nonce = crate::binding::nvswitch_nonce(cpu_nonce, s.index);
        let v = crate::nvidia::verify_switch_report(
            &s.report,
            &s.certificates,
            &nonce,
            &opts.gpu_anchors,
            opts.now_unix,
        )
        .map_err(named)?;
        // TNVL mode and lock are loader-asserted: the loader emits switch
        // evidence only for switches in TNVL mode, locked (see
        // `crate::claims::NvSwitchClaims`).
        claims.push(v.switch_claims(s.index, true, true));
        devices.push(v.device(s.index));
    }
    Ok((claims, devices))
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
        nvswitches: Vec::new(),
    }
}
