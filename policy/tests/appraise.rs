#![allow(clippy::unwrap_used)]
mod common;

use common::*;
use tl_evidence::{TcbStatus, TeeKind};
use tl_policy::{appraise, AppraisalContext, Order, ReasonCode};

fn order() -> Order {
    Order::from_toml(&order_toml(&keys())).unwrap()
}

fn ctx() -> AppraisalContext {
    AppraisalContext {
        now_unix: EXPIRES - 1,
        version_floor: Some(3),
    }
}

#[test]
fn matching_claims_pass() {
    let o = order();
    let v = appraise(&o, &tdx_claims(), &ctx());
    assert!(v.passed(), "{v}");
    let v = appraise(&o, &snp_claims(), &ctx());
    assert!(v.passed(), "{v}");
}

#[test]
fn expiry_and_rollback() {
    let o = order();
    let c = tdx_claims();
    let at = |now, floor| {
        appraise(
            &o,
            &c,
            &AppraisalContext {
                now_unix: now,
                version_floor: floor,
            },
        )
        .codes()
    };
    assert_eq!(at(EXPIRES, None), vec![ReasonCode::OrderExpired]);
    assert_eq!(at(EXPIRES + 100, None), vec![ReasonCode::OrderExpired]);
    assert!(at(EXPIRES - 1, None).is_empty());
    assert_eq!(at(0, Some(4)), vec![ReasonCode::OrderRollback]);
    assert!(at(0, Some(3)).is_empty(), "equal version is allowed");
    assert!(at(0, Some(2)).is_empty());
    assert_eq!(
        at(EXPIRES, Some(9)),
        vec![ReasonCode::OrderExpired, ReasonCode::OrderRollback]
    );
}

#[test]
fn simulated_and_debug_rejected_by_default() {
    let o = order();
    let mut c = tdx_claims();
    c.simulated = true;
    c.debug = true;
    c.gpus[0].debug = true;
    assert_eq!(
        appraise(&o, &c, &ctx()).codes(),
        vec![
            ReasonCode::PlatformSimulated,
            ReasonCode::PlatformDebug,
            ReasonCode::GpuDebug
        ]
    );
    let allowed = o_with(&[(
        "allow_simulated = false",
        "allow_simulated = true\nallow_debug = true",
    )]);
    assert!(appraise(&allowed, &c, &ctx()).passed());
}

fn o_with(repl: &[(&str, &str)]) -> Order {
    let mut t = order_toml(&keys());
    for (a, b) in repl {
        assert!(t.contains(a));
        t = t.replacen(a, b, 1);
    }
    Order::from_toml(&t).unwrap()
}

#[test]
fn three_wrong_things_three_failures() {
    let o = order();
    let mut c = tdx_claims();
    c.tdx.as_mut().unwrap().mrtd[0] ^= 1;
    c.tdx.as_mut().unwrap().rtmr[3][47] ^= 1;
    c.tcb_status = TcbStatus::OutOfDate;
    let v = appraise(&o, &c, &ctx());
    assert_eq!(
        v.codes(),
        vec![
            ReasonCode::PlatformTcbStatus,
            ReasonCode::TdxMrtdMismatch,
            ReasonCode::TdxRtmrMismatch
        ]
    );
    assert!(
        v.failures[2].detail.starts_with("rtmr3 "),
        "{}",
        v.failures[2].detail
    );
}

#[test]
fn every_tdx_and_gpu_mismatch_listed() {
    let o = order();
    let mut c = tdx_claims();
    {
        let t = c.tdx.as_mut().unwrap();
        t.mrtd = [0; 48];
        t.rtmr.truncate(1);
        t.rtmr[0] = [0; 48];
        t.td_attributes = 0x1000_0001;
    }
    c.gpus[0].cc_mode = false;
    c.gpus[0].driver_version = "535.0".into();
    c.gpus[0].measurements.remove(&9);
    c.gpus.push(gpu(1));
    c.gpus[1].measurements.insert(9, h(0xee, 48));
    let v = appraise(&o, &c, &ctx());
    assert_eq!(
        v.codes(),
        vec![
            ReasonCode::TdxMrtdMismatch,
            ReasonCode::TdxRtmrMismatch, // rtmr0
            ReasonCode::TdxRtmrMismatch, // rtmr3 absent
            ReasonCode::TdxAttributesMismatch,
            ReasonCode::GpuCountMismatch,
            ReasonCode::GpuCcModeOff,
            ReasonCode::GpuDriverVersion,
            ReasonCode::GpuMeasurementMismatch,
            ReasonCode::GpuMeasurementMismatch,
        ],
        "{v}"
    );
}

#[test]
fn every_snp_mismatch_listed() {
    let o = order();
    let mut c = snp_claims();
    {
        let s = c.snp.as_mut().unwrap();
        s.measurement = [0xa2; 48];
        s.host_data = [0; 32];
        s.policy |= 1 << 19;
        s.reported_tcb = 99;
        s.vmpl = 2;
    }
    assert_eq!(
        appraise(&o, &c, &ctx()).codes(),
        vec![
            ReasonCode::SnpMeasurementMismatch,
            ReasonCode::SnpHostDataMismatch,
            ReasonCode::SnpDebugPolicy,
            ReasonCode::SnpTcbTooLow,
            ReasonCode::SnpVmplMismatch,
        ]
    );
}

#[test]
fn missing_claims_fail_closed() {
    let o = order();
    let mut c = tdx_claims();
    c.tdx = None;
    c.gpus.clear();
    assert_eq!(
        appraise(&o, &c, &ctx()).codes(),
        vec![
            ReasonCode::PlatformClaimsMissing,
            ReasonCode::GpuCountMismatch
        ]
    );
    let mut c = snp_claims();
    c.snp = None;
    assert_eq!(
        appraise(&o, &c, &ctx()).codes(),
        vec![ReasonCode::PlatformClaimsMissing]
    );
}

