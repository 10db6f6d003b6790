//! The CA over real TLS on 127.0.0.1, with evidence from the simulated TEE.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use serde_json::{json, Value};
use tl_ca::issuance_policy::IssuancePolicy;
use tl_ca::log::{parse_hex_hashes, verify_inclusion, SignedTreeHead};
use tl_ca::orders::{sign_accept, OrderAccept};
use tl_ca::report::{self, RunReport, Timestamp};
use tl_ca::server::ServerConfig;
use tl_ca::SimAwareVerifier;
use tl_evidence::sim::{SimMeasurements, SimTee};
use tl_evidence::verify::TrustAnchors;

async fn enroll(c: &Client, sim: &SimTee, l: &Loader) -> Value {
    let n = c.nonce().await;
    let (s, v) = c.post("/v1/enroll", &l.request(sim, &n)).await;
    assert_eq!(s, 200, "{v}");
    v
}

fn sample_report(cert_pem: &str, evidence_digest: [u8; 32], at: u64) -> RunReport {
    RunReport {
        loader_version: "0.1.0".into(),
        evidence_digest,
        certificate_pem: cert_pem.into(),
        order: report::OrderRef {
            family: "trial".into(),
            version: 3,
            digest: [1; 32],
        },
        components: vec![report::ComponentRecord {
            name: "engine".into(),
            sha256: [2; 32],
            size: 1234,
        }],
        outputs: vec![report::OutputRecord {
            name: "model".into(),
            recipients: vec!["engine-owner".into()],
            plaintext_sha256: [3; 32],
            sealed_sha256: [4; 32],
        }],
        started_at: Timestamp(at as i64 - 10),
        finished_at: Timestamp(at as i64),
        exit_status: Some(report::ExitStatus::Code(0)),
        wipe_done: true,
        event_log_sha256: [5; 32],
        halt: None,
    }
}

fn hex32(v: &Value) -> [u8; 32] {
    let mut h = [0; 32];
    hex::decode_to_slice(v.as_str().unwrap(), &mut h).unwrap();
    h
}

#[tokio::test]
async fn enroll_happy_path() {
    let d = tempfile::tempdir().unwrap();
    let sim = sim();
    let clock = ManualClock::new();
    let h = start(sim_config(d.path(), &sim, clock.clone())).await;
    let c = Client::new(&h);
    let l = Loader::new();
    let v = enroll(&c, &sim, &l).await;

    let chain = tl_ca::certs::pem_to_certs(v["chain_pem"].as_str().unwrap()).unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[1], h.ca_root_der);
    let leaf = tl_ca::certs::verify_leaf_pem(
        v["certificate_pem"].as_str().unwrap(),
        &h.ca_root_der,
        clock.now_unix_pub(),
    )
    .unwrap();
    assert_eq!(leaf.spki_der, l.spki_der());
    assert!(leaf.claims.platform.simulated);
    assert_eq!(
        leaf.claims.encryption_key_bytes().unwrap(),
        l.encryption_key
    );
    assert_eq!(leaf.not_after - leaf.not_before, 3600 + 60);
    assert_eq!(
        serde_json::to_value(&leaf.claims).unwrap(),
        v["claims"],
        "response claims are the certified claims"
    );
    assert_eq!(v["order_floors"], json!({}));
    // GET /v1/ca serves the same root.
    let (s, ca) = c.get("/v1/ca").await;
    assert_eq!(s, 200);
    assert_eq!(
        tl_ca::certs::pem_to_certs(ca["certificate_pem"].as_str().unwrap()).unwrap()[0],
        h.ca_root_der
    );
    h.shutdown().await.unwrap();
}

trait NowPub {
    fn now_unix_pub(&self) -> u64;
}
impl NowPub for ManualClock {
    fn now_unix_pub(&self) -> u64 {
        use tl_ca::server::Clock;
        self.now_unix()
    }
}

