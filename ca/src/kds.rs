//! Fetching from AMD's Key Distribution Service (KDS) into the offline
//! caches the CA reads: VCEKs into `--vcek-cache-dir`
//! ([`crate::vcek_cache`]) and AMD's CRLs into `--amd-crl-dir`.
//!
//! This is the separate, explicit step `tl-ca fetch-vcek` / `tl-ca
//! fetch-amd-crl`; the CA never fetches while verifying. Nothing is trusted
//! because of where it came from: a fetched VCEK is verified against the
//! AMD root shipped for its product (chain, validity, product, hwID = the
//! chip ID asked for, SPLs = the TCB asked for), and a fetched CRL must be
//! signed by that product's ARK and current, before either is written. A
//! server that lies can make a fetch fail, never plant a file. Files are
//! written atomically (a temporary file in the same directory, then a
//! rename).
//!
//! Requests have a bounded total time ([`DEFAULT_TIMEOUT`] unless told) and
//! bounded response size ([`MAX_RESPONSE`]); redirects are not followed and
//! only `https` URLs are accepted.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tl_evidence::snp::certs::AmdRoots;
use tl_evidence::snp::report::SnpReport;
use tl_evidence::snp::{check_chip_id, check_tcb, LeafKind, Product, TcbVersion, VcekCacheKey};
use tl_evidence::verify::{AnchorKind, TrustAnchors};

/// AMD's KDS.
pub const DEFAULT_KDS_URL: &str = "https://kdsintf.amd.com";
/// The default bound on one request, connection included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response read (a VCEK is about 1.3 KiB, a chain 4.6 KiB, a
/// CRL a few KiB).
pub const MAX_RESPONSE: u64 = 256 * 1024;

/// Why a fetch failed. Nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KdsError {
    /// The base URL is not `https://host[:port]` or the TLS roots are bad.
    #[error("configuration: {0}")]
    Config(String),
    /// The request did not complete in time.
    #[error("{url}: timed out")]
    Timeout { url: String },
    /// Connection, TLS or protocol failure.
    #[error("{url}: {detail}")]
    Http { url: String, detail: String },
    /// A status other than 200.
    #[error("{url}: HTTP status {status}")]
    Status { url: String, status: u16 },
    /// The response is larger than [`MAX_RESPONSE`].
    #[error("{url}: response larger than {MAX_RESPONSE} bytes")]
    TooLarge { url: String },
    /// The fetched certificate or CRL does not verify against AMD's root
    /// or is not the one asked for. `reason` is the verifier's code.
    #[error("{what} refused ({reason}): {detail}")]
    Refused {
        what: &'static str,
        reason: &'static str,
        detail: String,
    },
    /// A report given to derive the request does not parse.
    #[error("report: {0}")]
    Report(tl_evidence::EvidenceError),
    /// Writing the result failed.
    #[error("{path}: {detail}")]
    Write { path: PathBuf, detail: String },
}

impl KdsError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            KdsError::Config(_) => "KDS_CONFIG",
            KdsError::Timeout { .. } => "KDS_TIMEOUT",
            KdsError::Http { .. } => "KDS_HTTP",
            KdsError::Status { .. } => "KDS_HTTP_STATUS",
            KdsError::TooLarge { .. } => "KDS_RESPONSE_TOO_LARGE",
            KdsError::Refused { .. } => "KDS_RESPONSE_REFUSED",
            KdsError::Report(e) => e.code(),
            KdsError::Write { .. } => "KDS_WRITE",
        }
    }
}

/// What to fetch a VCEK for: a chip and the TCB its reports carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VcekRequest {
    pub product: Product,
    /// CHIP_ID as in the report (Turin uses the first 8 bytes).
    pub chip_id: [u8; 64],
    /// REPORTED_TCB as in the report.
    pub reported_tcb: TcbVersion,
}

