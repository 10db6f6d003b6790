//! Intel DCAP appraisal with collateral: CRLs, TCB info, QE identity and
//! TCB-level matching for TDX quotes (v4, v5) and SGX quotes (v3).
//!
//! [`appraise`] runs after the quote's own signatures and PCK chain have
//! been checked ([`crate::tdx::verify`], [`sgx`]). Order of checks, the
//! first failure wins:
//!
//! 1. collateral signatures, checked once per Intel root and remembered in
//!    the [`TdxCollateral`]: each issuer chain (TCB signing, PCK CRL issuer)
//!    links up to the Intel root (`TDX_COLLATERAL_CHAIN`, `CERT_*`); the root
//!    CA CRL is signed by the root and the PCK CRL by its issuer
//!    (`TDX_CRL_INVALID`); no collateral signer is listed in the root CA CRL
//!    (`TDX_COLLATERAL_SIGNER_REVOKED`); the TCB info and QE identity
//!    signatures verify over their exact JSON bytes
//!    (`TDX_TCB_INFO_SIGNATURE`, `TDX_QE_IDENTITY_SIGNATURE`);
//! 2. every time window at `now`: the issuer chains' certificates, TCB info
//!    and QE identity issueDate..nextUpdate, both CRLs'
//!    thisUpdate..nextUpdate (`TDX_COLLATERAL_EXPIRED`);
//! 3. revocation of the quote's PCK chain: the PCK CRL must be the CRL of
//!    the PCK leaf's issuer (`TDX_CRL_INVALID`), and neither the leaf (PCK
//!    CRL) nor its CA (root CA CRL) may be listed (`TDX_PCK_REVOKED`);
//! 4. the collateral applies to the quote: TEE kind
//!    (`TDX_COLLATERAL_MISMATCH`), FMSPC (`TDX_FMSPC_MISMATCH`), PCE-ID;
//! 5. the QE report against the QE identity: MRSIGNER, ISVPRODID,
//!    MISCSELECT and ATTRIBUTES under their masks
//!    (`TDX_QE_IDENTITY_MISMATCH`), and its ISVSVN selects the QE TCB level;
//! 6. TDX only: MRSIGNERSEAM and SEAMATTRIBUTES (all zero, as the identity's) against the TDX
//!    module identity of the module's major version (TEE_TCB_SVN[1]; the
//!    top-level `tdxModule` when it is 0) (`TDX_MODULE_MISMATCH`), and the
//!    module's TCB level by its minor SVN (TEE_TCB_SVN[0]);
//! 7. the platform TCB level: the first level, in Intel's order (best
//!    first by SGX components, PCESVN, TDX components, whatever the JSON
//!    order), whose SGX components are all <= the PCK certificate's, whose
//!    PCESVN is <= the PCK's, and (TDX) whose TDX components are all <=
//!    TEE_TCB_SVN (from index 2 when the module major version is > 0,
//!    since the module identity covers bytes 0 and 1). No level:
//!    `TDX_TCB_LEVEL_NOT_FOUND`. A matched QE or module level whose status
//!    its structure cannot carry: `TDX_COLLATERAL_MALFORMED`;
//! 8. the statuses converge as Intel's quote verification library does:
//!    the module level's status into the platform level's, then the QE's:
//!    an `OutOfDate` component turns `UpToDate` / `SWHardeningNeeded` into
//!    `OutOfDate` and `ConfigurationNeeded` /
//!    `ConfigurationAndSWHardeningNeeded` into
//!    `OutOfDateConfigurationNeeded`; a `Revoked` one gives `Revoked`.
//!    Advisory IDs: platform, then module, then QE, without repeats; the
//!    level is dated by its older component. For TD 1.5 bodies steps 6 and
//!    7 run again for TEE_TCB_SVN2 (the TCB running now), and a TD launched
//!    `OutOfDate[ConfigurationNeeded]` whose current TCB is not out of date
//!    gets `TDRelaunchAdvised[ConfigurationNeeded]` where Intel's
//!    `checkForRelaunch` advises it too (the module level made the launch
//!    out of date and TEE_TCB_SVN2 meets the latest levels);
//! 9. `Revoked` at launch or now is `TDX_TCB_REVOKED`: never acceptable,
//!    so not a status.
//!
//! Steps 6 to 8 run on dcap-qvl's model of the collateral and with its
//! rules: the module identity by `TcbInfo::tdx_module_identity`, the module
//! level by `TdxModuleTcbLevel::shortfall`, the platform level by
//! `TcbLevel::shortfalls` (empty: the level is met), the statuses and
//! advisories by `TcbStatusWithAdvisory::merge`. What dcap-qvl keeps private
//! or lacks (the relaunch table, Intel's narrower relaunch rule, the
//! per-structure status rules, the QE identity and SEAM checks where Intel
//! is stricter) is written here and says so where it is.
//!
//! The result is data ([`TcbEvaluation`]); whether a status is acceptable is
//! policy ([`crate::accept::AcceptPolicy`]).

pub mod collateral;
pub mod crl;
pub mod reference;
pub mod sgx;
pub mod time;

use aws_lc_rs::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

pub use collateral::{CollateralParts, DcapTee, TdxCollateral};

use crate::claims::TcbStatus;
use crate::error::EvidenceError;
use crate::tdx::verify::PckInfo;
use crate::tdx::QeReport;
use crate::x509::{self, P256Cert};
use collateral::{status_claim, TcbInfo, TdxModule};
use dcap_qvl::qe_identity::QeTcbLevel;
use dcap_qvl::tcb_info::{SvnComponent, SvnShortfall, TcbLevel, TdxModuleTcbLevel};
use dcap_qvl::TcbStatusWithAdvisory;

type Result<T> = core::result::Result<T, EvidenceError>;

/// The outcome of TCB appraisal: statuses and advisories as data.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TcbEvaluation {
    /// The converged status (platform, QE and TDX module).
    pub status: TcbStatus,
    /// Intel security advisory IDs that apply, without repeats.
    pub advisory_ids: Vec<String>,
    /// The matching platform TCB level's status.
    pub platform_status: TcbStatus,
    /// The QE identity TCB level's status.
    pub qe_status: TcbStatus,
    /// The TDX module identity TCB level's status (module major version > 0).
    pub tdx_module_status: Option<TcbStatus>,
    /// The matching platform level's tcbDate.
    pub tcb_date: String,
    /// The TCB info's tcbEvaluationDataNumber.
    pub tcb_evaluation_data_number: u32,
}

/// What the TD report contributes to TCB appraisal.
#[derive(Clone, Copy, Debug)]
pub struct TdTcbInput<'a> {
    pub tee_tcb_svn: &'a [u8; 16],
    /// TD 1.5 bodies only.
    pub tee_tcb_svn2: Option<&'a [u8; 16]>,
    pub mrsignerseam: &'a [u8; 48],
    pub seam_attributes: &'a [u8; 8],
}