#[tokio::test]
async fn nonces_are_single_use_and_expire() {
    let d = tempfile::tempdir().unwrap();
    let sim = sim();
    let clock = ManualClock::new();
    let h = start(sim_config(d.path(), &sim, clock.clone())).await;
    let c = Client::new(&h);
    let l = Loader::new();

    let n = c.nonce().await;
    let req = l.request(&sim, &n);
    assert_eq!(c.post("/v1/enroll", &req).await.0, 200);
    let (s, v) = c.post("/v1/enroll", &req).await;
    assert_eq!((s, code(&v)), (409, "ENROLL_NONCE_REPLAYED"));

    // A nonce the CA never issued.
    let req = l.request(&sim, &[9u8; 32]);
    let (s, v) = c.post("/v1/enroll", &req).await;
    assert_eq!((s, code(&v)), (403, "ENROLL_NONCE_UNKNOWN"));

    // A nonce of the wrong length.
    let req = l.request(&sim, &[9u8; 31]);
    let (s, v) = c.post("/v1/enroll", &req).await;
    assert_eq!((s, code(&v)), (400, "ENROLL_NONCE_MALFORMED"));

    // Expiry: 120 s by default.
    let n = c.nonce().await;
    let req = l.request(&sim, &n);
    clock.advance_secs(120);
    let (s, v) = c.post("/v1/enroll", &req).await;
    assert_eq!((s, code(&v)), (403, "ENROLL_NONCE_EXPIRED"));
    // One second earlier it would have worked.
    let n = c.nonce().await;
    clock.advance_secs(119);
    assert_eq!(c.post("/v1/enroll", &l.request(&sim, &n)).await.0, 200);
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn binding_to_other_keys_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let sim = sim();
    let h = start(sim_config(d.path(), &sim, ManualClock::new())).await;
    let c = Client::new(&h);
    let l = Loader::new();
    let other = Loader::new();
    let m = SimMeasurements::default();

    // Evidence binds another signing key than the CSR's.
    let n = c.nonce().await;
    let ev = Loader::evidence(&sim, &n, &other.spki_der(), &l.encryption_key, &m);
    let (s, v) = c.post("/v1/enroll", &l.request_with(&n, &ev)).await;
    assert_eq!((s, code(&v)), (403, "ENROLL_BINDING_MISMATCH"));

    // Evidence binds another encryption key.
    let n = c.nonce().await;
    let ev = Loader::evidence(&sim, &n, &l.spki_der(), &other.encryption_key, &m);
    let (s, v) = c.post("/v1/enroll", &l.request_with(&n, &ev)).await;
    assert_eq!((s, code(&v)), (403, "ENROLL_BINDING_MISMATCH"));

    // Evidence made for another nonce.
    let n = c.nonce().await;
    let n2 = c.nonce().await;
    let ev = Loader::evidence(&sim, &n2, &l.spki_der(), &l.encryption_key, &m);
    let (s, v) = c.post("/v1/enroll", &l.request_with(&n, &ev)).await;
    assert_eq!((s, code(&v)), (403, "ENROLL_BINDING_MISMATCH"));

    // A byte flipped in the quote breaks its signature.
    let n = c.nonce().await;
    let mut ev = Loader::evidence(&sim, &n, &l.spki_der(), &l.encryption_key, &m);
    ev.cpu.quote[600] ^= 1;
    let (s, v) = c.post("/v1/enroll", &l.request_with(&n, &ev)).await;
    assert_eq!(s, 403, "{v}");
    assert!(code(&v).starts_with("TDX_"), "{v}");

    // A CSR whose self-signature is broken.
    let n = c.nonce().await;
    let mut req = l.request(&sim, &n);
    let mut csr = l.csr_der();
    let last = csr.len() - 3;
    csr[last] ^= 1;
    req["csr"] = json!(base64_encode(&csr));
    let (s, v) = c.post("/v1/enroll", &req).await;
    assert_eq!(s, 400, "{v}");
    assert!(code(&v).starts_with("ENROLL_CSR_"), "{v}");
    h.shutdown().await.unwrap();
}

fn base64_encode(b: &[u8]) -> String {
    use base64::{engine::general_purpose::STANDARD, Engine};
    STANDARD.encode(b)
}

