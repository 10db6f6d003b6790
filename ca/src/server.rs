//! The CA's HTTPS service (axum over tokio-rustls). Does I/O.
//!
//! Every error is a 4xx (or 503 when the nonce store is full, 500 when the
//! disk fails) with the body `{"error": {"code": "...", "detail": "..."}}`.
//! Request bodies are limited ([`ServerConfig::body_limit`], 413 beyond).
//! See `docs/formats/ca.md` for the API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::{engine::general_purpose::STANDARD, Engine};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tl_evidence::bundle::EvidenceBundle;
use tl_evidence::PlatformClaims;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::certs::der_to_pem;
use crate::claims_ext::{self, CertClaims, CLAIMS_VERSION};
use crate::issuance_policy::IssuancePolicy;
use crate::issue::{self, LeafRequest};
use crate::log::SignedTreeHead;
use crate::nonce::{Nonce, NonceError, NonceStore};
use crate::orders::{self, Floors, SignedOrderAccept};
use crate::report::{self, SignedRunReport};
use crate::store::{IssuedRecord, Store, StoreError};
use crate::verifier::EvidenceVerifier;

/// Default request body limit (1 MiB).
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// The time source of the service (the pure modules take time as a value).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// Seconds since the Unix epoch.
    fn now_unix(&self) -> u64 {
        self.now_ms() / 1000
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// How to run the CA.
#[derive(Clone)]
pub struct ServerConfig {
    /// State directory (must be initialized, see [`crate::store::init`]).
    pub dir: PathBuf,
    pub verifier: Arc<dyn EvidenceVerifier>,
    pub policy: IssuancePolicy,
    pub cert_lifetime_secs: u64,
    pub nonce_ttl_secs: u64,
    pub nonce_capacity: usize,
    pub body_limit: usize,
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("dir", &self.dir)
            .field("policy", &self.policy)
            .field("cert_lifetime_secs", &self.cert_lifetime_secs)
            .field("nonce_ttl_secs", &self.nonce_ttl_secs)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    /// Defaults: 1 h certificates, 120 s nonces, 1 MiB bodies, system clock.
    pub fn new(dir: PathBuf, verifier: Arc<dyn EvidenceVerifier>, policy: IssuancePolicy) -> Self {
        Self {
            dir,
            verifier,
            policy,
            cert_lifetime_secs: issue::DEFAULT_LEAF_LIFETIME_SECS,
            nonce_ttl_secs: crate::nonce::DEFAULT_TTL_SECS,
            nonce_capacity: crate::nonce::DEFAULT_CAPACITY,
            body_limit: DEFAULT_BODY_LIMIT,
            clock: Arc::new(SystemClock),
        }
    }
}

/// Why the service could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    #[error("state: {0}")]
    Store(#[from] StoreError),
    #[error("TLS configuration: {0}")]
    Tls(String),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server task ended abnormally")]
    Join,
}

impl ServeError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Store(e) => e.code(),
            Self::Tls(_) => "SERVE_TLS",
            Self::Io(_) => "SERVE_IO",
            Self::Join => "SERVE_JOIN",
        }
    }
}

/// Installs the aws-lc-rs rustls provider as the process default (idempotent).
pub fn install_crypto_provider() {
    // An error only means a provider is already installed.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// A rustls client configuration that trusts only `ca_root_der` (for clients
/// of this CA: tests, the loader, `tl`).
pub fn client_config(ca_root_der: &[u8]) -> Result<rustls::ClientConfig, ServeError> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca_root_der.to_vec()))
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ServeError::Tls(e.to_string()))
    .map(|b| b.with_root_certificates(roots).with_no_client_auth())
}

struct AppState {
    store: Store,
    nonces: Mutex<NonceStore>,
    verifier: Arc<dyn EvidenceVerifier>,
    policy: IssuancePolicy,
    policy_text: String,
    cert_lifetime_secs: u64,
    clock: Arc<dyn Clock>,
    rng: SystemRandom,
    root_pem: String,
}

/// A running server.
#[derive(Debug)]
pub struct ServerHandle {
    /// The bound address.
    pub addr: SocketAddr,
    /// The CA root certificate (DER).
    pub ca_root_der: Vec<u8>,
    shutdown: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), ServeError>>,
}

impl ServerHandle {
    /// The CA root as PEM.
    pub fn ca_root_pem(&self) -> String {
        der_to_pem("CERTIFICATE", &self.ca_root_der)
    }

