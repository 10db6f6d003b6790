//! `tl-ca`: the certification authority service.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use tl_ca::issuance_policy::IssuancePolicy;
use tl_ca::server::{self, Clock, ServerConfig, SystemClock};
use tl_ca::SimAwareVerifier;
use tl_evidence::accept::parse_acceptable_tcb_status;
use tl_evidence::verify::TrustAnchors;

#[derive(Parser, Debug)]
#[command(
    name = "tl-ca",
    version,
    about = "trusted-loader certification authority"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a CA (key, root, TLS certificate) in a new state directory.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// Print the result as one JSON line.
        #[arg(long)]
        json: bool,
    },
    /// Serve the CA over HTTPS.
    Serve {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: String,
        /// Initialize the state directory first if it holds no CA.
        #[arg(long)]
        init: bool,
        /// Trust evidence chained to this simulated-TEE root (PEM or DER),
        /// and let the issuance policy accept simulated platforms.
        #[arg(long, value_name = "FILE")]
        allow_simulated_root: Option<PathBuf>,
        /// Also trust GPU and NVSwitch device chains ending at this
        /// simulated NVIDIA device root (PEM or DER), beside NVIDIA's. Only
        /// with --allow-simulated-root.
        #[arg(long, value_name = "FILE", requires = "allow_simulated_root")]
        allow_simulated_gpu_root: Option<PathBuf>,
        /// Trust the Intel SGX root CA in this file (PEM or DER) instead of
        /// the one shipped with tl-ca (Intel's production root).
        #[arg(long, value_name = "FILE")]
        intel_root: Option<PathBuf>,
        /// Require dcap-qvl's whole verifier (run on tl's crypto) to reach
        /// the same TCB status and advisories on every TDX quote appraised
        /// with collateral before a certificate is issued; otherwise 403
        /// REFERENCE_DISAGREES. Two independent verifiers, at the cost of a
        /// second verification (which parses the collateral each time).
        #[arg(long)]
        reference_check: bool,
        /// DCAP collateral for real TDX quotes, read once at start: a
        /// directory of QuoteCollateralV3 `*.json` files (one per FMSPC)
        /// and/or PCS-layout subdirectories, or one PCS-layout directory.
        /// A real quote whose FMSPC has none is refused
        /// (EVIDENCE_COLLATERAL_MISSING).
        #[arg(long, value_name = "DIR")]
        collateral_dir: Option<PathBuf>,
        /// Appraise simulated quotes through the DCAP path with this
        /// simulated collateral (QuoteCollateralV3 JSON written from the
        /// simulated TEE, `SimTee::tdx_collateral_json`). Only with
        /// --allow-simulated-root.
        #[arg(long, value_name = "FILE", requires = "allow_simulated_root")]
        sim_collateral: Option<PathBuf>,
        /// TCB statuses to accept (repeatable; default UpToDate): UpToDate,
        /// SWHardeningNeeded, ConfigurationNeeded,
        /// ConfigurationAndSWHardeningNeeded, OutOfDate,
        /// OutOfDateConfigurationNeeded, TDRelaunchAdvised,
        /// TDRelaunchAdvisedConfigurationNeeded. Revoked is never accepted.
        #[arg(long = "accept-tcb", value_name = "STATUS")]
        accept_tcb: Vec<String>,
        /// Leaf certificate lifetime: a number with s, m or h (default 1h).
        #[arg(long, default_value = "1h")]
        cert_lifetime: String,
        /// Nonce lifetime in seconds.
        #[arg(long, default_value_t = tl_ca::nonce::DEFAULT_TTL_SECS)]
        nonce_ttl: u64,
        /// SEV-SNP: a directory of VCEKs (offline, keyed like AMD's KDS) used
        /// when a report arrives without certificates. Filling it is a
        /// separate step; the CA never fetches.
        #[arg(long, value_name = "DIR")]
        vcek_cache_dir: Option<PathBuf>,
        /// SEV-SNP: AMD CRLs read once at start, `<product>.crl` (DER:
        /// milan.crl, genoa.crl, turin.crl; `tl-ca fetch-amd-crl` writes
        /// them). Each must verify and be current; an AMD-rooted report whose
        /// product has none is then refused (SNP_CRL_MISSING).
        #[arg(long, value_name = "DIR")]
        amd_crl_dir: Option<PathBuf>,
    },
    /// Fetch the VCEK of a chip and TCB from AMD's KDS, verify it against
    /// the shipped AMD root, and write it into a VCEK cache directory.
    FetchVcek {
        #[command(flatten)]
        kds: KdsArgs,
        /// Milan, Genoa or Turin (a version 3+ report names it itself).
        #[arg(long)]
        product: Option<String>,
        /// Derive chip ID and TCB (and product, when it names one) from
        /// this SNP report.
        #[arg(long, value_name = "FILE", conflicts_with_all = ["chip_id", "reported_tcb"])]
        report: Option<PathBuf>,
        /// CHIP_ID in hex (64 bytes; Turin: 8).
        #[arg(long, value_name = "HEX", requires = "reported_tcb")]
        chip_id: Option<String>,
        /// REPORTED_TCB as a 64-bit hex number (the report's little-endian
        /// field read as an integer, e.g. 0x7308000000000003).
        #[arg(long, value_name = "HEX", requires = "chip_id")]
        reported_tcb: Option<String>,
        /// The VCEK cache directory (`tl-ca serve --vcek-cache-dir`).
        #[arg(long, value_name = "DIR")]
        cache_dir: PathBuf,
    },
    /// Fetch Intel DCAP collateral for one platform (FMSPC) from a PCCS or
    /// Intel's PCS, verify it, and install it for `serve --collateral-dir`.
    ///
    /// Fetches the TCB info, QE identity, PCK CRL and root CA CRL with their
    /// issuer chains (PCS API v4), checks every chain to the shipped Intel SGX
    /// Root CA, both signatures, both CRLs and every validity window now,
    /// and that the TCB info is for the TEE and FMSPC asked for; only then
    /// installs `<out>/<tee>-<fmspc>/` (replacing an older copy by rename).
    /// A lying or stale server can make the fetch fail, never plant a file.
    ///
    /// Examples:
    ///   tl-ca fetch-collateral --quote quote.bin --out pcs/
    ///   tl-ca fetch-collateral --pccs-url https://pccs.internal:8081 \
    ///       --pccs-ca-root pccs-tls.pem --fmspc b0c06f000000 --out pcs/
    FetchCollateral {
        /// PCCS or PCS base URL (https only).
        #[arg(long, default_value = tl_ca::pccs::DEFAULT_PCS_URL)]
        pccs_url: String,
        /// Trust only these TLS roots (PEM) for the PCCS connection; required
        /// for a URL other than Intel's PCS, which uses Mozilla's roots.
        #[arg(long, value_name = "PEM")]
        pccs_ca_root: Option<PathBuf>,
        /// Bound on each request, in seconds.
        #[arg(long, default_value_t = 30)]
        timeout_secs: u64,
        /// Take the FMSPC and the PCK CA from this TDX quote (its signatures
        /// and PCK chain are checked against the Intel root first).
        #[arg(long, value_name = "FILE", conflicts_with = "fmspc")]
        quote: Option<PathBuf>,
        /// FMSPC in hex (6 bytes), instead of --quote.
        #[arg(long, value_name = "HEX")]
        fmspc: Option<String>,
        /// tdx or sgx (with --fmspc; a quote names its own).
        #[arg(long, default_value = "tdx")]
        tee: String,
        /// The PCK CA whose CRL to fetch: platform or processor (with --fmspc).
        #[arg(long, default_value = "platform")]
        ca: String,
        /// The collateral directory (`serve --collateral-dir`).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Print one JSON object instead of the path.
        #[arg(long)]
        json: bool,
    },
    /// Fetch AMD's CRL for a product from KDS, verify it against the
    /// shipped ARK, and write `<product>.crl` into a directory.
    FetchAmdCrl {
        #[command(flatten)]
        kds: KdsArgs,
        /// Milan, Genoa or Turin.
        #[arg(long)]
        product: String,
        /// The CRL directory (`tl-ca serve --amd-crl-dir`).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct KdsArgs {
    /// KDS base URL (https only).
    #[arg(long, default_value = tl_ca::kds::DEFAULT_KDS_URL)]
    kds_url: String,
    /// Trust only these TLS roots (PEM) for the KDS connection; required
    /// for a URL other than the default, which uses Mozilla's roots.
    #[arg(long, value_name = "PEM")]
    kds_ca_root: Option<PathBuf>,
    /// Bound on each request, in seconds.
    #[arg(long, default_value_t = tl_ca::kds::DEFAULT_TIMEOUT.as_secs())]
    timeout_secs: u64,
}

