//! `tl evidence verify`: verify a TDX quote, an SGX quote or an evidence
//! bundle against Intel's root and DCAP collateral, and apply an
//! acceptance policy. Reads files; every decision is made by `tl-evidence`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context as _};
use serde::Serialize;
use tl_evidence::accept::{parse_tcb_status, AcceptPolicy, Rejection};
use tl_evidence::bundle::{CpuEvidence, CpuEvidenceKind, EvidenceBundle, BUNDLE_VERSION};
use tl_evidence::dcap::sgx::{verify_sgx_quote, TEE_TYPE_SGX};
use tl_evidence::dcap::time::{format_rfc3339_utc, parse_rfc3339_utc};
use tl_evidence::dcap::{CollateralParts, TdxCollateral};
use tl_evidence::verify::{verify_bundle, Collateral, TrustAnchors, VerifyOptions};
use tl_evidence::{EvidenceError, PlatformClaims, INTEL_SGX_ROOT_CA_DER};

#[derive(Debug, clap::Subcommand)]
pub enum Cmd {
    /// Verify a TDX/SGX quote or an evidence bundle and appraise its TCB.
    Verify(VerifyArgs),
}

/// Verify attestation evidence offline and decide whether to accept it.
///
/// FILE may be a raw TDX quote (v4/v5, as read from configfs-tsm
/// `outblob`), a raw SGX quote (v3), a quote as hex text (optionally
/// 0x-prefixed), or an evidence bundle JSON produced by the loader. The
/// kind is detected from the content.
///
/// Verification checks the quote's signatures and PCK chain up to the Intel
/// SGX Root CA (built in; replace it with --root-der), then appraises the
/// platform's TCB with DCAP collateral: the CRLs, the signed TCB info and QE
/// identity for the platform's FMSPC. The result is a TCB status (UpToDate,
/// SWHardeningNeeded, ConfigurationNeeded, OutOfDate, ...) and Intel
/// security advisory IDs. Acceptance is a separate policy: by default only
/// UpToDate, and never a debug TD/enclave.
///
/// The exit status is 0 only when verification succeeds AND the policy
/// accepts the result. Every failure prints a stable reason code (for
/// example TDX_TCB_LEVEL_NOT_FOUND, TDX_COLLATERAL_EXPIRED,
/// TCB_STATUS_NOT_ACCEPTED).
#[derive(Debug, clap::Args)]
#[command(
    verbatim_doc_comment,
    after_help = concat!(
        "Collateral (--collateral PATH):\n",
        "  a file       a QuoteCollateralV3 JSON document (keys pck_crl_issuer_chain,\n",
        "               root_ca_crl, pck_crl, tcb_info_issuer_chain, tcb_info,\n",
        "               tcb_info_signature, qe_identity_issuer_chain, qe_identity,\n",
        "               qe_identity_signature), as PCCS clients such as dcap-qvl write it;\n",
        "  a directory  Intel PCS responses as separate files:\n",
        "                 tcb_info.json     {\"tcbInfo\": {...}, \"signature\": \"...\"}\n",
        "                 qe_identity.json  {\"enclaveIdentity\": {...}, \"signature\": \"...\"}\n",
        "                 tcb_info_issuer_chain.pem, pck_crl_issuer_chain.pem,\n",
        "                 qe_identity_issuer_chain.pem (optional: defaults to the TCB info chain),\n",
        "                 pck_crl.der, root_ca_crl.der (DER or hex).\n",
        "Without collateral a real quote is rejected (EVIDENCE_COLLATERAL_MISSING);\n",
        "simulated evidence needs none.\n\n",
        "Examples:\n\n",
        "  tl evidence verify quote.bin --collateral collateral.json\n\n",
        "  tl evidence verify tdx-quote.hex --collateral pcs/ --at 2025-07-19T10:00:00Z --json\n\n",
        "  tl evidence verify quote.bin --collateral c.json --accept-tcb UpToDate,SWHardeningNeeded\n\n",
        "  tl evidence verify bundle.json --simulated-root sim-root.der"
    )
)]
pub struct VerifyArgs {
    /// Evidence: raw quote, hex quote, or evidence bundle JSON.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// DCAP collateral: a QuoteCollateralV3 JSON file or a directory of PCS files.
    #[arg(long, value_name = "PATH")]
    collateral: Option<PathBuf>,
    /// Verification time, RFC 3339 UTC (e.g. 2025-07-19T10:00:34Z) or Unix
    /// seconds. Default: now.
    #[arg(long, value_name = "TIME")]
    at: Option<String>,
    /// Intel SGX Root CA certificate (DER) to trust instead of the built-in one.
    #[arg(long, value_name = "PATH")]
    root_der: Option<PathBuf>,
    /// Also trust this simulated-TEE root certificate (DER). Test setups only.
    #[arg(long, value_name = "PATH")]
    simulated_root: Option<PathBuf>,
    /// Accepted TCB statuses, comma-separated. Default: UpToDate.
    #[arg(long, value_name = "STATUS,...", value_delimiter = ',')]
    accept_tcb: Vec<String>,
    /// Accept a TD or enclave in debug mode (never do this in production).
    #[arg(long)]
    allow_debug: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: Cmd) -> anyhow::Result<()> {
    match cmd {
        Cmd::Verify(a) => verify(a),
    }
}