/// Everything from a signature-checked quote that appraisal needs.
#[derive(Clone, Copy, Debug)]
pub struct DcapInput<'a> {
    /// `Some` for TDX quotes, `None` for SGX quotes.
    pub td: Option<TdTcbInput<'a>>,
    /// The PCK chain as verified, DER, leaf first, root last.
    pub pck_chain_der: &'a [Vec<u8>],
    pub pck: &'a PckInfo,
    pub qe_report: &'a QeReport,
}

/// Appraise a signature-checked quote against collateral at `now_unix`,
/// with `intel_root_der` as the only trust anchor of the collateral. See
/// the module documentation for the checks and their order.
pub fn appraise(
    input: &DcapInput<'_>,
    col: &TdxCollateral,
    intel_root_der: &[u8],
    now_unix: u64,
) -> Result<TcbEvaluation> {
    let root = P256Cert::parse(intel_root_der, EvidenceError::BadTrustAnchor("Intel root"))?;
    check_collateral(col, &root, intel_root_der, now_unix)?;
    check_pck_revocation(input.pck_chain_der, col)?;
    evaluate(input, col)
}

/// Check collateral on its own, as a fetch does before keeping it: every
/// chain to `intel_root_der`, both CRLs signed by their issuers, the TCB info
/// and QE identity signatures, and every validity window at `now_unix`.
pub fn verify_collateral(col: &TdxCollateral, intel_root_der: &[u8], now_unix: u64) -> Result<()> {
    let root = P256Cert::parse(intel_root_der, EvidenceError::BadTrustAnchor("Intel root"))?;
    check_collateral(col, &root, intel_root_der, now_unix)
}

/// Steps 1 and 2: collateral signatures (once per root) and time windows.
fn check_collateral(col: &TdxCollateral, root: &P256Cert, root_der: &[u8], now: u64) -> Result<()> {
    let chains = [
        &col.tcb_info_chain,
        &col.qe_identity_chain,
        &col.pck_crl_chain,
    ];
    // Intel's QVL: each issuer chain is its signer and the root, no more.
    if chains.iter().any(|c| c.len() != 2) {
        return Err(EvidenceError::TdxCollateralChain(
            "an issuer chain is not its signer and the root (2 certificates)",
        ));
    }
    if col.signatures_checked_for.get().map(Vec::as_slice) == Some(root_der) {
        root.check_validity(now)?;
        for c in chains.iter().flat_map(|c| c.iter()) {
            c.check_validity(now)?;
        }
    } else {
        for c in chains {
            x509::check_links(c, now).map_err(chain_err)?;
            let top = c
                .last()
                .ok_or(EvidenceError::TdxCollateralChain("empty chain"))?;
            if !x509::is_anchor(top, root, now).map_err(chain_err)? {
                return Err(EvidenceError::TdxCollateralChain(
                    "issuer chain does not end at the Intel root",
                ));
            }
        }
        col.root_ca_crl
            .check_signed_by(root, "root CA CRL is not signed by the Intel root")?;
        let crl_ca = col
            .pck_crl_chain
            .first()
            .ok_or(EvidenceError::TdxCollateralChain("empty chain"))?;
        col.pck_crl
            .check_signed_by(crl_ca, "PCK CRL is not signed by its issuer")?;
        for c in chains {
            for cert in c.iter().take(c.len().saturating_sub(1)) {
                if col.root_ca_crl.lists(cert) {
                    return Err(EvidenceError::TdxCollateralSignerRevoked);
                }
            }
        }
        let tcb_signer = col
            .tcb_info_chain
            .first()
            .ok_or(EvidenceError::TdxCollateralChain("empty chain"))?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &tcb_signer.public_key)
            .verify(&col.tcb_info.raw, &col.tcb_info.signature)
            .map_err(|_| EvidenceError::TdxTcbInfoSignature)?;
        let qe_signer = col
            .qe_identity_chain
            .first()
            .ok_or(EvidenceError::TdxCollateralChain("empty chain"))?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &qe_signer.public_key)
            .verify(&col.qe_identity.raw, &col.qe_identity.signature)
            .map_err(|_| EvidenceError::TdxQeIdentitySignature)?;
        // Every signature above is independent of the time: remember them.
        let _ = col.signatures_checked_for.set(root_der.to_vec());
    }

    let t = &col.tcb_info.parsed;
    if now < t.issue_date || now > t.next_update {
        return Err(EvidenceError::TdxCollateralExpired("TCB info"));
    }
    let q = &col.qe_identity.parsed;
    if now < q.issue_date || now > q.next_update {
        return Err(EvidenceError::TdxCollateralExpired("QE identity"));
    }
    col.root_ca_crl.check_time(now, "root CA CRL")?;
    col.pck_crl.check_time(now, "PCK CRL")?;
    Ok(())
}

fn chain_err(e: EvidenceError) -> EvidenceError {
    match e {
        EvidenceError::TdxPckChain(d) => EvidenceError::TdxCollateralChain(d),
        other => other,
    }
}

/// Step 3: the PCK leaf against the PCK CRL, its CA(s) against the root CRL.
fn check_pck_revocation(chain_der: &[Vec<u8>], col: &TdxCollateral) -> Result<()> {
    let bad = || EvidenceError::TdxPckChain("certificate does not decode");
    let chain = chain_der
        .iter()
        .map(|d| P256Cert::parse(d, bad()))
        .collect::<Result<Vec<_>>>()?;
    let (Some(leaf), Some(ca)) = (chain.first(), chain.get(1)) else {
        return Err(EvidenceError::TdxPckChain("chain shorter than leaf and CA"));
    };
    let crl_ca = col
        .pck_crl_chain
        .first()
        .ok_or(EvidenceError::TdxCollateralChain("empty chain"))?;
    if leaf.issuer_der != col.pck_crl.issuer_der
        || ca.subject_der != crl_ca.subject_der
        || ca.spki_der != crl_ca.spki_der
    {
        return Err(EvidenceError::TdxCrlInvalid(
            "PCK CRL is not from the PCK certificate's issuer",
        ));
    }
    if col.pck_crl.lists(leaf) {
        return Err(EvidenceError::TdxPckRevoked("PCK certificate"));
    }
    for cert in chain.iter().skip(1).take(chain.len().saturating_sub(2)) {
        if col.root_ca_crl.lists(cert) {
            return Err(EvidenceError::TdxPckRevoked("PCK CA certificate"));
        }
    }
    Ok(())
}