    /// SHA-256 of the root DER, hex.
    pub fn ca_root_sha256(&self) -> String {
        hex::encode(crate::sha256(&self.ca_root_der))
    }

    /// The line `tl-ca serve` prints on start.
    pub fn ready_line(&self) -> String {
        json!({"listening": self.addr.to_string(), "ca_root_sha256": self.ca_root_sha256()})
            .to_string()
    }

    /// Stops accepting, closes every connection, and releases the state.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        (&mut self.task).await.map_err(|_| ServeError::Join)?
    }

    /// Waits until the server stops by itself (it does not, unless it fails).
    pub async fn wait(mut self) -> Result<(), ServeError> {
        (&mut self.task).await.map_err(|_| ServeError::Join)?
    }
}

/// Starts the CA on `listener` in the current runtime and returns at once.
pub async fn start(
    config: ServerConfig,
    listener: TcpListener,
) -> Result<ServerHandle, ServeError> {
    install_crypto_provider();
    // The TLS certificate is checked by peers against their own clocks, so it
    // is issued at the system time, whatever clock the protocol logic uses.
    let now = SystemClock.now_unix();
    let dir = config.dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&dir, now))
        .await
        .map_err(|_| ServeError::Join)??;
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ServeError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(
        vec![
            CertificateDer::from(store.tls_cert_der.clone()),
            CertificateDer::from(store.ca.root_der().to_vec()),
        ],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(store.tls_key_der.clone())),
    )
    .map_err(|e| ServeError::Tls(e.to_string()))?;
    let mut tls = tls;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let ca_root_der = store.ca.root_der().to_vec();
    let state = Arc::new(AppState {
        root_pem: der_to_pem("CERTIFICATE", &ca_root_der),
        store,
        nonces: Mutex::new(NonceStore::new(
            config.nonce_ttl_secs,
            config.nonce_capacity,
        )),
        verifier: config.verifier,
        policy_text: config.policy.describe(),
        policy: config.policy,
        cert_lifetime_secs: config.cert_lifetime_secs,
        clock: config.clock,
        rng: SystemRandom::new(),
    });
    let app = router(state, config.body_limit);
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(accept_loop(listener, acceptor, app, rx));
    tracing::info!(%addr, "tl-ca listening");
    Ok(ServerHandle {
        addr,
        ca_root_der,
        shutdown: Some(tx),
        task,
    })
}

/// Runs the CA on `listener` until it fails.
pub async fn serve(config: ServerConfig, listener: TcpListener) -> Result<(), ServeError> {
    start(config, listener).await?.wait().await
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    app: Router,
    mut shutdown: oneshot::Receiver<()>,
) -> Result<(), ServeError> {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (tcp, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Per-connection errors (EMFILE, ECONNABORTED): back off, go on.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let app = app.clone();
                conns.spawn(async move {
                    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let svc = hyper_util::service::TowerToHyperService::new(app);
                    let mut builder = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    );
                    builder
                        .http1()
                        .timer(hyper_util::rt::TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(30));
                    if let Err(e) = builder
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                        .await
                    {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
    Ok(())
}

fn router(state: Arc<AppState>, body_limit: usize) -> Router {
    Router::new()
        .route("/v1/nonce", post(nonce))
        .route("/v1/enroll", post(enroll))
        .route("/v1/orders/accept", post(accept_order))
        .route("/v1/reports", post(submit_report))
        .route("/v1/log/sth", get(sth))
        .route("/v1/log/proof/{index}", get(proof))
        .route("/v1/ca", get(ca))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint")
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

/// An error answer.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    detail: String,
    failures: Vec<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            failures: Vec::new(),
        }
    }
    fn bad(code: &'static str, detail: impl ToString) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail.to_string())
    }
    fn forbidden(code: &'static str, detail: impl ToString) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, detail.to_string())
    }
    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "CA_INTERNAL",
            "internal error",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = json!({"code": self.code, "detail": self.detail});
        if !self.failures.is_empty() {
            err["failures"] = json!(self.failures);
        }
        (self.status, Json(json!({ "error": err }))).into_response()
    }
}

/// Reads the body (413 past the limit) and parses it as JSON (400 otherwise).
fn parse_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<T, ApiError> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "BODY_TOO_LARGE",
                r.body_text(),
            )
        } else {
            ApiError::new(r.status(), "BODY_UNREADABLE", r.body_text())
        }
    })?;
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad("BODY_MALFORMED", e))
}

