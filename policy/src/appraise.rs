//! Appraisal of verified platform claims against an order.
//!
//! Every check runs; the verdict lists every failure. A reference section
//! whose claims are missing fails (fail closed).

use tl_evidence::{PlatformClaims, TeeKind};

use crate::order::{GpuRef, NvSwitchRef, Order, SnpRef, TdxRef, TpmRef};
use crate::verdict::{Failure, ReasonCode, Verdict};

/// SEV-SNP guest policy bit 19: DEBUG allowed.
pub const SNP_POLICY_DEBUG_BIT: u64 = 1 << 19;

/// What appraisal needs besides the order and the claims.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AppraisalContext {
    /// The current time, unix seconds.
    pub now_unix: u64,
    /// The highest version the CA has accepted for the order's family.
    pub version_floor: Option<u64>,
}

impl AppraisalContext {
    /// A context at time `now` (times before 1970 count as 0).
    pub fn at(now: time::OffsetDateTime, version_floor: Option<u64>) -> Self {
        AppraisalContext {
            now_unix: u64::try_from(now.unix_timestamp()).unwrap_or(0),
            version_floor,
        }
    }
}

fn tee_name(t: TeeKind) -> &'static str {
    match t {
        TeeKind::Tdx => "tdx",
        TeeKind::SevSnp => "sev-snp",
        TeeKind::Tpm => "tpm",
        _ => "unknown",
    }
}

/// The order-only checks: expiry (`now >= expires` fails) and rollback
/// (`version < floor` fails; equal is allowed so an order can be re-run).
pub fn check_freshness(order: &Order, ctx: &AppraisalContext) -> Vec<Failure> {
    let mut f = Vec::new();
    if ctx.now_unix >= order.expires_unix() {
        f.push(Failure::new(
            ReasonCode::OrderExpired,
            format!("order expired at {}", order.expires()),
        ));
    }
    if let Some(floor) = ctx.version_floor {
        if order.version() < floor {
            f.push(Failure::new(
                ReasonCode::OrderRollback,
                format!(
                    "family {} version {} is below the accepted version {floor}",
                    order.family(),
                    order.version()
                ),
            ));
        }
    }
    f
}