#[derive(Serialize)]
struct Report {
    /// Verified and accepted.
    ok: bool,
    verified: bool,
    /// The reason code when verification failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    evidence: &'static str,
    at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    tcb_status: Option<String>,
    advisory_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    claims: Option<PlatformClaims>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sgx: Option<SgxReport>,
    rejections: Vec<RejectionOut>,
}

#[derive(Serialize)]
struct SgxReport {
    mrenclave: String,
    mrsigner: String,
    isv_prod_id: u16,
    isv_svn: u16,
    attributes: String,
    debug: bool,
    report_data: String,
}

#[derive(Serialize)]
struct RejectionOut {
    code: &'static str,
    detail: String,
}

enum Evidence {
    Tdx(EvidenceBundle),
    Sgx(Vec<u8>),
}

fn verify(a: VerifyArgs) -> anyhow::Result<()> {
    let raw = std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?;
    let evidence = detect(&raw)?;
    let now = match &a.at {
        Some(t) => parse_time(t)?,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .context("system clock before 1970")?
            .as_secs(),
    };
    let intel_root = match &a.root_der {
        Some(p) => std::fs::read(p).with_context(|| format!("reading {}", p.display()))?,
        None => INTEL_SGX_ROOT_CA_DER.to_vec(),
    };
    let simulated_root = a.simulated_root.as_deref().map(read_cert).transpose()?;
    let anchors = TrustAnchors {
        intel_root_der: Some(intel_root),
        simulated_root_der: simulated_root,
        ..TrustAnchors::default()
    };
    let collateral = a.collateral.as_deref().map(read_collateral).transpose()?;
    let policy = policy(&a)?;

    let mut report = Report {
        ok: false,
        verified: false,
        code: None,
        error: None,
        evidence: "",
        at: format_rfc3339_utc(now),
        tcb_status: None,
        advisory_ids: Vec::new(),
        claims: None,
        sgx: None,
        rejections: Vec::new(),
    };
    let outcome: Result<PlatformClaimsOrSgx, EvidenceError> = match evidence {
        Evidence::Tdx(bundle) => {
            report.evidence = "tdx-quote";
            let opts = VerifyOptions {
                now_unix: now,
                anchors,
                collateral: collateral.map(Collateral::tdx),
                expected_nonce: None,
                gpu_anchors: tl_evidence::nvidia::GpuAnchors::nvidia(),
            };
            verify_bundle(&bundle, &opts).map(|v| PlatformClaimsOrSgx::Claims(Box::new(v.claims)))
        }
        Evidence::Sgx(q) => {
            report.evidence = "sgx-quote";
            match &collateral {
                None => Err(EvidenceError::CollateralMissing),
                Some(c) => verify_sgx_quote(&q, &anchors, c, now).map(|v| {
                    let r = &v.quote.report;
                    PlatformClaimsOrSgx::Sgx {
                        status: v.tcb.status,
                        advisories: v.tcb.advisory_ids.clone(),
                        debug: v.debug(),
                        report: SgxReport {
                            mrenclave: hex::encode(r.mrenclave),
                            mrsigner: hex::encode(r.mrsigner),
                            isv_prod_id: r.isv_prod_id,
                            isv_svn: r.isv_svn,
                            attributes: hex::encode(r.attributes),
                            debug: v.debug(),
                            report_data: hex::encode(r.report_data),
                        },
                    }
                }),
            }
        }
    };
    match outcome {
        Err(e) => {
            report.code = Some(e.code());
            report.error = Some(e.to_string());
        }
        Ok(PlatformClaimsOrSgx::Claims(claims)) => {
            report.verified = true;
            report.tcb_status = Some(format!("{:?}", claims.tcb_status));
            report.advisory_ids = claims.advisory_ids.clone();
            report.rejections = rejections(policy.evaluate(&claims));
            report.claims = Some(*claims);
        }
        Ok(PlatformClaimsOrSgx::Sgx {
            status,
            advisories,
            debug,
            report: sgx,
        }) => {
            report.verified = true;
            report.tcb_status = Some(format!("{status:?}"));
            report.advisory_ids = advisories;
            if !policy.accept.contains(&status) {
                report.rejections.push(RejectionOut {
                    code: tl_evidence::accept::TCB_STATUS_NOT_ACCEPTED,
                    detail: format!("TCB status {status:?} is not accepted"),
                });
            }
            if debug && !policy.allow_debug {
                report.rejections.push(RejectionOut {
                    code: tl_evidence::accept::DEBUG_NOT_ALLOWED,
                    detail: "the enclave runs in debug mode".into(),
                });
            }
            report.sgx = Some(sgx);
        }
    }
    report.ok = report.verified && report.rejections.is_empty();
    crate::output::emit(a.json, &report, print_human)?;
    if report.ok {
        Ok(())
    } else if let Some(code) = report.code {
        Err(anyhow!("verification failed: {code}"))
    } else {
        let codes: Vec<_> = report.rejections.iter().map(|r| r.code).collect();
        Err(anyhow!("not accepted by policy: {}", codes.join(", ")))
    }
}

