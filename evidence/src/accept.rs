//! Acceptance policy for verified claims: which TCB statuses a verifier
//! accepts and whether a debug TEE is allowed. Verification reports
//! statuses as data; this is where a verifier decides.

use std::collections::HashSet;

use crate::claims::{PlatformClaims, TcbStatus};

/// Reason code: the TCB status is not in the accepted set.
pub const TCB_STATUS_NOT_ACCEPTED: &str = "TCB_STATUS_NOT_ACCEPTED";
/// Reason code: the TEE runs in debug mode and debug is not allowed.
pub const DEBUG_NOT_ALLOWED: &str = "DEBUG_NOT_ALLOWED";

/// Which verified platforms to accept. [`Default`]: `UpToDate` only, debug
/// forbidden.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptPolicy {
    /// Accepted TCB statuses.
    pub accept: HashSet<TcbStatus>,
    /// Accept a TEE in debug mode (its memory is readable by the host).
    pub allow_debug: bool,
}

impl Default for AcceptPolicy {
    fn default() -> Self {
        AcceptPolicy {
            accept: HashSet::from([TcbStatus::UpToDate]),
            allow_debug: false,
        }
    }
}

/// One reason for rejecting claims: a stable code and a detail for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    pub code: &'static str,
    pub detail: String,
}

impl AcceptPolicy {
    /// Accept the given statuses, debug forbidden.
    pub fn accepting(statuses: impl IntoIterator<Item = TcbStatus>) -> Self {
        AcceptPolicy {
            accept: statuses.into_iter().collect(),
            allow_debug: false,
        }
    }

    /// Every reason the claims are not acceptable (all of them, not just
    /// the first), or `Ok`.
    pub fn evaluate(&self, claims: &PlatformClaims) -> Result<(), Vec<Rejection>> {
        let mut out = Vec::new();
        if !self.accept.contains(&claims.tcb_status) {
            let advisories = if claims.advisory_ids.is_empty() {
                String::new()
            } else {
                format!(" (advisories: {})", claims.advisory_ids.join(", "))
            };
            out.push(Rejection {
                code: TCB_STATUS_NOT_ACCEPTED,
                detail: format!(
                    "TCB status {:?} is not accepted{advisories}",
                    claims.tcb_status
                ),
            });
        }
        if claims.debug && !self.allow_debug {
            out.push(Rejection {
                code: DEBUG_NOT_ALLOWED,
                detail: "the TEE runs in debug mode".to_string(),
            });
        }
        if out.is_empty() {
            Ok(())
        } else {
            Err(out)
        }
    }
}

/// Parse a TCB status an operator lists as acceptable (`--accept-tcb`):
/// as [`parse_tcb_status`], but `Revoked` is refused, since a revoked TCB
/// is never acceptable (DCAP appraisal reports it as `TDX_TCB_REVOKED`).
pub fn parse_acceptable_tcb_status(s: &str) -> Result<TcbStatus, String> {
    match parse_tcb_status(s) {
        Some(TcbStatus::Revoked) => Err("a revoked TCB is never accepted".to_string()),
        Some(t) => Ok(t),
        None => Err(format!(
            "unknown TCB status {s:?} (UpToDate, SWHardeningNeeded, ConfigurationNeeded, \
             ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded, \
             TDRelaunchAdvised, TDRelaunchAdvisedConfigurationNeeded, NotApplicable)"
        )),
    }
}

/// Parse a TCB status name as Intel writes it (`UpToDate`,
/// `SWHardeningNeeded`, ...).
pub fn parse_tcb_status(s: &str) -> Option<TcbStatus> {
    Some(match s.trim() {
        "UpToDate" => TcbStatus::UpToDate,
        "SWHardeningNeeded" => TcbStatus::SWHardeningNeeded,
        "ConfigurationNeeded" => TcbStatus::ConfigurationNeeded,
        "ConfigurationAndSWHardeningNeeded" => TcbStatus::ConfigurationAndSWHardeningNeeded,
        "OutOfDate" => TcbStatus::OutOfDate,
        "OutOfDateConfigurationNeeded" => TcbStatus::OutOfDateConfigurationNeeded,
        "Revoked" => TcbStatus::Revoked,
        "TDRelaunchAdvised" => TcbStatus::TDRelaunchAdvised,
        "TDRelaunchAdvisedConfigurationNeeded" => TcbStatus::TDRelaunchAdvisedConfigurationNeeded,
        "NotApplicable" => TcbStatus::NotApplicable,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::TeeKind;

    fn claims(status: TcbStatus, debug: bool) -> PlatformClaims {
        PlatformClaims {
            tee: TeeKind::Tdx,
            simulated: false,
            debug,
            tcb_status: status,
            advisory_ids: vec!["INTEL-SA-00615".into()],
            report_data: [0; 64],
            tdx: None,
            snp: None,
            tpm: None,
            gpus: Vec::new(),
            nvswitches: Vec::new(),
        }
    }

    #[test]
    fn default_accepts_up_to_date_only_and_no_debug() {
        let p = AcceptPolicy::default();
        assert_eq!(p.evaluate(&claims(TcbStatus::UpToDate, false)), Ok(()));
        let e = p
            .evaluate(&claims(TcbStatus::SWHardeningNeeded, false))
            .expect_err("not accepted");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].code, TCB_STATUS_NOT_ACCEPTED);
        assert!(e[0].detail.contains("INTEL-SA-00615"));
        let e = p
            .evaluate(&claims(TcbStatus::OutOfDate, true))
            .expect_err("two reasons");
        let codes: Vec<_> = e.iter().map(|r| r.code).collect();
        assert_eq!(codes, [TCB_STATUS_NOT_ACCEPTED, DEBUG_NOT_ALLOWED]);
    }

    #[test]
    fn operators_cannot_accept_a_revoked_tcb() {
        assert_eq!(
            parse_acceptable_tcb_status("SWHardeningNeeded"),
            Ok(TcbStatus::SWHardeningNeeded)
        );
        assert_eq!(
            parse_acceptable_tcb_status("TDRelaunchAdvised"),
            Ok(TcbStatus::TDRelaunchAdvised)
        );
        assert_eq!(
            parse_acceptable_tcb_status("Revoked"),
            Err("a revoked TCB is never accepted".to_string())
        );
        assert!(parse_acceptable_tcb_status("nope")
            .expect_err("unknown")
            .starts_with("unknown TCB status"));
    }

    #[test]
    fn explicit_set_and_debug() {
        let mut p = AcceptPolicy::accepting([TcbStatus::UpToDate, TcbStatus::SWHardeningNeeded]);
        assert_eq!(
            p.evaluate(&claims(TcbStatus::SWHardeningNeeded, false)),
            Ok(())
        );
        assert!(p.evaluate(&claims(TcbStatus::UpToDate, true)).is_err());
        p.allow_debug = true;
        assert_eq!(p.evaluate(&claims(TcbStatus::UpToDate, true)), Ok(()));
    }

    #[test]
    fn status_names() {
        assert_eq!(parse_tcb_status("UpToDate"), Some(TcbStatus::UpToDate));
        assert_eq!(
            parse_tcb_status("ConfigurationAndSWHardeningNeeded"),
            Some(TcbStatus::ConfigurationAndSWHardeningNeeded)
        );
        assert_eq!(parse_tcb_status("uptodate"), None);
    }
}
