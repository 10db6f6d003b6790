//! `tl-ca fetch-vcek` / `fetch-amd-crl` against a mock KDS over real TLS,
//! and AMD CRL checking in the CA's verifier.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod mock_https;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tl_ca::kds::{KdsClient, VcekRequest};
use tl_ca::vcek_cache::{
    load_amd_crl_dir, AmdCrlVerifier, AmdCrls, VcekCache, VcekCachingVerifier,
};
use tl_ca::{EvidenceVerifier, SimAwareVerifier};
use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
use tl_evidence::sim::{SimSnpMeasurements, SimTee};
use tl_evidence::snp::Product;
use tl_evidence::verify::TrustAnchors;

use mock_https::MockHttps as MockKds;

const DATA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/testdata/sev-snp/"
);

fn read(rel: &str) -> Vec<u8> {
    let p = format!("{DATA}{rel}");
    std::fs::read(&p).unwrap_or_else(|e| panic!("test data {p} missing: {e}"))
}

/// 2025-06-01T00:00:00Z: inside trustee test-vcek.der's validity
/// (2023-01-24..2030-01-24) and AMD's Milan ASK/ARK.
const T_2025: u64 = 1_748_736_000;

/// A mock KDS: HTTPS on 127.0.0.1 with a fresh test CA, serving fixed
/// bodies by path and query.
fn mock_kds(routes: HashMap<String, Vec<u8>>) -> MockKds {
    mock_https::serve(
        routes
            .into_iter()
            .map(|(k, body)| (k, mock_https::Route::body(body)))
            .collect(),
    )
}

fn milan_request() -> (Vec<u8>, VcekRequest) {
    let report = read("trustee/test-report.bin");
    let req = VcekRequest::from_report(&report, Some(Product::Milan)).unwrap();
    (report, req)
}

fn client(m: &MockKds) -> KdsClient {
    KdsClient::new(
        &m.url,
        Some(std::slice::from_ref(&m.root_der)),
        Duration::from_secs(10),
    )
    .unwrap()
}

fn bundle(report: Vec<u8>, certs: Vec<Vec<u8>>) -> EvidenceBundle {
    EvidenceBundle::new(CpuEvidence {
        kind: CpuEvidenceKind::SnpReport,
        quote: report,
        certificates: certs,
    })
}

fn dir_is_empty(d: &Path) -> bool {
    std::fs::read_dir(d).unwrap().next().is_none()
}

#[test]
fn fetched_vcek_lands_where_the_cache_finds_it_and_the_report_verifies() {
    let (report, req) = milan_request();
    let key = req.key();
    assert!(key.kds_path().starts_with("vcek/v1/Milan/"));
    let m = mock_kds(HashMap::from([(
        format!("/{}", key.kds_path()),
        read("trustee/test-vcek.der"),
    )]));
    let dir = tempfile::tempdir().unwrap();
    let path = client(&m).fetch_vcek(&req, dir.path(), T_2025).unwrap();
    assert_eq!(path, dir.path().join(key.file_name()));
    assert_eq!(std::fs::read(&path).unwrap(), read("trustee/test-vcek.der"));
    // Only the certificate: no temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let cache = VcekCache::new(dir.path());
    assert_eq!(
        cache.lookup(&report).unwrap(),
        read("trustee/test-vcek.der")
    );
    let v = VcekCachingVerifier::new(SimAwareVerifier::new(TrustAnchors::default()), cache);
    let claims = v
        .verify(&bundle(report.clone(), vec![]), &[0u8; 32], T_2025)
        .unwrap();
    assert_eq!(
        hex::encode(claims.snp.unwrap().measurement),
        "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9050d3d38c"
    );
}