enum PlatformClaimsOrSgx {
    Claims(Box<PlatformClaims>),
    Sgx {
        status: tl_evidence::TcbStatus,
        advisories: Vec<String>,
        debug: bool,
        report: SgxReport,
    },
}

fn rejections(r: Result<(), Vec<Rejection>>) -> Vec<RejectionOut> {
    r.err()
        .unwrap_or_default()
        .into_iter()
        .map(|r| RejectionOut {
            code: r.code,
            detail: r.detail,
        })
        .collect()
}

fn policy(a: &VerifyArgs) -> anyhow::Result<AcceptPolicy> {
    let mut p = AcceptPolicy::default();
    if !a.accept_tcb.is_empty() {
        p.accept.clear();
        for s in &a.accept_tcb {
            let st = parse_tcb_status(s).ok_or_else(|| {
                anyhow!("unknown TCB status {s:?} (UpToDate, SWHardeningNeeded, ConfigurationNeeded, ConfigurationAndSWHardeningNeeded, OutOfDate, OutOfDateConfigurationNeeded, Revoked)")
            })?;
            p.accept.insert(st);
        }
    }
    p.allow_debug = a.allow_debug;
    Ok(p)
}

fn print_human(r: &Report) {
    match (r.ok, r.code) {
        (true, _) => println!("verdict: ok"),
        (false, Some(code)) => println!(
            "verdict: FAILED {code}: {}",
            r.error.as_deref().unwrap_or_default()
        ),
        (false, None) => {
            let codes: Vec<_> = r.rejections.iter().map(|x| x.code).collect();
            println!("verdict: REJECTED by policy ({})", codes.join(", "));
            for x in &r.rejections {
                println!("  {}: {}", x.code, x.detail);
            }
        }
    }
    println!("evidence:    {}", r.evidence);
    println!("time:        {}", r.at);
    if let Some(s) = &r.tcb_status {
        println!("tcb status:  {s}");
        let adv = if r.advisory_ids.is_empty() {
            "none".to_string()
        } else {
            r.advisory_ids.join(", ")
        };
        println!("advisories:  {adv}");
    }
    if let Some(c) = &r.claims {
        if c.simulated {
            println!("simulated:   yes (chained to the simulated TEE root)");
        }
        if let Some(t) = &c.tdx {
            println!("MRTD:        {}", hex::encode(t.mrtd));
            for (i, m) in t.rtmr.iter().enumerate() {
                println!("RTMR{i}:       {}", hex::encode(m));
            }
            println!("REPORTDATA:  {}", hex::encode(c.report_data));
            println!(
                "attributes:  {:016x}{}",
                t.td_attributes,
                if c.debug { " (DEBUG)" } else { "" }
            );
            println!("XFAM:        {:016x}", t.xfam);
            println!("TEE_TCB_SVN: {}", hex::encode(t.tee_tcb_svn));
            if let Some(s) = &t.mrservicetd {
                println!("MRSERVICETD: {s}");
            }
        }
    }
    if let Some(s) = &r.sgx {
        println!("MRENCLAVE:   {}", s.mrenclave);
        println!("MRSIGNER:    {}", s.mrsigner);
        println!("ISVPRODID:   {}  ISVSVN: {}", s.isv_prod_id, s.isv_svn);
        println!(
            "attributes:  {}{}",
            s.attributes,
            if s.debug { " (DEBUG)" } else { "" }
        );
        println!("REPORTDATA:  {}", s.report_data);
    }
}

