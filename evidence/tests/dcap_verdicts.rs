//! DCAP appraisal of real quotes with their collateral, at the times the
//! sources verified them (see shared/testdata/MANIFEST.md), and tampering
//! of every collateral item. Test data is read at run time; a missing file
//! fails the test.

use std::sync::Arc;

use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
use tl_evidence::dcap::{CollateralParts, TdxCollateral};
use tl_evidence::verify::{verify_bundle, Collateral, TrustAnchors, VerifyOptions};
use tl_evidence::{AcceptPolicy, EvidenceError, TcbStatus, INTEL_SGX_ROOT_CA_DER};

fn data(rel: &str) -> Vec<u8> {
    let path = format!("{}/../../shared/testdata/{rel}", env!("CARGO_MANIFEST_DIR"));
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("test data {path}: {e}"));
    if rel.ends_with(".hex") || rel.ends_with(".txt") {
        let s = String::from_utf8(raw).expect("hex text");
        let s = s.trim().trim_start_matches("0x");
        hex::decode(s).expect("hex")
    } else {
        raw
    }
}

fn bundle(quote: Vec<u8>) -> EvidenceBundle {
    EvidenceBundle::new(CpuEvidence {
        kind: CpuEvidenceKind::TdxQuote,
        quote,
        certificates: vec![],
    })
}

fn verify(
    quote: &str,
    col: TdxCollateral,
    now: u64,
) -> Result<tl_evidence::VerifiedEvidence, EvidenceError> {
    let opts = VerifyOptions {
        now_unix: now,
        anchors: TrustAnchors::intel(INTEL_SGX_ROOT_CA_DER.to_vec()),
        collateral: Some(Collateral::tdx(col)),
        expected_nonce: None,
        gpu_anchors: tl_evidence::nvidia::GpuAnchors::nvidia(),
    };
    verify_bundle(&bundle(data(quote)), &opts)
}

fn col(rel: &str) -> TdxCollateral {
    TdxCollateral::from_json(&data(rel)).expect("collateral parses")
}

const TDX_NOW: u64 = 1_752_919_234;
const TDX_COL: &str = "tdx/dcap-qvl/tdx_quote_collateral.json";
const TDX_QUOTE: &str = "tdx/dcap-qvl/tdx_quote";

#[test]
fn shipped_root_is_the_test_data_root() {
    assert_eq!(
        INTEL_SGX_ROOT_CA_DER,
        data("tdx/dcap-qvl/TrustedRootCA.der")
    );
}

#[test]
fn dcap_qvl_tdx_quote_is_up_to_date() {
    let v = verify(TDX_QUOTE, col(TDX_COL), TDX_NOW).expect("verifies");
    assert_eq!(v.claims.tcb_status, TcbStatus::UpToDate);
    assert!(v.claims.advisory_ids.is_empty());
    assert!(!v.claims.simulated);
    assert_eq!(AcceptPolicy::default().evaluate(&v.claims), Ok(()));
}

#[test]
fn dcap_qvl_tdx_quote_outdated_has_no_matching_level() {
    let e = verify(
        "tdx/dcap-qvl/tdx_quote_outdated",
        col("tdx/dcap-qvl/tdx_quote_outdated_collateral.json"),
        1_774_003_274,
    )
    .expect_err("no level");
    assert_eq!(e.code(), "TDX_TCB_LEVEL_NOT_FOUND", "{e}");
    // MANIFEST.md: SGX TCB component 8 of the PCK is 3, every level needs 5.
    assert_eq!(
        e,
        EvidenceError::TdxTcbLevelNotFound(
            "platform",
            "the lowest level (2018-01-04T00:00:00Z) needs more: \
             SGX component 8 (CPUSVN[7]) is 3, needs 5"
                .into()
        )
    );
}

/// go-tdx-guest's collateral, as separate PCS files (2023-06).
fn go_tdx_guest_collateral() -> TdxCollateral {
    let g = |f: &str| data(&format!("tdx/go-tdx-guest/{f}"));
    TdxCollateral::from_parts(CollateralParts {
        tcb_info_response: &g("sample_tcbInfo_response"),
        qe_identity_response: &g("sample_qeIdentity_response"),
        tcb_info_issuer_chain: &g("tcbinfo_issuer_chain.pem"),
        qe_identity_issuer_chain: &g("qeidentity_issuer_chain.pem"),
        pck_crl_issuer_chain: &g("pckcrl_issuer_chain.pem"),
        pck_crl: &g("pckcrl"),
        root_ca_crl: &g("rootcrl.der"),
    })
    .expect("separate-file collateral parses")
}