#[test]
fn a_lying_server_plants_nothing() {
    let (_, req) = milan_request();
    let key = req.key();
    let path = format!("/{}", key.kds_path());
    let mut flipped = read("trustee/test-vcek.der");
    let n = flipped.len();
    flipped[n - 20] ^= 1;
    for (served, reason) in [
        // Another Milan chip's genuine VCEK.
        (read("virtee-sev/vcek_milan.der"), "SNP_CHIP_ID_MISMATCH"),
        // A genuine Genoa VCEK.
        (
            read("trustee/e2e_evidence_vcek.der"),
            "SNP_WRONG_PRODUCT_CHAIN",
        ),
        // The right VCEK with its signature damaged.
        (flipped, "SNP_VCEK_CHAIN"),
        (b"not a certificate".to_vec(), ""),
    ] {
        let m = mock_kds(HashMap::from([(path.clone(), served)]));
        let dir = tempfile::tempdir().unwrap();
        let e = client(&m).fetch_vcek(&req, dir.path(), T_2025).unwrap_err();
        assert_eq!(e.code(), "KDS_RESPONSE_REFUSED", "{e}");
        if !reason.is_empty() {
            match &e {
                tl_ca::kds::KdsError::Refused { reason: r, .. } => {
                    assert_eq!(*r, reason, "{e}")
                }
                other => panic!("{other}"),
            }
        }
        assert!(dir_is_empty(dir.path()));
    }

    // A TCB other than the VCEK's: not the certificate asked for.
    let mut other = req.clone();
    other.reported_tcb = tl_evidence::snp::TcbVersion(req.reported_tcb.0 ^ 1);
    let m = mock_kds(HashMap::from([(
        format!("/{}", other.key().kds_path()),
        read("trustee/test-vcek.der"),
    )]));
    let dir = tempfile::tempdir().unwrap();
    let e = client(&m)
        .fetch_vcek(&other, dir.path(), T_2025)
        .unwrap_err();
    assert!(
        matches!(
            &e,
            tl_ca::kds::KdsError::Refused {
                reason: "SNP_TCB_MISMATCH",
                ..
            }
        ),
        "{e}"
    );
    assert!(dir_is_empty(dir.path()));

    // Not found, and an expired VCEK (after 2030-01-24).
    let m = mock_kds(HashMap::from([(path, read("trustee/test-vcek.der"))]));
    let e = client(&m)
        .fetch_vcek(&other, dir.path(), T_2025)
        .unwrap_err();
    assert_eq!(e.code(), "KDS_HTTP_STATUS");
    let e = client(&m)
        .fetch_vcek(&req, dir.path(), 1_900_000_000)
        .unwrap_err();
    assert_eq!(e.code(), "KDS_RESPONSE_REFUSED");
    assert!(dir_is_empty(dir.path()));
}

#[test]
fn tls_is_checked_and_only_https_is_used() {
    let (_, req) = milan_request();
    let m = mock_kds(HashMap::from([(
        format!("/{}", req.key().kds_path()),
        read("trustee/test-vcek.der"),
    )]));
    let other = mock_kds(HashMap::new());
    let dir = tempfile::tempdir().unwrap();
    let c = KdsClient::new(
        &m.url,
        Some(std::slice::from_ref(&other.root_der)),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(
        c.fetch_vcek(&req, dir.path(), T_2025).unwrap_err().code(),
        "KDS_HTTP"
    );
    assert!(dir_is_empty(dir.path()));
    for bad in ["http://127.0.0.1:1", "https://h/path", "https://"] {
        assert_eq!(
            KdsClient::new(bad, None, Duration::from_secs(1))
                .unwrap_err()
                .code(),
            "KDS_CONFIG",
            "{bad}"
        );
    }
}

#[test]
fn a_hanging_server_times_out_within_the_bound() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept and hold connections without ever answering.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming() {
            held.push(s);
        }
    });
    let (_, req) = milan_request();
    let m = mock_kds(HashMap::new());
    let c = KdsClient::new(
        &format!("https://{addr}"),
        Some(std::slice::from_ref(&m.root_der)),
        Duration::from_secs(2),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let t = Instant::now();
    let e = c.fetch_vcek(&req, dir.path(), T_2025).unwrap_err();
    let took = t.elapsed();
    assert_eq!(e.code(), "KDS_TIMEOUT", "{e}");
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    assert!(dir_is_empty(dir.path()));
}

#[test]
fn binary_fetch_vcek_and_its_guards() {
    let (_, req) = milan_request();
    let m = mock_kds(HashMap::from([(
        format!("/{}", req.key().kds_path()),
        read("trustee/test-vcek.der"),
    )]));
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("kds-root.pem");
    std::fs::write(&root, &m.root_pem).unwrap();
    let cache = tmp.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    let bin = env!("CARGO_BIN_EXE_tl-ca");
    let report = format!("{DATA}trustee/test-report.bin");

    // A non-default URL without --kds-ca-root is refused before any request.
    let out = std::process::Command::new(bin)
        .args(["fetch-vcek", "--kds-url", &m.url, "--product", "Milan"])
        .args(["--report", &report, "--cache-dir"])
        .arg(&cache)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--kds-ca-root"));
    assert!(dir_is_empty(&cache));

    // By chip ID and TCB, as numbers.
    let out = std::process::Command::new(bin)
        .args(["fetch-vcek", "--kds-url", &m.url, "--kds-ca-root"])
        .arg(&root)
        .args(["--product", "milan", "--chip-id", &hex::encode(req.chip_id)])
        .args(["--reported-tcb", &format!("0x{:016x}", req.reported_tcb.0)])
        .arg("--cache-dir")
        .arg(&cache)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = cache.join(req.key().file_name());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        written.display().to_string()
    );
    assert_eq!(
        std::fs::read(&written).unwrap(),
        read("trustee/test-vcek.der")
    );
}

// ---- CRLs ----