/// Appraise `claims` against `order`: freshness, TEE kind, simulated and
/// debug flags, TCB status, the TEE's reference values, TPM PCRs and GPUs.
pub fn appraise(order: &Order, claims: &PlatformClaims, ctx: &AppraisalContext) -> Verdict {
    let mut f = check_freshness(order, ctx);
    let p = order.platform();

    let allowed = p.allowed_tees();
    if !allowed.contains(&claims.tee) {
        f.push(Failure::new(
            ReasonCode::PlatformTeeNotAllowed,
            format!(
                "TEE {} not in [{}]",
                tee_name(claims.tee),
                allowed
                    .iter()
                    .map(|t| tee_name(*t))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    if claims.simulated && !p.allow_simulated {
        f.push(Failure::new(
            ReasonCode::PlatformSimulated,
            "evidence chains to the simulated TEE root and allow_simulated is off",
        ));
    }
    if claims.debug && !p.allow_debug {
        f.push(Failure::new(
            ReasonCode::PlatformDebug,
            "the TEE runs in debug mode and allow_debug is off",
        ));
    }
    if !p.accept_tcb.contains(&claims.tcb_status) {
        f.push(Failure::new(
            ReasonCode::PlatformTcbStatus,
            format!(
                "TCB status {:?} not in accepted {:?}",
                claims.tcb_status, p.accept_tcb
            ),
        ));
    }

    match claims.tee {
        TeeKind::Tdx => {
            if let Some(r) = &p.tdx {
                appraise_tdx(r, claims, &mut f);
            }
        }
        TeeKind::SevSnp => {
            if let Some(r) = &p.snp {
                appraise_snp(r, claims, p.allow_debug, &mut f);
            }
        }
        _ => {}
    }
    if let Some(r) = &p.tpm {
        appraise_tpm(r, claims, &mut f);
    }
    appraise_gpus(p.gpu.as_ref(), claims, p.allow_debug, &mut f);
    appraise_nvswitches(p.nvswitch.as_ref(), claims, &mut f);

    Verdict { failures: f }
}

fn missing(section: &str) -> Failure {
    Failure::new(
        ReasonCode::PlatformClaimsMissing,
        format!("the order pins {section} values but the evidence has no {section} claims"),
    )
}

fn cmp48(
    code: ReasonCode,
    what: &str,
    want: Option<&crate::order::Hex<48>>,
    got: &[u8; 48],
    f: &mut Vec<Failure>,
) {
    if let Some(w) = want {
        if &w.0 != got {
            f.push(Failure::new(
                code,
                format!("{what} {} expected {w}", hex::encode(got)),
            ));
        }
    }
}

fn appraise_tdx(r: &TdxRef, claims: &PlatformClaims, f: &mut Vec<Failure>) {
    let Some(c) = &claims.tdx else {
        f.push(missing("tdx"));
        return;
    };
    cmp48(
        ReasonCode::TdxMrtdMismatch,
        "mrtd",
        r.mrtd.as_ref(),
        &c.mrtd,
        f,
    );
    for (i, want) in r.rtmrs() {
        let Some(want) = want else { continue };
        match c.rtmr.get(i) {
            Some(got) if got == &want.0 => {}
            Some(got) => f.push(Failure::new(
                ReasonCode::TdxRtmrMismatch,
                format!("rtmr{i} {} expected {want}", hex::encode(got)),
            )),
            None => f.push(Failure::new(
                ReasonCode::TdxRtmrMismatch,
                format!("rtmr{i} absent from the evidence, expected {want}"),
            )),
        }
    }
    cmp48(
        ReasonCode::TdxMrconfigidMismatch,
        "mrconfigid",
        r.mrconfigid.as_ref(),
        &c.mrconfigid,
        f,
    );
    cmp48(
        ReasonCode::TdxMrownerMismatch,
        "mrowner",
        r.mrowner.as_ref(),
        &c.mrowner,
        f,
    );
    cmp48(
        ReasonCode::TdxMrownerconfigMismatch,
        "mrownerconfig",
        r.mrownerconfig.as_ref(),
        &c.mrownerconfig,
        f,
    );
    if let Some(w) = r.td_attributes {
        if w.0 != c.td_attributes {
            f.push(Failure::new(
                ReasonCode::TdxAttributesMismatch,
                format!("td_attributes {:016x} expected {w}", c.td_attributes),
            ));
        }
    }
    if let Some(w) = r.xfam {
        if w.0 != c.xfam {
            f.push(Failure::new(
                ReasonCode::TdxXfamMismatch,
                format!("xfam {:016x} expected {w}", c.xfam),
            ));
        }
    }
}

fn appraise_snp(r: &SnpRef, claims: &PlatformClaims, allow_debug: bool, f: &mut Vec<Failure>) {
    let Some(c) = &claims.snp else {
        f.push(missing("snp"));
        return;
    };
    if let Some(ms) = &r.measurement {
        if !ms.iter().any(|m| m.0 == c.measurement) {
            f.push(Failure::new(
                ReasonCode::SnpMeasurementMismatch,
                format!(
                    "measurement {} not among the {} allowed",
                    hex::encode(c.measurement),
                    ms.len()
                ),
            ));
        }
    }
    if let Some(w) = &r.host_data {
        if w.0 != c.host_data {
            f.push(Failure::new(
                ReasonCode::SnpHostDataMismatch,
                format!("host_data {} expected {w}", hex::encode(c.host_data)),
            ));
        }
    }
    if c.policy & SNP_POLICY_DEBUG_BIT != 0 && !(r.policy_debug_allowed || allow_debug) {
        f.push(Failure::new(
            ReasonCode::SnpDebugPolicy,
            format!("guest policy {:#x} allows debugging", c.policy),
        ));
    }
    if let Some(min) = r.min_reported_tcb {
        if c.reported_tcb < min {
            f.push(Failure::new(
                ReasonCode::SnpTcbTooLow,
                format!("reported_tcb {:#018x} below {min:#018x}", c.reported_tcb),
            ));
        }
    }
    if let Some(v) = r.vmpl {
        if c.vmpl != v {
            f.push(Failure::new(
                ReasonCode::SnpVmplMismatch,
                format!("vmpl {} expected {v}", c.vmpl),
            ));
        }
    }
}

fn appraise_tpm(r: &TpmRef, claims: &PlatformClaims, f: &mut Vec<Failure>) {
    let Some(c) = &claims.tpm else {
        f.push(missing("tpm"));
        return;
    };
    for (bank, pcrs) in &r.pcrs {
        for (idx, want) in pcrs {
            match c.pcrs.get(bank).and_then(|b| b.get(idx)) {
                Some(got) if want.matches(got) => {}
                Some(got) => f.push(Failure::new(
                    ReasonCode::TpmPcrMismatch,
                    format!("{bank}:{idx} {got} expected {want}"),
                )),
                None => f.push(Failure::new(
                    ReasonCode::TpmPcrMismatch,
                    format!("{bank}:{idx} absent from the evidence, expected {want}"),
                )),
            }
        }
    }
}

fn appraise_gpus(
    r: Option<&GpuRef>,
    claims: &PlatformClaims,
    allow_debug: bool,
    f: &mut Vec<Failure>,
) {
    let want_count = r.map(|g| g.count).unwrap_or(0);
    let got_count = claims.gpus.len();
    if u32::try_from(got_count).ok() != Some(want_count) {
        f.push(Failure::new(
            ReasonCode::GpuCountMismatch,
            format!("{got_count} attested GPUs, the order requires {want_count}"),
        ));
    }
    for g in &claims.gpus {
        let i = g.index;
        if g.debug && !allow_debug {
            f.push(Failure::new(
                ReasonCode::GpuDebug,
                format!("GPU {i} is in debug mode"),
            ));
        }
        let Some(r) = r else { continue };
        if r.cc_mode && !g.cc_mode {
            f.push(Failure::new(
                ReasonCode::GpuCcModeOff,
                format!("GPU {i} confidential-computing mode is off"),
            ));
        }
        if !r.driver_versions.is_empty() && !r.driver_versions.contains(&g.driver_version) {
            f.push(Failure::new(
                ReasonCode::GpuDriverVersion,
                format!(
                    "GPU {i} driver {} not in {:?}",
                    g.driver_version, r.driver_versions
                ),
            ));
        }
        if !r.vbios_versions.is_empty() && !r.vbios_versions.contains(&g.vbios_version) {
            f.push(Failure::new(
                ReasonCode::GpuVbiosVersion,
                format!(
                    "GPU {i} VBIOS {} not in {:?}",
                    g.vbios_version, r.vbios_versions
                ),
            ));
        }
        compare_measurements(
            &format!("GPU {i}"),
            &r.measurements,
            &g.measurements,
            ReasonCode::GpuMeasurementMismatch,
            f,
        );
    }
}

fn appraise_nvswitches(r: Option<&NvSwitchRef>, claims: &PlatformClaims, f: &mut Vec<Failure>) {
    let want_count = r.map(|s| s.count).unwrap_or(0);
    let got_count = claims.nvswitches.len();
    if u32::try_from(got_count).ok() != Some(want_count) {
        f.push(Failure::new(
            ReasonCode::NvSwitchCountMismatch,
            format!("{got_count} attested NVSwitches, the order requires {want_count}"),
        ));
    }
    let Some(r) = r else { return };
    for s in &claims.nvswitches {
        let i = s.index;
        if r.tnvl_mode && !(s.tnvl_mode && s.locked) {
            f.push(Failure::new(
                ReasonCode::NvSwitchTnvlOff,
                format!(
                    "NVSwitch {i} trusted NVLink mode {}, {}",
                    if s.tnvl_mode { "on" } else { "off" },
                    if s.locked { "locked" } else { "not locked" }
                ),
            ));
        }
        if !r.vbios_versions.is_empty() && !r.vbios_versions.contains(&s.vbios_version) {
            f.push(Failure::new(
                ReasonCode::NvSwitchVbiosVersion,
                format!(
                    "NVSwitch {i} firmware {} not in {:?}",
                    s.vbios_version, r.vbios_versions
                ),
            ));
        }
        compare_measurements(
            &format!("NVSwitch {i}"),
            &r.measurements,
            &s.measurements,
            ReasonCode::NvSwitchMeasurementMismatch,
            f,
        );
    }
}

/// One failure per pinned measurement of `device` that differs or is absent.
fn compare_measurements(
    device: &str,
    want: &std::collections::BTreeMap<u32, crate::order::HexDigest>,
    got: &std::collections::BTreeMap<u32, String>,
    code: ReasonCode,
    f: &mut Vec<Failure>,
) {
    for (idx, want) in want {
        match got.get(idx) {
            Some(got) if want.matches(got) => {}
            Some(got) => f.push(Failure::new(
                code,
                format!("{device} measurement {idx} {got} expected {want}"),
            )),
            None => f.push(Failure::new(
                code,
                format!("{device} measurement {idx} absent, expected {want}"),
            )),
        }
    }
}