#[derive(Serialize)]
struct NonceResponse {
    nonce: String,
    expires_at: u64,
}

async fn nonce(State(st): State<Arc<AppState>>) -> Result<Json<NonceResponse>, ApiError> {
    let now = st.clock.now_unix();
    let mut random = [0u8; 32];
    st.rng.fill(&mut random).map_err(ApiError::internal)?;
    let issued = st
        .nonces
        .lock()
        .map_err(|_| ApiError::internal("nonce store lock poisoned"))?
        .issue(random, now);
    let (n, expires_at) = issued.map_err(nonce_error)?;
    Ok(Json(NonceResponse {
        nonce: STANDARD.encode(n.0),
        expires_at,
    }))
}

fn nonce_error(e: NonceError) -> ApiError {
    let status = match e {
        NonceError::Malformed => StatusCode::BAD_REQUEST,
        NonceError::StoreFull | NonceError::Collision => StatusCode::SERVICE_UNAVAILABLE,
        NonceError::Replayed => StatusCode::CONFLICT,
        _ => StatusCode::FORBIDDEN,
    };
    ApiError::new(status, e.code(), e.to_string())
}

/// The body of `POST /v1/enroll`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    /// The nonce from `POST /v1/nonce`, base64.
    pub nonce: String,
    pub evidence: EvidenceBundle,
    /// PKCS#10 CSR, DER, base64.
    pub csr: String,
    /// `"x25519:<base64>"`.
    pub encryption_public_key: String,
}

/// The answer to `POST /v1/enroll`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub certificate_pem: String,
    /// Leaf then root.
    pub chain_pem: String,
    pub claims: CertClaims,
    pub order_floors: Floors,
}

async fn enroll(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let req: EnrollRequest = parse_body(body)?;
    let now = st.clock.now_unix();
    let nonce_bytes = STANDARD
        .decode(&req.nonce)
        .map_err(|_| nonce_error(NonceError::Malformed))?;
    let nonce = Nonce::from_slice(&nonce_bytes).map_err(nonce_error)?;
    // The nonce is spent by this attempt, whatever its outcome.
    st.nonces
        .lock()
        .map_err(|_| ApiError::internal("nonce store lock poisoned"))?
        .consume(&nonce, now)
        .map_err(nonce_error)?;
    let csr_der = STANDARD
        .decode(&req.csr)
        .map_err(|e| ApiError::bad("ENROLL_CSR_MALFORMED", e))?;
    let csr = issue::parse_csr(&csr_der).map_err(|e| ApiError::bad(e.code(), e))?;
    let enc_key = claims_ext::parse_x25519_text(&req.encryption_public_key)
        .map_err(|e| ApiError::bad("ENROLL_ENCRYPTION_KEY", e))?;
    let platform: PlatformClaims = st
        .verifier
        .verify(&req.evidence, &nonce.0, now)
        .map_err(|r| ApiError::forbidden(r.code, r.detail))?;
    let expected = req
        .evidence
        .expected_report_data(&nonce.0, &csr.spki_der, &enc_key);
    if expected != platform.report_data {
        return Err(ApiError::forbidden(
            "ENROLL_BINDING_MISMATCH",
            "report data does not bind this nonce, CSR key, encryption key and GPU evidence",
        ));
    }
    if let Err(failures) = st.policy.appraise(&platform) {
        let detail: Vec<String> = failures.iter().map(|f| f.to_string()).collect();
        let mut e = ApiError::forbidden("ENROLL_POLICY_REJECTED", detail.join("; "));
        e.failures = failures.iter().map(|f| f.code()).collect();
        return Err(e);
    }
    let claims = CertClaims {
        version: CLAIMS_VERSION,
        platform,
        encryption_public_key: claims_ext::format_x25519_text(&enc_key),
        evidence_digest: req.evidence.digest(),
        issuance_policy: st.policy_text.clone(),
    };
    let leaf = st
        .store
        .ca
        .issue_leaf(&LeafRequest {
            csr: &csr,
            claims: &claims,
            now_unix: now,
            lifetime_secs: st.cert_lifetime_secs,
        })
        .map_err(ApiError::internal)?;
    let certificate_pem = der_to_pem("CERTIFICATE", &leaf.der);
    st.store
        .record_issued(&IssuedRecord {
            serial: leaf.serial_hex.clone(),
            not_before: leaf.not_before,
            not_after: leaf.not_after,
            evidence_digest: hex::encode(claims.evidence_digest),
            certificate_pem: certificate_pem.clone(),
        })
        .await
        .map_err(ApiError::internal)?;
    let order_floors = st.store.floors.lock().await.clone();
    tracing::info!(serial = %leaf.serial_hex, evidence = %hex::encode(claims.evidence_digest), "issued");
    Ok(Json(EnrollResponse {
        chain_pem: format!("{certificate_pem}{}", st.root_pem),
        certificate_pem,
        claims,
        order_floors,
    }))
}