/// 2023-07-01T01:00:00Z, when go-tdx-guest verified its SPR E4 quote.
const GO_TDX_GUEST_NOW: u64 = 1_688_173_200;

#[test]
fn go_tdx_guest_quote_has_no_matching_level() {
    let e = verify(
        "tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat",
        go_tdx_guest_collateral(),
        GO_TDX_GUEST_NOW,
    )
    .expect_err("no level");
    // TEE_TCB_SVN 03 00 04 .. (MANIFEST.md): module version 0, so TDX
    // components count from the first byte.
    assert_eq!(
        e,
        EvidenceError::TdxTcbLevelNotFound(
            "platform",
            "the lowest level (2018-01-04T00:00:00Z) needs more: \
             SGX component 1 (CPUSVN[0]) is 3, needs 5; SGX component 2 (CPUSVN[1]) is 3, needs 5; \
             SGX component 5 (CPUSVN[4]) is 2, needs 3; SGX component 8 (CPUSVN[7]) is 2, needs 3; \
             TDX component 3 (TEE_TCB_SVN[2]) is 4, needs 5"
                .into()
        )
    );
}

#[test]
fn near_quote_is_up_to_date() {
    let now = 1_759_276_800; // 2025-10-01T00:00:00Z
    let v = verify(
        "tdx/dcap-qvl/near_quote_hex.txt",
        col("tdx/dcap-qvl/near_quote_collateral.json"),
        now,
    )
    .expect("verifies");
    assert_eq!(v.claims.tcb_status, TcbStatus::UpToDate);
}

#[test]
fn quote_v5_sample_with_outdated_collateral_is_up_to_date() {
    // Same FMSPC as tdx_quote_outdated's collateral (CROSSCHECK: UpToDate).
    let v = verify(
        "tdx/go-tdx-guest/quote_v5_sample.dat",
        col("tdx/dcap-qvl/tdx_quote_outdated_collateral.json"),
        1_774_003_274,
    )
    .expect("verifies");
    assert_eq!(v.claims.tcb_status, TcbStatus::UpToDate);
}

#[test]
fn collateral_for_another_fmspc_is_rejected() {
    // The near collateral covers 2025-10-01, when tdx_quote's PCK chain is
    // still valid; its TCB info is for FMSPC 20a06f000000.
    let e = verify(
        TDX_QUOTE,
        col("tdx/dcap-qvl/near_quote_collateral.json"),
        1_759_276_800,
    )
    .expect_err("other FMSPC");
    assert_eq!(e, EvidenceError::TdxFmspcMismatch);
}

#[test]
fn sgx_collateral_for_a_tdx_quote_is_rejected() {
    // Its PCK CRL is the Processor CA's; the TDX quote's PCK is issued by
    // the Platform CA, so the CRL cannot speak for it.
    let e = verify(
        TDX_QUOTE,
        col("tdx/dcap-qvl/sgx_quote_collateral.json"),
        1_752_919_277,
    )
    .expect_err("SGX collateral");
    assert_eq!(
        e,
        EvidenceError::TdxCrlInvalid("PCK CRL is not from the PCK certificate's issuer")
    );
}

#[test]
fn times_outside_the_window_are_rejected() {
    let c = Arc::new(col(TDX_COL));
    let (start, end) = c.validity_window();
    assert_eq!(end, TDX_NOW + 1);
    let run = |now| {
        let opts = VerifyOptions {
            now_unix: now,
            anchors: TrustAnchors::intel(INTEL_SGX_ROOT_CA_DER.to_vec()),
            collateral: Some(Collateral::Tdx(c.clone())),
            expected_nonce: None,
            gpu_anchors: tl_evidence::nvidia::GpuAnchors::nvidia(),
        };
        verify_bundle(&bundle(data(TDX_QUOTE)), &opts)
    };
    assert!(run(start).is_ok());
    assert!(run(end).is_ok());
    for now in [end + 1, end + 86_400 * 30, start - 1] {
        let e = run(now).expect_err("outside window");
        assert_eq!(e.code(), "TDX_COLLATERAL_EXPIRED", "at {now}: {e}");
    }
}

#[test]
fn missing_collateral_is_still_reported() {
    let opts = VerifyOptions::new(TDX_NOW, TrustAnchors::intel(INTEL_SGX_ROOT_CA_DER.to_vec()));
    let e = verify_bundle(&bundle(data(TDX_QUOTE)), &opts).expect_err("no collateral");
    assert_eq!(e.code(), "EVIDENCE_COLLATERAL_MISSING");
}