impl VcekRequest {
    /// From an SNP report (the bare 1184 bytes or an extended report). A
    /// version 2 report has no CPUID, so its product must be given.
    pub fn from_report(report: &[u8], product: Option<Product>) -> Result<Self, KdsError> {
        let (bare, _) =
            tl_evidence::snp::report::split_extended(report).map_err(KdsError::Report)?;
        let r = SnpReport::parse(bare).map_err(KdsError::Report)?;
        let from_cpuid = r.cpuid.map(|c| Product::from_cpuid(c.family, c.model));
        let product = match (from_cpuid, product) {
            (Some(Some(p)), Some(given)) if p != given => {
                return Err(KdsError::Config(format!(
                    "the report is from {}, not {}",
                    p.name(),
                    given.name()
                )))
            }
            (Some(Some(p)), _) => p,
            (Some(None), _) => {
                return Err(KdsError::Report(
                    tl_evidence::EvidenceError::SnpUnknownProduct("report CPUID"),
                ))
            }
            (None, Some(p)) => p,
            (None, None) => {
                return Err(KdsError::Config(
                    "a version 2 report names no product: give --product".into(),
                ))
            }
        };
        Ok(VcekRequest {
            product,
            chip_id: r.chip_id,
            reported_tcb: r.reported_tcb,
        })
    }

    /// The cache and KDS key.
    pub fn key(&self) -> VcekCacheKey {
        VcekCacheKey::new(self.product, &self.chip_id, self.reported_tcb)
    }
}

/// Parse a product name as KDS spells it (case-insensitive).
pub fn parse_product(s: &str) -> Option<Product> {
    Product::ALL
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(s))
}

/// A client for one KDS base URL.
#[derive(Debug)]
pub struct KdsClient {
    base: String,
    http: reqwest::blocking::Client,
}