/// Steps 4 to 8: applicability, QE identity, TDX module, TCB levels.
fn evaluate(input: &DcapInput<'_>, col: &TdxCollateral) -> Result<TcbEvaluation> {
    let tcb = &col.tcb_info.parsed;
    let want = if input.td.is_some() {
        DcapTee::Tdx
    } else {
        DcapTee::Sgx
    };
    if tcb.tee != want {
        return Err(EvidenceError::TdxCollateralMismatch(
            "TCB info is for another TEE",
        ));
    }
    if col.qe_identity.parsed.tee != want {
        return Err(EvidenceError::TdxCollateralMismatch(
            "QE identity is for another TEE",
        ));
    }
    if tcb.fmspc != input.pck.fmspc {
        return Err(EvidenceError::TdxFmspcMismatch);
    }
    if tcb.pce_id != input.pck.pce_id {
        return Err(EvidenceError::TdxCollateralMismatch(
            "TCB info PCE-ID differs from the PCK certificate's",
        ));
    }
    let qe = qe_level(input.qe_report, &col.qe_identity.parsed)?;
    let qe_status = status_claim(qe.tcb_status);
    let qe_with_advisories = TcbStatusWithAdvisory::new(qe.tcb_status, qe.advisory_ids.clone());

    let (launch, current) = match &input.td {
        None => {
            let p = platform_level(tcb, input.pck, None)?;
            (Converged::platform(p), None)
        }
        Some(td) => {
            let launch = tdx_level(tcb, input.pck, td, td.tee_tcb_svn)?;
            // TD 1.5: the TCB running now (after a TD-preserving module
            // update) must be appraisable too.
            let current = td
                .tee_tcb_svn2
                .map(|svn2| tdx_level(tcb, input.pck, td, svn2))
                .transpose()?;
            (launch, current)
        }
    };

    // dcap-qvl's `merge`: Intel's `convergeTcbStatuses` with the QE's level,
    // advisories of the platform (and module) first, then the QE's.
    let launched = launch.merged.clone().merge(&qe_with_advisories);
    let mut status = status_claim(launched.status);
    let current_status = current
        .as_ref()
        .map(|c| status_claim(c.merged.clone().merge(&qe_with_advisories).status));
    if status == TcbStatus::Revoked {
        return Err(EvidenceError::TdxTcbRevoked("the TCB the TD launched on"));
    }
    if current_status == Some(TcbStatus::Revoked) {
        return Err(EvidenceError::TdxTcbRevoked(
            "the TCB the TD runs on now (TEE_TCB_SVN2)",
        ));
    }
    if let (Some(now), Some(td)) = (current_status, &input.td) {
        let relaunch = check_for_relaunch(status, now);
        // Relaunch advice only where Intel's own rule gives it too (it is
        // narrower: see `intel_advises_relaunch`).
        if relaunch != status && intel_advises_relaunch(tcb, input.pck, td, &launch, qe_status)? {
            status = relaunch;
        }
    }
    Ok(TcbEvaluation {
        status,
        advisory_ids: launched.advisory_ids,
        platform_status: launch.platform_status,
        qe_status,
        tdx_module_status: launch.module_status,
        tcb_date: launch.tcb_date,
        tcb_evaluation_data_number: tcb.model.tcb_evaluation_data_number,
    })
}

/// A platform TCB level with the TDX module's level folded in.
struct Converged {
    /// Status and advisories: the platform level's, merged with the
    /// module level's by dcap-qvl's `merge`.
    merged: TcbStatusWithAdvisory,
    /// The older of the platform's and the module's tcbDate.
    tcb_date: String,
    platform_status: TcbStatus,
    module_status: Option<TcbStatus>,
}

impl Converged {
    fn platform(p: &TcbLevel) -> Converged {
        Converged {
            merged: TcbStatusWithAdvisory::new(p.tcb_status, p.advisory_ids.clone()),
            tcb_date: p.tcb_date.clone(),
            platform_status: status_claim(p.tcb_status),
            module_status: None,
        }
    }

    fn status(&self) -> TcbStatus {
        status_claim(self.merged.status)
    }
}

/// The TDX module's level and identity for `svn`, then the platform level,
/// converged as Intel's verifier does: module advisories after the
/// platform's, the level dated by its older component.
fn tdx_level(
    tcb: &TcbInfo,
    pck: &PckInfo,
    td: &TdTcbInput<'_>,
    svn: &[u8; 16],
) -> Result<Converged> {
    let module = tdx_module_level(tcb, td, svn)?;
    let platform = platform_level(tcb, pck, Some(svn))?;
    let mut c = Converged::platform(platform);
    if let Some(m) = module {
        c.merged = c.merged.merge(&TcbStatusWithAdvisory::new(
            m.tcb_status,
            m.advisory_ids.clone(),
        ));
        c.module_status = Some(status_claim(m.tcb_status));
        let date = |d: &str| time::parse_rfc3339_utc(d);
        if let (Some(module), Some(platform)) = (date(&m.tcb_date), date(&c.tcb_date)) {
            if module < platform {
                c.tcb_date = m.tcb_date.clone();
            }
        }
    }
    Ok(c)
}

/// Intel's `checkForRelaunch` (QVL `Checks/TDRelaunchCheck.cpp`): a TD 1.5
/// may be advised to relaunch only when the QE is not out of date or
/// revoked, the SGX part of the platform level (the first level the PCK's
/// SGX components and PCESVN meet) is not out of date, the launch TDX status
/// is `OutOfDate[ConfigurationNeeded]` because the TDX module level is
/// `OutOfDate`, and TEE_TCB_SVN2 meets the latest levels: the highest module
/// ISVSVN of its module identity (or, module version 0, TDX component 0 of
/// the latest platform level) and TDX component 2 of the latest platform
/// level. [`check_for_relaunch`] is dcap-qvl's reading of the same rule,
/// which asks instead that the current TCB's status is not out of date; a
/// relaunch status is reported only when both agree.
fn intel_advises_relaunch(
    tcb: &TcbInfo,
    pck: &PckInfo,
    td: &TdTcbInput<'_>,
    launch: &Converged,
    qe_status: TcbStatus,
) -> Result<bool> {
    use TcbStatus::*;
    let Some(svn2) = td.tee_tcb_svn2 else {
        return Ok(false);
    };
    if matches!(qe_status, OutOfDate | Revoked) {
        return Ok(false);
    }
    let sgx = status_claim(platform_level(tcb, pck, None)?.tcb_status);
    if !matches!(
        sgx,
        UpToDate | SWHardeningNeeded | ConfigurationNeeded | ConfigurationAndSWHardeningNeeded
    ) || !matches!(launch.status(), OutOfDate | OutOfDateConfigurationNeeded)
        || launch.module_status != Some(OutOfDate)
    {
        return Ok(false);
    }
    let latest_tdx = |i: usize| {
        tcb.model
            .tcb_levels
            .first()
            .and_then(|l| l.tcb.tdx_components.get(i))
            .map(|c| c.svn)
    };
    let (Some(latest_0), Some(latest_2)) = (latest_tdx(0), latest_tdx(2)) else {
        return Ok(false);
    };
    let module_ok = match module_identity(tcb, svn2)? {
        None => svn2[0] >= latest_0,
        Some(ident) => {
            let Some(latest) = ident.tcb_levels.iter().map(|l| l.tcb.isvsvn).max() else {
                return Ok(false);
            };
            svn2[0] >= latest
        }
    };
    Ok(module_ok && svn2[2] >= latest_2)
}