#[test]
fn crl_files_must_be_amd_signed_and_fetch_refuses_others() {
    let sim = SimTee::from_seed([7; 32]);
    let dir = tempfile::tempdir().unwrap();
    // The simulated root's CRL is no Milan CRL.
    std::fs::write(dir.path().join("milan.crl"), sim.snp_crl(false)).unwrap();
    let e = load_amd_crl_dir(dir.path(), T_2025).unwrap_err();
    assert_eq!(e.code(), "SNP_CRL_INVALID", "{e}");
    std::fs::write(dir.path().join("milan.crl"), b"garbage").unwrap();
    assert_eq!(
        load_amd_crl_dir(dir.path(), T_2025).unwrap_err().code(),
        "SNP_CRL_INVALID"
    );
    std::fs::remove_file(dir.path().join("milan.crl")).unwrap();
    std::fs::write(dir.path().join("simulated.crl"), sim.snp_crl(false)).unwrap();
    let crls = load_amd_crl_dir(dir.path(), T_2025).unwrap();
    assert!(crls.products().is_empty());
    assert!(crls.simulated().is_some());
    assert_eq!(
        load_amd_crl_dir(&dir.path().join("missing"), T_2025)
            .unwrap_err()
            .code(),
        "SNP_VCEK_CACHE_UNREADABLE"
    );

    let m = mock_kds(HashMap::from([(
        "/vcek/v1/Milan/crl".to_string(),
        sim.snp_crl(false),
    )]));
    let out = tempfile::tempdir().unwrap();
    let e = client(&m)
        .fetch_crl(Product::Milan, out.path(), T_2025)
        .unwrap_err();
    assert!(
        matches!(
            &e,
            tl_ca::kds::KdsError::Refused {
                reason: "SNP_CRL_INVALID",
                ..
            }
        ),
        "{e}"
    );
    assert!(dir_is_empty(out.path()));
    assert_eq!(
        client(&m)
            .fetch_crl(Product::Genoa, out.path(), T_2025)
            .unwrap_err()
            .code(),
        "KDS_HTTP_STATUS"
    );
}

#[test]
fn a_revoked_ask_is_refused_and_a_missing_crl_fails_closed() {
    let sim = SimTee::from_seed([7; 32]);
    let anchors = TrustAnchors {
        simulated_root_der: Some(sim.root_certificate_der()),
        ..TrustAnchors::default()
    };
    let (report, chain) = sim.snp_report(&[3; 64], &SimSnpMeasurements::default());
    let sim_bundle = bundle(report, chain);
    // 2026-01-26, inside the simulated CRL's and chain's validity.
    let now = 1_770_000_000;
    let verifier = |crls: AmdCrls| {
        AmdCrlVerifier::new(
            SimAwareVerifier::new(anchors.clone()),
            crls,
            anchors.clone(),
        )
    };

    let mut crls = AmdCrls::default();
    crls.set_simulated(sim.snp_crl(false));
    verifier(crls).verify(&sim_bundle, &[0; 32], now).unwrap();

    let mut crls = AmdCrls::default();
    crls.set_simulated(sim.snp_crl(true));
    assert_eq!(
        verifier(crls)
            .verify(&sim_bundle, &[0; 32], now)
            .unwrap_err()
            .code,
        "SNP_CERT_REVOKED"
    );

    // A damaged CRL.
    let mut bad = sim.snp_crl(false);
    let n = bad.len();
    bad[n - 3] ^= 1;
    let mut crls = AmdCrls::default();
    crls.set_simulated(bad);
    assert_eq!(
        verifier(crls)
            .verify(&sim_bundle, &[0; 32], now)
            .unwrap_err()
            .code,
        "SNP_CRL_INVALID"
    );

    // A real Milan report when the directory holds no Milan CRL: refused,
    // while without the CRL wrapper it verifies.
    let real = bundle(
        read("trustee/test-report.bin"),
        vec![read("trustee/test-vcek.der")],
    );
    let plain = SimAwareVerifier::new(TrustAnchors::default());
    plain.verify(&real, &[0; 32], T_2025).unwrap();
    let v = AmdCrlVerifier::new(plain, AmdCrls::default(), TrustAnchors::default());
    assert_eq!(
        v.verify(&real, &[0; 32], T_2025).unwrap_err().code,
        "SNP_CRL_MISSING"
    );
    // A Milan "CRL" that is not AMD's (inserted without the start-up check)
    // is refused at verification too.
    let mut crls = AmdCrls::default();
    crls.insert(Product::Milan, sim.snp_crl(false));
    let v = AmdCrlVerifier::new(
        SimAwareVerifier::new(TrustAnchors::default()),
        crls,
        TrustAnchors::default(),
    );
    assert_eq!(
        v.verify(&real, &[0; 32], T_2025).unwrap_err().code,
        "SNP_CRL_INVALID"
    );
}
