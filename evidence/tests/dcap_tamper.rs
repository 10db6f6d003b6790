//! Tampering with DCAP collateral: every altered item is rejected with its
//! own reason code. Test data is read at run time; a missing file fails.

use serde_json::Value;
use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
use tl_evidence::dcap::TdxCollateral;
use tl_evidence::tdx::verify::verify_quote_signatures;
use tl_evidence::verify::{tdx_claims, verify_bundle, Collateral, TrustAnchors, VerifyOptions};
use tl_evidence::{AcceptPolicy, EvidenceError, TcbStatus, INTEL_SGX_ROOT_CA_DER};

const NOW: u64 = 1_752_919_234;

fn data(rel: &str) -> Vec<u8> {
    let path = format!("{}/../../shared/testdata/{rel}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("test data {path}: {e}"))
}

fn collateral_json() -> Value {
    serde_json::from_slice(&data("tdx/dcap-qvl/tdx_quote_collateral.json")).expect("JSON")
}

fn run(j: &Value) -> Result<TcbStatus, EvidenceError> {
    let col = TdxCollateral::from_json(&serde_json::to_vec(j).expect("JSON"))?;
    let opts = VerifyOptions {
        now_unix: NOW,
        anchors: TrustAnchors::intel(INTEL_SGX_ROOT_CA_DER.to_vec()),
        collateral: Some(Collateral::tdx(col)),
        expected_nonce: None,
        gpu_anchors: tl_evidence::nvidia::GpuAnchors::nvidia(),
    };
    let b = EvidenceBundle::new(CpuEvidence {
        kind: CpuEvidenceKind::TdxQuote,
        quote: data("tdx/dcap-qvl/tdx_quote"),
        certificates: vec![],
    });
    verify_bundle(&b, &opts).map(|v| v.claims.tcb_status)
}

fn set(j: &mut Value, key: &str, v: String) {
    j[key] = Value::String(v);
}

fn get(j: &Value, key: &str) -> String {
    j[key].as_str().expect("string field").to_string()
}

/// Flip one hex digit at `at` (counted from the end when negative).
fn flip_hex(s: &str, at: isize) -> String {
    let mut b = s.as_bytes().to_vec();
    let i = if at < 0 {
        b.len() - at.unsigned_abs()
    } else {
        at as usize
    };
    b[i] = if b[i] == b'0' { b'1' } else { b'0' };
    String::from_utf8(b).expect("ascii")
}

#[test]
fn untouched_collateral_verifies() {
    assert_eq!(run(&collateral_json()), Ok(TcbStatus::UpToDate));
}

#[test]
fn tcb_info_json_edit_breaks_its_signature() {
    let mut j = collateral_json();
    let t = get(&j, "tcb_info").replace(
        "\"tcbEvaluationDataNumber\":17",
        "\"tcbEvaluationDataNumber\":18",
    );
    assert_ne!(t, get(&j, "tcb_info"));
    set(&mut j, "tcb_info", t);
    assert_eq!(run(&j), Err(EvidenceError::TdxTcbInfoSignature));
    // Even a change of whitespace only: the signature covers exact bytes.
    let mut j = collateral_json();
    let t = get(&j, "tcb_info").replacen(',', ", ", 1);
    set(&mut j, "tcb_info", t);
    assert_eq!(run(&j), Err(EvidenceError::TdxTcbInfoSignature));
}

#[test]
fn tcb_info_signature_flip() {
    for at in [0, 31, 64, -1] {
        let mut j = collateral_json();
        let s = flip_hex(&get(&j, "tcb_info_signature"), at);
        set(&mut j, "tcb_info_signature", s);
        assert_eq!(run(&j), Err(EvidenceError::TdxTcbInfoSignature), "at {at}");
    }
}

#[test]
fn qe_identity_json_edit_breaks_its_signature() {
    let mut j = collateral_json();
    let q = get(&j, "qe_identity").replace("\"isvprodid\":2", "\"isvprodid\":3");
    assert_ne!(q, get(&j, "qe_identity"));
    set(&mut j, "qe_identity", q);
    assert_eq!(run(&j), Err(EvidenceError::TdxQeIdentitySignature));
}

#[test]
fn qe_identity_signature_flip() {
    for at in [0, 40, -1] {
        let mut j = collateral_json();
        let s = flip_hex(&get(&j, "qe_identity_signature"), at);
        set(&mut j, "qe_identity_signature", s);
        assert_eq!(
            run(&j),
            Err(EvidenceError::TdxQeIdentitySignature),
            "at {at}"
        );
    }
}

#[test]
fn crl_flips() {
    // The last hex digit is in the CRL's signature; the digit at 400 is in
    // the signed list of revoked certificates (PCK CRL) / the signed body.
    for (key, at) in [
        ("pck_crl", -1),
        ("pck_crl", 400),
        ("root_ca_crl", -1),
        ("root_ca_crl", 200),
    ] {
        let mut j = collateral_json();
        let s = flip_hex(&get(&j, key), at);
        set(&mut j, key, s);
        let e = run(&j).expect_err(key);
        assert_eq!(e.code(), "TDX_CRL_INVALID", "{key} at {at}: {e}");
    }
}

#[test]
fn truncated_or_malformed_items() {
    let mut j = collateral_json();
    let s = get(&j, "pck_crl");
    set(&mut j, "pck_crl", s[..s.len() - 20].to_string());
    assert_eq!(
        run(&j).expect_err("truncated CRL").code(),
        "TDX_CRL_INVALID"
    );

    let mut j = collateral_json();
    set(&mut j, "tcb_info", "{\"id\":\"TDX\"".into());
    assert_eq!(
        run(&j).expect_err("bad JSON").code(),
        "TDX_COLLATERAL_MALFORMED"
    );

    let mut j = collateral_json();
    set(&mut j, "tcb_info_signature", "abcd".into());
    assert_eq!(
        run(&j).expect_err("short sig").code(),
        "TDX_COLLATERAL_MALFORMED"
    );

    let mut j = collateral_json();
    set(&mut j, "tcb_info_issuer_chain", "not PEM".into());
    assert_eq!(
        run(&j).expect_err("bad chain").code(),
        "TDX_COLLATERAL_MALFORMED"
    );

    let mut j = collateral_json();
    j.as_object_mut().expect("object").remove("qe_identity");
    assert_eq!(
        run(&j).expect_err("missing").code(),
        "TDX_COLLATERAL_MALFORMED"
    );

    for bad in [&b""[..], b"null", b"[]", b"{\"tcb_info\":1}"] {
        assert_eq!(
            TdxCollateral::from_json(bad).expect_err("junk").code(),
            "TDX_COLLATERAL_MALFORMED"
        );
    }
}

#[test]
fn issuer_chain_swapped_for_another_chain() {
    // The PCK CRL issuer chain in place of the TCB signing chain: it links
    // to the Intel root, but its leaf did not sign the TCB info.
    let mut j = collateral_json();
    let c = get(&j, "pck_crl_issuer_chain");
    set(&mut j, "tcb_info_issuer_chain", c);
    assert_eq!(run(&j), Err(EvidenceError::TdxTcbInfoSignature));
    // A chain whose top is not the Intel root (the leaf twice).
    let mut j = collateral_json();
    let c = get(&j, "tcb_info_issuer_chain");
    let end = "-----END CERTIFICATE-----";
    let leaf = &c[..c.find(end).expect("PEM") + end.len()];
    set(&mut j, "tcb_info_issuer_chain", format!("{leaf}\n{leaf}\n"));
    assert_eq!(
        run(&j).expect_err("bad chain").code(),
        "TDX_COLLATERAL_CHAIN"
    );
    // Each issuer chain is exactly its signer and the root (Intel's QVL):
    // the signer alone does not parse, the root twice is refused though it
    // links.
    let short = EvidenceError::TdxCollateralChain(
        "an issuer chain is not its signer and the root (2 certificates)",
    );
    for key in [
        "tcb_info_issuer_chain",
        "qe_identity_issuer_chain",
        "pck_crl_issuer_chain",
    ] {
        let c = get(&collateral_json(), key);
        let first = &c[..c.find(end).expect("PEM") + end.len()];
        let root = &c[c.find(end).expect("PEM") + end.len()..];
        let mut j = collateral_json();
        set(&mut j, key, first.to_string());
        assert_eq!(
            run(&j).map_err(|e| e.code()),
            Err("TDX_COLLATERAL_MALFORMED"),
            "{key}: signer alone"
        );
        let mut j = collateral_json();
        set(&mut j, key, format!("{c}{root}"));
        assert_eq!(run(&j), Err(short.clone()), "{key}: root twice");
    }
}

#[test]
fn debug_td_is_rejected_by_default_policy() {
    // trustee's tdx_quote_4.dat is a debug TD. Its chain verifies; whatever
    // TCB status collateral would give, the default policy refuses debug.
    let q = data("tdx/trustee/tdx_quote_4.dat");
    let anchors = TrustAnchors::intel(INTEL_SGX_ROOT_CA_DER.to_vec());
    let vq = verify_quote_signatures(&q, &anchors, 1_688_173_200).expect("signatures verify");
    let claims = tdx_claims(&vq, TcbStatus::UpToDate);
    assert!(claims.debug);
    let e = AcceptPolicy::default()
        .evaluate(&claims)
        .expect_err("debug");
    assert_eq!(
        e.iter().map(|r| r.code).collect::<Vec<_>>(),
        ["DEBUG_NOT_ALLOWED"]
    );
    let lenient = AcceptPolicy {
        allow_debug: true,
        ..AcceptPolicy::default()
    };
    assert_eq!(lenient.evaluate(&claims), Ok(()));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Collateral parsing is total: random byte edits and truncations give
    /// `Ok` or a typed error, never a panic.
    #[test]
    fn collateral_parsing_is_total(pos in 0usize..16_072, byte in proptest::prelude::any::<u8>()) {
        let mut raw = data("tdx/dcap-qvl/tdx_quote_collateral.json");
        let i = pos % raw.len();
        raw[i] = byte;
        let _ = TdxCollateral::from_json(&raw);
        let _ = TdxCollateral::from_json(&raw[..i]);
    }

    #[test]
    fn crl_parsing_is_total(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let _ = tl_evidence::dcap::crl::Crl::parse(&bytes, "fuzz");
    }
}