fn parse_time(t: &str) -> anyhow::Result<u64> {
    if let Ok(n) = t.parse::<u64>() {
        return Ok(n);
    }
    parse_rfc3339_utc(t).ok_or_else(|| {
        anyhow!("--at {t:?}: expected RFC 3339 UTC like 2025-07-19T10:00:34Z or Unix seconds")
    })
}

/// Bundle JSON, hex text, or a raw quote; TDX or SGX by the header's TEE type.
fn detect(raw: &[u8]) -> anyhow::Result<Evidence> {
    let trimmed = raw.trim_ascii();
    if trimmed.first() == Some(&b'{') {
        let b: EvidenceBundle =
            serde_json::from_slice(trimmed).context("evidence bundle JSON does not decode")?;
        return Ok(Evidence::Tdx(b));
    }
    let quote = if !trimmed.is_empty()
        && trimmed
            .iter()
            .all(|c| c.is_ascii_hexdigit() || c.is_ascii_whitespace() || *c == b'x')
    {
        let s: String = String::from_utf8_lossy(trimmed)
            .split_whitespace()
            .collect();
        let s = s.strip_prefix("0x").unwrap_or(&s);
        hex::decode(s).context("hex quote does not decode")?
    } else {
        raw.to_vec()
    };
    let tee = quote
        .get(4..8)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| anyhow!("too short for a quote"))?;
    if tee == TEE_TYPE_SGX {
        return Ok(Evidence::Sgx(quote));
    }
    Ok(Evidence::Tdx(EvidenceBundle {
        version: BUNDLE_VERSION,
        cpu: CpuEvidence {
            kind: CpuEvidenceKind::TdxQuote,
            quote,
            certificates: vec![],
        },
        gpus: vec![],
    }))
}

fn read_cert(p: &Path) -> anyhow::Result<Vec<u8>> {
    let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
    if b.starts_with(b"-----BEGIN") {
        bail!("{}: expected a DER certificate, found PEM", p.display());
    }
    Ok(b)
}