impl KdsArgs {
    fn client(&self) -> Result<tl_ca::kds::KdsClient> {
        https_client(
            &self.kds_url,
            self.kds_ca_root.as_deref(),
            tl_ca::kds::DEFAULT_KDS_URL,
            "--kds",
            self.timeout_secs,
        )
    }
}

/// The HTTPS client of the fetch commands: `url` with the TLS roots in the
/// PEM file `ca_root`, or Mozilla's roots for `default_url` only (`flag`
/// names the options in errors: `--kds`, `--pccs`).
fn https_client(
    url: &str,
    ca_root: Option<&Path>,
    default_url: &str,
    flag: &str,
    timeout_secs: u64,
) -> Result<tl_ca::kds::KdsClient> {
    let roots = match ca_root {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            Some(tl_ca::certs::pem_to_certs(&text)?)
        }
        None if url.trim_end_matches('/') != default_url => {
            bail!("{flag}-ca-root is required with a {flag}-url other than the default")
        }
        None => None,
    };
    if timeout_secs == 0 {
        bail!("--timeout-secs must be positive");
    }
    tl_ca::kds::KdsClient::new(
        url,
        roots.as_deref(),
        std::time::Duration::from_secs(timeout_secs),
    )
    .map_err(kds_err)
}

/// A boxed verifier, for stacking optional wrappers.
struct Dyn(Box<dyn tl_ca::EvidenceVerifier>);