#[test]
fn dcap_qvl_sgx_quote_needs_configuration_and_sw_hardening() {
    use tl_evidence::dcap::sgx::verify_sgx_quote;
    let anchors = TrustAnchors::intel(INTEL_SGX_ROOT_CA_DER.to_vec());
    let v = verify_sgx_quote(
        &data("tdx/dcap-qvl/sgx_quote"),
        &anchors,
        &col("tdx/dcap-qvl/sgx_quote_collateral.json"),
        1_752_919_277,
    )
    .expect("verifies");
    assert_eq!(v.tcb.status, TcbStatus::ConfigurationAndSWHardeningNeeded);
    assert_eq!(v.tcb.advisory_ids, ["INTEL-SA-00289", "INTEL-SA-00615"]);
    assert_eq!(
        hex::encode(v.quote.report.mrenclave),
        "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
    );
    assert_eq!(&v.quote.report.report_data[..13], b"Hello, world!");
    // TDX collateral for an SGX quote: another TEE (its PCK CRL is the
    // Platform CA's while this PCK comes from the Processor CA).
    let e = verify_sgx_quote(
        &data("tdx/dcap-qvl/sgx_quote"),
        &anchors,
        &col(TDX_COL),
        TDX_NOW,
    )
    .expect_err("TDX collateral");
    assert_eq!(e.code(), "TDX_CRL_INVALID");
    // A TDX quote is not an SGX quote.
    let e = verify_sgx_quote(&data(TDX_QUOTE), &anchors, &col(TDX_COL), TDX_NOW)
        .expect_err("TDX quote");
    assert_eq!(e.code(), "EVIDENCE_UNSUPPORTED");
}

#[test]
fn sgx_quote_tampering() {
    use tl_evidence::dcap::sgx::verify_sgx_quote;
    let anchors = TrustAnchors::intel(INTEL_SGX_ROOT_CA_DER.to_vec());
    let c = col("tdx/dcap-qvl/sgx_quote_collateral.json");
    let q = data("tdx/dcap-qvl/sgx_quote");
    // MRENCLAVE (report body offset 64) -> quote signature.
    let mut t = q.clone();
    t[48 + 64] ^= 1;
    let e = verify_sgx_quote(&t, &anchors, &c, 1_752_919_277).expect_err("tampered");
    assert_eq!(e.code(), "TDX_QUOTE_SIGNATURE");
    for n in [0, 47, 48 + 384, 48 + 384 + 100, q.len() / 2] {
        assert!(verify_sgx_quote(&q[..n], &anchors, &c, 1_752_919_277).is_err());
    }
}

#[test]
fn a_device_under_another_root_marks_a_real_platform_simulated() {
    // A real, up-to-date TDX quote beside an NVSwitch chained to the
    // simulated NVIDIA root (trusted here by explicit option): the claims
    // must not read as a real platform.
    use tl_evidence::binding::nvswitch_nonce;
    use tl_evidence::bundle::NvSwitchEvidence;
    use tl_evidence::sim::{SimNvKind, SimTee};
    let sim = SimTee::from_seed([2; 32]);
    let d = sim.nvidia_device(SimNvKind::NvSwitch, 0);
    let nonce = b"enrollment nonce";
    let mut b = bundle(data(TDX_QUOTE));
    b.nvswitches.push(NvSwitchEvidence {
        index: 0,
        report: d.report(&nvswitch_nonce(nonce, 0)),
        certificates: d.chain_der().to_vec(),
    });
    let opts = VerifyOptions {
        now_unix: TDX_NOW,
        anchors: TrustAnchors::intel(INTEL_SGX_ROOT_CA_DER.to_vec()),
        collateral: Some(Collateral::tdx(col(TDX_COL))),
        expected_nonce: Some(nonce.to_vec()),
        gpu_anchors: tl_evidence::nvidia::GpuAnchors::nvidia()
            .and_der(&sim.nvidia_root_der())
            .expect("root"),
    };
    let v = verify_bundle(&b, &opts).expect("verifies");
    assert_eq!(v.claims.tcb_status, TcbStatus::UpToDate);
    assert!(!v.nvswitch_devices[0].nvidia_root);
    assert!(v.claims.simulated);
}

/// dcap-qvl's whole verifier on this crate's crypto (`dcap::reference`):
/// the verdicts the sources assert for the real quotes (MANIFEST.md), the
/// same as this crate's own verifier gives, for both collateral shapes, and
/// rejection of tampered quotes and collateral.
mod reference {
    use super::*;
    use tl_evidence::dcap::reference::{verify_with_dcap_qvl, ReferenceVerdict};