/// The launch and current statuses of a TD 1.5 (dcap-qvl's reading of
/// Intel's `checkForRelaunch`, whose own function is private to dcap-qvl):
/// launched out of date but current now means a relaunch would bring the TD
/// up to date. Applied only where [`intel_advises_relaunch`] agrees.
fn check_for_relaunch(launch: TcbStatus, current: TcbStatus) -> TcbStatus {
    use TcbStatus::*;
    let needs_configuration = |s| {
        matches!(
            s,
            ConfigurationNeeded
                | OutOfDateConfigurationNeeded
                | ConfigurationAndSWHardeningNeeded
                | TDRelaunchAdvisedConfigurationNeeded
        )
    };
    match (launch, current) {
        (
            OutOfDate | OutOfDateConfigurationNeeded,
            UpToDate | SWHardeningNeeded | ConfigurationNeeded | ConfigurationAndSWHardeningNeeded,
        ) => {
            if needs_configuration(launch) || needs_configuration(current) {
                TDRelaunchAdvisedConfigurationNeeded
            } else {
                TDRelaunchAdvised
            }
        }
        _ => launch,
    }
}

/// The QE report against the QE identity; its TCB level by ISVSVN.
fn qe_level<'a>(r: &QeReport, id: &'a collateral::QeIdentity) -> Result<&'a QeTcbLevel> {
    let id = &id.model;
    if r.mrsigner != id.mrsigner {
        return Err(EvidenceError::TdxQeIdentityMismatch("MRSIGNER"));
    }
    if r.isv_prod_id != id.isvprodid {
        return Err(EvidenceError::TdxQeIdentityMismatch("ISVPRODID"));
    }
    // The report's value under the identity's mask must equal the
    // identity's value as published (Intel's EnclaveReportVerifier: a value
    // with bits outside its own mask never matches). dcap-qvl masks both
    // sides; this is the stricter of the two.
    let misc_select = u32::from_le_bytes(id.miscselect);
    let misc_select_mask = u32::from_le_bytes(id.miscselect_mask);
    if r.misc_select & misc_select_mask != misc_select {
        return Err(EvidenceError::TdxQeIdentityMismatch("MISCSELECT"));
    }
    let attrs_ok = r
        .attributes
        .iter()
        .zip(&id.attributes)
        .zip(&id.attributes_mask)
        .all(|((a, e), m)| a & m == *e);
    if !attrs_ok {
        return Err(EvidenceError::TdxQeIdentityMismatch("ATTRIBUTES"));
    }
    let Some(l) = id.tcb_levels.iter().find(|l| r.isv_svn >= l.tcb.isvsvn) else {
        let lowest = id.tcb_levels.iter().map(|l| l.tcb.isvsvn).min();
        return Err(EvidenceError::TdxTcbLevelNotFound(
            "QE identity",
            match lowest {
                Some(needs) => {
                    format!("QE ISVSVN is {}, the lowest level needs {needs}", r.isv_svn)
                }
                None => "the QE identity has no levels".into(),
            },
        ));
    };
    // The statuses a QE identity level may carry (Intel's verifier).
    use TcbStatus::*;
    if !matches!(
        status_claim(l.tcb_status),
        UpToDate | OutOfDate | ConfigurationNeeded | Revoked | OutOfDateConfigurationNeeded
    ) {
        return Err(EvidenceError::TdxCollateralMalformed(
            "QE identity level with a status it cannot have",
        ));
    }
    Ok(l)
}

/// MRSIGNERSEAM / SEAMATTRIBUTES against the module identity selected by
/// `svn[1]` (dcap-qvl's `tdx_module_identity`; the top-level `tdxModule`
/// when it is 0), and that identity's TCB level by `svn[0]` (dcap-qvl's
/// `shortfall`).
fn tdx_module_level<'a>(
    tcb: &'a TcbInfo,
    td: &TdTcbInput<'_>,
    svn: &[u8; 16],
) -> Result<Option<&'a TdxModuleTcbLevel>> {
    let check = |m: &TdxModule| -> Result<()> {
        if *td.mrsignerseam != m.mrsigner {
            return Err(EvidenceError::TdxModuleMismatch("MRSIGNERSEAM"));
        }
        // Intel's QVL (4.1.2.4.11.2): every SEAMATTRIBUTES byte zero and
        // equal to the identity's, mask or no mask.
        let ok = td
            .seam_attributes
            .iter()
            .zip(&m.attributes)
            .all(|(a, e)| *a == 0 && a == e);
        if !ok {
            return Err(EvidenceError::TdxModuleMismatch("SEAMATTRIBUTES"));
        }
        Ok(())
    };
    let Some(ident) = module_identity(tcb, svn)? else {
        if let Some(m) = &tcb.tdx_module {
            check(m)?;
        }
        return Ok(None);
    };
    check(&TdxModule::of_identity(ident)?)?;
    let Some(l) = ident.tcb_levels.iter().find(|l| l.shortfall(svn).is_none()) else {
        let lowest = ident.tcb_levels.iter().min_by_key(|l| l.tcb.isvsvn);
        return Err(EvidenceError::TdxTcbLevelNotFound(
            "TDX module",
            match lowest.and_then(|l| l.shortfall(svn)) {
                Some(s) => format!(
                    "the lowest level of {} needs more: {}",
                    ident.id,
                    describe(&[s])
                ),
                None => format!("{} has no levels", ident.id),
            },
        ));
    };
    // The statuses a TDX module level may carry (Intel's verifier).
    if !matches!(
        status_claim(l.tcb_status),
        TcbStatus::UpToDate | TcbStatus::OutOfDate | TcbStatus::Revoked
    ) {
        return Err(EvidenceError::TdxCollateralMalformed(
            "TDX module level with a status it cannot have",
        ));
    }
    Ok(Some(l))
}

/// The module identity `TDX_%02X` of the module major version `svn[1]`
/// (dcap-qvl's `tdx_module_identity`), `None` when it is 0.
fn module_identity<'a>(
    tcb: &'a TcbInfo,
    svn: &[u8; 16],
) -> Result<Option<&'a dcap_qvl::tcb_info::TdxModuleIdentity>> {
    tcb.model.tdx_module_identity(svn).map_err(|_| {
        EvidenceError::TdxModuleMismatch("no TDX module identity for the module's major version")
    })
}

