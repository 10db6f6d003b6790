//! Enrollment throughput of the CA over TLS with connection reuse.
//!
//! Starts the CA in-process (state in a temporary directory, simulated TEE
//! root trusted), fetches N nonces, builds N enrollment requests with
//! simulated TDX quotes (not timed: that is the loader's work), then sends
//! them with C concurrent requests over a pooled HTTPS client and reports
//! enrollments per second.
//!
//! `cargo run --release -p tl-ca --example enroll_bench -- [N] [C]`

use std::sync::Arc;
use std::time::Instant;

use base64::{engine::general_purpose::STANDARD, Engine};
use serde_json::{json, Value};
use tl_ca::issuance_policy::IssuancePolicy;
use tl_ca::server::{self, ServerConfig};
use tl_ca::SimAwareVerifier;
use tl_evidence::binding::Binding;
use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle};
use tl_evidence::sim::{SimMeasurements, SimTee};
use tl_evidence::verify::TrustAnchors;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn request(sim: &SimTee, nonce: &[u8]) -> Result<Value, BoxError> {
    let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let csr = rcgen::CertificateParams::default().serialize_request(&kp)?;
    let mut enc = [0u8; 32];
    aws_lc_rs::rand::fill(&mut enc).map_err(|_| "rng")?;
    let mut bundle = EvidenceBundle::new(CpuEvidence {
        kind: CpuEvidenceKind::TdxQuote,
        quote: vec![],
        certificates: vec![],
    });
    let rd = Binding {
        nonce,
        signing_public_key: &kp.public_key_der(),
        encryption_public_key: &enc,
        gpu_evidence_digest: bundle.gpu_evidence_digest(),
        tpm_ak_digest: None,
    }
    .report_data();
    bundle.cpu.quote = sim.tdx_quote(&rd, &SimMeasurements::default());
    Ok(json!({
        "nonce": STANDARD.encode(nonce),
        "evidence": bundle,
        "csr": STANDARD.encode(csr.der()),
        "encryption_public_key": tl_ca::claims_ext::format_x25519_text(&enc),
    }))
}

async fn run_concurrently<F, Fut>(n: usize, c: usize, f: F) -> Result<f64, BoxError>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), BoxError>> + Send,
{
    let f = Arc::new(f);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..c {
        let (f, next) = (f.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), BoxError>(());
                }
                f(i).await?;
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), BoxError> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(4000);
    let c: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(16);

    let dir = tempfile::tempdir()?;
    let now = server::SystemClock;
    tl_ca::store::init(dir.path(), server::Clock::now_unix(&now))?;
    let sim = Arc::new(SimTee::from_seed([7; 32]));
    let verifier = SimAwareVerifier::new(TrustAnchors::simulated(sim.root_certificate_der()));
    let policy = IssuancePolicy {
        allow_simulated: true,
        ..IssuancePolicy::default()
    };
    let config = ServerConfig::new(dir.path().to_path_buf(), Arc::new(verifier), policy);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let handle = server::start(config, listener).await?;
    let tls = server::client_config(&handle.ca_root_der)?;
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .pool_max_idle_per_host(c)
        .build()?;
    let base = format!("https://localhost:{}", handle.addr.port());

    // Nonces.
    let nonces = Arc::new(std::sync::Mutex::new(vec![Vec::new(); n]));
    let (h2, b2, n2) = (http.clone(), base.clone(), nonces.clone());
    let nonce_rate = run_concurrently(n, c, move |i| {
        let (http, base, nonces) = (h2.clone(), b2.clone(), n2.clone());
        async move {
            let v: Value = http
                .post(format!("{base}/v1/nonce"))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let nonce = STANDARD.decode(v["nonce"].as_str().ok_or("no nonce")?)?;
            nonces.lock().map_err(|_| "poisoned")?[i] = nonce;
            Ok(())
        }
    })
    .await?;

    // Requests (the loader's work, not timed).
    let t = Instant::now();
    let nonces = std::mem::take(&mut *nonces.lock().map_err(|_| "poisoned")?);
    let bodies: Vec<Vec<u8>> = nonces
        .iter()
        .map(|nonce| request(&sim, nonce).and_then(|v| Ok(serde_json::to_vec(&v)?)))
        .collect::<Result<_, _>>()?;
    let build_s = t.elapsed().as_secs_f64();
    let bodies = Arc::new(bodies);

    // Enrollments.
    let (h3, b3) = (http.clone(), base.clone());
    let enroll_rate = run_concurrently(n, c, move |i| {
        let (http, base, bodies) = (h3.clone(), b3.clone(), bodies.clone());
        async move {
            let r = http
                .post(format!("{base}/v1/enroll"))
                .header("content-type", "application/json")
                .body(bodies[i].clone())
                .send()
                .await?;
            let status = r.status();
            if !status.is_success() {
                return Err(format!("enroll failed: {status} {}", r.text().await?).into());
            }
            r.bytes().await?;
            Ok(())
        }
    })
    .await?;

    println!(
        "{}",
        json!({
            "enrollments": n,
            "concurrency": c,
            "enrollments_per_s": (enroll_rate * 10.0).round() / 10.0,
            "nonces_per_s": (nonce_rate * 10.0).round() / 10.0,
            "request_build_s": (build_s * 100.0).round() / 100.0,
            "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        })
    );
    handle.shutdown().await?;
    Ok(())
}