    fn reference(quote: &[u8], col: &TdxCollateral, now: u64) -> Result<ReferenceVerdict, String> {
        verify_with_dcap_qvl(quote, col, INTEL_SGX_ROOT_CA_DER, now, false)
    }

    fn up_to_date() -> Result<ReferenceVerdict, String> {
        Ok(ReferenceVerdict {
            status: "UpToDate".into(),
            advisory_ids: vec![],
        })
    }

    #[test]
    fn real_tdx_quotes() {
        let c = col("tdx/dcap-qvl/tdx_quote_collateral.json");
        assert_eq!(
            reference(&data("tdx/dcap-qvl/tdx_quote"), &c, TDX_NOW),
            up_to_date()
        );
        assert_eq!(
            reference(
                &data("tdx/dcap-qvl/near_quote_hex.txt"),
                &col("tdx/dcap-qvl/near_quote_collateral.json"),
                1_759_276_800
            ),
            up_to_date()
        );
        let e = reference(
            &data("tdx/dcap-qvl/tdx_quote_outdated"),
            &col("tdx/dcap-qvl/tdx_quote_outdated_collateral.json"),
            1_774_003_274,
        )
        .expect_err("no level");
        assert!(e.contains("No matching TCB level"), "{e}");
    }

    #[test]
    fn real_sgx_quote() {
        assert_eq!(
            reference(
                &data("tdx/dcap-qvl/sgx_quote"),
                &col("tdx/dcap-qvl/sgx_quote_collateral.json"),
                TDX_NOW
            ),
            Ok(ReferenceVerdict {
                status: "ConfigurationAndSWHardeningNeeded".into(),
                advisory_ids: vec!["INTEL-SA-00289".into(), "INTEL-SA-00615".into()],
            })
        );
    }

    /// Collateral assembled from separate PCS files goes back to dcap-qvl's
    /// shape (PEM chains, DER CRLs) intact: its signatures verify, and the
    /// verdict is the source's.
    #[test]
    fn collateral_from_parts() {
        let quote = data("tdx/go-tdx-guest/tdx_prod_quote_SPR_E4.dat");
        let e =
            reference(&quote, &go_tdx_guest_collateral(), GO_TDX_GUEST_NOW).expect_err("no level");
        assert!(e.contains("No matching TCB level"), "{e}");
    }

    #[test]
    fn tampering_is_rejected() {
        let quote = data("tdx/dcap-qvl/tdx_quote");
        let c = col("tdx/dcap-qvl/tdx_quote_collateral.json");
        // A byte of the TD report, of the quote signature, of the attestation
        // key, of the QE report.
        for at in [200usize, 640, 720, 800] {
            let mut q = quote.clone();
            q[at] ^= 1;
            assert!(reference(&q, &c, TDX_NOW).is_err(), "flip at {at}");
        }
        // Collateral: the TCB info signature.
        let mut j: serde_json::Value =
            serde_json::from_slice(&data("tdx/dcap-qvl/tdx_quote_collateral.json")).expect("json");
        let sig = j["tcb_info_signature"].as_str().expect("hex").to_string();
        let flipped = format!(
            "{}{}",
            if sig.starts_with('0') { "1" } else { "0" },
            &sig[1..]
        );
        j["tcb_info_signature"] = flipped.into();
        let bad = TdxCollateral::from_json(&serde_json::to_vec(&j).expect("json")).expect("parses");
        let e = reference(&quote, &bad, TDX_NOW).expect_err("bad signature");
        assert!(e.contains("tcb_info"), "{e}");
        // A time after the collateral's window, and a root it does not chain to.
        assert!(reference(&quote, &c, TDX_NOW + 365 * 86_400).is_err());
        let other_root = tl_evidence::sim::SimTee::from_seed([1; 32]).root_certificate_der();
        assert!(verify_with_dcap_qvl(&quote, &c, &other_root, TDX_NOW, false).is_err());
    }

    /// r || s to DER as dcap-qvl's own encoder: leading zeros dropped, a zero
    /// byte before a high bit.
    #[test]
    fn ecdsa_signature_encoding() {
        use dcap_qvl::config::EcdsaSigEncoder;
        use tl_evidence::dcap::reference::DerSigEncoder;
        let mut r = [0u8; 32];
        r[0] = 0x80;
        let mut s = [0u8; 32];
        s[31] = 0x05;
        let der = DerSigEncoder::encode_ecdsa_sig(&r, &s).expect("encodes");
        let mut want = vec![0x30, 0x26, 0x02, 0x21, 0x00];
        want.extend_from_slice(&r);
        want.extend_from_slice(&[0x02, 0x01, 0x05]);
        assert_eq!(der, want);
    }
}