fn read_collateral(p: &Path) -> anyhow::Result<TdxCollateral> {
    let map = |e: EvidenceError| anyhow!("{}: {} ({})", p.display(), e, e.code());
    if !p.is_dir() {
        let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
        return TdxCollateral::from_json(&b).map_err(map);
    }
    let f = |name: &str| {
        let path = p.join(name);
        std::fs::read(&path).with_context(|| format!("reading {}", path.display()))
    };
    let tcb_chain = f("tcb_info_issuer_chain.pem")?;
    let qe_chain = match f("qe_identity_issuer_chain.pem") {
        Ok(b) => b,
        Err(_) => tcb_chain.clone(),
    };
    let parts = (
        f("tcb_info.json")?,
        f("qe_identity.json")?,
        f("pck_crl_issuer_chain.pem")?,
        f("pck_crl.der")?,
        f("root_ca_crl.der")?,
    );
    if parts.0.is_empty() {
        bail!("{}: empty tcb_info.json", p.display());
    }
    TdxCollateral::from_parts(CollateralParts {
        tcb_info_response: &parts.0,
        qe_identity_response: &parts.1,
        tcb_info_issuer_chain: &tcb_chain,
        qe_identity_issuer_chain: &qe_chain,
        pck_crl_issuer_chain: &parts.2,
        pck_crl: &parts.3,
        root_ca_crl: &parts.4,
    })
    .map_err(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(rel: &str) -> PathBuf {
        PathBuf::from(format!(
            "{}/../../shared/testdata/{rel}",
            env!("CARGO_MANIFEST_DIR")
        ))
    }

    fn args(file: &str, collateral: Option<&str>, at: &str) -> VerifyArgs {
        VerifyArgs {
            file: data(file),
            collateral: collateral.map(data),
            at: Some(at.into()),
            root_der: None,
            simulated_root: None,
            accept_tcb: Vec::new(),
            allow_debug: false,
            json: true,
        }
    }

    #[test]
    fn detects_every_input_shape() {
        let raw = std::fs::read(data("tdx/dcap-qvl/tdx_quote")).expect("test data");
        let hex_text = std::fs::read(data("tdx/dcap-qvl/tdx-quote.hex")).expect("test data");
        let sgx = std::fs::read(data("tdx/dcap-qvl/sgx_quote")).expect("test data");
        assert!(matches!(detect(&raw), Ok(Evidence::Tdx(_))));
        assert!(matches!(detect(&hex_text), Ok(Evidence::Tdx(_))));
        assert!(matches!(detect(&sgx), Ok(Evidence::Sgx(_))));
        let Ok(Evidence::Tdx(b)) = detect(&raw) else {
            panic!("TDX")
        };
        assert!(matches!(detect(&b.to_json()), Ok(Evidence::Tdx(_))));
        assert!(detect(b"").is_err());
        assert!(detect(b"{not json").is_err());
    }

    #[test]
    fn times() {
        assert_eq!(parse_time("1752919234").ok(), Some(1_752_919_234));
        assert_eq!(parse_time("2025-07-19T10:00:34Z").ok(), Some(1_752_919_234));
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn exit_status_follows_verdict_and_policy() {
        let col = Some("tdx/dcap-qvl/tdx_quote_collateral.json");
        assert!(verify(args("tdx/dcap-qvl/tdx_quote", col, "1752919234")).is_ok());
        // Outside the collateral's window.
        assert!(verify(args("tdx/dcap-qvl/tdx_quote", col, "2025-08-01T00:00:00Z")).is_err());
        // No collateral.
        assert!(verify(args("tdx/dcap-qvl/tdx_quote", None, "1752919234")).is_err());
        // SGX: verified, but ConfigurationAndSWHardeningNeeded is not accepted
        // by default; accepted when listed.
        let sgx_col = Some("tdx/dcap-qvl/sgx_quote_collateral.json");
        assert!(verify(args("tdx/dcap-qvl/sgx_quote", sgx_col, "1752919277")).is_err());
        let mut a = args("tdx/dcap-qvl/sgx_quote", sgx_col, "1752919277");
        a.accept_tcb = vec!["ConfigurationAndSWHardeningNeeded".into()];
        assert!(verify(a).is_ok());
        let mut a = args("tdx/dcap-qvl/sgx_quote", sgx_col, "1752919277");
        a.accept_tcb = vec!["Fine".into()];
        assert!(verify(a).is_err());
    }
}
