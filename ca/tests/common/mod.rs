//! Shared helpers for the CA's integration tests: an in-process server over
//! real TLS, a manual clock, and a loader-side enrollment built from the
//! simulated TEE.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aws_lc_rs::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use base64::{engine::general_purpose::STANDARD, Engine};
use serde_json::{json, Value};
use tl_ca::issuance_policy::IssuancePolicy;
use tl_ca::server::{self, Clock, ServerConfig, ServerHandle};
use tl_ca::SimAwareVerifier;
use tl_evidence::binding::Binding;
use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
use tl_evidence::sim::{SimMeasurements, SimQuoteOptions, SimTee};
use tl_evidence::verify::TrustAnchors;

/// A fixed start time inside the simulated TEE's certificate validity.
pub const T0_MS: u64 = 1_770_000_000_000;

#[derive(Debug)]
pub struct ManualClock(pub AtomicU64);

impl ManualClock {
    pub fn new() -> Arc<Self> {
        Arc::new(Self(AtomicU64::new(T0_MS)))
    }
    pub fn advance_secs(&self, s: u64) {
        self.0.fetch_add(s * 1000, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

pub fn sim() -> SimTee {
    SimTee::from_seed([7; 32])
}

/// A config that trusts the simulated root and accepts simulated platforms.
pub fn sim_config(dir: &Path, sim: &SimTee, clock: Arc<ManualClock>) -> ServerConfig {
    let verifier = SimAwareVerifier::new(TrustAnchors::simulated(sim.root_certificate_der()));
    let policy = IssuancePolicy {
        allow_simulated: true,
        ..IssuancePolicy::default()
    };
    let mut c = ServerConfig::new(dir.to_path_buf(), Arc::new(verifier), policy);
    c.clock = clock;
    c
}

pub async fn start(config: ServerConfig) -> ServerHandle {
    if !config.dir.join(tl_ca::store::CA_KEY_FILE).exists() {
        tl_ca::store::init(&config.dir, config.clock.now_unix()).unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    server::start(config, listener).await.unwrap()
}

pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
}

impl Client {
    pub fn new(h: &ServerHandle) -> Self {
        server::install_crypto_provider();
        let tls = server::client_config(&h.ca_root_der).unwrap();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .build()
            .unwrap();
        Self {
            http,
            base: format!("https://localhost:{}", h.addr.port()),
        }
    }

    pub async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    pub async fn nonce(&self) -> Vec<u8> {
        let (s, v) = self.post("/v1/nonce", &json!({})).await;
        assert_eq!(s, 200, "{v}");
        STANDARD.decode(v["nonce"].as_str().unwrap()).unwrap()
    }
}

/// The loader's side of one enrollment.
pub struct Loader {
    pub csr_key: rcgen::KeyPair,
    pub signing_key: EcdsaKeyPair,
    pub encryption_key: [u8; 32],
}

impl Loader {
    pub fn new() -> Self {
        let csr_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let signing_key =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &csr_key.serialize_der())
                .unwrap();
        let mut encryption_key = [0u8; 32];
        aws_lc_rs::rand::fill(&mut encryption_key).unwrap();
        Self {
            csr_key,
            signing_key,
            encryption_key,
        }
    }

    pub fn csr_der(&self) -> Vec<u8> {
        let params = rcgen::CertificateParams::default();
        params
            .serialize_request(&self.csr_key)
            .unwrap()
            .der()
            .to_vec()
    }

    pub fn spki_der(&self) -> Vec<u8> {
        self.csr_key.public_key_der()
    }

    /// Evidence binding `nonce`, the given signing SPKI and encryption key.
    pub fn evidence(
        sim: &SimTee,
        nonce: &[u8],
        spki: &[u8],
        enc: &[u8; 32],
        m: &SimMeasurements,
    ) -> EvidenceBundle {
        Self::evidence_with(sim, nonce, spki, enc, m, &SimQuoteOptions::default())
    }

    /// [`Self::evidence`] with a quote laid out as `q` says (e.g. TD 1.5).
    pub fn evidence_with(
        sim: &SimTee,
        nonce: &[u8],
        spki: &[u8],
        enc: &[u8; 32],
        m: &SimMeasurements,
        q: &SimQuoteOptions,
    ) -> EvidenceBundle {
        let mut bundle = EvidenceBundle::new(CpuEvidence {
            kind: CpuEvidenceKind::TdxQuote,
            quote: vec![],
            certificates: vec![],
        });
        let rd = Binding {
            nonce,
            signing_public_key: spki,
            encryption_public_key: enc,
            gpu_evidence_digest: bundle.gpu_evidence_digest(),
            tpm_ak_digest: None,
        }
        .report_data();
        bundle.cpu.quote = sim.tdx_quote_with(&rd, m, q);
        bundle
    }

    /// A well-formed enrollment request for `nonce`.
    pub fn request(&self, sim: &SimTee, nonce: &[u8]) -> Value {
        let ev = Self::evidence(
            sim,
            nonce,
            &self.spki_der(),
            &self.encryption_key,
            &SimMeasurements::default(),
        );
        self.request_with(nonce, &ev)
    }

    pub fn request_with(&self, nonce: &[u8], evidence: &EvidenceBundle) -> Value {
        json!({
            "nonce": STANDARD.encode(nonce),
            "evidence": evidence,
            "csr": STANDARD.encode(self.csr_der()),
            "encryption_public_key": tl_ca::claims_ext::format_x25519_text(&self.encryption_key),
        })
    }
}

pub fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}