async fn accept_order(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let req: SignedOrderAccept = parse_body(body)?;
    let now = st.clock.now_unix();
    let (accept, _leaf) = orders::verify_accept(&req, st.store.ca.root_der(), now)
        .map_err(|e| ApiError::forbidden(e.code(), e))?;
    let mut floors = st.store.floors.lock().await;
    let mut next = floors.clone();
    orders::raise_floor(&mut next, &accept.family, accept.version)
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, e.code(), e.to_string()))?;
    st.store
        .persist_floors(&next)
        .await
        .map_err(ApiError::internal)?;
    *floors = next;
    tracing::info!(family = %accept.family, version = accept.version, "order accepted");
    Ok(Json(json!({
        "family": accept.family,
        "version": accept.version,
        "floor": accept.version,
    })))
}

/// The answer to `POST /v1/reports`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogInclusion {
    pub index: u64,
    pub tree_size: u64,
    /// Root hash, hex.
    pub root: String,
    /// Audit path, hex hashes.
    pub inclusion_proof: Vec<String>,
    pub signed_tree_head: SignedTreeHead,
}

async fn submit_report(
    State(st): State<Arc<AppState>>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<LogInclusion>, ApiError> {
    let signed: SignedRunReport = parse_body(body)?;
    let now = st.clock.now_unix();
    report::verify_signed_report(&signed, st.store.ca.root_der(), now)
        .map_err(|e| ApiError::forbidden(e.code(), e))?;
    let leaf = report::log_leaf(&signed).map_err(|e| ApiError::bad(e.code(), e))?;
    let (index, size, root, proof) = {
        let mut log = st.store.log.lock().await;
        let index = log.append(&leaf).await.map_err(ApiError::internal)?;
        let size = log.tree.size();
        let proof = log.tree.proof(index, size).map_err(ApiError::internal)?;
        (index, size, log.tree.root(), proof)
    };
    let sth = SignedTreeHead::sign(st.store.ca.signing_key(), size, root, st.clock.now_ms())
        .map_err(ApiError::internal)?;
    tracing::info!(index, tree_size = size, "report logged");
    Ok(Json(LogInclusion {
        index,
        tree_size: size,
        root: hex::encode(root),
        inclusion_proof: proof.iter().map(hex::encode).collect(),
        signed_tree_head: sth,
    }))
}

async fn sth(State(st): State<Arc<AppState>>) -> Result<Json<SignedTreeHead>, ApiError> {
    let (size, root) = {
        let log = st.store.log.lock().await;
        (log.tree.size(), log.tree.root())
    };
    SignedTreeHead::sign(st.store.ca.signing_key(), size, root, st.clock.now_ms())
        .map(Json)
        .map_err(ApiError::internal)
}

async fn proof(
    State(st): State<Arc<AppState>>,
    Path(index): Path<String>,
) -> Result<Json<LogInclusion>, ApiError> {
    let index: u64 = index
        .parse()
        .map_err(|_| ApiError::bad("LOG_INDEX_MALFORMED", "index is not a number"))?;
    let (size, root, proof) = {
        let log = st.store.log.lock().await;
        let size = log.tree.size();
        let proof = log
            .tree
            .proof(index, size)
            .map_err(|e| ApiError::new(StatusCode::NOT_FOUND, e.code(), e.to_string()))?;
        (size, log.tree.root(), proof)
    };
    let sth = SignedTreeHead::sign(st.store.ca.signing_key(), size, root, st.clock.now_ms())
        .map_err(ApiError::internal)?;
    Ok(Json(LogInclusion {
        index,
        tree_size: size,
        root: hex::encode(root),
        inclusion_proof: proof.iter().map(hex::encode).collect(),
        signed_tree_head: sth,
    }))
}

async fn ca(State(st): State<Arc<AppState>>) -> Json<serde_json::Value> {
    Json(json!({
        "certificate_pem": st.root_pem,
        "sha256": hex::encode(crate::sha256(st.store.ca.root_der())),
    }))
}
