//! What the CA accepts before it certifies a platform. Pure.
//!
//! Every failed rule is reported, not just the first.

use tl_evidence::snp::SnpAppraisal;
use tl_evidence::{PlatformClaims, TcbStatus, TeeKind};

/// The CA's issuance policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuancePolicy {
    /// Accept evidence from the simulated TEE (only when the operator enabled
    /// its root explicitly).
    pub allow_simulated: bool,
    /// TCB statuses accepted for TDX (default: `UpToDate` only). Intel-style
    /// statuses exist only for TDX; SEV-SNP is appraised by [`Self::snp`].
    pub accepted_tcb: Vec<TcbStatus>,
    /// SEV-SNP guest policy and minimum TCB (default: debug, migration agent
    /// and VMPL above 0 refused; no minimum TCB).
    pub snp: SnpAppraisal,
}

impl Default for IssuancePolicy {
    fn default() -> Self {
        Self {
            allow_simulated: false,
            accepted_tcb: vec![TcbStatus::UpToDate],
            snp: SnpAppraisal::default(),
        }
    }
}

/// One broken rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyFailure {
    #[error("evidence is from the simulated TEE, which this CA does not accept")]
    Simulated,
    #[error("the TEE runs in debug mode")]
    Debug,
    #[error("TCB status {0:?} is not accepted")]
    TcbStatus(TcbStatus),
    #[error("GPU {0} is not in confidential-computing mode")]
    GpuCcOff(u32),
    #[error("GPU {0} runs in debug mode")]
    GpuDebug(u32),
    #[error("NVSwitch {0} is not in trusted NVLink mode, locked")]
    NvSwitchTnvlOff(u32),
    #[error("SEV-SNP appraisal: {0}")]
    Snp(&'static str),
    #[error("evidence of this TEE kind is not certified by this CA")]
    TeeKind,
}

impl PolicyFailure {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Simulated => "ISSUANCE_SIMULATED",
            Self::Debug => "ISSUANCE_DEBUG",
            Self::TcbStatus(_) => "ISSUANCE_TCB_STATUS",
            Self::GpuCcOff(_) => "ISSUANCE_GPU_CC_OFF",
            Self::GpuDebug(_) => "ISSUANCE_GPU_DEBUG",
            Self::NvSwitchTnvlOff(_) => "ISSUANCE_NVSWITCH_TNVL_OFF",
            Self::Snp(code) => code,
            Self::TeeKind => "ISSUANCE_TEE_KIND",
        }
    }
}

impl IssuancePolicy {
    /// Appraises `claims`; on refusal returns every failure.
    pub fn appraise(&self, claims: &PlatformClaims) -> Result<(), Vec<PolicyFailure>> {
        let mut failures = Vec::new();
        if claims.simulated && !self.allow_simulated {
            failures.push(PolicyFailure::Simulated);
        }
        if claims.debug {
            failures.push(PolicyFailure::Debug);
        }
        match claims.tee {
            TeeKind::Tdx => {
                if !self.accepted_tcb.contains(&claims.tcb_status) {
                    failures.push(PolicyFailure::TcbStatus(claims.tcb_status));
                }
            }
            TeeKind::SevSnp => {
                for f in self.snp.appraise(claims) {
                    failures.push(PolicyFailure::Snp(f.code()));
                }
            }
            // A TPM quote alone says nothing about a CPU TEE: this CA
            // certifies TDX and SEV-SNP platforms.
            _ => failures.push(PolicyFailure::TeeKind),
        }
        for g in &claims.gpus {
            if !g.cc_mode {
                failures.push(PolicyFailure::GpuCcOff(g.index));
            }
            if g.debug {
                failures.push(PolicyFailure::GpuDebug(g.index));
            }
        }
        for s in &claims.nvswitches {
            if !(s.tnvl_mode && s.locked) {
                failures.push(PolicyFailure::NvSwitchTnvlOff(s.index));
            }
        }
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures)
        }
    }

    /// A one-line description written into certificates.
    pub fn describe(&self) -> String {
        let tcb: Vec<String> = self.accepted_tcb.iter().map(|t| format!("{t:?}")).collect();
        format!(
            "tl-ca/v1 debug=forbidden simulated={} tcb={}",
            if self.allow_simulated {
                "allowed"
            } else {
                "forbidden"
            },
            tcb.join(",")
        )
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tl_evidence::claims::GpuClaims;

    #[test]
    fn every_failure_is_reported() {
        let mut c = crate::claims_ext::tests::sample().platform;
        let p = IssuancePolicy::default();
        assert_eq!(p.appraise(&c).unwrap_err(), vec![PolicyFailure::Simulated]);
        c.debug = true;
        c.tcb_status = TcbStatus::OutOfDate;
        c.gpus.push(GpuClaims {
            index: 3,
            cc_mode: false,
            debug: true,
            driver_version: "x".into(),
            vbios_version: "y".into(),
            measurements: Default::default(),
        });
        for (index, tnvl_mode, locked) in [(0, true, true), (1, false, true), (2, true, false)] {
            c.nvswitches.push(tl_evidence::NvSwitchClaims {
                index,
                tnvl_mode,
                locked,
                vbios_version: "z".into(),
                measurements: Default::default(),
            });
        }
        let codes: Vec<&str> = p
            .appraise(&c)
            .unwrap_err()
            .iter()
            .map(|f| f.code())
            .collect();
        assert_eq!(
            codes,
            [
                "ISSUANCE_SIMULATED",
                "ISSUANCE_DEBUG",
                "ISSUANCE_TCB_STATUS",
                "ISSUANCE_GPU_CC_OFF",
                "ISSUANCE_GPU_DEBUG",
                "ISSUANCE_NVSWITCH_TNVL_OFF",
                "ISSUANCE_NVSWITCH_TNVL_OFF"
            ]
        );
        let allow = IssuancePolicy {
            allow_simulated: true,
            accepted_tcb: vec![TcbStatus::UpToDate, TcbStatus::OutOfDate],
            ..IssuancePolicy::default()
        };
        c.debug = false;
        c.gpus.clear();
        c.nvswitches.retain(|s| s.index == 0);
        assert_eq!(allow.appraise(&c), Ok(()));
    }

    #[test]
    fn snp_is_appraised_by_guest_policy_not_intel_status() {
        let mut c = crate::claims_ext::tests::sample().platform;
        c.simulated = false;
        c.tee = TeeKind::SevSnp;
        c.tcb_status = TcbStatus::NotApplicable;
        c.tdx = None;
        c.snp = Some(tl_evidence::claims::SnpClaims {
            measurement: [1; 48],
            host_data: [0; 32],
            policy: 0x3_0000, // ABI 0.0, SMT allowed, reserved bit 17 set
            vmpl: 0,
            reported_tcb: 0,
            committed_tcb: 0,
        });
        let p = IssuancePolicy::default();
        assert_eq!(p.appraise(&c), Ok(()));
        // Debug allowed by the guest policy (bit 19): refused with the SNP code.
        c.snp.as_mut().unwrap().policy |= 1 << 19;
        let codes: Vec<&str> = p
            .appraise(&c)
            .unwrap_err()
            .iter()
            .map(|f| f.code())
            .collect();
        assert_eq!(codes, vec!["SNP_POLICY_DEBUG"]);
        // A TPM quote alone is not certified.
        c.tee = TeeKind::Tpm;
        c.snp = None;
        let codes: Vec<&str> = p
            .appraise(&c)
            .unwrap_err()
            .iter()
            .map(|f| f.code())
            .collect();
        assert_eq!(codes, vec!["ISSUANCE_TEE_KIND"]);
    }
}
