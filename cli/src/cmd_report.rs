//! `tl report verify` and `tl cert verify`: checks anyone outside the CVM can
//! run against the CA root.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use tl_ca::report::{RunReport, SignedRunReport};
use tl_ca::server::LogInclusion;

use crate::output;

/// Verify run reports.
#[derive(Debug, clap::Subcommand)]
pub enum ReportCmd {
    /// Verify a signed run report: its signature by the certified key, that
    /// certificate's chain to the CA root, and (when the file carries the CA's
    /// receipt) its inclusion in the CA's transparency log and the log head's
    /// signature.
    ///
    /// The file is what the loader writes to `report_out`:
    /// `{"signed_report": {...}, "log": {...}}`, or a bare signed report.
    ///
    /// Example: tl report verify cvm/report.json --ca-root ca/ca-root.pem
    Verify(ReportVerifyArgs),
}

/// Verify certificates.
#[derive(Debug, clap::Subcommand)]
pub enum CertCmd {
    /// Verify a loader certificate against the CA root and print the claims
    /// the CA certified (TEE, measurements, TCB status, encryption key).
    ///
    /// Example: tl cert verify cvm/publish/certificate.pem --ca-root ca/ca-root.pem
    Verify(CertVerifyArgs),
}

#[derive(Debug, clap::Args)]
pub struct ReportVerifyArgs {
    /// The run report file.
    pub report: PathBuf,
    /// The CA root certificate (PEM).
    #[arg(long, value_name = "PEM")]
    pub ca_root: PathBuf,
    /// Require the CA's log receipt (inclusion proof) to be present.
    #[arg(long)]
    pub require_log: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct CertVerifyArgs {
    /// The certificate (PEM; the first certificate is the leaf).
    pub certificate: PathBuf,
    /// The CA root certificate (PEM).
    #[arg(long, value_name = "PEM")]
    pub ca_root: PathBuf,
    /// Verification time (RFC 3339); default now.
    #[arg(long)]
    pub at: Option<String>,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
}

/// What `tl report verify` found.
#[derive(Debug, Serialize)]
pub struct ReportVerdict {
    pub ok: bool,
    pub report: RunReport,
    pub log_index: Option<u64>,
    pub log_tree_size: Option<u64>,
}

pub fn run_report(c: ReportCmd) -> Result<()> {
    match c {
        ReportCmd::Verify(a) => {
            let root = read_root(&a.ca_root)?;
            let text = std::fs::read(&a.report).with_context(|| a.report.display().to_string())?;
            let v = verify_report_file(&text, &root, a.require_log)?;
            output::emit(a.json, &v, |v| {
                let r = &v.report;
                println!("run report: OK");
                println!(
                    "  order      {} v{} ({})",
                    r.order.family,
                    r.order.version,
                    hex::encode(r.order.digest)
                );
                println!("  evidence   {}", hex::encode(r.evidence_digest));
                for c in &r.components {
                    println!(
                        "  component  {} {} bytes sha256 {}",
                        c.name,
                        c.size,
                        hex::encode(c.sha256)
                    );
                }
                for o in &r.outputs {
                    println!(
                        "  output     {} -> {} (plaintext sha256 {})",
                        o.name,
                        o.recipients.join(", "),
                        hex::encode(o.plaintext_sha256)
                    );
                }
                println!(
                    "  exit       {:?}; wipe done: {}",
                    r.exit_status, r.wipe_done
                );
                if let (Some(i), Some(n)) = (v.log_index, v.log_tree_size) {
                    println!(
                        "  log        included at index {i} of {n}; tree head signed by the CA"
                    );
                }
            })
        }
    }
}

/// Verify a report file's signature, certificate and (if present) log receipt.
pub fn verify_report_file(
    text: &[u8],
    ca_root_der: &[u8],
    require_log: bool,
) -> Result<ReportVerdict> {
    let v: serde_json::Value = serde_json::from_slice(text).context("report file is not JSON")?;
    let (signed_v, log_v) = match v.get("signed_report") {
        Some(s) => (s.clone(), v.get("log").cloned()),
        None => (v, None),
    };
    let signed: SignedRunReport =
        serde_json::from_value(signed_v).context("not a signed run report")?;
    // The certificate is short-lived: check it at the time the report says it
    // was signed (the CA checked it at submission, and the log proves when).
    let verified = tl_ca::report::verify_signed_report_at_signing_time(&signed, ca_root_der)
        .map_err(|e| anyhow::anyhow!("{}: {e}", e.code()))?;
    let report = verified.report.clone();
    let (mut idx, mut size) = (None, None);
    match log_v {
        Some(l) => {
            let inc: LogInclusion = serde_json::from_value(l).context("log receipt malformed")?;
            let leaf = tl_ca::report::log_leaf(&signed)
                .map_err(|e| anyhow::anyhow!("{}: {e}", e.code()))?;
            let proof = tl_ca::log::parse_hex_hashes(&inc.inclusion_proof)
                .map_err(|e| anyhow::anyhow!("{}: {e}", e.code()))?;
            let root: [u8; 32] = hex::decode(&inc.root)
                .ok()
                .and_then(|r| r.try_into().ok())
                .context("log root is not 32 hex bytes")?;
            if inc.signed_tree_head.tree_size != inc.tree_size || inc.signed_tree_head.root != root
            {
                bail!("LOG_STH_MISMATCH: the receipt's tree head does not match its proof");
            }
            let ca_key = tl_ca::certs::root_public_key(ca_root_der)
                .map_err(|e| anyhow::anyhow!("{}: {e}", e.code()))?;
            inc.signed_tree_head
                .verify(&ca_key)
                .map_err(|e| anyhow::anyhow!("{}: {e}", e.code()))?;
            tl_ca::log::verify_inclusion(&leaf, inc.index, inc.tree_size, &proof, &root)
                .map_err(|e| anyhow::anyhow!("{}: {e}", e.code()))?;
            idx = Some(inc.index);
            size = Some(inc.tree_size);
        }
        None if require_log => bail!("LOG_RECEIPT_MISSING: the file carries no log receipt"),
        None => {}
    }
    Ok(ReportVerdict {
        ok: true,
        report,
        log_index: idx,
        log_tree_size: size,
    })
}

pub fn run_cert(c: CertCmd) -> Result<()> {
    match c {
        CertCmd::Verify(a) => {
            let root = read_root(&a.ca_root)?;
            let pem = std::fs::read_to_string(&a.certificate)
                .with_context(|| a.certificate.display().to_string())?;
            let now = match &a.at {
                Some(t) => u64::try_from(
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .context("--at is not RFC 3339")?
                        .unix_timestamp(),
                )
                .context("--at before 1970")?,
                None => now_unix(),
            };
            let leaf = tl_ca::certs::verify_leaf_pem(&pem, &root, now)
                .map_err(|e| anyhow::anyhow!("{}: {e}", e.code()))?;
            let claims = leaf.claims.clone();
            output::emit(a.json, &claims, |c| {
                println!("certificate: OK (chains to the CA root, valid now)");
                println!(
                    "  tee             {:?}{}",
                    c.platform.tee,
                    if c.platform.simulated {
                        " (SIMULATED)"
                    } else {
                        ""
                    }
                );
                println!("  tcb status      {:?}", c.platform.tcb_status);
                println!("  debug           {}", c.platform.debug);
                if let Some(t) = &c.platform.tdx {
                    println!("  mrtd            {}", hex::encode(t.mrtd));
                    for (i, r) in t.rtmr.iter().enumerate() {
                        println!("  rtmr{i}           {}", hex::encode(r));
                    }
                }
                println!("  encryption key  {}", c.encryption_public_key);
                println!("  evidence digest {}", hex::encode(c.evidence_digest));
            })
        }
    }
}

fn read_root(p: &Path) -> Result<Vec<u8>> {
    let text = std::fs::read(p).with_context(|| p.display().to_string())?;
    if let Ok(s) = std::str::from_utf8(&text) {
        if s.contains("-----BEGIN") {
            return tl_ca::certs::pem_to_certs(s)
                .ok()
                .and_then(|v| v.into_iter().next())
                .with_context(|| format!("{}: no certificate in PEM", p.display()));
        }
    }
    Ok(text)
}

pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Lowercase hex SHA-256.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(tl_ca::sha256(data))
}
