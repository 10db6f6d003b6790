//! `tl-ca fetch-collateral` against a mock PCCS over real TLS, serving the
//! real Intel collateral of dcap-qvl's TDX quote in the PCS v4 shapes (issuer
//! chains URL-encoded in headers): the installed directory is what the CA
//! loads and the quote verifies UpToDate with it; a lying, incomplete or
//! stale server plants nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod mock_https;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use mock_https::{MockHttps, Route};
use tl_ca::kds::KdsClient;
use tl_ca::pccs::{fetch_collateral, CollateralRequest, PckCa};
use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
use tl_evidence::dcap::DcapTee;
use tl_evidence::verify::{verify_bundle, Collateral, TrustAnchors, VerifyOptions};

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/testdata/tdx/dcap-qvl/"
);
/// MANIFEST.md: dcap-qvl `tdx_quote` + collateral verify at 2025-07-19T10:00:34Z.
const T: u64 = 1_752_919_234;
const FMSPC: [u8; 6] = [0xb0, 0xc0, 0x6f, 0, 0, 0];

fn read(name: &str) -> Vec<u8> {
    let p = format!("{DATA}{name}");
    std::fs::read(&p).unwrap_or_else(|e| panic!("test data {p} missing: {e}"))
}

fn enc(pem: &str) -> String {
    percent_encoding::utf8_percent_encode(pem, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// The PCCS routes for the collateral JSON, with `edit` applied to the
/// route table.
fn routes(edit: impl FnOnce(&mut HashMap<String, Route>)) -> HashMap<String, Route> {
    let c: serde_json::Value = serde_json::from_slice(&read("tdx_quote_collateral.json")).unwrap();
    let s = |k: &str| c[k].as_str().unwrap().to_owned();
    let mut r = HashMap::new();
    r.insert(
        "/tdx/certification/v4/tcb?fmspc=b0c06f000000".to_owned(),
        Route {
            body: format!(
                "{{\"tcbInfo\":{},\"signature\":\"{}\"}}",
                s("tcb_info"),
                s("tcb_info_signature")
            )
            .into_bytes(),
            headers: vec![(
                "TCB-Info-Issuer-Chain".into(),
                enc(&s("tcb_info_issuer_chain")),
            )],
        },
    );
    r.insert(
        "/tdx/certification/v4/qe/identity".to_owned(),
        Route {
            body: format!(
                "{{\"enclaveIdentity\":{},\"signature\":\"{}\"}}",
                s("qe_identity"),
                s("qe_identity_signature")
            )
            .into_bytes(),
            headers: vec![(
                "SGX-Enclave-Identity-Issuer-Chain".into(),
                enc(&s("qe_identity_issuer_chain")),
            )],
        },
    );
    r.insert(
        "/sgx/certification/v4/pckcrl?ca=platform&encoding=der".to_owned(),
        Route {
            body: hex::decode(s("pck_crl")).unwrap(),
            headers: vec![(
                "SGX-PCK-CRL-Issuer-Chain".into(),
                enc(&s("pck_crl_issuer_chain")),
            )],
        },
    );
    // A PCCS answers the root CA CRL as hex text.
    r.insert(
        "/sgx/certification/v4/rootcacrl".to_owned(),
        Route::body(s("root_ca_crl").into_bytes()),
    );
    edit(&mut r);
    r
}

fn client(m: &MockHttps) -> KdsClient {
    KdsClient::new(
        &m.url,
        Some(std::slice::from_ref(&m.root_der)),
        Duration::from_secs(10),
    )
    .unwrap()
}

fn req() -> CollateralRequest {
    CollateralRequest {
        tee: DcapTee::Tdx,
        fmspc: FMSPC,
        ca: PckCa::Platform,
    }
}

fn empty(d: &Path) -> bool {
    std::fs::read_dir(d).unwrap().next().is_none()
}

#[test]
fn fetched_collateral_installs_where_the_ca_loads_it_and_the_quote_verifies() {
    let m = mock_https::serve(routes(|_| {}));
    let out = tempfile::tempdir().unwrap();
    let dir = fetch_collateral(&client(&m), &req(), out.path(), T).unwrap();
    assert_eq!(dir, out.path().join("tdx-b0c06f000000"));
    // The CA's loader reads the directory, keyed by TEE and FMSPC.
    let store = tl_ca::collateral::load_collateral_dir(out.path()).unwrap();
    assert!(!store.is_empty());
    let col = tl_ca::collateral::read_collateral(&dir).unwrap();
    assert_eq!(col.fmspc(), FMSPC);
    // The real quote verifies with it: UpToDate, as its source says.
    let bundle = EvidenceBundle::new(CpuEvidence {
        kind: CpuEvidenceKind::TdxQuote,
        quote: read("tdx_quote"),
        certificates: vec![],
    });
    let mut opts = VerifyOptions::new(
        T,
        TrustAnchors::intel(tl_evidence::INTEL_SGX_ROOT_CA_DER.to_vec()),
    );
    opts.collateral = Some(Collateral::tdx(col));
    let v = verify_bundle(&bundle, &opts).unwrap();
    assert_eq!(v.claims.tcb_status, tl_evidence::TcbStatus::UpToDate);
    // Fetching again replaces the directory; nothing else is left.
    fetch_collateral(&client(&m), &req(), out.path(), T).unwrap();
    let names: Vec<_> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["tdx-b0c06f000000".to_owned()]);
}

#[test]
fn a_lying_incomplete_or_stale_server_plants_nothing() {
    let cases: Vec<(&str, HashMap<String, Route>, u64, &str)> = vec![
        (
            "a TCB info byte changed",
            routes(|r| {
                let b = &mut r
                    .get_mut("/tdx/certification/v4/tcb?fmspc=b0c06f000000")
                    .unwrap()
                    .body;
                let i = b.windows(9).position(|w| w == b"\"tcbDate\"").unwrap();
                b[i + 12] ^= 1; // a digit of the first level's date
            }),
            T,
            "PCCS_RESPONSE_REFUSED",
        ),
        (
            "no issuer chain header",
            routes(|r| {
                r.get_mut("/tdx/certification/v4/qe/identity")
                    .unwrap()
                    .headers
                    .clear();
            }),
            T,
            "PCCS_ISSUER_CHAIN_HEADER",
        ),
        (
            "no PCK CRL",
            routes(|r| {
                r.remove("/sgx/certification/v4/pckcrl?ca=platform&encoding=der");
            }),
            T,
            "PCCS_HTTP_STATUS",
        ),
        (
            "a PCK CRL signed by someone else",
            routes(|r| {
                let crl = &mut r
                    .get_mut("/sgx/certification/v4/pckcrl?ca=platform&encoding=der")
                    .unwrap()
                    .body;
                let n = crl.len();
                crl[n - 5] ^= 1; // inside the signature
            }),
            T,
            "PCCS_RESPONSE_REFUSED",
        ),
        (
            "stale (a year later)",
            routes(|_| {}),
            T + 365 * 86_400,
            "PCCS_RESPONSE_REFUSED",
        ),
    ];
    for (what, r, now, want) in cases {
        let m = mock_https::serve(r);
        let out = tempfile::tempdir().unwrap();
        let err = fetch_collateral(&client(&m), &req(), out.path(), now).unwrap_err();
        assert_eq!(err.code(), want, "{what}: {err}");
        assert!(empty(out.path()), "{what}: something was written");
    }
    // Collateral for another platform served under the FMSPC asked for.
    let other = [0x90, 0xc0, 0x6f, 0, 0, 0];
    let m = mock_https::serve(routes(|r| {
        let tcb = r
            .remove("/tdx/certification/v4/tcb?fmspc=b0c06f000000")
            .unwrap();
        r.insert("/tdx/certification/v4/tcb?fmspc=90c06f000000".into(), tcb);
    }));
    let out = tempfile::tempdir().unwrap();
    let asked = CollateralRequest {
        fmspc: other,
        ..req()
    };
    let err = fetch_collateral(&client(&m), &asked, out.path(), T).unwrap_err();
    assert_eq!(err.code(), "PCCS_RESPONSE_REFUSED");
    assert!(err.to_string().contains("PCCS_WRONG_COLLATERAL"), "{err}");
    assert!(empty(out.path()));
}

#[test]
fn binary_fetch_collateral_and_its_guards() {
    let bin = env!("CARGO_BIN_EXE_tl-ca");
    let m = mock_https::serve(routes(|_| {}));
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("pccs-root.pem");
    std::fs::write(&root, &m.root_pem).unwrap();
    let out = d.path().join("pcs");
    std::fs::create_dir(&out).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .arg("fetch-collateral")
            .args(args)
            .output()
            .unwrap()
    };
    // Today the dcap-qvl collateral (July 2025) is stale: refused, nothing written.
    let o = run(&[
        "--pccs-url",
        &m.url,
        "--pccs-ca-root",
        root.to_str().unwrap(),
        "--fmspc",
        "b0c06f000000",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("PCCS_RESPONSE_REFUSED"), "{err}");
    assert!(empty(&out));
    // Another URL without its TLS root is refused before any request.
    let o = run(&[
        "--pccs-url",
        &m.url,
        "--fmspc",
        "b0c06f000000",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("--pccs-ca-root is required"));
    // Bad arguments.
    for args in [
        vec!["--fmspc", "b0c06f", "--out", out.to_str().unwrap()],
        vec![
            "--fmspc",
            "b0c06f000000",
            "--tee",
            "sev",
            "--out",
            out.to_str().unwrap(),
        ],
        vec!["--out", out.to_str().unwrap()],
    ] {
        let o = run(&args);
        assert!(!o.status.success(), "{args:?}");
    }
    assert!(empty(&out));
}
