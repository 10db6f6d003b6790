//! dcap-qvl's whole verifier on this crate's crypto (`dcap::reference`):
//! the verdicts the sources assert for the real quotes (MANIFEST.md), the
//! same as this crate's own verifier gives, for both collateral shapes, and
//! rejection of tampered quotes and collateral.

use tl_evidence::dcap::reference::{verify_with_dcap_qvl, ReferenceVerdict};
use tl_evidence::dcap::{CollateralParts, TdxCollateral};
use tl_evidence::INTEL_SGX_ROOT_CA_DER;

fn data(rel: &str) -> Vec<u8> {
    let path = format!("{}/../../shared/testdata/{rel}", env!("CARGO_MANIFEST_DIR"));
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("test data {path}: {e}"));
    if rel.ends_with(".hex") || rel.ends_with(".txt") {
        let s = String::from_utf8(raw).expect("hex text");
        hex::decode(s.trim().trim_start_matches("0x")).expect("hex")
    } else {
        raw
    }
}

fn col(rel: &str) -> TdxCollateral {
    TdxCollateral::from_json(&data(rel)).expect("collateral parses")
}

fn reference(quote: &[u8], col: &TdxCollateral, now: u64) -> Result<ReferenceVerdict, String> {
    verify_with_dcap_qvl(quote, col, INTEL_SGX_ROOT_CA_DER, now, false)
}

const TDX_NOW: u64 = 1_752_919_234;

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
    let g = |f: &str| data(&format!("tdx/go-tdx-guest/{f}"));
    let c = TdxCollateral::from_parts(CollateralParts {
        tcb_info_response: &g("sample_tcbInfo_response"),
        qe_identity_response: &g("sample_qeIdentity_response"),
        tcb_info_issuer_chain: &g("tcbinfo_issuer_chain.pem"),
        qe_identity_issuer_chain: &g("qeidentity_issuer_chain.pem"),
        pck_crl_issuer_chain: &g("pckcrl_issuer_chain.pem"),
        pck_crl: &g("pckcrl"),
        root_ca_crl: &g("rootcrl.der"),
    })
    .expect("parses");
    let e = reference(&g("tdx_prod_quote_SPR_E4.dat"), &c, 1_688_173_200).expect_err("no level");
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