/// The first platform TCB level, in Intel's order, the PCK (and
/// TEE_TCB_SVN) meet: dcap-qvl's `shortfalls` is empty. It leaves TDX
/// components 0 and 1 to the module identity when the module's major
/// version is not 0.
fn platform_level<'a>(
    tcb: &'a TcbInfo,
    pck: &PckInfo,
    tee_tcb_svn: Option<&[u8; 16]>,
) -> Result<&'a TcbLevel> {
    // Component counts were checked when the TCB info was parsed.
    let shortfalls = |l: &TcbLevel| {
        l.shortfalls(&pck.cpu_svn_components, pck.pce_svn, tee_tcb_svn)
            .map_err(|_| EvidenceError::TdxCollateralMalformed("TCB level component count"))
    };
    for l in &tcb.model.tcb_levels {
        if shortfalls(l)?.is_empty() {
            return Ok(l);
        }
    }
    let detail = match tcb.model.tcb_levels.last() {
        Some(lowest) => format!(
            "the lowest level ({}) needs more: {}",
            lowest.tcb_date,
            describe(&shortfalls(lowest)?)
        ),
        None => "the TCB info has no levels".into(),
    };
    Err(EvidenceError::TdxTcbLevelNotFound("platform", detail))
}

/// dcap-qvl's shortfalls in Intel's terms (components numbered from 1, as
/// in `sgxtcbcomp01svn`) and the quote's (bytes from 0):
/// "SGX component 8 (CPUSVN[7]) is 3, needs 5".
fn describe(shortfalls: &[SvnShortfall]) -> String {
    let name = |c: SvnComponent| match c {
        SvnComponent::Sgx(i) => format!("SGX component {} (CPUSVN[{i}])", u16::from(i) + 1),
        SvnComponent::Tdx(i) => format!("TDX component {} (TEE_TCB_SVN[{i}])", u16::from(i) + 1),
        SvnComponent::PceSvn => "PCESVN".into(),
        SvnComponent::TdxModuleIsvSvn => "TEE_TCB_SVN[0] (module ISVSVN)".into(),
    };
    shortfalls
        .iter()
        .map(|s| format!("{} is {}, needs {}", name(s.component), s.have, s.needs))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tdx::verify::verify_quote_signatures;
    use crate::verify::TrustAnchors;

    const NOW: u64 = 1_752_919_234;

    fn data(rel: &str) -> Vec<u8> {
        let path = format!("{}/../../shared/testdata/{rel}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("test data {path}: {e}"))
    }

    fn fixture() -> (crate::tdx::verify::VerifiedQuote, TdxCollateral) {
        let anchors = TrustAnchors::intel(crate::INTEL_SGX_ROOT_CA_DER.to_vec());
        let vq = verify_quote_signatures(&data("tdx/dcap-qvl/tdx_quote"), &anchors, NOW)
            .expect("signatures");
        let col = TdxCollateral::from_json(&data("tdx/dcap-qvl/tdx_quote_collateral.json"))
            .expect("collateral");
        (vq, col)
    }

    fn run(vq: &crate::tdx::verify::VerifiedQuote, col: &TdxCollateral) -> Result<TcbEvaluation> {
        crate::verify::appraise_tdx(vq, col, crate::INTEL_SGX_ROOT_CA_DER, NOW)
    }

    #[test]
    fn baseline_and_module_status() {
        let (vq, col) = fixture();
        let e = run(&vq, &col).expect("appraises");
        assert_eq!(e.status, TcbStatus::UpToDate);
        assert_eq!(e.qe_status, TcbStatus::UpToDate);
        // TEE_TCB_SVN 06 01: module TDX_01, minor 6 >= 4.
        assert_eq!(e.tdx_module_status, Some(TcbStatus::UpToDate));
        assert_eq!(e.tcb_evaluation_data_number, 17);
    }

    #[test]
    fn revoked_pck_leaf_and_ca() {
        let (vq, col) = fixture();
        let leaf =
            P256Cert::parse(&vq.pck_chain_der[0], EvidenceError::Malformed("x")).expect("leaf");
        let serial = leaf.cert.tbs_certificate.serial_number.as_bytes().to_vec();
        assert!(!col.pck_crl.is_revoked(&serial));
        let mut revoked = col.clone();
        revoked.pck_crl.insert_revoked_for_test(serial);
        assert_eq!(
            check_pck_revocation(&vq.pck_chain_der, &revoked),
            Err(EvidenceError::TdxPckRevoked("PCK certificate"))
        );
        let ca = P256Cert::parse(&vq.pck_chain_der[1], EvidenceError::Malformed("x")).expect("ca");
        let mut revoked = col.clone();
        revoked
            .root_ca_crl
            .insert_revoked_for_test(ca.cert.tbs_certificate.serial_number.as_bytes().to_vec());
        assert_eq!(
            check_pck_revocation(&vq.pck_chain_der, &revoked),
            Err(EvidenceError::TdxPckRevoked("PCK CA certificate"))
        );
        assert_eq!(check_pck_revocation(&vq.pck_chain_der, &col), Ok(()));
    }

    #[test]
    fn qe_identity_mismatches() {
        let (vq, col) = fixture();
        type Edit = fn(&mut QeReport);
        let cases: [(Edit, &str); 4] = [
            (|r| r.mrsigner[0] ^= 1, "MRSIGNER"),
            (|r| r.isv_prod_id = 1, "ISVPRODID"),
            (|r| r.misc_select = 1, "MISCSELECT"),
            (|r| r.attributes[0] ^= 0x02, "ATTRIBUTES"),
        ];
        for (edit, what) in cases {
            let mut r = vq.quote.qe_report.clone();
            edit(&mut r);
            assert_eq!(
                qe_level(&r, &col.qe_identity.parsed),
                Err(EvidenceError::TdxQeIdentityMismatch(what))
            );
        }
        // Bit 2 of ATTRIBUTES byte 0 is outside the mask (FB).
        let mut r = vq.quote.qe_report.clone();
        r.attributes[0] ^= 0x04;
        assert!(qe_level(&r, &col.qe_identity.parsed).is_ok());
        // ISVSVN below every level.
        let mut r = vq.quote.qe_report.clone();
        r.isv_svn = 0;
        assert_eq!(
            qe_level(&r, &col.qe_identity.parsed),
            Err(EvidenceError::TdxTcbLevelNotFound(
                "QE identity",
                "QE ISVSVN is 0, the lowest level needs 4".into()
            ))
        );
    }

    /// SEAMATTRIBUTES must be zero and equal to the identity's, whatever
    /// the mask; identity values with bits outside their own mask never
    /// match (Intel's QVL).
    #[test]
    fn unmasked_identity_values() {
        let (vq, mut col) = fixture();
        let b = &vq.quote.body;
        let qe = &vq.quote.qe_report;
        let mut seam = [0u8; 8];
        seam[7] = 0x80;
        let mut i = input(&vq, &b.tee_tcb_svn, &b.mrsignerseam, qe);
        if let Some(td) = i.td.as_mut() {
            td.seam_attributes = &seam;
        }
        // Even with the bit outside the identity's mask.
        let mask = &mut tdx_01(&mut col).attributes_mask;
        mask.replace_range(14..16, "7F");
        assert_eq!(
            evaluate(&i, &col).map(|e| e.status),
            Err(EvidenceError::TdxModuleMismatch("SEAMATTRIBUTES"))
        );
        let mut col2 = col.clone();
        tdx_01(&mut col2).attributes.replace_range(14..16, "80");
        assert_eq!(
            evaluate(&i, &col2).map(|e| e.status),
            Err(EvidenceError::TdxModuleMismatch("SEAMATTRIBUTES"))
        );
        // QE identity ATTRIBUTES with a bit its own mask removes.
        let mut id = col.qe_identity.parsed.clone();
        id.model.attributes[0] |= 0x04; // mask FB: bit 2 is not compared
        let mut r = qe.clone();
        r.attributes[0] |= 0x04;
        assert_eq!(
            qe_level(&r, &id),
            Err(EvidenceError::TdxQeIdentityMismatch("ATTRIBUTES"))
        );
        let mut id = col.qe_identity.parsed.clone();
        id.model.miscselect = 1u32.to_le_bytes();
        id.model.miscselect_mask = (!1u32).to_le_bytes();
        assert_eq!(
            qe_level(qe, &id),
            Err(EvidenceError::TdxQeIdentityMismatch("MISCSELECT"))
        );
    }

    /// MISCSELECT in the QE identity is the report's four bytes in hex:
    /// "01000000" is MISCSELECT 1, as Intel's QVL reads it.
    #[test]
    fn miscselect_byte_order() {
        let (vq, col) = fixture();
        let mut j: serde_json::Value = serde_json::from_slice(&col.qe_identity.raw).expect("json");
        j["miscselect"] = "01000000".into();
        let id =
            collateral::parse_qe_identity(&serde_json::to_vec(&j).expect("json")).expect("parses");
        assert_eq!(
            (id.model.miscselect, id.model.miscselect_mask),
            ([1, 0, 0, 0], [0xff; 4])
        );
        let mut r = vq.quote.qe_report.clone();
        r.misc_select = 1;
        assert!(qe_level(&r, &id).is_ok());
        r.misc_select = 0x0100_0000;
        assert_eq!(
            qe_level(&r, &id),
            Err(EvidenceError::TdxQeIdentityMismatch("MISCSELECT"))
        );
    }

    fn input<'a>(
        vq: &'a crate::tdx::verify::VerifiedQuote,
        svn: &'a [u8; 16],
        mrsignerseam: &'a [u8; 48],
        qe: &'a QeReport,
    ) -> DcapInput<'a> {
        DcapInput {
            td: Some(TdTcbInput {
                tee_tcb_svn: svn,
                tee_tcb_svn2: None,
                mrsignerseam,
                seam_attributes: &vq.quote.body.seam_attributes,
            }),
            pck_chain_der: &vq.pck_chain_der,
            pck: vq.pck.as_ref().expect("PCK extension"),
            qe_report: qe,
        }
    }

    #[test]
    fn tdx_module_and_levels() {
        let (vq, col) = fixture();
        let b = &vq.quote.body;
        let qe = &vq.quote.qe_report;
        let ev = |svn: [u8; 16], signer: [u8; 48], qe: &QeReport| {
            evaluate(&input(&vq, &svn, &signer, qe), &col)
        };
        let base = b.tee_tcb_svn;
        // Module TDX_01 minor 2..3: OutOfDate module level -> OutOfDate overall.
        let mut svn = base;
        svn[0] = 3;
        let e = ev(svn, b.mrsignerseam, qe).expect("evaluates");
        assert_eq!(e.platform_status, TcbStatus::UpToDate);
        assert_eq!(e.tdx_module_status, Some(TcbStatus::OutOfDate));
        assert_eq!(e.status, TcbStatus::OutOfDate);
        // Minor below every module level.
        svn[0] = 1;
        assert_eq!(
            ev(svn, b.mrsignerseam, qe),
            Err(EvidenceError::TdxTcbLevelNotFound(
                "TDX module",
                "the lowest level of TDX_01 needs more: \
                 TEE_TCB_SVN[0] (module ISVSVN) is 1, needs 2"
                    .into()
            ))
        );
        // A major version without identity.
        let mut svn = base;
        svn[1] = 2;
        assert_eq!(
            ev(svn, b.mrsignerseam, qe).map(|e| e.status),
            Err(EvidenceError::TdxModuleMismatch(
                "no TDX module identity for the module's major version"
            ))
        );
        // MRSIGNERSEAM other than Intel's (zero).
        let mut signer = b.mrsignerseam;
        signer[5] = 1;
        assert_eq!(
            ev(base, signer, qe),
            Err(EvidenceError::TdxModuleMismatch("MRSIGNERSEAM"))
        );
        // TDX late microcode (TEE_TCB_SVN[2]) below every level.
        let mut svn = base;
        svn[2] = 1;
        assert_eq!(
            ev(svn, b.mrsignerseam, qe),
            Err(EvidenceError::TdxTcbLevelNotFound(
                "platform",
                "the lowest level (2018-01-04T00:00:00Z) needs more: \
                 TDX component 3 (TEE_TCB_SVN[2]) is 1, needs 2"
                    .into()
            ))
        );
        // Major 0: TDX components compared from index 0 (level needs 5).
        let mut svn = base;
        svn[1] = 0;
        svn[0] = 4;
        assert_eq!(
            ev(svn, b.mrsignerseam, qe),
            Err(EvidenceError::TdxTcbLevelNotFound(
                "platform",
                "the lowest level (2018-01-04T00:00:00Z) needs more: \
                 TDX component 1 (TEE_TCB_SVN[0]) is 4, needs 5"
                    .into()
            ))
        );
        svn[0] = 5;
        assert_eq!(
            ev(svn, b.mrsignerseam, qe).map(|e| (e.status, e.tdx_module_status)),
            Ok((TcbStatus::UpToDate, None))
        );
    }

    #[test]
    fn convergence_with_qe_status() {
        let (vq, mut col) = fixture();
        // Make the QE identity's only level OutOfDate with an advisory.
        col.qe_identity.parsed.model.tcb_levels[0].tcb_status = dcap_qvl::TcbStatus::OutOfDate;
        col.qe_identity.parsed.model.tcb_levels[0].advisory_ids = vec!["INTEL-SA-X".into()];
        let b = &vq.quote.body;
        let e = evaluate(
            &input(&vq, &b.tee_tcb_svn, &b.mrsignerseam, &vq.quote.qe_report),
            &col,
        )
        .expect("evaluates");
        assert_eq!(e.status, TcbStatus::OutOfDate);
        assert_eq!(e.qe_status, TcbStatus::OutOfDate);
        assert_eq!(e.advisory_ids, ["INTEL-SA-X"]);
        col.qe_identity.parsed.model.tcb_levels[0].tcb_status = dcap_qvl::TcbStatus::Revoked;
        let e = evaluate(
            &input(&vq, &b.tee_tcb_svn, &b.mrsignerseam, &vq.quote.qe_report),
            &col,
        );
        assert_eq!(
            e,
            Err(EvidenceError::TdxTcbRevoked("the TCB the TD launched on"))
        );
        // Platform ConfigurationNeeded + QE OutOfDate -> OutOfDateConfigurationNeeded.
        col.qe_identity.parsed.model.tcb_levels[0].tcb_status = dcap_qvl::TcbStatus::OutOfDate;
        col.tcb_info.parsed.model.tcb_levels[0].tcb_status =
            dcap_qvl::TcbStatus::ConfigurationNeeded;
        let e = evaluate(
            &input(&vq, &b.tee_tcb_svn, &b.mrsignerseam, &vq.quote.qe_report),
            &col,
        )
        .expect("evaluates");
        assert_eq!(e.status, TcbStatus::OutOfDateConfigurationNeeded);
    }

    fn tdx_01(col: &mut TdxCollateral) -> &mut dcap_qvl::tcb_info::TdxModuleIdentity {
        col.tcb_info
            .parsed
            .model
            .tdx_module_identities
            .iter_mut()
            .find(|i| i.id == "TDX_01")
            .expect("the fixture has TDX_01")
    }

    /// TD 1.5: the launch TCB (TEE_TCB_SVN) and the current one
    /// (TEE_TCB_SVN2) combine as Intel's `checkForRelaunch` does.
    #[test]
    fn td15_relaunch_statuses() {
        let (vq, mut col) = fixture();
        let b = &vq.quote.body;
        let qe = &vq.quote.qe_report;
        let eval = |col: &TdxCollateral, launch: u8, current: u8| {
            let (mut svn, mut svn2) = (b.tee_tcb_svn, b.tee_tcb_svn);
            svn[0] = launch;
            svn2[0] = current;
            let mut i = input(&vq, &svn, &b.mrsignerseam, qe);
            if let Some(td) = i.td.as_mut() {
                td.tee_tcb_svn2 = Some(&svn2);
            }
            evaluate(&i, col)
        };
        // Module TDX_01: minor >= 4 UpToDate, 2..3 OutOfDate.
        let st = |r: Result<TcbEvaluation>| r.map(|e| e.status);
        assert_eq!(st(eval(&col, 6, 6)), Ok(TcbStatus::UpToDate));
        assert_eq!(st(eval(&col, 3, 6)), Ok(TcbStatus::TDRelaunchAdvised));
        assert_eq!(st(eval(&col, 3, 3)), Ok(TcbStatus::OutOfDate));
        // Launched up to date, now behind: the launch status stands.
        assert_eq!(st(eval(&col, 6, 3)), Ok(TcbStatus::UpToDate));
        // The current TCB must have a level of its own.
        assert_eq!(
            st(eval(&col, 6, 1)),
            Err(EvidenceError::TdxTcbLevelNotFound(
                "TDX module",
                "the lowest level of TDX_01 needs more: \
                 TEE_TCB_SVN[0] (module ISVSVN) is 1, needs 2"
                    .into()
            ))
        );
        // Configuration needed on the platform: the relaunch status says so.
        col.tcb_info.parsed.model.tcb_levels[0].tcb_status =
            dcap_qvl::TcbStatus::ConfigurationNeeded;
        assert_eq!(
            st(eval(&col, 3, 6)),
            Ok(TcbStatus::TDRelaunchAdvisedConfigurationNeeded)
        );
        // A revoked module level now is an error, whatever the launch one.
        tdx_01(&mut col).tcb_levels[0].tcb_status = dcap_qvl::TcbStatus::Revoked;
        assert_eq!(
            st(eval(&col, 3, 6)),
            Err(EvidenceError::TdxTcbRevoked(
                "the TCB the TD runs on now (TEE_TCB_SVN2)"
            ))
        );
        assert_eq!(
            st(eval(&col, 6, 3)),
            Err(EvidenceError::TdxTcbRevoked("the TCB the TD launched on"))
        );
    }

    /// Intel's rule is narrower than "launch out of date, current not": a
    /// launch made out of date by a platform TDX component, with the module
    /// up to date, is not advised to relaunch; it stays `OutOfDate`.
    #[test]
    fn relaunch_needs_an_out_of_date_module() {
        let (vq, mut col) = fixture();
        // The lower platform level accepts TDX component 2 = 1.
        col.tcb_info.parsed.model.tcb_levels[1].tcb.tdx_components[2].svn = 1;
        let b = &vq.quote.body;
        let qe = &vq.quote.qe_report;
        let eval = |launch: [u8; 3], current: [u8; 3]| {
            let (mut svn, mut svn2) = (b.tee_tcb_svn, b.tee_tcb_svn);
            svn[..3].copy_from_slice(&launch);
            svn2[..3].copy_from_slice(&current);
            let mut i = input(&vq, &svn, &b.mrsignerseam, qe);
            if let Some(td) = i.td.as_mut() {
                td.tee_tcb_svn2 = Some(&svn2);
            }
            evaluate(&i, &col).map(|e| e.status)
        };
        // Module up to date (minor 6), platform component 2 old at launch.
        assert_eq!(eval([6, 1, 1], [6, 1, 2]), Ok(TcbStatus::OutOfDate));
        // Module out of date at launch (minor 3), current on the latest.
        assert_eq!(eval([3, 1, 1], [6, 1, 2]), Ok(TcbStatus::TDRelaunchAdvised));
        // ... but not when the current TDX component 2 is behind the latest level.
        assert_eq!(eval([3, 1, 1], [6, 1, 1]), Ok(TcbStatus::OutOfDate));
    }

    /// A matched level whose status its structure cannot carry is refused,
    /// and the converged level is dated by its older component.
    #[test]
    fn level_statuses_and_dates() {
        let (vq, mut col) = fixture();
        let b = &vq.quote.body;
        let qe = &vq.quote.qe_report;
        let e = evaluate(&input(&vq, &b.tee_tcb_svn, &b.mrsignerseam, qe), &col).expect("ok");
        let platform_date = col.tcb_info.parsed.model.tcb_levels[0].tcb_date.clone();
        assert_eq!(e.tcb_date, platform_date);
        tdx_01(&mut col).tcb_levels[0].tcb_date = "2001-01-01T00:00:00Z".into();
        let e = evaluate(&input(&vq, &b.tee_tcb_svn, &b.mrsignerseam, qe), &col).expect("ok");
        assert_eq!(e.tcb_date, "2001-01-01T00:00:00Z");

        let mut m = col.clone();
        tdx_01(&mut m).tcb_levels[0].tcb_status = dcap_qvl::TcbStatus::ConfigurationNeeded;
        assert_eq!(
            evaluate(&input(&vq, &b.tee_tcb_svn, &b.mrsignerseam, qe), &m),
            Err(EvidenceError::TdxCollateralMalformed(
                "TDX module level with a status it cannot have"
            ))
        );
        let mut q = col.clone();
        q.qe_identity.parsed.model.tcb_levels[0].tcb_status =
            dcap_qvl::TcbStatus::SWHardeningNeeded;
        assert_eq!(
            evaluate(&input(&vq, &b.tee_tcb_svn, &b.mrsignerseam, qe), &q),
            Err(EvidenceError::TdxCollateralMalformed(
                "QE identity level with a status it cannot have"
            ))
        );
    }

    /// What parsing adds to dcap-qvl's model: each edit of a real TCB info
    /// or QE identity is refused with its own reason.
    #[test]
    fn collateral_parsing_checks_the_model() {
        let (_, col) = fixture();
        let tcb: serde_json::Value = serde_json::from_slice(&col.tcb_info.raw).expect("json");
        let qe: serde_json::Value = serde_json::from_slice(&col.qe_identity.raw).expect("json");
        let tcb_edit = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut j = tcb.clone();
            edit(&mut j);
            collateral::parse_tcb_info(&serde_json::to_vec(&j).expect("json")).map(|_| ())
        };
        let qe_edit = |edit: &dyn Fn(&mut serde_json::Value)| {
            let mut j = qe.clone();
            edit(&mut j);
            collateral::parse_qe_identity(&serde_json::to_vec(&j).expect("json")).map(|_| ())
        };
        let m = |what| Err(EvidenceError::TdxCollateralMalformed(what));
        assert_eq!(tcb_edit(&|_| {}), Ok(()));
        assert_eq!(qe_edit(&|_| {}), Ok(()));
        // A status only appraisal gives, and one nobody publishes.
        assert_eq!(
            tcb_edit(&|j| j["tcbLevels"][0]["tcbStatus"] = "TDRelaunchAdvised".into()),
            m("unknown TCB status")
        );
        assert_eq!(
            tcb_edit(&|j| j["tcbLevels"][0]["tcbStatus"] = "Fine".into()),
            m("TCB info JSON")
        );
        assert_eq!(
            tcb_edit(&|j| {
                j["tdxModuleIdentities"][0]["tcbLevels"][0]["tcbStatus"] =
                    "TDRelaunchAdvisedConfigurationNeeded".into()
            }),
            m("unknown TCB status")
        );
        assert_eq!(
            qe_edit(&|j| j["tcbLevels"][0]["tcbStatus"] = "TDRelaunchAdvised".into()),
            m("unknown TCB status")
        );
        // Component counts the matching relies on.
        assert_eq!(
            tcb_edit(&|j| {
                if let Some(c) = j["tcbLevels"][1]["tcb"]["sgxtcbcomponents"].as_array_mut() {
                    c.pop();
                }
            }),
            m("sgxtcbcomponents")
        );
        assert_eq!(
            tcb_edit(&|j| {
                if let Some(c) = j["tcbLevels"][1]["tcb"]["tdxtcbcomponents"].as_array_mut() {
                    c.push(serde_json::json!({"svn": 0}));
                }
            }),
            m("tdxtcbcomponents")
        );
        assert_eq!(
            tcb_edit(&|j| {
                if let Some(l) = j["tcbLevels"][0]["tcb"].as_object_mut() {
                    l.remove("tdxtcbcomponents");
                }
            }),
            m("TDX TCB level without tdxtcbcomponents")
        );
        // Fields, versions and hex lengths.
        assert_eq!(
            tcb_edit(&|j| {
                if let Some(o) = j.as_object_mut() {
                    o.remove("tcbType");
                }
            }),
            m("TCB info JSON")
        );
        assert_eq!(
            tcb_edit(&|j| j["version"] = 2.into()),
            m("TCB info version is not 3")
        );
        assert_eq!(
            tcb_edit(&|j| j["tdxModuleIdentities"][0]["mrsigner"] = "00".into()),
            m("TDX module mrsigner")
        );
        assert_eq!(tcb_edit(&|j| j["fmspc"] = "00".into()), m("TCB info fmspc"));
        assert_eq!(
            tcb_edit(&|j| j["nextUpdate"] = "soon".into()),
            m("TCB info nextUpdate")
        );
        assert_eq!(
            qe_edit(&|j| j["version"] = 3.into()),
            m("QE identity version is not 2")
        );
        assert_eq!(
            qe_edit(&|j| j["mrsigner"] = "00".into()),
            m("QE identity JSON")
        );
    }

    /// Platform levels are kept in Intel's order whatever the JSON order.
    #[test]
    fn tcb_levels_are_ordered_as_intel_orders_them() {
        let (_, col) = fixture();
        let raw = col.tcb_info.raw.clone();
        let mut j: serde_json::Value = serde_json::from_slice(&raw).expect("json");
        let levels = j["tcbLevels"].as_array_mut().expect("levels");
        assert!(levels.len() >= 2);
        levels.reverse();
        let shuffled =
            collateral::parse_tcb_info(&serde_json::to_vec(&j).expect("json")).expect("parses");
        assert_eq!(
            shuffled.model.tcb_levels,
            col.tcb_info.parsed.model.tcb_levels
        );
        // Intel's own order is already the canonical one.
        assert_eq!(
            collateral::parse_tcb_info(&raw)
                .expect("parses")
                .model
                .tcb_levels,
            col.tcb_info.parsed.model.tcb_levels
        );
    }

    #[test]
    fn signature_cache_is_per_root() {
        let (vq, col) = fixture();
        assert!(col.signatures_checked_for.get().is_none());
        run(&vq, &col).expect("appraises");
        assert_eq!(
            col.signatures_checked_for.get().map(Vec::as_slice),
            Some(crate::INTEL_SGX_ROOT_CA_DER)
        );
        // Another root: nothing is taken from the cache.
        let other = crate::sim::SimTee::from_seed([7; 32]).root_certificate_der();
        let e = crate::dcap::appraise(
            &DcapInput {
                td: None,
                pck_chain_der: &vq.pck_chain_der,
                pck: vq.pck.as_ref().expect("pck"),
                qe_report: &vq.quote.qe_report,
            },
            &col,
            &other,
            NOW,
        )
        .expect_err("other root");
        assert_eq!(e.code(), "TDX_COLLATERAL_CHAIN");
    }
}