#[tokio::test]
async fn simulated_evidence_needs_the_flag() {
    let sim = sim();
    let l = Loader::new();
    // Without the simulated root among the anchors (only an unrelated root).
    let d = tempfile::tempdir().unwrap();
    let other_root = SimTee::from_seed([8; 32]).root_certificate_der();
    let mut config = ServerConfig::new(
        d.path().to_path_buf(),
        Arc::new(SimAwareVerifier::new(TrustAnchors::intel(other_root))),
        IssuancePolicy::default(),
    );
    config.clock = ManualClock::new();
    let h = start(config).await;
    let c = Client::new(&h);
    let n = c.nonce().await;
    let (s, v) = c.post("/v1/enroll", &l.request(&sim, &n)).await;
    assert_eq!((s, code(&v)), (403, "SIMULATED_ROOT_NOT_ALLOWED"));
    h.shutdown().await.unwrap();

    // The verifier trusts the root but the issuance policy forbids simulation.
    let d = tempfile::tempdir().unwrap();
    let mut config = sim_config(d.path(), &sim, ManualClock::new());
    config.policy.allow_simulated = false;
    let h = start(config).await;
    let c = Client::new(&h);
    let n = c.nonce().await;
    let (s, v) = c.post("/v1/enroll", &l.request(&sim, &n)).await;
    assert_eq!((s, code(&v)), (403, "ENROLL_POLICY_REJECTED"));
    assert_eq!(v["error"]["failures"], json!(["ISSUANCE_SIMULATED"]));

    // Debug TDs are refused even when simulation is allowed, with every failure listed.
    h.shutdown().await.unwrap();
    let d = tempfile::tempdir().unwrap();
    let h = start(sim_config(d.path(), &sim, ManualClock::new())).await;
    let c = Client::new(&h);
    let n = c.nonce().await;
    let m = SimMeasurements {
        td_attributes: 0x1000_0001,
        ..SimMeasurements::default()
    };
    let ev = Loader::evidence(&sim, &n, &l.spki_der(), &l.encryption_key, &m);
    let (s, v) = c.post("/v1/enroll", &l.request_with(&n, &ev)).await;
    assert_eq!((s, code(&v)), (403, "ENROLL_POLICY_REJECTED"));
    assert_eq!(v["error"]["failures"], json!(["ISSUANCE_DEBUG"]));

    // A migratable TD is refused by verification, whatever the policy.
    let n = c.nonce().await;
    let m = SimMeasurements {
        td_attributes: 0x3000_0000,
        ..SimMeasurements::default()
    };
    let ev = Loader::evidence(&sim, &n, &l.spki_der(), &l.encryption_key, &m);
    let (s, v) = c.post("/v1/enroll", &l.request_with(&n, &ev)).await;
    assert_eq!((s, code(&v)), (403, "TDX_TD_ATTRIBUTES"));
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn hostile_bodies_get_4xx_and_the_server_keeps_answering() {
    let d = tempfile::tempdir().unwrap();
    let sim = sim();
    let h = start(sim_config(d.path(), &sim, ManualClock::new())).await;
    let c = Client::new(&h);

    for (body, want) in [
        (b"not json".to_vec(), "BODY_MALFORMED"),
        (b"{}".to_vec(), "BODY_MALFORMED"),
        (b"[1,2,3]".to_vec(), "BODY_MALFORMED"),
        (vec![0xff; 1000], "BODY_MALFORMED"),
        (
            br#"{"nonce":"AAAA","evidence":{"version":1,"cpu":{"kind":"tdx-quote","quote":"AAAA"}},"csr":"!!","encryption_public_key":"x"}"#.to_vec(),
            "ENROLL_NONCE_MALFORMED",
        ),
    ] {
        let (s, v) = c.post_raw("/v1/enroll", body).await;
        assert!((400..500).contains(&s), "{s} {v}");
        assert_eq!(code(&v), want);
    }
    // Garbage quote with a valid nonce.
    let l = Loader::new();
    let n = c.nonce().await;
    let mut req = l.request(&sim, &n);
    req["evidence"]["cpu"]["quote"] = json!("AAECAw==");
    let (s, v) = c.post("/v1/enroll", &req).await;
    assert_eq!((s, code(&v)), (403, "EVIDENCE_MALFORMED"));

    // Over the body limit (1 MiB).
    let (s, v) = c.post_raw("/v1/enroll", vec![b' '; 2 << 20]).await;
    assert_eq!((s, code(&v)), (413, "BODY_TOO_LARGE"));
    let (s, v) = c.post_raw("/v1/reports", vec![b'x'; 2 << 20]).await;
    assert_eq!((s, code(&v)), (413, "BODY_TOO_LARGE"));
    for path in ["/v1/reports", "/v1/orders/accept"] {
        let (s, v) = c.post_raw(path, b"{\"a\":1}".to_vec()).await;
        assert_eq!((s, code(&v)), (400, "BODY_MALFORMED"));
    }
    let (s, v) = c.get("/v1/nope").await;
    assert_eq!((s, code(&v)), (404, "NOT_FOUND"));
    let (s, v) = c.get("/v1/log/proof/abc").await;
    assert_eq!((s, code(&v)), (400, "LOG_INDEX_MALFORMED"));
    let (s, v) = c.get("/v1/log/proof/0").await;
    assert_eq!((s, code(&v)), (404, "LOG_INDEX_OUT_OF_RANGE"));

    // Raw non-TLS bytes and a half-open connection on the port.
    use tokio::io::AsyncWriteExt;
    let mut raw = tokio::net::TcpStream::connect(h.addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n\x16\x03\x01\xff\xff garbage")
        .await
        .unwrap();
    drop(raw);
    let _idle = tokio::net::TcpStream::connect(h.addr).await.unwrap();

    // Still serving.
    let fresh = Client::new(&h);
    assert_eq!(fresh.nonce().await.len(), 32);
    let n = c.nonce().await;
    assert_eq!(c.post("/v1/enroll", &l.request(&sim, &n)).await.0, 200);
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_enrollments() {
    let d = tempfile::tempdir().unwrap();
    let sim = Arc::new(sim());
    let h = start(sim_config(d.path(), &sim, ManualClock::new())).await;
    let c = Arc::new(Client::new(&h));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..32 {
        let (c, sim) = (c.clone(), sim.clone());
        tasks.spawn(async move {
            let l = Loader::new();
            let n = c.nonce().await;
            let (s, v) = c.post("/v1/enroll", &l.request(&sim, &n)).await;
            assert_eq!(s, 200, "{v}");
            v["certificate_pem"].as_str().unwrap().to_string()
        });
    }
    let mut certs = std::collections::BTreeSet::new();
    while let Some(r) = tasks.join_next().await {
        certs.insert(r.unwrap());
    }
    assert_eq!(certs.len(), 32);
    h.shutdown().await.unwrap();
    // Every issuance was recorded.
    let store = tl_ca::store::Store::open(d.path(), T0_MS / 1000).unwrap();
    assert_eq!(store.issued().unwrap().len(), 32);
}

#[tokio::test]
async fn order_floors_refuse_rollback() {
    let d = tempfile::tempdir().unwrap();
    let sim = sim();
    let h = start(sim_config(d.path(), &sim, ManualClock::new())).await;
    let c = Client::new(&h);
    let l = Loader::new();
    let v = enroll(&c, &sim, &l).await;
    let cert = v["certificate_pem"].as_str().unwrap();
    let accept = |family: &str, version: u64| {
        let a = OrderAccept {
            family: family.into(),
            version,
            order_digest: [version as u8; 32],
        };
        serde_json::to_value(sign_accept(&a, &l.signing_key, cert).unwrap()).unwrap()
    };
    let (s, v) = c.post("/v1/orders/accept", &accept("trial", 2)).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = c.post("/v1/orders/accept", &accept("trial", 1)).await;
    assert_eq!((s, code(&v)), (409, "ORDER_ROLLBACK"));
    assert_eq!(
        c.post("/v1/orders/accept", &accept("trial", 2)).await.0,
        200
    );
    assert_eq!(
        c.post("/v1/orders/accept", &accept("other", 1)).await.0,
        200
    );
    assert_eq!(
        c.post("/v1/orders/accept", &accept("trial", 5)).await.0,
        200
    );

    // A signature by another key, or a changed acceptance, is refused.
    let mut forged = accept("trial", 9);
    let other = Loader::new();
    let a = OrderAccept {
        family: "trial".into(),
        version: 9,
        order_digest: [0; 32],
    };
    forged["signature"] = serde_json::to_value(sign_accept(&a, &other.signing_key, cert).unwrap())
        .unwrap()["signature"]
        .clone();
    let (s, v) = c.post("/v1/orders/accept", &forged).await;
    assert_eq!((s, code(&v)), (403, "ORDER_ACCEPT_SIGNATURE"));
    let mut changed = accept("trial", 9);
    changed["accept"] = json!(changed["accept"]
        .as_str()
        .unwrap()
        .replace("\"version\":9", "\"version\":10"));
    let (s, v) = c.post("/v1/orders/accept", &changed).await;
    assert_eq!((s, code(&v)), (403, "ORDER_ACCEPT_SIGNATURE"));

    // The floors come back at the next enrollment and survive a restart.
    let v = enroll(&c, &sim, &Loader::new()).await;
    assert_eq!(v["order_floors"], json!({"trial": 5, "other": 1}));
    h.shutdown().await.unwrap();
    let h = start(sim_config(d.path(), &sim, ManualClock::new())).await;
    let c = Client::new(&h);
    let (s, v) = c.post("/v1/orders/accept", &accept("trial", 4)).await;
    assert_eq!((s, code(&v)), (409, "ORDER_ROLLBACK"));
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn reports_are_logged_and_survive_restart() {
    let d = tempfile::tempdir().unwrap();
    let sim = sim();
    let clock = ManualClock::new();
    let h = start(sim_config(d.path(), &sim, clock.clone())).await;
    let root_der = h.ca_root_der.clone();
    let c = Client::new(&h);
    let l = Loader::new();
    let v = enroll(&c, &sim, &l).await;
    let cert = v["certificate_pem"].as_str().unwrap().to_string();
    let chain = v["chain_pem"].as_str().unwrap().to_string();
    let ev_digest = hex32(&v["claims"]["evidence_digest"]);
    let now = clock.now_unix_pub();

    let mut receipts = Vec::new();
    for i in 0..3u64 {
        let r = sample_report(&cert, ev_digest, now + i);
        let signed = report::sign_report(&r, &l.signing_key, &chain).unwrap();
        let (s, v) = c
            .post("/v1/reports", &serde_json::to_value(&signed).unwrap())
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["index"], json!(i));
        assert_eq!(v["tree_size"], json!(i + 1));
        receipts.push((signed, v));
    }
    // Each receipt verifies against its own signed tree head.
    let ca_key = tl_ca::certs::root_public_key(&root_der).unwrap();
    for (signed, v) in &receipts {
        let sth: SignedTreeHead = serde_json::from_value(v["signed_tree_head"].clone()).unwrap();
        sth.verify(&ca_key).unwrap();
        let proof: Vec<String> = serde_json::from_value(v["inclusion_proof"].clone()).unwrap();
        let proof = parse_hex_hashes(&proof).unwrap();
        let leaf = report::log_leaf(signed).unwrap();
        verify_inclusion(
            &leaf,
            v["index"].as_u64().unwrap(),
            sth.tree_size,
            &proof,
            &sth.root,
        )
        .unwrap();
    }
    // A tampered report is refused and not logged.
    let mut bad = receipts[0].0.clone();
    bad.report = bad
        .report
        .replace("\"wipe_done\":true", "\"wipe_done\":false");
    let (s, v) = c
        .post("/v1/reports", &serde_json::to_value(&bad).unwrap())
        .await;
    assert_eq!((s, code(&v)), (403, "REPORT_SIGNATURE"));

    h.shutdown().await.unwrap();

    // Restart on the same directory.
    let h = start(sim_config(d.path(), &sim, clock.clone())).await;
    assert_eq!(h.ca_root_der, root_der);
    let c = Client::new(&h);
    let (s, sth) = c.get("/v1/log/sth").await;
    assert_eq!(s, 200);
    let sth: SignedTreeHead = serde_json::from_value(sth).unwrap();
    sth.verify(&ca_key).unwrap();
    assert_eq!(sth.tree_size, 3);
    // Proofs handed out before the restart verify against the new head.
    let (last_signed, last) = &receipts[2];
    let proof: Vec<String> = serde_json::from_value(last["inclusion_proof"].clone()).unwrap();
    verify_inclusion(
        &report::log_leaf(last_signed).unwrap(),
        2,
        sth.tree_size,
        &parse_hex_hashes(&proof).unwrap(),
        &sth.root,
    )
    .unwrap();
    // The certificate issued before the restart still verifies, the log grows on.
    let signed = report::sign_report(
        &sample_report(&cert, ev_digest, now + 5),
        &l.signing_key,
        &chain,
    )
    .unwrap();
    let (s, v) = c
        .post("/v1/reports", &serde_json::to_value(&signed).unwrap())
        .await;
    assert_eq!((s, v["index"].clone()), (200, json!(3)));
    let (s, p) = c.get("/v1/log/proof/0").await;
    assert_eq!(s, 200);
    let sth: SignedTreeHead = serde_json::from_value(p["signed_tree_head"].clone()).unwrap();
    assert_eq!(sth.tree_size, 4);
    let proof: Vec<String> = serde_json::from_value(p["inclusion_proof"].clone()).unwrap();
    verify_inclusion(
        &report::log_leaf(&receipts[0].0).unwrap(),
        0,
        4,
        &parse_hex_hashes(&proof).unwrap(),
        &sth.root,
    )
    .unwrap();
    h.shutdown().await.unwrap();
    let store = tl_ca::store::Store::open(d.path(), now).unwrap();
    assert_eq!(store.issued().unwrap().len(), 1);
    assert_eq!(store.issued().unwrap()[0].certificate_pem, cert);
}

#[tokio::test]
async fn reports_after_certificate_expiry_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let sim = sim();
    let clock = ManualClock::new();
    let h = start(sim_config(d.path(), &sim, clock.clone())).await;
    let c = Client::new(&h);
    let l = Loader::new();
    let v = enroll(&c, &sim, &l).await;
    let cert = v["certificate_pem"].as_str().unwrap().to_string();
    let chain = v["chain_pem"].as_str().unwrap().to_string();
    let ev = hex32(&v["claims"]["evidence_digest"]);
    let now = clock.now_unix_pub();
    let signed =
        report::sign_report(&sample_report(&cert, ev, now), &l.signing_key, &chain).unwrap();
    clock.advance_secs(3601);
    let (s, v) = c
        .post("/v1/reports", &serde_json::to_value(&signed).unwrap())
        .await;
    assert_eq!((s, code(&v)), (403, "CERT_EXPIRED"));
    // Offline, at signing time, it still verifies.
    report::verify_signed_report_at_signing_time(&signed, &h.ca_root_der).unwrap();
    h.shutdown().await.unwrap();
}

/// A bundle with simulated GPUs and NVSwitches answering the nonces derived
/// from `nonce`, bound (unless `unbound_switches`) by the simulated quote.
fn device_evidence(
    sim: &SimTee,
    l: &Loader,
    nonce: &[u8],
    gpus: u32,
    switches: u32,
    unbound_switches: bool,
) -> tl_evidence::bundle::EvidenceBundle {
    use tl_evidence::binding::{gpu_nonce, nvswitch_nonce, Binding};
    use tl_evidence::bundle::NvSwitchEvidence;
    use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle, GpuEvidence};
    use tl_evidence::sim::SimNvKind;
    let mut b = EvidenceBundle::new(CpuEvidence {
        kind: CpuEvidenceKind::TdxQuote,
        quote: vec![],
        certificates: vec![],
    });
    for i in 0..gpus {
        let d = sim.nvidia_device(SimNvKind::Gpu, i);
        b.gpus.push(GpuEvidence {
            index: i,
            report: d.report(&gpu_nonce(nonce, i)),
            certificates: d.chain_der().to_vec(),
        });
    }
    let switch_entries: Vec<NvSwitchEvidence> = (0..switches)
        .map(|i| {
            let d = sim.nvidia_device(SimNvKind::NvSwitch, i);
            NvSwitchEvidence {
                index: i,
                report: d.report(&nvswitch_nonce(nonce, i)),
                certificates: d.chain_der().to_vec(),
            }
        })
        .collect();
    if !unbound_switches {
        b.nvswitches = switch_entries.clone();
    }
    let spki = l.spki_der();
    let rd = Binding {
        nonce,
        signing_public_key: &spki,
        encryption_public_key: &l.encryption_key,
        gpu_evidence_digest: b.gpu_evidence_digest(),
        tpm_ak_digest: None,
    }
    .report_data();
    b.cpu.quote = sim.tdx_quote(&rd, &SimMeasurements::default());
    // Relayed: switch reports added after the quote was taken.
    b.nvswitches = switch_entries;
    b
}

#[tokio::test]
async fn gpu_and_nvswitch_claims_are_certified_beside_the_cpu_claims() {
    let d = tempfile::tempdir().unwrap();
    let sim = sim();
    let clock = ManualClock::new();
    let mut cfg = sim_config(d.path(), &sim, clock.clone());
    let verifier = SimAwareVerifier::new(TrustAnchors::simulated(sim.root_certificate_der()))
        .with_gpu_anchors(
            tl_evidence::nvidia::GpuAnchors::nvidia()
                .and_der(&sim.nvidia_root_der())
                .unwrap(),
        );
    cfg.verifier = Arc::new(verifier);
    let h = start(cfg).await;
    let c = Client::new(&h);
    let l = Loader::new();

    let n = c.nonce().await;
    let ev = device_evidence(&sim, &l, &n, 2, 3, false);
    let (s, v) = c.post("/v1/enroll", &l.request_with(&n, &ev)).await;
    assert_eq!(s, 200, "{v}");
    let leaf = tl_ca::certs::verify_leaf_pem(
        v["certificate_pem"].as_str().unwrap(),
        &h.ca_root_der,
        clock.now_unix_pub(),
    )
    .unwrap();
    let p = &leaf.claims.platform;
    assert!(p.tdx.is_some());
    assert_eq!(p.gpus.len(), 2);
    assert_eq!(p.nvswitches.len(), 3);
    assert!(p.nvswitches.iter().all(|s| s.tnvl_mode && s.locked));
    assert_eq!(leaf.claims.evidence_digest, ev.digest());

    // Switch reports the quote does not bind (relayed from elsewhere).
    let n = c.nonce().await;
    let ev = device_evidence(&sim, &l, &n, 2, 1, true);
    let (s, v) = c.post("/v1/enroll", &l.request_with(&n, &ev)).await;
    assert_eq!((s, code(&v)), (403, "ENROLL_BINDING_MISMATCH"), "{v}");

    // Reports replayed from an earlier enrollment answer the old nonce.
    let old = ev;
    let n = c.nonce().await;
    let mut ev = device_evidence(&sim, &l, &n, 0, 0, false);
    ev.nvswitches = old.nvswitches.clone();
    let (s, v) = c.post("/v1/enroll", &l.request_with(&n, &ev)).await;
    assert_eq!((s, code(&v)), (403, "GPU_NONCE_MISMATCH"), "{v}");
    assert!(
        v["error"]["detail"]
            .as_str()
            .unwrap()
            .contains("NVSwitch 0"),
        "{v}"
    );
    h.shutdown().await.unwrap();

    // A CA that trusts only NVIDIA's device root refuses simulated switches.
    let d2 = tempfile::tempdir().unwrap();
    let h = start(sim_config(d2.path(), &sim, clock.clone())).await;
    let c = Client::new(&h);
    let n = c.nonce().await;
    let ev = device_evidence(&sim, &l, &n, 0, 1, false);
    let (s, v) = c.post("/v1/enroll", &l.request_with(&n, &ev)).await;
    assert_eq!((s, code(&v)), (403, "GPU_UNTRUSTED_ROOT"), "{v}");
    h.shutdown().await.unwrap();
}