impl KdsClient {
    /// A client for `base_url` (`https://host[:port]`, no path). TLS server
    /// certificates are checked against `ca_roots_der` when given, else
    /// against the Mozilla roots (webpki-roots). Must not be called from
    /// inside an async runtime.
    pub fn new(
        base_url: &str,
        ca_roots_der: Option<&[Vec<u8>]>,
        timeout: Duration,
    ) -> Result<Self, KdsError> {
        let base = base_url.trim_end_matches('/');
        let rest = base
            .strip_prefix("https://")
            .ok_or_else(|| KdsError::Config(format!("{base_url:?}: only https:// is used")))?;
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return Err(KdsError::Config(format!(
                "{base_url:?}: expected https://host[:port]"
            )));
        }
        let mut roots = rustls::RootCertStore::empty();
        match ca_roots_der {
            Some(ders) => {
                for d in ders {
                    roots
                        .add(rustls::pki_types::CertificateDer::from(d.clone()))
                        .map_err(|e| KdsError::Config(format!("TLS root: {e}")))?;
                }
                if roots.is_empty() {
                    return Err(KdsError::Config("no TLS root given".into()));
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| KdsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let http = reqwest::blocking::Client::builder()
            .use_preconfigured_tls(tls)
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(timeout)
            .timeout(timeout)
            .build()
            .map_err(|e| KdsError::Config(e.to_string()))?;
        Ok(KdsClient {
            base: base.to_owned(),
            http,
        })
    }

    /// GET `base/rel`, the body bounded by [`MAX_RESPONSE`].
    pub fn get(&self, rel: &str) -> Result<Vec<u8>, KdsError> {
        self.get_with_headers(rel).map(|(body, _)| body)
    }

    /// GET `base/rel`: the body, bounded by [`MAX_RESPONSE`], and the
    /// response headers (the PCS/PCCS put issuer chains there).
    pub fn get_with_headers(
        &self,
        rel: &str,
    ) -> Result<(Vec<u8>, reqwest::header::HeaderMap), KdsError> {
        let url = format!("{}/{}", self.base, rel.trim_start_matches('/'));
        let http_err = |e: reqwest::Error| {
            if e.is_timeout() {
                KdsError::Timeout { url: url.clone() }
            } else {
                KdsError::Http {
                    url: url.clone(),
                    detail: error_chain(&e),
                }
            }
        };
        let resp = self.http.get(&url).send().map_err(http_err)?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(KdsError::Status {
                url,
                status: resp.status().as_u16(),
            });
        }
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        let read = resp.take(MAX_RESPONSE + 1).read_to_end(&mut body);
        if let Err(e) = read {
            // reqwest reports a body timeout as an io::Error wrapping its own.
            let timed_out = e.kind() == std::io::ErrorKind::TimedOut
                || e.get_ref()
                    .and_then(|i| i.downcast_ref::<reqwest::Error>())
                    .is_some_and(|r| r.is_timeout());
            return Err(if timed_out {
                KdsError::Timeout { url }
            } else {
                KdsError::Http {
                    url,
                    detail: e.to_string(),
                }
            });
        }
        if body.len() as u64 > MAX_RESPONSE {
            return Err(KdsError::TooLarge { url });
        }
        Ok((body, headers))
    }

    /// Fetch the VCEK for `req`, verify it at `now_unix`, and write it to
    /// `cache_dir/<VcekCacheKey::file_name()>` (DER), where
    /// [`crate::vcek_cache::VcekCache::lookup`] finds it. Returns the path.
    pub fn fetch_vcek(
        &self,
        req: &VcekRequest,
        cache_dir: &Path,
        now_unix: u64,
    ) -> Result<PathBuf, KdsError> {
        let key = req.key();
        let der = self.get(&key.kds_path())?;
        verify_fetched_vcek(&der, req, now_unix)?;
        let path = cache_dir.join(key.file_name());
        write_atomic(&path, &der)?;
        Ok(path)
    }

    /// Fetch AMD's CRL for `product` (`vcek/v1/{product}/crl`), verify it at
    /// `now_unix` ([`verify_amd_crl`]), and write it to
    /// `out_dir/<product lowercase>.crl` (DER), the name `tl-ca serve
    /// --amd-crl-dir` reads. Returns the path.
    pub fn fetch_crl(
        &self,
        product: Product,
        out_dir: &Path,
        now_unix: u64,
    ) -> Result<PathBuf, KdsError> {
        let der = self.get(&format!("vcek/v1/{}/crl", product.name()))?;
        verify_amd_crl(product, &der, now_unix)?;
        let path = out_dir.join(crl_file_name(product));
        write_atomic(&path, &der)?;
        Ok(path)
    }

    /// Fetch `vcek/v1/{product}/cert_chain` (PEM ASK then ARK) and check that
    /// it is exactly the ASK and ARK shipped for `product`: a changed chain
    /// at AMD means the shipped roots need updating. Writes nothing.
    pub fn check_cert_chain(&self, product: Product) -> Result<(), KdsError> {
        let pem = self.get(&format!("vcek/v1/{}/cert_chain", product.name()))?;
        let refused = |detail: String| KdsError::Refused {
            what: "cert_chain",
            reason: "SNP_VCEK_CHAIN",
            detail,
        };
        let text = std::str::from_utf8(&pem).map_err(|_| refused("not PEM".into()))?;
        let certs = crate::certs::pem_to_certs(text).map_err(|e| refused(e.to_string()))?;
        let roots = AmdRoots::get(product).map_err(|e| refused(e.to_string()))?;
        match certs.as_slice() {
            [ask, ark]
                if ask.as_slice() == roots.ask.der() && ark.as_slice() == roots.ark.der() =>
            {
                Ok(())
            }
            _ => Err(refused(format!(
                "not the shipped {} ASK and ARK",
                product.name()
            ))),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// The CRL file name for `product` in an `--amd-crl-dir`: `milan.crl`,
/// `genoa.crl`, `turin.crl`.
pub fn crl_file_name(product: Product) -> String {
    format!("{}.crl", product.name().to_ascii_lowercase())
}

/// Check a fetched VCEK: it chains to the shipped AMD root of its product
/// and is valid at `now_unix`, it is a VCEK of `req.product`, its hwID is
/// `req.chip_id` and its SPLs give `req.reported_tcb`.
pub fn verify_fetched_vcek(der: &[u8], req: &VcekRequest, now_unix: u64) -> Result<(), KdsError> {
    let refused = |e: tl_evidence::EvidenceError| KdsError::Refused {
        what: "VCEK",
        reason: e.code(),
        detail: e.to_string(),
    };
    // Default anchors: AMD's shipped roots only, never the simulated one.
    let leaf = tl_evidence::snp::verify_leaf_chain(
        &[der.to_vec()],
        &[],
        &TrustAnchors::default(),
        now_unix,
    )
    .map_err(refused)?;
    if leaf.anchor != AnchorKind::Amd || leaf.kind != LeafKind::Vcek {
        return Err(KdsError::Refused {
            what: "VCEK",
            reason: "SNP_VCEK_CHAIN",
            detail: "not an AMD VCEK".into(),
        });
    }
    if leaf.product != req.product {
        return Err(refused(tl_evidence::EvidenceError::SnpWrongProductChain));
    }
    check_chip_id(&req.chip_id, req.product, &leaf.extensions).map_err(refused)?;
    check_tcb(req.reported_tcb, req.product, &leaf.extensions).map_err(refused)?;
    Ok(())
}

/// OID of RSASSA-PSS, the signature algorithm of AMD's ARKs.
const RSASSA_PSS: &str = "1.2.840.113549.1.1.10";

/// When an accepted CRL is current.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrlValidity {
    pub this_update: i64,
    pub next_update: Option<i64>,
}

/// Check `der` is a CRL issued and signed (RSASSA-PSS SHA-384) by the ARK
/// shipped for `product`, current at `now_unix`. Codes as the SNP
/// verifier's: `SNP_CRL_INVALID`.
pub fn verify_amd_crl(
    product: Product,
    der: &[u8],
    now_unix: u64,
) -> Result<CrlValidity, KdsError> {
    let refused = |detail: &str| KdsError::Refused {
        what: "CRL",
        reason: "SNP_CRL_INVALID",
        detail: format!("{}: {detail}", product.name()),
    };
    let roots = AmdRoots::get(product).map_err(|e| refused(&e.to_string()))?;
    let (_, ark) = x509_parser::parse_x509_certificate(roots.ark.der())
        .map_err(|_| refused("shipped ARK does not parse"))?;
    let (rest, crl) = x509_parser::parse_x509_crl(der).map_err(|_| refused("does not decode"))?;
    if !rest.is_empty() {
        return Err(refused("trailing bytes"));
    }
    if crl.issuer().as_raw() != ark.subject().as_raw() {
        return Err(refused("not issued by the ARK"));
    }
    if crl.signature_algorithm.algorithm.to_id_string() != RSASSA_PSS {
        return Err(refused("signature algorithm is not RSASSA-PSS"));
    }
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PSS_2048_8192_SHA384,
        ark.public_key().subject_public_key.data.as_ref(),
    )
    .verify(
        crl.tbs_cert_list.as_ref(),
        crl.signature_value.data.as_ref(),
    )
    .map_err(|_| refused("signature"))?;
    let this_update = crl.last_update().timestamp();
    let next_update = crl.next_update().map(|t| t.timestamp());
    let now = i64::try_from(now_unix).unwrap_or(i64::MAX);
    if now < this_update {
        return Err(refused("not yet valid"));
    }
    if next_update.is_some_and(|n| now > n) {
        return Err(refused("expired"));
    }
    Ok(CrlValidity {
        this_update,
        next_update,
    })
}

/// Write `bytes` to `path` atomically: a new temporary file in the same
/// directory, synced, then renamed over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), KdsError> {
    let werr = |p: &Path, e: std::io::Error| KdsError::Write {
        path: p.to_owned(),
        detail: e.to_string(),
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut rnd = [0u8; 8];
    aws_lc_rs::rand::fill(&mut rnd).map_err(|_| KdsError::Write {
        path: path.to_owned(),
        detail: "no randomness".into(),
    })?;
    let tmp = dir.join(format!(".{name}.{}.tmp", hex::encode(rnd)));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(werr(path, e));
    }
    Ok(())
}