impl tl_ca::EvidenceVerifier for Dyn {
    fn verify(
        &self,
        bundle: &tl_evidence::bundle::EvidenceBundle,
        nonce: &[u8],
        now_unix: u64,
    ) -> Result<tl_evidence::PlatformClaims, tl_ca::Rejection> {
        self.0.verify(bundle, nonce, now_unix)
    }
}

fn kds_err(e: tl_ca::kds::KdsError) -> anyhow::Error {
    anyhow::anyhow!("{e} ({})", e.code())
}

fn product_arg(s: &str) -> Result<tl_evidence::snp::Product> {
    tl_ca::kds::parse_product(s).with_context(|| format!("unknown product {s:?}"))
}

fn parse_duration(s: &str) -> Result<u64> {
    let (num, mul) = match s.chars().last() {
        Some('s') => (&s[..s.len() - 1], 1),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('h') => (&s[..s.len() - 1], 3600),
        _ => (s, 1),
    };
    let n: u64 = num.parse().with_context(|| format!("bad duration {s:?}"))?;
    n.checked_mul(mul).context("duration too large")
}

fn read_cert(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if let Ok(text) = std::str::from_utf8(&bytes) {
        if text.contains("-----BEGIN CERTIFICATE-----") {
            return tl_ca::certs::pem_to_certs(text)?
                .into_iter()
                .next()
                .with_context(|| format!("{}: no certificate", path.display()));
        }
    }
    Ok(bytes)
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Init { dir, json } => {
            let info = tl_ca::store::init(&dir, SystemClock.now_unix())?;
            if json {
                println!("{}", serde_json::to_string(&info)?);
            } else {
                println!(
                    "CA created in {}\nroot: {}\nroot sha256: {}",
                    info.dir.display(),
                    info.ca_root_pem_path.display(),
                    info.ca_root_sha256
                );
            }
            Ok(())
        }
        Cmd::Serve {
            dir,
            listen,
            init,
            allow_simulated_root,
            allow_simulated_gpu_root,
            intel_root,
            reference_check,
            collateral_dir,
            sim_collateral,
            accept_tcb,
            cert_lifetime,
            nonce_ttl,
            vcek_cache_dir,
            amd_crl_dir,
        } => {
            if init && !dir.join(tl_ca::store::CA_KEY_FILE).exists() {
                tl_ca::store::init(&dir, SystemClock.now_unix())?;
            }
            let mut anchors = TrustAnchors::default();
            if let Some(p) = &allow_simulated_root {
                anchors.simulated_root_der = Some(read_cert(p)?);
                tracing::warn!(root = %p.display(), "simulated TEE evidence is ENABLED");
            }
            anchors.intel_root_der = Some(match &intel_root {
                Some(p) => read_cert(p)?,
                None => tl_evidence::INTEL_SGX_ROOT_CA_DER.to_vec(),
            });
            let mut accepted_tcb = Vec::new();
            for s in &accept_tcb {
                match parse_acceptable_tcb_status(s) {
                    Ok(t) => accepted_tcb.push(t),
                    Err(e) => bail!("--accept-tcb: {e}"),
                }
            }
            if accepted_tcb.is_empty() {
                accepted_tcb = IssuancePolicy::default().accepted_tcb;
            }
            let anchors_for_crl = anchors.clone();
            let mut verifier = SimAwareVerifier::new(anchors).with_reference_check(reference_check);
            if reference_check {
                tracing::info!("TDX quotes must also verify with dcap-qvl to the same verdict");
            }
            if let Some(d) = &collateral_dir {
                let store = tl_ca::collateral::load_collateral_dir(d)
                    .map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?;
                for c in store.iter() {
                    let (from, until) = c.validity_window();
                    tracing::info!(
                        fmspc = %hex::encode(c.fmspc()),
                        tee = ?c.tee(),
                        current_from = from,
                        current_until = until,
                        "DCAP collateral loaded"
                    );
                }
                verifier = verifier.with_collateral(store);
            }
            if let Some(p) = &allow_simulated_gpu_root {
                let anchors = tl_evidence::nvidia::GpuAnchors::nvidia()
                    .and_der(&read_cert(p)?)
                    .map_err(|e| anyhow::anyhow!("{}: {e} ({})", p.display(), e.code()))?;
                tracing::warn!(root = %p.display(), "simulated GPU and NVSwitch evidence is ENABLED");
                verifier = verifier.with_gpu_anchors(anchors);
            }
            if let Some(p) = &sim_collateral {
                let c = tl_ca::collateral::read_collateral(p)
                    .map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?;
                tracing::warn!(file = %p.display(), "simulated quotes are appraised with simulated DCAP collateral");
                verifier = verifier.with_sim_collateral(c);
            }
            let policy = IssuancePolicy {
                allow_simulated: verifier.allows_simulated(),
                accepted_tcb,
                ..IssuancePolicy::default()
            };
            let verifier = Dyn(match &amd_crl_dir {
                Some(d) => {
                    let crls = tl_ca::vcek_cache::load_amd_crl_dir(d, SystemClock.now_unix())
                        .map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?;
                    tracing::info!(
                        dir = %d.display(),
                        products = ?crls.products().iter().map(|p| p.name()).collect::<Vec<_>>(),
                        simulated = crls.simulated().is_some(),
                        "AMD CRLs loaded"
                    );
                    Box::new(tl_ca::vcek_cache::AmdCrlVerifier::new(
                        verifier,
                        crls,
                        anchors_for_crl,
                    ))
                }
                None => Box::new(verifier),
            });
            let verifier: Arc<dyn tl_ca::EvidenceVerifier> = match vcek_cache_dir {
                Some(d) => {
                    if !d.is_dir() {
                        bail!("--vcek-cache-dir {}: not a directory", d.display());
                    }
                    tracing::info!(dir = %d.display(), "SEV-SNP VCEK cache");
                    Arc::new(tl_ca::vcek_cache::VcekCachingVerifier::new(
                        verifier,
                        tl_ca::vcek_cache::VcekCache::new(d),
                    ))
                }
                None => Arc::new(verifier),
            };
            let mut config = ServerConfig::new(dir, verifier, policy);
            config.cert_lifetime_secs = parse_duration(&cert_lifetime)?;
            config.nonce_ttl_secs = nonce_ttl;
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .with_context(|| format!("binding {listen}"))?;
                let handle = server::start(config, listener).await?;
                println!("{}", handle.ready_line());
                use std::io::Write;
                std::io::stdout().flush()?;
                tokio::select! {
                    r = handle.wait() => r.map_err(anyhow::Error::from),
                    _ = tokio::signal::ctrl_c() => {
                        tracing::info!("interrupted, stopping");
                        Ok(())
                    }
                }
            })
        }
        Cmd::FetchVcek {
            kds,
            product,
            report,
            chip_id,
            reported_tcb,
            cache_dir,
        } => {
            let product = product.as_deref().map(product_arg).transpose()?;
            let req = match (&report, &chip_id, &reported_tcb) {
                (Some(r), _, _) => {
                    let bytes =
                        std::fs::read(r).with_context(|| format!("reading {}", r.display()))?;
                    tl_ca::kds::VcekRequest::from_report(&bytes, product).map_err(kds_err)?
                }
                (None, Some(c), Some(t)) => {
                    let product = product.context("--product is required with --chip-id")?;
                    let raw = hex::decode(c.trim()).context("--chip-id: not hex")?;
                    if raw.is_empty() || raw.len() > 64 {
                        bail!("--chip-id: 1 to 64 bytes expected");
                    }
                    let mut chip = [0u8; 64];
                    chip.get_mut(..raw.len())
                        .context("--chip-id length")?
                        .copy_from_slice(&raw);
                    let t = t.trim();
                    let t = t.strip_prefix("0x").unwrap_or(t);
                    let tcb = u64::from_str_radix(t, 16).context("--reported-tcb: not hex")?;
                    tl_ca::kds::VcekRequest {
                        product,
                        chip_id: chip,
                        reported_tcb: tl_evidence::snp::TcbVersion(tcb),
                    }
                }
                _ => bail!("give --report FILE, or --chip-id and --reported-tcb"),
            };
            if !cache_dir.is_dir() {
                bail!("--cache-dir {}: not a directory", cache_dir.display());
            }
            let client = kds.client()?;
            let path = client
                .fetch_vcek(&req, &cache_dir, SystemClock.now_unix())
                .map_err(kds_err)?;
            println!("{}", path.display());
            Ok(())
        }
        Cmd::FetchCollateral {
            pccs_url,
            pccs_ca_root,
            timeout_secs,
            quote,
            fmspc,
            tee,
            ca,
            out,
            json,
        } => {
            use tl_ca::pccs::{CollateralRequest, PckCa};
            use tl_evidence::dcap::DcapTee;
            let now = SystemClock.now_unix();
            let req = match (&quote, &fmspc) {
                (Some(q), _) => {
                    let bytes =
                        std::fs::read(q).with_context(|| format!("reading {}", q.display()))?;
                    let anchors = tl_evidence::verify::TrustAnchors::intel(
                        tl_evidence::INTEL_SGX_ROOT_CA_DER.to_vec(),
                    );
                    let vq =
                        tl_evidence::tdx::verify::verify_quote_signatures(&bytes, &anchors, now)
                            .map_err(|e| anyhow::anyhow!("{}: {e} ({})", q.display(), e.code()))?;
                    let pck = vq
                        .pck
                        .context("the quote's PCK certificate has no SGX extension")?;
                    // The PCK CA's subject CN names it: "Intel SGX PCK Processor CA"
                    // or "Intel SGX PCK Platform CA".
                    let processor = vq
                        .pck_chain_der
                        .get(1)
                        .is_some_and(|d| d.windows(12).any(|w| w == b"Processor CA"));
                    CollateralRequest {
                        tee: DcapTee::Tdx,
                        fmspc: pck.fmspc,
                        ca: if processor {
                            PckCa::Processor
                        } else {
                            PckCa::Platform
                        },
                    }
                }
                (None, Some(f)) => {
                    let raw = hex::decode(f.trim()).context("--fmspc: not hex")?;
                    let fmspc: [u8; 6] = raw
                        .try_into()
                        .map_err(|_| anyhow::anyhow!("--fmspc: 6 bytes expected"))?;
                    CollateralRequest {
                        tee: match tee.as_str() {
                            "tdx" => DcapTee::Tdx,
                            "sgx" => DcapTee::Sgx,
                            other => bail!("--tee {other:?}: tdx or sgx"),
                        },
                        fmspc,
                        ca: match ca.as_str() {
                            "platform" => PckCa::Platform,
                            "processor" => PckCa::Processor,
                            other => bail!("--ca {other:?}: platform or processor"),
                        },
                    }
                }
                (None, None) => bail!("give --quote FILE or --fmspc HEX"),
            };
            if !out.is_dir() {
                bail!("--out {}: not a directory", out.display());
            }
            let client = https_client(
                &pccs_url,
                pccs_ca_root.as_deref(),
                tl_ca::pccs::DEFAULT_PCS_URL,
                "--pccs",
                timeout_secs,
            )?;
            let dir = tl_ca::pccs::fetch_collateral(&client, &req, &out, now)
                .map_err(|e| anyhow::anyhow!("{e} ({})", e.code()))?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({
                        "dir": dir,
                        "tee": format!("{:?}", req.tee).to_lowercase(),
                        "fmspc": hex::encode(req.fmspc),
                        "pck_ca": req.ca.as_str(),
                    })
                );
            } else {
                println!("{}", dir.display());
            }
            Ok(())
        }
        Cmd::FetchAmdCrl { kds, product, out } => {
            let product = product_arg(&product)?;
            if !out.is_dir() {
                bail!("--out {}: not a directory", out.display());
            }
            let client = kds.client()?;
            let path = client
                .fetch_crl(product, &out, SystemClock.now_unix())
                .map_err(kds_err)?;
            println!("{}", path.display());
            Ok(())
        }
    }
}