#[test]
fn tee_kind_must_be_allowed() {
    let o = order();
    let mut c = tdx_claims();
    c.tee = TeeKind::Tpm;
    assert_eq!(
        appraise(&o, &c, &ctx()).codes(),
        vec![ReasonCode::PlatformTeeNotAllowed]
    );
}

#[test]
fn tpm_pcrs() {
    let want = h(0x77, 32);
    let o = o_with(&[(
        "[platform.gpu]",
        &format!("[platform.tpm.pcrs.sha256]\n0 = \"{want}\"\n7 = \"{want}\"\n\n[platform.gpu]"),
    )]);
    let mut c = tdx_claims();
    let v = appraise(&o, &c, &ctx());
    assert_eq!(v.codes(), vec![ReasonCode::PlatformClaimsMissing]);
    c.tpm = Some(tpm_claims(&want.to_uppercase()));
    let v = appraise(&o, &c, &ctx());
    assert_eq!(v.codes(), vec![ReasonCode::TpmPcrMismatch], "{v}");
    assert!(v.failures[0].detail.contains("sha256:7"));
    c.tpm = Some(tpm_claims(&h(0, 32)));
    assert_eq!(
        appraise(&o, &c, &ctx()).codes(),
        vec![ReasonCode::TpmPcrMismatch, ReasonCode::TpmPcrMismatch]
    );
}

#[test]
fn no_gpu_section_means_no_gpu() {
    let t = order_toml(&keys());
    let start = t.find("[platform.gpu]").unwrap();
    let end = t.find("[[components]]").unwrap();
    let t = format!("{}{}", &t[..start], &t[end..]);
    let o = Order::from_toml(&t).unwrap();
    let mut c = tdx_claims();
    assert_eq!(
        appraise(&o, &c, &ctx()).codes(),
        vec![ReasonCode::GpuCountMismatch]
    );
    c.gpus.clear();
    assert!(appraise(&o, &c, &ctx()).passed());
}

#[test]
fn reason_codes_are_unique_screaming_snake() {
    let mut seen = std::collections::BTreeSet::new();
    for c in ReasonCode::ALL {
        let s = c.as_str();
        assert!(
            s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
            "{s}"
        );
        assert!(seen.insert(s), "{s}");
    }
}

fn switch(index: u32) -> tl_evidence::NvSwitchClaims {
    tl_evidence::NvSwitchClaims {
        index,
        tnvl_mode: true,
        locked: true,
        vbios_version: "96.10.55.00.01".into(),
        measurements: [(1, h(0x51, 48)), (2, h(0x52, 48))].into_iter().collect(),
    }
}

fn with_switch_section(section: &str) -> Order {
    let t = order_toml(&keys());
    let at = t.find("[[components]]").unwrap();
    Order::from_toml(&format!("{}{section}\n\n{}", &t[..at], &t[at..])).unwrap()
}

#[test]
fn no_nvswitch_section_means_no_nvswitch() {
    let o = order();
    let mut c = tdx_claims();
    assert!(appraise(&o, &c, &ctx()).passed());
    c.nvswitches.push(switch(0));
    assert_eq!(
        appraise(&o, &c, &ctx()).codes(),
        vec![ReasonCode::NvSwitchCountMismatch]
    );
}

#[test]
fn every_nvswitch_mismatch_listed() {
    let o = with_switch_section(&format!(
        "[platform.nvswitch]\ncount = 2\nvbios_versions = [\"96.10.55.00.01\"]\n\
         measurements = {{ 1 = \"{}\", 2 = \"{}\" }}",
        h(0x51, 48),
        h(0x52, 48)
    ));
    let mut c = tdx_claims();
    c.nvswitches = vec![switch(0), switch(1)];
    assert!(appraise(&o, &c, &ctx()).passed());
    c.nvswitches[0].locked = false;
    c.nvswitches[1].tnvl_mode = false;
    c.nvswitches[1].vbios_version = "96.10.54.00.01".into();
    c.nvswitches[1].measurements.insert(1, h(0xee, 48));
    c.nvswitches[1].measurements.remove(&2);
    c.nvswitches.push(switch(2));
    let v = appraise(&o, &c, &ctx());
    assert_eq!(
        v.codes(),
        vec![
            ReasonCode::NvSwitchCountMismatch,
            ReasonCode::NvSwitchTnvlOff,
            ReasonCode::NvSwitchTnvlOff,
            ReasonCode::NvSwitchVbiosVersion,
            ReasonCode::NvSwitchMeasurementMismatch,
            ReasonCode::NvSwitchMeasurementMismatch,
        ],
        "{v}"
    );
    let text = v.to_string();
    assert!(
        text.contains("NVSwitch 0 trusted NVLink mode on, not locked"),
        "{text}"
    );
    assert!(text.contains("NVSwitch 1 measurement 2 absent"), "{text}");
}

#[test]
fn nvswitch_section_is_strict() {
    let t = order_toml(&keys());
    let at = t.find("[[components]]").unwrap();
    for bad in [
        "[platform.nvswitch]\ncount = 65",
        "[platform.nvswitch]\ncount = 1\ncc_mode = true",
        "[platform.nvswitch]\ncount = 1\nmeasurements = { 256 = \"00\" }",
        "[platform.nvswitch]\ncount = 1\nmeasurements = { 1 = \"zz\" }",
    ] {
        let text = format!("{}{bad}\n\n{}", &t[..at], &t[at..]);
        assert!(Order::from_toml(&text).is_err(), "{bad}");
    }
}
